//! Prometheus is the final judge of a query; `validate` (so `kubectl
//! signalman plan` and the controller's preflight) refuses before anything
//! moves what does not parse. The two must agree on the queries release
//! managers write: every query of `valid.promql` runs in the real Prometheus
//! and passes the check, every query of `invalid.promql` is refused by both
//! (Prometheus with `bad_data`). Placeholders are filled as the controller
//! fills them. Each valid query, confined to a namespace as `--enforce-namespace`
//! rewrites it, runs in Prometheus too.

use prometheus_http_query::Error as PromError;
use signalman_core::analysis::{QueryVars, query_problem, render_query, tenancy};
use signalman_e2e::Prometheus;

const VALID: &str = include_str!("../../src/core/analysis/queries/valid.promql");
const INVALID: &str = include_str!("../../src/core/analysis/queries/invalid.promql");

fn queries(list: &'static str) -> impl Iterator<Item = &'static str> {
    list.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// `query` with its placeholders filled as the controller fills them.
fn rendered(query: &str) -> String {
    let vars = QueryVars {
        namespace: "shop".into(),
        service: "checkout".into(),
        release: "checkout-v5".into(),
        canary_hash: "5d8f9c7b4".into(),
        stable_hash: "7c9d6b5f8".into(),
        ..QueryVars::default()
    };
    render_query(query, &vars)
}

/// Prometheus' answer: `Ok(())` ran, `Err(message)` refused as bad data.
async fn prometheus_says(prom: &Prometheus, query: &str) -> Result<(), String> {
    prometheus_runs(prom, &rendered(query)).await
}

async fn prometheus_runs(prom: &Prometheus, rendered: &str) -> Result<(), String> {
    match prom.query(rendered).await {
        Ok(_) => Ok(()),
        Err(e) => match e.root_cause().downcast_ref::<PromError>() {
            Some(PromError::Prometheus(p)) if p.is_bad_data() => Err(p.message().to_owned()),
            _ => panic!("Prometheus did not answer {rendered:?}: {e:#}"),
        },
    }
}

#[tokio::test]
async fn prometheus_and_the_preflight_agree_on_which_queries_parse() {
    let prom = Prometheus::from_env().await;
    let mut checked = 0;
    for q in queries(VALID) {
        if let Err(why) = prometheus_says(&prom, q).await {
            panic!("Prometheus refused a query of valid.promql, {q:?}: {why}");
        }
        assert_eq!(query_problem(q), None, "the preflight refused {q:?}");
        // As --enforce-namespace rewrites it, it runs too.
        let confined = tenancy::confine(&rendered(q), "shop")
            .unwrap_or_else(|e| panic!("{q:?} cannot be confined: {e}"));
        if let Err(why) = prometheus_runs(&prom, &confined).await {
            panic!("Prometheus refused {q:?} confined to a namespace, {confined:?}: {why}");
        }
        checked += 1;
    }
    for q in queries(INVALID) {
        assert!(
            prometheus_says(&prom, q).await.is_err(),
            "Prometheus ran a query of invalid.promql, {q:?}"
        );
        assert!(query_problem(q).is_some(), "the preflight passed {q:?}");
        checked += 1;
    }
    eprintln!("{checked} queries: Prometheus and the preflight agree");
}

//! Issue 11: a reconcile reads the controller's stores, not the API server.
//! While a Release bakes two services (one by replica ratio, one on an
//! HTTPRoute) and is reconciled about once a second for its measurements,
//! the API server's own count of GET and LIST requests
//! (`apiserver_request_total` from its /metrics) for Deployments,
//! ReplicaSets, ControllerRevisions, Services, HTTPRoutes and Releases must
//! not grow. Watches are another verb and are not counted; the watches'
//! first lists happen before the window. Before the stores, every reconcile
//! read the Release, listed the namespace's Releases and ReplicaSets and got
//! each Deployment, Service, baseline and route.
//!
//! The metric has no user label, and the local cluster runs without API
//! Priority and Fairness (whose per-FlowSchema counts would single the
//! operator out), so the window is kept quiet instead: this binary runs one
//! test, the harness makes no request during the window, and it starts once
//! no namespace is being deleted (the namespace controller lists every kind
//! in a namespace it deletes). The controllers, kwok and the traffic
//! simulator read through watches. Any other reader could only make the test
//! fail, never pass.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use signalman_e2e::operator::sum_metric;
use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{Look, Scenario, WebApp, http_route_yaml, kubectl, output_text, poll};

/// What a reconcile could read.
const CACHED: [&str; 6] = [
    "deployments",
    "replicasets",
    "controllerrevisions",
    "services",
    "httproutes",
    "releases",
];

/// GET and LIST requests the API server served, by "VERB resource", from
/// its own /metrics (every client, every code).
async fn reads() -> BTreeMap<String, f64> {
    let out = kubectl(&["get", "--raw", "/metrics"]).await;
    assert!(out.status.success(), "{}", output_text(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut counts = BTreeMap::new();
    for verb in ["GET", "LIST"] {
        for resource in CACHED {
            let (v, r) = (
                format!("verb=\"{verb}\""),
                format!("resource=\"{resource}\""),
            );
            let n: f64 = text
                .lines()
                .filter(|l| l.starts_with("apiserver_request_total{"))
                .filter(|l| l.contains(&v) && l.contains(&r) && l.contains("subresource=\"\""))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            counts.insert(format!("{verb} {resource}"), n);
        }
    }
    counts
}

#[tokio::test]
async fn reconciles_read_no_cached_object_from_the_api_server() {
    let sc = Scenario::start("ctl-reads").await;
    sc.deploy(&["a", "b"].map(|n| WebApp::new(n).replicas(2)))
        .await;
    sc.apply_yaml(&http_route_yaml("b", "b")).await;
    let api = sc
        .apply(
            &release("reads")
                .defaults(&[(50, 120), (100, 1)])
                .services([svc("a"), svc("b").route("b")])
                .build(),
        )
        .await;
    for s in ["a", "b"] {
        rel::wait_baking(&api, "reads", s, Duration::from_secs(60)).await;
    }
    let namespaces: Api<Namespace> = Api::all(sc.client.clone());
    poll(
        "no namespace being deleted",
        Duration::from_secs(120),
        Duration::from_secs(1),
        || async {
            let terminating: Vec<String> = namespaces
                .list(&ListParams::default())
                .await
                .expect("listing namespaces")
                .items
                .iter()
                .filter(|n| n.metadata.deletion_timestamp.is_some())
                .filter_map(|n| n.metadata.name.clone())
                .collect();
            if terminating.is_empty() {
                Look::Done(())
            } else {
                Look::NotYet(terminating.join(", "))
            }
        },
    )
    .await;
    // Our own writes settle (canaries ready, the status written).
    tokio::time::sleep(Duration::from_secs(3)).await;

    let reconciles = |text: &str| sum_metric(text, "signalman_reconciles_total");
    let before = reads().await;
    let reconciled_before = reconciles(&sc.operator.metrics().await);
    tokio::time::sleep(Duration::from_secs(15)).await;
    let reconciled_after = reconciles(&sc.operator.metrics().await);
    let after = reads().await;

    let reconciled = reconciled_after - reconciled_before;
    assert!(
        reconciled >= 5.0,
        "only {reconciled} reconciles in 15 s: nothing measured what reconciles read"
    );
    let grew: Vec<String> = after
        .iter()
        .filter(|(k, n)| **n > before[*k])
        .map(|(k, n)| format!("{k}: +{}", n - before[k]))
        .collect();
    assert!(
        grew.is_empty(),
        "during {reconciled} reconciles the API server served reads of what the stores hold: {}",
        grew.join(", ")
    );
    let status = rel::status(&api, "reads").await;
    assert_eq!(rel::phase(&status), "Progressing", "{status}");
    sc.end().await;
}

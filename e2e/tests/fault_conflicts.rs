//! Fault matrix (issue 15): a 409 storm. Another writer updates the
//! Release's labels and the Deployments' annotations in a loop through the
//! whole train, a round every 50 ms (up to 20 label writes a second, far
//! more than any GitOps tool or controller makes). Every write the operator makes under a resourceVersion
//! precondition (the Release's status and finalizer, giving the Deployments'
//! fields back) then meets a version changed since it was read; server-side
//! apply of fields it owns does not. The train ends exactly like an
//! uninterrupted twin, the other writer's labels and annotations are intact,
//! and the test reports how many conflicts the operator met and what they
//! cost in time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use signalman::api::Release;
use signalman_e2e::Scenario;
use signalman_e2e::operator::sum_metric;
use signalman_e2e::outcome::{Outcome, assert_same};
use signalman_e2e::release::{self as rel, release, svc};

const SERVICES: [&str; 3] = ["a", "b", "c"];
const LABEL: &str = "storm.example/round";
/// Between rounds. Unpaced, an idle 2-core machine writes the Release's
/// labels ~60 times a second; every status write then loses its race
/// (retried 5 times, then the reconcile is requeued) and a 9 s train took
/// 64 s: a limit, documented, not a storm any writer makes.
const PACE: Duration = Duration::from_millis(50);

/// a, then b and c together.
fn train() -> Release {
    release("train")
        .defaults(&[(50, 2), (100, 1)])
        .service(svc("a"))
        .service(svc("b").after(&["a"]))
        .service(svc("c").after(&["a"]))
        .build()
}

struct Run {
    outcome: Outcome,
    took: Duration,
    conflicts: f64,
    kube_errors: f64,
    last_round: u64,
    labels_kept: bool,
    annotations_kept: bool,
}

/// One writer's loop: a merge patch of the Release's labels, then of each
/// Deployment's annotations, with the round number, a round every
/// [`PACE`], until `stop`; `rounds` is the last round written.
async fn storm(client: kube::Client, ns: String, stop: Arc<AtomicBool>, rounds: Arc<AtomicU64>) {
    let releases: Api<Release> = Api::namespaced(client.clone(), &ns);
    let deps: Api<Deployment> = Api::namespaced(client, &ns);
    let params = PatchParams {
        field_manager: Some("storm-writer".into()),
        ..PatchParams::default()
    };
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let body = json!({"metadata": {"labels": {LABEL: round.to_string()}}});
        releases
            .patch("train", &params, &Patch::Merge(&body))
            .await
            .unwrap();
        let body = json!({"metadata": {"annotations": {LABEL: round.to_string()}}});
        for n in SERVICES {
            deps.patch(n, &params, &Patch::Merge(&body)).await.unwrap();
        }
        rounds.store(round, Ordering::Relaxed);
        tokio::time::sleep(PACE).await;
    }
}

async fn run(prefix: &str, with_storm: bool) -> Run {
    let sc = Scenario::start(prefix).await;
    sc.deploy_apps(&SERVICES).await;
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let api = sc.apply(&train()).await;
    let writer = with_storm.then(|| {
        tokio::spawn(storm(
            sc.client.clone(),
            sc.ns().to_string(),
            stop.clone(),
            rounds.clone(),
        ))
    });
    rel::wait_phase(&api, "train", "Succeeded", Duration::from_secs(150)).await;
    // Until every Deployment is given back: that write conflicts too.
    for n in SERVICES {
        rel::wait_released(&sc.client, sc.ns(), n).await;
    }
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    if let Some(w) = writer {
        w.await.unwrap();
    }
    let last_round = rounds.load(Ordering::Relaxed).to_string();
    let outcome = Outcome::capture(&sc.client, sc.ns(), "train").await;
    let deps: Api<Deployment> = Api::namespaced(sc.client.clone(), sc.ns());
    let mut annotations_kept = true;
    for n in SERVICES {
        let d = deps.get(n).await.unwrap();
        annotations_kept &=
            d.metadata.annotations.unwrap_or_default().get(LABEL) == Some(&last_round);
    }
    let r = api.get("train").await.unwrap();
    let labels_kept = r.metadata.labels.unwrap_or_default().get(LABEL) == Some(&last_round);
    let metrics = sc.operator.metrics().await;
    let kube_errors = signalman_e2e::operator::sample(
        &metrics,
        r#"signalman_reconcile_errors_total{kind="kube"}"#,
    )
    .unwrap_or(0.0);
    let out = Run {
        outcome,
        took,
        conflicts: sum_metric(&metrics, "signalman_api_conflicts_total"),
        kube_errors,
        last_round: rounds.load(Ordering::Relaxed),
        labels_kept: !with_storm || labels_kept,
        annotations_kept: !with_storm || annotations_kept,
    };
    if with_storm {
        let conflicts: Vec<&str> = metrics
            .lines()
            .filter(|l| l.starts_with("signalman_api_conflicts_total{"))
            .collect();
        eprintln!("{prefix}: {conflicts:#?}");
    }
    sc.end().await;
    out
}

#[tokio::test]
async fn a_409_storm_ends_like_an_uninterrupted_run_and_keeps_the_other_writers_fields() {
    let started = Instant::now();
    let (stormy, clean) = tokio::join!(run("fault-storm", true), run("fault-calm", false));
    eprintln!(
        "409 storm: {} rounds of the other writer ({} writes), {} conflicts met by the operator, \
         {} reconciles failed on the API; train took {:.1}s (clean twin {:.1}s); test wall time {:.1}s",
        stormy.last_round,
        stormy.last_round * (1 + SERVICES.len() as u64),
        stormy.conflicts,
        stormy.kube_errors,
        stormy.took.as_secs_f64(),
        clean.took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(clean.outcome.phase, "Succeeded");
    assert_same(&stormy.outcome, &clean.outcome);
    for n in SERVICES {
        assert_eq!(stormy.outcome.images[n], format!("registry.example/{n}:v2"));
    }
    assert!(stormy.labels_kept, "the other writer's label is gone");
    assert!(
        stormy.annotations_kept,
        "the other writer's annotations are gone"
    );
    assert!(
        stormy.last_round > 20,
        "no storm: {} rounds",
        stormy.last_round
    );
    assert!(
        stormy.took < clean.took * 2 + Duration::from_secs(10),
        "the storm slowed the train from {:?} to {:?}",
        clean.took,
        stormy.took
    );
}

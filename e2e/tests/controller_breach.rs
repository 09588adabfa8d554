//! Controller scenario 3 (issue 4): a breach in the second wave. b's new
//! version answers 30 % 5xx; its canary goes to weight 0 within one analysis
//! interval of the first failing measurement, a (already promoted) is restored,
//! c never starts, and the timeline tells it in order.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use signalman_e2e::Scenario;
use signalman_e2e::operator as op;
use signalman_e2e::release::{self as rel, release, svc};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Watch a canary Deployment every 50 ms; remember whether it ever existed with
/// pods, and when it was first seen scaled to 0 (or gone) after that.
fn watch_canary(api: Api<Deployment>, name: &'static str) -> Arc<Mutex<(bool, Option<i64>)>> {
    let seen = Arc::new(Mutex::new((false, None)));
    let out = seen.clone();
    tokio::spawn(async move {
        loop {
            let d = api.get_opt(name).await;
            let t = now_ms();
            if let Ok(d) = d {
                let replicas = d.as_ref().and_then(|d| d.spec.as_ref()?.replicas);
                let mut s = seen.lock().unwrap();
                match replicas {
                    Some(r) if r > 0 => s.0 = true,
                    _ if s.0 && s.1.is_none() => s.1 = Some(t),
                    _ => {}
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    out
}

#[tokio::test]
async fn breach_in_the_second_wave_rolls_the_train_back() {
    let sc = Scenario::start("ctl-breach").await;
    sc.deploy_apps(&["a", "b", "c"]).await;
    let deps: Api<Deployment> = Api::namespaced(sc.client.clone(), sc.ns());
    let b_canary = watch_canary(deps.clone(), "b-canary");
    let c_canary = watch_canary(deps.clone(), "c-canary");

    let train = release("breach")
        .defaults(&[(50, 4), (100, 1)])
        .service(svc("a"))
        .service(svc("b").after(&["a"]).error_rate("0.3"))
        .service(svc("c").after(&["b"]))
        .build();
    let api = sc.apply(&train).await;
    let status = rel::wait_phase(&api, "breach", "RolledBack", Duration::from_secs(120)).await;

    // a is back on its old image and env; b's stable was never touched.
    for n in ["a", "b", "c"] {
        let d = deps.get(n).await.unwrap();
        let c = &d
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        assert_eq!(
            c.image.as_deref(),
            Some(format!("registry.example/{n}:v1").as_str()),
            "{n}"
        );
        let env: Vec<_> = c
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.as_str(), e.value.as_deref()))
            .collect();
        assert_eq!(env, vec![("SIM_ERROR_RATE", Some("0"))], "{n}");
    }
    assert_eq!(rel::service(&status, "a").unwrap()["phase"], "Restored");
    rel::wait_released(&sc.client, sc.ns(), "a").await;
    assert_eq!(rel::service(&status, "b").unwrap()["phase"], "Withdrawn");
    assert_eq!(rel::service(&status, "c").unwrap()["phase"], "Skipped");
    assert!(!c_canary.lock().unwrap().0, "c's canary ran");
    assert!(
        deps.get_opt("b-canary").await.unwrap().is_none(),
        "b's canary is left"
    );

    // Weight 0 within one interval (1 s) of the first failing measurement.
    let rollback = &status["rollback"];
    assert_eq!(rollback["reason"], "Breach", "{rollback}");
    assert_eq!(rollback["service"], "b", "{rollback}");
    let first: Time = serde_json::from_value(rollback["firstDeviationAt"].clone()).unwrap();
    let zero_seen = b_canary
        .lock()
        .unwrap()
        .1
        .expect("b's canary never went to 0");
    // status times have second resolution: the true moment lies within [first, first + 1s)
    let seen_after = (zero_seen - first.0.as_millisecond()) as f64 / 1000.0;
    let metrics = sc.operator.metrics().await;
    let in_operator = op::sum_metric(&metrics, "signalman_breach_to_weight_zero_seconds_sum");
    eprintln!(
        "MEASURE breach-to-zero: operator {in_operator:.3} s (first failing query to weight-0 write); \
         seen by the test {seen_after:.3} s after firstDeviationAt (second resolution)"
    );
    assert_eq!(
        op::sum_metric(&metrics, "signalman_breach_to_weight_zero_seconds_count"),
        1.0
    );
    assert!(in_operator <= 1.0, "weight 0 took {in_operator} s");
    assert!(
        seen_after <= 2.0,
        "weight 0 seen {seen_after} s after the deviation second"
    );

    // The timeline in order: failing measurement, breach, weight 0, restoration, end.
    let tl = rel::timeline(&status);
    let at = |r, s| rel::first(&tl, r, s).unwrap_or_else(|| panic!("no {r} {s}: {tl:?}"));
    assert!(at("Promoted", "a") < at("StepStarted", "b"), "{tl:?}");
    assert!(at("MeasurementFailed", "b") < at("Breach", ""), "{tl:?}");
    assert!(at("Breach", "") <= at("WeightZero", ""), "{tl:?}");
    assert!(at("WeightZero", "") < at("Restored", "a"), "{tl:?}");
    assert!(at("Restored", "a") < at("RolledBack", ""), "{tl:?}");
    assert!(
        rel::first(&tl, "StepStarted", "c").is_none(),
        "c started: {tl:?}"
    );
    let stalled = rel::condition(&status, "Stalled").expect("Stalled condition");
    assert_eq!(stalled["status"], "True");
    sc.end().await;
}

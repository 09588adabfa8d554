//! Notifications (issue 14): webhook receivers told about each transition of
//! a train, through a receiver in the test process (`e2e/src/receiver.rs`).
//! Each transition reaches each receiver exactly once and in order, in the
//! receiver's format, though the operator is killed twice (once while a
//! receiver is down and a transition waits for it); a receiver that is down
//! costs the release no time, only a Warning Event and a metric; a receiver
//! whose Secret does not exist gives the release a Warning condition and the
//! release runs on.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use signalman::api::NOTIFIED_ANNOTATION;
use signalman_e2e::members::events;
use signalman_e2e::operator::{sample, sum_metric};
use signalman_e2e::policy::{TestPolicy, What, approval, approve, whoami};
use signalman_e2e::receiver::{Receiver, refusing_url};
use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{Scenario, pretty};

/// The Secret, in the operator's namespace, holding the receivers' URLs.
const SECRET: &str = "webhooks";

/// `--notifications` with these receivers.
fn flag(receivers: Value) -> String {
    format!("--notifications={}", json!({ "receivers": receivers }))
}

/// Secret [`SECRET`] in the operator's namespace (the scenario's) with `data`.
async fn secret(sc: &Scenario, data: &[(&str, &str)]) {
    let api: Api<Secret> = Api::namespaced(sc.client.clone(), sc.ns());
    let s = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(SECRET.into()),
            ..Default::default()
        },
        string_data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    };
    api.create(&PostParams::default(), &s)
        .await
        .expect("creating the webhook Secret");
}

/// The marks the operator wrote on the Release.
async fn marks(sc: &Scenario, name: &str) -> BTreeMap<String, i64> {
    let r = rel::get(&sc.releases(), name).await;
    r["metadata"]["annotations"][NOTIFIED_ANNOTATION]
        .as_str()
        .map(|m| serde_json::from_str(m).expect("the marks are JSON"))
        .unwrap_or_default()
}

/// Wait until every receiver in `receivers` is marked at `seq`.
async fn wait_marked(sc: &Scenario, name: &str, receivers: &[&str], seq: i64) {
    signalman_e2e::poll(
        &format!("{receivers:?} to be marked at {seq}"),
        Duration::from_secs(20),
        Duration::from_millis(100),
        || async {
            let m = marks(sc, name).await;
            if receivers.iter().all(|r| m.get(*r) == Some(&seq)) {
                signalman_e2e::Look::Done(())
            } else {
                signalman_e2e::Look::NotYet(format!("marks: {m:?}"))
            }
        },
    )
    .await;
}

fn transitions(bodies: &[Value]) -> Vec<String> {
    bodies
        .iter()
        .map(|b| b["transition"].as_str().unwrap_or("?").to_owned())
        .collect()
}

#[tokio::test]
async fn each_transition_reaches_each_receiver_once_in_order_across_two_restarts() {
    let mut hook = Receiver::start().await;
    let receivers = flag(json!([
        {"name": "chat", "urlFrom": {"name": SECRET, "key": "chat"}, "format": "slack"},
        {"name": "audit", "urlFrom": {"name": SECRET}},
    ]));
    let mut sc = Scenario::start_with("notify-once", |l| l.arg(&receivers)).await;
    secret(
        &sc,
        &[("chat", &hook.url("/chat")), ("url", &hook.url("/audit"))],
    )
    .await;
    sc.deploy_apps(&["a", "b", "c"]).await;
    let train = release("train")
        .defaults(&[(50, 2), (100, 1)])
        .service(svc("a"))
        .service(
            svc("b")
                .after(&["a"])
                .steps(&[(50, 2), (100, 1)])
                .approval_after(1),
        )
        .service(svc("c").after(&["b"]))
        .build();
    let api = sc.apply(&train).await;

    // Started reaches both and is marked; the operator is killed (a bakes).
    let audit = hook.wait_for("/audit", 1, Duration::from_secs(30)).await;
    assert_eq!(transitions(&audit), ["Started"], "{audit:#?}");
    hook.wait_for("/chat", 1, Duration::from_secs(10)).await;
    wait_marked(&sc, "train", &["chat", "audit"], 1).await;
    sc.operator.crash_and_restart().await;
    eprintln!("killed once, after Started was delivered");

    // The receiver goes down before b waits for its approval: that
    // announcement waits in the Release, the operator is killed again, the
    // receiver comes back, and the new process delivers it.
    hook.down();
    let status = rel::wait_status(
        &api,
        "train",
        "b waiting for the approval of step 1",
        Duration::from_secs(60),
        |s| rel::service(s, "b").is_some_and(|b| b["awaitingApproval"] == true),
    )
    .await;
    let waiting = status["announcements"]
        .as_array()
        .and_then(|a| a.last().cloned())
        .unwrap_or_default();
    assert_eq!(
        waiting["transition"],
        "AwaitingApproval",
        "{}",
        pretty(&status)
    );
    // At least one attempt failed (the receiver refuses connections).
    sc.operator
        .wait_metrics("a failed notification", |m| {
            sample(
                m,
                r#"signalman_notifications_total{receiver="audit",result="failed"}"#,
            )
            .is_some_and(|n| n >= 1.0)
        })
        .await;
    assert_eq!(hook.bodies("/audit").len(), 1);
    sc.operator.crash_and_restart().await;
    hook.up().await;
    eprintln!("killed twice, with AwaitingApproval undelivered");
    let audit = hook.wait_for("/audit", 2, Duration::from_secs(30)).await;
    assert_eq!(transitions(&audit), ["Started", "AwaitingApproval"]);

    let me = whoami(&sc.client).await;
    approve(
        &sc.client,
        sc.ns(),
        &approval("b-step-1", "train", &me, What::Step("b", 1)),
    )
    .await;
    let status = rel::wait_phase(&api, "train", "Succeeded", Duration::from_secs(90)).await;
    let announcements = status["announcements"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let last = announcements
        .last()
        .map(|a| a["seq"].as_i64().unwrap())
        .unwrap();
    wait_marked(&sc, "train", &["chat", "audit"], last).await;
    // Nothing more comes (a second copy would arrive within this).
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Exactly one message per announcement, in order, in each format.
    let ns = sc.ns().to_owned();
    let want_json: Vec<Value> = announcements
        .iter()
        .map(|a| {
            json!({
                "release": "train",
                "namespace": ns,
                "seq": a["seq"],
                "transition": a["transition"],
                "at": a["at"],
                "service": a.get("service").cloned().unwrap_or(Value::Null),
                "message": a["message"],
            })
        })
        .collect();
    let want_slack: Vec<Value> = announcements
        .iter()
        .map(|a| {
            json!({"text": format!(
                "{ns}/train: {}: {}",
                a["transition"].as_str().unwrap(),
                a["message"].as_str().unwrap()
            )})
        })
        .collect();
    assert_eq!(hook.bodies("/audit"), want_json, "{}", pretty(&status));
    assert_eq!(hook.bodies("/chat"), want_slack, "{}", pretty(&status));
    let seqs: Vec<i64> = announcements
        .iter()
        .map(|a| a["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert_eq!(
        transitions(&want_json),
        ["Started", "AwaitingApproval", "Succeeded"],
        "{}",
        pretty(&status)
    );
    sc.end().await;
}

/// Run a three-service train, with the operator's `--notifications` and the
/// Secret's data when given, and return how long it took from apply to
/// Succeeded, with its scenario.
async fn timed_train(
    prefix: &str,
    receivers: Option<(String, &[(&str, &str)])>,
) -> (Duration, Scenario) {
    let sc = match &receivers {
        Some((flag, _)) => Scenario::start_with(prefix, |l| l.arg(flag)).await,
        None => Scenario::start(prefix).await,
    };
    if let Some((_, data)) = receivers {
        secret(&sc, data).await;
    }
    sc.deploy_apps(&["a", "b", "c"]).await;
    let train = release("train")
        .defaults(&[(50, 2), (100, 1)])
        .service(svc("a"))
        .service(svc("b").after(&["a"]))
        .service(svc("c").after(&["a"]))
        .build();
    let start = Instant::now();
    let api = sc.apply(&train).await;
    rel::wait_phase(&api, "train", "Succeeded", Duration::from_secs(60)).await;
    (start.elapsed(), sc)
}

#[tokio::test]
async fn a_receiver_that_is_down_costs_the_release_no_time_only_a_warning_and_a_metric() {
    // The path is where webhook services keep their token: it must not show.
    let down = refusing_url("/services/T0KEN-SECRET");
    // And one that takes each request and never answers: a reconcile that
    // waited for it would cost the train the POST timeout per transition.
    let slow = Receiver::start().await;
    slow.hang();
    let receivers = flag(json!([
        {"name": "down", "urlFrom": {"name": SECRET}},
        {"name": "slow", "urlFrom": {"name": SECRET, "key": "slow"}},
    ]));
    let data = [("url", down.as_str()), ("slow", &slow.url("/hook"))];
    let ((with, sc), (without, quiet)) = tokio::join!(
        timed_train("notify-down", Some((receivers, &data))),
        timed_train("notify-none", None),
    );
    eprintln!(
        "MEASURE train with receivers down and hanging {with:?}, without receivers {without:?}"
    );
    assert!(
        with <= without + Duration::from_secs(5),
        "with receivers down and hanging the train took {with:?}, without receivers {without:?}"
    );

    let warned: Vec<(String, String, String)> = events(&sc.client, sc.ns(), "train")
        .await
        .into_iter()
        .filter(|(_, reason, note)| reason == "NotificationFailed" && note.contains("\"down\""))
        .collect();
    assert!(!warned.is_empty(), "a NotificationFailed Event");
    for (type_, _, note) in &warned {
        assert_eq!(type_, "Warning");
        assert!(note.contains("\"down\""), "names the receiver: {note}");
        assert!(
            !note.contains("T0KEN") && !note.contains(&down[..down.find("/services").unwrap()]),
            "never the URL: {note}"
        );
    }
    let m = sc.operator.metrics().await;
    assert!(
        sample(
            &m,
            r#"signalman_notifications_total{receiver="down",result="failed"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            r#"signalman_notifications_total{receiver="down",result="sent"}"#
        ),
        None,
        "{m}"
    );
    let log = std::fs::read_to_string(sc.operator.log_path()).unwrap_or_default();
    assert!(!log.contains("T0KEN"), "the URL is never logged");
    assert!(
        marks(&sc, "train").await.is_empty(),
        "nothing marked as delivered"
    );
    // Without receivers, nothing is announced nor attempted.
    let r = rel::get(&quiet.releases(), "train").await;
    assert!(
        r["status"]["announcements"].is_null(),
        "{}",
        pretty(&r["status"])
    );
    assert_eq!(
        sum_metric(
            &quiet.operator.metrics().await,
            "signalman_notifications_total"
        ),
        0.0
    );
    sc.end().await;
    quiet.end().await;
}

#[tokio::test]
async fn a_receiver_whose_secret_does_not_exist_warns_and_the_release_runs() {
    let hook = Receiver::start().await;
    // The operator's receiver works, but the Release's policy names its own
    // receivers, which replace the operator's: one whose Secret is missing.
    let receivers = flag(json!([{"name": "audit", "urlFrom": {"name": SECRET}}]));
    let sc = Scenario::start_with("notify-ghost", |l| l.arg(&receivers)).await;
    secret(&sc, &[("url", &hook.url("/audit"))]).await;
    let pol = TestPolicy::create(
        &sc.client,
        &format!("{}-notify", sc.ns()),
        "notifications:\n\
         \x20 receivers:\n\
         \x20 - name: ghost\n\
         \x20   urlFrom: {name: no-such-secret}\n",
    )
    .await;
    sc.deploy_apps(&["a"]).await;
    let train = release("train")
        .defaults(&[(50, 2), (100, 1)])
        .policy(pol.name())
        .service(svc("a"))
        .build();
    let api = sc.apply(&train).await;
    let status = rel::wait_status(
        &api,
        "train",
        "a Warning condition",
        Duration::from_secs(30),
        |s| rel::condition(s, "Warning").is_some_and(|c| c["status"] == "True"),
    )
    .await;
    let warning = rel::condition(&status, "Warning").unwrap();
    assert_eq!(warning["reason"], "ReceiverUnusable", "{warning}");
    let message = warning["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("\"ghost\"")
            && message.contains("no-such-secret")
            && message.contains("does not exist")
            && message.contains(sc.ns()),
        "names the receiver, the Secret, where, and the fix: {message}"
    );
    let status = rel::wait_phase(&api, "train", "Succeeded", Duration::from_secs(60)).await;
    assert!(
        !status["announcements"]
            .as_array()
            .unwrap_or(&Vec::new())
            .is_empty(),
        "announced for when the Secret is fixed: {}",
        pretty(&status)
    );
    assert!(
        hook.received().is_empty(),
        "the policy's receivers replace the operator's: {:#?}",
        hook.received()
    );
    sc.end().await;
    pol.delete(&signalman_e2e::client().await).await;
}

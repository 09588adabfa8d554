//! Controller scenario 5 (issue 4): crash safety. The operator is killed with
//! SIGKILL during a bake, during a promotion and during a rollback, and
//! started again; each run ends exactly like an uninterrupted run of the same
//! train next to it: same phase, same Deployments, same timeline (no step
//! skipped or repeated).

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use serde_json::Value;
use signalman_e2e::operator::{self as op, Operator};
use signalman_e2e::{self as e2e, TestNamespace};

/// A train a -> b. `bad_b`: b's new version fails (30 % 5xx), so the train
/// rolls back after a was promoted. `minReadySeconds: 2` makes promotions and
/// restorations last long enough to be interrupted.
fn release(bad_b: bool) -> String {
    let b_env = if bad_b {
        ", env: {app: {SIM_ERROR_RATE: \"0.3\"}}"
    } else {
        ""
    };
    format!(
        r#"apiVersion: signalman.dev/v1alpha1
kind: Release
metadata: {{name: train}}
spec:
  owner: team-e2e
{}  services:
  - {{name: a, deployment: a, change: {{images: {{app: "registry.example/a:v2"}}}}}}
  - {{name: b, deployment: b, dependsOn: [a], change: {{images: {{app: "registry.example/b:v2"}}{b_env}}}}}
"#,
        op::defaults_yaml(&[(50, 3), (100, 1)])
    )
}

struct Outcome {
    phase: String,
    timeline: Vec<(String, String)>,
    images: Vec<String>,
    services: Vec<(String, String)>,
}

async fn run(client: &kube::Client, prefix: &str, bad_b: bool, crash: bool) -> Outcome {
    let ns = TestNamespace::create(client, prefix).await;
    let mut operator = Operator::start(ns.name()).await;
    for n in ["a", "b"] {
        e2e::apply_yaml(
            client,
            Some(ns.name()),
            &op::web_app(n, 2, &format!("registry.example/{n}:v1"), 2),
        )
        .await;
    }
    for n in ["a", "b"] {
        e2e::wait_deployment_ready(client, ns.name(), n, 2, Duration::from_secs(60)).await;
    }
    e2e::apply_yaml(client, Some(ns.name()), &release(bad_b)).await;
    let api = op::releases(client, ns.name());
    let svc_phase = |s: &Value, n: &str| {
        op::service(s, n).map(|x| x["phase"].as_str().unwrap_or("").to_string())
    };

    if crash {
        // During a bake: a's first step has started baking.
        op::wait_status(&api, "train", "a baking", Duration::from_secs(60), |s| {
            op::service(s, "a").is_some_and(|x| x["bakeStartedAt"].is_string())
        })
        .await;
        operator.crash_and_restart().await;
        eprintln!("{prefix}: killed during a's bake");
        // During a promotion: a's stable Deployment is being updated.
        op::wait_status(&api, "train", "a promoting", Duration::from_secs(60), |s| {
            svc_phase(s, "a").as_deref() == Some("Promoting")
        })
        .await;
        operator.crash_and_restart().await;
        eprintln!("{prefix}: killed during a's promotion");
        if bad_b {
            // During the rollback: a is being restored.
            op::wait_status(
                &api,
                "train",
                "rolling back",
                Duration::from_secs(60),
                |s| op::phase(s) == "RollingBack",
            )
            .await;
            operator.crash_and_restart().await;
            eprintln!("{prefix}: killed during the rollback");
        }
    }
    let want = if bad_b { "RolledBack" } else { "Succeeded" };
    let status = op::wait_phase(&api, "train", want, Duration::from_secs(120)).await;
    let deps: Api<Deployment> = Api::namespaced(client.clone(), ns.name());
    let mut images = Vec::new();
    for n in ["a", "b", "a-canary", "b-canary"] {
        images.push(match deps.get_opt(n).await.unwrap() {
            Some(d) => format!(
                "{n}={}",
                d.spec.unwrap().template.spec.unwrap().containers[0]
                    .image
                    .clone()
                    .unwrap_or_default()
            ),
            None => format!("{n} absent"),
        });
    }
    let services = ["a", "b"]
        .iter()
        .map(|n| (n.to_string(), svc_phase(&status, n).unwrap_or_default()))
        .collect();
    drop(operator);
    ns.delete().await;
    Outcome {
        phase: op::phase(&status).to_string(),
        timeline: op::timeline(&status),
        images,
        services,
    }
}

fn assert_same(crashed: &Outcome, clean: &Outcome) {
    assert_eq!(crashed.phase, clean.phase);
    assert_eq!(crashed.images, clean.images);
    assert_eq!(crashed.services, clean.services);
    assert_eq!(
        crashed.timeline, clean.timeline,
        "timelines differ:\n crashed {:?}\n clean   {:?}",
        crashed.timeline, clean.timeline
    );
    // Each service of a finished train started each of its 2 steps exactly once.
    for (svc, phase) in &crashed.services {
        if phase == "Promoted" || phase == "Restored" {
            let started = crashed
                .timeline
                .iter()
                .filter(|(r, s)| r == "StepStarted" && s == svc)
                .count();
            assert_eq!(
                started, 2,
                "{svc}: steps started {started} times: {:?}",
                crashed.timeline
            );
        }
    }
}

#[tokio::test]
async fn killed_during_bake_and_promotion_ends_like_an_uninterrupted_run() {
    let client = e2e::client().await;
    let (crashed, clean) = tokio::join!(
        run(&client, "ctl-crash-ok", false, true),
        run(&client, "ctl-clean-ok", false, false)
    );
    assert_eq!(clean.phase, "Succeeded");
    assert_same(&crashed, &clean);
}

#[tokio::test]
async fn killed_during_promotion_and_rollback_ends_like_an_uninterrupted_run() {
    let client = e2e::client().await;
    let (crashed, clean) = tokio::join!(
        run(&client, "ctl-crash-rb", true, true),
        run(&client, "ctl-clean-rb", true, false)
    );
    assert_eq!(clean.phase, "RolledBack");
    assert_same(&crashed, &clean);
}

//! `kubectl signalman pause | resume | abort` against a running operator: each
//! is a merge patch of one spec field, says what will happen, and the
//! controller does exactly that.

mod plugin_support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use signalman_e2e::operator::{self as op, Operator};
use signalman_e2e::{self as e2e, TestNamespace};

use plugin_support::{install_crd, plugin, release_yaml};

async fn shop(client: &kube::Client, ns: &str, services: &[&str]) {
    for s in services {
        e2e::apply_yaml(
            client,
            Some(ns),
            &op::web_app(s, 2, &format!("registry.example/{s}:v1"), 0),
        )
        .await;
    }
    for s in services {
        e2e::wait_deployment_ready(client, ns, s, 2, Duration::from_secs(60)).await;
    }
}

#[tokio::test]
async fn abort_withdraws_the_canary_and_restores_what_was_promoted() {
    let client = e2e::client().await;
    install_crd(&client).await;
    let ns = TestNamespace::create(&client, "plugin-abort").await;
    let n = ns.name();
    let _operator = Operator::start(n).await;
    shop(&client, n, &["a", "b"]).await;
    // a moves quickly and is promoted; b then bakes long enough to be aborted mid-step.
    let yaml = release_yaml(
        "train",
        &[
            ("a", &[], &[(50, 2), (100, 2)], ""),
            ("b", &["a"], &[(50, 120), (100, 2)], ""),
        ],
    );
    e2e::apply_yaml(&client, Some(n), &yaml).await;
    let api = op::releases(&client, n);
    op::wait_status(
        &api,
        "train",
        "a promoted and b baking at 50%",
        Duration::from_secs(120),
        |s| {
            op::service(s, "a").is_some_and(|a| a["phase"] == "Promoted")
                && op::service(s, "b")
                    .is_some_and(|b| b["phase"] == "Progressing" && b["bakeStartedAt"].is_string())
        },
    )
    .await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), n);
    assert_eq!(
        op::first_image(&deployments.get("a").await.unwrap()),
        "registry.example/a:v2"
    );

    let r = plugin(&["abort", "train", "-n", n]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with(
            "Release train rolls back: every canary in flight goes to 0% at once (b at 50%), \
             then these are restored to their baseline in this order: a. This cannot be undone."
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!(
            "kubectl patch releases.signalman.dev train -n {n} --type merge -p '{{\"spec\":{{\"abort\":true}}}}'"
        )),
        "{}",
        r.stdout
    );
    let obj = api.get("train").await.unwrap();
    assert_eq!(obj.data["spec"]["abort"], true);

    let status = op::wait_phase(&api, "train", "RolledBack", Duration::from_secs(120)).await;
    assert_eq!(status["rollback"]["reason"], "Abort");
    assert_eq!(op::service(&status, "b").unwrap()["phase"], "Withdrawn");
    assert_eq!(op::service(&status, "a").unwrap()["phase"], "Restored");
    assert_eq!(
        op::first_image(&deployments.get("a").await.unwrap()),
        "registry.example/a:v1"
    );
    assert!(
        deployments
            .get_opt("b-canary")
            .await
            .unwrap()
            .is_none_or(|d| d.spec.unwrap().replicas == Some(0))
    );

    // Aborting again is refused with the reason, and changes nothing.
    let again = plugin(&["abort", "train", "-n", n]).await;
    assert_eq!(again.code, 1);
    assert!(
        again.stderr.contains("already ended RolledBack"),
        "{}",
        again.stderr
    );
    ns.delete().await;
}

#[tokio::test]
async fn pause_holds_the_step_and_resume_continues_it() {
    let client = e2e::client().await;
    install_crd(&client).await;
    let ns = TestNamespace::create(&client, "plugin-pause").await;
    let n = ns.name();
    let _operator = Operator::start(n).await;
    shop(&client, n, &["web"]).await;
    e2e::apply_yaml(
        &client,
        Some(n),
        &release_yaml("train", &[("web", &[], &[(25, 6), (50, 6), (100, 2)], "")]),
    )
    .await;
    let api = op::releases(&client, n);
    op::wait_status(
        &api,
        "train",
        "web baking step 1 at 25%",
        Duration::from_secs(60),
        |s| {
            op::service(s, "web").is_some_and(|w| {
                w["step"] == 0 && w["weight"] == 25 && w["bakeStartedAt"].is_string()
            })
        },
    )
    .await;

    let r = plugin(&["pause", "train", "-n", n]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("canary weights stay where they are (web at 25%)"),
        "{}",
        r.stdout
    );
    let paused = op::wait_phase(&api, "train", "Paused", Duration::from_secs(20)).await;
    assert!(
        paused["hold"].is_null(),
        "a user pause is not a hold: {paused}"
    );

    // Twice the bake passes: a running release would have moved on; a paused one stays.
    let until = Instant::now() + Duration::from_secs(12);
    while Instant::now() < until {
        let s = op::status(&api, "train").await;
        assert_eq!(op::phase(&s), "Paused");
        let web = op::service(&s, "web").unwrap();
        assert_eq!(
            (web["step"].as_i64(), web["weight"].as_i64()),
            (Some(0), Some(25)),
            "moved while paused: {s}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let view = plugin(&["get", "train", "-n", n]).await;
    assert!(
        view.stdout.contains("PAUSED by spec.paused"),
        "{}",
        view.stdout
    );
    let twice = plugin(&["pause", "train", "-n", n]).await;
    assert_eq!(twice.code, 0);
    assert!(twice.stdout.contains("already paused"), "{}", twice.stdout);

    // Watch it from here, piped as a script would: plain blocks, and JSON lines.
    let (nn, nj) = (n.to_owned(), n.to_owned());
    let plain = tokio::spawn(async move { plugin(&["get", "train", "-n", &nn, "--watch"]).await });
    let json =
        tokio::spawn(
            async move { plugin(&["get", "train", "-n", &nj, "--watch", "-o", "json"]).await },
        );
    tokio::time::sleep(Duration::from_secs(1)).await;

    let r = plugin(&["resume", "train", "-n", n]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("unpauses it (spec.paused false)"),
        "{}",
        r.stdout
    );
    let done = op::wait_phase(&api, "train", "Succeeded", Duration::from_secs(90)).await;
    assert_eq!(op::service(&done, "web").unwrap()["phase"], "Promoted");

    // Both watches end by themselves once the release is final.
    let plain = tokio::time::timeout(Duration::from_secs(30), plain)
        .await
        .expect("the watch did not end")
        .unwrap();
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    assert!(
        !plain.stdout.contains('\x1b'),
        "escape codes in piped output"
    );
    let blocks: Vec<&str> = plain
        .stdout
        .split("--- ")
        .filter(|b| !b.is_empty())
        .collect();
    assert!(
        blocks.len() >= 3,
        "expected a block per change, got {}:\n{}",
        blocks.len(),
        plain.stdout
    );
    assert!(blocks[0].contains("‖ Paused"), "{}", blocks[0]);
    assert!(
        blocks.last().unwrap().contains("✔ Succeeded"),
        "{}",
        plain.stdout
    );
    assert!(
        plain.stdout.contains("[##########..........]  50%"),
        "the 50% step never showed:\n{}",
        plain.stdout
    );

    let json = tokio::time::timeout(Duration::from_secs(30), json)
        .await
        .expect("the JSON watch did not end")
        .unwrap();
    assert_eq!(json.code, 0, "{}", json.stderr);
    let phases: Vec<String> = json
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
        })
        .map(|v| v["status"]["phase"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        phases.first().map(String::as_str),
        Some("Paused"),
        "{phases:?}"
    );
    assert_eq!(
        phases.last().map(String::as_str),
        Some("Succeeded"),
        "{phases:?}"
    );
    assert!(phases.iter().any(|p| p == "Progressing"), "{phases:?}");
    ns.delete().await;
}

#[tokio::test]
async fn resume_lifts_a_hold_by_its_id() {
    let client = e2e::client().await;
    install_crd(&client).await;
    let ns = TestNamespace::create(&client, "plugin-hold").await;
    let n = ns.name();
    let _operator = Operator::start(n).await;
    shop(&client, n, &["web"]).await;
    // A query that never has data: the first empty result beyond inconclusiveLimit 0 holds.
    let yaml = format!(
        r#"apiVersion: signalman.dev/v1alpha1
kind: Release
metadata: {{name: train}}
spec:
  owner: team-e2e
  services:
  - name: web
    deployment: web
    change: {{images: {{app: "registry.example/web:v2"}}}}
    steps: [{{weight: 50, bake: 3s}}, {{weight: 100, bake: 1s}}]
    analysis:
      interval: 1s
      inconclusiveLimit: 0
      metrics:
      - name: checkout-success
        query: 'sum(no_such_metric{{namespace="{n}"}})'
        min: 0.99
"#
    );
    e2e::apply_yaml(&client, Some(n), &yaml).await;
    let api = op::releases(&client, n);
    let held = op::wait_status(&api, "train", "hold-1", Duration::from_secs(60), |s| {
        s["hold"]["id"] == "hold-1"
    })
    .await;
    assert_eq!(op::phase(&held), "Held");

    let view = plugin(&["get", "train", "-n", n]).await;
    assert!(view.stdout.contains("HOLD hold-1"), "{}", view.stdout);
    assert!(
        view.stdout
            .contains(&format!("kubectl signalman resume train -n {n}")),
        "{}",
        view.stdout
    );

    let r = plugin(&["resume", "train", "-n", n]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("Release train: lifts hold hold-1 ("),
        "{}",
        r.stdout
    );
    assert_eq!(
        api.get("train").await.unwrap().data["spec"]["resumeHold"],
        "hold-1"
    );
    // Lifted: the step bakes again, and since the metric still has no data the
    // release holds again under a new id (the old id cannot lift it).
    let again = op::wait_status(&api, "train", "hold-2", Duration::from_secs(60), |s| {
        s["hold"]["id"] == "hold-2"
    })
    .await;
    assert_eq!(again["holds"], 2);
    let tl = op::timeline(&again);
    assert!(
        op::first(&tl, "Resumed", "").is_some(),
        "no Resumed entry: {tl:?}"
    );
    ns.delete().await;
}

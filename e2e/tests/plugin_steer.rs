//! `kubectl signalman pause | resume | abort` against a running operator: each
//! is a merge patch of one spec field, says what will happen, and the
//! controller does exactly that.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use signalman::api::{Analysis, Metric};
use signalman_e2e::plugin::plugin;
use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{self as e2e, Scenario};

#[tokio::test]
async fn abort_withdraws_the_canary_and_restores_what_was_promoted() {
    let sc = Scenario::start("plugin-abort").await;
    let n = sc.ns();
    sc.deploy_apps(&["a", "b"]).await;
    // a moves quickly and is promoted; b then bakes long enough to be aborted mid-step.
    let train = release("train")
        .defaults(&[(50, 2), (100, 2)])
        .service(svc("a").steps(&[(50, 2), (100, 2)]))
        .service(svc("b").after(&["a"]).steps(&[(50, 120), (100, 2)]))
        .build();
    let api = sc.apply(&train).await;
    rel::wait_status(
        &api,
        "train",
        "a promoted and b baking at 50%",
        Duration::from_secs(120),
        |s| {
            rel::service(s, "a").is_some_and(|a| a["phase"] == "Promoted")
                && rel::service(s, "b")
                    .is_some_and(|b| b["phase"] == "Progressing" && b["bakeStartedAt"].is_string())
        },
    )
    .await;
    let deployments: Api<Deployment> = Api::namespaced(sc.client.clone(), n);
    assert_eq!(
        e2e::image_of(&deployments, "a").await,
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
    r.assert_prints(&format!(
        "kubectl patch releases.signalman.dev train -n {n} --type merge -p '{{\"spec\":{{\"abort\":true}}}}'"
    ));
    assert_eq!(api.get("train").await.unwrap().spec.abort, Some(true));

    let status = rel::wait_phase(&api, "train", "RolledBack", Duration::from_secs(120)).await;
    assert_eq!(status["rollback"]["reason"], "Abort");
    assert_eq!(rel::service(&status, "b").unwrap()["phase"], "Withdrawn");
    assert_eq!(rel::service(&status, "a").unwrap()["phase"], "Restored");
    assert_eq!(
        e2e::image_of(&deployments, "a").await,
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
    sc.end().await;
}

#[tokio::test]
async fn pause_holds_the_step_and_resume_continues_it() {
    let sc = Scenario::start("plugin-pause").await;
    let n = sc.ns();
    sc.deploy_apps(&["web"]).await;
    let train = release("train")
        .defaults(&[(50, 2), (100, 2)])
        .service(svc("web").steps(&[(25, 6), (50, 6), (100, 2)]))
        .build();
    let api = sc.apply(&train).await;
    rel::wait_status(
        &api,
        "train",
        "web baking step 1 at 25%",
        Duration::from_secs(60),
        |s| {
            rel::service(s, "web").is_some_and(|w| {
                w["step"] == 0 && w["weight"] == 25 && w["bakeStartedAt"].is_string()
            })
        },
    )
    .await;

    let r = plugin(&["pause", "train", "-n", n]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.assert_prints("canary weights stay where they are (web at 25%)");
    let paused = rel::wait_phase(&api, "train", "Paused", Duration::from_secs(20)).await;
    assert!(
        paused["hold"].is_null(),
        "a user pause is not a hold: {paused}"
    );

    // Twice the bake passes: a running release would have moved on; a paused one stays.
    let until = Instant::now() + Duration::from_secs(12);
    while Instant::now() < until {
        let s = rel::status(&api, "train").await;
        assert_eq!(rel::phase(&s), "Paused");
        let web = rel::service(&s, "web").unwrap();
        assert_eq!(
            (web["step"].as_i64(), web["weight"].as_i64()),
            (Some(0), Some(25)),
            "moved while paused: {s}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let view = plugin(&["get", "train", "-n", n]).await;
    view.assert_prints("PAUSED by spec.paused");
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
    r.assert_prints("unpauses it (spec.paused false)");
    let done = rel::wait_phase(&api, "train", "Succeeded", Duration::from_secs(90)).await;
    assert_eq!(rel::service(&done, "web").unwrap()["phase"], "Promoted");

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
    sc.end().await;
}

#[tokio::test]
async fn resume_lifts_a_hold_by_its_id() {
    let sc = Scenario::start("plugin-hold").await;
    let n = sc.ns();
    sc.deploy_apps(&["web"]).await;
    // A query that never has data: the first empty result beyond inconclusiveLimit 0 holds.
    let analysis = Analysis {
        interval: Some(Duration::from_secs(1).into()),
        inconclusive_limit: Some(0),
        metrics: vec![Metric {
            name: "checkout-success".to_string(),
            query: format!(r#"sum(no_such_metric{{namespace="{n}"}})"#),
            min: Some(0.99),
            max: None,
            compare: None,
        }],
        ..Analysis::default()
    };
    let train = release("train")
        .service(svc("web").steps(&[(50, 3), (100, 1)]).analysis(analysis))
        .build();
    let api = sc.apply(&train).await;
    let held = rel::wait_status(&api, "train", "hold-1", Duration::from_secs(60), |s| {
        s["hold"]["id"] == "hold-1"
    })
    .await;
    assert_eq!(rel::phase(&held), "Held");

    let view = plugin(&["get", "train", "-n", n]).await;
    assert!(view.stdout.contains("HOLD hold-1"), "{}", view.stdout);
    view.assert_prints(&format!("kubectl signalman resume train -n {n}"));

    let r = plugin(&["resume", "train", "-n", n]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("Release train: lifts hold hold-1 ("),
        "{}",
        r.stdout
    );
    assert_eq!(
        api.get("train").await.unwrap().spec.resume_hold.as_deref(),
        Some("hold-1")
    );
    // Lifted: the step bakes again, and since the metric still has no data the
    // release holds again under a new id (the old id cannot lift it).
    let again = rel::wait_status(&api, "train", "hold-2", Duration::from_secs(60), |s| {
        s["hold"]["id"] == "hold-2"
    })
    .await;
    assert_eq!(again["holds"], 2);
    let tl = rel::timeline(&again);
    assert!(
        rel::first(&tl, "Resumed", "").is_some(),
        "no Resumed entry: {tl:?}"
    );
    sc.end().await;
}

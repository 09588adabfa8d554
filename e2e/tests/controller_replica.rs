//! Controller scenarios in replica-ratio mode (issue 4, scenarios 1 and 4):
//! a chain promotes in dependency order, a diamond moves its middle wave in
//! parallel; plus the API writes a step and an idle minute cost.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams};
use signalman::api::Release;
use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{self as e2e, Scenario};

/// A Release of `services` (name, dependsOn), each to `:v2`.
fn train(name: &str, steps: &[(i32, u64)], services: &[(&str, &[&str])]) -> Release {
    release(name)
        .defaults(steps)
        .services(services.iter().map(|(s, deps)| svc(s).after(deps)))
        .build()
}

/// Every stable Deployment on v2, and no canary Deployment left.
async fn assert_all_promoted(client: &kube::Client, ns: &str, names: &[&str]) {
    let deps: Api<Deployment> = Api::namespaced(client.clone(), ns);
    for n in names {
        let d = deps.get(n).await.unwrap();
        assert_eq!(
            e2e::first_image(&d),
            format!("registry.example/{n}:v2"),
            "Deployment {n}"
        );
    }
    let canaries: Vec<_> = deps
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|d| d.metadata.name)
        .filter(|n| n.ends_with("-canary"))
        .collect();
    assert!(canaries.is_empty(), "canary Deployments left: {canaries:?}");
}

#[tokio::test]
async fn chain_promotes_in_dependency_order() {
    let mut sc = Scenario::start("ctl-chain").await;
    sc.deploy_apps(&["a", "b", "c"]).await;
    let writes_before = sc.operator.api_writes().await;

    let chain = train(
        "chain",
        &[(50, 2), (100, 1)],
        &[("a", &[]), ("b", &["a"]), ("c", &["b"])],
    );
    let api = sc.apply(&chain).await;
    let status = rel::wait_phase(&api, "chain", "Succeeded", Duration::from_secs(120)).await;
    assert_all_promoted(&sc.client, sc.ns(), &["a", "b", "c"]).await;
    for n in ["a", "b", "c"] {
        rel::wait_released(&sc.client, sc.ns(), n).await;
    }

    // b started only after a was promoted, c only after b.
    let tl = rel::timeline(&status);
    let promoted =
        |s| rel::first(&tl, "Promoted", s).unwrap_or_else(|| panic!("{s} not promoted: {tl:?}"));
    let started = |s| {
        rel::first(&tl, "StepStarted", s).unwrap_or_else(|| panic!("{s} never started: {tl:?}"))
    };
    assert!(
        promoted("a") < started("b"),
        "b started before a was promoted: {tl:?}"
    );
    assert!(
        promoted("b") < started("c"),
        "c started before b was promoted: {tl:?}"
    );
    assert!(
        rel::first(&tl, "Succeeded", "").is_some_and(|i| i > promoted("c")),
        "{tl:?}"
    );
    let ready = rel::condition(&status, "Ready").expect("Ready condition");
    assert_eq!(ready["status"], "True");

    // API writes: per step (3 services x 2 steps), and none while idle.
    let writes = sc.operator.api_writes().await - writes_before;
    let steps = 6.0;
    eprintln!(
        "MEASURE chain: {writes} API writes for 3 services x 2 steps = {:.1} writes per step",
        writes / steps
    );
    // Let the final status write's own watch events settle, then stay idle a minute.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_start = sc.operator.api_writes().await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let idle = sc.operator.api_writes().await - idle_start;
    eprintln!("MEASURE idle: {idle} API writes in 60 s after Succeeded");
    assert_eq!(idle, 0.0, "a finished Release must cost no writes");

    assert!(
        sc.operator.terminate().await,
        "the operator did not exit cleanly on SIGTERM"
    );
    sc.end().await;
}

#[tokio::test]
async fn diamond_moves_its_middle_wave_in_parallel() {
    let sc = Scenario::start("ctl-diamond").await;
    sc.deploy_apps(&["a", "b", "c", "d"]).await;
    let diamond = train(
        "diamond",
        &[(50, 3), (100, 1)],
        &[("a", &[]), ("b", &["a"]), ("c", &["a"]), ("d", &["b", "c"])],
    );
    let api = sc.apply(&diamond).await;

    // Seen directly: at one moment b and c both have a canary taking traffic.
    rel::wait_status(
        &api,
        "diamond",
        "b and c progressing at once",
        Duration::from_secs(90),
        |s| {
            ["b", "c"].iter().all(|n| {
                rel::service(s, n)
                    .is_some_and(|x| x["phase"] == "Progressing" && x["weight"].as_i64() > Some(0))
            })
        },
    )
    .await;
    let status = rel::wait_phase(&api, "diamond", "Succeeded", Duration::from_secs(120)).await;
    assert_all_promoted(&sc.client, sc.ns(), &["a", "b", "c", "d"]).await;

    let tl = rel::timeline(&status);
    let at = |r, s| rel::first(&tl, r, s).unwrap_or_else(|| panic!("no {r} for {s}: {tl:?}"));
    // the waves: a, then b and c together, then d
    assert!(at("Promoted", "a") < at("StepStarted", "b"));
    assert!(at("Promoted", "a") < at("StepStarted", "c"));
    assert!(
        at("StepStarted", "b") < at("Promoted", "c"),
        "b waited for c: {tl:?}"
    );
    assert!(
        at("StepStarted", "c") < at("Promoted", "b"),
        "c waited for b: {tl:?}"
    );
    assert!(at("Promoted", "b") < at("StepStarted", "d"));
    assert!(at("Promoted", "c") < at("StepStarted", "d"));
    assert_eq!(
        status["plan"]["waves"].as_array().map(Vec::len),
        Some(3),
        "{}",
        status["plan"]
    );
    sc.end().await;
}

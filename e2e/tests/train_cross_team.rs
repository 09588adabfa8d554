//! Issue 13, "How it is proven" 7: four dependencies between owners, one
//! more than the limit. The Release gets a Warning condition and a Warning
//! Event naming the edges and proposing a split, and `plan` proposes the same
//! split; with the policy's `limits.crossTeam: refuse` it is Stalled before
//! anything moves. The operator's `--cross-team-edges` is the limit when the
//! policy sets none.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use signalman::api::Release;
use signalman_e2e::members;
use signalman_e2e::plugin::plugin;
use signalman_e2e::policy::TestPolicy;
use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{self as e2e, Scenario};

/// shop's checkout and cart each depend on platform's auth and payments:
/// four edges between owners.
fn tangled(policy: Option<&str>) -> Release {
    let b = release("tangled").defaults(&[(50, 1), (100, 1)]);
    let b = match policy {
        Some(p) => b.policy(p),
        None => b,
    };
    b.service(svc("auth").owner("platform"))
        .service(svc("payments").owner("platform"))
        .service(svc("checkout").owner("shop").after(&["auth", "payments"]))
        .service(svc("cart").owner("shop").after(&["auth", "payments"]))
        .build()
}

const APPS: [&str; 4] = ["auth", "payments", "checkout", "cart"];

#[tokio::test]
async fn over_the_limit_the_release_warns_names_the_edges_and_proposes_a_split() {
    let sc = Scenario::start("train-xteam").await;
    sc.deploy_apps(&APPS).await;
    let api = sc.apply(&tangled(None)).await;
    let status = rel::wait_phase(&api, "tangled", "Succeeded", Duration::from_secs(120)).await;

    let warning = rel::condition(&status, "Warning").expect("a Warning condition");
    assert_eq!(warning["status"], "True", "{warning}");
    assert_eq!(warning["reason"], "CrossTeamEdges", "{warning}");
    let message = warning["message"].as_str().unwrap_or_default();
    for part in [
        "4 dependencies between owners, more than the limit 3",
        "checkout -> auth (shop -> platform)",
        "split it into",
    ] {
        assert!(message.contains(part), "{part:?} not in {message:?}");
    }
    assert_eq!(status["crossTeam"]["limit"], 3, "{status}");
    assert_eq!(
        status["crossTeam"]["edges"].as_array().map(Vec::len),
        Some(4)
    );
    // Not a kstatus condition: the Release is Ready all the same.
    assert_eq!(rel::condition(&status, "Ready").unwrap()["status"], "True");
    let events = members::events(&sc.client, sc.ns(), "tangled").await;
    let warned: Vec<_> = events
        .iter()
        .filter(|(_, r, _)| r == "CrossTeamEdges")
        .collect();
    assert_eq!(warned.len(), 1, "told once: {events:#?}");
    assert_eq!(warned[0].0, "Warning");
    assert!(warned[0].2.contains("split it into"), "{warned:?}");
    sc.end().await;
}

#[tokio::test]
async fn plan_proposes_the_split() {
    let client = e2e::client().await;
    let ns = e2e::TestNamespace::create(&client, "train-xplan").await;
    e2e::deploy_apps(&client, ns.name(), &APPS).await;
    let file = e2e::scratch_dir().join(format!("{}-tangled.yaml", ns.name()));
    std::fs::write(&file, serde_yaml::to_string(&tangled(None)).unwrap()).unwrap();
    let run = plugin(&["plan", "-f", file.to_str().unwrap(), "-n", ns.name()]).await;
    assert_eq!(
        run.code, 0,
        "a warning is no problem: {}{}",
        run.stdout, run.stderr
    );
    run.assert_prints("cross-team edges  4, more than the limit 3");
    run.assert_prints("checkout -> auth (shop -> platform)");
    run.assert_prints("proposed split");
    run.assert_prints("Warning (CrossTeamEdges)");
    ns.delete().await;
}

#[tokio::test]
async fn the_operator_flag_is_the_limit_when_the_policy_sets_none() {
    let sc = Scenario::start_with("train-xflag", |l| l.arg("--cross-team-edges=4")).await;
    sc.deploy_apps(&APPS).await;
    let api = sc.apply(&tangled(None)).await;
    let status = rel::wait_phase(&api, "tangled", "Succeeded", Duration::from_secs(120)).await;
    assert!(
        rel::condition(&status, "Warning").is_none_or(|c| c["status"] != "True"),
        "4 edges are within the operator's limit 4: {status}"
    );
    let events = members::events(&sc.client, sc.ns(), "tangled").await;
    assert!(
        !events.iter().any(|(_, r, _)| r == "CrossTeamEdges"),
        "{events:#?}"
    );
    sc.end().await;
}

#[tokio::test]
async fn with_refuse_the_release_is_stalled_and_nothing_changes() {
    let sc = Scenario::start("train-xrefuse").await;
    sc.deploy_apps(&APPS).await;
    let pol = TestPolicy::create(
        &sc.client,
        &format!("{}-limits", sc.ns()),
        "limits: {crossTeamEdges: 3, crossTeam: refuse}\n",
    )
    .await;
    let api = sc.apply(&tangled(Some(pol.name()))).await;
    let status = rel::wait_status(&api, "tangled", "stalled", Duration::from_secs(60), |s| {
        rel::condition(s, "Stalled").is_some_and(|c| c["status"] == "True")
    })
    .await;
    let stalled = rel::condition(&status, "Stalled").unwrap();
    assert_eq!(stalled["reason"], "CrossTeamLimit", "{stalled}");
    let message = stalled["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("4 dependencies between owners, more than the limit 3")
            && message.contains(&format!(
                "or raise limits.crossTeamEdges of ReleasePolicy {}",
                pol.name()
            )),
        "{message}"
    );
    assert_eq!(rel::phase(&status), "Pending", "{status}");
    // And it stays so: nothing moves, nothing is written.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let r = rel::get(&api, "tangled").await;
    assert_eq!(rel::phase(&r["status"]), "Pending");
    assert!(r["status"]["startedAt"].is_null(), "{}", r["status"]);
    assert!(r["metadata"]["finalizers"].is_null(), "{}", r["metadata"]);
    let deps: Api<Deployment> = Api::namespaced(sc.client.clone(), sc.ns());
    for n in APPS {
        assert_eq!(
            e2e::image_of(&deps, n).await,
            format!("registry.example/{n}:v1")
        );
        assert!(
            deps.get_opt(&format!("{n}-canary"))
                .await
                .unwrap()
                .is_none()
        );
    }
    sc.end().await;
    pol.delete(&e2e::client().await).await;
}

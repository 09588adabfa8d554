//! Issue 14, "How it is proven" 5: the rollback window. A succeeded release
//! keeps its baselines for the policy's `rollbackWindow` (default 24h).
//!
//! - Within it, `spec.rollback: true` (with the annotation naming who asks,
//!   as `kubectl signalman rollback` sets them) reverses the whole train as a
//!   breach would: the flag off first, the services restored in reverse
//!   dependency order, the migration's rollback Job run; RolledBack, reason
//!   Manual, with who asked.
//! - With a window of seconds, it closes: the baseline ControllerRevisions
//!   are deleted, and a later `spec.rollback: true` is refused and changes
//!   nothing.
//! - A Deployment changed by hand after success blocks the rollback, and the
//!   refusal names it and what changed.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::Value;
use signalman_e2e::policy::TestPolicy;
use signalman_e2e::release::{self as rel, flag, migration, release, svc};
use signalman_e2e::{self as e2e, Scenario, members};

fn at(tl: &[(String, String)], reason: &str, service: &str) -> usize {
    rel::first(tl, reason, service).unwrap_or_else(|| panic!("no {reason} {service}: {tl:?}"))
}

async fn assert_images(sc: &Scenario, want: &[(&str, &str)]) {
    let deps: Api<Deployment> = Api::namespaced(sc.client.clone(), sc.ns());
    for (name, tag) in want {
        assert_eq!(
            e2e::image_of(&deps, name).await,
            format!("registry.example/{name}:{tag}"),
            "{name}"
        );
    }
}

/// Wait until the Release records a refused rollback; returns its status.
async fn refused(api: &Api<signalman::api::Release>, name: &str) -> Value {
    rel::wait_status(
        api,
        name,
        "the rollback refused",
        Duration::from_secs(30),
        |s| s["rollbackWindow"]["refused"].is_string(),
    )
    .await
}

/// The refusal is told as a Warning condition and one Warning Event, and the
/// release stays Succeeded.
async fn assert_refusal_told(sc: &Scenario, status: &Value, name: &str) {
    assert_eq!(rel::phase(status), "Succeeded", "{status}");
    let warning = rel::condition(status, "Warning").unwrap_or(&Value::Null);
    assert_eq!(warning["status"], "True", "{status}");
    assert_eq!(warning["reason"], "RollbackRefused", "{status}");
    let refusal = status["rollbackWindow"]["refused"].as_str().unwrap();
    let events = members::events(&sc.client, sc.ns(), name).await;
    let told: Vec<_> = events
        .iter()
        .filter(|(t, r, _)| t == "Warning" && r == "RollbackRefused")
        .collect();
    assert_eq!(told.len(), 1, "{events:#?}");
    assert!(told[0].2.contains(refusal), "{told:?} vs {refusal}");
}

#[tokio::test]
async fn a_manual_rollback_within_the_window_reverses_the_whole_train() {
    let sc = Scenario::start("rbw-manual").await;
    sc.deploy_apps(&["api", "web"]).await;
    members::create_config_map(&sc.client, sc.ns(), "web-flags", &[("new-cart", "off")]).await;
    let train = release("undo")
        .defaults(&[(50, 2), (100, 1)])
        .service(migration("db"))
        .service(svc("api").after(&["db"]))
        .service(svc("web").after(&["api"]))
        .service(
            flag("new-cart", "web-flags", &[("new-cart", "on")], 1)
                .after(&["web"])
                .unmeasured("the flag shows the new cart to staff only"),
        )
        .build();
    let api = sc.apply(&train).await;
    let done = rel::wait_phase(&api, "undo", "Succeeded", Duration::from_secs(120)).await;
    assert!(done["rollbackWindow"]["until"].is_string(), "{done}");
    assert_images(&sc, &[("api", "v2"), ("web", "v2")]).await;

    rel::ask_rollback(&api, "undo", "alice@example.com").await;
    // From Succeeded, which `wait_phase` takes for the end.
    let status = rel::wait_status(&api, "undo", "RolledBack", Duration::from_secs(90), |s| {
        ["RolledBack", "Failed"].contains(&rel::phase(s))
    })
    .await;
    assert_eq!(rel::phase(&status), "RolledBack", "{status}");
    let cause = &status["rollback"];
    assert_eq!(cause["reason"], "Manual", "{cause}");
    assert_eq!(cause["requestedBy"], "alice@example.com", "{cause}");
    assert!(
        cause["message"]
            .as_str()
            .unwrap_or_default()
            .contains("rolled back by alice@example.com"),
        "{cause}"
    );
    let tl = rel::timeline(&status);
    let order = [
        at(&tl, "Succeeded", ""),
        at(&tl, "Manual", ""),
        at(&tl, "FlagRestored", "new-cart"),
        at(&tl, "Restored", "web"),
        at(&tl, "Restored", "api"),
        tl.iter()
            .rposition(|(r, s)| r == "JobStarted" && s == "db")
            .unwrap(),
        at(&tl, "Restored", "db"),
        at(&tl, "RolledBack", ""),
    ];
    assert!(order.is_sorted(), "{order:?} {tl:?}");
    assert_images(&sc, &[("api", "v1"), ("web", "v1")]).await;
    let flags = members::config_map_data(&sc.client, sc.ns(), "web-flags").await;
    assert_eq!(flags.get("new-cart").map(String::as_str), Some("off"));
    let db = rel::service(&status, "db").unwrap();
    assert_eq!(db["rollbackJob"]["result"], "Succeeded", "{db}");
    assert_eq!(
        status["report"]["rollback"]["requestedBy"],
        "alice@example.com"
    );
    sc.end().await;
}

#[tokio::test]
async fn after_the_window_the_baselines_are_gone_and_a_rollback_is_refused() {
    let sc = Scenario::start("rbw-closed").await;
    sc.deploy_apps(&["api"]).await;
    let pol = TestPolicy::create(
        &sc.client,
        &format!("{}-window", sc.ns()),
        "rollbackWindow: 3s\n",
    )
    .await;
    let train = release("closed")
        .defaults(&[(50, 2), (100, 1)])
        .policy(pol.name())
        .service(svc("api"))
        .build();
    let api = sc.apply(&train).await;
    rel::wait_phase(&api, "closed", "Succeeded", Duration::from_secs(90)).await;
    assert_eq!(
        members::baselines(&sc.client, sc.ns()).await,
        ["closed-api-baseline"]
    );

    let status = rel::wait_status(
        &api,
        "closed",
        "the window closed",
        Duration::from_secs(30),
        |s| s["rollbackWindow"]["closedAt"].is_string(),
    )
    .await;
    assert!(
        rel::first(&rel::timeline(&status), "RollbackWindowClosed", "").is_some(),
        "{status}"
    );
    assert!(
        status["report"]["rollbackWindow"]["closedAt"].is_string(),
        "the report says the window closed: {status}"
    );
    e2e::wait_for("the baselines deleted", Duration::from_secs(10), || async {
        Ok(members::baselines(&sc.client, sc.ns())
            .await
            .is_empty()
            .then_some(()))
    })
    .await;

    rel::ask_rollback(&api, "closed", "bob").await;
    let status = refused(&api, "closed").await;
    let refusal = status["rollbackWindow"]["refused"].as_str().unwrap();
    assert!(refusal.contains("rollback window closed"), "{refusal}");
    assert_refusal_told(&sc, &status, "closed").await;
    // Nothing moved, and nothing will.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = rel::status(&api, "closed").await;
    assert_eq!(rel::phase(&later), "Succeeded", "{later}");
    assert!(later["rollback"].is_null(), "{later}");
    assert_images(&sc, &[("api", "v2")]).await;
    sc.end().await;
    pol.delete(&e2e::client().await).await;
}

#[tokio::test]
async fn a_deployment_changed_after_success_blocks_the_rollback() {
    let sc = Scenario::start("rbw-changed").await;
    sc.deploy_apps(&["api", "web"]).await;
    let train = release("changed")
        .defaults(&[(50, 2), (100, 1)])
        .service(svc("api"))
        .service(svc("web").after(&["api"]))
        .build();
    let api = sc.apply(&train).await;
    rel::wait_phase(&api, "changed", "Succeeded", Duration::from_secs(90)).await;

    // Someone ships another web by hand.
    let deps: Api<Deployment> = Api::namespaced(sc.client.clone(), sc.ns());
    deps.patch(
        "web",
        &PatchParams::default(),
        &Patch::Strategic(
            serde_json::json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "registry.example/web:v9"}
            ]}}}}),
        ),
    )
    .await
    .unwrap();

    rel::ask_rollback(&api, "changed", "alice").await;
    let status = refused(&api, "changed").await;
    let refusal = status["rollbackWindow"]["refused"].as_str().unwrap();
    for part in [
        "web",
        r#"Deployment "web" (service web) was changed after the release succeeded: container "app" image changed from "registry.example/web:v2" to "registry.example/web:v9" by "#,
    ] {
        assert!(refusal.contains(part), "{part:?} not in {refusal:?}");
    }
    assert!(
        refusal.contains(r#"Deployment "web""#) && !refusal.contains(r#"Deployment "api""#),
        "{refusal}"
    );
    assert_refusal_told(&sc, &status, "changed").await;
    assert!(status["rollback"].is_null(), "{status}");
    assert_images(&sc, &[("api", "v2"), ("web", "v9")]).await;
    sc.end().await;
}

//! Issue 10, items 3 and 4: what the API server would refuse on a write is
//! refused before anything moves; a write it refuses anyway holds the release
//! with its message and the canary at 0 %; a named env var replaces the user's
//! `valueFrom`; a Release refused before it started blocks nobody and ends on
//! abort.

use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment};
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use signalman::api::Release;
use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{self as e2e, Scenario, WebApp};

const SECS_30: Duration = Duration::from_secs(30);

/// The API server's answer to creating `r`: its message when refused.
async fn refused_on_create(api: &Api<Release>, r: &Release) -> String {
    match api.create(&PostParams::default(), r).await {
        Ok(_) => panic!("Release {} was accepted", r.name_any()),
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422, "{s:?}");
            s.message
        }
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn what_a_write_would_be_refused_for_is_refused_before_anything_moves() {
    let sc = Scenario::start("ctl-refused-early").await;
    sc.deploy(&[WebApp::new("a").replicas(1)]).await;
    let deployments = Api::<Deployment>::namespaced(sc.client.clone(), sc.ns());
    let before = deployments.get("a").await.unwrap().resource_version();
    let api = sc.releases();
    let steps = &[(50, 1), (100, 1)];

    // Refused by the API server itself: nothing to stall, nothing stored.
    let long_name = release(&"r".repeat(64))
        .defaults(steps)
        .service(svc("a"))
        .build();
    let message = refused_on_create(&api, &long_name).await;
    assert!(message.contains("metadata.name: at most 63"), "{message}");
    let long_gateway = release("long-gateway")
        .defaults(steps)
        .service(svc("a").route("shop").gateway_service(&"s".repeat(57)))
        .build();
    let message = refused_on_create(&api, &long_gateway).await;
    assert!(message.contains("<service>-canary"), "{message}");
    let empty_image = release("empty-image")
        .defaults(steps)
        .service(svc("a").image("app", ""))
        .build();
    let message = refused_on_create(&api, &empty_image).await;
    assert!(message.contains("change.images"), "{message}");

    // Too costly for a CEL rule: the controller refuses it, naming the field.
    sc.apply(
        &release("bad-env")
            .defaults(steps)
            .service(svc("a").env("app", "A=B", "1"))
            .build(),
    )
    .await;
    let status = rel::wait_status(&api, "bad-env", "Stalled", SECS_30, |s| {
        rel::condition(s, "Stalled").is_some_and(|c| c["status"] == "True")
    })
    .await;
    let stalled = rel::condition(&status, "Stalled").unwrap();
    assert_eq!(stalled["reason"], "InvalidSpec");
    let message = stalled["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("spec.services[0].change.env.app.A=B")
            && message.contains("not an environment variable name"),
        "{message}"
    );
    assert_eq!(rel::phase(&status), "Pending");

    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = deployments.get("a").await.unwrap().resource_version();
    assert_eq!(before, after, "the Deployment was changed");
    assert!(
        deployments.get_opt("a-canary").await.unwrap().is_none(),
        "a canary was created"
    );
    let revisions = Api::<ControllerRevision>::namespaced(sc.client.clone(), sc.ns())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(revisions.items.is_empty(), "a baseline was recorded");
    sc.end().await;
}

/// A rule the preflight cannot know: an admission policy that refuses a
/// canary Deployment of more than one replica.
fn canary_policy(ns: &str) -> String {
    format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {ns}-canary-size}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: [apps]
      apiVersions: [v1]
      operations: [CREATE, UPDATE]
      resources: [deployments]
  validations:
  - expression: "!object.metadata.name.endsWith('-canary') || object.spec.replicas <= 1"
    message: "canary Deployments may run at most 1 replica here"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {ns}-canary-size}}
spec:
  policyName: {ns}-canary-size
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {{kubernetes.io/metadata.name: {ns}}}
"#
    )
}

#[tokio::test]
async fn a_write_the_api_server_refuses_holds_with_its_message_and_the_canary_at_zero() {
    let sc = Scenario::start("ctl-refused-write").await;
    let ns = sc.ns().to_owned();
    e2e::apply_yaml(&sc.client, None, &canary_policy(&ns)).await;
    sc.deploy(&[WebApp::new("a").replicas(2)]).await;
    // The policy is in force once what it forbids is refused.
    let probe = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: probe-canary}\nspec:\n  replicas: 2\n  \
         selector: {matchLabels: {app: probe}}\n  template:\n    metadata: {labels: {app: probe}}\n    \
         spec: {containers: [{name: app, image: x}]}\n";
    e2e::wait_for("the admission policy in force", SECS_30, || async {
        let refused = e2e::try_apply_yaml(&sc.client, Some(&ns), probe)
            .await
            .is_err();
        if !refused {
            // Admitted: take it away again before the next try.
            let _ = Api::<Deployment>::namespaced(sc.client.clone(), &ns)
                .delete("probe-canary", &Default::default())
                .await;
        }
        anyhow::Ok(refused.then_some(()))
    })
    .await;

    // 10 %: one canary pod beside two, allowed; 50 %: two, refused.
    let api = sc
        .apply(
            &release("held")
                .defaults(&[(10, 1), (50, 1), (100, 1)])
                .service(svc("a"))
                .build(),
        )
        .await;
    let status = rel::wait_status(&api, "held", "held", Duration::from_secs(60), |s| {
        s["hold"]["reason"] == "WriteRefused"
    })
    .await;
    assert_eq!(rel::phase(&status), "Held");
    let message = status["hold"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("the API server refused setting the canary weight to 50 for a")
            && message.contains("canary Deployments may run at most 1 replica here")
            && message.contains("a-canary"),
        "{message}"
    );
    let deployments = Api::<Deployment>::namespaced(sc.client.clone(), &ns);
    e2e::wait_for("the canary at 0 replicas", SECS_30, || async {
        let canary = deployments.get("a-canary").await?;
        anyhow::Ok((canary.spec.and_then(|s| s.replicas) == Some(0)).then_some(()))
    })
    .await;
    let events = Api::<Event>::namespaced(sc.client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("Held")
                && e.note
                    .as_deref()
                    .is_some_and(|n| n.contains("WriteRefused"))),
        "no Held Event"
    );
    // Not retried in a loop: once the canary's pods are gone the status
    // settles, and the hold is the one hold.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let version = rel::get(&api, "held").await["metadata"]["resourceVersion"].clone();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let now = rel::get(&api, "held").await;
    assert_eq!(
        now["metadata"]["resourceVersion"],
        version,
        "{}",
        e2e::pretty(&now["status"])
    );
    assert_eq!(now["status"]["holds"], 1);
    assert_eq!(now["status"]["hold"]["id"], "hold-1");
    let name = format!("{ns}-canary-size");
    Api::<ValidatingAdmissionPolicyBinding>::all(sc.client.clone())
        .delete(&name, &Default::default())
        .await
        .unwrap();
    Api::<ValidatingAdmissionPolicy>::all(sc.client.clone())
        .delete(&name, &Default::default())
        .await
        .unwrap();
    sc.end().await;
}

#[tokio::test]
async fn a_named_env_var_replaces_the_users_value_from_in_canary_and_stable() {
    let sc = Scenario::start("ctl-value-from").await;
    let yaml = WebApp::new("a").replicas(1).yaml().replace(
        "        env:\n",
        "        env:\n        - {name: MODE, valueFrom: {fieldRef: {fieldPath: metadata.name}}}\n        \
         - {name: KEEP, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}\n",
    );
    sc.apply_yaml(&yaml).await;
    let deployments = Api::<Deployment>::namespaced(sc.client.clone(), sc.ns());
    e2e::wait_deployment_ready(&sc.client, sc.ns(), "a", 1, Duration::from_secs(60)).await;
    let api = sc
        .apply(
            &release("value-from")
                .defaults(&[(50, 1), (100, 1)])
                .service(svc("a").env("app", "MODE", "fast"))
                .build(),
        )
        .await;
    let env_of = |d: &Deployment| {
        d.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .env
            .clone()
            .unwrap_or_default()
    };
    let canary = e2e::wait_for("the canary", SECS_30, || async {
        anyhow::Ok(deployments.get_opt("a-canary").await?)
    })
    .await;
    let check = |env: Vec<k8s_openapi::api::core::v1::EnvVar>, what: &str| {
        let mode = env.iter().find(|e| e.name == "MODE").unwrap();
        assert_eq!(mode.value.as_deref(), Some("fast"), "{what}: {env:?}");
        assert!(mode.value_from.is_none(), "{what}: {env:?}");
        let keep = env.iter().find(|e| e.name == "KEEP").unwrap();
        assert!(
            keep.value.is_none() && keep.value_from.is_some(),
            "{what}: {env:?}"
        );
    };
    check(env_of(&canary), "canary");
    rel::wait_phase(&api, "value-from", "Succeeded", Duration::from_secs(90)).await;
    check(env_of(&deployments.get("a").await.unwrap()), "promoted");
    sc.end().await;
}

#[tokio::test]
async fn a_release_refused_before_it_started_blocks_nobody_and_ends_on_abort() {
    let sc = Scenario::start("ctl-refused-claim").await;
    sc.deploy(&[WebApp::new("a").replicas(1)]).await;
    let api = sc
        .apply(
            &release("broken")
                .defaults(&[(50, 1), (100, 1)])
                .service(svc("a").env("app", "A=B", "1"))
                .build(),
        )
        .await;
    rel::wait_status(&api, "broken", "refused", SECS_30, |s| {
        rel::condition(s, "Stalled").is_some_and(|c| c["reason"] == "InvalidSpec")
    })
    .await;
    // Younger, valid, on the same Deployment: it runs.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    sc.apply(
        &release("fixed")
            .defaults(&[(50, 1), (100, 1)])
            .service(svc("a"))
            .build(),
    )
    .await;
    rel::wait_phase(&api, "fixed", "Succeeded", Duration::from_secs(90)).await;

    // Aborting the refused one ends it, although it is still invalid.
    rel::patch_spec(&api, "broken", |s| s.abort = Some(true)).await;
    let status = rel::wait_phase(&api, "broken", "RolledBack", SECS_30).await;
    assert_eq!(
        status["message"],
        "aborted before it started; nothing was changed"
    );
    sc.end().await;
}

#[tokio::test]
async fn a_rollback_puts_the_users_value_from_back() {
    let sc = Scenario::start("ctl-value-from-back").await;
    let yaml = WebApp::new("a").replicas(1).yaml().replace(
        "        env:\n",
        "        env:\n        - {name: MODE, valueFrom: {fieldRef: {fieldPath: metadata.name}}}\n",
    );
    sc.apply_yaml(&yaml).await;
    sc.deploy(&[WebApp::new("b").replicas(1)]).await;
    let deployments = Api::<Deployment>::namespaced(sc.client.clone(), sc.ns());
    e2e::wait_deployment_ready(&sc.client, sc.ns(), "a", 1, Duration::from_secs(60)).await;
    // a is promoted with MODE=fast; b, after it, breaches: a is restored.
    let api = sc
        .apply(
            &release("value-from-back")
                .defaults(&[(50, 1), (100, 1)])
                .service(svc("a").env("app", "MODE", "fast"))
                .service(svc("b").after(&["a"]).error_rate("0.5"))
                .build(),
        )
        .await;
    let status = rel::wait_phase(
        &api,
        "value-from-back",
        "RolledBack",
        Duration::from_secs(90),
    )
    .await;
    assert_eq!(rel::service(&status, "a").unwrap()["phase"], "Restored");
    let a = deployments.get("a").await.unwrap();
    let env = a.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap_or_default();
    let mode = env.iter().find(|e| e.name == "MODE").unwrap();
    assert!(mode.value.is_none() && mode.value_from.is_some(), "{env:?}");
    sc.end().await;
}

//! Controller scenario 7 (issues 4 and 10): every input the controller must refuse
//! gets the right `Stalled` condition, an Event, and changes nothing: the
//! resourceVersion of every Deployment, Service, HTTPRoute, ConfigMap, Job and
//! ControllerRevision in the namespace stays the same and no baseline is recorded.

use std::time::Duration;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use signalman::api::{Analysis, Metric, Release};
use signalman_e2e::members;
use signalman_e2e::release::{self as rel, Svc, release, svc};
use signalman_e2e::{Scenario, WebApp};

fn refused(name: &str, services: &[Svc]) -> Release {
    release(name)
        .defaults(&[(50, 1), (100, 1)])
        .services(services.iter().cloned())
        .build()
}

#[tokio::test]
async fn invalid_inputs_stall_with_a_specific_message_and_change_nothing() {
    let sc = Scenario::start("ctl-invalid").await;
    sc.apply_yaml(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: shop}\nspec:\n  rules:\n  - backendRefs: [{name: b, port: 80}]\n",
    )
    .await;
    sc.deploy(&["a", "b"].map(|n| WebApp::new(n).replicas(1)))
        .await;
    let before = members::resource_versions(&sc.client, sc.ns()).await;

    // A service whose new version is `x:v2`.
    let x = |name: &str, deployment: &str| svc(name).deployment(deployment).image("app", "x:v2");
    // (release, its services, reason, what the message must say)
    let cases: Vec<(&str, Vec<Svc>, &str, Vec<&str>)> = vec![
        (
            "unknown-dep",
            vec![x("a", "gone-1").after(&["ghost"])],
            "InvalidPlan",
            vec!["spec.services[0].dependsOn", "ghost"],
        ),
        (
            "cycle",
            vec![
                x("a", "gone-2").after(&["b"]),
                x("b", "gone-3").after(&["a"]),
            ],
            "InvalidPlan",
            vec!["dependency cycle", "a -> b -> a"],
        ),
        (
            "no-deployment",
            vec![x("a", "nope")],
            "DeploymentNotFound",
            vec![
                "spec.services[0].deployment",
                "Deployment \"nope\" not found",
            ],
        ),
        (
            "no-container",
            vec![svc("a").image("sidecar", "x:v2")],
            "ContainerNotFound",
            vec!["sidecar", "app"],
        ),
        (
            "no-route",
            vec![x("b", "b").route("ghost")],
            "RouteNotFound",
            vec!["ghost"],
        ),
        // The API server cannot parse PromQL: the controller does, before
        // anything moves, and stalls with the parser's words and the field.
        (
            "bad-query",
            vec![x("a", "gone-4").analysis(Analysis {
                metrics: vec![Metric {
                    name: "errors".into(),
                    query: r#"sum(rate(http_requests_total{service="{{service}}"}[1m])"#.into(),
                    min: None,
                    max: Some(0.01),
                    compare: None,
                }],
                ..Default::default()
            })],
            "InvalidSpec",
            vec![
                "spec.services[0].analysis.metrics[0].query",
                "does not parse as PromQL: unclosed left parenthesis",
            ],
        ),
    ];
    for (name, services, _, _) in &cases {
        sc.apply(&refused(name, services)).await;
    }
    // A valid Release for a Deployment that an older, unfinished Release lists
    // first. The refused ones above list it too, but hold nothing: they will
    // not run as they are. The older valid one, paused before it started, does.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    sc.apply(
        &release("first")
            .defaults(&[(50, 1), (100, 1)])
            .service(x("a", "a"))
            .paused()
            .build(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    sc.apply(&refused("late", &[x("a", "a")])).await;

    let api = sc.releases();
    let mut all = cases.clone();
    all.push((
        "late",
        Vec::new(),
        "DeploymentClaimed",
        vec![
            "is claimed by Release \"first\"",
            "abort it (spec.abort: true)",
        ],
    ));
    for (name, _, reason, says) in &all {
        let status = rel::wait_stalled(&api, name, &format!("Stalled={reason}")).await;
        let stalled = rel::condition(&status, "Stalled").unwrap();
        assert_eq!(stalled["reason"], *reason, "{name}: {stalled}");
        let message = stalled["message"].as_str().unwrap_or("");
        for s in says {
            assert!(
                message.contains(s),
                "{name}: message {message:?} does not say {s:?}"
            );
        }
        assert_eq!(rel::phase(&status), "Pending", "{name}");
    }

    // Give the operator time to do anything it might (it must not), then compare.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = members::resource_versions(&sc.client, sc.ns()).await;
    assert_eq!(
        before, after,
        "the controller changed objects for invalid Releases"
    );
    let revisions = Api::<ControllerRevision>::namespaced(sc.client.clone(), sc.ns())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        revisions.items.is_empty(),
        "a baseline was recorded for an invalid Release"
    );

    // Each refusal is also an Event on its Release.
    let events = Api::<Event>::namespaced(sc.client.clone(), sc.ns())
        .list(&ListParams::default())
        .await
        .unwrap();
    for (name, _, _, _) in &all {
        assert!(
            events.items.iter().any(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                    && e.type_.as_deref() == Some("Warning")
            }),
            "no Warning Event for Release {name}"
        );
    }
    sc.end().await;
}

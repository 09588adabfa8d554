//! Issue 13, "How it is proven" 5: api (new code, dark) -> a flag that turns
//! the feature on. The ConfigMap's keys change only once api is promoted; the
//! feature misbehaves once on (the app reading the flag, `checkout`, starts
//! failing), the flag's bake breaches, and the keys are put back first (the
//! fastest mitigation), then api is restored.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use signalman::api::{Analysis, Metric};
use signalman_e2e::members;
use signalman_e2e::release::{self as rel, flag, release, svc};
use signalman_e2e::{self as e2e, Scenario, WebApp};

/// The error rate of every `checkout` pod: what the feature behind the flag breaks.
const CHECKOUT_ERRORS: &str = r#"sum(rate(sim_http_requests_total{namespace="{{namespace}}",service="checkout",code="500"}[5s])) / sum(rate(sim_http_requests_total{namespace="{{namespace}}",service="checkout"}[5s]))"#;

#[tokio::test]
async fn the_flag_goes_on_after_its_code_and_comes_off_first() {
    let sc = Scenario::start("train-flag").await;
    sc.deploy(&[WebApp::new("api"), WebApp::new("checkout")])
        .await;
    members::create_config_map(
        &sc.client,
        sc.ns(),
        "checkout-flags",
        &[("checkout-v2", "off"), ("theme", "dark")],
    )
    .await;
    let analysis = Analysis {
        metrics: vec![Metric {
            name: "checkout-errors".into(),
            query: CHECKOUT_ERRORS.into(),
            min: None,
            max: Some(0.05),
            compare: None,
        }],
        ..rel::error_rate_analysis(1)
    };
    let train = release("flag")
        .defaults(&[(50, 3), (100, 1)])
        .service(svc("api").dark())
        .service(
            flag(
                "checkout-v2",
                "checkout-flags",
                &[("checkout-v2", "on"), ("new-cart", "true")],
                60,
            )
            .after(&["api"])
            .analysis(analysis),
        )
        .build();
    let api = sc.apply(&train).await;

    // The keys change only after api is promoted.
    let on = e2e::wait_for("the flag on", Duration::from_secs(90), || async {
        let data = members::config_map_data(&sc.client, sc.ns(), "checkout-flags").await;
        Ok((data.get("checkout-v2").map(String::as_str) == Some("on")).then_some(data))
    })
    .await;
    let status = rel::status(&api, "flag").await;
    assert_eq!(
        rel::service(&status, "api").unwrap()["phase"],
        "Promoted",
        "the flag went on before its code was promoted: {status}"
    );
    assert_eq!(on.get("new-cart").map(String::as_str), Some("true"));
    assert_eq!(
        on.get("theme").map(String::as_str),
        Some("dark"),
        "other keys untouched"
    );
    let flag_status = rel::service(&status, "checkout-v2").unwrap();
    assert_eq!(
        flag_status["flagBaseline"]["values"]["checkout-v2"], "off",
        "{flag_status}"
    );
    assert_eq!(
        flag_status["flagBaseline"]["absent"][0], "new-cart",
        "{flag_status}"
    );

    // The feature breaks checkout once on.
    let deps: Api<Deployment> = Api::namespaced(sc.client.clone(), sc.ns());
    deps.patch(
        "checkout",
        &PatchParams::default(),
        &Patch::Strategic(
            serde_json::json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "env": [{"name": "SIM_ERROR_RATE", "value": "0.5"}]}
            ]}}}}),
        ),
    )
    .await
    .unwrap();

    let status = rel::wait_phase(&api, "flag", "RolledBack", Duration::from_secs(120)).await;
    let tl = rel::timeline(&status);
    let at =
        |r: &str, s: &str| rel::first(&tl, r, s).unwrap_or_else(|| panic!("no {r} {s}: {tl:?}"));
    assert!(
        at("Promoted", "api") < at("FlagSet", "checkout-v2"),
        "{tl:?}"
    );
    assert!(
        at("FlagSet", "checkout-v2") < at("MeasurementFailed", "checkout-v2"),
        "{tl:?}"
    );
    assert!(
        at("Breach", "") < at("FlagRestored", "checkout-v2"),
        "{tl:?}"
    );
    assert!(
        at("FlagRestored", "checkout-v2") < at("Restored", "api"),
        "the flag must come off before the code is restored: {tl:?}"
    );
    assert_eq!(status["rollback"]["service"], "checkout-v2", "{status}");
    assert_eq!(
        rel::service(&status, "checkout-v2").unwrap()["phase"],
        "Restored"
    );
    assert_eq!(rel::service(&status, "api").unwrap()["phase"], "Restored");

    // The keys are as they were: the value back, the absent key gone again.
    let data = members::config_map_data(&sc.client, sc.ns(), "checkout-flags").await;
    assert_eq!(
        data.into_iter().collect::<Vec<_>>(),
        [
            ("checkout-v2".to_string(), "off".to_string()),
            ("theme".to_string(), "dark".to_string())
        ]
    );
    assert_eq!(e2e::image_of(&deps, "api").await, "registry.example/api:v1");
    sc.end().await;
}

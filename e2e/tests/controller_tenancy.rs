//! Issue 15: a Release cannot read another team's series, nor make the
//! operator send requests to an address the platform team did not allow.
//!
//! The operator runs with `--enforce-namespace` and an allow-list that does
//! not hold the test's listener. Another namespace runs a busy service whose
//! series the local Prometheus holds (the traffic simulator labels each with
//! its namespace). A Release naming that namespace, and one naming the
//! listener as its Prometheus, are refused before anything moves: nothing in
//! the namespace changes and the listener is never connected to. A Release
//! whose query selects the other team's service without naming a namespace
//! runs, and measures 0: its query was confined to its own namespace.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::apps::v1::ControllerRevision;
use kube::api::{Api, ListParams};
use signalman::api::{Analysis, Metric};
use signalman_e2e::members::resource_versions;
use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{self as e2e, Prometheus, Scenario, TestNamespace};

/// One metric, measured every second, no failure tolerated.
fn only(metric: &str, query: &str, max: f64) -> Analysis {
    Analysis {
        metrics: vec![Metric {
            name: metric.into(),
            query: query.into(),
            min: None,
            max: Some(max),
            compare: None,
        }],
        ..rel::error_rate_analysis(0)
    }
}

#[tokio::test]
async fn a_release_reads_only_its_namespace_and_queries_only_allowed_prometheus() {
    // The address no Release may use: a listener that counts connections.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let forbidden = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    let accept = tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });

    let sc = Scenario::start_with("ctl-tenancy", |l| {
        l.arg("--enforce-namespace")
            .arg("--prometheus-allowed-address=http://127.0.0.1:1")
    })
    .await;
    let (a, client) = (sc.ns().to_owned(), sc.client.clone());
    // Another team's namespace, with a busy service of its own.
    let other = TestNamespace::create(&client, "ctl-tenancy-b").await;
    let b = other.name().to_owned();
    e2e::deploy_apps(&client, &b, &["bweb"]).await;
    sc.deploy_apps(&["web"]).await;
    // Its series are there to read, for anyone who may.
    let prom = Prometheus::from_env().await;
    let theirs =
        format!(r#"sum(rate(sim_http_requests_total{{namespace="{b}",service="bweb"}}[5s]))"#);
    let rate = prom
        .wait_for_value(&theirs, Duration::from_secs(60), |v| v > 1.0)
        .await;
    eprintln!("namespace {b}'s bweb serves {rate:.1} requests/s");
    let before = resource_versions(&client, &a).await;

    let foreign = release("foreign")
        .defaults(&[(50, 1), (100, 1)])
        .service(svc("web").analysis(only("theirs", &theirs, 1e9)))
        .build();
    let forgery = release("forgery")
        .defaults(&[(50, 1), (100, 1)])
        .prometheus(&forbidden)
        .service(svc("web"))
        .build();
    let api = sc.apply(&foreign).await;
    sc.apply(&forgery).await;
    let expected = [
        (
            "foreign",
            "QueryOutsideNamespace",
            format!(
                "spec.services[0].analysis.metrics[0].query: reads namespace \"{b}\" \
                 (namespace=\"{b}\"), but a Release in namespace \"{a}\" may read only its own \
                 namespace's series; the operator runs with --enforce-namespace, which adds \
                 namespace=\"{a}\" to every selector; remove the namespace matcher or write \
                 namespace=\"{a}\" (or {{{{namespace}}}})"
            ),
        ),
        (
            "forgery",
            "PrometheusAddressNotAllowed",
            format!(
                "spec.prometheus.address: \"{forbidden}\" is not a Prometheus address this operator \
                 may query; the allowed addresses are the operator's --prometheus-url and \
                 --prometheus-allowed-address (chart values prometheusUrl and \
                 prometheusAllowedAddresses); remove spec.prometheus to use the operator's \
                 Prometheus, or ask the platform team to allow this address"
            ),
        ),
    ];
    for (name, reason, message) in &expected {
        let status = rel::wait_stalled(&api, name, &format!("Stalled={reason}")).await;
        let stalled = rel::condition(&status, "Stalled").unwrap();
        assert_eq!(stalled["reason"], *reason, "{name}: {stalled}");
        assert_eq!(stalled["message"], *message, "{name}");
        assert_eq!(rel::phase(&status), "Pending", "{name}");
    }
    // Time to do anything it might (it must not), then compare.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        before,
        resource_versions(&client, &a).await,
        "a refused Release changed objects"
    );
    let revisions = Api::<ControllerRevision>::namespaced(client.clone(), &a)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        revisions.items.is_empty(),
        "a refused Release took a baseline"
    );
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the operator connected to an address it does not allow"
    );

    // The other team's service named without a namespace: the query runs
    // confined to this namespace, where no bweb serves anything.
    let unnamed = r#"sum(rate(sim_http_requests_total{service="bweb"}[5s])) or vector(0)"#;
    let confined = release("confined")
        .defaults(&[(50, 2), (100, 1)])
        .service(svc("web").analysis(only("theirs", unnamed, 0.0)))
        .build();
    // The refused Releases name web too, but hold no claim: they will not run.
    sc.apply(&confined).await;
    // Status shows the query as it ran: with this namespace's matcher.
    let sent = rel::wait_status(
        &api,
        "confined",
        "the query in status",
        Duration::from_secs(60),
        |s| {
            rel::service(s, "web").is_some_and(|w| {
                w["tally"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|t| t["query"].is_string())
            })
        },
    )
    .await;
    let tally = &rel::service(&sent, "web").unwrap()["tally"][0];
    assert_eq!(tally["metric"], "theirs");
    assert_eq!(
        tally["query"],
        format!(
            r#"sum(rate(sim_http_requests_total{{namespace="{a}",service="bweb"}}[5s])) or vector(0)"#
        )
    );
    let done = rel::wait_phase(&api, "confined", "Succeeded", Duration::from_secs(90)).await;
    let measured: Vec<(f64, String)> = rel::service(&done, "web").unwrap()["measurements"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["metric"] == "theirs")
        .map(|m| {
            (
                m["value"].as_f64().unwrap_or(f64::NAN),
                m["outcome"].to_string(),
            )
        })
        .collect();
    eprintln!("confined measurements: {measured:?}");
    assert!(!measured.is_empty(), "{done}");
    assert!(
        measured.iter().all(|(v, o)| *v == 0.0 && o == "\"Pass\""),
        "a confined query read another namespace: {measured:?}"
    );
    // Unconfined, the same query reads the other namespace.
    let unconfined = prom.value(unnamed).await.unwrap().unwrap_or(0.0);
    assert!(unconfined > 1.0, "{unnamed} = {unconfined}");
    assert_eq!(connections.load(Ordering::SeqCst), 0);
    accept.abort();
    other.delete().await;
    sc.end().await;
}

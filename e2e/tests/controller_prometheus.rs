//! Controller scenario 6 (issue 4): Prometheus goes away during a bake. The
//! release holds with canary traffic at 0 and says why; once Prometheus is
//! back and the hold is lifted it completes.
//!
//! The shared Prometheus keeps running (other tests use it): this test's
//! Release talks to it through a TCP proxy the test closes and reopens.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use signalman_e2e::operator::{self as op, Operator};
use signalman_e2e::{self as e2e, TestNamespace};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP proxy on a fixed local port that can be shut (listener and every
/// open connection dropped: connections are refused) and opened again.
struct Proxy {
    port: u16,
    upstream: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let p = Proxy {
            port,
            upstream,
            tasks: Arc::default(),
        };
        p.open().await;
        p
    }

    async fn open(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("proxy bind");
        let (upstream, tasks) = (self.upstream.clone(), self.tasks.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut down, _)) = listener.accept().await else {
                    continue;
                };
                let upstream = upstream.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut up) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                tasks.lock().unwrap().push(conn);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    fn close(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

#[tokio::test]
async fn prometheus_outage_holds_at_zero_then_resumes() {
    let client = e2e::client().await;
    let ns = TestNamespace::create(&client, "ctl-prom").await;
    let upstream = e2e::prometheus_url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let proxy = Proxy::start(upstream).await;
    let _operator = Operator::start(ns.name()).await;
    e2e::apply_yaml(
        &client,
        Some(ns.name()),
        &op::web_app("web", 2, "registry.example/web:v1", 0),
    )
    .await;
    e2e::wait_deployment_ready(&client, ns.name(), "web", 2, Duration::from_secs(60)).await;

    let release = format!(
        r#"apiVersion: signalman.dev/v1alpha1
kind: Release
metadata: {{name: outage}}
spec:
  owner: team-e2e
  prometheus: {{address: "http://127.0.0.1:{}"}}
{}  services:
  - {{name: web, deployment: web, change: {{images: {{app: "registry.example/web:v2"}}}}}}
"#,
        proxy.port,
        op::defaults_yaml(&[(50, 5), (100, 1)])
    );
    e2e::apply_yaml(&client, Some(ns.name()), &release).await;
    let api = op::releases(&client, ns.name());
    op::wait_status(
        &api,
        "outage",
        "the first step baking",
        Duration::from_secs(60),
        |s| op::service(s, "web").is_some_and(|x| x["bakeStartedAt"].is_string()),
    )
    .await;

    proxy.close();
    let held = op::wait_status(&api, "outage", "a hold", Duration::from_secs(30), |s| {
        op::phase(s) == "Held" && s["hold"]["id"].is_string()
    })
    .await;
    let reason = held["hold"]["reason"].as_str().unwrap_or("");
    assert!(!reason.is_empty(), "a hold must say why: {held}");
    let message = held["message"].as_str().unwrap_or("");
    eprintln!("hold: {reason}: {message}");
    assert!(
        message.contains("error-rate") && message.contains("errorLimit"),
        "{message}"
    );
    // The measurement says what went wrong: the address that did not answer.
    let errors: Vec<&str> = op::service(&held, "web").unwrap()["measurements"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["outcome"] == "Error")
        .filter_map(|m| m["message"].as_str())
        .collect();
    eprintln!("measurement errors: {errors:?}");
    let address = format!("127.0.0.1:{}", proxy.port);
    assert!(errors.iter().any(|e| e.contains(&address)), "{errors:?}");
    let stalled = op::condition(&held, "Stalled").expect("Stalled condition");
    assert_eq!(stalled["status"], "True", "{stalled}");
    assert_eq!(op::service(&held, "web").unwrap()["weight"], 0);
    let deps: Api<Deployment> = Api::namespaced(client.clone(), ns.name());
    let canary = e2e::wait_for_object(
        &deps,
        "web-canary",
        "canary at 0 pods",
        Duration::from_secs(10),
        |d| {
            d.spec.as_ref().and_then(|s| s.replicas) == Some(0)
                && d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0) == 0
        },
    )
    .await;
    assert_eq!(
        canary
            .metadata
            .annotations
            .unwrap()
            .get("signalman.dev/weight")
            .map(String::as_str),
        Some("0")
    );
    // Never promoted on missing evidence.
    let web = deps.get("web").await.unwrap();
    assert_eq!(
        web.spec.unwrap().template.spec.unwrap().containers[0]
            .image
            .as_deref(),
        Some("registry.example/web:v1")
    );
    // Still held a while later: nothing moves by itself.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(op::phase(&op::status(&api, "outage").await), "Held");

    proxy.open().await;
    let id = held["hold"]["id"].as_str().unwrap().to_string();
    op::patch_spec(&api, "outage", serde_json::json!({"resumeHold": id})).await;
    let done = op::wait_phase(&api, "outage", "Succeeded", Duration::from_secs(90)).await;
    let tl = op::timeline(&done);
    assert!(
        op::first(&tl, "Held", "").is_some() || tl.iter().any(|(r, _)| r.contains("Hold")),
        "{tl:?}"
    );
    let web = deps.get("web").await.unwrap();
    assert_eq!(
        web.spec.unwrap().template.spec.unwrap().containers[0]
            .image
            .as_deref(),
        Some("registry.example/web:v2")
    );
    proxy.close();
    ns.delete().await;
}

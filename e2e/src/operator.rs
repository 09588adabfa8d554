//! The Signalman operator as a process, for controller scenarios: one operator
//! per test namespace (`--namespace`), so scenarios run in parallel on one
//! cluster; plus helpers to read a Release's status and timeline.
//!
//! The binary is `$SIGNALMAN_BIN`, else `$CARGO_TARGET_DIR/debug/signalman`,
//! else `target/debug/signalman` in the workspace (`make e2e` builds it).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::{FIELD_MANAGER, kubeconfig_path, prometheus_url};

/// Path of the operator binary.
pub fn operator_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SIGNALMAN_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("debug/signalman")
}

/// A running `signalman run --namespace <ns>`; killed when dropped.
pub struct Operator {
    namespace: String,
    prometheus: String,
    metrics_addr: SocketAddr,
    log: PathBuf,
    child: Option<Child>,
}

impl Operator {
    /// Start the operator for `namespace` with the default Prometheus.
    pub async fn start(namespace: &str) -> Operator {
        Operator::start_with_prometheus(namespace, &prometheus_url()).await
    }

    pub async fn start_with_prometheus(namespace: &str, prometheus: &str) -> Operator {
        install_crd().await;
        let dir = std::env::temp_dir().join("signalman-e2e");
        std::fs::create_dir_all(&dir).expect("creating the operator log directory");
        let mut op = Operator {
            namespace: namespace.to_string(),
            prometheus: prometheus.to_string(),
            metrics_addr: free_port(),
            log: dir.join(format!("{namespace}.log")),
            child: None,
        };
        op.spawn().await;
        op
    }

    /// Where the operator logs (all its runs, appended).
    pub fn log_path(&self) -> &PathBuf {
        &self.log
    }

    async fn spawn(&mut self) {
        let bin = operator_bin();
        assert!(
            bin.exists(),
            "operator binary {} not found: run `cargo build -p signalman --bin signalman` \
             (make e2e does) or set SIGNALMAN_BIN",
            bin.display()
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("opening the operator log");
        let child = Command::new(&bin)
            .args([
                "run",
                "--namespace",
                &self.namespace,
                "--prometheus-url",
                &self.prometheus,
                "--metrics-addr",
                &self.metrics_addr.to_string(),
                "--kubeconfig",
            ])
            .arg(kubeconfig_path())
            .env("RUST_LOG", "info,kube_runtime=warn,signalman=info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        self.child = Some(child);
        let start = Instant::now();
        loop {
            if let Ok(body) = http_get(self.metrics_addr, "/readyz").await
                && body.starts_with("ok")
            {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "the operator exited with {status}; see {}",
                    self.log.display()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the operator did not become ready in 30s; see {}",
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL: no chance to finish anything in flight.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
            let _ = c.wait().await;
        }
    }

    /// SIGKILL, then start again on the same port.
    pub async fn crash_and_restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }

    /// SIGTERM and wait for the exit; returns whether it exited cleanly (code 0).
    pub async fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        if let Some(pid) = c.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        match tokio::time::timeout(Duration::from_secs(20), c.wait()).await {
            Ok(Ok(status)) => status.success(),
            _ => {
                let _ = c.kill().await;
                false
            }
        }
    }

    /// The operator's `/metrics` text.
    pub async fn metrics(&self) -> String {
        http_get(self.metrics_addr, "/metrics")
            .await
            .unwrap_or_else(|e| panic!("reading the operator's /metrics: {e}"))
    }

    /// Sum of `signalman_api_writes_total` over all kinds and verbs.
    pub async fn api_writes(&self) -> f64 {
        sum_metric(&self.metrics().await, "signalman_api_writes_total")
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.start_kill();
        }
    }
}

/// Install (server-side apply) the Release CRD that this operator binary
/// prints, so the cluster's schema always matches the status it writes.
pub async fn install_crd() {
    // Concurrent tests may both apply it: server-side apply is idempotent.
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if DONE.load(std::sync::atomic::Ordering::Acquire) {
        return;
    }
    {
        let out = Command::new(operator_bin())
            .arg("crd")
            .output()
            .await
            .unwrap_or_else(|e| panic!("running {} crd: {e}", operator_bin().display()));
        assert!(
            out.status.success(),
            "signalman crd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let client = crate::client().await;
        crate::apply_yaml(&client, None, &String::from_utf8_lossy(&out.stdout)).await;
        crate::wait_for(
            "the Release CRD to be served",
            Duration::from_secs(30),
            || {
                let client = client.clone();
                async move {
                    let api: Api<DynamicObject> = Api::all_with(client, &release_resource());
                    Ok(api.list(&Default::default()).await.ok().map(|_| ()))
                }
            },
        )
        .await;
    }
    DONE.store(true, std::sync::atomic::Ordering::Release);
}

/// Sum of every sample of `name` in a Prometheus text exposition.
pub fn sum_metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    l.local_addr().expect("local address")
}

async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

// ------------------------------------------------------------ Releases

pub fn release_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("signalman.dev", "v1alpha1", "Release"),
        "releases",
    )
}

pub fn releases(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &release_resource())
}

/// The Release's status (`null` before the first write).
pub async fn status(api: &Api<DynamicObject>, name: &str) -> Value {
    api.get(name)
        .await
        .map(|r| r.data.get("status").cloned().unwrap_or(Value::Null))
        .unwrap_or(Value::Null)
}

pub fn phase(status: &Value) -> &str {
    status["phase"].as_str().unwrap_or("")
}

/// Wait until the Release reaches `phase`; panics early when it reaches a
/// different final phase, showing the status.
pub async fn wait_phase(
    api: &Api<DynamicObject>,
    name: &str,
    want: &str,
    timeout: Duration,
) -> Value {
    let start = Instant::now();
    loop {
        let s = status(api, name).await;
        let p = phase(&s);
        if p == want {
            return s;
        }
        if ["Succeeded", "RolledBack", "Failed"].contains(&p) {
            panic!(
                "Release {name} ended {p}, expected {want}: {}",
                serde_json::to_string_pretty(&s).unwrap_or_default()
            );
        }
        if start.elapsed() > timeout {
            panic!(
                "Release {name} did not reach {want} in {timeout:?}: {}",
                serde_json::to_string_pretty(&s).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Wait until `check(status)` holds and return the status.
pub async fn wait_status(
    api: &Api<DynamicObject>,
    name: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let s = status(api, name).await;
        if check(&s) {
            return s;
        }
        if start.elapsed() > timeout {
            panic!(
                "Release {name}: timed out after {timeout:?} waiting for {what}: {}",
                serde_json::to_string_pretty(&s).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The condition `type_` of a status.
pub fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// One service's entry in the status.
pub fn service<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status["services"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)
}

/// `(reason, service)` of every timeline entry, oldest first.
pub fn timeline(status: &Value) -> Vec<(String, String)> {
    status["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or("").to_string(),
                e["service"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Index of the first timeline entry with `reason` (any service when `service` is empty).
pub fn first(timeline: &[(String, String)], reason: &str, service: &str) -> Option<usize> {
    timeline
        .iter()
        .position(|(r, s)| r == reason && (service.is_empty() || s == service))
}

/// Wait until no field of Deployment `name` is owned by the field manager
/// `signalman` any more: a finished release leaves the user's objects to the user.
pub async fn wait_released(client: &kube::Client, namespace: &str, name: &str) {
    let api: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), namespace);
    crate::wait_for(
        &format!("signalman to drop its fields of Deployment {name}"),
        Duration::from_secs(15),
        || {
            let api = api.clone();
            async move {
                let d = api.get(name).await?;
                let owned = d
                    .metadata
                    .managed_fields
                    .iter()
                    .flatten()
                    .any(|m| m.manager.as_deref() == Some("signalman"));
                Ok((!owned).then_some(()))
            }
        },
    )
    .await;
}

/// Merge-patch the Release's spec (e.g. `{"resumeHold": "hold-1"}`).
pub async fn patch_spec(api: &Api<DynamicObject>, name: &str, spec: Value) {
    api.patch(
        name,
        &PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        },
        &Patch::Merge(&serde_json::json!({"spec": spec})),
    )
    .await
    .unwrap_or_else(|e| panic!("patching Release {name}: {e}"));
}

/// A Deployment and a Service of the same name running `image` (container
/// `app`), with extra container env.
pub fn web_app(name: &str, replicas: i32, image: &str, min_ready_seconds: i32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  minReadySeconds: {min_ready_seconds}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: app
        image: {image}
        env:
        - {{name: SIM_ERROR_RATE, value: "0"}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 80, targetPort: 8080}}]
"#
    )
}

/// The error-rate criterion used by the scenarios: canary 5xx share over the
/// last 5 s, at most 5 %.
pub const ERROR_RATE_QUERY: &str = r#"sum(rate(sim_http_requests_total{namespace="{{namespace}}",service="{{service}}",track="canary",code="500"}[5s])) / sum(rate(sim_http_requests_total{namespace="{{namespace}}",service="{{service}}",track="canary"}[5s]))"#;

/// A `defaults` block: `steps` as (weight, bake seconds), interval 1 s, the
/// error-rate metric, generous inconclusive limit (a canary's first seconds
/// have no samples yet).
pub fn defaults_yaml(steps: &[(i32, u32)]) -> String {
    let steps: Vec<String> = steps
        .iter()
        .map(|(w, b)| format!("{{weight: {w}, bake: {b}s}}"))
        .collect();
    format!(
        r#"  defaults:
    steps: [{}]
    analysis:
      interval: 1s
      failureLimit: 0
      inconclusiveLimit: 20
      errorLimit: 1
      metrics:
      - name: error-rate
        query: '{}'
        max: 0.05
"#,
        steps.join(", "),
        ERROR_RATE_QUERY
    )
}

/// The image of a Deployment's first container.
pub fn first_image(d: &k8s_openapi::api::apps::v1::Deployment) -> String {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

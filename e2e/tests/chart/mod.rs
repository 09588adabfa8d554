//! Shared by the chart and leader-election e2e tests: helm, `kubectl auth
//! can-i`, a kubeconfig that holds only a ServiceAccount token, and the
//! operator run as a process with the flags a chart install would give it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use kube::config::Kubeconfig;
use signalman_e2e::{kubeconfig_path, prometheus_url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// The operator binary: `$SIGNALMAN_BIN`, else `$CARGO_TARGET_DIR/debug/signalman`,
/// else `target/debug/signalman` in the workspace.
pub fn operator_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SIGNALMAN_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("debug/signalman")
}

/// Sum of every sample of `name` in a text exposition.
pub fn sum_metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn chart_dir() -> PathBuf {
    repo_root().join("charts/signalman")
}

/// `helm` from `$HELM`, else from `PATH` (`make e2e` puts the pinned build there).
pub async fn helm(args: &[&str]) -> Output {
    let bin = std::env::var("HELM").unwrap_or_else(|_| "helm".into());
    Command::new(&bin)
        .args(args)
        .env("KUBECONFIG", kubeconfig_path())
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("running {bin}: {e}; put helm on PATH (source .e2e/env) or set HELM")
        })
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `helm install <release> charts/signalman -n <ns>` with `--set` values.
pub async fn install(ns: &str, release: &str, sets: &[&str]) -> Output {
    let chart = chart_dir();
    let mut args = vec!["install", release];
    args.push(chart.to_str().unwrap());
    args.extend(["--namespace", ns]);
    for s in sets {
        args.extend(["--set", s]);
    }
    helm(&args).await
}

pub async fn uninstall(ns: &str, release: &str) {
    let out = helm(&["uninstall", release, "--namespace", ns, "--wait"]).await;
    if !out.status.success() {
        eprintln!("warning: helm uninstall {release}: {}", text(&out));
    }
}

/// Uninstalls the Helm release when dropped, also when the test panics: the
/// chart's ClusterRole and binding are cluster-scoped and would outlive the
/// test namespace.
pub struct UninstallOnDrop {
    ns: String,
    release: String,
}

impl UninstallOnDrop {
    pub fn new(ns: &str, release: &str) -> Self {
        UninstallOnDrop {
            ns: ns.to_string(),
            release: release.to_string(),
        }
    }
}

impl Drop for UninstallOnDrop {
    fn drop(&mut self) {
        let bin = std::env::var("HELM").unwrap_or_else(|_| "helm".into());
        let _ = std::process::Command::new(bin)
            .args([
                "uninstall",
                &self.release,
                "--namespace",
                &self.ns,
                "--ignore-not-found",
            ])
            .env("KUBECONFIG", kubeconfig_path())
            .output();
    }
}

/// `kubectl auth can-i VERB RESOURCE [-n NS] --as SUBJECT`: true for "yes".
/// `RESOURCE` is `kind.group[/name]`, or `kind.group:subresource`.
pub async fn can_i(subject: &str, verb: &str, resource: &str, ns: Option<&str>) -> bool {
    let (resource, sub) = match resource.split_once(':') {
        Some((r, s)) => (r, Some(format!("--subresource={s}"))),
        None => (resource, None),
    };
    let mut args = vec!["auth", "can-i", verb, resource, "--as", subject];
    if let Some(s) = &sub {
        args.push(s);
    }
    match ns {
        Some(n) => args.extend(["-n", n]),
        None => args.push("--all-namespaces"),
    }
    let out = signalman_e2e::kubectl(&args).await;
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match answer.as_str() {
        "yes" => true,
        "no" => false,
        _ => panic!("kubectl auth can-i {verb} {resource}: {}", text(&out)),
    }
}

/// A kubeconfig for the same cluster that authenticates only with a token of
/// ServiceAccount `ns/sa` from `kubectl create token` (no client certificate,
/// so the ServiceAccount's RBAC is all the operator has).
pub async fn token_kubeconfig(ns: &str, sa: &str, dir: &Path) -> PathBuf {
    let out = signalman_e2e::kubectl(&["create", "token", sa, "-n", ns, "--duration=1h"]).await;
    assert!(out.status.success(), "kubectl create token: {}", text(&out));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!token.is_empty(), "kubectl create token printed nothing");
    let admin = Kubeconfig::read_from(kubeconfig_path()).expect("reading the admin kubeconfig");
    let cluster = admin
        .clusters
        .first()
        .cloned()
        .expect("a cluster in the kubeconfig");
    let c = cluster.cluster.expect("cluster details");
    let mut cluster_yaml = format!("    server: {}\n", c.server.expect("a server URL"));
    if let Some(ca) = &c.certificate_authority_data {
        cluster_yaml.push_str(&format!("    certificate-authority-data: {ca}\n"));
    } else if let Some(ca) = &c.certificate_authority {
        cluster_yaml.push_str(&format!("    certificate-authority: {ca}\n"));
    }
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n{cluster_yaml}\
         users:\n- name: {sa}\n  user:\n    token: {token}\n\
         contexts:\n- name: {sa}\n  context: {{cluster: e2e, user: {sa}}}\ncurrent-context: {sa}\n"
    );
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(format!("{ns}-{sa}.kubeconfig"));
    std::fs::write(&path, yaml).unwrap();
    path
}

pub fn scratch_dir() -> PathBuf {
    let d = std::env::temp_dir().join("signalman-e2e");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    l.local_addr().unwrap()
}

/// `signalman run` as a process, killed on drop.
pub struct Proc {
    pub name: String,
    pub metrics_addr: SocketAddr,
    pub log: PathBuf,
    child: Option<Child>,
}

/// How to start an operator process.
pub struct Launch<'a> {
    pub name: &'a str,
    pub kubeconfig: &'a Path,
    /// `--namespace`: watch only this one (keeps tests apart on one cluster).
    pub watch_namespace: &'a str,
    /// `(lease name, lease namespace, duration)`; `None`: no leader election.
    pub lease: Option<(&'a str, &'a str, Duration)>,
}

impl Proc {
    pub async fn start(l: Launch<'_>) -> Proc {
        let bin = operator_bin();
        assert!(
            bin.exists(),
            "operator binary {} not found: cargo build -p signalman --bin signalman",
            bin.display()
        );
        let log = scratch_dir().join(format!("{}.log", l.name));
        let file = std::fs::File::create(&log).unwrap();
        let metrics_addr = free_port();
        let mut cmd = Command::new(&bin);
        cmd.args(["run", "--namespace", l.watch_namespace])
            .args(["--prometheus-url", &prometheus_url()])
            .args(["--metrics-addr", &metrics_addr.to_string()])
            .arg("--kubeconfig")
            .arg(l.kubeconfig);
        if let Some((name, ns, d)) = l.lease {
            cmd.args([
                "--leader-elect",
                "--lease-name",
                name,
                "--lease-namespace",
                ns,
            ])
            .arg(format!("--lease-duration={}s", d.as_secs()));
        }
        let child = cmd
            .env("POD_NAME", l.name)
            .env("RUST_LOG", "info,kube_runtime=warn")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let mut p = Proc {
            name: l.name.to_string(),
            metrics_addr,
            log,
            child: Some(child),
        };
        p.wait_serving().await;
        p
    }

    async fn wait_serving(&mut self) {
        let start = Instant::now();
        loop {
            if self.get("/healthz").await.is_ok_and(|(c, _)| c == 200) {
                return;
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("{} exited with {st}: {}", self.name, self.log_tail());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{} did not serve /healthz in 30s: {}",
                self.name,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// SIGKILL: no lease hand-over, no cleanup.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
            let _ = c.wait().await;
        }
    }

    /// The exit status if the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// `(status code, body)` of a GET on the operator's HTTP port.
    pub async fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        let mut s = tokio::net::TcpStream::connect(self.metrics_addr).await?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        let code = out
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((code, body))
    }

    pub async fn metrics(&self) -> String {
        let (code, body) = self
            .get("/metrics")
            .await
            .unwrap_or_else(|e| panic!("scraping {}: {e}", self.name));
        assert_eq!(code, 200, "{}: /metrics answered {code}: {body}", self.name);
        body
    }

    /// Scrape until `ready` holds on the text (the release gauges follow the
    /// operator's watch cache, a few milliseconds behind the API server).
    pub async fn wait_metrics(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let m = self.metrics().await;
            if ready(&m) || start.elapsed() > Duration::from_secs(10) {
                if !ready(&m) {
                    eprintln!("{}: /metrics never showed {what}", self.name);
                }
                return m;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn api_writes(&self) -> f64 {
        sum_metric(&self.metrics().await, "signalman_api_writes_total")
    }

    /// Wait until `/readyz` answers 200 and return its body.
    pub async fn wait_ready(&self, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Ok((200, body)) = self.get("/readyz").await {
                return body;
            }
            assert!(
                start.elapsed() < timeout,
                "{} not ready in {timeout:?}: {}",
                self.name,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.start_kill();
        }
    }
}

/// The value of the first sample whose line starts with `series` (name and
/// the beginning of its labels), e.g. `signalman_releases{phase="Succeeded"}`.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

// ------------------------------------------------------------ scenarios

/// Canary 5xx share over the last 5 s, as the traffic simulator reports it.
pub const ERROR_RATE_QUERY: &str = r#"sum(rate(sim_http_requests_total{namespace="{{namespace}}",service="{{service}}",track="canary",code="500"}[5s])) / sum(rate(sim_http_requests_total{namespace="{{namespace}}",service="{{service}}",track="canary"}[5s]))"#;

/// A Deployment (container `app`, 2 replicas) and a Service of the same name.
pub fn web_app(name: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: app
        image: registry.example/{name}:v1
        env: [{{name: SIM_ERROR_RATE, value: "0"}}]
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

/// A Release moving `services` (name, dependsOn, error rate of the new
/// version) to `:v2` through `steps` (weight, bake seconds), measured every
/// second against a 5 % error-rate ceiling.
pub fn release_yaml(name: &str, steps: &[(i32, u32)], services: &[(&str, &[&str], f64)]) -> String {
    let steps: Vec<String> = steps
        .iter()
        .map(|(w, b)| format!("{{weight: {w}, bake: {b}s}}"))
        .collect();
    let mut y = format!(
        r#"apiVersion: signalman.dev/v1alpha1
kind: Release
metadata: {{name: {name}}}
spec:
  owner: team-e2e
  defaults:
    steps: [{}]
    analysis:
      interval: 1s
      failureLimit: 0
      inconclusiveLimit: 20
      errorLimit: 3
      metrics:
      - name: error-rate
        query: '{ERROR_RATE_QUERY}'
        max: 0.05
  services:
"#,
        steps.join(", ")
    );
    for (svc, deps, error_rate) in services {
        y.push_str(&format!(
            "  - name: {svc}\n    deployment: {svc}\n    dependsOn: [{}]\n    change:\n      images: {{app: \"registry.example/{svc}:v2\"}}\n      env: {{app: {{SIM_ERROR_RATE: \"{error_rate}\"}}}}\n",
            deps.join(", ")
        ));
    }
    y
}

/// Deploy `names` with [`web_app`] and wait until they are available.
pub async fn deploy_apps(client: &kube::Client, ns: &str, names: &[&str]) {
    for n in names {
        signalman_e2e::apply_yaml(client, Some(ns), &web_app(n)).await;
    }
    for n in names {
        signalman_e2e::wait_deployment_ready(client, ns, n, 2, Duration::from_secs(60)).await;
    }
}

pub fn release_api(client: &kube::Client, ns: &str) -> kube::Api<kube::api::DynamicObject> {
    let ar = kube::core::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk("signalman.dev", "v1alpha1", "Release"),
        "releases",
    );
    kube::Api::namespaced_with(client.clone(), ns, &ar)
}

/// The whole Release object as JSON.
pub async fn release_json(
    api: &kube::Api<kube::api::DynamicObject>,
    name: &str,
) -> serde_json::Value {
    serde_json::to_value(
        api.get(name)
            .await
            .unwrap_or_else(|e| panic!("reading Release {name}: {e}")),
    )
    .unwrap()
}

/// Poll the Release every 100 ms until `check` holds on it; panics with the
/// object after `timeout`.
pub async fn wait_release(
    api: &kube::Api<kube::api::DynamicObject>,
    name: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let r = release_json(api, name).await;
        if check(&r) {
            return r;
        }
        if start.elapsed() > timeout {
            panic!(
                "Release {name}: no {what} after {timeout:?}: {}",
                serde_json::to_string_pretty(&r["status"]).unwrap()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn phase(r: &serde_json::Value) -> &str {
    r["status"]["phase"].as_str().unwrap_or("")
}

/// When `SIGNALMAN_CAPTURE_DIR` is set, save the Release as a YAML fixture
/// named `<file>.yaml` there (for the Argo CD health-check test), without the
/// noise of managedFields.
pub fn capture(r: &serde_json::Value, file: &str) {
    let Some(dir) = std::env::var_os("SIGNALMAN_CAPTURE_DIR") else {
        return;
    };
    let mut r = r.clone();
    if let Some(m) = r["metadata"].as_object_mut() {
        m.remove("managedFields");
    }
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{file}.yaml")),
        serde_yaml::to_string(&r).unwrap(),
    )
    .unwrap();
    eprintln!("captured {file}.yaml (phase {})", phase(&r));
}

/// Merge-patch a Release's spec.
pub async fn patch_spec(
    api: &kube::Api<kube::api::DynamicObject>,
    name: &str,
    spec: serde_json::Value,
) {
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&serde_json::json!({"spec": spec})),
    )
    .await
    .unwrap_or_else(|e| panic!("patching Release {name}: {e}"));
}

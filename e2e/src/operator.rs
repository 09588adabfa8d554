//! The Signalman operator as a process: one operator per test namespace
//! (`--namespace`), so scenarios run in parallel on one cluster. The same
//! launcher runs it as the admin or with nothing but a ServiceAccount token
//! (as the chart would), with or without leader election.
//!
//! The binary is `$SIGNALMAN_BIN`, else `$CARGO_TARGET_DIR/debug/signalman`,
//! else `target/debug/signalman` in the workspace (`make e2e` builds it).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::Api;
use signalman::api::{Release, ReleaseApproval, ReleasePolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::{Look, kubeconfig_path, poll, prometheus_url};

/// Path of the operator binary.
pub fn operator_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SIGNALMAN_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join("target"))
        .join("debug/signalman")
}

/// How to start an operator; [`Launch::start`] starts it.
#[derive(Clone, Debug)]
pub struct Launch {
    namespace: String,
    name: String,
    kubeconfig: PathBuf,
    prometheus: String,
    lease: Option<(String, Duration)>,
    stall_timeout: Option<Duration>,
    /// More namespaces to watch beside the test's own (`--namespace a,b`).
    also: Vec<String>,
    namespace_selector: Option<String>,
    /// More arguments to `signalman run`.
    args: Vec<String>,
}

impl Launch {
    /// Pass `arg` to `signalman run` too (e.g. `--cross-team-edges=5`).
    pub fn arg(mut self, arg: &str) -> Launch {
        self.args.push(arg.to_string());
        self
    }

    /// Name the process: its leader-election identity (`POD_NAME`) and its log file.
    pub fn name(mut self, name: &str) -> Launch {
        self.name = name.to_string();
        self
    }

    /// Authenticate with this kubeconfig instead of the admin's `KUBECONFIG`
    /// (e.g. [`crate::helm::Installed::token_kubeconfig`]).
    pub fn kubeconfig(mut self, path: &Path) -> Launch {
        self.kubeconfig = path.to_path_buf();
        self
    }

    /// Run for the Lease `name` in the watched namespace.
    pub fn leader_election(mut self, lease: &str, duration: Duration) -> Launch {
        self.lease = Some((lease.to_string(), duration));
        self
    }

    /// Take the namespaces this label selector matches (`--namespace-selector`,
    /// a shard) instead of only the launch namespace. The launch namespace
    /// still names the log file and holds the Lease.
    pub fn namespace_selector(mut self, selector: &str) -> Launch {
        self.namespace_selector = Some(selector.to_string());
        self
    }

    /// `--stall-timeout`: `/healthz` fails once a watch has kept failing this long.
    pub fn stall_timeout(mut self, timeout: Duration) -> Launch {
        self.stall_timeout = Some(timeout);
        self
    }

    /// `--prometheus-url`: the Prometheus of Releases that name none (e.g. a
    /// [`crate::proxy::Proxy`] the test shuts and opens).
    pub fn prometheus(mut self, url: &str) -> Launch {
        self.prometheus = url.to_string();
        self
    }

    /// Watch `namespace` too: `--namespace <own>,<namespace>`.
    pub fn also_watch(mut self, namespace: &str) -> Launch {
        self.also.push(namespace.to_string());
        self
    }

    /// Start it. Without leader election it returns once `/readyz` says the
    /// controller runs; with it, once the process serves `/healthz` (a
    /// follower never becomes the controller: see [`Operator::wait_ready`]).
    pub async fn start(self) -> Operator {
        install_crd().await;
        let log = crate::scratch_dir().join(format!("{}-{}.log", self.namespace, self.name));
        // A fresh log per test run: assertions read the whole file.
        std::fs::File::create(&log).unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let mut op = Operator {
            launch: self,
            metrics_addr: free_port(),
            log,
            child: None,
        };
        op.spawn().await;
        op
    }
}

/// A running `signalman run --namespace <ns>`; killed when dropped.
pub struct Operator {
    launch: Launch,
    metrics_addr: SocketAddr,
    log: PathBuf,
    child: Option<Child>,
}

impl Operator {
    /// The operator for `namespace`, as the cluster admin, without leader
    /// election, with the default Prometheus; started by [`Launch::start`].
    pub fn launch(namespace: &str) -> Launch {
        Launch {
            namespace: namespace.to_string(),
            name: "signalman".to_string(),
            kubeconfig: kubeconfig_path(),
            prometheus: prometheus_url(),
            lease: None,
            stall_timeout: None,
            also: Vec::new(),
            namespace_selector: None,
            args: Vec::new(),
        }
    }

    /// Start the operator for `namespace` with the defaults of [`Operator::launch`].
    pub async fn start(namespace: &str) -> Operator {
        Operator::launch(namespace).start().await
    }

    /// Where the operator logs (all its runs in this test, appended).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last 40 lines of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    async fn spawn(&mut self) {
        let bin = operator_bin();
        assert!(
            bin.exists(),
            "operator binary {} not found: run `cargo build -p signalman --bins` \
             (make e2e does) or set SIGNALMAN_BIN",
            bin.display()
        );
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.log)
            .expect("opening the operator log");
        let l = &self.launch;
        let mut cmd = Command::new(&bin);
        cmd.arg("run");
        match &l.namespace_selector {
            Some(selector) => cmd.args(["--namespace-selector", selector]),
            None => {
                let namespaces = std::iter::once(&l.namespace)
                    .chain(&l.also)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(",");
                cmd.args(["--namespace", &namespaces])
            }
        };
        cmd.args(["--prometheus-url", &l.prometheus])
            .args(["--metrics-addr", &self.metrics_addr.to_string()])
            .arg("--kubeconfig")
            .arg(&l.kubeconfig);
        if let Some(t) = l.stall_timeout {
            cmd.arg(format!("--stall-timeout={}ms", t.as_millis()));
        }
        cmd.args(&l.args);
        if let Some((lease, duration)) = &l.lease {
            cmd.args(["--leader-elect", "--lease-name", lease])
                .args(["--lease-namespace", &l.namespace])
                .arg(format!("--lease-duration={}s", duration.as_secs()));
        }
        // As the chart does: the operator's namespace (where it reads
        // notification receivers' Secrets) is the launch namespace.
        let child = cmd
            .env("POD_NAME", &l.name)
            .env("POD_NAMESPACE", &l.namespace)
            .env("RUST_LOG", "info,kube_runtime=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        self.child = Some(child);
        let path = if self.launch.lease.is_some() {
            "/healthz"
        } else {
            "/readyz"
        };
        let what = format!("operator {} to answer {path} ok", self.launch.name);
        let (child, addr, log) = (&mut self.child, self.metrics_addr, &self.log);
        poll(
            &what,
            Duration::from_secs(30),
            Duration::from_millis(100),
            || {
                let exited = child.as_mut().and_then(|c| c.try_wait().ok().flatten());
                let tail = log_tail(log);
                async move {
                    if let Some(status) = exited {
                        return Look::Never(format!("it exited with {status}:\n{tail}"));
                    }
                    match http_get(addr, path).await {
                        Ok((200, body)) if body.starts_with("ok") => Look::Done(()),
                        Ok((code, body)) => Look::NotYet(format!("{code} {body}\n{tail}")),
                        Err(e) => Look::NotYet(format!("{e}\n{tail}")),
                    }
                }
            },
        )
        .await;
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// SIGKILL: no chance to finish anything in flight, no lease hand-over.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
            let _ = c.wait().await;
        }
    }

    /// SIGKILL, then start again on the same port (same log, appended).
    pub async fn crash_and_restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }

    /// SIGTERM, without waiting: see [`Operator::wait_exit`].
    pub fn sigterm(&self) {
        let pid = self.pid().expect("the operator is not running");
        let st = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(st.success(), "kill -TERM {pid}: {st}");
    }

    /// Wait until the process has exited by itself and return how; panics
    /// with the log after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let what = format!("operator {} to exit", self.launch.name);
        let (child, log) = (&mut self.child, &self.log);
        let status = poll(&what, timeout, Duration::from_millis(50), || {
            let exited = child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            let seen = match exited {
                Some(status) => Look::Done(status),
                None => Look::NotYet(format!("it still runs:\n{}", log_tail(log))),
            };
            async move { seen }
        })
        .await;
        self.child = None;
        status
    }

    /// SIGTERM and wait for the exit; returns whether it exited cleanly (code 0).
    pub async fn terminate(&mut self) -> bool {
        if self.child.is_none() {
            return true;
        }
        self.sigterm();
        self.wait_exit(Duration::from_secs(20)).await.success()
    }

    /// `(status code, body)` of a GET on the operator's HTTP port.
    pub async fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        http_get(self.metrics_addr, path).await
    }

    /// The operator's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let (code, body) = self
            .get("/metrics")
            .await
            .unwrap_or_else(|e| panic!("scraping {}: {e}", self.launch.name));
        assert_eq!(
            code, 200,
            "{}: /metrics answered {code}: {body}",
            self.launch.name
        );
        body
    }

    /// Scrape until `ready` holds on the text and return it (the release
    /// gauges follow the operator's watch cache, a moment behind the API
    /// server).
    pub async fn wait_metrics(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let what = format!("/metrics of {} to show {what}", self.launch.name);
        poll(
            &what,
            Duration::from_secs(10),
            Duration::from_millis(100),
            || async {
                let m = self.metrics().await;
                if ready(&m) {
                    Look::Done(m)
                } else {
                    Look::NotYet(format!("last scrape:\n{m}"))
                }
            },
        )
        .await
    }

    /// Sum of `signalman_api_writes_total` over all kinds and verbs.
    pub async fn api_writes(&self) -> f64 {
        sum_metric(&self.metrics().await, "signalman_api_writes_total")
    }

    /// Wait until `path` answers with status `code` and return its body
    /// (e.g. `/healthz` failing with 503 while the operator is stuck).
    pub async fn wait_answer(&self, path: &str, code: u16, timeout: Duration) -> String {
        let what = format!("{path} of operator {} to answer {code}", self.launch.name);
        poll(&what, timeout, Duration::from_millis(100), || async {
            match self.get(path).await {
                Ok((c, body)) if c == code => Look::Done(body),
                other => Look::NotYet(format!("{path}: {other:?}\n{}", self.log_tail())),
            }
        })
        .await
    }

    /// Wait until `/readyz` answers 200 and return its body (`ok`, or
    /// `standby: ...` on a follower).
    pub async fn wait_ready(&self, timeout: Duration) -> String {
        let what = format!("operator {} to be ready", self.launch.name);
        poll(&what, timeout, Duration::from_millis(100), || async {
            match self.get("/readyz").await {
                Ok((200, body)) => Look::Done(body),
                other => Look::NotYet(format!("/readyz: {other:?}\n{}", self.log_tail())),
            }
        })
        .await
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.start_kill();
        }
    }
}

fn log_tail(log: &Path) -> String {
    let s = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// `(status code, body)` of an HTTP/1.1 GET, without an HTTP client crate.
async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes(),
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

/// Install (server-side apply) the CRDs exactly as `signalman crd` prints
/// them (Release, ReleasePolicy, ReleaseApproval), from the same source as
/// the operator under test, so the cluster's schema matches the status it
/// writes, and the admission policies of `crds/` (approvals and the
/// Release's creator vouched for by the API server); waits until the API
/// server has Established the CRDs.
pub async fn install_crd() {
    // Once per test binary; concurrent tests may both apply it, which
    // server-side apply makes harmless.
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if DONE.load(std::sync::atomic::Ordering::Acquire) {
        return;
    }
    let client = crate::client().await;
    for crd in [Release::crd(), ReleasePolicy::crd(), ReleaseApproval::crd()] {
        apply_crd(&client, &crd).await;
    }
    install_admission(&client).await;
    DONE.store(true, std::sync::atomic::Ordering::Release);
}

/// The path of the admission policies shipped beside the CRDs.
pub fn admission_yaml() -> PathBuf {
    crate::repo_root().join("crds/signalman.dev_admission.yaml")
}

/// Server-side apply `crds/signalman.dev_admission.yaml`. The API server
/// enforces a new ValidatingAdmissionPolicy a moment after it is written
/// (its type checking runs first); the tests that depend on it wait for its
/// first refusal themselves.
pub async fn install_admission(client: &kube::Client) {
    let path = admission_yaml();
    let yaml = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    crate::apply_yaml(client, None, &yaml).await;
}

/// Server-side apply a CRD and wait until the API server has Established it
/// (serves its resource), e.g. a copy of [`Release::crd`] under a group of
/// its own.
pub async fn apply_crd(client: &kube::Client, crd: &CustomResourceDefinition) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.metadata.name.as_deref().expect("a CRD without a name");
    crate::apply(&crds, crd).await;
    crate::wait_for_object(&crds, name, "Established", Duration::from_secs(30), |crd| {
        crd.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            })
    })
    .await;
}

/// Sum of every sample of `name` in a Prometheus text exposition.
pub fn sum_metric(text: &str, name: &str) -> f64 {
    samples(text)
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(value)
        .sum()
}

/// The value of the first sample whose line starts with `series` (name and
/// the beginning of its labels), e.g. `signalman_releases{phase="Succeeded"}`.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    samples(text)
        .find(|l| l.starts_with(series))
        .and_then(value)
}

fn samples(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter(|l| !l.starts_with('#'))
}

fn value(line: &str) -> Option<f64> {
    line.rsplit(' ').next()?.parse().ok()
}

/// An unused local TCP address (bound, then released for the operator).
pub fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    l.local_addr().expect("local address")
}

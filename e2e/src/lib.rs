//! End-to-end harness for Signalman.
//!
//! The e2e tests in `e2e/tests/` run against whatever cluster `KUBECONFIG`
//! points at and whatever Prometheus `PROMETHEUS_URL` points at (default
//! `http://127.0.0.1:9090`). `make cluster-up` provides both locally; any other
//! cluster works if the Gateway API CRDs are installed and `traffic-sim` runs
//! against it with Prometheus scraping it. Tests **fail** (never skip) when
//! `KUBECONFIG` is unset or the cluster or Prometheus is unreachable.
//!
//! Typical test:
//! ```no_run
//! use std::time::Duration;
//! use signalman_e2e as e2e;
//! # async fn demo() {
//! let client = e2e::client().await;
//! let ns = e2e::TestNamespace::create(&client, "demo").await;
//! e2e::apply_yaml(&client, Some(ns.name()), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n").await;
//! e2e::wait_for("the ConfigMap to exist", Duration::from_secs(10), || async {
//!     Ok(Some(())) // return Ok(Some(v)) when done, Ok(None) to keep waiting
//! }).await;
//! ns.delete().await; // also deleted on drop, e.g. when the test panics
//! # }
//! ```

pub mod apiserver;
pub mod bench;
pub mod browser;
pub mod fault;
pub mod helm;
pub mod members;
pub mod operator;
pub mod outcome;
pub mod plugin;
pub mod policy;
pub mod proxy;
pub mod receiver;
pub mod release;
pub mod scenario;
pub mod sim;

pub use scenario::Scenario;

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Scope};
use kube::{Client, Config, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Field manager used by the harness for server-side apply.
pub const FIELD_MANAGER: &str = "signalman-e2e";
/// Label put on every namespace the harness creates (so leftovers are easy to find).
pub const TEST_NAMESPACE_LABEL: &str = "signalman.dev/e2e";
/// Default Prometheus URL when `PROMETHEUS_URL` is unset.
pub const DEFAULT_PROMETHEUS_URL: &str = "http://127.0.0.1:9090";

/// Select rustls' `ring` crypto provider for this process (idempotent). Both
/// `ring` (kube) and `aws-lc-rs` (reqwest) are in the dependency graph, so
/// rustls cannot choose by itself and would panic on the first TLS
/// connection. The harness calls this itself; binaries call it first thing.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Path of the kubeconfig from `KUBECONFIG`; panics with a hint when unset.
pub fn kubeconfig_path() -> PathBuf {
    match std::env::var_os("KUBECONFIG") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!(
            "KUBECONFIG is not set. The e2e suite needs a cluster: run `make cluster-up` and \
             `export KUBECONFIG=$PWD/.e2e/kubeconfig PROMETHEUS_URL=http://127.0.0.1:9090`, \
             or use `make e2e` / `make test`"
        ),
    }
}

/// The workspace root (the clone), for the chart, examples and docs.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A directory for the harness' files (operator logs, kubeconfigs).
pub fn scratch_dir() -> PathBuf {
    let d = std::env::temp_dir().join("signalman-e2e");
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("creating {}: {e}", d.display()));
    d
}

async fn config_from_kubeconfig() -> anyhow::Result<Config> {
    install_crypto_provider();
    let path = kubeconfig_path();
    let kc = Kubeconfig::read_from(&path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading kubeconfig {}", path.display()))
}

/// A kube [`Client`] for the cluster in `KUBECONFIG`, checked to be reachable.
/// Panics (fails the test) when `KUBECONFIG` is unset or the API server does
/// not answer.
pub async fn client() -> Client {
    let config = config_from_kubeconfig()
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let url = config.cluster_url.clone();
    let client =
        Client::try_from(config).unwrap_or_else(|e| panic!("building a client for {url}: {e}"));
    if let Err(e) = client.apiserver_version().await {
        panic!(
            "the API server at {url} (KUBECONFIG={}) is unreachable: {e}",
            kubeconfig_path().display()
        );
    }
    client
}

/// A client for the same cluster that authenticates only with `token` (no
/// client certificate), e.g. a ServiceAccount token from [`service_account_token`].
pub async fn client_with_token(token: &str) -> Client {
    let mut config = config_from_kubeconfig()
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    config.auth_info = AuthInfo {
        token: Some(token.to_string().into()),
        ..AuthInfo::default()
    };
    Client::try_from(config).expect("building a token client")
}

/// Issue a short-lived token for a ServiceAccount through the TokenRequest API
/// (what `kubectl create token` does).
pub async fn service_account_token(
    client: &Client,
    namespace: &str,
    service_account: &str,
) -> String {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let req = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(600),
            ..Default::default()
        },
        ..Default::default()
    };
    let resp: TokenRequest = api
        .create_subresource("token", service_account, &PostParams::default(), &req)
        .await
        .unwrap_or_else(|e| panic!("TokenRequest for {namespace}/{service_account}: {e}"));
    resp.status.expect("TokenRequest without status").token
}

/// A uniquely named namespace for one test, labelled [`TEST_NAMESPACE_LABEL`].
/// It is deleted by [`TestNamespace::delete`] or, failing that, when dropped
/// (also when the test panics). Set `E2E_KEEP_NAMESPACES=1` to keep them for
/// debugging.
pub struct TestNamespace {
    name: String,
    client: Client,
    deleted: bool,
}

impl TestNamespace {
    /// Create `<prefix>-<random suffix>` and wait until its `default`
    /// ServiceAccount exists (pods are rejected before that).
    pub async fn create(client: &Client, prefix: &str) -> TestNamespace {
        let suffix = format!("{:x}", rand_u64() & 0xff_ffff);
        let name = format!("{}-{suffix}", prefix.trim_end_matches('-'));
        let api: Api<Namespace> = Api::all(client.clone());
        let mut ns = Namespace::default();
        ns.metadata.name = Some(name.clone());
        ns.metadata.labels = Some([(TEST_NAMESPACE_LABEL.to_string(), "true".to_string())].into());
        api.create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        let sa: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
        wait_for(
            &format!("ServiceAccount {name}/default"),
            Duration::from_secs(30),
            || async { Ok(sa.get_opt("default").await?.map(|_| ())) },
        )
        .await;
        TestNamespace {
            name,
            client: client.clone(),
            deleted: false,
        }
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// [`apply_yaml`] into this namespace.
    pub async fn apply_yaml(&self, yaml: &str) -> Vec<DynamicObject> {
        apply_yaml(&self.client, Some(&self.name), yaml).await
    }

    /// [`try_apply_yaml`] into this namespace.
    pub async fn try_apply_yaml(&self, yaml: &str) -> anyhow::Result<Vec<DynamicObject>> {
        try_apply_yaml(&self.client, Some(&self.name), yaml).await
    }

    /// Delete the namespace now (does not wait for its finalization).
    pub async fn delete(mut self) {
        self.deleted = true;
        if keep_namespaces() {
            eprintln!("E2E_KEEP_NAMESPACES set: keeping namespace {}", self.name);
            return;
        }
        let api: Api<Namespace> = Api::all(self.client.clone());
        drop_release_finalizers(&self.client, &self.name).await;
        if let Err(e) = api.delete(&self.name, &DeleteParams::background()).await {
            eprintln!("warning: deleting namespace {}: {e}", self.name);
        }
    }
}

/// Take the finalizers off every Release in `namespace`. A test's operator
/// is usually stopped before its namespace goes, and a Release in flight
/// keeps the `signalman.dev/release` finalizer, which would leave the
/// namespace Terminating for good. Errors (no CRD yet) are ignored.
async fn drop_release_finalizers(client: &Client, namespace: &str) {
    let api: Api<signalman::api::Release> = Api::namespaced(client.clone(), namespace);
    let Ok(list) = api.list(&Default::default()).await else {
        return;
    };
    let patch = serde_json::json!({"metadata": {"finalizers": null}});
    for r in list.items.iter().filter(|r| !r.finalizers().is_empty()) {
        let _ = api
            .patch(
                &r.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await;
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if self.deleted {
            return;
        }
        if keep_namespaces() {
            eprintln!("E2E_KEEP_NAMESPACES set: keeping namespace {}", self.name);
            return;
        }
        // Drop may run inside the test's runtime, which we must not block on;
        // delete from a separate thread with its own runtime and client.
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async move {
                let config = config_from_kubeconfig().await.ok()?;
                let client = Client::try_from(config).ok()?;
                drop_release_finalizers(&client, &name).await;
                let api: Api<Namespace> = Api::all(client);
                if let Err(e) = api.delete(&name, &DeleteParams::background()).await {
                    eprintln!("warning: deleting namespace {name}: {e}");
                }
                Some(())
            })
        })
        .join();
    }
}

fn keep_namespaces() -> bool {
    std::env::var("E2E_KEEP_NAMESPACES").is_ok_and(|v| v == "1" || v == "true")
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

/// Server-side apply every document of a (multi-document) YAML string, in
/// order, with field manager [`FIELD_MANAGER`] and `force`. Namespaced objects
/// without `metadata.namespace` go to `namespace` (required then). Kinds are
/// resolved through discovery, so CRDs work too. Returns the applied objects.
pub async fn apply_yaml(
    client: &Client,
    namespace: Option<&str>,
    yaml: &str,
) -> Vec<DynamicObject> {
    try_apply_yaml(client, namespace, yaml)
        .await
        .unwrap_or_else(|e| panic!("apply_yaml: {e:#}"))
}

/// Like [`apply_yaml`] but returns the error, for tests that expect the API
/// server to reject a manifest.
pub async fn try_apply_yaml(
    client: &Client,
    namespace: Option<&str>,
    yaml: &str,
) -> anyhow::Result<Vec<DynamicObject>> {
    use serde::Deserialize;
    let mut applied = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value = serde_yaml::Value::deserialize(doc).context("parsing YAML")?;
        if value.is_null() {
            continue;
        }
        let obj: DynamicObject =
            serde_yaml::from_value(value).context("YAML document is not a Kubernetes object")?;
        let types = obj
            .types
            .clone()
            .context("object without apiVersion/kind")?;
        let gvk = GroupVersionKind::try_from(&types).context("bad apiVersion")?;
        let name = obj.name_any();
        let (ar, caps) = discovery::pinned_kind(client, &gvk)
            .await
            .with_context(|| format!("discovering {}/{}", types.api_version, types.kind))?;
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => {
                let ns = obj
                    .metadata
                    .namespace
                    .as_deref()
                    .or(namespace)
                    .with_context(|| {
                        format!(
                            "{} {name} is namespaced but no namespace was given",
                            types.kind
                        )
                    })?;
                Api::namespaced_with(client.clone(), ns, &ar)
            }
            Scope::Cluster => Api::all_with(client.clone(), &ar),
        };
        let out = api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&obj),
            )
            .await
            .with_context(|| format!("applying {} {name}", types.kind))?;
        applied.push(out);
    }
    Ok(applied)
}

/// Server-side apply one typed object (its `apiVersion`/`kind` are set from
/// the type) with field manager [`FIELD_MANAGER`].
pub async fn apply<K>(api: &Api<K>, obj: &K) -> K
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let mut value = serde_json::to_value(obj).expect("serializing object");
    value["apiVersion"] = K::api_version(&()).into();
    value["kind"] = K::kind(&()).into();
    let name = obj
        .meta()
        .name
        .clone()
        .expect("object without metadata.name");
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&value),
    )
    .await
    .unwrap_or_else(|e| panic!("applying {} {name}: {e}", K::kind(&())))
}

/// What one look at an awaited state found (see [`poll`]).
pub enum Look<T> {
    /// It is there: stop waiting with this value.
    Done(T),
    /// Not yet; what was seen, for the message if the wait times out.
    NotYet(String),
    /// It can no longer happen (e.g. a Release ended in another phase): fail
    /// now rather than at the timeout, saying what was seen.
    Never(String),
}

/// The one poller every wait of the harness is built on: call `look` every
/// `every` until it reports [`Look::Done`] and return that value. Panics
/// (fails the test) on [`Look::Never`] or after `timeout`, naming `what` and
/// showing the last thing seen.
pub async fn poll<T, F, Fut>(what: &str, timeout: Duration, every: Duration, mut look: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Look<T>>,
{
    let start = Instant::now();
    loop {
        match look().await {
            Look::Done(v) => return v,
            Look::Never(seen) => panic!(
                "gave up waiting for {what} after {:?}: {seen}",
                start.elapsed()
            ),
            Look::NotYet(seen) if start.elapsed() >= timeout => {
                let seen = if seen.is_empty() {
                    String::new()
                } else {
                    format!("; {seen}")
                };
                panic!("timed out after {timeout:?} waiting for {what}{seen}")
            }
            Look::NotYet(_) => tokio::time::sleep(every).await,
        }
    }
}

/// Poll `check` every 250 ms until it returns `Ok(Some(value))`, and return
/// that value. `Ok(None)` means "not yet"; errors are retried too (and
/// reported). Panics after `timeout` with `what` and the last error.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    poll(what, timeout, Duration::from_millis(250), || {
        let checked = check();
        async move {
            match checked.await {
                Ok(Some(v)) => Look::Done(v),
                Ok(None) => Look::NotYet(String::new()),
                Err(e) => Look::NotYet(format!("last error: {e:#}")),
            }
        }
    })
    .await
}

/// Wait until the object `name` exists and satisfies `predicate`; returns it.
/// On timeout the panic message shows the last observed object (its status).
pub async fn wait_for_object<K, P>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    predicate: P,
) -> K
where
    K: Resource + Clone + DeserializeOwned + Debug + Serialize,
    P: Fn(&K) -> bool,
{
    poll(
        &format!("{name}: {what}"),
        timeout,
        Duration::from_millis(250),
        || async {
            match api.get_opt(name).await {
                Ok(Some(obj)) if predicate(&obj) => Look::Done(obj),
                Ok(Some(obj)) => {
                    let v = serde_json::to_value(&obj).unwrap_or_default();
                    Look::NotYet(format!("last status: {}", pretty(&v["status"])))
                }
                Ok(None) => Look::NotYet("the object does not exist".to_string()),
                Err(e) => Look::NotYet(format!("last error: {e}")),
            }
        },
    )
    .await
}

/// A JSON value as indented text, for failure messages.
pub fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// True when a Deployment's rollout is complete with `replicas` available
/// replicas (observed generation current, all replicas updated and available).
pub fn deployment_ready(d: &Deployment, replicas: i32) -> bool {
    let (Some(spec), Some(status)) = (&d.spec, &d.status) else {
        return false;
    };
    let generation = d.metadata.generation.unwrap_or(0);
    spec.replicas.unwrap_or(1) == replicas
        && status.observed_generation.unwrap_or(0) >= generation
        && status.replicas.unwrap_or(0) == replicas
        && status.updated_replicas.unwrap_or(0) == replicas
        && status.ready_replicas.unwrap_or(0) == replicas
        && status.available_replicas.unwrap_or(0) == replicas
        && status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Available" && c.status == "True")
}

/// Wait until Deployment `namespace/name` is rolled out with `replicas` Ready
/// and Available replicas.
pub async fn wait_deployment_ready(
    client: &Client,
    namespace: &str,
    name: &str,
    replicas: i32,
    timeout: Duration,
) -> Deployment {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    wait_for_object(
        &api,
        name,
        &format!("Deployment to have {replicas} available replicas"),
        timeout,
        |d| deployment_ready(d, replicas),
    )
    .await
}

/// The image of a Deployment's first container.
pub fn first_image(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

/// The image of Deployment `name`'s first container; fails the test when the
/// Deployment does not exist.
pub async fn image_of(deployments: &Api<Deployment>, name: &str) -> String {
    let d = deployments
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("reading Deployment {name}: {e}"));
    first_image(&d)
}

/// A Deployment (one container, `app`) and a Service of the same name: the
/// unit every scenario releases. By default 2 replicas of
/// `registry.example/<name>:v1` with `SIM_ERROR_RATE=0`, i.e. a good version.
#[derive(Clone, Debug)]
pub struct WebApp {
    name: String,
    replicas: i32,
    image: String,
    min_ready_seconds: i32,
    env: Vec<(String, String)>,
    rps: Option<u32>,
}

impl WebApp {
    pub fn new(name: &str) -> WebApp {
        WebApp {
            name: name.to_string(),
            replicas: 2,
            image: format!("registry.example/{name}:v1"),
            min_ready_seconds: 0,
            env: vec![("SIM_ERROR_RATE".into(), "0".into())],
            rps: None,
        }
    }

    /// The Service's simulated request rate (default [`sim::DEFAULT_RPS`]):
    /// more requests make an error ratio finer than one request's share.
    pub fn rps(mut self, rps: u32) -> WebApp {
        self.rps = Some(rps);
        self
    }

    pub fn replicas(mut self, replicas: i32) -> WebApp {
        self.replicas = replicas;
        self
    }

    pub fn image(mut self, image: &str) -> WebApp {
        self.image = image.to_string();
        self
    }

    /// Makes rollouts (a promotion, a restoration) last long enough to be
    /// interrupted.
    pub fn min_ready_seconds(mut self, seconds: i32) -> WebApp {
        self.min_ready_seconds = seconds;
        self
    }

    /// Set a container env var (replacing one of the same name): the traffic
    /// simulator's `SIM_*` knobs.
    pub fn env(mut self, name: &str, value: &str) -> WebApp {
        match self.env.iter_mut().find(|(n, _)| n == name) {
            Some(e) => e.1 = value.to_string(),
            None => self.env.push((name.to_string(), value.to_string())),
        }
        self
    }

    /// The manifest (Deployment and Service), for [`apply_yaml`]. Apply it
    /// whole: server-side apply drops the fields a later apply omits.
    pub fn yaml(&self) -> String {
        let WebApp {
            name,
            replicas,
            image,
            min_ready_seconds,
            env,
            rps,
        } = self;
        let annotations = match rps {
            Some(r) => format!(", annotations: {{{}: \"{r}\"}}", sim::RPS_ANNOTATION),
            None => String::new(),
        };
        let env: String = env
            .iter()
            .map(|(n, v)| format!("        - {{name: {n}, value: {}}}\n", json_string(v)))
            .collect();
        format!(
            r#"apiVersion: apps/v1
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
{env}---
apiVersion: v1
kind: Service
metadata: {{name: {name}{annotations}}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 80, targetPort: 8080}}]
"#
        )
    }
}

fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// Apply every app, then wait until each is rolled out (60 s each).
pub async fn deploy(client: &Client, namespace: &str, apps: &[WebApp]) {
    for app in apps {
        apply_yaml(client, Some(namespace), &app.yaml()).await;
    }
    for app in apps {
        wait_deployment_ready(
            client,
            namespace,
            &app.name,
            app.replicas,
            Duration::from_secs(60),
        )
        .await;
    }
}

/// [`deploy`] the default [`WebApp`] of each name.
pub async fn deploy_apps(client: &Client, namespace: &str, names: &[&str]) {
    let apps: Vec<WebApp> = names.iter().map(|n| WebApp::new(n)).collect();
    deploy(client, namespace, &apps).await;
}

/// The Gateway API HTTPRoutes of `namespace` (no typed client for them).
pub fn http_routes(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let ar = kube::core::ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    );
    Api::namespaced_with(client.clone(), namespace, &ar)
}

/// An HTTPRoute `name` sending all traffic under `/` to Service `backend`
/// port 80: what a user has before Signalman adds a canary backend.
pub fn http_route_yaml(name: &str, backend: &str) -> String {
    format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}}}
spec:
  parentRefs: [{{name: gateway}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /}}}}]
    backendRefs: [{{name: {backend}, port: 80}}]
"#
    )
}

/// Run `kubectl` against `KUBECONFIG` and return its output (not checked).
pub async fn kubectl(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into()))
        .args(args)
        .env("KUBECONFIG", kubeconfig_path())
        .output()
        .await
        .expect("running kubectl")
}

/// What a command printed, stdout then stderr, for assertions and messages.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A Prometheus HTTP API client (instant queries).
#[derive(Clone)]
pub struct Prometheus {
    url: String,
    client: prometheus_http_query::Client,
}

/// One sample of an instant-vector result.
#[derive(Clone, Debug, PartialEq)]
pub struct PromSample {
    pub labels: HashMap<String, String>,
    pub value: f64,
}

impl Prometheus {
    /// Prometheus at `PROMETHEUS_URL` (default [`DEFAULT_PROMETHEUS_URL`]),
    /// checked to be reachable; panics otherwise.
    pub async fn from_env() -> Prometheus {
        install_crypto_provider();
        let url = prometheus_url();
        let client = prometheus_http_query::Client::try_from(url.as_str())
            .unwrap_or_else(|e| panic!("bad PROMETHEUS_URL {url}: {e}"));
        let prom = Prometheus { url, client };
        if let Err(e) = prom.query("vector(1)").await {
            panic!(
                "Prometheus at {} (PROMETHEUS_URL) is unreachable: {e:#}",
                prom.url
            );
        }
        prom
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Run an instant query; returns every sample (a scalar result is one
    /// sample without labels). An empty result is an empty Vec.
    pub async fn query(&self, promql: &str) -> anyhow::Result<Vec<PromSample>> {
        use prometheus_http_query::response::Data;
        let res = self
            .client
            .query(promql)
            .get()
            .await
            .with_context(|| format!("query {promql}"))?;
        Ok(match res.data() {
            Data::Vector(v) => v
                .iter()
                .map(|s| PromSample {
                    labels: s.metric().clone(),
                    value: s.sample().value(),
                })
                .collect(),
            Data::Scalar(s) => vec![PromSample {
                labels: HashMap::new(),
                value: s.value(),
            }],
            Data::Matrix(_) => anyhow::bail!("query {promql} returned a range vector"),
        })
    }

    /// Run an instant query that yields at most one sample: `Ok(None)` for an
    /// empty result, an error for several samples (aggregate with `sum()`).
    pub async fn value(&self, promql: &str) -> anyhow::Result<Option<f64>> {
        let samples = self.query(promql).await?;
        match samples.as_slice() {
            [] => Ok(None),
            [s] => Ok(Some(s.value)),
            _ => anyhow::bail!(
                "query {promql} returned {} samples; aggregate it",
                samples.len()
            ),
        }
    }

    /// Wait until `promql` yields a single value satisfying `predicate` and
    /// return it; panics after `timeout` with the last value seen.
    pub async fn wait_for_value<P>(&self, promql: &str, timeout: Duration, predicate: P) -> f64
    where
        P: Fn(f64) -> bool,
    {
        poll(
            &format!("Prometheus query `{promql}`"),
            timeout,
            Duration::from_millis(500),
            || async {
                match self.value(promql).await {
                    Ok(Some(v)) if predicate(v) => Look::Done(v),
                    last => Look::NotYet(format!("last result: {last:?}")),
                }
            },
        )
        .await
    }
}

/// `PROMETHEUS_URL` or [`DEFAULT_PROMETHEUS_URL`].
pub fn prometheus_url() -> String {
    std::env::var("PROMETHEUS_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_PROMETHEUS_URL.to_string())
        .trim_end_matches('/')
        .to_string()
}

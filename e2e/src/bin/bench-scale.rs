//! bench-scale: many release trains in flight on one operator, measured from
//! outside (`make bench-scale`; `e2e/bench/scale.sh` builds and runs it).
//!
//! For each size (services in flight, five per Release) it deploys the apps
//! into a fresh namespace, counts the API server's requests for a quiet
//! while without the operator, starts the operator (`SIGNALMAN_BIN`, the
//! release build), creates every Release at once, waits until every train
//! has finished or the time cap has passed, then counts an idle minute. It
//! prints the figures and, with `RESULTS=<file>`, adds a row and a details
//! block to that Markdown file (see docs/performance.md). `MODE=restart`
//! SIGKILLs the operator mid-run instead and measures how the trains resume.
//!
//! Environment (the script sets them from make variables):
//! `SIZES` ("100 500"), `BAKE` (20), `INTERVAL` (5), `REPLICAS` (1),
//! `CAP_FACTOR` (3), `BACKGROUND` (30), `IDLE` (60), `LABEL`, `COMMIT`,
//! `RESULTS`, `MODE` (scale | restart), `RESTART_RELEASES` (200),
//! `KILL_AFTER` (seconds after the last Release was created; default half
//! the ideal train), `CLK_TCK` (100), `PROMETHEUS_URL`, `KUBECONFIG`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use signalman::api::Release;
use signalman_e2e::bench::{self, Requests, Shape, StepTiming, Trains};
use signalman_e2e::operator::Operator;
use signalman_e2e::{TestNamespace, WebApp};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        _ => default,
    }
}

#[derive(Clone, Debug)]
struct Config {
    sizes: Vec<usize>,
    shape: Shape,
    replicas: i32,
    cap_factor: f64,
    background: Duration,
    idle: Duration,
    label: String,
    commit: String,
    results: Option<PathBuf>,
    restart: Option<usize>,
    kill_after: Option<Duration>,
    clk_tck: u64,
}

impl Config {
    fn from_env() -> Config {
        let sizes: Vec<usize> = env_or("SIZES", "100 500".to_string())
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(|s| {
                let n: usize = s
                    .parse()
                    .unwrap_or_else(|_| panic!("SIZES: {s:?} is not a number"));
                assert!(
                    n >= 5 && n.is_multiple_of(5),
                    "SIZES: {n} is not a multiple of 5 (each Release has 5 services)"
                );
                n
            })
            .collect();
        let restart = (env_or("MODE", "scale".to_string()) == "restart")
            .then(|| env_or("RESTART_RELEASES", 200usize));
        Config {
            sizes,
            shape: Shape {
                bake: Duration::from_secs(env_or("BAKE", 20)),
                interval: Duration::from_secs(env_or("INTERVAL", 5)),
            },
            replicas: env_or("REPLICAS", 1),
            cap_factor: env_or("CAP_FACTOR", 3.0),
            background: Duration::from_secs(env_or("BACKGROUND", 30)),
            idle: Duration::from_secs(env_or("IDLE", 60)),
            label: env_or("LABEL", "unlabelled".to_string()),
            commit: env_or("COMMIT", "?".to_string()),
            results: std::env::var_os("RESULTS")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            restart,
            kill_after: std::env::var("KILL_AFTER")
                .ok()
                .and_then(|v| v.parse().ok())
                .map(Duration::from_secs),
            clk_tck: env_or("CLK_TCK", 100),
        }
    }

    /// The longest a size may take after its last Release was created.
    fn cap(&self) -> Duration {
        self.shape.ideal().mul_f64(self.cap_factor) + Duration::from_secs(60)
    }
}

fn say(msg: impl AsRef<str>) {
    eprintln!(
        "[bench {}] {}",
        Timestamp::now().strftime("%H:%M:%S"),
        msg.as_ref()
    );
}

// ------------------------------------------------------------ the cluster

/// Fake Nodes enough for `pods` pods (kwok gives each room for 250), made
/// like e2e/cluster/up.sh makes them; kept after the run.
async fn ensure_nodes(client: &Client, pods: usize) {
    let nodes: Api<Node> = Api::all(client.clone());
    let want = pods.div_ceil(200).max(3);
    for i in 1..=want {
        let node: Node = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {
                "name": format!("kwok-node-{i}"),
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": format!("kwok-node-{i}"),
                    "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                    "kubernetes.io/role": "agent", "type": "kwok",
                    "topology.kubernetes.io/zone": format!("zone-{i}"),
                }
            }
        }))
        .expect("a Node");
        if nodes
            .get_opt(&node.name_any())
            .await
            .ok()
            .flatten()
            .is_none()
        {
            signalman_e2e::apply(&nodes, &node).await;
        }
    }
    signalman_e2e::wait_for(
        &format!("{want} kwok Nodes Ready"),
        Duration::from_secs(120),
        || async {
            let list = nodes
                .list(&ListParams::default().labels("type=kwok"))
                .await?;
            let ready = list
                .items
                .iter()
                .filter(|n| {
                    n.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
                .count();
            Ok((ready >= want).then_some(()))
        },
    )
    .await;
}

/// Deploy `apps` (Deployment and Service each) and wait until every one is
/// available.
async fn deploy(client: &Client, ns: &str, apps: &[WebApp]) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    stream::iter(apps)
        .for_each_concurrent(16, |app| {
            let (deployments, services) = (deployments.clone(), services.clone());
            async move {
                let yaml = app.yaml();
                let mut docs = yaml.split("\n---\n");
                let d: Deployment = serde_yaml::from_str(docs.next().unwrap()).unwrap();
                let s: Service = serde_yaml::from_str(docs.next().unwrap()).unwrap();
                signalman_e2e::apply(&deployments, &d).await;
                signalman_e2e::apply(&services, &s).await;
            }
        })
        .await;
    let n = apps.len();
    signalman_e2e::wait_for(
        &format!("{n} Deployments available"),
        Duration::from_secs(600),
        || async {
            let list = deployments.list(&ListParams::default()).await?;
            let ready = list
                .items
                .iter()
                .filter(|d| {
                    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                    d.status
                        .as_ref()
                        .is_some_and(|s| s.available_replicas.unwrap_or(0) == want)
                })
                .count();
            Ok((ready == n).then_some(()))
        },
    )
    .await;
}

/// Delete the namespace and wait until it is gone, so the next size starts
/// on a quiet cluster.
async fn remove(client: &Client, ns: TestNamespace) {
    let name = ns.name().to_string();
    ns.delete().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let gone = tokio::time::timeout(Duration::from_secs(600), async {
        while namespaces.get_opt(&name).await.ok().flatten().is_some() {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    })
    .await;
    if gone.is_err() {
        say(format!(
            "namespace {name} still terminating after 10 min; going on"
        ));
    }
}

// ------------------------------------------------------------ what we watch

/// The Releases as the bench's one watch sees them, and when (bench clock)
/// each one's status last changed.
#[derive(Default)]
struct Seen {
    releases: HashMap<String, Release>,
    changes: HashMap<String, Vec<Timestamp>>,
}

fn watch_releases(api: Api<Release>) -> (Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    let task = tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default()).boxed();
        loop {
            match events.try_next().await {
                Ok(Some(watcher::Event::Apply(r) | watcher::Event::InitApply(r))) => {
                    let mut s = s.lock().unwrap();
                    let name = r.name_any();
                    let changed = s.releases.get(&name).map(|o| &o.status) != Some(&r.status);
                    if changed {
                        s.changes
                            .entry(name.clone())
                            .or_default()
                            .push(Timestamp::now());
                    }
                    s.releases.insert(name, r);
                }
                Ok(Some(watcher::Event::Delete(r))) => {
                    s.lock().unwrap().releases.remove(&r.name_any());
                }
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(e) => {
                    say(format!("release watch: {e}; retrying"));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    (seen, task)
}

/// Counters of everything measured, at one moment.
#[derive(Clone)]
struct Snapshot {
    at: Instant,
    api: Requests,
    prom_queries: f64,
    prom_evals: f64,
    cpu_ticks: u64,
    rss: (u64, u64),
    reconciles: f64,
    reconcile_seconds: f64,
    load: String,
}

async fn apiserver_metrics(client: &Client) -> Requests {
    let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
    match client.request_text(req).await {
        Ok(text) => bench::apiserver_requests(&text),
        Err(e) => panic!("reading the API server's /metrics: {e}"),
    }
}

async fn curl(url: &str) -> String {
    let out = tokio::process::Command::new("curl")
        .args(["-fsS", "--max-time", "10", url])
        .output()
        .await
        .expect("running curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn snapshot(client: &Client, op: Option<&Operator>) -> Snapshot {
    let prom = curl(&format!("{}/metrics", signalman_e2e::prometheus_url())).await;
    let (mut cpu_ticks, mut rss, mut reconciles, mut reconcile_seconds) = (0, (0, 0), 0.0, 0.0);
    if let Some(op) = op {
        if let Some(pid) = op.pid() {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            rss = bench::rss(&status);
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            cpu_ticks = bench::cpu_ticks(&stat);
        }
        if let Ok((200, m)) = op.get("/metrics").await {
            reconciles = bench::metric_sum(&m, "signalman_reconciles_total", &[]);
            reconcile_seconds =
                bench::metric_sum(&m, "signalman_reconcile_duration_seconds_sum", &[]);
        }
    }
    Snapshot {
        at: Instant::now(),
        api: apiserver_metrics(client).await,
        prom_queries: bench::metric_sum(
            &prom,
            "prometheus_http_requests_total",
            &[("handler", "/api/v1/query")],
        ),
        prom_evals: bench::metric_sum(
            &prom,
            "prometheus_engine_query_duration_seconds_count",
            &[("slice", "inner_eval")],
        ),
        cpu_ticks,
        rss,
        reconciles,
        reconcile_seconds,
        load: std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    }
}

// ------------------------------------------------------------ one size

/// Kinds only the operator reads with GET or LIST: every other client of
/// the local cluster watches them.
const READ_KINDS: [&str; 6] = [
    "releases",
    "deployments",
    "replicasets",
    "services",
    "controllerrevisions",
    "httproutes",
];

/// What the operator writes. kube-controller-manager writes Deployment and
/// ReplicaSet status and scale, never these; Events come from both.
const WRITE_KINDS: [&str; 8] = [
    "releases",
    "releases/status",
    "deployments",
    "deployments/scale",
    "services",
    "controllerrevisions",
    "httproutes",
    "events",
];

fn operator_kind(verb: &str, resource: &str) -> bool {
    if bench::is_write(verb) {
        WRITE_KINDS.contains(&resource)
    } else {
        (verb == "GET" || verb == "LIST") && READ_KINDS.contains(&resource)
    }
}

struct Report {
    services: usize,
    releases: usize,
    date: String,
    trains: Trains,
    capped: bool,
    run_secs: f64,
    steps: Vec<StepTiming>,
    step_lateness: Vec<f64>,
    decision_lateness: Vec<f64>,
    handover_lateness: Vec<f64>,
    measurement_lateness: Vec<f64>,
    faults: Vec<String>,
    background: (Requests, f64),
    run: (Snapshot, Snapshot),
    idle: (Snapshot, Snapshot),
    restart: Option<Restart>,
}

/// Set up `services` services, run them through the operator and measure.
async fn run_size(client: &Client, cfg: &Config, services: usize) -> Report {
    let n = services / 5;
    let shape = cfg.shape;
    say(format!(
        "{services} services ({n} Releases); ideal train {}s, cap {}s after the last Release is created",
        shape.ideal().as_secs(),
        cfg.cap().as_secs()
    ));
    ensure_nodes(client, services * (2 * cfg.replicas as usize + 1)).await;
    let ns = TestNamespace::create(client, &format!("bench-{services}")).await;
    let apps: Vec<WebApp> = (0..n)
        .flat_map(bench::service_names)
        .map(|name| WebApp::new(&name).replicas(cfg.replicas))
        .collect();
    say(format!("deploying {} apps into {}", apps.len(), ns.name()));
    deploy(client, ns.name(), &apps).await;

    say(format!(
        "counting the cluster's own requests for {}s (no operator)",
        cfg.background.as_secs()
    ));
    let bg0 = snapshot(client, None).await;
    tokio::time::sleep(cfg.background).await;
    let bg1 = snapshot(client, None).await;
    let background = (
        bench::delta(&bg0.api, &bg1.api),
        bg1.at.duration_since(bg0.at).as_secs_f64(),
    );

    signalman_e2e::operator::install_crd().await;
    let api: Api<Release> = Api::namespaced(client.clone(), ns.name());
    let (seen, watch) = watch_releases(api.clone());
    let run0 = snapshot(client, None).await;
    let mut op = Operator::launch(ns.name()).name("bench").start().await;
    say(format!(
        "operator pid {:?} ready; log {}",
        op.pid(),
        op.log_path().display()
    ));
    let run0 = Snapshot {
        cpu_ticks: 0,
        ..run0
    };

    let trains: Vec<Release> = (0..n).map(|i| bench::train(i, &shape)).collect();
    stream::iter(&trains)
        .for_each_concurrent(8, |r| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), r)
                    .await
                    .unwrap_or_else(|e| panic!("creating Release {}: {e}", r.name_any()));
            }
        })
        .await;
    let created = Instant::now();
    say(format!("{n} Releases created"));

    let mut restart = None;
    if cfg.restart.is_some() {
        let kill_after = cfg.kill_after.unwrap_or(shape.ideal() / 2);
        tokio::time::sleep(kill_after).await;
        restart = Some(crash_and_measure(&mut op, &seen).await);
    }

    let cap = cfg.cap();
    let mut last_note = Instant::now();
    let capped = loop {
        let trains = Trains::of(seen.lock().unwrap().releases.values());
        if trains.total == n && trains.in_flight() == 0 && !trains.others.contains_key("none") {
            break false;
        }
        if created.elapsed() >= cap {
            break true;
        }
        if last_note.elapsed() >= Duration::from_secs(30) {
            last_note = Instant::now();
            say(format!(
                "{}s: {} succeeded, others {:?}, in flight by wave {:?}",
                created.elapsed().as_secs(),
                trains.succeeded.len(),
                trains.others,
                trains.waves
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let end = Timestamp::now();
    let run1 = snapshot(client, Some(&op)).await;
    say(format!(
        "{} after {}s; idle {}s",
        if capped {
            "time cap reached"
        } else {
            "every train finished"
        },
        created.elapsed().as_secs(),
        cfg.idle.as_secs()
    ));
    tokio::time::sleep(cfg.idle).await;
    let idle1 = snapshot(client, Some(&op)).await;

    let releases: Vec<Release> = seen.lock().unwrap().releases.values().cloned().collect();
    let mut steps = Vec::new();
    let (mut handover, mut faults, mut measurement_late) = (Vec::new(), Vec::new(), Vec::new());
    for r in &releases {
        let name = r.name_any();
        let Some(st) = r.status.as_ref() else {
            continue;
        };
        let timings = bench::step_timings(&name, st, &shape);
        measurement_late.extend(bench::measurement_lateness(st, &timings, &shape, end));
        steps.extend(timings);
        let i: usize = name.trim_start_matches("train-").parse().unwrap_or(0);
        handover.extend(bench::handover_lateness(st, i, end));
        faults.extend(bench::sequence_faults(&name, st));
    }
    let report = Report {
        services,
        releases: n,
        date: Timestamp::now().strftime("%Y-%m-%d %H:%M UTC").to_string(),
        trains: Trains::of(&releases),
        capped,
        run_secs: run1.at.duration_since(run0.at).as_secs_f64(),
        step_lateness: bench::step_lateness(&steps, end),
        decision_lateness: bench::decision_lateness(&steps, end),
        handover_lateness: handover,
        measurement_lateness: measurement_late,
        steps,
        faults,
        background,
        idle: (run1.clone(), idle1),
        run: (run0, run1),
        restart,
    };
    watch.abort();
    op.kill().await;
    remove(client, ns).await;
    report
}

// ------------------------------------------------------------ restart

/// How the trains resumed after the operator was SIGKILLed and started again.
struct Restart {
    in_flight: usize,
    /// From the kill until the new process answered `/readyz`.
    ready_secs: f64,
    /// Per train in flight at the kill: from the kill until its status was
    /// next written (the restarted operator's first decision about it).
    resumed: Vec<f64>,
    /// Trains not written within [`RESUME_WAIT`].
    never: usize,
}

const RESUME_WAIT: Duration = Duration::from_secs(120);

async fn crash_and_measure(op: &mut Operator, seen: &Arc<Mutex<Seen>>) -> Restart {
    let in_flight: Vec<String> = seen
        .lock()
        .unwrap()
        .releases
        .iter()
        .filter(|(_, r)| {
            r.status
                .as_ref()
                .and_then(|s| s.phase)
                .is_none_or(|p| !p.is_final())
        })
        .map(|(n, _)| n.clone())
        .collect();
    say(format!(
        "SIGKILL with {} trains in flight; starting again",
        in_flight.len()
    ));
    let killed = Timestamp::now();
    let t0 = Instant::now();
    op.crash_and_restart().await;
    let ready_secs = t0.elapsed().as_secs_f64();
    say(format!(
        "operator pid {:?} ready {ready_secs:.1}s after the kill",
        op.pid()
    ));
    let first_after = |s: &Seen| -> Vec<Option<f64>> {
        in_flight
            .iter()
            .map(|n| {
                s.changes
                    .get(n)
                    .and_then(|c| c.iter().find(|t| **t > killed))
                    .map(|t| t.duration_since(killed).as_secs_f64())
            })
            .collect()
    };
    loop {
        let firsts = first_after(&seen.lock().unwrap());
        if firsts.iter().all(Option::is_some) || t0.elapsed() >= RESUME_WAIT {
            let never = firsts.iter().filter(|f| f.is_none()).count();
            return Restart {
                in_flight: in_flight.len(),
                ready_secs,
                resumed: firsts.into_iter().flatten().collect(),
                never,
            };
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ------------------------------------------------------------ the report

fn per_min(count: f64, secs: f64) -> f64 {
    if secs > 0.0 { count * 60.0 / secs } else { 0.0 }
}

fn operator_reads(api: &Requests) -> f64 {
    api.iter()
        .filter(|((verb, res), _)| !bench::is_write(verb) && operator_kind(verb, res))
        .fold(0.0, |sum, (_, v)| sum + v)
}

fn operator_writes(api: &Requests) -> f64 {
    api.iter()
        .filter(|((verb, res), _)| bench::is_write(verb) && operator_kind(verb, res))
        .fold(0.0, |sum, (_, v)| sum + v)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cores = cpu.lines().filter(|l| l.starts_with("processor")).count();
    let model = cpu
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = mem
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    format!(
        "{cores} cores ({model}), {:.0} GiB RAM",
        mem_kb as f64 / 1048576.0
    )
}

fn trains_cell(t: &Trains, ideal: f64) -> String {
    let p50 = bench::percentile(&t.succeeded, 50.0);
    let max = bench::percentile(&t.succeeded, 100.0);
    match (p50, max) {
        (Some(a), Some(b)) => format!("{a:.0} / {b:.0} s ({:.1}x / {:.1}x)", a / ideal, b / ideal),
        _ => "--".into(),
    }
}

fn unfinished_cell(t: &Trains) -> String {
    let left = t.total - t.succeeded.len();
    if left == 0 {
        return "0".into();
    }
    let phases: Vec<String> = t.others.iter().map(|(p, n)| format!("{n} {p}")).collect();
    let waves: Vec<String> = t
        .waves
        .iter()
        .map(|(w, n)| format!("{n} in wave {w}"))
        .collect();
    format!("**{left}** ({}; {})", phases.join(", "), waves.join(", "))
}

/// The table row and the details block of one size.
fn render(cfg: &Config, r: &Report) -> (String, String) {
    let ideal = cfg.shape.ideal().as_secs_f64();
    let (run0, run1) = &r.run;
    let (idle0, idle1) = &r.idle;
    let run_api = bench::delta(&run0.api, &run1.api);
    let idle_api = bench::delta(&idle0.api, &idle1.api);
    let idle_secs = idle1.at.duration_since(idle0.at).as_secs_f64();
    let tck = cfg.clk_tck as f64;
    let cpu_run = run1.cpu_ticks as f64 / tck;
    let cpu_idle = idle1.cpu_ticks.saturating_sub(idle0.cpu_ticks) as f64 / tck;
    let reconciles = run1.reconciles - run0.reconciles;
    let reads = operator_reads(&run_api);
    let per_reconcile = if reconciles > 0.0 {
        reads / reconciles
    } else {
        0.0
    };
    let prom_qps = (run1.prom_queries - run0.prom_queries) / r.run_secs.max(1.0);
    let code = format!("{} (`{}`)", cfg.label, cfg.commit);
    let in_cap = format!(
        "{} / {}{}",
        r.trains.succeeded.len(),
        r.releases,
        if r.capped { " (cap hit)" } else { "" }
    );
    let idle_note = if r.trains.in_flight() > 0 {
        " (not idle: trains in flight)"
    } else {
        ""
    };
    let row = match &r.restart {
        None => format!(
            "| {code} | {} | {} ({}) | {in_cap} | {} | {} | {} | {} | {} | {:.1} / {:.1} | {:.0} ({:.1} per reconcile) | {:.0}{idle_note} | {:.1} |",
            r.date,
            r.services,
            r.releases,
            unfinished_cell(&r.trains),
            trains_cell(&r.trains, ideal),
            bench::spread(&r.step_lateness),
            bench::mib(idle1.rss.1.max(run1.rss.1)),
            bench::mib(idle1.rss.0),
            cpu_run,
            cpu_idle,
            reads,
            per_reconcile,
            operator_writes(&idle_api),
            prom_qps,
        ),
        Some(x) => format!(
            "| {code} | {} | {} ({}) | {} | {:.1} s | {} | {} | {} | {} | {} |",
            r.date,
            r.services,
            r.releases,
            x.in_flight,
            x.ready_secs,
            p50_max(&x.resumed),
            if x.never > 0 {
                format!("**{}**", x.never)
            } else {
                "0".into()
            },
            if r.faults.is_empty() {
                "0".to_string()
            } else {
                format!("**{}**", r.faults.len())
            },
            in_cap,
            trains_cell(&r.trains, ideal),
        ),
    };

    let mut d = String::new();
    let _ = writeln!(
        d,
        "#### {} (`{}`), {} services ({} Releases), {}\n",
        cfg.label, cfg.commit, r.services, r.releases, r.date
    );
    let _ = writeln!(
        d,
        "- Machine: {}; load average (1, 5, 15 min) {} when the operator started, {} when the run ended.",
        machine(),
        run0.load,
        run1.load
    );
    let _ = writeln!(
        d,
        "- Shape: bake {} s, analysis every {} s, {} replica(s) per app; ideal train {ideal:.0} s; cap {} s after the last Release was created.",
        cfg.shape.bake.as_secs(),
        cfg.shape.interval.as_secs(),
        cfg.replicas,
        cfg.cap().as_secs()
    );
    let _ = writeln!(
        d,
        "- Run: {:.0} s from the operator's start to {}; {:.0} reconciles, mean {:.3} s each; CPU {cpu_run:.1} s; peak RSS {}.",
        r.run_secs,
        if r.capped {
            "the cap"
        } else {
            "the last train's end"
        },
        reconciles,
        if reconciles > 0.0 {
            (run1.reconcile_seconds - run0.reconcile_seconds) / reconciles
        } else {
            0.0
        },
        bench::mib(run1.rss.1),
    );
    let _ = writeln!(
        d,
        "- Idle {idle_secs:.0} s after: CPU {cpu_idle:.1} s, RSS {}{idle_note}.",
        bench::mib(idle1.rss.0)
    );
    let started = r.steps.len();
    let passed = r.steps.iter().filter(|s| s.passed.is_some()).count();
    let _ = writeln!(
        d,
        "- Steps: {started} started, {passed} passed (of {} in all). Lateness p50 / p99 / max: step (complete -> next weight in effect) {} over {} steps; decision (complete -> StepPassed) {} over {}; hand-over (dependencies promoted -> first weight in effect) {} over {}; measurement (due -> taken) {} over {}.",
        r.services * bench::WEIGHTS.len(),
        bench::spread(&r.step_lateness),
        r.step_lateness.len(),
        bench::spread(&r.decision_lateness),
        r.decision_lateness.len(),
        bench::spread(&r.handover_lateness),
        r.handover_lateness.len(),
        bench::spread(&r.measurement_lateness),
        r.measurement_lateness.len(),
    );
    if let Some(x) = &r.restart {
        let _ = writeln!(
            d,
            "- Restart: SIGKILL with {} trains in flight; ready again after {:.1} s; each train's status written again after p50 / max {} ({} not within {} s).",
            x.in_flight,
            x.ready_secs,
            p50_max(&x.resumed),
            x.never,
            RESUME_WAIT.as_secs()
        );
    }
    let _ = writeln!(
        d,
        "- Repeated or skipped steps: {}{}",
        r.faults.len(),
        if r.faults.is_empty() {
            String::new()
        } else {
            format!(
                " (first: {})",
                r.faults
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        }
    );
    let _ = writeln!(
        d,
        "- Prometheus: {:.1} queries/s over the run ({:.1} evaluations/s).\n",
        prom_qps,
        (run1.prom_evals - run0.prom_evals) / r.run_secs.max(1.0)
    );
    let (bg, bg_secs) = &r.background;
    let _ = writeln!(
        d,
        "API requests (`apiserver_request_total`, all clients; in **bold** the operator's: GET and LIST of the kinds only it reads, writes of the kinds it writes (Events also come from the cluster)):\n"
    );
    let _ = writeln!(
        d,
        "| verb | resource | per min without operator | run | run per min | idle {idle_secs:.0} s |"
    );
    let _ = writeln!(d, "|---|---|---|---|---|---|");
    let mut keys: Vec<&(String, String)> = run_api
        .keys()
        .chain(idle_api.keys())
        .chain(bg.keys())
        .collect();
    keys.sort();
    keys.dedup();
    keys.sort_by(|a, b| {
        let v = |k: &(String, String)| run_api.get(k).copied().unwrap_or(0.0);
        v(b).total_cmp(&v(a))
    });
    let get = |m: &Requests, k: &(String, String)| m.get(k).copied().unwrap_or(0.0);
    for k in keys
        .iter()
        .filter(|k| get(&run_api, k) >= 1.0 || get(&idle_api, k) >= 1.0)
        .take(30)
    {
        let (verb, res) = (*k).clone();
        let name = if operator_kind(&verb, &res) {
            format!("**{res}**")
        } else {
            res
        };
        let _ = writeln!(
            d,
            "| {verb} | {name} | {:.1} | {:.0} | {:.1} | {:.0} |",
            per_min(get(bg, k), *bg_secs),
            get(&run_api, k),
            per_min(get(&run_api, k), r.run_secs),
            get(&idle_api, k),
        );
    }
    (row, d)
}

const SCALE_ROWS: &str = "<!-- bench-scale:rows -->";
const RESTART_ROWS: &str = "<!-- bench-restart:rows -->";
const DETAILS: &str = "<!-- bench-scale:details -->";

/// Put the row at the end of its table and the details block at the end of
/// the details, both marked by an HTML comment in the file.
fn record(path: &PathBuf, row: &str, details: &str, restart: bool) {
    let mut text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let rows = if restart { RESTART_ROWS } else { SCALE_ROWS };
    for marker in [rows, DETAILS] {
        assert!(
            text.contains(marker),
            "{} has no {marker} line: put it right after the table it belongs to",
            path.display()
        );
    }
    text = text.replacen(rows, &format!("{row}\n{rows}"), 1);
    text = text.replacen(DETAILS, &format!("{details}\n{DETAILS}"), 1);
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

#[tokio::main]
async fn main() {
    signalman_e2e::install_crypto_provider();
    let cfg = Config::from_env();
    let client = signalman_e2e::client().await;
    let sizes = match cfg.restart {
        Some(releases) => vec![releases * 5],
        None => cfg.sizes.clone(),
    };
    for services in sizes {
        let report = run_size(&client, &cfg, services).await;
        let (row, details) = render(&cfg, &report);
        println!("{row}\n\n{details}");
        if let Some(path) = &cfg.results {
            record(path, &row, &details, cfg.restart.is_some());
            say(format!("recorded in {}", path.display()));
        }
    }
}

/// "p50 / max s" of `secs`, or "--" when there are none.
fn p50_max(secs: &[f64]) -> String {
    match (
        bench::percentile(secs, 50.0),
        bench::percentile(secs, 100.0),
    ) {
        (Some(a), Some(b)) => format!("{a:.1} / {b:.1} s"),
        _ => "--".into(),
    }
}

//! Two operator processes with leader election, as the chart runs them (its
//! ServiceAccount, its Lease Role): only the leader acts, the follower makes no
//! write at all; SIGKILL on the leader mid-release and the follower takes the
//! Lease and finishes the release without repeating a promotion; a leader
//! cut off by a stalled connection steps down before the follower takes over,
//! as the API server's audit log shows.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use signalman_e2e::helm::Installed;
use signalman_e2e::operator::{Launch, Operator, sample};
use signalman_e2e::release::{self as rel, phase, release, svc, wait_release};
use signalman_e2e::{self as e2e, Look, TestNamespace};

const LEASE: &str = "signalman-leader";
/// Short, so the test is quick; the chart's default is 15 s.
const DURATION: Duration = Duration::from_secs(6);

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt(LEASE)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec?.holder_identity)
}

/// Wait until `want` holds the Lease; returns how long that took.
async fn wait_holder(leases: &Api<Lease>, want: &str, timeout: Duration) -> Duration {
    let start = Instant::now();
    let what = format!("{want} to take the lease");
    e2e::poll(&what, timeout, Duration::from_millis(50), || async {
        match holder(leases).await {
            Some(h) if h == want => Look::Done(()),
            h => Look::NotYet(format!("holder: {h:?}")),
        }
    })
    .await;
    start.elapsed()
}

/// The chart installed into a fresh namespace, and how to launch the operator
/// as its ServiceAccount, electing a leader with the Lease [`LEASE`] of `duration`.
async fn setup(
    client: &kube::Client,
    prefix: &str,
    sets: &[&str],
    duration: Duration,
) -> (TestNamespace, Installed, Launch, Api<Lease>) {
    let ns = TestNamespace::create(client, prefix).await;
    let chart = Installed::new(ns.name(), sets).await;
    let launch = Operator::launch(ns.name())
        .kubeconfig(&chart.token_kubeconfig().await)
        .leader_election(LEASE, duration);
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns.name());
    (ns, chart, launch, leases)
}

#[tokio::test]
async fn only_the_leader_acts_and_the_follower_takes_over_after_sigkill() {
    let client = e2e::client().await;
    let lease_duration = format!("leaderElection.leaseDurationSeconds={}", DURATION.as_secs());
    let (ns, chart, launch, leases) = setup(
        &client,
        "leader",
        &["replicaCount=0", &lease_duration],
        DURATION,
    )
    .await;
    let mut first = launch.clone().name("replica-1").start().await;
    let elected_in = wait_holder(&leases, "replica-1", Duration::from_secs(20)).await;
    first.wait_ready(Duration::from_secs(30)).await;
    let second = launch.name("replica-2").start().await;
    let standby = second.wait_ready(Duration::from_secs(10)).await;
    assert!(standby.contains("standby"), "follower /readyz: {standby}");
    eprintln!("MEASURE first replica elected {elected_in:?} after start");

    // The leader is mid-release: a's canary runs and is being measured.
    let api = mid_release(&client, ns.name()).await;
    let leader_writes = first.api_writes().await;
    let follower_writes = second.api_writes().await;
    assert!(leader_writes > 0.0, "the leader wrote nothing");
    assert_eq!(
        follower_writes,
        0.0,
        "the follower wrote while not leading:\n{}",
        second.metrics().await
    );
    assert_eq!(holder(&leases).await.as_deref(), Some("replica-1"));
    // The follower never took the Lease, and its controller never ran.
    let lease = leases.get(LEASE).await.unwrap().spec.unwrap();
    assert_eq!(lease.lease_transitions, Some(0), "{lease:?}");
    let follower = second.metrics().await;
    assert_eq!(
        sample(&follower, "signalman_reconciles_total"),
        Some(0.0),
        "{follower}"
    );
    assert_eq!(
        sample(&follower, "signalman_leader"),
        Some(0.0),
        "{follower}"
    );
    let leader_metrics = first.metrics().await;
    assert_eq!(
        sample(&leader_metrics, "signalman_leader"),
        Some(1.0),
        "{leader_metrics}"
    );
    // The follower has no Release cache, so no release series either.
    assert!(!second.metrics().await.contains("signalman_releases{"));

    // SIGKILL: no hand-over, the lease must expire.
    let killed_at = Instant::now();
    first.kill().await;
    let takeover = wait_holder(&leases, "replica-2", DURATION * 3).await;
    eprintln!(
        "MEASURE takeover after SIGKILL: {:.2}s (lease duration {}s, renew every {}s)",
        takeover.as_secs_f64(),
        DURATION.as_secs(),
        DURATION.as_secs_f64() / 6.0
    );
    // Within the lease duration of the last renewal the follower saw, plus
    // one poll and the time to notice: well under two durations.
    assert!(
        takeover < DURATION + DURATION / 2 + Duration::from_secs(1),
        "takeover took {takeover:?}"
    );
    assert!(killed_at.elapsed() >= takeover);

    let r = wait_release(&api, "train", "Succeeded", Duration::from_secs(120), |r| {
        phase(&r["status"]) == "Succeeded" || phase(&r["status"]) == "RolledBack"
    })
    .await;
    assert_eq!(phase(&r["status"]), "Succeeded", "{}", r["status"]);
    assert!(
        second.api_writes().await > 0.0,
        "the new leader did not act"
    );
    // Resumed, not restarted: one Promoted per service, one Started.
    let reasons = rel::timeline(&r["status"]);
    for svc in ["a", "b"] {
        let n = reasons
            .iter()
            .filter(|(r, s)| r == "Promoted" && s == svc)
            .count();
        assert_eq!(n, 1, "{svc} promoted {n} times: {reasons:?}");
    }
    assert_eq!(
        reasons.iter().filter(|(r, _)| r == "Started").count(),
        1,
        "{reasons:?}"
    );
    drop(second);
    chart.uninstall().await;
    ns.delete().await;
}

#[tokio::test]
async fn sigterm_hands_the_lease_over_at_once() {
    let client = e2e::client().await;
    // A long lease: a hand-over that waited for expiry would take 30 s.
    let long = Duration::from_secs(30);
    let (ns, chart, launch, leases) =
        setup(&client, "leader-term", &["replicaCount=0"], long).await;
    let mut first = launch.clone().name("term-1").start().await;
    wait_holder(&leases, "term-1", Duration::from_secs(20)).await;
    let second = launch.name("term-2").start().await;
    second.wait_ready(Duration::from_secs(10)).await;

    first.sigterm();
    let handed = wait_holder(&leases, "term-2", Duration::from_secs(15)).await;
    eprintln!(
        "MEASURE hand-over after SIGTERM: {:.2}s (lease duration 30s)",
        handed.as_secs_f64()
    );
    assert!(handed < Duration::from_secs(10), "{handed:?}");
    // The old leader exited cleanly.
    let status = first.wait_exit(Duration::from_secs(20)).await;
    assert!(
        status.success(),
        "exit after SIGTERM: {status}; {}",
        first.log_tail()
    );
    drop(second);
    chart.uninstall().await;
    ns.delete().await;
}

#[tokio::test]
async fn a_leader_that_cannot_renew_steps_down_before_the_lease_expires() {
    use k8s_openapi::api::rbac::v1::RoleBinding;
    let client = e2e::client().await;
    let (ns, chart, launch, leases) =
        setup(&client, "leader-cut", &["replicaCount=0"], DURATION).await;
    let mut leader = launch.name("cut-1").start().await;
    wait_holder(&leases, "cut-1", Duration::from_secs(20)).await;
    leader.wait_ready(Duration::from_secs(30)).await;

    // Take the Lease permissions away: every renewal is now refused.
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), ns.name());
    bindings
        .delete(
            &format!("{}-signalman-leader-election", chart.release()),
            &Default::default(),
        )
        .await
        .expect("deleting the leader-election RoleBinding");
    let cut = Instant::now();
    // Before the lease could expire twice over, it must have given up.
    let status = leader.wait_exit(DURATION * 2).await;
    let stopped = cut.elapsed();
    eprintln!(
        "MEASURE leader stopped {:.2}s after losing the right to renew (lease duration {}s, renew deadline {:.1}s)",
        stopped.as_secs_f64(),
        DURATION.as_secs(),
        DURATION.as_secs_f64() * 2.0 / 3.0
    );
    assert!(
        !status.success(),
        "a leader that lost its lease must exit with an error"
    );
    // It stopped before anyone could have taken the lease over.
    assert!(stopped < DURATION, "{stopped:?}");
    chart.uninstall().await;
    ns.delete().await;
}

// ---- a leader cut off by a stalled connection ----------------------------------

/// A TCP proxy in front of the API server that the test can stall: it stops
/// forwarding in both directions without closing anything (what it read, it
/// holds), and on resume forwards what it held, as a network that stalls
/// and recovers would. The operator's TLS runs through it end to end.
struct StallingProxy {
    addr: std::net::SocketAddr,
    stalled: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl StallingProxy {
    async fn start(upstream: String) -> StallingProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stalled = std::sync::Arc::new(tokio::sync::watch::channel(false).0);
        let tx = stalled.clone();
        let task = tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let Ok(up) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (dr, dw) = down.into_split();
                let (ur, uw) = up.into_split();
                tokio::spawn(Self::pump(dr, uw, tx.subscribe()));
                tokio::spawn(Self::pump(ur, dw, tx.subscribe()));
            }
        });
        StallingProxy {
            addr,
            stalled,
            task,
        }
    }

    async fn pump(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        mut stalled: tokio::sync::watch::Receiver<bool>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            if stalled.wait_for(|s| !*s).await.is_err() {
                return;
            }
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = stalled.wait_for(|s| !*s).await;
                    let _ = to.shutdown().await;
                    return;
                }
                Ok(n) => n,
            };
            // Read just as the stall began: held until it ends.
            if stalled.wait_for(|s| !*s).await.is_err() {
                return;
            }
            if to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }

    fn stall(&self, stalled: bool) {
        self.stalled.send_replace(stalled);
    }

    /// `kubeconfig` with its server pointed at this proxy (same TLS name:
    /// the API server's certificate is for 127.0.0.1).
    fn route(&self, kubeconfig: &std::path::Path, upstream: &str) -> std::path::PathBuf {
        let text = std::fs::read_to_string(kubeconfig).unwrap();
        assert!(text.contains(upstream), "{text}");
        let routed = text.replace(upstream, &self.addr.to_string());
        let path = kubeconfig.with_extension("proxied.kubeconfig");
        std::fs::write(&path, routed).unwrap();
        path
    }
}

impl Drop for StallingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One write in the API server's audit log (e2e/cluster/lib.sh logs every
/// write of a ServiceAccount outside kube-system at Metadata level).
#[derive(Debug, Clone)]
struct Audited {
    user: String,
    verb: String,
    what: String,
    code: u16,
    received: jiff::Timestamp,
    completed: jiff::Timestamp,
}

fn audit_log() -> std::path::PathBuf {
    e2e::kubeconfig_path()
        .parent()
        .expect("the kubeconfig's directory")
        .join("logs/audit.log")
}

/// The writes of `users` in namespace `ns`, in the order the API server received them.
fn audited_writes(ns: &str, users: &[&str]) -> Vec<Audited> {
    let text = std::fs::read_to_string(audit_log()).unwrap_or_else(|e| {
        panic!(
            "reading {}: {e} (a cluster started before audit logging: restart it with e2e/cluster/down.sh && up.sh)",
            audit_log().display()
        )
    });
    let ts = |v: &serde_json::Value| -> jiff::Timestamp { v.as_str().unwrap().parse().unwrap() };
    let mut out: Vec<Audited> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["stage"] == "ResponseComplete")
        .filter(|e| e["objectRef"]["namespace"] == ns)
        .filter(|e| users.iter().any(|u| e["user"]["username"] == *u))
        .map(|e| Audited {
            user: e["user"]["username"].as_str().unwrap().to_owned(),
            verb: e["verb"].as_str().unwrap_or_default().to_owned(),
            what: format!(
                "{}/{}{}",
                e["objectRef"]["resource"].as_str().unwrap_or_default(),
                e["objectRef"]["name"].as_str().unwrap_or_default(),
                e["objectRef"]["subresource"]
                    .as_str()
                    .map(|s| format!("/{s}"))
                    .unwrap_or_default()
            ),
            code: e["responseStatus"]["code"].as_u64().unwrap_or(0) as u16,
            received: ts(&e["requestReceivedTimestamp"]),
            completed: ts(&e["stageTimestamp"]),
        })
        .collect();
    out.sort_by_key(|a| a.received);
    out
}

/// A second identity with the chart's rights: ServiceAccount `name` bound to
/// the chart's ClusterRole and Roles, so the audit log tells the replicas apart.
async fn second_identity(
    client: &kube::Client,
    chart: &Installed,
    ns: &str,
    name: &str,
) -> std::path::PathBuf {
    let full = chart.service_account();
    let yaml = format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {name}, namespace: {ns}}}\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: {ns}-{name}}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {full}}}\n\
         subjects: [{{kind: ServiceAccount, name: {name}, namespace: {ns}}}]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: {name}-secrets, namespace: {ns}}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: {full}-secrets}}\n\
         subjects: [{{kind: ServiceAccount, name: {name}, namespace: {ns}}}]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: {name}-leader-election, namespace: {ns}}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: {full}-leader-election}}\n\
         subjects: [{{kind: ServiceAccount, name: {name}, namespace: {ns}}}]\n"
    );
    e2e::apply_yaml(client, Some(ns), &yaml).await;
    signalman_e2e::helm::token_kubeconfig(ns, name, &e2e::scratch_dir()).await
}

/// The leader's connection to the API server stalls mid-release (a proxy
/// stops forwarding both ways, closing nothing): its Lease calls time out,
/// it steps down within the renew deadline, the follower takes over after
/// the lease duration and finishes the release; then the proxy forwards
/// what it held. The API server's audit log shows one writer at a time:
/// every write of the old leader that succeeded completed before the new
/// leader's first write was received.
#[tokio::test]
async fn a_stalled_leader_steps_down_and_the_api_server_sees_one_writer_at_a_time() {
    let client = e2e::client().await;
    let lease_duration = format!("leaderElection.leaseDurationSeconds={}", DURATION.as_secs());
    let (ns, chart, launch, leases) = setup(
        &client,
        "leader-stall",
        &["replicaCount=0", &lease_duration],
        DURATION,
    )
    .await;
    let user = |sa: &str| format!("system:serviceaccount:{}:{sa}", ns.name());
    let (old_user, new_user) = (user(&chart.service_account()), user("standby"));
    let standby_kubeconfig = second_identity(&client, &chart, ns.name(), "standby").await;

    let server = {
        let kc = kube::config::Kubeconfig::read_from(e2e::kubeconfig_path()).unwrap();
        let url: http::Uri = kc.clusters[0]
            .cluster
            .as_ref()
            .unwrap()
            .server
            .clone()
            .unwrap()
            .parse()
            .unwrap();
        url.authority().unwrap().to_string()
    };
    let proxy = StallingProxy::start(server.clone()).await;
    let leader_kubeconfig = proxy.route(&chart.token_kubeconfig().await, &server);
    let mut first = launch
        .clone()
        .kubeconfig(&leader_kubeconfig)
        .name("stall-1")
        .start()
        .await;
    wait_holder(&leases, "stall-1", Duration::from_secs(20)).await;
    first.wait_ready(Duration::from_secs(30)).await;
    let second = launch
        .kubeconfig(&standby_kubeconfig)
        .name("stall-2")
        .start()
        .await;
    let standby = second.wait_ready(Duration::from_secs(10)).await;
    assert!(standby.contains("standby"), "follower /readyz: {standby}");

    // The leader is mid-release: a's canary runs and is being measured.
    let api = mid_release(&client, ns.name()).await;

    let stalled_at = Instant::now();
    let stalled_wall = jiff::Timestamp::now();
    proxy.stall(true);
    let status = first.wait_exit(DURATION * 2).await;
    let stopped = stalled_at.elapsed();
    assert!(
        !status.success(),
        "the cut-off leader must exit with an error"
    );
    let log = std::fs::read_to_string(first.log_path()).unwrap();
    // When it stepped down (its fence shut), by its own log's timestamp;
    // the process exits a little later (it prints a backtrace in tests).
    let stepped_down: jiff::Timestamp = log
        .lines()
        .find(|l| {
            l.contains(
                "lost the lease (not renewed within the renew deadline, or taken): stepping down",
            )
        })
        .and_then(|l| {
            let plain: String = l
                .split('\u{1b}')
                .map(|p| p.split_once('m').map_or(p, |(_, r)| r))
                .collect();
            plain.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no step-down in the old leader's log:\n{log}"));
    let stepped_down = stepped_down.duration_since(stalled_wall).as_secs_f64();
    let takeover = wait_holder(&leases, "stall-2", DURATION * 3).await + stopped;
    eprintln!(
        "MEASURE stalled leader stepped down {stepped_down:.2}s and exited {:.2}s after the stall (renew deadline {:.1}s); follower took the Lease {:.2}s after the stall (lease duration {}s)",
        stopped.as_secs_f64(),
        DURATION.as_secs_f64() * 2.0 / 3.0,
        takeover.as_secs_f64(),
        DURATION.as_secs()
    );
    // The renew deadline counts from the last renewal sent, before the stall.
    assert!(
        stepped_down <= 4.1,
        "stepped down {stepped_down:.2}s after the stall"
    );
    // Exited before anyone could have taken the lease over.
    assert!(stopped < DURATION, "{stopped:?}");
    // Let the new leader write while the old one's requests are still held,
    // then release them.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let resumed = jiff::Timestamp::now();
    proxy.stall(false);

    let r = wait_release(&api, "train", "Succeeded", Duration::from_secs(120), |r| {
        phase(&r["status"]) == "Succeeded" || phase(&r["status"]) == "RolledBack"
    })
    .await;
    assert_eq!(phase(&r["status"]), "Succeeded", "{}", r["status"]);
    let reasons = rel::timeline(&r["status"]);
    for svc in ["a", "b"] {
        let n = reasons
            .iter()
            .filter(|(r, s)| r == "Promoted" && s == svc)
            .count();
        assert_eq!(n, 1, "{svc} promoted {n} times: {reasons:?}");
    }
    assert_eq!(
        reasons.iter().filter(|(r, _)| r == "Started").count(),
        1,
        "{reasons:?}"
    );

    // The audit log: who wrote what, in the API server's own order.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let writes = audited_writes(ns.name(), &[&old_user, &new_user]);
    let ok = |a: &&Audited| (200..300).contains(&a.code);
    let old_ok: Vec<&Audited> = writes
        .iter()
        .filter(|a| a.user == old_user)
        .filter(ok)
        .collect();
    let new_ok: Vec<&Audited> = writes
        .iter()
        .filter(|a| a.user == new_user)
        .filter(ok)
        .collect();
    let last_old = old_ok
        .iter()
        .map(|a| a.completed)
        .max()
        .expect("the old leader wrote nothing");
    let first_new = new_ok
        .iter()
        .map(|a| a.received)
        .min()
        .expect("the new leader wrote nothing");
    let late: Vec<&Audited> = writes
        .iter()
        .filter(|a| a.user == old_user && a.received >= resumed)
        .collect();
    eprintln!(
        "MEASURE audit: old leader {} writes ({} succeeded), new leader {} writes ({} succeeded); \
         gap between the old leader's last completed write and the new leader's first: {:.2}s; \
         held old-leader writes delivered after the resume: {:?}",
        writes.iter().filter(|a| a.user == old_user).count(),
        old_ok.len(),
        writes.iter().filter(|a| a.user == new_user).count(),
        new_ok.len(),
        first_new.duration_since(last_old).as_secs_f64(),
        late.iter()
            .map(|a| format!("{} {} -> {}", a.verb, a.what, a.code))
            .collect::<Vec<_>>()
    );
    assert!(
        last_old < first_new,
        "two writers: the old leader's last write completed at {last_old}, the new leader's first was received at {first_new}:\n{}",
        writes
            .iter()
            .map(|a| format!(
                "{} {} {} {} {} -> {}",
                a.received, a.completed, a.user, a.verb, a.what, a.code
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The new leader's first write is its taking of the Lease.
    let first = new_ok.iter().min_by_key(|a| a.received).unwrap();
    assert_eq!(first.what, format!("leases/{LEASE}"), "{first:?}");

    drop(second);
    drop(proxy);
    let crb: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(client.clone());
    let _ = crb
        .delete(&format!("{}-standby", ns.name()), &Default::default())
        .await;
    chart.uninstall().await;
    ns.delete().await;
}

/// A two-service train `train` in `ns`, once its first canary has a
/// measurement (the leader is mid-release).
async fn mid_release(client: &kube::Client, ns: &str) -> kube::Api<signalman::api::Release> {
    e2e::deploy_apps(client, ns, &["a", "b"]).await;
    let api = rel::releases(client, ns);
    let train = release("train")
        .defaults(&[(50, 6), (100, 3)])
        .error_limit(3)
        .service(svc("a").error_rate("0"))
        .service(svc("b").after(&["a"]).error_rate("0"))
        .build();
    rel::apply(client, ns, &train).await;
    wait_release(
        &api,
        "train",
        "a measured canary",
        Duration::from_secs(60),
        |r| {
            r["status"]["services"][0]["measurements"]
                .as_array()
                .is_some_and(|m| !m.is_empty())
        },
    )
    .await;
    api
}

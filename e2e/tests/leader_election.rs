//! Two operator processes with leader election, as the chart runs them (its
//! ServiceAccount, its Lease Role): only the leader acts, the follower makes no
//! write at all; SIGKILL on the leader mid-release and the follower takes the
//! Lease and finishes the release without repeating a promotion.

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

    e2e::deploy_apps(&client, ns.name(), &["a", "b"]).await;
    let api = rel::releases(&client, ns.name());
    let train = release("train")
        .defaults(&[(50, 6), (100, 3)])
        .error_limit(3)
        .service(svc("a").error_rate("0"))
        .service(svc("b").after(&["a"]).error_rate("0"))
        .build();
    rel::apply(&client, ns.name(), &train).await;
    // The leader is mid-release: a's canary runs and is being measured.
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

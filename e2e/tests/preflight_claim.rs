//! `kubectl signalman plan` and the controller give the same answer on the
//! same cluster: an older Release, Pending (paused before it started), names
//! the Deployment a new Release wants. The controller stalls the new one with
//! `DeploymentClaimed`; `plan` must refuse it with the same words, before it
//! is applied and after.

use std::path::{Path, PathBuf};
use std::time::Duration;

use signalman::api::Release;
use signalman_e2e::plugin::plugin;
use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{Scenario, WebApp};

/// A Release moving Deployment `web` to v2, paused or not.
fn claim(name: &str, paused: bool) -> Release {
    let r = release(name)
        .defaults(&[(50, 1), (100, 1)])
        .service(svc("web"));
    if paused { r.paused() } else { r }.build()
}

/// Write `release` as YAML to `<dir>/<name>.yaml`, for `plan -f`.
fn write(dir: &Path, release: &Release) -> PathBuf {
    let path = dir.join(format!(
        "{}.yaml",
        release.metadata.name.as_deref().unwrap()
    ));
    std::fs::write(&path, serde_yaml::to_string(release).unwrap()).unwrap();
    path
}

/// The problem lines of `plan`'s output, as `field: message`.
fn problems(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("✖ "))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn plan_refuses_what_the_controller_stalls_when_an_older_pending_release_holds_the_deployment()
 {
    let sc = Scenario::start("preflight-claim").await;
    let n = sc.ns();
    sc.deploy(&[WebApp::new("web").replicas(1)]).await;

    // Older, valid, and not in flight: paused before it started.
    let api = sc.apply(&claim("early", true)).await;
    rel::wait_status(
        &api,
        "early",
        "Pending, paused before it started",
        Duration::from_secs(30),
        |s| {
            rel::phase(s) == "Pending"
                && s["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("paused by spec.paused"))
        },
    )
    .await;

    let dir = std::env::temp_dir().join(format!("signalman-preflight-claim-{n}"));
    std::fs::create_dir_all(&dir).unwrap();
    let late = claim("late", false);
    let late_file = write(&dir, &late);
    let file = late_file.to_str().unwrap();

    // Before it exists: a file not applied yet comes after every stored Release.
    let before = plugin(&["plan", "-f", file, "-n", n]).await;
    assert_eq!(before.code, 1, "plan must refuse it: {}", before.stdout);
    let planned = problems(&before.stdout);
    assert_eq!(planned.len(), 1, "{}", before.stdout);
    assert!(
        planned[0].starts_with(
            "spec.services[0].deployment: Deployment \"web\" is claimed by Release \"early\""
        ),
        "{}",
        before.stdout
    );

    // Applied: the controller stalls it, with the words plan used.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    sc.apply(&late).await;
    let status = rel::wait_status(
        &api,
        "late",
        "Stalled=DeploymentClaimed",
        Duration::from_secs(30),
        |s| rel::condition(s, "Stalled").is_some_and(|c| c["status"] == "True"),
    )
    .await;
    let stalled = rel::condition(&status, "Stalled").unwrap();
    assert_eq!(stalled["reason"], "DeploymentClaimed", "{stalled}");
    assert_eq!(stalled["message"].as_str().unwrap(), planned.join("; "));
    assert_eq!(rel::phase(&status), "Pending");

    // And plan, now that it is stored with its own creation time, still agrees.
    let after = plugin(&["plan", "-f", file, "-n", n]).await;
    assert_eq!(after.code, 1, "{}", after.stdout);
    assert_eq!(problems(&after.stdout), planned);

    // The older one is not held back by the younger: plan passes it, and it
    // stays untouched only because it is paused.
    let early_file = write(&dir, &claim("early", true));
    let early = plugin(&["plan", "-f", early_file.to_str().unwrap(), "-n", n]).await;
    assert_eq!(early.code, 0, "{}", early.stdout);
    let _ = std::fs::remove_dir_all(&dir);
    sc.end().await;
}

//! `kubectl signalman plan` and the controller give the same answer on the
//! same cluster: an older Release, Pending (paused before it started), names
//! the Deployment a new Release wants. The controller stalls the new one with
//! `DeploymentClaimed`; `plan` must refuse it with the same words, before it
//! is applied and after.

mod plugin_support;

use std::time::Duration;

use signalman_e2e::operator::{self as op, Operator};
use signalman_e2e::{self as e2e, TestNamespace};

use plugin_support::{install_crd, plugin};

fn release(name: &str, paused: bool) -> String {
    format!(
        "apiVersion: signalman.dev/v1alpha1\nkind: Release\nmetadata: {{name: {name}}}\nspec:\n  owner: team-e2e\n  paused: {paused}\n{}  services:\n  - {{name: web, deployment: web, change: {{images: {{app: \"registry.example/web:v2\"}}}}}}\n",
        op::defaults_yaml(&[(50, 1), (100, 1)])
    )
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
    let client = e2e::client().await;
    install_crd(&client).await;
    let ns = TestNamespace::create(&client, "preflight-claim").await;
    let n = ns.name();
    let _operator = Operator::start(n).await;
    e2e::apply_yaml(
        &client,
        Some(n),
        &op::web_app("web", 1, "registry.example/web:v1", 0),
    )
    .await;
    e2e::wait_deployment_ready(&client, n, "web", 1, Duration::from_secs(60)).await;

    // Older, valid, and not in flight: paused before it started.
    e2e::apply_yaml(&client, Some(n), &release("early", true)).await;
    let api = op::releases(&client, n);
    op::wait_status(
        &api,
        "early",
        "Pending, paused before it started",
        Duration::from_secs(30),
        |s| {
            op::phase(s) == "Pending"
                && s["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("paused by spec.paused"))
        },
    )
    .await;

    let dir = std::env::temp_dir().join(format!("signalman-preflight-claim-{n}"));
    std::fs::create_dir_all(&dir).unwrap();
    let late_file = dir.join("late.yaml");
    std::fs::write(&late_file, release("late", false)).unwrap();
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
    e2e::apply_yaml(&client, Some(n), &release("late", false)).await;
    let status = op::wait_status(
        &api,
        "late",
        "Stalled=DeploymentClaimed",
        Duration::from_secs(30),
        |s| op::condition(s, "Stalled").is_some_and(|c| c["status"] == "True"),
    )
    .await;
    let stalled = op::condition(&status, "Stalled").unwrap();
    assert_eq!(stalled["reason"], "DeploymentClaimed", "{stalled}");
    assert_eq!(stalled["message"].as_str().unwrap(), planned.join("; "));
    assert_eq!(op::phase(&status), "Pending");

    // And plan, now that it is stored with its own creation time, still agrees.
    let after = plugin(&["plan", "-f", file, "-n", n]).await;
    assert_eq!(after.code, 1, "{}", after.stdout);
    assert_eq!(problems(&after.stdout), planned);

    // The older one is not held back by the younger: plan passes it, and it
    // stays untouched only because it is paused.
    let early_file = dir.join("early.yaml");
    std::fs::write(&early_file, release("early", true)).unwrap();
    let early = plugin(&["plan", "-f", early_file.to_str().unwrap(), "-n", n]).await;
    assert_eq!(early.code, 0, "{}", early.stdout);
    let _ = std::fs::remove_dir_all(&dir);
    ns.delete().await;
}

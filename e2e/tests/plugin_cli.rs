//! `kubectl signalman` against the e2e cluster with a running operator: `get`
//! (view, table, `-o json|yaml`) during a release, `plan` checking the cluster,
//! `timeline` after a breach, and the one-sentence errors.

mod plugin_support;

use std::time::Duration;

use serde_json::Value;
use signalman_e2e::operator::{self as op, Operator};
use signalman_e2e::{self as e2e, TestNamespace};

use plugin_support::{install_crd, plugin, release_yaml};

#[tokio::test]
async fn get_shows_a_running_release_as_view_table_json_and_yaml() {
    let client = e2e::client().await;
    install_crd(&client).await;
    let ns = TestNamespace::create(&client, "plugin-get").await;
    let n = ns.name();
    let _operator = Operator::start(n).await;
    e2e::apply_yaml(
        &client,
        Some(n),
        &op::web_app("web", 2, "registry.example/web:v1", 0),
    )
    .await;
    e2e::wait_deployment_ready(&client, n, "web", 2, Duration::from_secs(60)).await;
    // A long first step, so the release is certainly running while we look.
    e2e::apply_yaml(
        &client,
        Some(n),
        &release_yaml("train", &[("web", &[], &[(50, 40), (100, 1)], "")]),
    )
    .await;
    let api = op::releases(&client, n);
    op::wait_status(
        &api,
        "train",
        "web baking at 50%",
        Duration::from_secs(60),
        |s| {
            op::phase(s) == "Progressing"
                && op::service(s, "web")
                    .is_some_and(|w| w["weight"] == 50 && w["bakeStartedAt"].is_string())
        },
    )
    .await;

    let json = plugin(&["get", "train", "-n", n, "-o", "json"]).await;
    assert_eq!(json.code, 0);
    let obj: Value =
        serde_json::from_str(&json.stdout).expect("get -o json prints one JSON object");
    assert_eq!(obj["kind"], "Release");
    assert_eq!(obj["metadata"]["name"], "train");
    assert_eq!(obj["status"]["phase"], "Progressing");
    let web = op::service(&obj["status"], "web").expect("web in status.services");
    assert_eq!(web["phase"], "Progressing");
    assert_eq!(web["weight"], 50);
    assert_eq!(web["step"], 0);

    let yaml = plugin(&["get", "train", "-n", n, "-o", "yaml"]).await;
    let obj: Value = serde_yaml::from_str(&yaml.stdout).expect("get -o yaml prints YAML");
    assert_eq!(obj["status"]["phase"], "Progressing");

    let list = plugin(&["get", "-n", n, "-o", "json"]).await;
    let list: Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][0]["metadata"]["name"], "train");

    let view = plugin(&["get", "train", "-n", n]).await;
    assert_eq!(view.code, 0);
    assert!(
        view.stdout
            .contains(&format!("Release train ({n})   ● Progressing")),
        "{}",
        view.stdout
    );
    let line = view
        .stdout
        .lines()
        .find(|l| l.contains(" web "))
        .expect("a line for web");
    assert!(
        line.contains("step 1/2") && line.contains("[##########..........]  50%"),
        "{line}"
    );
    assert!(line.contains("bake ") && line.contains(" left"), "{line}");
    assert!(view.stdout.contains("error-rate"), "{}", view.stdout);

    let table = plugin(&["get", "-n", n]).await;
    assert!(table.stdout.starts_with("NAME "), "{}", table.stdout);
    assert!(
        table
            .stdout
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("train ") && l.contains("Progressing"))
    );
    let all = plugin(&["get", "-A"]).await;
    assert!(
        all.stdout
            .lines()
            .any(|l| l.starts_with(n) && l.contains(" train ")),
        "{}",
        all.stdout
    );
    ns.delete().await;
}

#[tokio::test]
async fn errors_are_one_sentence_with_the_fix() {
    let client = e2e::client().await;
    install_crd(&client).await;
    let ns = TestNamespace::create(&client, "plugin-errors").await;
    let n = ns.name();

    let missing = plugin(&["get", "nope", "-n", n]).await;
    assert_eq!(missing.code, 1);
    assert_eq!(
        missing.stderr.trim_end(),
        format!(
            "error: no Release \"nope\" in namespace \"{n}\"; list them with kubectl signalman get -n {n}, or in every namespace with -A"
        )
    );
    for cmd in ["pause", "resume", "abort", "timeline"] {
        let r = plugin(&[cmd, "nope", "-n", n]).await;
        assert_eq!(r.code, 1, "{cmd}");
        assert!(
            r.stderr.starts_with("error: no Release \"nope\""),
            "{cmd}: {}",
            r.stderr
        );
    }
    let ctx = plugin(&["get", "-n", n, "--context", "no-such-context"]).await;
    assert_eq!(ctx.code, 1);
    assert_eq!(ctx.stderr.lines().count(), 1, "{}", ctx.stderr);
    assert!(
        ctx.stderr.contains("no-such-context") && ctx.stderr.contains("--kubeconfig"),
        "{}",
        ctx.stderr
    );

    let empty = plugin(&["get", "-n", n]).await;
    assert_eq!(
        empty.stdout.trim_end(),
        format!("No Releases in namespace {n}.")
    );
    ns.delete().await;
}

#[tokio::test]
async fn plan_checks_deployments_and_containers_in_the_cluster() {
    let client = e2e::client().await;
    install_crd(&client).await;
    let ns = TestNamespace::create(&client, "plugin-plan").await;
    let n = ns.name();
    e2e::apply_yaml(
        &client,
        Some(n),
        &op::web_app("web", 1, "registry.example/web:v1", 0),
    )
    .await;
    let dir = std::env::temp_dir().join(format!("signalman-plugin-plan-{n}"));
    std::fs::create_dir_all(&dir).unwrap();

    let good = dir.join("good.yaml");
    std::fs::write(
        &good,
        release_yaml("good", &[("web", &[], &[(50, 60), (100, 60)], "")]),
    )
    .unwrap();
    let ok = plugin(&["plan", "-f", good.to_str().unwrap(), "-n", n]).await;
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    assert!(
        ok.stdout.contains("This train takes at least 2m"),
        "{}",
        ok.stdout
    );
    assert!(
        ok.stdout.contains(&format!(
            "namespace {n}: 1 of 1 Deployment found, with the containers the change names"
        )),
        "{}",
        ok.stdout
    );

    // A container the Deployment does not have, and a Deployment that does not exist.
    let bad = dir.join("bad.yaml");
    let text = release_yaml(
        "bad",
        &[
            (
                "web",
                &[],
                &[(50, 60), (100, 60)],
                "      env: {sidecar: {X: \"1\"}}\n",
            ),
            ("api", &["web"], &[(50, 60), (100, 60)], ""),
        ],
    );
    std::fs::write(&bad, text).unwrap();
    let r = plugin(&["plan", "-f", bad.to_str().unwrap(), "-n", n]).await;
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        // The words of the controller's ContainerNotFound: both come from the one preflight.
        r.stdout.contains("✖ spec.services[0].change.env.sidecar: Deployment \"web\" has no container \"sidecar\" (it has \"app\"); use one of those names"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("✖ spec.services[1].deployment: Deployment \"api\" not found in namespace \"{n}\"; create it or fix the name")),
        "{}",
        r.stdout
    );
    // plan changes nothing in the cluster.
    assert!(
        op::releases(&client, n)
            .get_opt("bad")
            .await
            .unwrap()
            .is_none()
    );
    std::fs::remove_dir_all(&dir).unwrap();
    ns.delete().await;
}

#[tokio::test]
async fn timeline_marks_the_first_deviation_of_a_breach() {
    let client = e2e::client().await;
    install_crd(&client).await;
    let ns = TestNamespace::create(&client, "plugin-timeline").await;
    let n = ns.name();
    let _operator = Operator::start(n).await;
    for s in ["a", "b"] {
        e2e::apply_yaml(
            &client,
            Some(n),
            &op::web_app(s, 2, &format!("registry.example/{s}:v1"), 0),
        )
        .await;
        e2e::wait_deployment_ready(&client, n, s, 2, Duration::from_secs(60)).await;
    }
    let bad = "      env: {app: {SIM_ERROR_RATE: \"0.3\"}}\n";
    let yaml = release_yaml(
        "bad-b",
        &[
            ("a", &[], &[(50, 2), (100, 2)], ""),
            ("b", &["a"], &[(50, 20), (100, 2)], bad),
        ],
    );
    e2e::apply_yaml(&client, Some(n), &yaml).await;
    let api = op::releases(&client, n);
    let status = op::wait_phase(&api, "bad-b", "RolledBack", Duration::from_secs(180)).await;
    let first = status["rollback"]["firstDeviationAt"]
        .as_str()
        .expect("firstDeviationAt")
        .to_owned();

    let t = plugin(&["timeline", "bad-b", "-n", n]).await;
    assert_eq!(t.code, 0);
    assert!(
        t.stdout.starts_with(&format!(
            "Timeline of Release {n}/bad-b: RolledBack (Breach: "
        )),
        "{}",
        t.stdout
    );
    let marked: Vec<&str> = t
        .stdout
        .lines()
        .filter(|l| l.contains("◀ first deviation"))
        .collect();
    assert_eq!(marked.len(), 1, "{}", t.stdout);
    assert!(
        marked[0].contains("MeasurementFailed") && marked[0].contains(" b "),
        "{}",
        marked[0]
    );
    // Marked at the time the status records (the plugin runs with TZ=UTC here).
    let clock = &first[11..19];
    assert!(marked[0].starts_with(clock), "{} vs {clock}", marked[0]);
    // In order: a promoted, b breached, a restored.
    let body = t
        .stdout
        .split_once('\n')
        .map(|(_, b)| b)
        .unwrap_or_default();
    let pos = |needle: &str| {
        body.find(needle)
            .unwrap_or_else(|| panic!("{needle} missing: {}", t.stdout))
    };
    assert!(
        pos("  Promoted ") < pos("  Breach ") && pos("  Breach ") < pos("  Restored "),
        "{}",
        t.stdout
    );

    let view = plugin(&["get", "bad-b", "-n", n]).await;
    assert!(
        view.stdout.contains("ROLLBACK Breach on b"),
        "{}",
        view.stdout
    );
    ns.delete().await;
}

#[tokio::test]
async fn the_example_releases_pass_the_api_servers_schema_and_rules() {
    let client = e2e::client().await;
    install_crd(&client).await;
    let ns = TestNamespace::create(&client, "plugin-examples").await;
    let n = ns.name();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let dir = std::env::temp_dir().join(format!("signalman-examples-{n}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut checked = 0;
    for file in [
        "replica-ratio.yaml",
        "gateway-api.yaml",
        "demo/10-release-checkout-v5.yaml",
        "demo/20-release-checkout-v5-1.yaml",
    ] {
        // Into the test namespace, as a server-side dry run: the CRD's schema and CEL rules judge it, nothing is stored.
        let text = std::fs::read_to_string(root.join(file))
            .unwrap()
            .replace("namespace: shop", &format!("namespace: {n}"));
        let path = dir.join(file.replace('/', "-"));
        std::fs::write(&path, text).unwrap();
        let out = e2e::kubectl(&["apply", "--dry-run=server", "-f", path.to_str().unwrap()]).await;
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("(server dry run)"),
            "{file}"
        );
        checked += 1;
    }
    assert_eq!(checked, 4);
    assert!(
        op::releases(&client, n)
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    std::fs::remove_dir_all(&dir).unwrap();
    ns.delete().await;
}

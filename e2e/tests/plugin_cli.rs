//! `kubectl signalman` against the e2e cluster with a running operator: `get`
//! (view, table, `-o json|yaml`) during a release, `plan` checking the cluster,
//! `timeline` after a breach, and the one-sentence errors.

use std::time::Duration;

use serde_json::Value;
use signalman_e2e::operator::install_crd;
use signalman_e2e::plugin::plugin;
use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{self as e2e, Scenario, TestNamespace, WebApp};

/// A namespace for a test of the plugin alone: the Release CRD is there,
/// no operator runs.
async fn without_operator(prefix: &str) -> (kube::Client, TestNamespace) {
    let client = e2e::client().await;
    install_crd().await;
    let ns = TestNamespace::create(&client, prefix).await;
    (client, ns)
}

#[tokio::test]
async fn get_shows_a_running_release_as_view_table_json_and_yaml() {
    let sc = Scenario::start("plugin-get").await;
    let n = sc.ns();
    sc.deploy_apps(&["web"]).await;
    // A long first step, so the release is certainly running while we look.
    let train = release("train")
        .defaults(&[(50, 2), (100, 2)])
        .service(svc("web").steps(&[(50, 40), (100, 1)]))
        .build();
    let api = sc.apply(&train).await;
    rel::wait_status(
        &api,
        "train",
        "web baking at 50%",
        Duration::from_secs(60),
        |s| {
            rel::phase(s) == "Progressing"
                && rel::service(s, "web")
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
    let web = rel::service(&obj["status"], "web").expect("web in status.services");
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
    view.assert_prints(&format!("Release train ({n})   ● Progressing"));
    let line = view
        .stdout
        .lines()
        .find(|l| l.contains(" web ") && l.contains('%'))
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
    sc.end().await;
}

#[tokio::test]
async fn errors_are_one_sentence_with_the_fix() {
    let (_, ns) = without_operator("plugin-errors").await;
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
    let (client, ns) = without_operator("plugin-plan").await;
    let n = ns.name();
    ns.apply_yaml(&WebApp::new("web").replicas(1).yaml()).await;
    let dir = std::env::temp_dir().join(format!("signalman-plugin-plan-{n}"));
    std::fs::create_dir_all(&dir).unwrap();

    let good = dir.join("good.yaml");
    let steps = [(50, 60), (100, 60)];
    let text = release("good")
        .defaults(&[(50, 2), (100, 2)])
        .service(svc("web").steps(&steps))
        .build();
    std::fs::write(&good, serde_yaml::to_string(&text).unwrap()).unwrap();
    let ok = plugin(&["plan", "-f", good.to_str().unwrap(), "-n", n]).await;
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    ok.assert_prints("This train takes at least 2m");
    ok.assert_prints(&format!(
        "namespace {n}: 1 of 1 Deployment found, with the containers the change names"
    ));

    // A container the Deployment does not have, and a Deployment that does not exist.
    let bad = dir.join("bad.yaml");
    let text = release("bad")
        .defaults(&[(50, 2), (100, 2)])
        .service(svc("web").steps(&steps).env("sidecar", "X", "1"))
        .service(svc("api").after(&["web"]).steps(&steps))
        .build();
    std::fs::write(&bad, serde_yaml::to_string(&text).unwrap()).unwrap();
    let r = plugin(&["plan", "-f", bad.to_str().unwrap(), "-n", n]).await;
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    r.assert_prints(
        // The words of the controller's ContainerNotFound: both come from the one preflight.
        "✖ spec.services[0].change.env.sidecar: Deployment \"web\" has no container \"sidecar\" (it has \"app\"); use one of those names",
    );
    r.assert_prints(&format!(
        "✖ spec.services[1].deployment: Deployment \"api\" not found in namespace \"{n}\"; create it or fix the name"
    ));
    // plan changes nothing in the cluster.
    assert!(
        rel::releases(&client, n)
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
    let sc = Scenario::start("plugin-timeline").await;
    let n = sc.ns();
    sc.deploy_apps(&["a", "b"]).await;
    let bad_b = release("bad-b")
        .defaults(&[(50, 2), (100, 2)])
        .service(svc("a").steps(&[(50, 2), (100, 2)]))
        .service(
            svc("b")
                .after(&["a"])
                .steps(&[(50, 20), (100, 2)])
                .error_rate("0.3"),
        )
        .build();
    let api = sc.apply(&bad_b).await;
    let status = rel::wait_phase(&api, "bad-b", "RolledBack", Duration::from_secs(180)).await;
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
    view.assert_prints("ROLLBACK Breach on b");
    sc.end().await;
}

#[tokio::test]
async fn the_example_releases_pass_the_api_servers_schema_and_rules() {
    let (client, ns) = without_operator("plugin-examples").await;
    let n = ns.name();
    let root = e2e::repo_root().join("examples");
    let dir = std::env::temp_dir().join(format!("signalman-examples-{n}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut checked = 0;
    for file in [
        "replica-ratio.yaml",
        "gateway-api.yaml",
        "demo/10-release-checkout-v5.yaml",
        "demo/20-release-checkout-v5-1.yaml",
        "migration.yaml",
        "feature-flag.yaml",
        "deferred.yaml",
        "cross-team.yaml",
        "verify-compare.yaml",
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
    assert_eq!(checked, 9);
    assert!(
        rel::releases(&client, n)
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    std::fs::remove_dir_all(&dir).unwrap();
    ns.delete().await;
}

//! What GitOps tools make of a Release, checked with the code they run:
//! kstatus as published (`sigs.k8s.io/cli-utils`: Helm 4's `--wait`, kubectl
//! tooling), Flux's fork of it (kustomize-controller, helm-controller) and
//! Argo CD's Lua VM (`util/lua`, no `string`, `io` or full `os`) loaded with
//! `docs/gitops/argocd-cm.yaml`, all three through the harness `e2e/gitops`
//! (`$GITOPS_HEALTH`, built by `e2e/cluster/build.sh gitops`; `e2e/test.sh`
//! builds it and sets the variable).
//!
//! The expected results are the table of `docs/gitops/README.md`, read here:
//! each row names a Release captured from a real e2e run in
//! `docs/gitops/argocd/signalman.dev/Release/testdata/`, so the docs cannot
//! drift from what the tools compute. The last test applies a Release to the
//! real API server with no operator running.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use signalman::api::Phase;
use signalman_e2e::Scenario;
use signalman_e2e::release::{self as rel, release, svc};
use tokio::io::AsyncWriteExt;

fn docs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/gitops")
}

fn check_dir() -> PathBuf {
    docs().join("argocd/signalman.dev/Release")
}

/// What each tool says of one Release: `(status, message)`.
#[derive(Debug)]
struct Verdicts {
    kstatus: (String, String),
    flux: (String, String),
    argocd: (String, String),
}

fn verdict(v: &Value, tool: &str) -> (String, String) {
    if let Some(e) = v["error"].as_str() {
        panic!("{tool} could not evaluate the Release: {e}");
    }
    (
        v["status"].as_str().unwrap_or_default().to_string(),
        v["message"].as_str().unwrap_or_default().to_string(),
    )
}

/// Run the three evaluations on each object, in order.
async fn evaluate(objects: &[Value]) -> Vec<Verdicts> {
    harness(&docs().join("argocd-cm.yaml"), objects)
        .await
        .iter()
        .map(|l| Verdicts {
            kstatus: verdict(&l["kstatus"], "kstatus"),
            flux: verdict(&l["flux"], "Flux's kstatus"),
            argocd: verdict(&l["argocd"], "Argo CD"),
        })
        .collect()
}

/// The harness's answer for each object, with Argo CD's health check taken
/// from the ConfigMap file `argocd_cm`.
async fn harness(argocd_cm: &std::path::Path, objects: &[Value]) -> Vec<Value> {
    let bin = std::env::var("GITOPS_HEALTH").unwrap_or_else(|_| {
        panic!(
            "GITOPS_HEALTH is not set: run the suite with make test or e2e/test.sh, which build \
             the harness (e2e/cluster/build.sh gitops) and set it"
        )
    });
    let mut child = tokio::process::Command::new(&bin)
        .arg("--argocd-cm")
        .arg(argocd_cm)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {bin}: {e}"));
    let mut input = String::new();
    for o in objects {
        input.push_str(&serde_json::to_string(o).unwrap());
        input.push('\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{bin} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), objects.len(), "one answer per object");
    lines
}

/// One row of the health table in docs/gitops/README.md.
#[derive(Debug)]
struct Row {
    case: String,
    phase: String,
    kstatus: String,
    flux: String,
    argocd: String,
}

/// The table after the marker `<!-- health table -->`: the first cell's
/// first `code` span names the captured Release, the next cells are the
/// phase, then kstatus, Flux and Argo CD as their first word.
fn table() -> Vec<Row> {
    let text = std::fs::read_to_string(docs().join("README.md")).unwrap();
    let (_, after) = text
        .split_once("<!-- health table -->")
        .expect("docs/gitops/README.md: the <!-- health table --> marker");
    let rows: Vec<Row> = after
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // header and separator
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 5, "a health table row has 5 cells: {line}");
            let case = cells[0]
                .split('`')
                .nth(1)
                .unwrap_or_else(|| panic!("no `case` in the first cell: {line}"));
            let first_word = |c: &str| {
                c.trim_matches('*')
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string()
            };
            Row {
                case: case.to_string(),
                phase: cells[1].to_string(),
                kstatus: first_word(cells[2]),
                flux: first_word(cells[3]),
                argocd: first_word(cells[4]),
            }
        })
        .collect();
    assert!(rows.len() >= 10, "the health table has {} rows", rows.len());
    rows
}

/// docs/gitops/argocd-cm.yaml, parsed.
fn argocd_cm() -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(docs().join("argocd-cm.yaml")).unwrap()).unwrap()
}

fn load(case: &str) -> Value {
    let path = check_dir().join(format!("testdata/{case}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (a row of the health table names it)",
            path.display()
        )
    });
    serde_yaml::from_str(&text).unwrap()
}

#[tokio::test]
async fn every_captured_release_reads_as_the_docs_table_says() {
    let rows = table();
    let objects: Vec<Value> = rows.iter().map(|r| load(&r.case)).collect();
    for (row, obj) in rows.iter().zip(&objects) {
        // Captured from a real API server, not written by hand.
        assert!(
            obj["metadata"]["uid"].is_string() && obj["metadata"]["creationTimestamp"].is_string(),
            "{}: not a captured object (no uid/creationTimestamp)",
            row.case
        );
        let phase = obj["status"]["phase"].as_str().unwrap_or("(none)");
        assert!(
            row.phase.starts_with(phase),
            "{}: the table says phase {:?}, the capture is {phase}",
            row.case,
            row.phase
        );
    }
    let verdicts = evaluate(&objects).await;
    let mut failures = Vec::new();
    for (row, v) in rows.iter().zip(&verdicts) {
        eprintln!("{}: {v:?}", row.case);
        for (tool, want, got) in [
            ("kstatus", &row.kstatus, &v.kstatus),
            ("Flux", &row.flux, &v.flux),
            ("Argo CD", &row.argocd, &v.argocd),
        ] {
            if &got.0 != want {
                failures.push(format!(
                    "{}: {tool} says {} ({:?}), the table {want}",
                    row.case, got.0, got.1
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Every phase has a row, and so do the two cases before the operator
    // has caught up with the spec.
    let phases: BTreeSet<&str> = objects
        .iter()
        .filter_map(|o| o["status"]["phase"].as_str())
        .collect();
    for p in Phase::ALL {
        assert!(
            phases.contains(p.as_str()),
            "no captured Release is {}",
            p.as_str()
        );
    }
    for case in ["just-applied", "generation-ahead"] {
        assert!(rows.iter().any(|r| r.case == case), "no row for {case}");
    }
    // No fixture the table does not name.
    for entry in std::fs::read_dir(check_dir().join("testdata")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let case = name.trim_end_matches(".yaml");
        assert!(
            rows.iter().any(|r| r.case == case),
            "testdata/{name} is in no row of the table"
        );
    }
}

/// Argo CD's own test layout (`health_test.yaml`) holds the messages; its
/// statuses must be the table's, and Argo CD's VM must give both.
#[tokio::test]
async fn argo_cd_messages_are_those_of_health_test_yaml() {
    let rows = table();
    let cases: Value = serde_yaml::from_str(
        &std::fs::read_to_string(check_dir().join("health_test.yaml")).unwrap(),
    )
    .unwrap();
    let cases = cases["tests"].as_array().expect("health_test.yaml: tests");
    assert_eq!(
        cases.len(),
        rows.len(),
        "health_test.yaml has a case per table row"
    );
    let objects: Vec<Value> = cases
        .iter()
        .map(|c| {
            let input = c["inputPath"].as_str().expect("inputPath");
            let case = input
                .trim_start_matches("testdata/")
                .trim_end_matches(".yaml");
            load(case)
        })
        .collect();
    let verdicts = evaluate(&objects).await;
    let mut failures = Vec::new();
    for (c, v) in cases.iter().zip(&verdicts) {
        let input = c["inputPath"].as_str().unwrap();
        let want = (
            c["healthStatus"]["status"].as_str().unwrap().to_string(),
            c["healthStatus"]["message"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
        let row = rows
            .iter()
            .find(|r| input == format!("testdata/{}.yaml", r.case))
            .unwrap_or_else(|| panic!("{input} is in no row of the table"));
        if want.0 != row.argocd {
            failures.push(format!(
                "{input}: health_test.yaml says {}, the table {}",
                want.0, row.argocd
            ));
        }
        if v.argocd != want {
            failures.push(format!(
                "{input}: Argo CD gives {:?}, health_test.yaml {want:?}",
                v.argocd
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn argocd_cm_is_a_whole_config_map_embedding_the_tested_script() {
    let script = std::fs::read_to_string(check_dir().join("health.lua")).unwrap();
    let cm = argocd_cm();
    assert_eq!(cm["apiVersion"], "v1");
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "argocd-cm");
    assert_eq!(cm["metadata"]["namespace"], "argocd");
    let embedded = cm["data"]["resource.customizations.health.signalman.dev_Release"]
        .as_str()
        .expect("argocd-cm.yaml: the health customization key");
    assert_eq!(
        embedded.trim_end(),
        script.trim_end(),
        "argocd-cm.yaml is stale"
    );
}

/// The harness is Argo CD's sandbox, not a full Lua: a health check that
/// calls `string.*` (which a stock Lua would run) fails there, as in Argo CD.
#[tokio::test]
async fn argo_cd_gives_health_checks_no_string_library() {
    let mut cm = argocd_cm();
    let key = "resource.customizations.health.signalman.dev_Release";
    let script = cm["data"][key].as_str().unwrap().to_string();
    cm["data"][key] = Value::String(format!("local shout = string.upper(\"x\")\n{script}"));
    let path = std::env::temp_dir().join(format!("argocd-cm-string-{}.yaml", std::process::id()));
    std::fs::write(&path, serde_yaml::to_string(&cm).unwrap()).unwrap();
    let out = harness(&path, &[load("succeeded")]).await;
    let _ = std::fs::remove_file(&path);
    let error = out[0]["argocd"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("upper"),
        "Argo CD ran string.upper: {}",
        out[0]
    );
    // kstatus does not read the script.
    assert_eq!(out[0]["kstatus"]["status"], "Current", "{}", out[0]);
}

/// A Release applied to the real API server reads InProgress to kstatus
/// until the operator has written its status (the CRD's status default),
/// and again whenever its spec is ahead of what the operator last saw.
/// Captures `just-applied` and `generation-ahead`.
#[tokio::test]
async fn a_release_reads_in_progress_until_the_operator_has_seen_its_spec() {
    let mut sc = Scenario::start("gitops-new").await;
    sc.operator.kill().await;
    sc.deploy_apps(&["a"]).await;
    let api = sc
        .apply(
            &release("fresh")
                .defaults(&[(50, 30), (100, 1)])
                .service(svc("a"))
                .build(),
        )
        .await;
    let r = rel::get(&api, "fresh").await;
    assert_eq!(r["status"], json!({"observedGeneration": 0}), "{r}");
    rel::capture(&r, "just-applied");
    let v = &evaluate(std::slice::from_ref(&r)).await[0];
    assert_eq!(v.kstatus.0, "InProgress", "{v:?}");
    assert_eq!(v.flux.0, "InProgress", "{v:?}");
    assert_eq!(v.argocd.0, "Progressing", "{v:?}");

    // The operator starts and moves it; stopped, and the spec changes.
    sc.operator.crash_and_restart().await;
    rel::wait_phase(&api, "fresh", "Progressing", Duration::from_secs(60)).await;
    sc.operator.kill().await;
    rel::patch_spec(&api, "fresh", |s| s.paused = Some(true)).await;
    let r = rel::get(&api, "fresh").await;
    assert_eq!(r["metadata"]["generation"], 2, "{r}");
    assert_eq!(r["status"]["observedGeneration"], 1, "{r}");
    rel::capture(&r, "generation-ahead");
    let v = &evaluate(std::slice::from_ref(&r)).await[0];
    assert_eq!(v.kstatus.0, "InProgress", "{v:?}");
    assert_eq!(v.flux.0, "InProgress", "{v:?}");
    assert_eq!(v.argocd.0, "Progressing", "{v:?}");
    assert!(v.argocd.1.contains("generation 2"), "{v:?}");

    // Once it has seen the pause, Argo CD shows it Suspended.
    sc.operator.crash_and_restart().await;
    rel::wait_phase(&api, "fresh", "Paused", Duration::from_secs(60)).await;
    let v = &evaluate(&[rel::get(&api, "fresh").await]).await[0];
    assert_eq!(v.argocd.0, "Suspended", "{v:?}");
    sc.end().await;
}

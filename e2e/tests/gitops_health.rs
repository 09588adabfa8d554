//! The Argo CD health check (docs/gitops/argocd/signalman.dev/Release/health.lua)
//! run by a real Lua 5.4 interpreter (`lua5.4`, or `$LUA`) on the cases of
//! health_test.yaml, whose inputs are Release objects captured from real e2e
//! runs. Needs no cluster.

use std::path::PathBuf;
use std::process::Stdio;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

fn check_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/gitops/argocd/signalman.dev/Release")
}

/// A Lua table constructor for a JSON value, the shape Argo CD hands the
/// script as `obj` (JSON null becomes nil, i.e. absent).
fn lua_literal(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lua_string(s),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(lua_literal).collect();
            format!("{{{}}}", parts.join(", "))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_literal(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for b in s.bytes() {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            0x20..=0x7e => out.push(b as char),
            // Other bytes (control characters, UTF-8) as decimal escapes.
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
    out.push('"');
    out
}

/// Run the health script on `obj`; returns (status, message).
async fn health(script: &str, obj: &Value) -> (String, String) {
    let lua = std::env::var("LUA").unwrap_or_else(|_| "lua5.4".into());
    let program = format!(
        "obj = {}\nlocal hs = (function()\n{script}\nend)()\nio.write(hs.status, \"\\n\", hs.message or \"\")\n",
        lua_literal(obj)
    );
    let mut child = tokio::process::Command::new(&lua)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("running {lua}: {e}; install Debian's lua5.4 (.ci/run does) or set LUA")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(program.as_bytes())
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{lua} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (status, message) = text.split_once('\n').unwrap_or((&text, ""));
    (status.to_string(), message.to_string())
}

#[tokio::test]
async fn argo_cd_health_check_on_captured_releases() {
    let dir = check_dir();
    let script = std::fs::read_to_string(dir.join("health.lua")).unwrap();
    let cases: Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("health_test.yaml")).unwrap())
            .unwrap();
    let cases = cases["tests"].as_array().expect("health_test.yaml: tests");
    assert!(
        cases.len() >= 6,
        "expected a case per health, got {}",
        cases.len()
    );
    let mut seen = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for case in cases {
        let input = case["inputPath"].as_str().expect("inputPath");
        let obj: Value =
            serde_yaml::from_str(&std::fs::read_to_string(dir.join(input)).unwrap()).unwrap();
        // Captured from a real API server, not written by hand.
        assert!(
            obj["metadata"]["uid"].is_string() && obj["metadata"]["creationTimestamp"].is_string(),
            "{input}: not a captured object (no uid/creationTimestamp)"
        );
        let want_status = case["healthStatus"]["status"].as_str().unwrap();
        let want_message = case["healthStatus"]["message"].as_str().unwrap_or("");
        let (status, message) = health(&script, &obj).await;
        eprintln!("{input}: {status}: {message}");
        if status != want_status || message != want_message {
            failures.push(format!(
                "{input}: got {status:?} {message:?}, want {want_status:?} {want_message:?}"
            ));
        }
        seen.insert(status);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for h in ["Healthy", "Progressing", "Suspended", "Degraded"] {
        assert!(seen.contains(h), "no captured case maps to {h}");
    }
}

#[tokio::test]
async fn health_check_without_status_or_with_an_old_generation_is_progressing() {
    let script = std::fs::read_to_string(check_dir().join("health.lua")).unwrap();
    let fresh = serde_json::json!({"metadata": {"name": "r", "generation": 1}, "spec": {}});
    assert_eq!(health(&script, &fresh).await.0, "Progressing");
    let behind = serde_json::json!({
        "metadata": {"name": "r", "generation": 3},
        "status": {"observedGeneration": 2, "phase": "Succeeded"}
    });
    let (status, message) = health(&script, &behind).await;
    assert_eq!(status, "Progressing");
    assert!(message.contains("generation 3"), "{message}");
}

#[test]
fn argocd_cm_snippet_embeds_the_tested_script() {
    let dir = check_dir();
    let script = std::fs::read_to_string(dir.join("health.lua")).unwrap();
    let cm: Value = serde_yaml::from_str(
        &std::fs::read_to_string(dir.join("../../../argocd-cm.yaml")).unwrap(),
    )
    .unwrap();
    let embedded = cm["data"]["resource.customizations.health.signalman.dev_Release"]
        .as_str()
        .expect("argocd-cm.yaml: the health customization key");
    assert_eq!(
        embedded.trim_end(),
        script.trim_end(),
        "argocd-cm.yaml is stale"
    );
}

#[tokio::test]
async fn verifying_is_progressing_with_the_controllers_message() {
    // Not captured yet: no e2e run verifies a train before the capture was written.
    let script = std::fs::read_to_string(check_dir().join("health.lua")).unwrap();
    let verifying = serde_json::json!({
        "metadata": {"name": "r", "generation": 1},
        "status": {"observedGeneration": 1, "phase": "Verifying", "message": "verifying the train: 4m 10s left"}
    });
    assert_eq!(
        health(&script, &verifying).await,
        (
            "Progressing".to_string(),
            "verifying the train: 4m 10s left".to_string()
        )
    );
}

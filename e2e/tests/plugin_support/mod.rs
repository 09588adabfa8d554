//! Running `kubectl-signalman` the way a person does: as a process, against
//! the e2e cluster, with kubectl's flags. Shared by the plugin_* tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use kube::Client;
use signalman_e2e as e2e;

/// The plugin binary: `$KUBECTL_SIGNALMAN_BIN`, else next to the operator
/// binary in the cargo target dir (`cargo build -p signalman --bins` builds both).
pub fn plugin_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("KUBECTL_SIGNALMAN_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let bin = e2e::operator::operator_bin().with_file_name("kubectl-signalman");
    assert!(
        bin.exists(),
        "{} not found: run `cargo build -p signalman --bins` or set KUBECTL_SIGNALMAN_BIN",
        bin.display()
    );
    bin
}

/// What one run of the plugin printed.
#[derive(Debug)]
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

/// Run `kubectl-signalman <args> --kubeconfig <e2e kubeconfig>`, piped (no colour, no TTY), times in UTC.
pub async fn plugin(args: &[&str]) -> Run {
    let out = tokio::process::Command::new(plugin_bin())
        .args(args)
        .arg("--kubeconfig")
        .arg(e2e::kubeconfig_path())
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1")
        .env("TZ", "UTC")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("running kubectl-signalman");
    let run = Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code().unwrap_or(-1),
    };
    eprintln!(
        "$ kubectl signalman {}\n{}{}(exit {})",
        args.join(" "),
        run.stdout,
        run.stderr,
        run.code
    );
    run
}

/// Install (or update) the Release CRD from crds/ and wait until it is served.
pub async fn install_crd(client: &Client) {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crds/signalman.dev_releases.yaml");
    let yaml = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    e2e::apply_yaml(client, None, &yaml).await;
    e2e::wait_for(
        "the Release CRD to be served",
        Duration::from_secs(30),
        || {
            let client = client.clone();
            async move {
                let served = client
                    .list_api_group_resources("signalman.dev/v1alpha1")
                    .await
                    .is_ok_and(|l| l.resources.iter().any(|r| r.name == "releases"));
                Ok(served.then_some(()))
            }
        },
    )
    .await;
}

/// One service of [`release_yaml`]: name, dependsOn, steps as (weight, bake seconds),
/// and extra YAML for its `change` (indented six spaces).
pub type Svc<'a> = (&'a str, &'a [&'a str], &'a [(i32, u32)], &'a str);

/// A Release named `name` with per-service steps, for the plugin scenarios.
pub fn release_yaml(name: &str, services: &[Svc<'_>]) -> String {
    let mut out = format!(
        "apiVersion: signalman.dev/v1alpha1\nkind: Release\nmetadata: {{name: {name}}}\nspec:\n  owner: team-e2e\n{}  services:\n",
        signalman_e2e::operator::defaults_yaml(&[(50, 2), (100, 2)])
    );
    for (svc, deps, steps, extra) in services {
        let steps: Vec<String> = steps
            .iter()
            .map(|(w, b)| format!("{{weight: {w}, bake: {b}s}}"))
            .collect();
        out.push_str(&format!(
            "  - name: {svc}\n    deployment: {svc}\n    dependsOn: [{}]\n    steps: [{}]\n    change:\n      images: {{app: \"registry.example/{svc}:v2\"}}\n{extra}",
            deps.join(", "),
            steps.join(", ")
        ));
    }
    out
}

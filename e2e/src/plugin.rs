//! Running `kubectl-signalman` the way a person does: as a process, against
//! the e2e cluster, with kubectl's flags.

use std::path::PathBuf;

/// The plugin binary: `$KUBECTL_SIGNALMAN_BIN`, else next to the operator
/// binary in the cargo target dir (`cargo build -p signalman --bins` builds both).
pub fn plugin_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("KUBECTL_SIGNALMAN_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let bin = crate::operator::operator_bin().with_file_name("kubectl-signalman");
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

impl Run {
    /// Fail the test unless the plugin printed `text` on stdout (showing
    /// what it printed instead).
    pub fn assert_prints(&self, text: &str) {
        assert!(
            self.stdout.contains(text),
            "expected {text:?} in:\n{}",
            self.stdout
        );
    }
}

/// Run `kubectl-signalman <args> --kubeconfig <e2e kubeconfig>`, piped (no
/// colour, no TTY), times in UTC.
pub async fn plugin(args: &[&str]) -> Run {
    let out = tokio::process::Command::new(plugin_bin())
        .args(args)
        .arg("--kubeconfig")
        .arg(crate::kubeconfig_path())
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

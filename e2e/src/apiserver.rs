//! The local cluster's kube-apiserver, stopped and started again by a test
//! (`e2e/cluster/apiserver.sh`, which starts it exactly as `up.sh` does, with
//! the ports that cluster was started with). Only the local cluster of
//! `make cluster-up` can do this: the cluster is found next to `KUBECONFIG`
//! (`<repo>/.e2e/kubeconfig`), and a test that needs it fails on any other.
//!
//! A test that stops the API server must run alone: every other client of the
//! cluster loses it too. `cargo test` runs test binaries one after another, so
//! such a test keeps a file of its own.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::kubeconfig_path;

/// The kube-apiserver of the local cluster that `KUBECONFIG` points at.
/// Started again when dropped while stopped (a failing test must not leave
/// the cluster without its API server).
pub struct LocalApiServer {
    e2e_dir: PathBuf,
    stopped: bool,
    frozen: bool,
}

impl LocalApiServer {
    /// The API server of the local cluster; panics when `KUBECONFIG` is not
    /// that cluster's (the directory holding it has no `pids/kube-apiserver.pid`).
    pub fn of_local_cluster() -> LocalApiServer {
        let kubeconfig = kubeconfig_path();
        let dir = kubeconfig
            .canonicalize()
            .ok()
            .and_then(|k| k.parent().map(Path::to_path_buf))
            .filter(|d| {
                d.join("pids/kube-apiserver.pid").is_file() && d.join("ports.env").is_file()
            })
            .unwrap_or_else(|| {
                panic!(
                    "this test stops and starts the API server, which only the local cluster \
                     of `make cluster-up` allows: KUBECONFIG={} is not in a directory with \
                     pids/kube-apiserver.pid and ports.env",
                    kubeconfig.display()
                )
            });
        LocalApiServer {
            e2e_dir: dir,
            stopped: false,
            frozen: false,
        }
    }

    /// Stop the API server (SIGTERM) and return once the process is gone.
    pub async fn stop(&mut self) {
        self.stopped = true;
        self.script("stop").await;
    }

    /// Start it again and return once its `/readyz` answers; how long that took.
    pub async fn start(&mut self) -> Duration {
        let t = Instant::now();
        self.script("start").await;
        self.stopped = false;
        t.elapsed()
    }

    /// SIGSTOP it: connections stay open and requests go unanswered, the
    /// shape of an API server that hangs rather than goes away.
    pub async fn freeze(&mut self) {
        self.frozen = true;
        self.script("freeze").await;
    }

    /// SIGCONT: it answers what it was asked meanwhile.
    pub async fn thaw(&mut self) {
        self.script("thaw").await;
        self.frozen = false;
    }

    async fn script(&self, verb: &str) {
        let out = tokio::process::Command::new(self.script_path())
            .arg(verb)
            .env("E2E_DIR", &self.e2e_dir)
            .output()
            .await
            .unwrap_or_else(|e| panic!("running apiserver.sh {verb}: {e}"));
        assert!(
            out.status.success(),
            "apiserver.sh {verb} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn script_path(&self) -> PathBuf {
        crate::repo_root().join("e2e/cluster/apiserver.sh")
    }
}

impl Drop for LocalApiServer {
    fn drop(&mut self) {
        if self.frozen {
            let _ = std::process::Command::new(self.script_path())
                .arg("thaw")
                .env("E2E_DIR", &self.e2e_dir)
                .status();
        }
        if self.stopped {
            eprintln!("starting the API server again (the test stopped it)");
            let _ = std::process::Command::new(self.script_path())
                .arg("start")
                .env("E2E_DIR", &self.e2e_dir)
                .status();
        }
    }
}

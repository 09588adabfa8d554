//! The local cluster's kube-apiserver and etcd, stopped and started again by
//! a test (`e2e/cluster/apiserver.sh` and `e2e/cluster/etcd.sh`, which start
//! them exactly as `up.sh` does, with the ports that cluster was started with). Only the local cluster of
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
        LocalApiServer {
            e2e_dir: local_cluster_dir("the API server"),
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
        script(&self.e2e_dir, "apiserver.sh", verb).await;
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

/// The etcd of the local cluster that `KUBECONFIG` points at. Started again
/// (on the data it had) when dropped while stopped.
pub struct LocalEtcd {
    e2e_dir: PathBuf,
    stopped: bool,
}

impl LocalEtcd {
    /// The etcd of the local cluster; panics as [`LocalApiServer::of_local_cluster`] does.
    pub fn of_local_cluster() -> LocalEtcd {
        LocalEtcd {
            e2e_dir: local_cluster_dir("etcd"),
            stopped: false,
        }
    }

    /// Stop etcd (SIGTERM) and return once the process is gone; the API
    /// server keeps running without its storage.
    pub async fn stop(&mut self) {
        self.stopped = true;
        script(&self.e2e_dir, "etcd.sh", "stop").await;
    }

    /// Start it again and return once the API server is ready on it and the
    /// Nodes are Ready; how long that took.
    pub async fn start(&mut self) -> Duration {
        let t = Instant::now();
        script(&self.e2e_dir, "etcd.sh", "start").await;
        self.stopped = false;
        t.elapsed()
    }
}

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        if self.stopped {
            eprintln!("starting etcd again (the test stopped it)");
            let _ = std::process::Command::new(crate::repo_root().join("e2e/cluster/etcd.sh"))
                .arg("start")
                .env("E2E_DIR", &self.e2e_dir)
                .status();
        }
    }
}

/// The `.e2e` directory of the local cluster `KUBECONFIG` belongs to; panics
/// when it is not one (`what` is the component a test wants to stop).
fn local_cluster_dir(what: &str) -> PathBuf {
    let kubeconfig = kubeconfig_path();
    kubeconfig
        .canonicalize()
        .ok()
        .and_then(|k| k.parent().map(Path::to_path_buf))
        .filter(|d| d.join("pids/kube-apiserver.pid").is_file() && d.join("ports.env").is_file())
        .unwrap_or_else(|| {
            panic!(
                "this test stops and starts {what}, which only the local cluster \
                 of `make cluster-up` allows: KUBECONFIG={} is not in a directory with \
                 pids/kube-apiserver.pid and ports.env",
                kubeconfig.display()
            )
        })
}

/// Run `e2e/cluster/<name> <verb>` on the cluster in `e2e_dir`; panics with
/// its output when it fails.
async fn script(e2e_dir: &Path, name: &str, verb: &str) {
    let out = tokio::process::Command::new(crate::repo_root().join("e2e/cluster").join(name))
        .arg(verb)
        .env("E2E_DIR", e2e_dir)
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {name} {verb}: {e}"));
    assert!(
        out.status.success(),
        "{name} {verb} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

//! The Helm chart as a user installs it (`helm` from `$HELM`, else `PATH`;
//! `make e2e` puts the pinned build there), what its RBAC allows (`kubectl
//! auth can-i`), and a kubeconfig holding nothing but its ServiceAccount's
//! token, to run the operator with exactly the chart's rights.

use std::path::{Path, PathBuf};
use std::process::Output;

use kube::config::Kubeconfig;
use tokio::process::Command;

use crate::{kubeconfig_path, output_text};

/// `charts/signalman`.
pub fn chart_dir() -> PathBuf {
    crate::repo_root().join("charts/signalman")
}

fn helm_bin() -> String {
    std::env::var("HELM").unwrap_or_else(|_| "helm".into())
}

/// Run `helm` against `KUBECONFIG` and return its output (not checked).
pub async fn helm(args: &[&str]) -> Output {
    let bin = helm_bin();
    Command::new(&bin)
        .args(args)
        .env("KUBECONFIG", kubeconfig_path())
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("running {bin}: {e}; put helm on PATH (source .e2e/env) or set HELM")
        })
}

/// What every test install sets, before its own `--set` values: the chart's
/// cluster-scoped objects must neither collide with another test's install
/// nor change what other tests' Releases do. So its ReleasePolicy is named
/// after the Helm release (never `default`, which would apply to every
/// Release in the cluster) and open at every hour of every day (a test runs
/// whenever it runs), its approver ClusterRole is named after the release,
/// and the admission policies (one set per cluster) are left to the
/// harness' CRD install ([`crate::operator::install_crd`]).
pub fn test_values(release: &str) -> Vec<String> {
    vec![
        format!("policy.name={release}-always-open"),
        "policy.window.days={Monday,Tuesday,Wednesday,Thursday,Friday,Saturday,Sunday}".into(),
        "policy.window.from=00:00".into(),
        "policy.window.to=24:00".into(),
        "policy.freeze=null".into(),
        format!("approverRole.name={release}-approver"),
        "admission.create=false".into(),
    ]
}

/// `helm install <release> charts/signalman -n <ns>` with [`test_values`] and
/// then `--set` values (not checked: see [`Installed`] for an install that
/// must succeed).
pub async fn install(ns: &str, release: &str, sets: &[&str]) -> Output {
    let chart = chart_dir();
    let mut args = vec![
        "install",
        release,
        chart.to_str().unwrap(),
        "--namespace",
        ns,
    ];
    let defaults = test_values(release);
    for s in defaults
        .iter()
        .map(String::as_str)
        .chain(sets.iter().copied())
    {
        args.extend(["--set", s]);
    }
    helm(&args).await
}

/// The chart installed into a test namespace, as a Helm release named after
/// the namespace. Uninstalled when dropped, also when the test panics: the
/// chart's ClusterRole and binding are cluster-scoped and would outlive the
/// test namespace.
pub struct Installed {
    ns: String,
    release: String,
    uninstalled: bool,
}

impl Installed {
    /// `helm install` with `--set` values; fails the test unless it succeeds.
    pub async fn new(ns: &str, sets: &[&str]) -> Installed {
        let out = install(ns, ns, sets).await;
        assert!(out.status.success(), "helm install:\n{}", output_text(&out));
        Installed {
            ns: ns.to_string(),
            release: ns.to_string(),
            uninstalled: false,
        }
    }

    /// The Helm release name.
    pub fn release(&self) -> &str {
        &self.release
    }

    /// The name of the chart's ServiceAccount (also of its Deployment and ClusterRole).
    pub fn service_account(&self) -> String {
        format!("{}-signalman", self.release)
    }

    /// A kubeconfig that authenticates only as the chart's ServiceAccount,
    /// for [`crate::operator::Launch::kubeconfig`].
    pub async fn token_kubeconfig(&self) -> PathBuf {
        token_kubeconfig(&self.ns, &self.service_account(), &crate::scratch_dir()).await
    }

    /// The name of the chart's ReleasePolicy (see [`test_values`]).
    pub fn policy(&self) -> String {
        format!("{}-always-open", self.release)
    }

    /// `helm uninstall --wait`.
    pub async fn uninstall(mut self) {
        self.uninstalled = true;
        let out = helm(&[
            "uninstall",
            &self.release,
            "--namespace",
            &self.ns,
            "--wait",
        ])
        .await;
        if !out.status.success() {
            eprintln!(
                "warning: helm uninstall {}: {}",
                self.release,
                output_text(&out)
            );
        }
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        if self.uninstalled {
            return;
        }
        // Drop cannot await, and may run while the test's runtime unwinds.
        let _ = std::process::Command::new(helm_bin())
            .args(["uninstall", &self.release, "--namespace", &self.ns])
            .arg("--ignore-not-found")
            .env("KUBECONFIG", kubeconfig_path())
            .output();
    }
}

/// `kubectl auth can-i VERB RESOURCE [-n NS] --as SUBJECT`: true for "yes".
/// `RESOURCE` is `kind.group[/name]`, or `kind.group:subresource`.
pub async fn can_i(subject: &str, verb: &str, resource: &str, ns: Option<&str>) -> bool {
    let (resource, sub) = match resource.split_once(':') {
        Some((r, s)) => (r, Some(format!("--subresource={s}"))),
        None => (resource, None),
    };
    let mut args = vec!["auth", "can-i", verb, resource, "--as", subject];
    if let Some(s) = &sub {
        args.push(s);
    }
    match ns {
        Some(n) => args.extend(["-n", n]),
        None => args.push("--all-namespaces"),
    }
    let out = crate::kubectl(&args).await;
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match answer.as_str() {
        "yes" => true,
        "no" => false,
        _ => panic!(
            "kubectl auth can-i {verb} {resource}: {}",
            output_text(&out)
        ),
    }
}

/// A kubeconfig for the same cluster that authenticates only with a token of
/// ServiceAccount `ns/sa` from `kubectl create token` (no client certificate,
/// so the ServiceAccount's RBAC is all its user has).
pub async fn token_kubeconfig(ns: &str, sa: &str, dir: &Path) -> PathBuf {
    let out = crate::kubectl(&["create", "token", sa, "-n", ns, "--duration=1h"]).await;
    assert!(
        out.status.success(),
        "kubectl create token: {}",
        output_text(&out)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!token.is_empty(), "kubectl create token printed nothing");
    let admin = Kubeconfig::read_from(kubeconfig_path()).expect("reading the admin kubeconfig");
    let cluster = admin
        .clusters
        .first()
        .cloned()
        .expect("a cluster in the kubeconfig");
    let c = cluster.cluster.expect("cluster details");
    let mut cluster_yaml = format!("    server: {}\n", c.server.expect("a server URL"));
    if let Some(ca) = &c.certificate_authority_data {
        cluster_yaml.push_str(&format!("    certificate-authority-data: {ca}\n"));
    } else if let Some(ca) = &c.certificate_authority {
        cluster_yaml.push_str(&format!("    certificate-authority: {ca}\n"));
    }
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n{cluster_yaml}\
         users:\n- name: {sa}\n  user:\n    token: {token}\n\
         contexts:\n- name: {sa}\n  context: {{cluster: e2e, user: {sa}}}\ncurrent-context: {sa}\n"
    );
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(format!("{ns}-{sa}.kubeconfig"));
    std::fs::write(&path, yaml).unwrap();
    path
}

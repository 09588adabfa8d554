//! Go/no-go in the scenarios: a ReleasePolicy of the test's own (cluster-
//! scoped, so named after the test namespace and deleted when the test ends:
//! a test never creates or changes `default`, which every concurrent test's
//! Releases would follow), approvals made as the admin or as another user
//! (`kubectl --as`), and who the admin is.

use std::time::Duration;

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, ResourceExt};
use signalman::api::{ReleaseApproval, ReleaseApprovalSpec, ReleasePolicy, StepRef};

use crate::{kubectl, output_text};

/// A ReleasePolicy for one test; deleted on [`TestPolicy::delete`] or drop.
pub struct TestPolicy {
    name: String,
    deleted: bool,
}

impl TestPolicy {
    /// Server-side apply ReleasePolicy `name` with `spec` (YAML of the spec,
    /// indented as under `spec:`).
    pub async fn create(client: &Client, name: &str, spec_yaml: &str) -> TestPolicy {
        assert_ne!(
            name,
            signalman::api::DEFAULT_POLICY,
            "a test never writes the default policy"
        );
        crate::operator::install_crd().await;
        let spec: String = spec_yaml.lines().map(|l| format!("  {l}\n")).collect();
        let yaml = format!(
            "apiVersion: signalman.dev/v1alpha1\nkind: ReleasePolicy\nmetadata: {{name: {name}}}\nspec:\n{spec}"
        );
        crate::apply_yaml(client, None, &yaml).await;
        TestPolicy {
            name: name.to_owned(),
            deleted: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub async fn delete(mut self, client: &Client) {
        self.deleted = true;
        let api: Api<ReleasePolicy> = Api::all(client.clone());
        let _ = api.delete(&self.name, &DeleteParams::default()).await;
    }
}

impl Drop for TestPolicy {
    fn drop(&mut self) {
        if !self.deleted {
            let _ = std::process::Command::new(
                std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into()),
            )
            .args(["delete", "releasepolicy", &self.name, "--ignore-not-found"])
            .env("KUBECONFIG", crate::kubeconfig_path())
            .output();
        }
    }
}

/// The user the API server takes the harness' client for (`kubectl auth whoami`).
pub async fn whoami(client: &Client) -> String {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .unwrap_or_else(|e| panic!("SelfSubjectReview: {e}"));
    review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .expect("SelfSubjectReview without a username")
}

/// What an approval approves.
#[derive(Clone, Debug)]
pub enum What {
    Gate(&'static str),
    Step(&'static str, i32),
    Window,
}

/// A ReleaseApproval of `release` by `approver` (not yet created).
pub fn approval(name: &str, release: &str, approver: &str, what: What) -> ReleaseApproval {
    let mut spec = ReleaseApprovalSpec {
        release: release.to_owned(),
        approver: approver.to_owned(),
        comment: "checked by the e2e test".to_owned(),
        ..ReleaseApprovalSpec::default()
    };
    match what {
        What::Gate(g) => spec.gate = Some(g.to_owned()),
        What::Step(service, step) => {
            spec.step = Some(StepRef {
                service: service.to_owned(),
                step,
            })
        }
        What::Window => spec.window = Some(true),
    }
    ReleaseApproval::new(name, spec)
}

/// Create `approval` in `ns` as the harness' user (the admin, who may
/// `approve` anything): its approver must be [`whoami`].
pub async fn approve(client: &Client, ns: &str, approval: &ReleaseApproval) {
    let api: Api<ReleaseApproval> = Api::namespaced(client.clone(), ns);
    crate::wait_for(
        &format!("ReleaseApproval {} to be admitted", approval.name_any()),
        Duration::from_secs(20),
        || async {
            match api.create(&PostParams::default(), approval).await {
                Ok(_) => Ok(Some(())),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Some(())),
                Err(e) => Err(e.into()),
            }
        },
    )
    .await;
}

/// `kubectl --as <user> <args...> -f <object as YAML>` in `ns`: the object
/// is written to a file first. Returns the output (not checked).
pub async fn kubectl_as<T: serde::Serialize>(
    user: &str,
    verb: &[&str],
    ns: &str,
    object: &T,
) -> std::process::Output {
    let mut value = serde_json::to_value(object).expect("serializing");
    if value.get("apiVersion").is_none() {
        value["apiVersion"] = "signalman.dev/v1alpha1".into();
    }
    let file = crate::scratch_dir().join(format!(
        "{ns}-{user}-{}.yaml",
        value["metadata"]["name"].as_str().unwrap_or("object")
    ));
    std::fs::write(&file, serde_yaml::to_string(&value).unwrap()).unwrap();
    let mut args: Vec<&str> = verb.to_vec();
    let path = file.to_str().unwrap().to_owned();
    args.extend(["--as", user, "-n", ns, "-f", &path]);
    kubectl(&args).await
}

/// A ReleaseApproval as JSON with apiVersion and kind, for [`kubectl_as`].
pub fn approval_object(a: &ReleaseApproval) -> serde_json::Value {
    let mut v = serde_json::to_value(a).unwrap();
    v["apiVersion"] = "signalman.dev/v1alpha1".into();
    v["kind"] = "ReleaseApproval".into();
    v
}

/// Grant `user` in `ns` what approving takes (the verb `approve` on
/// Releases, creating approvals), plus `extra` rules (YAML list items).
pub async fn grant(client: &Client, ns: &str, user: &str, approve: bool, extra: &str) {
    let approve_rule = if approve {
        "- {apiGroups: [signalman.dev], resources: [releases], verbs: [approve]}\n"
    } else {
        ""
    };
    let yaml = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: {user}}}\nrules:\n\
         - {{apiGroups: [signalman.dev], resources: [releaseapprovals], verbs: [create, get, list, patch, update]}}\n\
         - {{apiGroups: [signalman.dev], resources: [releases], verbs: [get, list]}}\n\
         {approve_rule}{extra}---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: {user}}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: {user}}}\n\
         subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: {user}}}]\n"
    );
    crate::apply_yaml(client, Some(ns), &yaml).await;
}

/// Keep trying `kubectl --as` until the answer is final: RBAC and admission
/// policies take a moment to apply to a new Role or policy. `done` says
/// whether the output is the one awaited; returns it.
pub async fn kubectl_as_until<T: serde::Serialize>(
    user: &str,
    verb: &[&str],
    ns: &str,
    object: &T,
    what: &str,
    done: impl Fn(&std::process::Output) -> bool,
) -> String {
    let mut last = String::new();
    for _ in 0..40 {
        let out = kubectl_as(user, verb, ns, object).await;
        last = output_text(&out);
        if done(&out) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("kubectl {verb:?} --as {user}: {what}; last answer: {last}")
}

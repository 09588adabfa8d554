//! How most controller and plugin scenarios begin: a fresh namespace with its
//! own operator, the apps the train will move, and the Releases API.

use kube::Client;
use kube::api::Api;
use signalman::api::Release;

use crate::operator::{Launch, Operator};
use crate::{TestNamespace, WebApp};

/// A test namespace (`<prefix>-<random>`) with an operator watching it (as
/// the admin, no leader election). The namespace is deleted by
/// [`Scenario::end`], or on drop when the test fails.
pub struct Scenario {
    pub client: Client,
    pub operator: Operator,
    namespace: TestNamespace,
}

impl Scenario {
    pub async fn start(prefix: &str) -> Scenario {
        Scenario::start_with(prefix, |launch| launch).await
    }

    /// [`Scenario::start`] with the operator's [`Launch`] changed by `launch`
    /// (e.g. `|l| l.stall_timeout(..)`).
    pub async fn start_with(prefix: &str, launch: impl FnOnce(Launch) -> Launch) -> Scenario {
        let client = crate::client().await;
        let namespace = TestNamespace::create(&client, prefix).await;
        let operator = launch(Operator::launch(namespace.name())).start().await;
        Scenario {
            client,
            operator,
            namespace,
        }
    }

    /// The namespace name.
    pub fn ns(&self) -> &str {
        self.namespace.name()
    }

    /// [`crate::deploy_apps`] into the namespace.
    pub async fn deploy_apps(&self, names: &[&str]) {
        crate::deploy_apps(&self.client, self.ns(), names).await;
    }

    /// [`crate::deploy`] into the namespace.
    pub async fn deploy(&self, apps: &[WebApp]) {
        crate::deploy(&self.client, self.ns(), apps).await;
    }

    /// [`crate::apply_yaml`] into the namespace.
    pub async fn apply_yaml(&self, yaml: &str) {
        self.namespace.apply_yaml(yaml).await;
    }

    /// The namespace's Releases.
    pub fn releases(&self) -> Api<Release> {
        crate::release::releases(&self.client, self.ns())
    }

    /// Apply `release` (whole) and return the namespace's Releases.
    pub async fn apply(&self, release: &Release) -> Api<Release> {
        crate::release::apply(&self.client, self.ns(), release).await;
        self.releases()
    }

    /// Stop the operator and delete the namespace.
    pub async fn end(self) {
        drop(self.operator);
        self.namespace.delete().await;
    }
}

//! The plugin's only contact with the cluster: connect the way kubectl does,
//! read Releases and the objects a plan names, and patch the three control
//! fields. Every failure becomes one sentence that says how to fix it.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Config, ResourceExt};

use crate::api::{Release, ReleaseApproval, ReleasePolicy, ReleaseSpec};
use crate::engine::PolicyObservation;
use crate::preflight::{Claimant, ClusterView, ServiceView};

/// Field manager of the plugin's patches, so `managedFields` shows who paused a release.
pub const PLUGIN_FIELD_MANAGER: &str = "kubectl-signalman";

/// How long to wait for the API server before calling it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything that can go wrong talking to the cluster, each with its fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no kubeconfig to use ({0}); pass --kubeconfig or set KUBECONFIG (for the local cluster: make cluster-up, then source .e2e/env)"
    )]
    Kubeconfig(String),
    #[error(
        "cannot use the kubeconfig: {0}; pick a context that exists (kubectl config get-contexts) with --context, or another file with --kubeconfig"
    )]
    BadKubeconfig(String),
    #[error(
        "cannot reach the cluster at {server}{context}: {reason}; check --kubeconfig and --context, or start the local cluster with make cluster-up"
    )]
    Unreachable {
        server: String,
        context: String,
        reason: String,
    },
    #[error(
        "the Release CRD (releases.signalman.dev) is not installed in the cluster at {server}; install it with kubectl apply -f crds/ or the Helm chart"
    )]
    CrdMissing { server: String },
    #[error(
        "no Release \"{name}\" in namespace \"{namespace}\"; list them with kubectl signalman get -n {namespace}, or in every namespace with -A"
    )]
    NotFound { name: String, namespace: String },
    #[error(
        "{what} was refused: {reason}; ask for RBAC access to releases.signalman.dev in that namespace"
    )]
    Forbidden { what: String, reason: String },
    #[error("{what} failed: {reason}")]
    Api { what: String, reason: String },
    #[error("the API server refused {what}: {reason}")]
    Refused { what: String, reason: String },
}

/// Where to connect, with kubectl's flags.
#[derive(Clone, Debug, Default)]
pub struct Target {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub namespace: Option<String>,
}

/// A client and the namespace commands act in.
#[derive(Clone)]
pub struct Connection {
    pub client: Client,
    /// `-n`, else the context's namespace, else `default`.
    pub namespace: String,
    pub server: String,
    pub context: Option<String>,
}

/// Build a client the way kubectl would: `--kubeconfig`, else `KUBECONFIG`, else
/// `~/.kube/config`; `--context` over the current context; `-n` over the context's namespace.
/// Does not contact the server.
pub async fn connect(target: &Target) -> Result<Connection, Error> {
    install_crypto_provider();
    let kubeconfig = match &target.kubeconfig {
        Some(path) => Kubeconfig::read_from(path),
        None => Kubeconfig::read(),
    }
    .map_err(|e| Error::Kubeconfig(e.to_string()))?;
    let context = target
        .context
        .clone()
        .or_else(|| kubeconfig.current_context.clone());
    let options = KubeConfigOptions {
        context: target.context.clone(),
        ..Default::default()
    };
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| Error::BadKubeconfig(e.to_string()))?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    let server = config
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_owned();
    let namespace = target
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(|e| Error::BadKubeconfig(e.to_string()))?;
    Ok(Connection {
        client,
        namespace,
        server,
        context,
    })
}

/// kube brings rustls with `ring`, the Prometheus client with `aws-lc-rs`; with both
/// compiled in rustls cannot choose, so the process picks one before the first TLS handshake.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Connection {
    fn releases(&self, namespace: &str) -> Api<Release> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Turn a client error into the sentence a person needs.
    async fn explain(&self, e: kube::Error, what: &str) -> Error {
        match e {
            kube::Error::Api(s) if s.code == 403 => Error::Forbidden {
                what: what.to_owned(),
                reason: s.message,
            },
            kube::Error::Api(s) if s.code == 404 && !self.crd_installed().await => {
                Error::CrdMissing {
                    server: self.server.clone(),
                }
            }
            kube::Error::Api(s) => Error::Api {
                what: what.to_owned(),
                reason: s.message,
            },
            other => Error::Unreachable {
                server: self.server.clone(),
                context: self
                    .context
                    .as_ref()
                    .map(|c| format!(" (context {c})"))
                    .unwrap_or_default(),
                reason: root_cause(&other),
            },
        }
    }

    async fn crd_installed(&self) -> bool {
        self.client
            .list_api_group_resources("signalman.dev/v1alpha1")
            .await
            .is_ok_and(|list| list.resources.iter().any(|r| r.name == "releases"))
    }

    /// Check the server answers and the CRD is there, so later errors mean what they say.
    pub async fn check(&self) -> Result<(), Error> {
        if let Err(e) = self.client.apiserver_version().await {
            return Err(self
                .explain(e, "asking the API server for its version")
                .await);
        }
        if !self.crd_installed().await {
            return Err(Error::CrdMissing {
                server: self.server.clone(),
            });
        }
        Ok(())
    }

    pub async fn get(&self, namespace: &str, name: &str) -> Result<Release, Error> {
        match self.releases(namespace).get_opt(name).await {
            Ok(Some(r)) => Ok(r),
            Ok(None) => {
                if self.crd_installed().await {
                    Err(Error::NotFound {
                        name: name.to_owned(),
                        namespace: namespace.to_owned(),
                    })
                } else {
                    Err(Error::CrdMissing {
                        server: self.server.clone(),
                    })
                }
            }
            Err(e) => Err(self
                .explain(e, &format!("reading Release {namespace}/{name}"))
                .await),
        }
    }

    /// Releases in `namespace`, or in every namespace when `None`, sorted by namespace and name.
    pub async fn list(&self, namespace: Option<&str>) -> Result<Vec<Release>, Error> {
        let api: Api<Release> = match namespace {
            Some(ns) => self.releases(ns),
            None => Api::all(self.client.clone()),
        };
        match api.list(&ListParams::default()).await {
            Ok(list) => {
                let mut items = list.items;
                items.sort_by_key(|r| (r.namespace(), r.name_any()));
                Ok(items)
            }
            Err(e) => Err(self.explain(e, "listing Releases").await),
        }
    }

    /// A JSON merge patch of the Release: what `kubectl patch --type merge` does.
    pub async fn patch(
        &self,
        namespace: &str,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<Release, Error> {
        let params = PatchParams {
            field_manager: Some(PLUGIN_FIELD_MANAGER.to_owned()),
            ..Default::default()
        };
        match self
            .releases(namespace)
            .patch(name, &params, &Patch::Merge(patch))
            .await
        {
            Ok(r) => Ok(r),
            Err(kube::Error::Api(s)) if s.code == 404 && self.crd_installed().await => {
                Err(Error::NotFound {
                    name: name.to_owned(),
                    namespace: namespace.to_owned(),
                })
            }
            Err(e) => Err(self
                .explain(e, &format!("patching Release {namespace}/{name}"))
                .await),
        }
    }

    /// What `plan` checks in the cluster, as the controller's preflight sees it:
    /// the Deployments and their containers, the HTTPRoutes and whether they
    /// point at the stable Service, the ConfigMaps of the flags, and the
    /// Releases that may claim a Deployment or a ConfigMap.
    pub async fn facts(
        &self,
        namespace: &str,
        name: Option<&str>,
        spec: &ReleaseSpec,
    ) -> Result<ClusterView, Error> {
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
            "gateway.networking.k8s.io",
            "v1",
            "HTTPRoute",
        ));
        let routes: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &ar);
        let mut view = ClusterView {
            namespace: namespace.to_owned(),
            ..Default::default()
        };
        let config_maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        for svc in &spec.services {
            if let Some(cm) = svc.flag.as_ref().and_then(|f| f.config_map.as_deref()) {
                match config_maps.get_metadata_opt(cm).await {
                    Ok(Some(_)) => {
                        view.config_maps.insert(cm.to_owned());
                    }
                    Ok(None) => {}
                    Err(e) => {
                        return Err(self
                            .explain(e, &format!("reading ConfigMap {namespace}/{cm}"))
                            .await);
                    }
                }
            }
            // Only a deployment service has a Deployment to look at.
            let Some(deployment) = svc.deployment() else {
                continue;
            };
            let found = match deployments.get_opt(deployment).await {
                Ok(d) => d,
                Err(e) => {
                    return Err(self
                        .explain(e, &format!("reading Deployment {namespace}/{deployment}"))
                        .await);
                }
            };
            let replicas = found.as_ref().map(crate::traffic::spec_replicas);
            let containers = found.map(|d| {
                d.spec
                    .and_then(|s| s.template.spec)
                    .map(|p| p.containers.into_iter().map(|c| c.name).collect())
                    .unwrap_or_default()
            });
            let mut route_found = false;
            if let Some(g) = svc.traffic.as_ref().and_then(|t| t.gateway_api.as_ref()) {
                // A missing Gateway API CRD also means the route cannot be found.
                if let Ok(Some(route)) = routes.get_opt(&g.http_route).await {
                    let stable = g.service.as_deref().unwrap_or(&svc.name);
                    let rules = route
                        .data
                        .get("spec")
                        .and_then(|s| s.get("rules"))
                        .cloned()
                        .unwrap_or_default();
                    route_found = crate::traffic::gateway::routes_to(&rules, stable);
                }
            }
            view.services.insert(
                svc.name.clone(),
                ServiceView {
                    containers,
                    route_found,
                    replicas,
                },
            );
        }
        // Without the list the claim rule cannot be applied: say so rather
        // than pass. Without the CRD there is no Release to claim anything.
        let others = match self.list(Some(namespace)).await {
            Ok(list) => list,
            Err(Error::CrdMissing { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        view.releases = others.iter().map(Claimant::of).collect();
        // The Release as stored, when it is; otherwise it would be created now,
        // after every Release already there.
        view.release = Some(
            others
                .iter()
                .find(|r| name.is_some_and(|n| r.name_any() == n))
                .map(Claimant::of)
                .unwrap_or_else(|| Claimant::unsaved(name.unwrap_or_default(), spec)),
        );
        Ok(view)
    }
}

/// What creating an approval came to.
#[derive(Debug)]
pub enum Created {
    /// Created now.
    New(ReleaseApproval),
    /// One of that name was there already: the same user approved the same thing before.
    Existing(ReleaseApproval),
}

impl Connection {
    /// Who the API server says we are, as `kubectl auth whoami` asks it.
    pub async fn whoami(&self) -> Result<String, Error> {
        let api: Api<SelfSubjectReview> = Api::all(self.client.clone());
        match api
            .create(&PostParams::default(), &SelfSubjectReview::default())
            .await
        {
            Ok(review) => review
                .status
                .and_then(|s| s.user_info)
                .and_then(|u| u.username)
                .filter(|u| !u.is_empty())
                .ok_or_else(|| Error::Api {
                    what: "asking the API server who you are (SelfSubjectReview)".into(),
                    reason: "it named no user; an approval needs an authenticated user".into(),
                }),
            Err(e) => Err(self
                .explain(e, "asking the API server who you are (SelfSubjectReview)")
                .await),
        }
    }

    /// The ReleasePolicy that applies to `spec` in `namespace`, resolved the way the
    /// controller resolves it; `Err` says why it could not be read.
    pub async fn policy_for(
        &self,
        namespace: &str,
        spec: &ReleaseSpec,
    ) -> Result<PolicyObservation, String> {
        let label = if spec.policy.is_some() {
            None
        } else {
            let namespaces: Api<Namespace> = Api::all(self.client.clone());
            match namespaces.get_opt(namespace).await {
                Ok(ns) => ns.and_then(|n| {
                    n.metadata
                        .labels
                        .and_then(|l| l.get(crate::api::POLICY_LABEL).cloned())
                }),
                Err(e) => {
                    return Err(format!(
                        "cannot read namespace {namespace} for its label {}: {}",
                        crate::api::POLICY_LABEL,
                        root_cause(&e)
                    ));
                }
            }
        };
        let (name, named_by) = signalman_core::policy::named(spec, label.as_deref());
        let policies: Api<ReleasePolicy> = Api::all(self.client.clone());
        match policies.get_opt(&name).await {
            Ok(Some(p)) => Ok(PolicyObservation::Found { name, spec: p.spec }),
            Ok(None) => Ok(match named_by {
                Some(named_by) => PolicyObservation::Missing { name, named_by },
                None => PolicyObservation::None,
            }),
            // Without the ReleasePolicy CRD there is no policy: the behaviour from before policies.
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(PolicyObservation::None),
            Err(e) => Err(format!(
                "cannot read ReleasePolicy {name}: {}",
                root_cause(&e)
            )),
        }
    }

    /// Create `approval`; an existing one of that name is returned, not replaced (approvals are immutable).
    /// The API server's refusal (its admission policy's message) is passed on as it says it.
    pub async fn create_approval(&self, approval: &ReleaseApproval) -> Result<Created, Error> {
        let ns = approval.metadata.namespace.clone().unwrap_or_default();
        let name = approval.metadata.name.clone().unwrap_or_default();
        let api: Api<ReleaseApproval> = Api::namespaced(self.client.clone(), &ns);
        let params = PostParams {
            field_manager: Some(PLUGIN_FIELD_MANAGER.to_owned()),
            ..Default::default()
        };
        let what = format!("creating ReleaseApproval {ns}/{name}");
        match api.create(&params, approval).await {
            Ok(a) => Ok(Created::New(a)),
            Err(kube::Error::Api(s)) if s.code == 409 => match api.get_opt(&name).await {
                Ok(Some(a)) => Ok(Created::Existing(a)),
                Ok(None) => Err(Error::Api {
                    what,
                    reason: s.message,
                }),
                Err(e) => Err(self
                    .explain(e, &format!("reading ReleaseApproval {ns}/{name}"))
                    .await),
            },
            Err(kube::Error::Api(s)) if s.code == 404 => Err(Error::Api {
                what,
                reason: format!(
                    "{}; is the ReleaseApproval CRD (releaseapprovals.signalman.dev) installed? install it with kubectl apply -f crds/ or the Helm chart",
                    s.message
                ),
            }),
            // Admission (the ValidatingAdmissionPolicy) and RBAC answer here: their words, as they are.
            Err(kube::Error::Api(s)) => Err(Error::Refused {
                what: format!("ReleaseApproval {ns}/{name}"),
                reason: s.message,
            }),
            Err(e) => Err(self.explain(e, &what).await),
        }
    }
}

/// The innermost cause, which is the part that says what happened ("connection refused").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

//! Observe: read everything one decision needs and reduce it to
//! `engine::Observations`. Reading and reducing are split so the reduction is
//! plain data in, data out.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service};
use kube::api::{DynamicObject, ListParams};
use kube::{Resource, ResourceExt};
use serde_json::Value;

use super::cluster::Cluster;
use super::template::{rolled_out, template_state};
use super::{Context, Error};
use crate::analysis::{MeasurementRequest, QueryVars, Taken, render_query};
use crate::api::{Release, ServiceSpec};
use crate::engine::{Observations, RouteObservation, ServiceObservation, StableObservation};
use crate::preflight::Claimant;
use crate::traffic::gateway::{self, POD_TEMPLATE_HASH, canary_service_name, http_route_resource};
use crate::traffic::{canary_deployment_name, canary_deployment_ready, replica};

/// Name of the ControllerRevision holding a service's baseline.
pub fn baseline_name(release: &str, service: &str) -> String {
    format!("{release}-{service}-baseline")
}

/// What a baseline ControllerRevision holds.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Baseline {
    /// The stable Deployment's pod template before the release.
    pub template: PodTemplateSpec,
    /// Its `spec.replicas` then.
    pub replicas: i32,
    /// The HTTPRoute's `spec.rules` before the release (Gateway API only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_rules: Option<Value>,
}

impl Baseline {
    pub fn from_revision(cr: &ControllerRevision) -> Result<Baseline, Error> {
        let bad = |reason: String| Error::Baseline {
            name: cr.name_any(),
            reason,
        };
        let data = cr.data.as_ref().ok_or_else(|| bad("no data".into()))?;
        serde_json::from_value(data.0.clone()).map_err(|e| bad(e.to_string()))
    }
}

/// One service's objects as read.
#[derive(Clone, Debug, Default)]
pub struct ServiceWorld {
    pub stable: Option<Deployment>,
    pub canary: Option<Deployment>,
    pub baseline: Option<Baseline>,
    /// Gateway API only.
    pub stable_service: Option<Service>,
    pub canary_service: Option<Service>,
    pub route: Option<DynamicObject>,
}

/// Everything read for one Release, by service name.
#[derive(Clone, Debug, Default)]
pub struct World {
    pub services: BTreeMap<String, ServiceWorld>,
    pub replica_sets: Vec<ReplicaSet>,
    /// The Releases in the namespace, for the claim rule.
    pub releases: Vec<Claimant>,
}

/// The Gateway API settings of a service: (route, stable Service).
pub fn gateway_of(svc: &ServiceSpec) -> Option<(String, String)> {
    let g = svc.traffic.as_ref()?.gateway_api.as_ref()?;
    Some((
        g.http_route.clone(),
        g.service.clone().unwrap_or_else(|| svc.name.clone()),
    ))
}

impl World {
    pub async fn read(cluster: &Cluster, rel: &Release) -> Result<World, Error> {
        let name = rel.name_any();
        let releases = cluster
            .api::<Release>()
            .list(&ListParams::default())
            .await
            .map_err(Error::Kube)?
            .items
            .iter()
            .map(Claimant::of)
            .collect();
        let mut world = World {
            releases,
            replica_sets: cluster
                .api::<ReplicaSet>()
                .list(&ListParams::default())
                .await
                .map_err(Error::Kube)?
                .items,
            ..World::default()
        };
        for svc in &rel.spec.services {
            let mut w = ServiceWorld {
                stable: cluster.get::<Deployment>(&svc.deployment).await?,
                canary: cluster
                    .get::<Deployment>(&canary_deployment_name(&svc.deployment))
                    .await?,
                baseline: match cluster
                    .get::<ControllerRevision>(&baseline_name(&name, &svc.name))
                    .await?
                {
                    Some(cr) => Some(Baseline::from_revision(&cr)?),
                    None => None,
                },
                ..ServiceWorld::default()
            };
            if let Some((route, service)) = gateway_of(svc) {
                w.stable_service = cluster.get::<Service>(&service).await?;
                w.canary_service = cluster
                    .get::<Service>(&canary_service_name(&service))
                    .await?;
                w.route = cluster
                    .dynamic(&http_route_resource())
                    .get_opt(&route)
                    .await
                    .map_err(Error::Kube)?;
            }
            world.services.insert(svc.name.clone(), w);
        }
        Ok(world)
    }

    /// The pod-template-hash of a Deployment's current ReplicaSet.
    pub fn current_hash(&self, d: &Deployment) -> Option<String> {
        current_hash(&self.replica_sets, d)
    }

    pub fn observations(&self, rel: &Release) -> Observations {
        let services = rel
            .spec
            .services
            .iter()
            .map(|svc| {
                let w = self.services.get(&svc.name).cloned().unwrap_or_default();
                (svc.name.clone(), self.observe_service(svc, &w))
            })
            .collect();
        Observations {
            services,
            measurements: Vec::new(),
            releases: self.releases.clone(),
        }
    }

    fn observe_service(&self, svc: &ServiceSpec, w: &ServiceWorld) -> ServiceObservation {
        let stable_replicas = w
            .stable
            .as_ref()
            .and_then(|d| d.spec.as_ref()?.replicas)
            .unwrap_or(1);
        let stable = w.stable.as_ref().map(|d| {
            let template = d
                .spec
                .as_ref()
                .map(|s| s.template.clone())
                .unwrap_or_default();
            StableObservation {
                containers: template
                    .spec
                    .as_ref()
                    .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
                    .unwrap_or_default(),
                template: template_state(
                    &template,
                    w.baseline.as_ref().map(|b| &b.template),
                    &svc.change,
                ),
                rolled_out: rolled_out(d),
                replicas: stable_replicas,
            }
        });
        let (canary, route) = match gateway_of(svc) {
            None => (replica::observe(w.canary.as_ref(), stable_replicas), None),
            Some((_, service)) => self.observe_gateway(w, &service, stable_replicas),
        };
        ServiceObservation {
            stable,
            canary,
            baseline_recorded: w.baseline.is_some(),
            route,
        }
    }

    fn observe_gateway(
        &self,
        w: &ServiceWorld,
        service: &str,
        stable_replicas: i32,
    ) -> (
        Option<crate::engine::CanaryObservation>,
        Option<RouteObservation>,
    ) {
        let canary_svc = canary_service_name(service);
        let rules = w.route.as_ref().map(route_rules);
        let route = RouteObservation {
            found: rules
                .as_ref()
                .is_some_and(|r| gateway::routes_to(r, service)),
            drifted: match (
                &rules,
                w.baseline.as_ref().and_then(|b| b.route_rules.as_ref()),
            ) {
                (Some(live), Some(original)) => {
                    gateway::drifted(live, original, service, &canary_svc)
                }
                _ => false,
            },
        };
        let route_weight = rules
            .as_ref()
            .and_then(|r| gateway::canary_weight(r, &canary_svc));
        let pinned = w.stable_service.as_ref().and_then(gateway::pinned_hash);
        let residue = w.canary.is_some()
            || w.canary_service.is_some()
            || route_weight.is_some()
            || pinned.is_some();
        let canary = residue.then(|| {
            let deployment_ready = w
                .canary
                .as_ref()
                .is_some_and(|c| canary_deployment_ready(c, stable_replicas));
            let pinned_to_current = match (&pinned, w.stable.as_ref()) {
                (Some(h), Some(d)) => self.current_hash(d).as_ref() == Some(h),
                _ => false,
            };
            let canary_pinned = match (&w.canary_service, &w.canary) {
                (Some(s), Some(c)) => {
                    gateway::pinned_hash(s).is_some()
                        && gateway::pinned_hash(s) == self.current_hash(c)
                }
                _ => false,
            };
            crate::engine::CanaryObservation {
                weight: route_weight.unwrap_or(0),
                ready: deployment_ready
                    && canary_pinned
                    && route_weight.is_some()
                    && pinned_to_current
                    && w.canary.as_ref().and_then(crate::traffic::annotated_weight) == route_weight,
            }
        });
        (canary, Some(route))
    }
}

pub fn route_rules(route: &DynamicObject) -> Value {
    route
        .data
        .get("spec")
        .and_then(|s| s.get("rules"))
        .cloned()
        .unwrap_or(Value::Array(vec![]))
}

/// The pod-template-hash of the ReplicaSet of `d`'s current revision.
pub fn current_hash(replica_sets: &[ReplicaSet], d: &Deployment) -> Option<String> {
    const REVISION: &str = "deployment.kubernetes.io/revision";
    let uid = d.meta().uid.as_deref()?;
    let revision = d.annotations().get(REVISION)?;
    replica_sets
        .iter()
        .filter(|rs| rs.owner_references().iter().any(|o| o.uid == uid))
        .find(|rs| rs.annotations().get(REVISION) == Some(revision))
        .and_then(|rs| rs.labels().get(POD_TEMPLATE_HASH).cloned())
}

/// Run the measurements the engine asked for, concurrently.
pub async fn measure(
    ctx: &Context,
    rel: &Release,
    world: &World,
    due: &[MeasurementRequest],
    default_url: &str,
) -> Vec<Taken> {
    let url = rel
        .spec
        .prometheus
        .as_ref()
        .map(|p| p.address.clone())
        .unwrap_or_else(|| default_url.to_string());
    let ns = rel.namespace().unwrap_or_default();
    let runs = due.iter().map(|req| {
        let url = url.clone();
        let ns = ns.clone();
        async move {
            let at = jiff::Timestamp::now();
            let result = match rel.spec.service(&req.service).and_then(|svc| {
                let analysis = rel.spec.analysis_of(svc);
                let metric = analysis.metrics.into_iter().find(|m| m.name == req.metric)?;
                Some((svc, metric))
            }) {
                None => crate::analysis::QueryResult::Error(format!(
                    "metric {:?} of service {:?} is not in the spec",
                    req.metric, req.service
                )),
                Some((svc, metric)) => {
                    let w = world.services.get(&svc.name);
                    let hash = |d: Option<&Deployment>| {
                        d.and_then(|d| world.current_hash(d)).unwrap_or_default()
                    };
                    let vars = QueryVars {
                        namespace: ns.clone(),
                        service: svc.kubernetes_service().to_owned(),
                        release: rel.name_any(),
                        canary_hash: hash(w.and_then(|w| w.canary.as_ref())),
                        stable_hash: hash(w.and_then(|w| w.stable.as_ref())),
                    };
                    let query = render_query(&metric.query, &vars);
                    ctx.prometheus.instant(&url, &query).await
                }
            };
            if let crate::analysis::QueryResult::Value(v) = &result {
                ctx.metrics
                    .measured(&ns, &rel.name_any(), &req.service, &req.metric, *v);
            }
            tracing::info!(service = %req.service, metric = %req.metric, step = req.step, ?result, "measured");
            Taken {
                service: req.service.clone(),
                metric: req.metric.clone(),
                step: req.step,
                result,
                at,
            }
        }
    });
    futures::future::join_all(runs).await
}

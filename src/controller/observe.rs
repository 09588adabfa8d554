//! Observe: read everything one decision needs and reduce it to
//! `engine::Observations`. Reading and reducing are split so the reduction is
//! plain data in, data out; what traffic is in effect is each provider's to say.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Service;
use kube::api::ListParams;
use kube::{Resource, ResourceExt};

use super::cluster::Cluster;
use super::template::template_state;
use super::{Context, Error};
use crate::analysis::{MeasurementRequest, QueryResult, QueryVars, Taken, render_query};
use crate::api::{Release, ServiceSpec};
use crate::engine::{Observations, ServiceObservation, StableObservation};
use crate::preflight::Claimant;
use crate::traffic::gateway::{POD_TEMPLATE_HASH, canary_service_name, http_route_resource};
use crate::traffic::{
    self, Baseline, ServiceObjects, baseline_name, canary_deployment_name, rolled_out,
};

/// Everything read for one Release, by service name.
#[derive(Clone, Debug, Default)]
pub struct World {
    pub services: BTreeMap<String, ServiceObjects>,
    /// The Releases in the namespace, for the claim rule.
    pub releases: Vec<Claimant>,
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
        let replica_sets = cluster
            .api::<ReplicaSet>()
            .list(&ListParams::default())
            .await
            .map_err(Error::Kube)?
            .items;
        let mut world = World {
            releases,
            ..World::default()
        };
        for svc in &rel.spec.services {
            let stable = cluster.get::<Deployment>(&svc.deployment).await?;
            let canary = cluster
                .get::<Deployment>(&canary_deployment_name(&svc.deployment))
                .await?;
            let baseline_cr = cluster
                .get::<ControllerRevision>(&baseline_name(&name, &svc.name))
                .await?;
            let mut o =
                ServiceObjects {
                    stable_hash: stable.as_ref().and_then(|d| current_hash(&replica_sets, d)),
                    canary_hash: canary.as_ref().and_then(|d| current_hash(&replica_sets, d)),
                    stable,
                    canary,
                    baseline: match baseline_cr {
                        Some(cr) => Some(Baseline::from_revision(&cr).map_err(|reason| {
                            Error::Baseline {
                                name: cr.name_any(),
                                reason,
                            }
                        })?),
                        None => None,
                    },
                    ..ServiceObjects::default()
                };
            if let Some(g) = svc.traffic.as_ref().and_then(|t| t.gateway_api.as_ref()) {
                let service = g.service.clone().unwrap_or_else(|| svc.name.clone());
                o.stable_service = cluster.get::<Service>(&service).await?;
                o.canary_service = cluster
                    .get::<Service>(&canary_service_name(&service))
                    .await?;
                o.route = cluster
                    .dynamic(&http_route_resource())
                    .get_opt(&g.http_route)
                    .await
                    .map_err(Error::Kube)?;
            }
            world.services.insert(svc.name.clone(), o);
        }
        Ok(world)
    }

    /// The objects of service `name` (none read: nothing exists).
    pub fn objects(&self, name: &str) -> ServiceObjects {
        self.services.get(name).cloned().unwrap_or_default()
    }

    pub fn observations(&self, rel: &Release) -> Observations {
        let services = rel
            .spec
            .services
            .iter()
            .map(|svc| (svc.name.clone(), self.observe_service(svc)))
            .collect();
        Observations {
            services,
            measurements: Vec::new(),
            releases: self.releases.clone(),
            refused: None,
        }
    }

    fn observe_service(&self, svc: &ServiceSpec) -> ServiceObservation {
        let o = self.services.get(&svc.name).cloned().unwrap_or_default();
        let stable = o.stable.as_ref().map(|d| {
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
                    o.baseline.as_ref().map(|b| &b.template),
                    &svc.change,
                ),
                rolled_out: rolled_out(d),
                replicas: traffic::spec_replicas(d),
                paused: d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false),
                rollout_failed: d
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .into_iter()
                    .flatten()
                    .any(|c| {
                        c.type_ == "Progressing"
                            && c.status == "False"
                            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
                    }),
            }
        });
        let in_effect = traffic::for_service(svc).observe(&o);
        ServiceObservation {
            stable,
            canary: in_effect.canary,
            baseline_recorded: o.baseline.is_some(),
            route: in_effect.route,
        }
    }
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
                None => QueryResult::Error(format!(
                    "metric {:?} of service {:?} is not in the spec",
                    req.metric, req.service
                )),
                Some((svc, metric)) => {
                    let o = world.objects(&svc.name);
                    let vars = QueryVars {
                        namespace: ns.clone(),
                        service: svc.kubernetes_service().to_owned(),
                        release: rel.name_any(),
                        canary_hash: o.canary_hash.unwrap_or_default(),
                        stable_hash: o.stable_hash.unwrap_or_default(),
                    };
                    let query = render_query(&metric.query, &vars);
                    ctx.prometheus.instant(&url, &query).await
                }
            };
            if let QueryResult::Value(v) = &result {
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

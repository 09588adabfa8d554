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
use crate::traffic::gateway::{POD_TEMPLATE_HASH, canary_service_name, http_route_resource};
use crate::traffic::{
    self, Baseline, ServiceObjects, baseline_name, canary_deployment_name, rolled_out,
};

/// Everything read for one Release, by service name.
#[derive(Clone, Debug, Default)]
pub struct World {
    pub services: BTreeMap<String, ServiceObjects>,
    /// Another unfinished Release that has the service's Deployment first.
    pub claimed_by: BTreeMap<String, String>,
}

impl World {
    pub async fn read(cluster: &Cluster, rel: &Release) -> Result<World, Error> {
        let name = rel.name_any();
        let others = cluster
            .api::<Release>()
            .list(&ListParams::default())
            .await
            .map_err(Error::Kube)?
            .items;
        let replica_sets = cluster
            .api::<ReplicaSet>()
            .list(&ListParams::default())
            .await
            .map_err(Error::Kube)?
            .items;
        let mut world = World::default();
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
            if let Some(other) = claimed_by(rel, &svc.deployment, &others) {
                world.claimed_by.insert(svc.name.clone(), other);
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
            claimed_by: self.claimed_by.get(&svc.name).cloned(),
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

/// Another Release, not finished, that lists `deployment` and comes first: it
/// is in flight, or neither is and it is older (creation time, then name).
fn claimed_by(rel: &Release, deployment: &str, others: &[Release]) -> Option<String> {
    let phase = |r: &Release| r.status.as_ref().and_then(|s| s.phase).unwrap_or_default();
    let key = |r: &Release| {
        (
            r.metadata.creation_timestamp.clone().map(|t| t.0),
            r.name_any(),
        )
    };
    let mine_in_flight = phase(rel).is_in_flight();
    others
        .iter()
        .filter(|o| o.name_any() != rel.name_any())
        .filter(|o| !phase(o).is_final())
        .filter(|o| o.spec.services.iter().any(|s| s.deployment == deployment))
        .filter(|o| phase(o).is_in_flight() || (!mine_in_flight && key(o) < key(rel)))
        .map(|o| o.name_any())
        .min()
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
                        service: svc.name.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Phase, ReleaseSpec, ReleaseStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn release(name: &str, created: i64, phase: Option<Phase>) -> Release {
        let spec: ReleaseSpec = serde_json::from_value(serde_json::json!({
            "owner": "o",
            "services": [{"name": "a", "deployment": "web", "change": {"images": {"app": "x"}}}]
        }))
        .unwrap();
        let mut r = Release::new(name, spec);
        r.metadata.creation_timestamp = Some(Time(jiff::Timestamp::from_second(created).unwrap()));
        r.status = phase.map(|p| ReleaseStatus {
            phase: Some(p),
            ..Default::default()
        });
        r
    }

    #[test]
    fn the_release_in_flight_or_else_the_older_one_claims_a_deployment() {
        let me = release("me", 10, None);
        let older = release("older", 5, None);
        let newer = release("newer", 20, None);
        let flying = release("flying", 30, Some(Phase::Progressing));
        let done = release("done", 1, Some(Phase::Succeeded));
        assert_eq!(claimed_by(&me, "web", &[me.clone(), newer.clone()]), None);
        assert_eq!(
            claimed_by(&me, "web", std::slice::from_ref(&older)),
            Some("older".into())
        );
        assert_eq!(
            claimed_by(&me, "web", std::slice::from_ref(&flying)),
            Some("flying".into())
        );
        assert_eq!(claimed_by(&me, "web", &[done]), None);
        assert_eq!(claimed_by(&me, "other", &[older]), None);
        // once in flight, a Pending Release never takes it away
        let me_flying = release("me", 10, Some(Phase::Progressing));
        assert_eq!(claimed_by(&me_flying, "web", &[newer]), None);
    }
}

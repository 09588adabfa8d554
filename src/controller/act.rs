//! Act: carry out one engine action. Each one is idempotent and writes only
//! what differs from what it finds, so re-running any prefix of a decision
//! after a crash converges, and a release waiting for the cluster costs no writes.

use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment};
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{ObjectMeta, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::Error;
use super::cluster::Cluster;
use super::observe::{Baseline, World, baseline_name, gateway_of, route_rules};
use super::template::{canary_replicas, new_template};
use crate::api::{Change, Release, ServiceSpec};
use crate::engine::Action;
use crate::traffic::gateway::{
    self, POD_TEMPLATE_HASH, canary_service, canary_service_name, http_route_resource,
};
use crate::traffic::{
    Owner, annotated_weight, canary_deployment, canary_deployment_name, canary_deployment_ready,
};

pub async fn apply(
    cluster: &Cluster,
    rel: &Release,
    world: &World,
    action: &Action,
) -> Result<(), Error> {
    let service = match action {
        Action::RecordBaseline { service }
        | Action::SetCanaryWeight { service, .. }
        | Action::PromoteStable { service }
        | Action::RemoveCanary { service }
        | Action::RestoreBaseline { service } => service,
    };
    let svc = rel
        .spec
        .service(service)
        .ok_or_else(|| Error::Missing(format!("service {service:?} is not in the spec")))?;
    let sw = world.services.get(service).cloned().unwrap_or_default();
    match action {
        Action::RecordBaseline { .. } => record_baseline(cluster, rel, svc, &sw).await,
        Action::SetCanaryWeight { weight, .. } => {
            set_canary_weight(cluster, rel, svc, world, *weight).await
        }
        Action::PromoteStable { .. } => promote_stable(cluster, rel, svc, &sw).await,
        Action::RemoveCanary { .. } => remove_canary(cluster, rel, svc, &sw).await,
        Action::RestoreBaseline { .. } => restore_baseline(cluster, rel, svc, &sw).await,
    }
}

fn owner(rel: &Release, svc: &ServiceSpec) -> Result<Owner, Error> {
    Ok(Owner {
        release: rel.name_any(),
        service: svc.name.clone(),
        reference: rel
            .controller_owner_ref(&())
            .ok_or_else(|| Error::Missing("the Release has no uid yet".into()))?,
    })
}

fn stable_of<'a>(
    svc: &ServiceSpec,
    sw: &'a super::observe::ServiceWorld,
) -> Result<&'a Deployment, Error> {
    sw.stable
        .as_ref()
        .ok_or_else(|| Error::Missing(format!("Deployment {:?} no longer exists", svc.deployment)))
}

async fn baseline_of(
    cluster: &Cluster,
    rel: &Release,
    svc: &ServiceSpec,
    sw: &super::observe::ServiceWorld,
) -> Result<Baseline, Error> {
    if let Some(b) = &sw.baseline {
        return Ok(b.clone());
    }
    let name = baseline_name(&rel.name_any(), &svc.name);
    match cluster.get::<ControllerRevision>(&name).await? {
        Some(cr) => Baseline::from_revision(&cr),
        None => Err(Error::Missing(format!(
            "baseline ControllerRevision {name:?} does not exist"
        ))),
    }
}

/// Store the stable template once. Never overwritten: by the time it exists
/// the stable Deployment may already carry the new version.
async fn record_baseline(
    cluster: &Cluster,
    rel: &Release,
    svc: &ServiceSpec,
    sw: &super::observe::ServiceWorld,
) -> Result<(), Error> {
    if sw.baseline.is_some() {
        return Ok(());
    }
    let stable = stable_of(svc, sw)?;
    let spec = stable.spec.clone().unwrap_or_default();
    let mut template = spec.template;
    if let Some(m) = template.metadata.as_mut() {
        m.creation_timestamp = None;
    }
    let route_rules = match gateway_of(svc) {
        Some((route, _)) => {
            Some(route_rules(sw.route.as_ref().ok_or_else(|| {
                Error::Missing(format!("HTTPRoute {route:?} does not exist"))
            })?))
        }
        None => None,
    };
    let baseline = Baseline {
        template,
        replicas: spec.replicas.unwrap_or(1),
        route_rules,
    };
    let o = owner(rel, svc)?;
    let cr = ControllerRevision {
        metadata: ObjectMeta {
            name: Some(baseline_name(&rel.name_any(), &svc.name)),
            labels: Some(o.labels()),
            owner_references: Some(vec![o.reference]),
            ..ObjectMeta::default()
        },
        data: Some(RawExtension(
            serde_json::to_value(&baseline).map_err(Error::Serialize)?,
        )),
        revision: 1,
    };
    match cluster
        .api::<ControllerRevision>()
        .create(&PostParams::default(), &cr)
        .await
    {
        Ok(_) => {
            cluster.metrics.wrote("ControllerRevision", "create");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(Error::Kube(e)),
    }
}

async fn set_canary_weight(
    cluster: &Cluster,
    rel: &Release,
    svc: &ServiceSpec,
    world: &World,
    weight: i32,
) -> Result<(), Error> {
    let sw = world.services.get(&svc.name).cloned().unwrap_or_default();
    let o = owner(rel, svc)?;
    let stable_replicas = sw
        .stable
        .as_ref()
        .map(|d| d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1));
    // Taking traffic away must work with whatever is left: the engine also
    // asks for 0 when the stable Deployment or the route has gone (a hold).
    let withdrawing = weight == 0;
    let live_canary = sw
        .canary
        .as_ref()
        .filter(|c| c.metadata.deletion_timestamp.is_none());
    let wanted = match (live_canary, stable_replicas) {
        // A running canary keeps the version it started with: re-weighting
        // never rolls it to a template from a spec edited mid-release.
        (Some(live), Some(n)) => Some(rescaled(live, weight, canary_replicas(n, weight), &o)),
        (Some(live), None) if withdrawing => Some(rescaled(live, 0, 0, &o)),
        (None, _) if withdrawing => None,
        (_, _) => {
            let stable = stable_of(svc, &sw)?;
            let baseline = baseline_of(cluster, rel, svc, &sw).await?;
            Some(canary_deployment(
                stable,
                &new_template(&baseline.template, &svc.change),
                weight,
                &o,
            ))
        }
    };
    if let Some(wanted) = &wanted {
        let unchanged = live_canary.is_some_and(|c| {
            annotated_weight(c) == Some(weight)
                && c.spec.as_ref().and_then(|s| s.replicas)
                    == wanted.spec.as_ref().and_then(|s| s.replicas)
        });
        if !unchanged {
            cluster.apply_object(wanted).await?;
        }
    }
    let Some((route, service)) = gateway_of(svc) else {
        return Ok(());
    };

    // Gateway API: canary Service, the stable Service pinned, then the weights.
    let missing = |what: String| -> Result<(), Error> {
        if withdrawing {
            Ok(())
        } else {
            Err(Error::Missing(what))
        }
    };
    match (&sw.stable_service, &sw.stable) {
        (Some(stable_svc), Some(stable)) => {
            let canary_hash = sw.canary.as_ref().and_then(|c| world.current_hash(c));
            let wanted = canary_service(stable_svc, &o, canary_hash.as_deref());
            let selector = |s: &Service| s.spec.as_ref().and_then(|s| s.selector.clone());
            if !withdrawing && sw.canary_service.as_ref().map(selector) != Some(selector(&wanted)) {
                cluster.apply_object(&wanted).await?;
            }
            match world.current_hash(stable) {
                Some(hash)
                    if gateway::pinned_hash(stable_svc).as_deref() != Some(hash.as_str()) =>
                {
                    let mut selector = gateway::unpinned_selector(stable_svc);
                    selector.insert(POD_TEMPLATE_HASH.into(), hash);
                    cluster
                        .apply::<Service>(
                            &service,
                            json!({"metadata": {"name": service}, "spec": {"selector": selector}}),
                        )
                        .await?;
                }
                Some(_) => {}
                None => missing(format!(
                    "the current ReplicaSet of Deployment {:?} is not there yet",
                    svc.deployment
                ))?,
            }
        }
        _ => missing(format!(
            "Service {service:?} or Deployment {:?} does not exist",
            svc.deployment
        ))?,
    }

    let Some(route_obj) = sw.route.as_ref() else {
        return missing(format!("HTTPRoute {route:?} does not exist"));
    };
    let live = route_rules(route_obj);
    let original = match sw.baseline.as_ref().and_then(|b| b.route_rules.clone()) {
        Some(r) => r,
        None => baseline_of(cluster, rel, svc, &sw)
            .await?
            .route_rules
            .unwrap_or_else(|| live.clone()),
    };
    let canary_svc = canary_service_name(&service);
    let live_weight = gateway::canary_weight(&live, &canary_svc).unwrap_or(0);
    // Send more traffic only to canary pods that are there to take it.
    let canary_ready = sw.canary.as_ref().is_some_and(|c| {
        annotated_weight(c) == Some(weight)
            && stable_replicas.is_some_and(|n| canary_deployment_ready(c, n))
    });
    if weight > live_weight && !canary_ready {
        return Ok(());
    }
    let rules = gateway::with_canary(&original, &service, &canary_svc, weight);
    if rules != live {
        cluster
            .apply_dynamic(
                &http_route_resource(),
                &route,
                json!({"spec": {"rules": rules}}),
            )
            .await?;
    }
    Ok(())
}

/// The live canary Deployment at another weight: same selector and template.
fn rescaled(live: &Deployment, weight: i32, replicas: i32, owner: &Owner) -> Deployment {
    let spec = live.spec.clone().unwrap_or_default();
    Deployment {
        metadata: ObjectMeta {
            name: live.metadata.name.clone(),
            labels: Some(owner.labels()),
            annotations: Some(
                [(
                    crate::traffic::WEIGHT_ANNOTATION.to_string(),
                    weight.to_string(),
                )]
                .into(),
            ),
            owner_references: Some(vec![owner.reference.clone()]),
            ..ObjectMeta::default()
        },
        spec: Some(k8s_openapi::api::apps::v1::DeploymentSpec {
            replicas: Some(replicas),
            selector: spec.selector,
            template: spec.template,
            ..Default::default()
        }),
        status: None,
    }
}

/// The containers the change touches, as server-side apply entries carrying
/// `images`/`env` taken from `template` (the new one or the baseline).
/// Env vars the baseline lacks are left out of a restore, so server-side apply
/// removes the ones Signalman added.
fn change_patch(template: &PodTemplateSpec, change: &Change) -> Value {
    let containers = template
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    let names: std::collections::BTreeSet<&String> =
        change.images.keys().chain(change.env.keys()).collect();
    let entries: Vec<Value> = names
        .into_iter()
        .filter_map(|name| containers.iter().find(|c| &c.name == name))
        .map(|c| {
            let mut entry = json!({"name": c.name});
            if change.images.contains_key(&c.name) {
                entry["image"] = json!(c.image);
            }
            if let Some(vars) = change.env.get(&c.name) {
                let env: Vec<Value> = c
                    .env
                    .iter()
                    .flatten()
                    .filter(|e| vars.contains_key(&e.name) && e.value.is_some())
                    .map(|e| json!({"name": e.name, "value": e.value}))
                    .collect();
                if !env.is_empty() {
                    entry["env"] = json!(env);
                }
            }
            entry
        })
        .collect();
    json!({"spec": {"template": {"spec": {"containers": entries}}}})
}

async fn promote_stable(
    cluster: &Cluster,
    rel: &Release,
    svc: &ServiceSpec,
    sw: &super::observe::ServiceWorld,
) -> Result<(), Error> {
    if let Some((_, service)) = gateway_of(svc) {
        // The new stable pods get a new pod-template-hash: unpin first so the
        // stable Service follows them.
        unpin(cluster, &service, sw.stable_service.as_ref()).await?;
    }
    let stable = stable_of(svc, sw)?;
    let baseline = baseline_of(cluster, rel, svc, sw).await?;
    let new = new_template(&baseline.template, &svc.change);
    if stable.spec.as_ref().map(|s| &s.template) == Some(&new)
        || super::template::template_state(
            &stable.spec.clone().unwrap_or_default().template,
            Some(&baseline.template),
            &svc.change,
        ) == crate::engine::TemplateState::New
    {
        return Ok(());
    }
    let mut body = change_patch(&new, &svc.change);
    body["metadata"] = json!({"name": svc.deployment});
    cluster.apply::<Deployment>(&svc.deployment, body).await?;
    Ok(())
}

async fn restore_baseline(
    cluster: &Cluster,
    rel: &Release,
    svc: &ServiceSpec,
    sw: &super::observe::ServiceWorld,
) -> Result<(), Error> {
    let stable = stable_of(svc, sw)?;
    let baseline = baseline_of(cluster, rel, svc, sw).await?;
    if super::template::template_state(
        &stable.spec.clone().unwrap_or_default().template,
        Some(&baseline.template),
        &svc.change,
    ) == crate::engine::TemplateState::Baseline
    {
        return Ok(());
    }
    let mut body = change_patch(&baseline.template, &svc.change);
    body["metadata"] = json!({"name": svc.deployment});
    cluster.apply::<Deployment>(&svc.deployment, body).await?;
    Ok(())
}

async fn unpin(cluster: &Cluster, service: &str, live: Option<&Service>) -> Result<(), Error> {
    let Some(live) = live else { return Ok(()) };
    if gateway::pinned_hash(live).is_none() {
        return Ok(());
    }
    let selector = gateway::unpinned_selector(live);
    cluster
        .apply::<Service>(
            service,
            json!({"metadata": {"name": service}, "spec": {"selector": selector}}),
        )
        .await?;
    cluster
        .release_fields(&kube::core::ApiResource::erase::<Service>(&()), service)
        .await
}

async fn remove_canary(
    cluster: &Cluster,
    rel: &Release,
    svc: &ServiceSpec,
    sw: &super::observe::ServiceWorld,
) -> Result<(), Error> {
    if let Some((route, service)) = gateway_of(svc) {
        // All traffic back to the stable backend before anything is deleted.
        if let Some(route_obj) = &sw.route {
            let live = route_rules(route_obj);
            let baseline = baseline_of(cluster, rel, svc, sw).await.ok();
            if let Some(original) = baseline.and_then(|b| b.route_rules)
                && live != original
            {
                cluster
                    .apply_dynamic(
                        &http_route_resource(),
                        &route,
                        json!({"spec": {"rules": original}}),
                    )
                    .await?;
            }
            cluster
                .release_fields(&http_route_resource(), &route)
                .await?;
        }
        unpin(cluster, &service, sw.stable_service.as_ref()).await?;
        if sw.canary_service.is_some() {
            cluster
                .delete::<Service>(&canary_service_name(&service))
                .await?;
        }
    }
    if sw.canary.is_some() {
        cluster
            .delete::<Deployment>(&canary_deployment_name(&svc.deployment))
            .await?;
    }
    Ok(())
}

/// The release is over: drop Signalman's field ownership on the stable
/// Deployments (their values stay), so the user's next apply owns them again.
pub async fn release_user_objects(cluster: &Cluster, rel: &Release) -> Result<(), Error> {
    let ar = kube::core::ApiResource::erase::<Deployment>(&());
    for svc in &rel.spec.services {
        cluster.release_fields(&ar, &svc.deployment).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec};

    #[test]
    fn restore_patch_leaves_out_env_the_baseline_lacks() {
        let base = PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    image: Some("web:v1".into()),
                    env: Some(vec![EnvVar {
                        name: "A".into(),
                        value: Some("1".into()),
                        value_from: None,
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        };
        let mut change = Change::default();
        change.images.insert("app".into(), "web:v2".into());
        change.env.insert(
            "app".into(),
            [
                ("A".to_string(), "2".to_string()),
                ("B".to_string(), "3".to_string()),
            ]
            .into(),
        );
        let forward = change_patch(&new_template(&base, &change), &change);
        assert_eq!(
            forward["spec"]["template"]["spec"]["containers"],
            json!([{"name": "app", "image": "web:v2", "env": [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}]}])
        );
        let back = change_patch(&base, &change);
        assert_eq!(
            back["spec"]["template"]["spec"]["containers"],
            json!([{"name": "app", "image": "web:v1", "env": [{"name": "A", "value": "1"}]}])
        );
    }
}

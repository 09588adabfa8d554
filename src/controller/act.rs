//! Act: carry out one engine action. Each one is idempotent and writes only
//! what differs from what it finds, so re-running any prefix of a decision
//! after a crash converges, and a release waiting for the cluster costs no
//! writes. Traffic is the provider's business: this module asks it for the
//! writes and executes them.

use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::Error;
use super::cluster::Cluster;
use super::observe::World;
use super::template::{new_template, template_state};
use super::{flag, migration};
use crate::api::{Change, MemberKind, Release, ServiceSpec};
use crate::engine::{Action, Decision, JobKind, Observations, TemplateState, WriteRefusal};
use crate::traffic::{self, Baseline, Owner, ServiceObjects, Write, baseline_name};

/// Carry out `decision`'s actions in order. A write the API server refuses as
/// invalid is not an error to retry: the engine is told (`obs.refused`) and
/// decides again from the same status (a hold, or a failed rollback), and that
/// decision is carried out instead. Returns the decision whose status is to be
/// written, and the actions carried out.
pub async fn carry_out(
    cluster: &Cluster,
    rel: &Release,
    world: &World,
    obs: &mut Observations,
    decision: Decision,
    now: jiff::Timestamp,
) -> Result<(Decision, Vec<Action>), Error> {
    let mut done = Vec::new();
    for action in &decision.actions {
        tracing::info!(?action, "acting");
        match apply(cluster, rel, world, action).await {
            Ok(()) => done.push(action.clone()),
            Err(e) => {
                let Some(message) = refusal(&e) else {
                    return Err(e);
                };
                tracing::warn!(?action, %message, "the API server refused a write; deciding again");
                obs.refused = Some(WriteRefusal {
                    service: action.service().to_owned(),
                    doing: doing(action),
                    message,
                });
                let again = crate::engine::decide(rel, obs, now);
                for action in &again.actions {
                    tracing::info!(?action, "acting after a refused write");
                    match apply(cluster, rel, world, action).await {
                        Ok(()) => done.push(action.clone()),
                        // The hold stands with the first refusal's message;
                        // the next look tries the canary at 0 % again.
                        Err(e) if refusal(&e).is_some() => {
                            tracing::warn!(?action, error = %e, "refused too")
                        }
                        Err(e) => return Err(e),
                    }
                }
                return Ok((again, done));
            }
        }
    }
    Ok((decision, done))
}

/// The API server's message when it refused a write as invalid: 422 Invalid
/// or 400 BadRequest. Conflicts, throttling, server errors and timeouts are
/// not refusals: they may pass on a retry.
fn refusal(e: &Error) -> Option<String> {
    match e {
        Error::Kube(kube::Error::Api(s)) if s.code == 422 || s.code == 400 => {
            Some(s.message.clone())
        }
        _ => None,
    }
}

fn doing(action: &Action) -> String {
    match action {
        Action::RecordBaseline { .. } => "recording the baseline".to_owned(),
        Action::SetCanaryWeight { weight, .. } => format!("setting the canary weight to {weight}"),
        Action::PromoteStable { .. } => "promoting the new version".to_owned(),
        Action::RemoveCanary { .. } => "removing the canary".to_owned(),
        Action::RestoreBaseline { .. } => "restoring the baseline".to_owned(),
        Action::CreateJob { job, .. } => format!("creating the {} Job", job.word()),
        Action::StopJob { job, .. } => format!("stopping the {} Job", job.word()),
        Action::SetFlag { .. } => "setting the flag's keys".to_owned(),
        Action::RestoreFlag { .. } => "restoring the flag's keys".to_owned(),
        Action::DeleteBaseline { .. } => "removing the baseline".to_owned(),
    }
}

pub async fn apply(
    cluster: &Cluster,
    rel: &Release,
    world: &World,
    action: &Action,
) -> Result<(), Error> {
    if let Action::StopJob { service, job } = action {
        return stop_job(cluster, &migration::name(rel, service, *job)).await;
    }
    for write in &writes(rel, &world.objects(action.service()), action)? {
        cluster.execute(write).await?;
    }
    Ok(())
}

/// The writes that carry out `action` on its service's `objects`, in order.
/// Pure, so what the controller would write can be asked of an API server
/// as a dry run (`Cluster::dry_run`) before any of it is done for real.
pub fn writes(
    rel: &Release,
    objects: &ServiceObjects,
    action: &Action,
) -> Result<Vec<Write>, Error> {
    let service = action.service();
    let svc = rel
        .spec
        .service(service)
        .ok_or_else(|| Error::Missing(format!("service {service:?} is not in the spec")))?;
    let provider = traffic::for_service(svc);
    Ok(match action {
        Action::RecordBaseline { .. } => baseline_write(rel, svc, objects)?.into_iter().collect(),
        Action::SetCanaryWeight { weight, .. } => {
            // A running canary keeps the version it started with, so the new
            // template is needed (and must come from the baseline) only to start one.
            let template = match (&objects.baseline, objects.live_canary()) {
                (Some(b), _) => new_template(&b.template, &svc.change),
                (None, Some(_)) => PodTemplateSpec::default(),
                (None, None) if *weight == 0 => PodTemplateSpec::default(),
                (None, None) => return Err(no_baseline(rel, svc)),
            };
            provider
                .set_weight(objects, *weight, &template, &owner(rel, svc)?)
                .map_err(Error::Missing)?
        }
        Action::PromoteStable { .. } => {
            let (baseline, state) = stable_state(rel, svc, objects)?;
            let template = if state == TemplateState::New {
                Vec::new()
            } else {
                let new = new_template(&baseline.template, &svc.change);
                template_writes(svc, &new, stable_of(svc, objects)?)
            };
            provider.promote(objects, template)
        }
        Action::RemoveCanary { .. } => provider.remove(objects),
        Action::RestoreBaseline { .. } => {
            let (baseline, state) = stable_state(rel, svc, objects)?;
            if state == TemplateState::Baseline {
                return Ok(Vec::new());
            }
            template_writes(svc, &baseline.template, stable_of(svc, objects)?)
        }
        Action::CreateJob { job, .. } => vec![job_write(rel, svc, *job)?],
        // Not a write of its own: [`apply`] deletes the Job.
        Action::StopJob { .. } => Vec::new(),
        // The rollback window closed: nothing will restore from it any more.
        // Gone already (a retry, a person) is what was wanted.
        Action::DeleteBaseline { .. } => vec![Write::delete::<ControllerRevision>(&baseline_name(
            &rel.name_any(),
            &svc.name,
        ))],
        Action::SetFlag { .. } => {
            let (cm, flag) = flag_of(svc)?;
            vec![flag_write(cm, flag::set(flag))]
        }
        Action::RestoreFlag { .. } => {
            let (cm, _) = flag_of(svc)?;
            let baseline = rel
                .status
                .as_ref()
                .and_then(|s| s.services.iter().find(|s| s.name == svc.name))
                .and_then(|s| s.flag_baseline.as_ref())
                .ok_or_else(|| {
                    Error::Missing(format!(
                        "the baseline of flag {:?} is not recorded in status",
                        svc.name
                    ))
                })?;
            vec![flag_write(cm, flag::restore(baseline))]
        }
    })
}

/// Create the migration's Job of `kind`, unless it exists: a Job that ran
/// once is never run again, whatever happened to it since.
fn job_write(rel: &Release, svc: &ServiceSpec, kind: JobKind) -> Result<Write, Error> {
    let MemberKind::Job(migration) = svc.kind() else {
        return Err(Error::Missing(format!(
            "service {:?} is not a migration",
            svc.name
        )));
    };
    let name = migration::name(rel, &svc.name, kind);
    let job = migration::job(rel, svc, migration, kind, &name, owner(rel, svc)?.reference)
        .ok_or_else(|| {
            Error::Missing(format!(
                "migration {:?} has no rollback Job (job.irreversible)",
                svc.name
            ))
        })?;
    Ok(Write::create(&job))
}

/// Delete a Job that ran too long; its pods go after it (Background), since
/// nothing waits for them. Absent is fine.
async fn stop_job(cluster: &Cluster, name: &str) -> Result<(), Error> {
    let dp = kube::api::DeleteParams {
        propagation_policy: Some(kube::api::PropagationPolicy::Background),
        ..Default::default()
    };
    match cluster.api::<Job>().delete(name, &dp).await {
        Ok(_) => {
            cluster.metrics.wrote("Job", "delete");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::Kube(e)),
    }
}

fn flag_of(svc: &ServiceSpec) -> Result<(&str, &crate::api::FlagChange), Error> {
    match svc.kind() {
        MemberKind::Flag(f) => match f.config_map.as_deref() {
            Some(cm) => Ok((cm, f)),
            None => Err(Error::Missing(format!(
                "flag {:?} names no ConfigMap",
                svc.name
            ))),
        },
        _ => Err(Error::Missing(format!(
            "service {:?} is not a flag",
            svc.name
        ))),
    }
}

/// A patch of only the flag's keys under `data`: the ConfigMap's other keys
/// are the application's, and a `null` removes a key. On a map of strings a
/// strategic merge patch is a JSON merge patch.
fn flag_write(config_map: &str, body: Value) -> Write {
    Write::Patch {
        resource: kube::core::ApiResource::erase::<ConfigMap>(&()),
        name: config_map.to_owned(),
        body,
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

fn stable_of<'a>(svc: &ServiceSpec, objects: &'a ServiceObjects) -> Result<&'a Deployment, Error> {
    objects.stable.as_ref().ok_or_else(|| {
        Error::Missing(format!(
            "Deployment {:?} no longer exists",
            svc.deployment().unwrap_or_default()
        ))
    })
}

fn no_baseline(rel: &Release, svc: &ServiceSpec) -> Error {
    Error::Missing(format!(
        "baseline ControllerRevision {:?} does not exist",
        baseline_name(&rel.name_any(), &svc.name)
    ))
}

/// The baseline, and how the live stable template compares with it and the new version.
fn stable_state<'a>(
    rel: &Release,
    svc: &ServiceSpec,
    objects: &'a ServiceObjects,
) -> Result<(&'a Baseline, TemplateState), Error> {
    let baseline = objects
        .baseline
        .as_ref()
        .ok_or_else(|| no_baseline(rel, svc))?;
    let live = stable_of(svc, objects)?
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let state = template_state(&live, Some(&baseline.template), &svc.change);
    Ok((baseline, state))
}

/// Store the stable template once: a create, never an overwrite, because by
/// the time the baseline exists the stable Deployment may already carry the
/// new version. `None` when it is recorded already.
fn baseline_write(
    rel: &Release,
    svc: &ServiceSpec,
    objects: &ServiceObjects,
) -> Result<Option<Write>, Error> {
    if objects.baseline.is_some() {
        return Ok(None);
    }
    let stable = stable_of(svc, objects)?;
    let spec = stable.spec.clone().unwrap_or_default();
    let mut template = spec.template;
    if let Some(m) = template.metadata.as_mut() {
        m.creation_timestamp = None;
    }
    let baseline = Baseline {
        template,
        replicas: spec.replicas.unwrap_or(1),
        route_rules: traffic::for_service(svc)
            .baseline_routes(objects)
            .map_err(Error::Missing)?,
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
    Ok(Some(Write::create(&cr)))
}

/// The stable Deployment's containers set to `template`'s images and env for
/// what the change touches: a server-side apply, preceded by a patch when a
/// named env var switches between `valueFrom` and `value`.
fn template_writes(svc: &ServiceSpec, template: &PodTemplateSpec, live: &Deployment) -> Vec<Write> {
    let live = live.spec.as_ref().map(|s| &s.template);
    let swap = live.and_then(|live| swap_patch(live, template, &svc.change));
    let apply = Write::apply::<Deployment>(&svc.deployment, change_patch(template, &svc.change));
    match swap {
        Some(body) => vec![
            Write::Patch {
                resource: kube::core::ApiResource::erase::<Deployment>(&()),
                name: svc.deployment.clone(),
                body,
            },
            apply,
        ],
        None => vec![apply],
    }
}

/// The user's manager owns an env var's `valueFrom`; server-side apply of a
/// `value` would keep both, which the API server refuses. So when a var the
/// change names is `valueFrom` on one side and `value` on the other, a
/// strategic merge patch puts `template`'s form in place (the other field
/// set to null, which removes it whoever owns it), together with the named
/// images so the pods roll out once. Env vars the change does not name are
/// never in it. `None` when no named var switches.
fn swap_patch(
    live: &PodTemplateSpec,
    template: &PodTemplateSpec,
    change: &Change,
) -> Option<Value> {
    let containers = |t: &PodTemplateSpec| {
        t.spec
            .as_ref()
            .map(|s| s.containers.clone())
            .unwrap_or_default()
    };
    let (live, target) = (containers(live), containers(template));
    let mut entries = Vec::new();
    for (name, vars) in &change.env {
        let (Some(l), Some(t)) = (
            live.iter().find(|c| &c.name == name),
            target.iter().find(|c| &c.name == name),
        ) else {
            continue;
        };
        let env: Vec<Value> = vars
            .keys()
            .filter_map(|var| {
                let l = l.env.iter().flatten().find(|e| &e.name == var)?;
                let t = t.env.iter().flatten().find(|e| &e.name == var)?;
                (l.value_from.is_some() != t.value_from.is_some()).then(|| {
                    json!({
                        "name": var,
                        "value": t.value,
                        "valueFrom": t.value_from,
                    })
                })
            })
            .collect();
        if env.is_empty() {
            continue;
        }
        let mut entry = json!({"name": name, "env": env});
        if change.images.contains_key(name) {
            entry["image"] = json!(t.image);
        }
        entries.push(entry);
    }
    if entries.is_empty() {
        return None;
    }
    // The other named containers' images go in the same write: one rollout.
    for (name, _) in change
        .images
        .iter()
        .filter(|(n, _)| !change.env.contains_key(*n))
    {
        if let Some(t) = target.iter().find(|c| &c.name == name) {
            entries.push(json!({"name": name, "image": t.image}));
        }
    }
    Some(json!({"spec": {"template": {"spec": {"containers": entries}}}}))
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

/// The release is over: drop Signalman's field ownership on the stable
/// Deployments and the flags' ConfigMaps (their values stay), so the user's
/// next apply owns them again.
pub async fn release_user_objects(cluster: &Cluster, rel: &Release) -> Result<(), Error> {
    for svc in &rel.spec.services {
        let write = match svc.kind() {
            MemberKind::Deployment { deployment, .. } => Write::release::<Deployment>(deployment),
            MemberKind::Flag(f) => match f.config_map.as_deref() {
                Some(cm) => Write::release::<ConfigMap>(cm),
                None => continue,
            },
            MemberKind::Job(_) => continue,
        };
        cluster.execute(&write).await?;
    }
    Ok(())
}

/// Take the Release's ownerReference off the baselines of services whose
/// stable Deployment changed and was not restored, so they outlive the
/// Release for a manual rollback. Returns their names.
pub async fn keep_baselines(
    cluster: &Cluster,
    rel: &Release,
    status: &crate::api::ReleaseStatus,
) -> Result<Vec<String>, Error> {
    use crate::api::ServicePhase;
    let mut kept = Vec::new();
    for s in &status.services {
        let changed = s.stable_changed || s.phase == ServicePhase::Promoted;
        if !changed || s.phase == ServicePhase::Restored {
            continue;
        }
        let name = baseline_name(&rel.name_any(), &s.name);
        let patch = json!({"metadata": {"ownerReferences": null}});
        match cluster
            .api::<ControllerRevision>()
            .patch(
                &name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {
                cluster.metrics.wrote("ControllerRevision", "patch");
                kept.push(name);
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(Error::Kube(e)),
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec,
    };

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

    #[test]
    fn closing_the_window_deletes_the_baseline_revision_and_nothing_else() {
        let spec = signalman_core::testing::spec()
            .services(&[("api", &[])])
            .build();
        let rel = Release::new("shop-v5", spec);
        let delete = Action::DeleteBaseline {
            service: "api".into(),
        };
        let w = writes(&rel, &ServiceObjects::default(), &delete).unwrap();
        assert_eq!(
            w,
            vec![Write::delete::<ControllerRevision>("shop-v5-api-baseline")]
        );
    }

    fn template(image: &str, env: Vec<EnvVar>) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    image: Some(image.into()),
                    env: Some(env),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    fn from_field(name: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: None,
                    field_path: "metadata.name".into(),
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_named_value_from_is_replaced_by_a_patch_and_put_back_on_restore() {
        let base = template("web:v1", vec![from_field("MODE"), from_field("KEEP")]);
        let mut change = Change::default();
        change.images.insert("app".into(), "web:v2".into());
        change.env.insert(
            "app".into(),
            [("MODE".to_owned(), "fast".to_owned())].into(),
        );
        let new = new_template(&base, &change);
        let promote = swap_patch(&base, &new, &change).expect("a patch");
        assert_eq!(
            promote,
            json!({"spec": {"template": {"spec": {"containers": [{
                "name": "app",
                "image": "web:v2",
                "env": [{"name": "MODE", "value": "fast", "valueFrom": null}],
            }]}}}})
        );
        let restore = swap_patch(&new, &base, &change).expect("a patch");
        let env = &restore["spec"]["template"]["spec"]["containers"][0]["env"][0];
        assert_eq!(env["value"], Value::Null);
        assert_eq!(
            env["valueFrom"]["fieldRef"]["fieldPath"],
            json!("metadata.name")
        );
        // KEEP is not named: never in a patch. Nothing switches: no patch.
        assert!(!promote.to_string().contains("KEEP"));
        assert_eq!(swap_patch(&new, &new, &change), None);
        change.env.clear();
        assert_eq!(
            swap_patch(&base, &new_template(&base, &change), &change),
            None
        );
    }
}

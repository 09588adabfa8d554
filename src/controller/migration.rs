//! Migration Jobs in the cluster: the Job a service's template becomes, and
//! what a Job and its pods say about how it went. The engine decides when a
//! Job runs and what its end means; this module only builds and reads Jobs.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{EnvVar, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;

use crate::api::{
    JobResult, MigrationJob, RELEASE_LABEL, Release, SERVICE_LABEL, ServiceSpec, ServiceStatus,
};
use crate::engine::{JobKind, JobObservation};

/// The env var the rollback Job's containers get: how the forward Job ended
/// (`Succeeded`, `Failed` or `TimedOut`), so it can tell a full reversal from
/// the cleanup of a half-applied change.
pub const FORWARD_RESULT_ENV: &str = "SIGNALMAN_FORWARD_RESULT";

/// Where a container's last log lines go when it fails without writing a
/// termination message itself: the operator reads them from the pod's status
/// and never needs the logs API.
const FALLBACK_TO_LOGS: &str = "FallbackToLogsOnError";

/// The service's status entry, if the engine wrote one.
fn service_status<'a>(rel: &'a Release, service: &str) -> Option<&'a ServiceStatus> {
    rel.status
        .as_ref()?
        .services
        .iter()
        .find(|s| s.name == service)
}

/// The name of the Job: as the status records it (the engine records it
/// before the Job is created), else as it will be recorded.
pub fn name(rel: &Release, service: &str, kind: JobKind) -> String {
    let recorded = service_status(rel, service).and_then(|s| match kind {
        JobKind::Forward => s.forward_job.as_ref(),
        JobKind::Rollback => s.rollback_job.as_ref(),
    });
    match recorded {
        Some(run) if !run.name.is_empty() => run.name.clone(),
        _ => signalman_core::migration::job_name(&rel.name_any(), service, kind),
    }
}

/// How the forward Job ended, as the status records it.
fn forward_result(rel: &Release, service: &str) -> Option<JobResult> {
    service_status(rel, service)?.forward_job.as_ref()?.result
}

/// The Job of `kind` for `svc` (a migration `job`), named `name`: the
/// user's template with Signalman's labels on the Job and its pods, owned by
/// the Release (so it goes with it), each container's termination message
/// falling back to its last log lines unless the template says otherwise,
/// and on the rollback Job the forward Job's result in [`FORWARD_RESULT_ENV`].
pub fn job(
    rel: &Release,
    svc: &ServiceSpec,
    migration: &MigrationJob,
    kind: JobKind,
    name: &str,
    owner: OwnerReference,
) -> Option<Job> {
    let template = match kind {
        JobKind::Forward => &migration.forward,
        JobKind::Rollback => migration.rollback.as_ref()?,
    };
    let ours = BTreeMap::from([
        (RELEASE_LABEL.to_owned(), rel.name_any()),
        (SERVICE_LABEL.to_owned(), svc.name.clone()),
    ]);
    let mut meta = template.metadata.clone().unwrap_or_default();
    meta.name = Some(name.to_owned());
    meta.namespace = None;
    meta.generate_name = None;
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .extend(ours.clone());
    meta.owner_references = Some(vec![owner]);
    let mut spec: JobSpec = template.spec.clone().unwrap_or_default();
    let pod_meta = spec
        .template
        .metadata
        .get_or_insert_with(ObjectMeta::default);
    pod_meta
        .labels
        .get_or_insert_with(BTreeMap::new)
        .extend(ours);
    let result = match kind {
        JobKind::Forward => None,
        JobKind::Rollback => forward_result(rel, &svc.name),
    };
    if let Some(pod) = spec.template.spec.as_mut() {
        for c in pod
            .containers
            .iter_mut()
            .chain(pod.init_containers.iter_mut().flatten())
        {
            c.termination_message_policy
                .get_or_insert_with(|| FALLBACK_TO_LOGS.to_owned());
        }
        if let Some(result) = result {
            let value = result.as_str();
            for c in &mut pod.containers {
                let env = c.env.get_or_insert_with(Vec::new);
                env.retain(|e| e.name != FORWARD_RESULT_ENV);
                env.push(EnvVar {
                    name: FORWARD_RESULT_ENV.to_owned(),
                    value: Some(value.to_owned()),
                    value_from: None,
                });
            }
        }
    }
    Some(Job {
        metadata: meta,
        spec: Some(spec),
        status: None,
    })
}

/// What `job` says: running, complete, or failed with its reason and the
/// termination message of its newest failed pod (`pods`: any pods, those
/// the Job controls are picked by its uid).
pub fn observe(job: &Job, pods: &[Pod]) -> JobObservation {
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten();
    let mut failed = None;
    for c in conditions.filter(|c| c.status == "True") {
        match c.type_.as_str() {
            "Complete" => return JobObservation::Succeeded,
            "Failed" => failed = Some(c),
            _ => {}
        }
    }
    let Some(failed) = failed else {
        return JobObservation::Running;
    };
    let reason = match (failed.reason.as_deref(), failed.message.as_deref()) {
        (Some(r), Some(m)) if !m.is_empty() => format!("{r}: {m}"),
        (Some(r), _) => r.to_owned(),
        (None, Some(m)) => m.to_owned(),
        (None, None) => "failed".to_owned(),
    };
    JobObservation::Failed {
        reason,
        logs: last_words(job, pods),
    }
}

/// The termination message of the newest pod of `job` that failed.
fn last_words(job: &Job, pods: &[Pod]) -> Option<String> {
    let uid = job.metadata.uid.as_deref()?;
    let mut failed: Vec<(&Pod, String)> = pods
        .iter()
        .filter(|p| {
            p.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid)
        })
        .filter_map(|p| Some((p, failed_message(p)?)))
        .collect();
    failed.sort_by_key(|(p, _)| {
        (
            p.metadata.creation_timestamp.as_ref().map(|t| t.0),
            p.name_any(),
        )
    });
    failed.pop().map(|(_, m)| m)
}

/// The message of a container of `pod` that terminated with an error (its
/// last run, or the run before a restart).
fn failed_message(pod: &Pod) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses
        .iter()
        .flat_map(|s| {
            [
                s.state.as_ref().and_then(|x| x.terminated.as_ref()),
                s.last_state.as_ref().and_then(|x| x.terminated.as_ref()),
            ]
        })
        .flatten()
        .filter(|t| t.exit_code != 0)
        .find_map(|t| {
            t.message
                .as_deref()
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus, JobTemplateSpec};
    use k8s_openapi::api::core::v1::{
        Container, ContainerState, ContainerStateTerminated, ContainerStatus, PodSpec, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn release_with(status: serde_json::Value) -> Release {
        serde_json::from_value(json!({
            "apiVersion": "signalman.dev/v1alpha1",
            "kind": "Release",
            "metadata": {"name": "shop", "namespace": "ns", "uid": "u-1"},
            "spec": {"owner": "t", "services": []},
            "status": status,
        }))
        .unwrap()
    }

    fn migration() -> MigrationJob {
        let template: JobTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"team": "data"}},
            "spec": {"backoffLimit": 0, "template": {
                "metadata": {"annotations": {"sim.signalman.dev/job-result": "failed"}},
                "spec": {"restartPolicy": "Never", "containers": [
                    {"name": "migrate", "image": "db:1"},
                    {"name": "quiet", "image": "db:1", "terminationMessagePolicy": "File"},
                ]},
            }},
        }))
        .unwrap();
        MigrationJob {
            forward: template.clone(),
            rollback: Some(template),
            irreversible: None,
            timeout: None,
        }
    }

    fn svc() -> ServiceSpec {
        ServiceSpec {
            name: "db".into(),
            ..Default::default()
        }
    }

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "signalman.dev/v1alpha1".into(),
            kind: "Release".into(),
            name: "shop".into(),
            uid: "u-1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    #[test]
    fn a_job_carries_the_labels_the_owner_and_falls_back_to_logs() {
        let rel = release_with(json!({}));
        let j = job(
            &rel,
            &svc(),
            &migration(),
            JobKind::Forward,
            "shop-db-forward",
            owner(),
        )
        .unwrap();
        let v = serde_json::to_value(&j).unwrap();
        assert_eq!(v["metadata"]["name"], "shop-db-forward");
        assert_eq!(
            v["metadata"]["labels"],
            json!({"team": "data", "signalman.dev/release": "shop", "signalman.dev/service": "db"})
        );
        assert_eq!(v["metadata"]["ownerReferences"][0]["controller"], true);
        let pod = &v["spec"]["template"];
        assert_eq!(pod["metadata"]["labels"]["signalman.dev/release"], "shop");
        assert_eq!(
            pod["metadata"]["annotations"]["sim.signalman.dev/job-result"],
            "failed"
        );
        let cs = pod["spec"]["containers"].as_array().unwrap();
        assert_eq!(cs[0]["terminationMessagePolicy"], FALLBACK_TO_LOGS);
        assert_eq!(
            cs[1]["terminationMessagePolicy"], "File",
            "the user's own kept"
        );
        assert!(cs[0].get("env").is_none(), "the forward Job gets no result");
        assert_eq!(v["spec"]["backoffLimit"], 0);
    }

    #[test]
    fn the_rollback_job_is_told_how_the_forward_job_ended() {
        let rel = release_with(json!({"services": [{
            "name": "db", "phase": "Restoring",
            "forwardJob": {"name": "shop-db-forward", "result": "TimedOut"},
        }]}));
        assert_eq!(name(&rel, "db", JobKind::Forward), "shop-db-forward");
        assert_eq!(name(&rel, "db", JobKind::Rollback), "shop-db-rollback");
        let j = job(
            &rel,
            &svc(),
            &migration(),
            JobKind::Rollback,
            "shop-db-rollback",
            owner(),
        )
        .unwrap();
        let v = serde_json::to_value(&j).unwrap();
        for c in v["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
        {
            assert_eq!(
                c["env"],
                json!([{"name": FORWARD_RESULT_ENV, "value": "TimedOut"}])
            );
        }
        let mut irreversible = migration();
        irreversible.rollback = None;
        assert!(job(&rel, &svc(), &irreversible, JobKind::Rollback, "x", owner()).is_none());
    }

    fn job_with(conditions: &[(&str, &str, &str)]) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some("shop-db-forward".into()),
                uid: Some("job-1".into()),
                ..Default::default()
            },
            spec: None,
            status: Some(JobStatus {
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(t, reason, message)| JobCondition {
                            type_: (*t).into(),
                            status: "True".into(),
                            reason: Some((*reason).into()),
                            message: Some((*message).into()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
        }
    }

    fn pod(name: &str, owner_uid: &str, at: i64, exit: i32, message: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(jiff::Timestamp::from_second(at).unwrap())),
                owner_references: Some(vec![OwnerReference {
                    uid: owner_uid.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container::default()],
                ..Default::default()
            }),
            status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: exit,
                            message: message.map(str::to_owned),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_job_is_running_until_complete_or_failed() {
        assert_eq!(observe(&job_with(&[]), &[]), JobObservation::Running);
        // The Job controller's early signals are not the end yet.
        assert_eq!(
            observe(&job_with(&[("SuccessCriteriaMet", "", "")]), &[]),
            JobObservation::Running
        );
        assert_eq!(
            observe(
                &job_with(&[("SuccessCriteriaMet", "", ""), ("Complete", "", "")]),
                &[]
            ),
            JobObservation::Succeeded
        );
    }

    #[test]
    fn a_failed_job_says_why_and_the_last_words_of_its_newest_failed_pod() {
        let j = job_with(&[(
            "Failed",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        )]);
        let pods = [
            pod("old", "job-1", 100, 1, Some("first try: lock timeout")),
            pod("new", "job-1", 200, 1, Some("column orders.total exists\n")),
            pod("ok", "job-1", 300, 0, Some("fine")),
            pod("other", "job-2", 400, 1, Some("another job")),
        ];
        assert_eq!(
            observe(&j, &pods),
            JobObservation::Failed {
                reason: "BackoffLimitExceeded: Job has reached the specified backoff limit".into(),
                logs: Some("column orders.total exists".into()),
            }
        );
        // No pod left, or none said anything: no logs.
        assert_eq!(
            observe(&j, &[pod("silent", "job-1", 100, 1, None)]),
            JobObservation::Failed {
                reason: "BackoffLimitExceeded: Job has reached the specified backoff limit".into(),
                logs: None,
            }
        );
    }
}

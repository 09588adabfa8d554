//! What the train scenarios of issue 13 look at besides Deployments: the
//! migration Jobs Signalman created (each uid ever seen, to prove a Job ran
//! once), their pods, the flags' ConfigMaps, the baselines and the Release's
//! Events; and the resourceVersion of every object a Release could touch, to
//! prove a refused one touched nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

/// The label Signalman puts on its Jobs and their pods.
pub const RELEASE_LABEL: &str = "signalman.dev/release";

/// Every Job of `ns` that Signalman labelled, by name.
pub async fn jobs(client: &Client, ns: &str) -> BTreeMap<String, Job> {
    let api: Api<Job> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default().labels(RELEASE_LABEL))
        .await
        .expect("listing Jobs")
        .items
        .into_iter()
        .map(|j| (j.name_any(), j))
        .collect()
}

/// The pods of Job `job` (by the Job controller's label).
pub async fn pods_of(client: &Client, ns: &str, job: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .expect("listing pods")
        .items
}

/// Whether the Job has condition `type_` (`Complete`, `Failed`) true.
pub fn job_condition(job: &Job, type_: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// The value of env var `name` on every container of the Job's pod template.
pub fn job_env(job: &Job, name: &str) -> Vec<Option<String>> {
    job.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| {
            p.containers
                .iter()
                .map(|c| {
                    c.env
                        .iter()
                        .flatten()
                        .find(|e| e.name == name)
                        .and_then(|e| e.value.clone())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every uid each Job name had, as seen by polling every 50 ms from now on:
/// a Job created twice (or deleted and created again) shows two.
#[derive(Clone, Default)]
pub struct JobWatch(Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>);

impl JobWatch {
    pub fn start(client: &Client, ns: &str) -> JobWatch {
        let seen = JobWatch::default();
        let out = seen.clone();
        let (client, ns) = (client.clone(), ns.to_owned());
        tokio::spawn(async move {
            let api: Api<Job> = Api::namespaced(client, &ns);
            loop {
                if let Ok(list) = api.list(&ListParams::default().labels(RELEASE_LABEL)).await {
                    let mut s = seen.0.lock().unwrap();
                    for j in list.items {
                        s.entry(j.name_any()).or_default().extend(j.uid());
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        out
    }

    /// Job name to the uids it had.
    pub fn seen(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.0.lock().unwrap().clone()
    }
}

/// Create ConfigMap `name` in `ns` with `data`.
pub async fn create_config_map(client: &Client, ns: &str, name: &str, data: &[(&str, &str)]) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    };
    api.create(&Default::default(), &cm)
        .await
        .unwrap_or_else(|e| panic!("creating ConfigMap {name}: {e}"));
}

/// The data of ConfigMap `name` (empty when it has none).
pub async fn config_map_data(client: &Client, ns: &str, name: &str) -> BTreeMap<String, String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    api.get(name)
        .await
        .unwrap_or_else(|e| panic!("reading ConfigMap {name}: {e}"))
        .data
        .unwrap_or_default()
}

/// `(type, reason, note)` of every Event about Release `release` in `ns`.
pub async fn events(client: &Client, ns: &str, release: &str) -> Vec<(String, String, String)> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default())
        .await
        .expect("listing Events")
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(release)
                && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("Release")
        })
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect()
}

/// The names of the baseline ControllerRevisions Signalman recorded in `ns`
/// (`<release>-<service>-baseline`), sorted.
pub async fn baselines(client: &Client, ns: &str) -> Vec<String> {
    let api: Api<k8s_openapi::api::apps::v1::ControllerRevision> =
        Api::namespaced(client.clone(), ns);
    let mut names: Vec<String> = api
        .list(&ListParams::default().labels(RELEASE_LABEL))
        .await
        .expect("listing ControllerRevisions")
        .items
        .iter()
        .map(|r| r.name_any())
        .collect();
    names.sort();
    names
}

/// The resourceVersion of every object in `ns` a Release could change or
/// create, as `<kind>/<name>`: Deployments, Services, HTTPRoutes, ConfigMaps,
/// Jobs and ControllerRevisions (baselines). Equal before and after means
/// nothing was changed, created or deleted.
pub async fn resource_versions(client: &Client, ns: &str) -> BTreeMap<String, String> {
    use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment};
    use k8s_openapi::api::core::v1::Service;
    let mut out = BTreeMap::new();
    record(
        &mut out,
        "Deployment",
        Api::<Deployment>::namespaced(client.clone(), ns),
    )
    .await;
    record(
        &mut out,
        "Service",
        Api::<Service>::namespaced(client.clone(), ns),
    )
    .await;
    record(&mut out, "HTTPRoute", crate::http_routes(client, ns)).await;
    record(
        &mut out,
        "ConfigMap",
        Api::<ConfigMap>::namespaced(client.clone(), ns),
    )
    .await;
    record(&mut out, "Job", Api::<Job>::namespaced(client.clone(), ns)).await;
    let revisions = Api::<ControllerRevision>::namespaced(client.clone(), ns);
    record(&mut out, "ControllerRevision", revisions).await;
    out
}

/// Note the resourceVersion of every object `api` lists, as `<kind>/<name>`.
async fn record<K>(out: &mut BTreeMap<String, String>, kind: &str, api: Api<K>)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let listed = api
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("listing {kind}s: {e}"));
    for o in listed {
        let version = o.resource_version().unwrap_or_default();
        out.insert(format!("{kind}/{}", o.name_any()), version);
    }
}

//! Writes for one Release's namespace. Every write goes through here so it is
//! server-side apply under [`FIELD_MANAGER`] with `apiVersion`/`kind` set, and
//! so the operator can count its own API writes. Reads come from the
//! controller's stores ([`Cache`]).

use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, PropagationPolicy,
};
use kube::core::ApiResource;
use kube::{Client, Resource};
use serde_json::json;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use super::Error;
use super::cache::Cache;
use crate::api::FIELD_MANAGER;
use crate::metrics::Metrics;
use crate::traffic::Write;

/// Client, namespace, stores and write counter for one reconcile.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    pub namespace: String,
    pub metrics: Metrics,
    pub cache: Cache,
    /// Objects written in this reconcile (kind, name): the store may not
    /// show those writes yet.
    pub written: Arc<Mutex<HashSet<(String, String)>>>,
}

impl Cluster {
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn dynamic(&self, ar: &ApiResource) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.namespace, ar)
    }

    pub fn new(client: Client, namespace: String, metrics: Metrics, cache: Cache) -> Cluster {
        Cluster {
            client,
            namespace,
            metrics,
            cache,
            written: Arc::default(),
        }
    }

    /// Carry out one write a traffic provider (or the shell) asked for.
    pub async fn execute(&self, write: &Write) -> Result<(), Error> {
        self.write(write, false).await
    }

    /// Send `write` as a server-side dry run (`dryRun=All`): the API server
    /// validates and admits it exactly as it would the real one, and stores
    /// nothing. What the property test asks about every write of a Release
    /// the API server accepted.
    pub async fn dry_run(&self, write: &Write) -> Result<(), Error> {
        self.write(write, true).await
    }

    async fn write(&self, write: &Write, dry_run: bool) -> Result<(), Error> {
        let counted = |kind: &str, verb: &str| {
            if !dry_run {
                self.metrics.wrote(kind, verb);
            }
        };
        if !dry_run
            && let Write::Apply { resource, name, .. }
            | Write::Patch { resource, name, .. }
            | Write::Scale { resource, name, .. } = write
        {
            self.written
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert((resource.kind.clone(), name.clone()));
        }
        match write {
            Write::Apply {
                resource,
                name,
                body,
            } => {
                self.dynamic(resource)
                    .patch(
                        name,
                        &PatchParams {
                            dry_run,
                            ..apply_params()
                        },
                        &Patch::Apply(body),
                    )
                    .await
                    .map_err(Error::Kube)?;
                counted(&resource.kind, "apply");
                Ok(())
            }
            Write::Create { resource, body } => {
                let obj: DynamicObject =
                    serde_json::from_value(body.clone()).map_err(Error::Serialize)?;
                let params = PostParams {
                    dry_run,
                    field_manager: Some(FIELD_MANAGER.to_owned()),
                };
                match self.dynamic(resource).create(&params, &obj).await {
                    Ok(_) => {
                        counted(&resource.kind, "create");
                        Ok(())
                    }
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                    Err(e) => Err(Error::Kube(e)),
                }
            }
            Write::Patch {
                resource,
                name,
                body,
            } => {
                let params = PatchParams {
                    field_manager: Some(FIELD_MANAGER.to_owned()),
                    dry_run,
                    ..PatchParams::default()
                };
                self.dynamic(resource)
                    .patch(name, &params, &Patch::Strategic(body))
                    .await
                    .map_err(Error::Kube)?;
                counted(&resource.kind, "patch");
                Ok(())
            }
            Write::Delete { resource, name } => self.delete(resource, name, dry_run).await,
            Write::Release { resource, name } => self.release_fields(resource, name, dry_run).await,
            Write::Scale {
                resource,
                name,
                replicas,
            } => {
                let body = json!({
                    "apiVersion": "autoscaling/v1",
                    "kind": "Scale",
                    "metadata": {"name": name},
                    "spec": {"replicas": replicas},
                });
                self.dynamic(resource)
                    .patch_scale(
                        name,
                        &PatchParams {
                            dry_run,
                            ..apply_params()
                        },
                        &Patch::Apply(&body),
                    )
                    .await
                    .map_err(Error::Kube)?;
                counted(&format!("{}/scale", resource.kind), "apply");
                Ok(())
            }
        }
    }

    /// Delete `name`, waiting for its dependents (pods) first, so the object is
    /// visible until nothing it owned can still take traffic. Absent is fine.
    async fn delete(&self, ar: &ApiResource, name: &str, dry_run: bool) -> Result<(), Error> {
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            dry_run,
            ..DeleteParams::default()
        };
        match self.dynamic(ar).delete(name, &dp).await {
            Ok(_) => {
                if !dry_run {
                    self.metrics.wrote(&ar.kind, "delete");
                }
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(Error::Kube(e)),
        }
    }

    /// Forget Signalman's field ownership on a user's object without changing
    /// any value: the fields it set stay as they are, owned by nobody, so the
    /// user's next apply takes them back without a conflict.
    pub async fn release_fields(
        &self,
        ar: &ApiResource,
        name: &str,
        dry_run: bool,
    ) -> Result<(), Error> {
        // The store says whether there is anything to give up (it keeps that
        // much of managedFields); only then is the object read whole, for the
        // other managers' entries the patch must keep.
        let written_now = self
            .written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&(ar.kind.clone(), name.to_owned()));
        if !written_now && self.cache.managed_by_us(&ar.kind, &self.namespace, name) == Some(false)
        {
            return Ok(());
        }
        // The merge patch rewrites managedFields under the version read, so a
        // neighbour writing the object in between (annotating it in a loop)
        // makes it conflict: read again and retry, a few times.
        let mut conflicts = 0;
        loop {
            match self.release_fields_once(ar, name, dry_run).await {
                Err(Error::Kube(kube::Error::Api(s))) if s.code == 409 && conflicts < 5 => {
                    self.metrics.conflicted(&ar.kind, "patch");
                    conflicts += 1;
                }
                Err(Error::Kube(kube::Error::Api(s))) if s.code == 409 => {
                    self.metrics.conflicted(&ar.kind, "patch");
                    return Err(Error::Kube(kube::Error::Api(s)));
                }
                done => return done,
            }
        }
    }

    async fn release_fields_once(
        &self,
        ar: &ApiResource,
        name: &str,
        dry_run: bool,
    ) -> Result<(), Error> {
        let api = self.dynamic(ar);
        let Some(obj) = api.get_opt(name).await.map_err(Error::Kube)? else {
            return Ok(());
        };
        let Some(fields) = obj.metadata.managed_fields.as_ref() else {
            return Ok(());
        };
        if !fields
            .iter()
            .any(|f| f.manager.as_deref() == Some(FIELD_MANAGER))
        {
            return Ok(());
        }
        let kept: Vec<_> = fields
            .iter()
            .filter(|f| f.manager.as_deref() != Some(FIELD_MANAGER))
            .cloned()
            .collect();
        // An empty list means "leave managedFields alone"; `[{}]` clears them.
        let kept = if kept.is_empty() {
            json!([{}])
        } else {
            serde_json::to_value(kept).map_err(Error::Serialize)?
        };
        let patch = json!({"metadata": {
            "managedFields": kept,
            "resourceVersion": obj.metadata.resource_version,
        }});
        let params = PatchParams {
            dry_run,
            ..PatchParams::default()
        };
        api.patch(name, &params, &Patch::Merge(&patch))
            .await
            .map_err(Error::Kube)?;
        if !dry_run {
            self.metrics.wrote(&ar.kind, "patch");
        }
        Ok(())
    }
}

pub fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

//! Reads and writes for one Release's namespace. Every write goes through here
//! so it is server-side apply under [`FIELD_MANAGER`] with `apiVersion`/`kind`
//! set, and so the operator can count its own API writes.

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy};
use kube::core::ApiResource;
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::fmt::Debug;

use super::Error;
use crate::api::FIELD_MANAGER;
use crate::metrics::Metrics;

/// Client, namespace and write counter for one reconcile.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    pub namespace: String,
    pub metrics: Metrics,
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

    pub async fn get<K>(&self, name: &str) -> Result<Option<K>, Error>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        self.api::<K>().get_opt(name).await.map_err(Error::Kube)
    }

    /// Server-side apply `body` (a partial object: only the fields Signalman
    /// owns) to the object `name` of type `K`, taking those fields over.
    pub async fn apply<K>(&self, name: &str, body: Value) -> Result<K, Error>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        let body = typed::<K>(body);
        let out = self
            .api::<K>()
            .patch(name, &apply_params(), &Patch::Apply(&body))
            .await
            .map_err(Error::Kube)?;
        self.metrics.wrote(&K::kind(&()), "apply");
        Ok(out)
    }

    /// Server-side apply of a whole typed object built by Signalman.
    pub async fn apply_object<K>(&self, obj: &K) -> Result<K, Error>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Serialize
            + Debug,
    {
        let name = obj.meta().name.clone().unwrap_or_default();
        let body = serde_json::to_value(obj).map_err(Error::Serialize)?;
        self.apply::<K>(&name, body).await
    }

    pub async fn apply_dynamic(
        &self,
        ar: &ApiResource,
        name: &str,
        mut body: Value,
    ) -> Result<DynamicObject, Error> {
        body["apiVersion"] = ar.api_version.clone().into();
        body["kind"] = ar.kind.clone().into();
        body["metadata"]["name"] = name.into();
        let out = self
            .dynamic(ar)
            .patch(name, &apply_params(), &Patch::Apply(&body))
            .await
            .map_err(Error::Kube)?;
        self.metrics.wrote(&ar.kind, "apply");
        Ok(out)
    }

    /// Delete `name`, waiting for its dependents (pods) first, so the object is
    /// visible until nothing it owned can still take traffic. Absent is fine.
    pub async fn delete<K>(&self, name: &str) -> Result<(), Error>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        let api = self.api::<K>();
        match api.get_opt(name).await.map_err(Error::Kube)? {
            None => return Ok(()),
            Some(o) if o.meta().deletion_timestamp.is_some() => return Ok(()),
            Some(_) => {}
        }
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            ..DeleteParams::default()
        };
        match api.delete(name, &dp).await {
            Ok(_) => {
                self.metrics.wrote(&K::kind(&()), "delete");
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(Error::Kube(e)),
        }
    }

    /// Forget Signalman's field ownership on a user's object without changing
    /// any value: the fields it set stay as they are, owned by nobody, so the
    /// user's next apply takes them back without a conflict.
    pub async fn release_fields(&self, ar: &ApiResource, name: &str) -> Result<(), Error> {
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
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(Error::Kube)?;
        self.metrics.wrote(&ar.kind, "patch");
        Ok(())
    }
}

pub fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Set `apiVersion` and `kind` from the type: apply bodies must carry them.
pub fn typed<K: Resource<DynamicType = ()>>(mut body: Value) -> Value {
    body["apiVersion"] = K::api_version(&()).into();
    body["kind"] = K::kind(&()).into();
    body
}

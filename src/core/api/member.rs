//! Members of a train that are not Deployments: migration Jobs and feature
//! flags, and the hold that defers a service that is not ready.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::JobTemplateSpec;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::{Duration, some_duration};

/// A database migration (or any one-off change) run as a Job in its wave.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.rollback) != has(self.irreversible)").message("spec.services[].job: give a rollback Job template (job.rollback), or say why the migration cannot be reversed (job.irreversible.justification), not both"))]
pub struct MigrationJob {
    /// The Job that applies the change. It runs once, after the services this one depends on
    /// are promoted; the services that depend on this one wait until it has completed.
    #[schemars(schema_with = "job_template")]
    pub forward: JobTemplateSpec,
    /// The Job that reverses the change. On a rollback it runs once every service that depends
    /// on this one has been restored, and the release waits for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_job_template")]
    pub rollback: Option<JobTemplateSpec>,
    /// The change cannot be reversed: no rollback Job. Raises the release's risk to high; on a
    /// rollback everything else is restored and the migration stays applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub irreversible: Option<Irreversible>,
    /// How long each Job may run before it counts as failed (Go duration, default `30m`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some_duration"
    )]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s')").message("spec.services[].job.timeout must be a duration of at least 1s, e.g. 30m"))]
    pub timeout: Option<Duration>,
}

/// Why a migration has no rollback Job.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Irreversible {
    /// Why it cannot be reversed, e.g. `drops the legacy_orders table; restore from backup`.
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new("self.trim() != ''").message("spec.services[].job.irreversible.justification must say why the migration cannot be reversed"))]
    pub justification: String,
}

/// A feature flag switched by the release: keys set in a source the application reads.
/// One source today (`configMap`); others (an OpenFeature `FeatureFlag`) can be added beside it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.configMap)").message("spec.services[].flag needs a source: configMap, the ConfigMap (in the Release's namespace) that holds the flag's keys"))]
pub struct FlagChange {
    /// The ConfigMap, in the Release's namespace, whose keys the application reads as flags.
    /// It must exist before the release starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub config_map: Option<String>,
    /// Key to the value it gets, e.g. `checkout-v2: "on"`. Their values before the release are
    /// recorded as the flag's baseline and put back on a rollback (keys that did not exist are removed).
    #[schemars(extend("minProperties" = 1, "maxProperties" = 50))]
    #[x_kube(validation = Rule::new("self.all(k, size(k) <= 253 && k.matches('^[-._a-zA-Z0-9]+$'))").message("spec.services[].flag.keys: each key must be a valid ConfigMap key (letters, digits, '-', '_' and '.', at most 253 characters)"))]
    pub keys: BTreeMap<String, String>,
    /// How long the flag is measured once its keys are set before it counts as promoted
    /// (Go duration, default `5m`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some_duration"
    )]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s')").message("spec.services[].flag.bake must be a duration of at least 1s, e.g. 5m"))]
    pub bake: Option<Duration>,
}

/// A service that is not ready to ship with this train.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceHold {
    /// Why it waits, e.g. `payments team: load test not signed off`.
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new("self.trim() != ''").message("spec.services[].hold.reason must say why the service is not ready"))]
    pub reason: String,
}

/// What a service of the train is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MemberKind<'a> {
    /// A Deployment shifted in steps (the default).
    Deployment {
        deployment: &'a str,
        change: &'a super::Change,
    },
    /// A migration Job.
    Job(&'a MigrationJob),
    /// A feature flag.
    Flag(&'a FlagChange),
}

/// Defaults for the Jobs and flags of a train.
pub mod default {
    use std::time::Duration;
    /// How long a migration Job may run.
    pub const JOB_TIMEOUT: Duration = Duration::from_secs(30 * 60);
    /// How long a flag bakes once set.
    pub const FLAG_BAKE: Duration = Duration::from_secs(5 * 60);
}

impl MigrationJob {
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout.map_or(default::JOB_TIMEOUT, Into::into)
    }
}

impl FlagChange {
    pub fn bake(&self) -> std::time::Duration {
        self.bake.map_or(default::FLAG_BAKE, Into::into)
    }
}

/// The parts of a Job template the API server checks on a Release: the rest
/// is the Job API's own, checked when the Job is created. Declaring the whole
/// Job schema twice per service would make the CRD larger than the API server
/// allows, so unknown fields are kept as written.
fn job_template(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "required": ["spec"],
        "properties": {
            "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "spec": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "required": ["template"],
                "properties": {
                    "template": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": true,
                        "required": ["spec"],
                        "properties": {
                            "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                            "spec": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": true,
                                "required": ["containers", "restartPolicy"],
                                "properties": {
                                    "restartPolicy": {
                                        "description": "A Job's pods must not restart for ever: Never or OnFailure.",
                                        "type": "string",
                                        "enum": ["Never", "OnFailure"]
                                    },
                                    "containers": {
                                        "type": "array",
                                        "minItems": 1,
                                        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

fn optional_job_template(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    job_template(generator)
}

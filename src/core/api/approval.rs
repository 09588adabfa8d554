//! The `ReleaseApproval` custom resource: one person's sign-off on one thing
//! a Release waits for. The API server, not the operator, vouches for it: the
//! ValidatingAdmissionPolicy shipped with the CRDs admits an approval only
//! when `approver` is the authenticated user and that user may `approve` the
//! Release, and refuses every edit.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Annotation on a Release naming who created it, as the API server
/// authenticated them (admission refuses any other value, and any change).
pub const CREATED_BY_ANNOTATION: &str = "signalman.dev/created-by";

/// A sign-off: `approver` lets `release` go past one gate, one step or the window.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "signalman.dev",
    version = "v1alpha1",
    kind = "ReleaseApproval",
    namespaced,
    shortname = "relapp",
    category = "signalman",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"Release","type":"string","jsonPath":".spec.release"}"#,
    printcolumn = r#"{"name":"Approver","type":"string","jsonPath":".spec.approver"}"#,
    printcolumn = r#"{"name":"Gate","type":"string","jsonPath":".spec.gate"}"#,
    printcolumn = r#"{"name":"Service","type":"string","jsonPath":".spec.step.service"}"#,
    printcolumn = r#"{"name":"Step","type":"integer","jsonPath":".spec.step.step"}"#,
    printcolumn = r#"{"name":"Window","type":"boolean","jsonPath":".spec.window"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.gate), has(self.step), has(self.window) && self.window].filter(x, x).size() == 1").message("spec: approve exactly one thing: a gate (spec.gate), a step (spec.step) or the window override (spec.window: true)"))]
pub struct ReleaseApprovalSpec {
    /// The Release, in this namespace, it approves.
    #[schemars(length(min = 1, max = 63))]
    pub release: String,
    /// Who approves: must be the user creating this object, as the API server
    /// authenticated them (`kubectl auth whoami`).
    #[schemars(length(min = 1, max = 253))]
    pub approver: String,
    /// An approval gate of the Release (`spec.gates[].name` with `approval: true`,
    /// or `approval` / `review` when its policy requires one before the start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub gate: Option<String>,
    /// A step of one service that waits for an approval at its weight, bake passed, before moving on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<StepRef>,
    /// The window override: lets a Release with `spec.override.justification` start
    /// outside its window or in a freeze.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<bool>,
    /// What the approver checked, or why they approve.
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new("self.trim() != ''").message("spec.comment must say what was checked or why it is approved"))]
    pub comment: String,
}

/// One step of one service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StepRef {
    /// The service's name in the Release's `spec.services`.
    #[schemars(length(min = 1, max = 63))]
    pub service: String,
    /// The step's number as `kubectl signalman get` shows it: 1 is the first step.
    #[schemars(range(min = 1, max = 20))]
    pub step: i32,
}

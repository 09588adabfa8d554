//! After the train: verification of the whole train, canary-versus-stable
//! comparison, the completion report, notifications and the rollback window.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Analysis, Deferral, Duration, Measurement, MetricTally, Phase, Risk, RollbackReason};

/// Defaults of what happens after the train.
pub mod default {
    use std::time::Duration;
    /// How long after `Succeeded` a Release can still be rolled back, when the policy says nothing.
    pub const ROLLBACK_WINDOW: Duration = Duration::from_secs(24 * 3600);
    /// Announcements kept in `status.announcements` (the oldest delivered ones go first).
    pub const ANNOUNCEMENTS_KEPT: usize = 20;
}

/// Watching the whole train once every service is promoted.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.analysis.skipAnalysis)").message("spec.verify.analysis: verification is its metrics; give analysis.metrics (or leave spec.verify out)"))]
#[x_kube(validation = Rule::new("has(self.analysis.metrics) && size(self.analysis.metrics) > 0").message("spec.verify.analysis.metrics: give at least one metric that watches the whole train, e.g. the checkout success rate"))]
#[x_kube(validation = Rule::new("!has(self.analysis.metrics) || !self.analysis.metrics.exists(m, has(m.compare))").message("spec.verify.analysis.metrics[].compare: after promotion there is no stable version left to compare with; use min or max"))]
pub struct Verify {
    /// How long the promoted train is watched before the release succeeds (Go duration, at least `1s`).
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s')").message("spec.verify.bake must be a duration of at least 1s, e.g. 10m"))]
    #[serde(deserialize_with = "super::duration")]
    pub bake: Duration,
    /// The train's own metrics (limits as for a step). Queries may use `{{namespace}}` and
    /// `{{release}}`; they measure the train, not one service, so no service placeholder is filled.
    pub analysis: Analysis,
}

/// Judge a metric by the canary against the stable version it replaces: the query runs twice,
/// once for each track (`{{track}}`), and the canary's value is held to the stable one's.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.maxIncrease) || has(self.maxRatio) || has(self.maxDecrease) || has(self.minRatio)").message("analysis.metrics[].compare: give maxIncrease, maxRatio (higher is worse) or maxDecrease, minRatio (lower is worse)"))]
#[x_kube(validation = Rule::new("!has(self.maxRatio) || self.maxRatio > 0.0").message("analysis.metrics[].compare.maxRatio must be greater than 0, e.g. 1.2 (the canary at most 20% above stable)"))]
#[x_kube(validation = Rule::new("!has(self.minRatio) || self.minRatio > 0.0").message("analysis.metrics[].compare.minRatio must be greater than 0, e.g. 0.9 (the canary at least 90% of stable)"))]
#[x_kube(validation = Rule::new("!has(self.maxIncrease) || self.maxIncrease >= 0.0").message("analysis.metrics[].compare.maxIncrease must not be negative, e.g. 0.005"))]
#[x_kube(validation = Rule::new("!has(self.maxDecrease) || self.maxDecrease >= 0.0").message("analysis.metrics[].compare.maxDecrease must not be negative, e.g. 0.01"))]
pub struct Compare {
    /// Passes while canary ≤ stable + maxIncrease (e.g. `0.005`: half a point more errors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_increase: Option<f64>,
    /// Passes while canary ≤ stable × maxRatio (greater than 0; e.g. `1.2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ratio: Option<f64>,
    /// For a metric where lower is worse: passes while canary ≥ stable − maxDecrease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_decrease: Option<f64>,
    /// For a metric where lower is worse: passes while canary ≥ stable × minRatio (greater than 0; e.g. `0.9`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ratio: Option<f64>,
}

/// The whole train being watched after promotion (`spec.verify`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VerificationStatus {
    /// When every service was promoted and verification began.
    pub started_at: Time,
    /// When it ends if nothing breaches.
    pub ends_at: Time,
    /// Per metric, as for a step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tally: Vec<MetricTally>,
    /// The most recent measurements (step `0`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<Measurement>,
}

/// How long a succeeded release can be rolled back, and whether its baselines are gone.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RollbackWindow {
    /// Until when `spec.rollback: true` (`kubectl signalman rollback`) is accepted.
    pub until: Time,
    /// When the window closed and the baselines (ControllerRevisions) were removed; from then on
    /// the release cannot be rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<Time>,
    /// Why the last `spec.rollback: true` was refused, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// The facts of a finished release, from which `kubectl signalman report` writes each
/// audience's text. Nothing in it is inferred: every field comes from the spec, the status
/// or the approvals.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `Succeeded`, `RolledBack` or `Failed`.
    pub outcome: Phase,
    /// One line: the outcome in words (also the `Report` Event's note).
    pub summary: String,
    /// `spec.owner`.
    pub owner: String,
    /// `spec.summary`, when written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The risk the release was run at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<Risk>,
    /// Why it had that risk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    pub finished_at: Time,
    /// Whole seconds from start to finish.
    pub duration_seconds: i64,
    /// Every service with what happened to it, in plan order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceReport>,
    /// Services not shipped, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deferred: Vec<Deferral>,
    /// Why and how the train was reversed, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackReport>,
    /// The holds, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<HoldReport>,
    /// Who approved what.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<ApprovalReport>,
    /// Verification's result, when `spec.verify` was set and reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationReport>,
    /// Until when the release can be rolled back (Succeeded only), and whether that has passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_window: Option<RollbackWindow>,
}

/// One service in the report.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceReport {
    pub name: String,
    /// The service's owner (its own, else the release's).
    pub owner: String,
    /// `Deployment`, `Job` or `Flag`.
    pub kind: String,
    /// Its final phase (`Promoted`, `Restored`, `Deferred`, ...).
    pub phase: super::ServicePhase,
    /// Per container: the image before the release (recorded with the baseline).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub from: BTreeMap<String, String>,
    /// Per container: the image the release set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub to: BTreeMap<String, String>,
    /// Deployed but not released to users (`change.dark`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dark: bool,
    /// A flag: its ConfigMap and the keys it set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<FlagReport>,
    /// A migration that cannot be reversed: the justification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub irreversible: Option<String>,
    /// A migration: its Jobs' results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_job: Option<super::JobRun>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_job: Option<super::JobRun>,
    /// When it started and reached its final phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// Each metric's last measurement (engineering's view).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<Measurement>,
}

/// A flag service's ConfigMap and keys.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FlagReport {
    pub config_map: String,
    pub keys: BTreeMap<String, String>,
}

/// Why and how the train was reversed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RollbackReport {
    pub reason: RollbackReason,
    pub message: String,
    /// The service whose metric breached, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The metric, its value and the bound it crossed, when a metric breached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The bound in words, e.g. `max 0.01` or `canary ≤ stable + 0.005 (stable 0.001)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_deviation_at: Option<Time>,
    /// Who asked, for a manual rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// Services restored, in the order they were restored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restored: Vec<String>,
}

/// One hold of the release.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HoldReport {
    pub at: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub message: String,
}

/// One approval that counted.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalReport {
    /// The ReleaseApproval's approver.
    pub approver: String,
    /// What it approved: `step 2 of payments-api`, `gate smoke`, `window override`.
    pub what: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Time>,
}

/// Verification's result.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VerificationReport {
    pub started_at: Time,
    /// When it ended (passed, or the breach).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Time>,
    pub passed: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<Measurement>,
}

/// Where the policy (or the operator's `--notifications`) sends transitions.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Notifications {
    /// Webhook receivers (at most 10).
    #[serde(default)]
    #[schemars(length(max = 10))]
    #[x_kube(validation = Rule::new("self.all(r, self.exists_one(s, s.name == r.name))").message("notifications.receivers: receiver names must be unique"))]
    pub receivers: Vec<Receiver>,
}

/// One webhook receiver.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Receiver {
    /// A name for Events, metrics and status, e.g. `release-channel`.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// The Secret, in the operator's namespace, that holds the webhook URL. The URL is never
    /// logged and never written to status or Events.
    pub url_from: SecretKey,
    /// `slack` (Slack-compatible incoming-webhook JSON: `{"text": ...}`) or `json` (the
    /// transition as a JSON object). Default `json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ReceiverFormat>,
    /// The transitions it wants; empty: all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on: Vec<Transition>,
}

impl Receiver {
    /// Whether it is told about `transition` (`on` empty: every transition).
    pub fn wants(&self, transition: Transition) -> bool {
        self.on.is_empty() || self.on.contains(&transition)
    }
}

/// A key of a Secret in the operator's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKey {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Default `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl SecretKey {
    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or("url")
    }
}

/// A receiver's message format.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReceiverFormat {
    #[serde(rename = "slack")]
    Slack,
    #[default]
    #[serde(rename = "json")]
    Json,
}

/// A transition a receiver can be told about.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub enum Transition {
    Started,
    AwaitingApproval,
    AwaitingWindow,
    AwaitingGates,
    Held,
    Breach,
    RolledBack,
    Succeeded,
    Failed,
}

/// One transition to tell the receivers about: the engine appends it (with the next
/// sequence number) in the decision that makes the transition; the operator delivers it and
/// records each receiver's highest delivered number in the annotation `signalman.dev/notified`,
/// so a restart never sends one twice.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Announcement {
    /// 1, 2, 3, ... per Release.
    pub seq: i64,
    pub transition: Transition,
    pub at: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub message: String,
}

/// Annotation on a Release: per receiver, the highest `status.announcements[].seq` delivered
/// (JSON object `{"receiver": seq}`).
pub const NOTIFIED_ANNOTATION: &str = "signalman.dev/notified";
/// Annotation the plugin sets with `spec.rollback`: who asked (the user the API server names).
pub const ROLLBACK_BY_ANNOTATION: &str = "signalman.dev/rollback-by";

//! The `Release` custom resource (`signalman.dev/v1alpha1`).
//!
//! The spec is the release manifest a person writes; the status is everything the
//! controller needs to resume after a crash and everything a person needs to
//! understand the release at a glance. Validation that needs nothing but the
//! object itself lives in the schema (CEL rules below) and is mirrored by
//! [`validate`] so the plugin can check a file offline with the same words.

mod after;
mod approval;
mod conditions;
mod go_no_go;
mod member;
mod policy;
mod validate;

pub use after::{
    Announcement, ApprovalReport, Compare, FlagReport, HoldReport, NOTIFIED_ANNOTATION,
    Notifications, ROLLBACK_BY_ANNOTATION, Receiver, ReceiverFormat, Report, RollbackReport,
    RollbackWindow, SecretKey, ServiceReport, Transition, VerificationReport, VerificationStatus,
    Verify, default as after_default,
};
pub use approval::{CREATED_BY_ANNOTATION, ReleaseApproval, ReleaseApprovalSpec, StepRef};
pub use policy::{
    AnalysisLimits, Approvals, Blackout, CrossTeamAction, DEFAULT_POLICY, Freeze, Limits,
    POLICY_LABEL, Profile, ReleasePolicy, ReleasePolicySpec, RiskProfiles, Weekday, Window,
};

pub use conditions::{ConditionType, Standing, set_condition, set_standing};
pub use member::{
    FlagChange, Irreversible, MemberKind, MigrationJob, ServiceHold, default as member_default,
};
pub(crate) use validate::check_steps;
pub use validate::{Problem, validate, validate_name};

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use kube::core::Duration;

/// Label on every pod of a canary Deployment; the traffic simulator and users'
/// queries tell canary from stable by it.
pub const TRACK_LABEL: &str = "signalman.dev/track";
/// Label on objects Signalman creates, naming the Release that owns them.
pub const RELEASE_LABEL: &str = "signalman.dev/release";
/// Label on objects Signalman creates, naming the service (entry of `spec.services`).
pub const SERVICE_LABEL: &str = "signalman.dev/service";
/// Label on a canary Service naming the stable Service it shadows.
pub const CANARY_OF_LABEL: &str = "signalman.dev/canary-of";
/// Field manager for every server-side apply Signalman makes.
pub const FIELD_MANAGER: &str = "signalman";
/// Finalizer the controller puts on a Release before its first change to the
/// cluster, so that deleting a Release in flight reverses the train first.
pub const FINALIZER: &str = "signalman.dev/release";

/// The canary Service `<service>-canary` of a Gateway API service must be a DNS label (63).
const CANARY_SERVICE_FITS: &str = "!has(self.traffic) || !has(self.traffic.gatewayAPI) || \
     (has(self.traffic.gatewayAPI.service) ? size(self.traffic.gatewayAPI.service) <= 56 : size(self.name) <= 56)";

/// A release train: Deployments that change together, in dependency order,
/// each shifted to its new version in measured steps and reversed together on a breach.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "signalman.dev",
    version = "v1alpha1",
    kind = "Release",
    namespaced,
    status = "ReleaseStatus",
    shortname = "rel",
    category = "signalman",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Wave","type":"string","jsonPath":".status.currentWave"}"#,
    printcolumn = r#"{"name":"Progress","type":"string","jsonPath":".status.progress"}"#,
    printcolumn = r#"{"name":"Owner","type":"string","jsonPath":".spec.owner","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("size(self.metadata.name) <= 63").message("metadata.name: at most 63 characters, because the name is the value of the label signalman.dev/release on every object the release creates; use a shorter name")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(EVERY_SERVICE_MEASURED).message(NOT_MEASURED))]
#[x_kube(validation = Rule::new(RISK_NOT_BELOW_LOW).message(Message::Expression(RISK_BELOW_LOW_MESSAGE.into())))]
#[x_kube(validation = Rule::new(RISK_NOT_BELOW_MEDIUM).message(Message::Expression(RISK_BELOW_MEDIUM_MESSAGE.into())))]
#[x_kube(validation = Rule::new(HOTFIX_MEASURED).message("spec.type: a hotfix is still measured: give every service at least one metric (no analysis.skipAnalysis)"))]
pub struct ReleaseSpec {
    /// The single person or team accountable for this release.
    #[x_kube(validation = Rule::new("self.trim() != ''").message("spec.owner must name the accountable release owner"))]
    pub owner: String,

    /// One line on what this release ships and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,

    /// Where analysis queries go. Defaults to the operator's `--prometheus-url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusSpec>,

    /// Steps and analysis inherited by every service that does not set its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<Defaults>,

    /// The services that change together. Order does not matter: `dependsOn` does.
    #[schemars(length(min = 1, max = 100))]
    #[x_kube(validation = Rule::new("self.all(s, self.exists_one(t, t.name == s.name))").message("spec.services: service names must be unique"))]
    #[x_kube(validation = Rule::new("self.all(s, !has(s.deployment) || self.exists_one(t, has(t.deployment) && t.deployment == s.deployment))").message("spec.services: each Deployment can be in one service only; merge their changes into one service"))]
    pub services: Vec<ServiceSpec>,

    /// Pause the release: nothing advances and no step bakes while true; canary weights stay where they are.
    /// The bake of the current step starts over on resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,

    /// Abort the release: every canary goes to 0 % and promoted services are restored in reverse order.
    /// Cannot be undone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<bool>,

    /// Lift the hold whose id (`status.hold.id`) equals this value. A hold is placed when analysis
    /// cannot decide (errors or no data beyond the limits) or the cluster drifted; a new hold gets a new id,
    /// so a stale value never lifts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_hold: Option<String>,

    /// Roll back automatically when a hold lasts longer than this (Go duration, e.g. `30m`).
    /// Unset: a hold waits for a person.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some_duration"
    )]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s')").message("spec.holdTimeout must be a duration of at least 1s, e.g. 30m"))]
    pub hold_timeout: Option<Duration>,

    /// The release's risk: `auto` (default) is the highest of its changes' classes (copy, config:
    /// low; feature or no class: medium; migration, auth, payment: high). An explicit value may raise
    /// it, never lower it. The risk picks the policy's profile: default steps, analysis limits and approvals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<Risk>,

    /// `normal` (default) or `hotfix`: the policy's abbreviated hotfix profile, still measured,
    /// still with a rollback baseline, and one approval (the gate `review`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub release_type: Option<ReleaseType>,

    /// The ReleasePolicy to follow, instead of `default`. In a namespace labelled `signalman.dev/policy`
    /// it can only be that policy (the admission policy `signalman-release-policy` refuses another).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub policy: Option<String>,

    /// Go/no-go gates, checked before the first wave and again before each later wave. While one
    /// does not hold, the release is `AwaitingGates` and nothing new starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[x_kube(validation = Rule::new("self.all(g, self.exists_one(h, h.name == g.name))").message("spec.gates: gate names must be unique"))]
    pub gates: Vec<Gate>,

    /// How long to wait for the gates before giving up (Go duration; default: the policy's
    /// `gateTimeout`, else for ever): before the first wave the release ends `Failed` with
    /// nothing changed, before a later wave it rolls back.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some_duration"
    )]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s')").message("spec.gateTimeout must be a duration of at least 1s, e.g. 4h"))]
    pub gate_timeout: Option<Duration>,

    /// This release's own window, replacing the policy's (the policy's freeze still applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,

    /// Start outside the window or in a freeze. Takes effect only with a `ReleaseApproval`
    /// of the window override (`kubectl signalman approve NAME --window`).
    #[serde(rename = "override", default, skip_serializing_if = "Option::is_none")]
    pub window_override: Option<WindowOverride>,

    /// After every service is promoted, watch the whole train for `bake` with these metrics
    /// before the release succeeds (phase `Verifying`); a breach reverses the entire train.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Verify>,

    /// Reverse a `Succeeded` release within its rollback window (the policy's
    /// `rollbackWindow`, default 24h): flags restored, services restored to their baselines in
    /// rollback order, migration rollback Jobs run; it ends `RolledBack` (reason `Manual`, who
    /// asked from the annotation `signalman.dev/rollback-by`). Refused after the window, or while
    /// a Deployment or flag is changed since by something else (the reason in
    /// `status.rollbackWindow.refused` and a `Warning` condition; within the window it is honoured
    /// once that is put back). On a release that has not started it is refused like an invalid
    /// field and nothing starts; on one in flight it is a `Warning` and waits until the release
    /// has Succeeded (to stop one in flight, set `abort`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<bool>,
}

/// Why a release must go outside its window.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WindowOverride {
    /// Why it cannot wait for the window, e.g. `checkout outage INC-4711`.
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new("self.trim() != ''").message("spec.override.justification must say why the release cannot wait for its window"))]
    pub justification: String,
}

/// A release's risk class.
#[derive(
    JsonSchema,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
)]
pub enum Risk {
    /// The highest class of any of its changes.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "low")]
    Low,
    #[serde(rename = "medium")]
    Medium,
    #[serde(rename = "high")]
    High,
}

/// A normal release or a hotfix.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ReleaseType {
    #[default]
    #[serde(rename = "normal")]
    Normal,
    #[serde(rename = "hotfix")]
    Hotfix,
}

/// A go/no-go gate: a PromQL criterion or an approval.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.query) != (has(self.approval) && self.approval)").message("spec.gates[]: a gate is either a query (with min and/or max) or approval: true"))]
#[x_kube(validation = Rule::new("!has(self.query) || has(self.min) || has(self.max)").message("spec.gates[]: a query gate needs min, max or both"))]
#[x_kube(validation = Rule::new("!has(self.min) || !has(self.max) || self.min <= self.max").message("spec.gates[]: min must not exceed max"))]
pub struct Gate {
    /// Short name shown in status and used by `kubectl signalman approve --gate`, e.g. `smoke-tests`.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// PromQL returning one number, e.g. `sum(ALERTS{severity="critical",alertstate="firing"}) or vector(0)`.
    /// `{{namespace}}` and `{{release}}` are replaced as in metrics. It holds when its value is in `[min, max]`;
    /// no data or an error does not hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    #[x_kube(validation = Rule::new("self.trim() != ''").message("spec.gates[].query must be a PromQL query"))]
    pub query: Option<String>,
    /// Lowest value that holds (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Highest value that holds (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// How often a query gate is checked while the release waits on it (Go duration, default `30s`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some_duration"
    )]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s')").message("spec.gates[].interval must be a duration of at least 1s, e.g. 30s"))]
    pub interval: Option<Duration>,
    /// An approval gate: holds once someone allowed to approve the release approves it
    /// (`kubectl signalman approve NAME --gate GATE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<bool>,
}

/// A service is exactly one kind.
const ONE_KIND: &str =
    "(has(self.deployment) ? 1 : 0) + (has(self.job) ? 1 : 0) + (has(self.flag) ? 1 : 0) == 1";

/// `low` is below any change that is not copy or config (a job or a flag counts as medium).
const RISK_NOT_BELOW_LOW: &str = "!has(self.risk) || self.risk != 'low' || \
    self.services.all(s, has(s.change) && has(s.change.class) && s.change.class in ['copy', 'config'])";
// The messages pick with the three-argument `map` (filter and project at
// once): a `filter` would copy whole services, which the API server's cost
// estimate refuses (over 100x the budget).
const RISK_BELOW_LOW_MESSAGE: &str = "'spec.risk: low is below the risk of service ' + \
    self.services.map(s, !has(s.change) || !has(s.change.class) || !(s.change.class in ['copy', 'config']), s.name)[0] + \
    ' (' + self.services.map(s, !has(s.change) || !has(s.change.class) || !(s.change.class in ['copy', 'config']), \
    has(s.job) ? 'a migration job, which counts as medium' : has(s.flag) ? 'a flag change, which counts as medium' : \
    has(s.change.class) ? (s.change.class == 'auth' ? 'an ' : 'a ') + s.change.class + ' change' : \
    'no change.class, which counts as feature')[0] + \
    '); raise spec.risk or set it to auto'";
/// `medium` is below a migration, auth or payment change, and below an irreversible migration job.
const RISK_NOT_BELOW_MEDIUM: &str = "!has(self.risk) || self.risk != 'medium' || \
    self.services.all(s, (!has(s.change) || !has(s.change.class) || !(s.change.class in ['migration', 'auth', 'payment'])) \
    && (!has(s.job) || !has(s.job.irreversible)))";
const RISK_BELOW_MEDIUM_MESSAGE: &str = "'spec.risk: medium is below the risk of service ' + \
    self.services.map(s, has(s.change) && has(s.change.class) && s.change.class in ['migration', 'auth', 'payment'] \
    || has(s.job) && has(s.job.irreversible), s.name)[0] + \
    ' (' + self.services.map(s, has(s.change) && has(s.change.class) && s.change.class in ['migration', 'auth', 'payment'] \
    || has(s.job) && has(s.job.irreversible), has(s.job) ? 'an irreversible migration' : \
    (s.change.class == 'auth' ? 'an ' : 'a ') + s.change.class + ' change')[0] + \
    ' is high risk); raise spec.risk to high or set it to auto'";
/// A hotfix skips steps, never measurement.
const HOTFIX_MEASURED: &str = "!has(self.type) || self.type != 'hotfix' || \
    (!has(self.defaults) || !has(self.defaults.analysis) || !has(self.defaults.analysis.skipAnalysis)) && \
    self.services.all(s, !has(s.analysis) || !has(s.analysis.skipAnalysis))";

/// The shape of a usable Prometheus address: `http` or `https`, a host (a
/// DNS name, an IPv4 address or a bracketed IPv6 one), an optional port up
/// to 65535 and an optional path; no spaces, no control characters, no query
/// or fragment (the client appends `/api/v1/...` to it). One pattern, read by
/// the CRD's CEL rule (as a raw string, so it holds no `'`) and by `validate`.
macro_rules! prometheus_address {
    () => {
        r"^https?://(?:(?:[A-Za-z0-9._~!$&()*+,;=:-]|%[0-9A-Fa-f]{2})*@)?(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?(?:/(?:[A-Za-z0-9._~!$&()*+,;=:@/-]|%[0-9A-Fa-f]{2})*)?$"
    };
}
pub(crate) const PROMETHEUS_ADDRESS: &str = prometheus_address!();
/// `isURL` is the API server's own notion (Go's request-URI parser); the
/// pattern narrows it to what the operator's client can use.
const PROMETHEUS_ADDRESS_RULE: &str = concat!(
    "isURL(self) && self.matches(r'",
    prometheus_address!(),
    "')"
);

/// The Prometheus server that analysis queries go to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusSpec {
    /// Base URL of the Prometheus HTTP API, e.g. `http://prometheus.monitoring:9090`:
    /// `http` or `https`, a host, an optional port and path; no spaces, query or fragment.
    /// It must be one the operator allows: its `--prometheus-url` or one of its
    /// `--prometheus-allowed-address` (chart values `prometheusUrl`, `prometheusAllowedAddresses`),
    /// compared as one URL; any other is refused (`Stalled`, `PrometheusAddressNotAllowed`)
    /// before anything moves, and nothing is sent to it.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new(PROMETHEUS_ADDRESS_RULE).message("spec.prometheus.address must be an http:// or https:// URL with a host and an optional port and path, without spaces, e.g. http://prometheus.monitoring:9090"))]
    pub address: String,
}

/// Defaults inherited by every service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Defaults {
    /// The traffic steps each service walks through unless it sets its own `steps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 20))]
    #[x_kube(validation = Rule::new(STEPS_INCREASING).message("spec.defaults.steps: weights must strictly increase"))]
    #[x_kube(validation = Rule::new(STEPS_END_AT_100).message("spec.defaults.steps: the last step must have weight 100"))]
    pub steps: Option<Vec<Step>>,

    /// How each step is measured unless a service sets its own `analysis`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Analysis>,
}

/// A service is judged by its own `analysis`, which replaces the defaults'
/// whole, else by `spec.defaults.analysis`; either must measure something or
/// say why not, because a step with nothing to measure passes on time alone.
const EVERY_SERVICE_MEASURED: &str = "self.services.all(s, has(s.job) || (has(s.analysis) \
    ? ((has(s.analysis.metrics) && size(s.analysis.metrics) > 0) || has(s.analysis.skipAnalysis)) \
    : (has(self.defaults) && has(self.defaults.analysis) \
       && ((has(self.defaults.analysis.metrics) && size(self.defaults.analysis.metrics) > 0) \
           || has(self.defaults.analysis.skipAnalysis)))))";
const NOT_MEASURED: &str = "spec.services: every deployment and flag service needs at least one metric (in its analysis.metrics, \
    or in spec.defaults.analysis.metrics when it has no analysis of its own), or an explicit opt-out: \
    analysis.skipAnalysis.reason";

/// A Go duration that is not negative. kube's parser panics on a negative
/// total (`5s-3s`, `-1s`), and the API server refuses every signed duration
/// through the CEL rules anyway, so a sign is refused before it can parse.
fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_str(DurationText)
}

fn some_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    d.deserialize_option(MaybeDuration)
}

/// Parses inside the deserializer, so an error keeps the value's position.
struct DurationText;

impl serde::de::Visitor<'_> for DurationText {
    type Value = Duration;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a Go duration such as 30s, 2m or 1h30m")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Duration, E> {
        if text.contains(['-', '+']) {
            return Err(E::custom(format!(
                "{text:?} is not a duration: write a positive Go duration such as 30s, 2m or 1h30m"
            )));
        }
        text.parse().map_err(E::custom)
    }
}

struct MaybeDuration;

impl<'de> serde::de::Visitor<'de> for MaybeDuration {
    type Value = Option<Duration>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        DurationText.expecting(f)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        duration(d).map(Some)
    }
}

/// The names a query may use as `{{name}}` (spaces or tabs around the name
/// allowed). Any other `{{` is refused by `validate` (so by `plan` and by the
/// controller before anything changes): a typo would select nothing and, with
/// `noData: pass`, promote on no evidence. The API server cannot afford that
/// check as a CEL rule on every query of every service within its cost budget.
pub const PLACEHOLDERS: [&str; 6] = [
    "namespace",
    "service",
    "release",
    "canary_hash",
    "stable_hash",
    "track",
];

/// The placeholders a verify query (`spec.verify.analysis`) may use: it
/// measures the whole promoted train, so nothing names one service or track.
pub const VERIFY_PLACEHOLDERS: [&str; 2] = ["namespace", "release"];

const STEPS_INCREASING: &str =
    "self.map(s, s.weight).isSorted() && self.all(a, self.exists_one(b, b.weight == a.weight))";
const STEPS_END_AT_100: &str = "self[size(self) - 1].weight == 100";

/// One traffic step: the canary gets `weight` percent of the traffic, held for `bake`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Percent of traffic sent to the new version, 1 to 100.
    #[schemars(range(min = 1, max = 100))]
    pub weight: i32,
    /// How long the step is held and measured before it may pass (Go duration, at least `1s`).
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s')").message("bake must be a duration of at least 1s, e.g. 2m"))]
    #[serde(deserialize_with = "duration")]
    pub bake: Duration,
    /// Wait for an approval after this step: once its bake passes the service stays at this
    /// weight until someone approves step N (`kubectl signalman approve NAME --step SERVICE/N`,
    /// N counted from 1), then moves on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<bool>,
}

/// How a step is measured and judged.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.skipAnalysis) || !has(self.metrics) || size(self.metrics) == 0").message("analysis: set metrics or skipAnalysis, not both"))]
pub struct Analysis {
    /// Time between two measurements of each metric during a bake (Go duration, at least `1s`; default `30s`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some_duration"
    )]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s')").message("analysis.interval must be a duration of at least 1s, e.g. 30s"))]
    pub interval: Option<Duration>,
    /// Failed measurements tolerated per step; one more is a breach (default 0, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub failure_limit: Option<i32>,
    /// Inconclusive measurements tolerated per step; one more holds the release (default 2, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub inconclusive_limit: Option<i32>,
    /// Measurement errors (Prometheus unreachable, bad query) tolerated per step; one more holds the release (default 2, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub error_limit: Option<i32>,
    /// Passing measurements each metric needs before a step may pass.
    /// Default: one per full `interval` in the step's `bake`, at least 1. At most 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub min_passes: Option<i32>,
    /// What an empty query result counts as (default `inconclusive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_data: Option<NoDataPolicy>,
    /// The criteria. Each query must return one number; it passes when inside `[min, max]` and,
    /// for a `compare` metric, within its bounds of the stable pods' value.
    #[serde(default)]
    #[schemars(length(max = 20))]
    #[x_kube(validation = Rule::new("self.all(m, self.exists_one(n, n.name == m.name))").message("analysis.metrics: metric names must be unique"))]
    pub metrics: Vec<Metric>,
    /// Release without measuring: each step passes on its bake time alone. Only
    /// allowed with no `metrics`, and only with a reason, which `kubectl signalman
    /// plan` and `get` show. Without metrics and without this, the Release is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_analysis: Option<SkipAnalysis>,
}

/// An explicit decision to release without metrics.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SkipAnalysis {
    /// Why this service is released on bake time alone, e.g. `batch worker, no traffic to measure`.
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new("self.trim() != ''").message("analysis.skipAnalysis.reason must say why the service is not measured"))]
    pub reason: String,
}

/// What an empty query result counts as.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NoDataPolicy {
    /// Counts toward `inconclusiveLimit`; beyond it the release holds.
    #[default]
    #[serde(rename = "inconclusive")]
    Inconclusive,
    /// Counts as a failed measurement.
    #[serde(rename = "fail")]
    Fail,
    /// Counts as a passing measurement.
    #[serde(rename = "pass")]
    Pass,
}

/// One criterion: a PromQL query and the range its value must stay in.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.min) || has(self.max) || has(self.compare)").message("analysis.metrics: each metric needs min, max or compare"))]
#[x_kube(validation = Rule::new("!has(self.compare) || !has(self.max) || !has(self.compare.maxIncrease) && !has(self.compare.maxRatio)").message("analysis.metrics[]: max and compare.maxIncrease/maxRatio both bound the upper side; keep max (a fixed bound) or the comparison, not both"))]
#[x_kube(validation = Rule::new("!has(self.compare) || !has(self.min) || !has(self.compare.maxDecrease) && !has(self.compare.minRatio)").message("analysis.metrics[]: min and compare.maxDecrease/minRatio both bound the lower side; keep min (a fixed bound) or the comparison, not both"))]
#[x_kube(validation = Rule::new("!has(self.min) || !has(self.max) || self.min <= self.max").message("analysis.metrics: min must not exceed max"))]
pub struct Metric {
    /// Short name shown in status, events and the plugin, e.g. `error-rate`.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// PromQL returning one number. `{{namespace}}`, `{{service}}`, `{{release}}`, `{{canary_hash}}`
    /// and `{{stable_hash}}` are replaced before it runs, escaped for the quoted string they must
    /// stand in (e.g. `service="{{service}}"`, never bare as in `{{service}}_errors`); `{{service}}`
    /// is the Kubernetes Service's name (`traffic.gatewayAPI.service` when set, else the service's `name`).
    /// `{{track}}` is a whole label matcher, for inside a selector: `track="canary"` for the canary,
    /// `track!="canary"` for the stable pods (the label `track` relabelled from the pod label
    /// `signalman.dev/track`); a `compare` metric must use it, any other metric gets the canary's.
    /// With them filled in it must parse as PromQL and give a number, not a range vector: `kubectl
    /// signalman plan` and the controller refuse it before anything moves otherwise.
    // Bounded so the API server can afford the CEL rule on every query of every service.
    #[schemars(length(min = 1, max = 4096))]
    #[x_kube(validation = Rule::new("self.trim() != ''").message("analysis.metrics[].query must be a PromQL query"))]
    pub query: String,
    /// Lowest passing value (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Highest passing value (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Judge the canary against the stable version instead of (or besides, on the other side)
    /// a fixed bound: the query runs once per track, `{{track}}` filled in with the canary's
    /// and then the stable pods' selector, and both values are kept in the measurement. Not
    /// measured where no stable version runs beside the new one (a step of weight 100, a flag's
    /// bake): give the service a metric with `min` or `max` too to measure those.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<Compare>,
}

/// One service of the train: a Deployment and the change it gets, a migration Job, or a flag.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.dependsOn) || !(self.name in self.dependsOn)").message("spec.services[].dependsOn: a service cannot depend on itself"))]
#[x_kube(validation = Rule::new(CANARY_SERVICE_FITS).message("spec.services[]: with traffic.gatewayAPI the stable Service (traffic.gatewayAPI.service, else name) has at most 56 characters, so that its canary Service <service>-canary is a valid Service name"))]
#[x_kube(validation = Rule::new(ONE_KIND).message("spec.services[]: a service is exactly one of deployment (with change), job or flag; set one of them"))]
#[x_kube(validation = Rule::new("has(self.deployment) == has(self.change)").message("spec.services[]: change goes with deployment, and a deployment needs a change (images or env); a job or flag service has no change"))]
#[x_kube(validation = Rule::new("has(self.deployment) || !has(self.traffic) && !has(self.steps)").message("spec.services[]: traffic and steps are for a deployment; a job runs once and a flag is set at once (its bake is flag.bake)"))]
#[x_kube(validation = Rule::new("!has(self.job) || !has(self.analysis)").message("spec.services[]: a job is judged by its exit, not by analysis; measure the services that depend on it instead"))]
pub struct ServiceSpec {
    /// Name of the service in this Release. Also the Kubernetes Service that `{{service}}` names in
    /// queries, unless `traffic.gatewayAPI.service` names another one.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Team or person who owns this service's change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The Deployment, in the Release's namespace, that runs this service. At most 246
    /// characters, so that its canary Deployment `<deployment>-canary` is a valid name.
    /// A service is exactly one of `deployment` (with `change`), `job` or `flag`.
    // Empty when the service is a job or a flag: see `ServiceSpec::kind`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 246))]
    pub deployment: String,
    /// What changes in the Deployment's pod template; required with `deployment`, absent otherwise.
    #[serde(default, skip_serializing_if = "Change::is_empty")]
    pub change: Change,
    /// A migration run as a Job: `forward` in its wave, `rollback` on a rollback, after every
    /// service that depends on it has been restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<MigrationJob>,
    /// A feature flag: keys set in a ConfigMap once the services it depends on are promoted,
    /// measured for `flag.bake`, and put back first on a rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<FlagChange>,
    /// Not ready to ship: this service and every service that depends on it are `Deferred`;
    /// the rest of the train ships. Read when the service's turn comes, so it can be set mid-train.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<ServiceHold>,
    /// Go/no-go gates of this service alone, checked when its turn comes: while one does not hold
    /// it waits and the rest of the train moves on; if one still does not hold when nothing else
    /// can move, the service and its dependents are `Deferred`. Names are unique across the
    /// release's and every service's gates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5))]
    pub gates: Vec<Gate>,
    /// Services that must be promoted before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub depends_on: Vec<String>,
    /// How traffic reaches the new version. Absent: replica ratio (a canary Deployment beside the stable one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Traffic>,
    /// This service's own steps, replacing `spec.defaults.steps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 20))]
    #[x_kube(validation = Rule::new(STEPS_INCREASING).message("spec.services[].steps: weights must strictly increase"))]
    #[x_kube(validation = Rule::new(STEPS_END_AT_100).message("spec.services[].steps: the last step must have weight 100"))]
    pub steps: Option<Vec<Step>>,
    /// This service's own analysis, replacing `spec.defaults.analysis`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Analysis>,
}

/// The change to a Deployment's pod template.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.images) && size(self.images) > 0) || (has(self.env) && size(self.env) > 0)").message("spec.services[].change must set images or env"))]
pub struct Change {
    /// How risky the change is; drives the release's risk class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<ChangeClass>,
    /// Container name to new image (not empty, no surrounding white space: the API server
    /// refuses the pods of such an image).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    // Unicode white space (what Kubernetes trims from a pod's image): ASCII
    // \t to \r, U+0085 and the separators \p{Z}, which include the space.
    #[schemars(extend("additionalProperties" = {"type": "string", "pattern": r"^[^\t-\r\x{85}\p{Z}]([\s\S]*[^\t-\r\x{85}\p{Z}])?$"}))]
    pub images: BTreeMap<String, String>,
    /// Container name to environment variables to set (name to literal value).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, BTreeMap<String, String>>,
    /// The new code ships behind a flag this release does not switch: deployed, not released.
    /// Reported as such.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dark: Option<bool>,
}

impl Change {
    /// Nothing set: the service is a job or a flag.
    pub fn is_empty(&self) -> bool {
        *self == Change::default()
    }
}

/// The kind of change, from least to most risky.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord,
)]
pub enum ChangeClass {
    #[serde(rename = "copy")]
    Copy,
    #[serde(rename = "config")]
    Config,
    #[serde(rename = "feature")]
    Feature,
    #[serde(rename = "migration")]
    Migration,
    #[serde(rename = "auth")]
    Auth,
    #[serde(rename = "payment")]
    Payment,
}

/// How traffic is shifted to the new version.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Traffic {
    /// Shift traffic with weighted backendRefs on a Gateway API HTTPRoute.
    #[serde(
        rename = "gatewayAPI",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub gateway_api: Option<GatewayApiTraffic>,
}

/// Gateway API traffic: the route already sends traffic to the stable Service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayApiTraffic {
    /// The HTTPRoute, in the Release's namespace, whose backendRef to the stable Service gets a weighted canary beside it.
    #[schemars(length(min = 1, max = 253))]
    pub http_route: String,
    /// The stable Service the route points at. Default: the service's `name`. When set, it is also
    /// what `{{service}}` stands for in analysis queries, since metrics are labelled by the Kubernetes Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub service: Option<String>,
}

// ---------------------------------------------------------------- status

/// Where a release stands.
// The API server fills this default into every Release it stores without a
// status, so a Release the operator has not looked at yet reads as behind its
// generation (observed 0 < 1): kstatus clients (Flux, Helm 4's --wait) see
// InProgress instead of Current, also when no operator runs at all.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("default" = {"observedGeneration": 0}))]
pub struct ReleaseStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The release's phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Why the release is in its phase, in one sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The wave now moving, as `N/M` (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_wave: Option<String>,
    /// Promoted services out of all, as `N/M promoted` (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// The computed plan: waves and rollback order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// Fingerprint of the spec the release started with; a different spec mid-flight holds the release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_hash: Option<String>,
    /// When the first change was made to the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the release reached a final phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// The hold in force, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
    /// The policy in force: which ReleasePolicy, which profile, and what it set. Fixed when
    /// the release starts, so editing the policy never changes a train in flight (its window
    /// and freeze excepted: they apply to every new wave).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<AppliedPolicy>,
    /// Every go/no-go gate's state at its last check, for the wave about to start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateStatus>,
    /// When the release began waiting for the gates of the wave about to start; `gateTimeout` counts from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting_since: Option<Time>,
    /// The release window, while it matters: whether it is open, the next opening, what an override needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowStatus>,
    /// Holds placed so far; the next hold's id is `hold-<holds + 1>`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub holds: i32,
    /// Why a rollback began (the breach or the abort), once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackCause>,
    /// Services this release does not ship, and why: held (`services[].hold`), a service gate
    /// that did not hold, or a dependency that was deferred. A later Release carries them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deferred: Vec<Deferral>,
    /// Dependencies between services of different owners, and unrelated changes combined in one
    /// release, when there are more than the policy allows: with the split that would avoid them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_team: Option<CrossTeam>,
    /// The whole train being watched after promotion (`spec.verify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationStatus>,
    /// After `Succeeded`: until when the release can be rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_window: Option<RollbackWindow>,
    /// The facts of the finished release (`kubectl signalman report` renders them per audience).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<Report>,
    /// Transitions to tell the notification receivers about, newest last (bounded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub announcements: Vec<Announcement>,
    /// One entry per service, in spec order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceStatus>,
    /// kstatus conditions: `Ready`, `Reconciling`, `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// What happened, oldest first (bounded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<TimelineEntry>,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// The phase of a release.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Phase {
    /// Accepted, nothing changed yet (or refused: see the `Stalled` condition).
    #[default]
    Pending,
    /// Waiting for go/no-go gates (see `status.gates`): before the first wave nothing has
    /// changed; before a later wave, the earlier waves stay promoted.
    AwaitingGates,
    /// Waiting for the release window to open (see `status.window`), or for an approved override.
    AwaitingWindow,
    /// Canaries are moving through their steps.
    Progressing,
    /// Every service is promoted and the whole train is watched for `spec.verify.bake`
    /// (see `status.verification`); a breach reverses the entire train.
    Verifying,
    /// Paused by a person (`spec.paused`): canary weights stay where they are.
    Paused,
    /// Held by the controller (see `status.hold`): it could not decide, so every canary
    /// in a step takes no traffic until a person resumes (`spec.resumeHold`) or aborts.
    Held,
    /// A breach or an abort: canaries are withdrawn and promoted services restored in reverse order.
    RollingBack,
    /// Every service promoted.
    Succeeded,
    /// Every change reversed.
    RolledBack,
    /// Could not finish and could not be reversed automatically; needs a person.
    Failed,
}

impl Phase {
    /// A final phase: nothing more will happen.
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::RolledBack | Phase::Failed)
    }
    /// The release has changed, or may change, the cluster and has not finished.
    pub fn is_in_flight(self) -> bool {
        matches!(
            self,
            Phase::AwaitingGates
                | Phase::AwaitingWindow
                | Phase::Progressing
                | Phase::Verifying
                | Phase::Paused
                | Phase::Held
                | Phase::RollingBack
        )
    }
}

/// `ALL` and `as_str()` for a unit enum whose API name is its variant name.
/// Listing a variant twice or leaving one out does not compile, so metric
/// labels and exhaustive tables built on `ALL` cannot go stale.
macro_rules! named {
    ($ty:ident { $($v:ident),+ $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$v),+];
            /// The name in the API, in Events and in metric labels.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($ty::$v => stringify!($v)),+
                }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named!(Phase {
    Pending,
    AwaitingGates,
    AwaitingWindow,
    Progressing,
    Verifying,
    Paused,
    Held,
    RollingBack,
    Succeeded,
    RolledBack,
    Failed,
});
named!(Outcome {
    Pass,
    Fail,
    Inconclusive,
    Error
});
named!(HoldReason {
    ErrorLimit,
    InconclusiveLimit,
    Drift,
    SpecChanged,
    WriteRefused,
});
named!(StallReason {
    InvalidSpec,
    InvalidPlan,
    DeploymentNotFound,
    ContainerNotFound,
    RouteNotFound,
    DeploymentClaimed,
    DeploymentPaused,
    DeploymentRolloutFailed,
    PolicyNotFound,
    InvalidPolicy,
    ConfigMapNotFound,
    ConfigMapClaimed,
    CrossTeamLimit,
    PrometheusAddressNotAllowed,
    QueryOutsideNamespace,
});
named!(JobResult {
    Succeeded,
    Failed,
    TimedOut
});
named!(RollbackReason {
    Breach,
    Abort,
    HoldTimeout,
    GateTimeout,
    Deleted,
    Manual
});

/// Why the controller holds a release.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HoldReason {
    /// Measurement errors (Prometheus unreachable, a bad query) beyond `errorLimit`.
    ErrorLimit,
    /// Inconclusive measurements (no data) beyond `inconclusiveLimit`.
    InconclusiveLimit,
    /// Someone else changed or removed an object of the release while it was in flight.
    Drift,
    /// What is being released changed while the release was in flight.
    SpecChanged,
    /// The API server refused a write of the release as invalid (e.g. an
    /// admission policy, or a field it will not accept).
    WriteRefused,
}

/// Why a Release was refused before it changed anything: the reason of its
/// `Stalled` condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StallReason {
    /// What the CRD schema should have refused.
    InvalidSpec,
    /// `dependsOn` names an unknown service, or services depend on each other in a loop.
    InvalidPlan,
    DeploymentNotFound,
    ContainerNotFound,
    RouteNotFound,
    /// Another unfinished Release holds the Deployment.
    DeploymentClaimed,
    /// A service's Deployment is paused (`spec.paused`): it waits for a person to resume it.
    DeploymentPaused,
    /// A service's Deployment passed its progress deadline before its baseline could be taken.
    DeploymentRolloutFailed,
    /// The ReleasePolicy the release or its namespace names does not exist.
    PolicyNotFound,
    /// The ReleasePolicy that applies cannot be used (e.g. an unknown time zone).
    InvalidPolicy,
    /// A flag service's ConfigMap does not exist.
    ConfigMapNotFound,
    /// Another unfinished Release sets keys of the same flag ConfigMap.
    ConfigMapClaimed,
    /// More `dependsOn` edges between owners than the policy allows, with `limits.crossTeam: refuse`.
    CrossTeamLimit,
    /// `spec.prometheus.address` is not on the operator's allow-list (`--prometheus-url`,
    /// `--prometheus-allowed-address`).
    PrometheusAddressNotAllowed,
    /// With `--enforce-namespace`, a query reads (or may read) another namespace's series.
    QueryOutsideNamespace,
}

/// Why a rollback began.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RollbackReason {
    /// A metric failed more often than `failureLimit` allows.
    Breach,
    /// `spec.abort` was set.
    Abort,
    /// A hold lasted longer than `spec.holdTimeout`.
    HoldTimeout,
    /// The gates before a later wave did not hold within `gateTimeout`.
    GateTimeout,
    /// The Release was deleted while in flight.
    Deleted,
    /// A person asked for a succeeded release to be reversed (`spec.rollback`) within its rollback window.
    Manual,
}

/// The computed plan.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Topological levels of the dependency graph; the services of one wave move in parallel.
    pub waves: Vec<Wave>,
    /// The order services are restored in on a rollback: dependents before their dependencies.
    pub rollback_order: Vec<String>,
    /// The release's risk class (never `auto`: the class `auto` resolved to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<Risk>,
    /// Why it has that risk, e.g. `high: payments-api is a payment change`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_reason: Option<String>,
}

/// The policy a release follows, as resolved when it started.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AppliedPolicy {
    /// The ReleasePolicy's name; absent when none applies (the built-in behaviour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The profile followed: `low`, `medium`, `high` or `hotfix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// What the profile set: default steps, analysis limits, approvals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<Profile>,
    /// The gate timeout in force (the Release's, else the policy's).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some_duration"
    )]
    pub gate_timeout: Option<Duration>,
    /// The policy's `rollbackWindow`, when it sets one (default 24h).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some_duration"
    )]
    pub rollback_window: Option<Duration>,
}

impl AppliedPolicy {
    /// The approvals its profile requires, if it sets any.
    pub fn approvals(&self) -> Option<&Approvals> {
        self.defaults.as_ref()?.approvals.as_ref()
    }
}

/// One go/no-go gate at its last check.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GateStatus {
    /// The gate's name (`spec.gates[].name`, or a built-in one: `deployments-ready`, `approval`, `review`).
    pub name: String,
    /// What kind of gate it is.
    pub kind: GateKind,
    /// It holds now.
    pub holds: bool,
    /// The query's value, for a query gate that returned one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// For a query gate, the query as last sent to Prometheus: placeholders
    /// filled and, when the operator runs with `--enforce-namespace`, every
    /// selector confined to the Release's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Why it holds or not, in one sentence (the value against its bounds, who approved, what is missing).
    #[serde(default)]
    pub reason: String,
    /// When it was last checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<Time>,
    /// The wave (counted from 1) it was checked for.
    #[serde(default)]
    pub wave: i32,
}

/// The kind of a go/no-go gate.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GateKind {
    /// A PromQL query and the range its value must be in.
    Query,
    /// Built in: every Deployment of the wave exists, is available and is not mid-rollout.
    Cluster,
    /// A `ReleaseApproval` by someone allowed to approve the release.
    Approval,
}

/// The release window, as it applies to the release.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WindowStatus {
    /// The window is open now (and no freeze applies).
    pub open: bool,
    /// When it next opens, if it is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_opening: Option<Time>,
    /// The window in words, and what an override needs, e.g.
    /// `Mon-Thu 09:00-17:00 Europe/Berlin; Friday after 12:00 needs an override`.
    #[serde(default)]
    pub message: String,
}

/// One wave of the plan.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Wave {
    /// Services in this wave, in spec order.
    pub services: Vec<String>,
}

/// A hold: the release stopped because it could not decide, and waits for a person.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    /// Set `spec.resumeHold` to this to lift the hold.
    pub id: String,
    /// Why the controller could not go on.
    pub reason: HoldReason,
    /// What happened and what lifts the hold, in a sentence or two.
    #[serde(default)]
    pub message: String,
    /// The service whose state caused it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// When the hold was placed.
    pub since: Time,
}

/// Why a rollback began.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RollbackCause {
    /// What began the rollback.
    pub reason: RollbackReason,
    /// What happened, in one sentence.
    pub message: String,
    /// The service that breached, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// When the metric first deviated (the first failing measurement of the breaching step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_deviation_at: Option<Time>,
    /// When the rollback began.
    pub at: Time,
    /// The breaching metric, its value and the bound it crossed (e.g. `max 0.01`, or
    /// `canary ≤ stable + 0.005 (stable 0.001)`), when a metric breached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<String>,
    /// Who asked, for a manual rollback (annotation `signalman.dev/rollback-by`, set by
    /// `kubectl signalman rollback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// Where one service stands.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// The service's name in `spec.services`.
    pub name: String,
    /// The service's phase.
    pub phase: ServicePhase,
    /// Index of the current step in the service's steps, while progressing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<i32>,
    /// Percent of traffic the canary should get now (the step's declared weight).
    #[serde(default)]
    pub weight: i32,
    /// Percent of traffic the canary really gets now, while it runs: its share of the available
    /// pods in replica-ratio mode (small Deployments overshoot low weights), the route's weight
    /// in Gateway API mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_weight: Option<i32>,
    /// When the current step's bake began (the moment its weight was in effect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bake_started_at: Option<Time>,
    /// The ControllerRevision holding the Deployment's pod template from before the release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// Signalman has written the new version into the stable Deployment, so a rollback must restore it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stable_changed: bool,
    /// This step's count of measurements per metric and outcome.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tally: Vec<MetricTally>,
    /// Most recent measurements, newest last (bounded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<Measurement>,
    /// It waits, at its current step's weight with the bake passed, for an approval of this step.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub awaiting_approval: bool,
    /// This service's own gates (`spec.services[].gates`) at their last check, once its turn came.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateStatus>,
    /// A migration's forward Job, once it is due: recorded before it is created, so it runs once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_job: Option<JobRun>,
    /// A migration's rollback Job, once it is due: recorded before it is created, so it runs once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_job: Option<JobRun>,
    /// A flag's keys as they were before the release: recorded before they are changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag_baseline: Option<FlagBaseline>,
    /// Per container named in `change.images`: its image before the release, recorded when
    /// the service starts (what the report says it shipped from).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub previous_images: BTreeMap<String, String>,
    /// When this service's state last changed phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
    /// What the service is waiting for, or what went wrong, in one sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The phase of one service.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ServicePhase {
    /// Waiting for its dependencies (or for the release to start).
    #[default]
    Pending,
    /// Canary moving through the steps.
    Progressing,
    /// Stable Deployment being updated to the new version; canary still serving.
    Promoting,
    /// The new version is the stable one; canary objects are gone.
    Promoted,
    /// Canary going to 0 % and being removed (breach, abort or hold timeout).
    Withdrawing,
    /// Canary removed before promotion; the stable Deployment was never touched.
    Withdrawn,
    /// Stable Deployment being put back to its baseline.
    Restoring,
    /// Stable Deployment back on its baseline.
    Restored,
    /// Never started: the release ended first.
    Skipped,
    /// Not shipped by this release: held, its service gate did not hold, or it depends on a
    /// deferred service (see `status.deferred`).
    Deferred,
}

/// One run of a migration Job.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct JobRun {
    /// The Job's name in the Release's namespace.
    pub name: String,
    /// When Signalman first saw the Job exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When it finished (completed, failed or timed out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// How it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<JobResult>,
    /// Why it failed and its last log lines, when it did not succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// How a migration Job ended.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobResult {
    Succeeded,
    Failed,
    /// It ran longer than `job.timeout` and was stopped.
    TimedOut,
}

/// A flag's keys before the release.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FlagBaseline {
    /// Keys that existed, with their values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, String>,
    /// Keys that did not exist: removed again on a rollback.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub absent: Vec<String>,
}

/// A service this release does not ship.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Deferral {
    /// The service.
    pub service: String,
    /// Why, e.g. `held: load test not signed off` or `depends on payments, which is deferred`.
    pub reason: String,
}

/// Cross-team dependencies and unrelated changes in one release.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CrossTeam {
    /// The `dependsOn` edges whose two services have different owners, as `web -> api (team-web -> team-api)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edges: Vec<String>,
    /// The most such edges allowed (the policy's `limits.crossTeamEdges`, else the operator's `--cross-team-edges`).
    pub limit: i32,
    /// Groups of services with no dependency path between them, when their owners differ: unrelated
    /// changes combined in one train. One entry per group, as `web, api (team-shop)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unrelated: Vec<String>,
    /// The proposed split: groups with no cross-team edge inside them, each a Release of its own,
    /// in the order they can ship.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub split: Vec<SplitGroup>,
}

/// One Release of a proposed split.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SplitGroup {
    /// The owner of its services.
    pub owner: String,
    pub services: Vec<String>,
    /// Groups (by their index in `split`, counted from 0) that must ship before this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<i32>,
}

/// Counts of this step's measurements for one metric.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MetricTally {
    pub metric: String,
    #[serde(default)]
    pub passed: i32,
    #[serde(default)]
    pub failed: i32,
    #[serde(default)]
    pub inconclusive: i32,
    #[serde(default)]
    pub errors: i32,
    /// When this metric was last measured in this step; the next measurement is due one `interval` later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_at: Option<Time>,
    /// When this metric first failed in this step (the first deviation a breach reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failed_at: Option<Time>,
    /// The query as last sent to Prometheus: placeholders filled and, when the
    /// operator runs with `--enforce-namespace`, every selector confined to
    /// the Release's namespace (for a `compare` metric, the canary's query).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

/// One measurement of one metric.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    pub metric: String,
    /// Index of the step it was taken in.
    pub step: i32,
    /// The value, when the query returned one (the canary's, for a `compare` metric).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The stable pods' value, for a `compare` metric, when the query returned one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_value: Option<f64>,
    pub outcome: Outcome,
    /// The error or the reason for the outcome, when there is one to tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub at: Time,
}

/// What a measurement counts as.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Pass,
    Fail,
    Inconclusive,
    Error,
}

/// One entry of the release's history.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    pub at: Time,
    /// A CamelCase word: `Started`, `StepStarted`, `StepPassed`, `Promoted`, `Breach`, `WeightZero`, `Restored`, ...
    pub reason: String,
    /// The service it concerns, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub message: String,
}

// ---------------------------------------------------------------- resolved views

/// Defaults applied when neither the service nor `spec.defaults` sets a value.
pub mod default {
    use std::time::Duration;
    pub const INTERVAL: Duration = Duration::from_secs(30);
    pub const FAILURE_LIMIT: i32 = 0;
    pub const INCONCLUSIVE_LIMIT: i32 = 2;
    pub const ERROR_LIMIT: i32 = 2;
    /// Most recent measurements kept per service in status.
    pub const MEASUREMENTS_KEPT: usize = 12;
    /// Timeline entries kept in status.
    pub const TIMELINE_KEPT: usize = 200;
    /// Steps used when neither the service nor `spec.defaults` has any.
    pub fn steps() -> Vec<(i32, Duration)> {
        vec![
            (5, Duration::from_secs(120)),
            (25, Duration::from_secs(300)),
            (50, Duration::from_secs(300)),
            (100, Duration::from_secs(120)),
        ]
    }
}

impl ReleaseSpec {
    /// The service entry named `name`.
    pub fn service(&self, name: &str) -> Option<&ServiceSpec> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The gate named `name`: the release's own (`spec.gates`) or a service's
    /// (`spec.services[].gates`); names are unique across both.
    pub fn gate(&self, name: &str) -> Option<&Gate> {
        self.gates
            .iter()
            .chain(self.services.iter().flat_map(|s| &s.gates))
            .find(|g| g.name == name)
    }

    /// The steps service `svc` walks through: its own, else the defaults, else the built-in ones.
    pub fn steps_of(&self, svc: &ServiceSpec) -> Vec<Step> {
        svc.steps
            .clone()
            .or_else(|| self.defaults.as_ref().and_then(|d| d.steps.clone()))
            .unwrap_or_else(|| {
                default::steps()
                    .into_iter()
                    .map(|(weight, bake)| Step {
                        weight,
                        bake: bake.into(),
                        approval: None,
                    })
                    .collect()
            })
    }

    /// The analysis service `svc` is judged by: its own, else the defaults, else none (no metrics,
    /// which [`validate`] refuses unless it opts out with `skipAnalysis`).
    pub fn analysis_of(&self, svc: &ServiceSpec) -> Analysis {
        svc.analysis
            .clone()
            .or_else(|| self.defaults.as_ref().and_then(|d| d.analysis.clone()))
            .unwrap_or_default()
    }
}

impl Analysis {
    pub fn interval(&self) -> std::time::Duration {
        self.interval.map(Into::into).unwrap_or(default::INTERVAL)
    }
    pub fn failure_limit(&self) -> i32 {
        self.failure_limit.unwrap_or(default::FAILURE_LIMIT)
    }
    pub fn inconclusive_limit(&self) -> i32 {
        self.inconclusive_limit
            .unwrap_or(default::INCONCLUSIVE_LIMIT)
    }
    pub fn error_limit(&self) -> i32 {
        self.error_limit.unwrap_or(default::ERROR_LIMIT)
    }
    /// Passing measurements each metric needs in a step that bakes for `bake`.
    pub fn min_passes(&self, bake: std::time::Duration) -> i32 {
        self.min_passes.unwrap_or_else(|| {
            let per_bake = bake.as_millis() / self.interval().as_millis().max(1);
            i32::try_from(per_bake).unwrap_or(i32::MAX).max(1)
        })
    }
}

impl ServiceSpec {
    /// What the service is: a Deployment, a migration Job or a flag.
    pub fn kind(&self) -> MemberKind<'_> {
        match (&self.job, &self.flag) {
            (Some(job), _) => MemberKind::Job(job),
            (None, Some(flag)) => MemberKind::Flag(flag),
            (None, None) => MemberKind::Deployment {
                deployment: &self.deployment,
                change: &self.change,
            },
        }
    }

    /// The Deployment it shifts, for a deployment service.
    pub fn deployment(&self) -> Option<&str> {
        match self.kind() {
            MemberKind::Deployment { deployment, .. } => Some(deployment),
            _ => None,
        }
    }

    /// The Kubernetes Service that carries this service's traffic, and so its
    /// metrics' labels: `traffic.gatewayAPI.service` when set, else `name`.
    pub fn kubernetes_service(&self) -> &str {
        self.traffic
            .as_ref()
            .and_then(|t| t.gateway_api.as_ref())
            .and_then(|g| g.service.as_deref())
            .unwrap_or(&self.name)
    }
}

impl ReleaseStatus {
    /// The status of service `name`, or a fresh one (not started yet).
    pub fn service_or_new(&self, name: &str) -> ServiceStatus {
        self.services
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .unwrap_or_else(|| ServiceStatus {
                name: name.to_string(),
                ..Default::default()
            })
    }
}

impl Release {
    /// `namespace/name`, for logs and messages.
    pub fn key(&self) -> String {
        format!(
            "{}/{}",
            self.metadata.namespace.as_deref().unwrap_or_default(),
            self.metadata.name.as_deref().unwrap_or_default()
        )
    }

    /// Whether the operator has written a status: the one the API server
    /// fills in by default (observedGeneration 0) is not one.
    pub fn picked_up(&self) -> bool {
        self.status
            .as_ref()
            .is_some_and(|s| s.observed_generation.unwrap_or(0) > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_duration_is_an_error_not_a_panic() {
        let step = |bake: &str| {
            serde_json::from_value::<Step>(serde_json::json!({"weight": 50, "bake": bake}))
        };
        for bad in ["5s-3s", "-1s", "+2m"] {
            let err = step(bad).unwrap_err().to_string();
            assert!(err.contains("is not a duration"), "{bad}: {err}");
        }
        assert_eq!(
            std::time::Duration::from(step("1m30s").unwrap().bake),
            std::time::Duration::from_secs(90)
        );
        let analysis: Analysis =
            serde_json::from_value(serde_json::json!({"interval": null})).unwrap();
        assert_eq!(analysis.interval, None);
    }
}

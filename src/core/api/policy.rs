//! The `ReleasePolicy` custom resource: the go/no-go rules a platform team
//! owns. Cluster-scoped; the one named `default` applies unless the
//! Release's namespace (label `signalman.dev/policy`) or the Release
//! (`spec.policy`) names another. With none at all, a Release behaves as it
//! did before policies existed.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Duration, Step, some_duration};

/// The policy a Release gets when neither it nor its namespace names one.
pub const DEFAULT_POLICY: &str = "default";
/// Namespace label naming the ReleasePolicy for the Releases in it.
pub const POLICY_LABEL: &str = "signalman.dev/policy";

/// The rules a Release is held to before and while it moves: when it may
/// start, how carefully each risk is released, who must approve what.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "signalman.dev",
    version = "v1alpha1",
    kind = "ReleasePolicy",
    shortname = "relpol",
    category = "signalman",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"Days","type":"string","jsonPath":".spec.window.days"}"#,
    printcolumn = r#"{"name":"From","type":"string","jsonPath":".spec.window.from"}"#,
    printcolumn = r#"{"name":"To","type":"string","jsonPath":".spec.window.to"}"#,
    printcolumn = r#"{"name":"Time zone","type":"string","jsonPath":".spec.window.timeZone"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ReleasePolicySpec {
    /// When Releases may start and begin a new wave. Unset: at any time.
    /// A Release's own `spec.window` replaces it; the `freeze` still applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,

    /// Times no Release starts or begins a new wave without
    /// `spec.override.justification` and an approved window override, even
    /// inside a window (the Friday cut-off, weekends, blackout dates). Read in
    /// the window's time zone (UTC without a window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze: Option<Freeze>,

    /// How each risk class is released: default steps, analysis limits and approvals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risks: Option<RiskProfiles>,

    /// How a `spec.type: hotfix` Release is released: abbreviated steps and bakes, analysis
    /// still required, and an approval (the review) named `review`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hotfix: Option<Profile>,

    /// How long a Release may wait for its go/no-go gates before it ends `Failed` (before its
    /// first wave, with nothing changed) or rolls back (before a later wave) (Go duration;
    /// default: wait for ever). A Release's `spec.gateTimeout` replaces it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some_duration"
    )]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s')").message("spec.gateTimeout must be a duration of at least 1s, e.g. 4h"))]
    pub gate_timeout: Option<Duration>,

    /// Limits on what one train may carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,

    /// How long after `Succeeded` a Release can still be rolled back (`spec.rollback`); when it
    /// closes the baselines are removed (Go duration, at least `1s`; default `24h`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some_duration"
    )]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s')").message("spec.rollbackWindow must be a duration of at least 1s, e.g. 24h"))]
    pub rollback_window: Option<Duration>,

    /// Webhook receivers told about each Release's transitions (when no policy applies, the
    /// operator's `--notifications` lists them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<super::Notifications>,
}

/// Days and hours, in one IANA time zone.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.from < self.to").message("window: from must be before to (a window cannot cross midnight; use from 00:00 or to 24:00 and list both days)"))]
pub struct Window {
    /// The days it is open, e.g. `[Monday, Tuesday, Wednesday, Thursday]`.
    #[schemars(length(min = 1, max = 7))]
    #[x_kube(validation = Rule::new("self.all(d, self.exists_one(e, e == d))").message("window.days: list each day once"))]
    pub days: Vec<Weekday>,
    /// Opening time, `HH:MM` (24-hour clock) in `timeZone`.
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub from: String,
    /// Closing time, `HH:MM` after `from`, or `24:00` for the end of the day.
    #[schemars(regex(pattern = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"))]
    pub to: String,
    /// IANA time zone the hours are read in, e.g. `Europe/Berlin` (default `UTC`).
    /// Daylight saving time is followed: 09:00 is 09:00 local time all year.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(validation = Rule::new("timestamp('2026-01-01T00:00:00Z').getHours(self) >= 0").message("timeZone must be an IANA time zone such as Europe/Berlin or UTC"))]
    pub time_zone: Option<String>,
}

/// A day of the week.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

/// When changes wait for a justified, approved override.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Freeze {
    /// Friday from this time (`HH:MM`) to midnight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub friday_from: Option<String>,
    /// Saturday and Sunday, all day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekends: Option<bool>,
    /// Whole days, `YYYY-MM-DD`, e.g. `2026-12-24`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 366))]
    pub blackouts: Vec<Blackout>,
}

/// A day nothing ships on without an override.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Blackout {
    /// The day, `YYYY-MM-DD`.
    #[schemars(regex(pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"))]
    pub date: String,
    /// Why, shown to whoever waits on it, e.g. `year-end freeze`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub reason: Option<String>,
}

/// One profile per risk class.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RiskProfiles {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<Profile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<Profile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<Profile>,
}

/// How a class of Release is released. Each value applies to the services
/// that do not set their own (in the service, or in `spec.defaults`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// Default steps and bakes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 20))]
    #[x_kube(validation = Rule::new(super::STEPS_INCREASING).message("steps: weights must strictly increase"))]
    #[x_kube(validation = Rule::new(super::STEPS_END_AT_100).message("steps: the last step must have weight 100"))]
    pub steps: Option<Vec<Step>>,
    /// Default analysis limits; the metrics always come from the Release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisLimits>,
    /// The approvals it needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<Approvals>,
}

/// Analysis settings a profile may set; see the Release's `analysis` for each.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisLimits {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some_duration"
    )]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s')").message("analysis.interval must be a duration of at least 1s, e.g. 30s"))]
    pub interval: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub failure_limit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub inconclusive_limit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub error_limit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub min_passes: Option<i32>,
}

/// Approvals a profile requires; each is a `ReleaseApproval` by someone the
/// API server lets `approve` the Release.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Approvals {
    /// An approval before the first wave: a gate named `approval` (`review` for a hotfix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_start: Option<bool>,
    /// An approval before each service's last step: the service waits at the
    /// step before its last, bake passed, until someone approves that step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_last_step: Option<bool>,
    /// The approver must not be the person who created the Release (four eyes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub four_eyes: Option<bool>,
    /// Only these users' approvals count (as the API server names them, e.g.
    /// `alice` or `system:serviceaccount:ci:bot`). Empty: whoever RBAC lets `approve`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub approvers: Vec<String>,
}

/// What one train may carry.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Most `dependsOn` edges between services of different owners in one Release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10000))]
    pub cross_team_edges: Option<i32>,
    /// What a release beyond the limit gets: `warn` (default: a `Warning` condition and an Event
    /// proposing a split) or `refuse` (`Stalled` before anything moves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_team: Option<CrossTeamAction>,
}

/// What a release with too many cross-team edges gets.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CrossTeamAction {
    #[default]
    #[serde(rename = "warn")]
    Warn,
    #[serde(rename = "refuse")]
    Refuse,
}

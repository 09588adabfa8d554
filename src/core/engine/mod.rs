//! The pure decision core.
//!
//! `decide(release, observations, now)` returns the actions to take, the new
//! status and when to look again. It never touches the network and never reads
//! a clock: every schedule (bake, interval, hold timeout) is a function of
//! `now`, so tests drive it with a simulated clock. The controller is the
//! imperative shell: it observes the cluster, runs the measurements that
//! `due_measurements` asks for, calls `decide`, applies the actions in order
//! and writes the status when it changed.

mod announce;
mod changed;
mod context;
mod cross_team;
mod defer;
mod finish;
mod flag;
mod gate;
mod hold;
mod migration;
mod progress;
mod report;
mod rollback;
mod rollback_window;
mod service_gate;
mod sign_off;
pub mod sim;
mod start;
mod summary;
#[cfg(test)]
mod tests;
mod unreadable;
mod verify;
mod warning;
mod wave;
mod window;

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use crate::api::{HoldReason, Outcome, Phase, Release, ReleaseSpec, ReleaseStatus, RollbackReason};

use crate::analysis::{MeasurementRequest, QueryResult, Taken};
pub use changed::{Expected, reverted_since, what_changed};
pub use cross_team::warning as cross_team_warning;
pub use gate::due_gates;
pub use progress::due_measurements;
pub use unreadable::{Unreadable, unreadable};

/// Longest wait while the cluster converges on what the engine asked for
/// (a canary becoming ready, a rollout finishing); watches usually wake the
/// controller sooner.
pub const CONVERGE: Duration = Duration::from_secs(5);

/// How long a deleted Release may take to reverse its train before the
/// controller gives up and lets it go (phase `Failed`, naming what is left),
/// so that a deletion can never wedge on a cluster that refuses the rollback.
pub const DELETION_GRACE: Duration = Duration::from_secs(600);

/// Whether `decided` and `now`, two versions of one Release, are decided
/// alike: they differ at most in what the engine never reads (labels and
/// annotations outside `signalman.dev/`, managedFields, resourceVersion). A
/// status computed from `decided` may then be written over `now`: another
/// writer that only relabels the Release (a GitOps tool, a cost controller)
/// changed nothing the decision rests on. Anything else changed (spec,
/// status, generation, deletion, finalizers, Signalman's own annotations)
/// means deciding again.
pub fn decided_alike(decided: &Release, now: &Release) -> bool {
    fn ours(m: &Option<BTreeMap<String, String>>) -> Vec<(&String, &String)> {
        m.iter()
            .flatten()
            .filter(|(k, _)| k.starts_with("signalman.dev/"))
            .collect()
    }
    let (a, b) = (&decided.metadata, &now.metadata);
    decided.spec == now.spec
        && decided.status == now.status
        && a.uid == b.uid
        && a.generation == b.generation
        && a.deletion_timestamp == b.deletion_timestamp
        && a.finalizers == b.finalizers
        && ours(&a.labels) == ours(&b.labels)
        && ours(&a.annotations) == ours(&b.annotations)
}

/// Decide what to do next for `release`, given what the shell observed and the time.
///
/// Pure and deterministic: the same inputs give the same output, and deciding
/// again on the returned status with the same observations repeats no
/// transition. Releases that ended `RolledBack` or `Failed` cost nothing: no
/// actions, the status unchanged, no requeue. A `Succeeded` one keeps its
/// rollback window: a manual rollback (`spec.rollback`) or the window closing
/// are decided, and otherwise nothing changes but the wake-up at its end.
/// The rules are in `docs/semantics.md`.
pub fn decide(release: &Release, obs: &Observations, now: Timestamp) -> Decision {
    let before = release.status.clone().unwrap_or_default();
    let phase = before.phase.unwrap_or_default();
    if matches!(phase, Phase::RolledBack | Phase::Failed) {
        return Decision {
            actions: Vec::new(),
            status: before,
            requeue_after: None,
            notices: Vec::new(),
            judged: Vec::new(),
        };
    }
    // Until the release starts, the profile follows the live policy; from
    // then on the one fixed in its status.
    let mut before = before;
    if before.started_at.is_none() {
        let applied = crate::policy::applied(&release.spec, &obs.policy);
        before.policy = (applied != crate::api::AppliedPolicy::default()).then_some(applied);
    }
    let filled;
    let spec = match before.policy.as_ref().filter(|a| a.defaults.is_some()) {
        Some(applied) => {
            filled = crate::policy::fill(&release.spec, applied);
            &filled
        }
        None => &release.spec,
    };
    let started = before.started_at.is_some();
    let mut cx = context::Ctx::new(release, spec, obs, now, before);
    if rollback::deletion_overdue(&cx) {
        rollback::give_up(&mut cx);
        summary::finish(&mut cx);
        return cx.into_decision();
    }
    if let Some(refused) = &obs.refused {
        if phase == Phase::Succeeded {
            rollback_window::refused(&mut cx, refused);
        } else {
            hold::refused(&mut cx, refused);
        }
        summary::finish(&mut cx);
        return cx.into_decision();
    }
    match phase {
        Phase::Pending | Phase::AwaitingGates | Phase::AwaitingWindow if !started => {
            start::pending(&mut cx)
        }
        Phase::Pending
        | Phase::AwaitingGates
        | Phase::AwaitingWindow
        | Phase::Progressing
        | Phase::Paused
        | Phase::Held => progress::run(&mut cx),
        Phase::Verifying => verify::run(&mut cx),
        Phase::RollingBack => rollback::run(&mut cx),
        Phase::Succeeded => rollback_window::run(&mut cx),
        Phase::RolledBack | Phase::Failed => {}
    }
    summary::finish(&mut cx);
    cx.into_decision()
}

/// A stable fingerprint of what `spec` releases: a different value mid-flight
/// means someone changed the Deployments, the change, the order, the traffic,
/// the steps or the analysis, and the release holds (`SpecChanged`).
///
/// Left out, because editing them changes nothing that is being released:
/// the control fields (`paused`, `abort`, `resumeHold`, `holdTimeout`,
/// `rollback`),
/// who is accountable (`owner`, `summary`, each service's `owner`), and the
/// go/no-go fields (`gates`, `gateTimeout`, `window`, `override`, `policy`,
/// `risk`, `type`) and each service's `hold` and `gates`: the profile they
/// pick is fixed in status at the start, the gates and window are read afresh
/// before each wave, and a service's hold and gates when its turn comes. Correcting a
/// typo in the summary, or adding a gate, must not send every canary to 0 %.
/// FNV-1a (64 bit) over the canonical JSON, as 16 hex digits.
pub fn spec_hash(spec: &ReleaseSpec) -> String {
    let mut what = spec.clone();
    what.paused = None;
    what.abort = None;
    what.resume_hold = None;
    what.hold_timeout = None;
    what.rollback = None;
    what.owner = String::new();
    what.summary = None;
    what.gates.clear();
    what.gate_timeout = None;
    what.window = None;
    what.window_override = None;
    what.policy = None;
    what.risk = None;
    what.release_type = None;
    for svc in &mut what.services {
        svc.owner = None;
        // Read when the service's turn comes, like the release's gates.
        svc.hold = None;
        svc.gates.clear();
    }
    fnv1a(&what)
}

/// `stored` (a `status.specHash`) is the fingerprint of `spec`. Releases
/// started by an earlier operator carry the earlier fingerprint, which also
/// covered owner, summary and holdTimeout; it is accepted too, so an upgrade
/// mid-flight does not look like a changed spec.
pub fn spec_matches(stored: &str, spec: &ReleaseSpec) -> bool {
    stored == spec_hash(spec) || stored == legacy_spec_hash(spec)
}

fn legacy_spec_hash(spec: &ReleaseSpec) -> String {
    let mut what = spec.clone();
    // Did not exist then: whatever it says now, the earlier fingerprint had none.
    what.rollback = None;
    what.paused = None;
    what.abort = None;
    what.resume_hold = None;
    fnv1a(&what)
}

fn fnv1a(what: &ReleaseSpec) -> String {
    // Serializing plain structs and BTreeMaps cannot fail and is canonical:
    // field order is fixed by the types, map keys are sorted.
    format!(
        "{:016x}",
        fnv1a_64(&serde_json::to_vec(what).unwrap_or_default())
    )
}

/// FNV-1a (64 bit): a stable fingerprint, the same on every build and platform.
pub(crate) fn fnv1a_64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// What the shell saw in the cluster and in Prometheus for one decision.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observations {
    /// Keyed by the service's name in `spec.services`.
    pub services: BTreeMap<String, ServiceObservation>,
    /// Measurements the shell took, as asked by [`due_measurements`], since the last decision.
    pub measurements: Vec<Taken>,
    /// The Releases in the namespace, for the claim rule of [`crate::preflight`].
    pub releases: Vec<crate::preflight::Claimant>,
    /// The API server refused, as invalid, a write of the decision made on
    /// these same observations. Retrying would only be refused again.
    pub refused: Option<WriteRefusal>,
    /// The ReleasePolicy that applies to the Release.
    pub policy: PolicyObservation,
    /// The ReleaseApprovals naming the Release, each vouched for by the API server's admission policy.
    pub approvals: Vec<ApprovalObservation>,
    /// Gate checks the shell ran, as asked by [`due_gates`], since the last decision.
    pub gates: Vec<GateTaken>,
    /// The operator's `--cross-team-edges`: the limit when the policy sets none
    /// (`None`: [`crate::plan::teams::DEFAULT_CROSS_TEAM_EDGES`]).
    pub cross_team_limit: Option<i32>,
    /// Notification receivers that apply but cannot be used, each a sentence naming the
    /// receiver and the fix (e.g. its Secret does not exist or lacks the key): a `Warning`
    /// condition; the release still runs.
    pub receiver_problems: Vec<String>,
    /// The receivers that apply (the policy's, else the operator's `--notifications`):
    /// the engine announces only transitions one of them wants.
    pub receivers: Vec<crate::api::Receiver>,
    /// What the operator lets the Release's queries reach (`--enforce-namespace`, the
    /// allow-list of Prometheus addresses): checked before it starts.
    pub reach: crate::analysis::tenancy::Reach,
}

/// The ReleasePolicy that applies to a Release, as the shell found it.
// Built once per decision and moved, never stored in bulk: boxing the policy
// would only make every shell and test that builds one noisier.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Default, PartialEq)]
pub enum PolicyObservation {
    /// None applies: the Release and its namespace name none and there is no
    /// `default`. The Release behaves as before policies existed.
    #[default]
    None,
    /// This one applies.
    Found {
        name: String,
        spec: crate::api::ReleasePolicySpec,
    },
    /// The Release (`spec.policy`) or its namespace (label `signalman.dev/policy`) names a policy
    /// that does not exist; `named_by` says which, e.g. `spec.policy` or `namespace label signalman.dev/policy`.
    Missing { name: String, named_by: String },
    /// The policy that applies exists but does not parse (`error` names the field): the
    /// Release is not released without it, nor under another.
    Unreadable { name: String, error: String },
}

/// One ReleaseApproval of the Release.
#[derive(Clone, Debug, PartialEq)]
pub struct ApprovalObservation {
    /// The ReleaseApproval's name.
    pub name: String,
    pub spec: crate::api::ReleaseApprovalSpec,
    /// Its `metadata.creationTimestamp`.
    pub at: Option<Timestamp>,
}

/// A query gate the shell asked Prometheus about.
#[derive(Clone, Debug, PartialEq)]
pub struct GateTaken {
    /// `spec.gates[].name`.
    pub gate: String,
    pub result: QueryResult,
    /// The query as sent (see [`crate::api::GateStatus::query`]); `None` when none was.
    pub query: Option<String>,
    pub at: Timestamp,
}

/// A query gate the engine wants checked now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateRequest {
    /// `spec.gates[].name`; the shell renders its query with `{{namespace}}` and `{{release}}`.
    pub gate: String,
}

/// A write the API server refused as invalid (422 Invalid, 400 BadRequest).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteRefusal {
    /// The service whose action was refused.
    pub service: String,
    /// What was being done, e.g. `setting the canary weight to 25`.
    pub doing: String,
    /// The API server's message; it names the object and the field.
    pub message: String,
}

/// One service's objects as the shell found them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceObservation {
    /// The stable Deployment; `None` when it does not exist.
    pub stable: Option<StableObservation>,
    /// The canary as it is in effect now; `None` when no canary objects exist.
    pub canary: Option<CanaryObservation>,
    /// The ControllerRevision with this service's baseline exists.
    pub baseline_recorded: bool,
    /// The HTTPRoute, for Gateway API traffic; `None` for replica ratio.
    pub route: Option<RouteObservation>,
    /// A migration's forward Job (`status.services[].forwardJob.name`); `None` while it does not exist.
    pub forward_job: Option<JobObservation>,
    /// A migration's rollback Job (`status.services[].rollbackJob.name`); `None` while it does not exist.
    pub rollback_job: Option<JobObservation>,
    /// A flag's ConfigMap; `None` when it does not exist.
    pub flag: Option<FlagObservation>,
}

/// A migration Job as the shell found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobObservation {
    /// Created and not finished.
    Running,
    /// Condition `Complete`.
    Succeeded,
    /// Condition `Failed`: `reason` is the Job's reason and message (e.g. `BackoffLimitExceeded`),
    /// `logs` its failed pod's last log lines (its termination message), when there are any.
    Failed {
        reason: String,
        logs: Option<String>,
    },
}

/// A flag's ConfigMap as the shell found it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlagObservation {
    /// The current values of the flag's keys (`spec.services[].flag.keys`); a key absent from
    /// the ConfigMap is absent here.
    pub values: BTreeMap<String, String>,
}

/// Which of a migration's Jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobKind {
    Forward,
    Rollback,
}

impl JobKind {
    /// `forward` or `rollback`: in Job names and in messages.
    pub fn word(self) -> &'static str {
        match self {
            JobKind::Forward => "forward",
            JobKind::Rollback => "rollback",
        }
    }
}

/// The stable Deployment.
#[derive(Clone, Debug, PartialEq)]
pub struct StableObservation {
    /// Container names of its pod template.
    pub containers: Vec<String>,
    /// What its pod template is now, compared with the baseline and the new version.
    pub template: TemplateState,
    /// Its rollout is complete: the controller observed the latest generation and every
    /// replica is updated and available.
    pub rolled_out: bool,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `spec.paused`: the user stopped its rollouts, so nothing written to it
    /// rolls out until they resume it.
    pub paused: bool,
    /// Its rollout passed `progressDeadlineSeconds` (condition Progressing=False,
    /// reason ProgressDeadlineExceeded): it will not finish without a person.
    pub rollout_failed: bool,
    /// Image of each container of its pod template now.
    pub images: BTreeMap<String, String>,
    /// Each image and env var of its pod template whose live value is not both the
    /// baseline's and the new version's, with who wrote it last; empty before a baseline
    /// is recorded. [`what_changed`] puts them in words.
    pub fields: Vec<TemplateField>,
}

/// One image (`env: None`) or env var of a container of the stable Deployment's pod
/// template: its value now, in the baseline and in the new version (`None`: unset, or the
/// container is not there), and the field manager that owns it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateField {
    pub container: String,
    /// The env var; `None` for the image.
    pub env: Option<String>,
    pub live: Option<String>,
    pub baseline: Option<String>,
    pub new: Option<String>,
    /// The manager whose `metadata.managedFields` entry owns the field (the latest,
    /// when several share it); `None` when no entry does.
    pub writer: Option<FieldWriter>,
}

/// Who last wrote a field: a `metadata.managedFields` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldWriter {
    /// `argocd-controller`, `kustomize-controller`, `kubectl-edit`, ...
    pub manager: String,
    /// `Apply` (server-side apply) or `Update`.
    pub operation: String,
    pub time: Option<Timestamp>,
}

/// The stable Deployment's pod template compared with what the release expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateState {
    /// As it was before the release (or, before the baseline is recorded, not yet the new version).
    Baseline,
    /// The new version: the baseline with the change applied.
    New,
    /// Neither: someone else changed it during the release.
    Drifted,
}

/// The canary objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanaryObservation {
    /// The weight the canary objects implement now (replica count or route weights).
    pub weight: i32,
    /// Every canary pod asked for is available, so `weight` is really in effect.
    pub ready: bool,
    /// The percent of traffic the canary really gets now: its share of the
    /// available pods (replica ratio) or the route's weight (Gateway API).
    pub effective: i32,
}

/// The HTTPRoute of a Gateway API service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteObservation {
    /// The route exists and has a backendRef to the stable Service.
    pub found: bool,
    /// Someone else changed the backendRefs Signalman set.
    pub drifted: bool,
}

/// One change to make in the cluster. Every action is idempotent: applying it
/// twice has the effect of applying it once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Store the stable Deployment's current pod template as this service's baseline.
    RecordBaseline { service: String },
    /// Run the new version as a canary taking `weight` percent of traffic
    /// (create, scale or re-weight the canary objects; 0 keeps them but sends nothing).
    SetCanaryWeight { service: String, weight: i32 },
    /// Write the new version into the stable Deployment.
    PromoteStable { service: String },
    /// Send all traffic to the stable backend and delete the canary objects.
    RemoveCanary { service: String },
    /// Write the baseline back into the stable Deployment.
    RestoreBaseline { service: String },
    /// Create the migration's Job of this kind, named as `status.services[]` records it, unless
    /// it exists (a Job is never created twice).
    CreateJob { service: String, job: JobKind },
    /// Delete the migration's Job of this kind with its pods (it ran past `job.timeout`).
    StopJob { service: String, job: JobKind },
    /// Write the flag's keys (`spec.services[].flag.keys`) into its ConfigMap.
    SetFlag { service: String },
    /// Put the flag's keys back as `status.services[].flagBaseline` recorded them: values
    /// written back, keys that were absent removed.
    RestoreFlag { service: String },
    /// Delete the service's baseline ControllerRevision: the rollback window closed.
    DeleteBaseline { service: String },
}

impl Action {
    /// The service (entry of `spec.services`) the action changes.
    pub fn service(&self) -> &str {
        match self {
            Action::RecordBaseline { service }
            | Action::SetCanaryWeight { service, .. }
            | Action::PromoteStable { service }
            | Action::RemoveCanary { service }
            | Action::RestoreBaseline { service }
            | Action::CreateJob { service, .. }
            | Action::StopJob { service, .. }
            | Action::SetFlag { service }
            | Action::RestoreFlag { service }
            | Action::DeleteBaseline { service } => service,
        }
    }
}

/// A transition worth telling people about: the shell publishes it as a
/// Kubernetes Event and counts it in its metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub kind: NoticeKind,
    /// The service it concerns, if one.
    pub service: Option<String>,
    pub message: String,
}

/// What happened. [`NoticeKind::reason`] is the Event's reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NoticeKind {
    Started,
    /// Refused before anything changed (see the `Stalled` condition).
    Stalled,
    StepPassed,
    Promoted,
    Held(HoldReason),
    Resumed,
    RollbackBegan(RollbackReason),
    Restored,
    Succeeded,
    RolledBack,
    Failed,
    /// An approval let the release go on: a step, or the window override.
    Approved,
    /// A service and its dependents were deferred.
    Deferred,
    /// Something a person should know that stops nothing (see the `Warning` condition),
    /// e.g. more cross-team dependencies than the policy allows.
    Warning,
    /// `spec.rollback` cannot be honoured (see `status.rollbackWindow.refused` and the
    /// `Warning` condition); told once per refusal.
    RollbackRefused,
    /// The release ended: the completion report's one-line summary (`status.report`).
    Report,
}

impl NoticeKind {
    /// The Event reason: the rollback's own reason (`Breach`, `Abort`,
    /// `HoldTimeout`) when a rollback begins, else the kind's name.
    pub fn reason(self) -> &'static str {
        match self {
            NoticeKind::Started => "Started",
            NoticeKind::Stalled => "Stalled",
            NoticeKind::StepPassed => "StepPassed",
            NoticeKind::Promoted => "Promoted",
            NoticeKind::Held(_) => "Held",
            NoticeKind::Resumed => "Resumed",
            NoticeKind::RollbackBegan(r) => r.as_str(),
            NoticeKind::Restored => "Restored",
            NoticeKind::Succeeded => "Succeeded",
            NoticeKind::RolledBack => "RolledBack",
            NoticeKind::Failed => "Failed",
            NoticeKind::Approved => "Approved",
            NoticeKind::Deferred => "Deferred",
            NoticeKind::Warning => "CrossTeamEdges",
            NoticeKind::RollbackRefused => "RollbackRefused",
            NoticeKind::Report => "Report",
        }
    }

    /// A person should look: the release stopped, went back or failed.
    pub fn warning(self) -> bool {
        matches!(
            self,
            NoticeKind::Stalled
                | NoticeKind::Held(_)
                | NoticeKind::RollbackBegan(_)
                | NoticeKind::RolledBack
                | NoticeKind::Failed
                | NoticeKind::Deferred
                | NoticeKind::Warning
                | NoticeKind::RollbackRefused
        )
    }
}

/// A measurement the engine judged in this decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judged {
    pub service: String,
    pub metric: String,
    pub outcome: Outcome,
}

/// The engine's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// In the order they must be applied.
    pub actions: Vec<Action>,
    pub status: ReleaseStatus,
    /// When to decide again if nothing wakes the controller first.
    pub requeue_after: Option<Duration>,
    pub notices: Vec<Notice>,
    /// The measurements judged, for the shell's counters.
    pub judged: Vec<Judged>,
}

#[cfg(test)]
mod fingerprint {
    use super::*;

    fn spec() -> ReleaseSpec {
        crate::testing::spec()
            .services(&[("a", &[]), ("b", &["a"])])
            .steps([50, 100].map(|w| (w, Duration::from_secs(60))))
            .metric_at_most("error-rate", "up", 0.01)
            .build()
    }

    #[test]
    fn who_is_accountable_and_the_control_fields_are_not_what_is_released() {
        let s = spec();
        let mut edited = s.clone();
        edited.owner = "team-other".into();
        edited.summary = Some("fixed a typo".into());
        edited.services[1].owner = Some("team-b".into());
        edited.paused = Some(true);
        edited.abort = Some(false);
        edited.resume_hold = Some("hold-3".into());
        edited.hold_timeout = Some(Duration::from_secs(3600).into());
        edited.rollback = Some(true);
        assert_eq!(spec_hash(&edited), spec_hash(&s));
        assert!(spec_matches(&spec_hash(&s), &edited));
        // The go/no-go fields: read before each wave, or fixed in status at the start.
        edited.gates.push(crate::api::Gate {
            name: "smoke".into(),
            query: None,
            min: None,
            max: None,
            interval: None,
            approval: Some(true),
        });
        edited.gate_timeout = Some(Duration::from_secs(60).into());
        edited.window_override = Some(crate::api::WindowOverride {
            justification: "outage".into(),
        });
        edited.policy = Some("strict".into());
        edited.risk = Some(crate::api::Risk::High);
        edited.release_type = Some(crate::api::ReleaseType::Hotfix);
        edited.window = Some(crate::api::Window {
            days: vec![crate::api::Weekday::Monday],
            from: "09:00".into(),
            to: "17:00".into(),
            time_zone: None,
        });
        assert_eq!(spec_hash(&edited), spec_hash(&s));
        assert!(spec_matches(&spec_hash(&s), &edited));
    }

    #[test]
    fn every_part_of_what_is_released_counts() {
        let s = spec();
        let h = spec_hash(&s);
        type Edit = fn(&mut ReleaseSpec);
        let changes: Vec<(&str, Edit)> = vec![
            ("image", |s| {
                s.services[0]
                    .change
                    .images
                    .insert("main".into(), "a:v3".into());
            }),
            ("deployment", |s| s.services[0].deployment = "other".into()),
            ("dependsOn", |s| s.services[1].depends_on.clear()),
            ("steps", |s| {
                s.defaults.as_mut().unwrap().steps.as_mut().unwrap()[0].weight = 10;
            }),
            ("threshold", |s| {
                s.defaults
                    .as_mut()
                    .unwrap()
                    .analysis
                    .as_mut()
                    .unwrap()
                    .metrics[0]
                    .max = Some(0.5);
            }),
            ("prometheus", |s| {
                s.prometheus = Some(crate::api::PrometheusSpec {
                    address: "http://p:9090".into(),
                });
            }),
            ("a new service", |s| {
                let mut extra = s.services[0].clone();
                extra.name = "c".into();
                s.services.push(extra);
            }),
        ];
        for (what, change) in changes {
            let mut changed = s.clone();
            change(&mut changed);
            assert_ne!(spec_hash(&changed), h, "{what}");
            assert!(!spec_matches(&h, &changed), "{what}");
        }
    }

    #[test]
    fn a_release_started_by_the_earlier_operator_is_not_a_changed_spec() {
        let s = spec();
        assert!(spec_matches(&legacy_spec_hash(&s), &s));
        // Asking for a rollback mid-flight is refused with a Warning, never a changed spec.
        let mut asked = s.clone();
        asked.rollback = Some(true);
        assert!(spec_matches(&legacy_spec_hash(&s), &asked));
        let mut edited = s.clone();
        edited.services[0]
            .change
            .images
            .insert("main".into(), "a:v3".into());
        assert!(!spec_matches(&legacy_spec_hash(&s), &edited));
    }
}

//! What one decision works on: the inputs, the status being built, and the
//! actions, notices and wake-up time collected on the way.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{Action, Decision, Judged, Notice, NoticeKind, Observations, ServiceObservation};
use crate::api::{Phase, Plan, Release, ReleaseSpec, ReleaseStatus, ServicePhase, TimelineEntry};

/// Shortest requeue: a wake-up that is already due still waits this long, so a
/// shell that missed a measurement cannot spin.
const MIN_REQUEUE: Duration = Duration::from_secs(1);

pub(super) struct Ctx<'a> {
    pub release: &'a Release,
    /// The spec as the policy in status completes it ([`crate::policy::effective`]):
    /// what every rule reads steps and analysis from.
    pub spec: &'a ReleaseSpec,
    /// The spec as written: what is validated and fingerprinted.
    pub raw: &'a ReleaseSpec,
    pub obs: &'a Observations,
    pub now: Timestamp,
    pub st: ReleaseStatus,
    pub actions: Vec<Action>,
    pub notices: Vec<Notice>,
    pub judged: Vec<Judged>,
    pub requeue: Option<Duration>,
    /// Set when a Pending release is refused: the Stalled reason.
    pub stalled: Option<crate::api::StallReason>,
    /// Why a requested resume could not happen, for the status message.
    pub note: Option<String>,
    /// Services that wait before their start for their Deployment (paused or
    /// still rolling out), for the release's message.
    pub waiting: Vec<String>,
    /// A later wave that waits for its window or its gates: the phase to
    /// show when nothing else moves, and why.
    pub wave_waits: Option<(Phase, String)>,
    /// Each later wave's go/no-go in this decision: decided once for all its services.
    pub wave_verdicts: std::collections::BTreeMap<usize, bool>,
    /// The gates before a later wave timed out: the rollback's message.
    pub gate_timeout: Option<String>,
    /// A migration's forward Job failed or timed out on the way forward: the
    /// service and the rollback's message.
    pub breach: Option<(String, String)>,
    empty: ServiceObservation,
}

impl<'a> Ctx<'a> {
    pub fn new(
        release: &'a Release,
        spec: &'a ReleaseSpec,
        obs: &'a Observations,
        now: Timestamp,
        st: ReleaseStatus,
    ) -> Self {
        let mut st = st;
        st.observed_generation = release.metadata.generation;
        Ctx {
            release,
            spec,
            raw: &release.spec,
            obs,
            now,
            st,
            actions: Vec::new(),
            notices: Vec::new(),
            judged: Vec::new(),
            requeue: None,
            stalled: None,
            note: None,
            waiting: Vec::new(),
            wave_waits: None,
            wave_verdicts: Default::default(),
            gate_timeout: None,
            breach: None,
            empty: ServiceObservation::default(),
        }
    }

    pub fn into_decision(self) -> Decision {
        Decision {
            actions: self.actions,
            status: self.st,
            requeue_after: self.requeue,
            notices: self.notices,
            judged: self.judged,
        }
    }

    pub fn time(&self) -> Time {
        Time(self.now)
    }

    pub fn phase(&self) -> Phase {
        self.st.phase.unwrap_or_default()
    }

    pub fn set_phase(&mut self, phase: Phase) {
        self.st.phase = Some(phase);
    }

    pub fn release_name(&self) -> &str {
        self.release.metadata.name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> &str {
        self.release
            .metadata
            .namespace
            .as_deref()
            .unwrap_or_default()
    }

    /// The observation of service `name`; a service the shell did not report has no objects.
    pub fn seen(&self, name: &str) -> &ServiceObservation {
        self.obs.services.get(name).unwrap_or(&self.empty)
    }

    /// Position of `name` in `status.services`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.st.services.iter().position(|s| s.name == name)
    }

    pub fn service_phase(&self, name: &str) -> Option<ServicePhase> {
        self.index(name).map(|i| self.st.services[i].phase)
    }

    /// The plan in status (fixed when the release started), else the spec's.
    pub fn plan(&self) -> Plan {
        self.st
            .plan
            .clone()
            .or_else(|| crate::plan::plan(self.spec).ok())
            .unwrap_or_default()
    }

    /// Queue `action` once: rules that converge on the same state may ask twice.
    pub fn act(&mut self, action: Action) {
        if !self.actions.contains(&action) {
            self.actions.push(action);
        }
    }

    /// End the release `Failed` now, for a person, with `message`.
    pub fn fail(&mut self, service: Option<&str>, message: String) {
        self.set_phase(Phase::Failed);
        self.st.finished_at = Some(self.time());
        self.requeue = None;
        self.st.message = Some(message.clone());
        self.record("Failed", service, message.clone());
        self.notice(NoticeKind::Failed, service, message);
    }

    pub fn wake_in(&mut self, after: Duration) {
        let after = after.max(MIN_REQUEUE);
        self.requeue = Some(self.requeue.map_or(after, |r| r.min(after)));
    }

    pub fn wake_at(&mut self, at: Timestamp) {
        self.wake_in(until(self.now, at));
    }

    pub fn notice(&mut self, kind: NoticeKind, service: Option<&str>, message: String) {
        self.notices.push(Notice {
            kind,
            service: service.map(str::to_owned),
            message,
        });
    }

    pub fn record(&mut self, reason: &str, service: Option<&str>, message: String) {
        let at = self.time();
        self.st.timeline.push(TimelineEntry {
            at,
            reason: reason.to_owned(),
            service: service.map(str::to_owned),
            message,
        });
    }

    /// The Release is being deleted: it is reversed like an abort, then let go.
    pub fn deleting(&self) -> bool {
        self.release.metadata.deletion_timestamp.is_some()
    }

    pub fn spec_changed(&self) -> bool {
        self.st
            .spec_hash
            .as_deref()
            .is_some_and(|h| !super::spec_matches(h, self.raw))
    }

    /// The release has made its first change (its first wave began).
    pub fn started(&self) -> bool {
        self.st.started_at.is_some()
    }

    /// The approval rules of the profile in force (none: any approval counts).
    pub fn approval_rules(&self) -> Option<&crate::api::Approvals> {
        self.st.policy.as_ref()?.approvals()
    }

    /// The verdict on the approvals of `target`.
    pub fn approval(
        &self,
        target: &crate::policy::approval::Target,
    ) -> crate::policy::approval::Verdict<'a> {
        crate::policy::approval::verdict(
            self.release,
            self.approval_rules(),
            &self.obs.approvals,
            target,
        )
    }
}

pub(super) fn plus(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

pub(super) fn until(now: Timestamp, t: Timestamp) -> Duration {
    Duration::try_from(t.duration_since(now)).unwrap_or(Duration::ZERO)
}

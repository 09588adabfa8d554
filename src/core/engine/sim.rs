//! A simulated cluster and controller loop around the pure engine, for tests,
//! property tests and benchmarks: full release trains in microseconds.
//!
//! The cluster "applies" actions the way the real shell does, with one
//! controller pass of delay before a canary is ready or a rollout finishes, and
//! the clock jumps to the engine's requested wake-up. Measurements come from
//! a function of (request, time), so a scenario says which version is bad when.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use kube::core::ObjectMeta;

use super::{
    Action, ApprovalObservation, CanaryObservation, Decision, FieldWriter, FlagObservation,
    GateRequest, GateTaken, JobKind, JobObservation, MeasurementRequest, Observations,
    PolicyObservation, QueryResult, RouteObservation, ServiceObservation, StableObservation, Taken,
    TemplateField, TemplateState, decide, due_gates, due_measurements,
};
use crate::api::{
    CREATED_BY_ANNOTATION, Phase, Release, ReleaseApprovalSpec, ReleasePolicySpec, ReleaseSpec,
    ServicePhase, StepRef,
};
use crate::preflight::Claimant;

/// One service's objects in the simulated cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct SimService {
    /// The stable Deployment exists.
    pub exists: bool,
    pub containers: Vec<String>,
    pub template: TemplateState,
    pub rolled_out: bool,
    /// `spec.paused`: a rollout does not finish while it is set.
    pub paused: bool,
    /// Its rollout passed its progress deadline.
    pub rollout_failed: bool,
    pub canary: Option<CanaryObservation>,
    pub baseline_recorded: bool,
    /// Another Release, in flight, lists this service's Deployment.
    pub claimed_by: Option<String>,
    pub route: Option<RouteObservation>,
    /// A migration's forward Job, as the shell would observe it.
    pub forward_job: Option<JobObservation>,
    /// A migration's rollback Job.
    pub rollback_job: Option<JobObservation>,
    /// Every Job created for this service, in order: a Job runs once.
    pub jobs_created: Vec<JobKind>,
    /// How the forward Job fails at settle (its reason and last log lines) instead of completing.
    pub forward_fails: Option<(String, Option<String>)>,
    /// How the rollback Job fails at settle.
    pub rollback_fails: Option<(String, Option<String>)>,
    /// Its Jobs run and never finish.
    pub jobs_hang: bool,
    /// The image of each container of its baseline (`<service>:v1` for each container the
    /// change names); with the new version the change's images replace them.
    pub images: BTreeMap<String, String>,
    /// The images someone else wrote into the Deployment, as the shell would see them.
    pub fields: Vec<TemplateField>,
}

impl SimService {
    /// A service with no objects at all.
    fn absent() -> SimService {
        SimService {
            exists: false,
            containers: Vec::new(),
            template: TemplateState::Baseline,
            rolled_out: true,
            paused: false,
            rollout_failed: false,
            canary: None,
            baseline_recorded: false,
            claimed_by: None,
            route: None,
            forward_job: None,
            rollback_job: None,
            jobs_created: Vec::new(),
            forward_fails: None,
            rollback_fails: None,
            jobs_hang: false,
            images: BTreeMap::new(),
            fields: Vec::new(),
        }
    }

    fn job(&mut self, kind: JobKind) -> &mut Option<JobObservation> {
        match kind {
            JobKind::Forward => &mut self.forward_job,
            JobKind::Rollback => &mut self.rollback_job,
        }
    }
}

/// How a controller pass goes wrong, to prove crash safety.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    /// Nothing goes wrong.
    None,
    /// The first `n` actions are applied, then the process dies before writing status.
    AfterActions(usize),
    /// The status is written, then the process dies before applying any action.
    BeforeActions,
}

/// What one controller pass saw and decided.
#[derive(Clone, Debug)]
pub struct Pass {
    pub now: Timestamp,
    pub before: Release,
    pub observations: Observations,
    pub decision: Decision,
}

type Measure = Box<dyn FnMut(&MeasurementRequest, Timestamp) -> QueryResult>;
type GateCheck = Box<dyn FnMut(&GateRequest, Timestamp) -> QueryResult>;

/// A Release, a cluster and a clock.
pub struct Sim {
    pub release: Release,
    pub cluster: BTreeMap<String, SimService>,
    pub now: Timestamp,
    pub measure: Measure,
    /// What a `compare` metric's query returns for the stable pods (`measure` gives the canary's).
    pub measure_stable: Measure,
    /// What each query gate returns when the engine asks for it.
    pub gate: GateCheck,
    /// The ReleasePolicy that applies, as the shell would resolve it.
    pub policy: PolicyObservation,
    /// The ReleaseApprovals naming the release, as the API server admitted them.
    pub approvals: Vec<ApprovalObservation>,
    /// Every pass, oldest first.
    pub passes: Vec<Pass>,
    /// Longest the clock jumps when the engine asks for no wake-up (paused, held).
    pub idle_step: Duration,
    /// The ConfigMaps in the namespace, by name: their data.
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// Other Releases in the namespace, for the claim rules.
    pub others: Vec<Claimant>,
    /// The notification receivers that apply, and those that cannot be used.
    pub receivers: Vec<crate::api::Receiver>,
    pub receiver_problems: Vec<String>,
    /// The operator's rules on what queries may reach.
    pub reach: crate::analysis::tenancy::Reach,
}

/// `2026-11-26T10:00:00Z`, the simulated start of every test.
pub fn epoch() -> Timestamp {
    Timestamp::from_second(1_795_687_200).expect("valid")
}

impl Sim {
    /// Release `spec` as `shop/train` (generation 1) into a cluster where every
    /// Deployment exists with the containers its change names, every route is
    /// in place, and every measurement returns `0.0`.
    pub fn new(spec: ReleaseSpec) -> Sim {
        let cluster = spec
            .services
            .iter()
            .map(|s| {
                let mut containers: Vec<String> = s
                    .change
                    .images
                    .keys()
                    .chain(s.change.env.keys())
                    .cloned()
                    .collect();
                containers.sort();
                containers.dedup();
                let gateway = s
                    .traffic
                    .as_ref()
                    .and_then(|t| t.gateway_api.as_ref())
                    .is_some();
                let images = s
                    .change
                    .images
                    .keys()
                    .map(|c| (c.clone(), format!("{}:v1", s.name)))
                    .collect();
                let svc = SimService {
                    exists: s.deployment().is_some(),
                    images,
                    containers,
                    route: gateway.then_some(RouteObservation {
                        found: true,
                        drifted: false,
                    }),
                    ..SimService::absent()
                };
                (s.name.clone(), svc)
            })
            .collect();
        // Every flag's ConfigMap exists, without its keys.
        let config_maps = spec
            .services
            .iter()
            .filter_map(|s| s.flag.as_ref()?.config_map.clone())
            .map(|cm| (cm, BTreeMap::new()))
            .collect();
        let release = Release {
            metadata: ObjectMeta {
                name: Some("train".into()),
                namespace: Some("shop".into()),
                generation: Some(1),
                ..Default::default()
            },
            spec,
            status: None,
        };
        Sim {
            release,
            cluster,
            now: epoch(),
            measure: Box::new(|_, _| QueryResult::Value(0.0)),
            measure_stable: Box::new(|_, _| QueryResult::Value(0.0)),
            gate: Box::new(|_, _| QueryResult::Value(0.0)),
            policy: PolicyObservation::None,
            approvals: Vec::new(),
            passes: Vec::new(),
            idle_step: Duration::from_secs(30),
            config_maps,
            others: Vec::new(),
            receivers: Vec::new(),
            receiver_problems: Vec::new(),
            reach: Default::default(),
        }
    }

    /// The `kind` Job of `service` fails at settle with `reason` and, when
    /// given, `logs` as its last log lines.
    pub fn failing_job(
        mut self,
        service: &str,
        kind: JobKind,
        reason: &str,
        logs: Option<&str>,
    ) -> Sim {
        let failure = Some((reason.to_owned(), logs.map(str::to_owned)));
        let s = self.svc(service);
        match kind {
            JobKind::Forward => s.forward_fails = failure,
            JobKind::Rollback => s.rollback_fails = failure,
        }
        self
    }

    /// The Jobs of `service` run and never finish.
    pub fn hanging_job(mut self, service: &str) -> Sim {
        self.svc(service).jobs_hang = true;
        self
    }

    /// ConfigMap `name` holds `data` (created if it did not exist).
    pub fn with_config_map(mut self, name: &str, data: &[(&str, &str)]) -> Sim {
        self.config_maps.insert(
            name.to_owned(),
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        self
    }

    /// ConfigMap `name` does not exist.
    pub fn without_config_map(mut self, name: &str) -> Sim {
        self.config_maps.remove(name);
        self
    }

    /// Another Release, `other`, in `phase`, sets keys of ConfigMap `config_map`.
    pub fn config_map_claimed_by(mut self, config_map: &str, other: &str, phase: Phase) -> Sim {
        self.others.push(Claimant {
            name: other.to_owned(),
            phase,
            created: Some(epoch()),
            deployments: Vec::new(),
            config_maps: vec![config_map.to_owned()],
            refused: false,
        });
        self
    }

    /// How many `kind` Jobs were created for `service`.
    pub fn jobs_created(&self, service: &str, kind: JobKind) -> usize {
        self.cluster
            .get(service)
            .map_or(0, |s| s.jobs_created.iter().filter(|k| **k == kind).count())
    }

    /// The data of ConfigMap `name`, if it exists.
    pub fn config_map(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        self.config_maps.get(name)
    }

    pub fn with_measure(
        mut self,
        f: impl FnMut(&MeasurementRequest, Timestamp) -> QueryResult + 'static,
    ) -> Sim {
        self.measure = Box::new(f);
        self
    }

    /// The stable pods' value of each `compare` metric.
    pub fn with_stable_measure(
        mut self,
        f: impl FnMut(&MeasurementRequest, Timestamp) -> QueryResult + 'static,
    ) -> Sim {
        self.measure_stable = Box::new(f);
        self
    }

    pub fn with_gate(
        mut self,
        f: impl FnMut(&GateRequest, Timestamp) -> QueryResult + 'static,
    ) -> Sim {
        self.gate = Box::new(f);
        self
    }

    /// Follow the ReleasePolicy `name`.
    pub fn with_policy(mut self, name: &str, spec: ReleasePolicySpec) -> Sim {
        self.policy = PolicyObservation::Found {
            name: name.to_owned(),
            spec,
        };
        self
    }

    /// Start the clock at `at` instead of [`epoch`].
    pub fn at(mut self, at: Timestamp) -> Sim {
        self.now = at;
        self
    }

    /// The Release was created by `user` (annotation `signalman.dev/created-by`).
    pub fn created_by(mut self, user: &str) -> Sim {
        self.release
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(CREATED_BY_ANNOTATION.to_owned(), user.to_owned());
        self
    }

    /// `user` asks for the release to be rolled back, as `kubectl signalman rollback` does:
    /// `spec.rollback: true` and, when known, who asked (annotation `signalman.dev/rollback-by`).
    pub fn request_rollback(&mut self, user: Option<&str>) {
        if let Some(user) = user {
            self.release
                .metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(
                    crate::api::ROLLBACK_BY_ANNOTATION.to_owned(),
                    user.to_owned(),
                );
        }
        self.edit(|s| s.rollback = Some(true));
    }

    /// `manager` sets container `container` of the Deployment of `service` to
    /// `image`, neither the baseline's nor the new version's, with an update.
    pub fn change_deployment(
        &mut self,
        service: &str,
        container: &str,
        image: &str,
        manager: &str,
    ) {
        let field = self.image_field(service, container, image, manager, "Update");
        let s = self.svc(service);
        s.template = TemplateState::Drifted;
        s.fields = vec![field];
    }

    /// `manager` server-side applies the baseline's image of `container` back
    /// into the Deployment of `service` now, as a GitOps tool re-applying the
    /// old version would.
    pub fn reapply_baseline(&mut self, service: &str, container: &str, manager: &str) {
        let old = self.cluster[service]
            .images
            .get(container)
            .cloned()
            .unwrap_or_default();
        let field = self.image_field(service, container, &old, manager, "Apply");
        let s = self.svc(service);
        if s.template != TemplateState::Baseline {
            s.template = TemplateState::Baseline;
            s.rolled_out = false;
        }
        s.fields = vec![field];
    }

    fn image_field(
        &self,
        service: &str,
        container: &str,
        live: &str,
        manager: &str,
        operation: &str,
    ) -> TemplateField {
        let new = self
            .release
            .spec
            .service(service)
            .and_then(|svc| svc.change.images.get(container).cloned());
        let baseline = self
            .cluster
            .get(service)
            .and_then(|s| s.images.get(container).cloned());
        TemplateField {
            container: container.to_owned(),
            env: None,
            live: Some(live.to_owned()),
            new: new.or_else(|| baseline.clone()),
            baseline,
            writer: Some(FieldWriter {
                manager: manager.to_owned(),
                operation: operation.to_owned(),
                time: Some(self.now),
            }),
        }
    }

    /// `approver` approves the gate `gate` now.
    pub fn approve_gate(&mut self, approver: &str, gate: &str) {
        self.approve(approver, |a| a.gate = Some(gate.to_owned()));
    }

    /// `approver` approves step `step` (from 1) of `service` now.
    pub fn approve_step(&mut self, approver: &str, service: &str, step: i32) {
        self.approve(approver, |a| {
            a.step = Some(StepRef {
                service: service.to_owned(),
                step,
            })
        });
    }

    /// `approver` approves the window override now.
    pub fn approve_window(&mut self, approver: &str) {
        self.approve(approver, |a| a.window = Some(true));
    }

    fn approve(&mut self, approver: &str, what: impl FnOnce(&mut ReleaseApprovalSpec)) {
        let mut spec = ReleaseApprovalSpec {
            release: self.release.metadata.name.clone().unwrap_or_default(),
            approver: approver.to_owned(),
            comment: format!("checked by {approver}"),
            ..Default::default()
        };
        what(&mut spec);
        self.approvals.push(ApprovalObservation {
            name: format!("approval-{}", self.approvals.len() + 1),
            spec,
            at: Some(self.now),
        });
    }

    pub fn phase(&self) -> Phase {
        self.release
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .unwrap_or_default()
    }

    pub fn service_phase(&self, name: &str) -> Option<ServicePhase> {
        let st = self.release.status.as_ref()?;
        st.services.iter().find(|s| s.name == name).map(|s| s.phase)
    }

    /// Change the spec as a user would (the generation moves).
    pub fn edit(&mut self, f: impl FnOnce(&mut ReleaseSpec)) {
        f(&mut self.release.spec);
        let g = self.release.metadata.generation.unwrap_or(1);
        self.release.metadata.generation = Some(g + 1);
    }

    /// What the shell would observe now, with `measurements` taken.
    pub fn observe(&self, measurements: Vec<Taken>) -> Observations {
        let services = self
            .cluster
            .iter()
            .map(|(name, s)| {
                let mut images = s.images.clone();
                if s.template == TemplateState::New
                    && let Some(svc) = self.release.spec.service(name)
                {
                    images.extend(svc.change.images.clone());
                }
                let o = ServiceObservation {
                    stable: s.exists.then(|| StableObservation {
                        containers: s.containers.clone(),
                        template: s.template,
                        rolled_out: s.rolled_out,
                        replicas: 3,
                        paused: s.paused,
                        rollout_failed: s.rollout_failed,
                        images,
                        fields: s.fields.clone(),
                    }),
                    canary: s.canary.clone(),
                    baseline_recorded: s.baseline_recorded,
                    route: s.route.clone(),
                    forward_job: s.forward_job.clone(),
                    rollback_job: s.rollback_job.clone(),
                    flag: self.flag_seen(name),
                };
                (name.clone(), o)
            })
            .collect();
        // A claim in the simulated cluster is another Release in flight on that
        // service's Deployment, decided by the same rule as in a real cluster.
        let releases = self
            .cluster
            .iter()
            .filter_map(|(name, s)| {
                let other = s.claimed_by.clone()?;
                let deployment = self.release.spec.service(name)?.deployment()?.to_owned();
                Some(Claimant {
                    name: other,
                    phase: Phase::Progressing,
                    created: None,
                    deployments: vec![deployment],
                    config_maps: Vec::new(),
                    refused: false,
                })
            })
            .chain(self.others.iter().cloned())
            .collect();
        Observations {
            services,
            measurements,
            releases,
            refused: None,
            policy: self.policy.clone(),
            approvals: self.approvals.clone(),
            gates: Vec::new(),
            cross_team_limit: None,
            receiver_problems: self.receiver_problems.clone(),
            receivers: self.receivers.clone(),
            reach: self.reach.clone(),
        }
    }

    /// Apply actions the way the shell does: each takes effect at once, but a
    /// canary becomes ready and a rollout finishes only at the next [`Sim::settle`].
    pub fn apply(&mut self, actions: &[Action]) {
        for a in actions {
            match a {
                // The shell creates a Job only if it does not exist.
                Action::CreateJob { service, job } => {
                    let s = self.svc(service);
                    if s.job(*job).is_none() {
                        *s.job(*job) = Some(JobObservation::Running);
                        s.jobs_created.push(*job);
                    }
                }
                Action::StopJob { service, job } => *self.svc(service).job(*job) = None,
                Action::SetFlag { service } => {
                    let Some(flag) = self
                        .release
                        .spec
                        .service(service)
                        .and_then(|s| s.flag.clone())
                    else {
                        continue;
                    };
                    let cm = flag.config_map.unwrap_or_default();
                    if let Some(data) = self.config_maps.get_mut(&cm) {
                        data.extend(flag.keys);
                    }
                }
                Action::RestoreFlag { service } => {
                    let Some(flag) = self
                        .release
                        .spec
                        .service(service)
                        .and_then(|s| s.flag.clone())
                    else {
                        continue;
                    };
                    let baseline = self
                        .release
                        .status
                        .as_ref()
                        .and_then(|st| st.services.iter().find(|s| &s.name == service))
                        .and_then(|s| s.flag_baseline.clone())
                        .unwrap_or_default();
                    let cm = flag.config_map.unwrap_or_default();
                    if let Some(data) = self.config_maps.get_mut(&cm) {
                        for k in flag.keys.keys() {
                            match baseline.values.get(k) {
                                Some(v) => {
                                    data.insert(k.clone(), v.clone());
                                }
                                None => {
                                    data.remove(k);
                                }
                            }
                        }
                    }
                }
                Action::RecordBaseline { service } => self.svc(service).baseline_recorded = true,
                Action::DeleteBaseline { service } => self.svc(service).baseline_recorded = false,
                Action::SetCanaryWeight { service, weight } => {
                    let s = self.svc(service);
                    let before = s.canary.as_ref();
                    let ready =
                        *weight == 0 || before.is_some_and(|c| c.weight == *weight && c.ready);
                    // Until the canary's pods are there, the traffic is split as before.
                    let effective = if ready {
                        *weight
                    } else {
                        before.map_or(0, |c| c.effective)
                    };
                    s.canary = Some(CanaryObservation {
                        weight: *weight,
                        ready,
                        effective,
                    });
                }
                Action::PromoteStable { service } => {
                    let s = self.svc(service);
                    if s.template != TemplateState::New {
                        s.template = TemplateState::New;
                        s.rolled_out = false;
                    }
                    s.fields.clear();
                }
                Action::RemoveCanary { service } => self.svc(service).canary = None,
                Action::RestoreBaseline { service } => {
                    let s = self.svc(service);
                    if s.template != TemplateState::Baseline {
                        s.template = TemplateState::Baseline;
                        s.rolled_out = false;
                    }
                    s.fields.clear();
                }
            }
        }
    }

    /// Pods come up: canaries become ready, rollouts finish.
    pub fn settle(&mut self) {
        for s in self.cluster.values_mut() {
            if let Some(c) = &mut s.canary {
                c.ready = true;
                c.effective = c.weight;
            }
            s.rolled_out |= !s.paused && !s.rollout_failed;
            for kind in [JobKind::Forward, JobKind::Rollback] {
                let fails = match kind {
                    JobKind::Forward => s.forward_fails.clone(),
                    JobKind::Rollback => s.rollback_fails.clone(),
                };
                let hangs = s.jobs_hang;
                let job = s.job(kind);
                if *job != Some(JobObservation::Running) || hangs {
                    continue;
                }
                *job = Some(match fails {
                    Some((reason, logs)) => JobObservation::Failed { reason, logs },
                    None => JobObservation::Succeeded,
                });
            }
        }
    }

    /// What the shell would see of service `name`'s flag: its keys in its ConfigMap.
    fn flag_seen(&self, name: &str) -> Option<FlagObservation> {
        let flag = self.release.spec.service(name)?.flag.as_ref()?;
        let data = self.config_maps.get(flag.config_map.as_deref()?)?;
        Some(FlagObservation {
            values: data
                .iter()
                .filter(|(k, _)| flag.keys.contains_key(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }

    fn svc(&mut self, name: &str) -> &mut SimService {
        self.cluster
            .entry(name.to_owned())
            .or_insert_with(SimService::absent)
    }

    /// One controller pass: take the due measurements, decide, apply, store the
    /// status, then let the clock run to the requested wake-up and the cluster settle.
    pub fn pass(&mut self) -> &Decision {
        self.pass_with(Crash::None)
    }

    pub fn pass_with(&mut self, crash: Crash) -> &Decision {
        let due = due_measurements(&self.release, self.now);
        // As the shell: a compare metric's query runs once per track.
        let spec = crate::policy::effective(&self.release).into_owned();
        let compares = |r: &MeasurementRequest| {
            let analysis = if r.service.is_empty() {
                spec.verify.as_ref().map(|v| v.analysis.clone())
            } else {
                spec.service(&r.service).map(|s| spec.analysis_of(s))
            };
            analysis.is_some_and(|a| {
                a.metrics
                    .iter()
                    .any(|m| m.name == r.metric && m.compare.is_some())
            })
        };
        let taken = due
            .iter()
            .map(|r| Taken {
                service: r.service.clone(),
                metric: r.metric.clone(),
                step: r.step,
                result: (self.measure)(r, self.now),
                stable: compares(r).then(|| (self.measure_stable)(r, self.now)),
                query: None,
                at: self.now,
            })
            .collect();
        let mut observations = self.observe(taken);
        observations.gates = due_gates(&self.release, self.now)
            .iter()
            .map(|r| GateTaken {
                gate: r.gate.clone(),
                result: (self.gate)(r, self.now),
                query: None,
                at: self.now,
            })
            .collect();
        let before = self.release.clone();
        let decision = decide(&self.release, &observations, self.now);
        match crash {
            Crash::None => {
                self.apply(&decision.actions);
                self.release.status = Some(decision.status.clone());
            }
            Crash::AfterActions(n) => {
                let n = n.min(decision.actions.len());
                self.apply(&decision.actions[..n]);
            }
            Crash::BeforeActions => self.release.status = Some(decision.status.clone()),
        }
        let wait = decision.requeue_after.unwrap_or(self.idle_step);
        self.passes.push(Pass {
            now: self.now,
            before,
            observations,
            decision,
        });
        self.now = super::context::plus(self.now, wait);
        self.settle();
        &self.passes.last().expect("just pushed").decision
    }

    /// Passes until the release is final (or `max` passes), returning the final phase.
    pub fn run(&mut self, max: usize) -> Phase {
        for _ in 0..max {
            if self.phase().is_final() {
                break;
            }
            self.pass();
        }
        self.phase()
    }

    /// Passes while `until` is false (at most `max`); true if it became true.
    pub fn run_until(&mut self, max: usize, mut until: impl FnMut(&Sim) -> bool) -> bool {
        for _ in 0..max {
            if until(self) {
                return true;
            }
            self.pass();
        }
        until(self)
    }
}

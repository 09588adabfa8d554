//! A release on its way: waves, steps, bakes, measurements and promotion.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::context::{Ctx, plus};
use super::{Action, CONVERGE, MeasurementRequest, QueryResult, TemplateState, hold, rollback};
use super::{Judged, NoticeKind};
use crate::analysis::{judge, measured_at, threshold};
use crate::api::{
    Analysis, HoldReason, Measurement, MemberKind, Metric, MetricTally, NoDataPolicy, Outcome,
    Phase, Release, RollbackReason, ServicePhase, StallReason, default::MEASUREMENTS_KEPT,
};
use crate::text;

/// How soon a service waiting for a person to fix its Deployment looks
/// again when no watch event comes first.
const PERSON_RECHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// The measurements due now: for every service baking a step, each metric one
/// `interval` after its last measurement in this step (or after the bake began),
/// but no `compare` metric at a weight of 100 (nothing left to compare with);
/// while the train is verified, each verify metric likewise, with `service` empty.
/// Nothing is due while the release is paused, held or aborted, or its spec changed.
pub fn due_measurements(release: &Release, now: Timestamp) -> Vec<MeasurementRequest> {
    let Some(st) = &release.status else {
        return Vec::new();
    };
    let stopping = release.spec.paused == Some(true)
        || release.spec.abort == Some(true)
        || release.metadata.deletion_timestamp.is_some();
    let moving = matches!(
        st.phase,
        Some(Phase::Progressing | Phase::AwaitingGates | Phase::AwaitingWindow | Phase::Verifying)
    );
    if !moving || st.started_at.is_none() || st.hold.is_some() || stopping {
        return Vec::new();
    }
    if st
        .spec_hash
        .as_deref()
        .is_some_and(|h| !super::spec_matches(h, &release.spec))
    {
        return Vec::new();
    }
    let spec = crate::policy::effective(release);
    if st.phase == Some(Phase::Verifying) {
        return super::verify::due(&spec, st, now);
    }
    let mut out = Vec::new();
    for s in &st.services {
        let (ServicePhase::Progressing, Some(step), Some(baked)) =
            (s.phase, s.step, &s.bake_started_at)
        else {
            continue;
        };
        let Some(svc) = spec.service(&s.name) else {
            continue;
        };
        let analysis = measured_at(&spec.analysis_of(svc), s.weight);
        for m in &analysis.metrics {
            let last = s
                .tally
                .iter()
                .find(|t| t.metric == m.name)
                .and_then(|t| t.last_at.as_ref());
            let due = plus(last.unwrap_or(baked).0, analysis.interval());
            if now >= due {
                out.push(MeasurementRequest {
                    service: s.name.clone(),
                    metric: m.name.clone(),
                    step,
                });
            }
        }
    }
    out
}

pub(super) fn run(cx: &mut Ctx) {
    let spec_changed = cx.spec_changed();
    let was_paused = cx.phase() == Phase::Paused;

    let stopping = cx.spec.paused == Some(true) || cx.spec.abort == Some(true) || cx.deleting();
    let moving = matches!(
        cx.phase(),
        Phase::Progressing | Phase::AwaitingGates | Phase::AwaitingWindow
    );
    if moving && cx.st.hold.is_none() && !spec_changed && !stopping {
        let verdict = ingest(cx);
        if let Some(breach) = verdict.breach {
            return breached(cx, breach);
        }
        if let Some((reason, service, message)) = verdict.hold {
            hold::place(cx, reason, service, message);
        }
    }
    if stopped(cx, spec_changed, was_paused) {
        return;
    }
    if was_paused {
        hold::unpause(cx);
    }
    cx.set_phase(Phase::Progressing);
    advance(cx);
    if let Some((service, message)) = cx.breach.take() {
        // Re-decided by the rollback; only stopping a Job past its timeout stands.
        cx.actions.retain(|a| matches!(a, Action::StopJob { .. }));
        return rollback::begin(cx, RollbackReason::Breach, Some(service), message, None);
    }
    if let Some(message) = cx.gate_timeout.take() {
        // Re-decided by the rollback: nothing asked for on the way forward stands.
        cx.actions.clear();
        return rollback::begin(cx, RollbackReason::GateTimeout, None, message, None);
    }
    let anything_moving = cx
        .st
        .services
        .iter()
        .any(|s| matches!(s.phase, ServicePhase::Progressing | ServicePhase::Promoting));
    if cx.phase() == Phase::Progressing
        && !anything_moving
        && let Some((phase, message)) = cx.wave_waits.take()
    {
        cx.set_phase(phase);
        cx.st.message = Some(message);
    }
}

/// What comes before any progress, mid-train as in verification: a deletion
/// or an abort reverses the train, a hold that lasted too long too; a hold
/// (placed now for a changed spec or drift, or in force) and a pause stop it.
/// True when one of them decided this pass.
pub(super) fn stopped(cx: &mut Ctx, spec_changed: bool, was_paused: bool) -> bool {
    // Deleting a Release in flight must not leave half the train on the new
    // version: it is reversed like an abort before the Release goes.
    if cx.deleting() {
        rollback::begin(
            cx,
            RollbackReason::Deleted,
            None,
            "the Release was deleted while in flight: reversing the train before it goes"
                .to_owned(),
            None,
        );
        return true;
    }
    if cx.spec.abort == Some(true) {
        rollback::begin(
            cx,
            RollbackReason::Abort,
            None,
            "aborted by spec.abort".to_owned(),
            None,
        );
        return true;
    }
    if let Some(expired) = hold::expired(cx) {
        rollback::begin(cx, RollbackReason::HoldTimeout, expired.0, expired.1, None);
        return true;
    }
    if hold::check(cx, spec_changed) {
        return true;
    }
    if cx.spec.paused == Some(true) {
        if !was_paused {
            cx.record("Paused", None, "paused by spec.paused".to_owned());
        }
        cx.set_phase(Phase::Paused);
        return true;
    }
    false
}

/// A metric broke `failureLimit`: the train is reversed, and the cause names
/// the metric, the value that broke the limit and the bound it crossed.
pub(super) fn breached(cx: &mut Ctx, breach: Breach) {
    rollback::begin(
        cx,
        RollbackReason::Breach,
        breach.service,
        breach.message,
        breach.first_deviation,
    );
    if let Some(cause) = cx.st.rollback.as_mut() {
        cause.metric = Some(breach.metric);
        cause.value = breach.value;
        cause.threshold = Some(breach.threshold);
    }
}

/// A metric beyond `failureLimit`.
pub(super) struct Breach {
    /// `None` for verification: the whole train breached.
    pub service: Option<String>,
    pub message: String,
    pub first_deviation: Option<Time>,
    pub metric: String,
    /// The failing value that broke the limit, when the query returned one.
    pub value: Option<f64>,
    /// [`threshold`]: the bound it crossed, in words.
    pub threshold: String,
}

#[derive(Default)]
pub(super) struct Verdict {
    pub breach: Option<Breach>,
    /// The reason, the service (`None` for verification) and the message.
    pub hold: Option<(HoldReason, Option<String>, String)>,
}

/// One measurement judged, as status keeps it: the canary's value, and the
/// stable pods' for a `compare` metric.
pub(super) fn measurement(metric: &Metric, t: &super::Taken, no_data: NoDataPolicy) -> Measurement {
    let outcome = judge(metric, &t.result, t.stable.as_ref(), no_data);
    let (value, note) = seen(&t.result);
    let (stable_value, stable_note) = match (&metric.compare, &t.stable) {
        (None, _) => (None, None),
        (Some(_), None) => (None, Some("the stable pods were not measured".to_owned())),
        (Some(_), Some(r)) => {
            let (v, note) = seen(r);
            (v, note.map(|n| format!("stable pods: {n}")))
        }
    };
    let message = match (note, stable_note) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    };
    Measurement {
        metric: t.metric.clone(),
        step: t.step,
        value,
        stable_value,
        outcome,
        message,
        at: Time(t.at),
    }
}

/// A query's number, or why there is none.
fn seen(r: &QueryResult) -> (Option<f64>, Option<String>) {
    match r {
        QueryResult::Value(v) if v.is_nan() => (
            None,
            Some("the query returned NaN (no traffic?)".to_owned()),
        ),
        QueryResult::Value(v) => (Some(*v), None),
        QueryResult::NoData => (None, Some("the query returned no data".to_owned())),
        QueryResult::Error(e) => (None, Some(e.clone())),
    }
}

/// Count `m`, taken by running `query`, into its metric's tally.
pub(super) fn count(tallies: &mut Vec<MetricTally>, m: &Measurement, query: Option<&String>) {
    let tally = match tallies.iter().position(|t| t.metric == m.metric) {
        Some(p) => &mut tallies[p],
        None => {
            tallies.push(MetricTally {
                metric: m.metric.clone(),
                ..Default::default()
            });
            tallies.last_mut().expect("just pushed")
        }
    };
    tally.last_at = Some(m.at.clone());
    if let Some(q) = query {
        tally.query = Some(q.clone());
    }
    match m.outcome {
        Outcome::Pass => tally.passed += 1,
        Outcome::Fail => {
            tally.failed += 1;
            tally.first_failed_at.get_or_insert(m.at.clone());
        }
        Outcome::Inconclusive => tally.inconclusive += 1,
        Outcome::Error => tally.errors += 1,
    }
}

/// Keep `m` among the most recent measurements.
pub(super) fn keep(measurements: &mut Vec<Measurement>, m: Measurement) {
    measurements.push(m);
    let excess = measurements.len().saturating_sub(MEASUREMENTS_KEPT);
    measurements.drain(..excess);
}

/// What a failed measurement showed: its value, else why it has none.
pub(super) fn shown(m: &Measurement) -> String {
    m.value
        .map_or_else(|| m.message.clone().unwrap_or_default(), |v| format!("{v}"))
}

/// A limit of `analysis` that `t` went beyond.
pub(super) enum Beyond {
    Failures,
    Errors,
    Inconclusive,
}

/// The limits of a step, and of verification: more failures than
/// `failureLimit` is a breach, more errors or inconclusive measurements than
/// their limits a hold.
pub(super) fn beyond(t: &MetricTally, a: &Analysis) -> Option<Beyond> {
    if t.failed > a.failure_limit() {
        Some(Beyond::Failures)
    } else if t.errors > a.error_limit() {
        Some(Beyond::Errors)
    } else if t.inconclusive > a.inconclusive_limit() {
        Some(Beyond::Inconclusive)
    } else {
        None
    }
}

/// What the last measurement of `metric` that erred said, for a hold on
/// `errorLimit` (the count alone does not say what to fix: a query, an
/// address, credentials), shortened to fit a message.
pub(super) fn last_error(measurements: &[Measurement], metric: &str) -> String {
    const MOST: usize = 400;
    let said = measurements
        .iter()
        .rev()
        .find(|m| m.metric == metric && m.outcome == Outcome::Error)
        .and_then(|m| m.message.as_deref());
    match said {
        Some(text) if text.chars().count() > MOST => {
            format!(
                " (the last: {}...)",
                text.chars().take(MOST).collect::<String>()
            )
        }
        Some(text) => format!(" (the last: {text})"),
        None => String::new(),
    }
}

/// The value that broke `metric`'s limit (its last failed measurement in
/// `step`) and the bound it crossed.
pub(super) fn breach_value(
    measurements: &[Measurement],
    metric: &Metric,
    step: i32,
) -> (Option<f64>, String) {
    let last = measurements
        .iter()
        .rev()
        .find(|m| m.metric == metric.name && m.step == step && m.outcome == Outcome::Fail);
    (
        last.and_then(|m| m.value),
        threshold(metric, last.and_then(|m| m.stable_value)),
    )
}

/// Count this decision's measurements into the tallies and say whether a limit broke.
fn ingest(cx: &mut Ctx) -> Verdict {
    let mut taken: Vec<&super::Taken> = cx.obs.measurements.iter().collect();
    taken.sort_by_key(|t| t.at);
    for t in taken {
        let Some(i) = cx.index(&t.service) else {
            continue;
        };
        let Some(svc) = cx.spec.service(&t.service) else {
            continue;
        };
        let s = &cx.st.services[i];
        let (ServicePhase::Progressing, Some(step), Some(baked)) =
            (s.phase, s.step, &s.bake_started_at)
        else {
            continue;
        };
        if step != t.step {
            continue;
        }
        let analysis = measured_at(&cx.spec.analysis_of(svc), s.weight);
        let Some(metric) = analysis.metrics.iter().find(|m| m.name == t.metric) else {
            continue;
        };
        let last = s
            .tally
            .iter()
            .find(|m| m.metric == t.metric)
            .and_then(|m| m.last_at.as_ref());
        // A measurement before it was due (a stale or repeated one) is not evidence.
        if t.at < plus(last.unwrap_or(baked).0, analysis.interval()) {
            continue;
        }
        let m = measurement(metric, t, analysis.no_data.unwrap_or_default());
        cx.judged.push(Judged {
            service: t.service.clone(),
            metric: t.metric.clone(),
            outcome: m.outcome,
        });
        let s = &mut cx.st.services[i];
        count(&mut s.tally, &m, t.query.as_ref());
        let failed = (m.outcome == Outcome::Fail).then(|| {
            format!(
                "{} = {} at step {} (weight {}%), threshold {}",
                t.metric,
                shown(&m),
                step + 1,
                s.weight,
                threshold(metric, m.stable_value)
            )
        });
        keep(&mut s.measurements, m);
        if let Some(message) = failed {
            cx.record("MeasurementFailed", Some(&t.service), message);
        }
    }

    let mut verdict = Verdict::default();
    for s in &cx.st.services {
        if s.phase != ServicePhase::Progressing {
            continue;
        }
        let Some(svc) = cx.spec.service(&s.name) else {
            continue;
        };
        let a = measured_at(&cx.spec.analysis_of(svc), s.weight);
        let step = s.step.unwrap_or_default();
        for t in &s.tally {
            match beyond(t, &a) {
                Some(Beyond::Failures) if verdict.breach.is_none() => {
                    let Some(metric) = a.metrics.iter().find(|m| m.name == t.metric) else {
                        continue;
                    };
                    let (value, threshold) = breach_value(&s.measurements, metric, step);
                    verdict.breach = Some(Breach {
                        service: Some(s.name.clone()),
                        message: format!(
                            "{}: {} failed {} measurement(s) of step {}, more than failureLimit {}",
                            s.name,
                            t.metric,
                            t.failed,
                            step + 1,
                            a.failure_limit()
                        ),
                        first_deviation: t.first_failed_at.clone(),
                        metric: t.metric.clone(),
                        value,
                        threshold,
                    });
                }
                Some(Beyond::Errors) if verdict.hold.is_none() => {
                    verdict.hold = Some((
                        HoldReason::ErrorLimit,
                        Some(s.name.clone()),
                        format!(
                            "{}: {} could not be measured {} times in this step, more than errorLimit {}{}; \
                             fix the query or Prometheus",
                            s.name,
                            t.metric,
                            t.errors,
                            a.error_limit(),
                            last_error(&s.measurements, &t.metric)
                        ),
                    ));
                }
                Some(Beyond::Inconclusive) if verdict.hold.is_none() => {
                    verdict.hold = Some((
                        HoldReason::InconclusiveLimit,
                        Some(s.name.clone()),
                        format!(
                            "{}: {} was inconclusive {} times in this step, more than inconclusiveLimit {}; \
                             check that the canary gets traffic",
                            s.name,
                            t.metric,
                            t.inconclusive,
                            a.inconclusive_limit()
                        ),
                    ));
                }
                _ => {}
            }
        }
    }
    verdict
}

/// Move every service as far as the cluster and the clock allow, wave by wave.
fn advance(cx: &mut Ctx) {
    let plan = cx.plan();
    for name in plan.waves.iter().flat_map(|w| &w.services) {
        if cx.breach.is_some() {
            return;
        }
        let Some(i) = cx.index(name) else { continue };
        let kind = cx.spec.service(name).map(|s| s.kind());
        match (cx.st.services[i].phase, kind) {
            (ServicePhase::Pending, _) => start_service(cx, i),
            (ServicePhase::Progressing, Some(MemberKind::Job(_))) => {
                super::migration::forward(cx, i)
            }
            (ServicePhase::Progressing, Some(MemberKind::Flag(_))) => super::flag::bake(cx, i),
            (ServicePhase::Progressing, _) => bake(cx, i),
            (ServicePhase::Promoting, _) => promote(cx, i),
            _ => {}
        }
    }
    if cx.breach.is_some() {
        return;
    }
    super::defer::stuck_on_gates(cx);
    if !cx.st.services.is_empty()
        && cx
            .st
            .services
            .iter()
            .all(|s| matches!(s.phase, ServicePhase::Promoted | ServicePhase::Deferred))
    {
        super::verify::train_promoted(cx);
    }
}

fn start_service(cx: &mut Ctx, i: usize) {
    let name = cx.st.services[i].name.clone();
    let Some(svc) = cx.spec.service(&name) else {
        return;
    };
    let waiting: Vec<&str> = svc
        .depends_on
        .iter()
        .filter(|d| cx.service_phase(d) != Some(ServicePhase::Promoted))
        .map(String::as_str)
        .collect();
    if !waiting.is_empty() {
        cx.st.services[i].message =
            Some(format!("waits for {} to be promoted", waiting.join(", ")));
        return;
    }
    // Read when its turn comes, so a hold set mid-train defers it then.
    if let Some(hold) = &svc.hold {
        let reason = format!("held: {}", hold.reason.trim());
        return super::defer::defer(cx, &name, reason);
    }
    if !super::wave::may_begin(cx, &name) {
        return;
    }
    if !super::service_gate::clear(cx, i) {
        return;
    }
    let deployment = match svc.kind() {
        MemberKind::Job(_) => return super::migration::start(cx, i),
        MemberKind::Flag(_) => return super::flag::start(cx, i),
        MemberKind::Deployment { deployment, .. } => deployment,
    };
    if let Some((wait, stall)) = deployment_not_ready(cx, deployment, &name) {
        return wait_for_deployment(cx, i, wait, stall);
    }
    if !cx.seen(&name).baseline_recorded {
        cx.st.services[i].message = Some("recording the baseline".to_owned());
        cx.act(Action::RecordBaseline { service: name });
        cx.wake_in(CONVERGE);
        return;
    }
    let steps = cx.spec.steps_of(svc);
    let baseline = format!("{}-{}-baseline", cx.release_name(), name);
    let previous_images = super::report::previous_images(cx, &name);
    let now = cx.time();
    let s = &mut cx.st.services[i];
    s.previous_images = previous_images;
    s.phase = ServicePhase::Progressing;
    s.step = Some(0);
    s.weight = steps.first().map_or(0, |st| st.weight);
    s.baseline = Some(baseline);
    s.since = Some(now);
    s.bake_started_at = None;
    s.tally.clear();
    cx.record(
        "ServiceStarted",
        Some(&name),
        format!("baseline recorded; canary starts at step 1/{}", steps.len()),
    );
    bake(cx, i);
}

/// Why the stable Deployment cannot give a baseline yet, and the Stalled
/// reason when that needs a person: a paused Deployment runs nothing written
/// to it until someone resumes it, and one whose rollout passed its
/// progress deadline will not finish on its own. One still rolling out has
/// pods on two templates, so the baseline would be a template not every pod
/// runs; that is the cluster converging, not a stall. A missing Deployment
/// is left to the rules that already handle it (preflight, drift).
fn deployment_not_ready(
    cx: &Ctx,
    deployment: &str,
    name: &str,
) -> Option<(String, Option<StallReason>)> {
    let stable = cx.seen(name).stable.as_ref()?;
    let ns = cx.namespace();
    if stable.paused {
        return Some((
            format!(
                "waits for Deployment {deployment:?} to be resumed: it is paused (spec.paused), so it would \
                 roll out neither the baseline nor the new version; resume it with \
                 `kubectl rollout resume deployment/{deployment} -n {ns}`"
            ),
            Some(StallReason::DeploymentPaused),
        ));
    }
    if stable.rolled_out {
        return None;
    }
    if stable.rollout_failed {
        return Some((
            format!(
                "waits for Deployment {deployment:?} to finish its rollout, which exceeded its \
                 progressDeadlineSeconds (ProgressDeadlineExceeded); fix it (`kubectl describe \
                 deployment/{deployment} -n {ns}`) or undo it with `kubectl rollout undo \
                 deployment/{deployment} -n {ns}`"
            ),
            Some(StallReason::DeploymentRolloutFailed),
        ));
    }
    Some((
        format!(
            "waits for Deployment {deployment:?} to finish its rollout before recording its baseline \
             (not every replica is updated and available yet); if it does not finish, see \
             `kubectl rollout status deployment/{deployment} -n {ns}`"
        ),
        None,
    ))
}

/// Nothing is written while the Deployment is not ready to give a baseline;
/// the wait is told once in the timeline, and once as a Stalled event when
/// it needs a person.
fn wait_for_deployment(cx: &mut Ctx, i: usize, wait: String, stall: Option<StallReason>) {
    let name = cx.st.services[i].name.clone();
    if cx.st.services[i].message.as_deref() != Some(wait.as_str()) {
        cx.record("Waiting", Some(&name), wait.clone());
        if stall.is_some() {
            cx.notice(NoticeKind::Stalled, Some(&name), format!("{name} {wait}"));
        }
    }
    cx.st.services[i].message = Some(wait);
    cx.waiting.push(name);
    if let Some(reason) = stall {
        cx.stalled = Some(reason);
    }
    // Watches on the Deployment wake the controller as soon as it changes.
    cx.wake_in(if stall.is_some() {
        PERSON_RECHECK
    } else {
        CONVERGE
    });
}

/// A service in a step: get the weight in effect, bake, measure, pass.
fn bake(cx: &mut Ctx, i: usize) {
    let name = cx.st.services[i].name.clone();
    let Some(svc) = cx.spec.service(&name) else {
        return;
    };
    let steps = cx.spec.steps_of(svc);
    let k = cx.st.services[i]
        .step
        .unwrap_or_default()
        .clamp(0, steps.len() as i32 - 1);
    let step = &steps[k as usize];
    let of = steps.len();

    let Some(started) = cx.st.services[i].bake_started_at.clone() else {
        cx.st.services[i].weight = step.weight;
        if cx
            .seen(&name)
            .canary
            .as_ref()
            .is_some_and(|c| c.weight == step.weight && c.ready)
        {
            let now = cx.time();
            cx.st.services[i].bake_started_at = Some(now.clone());
            cx.record(
                "StepStarted",
                Some(&name),
                format!(
                    "step {}/{of}: {}% of traffic on the new version, baking for {}",
                    k + 1,
                    step.weight,
                    text::duration(step.bake.into())
                ),
            );
            return bake(cx, i);
        }
        cx.st.services[i].message = Some(format!(
            "waits for the canary to take {}% of traffic",
            step.weight
        ));
        cx.act(Action::SetCanaryWeight {
            service: name,
            weight: step.weight,
        });
        cx.wake_in(CONVERGE);
        return;
    };

    let bake_time: std::time::Duration = step.bake.into();
    let bake_end = plus(started.0, bake_time);
    let analysis = measured_at(&cx.spec.analysis_of(svc), step.weight);
    let tally = cx.st.services[i].tally.clone();
    let short = short_of_passes(&analysis, &tally, bake_time);

    if cx.now >= bake_end && short.is_empty() {
        match super::sign_off::step_approval(cx, i, k as usize, step) {
            super::sign_off::StepApproval::NotNeeded | super::sign_off::StepApproval::Given => {
                return pass_step(cx, i, k as usize, steps.len());
            }
            // Measured on while it waits: a breach still rolls the train back.
            super::sign_off::StepApproval::Waiting(message) => {
                wake_for_measurements(cx, &analysis, &tally, &started);
                cx.st.services[i].message = Some(message);
                return;
            }
        }
    }
    if cx.now < bake_end {
        cx.wake_at(bake_end);
    }
    wake_for_measurements(cx, &analysis, &tally, &started);
    let evidence = if short.is_empty() {
        String::new()
    } else {
        format!("; passing measurements {}", short.join(", "))
    };
    cx.st.services[i].message = Some(format!(
        "step {}/{of} at {}%: baking until {}{evidence}",
        k + 1,
        step.weight,
        bake_end
    ));
}

/// Wake when each metric's next measurement is due: one `interval` after
/// its last one in this step, or after the bake began.
pub(super) fn wake_for_measurements(
    cx: &mut Ctx,
    analysis: &crate::api::Analysis,
    tally: &[MetricTally],
    started: &Time,
) {
    for m in &analysis.metrics {
        let last = tally
            .iter()
            .find(|t| t.metric == m.name)
            .and_then(|t| t.last_at.as_ref());
        cx.wake_at(plus(last.unwrap_or(started).0, analysis.interval()));
    }
}

/// The metrics with fewer passing measurements than a bake of `bake_time`
/// needs, as `error-rate 1/3`: a step passes only when there are none.
pub(super) fn short_of_passes(
    analysis: &crate::api::Analysis,
    tally: &[MetricTally],
    bake_time: std::time::Duration,
) -> Vec<String> {
    let need = analysis.min_passes(bake_time);
    analysis
        .metrics
        .iter()
        .filter_map(|m| {
            let passed = tally
                .iter()
                .find(|t| t.metric == m.name)
                .map_or(0, |t| t.passed);
            (passed < need).then(|| format!("{} {passed}/{need}", m.name))
        })
        .collect()
}

fn pass_step(cx: &mut Ctx, i: usize, k: usize, of: usize) {
    let name = cx.st.services[i].name.clone();
    let weight = cx.st.services[i].weight;
    let message = format!("{name}: step {}/{of} at {weight}% passed", k + 1);
    cx.record("StepPassed", Some(&name), message.clone());
    cx.notice(NoticeKind::StepPassed, Some(&name), message);
    let steps = cx
        .spec
        .service(&name)
        .map(|svc| cx.spec.steps_of(svc))
        .unwrap_or_default();
    let now = cx.time();
    let s = &mut cx.st.services[i];
    s.bake_started_at = None;
    s.tally.clear();
    s.awaiting_approval = false;
    if k + 1 < steps.len() {
        s.step = Some(k as i32 + 1);
        bake(cx, i);
    } else {
        s.phase = ServicePhase::Promoting;
        s.stable_changed = true;
        s.since = Some(now);
        cx.record(
            "Promoting",
            Some(&name),
            "every step passed; writing the new version into the stable Deployment".to_owned(),
        );
        promote(cx, i);
    }
}

/// The new version goes into the stable Deployment; the canary leaves once it has rolled out.
fn promote(cx: &mut Ctx, i: usize) {
    let name = cx.st.services[i].name.clone();
    let seen = cx.seen(&name);
    let rolled_out = seen
        .stable
        .as_ref()
        .is_some_and(|s| s.template == TemplateState::New && s.rolled_out);
    if !rolled_out {
        let paused = seen.stable.as_ref().is_some_and(|s| s.paused);
        let failed = seen.stable.as_ref().is_some_and(|s| s.rollout_failed);
        let deployment = cx
            .spec
            .service(&name)
            .and_then(|s| s.deployment())
            .unwrap_or_default();
        let ns = cx.namespace();
        cx.st.services[i].message = Some(if paused {
            format!(
                "waits for the stable Deployment to roll out the new version, but it is paused; resume it \
                 with `kubectl rollout resume deployment/{deployment} -n {ns}`"
            )
        } else if failed {
            format!(
                "waits for the stable Deployment to roll out the new version, but its rollout exceeded \
                 progressDeadlineSeconds; fix it (`kubectl describe deployment/{deployment} -n {ns}`) \
                 or set spec.abort: true to roll the train back"
            )
        } else {
            "waits for the stable Deployment to roll out the new version".to_owned()
        });
        cx.act(Action::PromoteStable { service: name });
        cx.wake_in(CONVERGE);
        return;
    }
    if seen.canary.is_some() {
        cx.st.services[i].message = Some("removing the canary".to_owned());
        cx.act(Action::RemoveCanary { service: name });
        cx.wake_in(CONVERGE);
        return;
    }
    let now = cx.time();
    let s = &mut cx.st.services[i];
    s.phase = ServicePhase::Promoted;
    s.weight = 0;
    s.since = Some(now);
    s.message = Some("the new version is the stable one".to_owned());
    let message = format!("{name} promoted: the new version is stable and the canary is gone");
    cx.record("Promoted", Some(&name), message.clone());
    cx.notice(NoticeKind::Promoted, Some(&name), message);
}

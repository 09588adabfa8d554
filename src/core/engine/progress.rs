//! A release on its way: waves, steps, bakes, measurements and promotion.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::context::{Ctx, plus};
use super::{Action, CONVERGE, MeasurementRequest, QueryResult, TemplateState, hold, rollback};
use super::{Judged, NoticeKind};
use crate::analysis::judge;
use crate::api::{
    HoldReason, Measurement, MemberKind, MetricTally, Outcome, Phase, Release, RollbackReason,
    ServicePhase, StallReason, default::MEASUREMENTS_KEPT,
};
use crate::text;

/// How soon a service waiting for a person to fix its Deployment looks
/// again when no watch event comes first.
const PERSON_RECHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// The measurements due now: for every service baking a step, each metric one
/// `interval` after its last measurement in this step (or after the bake began).
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
        Some(Phase::Progressing | Phase::AwaitingGates | Phase::AwaitingWindow)
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
        let analysis = spec.analysis_of(svc);
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
            return rollback::begin(
                cx,
                RollbackReason::Breach,
                Some(breach.service),
                breach.message,
                breach.first_deviation,
            );
        }
        if let Some((reason, service, message)) = verdict.hold {
            hold::place(cx, reason, Some(service), message);
        }
    }
    // Deleting a Release in flight must not leave half the train on the new
    // version: it is reversed like an abort before the Release goes.
    if cx.deleting() {
        return rollback::begin(
            cx,
            RollbackReason::Deleted,
            None,
            "the Release was deleted while in flight: reversing the train before it goes"
                .to_owned(),
            None,
        );
    }
    if cx.spec.abort == Some(true) {
        return rollback::begin(
            cx,
            RollbackReason::Abort,
            None,
            "aborted by spec.abort".to_owned(),
            None,
        );
    }
    if let Some(expired) = hold::expired(cx) {
        return rollback::begin(cx, RollbackReason::HoldTimeout, expired.0, expired.1, None);
    }
    if hold::check(cx, spec_changed) {
        return;
    }
    if cx.spec.paused == Some(true) {
        if !was_paused {
            cx.record("Paused", None, "paused by spec.paused".to_owned());
        }
        cx.set_phase(Phase::Paused);
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

struct Breach {
    service: String,
    message: String,
    first_deviation: Option<Time>,
}

#[derive(Default)]
struct Verdict {
    breach: Option<Breach>,
    hold: Option<(HoldReason, String, String)>,
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
        let analysis = cx.spec.analysis_of(svc);
        let Some(metric) = analysis.metrics.iter().find(|m| m.name == t.metric) else {
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
        let last = s
            .tally
            .iter()
            .find(|m| m.metric == t.metric)
            .and_then(|m| m.last_at.as_ref());
        // A measurement before it was due (a stale or repeated one) is not evidence.
        if t.at < plus(last.unwrap_or(baked).0, analysis.interval()) {
            continue;
        }
        let outcome = judge(
            metric,
            &t.result,
            t.stable.as_ref(),
            analysis.no_data.unwrap_or_default(),
        );
        cx.judged.push(Judged {
            service: t.service.clone(),
            metric: t.metric.clone(),
            outcome,
        });
        let (value, note) = match &t.result {
            QueryResult::Value(v) if v.is_nan() => (
                None,
                Some("the query returned NaN (no traffic?)".to_owned()),
            ),
            QueryResult::Value(v) => (Some(*v), None),
            QueryResult::NoData => (None, Some("the query returned no data".to_owned())),
            QueryResult::Error(e) => (None, Some(e.clone())),
        };
        let at = Time(t.at);
        let s = &mut cx.st.services[i];
        let tally = match s.tally.iter().position(|m| m.metric == t.metric) {
            Some(p) => &mut s.tally[p],
            None => {
                s.tally.push(MetricTally {
                    metric: t.metric.clone(),
                    ..Default::default()
                });
                s.tally.last_mut().expect("just pushed")
            }
        };
        tally.last_at = Some(at.clone());
        match outcome {
            Outcome::Pass => tally.passed += 1,
            Outcome::Fail => {
                tally.failed += 1;
                tally.first_failed_at.get_or_insert(at.clone());
            }
            Outcome::Inconclusive => tally.inconclusive += 1,
            Outcome::Error => tally.errors += 1,
        }
        s.measurements.push(Measurement {
            stable_value: None,
            metric: t.metric.clone(),
            step,
            value,
            outcome,
            message: note.clone(),
            at,
        });
        let excess = s.measurements.len().saturating_sub(MEASUREMENTS_KEPT);
        s.measurements.drain(..excess);
        if outcome == Outcome::Fail {
            let seen = value.map_or_else(|| note.clone().unwrap_or_default(), |v| format!("{v}"));
            let message = format!(
                "{} = {seen} at step {} (weight {}%), threshold {}",
                t.metric,
                step + 1,
                s.weight,
                text::threshold(metric.min, metric.max)
            );
            let service = t.service.clone();
            cx.record("MeasurementFailed", Some(&service), message);
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
        let a = cx.spec.analysis_of(svc);
        for t in &s.tally {
            if t.failed > a.failure_limit() && verdict.breach.is_none() {
                verdict.breach = Some(Breach {
                    service: s.name.clone(),
                    message: format!(
                        "{}: {} failed {} measurement(s) of step {}, more than failureLimit {}",
                        s.name,
                        t.metric,
                        t.failed,
                        s.step.unwrap_or_default() + 1,
                        a.failure_limit()
                    ),
                    first_deviation: t.first_failed_at.clone(),
                });
            }
            if verdict.hold.is_some() {
                continue;
            }
            if t.errors > a.error_limit() {
                verdict.hold = Some((
                    HoldReason::ErrorLimit,
                    s.name.clone(),
                    format!(
                        "{}: {} could not be measured {} times in this step, more than errorLimit {}; \
                         fix the query or Prometheus",
                        s.name,
                        t.metric,
                        t.errors,
                        a.error_limit()
                    ),
                ));
            } else if t.inconclusive > a.inconclusive_limit() {
                verdict.hold = Some((
                    HoldReason::InconclusiveLimit,
                    s.name.clone(),
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
    let analysis = cx.spec.analysis_of(svc);
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

//! Breach, abort and hold timeout: withdraw every canary at once, then restore
//! the services whose stable Deployment changed, in rollback order.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::NoticeKind;
use super::context::{Ctx, plus};
use super::{Action, CONVERGE, DELETION_GRACE, TemplateState};
use crate::api::{MemberKind, Outcome, Phase, RollbackCause, RollbackReason, ServicePhase};

/// Start rolling back. Every canary in flight is sent to 0 % in this very
/// decision, before anything else happens.
pub(super) fn begin(
    cx: &mut Ctx,
    reason: RollbackReason,
    service: Option<String>,
    message: String,
    first_deviation: Option<Time>,
) {
    cx.set_phase(Phase::RollingBack);
    cx.st.hold = None;
    cx.st.rollback = Some(RollbackCause {
        reason,
        message: message.clone(),
        service: service.clone(),
        first_deviation_at: first_deviation,
        at: cx.time(),
        metric: None,
        value: None,
        threshold: None,
        requested_by: None,
    });
    if reason == RollbackReason::Breach {
        record_breached_metric(cx, service.as_deref());
    }
    cx.record(reason.as_str(), service.as_deref(), message.clone());
    cx.notice(
        NoticeKind::RollbackBegan(reason),
        service.as_deref(),
        message,
    );

    let now = cx.time();
    let mut zeroed = Vec::new();
    for i in 0..cx.st.services.len() {
        let kind = cx.spec.service(&cx.st.services[i].name).map(|s| s.kind());
        let phase = cx.st.services[i].phase;
        match (kind, phase) {
            (Some(MemberKind::Job(_)), ServicePhase::Progressing | ServicePhase::Promoted) => {
                super::migration::at_rollback(cx, i);
                continue;
            }
            // Keys possibly set: put back first, in the rollback's first decision.
            (Some(MemberKind::Flag(_)), ServicePhase::Progressing | ServicePhase::Promoted) => {
                let s = &mut cx.st.services[i];
                s.phase = ServicePhase::Restoring;
                s.weight = 0;
                s.bake_started_at = None;
                s.since = Some(now.clone());
                continue;
            }
            _ => {}
        }
        let s = &mut cx.st.services[i];
        match s.phase {
            ServicePhase::Progressing | ServicePhase::Promoting => {
                s.phase = ServicePhase::Withdrawing;
                s.weight = 0;
                s.bake_started_at = None;
                s.awaiting_approval = false;
                s.since = Some(now.clone());
                zeroed.push(s.name.clone());
            }
            ServicePhase::Pending => {
                s.phase = ServicePhase::Skipped;
                s.since = Some(now.clone());
                s.message = Some("never started: the release is rolling back".to_owned());
            }
            ServicePhase::Promoted => {
                s.phase = ServicePhase::Restoring;
                s.since = Some(now.clone());
            }
            _ => {}
        }
    }
    for name in &zeroed {
        cx.act(Action::SetCanaryWeight {
            service: name.clone(),
            weight: 0,
        });
    }
    if !zeroed.is_empty() {
        cx.record(
            "WeightZero",
            None,
            format!("canary traffic of {} set to 0%", zeroed.join(", ")),
        );
    }
    run(cx);
}

/// The metric whose failures broke the limit, its last failing value and the
/// bound it crossed, on the rollback's record for the report: `service`'s own
/// analysis, or the train's verification when no service is named. A breach
/// that is not a metric's (a migration's Job failed) records none.
fn record_breached_metric(cx: &mut Ctx, service: Option<&str>) {
    let (analysis, tally, measurements) = match service {
        Some(name) => {
            let (Some(svc), Some(i)) = (cx.spec.service(name), cx.index(name)) else {
                return;
            };
            let s = &cx.st.services[i];
            (cx.spec.analysis_of(svc), &s.tally, &s.measurements)
        }
        None => {
            let (Some(verify), Some(v)) = (&cx.spec.verify, &cx.st.verification) else {
                return;
            };
            (verify.analysis.clone(), &v.tally, &v.measurements)
        }
    };
    let Some(tally) = tally.iter().find(|t| t.failed > analysis.failure_limit()) else {
        return;
    };
    let Some(metric) = analysis.metrics.iter().find(|m| m.name == tally.metric) else {
        return;
    };
    let last = measurements
        .iter()
        .rev()
        .find(|m| m.metric == metric.name && m.outcome == Outcome::Fail);
    let value = last.and_then(|m| m.value);
    let threshold = threshold(metric, last.and_then(|m| m.stable_value));
    let name = metric.name.clone();
    if let Some(cause) = cx.st.rollback.as_mut() {
        cause.metric = Some(name);
        cause.value = value;
        cause.threshold = Some(threshold);
    }
}

/// The bound a breaching measurement crossed, in words.
fn threshold(metric: &crate::api::Metric, _stable: Option<f64>) -> String {
    crate::text::threshold(metric.min, metric.max)
}

pub(super) fn run(cx: &mut Ctx) {
    for i in 0..cx.st.services.len() {
        if cx.st.services[i].phase != ServicePhase::Withdrawing {
            continue;
        }
        if is_job(cx, i) {
            super::migration::withdraw(cx, i);
        } else {
            withdraw(cx, i);
        }
    }
    // Flags first, whatever the order: turning a feature off is the fastest mitigation.
    for i in 0..cx.st.services.len() {
        if cx.st.services[i].phase == ServicePhase::Restoring && is_flag(cx, i) {
            super::flag::restore(cx, i);
            if cx.phase() == Phase::Failed {
                return;
            }
        }
    }
    let order = cx.plan().rollback_order;
    for (pos, name) in order.iter().enumerate() {
        let Some(i) = cx.index(name) else { continue };
        // A flag was put back above, out of order.
        if cx.st.services[i].phase != ServicePhase::Restoring || is_flag(cx, i) {
            continue;
        }
        // Strictly in rollback order: everything before this service (all its
        // dependents among them) has finished rolling back.
        let blocking: Vec<&str> = order[..pos]
            .iter()
            .filter(|n| cx.service_phase(n).is_some_and(|p| !settled(p)))
            .map(String::as_str)
            .collect();
        if !blocking.is_empty() {
            cx.st.services[i].message = Some(format!(
                "waits for {} to finish rolling back",
                blocking.join(", ")
            ));
            continue;
        }
        if is_job(cx, i) {
            super::migration::restore(cx, i);
        } else {
            restore(cx, i);
        }
        if cx.phase() == Phase::Failed {
            return;
        }
    }
    if cx.st.services.iter().all(|s| settled(s.phase)) {
        cx.set_phase(Phase::RolledBack);
        cx.st.finished_at = Some(cx.time());
        cx.requeue = None;
        let cause = cx.st.rollback.as_ref().map_or("", |r| r.reason.as_str());
        let reversed = super::migration::stayed_applied(cx)
            .unwrap_or_else(|| "every change is reversed".to_owned());
        let message = format!("rolled back after {cause}: {reversed}");
        cx.record("RolledBack", None, message.clone());
        cx.notice(NoticeKind::RolledBack, None, message);
    }
}

/// A deleted Release whose rollback has not finished within
/// [`DELETION_GRACE`]. Counted from when the rollback began (or the deletion,
/// if later), not from the deletion alone, so an operator that was down when
/// the Release was deleted still tries before it gives up.
pub(super) fn deletion_overdue(cx: &Ctx) -> bool {
    let Some(deleted) = &cx.release.metadata.deletion_timestamp else {
        return false;
    };
    if cx.phase() != Phase::RollingBack {
        return false;
    }
    let since = cx
        .st
        .rollback
        .as_ref()
        .map_or(deleted.0, |r| r.at.0.max(deleted.0));
    cx.now >= plus(since, DELETION_GRACE)
}

/// Stop trying and let the deletion go through: `Failed`, with every service
/// that is not back where it was named, so the shell can say what is left
/// and keep those baselines for a manual rollback.
pub(super) fn give_up(cx: &mut Ctx) {
    let left: Vec<String> = cx
        .st
        .services
        .iter()
        .filter(|s| !settled(s.phase) && s.phase != ServicePhase::Pending)
        .map(|s| {
            let baseline = match (
                &s.baseline,
                s.stable_changed || s.phase == ServicePhase::Promoted,
            ) {
                (Some(b), true) => format!(", its baseline is kept in ControllerRevision {b:?}"),
                _ => String::new(),
            };
            format!("{} is {}{baseline}", s.name, phase_name(s.phase))
        })
        .collect();
    let message = format!(
        "the Release was deleted but its train was not reversed within {}: {}; restore these by hand",
        crate::text::duration(DELETION_GRACE),
        if left.is_empty() {
            "nothing moved".to_owned()
        } else {
            left.join("; ")
        }
    );
    cx.actions.clear();
    cx.set_phase(Phase::Failed);
    cx.st.finished_at = Some(cx.time());
    cx.requeue = None;
    cx.st.message = Some(message.clone());
    cx.record("Failed", None, message.clone());
    cx.notice(NoticeKind::Failed, None, message);
}

fn phase_name(p: ServicePhase) -> String {
    serde_json::to_value(p)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Done rolling back. `Promoted` is settled only in a rollback, where it is
/// an irreversible migration that stays applied; `Deferred` was never shipped.
fn settled(p: ServicePhase) -> bool {
    matches!(
        p,
        ServicePhase::Withdrawn
            | ServicePhase::Restored
            | ServicePhase::Skipped
            | ServicePhase::Deferred
            | ServicePhase::Promoted
    )
}

fn is_job(cx: &Ctx, i: usize) -> bool {
    cx.spec
        .service(&cx.st.services[i].name)
        .is_some_and(|s| s.job.is_some())
}

fn is_flag(cx: &Ctx, i: usize) -> bool {
    cx.spec
        .service(&cx.st.services[i].name)
        .is_some_and(|s| s.flag.is_some())
}

/// The canary goes to 0 % and then away.
fn withdraw(cx: &mut Ctx, i: usize) {
    let name = cx.st.services[i].name.clone();
    match &cx.seen(&name).canary {
        Some(c) if c.weight != 0 => {
            cx.st.services[i].message = Some("waits for the canary to take no traffic".to_owned());
            cx.act(Action::SetCanaryWeight {
                service: name,
                weight: 0,
            });
            cx.wake_in(CONVERGE);
        }
        Some(_) => {
            cx.st.services[i].message = Some("removing the canary".to_owned());
            cx.act(Action::RemoveCanary { service: name });
            cx.wake_in(CONVERGE);
        }
        None => {
            // The new version in the stable Deployment of a service that never
            // reached Promoting can only be a promotion whose status write was
            // lost in a crash: restore it too.
            let written = cx
                .seen(&name)
                .stable
                .as_ref()
                .is_some_and(|st| st.template == TemplateState::New);
            let now = cx.time();
            let s = &mut cx.st.services[i];
            s.since = Some(now);
            if s.stable_changed || written {
                s.stable_changed = true;
                s.phase = ServicePhase::Restoring;
            } else {
                s.phase = ServicePhase::Withdrawn;
                s.message =
                    Some("canary removed; the stable Deployment was never changed".to_owned());
                cx.record("Withdrawn", Some(&name), "canary removed".to_owned());
            }
        }
    }
}

/// The baseline goes back into the stable Deployment.
fn restore(cx: &mut Ctx, i: usize) {
    let name = cx.st.services[i].name.clone();
    let seen = cx.seen(&name);
    let Some(stable) = &seen.stable else {
        let message = format!(
            "{name}: its stable Deployment is gone, so its baseline cannot be restored; recreate it from \
             ControllerRevision {:?} by hand",
            cx.st.services[i].baseline.clone().unwrap_or_default()
        );
        cx.set_phase(Phase::Failed);
        cx.st.finished_at = Some(cx.time());
        cx.requeue = None;
        cx.st.message = Some(message.clone());
        cx.record("Failed", Some(&name), message.clone());
        cx.notice(NoticeKind::Failed, Some(&name), message);
        return;
    };
    if seen.canary.is_some() {
        cx.act(Action::RemoveCanary { service: name });
        cx.wake_in(CONVERGE);
        return;
    }
    if stable.template == TemplateState::Baseline && stable.rolled_out {
        let now = cx.time();
        let s = &mut cx.st.services[i];
        s.phase = ServicePhase::Restored;
        s.since = Some(now);
        s.message = Some("back on its baseline".to_owned());
        let message = format!("{name} restored to its baseline");
        cx.record("Restored", Some(&name), message.clone());
        cx.notice(NoticeKind::Restored, Some(&name), message);
        return;
    }
    cx.st.services[i].message =
        Some("waits for the stable Deployment to roll back to its baseline".to_owned());
    cx.act(Action::RestoreBaseline { service: name });
    cx.wake_in(CONVERGE);
}

//! Holds (the controller stops because it cannot decide) and user pauses.
//!
//! A hold sends every canary that is measuring to 0 % and waits for a person:
//! `spec.resumeHold` set to the hold's id lifts it once its cause is gone,
//! `spec.abort` rolls back, and `spec.holdTimeout` rolls back on its own.

use super::NoticeKind;
use super::context::{Ctx, plus};
use super::{Action, CONVERGE, Expected, StableObservation, TemplateState, what_changed};
use crate::api::{Hold, HoldReason, MemberKind, Phase, ServicePhase, ServiceStatus};
use crate::text;

pub(super) const SPEC_CHANGED: &str = "the spec changed while the release is in flight; restore it, or abort and create a new Release";

/// Place a hold now: weight 0 for every service in a step, whose bake restarts on resume.
pub(super) fn place(cx: &mut Ctx, reason: HoldReason, service: Option<String>, message: String) {
    cx.st.holds += 1;
    let id = format!("hold-{}", cx.st.holds);
    let message = format!(
        "{message}; then set spec.resumeHold: {id} to resume, or spec.abort: true to roll back"
    );
    cx.st.hold = Some(Hold {
        id: id.clone(),
        reason,
        message: message.clone(),
        service: service.clone(),
        since: cx.time(),
    });
    cx.set_phase(Phase::Held);
    for i in 0..cx.st.services.len() {
        if cx.st.services[i].phase != ServicePhase::Progressing {
            continue;
        }
        let name = cx.st.services[i].name.clone();
        let kind = cx.spec.service(&name).map(|s| s.kind());
        if let Some(MemberKind::Job(_)) = kind {
            // A Job cannot be paused: it runs on, and is judged when the hold is lifted.
            cx.st.services[i].message = Some(format!(
                "held by {id}: its Job runs on and is judged on resume"
            ));
            continue;
        }
        let s = &mut cx.st.services[i];
        s.weight = 0;
        s.bake_started_at = None;
        s.tally.clear();
        s.awaiting_approval = false;
        if let Some(MemberKind::Flag(_)) = kind {
            s.message = Some(format!("held by {id}: the flag is off"));
            super::flag::off(cx, i);
            continue;
        }
        s.message = Some(format!("held by {id}: no traffic on the canary"));
        cx.act(Action::SetCanaryWeight {
            service: name,
            weight: 0,
        });
    }
    cx.record(
        "Held",
        service.as_deref(),
        format!("{id} ({reason}): {message}"),
    );
    cx.notice(
        NoticeKind::Held(reason),
        service.as_deref(),
        format!("{id} ({reason}): {message}"),
    );
    cx.wake_in(CONVERGE);
}

/// A write of this very decision was refused by the API server as invalid:
/// stop moving with the server's words instead of retrying a write that can
/// never succeed. The decision is made again from the status before it, so
/// nothing it would have recorded counts.
pub(super) fn refused(cx: &mut Ctx, r: &super::WriteRefusal) {
    let what = format!(
        "the API server refused {} for {}: {}",
        r.doing, r.service, r.message
    );
    match cx.phase() {
        // A rollback cannot be held (a half-reversed train is the worst
        // place to stop) nor retried into a wall: it ends for a person.
        Phase::RollingBack => {
            let message = format!(
                "the rollback cannot complete: {what}; fix what the API server names and restore \
                 the services not back on their baseline by hand (their ControllerRevisions \
                 <release>-<service>-baseline hold it)"
            );
            cx.set_phase(Phase::Failed);
            cx.st.finished_at = Some(cx.time());
            cx.requeue = None;
            cx.st.message = Some(message.clone());
            cx.record("Failed", Some(&r.service), message.clone());
            cx.notice(NoticeKind::Failed, Some(&r.service), message);
        }
        // Already stopped: the refused write was one that keeps the hold
        // (a canary to 0 %); the hold and its message stand.
        Phase::Held => {
            cx.note = Some(what);
        }
        _ => {
            if !cx.started() {
                // Refused in the pass that starts it: it starts (so its plan
                // and services are on record) but moves nothing.
                super::start::pending(cx);
                cx.actions.clear();
                cx.requeue = None;
                if !cx.started() || !cx.phase().is_in_flight() {
                    return;
                }
            }
            cx.actions.clear();
            place(
                cx,
                HoldReason::WriteRefused,
                Some(r.service.clone()),
                format!("{what}; fix the spec or the object it names"),
            );
        }
    }
}

/// The hold in force has lasted longer than `spec.holdTimeout`: the service and the reason to roll back.
pub(super) fn expired(cx: &Ctx) -> Option<(Option<String>, String)> {
    let hold = cx.st.hold.as_ref()?;
    let timeout: std::time::Duration = cx.spec.hold_timeout?.into();
    (cx.now >= plus(hold.since.0, timeout)).then(|| {
        (
            hold.service.clone(),
            format!(
                "{} ({}) lasted longer than spec.holdTimeout {}",
                hold.id,
                hold.reason,
                text::duration(timeout)
            ),
        )
    })
}

/// Place a hold for a changed spec or drift, lift one whose id is in
/// `spec.resumeHold` and whose cause is gone, and keep canaries at 0 % while
/// held. True while the release stays held.
pub(super) fn check(cx: &mut Ctx, spec_changed: bool) -> bool {
    match cx.st.hold.clone() {
        None => {
            if spec_changed {
                place(cx, HoldReason::SpecChanged, None, SPEC_CHANGED.to_owned());
            } else if let Some((service, message)) = drift(cx) {
                place(cx, HoldReason::Drift, Some(service), message);
            }
        }
        Some(hold) if cx.spec.resume_hold.as_deref() == Some(hold.id.as_str()) => {
            if spec_changed {
                cx.note = Some(format!(
                    "spec.resumeHold cannot lift {}: {SPEC_CHANGED}",
                    hold.id
                ));
            } else if let Some((_, message)) = drift(cx) {
                cx.note = Some(format!(
                    "spec.resumeHold cannot lift {}: {message}",
                    hold.id
                ));
            } else {
                resume(cx, &hold.id);
            }
        }
        Some(_) => {}
    }
    let Some(hold) = cx.st.hold.clone() else {
        return false;
    };
    cx.set_phase(Phase::Held);
    for i in 0..cx.st.services.len() {
        if cx.st.services[i].phase != ServicePhase::Progressing {
            continue;
        }
        let name = cx.st.services[i].name.clone();
        if cx.spec.service(&name).is_some_and(|s| s.flag.is_some()) {
            if super::flag::off(cx, i) {
                cx.wake_in(CONVERGE);
            }
            continue;
        }
        if cx
            .seen(&name)
            .canary
            .as_ref()
            .is_some_and(|c| c.weight != 0)
        {
            cx.act(Action::SetCanaryWeight {
                service: name,
                weight: 0,
            });
            cx.wake_in(CONVERGE);
        }
    }
    if let Some(timeout) = cx.spec.hold_timeout {
        cx.wake_at(plus(hold.since.0, timeout.into()));
    }
    true
}

fn resume(cx: &mut Ctx, id: &str) {
    cx.st.hold = None;
    restart_bakes(cx);
    let message =
        format!("{id} lifted by spec.resumeHold; the current steps bake again from the start");
    cx.record("Resumed", None, message.clone());
    cx.notice(NoticeKind::Resumed, None, message);
}

/// `spec.paused` went back to false: the steps bake again from the start.
pub(super) fn unpause(cx: &mut Ctx) {
    restart_bakes(cx);
    let message =
        "resumed (spec.paused is false); the current steps bake again from the start".to_owned();
    cx.record("Resumed", None, message.clone());
    cx.notice(NoticeKind::Resumed, None, message);
}

fn restart_bakes(cx: &mut Ctx) {
    for s in &mut cx.st.services {
        if s.phase == ServicePhase::Progressing {
            s.bake_started_at = None;
            s.tally.clear();
            s.awaiting_approval = false;
        }
    }
}

/// What someone else changed in the stable Deployment of service `s`, in
/// words, against the version it should run where the service is: the
/// baseline until its promotion, the new version from then on. A template
/// that is neither is always a change; a promoted service back on its
/// baseline is one too (the old version re-applied, e.g. by a GitOps tool),
/// and so is a promotion put back by someone else while it rolls out.
fn changed_by_someone_else(s: &ServiceStatus, stable: &StableObservation) -> Option<String> {
    let expected = match s.phase {
        ServicePhase::Promoted => Expected::New,
        ServicePhase::Promoting => {
            let reverted = s
                .since
                .as_ref()
                .is_some_and(|t| super::reverted_since(stable, t.0));
            if stable.template == TemplateState::Baseline && !reverted {
                return None;
            }
            Expected::New
        }
        _ if stable.template == TemplateState::Drifted => Expected::Baseline,
        _ => return None,
    };
    what_changed(stable, expected)
}

/// The first object of an unfinished service that someone else changed or removed.
pub(super) fn drift(cx: &Ctx) -> Option<(String, String)> {
    for (i, s) in cx.st.services.iter().enumerate() {
        let moving = matches!(s.phase, ServicePhase::Progressing | ServicePhase::Promoting);
        if !moving && !matches!(s.phase, ServicePhase::Pending | ServicePhase::Promoted) {
            continue;
        }
        let Some(svc) = cx.spec.service(&s.name) else {
            continue;
        };
        let at = cx
            .spec
            .services
            .iter()
            .position(|x| x.name == s.name)
            .unwrap_or(i);
        let why = match svc.kind() {
            MemberKind::Job(_) => super::migration::drift(cx, i, at),
            MemberKind::Flag(_) => super::flag::drift(cx, i, at),
            MemberKind::Deployment { .. } => None,
        };
        if let Some(message) = why {
            return Some((s.name.clone(), message));
        }
        if svc.deployment().is_none() {
            continue;
        }
        let seen = cx.seen(&s.name);
        match &seen.stable {
            None => {
                return Some((
                    s.name.clone(),
                    format!(
                        "Deployment {:?} (spec.services[{at}].deployment) was deleted while the release is in flight; \
                         recreate it",
                        svc.deployment().unwrap_or_default()
                    ),
                ));
            }
            Some(stable) => {
                if let Some(what) = changed_by_someone_else(s, stable) {
                    return Some((
                        s.name.clone(),
                        format!(
                            "Deployment {:?} (spec.services[{at}].deployment) was changed by someone else while \
                             the release is in flight: {what}; Signalman does not write it back: put it back \
                             (where a GitOps tool applies it, in its source)",
                            svc.deployment().unwrap_or_default()
                        ),
                    ));
                }
            }
        }
        if let Some(gw) = svc.traffic.as_ref().and_then(|t| t.gateway_api.as_ref()) {
            match &seen.route {
                Some(r) if r.found && !(moving && r.drifted) => {}
                Some(r) if r.found => {
                    return Some((
                        s.name.clone(),
                        format!(
                            "HTTPRoute {:?} (spec.services[{at}].traffic.gatewayAPI.httpRoute): its backendRefs \
                             were changed by someone else while the release is in flight; put them back",
                            gw.http_route
                        ),
                    ));
                }
                _ => {
                    return Some((
                        s.name.clone(),
                        format!(
                            "HTTPRoute {:?} (spec.services[{at}].traffic.gatewayAPI.httpRoute) is gone or no \
                             longer points at the stable Service; recreate it",
                            gw.http_route
                        ),
                    ));
                }
            }
        }
    }
    None
}

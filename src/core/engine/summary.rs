//! The parts of status a person reads at a glance: message, wave, progress,
//! kstatus conditions, and the bounded timeline.

use super::context::Ctx;
use crate::api::{
    Phase, RollbackReason, ServicePhase, Standing, default::TIMELINE_KEPT, set_standing,
};

pub(super) fn finish(cx: &mut Ctx) {
    effective_weights(cx);
    let total = cx.st.services.len();
    if total > 0 {
        let promoted = cx
            .st
            .services
            .iter()
            .filter(|s| s.phase == ServicePhase::Promoted)
            .count();
        let deferred = cx
            .st
            .services
            .iter()
            .filter(|s| s.phase == ServicePhase::Deferred)
            .count();
        cx.st.progress = Some(if deferred > 0 {
            format!("{promoted}/{total} promoted, {deferred} deferred")
        } else {
            format!("{promoted}/{total} promoted")
        });
    }
    if let Some(plan) = &cx.st.plan {
        let of = plan.waves.len();
        let moving = plan
            .waves
            .iter()
            .position(|w| {
                w.services.iter().any(|n| {
                    cx.st.services.iter().any(|s| {
                        &s.name == n
                            && !matches!(s.phase, ServicePhase::Promoted | ServicePhase::Deferred)
                    })
                })
            })
            .map_or(of, |w| w + 1);
        cx.st.current_wave = Some(format!("{moving}/{of}"));
    }
    cx.st.message = Some(message(cx));
    conditions(cx);
    super::warning::set(cx);
    // From the whole timeline, before it is capped; announced with its summary.
    super::report::on_final(cx);
    cap_timeline(cx);
    super::announce::announce(cx);
}

/// What each running canary really gets, next to the weight it was asked for.
fn effective_weights(cx: &mut Ctx) {
    for i in 0..cx.st.services.len() {
        let canary = cx
            .spec
            .service(&cx.st.services[i].name)
            .is_none_or(|s| s.deployment().is_some());
        let running = canary
            && matches!(
                cx.st.services[i].phase,
                ServicePhase::Progressing | ServicePhase::Promoting | ServicePhase::Withdrawing
            );
        let effective = running.then(|| {
            cx.seen(&cx.st.services[i].name)
                .canary
                .as_ref()
                .map_or(0, |c| c.effective)
        });
        cx.st.services[i].effective_weight = effective;
    }
}

fn message(cx: &Ctx) -> String {
    let st = &cx.st;
    let cause = || {
        st.rollback
            .as_ref()
            .map(|r| format!("{}: {}", r.reason, r.message))
            .unwrap_or_default()
    };
    match cx.phase() {
        Phase::Pending | Phase::AwaitingGates | Phase::AwaitingWindow | Phase::Failed => {
            st.message.clone().unwrap_or_default()
        }
        Phase::Verifying => super::verify::message(cx),
        Phase::Progressing => {
            let moving: Vec<String> = st
                .services
                .iter()
                .filter(|s| {
                    matches!(s.phase, ServicePhase::Progressing | ServicePhase::Promoting)
                        || cx.waiting.contains(&s.name)
                })
                .map(|s| format!("{} {}", s.name, s.message.as_deref().unwrap_or_default()))
                .collect();
            let wave = st.current_wave.as_deref().unwrap_or("?");
            if moving.is_empty() {
                format!("wave {wave}: starting")
            } else {
                format!("wave {wave}: {}", moving.join("; "))
            }
        }
        Phase::Held => match &st.hold {
            Some(h) => {
                let note = cx.note.as_ref().map(|n| format!(" ({n})")).unwrap_or_default();
                format!("held ({}, {}): {}{note}", h.id, h.reason, h.message)
            }
            None => "held".to_owned(),
        },
        Phase::Paused => "paused by spec.paused; set it to false to continue (the current steps bake again from the start)"
            .to_owned(),
        Phase::RollingBack => format!("rolling back after {}", cause()),
        Phase::Succeeded => super::defer::outcome(st),
        Phase::RolledBack => match &st.rollback {
            Some(_) => match super::migration::stayed_applied(cx) {
                Some(stays) => format!("rolled back after {}; {stays}", cause()),
                None => format!("rolled back after {}", cause()),
            },
            None => st.message.clone().unwrap_or_default(),
        },
    }
}

fn conditions(cx: &mut Ctx) {
    let phase = cx.phase();
    let stalled: Option<String> = match phase {
        // A service waiting for a paused Deployment needs a person to resume it.
        Phase::Pending | Phase::Progressing => cx.stalled.map(|r| r.to_string()),
        Phase::Held => cx.st.hold.as_ref().map(|h| h.reason.to_string()),
        Phase::RolledBack => Some("RolledBack".to_owned()),
        Phase::Failed => Some("Failed".to_owned()),
        _ => None,
    };
    let succeeded = phase == Phase::Succeeded;
    let reconciling = !succeeded && stalled.is_none();
    let reason = stalled.clone().unwrap_or_else(|| phase.as_str().to_owned());
    let message = cx.st.message.clone().unwrap_or_default();
    let generation = cx.st.observed_generation;
    let now = cx.time();
    set_standing(
        &mut cx.st.conditions,
        Standing {
            ready: succeeded,
            reconciling,
            stalled: stalled.is_some(),
        },
        &reason,
        &message,
        generation,
        now,
    );
}

/// Drop the oldest entries beyond the cap, but never the start, the first
/// deviation or the first rollback cause: the story a post-mortem needs.
fn cap_timeline(cx: &mut Ctx) {
    let tl = &mut cx.st.timeline;
    if tl.len() <= TIMELINE_KEPT {
        return;
    }
    let deviation = cx
        .st
        .rollback
        .as_ref()
        .and_then(|r| r.first_deviation_at.clone());
    let first = |reasons: &[&str]| tl.iter().position(|e| reasons.contains(&e.reason.as_str()));
    let rollback_reasons: Vec<&str> = RollbackReason::ALL.iter().map(|r| r.as_str()).collect();
    let keep: Vec<usize> = [
        first(&["Started"]),
        first(&rollback_reasons),
        first(&["MeasurementFailed"]),
        deviation.as_ref().and_then(|d| {
            tl.iter()
                .position(|e| e.reason == "MeasurementFailed" && &e.at == d)
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    let excess = tl.len() - TIMELINE_KEPT;
    let drop: Vec<usize> = (0..tl.len())
        .filter(|i| !keep.contains(i))
        .take(excess)
        .collect();
    let mut i = 0;
    tl.retain(|_| {
        let gone = drop.contains(&i);
        i += 1;
        !gone
    });
}

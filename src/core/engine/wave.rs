//! A later wave begins only when its window allows and its gates hold.
//! Services start as soon as their own dependencies are promoted, so the
//! question is asked by the first service of a wave ready to start, once
//! per decision for the whole wave; once one of its services has started
//! the wave is under way and the others follow without asking again.

use super::context::Ctx;
use super::gate::{self, Verdict};
use crate::api::{Phase, ServicePhase};

/// May service `name` begin its first step as far as the go/no-go of its
/// wave goes? When not, its message says why and the wait is on record.
pub(super) fn may_begin(cx: &mut Ctx, name: &str) -> bool {
    let plan = cx.plan();
    let Some(w) = plan
        .waves
        .iter()
        .position(|wave| wave.services.iter().any(|n| n == name))
    else {
        return true;
    };
    // The first wave was cleared when the release started.
    if w == 0 {
        return true;
    }
    let services = &plan.waves[w].services;
    let under_way = services.iter().any(|n| {
        cx.service_phase(n)
            .is_some_and(|p| !matches!(p, ServicePhase::Pending | ServicePhase::Deferred))
    });
    if under_way {
        return true;
    }
    let wave = w + 1;
    let allowed = match cx.wave_verdicts.get(&wave) {
        Some(v) => *v,
        None => {
            let v = decide(cx, wave, services);
            cx.wave_verdicts.insert(wave, v);
            v
        }
    };
    if !allowed {
        if let (Some(i), Some((_, why))) = (cx.index(name), &cx.wave_waits) {
            cx.st.services[i].message = Some(why.clone());
        }
        cx.waiting.push(name.to_owned());
    }
    allowed
}

fn decide(cx: &mut Ctx, wave: usize, services: &[String]) -> bool {
    if let Err(message) = super::window::allows(cx) {
        cx.wave_waits = Some((Phase::AwaitingWindow, format!("wave {wave} {message}")));
        return false;
    }
    if !gate::gated(cx) {
        return true;
    }
    match gate::check(cx, wave, services) {
        Verdict::Hold => true,
        Verdict::Wait(message) => {
            cx.wave_waits = Some((Phase::AwaitingGates, message));
            false
        }
        Verdict::TimedOut(message) => {
            cx.gate_timeout = Some(message);
            false
        }
    }
}

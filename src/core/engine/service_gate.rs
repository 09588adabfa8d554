//! A service's own gates (`spec.services[].gates`), checked when its turn
//! comes by the same code as the release's: while one does not hold the
//! service waits and the rest of the train moves on.

use super::context::{Ctx, plus};
use super::gate::{self, FIRST_CHECK, RECHECK};
use crate::api::{GateKind, GateStatus};

/// May service `i` start as far as its own gates go? Their state goes into
/// its status; when one does not hold, its message names the gate.
pub(super) fn clear(cx: &mut Ctx, i: usize) -> bool {
    let name = cx.st.services[i].name.clone();
    let Some(gates) = cx.spec.service(&name).map(|s| s.gates.clone()) else {
        return true;
    };
    if gates.is_empty() {
        return true;
    }
    let w = wave_of(cx, &name);
    let statuses: Vec<GateStatus> = gates
        .iter()
        .map(|g| {
            if g.approval == Some(true) {
                gate::approval(cx, &g.name, w)
            } else {
                // Results are asked for only while the service waits on its
                // gates, so every one of them counts.
                gate::query(cx, g, w, None, &cx.st.services[i].gates)
            }
        })
        .collect();
    let failing: Vec<String> = statuses
        .iter()
        .filter(|g| !g.holds)
        .map(|g| format!("{}: {}", g.name, g.reason))
        .collect();
    let unchecked = statuses
        .iter()
        .any(|g| g.kind == GateKind::Query && g.checked_at.is_none());
    let first_time = cx.st.services[i].gates.is_empty();
    cx.st.services[i].gates = statuses;
    if failing.is_empty() {
        let names: Vec<&str> = gates.iter().map(|g| g.name.as_str()).collect();
        cx.record(
            "GatesPassed",
            Some(&name),
            format!("every gate of {name} holds ({})", names.join(", ")),
        );
        return true;
    }
    let message = format!("waits for its gates: {}", failing.join("; "));
    if first_time {
        cx.record("AwaitingGates", Some(&name), message.clone());
    }
    cx.st.services[i].message = Some(message);
    cx.waiting.push(name);
    if unchecked {
        cx.wake_in(FIRST_CHECK);
    }
    for g in gates.iter().filter(|g| g.query.is_some()) {
        let checked = cx.st.services[i]
            .gates
            .iter()
            .find(|s| s.name == g.name)
            .and_then(|s| s.checked_at.clone());
        if let Some(at) = checked {
            cx.wake_at(plus(at.0, gate::interval(g)));
        }
    }
    cx.wake_in(RECHECK);
    false
}

/// The wave (from 1) of service `name`.
fn wave_of(cx: &Ctx, name: &str) -> i32 {
    cx.plan()
        .waves
        .iter()
        .position(|w| w.services.iter().any(|n| n == name))
        .map_or(0, |w| w as i32 + 1)
}

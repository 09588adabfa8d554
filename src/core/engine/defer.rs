//! Deferring a service that is not ready: it and every service that depends
//! on it are `Deferred`, the rest of the train ships, and the release ends
//! `Succeeded` listing what it did not ship and why.

use super::NoticeKind;
use super::context::Ctx;
use crate::api::{Deferral, ReleaseStatus, ServicePhase};

/// Defer `root` (Pending) for `reason`, then every Pending service that
/// depends on a deferred one, each once.
pub(super) fn defer(cx: &mut Ctx, root: &str, reason: String) {
    let Some(i) = cx.index(root) else { return };
    if cx.st.services[i].phase != ServicePhase::Pending {
        return;
    }
    set(cx, i, reason.clone());
    // The waves are in dependency order, so one pass reaches every dependent.
    let mut with: Vec<String> = Vec::new();
    for name in cx.plan().waves.iter().flat_map(|w| w.services.clone()) {
        let Some(j) = cx.index(&name) else { continue };
        if cx.st.services[j].phase != ServicePhase::Pending {
            continue;
        }
        let Some(dep) = cx.spec.service(&name).and_then(|svc| {
            svc.depends_on
                .iter()
                .find(|d| cx.service_phase(d) == Some(ServicePhase::Deferred))
                .cloned()
        }) else {
            continue;
        };
        set(cx, j, format!("depends on {dep}, which is deferred"));
        with.push(name);
    }
    let and = if with.is_empty() {
        String::new()
    } else {
        format!("; with it its dependents {}", with.join(", "))
    };
    cx.notice(
        NoticeKind::Deferred,
        Some(root),
        format!("{root} deferred ({reason}){and}"),
    );
}

fn set(cx: &mut Ctx, i: usize, reason: String) {
    let now = cx.time();
    let name = cx.st.services[i].name.clone();
    let s = &mut cx.st.services[i];
    s.phase = ServicePhase::Deferred;
    s.since = Some(now);
    s.message = Some(format!("deferred: {reason}"));
    if !cx.st.deferred.iter().any(|d| d.service == name) {
        cx.st.deferred.push(Deferral {
            service: name.clone(),
            reason: reason.clone(),
        });
    }
    cx.record(
        "Deferred",
        Some(&name),
        format!("{name} deferred: {reason}"),
    );
}

/// At the start every held service is deferred at once.
pub(super) fn held_at_start(cx: &mut Ctx) {
    let held: Vec<(String, String)> = cx
        .plan()
        .waves
        .iter()
        .flat_map(|w| w.services.clone())
        .filter_map(|name| {
            let hold = cx.spec.service(&name)?.hold.as_ref()?;
            Some((name, format!("held: {}", hold.reason.trim())))
        })
        .collect();
    for (name, reason) in held {
        defer(cx, &name, reason);
    }
}

/// When nothing else in the train can move, the services still waiting on a
/// gate of their own that does not hold are deferred (each gate checked at
/// least once), so the train can end.
pub(super) fn stuck_on_gates(cx: &mut Ctx) {
    let gated: Vec<String> = cx
        .st
        .services
        .iter()
        .filter(|s| s.phase == ServicePhase::Pending && s.gates.iter().any(|g| !g.holds))
        .map(|s| s.name.clone())
        .collect();
    if gated.is_empty() {
        return;
    }
    let behind = |cx: &Ctx, name: &str| -> bool {
        // Depends, directly or not, on a gated service.
        let mut todo = vec![name.to_owned()];
        let mut seen = std::collections::BTreeSet::new();
        while let Some(n) = todo.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            for d in cx
                .spec
                .service(&n)
                .map(|s| s.depends_on.clone())
                .unwrap_or_default()
            {
                if gated.contains(&d) {
                    return true;
                }
                todo.push(d);
            }
        }
        false
    };
    let nothing_moves = cx.st.services.iter().all(|s| match s.phase {
        ServicePhase::Promoted | ServicePhase::Deferred => true,
        ServicePhase::Pending => gated.contains(&s.name) || behind(cx, &s.name),
        _ => false,
    });
    if !nothing_moves {
        return;
    }
    for name in &gated {
        let Some(i) = cx.index(name) else { continue };
        let failing: Vec<&crate::api::GateStatus> = cx.st.services[i]
            .gates
            .iter()
            .filter(|g| !g.holds)
            .collect();
        if failing.iter().any(|g| g.checked_at.is_none()) {
            continue;
        }
        let Some(g) = failing.first() else { continue };
        let reason = format!("gate {} did not hold: {}", g.name, g.reason);
        defer(cx, name, reason);
    }
}

/// `N of M services promoted; K deferred: a (held: ...), b (depends on a)`.
pub(super) fn outcome(st: &ReleaseStatus) -> String {
    let total = st.services.len();
    let promoted = st
        .services
        .iter()
        .filter(|s| s.phase == ServicePhase::Promoted)
        .count();
    if st.deferred.is_empty() {
        return format!("all {total} services promoted");
    }
    let list: Vec<String> = st
        .deferred
        .iter()
        .map(|d| {
            let why = d
                .reason
                .strip_suffix(", which is deferred")
                .unwrap_or(&d.reason);
            format!("{} ({why})", d.service)
        })
        .collect();
    if promoted == 0 {
        return format!(
            "nothing shipped: all {total} services deferred: {}",
            list.join(", ")
        );
    }
    format!(
        "{promoted} of {total} services promoted; {} deferred: {}",
        st.deferred.len(),
        list.join(", ")
    )
}

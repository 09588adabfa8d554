//! The outbox of notifications: at the end of each decision, every transition
//! it made that a receiver wants is appended to `status.announcements` with
//! the next sequence number. It is written with the status that makes the
//! transition, so a transition whose status write is lost is decided (and
//! announced) again, and one that was written is never announced twice; the
//! operator delivers each number once per receiver.

use super::NoticeKind;
use super::context::Ctx;
use crate::api::{Announcement, Phase, RollbackReason, Transition, after_default};

pub(super) fn announce(cx: &mut Ctx) {
    if cx.obs.receivers.is_empty() {
        return;
    }
    let made = transitions(cx);
    let wanted: Vec<(Transition, Option<String>, String)> = made
        .into_iter()
        .filter(|(t, _, _)| cx.obs.receivers.iter().any(|r| r.wants(*t)))
        .collect();
    if wanted.is_empty() {
        return;
    }
    let last = cx.st.announcements.iter().map(|a| a.seq).max().unwrap_or(0);
    let at = cx.time();
    for (seq, (transition, service, message)) in (last + 1..).zip(wanted) {
        cx.st.announcements.push(Announcement {
            seq,
            transition,
            at: at.clone(),
            service,
            message,
        });
    }
    let excess = cx
        .st
        .announcements
        .len()
        .saturating_sub(after_default::ANNOUNCEMENTS_KEPT);
    cx.st.announcements.drain(..excess);
}

/// The transitions this decision made, in the order they happened: from its
/// notices (each told once by the rules that make it) and from the status
/// before and after it.
fn transitions(cx: &Ctx) -> Vec<(Transition, Option<String>, String)> {
    let before = cx.release.status.clone().unwrap_or_default();
    let mut out = Vec::new();
    for n in &cx.notices {
        let t = match n.kind {
            NoticeKind::Started => Transition::Started,
            NoticeKind::Held(_) => Transition::Held,
            NoticeKind::RollbackBegan(RollbackReason::Breach) => Transition::Breach,
            _ => continue,
        };
        out.push((t, n.service.clone(), n.message.clone()));
    }
    for s in &cx.st.services {
        let was = before
            .services
            .iter()
            .any(|b| b.name == s.name && b.awaiting_approval);
        if s.awaiting_approval && !was {
            out.push((
                Transition::AwaitingApproval,
                Some(s.name.clone()),
                format!("{}: {}", s.name, s.message.clone().unwrap_or_default()),
            ));
        }
    }
    let (was, is) = (before.phase.unwrap_or_default(), cx.phase());
    let message = cx.st.message.clone().unwrap_or_default();
    let awaits_override = |phase: Phase, message: &str| {
        phase == Phase::AwaitingWindow && message.contains(super::window::AWAITING_OVERRIDE)
    };
    if awaits_override(is, &message)
        && !awaits_override(was, before.message.as_deref().unwrap_or_default())
    {
        out.push((Transition::AwaitingApproval, None, message.clone()));
    }
    if was == is {
        return out;
    }
    // A final phase is told with the report's one line when there is one.
    let summary = cx
        .st
        .report
        .as_ref()
        .map_or_else(|| message.clone(), |r| r.summary.clone());
    match is {
        Phase::AwaitingWindow => out.push((Transition::AwaitingWindow, None, message)),
        Phase::AwaitingGates => out.push((Transition::AwaitingGates, None, message)),
        Phase::Succeeded => out.push((Transition::Succeeded, None, summary)),
        Phase::RolledBack => out.push((Transition::RolledBack, None, summary)),
        Phase::Failed => out.push((Transition::Failed, None, summary)),
        _ => {}
    }
    out
}

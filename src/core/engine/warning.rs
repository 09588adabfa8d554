//! The `Warning` condition: everything a person should know that stops
//! nothing, at once. It has several causes (too many cross-team
//! dependencies, a refused `spec.rollback`, notification receivers that
//! cannot be used); each is derived afresh from the status and the
//! observations in every decision, so one going away never hides another
//! and a cause that is gone leaves no stale condition behind.

use super::context::Ctx;
use crate::api::{ConditionType, Phase, set_condition};

/// The causes in force, each as its reason and message.
fn causes(cx: &Ctx) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(ct) = &cx.st.cross_team {
        let (reason, message) = super::cross_team::warning(ct);
        out.push((reason, message));
    }
    if cx.raw.rollback == Some(true) {
        let phase = cx.phase();
        if phase == Phase::Succeeded {
            if let Some(why) = cx
                .st
                .rollback_window
                .as_ref()
                .and_then(|w| w.refused.clone())
            {
                out.push(("RollbackRefused", why));
            }
        } else if phase.is_in_flight() && cx.started() {
            let why = crate::rollback_window::refusal_of(&cx.st, cx.now).unwrap_or_default();
            out.push((
                "RollbackRefused",
                format!(
                    "{why}; spec.rollback is ignored while the release is in flight (remove it, or \
                     it takes effect once the release has Succeeded)"
                ),
            ));
        }
    }
    if !cx.obs.receiver_problems.is_empty() {
        out.push((
            "ReceiverUnusable",
            format!(
                "notifications cannot be sent: {}; the release runs on",
                cx.obs.receiver_problems.join("; ")
            ),
        ));
    }
    out
}

/// Set the `Warning` condition from its causes, or take it away when there is none.
/// Several causes: their reasons joined with `,` and their messages with `; `.
pub(super) fn set(cx: &mut Ctx) {
    let causes = causes(cx);
    if causes.is_empty() {
        cx.st
            .conditions
            .retain(|c| c.type_ != ConditionType::Warning.as_str());
        return;
    }
    let reasons: Vec<&str> = causes.iter().map(|(r, _)| *r).collect();
    let messages: Vec<&str> = causes.iter().map(|(_, m)| m.as_str()).collect();
    let generation = cx.st.observed_generation;
    let now = cx.time();
    set_condition(
        &mut cx.st.conditions,
        ConditionType::Warning,
        true,
        &reasons.join(","),
        &messages.join("; "),
        generation,
        now,
    );
}

//! After `Succeeded`: the rollback window. Within it `spec.rollback: true`
//! reverses the whole train as a breach would (flags first, then every
//! service restored in rollback order, migration rollback Jobs run), unless
//! something else changed what the release left: restoring a baseline then
//! would undo someone else's change. When the window ends the baselines are
//! removed and nothing more happens.
//!
//! A release that succeeded before the operator kept a window gets the one it
//! would have had (`finishedAt` plus the window in force) on its first
//! decision, so its baselines are removed too once that has passed.

use super::context::Ctx;
use super::{Action, NoticeKind, WriteRefusal};
use crate::api::{MemberKind, Phase, ROLLBACK_BY_ANNOTATION, RollbackReason, ServicePhase};

/// `requested_by` when the Release does not name who asked.
pub(super) const UNNAMED: &str = "spec.rollback";

pub(super) fn run(cx: &mut Ctx) {
    if cx.deleting() {
        return;
    }
    super::finish::open_window(cx);
    if cx.raw.rollback == Some(true) {
        match refusal(cx) {
            Some(why) => refuse(cx, why),
            None => return begin(cx),
        }
    }
    close_if_due(cx);
}

/// Why the rollback asked for cannot be done, naming each thing in the way.
fn refusal(cx: &Ctx) -> Option<String> {
    if let Some(why) = crate::rollback_window::refusal(cx.release, cx.now) {
        return Some(why);
    }
    let mut changed = Vec::new();
    for s in cx.st.services.iter() {
        if s.phase != ServicePhase::Promoted {
            continue;
        }
        let Some(svc) = cx.spec.service(&s.name) else {
            continue;
        };
        let seen = cx.seen(&s.name);
        match svc.kind() {
            MemberKind::Deployment { deployment, .. } => match &seen.stable {
                None => changed.push(format!(
                    "Deployment {deployment:?} (service {}) no longer exists",
                    s.name
                )),
                Some(stable) => {
                    let what = super::what_changed(stable, super::Expected::New);
                    if let Some(what) = what {
                        changed.push(format!(
                            "Deployment {deployment:?} (service {}) was changed after the release \
                             succeeded: {what}",
                            s.name
                        ));
                    }
                }
            },
            MemberKind::Flag(flag) => {
                let cm = flag.config_map.as_deref().unwrap_or_default();
                let Some(now) = &seen.flag else {
                    changed.push(format!(
                        "ConfigMap {cm:?} (flag {}) no longer exists",
                        s.name
                    ));
                    continue;
                };
                for (key, set) in &flag.keys {
                    let is = match now.values.get(key) {
                        Some(v) => format!("{v:?}"),
                        None => "absent".to_owned(),
                    };
                    if now.values.get(key) != Some(set) {
                        changed.push(format!(
                            "ConfigMap {cm:?} key {key:?} (flag {}) is {is}, the release set {set:?}",
                            s.name
                        ));
                    }
                }
            }
            MemberKind::Job(_) => {}
        }
    }
    if changed.is_empty() {
        return None;
    }
    Some(format!(
        "spec.rollback: {}; restoring the baselines would undo that: put back what the release \
         left, or release the versions you want as a new Release",
        changed.join("; ")
    ))
}

/// Refused: said in `status.rollbackWindow.refused` and the `Warning`
/// condition, and told once (a timeline entry and an Event) when it is new.
fn refuse(cx: &mut Ctx, why: String) {
    let Some(w) = cx.st.rollback_window.as_mut() else {
        return;
    };
    if w.refused.as_deref() == Some(why.as_str()) {
        return;
    }
    w.refused = Some(why.clone());
    cx.record("RollbackRefused", None, why.clone());
    cx.notice(NoticeKind::RollbackRefused, None, why);
}

/// Who asked: the annotation `kubectl signalman rollback` sets, else the field itself.
fn requested_by(cx: &Ctx) -> String {
    cx.release
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ROLLBACK_BY_ANNOTATION))
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| UNNAMED.to_owned())
}

/// Accepted: the train is reversed from here exactly as after a breach.
fn begin(cx: &mut Ctx) {
    let by = requested_by(cx);
    let message = if by == UNNAMED {
        format!(
            "rolled back by spec.rollback (no annotation {ROLLBACK_BY_ANNOTATION} names who asked)"
        )
    } else {
        format!("rolled back by {by} (spec.rollback)")
    };
    if let Some(w) = cx.st.rollback_window.as_mut() {
        w.refused = None;
    }
    // The wake-up at the window's end no longer applies: the rollback sets its own.
    cx.requeue = None;
    super::rollback::begin(cx, RollbackReason::Manual, None, message, None);
    if let Some(cause) = cx.st.rollback.as_mut() {
        cause.requested_by = Some(by);
    }
}

/// The window ended: every baseline goes, once, and the release is left alone.
fn close_if_due(cx: &mut Ctx) {
    let Some(w) = &cx.st.rollback_window else {
        return;
    };
    if w.closed_at.is_some() || cx.now < w.until.0 {
        return;
    }
    let with_baseline: Vec<String> = cx
        .st
        .services
        .iter()
        .filter(|s| s.baseline.is_some())
        .filter(|s| {
            cx.spec
                .service(&s.name)
                .is_some_and(|svc| svc.deployment().is_some())
        })
        .map(|s| s.name.clone())
        .collect();
    for name in &with_baseline {
        cx.act(Action::DeleteBaseline {
            service: name.clone(),
        });
    }
    let now = cx.time();
    if let Some(w) = cx.st.rollback_window.as_mut() {
        w.closed_at = Some(now);
    }
    let message = if with_baseline.is_empty() {
        "the rollback window closed; the release can no longer be rolled back".to_owned()
    } else {
        format!(
            "the rollback window closed: the baselines of {} are removed and the release can no \
             longer be rolled back",
            with_baseline.join(", ")
        )
    };
    cx.record("RollbackWindowClosed", None, message);
    cx.requeue = None;
}

/// The API server refused, as invalid, a write of the decision made on a
/// `Succeeded` release: one of a manual rollback's first writes. The rollback
/// cannot complete (retrying would only be refused again), so it ends `Failed`
/// for a person, as a rollback refused mid-way does.
pub(super) fn refused(cx: &mut Ctx, r: &WriteRefusal) {
    if cx.raw.rollback != Some(true) || refusal(cx).is_some() {
        return run(cx);
    }
    begin(cx);
    cx.actions.clear();
    cx.requeue = None;
    if cx.phase() == Phase::RollingBack {
        super::hold::refused(cx, r);
    }
}

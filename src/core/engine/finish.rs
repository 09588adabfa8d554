//! The end of a release: `Succeeded`, and the rollback window it opens (the
//! completion report is written for every final phase, see `report`).

use super::NoticeKind;
use super::context::{Ctx, plus};
use crate::api::{Phase, RollbackWindow};

/// The train is promoted (and verified, when `spec.verify` asks for it). The
/// baselines stay for the rollback window; the controller wakes when it ends
/// to remove them.
pub(super) fn succeeded(cx: &mut Ctx) {
    cx.set_phase(Phase::Succeeded);
    cx.st.finished_at = Some(cx.time());
    cx.requeue = None;
    open_window(cx);
    let message = super::defer::outcome(&cx.st);
    cx.record("Succeeded", None, message.clone());
    cx.notice(NoticeKind::Succeeded, None, message);
}

/// `status.rollbackWindow` from `finishedAt` and the window in force, unless it
/// is there; the wake-up at its end while it is open.
pub(super) fn open_window(cx: &mut Ctx) {
    if cx.st.rollback_window.is_none() {
        let finished = cx.st.finished_at.clone().unwrap_or_else(|| cx.time());
        let length = crate::rollback_window::length(&cx.st);
        cx.st.rollback_window = Some(RollbackWindow {
            until: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(plus(finished.0, length)),
            closed_at: None,
            refused: None,
        });
    }
    if let Some(w) = &cx.st.rollback_window
        && w.closed_at.is_none()
    {
        let until = w.until.0;
        cx.wake_at(until);
    }
}

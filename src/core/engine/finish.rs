//! The end of a release: `Succeeded` and what follows it (the report, the
//! rollback window).

use super::NoticeKind;
use super::context::Ctx;
use crate::api::Phase;

/// The train is promoted (and verified, when `spec.verify` asks for it).
// TODO(issue 14): open the rollback window; the report.
pub(super) fn succeeded(cx: &mut Ctx) {
    cx.set_phase(Phase::Succeeded);
    cx.st.finished_at = Some(cx.time());
    cx.requeue = None;
    let message = super::defer::outcome(&cx.st);
    cx.record("Succeeded", None, message.clone());
    cx.notice(NoticeKind::Succeeded, None, message);
}

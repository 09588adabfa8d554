//! The release window before a wave begins: open, overridden (a
//! justification and an approval of the override), or a wait that says
//! exactly what is missing. A running step is never cut short: only
//! services about to start ask.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::NoticeKind;
use super::context::Ctx;
use crate::api::WindowStatus;
use crate::policy::approval::Target;
use crate::policy::{self, REVIEW_GATE};

/// How soon a window that cannot be read is looked at again.
const RECHECK: Duration = Duration::from_secs(30);

/// How a release outside its window says it waits for the override's
/// approval: the announcement `AwaitingApproval` is told when it starts to.
pub(super) const AWAITING_OVERRIDE: &str = "waits for an approval of the window override";

/// May a wave begin now as far as the window goes? `Err` carries the
/// release's message; the wait is in `status.window` and the wake-up is set.
pub(super) fn allows(cx: &mut Ctx) -> Result<(), String> {
    let check = match policy::window::for_release(cx.raw, &cx.obs.policy, cx.now) {
        Ok(Some(c)) => c,
        Ok(None) => {
            cx.st.window = None;
            return Ok(());
        }
        Err(p) => {
            cx.wake_in(RECHECK);
            return Err(format!("the release window cannot be read: {p}"));
        }
    };
    let next_opening = check.next_opening.map(Time);
    if check.open {
        cx.st.window = Some(WindowStatus {
            open: true,
            next_opening: None,
            message: check.describe,
        });
        return Ok(());
    }
    let hours = check
        .describe
        .split("; ")
        .next()
        .unwrap_or_default()
        .to_owned();
    let what = match &check.frozen {
        Some(f) => format!("frozen ({f})"),
        None => format!("outside the window ({hours})"),
    };
    let opens = match &check.opens {
        Some(o) => format!("opens {o}"),
        None => "does not open within a year".to_owned(),
    };
    let name = cx.release_name().to_owned();
    let justification = cx
        .raw
        .window_override
        .as_ref()
        .map(|o| o.justification.trim().to_owned())
        .filter(|j| !j.is_empty());
    let window_approval = cx.approval(&Target::Window);
    let review = policy::is_hotfix(cx.raw).then(|| cx.approval(&Target::Gate(REVIEW_GATE)));
    let approver = window_approval
        .approved_by
        .or(review.as_ref().and_then(|r| r.approved_by))
        .map(|a| a.spec.approver.clone());
    let command = Target::Window.command(&name);

    if let (Some(j), Some(by)) = (&justification, &approver) {
        let message = format!("{what}; overridden by {by}: {j}");
        let told = cx.st.window.as_ref().is_some_and(|w| w.message == message);
        cx.st.window = Some(WindowStatus {
            open: false,
            next_opening,
            message: message.clone(),
        });
        if !told {
            cx.record("WindowOverride", None, message.clone());
            cx.notice(NoticeKind::Approved, None, message);
        }
        return Ok(());
    }

    let mut message = match (&justification, &approver, &check.frozen) {
        (None, None, Some(_)) => format!(
            "{what}: needs spec.override.justification and an approved window override ({command}); \
             otherwise it {opens}"
        ),
        (None, None, None) => format!("{what}; {opens}"),
        // With an approver too it went on above.
        (Some(_), _, _) => format!(
            "{what}: has a justification; {AWAITING_OVERRIDE} ({command}); \
             otherwise it {opens}"
        ),
        (None, Some(by), _) => format!(
            "{what}: the window override is approved by {by} but needs spec.override.justification \
             (why it cannot wait); otherwise it {opens}"
        ),
    };
    for why in window_approval
        .refused
        .iter()
        .chain(review.iter().flat_map(|r| &r.refused))
    {
        message.push_str("; ");
        message.push_str(why);
    }
    cx.st.window = Some(WindowStatus {
        open: false,
        next_opening,
        message: check.describe,
    });
    match check.next_opening {
        Some(at) => cx.wake_at(at),
        None => cx.wake_in(Duration::from_secs(3600)),
    }
    Err(message)
}

//! A step that needs an approval: its bake passed, the service stays at its
//! weight, still measured, until someone allowed to approve signs it off.

use super::NoticeKind;
use super::context::Ctx;
use crate::api::Step;
use crate::policy::approval::Target;

pub(super) enum StepApproval {
    NotNeeded,
    /// Approved in this decision: the service moves on.
    Given,
    /// Waits, with the service's message.
    Waiting(String),
}

/// Step `k` (from 0) of service `i` passed its bake: may it move on?
pub(super) fn step_approval(cx: &mut Ctx, i: usize, k: usize, step: &Step) -> StepApproval {
    if step.approval != Some(true) {
        return StepApproval::NotNeeded;
    }
    let name = cx.st.services[i].name.clone();
    let number = k as i32 + 1;
    let target = Target::Step {
        service: &name,
        step: number,
    };
    let verdict = cx.approval(&target);
    if let Some(a) = verdict.approved_by {
        let message = format!(
            "{name}: step {number} at {}% approved by {}: {:?}",
            step.weight, a.spec.approver, a.spec.comment
        );
        cx.st.services[i].awaiting_approval = false;
        cx.record("Approved", Some(&name), message.clone());
        cx.notice(NoticeKind::Approved, Some(&name), message);
        return StepApproval::Given;
    }
    if !cx.st.services[i].awaiting_approval {
        cx.st.services[i].awaiting_approval = true;
        cx.record(
            "AwaitingApproval",
            Some(&name),
            format!(
                "step {number} at {}% passed its bake; waits for an approval",
                step.weight
            ),
        );
    }
    let mut message = format!(
        "waits at {}% for an approval of step {number} ({})",
        step.weight,
        target.command(cx.release_name())
    );
    for why in &verdict.refused {
        message.push_str("; ");
        message.push_str(why);
    }
    StepApproval::Waiting(message)
}

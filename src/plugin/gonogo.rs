//! What the plugin's views share about go/no-go: the release as the policy in
//! force completes it (its `status.policy`, or the one `policy::applied`
//! computes before the controller has written it). The rules themselves
//! (which gates, which steps wait, whose approval counts, when the window
//! opens) are the core's `policy`, as the controller uses them.

use crate::api::{AppliedPolicy, Approvals, Release, ReleaseSpec};
use signalman_core::policy;

/// The approvals the profile in force asks for (none without a policy).
pub fn approvals(applied: Option<&AppliedPolicy>) -> Approvals {
    applied
        .and_then(AppliedPolicy::approvals)
        .cloned()
        .unwrap_or_default()
}

/// The spec as the train will run it: steps and analysis limits from the
/// profile filled in, by the policy fixed in its status, else by `applied`
/// (what the controller will fix when it starts).
pub fn effective_spec(release: &Release, applied: Option<&AppliedPolicy>) -> ReleaseSpec {
    let fixed = release.status.as_ref().and_then(|s| s.policy.as_ref());
    match fixed.or(applied) {
        Some(a) => policy::fill(&release.spec, a),
        None => release.spec.clone(),
    }
}

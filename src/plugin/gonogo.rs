//! What the plugin's views share about go/no-go: the release as the policy in
//! force completes it (its `status.policy`, or the one `policy::applied`
//! computes before the controller has written it). The rules themselves
//! (which gates, which steps wait, whose approval counts, when the window
//! opens) are the core's `policy`, as the controller uses them.

use std::borrow::Cow;

use crate::api::{AppliedPolicy, Approvals, Release, ReleaseSpec};
use signalman_core::policy;

/// The approvals the profile in force asks for (none without a policy).
pub fn approvals(applied: Option<&AppliedPolicy>) -> Approvals {
    applied
        .and_then(|a| a.defaults.as_ref())
        .and_then(|p| p.approvals.clone())
        .unwrap_or_default()
}

/// `release` with `applied` as its policy when its status has none yet, so
/// [`policy::effective`] completes it the way the controller will.
pub fn with_policy<'a>(release: &'a Release, applied: Option<&AppliedPolicy>) -> Cow<'a, Release> {
    let has = release.status.as_ref().is_some_and(|s| s.policy.is_some());
    match applied {
        Some(a) if !has => {
            let mut r = release.clone();
            r.status.get_or_insert_with(Default::default).policy = Some(a.clone());
            Cow::Owned(r)
        }
        _ => Cow::Borrowed(release),
    }
}

/// The spec as the train will run it: steps and analysis limits from the profile filled in.
pub fn effective_spec(release: &Release, applied: Option<&AppliedPolicy>) -> ReleaseSpec {
    let r = with_policy(release, applied);
    policy::effective(&r).into_owned()
}

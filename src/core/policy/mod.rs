//! Go/no-go policy, pure: the release's risk and why, the profile it
//! follows, and the spec as that profile completes it. The controller and
//! the plugin both call these, so `plan` shows what the train will do.

pub mod window;

use std::borrow::Cow;

use crate::api::{AppliedPolicy, Release, ReleaseSpec, Risk};
use crate::engine::PolicyObservation;

/// The release's risk class (never `Auto`) and why, e.g.
/// `(High, "high: payments-api is a payment change")`.
pub fn risk(spec: &ReleaseSpec) -> (Risk, String) {
    let _ = spec;
    (Risk::Medium, String::new())
}

/// The policy `spec` follows under `policy`: the profile its risk (or its
/// type, for a hotfix) picks, and the gate timeout in force.
pub fn applied(spec: &ReleaseSpec, policy: &PolicyObservation) -> AppliedPolicy {
    let _ = (spec, policy);
    AppliedPolicy::default()
}

/// The release's spec completed by the policy fixed in its status: every
/// service without its own steps (and without `spec.defaults.steps`) gets
/// the profile's, and analysis limits it leaves unset come from the profile.
/// Without a policy in status, the spec as written.
pub fn effective(release: &Release) -> Cow<'_, ReleaseSpec> {
    Cow::Borrowed(&release.spec)
}

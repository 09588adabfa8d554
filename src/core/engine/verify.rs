//! Verification (`spec.verify`): the whole promoted train watched for its
//! bake before the release succeeds.

use super::context::Ctx;

/// Every service is promoted (or deferred).
// TODO(issue 14): begin verification when `spec.verify` is set.
pub(super) fn train_promoted(cx: &mut Ctx) {
    super::finish::succeeded(cx);
}

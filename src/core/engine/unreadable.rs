//! A stored Release that does not parse as a Release: the API server accepted
//! it (a CRD installed without a bound, a value its schema admits and the
//! operator's types refuse) but nothing can be decided from it. It is
//! reported on that object alone, as a Release refused for an invalid spec
//! is, and every other Release goes on.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::{Notice, NoticeKind};
use crate::api::{ConditionType, Phase, StallReason, Standing, set_standing};

/// The status fields an unreadable Release gets. Only these are written:
/// the rest of its status is as unreadable as the spec may be.
#[derive(Clone, Debug, PartialEq)]
pub struct Unreadable {
    /// `Pending` for a Release that never had a phase; `None`: keep the one
    /// it has (a train in flight stays where it is, frozen).
    pub phase: Option<Phase>,
    pub message: String,
    pub conditions: Vec<Condition>,
    /// The Warning Event, only when the stall is new or says something new.
    pub notice: Option<Notice>,
}

/// Stall a Release whose stored object fails to parse with `error` (the
/// field's path and the reason). `phase` and `conditions` are what its status
/// holds now, as far as they parse.
pub fn unreadable(
    error: &str,
    phase: Option<Phase>,
    conditions: Vec<Condition>,
    generation: Option<i64>,
    now: Timestamp,
) -> Unreadable {
    let message = format!(
        "the stored Release cannot be read: {error}; correct that field (a value the CRD \
         installed let through, e.g. an older CRD without bounds: upgrade it); nothing is \
         decided for this Release until then"
    );
    let reason = StallReason::InvalidSpec.to_string();
    let already = conditions.iter().any(|c| {
        c.type_ == ConditionType::Stalled.as_str()
            && c.status == "True"
            && c.reason == reason
            && c.message == message
    });
    let mut conditions = conditions;
    let now = Time(now);
    set_standing(
        &mut conditions,
        Standing {
            ready: false,
            reconciling: false,
            stalled: true,
        },
        &reason,
        &message,
        generation,
        now,
    );
    Unreadable {
        phase: phase.is_none().then_some(Phase::Pending),
        notice: (!already).then(|| Notice {
            kind: NoticeKind::Stalled,
            service: None,
            message: format!("{reason}: {message}"),
        }),
        message,
        conditions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stalls_naming_the_field_once_and_keeps_a_phase_in_flight() {
        let error = "spec.defaults.analysis.failureLimit: invalid value: integer `3000000000`, expected i32";
        let t0 = Timestamp::from_second(1_000).unwrap();
        let first = unreadable(error, None, Vec::new(), Some(2), t0);
        assert_eq!(first.phase, Some(Phase::Pending));
        assert!(first.message.contains(error), "{}", first.message);
        let stalled = first
            .conditions
            .iter()
            .find(|c| c.type_ == "Stalled")
            .unwrap();
        assert_eq!(
            (stalled.status.as_str(), stalled.reason.as_str()),
            ("True", "InvalidSpec")
        );
        assert!(first.notice.as_ref().unwrap().kind.warning());
        // Looked at again later: the same status, no second Event.
        let t1 = Timestamp::from_second(2_000).unwrap();
        let again = unreadable(
            error,
            Some(Phase::Pending),
            first.conditions.clone(),
            Some(2),
            t1,
        );
        assert_eq!(again.conditions, first.conditions);
        assert_eq!(again.notice, None);
        assert_eq!(again.phase, None, "a phase it has is kept");
        // Another field fails: a new Event.
        let other = unreadable("spec.holdTimeout: x", None, first.conditions, Some(3), t1);
        assert!(other.notice.is_some());
    }
}

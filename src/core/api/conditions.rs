//! kstatus conditions (`Ready`, `Reconciling`, `Stalled`), so `kubectl wait`,
//! Flux and Helm can tell where a release stands without knowing Signalman.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The three condition types kstatus reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionType {
    Ready,
    Reconciling,
    Stalled,
    /// Not a kstatus condition: something a person should know that stops nothing
    /// (e.g. more cross-team dependencies than the policy allows).
    Warning,
}

impl ConditionType {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Ready => "Ready",
            ConditionType::Reconciling => "Reconciling",
            ConditionType::Stalled => "Stalled",
            ConditionType::Warning => "Warning",
        }
    }
}

/// Set a condition, keeping `lastTransitionTime` unless `status` flips, so that
/// re-deciding an unchanged release produces an identical status (and no write).
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: ConditionType,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Time,
) {
    let status = if status { "True" } else { "False" };
    match conditions.iter_mut().find(|c| c.type_ == type_.as_str()) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = now;
                c.status = status.to_owned();
            }
            c.reason = reason.to_owned();
            c.message = message.to_owned();
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.as_str().to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message: message.to_owned(),
            observed_generation: generation,
            last_transition_time: now,
        }),
    }
}

/// Which of the three conditions hold: where a release stands for kstatus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Standing {
    pub ready: bool,
    pub reconciling: bool,
    pub stalled: bool,
}

/// [`set_condition`] for all three at once, with one reason and message.
pub fn set_standing(
    conditions: &mut Vec<Condition>,
    standing: Standing,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Time,
) {
    for (type_, on) in [
        (ConditionType::Ready, standing.ready),
        (ConditionType::Reconciling, standing.reconciling),
        (ConditionType::Stalled, standing.stalled),
    ] {
        set_condition(
            conditions,
            type_,
            on,
            reason,
            message,
            generation,
            now.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Time {
        Time(jiff::Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let mut cs = Vec::new();
        set_condition(
            &mut cs,
            ConditionType::Ready,
            false,
            "Progressing",
            "a",
            Some(1),
            t(10),
        );
        set_condition(
            &mut cs,
            ConditionType::Ready,
            false,
            "Progressing",
            "b",
            Some(2),
            t(20),
        );
        assert_eq!(cs[0].last_transition_time, t(10));
        assert_eq!(cs[0].message, "b");
        assert_eq!(cs[0].observed_generation, Some(2));
        set_condition(
            &mut cs,
            ConditionType::Ready,
            true,
            "Succeeded",
            "c",
            Some(2),
            t(30),
        );
        assert_eq!(cs[0].last_transition_time, t(30));
        assert_eq!(cs.len(), 1);
    }
}

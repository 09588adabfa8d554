//! The go/no-go facts the plugin's views share: which approval gates a
//! release has, which steps wait for an approval, who may approve, and how a
//! window's next opening is written. Pure, from the Release and the policy in
//! force (its `status.policy`, or the one `policy::applied` computes before
//! the controller has written it).
//!
//! The controller decides with the engine; these mirror the rules of the
//! design (gates before start, step approvals) for display and for the checks
//! `approve` makes before it creates anything.

use std::borrow::Cow;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::api::{
    AppliedPolicy, Approvals, CREATED_BY_ANNOTATION, Release, ReleaseSpec, ReleaseType, Risk, Step,
};
use signalman_core::policy;

/// The built-in gate that holds when every Deployment of the wave is rolled out.
pub const DEPLOYMENTS_READY: &str = "deployments-ready";
/// The approval gate a profile's `approvals.beforeStart` adds.
pub const APPROVAL_GATE: &str = "approval";
/// The approval gate every hotfix has: its review.
pub const REVIEW_GATE: &str = "review";

/// How a risk class is written (`auto` only for a spec that was never resolved).
pub fn risk_word(risk: Risk) -> &'static str {
    match risk {
        Risk::Auto => "auto",
        Risk::Low => "low",
        Risk::Medium => "medium",
        Risk::High => "high",
    }
}

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

/// The approval gates of a release, in the order they are checked: its own
/// `spec.gates` with `approval: true`, then `approval` (the profile's
/// `beforeStart`) and `review` (a hotfix), both before the first wave only.
pub fn approval_gates(spec: &ReleaseSpec, applied: Option<&AppliedPolicy>) -> Vec<String> {
    let mut out: Vec<String> = spec
        .gates
        .iter()
        .filter(|g| g.approval == Some(true))
        .map(|g| g.name.clone())
        .collect();
    if approvals(applied).before_start == Some(true) {
        out.push(APPROVAL_GATE.to_owned());
    }
    if spec.release_type == Some(ReleaseType::Hotfix) {
        out.push(REVIEW_GATE.to_owned());
    }
    out
}

/// Step `index` (from 0) of `steps` waits for an approval after its bake:
/// it asks for one itself, or the profile wants one before the last step
/// and it is the step before the last.
pub fn step_waits(steps: &[Step], index: usize, approvals: &Approvals) -> bool {
    let own = steps.get(index).is_some_and(|s| s.approval == Some(true));
    let before_last = approvals.before_last_step == Some(true) && index + 2 == steps.len();
    own || before_last
}

/// Who created the release, as the API server vouched for it.
pub fn creator(release: &Release) -> Option<&str> {
    release
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CREATED_BY_ANNOTATION))
        .map(String::as_str)
}

/// Why `user`'s approval would not count under the profile in force, if it would not.
pub fn would_not_count(
    release: &Release,
    applied: Option<&AppliedPolicy>,
    user: &str,
) -> Option<String> {
    let a = approvals(applied);
    let policy = applied.and_then(|p| p.name.as_deref()).unwrap_or("(none)");
    let profile = applied
        .and_then(|p| p.profile.as_deref())
        .unwrap_or("(none)");
    if !a.approvers.is_empty() && !a.approvers.iter().any(|x| x == user) {
        return Some(format!(
            "ReleasePolicy {policy} (profile {profile}) counts approvals only from {}, and you are {user}; ask one of them to approve",
            a.approvers.join(", ")
        ));
    }
    if a.four_eyes == Some(true) {
        match creator(release) {
            Some(c) if c == user => {
                return Some(format!(
                    "ReleasePolicy {policy} (profile {profile}) needs four eyes and you created this Release (annotation {CREATED_BY_ANNOTATION}: {c}); ask someone else to approve"
                ));
            }
            None => {
                return Some(format!(
                    "ReleasePolicy {policy} (profile {profile}) needs four eyes, and this Release does not say who created it (no annotation {CREATED_BY_ANNOTATION}), so no approval can count; recreate it with the annotation set to its creator's user name"
                ));
            }
            Some(_) => {}
        }
    }
    None
}

/// The ReleasePolicy that applies to `spec` in a namespace labelled
/// `namespace_label` (`signalman.dev/policy`), and what named it: `spec.policy`,
/// else the namespace's label, else `default` (named by nothing: its absence
/// means no policy, not a missing one).
// The controller resolves the same way; this belongs in the core beside `policy::applied`.
pub fn policy_name(spec: &ReleaseSpec, namespace_label: Option<&str>) -> (String, Option<String>) {
    if let Some(p) = &spec.policy {
        return (p.clone(), Some("spec.policy".to_owned()));
    }
    if let Some(l) = namespace_label.filter(|l| !l.is_empty()) {
        return (
            l.to_owned(),
            Some(format!("namespace label {}", crate::api::POLICY_LABEL)),
        );
    }
    (crate::api::DEFAULT_POLICY.to_owned(), None)
}

/// An instant as a person plans around it in `zone`: `Mon 09:00 Europe/Berlin`,
/// with the date when it is a week or more after `now`.
pub fn opening(at: Timestamp, zone: &str, now: Timestamp) -> String {
    let tz = TimeZone::get(zone).unwrap_or(TimeZone::UTC);
    let local = at.to_zoned(tz);
    let far = at.as_second() - now.as_second() >= 6 * 24 * 3600;
    let when = if far {
        local.strftime("%a %Y-%m-%d %H:%M")
    } else {
        local.strftime("%a %H:%M")
    };
    format!("{when} {zone}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Gate, Profile};

    fn steps(weights: &[i32]) -> Vec<Step> {
        weights
            .iter()
            .map(|w| Step {
                weight: *w,
                bake: std::time::Duration::from_secs(60).into(),
                approval: None,
            })
            .collect()
    }

    fn applied(a: Approvals) -> AppliedPolicy {
        AppliedPolicy {
            name: Some("prod".into()),
            profile: Some("high".into()),
            defaults: Some(Profile {
                approvals: Some(a),
                ..Default::default()
            }),
            gate_timeout: None,
        }
    }

    #[test]
    fn the_step_before_the_last_waits_when_the_profile_says_so() {
        let s = steps(&[10, 50, 100]);
        let none = Approvals::default();
        assert!(!(0..3).any(|i| step_waits(&s, i, &none)));
        let before_last = Approvals {
            before_last_step: Some(true),
            ..Default::default()
        };
        let waits: Vec<usize> = (0..3)
            .filter(|i| step_waits(&s, *i, &before_last))
            .collect();
        assert_eq!(waits, [1]);
        let mut own = s.clone();
        own[0].approval = Some(true);
        let waits: Vec<usize> = (0..3).filter(|i| step_waits(&own, *i, &none)).collect();
        assert_eq!(waits, [0]);
    }

    #[test]
    fn approval_gates_come_from_the_spec_the_profile_and_a_hotfix() {
        let mut spec = signalman_core::testing::spec()
            .service("a", Vec::<String>::new())
            .build();
        spec.gates = vec![
            Gate {
                name: "smoke".into(),
                query: Some("up".into()),
                min: Some(1.0),
                max: None,
                interval: None,
                approval: None,
            },
            Gate {
                name: "change-board".into(),
                query: None,
                min: None,
                max: None,
                interval: None,
                approval: Some(true),
            },
        ];
        assert_eq!(approval_gates(&spec, None), ["change-board"]);
        let before = applied(Approvals {
            before_start: Some(true),
            ..Default::default()
        });
        spec.release_type = Some(ReleaseType::Hotfix);
        assert_eq!(
            approval_gates(&spec, Some(&before)),
            ["change-board", "approval", "review"]
        );
    }

    #[test]
    fn an_approval_that_would_not_count_says_why() {
        let mut r = Release::new(
            "train",
            signalman_core::testing::spec()
                .service("a", Vec::<String>::new())
                .build(),
        );
        let four = applied(Approvals {
            four_eyes: Some(true),
            ..Default::default()
        });
        let why = would_not_count(&r, Some(&four), "alice").unwrap();
        assert!(why.contains("does not say who created it"), "{why}");
        r.metadata.annotations =
            Some([(CREATED_BY_ANNOTATION.to_owned(), "alice".to_owned())].into());
        let why = would_not_count(&r, Some(&four), "alice").unwrap();
        assert!(
            why.contains("needs four eyes and you created this Release"),
            "{why}"
        );
        assert_eq!(would_not_count(&r, Some(&four), "bob"), None);
        let listed = applied(Approvals {
            approvers: vec!["carol".into()],
            ..Default::default()
        });
        let why = would_not_count(&r, Some(&listed), "bob").unwrap();
        assert!(why.contains("only from carol, and you are bob"), "{why}");
        assert_eq!(would_not_count(&r, None, "alice"), None);
    }

    #[test]
    fn an_opening_is_written_in_the_window_zone_with_the_date_when_far() {
        let now: Timestamp = "2026-11-27T15:00:00Z".parse().unwrap(); // Friday
        let monday: Timestamp = "2026-11-30T08:00:00Z".parse().unwrap();
        assert_eq!(
            opening(monday, "Europe/Berlin", now),
            "Mon 09:00 Europe/Berlin"
        );
        let later: Timestamp = "2026-12-07T08:00:00Z".parse().unwrap();
        assert_eq!(
            opening(later, "Europe/Berlin", now),
            "Mon 2026-12-07 09:00 Europe/Berlin"
        );
    }
}

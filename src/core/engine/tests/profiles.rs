//! The risk picks the policy's profile: its steps, its analysis limits and
//! the approvals it needs, fixed in status when the release starts.

use super::*;
use crate::api::{
    AnalysisLimits, Approvals, ChangeClass, Profile, ReleasePolicySpec, Risk, RiskProfiles,
};

fn steps(weights: &[i32]) -> Vec<Step> {
    weights
        .iter()
        .map(|w| Step {
            weight: *w,
            bake: secs(60).into(),
            approval: None,
        })
        .collect()
}

pub(super) fn strict() -> ReleasePolicySpec {
    ReleasePolicySpec {
        risks: Some(RiskProfiles {
            low: Some(Profile {
                steps: Some(steps(&[50, 100])),
                ..Default::default()
            }),
            medium: None,
            high: Some(Profile {
                steps: Some(steps(&[10, 25, 50, 100])),
                analysis: Some(AnalysisLimits {
                    interval: Some(secs(20).into()),
                    ..Default::default()
                }),
                approvals: Some(Approvals {
                    before_last_step: Some(true),
                    four_eyes: Some(true),
                    ..Default::default()
                }),
            }),
        }),
        hotfix: Some(Profile {
            steps: Some(steps(&[50, 100])),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One service of `class`, with no steps of its own, so the profile's apply.
fn classed(class: ChangeClass) -> ReleaseSpec {
    let mut s = spec(&[("payments-api", &[])]);
    s.defaults.as_mut().unwrap().steps = None;
    s.services[0].change.class = Some(class);
    s
}

fn weights_started(sim: &Sim) -> Vec<String> {
    status(sim)
        .timeline
        .iter()
        .filter(|e| e.reason == "StepStarted")
        .map(|e| e.message.split(':').next().unwrap_or_default().to_owned())
        .collect()
}

fn service(sim: &Sim) -> &crate::api::ServiceStatus {
    &status(sim).services[0]
}

#[test]
fn a_payment_change_follows_the_high_profile_and_waits_before_its_last_step_for_four_eyes() {
    let mut sim = Sim::new(classed(ChangeClass::Payment))
        .with_policy("strict", strict())
        .created_by("alice");
    assert!(sim.run_until(200, |s| {
        s.release
            .status
            .as_ref()
            .is_some_and(|st| st.services.first().is_some_and(|x| x.awaiting_approval))
    }));
    let st = status(&sim);
    let applied = st.policy.as_ref().unwrap();
    assert_eq!(
        (applied.name.as_deref(), applied.profile.as_deref()),
        (Some("strict"), Some("high"))
    );
    let plan = st.plan.as_ref().unwrap();
    assert_eq!(plan.risk, Some(Risk::High));
    assert_eq!(
        plan.risk_reason.as_deref(),
        Some("high: payments-api is a payment change")
    );
    assert_eq!(weights_started(&sim), ["step 1/4", "step 2/4", "step 3/4"]);
    let s = service(&sim);
    assert_eq!((s.step, s.weight), (Some(2), 50));
    assert_eq!(
        s.message.as_deref(),
        Some(
            "waits at 50% for an approval of step 3 (kubectl signalman approve train --step \
             payments-api/3 -m ...)"
        )
    );

    // Measured on while it waits; the creator's own approval does not count.
    let measured = sim.passes.len();
    sim.approve_step("alice", "payments-api", 3);
    for _ in 0..6 {
        sim.pass();
    }
    assert!(service(&sim).awaiting_approval);
    assert_eq!(sim.phase(), Phase::Progressing);
    let taken: usize = sim.passes[measured..]
        .iter()
        .map(|p| p.observations.measurements.len())
        .sum();
    assert!(taken >= 3, "only {taken} measurements while waiting");
    let message = service(&sim).message.clone().unwrap();
    assert!(message.contains("alice created the Release"), "{message}");
    assert!(
        !sim.passes[measured..]
            .iter()
            .any(|p| !p.decision.actions.is_empty()),
        "something moved while waiting for the approval"
    );

    sim.approve_step("bob", "payments-api", 3);
    assert_eq!(sim.run(200), Phase::Succeeded);
    assert_eq!(weights_started(&sim).len(), 4);
    let approved: Vec<_> = status(&sim)
        .timeline
        .iter()
        .filter(|e| e.reason == "Approved")
        .collect();
    assert_eq!(approved.len(), 1);
    assert!(
        approved[0].message.contains("approved by bob"),
        "{approved:?}"
    );
    assert!(
        sim.passes
            .iter()
            .flat_map(|p| &p.decision.notices)
            .any(|n| n.kind == NoticeKind::Approved)
    );
}

#[test]
fn a_breach_while_waiting_for_a_step_approval_still_rolls_back() {
    let mut sim = Sim::new(classed(ChangeClass::Payment))
        .with_policy("strict", strict())
        .created_by("alice");
    assert!(sim.run_until(200, |s| {
        s.release
            .status
            .as_ref()
            .is_some_and(|st| st.services.first().is_some_and(|x| x.awaiting_approval))
    }));
    sim.measure = Box::new(|_, _| QueryResult::Value(0.5));
    assert_eq!(sim.run(200), Phase::RolledBack);
    assert_eq!(
        status(&sim).rollback.as_ref().map(|r| r.reason),
        Some(crate::api::RollbackReason::Breach)
    );
}

#[test]
fn a_copy_change_follows_the_low_profile() {
    let mut sim = Sim::new(classed(ChangeClass::Copy)).with_policy("strict", strict());
    assert_eq!(sim.run(200), Phase::Succeeded);
    let st = status(&sim);
    assert_eq!(st.policy.as_ref().unwrap().profile.as_deref(), Some("low"));
    assert_eq!(
        st.plan.as_ref().unwrap().risk_reason.as_deref(),
        Some("low: every change is copy or config")
    );
    assert_eq!(weights_started(&sim), ["step 1/2", "step 2/2"]);
    assert!(st.timeline.iter().all(|e| e.reason != "AwaitingApproval"));
}

#[test]
fn the_profile_is_fixed_at_the_start_and_a_policy_edit_does_not_change_a_train_in_flight() {
    let mut sim = Sim::new(classed(ChangeClass::Copy)).with_policy("strict", strict());
    sim.pass();
    assert_eq!(sim.phase(), Phase::Progressing);
    let mut edited = strict();
    edited.risks.as_mut().unwrap().low.as_mut().unwrap().steps = Some(steps(&[5, 10, 100]));
    sim.policy = PolicyObservation::Found {
        name: "strict".into(),
        spec: edited,
    };
    assert_eq!(sim.run(200), Phase::Succeeded);
    assert_eq!(weights_started(&sim), ["step 1/2", "step 2/2"]);
}

#[test]
fn a_step_may_ask_for_an_approval_without_any_policy() {
    let mut s = spec(&[("web", &[])]);
    s.defaults.as_mut().unwrap().steps.as_mut().unwrap()[0].approval = Some(true);
    let mut sim = Sim::new(s);
    for _ in 0..40 {
        sim.pass();
    }
    assert_eq!(sim.phase(), Phase::Progressing);
    assert!(status(&sim).services[0].awaiting_approval);
    // Without a policy anyone the API server lets approve counts, the creator too.
    sim.approve_step("someone", "web", 1);
    assert_eq!(sim.run(200), Phase::Succeeded);
}

#[test]
fn a_named_policy_that_is_missing_or_unusable_stalls_the_release_with_nothing_changed() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    sim.policy = PolicyObservation::Missing {
        name: "strict".into(),
        named_by: "spec.policy".into(),
    };
    let d = sim.pass().clone();
    assert!(d.actions.is_empty());
    let c = condition(&d.status, "Stalled");
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", "PolicyNotFound")
    );
    assert!(
        c.message
            .contains("ReleasePolicy \"strict\" (named by spec.policy) does not exist")
    );
    let mut bad = strict();
    bad.window = Some(crate::api::Window {
        days: vec![crate::api::Weekday::Monday],
        from: "09:00".into(),
        to: "17:00".into(),
        time_zone: Some("Mars/Base".into()),
    });
    sim.policy = PolicyObservation::Found {
        name: "strict".into(),
        spec: bad,
    };
    let d = sim.pass().clone();
    assert!(d.actions.is_empty());
    let c = condition(&d.status, "Stalled");
    assert_eq!(c.reason, "InvalidPolicy");
    assert!(
        c.message
            .starts_with("ReleasePolicy strict: spec.window.timeZone: unknown time zone"),
        "{}",
        c.message
    );
    // One that exists but does not parse is never taken for none.
    sim.policy = PolicyObservation::Unreadable {
        name: "strict".into(),
        error: "spec.risks.high.steps[0].weight: invalid type".into(),
    };
    let d = sim.pass().clone();
    assert!(d.actions.is_empty());
    let c = condition(&d.status, "Stalled");
    assert_eq!(c.reason, "InvalidPolicy");
    assert_eq!(
        c.message,
        "ReleasePolicy strict cannot be read: spec.risks.high.steps[0].weight: invalid type; correct that field"
    );
}

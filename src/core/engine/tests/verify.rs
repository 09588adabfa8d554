//! Verification: the promoted train watched for `spec.verify.bake` before it succeeds.

use super::*;

/// A migration, code that needs it, code that needs that, and a flag on top.
fn train() -> ReleaseSpec {
    let mut s = crate::testing::spec()
        .owner("team-checkout")
        .job("db", [] as [&str; 0])
        .service("api", ["db"])
        .service("web", ["api"])
        .flag("on", ["web"], "flags", &[("checkout-v2", "on")])
        .steps([10, 100].map(|weight| (weight, secs(60))))
        .interval(secs(20))
        .metric_at_most(
            "error-rate",
            r#"rate(errors{service="{{service}}"}[1m])"#,
            0.01,
        )
        .build();
    s.verify = verified(&[]).verify;
    s
}

fn verification(sim: &Sim) -> &crate::api::VerificationStatus {
    status(sim).verification.as_ref().unwrap()
}

fn run_until_verifying(sim: &mut Sim) -> Timestamp {
    assert!(sim.run_until(500, |s| s.phase() == Phase::Verifying));
    sim.passes.last().unwrap().now
}

fn reasons(st: &ReleaseStatus) -> Vec<&str> {
    st.timeline.iter().map(|e| e.reason.as_str()).collect()
}

#[test]
fn verification_begins_once_every_service_is_promoted_and_passes_after_its_bake() {
    let mut sim = Sim::new(verified(&[("a", &[]), ("b", &["a"])]));
    let began = run_until_verifying(&mut sim);
    // Nothing of the train is measured before every service is promoted.
    assert!(
        sim.passes
            .iter()
            .flat_map(|p| &p.observations.measurements)
            .all(|t| !t.service.is_empty())
    );
    let st = status(&sim);
    assert!(
        st.services
            .iter()
            .all(|s| s.phase == ServicePhase::Promoted)
    );
    let v = verification(&sim);
    assert_eq!(v.started_at.0, began);
    assert_eq!(v.ends_at.0, context::plus(began, secs(120)));
    assert_eq!(
        st.message.as_deref(),
        Some("verifying the train: 2m left; passing measurements checkout-failures 0/4")
    );
    assert_eq!(
        st.timeline
            .last()
            .map(|e| (e.reason.as_str(), e.message.as_str())),
        Some((
            "VerifyStarted",
            "every service is promoted; verifying the train for 2m with checkout-failures"
        ))
    );
    assert_eq!(
        sim.passes.last().unwrap().decision.requeue_after,
        Some(secs(30))
    );
    // The first verify measurement is due one interval in, for the whole train.
    assert!(due_measurements(&sim.release, began).is_empty());
    assert_eq!(
        due_measurements(&sim.release, context::plus(began, secs(30))),
        [MeasurementRequest {
            service: String::new(),
            metric: "checkout-failures".into(),
            step: 0,
        }]
    );
    sim.pass();
    assert_eq!(
        status(&sim).message.as_deref(),
        Some("verifying the train: 1m30s left; passing measurements checkout-failures 1/4")
    );

    assert_eq!(sim.run(50), Phase::Succeeded);
    let done = sim.passes.last().unwrap();
    assert_eq!(done.now, context::plus(began, secs(120)));
    let v = verification(&sim);
    assert_eq!(v.tally[0].passed, 4);
    assert_eq!(v.measurements.len(), 4);
    assert!(
        v.measurements
            .iter()
            .all(|m| m.step == 0 && m.value == Some(0.0))
    );
    let r = reasons(status(&sim));
    let at = |reason| r.iter().position(|x| *x == reason).unwrap();
    assert!(at("VerifyStarted") < at("Verified") && at("Verified") < at("Succeeded"));
}

#[test]
fn verification_waits_past_its_bake_for_its_passing_measurements() {
    let mut calls = 0;
    let mut sim = Sim::new(verified(&[("a", &[])])).with_measure(move |r, _| {
        if r.service.is_empty() {
            calls += 1;
        }
        // One inconclusive verify measurement (within the limit): one pass short at the bake's end.
        if r.service.is_empty() && calls == 2 {
            QueryResult::NoData
        } else {
            QueryResult::Value(0.0)
        }
    });
    let began = run_until_verifying(&mut sim);
    sim.run_until(50, |s| s.now >= context::plus(began, secs(120)));
    sim.pass();
    assert_eq!(sim.phase(), Phase::Verifying);
    assert_eq!(
        status(&sim).message.as_deref(),
        Some("verifying the train: its bake is over; passing measurements checkout-failures 3/4")
    );
    assert_eq!(sim.run(50), Phase::Succeeded);
    assert_eq!(
        sim.passes.last().unwrap().now,
        context::plus(began, secs(150))
    );
}

#[test]
fn a_breach_in_verification_reverses_the_whole_train_in_rollback_order() {
    let mut sim = Sim::new(train()).with_measure(|r, _| {
        if r.service.is_empty() {
            QueryResult::Value(0.75)
        } else {
            QueryResult::Value(0.0)
        }
    });
    run_until_verifying(&mut sim);
    assert_eq!(sim.config_map("flags").unwrap()["checkout-v2"], "on");
    assert_eq!(sim.cluster["web"].template, TemplateState::New);

    assert!(sim.run_until(50, |s| s.phase() != Phase::Verifying));
    let breach = sim.passes.last().unwrap().clone();
    assert_eq!(breach.decision.status.phase, Some(Phase::RollingBack));
    let cause = breach.decision.status.rollback.clone().unwrap();
    assert_eq!(cause.reason.as_str(), "Breach");
    assert_eq!(cause.service, None);
    assert_eq!(
        cause.message,
        "verification: checkout-failures failed 1 measurement(s), more than failureLimit 0"
    );
    assert_eq!(cause.metric.as_deref(), Some("checkout-failures"));
    assert_eq!(cause.value, Some(0.75));
    assert_eq!(cause.threshold.as_deref(), Some("max 0.5"));
    assert_eq!(cause.first_deviation_at.map(|t| t.0), Some(breach.now));
    let failed = breach
        .decision
        .status
        .timeline
        .iter()
        .find(|e| e.reason == "MeasurementFailed")
        .unwrap();
    assert_eq!(
        (failed.service.as_deref(), failed.message.as_str()),
        (
            None,
            "verification: checkout-failures = 0.75, threshold max 0.5"
        )
    );
    let v = breach.decision.status.verification.clone().unwrap();
    assert_eq!(
        (v.tally[0].failed, v.measurements[0].value),
        (1, Some(0.75))
    );

    assert_eq!(sim.run(200), Phase::RolledBack);
    let st = status(&sim);
    let phases: Vec<(&str, ServicePhase)> = st
        .services
        .iter()
        .map(|s| (s.name.as_str(), s.phase))
        .collect();
    assert_eq!(
        phases,
        [
            ("db", ServicePhase::Restored),
            ("api", ServicePhase::Restored),
            ("web", ServicePhase::Restored),
            ("on", ServicePhase::Restored),
        ]
    );
    // Flag first (the fastest mitigation), then the code in reverse dependency
    // order, then the migration's rollback Job once the code needing it is back.
    let first = |what: &dyn Fn(&Action) -> bool| {
        sim.passes
            .iter()
            .position(|p| p.decision.actions.iter().any(what))
            .unwrap()
    };
    let flag = first(&|a| matches!(a, Action::RestoreFlag { .. }));
    let web = first(&|a| {
        a == &Action::RestoreBaseline {
            service: "web".into(),
        }
    });
    let api = first(&|a| {
        a == &Action::RestoreBaseline {
            service: "api".into(),
        }
    });
    let db = first(&|a| {
        a == &Action::CreateJob {
            service: "db".into(),
            job: JobKind::Rollback,
        }
    });
    assert!(
        flag < web && web < api && api < db,
        "{flag} {web} {api} {db}"
    );
    assert!(
        sim.config_map("flags")
            .unwrap()
            .get("checkout-v2")
            .is_none()
    );
    for name in ["api", "web"] {
        assert_eq!(
            sim.cluster[name].template,
            TemplateState::Baseline,
            "{name}"
        );
    }
    assert_eq!(sim.jobs_created("db", JobKind::Rollback), 1);
    assert!(st.message.as_deref().unwrap().contains("Breach"));
}

#[test]
fn errors_in_verification_hold_the_train_and_a_resume_verifies_it_again_from_the_start() {
    let mut errors = 3;
    let mut sim = Sim::new(verified(&[("a", &[])])).with_measure(move |r, _| {
        if r.service.is_empty() && errors > 0 {
            errors -= 1;
            QueryResult::Error("connection refused".into())
        } else {
            QueryResult::Value(0.0)
        }
    });
    let began = run_until_verifying(&mut sim);
    assert!(sim.run_until(20, |s| s.phase() == Phase::Held));
    let held = sim.passes.last().unwrap().decision.clone();
    assert!(held.actions.is_empty(), "{:?}", held.actions);
    let hold = held.status.hold.clone().unwrap();
    assert_eq!(
        (hold.id.as_str(), hold.reason.as_str(), hold.service),
        ("hold-1", "ErrorLimit", None)
    );
    assert!(
        hold.message.starts_with(
            "verification: checkout-failures could not be measured 3 times, more than errorLimit 2"
        ),
        "{}",
        hold.message
    );
    assert_eq!(sim.service_phase("a"), Some(ServicePhase::Promoted));
    // Held: nothing is measured, for as long as it lasts.
    for _ in 0..5 {
        sim.pass();
        assert_eq!(sim.phase(), Phase::Held);
        assert!(
            sim.passes
                .last()
                .unwrap()
                .observations
                .measurements
                .is_empty()
        );
    }
    sim.edit(|s| s.resume_hold = Some("hold-1".into()));
    sim.pass();
    let resumed = sim.passes.last().unwrap().now;
    assert_eq!(sim.phase(), Phase::Verifying);
    let v = verification(&sim);
    assert_eq!(v.started_at.0, resumed);
    assert!(resumed > began);
    assert!(v.tally.is_empty());
    // The earlier measurements stay on record.
    assert_eq!(v.measurements.len(), 3);
    assert_eq!(sim.run(50), Phase::Succeeded);
    assert_eq!(
        sim.passes.last().unwrap().now,
        context::plus(resumed, secs(120))
    );
}

#[test]
fn aborting_or_deleting_in_verification_reverses_the_train() {
    for deleted in [false, true] {
        let mut sim = Sim::new(verified(&[("a", &[]), ("b", &["a"])]));
        run_until_verifying(&mut sim);
        sim.pass();
        if deleted {
            sim.release.metadata.deletion_timestamp = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(sim.now),
            );
        } else {
            sim.edit(|s| s.abort = Some(true));
        }
        let d = sim.pass().clone();
        let cause = d.status.rollback.unwrap();
        assert_eq!(
            cause.reason.as_str(),
            if deleted { "Deleted" } else { "Abort" }
        );
        assert_eq!(cause.metric, None);
        assert_eq!(sim.run(100), Phase::RolledBack);
        assert_eq!(sim.service_phase("a"), Some(ServicePhase::Restored));
        assert_eq!(sim.service_phase("b"), Some(ServicePhase::Restored));
        all_settled_as(&sim, TemplateState::Baseline);
    }
}

#[test]
fn a_pause_in_verification_measures_nothing_and_verifies_again_on_resume() {
    let mut sim = Sim::new(verified(&[("a", &[])]));
    run_until_verifying(&mut sim);
    sim.pass();
    sim.edit(|s| s.paused = Some(true));
    for _ in 0..5 {
        sim.pass();
        assert_eq!(sim.phase(), Phase::Paused);
        assert!(due_measurements(&sim.release, sim.now).is_empty());
    }
    sim.edit(|s| s.paused = Some(false));
    sim.pass();
    let resumed = sim.passes.last().unwrap().now;
    assert_eq!(sim.phase(), Phase::Verifying);
    assert_eq!(verification(&sim).started_at.0, resumed);
    assert_eq!(sim.run(50), Phase::Succeeded);
    assert_eq!(
        sim.passes.last().unwrap().now,
        context::plus(resumed, secs(120))
    );
}

#[test]
fn without_spec_verify_the_train_succeeds_when_promoted() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    assert_eq!(sim.run(200), Phase::Succeeded);
    let st = status(&sim);
    assert_eq!(st.verification, None);
    assert!(!reasons(st).contains(&"VerifyStarted"));
}

#[test]
fn verifying_without_a_verification_on_record_begins_one() {
    let mut sim = Sim::new(verified(&[("a", &[])]));
    run_until_verifying(&mut sim);
    sim.release.status.as_mut().unwrap().verification = None;
    let now = sim.now;
    sim.pass();
    assert_eq!(sim.phase(), Phase::Verifying);
    assert_eq!(verification(&sim).started_at.0, now);
    assert_eq!(sim.run(50), Phase::Succeeded);
}

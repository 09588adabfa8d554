//! The completion report: written from the facts whenever a release ends,
//! told once as an Event with its one-line summary.

use super::*;
use crate::api::{Gate, JobResult, Report, RollbackReason, ServiceHold};

pub(super) fn report(sim: &Sim) -> &Report {
    status(sim).report.as_ref().expect("a report")
}

/// The Report notices of every pass, with the pass they came in.
fn report_notices(sim: &Sim) -> Vec<(usize, Notice)> {
    sim.passes
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            p.decision
                .notices
                .iter()
                .filter(|n| n.kind == NoticeKind::Report)
                .map(move |n| (i, n.clone()))
        })
        .collect()
}

/// Told once, in the pass that ended the release, with the summary, as a Normal Event.
fn told_once(sim: &Sim) {
    let told = report_notices(sim);
    assert_eq!(told.len(), 1, "{told:?}");
    let (at, notice) = &told[0];
    assert_eq!(*at, sim.passes.len() - 1);
    assert_eq!(notice.message, report(sim).summary);
    assert_eq!(notice.kind.reason(), "Report");
    assert!(!notice.kind.warning());
}

fn took(r: &Report) -> String {
    crate::text::duration(secs(r.duration_seconds as u64))
}

fn approval_gate(name: &str) -> Gate {
    Gate {
        name: name.into(),
        query: None,
        min: None,
        max: None,
        interval: None,
        approval: Some(true),
    }
}

#[test]
fn a_succeeded_train_reports_what_shipped_who_approved_the_holds_and_its_rollback_window() {
    // web depends on api (shipped dark); batch is held; cleanup cannot be reversed.
    let mut s = spec(&[("web", &["api"]), ("api", &[]), ("batch", &[])]);
    s.summary = Some("checkout v5".into());
    s.services[0].owner = Some("team-web".into());
    s.services[0].steps = Some(
        [(10, None), (50, Some(true)), (100, None)]
            .map(|(weight, approval)| Step {
                weight,
                bake: secs(60).into(),
                approval,
            })
            .to_vec(),
    );
    s.services[1].change.dark = Some(true);
    s.services[2].hold = Some(ServiceHold {
        reason: "load test not signed off".into(),
    });
    let cleanup = crate::testing::spec()
        .irreversible_job(
            "cleanup",
            [] as [&str; 0],
            "drops the v4 tables; v4 is gone",
        )
        .build();
    s.services.extend(cleanup.services);
    s.services[0].depends_on.push("cleanup".into());
    s.gates = vec![approval_gate("sign-off")];
    // api's first three measurements cannot be taken: a hold, lifted by a person.
    let mut errors = 0;
    let mut sim = Sim::new(s).with_measure(move |r, _| {
        if r.service == "api" && errors < 3 {
            errors += 1;
            return QueryResult::Error("connection refused".into());
        }
        QueryResult::Value(0.001)
    });
    sim.pass();
    assert_eq!(
        sim.phase(),
        Phase::AwaitingGates,
        "{:?}",
        status(&sim).message
    );
    sim.approve_gate("carol", "sign-off");
    assert!(sim.run_until(200, |s| s.phase() == Phase::Held));
    sim.edit(|s| s.resume_hold = Some("hold-1".into()));
    assert!(sim.run_until(500, |s| {
        status(s).services.iter().any(|x| x.awaiting_approval)
    }));
    sim.approve_step("dave", "web", 2);
    assert_eq!(sim.run(500), Phase::Succeeded);

    let st = status(&sim).clone();
    let r = report(&sim).clone();
    assert_eq!(r.outcome, Phase::Succeeded);
    assert_eq!(
        r.summary,
        format!(
            "train succeeded: 3 of 4 services promoted in {}; 1 deferred (batch)",
            took(&r)
        )
    );
    assert_eq!(r.owner, "team-checkout");
    assert_eq!(r.description.as_deref(), Some("checkout v5"));
    assert_eq!(r.started_at, st.started_at);
    assert_eq!(r.finished_at, st.finished_at.clone().unwrap());
    assert_eq!(
        r.duration_seconds,
        r.finished_at.0.as_second() - r.started_at.clone().unwrap().0.as_second()
    );
    assert!(r.duration_seconds > 0);

    // In plan order: api before web, whatever the spec's order.
    let plan_order: Vec<String> = st
        .plan
        .as_ref()
        .unwrap()
        .waves
        .iter()
        .flat_map(|w| w.services.clone())
        .collect();
    let names: Vec<&str> = r.services.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, plan_order);
    let at = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(at("api") < at("web"));
    let svc = |n: &str| r.services.iter().find(|x| x.name == n).unwrap();

    let api = svc("api");
    assert_eq!(
        (api.kind.as_str(), api.owner.as_str(), api.phase, api.dark),
        ("Deployment", "team-checkout", ServicePhase::Promoted, true)
    );
    assert_eq!(api.from, [("main".to_owned(), "api:v1".to_owned())].into());
    assert_eq!(api.to, [("main".to_owned(), "api:v2".to_owned())].into());
    assert!(api.started_at.is_some() && api.finished_at.is_some());
    assert!(api.started_at < api.finished_at);
    // The last measurement of its one metric.
    assert_eq!(api.measurements.len(), 1);
    assert_eq!(
        Some(&api.measurements[0]),
        st.services
            .iter()
            .find(|x| x.name == "api")
            .unwrap()
            .measurements
            .last()
    );
    assert_eq!(api.measurements[0].value, Some(0.001));

    let web = svc("web");
    assert_eq!((web.owner.as_str(), web.dark), ("team-web", false));
    assert_eq!(web.from, [("main".to_owned(), "web:v1".to_owned())].into());

    let batch = svc("batch");
    assert_eq!(batch.phase, ServicePhase::Deferred);
    assert!(batch.from.is_empty() && batch.started_at.is_none());
    assert_eq!(r.deferred.len(), 1);
    assert_eq!(r.deferred[0].reason, "held: load test not signed off");

    let cleanup = svc("cleanup");
    assert_eq!(cleanup.kind, "Job");
    assert_eq!(
        cleanup.irreversible.as_deref(),
        Some("drops the v4 tables; v4 is gone")
    );
    assert_eq!(
        cleanup.forward_job.as_ref().unwrap().result,
        Some(JobResult::Succeeded)
    );
    assert!(cleanup.to.is_empty() && cleanup.from.is_empty());

    assert_eq!(r.holds.len(), 1);
    assert_eq!(r.holds[0].service.as_deref(), Some("api"));
    assert!(
        r.holds[0].message.starts_with("hold-1 (ErrorLimit)"),
        "{}",
        r.holds[0].message
    );

    let approvals: Vec<(&str, &str)> = r
        .approvals
        .iter()
        .map(|a| (a.approver.as_str(), a.what.as_str()))
        .collect();
    assert_eq!(
        approvals,
        [("carol", "gate sign-off"), ("dave", "step 2 of web")]
    );
    assert!(r.approvals.iter().all(|a| a.at.is_some()));

    assert_eq!(r.rollback, None);
    assert_eq!(r.verification, None);
    let window = r.rollback_window.clone().unwrap();
    assert_eq!(Some(&window), st.rollback_window.as_ref());
    assert_eq!(
        window.until.0,
        context::plus(r.finished_at.0, crate::api::after_default::ROLLBACK_WINDOW)
    );
    assert_eq!(window.closed_at, None);

    told_once(&sim);
    let last = sim.passes.last().unwrap();
    assert_eq!(
        last.decision.requeue_after,
        Some(context::until(last.now, window.until.0))
    );
}

#[test]
fn a_rolled_back_train_reports_the_breach_and_the_order_services_were_restored_in() {
    // a; b and the flag f after a; c after b, whose new version breaches at step 2.
    let mut s = spec(&[("a", &[]), ("b", &["a"]), ("c", &["b"])]);
    let flag = crate::testing::spec()
        .flag("f", ["a"], "flags", &[("new-cart", "on")])
        .build();
    s.services.extend(flag.services);
    let mut sim = Sim::new(s).with_measure(|r, _| {
        QueryResult::Value(if r.service == "c" && r.step == 1 {
            0.3
        } else {
            0.0
        })
    });
    assert_eq!(sim.run(1000), Phase::RolledBack);
    let st = status(&sim).clone();
    let r = report(&sim).clone();
    assert_eq!(r.outcome, Phase::RolledBack);

    let cause = st.rollback.clone().unwrap();
    assert_eq!(cause.metric.as_deref(), Some("error-rate"));
    assert_eq!(cause.value, Some(0.3));
    assert_eq!(cause.threshold.as_deref(), Some("max 0.01"));
    let first_failed = st
        .timeline
        .iter()
        .find(|e| e.reason == "MeasurementFailed")
        .unwrap();
    assert_eq!(first_failed.service.as_deref(), Some("c"));

    let rb = r.rollback.clone().unwrap();
    assert_eq!(rb.reason, RollbackReason::Breach);
    assert_eq!(rb.service.as_deref(), Some("c"));
    assert_eq!(rb.metric.as_deref(), Some("error-rate"));
    assert_eq!(rb.value, Some(0.3));
    assert_eq!(rb.threshold.as_deref(), Some("max 0.01"));
    assert_eq!(rb.first_deviation_at, Some(first_failed.at.clone()));
    assert_eq!(rb.message, cause.message);
    assert_eq!(rb.requested_by, None);
    // The flag first, then dependents before what they depend on.
    assert_eq!(rb.restored, ["f", "b", "a"]);

    assert_eq!(
        r.summary,
        format!(
            "train rolled back after a breach: error-rate = 0.3 on c, threshold max 0.01: \
             3 services restored, 1 canary withdrawn before promotion in {}",
            took(&r)
        )
    );
    let c = r.services.iter().find(|x| x.name == "c").unwrap();
    assert_eq!(c.phase, ServicePhase::Withdrawn);
    assert_eq!(c.measurements[0].value, Some(0.3));
    let f = r.services.iter().find(|x| x.name == "f").unwrap();
    assert_eq!(f.kind, "Flag");
    assert_eq!(f.phase, ServicePhase::Restored);
    let flag = f.flag.clone().unwrap();
    assert_eq!(flag.config_map, "flags");
    assert_eq!(flag.keys, [("new-cart".to_owned(), "on".to_owned())].into());
    // Only a succeeded release can be rolled back later.
    assert_eq!(r.rollback_window, None);
    told_once(&sim);
}

#[test]
fn a_failed_train_reports_the_failed_rollback_job_and_what_was_restored_before() {
    // db (a migration) -> api -> web; web breaches; db's rollback Job fails.
    let s = crate::testing::spec()
        .owner("team-checkout")
        .job("db", [] as [&str; 0])
        .service("api", ["db"])
        .service("web", ["api"])
        .steps([10, 100].map(|weight| (weight, secs(60))))
        .interval(secs(20))
        .metric_at_most("error-rate", "rate(errors[1m])", 0.01)
        .build();
    let mut sim = Sim::new(s)
        .with_measure(|r, _| QueryResult::Value(if r.service == "web" { 0.5 } else { 0.0 }))
        .failing_job(
            "db",
            JobKind::Rollback,
            "BackoffLimitExceeded",
            Some("ERROR: relation \"orders\" does not exist"),
        );
    assert_eq!(sim.run(1000), Phase::Failed);
    let st = status(&sim).clone();
    let r = report(&sim).clone();
    assert_eq!(r.outcome, Phase::Failed);
    assert!(
        r.summary
            .starts_with(&format!("train failed after {}: ", took(&r))),
        "{}",
        r.summary
    );
    assert!(
        r.summary.contains(
            "rollback Job train-db-rollback of db failed: BackoffLimitExceeded; last log lines: \
             ERROR: relation \"orders\" does not exist"
        ),
        "{}",
        r.summary
    );
    assert!(!r.summary.contains('\n'));
    assert_eq!(st.finished_at, Some(r.finished_at.clone()));
    let db = r.services.iter().find(|x| x.name == "db").unwrap();
    assert_eq!(db.kind, "Job");
    assert_eq!(
        db.forward_job.as_ref().unwrap().result,
        Some(JobResult::Succeeded)
    );
    let rollback_job = db.rollback_job.clone().unwrap();
    assert_eq!(rollback_job.result, Some(JobResult::Failed));
    assert_eq!(rollback_job.name, "train-db-rollback");
    let rb = r.rollback.clone().unwrap();
    assert_eq!(rb.reason, RollbackReason::Breach);
    assert_eq!(rb.service.as_deref(), Some("web"));
    assert_eq!(rb.restored, ["api"]);
    assert_eq!(r.rollback_window, None);
    told_once(&sim);
}

#[test]
fn a_release_that_ends_before_its_first_wave_is_reported_too() {
    // Its gates time out: Failed with nothing changed.
    let mut s = spec(&[("a", &[])]);
    s.gates = vec![approval_gate("sign-off")];
    s.gate_timeout = Some(secs(120).into());
    let mut sim = Sim::new(s);
    assert_eq!(sim.run(100), Phase::Failed);
    let r = report(&sim).clone();
    assert_eq!(r.outcome, Phase::Failed);
    assert!(
        r.summary.starts_with(
            "train failed: the gates did not hold within gateTimeout 2m before wave 1: sign-off"
        ),
        "{}",
        r.summary
    );
    assert!(r.summary.ends_with("nothing was changed"), "{}", r.summary);
    assert_eq!((r.started_at.clone(), r.duration_seconds), (None, 0));
    assert!(r.services.is_empty() && r.approvals.is_empty());
    told_once(&sim);

    // Aborted before it started: RolledBack with no cause.
    let mut s = spec(&[("a", &[])]);
    s.abort = Some(true);
    let mut sim = Sim::new(s);
    assert_eq!(sim.run(10), Phase::RolledBack);
    let r = report(&sim);
    assert_eq!(
        r.summary,
        "train rolled back: aborted before it started; nothing was changed"
    );
    assert_eq!(r.rollback, None);
    told_once(&sim);
}

#[test]
fn deciding_again_on_a_finished_release_keeps_its_report_and_tells_it_no_more() {
    let mut sim = Sim::new(spec(&[("a", &[]), ("b", &["a"])]));
    assert_eq!(sim.run(500), Phase::Succeeded);
    let last = sim.passes.last().unwrap().clone();
    let mut after = last.before.clone();
    after.status = Some(last.decision.status.clone());
    let again = decide(&after, &last.observations, last.now);
    assert_eq!(again.status.report, last.decision.status.report);
    assert!(again.notices.is_empty(), "{:?}", again.notices);
}

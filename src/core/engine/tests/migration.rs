//! Migration Jobs: recorded before created, run once in their wave, a
//! failure or a timeout is a breach, and the rollback Job runs in the
//! rollback order after every service that depends on the migration.

use super::*;
use crate::api::{JobResult, Profile, ReleasePolicySpec, RiskProfiles};

const LOGS: &str = "ERROR: relation \"orders\" already exists";

/// db (a migration) -> api -> web, each Deployment measured like [`spec`].
fn train() -> ReleaseSpec {
    crate::testing::spec()
        .owner("team-checkout")
        .job("db", [] as [&str; 0])
        .service("api", ["db"])
        .service("web", ["api"])
        .steps([10, 50, 100].map(|weight| (weight, secs(60))))
        .interval(secs(20))
        .metric_at_most(
            "error-rate",
            r#"rate(errors{service="{{service}}"}[1m])"#,
            0.01,
        )
        .build()
}

fn breaching(service: &'static str) -> impl FnMut(&MeasurementRequest, Timestamp) -> QueryResult {
    move |r, _| QueryResult::Value(if r.service == service { 0.5 } else { 0.0 })
}

/// The timeline's `(reason, service)` pairs, oldest first.
fn story(sim: &Sim) -> Vec<(String, String)> {
    status(sim)
        .timeline
        .iter()
        .map(|e| (e.reason.clone(), e.service.clone().unwrap_or_default()))
        .collect()
}

fn at(story: &[(String, String)], reason: &str, service: &str) -> usize {
    story
        .iter()
        .position(|(r, s)| r == reason && s == service)
        .unwrap_or_else(|| panic!("no {reason} of {service:?} in {story:?}"))
}

fn creates(p: &sim::Pass, service: &str, job: JobKind) -> bool {
    p.decision.actions.contains(&Action::CreateJob {
        service: service.into(),
        job,
    })
}

fn run_of(sim: &Sim, name: &str, kind: JobKind) -> crate::api::JobRun {
    let s = status(sim)
        .services
        .iter()
        .find(|s| s.name == name)
        .unwrap();
    match kind {
        JobKind::Forward => s.forward_job.clone().unwrap(),
        JobKind::Rollback => s.rollback_job.clone().unwrap(),
    }
}

#[test]
fn the_forward_job_is_recorded_before_it_is_created_and_its_dependents_wait_for_it() {
    let mut sim = Sim::new(train());
    assert_eq!(sim.run(500), Phase::Succeeded);
    let recorded = sim
        .passes
        .iter()
        .position(|p| {
            p.decision.status.services[0]
                .forward_job
                .as_ref()
                .is_some_and(|r| r.name == "train-db-forward")
        })
        .unwrap();
    // The decision that records the Job's name creates nothing; the next one creates it.
    assert!(sim.passes[recorded].decision.actions.is_empty());
    assert!(creates(&sim.passes[recorded + 1], "db", JobKind::Forward));
    assert_eq!(
        sim.passes
            .iter()
            .filter(|p| creates(p, "db", JobKind::Forward))
            .count(),
        1
    );
    assert_eq!(sim.jobs_created("db", JobKind::Forward), 1);
    // api starts only once the Job completed.
    let promoted = sim
        .passes
        .iter()
        .position(|p| phase_in(p, "db") == ServicePhase::Promoted)
        .unwrap();
    assert!(first_pass_touching(&sim, "api") >= promoted);
    let run = run_of(&sim, "db", JobKind::Forward);
    assert_eq!(run.result, Some(JobResult::Succeeded));
    assert!(run.started_at.is_some() && run.finished_at.is_some());
    let s = story(&sim);
    assert!(at(&s, "JobStarted", "db") < at(&s, "JobSucceeded", "db"));
    assert!(at(&s, "Promoted", "db") < at(&s, "ServiceStarted", "api"));
    // A job has no canary, no steps, no weight and no measurements.
    assert!(sim.passes.iter().all(|p| {
        p.decision
            .actions
            .iter()
            .filter(|a| a.service() == "db")
            .all(|a| matches!(a, Action::CreateJob { .. }))
    }));
    let db = &status(&sim).services[0];
    assert!(db.measurements.is_empty() && db.step.is_none() && db.weight == 0);
}

/// How it is proven, 1: web breaches; its canary goes to 0, api is restored,
/// then the rollback Job runs, before the release ends RolledBack.
#[test]
fn a_breach_after_the_migration_runs_its_rollback_job_after_its_dependents_are_restored() {
    let mut sim = Sim::new(train()).with_measure(breaching("web"));
    assert_eq!(sim.run(500), Phase::RolledBack);
    let s = story(&sim);
    let order = [
        at(&s, "Promoted", "db"),
        at(&s, "Promoted", "api"),
        at(&s, "Breach", "web"),
        at(&s, "WeightZero", ""),
        at(&s, "Restored", "api"),
        at(&s, "RollbackJobRecorded", "db"),
        s.iter()
            .rposition(|(r, n)| r == "JobStarted" && n == "db")
            .unwrap(),
        at(&s, "Restored", "db"),
        at(&s, "RolledBack", ""),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{s:?}");
    // The rollback Job is created only after api is back on its baseline.
    let api_restored = sim
        .passes
        .iter()
        .position(|p| phase_in(p, "api") == ServicePhase::Restored)
        .unwrap();
    let created = sim
        .passes
        .iter()
        .position(|p| creates(p, "db", JobKind::Rollback))
        .unwrap();
    assert!(created > api_restored);
    assert_eq!(sim.jobs_created("db", JobKind::Rollback), 1);
    assert_eq!(
        run_of(&sim, "db", JobKind::Rollback).name,
        "train-db-rollback"
    );
    assert_eq!(sim.service_phase("db"), Some(ServicePhase::Restored));
    assert!(
        status(&sim)
            .message
            .as_deref()
            .unwrap()
            .starts_with("rolled back after Breach: web: error-rate"),
        "{:?}",
        status(&sim).message
    );
}

/// How it is proven, 2: nothing after a failing forward Job starts, and what
/// was promoted before it is rolled back.
#[test]
fn a_failing_forward_job_is_a_breach_and_nothing_after_it_starts() {
    let spec = crate::testing::spec()
        .owner("team-checkout")
        .service("base", [] as [&str; 0])
        .job("db", ["base"])
        .service("api", ["db"])
        .steps([10, 100].map(|weight| (weight, secs(60))))
        .interval(secs(20))
        .metric_at_most("error-rate", "up", 0.01)
        .build();
    let mut sim =
        Sim::new(spec).failing_job("db", JobKind::Forward, "BackoffLimitExceeded", Some(LOGS));
    assert_eq!(sim.run(500), Phase::RolledBack);
    assert!(
        sim.passes
            .iter()
            .all(|p| p.decision.actions.iter().all(|a| a.service() != "api")),
        "api must never be touched"
    );
    assert_eq!(sim.service_phase("api"), Some(ServicePhase::Skipped));
    assert_eq!(sim.service_phase("base"), Some(ServicePhase::Restored));
    let cause = status(&sim).rollback.clone().unwrap();
    assert_eq!(cause.reason, RollbackReason::Breach);
    assert_eq!(cause.service.as_deref(), Some("db"));
    assert_eq!(
        cause.message,
        format!(
            "db: forward Job train-db-forward failed: BackoffLimitExceeded; last log lines: {LOGS}"
        )
    );
    let run = run_of(&sim, "db", JobKind::Forward);
    assert_eq!(run.result, Some(JobResult::Failed));
    assert_eq!(
        run.message.as_deref(),
        Some(format!("BackoffLimitExceeded; last log lines: {LOGS}").as_str())
    );
    // Its rollback Job still runs: the failed forward Job may have changed something.
    assert_eq!(sim.jobs_created("db", JobKind::Rollback), 1);
    let s = story(&sim);
    assert!(at(&s, "Restored", "db") < at(&s, "Restored", "base"));
}

/// How it is proven, 3: a failing rollback Job ends the release Failed,
/// naming the Job and why; never RolledBack.
#[test]
fn a_failing_rollback_job_ends_the_release_failed_with_the_job_and_its_logs() {
    let mut sim = Sim::new(train())
        .with_measure(breaching("web"))
        .failing_job(
            "db",
            JobKind::Rollback,
            "BackoffLimitExceeded: Job has reached the specified backoff limit",
            Some(LOGS),
        );
    assert_eq!(sim.run(500), Phase::Failed);
    assert_eq!(
        status(&sim).message.as_deref(),
        Some(
            format!(
                "rollback Job train-db-rollback of db failed: BackoffLimitExceeded: Job has reached the \
                 specified backoff limit; last log lines: {LOGS}; the migration may be partly reversed: \
                 finish it by hand"
            )
            .as_str()
        )
    );
    assert_eq!(
        run_of(&sim, "db", JobKind::Rollback).result,
        Some(JobResult::Failed)
    );
    assert_eq!(condition(status(&sim), "Stalled").reason, "Failed");
    assert!(
        sim.passes
            .last()
            .unwrap()
            .decision
            .notices
            .iter()
            .any(|n| n.kind == NoticeKind::Failed)
    );
}

#[test]
fn a_forward_job_past_its_timeout_is_stopped_and_is_a_breach() {
    let mut spec = train();
    spec.services[0].job.as_mut().unwrap().timeout = Some(secs(120).into());
    let mut sim = Sim::new(spec).hanging_job("db");
    assert!(sim.run_until(100, |s| s.phase() == Phase::RollingBack));
    let stop = sim
        .passes
        .iter()
        .find(|p| {
            p.decision.actions.contains(&Action::StopJob {
                service: "db".into(),
                job: JobKind::Forward,
            })
        })
        .expect("the Job is stopped");
    let started = run_of(&sim, "db", JobKind::Forward).started_at.unwrap();
    assert!(stop.now >= context::plus(started.0, secs(120)));
    assert_eq!(
        run_of(&sim, "db", JobKind::Forward).result,
        Some(JobResult::TimedOut)
    );
    assert_eq!(
        status(&sim).rollback.as_ref().unwrap().message,
        "db: forward Job train-db-forward timed out: it ran longer than job.timeout 2m and was stopped"
    );
}

#[test]
fn a_forward_job_deleted_before_it_finished_holds_and_is_never_created_again() {
    let mut sim = Sim::new(train()).hanging_job("db");
    assert!(sim.run_until(50, |s| {
        s.release.status.as_ref().is_some_and(|st| {
            st.services[0]
                .forward_job
                .as_ref()
                .is_some_and(|r| r.started_at.is_some())
        })
    }));
    sim.cluster.get_mut("db").unwrap().forward_job = None;
    let from = sim.passes.len();
    assert!(sim.run_until(20, |s| s.phase() == Phase::Held));
    let hold = status(&sim).hold.clone().unwrap();
    assert_eq!(hold.reason, HoldReason::Drift);
    assert!(
        hold.message.starts_with(
            "forward Job train-db-forward of db (spec.services[0].job.forward) was deleted before it finished"
        ),
        "{}",
        hold.message
    );
    for _ in 0..10 {
        sim.pass();
    }
    assert!(
        sim.passes[from..]
            .iter()
            .all(|p| !creates(p, "db", JobKind::Forward))
    );
    assert_eq!(sim.jobs_created("db", JobKind::Forward), 1);
}

fn approval_before_start_when_high() -> ReleasePolicySpec {
    ReleasePolicySpec {
        risks: Some(RiskProfiles {
            low: None,
            medium: None,
            high: Some(Profile {
                approvals: Some(crate::api::Approvals {
                    before_start: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

fn irreversible_train() -> ReleaseSpec {
    let mut spec = train();
    let job = spec.services[0].job.as_mut().unwrap();
    job.rollback = None;
    job.irreversible = Some(crate::api::Irreversible {
        justification: "drops the legacy_orders table; restore from backup".into(),
    });
    spec
}

/// How it is proven, 4: an irreversible migration makes the release high
/// risk and waits for the high profile's approval; on a breach everything
/// else is restored and the final message says it stays applied.
#[test]
fn an_irreversible_migration_needs_the_high_profile_and_stays_applied_on_a_rollback() {
    let mut sim = Sim::new(irreversible_train())
        .with_policy("strict", approval_before_start_when_high())
        .with_measure(breaching("web"));
    sim.pass();
    assert_eq!(sim.phase(), Phase::AwaitingGates);
    let st = status(&sim);
    assert_eq!(st.policy.as_ref().unwrap().profile.as_deref(), Some("high"));
    assert!(
        st.gates.iter().any(|g| g.name == "approval" && !g.holds),
        "{:?}",
        st.gates
    );
    // The reversible migration is only medium: no approval needed.
    let mut medium = Sim::new(train()).with_policy("strict", approval_before_start_when_high());
    medium.pass();
    assert_eq!(medium.phase(), Phase::Progressing);
    assert_eq!(
        status(&medium)
            .plan
            .as_ref()
            .unwrap()
            .risk_reason
            .as_deref(),
        Some("medium: db is a migration job (counts as medium)")
    );

    sim.approve_gate("bob", "approval");
    assert_eq!(sim.run(500), Phase::RolledBack);
    assert_eq!(
        status(&sim).plan.as_ref().unwrap().risk_reason.as_deref(),
        Some(
            "high: db is an irreversible migration (drops the legacy_orders table; restore from backup)"
        )
    );
    assert_eq!(sim.service_phase("db"), Some(ServicePhase::Promoted));
    assert_eq!(sim.service_phase("api"), Some(ServicePhase::Restored));
    assert_eq!(sim.jobs_created("db", JobKind::Rollback), 0);
    let st = status(&sim);
    let db = &st.services[0];
    assert_eq!(
        db.message.as_deref(),
        Some("stays applied: irreversible (drops the legacy_orders table; restore from backup)")
    );
    let message = st.message.as_deref().unwrap();
    assert!(
        message.ends_with(
            "; every change is reversed except the irreversible migration db, which stays applied"
        ),
        "{message}"
    );
    let s = story(&sim);
    // In the rollback order: once everything that depends on it is back.
    assert!(at(&s, "Restored", "api") < at(&s, "StaysApplied", "db"));
    assert!(at(&s, "StaysApplied", "db") < at(&s, "RolledBack", ""));
    let rolled = st.timeline.last().unwrap();
    assert_eq!(
        rolled.message,
        "rolled back after Breach: every change is reversed except the irreversible migration db, which \
         stays applied"
    );
}

/// How it is proven, 8: a crash at any point, during the forward Job or the
/// rollback Job, runs each Job exactly once: the status re-decided from the
/// last one written never creates a Job it has seen.
#[test]
fn a_crash_at_any_point_runs_each_job_exactly_once() {
    let scenarios = || -> Vec<Sim> {
        vec![
            Sim::new(train()),
            Sim::new(train()).with_measure(breaching("web")),
        ]
    };
    for (n, mut reference) in scenarios().into_iter().enumerate() {
        let end = reference.run(1000);
        let rollbacks = reference.jobs_created("db", JobKind::Rollback);
        assert_eq!(rollbacks, n, "scenario {n}");
        for at in 0..reference.passes.len() {
            for crash in [
                Crash::BeforeActions,
                Crash::AfterActions(0),
                Crash::AfterActions(1),
                Crash::AfterActions(usize::MAX),
            ] {
                let mut sim = scenarios().swap_remove(n);
                for _ in 0..at {
                    sim.pass();
                }
                sim.pass_with(crash);
                assert_eq!(sim.run(1000), end, "scenario {n}, {crash:?} at pass {at}");
                let what = format!("scenario {n}, {crash:?} at pass {at}");
                assert_eq!(sim.jobs_created("db", JobKind::Forward), 1, "{what}");
                assert_eq!(
                    sim.jobs_created("db", JobKind::Rollback),
                    rollbacks,
                    "{what}"
                );
                for p in &sim.passes {
                    let seen = &p.observations.services["db"];
                    assert!(
                        !(creates(p, "db", JobKind::Forward) && seen.forward_job.is_some()),
                        "{what}"
                    );
                    assert!(
                        !(creates(p, "db", JobKind::Rollback) && seen.rollback_job.is_some()),
                        "{what}"
                    );
                }
            }
        }
    }
}

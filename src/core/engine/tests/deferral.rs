//! Deferring a service that is not ready: it and its dependents are
//! `Deferred`, the rest ships, and the release ends `Succeeded` saying what
//! it did not ship and why. Service gates defer the same way.

use super::*;
use crate::api::{Deferral, Gate};

/// How it is proven, 6: a held service and its dependents are deferred at
/// once, an independent one ships, and the release says what it did not ship.
#[test]
fn a_held_service_and_its_dependents_are_deferred_and_the_rest_ships() {
    let mut spec = spec(&[("a", &[]), ("b", &["a"]), ("d", &["b"]), ("c", &[])]);
    spec.services[0].hold = Some(crate::api::ServiceHold {
        reason: "payments team: load test not signed off".into(),
    });
    let mut sim = Sim::new(spec);
    let first = sim.pass().clone();
    for s in ["a", "b", "d"] {
        assert_eq!(
            phase_in(sim.passes.last().unwrap(), s),
            ServicePhase::Deferred,
            "{s}"
        );
    }
    let deferred: Vec<&Notice> = first
        .notices
        .iter()
        .filter(|n| n.kind == NoticeKind::Deferred)
        .collect();
    assert_eq!(deferred.len(), 1, "one notice per root");
    assert_eq!(
        deferred[0].message,
        "a deferred (held: payments team: load test not signed off); with it its dependents b, d"
    );
    assert_eq!(sim.run(500), Phase::Succeeded);
    assert!(sim.passes.iter().all(|p| {
        p.decision
            .actions
            .iter()
            .all(|a| !["a", "b", "d"].contains(&a.service()))
    }));
    assert_eq!(sim.service_phase("c"), Some(ServicePhase::Promoted));
    let st = status(&sim);
    // What `plan` announces is what the engine did.
    let announced = crate::plan::deferred_at_start(&sim.release.spec);
    let mut deferred: Vec<String> = st.deferred.iter().map(|d| d.service.clone()).collect();
    deferred.sort();
    let mut expected = announced.clone();
    expected.sort();
    assert_eq!(deferred, expected);
    assert_eq!(
        st.deferred,
        [
            Deferral {
                service: "a".into(),
                reason: "held: payments team: load test not signed off".into()
            },
            Deferral {
                service: "b".into(),
                reason: "depends on a, which is deferred".into()
            },
            Deferral {
                service: "d".into(),
                reason: "depends on b, which is deferred".into()
            },
        ]
    );
    assert_eq!(
        st.message.as_deref(),
        Some(
            "1 of 4 services promoted; 3 deferred: a (held: payments team: load test not signed off), \
             b (depends on a), d (depends on b)"
        )
    );
    assert_eq!(st.progress.as_deref(), Some("1/4 promoted, 3 deferred"));
    assert_eq!(
        st.services[1].message.as_deref(),
        Some("deferred: depends on a, which is deferred")
    );
    assert_eq!(condition(st, "Ready").status, "True");
}

#[test]
fn a_hold_set_mid_train_defers_a_service_when_its_turn_comes_and_changes_nothing_started() {
    let mut sim = Sim::new(spec(&[("a", &[]), ("b", &["a"]), ("x", &[])]));
    assert!(sim.run_until(50, |s| s.service_phase("a")
        == Some(ServicePhase::Progressing)));
    let hash = status(&sim).spec_hash.clone();
    sim.edit(|s| {
        for name in [1, 0] {
            s.services[name].hold = Some(crate::api::ServiceHold {
                reason: "not ready".into(),
            });
        }
    });
    assert_eq!(sim.run(500), Phase::Succeeded);
    // a had started: its hold changes nothing. b's turn came after: deferred.
    assert_eq!(sim.service_phase("a"), Some(ServicePhase::Promoted));
    assert_eq!(sim.service_phase("b"), Some(ServicePhase::Deferred));
    assert!(sim.passes.iter().all(|p| p.decision.status.hold.is_none()));
    assert_eq!(status(&sim).spec_hash, hash);
    assert_eq!(
        status(&sim).message.as_deref(),
        Some("2 of 3 services promoted; 1 deferred: b (held: not ready)")
    );
}

#[test]
fn when_every_service_is_deferred_nothing_ships_and_it_says_so() {
    let mut spec = spec(&[("a", &[]), ("b", &["a"])]);
    spec.services[0].hold = Some(crate::api::ServiceHold {
        reason: "freeze".into(),
    });
    let mut sim = Sim::new(spec);
    assert_eq!(sim.run(10), Phase::Succeeded);
    assert!(sim.passes.iter().all(|p| p.decision.actions.is_empty()));
    assert_eq!(
        status(&sim).message.as_deref(),
        Some("nothing shipped: all 2 services deferred: a (held: freeze), b (depends on a)")
    );
}

#[test]
fn a_held_migration_defers_the_code_that_needs_it() {
    let spec = crate::testing::spec()
        .owner("team")
        .job("db", [] as [&str; 0])
        .service("api", ["db"])
        .service("web", [] as [&str; 0])
        .hold("db", "DBA review pending")
        .steps([10, 100].map(|w| (w, secs(60))))
        .interval(secs(20))
        .metric_at_most("e", "up", 0.01)
        .build();
    let mut sim = Sim::new(spec);
    assert_eq!(sim.run(500), Phase::Succeeded);
    assert_eq!(sim.jobs_created("db", JobKind::Forward), 0);
    assert_eq!(sim.service_phase("api"), Some(ServicePhase::Deferred));
    assert_eq!(sim.service_phase("web"), Some(ServicePhase::Promoted));
}

#[test]
fn a_deferred_service_stays_deferred_through_a_rollback() {
    let mut spec = spec(&[("a", &[]), ("b", &["a"]), ("c", &[])]);
    spec.services[0].hold = Some(crate::api::ServiceHold {
        reason: "later".into(),
    });
    let mut sim = Sim::new(spec)
        .with_measure(|r, _| QueryResult::Value(if r.service == "c" { 0.5 } else { 0.0 }));
    assert_eq!(sim.run(500), Phase::RolledBack);
    assert_eq!(sim.service_phase("a"), Some(ServicePhase::Deferred));
    assert_eq!(sim.service_phase("b"), Some(ServicePhase::Deferred));
}

fn smoke(max: f64) -> Gate {
    Gate {
        name: "smoke".into(),
        query: Some("sum(smoke_failed{namespace=\"{{namespace}}\"})".into()),
        min: None,
        max: Some(max),
        interval: None,
        approval: None,
    }
}

/// A service gate that does not hold: the service waits while the rest
/// moves, and is deferred once nothing else can move.
#[test]
fn a_service_gate_that_does_not_hold_defers_the_service_once_nothing_else_can_move() {
    let mut spec = spec(&[("a", &[]), ("b", &[]), ("c", &["b"])]);
    spec.services[1].gates.push(smoke(0.0));
    let mut sim = Sim::new(spec).with_gate(|_, _| QueryResult::Value(3.0));
    assert!(sim.run_until(10, |s| {
        s.release
            .status
            .as_ref()
            .is_some_and(|st| st.services[1].gates.iter().any(|g| g.checked_at.is_some()))
    }));
    // Waits with its gate named while a moves on.
    let st = status(&sim);
    assert_eq!(st.services[1].phase, ServicePhase::Pending);
    assert!(
        st.services[1]
            .message
            .as_deref()
            .unwrap()
            .starts_with("waits for its gates: smoke: 3 is not"),
        "{:?}",
        st.services[1].message
    );
    assert_eq!(st.services[0].phase, ServicePhase::Progressing);
    assert_eq!(sim.run(500), Phase::Succeeded);
    assert_eq!(sim.service_phase("a"), Some(ServicePhase::Promoted));
    let deferred = &status(&sim).deferred;
    assert_eq!(deferred[0].service, "b");
    assert!(
        deferred[0]
            .reason
            .starts_with("gate smoke did not hold: 3 is not"),
        "{}",
        deferred[0].reason
    );
    assert_eq!(deferred[1].reason, "depends on b, which is deferred");
    // The gate was asked for through due_gates by its name.
    assert!(
        sim.passes
            .iter()
            .any(|p| p.observations.gates.iter().any(|g| g.gate == "smoke"))
    );
}

#[test]
fn a_service_gate_that_holds_lets_the_service_start() {
    let mut spec = spec(&[("a", &[]), ("b", &["a"])]);
    spec.services[1].gates.push(smoke(0.0));
    let mut sim = Sim::new(spec).with_gate(|_, _| QueryResult::Value(0.0));
    assert_eq!(sim.run(500), Phase::Succeeded);
    assert!(status(&sim).deferred.is_empty());
    assert!(status(&sim).services[1].gates[0].holds);
}

#[test]
fn holds_and_service_gates_are_not_what_is_released() {
    let s = spec(&[("a", &[])]);
    let mut edited = s.clone();
    edited.services[0].hold = Some(crate::api::ServiceHold { reason: "x".into() });
    edited.services[0].gates.push(smoke(1.0));
    assert_eq!(spec_hash(&edited), spec_hash(&s));
}

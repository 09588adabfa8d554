//! Go/no-go gates before the first wave and before each later wave.

use std::cell::Cell;
use std::rc::Rc;

use super::*;
use crate::api::{Gate, GateKind, RollbackReason};

fn smoke(max: f64) -> Gate {
    Gate {
        name: "smoke".into(),
        query: Some("sum(smoke_failures{namespace=\"{{namespace}}\"})".into()),
        min: None,
        max: Some(max),
        interval: Some(secs(10).into()),
        approval: None,
    }
}

/// A gate whose value the test sets.
fn valued(sim: Sim, value: &Rc<Cell<f64>>) -> Sim {
    let v = value.clone();
    sim.with_gate(move |_, _| QueryResult::Value(v.get()))
}

fn gate<'a>(sim: &'a Sim, name: &str) -> &'a crate::api::GateStatus {
    status(sim).gates.iter().find(|g| g.name == name).unwrap()
}

#[test]
fn a_gate_that_does_not_hold_keeps_the_release_awaiting_gates_with_nothing_changed() {
    let value = Rc::new(Cell::new(3.0));
    let mut s = spec(&[("a", &[]), ("b", &["a"])]);
    s.gates = vec![smoke(0.0)];
    let mut sim = valued(Sim::new(s), &value);
    let first = sim.pass().clone();
    assert_eq!(first.status.phase, Some(Phase::AwaitingGates));
    assert_eq!(
        first.requeue_after,
        Some(secs(1)),
        "asks for the gate at once"
    );
    for _ in 0..10 {
        sim.pass();
    }
    assert!(sim.passes.iter().all(|p| p.decision.actions.is_empty()));
    assert!(
        sim.cluster
            .values()
            .all(|s| !s.baseline_recorded && s.canary.is_none())
    );
    let st = status(&sim);
    assert_eq!(st.phase, Some(Phase::AwaitingGates));
    assert_eq!(st.started_at, None);
    let ready = gate(&sim, "deployments-ready");
    assert_eq!(
        (ready.kind, ready.holds, ready.wave),
        (GateKind::Cluster, true, 1)
    );
    let g = gate(&sim, "smoke");
    assert_eq!((g.holds, g.value), (false, Some(3.0)));
    assert_eq!(g.reason, "3 is not <= 0");
    assert_eq!(
        st.message.as_deref(),
        Some("waits for its go/no-go gates before wave 1: smoke: 3 is not <= 0")
    );
    assert_eq!(condition(st, "Reconciling").status, "True");
    assert_eq!(condition(st, "Stalled").status, "False");
    assert_eq!(condition(st, "Ready").status, "False");
    // Checked every interval, not every pass.
    let asked = sim
        .passes
        .iter()
        .filter(|p| !p.observations.gates.is_empty())
        .count();
    assert!((2..=11).contains(&asked), "{asked}");

    value.set(0.0);
    assert_eq!(sim.run(500), Phase::Succeeded);
    assert!(
        status(&sim)
            .timeline
            .iter()
            .any(|e| e.reason == "GatesPassed")
    );
}

#[test]
fn a_gate_that_fails_before_wave_2_holds_wave_2_while_wave_1_stays_promoted() {
    let value = Rc::new(Cell::new(0.0));
    let mut s = spec(&[("a", &[]), ("b", &["a"])]);
    s.gates = vec![smoke(0.0)];
    let mut sim = valued(Sim::new(s), &value);
    assert!(sim.run_until(100, |s| s.service_phase("a")
        == Some(ServicePhase::Progressing)));
    value.set(1.0);
    assert!(sim.run_until(500, |s| s.service_phase("a")
        == Some(ServicePhase::Promoted)));
    let promoted_at = sim.passes.len();
    for _ in 0..10 {
        sim.pass();
    }
    let st = status(&sim);
    assert_eq!(st.phase, Some(Phase::AwaitingGates));
    assert_eq!(sim.service_phase("a"), Some(ServicePhase::Promoted));
    assert_eq!(sim.service_phase("b"), Some(ServicePhase::Pending));
    assert!(
        sim.passes[promoted_at..]
            .iter()
            .all(|p| p.decision.actions.is_empty()),
        "wave 2 moved"
    );
    assert!(!sim.cluster["b"].baseline_recorded);
    let g = gate(&sim, "smoke");
    assert_eq!((g.wave, g.holds), (2, false));
    let message = st.message.clone().unwrap();
    assert!(
        message.contains("before wave 2: smoke: 1 is not <= 0"),
        "{message}"
    );

    value.set(0.0);
    assert_eq!(sim.run(500), Phase::Succeeded);
}

#[test]
fn a_gate_timeout_before_the_first_wave_fails_with_nothing_changed() {
    let mut s = spec(&[("a", &[])]);
    s.gates = vec![smoke(0.0)];
    s.gate_timeout = Some(secs(120).into());
    let mut sim = Sim::new(s).with_gate(|_, _| QueryResult::NoData);
    assert_eq!(sim.run(100), Phase::Failed);
    assert!(sim.passes.iter().all(|p| p.decision.actions.is_empty()));
    let st = status(&sim);
    let waited = st.finished_at.as_ref().unwrap().0.duration_since(epoch());
    assert!(
        waited.as_secs() >= 120 && waited.as_secs() < 135,
        "{waited:?}"
    );
    let message = st.message.clone().unwrap();
    assert!(
        message.starts_with("the gates did not hold within gateTimeout 2m before wave 1: smoke: the query returned no data"),
        "{message}"
    );
    assert!(message.ends_with("nothing was changed"), "{message}");
    assert_eq!(condition(st, "Stalled").reason, "Failed");
}

#[test]
fn a_gate_timeout_before_a_later_wave_rolls_the_train_back() {
    let value = Rc::new(Cell::new(0.0));
    let mut s = spec(&[("a", &[]), ("b", &["a"])]);
    s.gates = vec![smoke(0.0)];
    s.gate_timeout = Some(secs(300).into());
    let mut sim = valued(Sim::new(s), &value);
    assert!(sim.run_until(100, |s| s.service_phase("a")
        == Some(ServicePhase::Progressing)));
    value.set(1.0);
    assert_eq!(sim.run(500), Phase::RolledBack);
    let st = status(&sim);
    let cause = st.rollback.as_ref().unwrap();
    assert_eq!(cause.reason, RollbackReason::GateTimeout);
    assert!(
        cause.message.contains("gateTimeout 5m before wave 2"),
        "{}",
        cause.message
    );
    assert_eq!(sim.service_phase("a"), Some(ServicePhase::Restored));
    assert_eq!(sim.service_phase("b"), Some(ServicePhase::Skipped));
    all_settled_as(&sim, TemplateState::Baseline);
}

#[test]
fn an_approval_gate_waits_for_an_approval_and_says_how() {
    let mut s = spec(&[("a", &[])]);
    s.gates = vec![Gate {
        name: "sign-off".into(),
        query: None,
        min: None,
        max: None,
        interval: None,
        approval: Some(true),
    }];
    let mut sim = Sim::new(s);
    for _ in 0..3 {
        sim.pass();
    }
    assert_eq!(sim.phase(), Phase::AwaitingGates);
    assert_eq!(
        status(&sim).message.as_deref(),
        Some(
            "waits for its go/no-go gates before wave 1: sign-off: waits for an approval (kubectl \
             signalman approve train --gate sign-off -m ...)"
        )
    );
    sim.approve_gate("carol", "sign-off");
    assert_eq!(sim.run(200), Phase::Succeeded);
    assert!(
        gate(&sim, "sign-off")
            .reason
            .starts_with("approved by carol")
    );
}

#[test]
fn a_paused_deployment_fails_the_built_in_gate_of_a_gated_release() {
    let mut s = spec(&[("a", &[])]);
    s.gates = vec![smoke(0.0)];
    let mut sim = Sim::new(s);
    sim.cluster.get_mut("a").unwrap().paused = true;
    for _ in 0..5 {
        sim.pass();
    }
    assert_eq!(sim.phase(), Phase::AwaitingGates, "{:#?}", status(&sim));
    let g = gate(&sim, "deployments-ready");
    assert!(!g.holds);
    assert!(
        g.reason.contains("Deployment \"a\" is paused"),
        "{}",
        g.reason
    );
    sim.cluster.get_mut("a").unwrap().paused = false;
    assert_eq!(sim.run(200), Phase::Succeeded);
}

#[test]
fn due_gates_asks_only_while_waiting_and_once_per_interval() {
    let mut s = spec(&[("a", &[])]);
    s.gates = vec![smoke(0.0)];
    let mut sim = Sim::new(s).with_gate(|_, _| QueryResult::Value(5.0));
    assert!(
        due_gates(&sim.release, sim.now).is_empty(),
        "nothing before the first decision"
    );
    sim.pass();
    let now = sim.now;
    assert_eq!(due_gates(&sim.release, now).len(), 1);
    sim.pass();
    let checked = status(&sim)
        .gates
        .iter()
        .find(|g| g.name == "smoke")
        .unwrap()
        .checked_at
        .clone()
        .unwrap()
        .0;
    assert!(due_gates(&sim.release, plus_secs(checked, 9)).is_empty());
    assert_eq!(due_gates(&sim.release, plus_secs(checked, 10)).len(), 1);
}

fn plus_secs(t: Timestamp, s: u64) -> Timestamp {
    super::super::context::plus(t, secs(s))
}

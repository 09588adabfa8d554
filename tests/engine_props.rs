//! Property tests of the engine: random release trains under random
//! measurement sequences, run on the simulated cluster and clock.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use proptest::prelude::*;
use signalman::analysis::QueryResult;
use signalman::api::{Phase, ReleaseSpec, ServicePhase};
use signalman::engine::sim::{Pass, Sim};
use signalman::engine::{Action, TemplateState, decide};
use signalman_core::testing;

const MAX: f64 = 0.01;

#[derive(Clone, Debug)]
struct Train {
    deps: Vec<Vec<usize>>,
    bakes: Vec<u64>,
    interval: u64,
    failure_limit: i32,
    /// Outcome of the n-th measurement (cycled): 0..=84 pass, 85..=92 fail, 93..=96 no data, 97..=99 error.
    script: Vec<u8>,
}

fn train() -> impl Strategy<Value = Train> {
    (1usize..6)
        .prop_flat_map(|n| {
            (
                proptest::collection::vec(proptest::collection::vec(0u8..100, n), n),
                proptest::collection::vec(5u64..60, 2..4),
                5u64..25,
                0i32..3,
                proptest::collection::vec(0u8..100, 1..200),
            )
        })
        .prop_map(|(m, bakes, interval, failure_limit, script)| Train {
            deps: (0..m.len())
                .map(|i| (0..i).filter(|&j| m[i][j] < 35).collect())
                .collect(),
            bakes,
            interval,
            failure_limit,
            script,
        })
}

fn spec(t: &Train) -> ReleaseSpec {
    let last = t.bakes.len() - 1;
    let steps = t.bakes.iter().enumerate().map(|(i, &b)| {
        let weight = if i == last { 100 } else { (i as i32 + 1) * 10 };
        (weight, Duration::from_secs(b))
    });
    let train = testing::spec()
        .steps(steps)
        .interval(Duration::from_secs(t.interval))
        .failure_limit(t.failure_limit)
        .metric_at_most("error-rate", "q", MAX);
    (0..t.deps.len())
        .fold(train, |b, i| {
            b.service(format!("s{i}"), t.deps[i].iter().map(|d| format!("s{d}")))
        })
        .build()
}

fn sim(t: &Train) -> Sim {
    let script = t.script.clone();
    let mut n = 0;
    Sim::new(spec(t)).with_measure(move |_, _| {
        let roll = script[n % script.len()];
        n += 1;
        match roll {
            0..=84 => QueryResult::Value(0.0),
            85..=92 => QueryResult::Value(0.5),
            93..=96 => QueryResult::NoData,
            _ => QueryResult::Error("timeout".into()),
        }
    })
}

/// Run to a final phase, lifting holds (and aborting after five) as a person would. Stable rollouts
/// are slow in two passes of three, so promotions overlap other services' steps.
fn run(sim: &mut Sim) {
    for n in 0..3000 {
        if n % 3 != 0 {
            for svc in sim.cluster.values_mut() {
                if svc.template == TemplateState::New {
                    svc.rolled_out = false;
                }
            }
        }
        if sim.phase().is_final() {
            return;
        }
        let status = sim.release.status.as_ref();
        if let Some(hold) = status.and_then(|s| s.hold.clone())
            && sim.release.spec.resume_hold.as_deref() != Some(hold.id.as_str())
        {
            // A version that never yields evidence holds again after every resume:
            // after a few, the person gives up and aborts.
            if status.is_some_and(|s| s.holds >= 5) {
                sim.edit(|s| s.abort = Some(true));
            } else {
                sim.edit(|s| s.resume_hold = Some(hold.id.clone()));
            }
        }
        sim.pass();
    }
}

fn plus(t: Timestamp, secs: u64) -> Timestamp {
    t.checked_add(Duration::from_secs(secs)).unwrap()
}

fn passed(v: &QueryResult) -> bool {
    matches!(v, QueryResult::Value(x) if *x <= MAX)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn trains_end_consistently(t in train()) {
        let mut s = sim(&t);
        run(&mut s);
        let phase = s.phase();
        prop_assert!(phase == Phase::Succeeded || phase == Phase::RolledBack, "ended {:?}", phase);
        let want = if phase == Phase::Succeeded { TemplateState::New } else { TemplateState::Baseline };
        for (name, svc) in &s.cluster {
            prop_assert_eq!(svc.canary.clone(), None, "{} left a canary", name);
            // A service that never started keeps its baseline either way.
            let started = s.service_phase(name).is_some_and(|p| p != ServicePhase::Skipped);
            if started || phase == Phase::Succeeded {
                prop_assert_eq!(svc.template, want, "{}", name);
            }
        }
    }

    #[test]
    fn no_step_passes_early_or_on_missing_evidence(t in train()) {
        let mut s = sim(&t);
        run(&mut s);
        let spec = spec(&t);
        let analysis = spec.defaults.as_ref().unwrap().analysis.clone().unwrap();
        for (i, p) in s.passes.iter().enumerate() {
            let Some(before) = &p.before.status else { continue };
            for b in &before.services {
                let after = p.decision.status.services.iter().find(|a| a.name == b.name).unwrap();
                let stepped = b.phase == ServicePhase::Progressing
                    && ((after.phase == ServicePhase::Progressing && after.step > b.step)
                        || after.phase == ServicePhase::Promoting);
                if !stepped {
                    continue;
                }
                let k = b.step.unwrap() as usize;
                let bake = t.bakes[k];
                let started = b.bake_started_at.clone();
                prop_assert!(started.is_some(), "{} passed step {} without baking", b.name, k);
                let started = started.unwrap().0;
                prop_assert!(p.now >= plus(started, bake), "{} passed step {} before its bake time", b.name, k);
                let passes = s.passes[..=i]
                    .iter()
                    .flat_map(|q: &Pass| q.observations.measurements.iter())
                    .filter(|m| m.service == b.name && m.step == k as i32 && m.at > started && passed(&m.result))
                    .count();
                let need = analysis.min_passes(Duration::from_secs(bake)) as usize;
                prop_assert!(passes >= need, "{} passed step {} with {} of {} passing measurements", b.name, k, passes, need);
            }
        }
    }

    #[test]
    fn a_breach_zeroes_every_canary_in_the_very_next_decision(t in train()) {
        let mut s = sim(&t);
        run(&mut s);
        for p in &s.passes {
            let Some(before) = &p.before.status else { continue };
            if before.phase != Some(Phase::Progressing) {
                continue;
            }
            let breached = before.services.iter().any(|b| {
                let failed: i32 = b.tally.iter().map(|x| x.failed).sum();
                let new = p.observations.measurements.iter()
                    .filter(|m| m.service == b.name && Some(m.step) == b.step)
                    .filter(|m| matches!(m.result, QueryResult::Value(v) if v > MAX))
                    .count() as i32;
                b.phase == ServicePhase::Progressing && failed + new > t.failure_limit
            });
            if !breached {
                continue;
            }
            prop_assert_eq!(p.decision.status.phase, Some(Phase::RollingBack));
            let in_flight: Vec<&str> = before.services.iter()
                .filter(|b| matches!(b.phase, ServicePhase::Progressing | ServicePhase::Promoting))
                .map(|b| b.name.as_str())
                .collect();
            let zeroes: Vec<&str> = p.decision.actions.iter()
                .take_while(|a| matches!(a, Action::SetCanaryWeight { weight: 0, .. }))
                .map(|a| match a { Action::SetCanaryWeight { service, .. } => service.as_str(), _ => unreachable!() })
                .collect();
            for name in in_flight {
                prop_assert!(zeroes.contains(&name), "{} not at 0% first: {:?}", name, p.decision.actions);
            }
        }
    }

    #[test]
    fn deciding_twice_gives_the_same_answer(t in train()) {
        let mut s = sim(&t);
        run(&mut s);
        for p in &s.passes {
            let again = decide(&p.before, &p.observations, p.now);
            prop_assert_eq!(&again, &p.decision);
            let mut after = p.before.clone();
            after.status = Some(p.decision.status.clone());
            let redo = decide(&after, &p.observations, p.now);
            prop_assert!(redo.notices.is_empty(), "repeated {:?}", redo.notices);
            prop_assert_eq!(&redo.status.timeline, &p.decision.status.timeline);
            prop_assert_eq!(redo.status.phase, p.decision.status.phase);
        }
    }

    #[test]
    fn a_service_starts_only_after_its_dependencies_are_promoted(t in train()) {
        let mut s = sim(&t);
        run(&mut s);
        let deps: HashMap<String, Vec<String>> =
            spec(&t).services.iter().map(|x| (x.name.clone(), x.depends_on.clone())).collect();
        for p in &s.passes {
            for a in &p.decision.actions {
                let (Action::RecordBaseline { service } | Action::SetCanaryWeight { service, .. }) = a else { continue };
                let st = &p.decision.status;
                if st.phase == Some(Phase::RollingBack) || st.phase == Some(Phase::RolledBack) {
                    continue;
                }
                for d in &deps[service] {
                    let phase = st.services.iter().find(|x| &x.name == d).unwrap().phase;
                    prop_assert_eq!(phase, ServicePhase::Promoted, "{} moved before {}", service, d);
                }
            }
        }
    }
}

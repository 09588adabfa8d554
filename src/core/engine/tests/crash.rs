//! Crash safety and idempotence, and what the status keeps bounded.

use super::*;

/// What a run ends with, leaving out timestamps (a crash shifts them): the
/// phase, each service's phase, and each stable template and whether a canary is left.
type EndState = (
    Phase,
    Vec<(String, ServicePhase)>,
    Vec<(String, TemplateState, bool)>,
);

fn end_state(sim: &Sim) -> EndState {
    let st = status(sim);
    (
        sim.phase(),
        st.services
            .iter()
            .map(|s| (s.name.clone(), s.phase))
            .collect(),
        sim.cluster
            .iter()
            .map(|(n, s)| (n.clone(), s.template, s.canary.is_some()))
            .collect(),
    )
}

fn scenarios() -> Vec<Sim> {
    let edges: &[(&str, &[&str])] = &[("a", &[]), ("b", &["a"]), ("x", &["a"]), ("c", &["b"])];
    vec![
        Sim::new(spec(edges)),
        Sim::new(spec(edges)).with_measure(|r, _| {
            QueryResult::Value(if r.service == "b" && r.step == 2 {
                0.5
            } else {
                0.0
            })
        }),
        Sim::new(spec(edges)).with_measure(|r, _| {
            QueryResult::Value(if r.service == "c" && r.step == 1 {
                0.5
            } else {
                0.0
            })
        }),
        Sim::new(verified(edges)),
        // The train breaches in verification, once every service is promoted.
        Sim::new(verified(edges))
            .with_measure(|r, _| QueryResult::Value(if r.service.is_empty() { 0.75 } else { 0.0 })),
    ]
}

#[test]
fn a_crash_at_any_point_reaches_the_same_end_state() {
    for (n, mut reference) in scenarios().into_iter().enumerate() {
        reference.run(1000);
        let expected = end_state(&reference);
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
                sim.run(1000);
                assert_eq!(
                    end_state(&sim),
                    expected,
                    "scenario {n}, crash {crash:?} at pass {at}"
                );
            }
        }
    }
}

#[test]
fn deciding_again_on_the_result_repeats_no_transition() {
    for mut sim in scenarios() {
        sim.run(1000);
        for p in &sim.passes {
            let again = decide(&p.before, &p.observations, p.now);
            assert_eq!(again, p.decision, "same inputs, same decision");
            let mut after = p.before.clone();
            after.status = Some(p.decision.status.clone());
            let redo = decide(&after, &p.observations, p.now);
            assert!(redo.notices.is_empty(), "{:?}", redo.notices);
            assert_eq!(redo.status.timeline, p.decision.status.timeline);
            assert_eq!(redo.status.phase, p.decision.status.phase);
            assert_eq!(redo.status.conditions, p.decision.status.conditions);
        }
    }
}

#[test]
fn a_final_release_costs_nothing() {
    // Succeeded: nothing but the wake-up at the end of its rollback window.
    let mut sim = Sim::new(spec(&[("a", &[])]));
    sim.run(100);
    let st = status(&sim).clone();
    let finished = st.finished_at.clone().unwrap().0;
    let until = st.rollback_window.clone().unwrap().until.0;
    let obs = sim.observe(Vec::new());
    let later = context::plus(finished, secs(3600));
    let d = decide(&sim.release, &obs, later);
    assert!(
        d.actions.is_empty() && d.notices.is_empty(),
        "{:?} {:?}",
        d.actions,
        d.notices
    );
    assert_eq!(d.requeue_after, Some(context::until(later, until)));
    assert_eq!(Some(d.status), sim.release.status);

    // RolledBack (and Failed): nothing at all.
    let mut sim = Sim::new(spec(&[("a", &[])])).with_measure(|_, _| QueryResult::Value(0.5));
    assert_eq!(sim.run(100), Phase::RolledBack);
    let obs = sim.observe(Vec::new());
    let d = decide(&sim.release, &obs, context::plus(sim.now, secs(3600)));
    assert!(d.actions.is_empty() && d.notices.is_empty());
    assert_eq!(d.requeue_after, None);
    assert_eq!(Some(d.status), sim.release.status);
}

#[test]
fn conditions_keep_their_transition_time_and_carry_the_generation() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    sim.pass();
    let first = condition(status(&sim), "Reconciling")
        .last_transition_time
        .clone();
    sim.edit(|_| {});
    sim.pass();
    sim.pass();
    let c = condition(status(&sim), "Reconciling");
    assert_eq!(c.last_transition_time, first);
    assert_eq!(c.observed_generation, Some(2));
    assert_eq!(status(&sim).observed_generation, Some(2));
}

#[test]
fn the_timeline_is_capped_but_keeps_the_story() {
    let mut sim = Sim::new(spec(&[("a", &[])])).with_measure(|_, _| QueryResult::Value(0.5));
    sim.run_until(100, |s| s.phase() == Phase::RollingBack);
    let mut release = sim.release.clone();
    let st = release.status.as_mut().unwrap();
    let filler = st.timeline.last().unwrap().clone();
    st.timeline.extend(std::iter::repeat_n(filler, 300));
    let d = decide(&release, &sim.observe(Vec::new()), sim.now);
    let tl = &d.status.timeline;
    assert_eq!(tl.len(), crate::api::default::TIMELINE_KEPT);
    for reason in ["Started", "MeasurementFailed", "Breach"] {
        assert!(tl.iter().any(|e| e.reason == reason), "{reason} dropped");
    }
}

#[test]
fn measurements_in_status_are_bounded() {
    let mut s = spec(&[("a", &[])]);
    s.defaults.as_mut().unwrap().steps = Some(vec![
        Step {
            weight: 10,
            bake: secs(600).into(),
            approval: None,
        },
        Step {
            weight: 100,
            bake: secs(60).into(),
            approval: None,
        },
    ]);
    let mut sim = Sim::new(s);
    sim.run_until(200, |s| {
        s.release
            .status
            .as_ref()
            .and_then(|st| st.services.first())
            .is_some_and(|x| x.step == Some(1))
    });
    assert_eq!(
        status(&sim).services[0].measurements.len(),
        crate::api::default::MEASUREMENTS_KEPT
    );
}

#[test]
fn spec_hash_ignores_the_control_fields_only() {
    let s = spec(&[("a", &[])]);
    let h = spec_hash(&s);
    assert_eq!(h.len(), 16);
    let controlled = ReleaseSpec {
        paused: Some(true),
        abort: Some(true),
        resume_hold: Some("hold-1".into()),
        ..s.clone()
    };
    assert_eq!(spec_hash(&controlled), h);
    let mut changed = s.clone();
    changed.services[0]
        .change
        .images
        .insert("main".into(), "x:v3".into());
    assert_ne!(spec_hash(&changed), h);
}

#[test]
fn a_promotion_whose_status_was_lost_is_still_restored() {
    let mut sim = Sim::new(spec(&[("a", &[])]))
        .with_measure(|r, _| QueryResult::Value(if r.step == 2 { 0.5 } else { 0.0 }));
    sim.run_until(100, |s| {
        let st = s.release.status.as_ref().and_then(|st| st.services.first());
        st.is_some_and(|x| x.step == Some(2) && x.bake_started_at.is_some())
    });
    // The stable Deployment carries the new version although status never said Promoting.
    sim.cluster.get_mut("a").unwrap().template = TemplateState::New;
    assert_eq!(sim.run(100), Phase::RolledBack);
    assert_eq!(sim.service_phase("a"), Some(ServicePhase::Restored));
    all_settled_as(&sim, TemplateState::Baseline);
}

//! Holds: what the engine cannot decide waits for a person, at weight 0.

use super::*;

fn errors_first(n: usize) -> impl FnMut(&MeasurementRequest, Timestamp) -> QueryResult {
    let mut calls = 0;
    move |_, _| {
        calls += 1;
        if calls <= n {
            QueryResult::Error("connection refused".into())
        } else {
            QueryResult::Value(0.0)
        }
    }
}

#[test]
fn errors_beyond_the_limit_hold_at_weight_zero_until_resumed() {
    let mut sim = Sim::new(spec(&[("a", &[])])).with_measure(errors_first(3));
    assert!(sim.run_until(100, |s| s.phase() == Phase::Held));
    let held = sim.passes.last().unwrap().decision.clone();
    assert_eq!(held.actions, vec![zero("a")]);
    let hold = held.status.hold.clone().unwrap();
    assert_eq!(
        (
            hold.id.as_str(),
            hold.reason.as_str(),
            hold.service.as_deref()
        ),
        ("hold-1", "ErrorLimit", Some("a"))
    );
    assert!(
        hold.message.contains("spec.resumeHold: hold-1"),
        "{}",
        hold.message
    );
    // What the last failed measurement said, so the hold says what to fix.
    assert!(
        hold.message.contains(
            "could not be measured 3 times in this step, more than errorLimit 2 \
             (the last: connection refused); fix the query or Prometheus"
        ),
        "{}",
        hold.message
    );
    assert_eq!(held.status.services[0].weight, 0);
    assert_eq!(held.status.services[0].bake_started_at, None);
    assert!(held.status.services[0].tally.is_empty());
    assert_eq!(
        condition(&held.status, "Stalled").reason.as_str(),
        "ErrorLimit"
    );
    assert_eq!(condition(&held.status, "Stalled").status, "True");
    assert_eq!(sim.cluster["a"].canary.as_ref().unwrap().weight, 0);

    // Held: nothing moves, nothing is measured, no notice repeats.
    for _ in 0..5 {
        let d = sim.pass().clone();
        assert!(d.actions.is_empty() && d.notices.is_empty());
        assert_eq!(d.status.phase, Some(Phase::Held));
        assert!(
            sim.passes
                .last()
                .unwrap()
                .observations
                .measurements
                .is_empty()
        );
    }
    // A stale id does not lift it.
    sim.edit(|s| s.resume_hold = Some("hold-0".into()));
    assert_eq!(sim.pass().status.phase, Some(Phase::Held));
    sim.edit(|s| s.resume_hold = Some("hold-1".into()));
    let resumed = sim.pass().clone();
    assert_eq!(resumed.status.phase, Some(Phase::Progressing));
    assert_eq!(resumed.status.hold, None);
    assert_eq!(
        resumed.actions,
        vec![Action::SetCanaryWeight {
            service: "a".into(),
            weight: 10
        }]
    );
    assert!(resumed.notices.iter().any(|n| n.kind.reason() == "Resumed"));
    assert_eq!(sim.run(100), Phase::Succeeded);
    assert_eq!(status(&sim).holds, 1);
}

#[test]
fn inconclusive_beyond_the_limit_holds() {
    let mut sim = Sim::new(spec(&[("a", &[])])).with_measure(|_, _| QueryResult::NoData);
    assert!(sim.run_until(100, |s| s.phase() == Phase::Held));
    let st = status(&sim);
    assert_eq!(
        st.hold.as_ref().unwrap().reason.as_str(),
        "InconclusiveLimit"
    );
    // Three inconclusive measurements: one more than the default limit of 2.
    assert_eq!(
        sim.passes
            .iter()
            .filter(|p| !p.observations.measurements.is_empty())
            .count(),
        3
    );
}

#[test]
fn no_data_policy_fail_breaches_instead_of_holding() {
    let mut sim = Sim::new(spec(&[("a", &[])])).with_measure(|_, _| QueryResult::NoData);
    analysis(&mut sim).no_data = Some(NoDataPolicy::Fail);
    assert_eq!(sim.run(100), Phase::RolledBack);
    assert_eq!(
        status(&sim).rollback.as_ref().unwrap().reason.as_str(),
        "Breach"
    );
}

#[test]
fn hold_timeout_rolls_back() {
    let mut sim = Sim::new(spec(&[("a", &[])])).with_measure(errors_first(1000));
    sim.release.spec.hold_timeout = Some(secs(300).into());
    assert!(sim.run_until(100, |s| s.phase() == Phase::Held));
    let since = status(&sim).hold.as_ref().unwrap().since.0;
    // The engine wakes itself for the timeout.
    assert!(sim.passes.last().unwrap().decision.requeue_after.unwrap() <= secs(300));
    assert_eq!(sim.run(100), Phase::RolledBack);
    let cause = status(&sim).rollback.clone().unwrap();
    assert_eq!(cause.reason.as_str(), "HoldTimeout");
    assert!(cause.at.0 >= context::plus(since, secs(300)));
    all_settled_as(&sim, TemplateState::Baseline);
}

#[test]
fn abort_while_held_rolls_back() {
    let mut sim = Sim::new(spec(&[("a", &[])])).with_measure(errors_first(1000));
    sim.run_until(100, |s| s.phase() == Phase::Held);
    sim.edit(|s| s.abort = Some(true));
    assert_eq!(sim.run(100), Phase::RolledBack);
    assert_eq!(
        status(&sim).rollback.as_ref().unwrap().reason.as_str(),
        "Abort"
    );
}

#[test]
fn a_spec_change_holds_until_restored_and_resumed() {
    let mut sim = Sim::new(spec(&[("a", &[]), ("b", &["a"])]));
    sim.run_until(100, |s| {
        s.service_phase("a") == Some(ServicePhase::Progressing)
            && status(s).services[0].bake_started_at.is_some()
    });
    let original = sim.release.spec.clone();
    sim.edit(|s| {
        s.services[1]
            .change
            .images
            .insert("main".into(), "registry.example/b:v3".into());
    });
    let d = sim.pass().clone();
    let hold = d.status.hold.clone().unwrap();
    assert_eq!(hold.reason.as_str(), "SpecChanged");
    assert!(
        hold.message.starts_with(hold::SPEC_CHANGED),
        "{}",
        hold.message
    );
    assert_eq!(d.actions, vec![zero("a")]);
    // Resuming while the spec still differs does nothing but say why.
    sim.edit(|s| s.resume_hold = Some("hold-1".into()));
    let d = sim.pass().clone();
    assert_eq!(d.status.phase, Some(Phase::Held));
    assert!(
        d.status
            .message
            .as_deref()
            .unwrap()
            .contains("cannot lift hold-1")
    );
    // Restoring the spec (resumeHold is a control field) lifts it.
    sim.edit(|s| {
        *s = ReleaseSpec {
            resume_hold: Some("hold-1".into()),
            ..original
        };
    });
    assert_eq!(sim.pass().status.phase, Some(Phase::Progressing));
    assert_eq!(sim.run(200), Phase::Succeeded);
}

#[test]
fn drift_holds_naming_the_object_until_it_is_put_back() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    sim.run_until(100, |s| {
        s.service_phase("a") == Some(ServicePhase::Progressing)
    });
    sim.cluster.get_mut("a").unwrap().template = TemplateState::Drifted;
    let d = sim.pass().clone();
    let hold = d.status.hold.unwrap();
    assert_eq!(
        (hold.reason.as_str(), hold.service.as_deref()),
        ("Drift", Some("a"))
    );
    assert!(
        hold.message.contains("Deployment \"a\""),
        "{}",
        hold.message
    );
    sim.edit(|s| s.resume_hold = Some("hold-1".into()));
    assert_eq!(sim.pass().status.phase, Some(Phase::Held));
    sim.cluster.get_mut("a").unwrap().template = TemplateState::Baseline;
    assert_eq!(sim.pass().status.phase, Some(Phase::Progressing));
    assert_eq!(sim.run(100), Phase::Succeeded);
}

#[test]
fn a_deleted_deployment_or_route_holds() {
    let mut s = spec(&[("a", &[]), ("b", &[])]);
    s.services[1].traffic = Some(Traffic {
        gateway_api: Some(GatewayApiTraffic {
            http_route: "b-route".into(),
            service: None,
        }),
    });
    let mut sim = Sim::new(s);
    sim.run_until(100, |s| {
        s.service_phase("b") == Some(ServicePhase::Progressing)
    });
    sim.cluster.get_mut("b").unwrap().route = Some(RouteObservation {
        found: true,
        drifted: true,
    });
    let hold = sim.pass().status.hold.clone().unwrap();
    assert!(
        hold.message.contains("HTTPRoute \"b-route\""),
        "{}",
        hold.message
    );

    let mut sim = Sim::new(spec(&[("a", &[])]));
    sim.run_until(100, |s| {
        s.service_phase("a") == Some(ServicePhase::Progressing)
    });
    sim.cluster.get_mut("a").unwrap().exists = false;
    let hold = sim.pass().status.hold.clone().unwrap();
    assert!(hold.message.contains("was deleted"), "{}", hold.message);
}

/// A GitOps tool re-applying the old image of a promoted service while the
/// next wave bakes: the release holds naming who changed what, the canary in
/// flight goes to 0 %, and the promoted Deployment is not written again.
#[test]
fn the_old_image_reapplied_to_a_promoted_service_holds_naming_who_and_does_not_fight() {
    let mut sim = Sim::new(spec(&[("a", &[]), ("b", &["a"])]));
    sim.run_until(200, |s| {
        s.service_phase("b") == Some(ServicePhase::Progressing)
            && s.cluster["b"].canary.as_ref().is_some_and(|c| c.weight > 0)
    });
    assert_eq!(sim.service_phase("a"), Some(ServicePhase::Promoted));
    sim.reapply_baseline("a", "main", "argocd-controller");
    let at = sim.now;
    let d = sim.pass().clone();
    let hold = d.status.hold.clone().unwrap();
    assert_eq!(
        (hold.reason.as_str(), hold.service.as_deref()),
        ("Drift", Some("a"))
    );
    assert_eq!(
        hold.message,
        format!(
            "Deployment \"a\" (spec.services[0].deployment) was changed by someone else while the release \
             is in flight: container \"main\" image changed from \"a:v2\" to \"a:v1\" by argocd-controller \
             (Apply, {at}); Signalman does not write it back: put it back (where a GitOps tool applies it, \
             in its source); then set spec.resumeHold: hold-1 to resume, or spec.abort: true to roll back"
        )
    );
    assert_eq!(d.actions, vec![zero("b")]);
    // Held: nothing is written to a, however long it lasts.
    for _ in 0..20 {
        let d = sim.pass().clone();
        assert_eq!(d.status.phase, Some(Phase::Held));
        assert!(
            !d.actions.iter().any(|a| a.service() == "a"),
            "{:?}",
            d.actions
        );
    }
    assert_eq!(sim.cluster["a"].template, TemplateState::Baseline);
    // Put back (the GitOps source now says v2) and resumed: the train goes on.
    let a = sim.cluster.get_mut("a").unwrap();
    a.template = TemplateState::New;
    a.fields.clear();
    sim.edit(|s| s.resume_hold = Some("hold-1".into()));
    assert_eq!(sim.run(300), Phase::Succeeded);
}

/// The old image re-applied while the promotion rolls out: not written back.
/// A baseline last written before the promotion began is only the store
/// behind Signalman's own write, and the promotion is written again.
#[test]
fn a_promotion_put_back_by_someone_else_holds_but_a_stale_look_does_not() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    sim.run_until(200, |s| {
        s.service_phase("a") == Some(ServicePhase::Promoting)
    });
    // As the store still showed it before Signalman's write: the user's apply, long ago.
    sim.reapply_baseline("a", "main", "signalman-e2e");
    sim.cluster.get_mut("a").unwrap().fields[0]
        .writer
        .as_mut()
        .unwrap()
        .time = Some(crate::engine::sim::epoch());
    let d = sim.pass().clone();
    assert!(d.status.hold.is_none(), "{:?}", d.status.hold);
    assert!(d.actions.contains(&Action::PromoteStable {
        service: "a".into()
    }));
    assert_eq!(sim.service_phase("a"), Some(ServicePhase::Promoting));

    sim.reapply_baseline("a", "main", "kustomize-controller");
    let d = sim.pass().clone();
    let hold = d.status.hold.clone().unwrap();
    assert!(
        hold.message.contains(
            r#"container "main" image changed from "a:v2" to "a:v1" by kustomize-controller (Apply"#
        ),
        "{}",
        hold.message
    );
    for _ in 0..10 {
        let d = sim.pass().clone();
        assert!(d.actions.is_empty(), "{:?}", d.actions);
    }
}

//! Deleting a Release: a train in flight is reversed like an abort before the
//! Release goes, and a deletion can never wedge.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::api::RollbackReason;

fn delete(sim: &mut Sim) {
    sim.release.metadata.deletion_timestamp = Some(Time(sim.now));
}

/// a promoted, b's canary taking traffic in its first step.
fn mid_train() -> Sim {
    let mut sim = Sim::new(spec(&[("a", &[]), ("b", &["a"])]));
    assert!(sim.run_until(500, |s| {
        s.service_phase("b") == Some(ServicePhase::Progressing)
            && s.cluster["b"].canary.as_ref().is_some_and(|c| c.weight > 0)
    }));
    assert_eq!(sim.service_phase("a"), Some(ServicePhase::Promoted));
    assert_eq!(sim.cluster["a"].template, TemplateState::New);
    sim
}

#[test]
fn deleting_a_release_mid_train_withdraws_the_canaries_and_restores_what_was_promoted() {
    let mut sim = mid_train();
    delete(&mut sim);
    assert!(due_measurements(&sim.release, sim.now).is_empty());
    let d = sim.pass().clone();
    assert_eq!(d.status.phase, Some(Phase::RollingBack));
    assert_eq!(d.actions.first(), Some(&zero("b")), "{:?}", d.actions);
    let cause = d.status.rollback.clone().unwrap();
    assert_eq!(cause.reason, RollbackReason::Deleted);
    assert!(cause.message.contains("deleted"), "{}", cause.message);
    assert!(d.notices.iter().any(|n| {
        n.kind == NoticeKind::RollbackBegan(RollbackReason::Deleted) && n.kind.warning()
    }));

    assert_eq!(sim.run(100), Phase::RolledBack);
    assert_eq!(sim.service_phase("a"), Some(ServicePhase::Restored));
    assert_eq!(sim.service_phase("b"), Some(ServicePhase::Withdrawn));
    all_settled_as(&sim, TemplateState::Baseline);
}

#[test]
fn a_held_release_that_is_deleted_is_reversed_too() {
    let mut sim = mid_train();
    // What is released changes mid-flight: a SpecChanged hold.
    sim.edit(|s| {
        s.services[0]
            .change
            .images
            .insert("main".into(), "a:v3".into());
    });
    sim.pass();
    assert_eq!(sim.phase(), Phase::Held);
    delete(&mut sim);
    sim.pass();
    assert_eq!(sim.phase(), Phase::RollingBack);
    assert_eq!(sim.run(100), Phase::RolledBack);
    all_settled_as(&sim, TemplateState::Baseline);
}

#[test]
fn a_release_deleted_before_it_started_changes_nothing() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    delete(&mut sim);
    for _ in 0..3 {
        let d = sim.pass().clone();
        assert!(d.actions.is_empty(), "{:?}", d.actions);
        assert_eq!(d.status.phase, Some(Phase::Pending));
        assert!(d.notices.is_empty(), "{:?}", d.notices);
    }
    let st = status(&sim);
    assert!(
        st.message
            .as_deref()
            .unwrap()
            .contains("deleted before it started"),
        "{:?}",
        st.message
    );
    assert!(!sim.cluster["a"].baseline_recorded);
}

#[test]
fn a_deletion_that_cannot_restore_gives_up_after_the_grace_and_names_what_is_left() {
    let mut sim = mid_train();
    // a's restoration never rolls out: its Deployment is paused.
    sim.cluster.get_mut("a").unwrap().paused = true;
    delete(&mut sim);
    let deleted = sim.now;
    assert!(sim.run_until(500, |s| s.phase().is_final()));
    assert_eq!(sim.phase(), Phase::Failed);
    let last = sim.passes.last().unwrap();
    assert!(last.now >= context::plus(deleted, DELETION_GRACE));
    assert!(last.decision.actions.is_empty());
    assert!(
        last.decision
            .notices
            .iter()
            .any(|n| n.kind == NoticeKind::Failed && n.kind.warning())
    );
    let message = status(&sim).message.clone().unwrap();
    assert!(message.contains("not reversed within 10m"), "{message}");
    assert!(
        message.contains(
            r#"a is Restoring, its baseline is kept in ControllerRevision "train-a-baseline""#
        ),
        "{message}"
    );
    assert_eq!(sim.service_phase("b"), Some(ServicePhase::Withdrawn));
    // Final: deciding again changes nothing.
    let again = sim.pass().clone();
    assert!(again.actions.is_empty() && again.requeue_after.is_none());
}

#[test]
fn a_deletion_whose_stable_deployment_is_gone_ends_failed_at_once() {
    let mut sim = mid_train();
    sim.cluster.get_mut("a").unwrap().exists = false;
    delete(&mut sim);
    assert_eq!(sim.run(100), Phase::Failed);
    let message = status(&sim).message.clone().unwrap();
    assert!(message.contains("train-a-baseline"), "{message}");
}

#[test]
fn an_operator_back_long_after_the_deletion_still_tries_before_it_gives_up() {
    let mut sim = mid_train();
    // Deleted 20 minutes before the controller decides again.
    sim.release.metadata.deletion_timestamp = Some(Time(
        sim.now
            .checked_sub(jiff::SignedDuration::from_secs(1200))
            .unwrap(),
    ));
    let d = sim.pass().clone();
    assert_eq!(d.status.phase, Some(Phase::RollingBack));
    assert_eq!(d.actions.first(), Some(&zero("b")));
    assert_eq!(sim.run(100), Phase::RolledBack);
    all_settled_as(&sim, TemplateState::Baseline);
}

//! The announcements outbox: one per transition a receiver wants, numbered,
//! never repeated, bounded; and receivers that cannot be used as a Warning.

use super::*;
use crate::api::{Announcement, Gate, Receiver, SecretKey, Transition};

fn receiver(name: &str, on: &[Transition]) -> Receiver {
    Receiver {
        name: name.into(),
        url_from: SecretKey {
            name: format!("{name}-webhook"),
            key: None,
        },
        format: None,
        on: on.to_vec(),
    }
}

fn announced(sim: &Sim) -> Vec<Announcement> {
    status(sim).announcements.clone()
}

fn transitions(sim: &Sim) -> Vec<Transition> {
    announced(sim).iter().map(|a| a.transition).collect()
}

/// a then b; b's second step waits for an approval; the release waits for
/// its sign-off gate first; a's first measurements cannot be taken (a hold).
fn eventful() -> Sim {
    let mut s = spec(&[("a", &[]), ("b", &["a"])]);
    s.gates = vec![Gate {
        name: "sign-off".into(),
        query: None,
        min: None,
        max: None,
        interval: None,
        approval: Some(true),
    }];
    s.services[1].steps = Some(
        [(10, None), (50, Some(true)), (100, None)]
            .map(|(weight, approval)| Step {
                weight,
                bake: secs(60).into(),
                approval,
            })
            .to_vec(),
    );
    let mut errors = 0;
    Sim::new(s).with_measure(move |r, _| {
        if r.service == "a" && errors < 3 {
            errors += 1;
            return QueryResult::Error("connection refused".into());
        }
        QueryResult::Value(0.0)
    })
}

/// Drive [`eventful`] to its end: approve the gate, lift the hold, approve the step.
fn run_eventful(sim: &mut Sim) {
    sim.pass();
    sim.approve_gate("carol", "sign-off");
    assert!(sim.run_until(200, |s| s.phase() == Phase::Held));
    sim.edit(|s| s.resume_hold = Some("hold-1".into()));
    assert!(sim.run_until(500, |s| {
        status(s).services.iter().any(|x| x.awaiting_approval)
    }));
    sim.approve_step("dave", "b", 2);
    assert_eq!(sim.run(500), Phase::Succeeded);
}

#[test]
fn each_transition_is_announced_once_in_order_with_the_next_number() {
    let mut sim = eventful();
    sim.receivers = vec![receiver("release-channel", &[])];
    run_eventful(&mut sim);
    let all = announced(&sim);
    assert_eq!(
        transitions(&sim),
        [
            Transition::AwaitingGates,
            Transition::Started,
            Transition::Held,
            Transition::AwaitingApproval,
            Transition::Succeeded,
        ]
    );
    let seqs: Vec<i64> = all.iter().map(|a| a.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    // Each at the time of the decision that made it, which wrote it.
    for a in &all {
        let made = sim
            .passes
            .iter()
            .find(|p| {
                p.decision
                    .status
                    .announcements
                    .iter()
                    .any(|x| x.seq == a.seq)
            })
            .unwrap();
        assert_eq!(a.at.0, made.now);
        let before = made.before.status.clone().unwrap_or_default();
        assert!(before.announcements.iter().all(|x| x.seq != a.seq));
    }
    let held = &all[2];
    assert_eq!(held.service.as_deref(), Some("a"));
    assert!(
        held.message.starts_with("hold-1 (ErrorLimit)"),
        "{}",
        held.message
    );
    let approval = &all[3];
    assert_eq!(approval.service.as_deref(), Some("b"));
    assert!(
        approval
            .message
            .starts_with("b: waits at 50% for an approval of step 2"),
        "{}",
        approval.message
    );
    // The end is told with the report's one line.
    assert_eq!(
        all[4].message,
        status(&sim).report.as_ref().unwrap().summary
    );
    assert!(all[0].message.contains("sign-off"), "{}", all[0].message);
}

#[test]
fn deciding_again_on_the_same_inputs_announces_nothing_more() {
    let mut sim = eventful();
    sim.receivers = vec![receiver("release-channel", &[])];
    run_eventful(&mut sim);
    for p in &sim.passes {
        // A lost status write: the same decision, the same announcements.
        let again = decide(&p.before, &p.observations, p.now);
        assert_eq!(again.status.announcements, p.decision.status.announcements);
        // Written: deciding on it adds none.
        let mut after = p.before.clone();
        after.status = Some(p.decision.status.clone());
        let redo = decide(&after, &p.observations, p.now);
        assert_eq!(redo.status.announcements, p.decision.status.announcements);
    }
}

#[test]
fn only_the_transitions_a_receiver_wants_are_announced() {
    let mut sim = eventful();
    sim.receivers = vec![
        receiver(
            "leadership",
            &[Transition::Succeeded, Transition::RolledBack],
        ),
        receiver("approvers", &[Transition::AwaitingApproval]),
    ];
    run_eventful(&mut sim);
    assert_eq!(
        transitions(&sim),
        [Transition::AwaitingApproval, Transition::Succeeded]
    );
    let seqs: Vec<i64> = announced(&sim).iter().map(|a| a.seq).collect();
    assert_eq!(seqs, [1, 2]);

    // Without receivers nothing is kept at all.
    let mut sim = eventful();
    run_eventful(&mut sim);
    assert!(announced(&sim).is_empty());
}

#[test]
fn a_breach_and_the_rollback_are_announced() {
    let mut sim = Sim::new(spec(&[("a", &[]), ("b", &["a"])]))
        .with_measure(|r, _| QueryResult::Value(if r.service == "b" { 0.5 } else { 0.0 }));
    sim.receivers = vec![receiver("release-channel", &[])];
    assert_eq!(sim.run(500), Phase::RolledBack);
    assert_eq!(
        transitions(&sim),
        [
            Transition::Started,
            Transition::Breach,
            Transition::RolledBack
        ]
    );
    let breach = &announced(&sim)[1];
    assert_eq!(breach.service.as_deref(), Some("b"));
    assert!(breach.message.contains("error-rate"), "{}", breach.message);
}

#[test]
fn a_release_that_fails_waiting_for_its_gates_is_announced() {
    let mut s = spec(&[("a", &[])]);
    s.gates = vec![Gate {
        name: "sign-off".into(),
        query: None,
        min: None,
        max: None,
        interval: None,
        approval: Some(true),
    }];
    s.gate_timeout = Some(secs(60).into());
    let mut sim = Sim::new(s);
    sim.receivers = vec![receiver("release-channel", &[])];
    assert_eq!(sim.run(100), Phase::Failed);
    assert_eq!(
        transitions(&sim),
        [Transition::AwaitingGates, Transition::Failed]
    );
}

#[test]
fn a_manual_rollback_is_announced_as_rolled_back() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    sim.receivers = vec![receiver("release-channel", &[])];
    assert_eq!(sim.run(100), Phase::Succeeded);
    sim.now = context::plus(sim.passes.last().unwrap().now, secs(60));
    sim.request_rollback(Some("alice"));
    sim.pass();
    assert_eq!(sim.run(100), Phase::RolledBack);
    assert_eq!(
        transitions(&sim),
        [
            Transition::Started,
            Transition::Succeeded,
            Transition::RolledBack
        ]
    );
    let last = announced(&sim).pop().unwrap();
    assert_eq!(last.seq, 3);
    assert!(
        last.message.contains("requested by alice"),
        "{}",
        last.message
    );
}

#[test]
fn the_announcements_kept_are_bounded_and_numbering_goes_on() {
    let kept = crate::api::after_default::ANNOUNCEMENTS_KEPT;
    let mut sim = Sim::new(spec(&[("a", &[])]));
    sim.receivers = vec![receiver("release-channel", &[])];
    let earlier: Vec<Announcement> = (1..=kept as i64)
        .map(|seq| Announcement {
            seq,
            transition: Transition::Held,
            at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(epoch()),
            service: None,
            message: format!("earlier {seq}"),
        })
        .collect();
    sim.release.status = Some(ReleaseStatus {
        announcements: earlier,
        ..Default::default()
    });
    let d = sim.pass().clone();
    assert_eq!(d.status.announcements.len(), kept);
    assert_eq!(d.status.announcements[0].seq, 2);
    let last = d.status.announcements.last().unwrap();
    assert_eq!(
        (last.seq, last.transition),
        (kept as i64 + 1, Transition::Started)
    );
}

#[test]
fn receivers_that_cannot_be_used_are_a_warning_and_the_release_runs_on() {
    // Two owners' unrelated changes: the cross-team cause of the same Warning condition.
    let s = crate::testing::spec()
        .services(&[("a", &[]), ("b", &[])])
        .owned("b", "team-b")
        .steps([(10, secs(60)), (100, secs(60))])
        .interval(secs(20))
        .metric_at_most("error-rate", "q", 0.01)
        .build();
    let problem = "receiver release-channel: Secret \"release-channel-webhook\" in namespace \
                   signalman-system does not exist; create it with the webhook URL under key url";
    let mut sim = Sim::new(s);
    sim.receivers = vec![receiver("release-channel", &[])];
    sim.receiver_problems = vec![problem.to_owned()];
    let d = sim.pass().clone();
    assert_eq!(
        d.status.phase,
        Some(Phase::Progressing),
        "{:?}",
        d.status.message
    );
    let w = condition(&d.status, "Warning");
    assert_eq!(w.status, "True");
    assert_eq!(w.reason, "UnrelatedChanges,ReceiverUnusable");
    let (_, cross_team) = cross_team_warning(d.status.cross_team.as_ref().unwrap());
    assert_eq!(
        w.message,
        format!("{cross_team}; notifications cannot be sent: {problem}; the release runs on")
    );
    // The announcement is kept for when the receiver can be used.
    assert_eq!(transitions(&sim), [Transition::Started]);

    // Fixed: only the other cause stays.
    sim.receiver_problems.clear();
    let d = sim.pass().clone();
    let w = condition(&d.status, "Warning");
    assert_eq!(
        (w.reason.as_str(), w.message.as_str()),
        ("UnrelatedChanges", cross_team.as_str())
    );
    assert_eq!(sim.run(200), Phase::Succeeded);
}

#[test]
fn a_window_override_waiting_for_its_approval_is_announced_and_reported_once_approved() {
    // Friday 2026-11-27, 13:00 in Berlin: frozen.
    let friday: Timestamp = "2026-11-27T12:00:00Z".parse().unwrap();
    let mut sim = Sim::new(spec(&[("a", &[])]))
        .with_policy("office-hours", super::windows::office_hours())
        .at(friday);
    sim.receivers = vec![receiver("release-channel", &[])];
    sim.pass();
    sim.now = friday;
    sim.edit(|s| {
        s.window_override = Some(crate::api::WindowOverride {
            justification: "checkout outage INC-4711".into(),
        })
    });
    sim.pass();
    // Waiting on: nothing new to tell.
    sim.now = friday;
    sim.pass();
    sim.now = friday;
    sim.approve_window("dana");
    assert_eq!(sim.run(300), Phase::Succeeded);
    assert_eq!(
        transitions(&sim),
        [
            Transition::AwaitingWindow,
            Transition::AwaitingApproval,
            Transition::Started,
            Transition::Succeeded
        ]
    );
    let waiting = &announced(&sim)[1];
    assert!(
        waiting
            .message
            .contains("waits for an approval of the window override"),
        "{}",
        waiting.message
    );
    let approvals = &status(&sim).report.as_ref().unwrap().approvals;
    assert_eq!(approvals.len(), 1);
    assert_eq!(
        (approvals[0].approver.as_str(), approvals[0].what.as_str()),
        ("dana", "window override")
    );
}

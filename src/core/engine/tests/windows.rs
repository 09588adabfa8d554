//! Release windows and freezes before a wave begins, overrides, and the
//! hotfix that may start outside its window on its review.

use super::*;
use crate::api::{
    Freeze, ReleasePolicySpec, ReleaseType, RollbackReason, Weekday, Window, WindowOverride,
};

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn window(days: &[Weekday], from: &str, to: &str, tz: &str) -> Window {
    Window {
        days: days.to_vec(),
        from: from.into(),
        to: to.into(),
        time_zone: Some(tz.into()),
    }
}

const WEEKDAYS: &[Weekday] = &[
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
];

pub(super) fn office_hours() -> ReleasePolicySpec {
    ReleasePolicySpec {
        window: Some(window(WEEKDAYS, "09:00", "17:00", "Europe/Berlin")),
        freeze: Some(Freeze {
            friday_from: Some("12:00".into()),
            weekends: Some(true),
            blackouts: vec![],
        }),
        hotfix: super::profiles::strict().hotfix,
        ..Default::default()
    }
}

#[test]
fn a_release_outside_its_window_waits_with_nothing_changed_and_starts_when_it_opens() {
    // The simulated clock starts on Thursday 2026-11-26 at 10:00 UTC.
    let mut s = spec(&[("a", &[])]);
    s.window = Some(window(&[Weekday::Thursday], "10:05", "17:00", "UTC"));
    let mut sim = Sim::new(s);
    let d = sim.pass().clone();
    assert_eq!(d.status.phase, Some(Phase::AwaitingWindow));
    assert!(d.actions.is_empty());
    assert_eq!(d.requeue_after, Some(secs(300)));
    assert_eq!(
        d.status.message.as_deref(),
        Some("outside the window (Thu 10:05-17:00 UTC); opens Thu 10:05 UTC")
    );
    let w = d.status.window.as_ref().unwrap();
    assert!(!w.open);
    assert_eq!(
        w.next_opening.as_ref().map(|t| t.0),
        Some(t("2026-11-26T10:05:00Z"))
    );
    assert_eq!(condition(&d.status, "Reconciling").status, "True");
    assert_eq!(condition(&d.status, "Stalled").status, "False");
    // The clock jumps to the opening, and the release starts by itself.
    let d = sim.pass().clone();
    assert_eq!(sim.passes[1].now, t("2026-11-26T10:05:00Z"));
    assert_eq!(d.status.phase, Some(Phase::Progressing));
    assert!(!d.actions.is_empty());
    assert_eq!(sim.run(300), Phase::Succeeded);
}

#[test]
fn friday_afternoon_needs_a_justification_and_an_approved_override() {
    // Friday 2026-11-27, 13:00 in Berlin.
    let friday = t("2026-11-27T12:00:00Z");
    let mut sim = Sim::new(spec(&[("a", &[])]))
        .with_policy("office-hours", office_hours())
        .at(friday);
    let d = sim.pass().clone();
    assert_eq!(d.status.phase, Some(Phase::AwaitingWindow));
    assert!(d.actions.is_empty());
    assert_eq!(
        d.status.message.as_deref(),
        Some(
            "frozen (Friday after 12:00): needs spec.override.justification and an approved window \
             override (kubectl signalman approve train --window -m ...); otherwise it opens Mon 09:00 \
             Europe/Berlin"
        )
    );
    assert_eq!(
        d.status.window.as_ref().unwrap().message,
        "Mon-Fri 09:00-17:00 Europe/Berlin; Friday after 12:00 and weekends need an override"
    );

    sim.now = friday;
    sim.edit(|s| {
        s.window_override = Some(WindowOverride {
            justification: "checkout outage INC-4711".into(),
        })
    });
    let d = sim.pass().clone();
    assert_eq!(d.status.phase, Some(Phase::AwaitingWindow));
    assert!(d.actions.is_empty());
    let message = d.status.message.clone().unwrap();
    assert!(
        message.starts_with(
            "frozen (Friday after 12:00): has a justification; waits for an approval of the window \
             override (kubectl signalman approve train --window -m ...)"
        ),
        "{message}"
    );

    sim.now = friday;
    sim.approve_window("dana");
    let d = sim.pass().clone();
    assert_eq!(d.status.phase, Some(Phase::Progressing));
    assert!(!d.actions.is_empty());
    let entry = d
        .status
        .timeline
        .iter()
        .find(|e| e.reason == "WindowOverride")
        .unwrap();
    assert_eq!(
        entry.message,
        "frozen (Friday after 12:00); overridden by dana: checkout outage INC-4711"
    );
}

#[test]
fn an_approval_without_a_justification_is_not_an_override() {
    let friday = t("2026-11-27T12:00:00Z");
    let mut sim = Sim::new(spec(&[("a", &[])]))
        .with_policy("office-hours", office_hours())
        .at(friday);
    sim.approve_window("dana");
    let d = sim.pass().clone();
    assert_eq!(d.status.phase, Some(Phase::AwaitingWindow));
    assert!(
        d.status
            .message
            .as_deref()
            .unwrap()
            .contains("approved by dana but needs spec.override.justification")
    );
}

#[test]
fn a_later_wave_waits_for_the_window_while_the_running_step_finishes() {
    // Thursday 16:58 Berlin: wave 1 starts, and its steps run past 17:00.
    let mut sim = Sim::new(spec(&[("a", &[]), ("b", &["a"])]))
        .with_policy("office-hours", office_hours())
        .at(t("2026-11-26T15:58:00Z"));
    assert!(sim.run_until(500, |s| s.service_phase("a")
        == Some(ServicePhase::Promoted)));
    assert!(sim.now > t("2026-11-26T16:00:00Z"), "a was cut short");
    let st = status(&sim);
    assert_eq!(st.phase, Some(Phase::AwaitingWindow));
    assert_eq!(sim.service_phase("b"), Some(ServicePhase::Pending));
    let message = st.message.clone().unwrap();
    assert!(
        message.starts_with(
            "wave 2 outside the window (Mon-Fri 09:00-17:00 Europe/Berlin); opens Fri 09:00 Europe/Berlin"
        ),
        "{message}"
    );
    // Nothing for b until Friday 09:00 Berlin.
    assert_eq!(sim.run(500), Phase::Succeeded);
    let first_b = first_pass_touching(&sim, "b");
    assert_eq!(sim.passes[first_b].now, t("2026-11-27T08:00:00Z"));
}

#[test]
fn a_hotfix_outside_the_window_starts_on_its_justified_review_and_still_rolls_back_on_a_breach() {
    // Saturday 2026-11-28, 10:00 UTC: weekend freeze, outside the window.
    let saturday = t("2026-11-28T10:00:00Z");
    let mut s = spec(&[("a", &[])]);
    s.defaults.as_mut().unwrap().steps = None;
    s.release_type = Some(ReleaseType::Hotfix);
    s.window_override = Some(WindowOverride {
        justification: "payments down INC-9".into(),
    });
    let mut sim = Sim::new(s)
        .with_policy("office-hours", office_hours())
        .at(saturday)
        .with_measure(|_, _| QueryResult::Value(0.5));
    let d = sim.pass().clone();
    assert_eq!(d.status.phase, Some(Phase::AwaitingWindow));
    assert!(d.actions.is_empty());
    sim.now = saturday;
    sim.approve_gate("erin", "review");
    let d = sim.pass().clone();
    assert_eq!(
        d.status.phase,
        Some(Phase::Progressing),
        "{:?}",
        d.status.message
    );
    let st = &d.status;
    assert_eq!(
        st.policy.as_ref().unwrap().profile.as_deref(),
        Some("hotfix")
    );
    assert!(
        st.gates.iter().any(|g| g.name == "review" && g.holds),
        "{:?}",
        st.gates
    );
    assert!(st.timeline.iter().any(|e| {
        e.reason == "WindowOverride"
            && e.message
                .contains("overridden by erin: payments down INC-9")
    }));
    assert_eq!(sim.run(300), Phase::RolledBack);
    assert_eq!(
        status(&sim).rollback.as_ref().map(|r| r.reason),
        Some(RollbackReason::Breach)
    );
    // The profile's two steps: the breach came at the first.
    assert!(
        status(&sim)
            .timeline
            .iter()
            .any(|e| e.message.starts_with("step 1/2"))
    );
}

#[test]
fn a_hotfix_waits_for_its_review_even_without_a_policy() {
    let mut s = spec(&[("a", &[])]);
    s.release_type = Some(ReleaseType::Hotfix);
    let mut sim = Sim::new(s);
    for _ in 0..3 {
        sim.pass();
    }
    assert_eq!(sim.phase(), Phase::AwaitingGates);
    assert!(status(&sim).message.as_deref().unwrap().contains(
        "review: waits for an approval (kubectl signalman approve train --gate review -m ...)"
    ));
    sim.approve_gate("erin", "review");
    assert_eq!(sim.run(300), Phase::Succeeded);
}

//! The rollback window: a manual rollback (`spec.rollback`) within it, the
//! refusals, and the baselines removed once when it closes.

use super::report::report;
use super::*;
use crate::api::{ReleasePolicySpec, RollbackReason, ServiceHold, StallReason};

/// db (a migration) -> api -> web; the flag f after api; ledger (irreversible)
/// before api; batch held.
fn train() -> ReleaseSpec {
    let mut s = crate::testing::spec()
        .owner("team-checkout")
        .job("db", [] as [&str; 0])
        .irreversible_job("ledger", [] as [&str; 0], "rewrites the ledger in place")
        .service("api", ["db", "ledger"])
        .service("web", ["api"])
        .flag("f", ["api"], "flags", &[("checkout-v2", "on")])
        .service("batch", [] as [&str; 0])
        .steps([10, 100].map(|weight| (weight, secs(60))))
        .interval(secs(20))
        .metric_at_most("error-rate", "rate(errors[1m])", 0.01)
        .build();
    s.services[5].hold = Some(ServiceHold {
        reason: "not ready".into(),
    });
    s
}

fn succeeded() -> Sim {
    let mut sim = Sim::new(train()).with_config_map("flags", &[("checkout-v2", "off")]);
    assert_eq!(sim.run(1000), Phase::Succeeded);
    within_the_window(&mut sim);
    sim
}

/// The simulated clock jumped to the wake-up the engine asked for, the end of
/// the window: go back to a minute after the release succeeded.
fn within_the_window(sim: &mut Sim) {
    let last = sim.passes.last().unwrap();
    assert_eq!(sim.now, window(sim).until.0);
    sim.now = context::plus(last.now, secs(60));
}

fn window(sim: &Sim) -> crate::api::RollbackWindow {
    status(sim).rollback_window.clone().unwrap()
}

/// One pass a few seconds on, the clock kept within the window (the simulated
/// clock would jump to its end, the wake-up the engine asks for).
fn pass_within(sim: &mut Sim) -> Decision {
    let now = sim.now;
    let d = sim.pass().clone();
    sim.now = context::plus(now, secs(10));
    d
}

/// The pass that first asked for `action`.
fn asked(sim: &Sim, action: &Action) -> usize {
    sim.passes
        .iter()
        .position(|p| p.decision.actions.contains(action))
        .unwrap_or_else(|| panic!("never asked for {action:?}"))
}

#[test]
fn within_the_window_a_manual_rollback_reverses_the_train_flags_first_then_in_rollback_order() {
    let mut sim = succeeded();
    let succeeded_at = status(&sim).finished_at.clone().unwrap();
    let from = sim.passes.len();
    sim.request_rollback(Some("alice"));
    let d = sim.pass().clone();
    assert_eq!(d.status.phase, Some(Phase::RollingBack));
    assert_eq!(
        d.actions.first(),
        Some(&Action::RestoreFlag {
            service: "f".into()
        })
    );
    let cause = d.status.rollback.clone().unwrap();
    assert_eq!(cause.reason, RollbackReason::Manual);
    assert_eq!(cause.requested_by.as_deref(), Some("alice"));
    assert_eq!(cause.message, "rolled back by alice (spec.rollback)");
    assert_eq!(cause.service, None);
    assert!(
        d.notices
            .iter()
            .any(|n| n.kind.reason() == "Manual" && n.kind.warning())
    );
    // Not a changed spec: nothing is held.
    assert_eq!(d.status.hold, None);

    assert_eq!(sim.run(500), Phase::RolledBack);
    let st = status(&sim).clone();
    let phases: Vec<(&str, ServicePhase)> = st
        .services
        .iter()
        .map(|s| (s.name.as_str(), s.phase))
        .collect();
    assert_eq!(
        phases,
        [
            ("db", ServicePhase::Restored),
            ("ledger", ServicePhase::Promoted),
            ("api", ServicePhase::Restored),
            ("web", ServicePhase::Restored),
            ("f", ServicePhase::Restored),
            ("batch", ServicePhase::Deferred),
        ]
    );
    // Every Deployment back on its baseline, the flag off, db reversed once, ledger not at all.
    for name in ["api", "web"] {
        assert_eq!(
            sim.cluster[name].template,
            TemplateState::Baseline,
            "{name}"
        );
    }
    assert_eq!(sim.config_map("flags").unwrap()["checkout-v2"], "off");
    assert_eq!(sim.jobs_created("db", JobKind::Rollback), 1);
    assert_eq!(sim.jobs_created("ledger", JobKind::Rollback), 0);
    // Reverse dependency order: web before api, api before db's rollback Job.
    let restore = |s: &str| Action::RestoreBaseline { service: s.into() };
    let (web, api) = (asked(&sim, &restore("web")), asked(&sim, &restore("api")));
    let db = asked(
        &sim,
        &Action::CreateJob {
            service: "db".into(),
            job: JobKind::Rollback,
        },
    );
    assert!(from <= web && web < api && api < db, "{web} {api} {db}");
    assert!(phase_in(&sim.passes[api], "web") == ServicePhase::Restored);

    assert!(st.finished_at.clone().unwrap() > succeeded_at);
    assert_eq!(
        st.message.as_deref(),
        Some(
            "rolled back after Manual: rolled back by alice (spec.rollback); every change is \
             reversed except the irreversible migration ledger, which stays applied"
        )
    );
    let r = report(&sim);
    assert_eq!(r.outcome, Phase::RolledBack);
    let rb = r.rollback.clone().unwrap();
    assert_eq!(rb.reason, RollbackReason::Manual);
    assert_eq!(rb.requested_by.as_deref(), Some("alice"));
    assert_eq!(rb.restored, ["f", "web", "api", "db"]);
    assert!(
        r.summary.starts_with(
            "train rolled back after a manual rollback requested by alice: 4 services restored in "
        ),
        "{}",
        r.summary
    );
    assert!(
        r.summary.ends_with("; ledger stays applied (irreversible)"),
        "{}",
        r.summary
    );
    assert_eq!(r.rollback_window, None);
    // The new summary is told.
    let told: Vec<&str> = sim.passes[from..]
        .iter()
        .flat_map(|p| &p.decision.notices)
        .filter(|n| n.kind == NoticeKind::Report)
        .map(|n| n.message.as_str())
        .collect();
    assert_eq!(told, [r.summary.as_str()]);
}

#[test]
fn a_manual_rollback_that_does_not_say_who_asked_is_on_record_as_spec_rollback() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    assert_eq!(sim.run(100), Phase::Succeeded);
    within_the_window(&mut sim);
    sim.request_rollback(None);
    sim.pass();
    assert_eq!(sim.run(100), Phase::RolledBack);
    let cause = status(&sim).rollback.clone().unwrap();
    assert_eq!(cause.requested_by.as_deref(), Some("spec.rollback"));
    assert!(
        cause
            .message
            .contains("no annotation signalman.dev/rollback-by"),
        "{}",
        cause.message
    );
    assert_eq!(sim.service_phase("a"), Some(ServicePhase::Restored));
}

/// Refused: phase Succeeded, nothing done, the reason in `status.rollbackWindow.refused`
/// and the `Warning` condition, one Warning Event; deciding again tells nothing more.
fn refused(sim: &mut Sim) -> String {
    let d = pass_within(sim);
    assert_eq!(d.status.phase, Some(Phase::Succeeded));
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    let why = d
        .status
        .rollback_window
        .as_ref()
        .and_then(|w| w.refused.clone())
        .expect("refused");
    let w = condition(&d.status, "Warning");
    assert_eq!(
        (w.status.as_str(), w.reason.as_str()),
        ("True", "RollbackRefused")
    );
    assert_eq!(w.message, why);
    let told: Vec<&Notice> = d
        .notices
        .iter()
        .filter(|n| n.kind == NoticeKind::RollbackRefused)
        .collect();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].message, why);
    assert!(told[0].kind.warning());
    let again = pass_within(sim);
    assert!(again.actions.is_empty() && again.notices.is_empty());
    assert_eq!(again.status.phase, Some(Phase::Succeeded));
    why
}

#[test]
fn after_the_window_a_rollback_is_refused_and_the_baselines_are_gone() {
    let mut s = spec(&[("a", &[])]);
    s.policy = Some("short".into());
    let mut sim = Sim::new(s).with_policy(
        "short",
        ReleasePolicySpec {
            rollback_window: Some(secs(600).into()),
            ..Default::default()
        },
    );
    assert_eq!(sim.run(200), Phase::Succeeded);
    let st = status(&sim).clone();
    // The policy's window, fixed when the release started.
    assert_eq!(
        window(&sim).until.0,
        context::plus(st.finished_at.clone().unwrap().0, secs(600))
    );
    // The engine woke at its end and closed it.
    let closed = sim.pass().clone();
    assert_eq!(
        closed.actions,
        [Action::DeleteBaseline {
            service: "a".into()
        }]
    );
    sim.request_rollback(Some("alice"));
    let why = refused(&mut sim);
    assert!(
        why.starts_with("spec.rollback: the rollback window closed at "),
        "{why}"
    );
    assert!(
        why.contains("release the previous versions as a new Release"),
        "{why}"
    );
    assert_eq!(sim.service_phase("a"), Some(ServicePhase::Promoted));
    assert_eq!(sim.cluster["a"].template, TemplateState::New);
}

#[test]
fn a_deployment_changed_since_blocks_the_rollback_naming_it_and_what_changed() {
    let mut sim = succeeded();
    sim.change_deployment("web", "main", "web:v9", "kubectl-edit");
    let what = format!(
        r#"container "main" image changed from "web:v2" to "web:v9" by kubectl-edit (Update, {})"#,
        sim.now
    );
    sim.request_rollback(Some("alice"));
    let why = refused(&mut sim);
    assert_eq!(
        why,
        format!(
            "spec.rollback: Deployment \"web\" (service web) was changed after the release \
             succeeded: {what}; restoring the baselines would undo that: put back what the \
             release left, or release the versions you want as a new Release"
        )
    );
    // Nothing of the train moved: the flag is still on, the Deployments as they were.
    assert_eq!(sim.config_map("flags").unwrap()["checkout-v2"], "on");
    assert_eq!(sim.cluster["web"].template, TemplateState::Drifted);
    assert_eq!(sim.cluster["api"].template, TemplateState::New);
    assert_eq!(
        status(&sim).report.as_ref().unwrap().rollback_window,
        status(&sim).rollback_window
    );

    // Put back as the release left it, the request (still standing) is honoured.
    let web = sim.cluster.get_mut("web").unwrap();
    web.template = TemplateState::New;
    web.fields.clear();
    assert_eq!(pass_within(&mut sim).status.phase, Some(Phase::RollingBack));
    assert_eq!(sim.run(500), Phase::RolledBack);
    assert_eq!(status(&sim).rollback_window.as_ref().unwrap().refused, None);
    assert!(!status(&sim).conditions.iter().any(|c| c.type_ == "Warning"));
}

#[test]
fn a_flag_changed_since_blocks_the_rollback_naming_its_config_map_and_key() {
    let mut sim = succeeded();
    sim.config_maps
        .get_mut("flags")
        .unwrap()
        .insert("checkout-v2".into(), "off".into());
    sim.request_rollback(Some("alice"));
    let why = refused(&mut sim);
    assert!(
        why.starts_with(
            "spec.rollback: ConfigMap \"flags\" key \"checkout-v2\" (flag f) is \"off\", the release \
             set \"on\""
        ),
        "{why}"
    );
    assert_eq!(sim.cluster["api"].template, TemplateState::New);
    // Still refused for as long as it is so, and never told twice.
    for _ in 0..3 {
        let d = pass_within(&mut sim);
        assert!(d.notices.is_empty() && d.actions.is_empty());
    }
    // Taking the request back takes the warning away; the refusal stays on record.
    sim.edit(|s| s.rollback = None);
    let d = pass_within(&mut sim);
    assert!(d.status.conditions.iter().all(|c| c.type_ != "Warning"));
    assert_eq!(
        d.status.rollback_window.unwrap().refused.as_deref(),
        Some(why.as_str())
    );
}

#[test]
fn the_window_closing_removes_every_baseline_once_and_never_again() {
    let mut sim = Sim::new(train()).with_config_map("flags", &[("checkout-v2", "off")]);
    assert_eq!(sim.run(1000), Phase::Succeeded);
    let until = window(&sim).until.0;
    // Woken at the end of the window, not before.
    assert_eq!(sim.now, until);
    let closing = sim.pass().clone();
    let deleted: Vec<&str> = closing
        .actions
        .iter()
        .map(|a| match a {
            Action::DeleteBaseline { service } => service.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    // Deployments with a baseline only: not the Jobs, not the flag, not batch (never started).
    assert_eq!(deleted, ["api", "web"]);
    assert_eq!(closing.requeue_after, None);
    assert!(closing.notices.is_empty(), "{:?}", closing.notices);
    let w = closing.status.rollback_window.clone().unwrap();
    assert_eq!(w.closed_at.as_ref().map(|t| t.0), Some(until));
    let entry = closing.status.timeline.last().unwrap();
    assert_eq!(entry.reason, "RollbackWindowClosed");
    assert_eq!(
        entry.message,
        "the rollback window closed: the baselines of api, web are removed and the release can \
         no longer be rolled back"
    );
    assert_eq!(
        closing.status.report.as_ref().unwrap().rollback_window,
        Some(w.clone())
    );
    assert!(!sim.cluster["api"].baseline_recorded);
    for _ in 0..3 {
        let d = sim.pass().clone();
        assert!(d.actions.is_empty() && d.notices.is_empty());
        assert_eq!(d.requeue_after, None);
        assert_eq!(d.status, closing.status);
    }
    // Deciding the closing again on its result asks for nothing more.
    let mut after = sim.release.clone();
    after.status = Some(closing.status.clone());
    let again = decide(&after, &sim.observe(Vec::new()), until);
    assert!(again.actions.is_empty());
}

#[test]
fn a_release_that_succeeded_before_windows_were_kept_gets_the_one_it_would_have_had() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    assert_eq!(sim.run(100), Phase::Succeeded);
    let mut old = sim.release.clone();
    let st = old.status.as_mut().unwrap();
    st.rollback_window = None;
    st.report = None;
    let finished = st.finished_at.clone().unwrap().0;
    let obs = sim.observe(Vec::new());

    // Within a day of its end: the window is opened, and the report written.
    let d = decide(&old, &obs, context::plus(finished, secs(3600)));
    let until = context::plus(finished, crate::api::after_default::ROLLBACK_WINDOW);
    assert_eq!(d.status.rollback_window.as_ref().unwrap().until.0, until);
    assert!(d.actions.is_empty());
    assert!(d.status.report.is_some());
    assert_eq!(d.requeue_after, Some(secs(23 * 3600)));

    // Long after: opened and closed at once, its baseline removed.
    let d = decide(&old, &obs, context::plus(finished, secs(30 * 24 * 3600)));
    assert_eq!(
        d.actions,
        [Action::DeleteBaseline {
            service: "a".into()
        }]
    );
    assert!(d.status.rollback_window.unwrap().closed_at.is_some());
    assert_eq!(d.requeue_after, None);
}

#[test]
fn asked_of_a_release_that_has_not_started_a_rollback_is_refused_before_anything_changes() {
    let mut s = spec(&[("a", &[])]);
    s.rollback = Some(true);
    let mut sim = Sim::new(s);
    let d = sim.pass().clone();
    assert!(d.actions.is_empty());
    assert_eq!(d.status.phase, Some(Phase::Pending));
    let stalled = condition(&d.status, "Stalled");
    assert_eq!(stalled.reason, StallReason::InvalidSpec.as_str());
    assert_eq!(
        stalled.message,
        "spec.rollback: only a Succeeded release can be rolled back, and this one is Pending and \
         has changed nothing; remove spec.rollback to let it start"
    );
    sim.edit(|s| s.rollback = None);
    assert_eq!(sim.run(100), Phase::Succeeded);
}

#[test]
fn asked_of_a_release_in_flight_a_rollback_is_a_warning_and_the_train_goes_on() {
    let mut sim = Sim::new(spec(&[("a", &[]), ("b", &["a"])]));
    assert!(sim.run_until(200, |s| s.service_phase("b")
        == Some(ServicePhase::Progressing)));
    sim.request_rollback(Some("alice"));
    let d = sim.pass().clone();
    assert_eq!(d.status.phase, Some(Phase::Progressing));
    assert_eq!(d.status.hold, None);
    let w = condition(&d.status, "Warning");
    assert_eq!(
        (w.status.as_str(), w.reason.as_str()),
        ("True", "RollbackRefused")
    );
    assert!(
        w.message.starts_with(
            "spec.rollback: only a Succeeded release can be rolled back, and this one is \
             Progressing; to stop it and reverse what it changed set spec.abort: true"
        ),
        "{}",
        w.message
    );
    assert!(w.message.contains("ignored while the release is in flight"));
    // Taken back before the end: the warning goes, the release succeeds and stays so.
    sim.edit(|s| s.rollback = None);
    let d = sim.pass().clone();
    assert!(d.status.conditions.iter().all(|c| c.type_ != "Warning"));
    assert_eq!(sim.run(300), Phase::Succeeded);
    sim.pass();
    assert_eq!(sim.phase(), Phase::Succeeded);
}

#[test]
fn a_write_of_a_manual_rollback_refused_as_invalid_ends_failed_for_a_person() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    assert_eq!(sim.run(100), Phase::Succeeded);
    within_the_window(&mut sim);
    sim.request_rollback(Some("alice"));
    let mut obs = sim.observe(Vec::new());
    obs.refused = Some(WriteRefusal {
        service: "a".into(),
        doing: "restoring the baseline".into(),
        message: "Deployment.apps \"a\" is invalid".into(),
    });
    let d = decide(&sim.release, &obs, sim.now);
    assert_eq!(d.status.phase, Some(Phase::Failed));
    assert!(d.actions.is_empty());
    assert_eq!(
        d.status.rollback.as_ref().unwrap().reason,
        RollbackReason::Manual
    );
    assert!(
        d.status
            .message
            .as_deref()
            .unwrap()
            .starts_with("the rollback cannot complete: the API server refused restoring"),
        "{:?}",
        d.status.message
    );
    assert_eq!(d.status.report.unwrap().outcome, Phase::Failed);
}

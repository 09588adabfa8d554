//! Golden tests of what `kubectl signalman get`, `timeline`, `pause`, `resume`
//! and `abort` say about a Release, from fixtures with a status as the
//! controller writes it (`tests/fixtures/view/`), at a fixed time in UTC.
//! Regenerate after an intended change: `UPDATE_GOLDEN=1 cargo test --test plugin_view`.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::json;
use signalman::api::Release;
use signalman::plugin::style::Style;
use signalman::plugin::{steer, timeline, view};

mod common;
use common::{dir, now, release};

fn golden(name: &str, actual: &str) {
    let path = dir().join(format!("{name}.golden"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; create it with UPDATE_GOLDEN=1", path.display()));
    assert_eq!(actual, expected, "output differs from {}", path.display());
}

#[test]
fn a_release_in_flight_shows_waves_bars_bake_left_and_latest_measurements() {
    let text = view::render_release(
        &release("progressing"),
        now(),
        &TimeZone::UTC,
        Style::plain(),
    );
    golden("progressing", &text);
    // The parts people look for, independent of layout.
    assert!(text.contains("[##########..........]  50%"), "{text}");
    assert!(text.contains("bake 0:08 left"), "{text}");
    assert!(
        text.contains("0.0034  ✔ pass     needs <= 0.01 · 2/4 passes"),
        "{text}"
    );
    assert!(text.contains("waiting for inventory"), "{text}");
    assert!(
        !text.contains('\x1b'),
        "plain output has escape codes: {text:?}"
    );
}

#[test]
fn colour_is_only_used_on_request() {
    let text = view::render_release(
        &release("progressing"),
        now(),
        &TimeZone::UTC,
        Style::color(),
    );
    assert!(text.contains("\x1b[32m"), "{text:?}");
    assert!(text.contains("█"), "{text:?}");
}

#[test]
fn a_hold_says_why_and_how_to_lift_it() {
    let text = view::render_release(&release("held"), now(), &TimeZone::UTC, Style::plain());
    golden("held", &text);
    assert!(
        text.contains("HOLD hold-1 (for 1m, on inventory)"),
        "{text}"
    );
    assert!(
        text.contains("kubectl signalman resume checkout-v5 -n shop"),
        "{text}"
    );
}

#[test]
fn a_rolled_back_release_names_the_breach_and_the_first_deviation() {
    let text = view::render_release(
        &release("rolledback"),
        now(),
        &TimeZone::UTC,
        Style::plain(),
    );
    golden("rolledback", &text);
    assert!(
        text.contains("ROLLBACK Breach on checkout-web at 15:51:05, first deviation 15:51:05"),
        "{text}"
    );
}

#[test]
fn the_timeline_marks_the_first_deviation_once() {
    let text = timeline::render_timeline(&release("rolledback"), &TimeZone::UTC, Style::plain());
    golden("rolledback-timeline", &text);
    assert_eq!(text.matches(timeline::FIRST_DEVIATION).count(), 1, "{text}");
    let marked = text
        .lines()
        .find(|l| l.contains(timeline::FIRST_DEVIATION))
        .unwrap();
    assert!(
        marked.starts_with("15:51:05") && marked.contains("+1m5s  MeasurementFailed"),
        "{marked}"
    );
    // The failing measurement is not listed twice (it has its own timeline entry).
    assert_eq!(text.matches("0.3").count(), 2, "{text}"); // header message and the entry
}

#[test]
fn the_table_lists_every_release() {
    let list = [
        release("progressing"),
        release("held"),
        release("rolledback"),
    ];
    let text = view::render_table(&list, now(), true, Style::plain());
    golden("table", &text);
}

#[test]
fn pause_keeps_weights_and_says_so() {
    let r = release("progressing");
    let s = steer::pause(&r).unwrap();
    assert_eq!(s.patch, json!({"spec": {"paused": true}}));
    assert!(
        s.says
            .contains("canary weights stay where they are (inventory at 50%)"),
        "{}",
        s.says
    );
    assert_eq!(
        steer::kubectl_equivalent(&r, &s),
        r#"kubectl patch releases.signalman.dev checkout-v5 -n shop --type merge -p '{"spec":{"paused":true}}'"#
    );
    // Paused already: nothing to do, and not an error.
    let mut paused = r.clone();
    paused.spec.paused = Some(true);
    assert!(steer::pause(&paused).unwrap_err().done);
}

#[test]
fn resume_lifts_the_hold_in_force_by_its_id() {
    let r = release("held");
    let s = steer::resume(&r).unwrap();
    assert_eq!(s.patch, json!({"spec": {"resumeHold": "hold-1"}}));
    assert!(s.says.contains("lifts hold hold-1"), "{}", s.says);

    // A user pause and a hold together: both are lifted.
    let mut both = r.clone();
    both.spec.paused = Some(true);
    assert_eq!(
        steer::resume(&both).unwrap().patch,
        json!({"spec": {"resumeHold": "hold-1", "paused": false}})
    );

    // Neither paused nor held: nothing to resume.
    let refusal = steer::resume(&release("progressing")).unwrap_err();
    assert!(
        refusal.message.contains("neither paused nor held"),
        "{}",
        refusal.message
    );
}

#[test]
fn abort_says_which_canaries_go_to_zero_and_what_is_restored_in_which_order() {
    let s = steer::abort(&release("progressing")).unwrap();
    assert_eq!(s.patch, json!({"spec": {"abort": true}}));
    assert_eq!(
        s.says,
        "Release checkout-v5 rolls back: every canary in flight goes to 0% at once (inventory at 50%), \
         then these are restored to their baseline in this order: payments-api. This cannot be undone."
    );
    // A running Job and a set flag are changes too, reversed their own way; neither is a canary.
    let s = steer::abort(&release("members-progressing")).unwrap();
    assert_eq!(
        s.says,
        "Release checkout-v6 rolls back: no canary is in flight, then these are restored to their \
         baseline in this order: checkout-v2 (flag, first, at once) → search-index (rollback Job \
         checkout-v6-search-index-rollback) → checkout-api. This cannot be undone."
    );
    let refusal = steer::abort(&release("rolledback")).unwrap_err();
    assert!(!refusal.done);
    assert!(
        refusal.message.contains("already ended RolledBack"),
        "{}",
        refusal.message
    );
}

#[test]
fn resume_refuses_a_spec_changed_hold_while_the_spec_still_differs() {
    let mut r = release("held");
    let status = r.status.as_mut().unwrap();
    status.hold.as_mut().unwrap().reason = signalman::api::HoldReason::SpecChanged;
    status.spec_hash = Some("the-spec-it-started-with".into());
    let refusal = steer::resume(&r).unwrap_err();
    assert!(!refusal.done);
    assert!(
        refusal.message.contains("the spec still differs"),
        "{}",
        refusal.message
    );
    // Put back: the hash matches again and the hold can be lifted.
    r.status.as_mut().unwrap().spec_hash = Some(signalman::engine::spec_hash(&r.spec));
    assert_eq!(
        steer::resume(&r).unwrap().patch,
        json!({"spec": {"resumeHold": "hold-1"}})
    );
}

#[test]
fn a_stalled_release_lists_each_problem_once_with_its_field() {
    let r = release("stalled");
    let text = view::render_release(&r, now(), &TimeZone::UTC, Style::plain());
    golden("stalled", &text);
    assert_eq!(
        text.matches("Deployment \"web\" not found").count(),
        1,
        "{text}"
    );
    assert!(text.contains("    ✖ spec.services[1].deployment: Deployment \"api\" not found in namespace \"shop\"; create it or fix the name"), "{text}");
    let table = view::render_table(&[r], now(), false, Style::plain());
    assert!(table.contains("Pending (stalled)"), "{table}");
}

/// A Release whose author (or whoever can write its status, or the Prometheus
/// errors in it) tries to steer the terminal of everyone who looks at it.
fn hostile(name: &str) -> Release {
    let mut r = release(name);
    r.spec.owner = "\x1b[2Jteam-checkout".into();
    r.spec.summary = Some("fix\u{9b}31m it\x1b]0;owned\x07".into());
    let status = r.status.as_mut().unwrap();
    status.message = Some("rolled back\x1b[1A\x1b[K".into());
    status.progress = Some("0/2\x1b[8m promoted".into());
    for s in &mut status.services {
        s.message = Some(format!("{}\x1b[31m", s.name));
        for m in &mut s.measurements {
            m.message = Some("connection refused\x1b[2K".into());
        }
    }
    for e in &mut status.timeline {
        e.message.push_str("\x1b[?1049h");
    }
    if let Some(rb) = status.rollback.as_mut() {
        rb.message.push_str("\r\x1b[2K");
    }
    if let Some(h) = status.hold.as_mut() {
        h.message.push_str("\x1b[3J");
    }
    r
}

/// No escape or other control character reaches the terminal: plain output has
/// line breaks and nothing else below a space.
fn assert_inert(view: &str, text: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|c| c.is_control() && *c != '\n')
        .collect();
    assert!(bad.is_empty(), "{view} passes {bad:?} on:\n{text}");
}

#[test]
fn every_view_shows_what_a_release_says_escaped() {
    let zone = TimeZone::UTC;
    let plain = Style::plain();
    for name in ["progressing", "held", "rolledback", "stalled"] {
        let r = hostile(name);
        let detail = view::render_release(&r, now(), &zone, plain);
        assert_inert("get", &detail);
        assert!(
            detail.contains(
                "owner    \\u{1b}[2Jteam-checkout — fix\\u{9b}31m it\\u{1b}]0;owned\\u{7}"
            ),
            "{detail}"
        );
        assert_inert("timeline", &timeline::render_timeline(&r, &zone, plain));
        let table = view::render_table(std::slice::from_ref(&r), now(), true, plain);
        assert_inert("get (table)", &table);
        assert!(table.contains("\\u{1b}[2Jteam-checkout"), "{table}");
        for (verb, said) in [
            ("pause", steer::pause(&r)),
            ("resume", steer::resume(&r)),
            ("abort", steer::abort(&r)),
        ] {
            // What the bin prints of a steer goes through the same helper.
            let text = match said {
                Ok(s) => format!("{}\n{}", s.says, steer::kubectl_equivalent(&r, &s)),
                Err(refusal) => refusal.message,
            };
            assert_inert(verb, &signalman::plugin::untrusted::escape(&text));
        }
    }
    let timeline = timeline::render_timeline(&hostile("rolledback"), &zone, plain);
    assert!(
        timeline.contains("every change reversed\\u{1b}[?1049h"),
        "{timeline}"
    );
    assert!(timeline.contains("\\u{d}\\u{1b}[2K"), "{timeline}");
}

#[test]
fn plan_shows_a_hostile_file_escaped_and_judges_it_as_written() {
    use signalman::plugin::schedule::{ClusterCheck, PlanInput, render_plan};
    let r = hostile("progressing");
    let input = PlanInput {
        name: Some("checkout\x1b[2J"),
        namespace: Some("shop"),
        spec: &r.spec,
    };
    let check = ClusterCheck::Skipped("the cluster at \x1b[5mhttps://k8s is unreachable".into());
    let (text, valid) = render_plan(&input, &check, Style::plain());
    assert_inert("plan", &text);
    assert!(
        valid,
        "escaping for display does not change the verdict:\n{text}"
    );
    assert!(
        text.starts_with("Release checkout\\u{1b}[2J (namespace shop): valid"),
        "{text}"
    );
    assert!(text.contains("owner    \\u{1b}[2Jteam-checkout"), "{text}");
    assert!(text.contains("\\u{1b}[5mhttps://k8s"), "{text}");

    // A blank owner made of a control character stays invalid, though its escaped form is not blank.
    let mut blank = r.spec.clone();
    blank.owner = "\t".into();
    let input = PlanInput {
        spec: &blank,
        ..input
    };
    let (text, valid) = render_plan(&input, &check, Style::plain());
    assert!(!valid, "{text}");
    assert!(text.contains("spec.owner"), "{text}");
    assert_inert("plan", &text);
}

#[test]
fn a_service_released_without_metrics_shows_the_opt_out_and_its_reason() {
    let mut r = release("progressing");
    let svc = &mut r.spec.services[0];
    svc.analysis = Some(signalman::api::Analysis {
        skip_analysis: Some(signalman::api::SkipAnalysis {
            reason: "queue consumer, no requests to measure".into(),
        }),
        ..Default::default()
    });
    let name = svc.name.clone();
    let text = view::render_release(&r, now(), &TimeZone::UTC, Style::plain());
    assert!(
        text.contains(
            "not measured (skipAnalysis: queue consumer, no requests to measure): steps pass on bake time alone"
        ),
        "{text}"
    );
    // Under its own service, not another's.
    let at = text
        .find(&format!(" {name} "))
        .expect("a line for the service");
    let note = text.find("not measured (skipAnalysis").unwrap();
    assert!(note > at, "{text}");
}

#[test]
fn awaiting_gates_shows_each_gate_its_value_and_reason_and_how_to_approve() {
    let text = view::render_release(
        &release("awaiting-gates"),
        now(),
        &TimeZone::UTC,
        Style::plain(),
    );
    golden("awaiting-gates", &text);
    assert!(
        text.contains(
            "risk     high: payments-api is a payment change · ReleasePolicy prod, profile high"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "GATES for wave 1, waiting 3m; gate timeout 4h: ends Failed, nothing changed in 3h57m"
        ),
        "{text}"
    );
    assert!(
        text.contains("✖ smoke-tests        query     0  0 is not >= 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "approve: kubectl signalman approve checkout-v6 -n shop --gate change-board -m \"...\""
        ),
        "{text}"
    );
    // A gate that holds needs nothing from anyone.
    assert!(!text.contains("--gate approval"), "{text}");
    assert!(text.contains("AwaitingGates"), "{text}");
}

#[test]
fn awaiting_window_shows_the_next_opening_and_what_the_override_still_needs() {
    let r = release("awaiting-window");
    let text = view::render_release(&r, now(), &TimeZone::UTC, Style::plain());
    golden("awaiting-window", &text);
    assert!(
        text.contains(
            "WINDOW closed: Mon-Thu 09:00-17:00 Europe/Berlin; Friday after 12:00 needs an override"
        ),
        "{text}"
    );
    assert!(
        text.contains("opens Mon 2026-11-30 08:00 UTC (in 88h)"),
        "{text}"
    );
    assert!(
        text.contains("override: justified (INC-4711: checkout fails for Safari users); it also needs an approval: kubectl signalman approve checkout-v7 -n shop --window"),
        "{text}"
    );
    // In the reader's zone.
    let berlin = TimeZone::get("Europe/Berlin").unwrap();
    let text = view::render_release(&r, now(), &berlin, Style::plain());
    assert!(
        text.contains("opens Mon 2026-11-30 09:00 Europe/Berlin"),
        "{text}"
    );
    // Without a justification it says both are missing.
    let mut bare = r.clone();
    bare.spec.window_override = None;
    let text = view::render_release(&bare, now(), &TimeZone::UTC, Style::plain());
    assert!(
        text.contains("override: needs spec.override.justification and an approval (kubectl signalman approve checkout-v7 -n shop --window -m \"...\")"),
        "{text}"
    );
}

#[test]
fn a_service_waiting_for_a_step_approval_says_so_and_how_to_give_it() {
    let text = view::render_release(
        &release("awaiting-approval"),
        now(),
        &TimeZone::UTC,
        Style::plain(),
    );
    golden("awaiting-approval", &text);
    assert!(
        text.contains("step 2/3  [##########..........]  50%  waits for an approval of step 2"),
        "{text}"
    );
    assert!(
        text.contains("measurements go on (a breach still rolls back); to move on: kubectl signalman approve checkout-v6 -n shop --step payments-api/2 -m \"...\""),
        "{text}"
    );
    assert!(
        !text.contains("bake"),
        "no countdown while it waits: {text}"
    );
}

#[test]
fn the_table_shows_the_new_phases() {
    let list = [release("awaiting-gates"), release("awaiting-window")];
    let text = view::render_table(&list, now(), false, Style::plain());
    assert!(text.contains("checkout-v6   AwaitingGates"), "{text}");
    assert!(text.contains("checkout-v7   AwaitingWindow"), "{text}");
}

#[test]
fn a_migration_shows_its_jobs_a_flag_its_keys_and_baseline_and_deferred_services_their_reasons() {
    let text = view::render_release(
        &release("members-rolling-back"),
        now(),
        &TimeZone::UTC,
        Style::plain(),
    );
    golden("members-rolling-back", &text);
    for part in [
        "forward Job checkout-v6-db-migration-forward: Succeeded after 1m30s",
        "rollback Job checkout-v6-db-migration-rollback: running for 20s (timeout 10m, 9m40s left)",
        "stays applied: irreversible (drops the legacy_orders table; restore from backup)",
        "irreversible (drops the legacy_orders table; restore from backup): no rollback Job; on a rollback it stays applied",
        "ConfigMap checkout-flags: checkout-v2=on, checkout-v2-beta=on (baseline: checkout-v2=off, checkout-v2-beta absent)",
        "dark: deployed behind a flag this release does not switch",
        "DEFERRED 2 services not shipped by this release (a new Release carries them):",
        "recommendations  held: load test not signed off",
        "emails           depends on recommendations, which is deferred",
    ] {
        assert!(text.contains(part), "missing {part:?} in\n{text}");
    }
    // A Job has no canary: no weight bar and no measurements under it.
    let migration = text
        .lines()
        .find(|l| l.contains("db-migration") && l.contains("Restoring"))
        .unwrap();
    assert!(!migration.contains('%'), "{migration}");
}

#[test]
fn a_failed_rollback_job_ends_failed_with_its_name_reason_and_log_lines() {
    let text = view::render_release(
        &release("members-failed"),
        now(),
        &TimeZone::UTC,
        Style::plain(),
    );
    golden("members-failed", &text);
    assert!(
        text.contains("rollback Job orders-v3-db-migration-rollback: Failed after 1m: BackoffLimitExceeded: Job has reached the specified backoff limit; last log lines: ERROR: column \"total\" is referenced by view orders_summary"),
        "{text}"
    );
    assert!(
        text.contains("the migration may be partly reversed: finish it by hand"),
        "{text}"
    );
}

#[test]
fn a_cross_team_warning_shows_the_condition_and_the_proposed_split() {
    let text = view::render_release(
        &release("cross-team"),
        now(),
        &TimeZone::UTC,
        Style::plain(),
    );
    golden("cross-team", &text);
    assert!(
        text.contains("WARNING UnrelatedChanges: unrelated changes combined in one release"),
        "{text}"
    );
    assert!(
        text.contains("OWNERS 1 cross-team edge, within the limit 3"),
        "{text}"
    );
    assert!(
        text.contains("2. payments-api (team-payments)   after 1"),
        "{text}"
    );
}

#[test]
fn a_running_job_and_a_baking_flag_say_how_long_is_left_by_their_own_timeout_and_bake() {
    let text = view::render_release(
        &release("members-progressing"),
        now(),
        &TimeZone::UTC,
        Style::plain(),
    );
    golden("members-progressing", &text);
    assert!(
        text.contains("forward Job checkout-v6-search-index-forward: running for 8m30s (timeout 30m, 21m30s left)"),
        "{text}"
    );
    // The flag bakes 3m (flag.bake), not the 2m of the default steps: 6 passes, 2:00 left.
    assert!(text.contains("keys set · bake 2:00 left"), "{text}");
    assert!(text.contains("2/6 passes"), "{text}");
    assert!(text.contains("waiting for search-index"), "{text}");
    assert!(
        text.contains(
            "hold set after it started (payments team not ready): this release ships it anyway"
        ),
        "{text}"
    );
}

#[test]
fn verifying_shows_the_time_left_and_the_verify_metrics_with_their_tallies() {
    let text = view::render_release(&release("verifying"), now(), &TimeZone::UTC, Style::plain());
    golden("verifying", &text);
    assert!(
        text.contains("VERIFYING the whole train: 4:10 left (until 16:04:10)"),
        "{text}"
    );
    assert!(
        text.contains("checkout-success    0.9925  ✔ pass     needs >= 0.98 · 3/10 passes"),
        "{text}"
    );
    // The controller's message says the same; it is not repeated.
    assert!(!text.contains("message  verifying"), "{text}");
}

#[test]
fn a_comparison_shows_the_canary_and_the_stable_value_and_its_bound() {
    let text = view::render_release(
        &release("compare-breach"),
        now(),
        &TimeZone::UTC,
        Style::plain(),
    );
    golden("compare-breach", &text);
    assert!(
        text.contains("0.02 vs stable 0.001  ✖ FAIL     needs canary ≤ stable + 0.005"),
        "{text}"
    );
}

#[test]
fn a_succeeded_release_shows_its_rollback_window_a_refusal_and_the_report() {
    let text = view::render_release(&release("succeeded"), now(), &TimeZone::UTC, Style::plain());
    golden("succeeded", &text);
    assert!(
        text.contains("ROLLBACK WINDOW open until Fri 2026-11-27 15:50 UTC (in 23h50m): kubectl signalman rollback checkout-v5 -n shop"),
        "{text}"
    );
    assert!(
        text.contains("ROLLBACK REFUSED spec.rollback: Deployment \"payments-api\" was changed"),
        "{text}"
    );
    assert!(
        text.contains("kubectl signalman report checkout-v5 -n shop --audience"),
        "{text}"
    );
    // After `until` it cannot be asked for any more.
    let later: Timestamp = "2026-11-27T16:00:00Z".parse().unwrap();
    let text = view::render_release(&release("succeeded"), later, &TimeZone::UTC, Style::plain());
    assert!(
        text.contains("ROLLBACK WINDOW over since Fri 2026-11-27 15:50 UTC: a rollback is refused"),
        "{text}"
    );
    // Closed by the controller: the baselines are gone.
    let mut closed = release("succeeded");
    closed
        .status
        .as_mut()
        .unwrap()
        .rollback_window
        .as_mut()
        .unwrap()
        .closed_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(later));
    let text = view::render_release(&closed, later, &TimeZone::UTC, Style::plain());
    assert!(
        text.contains("ROLLBACK WINDOW closed Fri 2026-11-27 16:00 UTC: the baselines are gone"),
        "{text}"
    );
}

#[test]
fn rollback_asks_for_spec_rollback_and_says_who_asked_in_one_patch() {
    let mut r = release("succeeded");
    r.spec.rollback = None;
    r.status
        .as_mut()
        .unwrap()
        .rollback_window
        .as_mut()
        .unwrap()
        .refused = None;
    let s = steer::rollback(&r, now()).unwrap();
    assert!(
        s.says
            .contains("these are restored to their baseline in this order: payments-api"),
        "{}",
        s.says
    );
    let s = steer::asked_by(s, "alice");
    assert_eq!(
        s.patch,
        json!({"spec": {"rollback": true}, "metadata": {"annotations": {"signalman.dev/rollback-by": "alice"}}})
    );
    // The core's refusal comes first, in its words: past the window...
    let later: Timestamp = "2026-11-27T16:00:00Z".parse().unwrap();
    let e = steer::rollback(&r, later).unwrap_err();
    assert!(!e.done);
    assert!(
        e.message.contains("the rollback window closed at"),
        "{}",
        e.message
    );
    // ...and on a release that is not Succeeded.
    let e = steer::rollback(&release("progressing"), now()).unwrap_err();
    assert!(
        e.message
            .contains("only a Succeeded release can be rolled back")
            && e.message.contains("spec.abort: true"),
        "{}",
        e.message
    );
    // Asked for and refused by the controller: say why, do not patch again.
    let e = steer::rollback(&release("succeeded"), now()).unwrap_err();
    assert!(
        !e.done && e.message.contains("the controller refused it"),
        "{}",
        e.message
    );
    // Abort on a succeeded release points at rollback.
    let e = steer::abort(&r).unwrap_err();
    assert!(
        e.message
            .contains("kubectl signalman rollback checkout-v5 -n shop"),
        "{}",
        e.message
    );
}

/// The API server fills `status: {observedGeneration: 0}` into a Release the
/// operator has not written yet (the CRD's default): that is no status.
#[test]
fn a_release_with_only_the_default_status_says_no_operator_has_picked_it_up() {
    let mut r = release("progressing");
    r.metadata.generation = Some(1);
    r.status = Some(signalman::api::ReleaseStatus {
        observed_generation: Some(0),
        ..Default::default()
    });
    assert!(!r.picked_up());
    let text = view::render_release(&r, now(), &TimeZone::UTC, Style::plain());
    assert!(
        text.contains("no status yet: the controller has not picked this Release up"),
        "{text}"
    );
    r.status.as_mut().unwrap().observed_generation = Some(1);
    assert!(r.picked_up());
    let text = view::render_release(&r, now(), &TimeZone::UTC, Style::plain());
    assert!(!text.contains("no status yet"), "{text}");
}

//! Flags: the baseline recorded before the keys are set, a bake with
//! analysis, and on a rollback the keys put back first.

use super::*;
use crate::api::StallReason;

/// api (dark code) -> checkout-flag (sets checkout-v2=on and new-cart=on in ConfigMap flags).
fn train() -> ReleaseSpec {
    let mut spec = crate::testing::spec()
        .owner("team-checkout")
        .service("api", [] as [&str; 0])
        .flag(
            "checkout-flag",
            ["api"],
            "flags",
            &[("checkout-v2", "on"), ("new-cart", "on")],
        )
        .steps([10, 100].map(|weight| (weight, secs(60))))
        .interval(secs(20))
        .metric_at_most(
            "error-rate",
            r#"rate(errors{service="{{service}}"}[1m])"#,
            0.01,
        )
        .build();
    spec.services[0].change.dark = Some(true);
    spec.services[1].flag.as_mut().unwrap().bake = Some(secs(60).into());
    spec
}

fn sim() -> Sim {
    Sim::new(train()).with_config_map("flags", &[("checkout-v2", "off"), ("other", "x")])
}

fn first(sim: &Sim, what: impl Fn(&Action) -> bool) -> usize {
    sim.passes
        .iter()
        .position(|p| p.decision.actions.iter().any(&what))
        .unwrap()
}

fn flag_status(sim: &Sim) -> &crate::api::ServiceStatus {
    status(sim)
        .services
        .iter()
        .find(|s| s.name == "checkout-flag")
        .unwrap()
}

/// How it is proven, 5 (the way forward): the keys change only after api is
/// promoted, the baseline is recorded before, and the flag bakes measured.
#[test]
fn the_keys_are_set_after_the_code_is_promoted_and_the_flag_bakes_measured() {
    let mut sim = sim();
    assert_eq!(sim.run(500), Phase::Succeeded);
    let api_promoted = sim
        .passes
        .iter()
        .position(|p| phase_in(p, "api") == ServicePhase::Promoted)
        .unwrap();
    let set = first(&sim, |a| matches!(a, Action::SetFlag { .. }));
    assert!(set > api_promoted);
    // The baseline was in status in a decision before the one that sets the keys.
    let recorded = sim
        .passes
        .iter()
        .position(|p| {
            p.decision
                .status
                .services
                .iter()
                .any(|s| s.flag_baseline.is_some())
        })
        .unwrap();
    assert!(recorded < set);
    assert!(sim.passes[recorded].decision.actions.is_empty());
    let baseline = flag_status(&sim).flag_baseline.clone().unwrap();
    assert_eq!(
        baseline.values,
        [("checkout-v2".to_owned(), "off".to_owned())].into()
    );
    assert_eq!(baseline.absent, ["new-cart"]);
    let cm = sim.config_map("flags").unwrap();
    assert_eq!(cm["checkout-v2"], "on");
    assert_eq!(cm["new-cart"], "on");
    assert_eq!(cm["other"], "x");
    // Measured during its bake: due_measurements asks for the flag service too.
    let flag_measured = sim
        .passes
        .iter()
        .flat_map(|p| &p.observations.measurements)
        .filter(|t| t.service == "checkout-flag")
        .count();
    assert!(flag_measured >= 3, "{flag_measured}");
    let reasons: Vec<&str> = status(&sim)
        .timeline
        .iter()
        .filter(|e| e.service.as_deref() == Some("checkout-flag"))
        .map(|e| e.reason.as_str())
        .collect();
    assert_eq!(reasons, ["ServiceStarted", "FlagSet", "Promoted"]);
}

/// How it is proven, 5 (the rollback): a breach in the flag's bake puts its
/// keys back in the rollback's first decision, and only then restores api.
#[test]
fn a_breach_in_the_flag_s_bake_puts_the_keys_back_first_then_the_code() {
    let mut sim = sim().with_measure(|r, _| {
        QueryResult::Value(if r.service == "checkout-flag" {
            0.5
        } else {
            0.0
        })
    });
    assert_eq!(
        sim.run(500),
        Phase::RolledBack,
        "{:?}",
        status(&sim).message
    );
    let began = sim
        .passes
        .iter()
        .position(|p| p.decision.status.phase == Some(Phase::RollingBack))
        .unwrap();
    assert!(
        sim.passes[began]
            .decision
            .actions
            .contains(&Action::RestoreFlag {
                service: "checkout-flag".into()
            })
    );
    let api_restore = first(&sim, |a| {
        *a == Action::RestoreBaseline {
            service: "api".into(),
        }
    });
    let flag_restored = sim
        .passes
        .iter()
        .position(|p| phase_in(p, "checkout-flag") == ServicePhase::Restored)
        .unwrap();
    // api waits until the keys are seen back (the same decision may then move on to it).
    assert!(api_restore >= flag_restored);
    assert!(began < flag_restored);
    let cm = sim.config_map("flags").unwrap();
    assert_eq!(cm.get("checkout-v2").map(String::as_str), Some("off"));
    assert_eq!(cm.get("new-cart"), None, "an absent key is removed again");
    assert_eq!(cm["other"], "x");
    let s: Vec<(String, String)> = status(&sim)
        .timeline
        .iter()
        .map(|e| (e.reason.clone(), e.service.clone().unwrap_or_default()))
        .collect();
    let pos = |r: &str, svc: &str| s.iter().position(|(a, b)| a == r && b == svc).unwrap();
    assert!(pos("FlagSet", "checkout-flag") < pos("Breach", "checkout-flag"));
    assert!(pos("FlagRestored", "checkout-flag") < pos("Restored", "api"));
}

#[test]
fn a_missing_or_claimed_config_map_stops_the_release_before_anything_moves() {
    let mut missing = Sim::new(train()).without_config_map("flags");
    let d = missing.pass().clone();
    assert!(d.actions.is_empty());
    assert_eq!(d.status.phase, Some(Phase::Pending));
    let c = condition(&d.status, "Stalled");
    assert_eq!(c.reason, StallReason::ConfigMapNotFound.as_str());
    assert_eq!(
        c.message,
        "spec.services[1].flag.configMap: ConfigMap \"flags\" not found in namespace \"shop\"; create it \
         (the flag's keys may be absent from it) or fix the name"
    );

    let mut claimed = sim().config_map_claimed_by("flags", "other-train", Phase::Progressing);
    let d = claimed.pass().clone();
    assert!(d.actions.is_empty());
    let c = condition(&d.status, "Stalled");
    assert_eq!(c.reason, StallReason::ConfigMapClaimed.as_str());
    assert!(
        c.message
            .contains("ConfigMap \"flags\" is claimed by Release \"other-train\""),
        "{}",
        c.message
    );
    // A finished Release claims nothing.
    let mut done = sim().config_map_claimed_by("flags", "other-train", Phase::Succeeded);
    assert_eq!(done.pass().status.phase, Some(Phase::Progressing));
}

#[test]
fn a_config_map_deleted_in_flight_holds_the_release() {
    let mut sim = sim();
    assert!(sim.run_until(200, |s| {
        s.service_phase("checkout-flag") == Some(ServicePhase::Progressing)
            && s.release
                .status
                .as_ref()
                .is_some_and(|st| st.services[1].bake_started_at.is_some())
    }));
    sim.config_maps.remove("flags");
    assert!(sim.run_until(5, |s| s.phase() == Phase::Held));
    let hold = status(&sim).hold.clone().unwrap();
    assert_eq!(hold.reason, HoldReason::Drift);
    assert!(
        hold.message
            .starts_with("ConfigMap \"flags\" (spec.services[1].flag.configMap) was deleted"),
        "{}",
        hold.message
    );
}

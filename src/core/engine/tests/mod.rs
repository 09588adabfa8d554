//! Every rule of the engine, driven by the simulated cluster and clock in `sim`,
//! one module per part of the rules; the helpers they share are here.

mod announce;
mod bad_input;
mod bake;
mod compare;
mod crash;
mod cross_team;
mod deferral;
mod deletion;
mod flag;
mod gates;
mod holds;
mod migration;
mod order;
mod pause;
mod profiles;
mod refused;
mod report;
mod rollback;
mod rollback_window;
mod verify;
mod waiting;
mod windows;
mod writers;

use std::time::Duration;

use jiff::Timestamp;

use super::sim::{Crash, Sim, epoch};
use super::*;
use crate::api::{
    Analysis, GatewayApiTraffic, NoDataPolicy, Phase, ReleaseSpec, ServicePhase, Step, Traffic,
};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Three steps (10 %, 50 %, 100 %) of 60 s each, error rate measured every 20 s
/// (so 3 passing measurements per step), at most 1 %.
fn spec(edges: &[(&str, &[&str])]) -> ReleaseSpec {
    crate::testing::spec()
        .owner("team-checkout")
        .services(edges)
        .steps([10, 50, 100].map(|weight| (weight, secs(60))))
        .interval(secs(20))
        .metric_at_most(
            "error-rate",
            r#"rate(errors{service="{{service}}"}[1m])"#,
            0.01,
        )
        .build()
}

/// [`spec`]'s train, verified for 2m with a measurement every 30s (so 4
/// passes needed), the failed-checkout rate at most 0.5.
fn verified(edges: &[(&str, &[&str])]) -> ReleaseSpec {
    let mut s = spec(edges);
    s.verify = crate::testing::spec()
        .verify(
            secs(120),
            secs(30),
            "checkout-failures",
            r#"sum(rate(checkouts_total{namespace="{{namespace}}",result!="ok"}[5m]))"#,
            0.5,
        )
        .build()
        .verify;
    s
}

fn analysis(sim: &mut Sim) -> &mut Analysis {
    sim.release
        .spec
        .defaults
        .as_mut()
        .unwrap()
        .analysis
        .as_mut()
        .unwrap()
}

fn status(sim: &Sim) -> &ReleaseStatus {
    sim.release.status.as_ref().unwrap()
}

fn touches(a: &Action, name: &str) -> bool {
    a.service() == name
}

fn first_pass_touching(sim: &Sim, name: &str) -> usize {
    sim.passes
        .iter()
        .position(|p| p.decision.actions.iter().any(|a| touches(a, name)))
        .unwrap()
}

fn phase_in(p: &sim::Pass, name: &str) -> ServicePhase {
    p.decision
        .status
        .services
        .iter()
        .find(|s| s.name == name)
        .unwrap()
        .phase
}

fn zero(name: &str) -> Action {
    Action::SetCanaryWeight {
        service: name.into(),
        weight: 0,
    }
}

fn condition<'a>(
    st: &'a ReleaseStatus,
    t: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    st.conditions.iter().find(|c| c.type_ == t).unwrap()
}

fn all_settled_as(sim: &Sim, template: TemplateState) {
    for (name, s) in &sim.cluster {
        assert_eq!(s.template, template, "{name}");
        assert_eq!(s.canary, None, "{name}");
    }
}

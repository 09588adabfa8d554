//! A Pending release: refuse what cannot work before anything changes, then start.

use std::time::Duration;

use super::context::Ctx;
use super::progress;
use super::{NoticeKind, PolicyObservation};
use crate::api::{self, Phase, ServicePhase, ServiceStatus, StallReason};
use crate::preflight::{Claimant, ClusterView, ServiceView};

/// How soon a release refused for what is in the cluster looks again: the
/// missing Deployment or route may appear without the Release changing.
const RECHECK: Duration = Duration::from_secs(30);

pub(super) fn pending(cx: &mut Ctx) {
    if cx.deleting() {
        // Nothing was changed, and nothing may start on its way out.
        cx.set_phase(Phase::Pending);
        cx.st.message = Some("deleted before it started; nothing was changed".to_owned());
        return;
    }
    let spec = cx.raw;
    // Before any check: nothing was changed, so an abort ends even a Release
    // that is invalid or waits for a claim; otherwise it would stay Pending
    // with no way out but deletion.
    if spec.abort == Some(true) {
        cx.set_phase(Phase::RolledBack);
        cx.st.finished_at = Some(cx.time());
        let message = "aborted before it started; nothing was changed".to_owned();
        cx.st.message = Some(message.clone());
        cx.record("RolledBack", None, message.clone());
        cx.notice(NoticeKind::RolledBack, None, message);
        return;
    }
    let name = cx.release.metadata.name.as_deref().unwrap_or_default();
    let mut invalid = api::validate_name(name, spec);
    invalid.extend(api::validate(spec));
    // Only a Succeeded release can be rolled back: asked of one that has not
    // started, it is refused like any invalid field, before anything changes.
    let rollback = (spec.rollback == Some(true))
        .then(|| crate::rollback_window::refusal_of(&cx.st, cx.now))
        .flatten();
    if !invalid.is_empty() || rollback.is_some() {
        let mut lines: Vec<String> = invalid.iter().map(ToString::to_string).collect();
        lines.extend(rollback);
        return stall(cx, StallReason::InvalidSpec, lines, None);
    }
    let unplannable = crate::plan::problems(spec);
    if !unplannable.is_empty() {
        let lines = unplannable
            .iter()
            .map(|e| e.problem(spec).to_string())
            .collect();
        return stall(cx, StallReason::InvalidPlan, lines, None);
    }
    // The operator's rules, not the spec's: nothing is sent to an address
    // the platform team did not allow, nor read from another namespace.
    let unreachable = crate::analysis::tenancy::problems(spec, cx.namespace(), &cx.obs.reach);
    if let Some(first) = unreachable.first() {
        let reason = if first.field == "spec.prometheus.address" {
            StallReason::PrometheusAddressNotAllowed
        } else {
            StallReason::QueryOutsideNamespace
        };
        let lines = unreachable.iter().map(ToString::to_string).collect();
        return stall(cx, reason, lines, None);
    }
    if let Some((reason, line)) = policy_problem(cx) {
        return stall(cx, reason, vec![line], Some(RECHECK));
    }
    if let Some(refused) = super::cross_team::check(cx) {
        return stall(cx, StallReason::CrossTeamLimit, vec![refused], None);
    }
    let missing = cluster_problems(cx);
    if let Some((reason, _)) = missing.first() {
        let reason = *reason;
        let lines = missing.into_iter().map(|(_, line)| line).collect();
        return stall(cx, reason, lines, Some(RECHECK));
    }

    if spec.paused == Some(true) {
        cx.set_phase(Phase::Pending);
        cx.st.message =
            Some("paused by spec.paused before it started; set it to false to start".to_owned());
        return;
    }

    let Ok(plan) = crate::plan::plan(spec) else {
        return;
    };
    if !go(cx, &plan) {
        return;
    }

    // Valid and cleared: fix the plan and the spec it was made from, then start moving.
    cx.set_phase(Phase::Progressing);
    cx.st.started_at = Some(cx.time());
    cx.st.spec_hash = Some(super::spec_hash(spec));
    cx.st.services = spec
        .services
        .iter()
        .map(|s| ServiceStatus {
            name: s.name.clone(),
            phase: ServicePhase::Pending,
            since: Some(cx.time()),
            ..Default::default()
        })
        .collect();
    let profile = match cx
        .st
        .policy
        .as_ref()
        .and_then(|p| p.name.as_deref().zip(p.profile.as_deref()))
    {
        Some((name, profile)) => format!(
            "; ReleasePolicy {name}, profile {profile} ({})",
            plan.risk_reason.as_deref().unwrap_or_default()
        ),
        None => String::new(),
    };
    let message = format!(
        "started: {} services in {} waves{profile}",
        spec.services.len(),
        plan.waves.len()
    );
    cx.st.plan = Some(plan);
    cx.record("Started", None, message.clone());
    cx.notice(NoticeKind::Started, None, message);
    // The opt-out from metrics is on the record of the release, with its reason.
    for svc in cx.spec.services.iter().filter(|s| s.job.is_none()) {
        let analysis = cx.spec.analysis_of(svc);
        if let Some(skip) = &analysis.skip_analysis
            && analysis.metrics.is_empty()
        {
            cx.record(
                "SkipAnalysis",
                Some(&svc.name),
                format!(
                    "released without metrics ({}): each step passes on its bake time alone",
                    skip.reason
                ),
            );
        }
    }
    super::defer::held_at_start(cx);
    progress::run(cx);
}

/// The window and the gates before the first wave: true when it may start.
/// Otherwise the release waits (`AwaitingWindow`, `AwaitingGates`) with
/// nothing changed, or ends `Failed` when its gates timed out.
fn go(cx: &mut Ctx, plan: &crate::api::Plan) -> bool {
    if let Err(message) = super::window::allows(cx) {
        cx.set_phase(Phase::AwaitingWindow);
        cx.st.message = Some(message);
        return false;
    }
    if !super::gate::gated(cx) {
        return true;
    }
    let first = plan
        .waves
        .first()
        .map(|w| w.services.clone())
        .unwrap_or_default();
    match super::gate::check(cx, 1, &first) {
        super::gate::Verdict::Hold => true,
        super::gate::Verdict::Wait(message) => {
            cx.set_phase(Phase::AwaitingGates);
            cx.st.message = Some(message);
            false
        }
        super::gate::Verdict::TimedOut(why) => {
            let message = format!("{why}; nothing was changed");
            cx.set_phase(Phase::Failed);
            cx.st.finished_at = Some(cx.time());
            cx.requeue = None;
            cx.st.message = Some(message.clone());
            cx.record("GateTimeout", None, message.clone());
            cx.notice(NoticeKind::Failed, None, message);
            false
        }
    }
}

/// The policy named for the release is missing or cannot be used.
fn policy_problem(cx: &Ctx) -> Option<(StallReason, String)> {
    match &cx.obs.policy {
        PolicyObservation::None => None,
        PolicyObservation::Missing { name, named_by } => Some((
            StallReason::PolicyNotFound,
            format!(
                "ReleasePolicy {name:?} (named by {named_by}) does not exist; create it, or name an \
                 existing one in spec.policy"
            ),
        )),
        PolicyObservation::Unreadable { name, error } => Some((
            StallReason::InvalidPolicy,
            format!("ReleasePolicy {name} cannot be read: {error}; correct that field"),
        )),
        PolicyObservation::Found { name, spec } => {
            let problems = crate::policy::validate_policy(name, spec);
            (!problems.is_empty()).then(|| {
                let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
                (StallReason::InvalidPolicy, lines.join("; "))
            })
        }
    }
}

fn stall(cx: &mut Ctx, reason: StallReason, lines: Vec<String>, recheck: Option<Duration>) {
    cx.set_phase(Phase::Pending);
    let message = lines.join("; ");
    let already = cx.st.conditions.iter().any(|c| {
        c.type_ == "Stalled"
            && c.status == "True"
            && c.reason == reason.as_str()
            && c.message == message
    });
    if !already {
        cx.notice(NoticeKind::Stalled, None, format!("{reason}: {message}"));
    }
    cx.st.message = Some(message);
    cx.stalled = Some(reason);
    if let Some(after) = recheck {
        cx.wake_in(after);
    }
}

/// What the cluster must have before the release may touch it: the same
/// preflight `kubectl signalman plan` runs, on what the shell observed.
fn cluster_problems(cx: &Ctx) -> Vec<(StallReason, String)> {
    let view = ClusterView {
        namespace: cx.namespace().to_owned(),
        release: Some(Claimant::of(cx.release)),
        services: cx
            .raw
            .services
            .iter()
            .map(|svc| {
                let seen = cx.seen(&svc.name);
                let view = ServiceView {
                    containers: seen.stable.as_ref().map(|s| s.containers.clone()),
                    route_found: seen.route.as_ref().is_some_and(|r| r.found),
                    replicas: seen.stable.as_ref().map(|s| s.replicas),
                };
                (svc.name.clone(), view)
            })
            .collect(),
        releases: cx.obs.releases.clone(),
        config_maps: cx
            .raw
            .services
            .iter()
            .filter(|svc| cx.seen(&svc.name).flag.is_some())
            .filter_map(|svc| svc.flag.as_ref()?.config_map.clone())
            .collect(),
    };
    crate::preflight::cluster_problems(cx.raw, &view)
        .into_iter()
        .map(|r| (r.reason, r.problem.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::sim::Sim;
    use crate::api::{Analysis, Phase, ReleaseSpec, SkipAnalysis};

    fn unmeasured() -> ReleaseSpec {
        // The planner's test spec has no analysis at all.
        crate::testing::spec()
            .services(&[("a", &[]), ("b", &["a"])])
            .build()
    }

    fn stalled(sim: &mut Sim) -> (String, String) {
        let d = sim.pass().clone();
        assert!(d.actions.is_empty(), "{:?}", d.actions);
        assert_eq!(d.status.phase, Some(Phase::Pending));
        let c = d
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == "Stalled" && c.status == "True")
            .expect("Stalled=True");
        (c.reason.clone(), c.message.clone())
    }

    #[test]
    fn a_service_with_no_metrics_and_no_opt_out_is_refused_naming_the_fix() {
        let (reason, message) = stalled(&mut Sim::new(unmeasured()));
        assert_eq!(reason, "InvalidSpec");
        assert!(
            message.starts_with("spec.services[0].analysis: no metrics"),
            "{message}"
        );
        assert!(message.contains("analysis.skipAnalysis"), "{message}");
        assert!(
            message.contains("spec.services[1].analysis: no metrics"),
            "{message}"
        );
    }

    #[test]
    fn an_opt_out_starts_and_is_on_the_record_with_its_reason() {
        let mut spec = unmeasured();
        spec.services[0].analysis = Some(Analysis {
            skip_analysis: Some(SkipAnalysis {
                reason: "queue consumer, no requests to measure".into(),
            }),
            ..Default::default()
        });
        spec.services[1].analysis = spec.services[0].analysis.clone();
        let mut sim = Sim::new(spec);
        let d = sim.pass().clone();
        assert_eq!(d.status.phase, Some(Phase::Progressing));
        let skipped: Vec<_> = d
            .status
            .timeline
            .iter()
            .filter(|t| t.reason == "SkipAnalysis")
            .map(|t| (t.service.clone().unwrap_or_default(), t.message.clone()))
            .collect();
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert_eq!(skipped[0].0, "a");
        assert!(
            skipped[0]
                .1
                .contains("queue consumer, no requests to measure"),
            "{}",
            skipped[0].1
        );
    }
}

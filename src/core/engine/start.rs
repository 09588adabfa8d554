//! A Pending release: refuse what cannot work before anything changes, then start.

use std::time::Duration;

use super::NoticeKind;
use super::context::Ctx;
use super::progress;
use crate::api::{self, Phase, ServicePhase, ServiceStatus};

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
    let spec = cx.spec;
    let invalid = api::validate(spec);
    if !invalid.is_empty() {
        let lines = invalid.iter().map(ToString::to_string).collect();
        return stall(cx, "InvalidSpec", lines, None);
    }
    let unplannable = crate::plan::problems(spec);
    if !unplannable.is_empty() {
        let lines = unplannable
            .iter()
            .map(|e| e.problem(spec).to_string())
            .collect();
        return stall(cx, "InvalidPlan", lines, None);
    }
    let missing = cluster_problems(cx);
    if let Some((reason, _)) = missing.first() {
        let reason = *reason;
        let lines = missing.into_iter().map(|(_, line)| line).collect();
        return stall(cx, reason, lines, Some(RECHECK));
    }

    if spec.abort == Some(true) {
        cx.set_phase(Phase::RolledBack);
        cx.st.finished_at = Some(cx.time());
        let message = "aborted before it started; nothing was changed".to_owned();
        cx.st.message = Some(message.clone());
        cx.record("RolledBack", None, message.clone());
        cx.notice(NoticeKind::RolledBack, None, message);
        return;
    }
    if spec.paused == Some(true) {
        cx.set_phase(Phase::Pending);
        cx.st.message =
            Some("paused by spec.paused before it started; set it to false to start".to_owned());
        return;
    }

    // Valid: fix the plan and the spec it was made from, then start moving.
    let Ok(plan) = crate::plan::plan(spec) else {
        return;
    };
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
    let message = format!(
        "started: {} services in {} waves",
        spec.services.len(),
        plan.waves.len()
    );
    cx.st.plan = Some(plan);
    cx.record("Started", None, message.clone());
    cx.notice(NoticeKind::Started, None, message);
    progress::run(cx);
}

fn stall(cx: &mut Ctx, reason: &str, lines: Vec<String>, recheck: Option<Duration>) {
    cx.set_phase(Phase::Pending);
    let message = lines.join("; ");
    let already = cx.st.conditions.iter().any(|c| {
        c.type_ == "Stalled" && c.status == "True" && c.reason == reason && c.message == message
    });
    if !already {
        cx.notice(NoticeKind::Stalled, None, format!("{reason}: {message}"));
    }
    cx.st.message = Some(message);
    cx.stalled = Some(reason.to_owned());
    if let Some(after) = recheck {
        cx.wake_in(after);
    }
}

/// What the cluster must have before the release may touch it, per service.
fn cluster_problems(cx: &Ctx) -> Vec<(&'static str, String)> {
    let ns = cx.namespace();
    let mut out = Vec::new();
    for (i, svc) in cx.spec.services.iter().enumerate() {
        let at = format!("spec.services[{i}]");
        let seen = cx.seen(&svc.name);
        match &seen.stable {
            None => out.push((
                "DeploymentNotFound",
                format!(
                    "{at}.deployment: Deployment {:?} not found in namespace {ns:?}; create it or fix the name",
                    svc.deployment
                ),
            )),
            Some(stable) => {
                let changed = svc
                    .change
                    .images
                    .keys()
                    .map(|c| (c, "images"))
                    .chain(svc.change.env.keys().map(|c| (c, "env")));
                for (container, field) in changed {
                    if !stable.containers.contains(container) {
                        out.push((
                            "ContainerNotFound",
                            format!(
                                "{at}.change.{field}.{container}: Deployment {:?} has no container {container:?} \
                                 (it has {}); use one of those names",
                                svc.deployment,
                                list(&stable.containers)
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(gw) = svc.traffic.as_ref().and_then(|t| t.gateway_api.as_ref())
            && !seen.route.as_ref().is_some_and(|r| r.found)
        {
            let backend = gw.service.as_deref().unwrap_or(&svc.name);
            out.push((
                "RouteNotFound",
                format!(
                    "{at}.traffic.gatewayAPI.httpRoute: HTTPRoute {:?} not found in namespace {ns:?}, \
                     or it has no backendRef to Service {backend:?}; create it or fix the name",
                    gw.http_route
                ),
            ));
        }
        if let Some(other) = &seen.claimed_by {
            out.push((
                "DeploymentClaimed",
                format!(
                    "{at}.deployment: Deployment {:?} is claimed by Release {other:?}, which is still in flight; \
                     wait for it or abort it",
                    svc.deployment
                ),
            ));
        }
    }
    out
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        return "no containers".to_owned();
    }
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

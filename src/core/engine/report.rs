//! The completion report (`status.report`): written whenever a decision ends
//! in a final phase, from the facts alone (the spec, the status and its
//! timeline, the approvals). Nothing in it is inferred: a fact the status no
//! longer holds is left out rather than guessed. `kubectl signalman report`
//! writes each audience's text from it; its one-line summary is also an Event.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::NoticeKind;
use super::context::Ctx;
use crate::api::{
    ApprovalReport, FlagReport, HoldReport, Measurement, MemberKind, Phase, Report, RollbackCause,
    RollbackReason, RollbackReport, ServicePhase, ServiceReport, VerificationReport,
};
use crate::policy::approval::Target;
use crate::text;

/// The release ended (or, `Succeeded`, something after it changed): write the
/// report again, and tell its summary when that is new.
pub(super) fn on_final(cx: &mut Ctx) {
    if !cx.phase().is_final() {
        return;
    }
    let report = build(cx);
    let told = cx
        .release
        .status
        .as_ref()
        .and_then(|s| s.report.as_ref())
        .is_some_and(|r| r.summary == report.summary);
    if !told {
        cx.notice(NoticeKind::Report, None, report.summary.clone());
    }
    cx.st.report = Some(report);
}

/// The images a Deployment service starts from: each container its change
/// names, as the stable Deployment has it now (before anything is written).
pub(super) fn previous_images(cx: &Ctx, name: &str) -> BTreeMap<String, String> {
    let Some(svc) = cx.spec.service(name) else {
        return BTreeMap::new();
    };
    let Some(stable) = &cx.seen(name).stable else {
        return BTreeMap::new();
    };
    svc.change
        .images
        .keys()
        .filter_map(|c| Some((c.clone(), stable.images.get(c)?.clone())))
        .collect()
}

fn build(cx: &Ctx) -> Report {
    let st = &cx.st;
    let outcome = cx.phase();
    let finished_at = st.finished_at.clone().unwrap_or_else(|| cx.time());
    let duration_seconds = st
        .started_at
        .as_ref()
        .map_or(0, |s| finished_at.0.as_second() - s.0.as_second())
        .max(0);
    let plan = st.plan.clone();
    Report {
        outcome,
        summary: summary(cx, duration_seconds),
        owner: cx.raw.owner.clone(),
        description: cx.raw.summary.clone(),
        risk: plan.as_ref().and_then(|p| p.risk),
        risk_reason: plan.as_ref().and_then(|p| p.risk_reason.clone()),
        started_at: st.started_at.clone(),
        finished_at,
        duration_seconds,
        services: services(cx),
        deferred: st.deferred.clone(),
        rollback: st.rollback.as_ref().map(|cause| rollback(cx, cause)),
        holds: st
            .timeline
            .iter()
            .filter(|e| e.reason == "Held")
            .map(|e| HoldReport {
                at: e.at.clone(),
                service: e.service.clone(),
                message: e.message.clone(),
            })
            .collect(),
        approvals: approvals(cx),
        verification: verification(cx),
        rollback_window: (outcome == Phase::Succeeded)
            .then(|| st.rollback_window.clone())
            .flatten(),
    }
}

/// One line: the outcome, what it did and how long it took.
fn summary(cx: &Ctx, duration_seconds: i64) -> String {
    let st = &cx.st;
    let name = cx.release_name();
    let took = text::duration(std::time::Duration::from_secs(
        u64::try_from(duration_seconds).unwrap_or(0),
    ));
    let total = st.services.len();
    let count = |p: ServicePhase| st.services.iter().filter(|s| s.phase == p).count();
    let one_line = |m: &str| m.split_whitespace().collect::<Vec<_>>().join(" ");
    match cx.phase() {
        Phase::Succeeded => {
            let verified = if st.timeline.iter().any(|e| e.reason == "Verified") {
                " and verified"
            } else {
                ""
            };
            let deferred = match st.deferred.len() {
                0 => String::new(),
                n => {
                    let names: Vec<&str> = st.deferred.iter().map(|d| d.service.as_str()).collect();
                    format!("; {n} deferred ({})", names.join(", "))
                }
            };
            format!(
                "{name} succeeded: {} of {total} {} promoted{verified} in {took}{deferred}",
                count(ServicePhase::Promoted),
                services_word(total)
            )
        }
        Phase::RolledBack => {
            let Some(cause) = &st.rollback else {
                return format!(
                    "{name} rolled back: {}",
                    one_line(st.message.as_deref().unwrap_or_default())
                );
            };
            let restored = count(ServicePhase::Restored);
            let withdrawn = count(ServicePhase::Withdrawn);
            let mut did = vec![format!("{restored} {} restored", services_word(restored))];
            if withdrawn > 0 {
                did.push(format!(
                    "{withdrawn} {} withdrawn before promotion",
                    if withdrawn == 1 { "canary" } else { "canaries" }
                ));
            }
            let stays = super::migration::stayed_applied(cx)
                .map(|_| {
                    let names: Vec<&str> = st
                        .services
                        .iter()
                        .filter(|s| s.phase == ServicePhase::Promoted)
                        .map(|s| s.name.as_str())
                        .collect();
                    format!("; {} stays applied (irreversible)", names.join(", "))
                })
                .unwrap_or_default();
            format!(
                "{name} rolled back after {}: {} in {took}{stays}",
                cause_words(cause),
                did.join(", ")
            )
        }
        _ => {
            let message = one_line(st.message.as_deref().unwrap_or_default());
            if st.started_at.is_some() {
                format!("{name} failed after {took}: {message}")
            } else {
                format!("{name} failed: {message}")
            }
        }
    }
}

fn services_word(n: usize) -> &'static str {
    if n == 1 { "service" } else { "services" }
}

/// Why the train went back, in a few words.
fn cause_words(cause: &RollbackCause) -> String {
    match (cause.reason, &cause.metric, cause.value) {
        (RollbackReason::Breach, Some(metric), Some(value)) => {
            let on = cause
                .service
                .as_deref()
                .map_or("during verification".to_owned(), |s| format!("on {s}"));
            let threshold = cause
                .threshold
                .as_deref()
                .map(|t| format!(", threshold {t}"))
                .unwrap_or_default();
            format!(
                "a breach: {metric} = {} {on}{threshold}",
                crate::text::number(value)
            )
        }
        (RollbackReason::Manual, _, _) => format!(
            "a manual rollback requested by {}",
            cause
                .requested_by
                .as_deref()
                .unwrap_or(super::rollback_window::UNNAMED)
        ),
        (reason, _, _) => format!("{reason} ({})", cause.message),
    }
}

/// Every service in plan order (any the plan does not name after them).
fn services(cx: &Ctx) -> Vec<ServiceReport> {
    let mut order: Vec<String> = cx
        .plan()
        .waves
        .iter()
        .flat_map(|w| w.services.clone())
        .collect();
    for s in &cx.st.services {
        if !order.contains(&s.name) {
            order.push(s.name.clone());
        }
    }
    order
        .iter()
        .filter_map(|name| {
            let s = cx.st.services.iter().find(|s| &s.name == name)?;
            let svc = cx.spec.service(name)?;
            let mut r = ServiceReport {
                name: name.clone(),
                owner: crate::plan::teams::owner_of(cx.spec, svc).to_owned(),
                phase: s.phase,
                forward_job: s.forward_job.clone(),
                rollback_job: s.rollback_job.clone(),
                started_at: cx
                    .st
                    .timeline
                    .iter()
                    .find(|e| e.reason == "ServiceStarted" && e.service.as_deref() == Some(name))
                    .map(|e| e.at.clone()),
                finished_at: ended(s.phase).then(|| s.since.clone()).flatten(),
                measurements: last_per_metric(&s.measurements),
                ..Default::default()
            };
            match svc.kind() {
                MemberKind::Deployment { change, .. } => {
                    r.kind = "Deployment".to_owned();
                    r.from = s.previous_images.clone();
                    r.to = change.images.clone();
                    r.dark = change.dark == Some(true);
                }
                MemberKind::Job(job) => {
                    r.kind = "Job".to_owned();
                    r.irreversible = job
                        .irreversible
                        .as_ref()
                        .map(|i| i.justification.trim().to_owned());
                }
                MemberKind::Flag(flag) => {
                    r.kind = "Flag".to_owned();
                    r.flag = Some(FlagReport {
                        config_map: flag.config_map.clone().unwrap_or_default(),
                        keys: flag.keys.clone(),
                    });
                }
            }
            Some(r)
        })
        .collect()
}

/// A service in this phase moves no more.
fn ended(p: ServicePhase) -> bool {
    matches!(
        p,
        ServicePhase::Promoted
            | ServicePhase::Restored
            | ServicePhase::Withdrawn
            | ServicePhase::Skipped
            | ServicePhase::Deferred
    )
}

/// The last measurement of each metric, in the order the metrics were first measured.
fn last_per_metric(all: &[Measurement]) -> Vec<Measurement> {
    let mut out: Vec<Measurement> = Vec::new();
    for m in all {
        match out.iter_mut().find(|o| o.metric == m.metric) {
            Some(o) if m.at >= o.at => *o = m.clone(),
            Some(_) => {}
            None => out.push(m.clone()),
        }
    }
    out
}

fn rollback(cx: &Ctx, cause: &RollbackCause) -> RollbackReport {
    // The order services were really put back in: flags first, then the
    // rollback order as far as the cluster let it go.
    let mut restored: Vec<String> = Vec::new();
    for e in &cx.st.timeline {
        if e.at < cause.at || !matches!(e.reason.as_str(), "Restored" | "FlagRestored") {
            continue;
        }
        if let Some(s) = &e.service
            && !restored.contains(s)
        {
            restored.push(s.clone());
        }
    }
    RollbackReport {
        reason: cause.reason,
        message: cause.message.clone(),
        service: cause.service.clone(),
        metric: cause.metric.clone(),
        value: cause.value,
        threshold: cause.threshold.clone(),
        first_deviation_at: cause.first_deviation_at.clone(),
        requested_by: cause.requested_by.clone(),
        restored,
    }
}

/// The approvals that let the release go on: each target it really waited
/// on (its timeline shows it passed) and the first approval that counted
/// under its profile, by the same rule the engine went on by.
fn approvals(cx: &Ctx) -> Vec<ApprovalReport> {
    let tl = &cx.st.timeline;
    let passed = |reason: &str, service: Option<&str>| {
        tl.iter()
            .any(|e| e.reason == reason && e.service.as_deref() == service)
    };
    let mut targets: Vec<(Target, String)> = Vec::new();
    if passed("GatesPassed", None) {
        for g in crate::policy::approval_gates(cx.raw, cx.approval_rules()) {
            targets.push((Target::Gate(g), format!("gate {g}")));
        }
    }
    if tl.iter().any(|e| e.reason == "WindowOverride") {
        targets.push((Target::Window, "window override".to_owned()));
    }
    for svc in &cx.spec.services {
        if passed("GatesPassed", Some(&svc.name)) {
            for g in svc.gates.iter().filter(|g| g.approval == Some(true)) {
                targets.push((
                    Target::Gate(&g.name),
                    format!("gate {} of {}", g.name, svc.name),
                ));
            }
        }
        for (k, step) in cx.spec.steps_of(svc).iter().enumerate() {
            let number = k as i32 + 1;
            let approved = format!("{}: step {number} at", svc.name);
            if step.approval == Some(true)
                && tl.iter().any(|e| {
                    e.reason == "Approved"
                        && e.service.as_deref() == Some(&svc.name)
                        && e.message.starts_with(&approved)
                })
            {
                targets.push((
                    Target::Step {
                        service: &svc.name,
                        step: number,
                    },
                    format!("step {number} of {}", svc.name),
                ));
            }
        }
    }
    targets
        .into_iter()
        .filter_map(|(target, what)| {
            let by = cx.approval(&target).approved_by?;
            Some(ApprovalReport {
                approver: by.spec.approver.clone(),
                what,
                at: by.at.map(Time),
            })
        })
        .collect()
}

fn verification(cx: &Ctx) -> Option<VerificationReport> {
    let v = cx.st.verification.as_ref()?;
    let verified = cx
        .st
        .timeline
        .iter()
        .find(|e| e.reason == "Verified")
        .map(|e| e.at.clone());
    let ended_at = verified.clone().or_else(|| {
        cx.st
            .rollback
            .as_ref()
            .map(|r| r.at.clone())
            .filter(|at| *at >= v.started_at)
    });
    Some(VerificationReport {
        started_at: v.started_at.clone(),
        ended_at,
        passed: verified.is_some(),
        measurements: last_per_metric(&v.measurements),
    })
}

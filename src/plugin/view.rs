//! `kubectl signalman get`: where a release stands, at a glance.
//!
//! Pure rendering from the Release object and the current time, so the same
//! code draws the live terminal view, the plain lines of a pipe and the tests.

use std::fmt::Write as _;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;

use crate::api::{
    Analysis, GateKind, JobResult, JobRun, Measurement, MemberKind, Metric, MetricTally, Outcome,
    Phase, Release, ReleaseSpec, ReleaseStatus, ServicePhase, ServiceSpec, ServiceStatus,
};
use crate::text;
use crate::{analysis, plan};
use signalman_core::policy;

use super::members;
use super::style::{Style, clock, number};
use super::untrusted;

/// Width of the weight bar in cells.
const BAR: usize = 20;

/// The detailed view of one Release.
/// Times are shown in `zone` (the system zone in the plugin).
pub fn render_release(r: &Release, now: Timestamp, zone: &TimeZone, style: Style) -> String {
    let r = untrusted::escaped(r);
    let r = r.as_ref();
    let mut out = String::new();
    let name = r.name_any();
    let ns = r.namespace().unwrap_or_default();
    let status = r.status.clone().unwrap_or_default();
    let phase = status.phase.unwrap_or_default();

    let _ = writeln!(
        out,
        "{} {} ({ns})   {}",
        style.bold("Release"),
        style.bold(&name),
        phase_badge(phase, style)
    );
    let mut owner = r.spec.owner.clone();
    if let Some(s) = &r.spec.summary {
        owner.push_str(" — ");
        owner.push_str(s);
    }
    let _ = writeln!(out, "  owner    {owner}");
    if let Some(risk) = risk_line(&status) {
        let _ = writeln!(out, "  risk     {risk}");
    }
    let mut facts = Vec::new();
    if let Some(w) = &status.current_wave {
        facts.push(format!("wave {w}"));
    }
    if let Some(p) = &status.progress {
        facts.push(p.clone());
    }
    match (&status.started_at, &status.finished_at) {
        (Some(s), Some(f)) => facts.push(format!("took {}", text::duration(since(s.0, f.0)))),
        (Some(s), None) => facts.push(format!("started {} ago", text::duration(since(s.0, now)))),
        _ => {}
    }
    if !facts.is_empty() {
        let _ = writeln!(out, "  status   {}", facts.join(" · "));
    }
    if !r.picked_up() {
        let _ = writeln!(
            out,
            "  {}",
            style.yellow("no status yet: the controller has not picked this Release up (is the signalman operator running?)")
        );
    } else if status.observed_generation.unwrap_or_default()
        < r.metadata.generation.unwrap_or_default()
    {
        let _ = writeln!(
            out,
            "  {}",
            style.dim("the controller has not acted on the latest change to the spec yet")
        );
    }
    // While progressing the per-service lines below say the same, better laid out;
    // a stalled release's problems are listed one per line below.
    if let Some(m) = &status.message
        && phase != Phase::Progressing
        && !(phase == Phase::Verifying && status.verification.is_some())
        && stalled(&status).is_none_or(|c| &c.message != m)
    {
        let _ = writeln!(out, "  message  {m}");
    }

    render_attention(&mut out, r, &status, now, zone, style);
    render_owners(&mut out, &status, style);
    render_deferred(&mut out, &status, style);
    render_window(&mut out, r, &status, now, zone, style);
    render_gates(&mut out, r, &status, now, style);
    render_verification(&mut out, r, &status, now, zone, style);
    render_end(&mut out, r, &status, now, zone, style);

    // Steps and analysis as the profile in force completes them.
    let eff = policy::effective(r);
    for (i, wave) in waves(r, &status).iter().enumerate() {
        let _ = writeln!(out);
        let _ = writeln!(out, "  {}", style.bold(&format!("WAVE {}", i + 1)));
        for svc_name in wave {
            let Some(spec) = eff.service(svc_name) else {
                continue;
            };
            let st = status.service_or_new(svc_name);
            render_service(&mut out, r, &eff, spec, &st, &status, now, style);
        }
    }
    out
}

/// Holds, rollbacks, pauses and problems, in plain words with what to do about them.
fn render_attention(
    out: &mut String,
    r: &Release,
    status: &ReleaseStatus,
    now: Timestamp,
    zone: &TimeZone,
    style: Style,
) {
    let name = r.name_any();
    let ns = r.namespace().unwrap_or_default();
    let phase = status.phase.unwrap_or_default();
    if let Some(h) = &status.hold {
        let on = h
            .service
            .as_ref()
            .map(|s| format!(", on {s}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {} {} (for {}{on}): {}{}",
            style.yellow(&style.bold("HOLD")),
            h.id,
            text::duration(since(h.since.0, now)),
            h.reason,
            if h.message.is_empty() {
                String::new()
            } else {
                format!(": {}", h.message)
            }
        );
        let _ = writeln!(
            out,
            "           canaries are at 0% until someone decides: kubectl signalman resume {name} -n {ns}   or   kubectl signalman abort {name} -n {ns}"
        );
    } else if phase == Phase::Paused || (r.spec.paused == Some(true) && !phase.is_final()) {
        let _ = writeln!(
            out,
            "  {} by spec.paused: nothing advances, weights stay; continue with kubectl signalman resume {name} -n {ns}",
            style.yellow(&style.bold("PAUSED"))
        );
    }
    if let Some(rb) = &status.rollback {
        let on = rb
            .service
            .as_ref()
            .map(|s| format!(" on {s}"))
            .unwrap_or_default();
        let first = rb
            .first_deviation_at
            .as_ref()
            .map(|t| format!(", first deviation {}", local_time(t.0, zone)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {} {}{on} at {}{first}: {}",
            style.red(&style.bold("ROLLBACK")),
            rb.reason,
            local_time(rb.at.0, zone),
            rb.message
        );
    } else if r.spec.abort == Some(true) && !phase.is_final() {
        let _ = writeln!(
            out,
            "  {} requested: the controller is starting the rollback",
            style.red(&style.bold("ABORT"))
        );
    }
    if let Some(c) = stalled(status) {
        let _ = writeln!(
            out,
            "  {} {}: nothing was changed in the cluster; fix this and the controller tries again:",
            style.red(&style.bold("PROBLEM")),
            c.reason,
        );
        for p in problems(&c.message) {
            let _ = writeln!(out, "    {} {p}", style.red("✖"));
        }
    }
}

/// The `Warning` condition (a train its owners should have split) and what
/// `status.crossTeam` says about it: the edges, the unrelated changes, the split.
fn render_owners(out: &mut String, status: &ReleaseStatus, style: Style) {
    let warning = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Warning" && c.status == "True");
    if let Some(c) = warning {
        let _ = writeln!(
            out,
            "  {} {}: {}",
            style.yellow(&style.bold("WARNING")),
            c.reason,
            c.message
        );
    }
    let Some(cross) = &status.cross_team else {
        return;
    };
    let n = cross.edges.len();
    let over = n > usize::try_from(cross.limit).unwrap_or(0);
    let edges = if n == 1 { "edge" } else { "edges" };
    let head = if over {
        format!(
            "{n} cross-team {edges}, more than the limit {}",
            cross.limit
        )
    } else {
        format!("{n} cross-team {edges}, within the limit {}", cross.limit)
    };
    let _ = writeln!(out, "  {} {head}", style.bold("OWNERS"));
    for e in &cross.edges {
        let _ = writeln!(out, "           {e}");
    }
    if !cross.unrelated.is_empty() {
        let _ = writeln!(
            out,
            "           unrelated changes (no dependency path between them, different owners): {}",
            cross.unrelated.join(" · ")
        );
    }
    if !cross.split.is_empty() {
        let _ = writeln!(out, "           proposed split, each a Release of its own:");
        for line in super::members::split_lines(&cross.split, style) {
            let _ = writeln!(out, "             {line}");
        }
    }
}

/// The services this release does not ship, and why (`status.deferred`).
fn render_deferred(out: &mut String, status: &ReleaseStatus, style: Style) {
    if status.deferred.is_empty() {
        return;
    }
    let n = status.deferred.len();
    let _ = writeln!(
        out,
        "  {} {n} service{} not shipped by this release (a new Release carries {}):",
        style.yellow(&style.bold("DEFERRED")),
        if n == 1 { "" } else { "s" },
        if n == 1 { "it" } else { "them" },
    );
    let width = status
        .deferred
        .iter()
        .map(|d| d.service.len())
        .max()
        .unwrap_or(0);
    for d in &status.deferred {
        let _ = writeln!(out, "           {:width$}  {}", d.service, d.reason);
    }
}

/// The risk and why, and the policy and profile it follows, e.g.
/// `high: payments-api is a payment change · ReleasePolicy prod, profile high`.
pub(super) fn risk_line(status: &ReleaseStatus) -> Option<String> {
    let plan = status.plan.as_ref();
    let mut parts = Vec::new();
    match (
        plan.and_then(|p| p.risk_reason.as_deref())
            .filter(|r| !r.is_empty()),
        plan.and_then(|p| p.risk),
    ) {
        (Some(reason), _) => parts.push(reason.to_owned()),
        (None, Some(risk)) => parts.push(policy::risk_name(risk).to_owned()),
        (None, None) => {}
    }
    if let Some(p) = &status.policy {
        match (&p.name, &p.profile) {
            (Some(n), Some(pr)) => parts.push(format!("ReleasePolicy {n}, profile {pr}")),
            (Some(n), None) => parts.push(format!("ReleasePolicy {n}")),
            _ => parts.push("no ReleasePolicy".to_owned()),
        }
    }
    (!parts.is_empty()).then(|| parts.join(" · "))
}

/// The command that approves `flag` (e.g. `--gate change-board`) for this release.
fn approve_command(r: &Release, flag: &str) -> String {
    format!(
        "kubectl signalman approve {} -n {} {flag} -m \"...\"",
        r.name_any(),
        r.namespace().unwrap_or_default()
    )
}

/// A closed window: what it is, when it opens, and what an override still needs.
fn render_window(
    out: &mut String,
    r: &Release,
    status: &ReleaseStatus,
    now: Timestamp,
    zone: &TimeZone,
    style: Style,
) {
    let phase = status.phase.unwrap_or_default();
    let Some(w) = status.window.as_ref().filter(|w| !w.open) else {
        return;
    };
    if phase.is_final() {
        return;
    }
    let what = if w.message.is_empty() {
        "closed".to_owned()
    } else {
        format!("closed: {}", w.message)
    };
    let _ = writeln!(out, "  {} {what}", style.yellow(&style.bold("WINDOW")));
    if let Some(t) = &w.next_opening {
        let local = t.0.to_zoned(zone.clone());
        let _ = writeln!(
            out,
            "           opens {} {} (in {})",
            local.strftime("%a %Y-%m-%d %H:%M"),
            zone.iana_name().unwrap_or("local time"),
            text::duration(since(now, t.0))
        );
    } else {
        let _ = writeln!(
            out,
            "           it does not open within a year: only an override lets it start"
        );
    }
    let command = approve_command(r, "--window");
    let override_ = match &r.spec.window_override {
        Some(o) => format!(
            "override: justified ({}); it also needs an approval: {command}",
            o.justification
        ),
        None => format!("override: needs spec.override.justification and an approval ({command})"),
    };
    let _ = writeln!(out, "           {}", style.dim(&override_));
}

/// While the release waits for its gates: each gate, whether it holds, its value and why.
fn render_gates(
    out: &mut String,
    r: &Release,
    status: &ReleaseStatus,
    now: Timestamp,
    style: Style,
) {
    if status.phase != Some(Phase::AwaitingGates) {
        return;
    }
    let wave = status.gates.first().map(|g| g.wave).unwrap_or(1).max(1);
    let mut head = format!("for wave {wave}");
    if let Some(since_) = &status.awaiting_since {
        let waited = since(since_.0, now);
        let _ = write!(head, ", waiting {}", text::duration(waited));
        let timeout = status
            .policy
            .as_ref()
            .and_then(|p| p.gate_timeout)
            .map(Duration::from);
        if let Some(t) = timeout {
            let then = if status.started_at.is_some() && wave > 1 {
                "rolls back"
            } else {
                "ends Failed, nothing changed"
            };
            let _ = write!(
                head,
                "; gate timeout {}: {then} in {}",
                text::duration(t),
                text::duration(t.saturating_sub(waited))
            );
        }
    }
    let _ = writeln!(out, "  {} {head}", style.yellow(&style.bold("GATES")));
    if status.gates.is_empty() {
        let _ = writeln!(out, "    {}", style.dim("not checked yet"));
        return;
    }
    let width = status.gates.iter().map(|g| g.name.len()).max().unwrap_or(0);
    for g in &status.gates {
        let (glyph, kind) = (
            if g.holds {
                style.green("✔")
            } else {
                style.red("✖")
            },
            match g.kind {
                GateKind::Query => "query",
                GateKind::Cluster => "cluster",
                GateKind::Approval => "approval",
            },
        );
        let value = g
            .value
            .map(number)
            .map(|v| format!("{v}  "))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "    {glyph} {:width$}  {kind:8}  {value}{}",
            g.name, g.reason
        );
        if g.kind == GateKind::Approval && !g.holds {
            let _ = writeln!(
                out,
                "      {}",
                style.dim(&format!(
                    "approve: {}",
                    approve_command(r, &format!("--gate {}", g.name))
                ))
            );
        }
    }
}

/// While the whole train is verified (`spec.verify`): the time left and each
/// verify metric with its tally.
fn render_verification(
    out: &mut String,
    r: &Release,
    status: &ReleaseStatus,
    now: Timestamp,
    zone: &TimeZone,
    style: Style,
) {
    if status.phase != Some(Phase::Verifying) {
        return;
    }
    let (Some(v), Some(verify)) = (&status.verification, &r.spec.verify) else {
        return;
    };
    let bake = since(v.started_at.0, v.ends_at.0);
    let needed = verify.analysis.min_passes(bake);
    let left = since(now, v.ends_at.0);
    let when = if left > Duration::ZERO {
        format!(
            "{} left (until {})",
            clock(left),
            local_time(v.ends_at.0, zone)
        )
    } else {
        let short: Vec<String> = verify
            .analysis
            .metrics
            .iter()
            .filter_map(|m| {
                let passed = v
                    .tally
                    .iter()
                    .find(|t| t.metric == m.name)
                    .map_or(0, |t| t.passed);
                (passed < needed).then(|| format!("{} {passed}/{needed}", m.name))
            })
            .collect();
        if short.is_empty() {
            "baked, passing".to_owned()
        } else {
            format!("baked, waiting for passes: {}", short.join(", "))
        }
    };
    let _ = writeln!(
        out,
        "  {} the whole train: {when}; a breach reverses the entire train",
        style.blue(&style.bold("VERIFYING")),
    );
    let metrics = Metrics {
        analysis: &verify.analysis,
        measurements: &v.measurements,
        tally: &v.tally,
        needed: Some(needed),
        step: None,
        counting: true,
        full: false,
    };
    metrics.render(out, style);
}

/// A finished release: until when it can be rolled back (Succeeded), and where its report is.
fn render_end(
    out: &mut String,
    r: &Release,
    status: &ReleaseStatus,
    now: Timestamp,
    zone: &TimeZone,
    style: Style,
) {
    let phase = status.phase.unwrap_or_default();
    if !phase.is_final() {
        return;
    }
    let name = r.name_any();
    let ns = r.namespace().unwrap_or_default();
    let head = style.bold("ROLLBACK WINDOW");
    if let (Phase::Succeeded, Some(w)) = (phase, &status.rollback_window) {
        match &w.closed_at {
            Some(t) => {
                let _ = writeln!(
                    out,
                    "  {head} closed {}: the baselines are gone; going back means a new Release with the previous versions",
                    local_date_time(t.0, zone)
                );
            }
            // Past `until` a rollback is refused even before the controller closes the window.
            None if now >= w.until.0 => {
                let _ = writeln!(
                    out,
                    "  {head} over since {}: a rollback is refused; going back means a new Release with the previous versions",
                    local_date_time(w.until.0, zone)
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "  {head} open until {} (in {}): kubectl signalman rollback {name} -n {ns}",
                    local_date_time(w.until.0, zone),
                    text::duration(since(now, w.until.0))
                );
            }
        }
        if let Some(why) = &w.refused {
            let _ = writeln!(
                out,
                "  {} {why}",
                style.yellow(&style.bold("ROLLBACK REFUSED"))
            );
        }
    }
    if status.report.is_some() {
        let _ = writeln!(
            out,
            "  {}   kubectl signalman report {name} -n {ns} --audience engineering|product|support|leadership",
            style.bold("REPORT")
        );
    }
}

/// `Fri 2026-11-27 16:00 Europe/Berlin`.
fn local_date_time(t: Timestamp, zone: &TimeZone) -> String {
    format!(
        "{} {}",
        t.to_zoned(zone.clone()).strftime("%a %Y-%m-%d %H:%M"),
        zone.iana_name().unwrap_or("local time")
    )
}

/// The `Stalled=True` condition of a release that stopped before changing anything.
pub(super) fn stalled(status: &ReleaseStatus) -> Option<&Condition> {
    let phase = status.phase.unwrap_or_default();
    if phase == Phase::RolledBack || status.hold.is_some() {
        return None;
    }
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled" && c.status == "True")
}

/// The controller joins the problems of one class with "; "; each starts with its field path.
fn problems(message: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = message;
    while let Some(i) = rest.find("; spec.") {
        out.push(&rest[..i]);
        rest = &rest[i + 2..];
    }
    out.push(rest);
    out
}

#[allow(clippy::too_many_arguments)]
fn render_service(
    out: &mut String,
    r: &Release,
    eff: &ReleaseSpec,
    spec: &ServiceSpec,
    st: &ServiceStatus,
    status: &ReleaseStatus,
    now: Timestamp,
    style: Style,
) {
    let steps = eff.steps_of(spec);
    let (glyph, painted) = service_badge(st.phase, style);
    let name_w = eff.services.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let mut line = format!(
        "  {glyph} {}  {}",
        style.bold(&format!("{:name_w$}", st.name)),
        painted
    );
    let kind = spec.kind();
    match st.phase {
        ServicePhase::Progressing | ServicePhase::Withdrawing | ServicePhase::Promoting
            if matches!(kind, MemberKind::Job(_)) =>
        {
            // A Job has no canary and no weight: what runs is the Job.
            let run = if st.phase == ServicePhase::Withdrawing {
                "waiting for its forward Job to finish before its rollback"
            } else {
                "forward Job running"
            };
            let _ = write!(line, "  {}", style.dim(run));
        }
        ServicePhase::Progressing if matches!(kind, MemberKind::Flag(_)) => {
            let what = if st.bake_started_at.is_none() {
                "setting its keys".to_owned()
            } else if status.hold.is_some() {
                "keys set".to_owned()
            } else {
                format!("keys set · {}", bake_left(eff, spec, st, now))
            };
            let _ = write!(line, "  {what}");
        }
        ServicePhase::Progressing | ServicePhase::Withdrawing | ServicePhase::Promoting => {
            let step = st
                .step
                .map(|s| format!("step {}/{}", s + 1, steps.len()))
                .unwrap_or_default();
            let _ = write!(
                line,
                "  {step:9} {} {:>3}%",
                style.bar(st.weight, BAR),
                st.weight
            );
            // The declared weight is a request; say so when the pods carry another share.
            if let Some(e) = st.effective_weight.filter(|e| *e != st.weight) {
                let _ = write!(line, " {}", style.yellow(&format!("(effective {e}%)")));
            }
            if st.phase == ServicePhase::Progressing && st.awaiting_approval {
                let n = st.step.unwrap_or_default() + 1;
                let _ = write!(
                    line,
                    "  {}",
                    style.yellow(&format!("waits for an approval of step {n}"))
                );
            } else if st.phase == ServicePhase::Progressing && status.hold.is_none() {
                let _ = write!(line, "  {}", bake_left(eff, spec, st, now));
            }
        }
        ServicePhase::Promoted
        | ServicePhase::Withdrawn
        | ServicePhase::Restoring
        | ServicePhase::Restored
        | ServicePhase::Skipped
        | ServicePhase::Deferred => {
            // The controller's own sentence when it wrote one; it knows best.
            let fallback = match (st.phase, kind) {
                (ServicePhase::Deferred, _) => "deferred: not shipped by this release",
                (ServicePhase::Promoted, MemberKind::Job(_)) => "migration applied",
                (ServicePhase::Restoring, MemberKind::Job(_)) if st.rollback_job.is_some() => {
                    "reversing the migration with its rollback Job"
                }
                (ServicePhase::Restoring, MemberKind::Job(_)) => {
                    "waits to run its rollback Job after what depends on it"
                }
                (ServicePhase::Restored, MemberKind::Job(_)) => {
                    "migration reversed by its rollback Job"
                }
                (ServicePhase::Promoted, MemberKind::Flag(_)) => "flag on: keys set and baked",
                (ServicePhase::Restoring, MemberKind::Flag(_)) => {
                    "putting the keys back to their baseline"
                }
                (ServicePhase::Restored, MemberKind::Flag(_)) => "keys back to their baseline",
                (ServicePhase::Promoted, _) => "new version is stable, canary removed",
                (ServicePhase::Withdrawn, _) => "canary removed, stable never touched",
                (ServicePhase::Restoring, _) => {
                    "putting the stable Deployment back on its baseline"
                }
                (ServicePhase::Restored, _) => "stable Deployment back on its baseline",
                _ => "never started",
            };
            let text = st.message.as_deref().unwrap_or(fallback);
            let _ = write!(line, "  {}", style.dim(text));
        }
        ServicePhase::Pending => {
            let waiting: Vec<&str> = spec
                .depends_on
                .iter()
                .filter(|d| {
                    status
                        .services
                        .iter()
                        .find(|s| &s.name == *d)
                        .is_none_or(|s| s.phase != ServicePhase::Promoted)
                })
                .map(String::as_str)
                .collect();
            if !waiting.is_empty() {
                let _ = write!(
                    line,
                    "  {}",
                    style.dim(&format!("waiting for {}", waiting.join(", ")))
                );
            }
        }
    }
    let _ = writeln!(out, "{}", line.trim_end());
    // A progressing service's line already says step, weight and bake; its
    // message matters when it says something else (held, waiting for the cluster).
    let own_line = matches!(
        st.phase,
        ServicePhase::Promoted
            | ServicePhase::Withdrawn
            | ServicePhase::Restoring
            | ServicePhase::Restored
            | ServicePhase::Skipped
            | ServicePhase::Deferred
    );
    let restates_bake = st.phase == ServicePhase::Progressing
        && st.bake_started_at.is_some()
        && status.hold.is_none();
    if let Some(m) = &st.message
        && !own_line
        && !restates_bake
    {
        let _ = writeln!(out, "      {}", style.dim(m));
    }
    render_member(out, r, spec, st, now, style);
    if st.phase == ServicePhase::Progressing && st.awaiting_approval {
        let n = st.step.unwrap_or_default() + 1;
        let _ = writeln!(
            out,
            "      {}",
            style.dim(&format!(
                "measurements go on (a breach still rolls back); to move on: {}",
                approve_command(r, &format!("--step {}/{n}", st.name))
            ))
        );
    }
    // A Job is judged by its exit, not measured.
    if matches!(kind, MemberKind::Job(_)) {
        return;
    }
    if matches!(
        st.phase,
        ServicePhase::Progressing | ServicePhase::Promoting | ServicePhase::Withdrawing
    ) || !st.measurements.is_empty()
    {
        render_metrics(out, eff, spec, st, style);
    } // Released without metrics is a decision someone made; it stays in sight
    // for the whole release, not only while a step bakes.
    let analysis = eff.analysis_of(spec);
    if let Some(skip) = &analysis.skip_analysis
        && analysis.metrics.is_empty()
    {
        let _ = writeln!(
            out,
            "      {}",
            style.yellow(&format!(
                "not measured (skipAnalysis: {}): steps pass on bake time alone",
                skip.reason
            ))
        );
    }
}

/// How long the current step still bakes, or what it waits for.
pub(super) fn bake_left(
    eff: &ReleaseSpec,
    spec: &ServiceSpec,
    st: &ServiceStatus,
    now: Timestamp,
) -> String {
    let Some(bake) = step_bake(eff, spec, st.step) else {
        return String::new();
    };
    let Some(started) = &st.bake_started_at else {
        let weight = st
            .step
            .and_then(|s| eff.steps_of(spec).get(usize::try_from(s).ok()?).cloned())
            .map_or(st.weight, |s| s.weight);
        return format!("waiting for {weight}% to take effect");
    };
    let baked = since(started.0, now);
    if baked < bake {
        return format!("bake {} left", clock(bake - baked));
    }
    let analysis = eff.analysis_of(spec);
    let needed = analysis.min_passes(bake);
    let short: Vec<String> = analysis
        .metrics
        .iter()
        .filter_map(|m| {
            let passed = st
                .tally
                .iter()
                .find(|t| t.metric == m.name)
                .map(|t| t.passed)
                .unwrap_or(0);
            (passed < needed).then(|| format!("{} {passed}/{needed}", m.name))
        })
        .collect();
    if short.is_empty() {
        "baked, passing".to_owned()
    } else {
        format!("baked, waiting for passes: {}", short.join(", "))
    }
}

/// How long step `step` of a service bakes: a deployment's step, a flag's
/// `flag.bake` (its one step); a Job has none.
fn step_bake(eff: &ReleaseSpec, spec: &ServiceSpec, step: Option<i32>) -> Option<Duration> {
    match spec.kind() {
        MemberKind::Job(_) => None,
        MemberKind::Flag(f) => step.map(|_| f.bake()),
        MemberKind::Deployment { .. } => {
            let steps = eff.steps_of(spec);
            step.and_then(|s| steps.get(usize::try_from(s).ok()?))
                .map(|s| s.bake.into())
        }
    }
}

/// What a migration's Jobs, a flag's keys or a dark change are, below the service's line.
fn render_member(
    out: &mut String,
    r: &Release,
    spec: &ServiceSpec,
    st: &ServiceStatus,
    now: Timestamp,
    style: Style,
) {
    match spec.kind() {
        MemberKind::Job(job) => {
            let release = r.name_any();
            let forward = st.forward_job.clone().unwrap_or_else(|| JobRun {
                name: signalman_core::migration::job_name(
                    &release,
                    &spec.name,
                    crate::engine::JobKind::Forward,
                ),
                ..Default::default()
            });
            let started = st.phase != ServicePhase::Pending
                && st.phase != ServicePhase::Deferred
                && st.phase != ServicePhase::Skipped;
            let _ = writeln!(
                out,
                "      {}",
                job_line(
                    crate::engine::JobKind::Forward.word(),
                    &forward,
                    job.timeout(),
                    started,
                    now,
                    style
                )
            );
            match (&job.irreversible, &st.rollback_job) {
                (Some(i), _) => {
                    let _ = writeln!(
                        out,
                        "      {}",
                        style.dim(&format!(
                            "irreversible ({}): no rollback Job; on a rollback it stays applied",
                            i.justification
                        ))
                    );
                }
                (None, Some(run)) => {
                    let _ = writeln!(
                        out,
                        "      {}",
                        job_line(
                            crate::engine::JobKind::Rollback.word(),
                            run,
                            job.timeout(),
                            true,
                            now,
                            style
                        )
                    );
                }
                (None, None) => {}
            }
        }
        MemberKind::Flag(flag) => {
            let mut line = format!(
                "ConfigMap {}: {}",
                flag.config_map.as_deref().unwrap_or_default(),
                members::flag_keys(flag)
            );
            if let Some(b) = &st.flag_baseline {
                let mut was: Vec<String> =
                    b.values.iter().map(|(k, v)| format!("{k}={v}")).collect();
                was.extend(b.absent.iter().map(|k| format!("{k} absent")));
                let _ = write!(line, " (baseline: {})", was.join(", "));
            }
            let _ = writeln!(out, "      {}", style.dim(&line));
        }
        MemberKind::Deployment { change, .. } => {
            if change.dark == Some(true) {
                let _ = writeln!(
                    out,
                    "      {}",
                    style.dim("dark: deployed behind a flag this release does not switch")
                );
            }
        }
    }
    // A hold set once the service is moving does not stop it.
    if let Some(h) = &spec.hold
        && !matches!(st.phase, ServicePhase::Pending | ServicePhase::Deferred)
    {
        let _ = writeln!(
            out,
            "      {}",
            style.yellow(&format!(
                "hold set after it started ({}): this release ships it anyway",
                h.reason
            ))
        );
    }
}

/// `forward Job NAME: Failed after 1m2s: REASON; last log lines: ...`.
fn job_line(
    which: &str,
    run: &JobRun,
    timeout: Duration,
    started: bool,
    now: Timestamp,
    style: Style,
) -> String {
    let head = format!("{which} Job {}", run.name);
    let took = match (&run.started_at, &run.finished_at) {
        (Some(s), Some(f)) => format!(" after {}", text::duration(since(s.0, f.0))),
        _ => String::new(),
    };
    let message = run
        .message
        .as_deref()
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    match (run.result, &run.started_at) {
        (Some(JobResult::Succeeded), _) => style.green(&format!("{head}: Succeeded{took}")),
        (Some(JobResult::Failed), _) => style.red(&format!("{head}: Failed{took}{message}")),
        (Some(JobResult::TimedOut), _) => style.red(&format!(
            "{head}: TimedOut{took} (timeout {}){message}",
            text::duration(timeout)
        )),
        (None, Some(s)) => {
            let ran = since(s.0, now);
            format!(
                "{head}: running for {} (timeout {}, {} left)",
                text::duration(ran),
                text::duration(timeout),
                text::duration(timeout.saturating_sub(ran))
            )
        }
        (None, None) if started => format!("{head}: being created"),
        (None, None) => style.dim(&format!("{head}: not run yet")),
    }
}

/// The latest measurement of each metric against its threshold.
fn render_metrics(
    out: &mut String,
    eff: &ReleaseSpec,
    spec: &ServiceSpec,
    st: &ServiceStatus,
    style: Style,
) {
    let analysis = eff.analysis_of(spec);
    let needed = step_bake(eff, spec, st.step).map(|b| analysis.min_passes(b));
    // At a step of weight 100 the stable pods take no traffic: nothing to compare with.
    let full = matches!(spec.kind(), MemberKind::Flag(_))
        || st
            .step
            .and_then(|s| eff.steps_of(spec).get(usize::try_from(s).ok()?).cloned())
            .is_some_and(|s| s.weight >= 100);
    let measured = Metrics {
        analysis: &analysis,
        measurements: &st.measurements,
        tally: &st.tally,
        needed,
        step: st.step,
        counting: st.phase == ServicePhase::Progressing,
        full,
    };
    measured.render(out, style);
}

/// Metrics with their latest measurements and tallies: a service's step, or the
/// train's verification (no step).
struct Metrics<'a> {
    analysis: &'a Analysis,
    measurements: &'a [Measurement],
    tally: &'a [MetricTally],
    /// The passes each metric needs, when known.
    needed: Option<i32>,
    /// The step being baked; a measurement of another step is marked.
    step: Option<i32>,
    /// Show the tallies (while the passes still count).
    counting: bool,
    /// The step is at 100 %: compare metrics are not measured there.
    full: bool,
}

impl Metrics<'_> {
    fn render(&self, out: &mut String, style: Style) {
        let width = self
            .analysis
            .metrics
            .iter()
            .map(|m| m.name.len())
            .max()
            .unwrap_or(0);
        for m in &self.analysis.metrics {
            let latest: Option<&Measurement> =
                self.measurements.iter().rev().find(|x| x.metric == m.name);
            let tally = self.tally.iter().find(|t| t.metric == m.name);
            let mut line = format!("      {:width$}  ", m.name);
            let needs = bound(m);
            match latest {
                None if self.full && m.compare.is_some() => {
                    let _ = write!(
                        line,
                        "{}",
                        style.dim(&format!(
                            "not measured at 100% ({needs}): the stable pods take no traffic to compare with"
                        ))
                    );
                }
                None => {
                    let _ = write!(
                        line,
                        "{}",
                        style.dim(&format!("not measured yet ({needs})"))
                    );
                }
                Some(x) => {
                    let value = x.value.map(number).unwrap_or_else(|| "—".to_owned());
                    // A comparison is read with both sides in view.
                    let value = match (&m.compare, x.stable_value) {
                        (Some(_), Some(stable)) => format!("{value} vs stable {}", number(stable)),
                        (Some(_), None) => format!("{value} vs stable —"),
                        (None, _) => value,
                    };
                    let (text, paint): (&str, fn(Style, &str) -> String) = match x.outcome {
                        Outcome::Pass => ("✔ pass", Style::green),
                        Outcome::Fail => ("✖ FAIL", Style::red),
                        Outcome::Inconclusive => ("? no data", Style::yellow),
                        Outcome::Error => ("! error", Style::yellow),
                    };
                    let verdict = paint(style, &format!("{text:9}"));
                    let _ = write!(line, "{value:>8}  {verdict}  needs {needs}");
                    if self.step.is_some_and(|s| s != x.step) {
                        let _ =
                            write!(line, " {}", style.dim(&format!("(in step {})", x.step + 1)));
                    }
                    if matches!(x.outcome, Outcome::Error | Outcome::Inconclusive)
                        && let Some(msg) = &x.message
                    {
                        let _ = write!(line, " {}", style.dim(&format!("({msg})")));
                    }
                }
            }
            if let (Some(t), Some(n)) = (tally, self.needed)
                && self.counting
            {
                let mut counts = format!(" · {}/{n} passes", t.passed);
                if t.failed > 0 {
                    let _ = write!(counts, ", {} failed", t.failed);
                }
                if t.inconclusive > 0 {
                    let _ = write!(counts, ", {} no data", t.inconclusive);
                }
                if t.errors > 0 {
                    let _ = write!(counts, ", {} errors", t.errors);
                }
                line.push_str(&style.dim(&counts));
            }
            let _ = writeln!(out, "{line}");
        }
    }
}

/// What a metric needs to pass, in the words the controller's messages use:
/// `<= 0.01`, or for a comparison `canary ≤ stable + 0.005`.
pub fn bound(m: &Metric) -> String {
    if m.compare.is_some() {
        analysis::threshold(m, None)
    } else {
        text::threshold(m.min, m.max)
    }
}

/// The waves from the status, else planned from the spec, else all services in one list.
pub(super) fn waves(r: &Release, status: &ReleaseStatus) -> Vec<Vec<String>> {
    let plan = status.plan.clone().or_else(|| plan::plan(&r.spec).ok());
    match plan {
        Some(p) => p.waves.into_iter().map(|w| w.services).collect(),
        None => vec![r.spec.services.iter().map(|s| s.name.clone()).collect()],
    }
}

/// One line per Release, like `kubectl get`.
pub fn render_table(
    releases: &[Release],
    now: Timestamp,
    all_namespaces: bool,
    style: Style,
) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header = vec!["NAME", "PHASE", "WAVE", "PROGRESS", "OWNER", "AGE"];
    if all_namespaces {
        header.insert(0, "NAMESPACE");
    }
    rows.push(header.into_iter().map(str::to_owned).collect());
    for r in releases {
        let r = untrusted::escaped(r);
        let status = r.status.clone().unwrap_or_default();
        let mut row = vec![
            r.name_any(),
            format!("{:?}", status.phase.unwrap_or_default()),
            status.current_wave.clone().unwrap_or_else(|| "-".into()),
            status.progress.clone().unwrap_or_else(|| "-".into()),
            r.spec.owner.clone(),
            r.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| text::duration(since(t.0, now)))
                .unwrap_or_else(|| "-".into()),
        ];
        if stalled(&status).is_some() {
            row[1].push_str(" (stalled)");
        } else if r.spec.paused == Some(true) && !status.phase.unwrap_or_default().is_final() {
            row[1].push_str(" (paused)");
        }
        if all_namespaces {
            row.insert(0, r.namespace().unwrap_or_default());
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let padded = if c + 1 == row.len() {
                cell.clone()
            } else {
                format!("{cell:w$}   ", w = widths[c])
            };
            let phase_col = if all_namespaces { 2 } else { 1 };
            if i > 0 && c == phase_col {
                line.push_str(&paint_phase_text(cell, &padded, style));
            } else if i == 0 {
                line.push_str(&style.dim(&padded));
            } else {
                line.push_str(&padded);
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if releases.is_empty() {
        out = "No Releases found.\n".to_owned();
    }
    out
}

fn paint_phase_text(cell: &str, padded: &str, style: Style) -> String {
    match cell.split(' ').next().unwrap_or_default() {
        "Succeeded" => style.green(padded),
        "RolledBack" | "RollingBack" | "Failed" => style.red(padded),
        "Paused" | "Held" | "AwaitingGates" | "AwaitingWindow" => style.yellow(padded),
        "Progressing" | "Verifying" => style.blue(padded),
        _ => padded.to_owned(),
    }
}

fn phase_badge(phase: Phase, style: Style) -> String {
    let text = format!("{phase:?}");
    match phase {
        Phase::Succeeded => style.green(&style.bold(&format!("✔ {text}"))),
        Phase::RolledBack | Phase::Failed => style.red(&style.bold(&format!("✖ {text}"))),
        Phase::RollingBack => style.red(&style.bold(&format!("↺ {text}"))),
        Phase::Paused | Phase::Held => style.yellow(&style.bold(&format!("‖ {text}"))),
        Phase::AwaitingGates | Phase::AwaitingWindow => {
            style.yellow(&style.bold(&format!("◌ {text}")))
        }
        Phase::Progressing | Phase::Verifying => style.blue(&style.bold(&format!("● {text}"))),
        Phase::Pending => style.dim(&format!("○ {text}")),
    }
}

fn service_badge(phase: ServicePhase, style: Style) -> (String, String) {
    let text = format!("{:11}", format!("{phase:?}"));
    let (glyph, paint): (&str, fn(Style, &str) -> String) = match phase {
        ServicePhase::Pending => ("○", Style::dim),
        ServicePhase::Progressing => ("●", Style::blue),
        ServicePhase::Promoting => ("▲", Style::cyan),
        ServicePhase::Promoted => ("✔", Style::green),
        ServicePhase::Withdrawing => ("↓", Style::yellow),
        ServicePhase::Withdrawn => ("✖", Style::yellow),
        ServicePhase::Restoring => ("↺", Style::red),
        ServicePhase::Restored => ("↺", Style::green),
        ServicePhase::Skipped => ("–", Style::dim),
        ServicePhase::Deferred => ("⏸", Style::yellow),
    };
    (paint(style, glyph), paint(style, &text))
}

/// Elapsed time from `from` to `to`, zero when `to` is earlier (clock skew).
pub fn since(from: Timestamp, to: Timestamp) -> Duration {
    let d = to.as_millisecond() - from.as_millisecond();
    Duration::from_millis(u64::try_from(d).unwrap_or(0))
}

/// `15:04:05` in the local time zone.
pub fn local_time(t: Timestamp, zone: &TimeZone) -> String {
    t.to_zoned(zone.clone()).strftime("%H:%M:%S").to_string()
}

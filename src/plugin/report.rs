//! `kubectl signalman report NAME --audience ...`: the completion report
//! (`status.report`) told to one audience in its own words.
//!
//! The controller records the facts when a release ends; this module only
//! chooses which of them each audience gets and how they are said. Every
//! sentence is built from a field of the report (or, for the order a manual
//! rollback would take, the plan in the same status): nothing is guessed, so a
//! fact the report does not hold is not in the text either. Markdown and JSON
//! are two encodings of one [`Document`], so they always say the same.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use serde::Serialize;

use crate::api::{
    JobResult, JobRun, Measurement, Outcome, Phase, Release, Report, RollbackReason, ServicePhase,
    ServiceReport,
};
use crate::text;
use signalman_core::policy;

use super::members;
use super::style::number;
use super::untrusted;

/// Who the report is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Audience {
    /// Versions, timings, measurements and the rollback procedure.
    Engineering,
    /// What is live for users, what is dark or behind flags, what was deferred.
    Product,
    /// What changed for customers, known issues, how long a rollback is possible.
    Support,
    /// Outcome, risk and duration, incidents: three lines.
    Leadership,
}

impl Audience {
    pub const ALL: [Audience; 4] = [
        Audience::Engineering,
        Audience::Product,
        Audience::Support,
        Audience::Leadership,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Audience::Engineering => "engineering",
            Audience::Product => "product",
            Audience::Support => "support",
            Audience::Leadership => "leadership",
        }
    }

    /// The audience named `word`, or an error listing the four there are.
    pub fn parse(word: &str) -> Result<Audience, String> {
        Audience::ALL
            .into_iter()
            .find(|a| a.name() == word)
            .ok_or_else(|| {
                let all: Vec<&str> = Audience::ALL.iter().map(|a| a.name()).collect();
                format!(
                    "--audience {}: there is no such audience; use one of {}",
                    untrusted::escape(word),
                    all.join(", ")
                )
            })
    }
}

/// How the report is printed (`-o`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Markdown,
    Json,
}

/// One audience's report: a title and sections of plain sentences.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Document {
    pub release: String,
    pub namespace: String,
    pub audience: Audience,
    pub outcome: Phase,
    pub title: String,
    pub sections: Vec<Section>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Section {
    pub title: String,
    pub lines: Vec<String>,
}

/// The report of `r` for `audience` in `format`; an error when the release
/// has no report yet.
pub fn render(r: &Release, audience: Audience, format: Format) -> Result<String, String> {
    let doc = document(r, audience)?;
    Ok(match format {
        Format::Markdown => markdown(&doc),
        Format::Json => serde_json::to_string_pretty(&doc).expect("a document serializes") + "\n",
    })
}

/// The report of `r` for `audience`; an error saying when it will exist when
/// the release has not ended.
pub fn document(r: &Release, audience: Audience) -> Result<Document, String> {
    let status = r.status.as_ref();
    let Some(report) = status.and_then(|s| s.report.as_ref()) else {
        let phase = status.and_then(|s| s.phase).unwrap_or_default();
        return Err(format!(
            "Release {} has no report yet: it is written when the release ends (Succeeded, RolledBack or Failed), and it is {phase}; follow it with kubectl signalman get {} -n {} --watch",
            r.name_any(),
            r.name_any(),
            r.namespace().unwrap_or_default()
        ));
    };
    let cx = Cx {
        name: r.name_any(),
        namespace: r.namespace().unwrap_or_default(),
        report,
        rollback_order: status
            .and_then(|s| s.plan.as_ref())
            .map(|p| p.rollback_order.clone())
            .unwrap_or_default(),
        release: r,
    };
    let (title, sections) = match audience {
        Audience::Engineering => engineering(&cx),
        Audience::Product => product(&cx),
        Audience::Support => support(&cx),
        Audience::Leadership => leadership(&cx),
    };
    Ok(Document {
        release: cx.name.clone(),
        namespace: cx.namespace.clone(),
        audience,
        outcome: report.outcome,
        title,
        sections,
    })
}

/// Markdown: a heading, then each section's sentences as a list; for
/// leadership exactly three lines, one per section.
pub fn markdown(doc: &Document) -> String {
    // The sentences quote the Release (names, messages): shown, never obeyed.
    let e = |s: &str| untrusted::escape(s).into_owned();
    let mut out = String::new();
    if doc.audience == Audience::Leadership {
        for s in &doc.sections {
            let _ = writeln!(out, "**{}:** {}", e(&s.title), e(&s.lines.join(" ")));
        }
        return out;
    }
    let _ = writeln!(out, "# {}", e(&doc.title));
    for s in &doc.sections {
        let _ = writeln!(out);
        let _ = writeln!(out, "## {}", e(&s.title));
        let _ = writeln!(out);
        for line in &s.lines {
            let _ = writeln!(out, "- {}", e(line));
        }
    }
    out
}

struct Cx<'a> {
    name: String,
    namespace: String,
    report: &'a Report,
    rollback_order: Vec<String>,
    release: &'a Release,
}

impl Cx<'_> {
    fn qualified(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn started(&self) -> Option<Timestamp> {
        self.report.started_at.as_ref().map(|t| t.0)
    }

    /// A time in the report: the clock alone on the day the release started, else with the date.
    fn at(&self, t: &Time) -> String {
        let utc = t.0.to_zoned(TimeZone::UTC);
        let same_day = self
            .started()
            .is_some_and(|s| s.to_zoned(TimeZone::UTC).date() == utc.date());
        if same_day {
            format!("{} UTC", utc.strftime("%H:%M:%S"))
        } else {
            full(t)
        }
    }

    fn rollback_command(&self) -> String {
        format!(
            "kubectl signalman rollback {} -n {}",
            self.name, self.namespace
        )
    }

    fn services(&self, phase: ServicePhase) -> impl Iterator<Item = &ServiceReport> {
        self.report
            .services
            .iter()
            .filter(move |s| s.phase == phase)
    }
}

/// `2026-11-26 10:25:00 UTC`.
fn full(t: &Time) -> String {
    format!(
        "{} UTC",
        t.0.to_zoned(TimeZone::UTC).strftime("%Y-%m-%d %H:%M:%S")
    )
}

fn seconds(s: i64) -> String {
    text::duration(Duration::from_secs(u64::try_from(s).unwrap_or(0)))
}

fn between(from: &Time, to: &Time) -> String {
    let ms = to.0.as_millisecond() - from.0.as_millisecond();
    text::duration(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

/// The version part of an image reference (`registry/app:v2.3.1` → `v2.3.1`,
/// a digest shortened to its first 12 hex digits); the whole reference when it has neither.
fn version(image: &str) -> String {
    if let Some((_, digest)) = image.split_once('@') {
        let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
        return format!("@{}", &hex[..hex.len().min(12)]);
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) if !tag.is_empty() => tag.to_owned(),
        _ => image.to_owned(),
    }
}

/// Per container, `api registry/app:v1 → registry/app:v2` (engineering: whole
/// references) or `v1 → v2` (everyone else), saying when the image before was not recorded.
fn versions(s: &ServiceReport, whole: bool) -> Vec<String> {
    let show = |image: &str| {
        if whole {
            image.to_owned()
        } else {
            version(image)
        }
    };
    let one = s.to.len() == 1;
    s.to.iter()
        .map(|(container, to)| {
            let change = match s.from.get(container) {
                Some(from) if from == to => format!("{} (unchanged)", show(to)),
                Some(from) => format!("{} → {}", show(from), show(to)),
                None => format!("{} (the image before was not recorded)", show(to)),
            };
            // A single container is the service; naming it adds nothing for most readers.
            if one && !whole {
                change
            } else {
                format!("{container} {change}")
            }
        })
        .collect()
}

/// `api v2.3.0` per container: what a restored service runs again.
fn previous(s: &ServiceReport) -> Option<String> {
    let was: Vec<String> = s
        .from
        .iter()
        .map(|(c, image)| {
            if s.from.len() == 1 {
                version(image)
            } else {
                format!("{c} {}", version(image))
            }
        })
        .collect();
    (!was.is_empty()).then(|| was.join(", "))
}

fn flag_keys(keys: &BTreeMap<String, String>) -> String {
    keys.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn job_result(run: &JobRun) -> String {
    let took = match (&run.started_at, &run.finished_at) {
        (Some(s), Some(f)) => format!(" after {}", between(s, f)),
        _ => String::new(),
    };
    let message = run
        .message
        .as_deref()
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    match run.result {
        Some(JobResult::Succeeded) => format!("Succeeded{took}"),
        Some(JobResult::Failed) => format!("Failed{took}{message}"),
        Some(JobResult::TimedOut) => format!("TimedOut{took}{message}"),
        None => "did not finish".to_owned(),
    }
}

/// `error-rate 0.0034 (pass, step 3, 10:08:00 UTC)`, or for a comparison
/// `error-rate canary 0.02 vs stable 0.019 (...)`.
fn measurement(cx: &Cx<'_>, m: &Measurement, verification: bool) -> String {
    let value = |v: Option<f64>| v.map(number).unwrap_or_else(|| "no value".to_owned());
    let values = match m.stable_value {
        Some(stable) => format!("canary {} vs stable {}", value(m.value), number(stable)),
        None => value(m.value),
    };
    let outcome = match m.outcome {
        Outcome::Pass => "pass",
        Outcome::Fail => "fail",
        Outcome::Inconclusive => "no data",
        Outcome::Error => "error",
    };
    let step = if verification {
        String::new()
    } else {
        format!(", step {}", m.step + 1)
    };
    let why = match (&m.message, m.outcome) {
        (Some(msg), Outcome::Error | Outcome::Inconclusive) => format!(": {msg}"),
        _ => String::new(),
    };
    format!(
        "{} {values} ({outcome}{step}, {}){why}",
        m.metric,
        cx.at(&m.at)
    )
}

/// The outcome before its time, as in `succeeded 2026-11-26 10:12:02 UTC`.
fn outcome_words(p: Phase) -> &'static str {
    match p {
        Phase::Succeeded => "succeeded",
        Phase::RolledBack => "rolled back, ended",
        Phase::Failed => "failed",
        // A report is only written for the three above; say what the field holds otherwise.
        _ => p.as_str(),
    }
}

fn risk(report: &Report) -> Option<String> {
    match (
        report.risk_reason.as_deref().filter(|r| !r.is_empty()),
        report.risk,
    ) {
        (Some(reason), _) => Some(reason.to_owned()),
        (None, Some(r)) => Some(policy::risk_name(r).to_owned()),
        (None, None) => None,
    }
}

/// `took 25m (2026-11-26 10:00:00 UTC to 10:25:00 UTC)`.
fn took(cx: &Cx<'_>) -> String {
    let r = cx.report;
    match &r.started_at {
        Some(s) => format!(
            "took {} ({} to {})",
            seconds(r.duration_seconds),
            full(s),
            cx.at(&r.finished_at)
        ),
        None => format!(
            "ended {} without starting (nothing was changed)",
            full(&r.finished_at)
        ),
    }
}

/// Why the train was reversed, with the metric, its value and the bound it crossed.
fn rollback_cause(cx: &Cx<'_>) -> Option<String> {
    let rb = cx.report.rollback.as_ref()?;
    let mut out = rb.reason.to_string();
    if let Some(s) = &rb.service {
        let _ = write!(out, " on {s}");
    }
    let _ = write!(out, ": {}", rb.message);
    match (&rb.metric, rb.value, &rb.threshold) {
        (Some(metric), Some(value), Some(threshold)) => {
            let _ = write!(out, " ({metric} was {}, bound {threshold})", number(value));
        }
        (Some(metric), Some(value), None) => {
            let _ = write!(out, " ({metric} was {})", number(value));
        }
        _ => {}
    }
    if let Some(t) = &rb.first_deviation_at {
        let _ = write!(out, "; first deviation {}", cx.at(t));
    }
    if rb.reason == RollbackReason::Manual
        && let Some(who) = &rb.requested_by
    {
        let _ = write!(out, "; asked by {who}");
    }
    Some(out)
}

/// What a manual rollback would reverse, in the order it would: the promoted
/// services in the plan's rollback order, flags first.
fn procedure_order(cx: &Cx<'_>) -> Vec<String> {
    let promoted: Vec<&str> = cx
        .services(ServicePhase::Promoted)
        .map(|s| s.name.as_str())
        .collect();
    members::in_rollback_order(
        &cx.name,
        cx.rollback_order
            .iter()
            .filter(|n| promoted.contains(&n.as_str()))
            .filter_map(|n| cx.release.spec.service(n)),
    )
}

/// Until when, and how, a rollback is possible; or why it no longer is.
fn window_lines(cx: &Cx<'_>, with_command: bool) -> Vec<String> {
    let r = cx.report;
    if r.outcome != Phase::Succeeded {
        return Vec::new();
    }
    let Some(w) = &r.rollback_window else {
        return vec!["no rollback window was recorded for this release".to_owned()];
    };
    let mut out = Vec::new();
    match &w.closed_at {
        Some(closed) => out.push(format!(
            "the rollback window closed at {} and the baselines are gone; going back means releasing the previous versions as a new Release",
            full(closed)
        )),
        None if with_command => out.push(format!(
            "a rollback is possible until {}: {}",
            full(&w.until),
            cx.rollback_command()
        )),
        None => out.push(format!("a rollback is possible until {}", full(&w.until))),
    }
    if let Some(why) = &w.refused {
        out.push(format!("a rollback was asked for and refused: {why}"));
    }
    out
}

fn engineering(cx: &Cx<'_>) -> (String, Vec<Section>) {
    let r = cx.report;
    let mut sections = Vec::new();

    let mut outcome = vec![r.summary.clone(), format!("owner {}", r.owner)];
    if let Some(d) = &r.description {
        outcome.push(d.clone());
    }
    if let Some(risk) = risk(r) {
        outcome.push(format!("risk {risk}"));
    }
    outcome.push(took(cx));
    sections.push(Section {
        title: "Outcome".into(),
        lines: outcome,
    });

    let versions_lines: Vec<String> = r
        .services
        .iter()
        .map(|s| {
            let mut parts = vec![format!(
                "{} ({}, {}): {:?}",
                s.name, s.kind, s.owner, s.phase
            )];
            if started(s) {
                parts.extend(versions(s, true));
            }
            if s.dark {
                parts.push("dark".into());
            }
            if let Some(f) = &s.flag {
                parts.push(format!(
                    "ConfigMap {}: {}",
                    f.config_map,
                    flag_keys(&f.keys)
                ));
            }
            if let Some(run) = &s.forward_job {
                parts.push(format!("forward Job {}: {}", run.name, job_result(run)));
            }
            if let Some(run) = &s.rollback_job {
                parts.push(format!("rollback Job {}: {}", run.name, job_result(run)));
            }
            if let Some(why) = &s.irreversible {
                parts.push(format!("irreversible: {why}"));
            }
            match (&s.started_at, &s.finished_at) {
                (Some(a), Some(b)) => {
                    parts.push(format!("{} to {} ({})", cx.at(a), cx.at(b), between(a, b)))
                }
                (Some(a), None) => parts.push(format!("started {}", cx.at(a))),
                _ => {}
            }
            parts.join("; ")
        })
        .collect();
    if !versions_lines.is_empty() {
        sections.push(Section {
            title: "Versions".into(),
            lines: versions_lines,
        });
    }

    let measured: Vec<String> = r
        .services
        .iter()
        .flat_map(|s| {
            s.measurements
                .iter()
                .map(move |m| format!("{}: {}", s.name, measurement(cx, m, false)))
        })
        .collect();
    if !measured.is_empty() {
        sections.push(Section {
            title: "Measurements (the last of each metric)".into(),
            lines: measured,
        });
    }

    if let Some(v) = &r.verification {
        let mut lines = vec![match (&v.ended_at, v.passed) {
            (Some(end), true) => format!(
                "passed: from {} to {} ({})",
                cx.at(&v.started_at),
                cx.at(end),
                between(&v.started_at, end)
            ),
            (Some(end), false) => format!(
                "did not pass: from {} to {} ({})",
                cx.at(&v.started_at),
                cx.at(end),
                between(&v.started_at, end)
            ),
            (None, passed) => format!(
                "{}: started {}",
                if passed { "passed" } else { "did not pass" },
                cx.at(&v.started_at)
            ),
        }];
        lines.extend(v.measurements.iter().map(|m| measurement(cx, m, true)));
        sections.push(Section {
            title: "Verification".into(),
            lines,
        });
    }

    push_waits(cx, &mut sections);
    push_deferred(r, &mut sections);

    if let Some(cause) = rollback_cause(cx) {
        let mut lines = vec![cause];
        if let Some(rb) = &r.rollback
            && !rb.restored.is_empty()
        {
            lines.push(format!(
                "restored in this order: {}",
                rb.restored.join(" → ")
            ));
        }
        sections.push(Section {
            title: "Rollback".into(),
            lines,
        });
    }

    if r.outcome == Phase::Succeeded {
        let mut lines = window_lines(cx, true);
        let open = r
            .rollback_window
            .as_ref()
            .is_some_and(|w| w.closed_at.is_none());
        if open {
            let order = procedure_order(cx);
            if !order.is_empty() {
                lines.push(format!(
                    "it reverses the whole train in this order: {}",
                    order.join(" → ")
                ));
            }
            lines.push(
                "it is refused when a Deployment or flag was changed since by something else; the refusal names it"
                    .into(),
            );
        }
        sections.push(Section {
            title: "Rollback procedure".into(),
            lines,
        });
    }

    (
        format!("Release {}: engineering report", cx.qualified()),
        sections,
    )
}

/// Holds and approvals, in order.
fn push_waits(cx: &Cx<'_>, sections: &mut Vec<Section>) {
    let r = cx.report;
    if !r.holds.is_empty() {
        sections.push(Section {
            title: "Holds".into(),
            lines: r
                .holds
                .iter()
                .map(|h| match &h.service {
                    Some(s) => format!("{} on {s}: {}", cx.at(&h.at), h.message),
                    None => format!("{}: {}", cx.at(&h.at), h.message),
                })
                .collect(),
        });
    }
    if !r.approvals.is_empty() {
        sections.push(Section {
            title: "Approvals".into(),
            lines: r
                .approvals
                .iter()
                .map(|a| match &a.at {
                    Some(t) => format!("{} approved {} at {}", a.approver, a.what, cx.at(t)),
                    None => format!("{} approved {}", a.approver, a.what),
                })
                .collect(),
        });
    }
}

fn push_deferred(r: &Report, sections: &mut Vec<Section>) {
    if !r.deferred.is_empty() {
        sections.push(Section {
            title: "Not shipped (deferred)".into(),
            lines: r
                .deferred
                .iter()
                .map(|d| format!("{}: {}", d.service, d.reason))
                .collect(),
        });
    }
}

/// Whether the release touched the service at all.
fn started(s: &ServiceReport) -> bool {
    !matches!(
        s.phase,
        ServicePhase::Pending | ServicePhase::Deferred | ServicePhase::Skipped
    )
}

/// A service the release left between two states (a Failed rollback stops there).
fn unsettled(s: &ServiceReport) -> bool {
    matches!(
        s.phase,
        ServicePhase::Progressing
            | ServicePhase::Promoting
            | ServicePhase::Withdrawing
            | ServicePhase::Restoring
    )
}

fn is_deployment(s: &ServiceReport) -> bool {
    s.kind == "Deployment"
}

fn product(cx: &Cx<'_>) -> (String, Vec<Section>) {
    let r = cx.report;
    let mut sections = Vec::new();
    let mut outcome = vec![r.summary.clone()];
    if let Some(d) = &r.description {
        outcome.push(d.clone());
    }
    sections.push(Section {
        title: "Outcome".into(),
        lines: outcome,
    });

    let live: Vec<String> = cx
        .services(ServicePhase::Promoted)
        .filter(|s| is_deployment(s) && !s.dark)
        .map(|s| {
            let v = versions(s, false);
            if v.is_empty() {
                format!("{}: new version live", s.name)
            } else {
                format!("{}: {} live for users", s.name, v.join(", "))
            }
        })
        .collect();
    sections.push(Section {
        title: "Live for users".into(),
        lines: if live.is_empty() {
            vec!["nothing new: no service of this release is live with a new version".into()]
        } else {
            live
        },
    });

    let mut behind: Vec<String> = cx
        .services(ServicePhase::Promoted)
        .filter(|s| is_deployment(s) && s.dark)
        .map(|s| {
            format!(
                "{}: {} deployed dark: the code is out, switched on by a flag later",
                s.name,
                versions(s, false).join(", ")
            )
        })
        .collect();
    behind.extend(cx.services(ServicePhase::Promoted).filter_map(|s| {
        let f = s.flag.as_ref()?;
        Some(format!(
            "{}: flag set, ConfigMap {} has {}",
            s.name,
            f.config_map,
            flag_keys(&f.keys)
        ))
    }));
    if !behind.is_empty() {
        sections.push(Section {
            title: "Dark or behind flags".into(),
            lines: behind,
        });
    }

    push_deferred(r, &mut sections);

    let back: Vec<String> = r
        .services
        .iter()
        .filter(|s| matches!(s.phase, ServicePhase::Restored | ServicePhase::Withdrawn))
        .filter(|s| s.kind != "Job")
        .map(|s| match (s.phase, previous(s), &s.flag) {
            (_, _, Some(f)) => format!(
                "{}: flag keys in ConfigMap {} put back",
                s.name, f.config_map
            ),
            (ServicePhase::Restored, Some(was), _) => format!("{}: back on {was}", s.name),
            (ServicePhase::Restored, None, _) => {
                format!("{}: back on its previous version", s.name)
            }
            _ => format!(
                "{}: never reached all users; the previous version stayed",
                s.name
            ),
        })
        .collect();
    if !back.is_empty() {
        sections.push(Section {
            title: "Taken back".into(),
            lines: back,
        });
    }
    (
        format!("Release {}: what shipped", cx.qualified()),
        sections,
    )
}

fn support(cx: &Cx<'_>) -> (String, Vec<Section>) {
    let r = cx.report;
    let mut sections = Vec::new();
    sections.push(Section {
        title: "Outcome".into(),
        lines: vec![
            r.summary.clone(),
            format!(
                "{} {}; owner {}",
                outcome_words(r.outcome),
                full(&r.finished_at),
                r.owner
            ),
        ],
    });

    let mut changed: Vec<String> = cx
        .services(ServicePhase::Promoted)
        .filter(|s| is_deployment(s))
        .map(|s| {
            let since = s
                .finished_at
                .as_ref()
                .map(|t| format!(" since {}", full(t)))
                .unwrap_or_default();
            if s.dark {
                format!(
                    "{}: {} deployed dark{since}; customers see no change until it is switched on",
                    s.name,
                    versions(s, false).join(", ")
                )
            } else {
                format!("{}: {}{since}", s.name, versions(s, false).join(", "))
            }
        })
        .collect();
    changed.extend(cx.services(ServicePhase::Promoted).filter_map(|s| {
        let f = s.flag.as_ref()?;
        let since = s
            .finished_at
            .as_ref()
            .map(|t| format!(" since {}", full(t)))
            .unwrap_or_default();
        Some(format!(
            "{}: flag keys {} (ConfigMap {}){since}",
            s.name,
            flag_keys(&f.keys),
            f.config_map
        ))
    }));
    changed.extend(
        r.services
            .iter()
            .filter_map(|s| Some((s, s.irreversible.as_ref()?)))
            .filter(|(s, _)| s.phase != ServicePhase::Deferred && s.phase != ServicePhase::Pending)
            .map(|(s, why)| format!("{}: irreversible change, stays applied ({why})", s.name)),
    );
    changed.extend(
        cx.services(ServicePhase::Restored)
            .filter(|s| is_deployment(s))
            .map(|s| match previous(s) {
                Some(was) => format!("{}: back on {was} (rolled back)", s.name),
                None => format!("{}: back on its previous version (rolled back)", s.name),
            }),
    );
    sections.push(Section {
        title: "What changed for customers".into(),
        lines: if changed.is_empty() {
            vec!["no new version of any service is live".into()]
        } else {
            changed
        },
    });

    let mut issues = Vec::new();
    if let Some(cause) = rollback_cause(cx) {
        issues.push(match r.outcome {
            Phase::RolledBack => format!("rolled back: {cause}"),
            _ => format!("a rollback began and did not complete: {cause}"),
        });
    }
    issues.extend(r.services.iter().filter(|s| unsettled(s)).map(|s| {
        format!(
            "{} was left {:?}: not back where it was before the release",
            s.name, s.phase
        )
    }));
    if let Some(v) = &r.verification
        && !v.passed
    {
        issues.push("verification after promotion did not pass".into());
    }
    issues.extend(
        r.deferred
            .iter()
            .map(|d| format!("{} not shipped: {}", d.service, d.reason)),
    );
    issues.extend(r.holds.iter().map(|h| match &h.service {
        Some(s) => format!("held at {} on {s}: {}", full(&h.at), h.message),
        None => format!("held at {}: {}", full(&h.at), h.message),
    }));
    sections.push(Section {
        title: "Known issues".into(),
        lines: if issues.is_empty() {
            vec!["none recorded: no breach, no hold, nothing deferred".into()]
        } else {
            issues
        },
    });

    let rollback = match r.outcome {
        Phase::Succeeded => {
            let mut lines = window_lines(cx, false);
            lines.push(format!("ask the owner, {}, to roll back", r.owner));
            lines
        }
        Phase::RolledBack => vec![format!(
            "already rolled back; the release ended {}",
            full(&r.finished_at)
        )],
        _ => vec![format!(
            "a rollback is not possible from here; the owner, {}, restores what the outcome names by hand",
            r.owner
        )],
    };
    sections.push(Section {
        title: "Rollback".into(),
        lines: rollback,
    });
    (format!("Release {}: for support", cx.qualified()), sections)
}

fn leadership(cx: &Cx<'_>) -> (String, Vec<Section>) {
    let r = cx.report;
    // The summary is the engine's one line about the outcome; it names the release.
    let outcome = format!("{} (namespace {})", r.summary, cx.namespace);
    let risk_and_duration = format!(
        "{}; {}",
        risk(r).map_or_else(|| "risk not recorded".to_owned(), |r| format!("risk {r}")),
        match &r.started_at {
            Some(_) => format!("took {}", seconds(r.duration_seconds)),
            None => "it never started".to_owned(),
        }
    );
    let mut incidents = Vec::new();
    if let Some(rb) = &r.rollback {
        let mut what = match r.outcome {
            Phase::RolledBack => format!("rolled back ({})", rb.reason),
            _ => format!("a rollback that did not complete ({})", rb.reason),
        };
        if let (Some(metric), Some(value)) = (&rb.metric, rb.value) {
            let _ = write!(what, ": {metric} was {}", number(value));
            if let Some(t) = &rb.threshold {
                let _ = write!(what, ", bound {t}");
            }
        }
        incidents.push(what);
    }
    if r.outcome == Phase::Failed {
        incidents.push("failed: needs a person".to_owned());
    }
    if !r.holds.is_empty() {
        let n = r.holds.len();
        incidents.push(format!("{n} hold{}", if n == 1 { "" } else { "s" }));
    }
    if !r.deferred.is_empty() {
        let n = r.deferred.len();
        incidents.push(format!(
            "{n} service{} deferred",
            if n == 1 { "" } else { "s" }
        ));
    }
    let incidents = if incidents.is_empty() {
        "none".to_owned()
    } else {
        incidents.join("; ")
    };
    let one = |title: &str, line: String| Section {
        title: title.into(),
        lines: vec![line],
    };
    (
        format!("Release {}: for leadership", cx.qualified()),
        vec![
            one("Outcome", outcome),
            one("Risk and duration", risk_and_duration),
            one("Incidents", incidents),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_audience_names_the_four() {
        let e = Audience::parse("sales").unwrap_err();
        assert_eq!(
            e,
            "--audience sales: there is no such audience; use one of engineering, product, support, leadership"
        );
        assert_eq!(Audience::parse("support"), Ok(Audience::Support));
    }

    #[test]
    fn a_version_is_the_tag_or_a_short_digest() {
        assert_eq!(version("registry.example/payments-api:v2.3.1"), "v2.3.1");
        assert_eq!(version("localhost:5000/app"), "localhost:5000/app");
        assert_eq!(
            version("r/app@sha256:0123456789abcdef0123"),
            "@0123456789ab"
        );
        assert_eq!(version("nginx"), "nginx");
    }
}

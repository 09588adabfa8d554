//! `kubectl signalman timeline`: the release's history for a blameless review,
//! with the moment the metric first deviated marked when it rolled back.

use std::fmt::Write as _;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use kube::ResourceExt;

use crate::api::{Outcome, Release};
use crate::text;

use super::style::{Style, number};
use super::untrusted;
use super::view::since;

/// Marker put on the first deviation, greppable in plain output.
pub const FIRST_DEVIATION: &str = "◀ first deviation";

/// One line of the history: a timeline entry or a measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub at: Timestamp,
    /// 0 for a timeline entry, 1 for a measurement: entries sort before
    /// measurements taken at the same instant.
    pub kind: u8,
    pub reason: String,
    pub service: String,
    pub text: String,
    pub outcome: Option<Outcome>,
}

/// The history as data, for the terminal and the dashboard alike.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// Oldest first.
    pub rows: Vec<Row>,
    /// The row that is the first deviation, when it is still kept.
    pub marked: Option<usize>,
    /// When the metric first deviated, and on which service (rolled back releases).
    pub first_deviation: Option<(Timestamp, Option<String>)>,
    /// The start offsets are counted from.
    pub start: Option<Timestamp>,
}

/// The history of `r`: timeline entries and the measurements still kept in
/// status (a failure once, not twice), oldest first, the first deviation found.
pub fn history(r: &Release) -> History {
    let status = r.status.clone().unwrap_or_default();
    let mut rows: Vec<Row> = status
        .timeline
        .iter()
        .map(|e| Row {
            at: e.at.0,
            kind: 0,
            reason: e.reason.clone(),
            service: e.service.clone().unwrap_or_default(),
            text: e.message.clone(),
            outcome: None,
        })
        .collect();
    for svc in &status.services {
        let spec = r.spec.service(&svc.name);
        let analysis = spec.map(|s| r.spec.analysis_of(s)).unwrap_or_default();
        for m in &svc.measurements {
            // A failed measurement already has its own `MeasurementFailed` entry.
            let logged = m.outcome == Outcome::Fail
                && rows.iter().any(|row| {
                    row.kind == 0
                        && row.at == m.at.0
                        && row.reason == "MeasurementFailed"
                        && row.service == svc.name
                });
            if logged {
                continue;
            }
            let def = analysis.metrics.iter().find(|x| x.name == m.metric);
            let value = m.value.map(number).unwrap_or_else(|| "no value".to_owned());
            let bound = def
                .map(|d| format!(" (pass {})", text::threshold(d.min, d.max)))
                .unwrap_or_default();
            let note = m
                .message
                .as_ref()
                .map(|t| format!(": {t}"))
                .unwrap_or_default();
            rows.push(Row {
                at: m.at.0,
                kind: 1,
                reason: format!("{:?}", m.outcome).to_lowercase(),
                service: svc.name.clone(),
                text: format!("{} = {value}{bound}, step {}{note}", m.metric, m.step + 1),
                outcome: Some(m.outcome),
            });
        }
    }
    rows.sort_by_key(|row| (row.at, row.kind));

    let first_deviation = status.rollback.as_ref().and_then(|rb| {
        let at = rb.first_deviation_at.as_ref()?.0;
        Some((at, rb.service.clone()))
    });
    // The row to mark: the first failing entry at that instant (for that service).
    let marked = first_deviation.as_ref().and_then(|(at, svc)| {
        rows.iter().position(|row| {
            row.at == *at
                && (row.reason == "MeasurementFailed" || row.outcome == Some(Outcome::Fail))
                && svc.as_ref().is_none_or(|s| &row.service == s)
        })
    });

    let start = status
        .started_at
        .as_ref()
        .map(|t| t.0)
        .or_else(|| rows.first().map(|row| row.at));
    History {
        rows,
        marked,
        first_deviation,
        start,
    }
}

/// The history of `r`: timeline entries and the measurements still kept in
/// status, oldest first, with times in the local zone and offsets from the start.
pub fn render_timeline(r: &Release, zone: &TimeZone, style: Style) -> String {
    let r = untrusted::escaped(r);
    let r = r.as_ref();
    let status = r.status.clone().unwrap_or_default();
    let History {
        rows,
        marked,
        first_deviation,
        start,
    } = history(r);
    let mut out = String::new();
    let phase = status.phase.unwrap_or_default();
    let _ = writeln!(
        out,
        "{} {}/{}: {phase:?}{}",
        style.bold("Timeline of Release"),
        r.namespace().unwrap_or_default(),
        r.name_any(),
        status
            .rollback
            .as_ref()
            .map(|rb| format!(" ({}: {})", rb.reason, rb.message))
            .unwrap_or_default()
    );
    if let Some(s) = start {
        let _ = writeln!(
            out,
            "{}",
            style.dim(&format!(
                "times are {}; offsets from the start",
                s.to_zoned(zone.clone()).strftime("%Y-%m-%d %Z")
            ))
        );
    }
    if rows.is_empty() {
        let _ = writeln!(out, "nothing has happened yet");
        return out;
    }
    let svc_w = rows.iter().map(|row| row.service.len()).max().unwrap_or(0);
    let reason_w = rows
        .iter()
        .filter(|row| row.kind == 0)
        .map(|row| row.reason.len())
        .max()
        .unwrap_or(0)
        .max(8);
    let mut deviation_shown = false;
    for (i, row) in rows.iter().enumerate() {
        let clock = row
            .at
            .to_zoned(zone.clone())
            .strftime("%H:%M:%S")
            .to_string();
        let offset = start
            .map(|s| format!("+{}", text::duration(since(s, row.at))))
            .unwrap_or_default();
        let mut line = format!("{clock}  {offset:>8}  ");
        if row.kind == 0 {
            let reason = format!("{:reason_w$}", row.reason);
            let painted = match row.reason.as_str() {
                "Breach" | "MeasurementFailed" | "RolledBack" | "WeightZero" => style.red(&reason),
                "Held" | "Paused" => style.yellow(&reason),
                "Promoted" | "Succeeded" | "Restored" | "StepPassed" => style.green(&reason),
                _ => style.bold(&reason),
            };
            let _ = write!(line, "{painted}  {:svc_w$}  {}", row.service, row.text);
        } else {
            let reason = format!("{:reason_w$}", format!("· {}", row.reason));
            let painted = match row.outcome {
                Some(Outcome::Fail) => style.red(&reason),
                Some(Outcome::Pass) => style.dim(&reason),
                _ => style.yellow(&reason),
            };
            let _ = write!(
                line,
                "{painted}  {:svc_w$}  {}",
                row.service,
                style.dim(&row.text)
            );
        }
        if Some(i) == marked {
            let _ = write!(line, "  {}", style.red(&style.bold(FIRST_DEVIATION)));
            deviation_shown = true;
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if let (Some((at, svc)), false) = (&first_deviation, deviation_shown) {
        // The failing measurement itself was dropped from the bounded history; the time is kept.
        let _ = writeln!(
            out,
            "{}  {}  {} ({}the measurement itself is no longer kept)",
            at.to_zoned(zone.clone()).strftime("%H:%M:%S"),
            start
                .map(|s| format!("+{}", text::duration(since(s, *at))))
                .unwrap_or_default(),
            style.red(&style.bold(FIRST_DEVIATION)),
            svc.as_ref().map(|s| format!("{s}; ")).unwrap_or_default()
        );
    }
    out
}

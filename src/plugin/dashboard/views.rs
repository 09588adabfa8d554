//! What a dashboard page gets: the list of releases and one train, as JSON
//! built by the same view code the terminal uses (waves, bake left, risk,
//! the timeline's history and the report's document), so the page and
//! `kubectl signalman get` can never tell two stories.
//!
//! Pure: a Release (or many) and the time in, a serializable view out.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use kube::ResourceExt;
use serde::Serialize;

use crate::api::{GateKind, MemberKind, Outcome, Phase, Release, ReleaseStatus, ServicePhase};
use crate::text;
use signalman_core::policy;

use super::super::report::{self, Audience, Document};
use super::super::steer::{self, Refusal, Steer};
use super::super::style::Style;
use super::super::timeline;
use super::super::untrusted;
use super::super::view;

/// One row of the list.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRow {
    pub namespace: String,
    pub name: String,
    pub phase: Phase,
    /// `paused` or `stalled` beside the phase, as `get` shows it.
    pub note: Option<&'static str>,
    pub owner: String,
    pub current_wave: Option<String>,
    pub progress: Option<String>,
    pub risk: Option<String>,
    pub created_at: Option<Timestamp>,
    /// `3m12s`, counted from `created_at` when the view was built.
    pub age: Option<String>,
}

/// Every release the dashboard sees, newest first.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListView {
    pub releases: Vec<ListRow>,
    /// The namespaces and phases present, for the page's filters.
    pub namespaces: Vec<String>,
    pub phases: Vec<Phase>,
}

pub fn list_view<'a>(releases: impl IntoIterator<Item = &'a Release>, now: Timestamp) -> ListView {
    let mut rows: Vec<ListRow> = releases.into_iter().map(|r| list_row(r, now)).collect();
    rows.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)))
    });
    let mut namespaces: Vec<String> = rows.iter().map(|r| r.namespace.clone()).collect();
    namespaces.sort();
    namespaces.dedup();
    let phases = Phase::ALL
        .iter()
        .copied()
        .filter(|p| rows.iter().any(|r| r.phase == *p))
        .collect();
    ListView {
        releases: rows,
        namespaces,
        phases,
    }
}

fn list_row(r: &Release, now: Timestamp) -> ListRow {
    // Only these few strings are shown: escaping them one by one, not the
    // whole Release as the detailed views do, keeps a list of hundreds cheap.
    let shown = |s: &str| untrusted::escape(s).into_owned();
    let status = r.status.as_ref();
    let phase = status.and_then(|s| s.phase).unwrap_or_default();
    let note = if status.is_some_and(|s| view::stalled(s).is_some()) {
        Some("stalled")
    } else if r.spec.paused == Some(true) && !phase.is_final() {
        Some("paused")
    } else {
        None
    };
    let created_at = r.metadata.creation_timestamp.as_ref().map(|t| t.0);
    ListRow {
        namespace: shown(&r.namespace().unwrap_or_default()),
        name: shown(&r.name_any()),
        phase,
        note,
        owner: shown(&r.spec.owner),
        current_wave: status.and_then(|s| s.current_wave.as_deref()).map(shown),
        progress: status.and_then(|s| s.progress.as_deref()).map(shown),
        risk: status.and_then(view::risk_line).as_deref().map(shown),
        created_at,
        age: created_at.map(|c| text::duration(view::since(c, now))),
    }
}

/// One release train, everything the page draws.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrainView {
    pub namespace: String,
    pub name: String,
    pub phase: Phase,
    pub owner: String,
    pub summary: Option<String>,
    pub risk: Option<String>,
    pub current_wave: Option<String>,
    pub progress: Option<String>,
    pub message: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub paused: bool,
    pub hold: Option<HoldView>,
    pub rollback: Option<RollbackView>,
    /// Service names per wave, first wave first.
    pub waves: Vec<Vec<String>>,
    pub nodes: Vec<Node>,
    /// `dependsOn`, as edges from the dependency to its dependent.
    pub edges: Vec<Edge>,
    /// The order services are restored in on a rollback.
    pub rollback_order: Vec<String>,
    /// The services restored so far, in the order they were.
    pub restored: Vec<String>,
    pub metrics: Vec<ServiceMetrics>,
    pub timeline: TimelineView,
    /// The completion report for engineering, once the release has ended.
    pub report: Option<Document>,
    /// What each button would do now, as the commands decide it.
    pub actions: Actions,
    /// `kubectl signalman get NAME` as plain text, for those who read it there.
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HoldView {
    pub id: String,
    pub reason: String,
    pub message: String,
    pub service: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackView {
    pub reason: String,
    pub message: String,
    pub service: Option<String>,
    pub metric: Option<String>,
    pub at: Timestamp,
    pub first_deviation_at: Option<Timestamp>,
}

/// A service in the graph.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub service: String,
    /// Counted from 1.
    pub wave: usize,
    pub phase: ServicePhase,
    /// `deployment`, `job` or `flag`.
    pub kind: &'static str,
    pub owner: String,
    pub weight: i32,
    pub effective_weight: Option<i32>,
    /// The current step, counted from 1 as `get` shows it, and how many there are.
    pub step: Option<i32>,
    pub steps: usize,
    /// `bake 1:20 left`, `baked, passing`, ... as `get` says it; empty when not baking.
    pub bake: String,
    pub message: Option<String>,
    pub depends_on: Vec<String>,
    /// Its place (from 1) in the rollback order.
    pub rollback_position: Option<usize>,
    /// Its place (from 1) among the services restored so far.
    pub restored_position: Option<usize>,
    /// Its metric breached: the rollback began here.
    pub breached: bool,
    pub awaiting_approval: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMetrics {
    pub service: String,
    pub metrics: Vec<MetricSeries>,
}

/// One metric's measurements still kept in status, oldest first, with its threshold.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricSeries {
    pub name: String,
    /// What passes, in the controller's words (`<= 0.05`, `canary ≤ stable + 0.005`).
    pub bound: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Judged against the stable pods: the band moves with them.
    pub compare: bool,
    pub points: Vec<Point>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    pub at: Timestamp,
    pub value: Option<f64>,
    pub stable: Option<f64>,
    pub outcome: Outcome,
    /// Counted from 1.
    pub step: i32,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineView {
    pub start: Option<Timestamp>,
    pub first_deviation_at: Option<Timestamp>,
    pub first_deviation_service: Option<String>,
    /// The first deviation's own row is no longer kept (bounded history); its time is.
    pub first_deviation_dropped: bool,
    pub rows: Vec<TimelineRow>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineRow {
    pub at: Timestamp,
    /// An entry of `status.timeline`, or a measurement.
    pub measurement: bool,
    pub reason: String,
    pub service: String,
    pub text: String,
    pub outcome: Option<Outcome>,
    pub first_deviation: bool,
}

/// The buttons: each says what it would do, or why it would not.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Actions {
    pub pause: Action,
    pub resume: Action,
    pub abort: Action,
    /// The approvals the release waits for now.
    pub approvals: Vec<Approval>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    /// Pressing it would patch the Release.
    pub possible: bool,
    /// What it would do, or why not: the command's own sentence.
    pub says: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// `gate` or `step`.
    pub kind: &'static str,
    /// The gate's name, or `SERVICE/N` for a step (as `approve --step` takes it).
    pub target: String,
    pub label: String,
}

fn action(decided: Result<Steer, Refusal>) -> Action {
    match decided {
        Ok(s) => Action {
            possible: true,
            says: s.says,
        },
        Err(r) => Action {
            possible: false,
            says: r.message,
        },
    }
}

pub fn train_view(original: &Release, now: Timestamp) -> TrainView {
    // Decisions (what a button would do) from the object as it is; the text
    // shown from the escaped copy, as the terminal views do.
    let actions = Actions {
        pause: action(steer::pause(original)),
        resume: action(steer::resume(original)),
        abort: action(steer::abort(original)),
        approvals: approvals(original),
    };
    let r = untrusted::escaped(original);
    let r = r.as_ref();
    let status = r.status.clone().unwrap_or_default();
    let phase = status.phase.unwrap_or_default();
    let waves = view::waves(r, &status);
    let rollback_order = status
        .plan
        .as_ref()
        .map(|p| p.rollback_order.clone())
        .unwrap_or_default();
    let restored = restored(&status);
    let breached = status
        .rollback
        .as_ref()
        .filter(|rb| rb.reason == crate::api::RollbackReason::Breach)
        .and_then(|rb| rb.service.clone());
    let eff = policy::effective(r);

    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    let mut metrics = Vec::new();
    for (i, wave) in waves.iter().enumerate() {
        for name in wave {
            let Some(spec) = eff.service(name) else {
                continue;
            };
            let st = status.service_or_new(name);
            let kind = match spec.kind() {
                MemberKind::Deployment { .. } => "deployment",
                MemberKind::Job(_) => "job",
                MemberKind::Flag(_) => "flag",
            };
            let baking = st.phase == ServicePhase::Progressing && status.hold.is_none();
            nodes.push(Node {
                service: name.clone(),
                wave: i + 1,
                phase: st.phase,
                kind,
                owner: spec.owner.clone().unwrap_or_else(|| r.spec.owner.clone()),
                weight: st.weight,
                effective_weight: st.effective_weight,
                step: st.step.map(|s| s + 1),
                steps: eff.steps_of(spec).len(),
                bake: if baking && !st.awaiting_approval {
                    view::bake_left(&eff, spec, &st, now)
                } else {
                    String::new()
                },
                message: st.message.clone(),
                depends_on: spec.depends_on.clone(),
                rollback_position: rollback_order.iter().position(|n| n == name).map(|p| p + 1),
                restored_position: restored.iter().position(|n| n == name).map(|p| p + 1),
                breached: breached.as_deref() == Some(name.as_str()),
                awaiting_approval: st.awaiting_approval,
            });
            edges.extend(spec.depends_on.iter().map(|d| Edge {
                from: d.clone(),
                to: name.clone(),
            }));
            if !matches!(spec.kind(), MemberKind::Job(_)) {
                let analysis = eff.analysis_of(spec);
                let series: Vec<MetricSeries> = analysis
                    .metrics
                    .iter()
                    .map(|m| MetricSeries {
                        name: m.name.clone(),
                        bound: view::bound(m),
                        min: m.min,
                        max: m.max,
                        compare: m.compare.is_some(),
                        points: st
                            .measurements
                            .iter()
                            .filter(|x| x.metric == m.name)
                            .map(|x| Point {
                                at: x.at.0,
                                value: x.value,
                                stable: x.stable_value,
                                outcome: x.outcome,
                                step: x.step + 1,
                            })
                            .collect(),
                    })
                    .collect();
                if series.iter().any(|s| !s.points.is_empty()) {
                    metrics.push(ServiceMetrics {
                        service: name.clone(),
                        metrics: series,
                    });
                }
            }
        }
    }

    TrainView {
        namespace: r.namespace().unwrap_or_default(),
        name: r.name_any(),
        phase,
        owner: r.spec.owner.clone(),
        summary: r.spec.summary.clone(),
        risk: view::risk_line(&status),
        current_wave: status.current_wave.clone(),
        progress: status.progress.clone(),
        message: status.message.clone(),
        started_at: status.started_at.as_ref().map(|t| t.0),
        finished_at: status.finished_at.as_ref().map(|t| t.0),
        paused: r.spec.paused == Some(true) && !phase.is_final(),
        hold: status.hold.as_ref().map(|h| HoldView {
            id: h.id.clone(),
            reason: h.reason.to_string(),
            message: h.message.clone(),
            service: h.service.clone(),
        }),
        rollback: status.rollback.as_ref().map(|rb| RollbackView {
            reason: rb.reason.to_string(),
            message: rb.message.clone(),
            service: rb.service.clone(),
            metric: rb.metric.clone(),
            at: rb.at.0,
            first_deviation_at: rb.first_deviation_at.as_ref().map(|t| t.0),
        }),
        waves,
        nodes,
        edges,
        rollback_order,
        restored,
        metrics,
        timeline: timeline_view(r),
        report: report::document(r, Audience::Engineering).ok(),
        actions,
        text: view::render_release(r, now, &TimeZone::UTC, Style::plain()),
    }
}

/// The services restored so far in the order they were: the report's list
/// once written, before that the `Restored` entries of the timeline (what
/// the report is built from).
fn restored(status: &ReleaseStatus) -> Vec<String> {
    if let Some(rb) = status.report.as_ref().and_then(|r| r.rollback.as_ref()) {
        return rb.restored.clone();
    }
    let Some(cause) = &status.rollback else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for e in &status.timeline {
        if e.at < cause.at || !matches!(e.reason.as_str(), "Restored" | "FlagRestored") {
            continue;
        }
        if let Some(s) = &e.service
            && !out.contains(s)
        {
            out.push(s.clone());
        }
    }
    out
}

fn timeline_view(r: &Release) -> TimelineView {
    let h = timeline::history(r);
    TimelineView {
        start: h.start,
        first_deviation_at: h.first_deviation.as_ref().map(|(at, _)| *at),
        first_deviation_service: h.first_deviation.as_ref().and_then(|(_, s)| s.clone()),
        first_deviation_dropped: h.first_deviation.is_some() && h.marked.is_none(),
        rows: h
            .rows
            .into_iter()
            .enumerate()
            .map(|(i, row)| TimelineRow {
                at: row.at,
                measurement: row.kind == 1,
                reason: row.reason,
                service: row.service,
                text: row.text,
                outcome: row.outcome,
                first_deviation: h.marked == Some(i),
            })
            .collect(),
    }
}

/// The gates and steps that wait for an approval now.
fn approvals(r: &Release) -> Vec<Approval> {
    let Some(status) = &r.status else {
        return Vec::new();
    };
    if status.phase.unwrap_or_default().is_final() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut seen = BTreeMap::new();
    for g in &status.gates {
        if g.kind == GateKind::Approval && !g.holds && seen.insert(g.name.clone(), ()).is_none() {
            out.push(Approval {
                kind: "gate",
                target: g.name.clone(),
                label: format!("gate {}", g.name),
            });
        }
    }
    for s in &status.services {
        if s.awaiting_approval && s.phase == ServicePhase::Progressing {
            let n = s.step.unwrap_or_default() + 1;
            out.push(Approval {
                kind: "step",
                target: format!("{}/{n}", s.name),
                label: format!("step {n} of {}", s.name),
            });
        }
    }
    out
}

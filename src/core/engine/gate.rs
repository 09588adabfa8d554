//! Go/no-go gates before a wave begins: the wave's Deployments are ready,
//! the Release's query and approval gates hold, and before the first wave
//! the profile's approval (`approval`) and a hotfix's review (`review`).
//! A query result counts only when taken for this wave, after the wait began.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::context::{Ctx, plus};
use super::{GateRequest, QueryResult};
use crate::api::{Gate, GateKind, GateStatus, Phase, Release};
use crate::policy::approval::Target;
use crate::policy::{self, DEPLOYMENTS_READY};
use crate::text;

/// How often a query gate is checked while the release waits on it, unless it says.
pub(super) const INTERVAL: Duration = Duration::from_secs(30);
/// How soon a gate nobody checked yet is asked for.
pub(super) const FIRST_CHECK: Duration = Duration::from_secs(1);
/// How soon the gates are looked at again when no watch wakes the controller first.
pub(super) const RECHECK: Duration = Duration::from_secs(30);

pub(super) enum Verdict {
    Hold,
    Wait(String),
    TimedOut(String),
}

/// The release has go/no-go gates at all: a policy, gates of its own, or a
/// hotfix's review. Without any, waves begin as they always did.
pub(super) fn gated(cx: &Ctx) -> bool {
    cx.st.policy.as_ref().is_some_and(|p| p.name.is_some())
        || !cx.raw.gates.is_empty()
        || policy::is_hotfix(cx.raw)
}

/// Check the gates before wave `wave` (from 1) of `services`; `status.gates`
/// shows every gate. On a wait the wake-up is set and `awaitingSince` kept.
pub(super) fn check(cx: &mut Ctx, wave: usize, services: &[String]) -> Verdict {
    let w = wave as i32;
    let since = cx.st.awaiting_since.clone().map_or(cx.now, |t| t.0);
    let mut gates = vec![deployments_ready(cx, w, services)];
    for g in &cx.raw.gates {
        gates.push(if g.approval == Some(true) {
            approval(cx, &g.name, w)
        } else {
            query(cx, g, w, Some(since), &cx.st.gates)
        });
    }
    if wave == 1
        && let Some(name) = policy::start_gate(cx.raw, cx.approval_rules())
    {
        gates.push(approval(cx, name, w));
    }
    let failing: Vec<String> = gates
        .iter()
        .filter(|g| !g.holds)
        .map(|g| format!("{}: {}", g.name, g.reason))
        .collect();
    let unchecked = gates
        .iter()
        .any(|g| g.kind == GateKind::Query && g.checked_at.is_none());
    cx.st.gates = gates;
    if failing.is_empty() {
        cx.st.awaiting_since = None;
        let names: Vec<&str> = cx.st.gates.iter().map(|g| g.name.as_str()).collect();
        let message = format!("wave {wave}: every gate holds ({})", names.join(", "));
        cx.record("GatesPassed", None, message);
        return Verdict::Hold;
    }
    let since = cx.st.awaiting_since.get_or_insert(Time(cx.now)).clone();
    let what = format!("before wave {wave}: {}", failing.join("; "));
    let timeout = cx
        .st
        .policy
        .as_ref()
        .and_then(|p| p.gate_timeout)
        .map(Duration::from);
    if let Some(t) = timeout {
        let end = plus(since.0, t);
        if cx.now >= end {
            return Verdict::TimedOut(format!(
                "the gates did not hold within gateTimeout {} {what}",
                text::duration(t)
            ));
        }
        cx.wake_at(end);
    }
    if unchecked {
        cx.wake_in(FIRST_CHECK);
    }
    for g in &cx.raw.gates {
        let checked = cx
            .st
            .gates
            .iter()
            .find(|s| s.name == g.name)
            .and_then(|s| s.checked_at.clone());
        if g.query.is_some()
            && let Some(at) = checked
        {
            cx.wake_at(plus(at.0, interval(g)));
        }
    }
    cx.wake_in(RECHECK);
    Verdict::Wait(format!("waits for its go/no-go gates {what}"))
}

pub(super) fn interval(g: &Gate) -> Duration {
    g.interval.map_or(INTERVAL, Duration::from)
}

fn status(
    name: &str,
    kind: GateKind,
    holds: bool,
    reason: String,
    w: i32,
    now: Timestamp,
) -> GateStatus {
    GateStatus {
        name: name.to_owned(),
        kind,
        holds,
        value: None,
        query: None,
        reason,
        checked_at: Some(Time(now)),
        wave: w,
    }
}

fn deployments_ready(cx: &Ctx, w: i32, services: &[String]) -> GateStatus {
    let ns = cx.namespace();
    // Jobs and flags have no Deployment, and a held or deferred service does not start.
    let not: Vec<String> = services
        .iter()
        .filter_map(|name| {
            let svc = cx.spec.service(name)?;
            let deployment = svc.deployment()?;
            if svc.hold.is_some() || cx.service_phase(name) == Some(crate::api::ServicePhase::Deferred) {
                return None;
            }
            match &cx.seen(name).stable {
                None => Some(format!("Deployment {deployment:?} does not exist")),
                Some(s) if s.paused => Some(format!(
                    "Deployment {deployment:?} is paused (kubectl rollout resume deployment/{deployment} -n {ns})"
                )),
                Some(s) if !s.rolled_out => Some(format!("Deployment {deployment:?} is mid-rollout")),
                Some(_) => None,
            }
        })
        .collect();
    let reason = if not.is_empty() {
        format!("every Deployment of wave {w} exists, is rolled out and is not paused")
    } else {
        not.join("; ")
    };
    status(
        DEPLOYMENTS_READY,
        GateKind::Cluster,
        not.is_empty(),
        reason,
        w,
        cx.now,
    )
}

pub(super) fn approval(cx: &Ctx, name: &str, w: i32) -> GateStatus {
    let target = Target::Gate(name);
    let verdict = cx.approval(&target);
    let reason = verdict.reason(&target, cx.release_name());
    status(
        name,
        GateKind::Approval,
        verdict.approved_by.is_some(),
        reason,
        w,
        cx.now,
    )
}

/// The latest result of query gate `g` for wave `w`: this decision's, else the
/// last one in `earlier` (a status's gates); with `since`, only results taken
/// from then on count.
pub(super) fn query(
    cx: &Ctx,
    g: &Gate,
    w: i32,
    since: Option<Timestamp>,
    earlier: &[GateStatus],
) -> GateStatus {
    let counts = |at: Timestamp| since.is_none_or(|s| at >= s);
    let taken = cx
        .obs
        .gates
        .iter()
        .filter(|t| t.gate == g.name && counts(t.at))
        .max_by_key(|t| t.at);
    if let Some(t) = taken {
        let (holds, value, reason) = judge(g, &t.result);
        return GateStatus {
            name: g.name.clone(),
            kind: GateKind::Query,
            holds,
            value,
            query: t.query.clone(),
            reason,
            checked_at: Some(Time(t.at)),
            wave: w,
        };
    }
    let before = earlier.iter().find(|s| {
        s.name == g.name
            && s.kind == GateKind::Query
            && s.wave == w
            && s.checked_at.as_ref().is_some_and(|c| counts(c.0))
    });
    before.cloned().unwrap_or_else(|| GateStatus {
        name: g.name.clone(),
        kind: GateKind::Query,
        holds: false,
        value: None,
        query: None,
        reason: "not checked yet".to_owned(),
        checked_at: None,
        wave: w,
    })
}

pub(super) fn judge(g: &Gate, result: &QueryResult) -> (bool, Option<f64>, String) {
    let bounds = text::threshold(g.min, g.max);
    match result {
        QueryResult::Value(v) if v.is_nan() => (
            false,
            None,
            "the query returned NaN, which does not hold".to_owned(),
        ),
        QueryResult::Value(v) => {
            let holds = g.min.is_none_or(|lo| *v >= lo) && g.max.is_none_or(|hi| *v <= hi);
            let reason = if holds {
                format!("{v} is {bounds}")
            } else {
                format!("{v} is not {bounds}")
            };
            (holds, Some(*v), reason)
        }
        QueryResult::NoData => (
            false,
            None,
            "the query returned no data, which does not hold".to_owned(),
        ),
        QueryResult::Error(e) => (false, None, format!("the query failed: {e}")),
    }
}

/// The query gates to check now for `release`: while it waits for its gates
/// (before its first wave or a later one), each gate not checked for this
/// wave yet, or not within its `interval`; and the query gates of each
/// service whose turn came and that waits on them (`spec.services[].gates`;
/// [`crate::api::ReleaseSpec::gate`] finds a gate by its name).
pub fn due_gates(release: &Release, now: Timestamp) -> Vec<GateRequest> {
    let Some(st) = &release.status else {
        return Vec::new();
    };
    let phase = st.phase.unwrap_or_default();
    let stopping = release.spec.paused == Some(true)
        || release.spec.abort == Some(true)
        || release.metadata.deletion_timestamp.is_some();
    if phase.is_final() || stopping || matches!(phase, Phase::Held | Phase::RollingBack) {
        return Vec::new();
    }
    let mut out = Vec::new();
    if let Some(since) = &st.awaiting_since {
        let wave = st.gates.first().map_or(0, |g| g.wave);
        out.extend(
            release
                .spec
                .gates
                .iter()
                .filter(|g| g.query.is_some())
                .filter(|g| {
                    let last = st
                        .gates
                        .iter()
                        .find(|s| s.name == g.name && s.wave == wave)
                        .and_then(|s| s.checked_at.as_ref())
                        .filter(|c| c.0 >= since.0);
                    last.is_none_or(|c| now >= plus(c.0, interval(g)))
                })
                .map(|g| GateRequest {
                    gate: g.name.clone(),
                }),
        );
    }
    // A service's own gates, from when its turn came (its gates are in its
    // status) until it starts or is deferred.
    for s in &st.services {
        if s.phase != crate::api::ServicePhase::Pending || s.gates.is_empty() {
            continue;
        }
        let Some(svc) = release.spec.service(&s.name) else {
            continue;
        };
        for g in svc.gates.iter().filter(|g| g.query.is_some()) {
            let last = s
                .gates
                .iter()
                .find(|x| x.name == g.name)
                .and_then(|x| x.checked_at.as_ref());
            if last.is_none_or(|c| now >= plus(c.0, interval(g))) {
                out.push(GateRequest {
                    gate: g.name.clone(),
                });
            }
        }
    }
    out
}

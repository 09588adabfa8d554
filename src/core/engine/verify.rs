//! Verification (`spec.verify`): the whole promoted train watched for its
//! bake before the release succeeds.
//!
//! It is judged like a step (`interval`, `minPasses`, the limits), by metrics
//! of the train rather than of one service: a breach reverses the entire
//! train in rollback order, errors or inconclusive measurements beyond their
//! limits hold it, and a hold or a pause lifted starts the bake again, as for
//! a step. Deletion and `spec.abort` reverse it as mid-train.

use jiff::Timestamp;

use super::context::{Ctx, plus, until};
use super::progress::{self, Beyond, Breach, Verdict};
use super::{Judged, MeasurementRequest};
use crate::api::{
    Analysis, HoldReason, Outcome, Phase, ReleaseSpec, ReleaseStatus, VerificationStatus,
};
use crate::text;

/// Every service is promoted (or deferred): verify the train when
/// `spec.verify` asks for it, else the release has succeeded.
pub(super) fn train_promoted(cx: &mut Ctx) {
    let Some(verify) = &cx.spec.verify else {
        return super::finish::succeeded(cx);
    };
    let bake: std::time::Duration = verify.bake.into();
    let metrics: Vec<&str> = verify
        .analysis
        .metrics
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    let now = cx.time();
    // Measurements of an earlier verification (before a hold or a pause) stay on record.
    let measurements = cx
        .st
        .verification
        .take()
        .map(|v| v.measurements)
        .unwrap_or_default();
    cx.st.verification = Some(VerificationStatus {
        started_at: now.clone(),
        ends_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(plus(now.0, bake)),
        tally: Vec::new(),
        measurements,
    });
    cx.set_phase(Phase::Verifying);
    cx.record(
        "VerifyStarted",
        None,
        format!(
            "every service is promoted; verifying the train for {} with {}",
            text::duration(bake),
            metrics.join(", ")
        ),
    );
    watch(cx);
}

/// A decision while the train is verified.
pub(super) fn run(cx: &mut Ctx) {
    let spec_changed = cx.spec_changed();
    let stopping = cx.spec.paused == Some(true) || cx.spec.abort == Some(true) || cx.deleting();
    if cx.st.hold.is_none() && !spec_changed && !stopping {
        let verdict = ingest(cx);
        if let Some(breach) = verdict.breach {
            return progress::breached(cx, breach);
        }
        if let Some((reason, service, message)) = verdict.hold {
            super::hold::place(cx, reason, service, message);
        }
    }
    if progress::stopped(cx, spec_changed, false) {
        return;
    }
    watch(cx);
}

/// The analysis verification is judged by.
fn analysis(spec: &ReleaseSpec) -> Option<&Analysis> {
    spec.verify.as_ref().map(|v| &v.analysis)
}

/// The bake is over and every metric has its passes: the release has
/// succeeded. Otherwise wake for the next measurement and the bake's end.
fn watch(cx: &mut Ctx) {
    // Verifying without a verification on record (a status written by
    // something else): begin it, rather than wait for nothing.
    let (Some(a), Some(v)) = (analysis(cx.spec), cx.st.verification.clone()) else {
        return train_promoted(cx);
    };
    let bake = until(v.started_at.0, v.ends_at.0);
    let short = progress::short_of_passes(a, &v.tally, bake);
    if cx.now >= v.ends_at.0 && short.is_empty() {
        let passes: Vec<String> = v
            .tally
            .iter()
            .map(|t| format!("{} {}", t.metric, t.passed))
            .collect();
        cx.record(
            "Verified",
            None,
            format!(
                "the train passed verification ({} passing measurements)",
                passes.join(", ")
            ),
        );
        return super::finish::succeeded(cx);
    }
    if cx.now < v.ends_at.0 {
        cx.wake_at(v.ends_at.0);
    }
    progress::wake_for_measurements(cx, a, &v.tally, &v.started_at);
}

/// The verify measurements due now: each metric one `interval` after its last
/// measurement (or after verification began), for the whole train (`service` empty).
pub(super) fn due(
    spec: &ReleaseSpec,
    st: &ReleaseStatus,
    now: Timestamp,
) -> Vec<MeasurementRequest> {
    let (Some(a), Some(v)) = (analysis(spec), &st.verification) else {
        return Vec::new();
    };
    a.metrics
        .iter()
        .filter(|m| {
            let last = v
                .tally
                .iter()
                .find(|t| t.metric == m.name)
                .and_then(|t| t.last_at.as_ref());
            now >= plus(last.unwrap_or(&v.started_at).0, a.interval())
        })
        .map(|m| MeasurementRequest {
            service: String::new(),
            metric: m.name.clone(),
            step: 0,
        })
        .collect()
}

/// Count this decision's verify measurements and say whether a limit broke.
fn ingest(cx: &mut Ctx) -> Verdict {
    let mut verdict = Verdict::default();
    let (Some(a), Some(mut v)) = (analysis(cx.spec), cx.st.verification.take()) else {
        return verdict;
    };
    let mut taken: Vec<&super::Taken> = cx
        .obs
        .measurements
        .iter()
        .filter(|t| t.service.is_empty() && t.step == 0)
        .collect();
    taken.sort_by_key(|t| t.at);
    let mut failed = Vec::new();
    for t in taken {
        let Some(metric) = a.metrics.iter().find(|m| m.name == t.metric) else {
            continue;
        };
        let last = v
            .tally
            .iter()
            .find(|m| m.metric == t.metric)
            .and_then(|m| m.last_at.as_ref());
        // A measurement before it was due (a stale or repeated one) is not evidence.
        if t.at < plus(last.unwrap_or(&v.started_at).0, a.interval()) {
            continue;
        }
        let m = progress::measurement(metric, t, a.no_data.unwrap_or_default());
        cx.judged.push(Judged {
            service: String::new(),
            metric: t.metric.clone(),
            outcome: m.outcome,
        });
        progress::count(&mut v.tally, &m, t.query.as_ref());
        if m.outcome == Outcome::Fail {
            failed.push(format!(
                "verification: {} = {}, threshold {}",
                t.metric,
                progress::shown(&m),
                crate::analysis::threshold(metric, m.stable_value)
            ));
        }
        progress::keep(&mut v.measurements, m);
    }
    for message in failed {
        cx.record("MeasurementFailed", None, message);
    }
    for t in &v.tally {
        match progress::beyond(t, a) {
            Some(Beyond::Failures) if verdict.breach.is_none() => {
                let Some(metric) = a.metrics.iter().find(|m| m.name == t.metric) else {
                    continue;
                };
                let (value, threshold) = progress::breach_value(&v.measurements, metric, 0);
                verdict.breach = Some(Breach {
                    service: None,
                    message: format!(
                        "verification: {} failed {} measurement(s), more than failureLimit {}",
                        t.metric,
                        t.failed,
                        a.failure_limit()
                    ),
                    first_deviation: t.first_failed_at.clone(),
                    metric: t.metric.clone(),
                    value,
                    threshold,
                });
            }
            Some(Beyond::Errors) if verdict.hold.is_none() => {
                verdict.hold = Some((
                    HoldReason::ErrorLimit,
                    None,
                    format!(
                        "verification: {} could not be measured {} times, more than errorLimit {}{}; \
                         fix the query or Prometheus (resuming verifies the train again from the start)",
                        t.metric,
                        t.errors,
                        a.error_limit(),
                        progress::last_error(&v.measurements, &t.metric)
                    ),
                ));
            }
            Some(Beyond::Inconclusive) if verdict.hold.is_none() => {
                verdict.hold = Some((
                    HoldReason::InconclusiveLimit,
                    None,
                    format!(
                        "verification: {} was inconclusive {} times, more than inconclusiveLimit {}; \
                         check that the query sees the train's traffic (resuming verifies the train \
                         again from the start)",
                        t.metric,
                        t.inconclusive,
                        a.inconclusive_limit()
                    ),
                ));
            }
            _ => {}
        }
    }
    cx.st.verification = Some(v);
    verdict
}

/// The release's message while verifying: the time left, and the passing
/// measurements still missing.
pub(super) fn message(cx: &Ctx) -> String {
    let Some(v) = &cx.st.verification else {
        return "verifying the train".to_owned();
    };
    let left = until(cx.now, v.ends_at.0);
    let mut out = if left.is_zero() {
        "verifying the train: its bake is over".to_owned()
    } else {
        format!("verifying the train: {} left", text::duration(left))
    };
    if let Some(a) = analysis(cx.spec) {
        let short = progress::short_of_passes(a, &v.tally, until(v.started_at.0, v.ends_at.0));
        if !short.is_empty() {
            out.push_str(&format!("; passing measurements {}", short.join(", ")));
        }
    }
    out
}

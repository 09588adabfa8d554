//! Operator metrics, exposed on `/metrics` in the OpenMetrics text format.
//!
//! Two kinds of series. Gauges that describe releases as they are now
//! (`signalman_releases{phase}`, `signalman_service_weight`) are computed at
//! scrape time from the controller's Release cache, so a deleted release
//! leaves no stale series and a follower replica (no cache) exports none.
//! Counters and histograms that describe what happened (measurements, breaches,
//! rollbacks, breach-to-weight-zero time, reconciles) are fed by the leader from
//! the status transitions it writes: [`Metrics::record_transition`] compares
//! the status a release had with the one the engine decided.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use kube::ResourceExt;
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::api::{Phase, Release, ReleaseStatus};

/// Content type of [`Metrics::encode`]'s output.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

const ALL_PHASES: [Phase; 8] = [
    Phase::Pending,
    Phase::AwaitingGates,
    Phase::Progressing,
    Phase::Paused,
    Phase::RollingBack,
    Phase::Succeeded,
    Phase::RolledBack,
    Phase::Failed,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MeasurementLabels {
    namespace: String,
    service: String,
    metric: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    namespace: String,
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RollbackLabels {
    namespace: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    kind: String,
    verb: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MetricLabels {
    namespace: String,
    release: String,
    service: String,
    metric: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WeightLabels {
    namespace: String,
    release: String,
    service: String,
}

/// The operator's metrics. Cheap to clone: every clone feeds the same registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    measurements: Family<MeasurementLabels, Counter>,
    breaches: Family<ServiceLabels, Counter>,
    rollbacks: Family<RollbackLabels, Counter>,
    breach_to_weight_zero: Histogram,
    reconcile_duration: Histogram,
    reconcile_errors: Family<ErrorLabels, Counter>,
    reconciles: Counter,
    leader: Gauge,
    writes: Family<WriteLabels, Counter>,
    writes_total: Arc<AtomicU64>,
    last_value: Family<MetricLabels, Gauge<f64, AtomicU64>>,
    releases: Arc<OnceLock<Store<Release>>>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix("signalman");
        let measurements = Family::<MeasurementLabels, Counter>::default();
        registry.register(
            "measurements",
            "Analysis measurements taken, by outcome (Pass, Fail, Inconclusive, Error)",
            measurements.clone(),
        );
        let breaches = Family::<ServiceLabels, Counter>::default();
        registry.register(
            "breaches",
            "Breaches: a service's failed measurements exceeded the failure limit",
            breaches.clone(),
        );
        let rollbacks = Family::<RollbackLabels, Counter>::default();
        registry.register(
            "rollbacks",
            "Rollbacks begun, by reason (Breach, Abort, HoldTimeout)",
            rollbacks.clone(),
        );
        // A rollback is only as good as how fast the bad canary stops taking
        // traffic; seconds to a few minutes (a long analysis interval) is the range.
        let breach_to_weight_zero =
            Histogram::new([0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0]);
        registry.register(
            "breach_to_weight_zero_seconds",
            "Time from the first failing measurement of the breaching step until canary traffic was set to 0",
            breach_to_weight_zero.clone(),
        );
        let reconcile_duration = Histogram::new([
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]);
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile of a Release took (observe, measure, decide, act, write status)",
            reconcile_duration.clone(),
        );
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconciles that ended in an error, by kind of error",
            reconcile_errors.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease (or runs without leader election), else 0",
            leader.clone(),
        );
        let reconciles = Counter::default();
        registry.register(
            "reconciles",
            "Reconciles of a Release begun",
            reconciles.clone(),
        );
        // Every write to the API server, so "a follower makes no writes" is a
        // number one can watch, not a promise.
        let writes = Family::<WriteLabels, Counter>::default();
        registry.register(
            "api_writes",
            "Writes to the Kubernetes API by kind and verb (apply, create, patch, delete)",
            writes.clone(),
        );
        let last_value = Family::<MetricLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "measurement_value",
            "The value of the latest measurement of each metric",
            last_value.clone(),
        );
        let releases = Arc::new(OnceLock::new());
        registry.register_collector(Box::new(ReleaseCollector {
            store: releases.clone(),
        }));
        Metrics {
            registry: Arc::new(root),
            measurements,
            breaches,
            rollbacks,
            breach_to_weight_zero,
            reconcile_duration,
            reconcile_errors,
            reconciles,
            leader,
            writes,
            writes_total: Arc::default(),
            last_value,
            releases,
        }
    }

    /// Export the releases in `store` (the controller's cache) as
    /// `signalman_releases` and `signalman_service_weight`. The first store wins.
    pub fn watch_releases(&self, store: Store<Release>) {
        let _ = self.releases.set(store);
    }

    /// Count what changed between the status `release` has and `new`, the one
    /// just written: new measurements by outcome and the start of a rollback.
    /// Call it only for a status actually written, so nothing counts twice.
    pub fn record_transition(&self, release: &Release, new: &ReleaseStatus) {
        let namespace = release.namespace().unwrap_or_default();
        let old = release.status.as_ref();
        for service in &new.services {
            let before = old.and_then(|o| o.services.iter().find(|s| s.name == service.name));
            for m in &service.measurements {
                let seen = before.is_some_and(|b| {
                    b.measurements
                        .iter()
                        .any(|o| o.metric == m.metric && o.step == m.step && o.at == m.at)
                });
                if !seen {
                    self.measurements
                        .get_or_create(&MeasurementLabels {
                            namespace: namespace.clone(),
                            service: service.name.clone(),
                            metric: m.metric.clone(),
                            outcome: label(&m.outcome),
                        })
                        .inc();
                }
            }
        }
        let rollback_began = old.is_none_or(|o| o.rollback.is_none());
        if let (true, Some(cause)) = (rollback_began, &new.rollback) {
            self.rollbacks
                .get_or_create(&RollbackLabels {
                    namespace: namespace.clone(),
                    reason: cause.reason.clone(),
                })
                .inc();
            if cause.reason == "Breach" {
                self.breaches
                    .get_or_create(&ServiceLabels {
                        namespace: namespace.clone(),
                        service: cause.service.clone().unwrap_or_default(),
                    })
                    .inc();
            }
        }
    }

    /// Start timing one reconcile; the duration is recorded when the guard drops.
    pub fn reconcile_started(&self) -> ReconcileTimer {
        ReconcileTimer {
            histogram: self.reconcile_duration.clone(),
            started: Instant::now(),
        }
    }

    /// A breach's canary traffic was set to 0 `seconds` after the first failing
    /// measurement of the breaching step.
    pub fn breach_to_zero(&self, seconds: f64) {
        self.breach_to_weight_zero.observe(seconds.max(0.0));
    }

    /// Whether this replica acts: it leads, or runs without leader election.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Count a reconcile begun.
    pub fn reconciled(&self) {
        self.reconciles.inc();
    }

    /// Count one write to the API server.
    pub fn wrote(&self, kind: &str, verb: &str) {
        self.writes
            .get_or_create(&WriteLabels {
                kind: kind.to_owned(),
                verb: verb.to_owned(),
            })
            .inc();
        self.writes_total.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes to the API server so far.
    pub fn writes_total(&self) -> u64 {
        self.writes_total.load(Ordering::Relaxed)
    }

    /// The latest value a metric's query returned.
    pub fn measured(
        &self,
        namespace: &str,
        release: &str,
        service: &str,
        metric: &str,
        value: f64,
    ) {
        self.last_value
            .get_or_create(&MetricLabels {
                namespace: namespace.to_owned(),
                release: release.to_owned(),
                service: service.to_owned(),
                metric: metric.to_owned(),
            })
            .set(value);
    }

    /// Count a failed reconcile; `kind` is the error's short metric label.
    pub fn failed(&self, kind: &str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// The OpenMetrics text exposition, ending in `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; a collector bug would show as a
        // truncated scrape, which Prometheus reports, rather than a crash.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Records the duration of one reconcile when dropped.
pub struct ReconcileTimer {
    histogram: Histogram,
    started: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.started.elapsed().as_secs_f64());
    }
}

/// The serde name of a unit enum variant (`Pass`, `RollingBack`, ...), so
/// label values match what `kubectl get` shows.
fn label<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::from("Unknown"),
    }
}

struct ReleaseCollector {
    store: Arc<OnceLock<Store<Release>>>,
}

impl fmt::Debug for ReleaseCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReleaseCollector").finish_non_exhaustive()
    }
}

impl Collector for ReleaseCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let Some(store) = self.store.get() else {
            return Ok(());
        };
        let releases = store.state();
        let (by_phase, weights) = release_gauges(releases.iter().map(|r| r.as_ref()));
        let m = encoder.encode_descriptor(
            "releases",
            "Releases by phase (Pending includes releases without a status yet)",
            None,
            by_phase.metric_type(),
        )?;
        by_phase.encode(m)?;
        let m = encoder.encode_descriptor(
            "service_weight",
            "Percent of traffic a service's canary should get now, per release",
            None,
            weights.metric_type(),
        )?;
        weights.encode(m)
    }
}

fn release_gauges<'a>(
    releases: impl Iterator<Item = &'a Release>,
) -> (Family<PhaseLabels, Gauge>, Family<WeightLabels, Gauge>) {
    let by_phase = Family::<PhaseLabels, Gauge>::default();
    // Every phase is exported, zeros included, so a dashboard's "RollingBack"
    // panel reads 0 rather than "no data".
    for phase in ALL_PHASES {
        by_phase
            .get_or_create(&PhaseLabels {
                phase: label(&phase),
            })
            .set(0);
    }
    let weights = Family::<WeightLabels, Gauge>::default();
    for release in releases {
        let phase = release
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .unwrap_or_default();
        by_phase
            .get_or_create(&PhaseLabels {
                phase: label(&phase),
            })
            .inc();
        for service in release.status.iter().flat_map(|s| &s.services) {
            weights
                .get_or_create(&WeightLabels {
                    namespace: release.namespace().unwrap_or_default(),
                    release: release.name_any(),
                    service: service.name.clone(),
                })
                .set(i64::from(service.weight));
        }
    }
    (by_phase, weights)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Measurement, Outcome, ReleaseSpec, RollbackCause, ServiceStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn t(secs: i64) -> Time {
        Time(jiff::Timestamp::from_second(secs).unwrap())
    }

    fn release(status: Option<ReleaseStatus>) -> Release {
        let spec: ReleaseSpec = serde_json::from_value(serde_json::json!({
            "owner": "team", "services": [{"name": "api", "deployment": "api", "change": {"images": {"app": "x:2"}}}]
        }))
        .unwrap();
        let mut r = Release::new("train", spec);
        r.metadata.namespace = Some("shop".into());
        r.status = status;
        r
    }

    fn measurement(step: i32, at: i64, outcome: Outcome) -> Measurement {
        Measurement {
            metric: "error-rate".into(),
            step,
            value: Some(0.5),
            outcome,
            message: None,
            at: t(at),
        }
    }

    fn service(weight: i32, measurements: Vec<Measurement>) -> ServiceStatus {
        ServiceStatus {
            name: "api".into(),
            weight,
            measurements,
            ..Default::default()
        }
    }

    /// The value of the sample whose line starts with `series` (name and labels).
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .map(|v| v.trim().parse().unwrap())
    }

    #[test]
    fn counts_only_new_measurements() {
        let m = Metrics::new();
        let before = ReleaseStatus {
            services: vec![service(5, vec![measurement(0, 10, Outcome::Pass)])],
            ..Default::default()
        };
        let after = ReleaseStatus {
            services: vec![service(
                5,
                vec![
                    measurement(0, 10, Outcome::Pass),
                    measurement(0, 20, Outcome::Pass),
                    measurement(0, 30, Outcome::Fail),
                ],
            )],
            ..Default::default()
        };
        m.record_transition(&release(Some(before)), &after);
        // Deciding again on the written status must not count anything twice.
        m.record_transition(&release(Some(after.clone())), &after);
        let text = m.encode();
        let pass = r#"signalman_measurements_total{namespace="shop",service="api",metric="error-rate",outcome="Pass"}"#;
        let fail = r#"signalman_measurements_total{namespace="shop",service="api",metric="error-rate",outcome="Fail"}"#;
        assert_eq!(sample(&text, pass), Some(1.0), "{text}");
        assert_eq!(sample(&text, fail), Some(1.0), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn breach_counts_once_and_weight_zero_time_is_a_histogram() {
        let m = Metrics::new();
        let progressing = ReleaseStatus {
            phase: Some(Phase::Progressing),
            ..Default::default()
        };
        let rolling_back = ReleaseStatus {
            phase: Some(Phase::RollingBack),
            rollback: Some(RollbackCause {
                reason: "Breach".into(),
                message: "error-rate 0.3 > 0.01".into(),
                service: Some("api".into()),
                first_deviation_at: Some(t(100)),
                at: t(104),
            }),
            ..Default::default()
        };
        m.record_transition(&release(Some(progressing)), &rolling_back);
        m.record_transition(&release(Some(rolling_back.clone())), &rolling_back);
        // The controller times weight 0 itself, when its write succeeded.
        m.breach_to_zero(4.25);
        let text = m.encode();
        assert_eq!(
            sample(
                &text,
                r#"signalman_breaches_total{namespace="shop",service="api"}"#
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                r#"signalman_rollbacks_total{namespace="shop",reason="Breach"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "signalman_breach_to_weight_zero_seconds_count"),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "signalman_breach_to_weight_zero_seconds_sum"),
            Some(4.25)
        );
        assert_eq!(
            sample(
                &text,
                r#"signalman_breach_to_weight_zero_seconds_bucket{le="5.0"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"signalman_breach_to_weight_zero_seconds_bucket{le="2.0"}"#
            ),
            Some(0.0)
        );
    }

    #[test]
    fn abort_is_a_rollback_but_not_a_breach() {
        let m = Metrics::new();
        let aborted = ReleaseStatus {
            rollback: Some(RollbackCause {
                reason: "Abort".into(),
                message: "aborted".into(),
                service: None,
                first_deviation_at: None,
                at: t(5),
            }),
            ..Default::default()
        };
        m.record_transition(&release(None), &aborted);
        let text = m.encode();
        assert_eq!(
            sample(
                &text,
                r#"signalman_rollbacks_total{namespace="shop",reason="Abort"}"#
            ),
            Some(1.0)
        );
        assert!(!text.contains("signalman_breaches_total{"), "{text}");
        assert_eq!(
            sample(&text, "signalman_breach_to_weight_zero_seconds_count"),
            Some(0.0)
        );
    }

    #[test]
    fn reconcile_duration_and_errors() {
        let m = Metrics::new();
        drop(m.reconcile_started());
        drop(m.reconcile_started());
        m.failed("kube");
        m.reconciled();
        m.wrote("Deployment", "apply");
        m.wrote("Deployment", "apply");
        m.wrote("Event", "create");
        m.measured("shop", "train", "api", "error-rate", 0.25);
        m.set_leader(true);
        let text = m.encode();
        assert_eq!(m.writes_total(), 3);
        assert_eq!(sample(&text, "signalman_reconciles_total"), Some(1.0));
        assert_eq!(sample(&text, "signalman_leader"), Some(1.0));
        assert_eq!(
            sample(
                &text,
                r#"signalman_api_writes_total{kind="Deployment",verb="apply"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"signalman_measurement_value{namespace="shop",release="train",service="api",metric="error-rate"}"#
            ),
            Some(0.25)
        );
        assert_eq!(
            sample(&text, "signalman_reconcile_duration_seconds_count"),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, r#"signalman_reconcile_errors_total{kind="kube"}"#),
            Some(1.0)
        );
    }

    #[test]
    fn release_gauges_count_every_phase_and_weights() {
        let progressing = release(Some(ReleaseStatus {
            phase: Some(Phase::Progressing),
            services: vec![service(25, vec![])],
            ..Default::default()
        }));
        let fresh = release(None);
        let (by_phase, weights) = release_gauges([&progressing, &fresh].into_iter());
        let get = |p: &str| {
            by_phase
                .get(&PhaseLabels { phase: p.into() })
                .map(|g| g.get())
        };
        assert_eq!(get("Progressing"), Some(1));
        assert_eq!(get("Pending"), Some(1));
        assert_eq!(get("RollingBack"), Some(0));
        assert!(ALL_PHASES.iter().all(|p| get(&label(p)).is_some()));
        let w = weights.get(&WeightLabels {
            namespace: "shop".into(),
            release: "train".into(),
            service: "api".into(),
        });
        assert_eq!(w.map(|g| g.get()), Some(25));
    }

    #[test]
    fn without_a_release_cache_no_release_series() {
        let text = Metrics::new().encode();
        assert!(!text.contains("signalman_releases"), "{text}");
        assert!(
            text.contains("# TYPE signalman_reconcile_duration_seconds histogram"),
            "{text}"
        );
    }
}

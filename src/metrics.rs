//! Operator metrics, exposed on `/metrics` in the OpenMetrics text format.
//!
//! Two kinds of series. Gauges that describe releases as they are now
//! (`signalman_releases{phase}`, `signalman_service_weight`) are computed at
//! scrape time from the controller's Release cache, so a deleted release
//! leaves no stale series and a follower replica (no cache) exports none.
//! Counters and histograms that describe what happened (measurements, holds,
//! breaches, rollbacks, breach-to-weight-zero time, reconciles) are fed by the
//! leader from the engine's typed decision once its status is written
//! ([`Metrics::record`]); their label values are the API's own names.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use crate::api::{Phase, Release};
use crate::engine::{Decision, NoticeKind};
use kube::ResourceExt;
use kube::runtime::reflector::Store;

use crate::controller::cache::Readable;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Content type of [`Metrics::encode`]'s output.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

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

/// A rollback's or a hold's reason in one namespace.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
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
struct WatchLabels {
    watch: String,
}

/// One attempt to deliver a notification: the receiver's name and `sent` or `failed`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    receiver: String,
    result: String,
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
    rollbacks: Family<ReasonLabels, Counter>,
    holds: Family<ReasonLabels, Counter>,
    breach_to_weight_zero: Histogram,
    reconcile_duration: Histogram,
    reconcile_errors: Family<ErrorLabels, Counter>,
    watch_errors: Family<WatchLabels, Counter>,
    reconciles: Counter,
    leader: Gauge,
    writes: Family<WriteLabels, Counter>,
    writes_total: Arc<AtomicU64>,
    conflicts: Family<WriteLabels, Counter>,
    last_value: Family<MetricLabels, Gauge<f64, AtomicU64>>,
    notifications: Family<NotificationLabels, Counter>,
    releases: Arc<RwLock<Option<Store<Readable>>>>,
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
        let rollbacks = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "rollbacks",
            "Rollbacks begun, by reason (Breach, Abort, HoldTimeout, Deleted)",
            rollbacks.clone(),
        );
        let holds = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "holds",
            "Holds placed, by reason (ErrorLimit, InconclusiveLimit, Drift, SpecChanged)",
            holds.clone(),
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
        // Every kind at 0 from the start: a series that appears only with the
        // first error cannot be alerted on or charted before it.
        for kind in crate::controller::Error::KINDS {
            drop(reconcile_errors.get_or_create(&ErrorLabels {
                kind: (*kind).to_owned(),
            }));
        }
        registry.register(
            "reconcile_errors",
            "Reconciles that ended in an error, by kind of error",
            reconcile_errors.clone(),
        );
        let watch_errors = Family::<WatchLabels, Counter>::default();
        registry.register(
            "watch_errors",
            "Failed attempts of the controller's watches, by watch (each retried with backoff)",
            watch_errors.clone(),
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
        // Another writer changing a Release or a Deployment between the
        // operator's read and its write: how often, and so how much a busy
        // neighbour (a GitOps tool, a labeller) costs.
        let conflicts = Family::<WriteLabels, Counter>::default();
        registry.register(
            "api_conflicts",
            "Writes the API server refused with 409 Conflict (the object changed since it was read), by kind and verb; each is tried again over the new version or decided again",
            conflicts.clone(),
        );
        let last_value = Family::<MetricLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "measurement_value",
            "The value of the latest measurement of each metric",
            last_value.clone(),
        );
        let notifications = Family::<NotificationLabels, Counter>::default();
        registry.register(
            "notifications",
            "Attempts to deliver a notification to a webhook receiver, by receiver and result (sent, failed)",
            notifications.clone(),
        );
        let releases = Arc::new(RwLock::new(None));
        registry.register_collector(Box::new(ReleaseCollector {
            store: releases.clone(),
        }));
        Metrics {
            registry: Arc::new(root),
            measurements,
            breaches,
            rollbacks,
            holds,
            breach_to_weight_zero,
            reconcile_duration,
            reconcile_errors,
            watch_errors,
            reconciles,
            leader,
            writes,
            writes_total: Arc::default(),
            conflicts,
            last_value,
            notifications,
            releases,
        }
    }

    /// Export the releases in `store` (the controller's cache) as
    /// `signalman_releases` and `signalman_service_weight`.
    pub fn watch_releases(&self, store: Store<Readable>) {
        // A shard restarts its controller, with a new store, whenever its
        // namespaces change: the gauges follow the newest.
        *self.releases.write().unwrap_or_else(|e| e.into_inner()) = Some(store);
    }

    /// Count what `decision` says happened in `namespace`: the measurements
    /// it judged, the holds it placed and the rollbacks it began. Call it only
    /// once its status is written, so a decision made again counts nothing twice.
    pub fn record(&self, namespace: &str, decision: &Decision) {
        for j in &decision.judged {
            self.measurements
                .get_or_create(&MeasurementLabels {
                    namespace: namespace.to_owned(),
                    service: j.service.clone(),
                    metric: j.metric.clone(),
                    outcome: j.outcome.as_str().to_owned(),
                })
                .inc();
        }
        for notice in &decision.notices {
            let reason = |r: &str| ReasonLabels {
                namespace: namespace.to_owned(),
                reason: r.to_owned(),
            };
            match notice.kind {
                NoticeKind::Held(r) => {
                    self.holds.get_or_create(&reason(r.as_str())).inc();
                }
                NoticeKind::RollbackBegan(r) => {
                    self.rollbacks.get_or_create(&reason(r.as_str())).inc();
                    if r == crate::api::RollbackReason::Breach {
                        self.breaches
                            .get_or_create(&ServiceLabels {
                                namespace: namespace.to_owned(),
                                service: notice.service.clone().unwrap_or_default(),
                            })
                            .inc();
                    }
                }
                _ => {}
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

    /// Count one write the API server refused with 409 Conflict.
    pub fn conflicted(&self, kind: &str, verb: &str) {
        self.conflicts
            .get_or_create(&WriteLabels {
                kind: kind.to_owned(),
                verb: verb.to_owned(),
            })
            .inc();
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

    /// Count one attempt to deliver a notification to `receiver`; `result` is
    /// `sent` or `failed`.
    pub fn notified(&self, receiver: &str, result: &str) {
        self.notifications
            .get_or_create(&NotificationLabels {
                receiver: receiver.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// Count a failed reconcile; `kind` is the error's short metric label.
    pub fn failed(&self, kind: &str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Count a failed attempt of the controller's watch `watch`.
    pub fn watch_failed(&self, watch: &str) {
        self.watch_errors
            .get_or_create(&WatchLabels {
                watch: watch.to_owned(),
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

struct ReleaseCollector {
    store: Arc<RwLock<Option<Store<Readable>>>>,
}

impl fmt::Debug for ReleaseCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReleaseCollector").finish_non_exhaustive()
    }
}

impl Collector for ReleaseCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let Some(store) = self.store.read().unwrap_or_else(|e| e.into_inner()).clone() else {
            return Ok(());
        };
        let releases = store.state();
        let (by_phase, weights, effective) =
            release_gauges(releases.iter().filter_map(|r| r.release()));
        let m = encoder.encode_descriptor(
            "releases",
            "Releases by phase (Pending includes releases without a status yet)",
            None,
            by_phase.metric_type(),
        )?;
        by_phase.encode(m)?;
        let m = encoder.encode_descriptor(
            "service_weight",
            "Percent of traffic a service's canary should get now (the step's declared weight), per release",
            None,
            weights.metric_type(),
        )?;
        weights.encode(m)?;
        let m = encoder.encode_descriptor(
            "service_effective_weight",
            "Percent of traffic a service's canary really gets now (share of available pods, or the route weight)",
            None,
            effective.metric_type(),
        )?;
        effective.encode(m)
    }
}

type Gauges = Family<WeightLabels, Gauge>;

fn release_gauges<'a>(
    releases: impl Iterator<Item = &'a Release>,
) -> (Family<PhaseLabels, Gauge>, Gauges, Gauges) {
    let by_phase = Family::<PhaseLabels, Gauge>::default();
    // Every phase is exported, zeros included, so a dashboard's "RollingBack"
    // panel reads 0 rather than "no data".
    for phase in Phase::ALL {
        by_phase
            .get_or_create(&PhaseLabels {
                phase: phase.as_str().to_owned(),
            })
            .set(0);
    }
    let weights = Gauges::default();
    let effective = Gauges::default();
    for release in releases {
        let phase = release
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .unwrap_or_default();
        by_phase
            .get_or_create(&PhaseLabels {
                phase: phase.as_str().to_owned(),
            })
            .inc();
        for service in release.status.iter().flat_map(|s| &s.services) {
            let labels = WeightLabels {
                namespace: release.namespace().unwrap_or_default(),
                release: release.name_any(),
                service: service.name.clone(),
            };
            weights
                .get_or_create(&labels)
                .set(i64::from(service.weight));
            effective
                .get_or_create(&labels)
                .set(i64::from(service.effective_weight.unwrap_or(0)));
        }
    }
    (by_phase, weights, effective)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        HoldReason, Outcome, ReleaseSpec, ReleaseStatus, RollbackReason, ServiceStatus,
    };
    use crate::engine::{Judged, Notice};

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

    fn decision(judged: &[Outcome], notices: &[NoticeKind]) -> Decision {
        Decision {
            actions: Vec::new(),
            status: ReleaseStatus::default(),
            requeue_after: None,
            notices: notices
                .iter()
                .map(|&kind| Notice {
                    kind,
                    service: Some("api".into()),
                    message: String::new(),
                })
                .collect(),
            judged: judged
                .iter()
                .map(|&outcome| Judged {
                    service: "api".into(),
                    metric: "error-rate".into(),
                    outcome,
                })
                .collect(),
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
    fn counts_what_each_decision_judged() {
        let m = Metrics::new();
        m.record("shop", &decision(&[Outcome::Pass], &[]));
        m.record("shop", &decision(&[Outcome::Pass, Outcome::Fail], &[]));
        let text = m.encode();
        let pass = r#"signalman_measurements_total{namespace="shop",service="api",metric="error-rate",outcome="Pass"}"#;
        let fail = r#"signalman_measurements_total{namespace="shop",service="api",metric="error-rate",outcome="Fail"}"#;
        assert_eq!(sample(&text, pass), Some(2.0), "{text}");
        assert_eq!(sample(&text, fail), Some(1.0), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn a_breach_is_a_rollback_and_weight_zero_time_is_a_histogram() {
        let m = Metrics::new();
        m.record(
            "shop",
            &decision(&[], &[NoticeKind::RollbackBegan(RollbackReason::Breach)]),
        );
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
    fn abort_is_a_rollback_but_not_a_breach_and_holds_count_by_reason() {
        let m = Metrics::new();
        m.record(
            "shop",
            &decision(
                &[],
                &[
                    NoticeKind::Held(HoldReason::ErrorLimit),
                    NoticeKind::RollbackBegan(RollbackReason::Abort),
                    NoticeKind::Promoted,
                ],
            ),
        );
        let text = m.encode();
        assert_eq!(
            sample(
                &text,
                r#"signalman_rollbacks_total{namespace="shop",reason="Abort"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"signalman_holds_total{namespace="shop",reason="ErrorLimit"}"#
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
        m.conflicted("Release/status", "apply");
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
                r#"signalman_api_conflicts_total{kind="Release/status",verb="apply"}"#
            ),
            Some(1.0)
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
        assert_eq!(
            sample(&text, r#"signalman_reconcile_errors_total{kind="missing"}"#),
            Some(0.0)
        );
    }

    #[test]
    fn release_gauges_count_every_phase_and_weights() {
        let progressing = release(Some(ReleaseStatus {
            phase: Some(Phase::Progressing),
            services: vec![ServiceStatus {
                name: "api".into(),
                weight: 10,
                effective_weight: Some(33),
                ..Default::default()
            }],
            ..Default::default()
        }));
        let fresh = release(None);
        let (by_phase, weights, effective) = release_gauges([&progressing, &fresh].into_iter());
        let get = |p: &str| {
            by_phase
                .get(&PhaseLabels { phase: p.into() })
                .map(|g| g.get())
        };
        assert_eq!(get("Progressing"), Some(1));
        assert_eq!(get("Pending"), Some(1));
        assert_eq!(get("Held"), Some(0));
        assert!(Phase::ALL.iter().all(|p| get(p.as_str()).is_some()));
        let labels = WeightLabels {
            namespace: "shop".into(),
            release: "train".into(),
            service: "api".into(),
        };
        assert_eq!(weights.get(&labels).map(|g| g.get()), Some(10));
        assert_eq!(effective.get(&labels).map(|g| g.get()), Some(33));
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

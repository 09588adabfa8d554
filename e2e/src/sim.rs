//! The traffic model behind the `traffic-sim` binary, kept free of I/O so it
//! can be unit-tested.
//!
//! Conventions (the controller and its scenario tests rely on them):
//! - Every Service with a selector receives a steady request rate: the
//!   annotation [`RPS_ANNOTATION`] on the Service, else [`DEFAULT_RPS`].
//! - An HTTPRoute's rate (route annotation, else the first backend Service's
//!   annotation, else the default) is split equally across its rules and,
//!   within a rule, across the `backendRefs` by weight (default 1; weight 0
//!   gets nothing). A Service that is a backend of any route receives traffic
//!   only through routes, so nothing is counted twice.
//! - A Service labelled [`CANARY_OF_LABEL`]` = <stable>` reports its traffic as
//!   `service="<stable>"`, and receives traffic only through routes.
//! - Within a Service, traffic is split equally across its ready endpoints:
//!   Ready, not terminating pods matching the selector in its namespace.
//! - Per pod, container env vars (literal values) set the behaviour:
//!   `SIM_ERROR_RATE` (0..1, fraction of 5xx, default 0) and
//!   `SIM_LATENCY_MS` (median latency, default 20).
//! - `track` is `canary` for pods labelled `signalman.dev/track=canary`, else
//!   `stable`; `version` is the image tag of the pod's first container.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

/// Request rate when nothing says otherwise.
pub const DEFAULT_RPS: f64 = 50.0;
/// Upper bound per Service / route, to keep the simulator cheap.
pub const MAX_RPS: f64 = 10_000.0;
/// Annotation (on a Service or an HTTPRoute) that sets its request rate.
pub const RPS_ANNOTATION: &str = "sim.signalman.dev/rps";
/// Label that Signalman puts on the canary Service it creates in Gateway API mode.
pub const CANARY_OF_LABEL: &str = "signalman.dev/canary-of";
/// Label that marks canary pods.
pub const TRACK_LABEL: &str = "signalman.dev/track";
/// Pod env var: fraction (0..1) of requests answered with a 5xx.
pub const ERROR_RATE_ENV: &str = "SIM_ERROR_RATE";
/// Pod env var: median latency in milliseconds.
pub const LATENCY_ENV: &str = "SIM_LATENCY_MS";
/// Median latency when the pod does not set one.
pub const DEFAULT_LATENCY_MS: f64 = 20.0;
/// Histogram buckets of `sim_http_request_duration_seconds`.
pub const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// What the simulator needs to know about a pod.
#[derive(Clone, Debug, PartialEq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Ready condition true and not terminating.
    pub ready: bool,
    pub track: String,
    pub version: String,
    pub error_rate: f64,
    pub latency_ms: f64,
}

/// What the simulator needs to know about a Service.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceInfo {
    pub namespace: String,
    pub name: String,
    /// `None` for a Service without selector (it gets no simulated endpoints).
    pub selector: Option<BTreeMap<String, String>>,
    pub rps: Option<f64>,
    /// Value of the `signalman.dev/canary-of` label.
    pub canary_of: Option<String>,
}

/// One backendRef of an HTTPRoute rule (only core Services are simulated).
#[derive(Clone, Debug, PartialEq)]
pub struct BackendRef {
    pub namespace: String,
    pub service: String,
    pub weight: u32,
}

/// What the simulator needs to know about an HTTPRoute.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteInfo {
    pub namespace: String,
    pub name: String,
    pub rps: Option<f64>,
    /// One entry per rule, each with its backendRefs.
    pub rules: Vec<Vec<BackendRef>>,
}

/// The labels of one simulated series.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub namespace: String,
    pub service: String,
    pub track: String,
    pub version: String,
}

/// Steady traffic reaching one pod on behalf of one (reported) Service.
#[derive(Clone, Debug, PartialEq)]
pub struct Flow {
    /// `namespace/name` of the pod.
    pub pod: String,
    pub series: SeriesKey,
    pub rps: f64,
    pub error_rate: f64,
    pub latency_ms: f64,
}

/// Parse a rate annotation; invalid or negative values are ignored.
pub fn parse_rps(v: Option<&String>) -> Option<f64> {
    let r: f64 = v?.trim().parse().ok()?;
    (r.is_finite() && r >= 0.0).then_some(r.min(MAX_RPS))
}

/// The tag of a container image (`repo/app:v1.2` -> `v1.2`; no tag -> `latest`).
pub fn image_tag(image: &str) -> String {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    match last.rsplit_once(':') {
        Some((_, tag)) if !tag.is_empty() => tag.to_string(),
        _ => "latest".to_string(),
    }
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Compute the traffic flows for the current cluster state.
pub fn compute_flows(
    services: &[ServiceInfo],
    routes: &[RouteInfo],
    pods: &[PodInfo],
) -> Vec<Flow> {
    let by_key: HashMap<(&str, &str), &ServiceInfo> = services
        .iter()
        .map(|s| ((s.namespace.as_str(), s.name.as_str()), s))
        .collect();
    let routed: BTreeSet<(&str, &str)> = routes
        .iter()
        .flat_map(|r| r.rules.iter().flatten())
        .map(|b| (b.namespace.as_str(), b.service.as_str()))
        .collect();

    // Accumulate rps per (pod, reported series) so overlapping paths merge.
    let mut acc: BTreeMap<(String, SeriesKey), (f64, f64, f64)> = BTreeMap::new();
    let mut send = |svc: &ServiceInfo, rps: f64| {
        if rps <= 0.0 {
            return;
        }
        let Some(selector) = &svc.selector else {
            return;
        };
        let endpoints: Vec<&PodInfo> = pods
            .iter()
            .filter(|p| p.ready && p.namespace == svc.namespace && selects(selector, &p.labels))
            .collect();
        if endpoints.is_empty() {
            return;
        }
        let each = rps / endpoints.len() as f64;
        let reported = svc.canary_of.clone().unwrap_or_else(|| svc.name.clone());
        for p in endpoints {
            let series = SeriesKey {
                namespace: svc.namespace.clone(),
                service: reported.clone(),
                track: p.track.clone(),
                version: p.version.clone(),
            };
            let e = acc
                .entry((format!("{}/{}", p.namespace, p.name), series))
                .or_insert((0.0, p.error_rate, p.latency_ms));
            e.0 += each;
        }
    };

    for route in routes {
        let first_backend = route
            .rules
            .iter()
            .flatten()
            .next()
            .and_then(|b| by_key.get(&(b.namespace.as_str(), b.service.as_str())));
        let rate = route
            .rps
            .or_else(|| first_backend.and_then(|s| s.rps))
            .unwrap_or(DEFAULT_RPS);
        let rules: Vec<&Vec<BackendRef>> = route.rules.iter().filter(|r| !r.is_empty()).collect();
        if rules.is_empty() {
            continue;
        }
        let per_rule = rate / rules.len() as f64;
        for rule in rules {
            let total: u64 = rule.iter().map(|b| u64::from(b.weight)).sum();
            if total == 0 {
                continue;
            }
            for b in rule {
                // A backend that does not exist loses its share, like a
                // gateway answering for it with errors nobody simulates.
                if let Some(svc) = by_key.get(&(b.namespace.as_str(), b.service.as_str())) {
                    send(svc, per_rule * f64::from(b.weight) / total as f64);
                }
            }
        }
    }
    for svc in services {
        if routed.contains(&(svc.namespace.as_str(), svc.name.as_str())) || svc.canary_of.is_some()
        {
            continue;
        }
        send(svc, svc.rps.unwrap_or(DEFAULT_RPS));
    }

    acc.into_iter()
        .map(|((pod, series), (rps, error_rate, latency_ms))| Flow {
            pod,
            series,
            rps,
            error_rate,
            latency_ms,
        })
        .collect()
}

#[derive(Default, Clone, Debug)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default, Debug)]
struct FlowState {
    requests: f64,
    errors: f64,
    /// Index into the latency quantile sequence.
    seq: u64,
}

/// Monotonic counters and histograms, advanced deterministically per tick.
#[derive(Default, Debug)]
pub struct Metrics {
    requests: BTreeMap<(SeriesKey, &'static str), u64>,
    durations: BTreeMap<SeriesKey, Histogram>,
    target_rps: BTreeMap<SeriesKey, f64>,
    state: HashMap<(String, SeriesKey), FlowState>,
}

/// Latency of the `seq`-th request of a flow: a deterministic spread around
/// the median (log-logistic quantiles of a golden-ratio sequence).
fn latency_seconds(median_ms: f64, seq: u64) -> f64 {
    const PHI: f64 = 0.618_033_988_749_894_9;
    let u = ((seq as f64 + 0.5) * PHI).fract().clamp(0.001, 0.999);
    median_ms.max(0.0) * (u / (1.0 - u)).powf(0.25) / 1000.0
}

impl Metrics {
    /// Advance every flow by `dt_secs`. Fractions carry over between ticks,
    /// so over time exactly `rps` requests per second and exactly
    /// `error_rate` of them as 5xx are counted.
    pub fn tick(&mut self, flows: &[Flow], dt_secs: f64) {
        self.target_rps.values_mut().for_each(|v| *v = 0.0);
        let mut live = BTreeSet::new();
        for f in flows {
            let key = (f.pod.clone(), f.series.clone());
            live.insert(key.clone());
            // Both codes exist from the first tick, so ratios are never "no data".
            self.requests.entry((f.series.clone(), "200")).or_default();
            self.requests.entry((f.series.clone(), "500")).or_default();
            *self.target_rps.entry(f.series.clone()).or_default() += f.rps;
            let st = self.state.entry(key).or_default();
            st.requests += f.rps * dt_secs;
            let n = st.requests.floor();
            st.requests -= n;
            st.errors += n * f.error_rate.clamp(0.0, 1.0);
            let e = st.errors.floor().min(n);
            st.errors -= e;
            let (n, e) = (n as u64, e as u64);
            *self.requests.get_mut(&(f.series.clone(), "500")).unwrap() += e;
            *self.requests.get_mut(&(f.series.clone(), "200")).unwrap() += n - e;
            let h = self.durations.entry(f.series.clone()).or_default();
            for _ in 0..n {
                let l = latency_seconds(f.latency_ms, st.seq);
                st.seq += 1;
                h.count += 1;
                h.sum += l;
                if let Some(i) = BUCKETS.iter().position(|b| l <= *b) {
                    h.buckets[i] += 1;
                }
            }
        }
        self.state.retain(|k, _| live.contains(k));
    }

    /// The Prometheus text exposition (format 0.0.4) of all series.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP sim_http_requests_total Simulated HTTP requests served.\n");
        out.push_str("# TYPE sim_http_requests_total counter\n");
        for ((k, code), v) in &self.requests {
            let _ = writeln!(
                out,
                "sim_http_requests_total{{{},code=\"{code}\"}} {v}",
                labels(k)
            );
        }
        out.push_str("# HELP sim_http_request_duration_seconds Simulated HTTP request latency.\n");
        out.push_str("# TYPE sim_http_request_duration_seconds histogram\n");
        for (k, h) in &self.durations {
            let l = labels(k);
            let mut cum = 0;
            for (i, b) in BUCKETS.iter().enumerate() {
                cum += h.buckets[i];
                let _ = writeln!(
                    out,
                    "sim_http_request_duration_seconds_bucket{{{l},le=\"{b}\"}} {cum}"
                );
            }
            let _ = writeln!(
                out,
                "sim_http_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "sim_http_request_duration_seconds_sum{{{l}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "sim_http_request_duration_seconds_count{{{l}}} {}",
                h.count
            );
        }
        out.push_str(
            "# HELP sim_target_rps Request rate the simulator currently sends to a series.\n",
        );
        out.push_str("# TYPE sim_target_rps gauge\n");
        for (k, v) in &self.target_rps {
            let _ = writeln!(out, "sim_target_rps{{{}}} {v}", labels(k));
        }
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(k: &SeriesKey) -> String {
    format!(
        "namespace=\"{}\",service=\"{}\",track=\"{}\",version=\"{}\"",
        escape(&k.namespace),
        escape(&k.service),
        escape(&k.track),
        escape(&k.version)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, app: &str, track: &str, version: &str, err: f64) -> PodInfo {
        PodInfo {
            namespace: "ns".into(),
            name: name.into(),
            labels: [("app".to_string(), app.to_string())].into(),
            ready: true,
            track: track.into(),
            version: version.into(),
            error_rate: err,
            latency_ms: 20.0,
        }
    }
    fn svc(name: &str, app: &str, rps: Option<f64>, canary_of: Option<&str>) -> ServiceInfo {
        ServiceInfo {
            namespace: "ns".into(),
            name: name.into(),
            selector: Some([("app".to_string(), app.to_string())].into()),
            rps,
            canary_of: canary_of.map(Into::into),
        }
    }
    fn backend(service: &str, weight: u32) -> BackendRef {
        BackendRef {
            namespace: "ns".into(),
            service: service.into(),
            weight,
        }
    }
    fn total(flows: &[Flow], track: &str) -> f64 {
        flows
            .iter()
            .filter(|f| f.series.track == track)
            .map(|f| f.rps)
            .sum()
    }

    #[test]
    fn image_tags() {
        assert_eq!(image_tag("registry.example/payments-api:v2.3.1"), "v2.3.1");
        assert_eq!(image_tag("localhost:5000/app"), "latest");
        assert_eq!(image_tag("app:v1@sha256:abc"), "v1");
        assert_eq!(image_tag("nginx"), "latest");
    }

    #[test]
    fn service_splits_equally_across_ready_pods() {
        let mut pods = vec![
            pod("a", "web", "stable", "v1", 0.0),
            pod("b", "web", "stable", "v1", 0.0),
            pod("c", "web", "canary", "v2", 0.0),
        ];
        pods.push(PodInfo {
            ready: false,
            ..pod("d", "web", "canary", "v2", 0.0)
        });
        let flows = compute_flows(&[svc("web", "web", Some(90.0), None)], &[], &pods);
        assert_eq!(flows.len(), 3);
        assert!((total(&flows, "stable") - 60.0).abs() < 1e-9);
        assert!((total(&flows, "canary") - 30.0).abs() < 1e-9);
    }

    #[test]
    fn route_weights_and_canary_service_name() {
        let pods = vec![
            pod("s", "web", "stable", "v1", 0.0),
            pod("c", "web-canary", "canary", "v2", 0.0),
        ];
        let services = vec![
            svc("web", "web", None, None),
            svc("web-canary", "web-canary", None, Some("web")),
        ];
        let routes = vec![RouteInfo {
            namespace: "ns".into(),
            name: "r".into(),
            rps: Some(100.0),
            rules: vec![vec![backend("web", 75), backend("web-canary", 25)]],
        }];
        let flows = compute_flows(&services, &routes, &pods);
        assert!(flows.iter().all(|f| f.series.service == "web"));
        assert!((total(&flows, "stable") - 75.0).abs() < 1e-9);
        assert!((total(&flows, "canary") - 25.0).abs() < 1e-9);
        // Weight 0 sends nothing; the routed Service gets no direct traffic.
        let routes0 = vec![RouteInfo {
            rules: vec![vec![backend("web", 1), backend("web-canary", 0)]],
            ..routes[0].clone()
        }];
        let flows = compute_flows(&services, &routes0, &pods);
        assert_eq!(total(&flows, "canary"), 0.0);
        assert!((total(&flows, "stable") - 100.0).abs() < 1e-9);
    }

    #[test]
    fn route_rate_falls_back_to_backend_annotation_then_default() {
        let pods = vec![pod("s", "web", "stable", "v1", 0.0)];
        let route = RouteInfo {
            namespace: "ns".into(),
            name: "r".into(),
            rps: None,
            rules: vec![vec![backend("web", 1)]],
        };
        let flows = compute_flows(
            &[svc("web", "web", Some(7.0), None)],
            std::slice::from_ref(&route),
            &pods,
        );
        assert!((total(&flows, "stable") - 7.0).abs() < 1e-9);
        let flows = compute_flows(&[svc("web", "web", None, None)], &[route], &pods);
        assert!((total(&flows, "stable") - DEFAULT_RPS).abs() < 1e-9);
    }

    #[test]
    fn error_rate_is_exact_and_counters_monotonic() {
        let flows = compute_flows(
            &[svc("web", "web", Some(50.0), None)],
            &[],
            &[pod("a", "web", "stable", "v1", 0.3)],
        );
        let mut m = Metrics::default();
        for _ in 0..50 {
            m.tick(&flows, 0.2);
        }
        let key = flows[0].series.clone();
        let ok = m.requests[&(key.clone(), "200")];
        let bad = m.requests[&(key.clone(), "500")];
        assert_eq!(ok + bad, 500);
        assert_eq!(bad, 150);
        let h = &m.durations[&key];
        assert_eq!(h.count, 500);
        let median = h.sum / h.count as f64;
        assert!(median > 0.015 && median < 0.03, "mean latency {median}");
        m.tick(&[], 0.2);
        assert_eq!(m.requests[&(key, "200")], ok);
        assert!(m.render().contains("code=\"500\"} 150"));
    }
}

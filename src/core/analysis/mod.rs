//! The measurement vocabulary and its semantics, all pure.
//!
//! The engine asks for [`MeasurementRequest`]s, the shell runs the queries
//! (its Prometheus client lives in the controller) and hands back [`Taken`]
//! measurements; [`judge`] turns what a query returned into an [`Outcome`] and
//! [`render_query`] fills a metric's query template, so the engine and the
//! plugin agree on every number.

use jiff::Timestamp;

pub mod tenancy;

use crate::api::{Analysis, Compare, Metric, NoDataPolicy, Outcome};

pub mod quoting;

/// A measurement the engine wants taken now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeasurementRequest {
    /// The service (entry of `spec.services`); empty for the train's verification
    /// (`spec.verify.analysis`), whose queries get no service placeholders.
    pub service: String,
    pub metric: String,
    /// Index of the step it belongs to.
    pub step: i32,
}

/// A measurement the shell took.
#[derive(Clone, Debug, PartialEq)]
pub struct Taken {
    /// As in the request: empty for verification.
    pub service: String,
    pub metric: String,
    pub step: i32,
    /// The canary's value for a `compare` metric (`{{track}}` filled with the canary's selector).
    pub result: QueryResult,
    /// A `compare` metric's stable value (`{{track}}` filled with the stable pods' selector);
    /// `None` for every other metric.
    pub stable: Option<QueryResult>,
    /// The query as sent to Prometheus: placeholders filled and, when the
    /// operator runs with `--enforce-namespace`, every selector confined to
    /// the Release's namespace (for a `compare` metric, the canary's query).
    /// `None` when no query was sent (it could not be rendered, or was refused).
    pub query: Option<String>,
    pub at: Timestamp,
}

/// What a query returned.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryResult {
    Value(f64),
    /// An empty result.
    NoData,
    /// Prometheus unreachable, a bad query, or a result that is not one number.
    Error(String),
}

/// What a measurement counts as.
///
/// - an error on either side (unreachable Prometheus, bad query) is [`Outcome::Error`];
/// - an empty result or NaN (Prometheus' answer to `0/0`, e.g. an error ratio
///   with no requests) on either side is no evidence at all, so it counts by
///   the `noData` policy;
/// - otherwise every bound must hold: the fixed ones (`min`, `max`, inclusive;
///   a missing bound is open) on the canary's value, and each `compare` bound
///   against the stable pods' value: canary ≤ stable + maxIncrease, canary ≤
///   stable × maxRatio, canary ≥ stable − maxDecrease, canary ≥ stable × minRatio;
/// - `+Inf`/`-Inf` are ordinary numbers beyond every bound (`histogram_quantile`
///   answers `+Inf` when latency is above the top bucket, which must fail a `max`).
///
/// `stable` is the stable pods' result of a `compare` metric; a compare metric
/// without one was not measured on both tracks, an error. It is ignored for
/// any other metric.
pub fn judge(
    metric: &Metric,
    result: &QueryResult,
    stable: Option<&QueryResult>,
    no_data: NoDataPolicy,
) -> Outcome {
    let stable = match (&metric.compare, stable) {
        (None, _) => None,
        (Some(_), None) => return Outcome::Error,
        (Some(c), Some(s)) => Some((c, s)),
    };
    let values = [Some(result), stable.map(|(_, s)| s)];
    if values
        .iter()
        .flatten()
        .any(|r| matches!(r, QueryResult::Error(_)))
    {
        return Outcome::Error;
    }
    let number = |r: &QueryResult| match r {
        QueryResult::Value(v) if !v.is_nan() => Some(*v),
        _ => None,
    };
    let Some(v) = number(result) else {
        return no_data_outcome(no_data);
    };
    let fixed = metric.min.is_none_or(|min| v >= min) && metric.max.is_none_or(|max| v <= max);
    let compared = match stable {
        None => true,
        Some((c, s)) => {
            let Some(s) = number(s) else {
                return no_data_outcome(no_data);
            };
            within(c, v, s)
        }
    };
    if fixed && compared {
        Outcome::Pass
    } else {
        Outcome::Fail
    }
}

/// Canary value `v` against stable value `s`: every bound `c` gives holds.
/// A bound that computes to NaN (only from an infinite stable value times a
/// ratio an older CRD let be 0) holds nothing, so it fails.
fn within(c: &Compare, v: f64, s: f64) -> bool {
    c.max_increase.is_none_or(|d| v <= s + d)
        && c.max_ratio.is_none_or(|r| v <= s * r)
        && c.max_decrease.is_none_or(|d| v >= s - d)
        && c.min_ratio.is_none_or(|r| v >= s * r)
}

/// The bounds of `metric` in words, for breach messages, `RollbackCause.threshold`
/// and the report: `max 0.01`, `min 0.9, max 1.1`, `canary ≤ stable + 0.005 (stable
/// 0.001)`. `stable` is the stable pods' value the canary was held to, when there was one.
pub fn threshold(metric: &Metric, stable: Option<f64>) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(min) = metric.min {
        parts.push(format!("min {min}"));
    }
    if let Some(max) = metric.max {
        parts.push(format!("max {max}"));
    }
    if let Some(c) = &metric.compare {
        let bounds = [
            (c.max_increase, "≤ stable +"),
            (c.max_ratio, "≤ stable ×"),
            (c.max_decrease, "≥ stable −"),
            (c.min_ratio, "≥ stable ×"),
        ];
        parts.extend(
            bounds
                .iter()
                .filter_map(|(b, words)| b.map(|b| format!("canary {words} {b}"))),
        );
    }
    if parts.is_empty() {
        return "any value".to_owned();
    }
    let mut out = parts.join(", ");
    if let (Some(_), Some(s)) = (&metric.compare, stable) {
        out.push_str(&format!(" (stable {s})"));
    }
    out
}

/// The metrics of `analysis` measured at a step of `weight`: at 100 % the
/// stable pods take no traffic (scaled to zero, or no route weight), so a
/// `compare` metric has nothing to compare with and is neither measured nor
/// counted for `minPasses` there; the step is judged by the other metrics.
/// A flag bakes at 100 too.
pub fn measured_at(analysis: &Analysis, weight: i32) -> Analysis {
    let mut out = analysis.clone();
    if weight >= 100 {
        out.metrics.retain(|m| m.compare.is_none());
    }
    out
}

fn no_data_outcome(policy: NoDataPolicy) -> Outcome {
    match policy {
        NoDataPolicy::Inconclusive => Outcome::Inconclusive,
        NoDataPolicy::Fail => Outcome::Fail,
        NoDataPolicy::Pass => Outcome::Pass,
    }
}

/// Which pods a query measures: what `{{track}}` selects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Track {
    /// The pods Signalman starts for the new version (pod label `signalman.dev/track=canary`).
    #[default]
    Canary,
    /// Every other pod of the service: no track label, or another value.
    Stable,
}

impl Track {
    /// The label matcher `{{track}}` expands to. The metrics' label is `track`,
    /// relabelled from the pod label `signalman.dev/track`
    /// (`__meta_kubernetes_pod_label_signalman_dev_track`).
    pub fn matcher(self) -> &'static str {
        match self {
            Track::Canary => r#"track="canary""#,
            Track::Stable => r#"track!="canary""#,
        }
    }
}

/// The values a query template may refer to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryVars {
    /// `{{namespace}}`: the Release's namespace.
    pub namespace: String,
    /// `{{service}}`: the Kubernetes Service the traffic goes through, whose
    /// name metrics are labelled with: `traffic.gatewayAPI.service` when set,
    /// else the service's name in `spec.services` ([`crate::api::ServiceSpec::kubernetes_service`]).
    pub service: String,
    /// `{{release}}`: the Release's name.
    pub release: String,
    /// `{{canary_hash}}`: the `pod-template-hash` of the canary pods.
    pub canary_hash: String,
    /// `{{stable_hash}}`: the `pod-template-hash` of the stable pods.
    pub stable_hash: String,
    /// `{{track}}`: a whole label matcher, [`Track::matcher`]. A metric that
    /// does not compare is always measured on the canary.
    pub track: Track,
}

/// Replace `{{namespace}}`, `{{service}}`, `{{release}}`, `{{canary_hash}}`,
/// `{{stable_hash}}` and `{{track}}` in `template`.
///
/// Values are escaped for the PromQL string they stand in ([`quoting`]: a
/// double- or single-quoted string's backslash, quote and line breaks),
/// because templates put them inside label matchers and a value must never
/// end the string early and change the query; `validate` refuses a value
/// placeholder anywhere else. `{{track}}` is the exception: it is a whole
/// matcher (`track="canary"`), written by Signalman, not a value, and goes in
/// as it is. Unknown placeholders are left as they are, so a typo shows up in
/// the query Prometheus rejects rather than silently matching everything.
pub fn render_query(template: &str, vars: &QueryVars) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut lexer = quoting::Lexer::default();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        lexer.feed(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let name = after[..close].trim_matches([' ', '\t']);
        let value = match name {
            "namespace" => Some(&vars.namespace),
            "service" => Some(&vars.service),
            "release" => Some(&vars.release),
            "canary_hash" => Some(&vars.canary_hash),
            "stable_hash" => Some(&vars.stable_hash),
            _ => None,
        };
        let piece = match value {
            Some(v) => quoting::escape(v, lexer.place()),
            None if name == "track" => vars.track.matcher().to_owned(),
            None => rest[open..open + 2 + close + 2].to_owned(),
        };
        out.push_str(&piece);
        lexer.feed(&piece);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// What stands in for each placeholder when a query is checked before it
/// runs: plain words, which parse wherever a real value would (inside a
/// label matcher's string, or as part of a metric name).
fn sample_vars() -> QueryVars {
    QueryVars {
        namespace: "namespace".into(),
        service: "service".into(),
        release: "release".into(),
        canary_hash: "canaryhash".into(),
        stable_hash: "stablehash".into(),
        track: Track::Canary,
    }
}

/// Why `template`, its placeholders filled with sample values, can never give
/// a measurement: it does not parse as PromQL, or it yields a range vector or
/// a string where one number is wanted. `None` when it parses (Prometheus
/// still judges it when it runs: a parser may be more lenient than the
/// server's version). Checked by `validate`, so by `kubectl signalman plan`
/// and by the controller before anything moves: a query Prometheus refuses
/// would only count as errors, and hold the train mid-step.
pub fn query_problem(template: &str) -> Option<String> {
    use promql_parser::parser::{self, value::ValueType};
    let query = render_query(template, &sample_vars());
    match parser::parse(&query) {
        Err(e) => Some(format!(
            "does not parse as PromQL: {e}; fix the query (with its placeholders filled in it must \
             run in Prometheus' query page)"
        )),
        Ok(expr) => match expr.value_type() {
            ValueType::Vector | ValueType::Scalar => None,
            ValueType::Matrix => Some(
                "returns a range vector, not one number; put the range in a function and aggregate \
                 it, e.g. sum(rate(http_requests_total[1m]))"
                    .to_owned(),
            ),
            ValueType::String => Some(
                "returns a string, not one number; select a series and aggregate it, e.g. \
                 sum(rate(http_requests_total[1m]))"
                    .to_owned(),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(min: Option<f64>, max: Option<f64>) -> Metric {
        Metric {
            name: "m".into(),
            query: "q".into(),
            min,
            max,
            compare: None,
        }
    }

    #[test]
    fn bounds_are_inclusive() {
        let m = metric(Some(1.0), Some(2.0));
        let p = NoDataPolicy::Inconclusive;
        assert_eq!(judge(&m, &QueryResult::Value(1.0), None, p), Outcome::Pass);
        assert_eq!(judge(&m, &QueryResult::Value(2.0), None, p), Outcome::Pass);
        assert_eq!(
            judge(&m, &QueryResult::Value(0.999), None, p),
            Outcome::Fail
        );
        assert_eq!(
            judge(&m, &QueryResult::Value(2.001), None, p),
            Outcome::Fail
        );
    }

    #[test]
    fn a_missing_bound_is_open() {
        let p = NoDataPolicy::Inconclusive;
        assert_eq!(
            judge(
                &metric(None, Some(0.01)),
                &QueryResult::Value(-5.0),
                None,
                p
            ),
            Outcome::Pass
        );
        assert_eq!(
            judge(&metric(Some(0.9), None), &QueryResult::Value(1e9), None, p),
            Outcome::Pass
        );
    }

    #[test]
    fn infinity_is_beyond_every_bound() {
        let p = NoDataPolicy::Pass;
        let max = metric(None, Some(0.5));
        assert_eq!(
            judge(&max, &QueryResult::Value(f64::INFINITY), None, p),
            Outcome::Fail
        );
        let min = metric(Some(0.5), None);
        assert_eq!(
            judge(&min, &QueryResult::Value(f64::NEG_INFINITY), None, p),
            Outcome::Fail
        );
    }

    #[test]
    fn nan_and_empty_follow_the_no_data_policy() {
        let m = metric(None, Some(1.0));
        for r in [QueryResult::NoData, QueryResult::Value(f64::NAN)] {
            assert_eq!(
                judge(&m, &r, None, NoDataPolicy::Inconclusive),
                Outcome::Inconclusive
            );
            assert_eq!(judge(&m, &r, None, NoDataPolicy::Fail), Outcome::Fail);
            assert_eq!(judge(&m, &r, None, NoDataPolicy::Pass), Outcome::Pass);
        }
    }

    #[test]
    fn errors_are_errors_whatever_the_policy() {
        let m = metric(None, Some(1.0));
        let r = QueryResult::Error("connection refused".into());
        assert_eq!(judge(&m, &r, None, NoDataPolicy::Pass), Outcome::Error);
    }

    fn compare(c: Compare) -> Metric {
        Metric {
            compare: Some(c),
            ..metric(None, None)
        }
    }

    fn increase(by: f64) -> Metric {
        compare(Compare {
            max_increase: Some(by),
            ..Default::default()
        })
    }

    fn v(x: f64) -> QueryResult {
        QueryResult::Value(x)
    }

    /// The issue's case: an error rate of 2 % on the canary is fine when
    /// stable also fails 2 % of its requests, and a regression when stable
    /// fails 0.1 %.
    #[test]
    fn a_canary_is_judged_against_the_stable_version_it_replaces() {
        let m = increase(0.005);
        let p = NoDataPolicy::Inconclusive;
        assert_eq!(judge(&m, &v(0.02), Some(&v(0.02)), p), Outcome::Pass);
        assert_eq!(judge(&m, &v(0.02), Some(&v(0.001)), p), Outcome::Fail);
        // The same canary against a fixed bound of 1 % would fail either way.
        let fixed = metric(None, Some(0.01));
        assert_eq!(judge(&fixed, &v(0.02), Some(&v(0.02)), p), Outcome::Fail);
        // Up to the increase, inclusive (values exact in binary).
        let m = increase(0.25);
        assert_eq!(judge(&m, &v(0.75), Some(&v(0.5)), p), Outcome::Pass);
        assert_eq!(judge(&m, &v(0.7500001), Some(&v(0.5)), p), Outcome::Fail);
        // Better than stable is always fine on the upper side.
        assert_eq!(judge(&m, &v(0.0), Some(&v(0.5)), p), Outcome::Pass);
    }

    #[test]
    fn each_compare_bound_holds_the_canary_to_its_side() {
        let p = NoDataPolicy::Inconclusive;
        let ratio = compare(Compare {
            max_ratio: Some(1.5),
            ..Default::default()
        });
        assert_eq!(judge(&ratio, &v(3.0), Some(&v(2.0)), p), Outcome::Pass);
        assert_eq!(judge(&ratio, &v(3.5), Some(&v(2.0)), p), Outcome::Fail);
        // Against a stable value of 0 a ratio allows nothing above 0.
        assert_eq!(judge(&ratio, &v(0.0), Some(&v(0.0)), p), Outcome::Pass);
        assert_eq!(judge(&ratio, &v(0.001), Some(&v(0.0)), p), Outcome::Fail);
        let decrease = compare(Compare {
            max_decrease: Some(0.5),
            ..Default::default()
        });
        assert_eq!(judge(&decrease, &v(98.5), Some(&v(99.0)), p), Outcome::Pass);
        assert_eq!(
            judge(&decrease, &v(98.25), Some(&v(99.0)), p),
            Outcome::Fail
        );
        assert_eq!(
            judge(&decrease, &v(120.0), Some(&v(99.0)), p),
            Outcome::Pass
        );
        let min_ratio = compare(Compare {
            min_ratio: Some(0.75),
            ..Default::default()
        });
        assert_eq!(
            judge(&min_ratio, &v(75.0), Some(&v(100.0)), p),
            Outcome::Pass
        );
        assert_eq!(
            judge(&min_ratio, &v(74.0), Some(&v(100.0)), p),
            Outcome::Fail
        );
        // Several bounds: all of them must hold.
        let both = compare(Compare {
            max_increase: Some(0.25),
            max_ratio: Some(1.25),
            ..Default::default()
        });
        // 1.25 + 0.25 = 1.5 holds, 1.25 × 1.25 = 1.5625 holds.
        assert_eq!(judge(&both, &v(1.5), Some(&v(1.25)), p), Outcome::Pass);
        // 0.5 + 0.25 = 0.75 holds, 0.5 × 1.25 = 0.625 does not.
        assert_eq!(judge(&both, &v(0.75), Some(&v(0.5)), p), Outcome::Fail);
    }

    #[test]
    fn a_fixed_bound_on_one_side_and_a_comparison_on_the_other_both_hold() {
        let p = NoDataPolicy::Inconclusive;
        // Throughput: never below 10 requests/s, never more than 25 % above stable.
        let m = Metric {
            min: Some(10.0),
            ..compare(Compare {
                max_ratio: Some(1.25),
                ..Default::default()
            })
        };
        assert_eq!(judge(&m, &v(12.0), Some(&v(10.0)), p), Outcome::Pass);
        assert_eq!(
            judge(&m, &v(9.0), Some(&v(8.0)), p),
            Outcome::Fail,
            "below min"
        );
        assert_eq!(
            judge(&m, &v(13.0), Some(&v(10.0)), p),
            Outcome::Fail,
            "above ratio"
        );
        // Latency: never above 0.5 s, and not faster than stable by more than a half (a broken path).
        let m = Metric {
            max: Some(0.5),
            ..compare(Compare {
                min_ratio: Some(0.5),
                ..Default::default()
            })
        };
        assert_eq!(judge(&m, &v(0.25), Some(&v(0.25)), p), Outcome::Pass);
        assert_eq!(
            judge(&m, &v(0.75), Some(&v(1.0)), p),
            Outcome::Fail,
            "above max"
        );
        assert_eq!(
            judge(&m, &v(0.125), Some(&v(0.5)), p),
            Outcome::Fail,
            "below ratio"
        );
    }

    #[test]
    fn no_data_nan_or_an_error_on_either_side_is_no_verdict() {
        let m = increase(0.005);
        for (canary, stable) in [
            (QueryResult::NoData, v(0.01)),
            (v(0.01), QueryResult::NoData),
            (v(f64::NAN), v(0.01)),
            (v(0.01), v(f64::NAN)),
            (QueryResult::NoData, QueryResult::NoData),
        ] {
            for p in [
                NoDataPolicy::Inconclusive,
                NoDataPolicy::Fail,
                NoDataPolicy::Pass,
            ] {
                let expected = no_data_outcome(p);
                assert_eq!(
                    judge(&m, &canary, Some(&stable), p),
                    expected,
                    "{canary:?} vs {stable:?} with {p:?}"
                );
            }
        }
        let e = QueryResult::Error("connection refused".into());
        for (canary, stable) in [
            (e.clone(), v(0.01)),
            (v(0.01), e.clone()),
            (QueryResult::NoData, e.clone()),
            (e.clone(), QueryResult::NoData),
        ] {
            assert_eq!(
                judge(&m, &canary, Some(&stable), NoDataPolicy::Pass),
                Outcome::Error,
                "{canary:?} vs {stable:?}"
            );
        }
        // A compare metric measured on one track only is not a measurement.
        assert_eq!(
            judge(&m, &v(0.01), None, NoDataPolicy::Pass),
            Outcome::Error
        );
        // A metric that does not compare ignores a stable value.
        let fixed = metric(None, Some(0.01));
        let e = QueryResult::Error("x".into());
        assert_eq!(
            judge(&fixed, &v(0.001), Some(&e), NoDataPolicy::Fail),
            Outcome::Pass
        );
    }

    #[test]
    fn thresholds_say_every_bound_and_the_stable_value_held_to() {
        assert_eq!(threshold(&metric(None, Some(0.01)), None), "max 0.01");
        assert_eq!(
            threshold(&metric(Some(0.9), Some(1.1)), None),
            "min 0.9, max 1.1"
        );
        assert_eq!(
            threshold(&increase(0.005), Some(0.001)),
            "canary ≤ stable + 0.005 (stable 0.001)"
        );
        assert_eq!(threshold(&increase(0.005), None), "canary ≤ stable + 0.005");
        let all = Metric {
            min: Some(10.0),
            ..compare(Compare {
                max_increase: Some(0.5),
                max_ratio: Some(1.2),
                max_decrease: None,
                min_ratio: None,
            })
        };
        assert_eq!(
            threshold(&all, Some(12.0)),
            "min 10, canary ≤ stable + 0.5, canary ≤ stable × 1.2 (stable 12)"
        );
        let low = compare(Compare {
            max_decrease: Some(0.01),
            min_ratio: Some(0.9),
            ..Default::default()
        });
        assert_eq!(
            threshold(&low, Some(0.99)),
            "canary ≥ stable − 0.01, canary ≥ stable × 0.9 (stable 0.99)"
        );
        // A stable value is no part of a fixed bound.
        assert_eq!(threshold(&metric(None, Some(1.0)), Some(3.0)), "max 1");
    }

    #[test]
    fn compare_metrics_are_not_measured_at_100_percent() {
        let a = Analysis {
            metrics: vec![metric(None, Some(0.01)), increase(0.005)],
            ..Default::default()
        };
        assert_eq!(measured_at(&a, 99).metrics.len(), 2);
        assert_eq!(measured_at(&a, 100).metrics.len(), 1);
        assert_eq!(measured_at(&a, 100).metrics[0].compare, None);
    }

    #[test]
    fn track_expands_to_a_whole_label_matcher() {
        let q = r#"sum(rate(http_requests_total{namespace="{{namespace}}",service="{{service}}",{{track}},code=~"5.."}[1m]))"#;
        let canary = render_query(q, &vars());
        assert_eq!(
            canary,
            r#"sum(rate(http_requests_total{namespace="shop",service="checkout",track="canary",code=~"5.."}[1m]))"#
        );
        let stable = render_query(
            q,
            &QueryVars {
                track: Track::Stable,
                ..vars()
            },
        );
        assert_eq!(
            stable,
            r#"sum(rate(http_requests_total{namespace="shop",service="checkout",track!="canary",code=~"5.."}[1m]))"#
        );
        // A query that does not compare gets the canary's matcher.
        assert_eq!(
            render_query("x{ {{ track }} }", &QueryVars::default()),
            r#"x{ track="canary" }"#
        );
        // Both parse, with the matcher where a matcher goes.
        assert_eq!(query_problem(q), None);
        assert_eq!(query_problem("sum(up{ {{track}} })"), None);
    }

    fn vars() -> QueryVars {
        QueryVars {
            namespace: "shop".into(),
            service: "checkout".into(),
            release: "rel-1".into(),
            canary_hash: "abc".into(),
            stable_hash: "def".into(),
            track: Track::Canary,
        }
    }

    #[test]
    fn every_placeholder_is_replaced() {
        let q = render_query(
            r#"x{namespace="{{namespace}}",service="{{ service }}",r="{{release}}",c="{{canary_hash}}",s="{{stable_hash}}"}"#,
            &vars(),
        );
        assert_eq!(
            q,
            r#"x{namespace="shop",service="checkout",r="rel-1",c="abc",s="def"}"#
        );
    }

    #[test]
    fn values_cannot_break_out_of_the_string() {
        let v = QueryVars {
            service: "a\"} or vector(1) #\\\nb".into(),
            ..vars()
        };
        let q = render_query(r#"x{service="{{service}}"}"#, &v);
        assert_eq!(q, r#"x{service="a\"} or vector(1) #\\\nb"}"#);
    }

    #[test]
    fn unknown_or_unclosed_placeholders_stay() {
        assert_eq!(
            render_query("a{{nope}}b{{service}}", &vars()),
            "a{{nope}}bcheckout"
        );
        assert_eq!(render_query("a{{service", &vars()), "a{{service");
    }

    #[test]
    fn service_is_the_kubernetes_service_the_traffic_and_its_metrics_go_through() {
        use crate::api::{GatewayApiTraffic, ServiceSpec, Traffic};
        let mut svc: ServiceSpec = serde_json::from_value(serde_json::json!({
            "name": "payments", "deployment": "payments-api", "change": {"images": {"api": "x:v2"}}
        }))
        .unwrap();
        let query = r#"rate(http_requests_total{service="{{service}}"}[1m])"#;
        let render = |svc: &ServiceSpec| {
            let vars = QueryVars {
                service: svc.kubernetes_service().to_owned(),
                ..Default::default()
            };
            render_query(query, &vars)
        };
        assert_eq!(
            render(&svc),
            r#"rate(http_requests_total{service="payments"}[1m])"#
        );
        svc.traffic = Some(Traffic {
            gateway_api: Some(GatewayApiTraffic {
                http_route: "shop".into(),
                service: Some("payments-stable".into()),
            }),
        });
        assert_eq!(
            render(&svc),
            r#"rate(http_requests_total{service="payments-stable"}[1m])"#
        );
    }

    /// The queries of one list, `#` lines left out.
    fn queries(list: &'static str) -> impl Iterator<Item = &'static str> {
        list.lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
    }

    #[test]
    fn queries_prometheus_accepts_pass_and_those_it_refuses_are_refused() {
        for q in queries(include_str!("queries/valid.promql")) {
            assert_eq!(query_problem(q), None, "{q}");
        }
        for q in queries(include_str!("queries/invalid.promql")) {
            let why = query_problem(q).unwrap_or_else(|| panic!("{q} passed"));
            assert!(why.starts_with("does not parse as PromQL: "), "{q}: {why}");
        }
    }

    #[test]
    fn a_query_must_give_one_number_not_a_range_or_a_string() {
        let range = query_problem(r#"x{service="{{service}}"}[5m]"#).unwrap();
        assert!(range.starts_with("returns a range vector"), "{range}");
        assert_eq!(
            query_problem(r#""a string""#).as_deref(),
            Some(
                "returns a string, not one number; select a series and aggregate it, e.g. \
                 sum(rate(http_requests_total[1m]))"
            )
        );
    }

    proptest::proptest! {
        /// Whatever a user writes, the check answers; it never panics (it
        /// runs in the controller's reconcile).
        #[test]
        fn the_query_check_never_panics(
            parts in proptest::collection::vec(proptest::sample::select(vec![
                "sum", "rate", "(", ")", "[", "]", "{", "}", "{{service}}", "\"", "x", "=", "=~",
                "1m", ":", "@", "offset", "by", "or", "/", "-", "1", "0.5", ",", " ", "bool",
                "le", "histogram_quantile", "start()", "'", "`", "#", "\\", "\n", "nan", "Inf",
            ]), 0..24),
            noise in ".{0,12}",
        ) {
            let query = format!("{}{noise}", parts.concat());
            let _ = query_problem(&query);
        }
    }
}

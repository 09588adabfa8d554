//! The measurement vocabulary and its semantics, all pure.
//!
//! The engine asks for [`MeasurementRequest`]s, the shell runs the queries
//! (its Prometheus client lives in the controller) and hands back [`Taken`]
//! measurements; [`judge`] turns what a query returned into an [`Outcome`] and
//! [`render_query`] fills a metric's query template, so the engine and the
//! plugin agree on every number.

use jiff::Timestamp;

use crate::api::{Metric, NoDataPolicy, Outcome};

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

/// What a value inside `[min, max]` (inclusive) counts as, and why a value fails.
///
/// - a value within the bounds passes, outside fails; a missing bound is open;
/// - NaN (Prometheus' answer to `0/0`, e.g. an error ratio with no requests) is
///   no evidence at all, so it counts like an empty result, by the `noData` policy;
/// - `+Inf`/`-Inf` are ordinary numbers beyond every bound (`histogram_quantile`
///   answers `+Inf` when latency is above the top bucket, which must fail a `max`);
/// - an error (unreachable Prometheus, bad query) is [`Outcome::Error`].
pub fn judge(metric: &Metric, result: &QueryResult, no_data: NoDataPolicy) -> Outcome {
    match result {
        QueryResult::Error(_) => Outcome::Error,
        QueryResult::NoData => no_data_outcome(no_data),
        QueryResult::Value(v) if v.is_nan() => no_data_outcome(no_data),
        QueryResult::Value(v) => {
            let above_min = metric.min.is_none_or(|min| *v >= min);
            let below_max = metric.max.is_none_or(|max| *v <= max);
            if above_min && below_max {
                Outcome::Pass
            } else {
                Outcome::Fail
            }
        }
    }
}

fn no_data_outcome(policy: NoDataPolicy) -> Outcome {
    match policy {
        NoDataPolicy::Inconclusive => Outcome::Inconclusive,
        NoDataPolicy::Fail => Outcome::Fail,
        NoDataPolicy::Pass => Outcome::Pass,
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
}

/// Replace `{{namespace}}`, `{{service}}`, `{{release}}`, `{{canary_hash}}` and
/// `{{stable_hash}}` in `template`.
///
/// Values are escaped for a PromQL double-quoted string (backslash, double
/// quote, newline), because templates put them inside label matchers and a
/// value must never end the string early and change the query. Unknown
/// placeholders are left as they are, so a typo shows up in the query
/// Prometheus rejects rather than silently matching everything.
pub fn render_query(template: &str, vars: &QueryVars) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let name = after[..close].trim();
        let value = match name {
            "namespace" => Some(&vars.namespace),
            "service" => Some(&vars.service),
            "release" => Some(&vars.release),
            "canary_hash" => Some(&vars.canary_hash),
            "stable_hash" => Some(&vars.stable_hash),
            _ => None,
        };
        match value {
            Some(v) => escape_into(&mut out, v),
            None => out.push_str(&rest[open..open + 2 + close + 2]),
        }
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
            ValueType::String => Some("returns a string, not one number".to_owned()),
        },
    }
}

fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
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
        assert_eq!(judge(&m, &QueryResult::Value(1.0), p), Outcome::Pass);
        assert_eq!(judge(&m, &QueryResult::Value(2.0), p), Outcome::Pass);
        assert_eq!(judge(&m, &QueryResult::Value(0.999), p), Outcome::Fail);
        assert_eq!(judge(&m, &QueryResult::Value(2.001), p), Outcome::Fail);
    }

    #[test]
    fn a_missing_bound_is_open() {
        let p = NoDataPolicy::Inconclusive;
        assert_eq!(
            judge(&metric(None, Some(0.01)), &QueryResult::Value(-5.0), p),
            Outcome::Pass
        );
        assert_eq!(
            judge(&metric(Some(0.9), None), &QueryResult::Value(1e9), p),
            Outcome::Pass
        );
    }

    #[test]
    fn infinity_is_beyond_every_bound() {
        let p = NoDataPolicy::Pass;
        let max = metric(None, Some(0.5));
        assert_eq!(
            judge(&max, &QueryResult::Value(f64::INFINITY), p),
            Outcome::Fail
        );
        let min = metric(Some(0.5), None);
        assert_eq!(
            judge(&min, &QueryResult::Value(f64::NEG_INFINITY), p),
            Outcome::Fail
        );
    }

    #[test]
    fn nan_and_empty_follow_the_no_data_policy() {
        let m = metric(None, Some(1.0));
        for r in [QueryResult::NoData, QueryResult::Value(f64::NAN)] {
            assert_eq!(
                judge(&m, &r, NoDataPolicy::Inconclusive),
                Outcome::Inconclusive
            );
            assert_eq!(judge(&m, &r, NoDataPolicy::Fail), Outcome::Fail);
            assert_eq!(judge(&m, &r, NoDataPolicy::Pass), Outcome::Pass);
        }
    }

    #[test]
    fn errors_are_errors_whatever_the_policy() {
        let m = metric(None, Some(1.0));
        let r = QueryResult::Error("connection refused".into());
        assert_eq!(judge(&m, &r, NoDataPolicy::Pass), Outcome::Error);
    }

    fn vars() -> QueryVars {
        QueryVars {
            namespace: "shop".into(),
            service: "checkout".into(),
            release: "rel-1".into(),
            canary_hash: "abc".into(),
            stable_hash: "def".into(),
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
        let text = query_problem(r#""a string""#).unwrap();
        assert!(text.starts_with("returns a string"), "{text}");
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

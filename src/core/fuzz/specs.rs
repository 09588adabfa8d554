//! Whole specs, a valid one mutated at a few fields with hostile values:
//! validation, planning, the preflight and the engine never panic on them;
//! what validation accepts is planned and runs; and what the CRD's schema
//! refuses (lengths, items, ranges, patterns, enums; its CEL rules are held
//! to `validate` by `e2e/tests/crd_agreement.rs` against a real API server)
//! `validate` refuses too, so `plan` never promises what the API server refuses.

use kube::CustomResourceExt;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::hostile_text;
use crate::api::{Release, ReleaseSpec, validate, validate_name};
use crate::engine::sim::Sim;
use crate::preflight::{ClusterView, ServiceView, cluster_problems};

const QUERY: &str = r#"sum(rate(http_requests_total{namespace="{{namespace}}",service="{{service}}",{{track}},code=~"5.."}[1m]))"#;

/// A valid spec that uses every part a mutation may reach: a migration, a
/// deployment behind a route, a flag, gates, verification, a window.
fn base() -> Value {
    let job = json!({"spec": {"template": {"spec": {"restartPolicy": "Never",
        "containers": [{"name": "migrate", "image": "registry.example/migrate:v2"}]}}}});
    json!({
        "owner": "team-shop",
        "summary": "checkout v2",
        "prometheus": {"address": "http://prometheus.monitoring:9090"},
        "holdTimeout": "30m",
        "defaults": {
            "steps": [{"weight": 10, "bake": "1m"}, {"weight": 50, "bake": "1m"}, {"weight": 100, "bake": "1m"}],
            "analysis": {"interval": "10s", "failureLimit": 0, "minPasses": 2,
                "metrics": [{"name": "error-rate", "query": QUERY, "max": 0.01}]},
        },
        "services": [
            {"name": "web", "deployment": "web", "owner": "team-web", "dependsOn": ["db"],
             "change": {"images": {"app": "registry.example/web:v2"}, "env": {"app": {"MODE": "v2"}}},
             "traffic": {"gatewayAPI": {"httpRoute": "shop", "service": "web"}},
             "gates": [{"name": "web-smoke", "query": "sum(up{namespace=\"{{namespace}}\"})", "min": 1}]},
            {"name": "db", "job": {"forward": job, "rollback": job, "timeout": "10m"}},
            {"name": "on", "dependsOn": ["web"], "flag": {"configMap": "flags", "keys": {"checkout-v2": "on"}, "bake": "1m"}},
        ],
        "gates": [{"name": "no-alerts", "query": "sum(ALERTS{namespace=\"{{namespace}}\"}) or vector(0)", "max": 0},
                  {"name": "sre", "approval": true}],
        "gateTimeout": "4h",
        "window": {"days": ["Monday", "Tuesday"], "from": "09:00", "to": "17:00", "timeZone": "Europe/Berlin"},
        "verify": {"bake": "5m", "analysis": {"metrics": [{"name": "checkouts",
            "query": "sum(rate(checkouts_total{namespace=\"{{namespace}}\",release=\"{{release}}\"}[5m]))", "min": 1}]}},
    })
}

/// The string fields a mutation may reach.
const STRINGS: &[&str] = &[
    "/owner",
    "/summary",
    "/prometheus/address",
    "/policy",
    "/resumeHold",
    "/services/0/name",
    "/services/0/deployment",
    "/services/0/owner",
    "/services/0/dependsOn/0",
    "/services/0/change/images/app",
    "/services/0/change/env/app/MODE",
    "/services/0/traffic/gatewayAPI/httpRoute",
    "/services/0/traffic/gatewayAPI/service",
    "/services/0/gates/0/name",
    "/services/0/gates/0/query",
    "/services/1/name",
    "/services/1/job/irreversible/justification",
    "/services/2/name",
    "/services/2/flag/configMap",
    "/services/2/flag/keys/checkout-v2",
    "/defaults/analysis/metrics/0/name",
    "/defaults/analysis/metrics/0/query",
    "/defaults/analysis/skipAnalysis/reason",
    "/gates/0/name",
    "/gates/0/query",
    "/window/timeZone",
    "/window/from",
    "/window/to",
    "/override/justification",
    "/services/0/hold/reason",
    "/verify/analysis/metrics/0/name",
    "/verify/analysis/metrics/0/query",
];

/// The numeric fields.
const NUMBERS: &[&str] = &[
    "/defaults/steps/0/weight",
    "/defaults/steps/2/weight",
    "/defaults/analysis/failureLimit",
    "/defaults/analysis/inconclusiveLimit",
    "/defaults/analysis/errorLimit",
    "/defaults/analysis/minPasses",
    "/defaults/analysis/metrics/0/max",
    "/defaults/analysis/metrics/0/min",
    "/gates/0/max",
    "/gates/0/min",
];

/// The duration fields.
const DURATIONS: &[&str] = &[
    "/holdTimeout",
    "/gateTimeout",
    "/defaults/steps/0/bake",
    "/defaults/analysis/interval",
    "/services/1/job/timeout",
    "/services/2/flag/bake",
    "/verify/bake",
    "/gates/0/interval",
];

/// The lists, and an item to grow each with.
/// A list's pointer and how its i-th item is made.
type Growth = (&'static str, fn(usize) -> Value);

fn lists() -> Vec<Growth> {
    vec![
        ("/services", |i: usize| {
            json!({"name": format!("s{i}"), "deployment": format!("d{i}"),
            "change": {"images": {"app": "x:v2"}}})
        }),
        (
            "/defaults/steps",
            |i: usize| json!({"weight": i + 1, "bake": "1s"}),
        ),
        (
            "/defaults/analysis/metrics",
            |i: usize| json!({"name": format!("m{i}"), "query": "up", "min": 1}),
        ),
        (
            "/gates",
            |i: usize| json!({"name": format!("g{i}"), "approval": true}),
        ),
        (
            "/services/0/gates",
            |i: usize| json!({"name": format!("sg{i}"), "approval": true}),
        ),
        ("/services/0/dependsOn", |_: usize| json!("db")),
        ("/services/2/flag/keys", |_: usize| json!("on")),
        ("/window/days", |i: usize| {
            json!(
                [
                    "Monday",
                    "Tuesday",
                    "Wednesday",
                    "Thursday",
                    "Friday",
                    "Saturday",
                    "Sunday"
                ][i % 7]
            )
        }),
    ]
}

/// Lengths at and just over every string limit of the schema.
const TEXT_LENGTHS: &[usize] = &[
    0, 56, 57, 63, 64, 246, 247, 253, 254, 512, 513, 1024, 1025, 2048, 2049, 4096, 4097,
];

/// Lengths at and around every limit of the schema.
const LENGTHS: &[usize] = &[
    0, 1, 2, 7, 8, 19, 20, 21, 50, 51, 56, 57, 63, 64, 99, 100, 101, 246, 247, 253, 254, 512, 513,
    1024, 1025, 2048, 2049, 4096, 4097,
];

fn mutation() -> BoxedStrategy<(String, Value)> {
    let text = prop_oneof![
        1 => hostile_text().prop_map(Value::from),
        1 => (proptest::sample::select(TEXT_LENGTHS), proptest::sample::select(vec!["x", "é", "-", " "]))
            .prop_map(|(n, c)| Value::from(c.repeat(n))),
    ];
    let string = (proptest::sample::select(STRINGS), text).prop_map(|(p, v)| (p.to_owned(), v));
    let number = (
        proptest::sample::select(NUMBERS),
        prop_oneof![
            Just(json!(-1)),
            Just(json!(0)),
            Just(json!(1)),
            Just(json!(99)),
            Just(json!(100)),
            Just(json!(101)),
            Just(json!(1000)),
            Just(json!(1001)),
            Just(json!(2_147_483_648_i64)),
            Just(json!(-0.5)),
            Just(json!(1e308)),
            Just(json!(0.5)),
        ],
    )
        .prop_map(|(p, v)| (p.to_owned(), v));
    let duration = (
        proptest::sample::select(DURATIONS),
        proptest::sample::select(vec![
            "0s", "999ms", "1s", "-1s", "1h", "10000h", "1.5m", "soon", "", "1s1ms",
        ]),
    )
        .prop_map(|(p, v)| (p.to_owned(), json!(v)));
    let list = (
        0..lists().len(),
        proptest::sample::select(
            LENGTHS
                .iter()
                .copied()
                .filter(|n| *n <= 101)
                .collect::<Vec<_>>(),
        ),
    )
        .prop_map(|(i, n)| {
            let (pointer, item) = lists()[i];
            let value = if pointer.ends_with("/keys") {
                Value::Object((0..n).map(|k| (format!("k{k}"), item(k))).collect())
            } else {
                Value::Array((0..n).map(item).collect())
            };
            (pointer.to_owned(), value)
        });
    let removal = proptest::sample::select(
        STRINGS
            .iter()
            .chain(NUMBERS)
            .chain(DURATIONS)
            .copied()
            .collect::<Vec<_>>(),
    )
    .prop_map(|p| (p.to_owned(), Value::Null));
    prop_oneof![4 => string, 2 => number, 2 => duration, 2 => list, 1 => removal].boxed()
}

fn put(doc: &mut Value, pointer: &str, value: Value) {
    let (parent, last) = pointer.rsplit_once('/').unwrap();
    let mut at = doc;
    for key in parent.split('/').skip(1) {
        let next = match at {
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            Value::Object(map) => Some(map.entry(key.to_owned()).or_insert_with(|| json!({}))),
            _ => None,
        };
        match next {
            Some(n) => at = n,
            None => return,
        }
    }
    match (at, value) {
        (Value::Object(map), Value::Null) => {
            map.remove(last);
        }
        (Value::Object(map), v) => {
            map.insert(last.to_owned(), v);
        }
        (Value::Array(items), v) => {
            if let Some(slot) = last.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                *slot = v;
            }
        }
        _ => {}
    }
}

/// The spec `mutations` make of [`base`], if it still reads as one.
fn spec(mutations: &[(String, Value)]) -> Option<ReleaseSpec> {
    let mut doc = base();
    for (pointer, value) in mutations {
        put(&mut doc, pointer, value.clone());
    }
    serde_json::from_value(doc).ok()
}

/// A cluster where every service's Deployment, container `app` and route exist.
fn cluster(spec: &ReleaseSpec) -> ClusterView {
    ClusterView {
        namespace: "shop".into(),
        services: spec
            .services
            .iter()
            .map(|s| {
                let seen = ServiceView {
                    containers: Some(vec!["app".into()]),
                    route_found: true,
                    replicas: Some(2),
                };
                (s.name.clone(), seen)
            })
            .collect(),
        config_maps: ["flags".to_owned()].into(),
        ..Default::default()
    }
}

#[test]
fn the_base_spec_is_valid_and_runs_to_success() {
    let s = spec(&[]).unwrap();
    assert_eq!(validate(&s), vec![]);
    assert!(crate::plan::plan(&s).is_ok());
    assert!(schema_refusal(&s).is_none(), "{:?}", schema_refusal(&s));
}

proptest! {
    /// Nothing a Release's author writes makes the checks panic; what they
    /// accept is planned, passes the preflight's reads and is decided on.
    #[test]
    fn no_spec_panics_validation_planning_preflight_or_the_engine(
        mutations in proptest::collection::vec(mutation(), 1..5),
        name in prop_oneof![3 => Just("checkout".to_owned()), 1 => hostile_text()],
    ) {
        let Some(s) = spec(&mutations) else { return Ok(()) };
        let problems = validate(&s);
        let _ = validate_name(&name, &s);
        let unplannable = crate::plan::problems(&s);
        for p in &unplannable {
            let _ = p.problem(&s).to_string();
        }
        let _ = cluster_problems(&s, &cluster(&s));
        let _ = crate::plan::plan(&s);
        if problems.is_empty() && unplannable.is_empty() {
            prop_assert!(crate::plan::plan(&s).is_ok());
            let mut sim = Sim::new(s);
            sim.pass();
            sim.pass();
        }
    }

    /// What the CRD's schema refuses, `validate` refuses: `plan` never says
    /// yes to what `kubectl apply` then refuses.
    #[test]
    fn what_the_schema_refuses_validate_refuses(
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let Some(s) = spec(&mutations) else { return Ok(()) };
        if let Some(why) = schema_refusal(&s) {
            prop_assert!(!validate(&s).is_empty(), "the schema refuses ({}) but validate accepts {:?}", why, mutations);
        }
    }
}

/// The first thing the Release CRD's schema (not its CEL rules) refuses in `spec`.
fn schema_refusal(spec: &ReleaseSpec) -> Option<String> {
    static SCHEMA: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
        let crd = serde_json::to_value(Release::crd()).unwrap();
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
    });
    refusal(&SCHEMA, &serde_json::to_value(spec).unwrap(), "spec")
}

fn refusal(schema: &Value, value: &Value, at: &str) -> Option<String> {
    let n = |k: &str| schema.get(k).and_then(Value::as_f64);
    match value {
        Value::String(s) => {
            let chars = s.chars().count() as f64;
            if n("maxLength").is_some_and(|m| chars > m)
                || n("minLength").is_some_and(|m| chars < m)
            {
                return Some(format!("{at}: length {chars}"));
            }
            if let Some(p) = schema.get("pattern").and_then(Value::as_str)
                && !regex::Regex::new(p).unwrap().is_match(s)
            {
                return Some(format!("{at}: pattern {p}"));
            }
        }
        Value::Number(x) => {
            let x = x.as_f64().unwrap();
            if n("maximum").is_some_and(|m| x > m) || n("minimum").is_some_and(|m| x < m) {
                return Some(format!("{at}: {x} out of range"));
            }
        }
        Value::Array(items) => {
            let len = items.len() as f64;
            if n("maxItems").is_some_and(|m| len > m) || n("minItems").is_some_and(|m| len < m) {
                return Some(format!("{at}: {len} items"));
            }
            if let Some(item) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    if let Some(r) = refusal(item, v, &format!("{at}[{i}]")) {
                        return Some(r);
                    }
                }
            }
        }
        Value::Object(map) => {
            if n("maxProperties").is_some_and(|m| map.len() as f64 > m) {
                return Some(format!("{at}: {} properties", map.len()));
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let extra = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, v) in map {
                let sub = properties.and_then(|p| p.get(k)).or(extra);
                if let Some(r) = sub.and_then(|sub| refusal(sub, v, &format!("{at}.{k}"))) {
                    return Some(r);
                }
            }
        }
        _ => {}
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !value.is_null()
        && !allowed.contains(value)
    {
        return Some(format!("{at}: not one of {allowed:?}"));
    }
    None
}

//! Hostile and malformed input, as one table (issue 15).
//!
//! Each row is a small mutation of one valid Release (or ReleasePolicy, or
//! ReleaseApproval), where it must be refused, and the exact words the user
//! gets there:
//!
//! - `api(..)`: the API server refuses it (the CRD's schema or a CEL rule);
//!   the message is what `kubectl apply` prints, and nothing is stored.
//! - `stalled(reason, ..)`: the API server takes it and the controller's
//!   preflight refuses it before anything moves: `Stalled=True` with that
//!   reason and message, phase `Pending`, and a `Warning` Event saying the same.
//! - `passes()`: nothing refuses it (a value at its limit, a hostile string
//!   that is still valid): it gets as far as the cluster check, which finds
//!   no Deployment named after the row (every row names its own, so no row
//!   claims another's).
//!
//! Every row's Release is `spec.paused: true`, so one that should have been
//! refused and was not still moves nothing; all of them live in one
//! namespace with one operator, and afterwards the resourceVersion of every
//! Deployment, Service, HTTPRoute, ConfigMap, Job and ControllerRevision in
//! it must be what it was before. Adding a row is one entry in [`rows`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use signalman::api::Release;
use signalman_e2e::release::{self as rel, ERROR_RATE_QUERY};
use signalman_e2e::{self as e2e, Scenario, WebApp, members};

// ------------------------------------------------------------------ the table

/// What a row is about, for the count the test prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    /// A CEL rule of a CRD (`x_kube(validation ...)` in `src/core/api/`).
    Cel,
    /// A rule of `validate`, `plan` or the preflight: the controller refuses it.
    Preflight,
    /// A schema limit (length, items, range), just over it or at it.
    Limit,
    /// Quotes, braces, newlines, unicode and control characters.
    Hostile,
}
use Source::*;

/// Which object a row writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Release,
    Policy,
    Approval,
}

/// Where it must be refused, and the words.
#[derive(Clone, Debug)]
enum Expect {
    /// By the API server: what follows `is invalid: ` in `kubectl apply`'s error
    /// (several errors as `* one\n* two`).
    Api(String),
    /// By the controller: the `Stalled` reason and message (`{ns}` is the namespace).
    Stalled(&'static str, String),
    /// By nothing before the cluster check.
    Passes,
}

type Mutation = Box<dyn Fn(&mut Value) + Send + Sync>;

struct Row {
    source: Source,
    kind: Kind,
    name: &'static str,
    mutate: Mutation,
    expect: Expect,
}

fn row(source: Source, name: &'static str, mutate: Mutation, expect: Expect) -> Row {
    Row {
        source,
        kind: Kind::Release,
        name,
        mutate,
        expect,
    }
}

fn policy_row(source: Source, name: &'static str, mutate: Mutation, expect: Expect) -> Row {
    Row {
        kind: Kind::Policy,
        ..row(source, name, mutate, expect)
    }
}

fn approval_row(source: Source, name: &'static str, mutate: Mutation, expect: Expect) -> Row {
    Row {
        kind: Kind::Approval,
        ..row(source, name, mutate, expect)
    }
}

fn api(message: &str) -> Expect {
    Expect::Api(message.to_owned())
}

fn stalled(reason: &'static str, message: &str) -> Expect {
    Expect::Stalled(reason, message.to_owned())
}

fn passes() -> Expect {
    Expect::Passes
}

/// Set the value at a JSON pointer, creating the objects on the way; `-` appends to an array.
fn set(pointer: &'static str, value: impl Into<Value>) -> Mutation {
    let value = value.into();
    Box::new(move |doc| put(doc, pointer, value.clone()))
}

/// Several mutations, in order.
fn all(mutations: Vec<Mutation>) -> Mutation {
    Box::new(move |doc| mutations.iter().for_each(|m| m(doc)))
}

/// Set `pointer` to a list of `n` items, the i-th made by `item(i)`.
fn list(pointer: &'static str, n: usize, item: fn(usize) -> Value) -> Mutation {
    set(pointer, Value::Array((0..n).map(item).collect()))
}

fn put(doc: &mut Value, pointer: &str, value: Value) {
    let (parent, last) = pointer.rsplit_once('/').expect("a JSON pointer");
    let mut at = doc;
    for key in parent.split('/').skip(1) {
        at = match at {
            Value::Array(items) => &mut items[key.parse::<usize>().expect("an index")],
            other => {
                if !other.is_object() {
                    *other = json!({});
                }
                other
                    .as_object_mut()
                    .unwrap()
                    .entry(key.to_owned())
                    .or_insert_with(|| json!({}))
            }
        };
    }
    match at {
        Value::Array(items) if last == "-" => items.push(value),
        Value::Array(items) => items[last.parse::<usize>().expect("an index")] = value,
        other => {
            other
                .as_object_mut()
                .expect("an object")
                .insert(last.to_owned(), value);
        }
    }
}

/// A second deployment service, `b`, on its own Deployment.
fn second(deployment: &str) -> Value {
    json!({"name": "b", "deployment": deployment, "change": {"images": {"app": "registry.example/b:v2"}}})
}

/// A flag's `n` keys.
fn keys(n: usize) -> Value {
    Value::Object((0..n).map(|i| (format!("k{i}"), json!("on"))).collect())
}

fn migration() -> Value {
    json!({"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "migrate", "image": "registry.example/migrate:v2"}]}}}})
}

const METRIC: &str = "/spec/defaults/analysis/metrics/0";
const QUERY: &str = "/spec/defaults/analysis/metrics/0/query";
const SVC: &str = "/spec/services/0";
/// How every refusal of `--enforce-namespace` ends (`{ns}`: the namespace).
const CONFINED: &str = r#"the operator runs with --enforce-namespace, which adds namespace="{ns}" to every selector; remove the namespace matcher or write namespace="{ns}" (or {{namespace}})"#;
/// What the API server adds when a schema error kept it from running the CEL rules.
const UNCHECKED: &str = "\n* <nil>: Invalid value: null: some validation rules were not checked because the object \
                         was invalid; correct the existing errors to complete validation";

/// Every row, one a line. Names are unique DNS labels: each is its Release's
/// name (unless the row changes it) and its service's Deployment's.
#[rustfmt::skip]
fn rows() -> Vec<Row> {
    vec![
        // ---------------------------------------------------- Release CEL rules
        row(Cel, "owner-blank", set("/spec/owner", " \t"), api(r#"spec.owner: Invalid value: "string": spec.owner must name the accountable release owner"#)),
        row(Cel, "services-same-name", set("/spec/services/-", json!({"name": "web", "deployment": "other", "change": {"images": {"app": "x:v2"}}})), api(r#"spec.services: Invalid value: "array": spec.services: service names must be unique"#)),
        row(Cel, "deployment-twice", set("/spec/services/-", second("deployment-twice")), api(r#"spec.services: Invalid value: "array": spec.services: each Deployment can be in one service only; merge their changes into one service"#)),
        row(Cel, "depends-on-itself", set("/spec/services/0/dependsOn", json!(["web"])), api(r#"spec.services[0]: Invalid value: "object": spec.services[].dependsOn: a service cannot depend on itself"#)),
        row(Cel, "gateway-service-57", set("/spec/services/0/traffic", json!({"gatewayAPI": {"httpRoute": "shop", "service": "s".repeat(57)}})), api(r#"spec.services[0]: Invalid value: "object": spec.services[]: with traffic.gatewayAPI the stable Service (traffic.gatewayAPI.service, else name) has at most 56 characters, so that its canary Service <service>-canary is a valid Service name"#)),
        row(Cel, "deployment-and-flag", set("/spec/services/0/flag", json!({"configMap": "flags", "keys": {"k": "on"}})), api(r#"spec.services[0]: Invalid value: "object": spec.services[]: a service is exactly one of deployment (with change), job or flag; set one of them"#)),
        row(Cel, "flag-with-change", set(SVC, json!({"name": "web", "flag": {"configMap": "flags", "keys": {"k": "on"}}, "change": {"images": {"app": "x:v2"}}})), api(r#"spec.services[0]: Invalid value: "object": spec.services[]: change goes with deployment, and a deployment needs a change (images or env); a job or flag service has no change"#)),
        row(Cel, "flag-with-steps", set(SVC, json!({"name": "web", "flag": {"configMap": "flags", "keys": {"k": "on"}}, "steps": [{"weight": 50, "bake": "1s"}, {"weight": 100, "bake": "1s"}]})), api(r#"spec.services[0]: Invalid value: "object": spec.services[]: traffic and steps are for a deployment; a job runs once and a flag is set at once (its bake is flag.bake)"#)),
        row(Cel, "job-with-analysis", set("/spec/services/-", json!({"name": "db", "job": {"forward": migration(), "irreversible": {"justification": "drops a column"}}, "analysis": {"skipAnalysis": {"reason": "a job"}}})), api(r#"spec.services[1]: Invalid value: "object": spec.services[]: a job is judged by its exit, not by analysis; measure the services that depend on it instead"#)),
        row(Cel, "change-empty", set("/spec/services/0/change", json!({"images": {}})), api(r#"spec.services[0].change: Invalid value: "object": spec.services[].change must set images or env"#)),
        row(Cel, "steps-not-increasing", set("/spec/defaults/steps", json!([{"weight": 50, "bake": "1s"}, {"weight": 50, "bake": "1s"}, {"weight": 100, "bake": "1s"}])), api(r#"spec.defaults.steps: Invalid value: "array": spec.defaults.steps: weights must strictly increase"#)),
        row(Cel, "steps-not-at-100", set("/spec/services/0/steps", json!([{"weight": 10, "bake": "1s"}, {"weight": 50, "bake": "1s"}])), api(r#"spec.services[0].steps: Invalid value: "array": spec.services[].steps: the last step must have weight 100"#)),
        row(Cel, "bake-under-1s", set("/spec/defaults/steps/0/bake", "999ms"), api(r#"spec.defaults.steps[0].bake: Invalid value: "string": bake must be a duration of at least 1s, e.g. 2m"#)),
        row(Cel, "metrics-and-skip", set("/spec/defaults/analysis/skipAnalysis", json!({"reason": "no traffic"})), api(r#"spec.defaults.analysis: Invalid value: "object": analysis: set metrics or skipAnalysis, not both"#)),
        row(Cel, "interval-under-1s", set("/spec/defaults/analysis/interval", "500ms"), api(r#"spec.defaults.analysis.interval: Invalid value: "string": analysis.interval must be a duration of at least 1s, e.g. 30s"#)),
        row(Cel, "metric-names-twice", set("/spec/defaults/analysis/metrics/-", json!({"name": "error-rate", "query": "up", "max": 1})), api(r#"spec.defaults.analysis.metrics: Invalid value: "array": analysis.metrics: metric names must be unique"#)),
        row(Cel, "metric-without-bound", set(METRIC, json!({"name": "error-rate", "query": "up"})), api(r#"spec.defaults.analysis.metrics[0]: Invalid value: "object": analysis.metrics: each metric needs min, max or compare"#)),
        row(Cel, "metric-min-above-max", set("/spec/defaults/analysis/metrics/0/min", 0.5), api(r#"spec.defaults.analysis.metrics[0]: Invalid value: "object": analysis.metrics: min must not exceed max"#)),
        row(Cel, "max-and-increase", set("/spec/defaults/analysis/metrics/0/compare", json!({"maxIncrease": 0.01})), api(r#"spec.defaults.analysis.metrics[0]: Invalid value: "object": analysis.metrics[]: max and compare.maxIncrease/maxRatio both bound the upper side; keep max (a fixed bound) or the comparison, not both"#)),
        row(Cel, "min-and-min-ratio", set(METRIC, json!({"name": "error-rate", "query": "up", "min": 0.1, "compare": {"minRatio": 0.9}})), api(r#"spec.defaults.analysis.metrics[0]: Invalid value: "object": analysis.metrics[]: min and compare.maxDecrease/minRatio both bound the lower side; keep min (a fixed bound) or the comparison, not both"#)),
        row(Cel, "compare-empty", set(METRIC, json!({"name": "error-rate", "query": "up", "compare": {}})), api(r#"spec.defaults.analysis.metrics[0].compare: Invalid value: "object": analysis.metrics[].compare: give maxIncrease, maxRatio (higher is worse) or maxDecrease, minRatio (lower is worse)"#)),
        row(Cel, "max-ratio-zero", set(METRIC, json!({"name": "error-rate", "query": "up", "compare": {"maxRatio": 0}})), api(r#"spec.defaults.analysis.metrics[0].compare: Invalid value: "object": analysis.metrics[].compare.maxRatio must be greater than 0, e.g. 1.2 (the canary at most 20% above stable)"#)),
        row(Cel, "min-ratio-negative", set(METRIC, json!({"name": "error-rate", "query": "up", "compare": {"minRatio": -1}})), api(r#"spec.defaults.analysis.metrics[0].compare: Invalid value: "object": analysis.metrics[].compare.minRatio must be greater than 0, e.g. 0.9 (the canary at least 90% of stable)"#)),
        row(Cel, "increase-negative", set(METRIC, json!({"name": "error-rate", "query": "up", "compare": {"maxIncrease": -0.1}})), api(r#"spec.defaults.analysis.metrics[0].compare: Invalid value: "object": analysis.metrics[].compare.maxIncrease must not be negative, e.g. 0.005"#)),
        row(Cel, "decrease-negative", set(METRIC, json!({"name": "error-rate", "query": "up", "compare": {"maxDecrease": -0.1}})), api(r#"spec.defaults.analysis.metrics[0].compare: Invalid value: "object": analysis.metrics[].compare.maxDecrease must not be negative, e.g. 0.01"#)),
        row(Cel, "query-blank", set(QUERY, " \n "), api(r#"spec.defaults.analysis.metrics[0].query: Invalid value: "string": analysis.metrics[].query must be a PromQL query"#)),
        row(Cel, "skip-reason-blank", set("/spec/services/0/analysis", json!({"skipAnalysis": {"reason": " "}})), api(r#"spec.services[0].analysis.skipAnalysis.reason: Invalid value: "string": analysis.skipAnalysis.reason must say why the service is not measured"#)),
        row(Cel, "hold-reason-blank", set("/spec/services/0/hold", json!({"reason": "\t"})), api(r#"spec.services[0].hold.reason: Invalid value: "string": spec.services[].hold.reason must say why the service is not ready"#)),
        row(Cel, "hold-timeout-zero", set("/spec/holdTimeout", "0s"), api(r#"spec.holdTimeout: Invalid value: "string": spec.holdTimeout must be a duration of at least 1s, e.g. 30m"#)),
        row(Cel, "gate-timeout-zero", set("/spec/gateTimeout", "0s"), api(r#"spec.gateTimeout: Invalid value: "string": spec.gateTimeout must be a duration of at least 1s, e.g. 4h"#)),
        row(Cel, "gate-names-twice", set("/spec/gates", json!([{"name": "sre", "approval": true}, {"name": "sre", "approval": true}])), api(r#"spec.gates: Invalid value: "array": spec.gates: gate names must be unique"#)),
        row(Cel, "gate-query-and-approval", set("/spec/gates", json!([{"name": "g", "query": "up", "max": 1, "approval": true}])), api(r#"spec.gates[0]: Invalid value: "object": spec.gates[]: a gate is either a query (with min and/or max) or approval: true"#)),
        row(Cel, "gate-without-bound", set("/spec/gates", json!([{"name": "g", "query": "up"}])), api(r#"spec.gates[0]: Invalid value: "object": spec.gates[]: a query gate needs min, max or both"#)),
        row(Cel, "gate-min-above-max", set("/spec/services/0/gates", json!([{"name": "g", "query": "up", "min": 2, "max": 1}])), api(r#"spec.services[0].gates[0]: Invalid value: "object": spec.gates[]: min must not exceed max"#)),
        row(Cel, "gate-interval-zero", set("/spec/gates", json!([{"name": "g", "query": "up", "max": 1, "interval": "0s"}])), api(r#"spec.gates[0].interval: Invalid value: "string": spec.gates[].interval must be a duration of at least 1s, e.g. 30s"#)),
        row(Cel, "gate-query-blank", set("/spec/gates", json!([{"name": "g", "query": " ", "max": 1}])), api(r#"spec.gates[0].query: Invalid value: "string": spec.gates[].query must be a PromQL query"#)),
        row(Cel, "override-blank", set("/spec/override", json!({"justification": " "})), api(r#"spec.override.justification: Invalid value: "string": spec.override.justification must say why the release cannot wait for its window"#)),
        row(Cel, "prometheus-ftp", set("/spec/prometheus", json!({"address": "ftp://prometheus:9090"})), api(r#"spec.prometheus.address: Invalid value: "string": spec.prometheus.address must be an http:// or https:// URL with a host and an optional port and path, without spaces, e.g. http://prometheus.monitoring:9090"#)),
        row(Cel, "flag-without-config-map", set(SVC, json!({"name": "web", "flag": {"keys": {"k": "on"}}})), api(r#"spec.services[0].flag: Invalid value: "object": spec.services[].flag needs a source: configMap, the ConfigMap (in the Release's namespace) that holds the flag's keys"#)),
        row(Cel, "flag-key-invalid", set(SVC, json!({"name": "web", "flag": {"configMap": "flags", "keys": {"not a key": "on"}}})), api(r#"spec.services[0].flag.keys: Invalid value: "object": spec.services[].flag.keys: each key must be a valid ConfigMap key (letters, digits, '-', '_' and '.', at most 253 characters)"#)),
        row(Cel, "flag-bake-zero", set(SVC, json!({"name": "web", "flag": {"configMap": "flags", "keys": {"k": "on"}, "bake": "0s"}})), api(r#"spec.services[0].flag.bake: Invalid value: "string": spec.services[].flag.bake must be a duration of at least 1s, e.g. 5m"#)),
        row(Cel, "job-rollback-and-irreversible", set("/spec/services/-", json!({"name": "db", "job": {"forward": migration(), "rollback": migration(), "irreversible": {"justification": "x"}}})), api(r#"spec.services[1].job: Invalid value: "object": spec.services[].job: give a rollback Job template (job.rollback), or say why the migration cannot be reversed (job.irreversible.justification), not both"#)),
        row(Cel, "job-timeout-zero", set("/spec/services/-", json!({"name": "db", "job": {"forward": migration(), "rollback": migration(), "timeout": "0s"}})), api(r#"spec.services[1].job.timeout: Invalid value: "string": spec.services[].job.timeout must be a duration of at least 1s, e.g. 30m"#)),
        row(Cel, "irreversible-blank", set("/spec/services/-", json!({"name": "db", "job": {"forward": migration(), "irreversible": {"justification": "  "}}})), api(r#"spec.services[1].job.irreversible.justification: Invalid value: "string": spec.services[].job.irreversible.justification must say why the migration cannot be reversed"#)),
        row(Cel, "verify-skips", set("/spec/verify", json!({"bake": "10s", "analysis": {"skipAnalysis": {"reason": "x"}}})), api("* spec.verify: Invalid value: \"object\": spec.verify.analysis: verification is its metrics; give analysis.metrics (or leave spec.verify out)\n* spec.verify: Invalid value: \"object\": spec.verify.analysis.metrics: give at least one metric that watches the whole train, e.g. the checkout success rate")),
        row(Cel, "verify-without-metrics", set("/spec/verify", json!({"bake": "10s", "analysis": {"interval": "1s"}})), api(r#"spec.verify: Invalid value: "object": spec.verify.analysis.metrics: give at least one metric that watches the whole train, e.g. the checkout success rate"#)),
        row(Cel, "verify-compares", set("/spec/verify", json!({"bake": "10s", "analysis": {"metrics": [{"name": "m", "query": "up", "compare": {"maxIncrease": 0.1}}]}})), api(r#"spec.verify: Invalid value: "object": spec.verify.analysis.metrics[].compare: after promotion there is no stable version left to compare with; use min or max"#)),
        row(Cel, "verify-bake-zero", set("/spec/verify", json!({"bake": "0s", "analysis": {"metrics": [{"name": "m", "query": "up", "min": 1}]}})), api(r#"spec.verify.bake: Invalid value: "string": spec.verify.bake must be a duration of at least 1s, e.g. 10m"#)),
        row(Cel, "window-from-after-to", set("/spec/window", json!({"days": ["Monday"], "from": "17:00", "to": "09:00"})), api(r#"spec.window: Invalid value: "object": window: from must be before to (a window cannot cross midnight; use from 00:00 or to 24:00 and list both days)"#)),
        row(Cel, "window-day-twice", set("/spec/window", json!({"days": ["Monday", "Monday"], "from": "09:00", "to": "17:00"})), api(r#"spec.window.days: Invalid value: "array": window.days: list each day once"#)),
        row(Cel, "window-zone-unknown", set("/spec/window", json!({"days": ["Monday"], "from": "09:00", "to": "17:00", "timeZone": "Mars/Olympus"})), api(r#"spec.window.timeZone: Invalid value: "string": unknown time zone Mars/Olympus evaluating rule: timeZone must be an IANA time zone such as Europe/Berlin or UTC"#)),
        row(Cel, "risk-low-below-class", all(vec![set("/spec/risk", "low"), set("/spec/services/0/change/class", "payment")]), api(r#"spec: Invalid value: "object": spec.risk: low is below the risk of service web (a payment change); raise spec.risk or set it to auto"#)),
        row(Cel, "risk-medium-below-class", all(vec![set("/spec/risk", "medium"), set("/spec/services/0/change/class", "auth")]), api(r#"spec: Invalid value: "object": spec.risk: medium is below the risk of service web (an auth change is high risk); raise spec.risk to high or set it to auto"#)),
        row(Cel, "hotfix-unmeasured", all(vec![set("/spec/type", "hotfix"), set("/spec/services/0/analysis", json!({"skipAnalysis": {"reason": "urgent"}}))]), api(r#"spec: Invalid value: "object": spec.type: a hotfix is still measured: give every service at least one metric (no analysis.skipAnalysis)"#)),
        row(Cel, "unmeasured", set("/spec/defaults/analysis", json!({"interval": "1s"})), api(r#"spec: Invalid value: "object": spec.services: every deployment and flag service needs at least one metric (in its analysis.metrics, or in spec.defaults.analysis.metrics when it has no analysis of its own), or an explicit opt-out: analysis.skipAnalysis.reason"#)),
        row(Cel, "name-64", set("/metadata/name", "n".repeat(64)), api(r#"<nil>: Invalid value: "object": metadata.name: at most 63 characters, because the name is the value of the label signalman.dev/release on every object the release creates; use a shorter name"#)),
        // ---------------------------------------------- ReleasePolicy and ReleaseApproval CEL rules
        policy_row(Cel, "policy-steps", set("/spec/risks/low/steps", json!([{"weight": 50, "bake": "1s"}, {"weight": 40, "bake": "1s"}, {"weight": 100, "bake": "1s"}])), api(r#"spec.risks.low.steps: Invalid value: "array": steps: weights must strictly increase"#)),
        policy_row(Cel, "policy-rollback-window", set("/spec/rollbackWindow", "0s"), api(r#"spec.rollbackWindow: Invalid value: "string": spec.rollbackWindow must be a duration of at least 1s, e.g. 24h"#)),
        policy_row(Cel, "policy-window", set("/spec/window", json!({"days": ["Friday"], "from": "16:00", "to": "16:00"})), api(r#"spec.window: Invalid value: "object": window: from must be before to (a window cannot cross midnight; use from 00:00 or to 24:00 and list both days)"#)),
        policy_row(Cel, "policy-receivers-twice", set("/spec/notifications", json!({"receivers": [{"name": "chat", "urlFrom": {"name": "s", "key": "url"}}, {"name": "chat", "urlFrom": {"name": "s", "key": "url"}}]})), api(r#"spec.notifications.receivers: Invalid value: "array": notifications.receivers: receiver names must be unique"#)),
        approval_row(Cel, "approval-two-things", set("/spec/window", true), api(r#"spec: Invalid value: "object": spec: approve exactly one thing: a gate (spec.gate), a step (spec.step) or the window override (spec.window: true)"#)),
        approval_row(Cel, "approval-comment-blank", set("/spec/comment", " "), api(r#"spec.comment: Invalid value: "string": spec.comment must say what was checked or why it is approved"#)),
        // ------------------------------------------- the controller's preflight
        row(Preflight, "placeholder-typo", set(QUERY, r#"sum(up{service="{{servce}}"})"#), stalled("InvalidSpec", r#"spec.defaults.analysis.metrics[0].query: "{{servce}}" is not a placeholder; use {{namespace}}, {{service}}, {{release}}, {{canary_hash}}, {{stable_hash}} or {{track}} (a typo would select nothing)"#)),
        row(Preflight, "three-braces", set(METRIC, json!({"name": "error-rate", "query": "sum(up{{{track}}})", "compare": {"maxIncrease": 0.01}})), stalled("InvalidSpec", r#"spec.defaults.analysis.metrics[0].query: "{{{track}}": three braces in a row do not read as a selector's brace and a placeholder; put a space between them, e.g. up{ {{track}} }"#)),
        row(Preflight, "query-unparsable", set(QUERY, r#"sum(rate(x{service="{{service}}"}[1m])"#), stalled("InvalidSpec", "spec.defaults.analysis.metrics[0].query: does not parse as PromQL: unclosed left parenthesis; fix the query (with its placeholders filled in it must run in Prometheus' query page)")),
        row(Preflight, "query-range-vector", set(QUERY, r#"x{service="{{service}}"}[5m]"#), stalled("InvalidSpec", "spec.defaults.analysis.metrics[0].query: returns a range vector, not one number; put the range in a function and aggregate it, e.g. sum(rate(http_requests_total[1m]))")),
        row(Preflight, "compare-without-track", set(METRIC, json!({"name": "error-rate", "query": r#"sum(up{service="{{service}}"})"#, "compare": {"maxIncrease": 0.01}})), stalled("InvalidSpec", r#"spec.defaults.analysis.metrics[0].query: a compare metric runs its query once for the canary and once for the stable pods, and {{track}} is what tells them apart; put {{track}} among the query's label matchers, e.g. http_requests_total{service="{{service}}",{{track}}}"#)),
        row(Preflight, "verify-service-placeholder", set("/spec/verify", json!({"bake": "10s", "analysis": {"metrics": [{"name": "m", "query": r#"sum(up{service="{{service}}"})"#, "min": 1}]}})), stalled("InvalidSpec", r#"spec.verify.analysis.metrics[0].query: "{{service}}" is not a placeholder a verify query can use; use {{namespace}} or {{release}} (a verify query measures the whole train, not one service)"#)),
        row(Preflight, "gate-service-placeholder", set("/spec/gates", json!([{"name": "g", "query": r#"sum(up{service="{{service}}"})"#, "max": 1}])), stalled("InvalidSpec", r#"spec.gates[0].query: "{{service}}" is not a placeholder a gate can use; use {{namespace}} or {{release}} (a gate is checked for the whole release, not for one service)"#)),
        row(Preflight, "query-string", set(QUERY, r#""{{service}} is up""#), stalled("InvalidSpec", "spec.defaults.analysis.metrics[0].query: returns a string, not one number; select a series and aggregate it, e.g. sum(rate(http_requests_total[1m]))")),
        row(Preflight, "gate-name-twice-across", all(vec![set("/spec/gates", json!([{"name": "sre", "approval": true}])), set("/spec/services/0/gates", json!([{"name": "sre", "approval": true}]))]), stalled("InvalidSpec", r#"spec.services[0].gates[0].name: gate names must be unique across spec.gates and every service's gates; "sre" appears more than once"#)),
        row(Limit, "job-without-containers", all(vec![set("/spec/services/-", json!({"name": "db", "job": {"forward": migration(), "irreversible": {"justification": "drops a column"}}})), set("/spec/services/1/job/forward/spec/template/spec/containers", json!([])), set("/spec/services/0/dependsOn", json!(["db"]))]), api("spec.services[1].job.forward.spec.template.spec.containers: Invalid value: 0: spec.services[1].job.forward.spec.template.spec.containers in body should have at least 1 items")),
        row(Preflight, "config-map-claimed", set(SVC, json!({"name": "on", "flag": {"configMap": "held-flags", "keys": {"k": "on"}}})), stalled("ConfigMapClaimed", r#"spec.services[0].flag.configMap: ConfigMap "held-flags" is claimed by Release "claim-holder", which was created first and has not started (Pending); it goes first: wait for it, or abort it (spec.abort: true) or delete it"#)),
        row(Preflight, "env-name-invalid", set("/spec/services/0/change/env", json!({"app": {"A=B": "1"}})), stalled("InvalidSpec", r#"spec.services[0].change.env.app.A=B: "A=B" is not an environment variable name Kubernetes accepts: letters, digits, '_', '-' and '.', not starting with a digit; rename it"#)),
        row(Preflight, "migration-unordered", set("/spec/services/-", json!({"name": "db", "job": {"forward": migration(), "rollback": migration()}})), stalled("InvalidSpec", "spec.services[1]: migration db is ordered against nothing, so it would run beside the code of its wave instead of before it; add db to the dependsOn of the services that need it")),
        row(Limit, "job-restarts-always", all(vec![set("/spec/services/-", json!({"name": "db", "job": {"forward": migration(), "irreversible": {"justification": "drops a column"}}})), set("/spec/services/1/job/forward/spec/template/spec/restartPolicy", "Always"), set("/spec/services/0/dependsOn", json!(["db"]))]), api(&format!("* spec.services[1].job.forward.spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"Never\", \"OnFailure\"{UNCHECKED}"))),
        row(Preflight, "flag-key-twice", all(vec![set(SVC, json!({"name": "on", "flag": {"configMap": "flags", "keys": {"k": "on"}}})), set("/spec/services/-", json!({"name": "off", "flag": {"configMap": "flags", "keys": {"k": "off"}}}))]), stalled("InvalidSpec", r#"spec.services[1].flag.keys.k: service "on" sets key "k" of ConfigMap "flags" too; one flag service per key: merge them, or drop the key from one of them"#)),
        row(Preflight, "rollback-before-start", set("/spec/rollback", true), stalled("InvalidSpec", "spec.rollback: only a Succeeded release can be rolled back, and this one is Pending and has changed nothing; remove spec.rollback to let it start")),
        row(Preflight, "depends-on-unknown", set("/spec/services/0/dependsOn", json!(["ghost"])), stalled("InvalidPlan", r#"spec.services[0].dependsOn: service "web" depends on "ghost", which is not in spec.services; add it to the release or remove it from dependsOn"#)),
        row(Preflight, "dependency-cycle", all(vec![set("/spec/services/0/dependsOn", json!(["b"])), set("/spec/services/-", second("dependency-cycle-b")), set("/spec/services/1/dependsOn", json!(["web"]))]), stalled("InvalidPlan", "spec.services[0].dependsOn: dependency cycle: web -> b -> web; remove one of these dependencies")),
        row(Preflight, "no-deployment", set("/spec/services/0/deployment", "ghost"), stalled("DeploymentNotFound", r#"spec.services[0].deployment: Deployment "ghost" not found in namespace "{ns}"; create it or fix the name"#)),
        row(Preflight, "no-container", all(vec![set("/spec/services/0/deployment", "api"), set("/spec/services/0/change/images", json!({"sidecar": "x:v2"}))]), stalled("ContainerNotFound", r#"spec.services[0].change.images.sidecar: Deployment "api" has no container "sidecar" (it has "app"); use one of those names"#)),
        row(Preflight, "no-route", all(vec![set("/spec/services/0/deployment", "front"), set("/spec/services/0/traffic", json!({"gatewayAPI": {"httpRoute": "ghost"}}))]), stalled("RouteNotFound", r#"spec.services[0].traffic.gatewayAPI.httpRoute: HTTPRoute "ghost" not found in namespace "{ns}", or it has no backendRef to Service "web"; create it or fix the name"#)),
        row(Preflight, "no-config-map", set(SVC, json!({"name": "web", "flag": {"configMap": "ghost-flags", "keys": {"k": "on"}}})), stalled("ConfigMapNotFound", r#"spec.services[0].flag.configMap: ConfigMap "ghost-flags" not found in namespace "{ns}"; create it (the flag's keys may be absent from it) or fix the name"#)),
        row(Preflight, "claimed", set("/spec/services/0/deployment", "held"), stalled("DeploymentClaimed", r#"spec.services[0].deployment: Deployment "held" is claimed by Release "claim-holder", which was created first and has not started (Pending); it goes first: wait for it, or abort it (spec.abort: true) or delete it"#)),
        row(Preflight, "no-policy", set("/spec/policy", "ghost-policy"), stalled("PolicyNotFound", r#"ReleasePolicy "ghost-policy" (named by spec.policy) does not exist; create it, or name an existing one in spec.policy"#)),
        // ------------------------------ tenancy (the operator runs with --enforce-namespace)
        row(Preflight, "query-other-namespace", set(QUERY, r#"sum(rate(sim_http_requests_total{namespace="kube-system"}[1m]))"#), stalled("QueryOutsideNamespace", &format!(r#"spec.defaults.analysis.metrics[0].query: reads namespace "kube-system" (namespace="kube-system"), but a Release in namespace "{{ns}}" may read only its own namespace's series; {CONFINED}"#))),
        row(Preflight, "query-any-namespace", set(QUERY, r#"sum(rate(sim_http_requests_total{namespace=~".+"}[1m]))"#), stalled("QueryOutsideNamespace", &format!(r#"spec.defaults.analysis.metrics[0].query: may read namespaces other than "{{ns}}" (namespace=~".+"), but a Release in namespace "{{ns}}" may read only its own namespace's series; {CONFINED}"#))),
        row(Preflight, "gate-not-namespace", set("/spec/gates", json!([{"name": "g", "query": r#"sum(up{namespace!="kube-system"})"#, "max": 1}])), stalled("QueryOutsideNamespace", &format!(r#"spec.gates[0].query: may read namespaces other than "{{ns}}" (namespace!="kube-system"), but a Release in namespace "{{ns}}" may read only its own namespace's series; {CONFINED}"#))),
        row(Preflight, "query-own-namespace", set(QUERY, r#"sum(rate(sim_http_requests_total{namespace=~"{{namespace}}"}[1m]))"#), passes()),
        row(Preflight, "prometheus-not-allowed", set("/spec/prometheus", json!({"address": "http://169.254.169.254/latest/meta-data"})), stalled("PrometheusAddressNotAllowed", r#"spec.prometheus.address: "http://169.254.169.254/latest/meta-data" is not a Prometheus address this operator may query; the allowed addresses are the operator's --prometheus-url and --prometheus-allowed-address (chart values prometheusUrl and prometheusAllowedAddresses); remove spec.prometheus to use the operator's Prometheus, or ask the platform team to allow this address"#)),
        row(Preflight, "prometheus-path-differs", set("/spec/prometheus", json!({"address": format!("{}/admin", e2e::prometheus_url().trim_end_matches('/'))})), stalled("PrometheusAddressNotAllowed", &format!(r#"spec.prometheus.address: "{}/admin" is not a Prometheus address this operator may query; the allowed addresses are the operator's --prometheus-url and --prometheus-allowed-address (chart values prometheusUrl and prometheusAllowedAddresses); remove spec.prometheus to use the operator's Prometheus, or ask the platform team to allow this address"#, e2e::prometheus_url().trim_end_matches('/')))),
        row(Preflight, "prometheus-default-slash", set("/spec/prometheus", json!({"address": format!("{}/", e2e::prometheus_url().trim_end_matches('/'))})), passes()),
        // ----------------------------------------------------------- limits
        row(Limit, "services-101", list("/spec/services", 101, |i| json!({"name": format!("s{i}"), "deployment": format!("services-101-{i}"), "change": {"images": {"app": "x:v2"}}})), api(&format!("* spec.services: Too many: 101: must have at most 100 items{UNCHECKED}"))),
        row(Limit, "services-100", list("/spec/services", 100, |i| json!({"name": format!("s{i}"), "deployment": if i == 0 { "services-100".into() } else { format!("services-100-{i}") }, "change": {"images": {"app": "x:v2"}}})), passes()),
        row(Limit, "services-none", set("/spec/services", json!([])), api(r#"spec.services: Invalid value: 0: spec.services in body should have at least 1 items"#)),
        row(Limit, "steps-21", list("/spec/defaults/steps", 21, |i| json!({"weight": if i == 20 { 100 } else { i + 1 }, "bake": "1s"})), api(&format!("* spec.defaults.steps: Too many: 21: must have at most 20 items{UNCHECKED}"))),
        row(Limit, "steps-20", list("/spec/defaults/steps", 20, |i| json!({"weight": if i == 19 { 100 } else { i + 1 }, "bake": "1s"})), passes()),
        row(Limit, "steps-one", set("/spec/defaults/steps", json!([{"weight": 100, "bake": "1s"}])), api(r#"spec.defaults.steps: Invalid value: 1: spec.defaults.steps in body should have at least 2 items"#)),
        row(Limit, "weight-101", set("/spec/defaults/steps/1/weight", 101), api("* spec.defaults.steps[1].weight: Invalid value: 101: spec.defaults.steps[1].weight in body should be less than or equal to 100\n* spec.defaults.steps: Invalid value: \"array\": spec.defaults.steps: the last step must have weight 100")),
        row(Limit, "weight-0", set("/spec/defaults/steps/0/weight", 0), api(r#"spec.defaults.steps[0].weight: Invalid value: 0: spec.defaults.steps[0].weight in body should be greater than or equal to 1"#)),
        row(Limit, "metrics-21", list("/spec/defaults/analysis/metrics", 21, |i| json!({"name": format!("m{i}"), "query": "up", "min": 1})), api(&format!("* spec.defaults.analysis.metrics: Too many: 21: must have at most 20 items{UNCHECKED}"))),
        row(Limit, "metric-name-64", set("/spec/defaults/analysis/metrics/0/name", "m".repeat(64)), api(&format!("* spec.defaults.analysis.metrics[0].name: Too long: may not be more than 63 bytes{UNCHECKED}"))),
        row(Limit, "metric-name-63", set("/spec/defaults/analysis/metrics/0/name", "m".repeat(63)), passes()),
        row(Limit, "query-4097", set(QUERY, format!("up{}", " ".repeat(4095))), api(&format!("* spec.defaults.analysis.metrics[0].query: Too long: may not be more than 4096 bytes{UNCHECKED}"))),
        row(Limit, "query-4096", set(QUERY, format!("up{}", " ".repeat(4094))), passes()),
        row(Limit, "failure-limit-1001", set("/spec/defaults/analysis/failureLimit", 1001), api(r#"spec.defaults.analysis.failureLimit: Invalid value: 1001: spec.defaults.analysis.failureLimit in body should be less than or equal to 1000"#)),
        row(Limit, "failure-limit-1000", set("/spec/defaults/analysis/failureLimit", 1000), passes()),
        row(Limit, "error-limit-negative", set("/spec/defaults/analysis/errorLimit", -1), api(r#"spec.defaults.analysis.errorLimit: Invalid value: -1: spec.defaults.analysis.errorLimit in body should be greater than or equal to 0"#)),
        row(Limit, "min-passes-0", set("/spec/defaults/analysis/minPasses", 0), api(r#"spec.defaults.analysis.minPasses: Invalid value: 0: spec.defaults.analysis.minPasses in body should be greater than or equal to 1"#)),
        row(Limit, "inconclusive-limit-2e9", set("/spec/defaults/analysis/inconclusiveLimit", 3_000_000_000_i64), api(r#"spec.defaults.analysis.inconclusiveLimit: Invalid value: 3000000000: spec.defaults.analysis.inconclusiveLimit in body should be less than or equal to 1000"#)),
        row(Limit, "skip-reason-513", set("/spec/services/0/analysis", json!({"skipAnalysis": {"reason": "r".repeat(513)}})), api(&format!("* spec.services[0].analysis.skipAnalysis.reason: Too long: may not be more than 512 bytes{UNCHECKED}"))),
        row(Limit, "deployment-247", set("/spec/services/0/deployment", "d".repeat(247)), api(&format!("* spec.services[0].deployment: Too long: may not be more than 246 bytes{UNCHECKED}"))),
        row(Limit, "deployment-246", set("/spec/services/0/deployment", "d".repeat(246)), stalled("DeploymentNotFound", &format!(r#"spec.services[0].deployment: Deployment "{}" not found in namespace "{{ns}}"; create it or fix the name"#, "d".repeat(246)))),
        row(Limit, "service-name-64", set("/spec/services/0/name", "s".repeat(64)), api(&format!("* spec.services[0].name: Too long: may not be more than 63 bytes{UNCHECKED}"))),
        row(Limit, "service-gates-6", list("/spec/services/0/gates", 6, |i| json!({"name": format!("g{i}"), "approval": true})), api(&format!("* spec.services[0].gates: Too many: 6: must have at most 5 items{UNCHECKED}"))),
        row(Limit, "flag-keys-51", set(SVC, json!({"name": "web", "flag": {"configMap": "flags", "keys": keys(51)}})), api(&format!("* spec.services[0].flag.keys: Too many: 51: must have at most 50 items{UNCHECKED}"))),
        row(Limit, "address-2049", set("/spec/prometheus", json!({"address": format!("http://p/{}", "a".repeat(2040))})), api(&format!("* spec.prometheus.address: Too long: may not be more than 2048 bytes{UNCHECKED}"))),
        row(Limit, "justification-1025", set("/spec/override", json!({"justification": "j".repeat(1025)})), api(&format!("* spec.override.justification: Too long: may not be more than 1024 bytes{UNCHECKED}"))),
        row(Limit, "depends-on-101", set("/spec/services/0/dependsOn", Value::Array((0..101).map(|i| json!(format!("x{i}"))).collect())), api(&format!("* spec.services[0].dependsOn: Too many: 101: must have at most 100 items{UNCHECKED}"))),
        row(Limit, "gates-21", list("/spec/gates", 21, |i| json!({"name": format!("g{i}"), "approval": true})), api(&format!("* spec.gates: Too many: 21: must have at most 20 items{UNCHECKED}"))),
        row(Limit, "time-zone-65", set("/spec/window", json!({"days": ["Monday"], "from": "09:00", "to": "17:00", "timeZone": "z".repeat(65)})), api(&format!("* spec.window.timeZone: Too long: may not be more than 64 bytes{UNCHECKED}"))),
        row(Limit, "policy-name-254", set("/spec/policy", "p".repeat(254)), api(&format!("* spec.policy: Too long: may not be more than 253 bytes{UNCHECKED}"))),
        // --------------------------------------------------- hostile strings
        row(Hostile, "service-name-unicode", set("/spec/services/0/name", "wéb"), api(r#"spec.services[0].name: Invalid value: "wéb": spec.services[0].name in body should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'"#)),
        row(Hostile, "service-name-quote", set("/spec/services/0/name", "a\"b"), api(r#"spec.services[0].name: Invalid value: "a\"b": spec.services[0].name in body should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'"#)),
        row(Hostile, "service-name-newline", set("/spec/services/0/name", "web\nx"), api(r#"spec.services[0].name: Invalid value: "web\nx": spec.services[0].name in body should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'"#)),
        row(Hostile, "gate-name-braces", set("/spec/gates", json!([{"name": "{{g}}", "approval": true}])), api(r#"spec.gates[0].name: Invalid value: "{{g}}": spec.gates[0].name in body should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'"#)),
        row(Hostile, "image-no-break-space", set("/spec/services/0/change/images/app", "\u{a0}registry.example/web:v2"), api(r#"spec.services[0].change.images.app: Invalid value: "\u00a0registry.example/web:v2": spec.services[0].change.images.app in body should match '^[^\t-\r\x{85}\p{Z}]([\s\S]*[^\t-\r\x{85}\p{Z}])?$'"#)),
        row(Hostile, "address-with-newline", set("/spec/prometheus", json!({"address": "http://prometheus:9090\n/x"})), api(r#"spec.prometheus.address: Invalid value: "string": spec.prometheus.address must be an http:// or https:// URL with a host and an optional port and path, without spaces, e.g. http://prometheus.monitoring:9090"#)),
        row(Hostile, "address-ipv6-not-ip", set("/spec/prometheus", json!({"address": "http://[1.2.3.4]:9090"})), api(r#"spec.prometheus.address: Invalid value: "string": spec.prometheus.address must be an http:// or https:// URL with a host and an optional port and path, without spaces, e.g. http://prometheus.monitoring:9090"#)),
        row(Hostile, "query-escapes-matcher", set(QUERY, r#"sum(up{service="{{service}}"}) or on() vector(0) # "}"#), passes()),
        row(Hostile, "query-single-quoted", set(QUERY, r#"sum(up{service='{{service}}',namespace='{{ namespace }}'})"#), passes()),
        row(Hostile, "query-placeholder-bare", set(QUERY, "sum(rate({{service}}_errors_total[1m]))"), stalled("InvalidSpec", r#"spec.defaults.analysis.metrics[0].query: "{{service}}" stands outside a quoted string; its value (e.g. a name with '-') would change the query: put it in a label matcher's value, e.g. {__name__="{{service}}_errors_total"} or service="{{service}}""#)),
        row(Hostile, "query-backquoted", set(QUERY, "sum(up{service=`{{service}}`})"), stalled("InvalidSpec", r#"spec.defaults.analysis.metrics[0].query: "{{service}}" stands in a `raw string`, where its value cannot be escaped; use double quotes, e.g. service="{{service}}""#)),
        row(Hostile, "query-newline-unicode", set(QUERY, "sum(\n  up{service=\"{{service}}\", team=\"zürich ✓\"}\n)"), passes()),
        row(Hostile, "placeholder-newline", set(QUERY, "sum(up{service=\"{{\nservice}}\"})"), stalled("InvalidSpec", r#"spec.defaults.analysis.metrics[0].query: "{{\nservice}}" is not a placeholder; use {{namespace}}, {{service}}, {{release}}, {{canary_hash}}, {{stable_hash}} or {{track}} (a typo would select nothing)"#)),
        row(Hostile, "owner-quotes-braces", set("/spec/owner", "team \"x\" {{owner}} \u{1b}[2J ✓\nsecond line"), passes()),
        row(Hostile, "metric-name-unicode", set("/spec/defaults/analysis/metrics/0/name", "érror \"rate\" {{x}}"), passes()),
        row(Hostile, "env-value-newline", set("/spec/services/0/change/env", json!({"app": {"MODE": "a\"b\nc ✓ {{service}}"}})), passes()),
        row(Hostile, "env-name-unicode", set("/spec/services/0/change/env", json!({"app": {"ZÜRICH": "1"}})), stalled("InvalidSpec", r#"spec.services[0].change.env.app.ZÜRICH: "ZÜRICH" is not an environment variable name Kubernetes accepts: letters, digits, '_', '-' and '.', not starting with a digit; rename it"#)),
        row(Hostile, "summary-control", set("/spec/summary", "\u{1b}]0;owned\u{7} \u{202e}txt.exe"), passes()),
    ]
}

// ---------------------------------------------------------------- the objects

/// The valid Release each row mutates: paused, measured, one service whose
/// Deployment is named after the row (so it exists for no row but the ones
/// that point it at an app on purpose).
fn base_release(name: &str) -> Value {
    json!({
        "apiVersion": "signalman.dev/v1alpha1",
        "kind": "Release",
        "metadata": {"name": name},
        "spec": {
            "owner": rel::OWNER,
            "paused": true,
            "defaults": {
                "steps": [{"weight": 50, "bake": "1s"}, {"weight": 100, "bake": "1s"}],
                "analysis": {
                    "interval": "1s",
                    "metrics": [{"name": "error-rate", "query": ERROR_RATE_QUERY, "max": 0.05}],
                },
            },
            "services": [{
                "name": "web",
                "deployment": name,
                "change": {"images": {"app": "registry.example/web:v2"}},
            }],
        },
    })
}

/// A valid ReleasePolicy (cluster-scoped: named after the namespace and the row).
fn base_policy(name: &str) -> Value {
    json!({
        "apiVersion": "signalman.dev/v1alpha1",
        "kind": "ReleasePolicy",
        "metadata": {"name": name},
        "spec": {"window": {"days": ["Monday"], "from": "09:00", "to": "17:00"}},
    })
}

fn base_approval(name: &str) -> Value {
    json!({
        "apiVersion": "signalman.dev/v1alpha1",
        "kind": "ReleaseApproval",
        "metadata": {"name": name},
        "spec": {"release": "claim-holder", "approver": "admin", "gate": "sre", "comment": "checked"},
    })
}

/// `kubectl apply -f` of one document, as a user would; what it printed and whether it succeeded.
async fn kubectl_apply(ns: &str, name: &str, doc: &Value) -> (bool, String) {
    let dir = e2e::scratch_dir().join(format!("hostile-{ns}"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{name}.json"));
    std::fs::write(&file, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
    let out = e2e::kubectl(&["apply", "-n", ns, "-f", file.to_str().unwrap()]).await;
    (out.status.success(), e2e::output_text(&out))
}

/// The API server's words from kubectl's error: what follows `is invalid: `.
fn refusal(printed: &str) -> Option<&str> {
    printed
        .split_once(" is invalid: ")
        .map(|(_, why)| why.trim())
}

#[tokio::test]
async fn each_hostile_input_is_refused_where_it_should_be_with_words_that_name_the_field_and_the_fix()
 {
    let started = Instant::now();
    let rows = rows();
    let mut names = std::collections::BTreeSet::new();
    for r in &rows {
        assert!(names.insert(r.name), "two rows are named {}", r.name);
    }
    // Under --enforce-namespace, as the chart installs it: the tenancy rows
    // need it, and every other row must answer the same with it.
    let sc = Scenario::start_with("hostile", |l| l.arg("--enforce-namespace")).await;
    let ns = sc.ns().to_owned();
    // The apps a row may point at on purpose, a flag ConfigMap and a route.
    sc.deploy(&["web", "api", "front", "held"].map(|n| WebApp::new(n).replicas(1)))
        .await;
    sc.apply_yaml(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: flags}}\ndata: {{k: 'off'}}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: held-flags}}\ndata: {{k: 'off'}}\n---\n{}",
        e2e::http_route_yaml("shop", "web")
    ))
    .await;
    // An older Release that holds Deployment `held` and ConfigMap
    // `held-flags`: valid, paused before it started.
    let holder = serde_json::from_value::<Release>({
        let mut r = base_release("claim-holder");
        put(&mut r, "/spec/services/0/deployment", json!("held"));
        let flag = json!({"name": "on", "flag": {"configMap": "held-flags", "keys": {"k": "on"}}});
        put(&mut r, "/spec/services/-", flag);
        r
    })
    .unwrap();
    let api = sc.apply(&holder).await;
    rel::wait_status(
        &api,
        "claim-holder",
        "paused before it started",
        Duration::from_secs(30),
        |s| {
            s["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("paused by spec.paused"))
        },
    )
    .await;
    let before = members::resource_versions(&sc.client, &ns).await;

    // Every row at once, through kubectl as a user would.
    let applied: Vec<(usize, bool, String)> = futures::stream::iter(rows.iter().enumerate())
        .map(|(i, r)| {
            let ns = ns.clone();
            async move {
                let name = match r.kind {
                    Kind::Release => r.name.to_owned(),
                    // Cluster-scoped: unique to this run.
                    Kind::Policy => format!("{ns}-{}", r.name),
                    Kind::Approval => r.name.to_owned(),
                };
                let mut doc = match r.kind {
                    Kind::Release => base_release(&name),
                    Kind::Policy => base_policy(&name),
                    Kind::Approval => base_approval(&name),
                };
                (r.mutate)(&mut doc);
                let (ok, printed) = kubectl_apply(&ns, r.name, &doc).await;
                (i, ok, printed)
            }
        })
        .buffer_unordered(6)
        .collect()
        .await;
    let applied_in = started.elapsed();

    let releases = sc.releases();
    let mut wrong = Vec::new();
    let mut stored = Vec::new();
    for (i, ok, printed) in applied {
        let r = &rows[i];
        match (&r.expect, ok) {
            (Expect::Api(want), false) => {
                if r.kind == Kind::Release && releases.get_opt(r.name).await.unwrap().is_some() {
                    wrong.push(format!("{}: refused, yet stored", r.name));
                }
                let said = refusal(&printed).unwrap_or(&printed);
                if said != want {
                    wrong.push(format!(
                        "{}: the API server said\n    {said:?}\n  want\n    {want:?}",
                        r.name
                    ));
                }
            }
            (Expect::Api(_), true) => {
                wrong.push(format!("{}: the API server took it: {printed}", r.name));
                if r.kind == Kind::Policy {
                    let _ = e2e::kubectl(&["delete", "releasepolicy", &format!("{ns}-{}", r.name)])
                        .await;
                }
            }
            (_, false) => wrong.push(format!("{}: the API server refused it: {printed}", r.name)),
            (_, true) => stored.push(i),
        }
    }

    // What the controller says about each stored row: one list of the
    // namespace's Releases a poll, until every stored row has stalled.
    let watched = Instant::now();
    let stalled_of = |status: &Value| {
        rel::condition(status, "Stalled")
            .filter(|c| c["status"] == "True")
            .map(|c| {
                (
                    c["reason"].as_str().unwrap_or("").to_owned(),
                    c["message"].as_str().unwrap_or("").to_owned(),
                )
            })
    };
    let statuses: BTreeMap<String, Value> = e2e::poll(
        "every stored row to stall",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            let listed: BTreeMap<String, Value> = releases
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|r| {
                    let name = r.metadata.name.clone().unwrap_or_default();
                    (name, serde_json::to_value(&r.status).unwrap_or(Value::Null))
                })
                .collect();
            let waiting: Vec<&str> = stored
                .iter()
                .map(|&i| rows[i].name)
                .filter(|n| listed.get(*n).and_then(&stalled_of).is_none())
                .collect();
            if waiting.is_empty() {
                e2e::Look::Done(listed)
            } else {
                e2e::Look::NotYet(format!("not stalled yet: {waiting:?}"))
            }
        },
    )
    .await;
    let stalled_in = watched.elapsed();
    for &i in &stored {
        let r = &rows[i];
        let status = &statuses[r.name];
        let (reason, message) = stalled_of(status).unwrap();
        let (want_reason, want) = match &r.expect {
            Expect::Stalled(reason, message) => (*reason, message.replace("{ns}", &ns)),
            Expect::Passes => (
                "DeploymentNotFound",
                format!(
                    r#"spec.services[0].deployment: Deployment "{}" not found in namespace "{ns}"; create it or fix the name"#,
                    r.name
                ),
            ),
            Expect::Api(_) => unreachable!(),
        };
        // A row at a list's limit names as many missing Deployments: the first is its own.
        let said = match &r.expect {
            Expect::Passes if message.starts_with(&want) => &message[..want.len()],
            _ => message.as_str(),
        };
        if reason != want_reason || said != want {
            wrong.push(format!(
                "{}: the controller said {reason}\n    {said:?}\n  want {want_reason}\n    {want:?}",
                r.name
            ));
        }
        if rel::phase(status) != "Pending" {
            wrong.push(format!("{}: phase {}", r.name, rel::phase(status)));
        }
    }

    // Each refusal is a Warning Event on its Release, in the condition's
    // words (published just after the status: looked for a few times).
    let notes: Vec<(&str, String)> = stored
        .iter()
        .map(|&i| {
            let (reason, message) = stalled_of(&statuses[rows[i].name]).unwrap();
            (
                rows[i].name,
                format!("{reason}: {message}").chars().take(1000).collect(),
            )
        })
        .collect();
    let mut missing = Vec::new();
    for _ in 0..20 {
        let events = Api::<Event>::namespaced(sc.client.clone(), &ns)
            .list(&ListParams::default())
            .await
            .unwrap();
        missing = notes
            .iter()
            .filter(|(name, note)| {
                !events.items.iter().any(|e| {
                    e.regarding.as_ref().and_then(|o| o.name.as_deref()) == Some(*name)
                        && e.type_.as_deref() == Some("Warning")
                        && e.note.as_deref() == Some(note.as_str())
                })
            })
            .map(|(name, note)| format!("{name}: no Warning Event saying {note:?}"))
            .collect();
        if missing.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    wrong.extend(missing);

    // Nothing in the namespace changed: give the operator a moment to do anything it might.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = members::resource_versions(&sc.client, &ns).await;
    let changed: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| format!("{k}: {:?} -> {:?}", before.get(k), after.get(k)))
        .collect();
    if !changed.is_empty() {
        wrong.push(format!("objects changed: {changed:?}"));
    }

    let mut per_source: BTreeMap<Source, usize> = BTreeMap::new();
    for r in &rows {
        *per_source.entry(r.source).or_default() += 1;
    }
    println!(
        "{} rows {per_source:?}: {} refused by the API server, {} stored; applied in {:.1}s, \
         all stalled {:.1}s later, {:.1}s in all",
        rows.len(),
        rows.len() - stored.len(),
        stored.len(),
        applied_in.as_secs_f64(),
        stalled_in.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        wrong.is_empty(),
        "{} of {} rows wrong:\n{}",
        wrong.len(),
        rows.len(),
        wrong.join("\n")
    );
    sc.end().await;
}

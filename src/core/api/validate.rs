//! The checks a Release must pass on its face, in Rust.
//!
//! They mirror the CRD's schema and CEL rules, so `kubectl signalman plan` can
//! reject a file offline with the same words the apiserver would use, and the
//! controller stays safe when an older CRD let something through. Checks that
//! need the dependency graph (unknown `dependsOn`, cycles) live in `plan`.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use super::{
    Analysis, Compare, FlagChange, MemberKind, Metric, MigrationJob, ReleaseSpec, Step, Verify,
};

/// One thing wrong with a Release, and the field that causes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Path of the offending field, e.g. `spec.services[1].steps[2].weight`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

const MIN_DURATION: Duration = Duration::from_secs(1);
// The bounds the CRD schema sets (`maxItems`, `maxLength`); kept equal by
// e2e/tests/crd_agreement.rs, which sends generated specs to an API server.
const MAX_SERVICES: usize = 100;
const MAX_STEPS: usize = 20;
const MAX_METRICS: usize = 20;
const MAX_OBJECT_NAME: usize = 253;
const MAX_METRIC_NAME: usize = 63;
const MAX_SKIP_REASON: usize = 512;
const MAX_QUERY: usize = 4096;
const MAX_ADDRESS: usize = 2048;
const MAX_COUNT: i32 = 1000;
const MAX_SERVICE_GATES: usize = 5;
const MAX_FLAG_KEYS: usize = 50;
const MAX_JUSTIFICATION: usize = 1024;
/// A label value, and a DNS label (a Service name), have at most 63 characters.
const MAX_LABEL: usize = 63;
/// What Signalman appends to a Deployment or Service name for its canary.
const CANARY_SUFFIX: &str = "-canary";
/// The longest Deployment name whose canary Deployment name is still valid.
pub const MAX_DEPLOYMENT: usize = MAX_OBJECT_NAME - CANARY_SUFFIX.len();
/// The longest stable Service name whose canary Service name is still a DNS label.
pub const MAX_GATEWAY_SERVICE: usize = MAX_LABEL - CANARY_SUFFIX.len();

/// Every problem in `spec` that needs nothing but the spec to see.
pub fn validate(spec: &ReleaseSpec) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut problem = |field: String, message: &str| {
        out.push(Problem {
            field,
            message: message.to_owned(),
        })
    };

    if spec.owner.trim().is_empty() {
        problem(
            "spec.owner".into(),
            "must name the accountable release owner",
        );
    }
    if let Some(p) = &spec.prometheus
        && !is_prometheus_address(&p.address)
    {
        problem(
            "spec.prometheus.address".into(),
            "must be an http:// or https:// URL with a host and an optional port and path, without \
             spaces, at most 2048 characters, e.g. http://prometheus.monitoring:9090",
        );
    }
    if let Some(d) = spec.hold_timeout
        && (d.is_negative() || Duration::from(d) < MIN_DURATION)
    {
        problem(
            "spec.holdTimeout".into(),
            "must be a duration of at least 1s, e.g. 30m",
        );
    }
    if let Some(policy) = &spec.policy
        && (policy.is_empty() || policy.chars().count() > MAX_OBJECT_NAME)
    {
        problem(
            "spec.policy".into(),
            "name a ReleasePolicy (1 to 253 characters), or leave it out for the namespace's or the \
             default one",
        );
    }
    if spec.services.is_empty() {
        problem("spec.services".into(), "list at least one service");
    }
    if spec.services.len() > MAX_SERVICES {
        problem(
            "spec.services".into(),
            "at most 100 services; split the train into Releases that depend on fewer services each",
        );
    }
    if let Some(d) = &spec.defaults {
        if let Some(steps) = &d.steps {
            check_steps("spec.defaults.steps", steps, &mut problem);
        }
        if let Some(a) = &d.analysis {
            check_analysis("spec.defaults.analysis", a, Measures::Service, &mut problem);
        }
    }

    let mut seen = BTreeSet::new();
    let mut deployments = BTreeSet::new();
    // (ConfigMap, key) to the flag service that sets it.
    let mut flag_keys = std::collections::BTreeMap::new();
    for (i, svc) in spec.services.iter().enumerate() {
        let at = format!("spec.services[{i}]");
        if !seen.insert(svc.name.as_str()) {
            problem(
                format!("{at}.name"),
                &format!(
                    "service names must be unique; {:?} appears more than once",
                    svc.name
                ),
            );
        }
        if !is_dns_label(&svc.name) {
            problem(
                format!("{at}.name"),
                "must be a DNS label: lower-case letters, digits and '-', at most 63 characters",
            );
        }
        let kinds = usize::from(!svc.deployment.is_empty())
            + usize::from(svc.job.is_some())
            + usize::from(svc.flag.is_some());
        if kinds != 1 {
            problem(
                at.clone(),
                "a service is exactly one of deployment (with change), job or flag; set one of them",
            );
        }
        if let MemberKind::Deployment { deployment, .. } = svc.kind() {
            // Two services on one Deployment would share one canary and one baseline.
            if !deployment.is_empty() && !deployments.insert(deployment) {
                problem(
                    format!("{at}.deployment"),
                    &format!(
                        "Deployment {deployment:?} is in another service of this release; each Deployment \
                         can be in one service only: merge their changes into one service"
                    ),
                );
            }
            if deployment.chars().count() > MAX_DEPLOYMENT {
                problem(
                    format!("{at}.deployment"),
                    "at most 246 characters: the canary Deployment is named <deployment>-canary, and a \
                     name has at most 253; rename the Deployment",
                );
            }
        } else {
            if !svc.change.is_empty() {
                problem(
                    format!("{at}.change"),
                    "change goes with deployment, and a deployment needs a change (images or env); a job \
                     or flag service has no change",
                );
            }
            if svc.traffic.is_some() || svc.steps.is_some() {
                problem(
                    format!(
                        "{at}.{}",
                        if svc.steps.is_some() {
                            "steps"
                        } else {
                            "traffic"
                        }
                    ),
                    "traffic and steps are for a deployment; a job runs once and a flag is set at once \
                     (its bake is flag.bake)",
                );
            }
        }
        if let Some(job) = &svc.job {
            check_job(spec, i, job, &mut problem);
        }
        if let Some(flag) = &svc.flag {
            check_flag(&at, flag, &mut problem);
            let cm = flag.config_map.as_deref().unwrap_or_default();
            for key in flag.keys.keys() {
                if let Some(other) = flag_keys.insert((cm, key.as_str()), svc.name.as_str()) {
                    problem(
                        format!("{at}.flag.keys.{key}"),
                        &format!(
                            "service {other:?} sets key {key:?} of ConfigMap {cm:?} too; one flag service \
                             per key: merge them, or drop the key from one of them"
                        ),
                    );
                }
            }
        }
        if let Some(hold) = &svc.hold {
            if hold.reason.trim().is_empty() {
                problem(
                    format!("{at}.hold.reason"),
                    "must say why the service is not ready, e.g. payments team: load test not signed off",
                );
            } else if hold.reason.chars().count() > MAX_JUSTIFICATION {
                problem(
                    format!("{at}.hold.reason"),
                    "at most 1024 characters; say it shorter and link the details",
                );
            }
        }
        if svc.gates.len() > MAX_SERVICE_GATES {
            problem(format!("{at}.gates"), "at most 5 gates per service");
        }
        if svc.depends_on.len() > MAX_SERVICES {
            problem(format!("{at}.dependsOn"), "at most 100 dependencies");
        }
        if svc.depends_on.iter().any(|d| d == &svc.name) {
            problem(
                format!("{at}.dependsOn"),
                "a service cannot depend on itself",
            );
        }
        if let Some(g) = svc.traffic.as_ref().and_then(|t| t.gateway_api.as_ref()) {
            if g.http_route.is_empty() || g.http_route.chars().count() > MAX_OBJECT_NAME {
                problem(
                    format!("{at}.traffic.gatewayAPI.httpRoute"),
                    "name the HTTPRoute (1 to 253 characters)",
                );
            }
            if let Some(service) = &g.service
                && !is_dns_label(service)
            {
                problem(
                    format!("{at}.traffic.gatewayAPI.service"),
                    "must be a Service name: lower-case letters, digits and '-', at most 63 characters; \
                     leave it out to use the service's name",
                );
            }
            // The canary Service is named <service>-canary and must be a DNS label too.
            let (field, service) = match &g.service {
                Some(s) => ("traffic.gatewayAPI.service", s),
                None => ("name", &svc.name),
            };
            if service.chars().count() > MAX_GATEWAY_SERVICE {
                problem(
                    format!("{at}.{field}"),
                    &format!(
                        "the stable Service {service:?} is longer than 56 characters: its canary Service \
                         {service}-canary would exceed the 63 a Service name may have; use a shorter \
                         Service"
                    ),
                );
            }
        }
        for (container, image) in &svc.change.images {
            // Any Unicode white space, as the schema's pattern says: the API
            // server takes a Deployment whose image starts with a no-break
            // space, then refuses every pod of it.
            let trimmed = image.trim();
            if trimmed.is_empty() || trimmed != image {
                problem(
                    format!("{at}.change.images.{container}"),
                    "must name an image, without surrounding spaces, e.g. registry.example/web:v2",
                );
            }
        }
        for (container, vars) in &svc.change.env {
            for name in vars.keys() {
                if !is_env_name(name) {
                    problem(
                        format!("{at}.change.env.{container}.{name}"),
                        &format!(
                            "{name:?} is not an environment variable name Kubernetes accepts: letters, \
                             digits, '_', '-' and '.', not starting with a digit; rename it"
                        ),
                    );
                }
            }
        }
        if svc.deployment().is_some_and(|d| !d.is_empty())
            && svc.change.images.is_empty()
            && svc.change.env.is_empty()
        {
            problem(format!("{at}.change"), "must set images or env");
        }
        if let Some(steps) = &svc.steps {
            check_steps(&format!("{at}.steps"), steps, &mut problem);
        }
        if let Some(a) = &svc.analysis {
            if svc.job.is_some() {
                problem(
                    format!("{at}.analysis"),
                    "a job is judged by its exit, not by analysis; measure the services that depend on \
                     it instead",
                );
            } else {
                check_analysis(
                    &format!("{at}.analysis"),
                    a,
                    Measures::Service,
                    &mut problem,
                );
            }
        }
        if svc.job.is_none() {
            check_measured(spec, i, &mut problem);
        }
    }
    if let Some(verify) = &spec.verify {
        check_verify(verify, &mut problem);
    }
    out.extend(super::go_no_go::problems(spec));
    out
}

/// What an analysis measures, which decides the placeholders its queries may use.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Measures {
    /// One service's canary (a step), or a flag's bake.
    Service,
    /// The whole promoted train (`spec.verify`).
    Train,
}

/// Verification watches the promoted train: it is its metrics, it has a bake
/// to watch them for, and nothing is left to compare with.
fn check_verify(verify: &Verify, problem: &mut impl FnMut(String, &str)) {
    if verify.bake.is_negative() || Duration::from(verify.bake) < MIN_DURATION {
        problem(
            "spec.verify.bake".into(),
            "must be a duration of at least 1s, e.g. 10m",
        );
    }
    let a = &verify.analysis;
    if a.skip_analysis.is_some() {
        problem(
            "spec.verify.analysis".into(),
            "verification is its metrics; give analysis.metrics (or leave spec.verify out)",
        );
    }
    if a.metrics.is_empty() {
        problem(
            "spec.verify.analysis.metrics".into(),
            "give at least one metric that watches the whole train, e.g. the checkout success rate",
        );
    }
    for (j, m) in a.metrics.iter().enumerate() {
        if m.compare.is_some() {
            problem(
                format!("spec.verify.analysis.metrics[{j}].compare"),
                "after promotion there is no stable version left to compare with; use min or max",
            );
        }
    }
    check_analysis("spec.verify.analysis", a, Measures::Train, problem);
}

/// A migration: its Job templates can run, it says how it is reversed, and it
/// is ordered against the code that needs it.
fn check_job(
    spec: &ReleaseSpec,
    i: usize,
    job: &MigrationJob,
    problem: &mut impl FnMut(String, &str),
) {
    let at = format!("spec.services[{i}]");
    check_template(&format!("{at}.job.forward"), &job.forward, problem);
    if let Some(rollback) = &job.rollback {
        check_template(&format!("{at}.job.rollback"), rollback, problem);
    }
    if job.rollback.is_some() == job.irreversible.is_some() {
        problem(
            format!("{at}.job"),
            "give a rollback Job template (job.rollback), or say why the migration cannot be reversed \
             (job.irreversible.justification), not both",
        );
    }
    if let Some(irreversible) = &job.irreversible {
        let j = irreversible.justification.trim();
        if j.is_empty() || irreversible.justification.chars().count() > MAX_JUSTIFICATION {
            problem(
                format!("{at}.job.irreversible.justification"),
                "must say why the migration cannot be reversed (1 to 1024 characters), e.g. drops the \
                 legacy_orders table; restore from backup",
            );
        }
    }
    if job
        .timeout
        .is_some_and(|d| d.is_negative() || Duration::from(d) < MIN_DURATION)
    {
        problem(
            format!("{at}.job.timeout"),
            "must be a duration of at least 1s, e.g. 30m",
        );
    }
    // Beside the code of its wave it would race it instead of going before it.
    let name = &spec.services[i].name;
    let needed = spec
        .services
        .iter()
        .any(|s| s.depends_on.iter().any(|d| d == name));
    if spec.services[i].depends_on.is_empty() && !needed {
        problem(
            at,
            &format!(
                "migration {name} is ordered against nothing, so it would run beside the code of its wave \
                 instead of before it; add {name} to the dependsOn of the services that need it"
            ),
        );
    }
}

/// A Job template the Job API would take: containers, and pods that do not restart for ever.
fn check_template(
    at: &str,
    template: &k8s_openapi::api::batch::v1::JobTemplateSpec,
    problem: &mut impl FnMut(String, &str),
) {
    let pod = template
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref());
    if pod.is_none_or(|p| p.containers.is_empty()) {
        problem(
            format!("{at}.spec.template.spec.containers"),
            "list at least one container: they are what the Job runs",
        );
    }
    let restart = pod.and_then(|p| p.restart_policy.as_deref());
    if !matches!(restart, Some("Never" | "OnFailure")) {
        problem(
            format!("{at}.spec.template.spec.restartPolicy"),
            &format!(
                "must be Never or OnFailure{}: a Job's pods must not restart for ever",
                restart.map_or(String::new(), |r| format!(", not {r}"))
            ),
        );
    }
}

/// A flag: a source, and keys a ConfigMap can hold.
fn check_flag(at: &str, flag: &FlagChange, problem: &mut impl FnMut(String, &str)) {
    match flag.config_map.as_deref() {
        None => problem(
            format!("{at}.flag"),
            "needs a source: configMap, the ConfigMap (in the Release's namespace) that holds the flag's keys",
        ),
        Some(cm) if !is_dns_subdomain(cm) => problem(
            format!("{at}.flag.configMap"),
            "must be a ConfigMap name: lower-case letters, digits, '-' and '.', at most 253 characters",
        ),
        Some(_) => {}
    }
    if flag.keys.is_empty() || flag.keys.len() > MAX_FLAG_KEYS {
        problem(
            format!("{at}.flag.keys"),
            "set 1 to 50 keys, each to the value the flag gets, e.g. checkout-v2: \"on\"",
        );
    }
    for key in flag.keys.keys() {
        let valid = !key.is_empty()
            && key.len() <= MAX_OBJECT_NAME
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        if !valid {
            problem(
                format!("{at}.flag.keys.{key}"),
                "each key must be a valid ConfigMap key (letters, digits, '-', '_' and '.', at most 253 \
                 characters)",
            );
        }
    }
    if flag
        .bake
        .is_some_and(|d| d.is_negative() || Duration::from(d) < MIN_DURATION)
    {
        problem(
            format!("{at}.flag.bake"),
            "must be a duration of at least 1s, e.g. 5m",
        );
    }
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= MAX_OBJECT_NAME && s.split('.').all(is_dns_label)
}

/// A service with nothing to measure would pass every step on bake time
/// alone; that has to be a visible decision (`skipAnalysis`), never an omission.
fn check_measured(spec: &ReleaseSpec, i: usize, problem: &mut impl FnMut(String, &str)) {
    let svc = &spec.services[i];
    let analysis = spec.analysis_of(svc);
    if !analysis.metrics.is_empty() || analysis.skip_analysis.is_some() {
        return;
    }
    let at = format!("spec.services[{i}]");
    if svc.analysis.is_some() {
        problem(
            format!("{at}.analysis.metrics"),
            "no metrics: this service's analysis replaces spec.defaults.analysis and measures nothing, \
             so every step would pass on bake time alone; add a metric here, or opt out with \
             analysis.skipAnalysis: {reason: \"...\"}",
        );
    } else {
        problem(
            format!("{at}.analysis"),
            "no metrics: neither this service nor spec.defaults.analysis has any, so every step would \
             pass on bake time alone; add one to spec.defaults.analysis.metrics or to this service's \
             analysis.metrics, or opt out with analysis.skipAnalysis: {reason: \"...\"}",
        );
    }
}

pub(crate) fn check_steps(at: &str, steps: &[Step], problem: &mut impl FnMut(String, &str)) {
    if steps.len() < 2 {
        problem(
            at.to_owned(),
            "needs at least two steps (a single jump to 100 is not a canary), e.g. 10 then 100",
        );
    }
    if steps.len() > MAX_STEPS {
        problem(at.to_owned(), "at most 20 steps");
    }
    for (i, s) in steps.iter().enumerate() {
        if !(1..=100).contains(&s.weight) {
            problem(format!("{at}[{i}].weight"), "must be between 1 and 100");
        }
        if i > 0 && s.weight <= steps[i - 1].weight {
            problem(
                format!("{at}[{i}].weight"),
                "weights must strictly increase",
            );
        }
        if s.bake.is_negative() || Duration::from(s.bake) < MIN_DURATION {
            problem(
                format!("{at}[{i}].bake"),
                "must be a duration of at least 1s, e.g. 2m",
            );
        }
    }
    if let Some(last) = steps.last()
        && last.weight != 100
    {
        problem(
            format!("{at}[{}].weight", steps.len() - 1),
            "the last step must have weight 100",
        );
    }
}

fn check_analysis(
    at: &str,
    a: &Analysis,
    measures: Measures,
    problem: &mut impl FnMut(String, &str),
) {
    if let Some(d) = a.interval
        && (d.is_negative() || Duration::from(d) < MIN_DURATION)
    {
        problem(
            format!("{at}.interval"),
            "must be a duration of at least 1s, e.g. 30s",
        );
    }
    for (field, v) in [
        ("failureLimit", a.failure_limit),
        ("inconclusiveLimit", a.inconclusive_limit),
        ("errorLimit", a.error_limit),
    ] {
        if v.is_some_and(|v| !(0..=MAX_COUNT).contains(&v)) {
            problem(format!("{at}.{field}"), "must be 0 to 1000");
        }
    }
    if a.min_passes.is_some_and(|v| !(1..=MAX_COUNT).contains(&v)) {
        problem(format!("{at}.minPasses"), "must be 1 to 1000");
    }
    if a.metrics.len() > MAX_METRICS {
        problem(format!("{at}.metrics"), "at most 20 metrics");
    }
    if let Some(skip) = &a.skip_analysis {
        if !a.metrics.is_empty() {
            problem(
                format!("{at}.skipAnalysis"),
                "set metrics or skipAnalysis, not both; remove skipAnalysis to measure the metrics",
            );
        }
        if skip.reason.trim().is_empty() || skip.reason.chars().count() > MAX_SKIP_REASON {
            problem(
                format!("{at}.skipAnalysis.reason"),
                "say why the service is released without metrics (1 to 512 characters)",
            );
        }
    }
    let mut seen = BTreeSet::new();
    for (i, m) in a.metrics.iter().enumerate() {
        if !seen.insert(m.name.as_str()) {
            problem(
                format!("{at}.metrics[{i}].name"),
                "metric names must be unique",
            );
        }
        if m.name.is_empty() || m.name.chars().count() > MAX_METRIC_NAME {
            problem(
                format!("{at}.metrics[{i}].name"),
                "must be 1 to 63 characters, e.g. error-rate",
            );
        }
        if m.query.trim().is_empty() {
            problem(format!("{at}.metrics[{i}].query"), "must be a PromQL query");
        }
        let known: &[&str] = match measures {
            Measures::Service => &super::PLACEHOLDERS,
            Measures::Train => &super::VERIFY_PLACEHOLDERS,
        };
        let unknown = unknown_placeholder(&m.query, known);
        let mut misplaced = false;
        if let Some(bad) = &unknown {
            // `x{{{track}}}` is the natural way to select one track, and reads as `{{{` + `track`.
            let braced_track = bad
                .strip_prefix("{{{")
                .and_then(|b| b.strip_suffix("}}"))
                .is_some_and(|b| b.trim_matches([' ', '\t']) == "track");
            let message = if braced_track {
                format!(
                    "{bad:?}: three braces in a row do not read as a selector's brace and a placeholder; \
                     put a space between them, e.g. up{{ {{{{track}}}} }}"
                )
            } else if measures == Measures::Train {
                format!(
                    "{bad:?} is not a placeholder a verify query can use; use {{{{namespace}}}} or \
                     {{{{release}}}} (a verify query measures the whole train, not one service)"
                )
            } else {
                format!(
                    "{bad:?} is not a placeholder; use {{{{namespace}}}}, {{{{service}}}}, {{{{release}}}}, \
                     {{{{canary_hash}}}}, {{{{stable_hash}}}} or {{{{track}}}} (a typo would select nothing)"
                )
            };
            problem(format!("{at}.metrics[{i}].query"), &message);
        } else if let Some(why) =
            crate::analysis::quoting::misplaced(&m.query, &super::PLACEHOLDERS)
        {
            problem(format!("{at}.metrics[{i}].query"), &why);
            misplaced = true;
        } else if measures == Measures::Service
            && m.compare.is_some()
            && !placeholders(&m.query).any(|p| p == "track")
        {
            problem(
                format!("{at}.metrics[{i}].query"),
                "a compare metric runs its query once for the canary and once for the stable pods, and \
                 {{track}} is what tells them apart; put {{track}} among the query's label matchers, e.g. \
                 http_requests_total{service=\"{{service}}\",{{track}}}",
            );
        }
        let too_long = m.query.chars().count() > MAX_QUERY;
        if too_long {
            problem(
                format!("{at}.metrics[{i}].query"),
                "at most 4096 characters; move long expressions into a recording rule",
            );
        }
        // Parsed only once nothing simpler is wrong with it, so each query
        // gets one message.
        if unknown.is_none()
            && !misplaced
            && !too_long
            && !m.query.trim().is_empty()
            && let Some(why) = crate::analysis::query_problem(&m.query)
        {
            problem(format!("{at}.metrics[{i}].query"), &why);
        }
        match (m.min, m.max) {
            (None, None) if m.compare.is_none() => problem(
                format!("{at}.metrics[{i}]"),
                "each metric needs min, max or compare",
            ),
            (Some(lo), Some(hi)) if lo > hi => {
                problem(format!("{at}.metrics[{i}]"), "min must not exceed max")
            }
            _ => {}
        }
        if let Some(c) = &m.compare {
            check_compare(&format!("{at}.metrics[{i}]"), m, c, problem);
        }
    }
}

/// A comparison bounds each side once, by numbers that mean something.
fn check_compare(at: &str, m: &Metric, c: &Compare, problem: &mut impl FnMut(String, &str)) {
    let upper = c.max_increase.is_some() || c.max_ratio.is_some();
    let lower = c.max_decrease.is_some() || c.min_ratio.is_some();
    if !upper && !lower {
        problem(
            format!("{at}.compare"),
            "give maxIncrease, maxRatio (higher is worse) or maxDecrease, minRatio (lower is worse)",
        );
    }
    if upper && m.max.is_some() {
        problem(
            at.to_owned(),
            "max and compare.maxIncrease/maxRatio both bound the upper side; keep max (a fixed bound) \
             or the comparison, not both",
        );
    }
    if lower && m.min.is_some() {
        problem(
            at.to_owned(),
            "min and compare.maxDecrease/minRatio both bound the lower side; keep min (a fixed bound) \
             or the comparison, not both",
        );
    }
    // NaN, which no JSON carries but a Rust caller could, is refused too.
    if c.max_ratio.is_some_and(|r| r.is_nan() || r <= 0.0) {
        problem(
            format!("{at}.compare.maxRatio"),
            "must be greater than 0, e.g. 1.2 (the canary at most 20% above stable)",
        );
    }
    if c.min_ratio.is_some_and(|r| r.is_nan() || r <= 0.0) {
        problem(
            format!("{at}.compare.minRatio"),
            "must be greater than 0, e.g. 0.9 (the canary at least 90% of stable)",
        );
    }
    if c.max_increase.is_some_and(|d| d.is_nan() || d < 0.0) {
        problem(
            format!("{at}.compare.maxIncrease"),
            "must not be negative, e.g. 0.005",
        );
    }
    if c.max_decrease.is_some_and(|d| d.is_nan() || d < 0.0) {
        problem(
            format!("{at}.compare.maxDecrease"),
            "must not be negative, e.g. 0.01",
        );
    }
}

/// The names of the well-formed placeholders in `query`, trimmed, in order.
fn placeholders(query: &str) -> impl Iterator<Item = &str> {
    let mut rest = query;
    std::iter::from_fn(move || {
        loop {
            let open = rest.find("{{")?;
            let after = &rest[open + 2..];
            let close = after.find("}}")?;
            rest = &after[close + 2..];
            if !after.starts_with('{') {
                return Some(after[..close].trim_matches([' ', '\t']));
            }
        }
    })
}

/// The first `{{` that does not open a known placeholder (`{{ name }}`, spaces
/// or tabs around the name), as written; the CRD's rule on `query` says the same.
pub(super) fn unknown_placeholder(query: &str, known: &[&str]) -> Option<String> {
    let mut rest = query;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let inner = after.split("}}").next().unwrap_or(after);
        let ok = after.contains("}}")
            && !after.starts_with('{')
            && known.contains(&inner.trim_matches([' ', '\t']));
        if !ok {
            let end = (open + 2 + inner.len() + 2).min(rest.len());
            return Some(rest[open..end].to_owned());
        }
        rest = &after[inner.len() + 2..];
    }
    None
}

/// Problems with the Release's own name, which only the stored object (or
/// `plan`'s file) has: the name becomes a label value on every object
/// Signalman creates, and part of each baseline's name.
pub fn validate_name(name: &str, spec: &ReleaseSpec) -> Vec<Problem> {
    let mut out = Vec::new();
    if name.chars().count() > MAX_LABEL {
        out.push(Problem {
            field: "metadata.name".into(),
            message: format!(
                "{} characters; at most 63, because the name is the value of the label {} on every \
                 object the release creates; use a shorter name",
                name.chars().count(),
                super::RELEASE_LABEL
            ),
        });
    }
    for (i, svc) in spec.services.iter().enumerate() {
        let baseline = format!("{name}-{}-baseline", svc.name);
        if baseline.chars().count() > MAX_OBJECT_NAME {
            out.push(Problem {
                field: format!("spec.services[{i}].name"),
                message: format!(
                    "the baseline ControllerRevision {baseline:?} would be longer than 253 characters; \
                     shorten the service or the Release name"
                ),
            });
        }
    }
    out
}

/// The CRD's rule on `spec.prometheus.address` (its pattern, its length), with
/// an IPv6 host checked as one, as the API server's `isURL` does.
fn is_prometheus_address(address: &str) -> bool {
    static PATTERN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(super::PROMETHEUS_ADDRESS).expect("the address pattern compiles")
    });
    if address.chars().count() > MAX_ADDRESS || !PATTERN.is_match(address) {
        return false;
    }
    let rest = address.split_once("//").map_or("", |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match host.strip_prefix('[') {
        Some(v6) => v6
            .split_once(']')
            .is_some_and(|(ip, _)| ip.parse::<std::net::Ipv6Addr>().is_ok()),
        None => true,
    }
}

/// The rule the API server applies to `env[].name`.
fn is_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b"-._".contains(&b))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
}

pub(super) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Change, GatewayApiTraffic, SkipAnalysis, Traffic};

    fn spec() -> ReleaseSpec {
        crate::testing::spec()
            .services(&[("a", &[])])
            .metric_at_most("error-rate", "up", 0.01)
            .build()
    }

    fn fields(spec: &ReleaseSpec) -> Vec<String> {
        validate(spec).into_iter().map(|p| p.field).collect()
    }

    #[test]
    fn what_the_api_server_would_refuse_on_a_write_is_refused_before_it() {
        let mut s = spec();
        let svc = &mut s.services[0];
        svc.change.images.insert("app".into(), String::new());
        svc.change.images.insert("side".into(), " web:v2".into());
        svc.change.env.insert(
            "app".into(),
            [
                ("A=B".to_owned(), "1".to_owned()),
                ("1X".to_owned(), "1".to_owned()),
                ("ok.name-_2".to_owned(), "1".to_owned()),
            ]
            .into(),
        );
        svc.deployment = "d".repeat(247);
        assert_eq!(
            fields(&s),
            [
                "spec.services[0].deployment",
                "spec.services[0].change.images.app",
                "spec.services[0].change.images.side",
                "spec.services[0].change.env.app.1X",
                "spec.services[0].change.env.app.A=B",
            ]
        );
        s.services[0].deployment = "d".repeat(246);
        s.services[0].change = Change {
            images: [("app".to_owned(), "web:v2".to_owned())].into(),
            ..Default::default()
        };
        assert!(fields(&s).is_empty());
        // Gateway API: the canary Service <service>-canary must be a DNS label.
        s.services[0].traffic = Some(Traffic {
            gateway_api: Some(GatewayApiTraffic {
                http_route: "r".into(),
                service: Some("s".repeat(57)),
            }),
        });
        assert_eq!(fields(&s), ["spec.services[0].traffic.gatewayAPI.service"]);
        s.services[0]
            .traffic
            .as_mut()
            .unwrap()
            .gateway_api
            .as_mut()
            .unwrap()
            .service = None;
        s.services[0].name = "n".repeat(57);
        assert_eq!(fields(&s), ["spec.services[0].name"]);
        s.services[0].name = "n".repeat(56);
        assert!(fields(&s).is_empty());
    }

    fn train() -> ReleaseSpec {
        crate::testing::spec()
            .job("db", [] as [&str; 0])
            .service("api", ["db"])
            .flag("on", ["api"], "flags", &[("checkout-v2", "on")])
            .metric_at_most("error-rate", "up", 0.01)
            .build()
    }

    fn said(s: &ReleaseSpec) -> Vec<String> {
        validate(s).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_train_of_a_migration_code_and_a_flag_is_valid() {
        assert_eq!(said(&train()), Vec::<String>::new());
    }

    #[test]
    fn a_service_is_exactly_one_kind() {
        let mut s = train();
        s.services[0].deployment = "db".into();
        s.services[0].change = s.services[1].change.clone();
        assert_eq!(
            said(&s)[0],
            "spec.services[0]: a service is exactly one of deployment (with change), job or flag; set one of them"
        );
        let mut s = train();
        s.services[2].flag = None;
        assert_eq!(
            said(&s),
            [
                "spec.services[2]: a service is exactly one of deployment (with change), job or flag; set one of them"
            ]
        );
        let mut s = train();
        s.services[2].change = s.services[1].change.clone();
        assert_eq!(
            fields(&s),
            ["spec.services[2].change"],
            "change goes with deployment only"
        );
    }

    #[test]
    fn a_job_template_must_run_containers_that_do_not_restart_for_ever() {
        let mut s = train();
        let job = s.services[0].job.as_mut().unwrap();
        let pod = job
            .forward
            .spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap();
        pod.containers.clear();
        pod.restart_policy = Some("Always".into());
        assert_eq!(
            said(&s),
            [
                "spec.services[0].job.forward.spec.template.spec.containers: list at least one container: \
                 they are what the Job runs",
                "spec.services[0].job.forward.spec.template.spec.restartPolicy: must be Never or OnFailure, \
                 not Always: a Job's pods must not restart for ever",
            ]
        );
    }

    #[test]
    fn a_migration_is_reversible_or_says_why_not() {
        let mut s = train();
        s.services[0].job.as_mut().unwrap().irreversible = Some(super::super::Irreversible {
            justification: " ".into(),
        });
        assert_eq!(
            fields(&s),
            [
                "spec.services[0].job",
                "spec.services[0].job.irreversible.justification"
            ]
        );
        s.services[0].job.as_mut().unwrap().rollback = None;
        assert_eq!(
            fields(&s),
            ["spec.services[0].job.irreversible.justification"]
        );
        s.services[0].job.as_mut().unwrap().irreversible = None;
        assert_eq!(fields(&s), ["spec.services[0].job"]);
    }

    #[test]
    fn a_migration_ordered_against_nothing_is_refused_naming_the_fix() {
        let mut s = train();
        s.services[1].depends_on.clear();
        assert_eq!(
            said(&s),
            [
                "spec.services[0]: migration db is ordered against nothing, so it would run beside the code \
                 of its wave instead of before it; add db to the dependsOn of the services that need it"
            ]
        );
        // Depending on something orders it too.
        s.services[0].depends_on = vec!["api".into()];
        assert!(fields(&s).is_empty());
        s.services[0].analysis = s.defaults.as_ref().unwrap().analysis.clone();
        assert_eq!(fields(&s), ["spec.services[0].analysis"]);
    }

    #[test]
    fn a_hold_needs_a_reason_and_flag_keys_are_config_map_keys_set_once() {
        let mut s = train();
        s.services[1].hold = Some(super::super::ServiceHold { reason: "".into() });
        s.services[2]
            .flag
            .as_mut()
            .unwrap()
            .keys
            .insert("not a key!".into(), "x".into());
        let mut twin = s.services[2].clone();
        twin.name = "twin".into();
        twin.flag.as_mut().unwrap().keys = [("checkout-v2".to_owned(), "off".to_owned())].into();
        s.services.push(twin);
        assert_eq!(
            said(&s),
            [
                "spec.services[1].hold.reason: must say why the service is not ready, e.g. payments team: \
                 load test not signed off",
                "spec.services[2].flag.keys.not a key!: each key must be a valid ConfigMap key (letters, \
                 digits, '-', '_' and '.', at most 253 characters)",
                "spec.services[3].flag.keys.checkout-v2: service \"on\" sets key \"checkout-v2\" of ConfigMap \
                 \"flags\" too; one flag service per key: merge them, or drop the key from one of them",
            ]
        );
    }

    #[test]
    fn gate_names_are_unique_across_the_release_and_its_services_and_service_gates_are_checked_alike()
     {
        let gate = |name: &str, query: &str| super::super::Gate {
            name: name.into(),
            query: Some(query.into()),
            min: None,
            max: Some(0.0),
            interval: None,
            approval: None,
        };
        let mut s = train();
        s.gates.push(gate("smoke", "up"));
        s.services[1].gates.push(gate("smoke", "up"));
        s.services[2]
            .gates
            .push(gate("flag-smoke", "x{service=\"{{service}}\"}"));
        assert_eq!(
            said(&s),
            [
                "spec.services[1].gates[0].name: gate names must be unique across spec.gates and every \
                 service's gates; \"smoke\" appears more than once",
                "spec.services[2].gates[0].query: \"{{service}}\" is not a placeholder a gate can use; use \
                 {{namespace}} or {{release}} (a gate is checked for the whole release, not for one service)",
            ]
        );
    }

    #[test]
    fn the_release_name_must_fit_in_a_label_value() {
        let s = spec();
        assert!(validate_name(&"r".repeat(63), &s).is_empty());
        let found = validate_name(&"r".repeat(64), &s);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].field, "metadata.name");
        assert!(found[0].message.contains("at most 63"), "{found:?}");
    }

    /// Bounds the schema sets that only the API server checked, so `plan`
    /// said yes to what `kubectl apply` then refused (held to the whole
    /// schema by `fuzz::specs::what_the_schema_refuses_validate_refuses`).
    #[test]
    fn the_policy_name_gates_hold_reason_and_justification_are_bounded_as_in_the_schema() {
        let mut s = spec();
        s.policy = Some("p".repeat(253));
        s.services[0].hold = Some(super::super::ServiceHold {
            reason: "r".repeat(1024),
        });
        s.window_override = Some(super::super::WindowOverride {
            justification: "j".repeat(1024),
        });
        s.gates = (0..20)
            .map(|i| super::super::Gate {
                name: format!("g{i}"),
                query: None,
                min: None,
                max: None,
                interval: None,
                approval: Some(true),
            })
            .collect();
        assert_eq!(said(&s), Vec::<String>::new());
        s.policy = Some("p".repeat(254));
        s.services[0].hold.as_mut().unwrap().reason.push('r');
        s.window_override.as_mut().unwrap().justification.push('j');
        s.gates.push(s.gates[0].clone());
        s.gates[20].name = "g20".into();
        assert_eq!(
            said(&s),
            [
                "spec.policy: name a ReleasePolicy (1 to 253 characters), or leave it out for the \
                 namespace's or the default one",
                "spec.services[0].hold.reason: at most 1024 characters; say it shorter and link the details",
                "spec.override.justification: at most 1024 characters; say it shorter and link the details",
                "spec.gates: at most 20 gates; one query can check several conditions (e.g. with and/or)",
            ]
        );
        s.policy = Some(String::new());
        assert_eq!(fields(&s)[0], "spec.policy");
    }

    #[test]
    fn a_blank_owner_is_no_owner() {
        let mut s = spec();
        assert!(fields(&s).is_empty());
        s.owner = " \t".into();
        assert_eq!(fields(&s), ["spec.owner"]);
    }

    #[test]
    fn an_own_analysis_without_metrics_is_refused_even_when_the_defaults_have_some() {
        let mut s = spec();
        s.services[0].analysis = Some(Analysis {
            interval: Some(std::time::Duration::from_secs(10).into()),
            ..Default::default()
        });
        assert_eq!(fields(&s), ["spec.services[0].analysis.metrics"]);
        s.services[0].analysis.as_mut().unwrap().skip_analysis = Some(SkipAnalysis {
            reason: "cron job".into(),
        });
        assert!(fields(&s).is_empty());
    }

    #[test]
    fn skip_analysis_needs_a_reason_and_no_metrics() {
        let mut s = spec();
        let a = default_analysis(&mut s);
        a.skip_analysis = Some(SkipAnalysis {
            reason: "  ".into(),
        });
        assert_eq!(
            fields(&s),
            [
                "spec.defaults.analysis.skipAnalysis",
                "spec.defaults.analysis.skipAnalysis.reason"
            ]
        );
    }

    #[test]
    fn the_schema_bounds_are_checked_too() {
        let mut s = spec();
        let a = default_analysis(&mut s);
        a.metrics[0].name = "m".repeat(64);
        a.metrics[0].query = " ".into();
        s.services[0].traffic = Some(Traffic {
            gateway_api: Some(GatewayApiTraffic {
                http_route: String::new(),
                service: Some("Not_A_Service".into()),
            }),
        });
        assert_eq!(
            fields(&s),
            [
                "spec.defaults.analysis.metrics[0].name",
                "spec.defaults.analysis.metrics[0].query",
                "spec.services[0].traffic.gatewayAPI.httpRoute",
                "spec.services[0].traffic.gatewayAPI.service",
            ]
        );
    }

    fn default_analysis(s: &mut ReleaseSpec) -> &mut Analysis {
        s.defaults.as_mut().unwrap().analysis.as_mut().unwrap()
    }

    fn first_query(s: &mut ReleaseSpec) -> &mut String {
        &mut default_analysis(s).metrics[0].query
    }

    #[test]
    fn unknown_placeholders_and_shared_deployments_are_refused() {
        let mut s = crate::testing::spec()
            .services(&[("a", &[]), ("b", &[])])
            .metric_at_most(
                "e",
                "rate(x{service=\"{{ service }}\",ns=\"{{namespace}}\"}[1m])",
                1.0,
            )
            .build();
        assert!(validate(&s).is_empty(), "{:?}", validate(&s));
        for (query, bad) in [
            ("x{service=\"{{servce}}\"}", "{{servce}}"),
            ("x{a=\"{{ }}\"}", "{{ }}"),
            ("x{a=\"{{service}\"}", "{{service}\"}"),
            ("x{a=\"{{{service}}\"}", "{{{service}}"),
        ] {
            *first_query(&mut s) = query.into();
            let found = validate(&s);
            assert_eq!(found.len(), 1, "{query}: {found:?}");
            assert!(
                found[0]
                    .message
                    .starts_with(&format!("{bad:?} is not a placeholder")),
                "{found:?}"
            );
        }
        *first_query(&mut s) = "up".into();
        s.services[1].deployment = "a".into();
        let found = validate(&s);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].field, "spec.services[1].deployment");
        s.services[1].deployment = "b".into();
        s.defaults
            .as_mut()
            .unwrap()
            .analysis
            .as_mut()
            .unwrap()
            .failure_limit = Some(3_000_000_000_u32 as i32);
        assert_eq!(validate(&s)[0].field, "spec.defaults.analysis.failureLimit");
    }

    #[test]
    fn a_prometheus_address_is_a_usable_http_url() {
        let mut s = spec();
        for good in [
            "http://prometheus:9090",
            "https://prometheus.monitoring.svc.cluster.local:9090/prom",
            "http://10.0.0.1",
            "http://[::1]:9090",
            "http://user:p%41ss@prometheus:65535/",
        ] {
            s.prometheus = Some(super::super::PrometheusSpec {
                address: good.into(),
            });
            assert!(fields(&s).is_empty(), "{good}: {:?}", validate(&s));
        }
        for bad in [
            "prometheus:9090",
            "ftp://prometheus",
            "http://",
            "http:///path",
            "http://prometheus :9090",
            "http://prome theus",
            " http://prometheus",
            "http://prometheus\n",
            "http://prometheus/a b",
            "http://prometheus:65536",
            "http://prometheus:",
            "http://prometheus/?q=1",
            "http://prometheus#x",
            "http://[:::]",
            "http://[1.2.3.4]",
            "http://-prometheus",
            "http://prometheus\u{7f}",
        ] {
            s.prometheus = Some(super::super::PrometheusSpec {
                address: bad.into(),
            });
            assert_eq!(fields(&s), ["spec.prometheus.address"], "{bad:?}");
        }
        s.prometheus = Some(super::super::PrometheusSpec {
            address: format!("http://p/{}", "a".repeat(2048 - 9)),
        });
        assert!(fields(&s).is_empty());
        s.prometheus.as_mut().unwrap().address.push('a');
        assert_eq!(fields(&s), ["spec.prometheus.address"]);
    }

    #[test]
    fn a_query_that_does_not_parse_is_refused_with_its_field_and_the_parser_s_words() {
        let mut s = crate::testing::spec()
            .services(&[("a", &[])])
            .metric_at_most(
                "errors",
                "sum(rate(errors_total{service=\"{{service}}\"}[1m]))\n  / sum(rate(requests_total{service=\"{{service}}\"}[1m]))",
                0.01,
            )
            .build();
        assert!(fields(&s).is_empty(), "{:?}", validate(&s));
        *first_query(&mut s) = "sum(rate(errors_total{service=\"{{service}}\"}[1m])".into();
        let found = validate(&s);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].field, "spec.defaults.analysis.metrics[0].query");
        assert_eq!(
            found[0].message,
            "does not parse as PromQL: unclosed left parenthesis; fix the query (with its \
             placeholders filled in it must run in Prometheus' query page)"
        );
        // A service's own analysis is named by its own path.
        let own = s.defaults.as_mut().unwrap().analysis.take();
        s.services[0].analysis = own;
        assert_eq!(fields(&s), ["spec.services[0].analysis.metrics[0].query"]);
        // A typo in a placeholder is reported as that, not as a parse error too.
        s.services[0].analysis.as_mut().unwrap().metrics[0].query = "x{a=\"{{servce}}\"}".into();
        let found = validate(&s);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].message.contains("is not a placeholder"),
            "{found:?}"
        );
    }

    #[test]
    fn an_image_with_unicode_white_space_around_it_is_refused() {
        let mut s = spec();
        for bad in ["\u{a0}web:v2", "\u{b}web:v2", "web:v2\u{2003}", "\u{85}web"] {
            s.services[0].change.images.insert("app".into(), bad.into());
            assert_eq!(
                fields(&s),
                ["spec.services[0].change.images.app"],
                "{bad:?}"
            );
        }
        s.services[0]
            .change
            .images
            .insert("app".into(), "web v2".into());
        assert!(fields(&s).is_empty());
    }

    const COMPARED: &str = r#"sum(rate(errors_total{service="{{service}}",{{track}}}[1m]))"#;

    fn increase(by: f64) -> Compare {
        Compare {
            max_increase: Some(by),
            ..Default::default()
        }
    }

    fn compared(compare: Compare) -> ReleaseSpec {
        crate::testing::spec()
            .services(&[("a", &[])])
            .metric_compared("error-rate", COMPARED, compare)
            .build()
    }

    fn first_metric(s: &mut ReleaseSpec) -> &mut super::super::Metric {
        &mut default_analysis(s).metrics[0]
    }

    #[test]
    fn a_compare_metric_alone_or_with_a_fixed_bound_on_the_other_side_is_valid() {
        let mut s = compared(increase(0.005));
        assert_eq!(said(&s), Vec::<String>::new());
        first_metric(&mut s).min = Some(0.0);
        assert_eq!(said(&s), Vec::<String>::new());
        let mut s = compared(Compare {
            min_ratio: Some(0.9),
            max_decrease: Some(0.0),
            ..Default::default()
        });
        first_metric(&mut s).max = Some(1.0);
        assert_eq!(said(&s), Vec::<String>::new());
    }

    #[test]
    fn a_side_is_bounded_by_a_fixed_bound_or_a_comparison_not_both() {
        let mut s = compared(Compare {
            max_ratio: Some(1.2),
            ..Default::default()
        });
        first_metric(&mut s).max = Some(0.01);
        assert_eq!(
            said(&s),
            [
                "spec.defaults.analysis.metrics[0]: max and compare.maxIncrease/maxRatio both bound the \
              upper side; keep max (a fixed bound) or the comparison, not both"
            ]
        );
        let mut s = compared(Compare {
            max_decrease: Some(0.01),
            ..Default::default()
        });
        first_metric(&mut s).min = Some(0.9);
        assert_eq!(
            said(&s),
            [
                "spec.defaults.analysis.metrics[0]: min and compare.maxDecrease/minRatio both bound the \
              lower side; keep min (a fixed bound) or the comparison, not both"
            ]
        );
        let s = compared(Compare::default());
        assert_eq!(
            said(&s),
            [
                "spec.defaults.analysis.metrics[0].compare: give maxIncrease, maxRatio (higher is worse) \
              or maxDecrease, minRatio (lower is worse)"
            ]
        );
        let mut s = compared(Compare::default());
        first_metric(&mut s).compare = None;
        assert_eq!(
            said(&s),
            ["spec.defaults.analysis.metrics[0]: each metric needs min, max or compare"]
        );
    }

    #[test]
    fn ratios_must_be_positive_and_differences_not_negative() {
        for ratio in [0.0, -1.2, f64::NAN] {
            let s = compared(Compare {
                max_ratio: Some(ratio),
                min_ratio: Some(ratio),
                ..Default::default()
            });
            assert_eq!(
                said(&s),
                [
                    "spec.defaults.analysis.metrics[0].compare.maxRatio: must be greater than 0, e.g. 1.2 \
                     (the canary at most 20% above stable)",
                    "spec.defaults.analysis.metrics[0].compare.minRatio: must be greater than 0, e.g. 0.9 \
                     (the canary at least 90% of stable)",
                ],
                "{ratio}"
            );
        }
        let s = compared(Compare {
            max_increase: Some(-0.005),
            max_decrease: Some(-0.01),
            ..Default::default()
        });
        assert_eq!(
            said(&s),
            [
                "spec.defaults.analysis.metrics[0].compare.maxIncrease: must not be negative, e.g. 0.005",
                "spec.defaults.analysis.metrics[0].compare.maxDecrease: must not be negative, e.g. 0.01",
            ]
        );
        // Zero is a meaningful difference: no worse than stable at all.
        assert_eq!(said(&compared(increase(0.0))), Vec::<String>::new());
    }

    #[test]
    fn a_compare_metric_must_say_where_the_track_goes() {
        let mut s = compared(increase(0.005));
        first_metric(&mut s).query = r#"sum(rate(errors_total{service="{{service}}"}[1m]))"#.into();
        let fix = "a compare metric runs its query once for the canary and once for the stable pods, \
                   and {{track}} is what tells them apart; put {{track}} among the query's label \
                   matchers, e.g. http_requests_total{service=\"{{service}}\",{{track}}}";
        assert_eq!(
            said(&s),
            [format!("spec.defaults.analysis.metrics[0].query: {fix}")]
        );
        // A service's own analysis is named by its own path.
        s.services[0].analysis = s.defaults.as_mut().unwrap().analysis.take();
        assert_eq!(
            said(&s),
            [format!("spec.services[0].analysis.metrics[0].query: {fix}")]
        );
        // Spaces inside the braces are fine, as for every placeholder.
        s.services[0].analysis.as_mut().unwrap().metrics[0].query = "sum(up{ {{ track }} })".into();
        assert_eq!(said(&s), Vec::<String>::new());
        // Three braces in a row: told how to write it.
        s.services[0].analysis.as_mut().unwrap().metrics[0].query = "sum(up{{{track}}})".into();
        assert_eq!(
            said(&s),
            [
                "spec.services[0].analysis.metrics[0].query: \"{{{track}}\": three braces in a row do not \
              read as a selector's brace and a placeholder; put a space between them, e.g. up{ {{track}} }"
            ]
        );
        // A metric that does not compare may use {{track}} (the canary's) or not.
        let mut s = spec();
        *first_query(&mut s) = "sum(up{ {{track}} })".into();
        assert_eq!(said(&s), Vec::<String>::new());
    }

    fn verified() -> ReleaseSpec {
        crate::testing::spec()
            .services(&[("a", &[])])
            .metric_at_most("error-rate", "up", 0.01)
            .verify(
                Duration::from_secs(600),
                Duration::from_secs(30),
                "checkout-success",
                r#"sum(rate(checkouts_total{namespace="{{namespace}}",release="{{ release }}",result="ok"}[5m]))"#,
                1.0,
            )
            .build()
    }

    fn verify_analysis(s: &mut ReleaseSpec) -> &mut Analysis {
        &mut s.verify.as_mut().unwrap().analysis
    }

    #[test]
    fn verification_is_a_bake_of_at_least_1s_and_its_metrics() {
        let mut s = verified();
        assert_eq!(said(&s), Vec::<String>::new());
        s.verify.as_mut().unwrap().bake = Duration::from_millis(999).into();
        assert_eq!(
            said(&s),
            ["spec.verify.bake: must be a duration of at least 1s, e.g. 10m"]
        );
        let mut s = verified();
        verify_analysis(&mut s).metrics.clear();
        assert_eq!(
            said(&s),
            [
                "spec.verify.analysis.metrics: give at least one metric that watches the whole train, e.g. \
              the checkout success rate"
            ]
        );
        verify_analysis(&mut s).skip_analysis = Some(SkipAnalysis {
            reason: "nothing to watch".into(),
        });
        assert_eq!(
            said(&s),
            [
                "spec.verify.analysis: verification is its metrics; give analysis.metrics (or leave \
                 spec.verify out)",
                "spec.verify.analysis.metrics: give at least one metric that watches the whole train, e.g. \
                 the checkout success rate",
            ]
        );
        // Its analysis is checked as any other.
        let mut s = verified();
        verify_analysis(&mut s).interval = Some(Duration::from_millis(10).into());
        verify_analysis(&mut s).metrics[0].max = None;
        assert_eq!(
            said(&s),
            [
                "spec.verify.analysis.interval: must be a duration of at least 1s, e.g. 30s",
                "spec.verify.analysis.metrics[0]: each metric needs min, max or compare",
            ]
        );
    }

    #[test]
    fn verification_compares_nothing_and_measures_the_train_not_a_service() {
        let mut s = verified();
        let m = &mut verify_analysis(&mut s).metrics[0];
        m.max = None;
        m.compare = Some(increase(0.005));
        assert_eq!(
            said(&s),
            [
                "spec.verify.analysis.metrics[0].compare: after promotion there is no stable version left to \
              compare with; use min or max"
            ]
        );
        for placeholder in [
            "{{service}}",
            "{{canary_hash}}",
            "{{ stable_hash }}",
            "{{track}}",
        ] {
            let mut s = verified();
            verify_analysis(&mut s).metrics[0].query = format!("sum(up{{x=\"{placeholder}\"}})");
            assert_eq!(
                said(&s),
                [format!(
                    "spec.verify.analysis.metrics[0].query: {placeholder:?} is not a placeholder a verify \
                     query can use; use {{{{namespace}}}} or {{{{release}}}} (a verify query measures the \
                     whole train, not one service)"
                )]
            );
        }
    }

    /// Where a rule is both a CEL rule of the CRD and a check of `validate`,
    /// the API server and `plan` say it in the same words: the CEL message is
    /// the field's path (with `[]` for any index) and validate's message.
    #[test]
    fn the_crd_and_validate_say_the_compare_and_verify_rules_in_the_same_words() {
        use kube::CustomResourceExt;
        let crd = serde_json::to_string(&super::super::Release::crd()).unwrap();
        let cases: Vec<(ReleaseSpec, &str)> = vec![
            (
                {
                    let mut s = compared(increase(0.005));
                    first_metric(&mut s).max = Some(1.0);
                    s
                },
                "analysis.metrics[]: ",
            ),
            (
                {
                    let mut s = compared(Compare {
                        min_ratio: Some(0.9),
                        ..Default::default()
                    });
                    first_metric(&mut s).min = Some(1.0);
                    s
                },
                "analysis.metrics[]: ",
            ),
            (compared(Compare::default()), "analysis.metrics[].compare: "),
            (
                {
                    let mut s = compared(Compare::default());
                    first_metric(&mut s).compare = None;
                    s
                },
                "analysis.metrics: ",
            ),
            (
                compared(Compare {
                    max_ratio: Some(0.0),
                    ..Default::default()
                }),
                "analysis.metrics[].compare.maxRatio ",
            ),
            (
                compared(Compare {
                    min_ratio: Some(0.0),
                    ..Default::default()
                }),
                "analysis.metrics[].compare.minRatio ",
            ),
            (
                compared(increase(-1.0)),
                "analysis.metrics[].compare.maxIncrease ",
            ),
            (
                compared(Compare {
                    max_decrease: Some(-1.0),
                    ..Default::default()
                }),
                "analysis.metrics[].compare.maxDecrease ",
            ),
            (
                {
                    let mut s = verified();
                    s.verify.as_mut().unwrap().bake = Duration::ZERO.into();
                    s
                },
                "spec.verify.bake ",
            ),
            (
                {
                    let mut s = verified();
                    verify_analysis(&mut s).metrics.clear();
                    s
                },
                "spec.verify.analysis.metrics: ",
            ),
            (
                {
                    let mut s = verified();
                    verify_analysis(&mut s).metrics[0].compare = Some(increase(0.0));
                    verify_analysis(&mut s).metrics[0].max = None;
                    s
                },
                "spec.verify.analysis.metrics[].compare: ",
            ),
        ];
        for (s, prefix) in cases {
            let found = validate(&s);
            assert_eq!(found.len(), 1, "{found:?}");
            let cel = format!("{prefix}{}", found[0].message);
            assert!(
                crd.contains(&serde_json::to_string(&cel).unwrap()),
                "the CRD has no rule saying {cel:?}"
            );
        }
        let mut s = verified();
        verify_analysis(&mut s).skip_analysis = Some(SkipAnalysis { reason: "x".into() });
        let found = validate(&s);
        let cel = format!("spec.verify.analysis: {}", found[0].message);
        assert!(crd.contains(&serde_json::to_string(&cel).unwrap()), "{cel}");
    }
}

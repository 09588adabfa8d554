//! The checks a Release must pass on its face, in Rust.
//!
//! They mirror the CRD's schema and CEL rules, so `kubectl signalman plan` can
//! reject a file offline with the same words the apiserver would use, and the
//! controller stays safe when an older CRD let something through. Checks that
//! need the dependency graph (unknown `dependsOn`, cycles) live in `plan`.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use super::{Analysis, ReleaseSpec, Step};

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
        && !(p.address.starts_with("http://") || p.address.starts_with("https://"))
    {
        problem(
            "spec.prometheus.address".into(),
            "must be an http:// or https:// URL",
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
    if spec.services.is_empty() {
        problem("spec.services".into(), "list at least one service");
    }
    if let Some(d) = &spec.defaults {
        if let Some(steps) = &d.steps {
            check_steps("spec.defaults.steps", steps, &mut problem);
        }
        if let Some(a) = &d.analysis {
            check_analysis("spec.defaults.analysis", a, &mut problem);
        }
    }

    let mut seen = BTreeSet::new();
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
        if svc.deployment.is_empty() {
            problem(
                format!("{at}.deployment"),
                "name the Deployment this service runs as",
            );
        }
        if svc.depends_on.iter().any(|d| d == &svc.name) {
            problem(
                format!("{at}.dependsOn"),
                "a service cannot depend on itself",
            );
        }
        if svc.change.images.is_empty() && svc.change.env.is_empty() {
            problem(format!("{at}.change"), "must set images or env");
        }
        if let Some(steps) = &svc.steps {
            check_steps(&format!("{at}.steps"), steps, &mut problem);
        }
        if let Some(a) = &svc.analysis {
            check_analysis(&format!("{at}.analysis"), a, &mut problem);
        }
    }
    out
}

fn check_steps(at: &str, steps: &[Step], problem: &mut impl FnMut(String, &str)) {
    if steps.len() < 2 {
        problem(
            at.to_owned(),
            "needs at least two steps (a single jump to 100 is not a canary), e.g. 10 then 100",
        );
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

fn check_analysis(at: &str, a: &Analysis, problem: &mut impl FnMut(String, &str)) {
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
        if v.is_some_and(|v| v < 0) {
            problem(format!("{at}.{field}"), "must not be negative");
        }
    }
    if a.min_passes.is_some_and(|v| v < 1) {
        problem(format!("{at}.minPasses"), "must be at least 1");
    }
    let mut seen = BTreeSet::new();
    for (i, m) in a.metrics.iter().enumerate() {
        if !seen.insert(m.name.as_str()) {
            problem(
                format!("{at}.metrics[{i}].name"),
                "metric names must be unique",
            );
        }
        if m.query.trim().is_empty() {
            problem(format!("{at}.metrics[{i}].query"), "must be a PromQL query");
        }
        match (m.min, m.max) {
            (None, None) => problem(format!("{at}.metrics[{i}]"), "needs min, max or both"),
            (Some(lo), Some(hi)) if lo > hi => {
                problem(format!("{at}.metrics[{i}]"), "min must not exceed max")
            }
            _ => {}
        }
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

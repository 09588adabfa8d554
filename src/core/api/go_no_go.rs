//! The go/no-go fields of a Release checked on their face, in the words of
//! the CRD's rules: risk, type, gates, gate timeout, window and override.

use std::collections::BTreeSet;
use std::time::Duration;

use super::validate::unknown_placeholder;
use super::{Gate, Problem, ReleaseSpec};

/// The placeholders a gate query may use: a gate is about the release, not one service.
pub const GATE_PLACEHOLDERS: [&str; 2] = ["namespace", "release"];
const MAX_GATE_QUERY: usize = 4096;
// The schema's bounds (`maxLength`, `maxItems`), as `validate`'s are.
const MAX_JUSTIFICATION: usize = 1024;
const MAX_GATES: usize = 20;

pub(super) fn problems(spec: &ReleaseSpec) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Some(p) = crate::policy::risk_problem(spec) {
        out.push(p);
    }
    let mut problem = |field: String, message: &str| {
        out.push(Problem {
            field,
            message: message.to_owned(),
        })
    };
    let too_short =
        |d: super::Duration| d.is_negative() || Duration::from(d) < Duration::from_secs(1);
    if crate::policy::is_hotfix(spec) && !hotfix_measured(spec) {
        problem(
            "spec.type".into(),
            "a hotfix is still measured: give every service at least one metric (no analysis.skipAnalysis)",
        );
    }
    if spec.gate_timeout.is_some_and(too_short) {
        problem(
            "spec.gateTimeout".into(),
            "must be a duration of at least 1s, e.g. 4h",
        );
    }
    if let Some(o) = &spec.window_override {
        if o.justification.trim().is_empty() {
            problem(
                "spec.override.justification".into(),
                "must say why the release cannot wait for its window",
            );
        } else if o.justification.chars().count() > MAX_JUSTIFICATION {
            problem(
                "spec.override.justification".into(),
                "at most 1024 characters; say it shorter and link the details",
            );
        }
    }
    if spec.gates.len() > MAX_GATES {
        problem(
            "spec.gates".into(),
            "at most 20 gates; one query can check several conditions (e.g. with and/or)",
        );
    }
    // Names are unique across the release's gates and every service's: an
    // approval and a gate check name a gate by its name alone.
    let mut names = BTreeSet::new();
    let all = spec
        .gates
        .iter()
        .enumerate()
        .map(|(i, g)| (format!("spec.gates[{i}]"), g))
        .chain(spec.services.iter().enumerate().flat_map(|(s, svc)| {
            svc.gates
                .iter()
                .enumerate()
                .map(move |(i, g)| (format!("spec.services[{s}].gates[{i}]"), g))
        }));
    for (at, g) in all {
        if !names.insert(g.name.as_str()) {
            problem(
                format!("{at}.name"),
                &format!(
                    "gate names must be unique across spec.gates and every service's gates; {:?} \
                     appears more than once",
                    g.name
                ),
            );
        }
        check_gate(&at, g, &mut problem);
    }
    out.extend(crate::policy::window::problems(
        spec.window.as_ref(),
        None,
        "spec.window",
        "spec.freeze",
    ));
    out
}

/// One gate on its face, release-level or a service's: both are checked by the same code.
fn check_gate(at: &str, g: &Gate, problem: &mut impl FnMut(String, &str)) {
    let too_short =
        |d: super::Duration| d.is_negative() || Duration::from(d) < Duration::from_secs(1);
    if !super::validate::is_dns_label(&g.name) {
        problem(
            format!("{at}.name"),
            "must be lower-case letters, digits and '-', at most 63 characters, e.g. smoke-tests",
        );
    }
    if g.interval.is_some_and(too_short) {
        problem(
            format!("{at}.interval"),
            "must be a duration of at least 1s, e.g. 30s",
        );
    }
    let approval = g.approval == Some(true);
    if g.query.is_some() == approval {
        problem(
            at.to_owned(),
            "a gate is either a query (with min and/or max) or approval: true",
        );
    }
    if let (Some(lo), Some(hi)) = (g.min, g.max)
        && lo > hi
    {
        problem(at.to_owned(), "min must not exceed max");
    }
    let Some(query) = &g.query else { return };
    if g.min.is_none() && g.max.is_none() {
        problem(at.to_owned(), "a query gate needs min, max or both");
    }
    if query.trim().is_empty() {
        problem(format!("{at}.query"), "must be a PromQL query");
        return;
    }
    if query.chars().count() > MAX_GATE_QUERY {
        problem(
            format!("{at}.query"),
            "at most 4096 characters; move long expressions into a recording rule",
        );
        return;
    }
    if let Some(bad) = unknown_placeholder(query, &GATE_PLACEHOLDERS) {
        problem(
            format!("{at}.query"),
            &format!(
                "{bad:?} is not a placeholder a gate can use; use {{{{namespace}}}} or {{{{release}}}} \
                 (a gate is checked for the whole release, not for one service)"
            ),
        );
    } else if let Some(why) = crate::analysis::quoting::misplaced(query, &GATE_PLACEHOLDERS) {
        problem(format!("{at}.query"), &why);
    } else if let Some(why) = crate::analysis::query_problem(query) {
        problem(format!("{at}.query"), &why);
    }
}

/// The CRD's rule for a hotfix: no service opts out of measurement, and
/// every service has a metric.
fn hotfix_measured(spec: &ReleaseSpec) -> bool {
    // A job is judged by its exit, not measured.
    spec.services.iter().filter(|s| s.job.is_none()).all(|s| {
        let a = spec.analysis_of(s);
        a.skip_analysis.is_none() && !a.metrics.is_empty()
    }) && spec
        .defaults
        .as_ref()
        .and_then(|d| d.analysis.as_ref())
        .is_none_or(|a| a.skip_analysis.is_none())
}

#[cfg(test)]
mod tests {
    use super::super::{Gate, ReleaseType, Risk, SkipAnalysis, Weekday, Window, WindowOverride};
    use super::*;

    fn spec() -> ReleaseSpec {
        crate::testing::spec()
            .services(&[("a", &[])])
            .metric_at_most("error-rate", "up", 0.01)
            .build()
    }

    fn gate(name: &str, query: Option<&str>) -> Gate {
        Gate {
            name: name.into(),
            query: query.map(Into::into),
            min: None,
            max: query.map(|_| 0.0),
            interval: None,
            approval: query.is_none().then_some(true),
        }
    }

    fn said(s: &ReleaseSpec) -> Vec<String> {
        crate::api::validate(s)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn gates_are_checked_with_the_field_and_the_fix() {
        let mut s = spec();
        s.gates = vec![
            gate(
                "smoke",
                Some("sum(smoke_failed{namespace=\"{{namespace}}\",release=\"{{ release }}\"})"),
            ),
            gate("sign-off", None),
        ];
        assert_eq!(said(&s), Vec::<String>::new());
        s.gates
            .push(gate("smoke", Some("sum(x{service=\"{{service}}\"})")));
        s.gates.push(gate("broken", Some("sum(rate(x[1m])")));
        assert_eq!(
            said(&s),
            [
                "spec.gates[2].name: gate names must be unique across spec.gates and every service's gates; \
                 \"smoke\" appears more than once",
                "spec.gates[2].query: \"{{service}}\" is not a placeholder a gate can use; use {{namespace}} or \
                 {{release}} (a gate is checked for the whole release, not for one service)",
                "spec.gates[3].query: does not parse as PromQL: unclosed left parenthesis; fix the query (with its \
                 placeholders filled in it must run in Prometheus' query page)",
            ]
        );
    }

    #[test]
    fn risk_window_override_and_hotfix_are_refused_in_the_crd_s_words() {
        let mut s = spec();
        s.risk = Some(Risk::Low);
        s.window = Some(Window {
            days: vec![Weekday::Monday],
            from: "10:00".into(),
            to: "10:00".into(),
            time_zone: Some("Europe/Berln".into()),
        });
        s.window_override = Some(WindowOverride {
            justification: "  ".into(),
        });
        s.release_type = Some(ReleaseType::Hotfix);
        s.defaults.as_mut().unwrap().analysis = Some(crate::api::Analysis {
            skip_analysis: Some(SkipAnalysis {
                reason: "no traffic".into(),
            }),
            ..Default::default()
        });
        assert_eq!(
            said(&s),
            [
                "spec.risk: low is below the risk of service a (no change.class, which counts as feature); raise \
                 spec.risk or set it to auto",
                "spec.type: a hotfix is still measured: give every service at least one metric (no \
                 analysis.skipAnalysis)",
                "spec.override.justification: must say why the release cannot wait for its window",
                "spec.window.timeZone: unknown time zone \"Europe/Berln\"; use an IANA time zone such as \
                 Europe/Berlin or UTC",
                "spec.window: from must be before to (a window cannot cross midnight; use from 00:00 or to 24:00 \
                 and list both days)",
            ]
        );
    }
}

//! Query templating: whatever the values and however the template quotes
//! them, a value stays inside its label matcher, and a template `validate`
//! accepts means, with real values, the query it means with the sample
//! values `plan` checks it with.

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{self, Expr};
use promql_parser::util::visitor::{ExprVisitorMut, walk_expr_mut};
use proptest::prelude::*;

use super::{hostile_text, kubernetes_name};
use crate::analysis::{QueryVars, Track, query_problem, render_query};
use crate::api::{PLACEHOLDERS, validate};

fn vars(namespace: String, service: String, release: String, hash: String) -> QueryVars {
    QueryVars {
        namespace,
        service,
        release,
        canary_hash: hash.clone(),
        stable_hash: format!("{hash}0"),
        track: Track::Canary,
    }
}

/// The one selector `query` parses to, or why not.
fn selector(query: &str) -> Result<Vec<Matcher>, String> {
    match parser::parse(query).map_err(|e| format!("{query:?}: {e}"))? {
        Expr::VectorSelector(vs) => Ok(vs.matchers.matchers),
        other => Err(format!("{query:?} parsed as {other:?}")),
    }
}

proptest! {
    /// Any value, in a double- or single-quoted label matcher, with spaces in
    /// the placeholder or not, comes back as exactly that matcher's value,
    /// and the matchers around it are untouched.
    #[test]
    fn a_value_never_leaves_its_label_matcher(
        value in hostile_text(),
        single in any::<bool>(),
        spaced in any::<bool>(),
        which in 0..5usize,
    ) {
        let name = ["namespace", "service", "release", "canary_hash", "stable_hash"][which];
        let q = if single { '\'' } else { '"' };
        let placeholder = if spaced { format!("{{{{ {name} }}}}") } else { format!("{{{{{name}}}}}") };
        let template = format!(r#"up{{before="x",picked={q}{placeholder}{q},after="y"}}"#);
        let v = vars(value.clone(), value.clone(), value.clone(), value.clone());
        let rendered = render_query(&template, &v);
        let matchers = selector(&rendered).map_err(TestCaseError::fail)?;
        let want = if name == "stable_hash" { format!("{value}0") } else { value.clone() };
        let seen: Vec<(&str, &str)> =
            matchers.iter().map(|m| (m.name.as_str(), m.value.as_str())).collect();
        prop_assert_eq!(seen, vec![("before", "x"), ("picked", want.as_str()), ("after", "y")]);
    }

    /// Rendering and checking never panic, whatever the template and values.
    #[test]
    fn rendering_and_checking_any_template_never_panics(
        template in hostile_text(),
        value in hostile_text(),
        stable in any::<bool>(),
    ) {
        let mut v = vars(value.clone(), value.clone(), value.clone(), value);
        if stable {
            v.track = Track::Stable;
        }
        let _ = render_query(&template, &v);
        let _ = query_problem(&template);
        let _ = crate::analysis::quoting::misplaced(&template, &PLACEHOLDERS);
    }

    /// A template `validate` accepts parses, with any names Kubernetes could
    /// give, to the same query as with the sample words `plan` checks it
    /// with: only the values differ, never the query's shape.
    #[test]
    fn an_accepted_template_means_with_real_names_what_plan_checked(
        template in template(),
        namespace in kubernetes_name(),
        service in kubernetes_name(),
        release in kubernetes_name(),
        hash in "[a-z0-9]{1,10}",
    ) {
        let mut spec = crate::testing::spec()
            .services(&[("a", &[])])
            .metric_at_most("m", &template, 1.0)
            .build();
        spec.owner = "team".into();
        // Refused templates (a placeholder bare or in a raw string, about
        // two in three here) are what `validate` is for: nothing to compare.
        if !validate(&spec).is_empty() {
            return Ok(());
        }
        let real = vars(namespace, service, release, hash);
        let values = [&real.namespace, &real.service, &real.release, &real.canary_hash, &real.stable_hash];
        prop_assume!(values.iter().collect::<std::collections::BTreeSet<_>>().len() == values.len());
        let sample = vars("namespace".into(), "service".into(), "release".into(), "canaryhash".into());
        let sample = QueryVars { stable_hash: "stablehash".into(), ..sample };
        let mut ran = parser::parse(&render_query(&template, &real))
            .map_err(|e| TestCaseError::fail(format!("{template:?} with real names: {e}")))?;
        let checked = parser::parse(&render_query(&template, &sample))
            .map_err(|e| TestCaseError::fail(format!("{template:?} with sample words: {e}")))?;
        // Put the sample words back where the real names went: the rest must be equal.
        let mut back = Back(vec![
            (real.stable_hash.clone(), sample.stable_hash.clone()),
            (real.canary_hash.clone(), sample.canary_hash.clone()),
            (real.namespace.clone(), sample.namespace.clone()),
            (real.service.clone(), sample.service.clone()),
            (real.release.clone(), sample.release.clone()),
        ]);
        walk_expr_mut(&mut back, &mut ran).unwrap();
        prop_assert_eq!(ran, checked, "{:?}", template);
    }
}

/// Replaces each real name in a string value with its sample word. Values of
/// one template are written from placeholders alone, so a string equal to a
/// placeholder's value (or several placeholders' run together) maps back.
struct Back(Vec<(String, String)>);

impl Back {
    fn put_back(&self, s: &mut String) {
        if let Some((_, sample)) = self.0.iter().find(|(real, _)| real == s) {
            *s = sample.clone();
        }
    }
}

impl ExprVisitorMut for Back {
    type Error = std::convert::Infallible;

    fn pre_visit(&mut self, expr: &mut Expr) -> Result<bool, Self::Error> {
        let matchers = |vs: &mut parser::VectorSelector| {
            for m in vs
                .matchers
                .matchers
                .iter_mut()
                .chain(vs.matchers.or_matchers.iter_mut().flatten())
            {
                self.put_back(&mut m.value);
                // A regex matcher keeps its compiled value too (PromQL anchors it).
                let anchored = || regex::Regex::new(&format!("^(?:{})$", m.value)).unwrap();
                match &m.op {
                    MatchOp::Re(_) => m.op = MatchOp::Re(anchored()),
                    MatchOp::NotRe(_) => m.op = MatchOp::NotRe(anchored()),
                    _ => {}
                }
            }
            if let Some(n) = vs.name.as_mut() {
                self.put_back(n);
            }
        };
        match expr {
            Expr::VectorSelector(vs) => matchers(vs),
            Expr::MatrixSelector(ms) => matchers(&mut ms.vs),
            Expr::StringLiteral(s) => self.put_back(&mut s.val),
            _ => {}
        }
        Ok(true)
    }
}

/// Templates from pieces a query is made of, placeholders in every place:
/// a label matcher's value (either quote), a metric name, a raw string, a
/// comment, a selector on their own.
fn template() -> BoxedStrategy<String> {
    let placeholder = proptest::sample::select(vec![
        "{{namespace}}",
        "{{ service }}",
        "{{release}}",
        "{{canary_hash}}",
        "{{stable_hash}}",
    ]);
    let matcher = (
        proptest::sample::select(vec!["service", "namespace", "pod_template_hash", "job"]),
        proptest::sample::select(vec!["=", "!=", "=~", "!~"]),
        proptest::sample::select(vec!["\"", "'", "`"]),
        placeholder.clone(),
    )
        .prop_map(|(label, op, q, p)| format!("{label}{op}{q}{p}{q}"));
    let selector = (
        prop_oneof![
            3 => Just("http_requests_total".to_owned()),
            1 => placeholder.clone().prop_map(|p| format!("{p}_errors_total")),
        ],
        proptest::collection::vec(matcher, 0..3),
        any::<bool>(),
    )
        .prop_map(|(name, matchers, track)| {
            let mut all = matchers;
            if track {
                all.push("{{track}}".to_owned());
            }
            format!("{name}{{{}}}", all.join(","))
        });
    (
        selector.clone(),
        proptest::option::of(selector),
        proptest::sample::select(vec!["", " # {{service}} was here", "\n"]),
    )
        .prop_map(|(a, b, tail)| match b {
            Some(b) => format!("sum(rate({a}[1m])) / sum(rate({b}[1m])){tail}"),
            None => format!("sum({a}){tail}"),
        })
        .boxed()
}

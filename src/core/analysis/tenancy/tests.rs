use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr, VectorSelector, value::ValueType};
use proptest::prelude::*;

use super::*;
use crate::api::ReleaseSpec;

/// Every selector of `expr`, in order.
fn selectors(expr: &mut Expr, f: &mut impl FnMut(&mut VectorSelector)) {
    match expr {
        Expr::Aggregate(a) => {
            selectors(&mut a.expr, f);
            if let Some(p) = a.param.as_mut() {
                selectors(p, f);
            }
        }
        Expr::Unary(u) => selectors(&mut u.expr, f),
        Expr::Binary(b) => {
            selectors(&mut b.lhs, f);
            selectors(&mut b.rhs, f);
        }
        Expr::Paren(p) => selectors(&mut p.expr, f),
        Expr::Subquery(s) => selectors(&mut s.expr, f),
        Expr::VectorSelector(vs) => f(vs),
        Expr::MatrixSelector(ms) => f(&mut ms.vs),
        Expr::Call(c) => c.args.args.iter_mut().for_each(|a| selectors(a, f)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// The namespace matchers of each alternative of each selector of `query`.
fn namespace_matchers(query: &str) -> Vec<Vec<(String, String)>> {
    let mut expr = parser::parse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
    let mut out = Vec::new();
    selectors(&mut expr, &mut |vs| {
        let m = &vs.matchers;
        let groups: Vec<&Vec<_>> = if m.or_matchers.is_empty() {
            vec![&m.matchers]
        } else {
            m.or_matchers.iter().collect()
        };
        for g in groups {
            out.push(
                g.iter()
                    .filter(|m| m.name == NAMESPACE_LABEL)
                    .map(|m| (m.op.to_string(), m.value.clone()))
                    .collect(),
            );
        }
    });
    out
}

/// `query` parsed, every namespace matcher taken out: what is left must not
/// change when a query is confined.
fn without_namespace(query: &str) -> Expr {
    let mut expr = parser::parse(query).unwrap();
    // Printing sorts a selector's matchers; their order means nothing.
    let key = |m: &promql_parser::label::Matcher| m.to_string();
    selectors(&mut expr, &mut |vs| {
        vs.matchers.matchers.retain(|m| m.name != NAMESPACE_LABEL);
        vs.matchers.matchers.sort_by_key(key);
        for g in vs.matchers.or_matchers.iter_mut() {
            g.retain(|m| m.name != NAMESPACE_LABEL);
            g.sort_by_key(key);
        }
    });
    expr
}

/// The rewritten query parses, every selector (each alternative) has exactly
/// one namespace matcher, `namespace="<ns>"`, and nothing else changed.
fn assert_confined(original: &str, confined: &str, ns: &str) {
    let groups = namespace_matchers(confined);
    for g in &groups {
        assert_eq!(
            g,
            &[("=".to_owned(), ns.to_owned())],
            "{original} -> {confined}"
        );
    }
    assert_eq!(
        without_namespace(original),
        without_namespace(confined),
        "{original} -> {confined}"
    );
    assert_eq!(
        parser::parse(original).unwrap().value_type(),
        parser::parse(confined).unwrap().value_type(),
        "{original} -> {confined}"
    );
}

#[test]
fn every_selector_gets_the_namespace() {
    let cases = [
        ("up", r#"up{namespace="shop"}"#),
        (
            r#"sum(rate(http_requests_total{service="web",code=~"5.."}[1m]))"#,
            r#"sum(rate(http_requests_total{code=~"5..",namespace="shop",service="web"}[1m]))"#,
        ),
        (
            "sum(rate(x[5m] offset 1h)) / sum(y @ end())",
            r#"sum(rate(x{namespace="shop"}[5m] offset 1h)) / sum(y{namespace="shop"} @ end())"#,
        ),
        (
            "max_over_time(sum(rate(x[1m]))[30m:1m])",
            r#"max_over_time(sum(rate(x{namespace="shop"}[1m]))[30m:1m])"#,
        ),
        (
            r#"{__name__="x", service="s"}"#,
            r#"{__name__="x",namespace="shop",service="s"}"#,
        ),
        (
            r#"x{a="1" or b="2"}"#,
            r#"x{namespace="shop", a="1" or namespace="shop", b="2"}"#,
        ),
        ("vector(1) + 2", "vector(1) + 2"),
    ];
    for (q, want) in cases {
        let got = confine(q, "shop").unwrap();
        assert_eq!(got, want, "{q}");
        assert_confined(q, &got, "shop");
    }
}

#[test]
fn the_own_namespace_stays_one_equality_matcher() {
    for q in [
        r#"x{namespace="shop"}"#,
        r#"x{namespace=~"shop"}"#,
        r#"x{namespace="shop",namespace=~"shop"}"#,
    ] {
        assert_eq!(confine(q, "shop").unwrap(), r#"x{namespace="shop"}"#, "{q}");
    }
}

#[test]
fn another_namespace_is_refused_with_the_matcher() {
    assert_eq!(
        confine(r#"sum(x{namespace="payments"})"#, "shop").unwrap_err(),
        r#"reads namespace "payments" (namespace="payments"), but a Release in namespace "shop" may read only its own namespace's series"#
    );
    for (q, matcher) in [
        (
            r#"x{namespace=~"shop|payments"}"#,
            r#"namespace=~"shop|payments""#,
        ),
        (r#"x{namespace=~".+"}"#, r#"namespace=~".+""#),
        (r#"x{namespace=~"sho."}"#, r#"namespace=~"sho.""#),
        (r#"x{namespace!="payments"}"#, r#"namespace!="payments""#),
        (r#"x{namespace!~"kube-.*"}"#, r#"namespace!~"kube-.*""#),
        (r#"x{namespace!="shop"}"#, r#"namespace!="shop""#),
    ] {
        assert_eq!(
            confine(q, "shop").unwrap_err(),
            format!(
                r#"may read namespaces other than "shop" ({matcher}), but a Release in namespace "shop" may read only its own namespace's series"#
            ),
            "{q}"
        );
    }
    // Anywhere in the query, in any alternative.
    for q in [
        r#"sum(rate(x[1m])) / sum(rate(y{namespace="b"}[1m]))"#,
        r#"max_over_time(x{namespace="b"}[5m:1m])"#,
        r#"x{a="1" or namespace="b"}"#,
        r#"label_replace(x{namespace="b"}, "namespace", "shop", "", "")"#,
        r#"absent(x{"namespace"="b"})"#,
    ] {
        assert!(confine(q, "shop").is_err(), "{q}");
    }
    assert!(
        confine("sum(", "shop")
            .unwrap_err()
            .starts_with("does not parse as PromQL: ")
    );
}

/// The queries release managers write (the list Prometheus itself checks in
/// e2e/tests/promql_agreement.rs), filled as the controller fills them.
#[test]
fn the_queries_release_managers_write_are_confined() {
    let vars = QueryVars {
        namespace: "shop".into(),
        ..sample_vars()
    };
    let list = include_str!("../queries/valid.promql");
    for q in list
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let rendered = render_query(q, &vars);
        let confined = confine(&rendered, "shop").unwrap_or_else(|e| panic!("{q}: {e}"));
        assert_confined(&rendered, &confined, "shop");
        assert_eq!(confine(&confined, "shop").as_ref(), Ok(&confined), "{q}");
    }
}

#[test]
fn addresses_match_as_one_url() {
    let allowed = vec![
        "http://prometheus.monitoring:9090".to_owned(),
        "https://thanos.example/tenant-a/".to_owned(),
    ];
    for ok in [
        "http://prometheus.monitoring:9090",
        "http://prometheus.monitoring:9090/",
        "HTTP://Prometheus.Monitoring:9090",
        "https://thanos.example:443/tenant-a",
        "https://thanos.example/tenant-a",
    ] {
        assert!(address_allowed(ok, &allowed), "{ok}");
    }
    for refused in [
        "http://prometheus.monitoring:9091",
        "https://prometheus.monitoring:9090",
        "http://prometheus.monitoring:9090/other",
        "http://user@prometheus.monitoring:9090",
        "http://prometheus.monitoring",
        "https://thanos.example/tenant-b",
        "https://thanos.example/tenant-a/x",
        "https://thanos.example",
        "http://169.254.169.254",
    ] {
        assert!(!address_allowed(refused, &allowed), "{refused}");
    }
    assert!(address_allowed("http://p:80", &["http://p".to_owned()]));
    assert!(!address_allowed("http://p", &[]));
}

fn spec(json: serde_json::Value) -> ReleaseSpec {
    serde_json::from_value(json).unwrap()
}

#[test]
fn every_query_field_and_the_address_are_checked_before_anything_moves() {
    let s = spec(serde_json::json!({
        "owner": "team",
        "prometheus": {"address": "http://127.0.0.1:9"},
        "defaults": {"analysis": {"metrics": [
            {"name": "ok", "query": "sum(x{namespace=\"{{namespace}}\"})", "max": 1},
            {"name": "d", "query": "sum(x{namespace=\"b\"})", "max": 1}]}},
        "gates": [{"name": "g", "query": "sum(ALERTS{namespace=~\".*\"})", "max": 0}],
        "services": [{"name": "web", "deployment": "web", "change": {"images": {"app": "x:v2"}},
            "gates": [{"name": "sg", "query": "sum(x{namespace!=\"shop\"})", "max": 0}],
            "analysis": {"metrics": [
                {"name": "ok", "query": "sum(rate(x{service=\"{{service}}\"}[1m]))", "max": 1},
                {"name": "m", "query": "sum(rate(x{namespace=\"b\",service=\"{{service}}\"}[1m]))", "max": 1}]}}],
        "verify": {"bake": "1m", "analysis": {"metrics": [
            {"name": "v", "query": "sum(x{namespace=\"kube-system\"})", "max": 1}]}}
    }));
    let reach = Reach {
        enforce_namespace: true,
        allowed_addresses: Some(vec!["http://prometheus.monitoring:9090".into()]),
    };
    let found = problems(&s, "shop", &reach);
    let fields: Vec<&str> = found.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.prometheus.address",
            "spec.defaults.analysis.metrics[1].query",
            "spec.services[0].analysis.metrics[1].query",
            "spec.services[0].gates[0].query",
            "spec.gates[0].query",
            "spec.verify.analysis.metrics[0].query",
        ]
    );
    assert_eq!(
        found[0].to_string(),
        "spec.prometheus.address: \"http://127.0.0.1:9\" is not a Prometheus address this operator \
         may query; the allowed addresses are the operator's --prometheus-url and \
         --prometheus-allowed-address (chart values prometheusUrl and prometheusAllowedAddresses); \
         remove spec.prometheus to use the operator's Prometheus, or ask the platform team to allow \
         this address"
    );
    assert_eq!(
        found[2].to_string(),
        "spec.services[0].analysis.metrics[1].query: reads namespace \"b\" (namespace=\"b\"), but a \
         Release in namespace \"shop\" may read only its own namespace's series; the operator runs \
         with --enforce-namespace, which adds namespace=\"shop\" to every selector; remove the \
         namespace matcher or write namespace=\"shop\" (or {{namespace}})"
    );
    // Without enforcement only the address is checked; without a list, nothing.
    let open = Reach {
        enforce_namespace: false,
        ..reach.clone()
    };
    assert_eq!(problems(&s, "shop", &open).len(), 1);
    assert!(problems(&s, "shop", &Reach::default()).is_empty());
}

/// A selector as release managers write them, with one of the namespace
/// matchers that may or may not be the Release's own.
fn selector() -> impl Strategy<Value = (String, bool)> {
    let name = prop::sample::select(vec!["up", "http_requests_total", "x:rate5m", ""]);
    let other = prop::collection::vec(
        prop::sample::select(vec![
            r#"service="web""#,
            r#"code=~"5..""#,
            r#"track!="canary""#,
            r#"le="0.5""#,
            r#"pod_template_hash="abc""#,
        ]),
        0..3,
    );
    // (matcher, whether it may read another namespace)
    let ns = prop::sample::select(vec![
        ("", false),
        (r#"namespace="shop""#, false),
        (r#"namespace=~"shop""#, false),
        (r#"namespace="payments""#, true),
        (r#"namespace=~"shop|payments""#, true),
        (r#"namespace!="payments""#, true),
        (r#"namespace=~".*""#, true),
    ]);
    let or = prop::option::weighted(0.2, prop::sample::select(vec![r#"job="a""#, r#"job="b""#]));
    (name, other, ns, or).prop_map(|(name, other, (ns, foreign), or)| {
        let mut matchers: Vec<&str> = other;
        if !ns.is_empty() {
            matchers.push(ns);
        }
        if name.is_empty() && matchers.iter().all(|m| m.starts_with("namespace")) {
            matchers.push(r#"__name__="x""#);
        }
        let mut body = matchers.join(",");
        if let Some(alt) = or {
            body = if body.is_empty() {
                alt.to_owned()
            } else {
                format!("{body} or {alt}")
            };
        }
        if body.is_empty() {
            (name.to_owned(), foreign)
        } else {
            (format!("{name}{{{body}}}"), foreign)
        }
    })
}

/// An instant-vector query built from selectors with what queries use:
/// functions, ranges, subqueries, `@`, `offset`, aggregations and binary operators.
fn query() -> impl Strategy<Value = (String, bool)> {
    let leaf = (
        selector(),
        prop::sample::select(vec!["", " offset 5m", " @ 1609746000", " @ end()"]),
    )
        .prop_map(|((s, f), m)| (format!("{s}{m}"), f));
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|(q, f)| (format!("sum({q})"), f)),
            inner
                .clone()
                .prop_map(|(q, f)| (format!("sum by (le) ({q})"), f)),
            inner
                .clone()
                .prop_map(|(q, f)| (format!("topk(3, {q})"), f)),
            inner.clone().prop_map(|(q, f)| (format!("-({q})"), f)),
            inner.clone().prop_map(|(q, f)| (format!("absent({q})"), f)),
            inner
                .clone()
                .prop_map(|(q, f)| (format!("histogram_quantile(0.9, {q})"), f)),
            inner
                .clone()
                .prop_map(|(q, f)| (format!("max_over_time(({q})[10m:1m])"), f)),
            inner
                .clone()
                .prop_map(|(q, f)| (format!(r#"label_replace({q}, "a", "$1", "b", "(.*)")"#), f)),
            (selector(), prop::sample::select(vec!["1m", "5m"]))
                .prop_map(|((s, f), r)| (format!("rate({s}[{r}])"), f)),
            (selector(), prop::sample::select(vec!["1m", "5m"]))
                .prop_map(|((s, f), r)| (format!("sum(rate({s}[{r}] offset 1h))"), f)),
            (
                inner.clone(),
                inner.clone(),
                prop::sample::select(vec![" / ", " + ", " > bool ", " or ", " and ", " unless "])
            )
                .prop_map(|((a, fa), (b, fb), op)| (format!("{a}{op}{b}"), fa || fb)),
            inner
                .clone()
                .prop_map(|(q, f)| (format!("{q} or vector(0)"), f)),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the query, a confined one parses, reads only the namespace
    /// (each selector has exactly one namespace matcher, the equality), means
    /// otherwise what it meant (the same expression once namespace matchers
    /// are taken out, the same value type), and confining it again changes
    /// nothing; a query with a matcher that may read another namespace is refused.
    #[test]
    fn confined_queries_read_only_their_namespace((q, foreign) in query()) {
        prop_assume!(parser::parse(&q).is_ok());
        match confine(&q, "shop") {
            Ok(confined) => {
                prop_assert!(!foreign, "{q} was let through as {confined}");
                assert_confined(&q, &confined, "shop");
                prop_assert_eq!(confine(&confined, "shop"), Ok(confined.clone()));
                let vt = parser::parse(&confined).unwrap().value_type();
                prop_assert!(matches!(vt, ValueType::Vector | ValueType::Scalar));
            }
            Err(why) => prop_assert!(foreign, "{q} refused: {why}"),
        }
    }

    /// Whatever a user writes, confining answers; it never panics.
    #[test]
    fn confining_never_panics(q in ".{0,40}", ns in "[a-z0-9-]{1,12}") {
        if let Ok(confined) = confine(&q, &ns) {
            for g in namespace_matchers(&confined) {
                prop_assert_eq!(g, vec![("=".to_owned(), ns.clone())]);
            }
        }
    }

    #[test]
    fn a_listed_address_is_allowed_however_it_is_written(
        host in "[a-z][a-z0-9-]{0,10}(\\.[a-z]{1,5}){0,2}",
        port in prop::option::of(1u16..),
        path in prop::option::of("/[a-z]{1,6}"),
        slash in any::<bool>(),
        upper in any::<bool>(),
    ) {
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let path = path.unwrap_or_default();
        let listed = format!("http://{host}{port}{path}");
        let mut written = format!("http://{}{port}{path}", if upper { host.to_uppercase() } else { host.clone() });
        if slash {
            written.push('/');
        }
        prop_assert!(address_allowed(&written, std::slice::from_ref(&listed)));
        let elsewhere = format!("http://{host}x{port}{path}");
        prop_assert!(!address_allowed(&elsewhere, &[listed]));
    }
}

#[test]
fn matchers_keep_their_meaning_when_printed() {
    // A regex with escapes and quotes survives printing and parsing again.
    let q = r#"x{path=~"/a\\.b\"c", namespace=~"shop"}"#;
    let confined = confine(q, "shop").unwrap();
    let mut expr = parser::parse(&confined).unwrap();
    let mut seen = Vec::new();
    selectors(&mut expr, &mut |vs| {
        for m in &vs.matchers.matchers {
            seen.push((
                m.name.clone(),
                matches!(m.op, MatchOp::Re(_)),
                m.value.clone(),
            ));
        }
    });
    assert_eq!(
        seen,
        [
            ("namespace".to_owned(), false, "shop".to_owned()),
            ("path".to_owned(), true, r#"/a\.b"c"#.to_owned()),
        ]
    );
}

//! What a Release's queries may reach: which Prometheus (the operator's
//! allow-list of addresses) and whose series (with `--enforce-namespace`,
//! only its own namespace's). Both are the operator's rules, not the
//! Release's: a Release author cannot widen them.
//!
//! [`confine`] rewrites a query so that every selector in it reads only one
//! namespace; [`address_allowed`] says whether `spec.prometheus.address` is
//! one the platform team allowed; [`problems`] runs both over every query
//! field of a spec before anything moves.

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{self, Expr, VectorSelector};

use super::{QueryVars, render_query, sample_vars};
use crate::api::{Analysis, Gate, Problem, ReleaseSpec};

/// The label that says whose a series is. Prometheus' Kubernetes service
/// discovery and kube-state-metrics both put the object's namespace there.
pub const NAMESPACE_LABEL: &str = "namespace";

/// The operator's rules on what a Release's queries may reach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reach {
    /// `--enforce-namespace`: every query is [`confine`]d to the Release's namespace.
    pub enforce_namespace: bool,
    /// The addresses `spec.prometheus.address` may name (`--prometheus-url`
    /// and `--prometheus-allowed-address`). `None`: no list, any address goes
    /// (what the core's own tests and an offline `plan` without the flags see).
    pub allowed_addresses: Option<Vec<String>>,
}

impl Reach {
    /// Whether a Release may send its queries to `address`.
    pub fn allows(&self, address: &str) -> bool {
        self.allowed_addresses
            .as_ref()
            .is_none_or(|list| address_allowed(address, list))
    }
}

/// `query` with `namespace="<namespace>"` as the one namespace matcher of
/// every vector and matrix selector (each alternative of a selector with
/// `or`), everything else (functions, subqueries, binary operators,
/// aggregations, `@` and `offset`) as it was. A selector that already says
/// `namespace="<namespace>"` or `namespace=~"<namespace>"` (a PromQL regex is
/// anchored, so that one matches only the namespace itself) keeps meaning
/// what it meant; any other namespace matcher (another namespace, a regex
/// that could match another, a negative matcher) is refused with a sentence
/// saying which matcher and why: silently narrowing it would turn a query
/// about another team's service into one that measures nothing and passes
/// by the `noData` policy.
///
/// The answer is printed from the parsed query (a selector's matchers in
/// sorted order), so it is the query that runs.
pub fn confine(query: &str, namespace: &str) -> Result<String, String> {
    let mut expr = parser::parse(query).map_err(|e| format!("does not parse as PromQL: {e}"))?;
    confine_expr(&mut expr, namespace)?;
    Ok(expr.to_string())
}

fn confine_expr(expr: &mut Expr, namespace: &str) -> Result<(), String> {
    match expr {
        Expr::Aggregate(a) => {
            confine_expr(&mut a.expr, namespace)?;
            if let Some(p) = a.param.as_mut() {
                confine_expr(p, namespace)?;
            }
        }
        Expr::Unary(u) => confine_expr(&mut u.expr, namespace)?,
        Expr::Binary(b) => {
            confine_expr(&mut b.lhs, namespace)?;
            confine_expr(&mut b.rhs, namespace)?;
        }
        Expr::Paren(p) => confine_expr(&mut p.expr, namespace)?,
        Expr::Subquery(s) => confine_expr(&mut s.expr, namespace)?,
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
        Expr::VectorSelector(vs) => confine_selector(vs, namespace)?,
        Expr::MatrixSelector(ms) => confine_selector(&mut ms.vs, namespace)?,
        Expr::Call(c) => {
            for arg in c.args.args.iter_mut() {
                confine_expr(arg, namespace)?;
            }
        }
        // The parser never makes one; an expression it cannot see into is
        // refused rather than passed unconfined.
        Expr::Extension(_) => return Err("holds an expression that cannot be confined".into()),
    }
    Ok(())
}

fn confine_selector(vs: &mut VectorSelector, namespace: &str) -> Result<(), String> {
    let m = &mut vs.matchers;
    // `a="1" or b="2"`: the parser moves every matcher into the alternatives,
    // which are all that is printed; each alternative gets the namespace.
    if !m.or_matchers.is_empty() && !m.matchers.is_empty() {
        let shared = std::mem::take(&mut m.matchers);
        for group in m.or_matchers.iter_mut() {
            group.extend(shared.iter().cloned());
        }
    }
    let groups: Vec<&mut Vec<Matcher>> = if m.or_matchers.is_empty() {
        vec![&mut m.matchers]
    } else {
        m.or_matchers.iter_mut().collect()
    };
    for group in groups {
        for matcher in group.iter().filter(|m| m.name == NAMESPACE_LABEL) {
            if let Some(why) = foreign(matcher, namespace) {
                return Err(why);
            }
        }
        group.retain(|m| m.name != NAMESPACE_LABEL);
        group.insert(0, Matcher::new(MatchOp::Equal, NAMESPACE_LABEL, namespace));
    }
    Ok(())
}

/// Why `matcher` (on the namespace label) may select another namespace's
/// series; `None` when it selects `namespace` alone.
fn foreign(matcher: &Matcher, namespace: &str) -> Option<String> {
    let own = matches!(matcher.op, MatchOp::Equal | MatchOp::Re(_)) && matcher.value == namespace;
    if own {
        return None;
    }
    Some(match matcher.op {
        MatchOp::Equal => format!(
            "reads namespace {:?} ({matcher}), but a Release in namespace {namespace:?} may read only \
             its own namespace's series",
            matcher.value
        ),
        _ => format!(
            "may read namespaces other than {namespace:?} ({matcher}), but a Release in namespace \
             {namespace:?} may read only its own namespace's series"
        ),
    })
}

/// The fix every refusal of [`confine`] ends with.
fn namespace_fix(namespace: &str) -> String {
    format!(
        "the operator runs with --enforce-namespace, which adds namespace=\"{namespace}\" to every \
         selector; remove the namespace matcher or write namespace=\"{namespace}\" (or \
         {{{{namespace}}}})"
    )
}

/// `address` is one of `allowed`: the same URL once both are written the
/// same way (scheme and host in lower case, the scheme's default port left
/// out, no trailing `/`). Exact, not an origin or a prefix: the path is part
/// of where the queries go (a proxy may serve each tenant under its own
/// path), and so is the user in `user@host`.
pub fn address_allowed(address: &str, allowed: &[String]) -> bool {
    let address = normalize_address(address);
    allowed.iter().any(|a| normalize_address(a) == address)
}

/// One spelling of a Prometheus base URL, for comparing them.
pub fn normalize_address(address: &str) -> String {
    let address = address.trim().trim_end_matches('/');
    let Some((scheme, rest)) = address.split_once("://") else {
        return address.to_owned();
    };
    let scheme = scheme.to_ascii_lowercase();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (format!("{user}@"), host),
        None => (String::new(), authority),
    };
    let mut host = host.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => "",
    };
    if !default_port.is_empty() && host.ends_with(default_port) {
        host.truncate(host.len() - default_port.len());
    }
    format!("{scheme}://{user}{host}{path}")
}

/// The sentence a refused `spec.prometheus.address` gets: where the list lives and how to use the default.
pub fn address_refusal(address: &str) -> String {
    format!(
        "{address:?} is not a Prometheus address this operator may query; the allowed addresses are \
         the operator's --prometheus-url and --prometheus-allowed-address (chart values prometheusUrl \
         and prometheusAllowedAddresses); remove spec.prometheus to use the operator's Prometheus, or \
         ask the platform team to allow this address"
    )
}

/// Everything in `spec` that reaches further than `reach` lets a Release in
/// `namespace` reach, each naming the field, before anything moves: an
/// address not on the operator's list, and (with `--enforce-namespace`) a
/// query that reads another namespace. The same rules hold again when a query
/// runs, in the shell; this is what refuses the Release before it starts.
pub fn problems(spec: &ReleaseSpec, namespace: &str, reach: &Reach) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Some(p) = &spec.prometheus
        && !reach.allows(&p.address)
    {
        out.push(Problem {
            field: "spec.prometheus.address".into(),
            message: address_refusal(&p.address),
        });
    }
    if !reach.enforce_namespace {
        return out;
    }
    let vars = QueryVars {
        namespace: namespace.to_owned(),
        ..sample_vars()
    };
    for (field, query) in queries(spec) {
        // A query that does not parse is `validate`'s to refuse, in its words.
        let rendered = render_query(query, &vars);
        if parser::parse(&rendered).is_err() {
            continue;
        }
        if let Err(why) = confine(&rendered, namespace) {
            out.push(Problem {
                field,
                message: format!("{why}; {}", namespace_fix(namespace)),
            });
        }
    }
    out
}

/// Every query of `spec` that can reach Prometheus, with its field.
pub fn queries(spec: &ReleaseSpec) -> Vec<(String, &str)> {
    fn analysis<'a>(at: &str, a: &'a Analysis, out: &mut Vec<(String, &'a str)>) {
        for (i, m) in a.metrics.iter().enumerate() {
            out.push((format!("{at}.metrics[{i}].query"), m.query.as_str()));
        }
    }
    fn gates<'a>(at: &str, gates: &'a [Gate], out: &mut Vec<(String, &'a str)>) {
        for (i, g) in gates.iter().enumerate() {
            if let Some(q) = &g.query {
                out.push((format!("{at}[{i}].query"), q.as_str()));
            }
        }
    }
    let mut out = Vec::new();
    if let Some(a) = spec.defaults.as_ref().and_then(|d| d.analysis.as_ref()) {
        analysis("spec.defaults.analysis", a, &mut out);
    }
    for (s, svc) in spec.services.iter().enumerate() {
        if let Some(a) = &svc.analysis {
            analysis(&format!("spec.services[{s}].analysis"), a, &mut out);
        }
        gates(&format!("spec.services[{s}].gates"), &svc.gates, &mut out);
    }
    gates("spec.gates", &spec.gates, &mut out);
    if let Some(v) = &spec.verify {
        analysis("spec.verify.analysis", &v.analysis, &mut out);
    }
    out
}

#[cfg(test)]
mod tests;

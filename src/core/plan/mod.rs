//! Pure planning: waves from `dependsOn`, cycles, rollback order.
//!
//! Waves are the topological levels of the dependency graph: a service sits one
//! wave after the latest of its dependencies, so every service of a wave can
//! move in parallel. The rollback order walks the waves backwards, so a service
//! is restored only after everything that depends on it.

pub mod teams;

use std::collections::HashMap;
use std::fmt;

use crate::api::{Plan, Problem, ReleaseSpec, Wave};

/// The services that depend on `name`, directly or through others, in spec order.
// The engine defers as it goes (a hold may be set mid-train); this says up
// front whom a hold takes along, for `plan`.
pub fn dependents(spec: &ReleaseSpec, name: &str) -> Vec<String> {
    let mut reached: Vec<&str> = vec![name];
    loop {
        let before = reached.len();
        for s in &spec.services {
            if !reached.contains(&s.name.as_str())
                && s.depends_on.iter().any(|d| reached.contains(&d.as_str()))
            {
                reached.push(&s.name);
            }
        }
        if reached.len() == before {
            break;
        }
    }
    spec.services
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| *n != name && reached.contains(n))
        .map(str::to_owned)
        .collect()
}

/// The held services and every service that depends on them: what the
/// controller defers as soon as the train starts.
pub fn deferred_at_start(spec: &ReleaseSpec) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for svc in spec.services.iter().filter(|s| s.hold.is_some()) {
        for n in std::iter::once(svc.name.clone()).chain(dependents(spec, &svc.name)) {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// Services judged on bake time alone where the traffic is all theirs: every
/// metric they have compares the canary with the stable pods, and at a step of
/// weight 100 (a flag's whole bake) the stable pods take no traffic, so nothing
/// is measured there (see [`crate::analysis::measured_at`]). As (field, what
/// and the fix), for `plan`'s warnings; the release still runs.
pub fn compare_only_warnings(spec: &ReleaseSpec) -> Vec<(String, String)> {
    spec.services
        .iter()
        .enumerate()
        .filter(|(_, svc)| svc.job.is_none())
        .filter_map(|(i, svc)| {
            let analysis = spec.analysis_of(svc);
            let only_compare = !analysis.metrics.is_empty()
                && analysis.metrics.iter().all(|m| m.compare.is_some());
            if !only_compare {
                return None;
            }
            let when = if svc.flag.is_some() {
                "a flag has no stable pods beside it, so its bake"
            } else {
                "at its 100% step the stable pods take no traffic, so that step"
            };
            Some((
                format!("spec.services[{i}]"),
                format!(
                    "every metric of {} compares the canary with the stable pods, and {when} is judged \
                     on bake time alone; add a metric with min or max (e.g. the error rate at most \
                     0.01) to measure it there",
                    svc.name
                ),
            ))
        })
        .collect()
}

/// Why a set of services cannot be ordered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// `spec.services[index].dependsOn` names a service that is not in the release.
    UnknownDependency {
        service: String,
        index: usize,
        dependency: String,
    },
    /// Services that depend on each other in a loop, each on the next; the first
    /// is repeated at the end (`a -> b -> a`).
    Cycle(Vec<String>),
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::UnknownDependency {
                service,
                index,
                dependency,
            } => write!(
                f,
                "spec.services[{index}].dependsOn: service {service:?} depends on {dependency:?}, \
                 which is not in spec.services; add it to the release or remove it from dependsOn"
            ),
            PlanError::Cycle(cycle) => write!(
                f,
                "spec.services[].dependsOn: dependency cycle: {}; remove one of these dependencies",
                cycle.join(" -> ")
            ),
        }
    }
}

impl PlanError {
    /// The error as a [`Problem`] naming the exact field: for a cycle, the
    /// `dependsOn` of its first service.
    pub fn problem(&self, spec: &ReleaseSpec) -> Problem {
        match self {
            PlanError::UnknownDependency { index, .. } => {
                let text = self.to_string();
                let prefix = format!("spec.services[{index}].dependsOn: ");
                Problem {
                    field: format!("spec.services[{index}].dependsOn"),
                    message: text.strip_prefix(&prefix).unwrap_or(&text).to_owned(),
                }
            }
            PlanError::Cycle(cycle) => {
                let index = cycle
                    .first()
                    .and_then(|first| spec.services.iter().position(|s| &s.name == first))
                    .unwrap_or_default();
                Problem {
                    field: format!("spec.services[{index}].dependsOn"),
                    message: format!(
                        "dependency cycle: {}; remove one of these dependencies",
                        cycle.join(" -> ")
                    ),
                }
            }
        }
    }
}

/// Order the services of `spec` into waves and a rollback order.
///
/// Fails with the first problem [`problems`] finds.
pub fn plan(spec: &ReleaseSpec) -> Result<Plan, PlanError> {
    let graph = Graph::new(spec);
    if let Some(e) = graph.unknown().into_iter().next() {
        return Err(e);
    }
    graph.order()
}

/// Every unknown dependency in `spec`, or else the cycle, if any; empty when
/// [`plan`] succeeds. Lets a user see all broken references at once.
pub fn problems(spec: &ReleaseSpec) -> Vec<PlanError> {
    let graph = Graph::new(spec);
    let unknown = graph.unknown();
    if !unknown.is_empty() {
        return unknown;
    }
    graph.order().err().into_iter().collect()
}

/// The services of `spec` indexed once, so planning a large release stays linear.
struct Graph<'a> {
    spec: &'a ReleaseSpec,
    /// Indexes of the services that are not a repeated name (validation reports repeats).
    nodes: Vec<usize>,
    index: HashMap<&'a str, usize>,
}

impl<'a> Graph<'a> {
    fn new(spec: &'a ReleaseSpec) -> Self {
        let mut index = HashMap::with_capacity(spec.services.len());
        let mut nodes = Vec::with_capacity(spec.services.len());
        for (i, s) in spec.services.iter().enumerate() {
            if !index.contains_key(s.name.as_str()) {
                index.insert(s.name.as_str(), i);
                nodes.push(i);
            }
        }
        Graph { spec, nodes, index }
    }

    fn unknown(&self) -> Vec<PlanError> {
        let mut out = Vec::new();
        for &i in &self.nodes {
            let svc = &self.spec.services[i];
            for d in &svc.depends_on {
                if !self.index.contains_key(d.as_str()) {
                    out.push(PlanError::UnknownDependency {
                        service: svc.name.clone(),
                        index: i,
                        dependency: d.clone(),
                    });
                }
            }
        }
        out
    }

    /// Dependencies of service `i` as service indexes, known names only, without repeats.
    fn deps(&self, i: usize) -> Vec<usize> {
        let mut out: Vec<usize> = self.spec.services[i]
            .depends_on
            .iter()
            .filter_map(|d| self.index.get(d.as_str()).copied())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    fn order(&self) -> Result<Plan, PlanError> {
        let n = self.spec.services.len();
        let deps: Vec<Vec<usize>> = (0..n).map(|i| self.deps(i)).collect();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut waiting = vec![0usize; n];
        for &i in &self.nodes {
            waiting[i] = deps[i].len();
            for &d in &deps[i] {
                dependents[d].push(i);
            }
        }
        // Kahn by levels: each round takes every service whose dependencies are all placed.
        let mut level: Vec<usize> = self
            .nodes
            .iter()
            .copied()
            .filter(|&i| waiting[i] == 0)
            .collect();
        let mut placed = 0;
        let mut waves = Vec::new();
        while !level.is_empty() {
            level.sort_unstable();
            placed += level.len();
            let mut next = Vec::new();
            for &i in &level {
                for &u in &dependents[i] {
                    waiting[u] -= 1;
                    if waiting[u] == 0 {
                        next.push(u);
                    }
                }
            }
            waves.push(level);
            level = next;
        }
        if placed < self.nodes.len() {
            return Err(PlanError::Cycle(self.cycle(&deps, &waiting)));
        }
        let name = |i: usize| self.spec.services[i].name.clone();
        let rollback_order = waves.iter().rev().flatten().map(|&i| name(i)).collect();
        let waves = waves
            .into_iter()
            .map(|w| Wave {
                services: w.into_iter().map(name).collect(),
            })
            .collect();
        let (risk, reason) = crate::policy::risk(self.spec);
        Ok(Plan {
            waves,
            rollback_order,
            risk: Some(risk),
            risk_reason: Some(reason),
        })
    }

    /// One loop among the services Kahn could not place. Every such service has an
    /// unplaced dependency, so following them must come back to a service already seen.
    fn cycle(&self, deps: &[Vec<usize>], waiting: &[usize]) -> Vec<String> {
        let unplaced = |i: usize| waiting[i] > 0;
        let start = self
            .nodes
            .iter()
            .copied()
            .find(|&i| unplaced(i))
            .unwrap_or_default();
        let mut seen_at: HashMap<usize, usize> = HashMap::new();
        let mut path = Vec::new();
        let mut at = start;
        while !seen_at.contains_key(&at) {
            seen_at.insert(at, path.len());
            path.push(at);
            at = match deps[at].iter().copied().find(|&d| unplaced(d)) {
                Some(d) => d,
                None => break,
            };
        }
        let mut cycle: Vec<usize> = path[seen_at.get(&at).copied().unwrap_or_default()..].to_vec();
        // Start at the service listed first in the spec, so the message is stable.
        if let Some(min_pos) = (0..cycle.len()).min_by_key(|&p| cycle[p]) {
            cycle.rotate_left(min_pos);
        }
        let mut names: Vec<String> = cycle
            .iter()
            .map(|&i| self.spec.services[i].name.clone())
            .collect();
        if let Some(first) = names.first().cloned() {
            names.push(first);
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_warns_when_a_full_weight_step_would_be_judged_on_bake_time_alone() {
        use crate::api::{Analysis, Compare, Metric};
        let compared = Metric {
            name: "error-rate-vs-stable".into(),
            query: "sum(up{ {{track}} })".into(),
            min: None,
            max: None,
            compare: Some(Compare {
                max_increase: Some(0.005),
                ..Default::default()
            }),
        };
        let mut s = crate::testing::spec()
            .services(&[("api", &[]), ("web", &["api"])])
            .job("db", [] as [&str; 0])
            .flag("on", ["web"], "flags", &[("checkout-v2", "on")])
            .build();
        s.services[1].depends_on.push("db".into());
        s.defaults.get_or_insert_with(Default::default).analysis = Some(Analysis {
            metrics: vec![compared.clone()],
            ..Default::default()
        });
        // api has a fixed bound beside its comparison: measured at 100 % too.
        s.services[0].analysis = Some(Analysis {
            metrics: vec![
                compared,
                Metric {
                    name: "error-rate".into(),
                    query: "up".into(),
                    min: None,
                    max: Some(0.01),
                    compare: None,
                },
            ],
            ..Default::default()
        });
        assert_eq!(crate::api::validate(&s), vec![]);
        let warned = compare_only_warnings(&s);
        assert_eq!(
            warned,
            [
                (
                    "spec.services[1]".to_owned(),
                    "every metric of web compares the canary with the stable pods, and at its 100% step \
                     the stable pods take no traffic, so that step is judged on bake time alone; add a \
                     metric with min or max (e.g. the error rate at most 0.01) to measure it there"
                        .to_owned()
                ),
                (
                    "spec.services[3]".to_owned(),
                    "every metric of on compares the canary with the stable pods, and a flag has no stable \
                     pods beside it, so its bake is judged on bake time alone; add a metric with min or \
                     max (e.g. the error rate at most 0.01) to measure it there"
                        .to_owned()
                ),
            ]
        );
        s.services[0].analysis = None;
        assert_eq!(compare_only_warnings(&s).len(), 3);
    }

    fn spec(edges: &[(&str, &[&str])]) -> ReleaseSpec {
        crate::testing::spec().services(edges).build()
    }

    fn waves(p: &Plan) -> Vec<Vec<&str>> {
        p.waves
            .iter()
            .map(|w| w.services.iter().map(String::as_str).collect())
            .collect()
    }

    #[test]
    fn chain_is_one_service_per_wave_and_rolls_back_in_reverse() {
        let p = plan(&spec(&[("c", &["b"]), ("b", &["a"]), ("a", &[])])).unwrap();
        assert_eq!(waves(&p), vec![vec!["a"], vec!["b"], vec!["c"]]);
        assert_eq!(p.rollback_order, vec!["c", "b", "a"]);
    }

    #[test]
    fn diamond_moves_the_middle_in_parallel_in_spec_order() {
        let p = plan(&spec(&[
            ("a", &[]),
            ("c", &["a"]),
            ("b", &["a"]),
            ("d", &["b", "c"]),
        ]))
        .unwrap();
        assert_eq!(waves(&p), vec![vec!["a"], vec!["c", "b"], vec!["d"]]);
        assert_eq!(p.rollback_order, vec!["d", "c", "b", "a"]);
    }

    #[test]
    fn a_service_waits_for_its_deepest_dependency() {
        let p = plan(&spec(&[
            ("a", &[]),
            ("b", &["a"]),
            ("c", &["a", "b"]),
            ("x", &[]),
        ]))
        .unwrap();
        assert_eq!(waves(&p), vec![vec!["a", "x"], vec!["b"], vec!["c"]]);
    }

    #[test]
    fn unknown_dependencies_are_all_reported_with_their_field() {
        let s = spec(&[("a", &["nope"]), ("b", &["a", "gone"])]);
        let all = problems(&s);
        assert_eq!(all.len(), 2);
        assert_eq!(
            all[1],
            PlanError::UnknownDependency {
                service: "b".into(),
                index: 1,
                dependency: "gone".into()
            }
        );
        assert_eq!(plan(&s).unwrap_err(), all[0]);
        let text = all[1].to_string();
        assert!(text.starts_with("spec.services[1].dependsOn: "), "{text}");
        assert!(text.contains("\"gone\""), "{text}");
        assert_eq!(all[1].problem(&s).field, "spec.services[1].dependsOn");
    }

    #[test]
    fn cycle_is_printed_from_its_first_service() {
        let s = spec(&[("x", &[]), ("b", &["c"]), ("a", &["b"]), ("c", &["a", "x"])]);
        let err = plan(&s).unwrap_err();
        assert_eq!(
            err,
            PlanError::Cycle(vec!["b".into(), "c".into(), "a".into(), "b".into()])
        );
        assert!(
            err.to_string()
                .contains("dependency cycle: b -> c -> a -> b"),
            "{err}"
        );
        let p = err.problem(&s);
        assert_eq!(p.field, "spec.services[1].dependsOn");
        assert!(p.message.starts_with("dependency cycle: b -> c -> a -> b"));
    }

    #[test]
    fn service_behind_a_cycle_is_not_reported_as_part_of_it() {
        let s = spec(&[("tail", &["a"]), ("a", &["b"]), ("b", &["a"])]);
        assert_eq!(
            plan(&s).unwrap_err(),
            PlanError::Cycle(vec!["a".into(), "b".into(), "a".into()])
        );
    }

    #[test]
    fn self_dependency_is_a_cycle() {
        let s = spec(&[("a", &["a"])]);
        assert_eq!(
            plan(&s).unwrap_err(),
            PlanError::Cycle(vec!["a".into(), "a".into()])
        );
    }

    #[test]
    fn repeated_dependency_counts_once() {
        let p = plan(&spec(&[("a", &[]), ("b", &["a", "a"])])).unwrap();
        assert_eq!(waves(&p), vec![vec!["a"], vec!["b"]]);
    }
}

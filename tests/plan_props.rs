//! Property tests of the planner over random dependency graphs.

use std::collections::HashMap;

use proptest::prelude::*;
use signalman::api::ReleaseSpec;
use signalman::plan::{PlanError, plan};
use signalman_core::testing;

/// A spec whose service `i` is named `s{i}` and depends on `deps[i]`, listed in `order`.
fn spec(deps: &[Vec<usize>], order: &[usize]) -> ReleaseSpec {
    order
        .iter()
        .fold(testing::spec(), |b, &i| {
            b.service(format!("s{i}"), deps[i].iter().map(|d| format!("s{d}")))
        })
        .build()
}

/// `n` services, each depending on some of the ones before it (so acyclic), in a shuffled spec order.
fn dag() -> impl Strategy<Value = (Vec<Vec<usize>>, Vec<usize>)> {
    (1usize..60).prop_flat_map(|n| {
        let deps = proptest::collection::vec(proptest::collection::vec(0u8..100, n), n).prop_map(
            move |m| {
                (0..n)
                    .map(|i| (0..i).filter(|&j| m[i][j] < 12).collect::<Vec<usize>>())
                    .collect::<Vec<_>>()
            },
        );
        let order = Just((0..n).collect::<Vec<usize>>()).prop_shuffle();
        (deps, order)
    })
}

/// `n` services with random edges in both directions: usually cyclic.
fn any_graph() -> impl Strategy<Value = (Vec<Vec<usize>>, Vec<usize>)> {
    (1usize..25).prop_flat_map(|n| {
        let deps = proptest::collection::vec(proptest::collection::vec(0u8..100, n), n).prop_map(
            move |m| {
                (0..n)
                    .map(|i| {
                        (0..n)
                            .filter(|&j| j != i && m[i][j] < 8)
                            .collect::<Vec<usize>>()
                    })
                    .collect::<Vec<_>>()
            },
        );
        (deps, Just((0..n).collect::<Vec<usize>>()).prop_shuffle())
    })
}

fn edges(spec: &ReleaseSpec) -> Vec<(&str, &str)> {
    spec.services
        .iter()
        .flat_map(|s| {
            s.depends_on
                .iter()
                .map(move |d| (s.name.as_str(), d.as_str()))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn waves_respect_every_edge_and_are_as_early_as_possible((deps, order) in dag()) {
        let s = spec(&deps, &order);
        let p = plan(&s).unwrap();
        let wave: HashMap<&str, usize> = p
            .waves
            .iter()
            .enumerate()
            .flat_map(|(w, wave)| wave.services.iter().map(move |n| (n.as_str(), w)))
            .collect();
        prop_assert_eq!(wave.len(), s.services.len());
        prop_assert_eq!(p.waves.iter().map(|w| w.services.len()).sum::<usize>(), s.services.len());
        for (svc, dep) in edges(&s) {
            prop_assert!(wave[dep] < wave[svc], "{} (wave {}) depends on {} (wave {})", svc, wave[svc], dep, wave[dep]);
        }
        for svc in &s.services {
            let level = svc.depends_on.iter().map(|d| wave[d.as_str()] + 1).max().unwrap_or(0);
            prop_assert_eq!(wave[svc.name.as_str()], level, "{} could move earlier", svc.name);
        }
        let spec_pos: HashMap<&str, usize> =
            s.services.iter().enumerate().map(|(i, x)| (x.name.as_str(), i)).collect();
        for w in &p.waves {
            prop_assert!(w.services.windows(2).all(|p| spec_pos[p[0].as_str()] < spec_pos[p[1].as_str()]));
        }
    }

    #[test]
    fn rollback_order_respects_every_edge_in_reverse((deps, order) in dag()) {
        let s = spec(&deps, &order);
        let p = plan(&s).unwrap();
        let pos: HashMap<&str, usize> =
            p.rollback_order.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        prop_assert_eq!(pos.len(), s.services.len());
        prop_assert_eq!(p.rollback_order.len(), s.services.len());
        for (svc, dep) in edges(&s) {
            prop_assert!(pos[svc] < pos[dep], "{} must be restored before its dependency {}", svc, dep);
        }
    }

    #[test]
    fn a_reported_cycle_is_a_real_cycle_and_a_plan_has_none((deps, order) in any_graph()) {
        let s = spec(&deps, &order);
        let edge_set: std::collections::HashSet<(&str, &str)> = edges(&s).into_iter().collect();
        match plan(&s) {
            Ok(p) => {
                let wave: HashMap<&str, usize> = p
                    .waves
                    .iter()
                    .enumerate()
                    .flat_map(|(w, wave)| wave.services.iter().map(move |n| (n.as_str(), w)))
                    .collect();
                for (svc, dep) in &edge_set {
                    prop_assert!(wave[dep] < wave[svc]);
                }
            }
            Err(PlanError::Cycle(c)) => {
                prop_assert!(c.len() >= 3, "{:?}", c);
                prop_assert_eq!(c.first(), c.last());
                let inner = &c[..c.len() - 1];
                let distinct: std::collections::HashSet<&String> = inner.iter().collect();
                prop_assert_eq!(distinct.len(), inner.len());
                for pair in c.windows(2) {
                    prop_assert!(edge_set.contains(&(pair[0].as_str(), pair[1].as_str())), "{:?} is not an edge", pair);
                }
                let text = PlanError::Cycle(c.clone()).to_string();
                let expected = format!("dependency cycle: {}", c.join(" -> "));
                prop_assert!(text.contains(&expected), "{}", text);
            }
            Err(e) => prop_assert!(false, "unexpected {}", e),
        }
    }
}

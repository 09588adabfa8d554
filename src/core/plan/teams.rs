//! Who owns what in a train: the `dependsOn` edges that cross owners, the
//! unrelated changes combined in one release, and the split that avoids both.
//!
//! A train whose services belong to many teams needs every team ready at
//! once; past a handful of cross-team edges it should have been several
//! Releases. The split groups services joined by same-owner edges (each group
//! one team's Release), ordered so a group ships after the groups it depends on.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::{CrossTeam, ReleaseSpec, ServiceSpec, SplitGroup};

/// Cross-team edges allowed when no policy sets `limits.crossTeamEdges` and
/// the operator's `--cross-team-edges` is not given.
pub const DEFAULT_CROSS_TEAM_EDGES: i32 = 3;

/// A `dependsOn` edge whose two services have different owners.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrossEdge {
    /// The service that depends.
    pub from: String,
    /// The service it depends on.
    pub to: String,
    pub from_owner: String,
    pub to_owner: String,
}

impl std::fmt::Display for CrossEdge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} -> {} ({} -> {})",
            self.from, self.to, self.from_owner, self.to_owner
        )
    }
}

/// What the owners of a train say about how it should be cut.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Teams {
    /// Edges between services of different owners, in spec order.
    pub edges: Vec<CrossEdge>,
    /// The groups of services with no dependency path between them, when there
    /// are several and their owners differ (each group's services in spec order);
    /// empty otherwise.
    pub unrelated: Vec<Vec<String>>,
    /// The proposed split, in the order the groups can ship.
    pub split: Vec<SplitGroup>,
}

/// The owner of a service: its own `owner`, else the release's.
pub fn owner_of<'a>(spec: &'a ReleaseSpec, svc: &'a ServiceSpec) -> &'a str {
    svc.owner
        .as_deref()
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .unwrap_or(spec.owner.trim())
}

/// The owners' view of `spec`. Dependencies on services that are not in the
/// spec are ignored (the plan refuses them on its own).
pub fn teams(spec: &ReleaseSpec) -> Teams {
    let index: BTreeMap<&str, usize> = spec
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let owner = |i: usize| owner_of(spec, &spec.services[i]);
    let edges_ix: Vec<(usize, usize)> = spec
        .services
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            s.depends_on
                .iter()
                .filter_map(|d| index.get(d.as_str()).map(|&j| (i, j)))
                .collect::<Vec<_>>()
        })
        .collect();
    let edges = edges_ix
        .iter()
        .filter(|&&(i, j)| owner(i) != owner(j))
        .map(|&(i, j)| CrossEdge {
            from: spec.services[i].name.clone(),
            to: spec.services[j].name.clone(),
            from_owner: owner(i).to_owned(),
            to_owner: owner(j).to_owned(),
        })
        .collect();

    let n = spec.services.len();
    let names = |members: &[usize]| -> Vec<String> {
        members
            .iter()
            .map(|&i| spec.services[i].name.clone())
            .collect()
    };

    // Unrelated: the weakly connected components of the whole graph.
    let connected = components(n, edges_ix.iter().copied());
    let owners_of =
        |members: &[usize]| -> BTreeSet<&str> { members.iter().map(|&i| owner(i)).collect() };
    let unrelated = if connected.len() > 1
        && connected
            .iter()
            .map(|c| owners_of(c))
            .collect::<BTreeSet<_>>()
            .len()
            > 1
    {
        connected.iter().map(|c| names(c)).collect()
    } else {
        Vec::new()
    };

    // The split: components joined by same-owner edges, merged further
    // wherever the groups would depend on each other in a loop.
    let mut groups = components(
        n,
        edges_ix
            .iter()
            .copied()
            .filter(|&(i, j)| owner(i) == owner(j)),
    );
    loop {
        let group_of = group_index(n, &groups);
        let after = |g: usize| -> BTreeSet<usize> {
            edges_ix
                .iter()
                .filter(|&&(i, _)| group_of[i] == g)
                .map(|&(_, j)| group_of[j])
                .filter(|&h| h != g)
                .collect()
        };
        let deps: Vec<BTreeSet<usize>> = (0..groups.len()).map(after).collect();
        match order(&deps) {
            Ok(ordered) => {
                let position: BTreeMap<usize, i32> = ordered
                    .iter()
                    .enumerate()
                    .map(|(p, &g)| (g, p as i32))
                    .collect();
                let split = ordered
                    .iter()
                    .map(|&g| SplitGroup {
                        owner: owners_of(&groups[g])
                            .into_iter()
                            .collect::<Vec<_>>()
                            .join("+"),
                        services: names(&groups[g]),
                        after: deps[g]
                            .iter()
                            .map(|h| position[h])
                            .collect::<BTreeSet<_>>()
                            .into_iter()
                            .collect(),
                    })
                    .collect();
                return Teams {
                    edges,
                    unrelated,
                    split,
                };
            }
            Err(cycle) => {
                // Merge the groups on the loop into one and try again.
                let mut merged: Vec<usize> =
                    cycle.iter().flat_map(|&g| groups[g].clone()).collect();
                merged.sort_unstable();
                groups = groups
                    .into_iter()
                    .enumerate()
                    .filter(|(g, _)| !cycle.contains(g))
                    .map(|(_, members)| members)
                    .chain(std::iter::once(merged))
                    .collect();
                groups.sort_by_key(|members| members[0]);
            }
        }
    }
}

/// The status a release gets when its owners say it should be split: more
/// cross-team edges than `limit`, or unrelated changes of different owners.
pub fn cross_team(spec: &ReleaseSpec, limit: i32) -> Option<CrossTeam> {
    let teams = teams(spec);
    let over = teams.edges.len() > usize::try_from(limit).unwrap_or(0);
    if !over && teams.unrelated.is_empty() {
        return None;
    }
    let owner = |name: &str| {
        spec.service(name)
            .map(|s| owner_of(spec, s))
            .unwrap_or_default()
            .to_owned()
    };
    Some(CrossTeam {
        edges: teams.edges.iter().map(ToString::to_string).collect(),
        limit,
        unrelated: teams
            .unrelated
            .iter()
            .map(|group| {
                let owners: BTreeSet<String> = group.iter().map(|s| owner(s)).collect();
                format!(
                    "{} ({})",
                    group.join(", "),
                    owners.into_iter().collect::<Vec<_>>().join(", ")
                )
            })
            .collect(),
        split: teams.split,
    })
}

/// Connected components of `0..n` under `edges` (direction ignored), each in
/// ascending order, ordered by their first member.
fn components(n: usize, edges: impl Iterator<Item = (usize, usize)>) -> Vec<Vec<usize>> {
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for (a, b) in edges {
        let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
        if ra != rb {
            parent[ra.max(rb)] = ra.min(rb);
        }
    }
    let mut by_root: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        let r = root(&mut parent, i);
        by_root.entry(r).or_default().push(i);
    }
    let mut out: Vec<Vec<usize>> = by_root.into_values().collect();
    out.sort_by_key(|c| c[0]);
    out
}

fn group_index(n: usize, groups: &[Vec<usize>]) -> Vec<usize> {
    let mut of = vec![0; n];
    for (g, members) in groups.iter().enumerate() {
        for &i in members {
            of[i] = g;
        }
    }
    of
}

/// Groups in an order where each comes after those it depends on (lowest
/// index first among the ready ones), or the groups of one loop.
fn order(deps: &[BTreeSet<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    let mut done: Vec<usize> = Vec::new();
    let mut left: BTreeSet<usize> = (0..deps.len()).collect();
    while let Some(&next) = left
        .iter()
        .find(|&&g| deps[g].iter().all(|d| done.contains(d)))
    {
        left.remove(&next);
        done.push(next);
    }
    if left.is_empty() {
        return Ok(done);
    }
    // Every group left waits on another group left: walk until one repeats.
    let mut path = vec![*left.iter().next().expect("not empty")];
    loop {
        let last = *path.last().expect("not empty");
        let next = *deps[last]
            .iter()
            .find(|d| left.contains(d))
            .expect("a group left waits on another group left");
        if let Some(p) = path.iter().position(|&g| g == next) {
            return Err(path[p..].to_vec());
        }
        path.push(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(services: &[(&str, &str, &[&str])]) -> ReleaseSpec {
        let mut b = crate::testing::spec();
        for (name, _, deps) in services {
            b = b.service(*name, deps.iter().copied());
        }
        let mut spec = b.metric_at_most("error-rate", "up", 0.01).build();
        spec.owner = "release-team".into();
        for (svc, (_, owner, _)) in spec.services.iter_mut().zip(services) {
            svc.owner = Some((*owner).to_owned());
        }
        spec
    }

    #[test]
    fn edges_between_owners_are_counted_and_named() {
        let s = spec(&[
            ("db", "data", &[]),
            ("api", "shop", &["db"]),
            ("web", "shop", &["api"]),
            ("search", "find", &["api"]),
        ]);
        let t = teams(&s);
        let named: Vec<String> = t.edges.iter().map(ToString::to_string).collect();
        assert_eq!(
            named,
            ["api -> db (shop -> data)", "search -> api (find -> shop)"]
        );
        assert!(t.unrelated.is_empty(), "one connected train");
        let split: Vec<(&str, Vec<&str>, Vec<i32>)> = t
            .split
            .iter()
            .map(|g| {
                (
                    g.owner.as_str(),
                    g.services.iter().map(String::as_str).collect(),
                    g.after.clone(),
                )
            })
            .collect();
        assert_eq!(
            split,
            [
                ("data", vec!["db"], vec![]),
                ("shop", vec!["api", "web"], vec![0]),
                ("find", vec!["search"], vec![1]),
            ]
        );
        assert!(
            cross_team(&s, 2).is_none(),
            "two edges are within a limit of 2"
        );
        let over = cross_team(&s, 1).expect("two edges are over a limit of 1");
        assert_eq!(over.edges.len(), 2);
        assert_eq!(over.limit, 1);
        assert_eq!(over.split.len(), 3);
    }

    #[test]
    fn a_service_without_an_owner_belongs_to_the_release_owner() {
        let mut s = spec(&[("api", "shop", &[]), ("web", "shop", &["api"])]);
        s.services[1].owner = None;
        let t = teams(&s);
        assert_eq!(t.edges[0].to_string(), "web -> api (release-team -> shop)");
    }

    #[test]
    fn unrelated_changes_of_different_owners_are_told_apart() {
        let s = spec(&[
            ("api", "shop", &[]),
            ("web", "shop", &["api"]),
            ("search", "find", &[]),
        ]);
        let t = teams(&s);
        assert!(t.edges.is_empty());
        assert_eq!(t.unrelated, [vec!["api", "web"], vec!["search"]]);
        let warned = cross_team(&s, 3).expect("unrelated changes warn at any limit");
        assert_eq!(warned.unrelated, ["api, web (shop)", "search (find)"]);
        // One owner's unrelated changes are that owner's business.
        let same = spec(&[("api", "shop", &[]), ("web", "shop", &[])]);
        assert!(teams(&same).unrelated.is_empty());
        assert!(cross_team(&same, 0).is_none());
    }

    #[test]
    fn groups_that_would_wait_on_each_other_are_merged_into_one() {
        // a(t1) -> b(t2) -> c(t1), and a -> c: {a, c} and {b} depend on each other.
        let s = spec(&[
            ("c", "t1", &[]),
            ("b", "t2", &["c"]),
            ("a", "t1", &["b", "c"]),
        ]);
        let t = teams(&s);
        assert_eq!(t.split.len(), 1);
        assert_eq!(t.split[0].owner, "t1+t2");
        assert_eq!(t.split[0].services, ["c", "b", "a"]);
    }
}

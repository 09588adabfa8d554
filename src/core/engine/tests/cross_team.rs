//! The cross-team limit: a `Warning` condition and one Event before the
//! start, or with `refuse` a Stalled release with nothing changed.

use super::*;
use crate::api::{CrossTeamAction, Limits, ReleasePolicySpec};

/// Four edges between owners: web, mobile and admin (shop) on api (platform),
/// api on db (data).
fn entangled() -> ReleaseSpec {
    let mut s = spec(&[
        ("db", &[]),
        ("api", &["db"]),
        ("web", &["api"]),
        ("mobile", &["api"]),
        ("admin", &["api"]),
    ]);
    for (name, owner) in [
        ("db", "data"),
        ("api", "platform"),
        ("web", "shop"),
        ("mobile", "shop"),
        ("admin", "shop"),
    ] {
        s.services
            .iter_mut()
            .find(|x| x.name == name)
            .unwrap()
            .owner = Some(owner.into());
    }
    s
}

fn policy(edges: Option<i32>, action: Option<CrossTeamAction>) -> ReleasePolicySpec {
    ReleasePolicySpec {
        limits: Some(Limits {
            cross_team_edges: edges,
            cross_team: action,
        }),
        ..Default::default()
    }
}

const MESSAGE: &str = "4 dependencies between owners, more than the limit 3: api -> db (platform -> data), \
    web -> api (shop -> platform), mobile -> api (shop -> platform), admin -> api (shop -> platform); \
    split it into: 1. db (data) 2. api (platform) after 1 3. web (shop) after 2 4. mobile (shop) after 2 \
    5. admin (shop) after 2";

/// How it is proven, 7: over the limit, a Warning condition and one Event, told once.
#[test]
fn over_the_limit_the_release_warns_once_and_proposes_a_split() {
    let mut sim = Sim::new(entangled());
    let first = sim.pass().clone();
    let w = condition(&first.status, "Warning");
    assert_eq!(
        (w.status.as_str(), w.reason.as_str()),
        ("True", "CrossTeamEdges")
    );
    assert_eq!(w.message, MESSAGE);
    let warnings: Vec<_> = first
        .notices
        .iter()
        .filter(|n| n.kind == NoticeKind::Warning)
        .collect();
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].kind.reason(), "CrossTeamEdges");
    assert!(warnings[0].kind.warning());
    let ct = first.status.cross_team.clone().unwrap();
    assert_eq!((ct.edges.len(), ct.limit), (4, 3));
    // It warns; it moves on, and never tells again.
    assert_eq!(first.status.phase, Some(Phase::Progressing));
    assert_eq!(sim.run(1000), Phase::Succeeded);
    let told = sim
        .passes
        .iter()
        .flat_map(|p| &p.decision.notices)
        .filter(|n| n.kind == NoticeKind::Warning)
        .count();
    assert_eq!(told, 1);
    assert_eq!(condition(status(&sim), "Warning").status, "True");
    // Not a kstatus condition: Ready as ever.
    assert_eq!(condition(status(&sim), "Ready").status, "True");
}

/// How it is proven, 7 (refuse): Stalled before anything moves.
#[test]
fn with_refuse_a_release_over_the_limit_is_stalled_and_nothing_changes() {
    let mut sim =
        Sim::new(entangled()).with_policy("teams", policy(None, Some(CrossTeamAction::Refuse)));
    for _ in 0..3 {
        let d = sim.pass().clone();
        assert!(d.actions.is_empty());
        assert_eq!(d.status.phase, Some(Phase::Pending));
        assert!(d.status.started_at.is_none());
    }
    let st = status(&sim);
    let c = condition(st, "Stalled");
    assert_eq!(c.reason, "CrossTeamLimit");
    assert_eq!(
        c.message,
        format!("{MESSAGE}; or raise limits.crossTeamEdges of ReleasePolicy teams")
    );
}

#[test]
fn the_limit_is_the_policy_s_else_the_operator_s_else_three() {
    let limit = |sim: &mut Sim| sim.pass().status.cross_team.as_ref().map(|c| c.limit);
    assert_eq!(limit(&mut Sim::new(entangled())), Some(3));
    // The operator's --cross-team-edges when the policy sets none.
    let sim = Sim::new(entangled());
    let mut obs = sim.observe(Vec::new());
    obs.cross_team_limit = Some(4);
    assert_eq!(decide(&sim.release, &obs, sim.now).status.cross_team, None);
    obs.cross_team_limit = Some(2);
    let d = decide(&sim.release, &obs, sim.now);
    assert_eq!(d.status.cross_team.map(|c| c.limit), Some(2));
    // The policy's limit wins over the operator's.
    let mut roomy = Sim::new(entangled()).with_policy("teams", policy(Some(10), None));
    assert_eq!(limit(&mut roomy), None);
    let mut tight = Sim::new(entangled()).with_policy("teams", policy(Some(1), None));
    assert_eq!(limit(&mut tight), Some(1));
}

#[test]
fn a_warning_that_no_longer_applies_before_the_start_is_taken_away() {
    let mut spec = entangled();
    spec.paused = Some(true);
    let mut sim = Sim::new(spec);
    assert_eq!(
        condition(&sim.pass().status.clone(), "Warning").status,
        "True"
    );
    sim.edit(|s| {
        for svc in &mut s.services {
            svc.owner = None;
        }
    });
    let d = sim.pass().clone();
    assert_eq!(d.status.phase, Some(Phase::Pending));
    assert!(d.status.conditions.iter().all(|c| c.type_ != "Warning"));
    assert_eq!(d.status.cross_team, None);
}

#[test]
fn unrelated_changes_only_ever_warn() {
    let mut s = spec(&[("web", &[]), ("db", &[])]);
    s.services[1].owner = Some("data".into());
    let mut sim = Sim::new(s).with_policy("teams", policy(None, Some(CrossTeamAction::Refuse)));
    let d = sim.pass().clone();
    assert_eq!(d.status.phase, Some(Phase::Progressing));
    let w = condition(&d.status, "Warning");
    assert_eq!(w.reason, "UnrelatedChanges");
    assert!(
        w.message.starts_with(
            "unrelated changes combined in one release: web (team-checkout); db (data)"
        ),
        "{}",
        w.message
    );
}

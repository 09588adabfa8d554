//! The cross-team limit: more `dependsOn` edges between owners than the
//! policy allows, or unrelated changes of different owners in one train, is
//! told once before the start (a `Warning` condition and an Event proposing a
//! split); with the policy's `limits.crossTeam: refuse` a train over the
//! limit does not start.

use super::context::Ctx;
use super::{NoticeKind, PolicyObservation};
use crate::api::{CrossTeam, CrossTeamAction};
use crate::plan::teams::{DEFAULT_CROSS_TEAM_EDGES, cross_team};

/// The `Warning` condition's reason and message for `ct`: `CrossTeamEdges`
/// when it is over its limit, else `UnrelatedChanges`. The plugin's `plan`
/// prints the same words.
pub fn warning(ct: &CrossTeam) -> (&'static str, String) {
    let over = ct.edges.len() > usize::try_from(ct.limit).unwrap_or(0);
    let mut parts = Vec::new();
    if over {
        let n = ct.edges.len();
        parts.push(format!(
            "{n} {} between owners, more than the limit {}: {}",
            if n == 1 { "dependency" } else { "dependencies" },
            ct.limit,
            ct.edges.join(", ")
        ));
    }
    if !ct.unrelated.is_empty() {
        parts.push(format!(
            "unrelated changes combined in one release: {}",
            ct.unrelated.join("; ")
        ));
    }
    let split: Vec<String> = ct
        .split
        .iter()
        .enumerate()
        .map(|(n, g)| {
            let after = if g.after.is_empty() {
                String::new()
            } else {
                let list: Vec<String> = g.after.iter().map(|a| (a + 1).to_string()).collect();
                format!(" after {}", list.join(", "))
            };
            format!("{}. {} ({}){after}", n + 1, g.services.join(", "), g.owner)
        })
        .collect();
    if !split.is_empty() {
        parts.push(format!("split it into: {}", split.join(" ")));
    }
    let reason = if over {
        "CrossTeamEdges"
    } else {
        "UnrelatedChanges"
    };
    (reason, parts.join("; "))
}

/// Before the start: set `status.crossTeam` and the `Warning` condition (told
/// once), or take them away. `Some(message)` when the policy refuses the train.
pub(super) fn check(cx: &mut Ctx) -> Option<String> {
    let policy = match &cx.obs.policy {
        PolicyObservation::Found { name, spec } => Some((name.clone(), spec.limits.clone())),
        _ => None,
    };
    let limits = policy
        .as_ref()
        .and_then(|(_, l)| l.clone())
        .unwrap_or_default();
    let limit = limits
        .cross_team_edges
        .or(cx.obs.cross_team_limit)
        .unwrap_or(DEFAULT_CROSS_TEAM_EDGES);
    // The `Warning` condition follows `status.crossTeam` (see `warning`).
    let Some(ct) = cross_team(cx.raw, limit) else {
        cx.st.cross_team = None;
        return None;
    };
    let (reason, message) = warning(&ct);
    let over = reason == "CrossTeamEdges";
    let refuse = over && limits.cross_team == Some(CrossTeamAction::Refuse);
    let told = cx.st.cross_team.as_ref() == Some(&ct);
    cx.st.cross_team = Some(ct);
    if refuse {
        let name = policy.map(|(n, _)| n).unwrap_or_default();
        return Some(format!(
            "{message}; or raise limits.crossTeamEdges of ReleasePolicy {name}"
        ));
    }
    if !told {
        cx.record("CrossTeamEdges", None, message.clone());
        cx.notice(NoticeKind::Warning, None, message);
    }
    None
}

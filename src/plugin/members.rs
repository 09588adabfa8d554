//! What the plugin says about the members of a train that are not plain
//! Deployments (migration Jobs, flags, dark changes) and about held services,
//! in the same words for `plan` and `get`.

use super::style::Style;
use super::untrusted::escape;
use crate::api::{FlagChange, MemberKind, MigrationJob, ServiceSpec, SplitGroup};
use crate::engine::JobKind;
use crate::text;

/// The name of a migration's Job, as the controller creates it.
use signalman_core::migration::job_name;

/// The kind of a service in a word or two, e.g. `migration job` or `flag`.
pub fn kind_word(svc: &ServiceSpec) -> &'static str {
    match svc.kind() {
        MemberKind::Deployment { .. } => "deployment",
        MemberKind::Job(j) if j.irreversible.is_some() => "migration job, irreversible",
        MemberKind::Job(_) => "migration job",
        MemberKind::Flag(_) => "flag",
    }
}

/// `checkout-v2=on, beta=off` (keys in order).
pub fn flag_keys(flag: &FlagChange) -> String {
    flag.keys
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a migration does forward and on a rollback, for `plan`.
pub fn job_lines(release: &str, svc: &ServiceSpec, job: &MigrationJob) -> Vec<String> {
    let mut out = vec![format!(
        "runs once: Job {} (timeout {}); the services that depend on it wait for it to complete",
        job_name(release, &svc.name, JobKind::Forward),
        text::duration(job.timeout())
    )];
    match &job.irreversible {
        Some(i) => out.push(format!(
            "irreversible ({}): no rollback Job; on a rollback it stays applied",
            i.justification
        )),
        None => out.push(format!(
            "on a rollback: Job {} runs once everything that depends on it is restored; if it fails the release ends Failed",
            job_name(release, &svc.name, JobKind::Rollback)
        )),
    }
    out
}

/// The proposed split, one numbered line per Release-to-be: `2. api, web (shop)   after 1`.
/// Names and owners come from the Release, so they are shown escaped.
pub fn split_lines(split: &[SplitGroup], style: Style) -> Vec<String> {
    split
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let after = if g.after.is_empty() {
                String::new()
            } else {
                let after: Vec<String> = g.after.iter().map(|a| (a + 1).to_string()).collect();
                style.dim(&format!("   after {}", after.join(", ")))
            };
            format!(
                "{}. {} ({}){after}",
                i + 1,
                escape(&g.services.join(", ")),
                escape(&g.owner)
            )
        })
        .collect()
}

/// `services`, given in the rollback order, as a rollback reverses them:
/// flags first and at once, then the rest in that order, each saying how it is
/// reversed (`web`, `db (rollback Job shop-db-rollback)`, `db (irreversible:
/// stays applied)`).
pub fn in_rollback_order<'a>(
    release: &str,
    services: impl Iterator<Item = &'a ServiceSpec> + Clone,
) -> Vec<String> {
    let flags = services
        .clone()
        .filter(|svc| matches!(svc.kind(), MemberKind::Flag(_)))
        .map(|svc| format!("{} (flag, first, at once)", svc.name));
    let rest = services.filter_map(|svc| {
        let n = &svc.name;
        match svc.kind() {
            MemberKind::Flag(_) => None,
            MemberKind::Deployment { .. } => Some(n.clone()),
            MemberKind::Job(j) if j.irreversible.is_some() => {
                Some(format!("{n} (irreversible: stays applied)"))
            }
            MemberKind::Job(_) => Some(format!(
                "{n} (rollback Job {})",
                job_name(release, n, JobKind::Rollback)
            )),
        }
    });
    flags.chain(rest).collect()
}

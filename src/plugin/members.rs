//! What the plugin says about the members of a train that are not plain
//! Deployments (migration Jobs, flags, dark changes) and about held services,
//! in the same words for `plan` and `get`.

use crate::api::{FlagChange, MemberKind, MigrationJob, ReleaseSpec, ServiceSpec};
use crate::engine::JobKind;
use crate::text;

/// The name of a migration's Job, as the controller creates it.
// TODO(issue 13): switch to `signalman_core::migration::job_name` once the
// engine branch adds it; this stand-in follows the brief's rule (cut to 52 and
// append the FNV-1a hash when longer than 63) so the output does not change.
pub fn job_name(release: &str, service: &str, job: JobKind) -> String {
    let which = match job {
        JobKind::Forward => "forward",
        JobKind::Rollback => "rollback",
    };
    let full = format!("{release}-{service}-{which}");
    if full.len() <= 63 {
        return full;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in full.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let hex = format!("{hash:016x}");
    format!("{}-{}", &full[..52], &hex[..10])
}

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

/// The services that depend on `name`, directly or through others, in spec order.
// The deferral itself is the engine's; this only says up front whom a hold takes along.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_job_name_is_cut_to_63_with_a_hash_of_the_full_name() {
        assert_eq!(
            job_name("checkout-v5", "db-migration", JobKind::Forward),
            "checkout-v5-db-migration-forward"
        );
        let long = "a".repeat(40);
        let one = job_name(&long, "schema-migration", JobKind::Rollback);
        let two = job_name(&long, "schema-migration", JobKind::Forward);
        assert_eq!(one.len(), 63);
        assert_eq!(two.len(), 63);
        assert_ne!(one, two, "the hash tells the two Jobs apart");
        assert!(one.starts_with(&format!("{long}-schema-mig")), "{one}");
    }
}

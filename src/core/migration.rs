//! What is pure about a migration's Jobs: their names. The engine records a
//! name in status before the Job exists; the shell creates the Job under that
//! name and the plugin shows it, so all three call [`job_name`].

use crate::engine::JobKind;

/// The longest Job name: its pods get the label `job-name` with it, and a
/// label value has at most 63 characters.
const MAX_JOB_NAME: usize = 63;
/// Where a name too long is cut before its hash is appended.
const CUT: usize = 52;

/// The Job of `service`'s migration in Release `release`:
/// `<release>-<service>-forward` or `<release>-<service>-rollback`. A name
/// longer than 63 characters is cut to 52 and gets `-` and the first 10 hex
/// digits of the FNV-1a hash of the full name, so two long names stay apart
/// and a person can still read whose Job it is.
pub fn job_name(release: &str, service: &str, job: JobKind) -> String {
    let full = format!("{release}-{service}-{}", job.word());
    if full.len() <= MAX_JOB_NAME {
        return full;
    }
    let h = crate::engine::fnv1a_64(full.as_bytes());
    // Names are DNS labels (ASCII), so cutting at a byte is cutting at a character.
    let cut: String = full.chars().take(CUT).collect();
    format!("{cut}-{}", &format!("{h:016x}")[..10])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_is_named_after_its_release_and_service() {
        assert_eq!(
            job_name("shop-v5", "db-migration", JobKind::Forward),
            "shop-v5-db-migration-forward"
        );
        assert_eq!(
            job_name("shop-v5", "db-migration", JobKind::Rollback),
            "shop-v5-db-migration-rollback"
        );
    }

    #[test]
    fn a_long_name_is_cut_with_a_hash_of_the_whole() {
        let release = "r".repeat(40);
        let a = job_name(&release, &"a".repeat(30), JobKind::Forward);
        let b = job_name(&release, &format!("{}b", "a".repeat(29)), JobKind::Forward);
        assert_eq!(a.len(), 63, "{a}");
        assert_eq!(b.len(), 63, "{b}");
        assert_ne!(a, b);
        assert!(a.starts_with(&release[..40]), "{a}");
        assert_eq!(&a[52..53], "-");
        assert!(a[53..].bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
        // Exactly 63 is not cut.
        let fits = job_name(&"r".repeat(46), "s", JobKind::Forward);
        assert_eq!(fits, format!("{}-s-forward", "r".repeat(46)));
        assert_eq!(fits.len(), 56);
        let edge = job_name(&"r".repeat(53), "s", JobKind::Forward);
        assert_eq!(edge.len(), 63);
        assert!(edge.ends_with("-s-forward"));
        // The forward and rollback Jobs of one long name differ too.
        assert_ne!(a, job_name(&release, &"a".repeat(30), JobKind::Rollback));
    }
}

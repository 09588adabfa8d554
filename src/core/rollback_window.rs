//! Whether a finished release can still be rolled back (`spec.rollback`):
//! one answer for the controller and `kubectl signalman rollback`.

use jiff::Timestamp;

use crate::api::{Phase, Release};

/// Why `spec.rollback: true` cannot be honoured from what the Release itself
/// says (its phase and its rollback window), in words that name the field and
/// the fix; `None` when it can. The controller also refuses when a Deployment
/// or flag changed since the release succeeded, which only the cluster shows.
pub fn refusal(release: &Release, now: Timestamp) -> Option<String> {
    let st = release.status.as_ref();
    let phase = st.and_then(|s| s.phase).unwrap_or_default();
    if phase != Phase::Succeeded {
        return Some(match phase {
            Phase::RolledBack => {
                "spec.rollback: the release is already RolledBack; nothing to reverse".to_owned()
            }
            Phase::Failed => {
                "spec.rollback: the release Failed; restore what its message names by hand"
                    .to_owned()
            }
            p if p.is_in_flight() => format!(
                "spec.rollback: only a Succeeded release can be rolled back, and this one is {p}; \
                 to stop it and reverse what it changed set spec.abort: true"
            ),
            p => format!(
                "spec.rollback: only a Succeeded release can be rolled back, and this one is {p}; \
                 remove spec.rollback to let it start"
            ),
        });
    }
    let window = st.and_then(|s| s.rollback_window.as_ref())?;
    if window.closed_at.is_some() || now >= window.until.0 {
        return Some(format!(
            "spec.rollback: the rollback window closed at {} and the baselines are gone; \
             release the previous versions as a new Release",
            window.until.0
        ));
    }
    None
}

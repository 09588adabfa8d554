//! Whether a finished release can still be rolled back (`spec.rollback`):
//! one answer for the controller and `kubectl signalman rollback`.

use std::time::Duration;

use jiff::Timestamp;

use crate::api::{Phase, Release, ReleaseStatus, after_default};

/// How long a release that succeeded can be rolled back: the policy's
/// `rollbackWindow` fixed in status when it started, else the default.
pub fn length(status: &ReleaseStatus) -> Duration {
    status
        .policy
        .as_ref()
        .and_then(|p| p.rollback_window)
        .map_or(after_default::ROLLBACK_WINDOW, Duration::from)
}

/// Until when a `Succeeded` release can be rolled back: `status.rollbackWindow.until`, or,
/// for a release that succeeded before the operator kept a window (it has none in status),
/// its `finishedAt` plus [`length`], the window it would have had. `None` when neither is
/// known.
pub fn until(status: &ReleaseStatus) -> Option<Timestamp> {
    if let Some(w) = &status.rollback_window {
        return Some(w.until.0);
    }
    let finished = status.finished_at.as_ref()?.0;
    Some(
        finished
            .checked_add(length(status))
            .unwrap_or(Timestamp::MAX),
    )
}

/// A `Succeeded` release still has something to decide: a rollback is asked
/// for, or its window (possibly one it never recorded) has not closed yet.
/// Every other finished release costs the controller nothing.
pub fn pending(release: &Release) -> bool {
    let Some(status) = release.status.as_ref() else {
        return false;
    };
    status.phase == Some(Phase::Succeeded)
        && (release.spec.rollback == Some(true)
            || status
                .rollback_window
                .as_ref()
                .is_none_or(|w| w.closed_at.is_none()))
}

/// Why `spec.rollback: true` cannot be honoured from what the Release itself
/// says (its phase and its rollback window), in words that name the field and
/// the fix; `None` when it can. The controller also refuses when a Deployment
/// or flag changed since the release succeeded, which only the cluster shows.
pub fn refusal(release: &Release, now: Timestamp) -> Option<String> {
    refusal_of(
        release.status.as_ref().unwrap_or(&ReleaseStatus::default()),
        now,
    )
}

/// [`refusal`] for a Release whose status is `st`.
pub fn refusal_of(st: &ReleaseStatus, now: Timestamp) -> Option<String> {
    let phase = st.phase.unwrap_or_default();
    if phase != Phase::Succeeded {
        return Some(match phase {
            Phase::RolledBack => {
                "spec.rollback: the release is already RolledBack; nothing to reverse".to_owned()
            }
            Phase::Failed => {
                "spec.rollback: the release Failed; restore what its message names by hand"
                    .to_owned()
            }
            p if p.is_in_flight() && st.started_at.is_some() => format!(
                "spec.rollback: only a Succeeded release can be rolled back, and this one is {p}; \
                 to stop it and reverse what it changed set spec.abort: true"
            ),
            p => format!(
                "spec.rollback: only a Succeeded release can be rolled back, and this one is {p} \
                 and has changed nothing; remove spec.rollback to let it start"
            ),
        });
    }
    let closed = st
        .rollback_window
        .as_ref()
        .and_then(|w| w.closed_at.clone());
    let Some(until) = until(st) else {
        return Some(
            "spec.rollback: the release records no time it finished, so its rollback window \
             cannot be known; release the previous versions as a new Release"
                .to_owned(),
        );
    };
    if closed.is_some() || now >= until {
        return Some(format!(
            "spec.rollback: the rollback window closed at {until} and the baselines are gone; \
             release the previous versions as a new Release"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AppliedPolicy, RollbackWindow};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_795_687_200 + secs).unwrap()
    }

    fn release(status: ReleaseStatus) -> Release {
        let mut r = Release::new("train", crate::testing::spec().build());
        r.status = Some(status);
        r
    }

    fn succeeded() -> ReleaseStatus {
        ReleaseStatus {
            phase: Some(Phase::Succeeded),
            started_at: Some(Time(at(0))),
            finished_at: Some(Time(at(600))),
            ..Default::default()
        }
    }

    #[test]
    fn within_the_window_a_succeeded_release_can_be_rolled_back_and_not_after() {
        let mut st = succeeded();
        st.rollback_window = Some(RollbackWindow {
            until: Time(at(700)),
            closed_at: None,
            refused: None,
        });
        assert_eq!(refusal(&release(st.clone()), at(699)), None);
        let after = refusal(&release(st.clone()), at(700)).unwrap();
        assert!(after.contains("closed at"), "{after}");
        st.rollback_window.as_mut().unwrap().closed_at = Some(Time(at(650)));
        assert!(refusal(&release(st), at(660)).is_some());
    }

    #[test]
    fn a_release_that_succeeded_before_windows_were_kept_has_the_window_it_would_have_had() {
        let mut st = succeeded();
        assert_eq!(until(&st), Some(at(600 + 24 * 3600)));
        assert_eq!(refusal(&release(st.clone()), at(3600)), None);
        assert!(refusal(&release(st.clone()), at(600 + 24 * 3600)).is_some());
        st.policy = Some(AppliedPolicy {
            rollback_window: Some(Duration::from_secs(60).into()),
            ..Default::default()
        });
        assert_eq!(until(&st), Some(at(660)));
        st.finished_at = None;
        let never = refusal(&release(st), at(0)).unwrap();
        assert!(never.contains("no time it finished"), "{never}");
    }

    #[test]
    fn every_other_phase_is_refused_with_what_to_do_instead() {
        let cases = [
            (
                Phase::Pending,
                false,
                "remove spec.rollback to let it start",
            ),
            (Phase::AwaitingWindow, false, "remove spec.rollback"),
            (Phase::Progressing, true, "set spec.abort: true"),
            (Phase::RolledBack, true, "already RolledBack"),
            (Phase::Failed, true, "by hand"),
        ];
        for (phase, started, says) in cases {
            let st = ReleaseStatus {
                phase: Some(phase),
                started_at: started.then(|| Time(at(0))),
                ..Default::default()
            };
            let why = refusal(&release(st), at(10)).unwrap();
            assert!(why.starts_with("spec.rollback: "), "{why}");
            assert!(why.contains(says), "{phase}: {why}");
        }
    }
}

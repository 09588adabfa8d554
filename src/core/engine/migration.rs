//! A migration's Jobs: the forward Job in its wave, the rollback Job in the
//! rollback order. Each is recorded in status before it is created, so that a
//! crash between the two never runs it twice, and a Job that disappears is
//! never created again.

use std::time::Duration;

use super::context::{Ctx, plus};
use super::{Action, CONVERGE, JobKind, JobObservation, NoticeKind};
use crate::api::{JobResult, JobRun, ServicePhase};
use crate::text;

/// How soon a running Job is looked at again when no watch wakes the controller first.
const RECHECK: Duration = Duration::from_secs(30);
/// How soon a Job recorded in status is created.
const SOON: Duration = Duration::ZERO;

fn observed(cx: &Ctx, name: &str, kind: JobKind) -> Option<JobObservation> {
    let seen = cx.seen(name);
    match kind {
        JobKind::Forward => seen.forward_job.clone(),
        JobKind::Rollback => seen.rollback_job.clone(),
    }
}

fn run_mut<'c>(cx: &'c mut Ctx, i: usize, kind: JobKind) -> &'c mut Option<JobRun> {
    let s = &mut cx.st.services[i];
    match kind {
        JobKind::Forward => &mut s.forward_job,
        JobKind::Rollback => &mut s.rollback_job,
    }
}

fn job_spec<'a>(cx: &Ctx<'a>, name: &str) -> Option<&'a crate::api::MigrationJob> {
    cx.spec.service(name)?.job.as_ref()
}

/// Why a Job failed, with its last log lines when there are any.
fn failure(reason: &str, logs: &Option<String>) -> String {
    match logs.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
        Some(l) => format!("{reason}; last log lines: {l}"),
        None => reason.to_owned(),
    }
}

/// Its turn came: record the forward Job, and create it in the next decision.
pub(super) fn start(cx: &mut Ctx, i: usize) {
    let name = cx.st.services[i].name.clone();
    let job = crate::migration::job_name(cx.release_name(), &name, JobKind::Forward);
    let now = cx.time();
    let s = &mut cx.st.services[i];
    s.phase = ServicePhase::Progressing;
    s.since = Some(now);
    s.step = None;
    s.weight = 0;
    s.forward_job = Some(JobRun {
        name: job.clone(),
        ..Default::default()
    });
    s.message = Some(format!("forward Job {job} recorded; creating it"));
    cx.record(
        "ServiceStarted",
        Some(&name),
        format!("migration: forward Job {job} recorded before it is created"),
    );
    cx.wake_in(SOON);
}

enum Seen {
    /// Not recorded, or not created yet: the action to create it was queued.
    Creating,
    /// Recorded as started and gone before it finished.
    Vanished,
    Running,
    Finished(JobResult, Option<String>),
}

/// Follow the recorded Job of `kind`: create it while it is not there and
/// never was, note when it starts, stop it past its timeout, note how it ended.
fn follow(cx: &mut Ctx, i: usize, kind: JobKind) -> Seen {
    let name = cx.st.services[i].name.clone();
    let Some(run) = run_mut(cx, i, kind).clone() else {
        return Seen::Creating;
    };
    if let Some(result) = run.result {
        return Seen::Finished(result, run.message);
    }
    let Some(seen) = observed(cx, &name, kind) else {
        if run.started_at.is_some() {
            return Seen::Vanished;
        }
        cx.st.services[i].message = Some(format!("creating {} Job {}", kind.word(), run.name));
        cx.act(Action::CreateJob {
            service: name,
            job: kind,
        });
        cx.wake_in(CONVERGE);
        return Seen::Creating;
    };
    let now = cx.time();
    let started = match &run.started_at {
        Some(t) => t.clone(),
        None => {
            if let Some(r) = run_mut(cx, i, kind).as_mut() {
                r.started_at = Some(now.clone());
            }
            cx.record(
                "JobStarted",
                Some(&name),
                format!("{} Job {} started", kind.word(), run.name),
            );
            now.clone()
        }
    };
    let (result, message) = match seen {
        JobObservation::Succeeded => (JobResult::Succeeded, None),
        JobObservation::Failed { reason, logs } => {
            (JobResult::Failed, Some(failure(&reason, &logs)))
        }
        JobObservation::Running => {
            let timeout = job_spec(cx, &name).map_or(
                crate::api::member_default::JOB_TIMEOUT,
                crate::api::MigrationJob::timeout,
            );
            let deadline = plus(started.0, timeout);
            if cx.now < deadline {
                cx.st.services[i].message = Some(format!(
                    "{} Job {} running; it times out at {deadline}",
                    kind.word(),
                    run.name
                ));
                cx.wake_at(deadline);
                cx.wake_in(RECHECK);
                return Seen::Running;
            }
            cx.act(Action::StopJob {
                service: name.clone(),
                job: kind,
            });
            (
                JobResult::TimedOut,
                Some(format!(
                    "it ran longer than job.timeout {} and was stopped",
                    text::duration(timeout)
                )),
            )
        }
    };
    if let Some(r) = run_mut(cx, i, kind).as_mut() {
        r.finished_at = Some(now);
        r.result = Some(result);
        r.message = message.clone();
    }
    let (reason, what) = match result {
        JobResult::Succeeded => ("JobSucceeded", "completed".to_owned()),
        JobResult::Failed => (
            "JobFailed",
            format!("failed: {}", message.clone().unwrap_or_default()),
        ),
        JobResult::TimedOut => (
            "JobTimedOut",
            format!("timed out: {}", message.clone().unwrap_or_default()),
        ),
    };
    cx.record(
        reason,
        Some(&name),
        format!("{} Job {} {what}", kind.word(), run.name),
    );
    Seen::Finished(result, message)
}

/// How a finished Job is told: `failed: REASON` or `timed out: ...`.
fn ended(result: JobResult, message: Option<String>) -> String {
    let m = message.unwrap_or_default();
    match result {
        JobResult::Succeeded => "completed".to_owned(),
        JobResult::Failed => format!("failed: {m}"),
        JobResult::TimedOut => format!("timed out: {m}"),
    }
}

/// A job service on its way forward.
pub(super) fn forward(cx: &mut Ctx, i: usize) {
    let name = cx.st.services[i].name.clone();
    if cx.st.services[i].forward_job.is_none() {
        return start(cx, i);
    }
    let job = cx.st.services[i]
        .forward_job
        .as_ref()
        .map(|r| r.name.clone())
        .unwrap_or_default();
    match follow(cx, i, JobKind::Forward) {
        Seen::Creating | Seen::Running | Seen::Vanished => {}
        Seen::Finished(JobResult::Succeeded, _) => {
            let now = cx.time();
            let s = &mut cx.st.services[i];
            s.phase = ServicePhase::Promoted;
            s.since = Some(now);
            s.message = Some(format!("forward Job {job} completed"));
            let message = format!("{name} promoted: forward Job {job} completed");
            cx.record("Promoted", Some(&name), message.clone());
            cx.notice(NoticeKind::Promoted, Some(&name), message);
        }
        Seen::Finished(result, message) => {
            let said = ended(result, message);
            cx.st.services[i].message = Some(format!("forward Job {job} {said}"));
            if cx.breach.is_none() {
                cx.breach = Some((name.clone(), format!("{name}: forward Job {job} {said}")));
            }
        }
    }
}

/// Where a job service goes when a rollback begins.
pub(super) fn at_rollback(cx: &mut Ctx, i: usize) {
    let name = cx.st.services[i].name.clone();
    let now = cx.time();
    let run = cx.st.services[i].forward_job.clone();
    let phase = cx.st.services[i].phase;
    let next = match (&run, phase) {
        (_, ServicePhase::Promoted) => ServicePhase::Restoring,
        (None, _) => ServicePhase::Skipped,
        (Some(r), _) if r.result.is_some() => ServicePhase::Restoring,
        (Some(r), _)
            if r.started_at.is_some() || observed(cx, &name, JobKind::Forward).is_some() =>
        {
            ServicePhase::Withdrawing
        }
        // Recorded, never seen: it may have been created a moment ago, so it
        // is stopped before it can run.
        (Some(_), _) => {
            cx.act(Action::StopJob {
                service: name.clone(),
                job: JobKind::Forward,
            });
            ServicePhase::Skipped
        }
    };
    let s = &mut cx.st.services[i];
    s.phase = next;
    s.since = Some(now);
    if next == ServicePhase::Skipped {
        s.message = Some("never started: the release is rolling back".to_owned());
    }
    // An irreversible one is told to stay applied in the rollback order, by
    // `restore`, once everything that depends on it is back.
}

/// A forward Job still running when the rollback began: it is let finish
/// (stopping a migration half way helps nobody), then reversed.
pub(super) fn withdraw(cx: &mut Ctx, i: usize) {
    let job = cx.st.services[i]
        .forward_job
        .as_ref()
        .map(|r| r.name.clone())
        .unwrap_or_default();
    match follow(cx, i, JobKind::Forward) {
        Seen::Running | Seen::Creating => {
            cx.st.services[i].message = Some(format!(
                "waits for forward Job {job} to finish before reversing it"
            ));
            return;
        }
        Seen::Vanished => {
            let now = cx.time();
            if let Some(r) = cx.st.services[i].forward_job.as_mut() {
                r.finished_at = Some(now);
                r.result = Some(JobResult::Failed);
                r.message = Some("the Job was deleted before it finished".to_owned());
            }
        }
        Seen::Finished(..) => {}
    }
    let now = cx.time();
    cx.st.services[i].phase = ServicePhase::Restoring;
    cx.st.services[i].since = Some(now);
    stays_if_irreversible(cx, i);
}

/// An irreversible migration has nothing to run: it stays applied, and counts as settled.
fn stays_if_irreversible(cx: &mut Ctx, i: usize) {
    let name = cx.st.services[i].name.clone();
    let Some(irreversible) = job_spec(cx, &name).and_then(|j| j.irreversible.clone()) else {
        return;
    };
    let message = format!(
        "stays applied: irreversible ({})",
        irreversible.justification.trim()
    );
    let s = &mut cx.st.services[i];
    s.phase = ServicePhase::Promoted;
    s.message = Some(message.clone());
    cx.record("StaysApplied", Some(&name), format!("{name} {message}"));
}

/// A job service's turn in the rollback order: record the rollback Job, create
/// it, wait for it. A rollback Job that does not succeed ends the release
/// `Failed`: the migration may be half reversed, which only a person can judge.
pub(super) fn restore(cx: &mut Ctx, i: usize) {
    let name = cx.st.services[i].name.clone();
    if job_spec(cx, &name).is_some_and(|j| j.irreversible.is_some()) {
        return stays_if_irreversible(cx, i);
    }
    let Some(run) = cx.st.services[i].rollback_job.clone() else {
        let job = crate::migration::job_name(cx.release_name(), &name, JobKind::Rollback);
        cx.st.services[i].rollback_job = Some(JobRun {
            name: job.clone(),
            ..Default::default()
        });
        cx.st.services[i].message = Some(format!("rollback Job {job} recorded; creating it"));
        cx.record(
            "RollbackJobRecorded",
            Some(&name),
            format!("rollback Job {job} recorded before it is created"),
        );
        cx.wake_in(SOON);
        return;
    };
    let job = run.name.clone();
    let by_hand = "the migration may be partly reversed: finish it by hand";
    match follow(cx, i, JobKind::Rollback) {
        Seen::Creating | Seen::Running => {}
        Seen::Vanished => cx.fail(
            Some(&name),
            format!("rollback Job {job} of {name} was deleted before it finished; {by_hand}"),
        ),
        Seen::Finished(JobResult::Succeeded, _) => {
            let now = cx.time();
            let s = &mut cx.st.services[i];
            s.phase = ServicePhase::Restored;
            s.since = Some(now);
            s.message = Some(format!("reversed by rollback Job {job}"));
            let message = format!("{name} restored: rollback Job {job} completed");
            cx.record("Restored", Some(&name), message.clone());
            cx.notice(NoticeKind::Restored, Some(&name), message);
        }
        Seen::Finished(result, message) => {
            let said = ended(result, message);
            cx.st.services[i].message = Some(format!("rollback Job {job} {said}"));
            cx.fail(
                Some(&name),
                format!("rollback Job {job} of {name} {said}; {by_hand}"),
            );
        }
    }
}

/// A forward Job recorded as started that is gone before it finished: someone
/// deleted it. It is never created again (a migration runs once).
pub(super) fn drift(cx: &Ctx, i: usize, at: usize) -> Option<String> {
    let s = &cx.st.services[i];
    if s.phase != ServicePhase::Progressing {
        return None;
    }
    let run = s.forward_job.as_ref()?;
    if run.started_at.is_none() || run.result.is_some() {
        return None;
    }
    if observed(cx, &s.name, JobKind::Forward).is_some() {
        return None;
    }
    Some(format!(
        "forward Job {} of {} (spec.services[{at}].job.forward) was deleted before it finished; a \
         migration runs once, so it is not created again: recreate it by hand to go on, or set \
         spec.abort: true to roll back",
        run.name, s.name
    ))
}

/// The irreversible migrations that stayed applied in a rollback, for its final message.
pub(super) fn stayed_applied(cx: &Ctx) -> Option<String> {
    let names: Vec<&str> = cx
        .st
        .services
        .iter()
        .filter(|s| s.phase == ServicePhase::Promoted)
        .filter(|s| job_spec(cx, &s.name).is_some_and(|j| j.irreversible.is_some()))
        .map(|s| s.name.as_str())
        .collect();
    match names.as_slice() {
        [] => None,
        [one] => Some(format!(
            "every change is reversed except the irreversible migration {one}, which stays applied"
        )),
        many => Some(format!(
            "every change is reversed except the irreversible migrations {}, which stay applied",
            many.join(", ")
        )),
    }
}

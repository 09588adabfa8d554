//! `pause`, `resume`, `abort` and `rollback`: declarative changes to spec
//! fields the controller honours, so the same thing can be done with
//! `kubectl patch` or from git. Each says what will happen before it is done.

use jiff::Timestamp;
use kube::ResourceExt;
use serde_json::json;

use crate::api::{Phase, ROLLBACK_BY_ANNOTATION, Release, ServicePhase};
use signalman_core::rollback_window;

/// A change to make and what it will do.
#[derive(Clone, Debug, PartialEq)]
pub struct Steer {
    /// A JSON merge patch of the Release.
    pub patch: serde_json::Value,
    /// What the controller will do, in plain words.
    pub says: String,
}

/// Why nothing is patched. `done` is true when the release is already where
/// the command would put it (not an error: the command is declarative).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    pub done: bool,
}

fn refuse(message: String) -> Refusal {
    Refusal {
        message,
        done: false,
    }
}

fn phase(r: &Release) -> Phase {
    r.status.as_ref().and_then(|s| s.phase).unwrap_or_default()
}

fn with_weight(r: &Release, phases: &[ServicePhase]) -> Vec<String> {
    r.status
        .iter()
        .flat_map(|s| &s.services)
        .filter(|s| phases.contains(&s.phase))
        .map(|s| format!("{} at {}%", s.name, s.weight))
        .collect()
}

/// `spec.paused: true`.
pub fn pause(r: &Release) -> Result<Steer, Refusal> {
    let name = r.name_any();
    let p = phase(r);
    if p.is_final() {
        return Err(refuse(format!(
            "Release {name} already ended {p:?}; there is nothing to pause"
        )));
    }
    if p == Phase::RollingBack || r.spec.abort == Some(true) {
        return Err(refuse(format!(
            "Release {name} is rolling back, and a rollback is never paused; wait for it to end RolledBack"
        )));
    }
    if r.spec.paused == Some(true) {
        return Err(Refusal {
            message: format!("Release {name} is already paused (spec.paused is true)"),
            done: true,
        });
    }
    let canaries = with_weight(r, &[ServicePhase::Progressing]);
    let says = if p == Phase::Pending {
        format!("Release {name} will not start until it is resumed.")
    } else if canaries.is_empty() {
        format!("Release {name} pauses: nothing advances and no step bakes until it is resumed.")
    } else {
        format!(
            "Release {name} pauses: nothing advances and no step bakes; canary weights stay where they are ({}). On resume the current step bakes again from the start.",
            canaries.join(", ")
        )
    };
    Ok(Steer {
        patch: json!({"spec": {"paused": true}}),
        says,
    })
}

/// Lift the hold in force (`spec.resumeHold` = its id) and/or unpause (`spec.paused: false`).
pub fn resume(r: &Release) -> Result<Steer, Refusal> {
    let name = r.name_any();
    let p = phase(r);
    if p.is_final() {
        return Err(refuse(format!(
            "Release {name} already ended {p:?}; there is nothing to resume"
        )));
    }
    let hold = r.status.as_ref().and_then(|s| s.hold.clone());
    let paused = r.spec.paused == Some(true);
    let mut spec = serde_json::Map::new();
    let mut says = Vec::new();
    if let Some(h) = &hold {
        if r.spec.resume_hold.as_deref() == Some(h.id.as_str()) && !paused {
            return Err(Refusal {
                message: format!(
                    "hold {} of Release {name} is already being lifted (spec.resumeHold is {}); if it stays, its cause is still there: {} {}",
                    h.id, h.id, h.reason, h.message
                ).trim_end().to_owned(),
                done: true,
            });
        }
        spec.insert("resumeHold".into(), json!(h.id));
        says.push(format!("lifts hold {} ({})", h.id, h.reason));
        let started_with = r.status.as_ref().and_then(|s| s.spec_hash.as_deref());
        if h.reason == crate::api::HoldReason::SpecChanged
            && started_with.is_some_and(|hash| !crate::engine::spec_matches(hash, &r.spec))
        {
            return Err(refuse(format!(
                "hold {} of Release {name} is there because its spec changed in flight, and the spec still differs from the one it started with; \
                 put the spec back (then resume), or abort it and create a new Release",
                h.id
            )));
        }
    }
    if paused {
        spec.insert("paused".into(), json!(false));
        says.push("unpauses it (spec.paused false)".into());
    }
    if spec.is_empty() {
        return Err(Refusal {
            message: format!(
                "Release {name} is {p:?}, neither paused nor held; there is nothing to resume"
            ),
            done: true,
        });
    }
    let canaries = with_weight(r, &[ServicePhase::Progressing]);
    let then = if canaries.is_empty() {
        "the release continues".to_owned()
    } else {
        format!(
            "the release continues: {} go{} back to {} step weight{} and the step bakes again from the start",
            canaries
                .iter()
                .map(|c| c.split(" at ").next().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(", "),
            if canaries.len() == 1 { "es" } else { "" },
            if canaries.len() == 1 { "its" } else { "their" },
            if canaries.len() == 1 { "" } else { "s" },
        )
    };
    Ok(Steer {
        patch: json!({"spec": spec}),
        says: format!("Release {name}: {}; {then}.", says.join(" and ")),
    })
}

/// `spec.abort: true`: the reverse rollback.
pub fn abort(r: &Release) -> Result<Steer, Refusal> {
    let name = r.name_any();
    let p = phase(r);
    if p == Phase::Succeeded {
        return Err(refuse(format!(
            "Release {name} already ended Succeeded; to reverse it within its rollback window: kubectl signalman rollback {name} -n {}",
            r.namespace().unwrap_or_default()
        )));
    }
    if p.is_final() {
        return Err(refuse(format!(
            "Release {name} already ended {p:?}; to undo a finished release, apply a new Release that changes the services back"
        )));
    }
    if r.spec.abort == Some(true) || p == Phase::RollingBack {
        return Err(Refusal {
            message: format!("Release {name} is already rolling back"),
            done: true,
        });
    }
    let status = r.status.clone().unwrap_or_default();
    if status.started_at.is_none() {
        return Ok(Steer {
            patch: json!({"spec": {"abort": true}}),
            says: format!(
                "Release {name} has changed nothing yet; it ends RolledBack at once. This cannot be undone."
            ),
        });
    }
    // Only a Deployment has a canary; a flag or a Job in progress has changed
    // something that a rollback reverses.
    let is_deployment = |name: &str| {
        r.spec
            .service(name)
            .is_some_and(|s| s.deployment().is_some())
    };
    let canaries: Vec<String> = with_weight(
        r,
        &[
            ServicePhase::Progressing,
            ServicePhase::Promoting,
            ServicePhase::Withdrawing,
        ],
    )
    .into_iter()
    .filter(|line| line.split(' ').next().is_some_and(is_deployment))
    .collect();
    let changed_phase = |name: &str, phase: ServicePhase| match phase {
        ServicePhase::Promoted | ServicePhase::Promoting => true,
        ServicePhase::Progressing => !is_deployment(name),
        _ => false,
    };
    let changed = super::members::in_rollback_order(
        &name,
        status
            .plan
            .as_ref()
            .map(|p| p.rollback_order.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|n| {
                status
                    .services
                    .iter()
                    .any(|s| &&s.name == n && changed_phase(n, s.phase))
            })
            .filter_map(|n| r.spec.service(n)),
    );
    let mut says = format!("Release {name} rolls back: ");
    if canaries.is_empty() {
        says.push_str("no canary is in flight");
    } else {
        says.push_str(&format!(
            "every canary in flight goes to 0% at once ({})",
            canaries.join(", ")
        ));
    }
    if changed.is_empty() {
        says.push_str("; no stable Deployment was changed, so nothing needs restoring");
    } else {
        says.push_str(&format!(
            ", then these are restored to their baseline in this order: {}",
            changed.join(" → ")
        ));
    }
    says.push_str(". This cannot be undone.");
    Ok(Steer {
        patch: json!({"spec": {"abort": true}}),
        says,
    })
}

/// `spec.rollback: true`: reverse a succeeded release within its rollback
/// window. Refused, changing nothing, with the words the controller would use
/// (`rollback_window::refusal`) when the release is not `Succeeded` or its
/// window has closed; the controller alone can see whether a Deployment or flag
/// changed since, so that refusal comes later, in `status.rollbackWindow.refused`.
/// The patch does not yet say who asks: see [`asked_by`].
pub fn rollback(r: &Release, now: Timestamp) -> Result<Steer, Refusal> {
    let name = r.name_any();
    let ns = r.namespace().unwrap_or_default();
    if let Some(why) = rollback_window::refusal(r, now) {
        return Err(refuse(format!("Release {name}: {why}")));
    }
    let status = r.status.clone().unwrap_or_default();
    let window = status.rollback_window.as_ref();
    if r.spec.rollback == Some(true) {
        return match window.and_then(|w| w.refused.as_deref()) {
            Some(why) => Err(refuse(format!(
                "Release {name}: spec.rollback is already true and the controller refused it: {why}; \
                 it rolls back by itself once that no longer holds, or set spec.rollback to false to withdraw the request"
            ))),
            None => Err(Refusal {
                message: format!(
                    "Release {name}: a rollback is already asked for (spec.rollback is true); follow it with kubectl signalman get {name} -n {ns} --watch"
                ),
                done: true,
            }),
        };
    }
    let promoted = |n: &String| {
        status
            .services
            .iter()
            .any(|s| &s.name == n && s.phase == ServicePhase::Promoted)
    };
    let order = super::members::in_rollback_order(
        &name,
        status
            .plan
            .as_ref()
            .map(|p| p.rollback_order.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|n| promoted(n))
            .filter_map(|n| r.spec.service(n)),
    );
    let mut says = format!("Release {name} rolls back");
    if let Some(w) = window {
        says.push_str(&format!(
            " (its rollback window is open until {})",
            w.until.0
        ));
    }
    says.push_str(
        ": the controller first checks that no Deployment or flag of it was changed since by something else \
         (if one was, it refuses, names it and changes nothing)",
    );
    if order.is_empty() {
        says.push_str("; no service of it is promoted, so nothing needs restoring");
    } else {
        says.push_str(&format!(
            "; then these are restored to their baseline in this order: {}",
            order.join(" → ")
        ));
    }
    says.push_str(". It ends RolledBack (reason Manual). This cannot be undone.");
    Ok(Steer {
        patch: json!({"spec": {"rollback": true}}),
        says,
    })
}

/// The rollback patch with who asks for it (annotation `signalman.dev/rollback-by`),
/// which the controller records as `status.rollback.requestedBy`; one patch, so the
/// request and its author arrive together.
pub fn asked_by(mut steer: Steer, user: &str) -> Steer {
    steer.patch["metadata"] = json!({"annotations": {ROLLBACK_BY_ANNOTATION: user}});
    steer
}

/// The same change with plain kubectl, for scripts and for GitOps users who
/// put the field in git instead.
pub fn kubectl_equivalent(r: &Release, steer: &Steer) -> String {
    format!(
        "kubectl patch releases.signalman.dev {} -n {} --type merge -p '{}'",
        r.name_any(),
        r.namespace().unwrap_or_default(),
        steer.patch
    )
}

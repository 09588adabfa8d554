//! `kubectl signalman approve`: one person's sign-off on one thing a release
//! waits for, as a `ReleaseApproval` the API server vouches for.
//!
//! Everything here is pure: the arguments are checked, then checked against
//! the Release (the gate, service and step exist, the approval would count),
//! before anything is created; the approval gets a name fixed by release,
//! target and user, so approving twice finds the first; and what it unblocks
//! is read from the Release's status.

use std::fmt::Write as _;

use kube::ResourceExt;

use crate::api::{
    AppliedPolicy, GateKind, Phase, Release, ReleaseApproval, ReleaseApprovalSpec, ServicePhase,
    StepRef,
};

use super::gonogo;
use signalman_core::policy;

/// Longest comment the CRD accepts.
const COMMENT_MAX: usize = 1024;

/// What an approval approves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum What {
    /// An approval gate (`--gate`).
    Gate(String),
    /// Step `step` (from 1, as `get` shows it) of `service` (`--step SERVICE/N`).
    Step { service: String, step: i32 },
    /// The window override (`--window`).
    Window,
}

impl What {
    /// In words, e.g. `gate smoke-tests`, `step 3 of checkout`, `the window override`.
    pub fn describe(&self) -> String {
        match self {
            What::Gate(g) => format!("gate {g}"),
            What::Step { service, step } => format!("step {step} of {service}"),
            What::Window => "the window override".to_owned(),
        }
    }

    /// The flag that names it, e.g. `--step checkout/3`.
    pub fn flag(&self) -> String {
        match self {
            What::Gate(g) => format!("--gate {g}"),
            What::Step { service, step } => format!("--step {service}/{step}"),
            What::Window => "--window".to_owned(),
        }
    }
}

/// The arguments of `approve`, as given.
#[derive(Clone, Debug, Default)]
pub struct Args<'a> {
    pub gate: Option<&'a str>,
    pub step: Option<&'a str>,
    pub window: bool,
    pub message: Option<&'a str>,
}

/// Exactly one target and a comment that says something, or the error naming the flag and the fix.
pub fn parse(args: &Args<'_>) -> Result<(What, String), String> {
    let given: Vec<&str> = [
        args.gate.map(|_| "--gate"),
        args.step.map(|_| "--step"),
        args.window.then_some("--window"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let what = match given.as_slice() {
        [] => {
            return Err(
                "say what you approve: --gate GATE, --step SERVICE/N or --window (one of them)"
                    .to_owned(),
            );
        }
        [_] => {
            if let Some(g) = args.gate {
                let g = g.trim();
                if g.is_empty() {
                    return Err("--gate is empty: name the gate, e.g. --gate smoke-tests (kubectl signalman get NAME lists the gates)".to_owned());
                }
                What::Gate(g.to_owned())
            } else if let Some(s) = args.step {
                parse_step(s)?
            } else {
                What::Window
            }
        }
        many => {
            return Err(format!(
                "{} given together: one approval approves one thing; run approve once for each",
                many.join(" and ")
            ));
        }
    };
    let comment = match args.message {
        None => {
            return Err(
                "-m is required: say what you checked or why you approve, e.g. -m \"smoke tests green on staging\""
                    .to_owned(),
            );
        }
        Some(m) if m.trim().is_empty() => {
            return Err(
                "-m is blank: say what you checked or why you approve, e.g. -m \"smoke tests green on staging\""
                    .to_owned(),
            );
        }
        Some(m) if m.chars().count() > COMMENT_MAX => {
            return Err(format!(
                "-m has {} characters, more than the {COMMENT_MAX} an approval keeps; say it shorter and link to the details",
                m.chars().count()
            ));
        }
        Some(m) => m.trim().to_owned(),
    };
    Ok((what, comment))
}

fn parse_step(text: &str) -> Result<What, String> {
    let bad = || {
        format!(
            "--step {text}: write SERVICE/N, e.g. --step checkout/3, with N counted from 1 as kubectl signalman get shows steps"
        )
    };
    let (service, n) = text.rsplit_once('/').ok_or_else(bad)?;
    let service = service.trim();
    if service.is_empty() {
        return Err(bad());
    }
    let step: i32 = n.trim().parse().map_err(|_| bad())?;
    if !(1..=20).contains(&step) {
        return Err(format!(
            "--step {text}: steps are counted from 1 (a service has at most 20); write e.g. --step {service}/1"
        ));
    }
    Ok(What::Step {
        service: service.to_owned(),
        step,
    })
}

/// Check `what` against the release, before anything is created: the gate is an
/// approval gate it has, the service and step exist and wait for an approval,
/// the window override has a justification, and `user`'s approval would count.
/// `applied` is the policy in force (`status.policy`, or computed before the controller wrote it).
pub fn check(
    release: &Release,
    applied: Option<&AppliedPolicy>,
    what: &What,
    user: &str,
) -> Result<(), String> {
    let name = release.name_any();
    let status = release.status.clone().unwrap_or_default();
    let phase = status.phase.unwrap_or_default();
    if phase.is_final() {
        return Err(format!(
            "Release {name} already ended {phase}; there is nothing left to approve"
        ));
    }
    match what {
        What::Gate(gate) => {
            let rules = gonogo::approvals(applied);
            let gates = policy::approvable_gates(&release.spec, Some(&rules));
            if !gates.contains(&gate.as_str()) {
                if release.spec.gate(gate).is_some_and(|g| g.query.is_some()) {
                    return Err(format!(
                        "gate {gate} of Release {name} is a query gate: it holds when its query's value is in range, and no approval makes it hold"
                    ));
                }
                let has = if gates.is_empty() {
                    "it has no approval gate".to_owned()
                } else {
                    format!("its approval gates: {}", gates.join(", "))
                };
                return Err(format!(
                    "Release {name} has no approval gate {gate:?}; {has} (spec.gates with approval: true, approval when its policy wants one before the start, review for a hotfix)"
                ));
            }
        }
        What::Step { service, step } => {
            let spec = gonogo::effective_spec(release, applied);
            let Some(svc) = spec.service(service) else {
                return Err(format!(
                    "Release {name} has no service {service:?}; its services: {}",
                    spec.services
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            };
            let steps = spec.steps_of(svc);
            let listed = |is: &dyn Fn(usize) -> bool| {
                steps
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| is(*i))
                    .map(|(i, s)| format!("{} ({}%)", i + 1, s.weight))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let index = usize::try_from(*step - 1).unwrap_or(usize::MAX);
            if index >= steps.len() {
                return Err(format!(
                    "{service} has {} steps: {}; --step {service}/N takes N from 1 to {}",
                    steps.len(),
                    listed(&|_| true),
                    steps.len()
                ));
            }
            // The profile's approval before the last step is written into the effective steps.
            let waits = |i: usize| steps[i].approval == Some(true);
            if !waits(index) {
                let waiting = listed(&waits);
                let which = if waiting.is_empty() {
                    format!("none of {service}'s steps does")
                } else {
                    format!("the steps of {service} that do: {waiting}")
                };
                return Err(format!(
                    "step {step} ({}%) of {service} does not wait for an approval; {which}",
                    steps[index].weight
                ));
            }
            if let Some(st) = status.services.iter().find(|s| &s.name == service) {
                let past = match st.phase {
                    ServicePhase::Progressing => st.step.is_some_and(|s| s > step - 1),
                    ServicePhase::Pending => false,
                    _ => true,
                };
                if past {
                    return Err(format!(
                        "{service} is already past step {step} ({:?}); there is nothing to approve there",
                        st.phase
                    ));
                }
            }
        }
        What::Window => {
            if release.spec.window_override.is_none() {
                return Err(format!(
                    "Release {name} has no spec.override.justification, and a window override counts only with one; \
                     its author sets it first (kubectl patch release {name} --type merge -p '{{\"spec\":{{\"override\":{{\"justification\":\"...\"}}}}}}'), then approve"
                ));
            }
        }
    }
    let rules = gonogo::approvals(applied);
    if let Some(why) = policy::approval::refusal_of(release, Some(&rules), user) {
        return Err(format!("your approval would not count: {why}"));
    }
    Ok(())
}

/// The name of `user`'s approval of `what` for `release`: the same each time,
/// so a second `approve` finds the first. A DNS subdomain: readable parts,
/// and a hash of the exact values so that users whose names read alike
/// (`Alice`, `alice`, `alice@example`) never share one.
pub fn approval_name(release: &str, what: &What, user: &str) -> String {
    let target = match what {
        What::Gate(g) => format!("gate-{g}"),
        What::Step { service, step } => format!("step-{service}-{step}"),
        What::Window => "window".to_owned(),
    };
    let hash = fnv1a(&format!("{release}\0{target}\0{user}"));
    let readable = format!("{release}-{target}-{}", slug(user));
    let mut name = slug(&readable);
    // 253 is the limit; keep it short enough to read in `kubectl get`.
    name.truncate(100);
    let name = name.trim_end_matches('-');
    format!("{name}-{}", &hash[..8])
}

/// Lower case letters, digits and single dashes.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

fn fnv1a(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The object `approve` creates.
pub fn approval(release: &Release, what: &What, user: &str, comment: &str) -> ReleaseApproval {
    let name = approval_name(&release.name_any(), what, user);
    let (gate, step, window) = match what {
        What::Gate(g) => (Some(g.clone()), None, None),
        What::Step { service, step } => (
            None,
            Some(StepRef {
                service: service.clone(),
                step: *step,
            }),
            None,
        ),
        What::Window => (None, None, Some(true)),
    };
    let mut a = ReleaseApproval::new(
        &name,
        ReleaseApprovalSpec {
            release: release.name_any(),
            approver: user.to_owned(),
            gate,
            step,
            window,
            comment: comment.to_owned(),
        },
    );
    a.metadata.namespace = release.namespace();
    a
}

/// What the approval lets happen, from the release's status: the gates that
/// still do not hold, the weight a waiting service moves to, the window.
pub fn unblocks(release: &Release, applied: Option<&AppliedPolicy>, what: &What) -> String {
    let status = release.status.clone().unwrap_or_default();
    let phase = status.phase.unwrap_or_default();
    let started = status.started_at.is_some();
    let wave = status.gates.first().map(|g| g.wave).unwrap_or(1).max(1);
    let it_starts = if wave > 1 && started {
        format!("wave {wave} can begin")
    } else {
        "the release can start".to_owned()
    };
    match what {
        What::Gate(gate) => {
            if phase != Phase::AwaitingGates || status.gates.is_empty() {
                return format!(
                    "gate {gate} holds from now on; the controller checks the gates before {}",
                    if started {
                        "the next wave"
                    } else {
                        "the first wave"
                    }
                );
            }
            let rest: Vec<String> = status
                .gates
                .iter()
                .filter(|g| !g.holds && &g.name != gate)
                .map(|g| match g.kind {
                    GateKind::Approval => format!("{} is approved", g.name),
                    _ => format!("{} holds", g.name),
                })
                .collect();
            let mut out = if rest.is_empty() {
                format!("{it_starts} now")
            } else {
                format!("{it_starts} once {}", join_and(&rest))
            };
            if status.window.as_ref().is_some_and(|w| !w.open) {
                out.push_str(", and its window opens or an override is approved");
            }
            out
        }
        What::Step { service, step } => {
            let spec = gonogo::effective_spec(release, applied);
            let steps = spec
                .service(service)
                .map(|s| spec.steps_of(s))
                .unwrap_or_default();
            let index = usize::try_from(*step - 1).unwrap_or(0);
            let here = steps.get(index).map(|s| s.weight).unwrap_or_default();
            let waiting = status
                .services
                .iter()
                .any(|s| &s.name == service && s.awaiting_approval && s.step == Some(*step - 1));
            let next = match steps.get(index + 1) {
                Some(n) => format!("moves from {here}% to {}% (step {})", n.weight, step + 1),
                None => format!("is promoted from its last step at {here}%"),
            };
            if waiting {
                format!("{service} {next}")
            } else {
                format!(
                    "{service} will not wait at step {step} ({here}%) when it gets there: it {next} once the step's bake passes"
                )
            }
        }
        What::Window => {
            let justification = release
                .spec
                .window_override
                .as_ref()
                .map(|o| o.justification.as_str())
                .unwrap_or_default();
            let mut out = if phase == Phase::AwaitingWindow {
                format!("{it_starts} outside its window")
            } else {
                "the release may start and begin waves outside its window".to_owned()
            };
            let _ = write!(out, " (justification: {justification})");
            let gates_pending: Vec<&str> = status
                .gates
                .iter()
                .filter(|g| !g.holds)
                .map(|g| g.name.as_str())
                .collect();
            if !gates_pending.is_empty() {
                let _ = write!(
                    out,
                    ", once its gates hold too ({})",
                    gates_pending.join(", ")
                );
            }
            out
        }
    }
}

fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        Approvals, Gate, GateStatus, Profile, ReleaseStatus, ServiceStatus, WindowOverride,
        WindowStatus,
    };

    fn args<'a>(
        gate: Option<&'a str>,
        step: Option<&'a str>,
        window: bool,
        message: Option<&'a str>,
    ) -> Args<'a> {
        Args {
            gate,
            step,
            window,
            message,
        }
    }

    #[test]
    fn exactly_one_target_and_a_comment_or_an_error_naming_the_flag() {
        let ok = parse(&args(Some("smoke"), None, false, Some(" green "))).unwrap();
        assert_eq!(ok, (What::Gate("smoke".into()), "green".into()));
        assert_eq!(
            parse(&args(None, Some("web/3"), false, Some("ok")))
                .unwrap()
                .0,
            What::Step {
                service: "web".into(),
                step: 3
            }
        );
        assert_eq!(
            parse(&args(None, None, true, Some("ok"))).unwrap().0,
            What::Window
        );
        let err = |a: Args<'_>| parse(&a).unwrap_err();
        assert_eq!(
            err(args(None, None, false, Some("ok"))),
            "say what you approve: --gate GATE, --step SERVICE/N or --window (one of them)"
        );
        assert_eq!(
            err(args(Some("g"), Some("web/1"), true, Some("ok"))),
            "--gate and --step and --window given together: one approval approves one thing; run approve once for each"
        );
        assert!(err(args(Some("g"), None, false, None)).starts_with("-m is required"));
        assert!(err(args(Some("g"), None, false, Some(" \t"))).starts_with("-m is blank"));
        let long = "x".repeat(1025);
        assert!(err(args(Some("g"), None, false, Some(&long))).contains("1025 characters"));
        assert_eq!(
            err(args(None, Some("web-3"), false, Some("ok"))),
            "--step web-3: write SERVICE/N, e.g. --step checkout/3, with N counted from 1 as kubectl signalman get shows steps"
        );
        assert!(err(args(None, Some("web/0"), false, Some("ok"))).contains("counted from 1"));
        assert!(err(args(None, Some("/2"), false, Some("ok"))).contains("write SERVICE/N"));
        assert!(err(args(Some(" "), None, false, Some("ok"))).starts_with("--gate is empty"));
    }

    #[test]
    fn the_name_is_the_same_each_time_and_distinct_per_user_and_target() {
        let gate = What::Gate("smoke-tests".into());
        let a = approval_name("checkout-v5", &gate, "alice");
        assert_eq!(a, approval_name("checkout-v5", &gate, "alice"));
        assert!(a.starts_with("checkout-v5-gate-smoke-tests-alice-"), "{a}");
        assert_ne!(a, approval_name("checkout-v5", &gate, "Alice"));
        assert_ne!(a, approval_name("checkout-v5", &What::Window, "alice"));
        let sa = approval_name(
            "checkout-v5",
            &What::Step {
                service: "web".into(),
                step: 3,
            },
            "system:serviceaccount:ci:bot",
        );
        assert!(
            sa.starts_with("checkout-v5-step-web-3-system-serviceaccount-ci-bot-"),
            "{sa}"
        );
        let long = approval_name(&"r".repeat(63), &gate, &"u".repeat(200));
        assert!(long.len() <= 109, "{long}");
        assert!(
            long.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }

    fn release() -> Release {
        let mut spec = signalman_core::testing::spec()
            .services(&[("payments", &[]), ("web", &["payments"])])
            .steps([
                (10, std::time::Duration::from_secs(60)),
                (50, std::time::Duration::from_secs(60)),
                (100, std::time::Duration::from_secs(60)),
            ])
            .build();
        spec.gates = vec![
            Gate {
                name: "smoke-tests".into(),
                query: Some("up".into()),
                min: Some(1.0),
                max: None,
                interval: None,
                approval: None,
            },
            Gate {
                name: "change-board".into(),
                query: None,
                min: None,
                max: None,
                interval: None,
                approval: Some(true),
            },
        ];
        let mut r = Release::new("checkout-v5", spec);
        r.metadata.namespace = Some("shop".into());
        r
    }

    fn high() -> AppliedPolicy {
        AppliedPolicy {
            rollback_window: None,
            name: Some("prod".into()),
            profile: Some("high".into()),
            defaults: Some(Profile {
                approvals: Some(Approvals {
                    before_start: Some(true),
                    before_last_step: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            gate_timeout: None,
        }
    }

    #[test]
    fn a_gate_must_be_an_approval_gate_of_the_release() {
        let r = release();
        assert_eq!(
            check(&r, None, &What::Gate("change-board".into()), "alice"),
            Ok(())
        );
        assert_eq!(
            check(&r, None, &What::Gate("approval".into()), "alice"),
            Err("Release checkout-v5 has no approval gate \"approval\"; its approval gates: change-board (spec.gates with approval: true, approval when its policy wants one before the start, review for a hotfix)".into())
        );
        assert_eq!(
            check(&r, Some(&high()), &What::Gate("approval".into()), "alice"),
            Ok(())
        );
        let err = check(&r, None, &What::Gate("smoke-tests".into()), "alice").unwrap_err();
        assert!(err.contains("is a query gate"), "{err}");
    }

    #[test]
    fn a_step_must_exist_and_wait_for_an_approval() {
        let r = release();
        let step = |service: &str, step| What::Step {
            service: service.into(),
            step,
        };
        assert_eq!(
            check(&r, None, &step("cart", 1), "alice"),
            Err("Release checkout-v5 has no service \"cart\"; its services: payments, web".into())
        );
        assert_eq!(
            check(&r, None, &step("web", 4), "alice"),
            Err(
                "web has 3 steps: 1 (10%), 2 (50%), 3 (100%); --step web/N takes N from 1 to 3"
                    .into()
            )
        );
        assert_eq!(
            check(&r, None, &step("web", 2), "alice"),
            Err(
                "step 2 (50%) of web does not wait for an approval; none of web's steps does"
                    .into()
            )
        );
        assert_eq!(check(&r, Some(&high()), &step("web", 2), "alice"), Ok(()));
        assert_eq!(
            check(&r, Some(&high()), &step("web", 1), "alice"),
            Err("step 1 (10%) of web does not wait for an approval; the steps of web that do: 2 (50%)".into())
        );
    }

    #[test]
    fn a_window_override_needs_a_justification_and_a_final_release_nothing() {
        let mut r = release();
        let err = check(&r, None, &What::Window, "alice").unwrap_err();
        assert!(err.contains("has no spec.override.justification"), "{err}");
        r.spec.window_override = Some(WindowOverride {
            justification: "INC-4711".into(),
        });
        assert_eq!(check(&r, None, &What::Window, "alice"), Ok(()));
        r.status = Some(ReleaseStatus {
            phase: Some(Phase::Succeeded),
            ..Default::default()
        });
        assert_eq!(
            check(&r, None, &What::Window, "alice"),
            Err(
                "Release checkout-v5 already ended Succeeded; there is nothing left to approve"
                    .into()
            )
        );
    }

    fn gate(name: &str, kind: GateKind, holds: bool) -> GateStatus {
        GateStatus {
            name: name.into(),
            kind,
            holds,
            value: None,
            query: None,
            reason: String::new(),
            checked_at: None,
            wave: 1,
        }
    }

    #[test]
    fn what_an_approval_unblocks_is_read_from_the_status() {
        let mut r = release();
        let board = What::Gate("change-board".into());
        assert_eq!(
            unblocks(&r, None, &board),
            "gate change-board holds from now on; the controller checks the gates before the first wave"
        );
        r.status = Some(ReleaseStatus {
            phase: Some(Phase::AwaitingGates),
            gates: vec![
                gate("deployments-ready", GateKind::Cluster, true),
                gate("smoke-tests", GateKind::Query, false),
                gate("change-board", GateKind::Approval, false),
            ],
            ..Default::default()
        });
        assert_eq!(
            unblocks(&r, None, &board),
            "the release can start once smoke-tests holds"
        );
        let status = r.status.as_mut().unwrap();
        status.gates[1].holds = true;
        status.window = Some(WindowStatus {
            open: false,
            ..Default::default()
        });
        assert_eq!(
            unblocks(&r, None, &board),
            "the release can start now, and its window opens or an override is approved"
        );

        let status = r.status.as_mut().unwrap();
        status.phase = Some(Phase::Progressing);
        status.window = None;
        status.gates.clear();
        status.services = vec![ServiceStatus {
            name: "web".into(),
            phase: ServicePhase::Progressing,
            step: Some(1),
            weight: 50,
            awaiting_approval: true,
            ..Default::default()
        }];
        let web2 = What::Step {
            service: "web".into(),
            step: 2,
        };
        assert_eq!(
            unblocks(&r, Some(&high()), &web2),
            "web moves from 50% to 100% (step 3)"
        );
        r.status.as_mut().unwrap().services[0].awaiting_approval = false;
        r.status.as_mut().unwrap().services[0].step = Some(0);
        assert_eq!(
            unblocks(&r, Some(&high()), &web2),
            "web will not wait at step 2 (50%) when it gets there: it moves from 50% to 100% (step 3) once the step's bake passes"
        );

        r.spec.window_override = Some(WindowOverride {
            justification: "INC-4711".into(),
        });
        r.status.as_mut().unwrap().phase = Some(Phase::AwaitingWindow);
        assert_eq!(
            unblocks(&r, None, &What::Window),
            "the release can start outside its window (justification: INC-4711)"
        );
    }

    #[test]
    fn the_object_names_the_user_as_approver_in_the_release_namespace() {
        let r = release();
        let a = approval(&r, &What::Window, "alice", "INC-4711 checked");
        assert_eq!(a.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(a.spec.approver, "alice");
        assert_eq!(a.spec.release, "checkout-v5");
        assert_eq!(a.spec.window, Some(true));
        assert_eq!((a.spec.gate.clone(), a.spec.step.clone()), (None, None));
        assert_eq!(
            a.metadata.name,
            Some(approval_name("checkout-v5", &What::Window, "alice"))
        );
    }
}

//! Go/no-go policy, pure: the release's risk and why, the profile it
//! follows, and the spec as that profile completes it. The controller and
//! the plugin both call these, so `plan` shows what the train will do.

pub mod approval;
mod risk;
pub mod window;

use std::borrow::Cow;

use crate::api::{
    AnalysisLimits, AppliedPolicy, Approvals, DEFAULT_POLICY, POLICY_LABEL, Problem, Profile,
    Release, ReleasePolicySpec, ReleaseSpec, ReleaseType, Risk,
};
use crate::engine::PolicyObservation;

pub use risk::{of_class, problem as risk_problem, risk};

/// The name of the hotfix profile, and of the approval gate a hotfix waits for.
pub const HOTFIX: &str = "hotfix";
/// The built-in gate: every Deployment of the wave exists, is rolled out and is not paused.
pub const DEPLOYMENTS_READY: &str = "deployments-ready";
/// The approval gate a profile with `approvals.beforeStart` adds before the first wave.
pub const APPROVAL_GATE: &str = "approval";
/// The approval gate every hotfix waits for before its first wave: its review.
pub const REVIEW_GATE: &str = "review";

/// The name of a risk class, as the API writes it.
pub fn risk_name(r: Risk) -> &'static str {
    risk::name(r)
}

pub fn is_hotfix(spec: &ReleaseSpec) -> bool {
    spec.release_type == Some(ReleaseType::Hotfix)
}

/// The approval gate checked before the first wave, if any: `review` for a
/// hotfix, else `approval` when the profile's `rules` want one before the start.
pub fn start_gate(spec: &ReleaseSpec, rules: Option<&Approvals>) -> Option<&'static str> {
    if is_hotfix(spec) {
        Some(REVIEW_GATE)
    } else if rules.is_some_and(|a| a.before_start == Some(true)) {
        Some(APPROVAL_GATE)
    } else {
        None
    }
}

/// Every approval gate of a release, in the order they are checked: its own
/// (`spec.gates` with `approval: true`), then its [`start_gate`].
pub fn approval_gates<'a>(spec: &'a ReleaseSpec, rules: Option<&Approvals>) -> Vec<&'a str> {
    spec.gates
        .iter()
        .filter(|g| g.approval == Some(true))
        .map(|g| g.name.as_str())
        .chain(start_gate(spec, rules))
        .collect()
}

/// Every gate a `ReleaseApproval` can make hold: the [`approval_gates`],
/// then each service's own approval gates.
pub fn approvable_gates<'a>(spec: &'a ReleaseSpec, rules: Option<&Approvals>) -> Vec<&'a str> {
    let services = spec
        .services
        .iter()
        .flat_map(|s| &s.gates)
        .filter(|g| g.approval == Some(true))
        .map(|g| g.name.as_str());
    approval_gates(spec, rules)
        .into_iter()
        .chain(services)
        .collect()
}

/// The ReleasePolicy that applies to `spec` in a namespace whose label
/// `signalman.dev/policy` is `namespace_label`, and what named it:
/// `spec.policy`, else the label, else `default`, named by nothing (so its
/// absence means no policy rather than a missing one).
pub fn named(spec: &ReleaseSpec, namespace_label: Option<&str>) -> (String, Option<String>) {
    if let Some(p) = &spec.policy {
        return (p.clone(), Some("spec.policy".to_owned()));
    }
    match namespace_label.filter(|l| !l.is_empty()) {
        Some(l) => (
            l.to_owned(),
            Some(format!("namespace label {POLICY_LABEL}")),
        ),
        None => (DEFAULT_POLICY.to_owned(), None),
    }
}

/// The policy `spec` follows under `policy`: the profile its risk (or its
/// type, for a hotfix) picks, and the gate timeout in force. With no policy
/// (none applies, or the one named is missing) only the Release's own
/// `gateTimeout`.
pub fn applied(spec: &ReleaseSpec, policy: &PolicyObservation) -> AppliedPolicy {
    let PolicyObservation::Found { name, spec: p } = policy else {
        return AppliedPolicy {
            gate_timeout: spec.gate_timeout,
            ..AppliedPolicy::default()
        };
    };
    let (profile, defaults) = if is_hotfix(spec) {
        (HOTFIX.to_owned(), p.hotfix.clone())
    } else {
        let (r, _) = risk(spec);
        let risks = p.risks.clone().unwrap_or_default();
        let profile = match r {
            Risk::Low => risks.low,
            Risk::Medium | Risk::Auto => risks.medium,
            Risk::High => risks.high,
        };
        (risk_name(r).to_owned(), profile)
    };
    AppliedPolicy {
        name: Some(name.clone()),
        profile: Some(profile),
        defaults,
        gate_timeout: spec.gate_timeout.or(p.gate_timeout),
        rollback_window: p.rollback_window,
    }
}

/// `spec` completed by `applied`'s profile: the one fill every reader uses,
/// before the start (with [`applied`]) and after it (with the policy fixed
/// in status). Steps: the service's > `spec.defaults.steps` > the profile's >
/// built in; with `beforeLastStep` each service's second-to-last step waits
/// for an approval. Analysis limits the Release leaves unset come from the
/// profile; metrics always come from the Release.
pub fn fill(spec: &ReleaseSpec, applied: &AppliedPolicy) -> ReleaseSpec {
    let mut out = spec.clone();
    let Some(profile) = &applied.defaults else {
        return out;
    };
    if let Some(steps) = &profile.steps {
        let defaults = out.defaults.get_or_insert_with(Default::default);
        if defaults.steps.is_none() {
            defaults.steps = Some(steps.clone());
        }
    }
    if let Some(limits) = &profile.analysis {
        if let Some(a) = out.defaults.as_mut().and_then(|d| d.analysis.as_mut()) {
            fill_limits(a, limits);
        }
        for svc in &mut out.services {
            if let Some(a) = &mut svc.analysis {
                fill_limits(a, limits);
            }
        }
        // Verification is judged with the profile's limits too, as a step is.
        if let Some(v) = &mut out.verify {
            fill_limits(&mut v.analysis, limits);
        }
    }
    if before_last_step(profile) {
        for i in 0..out.services.len() {
            let mut steps = out.steps_of(&out.services[i]);
            if steps.len() >= 2 {
                let k = steps.len() - 2;
                steps[k].approval = Some(true);
            }
            out.services[i].steps = Some(steps);
        }
    }
    out
}

fn before_last_step(profile: &Profile) -> bool {
    profile
        .approvals
        .as_ref()
        .is_some_and(|a| a.before_last_step == Some(true))
}

fn fill_limits(a: &mut crate::api::Analysis, limits: &AnalysisLimits) {
    a.interval = a.interval.or(limits.interval);
    a.failure_limit = a.failure_limit.or(limits.failure_limit);
    a.inconclusive_limit = a.inconclusive_limit.or(limits.inconclusive_limit);
    a.error_limit = a.error_limit.or(limits.error_limit);
    a.min_passes = a.min_passes.or(limits.min_passes);
}

/// The release's spec completed by the policy fixed in its status (computed
/// from the live policy until the release starts): see [`fill`]. Without a
/// profile in status, the spec as written.
pub fn effective(release: &Release) -> Cow<'_, ReleaseSpec> {
    match release.status.as_ref().and_then(|s| s.policy.as_ref()) {
        Some(applied) if applied.defaults.is_some() => Cow::Owned(fill(&release.spec, applied)),
        _ => Cow::Borrowed(&release.spec),
    }
}

/// What makes the ReleasePolicy `name` unusable: an unknown time zone, a
/// time or date that does not read, `from` not before `to`, bad steps or
/// durations. Each field is prefixed `ReleasePolicy NAME: ` so a message
/// about it on a Release says which object to fix.
pub fn validate_policy(name: &str, spec: &ReleasePolicySpec) -> Vec<Problem> {
    let mut out = window::problems(
        spec.window.as_ref(),
        spec.freeze.as_ref(),
        "spec.window",
        "spec.freeze",
    );
    let mut problem = |field: String, message: &str| {
        out.push(Problem {
            field,
            message: message.to_owned(),
        })
    };
    let too_short = |d: crate::api::Duration| {
        d.is_negative() || std::time::Duration::from(d) < std::time::Duration::from_secs(1)
    };
    if spec.gate_timeout.is_some_and(too_short) {
        problem(
            "spec.gateTimeout".into(),
            "must be a duration of at least 1s, e.g. 4h",
        );
    }
    let risks = spec.risks.clone().unwrap_or_default();
    let profiles = [
        ("spec.risks.low", risks.low.as_ref()),
        ("spec.risks.medium", risks.medium.as_ref()),
        ("spec.risks.high", risks.high.as_ref()),
        ("spec.hotfix", spec.hotfix.as_ref()),
    ];
    for (at, profile) in profiles {
        let Some(p) = profile else { continue };
        if let Some(steps) = &p.steps {
            crate::api::check_steps(&format!("{at}.steps"), steps, &mut problem);
        }
        if let Some(interval) = p.analysis.as_ref().and_then(|a| a.interval)
            && too_short(interval)
        {
            problem(
                format!("{at}.analysis.interval"),
                "must be a duration of at least 1s, e.g. 30s",
            );
        }
    }
    for p in &mut out {
        p.field = format!("ReleasePolicy {name}: {}", p.field);
    }
    out
}

#[cfg(test)]
mod tests;

//! `kubectl signalman plan`: what a Release would do before anyone applies it.
//!
//! The same checks the controller makes before it changes anything (static
//! validation, then the dependency graph, then the cluster when we can reach
//! it), and the schedule a release manager wants up front: waves, each
//! service's steps, the rollback order and the least time the train can take.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use signalman_core::policy;

use crate::api::{
    self, Analysis, AppliedPolicy, CrossTeamAction, MemberKind, Plan, Problem, Release, ReleaseSpec,
};
use crate::engine::PolicyObservation;
use crate::preflight::{self, ClusterView};
use crate::text;
use crate::traffic::replica;
use crate::{analysis, plan};

use super::gonogo;
use super::members;
use super::style::Style;
use super::untrusted;

/// One service's part of the schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceSchedule {
    pub name: String,
    /// `(weight, time the step takes at least)` in order.
    pub steps: Vec<(i32, Duration)>,
    /// Sum of the step times: the least time from its first step to promotion.
    pub total: Duration,
}

/// The computed schedule of a valid Release.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub plan: Plan,
    pub services: Vec<ServiceSchedule>,
    /// The least time the whole train takes: the longest chain of dependent
    /// services, then the verification (`spec.verify`) when there is one.
    pub minimum: Duration,
    /// The least time verification takes (its bake, or longer when its `minPasses` need it).
    pub verify: Option<Duration>,
    /// The services on that chain, first to last.
    pub critical_path: Vec<String>,
}

/// Every problem the spec has on its face or in its dependency graph (the
/// classes the controller reports as `InvalidSpec` and `InvalidPlan`).
pub fn spec_problems(spec: &ReleaseSpec) -> Vec<Problem> {
    let mut out = api::validate(spec);
    out.extend(plan::problems(spec).iter().map(|e| e.problem(spec)));
    out
}

/// What the cluster says against the spec: the controller's own preflight
/// ([`preflight::cluster_problems`]), so `plan` and the `Stalled` condition use the same words.
pub fn cluster_problems(spec: &ReleaseSpec, view: &ClusterView) -> Vec<Problem> {
    preflight::cluster_problems(spec, view)
        .into_iter()
        .map(|r| r.problem)
        .collect()
}

/// The least time a step of `analysis` with bake `bake` can take: its bake, or
/// longer when `minPasses` asks for more measurements than fit in it (the first
/// is taken one interval into the bake).
pub fn step_minimum(analysis: &Analysis, bake: Duration) -> Duration {
    if analysis.metrics.is_empty() {
        return bake;
    }
    let passes = u32::try_from(analysis.min_passes(bake)).unwrap_or(1);
    bake.max(analysis.interval().saturating_mul(passes))
}

/// The schedule of `spec`, or every problem that stops it from having one.
pub fn schedule(spec: &ReleaseSpec) -> Result<Schedule, Vec<Problem>> {
    let problems = spec_problems(spec);
    if !problems.is_empty() {
        return Err(problems);
    }
    let plan = plan::plan(spec).map_err(|e| vec![e.problem(spec)])?;
    let services: Vec<ServiceSchedule> = spec
        .services
        .iter()
        .map(|svc| {
            let analysis = spec.analysis_of(svc);
            let steps: Vec<(i32, Duration)> = match svc.kind() {
                // A Job runs as long as it runs: nothing to count in advance.
                MemberKind::Job(_) => Vec::new(),
                // A flag is set at once and bakes like one step at 100%.
                // Compare metrics are not measured at 100 %, so their passes are not waited for there.
                MemberKind::Flag(f) => vec![(
                    100,
                    step_minimum(&analysis::measured_at(&analysis, 100), f.bake()),
                )],
                MemberKind::Deployment { .. } => spec
                    .steps_of(svc)
                    .iter()
                    .map(|s| {
                        let measured = analysis::measured_at(&analysis, s.weight);
                        (s.weight, step_minimum(&measured, s.bake.into()))
                    })
                    .collect(),
            };
            let total = steps.iter().map(|(_, d)| *d).sum();
            ServiceSchedule {
                name: svc.name.clone(),
                steps,
                total,
            }
        })
        .collect();

    // Earliest finish of each service: its own time after the latest of its
    // dependencies. The waves are topological, so dependencies come first.
    let own: HashMap<&str, Duration> = services
        .iter()
        .map(|s| (s.name.as_str(), s.total))
        .collect();
    // Held services and their dependents are deferred at the start: they take no time.
    let deferred = plan::deferred_at_start(spec);
    let mut finish: HashMap<&str, (Duration, Option<&str>)> = HashMap::new();
    for wave in &plan.waves {
        for name in wave.services.iter().filter(|n| !deferred.contains(n)) {
            let deps = spec
                .service(name)
                .map(|s| s.depends_on.as_slice())
                .unwrap_or_default();
            // The latest-finishing dependency; on a tie the one listed first.
            let mut before: Option<(Duration, &str)> = None;
            for d in deps {
                if let Some((t, _)) = finish.get(d.as_str())
                    && before.is_none_or(|(best, _)| *t > best)
                {
                    before = Some((*t, d.as_str()));
                }
            }
            let start = before.map(|(t, _)| t).unwrap_or_default();
            finish.insert(name, (start + own[name.as_str()], before.map(|(_, d)| d)));
        }
    }
    // The last service of the longest chain; ties go to the earlier one in spec order.
    let mut last: Option<(&str, Duration)> = None;
    for s in &spec.services {
        if let Some((t, _)) = finish.get(s.name.as_str())
            && last.is_none_or(|(_, best)| *t > best)
        {
            last = Some((s.name.as_str(), *t));
        }
    }
    let verify = spec
        .verify
        .as_ref()
        .map(|v| step_minimum(&v.analysis, v.bake.into()));
    let minimum = last.map(|(_, t)| t).unwrap_or_default() + verify.unwrap_or_default();
    let mut critical_path = Vec::new();
    let mut cur = last.map(|(n, _)| n);
    while let Some(n) = cur {
        critical_path.push(n.to_owned());
        cur = finish.get(n).and_then(|(_, prev)| *prev);
    }
    critical_path.reverse();
    Ok(Schedule {
        plan,
        services,
        minimum,
        verify,
        critical_path,
    })
}

/// How `plan` relates to the cluster.
#[derive(Clone, Debug, PartialEq)]
pub enum ClusterCheck {
    /// Not checked, and why (`--offline`, no kubeconfig, unreachable).
    Skipped(String),
    /// Checked against `server` (and context), with what was found.
    Checked { server: String, facts: ClusterView },
}

/// One Release document to plan.
pub struct PlanInput<'a> {
    pub name: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub spec: &'a ReleaseSpec,
}

/// Whether `plan` read the ReleasePolicy that would apply.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicyRead {
    /// Read from the cluster (resolved as the controller resolves it).
    Read(Box<PolicyObservation>),
    /// Not read, and why (`--offline`, no cluster, no permission).
    NotRead(String),
}

/// What the go/no-go part of `plan` depends on besides the file: the policy and the time.
#[derive(Clone, Debug, PartialEq)]
pub struct GoNoGo {
    pub policy: PolicyRead,
    /// The earliest start is counted from here.
    pub now: Timestamp,
}

/// The text of `plan` for one Release, and whether it is valid (spec and cluster),
/// without a policy read, at the current time.
pub fn render_plan(input: &PlanInput<'_>, check: &ClusterCheck, style: Style) -> (String, bool) {
    let go = GoNoGo {
        policy: PolicyRead::NotRead("not asked".into()),
        now: Timestamp::now(),
    };
    render_plan_with(input, check, &go, style)
}

/// The policy in force for `spec` under what `plan` read, and the problem a missing one is.
fn applied_policy(spec: &ReleaseSpec, read: &PolicyRead) -> (Option<AppliedPolicy>, Vec<Problem>) {
    let observed = match read {
        PolicyRead::NotRead(_) => &PolicyObservation::None,
        PolicyRead::Read(o) => &**o,
    };
    match observed {
        PolicyObservation::Missing { name, named_by } => (
            None,
            vec![Problem {
                field: if named_by == "spec.policy" {
                    "spec.policy".to_owned()
                } else {
                    "metadata.namespace".to_owned()
                },
                message: format!(
                    "ReleasePolicy {name} (named by {named_by}) does not exist, so the controller would hold this Release Pending (PolicyNotFound); create the policy or name another"
                ),
            }],
        ),
        PolicyObservation::Unreadable { name, error } => (
            None,
            vec![Problem {
                field: format!("ReleasePolicy {name}"),
                message: format!(
                    "cannot be read ({error}), so the controller would hold this Release Pending (InvalidPolicy); correct that field"
                ),
            }],
        ),
        obs => (Some(policy::applied(spec, obs)), Vec::new()),
    }
}

/// The text of `plan` for one Release, and whether it is valid (spec, cluster and policy).
pub fn render_plan_with(
    input: &PlanInput<'_>,
    check: &ClusterCheck,
    go: &GoNoGo,
    style: Style,
) -> (String, bool) {
    let mut out = String::new();
    let (applied, policy_problems) = applied_policy(input.spec, &go.policy);
    // The train as the profile completes it: its steps and analysis limits.
    let completed = {
        let mut r = Release::new(input.name.unwrap_or("release"), input.spec.clone());
        r.metadata.namespace = input.namespace.map(str::to_owned);
        r
    };
    let effective = gonogo::effective_spec(&completed, applied.as_ref());
    let sched = schedule(input.spec).map(|s| schedule(&effective).unwrap_or(s));
    let window = window_check(input.spec, &go.policy, go.now);
    let cluster = match (&sched, check) {
        (Ok(_), ClusterCheck::Checked { facts, .. }) => cluster_problems(input.spec, facts),
        _ => Vec::new(),
    };
    // The name is not part of the spec, so `schedule` cannot see it.
    let mut problems: Vec<Problem> = input
        .name
        .map(|n| api::validate_name(n, input.spec))
        .unwrap_or_default();
    problems.extend(match &sched {
        Err(p) => p.clone(),
        Ok(_) => cluster.clone(),
    });
    problems.extend(policy_problems);
    // The owners' view needs a train that can be ordered.
    let owned = sched.as_ref().ok().map(|_| owners(input.spec, &go.policy));
    problems.extend(owned.as_ref().and_then(refused));
    if let Err(p) = &window {
        problems.push(p.clone());
    }
    let valid = problems.is_empty();
    // The verdict above is the file's own; what is printed below comes from
    // escaped copies, since escaping can change what a check sees (a length, a blank).
    let spec = untrusted::escaped(input.spec);
    let spec = spec.as_ref();
    let title = match (input.name.map(untrusted::escape), input.namespace) {
        (Some(n), Some(ns)) => format!("Release {n} (namespace {})", untrusted::escape(ns)),
        (Some(n), None) => format!("Release {n}"),
        (None, _) => "Release (unnamed)".to_owned(),
    };
    let verdict = if valid {
        style.green("valid")
    } else {
        style.red(&format!(
            "INVALID, {} problem{}",
            problems.len(),
            plural(problems.len())
        ))
    };
    let _ = writeln!(out, "{}: {verdict}", style.bold(&title));
    let owner = if input.spec.owner.trim().is_empty() {
        "(none)"
    } else {
        spec.owner.as_str()
    };
    let _ = writeln!(out, "  owner    {owner}");
    if let Some(summary) = &spec.summary {
        let _ = writeln!(out, "  summary  {summary}");
    }

    if let Ok(s) = &sched {
        out.push('\n');
        render_schedule(
            &mut out,
            &untrusted::escape(input.name.unwrap_or("NAME")),
            &untrusted::escaped(&effective),
            &untrusted::escaped(s),
            style,
        );
        out.push('\n');
        if let Some(o) = &owned {
            render_owners(&mut out, o, style);
            out.push('\n');
        }
        render_gonogo(
            &mut out,
            input,
            &effective,
            applied.as_ref(),
            &go.policy,
            window.as_ref().ok(),
            style,
        );
    }

    if !problems.is_empty() {
        out.push('\n');
        let _ = writeln!(out, "{}", style.bold("Problems:"));
        for p in &problems {
            let _ = writeln!(
                out,
                "  {} {}: {}",
                style.red("✖"),
                style.bold(&untrusted::escape(&p.field)),
                untrusted::escape(&p.message)
            );
        }
        let why = if sched.is_err() {
            "The API server or the controller refuses this Release with the same words; fix the fields above and run plan again."
        } else {
            "The controller would stall this Release (condition Stalled) before changing anything; fix the fields above or the cluster and run plan again."
        };
        let _ = writeln!(out, "{why}");
    }

    if sched.is_ok() {
        // Compare-only services are a property of the file; the weights need the cluster.
        let mut warnings = plan::compare_only_warnings(&untrusted::escaped(&effective));
        if let ClusterCheck::Checked { facts, .. } = check {
            warnings.extend(weight_warnings(spec, facts));
        }
        if !warnings.is_empty() {
            out.push('\n');
            let _ = writeln!(out, "{}", style.bold("Warnings:"));
            for (field, message) in &warnings {
                let _ = writeln!(
                    out,
                    "  {} {}: {message}",
                    style.yellow("!"),
                    style.bold(field)
                );
            }
        }
    }

    out.push('\n');
    match check {
        ClusterCheck::Skipped(why) => {
            let _ = writeln!(
                out,
                "{}",
                style.dim(&format!(
                    "Cluster: not checked ({}).",
                    untrusted::escape(why)
                ))
            );
        }
        ClusterCheck::Checked { server, facts } => {
            let named: std::collections::BTreeSet<&str> = spec
                .services
                .iter()
                .map(|s| s.deployment.as_str())
                .collect();
            let found: std::collections::BTreeSet<&str> = spec
                .services
                .iter()
                .filter(|s| {
                    facts
                        .services
                        .get(&s.name)
                        .is_some_and(|v| v.containers.is_some())
                })
                .map(|s| s.deployment.as_str())
                .collect();
            let _ = writeln!(
                out,
                "Cluster: checked against {}, namespace {}: {} of {} Deployment{} found{}.",
                untrusted::escape(server),
                untrusted::escape(&facts.namespace),
                found.len(),
                named.len(),
                plural(named.len()),
                if cluster.is_empty() && sched.is_ok() {
                    ", with the containers the change names"
                } else {
                    ""
                },
            );
        }
    }
    (out, valid)
}

/// Replica-ratio steps that the Deployment in the cluster is too small to
/// carry within [`replica::TOLERANCE`] points, as (field, what and the fix).
pub fn weight_warnings(spec: &ReleaseSpec, facts: &ClusterView) -> Vec<(String, String)> {
    spec.services
        .iter()
        .enumerate()
        .filter(|(_, svc)| svc.traffic.as_ref().and_then(|t| t.gateway_api.as_ref()).is_none())
        .filter_map(|(i, svc)| {
            let deployment = svc.deployment()?;
            let n = facts.services.get(&svc.name)?.replicas?;
            let weights: Vec<i32> = spec.steps_of(svc).iter().map(|s| s.weight).collect();
            let steps: Vec<String> = replica::overshoots(n, &weights)
                .iter()
                .map(|o| {
                    format!(
                        "step {}% runs {} canary pod{} beside them, {}% of the pods; \
                         {} replicas would make it {}%",
                        o.weight,
                        o.canary_pods,
                        plural(o.canary_pods as usize),
                        o.effective,
                        o.replicas_needed,
                        replica::effective_weight(o.replicas_needed, o.weight)
                    )
                })
                .collect();
            (!steps.is_empty()).then(|| {
                (
                    format!("spec.services[{i}]"),
                    format!(
                        "Deployment {deployment:?} has {n} replica{}: {} (the canary's share of the pods is its share of the traffic)",
                        plural(n as usize),
                        steps.join("; ")
                    ),
                )
            })
        })
        .collect()
}

fn render_schedule(
    out: &mut String,
    release: &str,
    spec: &ReleaseSpec,
    s: &Schedule,
    style: Style,
) {
    let _ = writeln!(
        out,
        "{}",
        style.bold("Waves (the services of one wave move in parallel):")
    );
    for (i, wave) in s.plan.waves.iter().enumerate() {
        let after: Vec<&str> = wave
            .services
            .iter()
            .filter_map(|n| spec.service(n))
            .flat_map(|svc| svc.depends_on.iter().map(String::as_str))
            .fold(Vec::new(), |mut acc, d| {
                if !acc.contains(&d) {
                    acc.push(d);
                }
                acc
            });
        let tail = if after.is_empty() {
            String::new()
        } else {
            style.dim(&format!("   after {}", after.join(", ")))
        };
        let _ = writeln!(out, "  {}. {}{tail}", i + 1, wave.services.join(", "));
    }
    render_held(out, spec, style);

    out.push('\n');
    let _ = writeln!(
        out,
        "{}",
        style.bold("Steps (weight and least time per step):")
    );
    let width = s.services.iter().map(|x| x.name.len()).max().unwrap_or(0);
    for sched in &s.services {
        let Some(svc) = spec.service(&sched.name) else {
            continue;
        };
        let mut about = Vec::new();
        if let Some(o) = &svc.owner {
            about.push(o.clone());
        }
        match svc.kind() {
            MemberKind::Deployment { change, .. } => {
                if let Some(c) = change.class {
                    about.push(
                        serde_json::to_value(c)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default(),
                    );
                }
                if change.dark == Some(true) {
                    about.push("dark".to_owned());
                }
                about.push(
                    match svc.traffic.as_ref().and_then(|t| t.gateway_api.as_ref()) {
                        Some(g) => format!("Gateway API route {}", g.http_route),
                        None => "replica ratio".to_owned(),
                    },
                );
            }
            _ => about.push(members::kind_word(svc).to_owned()),
        }
        let name = format!("{:width$}", sched.name);
        let _ = writeln!(
            out,
            "  {}  {}",
            style.bold(&name),
            style.dim(&about.join(" · "))
        );
        if let MemberKind::Deployment { change, .. } = svc.kind()
            && change.dark == Some(true)
        {
            let _ = writeln!(
                out,
                "    dark: deployed behind a flag this release does not switch (deployed, not released)"
            );
        }
        let analysis = spec.analysis_of(svc);
        match svc.kind() {
            MemberKind::Job(job) => {
                for line in members::job_lines(release, svc, job) {
                    let _ = writeln!(out, "    {line}");
                }
                // A Job is judged by its exit; there is nothing to measure.
                continue;
            }
            MemberKind::Flag(flag) => {
                let bake = flag.bake();
                let least = sched.total;
                let _ = writeln!(
                    out,
                    "    sets ConfigMap {}: {}; bakes {}{}   = {}",
                    flag.config_map.as_deref().unwrap_or_default(),
                    members::flag_keys(flag),
                    text::duration(bake),
                    if least > bake { "*" } else { "" },
                    text::duration(least)
                );
                let _ = writeln!(
                    out,
                    "    on a rollback its keys go back to their values before the release first, at once (keys it added are removed)"
                );
                if least > bake {
                    let _ = writeln!(
                        out,
                        "    * longer than the bake: each metric needs {} passing measurements, one per {}",
                        analysis.min_passes.unwrap_or(1),
                        text::duration(analysis.interval())
                    );
                }
            }
            MemberKind::Deployment { .. } => {
                let bakes = spec.steps_of(svc);
                let mut stretched = false;
                let steps: Vec<String> = sched
                    .steps
                    .iter()
                    .zip(&bakes)
                    .map(|((w, d), step)| {
                        let longer = *d > Duration::from(step.bake);
                        stretched |= longer;
                        format!(
                            "{w}% {}{}",
                            text::duration(*d),
                            if longer { "*" } else { "" }
                        )
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "    {}   = {}",
                    steps.join(" → "),
                    text::duration(sched.total)
                );
                if stretched {
                    let _ = writeln!(
                        out,
                        "    * longer than the bake: each metric needs {} passing measurements, one per {}",
                        analysis.min_passes.unwrap_or(1),
                        text::duration(analysis.interval())
                    );
                }
            }
        }
        if analysis.metrics.is_empty() {
            let reason = analysis
                .skip_analysis
                .as_ref()
                .map(|s| s.reason.as_str())
                .unwrap_or("no reason given");
            let _ = writeln!(
                out,
                "    {}",
                style.yellow(&format!(
                    "not measured (skipAnalysis: {reason}): each step passes on its bake time alone"
                ))
            );
        } else {
            let metrics: Vec<String> = analysis
                .metrics
                .iter()
                .map(|m| format!("{} {}", m.name, super::view::bound(m)))
                .collect();
            let _ = writeln!(
                out,
                "    measured every {}: {}",
                text::duration(analysis.interval()),
                metrics.join(" · ")
            );
            if analysis.metrics.iter().any(|m| m.compare.is_some()) {
                let _ = writeln!(
                    out,
                    "    compared: each query runs for the canary ({{{{track}}}} = {}) and for the stable pods ({}); not measured at 100%, where the stable pods take no traffic",
                    analysis::Track::Canary.matcher(),
                    analysis::Track::Stable.matcher()
                );
            }
            let _ = writeln!(
                out,
                "    breach after {} failed measurement{} in a step; hold after {} inconclusive or {} errors",
                analysis.failure_limit() + 1,
                plural((analysis.failure_limit() + 1) as usize),
                analysis.inconclusive_limit() + 1,
                analysis.error_limit() + 1,
            );
        }
    }

    out.push('\n');
    let _ = writeln!(
        out,
        "{}",
        style.bold("Rollback order (after every canary in flight goes to 0%):")
    );
    let _ = writeln!(
        out,
        "  {}",
        rollback_order(release, spec, &s.plan).join(" → ")
    );

    if let Some(v) = &spec.verify {
        out.push('\n');
        let _ = writeln!(
            out,
            "{}",
            style.bold("Verification (once every service is promoted):")
        );
        let least = s.verify.unwrap_or_else(|| v.bake.into());
        let bake = Duration::from(v.bake);
        let metrics: Vec<String> = v
            .analysis
            .metrics
            .iter()
            .map(|m| format!("{} {}", m.name, super::view::bound(m)))
            .collect();
        let _ = writeln!(
            out,
            "  the whole train is watched {}{}, measured every {}: {}",
            text::duration(bake),
            if least > bake {
                format!(" (at least {}: minPasses)", text::duration(least))
            } else {
                String::new()
            },
            text::duration(v.analysis.interval()),
            metrics.join(" · ")
        );
        let _ = writeln!(
            out,
            "  phase Verifying; breach after {} failed measurement{}: the entire train is reversed in the rollback order above; then Succeeded",
            v.analysis.failure_limit() + 1,
            plural((v.analysis.failure_limit() + 1) as usize),
        );
    }

    out.push('\n');
    let path: Vec<String> = s
        .critical_path
        .iter()
        .map(|n| {
            if spec
                .service(n)
                .is_some_and(|svc| matches!(svc.kind(), MemberKind::Job(_)))
            {
                return format!("{n} (Job)");
            }
            let t = s
                .services
                .iter()
                .find(|x| &x.name == n)
                .map(|x| x.total)
                .unwrap_or_default();
            format!("{n} {}", text::duration(t))
        })
        .collect();
    let jobs = if spec
        .services
        .iter()
        .any(|svc| matches!(svc.kind(), MemberKind::Job(_)))
    {
        ", migration Jobs their run time"
    } else {
        ""
    };
    let verify = s
        .verify
        .map(|v| format!(" → verification {}", text::duration(v)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "This train takes at least {}: {}{verify} (bakes along the longest dependency chain; rollouts and promotions add to it{jobs}).",
        style.bold(&text::duration(s.minimum)),
        path.join(" → ")
    );
}

/// The rollback order as the controller walks it: flags first, at once (turning
/// a feature off is the fastest mitigation), then the plan's order, dependents
/// before their dependencies; a migration's rollback Job in its place there, an
/// irreversible one staying applied.
pub fn rollback_order(release: &str, spec: &ReleaseSpec, plan: &Plan) -> Vec<String> {
    // Deferred at the start, they never change, so there is nothing to reverse.
    let deferred = plan::deferred_at_start(spec);
    let ordered = || {
        plan.rollback_order
            .iter()
            .filter(|n| !deferred.contains(n))
            .filter_map(|n| spec.service(n))
    };
    members::in_rollback_order(release, ordered())
}

/// Held services: deferred at the start with everything that depends on them.
fn render_held(out: &mut String, spec: &ReleaseSpec, style: Style) {
    for svc in &spec.services {
        let Some(hold) = &svc.hold else { continue };
        let dependents = plan::dependents(spec, &svc.name);
        let with = if dependents.is_empty() {
            String::new()
        } else {
            format!(" with what depends on it: {}", dependents.join(", "))
        };
        let _ = writeln!(
            out,
            "  {}",
            style.yellow(&format!(
                "held: {} ({}): deferred at the start{with}; the rest ships",
                svc.name, hold.reason
            ))
        );
    }
}

/// The owners' view of the train and what the controller would make of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Owners {
    pub teams: plan::teams::Teams,
    /// What the controller would set in `status.crossTeam` (none: no warning).
    pub cross: Option<crate::api::CrossTeam>,
    pub limit: i32,
    /// Where the limit comes from, in words.
    pub source: String,
    /// The policy that refuses a train over its limit (`limits.crossTeam: refuse`).
    pub refused_by: Option<String>,
}

impl Owners {
    /// More cross-team edges than the limit.
    pub fn over(&self) -> bool {
        self.cross
            .as_ref()
            .is_some_and(|c| c.edges.len() > usize::try_from(c.limit).unwrap_or(0))
    }
}

/// The owners' view of `spec` under the policy `plan` read: the core's
/// `plan::teams`, with the policy's limit, else the default.
pub fn owners(spec: &ReleaseSpec, read: &PolicyRead) -> Owners {
    let found = match read {
        PolicyRead::Read(o) => match &**o {
            PolicyObservation::Found { name, spec } => Some((name, spec.limits.as_ref())),
            _ => None,
        },
        PolicyRead::NotRead(_) => None,
    };
    let set = found.and_then(|(name, l)| Some((name, l?.cross_team_edges?)));
    let (limit, source) = match (set, read) {
        (Some((name, limit)), _) => (
            limit,
            format!("limits.crossTeamEdges of ReleasePolicy {name}"),
        ),
        (None, PolicyRead::Read(_)) => (
            plan::teams::DEFAULT_CROSS_TEAM_EDGES,
            "the default; the operator's --cross-team-edges may set another".to_owned(),
        ),
        (None, PolicyRead::NotRead(_)) => (
            plan::teams::DEFAULT_CROSS_TEAM_EDGES,
            "the default; a ReleasePolicy's limits.crossTeamEdges or the operator's --cross-team-edges may set another".to_owned(),
        ),
    };
    let refused_by = found
        .filter(|(_, l)| l.and_then(|l| l.cross_team) == Some(CrossTeamAction::Refuse))
        .map(|(name, _)| name.clone());
    Owners {
        teams: plan::teams::teams(spec),
        cross: plan::teams::cross_team(spec, limit),
        limit,
        source,
        refused_by,
    }
}

/// The problem a policy that refuses a train over its limit makes of it, in
/// the words of the controller's `Stalled` (`CrossTeamLimit`) condition.
fn refused(o: &Owners) -> Option<Problem> {
    let name = o.refused_by.as_ref().filter(|_| o.over())?;
    let (_, message) = crate::engine::cross_team_warning(o.cross.as_ref()?);
    Some(Problem {
        field: "spec.services[].dependsOn".to_owned(),
        message: format!("{message}; or raise limits.crossTeamEdges of ReleasePolicy {name}"),
    })
}

fn render_owners(out: &mut String, o: &Owners, style: Style) {
    let e = |s: &str| untrusted::escape(s).into_owned();
    let n = o.teams.edges.len();
    if n == 0 && o.cross.is_none() {
        let _ = writeln!(
            out,
            "{} no dependsOn edge between services of different owners.",
            style.bold("Owners:")
        );
        return;
    }
    let _ = writeln!(
        out,
        "{}",
        style.bold("Owners (dependsOn edges between services of different owners):")
    );
    let verdict = if n == 0 {
        "none".to_owned()
    } else if o.over() {
        style.yellow(&format!("{n}, more than the limit {}", o.limit))
    } else {
        format!("{n}, within the limit {}", o.limit)
    };
    let _ = writeln!(out, "  cross-team edges  {verdict} ({})", e(&o.source));
    for edge in &o.teams.edges {
        let _ = writeln!(out, "    {}", e(&edge.to_string()));
    }
    let Some(cross) = &o.cross else {
        return;
    };
    if !cross.unrelated.is_empty() {
        let _ = writeln!(
            out,
            "  unrelated changes {}",
            style.yellow("no dependency path between these groups, and their owners differ:")
        );
        for group in &cross.unrelated {
            let _ = writeln!(out, "    {}", e(group));
        }
    }
    let _ = writeln!(
        out,
        "  proposed split    each group a Release of its own, in this order:"
    );
    for line in members::split_lines(&cross.split, style) {
        let _ = writeln!(out, "    {line}");
    }
    let (reason, _) = crate::engine::cross_team_warning(cross);
    let then = match (&o.refused_by, o.over()) {
        (Some(name), true) => style.red(&format!(
            "Stalled (CrossTeamLimit) before anything moves: ReleasePolicy {} refuses it (limits.crossTeam: refuse)",
            e(name)
        )),
        _ => format!(
            "it runs, with condition Warning ({reason}) and a Warning Event proposing this split"
        ),
    };
    let _ = writeln!(out, "  the controller    {then}");
}

/// When the release can start, e.g. `Mon 09:00 Europe/Berlin; Friday after 12:00
/// needs an override; sooner only with ...`, from the window checked at `now`.
pub fn earliest_start(c: &policy::window::WindowCheck, justified: bool, name: &str) -> String {
    if c.open {
        return "now (the window is open)".to_owned();
    }
    let mut s = c
        .opens
        .clone()
        .unwrap_or_else(|| "not within a year".to_owned());
    if let Some(f) = &c.frozen {
        let _ = write!(s, "; {} needs an override", untrusted::escape(f));
    }
    let _ = write!(
        s,
        "; sooner only with spec.override.justification{} and an approved override (kubectl signalman approve {name} --window -m \"...\")",
        if justified { " (set)" } else { "" },
    );
    s
}

/// The window and freeze that apply, checked at `now`: the Release's own window
/// else the policy's, and the policy's freeze. `Ok(None)`: neither exists.
fn window_check(
    spec: &ReleaseSpec,
    read: &PolicyRead,
    now: Timestamp,
) -> Result<Option<policy::window::WindowCheck>, Problem> {
    let none = PolicyObservation::None;
    let policy = match read {
        PolicyRead::Read(o) => &**o,
        PolicyRead::NotRead(_) => &none,
    };
    policy::window::for_release(spec, policy, now)
}

/// Risk, policy, gates, the approvals the train waits for, the window and the earliest start.
#[allow(clippy::too_many_arguments)]
fn render_gonogo(
    out: &mut String,
    input: &PlanInput<'_>,
    effective: &ReleaseSpec,
    applied: Option<&AppliedPolicy>,
    read: &PolicyRead,
    window: Option<&Option<policy::window::WindowCheck>>,
    style: Style,
) {
    let spec = input.spec;
    let name = input.name.unwrap_or("NAME");
    let e = |s: &str| untrusted::escape(s).into_owned();
    let _ = writeln!(out, "{}", style.bold("Go/no-go:"));
    let (risk, reason) = policy::risk(spec);
    let reason = if reason.is_empty() {
        policy::risk_name(risk).to_owned()
    } else {
        e(&reason)
    };
    let _ = writeln!(out, "  risk            {reason}");

    let profile = applied.and_then(|a| a.profile.as_deref()).unwrap_or("none");
    let policy_line = match read {
        PolicyRead::NotRead(why) => format!(
            "no policy read ({}): the Release's own gates, window and steps; the cluster's ReleasePolicy may add steps, approvals and a window",
            e(why)
        ),
        PolicyRead::Read(o) => match &**o {
        PolicyObservation::None => {
            "none applies (none named and no ReleasePolicy default): the Release's own gates, window and steps".to_owned()
        }
        PolicyObservation::Missing { name, .. } => {
            format!("ReleasePolicy {} does not exist (see Problems)", e(name))
        }
        PolicyObservation::Unreadable { name, .. } => {
            format!("ReleasePolicy {} cannot be read (see Problems)", e(name))
        }
        PolicyObservation::Found { name, .. } => {
            let by = if let Some(p) = &spec.policy {
                format!("named by spec.policy {}", e(p))
            } else if name == api::DEFAULT_POLICY {
                "the default".to_owned()
            } else {
                format!("named by the namespace label {}", api::POLICY_LABEL)
            };
            format!("ReleasePolicy {} ({by}), profile {profile}", e(name))
        }
        },
    };
    let _ = writeln!(out, "  policy          {policy_line}");

    let mut gates = vec![format!("{} (built in)", policy::DEPLOYMENTS_READY)];
    for g in &spec.gates {
        gates.push(match (&g.query, g.approval) {
            (Some(_), _) => format!("{} (query {})", e(&g.name), text::threshold(g.min, g.max)),
            (None, Some(true)) => format!("{} (approval)", e(&g.name)),
            _ => e(&g.name),
        });
    }
    let _ = writeln!(
        out,
        "  gates           before each wave: {}",
        gates.join(", ")
    );
    for svc in spec.services.iter().filter(|s| !s.gates.is_empty()) {
        let own: Vec<String> = svc
            .gates
            .iter()
            .map(|g| match (&g.query, g.approval) {
                (Some(_), _) => format!("{} (query {})", e(&g.name), text::threshold(g.min, g.max)),
                (None, Some(true)) => format!("{} (approval: --gate {})", e(&g.name), e(&g.name)),
                _ => e(&g.name),
            })
            .collect();
        let _ = writeln!(
            out,
            "  service gates   {}: {} when its turn comes; while one does not hold it waits and the rest moves on; if one still does not hold when nothing else can move, it and what depends on it are deferred",
            e(&svc.name),
            own.join(", ")
        );
    }

    let approvals = gonogo::approvals(applied);
    let mut waits: Vec<String> = Vec::new();
    let before_start = policy::approval_gates(spec, Some(&approvals));
    if !before_start.is_empty() {
        waits.push(format!(
            "before wave 1: {}",
            before_start
                .iter()
                .map(|g| format!("--gate {}", e(g)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for svc in &effective.services {
        let steps = effective.steps_of(svc);
        // The profile's approval before the last step is written into the effective steps.
        for (i, step) in steps.iter().enumerate() {
            if step.approval == Some(true) {
                waits.push(format!(
                    "{}: after step {} ({}%): --step {}/{}",
                    e(&svc.name),
                    i + 1,
                    step.weight,
                    e(&svc.name),
                    i + 1
                ));
            }
        }
    }
    if waits.is_empty() {
        let _ = writeln!(out, "  approvals       none");
    } else {
        for (i, w) in waits.iter().enumerate() {
            let head = if i == 0 {
                "approvals      "
            } else {
                "               "
            };
            let _ = writeln!(out, "  {head} {w}");
        }
        let _ = writeln!(
            out,
            "                  {}",
            style.dim(&format!(
                "each with: kubectl signalman approve {} ... -m \"...\"",
                e(name)
            ))
        );
    }
    let mut who = Vec::new();
    if !approvals.approvers.is_empty() {
        who.push(format!("only {} count", e(&approvals.approvers.join(", "))));
    }
    if approvals.four_eyes == Some(true) {
        who.push(format!(
            "four eyes: not the Release's creator (annotation {})",
            api::CREATED_BY_ANNOTATION
        ));
    }
    if !who.is_empty() {
        let _ = writeln!(out, "  approvers       {}", who.join("; "));
    }
    let timeout = spec
        .gate_timeout
        .or(applied.and_then(|a| a.gate_timeout))
        .map(Duration::from);
    let _ = writeln!(
        out,
        "  gate timeout    {}",
        match timeout {
            Some(t) => format!(
                "{}: before wave 1 it ends Failed with nothing changed, before a later wave it rolls back",
                text::duration(t)
            ),
            None => "none: it waits for its gates for ever".to_owned(),
        }
    );

    match window {
        None => {}
        Some(None) => {
            let _ = writeln!(out, "  window          none: it may start at any time");
            let _ = writeln!(out, "  earliest start  now");
        }
        Some(Some(c)) => {
            let _ = writeln!(out, "  window          {}", e(&c.describe));
            let start = earliest_start(c, spec.window_override.is_some(), &e(name));
            let _ = writeln!(out, "  earliest start  {start}");
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

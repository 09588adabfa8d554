//! `kubectl signalman plan`: what a Release would do before anyone applies it.
//!
//! The same checks the controller makes before it changes anything (static
//! validation, then the dependency graph, then the cluster when we can reach
//! it), and the schedule a release manager wants up front: waves, each
//! service's steps, the rollback order and the least time the train can take.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::api::{self, Analysis, Plan, Problem, ReleaseSpec};
use crate::plan;
use crate::preflight::{self, ClusterView};
use crate::text;
use crate::traffic::replica;

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
    /// The least time the whole train takes: the longest chain of dependent services.
    pub minimum: Duration,
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
            let steps: Vec<(i32, Duration)> = spec
                .steps_of(svc)
                .iter()
                .map(|s| (s.weight, step_minimum(&analysis, s.bake.into())))
                .collect();
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
    let mut finish: HashMap<&str, (Duration, Option<&str>)> = HashMap::new();
    for wave in &plan.waves {
        for name in &wave.services {
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
    let minimum = last.map(|(_, t)| t).unwrap_or_default();
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

/// The text of `plan` for one Release, and whether it is valid (spec and cluster).
pub fn render_plan(input: &PlanInput<'_>, check: &ClusterCheck, style: Style) -> (String, bool) {
    let mut out = String::new();
    let sched = schedule(input.spec);
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
        render_schedule(&mut out, spec, &untrusted::escaped(s), style);
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

    if let (Ok(_), ClusterCheck::Checked { facts, .. }) = (&sched, check) {
        let warnings = weight_warnings(spec, facts);
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
                        "Deployment {:?} has {n} replica{}: {} (the canary's share of the pods is its share of the traffic)",
                        svc.deployment,
                        plural(n as usize),
                        steps.join("; ")
                    ),
                )
            })
        })
        .collect()
}

fn render_schedule(out: &mut String, spec: &ReleaseSpec, s: &Schedule, style: Style) {
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
        if let Some(c) = svc.change.class {
            about.push(
                serde_json::to_value(c)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            );
        }
        about.push(
            match svc.traffic.as_ref().and_then(|t| t.gateway_api.as_ref()) {
                Some(g) => format!("Gateway API route {}", g.http_route),
                None => "replica ratio".to_owned(),
            },
        );
        let name = format!("{:width$}", sched.name);
        let _ = writeln!(
            out,
            "  {}  {}",
            style.bold(&name),
            style.dim(&about.join(" · "))
        );
        let analysis = spec.analysis_of(svc);
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
                .map(|m| format!("{} {}", m.name, text::threshold(m.min, m.max)))
                .collect();
            let _ = writeln!(
                out,
                "    measured every {}: {}",
                text::duration(analysis.interval()),
                metrics.join(" · ")
            );
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
    let _ = writeln!(out, "  {}", s.plan.rollback_order.join(" → "));

    out.push('\n');
    let path: Vec<String> = s
        .critical_path
        .iter()
        .map(|n| {
            let t = s
                .services
                .iter()
                .find(|x| &x.name == n)
                .map(|x| x.total)
                .unwrap_or_default();
            format!("{n} {}", text::duration(t))
        })
        .collect();
    let _ = writeln!(
        out,
        "This train takes at least {}: {} (bakes along the longest dependency chain; rollouts and promotions add to it).",
        style.bold(&text::duration(s.minimum)),
        path.join(" → ")
    );
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

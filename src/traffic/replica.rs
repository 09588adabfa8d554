//! Replica ratio: the user's Service selects stable and canary pods alike, so
//! the canary's share of the traffic is its share of the ready pods.
//!
//! - Below 100 % the stable Deployment is left alone and the canary runs
//!   `ceil(stable * w / (100 - w))` pods beside it, never less than the weight
//!   asks; small Deployments overshoot (2 stable pods and a 10 % step make 1
//!   canary pod: 33 %), which `kubectl signalman plan` warns about and status
//!   reports as the effective weight.
//! - At 100 % the canary runs as many pods as the stable Deployment, and once
//!   they are available the stable Deployment is scaled to zero, so the new
//!   version really serves all the traffic during the last bake.
//! - The stable replica count is handed back (the user's count, remembered on
//!   the canary) when the stable Deployment is promoted, or before the canary
//!   is withdrawn; the canary's pods leave only once the stable pods are
//!   available again, so the service is never left without pods.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::ResourceExt;

use super::{
    InEffect, Owner, Provider, ServiceObjects, Write, annotated_weight, available, canary_write,
    replicas_write, rolled_out, share, spec_replicas,
};
use crate::engine::CanaryObservation;

/// Annotation on the canary Deployment: the stable Deployment's replica count
/// as the user (or an autoscaler) had it, so it can be handed back after the
/// stable Deployment was scaled to zero for the last step.
pub const STABLE_REPLICAS_ANNOTATION: &str = "signalman.dev/stable-replicas";

pub struct ReplicaRatio;

/// Canary replicas that give the canary at least `weight` percent of the pods
/// next to `stable` stable replicas: ceil(stable * w / (100 - w)), at least one
/// while the weight is above 0. At 100 % the canary gets as many pods as the
/// stable Deployment had (the stable one then goes to zero).
pub fn canary_replicas(stable: i32, weight: i32) -> i32 {
    let stable = i64::from(stable.max(0));
    let w = i64::from(weight.clamp(0, 100));
    let n = match w {
        0 => 0,
        100 => stable,
        w => (stable * w + (100 - w) - 1) / (100 - w),
    };
    n.max(if w > 0 { 1 } else { 0 }) as i32
}

/// The share of pods (percent) the canary really has at `weight` next to
/// `stable` replicas, once every pod is available.
pub fn effective_weight(stable: i32, weight: i32) -> i32 {
    if weight >= 100 {
        return 100;
    }
    share(canary_replicas(stable, weight), stable)
}

/// Where a step's effective weight is off by more than [`TOLERANCE`] points:
/// the step, what it really is, and the smallest stable replica count that
/// brings it within the tolerance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overshoot {
    pub weight: i32,
    pub effective: i32,
    pub canary_pods: i32,
    pub replicas_needed: i32,
}

/// Percentage points a step may be off before `plan` warns.
pub const TOLERANCE: i32 = 5;

/// Every step of `weights` that `stable` replicas cannot carry within [`TOLERANCE`].
pub fn overshoots(stable: i32, weights: &[i32]) -> Vec<Overshoot> {
    weights
        .iter()
        .filter(|w| (1..100).contains(*w))
        .filter_map(|&weight| {
            let effective = effective_weight(stable, weight);
            ((effective - weight).abs() > TOLERANCE).then(|| Overshoot {
                weight,
                effective,
                canary_pods: canary_replicas(stable, weight),
                replicas_needed: (1..=10_000)
                    .find(|&n| (effective_weight(n, weight) - weight).abs() <= TOLERANCE)
                    .unwrap_or(10_000),
            })
        })
        .collect()
}

/// The stable Deployment's replica count as the user wants it: its live count,
/// unless Signalman scaled it to zero for the last step; then the count
/// remembered on the canary, else the one in the baseline.
fn user_replicas(objects: &ServiceObjects) -> i32 {
    let live = objects.stable.as_ref().map_or(0, spec_replicas);
    if live > 0 {
        return live;
    }
    remembered(objects).unwrap_or(live)
}

fn remembered(objects: &ServiceObjects) -> Option<i32> {
    objects
        .canary
        .as_ref()
        .and_then(|c| {
            c.annotations()
                .get(STABLE_REPLICAS_ANNOTATION)?
                .parse()
                .ok()
        })
        .or_else(|| objects.baseline.as_ref().map(|b| b.replicas))
        .filter(|n| *n > 0)
}

/// Signalman scaled the stable Deployment to zero (for the last step).
fn scaled_down(objects: &ServiceObjects) -> bool {
    objects
        .stable
        .as_ref()
        .is_some_and(|d| spec_replicas(d) == 0)
        && remembered(objects).is_some()
}

/// The stable Deployment exists but its pods cannot take the canary's
/// traffic yet (scaled down, or coming back). With no stable Deployment at
/// all there is nothing to wait for: taking traffic away works with whatever is left.
fn stable_coming_back(objects: &ServiceObjects) -> bool {
    objects
        .stable
        .as_ref()
        .is_some_and(|d| spec_replicas(d) == 0 || available(d) < spec_replicas(d))
}

/// Every stable pod is gone.
fn stable_gone(objects: &ServiceObjects) -> bool {
    objects.stable.as_ref().is_none_or(|d| {
        spec_replicas(d) == 0 && d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0) == 0
    })
}

impl ReplicaRatio {
    /// The canary's pod count at `weight` beside `n` stable replicas; while
    /// withdrawing from a scaled-down stable Deployment, the canary keeps its
    /// pods until the stable ones serve again.
    fn wanted_pods(objects: &ServiceObjects, weight: i32, n: i32) -> i32 {
        if weight == 0 && stable_coming_back(objects) {
            return objects.live_canary().map_or(0, spec_replicas);
        }
        canary_replicas(n, weight)
    }

    fn remember(write: &mut Write, n: i32) {
        if let Write::Apply { body, .. } = write {
            body["metadata"]["annotations"][STABLE_REPLICAS_ANNOTATION] = n.to_string().into();
        }
    }
}

impl Provider for ReplicaRatio {
    fn observe(&self, objects: &ServiceObjects) -> InEffect {
        let Some(canary) = objects.canary.as_ref() else {
            return InEffect::default();
        };
        let weight = annotated_weight(canary).unwrap_or(0);
        let n = user_replicas(objects);
        let canary_ok = canary.metadata.deletion_timestamp.is_none()
            && spec_replicas(canary) == canary_replicas(n, weight)
            && rolled_out(canary);
        let stable_ok = if weight >= 100 {
            stable_gone(objects)
        } else {
            !scaled_down(objects)
        };
        InEffect {
            canary: Some(CanaryObservation {
                weight,
                ready: canary_ok && stable_ok,
                effective: share(
                    available(canary),
                    objects.stable.as_ref().map_or(0, available),
                ),
            }),
            route: None,
        }
    }

    fn set_weight(
        &self,
        objects: &ServiceObjects,
        weight: i32,
        new_template: &PodTemplateSpec,
        owner: &Owner,
    ) -> Result<Vec<Write>, String> {
        let n = user_replicas(objects);
        let stable = objects.stable.as_ref();
        let mut writes = Vec::new();
        // Below 100 % the stable pods serve beside the canary: bring them back first.
        if weight < 100
            && scaled_down(objects)
            && let Some(d) = stable
        {
            writes.push(replicas_write(&d.name_any(), n));
        }
        let pods = Self::wanted_pods(objects, weight, n);
        // The remembered count goes stale when an autoscaler moves the stable
        // Deployment at an unchanged weight and size: rewrite the canary then too.
        let memory_stale = !scaled_down(objects)
            && objects.live_canary().is_some_and(|c| {
                c.annotations().get(STABLE_REPLICAS_ANNOTATION) != Some(&n.to_string())
            });
        let canary = match canary_write(objects, weight, pods, new_template, owner)? {
            None if memory_stale => objects
                .live_canary()
                .map(|live| Write::apply_object(&super::rescaled(live, weight, pods, owner))),
            write => write,
        };
        if let Some(mut w) = canary {
            Self::remember(&mut w, n);
            writes.push(w);
        }
        // At 100 % the stable pods leave once the canary carries every request.
        let canary_carries_all = objects.live_canary().is_some_and(|c| {
            annotated_weight(c) == Some(100) && spec_replicas(c) == n && rolled_out(c)
        });
        if weight == 100
            && canary_carries_all
            && let Some(d) = stable.filter(|d| spec_replicas(d) > 0)
        {
            writes.push(replicas_write(&d.name_any(), 0));
        }
        Ok(writes)
    }

    fn promote(&self, objects: &ServiceObjects, template: Vec<Write>) -> Vec<Write> {
        let mut writes = template;
        if scaled_down(objects)
            && let Some(d) = &objects.stable
        {
            // The new version's pods start as the replica count comes back.
            writes.push(replicas_write(&d.name_any(), user_replicas(objects)));
        }
        writes
    }

    fn remove(&self, objects: &ServiceObjects) -> Vec<Write> {
        let Some(canary) = objects.live_canary() else {
            return Vec::new();
        };
        if scaled_down(objects)
            && let Some(d) = &objects.stable
        {
            return vec![replicas_write(&d.name_any(), user_replicas(objects))];
        }
        // Canary pods leave only when the stable ones can take their traffic.
        if spec_replicas(canary) > 0 && stable_coming_back(objects) {
            return Vec::new();
        }
        vec![Write::delete::<Deployment>(&canary.name_any())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::testing::{execute, owner, stable};
    use crate::traffic::{Baseline, canary_deployment_name};

    fn objects(stable_replicas: i32) -> ServiceObjects {
        ServiceObjects {
            stable: Some(stable(stable_replicas)),
            baseline: Some(Baseline {
                template: PodTemplateSpec::default(),
                replicas: stable_replicas,
                route_rules: None,
            }),
            ..Default::default()
        }
    }

    fn canary(o: &ServiceObjects) -> CanaryObservation {
        ReplicaRatio.observe(o).canary.expect("a canary")
    }

    /// Ask for `weight` until nothing more is written, as the controller
    /// would, pods becoming available at once; returns what is in effect.
    fn converge(o: &mut ServiceObjects, weight: i32) -> CanaryObservation {
        for _ in 0..5 {
            let writes = ReplicaRatio
                .set_weight(o, weight, &PodTemplateSpec::default(), &owner())
                .unwrap();
            if writes.is_empty() {
                break;
            }
            execute(o, &writes, true);
        }
        canary(o)
    }

    #[test]
    fn canary_replicas_follow_the_weight() {
        assert_eq!(canary_replicas(4, 0), 0);
        assert_eq!(canary_replicas(4, 5), 1);
        assert_eq!(canary_replicas(4, 25), 2);
        assert_eq!(canary_replicas(4, 50), 4);
        assert_eq!(canary_replicas(4, 75), 12);
        assert_eq!(canary_replicas(4, 100), 4);
        assert_eq!(canary_replicas(0, 50), 1);
        // the canary's share of pods is never below the weight
        for stable in 1..20 {
            for w in 1..100 {
                let c = canary_replicas(stable, w) as f64;
                assert!(
                    c / (c + stable as f64) * 100.0 >= w as f64 - 1e-9,
                    "{stable} {w}"
                );
            }
        }
    }

    #[test]
    fn small_deployments_overshoot_and_plan_says_by_how_much() {
        assert_eq!(effective_weight(2, 10), 33);
        assert_eq!(effective_weight(10, 10), 17);
        assert_eq!(effective_weight(9, 10), 10);
        assert_eq!(effective_weight(1, 100), 100);
        let o = overshoots(2, &[10, 50, 100]);
        assert_eq!(
            o,
            vec![Overshoot {
                weight: 10,
                effective: 33,
                canary_pods: 1,
                replicas_needed: 6
            }]
        );
        assert!(overshoots(6, &[10, 50, 100]).is_empty());
    }

    #[test]
    fn every_step_below_100_leaves_the_stable_deployment_alone() {
        let mut o = objects(4);
        let c = converge(&mut o, 25);
        assert_eq!(
            c,
            CanaryObservation {
                weight: 25,
                ready: true,
                effective: 33
            }
        );
        assert_eq!(spec_replicas(o.stable.as_ref().unwrap()), 4);
        assert_eq!(
            o.canary.as_ref().unwrap().name_any(),
            canary_deployment_name("web")
        );
        // the stable Deployment was scaled by someone else: the canary follows
        o.stable.as_mut().unwrap().spec.as_mut().unwrap().replicas = Some(8);
        crate::traffic::testing::settle(o.stable.as_mut().unwrap());
        assert!(!canary(&o).ready);
        let c = converge(&mut o, 25);
        assert!(c.ready);
        assert_eq!(spec_replicas(o.canary.as_ref().unwrap()), 3);
    }

    #[test]
    fn the_last_step_carries_all_the_traffic() {
        let mut o = objects(3);
        converge(&mut o, 50);
        // First the canary grows to the stable size; only then do stable pods go.
        let writes = ReplicaRatio
            .set_weight(&o, 100, &PodTemplateSpec::default(), &owner())
            .unwrap();
        assert_eq!(writes.len(), 1, "{writes:?}");
        execute(&mut o, &writes, false);
        assert!(!canary(&o).ready, "canary pods are not available yet");
        assert_eq!(spec_replicas(o.stable.as_ref().unwrap()), 3);
        crate::traffic::testing::settle(o.canary.as_mut().unwrap());
        let c = converge(&mut o, 100);
        assert_eq!(
            c,
            CanaryObservation {
                weight: 100,
                ready: true,
                effective: 100
            }
        );
        assert_eq!(spec_replicas(o.stable.as_ref().unwrap()), 0);
        assert_eq!(spec_replicas(o.canary.as_ref().unwrap()), 3);
    }

    #[test]
    fn withdrawing_from_the_last_step_brings_the_stable_pods_back_first() {
        let mut o = objects(3);
        converge(&mut o, 100);
        let writes = ReplicaRatio
            .set_weight(&o, 0, &PodTemplateSpec::default(), &owner())
            .unwrap();
        // stable back to 3; the canary keeps its pods while they start
        execute(&mut o, &writes, false);
        assert_eq!(spec_replicas(o.stable.as_ref().unwrap()), 3);
        assert_eq!(spec_replicas(o.canary.as_ref().unwrap()), 3);
        assert!(ReplicaRatio.remove(&o).is_empty(), "no pod left to serve");
        crate::traffic::testing::settle(o.stable.as_mut().unwrap());
        let c = converge(&mut o, 0);
        assert_eq!(
            c,
            CanaryObservation {
                weight: 0,
                ready: true,
                effective: 0
            }
        );
        assert_eq!(
            ReplicaRatio.remove(&o),
            vec![Write::delete::<Deployment>("web-canary")]
        );
    }

    #[test]
    fn promotion_hands_the_replica_count_back() {
        let mut o = objects(3);
        converge(&mut o, 100);
        let writes = ReplicaRatio.promote(&o, Vec::new());
        assert_eq!(writes, vec![replicas_write("web", 3)]);
        // after a crash that lost the canary annotation the baseline still knows
        o.canary.as_mut().unwrap().metadata.annotations = None;
        assert_eq!(
            ReplicaRatio.promote(&o, Vec::new()),
            vec![replicas_write("web", 3)]
        );
        // removing the canary before the stable pods are back hands them back first
        assert_eq!(ReplicaRatio.remove(&o), vec![replicas_write("web", 3)]);
    }

    #[test]
    fn with_the_stable_deployment_gone_withdrawing_still_takes_all_traffic_away() {
        let mut o = objects(2);
        converge(&mut o, 50);
        o.stable = None;
        let c = converge(&mut o, 0);
        assert_eq!((c.weight, c.ready), (0, true));
        assert_eq!(spec_replicas(o.canary.as_ref().unwrap()), 0);
        assert_eq!(
            ReplicaRatio.remove(&o),
            vec![Write::delete::<Deployment>("web-canary")]
        );
    }
}

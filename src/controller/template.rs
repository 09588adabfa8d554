//! Pod templates: the new version built from the baseline, how the live stable
//! template compares with both, and how many canary replicas carry a weight.
//! Pure, so the comparison rules are unit-tested without a cluster.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{EnvVar, PodTemplateSpec};

use crate::api::Change;
use crate::engine::TemplateState;

/// The new version: the baseline with `change.images` and `change.env` applied.
/// Always built from the recorded baseline, never from the live stable
/// Deployment, so a template someone changed mid-release is never copied.
pub fn new_template(baseline: &PodTemplateSpec, change: &Change) -> PodTemplateSpec {
    let mut t = baseline.clone();
    if let Some(spec) = t.spec.as_mut() {
        for c in spec.containers.iter_mut() {
            if let Some(image) = change.images.get(&c.name) {
                c.image = Some(image.clone());
            }
            if let Some(vars) = change.env.get(&c.name) {
                let env = c.env.get_or_insert_with(Vec::new);
                for (name, value) in vars {
                    match env.iter_mut().find(|e| &e.name == name) {
                        Some(e) => {
                            e.value = Some(value.clone());
                            e.value_from = None;
                        }
                        None => env.push(EnvVar {
                            name: name.clone(),
                            value: Some(value.clone()),
                            value_from: None,
                        }),
                    }
                }
            }
        }
    }
    t
}

/// Order-insensitive view of a template for comparison: server-side apply may
/// place an env var we add anywhere in the list, so env is compared by name.
fn normalized(t: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = t.clone();
    if let Some(spec) = t.spec.as_mut() {
        for c in spec.containers.iter_mut() {
            if let Some(env) = c.env.as_mut() {
                env.sort_by(|a, b| a.name.cmp(&b.name));
            }
            if c.env.as_ref().is_some_and(Vec::is_empty) {
                c.env = None;
            }
        }
    }
    t
}

/// How the live stable template relates to the baseline and the new version.
/// Before a baseline is recorded nothing has been changed yet, so it is the baseline.
pub fn template_state(
    live: &PodTemplateSpec,
    baseline: Option<&PodTemplateSpec>,
    change: &Change,
) -> TemplateState {
    let Some(baseline) = baseline else {
        return TemplateState::Baseline;
    };
    let live = normalized(live);
    if live == normalized(baseline) {
        TemplateState::Baseline
    } else if live == normalized(&new_template(baseline, change)) {
        TemplateState::New
    } else {
        TemplateState::Drifted
    }
}

/// Canary replicas that give the canary `weight` percent of the pods next to
/// `stable` stable replicas: ceil(stable * w / (100 - w)). At 100 % the ratio is
/// undefined (the stable pods still run), so the canary gets as many pods as
/// the stable Deployment: half the pods, all of them the new version once the
/// stable Deployment is promoted. At 0 % there are no canary pods.
pub fn canary_replicas(stable: i32, weight: i32) -> i32 {
    let stable = stable.max(0) as i64;
    let w = weight.clamp(0, 100) as i64;
    let n = match w {
        0 => 0,
        100 => stable,
        w => (stable * w + (100 - w) - 1) / (100 - w),
    };
    n.max(if w > 0 { 1 } else { 0 }) as i32
}

/// The Deployment's rollout is complete: the controller saw the latest
/// generation and every desired replica is updated and available, with no old
/// replica left.
pub fn rolled_out(d: &Deployment) -> bool {
    let (Some(spec), Some(status)) = (&d.spec, &d.status) else {
        return false;
    };
    let want = spec.replicas.unwrap_or(1);
    status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
        && status.updated_replicas.unwrap_or(0) == want
        && status.replicas.unwrap_or(0) == want
        && status.available_replicas.unwrap_or(0) == want
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use std::collections::BTreeMap;

    fn template(image: &str, env: &[(&str, &str)]) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: vec![
                    Container {
                        name: "app".into(),
                        image: Some(image.into()),
                        env: Some(
                            env.iter()
                                .map(|(n, v)| EnvVar {
                                    name: (*n).into(),
                                    value: Some((*v).into()),
                                    value_from: None,
                                })
                                .collect(),
                        ),
                        ..Default::default()
                    },
                    Container {
                        name: "sidecar".into(),
                        image: Some("proxy:1".into()),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
        }
    }

    fn change(image: Option<&str>, env: &[(&str, &str)]) -> Change {
        let mut c = Change::default();
        if let Some(i) = image {
            c.images.insert("app".into(), i.into());
        }
        if !env.is_empty() {
            c.env.insert(
                "app".into(),
                env.iter()
                    .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
                    .collect::<BTreeMap<_, _>>(),
            );
        }
        c
    }

    #[test]
    fn new_template_sets_images_and_env_only_on_named_containers() {
        let base = template("web:v1", &[("A", "1")]);
        let new = new_template(&base, &change(Some("web:v2"), &[("A", "2"), ("B", "3")]));
        let spec = new.spec.unwrap();
        assert_eq!(spec.containers[0].image.as_deref(), Some("web:v2"));
        let env: Vec<_> = spec.containers[0]
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.as_str(), e.value.as_deref().unwrap()))
            .collect();
        assert_eq!(env, vec![("A", "2"), ("B", "3")]);
        assert_eq!(spec.containers[1].image.as_deref(), Some("proxy:1"));
    }

    #[test]
    fn template_state_tells_baseline_new_and_drift_apart() {
        let base = template("web:v1", &[("A", "1")]);
        let ch = change(Some("web:v2"), &[("B", "3")]);
        assert_eq!(
            template_state(&base, Some(&base), &ch),
            TemplateState::Baseline
        );
        // env order as server-side apply may leave it does not matter
        let promoted = template("web:v2", &[("B", "3"), ("A", "1")]);
        assert_eq!(
            template_state(&promoted, Some(&base), &ch),
            TemplateState::New
        );
        let drifted = template("web:v9", &[("A", "1")]);
        assert_eq!(
            template_state(&drifted, Some(&base), &ch),
            TemplateState::Drifted
        );
        // before the baseline exists nothing was changed by the release
        assert_eq!(template_state(&drifted, None, &ch), TemplateState::Baseline);
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
}

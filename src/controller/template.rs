//! Pod templates: the new version built from the baseline, and how the live
//! stable template compares with both.
//! Pure, so the comparison rules are unit-tested without a cluster.

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
}

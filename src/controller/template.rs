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

/// What differs between the live stable template and the release's new
/// version, in words naming the container and the values (`container "api"
/// image is "shop/api:v9", the release set "shop/api:v2"`); `None` when the
/// live template is the new version, or when no baseline was recorded (the
/// release never changed it). What a person needs to see before a rollback
/// is refused, since restoring would undo their change.
pub fn changed(
    live: &PodTemplateSpec,
    baseline: Option<&PodTemplateSpec>,
    change: &Change,
) -> Option<String> {
    if template_state(live, baseline, change) == TemplateState::New {
        return None;
    }
    let new = new_template(baseline?, change);
    let containers = |t: &PodTemplateSpec| {
        t.spec
            .as_ref()
            .map(|s| s.containers.clone())
            .unwrap_or_default()
    };
    let (live, new) = (containers(live), containers(&new));
    let quoted = |v: Option<&str>| v.map_or_else(|| "unset".to_owned(), |v| format!("{v:?}"));
    let mut found = Vec::new();
    for want in &new {
        let name = &want.name;
        let Some(have) = live.iter().find(|c| &c.name == name) else {
            found.push(format!("container {name:?} is gone"));
            continue;
        };
        if have.image != want.image {
            found.push(format!(
                "container {name:?} image is {}, the release set {}",
                quoted(have.image.as_deref()),
                quoted(want.image.as_deref())
            ));
        }
        let value = |c: &k8s_openapi::api::core::v1::Container, var: &str| {
            c.env
                .iter()
                .flatten()
                .find(|e| e.name == var)
                .map(|e| e.value.clone().unwrap_or_else(|| "(valueFrom)".to_owned()))
        };
        let vars: std::collections::BTreeSet<&str> = have
            .env
            .iter()
            .chain(want.env.iter())
            .flatten()
            .map(|e| e.name.as_str())
            .collect();
        for var in vars {
            let (is, set) = (value(have, var), value(want, var));
            if is != set {
                found.push(format!(
                    "container {name:?} env {var} is {}, the release set {}",
                    quoted(is.as_deref()),
                    quoted(set.as_deref())
                ));
            }
        }
    }
    for extra in live
        .iter()
        .filter(|c| !new.iter().any(|n| n.name == c.name))
    {
        found.push(format!("container {:?} was added", extra.name));
    }
    Some(if found.is_empty() {
        "pod template changed".to_owned()
    } else {
        found.join("; ")
    })
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
    fn changed_names_the_container_and_both_values() {
        let base = template("web:v1", &[("A", "1")]);
        let ch = change(Some("web:v2"), &[("B", "3")]);
        let promoted = template("web:v2", &[("B", "3"), ("A", "1")]);
        assert_eq!(changed(&promoted, Some(&base), &ch), None);
        assert_eq!(changed(&promoted, None, &ch), None);
        let by_hand = template("web:v9", &[("A", "1"), ("B", "4"), ("C", "5")]);
        assert_eq!(
            changed(&by_hand, Some(&base), &ch).as_deref(),
            Some(
                r#"container "app" image is "web:v9", the release set "web:v2"; container "app" env B is "4", the release set "3"; container "app" env C is "5", the release set unset"#
            )
        );
        // Back at the baseline (restored by someone else): the release's values are gone.
        assert_eq!(
            changed(&base, Some(&base), &ch).as_deref(),
            Some(
                r#"container "app" image is "web:v1", the release set "web:v2"; container "app" env B is unset, the release set "3""#
            )
        );
        // A difference outside images and env still counts, in general words.
        let mut relabelled = promoted.clone();
        relabelled.metadata = Some(Default::default());
        relabelled
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .get_or_insert_with(Default::default)
            .insert("team".into(), "x".into());
        assert_eq!(
            changed(&relabelled, Some(&base), &ch).as_deref(),
            Some("pod template changed")
        );
    }
}

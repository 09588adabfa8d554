//! Pod templates: the new version built from the baseline, and how the live
//! stable template compares with both.
//! Pure, so the comparison rules are unit-tested without a cluster.

use k8s_openapi::api::core::v1::{Container, EnvVar, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use serde_json::Value;

use crate::api::Change;
use crate::engine::{FieldWriter, TemplateField, TemplateState};

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

/// Each image and env var of the live stable template whose value is not both
/// the baseline's and the new version's, with the field manager that owns it
/// (from `managed`, the Deployment's `metadata.managedFields`); empty when no
/// baseline was recorded (the release never changed it). The engine says which
/// version was expected and puts it in words (`engine::what_changed`).
pub fn fields(
    live: &PodTemplateSpec,
    baseline: Option<&PodTemplateSpec>,
    change: &Change,
    managed: &[ManagedFieldsEntry],
) -> Vec<TemplateField> {
    let Some(baseline) = baseline else {
        return Vec::new();
    };
    let new = new_template(baseline, change);
    let containers = |t: &PodTemplateSpec| {
        t.spec
            .as_ref()
            .map(|s| s.containers.clone())
            .unwrap_or_default()
    };
    let (live, base, new) = (containers(live), containers(baseline), containers(&new));
    let mut names: Vec<&str> = new.iter().map(|c| c.name.as_str()).collect();
    for c in live.iter().chain(&base) {
        if !names.contains(&c.name.as_str()) {
            names.push(&c.name);
        }
    }
    let find = |cs: &'_ [Container], name: &str| cs.iter().find(|c| c.name == name).cloned();
    let value = |c: &Option<Container>, var: &str| {
        c.as_ref()?
            .env
            .iter()
            .flatten()
            .find(|e| e.name == var)
            .map(|e| e.value.clone().unwrap_or_else(|| "(valueFrom)".to_owned()))
    };
    let mut out = Vec::new();
    for name in names {
        let (l, b, n) = (find(&live, name), find(&base, name), find(&new, name));
        let image = |c: &Option<Container>| c.as_ref().and_then(|c| c.image.clone());
        let field = |env: Option<&str>, live, baseline, new| TemplateField {
            container: name.to_owned(),
            env: env.map(str::to_owned),
            writer: writer(managed, name, env),
            live,
            baseline,
            new,
        };
        if l.is_none() || (b.is_none() && n.is_none()) {
            // A container gone or added is one difference, not one per var.
            out.push(field(None, image(&l), image(&b), image(&n)));
            continue;
        }
        if !(image(&l) == image(&b) && image(&l) == image(&n)) {
            out.push(field(None, image(&l), image(&b), image(&n)));
        }
        let vars: std::collections::BTreeSet<String> = [&l, &b, &n]
            .into_iter()
            .flatten()
            .flat_map(|c| c.env.iter().flatten().map(|e| e.name.clone()))
            .collect();
        for var in vars {
            let (lv, bv, nv) = (value(&l, &var), value(&b, &var), value(&n, &var));
            if !(lv == bv && lv == nv) {
                out.push(field(Some(&var), lv, bv, nv));
            }
        }
    }
    out
}

/// The manager that owns container `container`'s image (`env: None`), env
/// var, or, for a container someone added, the container itself: of the
/// `managedFields` entries that own it, the latest.
pub fn writer(
    managed: &[ManagedFieldsEntry],
    container: &str,
    env: Option<&str>,
) -> Option<FieldWriter> {
    managed
        .iter()
        .filter(|m| {
            let Some(fields) = m.fields_v1.as_ref().map(|f| &f.0) else {
                return false;
            };
            let Some(c) = containers_of(fields).and_then(|cs| keyed(cs, container)) else {
                return false;
            };
            match env {
                None => c.get("f:image").is_some(),
                Some(var) => c
                    .get("f:env")
                    .and_then(|e| keyed(e, var))
                    .is_some_and(|v| v.get("f:value").is_some() || v.get("f:valueFrom").is_some()),
            }
        })
        // The latest; entries without a time count as oldest.
        .max_by_key(|m| m.time.as_ref().map(|t| t.0))
        .map(|m| FieldWriter {
            manager: m.manager.clone().unwrap_or_default(),
            operation: m.operation.clone().unwrap_or_default(),
            time: m.time.as_ref().map(|t| t.0),
        })
}

/// The `f:containers` set of a fieldsV1 tree of a Deployment.
pub fn containers_of(fields: &Value) -> Option<&Value> {
    fields
        .get("f:spec")?
        .get("f:template")?
        .get("f:spec")?
        .get("f:containers")
}

/// The member of a fieldsV1 list keyed by `name` (`k:{"name":"app"}`).
fn keyed<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list.as_object()?.iter().find_map(|(k, v)| {
        let key: Value = serde_json::from_str(k.strip_prefix("k:")?).ok()?;
        (key.get("name")?.as_str()? == name).then_some(v)
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

    fn entry(manager: &str, operation: &str, time: &str, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                time.parse().unwrap(),
            )),
            fields_v1: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1(
                fields,
            )),
            ..Default::default()
        }
    }

    /// fieldsV1 owning the image and the env vars `vars` of container `app`.
    fn owns(image: bool, vars: &[&str]) -> Value {
        let mut c = serde_json::Map::new();
        c.insert(".".into(), serde_json::json!({}));
        if image {
            c.insert("f:image".into(), serde_json::json!({}));
        }
        let env: serde_json::Map<String, Value> = vars
            .iter()
            .map(|v| {
                (
                    format!(r#"k:{{"name":"{v}"}}"#),
                    serde_json::json!({".": {}, "f:name": {}, "f:value": {}}),
                )
            })
            .collect();
        if !env.is_empty() {
            c.insert("f:env".into(), Value::Object(env));
        }
        serde_json::json!({"f:metadata": {"f:annotations": {}}, "f:spec": {"f:template": {"f:spec": {"f:containers": {
            r#"k:{"name":"app"}"#: c
        }}}}})
    }

    #[test]
    fn fields_name_each_value_and_the_manager_that_owns_it_now() {
        let base = template("web:v1", &[("A", "1")]);
        let ch = change(Some("web:v2"), &[("B", "3")]);
        // Before a baseline exists the release changed nothing.
        assert_eq!(fields(&base, None, &ch, &[]), vec![]);
        let managed = [
            entry(
                "signalman-e2e",
                "Apply",
                "2026-12-03T01:00:00Z",
                owns(true, &["A", "C"]),
            ),
            entry(
                "signalman",
                "Apply",
                "2026-12-03T01:01:00Z",
                owns(false, &["B"]),
            ),
            entry(
                "argocd-controller",
                "Apply",
                "2026-12-03T01:02:00Z",
                owns(true, &[]),
            ),
            entry(
                "kubectl-annotate",
                "Update",
                "2026-12-03T01:03:00Z",
                serde_json::json!({"f:metadata": {}}),
            ),
        ];
        let reverted = template("web:v1", &[("A", "1"), ("B", "3"), ("C", "5")]);
        let found = fields(&reverted, Some(&base), &ch, &managed);
        let writer = |m: &str, t: &str| {
            Some(FieldWriter {
                manager: m.into(),
                operation: "Apply".into(),
                time: Some(t.parse().unwrap()),
            })
        };
        let field = |env: Option<&str>, live: Option<&str>, b: Option<&str>, n: Option<&str>, w| {
            TemplateField {
                container: "app".into(),
                env: env.map(Into::into),
                live: live.map(Into::into),
                baseline: b.map(Into::into),
                new: n.map(Into::into),
                writer: w,
            }
        };
        assert_eq!(
            found,
            vec![
                // Co-owned by two appliers: the later one wrote it last.
                field(
                    None,
                    Some("web:v1"),
                    Some("web:v1"),
                    Some("web:v2"),
                    writer("argocd-controller", "2026-12-03T01:02:00Z")
                ),
                field(
                    Some("B"),
                    Some("3"),
                    None,
                    Some("3"),
                    writer("signalman", "2026-12-03T01:01:00Z")
                ),
                field(
                    Some("C"),
                    Some("5"),
                    None,
                    None,
                    writer("signalman-e2e", "2026-12-03T01:00:00Z")
                ),
            ]
        );
        // A container someone added, and one gone, are one field each.
        let mut more = reverted.clone();
        let spec = more.spec.as_mut().unwrap();
        spec.containers.retain(|c| c.name != "sidecar");
        spec.containers.push(Container {
            name: "debug".into(),
            image: Some("busybox".into()),
            ..Default::default()
        });
        let found = fields(&more, Some(&base), &ch, &[]);
        let names: Vec<_> = found
            .iter()
            .filter(|f| f.container != "app")
            .map(|f| {
                (
                    f.container.as_str(),
                    f.live.as_deref(),
                    f.baseline.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("sidecar", None, Some("proxy:1")),
                ("debug", Some("busybox"), None)
            ]
        );
    }
}

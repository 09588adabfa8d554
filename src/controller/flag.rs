//! Feature flags in the cluster: what a flag's ConfigMap holds of its keys,
//! and the patches that set them and put them back. Only the flag's own keys
//! are ever read or written; the rest of the ConfigMap is the application's.

use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{Map, Value, json};

use crate::api::{FlagBaseline, FlagChange};
use crate::engine::FlagObservation;

/// The current values of `flag`'s keys in `cm` (`None`: no such ConfigMap).
pub fn observe(flag: &FlagChange, cm: Option<&ConfigMap>) -> Option<FlagObservation> {
    let data = cm?.data.as_ref();
    Some(FlagObservation {
        values: flag
            .keys
            .keys()
            .filter_map(|k| Some((k.clone(), data?.get(k)?.clone())))
            .collect(),
    })
}

/// The patch that sets the flag's keys to their new values.
pub fn set(flag: &FlagChange) -> Value {
    let data: Map<String, Value> = flag
        .keys
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    json!({"data": data})
}

/// The patch that puts the keys back as they were before the release: the
/// recorded values written back, the keys that did not exist removed (`null`).
pub fn restore(baseline: &FlagBaseline) -> Value {
    let mut data: Map<String, Value> = baseline
        .values
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    data.extend(baseline.absent.iter().map(|k| (k.clone(), Value::Null)));
    json!({"data": data})
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn flag() -> FlagChange {
        FlagChange {
            config_map: Some("checkout-flags".into()),
            keys: BTreeMap::from([
                ("checkout-v2".to_owned(), "on".to_owned()),
                ("new-cart".to_owned(), "true".to_owned()),
            ]),
            bake: None,
        }
    }

    fn cm(data: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn only_the_flags_own_keys_are_observed() {
        assert_eq!(observe(&flag(), None), None);
        let seen = observe(
            &flag(),
            Some(&cm(&[("checkout-v2", "off"), ("theme", "dark")])),
        )
        .unwrap();
        assert_eq!(
            seen.values,
            BTreeMap::from([("checkout-v2".to_owned(), "off".to_owned())])
        );
        let empty = observe(&flag(), Some(&ConfigMap::default())).unwrap();
        assert!(empty.values.is_empty());
    }

    #[test]
    fn set_writes_the_new_values_and_restore_removes_what_was_absent() {
        assert_eq!(
            set(&flag()),
            json!({"data": {"checkout-v2": "on", "new-cart": "true"}})
        );
        let baseline = FlagBaseline {
            values: BTreeMap::from([("checkout-v2".to_owned(), "off".to_owned())]),
            absent: vec!["new-cart".to_owned()],
        };
        assert_eq!(
            restore(&baseline),
            json!({"data": {"checkout-v2": "off", "new-cart": null}})
        );
    }
}

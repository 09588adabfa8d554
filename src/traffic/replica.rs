//! Replica ratio: the user's Service selects stable and canary pods alike, so
//! the canary's share of the traffic is its share of the ready pods.

use k8s_openapi::api::apps::v1::Deployment;

use super::{annotated_weight, canary_deployment_ready};
use crate::engine::CanaryObservation;

/// The weight in effect, read from the canary Deployment alone.
pub fn observe(canary: Option<&Deployment>, stable_replicas: i32) -> Option<CanaryObservation> {
    let canary = canary?;
    Some(CanaryObservation {
        weight: annotated_weight(canary).unwrap_or(0),
        ready: canary_deployment_ready(canary, stable_replicas),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::{Owner, canary_deployment};
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};

    fn stable(replicas: i32) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.name = Some("web".into());
        d.spec = Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        });
        d
    }

    fn owner() -> Owner {
        Owner {
            release: "r".into(),
            service: "web".into(),
            reference: OwnerReference {
                api_version: "signalman.dev/v1alpha1".into(),
                kind: "Release".into(),
                name: "r".into(),
                uid: "u".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
        }
    }

    #[test]
    fn canary_weight_is_in_effect_only_when_its_pods_are_available() {
        let s = stable(4);
        let mut c = canary_deployment(&s, &PodTemplateSpec::default(), 25, &owner());
        assert_eq!(c.metadata.name.as_deref(), Some("web-canary"));
        assert_eq!(c.spec.as_ref().unwrap().replicas, Some(2));
        let sel = c
            .spec
            .as_ref()
            .unwrap()
            .selector
            .match_labels
            .clone()
            .unwrap();
        assert_eq!(
            sel.get("signalman.dev/track").map(String::as_str),
            Some("canary")
        );
        assert_eq!(
            observe(Some(&c), 4),
            Some(CanaryObservation {
                weight: 25,
                ready: false
            })
        );
        c.metadata.generation = Some(1);
        c.status = Some(DeploymentStatus {
            observed_generation: Some(1),
            replicas: Some(2),
            updated_replicas: Some(2),
            available_replicas: Some(2),
            ready_replicas: Some(2),
            ..Default::default()
        });
        assert_eq!(
            observe(Some(&c), 4),
            Some(CanaryObservation {
                weight: 25,
                ready: true
            })
        );
        // the stable Deployment was scaled: the canary no longer carries 25 %
        assert!(!observe(Some(&c), 8).unwrap().ready);
        assert_eq!(observe(None, 4), None);
    }
}

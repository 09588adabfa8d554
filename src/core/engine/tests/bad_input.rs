//! Refusing bad input: a release that cannot start stalls, changing nothing.

use super::*;

fn stalled(sim: &mut Sim) -> (String, String) {
    let d = sim.pass().clone();
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(d.status.phase, Some(Phase::Pending));
    let c = condition(&d.status, "Stalled");
    assert_eq!(c.status, "True");
    assert_eq!(c.observed_generation, Some(1));
    assert_eq!(d.notices.len(), 1);
    // Nothing new on the next look.
    let again = sim.pass().clone();
    assert!(again.notices.is_empty() && again.actions.is_empty());
    (c.reason.clone(), c.message.clone())
}

#[test]
fn invalid_spec_stalls() {
    let mut s = spec(&[("a", &[])]);
    s.owner = String::new();
    let (reason, message) = stalled(&mut Sim::new(s));
    assert_eq!(reason, "InvalidSpec");
    assert!(message.contains("spec.owner"), "{message}");
}

#[test]
fn cycle_and_unknown_dependency_stall() {
    let (reason, message) = stalled(&mut Sim::new(spec(&[("a", &["b"]), ("b", &["a"])])));
    assert_eq!(reason, "InvalidPlan");
    assert!(
        message.contains("spec.services[0].dependsOn: dependency cycle: a -> b -> a"),
        "{message}"
    );
    let (reason, message) = stalled(&mut Sim::new(spec(&[("a", &["x"]), ("b", &["y"])])));
    assert_eq!(reason, "InvalidPlan");
    assert!(
        message.contains("spec.services[0].dependsOn")
            && message.contains("spec.services[1].dependsOn"),
        "{message}"
    );
}

#[test]
fn missing_deployment_stalls_with_the_fix() {
    let mut sim = Sim::new(spec(&[("a", &[]), ("b", &[])]));
    sim.cluster.get_mut("b").unwrap().exists = false;
    let (reason, message) = stalled(&mut sim);
    assert_eq!(reason, "DeploymentNotFound");
    assert_eq!(
        message,
        "spec.services[1].deployment: Deployment \"b\" not found in namespace \"shop\"; create it or fix the name"
    );
    // Once it exists, the release starts.
    sim.cluster.get_mut("b").unwrap().exists = true;
    assert_eq!(sim.pass().status.phase, Some(Phase::Progressing));
}

#[test]
fn missing_container_stalls_listing_the_containers() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    sim.cluster.get_mut("a").unwrap().containers = vec!["app".into(), "sidecar".into()];
    let (reason, message) = stalled(&mut sim);
    assert_eq!(reason, "ContainerNotFound");
    assert!(
        message.starts_with("spec.services[0].change.images.main:"),
        "{message}"
    );
    assert!(message.contains("\"app\", \"sidecar\""), "{message}");
}

#[test]
fn missing_route_stalls() {
    let mut s = spec(&[("a", &[])]);
    s.services[0].traffic = Some(Traffic {
        gateway_api: Some(GatewayApiTraffic {
            http_route: "a-route".into(),
            service: None,
        }),
    });
    let mut sim = Sim::new(s);
    sim.cluster.get_mut("a").unwrap().route = None;
    let (reason, message) = stalled(&mut sim);
    assert_eq!(reason, "RouteNotFound");
    assert!(
        message.starts_with("spec.services[0].traffic.gatewayAPI.httpRoute: HTTPRoute \"a-route\""),
        "{message}"
    );
}

#[test]
fn claimed_deployment_stalls() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    sim.cluster.get_mut("a").unwrap().claimed_by = Some("older".into());
    let (reason, message) = stalled(&mut sim);
    assert_eq!(reason, "DeploymentClaimed");
    assert!(message.contains(
        "is claimed by Release \"older\", which is still in flight; wait for it or abort it"
    ));
}

#[test]
fn an_invalid_or_waiting_release_ends_on_abort_having_changed_nothing() {
    let mut s = spec(&[("a", &[])]);
    s.owner = String::new();
    let mut sim = Sim::new(s);
    assert_eq!(stalled(&mut sim).0, "InvalidSpec");
    sim.edit(|s| s.abort = Some(true));
    let d = sim.pass().clone();
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(d.status.phase, Some(Phase::RolledBack));
    assert_eq!(
        d.status.message.as_deref(),
        Some("aborted before it started; nothing was changed")
    );

    let mut sim = Sim::new(spec(&[("a", &[])]));
    sim.cluster.get_mut("a").unwrap().claimed_by = Some("older".into());
    assert_eq!(stalled(&mut sim).0, "DeploymentClaimed");
    sim.edit(|s| s.abort = Some(true));
    assert_eq!(sim.pass().status.phase, Some(Phase::RolledBack));
}

#[test]
fn a_release_name_too_long_for_a_label_value_stalls_naming_metadata_name() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    sim.release.metadata.name = Some("r".repeat(64));
    let (reason, message) = stalled(&mut sim);
    assert_eq!(reason, "InvalidSpec");
    assert!(
        message.starts_with("metadata.name: 64 characters; at most 63"),
        "{message}"
    );
}

/// The operator's rules: a Prometheus address off its list, or (with
/// --enforce-namespace) a query reading another namespace, stall the release
/// before anything moves, with the field and the fix; within them it starts.
#[test]
fn what_the_operator_does_not_let_queries_reach_stalls() {
    use crate::analysis::tenancy::Reach;
    let reach = Reach {
        enforce_namespace: true,
        allowed_addresses: Some(vec!["http://Prometheus.monitoring".into()]),
    };
    let mut s = spec(&[("a", &[])]);
    s.prometheus = Some(crate::api::PrometheusSpec {
        address: "http://169.254.169.254/latest".into(),
    });
    let mut sim = Sim::new(s.clone());
    sim.reach = reach.clone();
    let (reason, message) = stalled(&mut sim);
    assert_eq!(reason, "PrometheusAddressNotAllowed");
    assert!(
        message.starts_with(
            "spec.prometheus.address: \"http://169.254.169.254/latest\" is not a Prometheus address \
             this operator may query; "
        ),
        "{message}"
    );

    s.prometheus = Some(crate::api::PrometheusSpec {
        address: "http://prometheus.monitoring:80/".into(),
    });
    let analysis = s
        .defaults
        .as_mut()
        .and_then(|d| d.analysis.as_mut())
        .unwrap();
    analysis.metrics[0].query = r#"sum(up{namespace=~"shop|payments"})"#.into();
    let mut sim = Sim::new(s.clone());
    sim.reach = reach.clone();
    let (reason, message) = stalled(&mut sim);
    assert_eq!(reason, "QueryOutsideNamespace");
    assert_eq!(
        message,
        "spec.defaults.analysis.metrics[0].query: may read namespaces other than \"shop\" \
         (namespace=~\"shop|payments\"), but a Release in namespace \"shop\" may read only its own \
         namespace's series; the operator runs with --enforce-namespace, which adds \
         namespace=\"shop\" to every selector; remove the namespace matcher or write \
         namespace=\"shop\" (or {{namespace}})"
    );

    let analysis = s
        .defaults
        .as_mut()
        .and_then(|d| d.analysis.as_mut())
        .unwrap();
    analysis.metrics[0].query = r#"sum(up{namespace=~"shop"})"#.into();
    let mut sim = Sim::new(s);
    sim.reach = reach;
    assert_eq!(sim.pass().status.phase, Some(Phase::Progressing));
}

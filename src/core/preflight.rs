//! What the cluster must hold before a Release may change it: the one home of
//! the checks that both the controller (before a Pending Release starts) and
//! `kubectl signalman plan` run. Each shell reduces what it read to a
//! [`ClusterView`]; this module decides, so the two cannot disagree.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::api::{Phase, Problem, Release, ReleaseSpec, StallReason};

/// A Release as the claim rule sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimant {
    pub name: String,
    pub phase: Phase,
    /// `metadata.creationTimestamp`; `None` for a Release not created yet
    /// (`plan` on a file), which is younger than every stored one.
    pub created: Option<Timestamp>,
    /// The Deployments its services name.
    pub deployments: Vec<String>,
    /// The ConfigMaps its flag services set keys of.
    pub config_maps: Vec<String>,
    /// Refused before it started for a problem of its own (Pending with
    /// `Stalled=True` for any reason but `DeploymentClaimed`): it will not
    /// run until someone fixes it, so it must not block the Releases behind it.
    pub refused: bool,
}

impl Claimant {
    pub fn of(release: &Release) -> Claimant {
        Claimant {
            name: release.metadata.name.clone().unwrap_or_default(),
            phase: release
                .status
                .as_ref()
                .and_then(|s| s.phase)
                .unwrap_or_default(),
            created: release.metadata.creation_timestamp.as_ref().map(|t| t.0),
            deployments: deployments(&release.spec),
            config_maps: config_maps(&release.spec),
            refused: refused(release),
        }
    }

    /// A Release not created yet (`plan` on a file), named `name`: younger than every stored one.
    pub fn unsaved(name: &str, spec: &ReleaseSpec) -> Claimant {
        Claimant {
            name: name.to_owned(),
            phase: Phase::Pending,
            created: None,
            deployments: deployments(spec),
            config_maps: config_maps(spec),
            refused: false,
        }
    }

    /// Who was there first: creation time, then name, so the answer never depends on list order.
    fn seniority(&self) -> (Timestamp, &str) {
        (self.created.unwrap_or(Timestamp::MAX), self.name.as_str())
    }
}

fn deployments(spec: &ReleaseSpec) -> Vec<String> {
    spec.services
        .iter()
        .filter_map(|s| s.deployment().map(str::to_owned))
        .collect()
}

fn config_maps(spec: &ReleaseSpec) -> Vec<String> {
    let mut out: Vec<String> = spec
        .services
        .iter()
        .filter_map(|s| s.flag.as_ref()?.config_map.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Pending and stalled on a problem of its own. One that waits for a claim
/// still claims: two Releases waiting behind a third must not both start
/// when it ends.
fn refused(release: &Release) -> bool {
    let Some(status) = &release.status else {
        return false;
    };
    status.phase.unwrap_or_default() == Phase::Pending
        && status.conditions.iter().any(|c| {
            c.type_ == "Stalled"
                && c.status == "True"
                && c.reason != StallReason::DeploymentClaimed.as_str()
                && c.reason != StallReason::ConfigMapClaimed.as_str()
        })
}

/// The one claim rule. Another unfinished Release that lists `deployment`
/// holds it when it is in flight (it may already have changed the
/// Deployment), or when neither is in flight and it is older and not refused
/// (a Release refused for its own problem never runs as it is, so it holds
/// nothing). A Release in flight is never displaced by a Pending one.
pub fn claimed_by<'a>(
    me: &Claimant,
    deployment: &str,
    others: &'a [Claimant],
) -> Option<&'a Claimant> {
    holder(me, others, |o| {
        o.deployments.iter().any(|d| d == deployment)
    })
}

/// The same rule for a flag's ConfigMap: two Releases setting keys of one
/// ConfigMap at once would restore each other's keys on a rollback.
pub fn config_map_claimed_by<'a>(
    me: &Claimant,
    config_map: &str,
    others: &'a [Claimant],
) -> Option<&'a Claimant> {
    holder(me, others, |o| {
        o.config_maps.iter().any(|c| c == config_map)
    })
}

fn holder<'a>(
    me: &Claimant,
    others: &'a [Claimant],
    lists: impl Fn(&Claimant) -> bool,
) -> Option<&'a Claimant> {
    let mine_in_flight = me.phase.is_in_flight();
    others
        .iter()
        .filter(|o| o.name != me.name)
        .filter(|o| !o.phase.is_final())
        .filter(|o| lists(o))
        .filter(|o| {
            o.phase.is_in_flight()
                || (!mine_in_flight && !o.refused && o.seniority() < me.seniority())
        })
        // An in-flight holder is the one to name; among several, the oldest.
        .min_by(|a, b| {
            (!a.phase.is_in_flight(), a.seniority()).cmp(&(!b.phase.is_in_flight(), b.seniority()))
        })
}

/// What one service's objects look like in the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceView {
    /// The container names of its Deployment; `None` when the Deployment does not exist.
    pub containers: Option<Vec<String>>,
    /// Gateway API only: the HTTPRoute exists and has a backendRef to the stable Service.
    pub route_found: bool,
    /// The Deployment's `spec.replicas` (what a replica-ratio canary is sized against).
    pub replicas: Option<i32>,
}

/// The part of the cluster a Release depends on, as plain data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterView {
    pub namespace: String,
    /// The Release being checked, as stored (or, not yet created, the youngest).
    pub release: Option<Claimant>,
    /// By service name in `spec.services`; a service missing here has no objects.
    pub services: BTreeMap<String, ServiceView>,
    /// Releases in the namespace (the one checked may be among them: it is skipped).
    pub releases: Vec<Claimant>,
    /// The ConfigMaps that exist in the namespace, of those the flag services name.
    pub config_maps: std::collections::BTreeSet<String>,
}

/// One reason the controller would refuse to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The `Stalled` condition's reason: `DeploymentNotFound`, `ContainerNotFound`,
    /// `RouteNotFound` or `DeploymentClaimed`.
    pub reason: StallReason,
    pub problem: Problem,
}

/// Everything in `view` that stops `spec` from starting, in spec order.
pub fn cluster_problems(spec: &ReleaseSpec, view: &ClusterView) -> Vec<Refusal> {
    let ns = &view.namespace;
    let none = ServiceView::default();
    let me = view
        .release
        .clone()
        .unwrap_or_else(|| Claimant::unsaved("", &ReleaseSpec::default()));
    let mut out = Vec::new();
    let mut refuse = |reason, field: String, message: String| {
        out.push(Refusal {
            reason,
            problem: Problem { field, message },
        })
    };
    for (i, svc) in spec.services.iter().enumerate() {
        let at = format!("spec.services[{i}]");
        if let Some(flag) = &svc.flag {
            let cm = flag.config_map.as_deref().unwrap_or_default();
            if !view.config_maps.contains(cm) {
                refuse(
                    StallReason::ConfigMapNotFound,
                    format!("{at}.flag.configMap"),
                    format!(
                        "ConfigMap {cm:?} not found in namespace {ns:?}; create it (the flag's keys may \
                         be absent from it) or fix the name"
                    ),
                );
            }
            if let Some(other) = config_map_claimed_by(&me, cm, &view.releases) {
                refuse(
                    StallReason::ConfigMapClaimed,
                    format!("{at}.flag.configMap"),
                    format!(
                        "ConfigMap {cm:?} is claimed by Release {:?}, {}",
                        other.name,
                        why_claimed(other)
                    ),
                );
            }
        }
        let Some(deployment) = svc.deployment() else {
            continue;
        };
        let seen = view.services.get(&svc.name).unwrap_or(&none);
        match &seen.containers {
            None => refuse(
                StallReason::DeploymentNotFound,
                format!("{at}.deployment"),
                format!(
                    "Deployment {:?} not found in namespace {ns:?}; create it or fix the name",
                    deployment
                ),
            ),
            Some(containers) => {
                let named = svc
                    .change
                    .images
                    .keys()
                    .map(|c| (c, "images"))
                    .chain(svc.change.env.keys().map(|c| (c, "env")));
                for (container, field) in named {
                    if !containers.contains(container) {
                        refuse(
                            StallReason::ContainerNotFound,
                            format!("{at}.change.{field}.{container}"),
                            format!(
                                "Deployment {:?} has no container {container:?} (it has {}); use one of those names",
                                deployment,
                                list(containers)
                            ),
                        );
                    }
                }
            }
        }
        if let Some(gw) = svc.traffic.as_ref().and_then(|t| t.gateway_api.as_ref())
            && !seen.route_found
        {
            let backend = gw.service.as_deref().unwrap_or(&svc.name);
            refuse(
                StallReason::RouteNotFound,
                format!("{at}.traffic.gatewayAPI.httpRoute"),
                format!(
                    "HTTPRoute {:?} not found in namespace {ns:?}, or it has no backendRef to Service \
                     {backend:?}; create it or fix the name",
                    gw.http_route
                ),
            );
        }
        if let Some(other) = claimed_by(&me, deployment, &view.releases) {
            refuse(
                StallReason::DeploymentClaimed,
                format!("{at}.deployment"),
                format!(
                    "Deployment {deployment:?} is claimed by Release {:?}, {}",
                    other.name,
                    why_claimed(other)
                ),
            );
        }
    }
    out
}

fn why_claimed(other: &Claimant) -> String {
    if other.phase.is_in_flight() {
        "which is still in flight; wait for it or abort it".to_owned()
    } else {
        format!(
            "which was created first and has not started ({:?}); it goes first: wait for it, \
             or abort it (spec.abort: true) or delete it",
            other.phase
        )
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        return "no containers".to_owned();
    }
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Change, GatewayApiTraffic, ServiceSpec, Traffic};

    fn at(s: i64) -> Option<Timestamp> {
        Some(Timestamp::from_second(s).unwrap())
    }

    fn claimant(name: &str, created: Option<Timestamp>, phase: Phase) -> Claimant {
        Claimant {
            name: name.into(),
            phase,
            created,
            deployments: vec!["web".into()],
            config_maps: vec!["flags".into()],
            refused: false,
        }
    }

    #[test]
    fn the_release_in_flight_or_else_the_older_one_claims_a_deployment() {
        let me = claimant("me", at(10), Phase::Pending);
        let older = claimant("older", at(5), Phase::Pending);
        let newer = claimant("newer", at(20), Phase::Pending);
        let flying = claimant("flying", at(30), Phase::Progressing);
        let done = claimant("done", at(1), Phase::Succeeded);
        let name = |c: Option<&Claimant>| c.map(|c| c.name.clone());
        assert_eq!(
            name(claimed_by(&me, "web", &[me.clone(), newer.clone()])),
            None
        );
        assert_eq!(
            name(claimed_by(&me, "web", std::slice::from_ref(&older))),
            Some("older".into())
        );
        assert_eq!(
            name(claimed_by(&me, "web", std::slice::from_ref(&flying))),
            Some("flying".into())
        );
        assert_eq!(
            name(claimed_by(&me, "web", &[older.clone(), flying.clone()])),
            Some("flying".into()),
            "the one in flight is the holder to name"
        );
        assert_eq!(name(claimed_by(&me, "web", &[done])), None);
        assert_eq!(
            name(claimed_by(&me, "other", std::slice::from_ref(&older))),
            None
        );
        // Same second: the name decides, whatever order the list came in.
        let twin = claimant("a-twin", at(10), Phase::Pending);
        assert_eq!(name(claimed_by(&me, "web", &[twin])), Some("a-twin".into()));
        // Once in flight, a Pending Release never takes it away.
        let me_flying = claimant("me", at(10), Phase::Progressing);
        assert_eq!(name(claimed_by(&me_flying, "web", &[older, newer])), None);
        // A Release not created yet (plan on a file) is younger than any stored one.
        let unsaved = claimant("", None, Phase::Pending);
        let stored = claimant("stored", at(1_000_000), Phase::Pending);
        assert_eq!(
            name(claimed_by(&unsaved, "web", &[stored])),
            Some("stored".into())
        );
    }

    #[test]
    fn a_release_refused_for_its_own_problem_claims_nothing() {
        let me = claimant("me", at(10), Phase::Pending);
        let mut broken = claimant("broken", at(5), Phase::Pending);
        broken.refused = true;
        assert_eq!(claimed_by(&me, "web", std::slice::from_ref(&broken)), None);
        // Refused in flight cannot happen, but in flight always claims.
        broken.phase = Phase::Progressing;
        assert!(claimed_by(&me, "web", std::slice::from_ref(&broken)).is_some());
    }

    #[test]
    fn refused_is_read_from_the_stalled_condition_except_a_claim() {
        use crate::api::ReleaseStatus;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
        let release = |reason: &str| {
            let mut r = Release::new("r", spec());
            r.status = Some(ReleaseStatus {
                phase: Some(Phase::Pending),
                conditions: vec![Condition {
                    type_: "Stalled".into(),
                    status: "True".into(),
                    reason: reason.into(),
                    message: String::new(),
                    observed_generation: None,
                    last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        Timestamp::UNIX_EPOCH,
                    ),
                }],
                ..Default::default()
            });
            r
        };
        assert!(Claimant::of(&release("InvalidSpec")).refused);
        assert!(Claimant::of(&release("DeploymentNotFound")).refused);
        assert!(!Claimant::of(&release("DeploymentClaimed")).refused);
        assert!(!Claimant::of(&Release::new("fresh", spec())).refused);
    }

    fn spec() -> ReleaseSpec {
        let svc = |name: &str, gateway: bool| ServiceSpec {
            name: name.into(),
            owner: None,
            deployment: name.into(),
            change: Change {
                images: [("app".to_owned(), "x:v2".to_owned())].into(),
                ..Default::default()
            },
            depends_on: vec![],
            traffic: gateway.then(|| Traffic {
                gateway_api: Some(GatewayApiTraffic {
                    http_route: "shop".into(),
                    service: Some("web-svc".into()),
                }),
            }),
            steps: None,
            analysis: None,
            ..Default::default()
        };
        ReleaseSpec {
            owner: "team".into(),
            summary: None,
            prometheus: None,
            defaults: None,
            services: vec![svc("web", false), svc("api", true)],
            paused: None,
            abort: None,
            resume_hold: None,
            hold_timeout: None,
            ..ReleaseSpec::default()
        }
    }

    #[test]
    fn an_older_pending_release_holds_the_deployment_with_field_and_fix() {
        let view = ClusterView {
            namespace: "shop".into(),
            release: Some(claimant("late", at(10), Phase::Pending)),
            services: [
                (
                    "web".to_owned(),
                    ServiceView {
                        containers: Some(vec!["app".into()]),
                        route_found: false,
                        replicas: None,
                    },
                ),
                (
                    "api".to_owned(),
                    ServiceView {
                        containers: Some(vec!["app".into()]),
                        route_found: true,
                        replicas: None,
                    },
                ),
            ]
            .into(),
            releases: vec![
                claimant("early", at(5), Phase::Pending),
                claimant("late", at(10), Phase::Pending),
            ],
            config_maps: Default::default(),
        };
        let found = cluster_problems(&spec(), &view);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].reason, StallReason::DeploymentClaimed);
        assert_eq!(found[0].problem.field, "spec.services[0].deployment");
        assert_eq!(
            found[0].problem.message,
            "Deployment \"web\" is claimed by Release \"early\", which was created first and has not \
             started (Pending); it goes first: wait for it, or abort it (spec.abort: true) or delete it"
        );
    }

    #[test]
    fn every_missing_object_is_named_with_its_reason_in_spec_order() {
        let view = ClusterView {
            namespace: "shop".into(),
            release: None,
            services: [(
                "api".to_owned(),
                ServiceView {
                    containers: Some(vec!["main".into(), "proxy".into()]),
                    route_found: false,
                    replicas: None,
                },
            )]
            .into(),
            releases: vec![],
            config_maps: Default::default(),
        };
        let found: Vec<(StallReason, String)> = cluster_problems(&spec(), &view)
            .into_iter()
            .map(|r| (r.reason, r.problem.to_string()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    StallReason::DeploymentNotFound,
                    "spec.services[0].deployment: Deployment \"web\" not found in namespace \"shop\"; \
                     create it or fix the name"
                        .to_owned()
                ),
                (
                    StallReason::ContainerNotFound,
                    "spec.services[1].change.images.app: Deployment \"api\" has no container \"app\" \
                     (it has \"main\", \"proxy\"); use one of those names"
                        .to_owned()
                ),
                (
                    StallReason::RouteNotFound,
                    "spec.services[1].traffic.gatewayAPI.httpRoute: HTTPRoute \"shop\" not found in \
                     namespace \"shop\", or it has no backendRef to Service \"web-svc\"; create it or fix the name"
                        .to_owned()
                ),
            ]
        );
    }
}

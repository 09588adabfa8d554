//! Observe: read everything one decision needs and reduce it to
//! `engine::Observations`. Reading and reducing are split so the reduction is
//! plain data in, data out; what traffic is in effect is each provider's to say.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};

use super::cache::{Cache, REVISION};
use super::template::{fields, template_state};
use super::{Context, Error};
use crate::analysis::{
    MeasurementRequest, QueryResult, QueryVars, Taken, Track, render_query, tenancy,
};
use crate::api::{MemberKind, Release, ServiceSpec};
use crate::engine::{
    ApprovalObservation, GateRequest, GateTaken, JobKind, Observations, PolicyObservation,
    ServiceObservation, StableObservation,
};
use crate::preflight::Claimant;
use crate::traffic::gateway::{POD_TEMPLATE_HASH, canary_service_name};
use crate::traffic::{
    self, Baseline, ServiceObjects, baseline_name, canary_deployment_name, rolled_out,
};

/// Everything read for one Release, by service name.
#[derive(Clone, Debug, Default)]
pub struct World {
    pub services: BTreeMap<String, ServiceObjects>,
    /// The Releases in the namespace, for the claim rule.
    pub releases: Vec<Claimant>,
    /// The ReleasePolicy that applies (see [`Cache::policy_of`]).
    pub policy: PolicyObservation,
    /// The ReleaseApprovals naming the Release.
    pub approvals: Vec<ApprovalObservation>,
    /// Migrations' Jobs and flags' keys, by service name: the whole
    /// observation of such a service, which has no Deployment objects.
    pub members: BTreeMap<String, ServiceObservation>,
}

impl World {
    /// Whether the store is behind the API server for a stable Deployment of
    /// the release: one GET each. Only before overwriting Deployments with
    /// their baselines on someone's request (a manual rollback), where a
    /// change made a moment ago and not yet in the store must be refused, not
    /// overwritten; never on the ordinary path.
    pub async fn behind(&self, cluster: &super::cluster::Cluster) -> Result<bool, Error> {
        let api: kube::Api<Deployment> = cluster.api();
        for cached in self.services.values().filter_map(|o| o.stable.as_ref()) {
            let live = api.get_opt(&cached.name_any()).await.map_err(Error::Kube)?;
            if live.and_then(|d| d.resource_version()) != cached.resource_version() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Read from the controller's stores: no request to the API server.
    pub fn read(cache: &Cache, rel: &Release) -> Result<World, Error> {
        let name = rel.name_any();
        let ns = rel.namespace().unwrap_or_default();
        let mut world = World {
            releases: cache.claimants(&ns),
            policy: cache.policy_of(rel),
            approvals: cache.approvals_of(&ns, &name),
            ..World::default()
        };
        let mut found = Vec::new();
        for svc in &rel.spec.services {
            let deployment = match svc.kind() {
                MemberKind::Deployment { deployment, .. } => deployment,
                MemberKind::Job(_) => {
                    let job = |kind| {
                        let job = cache.job(&ns, &super::migration::name(rel, &svc.name, kind))?;
                        let pods = match job.metadata.uid.as_deref() {
                            Some(uid) => cache.pods_of(&ns, uid),
                            None => Vec::new(),
                        };
                        Some(super::migration::observe(&job, &pods))
                    };
                    let member = ServiceObservation {
                        forward_job: job(JobKind::Forward),
                        rollback_job: job(JobKind::Rollback),
                        ..ServiceObservation::default()
                    };
                    world.members.insert(svc.name.clone(), member);
                    continue;
                }
                MemberKind::Flag(flag) => {
                    let cm = flag
                        .config_map
                        .as_deref()
                        .and_then(|name| cache.config_map(&ns, name));
                    let member = ServiceObservation {
                        flag: super::flag::observe(flag, cm.as_ref()),
                        ..ServiceObservation::default()
                    };
                    world.members.insert(svc.name.clone(), member);
                    continue;
                }
            };
            let stable = cache.deployment(&ns, deployment);
            let canary = cache.deployment(&ns, &canary_deployment_name(deployment));
            let baseline_cr = cache.baseline(&ns, &baseline_name(&name, &svc.name));
            let mut o =
                ServiceObjects {
                    stable,
                    canary,
                    baseline: match baseline_cr {
                        Some(cr) => Some(Baseline::from_revision(&cr).map_err(|reason| {
                            Error::Baseline {
                                name: cr.name_any(),
                                reason,
                            }
                        })?),
                        None => None,
                    },
                    ..ServiceObjects::default()
                };
            if let Some(g) = svc.traffic.as_ref().and_then(|t| t.gateway_api.as_ref()) {
                let service = g.service.clone().unwrap_or_else(|| svc.name.clone());
                o.stable_service = cache.service(&ns, &service);
                o.canary_service = cache.service(&ns, &canary_service_name(&service));
                o.route = cache.route(&ns, &g.http_route);
            }
            found.push((svc.name.clone(), o));
        }
        let uids: Vec<&str> = found
            .iter()
            .flat_map(|(_, o)| [&o.stable, &o.canary])
            .filter_map(|d| d.as_ref()?.metadata.uid.as_deref())
            .collect();
        let replica_sets = cache.replica_sets(&ns, &uids);
        for (svc, mut o) in found {
            o.stable_hash = o
                .stable
                .as_ref()
                .and_then(|d| current_hash(&replica_sets, d));
            o.canary_hash = o
                .canary
                .as_ref()
                .and_then(|d| current_hash(&replica_sets, d));
            world.services.insert(svc, o);
        }
        Ok(world)
    }

    /// The objects of service `name` (none read: nothing exists).
    pub fn objects(&self, name: &str) -> ServiceObjects {
        self.services.get(name).cloned().unwrap_or_default()
    }

    pub fn observations(&self, rel: &Release) -> Observations {
        let services = rel
            .spec
            .services
            .iter()
            .map(|svc| (svc.name.clone(), self.observe_service(svc)))
            .collect();
        Observations {
            services,
            measurements: Vec::new(),
            releases: self.releases.clone(),
            refused: None,
            policy: self.policy.clone(),
            approvals: self.approvals.clone(),
            gates: Vec::new(),
            cross_team_limit: None,
            // The reconcile fills them (`notify::observe`): the Secrets are
            // the operator's, not the Release's.
            receiver_problems: Vec::new(),
            receivers: Vec::new(),
            // The reconcile fills it from the operator's flags.
            reach: Default::default(),
        }
    }

    fn observe_service(&self, svc: &ServiceSpec) -> ServiceObservation {
        if let Some(member) = self.members.get(&svc.name) {
            return member.clone();
        }
        let o = self.services.get(&svc.name).cloned().unwrap_or_default();
        let stable = o.stable.as_ref().map(|d| {
            let template = d
                .spec
                .as_ref()
                .map(|s| s.template.clone())
                .unwrap_or_default();
            StableObservation {
                containers: template
                    .spec
                    .as_ref()
                    .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
                    .unwrap_or_default(),
                template: template_state(
                    &template,
                    o.baseline.as_ref().map(|b| &b.template),
                    &svc.change,
                ),
                images: template
                    .spec
                    .as_ref()
                    .into_iter()
                    .flat_map(|s| &s.containers)
                    .filter_map(|c| Some((c.name.clone(), c.image.clone()?)))
                    .collect(),
                fields: fields(
                    &template,
                    o.baseline.as_ref().map(|b| &b.template),
                    &svc.change,
                    d.metadata.managed_fields.as_deref().unwrap_or_default(),
                ),
                rolled_out: rolled_out(d),
                replicas: traffic::spec_replicas(d),
                paused: d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false),
                rollout_failed: d
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .into_iter()
                    .flatten()
                    .any(|c| {
                        c.type_ == "Progressing"
                            && c.status == "False"
                            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
                    }),
            }
        });
        let in_effect = traffic::for_service(svc).observe(&o);
        ServiceObservation {
            stable,
            canary: in_effect.canary,
            baseline_recorded: o.baseline.is_some(),
            route: in_effect.route,
            ..ServiceObservation::default()
        }
    }
}

/// The pod-template-hash of the ReplicaSet of `d`'s current revision, from
/// the ReplicaSets' metadata.
pub fn current_hash(replica_sets: &[ObjectMeta], d: &Deployment) -> Option<String> {
    let uid = d.meta().uid.as_deref()?;
    let revision = d.annotations().get(REVISION)?;
    let at = |m: &ObjectMeta, key: &str| m.annotations.as_ref().and_then(|a| a.get(key)).cloned();
    replica_sets
        .iter()
        .filter(|rs| rs.owner_references.iter().flatten().any(|o| o.uid == uid))
        .find(|rs| at(rs, REVISION).as_ref() == Some(revision))
        .and_then(|rs| rs.labels.as_ref()?.get(POD_TEMPLATE_HASH).cloned())
}

/// Run the measurements the engine asked for, concurrently (as far as the
/// operator's bound on Prometheus queries allows). Requests that render to the
/// same query at the same Prometheus are asked once and share the answer.
pub async fn measure(
    ctx: &Context,
    rel: &Release,
    world: &World,
    due: &[MeasurementRequest],
    default_url: &str,
) -> Vec<Taken> {
    ask_prometheus(ctx, rel, world, due, &[], default_url)
        .await
        .0
}

/// Run the measurements and the go/no-go gate checks the engine asked for,
/// all through one bounded, coalesced round of queries: a gate and a metric
/// that render to the same query are asked once. A gate's query is rendered
/// with `{{namespace}}` and `{{release}}` (the only placeholders a gate may
/// use: validation refuses the others).
pub async fn ask_prometheus(
    ctx: &Context,
    rel: &Release,
    world: &World,
    due: &[MeasurementRequest],
    gates: &[GateRequest],
    default_url: &str,
) -> (Vec<Taken>, Vec<GateTaken>) {
    let url = rel
        .spec
        .prometheus
        .as_ref()
        .map(|p| p.address.clone())
        .unwrap_or_else(|| default_url.to_string());
    let ns = rel.namespace().unwrap_or_default();
    // Steps and analysis limits may come from the policy; the metrics never
    // do, but they are read through the same door as everything else.
    let spec = signalman_core::policy::effective(rel);
    // Checked before the release started too; again here, because the
    // operator may have been restarted with narrower rules since.
    let reach = ctx.config.reach();
    let refused = (!reach.allows(&url)).then(|| {
        format!(
            "no query was sent: spec.prometheus.address {}",
            tenancy::address_refusal(&url)
        )
    });
    let run = |query: String| match (&refused, reach.enforce_namespace) {
        (Some(why), _) => Err(why.clone()),
        (None, false) => Ok(query),
        (None, true) => tenancy::confine(&query, &ns)
            .map_err(|why| format!("not run: the query {why} (--enforce-namespace)")),
    };
    // Each request's queries (a `compare` metric's canary query, then its
    // stable one), as they run, or why it has none.
    let measured: Vec<Result<Vec<String>, String>> = due
        .iter()
        .map(|req| {
            queries(rel, &spec, world, req)?
                .into_iter()
                .map(run)
                .collect()
        })
        .collect();
    let gate_vars = QueryVars {
        namespace: ns.clone(),
        release: rel.name_any(),
        ..QueryVars::default()
    };
    let checked: Vec<Result<String, String>> = gates
        .iter()
        .map(|req| {
            // A service's gates as well as the release's own (names are
            // unique across both).
            match spec.gate(&req.gate).and_then(|g| g.query.as_deref()) {
                Some(query) => run(render_query(query, &gate_vars)),
                None => Err(format!(
                    "gate {:?} is not a query gate of spec.gates or spec.services[].gates",
                    req.gate
                )),
            }
        })
        .collect();
    let distinct: BTreeSet<&str> = measured
        .iter()
        .filter_map(|q| q.as_ref().ok())
        .flatten()
        .map(String::as_str)
        .chain(checked.iter().filter_map(|q| q.as_deref().ok()))
        .collect();
    // The credentials configured for this address, if any (never the
    // Release's to choose).
    let access = super::prometheus_auth::access(ctx, &url);
    let answers: BTreeMap<&str, (jiff::Timestamp, QueryResult)> =
        futures::future::join_all(distinct.into_iter().map(|query| {
            let (url, access) = (&url, &access);
            async move {
                let at = jiff::Timestamp::now();
                (
                    query,
                    (at, ctx.prometheus.instant_as(url, query, access).await),
                )
            }
        }))
        .await
        .into_iter()
        .collect();
    let answer = |query: Result<&str, &String>| match query {
        Ok(q) => answers[q].clone(),
        Err(e) => (jiff::Timestamp::now(), QueryResult::Error(e.clone())),
    };
    let taken = due
        .iter()
        .zip(&measured)
        .map(|(req, queries)| {
            let (at, result, stable) = match queries.as_ref().map(Vec::as_slice) {
                Ok([canary, stable]) => {
                    let (at, result) = answer(Ok(canary));
                    (at, result, Some(answer(Ok(stable)).1))
                }
                Ok([query]) => {
                    let (at, result) = answer(Ok(query));
                    (at, result, None)
                }
                Ok(_) => unreachable!("one query per track"),
                Err(e) => {
                    let (at, result) = answer(Err(e));
                    (at, result, None)
                }
            };
            if let QueryResult::Value(v) = &result {
                ctx.metrics
                    .measured(&ns, &rel.name_any(), &req.service, &req.metric, *v);
            }
            tracing::info!(service = %req.service, metric = %req.metric, step = req.step, ?result, ?stable, "measured");
            Taken {
                service: req.service.clone(),
                metric: req.metric.clone(),
                step: req.step,
                result,
                stable,
                // The canary's, for a compare metric: the query the value came from.
                query: queries.as_ref().ok().and_then(|q| q.first().cloned()),
                at,
            }
        })
        .collect();
    let gates_taken = gates
        .iter()
        .zip(&checked)
        .map(|(req, query)| {
            let (at, result) = answer(query.as_deref());
            tracing::info!(gate = %req.gate, ?result, "gate checked");
            GateTaken {
                gate: req.gate.clone(),
                result,
                query: query.as_ref().ok().cloned(),
                at,
            }
        })
        .collect();
    (taken, gates_taken)
}

/// The queries one measurement runs: a service's metric rendered with its
/// placeholders, a `compare` metric twice (`{{track}}` the canary's selector,
/// then the stable pods'), a verification metric (`service` empty) with
/// `{{namespace}}` and `{{release}}` only, since it watches the whole train.
fn queries(
    rel: &Release,
    spec: &crate::api::ReleaseSpec,
    world: &World,
    req: &MeasurementRequest,
) -> Result<Vec<String>, String> {
    let release_vars = QueryVars {
        namespace: rel.namespace().unwrap_or_default(),
        release: rel.name_any(),
        ..QueryVars::default()
    };
    if req.service.is_empty() {
        return spec
            .verify
            .as_ref()
            .and_then(|v| v.analysis.metrics.iter().find(|m| m.name == req.metric))
            .map(|m| vec![render_query(&m.query, &release_vars)])
            .ok_or_else(|| format!("metric {:?} is not in spec.verify", req.metric));
    }
    let svc = spec.service(&req.service);
    let metric = svc.and_then(|svc| {
        spec.analysis_of(svc)
            .metrics
            .into_iter()
            .find(|m| m.name == req.metric)
    });
    let (Some(svc), Some(metric)) = (svc, metric) else {
        return Err(format!(
            "metric {:?} of service {:?} is not in the spec",
            req.metric, req.service
        ));
    };
    let o = world.objects(&svc.name);
    let vars = QueryVars {
        service: svc.kubernetes_service().to_owned(),
        canary_hash: o.canary_hash.unwrap_or_default(),
        stable_hash: o.stable_hash.unwrap_or_default(),
        ..release_vars
    };
    let canary = render_query(&metric.query, &on_track(&vars, Track::Canary));
    Ok(match metric.compare {
        Some(_) => vec![
            canary,
            render_query(&metric.query, &on_track(&vars, Track::Stable)),
        ],
        None => vec![canary],
    })
}

fn on_track(vars: &QueryVars, track: Track) -> QueryVars {
    QueryVars {
        track,
        ..vars.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    /// An API server whose every answer is Deployment `web` at `version`:
    /// the live object, while the store holds another (a store lagging
    /// behind a write is not something a real server does on demand).
    async fn api_server_at(version: &'static str) -> kube::Client {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = conn.read(&mut buf).await;
                    let body = serde_json::json!({
                        "apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "web", "namespace": "shop", "resourceVersion": version},
                    })
                    .to_string();
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(resp.as_bytes()).await;
                });
            }
        });
        kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap()
    }

    #[tokio::test]
    async fn the_store_is_behind_when_a_deployment_is_newer_on_the_api_server() {
        let mut world = World::default();
        let mut cached = Deployment::default();
        cached.metadata.name = Some("web".into());
        cached.metadata.resource_version = Some("41".into());
        world.services.insert(
            "web".into(),
            ServiceObjects {
                stable: Some(cached),
                ..Default::default()
            },
        );
        let cluster = |client| {
            super::super::cluster::Cluster::new(
                client,
                "shop".into(),
                crate::metrics::Metrics::new(),
                Cache::new().0,
            )
        };
        let changed = cluster(api_server_at("42").await);
        assert!(world.behind(&changed).await.unwrap());
        let same = cluster(api_server_at("41").await);
        assert!(!world.behind(&same).await.unwrap());
    }

    fn context(prometheus_url: String) -> Context {
        let client =
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().unwrap()))
                .unwrap();
        Context::new(
            client,
            super::super::Config {
                prometheus_url,
                namespaces: Vec::new(),
                namespace_selector: None,
                metrics_addr: "127.0.0.1:0".parse().unwrap(),
                leader_election: None,
                stall_timeout: Duration::from_secs(60),
                max_reconciles: 1,
                max_queries: 4,
                cross_team_edges: 3,
                notifications: Default::default(),
                operator_namespace: String::new(),
                enforce_namespace: false,
                prometheus_allowed_addresses: Vec::new(),
                prometheus_auth: Default::default(),
            },
        )
    }

    #[tokio::test]
    async fn requests_that_render_to_the_same_query_are_asked_once() {
        // As the binary does: kube's TLS and the Prometheus client's disagree.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (url, seen) = super::super::prometheus::fake::serve(Duration::from_millis(10)).await;
        let ctx = context(url);
        // Two services measured by a query that names neither of them, and
        // one by a query of its own.
        let spec = signalman_core::testing::spec()
            .services(&[("a", &[]), ("b", &[])])
            .metric_at_most("errors", "sum(errors{namespace=\"{{namespace}}\"})", 1.0)
            .metric_at_most("latency", "max(latency{service=\"{{service}}\"})", 1.0)
            .build();
        let mut rel = Release::new("r", spec);
        rel.metadata.namespace = Some("shop".into());
        let due: Vec<MeasurementRequest> = ["a", "b"]
            .iter()
            .flat_map(|s| {
                ["errors", "latency"].map(|m| MeasurementRequest {
                    service: s.to_string(),
                    metric: m.to_string(),
                    step: 0,
                })
            })
            .collect();
        let taken = measure(
            &ctx,
            &rel,
            &World::default(),
            &due,
            &ctx.config.prometheus_url,
        )
        .await;
        assert_eq!(taken.len(), 4);
        assert!(
            taken.iter().all(|t| t.result == QueryResult::Value(0.5)),
            "{taken:?}"
        );
        // errors once for both, latency once per service.
        assert_eq!(seen.queries.load(Ordering::SeqCst), 3);

        // Gates go the same way: rendered with the namespace and the
        // release, asked together with the measurements, and a gate whose
        // query is a metric's shares its answer.
        let gate = |name: &str, query: &str| crate::api::Gate {
            name: name.into(),
            query: Some(query.into()),
            min: None,
            max: Some(0.0),
            interval: None,
            approval: None,
        };
        rel.spec.gates = vec![
            gate("same-as-errors", "sum(errors{namespace=\"{{namespace}}\"})"),
            gate(
                "smoke",
                "sum(smoke_failed{namespace=\"{{namespace}}\",release=\"{{release}}\"})",
            ),
            crate::api::Gate {
                approval: Some(true),
                query: None,
                max: None,
                ..gate("sign-off", "")
            },
        ];
        // A service's own query gate is asked like the release's.
        rel.spec.services[0].gates = vec![gate(
            "a-ready",
            "sum(ready{namespace=\"{{namespace}}\",release=\"{{release}}\"})",
        )];
        let gates: Vec<GateRequest> = ["same-as-errors", "smoke", "sign-off", "a-ready"]
            .iter()
            .map(|g| GateRequest {
                gate: g.to_string(),
            })
            .collect();
        let (taken, checked) = ask_prometheus(
            &ctx,
            &rel,
            &World::default(),
            &due[..1],
            &gates,
            &ctx.config.prometheus_url,
        )
        .await;
        assert_eq!(taken.len(), 1);
        assert_eq!(checked.len(), 4);
        assert_eq!(checked[0].result, QueryResult::Value(0.5));
        assert_eq!(checked[1].result, QueryResult::Value(0.5));
        assert_eq!(checked[3].result, QueryResult::Value(0.5), "{checked:?}");
        // Each says the query it sent, rendered; the approval gate sent none.
        assert_eq!(
            checked[3].query.as_deref(),
            Some("sum(ready{namespace=\"shop\",release=\"r\"})")
        );
        assert_eq!(checked[2].query, None);
        assert_eq!(
            taken[0].query.as_deref(),
            Some("sum(errors{namespace=\"shop\"})")
        );
        // An approval gate has no query: an error saying so, never a value.
        assert!(
            matches!(&checked[2].result, QueryResult::Error(e) if e.contains("sign-off")),
            "{checked:?}"
        );
        // errors (shared by the metric and the first gate), smoke and a-ready.
        assert_eq!(seen.queries.load(Ordering::SeqCst), 6);
    }

    fn first_metric(spec: &mut crate::api::ReleaseSpec) -> &mut crate::api::Metric {
        let analysis = spec.defaults.as_mut().and_then(|d| d.analysis.as_mut());
        &mut analysis.expect("the builder's analysis").metrics[0]
    }

    #[tokio::test]
    async fn a_compare_metric_runs_per_track_and_verification_names_no_service() {
        let mut spec = signalman_core::testing::spec()
            .services(&[("api", &[])])
            .metric_at_most(
                "errors",
                "sum(errors{namespace=\"{{namespace}}\",service=\"{{service}}\",{{track}}})",
                1.0,
            )
            .build();
        let metric = first_metric(&mut spec);
        metric.max = None;
        metric.compare = Some(crate::api::Compare {
            max_increase: Some(0.005),
            ..Default::default()
        });
        spec.verify = Some(crate::api::Verify {
            bake: std::time::Duration::from_secs(60).into(),
            analysis: crate::api::Analysis {
                metrics: vec![crate::api::Metric {
                    name: "checkout".into(),
                    query: "sum(ok{namespace=\"{{namespace}}\",release=\"{{release}}\",service=\"{{service}}\"})".into(),
                    min: Some(0.99),
                    max: None,
                    compare: None,
                }],
                ..Default::default()
            },
        });
        let mut rel = Release::new("r", spec.clone());
        rel.metadata.namespace = Some("shop".into());
        let req = |service: &str, metric: &str| MeasurementRequest {
            service: service.into(),
            metric: metric.into(),
            step: 0,
        };
        let world = World::default();
        assert_eq!(
            queries(&rel, &spec, &world, &req("api", "errors")),
            Ok(vec![
                r#"sum(errors{namespace="shop",service="api",track="canary"})"#.to_owned(),
                r#"sum(errors{namespace="shop",service="api",track!="canary"})"#.to_owned(),
            ])
        );
        assert_eq!(
            queries(&rel, &spec, &world, &req("", "checkout")),
            Ok(vec![
                r#"sum(ok{namespace="shop",release="r",service=""})"#.to_owned()
            ])
        );
        // A plain metric is asked once, with the canary's matcher.
        first_metric(&mut spec).compare = None;
        assert_eq!(
            queries(&rel, &spec, &world, &req("api", "errors")),
            Ok(vec![
                r#"sum(errors{namespace="shop",service="api",track="canary"})"#.to_owned()
            ])
        );
        assert!(
            queries(&rel, &spec, &world, &req("", "errors"))
                .is_err_and(|e| e.contains("spec.verify")),
        );

        // Both tracks are asked, and the stable one's answer comes back with the canary's.
        first_metric(&mut spec).compare = Some(crate::api::Compare {
            max_ratio: Some(1.2),
            ..Default::default()
        });
        rel.spec = spec;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (url, seen) = super::super::prometheus::fake::serve(Duration::from_millis(1)).await;
        let ctx = context(url);
        let taken = measure(
            &ctx,
            &rel,
            &world,
            &[req("api", "errors")],
            &ctx.config.prometheus_url,
        )
        .await;
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].result, QueryResult::Value(0.5));
        assert_eq!(taken[0].stable, Some(QueryResult::Value(0.5)));
        assert_eq!(seen.queries.load(Ordering::SeqCst), 2);
    }

    /// The shell keeps the operator's rules at every query, whatever the
    /// engine decided: an address off the list is sent nothing, and with
    /// --enforce-namespace the query that runs is the confined one.
    #[tokio::test]
    async fn queries_go_only_where_the_operator_allows_and_read_only_the_namespace() {
        let (url, seen) = super::super::prometheus::fake::serve(Duration::from_millis(1)).await;
        let spec = signalman_core::testing::spec()
            .services(&[("a", &[])])
            .metric_at_most(
                "errors",
                "sum(rate(errors{service=\"{{service}}\"}[1m]))",
                1.0,
            )
            .metric_at_most("theirs", "sum(errors{namespace=\"payments\"})", 1.0)
            .build();
        let mut rel = Release::new("r", spec);
        rel.metadata.namespace = Some("shop".into());
        let due: Vec<MeasurementRequest> = ["errors", "theirs"]
            .iter()
            .map(|m| MeasurementRequest {
                service: "a".into(),
                metric: m.to_string(),
                step: 0,
            })
            .collect();

        // Confined: the query sent carries the namespace; the other is not sent.
        let mut ctx = context(url.clone());
        ctx.config.enforce_namespace = true;
        let taken = measure(&ctx, &rel, &World::default(), &due, &url).await;
        assert_eq!(taken[0].result, QueryResult::Value(0.5));
        assert_eq!(
            *seen.last_query.lock().unwrap(),
            r#"sum(rate(errors{namespace="shop",service="a"}[1m]))"#
        );
        assert_eq!(
            taken[1].result,
            QueryResult::Error(
                "not run: the query reads namespace \"payments\" (namespace=\"payments\"), but a \
                 Release in namespace \"shop\" may read only its own namespace's series \
                 (--enforce-namespace)"
                    .into()
            )
        );
        assert_eq!(seen.queries.load(Ordering::SeqCst), 1);

        // An address that is not the operator's nor on its list: nothing sent.
        let ctx = context("http://prometheus.monitoring:9090".into());
        rel.spec.prometheus = Some(crate::api::PrometheusSpec {
            address: url.clone(),
        });
        let taken = measure(
            &ctx,
            &rel,
            &World::default(),
            &due,
            &ctx.config.prometheus_url,
        )
        .await;
        for t in &taken {
            assert!(
                matches!(&t.result, QueryResult::Error(e) if e.starts_with("no query was sent: spec.prometheus.address \"http://127.0.0.1:")),
                "{t:?}"
            );
        }
        assert_eq!(seen.queries.load(Ordering::SeqCst), 1);
        // Listed, it is used.
        let mut ctx = context("http://prometheus.monitoring:9090".into());
        ctx.config.prometheus_allowed_addresses = vec![format!("{url}/")];
        let taken = measure(
            &ctx,
            &rel,
            &World::default(),
            &due,
            &ctx.config.prometheus_url,
        )
        .await;
        assert!(
            taken.iter().all(|t| t.result == QueryResult::Value(0.5)),
            "{taken:?}"
        );
        assert_eq!(seen.queries.load(Ordering::SeqCst), 3);
    }
}

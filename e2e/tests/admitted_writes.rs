//! Nothing the API server accepts may reach a write it then refuses.
//!
//! Generated Releases, drawn from what the CRD's schema admits and biased to
//! its edges (names at 56, 57 and 63 characters, Deployment names at 246 and
//! 247, Release names at 63 and 64 and with dots, env var names with `=`,
//! spaces or a leading digit, images with Unicode white space around them,
//! routes and containers that cannot exist, queries that do not parse,
//! unknown dependencies and cycles), are created (dry run) through the real
//! API server. Each one it accepts is put to the controller's preflight: the
//! same `validate`, `plan` and cluster checks, against stable Deployments,
//! Services and HTTPRoutes really created for it. Either the preflight
//! refuses it, every problem naming a field (`spec.…` or `metadata.name`),
//! or every write the controller would make for it (baseline
//! ControllerRevision, canary Deployment at each step, canary Service and
//! route for Gateway API, promotion, withdrawal, restore: built by the
//! controller's own `act::writes`), and every pod a ReplicaSet would create
//! from the templates it writes, is accepted by the API server as a dry run
//! (`dryRun=All`).
//!
//! The specs go to two copies of the CRD under private groups: this tree's
//! own, and the same schema without its CEL rules, as an API server with an
//! older CRD (or none of its rules) would admit. The property is checked on
//! the larger of the two sets, so the preflight alone must keep every write
//! valid: the CEL rules only say it earlier.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::{Duration as StdDuration, Instant};

use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{CustomResourceExt, ResourceExt};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use serde_json::{Value, json};
use signalman::api::{
    Analysis, Change, Defaults, Duration, GatewayApiTraffic, Metric, PrometheusSpec, Release,
    ReleaseSpec, ServiceSpec, SkipAnalysis, Step, Traffic, validate, validate_name,
};
use signalman::controller::act;
use signalman::controller::cache::Cache;
use signalman::controller::cluster::Cluster;
use signalman::engine::Action;
use signalman::metrics::Metrics;
use signalman::plan;
use signalman::preflight::{self, Claimant, ClusterView, ServiceView};
use signalman::traffic::gateway::{http_route_resource, routes_to};
use signalman::traffic::{Baseline, ServiceObjects, Write};
use signalman_e2e::{self as e2e, TestNamespace, operator};

/// Enough to meet each edge many times in well under a minute.
const CASES: u32 = 400;
/// Marks what a case created, for its cleanup.
const CASE_LABEL: &str = "admitted-writes/case";

// ------------------------------------------------------------- the generator

/// Mostly `plain`, sometimes one of `edges`: most cases pass the preflight
/// and have their writes checked, each edge is still met many times.
fn edgy<T: Clone + std::fmt::Debug + 'static>(plain: T, edges: Vec<T>) -> BoxedStrategy<T> {
    prop_oneof![7 => Just(plain), 1 => proptest::sample::select(edges)].boxed()
}

fn dur(s: &str) -> Duration {
    s.parse().unwrap()
}

fn release_name() -> BoxedStrategy<String> {
    edgy(
        "train".to_owned(),
        vec![
            "r".repeat(63),
            "r".repeat(64),
            format!("{}.{}", "a".repeat(31), "b".repeat(31)),
            "checkout.v2".into(),
            "r".repeat(200),
        ],
    )
}

fn image() -> BoxedStrategy<String> {
    edgy(
        "registry.example/web:v2".to_owned(),
        vec![
            " web:v2".into(),
            "\u{a0}web:v2".into(),
            "\u{b}web:v2".into(),
            "web:v2\u{2003}".into(),
            "\u{85}web".into(),
            "web v2".into(),
            "web\u{0}v2".into(),
            "é/web:v2".into(),
            "w".repeat(4000),
        ],
    )
}

fn env() -> BoxedStrategy<BTreeMap<String, BTreeMap<String, String>>> {
    let name = edgy(
        "MODE".to_owned(),
        vec![
            "A=B".into(),
            "1X".into(),
            "ok.name-_2".into(),
            "WITH SPACE".into(),
            "é".into(),
            "_".into(),
            ".".into(),
            "-".into(),
            "x".repeat(300),
        ],
    );
    let value = edgy(
        "fast".to_owned(),
        vec![String::new(), "two\nlines".into(), "v".repeat(5000)],
    );
    prop_oneof![
        2 => Just(BTreeMap::new()),
        1 => proptest::collection::btree_map(name, value, 1..=2)
            .prop_map(|vars| [("app".to_owned(), vars)].into()),
    ]
    .boxed()
}

fn change() -> BoxedStrategy<Change> {
    let container = edgy(
        "app".to_owned(),
        vec!["side-car".into(), "App".into(), "a.b".into()],
    );
    (container, image(), env())
        .prop_map(|(container, image, env)| Change {
            images: [(container, image)].into(),
            env,
            ..Default::default()
        })
        .boxed()
}

fn traffic() -> BoxedStrategy<Option<Traffic>> {
    let gateway = (
        edgy(
            "shop".to_owned(),
            vec!["r".repeat(253), "Shop_Route".into(), "shop.v2".into()],
        ),
        edgy(
            None,
            vec![
                Some("web-stable".to_owned()),
                Some("s".repeat(56)),
                Some("s".repeat(57)),
                Some("s".repeat(63)),
            ],
        ),
    )
        .prop_map(|(http_route, service)| {
            Some(Traffic {
                gateway_api: Some(GatewayApiTraffic {
                    http_route,
                    service,
                }),
            })
        });
    prop_oneof![3 => Just(None), 2 => gateway].boxed()
}

fn steps() -> BoxedStrategy<Option<Vec<Step>>> {
    let ladder = |weights: &[i32], bake: &str| {
        weights
            .iter()
            .map(|&weight| Step {
                weight,
                bake: dur(bake),
                approval: None,
            })
            .collect::<Vec<_>>()
    };
    let twenty: Vec<i32> = (1..=20).map(|i| i * 5).collect();
    edgy(
        None,
        vec![
            Some(ladder(&[1, 100], "1s")),
            Some(ladder(&[99, 100], "1h")),
            Some(ladder(&twenty, "1s")),
            Some(ladder(&[50, 50, 100], "1s")),
            Some(ladder(&[10, 60], "1s")),
        ],
    )
}

fn metric_query() -> BoxedStrategy<String> {
    edgy(
        r#"sum(rate(errors_total{service="{{service}}"}[1m])) or vector(0)"#.to_owned(),
        vec![
            "up".into(),
            "{{service}}_errors:rate1m".into(),
            "rate(x[1m]".into(),
            r#"x{a="{{servce}}"}"#.into(),
            "x[5m]".into(),
            "sum(".into(),
        ],
    )
}

fn analysis() -> BoxedStrategy<Analysis> {
    let measured = metric_query().prop_map(|query| Analysis {
        metrics: vec![Metric {
            name: "errors".into(),
            query,
            min: None,
            max: Some(0.01),
            compare: None,
        }],
        ..Default::default()
    });
    let skipped = Just(Analysis {
        skip_analysis: Some(SkipAnalysis {
            reason: "batch worker".into(),
        }),
        ..Default::default()
    });
    prop_oneof![4 => measured, 1 => skipped, 1 => Just(Analysis::default())].boxed()
}

fn service() -> impl Strategy<Value = ServiceSpec> {
    (
        edgy(
            None,
            vec![
                Some("s".repeat(56)),
                Some("s".repeat(57)),
                Some("s".repeat(63)),
            ],
        ),
        edgy(
            None,
            vec![
                Some("d".repeat(246)),
                Some("d".repeat(247)),
                Some("Web_App".to_owned()),
                Some("web.v2".to_owned()),
            ],
        ),
        change(),
        traffic(),
        steps(),
        prop_oneof![4 => Just(None), 1 => analysis().prop_map(Some)],
        edgy(Vec::new(), vec![vec!["ghost"], vec!["a"], vec!["b"]]),
    )
        .prop_map(
            |(name, deployment, change, traffic, steps, analysis, deps)| ServiceSpec {
                // Filled in by `services` where left out.
                name: name.unwrap_or_default(),
                owner: None,
                deployment: deployment.unwrap_or_default(),
                change,
                depends_on: deps.into_iter().map(str::to_owned).collect(),
                traffic,
                steps,
                analysis,
                ..Default::default()
            },
        )
}

fn services() -> BoxedStrategy<Vec<ServiceSpec>> {
    proptest::collection::vec(service(), 1..=3)
        .prop_map(|mut v| {
            for (i, svc) in v.iter_mut().enumerate() {
                let plain = ["a", "b", "c"][i];
                if svc.name.is_empty() {
                    svc.name = plain.to_owned();
                }
                if svc.deployment.is_empty() {
                    svc.deployment = format!("web-{plain}");
                }
            }
            v
        })
        .boxed()
}

/// One generated case: the Release and what its cluster holds.
#[derive(Clone, Debug)]
struct Case {
    name: String,
    spec: ReleaseSpec,
    /// `spec.replicas` of every stable Deployment (as the providers see it).
    replicas: i32,
    /// The env vars the change names are `valueFrom` in the stable Deployment.
    value_from: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        release_name(),
        services(),
        analysis(),
        edgy(
            None,
            vec![
                Some("http://prometheus.monitoring:9090".to_owned()),
                Some("http://prom etheus:9090".into()),
                Some("http://[:::]".into()),
            ],
        ),
        proptest::sample::select(vec![0, 1, 2, 3, 10, 1000]),
        any::<bool>(),
    )
        .prop_map(
            |(name, services, defaults, prometheus, replicas, value_from)| Case {
                name,
                spec: ReleaseSpec {
                    owner: "team-checkout".into(),
                    prometheus: prometheus.map(|address| PrometheusSpec { address }),
                    defaults: Some(Defaults {
                        steps: None,
                        analysis: Some(defaults),
                    }),
                    services,
                    ..Default::default()
                },
                replicas,
                value_from,
            },
        )
}

// ------------------------------------------------------------- the cluster side

/// A private copy of the Release CRD under `group`; without its CEL rules
/// when `cel` is false.
async fn install_private_crd(client: &kube::Client, group: &str, cel: bool) -> ApiResource {
    let mut crd = Release::crd();
    crd.metadata.name = Some(format!("releases.{group}"));
    crd.spec.group = group.to_owned();
    crd.spec.names.short_names = None;
    crd.spec.names.categories = None;
    if !cel {
        for version in &mut crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            {
                strip_cel(schema);
            }
        }
    }
    operator::apply_crd(client, &crd).await;
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, "v1alpha1", "Release"),
        "releases",
    );
    e2e::wait_for(
        "the private Release CRD to be served",
        StdDuration::from_secs(30),
        || {
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
            async move { Ok(api.list(&Default::default()).await.ok().map(|_| ())) }
        },
    )
    .await;
    ar
}

fn strip_cel(schema: &mut JSONSchemaProps) {
    schema.x_kubernetes_validations = None;
    for p in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        strip_cel(p);
    }
    if let Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(items)) =
        schema.items.as_mut()
    {
        strip_cel(items);
    }
    if let Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrBool::Schema(extra)) =
        schema.additional_properties.as_mut()
    {
        strip_cel(extra);
    }
}

async fn delete_private_crd(client: &kube::Client, group: &str) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let _ = api
        .delete(&format!("releases.{group}"), &Default::default())
        .await;
}

struct Env {
    client: kube::Client,
    namespace: String,
    cluster: Cluster,
    with_cel: (Api<DynamicObject>, ApiResource),
    without_cel: (Api<DynamicObject>, ApiResource),
}

/// The stored Release when the API server accepts `case` (dry run), else its message.
async fn admit(
    (api, resource): &(Api<DynamicObject>, ApiResource),
    case: &Case,
) -> Result<DynamicObject, String> {
    let mut obj = DynamicObject::new(&case.name, resource);
    obj.data = json!({ "spec": case.spec });
    let params = PostParams {
        dry_run: true,
        ..Default::default()
    };
    match api.create(&params, &obj).await {
        Ok(stored) => Ok(stored),
        Err(kube::Error::Api(s)) if s.code == 422 || s.code == 400 => Err(s.message),
        Err(e) => panic!("the API server did not answer: {e}"),
    }
}

/// What one case created for real: deleted when the case ends.
#[derive(Default)]
struct Created {
    deployments: Vec<String>,
    services: Vec<String>,
    routes: Vec<String>,
}

const SELECTOR: &str = "admitted-writes/app";

/// The user's stable Deployment for `svc`: no pods (0 replicas), the
/// containers the change names, the env vars it names as `valueFrom` or literal.
fn stable_deployment(case: &Case, i: usize, svc: &ServiceSpec, with_env: bool) -> Deployment {
    let names: std::collections::BTreeSet<&String> = svc
        .change
        .images
        .keys()
        .chain(svc.change.env.keys())
        .collect();
    let containers: Vec<Value> = names
        .into_iter()
        .map(|c| {
            let env: Vec<Value> = svc
                .change
                .env
                .get(c)
                .into_iter()
                .flatten()
                .filter(|_| with_env)
                .map(|(name, _)| {
                    if case.value_from {
                        json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
                    } else {
                        json!({"name": name, "value": "old"})
                    }
                })
                .collect();
            json!({"name": c, "image": "registry.example/web:v1", "env": env})
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": svc.deployment, "labels": {CASE_LABEL: "true"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {SELECTOR: format!("s{i}")}},
            "template": {
                "metadata": {"labels": {SELECTOR: format!("s{i}")}},
                "spec": {"containers": containers},
            },
        },
    }))
    .expect("a Deployment")
}

/// Create what `case`'s services run on, as a user would have it, and
/// return the objects each service sees and the preflight's view.
async fn create_cluster(
    env: &Env,
    case: &Case,
    spec: &ReleaseSpec,
    created: &mut Created,
) -> (Vec<ServiceObjects>, ClusterView) {
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.namespace);
    let services: Api<Service> = Api::namespaced(env.client.clone(), &env.namespace);
    let routes: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), &env.namespace, &http_route_resource());
    let pp = PostParams::default();
    let mut objects = Vec::new();
    let mut view = ClusterView {
        namespace: env.namespace.clone(),
        ..Default::default()
    };
    // Each route sends traffic to every stable Service that names it.
    let mut backends: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, svc) in spec.services.iter().enumerate() {
        // With the env vars, else (a name the API server refuses) without.
        let mut stable = None;
        for with_env in [true, false] {
            match deployments
                .create(&pp, &stable_deployment(case, i, svc, with_env))
                .await
            {
                Ok(d) => {
                    created.deployments.push(d.name_any());
                    stable = Some(d);
                    break;
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    stable = deployments.get_opt(&svc.deployment).await.ok().flatten();
                    break;
                }
                Err(_) => {}
            }
        }
        let mut obj = ServiceObjects {
            // The pod-template-hash of its ReplicaSet (a Deployment at 0
            // replicas gets one too; its value is always a short hash).
            stable_hash: Some("5d8f9c7b4".into()),
            ..Default::default()
        };
        if let Some(mut d) = stable {
            if let Some(s) = d.spec.as_mut() {
                s.replicas = Some(case.replicas);
            }
            obj.stable = Some(d);
        }
        if let Some(g) = svc.traffic.as_ref().and_then(|t| t.gateway_api.as_ref()) {
            let name = svc.kubernetes_service();
            let service: Service = serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {CASE_LABEL: "true"}},
                "spec": {"selector": {SELECTOR: format!("s{i}")}, "ports": [{"port": 80, "targetPort": 8080}]},
            }))
            .unwrap();
            match services.create(&pp, &service).await {
                Ok(s) => {
                    created.services.push(s.name_any());
                    obj.stable_service = Some(s);
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    obj.stable_service = services.get_opt(name).await.ok().flatten();
                }
                Err(_) => {}
            }
            backends
                .entry(g.http_route.clone())
                .or_default()
                .push(name.to_owned());
        }
        objects.push(obj);
    }
    for (route, backends) in &backends {
        let rules: Vec<Value> = backends
            .iter()
            .map(|b| json!({"backendRefs": [{"name": b, "port": 80}]}))
            .collect();
        let mut obj = DynamicObject::new(route, &http_route_resource());
        obj.metadata.labels = Some([(CASE_LABEL.to_owned(), "true".to_owned())].into());
        obj.data = json!({"spec": {"parentRefs": [{"name": "gateway"}], "rules": rules}});
        if routes.create(&pp, &obj).await.is_ok() {
            created.routes.push(route.clone());
        }
    }
    for (svc, obj) in spec.services.iter().zip(objects.iter_mut()) {
        if let Some(g) = svc.traffic.as_ref().and_then(|t| t.gateway_api.as_ref()) {
            obj.route = routes.get_opt(&g.http_route).await.ok().flatten();
        }
        let route_found = obj
            .route
            .as_ref()
            .is_some_and(|r| routes_to(&r.data["spec"]["rules"], svc.kubernetes_service()));
        view.services.insert(
            svc.name.clone(),
            ServiceView {
                containers: obj.stable.as_ref().map(|d| {
                    d.spec
                        .as_ref()
                        .and_then(|s| s.template.spec.as_ref())
                        .map(|p| p.containers.iter().map(|c| c.name.clone()).collect())
                        .unwrap_or_default()
                }),
                route_found,
                replicas: Some(case.replicas),
            },
        );
    }
    (objects, view)
}

async fn delete_created(env: &Env, created: Created) {
    let dp = DeleteParams::background();
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.namespace);
    let services: Api<Service> = Api::namespaced(env.client.clone(), &env.namespace);
    let routes: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), &env.namespace, &http_route_resource());
    for name in created.deployments {
        let _ = deployments.delete(&name, &dp).await;
    }
    for name in created.services {
        let _ = services.delete(&name, &dp).await;
    }
    for name in created.routes {
        let _ = routes.delete(&name, &dp).await;
    }
}

// ------------------------------------------------------------- the property

#[derive(Clone, Copy, Debug)]
enum Verdict {
    RefusedByApiServer,
    RefusedByPreflight,
    Written(usize),
}

/// Send `write` as a dry run; a refusal (422, 400) fails the case. A 404
/// means an object an earlier dry run would have created is not there,
/// which says nothing about this write's validity. A strategic merge patch
/// of the user's stable Deployment (an env var switching between `valueFrom`
/// and `value`) is made for real: the apply after it is judged against what
/// it leaves, and the Deployment is the case's own, without pods.
async fn dry_run(env: &Env, write: &Write, spec: &ReleaseSpec) -> Result<(), TestCaseError> {
    let sent = match write {
        Write::Patch { .. } => env.cluster.execute(write).await,
        _ => env.cluster.dry_run(write).await,
    };
    match sent {
        Ok(()) => Ok(()),
        Err(signalman::controller::Error::Kube(kube::Error::Api(s))) if s.code == 404 => Ok(()),
        Err(signalman::controller::Error::Kube(kube::Error::Api(s)))
            if s.code == 422 || s.code == 400 =>
        {
            Err(TestCaseError::fail(format!(
                "the preflight passed a Release whose write the API server refuses:\n  {}\n  write: {}",
                s.message,
                short(&format!("{write:?}"))
            )))
        }
        Err(e) => Err(TestCaseError::fail(format!(
            "dry run of {} failed: {e}\n  spec: {}",
            short(&format!("{write:?}")),
            serde_json::to_string(spec).unwrap_or_default()
        ))),
    }
}

/// The pod a ReplicaSet creates from `template`, as a dry run.
async fn pod_dry_run(env: &Env, template: &PodTemplateSpec) -> Result<(), TestCaseError> {
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.namespace);
    let mut pod = Pod {
        spec: template.spec.clone(),
        ..Default::default()
    };
    pod.metadata.name = Some("replica-pod".into());
    pod.metadata.labels = template.metadata.as_ref().and_then(|m| m.labels.clone());
    let params = PostParams {
        dry_run: true,
        ..Default::default()
    };
    match pods.create(&params, &pod).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) => Err(TestCaseError::fail(format!(
            "the preflight passed a Release whose pods the API server refuses (the ReplicaSet \
             would create none):\n  {}",
            s.message
        ))),
        Err(e) => panic!("the API server did not answer: {e}"),
    }
}

fn short(s: &str) -> String {
    if s.chars().count() > 600 {
        format!("{}…", s.chars().take(600).collect::<String>())
    } else {
        s.to_owned()
    }
}

/// What the shell's state would be after `write` (it was only a dry run):
/// enough for the next action's writes to be the ones the controller makes.
fn after(objects: &mut ServiceObjects, write: &Write) {
    match write {
        Write::Create { body, .. } if body["kind"] == "ControllerRevision" => {
            let cr: ControllerRevision = serde_json::from_value(body.clone()).unwrap();
            objects.baseline = Some(Baseline::from_revision(&cr).unwrap());
        }
        Write::Apply { name, body, .. } if body["kind"] == "Deployment" => {
            let stable = objects.stable.as_ref().map(|d| d.name_any());
            if stable.as_deref() != Some(name.as_str()) {
                objects.canary = serde_json::from_value(body.clone()).ok();
                objects.canary_hash = Some("7c9d6b5f8".into());
            }
        }
        Write::Apply { body, .. } if body["kind"] == "Service" => {
            objects.canary_service = serde_json::from_value(body.clone()).ok();
        }
        Write::Apply { body, .. } if body["kind"] == "HTTPRoute" => {
            if let Some(route) = objects.route.as_mut() {
                route.data["spec"]["rules"] = body["spec"]["rules"].clone();
            }
        }
        Write::Delete { name, .. } => {
            if objects
                .canary
                .as_ref()
                .is_some_and(|c| &c.name_any() == name)
            {
                objects.canary = None;
            }
            if objects
                .canary_service
                .as_ref()
                .is_some_and(|c| &c.name_any() == name)
            {
                objects.canary_service = None;
            }
        }
        _ => {}
    }
}

/// Every write of the train for each service, in the order the controller
/// makes them: baseline, each step's weight, promotion; then, as a rollback
/// would, the canary to 0, its removal and the baseline restored.
async fn write_everything(
    env: &Env,
    release: &Release,
    mut objects: Vec<ServiceObjects>,
) -> Result<usize, TestCaseError> {
    let spec = &release.spec;
    let mut count = 0;
    for (svc, objects) in spec.services.iter().zip(objects.iter_mut()) {
        let service = svc.name.clone();
        let mut actions = vec![Action::RecordBaseline {
            service: service.clone(),
        }];
        for step in spec.steps_of(svc) {
            actions.push(Action::SetCanaryWeight {
                service: service.clone(),
                weight: step.weight,
            });
        }
        actions.extend([
            Action::PromoteStable {
                service: service.clone(),
            },
            Action::SetCanaryWeight {
                service: service.clone(),
                weight: 0,
            },
            Action::RemoveCanary {
                service: service.clone(),
            },
            Action::RestoreBaseline {
                service: service.clone(),
            },
        ]);
        for action in &actions {
            if let Action::RestoreBaseline { .. } = action {
                // A restore follows a promotion: the stable runs the new version.
                let baseline = objects.baseline.clone().expect("a baseline");
                let new =
                    signalman::controller::template::new_template(&baseline.template, &svc.change);
                if let Some(s) = objects.stable.as_mut().and_then(|d| d.spec.as_mut()) {
                    s.template = new.clone();
                }
                // The promoted stable Deployment's pods.
                pod_dry_run(env, &new).await?;
            }
            let writes = act::writes(release, objects, action)
                .map_err(|e| TestCaseError::fail(format!("no writes for {action:?}: {e}")))?;
            for write in &writes {
                dry_run(env, write, spec).await?;
                // The canary's pods (a stable Deployment's apply holds only
                // the fields Signalman sets: its pods are checked above).
                let stable = objects.stable.as_ref().map(|d| d.name_any());
                if let Write::Apply { name, body, .. } = write
                    && body["kind"] == "Deployment"
                    && stable.as_deref() != Some(name.as_str())
                    && let Ok(d) = serde_json::from_value::<Deployment>(body.clone())
                    && let Some(template) = d.spec.map(|s| s.template)
                    && template.spec.is_some()
                {
                    pod_dry_run(env, &template).await?;
                }
                after(objects, write);
                count += 1;
            }
        }
    }
    Ok(count)
}

async fn check(env: &Env, case: &Case) -> Result<Verdict, TestCaseError> {
    let with_cel = admit(&env.with_cel, case).await;
    let Ok(stored) = admit(&env.without_cel, case).await else {
        // The schema without CEL admits a superset of what the CRD admits.
        prop_assert!(with_cel.is_err(), "admitted only with the CEL rules");
        return Ok(Verdict::RefusedByApiServer);
    };
    // What the operator reads back.
    let spec: ReleaseSpec = serde_json::from_value(stored.data["spec"].clone()).map_err(|e| {
        TestCaseError::fail(format!(
            "the operator cannot read what the API server stored: {e}"
        ))
    })?;
    let mut release = Release::new(&case.name, spec.clone());
    release.metadata.namespace = Some(env.namespace.clone());
    release.metadata.uid = stored.metadata.uid.clone();

    let mut problems = validate_name(&case.name, &spec);
    problems.extend(validate(&spec));
    problems.extend(plan::problems(&spec).iter().map(|e| e.problem(&spec)));
    let mut created = Created::default();
    let mut objects = Vec::new();
    if problems.is_empty() {
        let view;
        (objects, view) = create_cluster(env, case, &spec, &mut created).await;
        let view = ClusterView {
            release: Some(Claimant::of(&release)),
            ..view
        };
        problems.extend(
            preflight::cluster_problems(&spec, &view)
                .into_iter()
                .map(|r| r.problem),
        );
    }
    let verdict = if problems.is_empty() {
        write_everything(env, &release, objects)
            .await
            .map(Verdict::Written)
    } else {
        let unnamed: Vec<String> = problems
            .iter()
            .filter(|p| {
                !(p.field.starts_with("spec.") || p.field == "metadata.name")
                    || p.message.trim().is_empty()
            })
            .map(ToString::to_string)
            .collect();
        if unnamed.is_empty() {
            Ok(Verdict::RefusedByPreflight)
        } else {
            Err(TestCaseError::fail(format!(
                "refused without naming a field: {unnamed:?}"
            )))
        }
    };
    delete_created(env, created).await;
    verdict
}

#[test]
fn nothing_the_api_server_accepts_reaches_a_write_it_then_refuses() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (env, ns) = rt.block_on(async {
        let client = e2e::client().await;
        let with_cel = install_private_crd(&client, "admitted.signalman.dev", true).await;
        let without_cel =
            install_private_crd(&client, "admitted-no-cel.signalman.dev", false).await;
        let ns = TestNamespace::create(&client, "admitted-writes").await;
        let namespace = ns.name().to_owned();
        let env = Env {
            // An empty cache: every read falls through to the API server.
            cluster: Cluster::new(
                client.clone(),
                namespace.clone(),
                Metrics::new(),
                Cache::new().0,
            ),
            with_cel: (
                Api::namespaced_with(client.clone(), &namespace, &with_cel),
                with_cel,
            ),
            without_cel: (
                Api::namespaced_with(client.clone(), &namespace, &without_cel),
                without_cel,
            ),
            client,
            namespace,
        };
        (env, ns)
    });

    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        max_shrink_iters: 100,
        ..Config::default()
    });
    let counts: [Cell<u32>; 3] = Default::default();
    let writes = Cell::new(0usize);
    let started = Instant::now();
    let result = runner.run(&case(), |case| {
        let verdict = rt.block_on(check(&env, &case))?;
        let i = match verdict {
            Verdict::RefusedByApiServer => 0,
            Verdict::RefusedByPreflight => 1,
            Verdict::Written(n) => {
                writes.set(writes.get() + n);
                2
            }
        };
        counts[i].set(counts[i].get() + 1);
        Ok(())
    });
    let [server, preflight, written] = counts.map(Cell::into_inner);
    eprintln!(
        "{CASES} cases in {:?}: {server} refused by the API server, {preflight} by the preflight, \
         {written} passed and their {} writes accepted as dry runs",
        started.elapsed(),
        writes.get()
    );
    rt.block_on(async {
        ns.delete().await;
        delete_private_crd(&env.client, "admitted.signalman.dev").await;
        delete_private_crd(&env.client, "admitted-no-cel.signalman.dev").await;
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, case)) => panic!(
            "{why}\nminimal case: name {:?}, replicas {}, valueFrom {}\n{}",
            case.name,
            case.replicas,
            case.value_from,
            serde_json::to_string_pretty(&case.spec).unwrap_or_default()
        ),
        Err(e) => panic!("{e}"),
    }
    // Every answer must really have been exercised.
    for (what, n) in [
        ("refused by the API server", server),
        ("refused by the preflight", preflight),
        ("written", written),
    ] {
        assert!(n >= CASES / 10, "only {n} of {CASES} cases were {what}");
    }
}

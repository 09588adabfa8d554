//! Releases in the scenarios: written with a typed builder on
//! `signalman::api` (so a test cannot write a field the API does not have),
//! steered with typed spec patches, and read back as the status JSON the
//! operator wrote, which the scenarios assert on.
//!
//! ```no_run
//! use signalman_e2e::release::{release, svc};
//! let train = release("train")
//!     .defaults(&[(50, 4), (100, 1)])
//!     .service(svc("a"))
//!     .service(svc("b").after(&["a"]).error_rate("0.3"))
//!     .build();
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::JobTemplateSpec;
use kube::api::{Api, Patch, PatchParams};
use serde_json::Value;
use signalman::api::{
    Analysis, CREATED_BY_ANNOTATION, Compare, Defaults, FlagChange, Gate, GatewayApiTraffic,
    Irreversible, Metric, MigrationJob, PrometheusSpec, Release, ReleaseSpec, ReleaseType, Risk,
    ServiceHold, ServiceSpec, SkipAnalysis, Step, Traffic, Verify, Window, WindowOverride,
};

use crate::{FIELD_MANAGER, Look, poll, pretty};

/// The owner every scenario's Release names.
pub const OWNER: &str = "team-e2e";

/// The error-rate criterion of the scenarios: the canary's 5xx share over the
/// last 5 s, as the traffic simulator reports it.
pub const ERROR_RATE_QUERY: &str = r#"sum(rate(sim_http_requests_total{namespace="{{namespace}}",service="{{service}}",track="canary",code="500"}[5s])) / sum(rate(sim_http_requests_total{namespace="{{namespace}}",service="{{service}}",track="canary"}[5s]))"#;

/// [`ERROR_RATE_QUERY`] for either track: `{{track}}` is the canary's
/// matcher, then the stable pods', for a `compare` metric.
pub const TRACK_ERROR_RATE_QUERY: &str = r#"sum(rate(sim_http_requests_total{namespace="{{namespace}}",service="{{service}}",{{track}},code="500"}[5s])) / sum(rate(sim_http_requests_total{namespace="{{namespace}}",service="{{service}}",{{track}}}[5s]))"#;

/// A Release named `name`, owned by [`OWNER`], with no services yet.
pub fn release(name: &str) -> ReleaseBuilder {
    ReleaseBuilder(Release::new(
        name,
        ReleaseSpec {
            owner: OWNER.to_string(),
            ..Default::default()
        },
    ))
}

/// Builds a [`Release`]; see [`release`].
#[derive(Clone, Debug)]
pub struct ReleaseBuilder(Release);

impl ReleaseBuilder {
    /// `spec.defaults`: these `steps` as (weight, bake seconds), and the
    /// scenarios' analysis ([`error_rate_analysis`] with `errorLimit: 1`).
    pub fn defaults(mut self, steps: &[(i32, u64)]) -> ReleaseBuilder {
        self.0.spec.defaults = Some(Defaults {
            steps: Some(self::steps(steps)),
            analysis: Some(error_rate_analysis(1)),
        });
        self
    }

    /// `spec.defaults`: only the scenarios' analysis, no steps (they come
    /// from the policy's profile).
    pub fn analysis_only(mut self) -> ReleaseBuilder {
        self.0.spec.defaults = Some(Defaults {
            steps: None,
            analysis: Some(error_rate_analysis(1)),
        });
        self
    }

    /// The `errorLimit` of the default analysis (set by [`Self::defaults`]).
    pub fn error_limit(mut self, limit: i32) -> ReleaseBuilder {
        self.0
            .spec
            .defaults
            .as_mut()
            .and_then(|d| d.analysis.as_mut())
            .expect("error_limit applies to the analysis set by defaults()")
            .error_limit = Some(limit);
        self
    }

    pub fn service(mut self, service: Svc) -> ReleaseBuilder {
        self.0.spec.services.push(service.0);
        self
    }

    pub fn services(mut self, services: impl IntoIterator<Item = Svc>) -> ReleaseBuilder {
        self.0
            .spec
            .services
            .extend(services.into_iter().map(|s| s.0));
        self
    }

    /// `spec.prometheus.address`.
    pub fn prometheus(mut self, address: &str) -> ReleaseBuilder {
        self.0.spec.prometheus = Some(PrometheusSpec {
            address: address.to_string(),
        });
        self
    }

    /// `spec.paused: true`.
    pub fn paused(mut self) -> ReleaseBuilder {
        self.0.spec.paused = Some(true);
        self
    }

    /// `spec.policy`: the ReleasePolicy to follow (a test's own, never `default`).
    pub fn policy(mut self, name: &str) -> ReleaseBuilder {
        self.0.spec.policy = Some(name.to_string());
        self
    }

    /// `spec.risk`.
    pub fn risk(mut self, risk: Risk) -> ReleaseBuilder {
        self.0.spec.risk = Some(risk);
        self
    }

    /// `spec.type: hotfix`.
    pub fn hotfix(mut self) -> ReleaseBuilder {
        self.0.spec.release_type = Some(ReleaseType::Hotfix);
        self
    }

    /// A go/no-go query gate: holds while `query`'s value is at most `max`,
    /// checked every second.
    pub fn query_gate(mut self, name: &str, query: &str, max: f64) -> ReleaseBuilder {
        self.0.spec.gates.push(Gate {
            name: name.to_string(),
            query: Some(query.to_string()),
            min: None,
            max: Some(max),
            interval: Some(Duration::from_secs(1).into()),
            approval: None,
        });
        self
    }

    /// An approval gate.
    pub fn approval_gate(mut self, name: &str) -> ReleaseBuilder {
        self.0.spec.gates.push(Gate {
            name: name.to_string(),
            query: None,
            min: None,
            max: None,
            interval: None,
            approval: Some(true),
        });
        self
    }

    /// `spec.gateTimeout` in seconds.
    pub fn gate_timeout(mut self, seconds: u64) -> ReleaseBuilder {
        self.0.spec.gate_timeout = Some(Duration::from_secs(seconds).into());
        self
    }

    /// `spec.window`.
    pub fn window(mut self, window: Window) -> ReleaseBuilder {
        self.0.spec.window = Some(window);
        self
    }

    /// `spec.override.justification`.
    pub fn justification(mut self, why: &str) -> ReleaseBuilder {
        self.0.spec.window_override = Some(WindowOverride {
            justification: why.to_string(),
        });
        self
    }

    /// The annotation naming the Release's creator (admission checks it is
    /// the user who creates it).
    pub fn created_by(mut self, user: &str) -> ReleaseBuilder {
        self.0
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(CREATED_BY_ANNOTATION.to_string(), user.to_string());
        self
    }

    /// `spec.verify`: after every service is promoted, the train is watched
    /// for `bake` seconds by `metrics`, measured every second, no failure
    /// tolerated.
    pub fn verify(mut self, bake: u64, metrics: Vec<Metric>) -> ReleaseBuilder {
        self.0.spec.verify = Some(Verify {
            bake: Duration::from_secs(bake).into(),
            analysis: Analysis {
                metrics,
                ..error_rate_analysis(1)
            },
        });
        self
    }

    pub fn build(self) -> Release {
        self.0
    }
}

/// Steps from (weight, bake seconds).
pub fn steps(steps: &[(i32, u64)]) -> Vec<Step> {
    steps
        .iter()
        .map(|&(weight, bake)| Step {
            weight,
            bake: Duration::from_secs(bake).into(),
            approval: None,
        })
        .collect()
}

/// The scenarios' analysis: measured every second against the 5 % ceiling of
/// [`ERROR_RATE_QUERY`], no failure tolerated, and a generous inconclusive
/// limit (a canary's first seconds have no samples yet).
pub fn error_rate_analysis(error_limit: i32) -> Analysis {
    Analysis {
        interval: Some(Duration::from_secs(1).into()),
        failure_limit: Some(0),
        inconclusive_limit: Some(20),
        error_limit: Some(error_limit),
        metrics: vec![Metric {
            name: "error-rate".to_string(),
            query: ERROR_RATE_QUERY.to_string(),
            min: None,
            max: Some(0.05),
            compare: None,
        }],
        ..Analysis::default()
    }
}

/// The scenarios' analysis judging the canary against the stable pods:
/// [`TRACK_ERROR_RATE_QUERY`] held to `compare`, otherwise as
/// [`error_rate_analysis`] with `errorLimit: 1`.
pub fn compared_error_rate(compare: Compare) -> Analysis {
    Analysis {
        metrics: vec![Metric {
            name: "error-rate".to_string(),
            query: TRACK_ERROR_RATE_QUERY.to_string(),
            min: None,
            max: None,
            compare: Some(compare),
        }],
        ..error_rate_analysis(1)
    }
}

/// A service of the train: Deployment `name`, whose container `app` moves to
/// `registry.example/<name>:v2` (the [`crate::WebApp`] of that name is on `:v1`).
pub fn svc(name: &str) -> Svc {
    Svc(ServiceSpec {
        name: name.to_string(),
        owner: None,
        deployment: name.to_string(),
        change: Default::default(),
        depends_on: Vec::new(),
        traffic: None,
        steps: None,
        analysis: None,
        ..Default::default()
    })
    .image("app", &format!("registry.example/{name}:v2"))
}

/// The kwok annotations that make a Job's pod fail, with `message` as its
/// container's termination message (see e2e/cluster/kwok-stages.yaml).
pub const JOB_RESULT_ANNOTATION: &str = "sim.signalman.dev/job-result";
pub const JOB_MESSAGE_ANNOTATION: &str = "sim.signalman.dev/job-message";

/// A Job template whose one pod exits 0 one second after it starts (kwok),
/// or, with `fails`, exits 1 leaving that termination message. No retries:
/// `backoffLimit: 0`.
pub fn job_template(image: &str, fails: Option<&str>) -> JobTemplateSpec {
    let annotations = match fails {
        Some(m) => serde_json::json!({JOB_RESULT_ANNOTATION: "failed", JOB_MESSAGE_ANNOTATION: m}),
        None => serde_json::json!({}),
    };
    serde_json::from_value(serde_json::json!({
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": annotations},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "migrate", "image": image}],
                },
            },
        },
    }))
    .expect("a Job template")
}

/// A migration service `name`: its forward Job
/// (`registry.example/<name>:forward`) and its rollback Job
/// (`registry.example/<name>:rollback`) both succeed.
pub fn migration(name: &str) -> Svc {
    Svc(ServiceSpec {
        name: name.to_string(),
        job: Some(MigrationJob {
            forward: job_template(&format!("registry.example/{name}:forward"), None),
            rollback: Some(job_template(
                &format!("registry.example/{name}:rollback"),
                None,
            )),
            irreversible: None,
            timeout: None,
        }),
        ..Default::default()
    })
}

/// A flag service `name` setting `keys` in ConfigMap `config_map`, baking
/// `bake` seconds.
pub fn flag(name: &str, config_map: &str, keys: &[(&str, &str)], bake: u64) -> Svc {
    Svc(ServiceSpec {
        name: name.to_string(),
        flag: Some(FlagChange {
            config_map: Some(config_map.to_string()),
            keys: keys
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            bake: Some(Duration::from_secs(bake).into()),
        }),
        ..Default::default()
    })
}

/// Builds one entry of `spec.services`; see [`svc`].
#[derive(Clone, Debug)]
pub struct Svc(ServiceSpec);

impl Svc {
    /// `dependsOn`.
    pub fn after(mut self, services: &[&str]) -> Svc {
        self.0.depends_on = services.iter().map(|s| s.to_string()).collect();
        self
    }

    /// `owner`: the team accountable for this service.
    pub fn owner(mut self, owner: &str) -> Svc {
        self.0.owner = Some(owner.to_string());
        self
    }

    /// `change.dark`: the new code ships behind a flag this Release does not switch.
    pub fn dark(mut self) -> Svc {
        self.0.change.dark = Some(true);
        self
    }

    /// `hold.reason`: the service is not ready and is deferred.
    pub fn hold(mut self, reason: &str) -> Svc {
        self.0.hold = Some(ServiceHold {
            reason: reason.to_string(),
        });
        self
    }

    fn job_mut(&mut self) -> &mut MigrationJob {
        self.0.job.as_mut().expect("a migration() service")
    }

    /// The forward Job fails, leaving `message` as its last log lines.
    pub fn forward_fails(mut self, message: &str) -> Svc {
        let image = format!("registry.example/{}:forward", self.0.name);
        self.job_mut().forward = job_template(&image, Some(message));
        self
    }

    /// The rollback Job fails, leaving `message` as its last log lines.
    pub fn rollback_fails(mut self, message: &str) -> Svc {
        let image = format!("registry.example/{}:rollback", self.0.name);
        self.job_mut().rollback = Some(job_template(&image, Some(message)));
        self
    }

    /// The forward Job's template as written (for refused input).
    pub fn forward_template(mut self, template: serde_json::Value) -> Svc {
        self.job_mut().forward = serde_json::from_value(template).expect("a Job template");
        self
    }

    /// Put a rollback Job template back (after [`Self::irreversible`]: both, refused).
    pub fn forward_template_rollback(mut self) -> Svc {
        let image = format!("registry.example/{}:rollback", self.0.name);
        self.job_mut().rollback = Some(job_template(&image, None));
        self
    }

    /// No change at all (for refused input).
    pub fn without_change(mut self) -> Svc {
        self.0.change = Default::default();
        self
    }

    /// No rollback Job: `job.irreversible.justification`.
    pub fn irreversible(mut self, justification: &str) -> Svc {
        let job = self.job_mut();
        job.rollback = None;
        job.irreversible = Some(Irreversible {
            justification: justification.to_string(),
        });
        self
    }

    pub fn deployment(mut self, deployment: &str) -> Svc {
        self.0.deployment = deployment.to_string();
        self
    }

    /// The change sets `container` to `image`, and no other image.
    pub fn image(mut self, container: &str, image: &str) -> Svc {
        self.0.change.images = BTreeMap::from([(container.to_string(), image.to_string())]);
        self
    }

    /// The change also sets env var `name` of `container`.
    pub fn env(mut self, container: &str, name: &str, value: &str) -> Svc {
        self.0
            .change
            .env
            .entry(container.to_string())
            .or_default()
            .insert(name.to_string(), value.to_string());
        self
    }

    /// The new version answers this share of requests with 5xx (the traffic
    /// simulator's `SIM_ERROR_RATE` on container `app`): "0.3" is a bad version.
    pub fn error_rate(self, rate: &str) -> Svc {
        self.env("app", "SIM_ERROR_RATE", rate)
    }

    /// `change.class`: copy, config, feature, migration, auth or payment.
    pub fn class(mut self, class: &str) -> Svc {
        self.0.change.class = Some(
            serde_json::from_value(Value::String(class.to_string()))
                .unwrap_or_else(|e| panic!("change.class {class}: {e}")),
        );
        self
    }

    /// The service's own steps, as (weight, bake seconds).
    pub fn steps(mut self, s: &[(i32, u64)]) -> Svc {
        self.0.steps = Some(steps(s));
        self
    }

    /// Wait for an approval after step `n` (counted from 1) of the service's
    /// own steps ([`Svc::steps`] first).
    pub fn approval_after(mut self, n: usize) -> Svc {
        let step = self
            .0
            .steps
            .as_mut()
            .and_then(|s| s.get_mut(n - 1))
            .unwrap_or_else(|| panic!("service {} has no step {n} of its own", self.0.name));
        step.approval = Some(true);
        self
    }

    /// Released on bake time alone: `analysis.skipAnalysis` with `reason`.
    pub fn unmeasured(self, reason: &str) -> Svc {
        self.analysis(Analysis {
            skip_analysis: Some(SkipAnalysis {
                reason: reason.to_string(),
            }),
            ..Analysis::default()
        })
    }

    /// The service's own analysis.
    pub fn analysis(mut self, analysis: Analysis) -> Svc {
        self.0.analysis = Some(analysis);
        self
    }

    /// Shift traffic on this Gateway API HTTPRoute instead of by replica ratio.
    pub fn route(mut self, http_route: &str) -> Svc {
        self.0.traffic = Some(Traffic {
            gateway_api: Some(GatewayApiTraffic {
                http_route: http_route.to_string(),
                service: None,
            }),
        });
        self
    }

    /// `traffic.gatewayAPI.service`: the route's stable Service, when it is
    /// not named like the service (also what `{{service}}` stands for in
    /// queries). Set [`Self::route`] first.
    pub fn gateway_service(mut self, service: &str) -> Svc {
        self.0
            .traffic
            .as_mut()
            .and_then(|t| t.gateway_api.as_mut())
            .expect("gateway_service applies to the route set by route()")
            .service = Some(service.to_string());
        self
    }
}

// ------------------------------------------------------------ the cluster

/// The Releases of `namespace`.
pub fn releases(client: &kube::Client, namespace: &str) -> Api<Release> {
    Api::namespaced(client.clone(), namespace)
}

/// Server-side apply `release` into `namespace` (the whole object: fields a
/// later apply omits are removed).
pub async fn apply(client: &kube::Client, namespace: &str, release: &Release) -> Release {
    crate::apply(&releases(client, namespace), release).await
}

/// The whole Release as JSON (`Null` when it does not exist).
pub async fn get(api: &Api<Release>, name: &str) -> Value {
    let r = api
        .get_opt(name)
        .await
        .unwrap_or_else(|e| panic!("reading Release {name}: {e}"));
    serde_json::to_value(r).expect("serializing a Release")
}

/// The Release's status (`null` before the first write).
pub async fn status(api: &Api<Release>, name: &str) -> Value {
    get(api, name).await["status"].take()
}

/// Change the Release's spec: `change` edits a copy, and exactly the fields
/// it changed are sent as a merge patch (a field set to `None` is removed),
/// the way a person steers a release with `kubectl patch`.
pub async fn patch_spec(api: &Api<Release>, name: &str, change: impl FnOnce(&mut ReleaseSpec)) {
    let before = api
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("reading Release {name}: {e}"))
        .spec;
    let mut after = before.clone();
    change(&mut after);
    let (Value::Object(before), Value::Object(after)) = (
        serde_json::to_value(&before).expect("serializing a spec"),
        serde_json::to_value(&after).expect("serializing a spec"),
    ) else {
        unreachable!("a spec serializes to an object")
    };
    let mut patch = serde_json::Map::new();
    for (k, v) in &after {
        if before.get(k) != Some(v) {
            patch.insert(k.clone(), v.clone());
        }
    }
    for k in before.keys().filter(|k| !after.contains_key(*k)) {
        patch.insert(k.clone(), Value::Null);
    }
    assert!(
        !patch.is_empty(),
        "patch_spec of Release {name} changes nothing"
    );
    api.patch(
        name,
        &PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        },
        &Patch::Merge(&serde_json::json!({ "spec": patch })),
    )
    .await
    .unwrap_or_else(|e| panic!("patching Release {name}: {e}"));
}

/// Ask for a succeeded Release to be rolled back as `kubectl signalman
/// rollback` does: one merge patch setting `spec.rollback: true` and the
/// annotation naming who asks.
pub async fn ask_rollback(api: &Api<Release>, name: &str, user: &str) {
    let patch = serde_json::json!({
        "metadata": {"annotations": {signalman::api::ROLLBACK_BY_ANNOTATION: user}},
        "spec": {"rollback": true},
    });
    api.patch(
        name,
        &PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        },
        &Patch::Merge(&patch),
    )
    .await
    .unwrap_or_else(|e| panic!("asking Release {name} to roll back: {e}"));
}

/// Poll the Release every 100 ms until `check` holds on the whole object (as
/// JSON) and return it; panics with its status after `timeout`.
pub async fn wait_release(
    api: &Api<Release>,
    name: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    poll(
        &format!("Release {name}: {what}"),
        timeout,
        Duration::from_millis(100),
        || async {
            let r = get(api, name).await;
            if check(&r) {
                Look::Done(r)
            } else {
                Look::NotYet(format!("status: {}", pretty(&r["status"])))
            }
        },
    )
    .await
}

/// [`wait_release`] with `check` on the status; returns the status.
pub async fn wait_status(
    api: &Api<Release>,
    name: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    wait_release(api, name, what, timeout, |r| check(&r["status"])).await["status"].take()
}

/// Wait until the Release is `Stalled=True` and return its status.
pub async fn wait_stalled(api: &Api<Release>, name: &str, why: &str) -> Value {
    wait_status(api, name, why, Duration::from_secs(30), |s| {
        condition(s, "Stalled").is_some_and(|c| c["status"] == "True")
    })
    .await
}

/// Wait until `service`'s current step bakes (its weight is in effect) and
/// return the status.
pub async fn wait_baking(
    api: &Api<Release>,
    name: &str,
    service: &str,
    timeout: Duration,
) -> Value {
    wait_status(api, name, &format!("{service} baking"), timeout, |s| {
        self::service(s, service).is_some_and(|x| x["bakeStartedAt"].is_string())
    })
    .await
}

/// Wait until the Release reaches phase `want` and return its status; fails
/// at once when it ends in a different final phase.
pub async fn wait_phase(api: &Api<Release>, name: &str, want: &str, timeout: Duration) -> Value {
    poll(
        &format!("Release {name} to reach {want}"),
        timeout,
        Duration::from_millis(100),
        || async {
            let s = status(api, name).await;
            let p = phase(&s);
            if p == want {
                Look::Done(s)
            } else if ["Succeeded", "RolledBack", "Failed"].contains(&p) {
                Look::Never(format!("it ended {p}: {}", pretty(&s)))
            } else {
                Look::NotYet(format!("status: {}", pretty(&s)))
            }
        },
    )
    .await
}

/// The phase of a status (`""` before the first write).
pub fn phase(status: &Value) -> &str {
    status["phase"].as_str().unwrap_or("")
}

/// The condition `type_` of a status.
pub fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// One service's entry in the status.
pub fn service<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status["services"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)
}

/// `(reason, service)` of every timeline entry, oldest first.
pub fn timeline(status: &Value) -> Vec<(String, String)> {
    status["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or("").to_string(),
                e["service"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Index of the first timeline entry with `reason` (any service when `service` is empty).
pub fn first(timeline: &[(String, String)], reason: &str, service: &str) -> Option<usize> {
    timeline
        .iter()
        .position(|(r, s)| r == reason && (service.is_empty() || s == service))
}

/// Wait until no field of Deployment `name` is owned by the field manager
/// `signalman` any more: a finished release leaves the user's objects to the user.
pub async fn wait_released(client: &kube::Client, namespace: &str, name: &str) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    crate::wait_for(
        &format!("signalman to drop its fields of Deployment {name}"),
        Duration::from_secs(15),
        || async {
            let d = api.get(name).await?;
            Ok((!owned_by_signalman(&d.metadata)).then_some(()))
        },
    )
    .await;
}

/// Whether the field manager `signalman` owns any field of the object.
pub fn owned_by_signalman(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> bool {
    meta.managed_fields
        .iter()
        .flatten()
        .any(|m| m.manager.as_deref() == Some(signalman::api::FIELD_MANAGER))
}

/// When `SIGNALMAN_CAPTURE_DIR` is set, save the Release (whole, as JSON
/// from [`get`] or [`wait_release`]) as a YAML fixture named `<file>.yaml`
/// there (for the Argo CD health-check test), without the noise of
/// managedFields.
pub fn capture(r: &Value, file: &str) {
    let Some(dir) = std::env::var_os("SIGNALMAN_CAPTURE_DIR") else {
        return;
    };
    let mut r = r.clone();
    if let Some(m) = r["metadata"].as_object_mut() {
        m.remove("managedFields");
    }
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{file}.yaml")),
        serde_yaml::to_string(&r).unwrap(),
    )
    .unwrap();
    eprintln!("captured {file}.yaml (phase {})", phase(&r["status"]));
}

//! The Helm chart against the real API server: lint, schema rejections, the
//! RBAC it grants (enough for the controller, nothing more), and the operator
//! running with nothing but the chart's ServiceAccount token.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Probe, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, Role};
use kube::api::Api;
use signalman_e2e::helm::{Installed, can_i, chart_dir, helm, install};
use signalman_e2e::operator::{self as op, Operator, sample};
use signalman_e2e::release::{self as rel, phase, release, svc, wait_release};
use signalman_e2e::{self as e2e, TestNamespace, output_text as text};

#[tokio::test]
async fn helm_lint_is_clean() {
    let chart = chart_dir();
    let out = helm(&["lint", "--strict", chart.to_str().unwrap()]).await;
    let t = text(&out);
    assert!(out.status.success(), "helm lint --strict failed:\n{t}");
    assert!(t.contains("1 chart(s) linted, 0 chart(s) failed"), "{t}");
    assert!(!t.contains("[WARNING]") && !t.contains("[ERROR]"), "{t}");
    // Also lint with every optional part switched on.
    let out = helm(&[
        "lint",
        "--strict",
        chart.to_str().unwrap(),
        "--set",
        "serviceMonitor.enabled=true,dashboard.enabled=true,replicaCount=3",
    ])
    .await;
    assert!(
        out.status.success(),
        "helm lint with options:\n{}",
        text(&out)
    );
    // By default the chart's ReleasePolicy is `default`: Monday to Thursday,
    // 09:00-17:00, weekends frozen, and the high-risk profile wants four eyes.
    let out = helm(&[
        "template",
        "t",
        chart.to_str().unwrap(),
        "--show-only",
        "templates/releasepolicy.yaml",
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let policy: signalman::api::ReleasePolicy =
        serde_yaml::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(policy.metadata.name.as_deref(), Some("default"));
    let window = policy.spec.window.clone().unwrap();
    assert_eq!(window.days.len(), 4);
    assert_eq!(
        (window.from.as_str(), window.to.as_str()),
        ("09:00", "17:00")
    );
    assert_eq!(policy.spec.freeze.as_ref().unwrap().weekends, Some(true));
    // The admission policies are in the chart by default, and out with admission.create=false.
    let out = helm(&[
        "template",
        "t",
        chart.to_str().unwrap(),
        "--show-only",
        "templates/admission.yaml",
    ])
    .await;
    assert!(
        text(&out).contains("kind: ValidatingAdmissionPolicy"),
        "{}",
        text(&out)
    );
    // The dashboard ConfigMap carries valid Grafana JSON.
    let out = helm(&[
        "template",
        "t",
        chart.to_str().unwrap(),
        "--set",
        "dashboard.enabled=true",
        "--show-only",
        "templates/dashboard.yaml",
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let cm: serde_json::Value = serde_yaml::from_slice(&out.stdout).unwrap();
    let dash: serde_json::Value =
        serde_json::from_str(cm["data"]["signalman.json"].as_str().unwrap()).unwrap();
    assert!(
        dash["panels"].as_array().is_some_and(|p| p.len() >= 6),
        "{dash}"
    );
    // notifications.receivers reach the operator as --notifications
    // (SIGNALMAN_NOTIFICATIONS), JSON the operator reads; none, no variable.
    let notifications = |sets: &[&str]| {
        let chart = chart.clone();
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        async move {
            let mut args = vec!["template", "t", chart.to_str().unwrap()];
            for s in &sets {
                args.extend(["--set-json", s.as_str()]);
            }
            args.extend(["--show-only", "templates/deployment.yaml"]);
            let out = helm(&args).await;
            assert!(out.status.success(), "{}", text(&out));
            let d: Deployment = serde_yaml::from_slice(&out.stdout).unwrap();
            d.spec.unwrap().template.spec.unwrap().containers[0]
                .env
                .iter()
                .flatten()
                .find(|e| e.name == "SIGNALMAN_NOTIFICATIONS")
                .map(|e| e.value.clone().unwrap_or_default())
        }
    };
    assert_eq!(notifications(&[]).await, None);
    let json = notifications(&[
        r#"notifications.receivers=[{"name":"ops","urlFrom":{"name":"hooks"},"format":"slack","on":["Breach","RolledBack"]}]"#,
    ])
    .await
    .expect("SIGNALMAN_NOTIFICATIONS");
    let n = signalman::controller::notify::parse_flag(&json)
        .unwrap_or_else(|e| panic!("the operator refuses {json}: {e}"));
    assert_eq!(n.receivers.len(), 1, "{json}");
    assert_eq!(n.receivers[0].name, "ops");
    assert_eq!(n.receivers[0].url_from.name, "hooks");
    assert_eq!(
        n.receivers[0].format,
        Some(signalman::api::ReceiverFormat::Slack)
    );
    assert_eq!(n.receivers[0].on.len(), 2);
}

/// Every `signalman_*` metric the shipped Grafana dashboard queries.
fn dashboard_metrics() -> std::collections::BTreeSet<String> {
    let text = std::fs::read_to_string(chart_dir().join("dashboards/signalman.json")).unwrap();
    let mut names = std::collections::BTreeSet::new();
    for (i, _) in text.match_indices("signalman_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        names.insert(name);
    }
    names
}

#[tokio::test]
async fn invalid_values_fail_with_the_schema_message_and_change_nothing() {
    let client = e2e::client().await;
    let ns = TestNamespace::create(&client, "helm-bad").await;
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["replicaCount=-1"],
            &["/replicaCount", "minimum: got -1, want 0"],
        ),
        (
            &["leaderElection.leaseDurationSeconds=1"],
            &[
                "/leaderElection/leaseDurationSeconds",
                "minimum: got 1, want 3",
            ],
        ),
        (&["logFormat=xml"], &["/logFormat", "json", "text"]),
        (
            &["prometheusUrl=prometheus:9090"],
            &["/prometheusUrl", "^https?://"],
        ),
        (
            &["prometheusAllowedAddresses[0]=169.254.169.254"],
            &["/prometheusAllowedAddresses/0", "^https?://[^,]+$"],
        ),
        (
            &["replicas=2"],
            &["additional properties 'replicas' not allowed"],
        ),
        (
            &["replicaCount=2", "leaderElection.enabled=false"],
            &[
                "replicaCount is 2 but leaderElection.enabled is false",
                "Set leaderElection.enabled=true",
            ],
        ),
        (
            &["namespaceSelector=team=a", "watchNamespaces={shop}"],
            &["set either watchNamespaces or namespaceSelector, not both"],
        ),
        (
            &[
                "notifications.receivers[0].name=ops",
                "notifications.receivers[0].urlFrom.name=hooks",
                "notifications.receivers[0].format=teams",
            ],
            &["/notifications/receivers/0/format", "slack", "json"],
        ),
    ];
    for (sets, wants) in cases {
        let out = install(ns.name(), "bad", sets).await;
        let t = text(&out);
        assert!(
            !out.status.success(),
            "helm install --set {sets:?} succeeded:\n{t}"
        );
        for w in *wants {
            assert!(
                t.contains(w),
                "helm install --set {sets:?}: expected {w:?} in:\n{t}"
            );
        }
        eprintln!(
            "--set {sets:?} -> {}",
            t.lines()
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    // Nothing was installed: no Helm release, no ServiceAccount, no Role.
    let list = helm(&["list", "-n", ns.name(), "-q", "--all"]).await;
    assert_eq!(
        String::from_utf8_lossy(&list.stdout).trim(),
        "",
        "{}",
        text(&list)
    );
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns.name());
    assert!(sas.get_opt("bad-signalman").await.unwrap().is_none());
    let roles: Api<Role> = Api::namespaced(client.clone(), ns.name());
    assert!(
        roles
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    ns.delete().await;
}

#[tokio::test]
async fn chart_rbac_is_enough_for_the_controller_and_nothing_more() {
    let client = e2e::client().await;
    let ns = TestNamespace::create(&client, "helm-rbac").await;
    let chart = Installed::new(ns.name(), &["replicaCount=0"]).await;
    let sa_name = chart.service_account();
    let sa = format!("system:serviceaccount:{}:{sa_name}", ns.name());

    // The chart's objects are there, hardened as promised.
    let deps: Api<Deployment> = Api::namespaced(client.clone(), ns.name());
    let d = deps.get(&sa_name).await.expect("the operator Deployment");
    let pod = d.spec.unwrap().template.spec.unwrap();
    let c = &pod.containers[0];
    let sc = c.security_context.clone().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.capabilities.unwrap().drop, Some(vec!["ALL".to_string()]));
    let psc = pod.security_context.unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
    let probe_path = |p: &Option<Probe>| p.as_ref()?.http_get.as_ref()?.path.clone();
    assert_eq!(probe_path(&c.liveness_probe).as_deref(), Some("/healthz"));
    assert_eq!(probe_path(&c.readiness_probe).as_deref(), Some("/readyz"));
    assert!(
        c.args
            .as_ref()
            .unwrap()
            .contains(&"--leader-elect=true".to_string())
    );
    // Metrics tenancy is on by default in the chart.
    assert!(
        c.args
            .as_ref()
            .unwrap()
            .contains(&"--enforce-namespace=true".to_string())
    );

    // No wildcard anywhere in what the chart grants.
    let cr: Api<ClusterRole> = Api::all(client.clone());
    let role = cr.get(&sa_name).await.expect("the ClusterRole");
    for rule in role.rules.iter().flatten() {
        for field in [
            &rule.verbs,
            rule.resources.as_ref().unwrap(),
            rule.api_groups.as_ref().unwrap(),
        ] {
            assert!(
                !field.iter().any(|v| v.contains('*')),
                "wildcard in {rule:?}"
            );
        }
        assert!(rule.non_resource_urls.is_none(), "{rule:?}");
    }

    let other = "default"; // any namespace other than the install namespace
    let mine = Some(ns.name());
    // Enough: everything the controller does, in any namespace.
    let allowed: &[(&str, &str, Option<&str>)] = &[
        ("list", "releases.signalman.dev", None),
        ("watch", "releases.signalman.dev", None),
        ("patch", "releases.signalman.dev", Some(other)),
        ("patch", "releases.signalman.dev:status", Some(other)),
        ("update", "releases.signalman.dev:finalizers", Some(other)),
        ("watch", "deployments.apps", None),
        ("create", "deployments.apps", Some(other)),
        ("patch", "deployments.apps", Some(other)),
        ("delete", "deployments.apps", Some(other)),
        ("patch", "deployments.apps:scale", Some(other)),
        ("list", "replicasets.apps", None),
        ("watch", "controllerrevisions.apps", None),
        ("create", "controllerrevisions.apps", Some(other)),
        ("patch", "services", Some(other)),
        ("delete", "services", Some(other)),
        ("watch", "httproutes.gateway.networking.k8s.io", None),
        ("patch", "httproutes.gateway.networking.k8s.io", Some(other)),
        ("create", "events.events.k8s.io", Some(other)),
        // Migrations and flags (issue 13): Jobs created and stopped, their
        // pods' termination messages read, flags' keys patched.
        ("watch", "jobs.batch", None),
        ("create", "jobs.batch", Some(other)),
        ("delete", "jobs.batch", Some(other)),
        ("list", "pods", None),
        ("watch", "pods", None),
        ("watch", "configmaps", None),
        ("get", "configmaps", Some(other)),
        ("patch", "configmaps", Some(other)),
        // Go/no-go: the policies, the namespaces' policy label, the approvals.
        ("list", "releasepolicies.signalman.dev", None),
        ("watch", "releasepolicies.signalman.dev", None),
        ("list", "namespaces", None),
        ("watch", "namespaces", None),
        ("list", "releaseapprovals.signalman.dev", None),
        ("watch", "releaseapprovals.signalman.dev", None),
        // Notifications: receivers' webhook URLs, from Secrets in its own namespace.
        ("get", "secrets", mine),
        ("list", "secrets", mine),
        ("watch", "secrets", mine),
        ("create", "leases.coordination.k8s.io", mine),
        ("get", "leases.coordination.k8s.io/signalman-leader", mine),
        (
            "update",
            "leases.coordination.k8s.io/signalman-leader",
            mine,
        ),
    ];
    // Nothing more: no Secrets but its own namespace's (and those read
    // only), no wildcards, nothing it does not manage.
    let denied: &[(&str, &str, Option<&str>)] = &[
        ("get", "secrets", Some(other)),
        ("list", "secrets", None),
        ("watch", "secrets", None),
        ("create", "secrets", mine),
        ("update", "secrets", mine),
        ("patch", "secrets", mine),
        ("delete", "secrets", mine),
        ("create", "configmaps", Some(other)),
        ("delete", "configmaps", Some(other)),
        ("update", "configmaps", Some(other)),
        ("update", "jobs.batch", Some(other)),
        ("patch", "jobs.batch", Some(other)),
        ("get", "pods", Some(other)),
        ("create", "pods", Some(other)),
        ("delete", "pods", Some(other)),
        ("*", "*", None),
        ("*", "*", mine),
        ("create", "releases.signalman.dev", Some(other)),
        ("delete", "releases.signalman.dev", Some(other)),
        ("update", "releases.signalman.dev", Some(other)),
        ("update", "deployments.apps", Some(other)),
        ("update", "deployments.apps:scale", Some(other)),
        ("update", "releases.signalman.dev:status", Some(other)),
        ("get", "pods:log", Some(other)),
        ("create", "pods:exec", Some(other)),
        ("create", "replicasets.apps", Some(other)),
        ("delete", "replicasets.apps", Some(other)),
        (
            "create",
            "httproutes.gateway.networking.k8s.io",
            Some(other),
        ),
        (
            "delete",
            "httproutes.gateway.networking.k8s.io",
            Some(other),
        ),
        ("delete", "events.events.k8s.io", Some(other)),
        ("patch", "events.events.k8s.io", Some(other)),
        ("create", "leases.coordination.k8s.io", Some(other)),
        (
            "update",
            "leases.coordination.k8s.io/kube-scheduler",
            Some("kube-system"),
        ),
        ("update", "leases.coordination.k8s.io/someone-else", mine),
        (
            "delete",
            "leases.coordination.k8s.io/signalman-leader",
            mine,
        ),
        ("create", "namespaces", None),
        // The operator reads approvals and policies; it never makes or changes them.
        ("approve", "releases.signalman.dev", Some(other)),
        ("create", "releaseapprovals.signalman.dev", Some(other)),
        ("update", "releaseapprovals.signalman.dev", Some(other)),
        ("create", "releasepolicies.signalman.dev", None),
        ("update", "releasepolicies.signalman.dev", None),
        ("delete", "releasepolicies.signalman.dev", None),
        (
            "create",
            "clusterrolebindings.rbac.authorization.k8s.io",
            None,
        ),
        ("escalate", "clusterroles.rbac.authorization.k8s.io", None),
        ("impersonate", "serviceaccounts", Some(other)),
        ("create", "serviceaccounts:token", Some(other)),
        (
            "patch",
            "customresourcedefinitions.apiextensions.k8s.io",
            None,
        ),
    ];
    let mut wrong = Vec::new();
    for (verb, res, ns) in allowed {
        if !can_i(&sa, verb, res, *ns).await {
            wrong.push(format!(
                "cannot {verb} {res} in {ns:?}, but the controller needs to"
            ));
        }
    }
    for (verb, res, ns) in denied {
        if can_i(&sa, verb, res, *ns).await {
            wrong.push(format!("can {verb} {res} in {ns:?}, which it must not"));
        }
    }
    assert!(wrong.is_empty(), "RBAC of {sa}:\n{}", wrong.join("\n"));

    // The approver ClusterRole grants what approving takes, and the chart's
    // ReleasePolicy (named for this test, open at all hours) is installed.
    let approver = cr
        .get(&format!("{}-approver", chart.release()))
        .await
        .expect("the approver ClusterRole");
    let grants = |resource: &str, verb: &str| {
        approver.rules.iter().flatten().any(|r| {
            r.resources.iter().flatten().any(|x| x == resource) && r.verbs.iter().any(|v| v == verb)
        })
    };
    assert!(
        grants("releases", "approve") && grants("releaseapprovals", "create"),
        "{approver:?}"
    );
    let policies: Api<signalman::api::ReleasePolicy> = Api::all(client.clone());
    let policy = policies
        .get(&chart.policy())
        .await
        .expect("the chart's ReleasePolicy");
    let window = policy.spec.window.expect("a window");
    assert_eq!(window.days.len(), 7, "{window:?}");
    assert_eq!(
        (window.from.as_str(), window.to.as_str()),
        ("00:00", "24:00")
    );
    assert!(policy.spec.freeze.is_none(), "{:?}", policy.spec.freeze);
    let high = policy
        .spec
        .risks
        .and_then(|r| r.high)
        .expect("a high-risk profile");
    assert_eq!(high.approvals.and_then(|a| a.four_eyes), Some(true));
    eprintln!(
        "RBAC: {} allowed and {} denied checks hold for {sa}",
        allowed.len(),
        denied.len()
    );

    chart.uninstall().await;
    // helm uninstall removes the cluster-scoped objects too.
    e2e::wait_for(
        "the ClusterRole to be gone",
        Duration::from_secs(30),
        || async { Ok(cr.get_opt(&sa_name).await?.is_none().then_some(())) },
    )
    .await;
    ns.delete().await;
}

/// `kubectl wait --for=condition=<cond> release/<name>`; returns whether it
/// returned 0, and how long it took.
async fn kubectl_wait(
    ns: &str,
    name: &str,
    cond: &str,
    timeout_s: u32,
) -> (bool, Duration, String) {
    let start = std::time::Instant::now();
    let out = e2e::kubectl(&[
        "wait",
        &format!("--for=condition={cond}"),
        &format!("release/{name}"),
        "-n",
        ns,
        &format!("--timeout={timeout_s}s"),
    ])
    .await;
    (out.status.success(), start.elapsed(), text(&out))
}

/// The operator with nothing but the chart ServiceAccount's token: a refused
/// Release, a paused one, a chain, a Gateway API release, a breach, a hold and
/// an abort all complete, so the RBAC covers every path of the controller;
/// `/metrics` is scraped along the way, and the Releases are captured as the
/// Argo CD health-check fixtures (`SIGNALMAN_CAPTURE_DIR`).
#[tokio::test]
async fn operator_with_the_chart_service_account_runs_a_chain_and_a_breach() {
    let client = e2e::client().await;
    let ns = TestNamespace::create(&client, "helm-op").await;
    // No image registry here: the chart's Deployment runs no pod; the same
    // binary runs as a process with the chart ServiceAccount's token instead.
    let chart = Installed::new(ns.name(), &["replicaCount=0"]).await;
    let operator = Operator::launch(ns.name())
        .name("chart-sa")
        .kubeconfig(&chart.token_kubeconfig().await)
        // The unreachable Prometheus of the hold below.
        .arg("--prometheus-allowed-address=http://127.0.0.1:9")
        .leader_election("signalman-leader", Duration::from_secs(15))
        .start()
        .await;
    operator.wait_ready(Duration::from_secs(30)).await;
    let api = rel::releases(&client, ns.name());
    e2e::deploy_apps(&client, ns.name(), &["a", "b", "d", "e", "f", "h"]).await;
    e2e::apply_yaml(&client, Some(ns.name()), &e2e::http_route_yaml("shop", "h")).await;

    // A broken Release: Stalled at once, nothing changed.
    let broken = train("broken", &[(50, 2), (100, 1)]).service(good("missing"));
    e2e::apply(&api, &broken.build()).await;
    let (ok, took, out) = kubectl_wait(ns.name(), "broken", "Stalled", 60).await;
    assert!(ok, "kubectl wait --for=condition=Stalled: {out}");
    eprintln!("MEASURE kubectl wait --for=condition=Stalled returned after {took:?}");
    let r = rel::get(&api, "broken").await;
    assert_eq!(phase(&r["status"]), "Pending");
    rel::capture(&r, "pending-stalled");

    // Paused before it starts: Pending, Suspended for Argo CD.
    let paused = train("paused", &[(50, 2), (100, 1)]).service(good("f"));
    e2e::apply(&api, &paused.paused().build()).await;
    let r = wait_release(&api, "paused", "a status", Duration::from_secs(30), |r| {
        r["status"]["phase"].is_string()
    })
    .await;
    assert_eq!(phase(&r["status"]), "Pending", "{}", r["status"]);
    rel::capture(&r, "pending-paused");

    // The chain: a, then b.
    let chain = train("chain", &[(50, 4), (100, 2)])
        .service(good("a"))
        .service(good("b").after(&["a"]));
    e2e::apply(&api, &chain.build()).await;
    let r = wait_release(
        &api,
        "chain",
        "a passing measurement of a",
        Duration::from_secs(60),
        |r| {
            r["status"]["services"][0]["measurements"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["outcome"] == "Pass"))
        },
    )
    .await;
    assert_eq!(phase(&r["status"]), "Progressing");
    rel::capture(&r, "progressing");
    // Metrics during the release.
    let m = operator
        .wait_metrics("one Progressing release", |m| {
            sample(m, r#"signalman_releases{phase="Progressing"}"#) == Some(1.0)
        })
        .await;
    assert_eq!(
        sample(&m, r#"signalman_releases{phase="Progressing"}"#),
        Some(1.0),
        "{m}"
    );
    let w = sample(
        &m,
        &format!(
            r#"signalman_service_weight{{namespace="{}",release="chain",service="a"}}"#,
            ns.name()
        ),
    );
    assert!(
        w.is_some_and(|w| (1.0..=100.0).contains(&w)),
        "weight of a: {w:?}\n{m}"
    );
    let all = op::sum_metric(&m, "signalman_measurements_total");
    assert!(all >= 1.0, "measurements: {all}\n{m}");
    let passes = sample(
        &m,
        &format!(
            r#"signalman_measurements_total{{namespace="{}",service="a",metric="error-rate",outcome="Pass"}}"#,
            ns.name()
        ),
    );
    assert!(
        passes.is_some_and(|p| p >= 1.0),
        "no passing measurement of a: {m}"
    );
    assert!(
        sample(&m, "signalman_reconcile_duration_seconds_count").is_some_and(|n| n >= 1.0),
        "{m}"
    );
    eprintln!(
        "MEASURE during the chain: weight(a)={w:?} measurements={all} reconciles={:?} p(reconcile)<=0.1s: {:?}/{:?}",
        sample(&m, "signalman_reconciles_total"),
        sample(
            &m,
            r#"signalman_reconcile_duration_seconds_bucket{le="0.1"}"#
        ),
        sample(&m, "signalman_reconcile_duration_seconds_count"),
    );

    let (ok, took, out) = kubectl_wait(ns.name(), "chain", "Ready", 180).await;
    assert!(ok, "kubectl wait --for=condition=Ready: {out}");
    eprintln!(
        "MEASURE kubectl wait --for=condition=Ready returned after {took:?} (chain of 2, bakes 4s+2s each)"
    );
    let r = rel::get(&api, "chain").await;
    assert_eq!(phase(&r["status"]), "Succeeded");
    rel::capture(&r, "succeeded");
    let deps: Api<Deployment> = Api::namespaced(client.clone(), ns.name());
    for n in ["a", "b"] {
        let d = deps.get(n).await.unwrap();
        assert_eq!(e2e::first_image(&d), format!("registry.example/{n}:v2"));
    }

    // Gateway API mode (canary Service, weighted HTTPRoute), alongside the breach.
    let routed = train("routed", &[(50, 3), (100, 2)]).service(good("h").route("shop"));
    e2e::apply(&api, &routed.build()).await;
    // The breach: d is fine, e's new version answers 30 % 5xx.
    let breach = train("breach", &[(50, 4), (100, 2)])
        .service(good("d"))
        .service(svc("e").after(&["d"]).error_rate("0.3"));
    e2e::apply(&api, &breach.build()).await;
    let r = wait_release(
        &api,
        "breach",
        "the rollback",
        Duration::from_secs(120),
        |r| ["RollingBack", "RolledBack"].contains(&phase(&r["status"])),
    )
    .await;
    if phase(&r["status"]) == "RollingBack" {
        rel::capture(&r, "rolling-back");
    }
    let (ok, _, out) = kubectl_wait(ns.name(), "breach", "Stalled", 120).await;
    assert!(
        ok,
        "kubectl wait --for=condition=Stalled on the rolled-back release: {out}"
    );
    let r = wait_release(&api, "breach", "RolledBack", Duration::from_secs(60), |r| {
        phase(&r["status"]) == "RolledBack"
    })
    .await;
    rel::capture(&r, "rolled-back");
    let m = operator
        .wait_metrics("one RolledBack release", |m| {
            sample(m, r#"signalman_releases{phase="RolledBack"}"#) == Some(1.0)
        })
        .await;
    let nsq = ns.name();
    assert_eq!(
        sample(
            &m,
            &format!(r#"signalman_breaches_total{{namespace="{nsq}",service="e"}}"#)
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            &format!(r#"signalman_rollbacks_total{{namespace="{nsq}",reason="Breach"}}"#)
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "signalman_breach_to_weight_zero_seconds_count"),
        Some(1.0),
        "{m}"
    );
    let to_zero = sample(&m, "signalman_breach_to_weight_zero_seconds_sum").unwrap();
    assert!(
        (0.0..5.0).contains(&to_zero),
        "breach to weight 0 took {to_zero}s"
    );
    let fails = sample(
        &m,
        &format!(
            r#"signalman_measurements_total{{namespace="{nsq}",service="e",metric="error-rate",outcome="Fail"}}"#
        ),
    );
    assert!(fails.is_some_and(|f| f >= 1.0), "{m}");
    assert_eq!(
        sample(&m, r#"signalman_releases{phase="RolledBack"}"#),
        Some(1.0),
        "{m}"
    );
    // The chain, and the Gateway API release if it finished already.
    let succeeded = sample(&m, r#"signalman_releases{phase="Succeeded"}"#);
    assert!(matches!(succeeded, Some(1.0) | Some(2.0)), "{m}");
    eprintln!(
        "MEASURE breach to weight 0 (operator histogram): {to_zero:.3}s; failing measurements of e: {fails:?}"
    );

    let r = wait_release(&api, "routed", "Succeeded", Duration::from_secs(120), |r| {
        ["Succeeded", "RolledBack", "Failed"].contains(&phase(&r["status"]))
    })
    .await;
    assert_eq!(phase(&r["status"]), "Succeeded", "{}", r["status"]);
    let route = e2e::http_routes(&client, ns.name())
        .get("shop")
        .await
        .unwrap();
    let backends: Vec<&str> = route.data["spec"]["rules"][0]["backendRefs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["name"].as_str())
        .collect();
    assert_eq!(
        backends,
        vec!["h"],
        "the route is not back to its one backend"
    );

    // A hold: Prometheus unreachable, measurement errors beyond the limit.
    let held = train("held", &[(50, 30), (100, 1)])
        .service(good("g"))
        .prometheus("http://127.0.0.1:9")
        .error_limit(0);
    e2e::deploy_apps(&client, ns.name(), &["g"]).await;
    e2e::apply(&api, &held.build()).await;
    let r = wait_release(&api, "held", "a hold", Duration::from_secs(60), |r| {
        phase(&r["status"]) == "Held" && r["status"]["hold"].is_object()
    })
    .await;
    rel::capture(&r, "held");
    rel::patch_spec(&api, "held", |s| s.abort = Some(true)).await;
    wait_release(&api, "held", "RolledBack", Duration::from_secs(60), |r| {
        phase(&r["status"]) == "RolledBack"
    })
    .await;

    // A user pause while progressing: Paused (Suspended for Argo CD), then abort.
    rel::patch_spec(&api, "paused", |s| s.paused = Some(false)).await;
    wait_release(
        &api,
        "paused",
        "Progressing",
        Duration::from_secs(60),
        |r| phase(&r["status"]) == "Progressing",
    )
    .await;
    rel::patch_spec(&api, "paused", |s| s.paused = Some(true)).await;
    let r = wait_release(&api, "paused", "Paused", Duration::from_secs(60), |r| {
        phase(&r["status"]) == "Paused"
    })
    .await;
    rel::capture(&r, "paused");
    rel::patch_spec(&api, "paused", |s| s.abort = Some(true)).await;
    wait_release(&api, "paused", "RolledBack", Duration::from_secs(60), |r| {
        phase(&r["status"]) == "RolledBack"
    })
    .await;

    // The chart's RBAC sufficed: no request was refused.
    let log = std::fs::read_to_string(operator.log_path()).unwrap();
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "the operator was refused something:\n{}",
        operator.log_tail()
    );
    let errors = op::sum_metric(
        &operator.metrics().await,
        "signalman_reconcile_errors_total",
    );
    eprintln!(
        "MEASURE API writes by the operator: {}; reconcile errors: {errors}",
        operator.api_writes().await
    );

    // The dashboard queries only series the operator really exports.
    let exported = operator.metrics().await;
    for name in dashboard_metrics() {
        assert!(
            exported
                .lines()
                .any(|l| !l.starts_with('#') && l.starts_with(&name)),
            "the dashboard queries {name}, which /metrics does not have"
        );
    }

    drop(operator);
    chart.uninstall().await;
    ns.delete().await;
}

/// A Release through `steps` (weight, bake seconds), measured every second
/// against the 5 % error-rate ceiling, tolerating 3 measurement errors per step.
fn train(name: &str, steps: &[(i32, u64)]) -> rel::ReleaseBuilder {
    release(name).defaults(steps).error_limit(3)
}

/// A service whose new version is good (its change sets `SIM_ERROR_RATE=0`).
fn good(name: &str) -> rel::Svc {
    svc(name).error_rate("0")
}

/// Every query of the shipped Grafana dashboard is valid PromQL: the real
/// Prometheus parses it (with the dashboard variables filled in).
#[tokio::test]
async fn dashboard_queries_parse_in_prometheus() {
    let prom = e2e::Prometheus::from_env().await;
    let text = std::fs::read_to_string(chart_dir().join("dashboards/signalman.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut checked = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            let q = expr.replace("$job", ".*").replace("$namespace", ".*");
            if let Err(e) = prom.query(&q).await {
                panic!("panel {:?}: {expr}: {e:#}", panel["title"]);
            }
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} queries");
    eprintln!("{checked} dashboard queries parse");
}

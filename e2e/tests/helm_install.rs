//! The Helm chart against the real API server: lint, schema rejections, the
//! RBAC it grants (enough for the controller, nothing more), and the operator
//! running with nothing but the chart's ServiceAccount token.

mod chart;

use std::time::Duration;

use chart::{can_i, helm, install, text, uninstall};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role};
use kube::api::Api;
use signalman_e2e::{self as e2e, TestNamespace};

#[tokio::test]
async fn helm_lint_is_clean() {
    let chart = chart::chart_dir();
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
    let release = ns.name().to_string();
    let out = install(ns.name(), &release, &["replicaCount=0"]).await;
    assert!(out.status.success(), "helm install:\n{}", text(&out));
    let sa_name = format!("{release}-signalman");
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
    assert_eq!(
        c.liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/healthz")
    );
    assert_eq!(
        c.readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/readyz")
    );
    assert!(
        c.args
            .as_ref()
            .unwrap()
            .contains(&"--leader-elect=true".to_string())
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
        ("patch", "releases.signalman.dev:status", Some(other)),
        ("update", "releases.signalman.dev:finalizers", Some(other)),
        ("watch", "deployments.apps", None),
        ("create", "deployments.apps", Some(other)),
        ("patch", "deployments.apps", Some(other)),
        ("delete", "deployments.apps", Some(other)),
        ("list", "replicasets.apps", None),
        ("watch", "controllerrevisions.apps", None),
        ("create", "controllerrevisions.apps", Some(other)),
        ("patch", "services", Some(other)),
        ("delete", "services", Some(other)),
        ("watch", "httproutes.gateway.networking.k8s.io", None),
        ("patch", "httproutes.gateway.networking.k8s.io", Some(other)),
        ("create", "events.events.k8s.io", Some(other)),
        ("create", "leases.coordination.k8s.io", mine),
        ("get", "leases.coordination.k8s.io/signalman-leader", mine),
        (
            "update",
            "leases.coordination.k8s.io/signalman-leader",
            mine,
        ),
    ];
    // Nothing more: no Secrets, no wildcards, nothing it does not manage.
    let denied: &[(&str, &str, Option<&str>)] = &[
        ("get", "secrets", mine),
        ("list", "secrets", None),
        ("get", "configmaps", mine),
        ("create", "pods", Some(other)),
        ("delete", "pods", Some(other)),
        ("*", "*", None),
        ("*", "*", mine),
        ("create", "releases.signalman.dev", Some(other)),
        ("delete", "releases.signalman.dev", Some(other)),
        ("patch", "releases.signalman.dev", Some(other)),
        ("update", "releases.signalman.dev", Some(other)),
        ("update", "deployments.apps", Some(other)),
        ("patch", "deployments.apps:scale", Some(other)),
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
    eprintln!(
        "RBAC: {} allowed and {} denied checks hold for {sa}",
        allowed.len(),
        denied.len()
    );

    uninstall(ns.name(), &release).await;
    // helm uninstall removes the cluster-scoped objects too.
    e2e::wait_for(
        "the ClusterRole to be gone",
        Duration::from_secs(30),
        || async { Ok(cr.get_opt(&sa_name).await?.is_none().then_some(())) },
    )
    .await;
    ns.delete().await;
}

//! Issue 12, proof 4: approvals nobody can forge. The API server itself
//! (the ValidatingAdmissionPolicies of `crds/signalman.dev_admission.yaml`,
//! installed by the harness) refuses an approval made in someone else's
//! name, one by a user without the RBAC verb `approve` on the Release, any
//! edit of an approval, and a Release claiming another creator; the
//! controller then refuses the creator's own approval where the policy
//! wants four eyes, and takes another approver's. In a namespace the
//! platform team pinned to a policy (label `signalman.dev/policy`), a Release
//! naming another policy is refused.
//!
//! Users are impersonated with `kubectl --as` (the admin may impersonate);
//! their rights come from Roles in the test namespace.

use std::time::Duration;

use signalman_e2e::policy::{
    TestPolicy, What, approval, approval_object, grant, kubectl_as, kubectl_as_until,
};
use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{Scenario, kubectl, output_text};

#[tokio::test]
async fn the_api_server_vouches_for_approvers_and_creators_and_four_eyes_holds() {
    let sc = Scenario::start("adm-approval").await;
    let ns = sc.ns().to_owned();
    sc.deploy_apps(&["pay"]).await;
    let pol = TestPolicy::create(
        &sc.client,
        &format!("{ns}-four-eyes"),
        "risks:\n  high:\n    approvals: {beforeStart: true, fourEyes: true}\n",
    )
    .await;
    // alice creates and may approve; bob may approve; mallory may create
    // approvals (RBAC lets the request through to admission) but not approve.
    let creates_releases = "- {apiGroups: [signalman.dev], resources: [releases], verbs: [create, get, list, patch]}\n";
    grant(&sc.client, &ns, "alice", true, creates_releases).await;
    grant(&sc.client, &ns, "bob", true, "").await;
    grant(&sc.client, &ns, "mallory", false, creates_releases).await;

    // A high-risk release (a payment change) whose creator the API server vouches for.
    let train = release("pay-high")
        .analysis_only()
        .policy(pol.name())
        .created_by("alice")
        .service(svc("pay").class("payment").steps(&[(50, 2), (100, 1)]))
        .build();
    let said = kubectl_as_until(
        "mallory",
        &["create"],
        &ns,
        &train,
        "mallory claiming alice created the Release is refused",
        |o| !o.status.success() && output_text(o).contains("created-by"),
    )
    .await;
    assert!(
        said.contains("metadata.annotations[signalman.dev/created-by] is alice but the request is made by mallory"),
        "{said}"
    );
    let said = kubectl_as_until("alice", &["create"], &ns, &train, "alice creates it", |o| {
        o.status.success()
    })
    .await;
    assert!(said.contains("created"), "{said}");
    // Nobody changes who created it afterwards, not even the admin.
    let out = kubectl(&[
        "annotate",
        "--overwrite",
        "release/pay-high",
        "signalman.dev/created-by=mallory",
        "-n",
        &ns,
    ])
    .await;
    let said = output_text(&out);
    assert!(
        !out.status.success() && said.contains("never changed"),
        "{said}"
    );

    // mallory approving in alice's name: refused by the API server with the policy's words.
    let forged = approval_object(&approval(
        "forged",
        "pay-high",
        "alice",
        What::Gate("approval"),
    ));
    let said = kubectl_as_until(
        "mallory",
        &["create"],
        &ns,
        &forged,
        "the forged approval is refused",
        |o| !o.status.success() && output_text(o).contains("spec.approver is alice"),
    )
    .await;
    assert!(
        said.contains("spec.approver is alice but the request is made by mallory"),
        "{said}"
    );
    // In her own name she lacks the verb approve: refused too, saying how to get it.
    let own = approval_object(&approval(
        "mallorys",
        "pay-high",
        "mallory",
        What::Gate("approval"),
    ));
    let out = kubectl_as("mallory", &["create"], &ns, &own).await;
    let said = output_text(&out);
    assert!(
        !out.status.success()
            && said.contains("mallory may not approve Release")
            && said.contains("signalman-approver"),
        "{said}"
    );

    // alice's own approval is admitted...
    let alices = approval_object(&approval(
        "alices",
        "pay-high",
        "alice",
        What::Gate("approval"),
    ));
    kubectl_as_until(
        "alice",
        &["create"],
        &ns,
        &alices,
        "alice's approval is admitted",
        |o| o.status.success(),
    )
    .await;
    // ...and can never be edited, by her or anyone.
    for user in ["alice", "system:admin"] {
        let mut args = vec![
            "patch",
            "releaseapproval",
            "alices",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"comment":"changed my mind"}}"#,
        ];
        if user == "alice" {
            args.extend(["--as", "alice"]);
        }
        let out = kubectl(&args).await;
        let said = output_text(&out);
        assert!(
            !out.status.success() && said.contains("a ReleaseApproval cannot be changed"),
            "{user}: {said}"
        );
    }

    // ...but it is the creator's: four eyes does not count it.
    let api = sc.releases();
    let status = rel::wait_status(
        &api,
        "pay-high",
        "the creator's approval refused for four eyes",
        Duration::from_secs(30),
        |s| {
            rel::phase(s) == "AwaitingGates"
                && s["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("alice created the Release"))
        },
    )
    .await;
    // (The plan is written at the start; until then the profile says the risk.)
    assert_eq!(status["policy"]["profile"], "high", "{status}");
    let deps: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(sc.client.clone(), &ns);
    assert!(deps.get_opt("pay-canary").await.unwrap().is_none());

    // Someone else's approval counts: it starts.
    let bobs = approval_object(&approval("bobs", "pay-high", "bob", What::Gate("approval")));
    kubectl_as_until(
        "bob",
        &["create"],
        &ns,
        &bobs,
        "bob's approval is admitted",
        |o| o.status.success(),
    )
    .await;
    let status = rel::wait_phase(&api, "pay-high", "Succeeded", Duration::from_secs(90)).await;
    let passed = status["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["reason"] == "GatesPassed")
        .unwrap_or_else(|| panic!("{status}"));
    assert!(
        passed["message"].as_str().unwrap().contains("approval"),
        "{passed}"
    );

    // The platform team pins the namespace to the policy: a Release there
    // cannot name another one and so escape it (dry runs: nothing is made).
    let label = format!("signalman.dev/policy={}", pol.name());
    let out = kubectl(&["label", "namespace", &ns, &label]).await;
    assert!(out.status.success(), "{}", output_text(&out));
    let named = |policy: Option<&str>| {
        let b = release("pinned").analysis_only().service(svc("pay"));
        match policy {
            Some(p) => b.policy(p).build(),
            None => b.build(),
        }
    };
    let dry = ["create", "--dry-run=server"];
    let said = kubectl_as_until(
        "alice",
        &dry,
        &ns,
        &named(Some("lax")),
        "naming another policy in a pinned namespace is refused",
        |o| !o.status.success(),
    )
    .await;
    let p = pol.name();
    assert!(
        said.contains(&format!(
            "spec.policy: namespace {ns} follows ReleasePolicy {p} (its label signalman.dev/policy), \
             so a Release there cannot name ReleasePolicy lax; remove spec.policy or set it to {p}"
        )),
        "{said}"
    );
    for policy in [Some(p), None] {
        let out = signalman_e2e::policy::kubectl_as("alice", &dry, &ns, &named(policy)).await;
        assert!(out.status.success(), "{policy:?}: {}", output_text(&out));
    }
    sc.end().await;
    pol.delete(&signalman_e2e::client().await).await;
}

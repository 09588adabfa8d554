//! Issue 13, bad input: what the API server refuses at admission, in the
//! CRD's words naming the field and the fix, with nothing created; and what
//! only the controller can see (a migration ordered against nothing, a flag's
//! ConfigMap missing or claimed), Stalled before anything moves.

use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use signalman::api::Release;
use signalman_e2e::members::{self, JobWatch};
use signalman_e2e::release::{self as rel, flag, migration, release, svc};
use signalman_e2e::{self as e2e, Scenario, TestNamespace};

async fn refused(api: &Api<Release>, r: &Release) -> String {
    let name = r.metadata.name.clone().unwrap();
    match api
        .patch(
            &name,
            &PatchParams::apply(e2e::FIELD_MANAGER).force(),
            &Patch::Apply(r),
        )
        .await
    {
        Ok(_) => panic!("Release {name} was admitted"),
        Err(kube::Error::Api(s)) => s.message,
        Err(e) => panic!("applying {name}: {e}"),
    }
}

#[tokio::test]
async fn bad_members_are_refused_at_admission_naming_the_field_and_the_fix() {
    let client = e2e::client().await;
    let ns = TestNamespace::create(&client, "member-adm").await;
    signalman_e2e::operator::install_crd().await;
    let api: Api<Release> = Api::namespaced(client.clone(), ns.name());
    let one = |s: rel::Svc| {
        release("bad")
            .defaults(&[(50, 1), (100, 1)])
            .service(s)
            .build()
    };

    let mut both = migration("db");
    both = both.deployment("db").image("app", "registry.example/db:v2");
    let cases: Vec<(&str, Release, &str)> = vec![
        (
            "deployment and job",
            one(both),
            "a service is exactly one of deployment (with change), job or flag",
        ),
        (
            "neither",
            one(svc("web").deployment("").image("app", "x").without_change()),
            "a service is exactly one of deployment (with change), job or flag",
        ),
        (
            "a Job template without containers",
            one(migration("db")
                .forward_template(serde_json::json!({"spec": {"template": {"spec": {
                "restartPolicy": "Never", "containers": []}}}}))),
            "containers",
        ),
        (
            "restartPolicy Always",
            one(migration("db")
                .forward_template(serde_json::json!({"spec": {"template": {"spec": {
                "restartPolicy": "Always", "containers": [{"name": "m", "image": "m:1"}]}}}}))),
            "restartPolicy",
        ),
        (
            "irreversible without a justification",
            one(migration("db").irreversible(" ")),
            "justification must say why the migration cannot be reversed",
        ),
        (
            "rollback and irreversible",
            one(migration("db")
                .irreversible("x")
                .forward_template_rollback()),
            "give a rollback Job template (job.rollback), or say why the migration cannot be reversed (job.irreversible.justification), not both",
        ),
        (
            "a hold without a reason",
            one(svc("web").hold(" ")),
            "spec.services[].hold.reason must say why the service is not ready",
        ),
    ];
    let mut wrong = Vec::new();
    for (what, r, words) in cases {
        let message = refused(&api, &r).await;
        if !message.contains(words) {
            wrong.push(format!("{what}: {words:?} not in {message:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        api.list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "nothing created"
    );
    ns.delete().await;
}

#[tokio::test]
async fn what_only_the_controller_sees_stalls_the_release_before_anything_moves() {
    let sc = Scenario::start("member-stall").await;
    sc.deploy_apps(&["web", "api"]).await;
    let watch = JobWatch::start(&sc.client, sc.ns());
    let stalled = |api: Api<Release>, name: &'static str| async move {
        rel::wait_status(&api, name, "stalled", Duration::from_secs(60), |s| {
            rel::condition(s, "Stalled").is_some_and(|c| c["status"] == "True")
        })
        .await
    };

    // A migration nothing is ordered against: it would run beside web.
    let loose = release("loose")
        .defaults(&[(50, 1), (100, 1)])
        .service(migration("db"))
        .service(svc("web"))
        .build();
    let api = sc.apply(&loose).await;
    let s = stalled(api.clone(), "loose").await;
    let c = rel::condition(&s, "Stalled").unwrap();
    assert_eq!(c["reason"], "InvalidSpec", "{c}");
    assert!(
        c["message"]
            .as_str()
            .unwrap_or_default()
            .contains("migration db is ordered against nothing"),
        "{c}"
    );

    // A flag whose ConfigMap does not exist.
    let missing = release("missing")
        .defaults(&[(50, 1), (100, 1)])
        .service(svc("api"))
        .service(
            flag("on", "nowhere", &[("v2", "on")], 1)
                .after(&["api"])
                .unmeasured("test"),
        )
        .build();
    sc.apply(&missing).await;
    let s = stalled(api.clone(), "missing").await;
    let c = rel::condition(&s, "Stalled").unwrap();
    assert_eq!(c["reason"], "ConfigMapNotFound", "{c}");
    assert!(
        c["message"]
            .as_str()
            .unwrap_or_default()
            .contains("nowhere"),
        "{c}"
    );

    for name in ["loose", "missing"] {
        let r = rel::get(&api, name).await;
        assert_eq!(rel::phase(&r["status"]), "Pending", "{name}");
        assert!(
            r["status"]["startedAt"].is_null(),
            "{name}: {}",
            r["status"]
        );
    }
    assert!(
        watch.seen().is_empty(),
        "a Job was created: {:?}",
        watch.seen()
    );
    let deps: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(sc.client.clone(), sc.ns());
    for n in ["web", "api"] {
        assert_eq!(
            e2e::image_of(&deps, n).await,
            format!("registry.example/{n}:v1")
        );
    }
    sc.end().await;
}

#[tokio::test]
async fn a_config_map_claimed_by_a_release_in_flight_stalls_the_younger_one() {
    let sc = Scenario::start("member-claim").await;
    sc.deploy_apps(&["web"]).await;
    members::create_config_map(&sc.client, sc.ns(), "flags", &[("v2", "off")]).await;
    let first = release("first")
        .defaults(&[(50, 60), (100, 1)])
        .service(svc("web"))
        .service(
            flag("on", "flags", &[("v2", "on")], 1)
                .after(&["web"])
                .unmeasured("test"),
        )
        .build();
    let api = sc.apply(&first).await;
    rel::wait_baking(&api, "first", "web", Duration::from_secs(60)).await;
    let second = release("second")
        .defaults(&[(50, 1), (100, 1)])
        .service(flag("also", "flags", &[("other", "on")], 1).unmeasured("test"))
        .build();
    sc.apply(&second).await;
    let s = rel::wait_status(&api, "second", "stalled", Duration::from_secs(60), |s| {
        rel::condition(s, "Stalled").is_some_and(|c| c["status"] == "True")
    })
    .await;
    let c = rel::condition(&s, "Stalled").unwrap();
    assert_eq!(c["reason"], "ConfigMapClaimed", "{c}");
    let m = c["message"].as_str().unwrap_or_default();
    assert!(m.contains("flags") && m.contains("first"), "{c}");
    assert_eq!(
        members::config_map_data(&sc.client, sc.ns(), "flags").await["v2"],
        "off",
        "nothing set yet"
    );
    assert!(
        !members::config_map_data(&sc.client, sc.ns(), "flags")
            .await
            .contains_key("other")
    );
    sc.end().await;
}

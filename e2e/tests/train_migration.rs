//! Issue 13, "How it is proven" 1-3: migration Jobs in a train on the real
//! control plane (kwok completes a Job's pod after 1 s, or fails it with the
//! termination message its annotation gives).
//!
//! 1. db -> api -> web, web breaches: web's canary to 0, api restored, then
//!    db's rollback Job runs, and the Release ends RolledBack, in that order.
//! 2. A failing forward Job: nothing after it starts; what was promoted
//!    before it is rolled back.
//! 3. A failing rollback Job: the Release ends Failed, naming the Job, why,
//!    and its last log lines.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use serde_json::Value;
use signalman_e2e::members::{self, JobWatch};
use signalman_e2e::release::{self as rel, migration, release, svc};
use signalman_e2e::{self as e2e, Scenario};

/// Index of the last timeline entry with `reason` for `service`.
fn last(tl: &[(String, String)], reason: &str, service: &str) -> Option<usize> {
    tl.iter().rposition(|(r, s)| r == reason && s == service)
}

fn at(tl: &[(String, String)], reason: &str, service: &str) -> usize {
    rel::first(tl, reason, service).unwrap_or_else(|| panic!("no {reason} {service}: {tl:?}"))
}

async fn assert_images_v1(sc: &Scenario, names: &[&str]) {
    let deps: Api<Deployment> = Api::namespaced(sc.client.clone(), sc.ns());
    for n in names {
        assert_eq!(
            e2e::image_of(&deps, n).await,
            format!("registry.example/{n}:v1"),
            "{n}"
        );
        assert!(
            deps.get_opt(&format!("{n}-canary"))
                .await
                .unwrap()
                .is_none(),
            "{n}'s canary is left"
        );
    }
}

/// Each Job Signalman made was created once (one uid ever seen) and ran one pod.
async fn assert_each_job_ran_once(sc: &Scenario, watch: &JobWatch, want: &[&str]) {
    let seen = watch.seen();
    let names: Vec<&str> = seen.keys().map(String::as_str).collect();
    assert_eq!(names, want, "the Jobs: {seen:?}");
    for (name, uids) in &seen {
        assert_eq!(uids.len(), 1, "Job {name} was created {} times", uids.len());
        let pods = members::pods_of(&sc.client, sc.ns(), name).await;
        assert_eq!(pods.len(), 1, "Job {name} ran {} pods", pods.len());
    }
}

#[tokio::test]
async fn a_breach_restores_the_code_first_then_runs_the_rollback_job() {
    let sc = Scenario::start("train-mig").await;
    sc.deploy_apps(&["api", "web"]).await;
    let watch = JobWatch::start(&sc.client, sc.ns());
    let train = release("mig")
        .defaults(&[(50, 3), (100, 1)])
        .service(migration("db"))
        .service(svc("api").after(&["db"]))
        .service(svc("web").after(&["api"]).error_rate("0.3"))
        .build();
    let api = sc.apply(&train).await;
    let status = rel::wait_phase(&api, "mig", "RolledBack", Duration::from_secs(150)).await;

    let tl = rel::timeline(&status);
    // Forward: the Job ran and completed before api started.
    assert!(
        at(&tl, "JobStarted", "db") < at(&tl, "Promoted", "db"),
        "{tl:?}"
    );
    assert!(
        at(&tl, "Promoted", "db") < at(&tl, "StepStarted", "api"),
        "{tl:?}"
    );
    // Back: web to 0, api restored, then the rollback Job, then the end.
    assert!(at(&tl, "Breach", "") <= at(&tl, "WeightZero", ""), "{tl:?}");
    assert!(
        at(&tl, "WeightZero", "") < at(&tl, "Restored", "api"),
        "{tl:?}"
    );
    let rollback_started = last(&tl, "JobStarted", "db").unwrap();
    assert!(
        at(&tl, "Restored", "api") < rollback_started,
        "the rollback Job started before api was restored: {tl:?}"
    );
    assert!(rollback_started < at(&tl, "Restored", "db"), "{tl:?}");
    assert!(
        at(&tl, "Restored", "db") < at(&tl, "RolledBack", ""),
        "{tl:?}"
    );

    let db = rel::service(&status, "db").unwrap();
    assert_eq!(db["phase"], "Restored", "{db}");
    assert_eq!(db["forwardJob"]["name"], "mig-db-forward", "{db}");
    assert_eq!(db["forwardJob"]["result"], "Succeeded", "{db}");
    assert_eq!(db["rollbackJob"]["name"], "mig-db-rollback", "{db}");
    assert_eq!(db["rollbackJob"]["result"], "Succeeded", "{db}");
    assert_eq!(rel::service(&status, "api").unwrap()["phase"], "Restored");
    assert_eq!(rel::service(&status, "web").unwrap()["phase"], "Withdrawn");
    assert_images_v1(&sc, &["api", "web"]).await;

    // The Jobs: each once, owned by the Release, labelled, the rollback told
    // how the forward Job ended, failures falling back to the logs.
    assert_each_job_ran_once(&sc, &watch, &["mig-db-forward", "mig-db-rollback"]).await;
    let jobs = members::jobs(&sc.client, sc.ns()).await;
    let uid = rel::get(&api, "mig").await["metadata"]["uid"].clone();
    for (name, job) in &jobs {
        assert!(members::job_condition(job, "Complete"), "{name}: {job:?}");
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.kind, "Release", "{name}");
        assert_eq!(Value::from(owner.uid.clone()), uid, "{name}");
        assert_eq!(owner.controller, Some(true), "{name}");
        let labels = job.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["signalman.dev/release"], "mig", "{name}");
        assert_eq!(labels["signalman.dev/service"], "db", "{name}");
        let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_eq!(
            pod.containers[0].termination_message_policy.as_deref(),
            Some("FallbackToLogsOnError"),
            "{name}"
        );
    }
    assert_eq!(
        members::job_env(&jobs["mig-db-rollback"], "SIGNALMAN_FORWARD_RESULT"),
        [Some("Succeeded".to_string())]
    );
    assert_eq!(
        members::job_env(&jobs["mig-db-forward"], "SIGNALMAN_FORWARD_RESULT"),
        [None]
    );
    sc.end().await;
}

#[tokio::test]
async fn a_failing_forward_job_stops_the_train_and_rolls_back_what_went_before() {
    let sc = Scenario::start("train-fwd").await;
    sc.deploy_apps(&["a", "api"]).await;
    let watch = JobWatch::start(&sc.client, sc.ns());
    let train = release("fwd")
        .defaults(&[(50, 2), (100, 1)])
        .service(svc("a"))
        .service(
            migration("db")
                .after(&["a"])
                .forward_fails("ERROR: relation \"orders_v2\" already exists"),
        )
        .service(svc("api").after(&["db"]))
        .build();
    let api = sc.apply(&train).await;
    let status = rel::wait_phase(&api, "fwd", "RolledBack", Duration::from_secs(120)).await;

    let db = rel::service(&status, "db").unwrap();
    assert_eq!(db["forwardJob"]["result"], "Failed", "{db}");
    let message = db["forwardJob"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("BackoffLimitExceeded")
            && message.contains("relation \"orders_v2\" already exists"),
        "the forward Job's reason and last log lines: {db}"
    );
    let rollback = &status["rollback"];
    assert_eq!(rollback["reason"], "Breach", "{rollback}");
    let why = rollback["message"].as_str().unwrap_or_default();
    assert!(
        why.contains("fwd-db-forward") && why.contains("orders_v2"),
        "{rollback}"
    );
    // Nothing after it started; what went before is restored.
    let tl = rel::timeline(&status);
    assert!(
        rel::first(&tl, "StepStarted", "api").is_none(),
        "api started: {tl:?}"
    );
    assert_eq!(rel::service(&status, "api").unwrap()["phase"], "Skipped");
    assert_eq!(rel::service(&status, "a").unwrap()["phase"], "Restored");
    assert!(
        at(&tl, "Promoted", "a") < at(&tl, "JobStarted", "db"),
        "{tl:?}"
    );
    assert_images_v1(&sc, &["a", "api"]).await;
    // The half-applied migration is cleaned up by its rollback Job, told the
    // forward Job failed, in the rollback order: after api, before a.
    assert_eq!(db["phase"], "Restored", "{db}");
    assert!(
        at(&tl, "Restored", "db") < at(&tl, "Restored", "a"),
        "{tl:?}"
    );
    assert_each_job_ran_once(&sc, &watch, &["fwd-db-forward", "fwd-db-rollback"]).await;
    let jobs = members::jobs(&sc.client, sc.ns()).await;
    assert!(members::job_condition(&jobs["fwd-db-forward"], "Failed"));
    assert_eq!(
        members::job_env(&jobs["fwd-db-rollback"], "SIGNALMAN_FORWARD_RESULT"),
        [Some("Failed".to_string())]
    );
    sc.end().await;
}

#[tokio::test]
async fn a_failing_rollback_job_ends_the_release_failed_saying_which_and_why() {
    let sc = Scenario::start("train-rbf").await;
    sc.deploy_apps(&["api"]).await;
    let watch = JobWatch::start(&sc.client, sc.ns());
    let train = release("rbf")
        .defaults(&[(50, 3), (100, 1)])
        .service(
            migration("db")
                .rollback_fails("ERROR: cannot drop column \"total\": view depends on it"),
        )
        .service(svc("api").after(&["db"]).error_rate("0.3"))
        .build();
    let api = sc.apply(&train).await;
    rel::wait_phase(&api, "rbf", "Failed", Duration::from_secs(120)).await;
    // The report's golden files are this run's (`SIGNALMAN_CAPTURE_DIR`).
    let r = rel::wait_release(&api, "rbf", "its report", Duration::from_secs(10), |r| {
        r["status"]["report"].is_object()
    })
    .await;
    rel::capture(&r, "failed");
    let status = &r["status"];

    let message = status["message"].as_str().unwrap_or_default();
    for part in [
        "rollback Job rbf-db-rollback",
        "BackoffLimitExceeded",
        "cannot drop column \"total\": view depends on it",
        "finish it by hand",
    ] {
        assert!(message.contains(part), "{part:?} not in {message:?}");
    }
    let db = rel::service(status, "db").unwrap();
    assert_eq!(db["rollbackJob"]["result"], "Failed", "{db}");
    assert_ne!(db["phase"], "Restored", "{db}");
    // The code was withdrawn before the rollback Job ran.
    let tl = rel::timeline(status);
    assert!(
        at(&tl, "Withdrawn", "api") < last(&tl, "JobStarted", "db").unwrap(),
        "{tl:?}"
    );
    assert!(rel::first(&tl, "RolledBack", "").is_none(), "{tl:?}");
    assert_images_v1(&sc, &["api"]).await;
    assert_each_job_ran_once(&sc, &watch, &["rbf-db-forward", "rbf-db-rollback"]).await;
    let events = members::events(&sc.client, sc.ns(), "rbf").await;
    assert!(
        events
            .iter()
            .any(|(t, r, n)| t == "Warning" && r == "Failed" && n.contains("rbf-db-rollback")),
        "{events:#?}"
    );
    sc.end().await;
}

#[tokio::test]
async fn killed_during_the_forward_and_the_rollback_job_each_job_runs_once() {
    let mut sc = Scenario::start("train-kill").await;
    sc.deploy_apps(&["api"]).await;
    let watch = JobWatch::start(&sc.client, sc.ns());
    let train = release("kill")
        .defaults(&[(50, 3), (100, 1)])
        .service(migration("db"))
        .service(svc("api").after(&["db"]).error_rate("0.3"))
        .build();
    let api = sc.apply(&train).await;
    let recorded = |job: &'static str| {
        move |s: &Value| rel::service(s, "db").is_some_and(|d| d[job]["name"].is_string())
    };
    // The moment the forward Job is recorded: it may or may not exist yet.
    rel::wait_status(
        &api,
        "kill",
        "forward Job recorded",
        Duration::from_secs(60),
        recorded("forwardJob"),
    )
    .await;
    sc.operator.crash_and_restart().await;
    let forward = watch.seen();
    rel::wait_status(
        &api,
        "kill",
        "rollback Job recorded",
        Duration::from_secs(90),
        recorded("rollbackJob"),
    )
    .await;
    sc.operator.crash_and_restart().await;
    let status = rel::wait_phase(&api, "kill", "RolledBack", Duration::from_secs(120)).await;

    assert_each_job_ran_once(&sc, &watch, &["kill-db-forward", "kill-db-rollback"]).await;
    if let Some(uids) = forward.get("kill-db-forward") {
        assert_eq!(
            Some(uids),
            watch.seen().get("kill-db-forward"),
            "the forward Job seen before the kill is the one that ran"
        );
    }
    let tl = rel::timeline(&status);
    let count = |reason: &str| tl.iter().filter(|(r, s)| r == reason && s == "db").count();
    assert_eq!(count("JobStarted"), 2, "{tl:?}");
    assert_eq!(count("JobSucceeded"), 2, "{tl:?}");
    assert_eq!(count("RollbackJobRecorded"), 1, "{tl:?}");
    let db = rel::service(&status, "db").unwrap();
    assert_eq!(db["phase"], "Restored", "{db}");
    assert_images_v1(&sc, &["api"]).await;
    sc.end().await;
}

/// 4. An irreversible migration makes the train high risk: it waits for the
/// high profile's approval before anything runs, and on a breach everything
/// else is reversed while the migration stays applied, said plainly.
#[tokio::test]
async fn an_irreversible_migration_needs_the_high_approval_and_stays_applied() {
    use signalman_e2e::policy::{TestPolicy, What, approval, approve, whoami};
    let sc = Scenario::start("train-irr").await;
    sc.deploy_apps(&["api"]).await;
    let pol = TestPolicy::create(
        &sc.client,
        &format!("{}-risk", sc.ns()),
        "risks:\n\
         \x20 high:\n\
         \x20   approvals: {beforeStart: true}\n",
    )
    .await;
    let watch = JobWatch::start(&sc.client, sc.ns());
    let train = release("irr")
        .defaults(&[(50, 3), (100, 1)])
        .policy(pol.name())
        .service(migration("db").irreversible("drops the legacy_orders table; restore from backup"))
        .service(svc("api").after(&["db"]).error_rate("0.3"))
        .build();
    let api = sc.apply(&train).await;
    let status = rel::wait_status(
        &api,
        "irr",
        "waiting for the approval",
        Duration::from_secs(60),
        |s| rel::phase(s) == "AwaitingGates",
    )
    .await;
    assert_eq!(status["policy"]["profile"], "high", "{status}");
    // Nothing runs before the approval.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        watch.seen().is_empty(),
        "a Job ran unapproved: {:?}",
        watch.seen()
    );
    assert_eq!(rel::phase(&rel::status(&api, "irr").await), "AwaitingGates");

    let me = whoami(&sc.client).await;
    approve(
        &sc.client,
        sc.ns(),
        &approval("irr-go", "irr", &me, What::Gate("approval")),
    )
    .await;
    let status = rel::wait_phase(&api, "irr", "RolledBack", Duration::from_secs(120)).await;
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(
            "every change is reversed except the irreversible migration db, which stays applied"
        ),
        "{message}"
    );
    let db = rel::service(&status, "db").unwrap();
    assert_eq!(db["phase"], "Promoted", "{db}");
    assert!(
        db.get("rollbackJob").is_none() || db["rollbackJob"].is_null(),
        "{db}"
    );
    let tl = rel::timeline(&status);
    // In the rollback order: once api, which depends on it, is back.
    assert!(
        at(&tl, "Withdrawn", "api") < at(&tl, "StaysApplied", "db"),
        "{tl:?}"
    );
    assert!(
        at(&tl, "StaysApplied", "db") < at(&tl, "RolledBack", ""),
        "{tl:?}"
    );
    assert_each_job_ran_once(&sc, &watch, &["irr-db-forward"]).await;
    assert_images_v1(&sc, &["api"]).await;
    sc.end().await;
    pol.delete(&e2e::client().await).await;
}

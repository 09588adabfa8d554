//! `kubectl signalman plan` and the controller answer the same on the same
//! cluster state: both reduce what they read to the preflight's plain view,
//! and the claim rule is the one in `signalman::preflight`. Here the state is
//! an older Pending Release that names the same Deployment (the case where
//! `plan` once said "valid" and the controller then stalled).

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use signalman::api::{Phase, Release, ReleaseSpec, ReleaseStatus};
use signalman::engine::{self, Observations, ServiceObservation, StableObservation, TemplateState};
use signalman::plugin::schedule::{ClusterCheck, PlanInput, cluster_problems, render_plan};
use signalman::plugin::style::Style;
use signalman::preflight::{Claimant, ClusterView, ServiceView};

fn release(name: &str, created: i64, phase: Option<Phase>) -> Release {
    let spec: ReleaseSpec = serde_json::from_value(serde_json::json!({
        "owner": "team-web",
        "defaults": {"analysis": {"metrics": [{"name": "errors", "query": "up", "max": 0.01}]}},
        "services": [{"name": "web", "deployment": "web", "change": {"images": {"app": "web:v2"}}}]
    }))
    .unwrap();
    let mut r = Release::new(name, spec);
    r.metadata.namespace = Some("shop".into());
    r.metadata.generation = Some(1);
    r.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).unwrap()));
    r.status = phase.map(|p| ReleaseStatus {
        phase: Some(p),
        ..Default::default()
    });
    r
}

/// What the controller decides for `me`, as (Stalled reason, message), or None when it starts.
fn controller(me: &Release, stored: &[Release]) -> Option<(String, String)> {
    let obs = Observations {
        services: [(
            "web".to_owned(),
            ServiceObservation {
                stable: Some(StableObservation {
                    containers: vec!["app".into()],
                    template: TemplateState::Baseline,
                    rolled_out: true,
                    replicas: 2,
                    paused: false,
                    rollout_failed: false,
                    images: Default::default(),
                    fields: Vec::new(),
                }),
                ..Default::default()
            },
        )]
        .into(),
        measurements: vec![],
        releases: stored.iter().map(Claimant::of).collect(),
        refused: None,
        ..Observations::default()
    };
    let d = engine::decide(me, &obs, Timestamp::from_second(1_000).unwrap());
    d.status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled" && c.status == "True")
        .map(|c| (c.reason.clone(), c.message.clone()))
}

/// What `plan` says for `me` on the same state, as `kubectl-signalman` builds its view.
fn plan(me: &Release, stored: &[Release]) -> (bool, Vec<String>, String) {
    let view = ClusterView {
        namespace: "shop".into(),
        release: stored
            .iter()
            .find(|r| r.metadata.name == me.metadata.name)
            .map(Claimant::of),
        services: [(
            "web".to_owned(),
            ServiceView {
                containers: Some(vec!["app".into()]),
                route_found: false,
                replicas: Some(2),
            },
        )]
        .into(),
        releases: stored.iter().map(Claimant::of).collect(),
        config_maps: Default::default(),
    };
    let problems = cluster_problems(&me.spec, &view)
        .iter()
        .map(ToString::to_string)
        .collect();
    let check = ClusterCheck::Checked {
        server: "https://cluster".into(),
        facts: view,
    };
    let input = PlanInput {
        name: me.metadata.name.as_deref(),
        namespace: Some("shop"),
        spec: &me.spec,
    };
    let (text, valid) = render_plan(&input, &check, Style::plain());
    (valid, problems, text)
}

#[test]
fn an_older_pending_release_holds_the_deployment_for_plan_and_controller_alike() {
    let early = release("early", 5, None);
    let late = release("late", 10, None);
    let stored = [early.clone(), late.clone()];

    let (reason, message) = controller(&late, &stored).expect("the controller stalls late");
    assert_eq!(reason, "DeploymentClaimed");
    let (valid, problems, text) = plan(&late, &stored);
    assert!(!valid, "{text}");
    assert_eq!(
        problems.join("; "),
        message,
        "plan and the Stalled condition differ"
    );
    assert!(
        message.contains("is claimed by Release \"early\""),
        "{message}"
    );
    assert!(text.contains("INVALID, 1 problem"), "{text}");

    // The older one is not held back by the younger: both start it.
    assert_eq!(controller(&early, &stored), None);
    assert!(plan(&early, &stored).0);

    // A file not applied yet comes after every stored Release.
    let mut unsaved = release("fresh", 0, None);
    unsaved.metadata.creation_timestamp = None;
    let (valid, problems, _) = plan(&unsaved, &stored);
    assert!(!valid);
    assert!(problems[0].contains("\"early\""), "{problems:?}");

    // Once the older one has finished, nobody holds the Deployment.
    let done = [release("early", 5, Some(Phase::Succeeded)), late.clone()];
    assert_eq!(controller(&late, &done), None);
    assert!(plan(&late, &done).0);

    // One in flight holds it even when it is younger.
    let flying = [early.clone(), release("late", 10, Some(Phase::Progressing))];
    let (reason, message) = controller(&early, &flying).expect("early waits for late");
    assert_eq!(reason, "DeploymentClaimed");
    assert_eq!(plan(&early, &flying).1.join("; "), message);
}

fn flag_release(name: &str, created: i64) -> Release {
    let spec: ReleaseSpec = serde_json::from_value(serde_json::json!({
        "owner": "team-web",
        "defaults": {"analysis": {"metrics": [{"name": "errors", "query": "up", "max": 0.01}]}},
        "services": [{"name": "checkout-v2", "flag": {"configMap": "flags", "keys": {"checkout-v2": "on"}}}]
    }))
    .unwrap();
    let mut r = Release::new(name, spec);
    r.metadata.namespace = Some("shop".into());
    r.metadata.generation = Some(1);
    r.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).unwrap()));
    r
}

/// The controller's and plan's answers for a flag release when the ConfigMap
/// `flags` exists (`exists`) and `stored` are the Releases in the namespace.
fn flag_answers(
    me: &Release,
    stored: &[Release],
    exists: bool,
) -> (Option<(String, String)>, Vec<String>) {
    let obs = Observations {
        services: [(
            "checkout-v2".to_owned(),
            ServiceObservation {
                flag: exists.then(engine::FlagObservation::default),
                ..Default::default()
            },
        )]
        .into(),
        releases: stored.iter().map(Claimant::of).collect(),
        ..Observations::default()
    };
    let d = engine::decide(me, &obs, Timestamp::from_second(1_000).unwrap());
    let stalled = d
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled" && c.status == "True")
        .map(|c| (c.reason.clone(), c.message.clone()));
    let view = ClusterView {
        namespace: "shop".into(),
        release: stored
            .iter()
            .find(|r| r.metadata.name == me.metadata.name)
            .map(Claimant::of),
        services: Default::default(),
        releases: stored.iter().map(Claimant::of).collect(),
        config_maps: exists.then(|| "flags".to_owned()).into_iter().collect(),
    };
    let problems = cluster_problems(&me.spec, &view)
        .iter()
        .map(ToString::to_string)
        .collect();
    (stalled, problems)
}

#[test]
fn a_missing_or_claimed_flag_config_map_stalls_plan_and_controller_alike() {
    let early = flag_release("early", 5);
    let late = flag_release("late", 10);

    let (stalled, problems) = flag_answers(&late, std::slice::from_ref(&late), false);
    let (reason, message) = stalled.expect("the controller stalls without the ConfigMap");
    assert_eq!(reason, "ConfigMapNotFound");
    assert_eq!(
        problems.join("; "),
        message,
        "plan and the Stalled condition differ"
    );
    assert!(message.contains("\"flags\""), "{message}");

    let stored = [early.clone(), late.clone()];
    let (stalled, problems) = flag_answers(&late, &stored, true);
    let (reason, message) = stalled.expect("the younger one waits for the older");
    assert_eq!(reason, "ConfigMapClaimed");
    assert_eq!(
        problems.join("; "),
        message,
        "plan and the Stalled condition differ"
    );
    assert!(message.contains("\"early\""), "{message}");

    let (stalled, problems) = flag_answers(&early, &stored, true);
    assert_eq!(stalled, None);
    assert!(problems.is_empty(), "{problems:?}");
}

//! Issue 10, item 9: every transition is an Event of its own. Two services
//! promoted in the same wave give two `Promoted` Events, each saying which
//! service it was, rather than one "a promoted" counted twice.

use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{Scenario, wait_for};

#[tokio::test]
async fn each_transition_is_its_own_event() {
    let sc = Scenario::start("events").await;
    sc.deploy_apps(&["web", "api"]).await;
    // One wave, no analysis: both services take the same steps at the same time.
    let api = sc
        .apply(
            &release("train")
                .services(["web", "api"].map(|n| {
                    svc(n)
                        .steps(&[(50, 1), (100, 1)])
                        .unmeasured("both move in lockstep on bake time")
                }))
                .build(),
        )
        .await;
    let status = rel::wait_phase(&api, "train", "Succeeded", Duration::from_secs(90)).await;
    let timeline = rel::timeline(&status);

    let events: Api<Event> = Api::namespaced(sc.client.clone(), sc.ns());
    // Events are written after the status; wait for the last one.
    let train: Vec<Event> = wait_for("the Succeeded Event", Duration::from_secs(10), || async {
        let list = events.list(&ListParams::default()).await?;
        let train: Vec<Event> = list
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("train"))
            .collect();
        Ok(train
            .iter()
            .any(|e| e.reason.as_deref() == Some("Succeeded"))
            .then_some(train))
    })
    .await;
    let shown: Vec<String> = train
        .iter()
        .map(|e| {
            format!(
                "{} {:?} x{}",
                e.reason.as_deref().unwrap_or(""),
                e.note.as_deref().unwrap_or(""),
                e.series.as_ref().map_or(1, |s| s.count)
            )
        })
        .collect();

    let promoted: Vec<&str> = train
        .iter()
        .filter(|e| e.reason.as_deref() == Some("Promoted"))
        .filter_map(|e| e.note.as_deref())
        .collect();
    assert_eq!(
        promoted.len(),
        2,
        "one Promoted Event per service: {shown:#?}"
    );
    for service in ["web", "api"] {
        assert_eq!(
            promoted
                .iter()
                .filter(|n| n.starts_with(&format!("{service} promoted")))
                .count(),
            1,
            "{service} has its own Promoted Event: {shown:#?}"
        );
    }
    // Nothing was folded into another Event: no series, and as many Events
    // per reason as the timeline has transitions.
    assert!(train.iter().all(|e| e.series.is_none()), "{shown:#?}");
    for reason in ["StepPassed", "Promoted"] {
        assert_eq!(
            train
                .iter()
                .filter(|e| e.reason.as_deref() == Some(reason))
                .count(),
            timeline.iter().filter(|(r, _)| r == reason).count(),
            "{reason}: one Event per transition in the timeline {timeline:?}: {shown:#?}"
        );
    }
    sc.end().await;
}

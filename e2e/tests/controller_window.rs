//! Issue 12, proofs 1, 2 and 6: release windows on the real control plane.
//! A Release outside its window waits (`AwaitingWindow`) with nothing in the
//! cluster touched and starts by itself when the window opens; a frozen day
//! needs a justification and an approved override, and says which is
//! missing; a hotfix outside its window starts once reviewed with a
//! justification, and still rolls back on a breach. Windows are read in
//! UTC here and built from the clock when the test runs, so they hold on
//! any day at any hour. (The real Friday rule and DST are the engine's unit
//! tests, on the simulated clock.)

use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Weekday as Day;
use jiff::tz::TimeZone;
use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment};
use kube::api::Api;
use signalman::api::{Weekday, Window};
use signalman_e2e::policy::{TestPolicy, What, approval, approve, whoami};
use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{Scenario, image_of};

fn weekday(d: Day) -> Weekday {
    match d {
        Day::Monday => Weekday::Monday,
        Day::Tuesday => Weekday::Tuesday,
        Day::Wednesday => Weekday::Wednesday,
        Day::Thursday => Weekday::Thursday,
        Day::Friday => Weekday::Friday,
        Day::Saturday => Weekday::Saturday,
        Day::Sunday => Weekday::Sunday,
    }
}

fn day_name(d: Day) -> &'static str {
    match d {
        Day::Monday => "Monday",
        Day::Tuesday => "Tuesday",
        Day::Wednesday => "Wednesday",
        Day::Thursday => "Thursday",
        Day::Friday => "Friday",
        Day::Saturday => "Saturday",
        Day::Sunday => "Sunday",
    }
}

/// The resourceVersion of every Deployment and ControllerRevision in `ns`,
/// by name: what "nothing changed in the cluster" is checked against.
async fn versions(client: &kube::Client, ns: &str) -> Vec<(String, String)> {
    let deps: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let revs: Api<ControllerRevision> = Api::namespaced(client.clone(), ns);
    let mut out: Vec<(String, String)> = deps
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|d| {
            (
                format!("Deployment/{}", d.metadata.name.unwrap()),
                d.metadata.resource_version.unwrap(),
            )
        })
        .collect();
    out.extend(
        revs.list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|r| {
                (
                    format!("ControllerRevision/{}", r.metadata.name.unwrap()),
                    r.metadata.resource_version.unwrap(),
                )
            }),
    );
    out.sort();
    out
}

#[tokio::test]
async fn outside_its_window_a_release_waits_untouched_and_starts_when_the_window_opens() {
    let sc = Scenario::start("ctl-window").await;
    sc.deploy_apps(&["a"]).await;
    // The window opens at the next whole minute at least 40 s away, for the
    // rest of that day (UTC).
    let now = Timestamp::now();
    let opens = now
        .checked_add(jiff::SignedDuration::from_secs(100))
        .unwrap()
        .to_zoned(TimeZone::UTC)
        .round(
            jiff::ZonedRound::new()
                .smallest(jiff::Unit::Minute)
                .mode(jiff::RoundMode::Floor),
        )
        .unwrap();
    assert!(
        opens.timestamp()
            > now
                .checked_add(jiff::SignedDuration::from_secs(40))
                .unwrap()
    );
    let window = Window {
        days: vec![weekday(opens.weekday())],
        from: format!("{:02}:{:02}", opens.hour(), opens.minute()),
        to: "24:00".into(),
        time_zone: Some("UTC".into()),
    };
    let train = release("windowed")
        .defaults(&[(50, 2), (100, 1)])
        .window(window.clone())
        .service(svc("a"))
        .build();
    let before = versions(&sc.client, sc.ns()).await;
    let api = sc.apply(&train).await;
    let status = rel::wait_phase(&api, "windowed", "AwaitingWindow", Duration::from_secs(30)).await;
    rel::capture(&rel::get(&api, "windowed").await, "awaiting-window");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("outside the window"),
        "the message says why it waits: {status}"
    );
    assert_eq!(status["window"]["open"], false, "{status}");
    let next: Timestamp = status["window"]["nextOpening"]
        .as_str()
        .expect("status.window.nextOpening")
        .parse()
        .unwrap();
    assert_eq!(next, opens.timestamp(), "{status}");
    // kstatus: reconciling, not ready, not stalled.
    assert_eq!(
        rel::condition(&status, "Stalled").map(|c| c["status"].clone()),
        Some("False".into())
    );
    // Waiting writes nothing: the same objects at the same versions a while later.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        versions(&sc.client, sc.ns()).await,
        before,
        "the cluster changed while it waited"
    );
    let deps: Api<Deployment> = Api::namespaced(sc.client.clone(), sc.ns());
    assert!(deps.get_opt("a-canary").await.unwrap().is_none());
    assert_eq!(
        rel::phase(&rel::status(&api, "windowed").await),
        "AwaitingWindow"
    );

    // It starts by itself once the window opens, not before.
    let wait = (opens.timestamp() - Timestamp::now()).get_seconds().max(0) as u64 + 60;
    let status = rel::wait_phase(&api, "windowed", "Succeeded", Duration::from_secs(wait)).await;
    let started: Timestamp = status["startedAt"]
        .as_str()
        .or(status["timeline"][0]["at"].as_str())
        .expect("when it started")
        .parse()
        .unwrap();
    assert!(
        started >= opens.timestamp(),
        "started at {started}, before the window opened at {opens}"
    );
    assert_eq!(image_of(&deps, "a").await, "registry.example/a:v2");
    sc.end().await;
}

#[tokio::test]
async fn a_frozen_day_needs_a_justification_and_an_approved_override() {
    let sc = Scenario::start("ctl-freeze").await;
    sc.deploy_apps(&["a"]).await;
    // Today (and tomorrow, should the test cross midnight) are blackout days
    // of the test's own policy, which has no window: only the freeze holds.
    let today = Timestamp::now().to_zoned(TimeZone::UTC).date();
    let tomorrow = today.tomorrow().unwrap();
    let pol = TestPolicy::create(
        &sc.client,
        &format!("{}-freeze", sc.ns()),
        &format!(
            "freeze:\n  blackouts:\n  - {{date: \"{today}\", reason: e2e freeze}}\n  - {{date: \"{tomorrow}\", reason: e2e freeze}}\n"
        ),
    )
    .await;
    let train = release("frozen")
        .defaults(&[(50, 2), (100, 1)])
        .policy(pol.name())
        .service(svc("a"))
        .build();
    let before = versions(&sc.client, sc.ns()).await;
    let api = sc.apply(&train).await;

    // No override: waits, and says both things it would need.
    let status = rel::wait_status(
        &api,
        "frozen",
        "a frozen wait",
        Duration::from_secs(30),
        |s| {
            rel::phase(s) == "AwaitingWindow"
                && s["message"].as_str().is_some_and(|m| m.contains("frozen"))
        },
    )
    .await;
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("needs spec.override.justification")
            && message.contains("kubectl signalman approve frozen --window"),
        "{message}"
    );

    // A justification alone: still waits, and now says it waits for the approval.
    rel::patch_spec(&api, "frozen", |s| {
        s.window_override = Some(signalman::api::WindowOverride {
            justification: "e2e: the fix cannot wait for tomorrow".into(),
        })
    })
    .await;
    let status = rel::wait_status(
        &api,
        "frozen",
        "the justification seen",
        Duration::from_secs(30),
        |s| {
            s["message"].as_str().is_some_and(|m| {
                m.contains("has a justification; waits for an approval of the window override")
            })
        },
    )
    .await;
    assert_eq!(rel::phase(&status), "AwaitingWindow");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        versions(&sc.client, sc.ns()).await,
        before,
        "the cluster changed while it waited"
    );

    // Both: it starts, and the timeline says who overrode the freeze and why.
    let me = whoami(&sc.client).await;
    approve(
        &sc.client,
        sc.ns(),
        &approval("frozen-window", "frozen", &me, What::Window),
    )
    .await;
    let status = rel::wait_phase(&api, "frozen", "Succeeded", Duration::from_secs(90)).await;
    let overridden = status["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["reason"] == "WindowOverride")
        .unwrap_or_else(|| panic!("no WindowOverride in the timeline: {status}"));
    let note = overridden["message"].as_str().unwrap_or_default();
    assert!(
        note.contains(&me) && note.contains("cannot wait"),
        "{overridden}"
    );
    sc.end().await;
    pol.delete(&signalman_e2e::client().await).await;
}

#[tokio::test]
async fn a_reviewed_hotfix_starts_outside_its_window_and_still_rolls_back_on_a_breach() {
    let sc = Scenario::start("ctl-hotfix").await;
    sc.deploy_apps(&["a"]).await;
    // A window closed now: only a day that is not today.
    let today = Timestamp::now().to_zoned(TimeZone::UTC);
    let other = today
        .date()
        .checked_add(jiff::Span::new().days(3))
        .unwrap()
        .weekday();
    let pol = TestPolicy::create(
        &sc.client,
        &format!("{}-hotfix", sc.ns()),
        &format!(
            "window: {{days: [{}], from: \"00:00\", to: \"24:00\", timeZone: UTC}}\n\
             hotfix:\n  steps:\n  - {{weight: 50, bake: 20s}}\n  - {{weight: 100, bake: 5s}}\n",
            day_name(other)
        ),
    )
    .await;
    // The new version answers 30 % 5xx: the error-rate check must breach.
    let fix = release("hotfix")
        .analysis_only()
        .hotfix()
        .policy(pol.name())
        .justification("e2e: checkout is down")
        .service(svc("a").error_rate("0.3"))
        .build();
    let api = sc.apply(&fix).await;
    let status = rel::wait_status(
        &api,
        "hotfix",
        "a wait for the review",
        Duration::from_secs(30),
        |s| rel::phase(s) == "AwaitingWindow",
    )
    .await;
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("waits for an approval")),
        "{status}"
    );
    let deps: Api<Deployment> = Api::namespaced(sc.client.clone(), sc.ns());
    assert!(deps.get_opt("a-canary").await.unwrap().is_none());

    // The review approval, with the justification, lets it start outside the window.
    let me = whoami(&sc.client).await;
    approve(
        &sc.client,
        sc.ns(),
        &approval("hotfix-review", "hotfix", &me, What::Gate("review")),
    )
    .await;
    let status = rel::wait_status(&api, "hotfix", "the start", Duration::from_secs(60), |s| {
        !["Pending", "AwaitingWindow", "AwaitingGates", ""].contains(&rel::phase(s))
    })
    .await;
    assert_eq!(status["policy"]["profile"], "hotfix", "{status}");
    let reasons: Vec<String> = rel::timeline(&status).into_iter().map(|(r, _)| r).collect();
    assert!(reasons.iter().any(|r| r == "WindowOverride"), "{reasons:?}");
    // The abbreviated steps come from the policy's hotfix profile.
    let steps = &status["policy"]["defaults"]["steps"];
    assert_eq!(steps.as_array().map(Vec::len), Some(2), "{status}");

    // Still measured: the breach rolls it back.
    let status = rel::wait_phase(&api, "hotfix", "RolledBack", Duration::from_secs(120)).await;
    assert_eq!(status["rollback"]["reason"], "Breach", "{status}");
    assert_eq!(image_of(&deps, "a").await, "registry.example/a:v1");
    sc.end().await;
    pol.delete(&signalman_e2e::client().await).await;
}

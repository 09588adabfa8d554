//! The dashboard's pure parts and its HTTP surface, without a cluster: the
//! JSON views from the same fixtures as the terminal's golden tests
//! (`tests/fixtures/view/`), the layout by wave, and the refusal of every
//! write unless `--allow-actions` and the dashboard's own page ask for it.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use jiff::tz::TimeZone;
use signalman::api::{Outcome, Phase, ServicePhase};
use signalman::plugin::dashboard::guard::{Guard, TOKEN_HEADER};
use signalman::plugin::dashboard::hub::Hub;
use signalman::plugin::dashboard::views::{list_view, train_view};
use signalman::plugin::dashboard::{App, router};
use signalman::plugin::style::Style;
use signalman::plugin::view;
use tower::Service;

mod common;
use common::{now, release};

#[test]
fn a_train_is_laid_out_by_wave_with_one_node_per_service_and_dependson_as_edges() {
    let v = train_view(&release("progressing"), now());
    assert_eq!(
        v.waves,
        vec![
            vec!["payments-api".to_string(), "inventory".to_string()],
            vec!["checkout-web".to_string()]
        ]
    );
    let nodes: Vec<(&str, usize, ServicePhase, i32)> = v
        .nodes
        .iter()
        .map(|n| (n.service.as_str(), n.wave, n.phase, n.weight))
        .collect();
    assert_eq!(
        nodes,
        vec![
            ("payments-api", 1, ServicePhase::Promoted, 0),
            ("inventory", 1, ServicePhase::Progressing, 50),
            ("checkout-web", 2, ServicePhase::Pending, 0),
        ]
    );
    let edges: Vec<(&str, &str)> = v
        .edges
        .iter()
        .map(|e| (e.from.as_str(), e.to.as_str()))
        .collect();
    assert_eq!(
        edges,
        vec![
            ("payments-api", "checkout-web"),
            ("inventory", "checkout-web")
        ]
    );
    let inventory = &v.nodes[1];
    // Step and bake as `get` says them, counted from 1.
    assert_eq!((inventory.step, inventory.steps), (Some(2), 3));
    assert_eq!(inventory.bake, "bake 0:08 left");
    let text = view::render_release(
        &release("progressing"),
        now(),
        &TimeZone::UTC,
        Style::plain(),
    );
    assert!(text.contains(&inventory.bake), "{text}");
    // The rollback order, as positions on the nodes.
    let positions: Vec<Option<usize>> = v.nodes.iter().map(|n| n.rollback_position).collect();
    assert_eq!(positions, vec![Some(3), Some(2), Some(1)]);
    assert_eq!(v.text, text, "the page's text is the terminal's");
}

#[test]
fn each_metric_is_a_series_with_its_threshold_and_outcomes() {
    let v = train_view(&release("progressing"), now());
    assert_eq!(v.metrics.len(), 1, "only inventory was measured");
    let inv = &v.metrics[0];
    assert_eq!(inv.service, "inventory");
    let names: Vec<&str> = inv.metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, vec!["error-rate", "p99-latency"]);
    let error_rate = &inv.metrics[0];
    assert_eq!((error_rate.min, error_rate.max), (None, Some(0.01)));
    assert_eq!(error_rate.bound, "<= 0.01");
    assert_eq!(error_rate.points.len(), 3);
    assert_eq!(error_rate.points[2].value, Some(0.0034));
    assert_eq!(error_rate.points[2].step, 2);
    let latency = &inv.metrics[1];
    assert_eq!(latency.points[0].outcome, Outcome::Inconclusive);
    assert_eq!(latency.points[0].value, None);
}

#[test]
fn a_rolled_back_train_marks_the_breach_the_restored_order_and_the_first_deviation() {
    let v = train_view(&release("rolledback"), now());
    assert_eq!(v.phase, Phase::RolledBack);
    let web = v
        .nodes
        .iter()
        .find(|n| n.service == "checkout-web")
        .unwrap();
    assert!(web.breached);
    let api = v
        .nodes
        .iter()
        .find(|n| n.service == "payments-api")
        .unwrap();
    assert!(!api.breached);
    assert_eq!(v.restored, vec!["payments-api".to_string()]);
    assert_eq!(api.restored_position, Some(1));
    assert_eq!(web.restored_position, None);
    let marked: Vec<_> = v
        .timeline
        .rows
        .iter()
        .filter(|r| r.first_deviation)
        .collect();
    assert_eq!(marked.len(), 1);
    assert_eq!(marked[0].reason, "MeasurementFailed");
    assert_eq!(marked[0].at, "2026-11-26T15:51:05Z".parse().unwrap());
    assert!(!v.timeline.first_deviation_dropped);
    // Measurements and entries interleave in time, the failure only once.
    assert!(v.timeline.rows.windows(2).all(|w| w[0].at <= w[1].at));
    let failed = v
        .timeline
        .rows
        .iter()
        .filter(|r| {
            r.service == "checkout-web"
                && (r.reason == "MeasurementFailed" || r.outcome == Some(Outcome::Fail))
        })
        .count();
    assert_eq!(failed, 1);
    // Over: nothing to press.
    assert!(!v.actions.pause.possible && !v.actions.abort.possible);
    assert!(
        v.actions.abort.says.contains("already ended RolledBack"),
        "{}",
        v.actions.abort.says
    );
}

#[test]
fn a_finished_train_carries_its_report_and_the_restored_order_from_it() {
    let mut r = release("rolledback");
    assert!(r.status.as_ref().unwrap().report.is_none());
    assert!(train_view(&r, now()).report.is_none());
    // Once the report is written, its order is the one shown.
    let report: signalman::api::Report = serde_json::from_value(serde_json::json!({
        "outcome": "RolledBack", "summary": "rolled back", "owner": "team-checkout",
        "finishedAt": "2026-11-26T15:51:40Z", "durationSeconds": 100,
        "rollback": {"reason": "Breach", "message": "m", "restored": ["b", "a"]}
    }))
    .unwrap();
    r.status.as_mut().unwrap().report = Some(report);
    let v = train_view(&r, now());
    assert_eq!(v.restored, vec!["b".to_string(), "a".to_string()]);
    let doc = v.report.expect("a report");
    assert_eq!(doc.outcome, Phase::RolledBack);
    assert!(!doc.sections.is_empty());
}

#[test]
fn the_buttons_say_what_the_commands_would() {
    let r = release("progressing");
    let v = train_view(&r, now());
    assert!(v.actions.pause.possible);
    assert_eq!(
        v.actions.pause.says,
        signalman::plugin::steer::pause(&r).unwrap().says
    );
    assert!(!v.actions.resume.possible, "neither paused nor held");
    assert!(v.actions.abort.possible);
    assert!(
        v.actions.abort.says.contains("payments-api"),
        "{}",
        v.actions.abort.says
    );
    let waiting = train_view(&release("awaiting-approval"), now());
    assert!(
        !waiting.actions.approvals.is_empty(),
        "a step or gate waits for an approval"
    );
}

#[test]
fn the_list_is_newest_first_with_notes_filters_and_age() {
    let all = [
        release("progressing"),
        release("rolledback"),
        release("held"),
        release("stalled"),
    ];
    let v = list_view(all.iter(), now());
    assert_eq!(v.releases.len(), 4);
    let first = &v.releases[0];
    assert_eq!(first.name, "checkout-v5");
    assert_eq!(first.age.as_deref(), Some("2m"));
    assert_eq!(v.namespaces, vec!["shop".to_string()]);
    assert!(v.phases.contains(&Phase::RolledBack) && v.phases.contains(&Phase::Progressing));
    let stalled = v.releases.iter().find(|r| r.note == Some("stalled"));
    assert!(stalled.is_some(), "{:?}", v.releases);
}

#[test]
fn text_that_steers_a_terminal_is_escaped_in_the_views_too() {
    let mut r = release("progressing");
    r.spec.owner = "team\u{1b}[2J\u{202e}x".into();
    let v = train_view(&r, now());
    assert_eq!(v.owner, "team\\u{1b}[2J\\u{202e}x");
    let l = list_view([&r], now());
    assert_eq!(l.releases[0].owner, v.owner);
}

// ---- the HTTP surface -----------------------------------------------------------

fn app(allow_actions: bool) -> App {
    App {
        hub: Hub::from_releases([release("progressing")]),
        guard: Arc::new(Guard::new("127.0.0.1", 3100, "t0k".into(), allow_actions)),
        conn: None,
        namespace: Some("shop".into()),
    }
}

async fn send(app: App, req: Request<Body>) -> (StatusCode, String) {
    let mut r = router(app);
    let res = r.call(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn pause(host: &str, origin: Option<&str>, token: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/api/releases/shop/checkout-v5/pause")
        .header("host", host)
        .header("content-type", "application/json");
    if let Some(o) = origin {
        b = b.header("origin", o);
    }
    if let Some(t) = token {
        b = b.header(TOKEN_HEADER, t);
    }
    b.body(Body::from("{}")).unwrap()
}

#[tokio::test]
async fn without_allow_actions_a_post_is_refused_and_the_page_has_no_buttons() {
    let (status, body) = send(
        app(false),
        pause("127.0.0.1:3100", Some("http://127.0.0.1:3100"), Some("t0k")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("read-only"), "{body}");
    let (status, page) = send(
        app(false),
        Request::get("/")
            .header("host", "127.0.0.1:3100")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(r#"<meta name="signalman-actions" content="false">"#),
        "{page}"
    );
}

#[tokio::test]
async fn with_allow_actions_a_forged_post_is_still_refused() {
    for (host, origin, token) in [
        ("127.0.0.1:3100", Some("http://evil.example"), Some("t0k")),
        ("127.0.0.1:3100", None, Some("t0k")),
        ("127.0.0.1:3100", Some("http://127.0.0.1:3100"), None),
        (
            "127.0.0.1:3100",
            Some("http://127.0.0.1:3100"),
            Some("guess"),
        ),
        (
            "evil.example:3100",
            Some("http://evil.example:3100"),
            Some("t0k"),
        ),
    ] {
        let (status, body) = send(app(true), pause(host, origin, token)).await;
        assert!(
            status == StatusCode::FORBIDDEN || status == StatusCode::MISDIRECTED_REQUEST,
            "{host} {origin:?} {token:?}: {status} {body}"
        );
    }
    // The page's own request gets past the guard (and, with no cluster behind
    // this test's dashboard, no further).
    let (status, body) = send(
        app(true),
        pause("127.0.0.1:3100", Some("http://127.0.0.1:3100"), Some("t0k")),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
}

#[tokio::test]
async fn abort_needs_the_release_name_typed_and_only_watched_releases_are_steered() {
    let post = |path: &str, body: &'static str| {
        Request::post(path)
            .header("host", "127.0.0.1:3100")
            .header("origin", "http://127.0.0.1:3100")
            .header(TOKEN_HEADER, "t0k")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    let url = "/api/releases/shop/checkout-v5/abort";
    for body in [
        "{}",
        r#"{"confirm": "checkout"}"#,
        r#"{"confirm": "CHECKOUT-V5"}"#,
    ] {
        let (status, answer) = send(app(true), post(url, body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(
            answer.contains("type the release's name (checkout-v5)"),
            "{answer}"
        );
    }
    // The name typed: past every check, up to the cluster (none behind this test).
    let (status, _) = send(app(true), post(url, r#"{"confirm": "checkout-v5"}"#)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // Another namespace than the one it shows, or an unknown action: nothing.
    let (status, _) = send(
        app(true),
        post("/api/releases/other/checkout-v5/pause", "{}"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, answer) = send(
        app(true),
        post("/api/releases/shop/checkout-v5/delete", "{}"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    let (status, _) = send(
        app(true),
        post("/api/releases/shop/checkout-v5/pause", "not json"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// The first event of an event stream: its name and its JSON.
async fn first_event(app: App, path: &str) -> (String, serde_json::Value) {
    let mut r = router(app);
    let res = r
        .call(
            Request::get(path)
                .header("host", "127.0.0.1:3100")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut body = res.into_body();
    let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
    let text = String::from_utf8(frame.to_vec()).unwrap();
    let event = text
        .lines()
        .find_map(|l| l.strip_prefix("event: "))
        .unwrap()
        .to_owned();
    let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    (event, serde_json::from_str(data).unwrap())
}

#[tokio::test]
async fn a_page_gets_its_view_at_once_from_its_event_stream() {
    let (event, list) = first_event(app(false), "/api/events").await;
    assert_eq!(event, "list");
    assert_eq!(list["releases"][0]["name"], "checkout-v5");
    let (event, train) = first_event(app(false), "/api/events/shop/checkout-v5").await;
    assert_eq!(event, "train");
    assert_eq!(train["nodes"].as_array().unwrap().len(), 3);
    let (event, gone) = first_event(app(false), "/api/events/shop/nope").await;
    assert_eq!(event, "gone");
    assert_eq!(gone["name"], "nope");
}

#[tokio::test]
async fn reads_serve_the_views_only_to_the_dashboards_own_host() {
    let (status, body) = send(
        app(false),
        Request::get("/api/releases/shop/checkout-v5")
            .header("host", "localhost:3100")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["nodes"].as_array().unwrap().len(), 3);
    assert_eq!(v["nodes"][1]["weight"], 50);
    // A page elsewhere whose DNS name was rebound to 127.0.0.1 reads nothing.
    let (status, _) = send(
        app(false),
        Request::get("/api/releases")
            .header("host", "rebound.example:3100")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
    let (status, body) = send(
        app(false),
        Request::get("/api/releases/shop/nope")
            .header("host", "127.0.0.1:3100")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

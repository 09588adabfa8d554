//! bench-dashboard: how fast `kubectl signalman dashboard` is with 200
//! Releases in the list and one 50-service train (`make bench-dashboard`).
//!
//! No cluster: the Releases are synthesized in-process, each with a status
//! as the controller writes it (every measurement it keeps, a full
//! timeline), and served by the dashboard's own router from a store filled
//! in-process. It prints the time to build the list and train JSON (median
//! of `ROUNDS`), their sizes, and, in headless chromium through
//! chromedriver, the time from following a link to the 50-service graph on
//! screen and the time one redraw of the list and of the train takes.
//! Environment: `ROUNDS` (200), `SERVICES` (50), `RELEASES` (200), `CHROMIUM`,
//! `CHROMEDRIVER`; `SCREENSHOT=file.png` saves the big train as drawn.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde_json::{Value, json};
use signalman::api::Release;
use signalman::plugin::dashboard::guard::Guard;
use signalman::plugin::dashboard::hub::Hub;
use signalman::plugin::dashboard::views::{list_view, train_view};
use signalman::plugin::dashboard::{App, serve};
use signalman_e2e::browser::Browser;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn at(now: Timestamp, seconds_ago: i64) -> String {
    (now - jiff::SignedDuration::from_secs(seconds_ago)).to_string()
}

/// A train of `services` in waves of up to ten, each depending on two
/// services of the wave before; the first waves promoted, the next moving
/// with every measurement kept (12 per service), the rest pending.
fn train(name: &str, namespace: &str, services: usize, now: Timestamp) -> Release {
    let per_wave = 10.min(services.max(1));
    let name_of = |i: usize| format!("svc-{i:02}");
    let wave_of = |i: usize| i / per_wave;
    let waves = services.div_ceil(per_wave);
    let moving = 1.min(waves - 1);
    let mut specs = Vec::new();
    let mut statuses = Vec::new();
    let mut timeline = Vec::new();
    for i in 0..services {
        let w = wave_of(i);
        let deps: Vec<String> = if w == 0 {
            vec![]
        } else {
            let base = (w - 1) * per_wave;
            vec![
                name_of(base + i % per_wave),
                name_of(base + (i + 1) % per_wave),
            ]
        };
        specs.push(json!({
            "name": name_of(i), "deployment": name_of(i), "dependsOn": deps,
            "change": {"images": {"app": format!("registry.example/{}:v2", name_of(i))}},
        }));
        let (phase, step, weight) = match w.cmp(&moving) {
            std::cmp::Ordering::Less => ("Promoted", Value::Null, 0),
            std::cmp::Ordering::Equal => ("Progressing", json!(1), 50),
            std::cmp::Ordering::Greater => ("Pending", Value::Null, 0),
        };
        let mut measurements = Vec::new();
        if w == moving {
            for k in 0..6 {
                for (metric, value) in [
                    ("error-rate", 0.002 + 0.001 * k as f64),
                    ("p99-latency", 0.12),
                ] {
                    measurements.push(json!({
                        "metric": metric, "step": 1, "value": value, "outcome": "Pass",
                        "at": at(now, 60 - 5 * k as i64),
                    }));
                }
            }
            timeline.push(json!({"at": at(now, 70), "reason": "StepStarted", "service": name_of(i), "message": "step 2/3 at 50%"}));
        } else if w < moving {
            timeline.push(json!({"at": at(now, 200), "reason": "Promoted", "service": name_of(i), "message": "v2 is stable"}));
        }
        statuses.push(json!({
            "name": name_of(i), "phase": phase, "step": step, "weight": weight,
            "bakeStartedAt": if w == moving { json!(at(now, 62)) } else { Value::Null },
            "tally": if w == moving { json!([{"metric": "error-rate", "passed": 6}, {"metric": "p99-latency", "passed": 6}]) } else { json!([]) },
            "measurements": measurements,
        }));
    }
    let plan_waves: Vec<Value> = (0..waves)
        .map(|w| json!({"services": (w * per_wave..((w + 1) * per_wave).min(services)).map(name_of).collect::<Vec<_>>()}))
        .collect();
    let rollback_order: Vec<String> = (0..services).rev().map(name_of).collect();
    serde_json::from_value(json!({
        "apiVersion": "signalman.dev/v1alpha1", "kind": "Release",
        "metadata": {"name": name, "namespace": namespace, "generation": 1, "creationTimestamp": at(now, 600)},
        "spec": {
            "owner": "team-checkout", "summary": "a synthesized train",
            "defaults": {
                "steps": [{"weight": 25, "bake": "2m"}, {"weight": 50, "bake": "2m"}, {"weight": 100, "bake": "1m"}],
                "analysis": {"interval": "5s", "metrics": [
                    {"name": "error-rate", "query": "q", "max": 0.01},
                    {"name": "p99-latency", "query": "q", "max": 0.25},
                ]},
            },
            "services": specs,
        },
        "status": {
            "observedGeneration": 1, "phase": "Progressing", "currentWave": format!("{}/{waves}", moving + 1),
            "progress": format!("{}/{services} promoted", moving * per_wave),
            "startedAt": at(now, 500),
            "plan": {"waves": plan_waves, "rollbackOrder": rollback_order},
            "services": statuses, "timeline": timeline,
        },
    }))
    .expect("a synthesized Release reads")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<T>(rounds: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut took = Vec::with_capacity(rounds);
    let mut last = None;
    for _ in 0..rounds {
        let t = Instant::now();
        last = Some(f());
        took.push(t.elapsed());
    }
    (median(took), last.expect("at least one round"))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    signalman_e2e::install_crypto_provider();
    let rounds = env("ROUNDS", 200);
    let services = env("SERVICES", 50);
    let count = env("RELEASES", 200);
    let now = Timestamp::now();
    let mut releases: Vec<Release> = (0..count)
        .map(|i| {
            train(
                &format!("release-{i:03}"),
                &format!("team-{}", i % 8),
                5,
                now,
            )
        })
        .collect();
    let big = train("big-train", "team-0", services, now);
    releases.push(big.clone());

    let (list_took, list) = time(rounds, || {
        serde_json::to_string(&list_view(releases.iter(), Timestamp::now())).unwrap()
    });
    let (train_took, train_json) = time(rounds, || {
        serde_json::to_string(&train_view(&big, Timestamp::now())).unwrap()
    });
    println!(
        "list of {} Releases: JSON built in {} (median of {rounds}), {} bytes",
        releases.len(),
        ms(list_took),
        list.len()
    );
    println!(
        "train of {services} services: JSON built in {} (median of {rounds}), {} bytes",
        ms(train_took),
        train_json.len()
    );

    // The same views through the dashboard's router, in a browser.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = App {
        hub: Hub::from_releases(releases),
        guard: Arc::new(Guard::new("127.0.0.1", port, "bench".into(), false)),
        conn: None,
        namespace: None,
    };
    tokio::spawn(serve(listener, app));
    let browser = Browser::start(1400, 1000).await;
    browser.goto(&format!("http://127.0.0.1:{port}/")).await;
    browser
        .wait_js(
            "the list",
            Duration::from_secs(30),
            &format!(
                "return document.querySelectorAll('#releases tr[data-release]').length === {}",
                count + 1
            ),
        )
        .await;
    let follow = browser
        .client
        .execute_async(
            &format!(
                "const done = arguments[0]; const t0 = performance.now();
                 location.hash = '#/r/team-0/big-train';
                 (function look() {{
                   if (document.querySelectorAll('#graph .node').length === {services}) done(performance.now() - t0);
                   else requestAnimationFrame(look);
                 }})();"
            ),
            vec![],
        )
        .await
        .unwrap();
    if let Some(path) = std::env::var_os("SCREENSHOT") {
        std::fs::write(&path, browser.screenshot().await).unwrap();
    }
    let redraw_train = browser
        .js(&format!(
            "const t = []; for (let i = 0; i < 20; i++) {{ const t0 = performance.now(); drawTrain(current); \
             document.body.offsetHeight; t.push(performance.now() - t0); }} t.sort((a, b) => a - b); \
             return document.querySelectorAll('#graph .node').length === {services} ? t[10] : null"
        ))
        .await;
    browser.goto(&format!("http://127.0.0.1:{port}/")).await;
    browser
        .wait_js(
            "the list again",
            Duration::from_secs(30),
            &format!(
                "return document.querySelectorAll('#releases tr[data-release]').length === {}",
                count + 1
            ),
        )
        .await;
    let redraw_list = browser
        .js(
            "const t = []; for (let i = 0; i < 20; i++) { const t0 = performance.now(); drawList(lastList); \
             document.body.offsetHeight; t.push(performance.now() - t0); } t.sort((a, b) => a - b); return t[10]",
        )
        .await;
    browser.close().await;
    let f = |v: &Value| format!("{:.1} ms", v.as_f64().unwrap_or(f64::NAN));
    println!(
        "chromium: link to the {services}-service graph on screen {} (stream, JSON, layout, first paint)",
        f(&follow)
    );
    println!(
        "chromium: one redraw of the train {} (median of 20)",
        f(&redraw_train)
    );
    println!(
        "chromium: one redraw of the list of {} {} (median of 20)",
        count + 1,
        f(&redraw_list)
    );
}

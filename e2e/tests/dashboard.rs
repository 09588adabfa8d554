//! `kubectl signalman dashboard` in a real browser (headless chromium through
//! chromedriver) during live trains with the operator running: the graph has
//! one node per service in its wave, a node's weight moves on screen without
//! a reload, a breach turns its node red and the restored services show their
//! order; without `--allow-actions` there is no button and a POST is refused,
//! with it a forged POST is still refused and Pause in the page sets
//! `spec.paused`.
//!
//! With `SIGNALMAN_SCREENSHOTS=1` it writes the screenshots the docs show
//! (docs/img/dashboard-{list,train,rolledback}.png); otherwise the tree stays clean.

use std::time::Duration;

use serde_json::Value;
use signalman_e2e::Scenario;
use signalman_e2e::browser::{Browser, Dashboard};
use signalman_e2e::release::{self as rel, release, svc};

/// The page down to `max_height` pixels, as docs/img/dashboard-NAME.png.
async fn screenshot(browser: &Browser, name: &str, max_height: u32) {
    if std::env::var_os("SIGNALMAN_SCREENSHOTS").is_none_or(|v| v != "1") {
        return;
    }
    let height = browser
        .js("return document.documentElement.scrollHeight")
        .await
        .as_u64()
        .unwrap_or(1000) as u32;
    let height = height.clamp(600, max_height);
    browser.client.set_window_size(1400, height).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let png = browser.screenshot().await;
    browser.client.set_window_size(1400, 1000).await.unwrap();
    let dir = signalman_e2e::repo_root().join("docs/img");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("dashboard-{name}.png"));
    std::fs::write(&path, png).unwrap();
    eprintln!("wrote {}", path.display());
}

/// The graph's nodes as the page shows them: service -> (wave, phase, weight).
const NODES: &str = r#"
return Array.from(document.querySelectorAll('#graph .node')).map(n => ({
  service: n.dataset.service, wave: +n.dataset.wave, phase: n.dataset.phase,
  weight: +n.dataset.weight, restored: n.dataset.restored ? +n.dataset.restored : null,
  breached: n.dataset.breached === 'true',
  fill: getComputedStyle(n.querySelector('rect.box')).fill,
}));"#;

fn node<'a>(nodes: &'a Value, service: &str) -> &'a Value {
    nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["service"] == service)
        .unwrap_or_else(|| panic!("no node {service} in {nodes}"))
}

#[tokio::test]
async fn the_dashboard_shows_live_trains_and_acts_only_when_allowed() {
    let sc = Scenario::start("dashboard").await;
    let n = sc.ns().to_owned();
    sc.deploy_apps(&["web", "cart", "search", "edge", "pay", "shop"])
        .await;
    // The train: web first, then cart and search (wave 2), then edge (wave 3);
    // steps long enough to watch a weight move and to pause it in flight (web's
    // first step long enough that a slow machine still sees it at 25 %).
    let train = release("train")
        .defaults(&[(25, 8), (50, 8), (100, 2)])
        .service(svc("web").steps(&[(25, 15), (50, 10), (100, 2)]))
        .service(svc("cart").after(&["web"]))
        .service(svc("search").after(&["web"]))
        .service(svc("edge").after(&["cart", "search"]))
        .build();
    // The breach: pay is promoted, then shop's new version answers 30 % 5xx.
    let breach = release("breach")
        .defaults(&[(50, 4), (100, 1)])
        .service(svc("pay"))
        .service(svc("shop").after(&["pay"]).error_rate("0.3"))
        .build();

    let read_only = Dashboard::start(&["-n", &n]).await;
    let browser = Browser::start(1400, 1000).await;

    // The list, before and after the trains exist: it follows the watch.
    browser.goto(&read_only.url()).await;
    browser
        .wait_js(
            "the empty list",
            Duration::from_secs(20),
            "return document.getElementById('releases') !== null",
        )
        .await;
    let api = sc.apply(&train).await;
    sc.apply(&breach).await;
    browser
        .wait_js(
            "both releases listed",
            Duration::from_secs(20),
            "return document.querySelectorAll('#releases tr[data-release]').length === 2",
        )
        .await;
    // Into the train by its link, as a person would: the page never reloads from here.
    browser
        .js(&format!(
            "document.querySelector('tr[data-release=\"{n}/train\"] a').click(); return true"
        ))
        .await;
    browser
        .wait_js(
            "the train's graph",
            Duration::from_secs(20),
            "return document.querySelectorAll('#graph .node').length === 4",
        )
        .await;
    browser
        .js("window.__sameDocument = 'yes'; return true")
        .await;
    let nodes = browser.js(NODES).await;
    for (service, wave) in [("web", 1), ("cart", 2), ("search", 2), ("edge", 3)] {
        assert_eq!(node(&nodes, service)["wave"], wave, "{nodes}");
    }
    let edges = browser
        .js("return Array.from(document.querySelectorAll('#graph .edge')).map(e => e.dataset.from + '>' + e.dataset.to).sort()")
        .await;
    assert_eq!(
        edges,
        serde_json::json!(["cart>edge", "search>edge", "web>cart", "web>search"])
    );

    // web's weight on screen goes 25 -> 50 as its step advances.
    browser
        .wait_js(
            "web at 25% on screen",
            Duration::from_secs(60),
            "return document.querySelector('#graph .node[data-service=\"web\"]')?.dataset.weight === '25'",
        )
        .await;
    let bar_at_25 = browser
        .js("return +document.querySelector('#graph .node[data-service=\"web\"] rect.bar').getAttribute('width')")
        .await;
    browser
        .wait_js(
            "web at 50% on screen",
            Duration::from_secs(60),
            "return document.querySelector('#graph .node[data-service=\"web\"]')?.dataset.weight === '50'",
        )
        .await;
    let bar_at_50 = browser
        .js("return +document.querySelector('#graph .node[data-service=\"web\"] rect.bar').getAttribute('width')")
        .await;
    assert!(
        bar_at_50.as_f64().unwrap() > bar_at_25.as_f64().unwrap(),
        "{bar_at_25} -> {bar_at_50}"
    );
    assert_eq!(
        browser.js("return window.__sameDocument || null").await,
        "yes",
        "the page reloaded"
    );
    // Read-only: no button, and even the page's own POST (with its token) is refused.
    assert_eq!(
        browser
            .js("return document.querySelectorAll('.actions button, button[data-approve]').length")
            .await,
        0
    );
    let refused = browser
        .client
        .execute_async(
            &format!(
                "const done = arguments[0];
                 fetch('/api/releases/{n}/train/pause', {{method: 'POST',
                   headers: {{'Content-Type': 'application/json',
                             'X-Signalman-Token': document.querySelector('meta[name=signalman-token]').content}},
                   body: '{{}}'}}).then(r => done(r.status));"
            ),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(refused, 403);
    assert_eq!(api.get("train").await.unwrap().spec.paused, None);

    // A moving train: wait until the second wave is in flight, with measurements.
    browser
        .wait_js(
            "the second wave moving",
            Duration::from_secs(90),
            "return document.querySelector('#graph .node[data-service=\"cart\"]')?.dataset.phase === 'Progressing'
                && document.querySelectorAll('svg.spark circle').length > 3",
        )
        .await;
    screenshot(&browser, "train", 1300).await;

    // With --allow-actions: buttons, a forged POST still refused, Pause sets spec.paused.
    let acting = Dashboard::start(&["-n", &n, "--allow-actions"]).await;
    let token = {
        let (code, page) = acting
            .raw(&format!(
                "GET / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
                acting.port
            ))
            .await;
        assert_eq!(code, 200, "{page}");
        let at = page.find("signalman-token\" content=\"").unwrap() + 25;
        page[at..at + 64].to_owned()
    };
    // Another site's page cannot read the token, but even with it the Origin gives it away.
    let body = "{}";
    let (code, answer) = acting
        .raw(&format!(
            "POST /api/releases/{n}/train/pause HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nOrigin: http://evil.example\r\n\
             X-Signalman-Token: {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            acting.port,
            body.len()
        ))
        .await;
    assert_eq!(code, 403, "{answer}");
    // And without the token, from the right origin.
    let (code, answer) = acting
        .raw(&format!(
            "POST /api/releases/{n}/train/pause HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len(),
            port = acting.port
        ))
        .await;
    assert_eq!(code, 403, "{answer}");
    assert_eq!(api.get("train").await.unwrap().spec.paused, None);

    browser
        .goto(&format!("{}#/r/{n}/train", acting.url()))
        .await;
    browser
        .wait_js(
            "the Pause button, enabled",
            Duration::from_secs(20),
            "const b = document.getElementById('action-pause'); return b !== null && !b.disabled",
        )
        .await;
    assert_eq!(
        browser
            .js("return document.getElementById('action-abort') !== null")
            .await,
        true
    );
    browser
        .js("document.getElementById('action-pause').click(); return true")
        .await;
    rel::wait_release(
        &api,
        "train",
        "spec.paused set by the page",
        Duration::from_secs(20),
        |r| r["spec"]["paused"] == true,
    )
    .await;
    let said = browser
        .wait_js(
            "the page to say what pausing does",
            Duration::from_secs(20),
            "const r = document.getElementById('action-result'); return r && r.dataset.ok === 'true' ? r.textContent : null",
        )
        .await;
    // What `kubectl signalman pause` prints, word for word.
    assert!(
        said.as_str().unwrap().starts_with("Release train pauses"),
        "{said}"
    );
    rel::wait_phase(&api, "train", "Paused", Duration::from_secs(20)).await;
    browser
        .wait_js(
            "the page to show the pause",
            Duration::from_secs(20),
            "return document.querySelector('.banner.hold')?.textContent.includes('PAUSED') || null",
        )
        .await;
    // Abort asks for the name to be typed before anything is sent.
    browser
        .js("document.getElementById('action-abort').click(); return true")
        .await;
    let dialog = browser
        .wait_js(
            "the abort dialog",
            Duration::from_secs(10),
            "const d = document.getElementById('confirm'); return d.open ? document.getElementById('confirm-says').textContent : null",
        )
        .await;
    // What `kubectl signalman abort` says it will do: web is promoted, so it is restored.
    let dialog = dialog.as_str().unwrap();
    assert!(
        dialog.starts_with("Release train rolls back: ")
            && dialog.contains("restored to their baseline in this order: ")
            && dialog.ends_with("This cannot be undone."),
        "{dialog}"
    );
    assert_eq!(
        browser
            .js("return document.getElementById('confirm-ok').disabled")
            .await,
        true,
        "confirm is enabled before the name is typed"
    );
    browser
        .js("document.getElementById('confirm-cancel').click(); return true")
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(api.get("train").await.unwrap().spec.abort, None);

    // The breach, read-only: the breached node red, the restored order shown.
    browser
        .goto(&format!("{}#/r/{n}/breach", read_only.url()))
        .await;
    browser
        .wait_js(
            "the breach train rolled back on screen",
            Duration::from_secs(180),
            "return document.querySelector('.train-head .badge')?.dataset.phase === 'RolledBack'
                && document.getElementById('restored-order') !== null",
        )
        .await;
    let nodes = browser.js(NODES).await;
    let shop = node(&nodes, "shop");
    assert_eq!(shop["breached"], true, "{nodes}");
    assert_eq!(
        shop["fill"], "rgb(251, 220, 220)",
        "the breached node is red: {shop}"
    );
    assert_eq!(node(&nodes, "pay")["restored"], 1, "{nodes}");
    assert_eq!(node(&nodes, "pay")["phase"], "Restored", "{nodes}");
    let order = browser
        .js("return Array.from(document.querySelectorAll('#restored-order li')).map(li => li.textContent)")
        .await;
    assert_eq!(order, serde_json::json!(["pay"]));
    assert_eq!(
        browser
            .js("return document.querySelectorAll('#timeline tr.first-deviation').length")
            .await,
        1
    );
    assert_eq!(
        browser
            .js("return document.querySelectorAll('svg.spark circle[data-outcome=\"Fail\"]').length > 0")
            .await,
        true
    );
    browser
        .wait_js(
            "the report",
            Duration::from_secs(30),
            "return document.querySelector('#report h3') !== null",
        )
        .await;
    screenshot(&browser, "rolledback", 2000).await;

    // The list with both: one paused, one rolled back; filtered by phase.
    browser.goto(&read_only.url()).await;
    browser
        .wait_js(
            "the list with both phases",
            Duration::from_secs(20),
            &format!(
                "return document.querySelector('tr[data-release=\"{n}/breach\"]')?.dataset.phase === 'RolledBack'
                    && document.querySelector('tr[data-release=\"{n}/train\"]')?.dataset.phase === 'Paused'"
            ),
        )
        .await;
    screenshot(&browser, "list", 600).await;
    browser
        .js("const s = document.getElementById('filter-phase'); s.value = 'RolledBack'; s.dispatchEvent(new Event('change')); return true")
        .await;
    assert_eq!(
        browser
            .js("return Array.from(document.querySelectorAll('#releases tr[data-release]')).map(r => r.dataset.release)")
            .await,
        serde_json::json!([format!("{n}/breach")])
    );

    browser.close().await;
    drop(acting);
    drop(read_only);
    sc.end().await;
}

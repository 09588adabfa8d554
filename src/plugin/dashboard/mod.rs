//! `kubectl signalman dashboard`: a live web view of every release on the
//! user's own machine, with the user's own credentials.
//!
//! One watch ([`hub`]) feeds every open page through server-sent events; the
//! pages get JSON built by the terminal's own view code ([`views`]). Nothing
//! is written to the cluster unless the dashboard was started with
//! `--allow-actions` and a button on its own page was pressed ([`guard`]);
//! the buttons then call what `pause`, `resume`, `abort` and `approve` call
//! ([`actions`]).

pub mod actions;
pub mod guard;
pub mod hub;
pub mod views;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::Stream;
use jiff::Timestamp;
use tokio::sync::broadcast::error::RecvError;

use super::cluster::{self, Connection, Target};
use super::commands::Failure;
use guard::Guard;
use hub::{Change, Hub};

/// The page, its script and its style, served from the binary itself.
const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// How long a page's stream gathers changes before it sends one view: a train
/// writes its status several times a second at most, and a page redrawn at
/// that rate shows nothing more.
const COALESCE: Duration = Duration::from_millis(250);
/// A train in flight is sent again this often even when nothing changed, so
/// the bake time left keeps counting down on the page.
const TICK: Duration = Duration::from_secs(5);

/// The flags of `dashboard`.
#[derive(Clone, Debug)]
pub struct Args {
    pub address: String,
    pub port: u16,
    pub open: bool,
    pub allow_actions: bool,
}

/// What every handler shares.
#[derive(Clone)]
pub struct App {
    pub hub: Hub,
    pub guard: Arc<Guard>,
    /// For the buttons; `None` serves a store filled in-process (benchmarks).
    pub conn: Option<Connection>,
    /// The namespace shown, or `None` for every namespace.
    pub namespace: Option<String>,
}

/// `dashboard [-n NS | -A] [--address A] [--port P] [--open] [--allow-actions]`.
pub async fn dashboard(
    target: &Target,
    all_namespaces: bool,
    args: &Args,
) -> Result<ExitCode, Failure> {
    let conn = cluster::connect(target).await?;
    // A missing CRD or an unreachable cluster is said once, here, not as an empty page.
    conn.check().await?;
    let namespace = (!all_namespaces).then(|| conn.namespace.clone());
    let hub = Hub::start(conn.client.clone(), namespace.as_deref());
    let token = guard::new_token().map_err(Failure)?;
    let app = App {
        hub,
        guard: Arc::new(Guard::new(
            &args.address,
            args.port,
            token,
            args.allow_actions,
        )),
        conn: Some(conn),
        namespace: namespace.clone(),
    };
    let listener = bind(&args.address, args.port).await?;
    let url = page_url(&args.address, args.port);
    let shows = namespace
        .map(|n| format!("namespace {n}"))
        .unwrap_or_else(|| "every namespace".into());
    let mode = if args.allow_actions {
        "actions allowed: pause, resume, abort and approve buttons write to the cluster as you"
    } else {
        "read-only (start with --allow-actions for pause, resume, abort and approve buttons)"
    };
    println!("Signalman dashboard on {url} ({shows}); {mode}. Ctrl-C stops it.");
    if args.open {
        open_browser(&url);
    }
    serve(listener, app).await
}

async fn bind(address: &str, port: u16) -> Result<tokio::net::TcpListener, Failure> {
    let addr: SocketAddr = format!("{}:{port}", bracketed(address))
        .parse()
        .map_err(|_| {
            Failure(format!(
                "--address {address}: not an IP address; use 127.0.0.1 (the default) or another address of this machine"
            ))
        })?;
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        Failure(format!(
            "cannot listen on {addr}: {e}; pick another port with --port"
        ))
    })
}

fn bracketed(address: &str) -> String {
    if address.contains(':') && !address.starts_with('[') {
        format!("[{address}]")
    } else {
        address.to_owned()
    }
}

/// The address to open: a wildcard bind is reached at 127.0.0.1.
fn page_url(address: &str, port: u16) -> String {
    let host = match address {
        "0.0.0.0" | "::" | "[::]" => "127.0.0.1".to_owned(),
        a => bracketed(a),
    };
    format!("http://{host}:{port}/")
}

/// `--open`: the desktop's opener; failing to open is said, not fatal.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    match std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        // Not waited for: some openers stay until the browser closes.
        Ok(_) => {}
        Err(e) => {
            eprintln!("warning: could not open a browser with {opener} ({e}); open {url} yourself")
        }
    }
}

/// Serve `app` on `listener` until Ctrl-C or SIGTERM.
pub async fn serve(listener: tokio::net::TcpListener, app: App) -> Result<ExitCode, Failure> {
    let router = router(app);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Failure(format!("listening for SIGTERM: {e}")))?;
    // Not a graceful shutdown: open event streams never end by themselves,
    // and a read-only server has nothing to finish.
    tokio::select! {
        r = axum::serve(listener, router) => r.map_err(|e| Failure(format!("serving the dashboard: {e}")))?,
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(ExitCode::SUCCESS)
}

pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(index))
        .route(
            "/app.js",
            get(|| async { asset("text/javascript", APP_JS) }),
        )
        .route("/style.css", get(|| async { asset("text/css", STYLE_CSS) }))
        .route("/api/releases", get(list))
        .route("/api/releases/{namespace}/{name}", get(train))
        .route("/api/events", get(list_events))
        .route("/api/events/{namespace}/{name}", get(train_events))
        .route(
            "/api/releases/{namespace}/{name}/{action}",
            post(actions::act),
        )
        .layer(middleware::from_fn_with_state(app.clone(), check_host))
        .with_state(app)
}

async fn check_host(State(app): State<App>, request: Request, next: Next) -> Response {
    match app.guard.check_host(request.headers()) {
        Ok(()) => {
            let mut response = next.run(request).await;
            let h = response.headers_mut();
            // Never framed by another site, never sniffed into another type.
            h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(refused) => (refused.status, refused.message).into_response(),
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn index(State(app): State<App>) -> Response {
    let page = INDEX_HTML
        .replace("{{TOKEN}}", app.guard.token())
        .replace(
            "{{ACTIONS}}",
            if app.guard.allow_actions() {
                "true"
            } else {
                "false"
            },
        )
        .replace(
            "{{SCOPE}}",
            &html_attr(app.namespace.as_deref().unwrap_or("")),
        );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Only its own script and style; nothing fetched from elsewhere.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            ),
        ],
        page,
    )
        .into_response()
}

/// A namespace name is DNS-1123, but the page must not trust that.
fn html_attr(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        .collect()
}

fn list_json(app: &App) -> String {
    let releases = app.hub.store.state();
    let mut view = serde_json::to_value(views::list_view(
        releases.iter().map(|r| r.as_ref()),
        Timestamp::now(),
    ))
    .expect("a view serializes");
    view["trouble"] = serde_json::json!(app.hub.trouble());
    view.to_string()
}

fn train_json(app: &App, namespace: &str, name: &str) -> Option<String> {
    let r = app.hub.get(namespace, name)?;
    let mut view =
        serde_json::to_value(views::train_view(&r, Timestamp::now())).expect("a view serializes");
    view["trouble"] = serde_json::json!(app.hub.trouble());
    Some(view.to_string())
}

fn json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn not_found(namespace: &str, name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("no Release {name:?} in namespace {namespace:?} that this dashboard watches"),
    )
        .into_response()
}

async fn list(State(app): State<App>) -> Response {
    let _ = app.hub.store.wait_until_ready().await;
    json(list_json(&app))
}

async fn train(
    State(app): State<App>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let _ = app.hub.store.wait_until_ready().await;
    match train_json(&app, &namespace, &name) {
        Some(body) => json(body),
        None => not_found(&namespace, &name),
    }
}

/// The list, now and after every change (gathered for [`COALESCE`]).
async fn list_events(State(app): State<App>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    events(app, None)
}

/// One train, now and after each of its changes; every [`TICK`] while it is in flight.
async fn train_events(
    State(app): State<App>,
    Path((namespace, name)): Path<(String, String)>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    events(app, Some((namespace, name)))
}

struct Feed {
    app: App,
    train: Option<(String, String)>,
    changes: tokio::sync::broadcast::Receiver<Change>,
    first: bool,
}

fn events(
    app: App,
    train: Option<(String, String)>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let changes = app.hub.subscribe();
    let feed = Feed {
        app,
        train,
        changes,
        first: true,
    };
    let stream = futures::stream::unfold(feed, |mut feed| async move {
        if feed.first {
            feed.first = false;
            let _ = feed.app.hub.store.wait_until_ready().await;
        } else if !feed.wait_for_change().await {
            return None;
        }
        let event = feed.view();
        Some((Ok(event), feed))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

impl Feed {
    /// Until something this page shows changed (then a little longer, to
    /// gather the writes that come together); false when the watch is gone.
    async fn wait_for_change(&mut self) -> bool {
        let in_flight = self.train.as_ref().is_some_and(|(ns, name)| {
            self.app
                .hub
                .get(ns, name)
                .and_then(|r| r.status.as_ref()?.phase)
                .is_some_and(|p| p.is_in_flight())
        });
        let tick = tokio::time::sleep(if in_flight { TICK } else { Duration::MAX / 4 });
        tokio::pin!(tick);
        loop {
            tokio::select! {
                change = self.changes.recv() => match change {
                    Ok(c) if self.concerns(&c) => break,
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return false,
                },
                _ = &mut tick => return true,
            }
        }
        tokio::time::sleep(COALESCE).await;
        // What came meanwhile is in the store already: one view says it all.
        while let Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) =
            self.changes.try_recv()
        {}
        true
    }

    fn concerns(&self, change: &Change) -> bool {
        match &self.train {
            None => true,
            Some((ns, name)) => change.concerns(ns, name),
        }
    }

    fn view(&self) -> Event {
        match &self.train {
            None => Event::default().event("list").data(list_json(&self.app)),
            Some((ns, name)) => match train_json(&self.app, ns, name) {
                Some(body) => Event::default().event("train").data(body),
                None => Event::default()
                    .event("gone")
                    .data(serde_json::json!({"namespace": ns, "name": name}).to_string()),
            },
        }
    }
}

//! The buttons: `POST /api/releases/{namespace}/{name}/{action}`. Each is
//! refused unless the dashboard runs with `--allow-actions` and the request
//! comes from its own page ([`super::guard`]); then it does exactly what the
//! command of the same name does, through the same function.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::super::approve;
use super::super::commands::{self, Steered};
use super::super::steer;
use super::App;

/// What the page sends with a button.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Body {
    /// Abort: the release's name, typed by the person pressing the button.
    #[serde(default)]
    pub confirm: Option<String>,
    /// Approve: an approval gate, or a step as `SERVICE/N`.
    #[serde(default)]
    pub gate: Option<String>,
    #[serde(default)]
    pub step: Option<String>,
    /// Approve: what was checked, or why (required, as with `approve -m`).
    #[serde(default)]
    pub message: Option<String>,
}

fn answer(status: StatusCode, ok: bool, lines: Vec<String>) -> Response {
    (status, Json(json!({"ok": ok, "lines": lines}))).into_response()
}

/// What a button asks for, once read and checked.
enum Ask {
    Steer(fn(&crate::api::Release) -> Result<steer::Steer, steer::Refusal>),
    Approve(Body),
}

/// Read the request: which action, and for abort, the typed name. No I/O.
fn ask(name: &str, action: &str, body: &[u8]) -> Result<Ask, (StatusCode, String)> {
    let body: Body = if body.is_empty() {
        Body::default()
    } else {
        serde_json::from_slice(body).map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("the request's body is not what a button sends: {e}"),
            )
        })?
    };
    match action {
        "pause" => Ok(Ask::Steer(steer::pause)),
        "resume" => Ok(Ask::Steer(steer::resume)),
        "abort" if body.confirm.as_deref() == Some(name) => Ok(Ask::Steer(steer::abort)),
        "abort" => Err((
            StatusCode::BAD_REQUEST,
            format!("abort not confirmed: type the release's name ({name}) to roll it back"),
        )),
        "approve" => Ok(Ask::Approve(body)),
        other => Err((
            StatusCode::NOT_FOUND,
            format!("no action {other:?}; the dashboard can pause, resume, abort and approve"),
        )),
    }
}

pub async fn act(
    State(app): State<App>,
    Path((namespace, name, action)): Path<(String, String, String)>,
    headers: HeaderMap,
    // Raw bytes: the guard decides before anything of the body is read.
    body: Bytes,
) -> Response {
    // First, before anything is read: a refused request learns nothing more.
    if let Err(refused) = app.guard.check_action(&headers) {
        return answer(refused.status, false, vec![refused.message]);
    }
    let ask = match ask(&name, &action, &body) {
        Ok(a) => a,
        Err((status, message)) => return answer(status, false, vec![message]),
    };
    // Only the releases this dashboard shows (its namespace, or all with -A).
    if app.namespace.as_deref().is_some_and(|n| n != namespace)
        || app.hub.get(&namespace, &name).is_none()
    {
        return answer(
            StatusCode::NOT_FOUND,
            false,
            vec![format!(
                "no Release {name:?} in namespace {namespace:?} that this dashboard watches"
            )],
        );
    }
    let Some(conn) = &app.conn else {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            false,
            vec!["this dashboard has no cluster connection".into()],
        );
    };
    let decide = match ask {
        Ask::Steer(decide) => decide,
        Ask::Approve(body) => {
            let args = approve::Args {
                gate: body.gate.as_deref(),
                step: body.step.as_deref(),
                window: false,
                message: body.message.as_deref(),
            };
            return match commands::approve_in(conn, &namespace, &name, &args).await {
                Ok(lines) => answer(StatusCode::OK, true, lines),
                Err(f) => answer(StatusCode::CONFLICT, false, vec![f.0]),
            };
        }
    };
    match commands::steer_in(conn, &namespace, &name, decide).await {
        Ok(Steered::Done(lines)) => answer(StatusCode::OK, true, lines),
        Ok(Steered::Already(message)) => answer(StatusCode::OK, true, vec![message]),
        Err(f) => answer(StatusCode::CONFLICT, false, vec![f.0]),
    }
}

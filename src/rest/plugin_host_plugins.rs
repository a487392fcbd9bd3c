//! Seed 003 (plugin host) plugins: list, lifecycle actions, delete, upload. Admins act;
//! other users list the plugins granted to them. Refused uploads are 400 with the reason.

use super::ts;
use crate::error::{AppError, ErrorCode};
use crate::http::extract::AuthCaller;
use crate::service::plugins::{self, Action, PluginView};
use crate::state::AppState;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

/// The upload door (bodies up to the upload size).
pub fn upload_router() -> Router<AppState> {
    Router::new()
        .route("/plugins/upload", post(upload))
        .layer(middleware::from_fn(
            super::plugin_host_jobs::bad_request_status,
        ))
}

/// The other plugin doors.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/plugins", get(list))
        .route("/plugins/{name}", delete(remove))
        .route("/plugins/{name}/{action}", post(act))
        .layer(middleware::from_fn(
            super::plugin_host_jobs::bad_request_status,
        ))
}

/// A plugin as seed 003 shows it: `{name, state, meta}`.
pub fn plugin_json(v: &PluginView) -> Value {
    let m = &v.manifest;
    json!({
        "name": v.row.name,
        "state": v.row.state,
        "meta": {
            "version": v.row.version,
            "description": v.row.description,
            "sha256": v.row.sha256,
            "tools": m.tools.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
            "hooks": m.hooks.iter().map(|h| h.function()).collect::<Vec<_>>(),
            "signed_by": v.row.signed_by,
            "failure": v.row.failure,
            "allowed_hosts": m.permissions.allowed_hosts,
            "granted_to_all": v.row.granted_to_all,
            "installed_at": ts(v.row.created_at),
            "updated_at": ts(v.row.updated_at),
        },
    })
}

async fn list(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
) -> Result<Json<Value>, AppError> {
    let all = plugins::list(&state, &caller).await?;
    Ok(Json(json!({
        "plugins": all.iter().map(plugin_json).collect::<Vec<_>>(),
    })))
}

async fn act(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path((name, action)): Path<(String, String)>,
) -> Result<Json<Value>, AppError> {
    let view = if action == "reload" {
        plugins::reload(&state, &caller, &name).await?
    } else {
        let action = Action::parse(&action).ok_or_else(|| {
            AppError::new(
                ErrorCode::NotFound,
                format!("no action `{action}` (enable, disable, start, stop, reload)"),
            )
        })?;
        plugins::act(&state, &caller, &name, action).await?
    };
    Ok(Json(plugin_json(&view)))
}

async fn remove(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(name): Path<String>,
) -> Result<Json<Value>, AppError> {
    plugins::delete(&state, &caller, &name).await?;
    Ok(Json(json!({ "ok": true, "name": name })))
}

async fn upload(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    multipart: Multipart,
) -> Result<(StatusCode, Json<Value>), AppError> {
    caller.require_admin()?;
    let mut form = super::foyer_documents::read_form(multipart).await?;
    let (_, bytes) = form.take_file()?;
    let name = form.fields.get("name").map(String::as_str);
    let version = form.fields.get("version").map(String::as_str);
    let view = plugins::install_upload(&state, &caller, &bytes, name, version).await?;
    Ok((StatusCode::CREATED, Json(plugin_json(&view))))
}

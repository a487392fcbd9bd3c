//! Seed 003 (plugin host) plugins: list, lifecycle actions, delete, upload. Admins act;
//! other users list the plugins granted to them. Refused uploads are 400 with the reason.

use super::openapi::{FileUpload, PLUGIN_HOST};
use super::{ts, DocRouter};
use crate::error::{AppError, ErrorCode};
use crate::http::extract::AuthCaller;
use crate::service::plugins::{self, Action, PluginView};
use crate::state::AppState;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::routes;

/// The upload door (bodies up to the upload size).
pub fn upload_router() -> DocRouter {
    DocRouter::new()
        .routes(routes!(upload))
        .layer(middleware::from_fn(
            super::plugin_host_jobs::bad_request_status,
        ))
}

/// The other plugin doors.
pub fn router() -> DocRouter {
    DocRouter::new()
        .routes(routes!(list))
        .routes(routes!(remove))
        .routes(routes!(act))
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

/// The plugins: all of them for admins, those granted to the caller otherwise.
#[utoipa::path(get, path = "/plugins", tag = PLUGIN_HOST,
    responses((status = 200, description = "`{plugins: [{name, state, meta}]}`", body = Object)))]
async fn list(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
) -> Result<Json<Value>, AppError> {
    let all = plugins::list(&state, &caller).await?;
    Ok(Json(json!({
        "plugins": all.iter().map(plugin_json).collect::<Vec<_>>(),
    })))
}

/// Acts on a plugin's lifecycle (admins): enable, disable, start, stop or reload it.
#[utoipa::path(post, path = "/plugins/{name}/{action}", tag = PLUGIN_HOST,
    params(
        ("name" = String, Path, description = "The plugin's name"),
        ("action" = String, Path, description = "`enable` (start now and at every boot), `disable` (stop, and never \
            start until enabled), `start` (run an enabled plugin, also retrying a failed one), `stop` (stop an enabled \
            plugin, across restarts) or `reload` (re-read it from disk and swap its instances; a plugin that is not \
            running is only checked); another word is a 404"),
    ),
    responses((status = 200, description = "The plugin after the action: `{name, state, meta: {version, description, sha256, tools, hooks, signed_by, failure, allowed_hosts, granted_to_all, installed_at, updated_at}}`", body = Object)))]
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

/// Uninstalls a plugin (admins).
#[utoipa::path(delete, path = "/plugins/{name}", tag = PLUGIN_HOST,
    params(("name" = String, Path, description = "The plugin's name")),
    responses((status = 200, description = "`{ok: true, name}`", body = Object)))]
async fn remove(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(name): Path<String>,
) -> Result<Json<Value>, AppError> {
    plugins::delete(&state, &caller, &name).await?;
    Ok(Json(json!({ "ok": true, "name": name })))
}

/// Installs or upgrades a plugin from an uploaded ZIP bundle or WebAssembly module (admins).
#[utoipa::path(post, path = "/plugins/upload", tag = PLUGIN_HOST,
    request_body(content = FileUpload, content_type = "multipart/form-data",
        description = "field `file`: a ZIP bundle with `plugin.toml` (optionally signed with `plugin.sig`), \
            or a bare `.wasm` module, at most `plugins.max_upload_bytes`; other form fields: `name` and `version` \
            (required with a bare module)"),
    responses((status = 201, description = "The installed plugin: `{name, state, meta: {version, description, sha256, tools, hooks, signed_by, failure, allowed_hosts, granted_to_all, installed_at, updated_at}}`", body = Object)))]
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

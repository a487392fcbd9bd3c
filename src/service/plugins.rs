//! Plugins: install (and upgrade), lifecycle, calls, grants, tools. Every door (GraphQL,
//! seed 003's `/plugins`, seed 000's `/tools`, the CLI) calls these.
//!
//! Access: admins install, change and delete plugins and call any of them; other users call
//! (and see the tools of) running plugins granted to them or to everyone. A refused upload
//! stores nothing; an upgrade that fails to compile leaves the old version running.

use crate::auth::caller::Caller;
use crate::db::enums::PluginState;
use crate::db::models::{NewPlugin, PluginRow};
use crate::db::schema::{plugin_grants, plugins, settings};
use crate::db_run;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::events::Event;
use crate::plugins::bundle::{self, Bundle, BundleLimits};
use crate::plugins::host::CallCtx;
use crate::plugins::manifest::{Manifest, Tool};
use crate::plugins::pool::{self, CallFailure, CallLimits};
use crate::state::AppState;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::Value;

/// Settings key set once the bundled plugins were installed on this database.
const SETTING_BUNDLED: &str = "plugins.bundled_installed";

/// A lifecycle action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start now and at every boot.
    Enable,
    /// Stop and never start until enabled.
    Disable,
    /// Run an enabled plugin (also retries a failed one).
    Start,
    /// Stop an enabled plugin (it stays stopped across restarts).
    Stop,
}

impl Action {
    /// From a door's word (`enable`, `disable`, `start`, `stop`).
    pub fn parse(word: &str) -> Option<Action> {
        match word {
            "enable" => Some(Action::Enable),
            "disable" => Some(Action::Disable),
            "start" => Some(Action::Start),
            "stop" => Some(Action::Stop),
            _ => None,
        }
    }
}

/// An installed plugin, as the doors show it.
#[derive(Debug, Clone)]
pub struct PluginView {
    /// The row.
    pub row: PluginRow,
    /// The parsed manifest.
    pub manifest: Manifest,
}

impl PluginView {
    fn of(row: PluginRow) -> AppResult<PluginView> {
        let manifest = serde_json::from_str(&row.manifest).map_err(AppError::internal)?;
        Ok(PluginView { row, manifest })
    }
}

/// A tool of a running plugin.
#[derive(Debug, Clone)]
pub struct ToolView {
    /// The plugin that serves it.
    pub plugin: String,
    /// Its manifest entry.
    pub tool: Tool,
}

fn limits(state: &AppState) -> BundleLimits {
    let c = &state.config.plugins;
    BundleLimits {
        max_files: c.max_files,
        max_unpacked_bytes: c.max_unpacked_bytes,
        max_ratio: c.max_ratio,
    }
}

fn bad_bundle(message: impl Into<String>) -> AppError {
    AppError::new(ErrorCode::BadRequest, message)
}

fn now() -> chrono::NaiveDateTime {
    chrono::Utc::now().naive_utc()
}

/// Installs or upgrades a plugin from an uploaded file (admins).
pub async fn install_upload(
    state: &AppState,
    caller: &Caller,
    bytes: &[u8],
    name: Option<&str>,
    version: Option<&str>,
) -> AppResult<PluginView> {
    caller.require_admin()?;
    let max = state.config.plugins.max_upload_bytes;
    if bytes.len() as u64 > max {
        return Err(AppError::new(
            ErrorCode::PayloadTooLarge,
            format!("plugin uploads are at most {max} bytes"),
        ));
    }
    let trusted = state.config.plugins.trusted_keys.clone();
    let b =
        bundle::read_upload(bytes, name, version, limits(state), &trusted).map_err(bad_bundle)?;
    install(state, Some(caller.user_id()), b).await
}

/// Installs a bundle laid out in a folder (the CLI, the bundled examples).
pub async fn install_dir(
    state: &AppState,
    installed_by: Option<i64>,
    dir: &std::path::Path,
) -> AppResult<PluginView> {
    let trusted = state.config.plugins.trusted_keys.clone();
    let b = bundle::read_dir(dir, limits(state), &trusted).map_err(bad_bundle)?;
    install(state, installed_by, b).await
}

/// Installs from a path as the operator (`hearth plugin install`): a bundle folder, a ZIP,
/// or a bare module with a name and a version.
pub async fn install_path(
    state: &AppState,
    path: &std::path::Path,
    name: Option<&str>,
    version: Option<&str>,
) -> AppResult<PluginView> {
    if path.is_dir() {
        return install_dir(state, None, path).await;
    }
    let bytes = std::fs::read(path).map_err(|e| {
        AppError::new(
            ErrorCode::BadRequest,
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let trusted = state.config.plugins.trusted_keys.clone();
    let b =
        bundle::read_upload(&bytes, name, version, limits(state), &trusted).map_err(bad_bundle)?;
    install(state, None, b).await
}

/// Every installed plugin (the operator's view).
pub async fn list_all(state: &AppState) -> AppResult<Vec<PluginView>> {
    let db = &state.db;
    let rows: Vec<PluginRow> = db_run!(db, read, |conn| plugins::table
        .order(plugins::name.asc())
        .select(PluginRow::as_select())
        .load(conn)
        .await
        .map_err(AppError::from))?;
    rows.into_iter().map(PluginView::of).collect()
}

/// Validates (signature, compilation, exports), stores the files, then records the plugin.
async fn install(state: &AppState, installed_by: Option<i64>, b: Bundle) -> AppResult<PluginView> {
    let cfg = &state.config.plugins;
    if cfg.require_signature && b.signed_by.is_none() {
        return Err(bad_bundle(if b.had_signature {
            "the bundle's signature is not by a trusted key (plugins.require_signature is on)"
        } else {
            "the bundle is not signed and plugins.require_signature is on"
        }));
    }
    let (manifest, wasm) = (b.manifest.clone(), b.wasm.clone());
    let plugin_cfg = cfg.clone();
    tokio::task::spawn_blocking(move || {
        let compiled = pool::compile(&manifest, &wasm, CallLimits::of(&manifest, &plugin_cfg))?;
        pool::check_exports(&compiled, &manifest)
    })
    .await
    .map_err(AppError::internal)?
    .map_err(bad_bundle)?;

    let name = b.manifest.name.clone();
    let existing = find(state, &name).await?;
    if let Some(old) = &existing {
        let old_version = semver::Version::parse(&old.version).map_err(AppError::internal)?;
        if b.manifest.semver() <= old_version {
            return Err(AppError::new(
                ErrorCode::Conflict,
                format!(
                    "{name} {} is installed; upload a higher version to upgrade it",
                    old.version
                ),
            ));
        }
        if old.state != PluginState::Disabled {
            check_tool_names(state, &name, &b.manifest).await?;
        }
    }
    state
        .plugins
        .store_files(&b)
        .map_err(|e| AppError::internal(format!("storing the plugin's files: {e}")))?;
    let manifest_json = serde_json::to_string(&b.manifest).map_err(AppError::internal)?;
    let ts = now();
    let db = &state.db;
    let row: PluginRow = match existing {
        Some(old) => {
            let id = old.id;
            db_run!(db, write, |conn| diesel::update(plugins::table.find(id))
                .set((
                    plugins::version.eq(&b.manifest.version),
                    plugins::description.eq(&b.manifest.description),
                    plugins::installed_by.eq(installed_by),
                    plugins::manifest.eq(&manifest_json),
                    plugins::sha256.eq(&b.sha256),
                    plugins::module.eq(&b.wasm),
                    plugins::signed_by.eq(&b.signed_by),
                    plugins::failure.eq(None::<String>),
                    plugins::updated_at.eq(ts),
                ))
                .returning(PluginRow::as_returning())
                .get_result(conn)
                .await
                .map_err(AppError::from))?
        }
        None => {
            let new = NewPlugin {
                name: name.clone(),
                version: b.manifest.version.clone(),
                description: b.manifest.description.clone(),
                installed_by,
                state: PluginState::Disabled,
                failure: None,
                manifest: manifest_json,
                sha256: b.sha256.clone(),
                module: b.wasm.clone(),
                signed_by: b.signed_by.clone(),
                granted_to_all: false,
                created_at: ts,
                updated_at: ts,
            };
            db_run!(db, write, |conn| diesel::insert_into(plugins::table)
                .values(&new)
                .returning(PluginRow::as_returning())
                .get_result(conn)
                .await
                .map_err(AppError::from))?
        }
    };
    // A failed upgrade of a failed plugin was cleared above; run it again if it should run.
    let row = if row.state == PluginState::Failed {
        set_state_row(state, &row, PluginState::Running).await?
    } else {
        row
    };
    changed(state, &row, false).await?;
    fetch_view(state, &name).await
}

/// Installs every bundle folder under `[plugins] bundled_dir`, disabled, the first time a
/// server starts on a database (deleting one later does not bring it back).
pub async fn install_bundled(state: &AppState) -> AppResult<usize> {
    let db = &state.db;
    let done: Option<String> = db_run!(db, read, |conn| settings::table
        .filter(settings::key.eq(SETTING_BUNDLED))
        .select(settings::value)
        .first(conn)
        .await
        .optional()
        .map_err(AppError::from))?;
    if done.is_some() {
        return Ok(0);
    }
    let dir = state.config.plugins.bundled_dir.clone();
    let mut installed = 0;
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut dirs: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for path in dirs {
            match install_dir(state, None, &path).await {
                Ok(v) => {
                    installed += 1;
                    tracing::info!(plugin = %v.row.name, version = %v.row.version, "bundled plugin installed (disabled)");
                }
                Err(e) if e.code == ErrorCode::Conflict => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e.message, "bundled plugin not installed")
                }
            }
        }
    } else {
        tracing::info!(dir = %dir.display(), "no bundled plugins (run the set-up to build them)");
    }
    let ts = now();
    db_run!(db, write, |conn| diesel::insert_into(settings::table)
        .values((
            settings::key.eq(SETTING_BUNDLED),
            settings::value.eq(installed.to_string()),
            settings::updated_at.eq(ts),
        ))
        .on_conflict(settings::key)
        .do_nothing()
        .execute(conn)
        .await
        .map_err(AppError::from))?;
    Ok(installed)
}

async fn find(state: &AppState, name: &str) -> AppResult<Option<PluginRow>> {
    let db = &state.db;
    db_run!(db, read, |conn| plugins::table
        .filter(plugins::name.eq(name))
        .select(PluginRow::as_select())
        .first(conn)
        .await
        .optional()
        .map_err(AppError::from))
}

async fn fetch_view(state: &AppState, name: &str) -> AppResult<PluginView> {
    let row = find(state, name)
        .await?
        .ok_or_else(|| AppError::not_found("plugin"))?;
    PluginView::of(row)
}

/// Whether the caller may call (and see) a plugin.
async fn may_call(state: &AppState, caller: &Caller, row: &PluginRow) -> AppResult<bool> {
    if caller.is_admin() || row.granted_to_all {
        return Ok(true);
    }
    let db = &state.db;
    let (pid, uid) = (row.id, caller.user_id());
    let n: i64 = db_run!(db, read, |conn| plugin_grants::table
        .filter(
            plugin_grants::plugin_id
                .eq(pid)
                .and(plugin_grants::user_id.eq(uid))
        )
        .count()
        .get_result(conn)
        .await
        .map_err(AppError::from))?;
    Ok(n > 0)
}

/// One plugin the caller may see; someone else's view of an ungranted plugin is a 404.
pub async fn get(state: &AppState, caller: &Caller, name: &str) -> AppResult<PluginView> {
    let row = find(state, name)
        .await?
        .ok_or_else(|| AppError::not_found("plugin"))?;
    if !may_call(state, caller, &row).await? {
        return Err(AppError::not_found("plugin"));
    }
    PluginView::of(row)
}

/// Plugins the caller may see (admins: all), by name.
pub async fn list(state: &AppState, caller: &Caller) -> AppResult<Vec<PluginView>> {
    let db = &state.db;
    if caller.is_admin() {
        return list_all(state).await;
    }
    let rows: Vec<PluginRow> = {
        let uid = caller.user_id();
        db_run!(db, read, |conn| plugins::table
            .filter(
                plugins::granted_to_all.eq(true).or(plugins::id.eq_any(
                    plugin_grants::table
                        .filter(plugin_grants::user_id.eq(uid))
                        .select(plugin_grants::plugin_id)
                ))
            )
            .order(plugins::name.asc())
            .select(PluginRow::as_select())
            .load(conn)
            .await
            .map_err(AppError::from))?
    };
    rows.into_iter().map(PluginView::of).collect()
}

/// Refuses enabling (or upgrading an enabled) plugin whose tool names another enabled
/// plugin already serves.
async fn check_tool_names(state: &AppState, name: &str, manifest: &Manifest) -> AppResult<()> {
    if manifest.tools.is_empty() {
        return Ok(());
    }
    let db = &state.db;
    let others: Vec<(String, String)> = db_run!(db, read, |conn| plugins::table
        .filter(
            plugins::name
                .ne(name)
                .and(plugins::state.ne(PluginState::Disabled))
        )
        .select((plugins::name, plugins::manifest))
        .load(conn)
        .await
        .map_err(AppError::from))?;
    for (other, text) in others {
        let Ok(m) = serde_json::from_str::<Manifest>(&text) else {
            continue;
        };
        for tool in &manifest.tools {
            if m.tools.iter().any(|t| t.name == tool.name) {
                return Err(AppError::new(
                    ErrorCode::Conflict,
                    format!(
                        "the tool \"{}\" is already served by the enabled plugin {other}",
                        tool.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

async fn set_state_row(state: &AppState, row: &PluginRow, to: PluginState) -> AppResult<PluginRow> {
    let db = &state.db;
    let (id, ts) = (row.id, now());
    db_run!(db, write, |conn| diesel::update(plugins::table.find(id))
        .set((
            plugins::state.eq(to),
            plugins::failure.eq(None::<String>),
            plugins::updated_at.eq(ts),
        ))
        .returning(PluginRow::as_returning())
        .get_result(conn)
        .await
        .map_err(AppError::from))
}

/// Converges this process and tells the others (and `pluginEvents` subscribers).
async fn changed(state: &AppState, row: &PluginRow, reload: bool) -> AppResult<()> {
    state
        .plugins
        .converge(state, reload.then_some(row.name.as_str()))
        .await?;
    // Convergence may have marked it failed (and said so); publish what the row says now.
    let now_row = find(state, &row.name).await?;
    let (st, failure) = match &now_row {
        Some(r) => (r.state.as_str().to_string(), r.failure.clone()),
        None => ("deleted".to_string(), None),
    };
    state.events.publish(Event::PluginChanged {
        name: row.name.clone(),
        state: st,
        failure,
        reload,
    });
    Ok(())
}

/// Enable, disable, start or stop (admins). The plugin as it stands afterwards (a start
/// that fails leaves it `failed`, with the reason).
pub async fn act(
    state: &AppState,
    caller: &Caller,
    name: &str,
    action: Action,
) -> AppResult<PluginView> {
    caller.require_admin()?;
    let row = find(state, name)
        .await?
        .ok_or_else(|| AppError::not_found("plugin"))?;
    let to = match (action, row.state) {
        (Action::Enable, PluginState::Disabled) => {
            let manifest: Manifest =
                serde_json::from_str(&row.manifest).map_err(AppError::internal)?;
            check_tool_names(state, name, &manifest).await?;
            PluginState::Running
        }
        (Action::Enable, current) => current,
        (Action::Disable, _) => PluginState::Disabled,
        (Action::Start | Action::Stop, PluginState::Disabled) => {
            return Err(AppError::new(
                ErrorCode::Conflict,
                format!("{name} is disabled; enable it first"),
            ))
        }
        (Action::Start, _) => PluginState::Running,
        (Action::Stop, _) => PluginState::Stopped,
    };
    let row = if to != row.state || row.state == PluginState::Failed {
        set_state_row(state, &row, to).await?
    } else {
        row
    };
    changed(state, &row, false).await?;
    fetch_view(state, name).await
}

/// Re-reads an installed plugin from disk and swaps its instances (admins). Calls in flight
/// finish on the old instances. A plugin that is not running is only checked.
pub async fn reload(state: &AppState, caller: &Caller, name: &str) -> AppResult<PluginView> {
    caller.require_admin()?;
    let row = find(state, name)
        .await?
        .ok_or_else(|| AppError::not_found("plugin"))?;
    if row.state != PluginState::Running {
        state
            .plugins
            .load_module(state, &row)
            .await
            .map_err(|e| AppError::new(ErrorCode::Conflict, e))?;
        return PluginView::of(row);
    }
    changed(state, &row, true).await?;
    fetch_view(state, name).await
}

/// Removes a plugin: its instances, files, key-value data, grants and tools (admins).
pub async fn delete(state: &AppState, caller: &Caller, name: &str) -> AppResult<()> {
    caller.require_admin()?;
    let row = find(state, name)
        .await?
        .ok_or_else(|| AppError::not_found("plugin"))?;
    let db = &state.db;
    let id = row.id;
    db_run!(db, write, |conn| diesel::delete(plugins::table.find(id))
        .execute(conn)
        .await
        .map_err(AppError::from))?;
    state.plugins.unload(name);
    let dir = state.plugins.plugin_dir(name);
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(plugin = name, error = %e, "plugin files not removed");
        }
    }
    changed(state, &row, false).await
}

/// Grants a plugin to one user, or to everyone (`user_id` `None`); `granted` false revokes.
pub async fn grant(
    state: &AppState,
    caller: &Caller,
    name: &str,
    user_id: Option<i64>,
    granted: bool,
) -> AppResult<PluginView> {
    caller.require_admin()?;
    let row = find(state, name)
        .await?
        .ok_or_else(|| AppError::not_found("plugin"))?;
    let db = &state.db;
    let (pid, ts) = (row.id, now());
    match user_id {
        None => {
            db_run!(db, write, |conn| diesel::update(plugins::table.find(pid))
                .set((
                    plugins::granted_to_all.eq(granted),
                    plugins::updated_at.eq(ts)
                ))
                .execute(conn)
                .await
                .map_err(AppError::from))?;
        }
        Some(uid) => {
            let known: i64 = db_run!(db, read, |conn| crate::db::schema::users::table
                .filter(crate::db::schema::users::id.eq(uid))
                .count()
                .get_result(conn)
                .await
                .map_err(AppError::from))?;
            if known == 0 {
                return Err(AppError::not_found("user"));
            }
            if granted {
                db_run!(db, write, |conn| diesel::insert_into(plugin_grants::table)
                    .values((
                        plugin_grants::plugin_id.eq(pid),
                        plugin_grants::user_id.eq(uid),
                        plugin_grants::created_at.eq(ts),
                    ))
                    .on_conflict((plugin_grants::plugin_id, plugin_grants::user_id))
                    .do_nothing()
                    .execute(conn)
                    .await
                    .map_err(AppError::from))?;
            } else {
                db_run!(db, write, |conn| diesel::delete(
                    plugin_grants::table.filter(
                        plugin_grants::plugin_id
                            .eq(pid)
                            .and(plugin_grants::user_id.eq(uid))
                    )
                )
                .execute(conn)
                .await
                .map_err(AppError::from))?;
            }
        }
    }
    fetch_view(state, name).await
}

/// Calls a running plugin's export with JSON input, as the caller.
pub async fn call(
    state: &AppState,
    caller: &Caller,
    name: &str,
    function: &str,
    input: &Value,
) -> AppResult<Value> {
    let row = find(state, name)
        .await?
        .ok_or_else(|| AppError::not_found("plugin"))?;
    if !may_call(state, caller, &row).await? {
        return Err(AppError::not_found("plugin"));
    }
    call_row(state, caller, &row, function, input).await
}

/// Calls a plugin the caller was already found to be allowed to call.
async fn call_row(
    state: &AppState,
    caller: &Caller,
    row: &PluginRow,
    function: &str,
    input: &Value,
) -> AppResult<Value> {
    let name = row.name.as_str();
    let not_running = || {
        AppError::new(
            ErrorCode::PluginNotRunning,
            format!("{name} is {}; it must be running to be called", row.state),
        )
    };
    // The database decides; this process catches up when it has not yet (a change made a
    // moment ago, or by another process).
    if row.state != PluginState::Running {
        return Err(not_running());
    }
    let pool = match state.plugins.pool(name) {
        Some(p) if p.sha256 == row.sha256 => p,
        _ => {
            state.plugins.converge(state, None).await?;
            state.plugins.pool(name).ok_or_else(not_running)?
        }
    };
    call_pool(state, caller, &pool, function, input).await
}

/// Calls an export on a running plugin's pool as the caller (calls and hooks).
pub async fn call_pool(
    state: &AppState,
    caller: &Caller,
    pool: &std::sync::Arc<pool::Pool>,
    function: &str,
    input: &Value,
) -> AppResult<Value> {
    let name = pool.name.as_str();
    let bytes = serde_json::to_vec(input).map_err(AppError::internal)?;
    let max = state.config.plugins.max_input_bytes;
    if bytes.len() > max {
        return Err(AppError::new(
            ErrorCode::PayloadTooLarge,
            format!("a plugin call's input is at most {max} bytes"),
        ));
    }
    let ctx = CallCtx {
        state: state.clone(),
        caller: caller.clone(),
        plugin_id: pool.plugin_id,
        plugin: name.to_string(),
        allowed_hosts: pool.manifest.permissions.allowed_hosts.clone(),
        runtime: tokio::runtime::Handle::current(),
    };
    let result = pool.call(ctx, function, bytes).await;
    crate::ops::metrics::plugin_call(
        name,
        match &result {
            Ok(_) => "ok",
            Err(CallFailure::Returned(_) | CallFailure::NoSuchFunction(_)) => "error",
            Err(CallFailure::Timeout(_)) => "timeout",
            Err(CallFailure::Crashed { .. } | CallFailure::Instantiate(_)) => "crash",
            Err(CallFailure::Busy) => "busy",
        },
    );
    match result {
        Ok(out) if out.is_empty() => Ok(Value::Null),
        Ok(out) => Ok(serde_json::from_slice(&out)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&out).into_owned()))),
        Err(failure) => Err(call_error(state, pool, name, failure).await),
    }
}

/// The error a failed call answers; a crash budget spent marks the plugin failed.
async fn call_error(
    state: &AppState,
    pool: &std::sync::Arc<pool::Pool>,
    name: &str,
    failure: CallFailure,
) -> AppError {
    match failure {
        CallFailure::Returned(message) => AppError::new(
            ErrorCode::PluginError,
            format!("{name} returned an error: {message}"),
        ),
        CallFailure::Timeout(t) => AppError::new(
            ErrorCode::PluginTimeout,
            format!("{name} ran past its {} ms limit", t.as_millis()),
        ),
        CallFailure::Crashed { reason, failed } => {
            if failed {
                let why = format!("crashed repeatedly (last: {reason})");
                if let Err(e) =
                    crate::plugins::mark_failed(state, pool.plugin_id, &pool.sha256, &why).await
                {
                    tracing::warn!(plugin = name, error = %e.message, "could not mark the plugin failed");
                }
            }
            AppError::new(ErrorCode::PluginCrashed, format!("{name}: {reason}"))
        }
        CallFailure::NoSuchFunction(f) => {
            AppError::not_found("function").with_details(serde_json::json!({ "function": f }))
        }
        CallFailure::Busy => AppError::new(
            ErrorCode::Unavailable,
            format!("{name} has too many calls waiting; retry shortly"),
        )
        .with_details(serde_json::json!({ "retry_after": 1 })),
        CallFailure::Instantiate(e) => {
            AppError::internal(format!("{name} could not be instantiated: {e}"))
        }
    }
}

/// The tools of running plugins the caller may call, by name.
pub async fn tools(state: &AppState, caller: &Caller) -> AppResult<Vec<ToolView>> {
    let mut out = Vec::new();
    for view in list(state, caller).await? {
        if view.row.state != PluginState::Running {
            continue;
        }
        for tool in &view.manifest.tools {
            out.push(ToolView {
                plugin: view.row.name.clone(),
                tool: tool.clone(),
            });
        }
    }
    out.sort_by(|a, b| a.tool.name.cmp(&b.tool.name));
    Ok(out)
}

/// One tool by name.
pub async fn tool(state: &AppState, caller: &Caller, name: &str) -> AppResult<ToolView> {
    tools(state, caller)
        .await?
        .into_iter()
        .find(|t| t.tool.name == name)
        .ok_or_else(|| AppError::not_found("tool"))
}

/// Runs a tool with arguments checked against its schema first (agents' tool calls).
pub async fn call_tool(
    state: &AppState,
    caller: &Caller,
    t: &ToolView,
    arguments: &Value,
) -> AppResult<Value> {
    crate::plugins::schema::validate(&t.tool.parameters, arguments)
        .map_err(|e| AppError::validation("arguments", format!("{}: {e}", t.tool.name)))?;
    call(state, caller, &t.plugin, &t.tool.function, arguments).await
}

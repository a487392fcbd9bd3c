//! Plugins over GraphQL: install (multipart `Upload`), lifecycle, grants, calls, tools and
//! the `pluginEvents` subscription.

use super::{parse_id, require_caller, to_utc};
use crate::db::enums::PluginState;
use crate::error::{AppError, ErrorCode};
use crate::events::Event;
use crate::service::plugins::{self, Action, PluginView, ToolView};
use crate::service::streams;
use crate::state::AppState;
use async_graphql::{Context, Enum, Json, Object, Result, SimpleObject, Subscription, Upload, ID};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

/// Where an installed plugin stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "PluginState", name = "PluginState")]
pub enum PluginStateGql {
    /// Installed; never started, not even at boot.
    Disabled,
    /// Enabled, not running (an admin stopped it).
    Stopped,
    /// Serving calls.
    Running,
    /// It could not start or crashed repeatedly (`failure` says why).
    Failed,
}

/// A function agents may call.
#[derive(SimpleObject, Clone)]
#[graphql(name = "Tool")]
pub struct ToolObject {
    /// What the model calls.
    pub name: String,
    /// Tells the model when to use it.
    pub description: String,
    /// Groups tools in listings.
    pub category: String,
    /// The plugin that serves it.
    pub plugin: String,
    /// The export it runs.
    pub function: String,
    /// JSON schema of its arguments.
    pub parameters: Json<Value>,
}

impl ToolObject {
    fn of(plugin: &str, t: &crate::plugins::manifest::Tool) -> Self {
        Self {
            name: t.name.clone(),
            description: t.description.clone(),
            category: t.category.clone(),
            plugin: plugin.to_string(),
            function: t.function.clone(),
            parameters: Json(t.parameters.clone()),
        }
    }
}

impl From<ToolView> for ToolObject {
    fn from(t: ToolView) -> Self {
        ToolObject::of(&t.plugin, &t.tool)
    }
}

/// An installed plugin.
#[derive(SimpleObject, Clone)]
#[graphql(name = "Plugin")]
pub struct PluginObject {
    /// Its key in every door.
    pub name: String,
    /// Installed version (semver).
    pub version: String,
    /// From the manifest.
    pub description: String,
    /// Where it stands.
    pub state: PluginStateGql,
    /// Why it failed.
    pub failure: Option<String>,
    /// SHA-256 of the module.
    pub sha256: String,
    /// The trusted key that signed the bundle.
    pub signed_by: Option<String>,
    /// Every user may call it.
    pub granted_to_all: bool,
    /// Hooks it implements.
    pub hooks: Vec<String>,
    /// Hosts its HTTP may reach.
    pub allowed_hosts: Vec<String>,
    /// Its tools.
    pub tools: Vec<ToolObject>,
    /// Memory cap of a call, in MiB (manifest or default, capped by the server).
    pub memory_mb: i32,
    /// Time limit of a call, in milliseconds.
    pub timeout_ms: i64,
    /// First installed.
    pub installed_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

fn object(state: &AppState, v: PluginView) -> PluginObject {
    let limits = crate::plugins::pool::CallLimits::of(&v.manifest, &state.config.plugins);
    PluginObject {
        tools: v
            .manifest
            .tools
            .iter()
            .map(|t| ToolObject::of(&v.row.name, t))
            .collect(),
        hooks: v
            .manifest
            .hooks
            .iter()
            .map(|h| h.function().to_string())
            .collect(),
        allowed_hosts: v.manifest.permissions.allowed_hosts.clone(),
        memory_mb: limits.memory_mb as i32,
        timeout_ms: limits.timeout.as_millis() as i64,
        name: v.row.name,
        version: v.row.version,
        description: v.row.description,
        state: v.row.state.into(),
        failure: v.row.failure,
        sha256: v.row.sha256,
        signed_by: v.row.signed_by,
        granted_to_all: v.row.granted_to_all,
        installed_at: to_utc(v.row.created_at),
        updated_at: to_utc(v.row.updated_at),
    }
}

/// Plugin queries.
#[derive(Default)]
pub struct PluginQuery;

#[Object]
impl PluginQuery {
    /// Installed plugins the caller may see (admins: all; others: those granted to them).
    async fn plugins(&self, ctx: &Context<'_>) -> Result<Vec<PluginObject>> {
        let caller = require_caller(ctx)?;
        let state = ctx.data::<AppState>()?;
        let all = plugins::list(state, caller).await?;
        Ok(all.into_iter().map(|v| object(state, v)).collect())
    }

    /// One plugin by name.
    async fn plugin(&self, ctx: &Context<'_>, name: String) -> Result<PluginObject> {
        let caller = require_caller(ctx)?;
        let state = ctx.data::<AppState>()?;
        Ok(object(state, plugins::get(state, caller, &name).await?))
    }

    /// Tools of running plugins the caller may call.
    async fn tools(&self, ctx: &Context<'_>) -> Result<Vec<ToolObject>> {
        let caller = require_caller(ctx)?;
        let state = ctx.data::<AppState>()?;
        Ok(plugins::tools(state, caller)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

/// Plugin mutations.
#[derive(Default)]
pub struct PluginMutation;

async fn act(ctx: &Context<'_>, name: &str, action: Action) -> Result<PluginObject> {
    let caller = require_caller(ctx)?;
    let state = ctx.data::<AppState>()?;
    Ok(object(
        state,
        plugins::act(state, caller, name, action).await?,
    ))
}

#[Object]
impl PluginMutation {
    /// Installs a plugin, or upgrades it when the version is higher (admins). `file` is a ZIP
    /// bundle with `plugin.toml`, or a bare `.wasm` with `name` and `version`. It is
    /// installed `disabled`; an upgrade keeps the state and the key-value data.
    async fn install_plugin(
        &self,
        ctx: &Context<'_>,
        file: Upload,
        name: Option<String>,
        version: Option<String>,
    ) -> Result<PluginObject> {
        let caller = require_caller(ctx)?;
        let state = ctx.data::<AppState>()?;
        caller.require_admin()?;
        let upload = file.value(ctx)?;
        let max = state.config.plugins.max_upload_bytes;
        if upload.size().unwrap_or(0) > max {
            return Err(AppError::new(
                ErrorCode::PayloadTooLarge,
                format!("plugin uploads are at most {max} bytes"),
            )
            .into());
        }
        let bytes = super::documents::upload_bytes(upload, max).await?;
        let view =
            plugins::install_upload(state, caller, &bytes, name.as_deref(), version.as_deref())
                .await?;
        Ok(object(state, view))
    }

    /// Starts it now and at every boot (admins).
    async fn enable_plugin(&self, ctx: &Context<'_>, name: String) -> Result<PluginObject> {
        act(ctx, &name, Action::Enable).await
    }

    /// Stops it and keeps it from starting (admins).
    async fn disable_plugin(&self, ctx: &Context<'_>, name: String) -> Result<PluginObject> {
        act(ctx, &name, Action::Disable).await
    }

    /// Runs an enabled plugin (retries a failed one) (admins).
    async fn start_plugin(&self, ctx: &Context<'_>, name: String) -> Result<PluginObject> {
        act(ctx, &name, Action::Start).await
    }

    /// Stops an enabled plugin; it stays stopped across restarts (admins).
    async fn stop_plugin(&self, ctx: &Context<'_>, name: String) -> Result<PluginObject> {
        act(ctx, &name, Action::Stop).await
    }

    /// Re-reads it from disk and swaps its instances; calls in flight finish (admins).
    async fn reload_plugin(&self, ctx: &Context<'_>, name: String) -> Result<PluginObject> {
        let caller = require_caller(ctx)?;
        let state = ctx.data::<AppState>()?;
        Ok(object(state, plugins::reload(state, caller, &name).await?))
    }

    /// Removes it with its files, key-value data, grants and tools (admins).
    async fn delete_plugin(&self, ctx: &Context<'_>, name: String) -> Result<bool> {
        let caller = require_caller(ctx)?;
        let state = ctx.data::<AppState>()?;
        plugins::delete(state, caller, &name).await?;
        Ok(true)
    }

    /// Lets a user (or, without `userId`, everyone) call it; `granted: false` revokes (admins).
    async fn grant_plugin(
        &self,
        ctx: &Context<'_>,
        name: String,
        user_id: Option<ID>,
        #[graphql(default = true)] granted: bool,
    ) -> Result<PluginObject> {
        let caller = require_caller(ctx)?;
        let state = ctx.data::<AppState>()?;
        let user = user_id.as_ref().map(parse_id).transpose()?;
        Ok(object(
            state,
            plugins::grant(state, caller, &name, user, granted).await?,
        ))
    }

    /// Calls an export of a running plugin with JSON input; its JSON output (admins, and
    /// users it is granted to).
    async fn call_plugin(
        &self,
        ctx: &Context<'_>,
        name: String,
        function: String,
        input: Option<Json<Value>>,
    ) -> Result<Json<Value>> {
        let caller = require_caller(ctx)?;
        let state = ctx.data::<AppState>()?;
        let input = input
            .map(|j| j.0)
            .unwrap_or(Value::Object(Default::default()));
        Ok(Json(
            plugins::call(state, caller, &name, &function, &input).await?,
        ))
    }
}

/// A plugin changed, or a plugin published an event in a call the subscriber caused.
#[derive(SimpleObject, Clone)]
pub struct PluginEvent {
    /// The plugin.
    pub plugin: String,
    /// Its state after a change (`null` for a published event or a deletion).
    pub state: Option<PluginStateGql>,
    /// Why it failed.
    pub failure: Option<String>,
    /// It was deleted.
    pub deleted: bool,
    /// It was reloaded.
    pub reloaded: bool,
    /// The plugin's own event name (for published events).
    pub event: Option<String>,
    /// The plugin's event data.
    pub data: Option<Json<Value>>,
}

/// Plugin subscriptions.
#[derive(Default)]
pub struct PluginSubscription;

#[Subscription]
impl PluginSubscription {
    /// State changes of the plugins the caller may see, and the events plugins publish in
    /// calls the caller caused.
    async fn plugin_events(&self, ctx: &Context<'_>) -> Result<impl Stream<Item = PluginEvent>> {
        let caller = require_caller(ctx)?.clone();
        let state = ctx.data::<AppState>()?.clone();
        let mut rx = state.events.subscribe();
        Ok(async_stream::stream! {
            let end = streams::stream_end(&state, &caller, None);
            tokio::pin!(end);
            loop {
                let event = tokio::select! {
                    _ = &mut end => break,
                    e = rx.recv() => match e {
                        Ok(e) => e,
                        Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => break,
                    },
                };
                match event {
                    Event::PluginChanged { name, state: st, failure, reload } => {
                        let deleted = st == "deleted";
                        let visible = caller.is_admin()
                            || (!deleted && plugins::get(&state, &caller, &name).await.is_ok());
                        if visible {
                            yield PluginEvent {
                                plugin: name,
                                state: PluginState::parse(&st).map(Into::into),
                                failure,
                                deleted,
                                reloaded: reload,
                                event: None,
                                data: None,
                            };
                        }
                    }
                    Event::PluginEmitted { user_id, plugin, name, data } if user_id == caller.user_id() => {
                        yield PluginEvent {
                            plugin,
                            state: None,
                            failure: None,
                            deleted: false,
                            reloaded: false,
                            event: Some(name),
                            data: serde_json::from_str(&data).ok().map(Json),
                        };
                    }
                    _ => {}
                }
            }
        })
    }
}

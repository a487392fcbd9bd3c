//! The model registry over GraphQL. Paths, URLs and key presence are shown to admins only.

use super::{caller_opt, require_caller, to_utc, Volatile};
use crate::auth::Caller;
use crate::db::models::ModelRow;
use crate::service::models::{self, ModelInput};
use crate::state::AppState;
use async_graphql::{Context, InputObject, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};

/// A registered model.
pub struct ModelObject(pub ModelRow);

fn admin(ctx: &Context<'_>) -> bool {
    caller_opt(ctx).is_some_and(Caller::is_admin)
}

#[Object(name = "Model")]
impl ModelObject {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// What clients pass as `model`.
    async fn key(&self) -> &str {
        &self.0.key
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn description(&self) -> &str {
        &self.0.description
    }
    /// `local` (llama.cpp) or `openai` (any OpenAI-compatible server).
    async fn provider(&self) -> &str {
        self.0.provider.as_str()
    }
    /// `local` or `cloud`.
    async fn kind(&self) -> &str {
        self.0.kind.as_str()
    }
    /// Architecture family from the GGUF header.
    async fn family(&self) -> Option<&str> {
        self.0.family.as_deref()
    }
    async fn version(&self) -> Option<&str> {
        self.0.version.as_deref()
    }
    /// File size of a local model, in bytes.
    async fn size_bytes(&self) -> Option<i64> {
        self.0.size_bytes
    }
    /// Context window in tokens.
    async fn context_length(&self) -> i32 {
        self.0.context_length
    }
    #[graphql(name = "costPer1kInput")]
    async fn cost_per_1k_input(&self) -> f64 {
        self.0.cost_per_1k_input
    }
    #[graphql(name = "costPer1kOutput")]
    async fn cost_per_1k_output(&self) -> f64 {
        self.0.cost_per_1k_output
    }
    /// Generations allowed at once.
    async fn max_concurrent(&self) -> i32 {
        self.0.max_concurrent
    }
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    /// `loaded`, `available`, `down` or `disabled`.
    async fn status(&self, ctx: &Context<'_>) -> Result<&'static str> {
        Volatile::mark(ctx);
        Ok(ctx.data::<AppState>()?.llm.status(&self.0))
    }
    /// Generations running now in this process.
    async fn running(&self, ctx: &Context<'_>) -> Result<i32> {
        Volatile::mark(ctx);
        Ok(ctx.data::<AppState>()?.llm.load(&self.0.key).0 as i32)
    }
    /// Requests waiting for a slot in this process.
    async fn waiting(&self, ctx: &Context<'_>) -> Result<i32> {
        Volatile::mark(ctx);
        Ok(ctx.data::<AppState>()?.llm.load(&self.0.key).1 as i32)
    }
    /// GGUF path (admins only).
    async fn path(&self, ctx: &Context<'_>) -> Option<&str> {
        admin(ctx).then_some(self.0.path.as_deref()).flatten()
    }
    /// Server URL (admins only).
    async fn base_url(&self, ctx: &Context<'_>) -> Option<&str> {
        admin(ctx).then_some(self.0.base_url.as_deref()).flatten()
    }
    /// Model id sent upstream (admins only).
    async fn remote_name(&self, ctx: &Context<'_>) -> Option<&str> {
        admin(ctx)
            .then_some(self.0.remote_name.as_deref())
            .flatten()
    }
    /// Whether an upstream key is stored (the key itself is never returned).
    async fn has_api_key(&self) -> bool {
        self.0.api_key.is_some()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        to_utc(self.0.created_at)
    }
}

/// Fields of a model; on update, omitted fields keep their value.
#[derive(InputObject, Default)]
#[graphql(name = "ModelInput")]
pub struct ModelInputGql {
    /// Unique key; derived from the name when omitted.
    pub key: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    /// `local` or `openai`.
    pub provider: Option<String>,
    /// GGUF file on the server (local).
    pub path: Option<String>,
    /// Base URL up to `/v1` (openai).
    pub base_url: Option<String>,
    /// Bearer key for the server; empty string removes it.
    pub api_key: Option<String>,
    /// Model id sent upstream; the key when omitted.
    pub remote_name: Option<String>,
    pub context_length: Option<i32>,
    #[graphql(name = "costPer1kInput")]
    pub cost_per_1k_input: Option<f64>,
    #[graphql(name = "costPer1kOutput")]
    pub cost_per_1k_output: Option<f64>,
    pub max_concurrent: Option<i32>,
    pub enabled: Option<bool>,
    pub version: Option<String>,
}

impl From<ModelInputGql> for ModelInput {
    fn from(i: ModelInputGql) -> Self {
        ModelInput {
            key: i.key,
            name: i.name,
            provider: i.provider,
            description: i.description,
            path: i.path,
            base_url: i.base_url,
            api_key: i.api_key,
            remote_name: i.remote_name,
            context_length: i.context_length,
            cost_per_1k_input: i.cost_per_1k_input,
            cost_per_1k_output: i.cost_per_1k_output,
            max_concurrent: i.max_concurrent,
            enabled: i.enabled,
            version: i.version,
        }
    }
}

/// A GGUF file found by discovery.
#[derive(SimpleObject)]
pub struct DiscoveredModel {
    /// Its registry entry.
    pub model: ModelObject,
    /// Whether this discovery registered it.
    pub newly_registered: bool,
}

/// Model queries.
#[derive(Default)]
pub struct ModelQuery;

#[Object]
impl ModelQuery {
    /// Every registered model.
    async fn models(&self, ctx: &Context<'_>) -> Result<Vec<ModelObject>> {
        require_caller(ctx)?;
        let rows = models::list(ctx.data::<AppState>()?).await?;
        Ok(rows.into_iter().map(ModelObject).collect())
    }

    /// The model `auto` resolves to now (no agent), if any.
    async fn default_model(&self, ctx: &Context<'_>) -> Result<Option<ModelObject>> {
        require_caller(ctx)?;
        Ok(models::resolve(ctx.data::<AppState>()?, None, None)
            .await
            .ok()
            .map(ModelObject))
    }
}

/// Model mutations (admins).
#[derive(Default)]
pub struct ModelMutation;

#[Object]
impl ModelMutation {
    /// Registers a local GGUF or a remote OpenAI-compatible model.
    async fn register_model(&self, ctx: &Context<'_>, input: ModelInputGql) -> Result<ModelObject> {
        let caller = require_caller(ctx)?;
        let row = models::register(ctx.data::<AppState>()?, caller, input.into()).await?;
        Ok(ModelObject(row))
    }

    /// Changes a model.
    async fn update_model(
        &self,
        ctx: &Context<'_>,
        key: String,
        input: ModelInputGql,
    ) -> Result<ModelObject> {
        let caller = require_caller(ctx)?;
        let row = models::update(ctx.data::<AppState>()?, caller, &key, input.into()).await?;
        Ok(ModelObject(row))
    }

    /// Removes a model from the registry (its file stays).
    async fn delete_model(&self, ctx: &Context<'_>, key: String) -> Result<bool> {
        let caller = require_caller(ctx)?;
        models::delete(ctx.data::<AppState>()?, caller, &key).await?;
        Ok(true)
    }

    /// Finds `.gguf` files under server paths and registers the new ones.
    async fn discover_models(
        &self,
        ctx: &Context<'_>,
        paths: Vec<String>,
    ) -> Result<Vec<DiscoveredModel>> {
        let caller = require_caller(ctx)?;
        let found = models::discover(ctx.data::<AppState>()?, caller, &paths).await?;
        Ok(found
            .into_iter()
            .map(|d| DiscoveredModel {
                model: ModelObject(d.model),
                newly_registered: d.newly_registered,
            })
            .collect())
    }

    /// Sets the model `auto` falls back to (null: the configured one).
    async fn set_default_model(&self, ctx: &Context<'_>, key: Option<String>) -> Result<bool> {
        let caller = require_caller(ctx)?;
        models::set_default(ctx.data::<AppState>()?, caller, key.as_deref()).await?;
        Ok(true)
    }
}

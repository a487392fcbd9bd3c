//! Agents over GraphQL.

use super::types::AgentObject;
use super::{caller_opt, maybe, parse_id, require_caller};
use crate::service::agents::{self, AgentInput, AgentPatch};
use crate::service::{pagination, validate};
use crate::state::AppState;
use async_graphql::{Context, InputObject, MaybeUndefined, Object, Result, SimpleObject, ID};

/// A new agent.
#[derive(InputObject)]
pub struct CreateAgentInput {
    /// Display name (1–200 characters).
    pub name: String,
    /// One-line description.
    pub description: Option<String>,
    /// Instructions prepended to every chat.
    pub system_prompt: Option<String>,
    /// Model key; default: the server's default model.
    pub model: Option<String>,
    /// 0–2, default 0.7.
    pub temperature: Option<f64>,
    /// Cap on generated tokens.
    pub max_tokens: Option<i64>,
    /// Picture URL.
    pub avatar_url: Option<String>,
    /// Remember past exchanges.
    pub learn_from_interaction: Option<bool>,
    /// Visible to every user.
    pub is_public: Option<bool>,
    /// Capability names.
    pub capabilities: Option<Vec<String>>,
    /// Plugin tools it may call in its turns (see `tools`).
    pub tools: Option<Vec<String>>,
}

/// Changes to an agent; omitted fields stay, null clears nullable ones.
#[derive(InputObject)]
pub struct UpdateAgentInput {
    /// Display name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// System prompt.
    pub system_prompt: Option<String>,
    /// Model key.
    pub model: MaybeUndefined<String>,
    /// Temperature.
    pub temperature: Option<f64>,
    /// Token cap.
    pub max_tokens: MaybeUndefined<i64>,
    /// Picture URL.
    pub avatar_url: MaybeUndefined<String>,
    /// Memory switch.
    pub learn_from_interaction: Option<bool>,
    /// Visibility.
    pub is_public: Option<bool>,
    /// Plugin tools it may call in its turns.
    pub tools: Option<Vec<String>>,
}

/// A page of agents.
#[derive(SimpleObject)]
pub struct AgentList {
    /// The page.
    pub agents: Vec<AgentObject>,
    /// Count of all matching agents.
    pub total: i64,
}

/// Agent queries.
#[derive(Default)]
pub struct AgentQuery;

#[Object]
impl AgentQuery {
    /// One agent, if it is public or the caller's.
    async fn agent(&self, ctx: &Context<'_>, id: ID) -> Result<AgentObject> {
        let agent = agents::get(ctx.data::<AppState>()?, caller_opt(ctx), parse_id(&id)?).await?;
        Ok(AgentObject(agent))
    }

    /// Agents the caller can use (own and public), newest first; `after` is an agent cursor.
    async fn agents(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Vec<AgentObject>> {
        let caller = require_caller(ctx)?;
        let limit = validate::limit(first.map(i64::from), 20)?;
        let after = after.as_deref().map(pagination::decode).transpose()?;
        let rows = agents::list_visible(ctx.data::<AppState>()?, caller, limit, after).await?;
        Ok(rows.into_iter().map(AgentObject).collect())
    }

    /// Public agents, oldest first (no login needed).
    async fn public_agents(
        &self,
        ctx: &Context<'_>,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> Result<AgentList> {
        let (rows, total) = agents::list_public(
            ctx.data::<AppState>()?,
            validate::limit(limit, 20)?,
            validate::offset(offset)?,
        )
        .await?;
        Ok(AgentList {
            agents: rows.into_iter().map(AgentObject).collect(),
            total,
        })
    }

    /// The caller's own agents.
    async fn my_agents(&self, ctx: &Context<'_>) -> Result<Vec<AgentObject>> {
        let caller = require_caller(ctx)?;
        Ok(agents::list_mine(ctx.data::<AppState>()?, caller)
            .await?
            .into_iter()
            .map(AgentObject)
            .collect())
    }
}

/// Agent mutations.
#[derive(Default)]
pub struct AgentMutation;

#[Object]
impl AgentMutation {
    /// Creates an agent owned by the caller (at most 50 per user).
    async fn create_agent(
        &self,
        ctx: &Context<'_>,
        input: CreateAgentInput,
    ) -> Result<AgentObject> {
        let caller = require_caller(ctx)?;
        let agent = agents::create(
            ctx.data::<AppState>()?,
            caller,
            AgentInput {
                name: input.name,
                description: input.description,
                system_prompt: input.system_prompt,
                model: input.model,
                temperature: input.temperature,
                max_tokens: input.max_tokens,
                avatar_url: input.avatar_url,
                learn_from_interaction: input.learn_from_interaction,
                is_public: input.is_public,
                capabilities: input.capabilities,
                tools: input.tools,
            },
        )
        .await?;
        Ok(AgentObject(agent))
    }

    /// Changes an agent (owner or admin).
    async fn update_agent(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateAgentInput,
    ) -> Result<AgentObject> {
        let caller = require_caller(ctx)?;
        let patch = AgentPatch {
            name: input.name,
            description: input.description,
            system_prompt: input.system_prompt,
            model: maybe(input.model),
            temperature: input.temperature,
            max_tokens: maybe(input.max_tokens),
            avatar_url: maybe(input.avatar_url),
            learn_from_interaction: input.learn_from_interaction,
            is_public: input.is_public,
            tools: input.tools,
        };
        Ok(AgentObject(
            agents::update(ctx.data::<AppState>()?, caller, parse_id(&id)?, patch).await?,
        ))
    }

    /// Deletes an agent (owner or admin).
    async fn delete_agent(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let caller = require_caller(ctx)?;
        agents::delete(ctx.data::<AppState>()?, caller, parse_id(&id)?).await?;
        Ok(true)
    }
}

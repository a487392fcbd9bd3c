//! Agents: owned by a user, optionally public (readable by all, writable by the owner and
//! admins). A private agent of someone else is indistinguishable from a missing one.

use crate::auth::Caller;
use crate::db::json::JsonText;
use crate::db::models::{Agent, AgentChanges, NewAgent};
use crate::db::schema::agents;
use crate::db::{locks, BackendSql};
use crate::db_run;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::events::Event;
use crate::service::{now, validate};
use crate::state::AppState;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// Fields of a new agent; absent ones take defaults.
#[derive(Debug, Clone, Default)]
pub struct AgentInput {
    /// Required display name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// System prompt.
    pub system_prompt: Option<String>,
    /// Model key.
    pub model: Option<String>,
    /// Temperature (default 0.7).
    pub temperature: Option<f64>,
    /// Token cap.
    pub max_tokens: Option<i64>,
    /// Picture URL.
    pub avatar_url: Option<String>,
    /// Memory switch.
    pub learn_from_interaction: Option<bool>,
    /// Visibility.
    pub is_public: Option<bool>,
    /// Capability names.
    pub capabilities: Option<Vec<String>>,
    /// Plugin tools it may call.
    pub tools: Option<Vec<String>>,
}

/// A partial update; `None` leaves a field as it is, `Some(None)` clears a nullable one.
#[derive(Debug, Clone, Default)]
pub struct AgentPatch {
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// System prompt.
    pub system_prompt: Option<String>,
    /// Model.
    pub model: Option<Option<String>>,
    /// Temperature.
    pub temperature: Option<f64>,
    /// Token cap.
    pub max_tokens: Option<Option<i64>>,
    /// Picture.
    pub avatar_url: Option<Option<String>>,
    /// Memory switch.
    pub learn_from_interaction: Option<bool>,
    /// Visibility.
    pub is_public: Option<bool>,
    /// Plugin tools it may call.
    pub tools: Option<Vec<String>>,
}

fn check_max_tokens(v: i64) -> AppResult<i32> {
    if !(1..=1_000_000).contains(&v) {
        return Err(AppError::validation(
            "max_tokens",
            "max_tokens must be between 1 and 1000000",
        ));
    }
    Ok(v as i32)
}

fn check_model(v: &str) -> AppResult<String> {
    validate::required("model", v, validate::MAX_NAME_CHARS)
}

/// Whether `caller` may read `agent`.
pub fn visible(agent: &Agent, caller: Option<&Caller>) -> bool {
    agent.is_public || caller.is_some_and(|c| c.user_id() == agent.owner_id || c.is_admin())
}

/// Creates an agent owned by the caller (at most 50 per user).
pub async fn create(state: &AppState, caller: &Caller, input: AgentInput) -> AppResult<Agent> {
    caller.require_write()?;
    let name = validate::required("name", &input.name, validate::MAX_NAME_CHARS)?;
    let description = input.description.unwrap_or_default();
    validate::max_len("description", &description, validate::MAX_DESCRIPTION_CHARS)?;
    let system_prompt = input.system_prompt.unwrap_or_default();
    validate::max_len(
        "system_prompt",
        &system_prompt,
        validate::MAX_SYSTEM_PROMPT_CHARS,
    )?;
    let model = input.model.as_deref().map(check_model).transpose()?;
    let temperature = validate::temperature(input.temperature.unwrap_or(0.7))?;
    let max_tokens = input.max_tokens.map(check_max_tokens).transpose()?;
    if let Some(u) = &input.avatar_url {
        validate::max_len("avatar_url", u, validate::MAX_URL_CHARS)?;
    }
    let caps = input.capabilities.unwrap_or_default();
    if caps.len() > 50 || caps.iter().any(|c| c.is_empty() || c.len() > 64) {
        return Err(AppError::validation(
            "capabilities",
            "at most 50 capabilities of 1-64 characters",
        ));
    }
    let capabilities = JsonText(caps);
    let tools = JsonText(check_tools(input.tools.unwrap_or_default())?);
    let uid = caller.user_id();
    let base_slug = validate::slugify(&name);
    let ts = now();
    let db = &state.db;
    db_run!(db, write, |conn| {
        // One create at a time per user, so the quota and the slug hold under concurrency.
        conn.lock_key(locks::per_user(locks::AGENTS, uid)).await?;
        let owned: i64 = agents::table
            .filter(agents::owner_id.eq(uid))
            .count()
            .get_result(conn)
            .await?;
        if owned >= validate::MAX_AGENTS_PER_USER {
            return Err(AppError::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "a user may own at most {} agents",
                    validate::MAX_AGENTS_PER_USER
                ),
            ));
        }
        let taken: Vec<String> = agents::table
            .filter(agents::owner_id.eq(uid))
            .filter(agents::slug.like(format!("{base_slug}%")))
            .select(agents::slug)
            .load(conn)
            .await?;
        let mut slug = base_slug.clone();
        let mut n = 2;
        while taken.contains(&slug) {
            slug = format!("{base_slug}-{n}");
            n += 1;
        }
        diesel::insert_into(agents::table)
            .values(NewAgent {
                owner_id: uid,
                slug,
                name: name.clone(),
                description: description.clone(),
                system_prompt: system_prompt.clone(),
                model: model.clone(),
                temperature,
                max_tokens,
                avatar_url: input.avatar_url.clone(),
                learn_from_interaction: input.learn_from_interaction.unwrap_or(false),
                is_public: input.is_public.unwrap_or(false),
                capabilities: capabilities.clone(),
                tools: tools.clone(),
                created_at: ts,
                updated_at: ts,
            })
            .returning(Agent::as_returning())
            .get_result(conn)
            .await
            .map_err(AppError::from)
    })
    .inspect(|agent| changed(state, agent))
}

/// Tells live connections (seed 002's `agent:` channels) that an agent changed.
fn changed(state: &AppState, agent: &Agent) {
    state.events.publish(Event::AgentChanged {
        owner_id: agent.owner_id,
        agent_id: agent.id,
        slug: agent.slug.clone(),
    });
}

/// Most tools one agent may list.
pub const MAX_AGENT_TOOLS: usize = 32;

/// Tool names: valid keys, at most [`MAX_AGENT_TOOLS`], no repeats. Whether each exists is
/// decided at every turn (plugins come and go).
fn check_tools(mut tools: Vec<String>) -> AppResult<Vec<String>> {
    let valid = tools.len() <= MAX_AGENT_TOOLS
        && tools
            .iter()
            .all(|t| crate::plugins::manifest::valid_key(t, 64, true));
    if !valid {
        return Err(AppError::validation(
            "tools",
            format!("at most {MAX_AGENT_TOOLS} tool names of 1-64 letters, digits, _ and -"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    tools.retain(|t| seen.insert(t.clone()));
    Ok(tools)
}

/// Loads one agent if the caller may see it.
pub async fn get(state: &AppState, caller: Option<&Caller>, id: i64) -> AppResult<Agent> {
    let db = &state.db;
    let agent: Option<Agent> = db_run!(db, read, |conn| {
        agents::table
            .find(id)
            .select(Agent::as_select())
            .first(conn)
            .await
            .optional()
    })?;
    agent
        .filter(|a| visible(a, caller))
        .ok_or_else(|| AppError::not_found("agent"))
}

/// Loads agents by id without visibility filtering (callers filter with [`visible`]).
pub(crate) async fn by_ids(state: &AppState, ids: &[i64]) -> AppResult<Vec<Agent>> {
    let ids = ids.to_vec();
    crate::db_load!(
        &state.db,
        Agent,
        agents::table
            .filter(agents::id.eq_any(ids))
            .select(Agent::as_select())
    )
}

/// Loads an agent the caller may change: 404 if they cannot see it, 403 if they only can see it.
async fn get_writable(state: &AppState, caller: &Caller, id: i64) -> AppResult<Agent> {
    caller.require_write()?;
    let agent = get(state, Some(caller), id).await?;
    if agent.owner_id != caller.user_id() && !caller.is_admin() {
        return Err(AppError::forbidden("only the owner can change this agent"));
    }
    Ok(agent)
}

/// Applies a partial update (owner or admin).
pub async fn update(
    state: &AppState,
    caller: &Caller,
    id: i64,
    patch: AgentPatch,
) -> AppResult<Agent> {
    get_writable(state, caller, id).await?;
    let mut changes = AgentChanges {
        updated_at: Some(now()),
        ..Default::default()
    };
    if let Some(n) = &patch.name {
        changes.name = Some(validate::required("name", n, validate::MAX_NAME_CHARS)?);
    }
    if let Some(d) = patch.description {
        validate::max_len("description", &d, validate::MAX_DESCRIPTION_CHARS)?;
        changes.description = Some(d);
    }
    if let Some(p) = patch.system_prompt {
        validate::max_len("system_prompt", &p, validate::MAX_SYSTEM_PROMPT_CHARS)?;
        changes.system_prompt = Some(p);
    }
    if let Some(m) = patch.model {
        changes.model = Some(m.as_deref().map(check_model).transpose()?);
    }
    if let Some(t) = patch.temperature {
        changes.temperature = Some(validate::temperature(t)?);
    }
    if let Some(m) = patch.max_tokens {
        changes.max_tokens = Some(m.map(check_max_tokens).transpose()?);
    }
    if let Some(a) = patch.avatar_url {
        if let Some(u) = &a {
            validate::max_len("avatar_url", u, validate::MAX_URL_CHARS)?;
        }
        changes.avatar_url = Some(a);
    }
    if let Some(t) = patch.tools {
        changes.tools = Some(JsonText(check_tools(t)?));
    }
    changes.learn_from_interaction = patch.learn_from_interaction;
    changes.is_public = patch.is_public;
    let db = &state.db;
    db_run!(db, write, |conn| {
        diesel::update(agents::table.find(id))
            .set(&changes)
            .returning(Agent::as_returning())
            .get_result(conn)
            .await
            .map_err(AppError::from)
    })
    .inspect(|agent| changed(state, agent))
}

/// Deletes an agent (owner or admin); its chats keep their messages and lose the agent.
pub async fn delete(state: &AppState, caller: &Caller, id: i64) -> AppResult<()> {
    let agent = get_writable(state, caller, id).await?;
    let db = &state.db;
    db_run!(db, write, |conn| {
        diesel::delete(agents::table.find(id))
            .execute(conn)
            .await
            .map_err(AppError::from)
    })?;
    changed(state, &agent);
    Ok(())
}

/// Public agents, oldest first, with the total count.
pub async fn list_public(
    state: &AppState,
    limit: i64,
    offset: i64,
) -> AppResult<(Vec<Agent>, i64)> {
    let db = &state.db;
    db_run!(db, read, |conn| {
        let total: i64 = agents::table
            .filter(agents::is_public.eq(true))
            .count()
            .get_result(conn)
            .await?;
        let rows = agents::table
            .filter(agents::is_public.eq(true))
            .order(agents::id.asc())
            .limit(limit)
            .offset(offset)
            .select(Agent::as_select())
            .load(conn)
            .await?;
        Ok((rows, total))
    })
}

/// The caller's own agents, oldest first.
pub async fn list_mine(state: &AppState, caller: &Caller) -> AppResult<Vec<Agent>> {
    let uid = caller.user_id();
    let db = &state.db;
    db_run!(db, read, |conn| {
        agents::table
            .filter(agents::owner_id.eq(uid))
            .order(agents::id.asc())
            .select(Agent::as_select())
            .load(conn)
            .await
            .map_err(AppError::from)
    })
}

/// Agents the caller can use (own and public), by id descending, keyset-paged after `after`.
pub async fn list_visible(
    state: &AppState,
    caller: &Caller,
    limit: i64,
    after: Option<i64>,
) -> AppResult<Vec<Agent>> {
    let uid = caller.user_id();
    let db = &state.db;
    db_run!(db, read, |conn| {
        let mut q = agents::table
            .filter(agents::owner_id.eq(uid).or(agents::is_public.eq(true)))
            .order(agents::id.desc())
            .limit(limit)
            .select(Agent::as_select())
            .into_boxed();
        if let Some(a) = after {
            q = q.filter(agents::id.lt(a));
        }
        q.load(conn).await.map_err(AppError::from)
    })
}

/// The agent a slug names for the caller (seed 002's `agent_type`): their own agent with that
/// slug, else the oldest public one.
pub async fn by_slug(state: &AppState, caller: &Caller, slug: &str) -> AppResult<Agent> {
    let uid = caller.user_id();
    let slug = slug.to_string();
    let db = &state.db;
    let found: Vec<Agent> = db_run!(db, read, |conn| {
        agents::table
            .filter(agents::slug.eq(&slug))
            .filter(agents::owner_id.eq(uid).or(agents::is_public.eq(true)))
            .order(agents::id.asc())
            .select(Agent::as_select())
            .load(conn)
            .await
            .map_err(AppError::from)
    })?;
    found
        .iter()
        .find(|a| a.owner_id == uid)
        .or(<[Agent]>::first(&found))
        .cloned()
        .ok_or_else(|| AppError::not_found("agent"))
}

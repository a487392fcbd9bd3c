//! Seed 001 (FoyerGPT): `/api/agents`, `/api/chats`, `/api/sessions/current`.
//! Ids are integers; errors use the default body (which includes 001's `detail`/`status`).

use super::openapi::FOYER;
use super::DocRouter;
use super::{ts, ts_opt};
use crate::auth::Caller;
use crate::db::enums::MessageRole;
use crate::db::models::{Agent, Chat, Message, User};
use crate::error::AppError;
use crate::http::extract::{path_id, AuthCaller, JsonBody, MaybeCaller};
use crate::service::agents::{self, AgentInput, AgentPatch};
use crate::service::chats::{self, ChatInput};
use crate::service::{auth, users, validate};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

/// Routes.
pub fn router() -> DocRouter {
    DocRouter::new()
        .routes(routes!(list_public, create_agent))
        .routes(routes!(list_mine))
        .routes(routes!(get_agent, update_agent, delete_agent))
        .routes(routes!(list_chats, create_chat))
        .routes(routes!(get_chat, rename_chat, delete_chat))
        .routes(routes!(current_session))
}

fn agent_json(a: &Agent) -> Value {
    json!({
        "id": a.id,
        "name": a.name,
        "slug": a.slug,
        "description": a.description,
        "system_prompt": a.system_prompt,
        "learn_from_interaction": a.learn_from_interaction,
        "is_public": a.is_public,
        "model": a.model,
        "temperature": a.temperature,
        "max_tokens": a.max_tokens,
        "avatar_url": a.avatar_url,
        "tools": a.tools.0,
        "owner_id": a.owner_id,
        "created_at": ts(a.created_at),
        "updated_at": ts(a.updated_at),
    })
}

fn agent_with_owner(a: &Agent, owners: &HashMap<i64, User>) -> Value {
    let mut v = agent_json(a);
    v["owner"] = match owners.get(&a.owner_id) {
        Some(u) => json!({ "id": u.id, "trigramme": u.username }),
        None => Value::Null,
    };
    v
}

async fn owners_of(state: &AppState, agents: &[Agent]) -> Result<HashMap<i64, User>, AppError> {
    let mut ids: Vec<i64> = agents.iter().map(|a| a.owner_id).collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(users::by_ids(state, &ids)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Paging {
    /// Items per page (default 20).
    limit: Option<i64>,
    /// Items to skip (default 0).
    offset: Option<i64>,
}

/// The public agents, a page at a time, each with its owner.
#[utoipa::path(get, path = "/api/agents", tag = FOYER, security(()), params(Paging),
    responses((status = 200, description = "`{agents, total, limit, offset}`; each agent has `owner: {id, trigramme}`", body = Object)))]
async fn list_public(
    State(state): State<AppState>,
    Query(p): Query<Paging>,
) -> Result<Json<Value>, AppError> {
    let limit = validate::limit(p.limit, 20)?;
    let offset = validate::offset(p.offset)?;
    let (rows, total) = agents::list_public(&state, limit, offset).await?;
    let owners = owners_of(&state, &rows).await?;
    let items: Vec<Value> = rows.iter().map(|a| agent_with_owner(a, &owners)).collect();
    Ok(Json(
        json!({ "agents": items, "total": total, "limit": limit, "offset": offset }),
    ))
}

/// The caller's own agents.
#[utoipa::path(get, path = "/api/agents/my", tag = FOYER,
    responses((status = 200, description = "`{agents}`", body = Object)))]
async fn list_mine(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
) -> Result<Json<Value>, AppError> {
    let rows = agents::list_mine(&state, &caller).await?;
    Ok(Json(
        json!({ "agents": rows.iter().map(agent_json).collect::<Vec<_>>() }),
    ))
}

/// Distinguishes a field sent as `null` from one not sent (`Some(None)` vs `None`).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize, ToSchema)]
#[schema(as = FoyerAgentBody)]
struct AgentBody {
    name: String,
    description: Option<String>,
    system_prompt: Option<String>,
    /// Whether the agent learns from its conversations.
    learn_from_interaction: Option<bool>,
    /// Whether every user can see and use the agent.
    is_public: Option<bool>,
    /// The model's key (default: the configured default model).
    model: Option<String>,
    temperature: Option<f64>,
    max_tokens: Option<i64>,
    avatar_url: Option<String>,
    capabilities: Option<Vec<String>>,
    /// Names of the tools the agent may call.
    tools: Option<Vec<String>>,
}

/// Creates an agent owned by the caller.
#[utoipa::path(post, path = "/api/agents", tag = FOYER, request_body = AgentBody,
    responses((status = 201, description = "The agent", body = Object)))]
async fn create_agent(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    JsonBody(b): JsonBody<AgentBody>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let agent = agents::create(
        &state,
        &caller,
        AgentInput {
            name: b.name,
            description: b.description,
            system_prompt: b.system_prompt,
            model: b.model,
            temperature: b.temperature,
            max_tokens: b.max_tokens,
            avatar_url: b.avatar_url,
            learn_from_interaction: b.learn_from_interaction,
            is_public: b.is_public,
            capabilities: b.capabilities,
            tools: b.tools,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(agent_json(&agent))))
}

/// One agent: a public one for anyone, a private one for its owner or an admin.
#[utoipa::path(get, path = "/api/agents/{id}", tag = FOYER,
    security((), ("bearer" = []), ("api_key" = []), ("cookie" = [])),
    params(("id" = i64, Path, description = "The agent's id")),
    responses((status = 200, description = "The agent, with `owner: {id, trigramme}`", body = Object)))]
async fn get_agent(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let agent = agents::get(&state, caller.as_ref(), path_id(&id)?).await?;
    let owners = owners_of(&state, std::slice::from_ref(&agent)).await?;
    Ok(Json(agent_with_owner(&agent, &owners)))
}

/// Fields not sent are left as they are; `model`, `max_tokens` and `avatar_url` may be
/// `null` to clear them.
#[derive(Deserialize, ToSchema)]
#[schema(as = FoyerAgentPatchBody)]
struct AgentPatchBody {
    name: Option<String>,
    description: Option<String>,
    system_prompt: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    model: Option<Option<String>>,
    temperature: Option<f64>,
    #[serde(default, deserialize_with = "nullable")]
    max_tokens: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    avatar_url: Option<Option<String>>,
    learn_from_interaction: Option<bool>,
    is_public: Option<bool>,
    tools: Option<Vec<String>>,
}

/// Changes an agent (its owner or an admin).
#[utoipa::path(put, path = "/api/agents/{id}", tag = FOYER, request_body = AgentPatchBody,
    params(("id" = i64, Path, description = "The agent's id")),
    responses((status = 200, description = "The agent", body = Object)))]
async fn update_agent(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<AgentPatchBody>,
) -> Result<Json<Value>, AppError> {
    let patch = AgentPatch {
        name: b.name,
        description: b.description,
        system_prompt: b.system_prompt,
        model: b.model,
        temperature: b.temperature,
        max_tokens: b.max_tokens,
        avatar_url: b.avatar_url,
        learn_from_interaction: b.learn_from_interaction,
        is_public: b.is_public,
        tools: b.tools,
    };
    let agent = agents::update(&state, &caller, path_id(&id)?, patch).await?;
    Ok(Json(agent_json(&agent)))
}

/// Deletes an agent (its owner or an admin).
#[utoipa::path(delete, path = "/api/agents/{id}", tag = FOYER,
    params(("id" = i64, Path, description = "The agent's id")),
    responses((status = 200, description = "`{message, id, status: \"success\"}`", body = Object)))]
async fn delete_agent(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let id = path_id(&id)?;
    agents::delete(&state, &caller, id).await?;
    Ok(Json(
        json!({ "message": "Agent supprimé", "id": id, "status": "success" }),
    ))
}

/// The chat's agent summary, when it exists and the caller may see it.
async fn agent_summary(
    state: &AppState,
    caller: &Caller,
    chats: &[Chat],
) -> Result<HashMap<i64, Agent>, AppError> {
    let mut ids: Vec<i64> = chats.iter().filter_map(|c| c.agent_id).collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(agents::by_ids(state, &ids)
        .await?
        .into_iter()
        .filter(|a| agents::visible(a, Some(caller)))
        .map(|a| (a.id, a))
        .collect())
}

/// The caller's chats, a page at a time, each with its agent's `{id, name}`.
#[utoipa::path(get, path = "/api/chats", tag = FOYER, params(Paging),
    responses((status = 200, description = "`{chats, total, limit, offset}`; each chat is `{id, title, agent, agent_id, last_message_at, created_at}`", body = Object)))]
async fn list_chats(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Query(p): Query<Paging>,
) -> Result<Json<Value>, AppError> {
    let limit = validate::limit(p.limit, 20)?;
    let offset = validate::offset(p.offset)?;
    let page = chats::list(&state, &caller, limit, offset, None).await?;
    let agents = agent_summary(&state, &caller, &page.chats).await?;
    let items: Vec<Value> = page
        .chats
        .iter()
        .map(|c| {
            let agent = c
                .agent_id
                .and_then(|id| agents.get(&id))
                .map(|a| json!({ "id": a.id, "name": a.name }));
            json!({
                "id": c.id,
                "title": c.title,
                "agent": agent,
                "agent_id": c.agent_id,
                "last_message_at": ts_opt(c.last_message_at),
                "created_at": ts(c.created_at),
            })
        })
        .collect();
    Ok(Json(
        json!({ "chats": items, "total": page.total, "limit": limit, "offset": offset }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = FoyerChatBody)]
struct ChatBody {
    /// The agent the chat talks to (none: the plain model).
    agent_id: Option<i64>,
    title: Option<String>,
    model: Option<String>,
}

fn chat_json(c: &Chat) -> Value {
    json!({
        "id": c.id,
        "title": c.title,
        "user_id": c.user_id,
        "agent_id": c.agent_id,
        "model": c.model,
        "created_at": ts(c.created_at),
        "updated_at": ts(c.updated_at),
    })
}

/// Starts a chat, with an agent or the plain model.
#[utoipa::path(post, path = "/api/chats", tag = FOYER, request_body = ChatBody,
    responses((status = 201, description = "The chat", body = Object)))]
async fn create_chat(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    JsonBody(b): JsonBody<ChatBody>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let chat = chats::create(
        &state,
        &caller,
        ChatInput {
            agent_id: b.agent_id,
            title: b.title,
            model: b.model,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(chat_json(&chat))))
}

/// A message in seed 001's shape; answers add their model, status and token counts.
pub(crate) fn message_json(m: &Message) -> Value {
    let mut v = json!({
        "id": m.id,
        "content": m.content,
        "role": m.role,
        "chat_id": m.chat_id,
        "created_at": ts(m.created_at),
    });
    if m.role == MessageRole::Assistant {
        v["llm_model"] = json!(m.model);
        v["status"] = json!(m.status);
        v["prompt_tokens"] = json!(m.prompt_tokens);
        v["completion_tokens"] = json!(m.completion_tokens);
    }
    v
}

/// One of the caller's chats with its agent and its messages.
#[utoipa::path(get, path = "/api/chats/{id}", tag = FOYER,
    params(("id" = i64, Path, description = "The chat's id")),
    responses((status = 200, description = "The chat, with `agent: {id, name, avatar_url}` and `messages`", body = Object)))]
async fn get_chat(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let id = path_id(&id)?;
    let chat = chats::get(&state, &caller, id).await?;
    let messages = chats::messages(&state, &caller, id, 1000, 0).await?;
    let agents = agent_summary(&state, &caller, std::slice::from_ref(&chat)).await?;
    let agent = chat
        .agent_id
        .and_then(|a| agents.get(&a))
        .map(|a| json!({ "id": a.id, "name": a.name, "avatar_url": a.avatar_url }));
    let mut body = chat_json(&chat);
    body["agent"] = agent.unwrap_or(Value::Null);
    body["messages"] = messages.iter().map(message_json).collect();
    Ok(Json(body))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = FoyerRenameBody)]
struct RenameBody {
    title: String,
}

/// Renames one of the caller's chats.
#[utoipa::path(put, path = "/api/chats/{id}", tag = FOYER, request_body = RenameBody,
    params(("id" = i64, Path, description = "The chat's id")),
    responses((status = 200, description = "The chat", body = Object)))]
async fn rename_chat(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<RenameBody>,
) -> Result<Json<Value>, AppError> {
    let chat = chats::rename(&state, &caller, path_id(&id)?, &b.title).await?;
    Ok(Json(chat_json(&chat)))
}

/// Deletes one of the caller's chats.
#[utoipa::path(delete, path = "/api/chats/{id}", tag = FOYER,
    params(("id" = i64, Path, description = "The chat's id")),
    responses((status = 200, description = "`{message, id, status: \"success\"}`", body = Object)))]
async fn delete_chat(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let id = path_id(&id)?;
    chats::delete(&state, &caller, id).await?;
    Ok(Json(
        json!({ "message": "Conversation supprimée", "id": id, "status": "success" }),
    ))
}

/// The session named by `X-Session-ID` (default: the one the token belongs to).
#[utoipa::path(get, path = "/api/sessions/current", tag = FOYER,
    params(("X-Session-ID" = Option<String>, Header, description = "The session to read; required for API-key callers (default: the session of the access token)")),
    responses((status = 200, description = "`{id, user_id, created_at, expires_at, last_activity, active, metadata: {user_agent, ip_address}}`", body = Object)))]
async fn current_session(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    headers: HeaderMap,
) -> Result<Json<Value>, AppError> {
    let sid = headers
        .get("x-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| caller.session_id.clone())
        .ok_or_else(|| {
            AppError::validation(
                "X-Session-ID",
                "X-Session-ID header is required for API-key callers",
            )
        })?;
    let s = auth::get_session(&state, &caller, &sid).await?;
    Ok(Json(json!({
        "id": s.id,
        "user_id": s.user_id,
        "created_at": ts(s.created_at),
        "expires_at": ts(s.expires_at),
        "last_activity": ts(s.last_activity),
        "active": auth::session_active(&s),
        "metadata": { "user_agent": s.user_agent, "ip_address": s.ip_address },
    })))
}

//! Seed 000 (AI Orchestrator v5.2): `/api/conversations` and `/api/stats`. Conversations are
//! Hearth chats; the stats are the caller's (an admin's: the instance's).
//! The seed documents the query parameters but not the bodies; Hearth answers with the
//! chat's fields under the names that API uses elsewhere (`conversation_id`, `model_used`).

use super::openapi::ORCHESTRATOR;
use super::DocRouter;
use super::{ts, ts_opt};
use crate::db::models::{Chat, Message};
use crate::error::AppError;
use crate::http::extract::{path_id, AuthCaller};
use crate::service::{chats, validate};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;
use utoipa_axum::routes;

/// Routes.
pub fn router() -> DocRouter {
    DocRouter::new()
        .routes(routes!(list))
        .routes(routes!(detail, remove))
        .routes(routes!(stats))
}

/// Usage figures: the caller's own, or the whole instance's for an admin.
#[utoipa::path(get, path = "/api/stats", tag = ORCHESTRATOR,
    responses((status = 200, description = "`{uptime, uptime_seconds, conversations, messages, tools_count, memory_entries, models_available, tokens_today, tokens_this_month}`", body = Object)))]
async fn stats(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
) -> Result<Json<Value>, AppError> {
    let s = crate::service::stats::for_caller(&state, &caller).await?;
    Ok(Json(json!({
        "uptime": crate::service::stats::uptime_text(s.uptime_secs),
        "uptime_seconds": s.uptime_secs,
        "conversations": s.conversations,
        "messages": s.messages,
        "tools_count": s.tools,
        "memory_entries": s.memory_entries,
        "models_available": s.models_available,
        "tokens_today": s.tokens_today,
        "tokens_this_month": s.tokens_this_month,
    })))
}

fn conversation_json(c: &Chat, message_count: i64) -> Value {
    json!({
        "id": c.id.to_string(),
        "conversation_id": c.id.to_string(),
        "title": c.title,
        "agent_id": c.agent_id,
        "model": c.model,
        "message_count": message_count,
        "created_at": ts(c.created_at),
        "updated_at": ts(c.updated_at),
        "last_message_at": ts_opt(c.last_message_at),
    })
}

fn message_json(m: &Message) -> Value {
    json!({
        "id": m.id,
        "role": m.role,
        "content": m.content,
        "model": m.model,
        "status": m.status,
        "tokens": { "prompt": m.prompt_tokens, "completion": m.completion_tokens },
        "created_at": ts(m.created_at),
    })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Page size, 1 to 100 (default 20).
    limit: Option<i64>,
    /// Conversations to skip (default 0).
    offset: Option<i64>,
    /// Only conversations whose title or any message contains this text (case-insensitive).
    search: Option<String>,
}

/// The caller's conversations, newest first, one page at a time.
#[utoipa::path(get, path = "/api/conversations", tag = ORCHESTRATOR, params(ListQuery),
    responses((status = 200, description = "`{conversations, total, limit, offset}`; each conversation `{id, conversation_id, title, agent_id, model, message_count, created_at, updated_at, last_message_at}`", body = Object)))]
async fn list(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, AppError> {
    let limit = validate::limit(q.limit, 20)?;
    let offset = validate::offset(q.offset)?;
    let page = chats::list(&state, &caller, limit, offset, q.search.as_deref()).await?;
    let ids: Vec<i64> = page.chats.iter().map(|c| c.id).collect();
    let counts = chats::message_counts(&state.db, &ids).await?;
    let items: Vec<Value> = page
        .chats
        .iter()
        .map(|c| conversation_json(c, counts.get(&c.id).copied().unwrap_or(0)))
        .collect();
    Ok(Json(
        json!({ "conversations": items, "total": page.total, "limit": limit, "offset": offset }),
    ))
}

/// Accepts `123` and seed 000's `conv-123` form.
pub(crate) fn conversation_id(raw: &str) -> Result<i64, AppError> {
    path_id(raw.strip_prefix("conv-").unwrap_or(raw))
}

/// One conversation with its messages.
#[utoipa::path(get, path = "/api/conversations/{id}", tag = ORCHESTRATOR,
    params(("id" = String, Path, description = "The conversation: `123` or `conv-123`")),
    responses((status = 200, description = "The conversation's fields plus `messages`, oldest first (up to 1000), each `{id, role, content, model, status, tokens: {prompt, completion}, created_at}`", body = Object)))]
async fn detail(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let id = conversation_id(&id)?;
    let chat = chats::get(&state, &caller, id).await?;
    let messages = chats::messages(&state, &caller, id, 1000, 0).await?;
    let mut body = conversation_json(&chat, messages.len() as i64);
    body["messages"] = messages.iter().map(message_json).collect();
    Ok(Json(body))
}

/// Deletes a conversation and its messages.
#[utoipa::path(delete, path = "/api/conversations/{id}", tag = ORCHESTRATOR,
    params(("id" = String, Path, description = "The conversation: `123` or `conv-123`")),
    responses((status = 200, description = "`{deleted: true, conversation_id}`", body = Object)))]
async fn remove(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let id = conversation_id(&id)?;
    chats::delete(&state, &caller, id).await?;
    Ok(Json(
        json!({ "deleted": true, "conversation_id": id.to_string() }),
    ))
}

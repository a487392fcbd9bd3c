//! Seed 000 (AI Orchestrator v5.2): `/api/conversations` and `/api/stats`. Conversations are
//! Hearth chats; the stats are the caller's (an admin's: the instance's).
//! The seed documents the query parameters but not the bodies; Hearth answers with the
//! chat's fields under the names that API uses elsewhere (`conversation_id`, `model_used`).

use super::{ts, ts_opt};
use crate::db::models::{Chat, Message};
use crate::error::AppError;
use crate::http::extract::{path_id, AuthCaller};
use crate::service::{chats, validate};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

/// Routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/conversations", get(list))
        .route("/api/conversations/{id}", get(detail).delete(remove))
        .route("/api/stats", get(stats))
}

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

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<i64>,
    offset: Option<i64>,
    search: Option<String>,
}

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

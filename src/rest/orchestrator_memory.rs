//! Seed 000 (AI Orchestrator): memory (`POST /api/memory`, `GET /api/memory/search`) and
//! `POST /api/upload` (a file for a conversation). The seed documents the requests, not the
//! answers: memory entries answer `{id, content, metadata, score?, created_at}`, uploads the
//! document as seed 001 shows it plus its conversation.

use super::foyer_documents::{read_form, seed_status, upload_status};
use super::orchestrator::conversation_id;
use super::ts;
use crate::error::AppError;
use crate::http::extract::{AuthCaller, JsonBody};
use crate::service::documents::{self as docs, Target, UploadInput};
use crate::service::memory::{self, Entry};
use crate::state::AppState;
use axum::extract::{Multipart, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

/// The upload door (bodies up to the upload size).
pub fn upload_router() -> Router<AppState> {
    Router::new().route("/api/upload", post(upload))
}

/// The memory doors.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/memory", post(remember))
        .route("/api/memory/search", get(search))
}

fn entry_json(e: &Entry) -> Value {
    json!({
        "id": e.document.id.to_string(),
        "content": e.content,
        "metadata": e.document.metadata.0,
        "score": e.score,
        "indexed": memory::is_indexed(e),
        "created_at": ts(e.document.created_at),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RememberBody {
    content: String,
    metadata: Option<Value>,
}

async fn remember(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    JsonBody(b): JsonBody<RememberBody>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let e = memory::remember(&state, &caller, &b.content, b.metadata).await?;
    Ok((StatusCode::CREATED, Json(entry_json(&e))))
}

#[derive(Deserialize)]
struct SearchParams {
    q: Option<String>,
    limit: Option<i64>,
}

async fn search(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Query(p): Query<SearchParams>,
) -> Result<Json<Value>, AppError> {
    let q = p.q.unwrap_or_default();
    let entries = memory::search(&state, &caller, &q, p.limit.unwrap_or(5)).await?;
    let results: Vec<Value> = entries.iter().map(entry_json).collect();
    Ok(Json(
        json!({ "query": q, "count": results.len(), "results": results }),
    ))
}

async fn upload(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    multipart: Multipart,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let mut form = read_form(multipart).await?;
    let (filename, bytes) = form.take_file()?;
    let raw = form
        .fields
        .get("conversation_id")
        .ok_or_else(|| AppError::validation("conversation_id", "conversation_id is required"))?;
    let chat_id = conversation_id(raw.trim())?;
    let uploaded = docs::upload(
        &state,
        &caller,
        UploadInput {
            filename,
            bytes,
            target: Target::Chat(chat_id),
            metadata: None,
        },
    )
    .await
    .map_err(seed_status)?;
    let d = &uploaded.document;
    let status = upload_status(uploaded.existing);
    Ok((
        status,
        Json(json!({
            "id": d.id.to_string(),
            "filename": d.filename,
            "file_size": d.file_size,
            "mime_type": d.mime_type,
            "kind": d.kind,
            "status": d.status,
            "conversation_id": format!("conv-{chat_id}"),
            "uploaded_at": ts(d.created_at),
        })),
    ))
}

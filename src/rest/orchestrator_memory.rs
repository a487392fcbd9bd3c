//! Seed 000 (AI Orchestrator): memory (`POST /api/memory`, `GET /api/memory/search`) and
//! `POST /api/upload` (a file for a conversation). The seed documents the requests, not the
//! answers: memory entries answer `{id, content, metadata, score?, created_at}`, uploads the
//! document as seed 001 shows it plus its conversation.

use super::foyer_documents::{read_form, seed_status, upload_status};
use super::openapi::ORCHESTRATOR;
use super::orchestrator::conversation_id;
use super::ts;
use super::DocRouter;
use crate::error::AppError;
use crate::http::extract::{AuthCaller, JsonBody};
use crate::service::documents::{self as docs, Target, UploadInput};
use crate::service::memory::{self, Entry};
use crate::state::AppState;
use axum::extract::{Multipart, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

/// The upload door (bodies up to the upload size).
pub fn upload_router() -> DocRouter {
    DocRouter::new().routes(routes!(upload))
}

/// The memory doors.
pub fn router() -> DocRouter {
    DocRouter::new()
        .routes(routes!(remember))
        .routes(routes!(search))
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

#[derive(Deserialize, ToSchema)]
#[schema(as = OrchestratorMemoryRememberBody)]
#[serde(deny_unknown_fields)]
struct RememberBody {
    /// The text to remember.
    content: String,
    /// Free-form metadata (a JSON object), answered back with the entry.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

/// Stores a text in the caller's memory, indexed for search.
#[utoipa::path(post, path = "/api/memory", tag = ORCHESTRATOR, request_body = RememberBody,
    responses((status = 201, description = "The entry: `{id, content, metadata, score: null, indexed, created_at}`", body = Object)))]
async fn remember(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    JsonBody(b): JsonBody<RememberBody>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let e = memory::remember(&state, &caller, &b.content, b.metadata).await?;
    Ok((StatusCode::CREATED, Json(entry_json(&e))))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchParams {
    /// The text to search for (required, not empty).
    q: Option<String>,
    /// How many entries at most (default 5; at most the instance's `rag.max_top_k`, 100 unless configured).
    limit: Option<i64>,
}

/// Searches the caller's memory by meaning and words, best first.
#[utoipa::path(get, path = "/api/memory/search", tag = ORCHESTRATOR, params(SearchParams),
    responses((status = 200, description = "`{query, count, results}`; each result `{id, content, metadata, score, indexed, created_at}`", body = Object)))]
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

/// Uploads a file into a conversation, for the agent to read.
///
/// The same bytes already in the conversation answer the existing document with 200.
#[utoipa::path(post, path = "/api/upload", tag = ORCHESTRATOR,
    request_body(content = super::openapi::FileUpload, content_type = "multipart/form-data",
        description = "field `file`: the document; other form fields: `conversation_id` (required, `123` or `conv-123`)"),
    responses(
        (status = 201, description = "The new document: `{id, filename, file_size, mime_type, kind, status, conversation_id, uploaded_at}`", body = Object),
        (status = 200, description = "The same file was already there: the existing document, same fields", body = Object)))]
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

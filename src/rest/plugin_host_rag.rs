//! Seed 003 (plugin host): `POST /rag/reindex` indexes the watched folders (admins) and
//! `POST /rag/query` searches everything the caller may read. Invalid requests are 400, as
//! on the seed's other doors.

use super::openapi::PLUGIN_HOST;
use super::DocRouter;
use crate::error::AppError;
use crate::http::extract::{AuthCaller, JsonBody};
use crate::rag::search::Mode;
use crate::rag::sources;
use crate::service::documents as docs;
use crate::state::AppState;
use axum::extract::State;
use axum::middleware;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::routes;

/// Routes.
pub fn router() -> DocRouter {
    DocRouter::new()
        .routes(routes!(reindex))
        .routes(routes!(query))
        .layer(middleware::from_fn(
            super::plugin_host_jobs::bad_request_status,
        ))
}

#[derive(Deserialize, Default, ToSchema)]
#[schema(as = PluginHostReindexBody)]
#[serde(deny_unknown_fields)]
struct ReindexBody {
    /// Ingest every file again (default true); false only new and changed files.
    full: Option<bool>,
}

/// Indexes the watched folders (admins).
#[utoipa::path(post, path = "/rag/reindex", tag = PLUGIN_HOST,
    request_body(content = Option<ReindexBody>, description = "Optional: `{full}` (default true)"),
    responses((status = 200, description = "`{indexed, unchanged, skipped, removed}`: files queued for ingestion, left as they were, skipped (unsupported, too large, unreadable), and documents whose file is gone", body = Object)))]
async fn reindex(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    body: axum::body::Bytes,
) -> Result<Json<Value>, AppError> {
    // The body is optional (`{full}` defaults to true).
    let full = if body.iter().all(u8::is_ascii_whitespace) {
        true
    } else {
        let b: ReindexBody = serde_json::from_slice(&body).map_err(|e| {
            AppError::new(
                crate::error::ErrorCode::BadRequest,
                format!("invalid body: {e}"),
            )
            .with_details(json!({ "field": "full" }))
        })?;
        b.full.unwrap_or(true)
    };
    let pass = sources::index(&state, &caller, full).await?;
    Ok(Json(json!({
        "indexed": pass.indexed,
        "unchanged": pass.unchanged,
        "skipped": pass.skipped,
        "removed": pass.removed,
    })))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = PluginHostQueryBody)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    /// What to search for.
    query: String,
    /// How many passages to return (default `rag.default_top_k`, at most `rag.max_top_k`).
    top_k: Option<i64>,
}

/// Searches every document the caller may read (hybrid search).
#[utoipa::path(post, path = "/rag/query", tag = PLUGIN_HOST, request_body = QueryBody,
    responses((status = 200,
        description = "`{results: [{text, score, similarity, source: {path, sha256, chunk_id, document_id, start, end, page}}]}`",
        body = Object)))]
async fn query(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    JsonBody(b): JsonBody<QueryBody>,
) -> Result<Json<Value>, AppError> {
    let hits = docs::search(&state, &caller, None, &b.query, b.top_k, None, Mode::Hybrid).await?;
    let results: Vec<Value> = hits
        .into_iter()
        .map(|h| {
            json!({
                "text": h.chunk.text,
                "score": h.score,
                "similarity": h.similarity,
                "source": {
                    "path": h.document.source_path.clone().unwrap_or_else(|| h.document.filename.clone()),
                    "sha256": h.document.sha256,
                    "chunk_id": h.chunk.id,
                    "document_id": h.document.id,
                    "start": h.chunk.char_start,
                    "end": h.chunk.char_end,
                    "page": h.chunk.page,
                },
            })
        })
        .collect();
    Ok(Json(json!({ "results": results })))
}

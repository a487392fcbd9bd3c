//! Seed 002 (RAG-DZ / Nexus) RAG doors under `/api/v1/rag`: upload into a named collection
//! (answered once the document is indexed, as the seed shows `chunks` and `status:
//! "indexed"`, or after `UPLOAD_WAIT` with the status reached), a grounded answer with its
//! sources, the caller's collections, and delete. Ids are strings; errors in the seed's shape.
//!
//! `options.rerank` is accepted: Hearth's ranking is always the fusion of vector and keyword
//! rankings; there is no separate reranking model, so it changes nothing.

use super::foyer_documents::{read_form, upload_status};
use super::openapi::NEXUS;
use super::ts;
use super::DocRouter;
use crate::db::models::Document;
use crate::error::{AppError, ErrorCode};
use crate::http::extract::{path_id, AuthCaller, JsonBody};
use crate::service::documents::{self as docs, Retrieve, Target, UploadInput};
use crate::state::AppState;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use utoipa::ToSchema;
use utoipa_axum::routes;

/// Longest an upload waits for its document to be indexed before answering.
const UPLOAD_WAIT: Duration = Duration::from_secs(60);

/// The upload door (relative to `/api/v1`; bodies up to the upload size).
pub fn upload_router() -> DocRouter {
    DocRouter::new()
        .routes(routes!(upload))
        .layer(middleware::from_fn(super::nexus::nexus_errors))
}

/// The other RAG doors (relative to `/api/v1`).
pub fn router() -> DocRouter {
    DocRouter::new()
        .routes(routes!(query))
        .routes(routes!(collections))
        .routes(routes!(remove))
        .layer(middleware::from_fn(super::nexus::nexus_errors))
}

fn document_json(d: &Document, collection: &str) -> Value {
    json!({
        "document_id": d.id.to_string(),
        "filename": d.filename,
        "pages": d.pages,
        "chunks": d.chunks_total,
        "collection": collection,
        "status": d.status,
        "error": d.error,
        "sha256": d.sha256,
        "created_at": ts(d.created_at),
    })
}

/// Uploads a document into one of the caller's collections and answers once it is indexed.
///
/// The answer comes when indexing ends, or after 60 seconds with the status reached then.
#[utoipa::path(post, path = "/rag/upload", tag = NEXUS,
    request_body(content = super::openapi::FileUpload, content_type = "multipart/form-data",
        description = "field `file`: the document; other form fields: `collection` (the collection's name, created if missing; default `default`), `metadata` (a JSON object stored with the document)"),
    responses(
        (status = 201, description = "The new document: `{document_id, filename, pages, chunks, collection, status, error, sha256, created_at}`", body = Object),
        (status = 200, description = "The same bytes were already in the collection: that document, in the same shape", body = Object)))]
async fn upload(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    multipart: Multipart,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let mut form = read_form(multipart).await?;
    let (filename, bytes) = form.take_file()?;
    let collection = form
        .fields
        .get("collection")
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "default".to_string());
    let metadata = match form.fields.get("metadata").map(|m| m.trim()) {
        None | Some("") => None,
        Some(m) => Some(
            serde_json::from_str::<Value>(m)
                .map_err(|_| AppError::validation("metadata", "metadata must be a JSON object"))?,
        ),
    };
    let uploaded = docs::upload(
        &state,
        &caller,
        UploadInput {
            filename,
            bytes,
            target: Target::Collection(collection.clone()),
            metadata,
        },
    )
    .await?;
    let d = docs::wait_settled(&state, &caller, uploaded.document.id, UPLOAD_WAIT).await?;
    let status = upload_status(uploaded.existing);
    Ok((status, Json(document_json(&d, &collection))))
}

#[derive(Deserialize, Default, ToSchema)]
#[schema(as = NexusRagQueryOptions)]
#[serde(deny_unknown_fields)]
struct QueryOptions {
    /// Passages to retrieve at most.
    top_k: Option<usize>,
    /// Lowest relevance score a passage needs.
    threshold: Option<f32>,
    /// Accepted and ignored: the ranking is always the fusion of vector and keyword rankings.
    #[allow(dead_code)]
    rerank: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = NexusRagQueryBody)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    /// The question.
    query: String,
    /// The collection's name (default `default`).
    collection: Option<String>,
    #[serde(default)]
    options: QueryOptions,
    /// The model that answers (default: the configured default model).
    model: Option<String>,
}

/// Answers a question from a collection's documents, with the passages it used.
#[utoipa::path(post, path = "/rag/query", tag = NEXUS, request_body = QueryBody,
    responses((status = 200, description = "`{answer, sources, metadata: {tokens_used, latency_ms, model, conversation_id}}`; each source is `{document_id, chunk_id, content, score, page, filename, start, end, cited}`", body = Object)))]
async fn query(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    JsonBody(b): JsonBody<QueryBody>,
) -> Result<Json<Value>, AppError> {
    let started = Instant::now();
    let start = docs::ask(
        &state,
        &caller,
        &b.query,
        Retrieve {
            target: Some(Target::Collection(
                b.collection.unwrap_or_else(|| "default".to_string()),
            )),
            top_k: b.options.top_k,
            threshold: b.options.threshold,
        },
        None,
        b.model,
    )
    .await?;
    let sources = start.sources.clone();
    let outcome = start.finish().await?;
    if let Some(e) = outcome.error {
        return Err(e);
    }
    let sources: Vec<Value> = sources
        .iter()
        .map(|s| {
            json!({
                "document_id": s.document_id.to_string(),
                "chunk_id": s.chunk_id.to_string(),
                "content": s.text,
                "score": s.score,
                "page": s.page,
                "filename": s.filename,
                "start": s.start,
                "end": s.end,
                "cited": s.cited_in(&outcome.message.content),
            })
        })
        .collect();
    Ok(Json(json!({
        "answer": outcome.message.content,
        "sources": sources,
        "metadata": {
            "tokens_used": outcome.usage.total(),
            "latency_ms": started.elapsed().as_millis() as u64,
            "model": outcome.message.model,
            "conversation_id": outcome.message.chat_id.to_string(),
        },
    })))
}

/// The caller's collections, with their document counts.
#[utoipa::path(get, path = "/rag/collections", tag = NEXUS,
    responses((status = 200, description = "`{collections}`; each is `{id, name, documents, embedding_model, created_at}`", body = Object)))]
async fn collections(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
) -> Result<Json<Value>, AppError> {
    let list = docs::list_collections(&state, &caller).await?;
    let mut out = Vec::with_capacity(list.len());
    for c in list {
        let count = docs::count(&state, c.id).await?;
        out.push(json!({
            "id": c.id.to_string(),
            "name": c.name,
            "documents": count,
            "embedding_model": c.embed_model,
            "created_at": ts(c.created_at),
        }));
    }
    Ok(Json(json!({ "collections": out })))
}

/// Deletes a document and its indexed chunks.
#[utoipa::path(delete, path = "/rag/documents/{id}", tag = NEXUS,
    params(("id" = String, Path, description = "The document's id (`doc-` prefix optional)")),
    responses((status = 200, description = "`{deleted: true, document_id}`", body = Object)))]
async fn remove(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let raw = id.strip_prefix("doc-").unwrap_or(&id);
    let id = path_id(raw).map_err(|_| AppError::new(ErrorCode::NotFound, "document not found"))?;
    docs::delete(&state, &caller, id).await?;
    Ok(Json(
        json!({ "deleted": true, "document_id": id.to_string() }),
    ))
}

//! Ingestion: the `ingest_document` job kind takes one document from its bytes to indexed
//! vectors — extract, chunk, embed (through the shared batcher), then one transaction that
//! replaces the document's chunks and vectors, stores its text and bumps the collection's
//! index version. Nothing is written per chunk along the way, so a killed server leaves
//! the document as it was: the job's lease runs out, the run is retried, and documents whose
//! ingestion ended for good are marked failed by [`repair`]. There is never a chunk without
//! its vector or a vector without its chunk.
//!
//! Documents in flight per process are bounded by `jobs.kind_concurrency.ingest_document`.

use super::extract::{self, Extracted};
use crate::auth::Caller;
use crate::db::enums::{DocumentKind, DocumentStatus, JobState};
use crate::db::models::{ChunkVector, Collection, Document, NewChunk};
use crate::db::schema::{chunk_vectors, chunks, collections, document_texts, documents, jobs};
use crate::db_run;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::jobs::kinds::parse_payload;
use crate::jobs::{JobContext, JobError, JobKind};
use crate::service::{documents as docs, now};
use crate::state::AppState;
use crate::vector::encode_vector;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// The job kind's name.
pub const KIND: &str = "ingest_document";
/// Chunks handed to the embedder at once (progress is reported between them).
const EMBED_BATCH: usize = 64;

/// Bumps a collection's index version, inside the transaction that changed its vectors
/// (a macro: `db_run!` bodies are typed once per backend).
macro_rules! bump_version {
    ($conn:ident, $collection_id:expr) => {
        diesel::update(collections::table.find($collection_id))
            .set((
                collections::index_version.eq(collections::index_version + 1),
                collections::updated_at.eq(now()),
            ))
            .execute($conn)
            .await
    };
}

/// The kind.
pub struct IngestDocument;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    document_id: i64,
}

#[async_trait::async_trait]
impl JobKind for IngestDocument {
    fn name(&self) -> &'static str {
        KIND
    }

    async fn check(&self, state: &AppState, caller: &Caller, payload: &Value) -> AppResult<()> {
        let p: Payload = parse_payload(payload)?;
        docs::get(state, caller, p.document_id)
            .await
            .map(|_| ())
            .map_err(|e| AppError::validation("payload.document_id", e.message))
    }

    async fn run(&self, ctx: &JobContext) -> Result<Value, JobError> {
        let p: Payload = parse_payload(&ctx.payload).map_err(|e| JobError::permanent(e.message))?;
        let state = &ctx.state;
        let doc = load(state, p.document_id)
            .await?
            .filter(|d| d.owner_id == ctx.caller.user_id() || ctx.caller.is_admin())
            .ok_or_else(|| JobError::permanent("the document was deleted"))?;
        match ingest(ctx, &doc).await {
            Ok(out) => Ok(out),
            Err(e) => {
                let message = e.message.clone();
                let status = if e.retriable {
                    DocumentStatus::Queued
                } else {
                    DocumentStatus::Failed
                };
                let _ = set_status(state, doc.id, status, Some(message), None).await;
                Err(e)
            }
        }
    }
}

async fn ingest(ctx: &JobContext, doc: &Document) -> Result<Value, JobError> {
    let state = &ctx.state;
    set_status(
        state,
        doc.id,
        DocumentStatus::Extracting,
        None,
        Some((0, 0)),
    )
    .await?;
    let bytes = docs::stored_bytes(state, doc.id).await.map_err(|e| {
        JobError::permanent(format!("the document's bytes are gone: {}", e.message))
    })?;
    let chunker = state.rag.chunker(&state.config).await?;
    // A type Hearth cannot read gets its text from a plugin, as the document's owner.
    let supplied = if doc.kind == DocumentKind::Other {
        crate::service::hooks::document_text(state, &ctx.caller, doc, &bytes)
            .await
            .map_err(|e| JobError::permanent(e.message))?
    } else {
        None
    };
    let (rag, config, kind) = (state.rag.clone(), state.config.clone(), doc.kind);
    let (extracted, pieces) = tokio::task::spawn_blocking(move || {
        let extracted = match supplied {
            Some(text) => extract::supplied(text, &config.rag)?,
            None => extract::extract(kind, &bytes, &config.rag, &rag.pdfium)?,
        };
        let pieces = chunker.chunk(&extracted);
        Ok::<_, AppError>((extracted, pieces))
    })
    .await
    .map_err(|e| JobError::permanent(format!("extraction crashed: {e}")))?
    .map_err(|e| match e.code {
        ErrorCode::Unavailable => JobError::retriable(e.message),
        _ => JobError::permanent(e.message),
    })?;
    if ctx.is_cancelled() {
        return Err(JobError::retriable("stopped"));
    }
    let total = pieces.len() as i32;
    set_status(
        state,
        doc.id,
        DocumentStatus::Embedding,
        None,
        Some((total, 0)),
    )
    .await?;
    let embedder = state
        .embed
        .get(&state.config.embed, &state.background)
        .await?;
    let mut vectors: Vec<Vec<f32>> = Vec::with_capacity(pieces.len());
    for batch in pieces.chunks(EMBED_BATCH) {
        if ctx.is_cancelled() {
            return Err(JobError::retriable("stopped"));
        }
        let texts: Vec<String> = batch.iter().map(|p| p.text.clone()).collect();
        let embedded = embed_patiently(ctx, &embedder, texts).await?;
        vectors.extend(embedded.into_iter().map(|e| e.vector));
        let done = vectors.len() as i32;
        set_status(
            state,
            doc.id,
            DocumentStatus::Embedding,
            None,
            Some((total, done)),
        )
        .await?;
        ctx.progress(
            json!({ "document_id": doc.id, "chunks_total": total, "chunks_embedded": done }),
        )
        .await;
    }
    let stored = store(state, doc, &extracted, &pieces, &vectors, &embedder.name).await?;
    docs::announce(state, &stored);
    Ok(json!({
        "document_id": doc.id,
        "chunks": total,
        "pages": extracted.pages.len(),
        "chars": extracted.text.chars().count(),
    }))
}

/// Embeds texts, waiting while the embedder's queue is full instead of failing the run.
async fn embed_patiently(
    ctx: &JobContext,
    embedder: &crate::embed::Embedder,
    texts: Vec<String>,
) -> Result<Vec<crate::embed::Embedding>, JobError> {
    let mut wait = Duration::from_millis(50);
    loop {
        match embedder.embed(texts.clone()).await {
            Err(e) if e.code == ErrorCode::ModelBusy => {
                tokio::select! {
                    _ = ctx.cancelled() => return Err(JobError::retriable("stopped")),
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            other => return other.map_err(JobError::from),
        }
    }
}

async fn load(state: &AppState, id: i64) -> AppResult<Option<Document>> {
    let db = &state.db;
    db_run!(db, read, |conn| documents::table
        .find(id)
        .select(Document::as_select())
        .first(conn)
        .await
        .optional()
        .map_err(AppError::from))
}

/// Records where a document stands and tells subscribers.
async fn set_status(
    state: &AppState,
    id: i64,
    status: DocumentStatus,
    error: Option<String>,
    counts: Option<(i32, i32)>,
) -> AppResult<()> {
    let db = &state.db;
    let ts = now();
    let updated: Option<Document> = db_run!(db, write, |conn| {
        let target = documents::table.find(id);
        let result = match counts {
            Some((total, done)) => {
                diesel::update(target)
                    .set((
                        documents::status.eq(status),
                        documents::error.eq(&error),
                        documents::chunks_total.eq(total),
                        documents::chunks_embedded.eq(done),
                        documents::updated_at.eq(ts),
                    ))
                    .returning(Document::as_returning())
                    .get_result(conn)
                    .await
            }
            None => {
                diesel::update(target)
                    .set((
                        documents::status.eq(status),
                        documents::error.eq(&error),
                        documents::updated_at.eq(ts),
                    ))
                    .returning(Document::as_returning())
                    .get_result(conn)
                    .await
            }
        };
        result.optional().map_err(AppError::from)
    })?;
    if let Some(d) = updated {
        docs::announce(state, &d);
    }
    Ok(())
}

/// Replaces a document's chunks and vectors, stores its text and marks it indexed, in one
/// transaction that also bumps the collection's index version.
async fn store(
    state: &AppState,
    doc: &Document,
    extracted: &Extracted,
    pieces: &[super::chunk::Piece],
    vectors: &[Vec<f32>],
    model: &str,
) -> AppResult<Document> {
    let ts = now();
    let rows: Vec<NewChunk> = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| NewChunk {
            document_id: doc.id,
            collection_id: doc.collection_id,
            ordinal: i as i32,
            text: p.text.clone(),
            char_start: p.start as i64,
            char_end: p.end as i64,
            page: p.page,
            created_at: ts,
        })
        .collect();
    if vectors.len() != rows.len() {
        return Err(AppError::internal("a chunk has no vector"));
    }
    let encoded: Vec<Vec<u8>> = vectors.iter().map(|v| encode_vector(v)).collect();
    let text = extracted.text.clone();
    let pages_json = serde_json::to_string(&extracted.pages).unwrap_or_else(|_| "[]".into());
    let page_count = (!extracted.pages.is_empty()).then_some(extracted.pages.len() as i32);
    let total = rows.len() as i32;
    let (doc_id, collection_id) = (doc.id, doc.collection_id);
    let model = model.to_string();
    let db = &state.db;
    db_run!(db, write, |conn| {
        diesel::delete(chunks::table.filter(chunks::document_id.eq(doc_id)))
            .execute(conn)
            .await?;
        // Row by row: diesel's SQLite backend has no multi-row insert through this
        // connection type; inside one transaction the cost is small beside embedding.
        for (row, embedding) in rows.iter().zip(&encoded) {
            let id: i64 = diesel::insert_into(chunks::table)
                .values(row)
                .returning(chunks::id)
                .get_result(conn)
                .await?;
            diesel::insert_into(chunk_vectors::table)
                .values(ChunkVector {
                    chunk_id: id,
                    model: model.clone(),
                    collection_id,
                    embedding: embedding.clone(),
                })
                .execute(conn)
                .await?;
        }
        diesel::delete(document_texts::table.find(doc_id))
            .execute(conn)
            .await?;
        diesel::insert_into(document_texts::table)
            .values((
                document_texts::document_id.eq(doc_id),
                document_texts::text.eq(&text),
                document_texts::pages.eq(&pages_json),
            ))
            .execute(conn)
            .await?;
        bump_version!(conn, collection_id)?;
        diesel::update(documents::table.find(doc_id))
            .set((
                documents::status.eq(DocumentStatus::Indexed),
                documents::error.eq(None::<String>),
                documents::pages.eq(page_count),
                documents::chunks_total.eq(total),
                documents::chunks_embedded.eq(total),
                documents::updated_at.eq(ts),
            ))
            .returning(Document::as_returning())
            .get_result(conn)
            .await
            .map_err(AppError::from)
    })
}

/// Deletes a document's row, text, chunks and vectors in one transaction that bumps its
/// collection's index version (its bytes go with the row).
pub async fn delete_document(state: &AppState, doc: &Document) -> AppResult<()> {
    let (doc_id, collection_id) = (doc.id, doc.collection_id);
    let db = &state.db;
    db_run!(db, write, |conn| {
        diesel::delete(chunks::table.filter(chunks::document_id.eq(doc_id)))
            .execute(conn)
            .await?;
        diesel::delete(documents::table.find(doc_id))
            .execute(conn)
            .await?;
        bump_version!(conn, collection_id)?;
        Ok::<_, AppError>(())
    })?;
    if let Some(job_id) = doc.job_id {
        // A queued or running ingestion has nothing left to do.
        let _ = crate::service::jobs::system::cancel(state, job_id).await;
    }
    Ok(())
}

/// Marks failed the documents whose ingestion will not happen any more: their job ended
/// without indexing them (given up after its attempts, cancelled, deleted). Idempotent; run
/// at start and periodically by every process.
pub async fn repair(state: &AppState) -> AppResult<usize> {
    let pending = [
        DocumentStatus::Queued,
        DocumentStatus::Extracting,
        DocumentStatus::Embedding,
    ];
    let ended = [JobState::Failed, JobState::Cancelled, JobState::Succeeded];
    let db = &state.db;
    let stuck: Vec<(i64, Option<i64>)> = db_run!(db, read, |conn| documents::table
        .left_join(jobs::table.on(documents::job_id.eq(jobs::id.nullable())))
        .filter(documents::status.eq_any(pending))
        .filter(jobs::id.is_null().or(jobs::state.eq_any(ended)))
        .select((documents::id, documents::job_id))
        .load(conn)
        .await
        .map_err(AppError::from))?;
    let mut repaired = 0;
    for (id, _) in stuck {
        set_status(
            state,
            id,
            DocumentStatus::Failed,
            Some("ingestion stopped before the document was indexed".into()),
            None,
        )
        .await?;
        repaired += 1;
    }
    if repaired > 0 {
        tracing::warn!(repaired, "documents whose ingestion stopped marked failed");
    }
    Ok(repaired)
}

/// Collections a caller's search covers are loaded fresh per search; this reads one.
pub(crate) async fn collection(state: &AppState, id: i64) -> AppResult<Option<Collection>> {
    let db = &state.db;
    db_run!(db, read, |conn| collections::table
        .find(id)
        .select(Collection::as_select())
        .first(conn)
        .await
        .optional()
        .map_err(AppError::from))
}

/// Queues a document's ingestion again (a full reindex of the watched folders): a new job
/// and the document back to `queued`, in one transaction.
pub async fn requeue(state: &AppState, caller: &Caller, doc: &Document) -> AppResult<()> {
    let job = crate::service::jobs::internal_job(
        caller,
        format!("ingest {}", doc.filename),
        KIND,
        json!({ "document_id": doc.id }),
        state.config.rag.ingest_attempts as i32,
        state.config.jobs.max_timeout_secs.min(3600) as i32,
    );
    let doc_id = doc.id;
    let db = &state.db;
    let (job, updated): (crate::db::models::Job, Document) = db_run!(db, write, |conn| {
        let job: crate::db::models::Job = diesel::insert_into(jobs::table)
            .values(job.clone())
            .returning(crate::db::models::Job::as_returning())
            .get_result(conn)
            .await?;
        let updated: Document = diesel::update(documents::table.find(doc_id))
            .set((
                documents::job_id.eq(Some(job.id)),
                documents::status.eq(DocumentStatus::Queued),
                documents::error.eq(None::<String>),
                documents::updated_at.eq(now()),
            ))
            .returning(Document::as_returning())
            .get_result(conn)
            .await?;
        Ok::<_, AppError>((job, updated))
    })?;
    crate::service::jobs::created_internal(state, &job);
    docs::announce(state, &updated);
    Ok(())
}

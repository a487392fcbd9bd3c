//! Reindexing: bring a collection's vectors to the configured embedding model and rebuild its
//! FAISS index from the database.
//!
//! When `embed.model_name` changes, a collection's chunks are embedded again under the new
//! name beside the old vectors, batch by batch; searches keep using the collection's
//! `embed_model` (the old vectors) meanwhile. Once every chunk has a new vector, one
//! transaction switches `embed_model`, bumps the index version and deletes the old vectors:
//! searches move to the new model all at once. The `reindex` job kind does this for one
//! collection or all of a user's (schedulable like any job); `hearth reindex` for every
//! collection, as the operator.

use crate::auth::Caller;
use crate::db::enums::CollectionKind;
use crate::db::models::Collection;
use crate::db::schema::{chunk_vectors, chunks, collections};
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

/// The job kind's name.
pub const KIND: &str = "reindex";
/// Chunks embedded per batch while re-embedding.
const BATCH: i64 = 128;

/// What a reindex did to one collection.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Outcome {
    /// Vectors in the index afterwards.
    pub vectors: usize,
    /// Chunks embedded again under the configured model.
    pub reembedded: usize,
}

/// Brings a collection to the configured model (re-embedding what is missing) and rebuilds
/// (`full`) or updates its index. `stop` is polled between batches.
pub async fn collection(
    state: &AppState,
    c: &Collection,
    full: bool,
    stop: &(dyn Fn() -> bool + Sync),
) -> AppResult<Outcome> {
    let model = state.config.embed.model_name.clone();
    let mut reembedded = 0;
    let mut c = c.clone();
    if c.embed_model != model
        || missing(state, c.id, &model, 1)
            .await?
            .is_some_and(|m| !m.is_empty())
    {
        let embedder = state
            .embed
            .get(&state.config.embed, &state.background)
            .await?;
        loop {
            if stop() {
                return Err(AppError::new(ErrorCode::Unavailable, "reindex stopped"));
            }
            let Some(batch) = missing(state, c.id, &model, BATCH).await? else {
                break;
            };
            if batch.is_empty() {
                break;
            }
            let texts: Vec<String> = batch.iter().map(|(_, t)| t.clone()).collect();
            let vectors = embedder.embed(texts).await?;
            let rows: Vec<(i64, Vec<u8>)> = batch
                .iter()
                .zip(&vectors)
                .map(|((id, _), v)| (*id, encode_vector(&v.vector)))
                .collect();
            let (cid, m) = (c.id, model.clone());
            let db = &state.db;
            db_run!(db, write, |conn| {
                for (chunk_id, embedding) in &rows {
                    // A chunk deleted meanwhile has no row to hang a vector on: skip it.
                    let exists: i64 = chunks::table
                        .filter(chunks::id.eq(*chunk_id))
                        .count()
                        .get_result(conn)
                        .await?;
                    if exists == 0 {
                        continue;
                    }
                    diesel::insert_into(chunk_vectors::table)
                        .values((
                            chunk_vectors::chunk_id.eq(*chunk_id),
                            chunk_vectors::model.eq(&m),
                            chunk_vectors::collection_id.eq(cid),
                            chunk_vectors::embedding.eq(embedding),
                        ))
                        .execute(conn)
                        .await?;
                }
                Ok::<_, AppError>(())
            })?;
            reembedded += rows.len();
        }
        c = switch(state, c.id, &model).await?;
    }
    let vectors = if full {
        state
            .rag
            .vectors
            .rebuild(state, c.id, &c.embed_model, c.index_version)
            .await?
    } else {
        state
            .rag
            .vectors
            .sync(state, c.id, &c.embed_model, c.index_version)
            .await?
    };
    Ok(Outcome {
        vectors,
        reembedded,
    })
}

/// Up to `limit` chunks of the collection without a vector of `model`; `None` when the
/// collection is gone.
async fn missing(
    state: &AppState,
    collection_id: i64,
    model: &str,
    limit: i64,
) -> AppResult<Option<Vec<(i64, String)>>> {
    if super::ingest::collection(state, collection_id)
        .await?
        .is_none()
    {
        return Ok(None);
    }
    let db = &state.db;
    let model = model.to_string();
    let rows: Vec<(i64, String)> = db_run!(db, read, |conn| {
        let with_vector = chunk_vectors::table
            .filter(chunk_vectors::collection_id.eq(collection_id))
            .filter(chunk_vectors::model.eq(&model))
            .select(chunk_vectors::chunk_id);
        chunks::table
            .filter(chunks::collection_id.eq(collection_id))
            .filter(diesel::dsl::not(chunks::id.eq_any(with_vector)))
            .order(chunks::id.asc())
            .limit(limit)
            .select((chunks::id, chunks::text))
            .load(conn)
            .await
            .map_err(AppError::from)
    })?;
    Ok(Some(rows))
}

/// The atomic switch: when every chunk has a vector of `model`, the collection searches with
/// it from now on and the other models' vectors go. A chunk still missing one (added by an
/// ingestion of another process with another model) leaves the collection as it was.
async fn switch(state: &AppState, collection_id: i64, model: &str) -> AppResult<Collection> {
    let db = &state.db;
    let model = model.to_string();
    db_run!(db, write, |conn| {
        let with_vector = chunk_vectors::table
            .filter(chunk_vectors::collection_id.eq(collection_id))
            .filter(chunk_vectors::model.eq(&model))
            .select(chunk_vectors::chunk_id);
        let left: i64 = chunks::table
            .filter(chunks::collection_id.eq(collection_id))
            .filter(diesel::dsl::not(chunks::id.eq_any(with_vector)))
            .count()
            .get_result(conn)
            .await?;
        if left > 0 {
            return Err(AppError::new(
                ErrorCode::Conflict,
                format!("{left} chunks still lack a vector of {model}; run the reindex again"),
            ));
        }
        diesel::delete(
            chunk_vectors::table
                .filter(chunk_vectors::collection_id.eq(collection_id))
                .filter(chunk_vectors::model.ne(&model)),
        )
        .execute(conn)
        .await?;
        diesel::update(collections::table.find(collection_id))
            .set((
                collections::embed_model.eq(&model),
                collections::index_version.eq(collections::index_version + 1),
                collections::updated_at.eq(now()),
            ))
            .returning(Collection::as_returning())
            .get_result(conn)
            .await
            .map_err(AppError::from)
    })
}

/// The collections a reindex by `caller` covers: one (which they may change), or all of
/// theirs (every collection for an admin).
pub async fn scope(
    state: &AppState,
    caller: &Caller,
    collection_id: Option<i64>,
) -> AppResult<Vec<Collection>> {
    if let Some(id) = collection_id {
        let c = docs::readable_collection(state, caller, id).await?;
        if !docs::may_write(caller, &c) {
            return Err(AppError::forbidden(
                "only the collection's owner can reindex it",
            ));
        }
        return Ok(vec![c]);
    }
    let uid = caller.user_id();
    let admin = caller.is_admin();
    let db = &state.db;
    db_run!(db, read, |conn| {
        let mut q = collections::table
            .order(collections::id.asc())
            .select(Collection::as_select())
            .into_boxed();
        if !admin {
            q = q.filter(
                collections::owner_id
                    .eq(uid)
                    .and(collections::kind.ne(CollectionKind::Source)),
            );
        }
        q.load(conn).await.map_err(AppError::from)
    })
}

/// Every collection (the operator's `hearth reindex`).
pub async fn all(state: &AppState) -> AppResult<Vec<Collection>> {
    let db = &state.db;
    db_run!(db, read, |conn| collections::table
        .order(collections::id.asc())
        .select(Collection::as_select())
        .load(conn)
        .await
        .map_err(AppError::from))
}

/// The kind.
pub struct Reindex;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    collection_id: Option<i64>,
    #[serde(default)]
    full: bool,
}

#[async_trait::async_trait]
impl JobKind for Reindex {
    fn name(&self) -> &'static str {
        KIND
    }

    async fn check(&self, state: &AppState, caller: &Caller, payload: &Value) -> AppResult<()> {
        let p: Payload = parse_payload(payload)?;
        scope(state, caller, p.collection_id)
            .await
            .map(|_| ())
            .map_err(|e| AppError::validation("payload.collection_id", e.message))
    }

    async fn run(&self, ctx: &JobContext) -> Result<Value, JobError> {
        let p: Payload = parse_payload(&ctx.payload).map_err(|e| JobError::permanent(e.message))?;
        let list = scope(&ctx.state, &ctx.caller, p.collection_id)
            .await
            .map_err(|e| JobError::permanent(e.message))?;
        let (mut vectors, mut reembedded) = (0, 0);
        for (i, c) in list.iter().enumerate() {
            let stop = || ctx.is_cancelled();
            let out = collection(&ctx.state, c, p.full, &stop).await?;
            vectors += out.vectors;
            reembedded += out.reembedded;
            ctx.progress(json!({ "collections_done": i + 1, "collections": list.len() }))
                .await;
        }
        Ok(json!({ "collections": list.len(), "vectors": vectors, "reembedded": reembedded }))
    }
}

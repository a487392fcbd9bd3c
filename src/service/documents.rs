//! Documents and collections as callers see them: upload into a collection, an agent or a
//! chat; list, read, download, delete.
//!
//! Who may read what (every door goes through [`readable_collection`] or
//! [`readable_collections`]):
//! - a named collection, a chat's documents and a user's memory: their owner;
//! - an agent's documents: whoever may see the agent (a public agent shares its knowledge),
//!   changed by its owner;
//! - the watched folders (`source`): every user, changed by admins.

use crate::auth::Caller;
use crate::db::enums::{CollectionKind, DocumentKind, DocumentStatus};
use crate::db::json::JsonText;
use crate::db::models::{Collection, Document, Job, NewCollection, NewDocument};
use crate::db::schema::{collections, document_blobs, document_texts, documents, jobs};
use crate::db_run;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::events::Event;
use crate::rag::{ingest, sniff};
use crate::service::{agents, chats, now, validate};
use crate::state::AppState;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Most collections one user may name.
pub const MAX_COLLECTIONS: i64 = 200;
/// Longest file name kept, in chars.
const MAX_FILENAME_CHARS: usize = 255;
/// Largest metadata, in bytes of JSON.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// Where an upload goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A collection of the caller, by name (created on first use).
    Collection(String),
    /// An agent's documents.
    Agent(i64),
    /// A chat's documents.
    Chat(i64),
    /// The caller's memory (see `service::memory`).
    Memory,
}

/// An upload.
pub struct UploadInput {
    /// The client's file name (cleaned; not used to decide the type).
    pub filename: String,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Where it goes.
    pub target: Target,
    /// Free JSON object kept with the document.
    pub metadata: Option<Value>,
}

/// An upload's document and whether it was already there (same bytes, same collection).
pub struct Uploaded {
    /// The document.
    pub document: Document,
    /// `true`: the same bytes were uploaded to this collection before; nothing new stored.
    pub existing: bool,
}

/// A file name safe to store and to put in a Content-Disposition: its last path component,
/// without control characters or quotes, at most 255 chars.
pub fn clean_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '\\'))
        .take(MAX_FILENAME_CHARS)
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_string();
    if cleaned.is_empty() {
        "document".to_string()
    } else {
        cleaned
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Free metadata as stored: a JSON object (`{}` when absent) of at most
/// [`MAX_METADATA_BYTES`].
pub fn check_metadata(metadata: Option<Value>) -> AppResult<Value> {
    let metadata = metadata.unwrap_or_else(|| Value::Object(Default::default()));
    if !metadata.is_object() {
        return Err(AppError::validation(
            "metadata",
            "metadata must be a JSON object",
        ));
    }
    if metadata.to_string().len() > MAX_METADATA_BYTES {
        return Err(AppError::new(
            ErrorCode::PayloadTooLarge,
            format!("metadata is larger than {MAX_METADATA_BYTES} bytes"),
        )
        .with_details(serde_json::json!({ "field": "metadata" })));
    }
    Ok(metadata)
}

/// Checks an upload's size before anything is read into a document.
pub fn check_size(state: &AppState, len: u64) -> AppResult<()> {
    let max = state.config.rag.max_upload_bytes;
    if len > max {
        return Err(AppError::new(
            ErrorCode::PayloadTooLarge,
            format!("the file is larger than {max} bytes"),
        )
        .with_details(serde_json::json!({ "field": "file" })));
    }
    Ok(())
}

/// Uploads a document: checks it, then stores the row, its bytes and its ingestion job in
/// one transaction (the bytes live in the database, so every server process reads them). The same bytes in the same collection answer
/// the document already there.
pub async fn upload(state: &AppState, caller: &Caller, input: UploadInput) -> AppResult<Uploaded> {
    caller.require_write()?;
    check_size(state, input.bytes.len() as u64)?;
    let metadata = check_metadata(input.metadata)?;
    let filename = clean_filename(&input.filename);
    let sniffed = match sniff::sniff(&input.bytes, &filename) {
        Ok(s) => s,
        // A plugin may read what Hearth cannot (`document_before_ingest`).
        Err(e)
            if e.code == ErrorCode::UnsupportedMediaType
                && crate::service::hooks::reads_documents(state) =>
        {
            sniff::Sniffed {
                kind: DocumentKind::Other,
                mime: "application/octet-stream",
            }
        }
        Err(e) => return Err(e),
    };
    let collection = writable_target(state, caller, &input.target).await?;
    store(
        state,
        caller,
        &collection,
        filename,
        input.bytes,
        sniffed,
        metadata,
        None,
    )
    .await
}

/// Stores a checked document into `collection` (uploads and watched folders).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn store(
    state: &AppState,
    caller: &Caller,
    collection: &Collection,
    filename: String,
    bytes: Vec<u8>,
    sniffed: sniff::Sniffed,
    metadata: Value,
    source_path: Option<String>,
) -> AppResult<Uploaded> {
    let sha = sha256_hex(&bytes);
    if let Some(document) = by_sha(state, collection.id, &sha).await? {
        return Ok(Uploaded {
            document,
            existing: true,
        });
    }
    let file_size = bytes.len() as i64;
    let indexed = sniffed.kind != DocumentKind::Image;
    let ts = now();
    let row = NewDocument {
        owner_id: collection.owner_id,
        collection_id: collection.id,
        filename: filename.clone(),
        kind: sniffed.kind,
        mime_type: sniffed.mime.to_string(),
        file_size,
        sha256: sha.clone(),
        status: if indexed {
            DocumentStatus::Queued
        } else {
            DocumentStatus::Stored
        },
        metadata: JsonText(metadata),
        source_path,
        created_at: ts,
        updated_at: ts,
    };
    let job_row = indexed.then(|| {
        crate::service::jobs::internal_job(
            caller,
            format!("ingest {filename}"),
            ingest::KIND,
            Value::Null,
            state.config.rag.ingest_attempts as i32,
            state.config.jobs.max_timeout_secs.min(3600) as i32,
        )
    });
    let db = &state.db;
    let stored: AppResult<(Document, Option<Job>)> = db_run!(db, write, |conn| {
        let mut doc: Document = diesel::insert_into(documents::table)
            .values(&row)
            .returning(Document::as_returning())
            .get_result(conn)
            .await?;
        diesel::insert_into(document_blobs::table)
            .values((
                document_blobs::document_id.eq(doc.id),
                document_blobs::bytes.eq(&bytes),
            ))
            .execute(conn)
            .await?;
        let mut job = None;
        if let Some(mut j) = job_row.clone() {
            j.payload = JsonText(serde_json::json!({ "document_id": doc.id }));
            let inserted: Job = diesel::insert_into(jobs::table)
                .values(j)
                .returning(Job::as_returning())
                .get_result(conn)
                .await?;
            doc = diesel::update(documents::table.find(doc.id))
                .set(documents::job_id.eq(Some(inserted.id)))
                .returning(Document::as_returning())
                .get_result(conn)
                .await?;
            job = Some(inserted);
        }
        Ok::<_, AppError>((doc, job))
    });
    let (document, job) = match stored {
        Ok(s) => s,
        Err(e) => {
            // Two uploads of the same bytes at once: the other one won.
            if e.code == ErrorCode::Conflict {
                if let Some(document) = by_sha(state, collection.id, &sha).await? {
                    return Ok(Uploaded {
                        document,
                        existing: true,
                    });
                }
            }
            return Err(e);
        }
    };
    if let Some(job) = &job {
        crate::service::jobs::created_internal(state, job);
    }
    announce(state, &document);
    Ok(Uploaded {
        document,
        existing: false,
    })
}

/// Tells subscribers where a document stands.
pub fn announce(state: &AppState, d: &Document) {
    state.events.publish(Event::DocumentChanged {
        user_id: d.owner_id,
        document_id: d.id,
        collection_id: d.collection_id,
        status: d.status.as_str().to_string(),
        chunks_total: d.chunks_total,
        chunks_embedded: d.chunks_embedded,
    });
}

async fn by_sha(state: &AppState, collection_id: i64, sha: &str) -> AppResult<Option<Document>> {
    let db = &state.db;
    let sha = sha.to_string();
    db_run!(db, read, |conn| documents::table
        .filter(documents::collection_id.eq(collection_id))
        .filter(documents::sha256.eq(&sha))
        .select(Document::as_select())
        .first(conn)
        .await
        .optional()
        .map_err(AppError::from))
}

/// The collection an upload goes to, created on first use; the caller must be allowed to
/// add to it.
pub async fn writable_target(
    state: &AppState,
    caller: &Caller,
    target: &Target,
) -> AppResult<Collection> {
    caller.require_write()?;
    match target {
        Target::Collection(name) => {
            let name = validate::required("collection", name, validate::MAX_NAME_CHARS)?;
            ensure(
                state,
                caller.user_id(),
                CollectionKind::Named,
                name,
                None,
                None,
            )
            .await
        }
        Target::Agent(id) => {
            let agent = agents::get(state, Some(caller), *id).await?;
            if agent.owner_id != caller.user_id() && !caller.is_admin() {
                return Err(AppError::forbidden(
                    "only the agent's owner can add documents to it",
                ));
            }
            ensure(
                state,
                agent.owner_id,
                CollectionKind::Agent,
                format!("agent:{}", agent.id),
                Some(agent.id),
                None,
            )
            .await
        }
        Target::Chat(id) => {
            let chat = chats::get(state, caller, *id).await?;
            ensure(
                state,
                chat.user_id,
                CollectionKind::Chat,
                format!("chat:{}", chat.id),
                None,
                Some(chat.id),
            )
            .await
        }
        Target::Memory => {
            ensure(
                state,
                caller.user_id(),
                CollectionKind::Memory,
                MEMORY.to_string(),
                None,
                None,
            )
            .await
        }
    }
}

/// Name of each user's memory collection.
pub const MEMORY: &str = "memory";

/// The collection of (owner, kind, name), created when missing.
pub(crate) async fn ensure(
    state: &AppState,
    owner_id: i64,
    kind: CollectionKind,
    name: String,
    agent_id: Option<i64>,
    chat_id: Option<i64>,
) -> AppResult<Collection> {
    if let Some(c) = find(state, owner_id, kind, &name).await? {
        return Ok(c);
    }
    let ts = now();
    let row = NewCollection {
        owner_id,
        kind,
        name: name.clone(),
        description: String::new(),
        agent_id,
        chat_id,
        embed_model: state.config.embed.model_name.clone(),
        created_at: ts,
        updated_at: ts,
    };
    let db = &state.db;
    let created: AppResult<Collection> = db_run!(db, write, |conn| {
        if kind == CollectionKind::Named {
            let owned: i64 = collections::table
                .filter(collections::owner_id.eq(owner_id))
                .filter(collections::kind.eq(CollectionKind::Named))
                .count()
                .get_result(conn)
                .await?;
            if owned >= MAX_COLLECTIONS {
                return Err(AppError::new(
                    ErrorCode::QuotaExceeded,
                    format!("a user may name at most {MAX_COLLECTIONS} collections"),
                ));
            }
        }
        diesel::insert_into(collections::table)
            .values(&row)
            .returning(Collection::as_returning())
            .get_result(conn)
            .await
            .map_err(AppError::from)
    });
    match created {
        Ok(c) => Ok(c),
        // Created by a concurrent upload.
        Err(e) if e.code == ErrorCode::Conflict => {
            find(state, owner_id, kind, &name).await?.ok_or(e)
        }
        Err(e) => Err(e),
    }
}

async fn find(
    state: &AppState,
    owner_id: i64,
    kind: CollectionKind,
    name: &str,
) -> AppResult<Option<Collection>> {
    let db = &state.db;
    let name = name.to_string();
    db_run!(db, read, |conn| collections::table
        .filter(collections::owner_id.eq(owner_id))
        .filter(collections::kind.eq(kind))
        .filter(collections::name.eq(&name))
        .select(Collection::as_select())
        .first(conn)
        .await
        .optional()
        .map_err(AppError::from))
}

/// Whether `caller` may read a collection's documents.
pub async fn may_read(state: &AppState, caller: &Caller, c: &Collection) -> AppResult<bool> {
    Ok(match c.kind {
        CollectionKind::Source => true,
        CollectionKind::Agent => match c.agent_id {
            Some(agent_id) => agents::get(state, Some(caller), agent_id).await.is_ok(),
            None => false,
        },
        CollectionKind::Named | CollectionKind::Chat | CollectionKind::Memory => {
            c.owner_id == caller.user_id()
        }
    })
}

/// Whether `caller` may add to or delete from a collection.
pub fn may_write(caller: &Caller, c: &Collection) -> bool {
    match c.kind {
        CollectionKind::Source => caller.is_admin(),
        CollectionKind::Agent => c.owner_id == caller.user_id() || caller.is_admin(),
        CollectionKind::Named | CollectionKind::Chat | CollectionKind::Memory => {
            c.owner_id == caller.user_id()
        }
    }
}

/// A collection by id that the caller may read (404 otherwise).
pub async fn readable_collection(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> AppResult<Collection> {
    let db = &state.db;
    let c: Option<Collection> = db_run!(db, read, |conn| collections::table
        .find(id)
        .select(Collection::as_select())
        .first(conn)
        .await
        .optional()
        .map_err(AppError::from))?;
    match c {
        Some(c) if may_read(state, caller, &c).await? => Ok(c),
        _ => Err(AppError::not_found("collection")),
    }
}

/// The caller's named collections.
pub async fn list_collections(state: &AppState, caller: &Caller) -> AppResult<Vec<Collection>> {
    let uid = caller.user_id();
    let db = &state.db;
    db_run!(db, read, |conn| collections::table
        .filter(collections::owner_id.eq(uid))
        .filter(collections::kind.eq(CollectionKind::Named))
        .order(collections::name.asc())
        .select(Collection::as_select())
        .load(conn)
        .await
        .map_err(AppError::from))
}

/// A document the caller may read (404 otherwise).
pub async fn get(state: &AppState, caller: &Caller, id: i64) -> AppResult<Document> {
    readable(state, caller, id).await.map(|(d, _)| d)
}

/// A document the caller may read and its collection (404 otherwise).
async fn readable(state: &AppState, caller: &Caller, id: i64) -> AppResult<(Document, Collection)> {
    let db = &state.db;
    let found: Option<(Document, Collection)> = db_run!(db, read, |conn| documents::table
        .inner_join(collections::table)
        .filter(documents::id.eq(id))
        .select((Document::as_select(), Collection::as_select()))
        .first(conn)
        .await
        .optional()
        .map_err(AppError::from))?;
    match found {
        Some((d, c)) if may_read(state, caller, &c).await? => Ok((d, c)),
        _ => Err(AppError::not_found("document")),
    }
}

/// Documents of a collection the caller may read, newest first.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    collection_id: i64,
    limit: i64,
    before_id: Option<i64>,
) -> AppResult<Vec<Document>> {
    let c = readable_collection(state, caller, collection_id).await?;
    let db = &state.db;
    let limit = limit.clamp(1, 500);
    db_run!(db, read, |conn| {
        let mut q = documents::table
            .filter(documents::collection_id.eq(c.id))
            .order(documents::id.desc())
            .limit(limit)
            .select(Document::as_select())
            .into_boxed();
        if let Some(b) = before_id {
            q = q.filter(documents::id.lt(b));
        }
        q.load(conn).await.map_err(AppError::from)
    })
}

/// The collection of a target, when it exists and the caller may read it (`None`: nothing
/// uploaded there yet).
pub async fn target_collection(
    state: &AppState,
    caller: &Caller,
    target: &Target,
) -> AppResult<Option<Collection>> {
    let (owner, kind, name) = match target {
        Target::Collection(name) => (
            caller.user_id(),
            CollectionKind::Named,
            name.trim().to_string(),
        ),
        Target::Agent(id) => {
            let agent = agents::get(state, Some(caller), *id).await?;
            (
                agent.owner_id,
                CollectionKind::Agent,
                format!("agent:{}", agent.id),
            )
        }
        Target::Chat(id) => {
            let chat = chats::get(state, caller, *id).await?;
            (
                chat.user_id,
                CollectionKind::Chat,
                format!("chat:{}", chat.id),
            )
        }
        Target::Memory => (caller.user_id(), CollectionKind::Memory, MEMORY.to_string()),
    };
    find(state, owner, kind, &name).await
}

/// A document's bytes, for download.
pub async fn bytes(state: &AppState, caller: &Caller, id: i64) -> AppResult<(Document, Vec<u8>)> {
    let d = get(state, caller, id).await?;
    let bytes = stored_bytes(state, d.id).await?;
    Ok((d, bytes))
}

/// The stored bytes of a document (no access check: for ingestion).
pub(crate) async fn stored_bytes(state: &AppState, id: i64) -> AppResult<Vec<u8>> {
    let db = &state.db;
    let bytes: Option<Vec<u8>> = db_run!(db, read, |conn| document_blobs::table
        .find(id)
        .select(document_blobs::bytes)
        .first(conn)
        .await
        .optional()
        .map_err(AppError::from))?;
    bytes.ok_or_else(|| AppError::not_found("document"))
}

/// A document's extracted text (empty until it is indexed).
pub async fn text(state: &AppState, caller: &Caller, id: i64) -> AppResult<String> {
    let d = get(state, caller, id).await?;
    let db = &state.db;
    let text: Option<String> = db_run!(db, read, |conn| document_texts::table
        .find(d.id)
        .select(document_texts::text)
        .first(conn)
        .await
        .optional()
        .map_err(AppError::from))?;
    Ok(text.unwrap_or_default())
}

/// Deletes a document with its bytes, text, chunks and vectors (one transaction).
pub async fn delete(state: &AppState, caller: &Caller, id: i64) -> AppResult<()> {
    caller.require_write()?;
    let (doc, collection) = readable(state, caller, id).await?;
    if !may_write(caller, &collection) {
        return Err(AppError::forbidden(
            "only the collection's owner can delete its documents",
        ));
    }
    ingest::delete_document(state, &doc).await?;
    state.events.publish(Event::DocumentDeleted {
        user_id: doc.owner_id,
        document_id: doc.id,
        collection_id: doc.collection_id,
    });
    Ok(())
}

/// Longest search query, in chars.
pub const MAX_QUERY_CHARS: usize = 2000;

/// Searches what the caller may read: one target's documents, or (no target) every
/// collection of theirs and the watched folders.
pub async fn search(
    state: &AppState,
    caller: &Caller,
    target: Option<&Target>,
    text: &str,
    top_k: Option<i64>,
    threshold: Option<f64>,
    mode: crate::rag::search::Mode,
) -> AppResult<Vec<crate::rag::search::Hit>> {
    let text = validate::required("query", text, MAX_QUERY_CHARS)?;
    let max = state.config.rag.max_top_k as i64;
    let top_k = top_k.unwrap_or(state.config.rag.default_top_k as i64);
    if !(1..=max).contains(&top_k) {
        return Err(AppError::validation(
            "topK",
            format!("topK must be between 1 and {max}"),
        ));
    }
    if let Some(t) = threshold {
        if !(-1.0..=1.0).contains(&t) {
            return Err(AppError::validation(
                "threshold",
                "threshold is a cosine similarity, between -1 and 1",
            ));
        }
    }
    let collections = match target {
        Some(t) => target_collection(state, caller, t)
            .await?
            .into_iter()
            .collect(),
        None => searchable(state, caller).await?,
    };
    let query = crate::rag::search::Query {
        text,
        top_k: top_k as usize,
        threshold: threshold.map(|t| t as f32),
        mode,
    };
    crate::rag::search::search(state, &collections, &query).await
}

/// Every collection a search without a target covers: the caller's (memory aside) and the
/// watched folders.
async fn searchable(state: &AppState, caller: &Caller) -> AppResult<Vec<Collection>> {
    let uid = caller.user_id();
    let db = &state.db;
    db_run!(db, read, |conn| collections::table
        .filter(
            collections::owner_id
                .eq(uid)
                .and(collections::kind.ne(CollectionKind::Memory))
                .or(collections::kind.eq(CollectionKind::Source)),
        )
        .select(Collection::as_select())
        .load(conn)
        .await
        .map_err(AppError::from))
}

/// Passages given to the model per chat turn.
const TURN_SOURCES: usize = 4;
/// Least cosine similarity of a passage given to the model (unrelated passages only
/// distract it).
const TURN_THRESHOLD: f32 = 0.2;

/// Where and how a turn retrieves its passages.
#[derive(Debug, Clone, Default)]
pub struct Retrieve {
    /// Documents to answer from besides the chat's and its agent's.
    pub target: Option<Target>,
    /// Passages given (default 4).
    pub top_k: Option<usize>,
    /// Least cosine similarity (default 0.2).
    pub threshold: Option<f32>,
}

/// The passages a chat turn answers from: retrieved from the chat's documents, its agent's
/// and `extra` (an `ask` target), for the user's message. Retrieval never fails a turn: when
/// it cannot run (no embedder), the turn goes on without sources and the cause is logged.
pub async fn turn_sources(
    state: &AppState,
    caller: &Caller,
    chat: &crate::db::models::Chat,
    agent: Option<&crate::db::models::Agent>,
    retrieve: Option<&Retrieve>,
    content: &str,
) -> Vec<crate::rag::search::SourceRef> {
    let mut targets = vec![Target::Chat(chat.id)];
    if let Some(a) = agent {
        targets.push(Target::Agent(a.id));
        // An agent that learns answers from what it remembered of this user.
        if a.learn_from_interaction {
            targets.push(Target::Memory);
        }
    }
    if let Some(t) = retrieve.and_then(|r| r.target.as_ref()) {
        targets.push(t.clone());
    }
    let mut collections = Vec::new();
    for t in &targets {
        match target_collection(state, caller, t).await {
            Ok(Some(c)) if c.index_version > 0 => collections.push(c),
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e.message, "a turn's documents are not readable"),
        }
    }
    if collections.is_empty() {
        return Vec::new();
    }
    let query = crate::rag::search::Query {
        text: content.chars().take(MAX_QUERY_CHARS).collect(),
        top_k: retrieve.and_then(|r| r.top_k).unwrap_or(TURN_SOURCES),
        threshold: Some(retrieve.and_then(|r| r.threshold).unwrap_or(TURN_THRESHOLD)),
        mode: crate::rag::search::Mode::Hybrid,
    };
    match crate::rag::search::search(state, &collections, &query).await {
        Ok(hits) => hits
            .iter()
            .enumerate()
            .map(|(i, h)| crate::rag::search::SourceRef::from_hit(i as i32 + 1, h))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e.message, "retrieval for a chat turn failed; answering without sources");
            Vec::new()
        }
    }
}

/// The system message that hands numbered sources to the model.
pub fn sources_prompt(sources: &[crate::rag::search::SourceRef]) -> String {
    let mut out = String::from(
        "Answer from the numbered sources below when they are relevant, and cite them as [1], [2]. \
         If they do not contain the answer, say so.\n",
    );
    for s in sources {
        let page = s.page.map(|p| format!(", page {p}")).unwrap_or_default();
        out.push_str(&format!("\n[{}] ({}{page})\n{}\n", s.n, s.filename, s.text));
    }
    out
}

/// Asks a question of documents: a turn in `chat_id` (or a new chat titled after the
/// question) that answers from the passages `retrieve` finds besides the chat's and its
/// agent's.
pub async fn ask(
    state: &AppState,
    caller: &Caller,
    query: &str,
    retrieve: Retrieve,
    chat_id: Option<i64>,
    model: Option<String>,
) -> AppResult<crate::service::turns::TurnStart> {
    caller.require_write()?;
    let query = validate::required("query", query, MAX_QUERY_CHARS)?;
    let max = state.config.rag.max_top_k;
    if retrieve.top_k.is_some_and(|k| k == 0 || k > max) {
        return Err(AppError::validation(
            "top_k",
            format!("top_k must be between 1 and {max}"),
        ));
    }
    if retrieve
        .threshold
        .is_some_and(|t| !(-1.0..=1.0).contains(&t))
    {
        return Err(AppError::validation(
            "threshold",
            "threshold is a cosine similarity, between -1 and 1",
        ));
    }
    if let Some(t) = &retrieve.target {
        // A target the caller cannot read is a 404 here, not a silent answer without it.
        target_collection(state, caller, t).await?;
    }
    let chat_id = match chat_id {
        Some(id) => chats::get(state, caller, id).await?.id,
        None => {
            chats::create(
                state,
                caller,
                chats::ChatInput {
                    title: Some(crate::service::turns::auto_title(&query)),
                    model: model.clone(),
                    ..Default::default()
                },
            )
            .await?
            .id
        }
    };
    crate::service::turns::send(
        state,
        caller,
        chat_id,
        crate::service::turns::SendInput {
            content: query,
            model,
            retrieve: Some(retrieve),
            ..Default::default()
        },
    )
    .await
}

/// The caller's documents among `ids` (a progress view of what the caller queued).
pub async fn owned(state: &AppState, caller: &Caller, ids: &[i64]) -> AppResult<Vec<Document>> {
    let db = &state.db;
    let owner = caller.user_id();
    let mut out = Vec::with_capacity(ids.len());
    // Slices keep the statement under every backend's bound-parameter limit.
    for slice in ids.chunks(500) {
        let slice = slice.to_vec();
        let rows: Vec<Document> = db_run!(db, read, |conn| documents::table
            .filter(documents::id.eq_any(&slice))
            .filter(documents::owner_id.eq(owner))
            .select(Document::as_select())
            .load(conn)
            .await
            .map_err(AppError::from))?;
        out.extend(rows);
    }
    Ok(out)
}

/// Documents in a collection.
pub async fn count(state: &AppState, collection_id: i64) -> AppResult<i64> {
    let db = &state.db;
    db_run!(db, read, |conn| documents::table
        .filter(documents::collection_id.eq(collection_id))
        .count()
        .get_result(conn)
        .await
        .map_err(AppError::from))
}

/// Waits until a document leaves the ingestion states (or `limit` passes) and returns it as
/// it is then. Changes of the document wake the wait; a lost event costs a second.
pub async fn wait_settled(
    state: &AppState,
    caller: &Caller,
    id: i64,
    limit: std::time::Duration,
) -> AppResult<Document> {
    let mut events = state.events.subscribe();
    let deadline = std::time::Instant::now() + limit;
    loop {
        let d = get(state, caller, id).await?;
        let busy = matches!(
            d.status,
            DocumentStatus::Queued | DocumentStatus::Extracting | DocumentStatus::Embedding
        );
        if !busy || std::time::Instant::now() >= deadline {
            return Ok(d);
        }
        let wait = tokio::time::sleep(std::time::Duration::from_secs(1));
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => break,
                e = events.recv() => match e {
                    Ok(Event::DocumentChanged { document_id, .. }) if document_id == id => break,
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
            }
        }
    }
}

//! Documents and retrieval over GraphQL: uploads (the multipart request spec's `Upload`),
//! collections, documents, `search` and the `documentEvents` subscription.

use super::{parse_id, require_caller, to_utc};
use crate::db::enums::{CollectionKind, DocumentKind, DocumentStatus};
use crate::db::models::{Collection, Document};
use crate::error::{AppError, ErrorCode};
use crate::events::Event;
use crate::rag::search::{Hit, Mode};
use crate::service::documents::{self as docs, Target, UploadInput};
use crate::service::streams;
use crate::state::AppState;
use async_graphql::{
    ComplexObject, Context, Enum, InputObject, Json, Object, Result, SimpleObject, Subscription,
    Upload, ID,
};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use serde_json::Value;
use std::io::Read;
use tokio::sync::broadcast::error::RecvError;

/// What a document is (decided from its content).
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "DocumentKind", name = "DocumentKind")]
pub enum DocumentKindGql {
    /// PDF.
    Pdf,
    /// Word.
    Docx,
    /// Plain text.
    Text,
    /// Markdown.
    Markdown,
    /// HTML.
    Html,
    /// Source code.
    Code,
    /// JSON, YAML, CSV.
    Data,
    /// Stored, not indexed.
    Image,
    /// A type only a plugin reads (`document_before_ingest`).
    Other,
}

/// Where a document is on its way to the index.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "DocumentStatus", name = "DocumentStatus")]
pub enum DocumentStatusGql {
    /// Waiting for an ingestion worker.
    Queued,
    /// Text being extracted and chunked.
    Extracting,
    /// Chunks being embedded.
    Embedding,
    /// Searchable.
    Indexed,
    /// Ingestion failed (`error` says why).
    Failed,
    /// Kept, not indexed (images).
    Stored,
}

/// What a collection holds.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "CollectionKind", name = "CollectionKind")]
pub enum CollectionKindGql {
    /// Named by its owner.
    Named,
    /// An agent's documents.
    Agent,
    /// A chat's documents.
    Chat,
    /// The server's watched folders.
    Source,
    /// A user's memory.
    Memory,
}

/// How search ranks.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum SearchMode {
    /// Vector and keyword rankings fused by reciprocal rank fusion.
    #[default]
    Hybrid,
    /// Cosine similarity of embeddings.
    Vector,
    /// Full-text ranking.
    Keyword,
}

impl From<SearchMode> for Mode {
    fn from(m: SearchMode) -> Self {
        match m {
            SearchMode::Hybrid => Mode::Hybrid,
            SearchMode::Vector => Mode::Vector,
            SearchMode::Keyword => Mode::Keyword,
        }
    }
}

/// Where documents go or are read from: exactly one of the three.
#[derive(InputObject, Default)]
pub struct DocumentTarget {
    /// One of the caller's collections, by name (created on first upload).
    pub collection: Option<String>,
    /// An agent's documents.
    pub agent_id: Option<ID>,
    /// A chat's documents.
    pub chat_id: Option<ID>,
}

impl DocumentTarget {
    fn into_target(self) -> Result<Target> {
        match (self.collection, self.agent_id, self.chat_id) {
            (Some(c), None, None) => Ok(Target::Collection(c)),
            (None, Some(a), None) => Ok(Target::Agent(parse_id(&a)?)),
            (None, None, Some(c)) => Ok(Target::Chat(parse_id(&c)?)),
            _ => Err(AppError::validation(
                "target",
                "give exactly one of collection, agentId, chatId",
            )
            .into()),
        }
    }
}

/// A set of documents searched together.
#[derive(SimpleObject)]
#[graphql(name = "Collection")]
pub struct CollectionObject {
    /// Id.
    pub id: ID,
    /// Name (`agent:<id>`, `chat:<id>` for implicit ones).
    pub name: String,
    /// What it holds.
    pub kind: CollectionKindGql,
    /// The embedding model its search uses.
    pub embed_model: String,
    /// Created.
    pub created_at: DateTime<Utc>,
}

impl From<Collection> for CollectionObject {
    fn from(c: Collection) -> Self {
        Self {
            id: ID(c.id.to_string()),
            name: c.name,
            kind: c.kind.into(),
            embed_model: c.embed_model,
            created_at: to_utc(c.created_at),
        }
    }
}

/// An uploaded file and its ingestion.
#[derive(SimpleObject)]
#[graphql(name = "Document", complex)]
pub struct DocumentObject {
    /// Id.
    pub id: ID,
    /// The collection it is searched in.
    pub collection_id: ID,
    /// File name, as uploaded (cleaned).
    pub filename: String,
    /// What it is.
    pub kind: DocumentKindGql,
    /// Served as.
    pub mime_type: String,
    /// Bytes.
    pub file_size: i64,
    /// Of the bytes.
    pub sha256: String,
    /// Pages (PDF).
    pub pages: Option<i32>,
    /// Ingestion progress.
    pub status: DocumentStatusGql,
    /// Why ingestion failed.
    pub error: Option<String>,
    /// Chunks of its text.
    pub chunks_total: i32,
    /// Chunks embedded so far.
    pub chunks_embedded: i32,
    /// The uploader's metadata.
    pub metadata: Json<Value>,
    /// Its path in a watched folder.
    pub source_path: Option<String>,
    /// Where to download the bytes (with the same credentials).
    pub download_url: String,
    /// Uploaded.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<Document> for DocumentObject {
    fn from(d: Document) -> Self {
        Self {
            id: ID(d.id.to_string()),
            collection_id: ID(d.collection_id.to_string()),
            download_url: format!("/api/documents/{}", d.id),
            filename: d.filename,
            kind: d.kind.into(),
            mime_type: d.mime_type,
            file_size: d.file_size,
            sha256: d.sha256,
            pages: d.pages,
            status: d.status.into(),
            error: d.error,
            chunks_total: d.chunks_total,
            chunks_embedded: d.chunks_embedded,
            metadata: Json(d.metadata.0),
            source_path: d.source_path,
            created_at: to_utc(d.created_at),
            updated_at: to_utc(d.updated_at),
        }
    }
}

#[ComplexObject]
impl DocumentObject {
    /// The text extraction produced (chunk spans are char offsets into it); empty until
    /// the document is indexed.
    async fn text(&self, ctx: &Context<'_>) -> Result<String> {
        let caller = require_caller(ctx)?;
        let state = ctx.data::<AppState>()?;
        Ok(docs::text(state, caller, parse_id(&self.id)?).await?)
    }
}

/// A char range of a document's extracted text.
#[derive(SimpleObject)]
pub struct Span {
    /// First char (Unicode scalar values).
    pub start: i64,
    /// One past the last char.
    pub end: i64,
}

/// A passage found by a search.
#[derive(SimpleObject)]
pub struct SearchHit {
    /// The passage: exactly the document's text over `span`.
    pub text: String,
    /// The mode's score (higher is better): RRF, cosine similarity or full-text rank.
    pub score: f64,
    /// Cosine similarity of query and passage, when the query was embedded.
    pub similarity: Option<f64>,
    /// The chunk.
    pub chunk_id: ID,
    /// Its position in the document.
    pub chunk_index: i32,
    /// Where it is in the document's text.
    pub span: Span,
    /// The page it starts on (PDF).
    pub page: Option<i32>,
    /// The document's sha256.
    pub sha256: String,
    /// The document.
    pub document: DocumentObject,
}

impl From<Hit> for SearchHit {
    fn from(h: Hit) -> Self {
        Self {
            text: h.chunk.text,
            score: h.score,
            similarity: h.similarity.map(f64::from),
            chunk_id: ID(h.chunk.id.to_string()),
            chunk_index: h.chunk.ordinal,
            span: Span {
                start: h.chunk.char_start,
                end: h.chunk.char_end,
            },
            page: h.chunk.page,
            sha256: h.document.sha256.clone(),
            document: h.document.into(),
        }
    }
}

/// A passage an answer was given.
#[derive(SimpleObject)]
pub struct MessageSource {
    /// Its number, as the answer cites it (`[1]`).
    pub n: i32,
    /// Whether the answer cites it.
    pub cited: bool,
    /// The document.
    pub document_id: ID,
    /// Its file name.
    pub filename: String,
    /// The chunk.
    pub chunk_id: ID,
    /// The passage.
    pub text: String,
    /// Where it is in the document's text.
    pub span: Span,
    /// PDF page.
    pub page: Option<i32>,
    /// Search score.
    pub score: f64,
    /// The document's sha256.
    pub sha256: String,
}

impl MessageSource {
    /// A stored source as shown with the answer `content`.
    pub fn new(s: &crate::rag::search::SourceRef, content: &str) -> Self {
        Self {
            n: s.n,
            cited: s.cited_in(content),
            document_id: ID(s.document_id.to_string()),
            filename: s.filename.clone(),
            chunk_id: ID(s.chunk_id.to_string()),
            text: s.text.clone(),
            span: Span {
                start: s.start,
                end: s.end,
            },
            page: s.page,
            score: s.score,
            sha256: s.sha256.clone(),
        }
    }
}

/// An answer on its way: follow it with `chatEvents(chatId)`; its sources are known now.
#[derive(SimpleObject)]
pub struct AskResult {
    /// The chat it is written in.
    pub chat_id: ID,
    /// The user's message.
    pub user_message_id: ID,
    /// The answer being written.
    pub message_id: ID,
    /// The passages it was given.
    pub sources: Vec<MessageSource>,
}

/// Something the caller asked Hearth to remember (or an exchange an agent learned).
#[derive(SimpleObject)]
pub struct MemoryEntry {
    /// The entry (a document of the caller's memory).
    pub id: ID,
    /// What was remembered (for search results: the matching passage).
    pub content: String,
    /// Free JSON given with it.
    pub metadata: Json<Value>,
    /// Search score (search results only).
    pub score: Option<f64>,
    /// Whether it is searchable yet.
    pub indexed: bool,
    /// Remembered at.
    pub created_at: DateTime<Utc>,
}

impl From<crate::service::memory::Entry> for MemoryEntry {
    fn from(e: crate::service::memory::Entry) -> Self {
        Self {
            id: ID(e.document.id.to_string()),
            indexed: crate::service::memory::is_indexed(&e),
            content: e.content,
            metadata: Json(e.document.metadata.0.clone()),
            score: e.score,
            created_at: to_utc(e.document.created_at),
        }
    }
}

/// Document queries.
#[derive(Default)]
pub struct DocumentQuery;

#[Object]
impl DocumentQuery {
    /// The caller's named collections.
    async fn collections(&self, ctx: &Context<'_>) -> Result<Vec<CollectionObject>> {
        let caller = require_caller(ctx)?;
        let state = ctx.data::<AppState>()?;
        Ok(docs::list_collections(state, caller)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// The documents of a collection, an agent or a chat, newest first.
    async fn documents(
        &self,
        ctx: &Context<'_>,
        target: DocumentTarget,
        #[graphql(default = 50)] first: i64,
        before: Option<ID>,
    ) -> Result<Vec<DocumentObject>> {
        let caller = require_caller(ctx)?;
        let state = ctx.data::<AppState>()?;
        let target = target.into_target()?;
        let Some(c) = docs::target_collection(state, caller, &target).await? else {
            return Ok(Vec::new());
        };
        let before = before.as_ref().map(parse_id).transpose()?;
        Ok(docs::list(state, caller, c.id, first, before)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// The caller's memory entries closest to `query`.
    async fn memory_search(
        &self,
        ctx: &Context<'_>,
        query: String,
        #[graphql(default = 5)] limit: i64,
    ) -> Result<Vec<MemoryEntry>> {
        let caller = require_caller(ctx)?;
        let state = ctx.data::<AppState>()?;
        Ok(crate::service::memory::search(state, caller, &query, limit)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// One document the caller may read.
    async fn document(&self, ctx: &Context<'_>, id: ID) -> Result<DocumentObject> {
        let caller = require_caller(ctx)?;
        let state = ctx.data::<AppState>()?;
        Ok(docs::get(state, caller, parse_id(&id)?).await?.into())
    }

    /// Passages for `query` in one target's documents, or (no target) in everything the
    /// caller may read. `threshold` is the least cosine similarity kept; `mode` defaults
    /// to `HYBRID`.
    async fn search(
        &self,
        ctx: &Context<'_>,
        query: String,
        target: Option<DocumentTarget>,
        top_k: Option<i64>,
        threshold: Option<f64>,
        mode: Option<SearchMode>,
    ) -> Result<Vec<SearchHit>> {
        let mode = mode.unwrap_or_default();
        let caller = require_caller(ctx)?;
        let state = ctx.data::<AppState>()?;
        let target = target.map(DocumentTarget::into_target).transpose()?;
        Ok(docs::search(
            state,
            caller,
            target.as_ref(),
            &query,
            top_k,
            threshold,
            mode.into(),
        )
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
    }
}

/// Document mutations.
#[derive(Default)]
pub struct DocumentMutation;

#[Object]
impl DocumentMutation {
    /// Uploads a file into a collection, an agent or a chat; its ingestion starts in the
    /// background (`documentEvents`). The same bytes in the same place answer the document
    /// already there.
    async fn upload_document(
        &self,
        ctx: &Context<'_>,
        file: Upload,
        target: DocumentTarget,
        metadata: Option<Json<Value>>,
    ) -> Result<DocumentObject> {
        let caller = require_caller(ctx)?;
        let state = ctx.data::<AppState>()?;
        let target = target.into_target()?;
        let upload = file.value(ctx)?;
        let max = state.config.rag.max_upload_bytes;
        let size = upload.size().unwrap_or(u64::MAX);
        docs::check_size(state, size)?;
        let filename = upload.filename.clone();
        let bytes = upload_bytes(upload, max).await?;
        let uploaded = docs::upload(
            state,
            caller,
            UploadInput {
                filename,
                bytes,
                target,
                metadata: metadata.map(|m| m.0),
            },
        )
        .await?;
        Ok(uploaded.document.into())
    }

    /// Rebuilds the vector indexes of one collection the caller may change, or of all their
    /// collections (every collection for an admin), from the database, re-embedding chunks
    /// whose vectors are of another model than the configured one. Runs as a `reindex` job,
    /// returned here (follow it with `jobEvents`).
    async fn reindex(
        &self,
        ctx: &Context<'_>,
        collection_id: Option<ID>,
        #[graphql(default = true)] full: bool,
    ) -> Result<super::jobs::JobObject> {
        let caller = require_caller(ctx)?;
        let state = ctx.data::<AppState>()?;
        let collection_id = collection_id.as_ref().map(parse_id).transpose()?;
        // Someone else's collection is a 404 here, as on every door (the job's own check
        // would word it as a payload error).
        crate::rag::reindex::scope(state, caller, collection_id).await?;
        let job = crate::service::jobs::create(
            state,
            caller,
            crate::service::jobs::JobInput {
                name: match collection_id {
                    Some(id) => format!("reindex collection {id}"),
                    None => "reindex".to_string(),
                },
                kind: crate::rag::reindex::KIND.to_string(),
                payload: serde_json::json!({ "collection_id": collection_id, "full": full }),
                schedule: crate::jobs::schedule::ScheduleInput {
                    once: Some(Value::String(Utc::now().to_rfc3339())),
                    ..Default::default()
                },
                max_attempts: Some(1),
                timeout_secs: None,
                priority: None,
                paused: None,
            },
        )
        .await?;
        Ok(job.into())
    }

    /// Answers a question from documents: retrieves passages of `target` (or of the chat's
    /// and its agent's documents), gives them to the model numbered, and streams the answer
    /// as a turn of `chatId` (a new chat titled after the question when absent). The answer
    /// message keeps its sources.
    async fn ask(
        &self,
        ctx: &Context<'_>,
        query: String,
        target: Option<DocumentTarget>,
        chat_id: Option<ID>,
        model: Option<String>,
    ) -> Result<AskResult> {
        let caller = require_caller(ctx)?;
        let state = ctx.data::<AppState>()?;
        let target = target.map(DocumentTarget::into_target).transpose()?;
        let start = docs::ask(
            state,
            caller,
            &query,
            docs::Retrieve {
                target,
                ..Default::default()
            },
            chat_id.as_ref().map(parse_id).transpose()?,
            model,
        )
        .await?;
        Ok(AskResult {
            chat_id: ID(start.chat.id.to_string()),
            user_message_id: ID(start.user_message.id.to_string()),
            message_id: ID(start.message_id.to_string()),
            sources: start
                .sources
                .iter()
                .map(|s| MessageSource::new(s, ""))
                .collect(),
        })
    }

    /// Remembers something for the caller (searchable with `memorySearch`, and by agents
    /// that learn from interaction in the caller's chats).
    async fn remember(
        &self,
        ctx: &Context<'_>,
        content: String,
        metadata: Option<Json<Value>>,
    ) -> Result<MemoryEntry> {
        let caller = require_caller(ctx)?;
        let state = ctx.data::<AppState>()?;
        Ok(
            crate::service::memory::remember(state, caller, &content, metadata.map(|m| m.0))
                .await?
                .into(),
        )
    }

    /// Deletes a document with its chunks and vectors.
    async fn delete_document(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let caller = require_caller(ctx)?;
        let state = ctx.data::<AppState>()?;
        docs::delete(state, caller, parse_id(&id)?).await?;
        Ok(true)
    }
}

/// A change to a document.
#[derive(SimpleObject)]
pub struct DocumentEvent {
    /// The document.
    pub document_id: ID,
    /// Its collection.
    pub collection_id: ID,
    /// Its status now (`null` once deleted).
    pub status: Option<DocumentStatusGql>,
    /// Chunks of its text.
    pub chunks_total: i32,
    /// Chunks embedded so far.
    pub chunks_embedded: i32,
    /// Whether it was deleted.
    pub deleted: bool,
}

/// Document subscriptions.
#[derive(Default)]
pub struct DocumentSubscription;

#[Subscription]
impl DocumentSubscription {
    /// Ingestion progress and deletions of the caller's documents (optionally one
    /// collection's).
    async fn document_events(
        &self,
        ctx: &Context<'_>,
        collection_id: Option<ID>,
    ) -> Result<impl Stream<Item = DocumentEvent>> {
        let caller = require_caller(ctx)?.clone();
        let state = ctx.data::<AppState>()?.clone();
        let only = collection_id.as_ref().map(parse_id).transpose()?;
        if let Some(id) = only {
            docs::readable_collection(&state, &caller, id).await?;
        }
        let mut rx = state.events.subscribe();
        Ok(async_stream::stream! {
            let end = streams::stream_end(&state, &caller, None);
            tokio::pin!(end);
            loop {
                let event = tokio::select! {
                    _ = &mut end => break,
                    e = rx.recv() => match e {
                        Ok(e) => e,
                        Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => break,
                    },
                };
                let out = match event {
                    Event::DocumentChanged { user_id, document_id, collection_id, status, chunks_total, chunks_embedded } => {
                        (user_id, DocumentEvent {
                            document_id: ID(document_id.to_string()),
                            collection_id: ID(collection_id.to_string()),
                            status: DocumentStatus::parse(&status).map(Into::into),
                            chunks_total,
                            chunks_embedded,
                            deleted: false,
                        }, collection_id)
                    }
                    Event::DocumentDeleted { user_id, document_id, collection_id } => {
                        (user_id, DocumentEvent {
                            document_id: ID(document_id.to_string()),
                            collection_id: ID(collection_id.to_string()),
                            status: None,
                            chunks_total: 0,
                            chunks_embedded: 0,
                            deleted: true,
                        }, collection_id)
                    }
                    _ => continue,
                };
                let (user_id, ev, cid) = out;
                if user_id != caller.user_id() || only.is_some_and(|o| o != cid) {
                    continue;
                }
                yield ev;
            }
        })
    }
}

/// An upload's bytes, read off the async runtime (the file sits in a temporary file), at most
/// `max + 1` of them so the caller can tell an oversize one.
pub(super) async fn upload_bytes(
    upload: async_graphql::UploadValue,
    max: u64,
) -> Result<Vec<u8>, AppError> {
    tokio::task::spawn_blocking(move || {
        let mut bytes = Vec::new();
        upload
            .into_read()
            .take(max + 1)
            .read_to_end(&mut bytes)
            .map(|_| bytes)
    })
    .await
    .map_err(|e| AppError::internal(format!("reading an upload: {e}")))?
    .map_err(|e| AppError::new(ErrorCode::BadRequest, format!("reading the upload: {e}")))
}

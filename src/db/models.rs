//! Row types for the tables the services use. Timestamps are naive UTC (`Timestamp` columns
//! exist on both backends); transports render them as RFC 3339 with `Z`.

use super::enums::{
    CollectionKind, DocumentKind, DocumentStatus, JobState, MessageRole, MessageStatus, ModelKind,
    PluginState, Provider, Role, RunCause, RunOutcome,
};
use super::json::JsonText;
use super::schema::*;
use chrono::NaiveDateTime;
use diesel::prelude::*;

/// A person who can log in.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users)]
pub struct User {
    /// Primary key.
    pub id: i64,
    /// Unique; one of the two login identifiers.
    pub email: String,
    /// Unique; the other login identifier (seed 001 calls it `trigramme`).
    pub username: String,
    /// Display name (seed 002 `name`).
    pub name: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// What the user may do.
    pub role: Role,
    /// Inactive users cannot log in and their tokens stop working.
    pub is_active: bool,
    /// Profile picture URL.
    pub avatar_url: Option<String>,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Last profile change.
    pub updated_at: NaiveDateTime,
}

impl User {
    /// Whether the user has the admin role.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// Columns for creating a user.
#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    /// See [`User::email`].
    pub email: &'a str,
    /// See [`User::username`].
    pub username: &'a str,
    /// See [`User::name`].
    pub name: &'a str,
    /// See [`User::password_hash`].
    pub password_hash: &'a str,
    /// See [`User::role`].
    pub role: Role,
    /// See [`User::is_active`].
    pub is_active: bool,
    /// See [`User::avatar_url`].
    pub avatar_url: Option<&'a str>,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Same as created_at at first.
    pub updated_at: NaiveDateTime,
}

/// A login session: one refresh-token family, with its CSRF token for cookie clients.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct Session {
    /// UUID, also the `sid` claim of its tokens and seed 001's `X-Session-ID`.
    pub id: String,
    /// Owner.
    pub user_id: i64,
    /// sha256 of the only refresh token of this family still valid.
    pub refresh_hash: String,
    /// CSRF token for cookie-authenticated requests (seed 003).
    pub csrf_token: Option<String>,
    /// Client's User-Agent at login.
    pub user_agent: Option<String>,
    /// Client's address at login.
    pub ip_address: Option<String>,
    /// Which door opened it: `api`, `cookie`, `graphql`.
    pub client: String,
    /// Login time.
    pub created_at: NaiveDateTime,
    /// Last authenticated request (updated at most once a minute).
    pub last_activity: NaiveDateTime,
    /// When the refresh token family stops being accepted.
    pub expires_at: NaiveDateTime,
    /// Set by logout, terminate, reuse detection or user deactivation.
    pub revoked_at: Option<NaiveDateTime>,
}

/// A machine credential. Only the sha256 of the secret is stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
pub struct ApiKey {
    /// Primary key.
    pub id: i64,
    /// Owner; the key acts as this user.
    pub user_id: i64,
    /// Label.
    pub name: String,
    /// First characters of the secret, to recognise it in lists.
    pub prefix: String,
    /// sha256 hex of the secret.
    pub key_hash: String,
    /// `read`, `write` and/or `admin`.
    pub permissions: JsonText<Vec<String>>,
    /// Requests per minute the owner asked for (seed 002), informational for now.
    pub rate_limit: Option<i32>,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Refused after this instant.
    pub expires_at: Option<NaiveDateTime>,
    /// Last successful use.
    pub last_used_at: Option<NaiveDateTime>,
    /// Refused once set.
    pub revoked_at: Option<NaiveDateTime>,
}

/// Columns for creating an API key.
#[derive(Debug, Insertable)]
#[diesel(table_name = api_keys)]
pub struct NewApiKey<'a> {
    /// Owner.
    pub user_id: i64,
    /// Label.
    pub name: &'a str,
    /// Display prefix.
    pub prefix: &'a str,
    /// sha256 hex of the secret.
    pub key_hash: &'a str,
    /// See [`ApiKey::permissions`].
    pub permissions: JsonText<Vec<String>>,
    /// Informational rate limit.
    pub rate_limit: Option<i32>,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Optional expiry.
    pub expires_at: Option<NaiveDateTime>,
}

/// An assistant persona: prompt, model and sampling settings.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = agents)]
pub struct Agent {
    /// Primary key.
    pub id: i64,
    /// Creator; only they (or an admin) may change it.
    pub owner_id: i64,
    /// URL name, unique per owner; seed 002 addresses agents by it (`agent_type`).
    pub slug: String,
    /// Display name.
    pub name: String,
    /// One-line description (seed 002).
    pub description: String,
    /// Prepended to every chat with this agent.
    pub system_prompt: String,
    /// Preferred model key; `None` means the configured default.
    pub model: Option<String>,
    /// Sampling temperature.
    pub temperature: f64,
    /// Cap on generated tokens; `None` means the model's default.
    pub max_tokens: Option<i32>,
    /// Picture URL.
    pub avatar_url: Option<String>,
    /// Keep a memory of past exchanges.
    pub learn_from_interaction: bool,
    /// Visible (read-only) to every user.
    pub is_public: bool,
    /// Capability names (seed 002).
    pub capabilities: JsonText<Vec<String>>,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Last change.
    pub updated_at: NaiveDateTime,
    /// Plugin tools it may call in its turns.
    pub tools: JsonText<Vec<String>>,
}

/// Columns for creating an agent.
#[derive(Debug, Insertable)]
#[diesel(table_name = agents)]
pub struct NewAgent {
    /// Owner.
    pub owner_id: i64,
    /// Unique per owner.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
    /// System prompt.
    pub system_prompt: String,
    /// Model key.
    pub model: Option<String>,
    /// Temperature.
    pub temperature: f64,
    /// Token cap.
    pub max_tokens: Option<i32>,
    /// Picture.
    pub avatar_url: Option<String>,
    /// Memory switch.
    pub learn_from_interaction: bool,
    /// Visibility.
    pub is_public: bool,
    /// Capability names.
    pub capabilities: JsonText<Vec<String>>,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Same as created_at at first.
    pub updated_at: NaiveDateTime,
    /// Plugin tool names.
    pub tools: JsonText<Vec<String>>,
}

/// Partial update of an agent; `None` leaves a column unchanged.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = agents)]
pub struct AgentChanges {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New system prompt.
    pub system_prompt: Option<String>,
    /// New model (`Some(None)` clears it).
    pub model: Option<Option<String>>,
    /// New temperature.
    pub temperature: Option<f64>,
    /// New token cap (`Some(None)` clears it).
    pub max_tokens: Option<Option<i32>>,
    /// New picture (`Some(None)` clears it).
    pub avatar_url: Option<Option<String>>,
    /// New memory switch.
    pub learn_from_interaction: Option<bool>,
    /// New visibility.
    pub is_public: Option<bool>,
    /// New tool list.
    pub tools: Option<JsonText<Vec<String>>>,
    /// Always set on update.
    pub updated_at: Option<NaiveDateTime>,
}

/// A workspace grouping chats (seed 002 `/projects`).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = projects)]
pub struct Project {
    /// Primary key.
    pub id: i64,
    /// Owner.
    pub owner_id: i64,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Seed 002 `type` (`rag`, `general`, …).
    pub kind: String,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Last change.
    pub updated_at: NaiveDateTime,
}

/// Columns for creating a project.
#[derive(Debug, Insertable)]
#[diesel(table_name = projects)]
pub struct NewProject<'a> {
    /// Owner.
    pub owner_id: i64,
    /// Name.
    pub name: &'a str,
    /// Description.
    pub description: &'a str,
    /// Type.
    pub kind: &'a str,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Same at first.
    pub updated_at: NaiveDateTime,
}

/// A conversation of one user, optionally with an agent.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = chats)]
pub struct Chat {
    /// Primary key.
    pub id: i64,
    /// Owner; chats are private to them.
    pub user_id: i64,
    /// Agent, if any (its prompt and model apply).
    pub agent_id: Option<i64>,
    /// Project, if any.
    pub project_id: Option<i64>,
    /// Title (automatic after the first exchange unless renamed).
    pub title: String,
    /// Model override for agent-less chats.
    pub model: Option<String>,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Last change (rename or new message).
    pub updated_at: NaiveDateTime,
    /// Time of the newest message.
    pub last_message_at: Option<NaiveDateTime>,
}

/// Columns for creating a chat.
#[derive(Debug, Insertable)]
#[diesel(table_name = chats)]
pub struct NewChat {
    /// Owner.
    pub user_id: i64,
    /// Agent.
    pub agent_id: Option<i64>,
    /// Project.
    pub project_id: Option<i64>,
    /// Title.
    pub title: String,
    /// Model.
    pub model: Option<String>,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Same at first.
    pub updated_at: NaiveDateTime,
}

/// One message of a chat.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable, QueryableByName)]
#[diesel(table_name = messages)]
pub struct Message {
    /// Primary key; increases with time inside a chat.
    pub id: i64,
    /// Chat.
    pub chat_id: i64,
    /// Who wrote it.
    pub role: MessageRole,
    /// Text.
    pub content: String,
    /// Model that wrote an assistant message.
    pub model: Option<String>,
    /// Where it is in its life.
    pub status: MessageStatus,
    /// Prompt tokens of the turn.
    pub prompt_tokens: Option<i32>,
    /// Generated tokens.
    pub completion_tokens: Option<i32>,
    /// Wall time of the turn.
    pub latency_ms: Option<i64>,
    /// JSON of tool calls made during the turn.
    pub tool_calls: Option<String>,
    /// Attached document ids.
    pub files: JsonText<Vec<i64>>,
    /// Passages retrieved for this answer, numbered as it cites them.
    pub sources: JsonText<Vec<crate::rag::search::SourceRef>>,
    /// Creation time.
    pub created_at: NaiveDateTime,
}

/// Columns for creating a message.
#[derive(Debug, Insertable)]
#[diesel(table_name = messages)]
pub struct NewMessage<'a> {
    /// Chat.
    pub chat_id: i64,
    /// Role.
    pub role: MessageRole,
    /// Text.
    pub content: &'a str,
    /// Model.
    pub model: Option<&'a str>,
    /// Status.
    pub status: MessageStatus,
    /// Attached document ids.
    pub files: JsonText<Vec<i64>>,
    /// See [`Message::sources`].
    pub sources: JsonText<Vec<crate::rag::search::SourceRef>>,
    /// Creation time.
    pub created_at: NaiveDateTime,
}

/// A registered model: the embedded GGUF, discovered files, or a remote OpenAI-compatible one.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = models)]
pub struct ModelRow {
    /// Primary key.
    pub id: i64,
    /// Unique key clients pass as `model` (never `auto`).
    pub key: String,
    /// Display name.
    pub name: String,
    /// Which backend serves it.
    pub provider: Provider,
    /// Where it runs (seed 000 `type`).
    pub kind: ModelKind,
    /// Architecture family (llama, qwen2, …).
    pub family: Option<String>,
    /// GGUF file of a local model.
    pub path: Option<String>,
    /// Base URL of an OpenAI-compatible server, up to `/v1`.
    pub base_url: Option<String>,
    /// Bearer key for the remote server; never returned by any API.
    pub api_key: Option<String>,
    /// File size of a local model.
    pub size_bytes: Option<i64>,
    /// Version from the GGUF metadata or the registrant.
    pub version: Option<String>,
    /// Context window in tokens; history is trimmed to it.
    pub context_length: i32,
    /// Price per 1000 prompt tokens, for cost reporting.
    pub cost_per_1k_input: f64,
    /// Price per 1000 generated tokens.
    pub cost_per_1k_output: f64,
    /// Generations allowed at once.
    pub max_concurrent: i32,
    /// Disabled models are listed but never routed to.
    pub enabled: bool,
    /// Registration time.
    pub created_at: NaiveDateTime,
    /// Last change.
    pub updated_at: NaiveDateTime,
    /// One line for model lists (seed 004).
    pub description: String,
    /// Model id sent upstream (defaults to `key`).
    pub remote_name: Option<String>,
}

/// Columns for registering a model.
#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = models)]
pub struct NewModel {
    /// Key.
    pub key: String,
    /// Name.
    pub name: String,
    /// Provider.
    pub provider: Provider,
    /// Kind.
    pub kind: ModelKind,
    /// Family.
    pub family: Option<String>,
    /// Path.
    pub path: Option<String>,
    /// Base URL.
    pub base_url: Option<String>,
    /// Key for the upstream.
    pub api_key: Option<String>,
    /// Size.
    pub size_bytes: Option<i64>,
    /// Version.
    pub version: Option<String>,
    /// Context window.
    pub context_length: i32,
    /// Input price.
    pub cost_per_1k_input: f64,
    /// Output price.
    pub cost_per_1k_output: f64,
    /// Concurrency.
    pub max_concurrent: i32,
    /// Routable.
    pub enabled: bool,
    /// Description.
    pub description: String,
    /// Upstream id.
    pub remote_name: Option<String>,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Last change.
    pub updated_at: NaiveDateTime,
}

/// Columns for remembering one exchange of an agent that learns from interaction.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = memory_entries)]
pub struct NewMemoryEntry {
    /// Whose memory.
    pub user_id: i64,
    /// The agent that learns.
    pub agent_id: Option<i64>,
    /// The exchange as text.
    pub content: String,
    /// JSON: chat and message ids.
    pub metadata: String,
    /// Filled by the retrieval pipeline.
    pub embedding: Option<Vec<u8>>,
    /// Time.
    pub created_at: NaiveDateTime,
}

/// A job: what to run (kind and payload), when (schedule), with which policy, and where it
/// stands. See `crate::jobs` for the life of a row.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable, AsChangeset)]
#[diesel(table_name = jobs, treat_none_as_null = true)]
pub struct Job {
    /// Primary key.
    pub id: i64,
    /// The user it runs as.
    pub owner_id: i64,
    /// The API key that created it: the job runs only while that key is live.
    pub api_key_id: Option<i64>,
    /// Display name.
    pub name: String,
    /// The job kind's name (`agent_prompt`, …).
    pub kind: String,
    /// The kind's input.
    pub payload: JsonText<serde_json::Value>,
    /// When it runs.
    pub schedule: JsonText<crate::jobs::schedule::Schedule>,
    /// Higher runs first among due jobs.
    pub priority: i32,
    /// Attempts per occurrence (1: no retry).
    pub max_attempts: i32,
    /// A run still going after this long is ended as `timed_out`.
    pub timeout_secs: i32,
    /// What users see (derived from the columns below).
    pub state: JobState,
    /// Keeps its schedule but does not run.
    pub paused: bool,
    /// A one-off job's final outcome.
    pub outcome: Option<JobState>,
    /// Start of an interval schedule's ticks.
    pub anchor_at: NaiveDateTime,
    /// The schedule's next occurrence.
    pub next_run_at: Option<NaiveDateTime>,
    /// A pending retry.
    pub retry_at: Option<NaiveDateTime>,
    /// A run-now request waits.
    pub run_now: bool,
    /// When a worker should claim it; `None`: not claimable.
    pub due_at: Option<NaiveDateTime>,
    /// Attempts made in the current series.
    pub attempt: i32,
    /// What started the current series.
    pub series: Option<RunCause>,
    /// The running run should stop.
    pub cancel_requested: bool,
    /// The run in progress.
    pub current_run_id: Option<i64>,
    /// The latest run.
    pub last_run_id: Option<i64>,
    /// The worker holding the lease.
    pub locked_by: Option<String>,
    /// The lease ends then unless renewed.
    pub lease_until: Option<NaiveDateTime>,
    /// The running run's latest progress report (JSON).
    pub progress: Option<String>,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Last change.
    pub updated_at: NaiveDateTime,
}

/// Columns for creating a job (the state columns are derived before insert).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = jobs)]
pub struct NewJob {
    /// See [`Job::owner_id`].
    pub owner_id: i64,
    /// See [`Job::api_key_id`].
    pub api_key_id: Option<i64>,
    /// See [`Job::name`].
    pub name: String,
    /// See [`Job::kind`].
    pub kind: String,
    /// See [`Job::payload`].
    pub payload: JsonText<serde_json::Value>,
    /// See [`Job::schedule`].
    pub schedule: JsonText<crate::jobs::schedule::Schedule>,
    /// See [`Job::priority`].
    pub priority: i32,
    /// See [`Job::max_attempts`].
    pub max_attempts: i32,
    /// See [`Job::timeout_secs`].
    pub timeout_secs: i32,
    /// See [`Job::state`].
    pub state: JobState,
    /// See [`Job::paused`].
    pub paused: bool,
    /// See [`Job::anchor_at`].
    pub anchor_at: NaiveDateTime,
    /// See [`Job::next_run_at`].
    pub next_run_at: Option<NaiveDateTime>,
    /// See [`Job::due_at`].
    pub due_at: Option<NaiveDateTime>,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Same as creation.
    pub updated_at: NaiveDateTime,
}

/// One run of a job.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = job_runs)]
pub struct JobRun {
    /// Primary key.
    pub id: i64,
    /// The job.
    pub job_id: i64,
    /// 1 for the first attempt of a series.
    pub attempt: i32,
    /// Why it started.
    pub cause: RunCause,
    /// How it ended (`running` until then).
    pub outcome: RunOutcome,
    /// The worker that ran it.
    pub worker: String,
    /// The kind's output (JSON).
    pub output: Option<String>,
    /// What went wrong.
    pub error: Option<String>,
    /// Claim time.
    pub started_at: NaiveDateTime,
    /// End time.
    pub finished_at: Option<NaiveDateTime>,
}

/// Columns for starting a run.
#[derive(Debug, Insertable)]
#[diesel(table_name = job_runs)]
pub struct NewJobRun {
    /// See [`JobRun::job_id`].
    pub job_id: i64,
    /// See [`JobRun::attempt`].
    pub attempt: i32,
    /// See [`JobRun::cause`].
    pub cause: RunCause,
    /// `running`.
    pub outcome: RunOutcome,
    /// See [`JobRun::worker`].
    pub worker: String,
    /// See [`JobRun::started_at`].
    pub started_at: NaiveDateTime,
}

/// A set of documents searched together; the unit of a vector index.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = collections)]
pub struct Collection {
    /// Primary key.
    pub id: i64,
    /// Who may read it (and, for `source`, the admin who set it up).
    pub owner_id: i64,
    /// Named, an agent's, a chat's, the watched folders or memory.
    pub kind: CollectionKind,
    /// Unique per owner and kind (`agent:<id>` for implicit ones).
    pub name: String,
    /// Free text.
    pub description: String,
    /// The agent of an `agent` collection.
    pub agent_id: Option<i64>,
    /// The chat of a `chat` collection.
    pub chat_id: Option<i64>,
    /// The model whose vectors searches use.
    pub embed_model: String,
    /// Bumped with every change of its vectors (indexes catch up to it).
    pub index_version: i64,
    /// Time.
    pub created_at: NaiveDateTime,
    /// Time.
    pub updated_at: NaiveDateTime,
}

/// Columns for a new collection.
#[derive(Debug, Insertable)]
#[diesel(table_name = collections)]
pub struct NewCollection {
    /// See [`Collection::owner_id`].
    pub owner_id: i64,
    /// See [`Collection::kind`].
    pub kind: CollectionKind,
    /// See [`Collection::name`].
    pub name: String,
    /// See [`Collection::description`].
    pub description: String,
    /// See [`Collection::agent_id`].
    pub agent_id: Option<i64>,
    /// See [`Collection::chat_id`].
    pub chat_id: Option<i64>,
    /// See [`Collection::embed_model`].
    pub embed_model: String,
    /// Time.
    pub created_at: NaiveDateTime,
    /// Time.
    pub updated_at: NaiveDateTime,
}

/// An uploaded file and where its ingestion stands.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = documents)]
pub struct Document {
    /// Primary key.
    pub id: i64,
    /// The uploader (the collection's owner).
    pub owner_id: i64,
    /// Where it is searched.
    pub collection_id: i64,
    /// The client's file name, cleaned.
    pub filename: String,
    /// What the content is.
    pub kind: DocumentKind,
    /// Served as Content-Type.
    pub mime_type: String,
    /// Bytes.
    pub file_size: i64,
    /// Of the bytes; a second upload of the same bytes into the collection answers this one.
    pub sha256: String,
    /// Pages of a PDF.
    pub pages: Option<i32>,
    /// Ingestion progress.
    pub status: DocumentStatus,
    /// Why ingestion failed.
    pub error: Option<String>,
    /// Chunks of its text.
    pub chunks_total: i32,
    /// Chunks embedded so far.
    pub chunks_embedded: i32,
    /// Free JSON from the uploader.
    pub metadata: JsonText<serde_json::Value>,
    /// A watched folder's file: its path.
    pub source_path: Option<String>,
    /// The job that ingests it.
    pub job_id: Option<i64>,
    /// Time.
    pub created_at: NaiveDateTime,
    /// Time.
    pub updated_at: NaiveDateTime,
}

/// Columns for a new document.
#[derive(Debug, Insertable)]
#[diesel(table_name = documents)]
pub struct NewDocument {
    /// See [`Document::owner_id`].
    pub owner_id: i64,
    /// See [`Document::collection_id`].
    pub collection_id: i64,
    /// See [`Document::filename`].
    pub filename: String,
    /// See [`Document::kind`].
    pub kind: DocumentKind,
    /// See [`Document::mime_type`].
    pub mime_type: String,
    /// See [`Document::file_size`].
    pub file_size: i64,
    /// See [`Document::sha256`].
    pub sha256: String,
    /// See [`Document::status`].
    pub status: DocumentStatus,
    /// See [`Document::metadata`].
    pub metadata: JsonText<serde_json::Value>,
    /// See [`Document::source_path`].
    pub source_path: Option<String>,
    /// Time.
    pub created_at: NaiveDateTime,
    /// Time.
    pub updated_at: NaiveDateTime,
}

/// A passage of a document's extracted text: the unit of search.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = chunks)]
pub struct Chunk {
    /// Primary key; the id in the vector index.
    pub id: i64,
    /// Its document.
    pub document_id: i64,
    /// Its document's collection.
    pub collection_id: i64,
    /// Position in the document (0-based).
    pub ordinal: i32,
    /// The passage.
    pub text: String,
    /// Start, in characters of the extracted text.
    pub char_start: i64,
    /// End (exclusive), in characters of the extracted text.
    pub char_end: i64,
    /// PDF page (1-based) where it starts.
    pub page: Option<i32>,
    /// Time.
    pub created_at: NaiveDateTime,
}

/// Columns for a new chunk (many per statement: NULL, never DEFAULT, for `None`).
#[derive(Debug, Insertable)]
#[diesel(table_name = chunks, treat_none_as_default_value = false)]
pub struct NewChunk {
    /// See [`Chunk::document_id`].
    pub document_id: i64,
    /// See [`Chunk::collection_id`].
    pub collection_id: i64,
    /// See [`Chunk::ordinal`].
    pub ordinal: i32,
    /// See [`Chunk::text`].
    pub text: String,
    /// See [`Chunk::char_start`].
    pub char_start: i64,
    /// See [`Chunk::char_end`].
    pub char_end: i64,
    /// See [`Chunk::page`].
    pub page: Option<i32>,
    /// Time.
    pub created_at: NaiveDateTime,
}

/// A chunk's vector under one model.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = chunk_vectors, treat_none_as_default_value = false)]
pub struct ChunkVector {
    /// The chunk.
    pub chunk_id: i64,
    /// The embedding model.
    pub model: String,
    /// The chunk's collection (indexes load by collection).
    pub collection_id: i64,
    /// Little-endian f32, unit length.
    pub embedding: Vec<u8>,
}

/// An installed plugin: its validated manifest and where it stands.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = plugins)]
pub struct PluginRow {
    /// Primary key (stable across upgrades, so key-value data follows the plugin).
    pub id: i64,
    /// The manifest's name.
    pub name: String,
    /// The installed version (semver).
    pub version: String,
    /// The manifest's description.
    pub description: String,
    /// The admin who installed or last upgraded it.
    pub installed_by: Option<i64>,
    /// What every process converges to.
    pub state: PluginState,
    /// Why it failed.
    pub failure: Option<String>,
    /// The validated manifest as JSON.
    pub manifest: String,
    /// SHA-256 of the module.
    pub sha256: String,
    /// The trusted key that signed the bundle.
    pub signed_by: Option<String>,
    /// Every user may call it.
    pub granted_to_all: bool,
    /// Time.
    pub created_at: NaiveDateTime,
    /// Time.
    pub updated_at: NaiveDateTime,
}

/// A new plugin row.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = plugins, treat_none_as_default_value = false)]
pub struct NewPlugin {
    /// See [`PluginRow::name`].
    pub name: String,
    /// See [`PluginRow::version`].
    pub version: String,
    /// See [`PluginRow::description`].
    pub description: String,
    /// See [`PluginRow::installed_by`].
    pub installed_by: Option<i64>,
    /// See [`PluginRow::state`].
    pub state: PluginState,
    /// See [`PluginRow::failure`].
    pub failure: Option<String>,
    /// See [`PluginRow::manifest`].
    pub manifest: String,
    /// See [`PluginRow::sha256`].
    pub sha256: String,
    /// The module's bytes (not part of [`PluginRow`]: read only to run it).
    pub module: Vec<u8>,
    /// See [`PluginRow::signed_by`].
    pub signed_by: Option<String>,
    /// See [`PluginRow::granted_to_all`].
    pub granted_to_all: bool,
    /// Time.
    pub created_at: NaiveDateTime,
    /// Time.
    pub updated_at: NaiveDateTime,
}

/// A stored sample of a process's system figures.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = monitoring_samples)]
pub struct MonitoringSample {
    /// Primary key.
    pub id: i64,
    /// The process: `<host>-<pid>`.
    pub node: String,
    /// When.
    pub taken_at: NaiveDateTime,
    /// Percent of the machine's CPUs in use.
    pub cpu: f64,
    /// Percent of the machine's memory in use.
    pub memory: f64,
    /// The process's resident bytes.
    pub process_memory: i64,
    /// Requests answered since the process's previous sample.
    pub requests: i64,
}

/// Columns for a new sample.
#[derive(Debug, Insertable)]
#[diesel(table_name = monitoring_samples)]
pub struct NewMonitoringSample {
    /// The process.
    pub node: String,
    /// When.
    pub taken_at: NaiveDateTime,
    /// Percent of CPUs in use.
    pub cpu: f64,
    /// Percent of memory in use.
    pub memory: f64,
    /// Resident bytes of the process.
    pub process_memory: i64,
    /// Requests since the previous sample.
    pub requests: i64,
}

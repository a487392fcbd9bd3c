//! Shared application state: configuration, database, keys, event bus. One `Arc`, so the
//! clone axum's `State` extractor makes for every middleware and handler is one refcount.

use crate::auth::tokens::JwtKeys;
use crate::config::Config;
use crate::db::models::{Session, User};
use crate::db::Db;
use crate::events::EventBus;
use std::sync::Arc;
use std::time::Instant;

/// Everything a request handler or service needs (fields of [`StateInner`], reached through
/// `Deref`).
#[derive(Clone)]
pub struct AppState(Arc<StateInner>);

impl AppState {
    /// Shares `inner`.
    pub fn new(inner: StateInner) -> Self {
        Self(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = StateInner;
    fn deref(&self) -> &StateInner {
        &self.0
    }
}

/// The state's contents.
pub struct StateInner {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// Pooled database (either backend).
    pub db: Db,
    /// JWT signing keys.
    pub jwt: Arc<JwtKeys>,
    /// In-process events for subscriptions.
    pub events: EventBus,
    /// Session checks (session + user rows by session id), valid while no write happened.
    pub session_cache: Arc<crate::cache::GenerationCache<String, (Session, User)>>,
    /// Whole GraphQL query responses by caller and request body, valid while no write happened.
    pub response_cache: Arc<crate::cache::GenerationCache<(String, u64), Arc<CachedResponse>>>,
    /// The one-time token that claims an instance without an admin from another machine.
    pub setup: Arc<crate::auth::setup::SetupToken>,
    /// Request budgets (rate limits) per door and principal.
    pub limits: Arc<crate::limits::RateLimits>,
    /// Model providers, loaded models, per-model gates.
    pub llm: Arc<crate::llm::LlmHub>,
    /// Live chat turns of this process.
    pub turns: Arc<crate::events::turns::TurnHub>,
    /// The embedding model, loaded on first use.
    pub embed: Arc<crate::embed::EmbedHub>,
    /// Documents and retrieval: pdfium, the chunker, the vector indexes.
    pub rag: Arc<crate::rag::RagHub>,
    /// The plugin host: this process's running plugins.
    pub plugins: Arc<crate::plugins::PluginHost>,
    /// Job kinds and this process's job worker.
    pub jobs: Arc<crate::jobs::JobsHub>,
    /// Server start, for uptime.
    pub started_at: Instant,
    /// What operators watch: request count, system figures.
    pub ops: Arc<crate::ops::OpsHub>,
    /// Every background task of the process, and the signal that stops them.
    pub background: crate::tasks::Background,
    /// The exclusive lock on a SQLite database, held while any clone of the state lives.
    pub instance: Option<Arc<crate::instance::InstanceLock>>,
}

/// A cached GraphQL answer and the exact request body it answers (hash collisions are checked).
pub struct CachedResponse {
    /// The request body.
    pub request: bytes::Bytes,
    /// The serialized response.
    pub response: bytes::Bytes,
    /// Its root fields, spent from the GraphQL budget again on every hit.
    pub fields: u32,
}

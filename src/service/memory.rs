//! Memory: what a user (or an agent that learns from its conversations) asks Hearth to
//! remember. Each entry is a short document of the user's `memory` collection, so it is
//! chunked, embedded, indexed and searched like any document; only its owner reads it.
//! Agents with `learn_from_interaction` remember each finished exchange and retrieve from the
//! memory of the user they talk to in later turns.

use crate::auth::Caller;
use crate::db::enums::DocumentStatus;
use crate::db::models::Document;
use crate::error::{AppError, AppResult};
use crate::rag::search::Mode;
use crate::rag::sniff;
use crate::service::documents::{self as docs, Target};
use crate::service::validate;
use crate::state::AppState;
use serde_json::Value;
use std::time::Duration;

/// Longest entry, in chars.
pub const MAX_CONTENT_CHARS: usize = 20_000;
/// How long `remember` waits for the entry to be searchable.
const INDEX_WAIT: Duration = Duration::from_secs(30);

/// A remembered entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The document holding it.
    pub document: Document,
    /// What was remembered (the matching passage, for search results).
    pub content: String,
    /// Search score, for search results.
    pub score: Option<f64>,
}

/// Remembers `content` for the caller and waits (briefly) until it is searchable.
pub async fn remember(
    state: &AppState,
    caller: &Caller,
    content: &str,
    metadata: Option<Value>,
) -> AppResult<Entry> {
    let content = validate::required("content", content, MAX_CONTENT_CHARS)?;
    let metadata = docs::check_metadata(metadata)?;
    let bytes = content.clone().into_bytes();
    let sniffed = sniff::sniff(&bytes, "memory.txt")
        .map_err(|_| AppError::validation("content", "content must be text"))?;
    let collection = docs::writable_target(state, caller, &Target::Memory).await?;
    let stored = docs::store(
        state,
        caller,
        &collection,
        "memory.txt".to_string(),
        bytes,
        sniffed,
        metadata,
        None,
    )
    .await?;
    let document = docs::wait_settled(state, caller, stored.document.id, INDEX_WAIT).await?;
    Ok(Entry {
        document,
        content,
        score: None,
    })
}

/// The caller's entries closest to `query` (hybrid search), at most `limit`.
pub async fn search(
    state: &AppState,
    caller: &Caller,
    query: &str,
    limit: i64,
) -> AppResult<Vec<Entry>> {
    let hits = docs::search(
        state,
        caller,
        Some(&Target::Memory),
        query,
        Some(limit),
        None,
        Mode::Hybrid,
    )
    .await?;
    let mut seen = std::collections::HashSet::new();
    Ok(hits
        .into_iter()
        .filter(|h| seen.insert(h.document.id))
        .map(|h| Entry {
            content: h.chunk.text,
            score: Some(h.score),
            document: h.document,
        })
        .collect())
}

/// Remembers a finished exchange of an agent that learns, as the user it talked to. Runs
/// after the turn's own write; a failure is logged (the answer is stored either way).
pub async fn learn(state: &AppState, user_id: i64, content: String, metadata: Value) {
    let outcome = async {
        let caller = crate::service::auth::acting_for(state, user_id, None).await?;
        let collection = docs::writable_target(state, &caller, &Target::Memory).await?;
        let content: String = content.chars().take(MAX_CONTENT_CHARS).collect();
        let bytes = content.into_bytes();
        let sniffed = sniff::sniff(&bytes, "memory.txt")?;
        docs::store(
            state,
            &caller,
            &collection,
            "memory.txt".into(),
            bytes,
            sniffed,
            metadata,
            None,
        )
        .await
    }
    .await;
    if let Err(e) = outcome {
        tracing::warn!(error = %e.message, user_id, "an exchange could not be remembered");
    }
}

/// Whether an entry is searchable yet.
pub fn is_indexed(e: &Entry) -> bool {
    e.document.status == DocumentStatus::Indexed
}

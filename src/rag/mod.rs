//! Retrieval over documents: what an upload is ([`sniff`]), its text with positions
//! ([`extract`]), token-aware chunks with exact spans ([`chunk`]), the ingestion job that
//! takes a document from bytes to indexed vectors ([`ingest`]) and hybrid search
//! ([`search`]). The entry point for callers is `service::documents`.
//!
//! The database holds the truth (documents, their text, chunks, vectors, a full-text index
//! of the chunks); FAISS indexes are caches in [`crate::vector`].

pub mod chunk;
pub mod extract;
pub mod ingest;
pub mod reindex;
pub mod search;
pub mod sniff;
pub mod sources;

use crate::config::Config;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::events::Event;
use crate::state::AppState;
use crate::vector::{IndexSettings, VectorHub};
use std::sync::Arc;
use tokio::sync::OnceCell;

/// What retrieval holds per process: pdfium, the chunker, the vector indexes.
pub struct RagHub {
    /// PDF text extraction.
    pub pdfium: extract::Pdfium,
    chunker: OnceCell<Result<Arc<chunk::Chunker>, String>>,
    /// FAISS indexes per collection.
    pub vectors: VectorHub,
}

impl RagHub {
    /// The hub of a process with this configuration (nothing is loaded yet).
    pub fn new(config: &Config) -> Self {
        let r = &config.rag;
        Self {
            pdfium: extract::Pdfium::new(r.pdfium.clone()),
            chunker: OnceCell::new(),
            vectors: VectorHub::new(
                config.data_dir.join("vectors"),
                IndexSettings {
                    hnsw_above: r.hnsw_above,
                    hnsw_m: r.hnsw_m,
                    hnsw_ef_search: r.hnsw_ef_search,
                },
            ),
        }
    }

    /// The chunker, loading the tokenizer on first use.
    pub async fn chunker(&self, config: &Config) -> AppResult<Arc<chunk::Chunker>> {
        let loaded = self
            .chunker
            .get_or_init(|| async {
                let path = config.embed.tokenizer.clone();
                let (tokens, overlap) = (config.rag.chunk_tokens, config.rag.chunk_overlap);
                tokio::task::spawn_blocking(move || chunk::Chunker::load(&path, tokens, overlap))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| format!("{e:#}")))
                    .map(Arc::new)
            })
            .await;
        loaded.clone().map_err(|e| {
            AppError::new(
                ErrorCode::Unavailable,
                format!("chunking is unavailable (tokenizer: {e})"),
            )
        })
    }
}

/// Starts what retrieval runs in the background of a serving process: repairing documents
/// whose ingestion stopped for good, and bringing indexes up to date as soon as another
/// process (or this one) changes a collection.
pub fn start(state: &AppState) {
    let s = state.clone();
    state.background.spawn_service(async move {
        let mut events = s.events.subscribe();
        let stop = s.background.stopping().clone();
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {
                    if let Err(e) = ingest::repair(&s).await {
                        tracing::warn!(error = %e.message, "document repair failed");
                    }
                }
                received = events.recv() => match received {
                    Ok(Event::DocumentChanged { collection_id, status, .. })
                        if status == "indexed" => warm(&s, collection_id).await,
                    Ok(Event::DocumentDeleted { collection_id, .. }) => warm(&s, collection_id).await,
                    Ok(Event::Restored) => rebuild_all(&s).await,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
            }
        }
    });
}

/// After a restore: forgets every index of this process and rebuilds each collection's
/// from the restored vectors.
pub async fn rebuild_all(state: &AppState) {
    state.rag.vectors.drop_all();
    match reindex::all(state).await {
        Ok(list) => {
            for c in list {
                warm(state, c.id).await;
            }
        }
        Err(e) => tracing::warn!(error = %e.message, "index rebuild after a restore failed"),
    }
}

/// Brings this process's index of a collection up to date (searches would do it anyway;
/// doing it now keeps the first search after a change fast).
async fn warm(state: &AppState, collection_id: i64) {
    if let Err(e) = search::sync_collection(state, collection_id).await {
        tracing::debug!(error = %e.message, collection_id, "index warm-up failed");
    }
}

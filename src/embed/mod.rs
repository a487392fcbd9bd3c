//! Text embeddings: one model per process, shared by every caller through a dynamic batcher.
//!
//! Callers hand texts to [`Embedder::embed`]; each text waits in one bounded queue (a full
//! queue is `503 model_busy` with `Retry-After`, never unbounded memory). One collector
//! task takes whatever is queued (up to `max_batch × 4` texts, after waiting at most
//! `batch_wait_us` for company), tokenizes it off the async runtime, sorts it by length so a
//! batch pads little, and runs the model batch by batch on a blocking thread. While the model
//! runs, new texts queue up and form the next batch, so batches grow with the load without
//! delaying a lone query. The model loads on first use ([`EmbedHub::get`]).

pub mod model;

use crate::config::EmbedConfig;
use crate::error::{AppError, AppResult, ErrorCode};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, OnceCell};

/// One embedded text.
#[derive(Debug, Clone)]
pub struct Embedding {
    /// Unit vector.
    pub vector: Vec<f32>,
    /// Tokens the model read (after truncation).
    pub tokens: usize,
}

struct Request {
    text: String,
    reply: oneshot::Sender<Result<Embedding, String>>,
}

/// The process's embedder: a queue in front of the model.
pub struct Embedder {
    queue: mpsc::Sender<Request>,
    /// The model's name on the wire (`all-minilm-l6-v2`).
    pub name: String,
    /// Width of the vectors.
    pub dims: usize,
}

impl Embedder {
    /// Loads the model (blocking) and starts the collector task (owned by `background`,
    /// on the current runtime).
    fn start(config: &EmbedConfig, background: &crate::tasks::Background) -> anyhow::Result<Self> {
        let mut model = model::Model::load(config)?;
        // One run at load: the first request does not pay the graph's warm-up.
        let probe = model.tokenize("warm up")?;
        let dims = model.embed(&[&probe])?.first().map_or(0, Vec::len);
        let (tx, rx) = mpsc::channel(config.queue_depth.max(1));
        let model = Arc::new(Mutex::new(model));
        background.spawn_service(collect(
            rx,
            model,
            config.max_batch.max(1),
            Duration::from_micros(config.batch_wait_us),
        ));
        Ok(Self {
            queue: tx,
            name: config.model_name.clone(),
            dims,
        })
    }

    /// Embeds texts in order. Refused with `model_busy` when the queue is full.
    pub async fn embed(&self, texts: Vec<String>) -> AppResult<Vec<Embedding>> {
        let mut waiting = Vec::with_capacity(texts.len());
        for text in texts {
            let (reply, rx) = oneshot::channel();
            self.queue
                .try_send(Request { text, reply })
                .map_err(|_| busy())?;
            waiting.push(rx);
        }
        let mut out = Vec::with_capacity(waiting.len());
        for rx in waiting {
            match rx.await {
                Ok(Ok(e)) => out.push(e),
                Ok(Err(e)) => return Err(AppError::internal(e)),
                Err(_) => return Err(AppError::internal("the embedder stopped")),
            }
        }
        Ok(out)
    }
}

fn busy() -> AppError {
    AppError::new(
        ErrorCode::ModelBusy,
        "the embedding model is busy; retry shortly",
    )
    .with_details(serde_json::json!({ "retry_after": 1 }))
}

/// Takes queued texts, runs them through the model in length-sorted batches, replies.
async fn collect(
    mut rx: mpsc::Receiver<Request>,
    model: Arc<Mutex<model::Model>>,
    max_batch: usize,
    wait: Duration,
) {
    let take = max_batch * 4;
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        if !wait.is_zero() && rx.is_empty() {
            let _ = tokio::time::timeout(wait, async {
                while group.len() < max_batch {
                    match rx.recv().await {
                        Some(r) => group.push(r),
                        None => break,
                    }
                }
            })
            .await;
        }
        while group.len() < take {
            match rx.try_recv() {
                Ok(r) => group.push(r),
                Err(_) => break,
            }
        }
        let model = model.clone();
        let done = tokio::task::spawn_blocking(move || run_group(&model, group, max_batch)).await;
        if let Err(e) = done {
            tracing::error!(error = %e, "embedding batch panicked");
        }
    }
}

fn run_group(model: &Mutex<model::Model>, group: Vec<Request>, max_batch: usize) {
    let Ok(mut model) = model.lock() else {
        for r in group {
            let _ = r.reply.send(Err("the embedding model is unusable".into()));
        }
        return;
    };
    let mut items: Vec<(model::Tokens, Request)> = Vec::with_capacity(group.len());
    for r in group {
        match model.tokenize(&r.text) {
            Ok(t) => items.push((t, r)),
            Err(e) => {
                let _ = r.reply.send(Err(e.to_string()));
            }
        }
    }
    items.sort_by_key(|(t, _)| t.len());
    let mut rest = items;
    while !rest.is_empty() {
        let tail = rest.split_off(rest.len().min(max_batch));
        let batch = std::mem::replace(&mut rest, tail);
        let tokens: Vec<&model::Tokens> = batch.iter().map(|(t, _)| t).collect();
        match model.embed(&tokens) {
            Ok(vectors) => {
                for ((t, r), vector) in batch.into_iter().zip(vectors) {
                    let _ = r.reply.send(Ok(Embedding {
                        vector,
                        tokens: t.len(),
                    }));
                }
            }
            Err(e) => {
                let message = e.to_string();
                tracing::error!(error = %message, "embedding batch failed");
                for (_, r) in batch {
                    let _ = r.reply.send(Err(message.clone()));
                }
            }
        }
    }
}

/// The embedder of a process, loaded on first use (a server that never embeds never pays
/// for the model). A failed load is remembered and reported on every use.
#[derive(Default)]
pub struct EmbedHub {
    cell: OnceCell<Result<Arc<Embedder>, String>>,
}

impl EmbedHub {
    /// The embedder, loading it on first use; `unavailable` when its files are missing or
    /// do not load.
    pub async fn get(
        &self,
        config: &EmbedConfig,
        background: &crate::tasks::Background,
    ) -> AppResult<Arc<Embedder>> {
        let loaded = self
            .cell
            .get_or_init(|| async {
                let config = config.clone();
                let background = background.clone();
                // Loading blocks (file reads, graph optimisation); the collector task is
                // spawned from here, on the runtime.
                let handle = tokio::runtime::Handle::current();
                tokio::task::spawn_blocking(move || {
                    let _guard = handle.enter();
                    Embedder::start(&config, &background)
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| format!("{e:#}")))
                .map(Arc::new)
                .inspect_err(|e| tracing::error!(error = %e, "embedding model unavailable"))
            })
            .await;
        loaded.clone().map_err(|e| {
            AppError::new(
                ErrorCode::Unavailable,
                format!("embeddings are unavailable: {e}"),
            )
        })
    }
}

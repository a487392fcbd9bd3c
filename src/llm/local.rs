//! The embedded provider: llama.cpp running GGUF files. Models load lazily on first use and
//! stay in memory; each generation decodes on its own blocking thread with a fresh context
//! and streams pieces back through a bounded channel. When the receiver is dropped
//! (cancel, turn abandoned) the thread stops at the next token.

use super::{Chunk, ChunkStream, FinishReason, GenerateParams, PromptMessage, Usage};
use crate::db::models::ModelRow;
use crate::error::{AppError, AppResult, ErrorCode};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::mpsc;

/// llama.cpp's backend may be initialised once per process.
static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
/// Creating contexts of one model concurrently is not sound in llama.cpp; serialise it.
static CONTEXT_LOCK: Mutex<()> = Mutex::new(());
/// Loaded models by file path, shared by every server in the process.
static MODELS: OnceLock<Mutex<HashMap<String, Arc<LlamaModel>>>> = OnceLock::new();

/// The process's llama.cpp backend (initialised on first use).
pub fn backend() -> AppResult<&'static LlamaBackend> {
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| AppError::internal(format!("llama.cpp backend: {e}")))
}

fn models() -> &'static Mutex<HashMap<String, Arc<LlamaModel>>> {
    MODELS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Local generation settings.
pub struct LocalEngine {
    threads: i32,
    n_ctx: u32,
    /// Serialises loads so two first requests do not load one file twice.
    loading: tokio::sync::Mutex<()>,
}

fn unavailable(key: &str, why: impl std::fmt::Display) -> AppError {
    tracing::warn!(model = %key, %why, "local model unavailable");
    AppError::new(
        ErrorCode::LlmUnavailable,
        format!("model `{key}` is unavailable: {why}"),
    )
}

impl LocalEngine {
    /// `threads` 0 means one per core; `n_ctx` caps the context of every generation.
    pub fn new(threads: usize, n_ctx: u32) -> Self {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            threads
        };
        Self {
            threads: threads as i32,
            n_ctx,
            loading: tokio::sync::Mutex::new(()),
        }
    }

    /// Model files in memory now.
    pub fn loaded_count(&self) -> usize {
        models().lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether the file is in memory now.
    pub fn is_loaded(&self, path: &str) -> bool {
        models()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(path)
    }

    /// The model at `path`, loading it on first use.
    pub async fn model(&self, key: &str, path: &str) -> AppResult<Arc<LlamaModel>> {
        if let Some(m) = models().lock().unwrap_or_else(|p| p.into_inner()).get(path) {
            return Ok(m.clone());
        }
        let _one = self.loading.lock().await;
        if let Some(m) = models().lock().unwrap_or_else(|p| p.into_inner()).get(path) {
            return Ok(m.clone());
        }
        if !std::path::Path::new(path).is_file() {
            return Err(unavailable(
                key,
                format!("{path} does not exist (run `make setup`)"),
            ));
        }
        let owned = path.to_string();
        let loaded = tokio::task::spawn_blocking(move || {
            let backend = backend()?;
            LlamaModel::load_from_file(backend, &owned, &LlamaModelParams::default())
                .map_err(|e| AppError::internal(format!("loading {owned}: {e}")))
        })
        .await
        .map_err(AppError::internal)?
        .map_err(|e| unavailable(key, e.message))?;
        let model = Arc::new(loaded);
        models()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path.to_string(), model.clone());
        Ok(model)
    }

    /// Starts decoding on a blocking thread; returns once the model is loaded.
    pub async fn generate(
        &self,
        row: &ModelRow,
        messages: Vec<PromptMessage>,
        params: GenerateParams,
    ) -> AppResult<ChunkStream> {
        let path = row
            .path
            .as_deref()
            .ok_or_else(|| unavailable(&row.key, "no path configured"))?;
        let model = self.model(&row.key, path).await?;
        let (tx, mut rx) = mpsc::channel::<AppResult<Chunk>>(256);
        let n_ctx = self.n_ctx.min(row.context_length.max(256) as u32);
        let threads = self.threads;
        tokio::task::spawn_blocking(move || {
            if let Err(e) = decode(&model, messages, params, n_ctx, threads, &tx) {
                let _ = tx.blocking_send(Err(e));
            }
        });
        Ok(Box::pin(async_stream::stream! {
            while let Some(item) = rx.recv().await {
                yield item;
            }
        }))
    }
}

/// Renders messages with the model's own chat template (ChatML when it has none).
pub fn render(model: &LlamaModel, messages: &[PromptMessage]) -> AppResult<String> {
    let template = model
        .chat_template(None)
        .or_else(|_| LlamaChatTemplate::new("chatml"))
        .map_err(AppError::internal)?;
    let chat = messages
        .iter()
        .map(|m| LlamaChatMessage::new(m.role.clone(), m.content.replace('\0', "")))
        .collect::<Result<Vec<_>, _>>()
        .map_err(AppError::internal)?;
    model
        .apply_chat_template(&template, &chat, true)
        .map_err(AppError::internal)
}

/// The prompt as tokens, dropping the oldest history until it leaves room to answer.
fn fit_prompt(
    model: &LlamaModel,
    mut messages: Vec<PromptMessage>,
    budget: usize,
) -> AppResult<Vec<llama_cpp_2::token::LlamaToken>> {
    loop {
        let text = render(model, &messages)?;
        let tokens = model.vocab().tokenize(text.as_bytes(), true, true);
        if tokens.len() <= budget {
            return Ok(tokens);
        }
        let before = messages.len();
        let last = messages.len().saturating_sub(1);
        if let Some(i) = (0..last).find(|&i| messages[i].role != "system") {
            messages.remove(i);
        }
        if messages.len() == before {
            return Err(AppError::validation(
                "content",
                format!(
                    "the prompt needs {} tokens; this model's context allows {budget}",
                    tokens.len()
                ),
            ));
        }
    }
}

/// The decode loop (runs on a blocking thread).
fn decode(
    model: &LlamaModel,
    messages: Vec<PromptMessage>,
    params: GenerateParams,
    n_ctx: u32,
    threads: i32,
    tx: &mpsc::Sender<AppResult<Chunk>>,
) -> AppResult<()> {
    let backend = backend()?;
    let max_new = params.max_tokens.clamp(1, n_ctx.saturating_sub(16).max(1));
    let budget = (n_ctx - max_new.min(n_ctx / 2)) as usize;
    let prompt = fit_prompt(model, messages, budget)?;
    let ctx_params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(n_ctx)
        .with_n_ubatch(512.min(n_ctx))
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = {
        let _serial = CONTEXT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        model
            .new_context(backend, ctx_params)
            .map_err(AppError::internal)?
    };
    let mut batch = LlamaBatch::new(n_ctx as usize, 1);
    let last = prompt.len() as i32 - 1;
    for (i, t) in prompt.iter().enumerate() {
        batch
            .add(*t, i as i32, &[0], i as i32 == last)
            .map_err(AppError::internal)?;
    }
    ctx.decode(&mut batch).map_err(AppError::internal)?;
    let mut sampler = if params.temperature <= 0.0 {
        LlamaSampler::greedy()
    } else {
        LlamaSampler::chain_simple([
            LlamaSampler::top_k(40),
            LlamaSampler::top_p(0.95, 1),
            LlamaSampler::temp(params.temperature),
            LlamaSampler::dist(rand::random()),
        ])
    };
    let vocab = model.vocab();
    let mut pos = prompt.len() as i32;
    let mut pending: Vec<u8> = Vec::new();
    let mut generated = 0u32;
    let mut finish = FinishReason::Length;
    while generated < max_new && (pos as u32) < n_ctx {
        let token = sampler.sample(&ctx, batch.n_tokens() - 1);
        if vocab.is_eog(token) {
            finish = FinishReason::Stop;
            break;
        }
        generated += 1;
        pending.extend(vocab.token_to_piece(token, false, None));
        // Emit the longest valid UTF-8 prefix; a split multibyte character waits.
        let valid = match std::str::from_utf8(&pending) {
            Ok(_) => pending.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => pending.len(),
        };
        if valid > 0 {
            let text = String::from_utf8_lossy(&pending[..valid]).into_owned();
            pending.drain(..valid);
            if tx.blocking_send(Ok(Chunk::Token(text))).is_err() {
                return Ok(()); // nobody listens: cancelled
            }
        }
        batch.clear();
        batch
            .add(token, pos, &[0], true)
            .map_err(AppError::internal)?;
        pos += 1;
        ctx.decode(&mut batch).map_err(AppError::internal)?;
    }
    if !pending.is_empty() {
        let text = String::from_utf8_lossy(&pending).into_owned();
        let _ = tx.blocking_send(Ok(Chunk::Token(text)));
    }
    let usage = Usage {
        prompt_tokens: prompt.len() as u32,
        completion_tokens: generated,
    };
    let _ = tx.blocking_send(Ok(Chunk::Done {
        usage,
        finish,
        tool_calls: Vec::new(),
    }));
    Ok(())
}

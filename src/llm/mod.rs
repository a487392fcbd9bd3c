//! Model providers behind one interface. A generation is a [`ChunkStream`]: text deltas, then
//! one final [`Chunk::Done`] with usage. Dropping the stream stops the generation (the local
//! decode thread and the upstream HTTP request both notice), which is how turns are cancelled.
//!
//! - [`local`]: llama.cpp running GGUF files on dedicated threads.
//! - [`openai`]: any OpenAI-compatible `/chat/completions` server, SSE parsed incrementally.
//! - [`gate`]: the per-model concurrency limit with a bounded wait queue.
//! - [`gguf`]: GGUF header metadata, for discovery.
//! - [`prompt`]: token estimates and history trimming to a context window.

pub mod gate;
pub mod gguf;
pub mod local;
pub mod openai;
pub mod prompt;
pub mod sse;

use crate::config::LlmConfig;
use crate::db::enums::Provider;
use crate::db::models::ModelRow;
use crate::error::{AppResult, ErrorCode};
use futures_util::stream::BoxStream;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One message of a prompt, in OpenAI's role vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PromptMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Text.
    pub content: String,
    /// The tool calls an `assistant` message made (OpenAI's `tool_calls` array).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<serde_json::Value>,
    /// The call a `tool` message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl PromptMessage {
    /// Shorthand constructor.
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Self {
            role: role.to_string(),
            content: content.into(),
            tool_calls: None,
            tool_call_id: None,
        }
    }

    /// The assistant message that made `calls` (with any text it said alongside).
    pub fn tool_request(content: impl Into<String>, calls: &[ToolCall]) -> Self {
        let wire: Vec<serde_json::Value> = calls
            .iter()
            .map(|c| {
                serde_json::json!({
                    "id": c.id,
                    "type": "function",
                    "function": { "name": c.name, "arguments": c.arguments },
                })
            })
            .collect();
        Self {
            tool_calls: Some(serde_json::Value::Array(wire)),
            ..Self::new("assistant", content)
        }
    }

    /// A tool's answer to the call `id`.
    pub fn tool_result(id: &str, content: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(id.to_string()),
            ..Self::new("tool", content)
        }
    }
}

/// A function the model asked to call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ToolCall {
    /// The upstream's id for the call (the tool message answers it).
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// Its arguments, JSON text as the model wrote them.
    pub arguments: String,
}

/// Sampling settings of one generation.
#[derive(Debug, Clone, Copy)]
pub struct GenerateParams {
    /// 0 means greedy.
    pub temperature: f32,
    /// Most tokens to generate.
    pub max_tokens: u32,
}

/// Token counts of a finished generation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// Tokens of the prompt as the model saw it.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
}

impl Usage {
    /// Both counts together; upstreams report what they like, so this saturates instead of
    /// overflowing.
    pub fn total(&self) -> u32 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }

    /// A count as stored (`INTEGER`), capped instead of wrapping negative.
    pub fn stored(n: u32) -> i32 {
        i32::try_from(n).unwrap_or(i32::MAX)
    }
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model ended its answer.
    Stop,
    /// `max_tokens` (or the context window) was reached.
    Length,
    /// The model asked for tool calls (`Chunk::Done::tool_calls`).
    ToolCalls,
}

impl FinishReason {
    /// OpenAI's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
        }
    }
}

/// One item of a generation.
#[derive(Debug, Clone, PartialEq)]
pub enum Chunk {
    /// Next piece of text (never empty).
    Token(String),
    /// The end; nothing follows.
    Done {
        /// Token counts (estimated when the upstream does not report them).
        usage: Usage,
        /// Why it ended.
        finish: FinishReason,
        /// The calls the model asked for (`finish` is `ToolCalls`); empty otherwise.
        tool_calls: Vec<ToolCall>,
    },
}

/// A running generation. An `Err` item ends it (the upstream broke off mid-stream).
pub type ChunkStream = BoxStream<'static, AppResult<Chunk>>;

/// Process-wide LLM machinery: HTTP client, loaded local models, gates, health marks.
pub struct LlmHub {
    /// Timeouts, default model, local model path.
    pub config: LlmConfig,
    /// Shared pooled client for every remote provider.
    http: reqwest::Client,
    /// Loaded GGUF models, kept warm.
    pub local: local::LocalEngine,
    /// Concurrency gates per model key.
    gates: Mutex<HashMap<String, Arc<gate::Gate>>>,
    /// When a model's backend last failed to connect (for `auto` routing and health).
    failures: Mutex<HashMap<String, Instant>>,
}

/// How long a backend that refused a connection counts as down for routing and health.
const DOWN_FOR: Duration = Duration::from_secs(30);

impl LlmHub {
    /// Builds the hub; nothing is loaded or contacted until first use.
    pub fn new(config: LlmConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(config.connect_timeout_secs))
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            local: local::LocalEngine::new(config.local_threads, config.local_context),
            config,
            http,
            gates: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// Starts a generation on `model`: waits for a slot (bounded queue), then opens the
    /// provider stream. Fails at once with `llm_unavailable` when the backend is down, so
    /// callers store nothing for a turn that never started.
    pub async fn generate(
        &self,
        model: &ModelRow,
        messages: Vec<PromptMessage>,
        params: GenerateParams,
    ) -> AppResult<ChunkStream> {
        self.generate_with_tools(model, messages, params, &[]).await
    }

    /// [`LlmHub::generate`] offering `tools` (OpenAI's tools format) to a provider that
    /// takes them; the local engine answers without tools.
    pub async fn generate_with_tools(
        &self,
        model: &ModelRow,
        messages: Vec<PromptMessage>,
        params: GenerateParams,
        tools: &[serde_json::Value],
    ) -> AppResult<ChunkStream> {
        let permit = self.gate(model).acquire().await?;
        let opened = match model.provider {
            Provider::Local => self.local.generate(model, messages, params).await,
            Provider::OpenAi => {
                openai::generate(&self.http, &self.config, model, messages, params, tools).await
            }
        };
        match opened {
            Ok(stream) => {
                self.mark_up(&model.key);
                let key = model.key.clone();
                // The slot is held for as long as the stream lives.
                Ok(Box::pin(futures_util::StreamExt::map(stream, move |c| {
                    let _held = &permit;
                    if let Ok(Chunk::Done { usage, .. }) = &c {
                        crate::ops::metrics::model_tokens(
                            &key,
                            usage.prompt_tokens as u64,
                            usage.completion_tokens as u64,
                        );
                    }
                    c
                })))
            }
            Err(e) => {
                if e.code == ErrorCode::LlmUnavailable {
                    self.mark_down(&model.key);
                }
                Err(e)
            }
        }
    }

    /// The gate of a model, rebuilt when its `max_concurrent` changed.
    fn gate(&self, model: &ModelRow) -> Arc<gate::Gate> {
        let limit = model.max_concurrent.max(1) as usize;
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        let g = gates
            .entry(model.key.clone())
            .or_insert_with(|| Arc::new(gate::Gate::new(limit, self.config.queue_depth)));
        if g.limit() != limit {
            *g = Arc::new(gate::Gate::new(limit, self.config.queue_depth));
        }
        g.clone()
    }

    /// Generations running and waiting on a model.
    pub fn load(&self, key: &str) -> (usize, usize) {
        let gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        gates
            .get(key)
            .map(|g| (g.running(), g.waiting()))
            .unwrap_or((0, 0))
    }

    /// Every model with generations running or waiting now: (key, running, waiting).
    pub fn activity(&self) -> Vec<(String, usize, usize)> {
        let gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        gates
            .iter()
            .map(|(k, g)| (k.clone(), g.running(), g.waiting()))
            .filter(|(_, r, w)| r + w > 0)
            .collect()
    }

    /// Local model files in memory now.
    pub fn loaded_local(&self) -> usize {
        self.local.loaded_count()
    }

    fn mark_down(&self, key: &str) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.insert(key.to_string(), Instant::now());
    }

    fn mark_up(&self, key: &str) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.remove(key);
    }

    /// Whether a model can be routed to: enabled, its file present (local), and its backend
    /// not seen refusing connections in the last 30 s (remote).
    pub fn is_healthy(&self, model: &ModelRow) -> bool {
        if !model.enabled {
            return false;
        }
        if model.provider == Provider::Local {
            return model
                .path
                .as_deref()
                .is_some_and(|p| std::path::Path::new(p).is_file());
        }
        let f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.get(&model.key).is_none_or(|t| t.elapsed() > DOWN_FOR)
    }

    /// `loaded` (local, in memory), `available`, `down` or `disabled`: for model lists.
    pub fn status(&self, model: &ModelRow) -> &'static str {
        if !model.enabled {
            "disabled"
        } else if !self.is_healthy(model) {
            "down"
        } else if model.provider == Provider::Local
            && model
                .path
                .as_deref()
                .is_some_and(|p| self.local.is_loaded(p))
        {
            "loaded"
        } else {
            "available"
        }
    }
}

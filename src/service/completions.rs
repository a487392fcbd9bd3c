//! Stateless completions: a list of messages in, a generation out, nothing stored. Behind the
//! OpenAI-compatible `/v1`, seed 002's `/llm/chat` and agent `invoke`, and seed 003's
//! `/llm/infer`. Chat turns ([`super::turns`]) share the parameter and window rules here.

use crate::auth::Caller;
use crate::db::models::{Agent, ModelRow};
use crate::error::{AppError, AppResult};
use crate::llm::{prompt, Chunk, ChunkStream, FinishReason, GenerateParams, PromptMessage, Usage};
use crate::service::{models, validate};
use crate::state::AppState;
use futures_util::StreamExt;
use std::time::Instant;

/// Most messages in one stateless request.
pub const MAX_MESSAGES: usize = 500;
/// Most characters across all messages of one stateless request.
pub const MAX_PROMPT_CHARS: usize = 400_000;
/// Largest `max_tokens` a request may ask for.
pub const MAX_TOKENS_CAP: u32 = 32_768;

/// A stateless request.
#[derive(Debug, Clone, Default)]
pub struct CompletionRequest {
    /// Model key, `auto` or none.
    pub model: Option<String>,
    /// The conversation, oldest first.
    pub messages: Vec<PromptMessage>,
    /// Sampling temperature in [0, 2].
    pub temperature: Option<f64>,
    /// Cap on generated tokens.
    pub max_tokens: Option<i64>,
}

/// A finished stateless generation.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The model that answered.
    pub model: ModelRow,
    /// The answer.
    pub text: String,
    /// Token counts.
    pub usage: Usage,
    /// Why it ended.
    pub finish: FinishReason,
    /// Wall time.
    pub latency_ms: i64,
}

impl Completion {
    /// Price of the exchange from the model's registered costs.
    pub fn cost_usd(&self) -> f64 {
        cost(&self.model, self.usage)
    }
}

/// Price of `usage` on `model`.
pub fn cost(model: &ModelRow, usage: Usage) -> f64 {
    (usage.prompt_tokens as f64 * model.cost_per_1k_input
        + usage.completion_tokens as f64 * model.cost_per_1k_output)
        / 1000.0
}

/// Temperature and token cap: the request's, else the agent's, else the defaults, with the
/// cap bounded so the answer fits the model's window.
pub fn params(
    state: &AppState,
    model: &ModelRow,
    agent: Option<&Agent>,
    temperature: Option<f64>,
    max_tokens: Option<i64>,
) -> AppResult<GenerateParams> {
    let t = match temperature {
        Some(t) => validate::temperature(t)?,
        None => agent.map_or(0.7, |a| a.temperature),
    };
    let max = match max_tokens {
        Some(m) if !(1..=MAX_TOKENS_CAP as i64).contains(&m) => {
            return Err(AppError::validation(
                "max_tokens",
                format!("max_tokens must be between 1 and {MAX_TOKENS_CAP}"),
            ))
        }
        Some(m) => m as u32,
        None => agent
            .and_then(|a| a.max_tokens)
            .map_or(state.config.llm.default_max_tokens, |m| m.max(1) as u32),
    };
    let window = model.context_length.max(256) as u32;
    Ok(GenerateParams {
        temperature: t as f32,
        max_tokens: max.min(window / 2),
    })
}

/// Trims a prompt to what the window leaves after the answer's budget.
pub fn fit(
    model: &ModelRow,
    msgs: Vec<PromptMessage>,
    params: GenerateParams,
) -> Vec<PromptMessage> {
    let budget = (model.context_length.max(256) as u32).saturating_sub(params.max_tokens);
    prompt::trim_to_window(msgs, budget, prompt::estimate_tokens)
}

fn check(req: &CompletionRequest) -> AppResult<()> {
    if req.messages.is_empty() {
        return Err(AppError::validation(
            "messages",
            "messages must not be empty",
        ));
    }
    if req.messages.len() > MAX_MESSAGES {
        return Err(AppError::validation(
            "messages",
            format!("at most {MAX_MESSAGES} messages"),
        ));
    }
    let mut total = 0;
    for m in &req.messages {
        if !matches!(m.role.as_str(), "system" | "user" | "assistant" | "tool") {
            return Err(AppError::validation(
                "messages",
                "role must be system, user, assistant or tool",
            ));
        }
        total += m.content.chars().count();
    }
    if total > MAX_PROMPT_CHARS {
        return Err(AppError::new(
            crate::error::ErrorCode::PayloadTooLarge,
            format!("the messages hold more than {MAX_PROMPT_CHARS} characters"),
        ));
    }
    if let Some(m) = &req.model {
        validate::max_len("model", m, validate::MAX_NAME_CHARS)?;
    }
    Ok(())
}

/// Starts a stateless generation; `agent` adds its system prompt and defaults.
pub async fn stream(
    state: &AppState,
    caller: &Caller,
    req: CompletionRequest,
    agent: Option<&Agent>,
) -> AppResult<(ModelRow, ChunkStream)> {
    caller.require_write()?;
    check(&req)?;
    super::usage::check_quota(state, caller).await?;
    let model = models::resolve(
        state,
        req.model.as_deref(),
        agent.and_then(|a| a.model.as_deref()),
    )
    .await?;
    let p = params(state, &model, agent, req.temperature, req.max_tokens)?;
    let mut msgs = req.messages;
    if let Some(a) = agent.filter(|a| !a.system_prompt.trim().is_empty()) {
        msgs.insert(0, PromptMessage::new("system", a.system_prompt.clone()));
    }
    let msgs = fit(&model, msgs, p);
    let s = state.llm.generate(&model, msgs, p).await?;
    let s = super::usage::metered(state, caller, &model.key, s);
    Ok((model, s))
}

/// Runs a stateless generation to its end.
pub async fn complete(
    state: &AppState,
    caller: &Caller,
    req: CompletionRequest,
    agent: Option<&Agent>,
) -> AppResult<Completion> {
    let started = Instant::now();
    let (model, mut s) = stream(state, caller, req, agent).await?;
    let mut text = String::new();
    while let Some(item) = s.next().await {
        match item? {
            Chunk::Token(t) => text.push_str(&t),
            Chunk::Done { usage, finish, .. } => {
                return Ok(Completion {
                    model,
                    text,
                    usage,
                    finish,
                    latency_ms: started.elapsed().as_millis() as i64,
                })
            }
        }
    }
    Err(AppError::new(
        crate::error::ErrorCode::LlmUnavailable,
        "the model stopped without finishing",
    ))
}

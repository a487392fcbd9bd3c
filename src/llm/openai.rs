//! OpenAI-compatible chat completions (OpenAI, vLLM, llama.cpp server, LM Studio, Ollama `/v1`,
//! Mistral, Moonshot): `POST {base_url}/chat/completions` with `stream: true`, SSE parsed as
//! bytes arrive. Connection failures are retried briefly, and only before the request was
//! accepted; once tokens flow, a broken stream is reported, never replayed.

use super::sse::SseParser;
use super::{Chunk, ChunkStream, FinishReason, GenerateParams, PromptMessage, ToolCall, Usage};
use crate::config::LlmConfig;
use crate::db::models::ModelRow;
use crate::error::{AppError, AppResult, ErrorCode};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;

/// Pauses between connection attempts; short, so a down backend fails fast.
const RETRY_BACKOFF_MS: [u64; 2] = [100, 300];

fn unavailable(model: &ModelRow, why: impl std::fmt::Display) -> AppError {
    tracing::warn!(model = %model.key, %why, "llm backend unavailable");
    AppError::new(
        ErrorCode::LlmUnavailable,
        format!("model `{}` is unavailable: {why}", model.key),
    )
}

/// Opens a streaming completion; returns once the upstream accepted the request.
pub async fn generate(
    http: &reqwest::Client,
    config: &LlmConfig,
    model: &ModelRow,
    messages: Vec<PromptMessage>,
    params: GenerateParams,
    tools: &[Value],
) -> AppResult<ChunkStream> {
    let base = model
        .base_url
        .as_deref()
        .ok_or_else(|| unavailable(model, "no base_url configured"))?;
    let url = format!("{}/chat/completions", base.trim_end_matches('/'));
    let prompt_estimate = super::prompt::estimate_messages(&messages);
    let mut body = json!({
        "model": model.remote_name.as_deref().unwrap_or(&model.key),
        "messages": messages,
        "temperature": params.temperature,
        "max_tokens": params.max_tokens,
        "stream": true,
        "stream_options": { "include_usage": true },
    });
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools.to_vec());
        body["tool_choice"] = json!("auto");
    }
    let first_token = Duration::from_secs(config.request_timeout_secs);
    let mut attempt = 0;
    let response = loop {
        let mut req = http.post(&url).json(&body);
        if let Some(key) = model.api_key.as_deref().filter(|k| !k.is_empty()) {
            req = req.bearer_auth(key);
        }
        match tokio::time::timeout(first_token, req.send()).await {
            Err(_) => return Err(unavailable(model, "no response before the timeout")),
            Ok(Ok(r)) => break r,
            Ok(Err(e)) if e.is_connect() && attempt < RETRY_BACKOFF_MS.len() => {
                tokio::time::sleep(Duration::from_millis(RETRY_BACKOFF_MS[attempt])).await;
                attempt += 1;
            }
            Ok(Err(e)) => return Err(unavailable(model, e)),
        }
    };
    if !response.status().is_success() {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        tracing::warn!(model = %model.key, %status, body = %text.chars().take(500).collect::<String>(), "upstream refused");
        return Err(unavailable(model, format!("upstream answered {status}")));
    }
    let idle = Duration::from_secs(config.idle_timeout_secs);
    let key = model.key.clone();
    let mut bytes = response.bytes_stream();
    let stream = async_stream::stream! {
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        let mut usage: Option<Usage> = None;
        let mut finish: Option<FinishReason> = None;
        let mut pieces = 0u32;
        let mut first = true;
        // Tool calls arrive as deltas keyed by index: id and name once, arguments in pieces.
        let mut calls: Vec<ToolCall> = Vec::new();
        loop {
            let wait = if first { first_token } else { idle };
            let next = match tokio::time::timeout(wait, bytes.next()).await {
                Err(_) => {
                    yield Err(stream_error(&key, "the upstream stopped sending"));
                    return;
                }
                Ok(n) => n,
            };
            let piece = match next {
                None => break,
                Some(Err(e)) => {
                    yield Err(stream_error(&key, e));
                    return;
                }
                Some(Ok(b)) => b,
            };
            first = false;
            if parser.feed(&piece, &mut events).is_err() {
                yield Err(stream_error(&key, "an SSE event over 1 MiB"));
                return;
            }
            for data in events.drain(..) {
                if data == "[DONE]" {
                    let usage = usage.unwrap_or(Usage { prompt_tokens: prompt_estimate, completion_tokens: pieces });
                    let finish = if calls.is_empty() { finish.unwrap_or(FinishReason::Stop) } else { FinishReason::ToolCalls };
                    yield Ok(Chunk::Done { usage, finish, tool_calls: std::mem::take(&mut calls) });
                    return;
                }
                let v: Value = match serde_json::from_str(&data) {
                    Ok(v) => v,
                    Err(_) => {
                        yield Err(stream_error(&key, "malformed JSON in the stream"));
                        return;
                    }
                };
                if let Some(err) = v.get("error") {
                    yield Err(stream_error(&key, err));
                    return;
                }
                if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                    usage = Some(Usage {
                        prompt_tokens: u["prompt_tokens"].as_u64().unwrap_or(0) as u32,
                        completion_tokens: u["completion_tokens"].as_u64().unwrap_or(0) as u32,
                    });
                }
                if let Some(choice) = v["choices"].get(0) {
                    if let Some(text) = choice["delta"]["content"].as_str().filter(|t| !t.is_empty()) {
                        pieces += 1;
                        yield Ok(Chunk::Token(text.to_string()));
                    }
                    if let Some(deltas) = choice["delta"]["tool_calls"].as_array() {
                        for d in deltas {
                            let index = d["index"].as_u64().unwrap_or(calls.len() as u64) as usize;
                            if index > 64 {
                                yield Err(stream_error(&key, "too many tool calls"));
                                return;
                            }
                            while calls.len() <= index {
                                calls.push(ToolCall { id: String::new(), name: String::new(), arguments: String::new() });
                            }
                            let call = &mut calls[index];
                            if let Some(id) = d["id"].as_str() {
                                call.id = id.to_string();
                            }
                            if let Some(name) = d["function"]["name"].as_str() {
                                call.name.push_str(name);
                            }
                            if let Some(args) = d["function"]["arguments"].as_str() {
                                call.arguments.push_str(args);
                            }
                        }
                    }
                    match choice["finish_reason"].as_str() {
                        Some("length") => finish = Some(FinishReason::Length),
                        Some("tool_calls") => finish = Some(FinishReason::ToolCalls),
                        Some(_) => finish = Some(FinishReason::Stop),
                        None => {}
                    }
                }
            }
        }
        // Closed without `[DONE]`: fine after a finish reason, a broken stream otherwise.
        match finish {
            Some(finish) => {
                let usage = usage.unwrap_or(Usage { prompt_tokens: prompt_estimate, completion_tokens: pieces });
                let finish = if calls.is_empty() { finish } else { FinishReason::ToolCalls };
                yield Ok(Chunk::Done { usage, finish, tool_calls: calls });
            }
            None => yield Err(stream_error(&key, "the upstream closed the stream before it finished")),
        }
    };
    Ok(Box::pin(stream))
}

fn stream_error(key: &str, why: impl std::fmt::Display) -> AppError {
    tracing::warn!(model = %key, %why, "llm stream broke off");
    AppError::new(
        ErrorCode::LlmUnavailable,
        format!("model `{key}` broke off the answer: {why}"),
    )
}

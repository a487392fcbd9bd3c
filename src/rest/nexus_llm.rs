//! Seed 002 (Nexus) LLM and agents, under `/api/v1`: `/llm/chat` (choices/usage, or SSE
//! `{delta, finish_reason}` with `stream: true`), `/llm/models`, `/agents`,
//! `/agents/{agent_type}/invoke` (stateless) and `/agents/{agent_type}/chat` (a chat, whose
//! id is the `session_id`). An agent type is the slug of an agent the caller can see.

use super::openapi::NEXUS;
use super::streaming::{generation, sse, turn_events, Gen};
use super::DocRouter;
use crate::db::enums::MessageStatus;
use crate::db::models::Agent;
use crate::error::AppError;
use crate::events::turns::TurnEvent;
use crate::http::extract::{path_id, AuthCaller, JsonBody};
use crate::llm::PromptMessage;
use crate::service::chats::{self, ChatInput};
use crate::service::completions::{self, CompletionRequest};
use crate::service::turns::{self, SendInput};
use crate::service::{agents, models};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::routes;

/// Routes (relative to `/api/v1`), with the seed's error shape.
pub fn router() -> DocRouter {
    DocRouter::new()
        .routes(routes!(llm_chat))
        .routes(routes!(llm_models))
        .routes(routes!(list_agents))
        .routes(routes!(invoke))
        .routes(routes!(agent_chat))
        .layer(middleware::from_fn(super::nexus::nexus_errors))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = NexusLlmChatBody)]
struct LlmChatBody {
    /// The conversation: `{role, content}` messages (`system`, `user`, `assistant`).
    #[schema(value_type = Vec<Object>)]
    messages: Vec<PromptMessage>,
    /// The model's id (default: the configured default model).
    model: Option<String>,
    temperature: Option<f64>,
    max_tokens: Option<i64>,
    /// Answer as server-sent events instead of one JSON body.
    #[serde(default)]
    stream: bool,
}

/// `{delta, finish_reason}` lines of a stateless generation.
fn delta_stream(s: crate::llm::ChunkStream) -> impl futures_util::Stream<Item = String> + Send {
    generation(s).map(|g| match g {
        Gen::Token(t) => json!({ "delta": t, "finish_reason": null }).to_string(),
        Gen::Done(_, finish) => json!({ "delta": "", "finish_reason": finish.as_str() }).to_string(),
        Gen::Failed(e) => json!({ "delta": "", "finish_reason": "error",
                                  "error": { "code": e.code.as_str().to_uppercase(), "message": e.message } })
        .to_string(),
    })
}

/// Completes a conversation with a model, without storing it.
#[utoipa::path(post, path = "/llm/chat", tag = NEXUS, request_body = LlmChatBody,
    responses((status = 200,
        description = "`{id, model, choices: [{index, message: {role, content}, finish_reason}], usage: {prompt_tokens, completion_tokens, total_tokens}}`; with `stream: true`, server-sent events `{delta, finish_reason}` (the last has the `finish_reason`, or `error: {code, message}`)",
        content((Object = "application/json"), (String = "text/event-stream")))))]
async fn llm_chat(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    JsonBody(body): JsonBody<LlmChatBody>,
) -> Result<Response, AppError> {
    let req = CompletionRequest {
        model: body.model,
        messages: body.messages,
        temperature: body.temperature,
        max_tokens: body.max_tokens,
    };
    if body.stream {
        let (_, s) = completions::stream(&state, &caller, req, None).await?;
        return Ok(sse(&state, &caller, delta_stream(s)));
    }
    let c = completions::complete(&state, &caller, req, None).await?;
    Ok(Json(json!({
        "id": format!("chat-{}", uuid::Uuid::new_v4()),
        "model": c.model.key,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": c.text },
            "finish_reason": c.finish.as_str(),
        }],
        "usage": {
            "prompt_tokens": c.usage.prompt_tokens,
            "completion_tokens": c.usage.completion_tokens,
            "total_tokens": c.usage.total(),
        },
    }))
    .into_response())
}

/// The configured models, with their costs and status.
#[utoipa::path(get, path = "/llm/models", tag = NEXUS,
    responses((status = 200, description = "`{models}`; each is `{id, name, provider, context_length, cost_per_1k_input, cost_per_1k_output, status}`", body = Object)))]
async fn llm_models(
    State(state): State<AppState>,
    AuthCaller(_caller): AuthCaller,
) -> Result<Json<Value>, AppError> {
    let rows = models::list(&state).await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|m| {
            json!({
                "id": m.key,
                "name": m.name,
                "provider": m.provider,
                "context_length": m.context_length,
                "cost_per_1k_input": m.cost_per_1k_input,
                "cost_per_1k_output": m.cost_per_1k_output,
                "status": state.llm.status(m),
            })
        })
        .collect();
    Ok(Json(json!({ "models": items })))
}

fn capabilities(a: &Agent) -> Value {
    json!(a.capabilities.0)
}

/// The agents the caller can see; an agent's `type` (its slug) names it in the agent doors.
#[utoipa::path(get, path = "/agents", tag = NEXUS,
    responses((status = 200, description = "`{agents}`; each is `{type, id, name, description, status, capabilities, model}`", body = Object)))]
async fn list_agents(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
) -> Result<Json<Value>, AppError> {
    let rows =
        agents::list_visible(&state, &caller, crate::service::validate::MAX_PAGE, None).await?;
    let items: Vec<Value> = rows.iter().map(agent_type_json).collect();
    Ok(Json(json!({ "agents": items })))
}

/// An agent as seed 002 lists it (`type` is its slug).
pub(crate) fn agent_type_json(a: &Agent) -> Value {
    json!({
        "type": a.slug,
        "id": a.id.to_string(),
        "name": a.name,
        "description": a.description,
        "status": "available",
        "capabilities": capabilities(a),
        "model": a.model,
    })
}

#[derive(Deserialize, Default, ToSchema)]
#[schema(as = NexusLlmInvokeOptions)]
struct InvokeOptions {
    /// The model's id (default: the agent's, else the configured default).
    model: Option<String>,
    temperature: Option<f64>,
    max_tokens: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = NexusLlmInvokeBody)]
struct InvokeBody {
    /// The request to the agent.
    input: String,
    /// Any JSON the agent is given as context (at most 20,000 characters serialized).
    context: Option<Value>,
    #[serde(default)]
    options: Option<InvokeOptions>,
}

fn metadata(
    model: &crate::db::models::ModelRow,
    usage: crate::llm::Usage,
    latency_ms: i64,
) -> Value {
    json!({
        "model": model.key,
        "tokens_used": usage.total(),
        "latency_ms": latency_ms,
        "cost_usd": completions::cost(model, usage),
    })
}

/// Asks an agent once, without storing a conversation.
#[utoipa::path(post, path = "/agents/{agent_type}/invoke", tag = NEXUS, request_body = InvokeBody,
    params(("agent_type" = String, Path, description = "The agent's slug (`type` in the agent list)")),
    responses((status = 200, description = "`{agent_type, response, metadata: {model, tokens_used, latency_ms, cost_usd}}`", body = Object)))]
async fn invoke(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(agent_type): Path<String>,
    JsonBody(body): JsonBody<InvokeBody>,
) -> Result<Json<Value>, AppError> {
    let agent = agents::by_slug(&state, &caller, &agent_type).await?;
    crate::service::validate::required(
        "input",
        &body.input,
        crate::service::validate::MAX_MESSAGE_CHARS,
    )?;
    let opts = body.options.unwrap_or_default();
    let mut messages = Vec::new();
    if let Some(ctx) = body.context.filter(|c| !c.is_null()) {
        let text = ctx.to_string();
        crate::service::validate::max_len("context", &text, 20_000)?;
        messages.push(PromptMessage::new(
            "system",
            format!("Context of the request (JSON): {text}"),
        ));
    }
    messages.push(PromptMessage::new("user", body.input));
    let c = completions::complete(
        &state,
        &caller,
        CompletionRequest {
            model: opts.model,
            messages,
            temperature: opts.temperature,
            max_tokens: opts.max_tokens,
        },
        Some(&agent),
    )
    .await?;
    Ok(Json(json!({
        "agent_type": agent.slug,
        "response": c.text,
        "metadata": metadata(&c.model, c.usage, c.latency_ms),
    })))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = NexusLlmAgentChatBody)]
struct AgentChatBody {
    /// The user's message.
    message: String,
    /// The conversation to continue (a chat with this agent; `sess-` prefix optional);
    /// none starts a new one.
    session_id: Option<String>,
    /// Answer as server-sent events instead of one JSON body.
    #[serde(default)]
    stream: bool,
}

/// Talks with an agent in a stored conversation, new or continued.
#[utoipa::path(post, path = "/agents/{agent_type}/chat", tag = NEXUS, request_body = AgentChatBody,
    params(("agent_type" = String, Path, description = "The agent's slug (`type` in the agent list)")),
    responses((status = 200,
        description = "`{agent_type, session_id, response, message_id, metadata: {model, tokens_used, latency_ms, cost_usd}}`; with `stream: true`, server-sent events `{delta, finish_reason}`, each with an `id:` cursor (the last has `message_id`, or `error: {code, message}`)",
        content((Object = "application/json"), (String = "text/event-stream")))))]
async fn agent_chat(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(agent_type): Path<String>,
    JsonBody(body): JsonBody<AgentChatBody>,
) -> Result<Response, AppError> {
    let agent = agents::by_slug(&state, &caller, &agent_type).await?;
    crate::service::validate::required(
        "message",
        &body.message,
        crate::service::validate::MAX_MESSAGE_CHARS,
    )?;
    let input = SendInput {
        content: body.message,
        ..Default::default()
    };
    let start = match body
        .session_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(s) => {
            let chat = chats::get(
                &state,
                &caller,
                path_id(s.strip_prefix("sess-").unwrap_or(s))?,
            )
            .await?;
            if chat.agent_id != Some(agent.id) {
                return Err(AppError::not_found("session"));
            }
            turns::send(&state, &caller, chat.id, input).await?
        }
        None => {
            let chat = ChatInput {
                agent_id: Some(agent.id),
                ..Default::default()
            };
            turns::send_new(&state, &caller, chat, input).await?
        }
    };
    let chat = start.chat.clone();
    let session_id = chat.id.to_string();
    if body.stream {
        // Each event's cursor is its SSE `id:` (resume through `chatEvents(after:)`).
        let events = turn_events(&state, start).filter_map(|e| async move {
            let data = match &e.event {
                TurnEvent::Token { delta, .. } => json!({ "delta": &**delta, "finish_reason": null }).to_string(),
                TurnEvent::Response { message, .. } => json!({ "delta": "", "finish_reason": if message.status == MessageStatus::Cancelled { "cancelled" } else { "stop" },
                            "message_id": message.id }).to_string(),
                TurnEvent::Error { code, message, .. } => json!({ "delta": "", "finish_reason": "error",
                            "error": { "code": code.as_str().to_uppercase(), "message": message } }).to_string(),
                _ => return None,
            };
            Some((Some(e.cursor.encode()), data))
        });
        return Ok(super::streaming::sse_with_ids(&state, &caller, events));
    }
    let model = start.model.clone();
    let outcome = start.finish().await?;
    if let Some(e) = outcome.error {
        return Err(e);
    }
    let m = &outcome.message;
    Ok(Json(json!({
        "agent_type": agent.slug,
        "session_id": session_id,
        "response": m.content,
        "message_id": m.id,
        "metadata": metadata(&model, outcome.usage, m.latency_ms.unwrap_or(0)),
    }))
    .into_response())
}

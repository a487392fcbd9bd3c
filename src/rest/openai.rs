//! OpenAI-compatible `/v1`: `POST /v1/chat/completions` (whole or streamed), `GET
//! /v1/models` and `POST /v1/embeddings` (in `openai_embeddings`), so the official OpenAI SDKs work with a Hearth API key as `api_key` and
//! `http://host/v1` as base URL. Stateless: nothing is stored. Errors use OpenAI's
//! `{error: {message, type, param, code}}`.

use super::openapi::OPENAI;
use super::streaming::{generation, now_secs, sse, Gen};
use super::DocRouter;
use crate::db::enums::Provider;
use crate::error::{AppError, ErrorCode};
use crate::http::extract::{AuthCaller, JsonBody};
use crate::llm::PromptMessage;
use crate::service::completions::{self, CompletionRequest};
use crate::service::models;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::routes;

/// Routes.
pub fn router() -> DocRouter {
    DocRouter::new()
        .routes(routes!(chat_completions))
        .routes(routes!(list_models))
        .routes(routes!(super::openai_embeddings::embeddings))
        .layer(middleware::from_fn(openai_errors))
}

fn error_type(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::Unauthenticated
        | ErrorCode::InvalidToken
        | ErrorCode::TokenExpired
        | ErrorCode::SessionRevoked
        | ErrorCode::ApiKeyRevoked => "authentication_error",
        ErrorCode::Forbidden | ErrorCode::InsufficientPermissions | ErrorCode::AccountDisabled => {
            "permission_error"
        }
        ErrorCode::NotFound => "not_found_error",
        ErrorCode::RateLimited | ErrorCode::ModelBusy | ErrorCode::TokenQuotaExceeded => {
            "rate_limit_error"
        }
        ErrorCode::LlmUnavailable | ErrorCode::Unavailable | ErrorCode::Internal => "server_error",
        _ => "invalid_request_error",
    }
}

/// Re-renders table errors in OpenAI's shape.
async fn openai_errors(req: Request, next: Next) -> Response {
    openai_shape(next.run(req).await)
}

/// A table error response in OpenAI's shape (others pass unchanged).
pub fn openai_shape(res: Response) -> Response {
    let Some(err) = res.extensions().get::<AppError>() else {
        return res;
    };
    let param = err
        .details
        .as_ref()
        .and_then(|d| d.get("field"))
        .cloned()
        .unwrap_or(Value::Null);
    let body = json!({ "error": {
        "message": err.message,
        "type": error_type(err.code),
        "param": param,
        "code": err.code.as_str(),
    }});
    crate::http::errors::with_body(res, &body)
}

/// A message whose content is a string or a list of parts (`{type: "text", text}`).
#[derive(Deserialize, ToSchema)]
#[schema(as = OpenaiInMessage)]
struct InMessage {
    /// `system`, `developer` (read as `system`), `user` or `assistant`.
    role: String,
    /// A string, or a list of text parts `{type: "text", text}` (other parts are refused).
    #[serde(default)]
    content: Value,
}

impl InMessage {
    fn into_prompt(self) -> Result<PromptMessage, AppError> {
        let text = match self.content {
            Value::String(s) => s,
            Value::Null => String::new(),
            Value::Array(parts) => {
                let mut out = String::new();
                for p in parts {
                    match (
                        p.get("type").and_then(Value::as_str),
                        p.get("text").and_then(Value::as_str),
                    ) {
                        (Some("text"), Some(t)) => out.push_str(t),
                        _ => {
                            return Err(AppError::validation(
                                "messages",
                                "only text content parts are supported",
                            ))
                        }
                    }
                }
                out
            }
            _ => {
                return Err(AppError::validation(
                    "messages",
                    "content must be a string or a list of parts",
                ))
            }
        };
        // OpenAI's `developer` role is its new name for `system`.
        let role = if self.role == "developer" {
            "system".to_string()
        } else {
            self.role
        };
        Ok(PromptMessage::new(&role, text))
    }
}

#[derive(Deserialize, Default, ToSchema)]
#[schema(as = OpenaiStreamOptions)]
struct StreamOptions {
    /// Send a last chunk with `usage` (and no choices) before `[DONE]`.
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = OpenaiCompletionBody)]
struct CompletionBody {
    /// A Hearth model key (`GET /v1/models`); absent: the default model.
    model: Option<String>,
    messages: Vec<InMessage>,
    temperature: Option<f64>,
    /// Most tokens to generate (`max_completion_tokens` wins when both are sent).
    max_tokens: Option<i64>,
    /// Most tokens to generate.
    max_completion_tokens: Option<i64>,
    /// `true`: answer as server-sent `chat.completion.chunk` events ending with `[DONE]`.
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    /// Only 1 is supported.
    n: Option<i64>,
}

fn usage_json(u: crate::llm::Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total(),
    })
}

/// Creates a chat completion, whole or streamed, as OpenAI's API does.
///
/// Stateless: nothing is stored. With `stream: true` the answer is server-sent
/// `chat.completion.chunk` events ending with `data: [DONE]`; a failure after the stream
/// started arrives as an `{error}` event.
#[utoipa::path(post, path = "/v1/chat/completions", tag = OPENAI, request_body = CompletionBody,
    responses((status = 200,
        description = "JSON: a `chat.completion` `{id, object, created, model, choices: [{index, message: {role, content}, finish_reason}], usage}`; with `stream: true`, an event stream of `chat.completion.chunk` objects, then `[DONE]`",
        content((Object = "application/json"), (String = "text/event-stream")))))]
async fn chat_completions(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    JsonBody(body): JsonBody<CompletionBody>,
) -> Result<Response, AppError> {
    if body.n.is_some_and(|n| n != 1) {
        return Err(AppError::validation("n", "only n = 1 is supported"));
    }
    let messages = body
        .messages
        .into_iter()
        .map(InMessage::into_prompt)
        .collect::<Result<Vec<_>, _>>()?;
    let req = CompletionRequest {
        model: body.model,
        messages,
        temperature: body.temperature,
        max_tokens: body.max_completion_tokens.or(body.max_tokens),
    };
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = now_secs();
    if !body.stream {
        let c = completions::complete(&state, &caller, req, None).await?;
        return Ok(Json(json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": c.model.key,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": c.text },
                "finish_reason": c.finish.as_str(),
            }],
            "usage": usage_json(c.usage),
        }))
        .into_response());
    }
    let include_usage = body.stream_options.unwrap_or_default().include_usage;
    let (model, s) = completions::stream(&state, &caller, req, None).await?;
    let key = model.key;
    let chunk = move |delta: Value, finish: Value| {
        json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": key,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        })
    };
    let first = chunk(json!({ "role": "assistant", "content": "" }), Value::Null).to_string();
    let lines = generation(s).flat_map(move |g| {
        let out: Vec<String> = match g {
            Gen::Token(t) => vec![chunk(json!({ "content": t }), Value::Null).to_string()],
            Gen::Done(u, finish) => {
                let mut v = vec![chunk(json!({}), json!(finish.as_str())).to_string()];
                if include_usage {
                    let mut last = chunk(json!({}), Value::Null);
                    last["choices"] = json!([]);
                    last["usage"] = usage_json(u);
                    v.push(last.to_string());
                }
                v.push("[DONE]".into());
                v
            }
            // OpenAI reports a failure after the stream started as an error object.
            Gen::Failed(e) => vec![
                json!({ "error": { "message": e.message, "type": error_type(e.code), "code": e.code.as_str() } })
                    .to_string(),
            ],
        };
        futures_util::stream::iter(out)
    });
    Ok(sse(
        &state,
        &caller,
        futures_util::stream::once(async move { first }).chain(lines),
    ))
}

/// Lists the enabled models, as OpenAI's API does.
#[utoipa::path(get, path = "/v1/models", tag = OPENAI,
    responses((status = 200, description = "`{object: \"list\", data}`; each model `{id, object: \"model\", created, owned_by}`", body = Object)))]
async fn list_models(
    State(state): State<AppState>,
    AuthCaller(_caller): AuthCaller,
) -> Result<Json<Value>, AppError> {
    let rows = models::list(&state).await?;
    let data: Vec<Value> = rows
        .iter()
        .filter(|m| m.enabled)
        .map(|m| {
            json!({
                "id": m.key,
                "object": "model",
                "created": m.created_at.and_utc().timestamp(),
                "owned_by": if m.provider == Provider::Local { "hearth" } else { m.provider.as_str() },
            })
        })
        .collect();
    Ok(Json(json!({ "object": "list", "data": data })))
}

//! Seed 003 LLM: `POST /llm/infer` → `{text}`, and `WS /llm/stream` where each request
//! `{type: "request", req_id, source, event: "start", payload: {prompt, model?, …}, ts}` is
//! answered with `{type, req_id, source, event, payload, ts}` messages: `status` (started),
//! `token` (text), then `end` (usage) or an `error`. Requests on one socket run one after
//! another; both doors are stateless completions.

use super::openapi::PLUGIN_HOST;
use super::streaming::{close_message, generation, now_ms, Gen};
use super::DocRouter;
use crate::auth::Caller;
use crate::error::{AppError, ErrorCode};
use crate::http::extract::{AuthCaller, JsonBody, WsCaller};
use crate::llm::PromptMessage;
use crate::service::auth::recheck;
use crate::service::completions::{self, CompletionRequest};
use crate::service::streams::stream_end;
use crate::state::AppState;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::routes;

/// Routes.
pub fn router() -> DocRouter {
    DocRouter::new()
        .routes(routes!(infer))
        .routes(routes!(stream))
}

/// The prompt of `/llm/infer` and of a stream request's `payload`.
#[derive(Deserialize, ToSchema)]
#[schema(as = PluginHostInferBody)]
struct InferBody {
    /// The user's prompt.
    prompt: String,
    /// A system prompt, sent before it.
    system: Option<String>,
    /// A model key (default: the default model, else the first healthy one).
    model: Option<String>,
    max_tokens: Option<i64>,
    temperature: Option<f64>,
}

impl InferBody {
    fn request(self) -> Result<CompletionRequest, AppError> {
        crate::service::validate::required("prompt", &self.prompt, completions::MAX_PROMPT_CHARS)?;
        let mut messages = Vec::new();
        if let Some(s) = self.system.filter(|s| !s.trim().is_empty()) {
            messages.push(PromptMessage::new("system", s));
        }
        messages.push(PromptMessage::new("user", self.prompt));
        Ok(CompletionRequest {
            model: self.model,
            messages,
            temperature: self.temperature,
            max_tokens: self.max_tokens,
        })
    }
}

/// Completes a prompt in one answer (no streaming, no chat stored).
#[utoipa::path(post, path = "/llm/infer", tag = PLUGIN_HOST, request_body = InferBody,
    responses((status = 200,
        description = "`{text, model, usage: {prompt_tokens, completion_tokens}, finish_reason}`",
        body = Object)))]
async fn infer(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    JsonBody(body): JsonBody<InferBody>,
) -> Result<Json<Value>, AppError> {
    let c = completions::complete(&state, &caller, body.request()?, None).await?;
    Ok(Json(json!({
        "text": c.text,
        "model": c.model.key,
        "usage": { "prompt_tokens": c.usage.prompt_tokens, "completion_tokens": c.usage.completion_tokens },
        "finish_reason": c.finish.as_str(),
    })))
}

/// Streams completions over a WebSocket, one request after another.
///
/// Each request `{type: "request", req_id, source, event: "start", payload: {prompt, system?,
/// model?, max_tokens?, temperature?}, ts}` is answered with `{type, req_id, source, event,
/// payload, ts}` messages: `status` (started, with the model), `token` (text), then `end`
/// (`finish_reason`, `usage`) or an `error`.
#[utoipa::path(get, path = "/llm/stream", tag = PLUGIN_HOST,
    responses((status = 101,
        description = "Switching protocols: JSON messages, requests `{type: \"request\", event: \"start\", payload: {prompt, …}}` \
            answered by `status`, `token` and `end` (or `error`) events")))]
async fn stream(
    State(state): State<AppState>,
    WsCaller(caller): WsCaller,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade
        .max_message_size(512 * 1024)
        .read_buffer_size(crate::graphql::socket::WS_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| serve(state, caller, socket))
}

#[derive(Deserialize)]
struct WsRequest {
    #[serde(rename = "type")]
    kind: Option<String>,
    req_id: Option<Value>,
    source: Option<String>,
    event: Option<String>,
    payload: Value,
}

fn frame(kind: &str, req_id: &Value, source: &str, event: &str, payload: Value) -> String {
    json!({ "type": kind, "req_id": req_id, "source": source, "event": event, "payload": payload, "ts": now_ms() })
        .to_string()
}

fn error_frame(req_id: &Value, e: &AppError) -> String {
    frame(
        "error",
        req_id,
        "llm",
        "error",
        json!({ "message": e.message, "code": e.code.as_str() }),
    )
}

async fn serve(state: AppState, caller: Caller, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let end = stream_end(&state, &caller, None);
    tokio::pin!(end);
    loop {
        let msg = tokio::select! {
            m = rx.next() => match m {
                Some(Ok(m)) => m,
                _ => break,
            },
            why = &mut end => {
                let _ = tx.send(close_message(&why)).await;
                return;
            },
        };
        let text = match msg {
            WsMessage::Text(t) => t,
            WsMessage::Close(_) => break,
            _ => continue,
        };
        let req: WsRequest = match serde_json::from_str(&text) {
            Ok(r) => r,
            Err(e) => {
                let err =
                    AppError::new(ErrorCode::InvalidJson, format!("not a stream request: {e}"));
                if tx
                    .send(WsMessage::Text(error_frame(&Value::Null, &err).into()))
                    .await
                    .is_err()
                {
                    break;
                }
                continue;
            }
        };
        let req_id = req.req_id.clone().unwrap_or(Value::Null);
        if req.kind.as_deref().is_some_and(|k| k != "request")
            || req.event.as_deref().is_some_and(|e| e != "start")
        {
            let err = AppError::validation(
                "event",
                "send {type: \"request\", event: \"start\", payload: {prompt}}",
            );
            if tx
                .send(WsMessage::Text(error_frame(&req_id, &err).into()))
                .await
                .is_err()
            {
                break;
            }
            continue;
        }
        let _client = req.source;
        let started = match serde_json::from_value::<InferBody>(req.payload)
            .map_err(|e| AppError::validation("payload", format!("payload needs a prompt: {e}")))
            .and_then(InferBody::request)
        {
            // Each request acts as the caller is now (role, rights), or not at all.
            Ok(r) => match recheck(&state, &caller).await {
                Ok(now) => completions::stream(&state, &now, r, None).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let (model, s) = match started {
            Ok(v) => v,
            Err(e) => {
                if tx
                    .send(WsMessage::Text(error_frame(&req_id, &e).into()))
                    .await
                    .is_err()
                {
                    break;
                }
                continue;
            }
        };
        let status = frame(
            "event",
            &req_id,
            "llm",
            "status",
            json!({ "state": "started", "model": model.key }),
        );
        if tx.send(WsMessage::Text(status.into())).await.is_err() {
            break;
        }
        let mut gen = Box::pin(generation(s));
        loop {
            let g = tokio::select! {
                g = gen.next() => match g {
                    Some(g) => g,
                    None => break,
                },
                why = &mut end => {
                    let _ = tx.send(close_message(&why)).await;
                    return;
                },
            };
            let out = match g {
                Gen::Token(t) => frame("event", &req_id, "llm", "token", json!(t)),
                Gen::Done(u, finish) => frame(
                    "event",
                    &req_id,
                    "llm",
                    "end",
                    json!({ "finish_reason": finish.as_str(), "usage": { "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens } }),
                ),
                Gen::Failed(e) => error_frame(&req_id, &e),
            };
            // A closed socket drops the generation (and stops the model) right here.
            if tx.send(WsMessage::Text(out.into())).await.is_err() {
                return;
            }
        }
    }
    let _ = tx.close().await;
}

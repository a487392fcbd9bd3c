//! Seed 000 chat: `POST /api/chat` (whole answer, or SSE with `stream: true`) and
//! `WS /ws/chat?token=`. Both render the turn's events as seed 000's event objects
//! (`think`, `plan`, `action`, `result`, `response`, `error`, `ping`, plus `token` for each
//! piece of the answer). Without `conversation_id` a new conversation starts; on the
//! WebSocket, later messages continue the connection's conversation.

use super::openapi::ORCHESTRATOR;
use super::orchestrator::conversation_id;
use super::streaming::{close_message, sse_with_ids, turn_events};
use super::DocRouter;
use crate::auth::Caller;
use crate::error::{AppError, ErrorCode};
use crate::events::turns::{Sequenced, TurnEvent};
use crate::http::extract::{AuthCaller, JsonBody, WsCaller};
use crate::limits::Rule;
use crate::service::auth::recheck;
use crate::service::chats::{self, ChatInput};
use crate::service::streams::{stream_end, StreamEnd};
use crate::service::turns::{self, SendInput, TurnStart};
use crate::state::AppState;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::BoxStream;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;
use utoipa::ToSchema;
use utoipa_axum::routes;

/// Routes.
pub fn router() -> DocRouter {
    DocRouter::new()
        .routes(routes!(chat))
        .routes(routes!(ws_chat))
}

/// Body of `POST /api/chat` and of each `/ws/chat` message.
#[derive(Deserialize, ToSchema)]
#[schema(as = OrchestratorChatBody)]
struct ChatBody {
    /// The user's message.
    message: String,
    /// The model to answer with; `auto` or absent: the default model.
    model: Option<String>,
    /// The conversation to continue: `"conv-123"`, `"123"` or `123`; absent, null or
    /// empty: a new conversation.
    conversation_id: Option<Value>,
    /// `true`: answer as server-sent events instead of one JSON body.
    #[serde(default)]
    stream: bool,
}

/// `/ws/chat`'s resume message.
#[derive(Deserialize)]
struct ResumeMessage {
    #[serde(rename = "type")]
    kind: String,
    conversation_id: Value,
    cursor: String,
}

/// The conversation and the rest of the answer a resume message asks for.
async fn resume(
    state: &AppState,
    caller: &Caller,
    r: &ResumeMessage,
) -> Result<
    (
        i64,
        impl futures_util::Stream<Item = std::sync::Arc<Sequenced>> + Send + 'static,
    ),
    AppError,
> {
    let chat_id = conversation(state, caller, Some(&r.conversation_id))
        .await?
        .ok_or_else(|| AppError::validation("conversation_id", "conversation_id is required"))?;
    let cursor = super::streaming::parse_cursor("cursor", &r.cursor)?;
    let events = super::streaming::resumed_turn(state, caller, chat_id, cursor).await?;
    Ok((chat_id, events))
}

/// The conversation to continue; `None` asks for a new one.
async fn conversation(
    state: &AppState,
    caller: &Caller,
    id: Option<&Value>,
) -> Result<Option<i64>, AppError> {
    let existing = match id {
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| AppError::not_found("conversation"))?,
        Some(Value::String(s)) if !s.trim().is_empty() => conversation_id(s)?,
        Some(Value::Null) | Some(Value::String(_)) | None => return Ok(None),
        Some(_) => {
            return Err(AppError::validation(
                "conversation_id",
                "conversation_id must be a string or a number",
            ))
        }
    };
    Ok(Some(chats::get(state, caller, existing).await?.id))
}

async fn start(state: &AppState, caller: &Caller, body: ChatBody) -> Result<TurnStart, AppError> {
    // Checked here too, so the error names this API's field.
    crate::service::validate::required(
        "message",
        &body.message,
        crate::service::validate::MAX_MESSAGE_CHARS,
    )?;
    let input = SendInput {
        content: body.message,
        model: body.model.filter(|m| m != "auto"),
        ..Default::default()
    };
    match conversation(state, caller, body.conversation_id.as_ref()).await? {
        Some(chat_id) => turns::send(state, caller, chat_id, input).await,
        None => turns::send_new(state, caller, ChatInput::default(), input).await,
    }
}

fn tokens_json(prompt: Option<i32>, completion: Option<i32>) -> Value {
    json!({ "prompt": prompt.unwrap_or(0), "completion": completion.unwrap_or(0) })
}

/// One turn event in seed 000's shape, with its `cursor` (what a resume message sends back).
fn sequenced_json(e: &Sequenced) -> Option<Value> {
    let mut v = event_json(&e.event)?;
    v["cursor"] = Value::from(e.cursor.encode());
    Some(v)
}

/// One turn event in seed 000's shape.
fn event_json(e: &TurnEvent) -> Option<Value> {
    Some(match e {
        TurnEvent::Started { .. } => return None,
        TurnEvent::Token {
            delta, message_id, ..
        } => {
            json!({ "type": "token", "content": &**delta, "message_id": message_id })
        }
        TurnEvent::Step {
            kind,
            content,
            tool,
            params,
            ..
        } => json!({
            "type": kind.as_str(), "content": content, "tool": tool, "params": params,
        }),
        TurnEvent::Response {
            chat_id, message, ..
        } => json!({
            "type": "response",
            "content": message.content,
            "conversation_id": chat_id.to_string(),
            "message_id": message.id,
            "model_used": message.model,
            "status": message.status,
            "tools_used": crate::service::agent_tools::tools_used(message),
            "tokens": tokens_json(message.prompt_tokens, message.completion_tokens),
        }),
        TurnEvent::Error { code, message, .. } => {
            json!({ "type": "error", "content": message, "code": code.as_str() })
        }
    })
}

/// Sends a message and answers with the agent's reply, whole or streamed.
///
/// Without `conversation_id` a new conversation starts. With `stream: true` the answer is a
/// server-sent event stream of seed 000's event objects (`think`, `plan`, `action`,
/// `result`, `token`, `response`, `error`), each event's `id` a cursor.
#[utoipa::path(post, path = "/api/chat", tag = ORCHESTRATOR, request_body = ChatBody,
    responses((status = 200,
        description = "JSON: `{response, conversation_id, message_id, model_used, tools_used, tokens: {prompt, completion}}`; with `stream: true`, an event stream of `{type, content, ...}` objects ending with `response` (or `error`)",
        content((Object = "application/json"), (String = "text/event-stream")))))]
async fn chat(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    JsonBody(body): JsonBody<ChatBody>,
) -> Result<Response, AppError> {
    let streaming = body.stream;
    let start = start(&state, &caller, body).await?;
    if streaming {
        let events = turn_events(&state, start).filter_map(|e| async move {
            event_json(&e.event).map(|v| (Some(e.cursor.encode()), v.to_string()))
        });
        return Ok(sse_with_ids(&state, &caller, events));
    }
    let chat_id = start.chat.id;
    let outcome = start.finish().await?;
    if let Some(e) = outcome.error {
        return Err(e);
    }
    let m = &outcome.message;
    Ok(Json(json!({
        "response": m.content,
        "conversation_id": chat_id.to_string(),
        "message_id": m.id,
        "model_used": m.model,
        "tools_used": crate::service::agent_tools::tools_used(m),
        "tokens": tokens_json(m.prompt_tokens, m.completion_tokens),
    }))
    .into_response())
}

/// How often `/ws/chat` sends `{"type": "ping"}`.
const PING_EVERY: Duration = Duration::from_secs(30);

/// Opens the real-time chat socket.
///
/// Each text message is a turn `{message, model?, conversation_id?}` (later turns continue
/// the socket's conversation) or `{type: "resume", conversation_id, cursor}` to read the
/// rest of an answer a dropped socket missed.
#[utoipa::path(get, path = "/ws/chat", tag = ORCHESTRATOR,
    params(("token" = Option<String>, Query, description = "An access token or API key, for clients that cannot send an `Authorization` header")),
    responses((status = 101, description = "Switching protocols: a WebSocket of JSON text messages; the server sends seed 000's event objects (`think`, `plan`, `action`, `result`, `token`, `response`, `error`, each with its `cursor`) and `{\"type\": \"ping\"}` every 30 s")))]
async fn ws_chat(
    State(state): State<AppState>,
    WsCaller(caller): WsCaller,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade
        .max_message_size(64 * 1024)
        .read_buffer_size(crate::graphql::socket::WS_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| serve_ws(state, caller, socket))
}

/// What one message on `/ws/chat` asks for, as the caller is now (role, rights) or not at
/// all: a new turn (`{message, model?, conversation_id?}`, the socket's conversation by
/// default), or the rest of an answer a dropped socket was reading (`{type: "resume",
/// conversation_id, cursor}`). The chat and its events.
async fn open(
    state: &AppState,
    caller: &Caller,
    text: &str,
    conversation: Option<i64>,
) -> Result<(i64, BoxStream<'static, std::sync::Arc<Sequenced>>), AppError> {
    let now = recheck(state, caller).await?;
    if let Ok(r) = serde_json::from_str::<ResumeMessage>(text) {
        if r.kind == "resume" {
            let (chat_id, events) = resume(state, &now, &r).await?;
            return Ok((chat_id, events.boxed()));
        }
    }
    let mut body: ChatBody = serde_json::from_str(text).map_err(|e| {
        AppError::new(
            ErrorCode::InvalidJson,
            format!("message is not a valid chat request: {e}"),
        )
    })?;
    if body.conversation_id.is_none() {
        body.conversation_id = conversation.map(|c| json!(c));
    }
    let start = start(state, &now, body).await?;
    Ok((start.chat.id, turn_events(state, start).boxed()))
}

/// Sends one turn's events on the socket until the turn ends; `false` when the socket is
/// done (gone, or closed because the caller's streams ended).
async fn forward<E: std::future::Future<Output = StreamEnd>>(
    events: impl futures_util::Stream<Item = std::sync::Arc<Sequenced>>,
    tx: &mut futures_util::stream::SplitSink<WebSocket, WsMessage>,
    end: &mut std::pin::Pin<&mut E>,
) -> bool {
    let mut events = std::pin::pin!(events);
    loop {
        let e = tokio::select! {
            e = events.next() => match e {
                Some(e) => e,
                None => return true,
            },
            why = end.as_mut() => {
                let _ = tx.send(close_message(&why)).await;
                return false;
            },
        };
        if let Some(v) = sequenced_json(&e) {
            if tx
                .send(WsMessage::Text(v.to_string().into()))
                .await
                .is_err()
            {
                return false;
            }
        }
    }
}

fn error_json(e: &AppError) -> String {
    json!({ "type": "error", "content": e.message, "code": e.code.as_str() }).to_string()
}

async fn serve_ws(state: AppState, caller: Caller, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut conversation: Option<i64> = None;
    let end = stream_end(&state, &caller, None);
    tokio::pin!(end);
    loop {
        let incoming = tokio::select! {
            m = rx.next() => m,
            why = &mut end => {
                let _ = tx.send(close_message(&why)).await;
                return;
            },
            _ = ping.tick() => {
                if tx.send(WsMessage::Text(r#"{"type":"ping"}"#.into())).await.is_err() { break; }
                continue;
            }
        };
        let text = match incoming {
            Some(Ok(WsMessage::Text(t))) => t,
            Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => continue,
        };
        let who = crate::limits::principal_of(&caller);
        if let Some(d) = state.limits.check(Rule::WsChat, who, 1).await {
            if !d.allowed() {
                let refusal = error_json(&d.error("messages"));
                if tx.send(WsMessage::Text(refusal.into())).await.is_err() {
                    break;
                }
                continue;
            }
        }
        let (chat_id, events) = match open(&state, &caller, &text, conversation).await {
            Ok(opened) => opened,
            Err(e) => {
                if tx
                    .send(WsMessage::Text(error_json(&e).into()))
                    .await
                    .is_err()
                {
                    break;
                }
                continue;
            }
        };
        conversation = Some(chat_id);
        // A turn continues (and is stored) even if the socket goes away meanwhile.
        if !forward(events, &mut tx, &mut end).await {
            return;
        }
    }
    let _ = tx.close().await;
}

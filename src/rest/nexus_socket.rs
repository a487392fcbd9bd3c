//! Seed 002 `WS /ws`: the first message authenticates (`{type: "auth", token: "Bearer …"}`),
//! then the client subscribes to channels and receives their events:
//!
//! - `chat:{session_id}`: each message stored in one of the caller's chats (`message`), and
//!   `deleted` when the chat goes;
//! - `agent:{agent_type}`: the agent that slug names for the caller, when it changes
//!   (`updated`) or no longer exists for them (`deleted`);
//! - `project:{project_id}`: one of the caller's projects when it changes (`updated`).
//!
//! A channel the caller may not read is refused like a missing one. Events come from the bus
//! (so from every process on PostgreSQL); the caller is checked again before every push, and
//! the socket closes when its identity ends. The message shapes are in docs/rest.md.

use super::nexus_llm::agent_type_json;
use super::openapi::NEXUS;
use super::streaming::close_message;
use super::ts;
use super::DocRouter;
use crate::auth::Caller;
use crate::db::models::Message;
use crate::error::{AppError, ErrorCode};
use crate::events::Event;
use crate::service::auth::{self, recheck, Credential};
use crate::service::streams::stream_end;
use crate::service::{agents, chats, projects};
use crate::state::AppState;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use utoipa_axum::routes;

/// How long a client has to authenticate.
const AUTH_WITHIN: Duration = Duration::from_secs(10);
/// Channels one socket may follow.
const MAX_CHANNELS: usize = 64;
/// Messages of a chat sent per event at most (the rest follow on the next one).
const MESSAGES_PER_EVENT: i64 = 100;

/// The route (at the root, as the seed's `wss://host/ws`).
pub fn router() -> DocRouter {
    DocRouter::new().routes(routes!(socket))
}

/// Opens seed 002's WebSocket of live events on chats, agents and projects.
///
/// The handshake needs no credential: the first message authenticates
/// (`{type: "auth", token: "Bearer …"}`, within 10 seconds), answered by `{type: "auth_ok",
/// user_id}`. Then `{type: "subscribe" | "unsubscribe", channel}` (`chat:{session_id}`,
/// `agent:{agent_type}`, `project:{project_id}`; 64 at most) and `{type: "ping"}`; events come
/// as `{type: "event", channel, event, data}` (`message`, `updated`, `deleted`), errors as
/// `{type: "error", error: {code, message, details}, channel?}`. Shapes in docs/rest.md.
#[utoipa::path(get, path = "/ws", tag = NEXUS, security(()),
    responses((status = 101, description = "Switching protocols: JSON text messages; the first authenticates, then channel subscriptions and their events")))]
async fn socket(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .max_message_size(16 * 1024)
        .on_upgrade(move |socket| serve(state, socket))
}

/// A message from the client.
#[derive(Deserialize)]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: String,
    token: Option<String>,
    channel: Option<String>,
}

/// A followed channel.
#[derive(Clone, PartialEq, Eq)]
enum Channel {
    Chat(i64),
    Agent(String),
    Project(i64),
}

impl Channel {
    fn parse(s: &str) -> Result<Self, AppError> {
        let bad = || {
            AppError::new(
                ErrorCode::BadRequest,
                "channel must be `chat:<session_id>`, `agent:<agent_type>` or `project:<project_id>`",
            )
        };
        let (kind, id) = s.split_once(':').ok_or_else(bad)?;
        let number = || {
            id.parse::<i64>()
                .map_err(|_| AppError::not_found("channel"))
        };
        match kind {
            "chat" => Ok(Channel::Chat(number()?)),
            "project" => Ok(Channel::Project(number()?)),
            "agent" if !id.is_empty() && id.len() <= 128 => Ok(Channel::Agent(id.to_string())),
            _ => Err(bad()),
        }
    }
}

/// What a subscription remembers: for a chat, the last message sent.
struct Followed {
    channel: Channel,
    last_message: i64,
}

fn error_frame(e: &AppError, channel: Option<&str>) -> WsMessage {
    let mut v = json!({
        "type": "error",
        "error": {
            "code": e.code.as_str().to_uppercase(),
            "message": e.message,
            "details": e.details.clone().unwrap_or_else(|| json!({})),
        },
    });
    if let Some(c) = channel {
        v["channel"] = json!(c);
    }
    WsMessage::Text(v.to_string().into())
}

fn frame(v: Value) -> WsMessage {
    WsMessage::Text(v.to_string().into())
}

fn event_frame(channel: &str, event: &str, data: Value) -> WsMessage {
    frame(json!({ "type": "event", "channel": channel, "event": event, "data": data }))
}

fn message_json(m: &Message) -> Value {
    json!({
        "id": m.id.to_string(),
        "session_id": m.chat_id.to_string(),
        "role": m.role,
        "content": m.content,
        "status": m.status,
        "model": m.model,
        "created_at": ts(m.created_at),
    })
}

/// Reads the `auth` message; the caller, or the refusal to send before closing.
async fn authenticate(
    state: &AppState,
    rx: &mut futures_util::stream::SplitStream<WebSocket>,
) -> Result<Caller, AppError> {
    let first = tokio::time::timeout(AUTH_WITHIN, rx.next())
        .await
        .map_err(|_| AppError::unauthenticated())?;
    let Some(Ok(WsMessage::Text(text))) = first else {
        return Err(AppError::unauthenticated());
    };
    let msg: ClientMessage = serde_json::from_str(&text).map_err(|_| {
        AppError::new(
            ErrorCode::Unauthenticated,
            "first message must be {type: \"auth\", token}",
        )
    })?;
    let token = match (msg.kind.as_str(), msg.token) {
        ("auth", Some(t)) => t,
        _ => {
            return Err(AppError::new(
                ErrorCode::Unauthenticated,
                "first message must be {type: \"auth\", token}",
            ))
        }
    };
    let token = token.trim();
    let token = token
        .strip_prefix("Bearer ")
        .or_else(|| token.strip_prefix("bearer "))
        .unwrap_or(token)
        .trim()
        .to_string();
    auth::authenticate(state, Credential::Bearer(token)).await
}

/// Checks that the caller may follow `channel`; for a chat, the newest message id (only
/// later ones are sent).
async fn admit(state: &AppState, caller: &Caller, channel: &Channel) -> Result<i64, AppError> {
    match channel {
        Channel::Chat(id) => chats::last_message_id(state, caller, *id).await,
        Channel::Agent(slug) => agents::by_slug(state, caller, slug).await.map(|_| 0),
        Channel::Project(id) => projects::get(state, caller, *id).await.map(|_| 0),
    }
}

/// The frames a bus event means for one followed channel.
async fn frames_for(
    state: &AppState,
    caller: &Caller,
    name: &str,
    followed: &mut Followed,
    event: &Event,
) -> Vec<WsMessage> {
    match (&followed.channel, event) {
        (Channel::Chat(id), Event::ChatUpserted { chat_id, .. }) if chat_id == id => {
            match chats::messages_after(
                state,
                caller,
                *id,
                followed.last_message,
                MESSAGES_PER_EVENT,
            )
            .await
            {
                Ok(messages) => {
                    if let Some(last) = messages.last() {
                        followed.last_message = last.id;
                    }
                    messages
                        .iter()
                        .map(|m| event_frame(name, "message", message_json(m)))
                        .collect()
                }
                Err(e) if e.code == ErrorCode::NotFound => {
                    vec![event_frame(
                        name,
                        "deleted",
                        json!({ "session_id": id.to_string() }),
                    )]
                }
                Err(e) => vec![error_frame(&e, Some(name))],
            }
        }
        (Channel::Chat(id), Event::ChatDeleted { chat_id, .. }) if chat_id == id => {
            vec![event_frame(
                name,
                "deleted",
                json!({ "session_id": id.to_string() }),
            )]
        }
        (Channel::Agent(slug), Event::AgentChanged { slug: changed, .. }) if changed == slug => {
            match agents::by_slug(state, caller, slug).await {
                Ok(agent) => vec![event_frame(name, "updated", agent_type_json(&agent))],
                Err(e) if e.code == ErrorCode::NotFound => {
                    vec![event_frame(name, "deleted", json!({ "type": slug }))]
                }
                Err(e) => vec![error_frame(&e, Some(name))],
            }
        }
        (Channel::Project(id), Event::ProjectChanged { project_id, .. }) if project_id == id => {
            match projects::get(state, caller, *id).await {
                Ok(p) => vec![event_frame(name, "updated", super::nexus::project_json(&p))],
                Err(e) => vec![error_frame(&e, Some(name))],
            }
        }
        _ => Vec::new(),
    }
}

/// Whether a bus event can concern any channel kind (others are skipped unread).
fn relevant(event: &Event) -> bool {
    matches!(
        event,
        Event::ChatUpserted { .. }
            | Event::ChatDeleted { .. }
            | Event::AgentChanged { .. }
            | Event::ProjectChanged { .. }
    )
}

async fn serve(state: AppState, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let caller = match authenticate(&state, &mut rx).await {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.send(error_frame(&e, None)).await;
            let _ = tx
                .send(WsMessage::Close(Some(CloseFrame {
                    code: crate::graphql::socket::close_code(&e),
                    reason: "authentication failed".into(),
                })))
                .await;
            return;
        }
    };
    // Subscribed before the answer, so nothing published after it is missed.
    let mut bus = state.events.subscribe();
    let hello = json!({ "type": "auth_ok", "user_id": caller.user_id().to_string() });
    if tx.send(frame(hello)).await.is_err() {
        return;
    }
    let opened_as = caller.clone();
    let end = stream_end(&state, &opened_as, None);
    tokio::pin!(end);
    let mut caller = caller;
    let mut followed: HashMap<String, Followed> = HashMap::new();
    loop {
        let out: Vec<WsMessage> = tokio::select! {
            why = &mut end => {
                let _ = tx.send(close_message(&why)).await;
                return;
            }
            incoming = rx.next() => {
                let text = match incoming {
                    Some(Ok(WsMessage::Text(t))) => t,
                    Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                handle(&state, &caller, &mut followed, &text).await
            }
            event = bus.recv() => match event {
                Ok(e) if relevant(&e) && !followed.is_empty() => {
                    // Every push acts as the caller is now, or not at all.
                    match recheck(&state, &caller).await {
                        Ok(now) => caller = now,
                        Err(_) => continue,
                    }
                    let mut out = Vec::new();
                    for (name, f) in followed.iter_mut() {
                        out.extend(frames_for(&state, &caller, name, f, &e).await);
                    }
                    out
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => {
                    let e = AppError::new(
                        ErrorCode::Unavailable,
                        format!("{n} events were missed; read the channels' state again"),
                    );
                    vec![error_frame(&e, None)]
                }
                Err(RecvError::Closed) => break,
            },
        };
        for m in out {
            if tx.send(m).await.is_err() {
                return;
            }
        }
    }
    let _ = tx.close().await;
}

/// Answers one client message: subscribe, unsubscribe or ping.
async fn handle(
    state: &AppState,
    caller: &Caller,
    followed: &mut HashMap<String, Followed>,
    text: &str,
) -> Vec<WsMessage> {
    let msg: ClientMessage = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(e) => {
            let e = AppError::new(ErrorCode::BadRequest, format!("not a JSON message: {e}"));
            return vec![error_frame(&e, None)];
        }
    };
    let name = msg.channel.unwrap_or_default();
    match msg.kind.as_str() {
        "ping" => vec![frame(json!({ "type": "pong" }))],
        "subscribe" => {
            let channel = match Channel::parse(&name) {
                Ok(c) => c,
                Err(e) => return vec![error_frame(&e, Some(&name))],
            };
            if !followed.contains_key(&name) && followed.len() >= MAX_CHANNELS {
                let e = AppError::new(
                    ErrorCode::QuotaExceeded,
                    format!("at most {MAX_CHANNELS} channels per socket"),
                );
                return vec![error_frame(&e, Some(&name))];
            }
            let checked = match recheck(state, caller).await {
                Ok(now) => admit(state, &now, &channel).await,
                Err(e) => Err(e),
            };
            match checked {
                Ok(last_message) => {
                    followed.insert(
                        name.clone(),
                        Followed {
                            channel,
                            last_message,
                        },
                    );
                    vec![frame(json!({ "type": "subscribed", "channel": name }))]
                }
                Err(e) => vec![error_frame(&e, Some(&name))],
            }
        }
        "unsubscribe" => {
            followed.remove(&name);
            vec![frame(json!({ "type": "unsubscribed", "channel": name }))]
        }
        other => {
            let e = AppError::new(
                ErrorCode::BadRequest,
                format!("unknown message type `{other}` (subscribe, unsubscribe, ping)"),
            );
            vec![error_frame(&e, None)]
        }
    }
}

//! Seed 001's socket.io endpoint at `/ws/socket.io` (socketioxide, default namespace):
//! connect with `auth: {token}`, then `join_chat` / `leave_chat` `{chat_id}` and `typing`
//! `{chat_id, is_typing}`; the server emits `new_message` (seed 001's message shape) for each
//! message stored in a joined chat, and `user_typing` `{chat_id, user_id, is_typing}` to the
//! other sockets that joined it. Both travel on the event bus, so they cross processes on
//! PostgreSQL. A refused request is answered with an `error` event `{code, message}`.
//!
//! Each socket runs one task that follows the bus for the chats it joined; the caller is
//! checked again before every push and the socket is disconnected when its identity ends.
//! Every message a client sends spends the `foyer_socket` budget of its address (seed 001
//! counts per IP); an over-budget message is answered with an `error` event
//! `{code: "rate_limited", message, details: {retry_after, …}}` and the socket stays open.

use super::foyer::message_json;
use crate::auth::Caller;
use crate::error::{AppError, ErrorCode};
use crate::events::Event;
use crate::limits::{Rule, Who};
use crate::service::auth::{self, recheck, Credential};
use crate::service::chats;
use crate::service::streams::stream_end;
use crate::state::AppState;
use serde::Deserialize;
use serde_json::{json, Value};
use socketioxide::extract::{Data, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::SocketIo;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// Chats one socket may join.
const MAX_JOINED: usize = 64;
/// Messages of a chat emitted per bus event at most.
const MESSAGES_PER_EVENT: i64 = 100;

/// The joined chats of one socket, with the last message emitted for each.
#[derive(Clone, Default)]
struct Joined(Arc<Mutex<HashMap<i64, i64>>>);

impl Joined {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, i64>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Ends the socket's bus task when the socket goes.
#[derive(Clone)]
struct Closing(CancellationToken);

/// The largest message a client may send, on either transport; a larger one closes its socket.
const MAX_MESSAGE: usize = 64 * 1024;

/// The layer serving `/ws/socket.io` (placed around the router).
pub fn layer(state: AppState) -> SocketIoLayer {
    let (layer, io) = SocketIo::builder()
        .req_path("/ws/socket.io")
        // One bound for both transports: `max_payload` covers polling only, and the
        // WebSocket transport's own defaults are 64 MiB messages and 16 MiB frames.
        .max_payload(MAX_MESSAGE as u64)
        .ws_max_message_size(MAX_MESSAGE)
        .ws_max_frame_size(MAX_MESSAGE)
        .with_state(state)
        .build_layer();
    io.ns("/", connected.with(authenticate));
    layer
}

#[derive(Deserialize)]
struct AuthData {
    token: Option<String>,
}

/// Connect middleware: `auth.token` must be a valid access token or API key; the caller is
/// kept in the socket's extensions. A refusal is the client's `connect_error`.
async fn authenticate(
    s: SocketRef,
    State(state): State<AppState>,
    TryData(auth): TryData<AuthData>,
) -> Result<(), AppError> {
    let token = auth
        .ok()
        .and_then(|a| a.token)
        .ok_or_else(AppError::unauthenticated)?;
    let token = token.trim();
    let token = token
        .strip_prefix("Bearer ")
        .unwrap_or(token)
        .trim()
        .to_string();
    let caller = auth::authenticate(&state, Credential::Bearer(token)).await?;
    s.extensions.insert(caller);
    let parts = s.req_parts();
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    s.extensions.insert(Address(crate::http::limit::address_of(
        &state,
        &parts.headers,
        peer,
    )));
    Ok(())
}

#[derive(Deserialize)]
struct ChatRef {
    chat_id: Value,
}

#[derive(Deserialize)]
struct Typing {
    chat_id: Value,
    #[serde(default)]
    is_typing: bool,
}

/// Seed 001 sends ids as numbers; strings of digits are taken too.
fn chat_id(v: &Value) -> Result<i64, AppError> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .ok_or_else(|| AppError::validation("chat_id", "chat_id must be a chat's id"))
}

fn emit_error(s: &SocketRef, e: &AppError) {
    let mut body = json!({ "code": e.code.as_str(), "message": e.message });
    if let Some(d) = &e.details {
        body["details"] = d.clone();
    }
    let _ = s.emit("error", &body);
}

/// The client address a socket's messages are counted against.
#[derive(Clone, Copy)]
struct Address(Who);

/// Spends one message of the socket's address budget; the refusal to answer with.
async fn spend(state: &AppState, s: &SocketRef) -> Result<(), AppError> {
    match s.extensions.get::<Address>() {
        Some(Address(who)) => {
            state
                .limits
                .enforce(Rule::FoyerSocket, who, "socket.io messages")
                .await
        }
        None => Ok(()),
    }
}

/// The socket's caller as it is now, or the error that ends it.
async fn current(state: &AppState, s: &SocketRef) -> Result<Caller, AppError> {
    let caller = s
        .extensions
        .get::<Caller>()
        .ok_or_else(AppError::unauthenticated)?;
    let now = recheck(state, &caller).await?;
    s.extensions.insert(now.clone());
    Ok(now)
}

async fn connected(s: SocketRef, State(state): State<AppState>) {
    let Some(caller) = s.extensions.get::<Caller>() else {
        let _ = s.disconnect();
        return;
    };
    let joined = Joined::default();
    let closing = Closing(CancellationToken::new());
    s.extensions.insert(joined.clone());
    s.extensions.insert(closing.clone());
    s.on(
        "join_chat",
        async |s: SocketRef, State(state): State<AppState>, Data(d): Data<ChatRef>| {
            let joined = s.extensions.get::<Joined>().unwrap_or_default();
            let outcome = async {
                spend(&state, &s).await?;
                let id = chat_id(&d.chat_id)?;
                let caller = current(&state, &s).await?;
                if !joined.lock().contains_key(&id) && joined.lock().len() >= MAX_JOINED {
                    return Err(AppError::new(
                        ErrorCode::QuotaExceeded,
                        format!("at most {MAX_JOINED} chats per socket"),
                    ));
                }
                let last = chats::last_message_id(&state, &caller, id).await?;
                joined.lock().insert(id, last);
                Ok(id)
            }
            .await;
            match outcome {
                Ok(id) => {
                    let _ = s.emit("joined_chat", &json!({ "chat_id": id }));
                }
                Err(e) => emit_error(&s, &e),
            }
        },
    );
    s.on(
        "leave_chat",
        async |s: SocketRef, State(state): State<AppState>, Data(d): Data<ChatRef>| {
            let outcome = async {
                spend(&state, &s).await?;
                chat_id(&d.chat_id)
            }
            .await;
            match outcome {
                Ok(id) => {
                    if let Some(joined) = s.extensions.get::<Joined>() {
                        joined.lock().remove(&id);
                    }
                    let _ = s.emit("left_chat", &json!({ "chat_id": id }));
                }
                Err(e) => emit_error(&s, &e),
            }
        },
    );
    s.on(
        "typing",
        async |s: SocketRef, State(state): State<AppState>, Data(d): Data<Typing>| {
            let outcome = async {
                spend(&state, &s).await?;
                let id = chat_id(&d.chat_id)?;
                let caller = current(&state, &s).await?;
                let joined = s.extensions.get::<Joined>().unwrap_or_default();
                if !joined.lock().contains_key(&id) {
                    return Err(AppError::new(
                        ErrorCode::BadRequest,
                        "join the chat before typing in it",
                    ));
                }
                state.events.publish(Event::ChatTyping {
                    user_id: caller.user_id(),
                    chat_id: id,
                    is_typing: d.is_typing,
                    socket: s.id.to_string(),
                });
                Ok(())
            }
            .await;
            if let Err(e) = outcome {
                emit_error(&s, &e);
            }
        },
    );
    s.on_disconnect(async |s: SocketRef| {
        if let Some(c) = s.extensions.get::<Closing>() {
            c.0.cancel();
        }
    });
    tokio::spawn(follow(state, s, caller, joined, closing));
}

/// Emits what the bus says about the socket's joined chats until the socket or its
/// identity ends.
async fn follow(state: AppState, s: SocketRef, caller: Caller, joined: Joined, closing: Closing) {
    let mut bus = state.events.subscribe();
    let end = stream_end(&state, &caller, None);
    tokio::pin!(end);
    let me = s.id.to_string();
    loop {
        let event = tokio::select! {
            _ = closing.0.cancelled() => return,
            _ = &mut end => {
                let _ = s.disconnect();
                return;
            }
            e = bus.recv() => match e {
                Ok(e) => e,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            },
        };
        let chat = match &event {
            Event::ChatUpserted { chat_id, .. } | Event::ChatTyping { chat_id, .. } => *chat_id,
            _ => continue,
        };
        let Some(last) = joined.lock().get(&chat).copied() else {
            continue;
        };
        // Every push acts as the caller is now, or not at all.
        let Ok(caller) = current(&state, &s).await else {
            continue;
        };
        match event {
            Event::ChatTyping {
                user_id,
                is_typing,
                socket,
                ..
            } if socket != me => {
                let _ = s.emit(
                    "user_typing",
                    &json!({ "chat_id": chat, "user_id": user_id, "is_typing": is_typing }),
                );
            }
            Event::ChatUpserted { .. } => {
                match chats::messages_after(&state, &caller, chat, last, MESSAGES_PER_EVENT).await {
                    Ok(messages) => {
                        if let Some(m) = messages.last() {
                            joined.lock().insert(chat, m.id);
                        }
                        for m in &messages {
                            let _ = s.emit("new_message", &message_json(m));
                        }
                    }
                    // The chat is gone (or no longer the caller's): it is left.
                    Err(_) => {
                        joined.lock().remove(&chat);
                    }
                }
            }
            _ => {}
        }
    }
}

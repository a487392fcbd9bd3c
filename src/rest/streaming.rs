//! Shared plumbing for the streaming REST doors: SSE responses, one turn's events out of its
//! chat's channel, stateless generations as events, and the WebSocket write loop.

use crate::auth::Caller;
use crate::error::AppError;
use crate::events::turns::TurnEvent;
use crate::llm::{Chunk, ChunkStream, FinishReason, Usage};
use crate::service::streams::{stream_end, StreamEnd};
use crate::service::turns::TurnStart;
use crate::state::AppState;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

/// An SSE response of `data:` lines for `caller`, with keep-alive comments while the model
/// thinks; it ends early when [`stream_end`] says so (the turn itself goes on and is stored).
pub fn sse(
    state: &AppState,
    caller: &Caller,
    data: impl Stream<Item = String> + Send + 'static,
) -> Response {
    let (state, caller) = (state.clone(), caller.clone());
    let end = async move { stream_end(&state, &caller, None).await };
    let events = data
        .take_until(end)
        .map(|d| Ok::<_, Infallible>(SseEvent::default().data(d)));
    let mut res = Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response();
    // Proxies (nginx) must not buffer a token stream.
    res.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    res
}

/// The events of one turn, from `Started` to its `Response` or `Error` (then the stream ends).
/// Other turns of the chat and a lagging receiver's gaps are skipped; the final event always
/// carries the whole stored message.
pub fn turn_events(start: TurnStart) -> impl Stream<Item = Arc<TurnEvent>> + Send + 'static {
    let message_id = start.message_id;
    let mut listener = start.events;
    async_stream::stream! {
        loop {
            match listener.rx.recv().await {
                Ok(e) => {
                    let (mine, last) = match &*e {
                        TurnEvent::Started { message_id: m, .. }
                        | TurnEvent::Token { message_id: m, .. }
                        | TurnEvent::Step { message_id: m, .. } => (*m == message_id, false),
                        TurnEvent::Response { message, .. } => (message.id == message_id, true),
                        TurnEvent::Error { message_id: m, .. } => (m.is_none_or(|m| m == message_id), true),
                    };
                    if mine {
                        yield e;
                        if last {
                            break;
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            }
        }
    }
}

/// One item of a stateless generation as a transport sees it.
pub enum Gen {
    /// A text piece.
    Token(String),
    /// The end.
    Done(Usage, FinishReason),
    /// The upstream broke off.
    Failed(AppError),
}

/// Flattens a provider stream into [`Gen`] items that always end with `Done` or `Failed`.
pub fn generation(mut s: ChunkStream) -> impl Stream<Item = Gen> + Send + 'static {
    async_stream::stream! {
        loop {
            match s.next().await {
                Some(Ok(Chunk::Token(t))) => yield Gen::Token(t),
                Some(Ok(Chunk::Done { usage, finish, .. })) => {
                    yield Gen::Done(usage, finish);
                    break;
                }
                Some(Err(e)) => {
                    yield Gen::Failed(e);
                    break;
                }
                None => {
                    yield Gen::Failed(AppError::new(
                        crate::error::ErrorCode::LlmUnavailable,
                        "the model stopped without finishing",
                    ));
                    break;
                }
            }
        }
    }
}

/// Seconds since the epoch (OpenAI `created`, seed 003 `ts` in ms uses [`now_ms`]).
pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The close frame a streaming WebSocket door sends when [`stream_end`] ends it: 4401/4403
/// when the caller's identity ended, 1001 ("going away") on shutdown, 1000 otherwise.
pub fn close_message(why: &StreamEnd) -> axum::extract::ws::Message {
    use axum::extract::ws::{CloseFrame, Message};
    let (code, reason) = match why {
        StreamEnd::Identity(e) => (
            crate::graphql::socket::close_code(e),
            e.message.chars().take(100).collect::<String>(),
        ),
        StreamEnd::Shutdown => (1001, "server shutting down".to_string()),
        StreamEnd::ChatDeleted => (1000, "chat deleted".to_string()),
    };
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

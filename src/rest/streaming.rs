//! Shared plumbing for the streaming REST doors: SSE responses, one turn's events out of its
//! chat's channel, stateless generations as events, and the WebSocket write loop.

use crate::auth::Caller;
use crate::error::AppError;
use crate::events::turns::{Cursor, Sequenced, TurnEvent};
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
    sse_with_ids(state, caller, data.map(|d| (None, d)))
}

/// [`sse`] with an `id:` line before the events that have one (a turn event's cursor), so an
/// `EventSource` that reconnects sends it back as `Last-Event-ID`.
pub fn sse_with_ids(
    state: &AppState,
    caller: &Caller,
    data: impl Stream<Item = (Option<String>, String)> + Send + 'static,
) -> Response {
    let (state, caller) = (state.clone(), caller.clone());
    let end = async move { stream_end(&state, &caller, None).await };
    let events = data.take_until(end).map(|(id, d)| {
        let event = SseEvent::default().data(d);
        Ok::<_, Infallible>(match id {
            Some(id) => event.id(id),
            None => event,
        })
    });
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

/// The events of one turn, from `Started` to its `Response` or `Error` (then the stream ends),
/// each with its cursor. Other turns of the chat are skipped; a receiver that falls behind
/// catches up from the turn's log (or its stored answer), so no event is lost.
pub fn turn_events(
    state: &AppState,
    start: TurnStart,
) -> impl Stream<Item = Arc<Sequenced>> + Send + 'static {
    let (state, chat_id, message_id) = (state.clone(), start.chat.id, start.message_id);
    let mut listener = start.events;
    async_stream::stream! {
        let mut last: Option<Cursor> = None;
        loop {
            let batch = match listener.rx.recv().await {
                Ok(e) => vec![e],
                Err(RecvError::Lagged(_)) => {
                    let from = last.unwrap_or(Cursor { message_id, ..Cursor::default() });
                    match Box::pin(crate::service::turn_stream::missed(&state, chat_id, from)).await {
                        Ok(events) => events,
                        Err(_) => continue,
                    }
                }
                Err(RecvError::Closed) => break,
            };
            for e in batch {
                let mine = match &e.event {
                    TurnEvent::Error { message_id: None, .. } => true,
                    _ => e.cursor.message_id == message_id,
                };
                if !mine || last.is_some_and(|l| e.cursor.seq <= l.seq) {
                    continue;
                }
                last = Some(e.cursor);
                let done = e.cursor.done;
                yield e;
                if done {
                    return;
                }
            }
        }
    }
}

/// The rest of the turn a client was following when it lost its stream: the events after
/// `cursor` (exactly those it missed, then live), up to the end of that turn — or of the next
/// one, when `cursor` is a turn's last event and another has begun since.
pub async fn resumed_turn(
    state: &AppState,
    caller: &Caller,
    chat_id: i64,
    cursor: Cursor,
) -> Result<impl Stream<Item = Arc<Sequenced>> + Send + 'static, AppError> {
    let events = crate::service::turn_stream::follow(state, caller, chat_id, Some(cursor)).await?;
    Ok(async_stream::stream! {
        futures_util::pin_mut!(events);
        while let Some(e) = events.next().await {
            let done = e.cursor.done;
            yield e;
            if done {
                break;
            }
        }
    })
}

/// A resume cursor from a client (`Last-Event-ID`, a resume message).
pub fn parse_cursor(field: &str, raw: &str) -> Result<Cursor, AppError> {
    Cursor::parse(raw)
        .ok_or_else(|| AppError::validation(field, format!("{field} is not a chat event cursor")))
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

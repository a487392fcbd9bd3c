//! A chat's turn events for one subscriber, resumable: given the cursor of the last event a
//! client saw, [`follow`] first replays what it missed — from the running turn's log in this
//! process, or from the stored messages once turns ended — then streams the live events,
//! with no gap and no duplicate. A subscriber that falls behind the chat's channel catches up
//! from the same sources instead of skipping events.

use crate::auth::Caller;
use crate::db::enums::{MessageRole, MessageStatus};
use crate::db::models::Message;
use crate::db::schema::messages;
use crate::db_run;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::events::turns::{Cursor, Sequenced, TurnEvent};
use crate::llm::Usage;
use crate::service::chats;
use crate::state::AppState;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures_util::Stream;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

/// Where a subscriber stands: what it received last.
#[derive(Clone, Copy)]
struct Delivered(Option<Cursor>);

impl Delivered {
    /// Whether `c` is news to the subscriber.
    fn wants(&self, c: &Cursor) -> bool {
        match self.0 {
            None => true,
            Some(d) => {
                c.message_id > d.message_id || (c.message_id == d.message_id && c.seq > d.seq)
            }
        }
    }
}

/// Events of one of the caller's chats from after `after` (or from now), then live. Ends
/// when the chat's channel closes; transports end it earlier with
/// [`crate::service::streams::stream_end`].
pub async fn follow(
    state: &AppState,
    caller: &Caller,
    chat_id: i64,
    after: Option<Cursor>,
) -> AppResult<impl Stream<Item = Arc<Sequenced>> + Send + 'static> {
    chats::get(state, caller, chat_id).await?;
    // Listen first, then read what was missed: whatever is sent in between arrives twice
    // and is dropped by its cursor, nothing falls between the two.
    let mut listener = state.turns.listen(chat_id);
    let backlog = match after {
        Some(c) => {
            check_cursor(state, chat_id, &c).await?;
            missed(state, chat_id, c).await?
        }
        None => Vec::new(),
    };
    let state = state.clone();
    Ok(async_stream::stream! {
        let mut delivered = Delivered(after);
        for e in backlog {
            if delivered.wants(&e.cursor) {
                delivered = Delivered(Some(e.cursor));
                yield e;
            }
        }
        loop {
            match listener.rx.recv().await {
                Ok(e) => {
                    if delivered.wants(&e.cursor) {
                        delivered = Delivered(Some(e.cursor));
                        yield e;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    // Catch up from the log or the stored answers, then go on live.
                    let from = delivered.0.unwrap_or_default();
                    match missed(&state, chat_id, from).await {
                        Ok(events) => {
                            for e in events {
                                if delivered.wants(&e.cursor) {
                                    delivered = Delivered(Some(e.cursor));
                                    yield e;
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e.message, chat_id, "a lagging subscriber could not catch up");
                            break;
                        }
                    }
                }
                Err(RecvError::Closed) => break,
            }
        }
    })
}

/// A cursor must name an answer of this chat and stay inside its text.
async fn check_cursor(state: &AppState, chat_id: i64, c: &Cursor) -> AppResult<()> {
    let invalid = || AppError::validation("after", "this cursor does not belong to this chat");
    if c.message_id == 0 && c.seq == 0 {
        return Ok(());
    }
    let db = &state.db;
    let id = c.message_id;
    let found: Option<Message> = db_run!(db, read, |conn| messages::table
        .filter(messages::id.eq(id))
        .filter(messages::chat_id.eq(chat_id))
        .filter(messages::role.eq(MessageRole::Assistant))
        .select(Message::as_select())
        .first(conn)
        .await
        .optional()
        .map_err(AppError::from))?;
    found.map(|_| ()).ok_or_else(invalid)
}

/// What a subscriber standing at `c` has not seen, in order: the rest of the answers that
/// ended since (from the database), then the running turn's events (from its log).
pub(crate) async fn missed(
    state: &AppState,
    chat_id: i64,
    c: Cursor,
) -> AppResult<Vec<Arc<Sequenced>>> {
    // The running turn's log first: an answer it covers is served from it even if it ends
    // meanwhile (its last events then arrive live).
    let running = state.turns.with_log(chat_id, |log| {
        let events = if log.message_id == c.message_id {
            log.after(c.seq)
        } else {
            log.after(0)
        };
        (log.message_id, log.text.clone(), log.last_seq, events)
    });
    let running_id = running.as_ref().map(|r| r.0);
    let db = &state.db;
    let from = c.message_id;
    let rows: Vec<Message> = db_run!(db, read, |conn| messages::table
        .filter(messages::chat_id.eq(chat_id))
        .filter(messages::id.ge(from))
        .order(messages::id.asc())
        .select(Message::as_select())
        .load(conn)
        .await
        .map_err(AppError::from))?;
    let mut out = Vec::new();
    let mut last_user = None;
    for m in rows {
        if m.role == MessageRole::User {
            last_user = Some(m.id);
            continue;
        }
        if m.role != MessageRole::Assistant || Some(m.id) == running_id {
            continue;
        }
        let same = m.id == c.message_id;
        if same && c.done {
            continue;
        }
        let (mut seq, offset) = if same { (c.seq, c.offset) } else { (0, 0) };
        let mid = m.id;
        let mut push = |event: TurnEvent, offset: usize, done: bool, seq: &mut u64| {
            *seq += 1;
            out.push(Arc::new(Sequenced {
                cursor: Cursor {
                    message_id: mid,
                    seq: *seq,
                    offset,
                    done,
                },
                event,
            }));
        };
        if !same {
            push(
                TurnEvent::Started {
                    chat_id,
                    user_message_id: last_user.unwrap_or(0),
                    message_id: m.id,
                    model: m.model.clone().unwrap_or_default(),
                },
                0,
                false,
                &mut seq,
            );
        }
        let rest = m.content.get(offset..).ok_or_else(|| {
            AppError::validation("after", "this cursor does not match the stored answer")
        })?;
        if !rest.is_empty() {
            push(
                TurnEvent::Token {
                    chat_id,
                    message_id: m.id,
                    delta: Arc::from(rest),
                },
                m.content.len(),
                false,
                &mut seq,
            );
        }
        let end = m.content.len();
        match m.status {
            MessageStatus::Streaming => {
                // Running on another process (or left by a crash not yet recovered): what
                // its last checkpoint holds; the rest follows with the stored answer.
                continue;
            }
            MessageStatus::Complete | MessageStatus::Cancelled => {
                let usage = Usage {
                    prompt_tokens: m.prompt_tokens.unwrap_or(0).max(0) as u32,
                    completion_tokens: m.completion_tokens.unwrap_or(0).max(0) as u32,
                };
                push(
                    TurnEvent::Response {
                        chat_id,
                        message: Arc::new(m),
                        usage,
                    },
                    end,
                    true,
                    &mut seq,
                );
            }
            MessageStatus::Error | MessageStatus::Interrupted => {
                let (code, text) = if m.status == MessageStatus::Interrupted {
                    (
                        ErrorCode::Unavailable,
                        "the answer was interrupted (the server stopped); it keeps what was written",
                    )
                } else {
                    (
                        ErrorCode::LlmUnavailable,
                        "the answer failed; it keeps what was written",
                    )
                };
                push(
                    TurnEvent::Error {
                        chat_id,
                        message_id: Some(m.id),
                        code,
                        message: text.into(),
                    },
                    end,
                    true,
                    &mut seq,
                );
            }
        }
    }
    if let Some((message_id, text, last_seq, events)) = running {
        match events {
            Some(events) => out.extend(events),
            None => {
                // Older than the log's window: the missed text as one piece, then live.
                let offset = if message_id == c.message_id {
                    c.offset
                } else {
                    0
                };
                if let Some(rest) = text.get(offset..).filter(|r| !r.is_empty()) {
                    out.push(Arc::new(Sequenced {
                        cursor: Cursor {
                            message_id,
                            seq: last_seq,
                            offset: text.len(),
                            done: false,
                        },
                        event: TurnEvent::Token {
                            chat_id,
                            message_id,
                            delta: Arc::from(rest),
                        },
                    }));
                }
            }
        }
    }
    Ok(out)
}

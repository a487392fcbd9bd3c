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
use crate::events::turns::{Cursor, Sequenced, StepKind, TurnEvent};
use crate::llm::Usage;
use crate::service::chats;
use crate::state::AppState;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures_util::Stream;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

/// Where a subscriber stands: what it received last. Text is tracked by offset (a token
/// relayed from another process is numbered there, not here), other events by number.
#[derive(Clone, Copy)]
struct Delivered(Option<Cursor>);

impl Delivered {
    /// `e` as the subscriber still needs it: `None` when it has it already, a token cut to
    /// its unseen part when it has some of its text.
    fn take(&mut self, e: Arc<Sequenced>) -> Option<Arc<Sequenced>> {
        let c = e.cursor;
        let Some(d) = self.0 else {
            self.0 = Some(c);
            return Some(e);
        };
        if c.message_id != d.message_id {
            if c.message_id < d.message_id {
                return None;
            }
            self.0 = Some(c);
            return Some(e);
        }
        if d.done {
            return None;
        }
        let out = match &e.event {
            TurnEvent::Token {
                chat_id,
                message_id,
                delta,
            } => {
                if c.offset <= d.offset {
                    return None;
                }
                let start = c.offset - delta.len();
                if start >= d.offset {
                    e.clone()
                } else {
                    let rest = delta.get(d.offset - start..)?;
                    Arc::new(Sequenced {
                        cursor: c,
                        event: TurnEvent::Token {
                            chat_id: *chat_id,
                            message_id: *message_id,
                            delta: Arc::from(rest),
                        },
                    })
                }
            }
            TurnEvent::Response { .. } | TurnEvent::Error { .. } => e.clone(),
            TurnEvent::Started { .. } | TurnEvent::Step { .. } if c.seq > d.seq => e.clone(),
            _ => return None,
        };
        self.0 = Some(Cursor {
            message_id: c.message_id,
            seq: c.seq.max(d.seq),
            offset: c.offset.max(d.offset),
            done: c.done,
        });
        Some(out)
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
            if let Some(e) = delivered.take(e) {
                yield e;
            }
        }
        loop {
            match listener.rx.recv().await {
                Ok(e) => {
                    if let Some(e) = delivered.take(e) {
                        yield e;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    // Catch up from the log or the stored answers, then go on live.
                    let from = delivered.0.unwrap_or_default();
                    // Boxed: an idle subscription's state stays small (this future, with its
                    // queries, would otherwise be held inline by every stream).
                    match Box::pin(missed(&state, chat_id, from)).await {
                        Ok(events) => {
                            for e in events {
                                if let Some(e) = delivered.take(e) {
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
        let rest = match m.content.get(offset..) {
            Some(rest) => rest,
            // Still being written elsewhere, and the client is ahead of its last checkpoint:
            // the rest comes with the next ones.
            None if m.status == MessageStatus::Streaming => "",
            None => {
                return Err(AppError::validation(
                    "after",
                    "this cursor does not match the stored answer",
                ))
            }
        };
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
        if let Some(event) = ending(chat_id, m) {
            push(event, end, true, &mut seq);
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

/// The last event of a stored answer: `RESPONSE` (complete, cancelled) or `ERROR` (failed,
/// interrupted, with what was written); `None` while it is still being written.
fn ending(chat_id: i64, m: Message) -> Option<TurnEvent> {
    Some(match m.status {
        MessageStatus::Streaming => return None,
        MessageStatus::Complete | MessageStatus::Cancelled => TurnEvent::Response {
            chat_id,
            usage: Usage {
                prompt_tokens: m.prompt_tokens.unwrap_or(0).max(0) as u32,
                completion_tokens: m.completion_tokens.unwrap_or(0).max(0) as u32,
            },
            message: Arc::new(m),
        },
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
            TurnEvent::Error {
                chat_id,
                message_id: Some(m.id),
                code,
                message: text.into(),
            }
        }
    })
}

/// What this process relayed of an answer running on another process.
struct Relayed {
    message_id: i64,
    seq: u64,
    offset: usize,
}

/// Relays answers running on other processes to this process's listeners of their chats:
/// at each of their checkpoints the new text (read from the database) as one `TOKEN`, at
/// their end the rest and the stored answer. PostgreSQL only.
pub fn start_relay(state: &AppState) {
    if state.db.backend() != crate::db::Backend::Postgres {
        return;
    }
    let s = state.clone();
    let mut bus = state.events.subscribe();
    state.background.spawn_service(async move {
        let mut relayed: std::collections::HashMap<i64, Relayed> = Default::default();
        let stop = s.background.stopping().clone();
        loop {
            let event = tokio::select! {
                _ = stop.cancelled() => break,
                e = bus.recv() => e,
            };
            match event {
                Ok(crate::events::Event::AnswerProgress {
                    origin,
                    chat_id,
                    message_id,
                    done,
                }) if origin != s.turns.origin => {
                    if !s.turns.has_listeners(chat_id) {
                        relayed.remove(&chat_id);
                        continue;
                    }
                    if let Err(e) = relay(&s, &mut relayed, chat_id, message_id, done).await {
                        tracing::debug!(error = %e.message, chat_id, "answer relay failed");
                    }
                }
                Ok(crate::events::Event::AnswerStep {
                    origin,
                    chat_id,
                    message_id,
                    kind,
                    content,
                    tool,
                    params,
                }) if origin != s.turns.origin => {
                    let Some(kind) = StepKind::parse(&kind) else {
                        continue;
                    };
                    if !s.turns.has_listeners(chat_id) {
                        relayed.remove(&chat_id);
                        continue;
                    }
                    // The text written before the step first (stored before it was sent).
                    if let Err(e) = relay(&s, &mut relayed, chat_id, message_id, false).await {
                        tracing::debug!(error = %e.message, chat_id, "answer relay failed");
                        continue;
                    }
                    if let Some(r) = relayed
                        .get_mut(&chat_id)
                        .filter(|r| r.message_id == message_id)
                    {
                        let step = TurnEvent::Step {
                            chat_id,
                            message_id,
                            kind,
                            content,
                            tool,
                            params,
                        };
                        push(&s, r, chat_id, step, false);
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            }
        }
    });
}

/// Sends one relayed event of the answer `r` follows, numbered after the last.
fn push(state: &AppState, r: &mut Relayed, chat_id: i64, event: TurnEvent, done: bool) {
    r.seq += 1;
    state.turns.relay(
        chat_id,
        Arc::new(Sequenced {
            cursor: Cursor {
                message_id: r.message_id,
                seq: r.seq,
                offset: r.offset,
                done,
            },
            event,
        }),
    );
}

async fn relay(
    state: &AppState,
    relayed: &mut std::collections::HashMap<i64, Relayed>,
    chat_id: i64,
    message_id: i64,
    done: bool,
) -> AppResult<()> {
    let db = &state.db;
    let rows: Vec<Message> = db_run!(db, read, |conn| messages::table
        .filter(messages::chat_id.eq(chat_id))
        .filter(messages::id.le(message_id))
        .order(messages::id.desc())
        .limit(2)
        .select(Message::as_select())
        .load(conn)
        .await
        .map_err(AppError::from))?;
    let mut rows = rows.into_iter();
    let Some(m) = rows.next().filter(|m| m.id == message_id) else {
        return Ok(());
    };
    let user_message_id = rows
        .next()
        .filter(|u| u.role == MessageRole::User)
        .map_or(0, |u| u.id);
    let send = |r: &mut Relayed, event: TurnEvent, done: bool| push(state, r, chat_id, event, done);
    let r = relayed.entry(chat_id).or_insert(Relayed {
        message_id,
        seq: 0,
        offset: 0,
    });
    if r.message_id != message_id || r.seq == 0 {
        *r = Relayed {
            message_id,
            seq: 0,
            offset: 0,
        };
        send(
            r,
            TurnEvent::Started {
                chat_id,
                user_message_id,
                message_id,
                model: m.model.clone().unwrap_or_default(),
            },
            false,
        );
    }
    if let Some(rest) = m.content.get(r.offset..).filter(|t| !t.is_empty()) {
        let delta: Arc<str> = Arc::from(rest);
        r.offset = m.content.len();
        send(
            r,
            TurnEvent::Token {
                chat_id,
                message_id,
                delta,
            },
            false,
        );
    }
    if done {
        if let Some(end) = ending(chat_id, m) {
            send(r, end, true);
        }
        relayed.remove(&chat_id);
    }
    Ok(())
}

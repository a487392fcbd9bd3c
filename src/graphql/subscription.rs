//! GraphQL subscriptions. Every stream ends when [`streams::stream_end`] says so (the
//! caller's identity ended, the chat was deleted, the server drains), so logging out closes
//! what that session had open and clients see a clean `complete` on shutdown.

use super::turns::ChatEvent;
use super::types::ChatObject;
use super::{parse_id, require_caller};
use crate::error::AppError;
use crate::events::turns::Cursor;
use crate::events::Event;
use crate::service::{chats, streams, turn_stream};
use crate::state::AppState;
use async_graphql::{Context, Enum, Result, SimpleObject, Subscription, ID};
use futures_util::{Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;

/// What happened to a chat.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ChatChangeKind {
    /// Created or changed (renamed, new message).
    Upserted,
    /// Deleted.
    Deleted,
}

/// A change to one of the caller's chats.
#[derive(SimpleObject)]
pub struct ChatChange {
    /// Kind of change.
    pub kind: ChatChangeKind,
    /// The chat's id.
    pub chat_id: ID,
    /// The chat as it is now (null once deleted).
    pub chat: Option<ChatObject>,
}

/// Chat subscriptions.
#[derive(Default)]
pub struct ChatSubscription;

#[Subscription]
impl ChatSubscription {
    /// Changes to the caller's chats (for chat lists that stay current).
    async fn chat_changes(&self, ctx: &Context<'_>) -> Result<impl Stream<Item = ChatChange>> {
        let caller = require_caller(ctx)?.clone();
        let state = ctx.data::<AppState>()?.clone();
        let mut rx = state.events.subscribe();
        Ok(async_stream::stream! {
            let end = streams::stream_end(&state, &caller, None);
            tokio::pin!(end);
            loop {
                let event = tokio::select! {
                    _ = &mut end => break,
                    e = rx.recv() => match e {
                        Ok(e) => e,
                        Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => break,
                    },
                };
                match event {
                    Event::ChatUpserted { user_id, chat_id } if user_id == caller.user_id() => {
                        // A chat deleted right after its change simply yields nothing.
                        if let Ok(chat) = chats::get(&state, &caller, chat_id).await {
                            yield ChatChange { kind: ChatChangeKind::Upserted, chat_id: ID(chat_id.to_string()), chat: Some(ChatObject(chat)) };
                        }
                    }
                    Event::ChatDeleted { user_id, chat_id } if user_id == caller.user_id() => {
                        yield ChatChange { kind: ChatChangeKind::Deleted, chat_id: ID(chat_id.to_string()), chat: None };
                    }
                    _ => {}
                }
            }
        })
    }

    /// Events of one of the caller's chats: every turn's `STARTED`, `TOKEN`s, agent steps,
    /// then `RESPONSE` or `ERROR`. Any number of subscribers see the same events. Each event
    /// has a `cursor`; with `after` set to the last cursor a client saw, it first receives
    /// exactly the events it missed (from the running turn, or the stored answers of turns
    /// that ended), then the live ones.
    async fn chat_events(
        &self,
        ctx: &Context<'_>,
        chat_id: ID,
        after: Option<String>,
    ) -> Result<impl Stream<Item = ChatEvent>> {
        let caller = require_caller(ctx)?.clone();
        let state = ctx.data::<AppState>()?.clone();
        let chat_id = parse_id(&chat_id)?;
        let after = match after.as_deref() {
            None => None,
            Some(a) => Some(Cursor::parse(a).ok_or_else(|| {
                AppError::validation("after", "after must be a cursor of a chat event")
            })?),
        };
        let events = turn_stream::follow(&state, &caller, chat_id, after).await?;
        Ok(async_stream::stream! {
            let end = streams::stream_end(&state, &caller, Some(chat_id));
            tokio::pin!(end);
            tokio::pin!(events);
            loop {
                tokio::select! {
                    e = events.next() => match e {
                        Some(e) => yield ChatEvent(e),
                        None => break,
                    },
                    _ = &mut end => break,
                }
            }
        })
    }
}

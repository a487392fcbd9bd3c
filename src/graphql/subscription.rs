//! GraphQL subscriptions. Every stream ends when the caller's session is revoked, the user
//! is disabled or the server drains, so logging out closes what that session had open and
//! clients see a clean `complete` on shutdown.

use super::turns::ChatEvent;
use super::types::ChatObject;
use super::{parse_id, require_caller};
use crate::auth::Caller;
use crate::events::Event;
use crate::service::chats;
use crate::state::AppState;
use async_graphql::{Context, Enum, Result, SimpleObject, Subscription, ID};
use futures_util::Stream;
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

/// The subscription root.
#[derive(Default)]
pub struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// Changes to the caller's chats (for chat lists that stay current).
    async fn chat_changes(&self, ctx: &Context<'_>) -> Result<impl Stream<Item = ChatChange>> {
        let caller = require_caller(ctx)?.clone();
        let state = ctx.data::<AppState>()?.clone();
        let mut rx = state.events.subscribe();
        Ok(async_stream::stream! {
            loop {
                let event = match rx.recv().await {
                    Ok(e) => e,
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => break,
                };
                match event {
                    Event::SessionRevoked { session_id, .. } if caller.session_id.as_deref() == Some(session_id.as_str()) => break,
                    Event::UserDisabled { user_id } if user_id == caller.user_id() => break,
                    Event::Shutdown => break,
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
    /// then `RESPONSE` or `ERROR`. Any number of subscribers see the same events.
    async fn chat_events(
        &self,
        ctx: &Context<'_>,
        chat_id: ID,
    ) -> Result<impl Stream<Item = ChatEvent>> {
        let caller = require_caller(ctx)?.clone();
        let state = ctx.data::<AppState>()?.clone();
        let chat_id = parse_id(&chat_id)?;
        chats::get(&state, &caller, chat_id).await?;
        let mut listener = state.turns.listen(chat_id);
        let mut bus = state.events.subscribe_control();
        Ok(async_stream::stream! {
            loop {
                tokio::select! {
                    turn = listener.rx.recv() => match turn {
                        Ok(e) => yield ChatEvent::from(&*e),
                        Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => break,
                    },
                    event = bus.recv() => match event {
                        Ok(e) if ends_stream(&e, &caller, chat_id) => break,
                        Ok(_) | Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => break,
                    },
                }
            }
        })
    }
}

/// Whether a bus event ends a caller's chat stream: its session or account is gone, the chat
/// was deleted, or the server drains.
fn ends_stream(e: &Event, caller: &Caller, chat_id: i64) -> bool {
    match e {
        Event::SessionRevoked { session_id, .. } => {
            caller.session_id.as_deref() == Some(session_id.as_str())
        }
        Event::UserDisabled { user_id } => *user_id == caller.user_id(),
        Event::ChatDeleted { chat_id: c, .. } => *c == chat_id,
        Event::Shutdown => true,
        _ => false,
    }
}

//! In-process event bus. Services publish what changed; GraphQL subscriptions (and, later,
//! the legacy streaming transports) filter it per caller. Bounded: a subscriber that falls
//! behind loses old events instead of growing memory.

use serde::Serialize;
use tokio::sync::broadcast;

/// Something that happened, addressed to one user.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A chat was created, renamed or changed.
    ChatUpserted {
        /// Owner.
        user_id: i64,
        /// Chat id.
        chat_id: i64,
    },
    /// A chat was deleted.
    ChatDeleted {
        /// Owner.
        user_id: i64,
        /// Chat id.
        chat_id: i64,
    },
    /// A session was revoked: its open subscriptions must close.
    SessionRevoked {
        /// Owner.
        user_id: i64,
        /// Session id.
        session_id: String,
    },
    /// Every session of a user is void (deactivation).
    UserDisabled {
        /// The user.
        user_id: i64,
    },
    /// The server is draining: every open stream completes now.
    Shutdown,
}

/// Cheap-to-clone publisher/subscriber handle.
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
}

impl EventBus {
    /// A bus keeping up to `capacity` undelivered events per subscriber.
    pub fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity).0,
        }
    }
    /// Publishes; having no subscriber is fine.
    pub fn publish(&self, event: Event) {
        let _ = self.tx.send(event);
    }
    /// A new receiver seeing events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

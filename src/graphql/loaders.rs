//! Per-request DataLoaders: every relation of a list resolves in one query per batch.

use crate::db::models::{Agent, Message, User};
use crate::error::AppError;
use crate::service;
use crate::state::AppState;
use async_graphql::dataloader::{DataLoader, Loader};
use std::collections::HashMap;
use std::sync::Arc;

/// Users by id.
pub struct UserLoader(pub AppState);

impl Loader<i64> for UserLoader {
    type Value = User;
    type Error = Arc<AppError>;
    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, User>, Self::Error> {
        let rows = service::users::by_ids(&self.0, keys)
            .await
            .map_err(Arc::new)?;
        Ok(rows.into_iter().map(|u| (u.id, u)).collect())
    }
}

/// Agents by id (unfiltered; resolvers check visibility).
pub struct AgentLoader(pub AppState);

impl Loader<i64> for AgentLoader {
    type Value = Agent;
    type Error = Arc<AppError>;
    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Agent>, Self::Error> {
        let rows = service::agents::by_ids(&self.0, keys)
            .await
            .map_err(Arc::new)?;
        Ok(rows.into_iter().map(|a| (a.id, a)).collect())
    }
}

/// Which messages of a chat: the newest or oldest `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessagesKey {
    /// Chat (already authorized by the parent resolver).
    pub chat_id: i64,
    /// How many.
    pub n: i64,
    /// Newest (`last:`) or oldest (`first:`).
    pub newest: bool,
}

/// Message windows per chat.
pub struct MessagesLoader(pub AppState);

impl Loader<MessagesKey> for MessagesLoader {
    type Value = Vec<Message>;
    type Error = Arc<AppError>;
    async fn load(
        &self,
        keys: &[MessagesKey],
    ) -> Result<HashMap<MessagesKey, Vec<Message>>, Self::Error> {
        // One query per distinct (n, newest); in practice one per request.
        let mut groups: HashMap<(i64, bool), Vec<i64>> = HashMap::new();
        for k in keys {
            groups.entry((k.n, k.newest)).or_default().push(k.chat_id);
        }
        let mut out = HashMap::new();
        for ((n, newest), ids) in groups {
            let mut rows = service::chats::window_messages(&self.0.db, &ids, n, newest)
                .await
                .map_err(Arc::new)?;
            for chat_id in ids {
                out.insert(
                    MessagesKey { chat_id, n, newest },
                    rows.remove(&chat_id).unwrap_or_default(),
                );
            }
        }
        Ok(out)
    }
}

/// Message counts per chat.
pub struct MessageCountLoader(pub AppState);

impl Loader<i64> for MessageCountLoader {
    type Value = i64;
    type Error = Arc<AppError>;
    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, i64>, Self::Error> {
        service::chats::message_counts(&self.0.db, keys)
            .await
            .map_err(Arc::new)
    }
}

/// Adds loaders to a request's or a WebSocket connection's data. They cache nothing
/// (`DataLoader::new`), so a long-lived connection never serves stale rows; within one
/// request they batch.
pub fn insert_loaders(data: &mut async_graphql::Data, state: &AppState) {
    data.insert(DataLoader::new(UserLoader(state.clone()), tokio::spawn));
    data.insert(DataLoader::new(AgentLoader(state.clone()), tokio::spawn));
    data.insert(DataLoader::new(MessagesLoader(state.clone()), tokio::spawn));
    data.insert(DataLoader::new(
        MessageCountLoader(state.clone()),
        tokio::spawn,
    ));
}

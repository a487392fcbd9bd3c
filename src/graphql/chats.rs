//! Chats over GraphQL. Messages are written by chat turns (the LLM layer), not here.

use super::types::{chat_page, ChatConnection, ChatObject};
use super::{parse_id, require_caller};
use crate::service::chats::{self, ChatInput};
use crate::state::AppState;
use async_graphql::{Context, InputObject, Object, Result, ID};

/// A new chat.
#[derive(InputObject)]
pub struct CreateChatInput {
    /// Agent to talk to; none means the default model with no system prompt.
    pub agent_id: Option<ID>,
    /// Title; "New chat" when omitted.
    pub title: Option<String>,
    /// Model override for agent-less chats.
    pub model: Option<String>,
}

/// Chat queries.
#[derive(Default)]
pub struct ChatQuery;

#[Object]
impl ChatQuery {
    /// One of the caller's chats.
    async fn chat(&self, ctx: &Context<'_>, id: ID) -> Result<ChatObject> {
        let caller = require_caller(ctx)?;
        Ok(ChatObject(
            chats::get(ctx.data::<AppState>()?, caller, parse_id(&id)?).await?,
        ))
    }

    /// The caller's chats, newest first; `after` is a `Chat.cursor`, `search` matches titles
    /// and message text (case-insensitive).
    async fn chats(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        search: Option<String>,
    ) -> Result<Vec<ChatObject>> {
        let caller = require_caller(ctx)?;
        Ok(chat_page(ctx, caller.user_id(), first, after, search)
            .await?
            .0)
    }

    /// The same list as a Relay connection.
    async fn chat_connection(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        search: Option<String>,
    ) -> Result<ChatConnection> {
        let caller = require_caller(ctx)?;
        let (rows, has_next) = chat_page(ctx, caller.user_id(), first, after, search).await?;
        Ok(ChatConnection::new(rows, has_next))
    }
}

/// Chat mutations.
#[derive(Default)]
pub struct ChatMutation;

#[Object]
impl ChatMutation {
    /// Starts a chat, with an agent the caller can see or with none.
    async fn create_chat(&self, ctx: &Context<'_>, input: CreateChatInput) -> Result<ChatObject> {
        let caller = require_caller(ctx)?;
        let agent_id = input.agent_id.as_ref().map(parse_id).transpose()?;
        let chat = chats::create(
            ctx.data::<AppState>()?,
            caller,
            ChatInput {
                agent_id,
                title: input.title,
                model: input.model,
            },
        )
        .await?;
        Ok(ChatObject(chat))
    }

    /// Renames one of the caller's chats.
    async fn rename_chat(&self, ctx: &Context<'_>, id: ID, title: String) -> Result<ChatObject> {
        let caller = require_caller(ctx)?;
        Ok(ChatObject(
            chats::rename(ctx.data::<AppState>()?, caller, parse_id(&id)?, &title).await?,
        ))
    }

    /// Deletes one of the caller's chats with its messages.
    async fn delete_chat(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let caller = require_caller(ctx)?;
        chats::delete(ctx.data::<AppState>()?, caller, parse_id(&id)?).await?;
        Ok(true)
    }
}

//! Chat turns over GraphQL: `sendMessage` starts one and returns at once, `chatEvents`
//! streams it, `sendMessageAndWait` returns the whole answer, `cancelTurn` stops it.

use super::types::MessageObject;
use super::{parse_id, require_caller};
use crate::events::turns::{Sequenced, StepKind, TurnEvent};
use crate::service::turns::{self, SendInput};
use crate::state::AppState;
use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject, ID};
use std::sync::Arc;

/// A message to send to a chat.
#[derive(InputObject)]
pub struct SendMessageInput {
    /// The chat.
    pub chat_id: ID,
    /// Text, at most 4000 characters.
    pub content: String,
    /// Ids of the caller's documents to attach.
    #[graphql(default)]
    pub files: Vec<ID>,
    /// Model key for this turn (default: the chat's, the agent's, else `auto`).
    pub model: Option<String>,
    /// Sampling temperature override, 0–2.
    pub temperature: Option<f64>,
    /// Generated-token cap override.
    pub max_tokens: Option<i32>,
}

impl SendMessageInput {
    fn split(self) -> Result<(i64, SendInput)> {
        let files = self
            .files
            .iter()
            .map(parse_id)
            .collect::<Result<Vec<_>>>()?;
        Ok((
            parse_id(&self.chat_id)?,
            SendInput {
                content: self.content,
                files,
                model: self.model,
                temperature: self.temperature,
                max_tokens: self.max_tokens.map(i64::from),
                retrieve: None,
            },
        ))
    }
}

/// A started turn: subscribe to `chatEvents` for its tokens.
#[derive(SimpleObject)]
pub struct SendMessagePayload {
    /// The stored user message.
    pub user_message: MessageObject,
    /// Id of the assistant message the tokens belong to.
    pub assistant_message_id: ID,
    /// The model answering.
    pub model: String,
}

/// A finished turn.
#[derive(SimpleObject)]
pub struct TurnResult {
    /// The stored user message.
    pub user_message: MessageObject,
    /// The stored answer (status `complete`, or `error` with what was generated).
    pub assistant_message: MessageObject,
    /// Token counts.
    pub usage: TokenUsage,
}

/// Token counts of a turn.
#[derive(SimpleObject, Clone, Copy)]
pub struct TokenUsage {
    pub prompt_tokens: i32,
    pub completion_tokens: i32,
    pub total_tokens: i32,
}

impl From<crate::llm::Usage> for TokenUsage {
    fn from(u: crate::llm::Usage) -> Self {
        Self {
            prompt_tokens: crate::llm::Usage::stored(u.prompt_tokens),
            completion_tokens: crate::llm::Usage::stored(u.completion_tokens),
            total_tokens: crate::llm::Usage::stored(u.total()),
        }
    }
}

/// Kinds of chat events.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ChatEventType {
    /// The user message is stored; the answer begins.
    Started,
    /// A piece of the answer (`delta`).
    Token,
    /// Agent reasoning (`content`).
    Think,
    /// Agent plan (`content`).
    Plan,
    /// Tool call (`tool`, `params`).
    Action,
    /// Tool result (`tool`, `content`).
    Result,
    /// The stored answer (`message`, `usage`).
    Response,
    /// Failure (`code`, `error`).
    Error,
}

/// A view of the event every subscriber of the chat shares: a field is only computed when a
/// subscription selects it, since this runs once per token per subscriber.
pub struct ChatEvent(pub Arc<Sequenced>);

fn id(v: i64) -> Option<ID> {
    Some(ID(v.to_string()))
}

/// One event of a chat turn; which fields are set depends on `type`.
#[Object]
impl ChatEvent {
    /// Kind.
    #[graphql(name = "type")]
    async fn kind(&self) -> ChatEventType {
        match &self.0.event {
            TurnEvent::Started { .. } => ChatEventType::Started,
            TurnEvent::Token { .. } => ChatEventType::Token,
            TurnEvent::Step { kind, .. } => match kind {
                StepKind::Think => ChatEventType::Think,
                StepKind::Plan => ChatEventType::Plan,
                StepKind::Action => ChatEventType::Action,
                StepKind::Result => ChatEventType::Result,
            },
            TurnEvent::Response { .. } => ChatEventType::Response,
            TurnEvent::Error { .. } => ChatEventType::Error,
        }
    }

    /// Where the event stands: pass the last one received as `chatEvents(after:)` to resume.
    async fn cursor(&self) -> String {
        self.0.cursor.encode()
    }

    /// The chat.
    async fn chat_id(&self) -> ID {
        let chat_id = match &self.0.event {
            TurnEvent::Started { chat_id, .. }
            | TurnEvent::Token { chat_id, .. }
            | TurnEvent::Step { chat_id, .. }
            | TurnEvent::Response { chat_id, .. }
            | TurnEvent::Error { chat_id, .. } => *chat_id,
        };
        ID(chat_id.to_string())
    }

    /// The assistant message concerned.
    async fn message_id(&self) -> Option<ID> {
        match &self.0.event {
            TurnEvent::Started { message_id, .. }
            | TurnEvent::Token { message_id, .. }
            | TurnEvent::Step { message_id, .. } => id(*message_id),
            TurnEvent::Response { message, .. } => id(message.id),
            TurnEvent::Error { message_id, .. } => message_id.and_then(id),
        }
    }

    /// The user message (`STARTED`).
    async fn user_message_id(&self) -> Option<ID> {
        match &self.0.event {
            TurnEvent::Started {
                user_message_id, ..
            } => id(*user_message_id),
            _ => None,
        }
    }

    /// Text piece (`TOKEN`).
    async fn delta(&self) -> Option<&str> {
        match &self.0.event {
            TurnEvent::Token { delta, .. } => Some(delta),
            _ => None,
        }
    }

    /// Step text (`THINK`, `PLAN`, `RESULT`).
    async fn content(&self) -> Option<&str> {
        match &self.0.event {
            TurnEvent::Step { content, .. } => Some(content),
            _ => None,
        }
    }

    /// Tool name (`ACTION`, `RESULT`).
    async fn tool(&self) -> Option<&str> {
        match &self.0.event {
            TurnEvent::Step { tool, .. } => tool.as_deref(),
            _ => None,
        }
    }

    /// Tool parameters as JSON text (`ACTION`).
    async fn params(&self) -> Option<String> {
        match &self.0.event {
            TurnEvent::Step { params, .. } => params.as_ref().map(|p| p.to_string()),
            _ => None,
        }
    }

    /// Model key (`STARTED`).
    async fn model(&self) -> Option<&str> {
        match &self.0.event {
            TurnEvent::Started { model, .. } => Some(model),
            _ => None,
        }
    }

    /// The stored message (`RESPONSE`).
    async fn message(&self) -> Option<MessageObject> {
        match &self.0.event {
            TurnEvent::Response { message, .. } => Some(MessageObject((**message).clone())),
            _ => None,
        }
    }

    /// Token counts (`RESPONSE`).
    async fn usage(&self) -> Option<TokenUsage> {
        match &self.0.event {
            TurnEvent::Response { usage, .. } => Some((*usage).into()),
            _ => None,
        }
    }

    /// Stable error code (`ERROR`).
    async fn code(&self) -> Option<&str> {
        match &self.0.event {
            TurnEvent::Error { code, .. } => Some(code.as_str()),
            _ => None,
        }
    }

    /// Error text (`ERROR`).
    async fn error(&self) -> Option<&str> {
        match &self.0.event {
            TurnEvent::Error { message, .. } => Some(message),
            _ => None,
        }
    }
}

/// Turn mutations.
#[derive(Default)]
pub struct TurnMutation;

#[Object]
impl TurnMutation {
    /// Stores the message and starts the answer; tokens arrive on `chatEvents(chatId)`.
    /// Subscribe before sending to see every token.
    async fn send_message(
        &self,
        ctx: &Context<'_>,
        input: SendMessageInput,
    ) -> Result<SendMessagePayload> {
        let caller = require_caller(ctx)?;
        let (chat_id, input) = input.split()?;
        let start = turns::send(ctx.data::<AppState>()?, caller, chat_id, input).await?;
        Ok(SendMessagePayload {
            assistant_message_id: ID(start.message_id.to_string()),
            model: start.model.key.clone(),
            user_message: MessageObject(start.user_message),
        })
    }

    /// Sends a message and returns when the answer is complete (no streaming).
    async fn send_message_and_wait(
        &self,
        ctx: &Context<'_>,
        input: SendMessageInput,
    ) -> Result<TurnResult> {
        let caller = require_caller(ctx)?;
        let (chat_id, input) = input.split()?;
        let start = turns::send(ctx.data::<AppState>()?, caller, chat_id, input).await?;
        let user_message = MessageObject(start.user_message.clone());
        let outcome = start.finish().await?;
        if let Some(e) = outcome.error {
            return Err(e.into());
        }
        Ok(TurnResult {
            user_message,
            assistant_message: MessageObject((*outcome.message).clone()),
            usage: outcome.usage.into(),
        })
    }

    /// Stops the chat's running answer; what was generated is kept as `cancelled`.
    /// Returns whether a turn was running.
    async fn cancel_turn(&self, ctx: &Context<'_>, chat_id: ID) -> Result<bool> {
        let caller = require_caller(ctx)?;
        Ok(turns::cancel(ctx.data::<AppState>()?, caller, parse_id(&chat_id)?).await?)
    }
}

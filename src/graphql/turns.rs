//! Chat turns over GraphQL: `sendMessage` starts one and returns at once, `chatEvents`
//! streams it, `sendMessageAndWait` returns the whole answer, `cancelTurn` stops it.

use super::types::MessageObject;
use super::{parse_id, require_caller};
use crate::events::turns::{Sequenced, TurnEvent};
use crate::service::turns::{self, SendInput};
use crate::state::AppState;
use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject, ID};

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

/// One event of a chat turn; which fields are set depends on `type`.
#[derive(SimpleObject)]
pub struct ChatEvent {
    /// Kind.
    #[graphql(name = "type")]
    pub kind: ChatEventType,
    /// Where the event stands: pass the last one received as `chatEvents(after:)` to resume.
    pub cursor: String,
    /// The chat.
    pub chat_id: ID,
    /// The assistant message concerned.
    pub message_id: Option<ID>,
    /// The user message (`STARTED`).
    pub user_message_id: Option<ID>,
    /// Text piece (`TOKEN`).
    pub delta: Option<String>,
    /// Step text (`THINK`, `PLAN`, `RESULT`).
    pub content: Option<String>,
    /// Tool name (`ACTION`, `RESULT`).
    pub tool: Option<String>,
    /// Tool parameters as JSON text (`ACTION`).
    pub params: Option<String>,
    /// Model key (`STARTED`).
    pub model: Option<String>,
    /// The stored message (`RESPONSE`).
    pub message: Option<MessageObject>,
    /// Token counts (`RESPONSE`).
    pub usage: Option<TokenUsage>,
    /// Stable error code (`ERROR`).
    pub code: Option<String>,
    /// Error text (`ERROR`).
    pub error: Option<String>,
}

impl ChatEvent {
    fn empty(kind: ChatEventType, chat_id: i64) -> Self {
        Self {
            kind,
            cursor: String::new(),
            chat_id: ID(chat_id.to_string()),
            message_id: None,
            user_message_id: None,
            delta: None,
            content: None,
            tool: None,
            params: None,
            model: None,
            message: None,
            usage: None,
            code: None,
            error: None,
        }
    }
}

fn id(v: i64) -> Option<ID> {
    Some(ID(v.to_string()))
}

impl From<&Sequenced> for ChatEvent {
    fn from(e: &Sequenced) -> Self {
        ChatEvent {
            cursor: e.cursor.encode(),
            ..ChatEvent::from(&e.event)
        }
    }
}

impl From<&TurnEvent> for ChatEvent {
    fn from(e: &TurnEvent) -> Self {
        use crate::events::turns::StepKind;
        match e {
            TurnEvent::Started {
                chat_id,
                user_message_id,
                message_id,
                model,
            } => ChatEvent {
                message_id: id(*message_id),
                user_message_id: id(*user_message_id),
                model: Some(model.clone()),
                ..ChatEvent::empty(ChatEventType::Started, *chat_id)
            },
            TurnEvent::Token {
                chat_id,
                message_id,
                delta,
            } => ChatEvent {
                message_id: id(*message_id),
                delta: Some(delta.to_string()),
                ..ChatEvent::empty(ChatEventType::Token, *chat_id)
            },
            TurnEvent::Step {
                chat_id,
                message_id,
                kind,
                content,
                tool,
                params,
            } => ChatEvent {
                message_id: id(*message_id),
                content: Some(content.clone()),
                tool: tool.clone(),
                params: params.as_ref().map(|p| p.to_string()),
                ..ChatEvent::empty(
                    match kind {
                        StepKind::Think => ChatEventType::Think,
                        StepKind::Plan => ChatEventType::Plan,
                        StepKind::Action => ChatEventType::Action,
                        StepKind::Result => ChatEventType::Result,
                    },
                    *chat_id,
                )
            },
            TurnEvent::Response {
                chat_id,
                message,
                usage,
            } => ChatEvent {
                message_id: id(message.id),
                message: Some(MessageObject((**message).clone())),
                usage: Some((*usage).into()),
                ..ChatEvent::empty(ChatEventType::Response, *chat_id)
            },
            TurnEvent::Error {
                chat_id,
                message_id,
                code,
                message,
            } => ChatEvent {
                message_id: message_id.and_then(id),
                code: Some(code.as_str().to_string()),
                error: Some(message.clone()),
                ..ChatEvent::empty(ChatEventType::Error, *chat_id)
            },
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

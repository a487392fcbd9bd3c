//! `agent_prompt`: sends a prompt to an agent; the answer lands in a chat. With `chat_id`
//! every run adds a turn to that chat; without, every run starts a chat named after the job.
//! Payload: `{agent_id, prompt, chat_id?, model?}`.

use super::parse_payload;
use crate::auth::Caller;
use crate::db::enums::MessageStatus;
use crate::error::{AppError, AppResult};
use crate::jobs::{JobContext, JobError, JobKind};
use crate::service::turns::{self, SendInput};
use crate::service::{agents, chats, validate};
use crate::state::AppState;
use serde::Deserialize;
use serde_json::{json, Value};

/// Most characters of the answer kept in the run's output (the chat has all of it).
const OUTPUT_CHARS: usize = 4000;

/// The kind.
pub struct AgentPrompt;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    agent_id: i64,
    prompt: String,
    chat_id: Option<i64>,
    model: Option<String>,
}

fn field_error(field: &str, e: AppError) -> AppError {
    AppError::validation(field, format!("{field}: {}", e.message))
}

async fn check_payload(state: &AppState, caller: &Caller, p: &Payload) -> AppResult<()> {
    validate::required("prompt", &p.prompt, validate::MAX_MESSAGE_CHARS)
        .map_err(|e| field_error("payload.prompt", e))?;
    if let Some(m) = &p.model {
        validate::max_len("model", m, validate::MAX_NAME_CHARS)
            .map_err(|e| field_error("payload.model", e))?;
    }
    agents::get(state, Some(caller), p.agent_id)
        .await
        .map_err(|e| field_error("payload.agent_id", e))?;
    if let Some(chat_id) = p.chat_id {
        let chat = chats::get(state, caller, chat_id)
            .await
            .map_err(|e| field_error("payload.chat_id", e))?;
        if chat.agent_id != Some(p.agent_id) {
            return Err(AppError::validation(
                "payload.chat_id",
                "payload.chat_id: this chat talks to another agent",
            ));
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl JobKind for AgentPrompt {
    fn name(&self) -> &'static str {
        "agent_prompt"
    }

    async fn check(&self, state: &AppState, caller: &Caller, payload: &Value) -> AppResult<()> {
        let p: Payload = parse_payload(payload)?;
        check_payload(state, caller, &p).await
    }

    async fn run(&self, ctx: &JobContext) -> Result<Value, JobError> {
        let p: Payload = parse_payload(&ctx.payload).map_err(|e| JobError::permanent(e.message))?;
        // The agent or chat may be gone since the job was created: no retry brings it back.
        check_payload(&ctx.state, &ctx.caller, &p)
            .await
            .map_err(|e| JobError::permanent(e.message))?;
        let input = SendInput {
            content: p.prompt.clone(),
            model: p.model.clone(),
            ..Default::default()
        };
        let started = match p.chat_id {
            Some(chat_id) => turns::send(&ctx.state, &ctx.caller, chat_id, input).await?,
            None => {
                let chat = chats::ChatInput {
                    agent_id: Some(p.agent_id),
                    title: Some(ctx.name.chars().take(validate::MAX_NAME_CHARS).collect()),
                    model: None,
                };
                turns::send_new(&ctx.state, &ctx.caller, chat, input).await?
            }
        };
        let chat_id = started.chat.id;
        let message_id = started.message_id;
        ctx.progress(json!({ "chat_id": chat_id, "message_id": message_id }))
            .await;
        let finish = started.finish();
        tokio::pin!(finish);
        let outcome = tokio::select! {
            o = &mut finish => o?,
            _ = ctx.cancelled() => {
                // The turn stores what it generated as `cancelled`.
                turns::cancel(&ctx.state, &ctx.caller, chat_id).await?;
                finish.await?
            }
        };
        let message = &outcome.message;
        match message.status {
            MessageStatus::Complete => Ok(json!({
                "chat_id": chat_id,
                "message_id": message_id,
                "content": message.content.chars().take(OUTPUT_CHARS).collect::<String>(),
                "truncated": message.content.chars().count() > OUTPUT_CHARS,
                "prompt_tokens": outcome.usage.prompt_tokens,
                "completion_tokens": outcome.usage.completion_tokens,
            })),
            MessageStatus::Cancelled => Err(JobError::retriable("the answer was cancelled")),
            _ => Err(outcome
                .error
                .map(JobError::from)
                .unwrap_or_else(|| JobError::retriable("the answer failed"))),
        }
    }
}

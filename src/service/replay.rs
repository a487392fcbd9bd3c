//! Replaying a chat (seed 003's `POST /history/replay`): the user messages of one of the
//! caller's chats, in order, sent again into a new chat (against a chosen model, or the
//! chat's own), each answered before the next is sent, so every answer sees the replay's
//! own earlier answers. The replay runs as the caller, re-checked before every turn; a
//! server stop ends it between turns.

use crate::auth::Caller;
use crate::db::enums::MessageRole;
use crate::db::models::Chat;
use crate::error::{AppError, AppResult};
use crate::service::chats::{self, ChatInput};
use crate::service::turns::{self, SendInput};
use crate::state::AppState;

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayInput {
    /// The chat whose user messages are sent again.
    pub chat_id: i64,
    /// The model that answers (the chat's or agent's when absent).
    pub model: Option<String>,
}

/// A replay under way (or done).
pub struct Replay {
    /// The new chat.
    pub chat: Chat,
    /// The user messages it sends.
    pub turns: Vec<String>,
}

/// Creates the new chat; the turns are then run by [`run`].
pub async fn prepare(state: &AppState, caller: &Caller, input: &ReplayInput) -> AppResult<Replay> {
    caller.require_write()?;
    let source = chats::get(state, caller, input.chat_id).await?;
    let limit = state.config.max_messages_per_chat.max(1);
    let turns: Vec<String> = chats::messages(state, caller, source.id, limit, 0)
        .await?
        .into_iter()
        .filter(|m| m.role == MessageRole::User && !m.content.trim().is_empty())
        .map(|m| m.content)
        .collect();
    if turns.is_empty() {
        return Err(AppError::validation(
            "chat_id",
            "the chat has no message of its user to replay",
        ));
    }
    // A model that cannot answer is refused before anything is created.
    if let Some(m) = &input.model {
        crate::service::validate::max_len("model", m, crate::service::validate::MAX_NAME_CHARS)?;
        crate::service::models::resolve(state, Some(m), None).await?;
    }
    let chat = chats::create(
        state,
        caller,
        ChatInput {
            agent_id: source.agent_id,
            title: Some(
                format!("Replay: {}", source.title)
                    .chars()
                    .take(200)
                    .collect(),
            ),
            model: input.model.clone(),
        },
    )
    .await?;
    Ok(Replay { chat, turns })
}

/// Sends the turns one after the other, each after the previous answer is stored. Returns
/// how many were answered; stops at the first turn that cannot start (the caller's access
/// ended, the model is down) and reports why.
pub async fn run(
    state: &AppState,
    caller: &Caller,
    replay: &Replay,
    model: Option<String>,
) -> (usize, Option<AppError>) {
    let mut done = 0;
    for content in &replay.turns {
        let now = match crate::service::auth::recheck(state, caller).await {
            Ok(c) => c,
            Err(e) => return (done, Some(e)),
        };
        let input = SendInput {
            content: content.clone(),
            model: model.clone(),
            ..Default::default()
        };
        match turns::send(state, &now, replay.chat.id, input).await {
            Ok(start) => {
                if let Err(e) = start.finish().await {
                    return (done, Some(e));
                }
                done += 1;
            }
            Err(e) => return (done, Some(e)),
        }
    }
    (done, None)
}

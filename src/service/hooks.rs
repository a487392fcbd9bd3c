//! Plugin hooks in chat turns. Every running plugin that declares a hook is called, in name
//! order, as the user whose message it is: `message_before_send` may allow, rewrite or refuse
//! the message before anything is stored; `message_after_receive` sees each finished answer.
//! A hook that fails (crashes, times out, answers nonsense) is logged and skipped: a broken
//! plugin never loses or blocks a message.

use crate::auth::Caller;
use crate::db::models::Message;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::plugins::manifest::Hook;
use crate::plugins::pool::Pool;
use crate::service::{plugins, validate};
use crate::state::AppState;
use serde_json::{json, Value};
use std::sync::Arc;

/// Running plugins that implement `hook`, by name.
fn with_hook(state: &AppState, hook: Hook) -> Vec<Arc<Pool>> {
    let mut pools: Vec<Arc<Pool>> = state
        .plugins
        .running()
        .into_iter()
        .filter(|p| p.manifest.hooks.contains(&hook))
        .collect();
    pools.sort_by(|a, b| a.name.cmp(&b.name));
    pools
}

/// Runs `message_before_send`: the message to store and send (perhaps rewritten), or
/// `message_refused` with the plugin's reason.
pub async fn before_send(
    state: &AppState,
    caller: &Caller,
    chat_id: i64,
    content: String,
) -> AppResult<String> {
    let mut content = content;
    for pool in with_hook(state, Hook::MessageBeforeSend) {
        let input = json!({ "message": content, "chat_id": chat_id, "user_id": caller.user_id() });
        let answer = match plugins::call_pool(
            state,
            caller,
            &pool,
            Hook::MessageBeforeSend.function(),
            &input,
        )
        .await
        {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(plugin = %pool.name, error = %e.message, "message_before_send failed; the message goes on unchanged");
                continue;
            }
        };
        match answer.get("action").and_then(Value::as_str) {
            Some("allow") => {}
            Some("rewrite") => match answer.get("message").and_then(Value::as_str) {
                Some(m) => match validate::required("content", m, validate::MAX_MESSAGE_CHARS) {
                    Ok(m) => content = m,
                    Err(_) => {
                        tracing::warn!(plugin = %pool.name, "message_before_send rewrote the message to an invalid one; ignored")
                    }
                },
                None => {
                    tracing::warn!(plugin = %pool.name, "message_before_send rewrote without a message; ignored")
                }
            },
            Some("refuse") => {
                let reason = answer
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("refused by a plugin")
                    .chars()
                    .take(500)
                    .collect::<String>();
                return Err(
                    AppError::new(ErrorCode::MessageRefused, reason.clone()).with_details(
                        json!({ "field": "content", "plugin": pool.name, "reason": reason }),
                    ),
                );
            }
            _ => {
                tracing::warn!(plugin = %pool.name, %answer, "message_before_send answered no known action; ignored")
            }
        }
    }
    Ok(content)
}

/// Runs `message_after_receive` for a finished answer, in the background.
pub fn after_receive(state: &AppState, caller: &Caller, user_content: &str, message: &Message) {
    let pools = with_hook(state, Hook::MessageAfterReceive);
    if pools.is_empty() {
        return;
    }
    let input = json!({
        "chat_id": message.chat_id,
        "message_id": message.id,
        "content": message.content,
        "user_message": user_content,
        "user_id": caller.user_id(),
    });
    let (state2, caller) = (state.clone(), caller.clone());
    state.background.spawn(async move {
        for pool in pools {
            if let Err(e) = plugins::call_pool(&state2, &caller, &pool, Hook::MessageAfterReceive.function(), &input).await {
                tracing::warn!(plugin = %pool.name, error = %e.message, "message_after_receive failed");
            }
        }
    });
}

/// Whether a running plugin reads documents Hearth cannot (`document_before_ingest`).
pub fn reads_documents(state: &AppState) -> bool {
    !with_hook(state, Hook::DocumentBeforeIngest).is_empty()
}

/// Runs `document_before_ingest` for a document of a type Hearth cannot read: the first
/// plugin that answers `{"text": "…"}` supplies its text. Input: `{filename, size,
/// content_base64}` (a file too large for `max_input_bytes` is not offered).
pub async fn document_text(
    state: &AppState,
    caller: &Caller,
    doc: &crate::db::models::Document,
    bytes: &[u8],
) -> AppResult<Option<String>> {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    if encoded.len() + 1024 > state.config.plugins.max_input_bytes {
        return Err(AppError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the file is too large to hand to a plugin (plugins.max_input_bytes is {})",
                state.config.plugins.max_input_bytes
            ),
        ));
    }
    let input = json!({ "filename": doc.filename, "size": bytes.len(), "content_base64": encoded });
    for pool in with_hook(state, Hook::DocumentBeforeIngest) {
        match plugins::call_pool(
            state,
            caller,
            &pool,
            Hook::DocumentBeforeIngest.function(),
            &input,
        )
        .await
        {
            Ok(answer) => {
                if let Some(text) = answer.get("text").and_then(Value::as_str) {
                    return Ok(Some(text.to_string()));
                }
            }
            Err(e) => {
                tracing::warn!(plugin = %pool.name, error = %e.message, "document_before_ingest failed")
            }
        }
    }
    Ok(None)
}

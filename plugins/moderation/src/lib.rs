//! `moderation`: a hook plugin. Before a user's message is sent it refuses messages with a
//! blocked word (config `blocked_words`, comma separated) and collapses runs of whitespace;
//! after an answer it counts answers in its key-value store.

use extism_pdk::{config, plugin_fn, FnResult, Json};
use hearth_plugin::{kv_get, kv_set};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
struct BeforeSend {
    message: String,
}

/// `message_before_send`: `{"action": "allow" | "rewrite" | "refuse", "message"?, "reason"?}`.
#[plugin_fn]
pub fn message_before_send(Json(input): Json<BeforeSend>) -> FnResult<Json<Value>> {
    let blocked = config::get("blocked_words")?.unwrap_or_default();
    let lower = input.message.to_lowercase();
    for word in blocked.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        if lower.contains(&word.to_lowercase()) {
            return Ok(Json(json!({
                "action": "refuse",
                "reason": format!("the message contains the blocked word \"{word}\""),
            })));
        }
    }
    let collapsed = input.message.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed != input.message {
        return Ok(Json(json!({ "action": "rewrite", "message": collapsed })));
    }
    Ok(Json(json!({ "action": "allow" })))
}

/// `message_after_receive`: counts the answers it has seen.
#[plugin_fn]
pub fn message_after_receive(_: Json<Value>) -> FnResult<Json<Value>> {
    let seen: u64 = kv_get("answers_seen")?.and_then(|v| v.parse().ok()).unwrap_or(0) + 1;
    kv_set("answers_seen", &seen.to_string())?;
    Ok(Json(json!({ "answers_seen": seen })))
}

/// How many answers the hook has seen (for admins and tests).
#[plugin_fn]
pub fn stats(_: Json<Value>) -> FnResult<Json<Value>> {
    let seen: u64 = kv_get("answers_seen")?.and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(Json(json!({ "answers_seen": seen })))
}

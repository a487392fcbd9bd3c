//! Plugin tools inside chat turns. An agent lists tool names; in its turns on a provider that
//! takes OpenAI's tools format, the model may call the ones the user may call now. Hearth
//! checks the arguments against the tool's schema, runs the plugin as the user, feeds the
//! result back and lets the model go on, up to `[plugins] max_tool_steps` rounds. Each round
//! emits `think` (what the model said before calling), `plan` (the calls), then `action` and
//! `result` per call; the answer records what was used (`Message.tool_calls`).

use crate::auth::Caller;
use crate::db::enums::Provider;
use crate::db::models::{Agent, ModelRow};
use crate::events::turns::{ChatChannel, StepKind, TurnEvent};
use crate::events::{Event, MAX_RELAYED_STEP};
use crate::llm::{PromptMessage, ToolCall};
use crate::service::plugins;
use crate::state::AppState;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Most characters of a tool result given back to the model.
const MAX_RESULT_CHARS: usize = 16_000;

/// One tool call a turn made, as stored on the answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ToolUse {
    /// The tool.
    pub tool: String,
    /// The plugin that served it.
    pub plugin: Option<String>,
    /// The arguments the model gave.
    pub params: Value,
    /// The result (when it succeeded).
    pub result: Option<Value>,
    /// The error code and message (when it failed).
    pub error: Option<String>,
}

/// The names of the tools an answer used, in order, each once (seed 000's `tools_used`).
pub fn tools_used(message: &crate::db::models::Message) -> Vec<String> {
    let used: Vec<ToolUse> = message
        .tool_calls
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    let mut names: Vec<String> = Vec::new();
    for u in used {
        if !names.contains(&u.tool) {
            names.push(u.tool);
        }
    }
    names
}

/// The tools offered to the model in a turn: the agent's tools the caller may call now, in
/// OpenAI's format. None for models that do not take tools.
pub async fn offered(
    state: &AppState,
    caller: &Caller,
    agent: Option<&Agent>,
    model: &ModelRow,
) -> Vec<Value> {
    let Some(agent) = agent.filter(|a| !a.tools.0.is_empty()) else {
        return Vec::new();
    };
    if model.provider != Provider::OpenAi {
        return Vec::new();
    }
    let available = match plugins::tools(state, caller).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e.message, "tools unavailable for a turn");
            return Vec::new();
        }
    };
    available
        .into_iter()
        .filter(|t| agent.tools.0.contains(&t.tool.name))
        .map(|t| {
            json!({
                "type": "function",
                "function": {
                    "name": t.tool.name,
                    "description": t.tool.description,
                    "parameters": t.tool.parameters,
                },
            })
        })
        .collect()
}

/// Emits a step to the chat's listeners here and, on PostgreSQL, to the other processes'
/// (bounded, see [`Event::AnswerStep`]).
#[allow(clippy::too_many_arguments)]
fn step(
    state: &AppState,
    channel: &ChatChannel,
    chat_id: i64,
    message_id: i64,
    kind: StepKind,
    content: String,
    tool: Option<String>,
    params: Option<Value>,
) {
    if state.db.backend() == crate::db::Backend::Postgres {
        let bounded = |t: &str| {
            let mut end = t.len().min(MAX_RELAYED_STEP);
            while !t.is_char_boundary(end) {
                end -= 1;
            }
            t[..end].to_string()
        };
        state.events.publish(Event::AnswerStep {
            origin: state.turns.origin,
            chat_id,
            message_id,
            kind: kind.as_str().to_string(),
            content: bounded(&content),
            tool: tool.as_deref().map(bounded),
            params: params
                .clone()
                .filter(|p| p.to_string().len() <= MAX_RELAYED_STEP),
        });
    }
    channel.send(TurnEvent::Step {
        chat_id,
        message_id,
        kind,
        content,
        tool,
        params,
    });
}

/// Runs one round of calls: emits the steps, calls each tool as the caller, and returns the
/// messages that give the model the results (after the request message itself).
#[allow(clippy::too_many_arguments)]
pub async fn run_round(
    state: &AppState,
    caller: &Caller,
    channel: &ChatChannel,
    chat_id: i64,
    message_id: i64,
    said: &str,
    calls: &[ToolCall],
    used: &mut Vec<ToolUse>,
) -> Vec<PromptMessage> {
    if !said.trim().is_empty() {
        step(
            state,
            channel,
            chat_id,
            message_id,
            StepKind::Think,
            said.trim().to_string(),
            None,
            None,
        );
    }
    let names: Vec<&str> = calls.iter().map(|c| c.name.as_str()).collect();
    step(
        state,
        channel,
        chat_id,
        message_id,
        StepKind::Plan,
        format!("calling {}", names.join(", ")),
        None,
        Some(json!(names)),
    );
    let mut out = vec![PromptMessage::tool_request(said, calls)];
    for call in calls {
        let params: Value = serde_json::from_str(&call.arguments).unwrap_or(Value::Null);
        step(
            state,
            channel,
            chat_id,
            message_id,
            StepKind::Action,
            format!("{}({})", call.name, call.arguments),
            Some(call.name.clone()),
            Some(params.clone()),
        );
        // One lookup: whether the caller may still use the tool, and which plugin serves it.
        let found = plugins::tool(state, caller, &call.name).await;
        let plugin = found.as_ref().ok().map(|t| t.plugin.clone());
        let outcome = match &found {
            Err(e) => Err(e.clone()),
            Ok(_) if !params.is_object() => Err(crate::error::AppError::validation(
                "arguments",
                format!("{}: the arguments must be a JSON object", call.name),
            )),
            Ok(t) => plugins::call_tool(state, caller, t, &params).await,
        };
        let (text, record) = match outcome {
            Ok(result) => {
                let text = result.to_string();
                (
                    text,
                    ToolUse {
                        tool: call.name.clone(),
                        plugin,
                        params,
                        result: Some(result),
                        error: None,
                    },
                )
            }
            Err(e) => {
                let text = json!({ "error": { "code": e.code.as_str(), "message": e.message } })
                    .to_string();
                (
                    text,
                    ToolUse {
                        tool: call.name.clone(),
                        plugin,
                        params,
                        result: None,
                        error: Some(format!("{}: {}", e.code.as_str(), e.message)),
                    },
                )
            }
        };
        let text: String = text.chars().take(MAX_RESULT_CHARS).collect();
        step(
            state,
            channel,
            chat_id,
            message_id,
            StepKind::Result,
            text.clone(),
            Some(call.name.clone()),
            None,
        );
        used.push(record);
        out.push(PromptMessage::tool_result(&call.id, text));
    }
    out
}

//! `plugin_call`: calls an export of a running plugin as the job's owner (a scheduled sync,
//! a nightly report). Payload: `{plugin, function, input?}`. The owner must still be allowed
//! to call the plugin at every run; a plugin that is not running, times out or crashes is
//! retried by the job's policy, an error the plugin returns is final.

use super::parse_payload;
use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::jobs::{JobContext, JobError, JobKind};
use crate::service::plugins;
use crate::state::AppState;
use serde::Deserialize;
use serde_json::{json, Value};

/// The kind.
pub struct PluginCall;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    plugin: String,
    function: String,
    #[serde(default)]
    input: Option<Value>,
}

async fn check_payload(state: &AppState, caller: &Caller, p: &Payload) -> AppResult<()> {
    if p.function.is_empty() || p.function.len() > 128 {
        return Err(AppError::validation(
            "payload.function",
            "payload.function: 1 to 128 characters",
        ));
    }
    plugins::get(state, caller, &p.plugin).await.map_err(|e| {
        AppError::validation("payload.plugin", format!("payload.plugin: {}", e.message))
    })?;
    Ok(())
}

#[async_trait::async_trait]
impl JobKind for PluginCall {
    fn name(&self) -> &'static str {
        "plugin_call"
    }

    async fn check(&self, state: &AppState, caller: &Caller, payload: &Value) -> AppResult<()> {
        let p: Payload = parse_payload(payload)?;
        check_payload(state, caller, &p).await
    }

    async fn run(&self, ctx: &JobContext) -> Result<Value, JobError> {
        let p: Payload = parse_payload(&ctx.payload).map_err(|e| JobError::permanent(e.message))?;
        check_payload(&ctx.state, &ctx.caller, &p)
            .await
            .map_err(|e| JobError::permanent(e.message))?;
        let input = p.input.clone().unwrap_or_else(|| json!({}));
        // A call ends at its own time limit; a cancel request stops waiting for it.
        let output = tokio::select! {
            r = plugins::call(&ctx.state, &ctx.caller, &p.plugin, &p.function, &input) => r?,
            _ = ctx.cancelled() => return Err(JobError::retriable("the call was cancelled")),
        };
        Ok(json!({ "plugin": p.plugin, "function": p.function, "output": output }))
    }
}

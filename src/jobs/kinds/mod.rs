//! The job kinds Hearth ships. Each is a small module implementing [`JobKind`]; a capability
//! that needs background work adds its module here and its constructor to [`builtin`].

pub mod agent_prompt;

use super::JobKind;
use crate::error::{AppError, AppResult};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Arc;

/// Every kind the server registers at start.
pub fn builtin() -> Vec<Arc<dyn JobKind>> {
    vec![Arc::new(agent_prompt::AgentPrompt)]
}

/// Reads a payload into the kind's input type; a wrong shape is a validation error naming
/// the field (`payload.agent_id`), an unknown key included.
pub fn parse_payload<T: DeserializeOwned>(payload: &Value) -> AppResult<T> {
    if !payload.is_object() {
        return Err(AppError::validation(
            "payload",
            "payload must be a JSON object",
        ));
    }
    serde_json::from_value(payload.clone()).map_err(|e| {
        let text = e.to_string();
        let field = text
            .split('`')
            .nth(1)
            .filter(|f| !f.is_empty() && !f.contains(' '))
            .map(|f| format!("payload.{f}"))
            .unwrap_or_else(|| "payload".to_string());
        let message = text.split(" at line").next().unwrap_or(&text).to_string();
        AppError::validation(&field, format!("{field}: {message}"))
    })
}

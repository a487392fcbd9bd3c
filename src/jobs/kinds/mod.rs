//! The job kinds Hearth ships. Each is a small module implementing [`JobKind`]; a capability
//! that needs background work adds its module here and its constructor to [`builtin`].

pub mod agent_prompt;
pub mod backup;
pub mod plugin_call;

use super::JobKind;
use crate::error::{AppError, AppResult};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Arc;

/// Every kind the server registers at start.
pub fn builtin() -> Vec<Arc<dyn JobKind>> {
    vec![
        Arc::new(agent_prompt::AgentPrompt),
        Arc::new(plugin_call::PluginCall),
        Arc::new(backup::Backup),
        Arc::new(crate::rag::ingest::IngestDocument),
        Arc::new(crate::rag::reindex::Reindex),
    ]
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
    serde_path_to_error::deserialize(payload.clone()).map_err(|e| {
        let path = e.path().to_string();
        let text = e.inner().to_string();
        // Missing and unknown keys are reported at the object; their name is in the message.
        let key = if path == "." {
            text.split('`').nth(1).map(str::to_string)
        } else {
            Some(path)
        };
        let field = key
            .filter(|k| !k.is_empty() && !k.contains(' '))
            .map(|k| format!("payload.{k}"))
            .unwrap_or_else(|| "payload".to_string());
        AppError::validation(&field, format!("{field}: {text}"))
    })
}

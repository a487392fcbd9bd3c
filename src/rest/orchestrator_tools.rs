//! Seed 000 (AI orchestrator) tools: `GET /tools` and `GET /tools/{name}`, the tools of
//! running plugins the caller may call. `parameters` is the seed's short form
//! (`{"title": "string (required)"}`); `input_schema` carries the full JSON schema.

use crate::error::AppError;
use crate::http::extract::AuthCaller;
use crate::service::plugins::{self, ToolView};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

/// Routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tools", get(list))
        .route("/tools/{name}", get(detail))
}

/// The seed's parameter summary of a JSON schema: `name: "type"` or `"type (required)"`.
fn summary(schema: &Value) -> Value {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = Map::new();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, p) in props {
            let ty = match p.get("type") {
                Some(Value::String(t)) => t.clone(),
                Some(Value::Array(ts)) => ts
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("|"),
                _ => "any".into(),
            };
            let text = if required.contains(&name.as_str()) {
                format!("{ty} (required)")
            } else {
                ty
            };
            out.insert(name.clone(), Value::String(text));
        }
    }
    Value::Object(out)
}

/// A tool as the seed shows it.
pub fn tool_json(t: &ToolView) -> Value {
    json!({
        "name": t.tool.name,
        "description": t.tool.description,
        "parameters": summary(&t.tool.parameters),
        "category": t.tool.category,
        "plugin": t.plugin,
        "input_schema": t.tool.parameters,
    })
}

async fn list(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
) -> Result<Json<Value>, AppError> {
    let tools = plugins::tools(&state, &caller).await?;
    Ok(Json(json!({
        "count": tools.len(),
        "tools": tools.iter().map(tool_json).collect::<Vec<_>>(),
    })))
}

async fn detail(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(name): Path<String>,
) -> Result<Json<Value>, AppError> {
    let tool = plugins::tool(&state, &caller, &name).await?;
    Ok(Json(tool_json(&tool)))
}

//! Seed 000 (AI orchestrator) tools: `GET /tools` and `GET /tools/{name}`, the tools of
//! running plugins the caller may call. `parameters` is the seed's short form
//! (`{"title": "string (required)"}`); `input_schema` carries the full JSON schema.

use super::openapi::ORCHESTRATOR;
use super::DocRouter;
use crate::error::AppError;
use crate::http::extract::AuthCaller;
use crate::service::plugins::{self, ToolView};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Map, Value};
use utoipa_axum::routes;

/// Routes.
pub fn router() -> DocRouter {
    DocRouter::new()
        .routes(routes!(list))
        .routes(routes!(detail))
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

/// The tools the caller may call, from the running plugins.
#[utoipa::path(get, path = "/tools", tag = ORCHESTRATOR,
    responses((status = 200, description = "`{count, tools}`; each tool `{name, description, parameters, category, plugin, input_schema}`", body = Object)))]
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

/// One tool the caller may call, with its parameters.
///
/// `parameters` is the short form (`{"title": "string (required)"}`); `input_schema` the
/// full JSON schema.
#[utoipa::path(get, path = "/tools/{name}", tag = ORCHESTRATOR,
    params(("name" = String, Path, description = "The tool's name")),
    responses((status = 200, description = "`{name, description, parameters, category, plugin, input_schema}`", body = Object)))]
async fn detail(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(name): Path<String>,
) -> Result<Json<Value>, AppError> {
    let tool = plugins::tool(&state, &caller, &name).await?;
    Ok(Json(tool_json(&tool)))
}

//! Seed 004 (Llama Runner Async Proxy): the model registry (`/api/models`, shared with seed
//! 000's model list), discovery, `/api/config` and the read-only `/api/parameters`.
//! Errors add seed 004's `error` field to the default body (`detail`, `code`, …).
//! Reading needs any signed-in caller; changing needs an admin.

use super::openapi::{ORCHESTRATOR, RUNNER};
use super::DocRouter;
use crate::db::models::ModelRow;
use crate::error::AppError;
use crate::http::extract::{AuthCaller, JsonBody};
use crate::service::models::{self, ModelInput};
use crate::state::AppState;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::routes;

/// Routes.
pub fn router() -> DocRouter {
    DocRouter::new()
        .routes(routes!(list, register))
        .routes(routes!(discover))
        .routes(routes!(config, update_config))
        .routes(routes!(categories))
        .routes(routes!(category))
        .routes(routes!(parameter))
        .layer(middleware::from_fn(runner_errors))
}

/// Adds seed 004's `error` (the message) to table error bodies.
pub(crate) async fn runner_errors(req: Request, next: Next) -> Response {
    runner_shape(next.run(req).await)
}

/// A table error response in seed 004's shape (others pass unchanged).
pub fn runner_shape(res: Response) -> Response {
    let Some(err) = res.extensions().get::<AppError>() else {
        return res;
    };
    let mut body = crate::http::errors::default_body(err);
    body["error"] = json!(err.message);
    if body.get("details").is_none() {
        body["details"] = json!("");
    }
    crate::http::errors::with_body(res, &body)
}

fn human_size(bytes: i64) -> String {
    let gb = bytes as f64 / 1e9;
    if gb >= 1.0 {
        format!("{gb:.0}GB")
    } else {
        format!("{:.0}MB", bytes as f64 / 1e6)
    }
}

/// A model in the union of seed 000 (`key`, `name`, `type`, `size`, `provider`) and seed
/// 004 (`name`, `description`, `status`, `version`) shapes.
fn model_json(state: &AppState, m: &ModelRow) -> Value {
    json!({
        "key": m.key,
        "name": m.name,
        "type": m.kind,
        "size": m.size_bytes.map(human_size),
        "size_bytes": m.size_bytes,
        "provider": m.provider,
        "family": m.family,
        "description": m.description,
        "status": state.llm.status(m),
        "version": m.version,
        "context_length": m.context_length,
        "max_concurrent": m.max_concurrent,
        "enabled": m.enabled,
    })
}

/// The registered models, after the automatic choice (`auto`).
///
/// Each model has seed 000's fields (`key`, `name`, `type`, `size`, `provider`) and seed 004's
/// (`name`, `description`, `status`, `version`).
#[utoipa::path(get, path = "/api/models", tags = [RUNNER, ORCHESTRATOR],
    responses((status = 200, description = "`{count, models}`; a model: `key`, `name`, `type`, `size`, `size_bytes`, `provider`, `family`, `description`, `status`, `version`, `context_length`, `max_concurrent`, `enabled`", body = Object)))]
async fn list(
    State(state): State<AppState>,
    AuthCaller(_caller): AuthCaller,
) -> Result<Json<Value>, AppError> {
    let rows = models::list(&state).await?;
    let mut items = vec![json!({
        "key": models::AUTO,
        "name": "Sélection automatique",
        "type": "router",
        "description": "The agent's model, else the default, else the first healthy model",
        "status": "running",
    })];
    items.extend(rows.iter().map(|m| model_json(&state, m)));
    Ok(Json(json!({ "count": items.len(), "models": items })))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = RunnerRegisterItem)]
struct RegisterItem {
    /// The model's display name.
    name: String,
    description: Option<String>,
    /// A local GGUF file (the model is then `local`).
    path: Option<String>,
    /// The model's key (default: the name, slugified).
    key: Option<String>,
    /// Without `path`: an OpenAI-compatible server's base URL, up to `/v1`.
    base_url: Option<String>,
    /// Bearer key for that server.
    api_key: Option<String>,
    /// Context window, in tokens.
    context_length: Option<i32>,
    /// Generations the model runs at once.
    max_concurrent: Option<i32>,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = RunnerRegisterBody)]
struct RegisterBody {
    /// Between 1 and 100 models.
    models: Vec<RegisterItem>,
}

/// Registers models (admins).
#[utoipa::path(post, path = "/api/models", tag = RUNNER, request_body = RegisterBody,
    responses((status = 201, description = "`{message, registered, models}`: the count and the registered models", body = Object)))]
async fn register(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    JsonBody(body): JsonBody<RegisterBody>,
) -> Result<Response, AppError> {
    caller.require_admin()?;
    if body.models.is_empty() || body.models.len() > 100 {
        return Err(AppError::validation(
            "models",
            "give between 1 and 100 models",
        ));
    }
    let mut registered = Vec::new();
    for m in body.models {
        let row = models::register(
            &state,
            &caller,
            ModelInput {
                key: m
                    .key
                    .or_else(|| Some(crate::service::validate::slugify(&m.name))),
                name: Some(m.name),
                description: m.description,
                path: m.path,
                base_url: m.base_url,
                api_key: m.api_key,
                context_length: m.context_length,
                max_concurrent: m.max_concurrent,
                ..Default::default()
            },
        )
        .await?;
        registered.push(model_json(&state, &row));
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "message": "Models registered successfully",
            "registered": registered.len(),
            "models": registered,
        })),
    )
        .into_response())
}

#[derive(Deserialize, ToSchema)]
#[schema(as = RunnerDiscoverBody)]
struct DiscoverBody {
    /// Between 1 and 32 files or folders to scan (folders walked a few levels deep).
    paths: Vec<String>,
}

/// Scans files and folders for `.gguf` models and registers the new ones (admins).
#[utoipa::path(post, path = "/api/models/discover", tag = RUNNER, request_body = DiscoverBody,
    responses((status = 200,
        description = "`{discovered: [{key, name, description, version, path, family, size, context_length, newly_registered}], scannedPaths, totalFound}`",
        body = Object)))]
async fn discover(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    JsonBody(body): JsonBody<DiscoverBody>,
) -> Result<Json<Value>, AppError> {
    let found = models::discover(&state, &caller, &body.paths).await?;
    let items: Vec<Value> = found
        .iter()
        .map(|d| {
            let m = &d.model;
            json!({
                "key": m.key,
                "name": m.name,
                "description": m.description,
                "version": m.version,
                "path": m.path,
                "family": m.family,
                "size": m.size_bytes,
                "context_length": m.context_length,
                "newly_registered": d.newly_registered,
            })
        })
        .collect();
    Ok(Json(json!({
        "discovered": items,
        "scannedPaths": body.paths,
        "totalFound": items.len(),
    })))
}

async fn config_json(state: &AppState) -> Result<Value, AppError> {
    let default = models::resolve(state, None, None).await.ok();
    let port = state
        .config
        .bind
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok());
    Ok(json!({
        "app": { "name": "Hearth", "version": env!("CARGO_PKG_VERSION"), "port": port },
        "models": {
            "defaultModel": default.as_ref().map(|m| m.key.clone()),
            "maxConcurrent": default.as_ref().map(|m| m.max_concurrent),
            "queueDepth": state.config.llm.queue_depth,
        },
    }))
}

/// The application's configuration: name, version, port and the default model.
#[utoipa::path(get, path = "/api/config", tag = RUNNER,
    responses((status = 200, description = "`{app: {name, version, port}, models: {defaultModel, maxConcurrent, queueDepth}}`", body = Object)))]
async fn config(
    State(state): State<AppState>,
    AuthCaller(_caller): AuthCaller,
) -> Result<Json<Value>, AppError> {
    Ok(Json(config_json(&state).await?))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = RunnerModelsConfig)]
#[serde(rename_all = "camelCase")]
struct ModelsConfig {
    /// The key of the new default model.
    default_model: Option<String>,
    /// Generations the default model runs at once.
    max_concurrent: Option<i32>,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = RunnerConfigBody)]
struct ConfigBody {
    models: ModelsConfig,
}

/// Sets the default model and, with `maxConcurrent`, the default model's concurrency (admins).
#[utoipa::path(post, path = "/api/config", tag = RUNNER, request_body = ConfigBody,
    responses((status = 200, description = "The configuration after the change: `{app: {name, version, port}, models: {defaultModel, maxConcurrent, queueDepth}}`", body = Object)))]
async fn update_config(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    JsonBody(body): JsonBody<ConfigBody>,
) -> Result<Json<Value>, AppError> {
    caller.require_admin()?;
    if let Some(k) = &body.models.default_model {
        models::set_default(&state, &caller, Some(k)).await?;
    }
    if let Some(n) = body.models.max_concurrent {
        let default = models::resolve(&state, None, None).await?;
        models::update(
            &state,
            &caller,
            &default.key,
            ModelInput {
                max_concurrent: Some(n),
                ..Default::default()
            },
        )
        .await?;
    }
    Ok(Json(config_json(&state).await?))
}

/// Categories and their parameters: the effective values, with their bounds.
fn parameters(state: &AppState) -> Vec<(&'static str, Vec<(&'static str, Value)>)> {
    let l = &state.config.llm;
    let p = |value: Value, min: Value, max: Value, description: &str| json!({ "value": value, "min": min, "max": max, "description": description });
    vec![
        (
            "model",
            vec![
                (
                    "temperature",
                    p(
                        json!(0.7),
                        json!(0.0),
                        json!(2.0),
                        "Controls randomness in generation",
                    ),
                ),
                (
                    "maxTokens",
                    p(
                        json!(l.default_max_tokens),
                        json!(1),
                        json!(crate::service::completions::MAX_TOKENS_CAP),
                        "Maximum tokens to generate",
                    ),
                ),
                (
                    "contextLength",
                    p(
                        json!(l.local_context),
                        json!(256),
                        json!(1_048_576),
                        "Context window of local generations, in tokens",
                    ),
                ),
            ],
        ),
        (
            "system",
            vec![
                (
                    "requestTimeoutSecs",
                    p(
                        json!(l.request_timeout_secs),
                        json!(1),
                        Value::Null,
                        "Wait for a remote model's first token",
                    ),
                ),
                (
                    "connectTimeoutSecs",
                    p(
                        json!(l.connect_timeout_secs),
                        json!(1),
                        Value::Null,
                        "Wait for a TCP connection to a remote model",
                    ),
                ),
                (
                    "idleTimeoutSecs",
                    p(
                        json!(l.idle_timeout_secs),
                        json!(1),
                        Value::Null,
                        "Longest silence between two tokens",
                    ),
                ),
            ],
        ),
        (
            "performance",
            vec![
                (
                    "queueDepth",
                    p(
                        json!(l.queue_depth),
                        json!(0),
                        Value::Null,
                        "Requests that may wait for a busy model",
                    ),
                ),
                (
                    "localThreads",
                    p(
                        json!(l.local_threads),
                        json!(0),
                        Value::Null,
                        "Decode threads per local generation (0: one per core)",
                    ),
                ),
            ],
        ),
    ]
}

/// The parameter categories.
#[utoipa::path(get, path = "/api/parameters", tag = RUNNER,
    responses((status = 200, description = "`{categories}`: `model`, `system`, `performance`", body = Object)))]
async fn categories(State(state): State<AppState>, AuthCaller(_caller): AuthCaller) -> Json<Value> {
    let names: Vec<&str> = parameters(&state).iter().map(|(c, _)| *c).collect();
    Json(json!({ "categories": names }))
}

/// A category's parameters: effective values, with their bounds.
#[utoipa::path(get, path = "/api/parameters/{category}", tag = RUNNER,
    params(("category" = String, Path, description = "`model`, `system` or `performance`")),
    responses((status = 200,
        description = "`{category, parameters}`: each parameter `{value, min, max, description}`",
        body = Object)))]
async fn category(
    State(state): State<AppState>,
    AuthCaller(_caller): AuthCaller,
    Path(name): Path<String>,
) -> Result<Json<Value>, AppError> {
    let (cat, params) = parameters(&state)
        .into_iter()
        .find(|(c, _)| *c == name)
        .ok_or_else(|| AppError::not_found("parameter category"))?;
    let map: serde_json::Map<String, Value> = params
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    Ok(Json(json!({ "category": cat, "parameters": map })))
}

/// One parameter's effective value, by name.
#[utoipa::path(get, path = "/api/parameters/category/{param}", tag = RUNNER,
    params(("param" = String, Path, description = "The parameter's name, e.g. `temperature`, `maxTokens`, `queueDepth`")),
    responses((status = 200, description = "`{parameter, value, category}`", body = Object)))]
async fn parameter(
    State(state): State<AppState>,
    AuthCaller(_caller): AuthCaller,
    Path(name): Path<String>,
) -> Result<Json<Value>, AppError> {
    for (cat, params) in parameters(&state) {
        if let Some((k, v)) = params.into_iter().find(|(k, _)| *k == name) {
            return Ok(Json(
                json!({ "parameter": k, "value": v["value"], "category": cat }),
            ));
        }
    }
    Err(AppError::not_found("parameter"))
}

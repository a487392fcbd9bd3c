//! Seed 004 (Llama Runner Async Proxy): the model registry (`/api/models`, shared with seed
//! 000's model list), discovery, `/api/config` and the read-only `/api/parameters`.
//! Errors add seed 004's `error` field to the default body (`detail`, `code`, …).
//! Reading needs any signed-in caller; changing needs an admin.

use crate::db::models::ModelRow;
use crate::error::AppError;
use crate::http::extract::{AuthCaller, JsonBody};
use crate::service::models::{self, ModelInput};
use crate::state::AppState;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

/// Routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/models", get(list).post(register))
        .route("/api/models/discover", post(discover))
        .route("/api/config", get(config).post(update_config))
        .route("/api/parameters", get(categories))
        .route("/api/parameters/{category}", get(category))
        .route("/api/parameters/category/{param}", get(parameter))
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

async fn list(
    State(state): State<AppState>,
    AuthCaller(_): AuthCaller,
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

#[derive(Deserialize)]
struct RegisterItem {
    name: String,
    description: Option<String>,
    path: Option<String>,
    key: Option<String>,
    base_url: Option<String>,
    api_key: Option<String>,
    context_length: Option<i32>,
    max_concurrent: Option<i32>,
}

#[derive(Deserialize)]
struct RegisterBody {
    models: Vec<RegisterItem>,
}

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

#[derive(Deserialize)]
struct DiscoverBody {
    paths: Vec<String>,
}

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

async fn config(
    State(state): State<AppState>,
    AuthCaller(_): AuthCaller,
) -> Result<Json<Value>, AppError> {
    Ok(Json(config_json(&state).await?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModelsConfig {
    default_model: Option<String>,
    max_concurrent: Option<i32>,
}

#[derive(Deserialize)]
struct ConfigBody {
    models: ModelsConfig,
}

/// Sets the default model and, with `maxConcurrent`, the default model's concurrency.
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

async fn categories(State(state): State<AppState>, AuthCaller(_): AuthCaller) -> Json<Value> {
    let names: Vec<&str> = parameters(&state).iter().map(|(c, _)| *c).collect();
    Json(json!({ "categories": names }))
}

async fn category(
    State(state): State<AppState>,
    AuthCaller(_): AuthCaller,
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

async fn parameter(
    State(state): State<AppState>,
    AuthCaller(_): AuthCaller,
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

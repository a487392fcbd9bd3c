//! Seed 003's `POST /history/replay` (cookie + CSRF, bearer tokens and API keys too): the user
//! messages of one of the caller's chats sent again, in order, into a new chat.
//!
//! Body `{chat_id, model?, wait?}`: `chat_id` as `12`, `"12"` or `"conv-12"`; `model` a model
//! key (default: the chat's or its agent's); `wait` (default false) answers once every turn
//! is stored. Answer `{chat_id, source_chat_id, turns, replayed, status}`: 202 and
//! `status: "replaying"` at once (the turns go on in the background, visible on the new
//! chat's subscriptions), or 200 with `replayed` and `status: "complete"` (or `"stopped"` and
//! `error` when a turn could not start) with `wait`. Invalid requests are 400 (seed 003).

use super::openapi::PLUGIN_HOST;
use super::plugin_host_jobs::bad_request_status;
use super::DocRouter;
use crate::error::AppError;
use crate::http::extract::{AuthCaller, JsonBody};
use crate::service::replay::{self, ReplayInput};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{middleware, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::routes;

/// Routes.
pub fn router() -> DocRouter {
    DocRouter::new()
        .routes(routes!(replay_chat))
        .layer(middleware::from_fn(bad_request_status))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = PluginHostReplayBody)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    /// The chat to replay: `12`, `"12"` or `"conv-12"`.
    chat_id: Value,
    /// A model key (default: the chat's, or its agent's).
    model: Option<String>,
    /// Answer once every turn is stored (default false: answer 202 at once).
    #[serde(default)]
    wait: bool,
}

fn chat_id(v: &Value) -> Result<i64, AppError> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .filter(|n| *n > 0)
            .ok_or_else(|| AppError::validation("chat_id", "chat_id must be a positive id")),
        Value::String(s) => super::orchestrator::conversation_id(s.trim()).map_err(|_| {
            AppError::validation("chat_id", "chat_id must be an id like 12 or conv-12")
        }),
        _ => Err(AppError::validation("chat_id", "chat_id must be an id")),
    }
}

/// Replays the user messages of one of the caller's chats, in order, into a new chat.
///
/// Without `wait` the answer is 202 with `status: "replaying"` and the turns go on in the
/// background (visible on the new chat's subscriptions); with `wait` it is 200 once every
/// turn is stored.
#[utoipa::path(post, path = "/history/replay", tag = PLUGIN_HOST, request_body = ReplayBody,
    responses(
        (status = 200, description = "With `wait`: `{chat_id, source_chat_id, turns, replayed, status, error}`, \
            `status` `complete`, or `stopped` with `error: {code, message}` when a turn could not start",
            body = Object),
        (status = 202, description = "`{chat_id, source_chat_id, turns, replayed: null, status: \"replaying\", error: null}`",
            body = Object)))]
async fn replay_chat(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    JsonBody(body): JsonBody<ReplayBody>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let input = ReplayInput {
        chat_id: chat_id(&body.chat_id)?,
        model: body.model.filter(|m| !m.trim().is_empty()),
    };
    let prepared = replay::prepare(&state, &caller, &input).await?;
    let answer = |replayed: Option<usize>, status: &str, error: Option<&AppError>| {
        json!({
            "chat_id": prepared.chat.id.to_string(),
            "source_chat_id": input.chat_id.to_string(),
            "turns": prepared.turns.len(),
            "replayed": replayed,
            "status": status,
            "error": error.map(|e| json!({ "code": e.code.as_str(), "message": e.message })),
        })
    };
    if body.wait {
        let (done, err) = replay::run(&state, &caller, &prepared, input.model.clone()).await;
        let status = if err.is_none() { "complete" } else { "stopped" };
        return Ok((
            StatusCode::OK,
            Json(answer(Some(done), status, err.as_ref())),
        ));
    }
    let out = answer(None, "replaying", None);
    let st = state.clone();
    let model = input.model.clone();
    state.background.spawn(async move {
        let (done, err) = replay::run(&st, &caller, &prepared, model).await;
        if let Some(e) = err {
            tracing::warn!(chat = prepared.chat.id, done, error = %e, "a replay stopped early");
        }
    });
    Ok((StatusCode::ACCEPTED, Json(out)))
}

//! Seed 001 messages: `POST /api/messages` (the stored user and assistant messages) and
//! `GET /api/messages/stream/{chat_id}?message=` (SSE `{"token", "message_id"}` … `[DONE]`).

use super::foyer::message_json;
use super::streaming::{sse, turn_events};
use crate::error::AppError;
use crate::events::turns::TurnEvent;
use crate::http::extract::{credential, path_id, AuthCaller, JsonBody};
use crate::service::turns::{self, SendInput};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;

/// Routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/messages", post(send))
        .route("/api/messages/stream/{chat_id}", get(stream))
}

#[derive(Deserialize)]
struct SendBody {
    chat_id: i64,
    content: String,
    #[serde(default)]
    files: Vec<i64>,
}

async fn send(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    JsonBody(body): JsonBody<SendBody>,
) -> Result<Response, AppError> {
    let start = turns::send(
        &state,
        &caller,
        body.chat_id,
        SendInput {
            content: body.content,
            files: body.files,
            ..Default::default()
        },
    )
    .await?;
    let user = message_json(&start.user_message);
    let outcome = start.finish().await?;
    if let Some(e) = outcome.error {
        return Err(e);
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({ "user_message": user, "assistant_message": message_json(&outcome.message) })),
    )
        .into_response())
}

#[derive(Deserialize)]
struct StreamQuery {
    message: Option<String>,
}

async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(chat_id): Path<String>,
    Query(q): Query<StreamQuery>,
) -> Result<Response, AppError> {
    // This GET changes state (the seed's design): a cookie alone must carry the CSRF token,
    // or a link on another site could make a signed-in browser send a message.
    let cred = credential(&headers, true).ok_or_else(AppError::unauthenticated)?;
    let caller = crate::service::auth::authenticate(&state, cred).await?;
    let start = turns::send(
        &state,
        &caller,
        path_id(&chat_id)?,
        SendInput {
            content: q.message.unwrap_or_default(),
            ..Default::default()
        },
    )
    .await?;
    // Each event becomes zero or more `data:` lines; an error is followed by `[DONE]` too,
    // so clients that wait for it stop reading.
    let events = turn_events(&state, start).flat_map(|e| {
        let lines = match &e.event {
            TurnEvent::Token {
                delta, message_id, ..
            } => {
                vec![json!({ "token": &**delta, "message_id": message_id }).to_string()]
            }
            TurnEvent::Response { .. } => vec!["[DONE]".to_string()],
            TurnEvent::Error {
                code,
                message,
                message_id,
                ..
            } => vec![
                json!({ "error": message, "code": code.as_str(), "message_id": message_id })
                    .to_string(),
                "[DONE]".to_string(),
            ],
            _ => Vec::new(),
        };
        futures_util::stream::iter(lines)
    });
    Ok(sse(&state, &caller, events))
}

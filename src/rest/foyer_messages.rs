//! Seed 001 messages: `POST /api/messages` (the stored user and assistant messages) and
//! `GET /api/messages/stream/{chat_id}?message=` (SSE `{"token", "message_id"}` … `[DONE]`,
//! each event with an `id:` cursor; an `EventSource` that reconnects sends it back as
//! `Last-Event-ID` and gets the rest of the same answer instead of sending the message again).

use super::foyer::message_json;
use super::openapi::FOYER;
use super::streaming::{parse_cursor, resumed_turn, sse_with_ids, turn_events};
use super::DocRouter;
use crate::error::AppError;
use crate::events::turns::{Sequenced, TurnEvent};
use crate::http::extract::{credential, path_id, AuthCaller, JsonBody};
use crate::service::turns::{self, SendInput};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

/// Routes.
pub fn router() -> DocRouter {
    DocRouter::new()
        .routes(routes!(send))
        .routes(routes!(stream))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = FoyerMessagesSendBody)]
struct SendBody {
    /// The caller's chat.
    chat_id: i64,
    /// The user's message (at most 4000 characters).
    content: String,
    /// Ids of the caller's documents to attach to the message.
    #[serde(default)]
    files: Vec<i64>,
}

/// Sends a message to a chat and answers once the assistant's reply is complete.
#[utoipa::path(post, path = "/api/messages", tag = FOYER, request_body = SendBody,
    responses((status = 201, description = "`{user_message, assistant_message}`; the assistant's adds `llm_model`, `status`, `prompt_tokens`, `completion_tokens`", body = Object)))]
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StreamQuery {
    /// The user's message to send (ignored when resuming with `Last-Event-ID`).
    message: Option<String>,
}

/// Sends a message to a chat and streams the reply as server-sent events.
///
/// Each event is `data: {"token", "message_id"}` with an `id:` cursor, then `data: [DONE]`;
/// an error is `{"error", "code", "message_id"}` followed by `[DONE]`. A reconnecting
/// `EventSource` sends its last cursor as `Last-Event-ID` and gets the rest of the same
/// answer instead of sending the message again. A caller signed in by cookie sends its CSRF
/// token in `X-CSRF-Token`, as this GET sends a message.
#[utoipa::path(get, path = "/api/messages/stream/{chat_id}", tag = FOYER,
    params(
        ("chat_id" = i64, Path, description = "The caller's chat"),
        StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "The cursor of the last event read: resumes the same answer after it"),
    ),
    responses((status = 200, description = "`data: {\"token\", \"message_id\"}` events, each with an `id:` cursor, ending with `data: [DONE]`", content_type = "text/event-stream", body = String)))]
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
    let chat_id = path_id(&chat_id)?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty());
    if let Some(raw) = resume {
        // A reconnecting EventSource: the rest of the answer it was reading.
        let cursor = parse_cursor("Last-Event-ID", raw)?;
        let events = resumed_turn(&state, &caller, chat_id, cursor).await?;
        return Ok(sse_with_ids(&state, &caller, events.flat_map(lines)));
    }
    let start = turns::send(
        &state,
        &caller,
        chat_id,
        SendInput {
            content: q.message.unwrap_or_default(),
            ..Default::default()
        },
    )
    .await?;
    let events = turn_events(&state, start).flat_map(lines);
    Ok(sse_with_ids(&state, &caller, events))
}

/// Each event becomes zero or more `data:` lines, the first with the event's cursor as its
/// `id:`; an error is followed by `[DONE]` too, so clients that wait for it stop reading.
fn lines(
    e: std::sync::Arc<Sequenced>,
) -> futures_util::stream::Iter<std::vec::IntoIter<(Option<String>, String)>> {
    let id = Some(e.cursor.encode());
    let lines = match &e.event {
        TurnEvent::Token {
            delta, message_id, ..
        } => {
            vec![(
                id,
                json!({ "token": &**delta, "message_id": message_id }).to_string(),
            )]
        }
        TurnEvent::Response { .. } => vec![(id, "[DONE]".to_string())],
        TurnEvent::Error {
            code,
            message,
            message_id,
            ..
        } => vec![
            (
                id,
                json!({ "error": message, "code": code.as_str(), "message_id": message_id })
                    .to_string(),
            ),
            (None, "[DONE]".to_string()),
        ],
        _ => Vec::new(),
    };
    futures_util::stream::iter(lines)
}

//! When a caller's stream ends. Every streaming door (GraphQL subscriptions and sockets, SSE,
//! `/ws/chat`, `/llm/stream`) asks [`stream_end`], so they all end for the same reasons: the
//! caller's identity ended (logout, session termination, key revocation, deactivation,
//! expiry), the chat it follows was deleted, or the server drains.

use crate::auth::Caller;
use crate::error::{AppError, ErrorCode};
use crate::events::Event;
use crate::service::{auth, now};
use crate::state::AppState;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// How often an open stream re-checks its caller even without a hint on the bus, so a missed
/// event still ends it (the database is the truth; events only make it prompt).
const RECHECK_EVERY: Duration = Duration::from_secs(60);

/// Why a stream ended.
#[derive(Debug, Clone)]
pub enum StreamEnd {
    /// The caller may no longer act; the error says why (401 or 403 class).
    Identity(AppError),
    /// The followed chat is gone.
    ChatDeleted,
    /// The server is draining.
    Shutdown,
}

/// Resolves when a stream of `caller` (following `chat_id`, if any) must end. Bus events
/// that concern the caller trigger an [`auth::recheck`]; so does the credential's expiry and
/// a periodic timer.
pub async fn stream_end(state: &AppState, caller: &Caller, chat_id: Option<i64>) -> StreamEnd {
    let mut bus = state.events.subscribe_control();
    // An end published before this subscription began would be missed: check once now.
    // Rechecks are boxed: every idle stream holds this future, and a recheck (database
    // queries) held inline would make each of them as large as the recheck.
    if let Err(e) = Box::pin(auth::recheck(state, caller)).await {
        if !matches!(e.code, ErrorCode::Unavailable | ErrorCode::Internal) {
            return StreamEnd::Identity(e);
        }
    }
    loop {
        let wait = caller
            .expires_at
            .map(|t| (t - now()).to_std().unwrap_or_default())
            .unwrap_or(RECHECK_EVERY)
            .min(RECHECK_EVERY);
        let recheck = tokio::select! {
            e = bus.recv() => match e {
                Ok(Event::Shutdown) => return StreamEnd::Shutdown,
                Ok(Event::ChatDeleted { chat_id: c, .. }) if Some(c) == chat_id => {
                    return StreamEnd::ChatDeleted
                }
                Ok(e) => caller.concerned_by(&e),
                // Missed events may have concerned this caller.
                Err(RecvError::Lagged(_)) => true,
                Err(RecvError::Closed) => return StreamEnd::Shutdown,
            },
            _ = tokio::time::sleep(wait) => true,
        };
        if recheck {
            match Box::pin(auth::recheck(state, caller)).await {
                Ok(_) => {}
                // A database hiccup is not a verdict on the caller.
                Err(e) if matches!(e.code, ErrorCode::Unavailable | ErrorCode::Internal) => {}
                Err(e) => return StreamEnd::Identity(e),
            }
        }
    }
}

/// Resolves when the caller's identity ends, ignoring chats and shutdown (for sockets, whose
/// operations end on those by themselves).
pub async fn identity_ended(state: &AppState, caller: &Caller) -> AppError {
    match stream_end(state, caller, None).await {
        StreamEnd::Identity(e) => e,
        StreamEnd::ChatDeleted | StreamEnd::Shutdown => std::future::pending().await,
    }
}

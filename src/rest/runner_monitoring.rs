//! Seed 004's monitoring: `GET /api/monitoring`, `GET /api/monitoring/history?hours=` and
//! the WebSocket `/api/websocket` (`status` every `monitoring.status_secs`; for admins,
//! `logs` batches and `error` messages from the live log feed). Any signed-in caller reads
//! them; errors carry seed 004's `error` field. `GET /metrics` (Prometheus) lives here too.

use super::openapi::{OPERATIONS, RUNNER};
use super::DocRouter;
use crate::auth::Caller;
use crate::error::{AppError, ErrorCode};
use crate::http::extract::{client_ip, AuthCaller, MaybeCaller, WsCaller};
use crate::ops::logs::LogRecord;
use crate::rest::streaming::close_message;
use crate::service::auth::recheck;
use crate::service::monitoring::{self, Status};
use crate::service::streams::stream_end;
use crate::state::AppState;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;
use utoipa_axum::routes;

/// Log records held for one batch at most (a flood is summarised, not queued).
const MAX_BATCH: usize = 200;
/// How often held log records are sent.
const LOG_FLUSH: Duration = Duration::from_secs(1);

/// Routes.
pub fn router() -> DocRouter {
    DocRouter::new()
        .routes(routes!(current))
        .routes(routes!(history))
        .routes(routes!(socket))
        .routes(routes!(metrics))
        .layer(middleware::from_fn(super::runner::runner_errors))
}

fn status_json(s: &Status) -> Value {
    json!({
        "cpu": s.figures.cpu,
        "memory": s.figures.memory,
        "activeModels": s.active_models,
        "totalRequests": s.total_requests,
        "uptime": s.uptime_secs,
        "loadedModels": s.loaded_models,
        "processCpu": s.figures.process_cpu,
        "processMemory": s.figures.process_memory,
        "cpus": s.figures.cpus,
        "node": s.node,
    })
}

/// The socket's `status`: seed 004 names its figures `cpuUsage` and `memoryUsage` there.
fn socket_status(s: &Status) -> Value {
    let mut v = status_json(s);
    v["cpuUsage"] = json!(s.figures.cpu);
    v["memoryUsage"] = json!(s.figures.memory);
    v
}

/// The live figures: CPU, memory, models, requests and uptime.
#[utoipa::path(get, path = "/api/monitoring", tag = RUNNER,
    responses((status = 200, description = "`cpu`, `memory`, `activeModels`, `totalRequests`, `uptime`, `loadedModels`, `processCpu`, `processMemory`, `cpus`, `node`", body = Object)))]
async fn current(State(state): State<AppState>, AuthCaller(caller): AuthCaller) -> Json<Value> {
    Json(status_json(&monitoring::status(&state, &caller)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// How far back, in hours (default 24; above 0, at most 8784).
    #[param(value_type = Option<f64>)]
    hours: Option<String>,
}

/// The recorded samples of the last hours, oldest first.
#[utoipa::path(get, path = "/api/monitoring/history", tag = RUNNER, params(HistoryQuery),
    responses((status = 200,
        description = "`{history: [{timestamp, cpu, memory, requests, processMemory, node}]}`",
        body = Object)))]
async fn history(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<Value>, AppError> {
    let hours = match q.hours.as_deref() {
        None => 24.0,
        Some(h) => h
            .trim()
            .parse::<f64>()
            .map_err(|_| AppError::validation("hours", "hours must be a number"))?,
    };
    let rows = monitoring::history(&state, &caller, hours).await?;
    let history: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "timestamp": super::ts(r.taken_at),
                "cpu": r.cpu,
                "memory": r.memory,
                "requests": r.requests,
                "processMemory": r.process_memory,
                "node": r.node,
            })
        })
        .collect();
    Ok(Json(json!({ "history": history })))
}

/// The Prometheus metrics, in the text exposition format.
///
/// Readable without credentials from the addresses in `monitoring.scrape_addresses`, otherwise
/// with an admin's credential.
#[utoipa::path(get, path = "/metrics", tag = OPERATIONS,
    security((), ("bearer" = []), ("api_key" = []), ("cookie" = [])),
    responses((status = 200, description = "The metrics",
        content_type = "text/plain; version=0.0.4", body = String)))]
async fn metrics(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let ip = client_ip(&state.config, &headers, peer);
    monitoring::may_scrape(&state, caller.as_ref(), &ip)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::ops::metrics::render(),
    )
        .into_response())
}

/// The live monitoring socket: `status` pushes and, for admins, the log feed.
///
/// The server sends `{type: "status", data}` at once and every `monitoring.status_secs`
/// (the figures of `/api/monitoring` plus `cpuUsage` and `memoryUsage`); admins also get
/// `{type: "logs", data: [records]}` batches every second and an `{type: "error", data:
/// {message, code, details}}` per error record. The one message it takes is
/// `{type: "ping"}`, answered `{type: "pong"}`.
#[utoipa::path(get, path = "/api/websocket", tag = RUNNER,
    responses((status = 101,
        description = "Switching protocols: JSON messages `{type, data}` (`status`, `logs`, `error`; `pong` to a `ping`)")))]
async fn socket(
    State(state): State<AppState>,
    WsCaller(caller): WsCaller,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade
        .max_message_size(16 * 1024)
        .on_upgrade(move |socket| serve_socket(state, caller, socket))
}

fn message(kind: &str, data: Value) -> WsMessage {
    WsMessage::Text(json!({ "type": kind, "data": data }).to_string().into())
}

fn error_message(message: &str, code: &str, details: &str) -> WsMessage {
    self::message(
        "error",
        json!({ "message": message, "code": code, "details": details }),
    )
}

/// The next record of the log feed; never, for a socket without it.
async fn next_log(
    logs: &mut Option<tokio::sync::broadcast::Receiver<LogRecord>>,
) -> Result<LogRecord, RecvError> {
    match logs {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Sends `status` at once and then on every tick, and (admins) the log feed in batches,
/// until the caller's identity ends, the server stops or the client leaves. The caller is
/// re-read before every push: a user no longer admin stops receiving logs at once.
async fn serve_socket(state: AppState, caller: Caller, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let opened_as = caller.clone();
    let end = stream_end(&state, &opened_as, None);
    tokio::pin!(end);
    let mut caller = caller;
    let mut status = tokio::time::interval(Duration::from_secs(
        state.config.monitoring.status_secs.max(1),
    ));
    let mut flush = tokio::time::interval(LOG_FLUSH);
    let mut logs = caller
        .is_admin()
        .then(|| crate::ops::logs::feed().subscribe());
    let mut held: Vec<LogRecord> = Vec::new();
    let mut skipped = 0u64;
    loop {
        let out = tokio::select! {
            why = &mut end => {
                let _ = tx.send(close_message(&why)).await;
                return;
            }
            _ = status.tick() => match recheck(&state, &caller).await {
                Ok(now) => {
                    caller = now;
                    if !caller.is_admin() {
                        logs = None;
                        held.clear();
                    }
                    vec![message("status", socket_status(&monitoring::status(&state, &caller)))]
                }
                // The end future closes the socket when the identity is gone.
                Err(_) => continue,
            },
            r = next_log(&mut logs) => {
                match r {
                    Ok(rec) if held.len() < MAX_BATCH => held.push(rec),
                    // A full batch keeps warnings and errors: an `info` record makes room.
                    Ok(rec) if rec.level != "info" => {
                        if let Some(i) = held.iter().position(|h| h.level == "info") {
                            held.remove(i);
                            held.push(rec);
                        }
                        skipped += 1;
                    }
                    Ok(_) => skipped += 1,
                    Err(RecvError::Lagged(n)) => skipped += n,
                    Err(RecvError::Closed) => logs = None,
                }
                continue;
            }
            _ = flush.tick(), if !held.is_empty() || skipped > 0 => {
                match recheck(&state, &caller).await {
                    Ok(now) if now.is_admin() => caller = now,
                    _ => {
                        held.clear();
                        skipped = 0;
                        continue;
                    }
                }
                let batch = std::mem::take(&mut held);
                let mut out: Vec<WsMessage> = batch
                    .iter()
                    .filter(|r| r.level == "error")
                    .map(|r| error_message(&r.message, "SERVER_ERROR", &r.source))
                    .collect();
                let mut data = serde_json::to_value(&batch).unwrap_or(Value::Null);
                if skipped > 0 {
                    if let Value::Array(a) = &mut data {
                        a.push(json!({
                            "level": "warn",
                            "message": format!("{skipped} log records skipped (too many at once)"),
                            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                            "source": "hearth::monitoring",
                        }));
                    }
                    skipped = 0;
                }
                out.push(message("logs", data));
                out
            }
            m = rx.next() => match m {
                Some(Ok(WsMessage::Text(t))) => {
                    let kind = serde_json::from_str::<Value>(&t)
                        .ok()
                        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string));
                    match kind.as_deref() {
                        Some("ping") => vec![WsMessage::Text(r#"{"type":"pong"}"#.into())],
                        _ => vec![error_message(
                            "this socket only pushes; the one message it takes is {\"type\": \"ping\"}",
                            ErrorCode::BadRequest.as_str(),
                            "",
                        )],
                    }
                }
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            },
        };
        for m in out {
            if tx.send(m).await.is_err() {
                return;
            }
        }
    }
}

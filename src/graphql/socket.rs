//! GraphQL over WebSocket (`/graphql/ws`): graphql-ws (`graphql-transport-ws`) and the legacy
//! subscriptions-transport-ws (`graphql-ws`) protocols.
//!
//! A socket authenticates at `connection_init`, but that is not the end of it: the caller is
//! checked again before every operation (so a logout, a revoked key, a deactivation or a
//! demotion takes effect on the next message), and the socket closes with 4401 (4403 for a
//! disabled account) as soon as its identity ends, even while idle. A socket that never
//! authenticates is closed at the `connection_init` deadline, and one socket runs a bounded
//! number of operations at once.

use super::loaders::insert_loaders;
use super::HearthSchema;
use crate::auth::Caller;
use crate::error::{AppError, ErrorCode};
use crate::http::extract::ws_credential;
use crate::service::auth::{self, ClientInfo, Credential};
use crate::state::AppState;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::{Data, ErrorExtensions, Executor, Request, Response, ServerError};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::Extension;
use futures_util::stream::BoxStream;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Initial read buffer of a WebSocket connection (it grows for larger frames).
pub const WS_BUFFER: usize = 4 * 1024;
/// Bytes of queued frames gathered before a write (every flush writes whatever is queued).
const WS_WRITE_BATCH: usize = 64 * 1024;
/// How often the server pings an open subscription connection.
const PING_EVERY: Duration = Duration::from_secs(20);
/// How long a graphql-transport-ws client may stay silent (it answers our pings with pongs).
const SILENCE_LIMIT: Duration = Duration::from_secs(60);

/// Close code for a socket whose credentials ended (graphql-ws's "Unauthorized").
pub const CLOSE_UNAUTHORIZED: u16 = 4401;
/// Close code for a socket whose account may no longer act (graphql-ws's "Forbidden").
pub const CLOSE_FORBIDDEN: u16 = 4403;
/// Close code for a socket that sent no `connection_init` in time.
pub const CLOSE_INIT_TIMEOUT: u16 = 4408;

/// The WebSocket close code for an identity that ended with `e`.
pub fn close_code(e: &AppError) -> u16 {
    if e.code.status() == axum::http::StatusCode::FORBIDDEN {
        CLOSE_FORBIDDEN
    } else {
        CLOSE_UNAUTHORIZED
    }
}

/// Reads a credential from a `connection_init` payload: `{"Authorization": "Bearer …"}`,
/// `{"token": "…"}`, `{"authToken": "…"}` or `{"X-API-Key": "…"}` (any key case).
fn payload_credential(payload: &serde_json::Value) -> Option<Credential> {
    let obj = payload.as_object()?;
    let find = |name: &str| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
            .map(str::to_string)
    };
    if let Some(v) = find("authorization")
        .or_else(|| find("token"))
        .or_else(|| find("authToken"))
    {
        let t = v.strip_prefix("Bearer ").unwrap_or(&v).trim().to_string();
        return Some(Credential::Bearer(t));
    }
    find("x-api-key").map(Credential::ApiKey)
}

/// What one socket knows of its caller, shared by its executor and its connection task.
struct SocketIdentity {
    /// Set when `connection_init` arrives.
    init_started: AtomicBool,
    /// Set once `connection_init` was answered (authenticated, anonymous or refused).
    inited: watch::Sender<bool>,
    /// The caller as last checked; `None` for an anonymous socket.
    caller: watch::Sender<Option<Caller>>,
    /// Why the socket must close, once it must.
    ended: watch::Sender<Option<AppError>>,
    /// Operations running now (subscriptions included).
    running: AtomicUsize,
    /// Most operations at once.
    max_running: usize,
    /// Where the socket connects from (login rate limits, sessions).
    client: ClientInfo,
}

impl SocketIdentity {
    fn end(&self, e: AppError) {
        self.ended.send_if_modified(|slot| {
            if slot.is_none() {
                *slot = Some(e);
                true
            } else {
                false
            }
        });
    }
}

/// Gives back an operation slot when the operation's stream ends or is dropped.
struct Slot(Arc<SocketIdentity>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The schema behind a socket, checking the caller before each operation it runs.
#[derive(Clone)]
struct SocketExecutor {
    schema: HearthSchema,
    state: AppState,
    ident: Arc<SocketIdentity>,
}

impl SocketExecutor {
    /// Takes an operation slot and puts the freshly checked caller, new loaders and the
    /// client into the request, or says why the operation may not run.
    async fn admit(&self, request: &mut Request) -> Result<Slot, AppError> {
        let ident = &self.ident;
        if ident.running.fetch_add(1, Ordering::SeqCst) >= ident.max_running {
            ident.running.fetch_sub(1, Ordering::SeqCst);
            return Err(AppError::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "at most {} operations may run at once on one socket",
                    ident.max_running
                ),
            ));
        }
        let slot = Slot(ident.clone());
        let (_, fields) = super::transport::inspect(request, &self.state.config.graphql)?;
        let current = ident.caller.borrow().clone();
        let address = crate::limits::Who::address(ident.client.ip.as_deref());
        let principal = crate::http::limit::Principal::of(current.as_ref(), address);
        super::transport::spend_fields(&self.state, &principal, fields).await?;
        if let Some(caller) = current {
            match auth::recheck(&self.state, &caller).await {
                Ok(fresh) => {
                    ident.caller.send_replace(Some(fresh.clone()));
                    request.data.insert(fresh);
                }
                // A database hiccup refuses this operation, not the caller.
                Err(e) if matches!(e.code, ErrorCode::Unavailable | ErrorCode::Internal) => {
                    return Err(e);
                }
                Err(e) => {
                    ident.end(e.clone());
                    return Err(e);
                }
            }
        }
        insert_loaders(&mut request.data, &self.state);
        request.data.insert(ident.client.clone());
        Ok(slot)
    }
}

fn refused(e: &AppError) -> Response {
    let err = ServerError::new(e.message.clone(), None);
    let mut err = err;
    let ext = err.extensions.get_or_insert_with(Default::default);
    ext.set("code", e.code.as_str());
    Response::from_errors(vec![err])
}

impl Executor for SocketExecutor {
    async fn execute(&self, request: Request) -> Response {
        let mut stream = self.execute_stream(request, None);
        stream.next().await.unwrap_or_default()
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let this = self.clone();
        async_stream::stream! {
            let mut request = request;
            let slot = match this.admit(&mut request).await {
                Ok(slot) => slot,
                Err(e) => {
                    yield refused(&e);
                    return;
                }
            };
            let mut inner = this
                .schema
                .execute_stream_with_session_data(request, session_data.unwrap_or_default());
            while let Some(r) = inner.next().await {
                yield r;
            }
            drop(slot);
        }
        .boxed()
    }
}

/// `GET /graphql/ws`. The server pings every 20 s; a graphql-transport-ws client that stops
/// answering for 60 s is dropped.
pub async fn ws(
    State(state): State<AppState>,
    Extension(schema): Extension<HearthSchema>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    protocol: GraphQLProtocol,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    upgrade: WebSocketUpgrade,
) -> HttpResponse {
    // A browser sends cookies on a cross-site WebSocket handshake too (no CORS here), so a
    // cookie only counts when the page's origin is this host. `?token=` serves clients that
    // cannot set headers on a WebSocket.
    let header_cred = ws_credential(&headers, query.as_deref());
    let modern = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim() == "graphql-transport-ws"));
    let limits = &state.config.graphql;
    let init_timeout = Duration::from_secs(limits.connection_init_timeout_secs);
    let ident = Arc::new(SocketIdentity {
        init_started: AtomicBool::new(false),
        inited: watch::channel(false).0,
        caller: watch::channel(None).0,
        ended: watch::channel(None).0,
        running: AtomicUsize::new(0),
        max_running: limits.max_operations_per_socket,
        client: ClientInfo {
            user_agent: headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            ip: Some(crate::http::extract::client_ip(
                &state.config,
                &headers,
                peer,
            )),
            client: "graphql".into(),
        },
    });
    let max_frame = limits.max_socket_message_bytes;
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        // Frames here are small (operations, events); 128 KiB default buffers per socket
        // would dominate the memory of thousands of idle subscriptions.
        .read_buffer_size(WS_BUFFER)
        .write_buffer_size(WS_WRITE_BATCH)
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
        .on_upgrade(move |socket| async move {
            let (mut ws_sink, ws_stream) = socket.split();
            let (out_tx, mut out_rx) = futures_channel::mpsc::channel::<Message>(64);
            let mut close_tx = out_tx.clone();
            // Writer: forwards GraphQL frames and interleaves keep-alive pings.
            let writer = tokio::spawn(async move {
                let ping = if modern {
                    r#"{"type":"ping"}"#
                } else {
                    r#"{"type":"ka"}"#
                };
                let mut tick = tokio::time::interval(PING_EVERY);
                tick.tick().await;
                loop {
                    let msg = tokio::select! {
                        m = out_rx.next() => match m { Some(m) => m, None => break },
                        _ = tick.tick() => Message::Text(ping.into()),
                    };
                    // Frames already queued go out with this one in a single write: under
                    // load, one syscall per token would cost more than the token itself.
                    let mut closing = matches!(msg, Message::Close(_));
                    // A client that stops reading is dropped, not waited for.
                    let write = async {
                        ws_sink.feed(msg).await?;
                        while !closing {
                            match out_rx.try_recv() {
                                Ok(m) => {
                                    closing = matches!(m, Message::Close(_));
                                    ws_sink.feed(m).await?;
                                }
                                _ => break,
                            }
                        }
                        ws_sink.flush().await
                    };
                    match tokio::time::timeout(SILENCE_LIMIT, write).await {
                        Ok(Ok(())) if !closing => {}
                        _ => break,
                    }
                }
                let _ = ws_sink.close().await;
            });
            let executor = SocketExecutor {
                schema,
                state: state.clone(),
                ident: ident.clone(),
            };
            let on_init = {
                let (state, ident) = (state.clone(), ident.clone());
                move |payload: serde_json::Value| async move {
                    ident.init_started.store(true, Ordering::SeqCst);
                    let outcome = match payload_credential(&payload).or(header_cred) {
                        Some(cred) => auth::authenticate(&state, cred).await.map(Some),
                        None => Ok(None),
                    };
                    if let Ok(Some(caller)) = &outcome {
                        ident.caller.send_replace(Some(caller.clone()));
                    }
                    ident.inited.send_replace(true);
                    outcome.map(|_| Data::default()).map_err(|e| {
                        let err = async_graphql::Error::new(e.message.clone());
                        err.extend_with(|_, ext| ext.set("code", e.code.as_str()))
                    })
                }
            };
            let serve = GraphQLWebSocket::new_with_pair(out_tx, ws_stream, executor, protocol)
                .on_connection_init(on_init)
                .keepalive_timeout(modern.then_some(SILENCE_LIMIT))
                .serve();
            // Anonymous sockets live only until the init deadline (long enough to log in).
            let deadline = async {
                tokio::time::sleep(init_timeout).await;
                if !ident.init_started.load(Ordering::SeqCst) {
                    return (CLOSE_INIT_TIMEOUT, "connection_init timeout".to_string());
                }
                // A credential check still running (a slow pool) gets as long again.
                let mut inited = ident.inited.subscribe();
                let answered = matches!(
                    tokio::time::timeout(init_timeout, inited.wait_for(|done| *done)).await,
                    Ok(Ok(_))
                );
                if !answered {
                    return (CLOSE_INIT_TIMEOUT, "connection_init timeout".to_string());
                }
                if ident.caller.borrow().is_none() {
                    return (CLOSE_UNAUTHORIZED, "authentication required".to_string());
                }
                std::future::pending().await
            };
            // Closes the socket once its identity ends, even while it is idle.
            let watch_identity = async {
                let mut caller = ident.caller.subscribe();
                let first = match caller.wait_for(Option::is_some).await {
                    Ok(c) => c.clone(),
                    Err(_) => None,
                };
                let Some(first) = first else {
                    return std::future::pending().await;
                };
                let e = crate::service::streams::identity_ended(&state, &first).await;
                (close_code(&e), e.message)
            };
            let refused = async {
                let mut ended = ident.ended.subscribe();
                let e: Option<AppError> = match ended.wait_for(Option::is_some).await {
                    Ok(e) => e.clone(),
                    Err(_) => None,
                };
                match e {
                    Some(e) => (close_code(&e), e.message),
                    None => std::future::pending().await,
                }
            };
            let close = tokio::select! {
                _ = serve => None,
                c = deadline => Some(c),
                c = watch_identity => Some(c),
                c = refused => Some(c),
            };
            if let Some((code, reason)) = close {
                tracing::debug!(code, %reason, "graphql-ws: closing");
                let frame = CloseFrame {
                    code,
                    reason: reason.chars().take(100).collect::<String>().into(),
                };
                let _ = tokio::time::timeout(
                    Duration::from_secs(5),
                    close_tx.send(Message::Close(Some(frame))),
                )
                .await;
            }
            drop(close_tx);
            // Dropping the GraphQL side closes the channel; the writer flushes and closes
            // (or gives up on a client that does not read).
            let abort = writer.abort_handle();
            if tokio::time::timeout(SILENCE_LIMIT, writer).await.is_err() {
                abort.abort();
            }
        })
        .into_response()
}

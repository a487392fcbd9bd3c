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
use super::metrics::OpenSubscription;
use super::{annotate_error, HearthSchema};
use crate::auth::Caller;
use crate::error::{AppError, ErrorCode};
use crate::http::extract::ws_credential;
use crate::service::auth::{self, ClientInfo, Credential};
use crate::state::AppState;
use async_graphql::http::{WebSocketProtocols, WsMessage, ALL_WEBSOCKET_PROTOCOLS};
use async_graphql::parser::types::OperationType;
use async_graphql::{Data, ErrorExtensions, Executor, Request, Response, ServerError};
use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::Extension;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Initial read buffer of a WebSocket connection (it grows for larger frames).
pub const WS_BUFFER: usize = 4 * 1024;
/// Bytes of ready frames gathered before a write (every flush writes whatever is gathered).
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

/// Gives back an operation slot when the operation's stream ends or is dropped (and counts
/// it among the open subscriptions while it lives, if it is one).
struct Slot(Arc<SocketIdentity>, Option<OpenSubscription>);

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
        let mut slot = Slot(ident.clone(), None);
        let (types, fields) = super::transport::inspect(request, &self.state.config.graphql)?;
        if types.contains(&OperationType::Subscription) {
            slot.1 = Some(OpenSubscription::open());
        }
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
            // Errors of operations on a socket get the same `extensions.code` as over HTTP.
            while let Some(mut r) = inner.next().await {
                r.errors.iter_mut().for_each(annotate_error);
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
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    upgrade: WebSocketUpgrade,
) -> HttpResponse {
    // A browser sends cookies on a cross-site WebSocket handshake too (no CORS here), so a
    // cookie only counts when the page's origin is this host. `?token=` serves clients that
    // cannot set headers on a WebSocket.
    let header_cred = ws_credential(&headers, query.as_deref());
    // The first subprotocol offered that Hearth speaks.
    let Some(protocol) = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .find_map(|p| p.trim().parse::<WebSocketProtocols>().ok())
        })
    else {
        return axum::http::StatusCode::BAD_REQUEST.into_response();
    };
    let modern = protocol == WebSocketProtocols::GraphQLWS;
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
            let input = ws_stream
                .take_while(|m| std::future::ready(m.is_ok()))
                .filter_map(|m| {
                    std::future::ready(match m {
                        Ok(m @ (Message::Text(_) | Message::Binary(_))) => Some(m.into_data()),
                        _ => None,
                    })
                });
            // Boxed to be dropped (ending the operations) before the socket closes.
            let mut graphql = async_graphql::http::WebSocket::new(executor, input, protocol)
                .on_connection_init(on_init)
                .keepalive_timeout(modern.then_some(SILENCE_LIMIT))
                .map(|m| match m {
                    WsMessage::Text(text) => Message::Text(text.into()),
                    WsMessage::Close(code, reason) => Message::Close(Some(CloseFrame {
                        code,
                        reason: reason.into(),
                    })),
                })
                .boxed();
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
            tokio::pin!(deadline, watch_identity, refused);
            let ping = if modern {
                r#"{"type":"ping"}"#
            } else {
                r#"{"type":"ka"}"#
            };
            let mut tick = tokio::time::interval(PING_EVERY);
            tick.tick().await;
            // One task reads, runs and writes: a frame goes from the operation's stream to
            // the socket without a hand-off to another task.
            let close = loop {
                let first = tokio::select! {
                    m = graphql.next() => match m {
                        Some(m) => m,
                        None => break None,
                    },
                    _ = tick.tick() => Message::Text(ping.into()),
                    c = &mut deadline => break Some(c),
                    c = &mut watch_identity => break Some(c),
                    c = &mut refused => break Some(c),
                };
                // Frames already ready go out with this one in a single write: under load,
                // one syscall per token would cost more than the token itself.
                let write = async {
                    let mut last = matches!(first, Message::Close(_));
                    ws_sink.feed(first).await?;
                    while !last {
                        match graphql.next().now_or_never() {
                            Some(Some(m)) => {
                                last = matches!(m, Message::Close(_));
                                ws_sink.feed(m).await?;
                            }
                            Some(None) => last = true,
                            None => break,
                        }
                    }
                    ws_sink.flush().await.map(|()| last)
                };
                // A client that stops reading is dropped, not waited for.
                match tokio::time::timeout(SILENCE_LIMIT, write).await {
                    Ok(Ok(false)) => {}
                    _ => break None,
                }
            };
            if let Some((code, reason)) = close {
                tracing::debug!(code, %reason, "graphql-ws: closing");
                let frame = CloseFrame {
                    code,
                    reason: reason.chars().take(100).collect::<String>().into(),
                };
                let _ = tokio::time::timeout(
                    Duration::from_secs(5),
                    ws_sink.send(Message::Close(Some(frame))),
                )
                .await;
            }
            // Ends the operations, then closes (or gives up on a client that does not read).
            drop(graphql);
            let _ = tokio::time::timeout(SILENCE_LIMIT, ws_sink.close()).await;
        })
        .into_response()
}

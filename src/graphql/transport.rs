//! GraphQL over HTTP and WebSocket, with the limits async-graphql leaves open: JSON-only
//! POST, a batch cap, query-only GET (mutations answer 405), CSRF for cookie-authenticated
//! mutations, and a `connection_init` deadline plus keep-alive on `/graphql/ws`.

use super::loaders::insert_loaders;
use super::{annotate_error, HearthSchema};
use crate::auth::Caller;
use crate::error::{AppError, ErrorCode};
use crate::http::extract::{client_info, credential};
use crate::service::auth::{self, Credential};
use crate::state::AppState;
use async_graphql::http::{GraphiQLSource, ALL_WEBSOCKET_PROTOCOLS};
use async_graphql::parser::types::OperationType;
use async_graphql::{BatchRequest, BatchResponse, Data, ErrorExtensions};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{RawQuery, Request, State};
use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A request-level failure in GraphQL's response shape, with the table's status.
fn gql_error(err: AppError) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": err.message, "extensions": { "code": err.code.as_str() } }]
    });
    let mut res = (err.code.status(), Json(body)).into_response();
    res.extensions_mut().insert(err);
    res
}

/// The operation types a request declares. The parsed document stays in the request and
/// execution reuses it, so each query is parsed once (an unparsable document declares none;
/// execution reports the parse error).
fn operation_types(req: &mut async_graphql::Request) -> Vec<OperationType> {
    match req.parsed_query() {
        Ok(doc) => doc.operations.iter().map(|(_, op)| op.node.ty).collect(),
        Err(_) => Vec::new(),
    }
}

async fn resolve_caller(
    state: &AppState,
    cred: Option<Credential>,
) -> Result<Option<Caller>, AppError> {
    match cred {
        None => Ok(None),
        Some(c) => auth::authenticate(state, c).await.map(Some),
    }
}

async fn execute(
    schema: &HearthSchema,
    state: &AppState,
    batch: BatchRequest,
    caller: Option<Caller>,
    client: crate::service::auth::ClientInfo,
) -> Response {
    Json(run(schema, state, batch, caller, client).await).into_response()
}

async fn run(
    schema: &HearthSchema,
    state: &AppState,
    mut batch: BatchRequest,
    caller: Option<Caller>,
    client: crate::service::auth::ClientInfo,
) -> BatchResponse {
    for req in batch.iter_mut() {
        insert_loaders(&mut req.data, state);
        req.data.insert(client.clone());
        if let Some(c) = &caller {
            req.data.insert(c.clone());
        }
    }
    let mut resp = schema.execute_batch(batch).await;
    match &mut resp {
        BatchResponse::Single(r) => r.errors.iter_mut().for_each(annotate_error),
        BatchResponse::Batch(rs) => rs
            .iter_mut()
            .flat_map(|r| r.errors.iter_mut())
            .for_each(annotate_error),
    }
    resp
}

/// What a cached answer is keyed by: who asks (user, session or key, rights) and what.
fn cache_identity(caller: &Caller) -> String {
    format!(
        "{}:{}:{:?}",
        caller.user_id(),
        caller.session_id.as_deref().unwrap_or("key"),
        caller.permissions
    )
}

fn cache_key(caller: &Caller, body: &[u8]) -> (String, u64) {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut hasher);
    (cache_identity(caller), hasher.finish())
}

fn cached_answer(
    state: &AppState,
    caller: &Caller,
    body: &bytes::Bytes,
    generation: u64,
) -> Option<Response> {
    let hit = state
        .response_cache
        .get(&cache_key(caller, body), generation)?;
    (hit.request == *body).then(|| {
        (
            [(header::CONTENT_TYPE, "application/json")],
            hit.response.clone(),
        )
            .into_response()
    })
}

/// Runs a single authenticated query and keeps an error-free answer for the same caller and
/// body until anything is written (any write moves the data generation on) or 5 s pass.
async fn execute_cached(
    schema: &HearthSchema,
    state: &AppState,
    body: bytes::Bytes,
    batch: BatchRequest,
    caller: Caller,
    client: crate::service::auth::ClientInfo,
) -> Response {
    let Some(generation) = state.db.generation() else {
        return execute(schema, state, batch, Some(caller), client).await;
    };
    // post() already looked for a cached answer before parsing the body.
    let key = cache_key(&caller, &body);
    let resp = run(schema, state, batch, Some(caller), client).await;
    let ok = match &resp {
        BatchResponse::Single(r) => r.errors.is_empty(),
        BatchResponse::Batch(_) => false,
    };
    let Ok(bytes) = serde_json::to_vec(&resp) else {
        return Json(resp).into_response();
    };
    let bytes = bytes::Bytes::from(bytes);
    if ok {
        let entry = crate::state::CachedResponse {
            request: body,
            response: bytes.clone(),
        };
        state
            .response_cache
            .put(key, generation, std::sync::Arc::new(entry));
    }
    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// `POST /graphql`: `application/json` only (a simple content type would let another site
/// post cross-origin without a preflight).
pub async fn post(
    State(state): State<AppState>,
    Extension(schema): Extension<HearthSchema>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !is_json {
        return gql_error(AppError::new(
            ErrorCode::UnsupportedMediaType,
            "POST /graphql needs Content-Type: application/json",
        ));
    }
    let bytes = match axum::body::to_bytes(body, state.config.body_limit_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return gql_error(AppError::new(
                ErrorCode::PayloadTooLarge,
                "request body too large",
            ))
        }
    };
    // Fast path: an answer cached for this caller and this exact body. Only single queries
    // are ever cached, so a hit means the body changes nothing (no CSRF needed for cookies).
    // A caller authenticated here by header is reused below; a cookie caller is checked
    // again once the body is known, because mutations need the CSRF token.
    let mut header_caller = None;
    if let Some(generation) = state.db.generation() {
        if let Some(cred) = credential(&parts.headers, false) {
            let is_cookie = matches!(cred, Credential::Cookie { .. });
            if let Ok(caller) = auth::authenticate(&state, cred).await {
                if let Some(hit) = cached_answer(&state, &caller, &bytes, generation) {
                    return hit;
                }
                if !is_cookie {
                    header_caller = Some(caller);
                }
            }
        }
    }
    let mut batch: BatchRequest = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) if e.is_syntax() || e.is_eof() => {
            return gql_error(AppError::new(
                ErrorCode::InvalidJson,
                "request body is not valid JSON",
            ))
        }
        Err(e) => {
            return gql_error(AppError::new(
                ErrorCode::BadRequest,
                format!("not a GraphQL request: {e}"),
            ))
        }
    };
    let count = batch.iter().count();
    if count > state.config.graphql.max_batch {
        return gql_error(AppError::new(
            ErrorCode::QueryTooComplex,
            format!(
                "at most {} operations per batch",
                state.config.graphql.max_batch
            ),
        ));
    }
    let types: Vec<OperationType> = batch.iter_mut().flat_map(operation_types).collect();
    let has_mutation = types.contains(&OperationType::Mutation);
    let query_only = !types.is_empty() && types.iter().all(|t| *t == OperationType::Query);
    let caller = match header_caller {
        Some(c) => Some(c),
        None => match resolve_caller(&state, credential(&parts.headers, has_mutation)).await {
            Ok(c) => c,
            Err(e) => return gql_error(e),
        },
    };
    let client = client_info(&parts, "graphql");
    match caller {
        Some(caller) if query_only && matches!(batch, BatchRequest::Single(_)) => {
            execute_cached(&schema, &state, bytes, batch, caller, client).await
        }
        caller => execute(&schema, &state, batch, caller, client).await,
    }
}

/// `GET /graphql`: GraphiQL for browsers; with `?query=` a query-only execution.
pub async fn get(
    State(state): State<AppState>,
    Extension(schema): Extension<HearthSchema>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let Some(qs) = parts.uri.query().filter(|q| q.contains("query=")) else {
        return Html(
            GraphiQLSource::build()
                .endpoint("/graphql")
                .subscription_endpoint("/graphql/ws")
                .finish(),
        )
        .into_response();
    };
    let mut request = match async_graphql::http::parse_query_string(qs) {
        Ok(r) => r,
        Err(e) => {
            return gql_error(AppError::new(
                ErrorCode::BadRequest,
                format!("bad query string: {e}"),
            ))
        }
    };
    if operation_types(&mut request)
        .iter()
        .any(|t| *t != OperationType::Query)
    {
        let mut res = gql_error(AppError::new(
            ErrorCode::MethodNotAllowed,
            "mutations and subscriptions need POST",
        ));
        res.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return res;
    }
    let caller = match resolve_caller(&state, credential(&parts.headers, false)).await {
        Ok(c) => c,
        Err(e) => return gql_error(e),
    };
    execute(
        &schema,
        &state,
        BatchRequest::Single(request),
        caller,
        client_info(&parts, "graphql"),
    )
    .await
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

/// Initial read buffer of a WebSocket connection (it grows for larger frames).
pub const WS_BUFFER: usize = 4 * 1024;
/// Bytes of queued frames gathered before a write (every flush writes whatever is queued).
const WS_WRITE_BATCH: usize = 64 * 1024;

/// How often the server pings an open subscription connection.
const PING_EVERY: Duration = Duration::from_secs(20);
/// How long a graphql-transport-ws client may stay silent (it answers our pings with pongs).
const SILENCE_LIMIT: Duration = Duration::from_secs(60);

/// `GET /graphql/ws`: graphql-ws (`graphql-transport-ws`) and the legacy
/// subscriptions-transport-ws (`graphql-ws`) protocols. The server pings every 20 s; a
/// graphql-transport-ws client that stops answering for 60 s is dropped.
pub async fn ws(
    State(state): State<AppState>,
    Extension(schema): Extension<HearthSchema>,
    protocol: GraphQLProtocol,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    upgrade: WebSocketUpgrade,
) -> Response {
    // A browser sends cookies on a cross-site WebSocket handshake too (no CORS here), so a
    // cookie only counts when the page's origin is this host. `?token=` serves clients that
    // cannot set headers on a WebSocket.
    let header_cred = crate::http::extract::ws_credential(&headers, query.as_deref());
    let modern = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim() == "graphql-transport-ws"));
    let init_timeout = Duration::from_secs(state.config.graphql.connection_init_timeout_secs);
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        // Frames here are small (operations, events); 128 KiB default buffers per socket
        // would dominate the memory of thousands of idle subscriptions.
        .read_buffer_size(WS_BUFFER)
        .write_buffer_size(WS_WRITE_BATCH)
        .max_message_size(state.config.body_limit_bytes)
        .on_upgrade(move |socket| async move {
            let (mut ws_sink, ws_stream) = socket.split();
            let (out_tx, mut out_rx) = futures_channel::mpsc::channel::<Message>(64);
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
                    if ws_sink.feed(msg).await.is_err() {
                        break;
                    }
                    while !closing {
                        match out_rx.try_recv() {
                            Ok(m) => {
                                closing = matches!(m, Message::Close(_));
                                if ws_sink.feed(m).await.is_err() {
                                    break;
                                }
                            }
                            _ => break,
                        }
                    }
                    if ws_sink.flush().await.is_err() || closing {
                        break;
                    }
                }
                let _ = ws_sink.close().await;
            });
            let inited = Arc::new(AtomicBool::new(false));
            let flag = inited.clone();
            let st = state.clone();
            let serve = GraphQLWebSocket::new_with_pair(out_tx, ws_stream, schema, protocol)
                .on_connection_init(move |payload| async move {
                    flag.store(true, Ordering::SeqCst);
                    let mut data = Data::default();
                    insert_loaders(&mut data, &st);
                    if let Some(cred) = payload_credential(&payload).or(header_cred) {
                        let caller = auth::authenticate(&st, cred).await.map_err(|e| {
                            let err = async_graphql::Error::new(e.message.clone());
                            err.extend_with(|_, ext| ext.set("code", e.code.as_str()))
                        })?;
                        data.insert(caller);
                    }
                    Ok(data)
                })
                .keepalive_timeout(modern.then_some(SILENCE_LIMIT))
                .serve();
            let deadline = async {
                tokio::time::sleep(init_timeout).await;
                if inited.load(Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = serve => {}
                _ = deadline => tracing::debug!("graphql-ws: no connection_init in time, closing"),
            }
            // Dropping the GraphQL side closes the channel; the writer flushes and closes.
            let _ = writer.await;
        })
        .into_response()
}

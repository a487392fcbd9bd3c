//! GraphQL over HTTP, with the limits async-graphql leaves open: JSON-only POST, a batch cap,
//! query-only GET (mutations answer 405) and CSRF for cookie-authenticated mutations. The
//! WebSocket transport is in [`super::socket`].

use super::guard::{root_fields, RootFields};
use super::loaders::insert_loaders;
use super::{annotate_error, HearthSchema, Volatile};
use crate::auth::Caller;
use crate::error::{AppError, ErrorCode};
use crate::http::extract::{client_info, credential};
use crate::http::limit::{address_of, set_headers, spend, Principal};
use crate::limits::{Decision, Rule};
use crate::service::auth::{self, Credential};
use crate::state::AppState;
use async_graphql::parser::types::OperationType;
use async_graphql::{BatchRequest, BatchResponse};
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

/// A request-level failure in GraphQL's response shape, with the table's status.
pub(super) fn gql_error(err: AppError) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": err.message, "extensions": { "code": err.code.as_str() } }]
    });
    let mut res = (err.code.status(), Json(body)).into_response();
    res.extensions_mut().insert(err);
    res
}

/// The operation types a request declares and the root fields it runs, after the shape caps
/// of [`super::guard`]. The parsed document stays in the request and execution reuses it, so
/// each query is parsed once (an unparsable document declares none; execution reports the
/// parse error).
pub(super) fn inspect(
    req: &mut async_graphql::Request,
    limits: &crate::config::GraphqlConfig,
) -> Result<(Vec<OperationType>, RootFields), AppError> {
    let operation = req.operation_name.clone();
    match req.parsed_query() {
        Ok(doc) => {
            super::guard::check(doc, limits)?;
            super::metrics::count_operations(doc);
            let types = doc.operations.iter().map(|(_, op)| op.node.ty).collect();
            Ok((types, root_fields(doc, operation.as_deref())))
        }
        Err(_) => Ok((Vec::new(), RootFields::default())),
    }
}

/// Spends a request's budgets: its `login` fields the login budget, the others the GraphQL
/// budget (at least one), all of them an API key's own. A refusal is the 429 to answer.
pub(super) async fn spend_fields(
    state: &AppState,
    principal: &Principal,
    fields: RootFields,
) -> Result<Option<Decision>, AppError> {
    let key = principal.key;
    let mut charges = Vec::with_capacity(2);
    if fields.login > 0 {
        charges.push((Rule::Login, key, fields.login));
    }
    if fields.other > 0 || fields.login == 0 {
        charges.push((Rule::Graphql, key, fields.other.max(1)));
    }
    match spend(state, &charges, principal).await {
        Some(d) if !d.allowed() => Err(d.error("GraphQL fields")),
        d => Ok(d),
    }
}

/// A refusal by a budget: GraphQL's error shape, 429 with `Retry-After` and the budget's
/// headers.
fn limited(err: AppError) -> Response {
    let retry = err
        .details
        .as_ref()
        .and_then(|d| d.get("retry_after"))
        .and_then(|v| v.as_u64());
    let budget = err.details.as_ref().and_then(|d| {
        Some(Decision {
            limit: d.get("limit")?.as_u64()? as u32,
            remaining: 0,
            reset_at: d.get("reset")?.as_u64()?,
            retry_after: retry,
        })
    });
    let mut res = gql_error(err);
    if let Some(secs) = retry {
        res.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
    }
    if let Some(d) = budget {
        set_headers(res.headers_mut(), &d);
    }
    res
}

/// The peer address of a request.
fn peer(parts: &axum::http::request::Parts) -> Option<std::net::SocketAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0)
}

/// Spends the budgets of a request by `caller` (or its client address) costing `fields`;
/// `Ok` carries the budget to report in the response headers.
async fn admit(
    state: &AppState,
    parts: &axum::http::request::Parts,
    caller: Option<&Caller>,
    fields: RootFields,
) -> Result<Option<Decision>, Response> {
    let address = address_of(state, &parts.headers, peer(parts));
    let principal = Principal::of(caller, address);
    spend_fields(state, &principal, fields)
        .await
        .map_err(limited)
}

/// Adds the budget's headers to an answer.
fn with_budget(mut res: Response, budget: Option<Decision>) -> Response {
    if let Some(d) = budget {
        set_headers(res.headers_mut(), &d);
    }
    res
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
) -> Option<(Response, u32)> {
    let hit = state
        .response_cache
        .get(&cache_key(caller, body), generation)?;
    (hit.request == *body).then(|| {
        let res = (
            [(header::CONTENT_TYPE, "application/json")],
            hit.response.clone(),
        )
            .into_response();
        (res, hit.fields)
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
    fields: u32,
) -> Response {
    let Some(generation) = state.db.generation() else {
        return execute(schema, state, batch, Some(caller), client).await;
    };
    // post() already looked for a cached answer before parsing the body.
    let key = cache_key(&caller, &body);
    let volatile = Volatile::default();
    let mut batch = batch;
    for req in batch.iter_mut() {
        req.data.insert(volatile.clone());
    }
    let resp = run(schema, state, batch, Some(caller), client).await;
    let ok = match &resp {
        BatchResponse::Single(r) => r.errors.is_empty() && !volatile.is_marked(),
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
            fields,
        };
        state
            .response_cache
            .put(key, generation, std::sync::Arc::new(entry));
    }
    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// `POST /graphql`: `application/json`, or `multipart/form-data` for mutations carrying
/// files (the GraphQL multipart request spec). Any other content type is refused: a simple
/// one would let another site post cross-origin without a preflight; multipart is one, so
/// it carries mutations only, and a cookie caller's mutation needs the CSRF header anyway.
pub async fn post(
    State(state): State<AppState>,
    Extension(schema): Extension<HearthSchema>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_start().to_ascii_lowercase())
        .unwrap_or_default();
    if content_type.starts_with("multipart/form-data") {
        return post_multipart(state, schema, parts, body).await;
    }
    if !content_type.starts_with("application/json") {
        return gql_error(AppError::new(
            ErrorCode::UnsupportedMediaType,
            "POST /graphql needs Content-Type: application/json (or multipart/form-data to upload files)",
        ));
    }
    // The route admits bodies as large as an upload; a JSON body is held to the JSON limit,
    // refused at once when it declares more.
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let too_large = || {
        gql_error(AppError::new(
            ErrorCode::PayloadTooLarge,
            "request body too large",
        ))
    };
    if declared.is_some_and(|n| n > state.config.body_limit_bytes) {
        // Answered as the body limit of every other route answers it.
        return AppError::new(ErrorCode::PayloadTooLarge, "request body too large").into_response();
    }
    let bytes = match axum::body::to_bytes(body, state.config.body_limit_bytes).await {
        Ok(b) => b,
        Err(_) => return too_large(),
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
                if let Some((hit, fields)) = cached_answer(&state, &caller, &bytes, generation) {
                    let fields = RootFields {
                        login: 0,
                        other: fields,
                    };
                    return match admit(&state, &parts, Some(&caller), fields).await {
                        Ok(budget) => with_budget(hit, budget),
                        Err(refused) => refused,
                    };
                }
                if !is_cookie {
                    header_caller = Some(caller);
                }
            }
        }
    }
    let batch: BatchRequest = match serde_json::from_slice(&bytes) {
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
    dispatch(
        &state,
        &schema,
        &parts,
        batch,
        header_caller,
        Some(bytes),
        false,
    )
    .await
}

/// A multipart request: operations, map and files, read with the upload size as the limit
/// per file (files go to temporary files, not memory).
async fn post_multipart(
    state: AppState,
    schema: HearthSchema,
    parts: axum::http::request::Parts,
    body: axum::body::Body,
) -> Response {
    use futures_util::TryStreamExt;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let max_file = state.config.max_upload_bytes() as usize;
    let opts = async_graphql::http::MultipartOptions::default()
        .max_file_size(max_file)
        .max_num_files(MAX_UPLOAD_FILES);
    let reader = body
        .into_data_stream()
        .map_err(std::io::Error::other)
        .into_async_read();
    let batch = match async_graphql::http::receive_batch_body(content_type, reader, opts).await {
        Ok(b) => b,
        Err(e) => return gql_error(multipart_error(e, max_file)),
    };
    dispatch(&state, &schema, &parts, batch, None, None, true).await
}

/// Files one multipart request may carry.
const MAX_UPLOAD_FILES: usize = 16;

fn multipart_error(e: async_graphql::ParseRequestError, max_file: usize) -> AppError {
    use async_graphql::ParseRequestError as P;
    let too_large = match &e {
        P::PayloadTooLarge => true,
        P::InvalidMultipart(m) => matches!(
            m,
            multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. }
        ),
        _ => false,
    };
    if too_large {
        AppError::new(
            ErrorCode::PayloadTooLarge,
            format!("a file is larger than {max_file} bytes"),
        )
        .with_details(serde_json::json!({ "field": "file" }))
    } else {
        AppError::new(
            ErrorCode::BadRequest,
            format!("not a GraphQL multipart request: {e}"),
        )
    }
}

/// Checks a parsed batch (size, shape, operation types), finds its caller and runs it.
async fn dispatch(
    state: &AppState,
    schema: &HearthSchema,
    parts: &axum::http::request::Parts,
    mut batch: BatchRequest,
    header_caller: Option<Caller>,
    body: Option<bytes::Bytes>,
    mutations_only: bool,
) -> Response {
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
    let mut types: Vec<OperationType> = Vec::new();
    let mut fields = RootFields::default();
    for req in batch.iter_mut() {
        match inspect(req, &state.config.graphql) {
            Ok((t, f)) => {
                types.extend(t);
                fields.add(f);
            }
            Err(e) => return gql_error(e),
        }
    }
    if mutations_only && types.iter().any(|t| *t != OperationType::Mutation) {
        return gql_error(AppError::new(
            ErrorCode::BadRequest,
            "a multipart request carries mutations only",
        ));
    }
    let has_mutation = types.contains(&OperationType::Mutation);
    let query_only = !types.is_empty() && types.iter().all(|t| *t == OperationType::Query);
    let caller = match header_caller {
        Some(c) => Some(c),
        None => match resolve_caller(state, credential(&parts.headers, has_mutation)).await {
            Ok(c) => c,
            Err(e) => return gql_error(e),
        },
    };
    let budget = match admit(state, parts, caller.as_ref(), fields).await {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    let client = client_info(&state.config, parts, "graphql");
    let res = match (caller, body) {
        (Some(caller), Some(body)) if query_only && matches!(batch, BatchRequest::Single(_)) => {
            execute_cached(schema, state, body, batch, caller, client, fields.total()).await
        }
        (caller, _) => execute(schema, state, batch, caller, client).await,
    };
    with_budget(res, budget)
}

/// `GET /graphql`: GraphiQL for browsers; with `?query=` a query-only execution.
pub async fn get(
    State(state): State<AppState>,
    Extension(schema): Extension<HearthSchema>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let Some(qs) = parts.uri.query().filter(|q| q.contains("query=")) else {
        if state.config.graphql.playground {
            return crate::http::web::graphiql();
        }
        return gql_error(AppError::new(
            ErrorCode::NotFound,
            "GraphiQL is turned off on this server (graphql.playground)",
        ));
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
    let (types, fields) = match inspect(&mut request, &state.config.graphql) {
        Ok(t) => t,
        Err(e) => return gql_error(e),
    };
    if types.iter().any(|t| *t != OperationType::Query) {
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
    let budget = match admit(&state, &parts, caller.as_ref(), fields).await {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    let res = execute(
        &schema,
        &state,
        BatchRequest::Single(request),
        caller,
        client_info(&state.config, &parts, "graphql"),
    )
    .await;
    with_budget(res, budget)
}

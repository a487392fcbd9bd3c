//! Rendering errors on the wire. Handlers return [`AppError`]; its response carries the
//! error in an extension so the API a route belongs to can reshape the body (see
//! `rest::nexus`), and framework rejections without a body get one here.

use crate::error::{AppError, ErrorCode};
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Header carrying the per-request id (echoed in seed 002 error bodies).
pub const REQUEST_ID: &str = "x-request-id";

/// The default error body: the union of seed 000 (`detail`, `code`, `timestamp`) and seed
/// 001 (`detail`, `status: "error"`), so clients of either read it unchanged, with the
/// request's id (also in the `x-request-id` header) to quote in a report.
pub fn default_body(err: &AppError) -> serde_json::Value {
    let mut body = json!({
        "detail": err.message,
        "code": err.code.as_str(),
        "status": "error",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    if let Some(d) = &err.details {
        body["details"] = d.clone();
    }
    if let Some(id) = current_request_id() {
        body["request_id"] = json!(id);
    }
    body
}

tokio::task_local! {
    /// The id of the request this task answers (set by the request layers, [`scope`]).
    static CURRENT_REQUEST: String;
}

/// The id of the request being answered, inside a request's task.
pub fn current_request_id() -> Option<String> {
    CURRENT_REQUEST.try_with(Clone::clone).ok()
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut res = (self.code.status(), Json(default_body(&self))).into_response();
        let retry = self
            .details
            .as_ref()
            .and_then(|d| d.get("retry_after"))
            .and_then(|v| v.as_u64());
        if let Some(secs) = retry {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res.extensions_mut().insert(self);
        res
    }
}

/// `res` with `body` as its JSON body, keeping its status, headers (`Retry-After`, the rate
/// limit's) and extensions: how each API re-renders the table's errors in its own shape.
pub fn with_body(res: Response, body: &serde_json::Value) -> Response {
    let (mut parts, _) = res.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// The request's id, in request extensions for handlers and error renderers.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Names a request: its `X-Request-ID` if the client sent a sane one, else a new id; kept in
/// the request's extensions and its tracing span. The start of what the request layers
/// (`http::observe`) do for every request.
pub fn begin(req: &mut Request) -> String {
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 64 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .map(str::to_string)
        .unwrap_or_else(|| format!("req-{}", uuid::Uuid::new_v4()));
    req.extensions_mut().insert(RequestId(request_id.clone()));
    tracing::Span::current().record("request_id", request_id.as_str());
    request_id
}

/// Runs `f` (a service's synchronous part) as the request `request_id`.
pub fn scoped<R>(request_id: String, f: impl FnOnce() -> R) -> R {
    CURRENT_REQUEST.sync_scope(request_id, f)
}

/// `fut` (a service's answer) polled as the request `request_id`.
pub fn scope<F: std::future::Future>(
    request_id: String,
    fut: F,
) -> tokio::task::futures::TaskLocalFuture<String, F> {
    CURRENT_REQUEST.scope(request_id, fut)
}

/// Gives framework-made error responses (unmatched route, wrong method, body over the
/// limit) a table error body, and stamps every response with its request id. The end of
/// what the request layers do for every request.
pub fn finish(mut res: Response, request_id: &str) -> Response {
    let status = res.status();
    if (status.is_client_error() || status.is_server_error())
        && res.extensions().get::<AppError>().is_none()
    {
        let code = match status {
            StatusCode::NOT_FOUND => Some(ErrorCode::NotFound),
            StatusCode::METHOD_NOT_ALLOWED => Some(ErrorCode::MethodNotAllowed),
            StatusCode::PAYLOAD_TOO_LARGE => Some(ErrorCode::PayloadTooLarge),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Some(ErrorCode::UnsupportedMediaType),
            StatusCode::BAD_REQUEST => Some(ErrorCode::BadRequest),
            StatusCode::UNPROCESSABLE_ENTITY => Some(ErrorCode::ValidationError),
            StatusCode::INTERNAL_SERVER_ERROR => Some(ErrorCode::Internal),
            _ => None,
        };
        let is_json = res
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if let (Some(code), false) = (code, is_json) {
            let message = match code {
                ErrorCode::NotFound => "no such route",
                ErrorCode::MethodNotAllowed => "method not allowed on this route",
                ErrorCode::PayloadTooLarge => "request body too large",
                ErrorCode::UnsupportedMediaType => "unsupported content type",
                _ => "request failed",
            };
            let allow = res.headers().get(header::ALLOW).cloned();
            // Outside the request's task-local scope: the id is added here.
            let err = AppError::new(code, message);
            let mut body = default_body(&err);
            body["request_id"] = json!(request_id);
            res = (err.code.status(), Json(body)).into_response();
            res.extensions_mut().insert(err);
            if let Some(a) = allow {
                res.headers_mut().insert(header::ALLOW, a);
            }
        }
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    res
}

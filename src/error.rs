//! The one error table. Every failure in Hearth is an [`AppError`] carrying an [`ErrorCode`];
//! the code decides the HTTP status, the GraphQL `extensions.code` and the REST error bodies
//! (see `rest::errors` for the per-API shapes). Internal details are logged, never returned.

use axum::http::StatusCode;
use serde_json::Value;

/// Stable, snake_case error codes. Clients match on these; never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is malformed in a way no more specific code covers.
    BadRequest,
    /// The body is not valid JSON.
    InvalidJson,
    /// The body parsed but a field is missing, of the wrong type or out of range.
    ValidationError,
    /// No credentials were presented.
    Unauthenticated,
    /// Login with a wrong identifier or password.
    InvalidCredentials,
    /// A token that is malformed, tampered with, of the wrong kind or signed badly.
    InvalidToken,
    /// A token whose `exp` has passed.
    TokenExpired,
    /// A refresh token that was already rotated: its whole session family is now revoked.
    RefreshTokenReused,
    /// The session behind the credentials was logged out or terminated.
    SessionRevoked,
    /// The API key was revoked or has expired.
    ApiKeyRevoked,
    /// The account is deactivated.
    AccountDisabled,
    /// Authenticated, but the role does not allow this.
    Forbidden,
    /// The API key lacks the permission (`read`/`write`/`admin`) this call needs.
    InsufficientPermissions,
    /// Cookie-authenticated state change without a valid `X-CSRF-Token`.
    CsrfInvalid,
    /// A per-user limit (agents per user, …) is reached.
    QuotaExceeded,
    /// A token quota (per user or API key, per day or month) is spent until its reset: the
    /// same wire code as [`ErrorCode::QuotaExceeded`], answered 429 with `Retry-After`.
    TokenQuotaExceeded,
    /// Missing object, or one the caller may not see (both look the same on purpose).
    NotFound,
    /// Unique constraint: email, username, name already taken.
    Conflict,
    /// The body or a field is larger than allowed.
    PayloadTooLarge,
    /// The HTTP method is not allowed here (e.g. a GraphQL mutation over GET).
    MethodNotAllowed,
    /// The content type is not accepted on this route.
    UnsupportedMediaType,
    /// A GraphQL query over the depth/complexity/batch limits.
    QueryTooComplex,
    /// Too many requests in the window.
    RateLimited,
    /// A model backend is down or refuses connections.
    LlmUnavailable,
    /// A model is at its concurrency limit and its wait queue is full.
    ModelBusy,
    /// A chat already has a turn running.
    TurnInProgress,
    /// A dependency (database, …) is unavailable.
    Unavailable,
    /// A plugin must be running to be called.
    PluginNotRunning,
    /// The plugin returned an error of its own.
    PluginError,
    /// A plugin call ran past its time limit.
    PluginTimeout,
    /// A plugin call trapped or ran out of memory or fuel.
    PluginCrashed,
    /// A plugin's `message_before_send` hook refused the message.
    MessageRefused,
    /// A documented door whose provider this build does not have (seed 002's voice, video,
    /// billing).
    NotImplemented,
    /// A bug or an I/O failure; details are in the log only.
    Internal,
}

impl ErrorCode {
    /// The stable wire name.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            BadRequest => "bad_request",
            InvalidJson => "invalid_json",
            ValidationError => "validation_error",
            Unauthenticated => "unauthenticated",
            InvalidCredentials => "invalid_credentials",
            InvalidToken => "invalid_token",
            TokenExpired => "token_expired",
            RefreshTokenReused => "refresh_token_reused",
            SessionRevoked => "session_revoked",
            ApiKeyRevoked => "api_key_revoked",
            AccountDisabled => "account_disabled",
            Forbidden => "forbidden",
            InsufficientPermissions => "insufficient_permissions",
            CsrfInvalid => "csrf_invalid",
            QuotaExceeded | TokenQuotaExceeded => "quota_exceeded",
            NotFound => "not_found",
            Conflict => "conflict",
            PayloadTooLarge => "payload_too_large",
            MethodNotAllowed => "method_not_allowed",
            UnsupportedMediaType => "unsupported_media_type",
            QueryTooComplex => "query_too_complex",
            RateLimited => "rate_limited",
            LlmUnavailable => "llm_unavailable",
            ModelBusy => "model_busy",
            TurnInProgress => "turn_in_progress",
            Unavailable => "unavailable",
            PluginNotRunning => "plugin_not_running",
            PluginError => "plugin_error",
            PluginTimeout => "plugin_timeout",
            PluginCrashed => "plugin_crashed",
            MessageRefused => "message_refused",
            NotImplemented => "not_implemented",
            Internal => "internal_error",
        }
    }

    /// The HTTP status every REST dialect uses for this code.
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            BadRequest | InvalidJson | QueryTooComplex => StatusCode::BAD_REQUEST,
            ValidationError => StatusCode::UNPROCESSABLE_ENTITY,
            Unauthenticated | InvalidCredentials | InvalidToken | TokenExpired
            | RefreshTokenReused | SessionRevoked | ApiKeyRevoked => StatusCode::UNAUTHORIZED,
            AccountDisabled | Forbidden | InsufficientPermissions | CsrfInvalid | QuotaExceeded => {
                StatusCode::FORBIDDEN
            }
            NotFound => StatusCode::NOT_FOUND,
            Conflict | TurnInProgress | PluginNotRunning => StatusCode::CONFLICT,
            PluginError | MessageRefused => StatusCode::UNPROCESSABLE_ENTITY,
            PluginCrashed => StatusCode::BAD_GATEWAY,
            PluginTimeout => StatusCode::GATEWAY_TIMEOUT,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RateLimited | TokenQuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
            LlmUnavailable | ModelBusy | Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            NotImplemented => StatusCode::NOT_IMPLEMENTED,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A failure with a stable code, a human message and optional structured details.
#[derive(Debug, Clone)]
pub struct AppError {
    /// Decides status and wire code.
    pub code: ErrorCode,
    /// Safe to show to the caller.
    pub message: String,
    /// Field-level details (`{"field": "email"}`), shown where the dialect has room.
    pub details: Option<Value>,
}

/// Result alias used across services and transports.
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// Builds an error with a code and a caller-safe message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
        }
    }
    /// Attaches structured details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
    /// Missing or hidden object.
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }
    /// Invalid field value, naming the field.
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationError, message)
            .with_details(serde_json::json!({ "field": field }))
    }
    /// No credentials.
    pub fn unauthenticated() -> Self {
        Self::new(ErrorCode::Unauthenticated, "authentication required")
    }
    /// Wrong login; the same answer whether the name or the password was wrong.
    pub fn invalid_credentials() -> Self {
        Self::new(
            ErrorCode::InvalidCredentials,
            "invalid username or password",
        )
    }
    /// The account is deactivated.
    pub fn account_disabled() -> Self {
        Self::new(ErrorCode::AccountDisabled, "this account is disabled")
    }
    /// Role or ownership refuses the action.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }
    /// Logs the real cause and returns a generic internal error.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(ErrorCode::Internal, "internal server error")
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AppError {}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::NotFound => AppError::not_found("object"),
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                tracing::debug!(message = info.message(), "unique violation");
                match unique_field(info.message(), info.details()) {
                    Some(field) => {
                        AppError::new(ErrorCode::Conflict, format!("{field} already taken"))
                            .with_details(serde_json::json!({ "field": field }))
                    }
                    None => AppError::new(ErrorCode::Conflict, "already exists"),
                }
            }
            other => AppError::internal(other),
        }
    }
}

/// The field a unique violation is about: the last column the constraint names, from
/// SQLite's message (`UNIQUE constraint failed: users.email`) or PostgreSQL's detail
/// (`Key (owner_id, slug)=(1, x) already exists.`).
fn unique_field(message: &str, details: Option<&str>) -> Option<String> {
    let columns = match message.strip_prefix("UNIQUE constraint failed: ") {
        Some(cols) => cols.to_string(),
        None => {
            let d = details?;
            let start = d.find("Key (")? + 5;
            let end = start + d[start..].find(")=")?;
            d[start..end].to_string()
        }
    };
    let last = columns.rsplit(',').next()?.trim();
    let field = last.rsplit('.').next()?.trim();
    (!field.is_empty()).then(|| field.to_string())
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for AppError {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        use diesel_async::pooled_connection::deadpool::PoolError;
        tracing::error!(error = %e, "database pool");
        let message = match e {
            PoolError::Timeout(_) => "the database is busy; retry shortly",
            _ => "database unavailable",
        };
        AppError::new(ErrorCode::Unavailable, message)
            .with_details(serde_json::json!({ "retry_after": 1 }))
    }
}

impl From<async_graphql::Error> for AppError {
    fn from(e: async_graphql::Error) -> Self {
        AppError::internal(e.message)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn unique_violations_name_their_field() {
        assert_eq!(
            super::unique_field("UNIQUE constraint failed: users.email", None).as_deref(),
            Some("email")
        );
        assert_eq!(
            super::unique_field(
                "UNIQUE constraint failed: agents.owner_id, agents.slug",
                None
            )
            .as_deref(),
            Some("slug")
        );
        assert_eq!(
            super::unique_field(
                "duplicate key value violates unique constraint \"users_username_key\"",
                Some("Key (username)=(bob) already exists.")
            )
            .as_deref(),
            Some("username")
        );
        assert_eq!(super::unique_field("something else", None), None);
    }
}

//! Opaque cursors for Relay-style connections: base64 of the row id.

use crate::error::{AppError, AppResult, ErrorCode};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};

/// Encodes a row id as a cursor.
pub fn encode(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("c:{id}"))
}

/// Decodes a cursor made by [`encode`].
pub fn decode(cursor: &str) -> AppResult<i64> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("c:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| AppError::new(ErrorCode::ValidationError, "invalid cursor"))
}

//! JWT access and refresh tokens (HS256). Both carry `typ` so one is never accepted as the
//! other; `exp`, `iss` and `aud` are required and checked; only HS256 is accepted.

use crate::error::{AppError, AppResult, ErrorCode};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Issuer and audience written into and demanded from every token.
pub const ISSUER: &str = "hearth";
/// See [`ISSUER`].
pub const AUDIENCE: &str = "hearth-api";

/// The two kinds of token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// Short-lived; authenticates requests.
    Access,
    /// Long-lived; only exchanges for a new pair at the refresh endpoints.
    Refresh,
}

/// Claims of both kinds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Session (refresh family) id.
    pub sid: String,
    /// Kind, checked on every decode.
    pub typ: TokenKind,
    /// Role at issue time (informational; the database decides).
    pub role: String,
    /// Issued at (seconds).
    pub iat: i64,
    /// Expiry (seconds).
    pub exp: i64,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Unique id, so two tokens issued in the same second differ.
    pub jti: String,
}

/// Signing and verification keys derived from the configured secret.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    /// Builds keys from a secret of at least 32 bytes.
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Signs a token of `kind` for a user and session, valid `ttl_secs`.
    pub fn issue(
        &self,
        kind: TokenKind,
        user_id: i64,
        role: &str,
        sid: &str,
        ttl_secs: i64,
    ) -> AppResult<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id.to_string(),
            sid: sid.to_string(),
            typ: kind,
            role: role.to_string(),
            iat: now,
            exp: now + ttl_secs,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(AppError::internal)
    }

    /// Verifies signature, algorithm, `exp`/`iss`/`aud` and the expected kind.
    pub fn verify(&self, token: &str, kind: TokenKind) -> AppResult<Claims> {
        let data =
            decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => {
                        AppError::new(ErrorCode::TokenExpired, "token expired")
                    }
                    _ => AppError::new(ErrorCode::InvalidToken, "invalid token"),
                }
            })?;
        if data.claims.typ != kind {
            return Err(AppError::new(ErrorCode::InvalidToken, "wrong token type"));
        }
        Ok(data.claims)
    }
}

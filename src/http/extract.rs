//! Request-side plumbing shared by every transport: reading credentials from headers,
//! the `Caller` extractors, client info, and a JSON body extractor whose failures use the
//! error table.

use crate::auth::Caller;
use crate::config::Config;
use crate::error::{AppError, ErrorCode};
use crate::service::auth::{self, ClientInfo, Credential};
use crate::state::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use axum_extra::extract::CookieJar;
use serde::de::DeserializeOwned;
use std::net::{IpAddr, SocketAddr};

/// Name of the HttpOnly cookie browser clients authenticate with (seed 003).
pub const ACCESS_COOKIE: &str = "access_token";

/// Whether a method changes state (cookie auth then needs `X-CSRF-Token`).
pub fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The credential a request presents, by precedence: `Authorization: Bearer`, `X-API-Key`,
/// then the `access_token` cookie.
pub fn credential(headers: &HeaderMap, state_changing: bool) -> Option<Credential> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        let token = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .unwrap_or(v)
            .trim();
        return Some(Credential::Bearer(token.to_string()));
    }
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(Credential::ApiKey(v.trim().to_string()));
    }
    let jar = CookieJar::from_headers(headers);
    jar.get(ACCESS_COOKIE).map(|c| Credential::Cookie {
        token: c.value().to_string(),
        csrf: headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        state_changing,
    })
}

/// Client details recorded on new sessions and used by rate limits.
pub fn client_info(config: &Config, parts: &Parts, client: &str) -> ClientInfo {
    ClientInfo {
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        ip: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| client_ip(config, &parts.headers, c.0)),
        client: client.to_string(),
    }
}

/// The client's address: the peer's, unless the peer is one of `trusted_proxies`; then the
/// nearest address in `X-Forwarded-For` that is not itself a trusted proxy (the leftmost
/// entries are whatever the client chose to send, so they are never believed).
pub fn client_ip(config: &Config, headers: &HeaderMap, peer: SocketAddr) -> String {
    client_addr(config, headers, peer).to_string()
}

/// [`client_ip`] as an address (no text built: the rate limiter's per-request path).
pub fn client_addr(config: &Config, headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
    let peer_ip = peer.ip().to_canonical();
    if config.trusted_proxies.is_empty() {
        return peer_ip;
    }
    let trusted = |ip: &IpAddr| config.trusted_proxies.iter().any(|n| n.contains(ip));
    if !trusted(&peer_ip) {
        return peer_ip;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in forwarded.iter().rev() {
        match parse_hop(hop) {
            Some(ip) if trusted(&ip) => continue,
            Some(ip) => return ip,
            None => break,
        }
    }
    peer_ip
}

/// One `X-Forwarded-For` entry: an address, with or without a port (`1.2.3.4:5678`,
/// `[::1]:80`, `[::1]`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let ip = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| h.parse().ok())
        })?;
    Some(ip.to_canonical())
}

/// Requires an authenticated caller; refuses with 401/403 and the reason's code.
pub struct AuthCaller(pub Caller);

impl FromRequestParts<AppState> for AuthCaller {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let cred = credential(&parts.headers, is_state_changing(&parts.method))
            .ok_or_else(AppError::unauthenticated)?;
        Ok(AuthCaller(auth::authenticate(state, cred).await?))
    }
}

/// An optional caller: anonymous when no credential is sent, refused when a bad one is.
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        match credential(&parts.headers, is_state_changing(&parts.method)) {
            None => Ok(MaybeCaller(None)),
            Some(cred) => Ok(MaybeCaller(Some(auth::authenticate(state, cred).await?))),
        }
    }
}

/// Whether the `Origin` of a request names the host it was sent to.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    match (origin, host) {
        (Some(o), Some(h)) => o.split_once("://").map(|(_, rest)| rest) == Some(h),
        _ => false,
    }
}

/// The credential of a WebSocket handshake: a header, the cookie only from a same-origin
/// page (browsers send cookies on cross-site handshakes too), else `?token=`.
pub fn ws_credential(headers: &HeaderMap, query: Option<&str>) -> Option<Credential> {
    let query_token = query.and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .map(|t| Credential::Bearer(t.to_string()))
    });
    credential(headers, false)
        .filter(|c| !matches!(c, Credential::Cookie { .. }) || same_origin(headers))
        .or(query_token)
}

/// A caller authenticated at a WebSocket handshake (refused with 401 before the upgrade).
pub struct WsCaller(pub Caller);

impl FromRequestParts<AppState> for WsCaller {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let cred = ws_credential(&parts.headers, parts.uri.query())
            .ok_or_else(AppError::unauthenticated)?;
        Ok(WsCaller(auth::authenticate(state, cred).await?))
    }
}

/// Client info as an extractor.
pub struct Client(pub ClientInfo);

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Client(client_info(&state.config, parts, "api")))
    }
}

/// `Json<T>` whose rejections are table errors: bad syntax 400 `invalid_json`, wrong shape
/// 422 `validation_error`, wrong content type 415, too large 413.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = AppError;
    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(JsonBody(v)),
            Err(rej) => Err(json_rejection(rej)),
        }
    }
}

fn json_rejection(rej: JsonRejection) -> AppError {
    match rej {
        JsonRejection::JsonSyntaxError(e) => AppError::new(
            ErrorCode::InvalidJson,
            format!("request body is not valid JSON: {}", short(&e.body_text())),
        ),
        JsonRejection::JsonDataError(e) => AppError::new(
            ErrorCode::ValidationError,
            format!("invalid request body: {}", short(&e.body_text())),
        ),
        JsonRejection::MissingJsonContentType(_) => AppError::new(
            ErrorCode::UnsupportedMediaType,
            "expected Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(e)
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
        {
            AppError::new(ErrorCode::PayloadTooLarge, "request body too large")
        }
        other => AppError::new(ErrorCode::BadRequest, other.body_text()),
    }
}

fn short(s: &str) -> String {
    s.chars().take(300).collect()
}

/// Parses a numeric path id; a malformed id cannot name an object, so it is a 404.
pub fn path_id(raw: &str) -> Result<i64, AppError> {
    raw.trim()
        .parse::<i64>()
        .map_err(|_| AppError::not_found("object"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_hops_with_or_without_ports() {
        assert_eq!(parse_hop("1.2.3.4"), "1.2.3.4".parse().ok());
        assert_eq!(parse_hop("1.2.3.4:5678"), "1.2.3.4".parse().ok());
        assert_eq!(parse_hop("[::1]:80"), "::1".parse().ok());
        assert_eq!(parse_hop("[::1]"), "::1".parse().ok());
        assert_eq!(parse_hop("::ffff:10.0.0.1"), "10.0.0.1".parse().ok());
        assert_eq!(parse_hop("unknown"), None);
    }

    #[test]
    fn only_trusted_proxies_are_believed() {
        let config = Config {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
            ..Config::default()
        };
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "9.9.9.9, 8.8.8.8, 10.1.1.1".parse().unwrap(),
        );
        let proxy: SocketAddr = "10.0.0.5:1234".parse().unwrap();
        let direct: SocketAddr = "7.7.7.7:1234".parse().unwrap();
        assert_eq!(client_ip(&config, &h, proxy), "8.8.8.8");
        assert_eq!(client_ip(&config, &h, direct), "7.7.7.7");
    }
}

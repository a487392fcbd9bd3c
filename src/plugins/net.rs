//! Plugins' HTTP: only to hosts the manifest lists, only to public addresses unless the
//! server allows private ones, checked after DNS resolution (the request goes to the address
//! that was checked, so a rebinding answer cannot slip through) and again on every redirect,
//! which Hearth follows itself. Responses are cut at `http_max_response_bytes`.

use super::host::{field, CallCtx};
use crate::error::{AppError, AppResult, ErrorCode};
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 5;

/// Whether `host` matches one of the manifest's patterns (`name` or `*.domain`).
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    allowed
        .iter()
        .any(|pattern| match pattern.strip_prefix("*.") {
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => host == *pattern,
        })
}

/// Loopback, private, link-local, unspecified, multicast, shared and documentation ranges,
/// and IPv4 mapped into IPv6: addresses a plugin must not reach by default.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x64 && s[1] == 0xff9b)
        }
    }
}

fn refused(message: String) -> AppError {
    AppError::new(ErrorCode::Forbidden, message)
}

/// Resolves and checks one URL; the address to connect to.
async fn vet(url: &reqwest::Url, ctx: &CallCtx) -> AppResult<SocketAddr> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refused(format!(
            "only http and https URLs are allowed, not {}",
            url.scheme()
        )));
    }
    let host = url
        .host_str()
        .ok_or_else(|| AppError::validation("url", "the URL has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if !host_allowed(&host, &ctx.allowed_hosts) {
        return Err(refused(format!(
            "the plugin may not reach {host}: it is not in the manifest's allowed_hosts"
        )));
    }
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| {
                AppError::new(
                    ErrorCode::Unavailable,
                    format!("{host} does not resolve: {e}"),
                )
            })?
            .collect(),
    };
    let private_ok = ctx.state.config.plugins.allow_private_hosts;
    let addr = addrs
        .iter()
        .find(|a| private_ok || !is_internal(a.ip()))
        .copied()
        .ok_or_else(|| {
            refused(format!(
                "{host} resolves only to internal addresses, which plugins may not reach"
            ))
        })?;
    Ok(addr)
}

/// `hearth_http`: `{method, url, body?}` → `{status, body}`.
pub fn http(ctx: &CallCtx, input: Value) -> AppResult<Value> {
    let method = input
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("GET")
        .to_ascii_uppercase();
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| AppError::validation("method", "not an HTTP method"))?;
    let url = reqwest::Url::parse(field(&input, "url")?)
        .map_err(|e| AppError::validation("url", format!("not a URL: {e}")))?;
    let body = input
        .get("body")
        .and_then(Value::as_str)
        .map(str::to_string);
    ctx.runtime.block_on(fetch(ctx, method, url, body))
}

async fn fetch(
    ctx: &CallCtx,
    mut method: reqwest::Method,
    mut url: reqwest::Url,
    mut body: Option<String>,
) -> AppResult<Value> {
    let cfg = &ctx.state.config.plugins;
    for _ in 0..=MAX_REDIRECTS {
        let addr = vet(&url, ctx).await?;
        let host = url.host_str().unwrap_or_default().to_string();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_millis(cfg.http_timeout_ms))
            .resolve(&host, addr)
            .no_proxy()
            .build()
            .map_err(AppError::internal)?;
        let mut request = client.request(method.clone(), url.clone());
        if let Some(b) = &body {
            request = request.body(b.clone());
        }
        let mut response = request.send().await.map_err(|e| {
            AppError::new(
                ErrorCode::Unavailable,
                format!("the request to {host} failed: {e}"),
            )
        })?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    AppError::new(ErrorCode::Unavailable, "a redirect without Location")
                })?;
            url = url.join(location).map_err(|e| {
                AppError::new(ErrorCode::Unavailable, format!("a bad redirect: {e}"))
            })?;
            if status == reqwest::StatusCode::SEE_OTHER
                || ((status == reqwest::StatusCode::MOVED_PERMANENTLY
                    || status == reqwest::StatusCode::FOUND)
                    && method == reqwest::Method::POST)
            {
                method = reqwest::Method::GET;
                body = None;
            }
            continue;
        }
        let mut bytes: Vec<u8> = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            AppError::new(
                ErrorCode::Unavailable,
                format!("reading from {host} failed: {e}"),
            )
        })? {
            let room = cfg.http_max_response_bytes.saturating_sub(bytes.len());
            bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if room <= chunk.len() {
                break;
            }
        }
        return Ok(json!({
            "status": status.as_u16(),
            "body": String::from_utf8_lossy(&bytes),
        }));
    }
    Err(AppError::new(
        ErrorCode::Unavailable,
        format!("more than {MAX_REDIRECTS} redirects"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_addresses() {
        let allowed = vec!["api.example.com".to_string(), "*.example.org".to_string()];
        assert!(host_allowed("api.example.com", &allowed));
        assert!(host_allowed("API.example.com.", &allowed));
        assert!(host_allowed("a.b.example.org", &allowed));
        assert!(!host_allowed("example.org", &allowed));
        assert!(!host_allowed("evil.com", &allowed));
        assert!(!host_allowed("api.example.com.evil.com", &allowed));
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "169.254.169.254",
            "::1",
            "::ffff:127.0.0.1",
            "fd00::1",
            "0.0.0.0",
            "100.64.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1::1"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }
}

//! Refused credentials: missing, expired, tampered, `alg: none`, wrong kind, garbage.

use crate::both_backends;
use crate::support::{Backend, TestServer, JWT_SECRET};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hearth::auth::tokens::{JwtKeys, TokenKind};
use reqwest::StatusCode;
use serde_json::json;

both_backends!(bad_tokens_are_refused_everywhere);

async fn bad_tokens_are_refused_everywhere(b: Backend) {
    let s = TestServer::start(b).await;
    let l = s.user("tok").await;
    let keys = JwtKeys::new(JWT_SECRET.as_bytes());
    let expired = keys
        .issue(TokenKind::Access, l.user_id, "user", &l.session_id, -120)
        .unwrap();
    let other_secret = JwtKeys::new(b"another-secret-another-secret-another-secret")
        .issue(TokenKind::Access, l.user_id, "user", &l.session_id, 600)
        .unwrap();

    // Tamper: swap the payload for one claiming another user, keep the signature.
    let parts: Vec<&str> = l.access.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = json!("999");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    // alg: none with the original claims and no signature.
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!("{none_header}.{}.", parts[1]);

    let cases: Vec<(&str, Option<String>, StatusCode, &str)> = vec![
        (
            "no token",
            None,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            "expired",
            Some(expired),
            StatusCode::UNAUTHORIZED,
            "token_expired",
        ),
        (
            "tampered",
            Some(tampered),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "alg none",
            Some(alg_none),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "foreign signature",
            Some(other_secret),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "refresh as access",
            Some(l.refresh.clone()),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "garbage",
            Some("not-a-token".into()),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "unknown key",
            Some("sk-hearth-0000000000000000000000000000000000000000".into()),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
    ];
    for (name, token, status, code) in cases {
        let t = token.as_deref();
        let (st, e) = s.get("/api/auth/me", t).await;
        assert_eq!(
            (st, e["code"].as_str().unwrap_or("")),
            (status, code),
            "{name} on /api/auth/me: {e}"
        );
        let (st, e) = s.get("/api/v1/users/me", t).await;
        assert_eq!(st, status, "{name} on seed 002");
        assert_eq!(e["error"]["code"], code.to_uppercase(), "{name}: {e}");
        let (st, _) = s.get("/api/chats", t).await;
        assert_eq!(st, status, "{name} on /api/chats");
        let (st, e) = s.gql(t, "{ me { id } }", json!({})).await;
        if token.is_none() {
            assert_eq!(st, StatusCode::OK, "anonymous GraphQL is a field error");
        } else {
            assert_eq!(st, status, "{name} on GraphQL");
        }
        assert_eq!(TestServer::gql_code(&e), code, "{name} on GraphQL: {e}");
    }
    // The real token still works.
    assert_eq!(
        s.get("/api/auth/me", Some(&l.access)).await.0,
        StatusCode::OK
    );
}

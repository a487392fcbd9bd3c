//! Seed 003 (plugin host): cookie login with CSRF, logout, sessions. Browser clients get an
//! HttpOnly `access_token` cookie plus a CSRF token to echo in `X-CSRF-Token` on every
//! POST/PUT/PATCH/DELETE.

use super::openapi::PLUGIN_HOST;
use super::DocRouter;
use crate::error::AppError;
use crate::http::extract::{AuthCaller, Client, JsonBody, ACCESS_COOKIE};
use crate::service::auth;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::routes;

/// Routes.
pub fn router() -> DocRouter {
    DocRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(list))
        .routes(routes!(terminate))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = PluginHostLoginBody)]
struct LoginBody {
    /// The username or email (one of `user`, `username`, `email` is required).
    user: Option<String>,
    /// Same as `user`.
    username: Option<String>,
    /// Same as `user`.
    email: Option<String>,
    password: String,
}

fn access_cookie(state: &AppState, value: String, max_age_secs: i64) -> Cookie<'static> {
    Cookie::build((ACCESS_COOKIE, value))
        .http_only(true)
        .secure(state.config.cookie_secure)
        .same_site(SameSite::Lax)
        .path("/")
        .max_age(time::Duration::seconds(max_age_secs))
        .build()
}

/// Logs in and sets the HttpOnly `access_token` session cookie.
///
/// The answer carries the CSRF token to send in `X-CSRF-Token` on every POST, PUT, PATCH and
/// DELETE of the session.
#[utoipa::path(post, path = "/auth/login", tag = PLUGIN_HOST, security(()),
    request_body = LoginBody,
    responses((status = 200,
        description = "`{csrf_token, session_id, expires_in}`, with the `access_token` cookie in `Set-Cookie`",
        body = Object)))]
async fn login(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(mut client): Client,
    JsonBody(b): JsonBody<LoginBody>,
) -> Result<(CookieJar, Json<Value>), AppError> {
    let ident = b
        .user
        .or(b.username)
        .or(b.email)
        .ok_or_else(|| AppError::validation("user", "user is required"))?;
    client.client = "cookie".into();
    let pair = auth::login(&state, &ident, &b.password, client).await?;
    let cookie = access_cookie(&state, pair.access_token.clone(), pair.expires_in);
    Ok((
        jar.add(cookie),
        Json(json!({
            "csrf_token": pair.session.csrf_token,
            "session_id": pair.session.id,
            "expires_in": pair.expires_in,
        })),
    ))
}

/// Logs out: ends the session and clears the cookie.
#[utoipa::path(post, path = "/auth/logout", tag = PLUGIN_HOST,
    responses((status = 200, description = "`{ok: true}`, with the cookie cleared", body = Object)))]
async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    AuthCaller(caller): AuthCaller,
) -> Result<(CookieJar, Json<Value>), AppError> {
    auth::logout(&state, &caller).await?;
    let expired = access_cookie(&state, String::new(), 0);
    Ok((jar.remove(expired), Json(json!({ "ok": true }))))
}

fn session_json(s: &crate::db::models::Session) -> Value {
    json!({
        "id": s.id,
        "client": s.client,
        "user_agent": s.user_agent,
        "start_ts": s.created_at.and_utc().timestamp(),
        "last_activity": s.last_activity.and_utc().timestamp(),
        "active": auth::session_active(s),
    })
}

/// The caller's sessions, newest first.
#[utoipa::path(get, path = "/sessions", tag = PLUGIN_HOST,
    responses((status = 200,
        description = "`{sessions: [{id, client, user_agent, start_ts, last_activity, active}]}` (times in seconds since the epoch; the latest 200)",
        body = Object)))]
async fn list(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
) -> Result<Json<Value>, AppError> {
    let rows = auth::list_sessions(&state, &caller).await?;
    Ok(Json(
        json!({ "sessions": rows.iter().map(session_json).collect::<Vec<_>>() }),
    ))
}

/// Ends one of the caller's sessions (admins: anyone's).
#[utoipa::path(post, path = "/sessions/{id}/terminate", tag = PLUGIN_HOST,
    params(("id" = String, Path, description = "The session's id")),
    responses((status = 200,
        description = "The session: `{id, client, user_agent, start_ts, last_activity, active}`",
        body = Object)))]
async fn terminate(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let s = auth::terminate_session(&state, &caller, &id).await?;
    Ok(Json(session_json(&s)))
}

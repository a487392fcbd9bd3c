//! `/api/auth/*`, shared by seed 000 (AI Orchestrator: `username` login, refresh) and seed
//! 001 (FoyerGPT: `email` login, register with `trigramme`). Login accepts either field and
//! answers the union of both documented bodies.

use super::openapi::{FOYER, ORCHESTRATOR};
use super::ts;
use super::DocRouter;
use crate::db::models::User;
use crate::error::AppError;
use crate::http::extract::{AuthCaller, Client, JsonBody};
use crate::service::auth::{self, RegisterInput, TokenPair};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::routes;

/// Routes.
pub fn router() -> DocRouter {
    DocRouter::new()
        .routes(routes!(login))
        .routes(routes!(register))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me))
}

/// Seed 001's user object (`trigramme` is the username), extended with seed 000's fields.
pub fn user_json(u: &User) -> Value {
    json!({
        "id": u.id,
        "email": u.email,
        "trigramme": u.username,
        "username": u.username,
        "name": u.name,
        "role": u.role,
        "is_active": u.is_active,
        "is_admin": u.is_admin(),
        "avatar_url": u.avatar_url,
        "created_at": ts(u.created_at),
    })
}

/// Token answer of both seeds: 000's four fields plus 001's `user`.
pub fn token_json(p: &TokenPair) -> Value {
    json!({
        "access_token": p.access_token,
        "refresh_token": p.refresh_token,
        "token_type": "bearer",
        "expires_in": p.expires_in,
        "session_id": p.session.id,
        "user": user_json(&p.user),
    })
}

#[derive(Deserialize, ToSchema)]
#[schema(as = ApiAuthLoginBody)]
struct LoginBody {
    /// Seed 000's identifier (a username or an email); takes precedence over `email`.
    username: Option<String>,
    /// Seed 001's identifier; one of `username` and `email` is required.
    email: Option<String>,
    password: String,
}

/// Logs in with a username or email and password.
///
/// Answers seed 000's token fields and seed 001's `user` together.
#[utoipa::path(post, path = "/api/auth/login", tags = [ORCHESTRATOR, FOYER], security(()),
    request_body = LoginBody,
    responses((status = 200, description = "`{access_token, refresh_token, token_type, expires_in, session_id, user}`", body = Object)))]
async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Json<Value>, AppError> {
    let ident = body
        .username
        .or(body.email)
        .ok_or_else(|| AppError::validation("username", "username or email is required"))?;
    let pair = auth::login(&state, &ident, &body.password, client).await?;
    Ok(Json(token_json(&pair)))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = ApiAuthRegisterBody)]
struct RegisterBody {
    email: String,
    password: String,
    /// Seed 001's username (takes precedence over `username`).
    trigramme: Option<String>,
    username: Option<String>,
    /// Display name.
    name: Option<String>,
    /// Hearth's one-time setup token (see docs/auth.md), to claim an instance remotely.
    setup_token: Option<String>,
}

/// Creates an account (seed 001), answering the new user.
///
/// Does not log in: the caller logs in next.
#[utoipa::path(post, path = "/api/auth/register", tags = [ORCHESTRATOR, FOYER], security(()),
    request_body = RegisterBody,
    responses((status = 201, description = "The new user: `{id, email, trigramme, username, name, role, is_active, is_admin, avatar_url, created_at}`", body = Object)))]
async fn register(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<RegisterBody>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let user = auth::register(
        &state,
        RegisterInput {
            email: body.email,
            password: body.password,
            username: body.trigramme.or(body.username),
            name: body.name,
            admin: false,
            setup_token: body.setup_token,
        },
        false,
        &client,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(user_json(&user))))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = ApiAuthRefreshBody)]
struct RefreshBody {
    refresh_token: String,
}

/// Exchanges a refresh token for a new token pair.
#[utoipa::path(post, path = "/api/auth/refresh", tags = [ORCHESTRATOR, FOYER], security(()),
    request_body = RefreshBody,
    responses((status = 200, description = "`{access_token, refresh_token, token_type, expires_in, session_id, user}`", body = Object)))]
async fn refresh(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RefreshBody>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(token_json(
        &auth::refresh(&state, &body.refresh_token).await?,
    )))
}

#[derive(Deserialize, Default, ToSchema)]
#[schema(as = ApiAuthLogoutBody)]
struct LogoutBody {
    /// A refresh token to revoke; enough on its own without a credential.
    refresh_token: Option<String>,
}

/// Logs out: ends the session of the credential sent, or of a refresh token.
///
/// Revokes the Bearer token's session; a `refresh_token` in the body (seed 000: "invalidates
/// the refresh token") is revoked too, and suffices on its own (then no credential is needed).
/// The body may be empty.
#[utoipa::path(post, path = "/api/auth/logout", tags = [ORCHESTRATOR, FOYER],
    security((), ("bearer" = []), ("api_key" = []), ("cookie" = [])),
    request_body(content = Option<LogoutBody>, description = "Optional `{refresh_token}`: the refresh token to revoke too"),
    responses((status = 200, description = "`{message, status: \"success\"}`", body = Object)))]
async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, AppError> {
    let refresh = if body.is_empty() {
        None
    } else {
        serde_json::from_slice::<LogoutBody>(&body)
            .map_err(|_| {
                AppError::new(
                    crate::error::ErrorCode::InvalidJson,
                    "request body is not valid JSON",
                )
            })?
            .refresh_token
    };
    let cred = crate::http::extract::credential(&headers, true);
    match (cred, refresh) {
        (Some(cred), r) => {
            let caller = auth::authenticate(&state, cred).await?;
            auth::logout(&state, &caller).await?;
            if let Some(r) = r {
                auth::logout_refresh_token(&state, &r).await?;
            }
        }
        (None, Some(r)) => auth::logout_refresh_token(&state, &r).await?,
        (None, None) => return Err(AppError::unauthenticated()),
    }
    Ok(Json(
        json!({ "message": "Déconnexion réussie", "status": "success" }),
    ))
}

/// The caller's profile.
#[utoipa::path(get, path = "/api/auth/me", tags = [ORCHESTRATOR, FOYER],
    responses((status = 200, description = "The user: `{id, email, trigramme, username, name, role, is_active, is_admin, avatar_url, created_at}`", body = Object)))]
async fn me(AuthCaller(caller): AuthCaller) -> Json<Value> {
    Json(user_json(&caller.user))
}

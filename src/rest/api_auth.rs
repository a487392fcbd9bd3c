//! `/api/auth/*`, shared by seed 000 (AI Orchestrator: `username` login, refresh) and seed
//! 001 (FoyerGPT: `email` login, register with `trigramme`). Login accepts either field and
//! answers the union of both documented bodies.

use super::ts;
use crate::db::models::User;
use crate::error::AppError;
use crate::http::extract::{AuthCaller, Client, JsonBody};
use crate::service::auth::{self, RegisterInput, TokenPair};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

/// Routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/login", post(login))
        .route("/api/auth/register", post(register))
        .route("/api/auth/refresh", post(refresh))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/me", get(me))
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

#[derive(Deserialize)]
struct LoginBody {
    username: Option<String>,
    email: Option<String>,
    password: String,
}

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

#[derive(Deserialize)]
struct RegisterBody {
    email: String,
    password: String,
    trigramme: Option<String>,
    username: Option<String>,
    name: Option<String>,
    /// Hearth's one-time setup token (see docs/auth.md), to claim an instance remotely.
    setup_token: Option<String>,
}

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

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: String,
}

async fn refresh(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RefreshBody>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(token_json(
        &auth::refresh(&state, &body.refresh_token).await?,
    )))
}

#[derive(Deserialize, Default)]
struct LogoutBody {
    refresh_token: Option<String>,
}

/// Revokes the Bearer token's session; a `refresh_token` in the body (seed 000: "invalidates
/// the refresh token") is revoked too, and suffices on its own.
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

async fn me(AuthCaller(caller): AuthCaller) -> Json<Value> {
    Json(user_json(&caller.user))
}

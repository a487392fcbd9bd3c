//! Seed 002 (RAG-DZ / Nexus), mounted under `/api/v1`: auth, users, API keys, projects.
//! Its error body is `{error: {code, message, details}, request_id}`; ids are strings.

use super::openapi::NEXUS;
use super::DocRouter;
use super::{ts, ts_opt};
use crate::db::models::{ApiKey, Project, User};
use crate::error::AppError;
use crate::http::errors::{current_request_id, with_body};
use crate::http::extract::{path_id, AuthCaller, Client, JsonBody};
use crate::service::api_keys::{self, NewKeyInput};
use crate::service::auth::{self, RegisterInput, TokenPair};
use crate::service::users::{self, ProfileChanges};
use crate::service::{projects, validate};
use crate::state::AppState;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

/// Routes (relative to `/api/v1`), with the seed's error shape.
pub fn router() -> DocRouter {
    DocRouter::new()
        .routes(routes!(login))
        .routes(routes!(register))
        .routes(routes!(refresh))
        .routes(routes!(me, update_me))
        .routes(routes!(create_key, list_keys))
        .routes(routes!(revoke_key))
        .routes(routes!(create_project, list_projects))
        .layer(middleware::from_fn(nexus_errors))
}

/// Re-renders table errors in seed 002's shape.
pub(crate) async fn nexus_errors(req: Request, next: Next) -> Response {
    nexus_shape(next.run(req).await)
}

/// A table error response in seed 002's shape (others pass unchanged).
pub fn nexus_shape(res: Response) -> Response {
    let Some(err) = res.extensions().get::<AppError>() else {
        return res;
    };
    let body = json!({
        "error": {
            "code": err.code.as_str().to_uppercase(),
            "message": err.message,
            "details": err.details.clone().unwrap_or_else(|| json!({})),
        },
        "request_id": current_request_id().unwrap_or_default(),
    });
    with_body(res, &body)
}

fn user_json(u: &User) -> Value {
    json!({
        "id": u.id.to_string(),
        "email": u.email,
        "name": u.name,
        "username": u.username,
        "role": u.role,
        "avatar_url": u.avatar_url,
        "is_active": u.is_active,
        "created_at": ts(u.created_at),
    })
}

fn token_json(p: &TokenPair) -> Value {
    json!({
        "access_token": p.access_token,
        "refresh_token": p.refresh_token,
        "token_type": "bearer",
        "expires_in": p.expires_in,
        "user": user_json(&p.user),
    })
}

#[derive(Deserialize, ToSchema)]
#[schema(as = NexusLoginBody)]
struct LoginBody {
    email: Option<String>,
    username: Option<String>,
    password: String,
}

/// Logs in with email (or username) and password.
#[utoipa::path(post, path = "/auth/login", tag = NEXUS, security(()),
    request_body = LoginBody,
    responses((status = 200, description = "Tokens and the user", body = Object)))]
async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(b): JsonBody<LoginBody>,
) -> Result<Json<Value>, AppError> {
    let ident = b
        .email
        .or(b.username)
        .ok_or_else(|| AppError::validation("email", "email is required"))?;
    Ok(Json(token_json(
        &auth::login(&state, &ident, &b.password, client).await?,
    )))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = NexusRegisterBody)]
struct RegisterBody {
    email: String,
    password: String,
    name: Option<String>,
    username: Option<String>,
    setup_token: Option<String>,
}

#[utoipa::path(post, path = "/auth/register", tag = NEXUS, security(()),
    request_body = RegisterBody,
    responses((status = 201, description = "Tokens and the new user", body = Object)))]
/// Registers and logs in, answering like login with 201.
async fn register(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(b): JsonBody<RegisterBody>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let pair = auth::register_and_login(
        &state,
        RegisterInput {
            email: b.email,
            password: b.password,
            username: b.username,
            name: b.name,
            admin: false,
            setup_token: b.setup_token,
        },
        client,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(token_json(&pair))))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = NexusRefreshBody)]
struct RefreshBody {
    refresh_token: String,
}

/// Exchanges a refresh token for a new pair.
#[utoipa::path(post, path = "/auth/refresh", tag = NEXUS, security(()),
    request_body = RefreshBody,
    responses((status = 200, description = "Tokens and the user", body = Object)))]
async fn refresh(
    State(state): State<AppState>,
    JsonBody(b): JsonBody<RefreshBody>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(token_json(
        &auth::refresh(&state, &b.refresh_token).await?,
    )))
}

/// The caller's profile.
#[utoipa::path(get, path = "/users/me", tag = NEXUS,
    responses((status = 200, description = "The user", body = Object)))]
async fn me(AuthCaller(caller): AuthCaller) -> Json<Value> {
    Json(user_json(&caller.user))
}

fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize, ToSchema)]
#[schema(as = NexusProfileBody)]
struct ProfileBody {
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    avatar_url: Option<Option<String>>,
}

/// Changes the caller's name or avatar.
#[utoipa::path(patch, path = "/users/me", tag = NEXUS, request_body = ProfileBody,
    responses((status = 200, description = "The user", body = Object)))]
async fn update_me(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    JsonBody(b): JsonBody<ProfileBody>,
) -> Result<Json<Value>, AppError> {
    let user = users::update_me(
        &state,
        &caller,
        ProfileChanges {
            name: b.name,
            avatar_url: b.avatar_url,
        },
    )
    .await?;
    Ok(Json(user_json(&user)))
}

fn key_json(k: &ApiKey) -> Value {
    json!({
        "key_id": k.id.to_string(),
        "name": k.name,
        "prefix": k.prefix,
        "permissions": api_keys::parse_permissions(&k.permissions).iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "rate_limit": k.rate_limit,
        "created_at": ts(k.created_at),
        "expires_at": ts_opt(k.expires_at),
        "last_used_at": ts_opt(k.last_used_at),
        "revoked": k.revoked_at.is_some(),
    })
}

#[derive(Deserialize, ToSchema)]
#[schema(as = NexusKeyBody)]
struct KeyBody {
    name: String,
    permissions: Option<Vec<String>>,
    rate_limit: Option<i64>,
    expires_at: Option<DateTime<Utc>>,
}

/// Creates an API key; the secret is shown once.
#[utoipa::path(post, path = "/keys", tag = NEXUS, request_body = KeyBody,
    responses((status = 201, description = "The key, with `api_key` (the secret)", body = Object)))]
async fn create_key(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    JsonBody(b): JsonBody<KeyBody>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let (key, secret) = api_keys::create(
        &state,
        &caller,
        NewKeyInput {
            name: b.name,
            permissions: b.permissions,
            rate_limit: b.rate_limit,
            expires_at: b.expires_at.map(|t| t.naive_utc()),
        },
    )
    .await?;
    let mut body = key_json(&key);
    body["api_key"] = json!(secret);
    Ok((StatusCode::CREATED, Json(body)))
}

/// The caller's API keys.
#[utoipa::path(get, path = "/keys", tag = NEXUS,
    responses((status = 200, description = "`{keys}`", body = Object)))]
async fn list_keys(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
) -> Result<Json<Value>, AppError> {
    let keys = api_keys::list(&state, &caller).await?;
    Ok(Json(
        json!({ "keys": keys.iter().map(key_json).collect::<Vec<_>>() }),
    ))
}

/// Revokes one of the caller's API keys.
#[utoipa::path(delete, path = "/keys/{key_id}", tag = NEXUS,
    params(("key_id" = String, Path, description = "The key's id (`key-` prefix optional)")),
    responses((status = 200, description = "The revoked key", body = Object)))]
async fn revoke_key(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let key = api_keys::revoke(
        &state,
        &caller,
        path_id(id.strip_prefix("key-").unwrap_or(&id))?,
    )
    .await?;
    Ok(Json(key_json(&key)))
}

pub(crate) fn project_json(p: &Project) -> Value {
    json!({
        "id": p.id.to_string(),
        "name": p.name,
        "description": p.description,
        "type": p.kind,
        "owner_id": p.owner_id.to_string(),
        "created_at": ts(p.created_at),
        "updated_at": ts(p.updated_at),
    })
}

#[derive(Deserialize, ToSchema)]
#[schema(as = NexusProjectBody)]
struct ProjectBody {
    name: String,
    description: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// Creates a project.
#[utoipa::path(post, path = "/projects", tag = NEXUS, request_body = ProjectBody,
    responses((status = 201, description = "The project", body = Object)))]
async fn create_project(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    JsonBody(b): JsonBody<ProjectBody>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let p = projects::create(
        &state,
        &caller,
        &b.name,
        b.description.as_deref(),
        b.kind.as_deref(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(project_json(&p))))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ProjectQuery {
    page: Option<i64>,
    limit: Option<i64>,
}

/// The caller's projects, a page at a time.
#[utoipa::path(get, path = "/projects", tag = NEXUS, params(ProjectQuery),
    responses((status = 200, description = "`{projects, total, page, limit}`", body = Object)))]
async fn list_projects(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Query(q): Query<ProjectQuery>,
) -> Result<Json<Value>, AppError> {
    let limit = validate::limit(q.limit, 10)?;
    let page = q.page.unwrap_or(1);
    let (rows, total) = projects::list(&state, &caller, page, limit).await?;
    Ok(Json(json!({
        "projects": rows.iter().map(project_json).collect::<Vec<_>>(),
        "total": total,
        "page": page,
        "limit": limit,
    })))
}

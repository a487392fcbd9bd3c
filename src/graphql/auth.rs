//! Login, tokens, sessions and API keys over GraphQL.

use super::types::{ApiKeyObject, AuthPayload, CreatedApiKey, SessionObject, UserObject};
use super::{parse_id, require_caller};
use crate::service;
use crate::service::api_keys::NewKeyInput;
use crate::service::auth::{self, ClientInfo, RegisterInput, TokenPair};
use crate::state::AppState;
use async_graphql::{Context, InputObject, Object, Result, ID};
use chrono::{DateTime, Utc};

fn payload(p: TokenPair) -> AuthPayload {
    AuthPayload {
        access_token: p.access_token,
        refresh_token: p.refresh_token,
        token_type: "bearer".into(),
        expires_in: p.expires_in,
        session_id: p.session.id,
        user: UserObject(p.user),
    }
}

fn client(ctx: &Context<'_>) -> ClientInfo {
    let mut c = ctx.data_opt::<ClientInfo>().cloned().unwrap_or_default();
    c.client = "graphql".into();
    c
}

/// Self-registration.
#[derive(InputObject)]
pub struct RegisterUserInput {
    /// Unique email.
    pub email: String,
    /// 8–256 characters.
    pub password: String,
    /// Unique username; derived from the email when omitted.
    pub username: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// The one-time setup token from the server's log: makes this account the instance's
    /// first admin when registering from another machine.
    pub setup_token: Option<String>,
}

/// A new API key.
#[derive(InputObject)]
pub struct CreateApiKeyInput {
    /// Label.
    pub name: String,
    /// `read`, `write`, `admin`; default read and write.
    pub permissions: Option<Vec<String>>,
    /// Requests per minute (informational).
    pub rate_limit: Option<i64>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Queries about the caller's credentials.
#[derive(Default)]
pub struct AuthQuery;

#[Object]
impl AuthQuery {
    /// The caller's login sessions, newest first.
    async fn sessions(&self, ctx: &Context<'_>) -> Result<Vec<SessionObject>> {
        let caller = require_caller(ctx)?;
        let state = ctx.data::<AppState>()?;
        let rows = auth::list_sessions(state, caller).await?;
        Ok(rows
            .into_iter()
            .map(|s| SessionObject {
                current: caller.session_id.as_deref() == Some(s.id.as_str()),
                session: s,
            })
            .collect())
    }

    /// The CSRF token of the caller's session, for a browser tab that has the cookie but not
    /// the token (a new tab, a restored session). Other sites cannot read it: the answer is
    /// same-origin only. Null for bearer tokens and API keys, which need none.
    async fn csrf_token(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        let caller = require_caller(ctx)?;
        let Some(sid) = caller
            .session_id
            .as_ref()
            .filter(|_| caller.method == crate::auth::AuthMethod::Cookie)
        else {
            return Ok(None);
        };
        let state = ctx.data::<AppState>()?;
        Ok(auth::get_session(state, caller, sid).await?.csrf_token)
    }

    /// The caller's API keys (secrets are never shown again).
    async fn api_keys(&self, ctx: &Context<'_>) -> Result<Vec<ApiKeyObject>> {
        let caller = require_caller(ctx)?;
        let state = ctx.data::<AppState>()?;
        Ok(service::api_keys::list(state, caller)
            .await?
            .into_iter()
            .map(ApiKeyObject)
            .collect())
    }
}

/// Mutations that open and close sessions and manage keys.
#[derive(Default)]
pub struct AuthMutation;

#[Object]
impl AuthMutation {
    /// Creates an account and logs it in.
    async fn register(&self, ctx: &Context<'_>, input: RegisterUserInput) -> Result<AuthPayload> {
        let state = ctx.data::<AppState>()?;
        let pair = auth::register_and_login(
            state,
            RegisterInput {
                email: input.email,
                password: input.password,
                username: input.username,
                name: input.name,
                admin: false,
                setup_token: input.setup_token,
            },
            client(ctx),
        )
        .await?;
        Ok(payload(pair))
    }

    /// Logs in by username or email.
    async fn login(
        &self,
        ctx: &Context<'_>,
        username: String,
        password: String,
    ) -> Result<AuthPayload> {
        let state = ctx.data::<AppState>()?;
        Ok(payload(
            auth::login(state, &username, &password, client(ctx)).await?,
        ))
    }

    /// Rotates a refresh token into a new pair; a reused token revokes its session.
    async fn refresh_token(&self, ctx: &Context<'_>, refresh_token: String) -> Result<AuthPayload> {
        let state = ctx.data::<AppState>()?;
        Ok(payload(auth::refresh(state, &refresh_token).await?))
    }

    /// Ends the caller's session.
    async fn logout(&self, ctx: &Context<'_>) -> Result<bool> {
        let caller = require_caller(ctx)?;
        auth::logout(ctx.data::<AppState>()?, caller).await?;
        Ok(true)
    }

    /// Ends one of the caller's sessions.
    async fn terminate_session(&self, ctx: &Context<'_>, id: ID) -> Result<SessionObject> {
        let caller = require_caller(ctx)?;
        let s = auth::terminate_session(ctx.data::<AppState>()?, caller, &id).await?;
        Ok(SessionObject {
            current: caller.session_id.as_deref() == Some(s.id.as_str()),
            session: s,
        })
    }

    /// Creates an API key; the secret is in the answer and nowhere else, ever.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        input: CreateApiKeyInput,
    ) -> Result<CreatedApiKey> {
        let caller = require_caller(ctx)?;
        let (key, secret) = service::api_keys::create(
            ctx.data::<AppState>()?,
            caller,
            NewKeyInput {
                name: input.name,
                permissions: input.permissions,
                rate_limit: input.rate_limit,
                expires_at: input.expires_at.map(|t| t.naive_utc()),
            },
        )
        .await?;
        Ok(CreatedApiKey { secret, key })
    }

    /// Revokes one of the caller's API keys.
    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> Result<ApiKeyObject> {
        let caller = require_caller(ctx)?;
        let key =
            service::api_keys::revoke(ctx.data::<AppState>()?, caller, parse_id(&id)?).await?;
        Ok(ApiKeyObject(key))
    }
}

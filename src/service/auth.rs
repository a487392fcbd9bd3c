//! Login, registration, refresh rotation, logout, sessions, and turning any credential
//! (JWT, API key, cookie) into a [`Caller`]. Every transport calls [`authenticate`] so a
//! revoked key, a logged-out session or a disabled user is refused on every door alike.

use crate::auth::secrets::{random_token, secure_eq, sha256_hex, API_KEY_PREFIX};
use crate::auth::tokens::TokenKind;
use crate::auth::{password, AuthMethod, Caller, Permission};
use crate::db::enums::Role;
use crate::db::models::{ApiKey, NewUser, Session, User};
use crate::db::schema::{api_keys, sessions, users};
use crate::db::{locks, BackendSql};
use crate::db_run;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::events::Event;
use crate::limits::{Rule, Who};
use crate::service::{now, validate};
use crate::state::AppState;
use chrono::Duration;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// Where a login came from, recorded on the session.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// User-Agent header.
    pub user_agent: Option<String>,
    /// Peer address.
    pub ip: Option<String>,
    /// `api`, `cookie` or `graphql`.
    pub client: String,
}

/// The result of a login or refresh: a token pair bound to one session.
#[derive(Debug, Clone)]
pub struct TokenPair {
    /// The user logged in.
    pub user: User,
    /// The session (refresh family).
    pub session: Session,
    /// JWT for requests.
    pub access_token: String,
    /// JWT for the refresh endpoints only.
    pub refresh_token: String,
    /// Access token lifetime in seconds.
    pub expires_in: i64,
}

/// Input of a self-registration or an admin-created user.
#[derive(Debug, Clone, Default)]
pub struct RegisterInput {
    /// Email (unique).
    pub email: String,
    /// Password (8–256 characters).
    pub password: String,
    /// Username; derived from the email when absent.
    pub username: Option<String>,
    /// Display name; the username when absent.
    pub name: Option<String>,
    /// Give the admin role (admin-created users only).
    pub admin: bool,
    /// The one-time setup token from the server's log, to claim an instance that has no
    /// admin yet from another machine.
    pub setup_token: Option<String>,
}

/// Credentials as presented by a transport.
#[derive(Debug, Clone)]
pub enum Credential {
    /// `Authorization: Bearer …` (a JWT or an `sk-` key), `?token=`, `connection_init`.
    Bearer(String),
    /// `X-API-Key`.
    ApiKey(String),
    /// `access_token` cookie; `csrf` is the `X-CSRF-Token` header, needed when
    /// `state_changing`.
    Cookie {
        /// Cookie value.
        token: String,
        /// Header value, if sent.
        csrf: Option<String>,
        /// POST/PUT/PATCH/DELETE.
        state_changing: bool,
    },
}

/// Creates a user. Self-registration needs `allow_registration` and is rate-limited per
/// client address; the very first user of an instance becomes its admin so a fresh install
/// can be administered. Taken names are refused before the (deliberately slow) password hash,
/// and the unique constraints decide under races (`409` naming the field).
pub async fn register(
    state: &AppState,
    input: RegisterInput,
    by_admin: bool,
    client: &ClientInfo,
) -> AppResult<User> {
    if !by_admin && !state.config.allow_registration {
        return Err(AppError::forbidden(
            "registration is disabled on this server",
        ));
    }
    let email = validate::email(&input.email)?;
    validate::password(&input.password)?;
    let explicit_username = input
        .username
        .as_deref()
        .map(validate::username)
        .transpose()?;
    let name = match input.name.as_deref() {
        Some(n) => {
            let n = n.trim();
            validate::max_len("name", n, validate::MAX_NAME_CHARS)?;
            Some(n.to_string())
        }
        None => None,
    };
    if !by_admin {
        let address = Who::address(client.ip.as_deref());
        state
            .limits
            .enforce(Rule::Register, address, "registration attempts")
            .await?;
    }
    refuse_taken(state, &email, explicit_username.as_deref()).await?;
    let claim = Claim {
        local: client
            .ip
            .as_deref()
            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
            .is_some_and(|ip| ip.is_loopback()),
        token_ok: input
            .setup_token
            .as_deref()
            .is_some_and(|t| state.setup.accepts(t)),
    };
    let hash = password::hash(&input.password).await?;
    let db = &state.db;
    db_run!(db, write, |conn| {
        // Serializes registrations, so "no user yet" is true for exactly one of them.
        conn.lock_key(locks::REGISTRATION).await?;
        let username = match &explicit_username {
            Some(u) => u.clone(),
            None => {
                let base = derive_username(&email);
                let mut candidate = base.clone();
                for _ in 0..8 {
                    let taken: i64 = users::table
                        .filter(users::username.eq(&candidate))
                        .count()
                        .get_result(conn)
                        .await?;
                    if taken == 0 {
                        break;
                    }
                    candidate = format!("{base}-{}", random_token(4).to_lowercase());
                }
                candidate
            }
        };
        let admins: i64 = users::table
            .filter(users::role.eq(Role::Admin))
            .count()
            .get_result(conn)
            .await?;
        let role = if input.admin || claims_admin(state, &email, admins == 0, claim) {
            Role::Admin
        } else {
            Role::User
        };
        let ts = now();
        let display = name.clone().unwrap_or_else(|| username.clone());
        let user: User = diesel::insert_into(users::table)
            .values(NewUser {
                email: &email,
                username: &username,
                name: &display,
                password_hash: &hash,
                role,
                is_active: true,
                avatar_url: None,
                created_at: ts,
                updated_at: ts,
            })
            .returning(User::as_returning())
            .get_result(conn)
            .await?;
        Ok(user)
    })
}

/// How a registration may claim an instance that has no admin yet.
#[derive(Debug, Clone, Copy)]
struct Claim {
    /// From this machine (the loopback): whoever runs the server.
    local: bool,
    /// With the setup token printed in the server's log.
    token_ok: bool,
}

/// Whether a self-registration becomes admin: the configured `admin_email` always does (and
/// then nobody else does); otherwise the first admin of an instance is whoever registers
/// from this machine or presents the setup token from the log, so a stranger reaching an
/// exposed server first cannot take it over.
fn claims_admin(state: &AppState, email: &str, no_admin_yet: bool, claim: Claim) -> bool {
    match &state.config.admin_email {
        Some(admin) => admin.trim().eq_ignore_ascii_case(email),
        None => no_admin_yet && (claim.local || claim.token_ok),
    }
}

/// At a server's start: when nobody administers the instance (and no `admin_email` says who
/// will), issues the setup token and logs it for the operator.
pub async fn offer_setup(state: &AppState) -> AppResult<()> {
    if state.config.admin_email.is_some() {
        return Ok(());
    }
    let db = &state.db;
    let admins: i64 = db_run!(db, read, |conn| users::table
        .filter(users::role.eq(Role::Admin))
        .count()
        .get_result(conn)
        .await
        .map_err(AppError::from))?;
    if admins == 0 {
        let token = state.setup.issue();
        tracing::warn!(
            setup_token = %token,
            "this instance has no admin: register from this machine, or elsewhere with this setup token, to become its admin"
        );
    }
    Ok(())
}

/// Registers and opens a session for the new account at once (one password hash, not two).
pub async fn register_and_login(
    state: &AppState,
    input: RegisterInput,
    client: ClientInfo,
) -> AppResult<TokenPair> {
    let user = register(state, input, false, &client).await?;
    open_session(state, user, client).await
}

/// Refuses an email or username already in use, with the field named.
async fn refuse_taken(state: &AppState, email: &str, username: Option<&str>) -> AppResult<()> {
    let db = &state.db;
    let (email_taken, name_taken): (i64, i64) = db_run!(db, read, |conn| {
        let e: i64 = users::table
            .filter(users::email.eq(email))
            .count()
            .get_result(conn)
            .await?;
        let n: i64 = match username {
            Some(u) => {
                users::table
                    .filter(users::username.eq(u))
                    .count()
                    .get_result(conn)
                    .await?
            }
            None => 0,
        };
        Ok::<_, AppError>((e, n))
    })?;
    if email_taken > 0 {
        return Err(
            AppError::new(ErrorCode::Conflict, "email already registered")
                .with_details(serde_json::json!({"field": "email"})),
        );
    }
    if name_taken > 0 {
        return Err(AppError::new(ErrorCode::Conflict, "username already taken")
            .with_details(serde_json::json!({"field": "username"})));
    }
    Ok(())
}

fn derive_username(email: &str) -> String {
    let local = email.split('@').next().unwrap_or("user");
    let cleaned: String = local
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        .take(48)
        .collect();
    if cleaned.chars().count() < 2 {
        format!("user-{}", random_token(6).to_lowercase())
    } else {
        cleaned
    }
}

/// Logs in by email or username and opens a session.
pub async fn login(
    state: &AppState,
    identifier: &str,
    pass: &str,
    client: ClientInfo,
) -> AppResult<TokenPair> {
    let ident = identifier.trim();
    if ident.is_empty() || pass.is_empty() {
        return Err(AppError::validation(
            "username",
            "username (or email) and password are required",
        ));
    }
    validate::max_len("username", ident, 254)?;
    validate::max_len("password", pass, 256)?;
    let lowered = ident.to_lowercase();
    let limits = &state.limits;
    limits
        .enforce(
            Rule::LoginAddress,
            Who::address(client.ip.as_deref()),
            "login attempts",
        )
        .await?;
    limits
        .enforce(Rule::LoginAccount, Who::named(&lowered), "login attempts")
        .await?;
    let db = &state.db;
    let user: Option<User> = db_run!(db, read, |conn| {
        users::table
            .filter(users::email.eq(&lowered).or(users::username.eq(ident)))
            .select(User::as_select())
            .first(conn)
            .await
            .optional()
    })?;
    let Some(user) = user else {
        password::dummy_verify(pass).await;
        return Err(AppError::invalid_credentials());
    };
    if !password::verify(pass, &user.password_hash).await? {
        return Err(AppError::invalid_credentials());
    }
    if !user.is_active {
        return Err(AppError::account_disabled());
    }
    open_session(state, user, client).await
}

/// Signs a new (access, refresh) pair for a session.
fn issue_pair(state: &AppState, user: &User, sid: &str) -> AppResult<(String, String)> {
    let cfg = &state.config;
    let access = state.jwt.issue(
        TokenKind::Access,
        user.id,
        user.role.as_str(),
        sid,
        cfg.access_token_ttl_secs,
    )?;
    let refresh = state.jwt.issue(
        TokenKind::Refresh,
        user.id,
        user.role.as_str(),
        sid,
        cfg.refresh_token_ttl_secs,
    )?;
    Ok((access, refresh))
}

async fn open_session(state: &AppState, user: User, client: ClientInfo) -> AppResult<TokenPair> {
    let cfg = &state.config;
    let sid = uuid::Uuid::new_v4().to_string();
    let (access, refresh) = issue_pair(state, &user, &sid)?;
    let ts = now();
    let session = Session {
        id: sid,
        user_id: user.id,
        refresh_hash: sha256_hex(&refresh),
        csrf_token: Some(random_token(32)),
        user_agent: client.user_agent.map(|s| s.chars().take(512).collect()),
        ip_address: client.ip,
        client: if client.client.is_empty() {
            "api".into()
        } else {
            client.client
        },
        created_at: ts,
        last_activity: ts,
        expires_at: ts + Duration::seconds(cfg.refresh_token_ttl_secs),
        revoked_at: None,
    };
    let db = &state.db;
    db_run!(db, write, |conn| {
        diesel::insert_into(sessions::table)
            .values(&session)
            .execute(conn)
            .await
    })?;
    Ok(TokenPair {
        user,
        session,
        access_token: access,
        refresh_token: refresh,
        expires_in: cfg.access_token_ttl_secs,
    })
}

/// Exchanges a refresh token for a new pair. The old token dies; presenting it again
/// revokes the whole session (reuse means it leaked).
pub async fn refresh(state: &AppState, token: &str) -> AppResult<TokenPair> {
    let claims = state.jwt.verify(token, TokenKind::Refresh)?;
    let old_hash = sha256_hex(token);
    let (session, user) = live_session(state, &claims.sid, &claims.sub).await?;
    let cfg = &state.config;
    let (access, refresh) = issue_pair(state, &user, &session.id)?;
    let new_hash = sha256_hex(&refresh);
    let ts = now();
    // Compare-and-swap on the current hash: of two concurrent refreshes with one token,
    // exactly one wins; the loser is treated as reuse.
    let swapped = db_run!(&state.db, write, |conn| {
        diesel::update(
            sessions::table
                .filter(sessions::id.eq(&session.id))
                .filter(sessions::refresh_hash.eq(&old_hash))
                .filter(sessions::revoked_at.is_null()),
        )
        .set((
            sessions::refresh_hash.eq(&new_hash),
            sessions::last_activity.eq(ts),
        ))
        .execute(conn)
        .await
    })?;
    if swapped == 0 {
        revoke_session(state, &session.id, user.id).await?;
        tracing::warn!(session = %session.id, user = user.id, "refresh token reuse: session revoked");
        return Err(AppError::new(
            ErrorCode::RefreshTokenReused,
            "refresh token was already used; the session has been revoked",
        ));
    }
    let session = Session {
        refresh_hash: new_hash,
        last_activity: ts,
        ..session
    };
    Ok(TokenPair {
        user,
        session,
        access_token: access,
        refresh_token: refresh,
        expires_in: cfg.access_token_ttl_secs,
    })
}

/// The session a token names with its user, refused unless the session belongs to the
/// token's subject, is neither revoked nor expired, and the user is active.
async fn live_session(state: &AppState, sid: &str, sub: &str) -> AppResult<(Session, User)> {
    let db = &state.db;
    // Any write (a logout, a deactivation) moves the generation on, so a cached check is
    // exactly as fresh as a database read; expiry is re-checked below on every use.
    let generation = state.db.generation();
    let cached = generation.and_then(|g| state.session_cache.get(sid, g));
    let row = match cached {
        Some(hit) => Some(hit),
        None => {
            let key = sid.to_string();
            let row = crate::db_load!(
                db,
                (Session, User),
                sessions::table
                    .inner_join(users::table)
                    .filter(sessions::id.eq(key))
                    .select((Session::as_select(), User::as_select()))
                    .limit(1)
            )?
            .into_iter()
            .next();
            if let (Some(g), Some(r)) = (generation, &row) {
                state.session_cache.put(sid.to_string(), g, r.clone());
            }
            row
        }
    };
    let Some((session, user)) = row else {
        return Err(AppError::new(
            ErrorCode::SessionRevoked,
            "session not found",
        ));
    };
    if session.user_id.to_string() != sub {
        return Err(AppError::new(ErrorCode::InvalidToken, "invalid token"));
    }
    // A deactivation also revokes the sessions; saying why is more useful than "revoked".
    if !user.is_active {
        return Err(AppError::account_disabled());
    }
    if session.revoked_at.is_some() {
        return Err(AppError::new(
            ErrorCode::SessionRevoked,
            "session was logged out",
        ));
    }
    if session.expires_at < now() {
        return Err(AppError::new(ErrorCode::TokenExpired, "session expired"));
    }
    Ok((session, user))
}

/// Runs a best-effort bookkeeping write off the request path (activity timestamps); a
/// failure is logged, never surfaced.
fn spawn_bookkeeping<F>(state: &AppState, what: &'static str, write: F)
where
    F: std::future::Future<Output = AppResult<usize>> + Send + 'static,
{
    state.background.spawn(async move {
        if let Err(e) = write.await {
            tracing::warn!(error = %e, "could not record {what}");
        }
    });
}

/// Marks a session revoked and tells open subscriptions to close.
pub async fn revoke_session(state: &AppState, session_id: &str, user_id: i64) -> AppResult<()> {
    let ts = now();
    let db = &state.db;
    db_run!(db, write, |conn| {
        diesel::update(
            sessions::table
                .filter(sessions::id.eq(session_id))
                .filter(sessions::revoked_at.is_null()),
        )
        .set(sessions::revoked_at.eq(Some(ts)))
        .execute(conn)
        .await
    })?;
    state.events.publish(Event::SessionRevoked {
        user_id,
        session_id: session_id.to_string(),
    });
    Ok(())
}

/// Logs out the caller's session (API keys have none: revoke the key instead).
pub async fn logout(state: &AppState, caller: &Caller) -> AppResult<()> {
    if let Some(sid) = &caller.session_id {
        revoke_session(state, sid, caller.user_id()).await?;
    }
    Ok(())
}

/// Logs out by refresh token, for clients that only hold that (seed 000 logout semantics).
/// Only the session's current refresh token logs it out; an already rotated one is refused
/// as on refresh (it leaked), and its session is revoked all the same.
pub async fn logout_refresh_token(state: &AppState, token: &str) -> AppResult<()> {
    let claims = state.jwt.verify(token, TokenKind::Refresh)?;
    let user_id: i64 = claims
        .sub
        .parse()
        .map_err(|_| AppError::new(ErrorCode::InvalidToken, "invalid token"))?;
    let session = get_session_any(state, &claims.sid)
        .await
        .map_err(|_| AppError::new(ErrorCode::SessionRevoked, "session not found"))?;
    if session.user_id != user_id {
        return Err(AppError::new(ErrorCode::InvalidToken, "invalid token"));
    }
    if session.revoked_at.is_some() {
        return Ok(());
    }
    revoke_session(state, &claims.sid, user_id).await?;
    if !secure_eq(&session.refresh_hash, &sha256_hex(token)) {
        tracing::warn!(session = %session.id, user = user_id, "logout with a rotated refresh token: session revoked");
        return Err(AppError::new(
            ErrorCode::RefreshTokenReused,
            "refresh token was already used; the session has been revoked",
        ));
    }
    Ok(())
}

/// Resolves any credential into a caller, or the reason it is refused.
pub async fn authenticate(state: &AppState, credential: Credential) -> AppResult<Caller> {
    match credential {
        Credential::Bearer(t) if t.starts_with(API_KEY_PREFIX) => {
            authenticate_api_key(state, &t).await
        }
        Credential::Bearer(t) => Ok(authenticate_session(state, &t, AuthMethod::Bearer).await?.0),
        Credential::ApiKey(k) => authenticate_api_key(state, &k).await,
        Credential::Cookie {
            token,
            csrf,
            state_changing,
        } => {
            let (caller, session) = authenticate_session(state, &token, AuthMethod::Cookie).await?;
            if state_changing {
                let expected = session.csrf_token.unwrap_or_default();
                let ok = csrf
                    .as_deref()
                    .is_some_and(|c| !expected.is_empty() && secure_eq(c, &expected));
                if !ok {
                    return Err(AppError::new(
                        ErrorCode::CsrfInvalid,
                        "missing or invalid X-CSRF-Token",
                    ));
                }
            }
            Ok(caller)
        }
    }
}

async fn authenticate_session(
    state: &AppState,
    token: &str,
    method: AuthMethod,
) -> AppResult<(Caller, Session)> {
    let claims = state.jwt.verify(token, TokenKind::Access)?;
    let (session, user) = live_session(state, &claims.sid, &claims.sub).await?;
    touch_session(state, &session);
    let permissions = session_permissions(&user);
    let caller = Caller {
        user,
        session_id: Some(session.id.clone()),
        method,
        permissions,
        api_key_id: None,
        api_key_budget: None,
        expires_at: chrono::DateTime::from_timestamp(claims.exp, 0).map(|t| t.naive_utc()),
    };
    Ok((caller, session))
}

fn session_permissions(user: &User) -> Vec<Permission> {
    if user.is_admin() {
        vec![Permission::Read, Permission::Write, Permission::Admin]
    } else {
        vec![Permission::Read, Permission::Write]
    }
}

/// Records activity at most once a minute per session, off the request path.
fn touch_session(state: &AppState, session: &Session) {
    let ts = now();
    if ts - session.last_activity < Duration::seconds(60) {
        return;
    }
    let (db, id) = (state.db.clone(), session.id.clone());
    spawn_bookkeeping(state, "session activity", async move {
        db_run!(&db, bookkeeping, |conn| {
            diesel::update(sessions::table.filter(sessions::id.eq(&id)))
                .set(sessions::last_activity.eq(ts))
                .execute(conn)
                .await
                .map_err(AppError::from)
        })
    });
}

async fn authenticate_api_key(state: &AppState, secret: &str) -> AppResult<Caller> {
    if !secret.starts_with(API_KEY_PREFIX) || secret.len() > 128 {
        return Err(AppError::new(ErrorCode::InvalidToken, "invalid API key"));
    }
    let hash = sha256_hex(secret);
    let db = &state.db;
    let row: Option<(ApiKey, User)> = db_run!(db, read, |conn| {
        api_keys::table
            .inner_join(users::table)
            .filter(api_keys::key_hash.eq(&hash))
            .select((ApiKey::as_select(), User::as_select()))
            .first(conn)
            .await
            .optional()
    })?;
    let Some((key, user)) = row else {
        return Err(AppError::new(ErrorCode::InvalidToken, "invalid API key"));
    };
    let ts = now();
    check_live_key(&key, &user)?;
    if key
        .last_used_at
        .is_none_or(|t| ts - t >= Duration::seconds(60))
    {
        let (db, id) = (state.db.clone(), key.id);
        spawn_bookkeeping(state, "API key use", async move {
            db_run!(&db, bookkeeping, |conn| {
                diesel::update(api_keys::table.filter(api_keys::id.eq(id)))
                    .set(api_keys::last_used_at.eq(Some(ts)))
                    .execute(conn)
                    .await
                    .map_err(AppError::from)
            })
        });
    }
    let permissions = super::api_keys::parse_permissions(&key.permissions);
    Ok(Caller {
        user,
        session_id: None,
        method: AuthMethod::ApiKey,
        permissions,
        api_key_id: Some(key.id),
        api_key_budget: key_budget(&key),
        expires_at: key.expires_at,
    })
}

/// Refuses a revoked or expired key, or one whose owner is disabled.
fn check_live_key(key: &ApiKey, user: &User) -> AppResult<()> {
    if key.revoked_at.is_some() || key.expires_at.is_some_and(|e| e <= now()) {
        return Err(AppError::new(
            ErrorCode::ApiKeyRevoked,
            "API key revoked or expired",
        ));
    }
    if !user.is_active {
        return Err(AppError::account_disabled());
    }
    Ok(())
}

/// Checks an authenticated caller again, as a long-lived connection does before each
/// operation: the session or key must still be live, the account active and the credential
/// unexpired; the answer carries the user's current role and rights. On SQLite a session
/// check is served from the session cache (any write invalidates it), so this is cheap.
pub async fn recheck(state: &AppState, caller: &Caller) -> AppResult<Caller> {
    if caller.expires_at.is_some_and(|t| t <= now()) {
        return Err(AppError::new(ErrorCode::TokenExpired, "credential expired"));
    }
    if let Some(sid) = &caller.session_id {
        let (_, user) = live_session(state, sid, &caller.user_id().to_string()).await?;
        let permissions = session_permissions(&user);
        return Ok(Caller {
            user,
            permissions,
            ..caller.clone()
        });
    }
    let Some(key_id) = caller.api_key_id else {
        return Err(AppError::unauthenticated());
    };
    let db = &state.db;
    let row: Option<(ApiKey, User)> = db_run!(db, read, |conn| {
        api_keys::table
            .inner_join(users::table)
            .filter(api_keys::id.eq(key_id))
            .select((ApiKey::as_select(), User::as_select()))
            .first(conn)
            .await
            .optional()
    })?;
    let Some((key, user)) = row else {
        return Err(AppError::new(ErrorCode::ApiKeyRevoked, "API key revoked"));
    };
    check_live_key(&key, &user)?;
    Ok(Caller {
        user,
        permissions: super::api_keys::parse_permissions(&key.permissions),
        ..caller.clone()
    })
}

/// The identity background work acts as for `user_id`: the account while it is active,
/// with the rights of API key `api_key_id` while that key is live (a session's rights
/// otherwise). Checked before every run of a job.
pub async fn acting_for(
    state: &AppState,
    user_id: i64,
    api_key_id: Option<i64>,
) -> AppResult<Caller> {
    let db = &state.db;
    let user: Option<User> = db_run!(db, read, |conn| users::table
        .find(user_id)
        .select(User::as_select())
        .first(conn)
        .await
        .optional())?;
    let user = user.ok_or_else(AppError::account_disabled)?;
    if !user.is_active {
        return Err(AppError::account_disabled());
    }
    let (permissions, method, expires_at, api_key_budget) = match api_key_id {
        None => (session_permissions(&user), AuthMethod::Bearer, None, None),
        Some(key_id) => {
            let key: Option<ApiKey> = db_run!(db, read, |conn| api_keys::table
                .find(key_id)
                .select(ApiKey::as_select())
                .first(conn)
                .await
                .optional())?;
            let key =
                key.ok_or_else(|| AppError::new(ErrorCode::ApiKeyRevoked, "API key revoked"))?;
            check_live_key(&key, &user)?;
            (
                super::api_keys::parse_permissions(&key.permissions),
                AuthMethod::ApiKey,
                key.expires_at,
                key_budget(&key),
            )
        }
    };
    Ok(Caller {
        user,
        session_id: None,
        method,
        permissions,
        api_key_id,
        api_key_budget,
        expires_at,
    })
}

/// A key's own rate limit, requests per minute.
fn key_budget(key: &ApiKey) -> Option<u32> {
    key.rate_limit
        .and_then(|r| u32::try_from(r).ok())
        .filter(|r| *r > 0)
}

/// The caller's sessions, newest first.
pub async fn list_sessions(state: &AppState, caller: &Caller) -> AppResult<Vec<Session>> {
    let uid = caller.user_id();
    let db = &state.db;
    db_run!(db, read, |conn| {
        sessions::table
            .filter(sessions::user_id.eq(uid))
            .order(sessions::created_at.desc())
            .limit(200)
            .select(Session::as_select())
            .load(conn)
            .await
            .map_err(AppError::from)
    })
}

/// One session of the caller (404 for anyone else's).
pub async fn get_session(state: &AppState, caller: &Caller, id: &str) -> AppResult<Session> {
    let uid = caller.user_id();
    let db = &state.db;
    let s: Option<Session> = db_run!(db, read, |conn| {
        sessions::table
            .filter(sessions::id.eq(id))
            .filter(sessions::user_id.eq(uid))
            .select(Session::as_select())
            .first(conn)
            .await
            .optional()
    })?;
    s.ok_or_else(|| AppError::not_found("session"))
}

/// Terminates one of the caller's sessions (admins: anyone's).
pub async fn terminate_session(state: &AppState, caller: &Caller, id: &str) -> AppResult<Session> {
    caller.require_write()?;
    let db = &state.db;
    let s: Option<Session> = db_run!(db, read, |conn| {
        sessions::table
            .filter(sessions::id.eq(id))
            .select(Session::as_select())
            .first(conn)
            .await
            .optional()
    })?;
    let s = s
        .filter(|s| s.user_id == caller.user_id() || caller.is_admin())
        .ok_or_else(|| AppError::not_found("session"))?;
    revoke_session(state, &s.id, s.user_id).await?;
    get_session_any(state, &s.id).await
}

async fn get_session_any(state: &AppState, id: &str) -> AppResult<Session> {
    let db = &state.db;
    db_run!(db, read, |conn| {
        sessions::table
            .filter(sessions::id.eq(id))
            .select(Session::as_select())
            .first(conn)
            .await
            .map_err(AppError::from)
    })
}

/// Whether a session is usable now.
pub fn session_active(s: &Session) -> bool {
    s.revoked_at.is_none() && s.expires_at > now()
}

//! API keys: create (the secret is returned once), list, revoke.

use crate::auth::secrets::{new_api_key, sha256_hex};
use crate::auth::{Caller, Permission};
use crate::db::json::JsonText;
use crate::db::models::{ApiKey, NewApiKey};
use crate::db::schema::api_keys;
use crate::db::{locks, BackendSql};
use crate::db_run;
use crate::error::{AppError, AppResult};
use crate::events::Event;
use crate::service::{now, validate};
use crate::state::AppState;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// Most live keys one user may hold.
pub const MAX_KEYS_PER_USER: i64 = 100;

/// What a caller asks for.
#[derive(Debug, Clone, Default)]
pub struct NewKeyInput {
    /// Label.
    pub name: String,
    /// Wire names; default `["read", "write"]`.
    pub permissions: Option<Vec<String>>,
    /// Informational rate limit (requests per minute).
    pub rate_limit: Option<i64>,
    /// Expiry; must be in the future.
    pub expires_at: Option<NaiveDateTime>,
}

/// Parses a stored permission list; unknown names are ignored.
pub fn parse_permissions(names: &JsonText<Vec<String>>) -> Vec<Permission> {
    names
        .0
        .iter()
        .filter_map(|p| Permission::parse(p))
        .collect()
}

/// Creates a key and returns it with its secret (never retrievable again).
pub async fn create(
    state: &AppState,
    caller: &Caller,
    input: NewKeyInput,
) -> AppResult<(ApiKey, String)> {
    caller.require_write()?;
    let name = validate::required("name", &input.name, validate::MAX_NAME_CHARS)?;
    let wanted = input
        .permissions
        .unwrap_or_else(|| vec!["read".into(), "write".into()]);
    if wanted.is_empty() || wanted.len() > 3 {
        return Err(AppError::validation(
            "permissions",
            "permissions must list read, write and/or admin",
        ));
    }
    let mut perms = Vec::new();
    for p in &wanted {
        let parsed = Permission::parse(p).ok_or_else(|| {
            AppError::validation("permissions", format!("unknown permission {p:?}"))
        })?;
        if parsed == Permission::Admin && !caller.is_admin() {
            return Err(AppError::forbidden("only admins can create admin keys"));
        }
        // A key never gets more than the credential that created it.
        if !caller.permissions.contains(&parsed) {
            return Err(AppError::forbidden(format!(
                "this credential cannot grant {p:?}"
            )));
        }
        if !perms.contains(&parsed) {
            perms.push(parsed);
        }
    }
    let rate_limit = match input.rate_limit {
        Some(r) if !(1..=1_000_000).contains(&r) => {
            return Err(AppError::validation(
                "rate_limit",
                "rate_limit must be between 1 and 1000000",
            ))
        }
        r => r.map(|r| r as i32),
    };
    let ts = now();
    if input.expires_at.is_some_and(|e| e <= ts) {
        return Err(AppError::validation(
            "expires_at",
            "expires_at must be in the future",
        ));
    }
    let secret = new_api_key();
    let hash = sha256_hex(&secret);
    let prefix: String = secret.chars().take(14).collect();
    let perms_json = JsonText(perms.iter().map(|p| p.as_str().to_string()).collect());
    let uid = caller.user_id();
    let db = &state.db;
    let key = db_run!(db, write, |conn| {
        conn.lock_key(locks::per_user(locks::API_KEYS, uid)).await?;
        let live: i64 = api_keys::table
            .filter(api_keys::user_id.eq(uid))
            .filter(api_keys::revoked_at.is_null())
            .count()
            .get_result(conn)
            .await?;
        if live >= MAX_KEYS_PER_USER {
            return Err(AppError::new(
                crate::error::ErrorCode::QuotaExceeded,
                "too many API keys",
            ));
        }
        diesel::insert_into(api_keys::table)
            .values(NewApiKey {
                user_id: uid,
                name: &name,
                prefix: &prefix,
                key_hash: &hash,
                permissions: perms_json.clone(),
                rate_limit,
                created_at: ts,
                expires_at: input.expires_at,
            })
            .returning(ApiKey::as_returning())
            .get_result(conn)
            .await
            .map_err(AppError::from)
    })?;
    Ok((key, secret))
}

/// The caller's keys (without secrets), newest first.
pub async fn list(state: &AppState, caller: &Caller) -> AppResult<Vec<ApiKey>> {
    let uid = caller.user_id();
    let db = &state.db;
    db_run!(db, read, |conn| {
        api_keys::table
            .filter(api_keys::user_id.eq(uid))
            .order(api_keys::id.desc())
            .select(ApiKey::as_select())
            .load(conn)
            .await
            .map_err(AppError::from)
    })
}

/// Revokes one of the caller's keys (404 for anyone else's).
pub async fn revoke(state: &AppState, caller: &Caller, id: i64) -> AppResult<ApiKey> {
    caller.require_write()?;
    let uid = caller.user_id();
    let ts = now();
    let db = &state.db;
    let key = db_run!(db, write, |conn| {
        let key: Option<ApiKey> = api_keys::table
            .filter(api_keys::id.eq(id))
            .filter(api_keys::user_id.eq(uid))
            .select(ApiKey::as_select())
            .first(conn)
            .await
            .optional()?;
        let key = key.ok_or_else(|| AppError::not_found("API key"))?;
        if key.revoked_at.is_some() {
            return Ok(key);
        }
        diesel::update(api_keys::table.filter(api_keys::id.eq(id)))
            .set(api_keys::revoked_at.eq(Some(ts)))
            .returning(ApiKey::as_returning())
            .get_result(conn)
            .await
            .map_err(AppError::from)
    })?;
    state.events.publish(Event::ApiKeyRevoked {
        user_id: uid,
        key_id: id,
    });
    Ok(key)
}

/// A key's id and own budget (requests per minute) by the hash of its secret, for rate
/// limits: whether the key is still live is the authentication's business, not this one's.
pub async fn budget_by_hash(state: &AppState, hash: &str) -> AppResult<Option<(i64, Option<u32>)>> {
    let db = &state.db;
    let row: Option<(i64, Option<i32>)> = db_run!(db, read, |conn| {
        api_keys::table
            .filter(api_keys::key_hash.eq(hash))
            .select((api_keys::id, api_keys::rate_limit))
            .first(conn)
            .await
            .optional()
            .map_err(AppError::from)
    })?;
    Ok(row.map(|(id, rate)| {
        (
            id,
            rate.and_then(|r| u32::try_from(r).ok()).filter(|r| *r > 0),
        )
    }))
}

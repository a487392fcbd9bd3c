//! Profiles and admin user management.

use crate::auth::Caller;
use crate::db::enums::Role;
use crate::db::models::User;
use crate::db::schema::{sessions, users};
use crate::db_run;
use crate::error::{AppError, AppResult};
use crate::events::Event;
use crate::service::{now, validate};
use crate::state::AppState;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// Profile fields a user may change on themselves.
#[derive(Debug, Clone, Default)]
pub struct ProfileChanges {
    /// Display name.
    pub name: Option<String>,
    /// Picture URL (`Some(None)` clears it).
    pub avatar_url: Option<Option<String>>,
}

/// Fields an admin may change on anyone.
#[derive(Debug, Clone, Default)]
pub struct AdminChanges {
    /// `admin` or `user`.
    pub role: Option<String>,
    /// Deactivating revokes every session.
    pub is_active: Option<bool>,
}

/// Loads users by id (for DataLoaders and joins).
pub(crate) async fn by_ids(state: &AppState, ids: &[i64]) -> AppResult<Vec<User>> {
    let ids = ids.to_vec();
    crate::db_load!(
        &state.db,
        User,
        users::table
            .filter(users::id.eq_any(ids))
            .select(User::as_select())
    )
}

/// The account a CLI command acts as: the active user with this username or email, or the
/// first active admin when none is named.
pub async fn operator(state: &AppState, login: Option<&str>) -> AppResult<Caller> {
    let db = &state.db;
    let login = login.map(str::to_string);
    let found: Option<User> = db_run!(db, read, |conn| {
        let mut q = users::table
            .filter(users::is_active.eq(true))
            .order(users::id.asc())
            .select(User::as_select())
            .into_boxed();
        q = match &login {
            Some(l) => q.filter(users::username.eq(l.clone()).or(users::email.eq(l.clone()))),
            None => q.filter(users::role.eq(Role::Admin)),
        };
        q.first(conn).await.optional().map_err(AppError::from)
    })?;
    let user = found.ok_or_else(|| match login {
        Some(l) => AppError::not_found(&format!("active user {l:?}")),
        None => AppError::new(
            crate::error::ErrorCode::NotFound,
            "no active admin: create one with `hearth user create --admin`",
        ),
    })?;
    crate::service::auth::acting_for(state, user.id, None).await
}

/// Updates the caller's own profile.
pub async fn update_me(
    state: &AppState,
    caller: &Caller,
    changes: ProfileChanges,
) -> AppResult<User> {
    caller.require_write()?;
    let name = changes
        .name
        .as_deref()
        .map(|n| validate::required("name", n, validate::MAX_NAME_CHARS))
        .transpose()?;
    if let Some(Some(url)) = &changes.avatar_url {
        validate::max_len("avatar_url", url, validate::MAX_URL_CHARS)?;
    }
    let uid = caller.user_id();
    let ts = now();
    let db = &state.db;
    db_run!(db, write, |conn| {
        if let Some(n) = &name {
            diesel::update(users::table.find(uid))
                .set(users::name.eq(n))
                .execute(conn)
                .await?;
        }
        if let Some(a) = &changes.avatar_url {
            diesel::update(users::table.find(uid))
                .set(users::avatar_url.eq(a))
                .execute(conn)
                .await?;
        }
        diesel::update(users::table.find(uid))
            .set(users::updated_at.eq(ts))
            .returning(User::as_returning())
            .get_result(conn)
            .await
            .map_err(AppError::from)
    })
}

/// Every user (admin), by id, paged.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    limit: i64,
    offset: i64,
) -> AppResult<(Vec<User>, i64)> {
    caller.require_admin()?;
    let db = &state.db;
    db_run!(db, read, |conn| {
        let total: i64 = users::table.count().get_result(conn).await?;
        let rows = users::table
            .order(users::id.asc())
            .limit(limit)
            .offset(offset)
            .select(User::as_select())
            .load(conn)
            .await?;
        Ok((rows, total))
    })
}

/// Changes role or activity of a user (admin). Deactivation revokes their sessions.
pub async fn admin_update(
    state: &AppState,
    caller: &Caller,
    id: i64,
    changes: AdminChanges,
) -> AppResult<User> {
    caller.require_admin()?;
    let role = match changes.role.as_deref() {
        Some(r) => Some(
            Role::parse(r)
                .ok_or_else(|| AppError::validation("role", "role must be admin or user"))?,
        ),
        None => None,
    };
    if id == caller.user_id() && (changes.is_active == Some(false) || role == Some(Role::User)) {
        return Err(AppError::forbidden(
            "admins cannot demote or deactivate themselves",
        ));
    }
    let ts = now();
    let db = &state.db;
    let user = db_run!(db, write, |conn| {
        let exists: i64 = users::table
            .filter(users::id.eq(id))
            .count()
            .get_result(conn)
            .await?;
        if exists == 0 {
            return Err(AppError::not_found("user"));
        }
        if let Some(r) = role {
            diesel::update(users::table.find(id))
                .set(users::role.eq(r))
                .execute(conn)
                .await?;
        }
        if let Some(a) = changes.is_active {
            diesel::update(users::table.find(id))
                .set(users::is_active.eq(a))
                .execute(conn)
                .await?;
            if !a {
                diesel::update(
                    sessions::table
                        .filter(sessions::user_id.eq(id))
                        .filter(sessions::revoked_at.is_null()),
                )
                .set(sessions::revoked_at.eq(Some(ts)))
                .execute(conn)
                .await?;
            }
        }
        diesel::update(users::table.find(id))
            .set(users::updated_at.eq(ts))
            .returning(User::as_returning())
            .get_result(conn)
            .await
            .map_err(AppError::from)
    })?;
    if changes.is_active == Some(false) {
        state.events.publish(Event::UserDisabled { user_id: id });
    } else if changes.role.is_some() {
        state.events.publish(Event::UserChanged { user_id: id });
    }
    Ok(user)
}

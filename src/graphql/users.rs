//! The caller's profile and admin user management over GraphQL.

use super::types::UserObject;
use super::{parse_id, require_caller};
use crate::service::auth::{self, RegisterInput};
use crate::service::users::{self, AdminChanges, ProfileChanges};
use crate::service::validate;
use crate::state::AppState;
use async_graphql::{Context, InputObject, MaybeUndefined, Object, Result, SimpleObject, ID};

/// Changes to one's own profile.
#[derive(InputObject)]
pub struct UpdateProfileInput {
    /// Display name.
    pub name: Option<String>,
    /// Picture URL; null clears it.
    pub avatar_url: MaybeUndefined<String>,
}

/// An account created by an admin.
#[derive(InputObject)]
pub struct CreateUserInput {
    /// Unique email.
    pub email: String,
    /// Unique username.
    pub username: Option<String>,
    /// Initial password.
    pub password: String,
    /// Display name.
    pub name: Option<String>,
    /// Give the admin role.
    #[graphql(default)]
    pub admin: bool,
}

/// Admin changes to an account.
#[derive(InputObject)]
pub struct AdminUpdateUserInput {
    /// `admin` or `user`.
    pub role: Option<String>,
    /// Deactivating revokes every session of the user.
    pub is_active: Option<bool>,
}

/// A page of users.
#[derive(SimpleObject)]
pub struct UserList {
    /// The page.
    pub users: Vec<UserObject>,
    /// Count of all users.
    pub total: i64,
}

/// User queries.
#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// The authenticated user.
    async fn me(&self, ctx: &Context<'_>) -> Result<UserObject> {
        Ok(UserObject(require_caller(ctx)?.user.clone()))
    }

    /// Any user by id (admin).
    async fn user(&self, ctx: &Context<'_>, id: ID) -> Result<Option<UserObject>> {
        let caller = require_caller(ctx)?;
        caller.require_admin()?;
        let rows = users::by_ids(ctx.data::<AppState>()?, &[parse_id(&id)?]).await?;
        Ok(rows.into_iter().next().map(UserObject))
    }

    /// All users, by id (admin).
    async fn users(
        &self,
        ctx: &Context<'_>,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> Result<UserList> {
        let caller = require_caller(ctx)?;
        let (rows, total) = users::list(
            ctx.data::<AppState>()?,
            caller,
            validate::limit(limit, 20)?,
            validate::offset(offset)?,
        )
        .await?;
        Ok(UserList {
            users: rows.into_iter().map(UserObject).collect(),
            total,
        })
    }
}

/// User mutations.
#[derive(Default)]
pub struct UserMutation;

#[Object]
impl UserMutation {
    /// Updates the caller's profile.
    async fn update_me(&self, ctx: &Context<'_>, input: UpdateProfileInput) -> Result<UserObject> {
        let caller = require_caller(ctx)?;
        let avatar_url = match input.avatar_url {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(v) => Some(Some(v)),
        };
        let user = users::update_me(
            ctx.data::<AppState>()?,
            caller,
            ProfileChanges {
                name: input.name,
                avatar_url,
            },
        )
        .await?;
        Ok(UserObject(user))
    }

    /// Creates an account (admin).
    async fn create_user(&self, ctx: &Context<'_>, input: CreateUserInput) -> Result<UserObject> {
        let caller = require_caller(ctx)?;
        caller.require_admin()?;
        let user = auth::register(
            ctx.data::<AppState>()?,
            RegisterInput {
                email: input.email,
                password: input.password,
                username: input.username,
                name: input.name,
                admin: input.admin,
                setup_token: None,
            },
            true,
            &Default::default(),
        )
        .await?;
        Ok(UserObject(user))
    }

    /// Changes role or activity of an account (admin).
    async fn update_user(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: AdminUpdateUserInput,
    ) -> Result<UserObject> {
        let caller = require_caller(ctx)?;
        let user = users::admin_update(
            ctx.data::<AppState>()?,
            caller,
            parse_id(&id)?,
            AdminChanges {
                role: input.role,
                is_active: input.is_active,
            },
        )
        .await?;
        Ok(UserObject(user))
    }
}

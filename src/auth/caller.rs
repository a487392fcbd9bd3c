//! The authenticated identity a service acts for, and the permission checks on it.

use crate::db::models::User;
use crate::error::{AppError, AppResult, ErrorCode};

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// `Authorization: Bearer <jwt>` (or `?token=` / `connection_init` on WebSockets).
    Bearer,
    /// `X-API-Key` or `Authorization: Bearer sk-…`.
    ApiKey,
    /// `access_token` cookie (state changes also need `X-CSRF-Token`).
    Cookie,
}

/// What an API key may do; sessions get all three (admin only for admins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Queries.
    Read,
    /// Mutations on the caller's own objects.
    Write,
    /// Admin operations (also needs the admin role).
    Admin,
}

impl Permission {
    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user, as loaded for this request (active, checked).
    pub user: User,
    /// The login session, for session credentials; `None` for API keys.
    pub session_id: Option<String>,
    /// Which credential was used.
    pub method: AuthMethod,
    /// Granted permissions.
    pub permissions: Vec<Permission>,
}

impl Caller {
    /// The user's id.
    pub fn user_id(&self) -> i64 {
        self.user.id
    }

    /// Whether the caller acts as an admin: admin role, and the credential grants admin.
    pub fn is_admin(&self) -> bool {
        self.user.is_admin() && self.permissions.contains(&Permission::Admin)
    }

    /// Refuses read-only credentials on state changes.
    pub fn require_write(&self) -> AppResult<()> {
        if self.permissions.contains(&Permission::Write)
            || self.permissions.contains(&Permission::Admin)
        {
            Ok(())
        } else {
            Err(AppError::new(
                ErrorCode::InsufficientPermissions,
                "this API key is read-only",
            ))
        }
    }

    /// Refuses non-admins.
    pub fn require_admin(&self) -> AppResult<()> {
        if self.is_admin() {
            Ok(())
        } else if self.user.is_admin() {
            Err(AppError::new(
                ErrorCode::InsufficientPermissions,
                "this API key lacks the admin permission",
            ))
        } else {
            Err(AppError::forbidden("admin role required"))
        }
    }
}

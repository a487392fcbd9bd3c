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
    /// The API key, for key credentials: its revocation ends what it opened.
    pub api_key_id: Option<i64>,
    /// The API key's own budget in requests per minute (seed 002 `rate_limit`), if set.
    pub api_key_budget: Option<u32>,
    /// When the credential stops being valid (the access token's `exp`, the key's expiry):
    /// long-lived connections end then.
    pub expires_at: Option<chrono::NaiveDateTime>,
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

    /// Whether an event on the bus means this caller may have lost (some of) its rights, so
    /// a long-lived connection must check it again: its session, key or account changed.
    pub fn concerned_by(&self, event: &crate::events::Event) -> bool {
        use crate::events::Event;
        match event {
            Event::SessionRevoked { session_id, .. } => {
                self.session_id.as_deref() == Some(session_id.as_str())
            }
            Event::ApiKeyRevoked { key_id, .. } => self.api_key_id == Some(*key_id),
            Event::UserDisabled { user_id } | Event::UserChanged { user_id } => {
                *user_id == self.user_id()
            }
            // A restore ended every session and may have replaced every account.
            Event::Restored => true,
            _ => false,
        }
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

//! Shared application state: configuration, database, keys, event bus. Cheap to clone.

use crate::auth::tokens::JwtKeys;
use crate::config::Config;
use crate::db::Db;
use crate::events::EventBus;
use std::sync::Arc;
use std::time::Instant;

/// Everything a request handler or service needs.
#[derive(Clone)]
pub struct AppState {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// Pooled database (either backend).
    pub db: Db,
    /// JWT signing keys.
    pub jwt: Arc<JwtKeys>,
    /// In-process events for subscriptions.
    pub events: EventBus,
    /// Login attempts per client address.
    pub login_limiter: Arc<crate::auth::rate_limit::RateLimiter>,
    /// Server start, for uptime.
    pub started_at: Instant,
}

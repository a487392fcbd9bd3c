//! Rate-limit budgets over GraphQL: every door's budget as it stands, and the admin's
//! run-time changes (`service::rate_limits`).

use super::require_caller;
use crate::service::rate_limits::{self, Setting};
use crate::state::AppState;
use async_graphql::{Context, Object, Result, SimpleObject};

/// One rate-limit budget.
#[derive(SimpleObject)]
pub struct RateLimit {
    /// Its key in `[rate_limits]`.
    name: &'static str,
    /// The budget in force, `"<requests>/<period>"`; `"0"` when off.
    budget: String,
    /// Requests in a full budget (0: off).
    requests: u32,
    /// Seconds a full budget takes to refill.
    period_seconds: u64,
    /// The budget `[rate_limits]` in hearth.toml sets.
    configured: String,
    /// Set at run time by an admin (over the configured one).
    overridden: bool,
    /// Counted per client address (else per user or API key).
    per_address: bool,
    /// The doors that spend it.
    doors: &'static str,
}

impl From<Setting> for RateLimit {
    fn from(s: Setting) -> Self {
        Self {
            name: s.rule.name(),
            budget: s.budget.to_string(),
            requests: if s.budget.is_on() {
                s.budget.requests
            } else {
                0
            },
            period_seconds: s.budget.per_secs,
            configured: s.configured.to_string(),
            overridden: s.overridden,
            per_address: s.per_address,
            doors: s.doors,
        }
    }
}

/// Rate-limit queries.
#[derive(Default)]
pub struct RateLimitQuery;

#[Object]
impl RateLimitQuery {
    /// The rate-limit budgets of every door (admins).
    async fn rate_limits(&self, ctx: &Context<'_>) -> Result<Vec<RateLimit>> {
        let caller = require_caller(ctx)?;
        let state = ctx.data::<AppState>()?;
        Ok(rate_limits::list(state, caller)?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

/// Rate-limit changes.
#[derive(Default)]
pub struct RateLimitMutation;

#[Object]
impl RateLimitMutation {
    /// Sets the budget `name` to `budget` (`"30/min"`, `"5/5min"`, `"10/hour"`; `"0"`: off)
    /// on every process serving this database, until reset (admins). It is kept in the
    /// database (and in backups) and wins over hearth.toml.
    async fn set_rate_limit(
        &self,
        ctx: &Context<'_>,
        name: String,
        budget: String,
    ) -> Result<RateLimit> {
        let caller = require_caller(ctx)?;
        let state = ctx.data::<AppState>()?;
        Ok(rate_limits::set(state, caller, &name, Some(&budget))
            .await?
            .into())
    }

    /// Returns the budget `name` to the one hearth.toml configures (admins).
    async fn reset_rate_limit(&self, ctx: &Context<'_>, name: String) -> Result<RateLimit> {
        let caller = require_caller(ctx)?;
        let state = ctx.data::<AppState>()?;
        Ok(rate_limits::set(state, caller, &name, None).await?.into())
    }
}

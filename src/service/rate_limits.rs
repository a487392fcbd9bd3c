//! Rate-limit budgets set at run time by an admin. Each is a `settings` row
//! (`rate_limits.<name>` = `"<requests>/<period>"`) over the budget `[rate_limits]` configures;
//! removing the row returns to the configured one. The rows are the truth: every process
//! reads them at start and again when the bus says they changed (or a backup was restored),
//! so on PostgreSQL every process applies an admin's change within one bus delivery.

use crate::auth::Caller;
use crate::config::Budget;
use crate::db::schema::settings;
use crate::db_run;
use crate::error::{AppError, AppResult};
use crate::events::Event;
use crate::limits::Rule;
use crate::service::now;
use crate::state::AppState;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use std::collections::HashMap;

/// The prefix of the `settings` keys holding run-time budgets.
const PREFIX: &str = "rate_limits.";

/// The longest name or budget text taken (`"100000/5min"` is 11).
const MAX_TEXT: usize = 64;

/// One budget as it stands.
#[derive(Debug, Clone)]
pub struct Setting {
    /// Its rule.
    pub rule: Rule,
    /// The budget in force.
    pub budget: Budget,
    /// The budget `[rate_limits]` configures (in force when none is set at run time).
    pub configured: Budget,
    /// Set at run time.
    pub overridden: bool,
    /// Counted per client address (else per user or API key).
    pub per_address: bool,
    /// The doors that spend it.
    pub doors: &'static str,
}

/// Every configurable budget, in the order of the door table (admins).
pub fn list(state: &AppState, caller: &Caller) -> AppResult<Vec<Setting>> {
    caller.require_admin()?;
    Ok(Rule::CONFIGURED
        .iter()
        .map(|(rule, doors, per_address)| setting(state, *rule, doors, *per_address))
        .collect())
}

fn setting(state: &AppState, rule: Rule, doors: &'static str, per_address: bool) -> Setting {
    Setting {
        rule,
        budget: state.limits.budget(rule),
        configured: rule.budget(&state.config),
        overridden: state.limits.is_set(rule),
        per_address,
        doors,
    }
}

/// Sets the budget named `name` (`"<requests>/<period>"`, `"0"`: off), or with `None` returns
/// it to the configured one (admins). Applied here at once and by other processes when the
/// bus tells them.
pub async fn set(
    state: &AppState,
    caller: &Caller,
    name: &str,
    budget: Option<&str>,
) -> AppResult<Setting> {
    caller.require_admin()?;
    for (field, text) in [("name", Some(name)), ("budget", budget)] {
        if text.is_some_and(|t| t.len() > MAX_TEXT) {
            return Err(AppError::validation(
                field,
                format!("{field} is longer than {MAX_TEXT} characters"),
            ));
        }
    }
    let Some(&(rule, doors, per_address)) = Rule::CONFIGURED.iter().find(|c| c.0.name() == name)
    else {
        let names: Vec<&str> = Rule::CONFIGURED.iter().map(|c| c.0.name()).collect();
        return Err(AppError::validation(
            "name",
            format!("no budget is named `{name}` (one of: {})", names.join(", ")),
        ));
    };
    let key = format!("{PREFIX}{name}");
    let db = &state.db;
    match budget {
        Some(text) => {
            let parsed = Budget::parse(text).map_err(|e| AppError::validation("budget", e))?;
            let (value, ts) = (parsed.to_string(), now());
            db_run!(db, write, |conn| diesel::insert_into(settings::table)
                .values((
                    settings::key.eq(&key),
                    settings::value.eq(&value),
                    settings::updated_at.eq(ts),
                ))
                .on_conflict(settings::key)
                .do_update()
                .set((settings::value.eq(&value), settings::updated_at.eq(ts)))
                .execute(conn)
                .await
                .map_err(AppError::from))?;
        }
        None => {
            db_run!(db, write, |conn| diesel::delete(
                settings::table.filter(settings::key.eq(&key))
            )
            .execute(conn)
            .await
            .map_err(AppError::from))?;
        }
    }
    load(state).await?;
    tracing::info!(
        budget = name,
        value = %state.limits.budget(rule),
        by = caller.user_id(),
        "rate-limit budget changed"
    );
    state.events.publish(Event::RateLimitsChanged);
    Ok(setting(state, rule, doors, per_address))
}

/// Reads the run-time budgets from the database and applies them. A row that no longer
/// names a budget or does not parse is ignored (and logged), never fatal.
pub async fn load(state: &AppState) -> AppResult<()> {
    let db = &state.db;
    let pattern = format!("{PREFIX}%");
    let rows: Vec<(String, String)> = db_run!(db, read, |conn| settings::table
        .filter(settings::key.like(&pattern))
        .select((settings::key, settings::value))
        .load(conn)
        .await
        .map_err(AppError::from))?;
    let mut budgets = HashMap::new();
    for (key, value) in rows {
        let name = key.strip_prefix(PREFIX).unwrap_or(&key);
        match (Rule::by_name(name), Budget::parse(&value)) {
            (Some(rule), Ok(budget)) => {
                budgets.insert(rule, budget);
            }
            _ => tracing::warn!(key, value, "ignoring a rate-limit setting"),
        }
    }
    state.limits.apply(budgets);
    Ok(())
}

//! Seed 000's `GET /api/stats`: the caller's conversations, messages and memory entries (an
//! admin's: the whole instance's), with the instance's tools, models and uptime.

use crate::auth::Caller;
use crate::db::enums::CollectionKind;
use crate::db::schema::{chats, collections, documents, messages};
use crate::db_run;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// The figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    /// Seconds since this process started.
    pub uptime_secs: u64,
    /// Chats.
    pub conversations: i64,
    /// Messages in those chats.
    pub messages: i64,
    /// Tools of the running plugins.
    pub tools: usize,
    /// Entries in memory (documents of memory collections).
    pub memory_entries: i64,
    /// Models that can answer now.
    pub models_available: usize,
    /// Model tokens spent today (UTC) and this month.
    pub tokens_today: i64,
    /// Model tokens spent this month.
    pub tokens_this_month: i64,
}

/// The caller's figures (every user's, for an admin).
pub async fn for_caller(state: &AppState, caller: &Caller) -> AppResult<Stats> {
    let owner = (!caller.is_admin()).then(|| caller.user_id());
    let db = &state.db;
    let (conversations, messages, memory_entries) = db_run!(db, read, |conn| {
        let mut c = chats::table.into_boxed();
        let mut m = messages::table.inner_join(chats::table).into_boxed();
        let mut e = documents::table
            .inner_join(collections::table)
            .filter(collections::kind.eq(CollectionKind::Memory))
            .into_boxed();
        if let Some(uid) = owner {
            c = c.filter(chats::user_id.eq(uid));
            m = m.filter(chats::user_id.eq(uid));
            e = e.filter(collections::owner_id.eq(uid));
        }
        let conversations: i64 = c.count().get_result(conn).await?;
        let messages: i64 = m.count().get_result(conn).await?;
        let entries: i64 = e.count().get_result(conn).await?;
        Ok::<_, AppError>((conversations, messages, entries))
    })?;
    let health = crate::service::health::report(state).await;
    let (tokens_today, tokens_this_month) = super::usage::spent_by(state, caller).await?;
    Ok(Stats {
        uptime_secs: state.started_at.elapsed().as_secs(),
        conversations,
        messages,
        tools: health.tools,
        memory_entries,
        models_available: health.models_available,
        tokens_today,
        tokens_this_month,
    })
}

/// Seed 000's uptime format: `2d 5h 32m` (days only when there are some).
pub fn uptime_text(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    if d > 0 {
        format!("{d}d {h}h {m}m")
    } else {
        format!("{h}h {m}m")
    }
}

#[cfg(test)]
mod tests {
    use super::uptime_text;

    #[test]
    fn uptime_reads_like_the_seed() {
        assert_eq!(uptime_text(59), "0h 0m");
        assert_eq!(
            uptime_text(2 * 86_400 + 5 * 3600 + 32 * 60 + 7),
            "2d 5h 32m"
        );
    }
}

//! Model usage per day, user, API key and model, and the token quotas it enforces: every model
//! call is checked against the caller's quotas before it starts ([`check_quota`]) and counted
//! when it ends ([`metered`]); the `usage` query and `/api/stats` read the counts.

use crate::auth::Caller;
use crate::db::schema::usage_daily;
use crate::db_run;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::llm::{Chunk, ChunkStream, Usage};
use crate::state::AppState;
use chrono::{Datelike, NaiveDate, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures_util::StreamExt;

/// `api_key_id` of the rows spent by sessions.
const SESSION: i64 = 0;

/// Today, in UTC.
pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn month_start(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

fn next_month(day: NaiveDate) -> NaiveDate {
    let (y, m) = if day.month() == 12 {
        (day.year() + 1, 1)
    } else {
        (day.year(), day.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(day)
}

/// Seconds from now to the start of `day` (UTC).
fn secs_until(day: NaiveDate) -> (i64, u64) {
    let at = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let secs = (at - Utc::now()).num_seconds().max(1) as u64;
    (at.timestamp(), secs)
}

/// Tokens spent today and this month by a user (`key` `None`) or by one API key.
async fn spent(state: &AppState, user_id: i64, key: Option<i64>) -> AppResult<(i64, i64)> {
    let today = today();
    let since = month_start(today);
    let db = &state.db;
    let rows: Vec<(NaiveDate, i64, i64)> = db_run!(db, read, |conn| {
        let mut q = usage_daily::table
            .filter(usage_daily::user_id.eq(user_id))
            .filter(usage_daily::day.ge(since))
            .select((
                usage_daily::day,
                usage_daily::prompt_tokens,
                usage_daily::completion_tokens,
            ))
            .into_boxed();
        if let Some(k) = key {
            q = q.filter(usage_daily::api_key_id.eq(k));
        }
        q.load(conn).await.map_err(AppError::from)
    })?;
    let mut day = 0;
    let mut month = 0;
    for (d, p, c) in rows {
        month += p + c;
        if d == today {
            day += p + c;
        }
    }
    Ok((day, month))
}

/// Refuses a model call when the caller's user or API key has spent a token quota: 429
/// `quota_exceeded`, with the limit, what was spent, the period and its reset time.
pub async fn check_quota(state: &AppState, caller: &Caller) -> AppResult<()> {
    let q = &state.config.quotas;
    if !q.any() {
        return Ok(());
    }
    let uid = caller.user_id();
    let mut checks = Vec::with_capacity(2);
    if q.user_daily_tokens > 0 || q.user_monthly_tokens > 0 {
        checks.push(("user", None, q.user_daily_tokens, q.user_monthly_tokens));
    }
    if let Some(k) = caller.api_key_id {
        if q.key_daily_tokens > 0 || q.key_monthly_tokens > 0 {
            checks.push(("API key", Some(k), q.key_daily_tokens, q.key_monthly_tokens));
        }
    }
    let today = today();
    for (who, key, daily, monthly) in checks {
        let (day, month) = spent(state, uid, key).await?;
        let over = if daily > 0 && day >= daily as i64 {
            Some(("day", daily, day, today.succ_opt().unwrap_or(today)))
        } else if monthly > 0 && month >= monthly as i64 {
            Some(("month", monthly, month, next_month(today)))
        } else {
            None
        };
        if let Some((period, limit, used, resets)) = over {
            let (reset, retry_after) = secs_until(resets);
            return Err(AppError::new(
                ErrorCode::TokenQuotaExceeded,
                format!(
                    "this {who} spent its token quota for the {period} ({used} of {limit}); it resets at {resets} 00:00 UTC"
                ),
            )
            .with_details(serde_json::json!({
                "period": period,
                "limit": limit,
                "used": used,
                "reset": reset,
                "retry_after": retry_after,
            })));
        }
    }
    Ok(())
}

/// Adds one model call's tokens to today's row of (user, key, model).
pub async fn record(
    state: &AppState,
    user_id: i64,
    api_key_id: Option<i64>,
    model: &str,
    usage: Usage,
) -> AppResult<()> {
    let (p, c) = (
        i64::from(usage.prompt_tokens),
        i64::from(usage.completion_tokens),
    );
    let row = (
        usage_daily::day.eq(today()),
        usage_daily::user_id.eq(user_id),
        usage_daily::api_key_id.eq(api_key_id.unwrap_or(SESSION)),
        usage_daily::model.eq(model),
        usage_daily::requests.eq(1),
        usage_daily::prompt_tokens.eq(p),
        usage_daily::completion_tokens.eq(c),
    );
    let db = &state.db;
    db_run!(db, write, |conn| {
        diesel::insert_into(usage_daily::table)
            .values(row)
            .on_conflict((
                usage_daily::day,
                usage_daily::user_id,
                usage_daily::api_key_id,
                usage_daily::model,
            ))
            .do_update()
            .set((
                usage_daily::requests.eq(usage_daily::requests + 1),
                usage_daily::prompt_tokens.eq(usage_daily::prompt_tokens + p),
                usage_daily::completion_tokens.eq(usage_daily::completion_tokens + c),
            ))
            .execute(conn)
            .await
            .map_err(AppError::from)
    })?;
    Ok(())
}

/// Counts a generation for `caller` on `model`: its reported usage is stored before its end
/// reaches the caller (so a quota checked right after sees it). A generation dropped before
/// its end (a client gone, a turn cancelled) is counted with the tokens it streamed.
pub fn metered(state: &AppState, caller: &Caller, model: &str, stream: ChunkStream) -> ChunkStream {
    let meter = Meter {
        state: state.clone(),
        user_id: caller.user_id(),
        api_key_id: caller.api_key_id,
        model: model.to_string(),
        streamed: 0,
        done: false,
    };
    Box::pin(async_stream::stream! {
        let mut meter = meter;
        let mut stream = stream;
        while let Some(item) = stream.next().await {
            match &item {
                Ok(Chunk::Token(_)) => meter.streamed += 1,
                Ok(Chunk::Done { usage, .. }) => {
                    meter.done = true;
                    if let Err(e) = record(&meter.state, meter.user_id, meter.api_key_id, &meter.model, *usage).await {
                        tracing::warn!(error = %e, "could not record model usage");
                    }
                }
                Err(_) => {}
            }
            yield item;
        }
    })
}

/// Counts what a generation streamed if it is dropped before its end.
struct Meter {
    state: AppState,
    user_id: i64,
    api_key_id: Option<i64>,
    model: String,
    streamed: u32,
    done: bool,
}

impl Drop for Meter {
    fn drop(&mut self) {
        if self.done || self.streamed == 0 || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let usage = Usage {
            prompt_tokens: 0,
            completion_tokens: self.streamed,
        };
        let (state, uid, key, model) = (
            self.state.clone(),
            self.user_id,
            self.api_key_id,
            std::mem::take(&mut self.model),
        );
        self.state.background.spawn(async move {
            if let Err(e) = record(&state, uid, key, &model, usage).await {
                tracing::warn!(error = %e, "could not record model usage");
            }
        });
    }
}

/// What rows of a usage report are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupBy {
    /// The UTC day.
    Day,
    /// The user.
    User,
    /// The API key (0: sessions).
    ApiKey,
    /// The model.
    Model,
}

/// One row of a usage report; the keys not grouped by are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageRow {
    /// The day, when grouped by day.
    pub day: Option<NaiveDate>,
    /// The user, when grouped by user.
    pub user_id: Option<i64>,
    /// The API key (0: sessions), when grouped by key.
    pub api_key_id: Option<i64>,
    /// The model key, when grouped by model.
    pub model: Option<String>,
    /// Model calls.
    pub requests: i64,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
}

/// A report row's keys: day, user, key, model (`None` where not grouped by).
type GroupKey = (Option<NaiveDate>, Option<i64>, Option<i64>, Option<String>);

/// Longest span one report may cover.
const MAX_REPORT_DAYS: i64 = 366;

/// Usage from `from` to `to` (inclusive, UTC days) grouped by `group_by`, ordered by its
/// keys: the caller's own, or — for an admin — everyone's, or `user`'s.
pub async fn report(
    state: &AppState,
    caller: &Caller,
    from: NaiveDate,
    to: NaiveDate,
    group_by: &[GroupBy],
    user: Option<i64>,
) -> AppResult<Vec<UsageRow>> {
    if to < from || (to - from).num_days() >= MAX_REPORT_DAYS {
        return Err(AppError::validation(
            "to",
            format!("`to` must be on or after `from`, at most {MAX_REPORT_DAYS} days later"),
        ));
    }
    let owner = match user {
        _ if !caller.is_admin() => {
            if user.is_some_and(|u| u != caller.user_id()) {
                return Err(AppError::not_found("user"));
            }
            Some(caller.user_id())
        }
        u => u,
    };
    let db = &state.db;
    type Raw = (NaiveDate, i64, i64, String, i64, i64, i64);
    let rows: Vec<Raw> = db_run!(db, read, |conn| {
        let mut q = usage_daily::table
            .filter(usage_daily::day.ge(from))
            .filter(usage_daily::day.le(to))
            .select((
                usage_daily::day,
                usage_daily::user_id,
                usage_daily::api_key_id,
                usage_daily::model,
                usage_daily::requests,
                usage_daily::prompt_tokens,
                usage_daily::completion_tokens,
            ))
            .into_boxed();
        if let Some(uid) = owner {
            q = q.filter(usage_daily::user_id.eq(uid));
        }
        q.load(conn).await.map_err(AppError::from)
    })?;
    let mut groups: std::collections::BTreeMap<GroupKey, UsageRow> = Default::default();
    for (day, uid, key, model, requests, p, c) in rows {
        let by = |g| group_by.contains(&g);
        let k = (
            by(GroupBy::Day).then_some(day),
            by(GroupBy::User).then_some(uid),
            by(GroupBy::ApiKey).then_some(key),
            by(GroupBy::Model).then_some(model),
        );
        let row = groups.entry(k.clone()).or_insert_with(|| UsageRow {
            day: k.0,
            user_id: k.1,
            api_key_id: k.2,
            model: k.3,
            ..Default::default()
        });
        row.requests += requests;
        row.prompt_tokens += p;
        row.completion_tokens += c;
    }
    Ok(groups.into_values().collect())
}

/// Tokens the caller spent today and this month (an admin: everyone).
pub async fn spent_by(state: &AppState, caller: &Caller) -> AppResult<(i64, i64)> {
    let today = today();
    let rows = report(
        state,
        caller,
        month_start(today),
        today,
        &[GroupBy::Day],
        None,
    )
    .await?;
    let total = |r: &UsageRow| r.prompt_tokens + r.completion_tokens;
    let day = rows
        .iter()
        .filter(|r| r.day == Some(today))
        .map(total)
        .sum();
    Ok((day, rows.iter().map(total).sum()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_roll_over() {
        let d = NaiveDate::from_ymd_opt(2026, 12, 31).unwrap();
        assert_eq!(next_month(d), NaiveDate::from_ymd_opt(2027, 1, 1).unwrap());
        assert_eq!(
            month_start(d),
            NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
        );
    }
}

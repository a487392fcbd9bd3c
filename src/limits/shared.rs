//! Budgets shared by every process serving one PostgreSQL database: the same GCRA as
//! governor's, its one number per budget (the theoretical arrival time, `tat`) kept in
//! `rate_limit_buckets` and advanced by a single conditional upsert, so concurrent processes
//! cannot both spend the last request. Times are microseconds since the epoch from the
//! processes' clocks (kept in step by NTP; a skew of `s` seconds moves a budget by `s`).

use super::{Decision, Rule, Who};
use crate::config::Budget;
use crate::db::Db;
use crate::error::AppError;
use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

/// The shared store.
pub struct SharedBudgets {
    db: Db,
}

#[derive(QueryableByName)]
struct Tat {
    #[diesel(sql_type = BigInt)]
    tat: i64,
}

/// Admits `cost` requests when the budget, advanced by their weight, stays within a full
/// budget from now; a refused request changes nothing.
const SPEND: &str = "INSERT INTO rate_limit_buckets AS b (key, tat) VALUES ($1, $2 + $3) \
     ON CONFLICT (key) DO UPDATE SET tat = GREATEST(b.tat, $2) + $3 \
     WHERE GREATEST(b.tat, $2) + $3 - $2 <= $4 \
     RETURNING tat";

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl SharedBudgets {
    /// A store over `db` (PostgreSQL).
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Counts `cost` requests of `who` against `rule`'s `budget`.
    pub async fn check(
        &self,
        rule: Rule,
        budget: Budget,
        who: Who,
        cost: u32,
    ) -> Result<Decision, AppError> {
        let Db::Pg(pool) = &self.db else {
            return Err(AppError::internal("shared rate limits need PostgreSQL"));
        };
        let limit = budget.requests;
        let window = budget.per_secs as i64 * 1_000_000;
        let t = window / i64::from(limit);
        let weight = t * i64::from(cost);
        let now = now_micros();
        let key = format!("{}:{who}", rule.name());
        if cost > limit {
            return Ok(Decision {
                limit,
                remaining: 0,
                reset_at: ((now + window) / 1_000_000 + 1) as u64,
                retry_after: Some(budget.per_secs),
            });
        }
        let mut conn = pool.get().await?;
        let spent: Option<Tat> = diesel::sql_query(SPEND)
            .bind::<Text, _>(&key)
            .bind::<BigInt, _>(now)
            .bind::<BigInt, _>(weight)
            .bind::<BigInt, _>(window)
            .get_result(&mut conn)
            .await
            .map(Some)
            .or_else(|e| match e {
                diesel::result::Error::NotFound => Ok(None),
                e => Err(e),
            })?;
        let micros_to_secs = |m: i64| (m.max(0) as u64).div_ceil(1_000_000);
        if let Some(Tat { tat }) = spent {
            let remaining = ((now + window - tat) / t).clamp(0, i64::from(limit)) as u32;
            return Ok(Decision {
                limit,
                remaining,
                reset_at: micros_to_secs(tat),
                retry_after: None,
            });
        }
        let Tat { tat } = diesel::sql_query("SELECT tat FROM rate_limit_buckets WHERE key = $1")
            .bind::<Text, _>(&key)
            .get_result(&mut conn)
            .await?;
        let wait = tat.max(now) + weight - window - now;
        Ok(Decision {
            limit,
            remaining: 0,
            reset_at: micros_to_secs(tat),
            retry_after: Some(micros_to_secs(wait).max(1)),
        })
    }

    /// Drops the budgets that are full again.
    pub async fn sweep(&self) -> Result<usize, AppError> {
        let Db::Pg(pool) = &self.db else {
            return Ok(0);
        };
        let mut conn = pool.get().await?;
        Ok(
            diesel::sql_query("DELETE FROM rate_limit_buckets WHERE tat < $1")
                .bind::<BigInt, _>(now_micros())
                .execute(&mut conn)
                .await?,
        )
    }
}

//! Samples of the system figures kept in the database (`monitoring_samples`), one row per
//! process per `monitoring.sample_secs`, for `/api/monitoring/history`; pruned after
//! `monitoring.retention_hours`.

use super::system::Figures;
use crate::db::models::{MonitoringSample, NewMonitoringSample};
use crate::db::schema::monitoring_samples;
use crate::db_run;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// Rows a history answers at most (a week of minutes from a few processes).
pub const MAX_ROWS: i64 = 50_000;

/// Stores a sample of this process: the figures and the requests answered since the last.
pub async fn store(state: &AppState, f: &Figures, requests: u64) -> AppResult<()> {
    let row = NewMonitoringSample {
        node: state.ops.node.clone(),
        taken_at: crate::service::now(),
        cpu: f.cpu,
        memory: f.memory,
        process_memory: f.process_memory as i64,
        requests: requests as i64,
    };
    let db = &state.db;
    db_run!(db, bookkeeping, |conn| diesel::insert_into(
        monitoring_samples::table
    )
    .values(&row)
    .execute(conn)
    .await
    .map(|_| ())
    .map_err(AppError::from))
}

/// Every process's samples taken since `since`, oldest first.
pub async fn since(state: &AppState, since: NaiveDateTime) -> AppResult<Vec<MonitoringSample>> {
    let db = &state.db;
    db_run!(db, read, |conn| monitoring_samples::table
        .filter(monitoring_samples::taken_at.ge(since))
        .order((
            monitoring_samples::taken_at.asc(),
            monitoring_samples::id.asc()
        ))
        .limit(MAX_ROWS)
        .select(MonitoringSample::as_select())
        .load(conn)
        .await
        .map_err(AppError::from))
}

/// Deletes samples taken before `before`.
pub async fn prune(state: &AppState, before: NaiveDateTime) -> AppResult<usize> {
    let db = &state.db;
    db_run!(db, bookkeeping, |conn| diesel::delete(
        monitoring_samples::table.filter(monitoring_samples::taken_at.lt(before))
    )
    .execute(conn)
    .await
    .map_err(AppError::from))
}

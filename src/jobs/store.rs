//! The job queue's reads and writes. Every change to a job row is load (locked) → one
//! [`lifecycle`] transition → store, in one transaction, so a worker finishing a run, a
//! reaper ending an expired lease and a user pausing the job never overwrite each other.

use crate::db::enums::RunOutcome;
use crate::db::models::{Job, JobRun, NewJobRun};
use crate::db::schema::{job_runs, jobs};
use crate::db::{Db, SqliteConn};
use crate::db_run;
use crate::error::{AppError, AppResult};
use crate::jobs::lifecycle::{self, Backoff};
use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// Stores every column of a changed job (inside a `db_run!` body, either backend).
macro_rules! save {
    ($conn:expr, $job:expr) => {
        diesel::update(jobs::table.filter(jobs::id.eq($job.id)))
            .set($job)
            .execute($conn)
            .await
            .map(|_| ())
    };
}

/// Loads job `$id` locked for this transaction (inside a `db_run!` body); `None` if gone.
macro_rules! load_locked {
    ($conn:expr, $id:expr) => {{
        $conn.lock_job($id).await?;
        jobs::table
            .filter(jobs::id.eq($id))
            .select(Job::as_select())
            .first($conn)
            .await
            .optional()?
    }};
}

/// Ends a run row that is still `running` (inside a `db_run!` body).
macro_rules! end_run {
    ($conn:expr, $run_id:expr, $outcome:expr, $output:expr, $error:expr, $now:expr) => {
        diesel::update(
            job_runs::table
                .filter(job_runs::id.eq($run_id))
                .filter(job_runs::outcome.eq(RunOutcome::Running)),
        )
        .set((
            job_runs::outcome.eq($outcome),
            job_runs::output.eq($output),
            job_runs::error.eq($error),
            job_runs::finished_at.eq(Some($now)),
        ))
        .execute($conn)
        .await
    };
}

/// Ids of due jobs not of the `full` kinds, best first (both backends' claim).
macro_rules! due_ids {
    ($now:expr, $full:expr, $limit:expr) => {
        jobs::table
            .filter(jobs::due_at.le($now))
            .filter(jobs::kind.ne_all($full))
            .order((jobs::priority.desc(), jobs::due_at.asc(), jobs::id.asc()))
            .limit($limit)
            .select(jobs::id)
    };
}

/// The two statements of the queue that differ between the backends.
pub trait JobSql {
    /// Ids of due jobs (not of the `full` kinds), best first; on PostgreSQL the rows are
    /// locked for this transaction and rows other transactions hold are skipped, so
    /// concurrent workers claim disjoint sets.
    fn claimable(
        &mut self,
        now: NaiveDateTime,
        full: Vec<String>,
        limit: i64,
    ) -> impl std::future::Future<Output = QueryResult<Vec<i64>>> + Send;

    /// Locks one job row for this transaction (SQLite: writes are serialized already).
    fn lock_job(&mut self, id: i64) -> impl std::future::Future<Output = QueryResult<()>> + Send;
}

impl JobSql for SqliteConn {
    async fn claimable(
        &mut self,
        now: NaiveDateTime,
        full: Vec<String>,
        limit: i64,
    ) -> QueryResult<Vec<i64>> {
        due_ids!(now, full, limit).load(self).await
    }

    async fn lock_job(&mut self, _id: i64) -> QueryResult<()> {
        Ok(())
    }
}

impl JobSql for AsyncPgConnection {
    async fn claimable(
        &mut self,
        now: NaiveDateTime,
        full: Vec<String>,
        limit: i64,
    ) -> QueryResult<Vec<i64>> {
        due_ids!(now, full, limit)
            .for_update()
            .skip_locked()
            .load(self)
            .await
    }

    async fn lock_job(&mut self, id: i64) -> QueryResult<()> {
        jobs::table
            .find(id)
            .select(jobs::id)
            .for_update()
            .load::<i64>(self)
            .await
            .map(|_| ())
    }
}

/// Loads job `id` (only if `owner` owns it, when given), locked, lets `change` edit it and
/// stores it: one transaction. `change` sees the job and returns a value or refuses.
pub async fn modify<T, F>(db: &Db, id: i64, owner: Option<i64>, change: F) -> AppResult<(Job, T)>
where
    F: FnOnce(&mut Job) -> AppResult<T> + Send,
    T: Send,
{
    db_run!(db, write, |conn| {
        let found: Option<Job> = load_locked!(conn, id);
        let mut job = found
            .filter(|j| owner.is_none_or(|uid| j.owner_id == uid))
            .ok_or_else(|| AppError::not_found("job"))?;
        let out = change(&mut job)?;
        save!(conn, &job)?;
        Ok((job, out))
    })
}

/// A run this worker claimed.
pub struct Claimed {
    /// The job as it is now (state `running`).
    pub job: Job,
    /// The run.
    pub run: JobRun,
}

/// Claims up to `limit` due jobs whose kind is not `full` for `worker`, each with a new
/// run row and a lease of `lease`.
pub async fn claim_due(
    db: &Db,
    worker: &str,
    full: Vec<String>,
    limit: i64,
    lease: Duration,
) -> AppResult<Vec<Claimed>> {
    let now = crate::service::now();
    db_run!(db, write, |conn| {
        let ids = conn.claimable(now, full.clone(), limit).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<Job> = jobs::table
            .filter(jobs::id.eq_any(&ids))
            .select(Job::as_select())
            .load(conn)
            .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for mut job in rows {
            let Some(cause) = lifecycle::cause_of(&job, now) else {
                continue;
            };
            let attempt = lifecycle::claim(&mut job, cause, now, worker, lease);
            let run: JobRun = diesel::insert_into(job_runs::table)
                .values(NewJobRun {
                    job_id: job.id,
                    attempt,
                    cause,
                    outcome: RunOutcome::Running,
                    worker: worker.to_string(),
                    started_at: now,
                })
                .returning(JobRun::as_returning())
                .get_result(conn)
                .await?;
            job.current_run_id = Some(run.id);
            job.last_run_id = Some(run.id);
            lifecycle::settle(&mut job, now);
            save!(conn, &job)?;
            claimed.push(Claimed { job, run });
        }
        Ok(claimed)
    })
}

/// How a run ended, as the worker stores it.
pub struct RunEnd {
    /// The outcome.
    pub outcome: RunOutcome,
    /// The kind's output.
    pub output: Option<serde_json::Value>,
    /// What went wrong.
    pub error: Option<String>,
    /// End the series now, whatever attempts are left.
    pub give_up: bool,
}

/// Stores the end of run `run_id` of job `job_id` — the run row and the job's next state in
/// one transaction — if `worker` still holds it (a worker whose lease ran out finds its run
/// already ended as `interrupted` and changes nothing). Returns the job when stored.
pub async fn finish_run(
    db: &Db,
    job_id: i64,
    run_id: i64,
    worker: &str,
    end: RunEnd,
    backoff: Backoff,
) -> AppResult<Option<Job>> {
    let now = crate::service::now();
    let output = end
        .output
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(AppError::internal)?;
    db_run!(db, write, |conn| {
        let found: Option<Job> = load_locked!(conn, job_id);
        let Some(mut job) = found else {
            return Ok(None);
        };
        if job.current_run_id != Some(run_id) || job.locked_by.as_deref() != Some(worker) {
            return Ok(None);
        }
        if end.give_up {
            lifecycle::give_up(&mut job, now);
        } else {
            lifecycle::finish(&mut job, end.outcome, now, backoff);
        }
        save!(conn, &job)?;
        end_run!(
            conn,
            run_id,
            end.outcome,
            output.clone(),
            end.error.clone(),
            now
        )?;
        Ok(Some(job))
    })
}

/// Ends the runs whose lease ran out (their worker died or hung) as `interrupted`, then
/// retries or fails each by its policy, each in one transaction. `everything`: every running
/// run, whatever its lease (at start on SQLite, where no other process can hold one).
/// Returns the jobs.
pub async fn reap(db: &Db, everything: bool, backoff: Backoff) -> AppResult<Vec<Job>> {
    let now = crate::service::now();
    let expired: Vec<i64> = db_run!(db, read, |conn| {
        let mut q = jobs::table
            .filter(jobs::current_run_id.is_not_null())
            .into_boxed();
        if !everything {
            q = q.filter(jobs::lease_until.lt(now));
        }
        q.select(jobs::id)
            .limit(1000)
            .load(conn)
            .await
            .map_err(AppError::from)
    })?;
    let mut reaped = Vec::new();
    for id in expired {
        let job: Option<Job> = db_run!(db, write, |conn| {
            let found: Option<Job> = load_locked!(conn, id);
            let Some(mut job) = found else {
                return Ok(None);
            };
            // Checked again under the lock: the worker may have renewed or ended it.
            let expired = everything || job.lease_until.is_some_and(|l| l < now);
            let Some(run) = job.current_run_id.filter(|_| expired) else {
                return Ok(None);
            };
            let why = format!(
                "worker {} stopped before the run ended",
                job.locked_by.as_deref().unwrap_or("?")
            );
            lifecycle::finish(&mut job, RunOutcome::Interrupted, now, backoff);
            save!(conn, &job)?;
            end_run!(
                conn,
                run,
                RunOutcome::Interrupted,
                None::<String>,
                Some(why),
                now
            )?;
            Ok::<_, AppError>(Some(job))
        })?;
        reaped.extend(job);
    }
    Ok(reaped)
}

/// Renews the leases of `worker`'s runs and returns the ids of those asked to cancel.
pub async fn heartbeat(db: &Db, worker: &str, lease: Duration) -> AppResult<Vec<i64>> {
    let now = crate::service::now();
    let worker = worker.to_string();
    db_run!(db, bookkeeping, |conn| {
        diesel::update(
            jobs::table
                .filter(jobs::locked_by.eq(&worker))
                .filter(jobs::current_run_id.is_not_null()),
        )
        .set(jobs::lease_until.eq(Some(now + lease)))
        .execute(conn)
        .await?;
        jobs::table
            .filter(jobs::locked_by.eq(&worker))
            .filter(jobs::cancel_requested.eq(true))
            .select(jobs::id)
            .load(conn)
            .await
            .map_err(AppError::from)
    })
}

/// Stores a run's progress report (only while that run is the job's current one).
pub async fn set_progress(db: &Db, job_id: i64, run_id: i64, progress: String) -> AppResult<()> {
    db_run!(db, bookkeeping, |conn| diesel::update(
        jobs::table
            .filter(jobs::id.eq(job_id))
            .filter(jobs::current_run_id.eq(run_id))
    )
    .set(jobs::progress.eq(Some(progress)))
    .execute(conn)
    .await
    .map(|_| ())
    .map_err(AppError::from))
}

/// The earliest time a job not of the `full` kinds is due.
pub async fn next_due(db: &Db, full: Vec<String>) -> AppResult<Option<NaiveDateTime>> {
    db_run!(db, read, |conn| jobs::table
        .filter(jobs::kind.ne_all(full))
        .select(diesel::dsl::min(jobs::due_at))
        .first::<Option<NaiveDateTime>>(conn)
        .await
        .map_err(AppError::from))
}

/// Deletes finished runs older than `keep`, except each job's latest run.
pub async fn prune(db: &Db, keep: Duration) -> AppResult<usize> {
    let cutoff = crate::service::now() - keep;
    db_run!(db, bookkeeping, |conn| {
        let latest = jobs::table
            .filter(jobs::last_run_id.is_not_null())
            .select(jobs::last_run_id);
        diesel::delete(
            job_runs::table
                .filter(job_runs::finished_at.lt(cutoff))
                .filter(diesel::dsl::not(job_runs::id.nullable().eq_any(latest))),
        )
        .execute(conn)
        .await
        .map_err(AppError::from)
    })
}

//! Jobs as users see them: create, change, run now, cancel, pause, resume, delete, list,
//! with their runs. Users see and touch only their own jobs; admins see and touch all.
//! Someone else's job is indistinguishable from a missing one. A job runs as its owner
//! (re-checked before every run, see [`runner_caller`]); one created with an API key runs
//! only while that key is live.

use crate::auth::Caller;
use crate::db::enums::JobState;
use crate::db::json::JsonText;
use crate::db::models::{Job, JobRun, NewJob};
use crate::db::schema::{job_runs, jobs};
use crate::db::{locks, BackendSql};
use crate::db_run;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::events::Event;
use crate::jobs::lifecycle;
use crate::jobs::schedule::{Schedule, ScheduleInput};
use crate::jobs::scheduler::announce;
use crate::jobs::store;
use crate::service::{now, validate};
use crate::state::AppState;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::Value;

/// Most attempts per occurrence.
pub const MAX_ATTEMPTS: i64 = 100;
/// Priorities run from -100 to 100.
pub const MAX_PRIORITY: i64 = 100;

/// A new job.
#[derive(Debug, Clone, Default)]
pub struct JobInput {
    /// Display name.
    pub name: String,
    /// Kind name.
    pub kind: String,
    /// The kind's input.
    pub payload: Value,
    /// When it runs.
    pub schedule: ScheduleInput,
    /// Attempts per occurrence (default `jobs.default_max_attempts`).
    pub max_attempts: Option<i64>,
    /// Seconds before a run is ended (default `jobs.default_timeout_secs`).
    pub timeout_secs: Option<i64>,
    /// Higher runs first (default 0).
    pub priority: Option<i64>,
    /// Created paused.
    pub paused: Option<bool>,
}

/// Changes to a job; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct JobPatch {
    /// Name.
    pub name: Option<String>,
    /// Payload (checked by the kind again).
    pub payload: Option<Value>,
    /// A new schedule: ticks count from now, a finished one-off job runs again.
    pub schedule: Option<ScheduleInput>,
    /// Attempts.
    pub max_attempts: Option<i64>,
    /// Timeout.
    pub timeout_secs: Option<i64>,
    /// Priority.
    pub priority: Option<i64>,
}

/// What a job list keeps.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this kind.
    pub kind: Option<String>,
}

/// The owner filter for `caller`: none for admins.
fn scope(caller: &Caller) -> Option<i64> {
    (!caller.is_admin()).then(|| caller.user_id())
}

fn check_name(name: &str) -> AppResult<String> {
    validate::required("name", name, validate::MAX_NAME_CHARS)
}

fn check_attempts(n: i64) -> AppResult<i32> {
    if !(1..=MAX_ATTEMPTS).contains(&n) {
        return Err(AppError::validation(
            "max_attempts",
            format!("max_attempts must be between 1 and {MAX_ATTEMPTS}"),
        ));
    }
    Ok(n as i32)
}

fn check_timeout(state: &AppState, n: i64) -> AppResult<i32> {
    let max = state.config.jobs.max_timeout_secs as i64;
    if !(1..=max).contains(&n) {
        return Err(AppError::validation(
            "timeout_secs",
            format!("timeout_secs must be between 1 and {max}"),
        ));
    }
    Ok(n as i32)
}

fn check_priority(n: i64) -> AppResult<i32> {
    if !(-MAX_PRIORITY..=MAX_PRIORITY).contains(&n) {
        return Err(AppError::validation(
            "priority",
            format!("priority must be between -{MAX_PRIORITY} and {MAX_PRIORITY}"),
        ));
    }
    Ok(n as i32)
}

async fn check_payload(
    state: &AppState,
    caller: &Caller,
    kind: &str,
    payload: &Value,
) -> AppResult<()> {
    let Some(k) = state.jobs.kind(kind) else {
        return Err(AppError::validation(
            "kind",
            format!(
                "unknown job kind {kind:?}; this server runs: {}",
                state.jobs.kind_names().join(", ")
            ),
        ));
    };
    let size = payload.to_string().len();
    let max = state.config.jobs.max_payload_bytes;
    if size > max {
        return Err(AppError::new(
            ErrorCode::PayloadTooLarge,
            format!("payload is {size} bytes; at most {max}"),
        )
        .with_details(serde_json::json!({ "field": "payload" })));
    }
    k.check(state, caller, payload).await
}

fn schedule_of(state: &AppState, input: &ScheduleInput) -> AppResult<Schedule> {
    input.build(state.config.jobs.min_interval_secs as i64)
}

/// Creates a job owned by the caller.
pub async fn create(state: &AppState, caller: &Caller, input: JobInput) -> AppResult<Job> {
    caller.require_write()?;
    let name = check_name(&input.name)?;
    let kind = input.kind.trim().to_string();
    if INTERNAL_KINDS.contains(&kind.as_str()) {
        return Err(AppError::validation(
            "kind",
            format!("{kind:?} jobs are created by the server"),
        ));
    }
    check_payload(state, caller, &kind, &input.payload).await?;
    let schedule = schedule_of(state, &input.schedule)?;
    let cfg = &state.config.jobs;
    let max_attempts = check_attempts(input.max_attempts.unwrap_or(cfg.default_max_attempts))?;
    let timeout_secs = check_timeout(
        state,
        input
            .timeout_secs
            .unwrap_or(cfg.default_timeout_secs as i64),
    )?;
    let priority = check_priority(input.priority.unwrap_or(0))?;
    let paused = input.paused.unwrap_or(false);
    let ts = now();
    let next_run_at = schedule
        .first_occurrence(crate::jobs::schedule::utc(ts))
        .map(|t| t.naive_utc());
    let uid = caller.user_id();
    let quota = cfg.max_jobs_per_user;
    let row = NewJob {
        owner_id: uid,
        api_key_id: caller.api_key_id,
        name,
        kind,
        payload: JsonText(input.payload),
        schedule: JsonText(schedule),
        priority,
        max_attempts,
        timeout_secs,
        state: if paused {
            JobState::Paused
        } else {
            JobState::Scheduled
        },
        paused,
        anchor_at: ts,
        next_run_at,
        due_at: if paused { None } else { next_run_at },
        created_at: ts,
        updated_at: ts,
    };
    let db = &state.db;
    let job: Job = db_run!(db, write, |conn| {
        conn.lock_key(locks::per_user(locks::JOBS, uid)).await?;
        let owned: i64 = jobs::table
            .filter(jobs::owner_id.eq(uid))
            .filter(jobs::kind.ne_all(INTERNAL_KINDS))
            .count()
            .get_result(conn)
            .await?;
        if owned >= quota {
            return Err(AppError::new(
                ErrorCode::QuotaExceeded,
                format!("a user may keep at most {quota} jobs"),
            ));
        }
        diesel::insert_into(jobs::table)
            .values(row.clone())
            .returning(Job::as_returning())
            .get_result(conn)
            .await
            .map_err(AppError::from)
    })?;
    changed(state, &job);
    Ok(job)
}

/// Kinds the server creates itself (one per uploaded document): `createJob` refuses them and
/// they do not count against a user's job quota.
pub const INTERNAL_KINDS: &[&str] = &[crate::rag::ingest::KIND];

/// The row of a one-off job the server creates for `caller` to run now (see
/// [`INTERNAL_KINDS`]); insert it in the transaction of what it works on, then call
/// [`created_internal`].
pub(crate) fn internal_job(
    caller: &Caller,
    name: String,
    kind: &str,
    payload: Value,
    max_attempts: i32,
    timeout_secs: i32,
) -> NewJob {
    let ts = now();
    NewJob {
        owner_id: caller.user_id(),
        api_key_id: caller.api_key_id,
        name,
        kind: kind.to_string(),
        payload: JsonText(payload),
        schedule: JsonText(Schedule::Once {
            once: crate::jobs::schedule::utc(ts),
        }),
        priority: 0,
        max_attempts,
        timeout_secs,
        state: JobState::Scheduled,
        paused: false,
        anchor_at: ts,
        next_run_at: Some(ts),
        due_at: Some(ts),
        created_at: ts,
        updated_at: ts,
    }
}

/// Announces a job inserted from [`internal_job`] once its transaction committed.
pub(crate) fn created_internal(state: &AppState, job: &Job) {
    changed(state, job);
}

/// Tells subscribers and every worker (all processes) that a job changed.
fn changed(state: &AppState, job: &Job) {
    announce(state, job);
    state.jobs.wake();
}

/// One job the caller may see.
pub async fn get(state: &AppState, caller: &Caller, id: i64) -> AppResult<Job> {
    let owner = scope(caller);
    let db = &state.db;
    let job: Option<Job> = db_run!(db, read, |conn| {
        let mut q = jobs::table.filter(jobs::id.eq(id)).into_boxed();
        if let Some(uid) = owner {
            q = q.filter(jobs::owner_id.eq(uid));
        }
        q.select(Job::as_select()).first(conn).await.optional()
    })?;
    job.ok_or_else(|| AppError::not_found("job"))
}

/// The caller's jobs (every job for admins), newest first, after the job id `after`;
/// returns the page and whether more follow.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    filter: JobFilter,
    first: i64,
    after: Option<i64>,
) -> AppResult<(Vec<Job>, bool)> {
    let first = first.clamp(1, validate::MAX_PAGE);
    let owner = scope(caller);
    let db = &state.db;
    let mut rows: Vec<Job> = db_run!(db, read, |conn| {
        let mut q = jobs::table.into_boxed();
        if let Some(uid) = owner {
            q = q.filter(jobs::owner_id.eq(uid));
        }
        if let Some(s) = filter.state {
            q = q.filter(jobs::state.eq(s));
        }
        if let Some(k) = &filter.kind {
            q = q.filter(jobs::kind.eq(k.clone()));
        }
        if let Some(a) = after {
            q = q.filter(jobs::id.lt(a));
        }
        q.order(jobs::id.desc())
            .limit(first + 1)
            .select(Job::as_select())
            .load(conn)
            .await
            .map_err(AppError::from)
    })?;
    let more = rows.len() as i64 > first;
    rows.truncate(first as usize);
    Ok((rows, more))
}

/// Runs of a job the caller may see, newest first.
pub async fn runs(
    state: &AppState,
    caller: &Caller,
    job_id: i64,
    first: i64,
) -> AppResult<Vec<JobRun>> {
    get(state, caller, job_id).await?;
    runs_of(state, job_id, first).await
}

/// Runs of a job, newest first (callers check visibility).
pub(crate) async fn runs_of(state: &AppState, job_id: i64, first: i64) -> AppResult<Vec<JobRun>> {
    let first = first.clamp(1, validate::MAX_PAGE);
    let db = &state.db;
    db_run!(db, read, |conn| job_runs::table
        .filter(job_runs::job_id.eq(job_id))
        .order(job_runs::id.desc())
        .limit(first)
        .select(JobRun::as_select())
        .load(conn)
        .await
        .map_err(AppError::from))
}

/// One run by id (callers check visibility of its job).
pub(crate) async fn run_by_id(state: &AppState, run_id: i64) -> AppResult<Option<JobRun>> {
    let db = &state.db;
    db_run!(db, read, |conn| job_runs::table
        .find(run_id)
        .select(JobRun::as_select())
        .first(conn)
        .await
        .optional()
        .map_err(AppError::from))
}

/// Runs by id (callers check visibility of their jobs).
pub(crate) async fn runs_by_ids(state: &AppState, ids: Vec<i64>) -> AppResult<Vec<JobRun>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let db = &state.db;
    db_run!(db, read, |conn| job_runs::table
        .filter(job_runs::id.eq_any(&ids))
        .select(JobRun::as_select())
        .load(conn)
        .await
        .map_err(AppError::from))
}

/// Applies one change to a job the caller may touch, then tells everyone.
async fn change<T: Send>(
    state: &AppState,
    caller: &Caller,
    id: i64,
    f: impl FnOnce(&mut Job) -> AppResult<T> + Send,
) -> AppResult<(Job, T)> {
    caller.require_write()?;
    let (job, out) = store::modify(&state.db, id, scope(caller), f).await?;
    changed(state, &job);
    Ok((job, out))
}

/// Changes a job. A payload is checked by its kind again; a new schedule counts from now.
pub async fn update(state: &AppState, caller: &Caller, id: i64, patch: JobPatch) -> AppResult<Job> {
    caller.require_write()?;
    let current = get(state, caller, id).await?;
    let name = patch.name.as_deref().map(check_name).transpose()?;
    if let Some(p) = &patch.payload {
        check_payload(state, caller, &current.kind, p).await?;
    }
    let schedule = patch
        .schedule
        .as_ref()
        .map(|s| schedule_of(state, s))
        .transpose()?;
    let max_attempts = patch.max_attempts.map(check_attempts).transpose()?;
    let timeout_secs = patch
        .timeout_secs
        .map(|t| check_timeout(state, t))
        .transpose()?;
    let priority = patch.priority.map(check_priority).transpose()?;
    let ts = now();
    let (job, ()) = change(state, caller, id, move |job| {
        if let Some(n) = name {
            job.name = n;
        }
        if let Some(p) = patch.payload {
            job.payload = JsonText(p);
        }
        if let Some(n) = max_attempts {
            job.max_attempts = n;
        }
        if let Some(n) = timeout_secs {
            job.timeout_secs = n;
        }
        if let Some(n) = priority {
            job.priority = n;
        }
        match schedule {
            Some(s) => {
                job.schedule = JsonText(s);
                lifecycle::reschedule(job, ts);
            }
            None => lifecycle::settle(job, ts),
        }
        Ok(())
    })
    .await?;
    Ok(job)
}

/// Starts a run as soon as a worker is free, without moving the schedule (a paused job
/// too). A job already running is a conflict.
pub async fn run_now(state: &AppState, caller: &Caller, id: i64) -> AppResult<Job> {
    let ts = now();
    let (job, ()) = change(state, caller, id, |job| request_run(job, ts)).await?;
    Ok(job)
}

/// Run-now on a loaded job: a running job refuses.
fn request_run(job: &mut Job, ts: chrono::NaiveDateTime) -> AppResult<()> {
    if job.current_run_id.is_some() {
        return Err(AppError::new(
            ErrorCode::Conflict,
            "this job is running now",
        ));
    }
    job.run_now = true;
    lifecycle::settle(job, ts);
    Ok(())
}

/// Cancel on a loaded job: flags a running run (`true`) or drops what is pending (`false`);
/// with nothing running or pending it is a conflict.
fn request_cancel(job: &mut Job, ts: chrono::NaiveDateTime) -> AppResult<bool> {
    if job.current_run_id.is_some() {
        job.cancel_requested = true;
        lifecycle::settle(job, ts);
        return Ok(true);
    }
    if lifecycle::cancel_pending(job, ts) {
        Ok(false)
    } else {
        Err(AppError::new(
            ErrorCode::Conflict,
            "nothing to cancel: the job is not running and has no pending run (pause it to stop its schedule)",
        ))
    }
}

/// Cancels: a running run is asked to stop (it ends `cancelled` at its next check point, or
/// at its timeout if it has none); a pending retry, run-now or one-off occurrence is dropped.
/// A job with nothing running or pending is a conflict (pause it to stop its schedule).
pub async fn cancel(state: &AppState, caller: &Caller, id: i64) -> AppResult<Job> {
    let ts = now();
    let (job, running) = change(state, caller, id, |job| request_cancel(job, ts)).await?;
    if running && !state.jobs.cancel_local(job.id) {
        state.events.publish(Event::JobCancelRequested {
            user_id: job.owner_id,
            job_id: job.id,
        });
    }
    Ok(job)
}

/// Pauses or resumes. A paused job keeps its schedule; a resumed one whose occurrence
/// passed meanwhile runs once.
pub async fn set_paused(
    state: &AppState,
    caller: &Caller,
    id: i64,
    paused: bool,
) -> AppResult<Job> {
    let ts = now();
    let (job, ()) = change(state, caller, id, |job| {
        job.paused = paused;
        lifecycle::settle(job, ts);
        Ok(())
    })
    .await?;
    Ok(job)
}

/// Deletes a job and its runs; a running run is asked to stop.
pub async fn delete(state: &AppState, caller: &Caller, id: i64) -> AppResult<()> {
    caller.require_write()?;
    let job = get(state, caller, id).await?;
    let db = &state.db;
    db_run!(db, write, |conn| diesel::delete(
        jobs::table.filter(jobs::id.eq(id))
    )
    .execute(conn)
    .await
    .map(|_| ())
    .map_err(AppError::from))?;
    if job.current_run_id.is_some() && !state.jobs.cancel_local(id) {
        state.events.publish(Event::JobCancelRequested {
            user_id: job.owner_id,
            job_id: id,
        });
    }
    state.events.publish(Event::JobDeleted {
        user_id: job.owner_id,
        job_id: id,
    });
    Ok(())
}

/// The identity a job runs as, checked before every run: its owner while active, with the
/// rights of the API key that created it while that key is live.
pub async fn runner_caller(state: &AppState, job: &Job) -> AppResult<Caller> {
    crate::service::auth::acting_for(state, job.owner_id, job.api_key_id).await
}

/// Operator access for the CLI: every job, no caller.
pub mod system {
    use super::*;

    /// Every job, newest first.
    pub async fn list(state: &AppState, limit: i64) -> AppResult<Vec<Job>> {
        let db = &state.db;
        db_run!(db, read, |conn| jobs::table
            .order(jobs::id.desc())
            .limit(limit)
            .select(Job::as_select())
            .load(conn)
            .await
            .map_err(AppError::from))
    }

    /// Run-now for any job.
    pub async fn run_now(state: &AppState, id: i64) -> AppResult<Job> {
        let ts = now();
        let (job, ()) = store::modify(&state.db, id, None, |job| request_run(job, ts)).await?;
        changed(state, &job);
        Ok(job)
    }

    /// Cancel for any job (a run in another process sees the flag at its next lease
    /// renewal, or at once through the event bus on PostgreSQL).
    pub async fn cancel(state: &AppState, id: i64) -> AppResult<Job> {
        let ts = now();
        let (job, _) = store::modify(&state.db, id, None, |job| request_cancel(job, ts)).await?;
        state.events.publish(Event::JobCancelRequested {
            user_id: job.owner_id,
            job_id: job.id,
        });
        changed(state, &job);
        Ok(job)
    }
}

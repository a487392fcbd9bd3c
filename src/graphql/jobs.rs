//! Jobs over GraphQL: the queue's queries, mutations and the `jobEvents` subscription.

use super::{parse_id, require_caller, to_utc};
use crate::db::enums::{JobState, RunCause, RunOutcome};
use crate::db::models::{Job, JobRun};
use crate::events::Event;
use crate::jobs::schedule::{Schedule, ScheduleInput};
use crate::service::jobs::{self, JobFilter, JobInput, JobPatch};
use crate::service::{pagination, streams, validate};
use crate::state::AppState;
use async_graphql::{
    ComplexObject, Context, Enum, InputObject, Json, Object, Result, SimpleObject, Subscription, ID,
};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

/// Where a job stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "JobState", name = "JobState")]
pub enum JobStateGql {
    /// Waiting for its next occurrence or a retry.
    Scheduled,
    /// A run is going on.
    Running,
    /// Keeps its schedule, does not run.
    Paused,
    /// A one-off job that succeeded.
    Succeeded,
    /// A one-off job that used up its attempts.
    Failed,
    /// A one-off job that was cancelled.
    Cancelled,
}

/// How a run ended.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "RunOutcome", name = "JobRunOutcome")]
pub enum RunOutcomeGql {
    /// Not ended yet.
    Running,
    /// Finished with an output.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Stopped at a cancel request.
    Cancelled,
    /// Ended at the job's timeout.
    TimedOut,
    /// Its worker stopped before it ended.
    Interrupted,
}

/// Why a run started.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "RunCause", name = "JobRunCause")]
pub enum RunCauseGql {
    /// The schedule came due.
    Schedule,
    /// A failed attempt tried again.
    Retry,
    /// Run now.
    Manual,
}

/// When a job runs: exactly one of `once`, `everySecs`, `cron` is set.
#[derive(SimpleObject)]
pub struct JobSchedule {
    /// One run at this time.
    pub once: Option<DateTime<Utc>>,
    /// A run every this many seconds.
    pub every_secs: Option<i64>,
    /// A cron expression (5 fields, or 6 with seconds first).
    pub cron: Option<String>,
    /// The cron expression's IANA time zone.
    pub timezone: Option<String>,
}

impl From<&Schedule> for JobSchedule {
    fn from(s: &Schedule) -> Self {
        let mut out = JobSchedule {
            once: None,
            every_secs: None,
            cron: None,
            timezone: None,
        };
        match s {
            Schedule::Once { once } => out.once = Some(*once),
            Schedule::Every { every_secs } => out.every_secs = Some(*every_secs),
            Schedule::Cron { cron, timezone } => {
                out.cron = Some(cron.clone());
                out.timezone = Some(timezone.clone());
            }
        }
        out
    }
}

/// A schedule to set: exactly one of `once`, `everySecs`, `cron` (with an optional
/// `timezone`, default UTC).
#[derive(InputObject, Default)]
pub struct JobScheduleInput {
    /// One run at this time (a past time runs at once).
    pub once: Option<DateTime<Utc>>,
    /// A run every this many seconds (at least `jobs.min_interval_secs`).
    pub every_secs: Option<i64>,
    /// A cron expression: 5 fields, or 6 with seconds first.
    pub cron: Option<String>,
    /// IANA time zone of the cron expression.
    pub timezone: Option<String>,
}

impl From<JobScheduleInput> for ScheduleInput {
    fn from(s: JobScheduleInput) -> Self {
        ScheduleInput {
            once: s.once.map(|t| Value::String(t.to_rfc3339())),
            every_secs: s.every_secs,
            cron: s.cron,
            timezone: s.timezone,
        }
    }
}

/// A new job.
#[derive(InputObject)]
pub struct CreateJobInput {
    /// Display name.
    pub name: String,
    /// The kind (see `jobKinds`).
    pub kind: String,
    /// The kind's input (a JSON object).
    pub payload: Option<Json<Value>>,
    /// When it runs.
    pub schedule: JobScheduleInput,
    /// Attempts per occurrence (1: no retry).
    pub max_attempts: Option<i64>,
    /// Seconds before a run is ended as timed out.
    pub timeout_secs: Option<i64>,
    /// -100 to 100; higher runs first among due jobs.
    pub priority: Option<i64>,
    /// Create it paused.
    pub paused: Option<bool>,
}

/// Changes to a job; omitted fields stay.
#[derive(InputObject)]
pub struct UpdateJobInput {
    /// Display name.
    pub name: Option<String>,
    /// The kind's input.
    pub payload: Option<Json<Value>>,
    /// A new schedule (ticks count from now).
    pub schedule: Option<JobScheduleInput>,
    /// Attempts per occurrence.
    pub max_attempts: Option<i64>,
    /// Timeout in seconds.
    pub timeout_secs: Option<i64>,
    /// Priority.
    pub priority: Option<i64>,
}

/// Which jobs to list.
#[derive(InputObject, Default)]
pub struct JobFilterInput {
    /// Only jobs in this state.
    pub state: Option<JobStateGql>,
    /// Only jobs of this kind.
    pub kind: Option<String>,
}

/// One run of a job.
pub struct JobRunObject(pub JobRun);

#[Object(name = "JobRun")]
impl JobRunObject {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn job_id(&self) -> ID {
        ID(self.0.job_id.to_string())
    }
    /// 1 for the first attempt of an occurrence.
    async fn attempt(&self) -> i32 {
        self.0.attempt
    }
    async fn cause(&self) -> RunCauseGql {
        self.0.cause.into()
    }
    async fn outcome(&self) -> RunOutcomeGql {
        self.0.outcome.into()
    }
    /// The worker (process) that ran it.
    async fn worker(&self) -> &str {
        &self.0.worker
    }
    /// The kind's output.
    async fn output(&self) -> Option<Json<Value>> {
        self.0
            .output
            .as_deref()
            .and_then(|o| serde_json::from_str(o).ok())
            .map(Json)
    }
    /// What went wrong.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    async fn started_at(&self) -> DateTime<Utc> {
        to_utc(self.0.started_at)
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at.map(to_utc)
    }
}

/// A job: what runs, when, with which policy, and how its runs went.
#[derive(SimpleObject)]
#[graphql(complex, name = "Job")]
pub struct JobObject {
    #[graphql(skip)]
    pub row: Job,
    /// Id.
    pub id: ID,
    /// Display name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// The kind's input.
    pub payload: Json<Value>,
    /// When it runs.
    pub schedule: JobSchedule,
    /// Where it stands.
    pub state: JobStateGql,
    /// Paused (keeps its schedule, does not run).
    pub paused: bool,
    /// Higher runs first.
    pub priority: i32,
    /// Attempts per occurrence.
    pub max_attempts: i32,
    /// Seconds before a run is ended.
    pub timeout_secs: i32,
    /// Attempts made at the current occurrence.
    pub attempt: i32,
    /// The schedule's next occurrence.
    pub next_run_at: Option<DateTime<Utc>>,
    /// A pending retry.
    pub retry_at: Option<DateTime<Utc>>,
    /// A run-now request waits for a worker.
    pub run_now_pending: bool,
    /// The running run was asked to stop.
    pub cancel_requested: bool,
    /// The running run's latest progress report.
    pub progress: Option<Json<Value>>,
    /// The owner's user id.
    pub owner_id: ID,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<Job> for JobObject {
    fn from(j: Job) -> Self {
        JobObject {
            id: ID(j.id.to_string()),
            name: j.name.clone(),
            kind: j.kind.clone(),
            payload: Json(j.payload.0.clone()),
            schedule: JobSchedule::from(&j.schedule.0),
            state: j.state.into(),
            paused: j.paused,
            priority: j.priority,
            max_attempts: j.max_attempts,
            timeout_secs: j.timeout_secs,
            attempt: j.attempt,
            next_run_at: j.next_run_at.map(to_utc),
            retry_at: j.retry_at.map(to_utc),
            run_now_pending: j.run_now,
            cancel_requested: j.cancel_requested,
            progress: j
                .progress
                .as_deref()
                .and_then(|p| serde_json::from_str(p).ok())
                .map(Json),
            owner_id: ID(j.owner_id.to_string()),
            created_at: to_utc(j.created_at),
            updated_at: to_utc(j.updated_at),
            row: j,
        }
    }
}

#[ComplexObject]
impl JobObject {
    /// The latest run.
    async fn last_run(&self, ctx: &Context<'_>) -> Result<Option<JobRunObject>> {
        let Some(id) = self.row.last_run_id else {
            return Ok(None);
        };
        Ok(jobs::run_by_id(ctx.data::<AppState>()?, id)
            .await?
            .map(JobRunObject))
    }

    /// Runs, newest first (at most 100).
    async fn runs(&self, ctx: &Context<'_>, first: Option<i32>) -> Result<Vec<JobRunObject>> {
        let first = validate::limit(first.map(i64::from), 20)?;
        Ok(jobs::runs_of(ctx.data::<AppState>()?, self.row.id, first)
            .await?
            .into_iter()
            .map(JobRunObject)
            .collect())
    }
}

/// A page of jobs.
#[derive(SimpleObject)]
pub struct JobConnection {
    /// The page, newest first.
    pub jobs: Vec<JobObject>,
    /// Pass as `after` for the next page.
    pub end_cursor: Option<String>,
    /// Whether more jobs follow.
    pub has_next_page: bool,
}

/// Job queries.
#[derive(Default)]
pub struct JobQuery;

#[Object]
impl JobQuery {
    /// The caller's jobs (every job for admins), newest first.
    async fn jobs(
        &self,
        ctx: &Context<'_>,
        filter: Option<JobFilterInput>,
        first: Option<i64>,
        after: Option<String>,
    ) -> Result<JobConnection> {
        let caller = require_caller(ctx)?;
        let filter = filter.unwrap_or_default();
        let first = validate::limit(first, 20)?;
        let after = after.as_deref().map(pagination::decode).transpose()?;
        let (rows, more) = jobs::list(
            ctx.data::<AppState>()?,
            caller,
            JobFilter {
                state: filter.state.map(Into::into),
                kind: filter.kind,
            },
            first,
            after,
        )
        .await?;
        Ok(JobConnection {
            end_cursor: rows.last().map(|j| pagination::encode(j.id)),
            has_next_page: more,
            jobs: rows.into_iter().map(JobObject::from).collect(),
        })
    }

    /// One job the caller may see.
    async fn job(&self, ctx: &Context<'_>, id: ID) -> Result<JobObject> {
        let caller = require_caller(ctx)?;
        Ok(jobs::get(ctx.data::<AppState>()?, caller, parse_id(&id)?)
            .await?
            .into())
    }

    /// The job kinds this server runs.
    async fn job_kinds(&self, ctx: &Context<'_>) -> Result<Vec<String>> {
        require_caller(ctx)?;
        Ok(ctx
            .data::<AppState>()?
            .jobs
            .kind_names()
            .into_iter()
            .map(str::to_string)
            .collect())
    }
}

/// Job mutations.
#[derive(Default)]
pub struct JobMutation;

#[Object]
impl JobMutation {
    /// Creates a job owned by the caller.
    async fn create_job(&self, ctx: &Context<'_>, input: CreateJobInput) -> Result<JobObject> {
        let caller = require_caller(ctx)?;
        let job = jobs::create(
            ctx.data::<AppState>()?,
            caller,
            JobInput {
                name: input.name,
                kind: input.kind,
                payload: input
                    .payload
                    .map(|p| p.0)
                    .unwrap_or_else(|| Value::Object(Default::default())),
                schedule: input.schedule.into(),
                max_attempts: input.max_attempts,
                timeout_secs: input.timeout_secs,
                priority: input.priority,
                paused: input.paused,
            },
        )
        .await?;
        Ok(job.into())
    }

    /// Changes a job.
    async fn update_job(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateJobInput,
    ) -> Result<JobObject> {
        let caller = require_caller(ctx)?;
        let job = jobs::update(
            ctx.data::<AppState>()?,
            caller,
            parse_id(&id)?,
            JobPatch {
                name: input.name,
                payload: input.payload.map(|p| p.0),
                schedule: input.schedule.map(Into::into),
                max_attempts: input.max_attempts,
                timeout_secs: input.timeout_secs,
                priority: input.priority,
            },
        )
        .await?;
        Ok(job.into())
    }

    /// Starts a run now without moving the schedule.
    async fn run_job_now(&self, ctx: &Context<'_>, id: ID) -> Result<JobObject> {
        let caller = require_caller(ctx)?;
        Ok(
            jobs::run_now(ctx.data::<AppState>()?, caller, parse_id(&id)?)
                .await?
                .into(),
        )
    }

    /// Stops the running run (cooperatively; at the latest at its timeout) or drops the
    /// pending one.
    async fn cancel_job(&self, ctx: &Context<'_>, id: ID) -> Result<JobObject> {
        let caller = require_caller(ctx)?;
        Ok(
            jobs::cancel(ctx.data::<AppState>()?, caller, parse_id(&id)?)
                .await?
                .into(),
        )
    }

    /// Pauses: the job keeps its schedule and does not run.
    async fn pause_job(&self, ctx: &Context<'_>, id: ID) -> Result<JobObject> {
        let caller = require_caller(ctx)?;
        Ok(
            jobs::set_paused(ctx.data::<AppState>()?, caller, parse_id(&id)?, true)
                .await?
                .into(),
        )
    }

    /// Resumes a paused job.
    async fn resume_job(&self, ctx: &Context<'_>, id: ID) -> Result<JobObject> {
        let caller = require_caller(ctx)?;
        Ok(
            jobs::set_paused(ctx.data::<AppState>()?, caller, parse_id(&id)?, false)
                .await?
                .into(),
        )
    }

    /// Deletes a job and its runs (a running run is asked to stop).
    async fn delete_job(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let caller = require_caller(ctx)?;
        jobs::delete(ctx.data::<AppState>()?, caller, parse_id(&id)?).await?;
        Ok(true)
    }
}

/// What happened to a job.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum JobEventKind {
    /// Created or changed: state, schedule, a run started or ended.
    Changed,
    /// The running run reported progress.
    Progress,
    /// Deleted.
    Deleted,
}

/// A change to a job.
#[derive(SimpleObject)]
pub struct JobEvent {
    /// What happened.
    pub kind: JobEventKind,
    /// The job.
    pub job_id: ID,
    /// The job as it is now (null once deleted).
    pub job: Option<JobObject>,
    /// The run that reported progress.
    pub run_id: Option<ID>,
    /// The progress report.
    pub progress: Option<Json<Value>>,
}

/// Job subscriptions.
#[derive(Default)]
pub struct JobSubscription;

#[Subscription]
impl JobSubscription {
    /// Changes to the caller's jobs (every job for admins), or to one job.
    async fn job_events(
        &self,
        ctx: &Context<'_>,
        job_id: Option<ID>,
    ) -> Result<impl Stream<Item = JobEvent>> {
        let caller = require_caller(ctx)?.clone();
        let state = ctx.data::<AppState>()?.clone();
        let only = job_id.as_ref().map(parse_id).transpose()?;
        if let Some(id) = only {
            jobs::get(&state, &caller, id).await?;
        }
        let mut rx = state.events.subscribe();
        Ok(async_stream::stream! {
            let end = streams::stream_end(&state, &caller, None);
            tokio::pin!(end);
            loop {
                let event = tokio::select! {
                    _ = &mut end => break,
                    e = rx.recv() => match e {
                        Ok(e) => e,
                        Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => break,
                    },
                };
                let (user_id, id) = match &event {
                    Event::JobChanged { user_id, job_id }
                    | Event::JobDeleted { user_id, job_id }
                    | Event::JobProgress { user_id, job_id, .. } => (*user_id, *job_id),
                    _ => continue,
                };
                if (user_id != caller.user_id() && !caller.is_admin()) || only.is_some_and(|o| o != id) {
                    continue;
                }
                match event {
                    Event::JobChanged { .. } => {
                        // A job deleted right after its change simply yields nothing.
                        if let Ok(job) = jobs::get(&state, &caller, id).await {
                            yield JobEvent { kind: JobEventKind::Changed, job_id: ID(id.to_string()), job: Some(job.into()), run_id: None, progress: None };
                        }
                    }
                    Event::JobDeleted { .. } => {
                        yield JobEvent { kind: JobEventKind::Deleted, job_id: ID(id.to_string()), job: None, run_id: None, progress: None };
                        if only.is_some() {
                            break;
                        }
                    }
                    Event::JobProgress { run_id, progress, .. } => {
                        yield JobEvent {
                            kind: JobEventKind::Progress,
                            job_id: ID(id.to_string()),
                            job: None,
                            run_id: Some(ID(run_id.to_string())),
                            progress: serde_json::from_str(&progress).ok().map(Json),
                        };
                    }
                    _ => {}
                }
            }
        })
    }
}

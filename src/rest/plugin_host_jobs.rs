//! Seed 003 (plugin host): the jobs doors. Cookie sessions with `X-CSRF-Token`, bearer
//! tokens and API keys all work. As the seed documents, an invalid request is a 400 (the
//! body names the field in `details.field`), a missing or foreign job a 404.
//!
//! Besides the documented doors: `GET /jobs/{id}/runs`, `POST /jobs/{id}/pause` and
//! `POST /jobs/{id}/resume`.

use super::openapi::PLUGIN_HOST;
use super::DocRouter;
use crate::db::enums::JobState;
use crate::db::models::{Job, JobRun};
use crate::error::AppError;
use crate::http::extract::{path_id, AuthCaller, JsonBody};
use crate::jobs::schedule::{Schedule, ScheduleInput};
use crate::rest::{ts, ts_opt};
use crate::service::jobs::{self, JobFilter, JobInput, JobPatch};
use crate::service::{pagination, validate};
use crate::state::AppState;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use utoipa::IntoParams;
use utoipa_axum::routes;

/// Routes.
pub fn router() -> DocRouter {
    DocRouter::new()
        .routes(routes!(list))
        .routes(routes!(add))
        .routes(routes!(detail, remove))
        .routes(routes!(runs))
        .routes(routes!(run_now))
        .routes(routes!(update))
        .routes(routes!(cancel))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .layer(middleware::from_fn(bad_request_status))
}

/// Seed 003 knows one status for an invalid request: 400.
pub(crate) async fn bad_request_status(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    if res.status() == StatusCode::UNPROCESSABLE_ENTITY {
        *res.status_mut() = StatusCode::BAD_REQUEST;
    }
    res
}

/// A run as the doors show it.
pub fn run_json(r: &JobRun) -> Value {
    json!({
        "id": r.id,
        "job_id": r.job_id,
        "attempt": r.attempt,
        "cause": r.cause,
        "outcome": r.outcome,
        "worker": r.worker,
        "output": r.output.as_deref().and_then(|o| serde_json::from_str::<Value>(o).ok()),
        "error": r.error,
        "started_at": ts(r.started_at),
        "finished_at": ts_opt(r.finished_at),
    })
}

fn schedule_json(s: &Schedule) -> Value {
    match s {
        Schedule::Once { once } => json!({ "once": ts(once.naive_utc()) }),
        Schedule::Every { every_secs } => json!({ "every_secs": every_secs }),
        Schedule::Cron { cron, timezone } => json!({ "cron": cron, "timezone": timezone }),
    }
}

/// A job as the doors show it, with its latest run when known.
pub fn job_json(j: &Job, last_run: Option<&JobRun>) -> Value {
    json!({
        "id": j.id,
        "name": j.name,
        "kind": j.kind,
        "payload": j.payload.0,
        "schedule": schedule_json(&j.schedule.0),
        "state": j.state,
        "paused": j.paused,
        "priority": j.priority,
        "max_attempts": j.max_attempts,
        "timeout_secs": j.timeout_secs,
        "attempt": j.attempt,
        "cancel_requested": j.cancel_requested,
        "run_now_pending": j.run_now,
        "next_run_at": ts_opt(j.next_run_at),
        "retry_at": ts_opt(j.retry_at),
        "progress": j.progress.as_deref().and_then(|p| serde_json::from_str::<Value>(p).ok()),
        "owner_id": j.owner_id,
        "created_at": ts(j.created_at),
        "updated_at": ts(j.updated_at),
        "last_run": last_run.map(run_json),
    })
}

/// Reads one optional key of a body object; a value of the wrong type is refused naming
/// `field`.
fn take<T: DeserializeOwned>(
    body: &mut Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Option<T>, AppError> {
    match body.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v).map(Some).map_err(|e| {
            let why = e.to_string();
            let why = why.split(" at line").next().unwrap_or("invalid value");
            AppError::validation(field, format!("{field}: {why}"))
        }),
    }
}

/// The fields of an add or update body; unknown keys are refused by name.
struct Body {
    name: Option<String>,
    kind: Option<String>,
    payload: Option<Value>,
    schedule: Option<ScheduleInput>,
    max_attempts: Option<i64>,
    timeout_secs: Option<i64>,
    priority: Option<i64>,
    paused: Option<bool>,
}

fn read_body(body: Value) -> Result<Body, AppError> {
    let Value::Object(mut obj) = body else {
        return Err(AppError::validation(
            "body",
            "the body must be a JSON object",
        ));
    };
    let schedule = match obj.remove("schedule") {
        None | Some(Value::Null) => None,
        Some(Value::Object(mut s)) => {
            let input = ScheduleInput {
                once: take(&mut s, "once", "schedule.once")?,
                every_secs: take(&mut s, "every_secs", "schedule.every_secs")?,
                cron: take(&mut s, "cron", "schedule.cron")?,
                timezone: take(&mut s, "timezone", "schedule.timezone")?,
            };
            if let Some(k) = s.keys().next() {
                return Err(AppError::validation(
                    &format!("schedule.{k}"),
                    format!("unknown schedule field {k:?}; use once, every_secs or cron (with timezone)"),
                ));
            }
            Some(input)
        }
        Some(_) => {
            return Err(AppError::validation(
                "schedule",
                "schedule must be an object",
            ))
        }
    };
    let body = Body {
        name: take(&mut obj, "name", "name")?,
        kind: take(&mut obj, "kind", "kind")?,
        payload: take(&mut obj, "payload", "payload")?,
        schedule,
        max_attempts: take(&mut obj, "max_attempts", "max_attempts")?,
        timeout_secs: take(&mut obj, "timeout_secs", "timeout_secs")?,
        priority: take(&mut obj, "priority", "priority")?,
        paused: take(&mut obj, "paused", "paused")?,
    };
    if let Some(k) = obj.keys().next() {
        return Err(AppError::validation(k, format!("unknown field {k:?}")));
    }
    Ok(body)
}

async fn with_last_run(state: &AppState, job: &Job) -> Result<Value, AppError> {
    let last = match job.last_run_id {
        Some(id) => jobs::run_by_id(state, id).await?,
        None => None,
    };
    Ok(job_json(job, last.as_ref()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only jobs in this state.
    state: Option<String>,
    /// Only jobs of this kind.
    kind: Option<String>,
    /// Jobs per page (default 50).
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    after: Option<String>,
}

/// The caller's jobs, a page at a time, each with its latest run.
#[utoipa::path(get, path = "/jobs", tag = PLUGIN_HOST, params(ListQuery),
    responses((status = 200, description = "`{jobs, next_cursor}` (`next_cursor` null on the last page)", body = Object)))]
async fn list(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, AppError> {
    let job_state = q
        .state
        .as_deref()
        .map(|s| {
            JobState::parse(s)
                .ok_or_else(|| AppError::validation("state", format!("unknown state {s:?}")))
        })
        .transpose()?;
    let limit = validate::limit(q.limit, 50)?;
    let after = q.after.as_deref().map(pagination::decode).transpose()?;
    let (rows, more) = jobs::list(
        &state,
        &caller,
        JobFilter {
            state: job_state,
            kind: q.kind,
        },
        limit,
        after,
    )
    .await?;
    let ids: Vec<i64> = rows.iter().filter_map(|j| j.last_run_id).collect();
    let last: HashMap<i64, JobRun> = jobs::runs_by_ids(&state, ids)
        .await?
        .into_iter()
        .map(|r| (r.id, r))
        .collect();
    let items: Vec<Value> = rows
        .iter()
        .map(|j| job_json(j, j.last_run_id.and_then(|id| last.get(&id))))
        .collect();
    Ok(Json(json!({
        "jobs": items,
        "next_cursor": if more { rows.last().map(|j| pagination::encode(j.id)) } else { None },
    })))
}

/// Creates a job.
#[utoipa::path(post, path = "/jobs/add", tag = PLUGIN_HOST,
    request_body(content = Object, description = "`{name, kind, schedule, payload?, max_attempts?, timeout_secs?, priority?, paused?}`: \
        `payload` any JSON (default `{}`); `schedule` exactly one of `{once}` (RFC 3339 time or seconds since the epoch), \
        `{every_secs}` or `{cron, timezone?}`; unknown keys are refused"),
    responses((status = 200, description = "`{id, job}`", body = Object)))]
async fn add(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, AppError> {
    let b = read_body(body)?;
    let job = jobs::create(
        &state,
        &caller,
        JobInput {
            name: b
                .name
                .ok_or_else(|| AppError::validation("name", "name is required"))?,
            kind: b
                .kind
                .ok_or_else(|| AppError::validation("kind", "kind is required"))?,
            payload: b.payload.unwrap_or_else(|| json!({})),
            schedule: b
                .schedule
                .ok_or_else(|| AppError::validation("schedule", "schedule is required"))?,
            max_attempts: b.max_attempts,
            timeout_secs: b.timeout_secs,
            priority: b.priority,
            paused: b.paused,
        },
    )
    .await?;
    Ok(Json(json!({ "id": job.id, "job": job_json(&job, None) })))
}

/// One job, with its latest run and `cancel_requested`.
#[utoipa::path(get, path = "/jobs/{id}", tag = PLUGIN_HOST,
    params(("id" = i64, Path, description = "The job's id")),
    responses((status = 200, description = "The job (with `last_run`)", body = Object)))]
async fn detail(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let job = jobs::get(&state, &caller, path_id(&id)?).await?;
    Ok(Json(with_last_run(&state, &job).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RunsQuery {
    /// Runs to show (default 20).
    limit: Option<i64>,
}

/// A job's runs, newest first.
#[utoipa::path(get, path = "/jobs/{id}/runs", tag = PLUGIN_HOST,
    params(("id" = i64, Path, description = "The job's id"), RunsQuery),
    responses((status = 200, description = "`{runs}`", body = Object)))]
async fn runs(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(id): Path<String>,
    Query(q): Query<RunsQuery>,
) -> Result<Json<Value>, AppError> {
    let limit = validate::limit(q.limit, 20)?;
    let rows = jobs::runs(&state, &caller, path_id(&id)?, limit).await?;
    Ok(Json(
        json!({ "runs": rows.iter().map(run_json).collect::<Vec<_>>() }),
    ))
}

/// Changes a job (its kind cannot change).
#[utoipa::path(post, path = "/jobs/{id}/update", tag = PLUGIN_HOST,
    params(("id" = i64, Path, description = "The job's id")),
    request_body(content = Object, description = "Any of `name`, `payload`, `schedule` (as in `/jobs/add`), `max_attempts`, \
        `timeout_secs`, `priority`, `paused`; `kind` cannot change and unknown keys are refused"),
    responses((status = 200, description = "The job (with `last_run`)", body = Object)))]
async fn update(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, AppError> {
    let id = path_id(&id)?;
    let b = read_body(body)?;
    if b.kind.is_some() {
        return Err(AppError::validation(
            "kind",
            "a job's kind cannot change; create another job",
        ));
    }
    let mut job = jobs::update(
        &state,
        &caller,
        id,
        JobPatch {
            name: b.name,
            payload: b.payload,
            schedule: b.schedule,
            max_attempts: b.max_attempts,
            timeout_secs: b.timeout_secs,
            priority: b.priority,
        },
    )
    .await?;
    if let Some(p) = b.paused {
        job = jobs::set_paused(&state, &caller, id, p).await?;
    }
    Ok(Json(with_last_run(&state, &job).await?))
}

/// Asks for a run of the job now (refused while it is running).
#[utoipa::path(post, path = "/jobs/{id}/run-now", tag = PLUGIN_HOST,
    params(("id" = i64, Path, description = "The job's id")),
    responses((status = 200, description = "The job (with `last_run`)", body = Object)))]
async fn run_now(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let job = jobs::run_now(&state, &caller, path_id(&id)?).await?;
    Ok(Json(with_last_run(&state, &job).await?))
}

/// Cancels a job's running run (flagged to stop), or drops its pending run.
#[utoipa::path(post, path = "/jobs/{id}/cancel", tag = PLUGIN_HOST,
    params(("id" = i64, Path, description = "The job's id")),
    responses((status = 200, description = "The job (with `last_run`)", body = Object)))]
async fn cancel(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let job = jobs::cancel(&state, &caller, path_id(&id)?).await?;
    Ok(Json(with_last_run(&state, &job).await?))
}

/// Pauses a job: it keeps its schedule but does not run until resumed.
#[utoipa::path(post, path = "/jobs/{id}/pause", tag = PLUGIN_HOST,
    params(("id" = i64, Path, description = "The job's id")),
    responses((status = 200, description = "The job (with `last_run`)", body = Object)))]
async fn pause(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let job = jobs::set_paused(&state, &caller, path_id(&id)?, true).await?;
    Ok(Json(with_last_run(&state, &job).await?))
}

/// Resumes a paused job; an occurrence that passed meanwhile runs once.
#[utoipa::path(post, path = "/jobs/{id}/resume", tag = PLUGIN_HOST,
    params(("id" = i64, Path, description = "The job's id")),
    responses((status = 200, description = "The job (with `last_run`)", body = Object)))]
async fn resume(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let job = jobs::set_paused(&state, &caller, path_id(&id)?, false).await?;
    Ok(Json(with_last_run(&state, &job).await?))
}

/// Deletes a job; a running run is told to stop.
#[utoipa::path(delete, path = "/jobs/{id}", tag = PLUGIN_HOST,
    params(("id" = i64, Path, description = "The job's id")),
    responses((status = 200, description = "`{ok: true}`", body = Object)))]
async fn remove(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    jobs::delete(&state, &caller, path_id(&id)?).await?;
    Ok(Json(json!({ "ok": true })))
}

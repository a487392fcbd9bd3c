//! Seed 003 (plugin host): the jobs doors. Cookie sessions with `X-CSRF-Token`, bearer
//! tokens and API keys all work. As the seed documents, an invalid request is a 400 (the
//! body names the field in `details.field`), a missing or foreign job a 404.
//!
//! Besides the documented doors: `GET /jobs/{id}/runs`, `POST /jobs/{id}/pause` and
//! `POST /jobs/{id}/resume`.

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
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// Routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/jobs", get(list))
        .route("/jobs/add", post(add))
        .route("/jobs/{id}", get(detail).delete(remove))
        .route("/jobs/{id}/runs", get(runs))
        .route("/jobs/{id}/run-now", post(run_now))
        .route("/jobs/{id}/update", post(update))
        .route("/jobs/{id}/cancel", post(cancel))
        .route("/jobs/{id}/pause", post(pause))
        .route("/jobs/{id}/resume", post(resume))
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

#[derive(Deserialize)]
struct ListQuery {
    state: Option<String>,
    kind: Option<String>,
    limit: Option<i64>,
    after: Option<String>,
}

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

async fn detail(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let job = jobs::get(&state, &caller, path_id(&id)?).await?;
    Ok(Json(with_last_run(&state, &job).await?))
}

#[derive(Deserialize)]
struct RunsQuery {
    limit: Option<i64>,
}

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

async fn run_now(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let job = jobs::run_now(&state, &caller, path_id(&id)?).await?;
    Ok(Json(with_last_run(&state, &job).await?))
}

async fn cancel(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let job = jobs::cancel(&state, &caller, path_id(&id)?).await?;
    Ok(Json(with_last_run(&state, &job).await?))
}

async fn pause(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let job = jobs::set_paused(&state, &caller, path_id(&id)?, true).await?;
    Ok(Json(with_last_run(&state, &job).await?))
}

async fn resume(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let job = jobs::set_paused(&state, &caller, path_id(&id)?, false).await?;
    Ok(Json(with_last_run(&state, &job).await?))
}

async fn remove(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    jobs::delete(&state, &caller, path_id(&id)?).await?;
    Ok(Json(json!({ "ok": true })))
}

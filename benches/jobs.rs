//! The job queue: how many trivial jobs a worker dispatches per second (one process on
//! SQLite, one and two processes on PostgreSQL), how late a due job starts with 10 000 jobs
//! scheduled, and how much CPU an idle worker uses with those 10 000 jobs waiting.
//!
//! Each "process" is a full Hearth state (its own pools, event bridge and worker) built in
//! this program; two of them on one PostgreSQL database behave as two `hearth serve`
//! processes. The jobs are of a kind registered here, `bench_noop`, that records how late it
//! started and does nothing else, so the numbers are the queue's own cost.
//!
//! PostgreSQL parts run when `HEARTH_TEST_PG_URL` names a server (`make bench` starts one).
//! Tunables: HEARTH_BENCH_JOBS (default 3000), HEARTH_BENCH_IDLE_SECS (default 10).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{Duration as ChronoDuration, NaiveDateTime};
use diesel_async::RunQueryDsl;
use hearth::auth::Caller;
use hearth::config::Config;
use hearth::db::enums::JobState;
use hearth::db::json::JsonText;
use hearth::db::models::NewJob;
use hearth::db::schema::jobs;
use hearth::error::AppResult;
use hearth::jobs::schedule::Schedule;
use hearth::jobs::{JobContext, JobError, JobKind};
use hearth::state::AppState;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Start delays (ms after the due time) of the runs so far.
static DELAYS: Mutex<Vec<f64>> = Mutex::new(Vec::new());

struct Noop;

#[async_trait::async_trait]
impl JobKind for Noop {
    fn name(&self) -> &'static str {
        "bench_noop"
    }
    async fn check(&self, _: &AppState, _: &Caller, _: &Value) -> AppResult<()> {
        Ok(())
    }
    async fn run(&self, ctx: &JobContext) -> Result<Value, JobError> {
        if let Some(due) = ctx.payload["due_us"].as_i64() {
            let late = chrono::Utc::now().timestamp_micros() - due;
            DELAYS.lock().unwrap().push(late as f64 / 1000.0);
        }
        Ok(json!({}))
    }
}

async fn pg_database(admin: &str) -> String {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let name = format!("hearth_bench_{}", uuid::Uuid::new_v4().simple());
    let mut conn = AsyncPgConnection::establish(admin).await.unwrap();
    conn.batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
}

/// A serving Hearth state (worker running) with the bench kind registered.
async fn process(dir: &std::path::Path, db_url: &str) -> AppState {
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        database_url: Some(db_url.to_string()),
        jwt_secret: Some("bench-secret-bench-secret-bench-secret-0123".into()),
        register_rate_limit: 0,
        ..Config::default()
    };
    config.jobs.workers = 8;
    config.llm.local_model = dir.join("no-model.gguf");
    let (state, _router) = hearth::http::app_for(config).await.unwrap();
    state.jobs.register(Arc::new(Noop));
    state
}

async fn owner(state: &AppState) -> i64 {
    hearth::service::auth::register(
        state,
        hearth::service::auth::RegisterInput {
            email: format!("{}@example.com", uuid::Uuid::new_v4().simple()),
            password: "password123".into(),
            username: None,
            name: None,
            admin: false,
            setup_token: None,
        },
        true,
        &Default::default(),
    )
    .await
    .unwrap()
    .id
}

/// Inserts one-off `bench_noop` jobs due at the given times, in batches.
async fn insert_due(state: &AppState, owner: i64, due: &[NaiveDateTime]) {
    let now = hearth::service::now();
    let rows: Vec<NewJob> = due
        .iter()
        .map(|t| NewJob {
            owner_id: owner,
            api_key_id: None,
            name: "bench".into(),
            kind: "bench_noop".into(),
            payload: JsonText(json!({ "due_us": t.and_utc().timestamp_micros() })),
            schedule: JsonText(Schedule::Once { once: t.and_utc() }),
            priority: 0,
            max_attempts: 1,
            timeout_secs: 60,
            state: JobState::Scheduled,
            paused: false,
            anchor_at: now,
            next_run_at: Some(*t),
            due_at: Some(*t),
            created_at: now,
            updated_at: now,
        })
        .collect();
    for chunk in rows.chunks(500) {
        store_rows(state, chunk.to_vec()).await.unwrap();
    }
    state.jobs.wake();
}

/// One transaction per batch (SQLite's diesel has no multi-row insert with defaults).
async fn store_rows(state: &AppState, rows: Vec<NewJob>) -> AppResult<()> {
    let db = &state.db;
    hearth::db_run!(db, write, |conn| {
        for row in &rows {
            diesel::insert_into(jobs::table)
                .values(row.clone())
                .execute(conn)
                .await?;
        }
        Ok(())
    })
}

async fn count_succeeded(state: &AppState) -> AppResult<i64> {
    use diesel::{ExpressionMethods, QueryDsl};
    let db = &state.db;
    hearth::db_run!(db, read, |conn| jobs::table
        .filter(jobs::state.eq(JobState::Succeeded))
        .count()
        .get_result(conn)
        .await
        .map_err(hearth::error::AppError::from))
}

async fn succeeded(state: &AppState) -> i64 {
    count_succeeded(state).await.unwrap()
}

/// Jobs per second for `n` jobs due now, run by `states` (sharing one database).
async fn throughput(states: &[AppState], n: usize) -> f64 {
    let uid = owner(&states[0]).await;
    let before = succeeded(&states[0]).await as usize;
    let now = hearth::service::now();
    let due = vec![now; n];
    let start = Instant::now();
    insert_due(&states[0], uid, &due).await;
    for s in states {
        s.jobs.wake();
    }
    while (succeeded(&states[0]).await as usize) < before + n {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// The floor beside the queue: the two write transactions any durable queue that keeps runs
/// spends per job (start: a run row and the job's state; end: both again), issued back to
/// back on one connection, with no claiming, leases, events or kind. Jobs per second.
async fn floor(state: &AppState, n: usize) -> f64 {
    let uid = owner(state).await;
    let now = hearth::service::now();
    insert_due(state, uid, &[now + ChronoDuration::days(2)]).await;
    let job_id = first_job_of(state, uid).await.unwrap();
    let start = Instant::now();
    for _ in 0..n {
        floor_one(state, job_id).await.unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

async fn first_job_of(state: &AppState, uid: i64) -> AppResult<i64> {
    use diesel::{ExpressionMethods, QueryDsl};
    let db = &state.db;
    hearth::db_run!(db, read, |conn| jobs::table
        .filter(jobs::owner_id.eq(uid))
        .select(jobs::id)
        .first(conn)
        .await
        .map_err(hearth::error::AppError::from))
}

async fn floor_one(state: &AppState, job_id: i64) -> AppResult<()> {
    use diesel::{ExpressionMethods, QueryDsl};
    use hearth::db::enums::{RunCause, RunOutcome};
    use hearth::db::models::NewJobRun;
    use hearth::db::schema::job_runs;
    let db = &state.db;
    let now = hearth::service::now();
    let run_id: i64 = hearth::db_run!(db, write, |conn| {
        let id = diesel::insert_into(job_runs::table)
            .values(NewJobRun {
                job_id,
                attempt: 1,
                cause: RunCause::Schedule,
                outcome: RunOutcome::Running,
                worker: "floor".into(),
                started_at: now,
            })
            .returning(job_runs::id)
            .get_result(conn)
            .await?;
        diesel::update(jobs::table.filter(jobs::id.eq(job_id)))
            .set((
                jobs::state.eq(JobState::Running),
                jobs::current_run_id.eq(Some(id)),
            ))
            .execute(conn)
            .await?;
        Ok::<_, hearth::error::AppError>(id)
    })?;
    hearth::db_run!(db, write, |conn| {
        diesel::update(job_runs::table.filter(job_runs::id.eq(run_id)))
            .set((
                job_runs::outcome.eq(RunOutcome::Succeeded),
                job_runs::finished_at.eq(Some(now)),
            ))
            .execute(conn)
            .await?;
        diesel::update(jobs::table.filter(jobs::id.eq(job_id)))
            .set((
                jobs::state.eq(JobState::Scheduled),
                jobs::current_run_id.eq(None::<i64>),
            ))
            .execute(conn)
            .await?;
        Ok::<_, hearth::error::AppError>(())
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Start delays after the due time with 10 000 jobs scheduled for tomorrow and 300 coming
/// due one every 20 ms.
async fn delays(state: &AppState) -> (f64, f64, f64) {
    let uid = owner(state).await;
    let now = hearth::service::now();
    let later: Vec<NaiveDateTime> = (0..10_000).map(|_| now + ChronoDuration::days(1)).collect();
    insert_due(state, uid, &later).await;
    DELAYS.lock().unwrap().clear();
    let start = hearth::service::now() + ChronoDuration::seconds(2);
    let soon: Vec<NaiveDateTime> = (0..300)
        .map(|i| start + ChronoDuration::milliseconds(20 * i))
        .collect();
    insert_due(state, uid, &soon).await;
    while DELAYS.lock().unwrap().len() < soon.len() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut d = DELAYS.lock().unwrap().clone();
    d.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (percentile(&d, 0.5), percentile(&d, 0.99), d[d.len() - 1])
}

/// CPU time of this process so far (user + system, every thread, ended ones included).
fn cpu_ms() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage");
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    ms(usage.ru_utime) + ms(usage.ru_stime)
}

async fn idle_cpu(secs: u64) -> f64 {
    let before = cpu_ms();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    (cpu_ms() - before) / secs as f64
}

fn main() {
    let n: usize = std::env::var("HEARTH_BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let idle: u64 = std::env::var("HEARTH_BENCH_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
        let s = process(dir.path(), &sqlite).await;
        let rate = throughput(std::slice::from_ref(&s), n).await;
        println!("dispatch, 1 process, SQLite:      {rate:8.0} jobs/s ({n} jobs, 8 workers)");
        let bare = floor(&s, n).await;
        println!("floor, SQLite (2 write transactions per job, back to back): {bare:8.0} jobs/s; ratio {:.2}", rate / bare);
        let (p50, p99, max) = delays(&s).await;
        println!("start delay, SQLite, 10k waiting: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms");
        let cpu = idle_cpu(idle).await;
        println!("idle CPU, SQLite, 10k waiting:    {cpu:.2} ms of CPU per second over {idle} s");
        s.background.stop(Duration::from_secs(5)).await;

        let Ok(admin) = std::env::var("HEARTH_TEST_PG_URL") else {
            println!("PostgreSQL: HEARTH_TEST_PG_URL is not set; `make bench` starts a server");
            return;
        };
        let pg = pg_database(&admin).await;
        let dir1 = tempfile::tempdir().unwrap();
        let a = process(dir1.path(), &pg).await;
        let rate = throughput(std::slice::from_ref(&a), n).await;
        println!("dispatch, 1 process, PostgreSQL:  {rate:8.0} jobs/s");
        let bare = floor(&a, n).await;
        println!("floor, PostgreSQL (2 write transactions per job, back to back): {bare:8.0} jobs/s; ratio {:.2}", rate / bare);
        let dir2 = tempfile::tempdir().unwrap();
        let b = process(dir2.path(), &pg).await;
        let rate = throughput(&[a.clone(), b.clone()], n).await;
        println!("dispatch, 2 processes, PostgreSQL:{rate:8.0} jobs/s");
        b.background.stop(Duration::from_secs(5)).await;
        let (p50, p99, max) = delays(&a).await;
        println!("start delay, PostgreSQL, 10k waiting: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms");
        let cpu = idle_cpu(idle).await;
        println!("idle CPU, PostgreSQL, 10k waiting: {cpu:.2} ms of CPU per second over {idle} s");
    });
}

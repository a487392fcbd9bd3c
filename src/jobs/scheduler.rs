//! The worker of a serving process: claims due jobs, runs them under their timeout, renews
//! their leases, ends the runs of dead workers, prunes old runs. It sleeps until the next
//! due time (one indexed `MIN(due_at)`), or until a job changes: services and the other
//! processes (through the event bus, LISTEN/NOTIFY on PostgreSQL) wake it. No polling loop:
//! between due times an idle worker wakes only for lease upkeep.

use super::lifecycle::Backoff;
use super::store::{self, Claimed, RunEnd};
use super::{JobContext, JobError, LiveRun};
use crate::config::JobsConfig;
use crate::db::enums::RunOutcome;
use crate::db::models::Job;
use crate::events::Event;
use crate::state::AppState;
use chrono::Duration as ChronoDuration;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a kind may take to stop after its timeout or a server stop before its future is
/// dropped.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Runs older than the retention are pruned this often.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The retry timing of the configuration.
pub fn backoff(config: &JobsConfig) -> Backoff {
    Backoff {
        base_secs: config.retry_base_secs as i64,
        max_secs: config.retry_max_secs as i64,
    }
}

fn lease(config: &JobsConfig) -> ChronoDuration {
    ChronoDuration::seconds(config.lease_secs as i64)
}

/// Starts the worker of this process (nothing when `jobs.workers` is 0). On SQLite no other
/// process can hold a run, so runs left `running` by a previous process end as
/// `interrupted` now rather than when their lease runs out.
pub async fn start(state: &AppState) -> anyhow::Result<()> {
    let config = &state.config.jobs;
    if config.workers == 0 {
        return Ok(());
    }
    if state.db.backend() == crate::db::Backend::Sqlite {
        let reaped = store::reap(&state.db, true, backoff(config)).await?;
        if !reaped.is_empty() {
            tracing::warn!(
                runs = reaped.len(),
                "job runs interrupted by the last stop will be retried by their policy"
            );
        }
        for job in &reaped {
            announce(state, job);
        }
    }
    spawn_relay(state);
    let st = state.clone();
    state
        .background
        .spawn_service(async move { work(st).await });
    Ok(())
}

/// Wakes the worker when a job changes anywhere and forwards cancel requests to the runs
/// of this process.
fn spawn_relay(state: &AppState) {
    let mut rx = state.events.subscribe();
    let hub = state.jobs.clone();
    state.background.spawn_service(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match rx.recv().await {
                Ok(Event::JobChanged { .. }) => hub.wake(),
                Ok(Event::JobCancelRequested { job_id, .. }) => {
                    hub.cancel_local(job_id);
                }
                Ok(Event::UserDisabled { user_id }) => hub.stop_runs_of(Some(user_id), None),
                Ok(Event::ApiKeyRevoked { key_id, .. }) => hub.stop_runs_of(None, Some(key_id)),
                Ok(_) => {}
                // Missed events: re-read the queue.
                Err(RecvError::Lagged(_)) => hub.wake(),
                Err(RecvError::Closed) => break,
            }
        }
    });
}

/// Publishes a job's change (subscribers and the other workers see it).
pub fn announce(state: &AppState, job: &Job) {
    state.events.publish(Event::JobChanged {
        user_id: job.owner_id,
        job_id: job.id,
    });
}

/// Kinds at their concurrency limit in this process.
fn full_kinds(state: &AppState) -> (Vec<String>, usize) {
    let config = &state.config.jobs;
    let live = match state.jobs.live.lock() {
        Ok(l) => l.values().map(|r| r.kind.clone()).collect::<Vec<_>>(),
        Err(_) => Vec::new(),
    };
    let mut per_kind: HashMap<&str, usize> = HashMap::new();
    for k in &live {
        *per_kind.entry(k.as_str()).or_default() += 1;
    }
    // A kind capped at 0 is always full: this process never runs it.
    let full = config
        .kind_concurrency
        .iter()
        .filter(|(k, cap)| per_kind.get(k.as_str()).copied().unwrap_or(0) >= **cap)
        .map(|(k, _)| k.clone())
        .collect();
    (full, config.workers.saturating_sub(live.len()))
}

async fn work(state: AppState) {
    let config = state.config.jobs.clone();
    let hub = state.jobs.clone();
    let upkeep = Duration::from_secs((config.lease_secs / 3).max(1));
    let mut next_upkeep = Instant::now();
    let mut next_prune = Instant::now();
    loop {
        if state.background.stopping().is_cancelled() {
            break;
        }
        // Registered before reading the queue, so a change made meanwhile wakes us.
        let woken = hub.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if Instant::now() >= next_upkeep {
            upkeep_once(&state, &config).await;
            next_upkeep = Instant::now() + upkeep;
        }
        if Instant::now() >= next_prune {
            let keep = ChronoDuration::days(config.run_retention_days as i64);
            match store::prune(&state.db, keep).await {
                Ok(n) if n > 0 => tracing::info!(runs = n, "pruned old job runs"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "pruning job runs"),
            }
            next_prune = Instant::now() + PRUNE_EVERY;
        }
        let (full, free) = full_kinds(&state);
        let mut claimed_all = false;
        if free > 0 {
            match store::claim_due(
                &state.db,
                &hub.worker,
                full.clone(),
                free as i64,
                lease(&config),
            )
            .await
            {
                Ok(claimed) => {
                    claimed_all = !claimed.is_empty() && claimed.len() == free;
                    let any = !claimed.is_empty();
                    for c in claimed {
                        execute(&state, c);
                    }
                    if any {
                        // More may be due: look again at once.
                        continue;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "claiming jobs"),
            }
        }
        let mut wait = next_upkeep.saturating_duration_since(Instant::now());
        if free > 0 && !claimed_all {
            match store::next_due(&state.db, full).await {
                Ok(Some(due)) => {
                    let until = (due - crate::service::now())
                        .to_std()
                        .unwrap_or(Duration::ZERO);
                    wait = wait.min(until);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "reading the next due job");
                    wait = wait.min(Duration::from_secs(1));
                }
            }
        }
        tokio::select! {
            _ = &mut woken => {}
            _ = tokio::time::sleep(wait) => {}
            _ = state.background.stopping().cancelled() => break,
        }
    }
}

/// Renews this worker's leases, stops the runs asked to cancel, ends expired runs.
async fn upkeep_once(state: &AppState, config: &JobsConfig) {
    if state.jobs.running() > 0 {
        match store::heartbeat(&state.db, &state.jobs.worker, lease(config)).await {
            Ok(cancels) => {
                for id in cancels {
                    state.jobs.cancel_local(id);
                }
            }
            Err(e) => tracing::warn!(error = %e, "renewing job leases"),
        }
    }
    match store::reap(&state.db, false, backoff(config)).await {
        Ok(jobs) => {
            for job in &jobs {
                tracing::warn!(
                    job = job.id,
                    "a job run's worker stopped; the run is interrupted"
                );
                announce(state, job);
            }
        }
        Err(e) => tracing::warn!(error = %e, "ending expired job runs"),
    }
}

/// Runs one claimed job in its own task.
fn execute(state: &AppState, claimed: Claimed) {
    let Claimed { job, run } = claimed;
    let cancel = CancellationToken::new();
    let by_user = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Ok(mut live) = state.jobs.live.lock() {
        live.insert(
            job.id,
            LiveRun {
                kind: job.kind.clone(),
                owner_id: job.owner_id,
                api_key_id: job.api_key_id,
                cancel: cancel.clone(),
                by_user: by_user.clone(),
            },
        );
    }
    announce(state, &job);
    let state = state.clone();
    let st = state.clone();
    st.background.spawn(async move {
        let end = run_to_end(&state, &job, run.id, run.attempt, cancel, &by_user).await;
        crate::ops::metrics::job_run(&job.kind, end.outcome.as_str());
        let config = &state.config.jobs;
        let stored = store::finish_run(
            &state.db,
            job.id,
            run.id,
            &state.jobs.worker,
            end,
            backoff(config),
        )
        .await;
        if let Ok(mut live) = state.jobs.live.lock() {
            live.remove(&job.id);
        }
        match stored {
            Ok(Some(job)) => announce(&state, &job),
            Ok(None) => tracing::warn!(job = job.id, run = run.id, "a run ended after its lease ran out; its end was not stored"),
            Err(e) => tracing::error!(error = %e, job = job.id, run = run.id, "storing the end of a job run"),
        }
        state.jobs.wake();
    });
}

async fn run_to_end(
    state: &AppState,
    job: &Job,
    run_id: i64,
    attempt: i32,
    cancel: CancellationToken,
    by_user: &std::sync::atomic::AtomicBool,
) -> RunEnd {
    let failed = |e: JobError| RunEnd {
        outcome: RunOutcome::Failed,
        output: None,
        error: Some(e.message),
        give_up: !e.retriable,
    };
    let Some(kind) = state.jobs.kind(&job.kind) else {
        return failed(JobError::permanent(format!(
            "this server has no job kind {:?}",
            job.kind
        )));
    };
    // The job acts only while its owner (and the key that created it) may still act.
    let caller = match crate::service::jobs::runner_caller(state, job).await {
        Ok(c) => c,
        Err(e) => return failed(e.into()),
    };
    let ctx = JobContext {
        state: state.clone(),
        caller,
        job_id: job.id,
        run_id,
        attempt,
        name: job.name.clone(),
        payload: job.payload.0.clone(),
        cancel: cancel.clone(),
    };
    let timeout = Duration::from_secs(job.timeout_secs.max(1) as u64);
    let work = kind.run(&ctx);
    tokio::pin!(work);
    let stop = state.background.stopping();
    let ended_early = tokio::select! {
        r = &mut work => Ok(r),
        _ = tokio::time::sleep(timeout) => Err(RunOutcome::TimedOut),
        _ = stop.cancelled() => Err(RunOutcome::Interrupted),
    };
    let result = match ended_early {
        Ok(r) => r,
        Err(outcome) => {
            // Ask the kind to stop, give it a moment to store what it has, then drop it.
            cancel.cancel();
            let _ = tokio::time::timeout(STOP_GRACE, &mut work).await;
            let error = match outcome {
                RunOutcome::TimedOut => format!("timed out after {} s", job.timeout_secs),
                _ => "the server stopped during the run".to_string(),
            };
            return RunEnd {
                outcome,
                output: None,
                error: Some(error),
                give_up: false,
            };
        }
    };
    let cancelled_by_user = by_user.load(std::sync::atomic::Ordering::SeqCst);
    match result {
        Ok(output) => RunEnd {
            outcome: RunOutcome::Succeeded,
            output: Some(output),
            error: None,
            give_up: false,
        },
        Err(e) if cancelled_by_user => RunEnd {
            outcome: RunOutcome::Cancelled,
            output: None,
            error: Some(e.message),
            give_up: false,
        },
        // Stopped because its identity ended: that is the failure, and it is final.
        Err(e) if cancel.is_cancelled() => {
            match crate::service::jobs::runner_caller(state, job).await {
                Err(ended) => failed(ended.into()),
                Ok(_) => failed(e),
            }
        }
        Err(e) => failed(e),
    }
}

/// Stores and announces a run's progress report.
pub(super) async fn report_progress(ctx: &JobContext, progress: Value) {
    let text = progress.to_string();
    if let Err(e) = store::set_progress(&ctx.state.db, ctx.job_id, ctx.run_id, text.clone()).await {
        tracing::warn!(error = %e, job = ctx.job_id, "storing job progress");
    }
    ctx.state.events.publish(Event::JobProgress {
        user_id: ctx.caller.user_id(),
        job_id: ctx.job_id,
        run_id: ctx.run_id,
        progress: text,
    });
}

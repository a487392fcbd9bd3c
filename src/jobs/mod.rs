//! Jobs: the one durable queue for background work in Hearth.
//!
//! A job is a row (`jobs`) naming a [`JobKind`], its JSON payload, a [`schedule::Schedule`]
//! and a policy (attempts, timeout, priority); every run is a row of `job_runs`. The rules
//! of a job's life are the pure transitions of [`lifecycle`]; [`scheduler`] is the worker
//! loop of each serving process: it claims due jobs with a lease (`FOR UPDATE SKIP LOCKED`
//! on PostgreSQL, so several processes share one table and each run is claimed once),
//! renews the lease while the run goes on, and ends runs whose worker died as
//! `interrupted`, retried or failed by the job's policy. Workers sleep until the next due
//! time and wake on the event bus (LISTEN/NOTIFY across processes) when jobs change.
//!
//! A capability adds a kind by implementing [`JobKind`] in [`kinds`] and registering it in
//! [`kinds::builtin`]; the scheduler never changes for it.

pub mod kinds;
pub mod lifecycle;
pub mod schedule;
pub mod scheduler;
pub mod store;

use crate::auth::Caller;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::state::AppState;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// One kind of background work.
#[async_trait::async_trait]
pub trait JobKind: Send + Sync {
    /// The name jobs use (`agent_prompt`).
    fn name(&self) -> &'static str;

    /// Checks a payload for `caller` before it is stored. Errors name their field as
    /// `payload.<key>`.
    async fn check(&self, state: &AppState, caller: &Caller, payload: &Value) -> AppResult<()>;

    /// Does the work. Long work looks at [`JobContext::is_cancelled`] (or awaits
    /// [`JobContext::cancelled`]) and stops early: that is how cancel requests and timeouts
    /// reach it. The output (JSON) is kept on the run.
    async fn run(&self, ctx: &JobContext) -> Result<Value, JobError>;
}

/// Why a run failed, and whether another attempt may do better.
#[derive(Debug, Clone)]
pub struct JobError {
    /// Kept on the run.
    pub message: String,
    /// `false`: the series ends now whatever attempts are left.
    pub retriable: bool,
}

impl JobError {
    /// A failure another attempt may not repeat (a backend down, a timeout upstream).
    pub fn retriable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retriable: true,
        }
    }

    /// A failure no retry fixes (the payload names something gone, the owner lost a right).
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retriable: false,
        }
    }
}

impl From<AppError> for JobError {
    fn from(e: AppError) -> Self {
        use ErrorCode::*;
        let retriable = matches!(
            e.code,
            LlmUnavailable
                | ModelBusy
                | TurnInProgress
                | Unavailable
                | Internal
                | RateLimited
                | PluginNotRunning
                | PluginTimeout
                | PluginCrashed
        );
        Self {
            message: format!("{}: {}", e.code.as_str(), e.message),
            retriable,
        }
    }
}

/// What a running job sees.
pub struct JobContext {
    /// The process's state.
    pub state: AppState,
    /// The job's owner, re-checked before the run (see `service::jobs::runner_caller`).
    pub caller: Caller,
    /// The job.
    pub job_id: i64,
    /// This run.
    pub run_id: i64,
    /// 1-based attempt of the series.
    pub attempt: i32,
    /// The job's name.
    pub name: String,
    /// The job's payload.
    pub payload: Value,
    pub(crate) cancel: CancellationToken,
}

impl JobContext {
    /// Whether the run should stop (cancel request, timeout, server stop).
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Resolves when the run should stop.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// Reports progress (shown on the job and sent to `jobEvents` subscribers).
    pub async fn progress(&self, progress: Value) {
        scheduler::report_progress(self, progress).await;
    }
}

/// A run in progress in this process.
pub(crate) struct LiveRun {
    pub kind: String,
    /// Who the run acts as: its identity ending stops it.
    pub owner_id: i64,
    pub api_key_id: Option<i64>,
    pub cancel: CancellationToken,
    /// Set when a person asked to cancel (not a timeout or a server stop).
    pub by_user: Arc<std::sync::atomic::AtomicBool>,
}

/// The job kinds of the process and what its worker holds.
pub struct JobsHub {
    kinds: RwLock<HashMap<&'static str, Arc<dyn JobKind>>>,
    /// This process's worker name (in `locked_by` and on runs).
    pub worker: String,
    /// Wakes the worker: a job changed, a run ended.
    pub(crate) wake: Notify,
    /// Runs of this process by job id.
    pub(crate) live: Mutex<HashMap<i64, LiveRun>>,
}

impl JobsHub {
    /// The built-in kinds and a fresh worker name.
    pub fn new() -> Self {
        let hub = Self {
            kinds: RwLock::new(HashMap::new()),
            worker: format!(
                "{}-{}",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            wake: Notify::new(),
            live: Mutex::new(HashMap::new()),
        };
        for kind in kinds::builtin() {
            hub.register(kind);
        }
        hub
    }

    /// Adds a kind (or replaces one of the same name).
    pub fn register(&self, kind: Arc<dyn JobKind>) {
        if let Ok(mut kinds) = self.kinds.write() {
            kinds.insert(kind.name(), kind);
        }
    }

    /// The kind with this name.
    pub fn kind(&self, name: &str) -> Option<Arc<dyn JobKind>> {
        self.kinds.read().ok()?.get(name).cloned()
    }

    /// Every kind's name, sorted.
    pub fn kind_names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self
            .kinds
            .read()
            .map(|k| k.keys().copied().collect())
            .unwrap_or_default();
        names.sort_unstable();
        names
    }

    /// Wakes the worker (it re-reads the next due time).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Asks the run of `job_id` in this process to stop; whether it runs here.
    pub fn cancel_local(&self, job_id: i64) -> bool {
        match self.live.lock() {
            Ok(live) => live
                .get(&job_id)
                .map(|r| {
                    r.by_user.store(true, std::sync::atomic::Ordering::SeqCst);
                    r.cancel.cancel();
                })
                .is_some(),
            Err(_) => false,
        }
    }

    /// Stops the runs of this process that act for an identity that just ended (a
    /// deactivated account, a revoked key); they end as failed, without retry.
    pub(crate) fn stop_runs_of(&self, user_id: Option<i64>, api_key_id: Option<i64>) {
        if let Ok(live) = self.live.lock() {
            for run in live.values() {
                let of_user = user_id.is_some_and(|u| u == run.owner_id);
                let of_key = api_key_id.is_some() && api_key_id == run.api_key_id;
                if of_user || of_key {
                    run.cancel.cancel();
                }
            }
        }
    }

    /// Runs going on in this process.
    pub fn running(&self) -> usize {
        self.live.lock().map(|l| l.len()).unwrap_or(0)
    }
}

impl Default for JobsHub {
    fn default() -> Self {
        Self::new()
    }
}

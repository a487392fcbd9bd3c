//! Operations: what an operator watches. System and process figures (`system`), samples of
//! them kept in the database for the history (`samples`), Prometheus metrics (`metrics`),
//! the live log feed (`logs`).
//! The request middleware (`http::observe`) and counters across the code feed them; one
//! sampler task per serving process refreshes the figures, stores samples and prunes them.

pub mod logs;
pub mod metrics;
pub mod samples;
pub mod system;

use crate::state::AppState;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Samples older than the retention are deleted this often.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// What one process knows of itself.
pub struct OpsHub {
    /// Requests this process answered since it started.
    requests: AtomicU64,
    /// The latest system and process figures.
    pub system: system::Sampler,
    /// This process's name in the samples: `<host>-<pid>`.
    pub node: String,
    /// The request metrics' handles.
    pub http: metrics::HttpMetrics,
}

impl Default for OpsHub {
    fn default() -> Self {
        Self::new()
    }
}

impl OpsHub {
    /// A hub for this process (figures are first read by [`start`]).
    pub fn new() -> Self {
        let host = sysinfo::System::host_name().unwrap_or_else(|| "hearth".into());
        Self {
            requests: AtomicU64::new(0),
            system: system::Sampler::new(),
            node: format!("{host}-{}", std::process::id()),
            http: metrics::HttpMetrics::default(),
        }
    }

    /// Counts one answered request.
    pub fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests answered since the process started.
    pub fn total_requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// Starts the sampler of a serving process: figures and gauges every
/// `monitoring.status_secs`, a stored sample every `monitoring.sample_secs`, pruning hourly.
pub fn start(state: &AppState) {
    let st = state.clone();
    state.background.spawn_service(async move {
        let config = st.config.monitoring.clone();
        let every = Duration::from_secs(config.status_secs.max(1));
        let sample_every = Duration::from_secs(config.sample_secs);
        let started = tokio::time::Instant::now();
        let mut next_sample = started + sample_every;
        let mut next_prune = started;
        let mut requests_at_sample = st.ops.total_requests();
        loop {
            let ops = st.clone();
            let figures = tokio::task::spawn_blocking(move || ops.ops.system.refresh()).await;
            let Ok(figures) = figures else { break };
            metrics::publish_gauges(&st, &figures);
            let now = tokio::time::Instant::now();
            if config.sample_secs > 0 && now >= next_sample {
                let total = st.ops.total_requests();
                let requests = total.saturating_sub(requests_at_sample);
                requests_at_sample = total;
                if let Err(e) = samples::store(&st, &figures, requests).await {
                    tracing::warn!(error = %e, "storing a monitoring sample");
                }
                next_sample = now + sample_every;
            }
            if now >= next_prune {
                let keep = chrono::Duration::hours(config.retention_hours as i64);
                match samples::prune(&st, crate::service::now() - keep).await {
                    Ok(n) if n > 0 => tracing::info!(samples = n, "pruned monitoring samples"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "pruning monitoring samples"),
                }
                next_prune = now + PRUNE_EVERY;
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = st.background.stopping().cancelled() => break,
            }
        }
    });
}

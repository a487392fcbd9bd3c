//! Monitoring (seed 004): the process's live figures and their stored history. Any
//! signed-in caller reads them (seed 004's reading rule); the live log feed and `/metrics`
//! are for admins (and a configured scraper address).

use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::ops::system::Figures;
use crate::state::AppState;
use serde::Serialize;

/// Hours of history a caller may ask for at most (the retention caps it anyway).
pub const MAX_HISTORY_HOURS: f64 = 24.0 * 366.0;

/// The live figures of this process.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// System and process figures (latest reading, every `monitoring.status_secs`).
    pub figures: Figures,
    /// Models with a generation running or queued now.
    pub active_models: usize,
    /// Local model files in memory.
    pub loaded_models: usize,
    /// Requests this process answered since it started.
    pub total_requests: u64,
    /// Seconds since this process started.
    pub uptime_secs: u64,
    /// This process's name in the samples.
    pub node: String,
}

/// The live figures.
pub fn status(state: &AppState, _caller: &Caller) -> Status {
    Status {
        figures: state.ops.system.latest(),
        active_models: state.llm.activity().len(),
        loaded_models: state.llm.loaded_local(),
        total_requests: state.ops.total_requests(),
        uptime_secs: state.started_at.elapsed().as_secs(),
        node: state.ops.node.clone(),
    }
}

/// Every process's samples of the last `hours`, oldest first.
pub async fn history(
    state: &AppState,
    _caller: &Caller,
    hours: f64,
) -> AppResult<Vec<crate::db::models::MonitoringSample>> {
    if !hours.is_finite() || hours <= 0.0 || hours > MAX_HISTORY_HOURS {
        return Err(AppError::validation(
            "hours",
            format!("hours must be a number above 0 and at most {MAX_HISTORY_HOURS}"),
        ));
    }
    let since = crate::service::now() - chrono::Duration::seconds((hours * 3600.0) as i64);
    crate::ops::samples::since(state, since).await
}

/// Whether a request may read `/metrics`: from a configured scraper address, or with an
/// admin credential.
pub fn may_scrape(state: &AppState, caller: Option<&Caller>, client_ip: &str) -> AppResult<()> {
    let from_scraper = client_ip.parse::<std::net::IpAddr>().is_ok_and(|ip| {
        state
            .config
            .monitoring
            .scrape_addresses
            .iter()
            .any(|n| n.contains(&ip))
    });
    if from_scraper {
        return Ok(());
    }
    match caller {
        None => Err(AppError::unauthenticated()),
        Some(c) => c.require_admin(),
    }
}

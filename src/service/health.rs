//! The health of this process and what it depends on, measured now, for `/health` and any
//! other door that reports it.

use crate::db::schema::plugins;
use crate::db_run;
use crate::error::AppError;
use crate::service::models;
use crate::state::AppState;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// What the model backends look like to a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmState {
    /// The model `auto` resolves to is healthy.
    Connected,
    /// Models exist but none is usable.
    Disconnected,
    /// No model is registered.
    NotConfigured,
}

impl LlmState {
    /// The wire name (seed 000's `ollama` field).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::Disconnected => "disconnected",
            Self::NotConfigured => "not_configured",
        }
    }
}

/// One health report.
#[derive(Debug, Clone)]
pub struct Health {
    /// The database answered a round trip.
    pub db_ok: bool,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
    /// Model backends.
    pub llm: LlmState,
    /// The model `auto` resolves to, when healthy.
    pub default_model: Option<String>,
    /// Healthy models.
    pub models_available: usize,
    /// Installed plugins.
    pub plugins: i64,
    /// Tools of the plugins running in this process.
    pub tools: usize,
    /// Seconds since the process started.
    pub uptime_secs: u64,
}

/// Measures everything now; a failing part reports itself, the report never fails.
pub async fn report(state: &AppState) -> Health {
    let db_ok = state.db.ping().await;
    let all = models::list(state).await.unwrap_or_default();
    let healthy = all.iter().filter(|m| state.llm.is_healthy(m)).count();
    let (llm, default_model) = match models::resolve(state, None, None).await {
        Ok(m) if state.llm.is_healthy(&m) => (LlmState::Connected, Some(m.key)),
        _ if all.is_empty() => (LlmState::NotConfigured, None),
        _ => (LlmState::Disconnected, None),
    };
    Health {
        db_ok,
        database: state.db.backend_name(),
        llm,
        default_model,
        models_available: if llm == LlmState::NotConfigured {
            0
        } else {
            healthy
        },
        plugins: plugin_count(state).await.unwrap_or(0),
        tools: state
            .plugins
            .running()
            .iter()
            .map(|p| p.manifest.tools.len())
            .sum(),
        uptime_secs: state.started_at.elapsed().as_secs(),
    }
}

async fn plugin_count(state: &AppState) -> Result<i64, AppError> {
    let db = &state.db;
    db_run!(db, read, |conn| plugins::table
        .count()
        .get_result::<i64>(conn)
        .await
        .map_err(AppError::from))
}

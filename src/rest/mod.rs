//! The REST compatibility layer: the endpoints of the five documented APIs (`seeds/`), each
//! a thin adapter over `service`. One module per API; where two APIs share a path the
//! handler accepts every documented request shape and returns the union of the fields.

pub mod api_auth;
pub mod foyer;
pub mod health;
pub mod nexus;
pub mod orchestrator;
pub mod plugin_host;

use crate::state::AppState;
use axum::Router;
use chrono::NaiveDateTime;

/// Every REST route.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(health::router())
        .merge(api_auth::router())
        .merge(orchestrator::router())
        .merge(foyer::router())
        .nest("/api/v1", nexus::router())
        .merge(plugin_host::router())
}

/// Timestamps as the seeds write them: RFC 3339, UTC, `Z`.
pub fn ts(t: NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Optional timestamp.
pub fn ts_opt(t: Option<NaiveDateTime>) -> Option<String> {
    t.map(ts)
}

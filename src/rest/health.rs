//! `GET /health`, shared by seed 000 and seed 003: the union of both bodies, every value
//! measured now. Subsystems that are not part of this build report themselves as such
//! instead of claiming to be connected.

use crate::db::schema::plugins;
use crate::db_run;
use crate::error::AppError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{json, Value};

/// Routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/health", get(health))
}

async fn plugin_count(state: &AppState) -> Result<i64, AppError> {
    let db = &state.db;
    db_run!(db, read, |conn| plugins::table
        .count()
        .get_result::<i64>(conn)
        .await
        .map_err(AppError::from))
}

async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let db_ok = state.db.ping().await;
    let plugins_count = plugin_count(&state).await.unwrap_or(0);
    let status = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if db_ok { "healthy" } else { "unhealthy" },
            "version": env!("CARGO_PKG_VERSION"),
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "uptime_seconds": state.started_at.elapsed().as_secs(),
            "database": state.db.backend_name(),
            "db_ok": db_ok,
            // No LLM backend or vector index is part of this build yet.
            "ollama": "not_configured",
            "chromadb": "not_configured",
            "faiss_ok": false,
            "gpu": false,
            "tools_count": plugins_count,
            "plugins_count": plugins_count,
        })),
    )
}

//! `GET /health`, shared by seed 000 and seed 003: the union of both bodies, every value
//! measured now. Subsystems that are not part of this build report themselves as such
//! instead of claiming to be connected; `ollama` reports Hearth's own model backends.

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

/// Seed 000's `ollama` field, for Hearth's model backends: `connected` when the model `auto`
/// resolves to is healthy, `disconnected` when models exist but none is usable,
/// `not_configured` when none is registered.
async fn llm_state(state: &AppState) -> (&'static str, Option<String>, usize) {
    let all = crate::service::models::list(state)
        .await
        .unwrap_or_default();
    let healthy = all.iter().filter(|m| state.llm.is_healthy(m)).count();
    match crate::service::models::resolve(state, None, None).await {
        Ok(m) if state.llm.is_healthy(&m) => ("connected", Some(m.key), healthy),
        _ if all.is_empty() => ("not_configured", None, 0),
        _ => ("disconnected", None, healthy),
    }
}

async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let db_ok = state.db.ping().await;
    let (llm, default_model, models_available) = llm_state(&state).await;
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
            "ollama": llm,
            "default_model": default_model,
            "models_available": models_available,
            // No vector index is part of this build yet.
            "chromadb": "not_configured",
            "faiss_ok": false,
            "gpu": false,
            "tools_count": plugins_count,
            "plugins_count": plugins_count,
        })),
    )
}

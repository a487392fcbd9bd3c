//! `GET /health`, shared by seed 000 and seed 003: the union of both bodies, every value
//! measured now. Subsystems that are not part of this build report themselves as such
//! instead of claiming to be connected; `ollama` reports Hearth's own model backends.

use super::openapi::OPERATIONS;
use super::DocRouter;
use crate::service::health;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::routes;

/// Routes.
pub fn router() -> DocRouter {
    DocRouter::new().routes(routes!(health))
}

/// Whether this instance is healthy, with every subsystem measured now.
///
/// 200 while the database answers, 503 (same body, `status: "unhealthy"`) when it does not.
/// Subsystems not part of this build say so (`chromadb: "not_configured"`).
#[utoipa::path(get, path = "/health", tag = OPERATIONS, security(()),
    responses((status = 200, description = "`{status, version, time, uptime_seconds, database, db_ok, ollama, default_model, models_available, chromadb, faiss_ok, gpu, tools_count, plugins_count}`", body = Object)))]
async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let h = health::report(&state).await;
    let db_ok = h.db_ok;
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
            "uptime_seconds": h.uptime_secs,
            "database": h.database,
            "db_ok": db_ok,
            "ollama": h.llm.as_str(),
            "default_model": h.default_model,
            "models_available": h.models_available,
            // Hearth's vector index is FAISS, not Chroma.
            "chromadb": "not_configured",
            "faiss_ok": state.rag.vectors.probe(),
            "gpu": false,
            "tools_count": h.tools,
            "plugins_count": h.plugins,
        })),
    )
}

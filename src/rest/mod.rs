//! The REST compatibility layer: the endpoints of the five documented APIs (`seeds/`), each
//! a thin adapter over `service`. One module per API; where two APIs share a path the
//! handler accepts every documented request shape and returns the union of the fields.

pub mod api_auth;
pub mod foyer;
pub mod foyer_documents;
pub mod foyer_messages;
pub mod foyer_socket;
pub mod health;
pub mod limits;
pub mod nexus;
pub mod nexus_llm;
pub mod nexus_providers;
pub mod nexus_rag;
pub mod nexus_socket;
pub mod openai;
pub mod openai_embeddings;
pub mod openapi;
pub mod orchestrator;
pub mod orchestrator_chat;
pub mod orchestrator_memory;
pub mod orchestrator_tools;
pub mod plugin_host;
pub mod plugin_host_backup;
pub mod plugin_host_history;
pub mod plugin_host_jobs;
pub mod plugin_host_llm;
pub mod plugin_host_plugins;
pub mod plugin_host_rag;
pub mod runner;
pub mod runner_monitoring;
pub mod streaming;

use crate::state::AppState;
use chrono::NaiveDateTime;
use utoipa_axum::router::OpenApiRouter;

/// A router whose doors are documented: built with `routes!` from `#[utoipa::path]` handlers.
pub type DocRouter = OpenApiRouter<AppState>;

/// Every REST door, in three routers by the body size they accept, each carrying the OpenAPI
/// paths of its doors.
pub struct Routers {
    /// The doors that take files: their bodies may be as large as an upload.
    pub uploads: DocRouter,
    /// The restore door: its body may be as large as a backup archive
    /// (`backup.max_import_bytes`).
    pub backup: DocRouter,
    /// Every other REST door.
    pub rest: DocRouter,
}

impl Routers {
    /// The OpenAPI paths of all three, on the common skeleton (`openapi::base`).
    pub fn document(&self) -> utoipa::openapi::OpenApi {
        let mut api = openapi::base();
        for r in [&self.uploads, &self.backup, &self.rest] {
            api.merge(r.get_openapi().clone());
        }
        api
    }
}

/// Builds the REST routers.
pub fn routers() -> Routers {
    Routers {
        uploads: upload_router(),
        backup: plugin_host_backup::import_router(),
        rest: router(),
    }
}

fn upload_router() -> DocRouter {
    DocRouter::new()
        .merge(foyer_documents::upload_router())
        .merge(orchestrator_memory::upload_router())
        .nest("/api/v1", nexus_rag::upload_router())
        .merge(plugin_host_plugins::upload_router())
}

fn router() -> DocRouter {
    DocRouter::new()
        .merge(health::router())
        .merge(plugin_host_plugins::router())
        .merge(orchestrator_tools::router())
        .merge(foyer_documents::router())
        .merge(plugin_host_rag::router())
        .merge(orchestrator_memory::router())
        .merge(api_auth::router())
        .merge(orchestrator::router())
        .merge(orchestrator_chat::router())
        .merge(foyer::router())
        .merge(foyer_messages::router())
        .nest(
            "/api/v1",
            nexus::router()
                .merge(nexus_llm::router())
                .merge(nexus_providers::router())
                .merge(nexus_rag::router()),
        )
        .merge(plugin_host::router())
        .merge(plugin_host_history::router())
        .merge(plugin_host_backup::router())
        .merge(plugin_host_llm::router())
        .merge(plugin_host_jobs::router())
        .merge(runner::router())
        .merge(runner_monitoring::router())
        .merge(openai::router())
        .merge(nexus_socket::router())
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

//! Hearth: a self-hosted, GraphQL-first AI platform.
//!
//! # Layout
//! - [`config`]: defaults < `hearth.toml` < `HEARTH_*` env, validated at start.
//! - [`error`]: the one error-code table (HTTP status, GraphQL `extensions.code`, REST bodies).
//! - [`db`]: pools over SQLite or PostgreSQL, the shared diesel schema, row types.
//! - [`auth`]: passwords, JWTs, API-key secrets, the [`auth::Caller`].
//! - [`service`]: transport-agnostic use cases; every door calls these.
//! - [`graphql`]: schema assembly, one module per domain, loaders, subscriptions.
//! - [`rest`]: the compatibility layer, one module per documented API.
//! - [`http`]: the axum router, middleware and server lifecycle.
//! - [`llm`]: model providers (llama.cpp, OpenAI-compatible), gates, prompt fitting.
//! - [`embed`]: the embedding model and the batcher every caller shares.
//! - [`rag`]: documents: type sniffing, extraction, chunking, ingestion, hybrid search.
//! - [`vector`]: FAISS indexes per collection, kept in step with the database.
//! - [`events`]: the event bus behind subscriptions, bridged across processes on PostgreSQL.
//! - [`plugins`]: the Extism host: manifests, bundles, signatures, pools, host functions.
//! - [`jobs`]: the durable job queue: kinds, schedules, the worker of each process.
//! - [`ops`]: what operators watch: system figures, stored samples, Prometheus metrics.
//! - [`tasks`]: the owner of every background task, stopped and awaited at shutdown.
//! - [`instance`]: the lock that keeps a SQLite database to one process.

pub mod auth;
pub mod backup;
pub mod cache;
pub mod config;
pub mod db;
pub mod embed;
pub mod error;
pub mod events;
pub mod graphql;
pub mod http;
pub mod instance;
pub mod jobs;
pub mod limits;
pub mod llm;
pub mod ops;
pub mod plugins;
pub mod rag;
pub mod rest;
pub mod service;
pub mod state;
pub mod tasks;
pub mod vector;

use std::sync::Arc;

/// Entry point for building a running Hearth from a configuration.
pub struct App;

impl App {
    /// Opens the database (running migrations), loads or creates the JWT secret and
    /// assembles the shared state.
    pub async fn build(config: config::Config) -> anyhow::Result<state::AppState> {
        std::fs::create_dir_all(&config.data_dir)?;
        let secret = match &config.jwt_secret {
            Some(s) => s.clone().into_bytes(),
            None => load_or_create_secret(&config.data_dir.join("jwt_secret"))?,
        };
        let url = config.database_url();
        let instance = match url.strip_prefix("sqlite://") {
            Some(path) => Some(Arc::new(instance::InstanceLock::acquire(
                std::path::Path::new(path),
            )?)),
            None => None,
        };
        let db = db::Db::connect(
            &url,
            config.db_pool_size,
            std::time::Duration::from_secs(config.db_pool_timeout_secs),
        )
        .await?;
        let background = tasks::Background::new();
        // Several processes may share a PostgreSQL database; SQLite means one process.
        let events = match db.backend() {
            db::Backend::Postgres => events::pg_bridge::start(&url, 1024, &background),
            db::Backend::Sqlite => events::EventBus::new(1024),
        };
        let ttl = std::time::Duration::from_secs(5);
        let llm = Arc::new(llm::LlmHub::new(config.llm.clone())?);
        let rag = Arc::new(rag::RagHub::new(&config));
        let plugin_host = Arc::new(plugins::PluginHost::new(&config));
        let config = Arc::new(config);
        let state = state::AppState::new(state::StateInner {
            session_cache: Arc::new(cache::GenerationCache::new(10_000, ttl)),
            response_cache: Arc::new(cache::GenerationCache::new(10_000, ttl)),
            setup: Default::default(),
            limits: Arc::new(limits::RateLimits::new(config.clone(), &db)),
            config,
            db,
            jwt: Arc::new(auth::tokens::JwtKeys::new(&secret)),
            events,
            llm,
            turns: Arc::new(events::turns::TurnHub::default()),
            jobs: Arc::new(jobs::JobsHub::new()),
            embed: Arc::new(embed::EmbedHub::default()),
            rag,
            plugins: plugin_host,
            ops: Arc::new(ops::OpsHub::new()),
            started_at: std::time::Instant::now(),
            background,
            instance,
        });
        Ok(state)
    }

    /// What only a serving process does before it accepts requests: register the embedded
    /// model, repair work a previous run left interrupted, start the relays. Never run by
    /// the CLI commands, which must not touch a live server's work.
    pub async fn prepare_to_serve(state: &state::AppState) -> anyhow::Result<()> {
        service::models::ensure_builtin(state).await?;
        service::auth::offer_setup(state).await?;
        let recovered = service::turns::recover_interrupted(state).await?;
        if recovered > 0 {
            tracing::warn!(
                recovered,
                "answers interrupted by the last stop were kept as `interrupted`, with their last checkpoint"
            );
        }
        service::turns::spawn_cancel_relay(state);
        service::turn_stream::start_relay(state);
        let repaired = rag::ingest::repair(state).await?;
        if repaired > 0 {
            tracing::warn!(
                repaired,
                "documents whose ingestion had stopped were marked failed"
            );
        }
        rag::start(state);
        ops::metrics::handle();
        ops::start(state);
        limits::start(state).await;
        plugins::start(state).await?;
        jobs::scheduler::start(state).await?;
        Ok(())
    }
}

/// Reads the generated JWT secret, creating it (mode 0600) on first start.
fn load_or_create_secret(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    if let Ok(s) = std::fs::read_to_string(path) {
        let s = s.trim();
        if s.len() >= 32 {
            return Ok(s.as_bytes().to_vec());
        }
        anyhow::bail!(
            "{} is shorter than 32 characters; delete it to regenerate",
            path.display()
        );
    }
    let secret = auth::secrets::random_token(64);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    use std::io::Write;
    let mut f = opts.open(path)?;
    f.write_all(secret.as_bytes())?;
    Ok(secret.into_bytes())
}

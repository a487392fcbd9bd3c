//! Configuration: built-in defaults < `hearth.toml` < `HEARTH_*` environment < CLI flags.
//! Validated once at start; an invalid value fails with a message naming the key.

mod limits;

pub use limits::{Budget, QuotasConfig, RateLimitsConfig};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// Everything the server needs to start; cheap to clone into the state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub bind: String,
    /// Holds the SQLite file, indexes, uploads and the generated JWT secret.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` (default: `<data_dir>/hearth.db`) or `postgres://…`.
    pub database_url: Option<String>,
    /// HS256 secret for JWTs; generated once into the data dir when absent.
    pub jwt_secret: Option<String>,
    /// Access token lifetime in seconds (default one hour).
    pub access_token_ttl_secs: i64,
    /// Refresh token / session lifetime in seconds (default seven days).
    pub refresh_token_ttl_secs: i64,
    /// Whether anyone may self-register; admins can always create users.
    pub allow_registration: bool,
    /// The account that administers the instance: registering with this email gives the
    /// admin role (and nobody else gets it by registering first).
    pub admin_email: Option<String>,
    /// Mark the auth cookie `Secure`; turn on behind HTTPS.
    pub cookie_secure: bool,
    /// Largest request body accepted on any route, in bytes.
    pub body_limit_bytes: usize,
    /// Connections kept by the database pool (readers on SQLite).
    pub db_pool_size: usize,
    /// Seconds a request waits for a database connection before `503 unavailable`.
    pub db_pool_timeout_secs: u64,
    /// Login attempts allowed per client address per `login_rate_window_secs` (0: no limit).
    pub login_rate_limit: u32,
    /// Window of the login rate limit, in seconds.
    pub login_rate_window_secs: u64,
    /// Failed-or-not login attempts allowed per account per window, whatever the address
    /// (0: no limit); stops password guessing spread over many addresses.
    pub login_account_rate_limit: u32,
    /// Registrations allowed per client address per `login_rate_window_secs` (0: no limit).
    pub register_rate_limit: u32,
    /// Reverse proxies whose `X-Forwarded-For` is believed (addresses or CIDR blocks).
    pub trusted_proxies: Vec<IpNet>,
    /// Chats one user may keep.
    pub max_chats_per_user: i64,
    /// Messages one chat may hold (each turn adds two).
    pub max_messages_per_chat: i64,
    /// Seconds a stop waits for open requests and background work (turns store what they
    /// generated) before the process exits anyway.
    pub shutdown_grace_secs: u64,
    /// GraphQL limits and switches.
    pub graphql: GraphqlConfig,
    /// Model providers: the embedded model, timeouts, queues.
    pub llm: LlmConfig,
    /// The job queue.
    pub jobs: JobsConfig,
    /// The embedding model and its batcher.
    pub embed: EmbedConfig,
    /// Documents, ingestion, vector indexes and retrieval.
    pub rag: RagConfig,
    /// The WebAssembly plugin host.
    pub plugins: PluginsConfig,
    /// What operators watch: samples, metrics, slow requests.
    pub monitoring: MonitoringConfig,
    /// Request budgets per door and principal.
    pub rate_limits: RateLimitsConfig,
    /// Token quotas per user and API key.
    pub quotas: QuotasConfig,
    /// Backup archives: import caps, scheduled backups.
    pub backup: BackupConfig,
}

/// Backups (`/backup/export`, `/backup/import`, `hearth backup`, the `backup` job kind).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// Largest archive `/backup/import` takes, in bytes (413 beyond).
    pub max_import_bytes: u64,
    /// Bytes an archive may unpack to (a ZIP bomb is refused before it fills the disk).
    pub max_unpacked_bytes: u64,
    /// Where the `backup` job kind writes archives (default: `<data_dir>/backups`).
    pub dir: Option<PathBuf>,
    /// Archives the `backup` job kind keeps in `dir`; older ones are deleted (0: keep all).
    pub keep: usize,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            max_import_bytes: 2 * 1024 * 1024 * 1024,
            max_unpacked_bytes: 16 * 1024 * 1024 * 1024,
            dir: None,
            keep: 7,
        }
    }
}

impl BackupConfig {
    /// The folder scheduled backups go to.
    pub fn dir(&self, data_dir: &std::path::Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| data_dir.join("backups"))
    }
}

/// Monitoring: system samples kept for the history, the Prometheus door, slow requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitoringConfig {
    /// Seconds between two samples stored for `/api/monitoring/history` (0: none stored).
    pub sample_secs: u64,
    /// Hours samples are kept.
    pub retention_hours: u64,
    /// Seconds between two `status` messages on `/api/websocket`.
    pub status_secs: u64,
    /// Requests slower than this (to their response head) are logged as warnings (0: never).
    pub slow_request_ms: u64,
    /// Client addresses (or networks) that may read `/metrics` without an admin credential:
    /// the Prometheus scraper's.
    pub scrape_addresses: Vec<IpNet>,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        Self {
            sample_secs: 60,
            retention_hours: 168,
            status_secs: 5,
            slow_request_ms: 2000,
            scrape_addresses: Vec::new(),
        }
    }
}

/// The plugin host: upload caps, per-call limits, pools, signatures, network rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginsConfig {
    /// Largest upload (ZIP or module), in bytes (a larger one is `413`).
    pub max_upload_bytes: u64,
    /// Most bytes a bundle may decompress to.
    pub max_unpacked_bytes: u64,
    /// Most entries in a bundle.
    pub max_files: usize,
    /// Most unpacked bytes per uploaded byte (above: refused as a ZIP bomb).
    pub max_ratio: u64,
    /// Memory cap of a call whose manifest names none, in MiB.
    pub default_memory_mb: u32,
    /// The most memory a manifest may ask for, in MiB.
    pub max_memory_mb: u32,
    /// Time limit of a call whose manifest names none, in milliseconds.
    pub default_timeout_ms: u64,
    /// The longest time limit a manifest may ask for.
    pub max_timeout_ms: u64,
    /// Wasm instructions (fuel) one call may run; 0 leaves the time limit as the only bound.
    pub fuel: u64,
    /// Instances (concurrent calls) per plugin; further calls queue.
    pub pool_size: usize,
    /// Calls that may wait for an instance of one plugin before more are refused (`503`).
    pub max_queued_calls: usize,
    /// Crashes (traps, timeouts, out of memory) within `crash_window_secs` that mark a
    /// plugin `failed`.
    pub crash_limit: usize,
    /// The window of `crash_limit`.
    pub crash_window_secs: u64,
    /// Largest input of one call, in bytes.
    pub max_input_bytes: usize,
    /// Base64 ed25519 public keys whose signatures Hearth trusts.
    pub trusted_keys: Vec<String>,
    /// Refuse bundles that no trusted key signed.
    pub require_signature: bool,
    /// Let plugins' HTTP reach loopback, private and link-local addresses (off: only public
    /// addresses, checked after DNS resolution and on every redirect).
    pub allow_private_hosts: bool,
    /// Most bytes of an HTTP response handed to a plugin.
    pub http_max_response_bytes: usize,
    /// Time limit of one HTTP request a plugin makes.
    pub http_timeout_ms: u64,
    /// Tool calls one chat turn may make before it must answer.
    pub max_tool_steps: usize,
    /// Bundles (folders) installed, disabled, the first time a server starts on a database.
    pub bundled_dir: PathBuf,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Self {
            max_upload_bytes: 20 * 1024 * 1024,
            max_unpacked_bytes: 64 * 1024 * 1024,
            max_files: 256,
            max_ratio: 100,
            default_memory_mb: 64,
            max_memory_mb: 512,
            default_timeout_ms: 5_000,
            max_timeout_ms: 60_000,
            fuel: 0,
            pool_size: 4,
            max_queued_calls: 256,
            crash_limit: 5,
            crash_window_secs: 60,
            max_input_bytes: 1024 * 1024,
            trusted_keys: Vec::new(),
            require_signature: false,
            allow_private_hosts: false,
            http_max_response_bytes: 1024 * 1024,
            http_timeout_ms: 10_000,
            max_tool_steps: 5,
            bundled_dir: PathBuf::from(".hearth/plugins"),
        }
    }
}

/// Documents and retrieval.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RagConfig {
    /// Largest upload, in bytes (a larger one is `413`).
    pub max_upload_bytes: u64,
    /// Most characters kept from one document's extracted text (a longer one fails).
    pub max_text_chars: usize,
    /// Tokens per chunk (the model reads at most `embed.max_tokens`).
    pub chunk_tokens: usize,
    /// Tokens shared by neighbouring chunks.
    pub chunk_overlap: usize,
    /// Attempts of one document's ingestion.
    pub ingest_attempts: i64,
    /// A collection with more vectors than this is searched with HNSW instead of exactly.
    pub hnsw_above: usize,
    /// HNSW neighbours per node.
    pub hnsw_m: usize,
    /// HNSW candidates kept while searching.
    pub hnsw_ef_search: usize,
    /// The pdfium library (from PyPI's `pypdfium2` wheel).
    pub pdfium: PathBuf,
    /// Folders whose files `POST /rag/reindex` and `hearth ingest` index for everyone.
    pub source_dirs: Vec<PathBuf>,
    /// Hits a search returns when the caller does not say.
    pub default_top_k: usize,
    /// Most hits one search returns.
    pub max_top_k: usize,
    /// The `k` of reciprocal rank fusion (higher: the two rankings weigh more evenly).
    pub rrf_k: f64,
}

impl Default for RagConfig {
    fn default() -> Self {
        Self {
            max_upload_bytes: 10 * 1024 * 1024,
            max_text_chars: 5_000_000,
            chunk_tokens: 200,
            chunk_overlap: 32,
            ingest_attempts: 3,
            hnsw_above: 50_000,
            hnsw_m: 32,
            hnsw_ef_search: 128,
            pdfium: PathBuf::from(".hearth/assets/libpdfium.so"),
            source_dirs: Vec::new(),
            default_top_k: 5,
            max_top_k: 100,
            rrf_k: 60.0,
        }
    }
}

/// The embedding model (ONNX, run by the ONNX Runtime library the set-up fetches) and the
/// batcher in front of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbedConfig {
    /// The ONNX Runtime shared library.
    pub runtime: PathBuf,
    /// The model (all-MiniLM-L6-v2, int8, 384 dimensions).
    pub model: PathBuf,
    /// Its tokenizer (`tokenizer.json`).
    pub tokenizer: PathBuf,
    /// The model's name on the wire (`/v1/embeddings`' `model`).
    pub model_name: String,
    /// Tokens per text the model reads; longer texts are truncated.
    pub max_tokens: usize,
    /// Texts per run of the model.
    pub max_batch: usize,
    /// Microseconds a lone text waits for others to share its batch (0: none).
    pub batch_wait_us: u64,
    /// Texts that may wait for the model before callers get `model_busy`.
    pub queue_depth: usize,
    /// Threads of one run of the model; 0: one per core.
    pub threads: usize,
    /// Let the model's threads spin between runs (lower latency on a machine with cores to
    /// spare; on a small one they take the cores the server needs).
    pub spin: bool,
    /// Texts in one request.
    pub max_inputs: usize,
    /// Characters in one text.
    pub max_input_chars: usize,
}

impl Default for EmbedConfig {
    fn default() -> Self {
        Self {
            runtime: PathBuf::from(".hearth/assets/libonnxruntime.so.1.31.1"),
            model: PathBuf::from(".hearth/assets/minilm-l6-v2-int8.onnx"),
            tokenizer: PathBuf::from(".hearth/assets/minilm-tokenizer.json"),
            model_name: "all-minilm-l6-v2".into(),
            max_tokens: 256,
            max_batch: 32,
            batch_wait_us: 0,
            queue_depth: 4096,
            threads: 0,
            spin: false,
            max_inputs: 2048,
            max_input_chars: 100_000,
        }
    }
}

/// The job queue: how many runs a process takes on, leases, retries, limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Runs one process carries out at once; 0: this process runs no jobs (it still
    /// serves the job doors).
    pub workers: usize,
    /// Runs of one kind one process carries out at once (kinds not listed: `workers`; 0:
    /// this process never runs that kind).
    pub kind_concurrency: std::collections::BTreeMap<String, usize>,
    /// Seconds a claimed run's lease lasts; renewed every third of it while the run goes
    /// on. A run whose worker died is retried once its lease has run out.
    pub lease_secs: u64,
    /// Wait before the first retry, in seconds; doubles per attempt.
    pub retry_base_secs: u64,
    /// Longest wait between attempts, in seconds.
    pub retry_max_secs: u64,
    /// Attempts per occurrence when a job does not say.
    pub default_max_attempts: i64,
    /// Timeout of a run when a job does not say, in seconds.
    pub default_timeout_secs: u64,
    /// Longest timeout a job may ask for, in seconds.
    pub max_timeout_secs: u64,
    /// Shortest `every_secs` accepted.
    pub min_interval_secs: u64,
    /// Jobs one user may keep.
    pub max_jobs_per_user: i64,
    /// Largest payload, in bytes of JSON.
    pub max_payload_bytes: usize,
    /// Days finished runs are kept (each job's latest run is always kept).
    pub run_retention_days: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            workers: 4,
            kind_concurrency: [
                ("agent_prompt".to_string(), 2),
                ("ingest_document".to_string(), 2),
            ]
            .into_iter()
            .collect(),
            lease_secs: 30,
            retry_base_secs: 10,
            retry_max_secs: 3600,
            default_max_attempts: 3,
            default_timeout_secs: 600,
            max_timeout_secs: 86_400,
            min_interval_secs: 10,
            max_jobs_per_user: 1000,
            max_payload_bytes: 64 * 1024,
            run_retention_days: 30,
        }
    }
}

/// Model providers. Remote models are registered in the database (GraphQL, `/api/models`);
/// the embedded GGUF below is registered at start when the file exists.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// Model key `auto` resolves to when no agent names one (else the first healthy model).
    pub default_model: Option<String>,
    /// The embedded GGUF chat model, registered as `local_model_key` at start.
    pub local_model: PathBuf,
    /// Registry key of the embedded model.
    pub local_model_key: String,
    /// Context window of local generations, in tokens (capped by the model's own).
    pub local_context: u32,
    /// Decode threads per local generation; 0 means one per core.
    pub local_threads: usize,
    /// Seconds to wait for a remote model's response and its first token.
    pub request_timeout_secs: u64,
    /// Seconds to wait for a TCP connection to a remote model.
    pub connect_timeout_secs: u64,
    /// Seconds of silence tolerated between two tokens of a remote stream.
    pub idle_timeout_secs: u64,
    /// Requests that may wait for a busy model before new ones get `model_busy`.
    pub queue_depth: usize,
    /// Tokens generated when neither the request nor the agent sets a limit.
    pub default_max_tokens: u32,
    /// Milliseconds between two checkpoints of a running answer's text (what a crash keeps,
    /// what other processes relay); 0: none.
    pub checkpoint_ms: u64,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            default_model: None,
            local_model: PathBuf::from(".hearth/assets/SmolLM2-135M-Instruct.Q4_1.gguf"),
            local_model_key: "smollm2-135m-instruct".into(),
            local_context: 2048,
            local_threads: 0,
            request_timeout_secs: 120,
            connect_timeout_secs: 5,
            idle_timeout_secs: 60,
            queue_depth: 32,
            default_max_tokens: 512,
            checkpoint_ms: 1000,
        }
    }
}

/// GraphQL limits that async-graphql leaves open by default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphqlConfig {
    /// Deepest selection nesting accepted.
    pub max_depth: usize,
    /// Most fields (each costs 1, aliases included) one operation may select.
    pub max_complexity: usize,
    /// Most operations in one batched request.
    pub max_batch: usize,
    /// Most aliased fields in one operation.
    pub max_aliases: usize,
    /// Most times one response key may be selected in one selection set.
    pub max_field_repeats: usize,
    /// Introspection on or off (turn off in production if the schema is private).
    pub introspection: bool,
    /// Serve GraphiQL at `GET /graphql` (from the binary; no CDN).
    pub playground: bool,
    /// Seconds a WebSocket client has to send `connection_init`; anonymous sockets are
    /// closed then too.
    pub connection_init_timeout_secs: u64,
    /// Operations (subscriptions included) one WebSocket may run at once.
    pub max_operations_per_socket: usize,
    /// Largest WebSocket message (and frame) accepted on `/graphql/ws`, in bytes.
    pub max_socket_message_bytes: usize,
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        Self {
            max_depth: 16,
            max_complexity: 500,
            max_batch: 10,
            max_aliases: 30,
            max_field_repeats: 3,
            introspection: true,
            playground: true,
            connection_init_timeout_secs: 10,
            max_operations_per_socket: 64,
            max_socket_message_bytes: 256 * 1024,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            jwt_secret: None,
            access_token_ttl_secs: 3600,
            refresh_token_ttl_secs: 7 * 24 * 3600,
            allow_registration: true,
            admin_email: None,
            cookie_secure: false,
            body_limit_bytes: 2 * 1024 * 1024,
            db_pool_size: 8,
            db_pool_timeout_secs: 10,
            login_rate_limit: 10,
            login_rate_window_secs: 60,
            login_account_rate_limit: 20,
            register_rate_limit: 5,
            trusted_proxies: Vec::new(),
            shutdown_grace_secs: 10,
            max_chats_per_user: 10_000,
            max_messages_per_chat: 10_000,
            graphql: GraphqlConfig::default(),
            llm: LlmConfig::default(),
            jobs: JobsConfig::default(),
            embed: EmbedConfig::default(),
            rag: RagConfig::default(),
            plugins: PluginsConfig::default(),
            monitoring: MonitoringConfig::default(),
            rate_limits: RateLimitsConfig::default(),
            quotas: QuotasConfig::default(),
            backup: BackupConfig::default(),
        }
    }
}

/// A configuration problem, naming the offending key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration `{key}`: {message}")]
pub struct ConfigError {
    /// The key as written in hearth.toml or the env var name.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

fn bad(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

impl Config {
    /// Loads `hearth.toml` (the given path, else `./hearth.toml` if present) then the env.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut cfg = match file {
            Some(p) => Self::from_file(p)?,
            None if Path::new("hearth.toml").exists() => Self::from_file(Path::new("hearth.toml"))?,
            None => Self::default(),
        };
        // Variables that are not UTF-8 cannot be Hearth's; skip them instead of panicking.
        cfg.apply_env(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad("config", format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| {
            let key = e
                .span()
                .map(|s| text[s].trim().to_string())
                .unwrap_or_default();
            bad(
                if key.is_empty() { "hearth.toml" } else { &key },
                e.message().to_string(),
            )
        })
    }

    /// Applies `HEARTH_*` overrides from `vars` (the process environment in [`Config::load`]).
    ///
    /// One rule for every key: `HEARTH_` + the key's path in upper case, sections separated
    /// by `__` (`HEARTH_GRAPHQL__MAX_DEPTH`) or, as long as that is unambiguous, by `_`
    /// (`HEARTH_LLM_DEFAULT_MODEL`). Values are read as the key's type; lists are
    /// comma-separated; an empty value clears an optional key. Variables that name no key
    /// (`HEARTH_LOG`, …) are left to whoever reads them.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        let mut tree = toml::Value::try_from(&*self)
            .map_err(|e| bad("config", format!("cannot represent the configuration: {e}")))?;
        for (name, value) in vars {
            let Some(rest) = name.strip_prefix("HEARTH_") else {
                continue;
            };
            let Some(path) = env_path(&tree, &rest.to_ascii_lowercase()) else {
                continue;
            };
            set_from_env(&mut tree, &path, &name, &value)?;
            // Read back after each variable, so a value of the wrong shape names its variable.
            *self = tree
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| bad(&name, e.message().to_string()))?;
        }
        Ok(())
    }

    /// Rejects values the server cannot run with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.bind.parse::<SocketAddr>().map_err(|_| {
            bad(
                "bind",
                format!("{:?} is not an address like 127.0.0.1:8080", self.bind),
            )
        })?;
        let url = self.database_url();
        if !(url.starts_with("sqlite://")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(bad(
                "database_url",
                "must start with sqlite:// or postgres://",
            ));
        }
        if self.monitoring.status_secs == 0 {
            return Err(bad("monitoring.status_secs", "must be at least 1"));
        }
        if let Some(s) = &self.jwt_secret {
            if s.len() < 32 {
                return Err(bad("jwt_secret", "must be at least 32 characters"));
            }
        }
        if self.access_token_ttl_secs < 1 {
            return Err(bad("access_token_ttl_secs", "must be positive"));
        }
        if self.refresh_token_ttl_secs < self.access_token_ttl_secs {
            return Err(bad(
                "refresh_token_ttl_secs",
                "must be at least access_token_ttl_secs",
            ));
        }
        if self.body_limit_bytes < 1024 {
            return Err(bad("body_limit_bytes", "must be at least 1024"));
        }
        if self.login_rate_window_secs == 0 {
            return Err(bad("login_rate_window_secs", "must be at least 1"));
        }
        if self.max_chats_per_user < 1 || self.max_messages_per_chat < 2 {
            return Err(bad(
                "max_chats_per_user",
                "chats per user must be at least 1 and messages per chat at least 2",
            ));
        }
        if self.db_pool_timeout_secs == 0 {
            return Err(bad("db_pool_timeout_secs", "must be at least 1"));
        }
        if self.db_pool_size == 0 {
            return Err(bad("db_pool_size", "must be at least 1"));
        }
        let g = &self.graphql;
        if g.max_depth == 0 || g.max_complexity == 0 || g.max_batch == 0 {
            return Err(bad(
                "graphql",
                "max_depth, max_complexity and max_batch must be at least 1",
            ));
        }
        let j = &self.jobs;
        if j.lease_secs < 3 {
            return Err(bad("jobs.lease_secs", "must be at least 3"));
        }
        if j.default_max_attempts < 1 || j.default_max_attempts > 100 {
            return Err(bad(
                "jobs.default_max_attempts",
                "must be between 1 and 100",
            ));
        }
        if j.default_timeout_secs == 0 || j.default_timeout_secs > j.max_timeout_secs {
            return Err(bad(
                "jobs.default_timeout_secs",
                "must be between 1 and jobs.max_timeout_secs",
            ));
        }
        if j.min_interval_secs == 0 {
            return Err(bad("jobs.min_interval_secs", "must be at least 1"));
        }
        let e = &self.embed;
        if e.max_tokens < 8 || e.max_tokens > 512 {
            return Err(bad(
                "embed.max_tokens",
                "must be between 8 and 512 (the model's window)",
            ));
        }
        if e.max_batch == 0 || e.queue_depth == 0 || e.max_inputs == 0 || e.max_input_chars == 0 {
            return Err(bad(
                "embed",
                "max_batch, queue_depth, max_inputs and max_input_chars must be at least 1",
            ));
        }
        let r = &self.rag;
        if r.chunk_tokens < 16 || r.chunk_tokens + 2 > e.max_tokens {
            return Err(bad(
                "rag.chunk_tokens",
                "must be at least 16 and leave 2 tokens of embed.max_tokens for the model's markers",
            ));
        }
        if r.chunk_overlap >= r.chunk_tokens / 2 {
            return Err(bad(
                "rag.chunk_overlap",
                "must be less than half of rag.chunk_tokens",
            ));
        }
        if r.ingest_attempts < 1 || r.max_upload_bytes == 0 {
            return Err(bad(
                "rag",
                "ingest_attempts and max_upload_bytes must be at least 1",
            ));
        }
        if r.default_top_k == 0 || r.default_top_k > r.max_top_k || r.hnsw_m < 4 || r.rrf_k <= 0.0 {
            return Err(bad(
                "rag",
                "default_top_k must be between 1 and max_top_k, hnsw_m at least 4, rrf_k positive",
            ));
        }
        let p = &self.plugins;
        if p.pool_size == 0 || p.max_files == 0 || p.max_ratio == 0 || p.crash_limit == 0 {
            return Err(bad(
                "plugins",
                "pool_size, max_files, max_ratio and crash_limit must be at least 1",
            ));
        }
        if p.default_memory_mb == 0
            || p.default_memory_mb > p.max_memory_mb
            || p.max_memory_mb > 4096
        {
            return Err(bad(
                "plugins.default_memory_mb",
                "must be between 1 and plugins.max_memory_mb (at most 4096)",
            ));
        }
        if p.default_timeout_ms == 0 || p.default_timeout_ms > p.max_timeout_ms {
            return Err(bad(
                "plugins.default_timeout_ms",
                "must be between 1 and plugins.max_timeout_ms",
            ));
        }
        for key in &p.trusted_keys {
            crate::plugins::signature::public_key(key)
                .map_err(|e| bad("plugins.trusted_keys", e))?;
        }
        let l = &self.llm;
        if l.local_context < 256 {
            return Err(bad("llm.local_context", "must be at least 256"));
        }
        if l.request_timeout_secs == 0 || l.connect_timeout_secs == 0 || l.idle_timeout_secs == 0 {
            return Err(bad("llm", "timeouts must be at least 1 second"));
        }
        if l.default_max_tokens == 0 {
            return Err(bad("llm.default_max_tokens", "must be at least 1"));
        }
        if l.local_model_key.trim().is_empty() || l.local_model_key == "auto" {
            return Err(bad(
                "llm.local_model_key",
                "must be a non-empty key other than `auto`",
            ));
        }
        Ok(())
    }

    /// The largest file any upload door takes (documents or plugins); each door then holds
    /// its files to its own limit.
    pub fn max_upload_bytes(&self) -> u64 {
        self.rag.max_upload_bytes.max(self.plugins.max_upload_bytes)
    }

    /// The effective database URL (SQLite in the data dir unless configured).
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("hearth.db").display()))
    }
}

/// Keys that may be absent (`Option`s), so the serialized defaults do not show them.
const OPTIONAL_KEYS: &[&str] = &[
    "database_url",
    "jwt_secret",
    "admin_email",
    "llm.default_model",
    "backup.dir",
];

/// The key path an env name (lower-cased, without `HEARTH_`) addresses, if any.
fn env_path(tree: &toml::Value, rest: &str) -> Option<Vec<String>> {
    let known = |path: &[String]| {
        let dotted = path.join(".");
        OPTIONAL_KEYS.contains(&dotted.as_str())
            || path
                .iter()
                .try_fold(tree, |node, key| node.get(key))
                .is_some_and(|v| !v.is_table())
    };
    let explicit: Vec<String> = rest.split("__").map(str::to_string).collect();
    if known(&explicit) {
        return Some(explicit);
    }
    // `section_key`: the first table whose name is a prefix.
    let table = tree.as_table()?;
    table.iter().find_map(|(section, v)| {
        let key = rest.strip_prefix(section.as_str())?.strip_prefix('_')?;
        let path = vec![section.clone(), key.to_string()];
        (v.is_table() && known(&path)).then_some(path)
    })
}

/// Writes one env value into the tree as the type the key already has.
fn set_from_env(
    tree: &mut toml::Value,
    path: &[String],
    var: &str,
    raw: &str,
) -> Result<(), ConfigError> {
    let (last, parents) = path.split_last().ok_or_else(|| bad(var, "empty key"))?;
    let mut node = tree;
    for key in parents {
        node = node
            .get_mut(key)
            .ok_or_else(|| bad(var, "no such section"))?;
    }
    let table = node
        .as_table_mut()
        .ok_or_else(|| bad(var, "not a section"))?;
    let v = raw.trim();
    if v.is_empty() && OPTIONAL_KEYS.contains(&path.join(".").as_str()) {
        table.remove(last);
        return Ok(());
    }
    let parsed = match table.get(last) {
        None | Some(toml::Value::String(_)) => toml::Value::String(raw.to_string()),
        Some(toml::Value::Integer(_)) => toml::Value::Integer(
            v.parse()
                .map_err(|_| bad(var, format!("cannot parse {raw:?} as an integer")))?,
        ),
        Some(toml::Value::Float(_)) => toml::Value::Float(
            v.parse()
                .map_err(|_| bad(var, format!("cannot parse {raw:?} as a number")))?,
        ),
        Some(toml::Value::Boolean(_)) => toml::Value::Boolean(
            v.parse()
                .map_err(|_| bad(var, format!("cannot parse {raw:?} as true or false")))?,
        ),
        Some(toml::Value::Array(_)) => toml::Value::Array(
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        ),
        Some(_) => return Err(bad(var, "cannot be set from the environment")),
    };
    table.insert(last.clone(), parsed);
    Ok(())
}

/// An address block (`10.0.0.0/8`, `::1/128`) or one address, as written in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpNet {
    /// The network address.
    pub addr: IpAddr,
    /// Leading bits that must match.
    pub prefix: u8,
}

impl IpNet {
    /// Whether `ip` is inside the block (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: &IpAddr) -> bool {
        fn masked(bytes: &[u8], prefix: u8) -> Vec<u8> {
            bytes
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let keep = (prefix as usize).saturating_sub(i * 8).min(8) as u32;
                    if keep == 0 {
                        0
                    } else {
                        b & (0xffu8 << (8 - keep))
                    }
                })
                .collect()
        }
        match (self.addr.to_canonical(), ip.to_canonical()) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                masked(&a.octets(), self.prefix) == masked(&b.octets(), self.prefix)
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                masked(&a.octets(), self.prefix) == masked(&b.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: prefix must be 0..={max}"))?,
            None => max,
        };
        Ok(IpNet { addr, prefix })
    }
}

impl Serialize for IpNet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}/{}", self.addr, self.prefix))
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn env_overrides_and_names_the_bad_key() {
        let mut c = Config::default();
        c.apply_env(env(&[
            ("HEARTH_BIND", "127.0.0.1:9000"),
            ("HEARTH_LOG", "debug"),
        ]))
        .unwrap();
        assert_eq!(c.bind, "127.0.0.1:9000");
        let err = c
            .apply_env(env(&[("HEARTH_DB_POOL_SIZE", "many")]))
            .unwrap_err();
        assert_eq!(err.key, "HEARTH_DB_POOL_SIZE");
        c.bind = "nope".into();
        assert_eq!(c.validate().unwrap_err().key, "bind");
    }

    #[test]
    fn every_key_has_an_env_override() {
        let mut c = Config::default();
        c.apply_env(env(&[
            ("HEARTH_GRAPHQL__MAX_DEPTH", "7"),
            ("HEARTH_GRAPHQL_MAX_BATCH", "3"),
            ("HEARTH_LLM_DEFAULT_MODEL", "m1"),
            ("HEARTH_LLM__QUEUE_DEPTH", "5"),
            ("HEARTH_TRUSTED_PROXIES", "10.0.0.0/8, ::1"),
            ("HEARTH_COOKIE_SECURE", "true"),
            ("HEARTH_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ]))
        .unwrap();
        assert_eq!(c.graphql.max_depth, 7);
        assert_eq!(c.graphql.max_batch, 3);
        assert_eq!(c.llm.default_model.as_deref(), Some("m1"));
        assert_eq!(c.llm.queue_depth, 5);
        assert!(c.cookie_secure);
        assert_eq!(c.trusted_proxies.len(), 2);
        assert!(c.trusted_proxies[0].contains(&"10.1.2.3".parse().unwrap()));
        assert!(!c.trusted_proxies[0].contains(&"11.1.2.3".parse().unwrap()));
        assert!(c.trusted_proxies[1].contains(&"::1".parse().unwrap()));
        c.apply_env(env(&[("HEARTH_LLM_DEFAULT_MODEL", "")]))
            .unwrap();
        assert_eq!(c.llm.default_model, None);
        let err = c
            .apply_env(env(&[("HEARTH_TRUSTED_PROXIES", "10.0.0.0/99")]))
            .unwrap_err();
        assert_eq!(err.key, "HEARTH_TRUSTED_PROXIES");
    }

    /// `hearth.example.toml` names every key (commented out for the optional ones).
    #[test]
    fn example_lists_every_key() {
        let example = include_str!("../../hearth.example.toml");
        let tree = toml::Value::try_from(Config::default()).unwrap();
        let mut keys: Vec<String> = OPTIONAL_KEYS.iter().map(|k| k.to_string()).collect();
        for (k, v) in tree.as_table().unwrap() {
            match v.as_table() {
                Some(t) => keys.extend(t.keys().map(|sub| format!("{k}.{sub}"))),
                None => keys.push(k.clone()),
            }
        }
        for key in keys {
            let leaf = key.rsplit('.').next().unwrap();
            assert!(
                example.contains(&format!("{leaf} =")),
                "hearth.example.toml does not mention `{key}`"
            );
        }
    }

    #[test]
    fn toml_unknown_key_is_refused() {
        let err = toml::from_str::<Config>("bnid = \"x\"").unwrap_err();
        assert!(err.message().contains("bnid"), "{}", err.message());
    }
}

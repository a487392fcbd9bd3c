//! Configuration: built-in defaults < `hearth.toml` < `HEARTH_*` environment < CLI flags.
//! Validated once at start; an invalid value fails with a message naming the key.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Everything the server needs to start; cheap to clone into the state.
#[derive(Debug, Clone, Deserialize)]
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
    /// Mark the auth cookie `Secure`; turn on behind HTTPS.
    pub cookie_secure: bool,
    /// Largest request body accepted on any route, in bytes.
    pub body_limit_bytes: usize,
    /// Connections kept by the database pool (readers on SQLite).
    pub db_pool_size: usize,
    /// Login attempts allowed per client address per `login_rate_window_secs` (0: no limit).
    pub login_rate_limit: u32,
    /// Window of the login rate limit, in seconds.
    pub login_rate_window_secs: u64,
    /// GraphQL limits and switches.
    pub graphql: GraphqlConfig,
    /// Model providers: the embedded model, timeouts, queues.
    pub llm: LlmConfig,
}

/// Model providers. Remote models are registered in the database (GraphQL, `/api/models`);
/// the embedded GGUF below is registered at start when the file exists.
#[derive(Debug, Clone, Deserialize)]
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
        }
    }
}

/// GraphQL limits that async-graphql leaves open by default.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphqlConfig {
    /// Deepest selection nesting accepted.
    pub max_depth: usize,
    /// Most fields (each costs 1, aliases included) one operation may select.
    pub max_complexity: usize,
    /// Most operations in one batched request.
    pub max_batch: usize,
    /// Introspection on or off (turn off in production if the schema is private).
    pub introspection: bool,
    /// Seconds a WebSocket client has to send `connection_init`.
    pub connection_init_timeout_secs: u64,
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        Self {
            max_depth: 12,
            max_complexity: 500,
            max_batch: 10,
            introspection: true,
            connection_init_timeout_secs: 10,
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
            cookie_secure: false,
            body_limit_bytes: 2 * 1024 * 1024,
            db_pool_size: 8,
            login_rate_limit: 10,
            login_rate_window_secs: 60,
            graphql: GraphqlConfig::default(),
            llm: LlmConfig::default(),
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
        cfg.apply_env(|k| std::env::var(k).ok())?;
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

    /// Applies `HEARTH_*` overrides; `get` is the environment lookup (injectable for tests).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(key: &str, v: String) -> Result<T, ConfigError> {
            v.trim()
                .parse()
                .map_err(|_| bad(key, format!("cannot parse {v:?}")))
        }
        if let Some(v) = get("HEARTH_BIND") {
            self.bind = v;
        }
        if let Some(v) = get("HEARTH_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("HEARTH_DATABASE_URL") {
            self.database_url = Some(v);
        }
        if let Some(v) = get("HEARTH_JWT_SECRET") {
            self.jwt_secret = Some(v);
        }
        if let Some(v) = get("HEARTH_ACCESS_TOKEN_TTL_SECS") {
            self.access_token_ttl_secs = parse("HEARTH_ACCESS_TOKEN_TTL_SECS", v)?;
        }
        if let Some(v) = get("HEARTH_REFRESH_TOKEN_TTL_SECS") {
            self.refresh_token_ttl_secs = parse("HEARTH_REFRESH_TOKEN_TTL_SECS", v)?;
        }
        if let Some(v) = get("HEARTH_ALLOW_REGISTRATION") {
            self.allow_registration = parse("HEARTH_ALLOW_REGISTRATION", v)?;
        }
        if let Some(v) = get("HEARTH_COOKIE_SECURE") {
            self.cookie_secure = parse("HEARTH_COOKIE_SECURE", v)?;
        }
        if let Some(v) = get("HEARTH_BODY_LIMIT_BYTES") {
            self.body_limit_bytes = parse("HEARTH_BODY_LIMIT_BYTES", v)?;
        }
        if let Some(v) = get("HEARTH_DB_POOL_SIZE") {
            self.db_pool_size = parse("HEARTH_DB_POOL_SIZE", v)?;
        }
        if let Some(v) = get("HEARTH_LOGIN_RATE_LIMIT") {
            self.login_rate_limit = parse("HEARTH_LOGIN_RATE_LIMIT", v)?;
        }
        if let Some(v) = get("HEARTH_LLM_DEFAULT_MODEL") {
            self.llm.default_model = Some(v).filter(|v| !v.trim().is_empty());
        }
        if let Some(v) = get("HEARTH_LLM_LOCAL_MODEL") {
            self.llm.local_model = PathBuf::from(v);
        }
        if let Some(v) = get("HEARTH_LLM_LOCAL_THREADS") {
            self.llm.local_threads = parse("HEARTH_LLM_LOCAL_THREADS", v)?;
        }
        if let Some(v) = get("HEARTH_GRAPHQL_INTROSPECTION") {
            self.graphql.introspection = parse("HEARTH_GRAPHQL_INTROSPECTION", v)?;
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

    /// The effective database URL (SQLite in the data dir unless configured).
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("hearth.db").display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_and_names_the_bad_key() {
        let mut c = Config::default();
        c.apply_env(|k| (k == "HEARTH_BIND").then(|| "127.0.0.1:9000".to_string()))
            .unwrap();
        assert_eq!(c.bind, "127.0.0.1:9000");
        let err = c
            .apply_env(|k| (k == "HEARTH_DB_POOL_SIZE").then(|| "many".to_string()))
            .unwrap_err();
        assert_eq!(err.key, "HEARTH_DB_POOL_SIZE");
        c.bind = "nope".into();
        assert_eq!(c.validate().unwrap_err().key, "bind");
    }

    #[test]
    fn toml_unknown_key_is_refused() {
        let err = toml::from_str::<Config>("bnid = \"x\"").unwrap_err();
        assert!(err.message().contains("bnid"), "{}", err.message());
    }
}

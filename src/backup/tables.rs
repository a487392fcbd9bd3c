//! The tables a backup carries, their columns and the order they load in. A registry rather
//! than `SELECT *`, so a dump is the same on both backends and an archive names every value it
//! holds; `tests/backup.rs` checks it against the live schema of both backends, so a
//! migration that adds a table or a column fails until it is listed here.

/// How a column's values travel in an archive (JSON), whatever the backend stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 32-bit integer: a JSON number.
    Int,
    /// 64-bit integer: a JSON number.
    BigInt,
    /// Double: a JSON number.
    Double,
    /// `true` / `false` (SQLite stores 0/1).
    Bool,
    /// A JSON string.
    Text,
    /// UTC, `2026-11-30T12:00:00.000000`.
    Timestamp,
    /// `2026-11-30`.
    Date,
    /// Lower-case hex.
    Binary,
}

/// One column.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Its name.
    pub name: &'static str,
    /// Its value kind.
    pub kind: Kind,
    /// Whether it may hold NULL.
    pub nullable: bool,
}

/// One table.
#[derive(Debug)]
pub struct Table {
    /// Its name.
    pub name: &'static str,
    /// The primary key's columns (the dump's order).
    pub key: &'static [&'static str],
    /// Whether `id` is generated (its generator follows restored ids).
    pub generated_id: bool,
    /// Rows read per query: small where rows hold files.
    pub page: i64,
    /// Every column.
    pub columns: &'static [Column],
}

impl Table {
    /// A column by name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The key's columns.
    pub fn key_columns(&self) -> Vec<Column> {
        self.key
            .iter()
            .filter_map(|k| self.column(k).copied())
            .collect()
    }
}

const fn c(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        nullable: false,
    }
}

const fn n(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        nullable: true,
    }
}

use Kind::*;

const ROWS: i64 = 1000;
const FILES: i64 = 8;

/// Every table a backup holds, parents before children (the load order; deletes run in
/// reverse).
pub const TABLES: &[Table] = &[
    Table {
        name: "users",
        key: &["id"],
        generated_id: true,
        page: ROWS,
        columns: &[
            c("id", BigInt),
            c("email", Text),
            c("username", Text),
            c("name", Text),
            c("password_hash", Text),
            c("role", Text),
            c("is_active", Bool),
            n("avatar_url", Text),
            c("created_at", Timestamp),
            c("updated_at", Timestamp),
        ],
    },
    Table {
        name: "api_keys",
        key: &["id"],
        generated_id: true,
        page: ROWS,
        columns: &[
            c("id", BigInt),
            c("user_id", BigInt),
            c("name", Text),
            c("prefix", Text),
            c("key_hash", Text),
            c("permissions", Text),
            n("rate_limit", Int),
            c("created_at", Timestamp),
            n("expires_at", Timestamp),
            n("last_used_at", Timestamp),
            n("revoked_at", Timestamp),
        ],
    },
    Table {
        name: "agents",
        key: &["id"],
        generated_id: true,
        page: ROWS,
        columns: &[
            c("id", BigInt),
            c("owner_id", BigInt),
            c("slug", Text),
            c("name", Text),
            c("description", Text),
            c("system_prompt", Text),
            n("model", Text),
            c("temperature", Double),
            n("max_tokens", Int),
            n("avatar_url", Text),
            c("learn_from_interaction", Bool),
            c("is_public", Bool),
            c("capabilities", Text),
            c("created_at", Timestamp),
            c("updated_at", Timestamp),
            c("tools", Text),
        ],
    },
    Table {
        name: "projects",
        key: &["id"],
        generated_id: true,
        page: ROWS,
        columns: &[
            c("id", BigInt),
            c("owner_id", BigInt),
            c("name", Text),
            c("description", Text),
            c("kind", Text),
            c("created_at", Timestamp),
            c("updated_at", Timestamp),
        ],
    },
    Table {
        name: "chats",
        key: &["id"],
        generated_id: true,
        page: ROWS,
        columns: &[
            c("id", BigInt),
            c("user_id", BigInt),
            n("agent_id", BigInt),
            n("project_id", BigInt),
            c("title", Text),
            n("model", Text),
            c("created_at", Timestamp),
            c("updated_at", Timestamp),
            n("last_message_at", Timestamp),
        ],
    },
    Table {
        name: "messages",
        key: &["id"],
        generated_id: true,
        page: ROWS,
        columns: &[
            c("id", BigInt),
            c("chat_id", BigInt),
            c("role", Text),
            c("content", Text),
            n("model", Text),
            c("status", Text),
            n("prompt_tokens", Int),
            n("completion_tokens", Int),
            n("latency_ms", BigInt),
            n("tool_calls", Text),
            c("files", Text),
            c("sources", Text),
            c("created_at", Timestamp),
        ],
    },
    Table {
        name: "jobs",
        key: &["id"],
        generated_id: true,
        page: ROWS,
        columns: &[
            c("id", BigInt),
            c("owner_id", BigInt),
            n("api_key_id", BigInt),
            c("name", Text),
            c("kind", Text),
            c("payload", Text),
            c("schedule", Text),
            c("priority", Int),
            c("max_attempts", Int),
            c("timeout_secs", Int),
            c("state", Text),
            c("paused", Bool),
            n("outcome", Text),
            c("anchor_at", Timestamp),
            n("next_run_at", Timestamp),
            n("retry_at", Timestamp),
            c("run_now", Bool),
            n("due_at", Timestamp),
            c("attempt", Int),
            n("series", Text),
            c("cancel_requested", Bool),
            n("current_run_id", BigInt),
            n("last_run_id", BigInt),
            n("locked_by", Text),
            n("lease_until", Timestamp),
            n("progress", Text),
            c("created_at", Timestamp),
            c("updated_at", Timestamp),
        ],
    },
    Table {
        name: "job_runs",
        key: &["id"],
        generated_id: true,
        page: ROWS,
        columns: &[
            c("id", BigInt),
            c("job_id", BigInt),
            c("attempt", Int),
            c("cause", Text),
            c("outcome", Text),
            c("worker", Text),
            n("output", Text),
            n("error", Text),
            c("started_at", Timestamp),
            n("finished_at", Timestamp),
        ],
    },
    Table {
        name: "collections",
        key: &["id"],
        generated_id: true,
        page: ROWS,
        columns: &[
            c("id", BigInt),
            c("owner_id", BigInt),
            c("kind", Text),
            c("name", Text),
            c("description", Text),
            n("agent_id", BigInt),
            n("chat_id", BigInt),
            c("embed_model", Text),
            c("index_version", BigInt),
            c("created_at", Timestamp),
            c("updated_at", Timestamp),
        ],
    },
    Table {
        name: "documents",
        key: &["id"],
        generated_id: true,
        page: ROWS,
        columns: &[
            c("id", BigInt),
            c("owner_id", BigInt),
            c("collection_id", BigInt),
            c("filename", Text),
            c("kind", Text),
            c("mime_type", Text),
            c("file_size", BigInt),
            c("sha256", Text),
            n("pages", Int),
            c("status", Text),
            n("error", Text),
            c("chunks_total", Int),
            c("chunks_embedded", Int),
            c("metadata", Text),
            n("source_path", Text),
            n("job_id", BigInt),
            c("created_at", Timestamp),
            c("updated_at", Timestamp),
        ],
    },
    Table {
        name: "document_blobs",
        key: &["document_id"],
        generated_id: false,
        page: FILES,
        columns: &[c("document_id", BigInt), c("bytes", Binary)],
    },
    Table {
        name: "document_texts",
        key: &["document_id"],
        generated_id: false,
        page: FILES,
        columns: &[c("document_id", BigInt), c("text", Text), c("pages", Text)],
    },
    Table {
        name: "chunks",
        key: &["id"],
        generated_id: true,
        page: ROWS,
        columns: &[
            c("id", BigInt),
            c("document_id", BigInt),
            c("collection_id", BigInt),
            c("ordinal", Int),
            c("text", Text),
            c("char_start", BigInt),
            c("char_end", BigInt),
            n("page", Int),
            c("created_at", Timestamp),
        ],
    },
    Table {
        name: "chunk_vectors",
        key: &["chunk_id", "model"],
        generated_id: false,
        page: ROWS,
        columns: &[
            c("chunk_id", BigInt),
            c("model", Text),
            c("collection_id", BigInt),
            c("embedding", Binary),
        ],
    },
    Table {
        name: "memory_entries",
        key: &["id"],
        generated_id: true,
        page: ROWS,
        columns: &[
            c("id", BigInt),
            c("user_id", BigInt),
            n("agent_id", BigInt),
            c("content", Text),
            c("metadata", Text),
            n("embedding", Binary),
            c("created_at", Timestamp),
        ],
    },
    Table {
        name: "plugins",
        key: &["id"],
        generated_id: true,
        page: FILES,
        columns: &[
            c("id", BigInt),
            c("name", Text),
            c("version", Text),
            c("description", Text),
            n("installed_by", BigInt),
            c("state", Text),
            n("failure", Text),
            c("manifest", Text),
            c("sha256", Text),
            c("module", Binary),
            n("signed_by", Text),
            c("granted_to_all", Bool),
            c("created_at", Timestamp),
            c("updated_at", Timestamp),
        ],
    },
    Table {
        name: "plugin_kv",
        key: &["plugin_id", "key"],
        generated_id: false,
        page: ROWS,
        columns: &[
            c("plugin_id", BigInt),
            c("key", Text),
            c("value", Binary),
            c("updated_at", Timestamp),
        ],
    },
    Table {
        name: "plugin_grants",
        key: &["plugin_id", "user_id"],
        generated_id: false,
        page: ROWS,
        columns: &[
            c("plugin_id", BigInt),
            c("user_id", BigInt),
            c("created_at", Timestamp),
        ],
    },
    Table {
        name: "models",
        key: &["id"],
        generated_id: true,
        page: ROWS,
        columns: &[
            c("id", BigInt),
            c("key", Text),
            c("name", Text),
            c("provider", Text),
            c("kind", Text),
            n("family", Text),
            n("path", Text),
            n("base_url", Text),
            n("api_key", Text),
            n("size_bytes", BigInt),
            n("version", Text),
            c("context_length", Int),
            c("cost_per_1k_input", Double),
            c("cost_per_1k_output", Double),
            c("max_concurrent", Int),
            c("enabled", Bool),
            c("created_at", Timestamp),
            c("updated_at", Timestamp),
            c("description", Text),
            n("remote_name", Text),
        ],
    },
    Table {
        name: "settings",
        key: &["key"],
        generated_id: false,
        page: ROWS,
        columns: &[c("key", Text), c("value", Text), c("updated_at", Timestamp)],
    },
    Table {
        name: "usage_daily",
        key: &["day", "user_id", "api_key_id", "model"],
        generated_id: false,
        page: ROWS,
        columns: &[
            c("day", Date),
            c("user_id", BigInt),
            c("api_key_id", BigInt),
            c("model", Text),
            c("requests", BigInt),
            c("prompt_tokens", BigInt),
            c("completion_tokens", BigInt),
        ],
    },
];

/// Tables a backup leaves out, and why: sessions (a restore signs everyone out: tokens
/// signed by another instance's secret mean nothing here), per-process operational state
/// (rate-limit buckets, monitoring samples) and the migration bookkeeping.
pub const LEFT_OUT: &[&str] = &[
    "sessions",
    "rate_limit_buckets",
    "monitoring_samples",
    "__diesel_schema_migrations",
];

/// Tables the database derives from the rows and keeps itself (SQLite's full-text index of
/// chunks and its shadow tables, filled by triggers); PostgreSQL's equivalent is a generated
/// column. A restore rebuilds them by inserting the rows.
pub const DERIVED: &[&str] = &["chunks_fts"];

/// A table by name.
pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

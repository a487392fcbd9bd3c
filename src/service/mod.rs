//! Transport-agnostic use cases. GraphQL resolvers and REST handlers both call these, so
//! validation, ownership and permission rules live here once.

pub mod agent_tools;
pub mod agents;
pub mod api_keys;
pub mod auth;
pub mod backup;
pub mod chats;
pub mod completions;
pub mod documents;
pub mod embeddings;
pub mod health;
pub mod hooks;
pub mod jobs;
pub mod memory;
pub mod models;
pub mod monitoring;
pub mod pagination;
pub mod plugins;
pub mod projects;
pub mod rate_limits;
pub mod replay;
pub mod stats;
pub mod streams;
pub mod turn_stream;
pub mod turns;
pub mod usage;
pub mod users;
pub mod validate;

/// Current time as stored in the database (naive UTC, microsecond precision so both
/// backends round-trip the same value).
pub fn now() -> chrono::NaiveDateTime {
    use chrono::{SubsecRound, Utc};
    Utc::now().naive_utc().trunc_subsecs(6)
}

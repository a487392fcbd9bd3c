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
//! - [`events`]: the in-process event bus behind subscriptions.

pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod service;
pub mod state;

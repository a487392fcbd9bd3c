//! The integration suite: one binary, real servers on 127.0.0.1:0, every test on SQLite and
//! on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod browser;
mod mock_llm;
mod support;

mod auth_flows;
mod backup;
mod chat_turns;
mod cli;
mod concurrency;
mod corpus;
mod cross_process;
mod documents;
mod embeddings;
mod fixtures;
mod foyer_socket;
mod graphql_api;
mod graphql_limits;
mod grounded;
mod hardening;
mod jobs;
mod nexus_ws;
mod openapi;
mod operations;
mod ownership;
mod plugins;
mod rate_limits;
mod response_cache;
mod rest_llm;
mod rest_resources;
mod resumable_streams;
mod retrieval;
mod schema_sdl;
mod socket_identity;
mod token_security;
mod usage;
mod web_ui;

//! The GraphQL API: one schema merged from per-domain roots, built by [`build_schema`] for
//! the server, the tests and `hearth schema` alike.

pub mod agents;
pub mod auth;
pub mod chats;
pub mod documents;
pub mod guard;
pub mod jobs;
pub mod loaders;
pub mod metrics;
pub mod models;
pub mod plugins;
pub mod rate_limits;
pub mod socket;
pub mod subscription;
pub mod transport;
pub mod turns;
pub mod types;
pub mod usage;
pub mod users;

use crate::auth::Caller;
use crate::config::GraphqlConfig;
use crate::error::{AppError, ErrorCode};
use crate::state::AppState;
use async_graphql::{Context, MaybeUndefined, MergedObject, Schema, ServerError, ID};
use chrono::{DateTime, NaiveDateTime, Utc};
use std::sync::Arc;

/// Query root: one part per domain.
#[derive(MergedObject, Default)]
pub struct QueryRoot(
    users::UserQuery,
    auth::AuthQuery,
    agents::AgentQuery,
    chats::ChatQuery,
    models::ModelQuery,
    jobs::JobQuery,
    documents::DocumentQuery,
    plugins::PluginQuery,
    usage::UsageQuery,
    rate_limits::RateLimitQuery,
);

/// Mutation root: one part per domain.
#[derive(MergedObject, Default)]
pub struct MutationRoot(
    auth::AuthMutation,
    users::UserMutation,
    agents::AgentMutation,
    chats::ChatMutation,
    models::ModelMutation,
    turns::TurnMutation,
    jobs::JobMutation,
    documents::DocumentMutation,
    plugins::PluginMutation,
    rate_limits::RateLimitMutation,
);

/// Subscription root: one part per domain.
#[derive(async_graphql::MergedSubscription, Default)]
pub struct SubscriptionRoot(
    subscription::ChatSubscription,
    jobs::JobSubscription,
    documents::DocumentSubscription,
    plugins::PluginSubscription,
);

/// The schema type.
pub type HearthSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Builds the schema with depth, complexity and directive limits and suggestions off (none of
/// which async-graphql sets by default). `state` is `None`
/// only for printing the SDL.
pub fn build_schema(state: Option<AppState>, limits: &GraphqlConfig) -> HearthSchema {
    let mut builder = Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot::default(),
    )
    .limit_depth(limits.max_depth)
    .limit_complexity(limits.max_complexity)
    .limit_recursive_depth(64)
    .limit_directives(16)
    .disable_suggestions();
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    if let Some(state) = state {
        builder = builder.data(state);
    }
    builder.finish()
}

/// The SDL as committed in `schema.graphql`.
pub fn sdl() -> String {
    build_schema(None, &GraphqlConfig::default()).sdl()
}

/// Marks an answer that depends on runtime state rather than stored data (model status,
/// running and waiting counts): the HTTP transport never caches such an answer, since no
/// database write tells when it changes.
#[derive(Clone, Default)]
pub struct Volatile(Arc<std::sync::atomic::AtomicBool>);

impl Volatile {
    /// Called by a resolver that reads runtime state.
    pub fn mark(ctx: &Context<'_>) {
        if let Some(v) = ctx.data_opt::<Volatile>() {
            v.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Whether some resolver of the request read runtime state.
    pub fn is_marked(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The caller, or an `unauthenticated` error.
pub fn require_caller<'a>(ctx: &'a Context<'_>) -> async_graphql::Result<&'a Caller> {
    ctx.data_opt::<Caller>()
        .ok_or_else(|| AppError::unauthenticated().into())
}

/// The caller if the request is authenticated.
pub fn caller_opt<'a>(ctx: &'a Context<'_>) -> Option<&'a Caller> {
    ctx.data_opt::<Caller>()
}

/// Parses a numeric object id; anything else cannot name an object.
pub fn parse_id(id: &ID) -> async_graphql::Result<i64> {
    id.parse::<i64>()
        .map_err(|_| AppError::not_found("object").into())
}

/// Maps GraphQL's tri-state input onto the services' `Option<Option<_>>`.
pub fn maybe<T>(v: MaybeUndefined<T>) -> Option<Option<T>> {
    match v {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v)),
    }
}

/// Stored naive UTC → `DateTime<Utc>`.
pub fn to_utc(t: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(t, Utc)
}

/// Gives every error a stable `extensions.code`: the service's code when the error came from
/// an [`AppError`], else a code for GraphQL's own parse/validation/limit failures.
pub fn annotate_error(err: &mut ServerError) {
    let app = err
        .source::<AppError>()
        .cloned()
        .or_else(|| err.source::<Arc<AppError>>().map(|a| (**a).clone()));
    if app.is_none() {
        err.message = excerpt(&err.message);
    }
    let code = match &app {
        Some(a) => {
            err.message = a.message.clone();
            a.code
        }
        None if err.message.contains("too complex") || err.message.contains("nested too deep") => {
            ErrorCode::QueryTooComplex
        }
        None if err.locations.is_empty() && err.path.is_empty() => ErrorCode::BadRequest,
        None => ErrorCode::ValidationError,
    };
    let ext = err.extensions.get_or_insert_with(Default::default);
    ext.set("code", code.as_str());
    if let Some(details) = app.and_then(|a| a.details) {
        if let Ok(v) = async_graphql::Value::from_json(details) {
            ext.set("details", v);
        }
    }
}

/// GraphQL's own messages quote the offending source line (a parse error in a 600 KB
/// one-line query would echo all of it): keep a few dozen characters of each line.
fn excerpt(message: &str) -> String {
    const LINE: usize = 60;
    const LINES: usize = 8;
    let mut out = String::new();
    for (i, line) in message.lines().enumerate() {
        if i == LINES {
            out.push_str("\n…");
            break;
        }
        if i > 0 {
            out.push('\n');
        }
        let mut chars = line.chars();
        out.extend(chars.by_ref().take(LINE));
        if chars.next().is_some() {
            out.push('…');
        }
    }
    out
}

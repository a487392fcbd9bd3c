//! Model usage over GraphQL: tokens per day, user, API key and model.

use super::{parse_id, require_caller};
use crate::service::usage::{self, GroupBy, UsageRow};
use crate::state::AppState;
use async_graphql::{Context, Enum, Object, Result, SimpleObject, ID};
use chrono::NaiveDate;

/// What usage rows are grouped by.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum UsageGroup {
    /// The UTC day.
    Day,
    /// The user.
    User,
    /// The API key (sessions together).
    ApiKey,
    /// The model.
    Model,
}

impl From<UsageGroup> for GroupBy {
    fn from(g: UsageGroup) -> Self {
        match g {
            UsageGroup::Day => GroupBy::Day,
            UsageGroup::User => GroupBy::User,
            UsageGroup::ApiKey => GroupBy::ApiKey,
            UsageGroup::Model => GroupBy::Model,
        }
    }
}

/// Model calls and their tokens for one group; the keys not grouped by are null.
#[derive(SimpleObject)]
#[graphql(name = "UsageRow")]
pub struct UsageRowObject {
    /// The UTC day.
    day: Option<NaiveDate>,
    /// The user.
    user_id: Option<ID>,
    /// The API key; null for sessions (or when not grouped by key).
    api_key_id: Option<ID>,
    /// Whether these calls came through an API key (null when not grouped by key).
    via_api_key: Option<bool>,
    /// The model key.
    model: Option<String>,
    /// Model calls (chat turns count one per tool round).
    requests: i64,
    /// Prompt tokens.
    prompt_tokens: i64,
    /// Completion tokens.
    completion_tokens: i64,
    /// Both.
    total_tokens: i64,
}

impl From<UsageRow> for UsageRowObject {
    fn from(r: UsageRow) -> Self {
        Self {
            day: r.day,
            user_id: r.user_id.map(|u| ID(u.to_string())),
            api_key_id: r.api_key_id.filter(|k| *k > 0).map(|k| ID(k.to_string())),
            via_api_key: r.api_key_id.map(|k| k > 0),
            model: r.model,
            requests: r.requests,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            total_tokens: r.prompt_tokens + r.completion_tokens,
        }
    }
}

/// Usage queries.
#[derive(Default)]
pub struct UsageQuery;

#[Object]
impl UsageQuery {
    /// Model usage from `from` to `to` (UTC days, inclusive, at most 366), grouped by
    /// `groupBy` (default: by day). Users see their own; admins everyone's, or `userId`'s.
    async fn usage(
        &self,
        ctx: &Context<'_>,
        from: NaiveDate,
        to: NaiveDate,
        #[graphql(default_with = "vec![UsageGroup::Day]")] group_by: Vec<UsageGroup>,
        user_id: Option<ID>,
    ) -> Result<Vec<UsageRowObject>> {
        let caller = require_caller(ctx)?;
        let state = ctx.data::<AppState>()?;
        let user = user_id.as_ref().map(parse_id).transpose()?;
        let groups: Vec<GroupBy> = group_by.into_iter().map(Into::into).collect();
        let rows = usage::report(state, caller, from, to, &groups, user).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

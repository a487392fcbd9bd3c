//! GraphQL object types. Each wraps a database row; relations resolve through the
//! request's DataLoaders so a list of N objects costs one query per relation, not N.

use super::loaders::{AgentLoader, MessageCountLoader, MessagesKey, MessagesLoader, UserLoader};
use super::{caller_opt, require_caller, to_utc};
use crate::db::models::{Agent, ApiKey, Chat, Message, Session, User};
use crate::error::AppError;
use crate::service::{self, pagination};
use crate::state::AppState;
use async_graphql::dataloader::DataLoader;
use async_graphql::{ComplexObject, Context, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};

/// Largest `first`/`last` accepted on nested lists.
pub const MAX_NESTED: i32 = 100;

fn clamp_count(field: &str, v: Option<i32>, default: i32) -> Result<i64> {
    let v = v.unwrap_or(default);
    if !(1..=MAX_NESTED).contains(&v) {
        return Err(AppError::validation(
            field,
            format!("{field} must be between 1 and {MAX_NESTED}"),
        )
        .into());
    }
    Ok(v as i64)
}

/// A user account.
pub struct UserObject(pub User);

#[Object(name = "User")]
impl UserObject {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Visible to the user themself and admins only.
    async fn email(&self, ctx: &Context<'_>) -> Option<String> {
        let c = caller_opt(ctx)?;
        (c.user_id() == self.0.id || c.is_admin()).then(|| self.0.email.clone())
    }
    async fn username(&self) -> &str {
        &self.0.username
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// `admin` or `user`.
    async fn role(&self) -> &str {
        self.0.role.as_str()
    }
    async fn is_active(&self) -> bool {
        self.0.is_active
    }
    async fn avatar_url(&self) -> Option<&str> {
        self.0.avatar_url.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        to_utc(self.0.created_at)
    }
    /// This user's chats, newest first (only readable by the user themself). `after` is a
    /// cursor from `Chat.cursor`; `search` matches titles and message text.
    async fn chats(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        search: Option<String>,
    ) -> Result<Vec<ChatObject>> {
        let page = chat_page(ctx, self.0.id, first, after, search).await?;
        Ok(page.0)
    }
    /// The same list as a Relay connection, with `pageInfo`.
    async fn chat_connection(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        search: Option<String>,
    ) -> Result<ChatConnection> {
        let (chats, has_next) = chat_page(ctx, self.0.id, first, after, search).await?;
        Ok(ChatConnection::new(chats, has_next))
    }
}

/// Loads one keyset page of a user's chats; refuses anyone but the user themself.
pub async fn chat_page(
    ctx: &Context<'_>,
    user_id: i64,
    first: Option<i32>,
    after: Option<String>,
    search: Option<String>,
) -> Result<(Vec<ChatObject>, bool)> {
    let caller = require_caller(ctx)?;
    if caller.user_id() != user_id {
        return Err(AppError::not_found("chats").into());
    }
    let limit = clamp_count("first", first, 20)?;
    let after = after.as_deref().map(pagination::decode).transpose()?;
    let state = ctx.data::<AppState>()?;
    let mut rows =
        service::chats::list_after(&state.db, user_id, limit, after, search.as_deref()).await?;
    let has_next = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok((rows.into_iter().map(ChatObject).collect(), has_next))
}

/// Relay-style page of chats.
#[derive(SimpleObject)]
#[graphql(name = "ChatConnection")]
pub struct ChatConnection {
    /// Edges with cursors.
    pub edges: Vec<ChatEdge>,
    /// Whether more pages exist and where to continue.
    pub page_info: PageInfo,
}

impl ChatConnection {
    /// Builds a connection from one page.
    pub fn new(chats: Vec<ChatObject>, has_next: bool) -> Self {
        let end_cursor = chats.last().map(|c| pagination::encode(c.0.id));
        let edges = chats
            .into_iter()
            .map(|c| ChatEdge {
                cursor: pagination::encode(c.0.id),
                node: c,
            })
            .collect();
        Self {
            edges,
            page_info: PageInfo {
                has_next_page: has_next,
                end_cursor,
            },
        }
    }
}

/// One edge of a [`ChatConnection`].
#[derive(SimpleObject)]
pub struct ChatEdge {
    /// Pass as `after` to continue after this chat.
    pub cursor: String,
    /// The chat.
    pub node: ChatObject,
}

/// Relay page info.
#[derive(SimpleObject)]
pub struct PageInfo {
    /// More items follow.
    pub has_next_page: bool,
    /// Cursor of the last item of this page.
    pub end_cursor: Option<String>,
}

/// An assistant persona.
pub struct AgentObject(pub Agent);

#[Object(name = "Agent")]
impl AgentObject {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// URL name, unique per owner (REST `agent_type`).
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn description(&self) -> &str {
        &self.0.description
    }
    async fn system_prompt(&self) -> &str {
        &self.0.system_prompt
    }
    /// Model key; null means the server default.
    async fn model(&self) -> Option<&str> {
        self.0.model.as_deref()
    }
    async fn temperature(&self) -> f64 {
        self.0.temperature
    }
    async fn max_tokens(&self) -> Option<i32> {
        self.0.max_tokens
    }
    async fn avatar_url(&self) -> Option<&str> {
        self.0.avatar_url.as_deref()
    }
    async fn learn_from_interaction(&self) -> bool {
        self.0.learn_from_interaction
    }
    async fn is_public(&self) -> bool {
        self.0.is_public
    }
    async fn capabilities(&self) -> Vec<String> {
        self.0.capabilities.0.clone()
    }
    /// Plugin tools it may call in its turns (those not running now are skipped).
    async fn tools(&self) -> Vec<String> {
        self.0.tools.0.clone()
    }
    async fn owner(&self, ctx: &Context<'_>) -> Result<Option<UserObject>> {
        let loader = ctx.data::<DataLoader<UserLoader>>()?;
        Ok(loader.load_one(self.0.owner_id).await?.map(UserObject))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        to_utc(self.0.created_at)
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        to_utc(self.0.updated_at)
    }
}

/// A conversation.
pub struct ChatObject(pub Chat);

#[Object(name = "Chat")]
impl ChatObject {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Opaque cursor for `chats(after:)`.
    async fn cursor(&self) -> String {
        pagination::encode(self.0.id)
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    /// Model override for agent-less chats.
    async fn model(&self) -> Option<&str> {
        self.0.model.as_deref()
    }
    /// The agent, if it still exists and is visible to the caller.
    async fn agent(&self, ctx: &Context<'_>) -> Result<Option<AgentObject>> {
        let Some(id) = self.0.agent_id else {
            return Ok(None);
        };
        let loader = ctx.data::<DataLoader<AgentLoader>>()?;
        let agent = loader.load_one(id).await?;
        Ok(agent
            .filter(|a| service::agents::visible(a, caller_opt(ctx)))
            .map(AgentObject))
    }
    /// The newest `last` (default) or the oldest `first` messages, in chronological order.
    async fn messages(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Vec<MessageObject>> {
        let key = match (first, last) {
            (Some(_), Some(_)) => {
                return Err(AppError::validation("first", "pass first or last, not both").into())
            }
            (Some(f), None) => MessagesKey {
                chat_id: self.0.id,
                n: clamp_count("first", Some(f), 50)?,
                newest: false,
            },
            (None, l) => MessagesKey {
                chat_id: self.0.id,
                n: clamp_count("last", l, 50)?,
                newest: true,
            },
        };
        let loader = ctx.data::<DataLoader<MessagesLoader>>()?;
        Ok(loader
            .load_one(key)
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(MessageObject)
            .collect())
    }
    async fn message_count(&self, ctx: &Context<'_>) -> Result<i64> {
        let loader = ctx.data::<DataLoader<MessageCountLoader>>()?;
        Ok(loader.load_one(self.0.id).await?.unwrap_or(0))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        to_utc(self.0.created_at)
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        to_utc(self.0.updated_at)
    }
    async fn last_message_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_message_at.map(to_utc)
    }
}

/// One message of a chat.
pub struct MessageObject(pub Message);

#[Object(name = "Message")]
impl MessageObject {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn chat_id(&self) -> ID {
        ID(self.0.chat_id.to_string())
    }
    /// `user`, `assistant`, `system` or `tool`.
    async fn role(&self) -> &str {
        self.0.role.as_str()
    }
    async fn content(&self) -> &str {
        &self.0.content
    }
    /// Model that wrote an assistant message.
    async fn model(&self) -> Option<&str> {
        self.0.model.as_deref()
    }
    /// `streaming`, `complete`, `cancelled` or `error`.
    async fn status(&self) -> &str {
        self.0.status.as_str()
    }
    async fn prompt_tokens(&self) -> Option<i32> {
        self.0.prompt_tokens
    }
    async fn completion_tokens(&self) -> Option<i32> {
        self.0.completion_tokens
    }
    async fn latency_ms(&self) -> Option<i64> {
        self.0.latency_ms
    }
    /// The passages this answer was given, numbered as it cites them (`[1]`); `cited` says
    /// whether the answer does.
    async fn sources(&self) -> Vec<super::documents::MessageSource> {
        self.0
            .sources
            .0
            .iter()
            .map(|s| super::documents::MessageSource::new(s, &self.0.content))
            .collect()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        to_utc(self.0.created_at)
    }
}

/// An API key as listed (never the secret).
pub struct ApiKeyObject(pub ApiKey);

#[Object(name = "ApiKey")]
impl ApiKeyObject {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// First characters of the secret, to recognise it.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }
    async fn permissions(&self) -> Vec<String> {
        service::api_keys::parse_permissions(&self.0.permissions)
            .iter()
            .map(|p| p.as_str().to_string())
            .collect()
    }
    async fn rate_limit(&self) -> Option<i32> {
        self.0.rate_limit
    }
    async fn created_at(&self) -> DateTime<Utc> {
        to_utc(self.0.created_at)
    }
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at.map(to_utc)
    }
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at.map(to_utc)
    }
    async fn revoked(&self) -> bool {
        self.0.revoked_at.is_some()
    }
}

/// A login session.
pub struct SessionObject {
    /// The row.
    pub session: Session,
    /// Whether it is the one making this request.
    pub current: bool,
}

#[Object(name = "Session")]
impl SessionObject {
    async fn id(&self) -> ID {
        ID(self.session.id.clone())
    }
    /// `api`, `cookie` or `graphql`.
    async fn client(&self) -> &str {
        &self.session.client
    }
    async fn user_agent(&self) -> Option<&str> {
        self.session.user_agent.as_deref()
    }
    async fn ip_address(&self) -> Option<&str> {
        self.session.ip_address.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        to_utc(self.session.created_at)
    }
    async fn last_activity(&self) -> DateTime<Utc> {
        to_utc(self.session.last_activity)
    }
    async fn expires_at(&self) -> DateTime<Utc> {
        to_utc(self.session.expires_at)
    }
    /// Not revoked and not expired.
    async fn active(&self) -> bool {
        service::auth::session_active(&self.session)
    }
    /// The session this request authenticated with.
    async fn current(&self) -> bool {
        self.current
    }
}

/// Tokens returned by login, register and refresh.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// JWT for `refreshToken` only; rotates on each use.
    pub refresh_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Access token lifetime in seconds.
    pub expires_in: i64,
    /// The session id.
    pub session_id: String,
    /// The user.
    pub user: UserObject,
}

/// A new API key with its secret, shown this once.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct CreatedApiKey {
    /// The secret: `sk-hearth-…`.
    pub secret: String,
    #[graphql(skip)]
    /// The stored key.
    pub key: ApiKey,
}

#[ComplexObject]
impl CreatedApiKey {
    async fn api_key(&self) -> ApiKeyObject {
        ApiKeyObject(self.key.clone())
    }
}

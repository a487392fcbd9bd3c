//! Chats and their messages. A chat belongs to one user and is invisible to everyone else.

use crate::auth::Caller;
use crate::db::enums::{MessageRole, MessageStatus};
use crate::db::json::JsonText;
use crate::db::models::{Chat, Message, NewChat, NewMessage};
use crate::db::schema::{chats, messages};
use crate::db::{locks, BackendSql, Db};
use crate::db_run;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::events::Event;
use crate::service::{agents, now, validate};
use crate::state::AppState;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use std::collections::HashMap;

diesel::define_sql_function!(
    /// SQL `lower()`, the same on both backends.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text
);

/// Title given to a chat created without one (the LLM issue retitles it after the first turn).
pub const DEFAULT_TITLE: &str = "New chat";

/// Fields of a new chat.
#[derive(Debug, Clone, Default)]
pub struct ChatInput {
    /// Agent to talk to (must be visible to the caller); none means the default model.
    pub agent_id: Option<i64>,
    /// Title; [`DEFAULT_TITLE`] when absent.
    pub title: Option<String>,
    /// Model override for agent-less chats.
    pub model: Option<String>,
}

/// A page of chats for offset-based REST lists.
pub struct ChatPage {
    /// Rows, newest first.
    pub chats: Vec<Chat>,
    /// Count of all matching chats.
    pub total: i64,
}

/// Creates a chat for the caller.
pub async fn create(state: &AppState, caller: &Caller, input: ChatInput) -> AppResult<Chat> {
    caller.require_write()?;
    let title = match input.title.as_deref() {
        Some(t) if !t.trim().is_empty() => {
            validate::required("title", t, validate::MAX_NAME_CHARS)?
        }
        _ => DEFAULT_TITLE.to_string(),
    };
    if let Some(m) = &input.model {
        validate::required("model", m, validate::MAX_NAME_CHARS)?;
    }
    if let Some(aid) = input.agent_id {
        agents::get(state, Some(caller), aid).await?;
    }
    let uid = caller.user_id();
    let ts = now();
    let db = &state.db;
    let cap = state.config.max_chats_per_user;
    let chat = db_run!(db, write, |conn| {
        conn.lock_key(locks::per_user(locks::CHATS, uid)).await?;
        let owned: i64 = chats::table
            .filter(chats::user_id.eq(uid))
            .count()
            .get_result(conn)
            .await?;
        if owned >= cap {
            return Err(AppError::new(
                ErrorCode::QuotaExceeded,
                format!("a user may keep at most {cap} chats; delete some first"),
            ));
        }
        diesel::insert_into(chats::table)
            .values(NewChat {
                user_id: uid,
                agent_id: input.agent_id,
                project_id: None,
                title: title.clone(),
                model: input.model.clone(),
                created_at: ts,
                updated_at: ts,
            })
            .returning(Chat::as_returning())
            .get_result(conn)
            .await
            .map_err(AppError::from)
    })?;
    state.events.publish(Event::ChatUpserted {
        user_id: uid,
        chat_id: chat.id,
    });
    Ok(chat)
}

/// Loads one of the caller's chats (404 for anyone else's).
pub async fn get(state: &AppState, caller: &Caller, id: i64) -> AppResult<Chat> {
    let uid = caller.user_id();
    let db = &state.db;
    let chat: Option<Chat> = db_run!(db, read, |conn| {
        chats::table
            .filter(chats::id.eq(id))
            .filter(chats::user_id.eq(uid))
            .select(Chat::as_select())
            .first(conn)
            .await
            .optional()
    })?;
    chat.ok_or_else(|| AppError::not_found("chat"))
}

/// Renames one of the caller's chats.
pub async fn rename(state: &AppState, caller: &Caller, id: i64, title: &str) -> AppResult<Chat> {
    caller.require_write()?;
    let title = validate::required("title", title, validate::MAX_NAME_CHARS)?;
    let uid = caller.user_id();
    let ts = now();
    let db = &state.db;
    let chat: Option<Chat> = db_run!(db, write, |conn| {
        diesel::update(
            chats::table
                .filter(chats::id.eq(id))
                .filter(chats::user_id.eq(uid)),
        )
        .set((chats::title.eq(&title), chats::updated_at.eq(ts)))
        .returning(Chat::as_returning())
        .get_result(conn)
        .await
        .optional()
    })?;
    let chat = chat.ok_or_else(|| AppError::not_found("chat"))?;
    state.events.publish(Event::ChatUpserted {
        user_id: uid,
        chat_id: id,
    });
    Ok(chat)
}

/// Deletes one of the caller's chats and its messages.
pub async fn delete(state: &AppState, caller: &Caller, id: i64) -> AppResult<()> {
    caller.require_write()?;
    let uid = caller.user_id();
    let db = &state.db;
    let n = db_run!(db, write, |conn| {
        diesel::delete(
            chats::table
                .filter(chats::id.eq(id))
                .filter(chats::user_id.eq(uid)),
        )
        .execute(conn)
        .await
        .map_err(AppError::from)
    })?;
    if n == 0 {
        return Err(AppError::not_found("chat"));
    }
    state.events.publish(Event::ChatDeleted {
        user_id: uid,
        chat_id: id,
    });
    Ok(())
}

/// Boxed filter: the user's chats, optionally matching `search` in the title or any message.
macro_rules! chat_filter {
    ($uid:expr, $pattern:expr) => {{
        let mut q = chats::table.filter(chats::user_id.eq($uid)).into_boxed();
        if let Some(p) = $pattern {
            q = q.filter(
                lower(chats::title)
                    .like(p.clone())
                    .escape('\\')
                    .or(diesel::dsl::exists(
                        messages::table
                            .filter(messages::chat_id.eq(chats::id))
                            .filter(lower(messages::content).like(p.clone()).escape('\\')),
                    )),
            );
        }
        q
    }};
}

fn search_pattern(search: Option<&str>) -> AppResult<Option<String>> {
    match search.map(str::trim) {
        Some(s) if !s.is_empty() => {
            validate::max_len("search", s, validate::MAX_SEARCH_CHARS)?;
            Ok(Some(validate::like_pattern(s)))
        }
        _ => Ok(None),
    }
}

/// Offset page of the caller's chats, newest first (REST lists).
pub async fn list(
    state: &AppState,
    caller: &Caller,
    limit: i64,
    offset: i64,
    search: Option<&str>,
) -> AppResult<ChatPage> {
    let pattern = search_pattern(search)?;
    let uid = caller.user_id();
    let db = &state.db;
    db_run!(db, read, |conn| {
        let total: i64 = chat_filter!(uid, &pattern).count().get_result(conn).await?;
        let chats = chat_filter!(uid, &pattern)
            .order(chats::id.desc())
            .limit(limit)
            .offset(offset)
            .select(Chat::as_select())
            .load(conn)
            .await?;
        Ok(ChatPage { chats, total })
    })
}

/// Keyset page of a user's chats, newest first, after the chat id `after` (GraphQL).
/// Returns one row more than `limit` when there is a next page.
pub(crate) async fn list_after(
    db: &Db,
    user_id: i64,
    limit: i64,
    after: Option<i64>,
    search: Option<&str>,
) -> AppResult<Vec<Chat>> {
    let pattern = search_pattern(search)?;
    crate::db_load!(db, Chat, {
        let mut q = chat_filter!(user_id, &pattern);
        if let Some(a) = after {
            q = q.filter(chats::id.lt(a));
        }
        q.order(chats::id.desc())
            .limit(limit + 1)
            .select(Chat::as_select())
    })
}

/// Messages of one of the caller's chats after message `after` (by id), oldest first, at
/// most `limit`.
pub async fn messages_after(
    state: &AppState,
    caller: &Caller,
    chat_id: i64,
    after: i64,
    limit: i64,
) -> AppResult<Vec<Message>> {
    get(state, caller, chat_id).await?;
    let db = &state.db;
    db_run!(db, read, |conn| {
        messages::table
            .filter(messages::chat_id.eq(chat_id))
            .filter(messages::id.gt(after))
            .order(messages::id.asc())
            .limit(limit)
            .select(Message::as_select())
            .load(conn)
            .await
            .map_err(AppError::from)
    })
}

/// The id of the newest message of one of the caller's chats (0: none yet).
pub async fn last_message_id(state: &AppState, caller: &Caller, chat_id: i64) -> AppResult<i64> {
    get(state, caller, chat_id).await?;
    let db = &state.db;
    let last: Option<i64> = db_run!(db, read, |conn| {
        messages::table
            .filter(messages::chat_id.eq(chat_id))
            .select(diesel::dsl::max(messages::id))
            .first(conn)
            .await
            .map_err(AppError::from)
    })?;
    Ok(last.unwrap_or(0))
}

/// Messages of one of the caller's chats, oldest first.
pub async fn messages(
    state: &AppState,
    caller: &Caller,
    chat_id: i64,
    limit: i64,
    offset: i64,
) -> AppResult<Vec<Message>> {
    get(state, caller, chat_id).await?;
    let db = &state.db;
    db_run!(db, read, |conn| {
        messages::table
            .filter(messages::chat_id.eq(chat_id))
            .order(messages::id.asc())
            .limit(limit)
            .offset(offset)
            .select(Message::as_select())
            .load(conn)
            .await
            .map_err(AppError::from)
    })
}

/// Message counts per chat (for list views).
pub(crate) async fn message_counts(db: &Db, chat_ids: &[i64]) -> AppResult<HashMap<i64, i64>> {
    let rows: Vec<(i64, i64)> = db_run!(db, read, |conn| {
        messages::table
            .filter(messages::chat_id.eq_any(chat_ids))
            .group_by(messages::chat_id)
            .select((messages::chat_id, diesel::dsl::count_star()))
            .load(conn)
            .await
            .map_err(AppError::from)
    })?;
    Ok(rows.into_iter().collect())
}

/// The newest (`newest`) or oldest `n` messages of each chat, oldest first within a chat —
/// one query for a whole batch of chats (DataLoader).
///
/// For each chat a correlated subquery finds the id of its n-th newest (or oldest) message
/// with one index seek on `(chat_id, id)`; the outer query then reads exactly the rows at or
/// past that bound. Nothing is sorted or ranked in SQL (a window function would copy every
/// message of every chat into a sorter), and both backends run the same text.
pub(crate) async fn window_messages(
    db: &Db,
    chat_ids: &[i64],
    n: i64,
    newest: bool,
) -> AppResult<HashMap<i64, Vec<Message>>> {
    if chat_ids.is_empty() || n < 1 {
        return Ok(HashMap::new());
    }
    // Ids and n are integers formatted here, so inlining them is injection-free and keeps one
    // SQL text for both backends (their bind placeholders differ).
    let ids = chat_ids
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let (order, cmp, missing) = if newest {
        ("DESC", ">=", "0")
    } else {
        ("ASC", "<=", "9223372036854775807")
    };
    let offset = n - 1;
    let sql = format!(
        "SELECT m.id, m.chat_id, m.role, m.content, m.model, m.status, m.prompt_tokens, \
         m.completion_tokens, m.latency_ms, m.tool_calls, m.files, m.sources, m.created_at \
         FROM (SELECT c.id AS cid, (SELECT m2.id FROM messages m2 WHERE m2.chat_id = c.id \
               ORDER BY m2.id {order} LIMIT 1 OFFSET {offset}) AS bound \
               FROM chats c WHERE c.id IN ({ids})) t \
         JOIN messages m ON m.chat_id = t.cid AND m.id {cmp} COALESCE(t.bound, {missing})"
    );
    let mut rows = crate::db_load!(db, Message, diesel::sql_query(sql.clone()))?;
    rows.sort_unstable_by_key(|m| (m.chat_id, m.id));
    let mut out: HashMap<i64, Vec<Message>> = HashMap::new();
    for m in rows {
        out.entry(m.chat_id).or_default().push(m);
    }
    Ok(out)
}

/// Appends a finished message to one of the caller's chats (imports, seeding); answers of
/// the model go through `turns` instead.
pub async fn append_message(
    state: &AppState,
    caller: &Caller,
    chat_id: i64,
    role: MessageRole,
    content: &str,
    model: Option<&str>,
) -> AppResult<Message> {
    caller.require_write()?;
    validate::max_len("content", content, 1_000_000)?;
    get(state, caller, chat_id).await?;
    let db = &state.db;
    let ts = now();
    db_run!(db, write, |conn| {
        let m: Message = diesel::insert_into(messages::table)
            .values(NewMessage {
                chat_id,
                role,
                content,
                model,
                status: MessageStatus::Complete,
                files: JsonText(Vec::new()),
                sources: JsonText(Vec::new()),
                created_at: ts,
            })
            .returning(Message::as_returning())
            .get_result(conn)
            .await?;
        diesel::update(chats::table.find(chat_id))
            .set((
                chats::last_message_at.eq(Some(ts)),
                chats::updated_at.eq(ts),
            ))
            .execute(conn)
            .await?;
        Ok(m)
    })
}

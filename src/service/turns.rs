//! Chat turns: store the user's message, stream the model's answer to every listener of the
//! chat, store the answer when the turn ends. The turn runs in its own task, so a client
//! that disconnects does not stop it; only [`cancel`] does, and then what was generated is
//! kept with status `cancelled`. A backend that is down fails before anything is stored.
//!
//! Writes per turn: one (user message + reserved assistant message) at the start and one
//! (answer, usage, title, memory) at the end — never one per token.

use crate::auth::Caller;
use crate::db::enums::{MessageRole, MessageStatus};
use crate::db::json::JsonText;
use crate::db::models::{Agent, Chat, Message, ModelRow, NewMemoryEntry, NewMessage};
use crate::db::schema::{chats, documents as documents_table, memory_entries, messages};
use crate::db_run;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::events::turns::{ChatListener, TurnEvent};
use crate::events::Event;
use crate::llm::{Chunk, ChunkStream, GenerateParams, PromptMessage, Usage};
use crate::rag::search::SourceRef;
use crate::service::agent_tools::{self, ToolUse};
use crate::service::documents;
use crate::service::{
    agents, chats as chat_service, completions, hooks, models, now, usage, validate,
};
use crate::state::AppState;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// Most documents attached to one message.
pub const MAX_FILES: usize = 20;
/// Messages of history considered before trimming to the window.
const HISTORY: i64 = 200;
/// Longest automatic title.
const TITLE_CHARS: usize = 60;

/// A message to send.
#[derive(Debug, Clone, Default)]
pub struct SendInput {
    /// Text (at most 4000 characters, seed 001).
    pub content: String,
    /// Ids of the caller's documents to attach.
    pub files: Vec<i64>,
    /// Model for this turn; the chat's, the agent's or `auto` when absent.
    pub model: Option<String>,
    /// Temperature override.
    pub temperature: Option<f64>,
    /// Token cap override.
    pub max_tokens: Option<i64>,
    /// How to retrieve the passages the answer is given (`ask`); `None`: from the chat's
    /// and its agent's documents with the defaults.
    pub retrieve: Option<documents::Retrieve>,
}

/// How a turn ended.
#[derive(Debug, Clone)]
pub struct TurnOutcome {
    /// The stored assistant message (status complete, cancelled or error).
    pub message: Arc<Message>,
    /// Token counts.
    pub usage: Usage,
    /// The failure, for status `error`.
    pub error: Option<AppError>,
}

/// A started turn.
pub struct TurnStart {
    /// The chat.
    pub chat: Chat,
    /// The stored user message.
    pub user_message: Message,
    /// The assistant message being written.
    pub message_id: i64,
    /// The model answering.
    pub model: ModelRow,
    /// The chat's events from before the turn started (nothing is missed).
    pub events: ChatListener,
    /// Resolves when the turn has ended and is stored.
    pub outcome: oneshot::Receiver<TurnOutcome>,
    /// The passages the answer was given (kept on its message).
    pub sources: Vec<SourceRef>,
}

impl TurnStart {
    /// Waits for the end of the turn (the turn itself does not depend on this wait).
    pub async fn finish(self) -> AppResult<TurnOutcome> {
        self.outcome
            .await
            .map_err(|_| AppError::internal("turn task ended without an outcome"))
    }
}

/// Checks that every attached id is one of the caller's documents.
async fn check_files(state: &AppState, caller: &Caller, files: &[i64]) -> AppResult<()> {
    if files.is_empty() {
        return Ok(());
    }
    if files.len() > MAX_FILES {
        return Err(AppError::validation(
            "files",
            format!("at most {MAX_FILES} files per message"),
        ));
    }
    let uid = caller.user_id();
    let ids = files.to_vec();
    let db = &state.db;
    let n: i64 = db_run!(db, read, |conn| documents_table::table
        .filter(documents_table::id.eq_any(&ids))
        .filter(documents_table::owner_id.eq(uid))
        .count()
        .get_result(conn)
        .await
        .map_err(AppError::from))?;
    let mut distinct = files.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if n as usize != distinct.len() {
        return Err(AppError::not_found("document"));
    }
    Ok(())
}

/// The prompt: the agent's system prompt, the chat's finished messages, the new message;
/// and whether the chat had no message before (its first exchange gets a title).
async fn build_prompt(
    state: &AppState,
    chat_id: i64,
    agent: Option<&Agent>,
    content: &str,
    sources: &[SourceRef],
) -> AppResult<(Vec<PromptMessage>, bool)> {
    let mut history = chat_service::window_messages(&state.db, &[chat_id], HISTORY, true).await?;
    let history = history.remove(&chat_id).unwrap_or_default();
    let first = history.is_empty();
    let mut msgs = Vec::new();
    if let Some(a) = agent.filter(|a| !a.system_prompt.trim().is_empty()) {
        msgs.push(PromptMessage::new("system", a.system_prompt.clone()));
    }
    if !sources.is_empty() {
        msgs.push(PromptMessage::new(
            "system",
            documents::sources_prompt(sources),
        ));
    }
    for m in history {
        let usable = matches!(m.status, MessageStatus::Complete | MessageStatus::Cancelled)
            && !m.content.is_empty();
        if usable && m.role != MessageRole::Tool {
            msgs.push(PromptMessage::new(m.role.as_str(), m.content));
        }
    }
    msgs.push(PromptMessage::new("user", content));
    Ok((msgs, first))
}

/// Stores the user message and starts the answer. Fails without storing anything when the
/// chat is not the caller's, a turn is already running in it, or the model is unavailable.
pub async fn send(
    state: &AppState,
    caller: &Caller,
    chat_id: i64,
    input: SendInput,
) -> AppResult<TurnStart> {
    caller.require_write()?;
    let content = validate::required("content", &input.content, validate::MAX_MESSAGE_CHARS)?;
    if let Some(m) = &input.model {
        validate::max_len("model", m, validate::MAX_NAME_CHARS)?;
    }
    let chat = chat_service::get(state, caller, chat_id).await?;
    check_room(state, chat_id).await?;
    check_files(state, caller, &input.files).await?;
    usage::check_quota(state, caller).await?;
    // Plugins' `message_before_send` may rewrite or refuse the message; nothing is stored yet.
    let content = hooks::before_send(state, caller, chat_id, content).await?;
    let agent = match chat.agent_id {
        Some(aid) => Some(agents::get(state, Some(caller), aid).await?),
        None => None,
    };
    let requested = input.model.clone().or_else(|| chat.model.clone());
    let model = models::resolve(
        state,
        requested.as_deref(),
        agent.as_ref().and_then(|a| a.model.as_deref()),
    )
    .await?;
    let params = completions::params(
        state,
        &model,
        agent.as_ref(),
        input.temperature,
        input.max_tokens,
    )?;

    let turn_id = uuid::Uuid::new_v4().to_string();
    let cancel = state.turns.begin(chat_id, &turn_id).ok_or_else(|| {
        AppError::new(
            ErrorCode::TurnInProgress,
            "this chat is already answering; wait for it or cancel it",
        )
    })?;
    // From here on the reservation must be released on every path.
    let started = async {
        let sources = documents::turn_sources(
            state,
            caller,
            &chat,
            agent.as_ref(),
            input.retrieve.as_ref(),
            &content,
        )
        .await;
        let (prompt, first) =
            build_prompt(state, chat_id, agent.as_ref(), &content, &sources).await?;
        let prompt = completions::fit(&model, prompt, params);
        let tools = agent_tools::offered(state, caller, agent.as_ref(), &model).await;
        let stream = state
            .llm
            .generate_with_tools(&model, prompt.clone(), params, &tools)
            .await?;
        let stream = usage::metered(state, caller, &model.key, stream);
        let (user_message, reserved) =
            store_start(state, chat_id, &content, &input.files, &model.key, &sources).await?;
        Ok::<_, AppError>((stream, user_message, reserved, first, prompt, tools))
    }
    .await;
    let (stream, user_message, reserved, first_exchange, prompt, tools) = match started {
        Ok(v) => v,
        Err(e) => {
            state.turns.end(chat_id, &turn_id);
            return Err(e);
        }
    };
    let events = state.turns.listen(chat_id);
    let (done_tx, done_rx) = oneshot::channel();
    let run = Run {
        state: state.clone(),
        user_id: caller.user_id(),
        chat: chat.clone(),
        agent,
        turn_id,
        message_id: reserved.id,
        user_content: content,
        first_exchange,
        model: model.clone(),
        cancel,
        caller: caller.clone(),
        prompt,
        params,
        tools,
    };
    let message_id = reserved.id;
    let sources = reserved.sources.0.clone();
    state
        .background
        .spawn(run.run(stream, user_message.id, done_tx));
    Ok(TurnStart {
        chat,
        user_message,
        message_id,
        model,
        events,
        outcome: done_rx,
        sources,
    })
}

/// Refuses a turn in a chat that holds `max_messages_per_chat` already (a turn adds two).
/// A read, not a lock: one chat runs one turn at a time, so it cannot overshoot by more.
async fn check_room(state: &AppState, chat_id: i64) -> AppResult<()> {
    let cap = state.config.max_messages_per_chat;
    let db = &state.db;
    let held: i64 = db_run!(db, read, |conn| messages::table
        .filter(messages::chat_id.eq(chat_id))
        .count()
        .get_result(conn)
        .await
        .map_err(AppError::from))?;
    if held + 2 > cap {
        return Err(AppError::new(
            ErrorCode::QuotaExceeded,
            format!("a chat holds at most {cap} messages; start a new chat"),
        ));
    }
    Ok(())
}

/// Creates a conversation and sends its first message, as every door that starts a chat
/// with a message does. The message is checked before the conversation exists, and a refused
/// first message (unknown model, backend down, busy) leaves no empty conversation behind.
pub async fn send_new(
    state: &AppState,
    caller: &Caller,
    chat: chat_service::ChatInput,
    input: SendInput,
) -> AppResult<TurnStart> {
    caller.require_write()?;
    validate::required("content", &input.content, validate::MAX_MESSAGE_CHARS)?;
    let chat_id = chat_service::create(state, caller, chat).await?.id;
    let started = send(state, caller, chat_id, input).await;
    if started.is_err() {
        if let Err(e) = chat_service::delete(state, caller, chat_id).await {
            tracing::warn!(error = %e, chat_id, "could not remove the conversation of a refused first message");
        }
    }
    started
}

/// One write: the user message and the reserved (`streaming`) assistant message.
async fn store_start(
    state: &AppState,
    chat_id: i64,
    content: &str,
    files: &[i64],
    model: &str,
    sources: &[SourceRef],
) -> AppResult<(Message, Message)> {
    let ts = now();
    let db = &state.db;
    db_run!(db, write, |conn| {
        {
            let user: Message = diesel::insert_into(messages::table)
                .values(NewMessage {
                    chat_id,
                    role: MessageRole::User,
                    content,
                    model: None,
                    status: MessageStatus::Complete,
                    files: JsonText(files.to_vec()),
                    sources: JsonText(Vec::new()),
                    created_at: ts,
                })
                .returning(Message::as_returning())
                .get_result(conn)
                .await?;
            let reserved: Message = diesel::insert_into(messages::table)
                .values(NewMessage {
                    chat_id,
                    role: MessageRole::Assistant,
                    content: "",
                    model: Some(model),
                    status: MessageStatus::Streaming,
                    files: JsonText(Vec::new()),
                    sources: JsonText(sources.to_vec()),
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
            Ok::<_, AppError>((user, reserved))
        }
    })
}

/// Everything the turn task needs.
struct Run {
    state: AppState,
    user_id: i64,
    chat: Chat,
    agent: Option<Agent>,
    turn_id: String,
    message_id: i64,
    user_content: String,
    first_exchange: bool,
    model: ModelRow,
    cancel: CancellationToken,
    /// Who sent the message: tools run as them.
    caller: Caller,
    /// The prompt as sent (tool rounds extend it).
    prompt: Vec<PromptMessage>,
    /// Sampling settings, for the generations after tool calls.
    params: GenerateParams,
    /// Tools offered to the model (OpenAI format); empty for most turns.
    tools: Vec<serde_json::Value>,
}

/// The checkpoints of one running answer: its text written to its message every
/// `llm.checkpoint_ms`, so a crash keeps what users already saw (never per token: one write
/// per interval at most, skipped while the previous one is still running or nothing changed).
struct Checkpoint {
    chat_id: i64,
    message_id: i64,
    tick: tokio::time::Interval,
    saved: usize,
    writing: Option<tokio::task::JoinHandle<()>>,
    off: bool,
}

impl Checkpoint {
    fn new(chat_id: i64, message_id: i64, every_ms: u64) -> Self {
        // Off: a first tick far away (and `due` never holds).
        let every =
            std::time::Duration::from_millis(if every_ms == 0 { 86_400_000 } else { every_ms });
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Checkpoint {
            chat_id,
            message_id,
            tick,
            saved: 0,
            writing: None,
            off: every_ms == 0,
        }
    }

    /// Whether there is new text and no write in flight.
    fn due(&self, text: &str) -> bool {
        !self.off
            && text.len() != self.saved
            && self.writing.as_ref().is_none_or(|w| w.is_finished())
    }

    /// Writes the text so far, in the background. Only a message still `streaming` is
    /// touched, so a late checkpoint never overwrites the stored answer.
    fn save(&mut self, state: &AppState, text: &str) {
        self.saved = text.len();
        let (state, id, text) = (state.clone(), self.message_id, text.to_string());
        let chat_id = self.chat_id;
        self.writing = Some(tokio::spawn(async move {
            let db = &state.db;
            let written: AppResult<usize> = async {
                db_run!(db, write, |conn| diesel::update(
                    messages::table
                        .filter(messages::id.eq(id))
                        .filter(messages::status.eq(MessageStatus::Streaming))
                )
                .set(messages::content.eq(&text))
                .execute(conn)
                .await
                .map_err(AppError::from))
            }
            .await;
            match written {
                Ok(1) => progress(&state, chat_id, id, false),
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e.message, message_id = id, "answer checkpoint failed")
                }
            }
        }));
    }
}

impl Checkpoint {
    /// Before a tool round on PostgreSQL: stores the text so far and waits for it, so that
    /// other processes relay it before the round's steps (which reach them at once).
    async fn save_before_steps(&mut self, state: &AppState, text: &str) {
        if self.off || state.db.backend() != crate::db::Backend::Postgres {
            return;
        }
        // A write in flight lands first, so the newer text is the one that stays.
        if let Some(w) = self.writing.take() {
            let _ = w.await;
        }
        if text.len() != self.saved {
            self.save(state, text);
            if let Some(w) = self.writing.take() {
                let _ = w.await;
            }
        }
    }
}

/// Tells the other processes that an answer moved on or ended (they relay it to their
/// listeners of the chat); nothing to tell on SQLite, where this is the only process.
fn progress(state: &AppState, chat_id: i64, message_id: i64, done: bool) {
    if state.db.backend() == crate::db::Backend::Postgres {
        state.events.publish(Event::AnswerProgress {
            origin: state.turns.origin,
            chat_id,
            message_id,
            done,
        });
    }
}

/// How one generation of a turn ended.
enum Generation {
    /// The model finished; it may have asked for tool calls.
    Done(Vec<crate::llm::ToolCall>),
    /// The turn ends here (cancelled, or the model failed).
    End(MessageStatus, Option<AppError>),
}

impl Run {
    async fn run(
        self,
        mut stream: ChunkStream,
        user_message_id: i64,
        done: oneshot::Sender<TurnOutcome>,
    ) {
        let started = Instant::now();
        let channel = self.state.turns.channel(self.chat.id);
        let (chat_id, message_id) = (self.chat.id, self.message_id);
        channel.send(TurnEvent::Started {
            chat_id,
            user_message_id,
            message_id,
            model: self.model.key.clone(),
        });
        let mut text = String::new();
        let mut usage = Usage::default();
        let mut pieces = 0u32;
        let mut used: Vec<ToolUse> = Vec::new();
        let mut prompt = self.prompt.clone();
        let mut rounds = 0usize;
        let mut checkpoint =
            Checkpoint::new(chat_id, message_id, self.state.config.llm.checkpoint_ms);
        let (status, error) = loop {
            let mut said = String::new();
            let generation = loop {
                tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => break Generation::End(MessageStatus::Cancelled, None),
                    // The process is stopping: keep what was generated, as a cancel would.
                    _ = self.state.background.stopping().cancelled() => break Generation::End(MessageStatus::Cancelled, None),
                    _ = checkpoint.tick.tick(), if checkpoint.due(&text) => checkpoint.save(&self.state, &text),
                    item = stream.next() => match item {
                        Some(Ok(Chunk::Token(t))) => {
                            pieces += 1;
                            text.push_str(&t);
                            said.push_str(&t);
                            channel.send(TurnEvent::Token { chat_id, message_id, delta: Arc::from(t) });
                        }
                        Some(Ok(Chunk::Done { usage: u, tool_calls, .. })) => {
                            usage.prompt_tokens = usage.prompt_tokens.saturating_add(u.prompt_tokens);
                            usage.completion_tokens = usage.completion_tokens.saturating_add(u.completion_tokens);
                            break Generation::Done(tool_calls);
                        }
                        Some(Err(e)) => break Generation::End(MessageStatus::Error, Some(e)),
                        None => break Generation::End(MessageStatus::Error, Some(AppError::new(ErrorCode::LlmUnavailable, "the model stopped without finishing"))),
                    },
                }
            };
            let calls = match generation {
                Generation::End(status, error) => break (status, error),
                Generation::Done(calls) if calls.is_empty() || self.tools.is_empty() => {
                    break (MessageStatus::Complete, None)
                }
                Generation::Done(calls) => calls,
            };
            // The model's slot is free while the tools run.
            stream = Box::pin(futures_util::stream::empty());
            rounds += 1;
            checkpoint.save_before_steps(&self.state, &text).await;
            let round = agent_tools::run_round(
                &self.state,
                &self.caller,
                &channel,
                chat_id,
                message_id,
                &said,
                &calls,
                &mut used,
            );
            let messages = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break (MessageStatus::Cancelled, None),
                m = round => m,
            };
            prompt.extend(messages);
            // After the last allowed round the model must answer without tools.
            let offered: &[serde_json::Value] =
                if rounds >= self.state.config.plugins.max_tool_steps {
                    &[]
                } else {
                    &self.tools
                };
            stream = match self
                .state
                .llm
                .generate_with_tools(&self.model, prompt.clone(), self.params, offered)
                .await
            {
                Ok(s) => usage::metered(&self.state, &self.caller, &self.model.key, s),
                Err(e) => break (MessageStatus::Error, Some(e)),
            };
        };
        // Stops a local decode thread and releases the model's slot now.
        drop(stream);
        if status != MessageStatus::Complete {
            usage.completion_tokens = pieces;
        }
        let latency = started.elapsed().as_millis() as i64;
        let stored = self.store_end(&text, status, usage, latency, &used).await;
        self.state.turns.end(chat_id, &self.turn_id);
        let message = match stored {
            Ok(m) => Arc::new(m),
            Err(e) => {
                channel.send(TurnEvent::Error {
                    chat_id,
                    message_id: Some(message_id),
                    code: e.code,
                    message: e.message.clone(),
                });
                return;
            }
        };
        if status == MessageStatus::Complete {
            hooks::after_receive(&self.state, &self.caller, &self.user_content, &message);
        }
        match &error {
            Some(e) => channel.send(TurnEvent::Error {
                chat_id,
                message_id: Some(message_id),
                code: e.code,
                message: e.message.clone(),
            }),
            None => channel.send(TurnEvent::Response {
                chat_id,
                message: message.clone(),
                usage,
            }),
        }
        progress(&self.state, chat_id, message_id, true);
        self.state.events.publish(Event::ChatUpserted {
            user_id: self.user_id,
            chat_id,
        });
        let _ = done.send(TurnOutcome {
            message,
            usage,
            error,
        });
    }

    /// One write: the answer, its usage, the automatic title and the agent's memory.
    async fn store_end(
        &self,
        text: &str,
        status: MessageStatus,
        usage: Usage,
        latency: i64,
        used: &[ToolUse],
    ) -> AppResult<Message> {
        let tool_calls = (!used.is_empty())
            .then(|| serde_json::to_string(used).ok())
            .flatten();
        let (chat_id, message_id, ts) = (self.chat.id, self.message_id, now());
        let title = (self.first_exchange
            && self.chat.title == chat_service::DEFAULT_TITLE
            && status == MessageStatus::Complete)
            .then(|| auto_title(&self.user_content));
        let memory = self
            .agent
            .as_ref()
            .filter(|a| a.learn_from_interaction && status == MessageStatus::Complete)
            .map(|a| NewMemoryEntry {
                user_id: self.user_id,
                agent_id: Some(a.id),
                content: format!("User: {}\nAssistant: {}", self.user_content, text),
                metadata: serde_json::json!({ "chat_id": chat_id, "message_id": message_id, "source": "interaction" }).to_string(),
                embedding: None,
                created_at: ts,
            });
        let text = text.to_string();
        let db = &self.state.db;
        let stored = db_run!(db, write, |conn| {
            {
                let m: Message = diesel::update(messages::table.find(message_id))
                    .set((
                        messages::content.eq(&text),
                        messages::status.eq(status),
                        messages::prompt_tokens.eq(Some(Usage::stored(usage.prompt_tokens))),
                        messages::completion_tokens
                            .eq(Some(Usage::stored(usage.completion_tokens))),
                        messages::latency_ms.eq(Some(latency)),
                        messages::tool_calls.eq(&tool_calls),
                    ))
                    .returning(Message::as_returning())
                    .get_result(conn)
                    .await?;
                diesel::update(chats::table.find(chat_id))
                    .set((
                        chats::updated_at.eq(ts),
                        chats::last_message_at.eq(Some(ts)),
                    ))
                    .execute(conn)
                    .await?;
                if let Some(t) = &title {
                    diesel::update(
                        chats::table
                            .find(chat_id)
                            .filter(chats::title.eq(chat_service::DEFAULT_TITLE)),
                    )
                    .set(chats::title.eq(t))
                    .execute(conn)
                    .await?;
                }
                if let Some(mem) = &memory {
                    diesel::insert_into(memory_entries::table)
                        .values(mem)
                        .execute(conn)
                        .await?;
                }
                Ok::<_, AppError>(m)
            }
        });
        // The exchange the turn just stored becomes searchable memory (its own write and
        // ingestion; the answer does not wait for it).
        if let (Ok(_), Some(mem)) = (&stored, memory) {
            let state = self.state.clone();
            let metadata = serde_json::from_str(&mem.metadata).unwrap_or_default();
            self.state.background.spawn(async move {
                crate::service::memory::learn(&state, mem.user_id, mem.content, metadata).await;
            });
        }
        stored
    }
}

/// A title from the first message: its first line, cut at a word boundary.
pub fn auto_title(content: &str) -> String {
    let line = content
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if line.chars().count() <= TITLE_CHARS {
        return line.to_string();
    }
    let cut: String = line.chars().take(TITLE_CHARS).collect();
    let cut = match cut.rfind(' ') {
        Some(i) if i > TITLE_CHARS / 2 => &cut[..i],
        _ => &cut,
    };
    format!("{}…", cut.trim_end())
}

/// Asks the chat's running turn to stop, in whichever process runs it. Returns whether a
/// turn of this chat was running.
pub async fn cancel(state: &AppState, caller: &Caller, chat_id: i64) -> AppResult<bool> {
    caller.require_write()?;
    chat_service::get(state, caller, chat_id).await?;
    if state.turns.cancel(chat_id) {
        return Ok(true);
    }
    let db = &state.db;
    let streaming: i64 = db_run!(db, read, |conn| messages::table
        .filter(messages::chat_id.eq(chat_id))
        .filter(messages::status.eq(MessageStatus::Streaming))
        .count()
        .get_result(conn)
        .await
        .map_err(AppError::from))?;
    if streaming > 0 {
        state.events.publish(Event::TurnCancelRequested {
            user_id: caller.user_id(),
            chat_id,
        });
    }
    Ok(streaming > 0)
}

/// At start: answers that were streaming when a previous run of the server stopped (a crash:
/// a clean stop stores them as `cancelled`) are kept with the text of their last checkpoint,
/// marked `interrupted` (SQLite only; on PostgreSQL other processes may still be streaming
/// them).
pub async fn recover_interrupted(state: &AppState) -> AppResult<usize> {
    if state.db.backend() != crate::db::Backend::Sqlite {
        return Ok(0);
    }
    let db = &state.db;
    db_run!(db, write, |conn| diesel::update(
        messages::table.filter(messages::status.eq(MessageStatus::Streaming))
    )
    .set(messages::status.eq(MessageStatus::Interrupted))
    .execute(conn)
    .await
    .map_err(AppError::from))
}

/// Relays cancel requests from other processes to the turns running here.
pub fn spawn_cancel_relay(state: &AppState) {
    let mut rx = state.events.subscribe();
    let turns = state.turns.clone();
    state.background.spawn_service(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match rx.recv().await {
                Ok(Event::TurnCancelRequested { chat_id, .. }) => {
                    turns.cancel(chat_id);
                }
                Ok(Event::Shutdown) | Err(RecvError::Closed) => break,
                _ => {}
            }
        }
    });
}

//! Event bus. Services publish what changed; GraphQL subscriptions (and, later, the legacy
//! streaming transports) filter it per caller. Bounded: a subscriber that falls behind loses
//! old events instead of growing memory. On PostgreSQL, [`pg_bridge`] carries events between
//! the `hearth serve` processes sharing the database, so a logout on one closes the
//! subscriptions of that session on all of them.

pub mod pg_bridge;
pub mod turns;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

/// Something that happened, addressed to one user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A chat was created, renamed or changed.
    ChatUpserted {
        /// Owner.
        user_id: i64,
        /// Chat id.
        chat_id: i64,
    },
    /// A chat was deleted.
    ChatDeleted {
        /// Owner.
        user_id: i64,
        /// Chat id.
        chat_id: i64,
    },
    /// An agent was created, changed or deleted (seed 002's `agent:{agent_type}` channels).
    AgentChanged {
        /// Owner.
        owner_id: i64,
        /// The agent.
        agent_id: i64,
        /// Its slug (seed 002's `agent_type`).
        slug: String,
    },
    /// A project was created or changed (seed 002's `project:{project_id}` channels).
    ProjectChanged {
        /// Owner.
        owner_id: i64,
        /// The project.
        project_id: i64,
    },
    /// Someone is typing in a chat (seed 001's socket.io `typing`), for the other sockets that
    /// joined it.
    ChatTyping {
        /// Who types.
        user_id: i64,
        /// The chat.
        chat_id: i64,
        /// Started or stopped.
        is_typing: bool,
        /// The socket it came from (not echoed back to it).
        socket: String,
    },
    /// A session was revoked: its open subscriptions must close.
    SessionRevoked {
        /// Owner.
        user_id: i64,
        /// Session id.
        session_id: String,
    },
    /// Every session of a user is void (deactivation).
    UserDisabled {
        /// The user.
        user_id: i64,
    },
    /// A user's role changed: open connections re-check what they may still do.
    UserChanged {
        /// The user.
        user_id: i64,
    },
    /// An API key was revoked: the streams and sockets opened with it must close.
    ApiKeyRevoked {
        /// Owner.
        user_id: i64,
        /// The key's id.
        key_id: i64,
    },
    /// Someone asked to stop the running turn of a chat (runs in whichever process has it).
    TurnCancelRequested {
        /// Owner.
        user_id: i64,
        /// Chat id.
        chat_id: i64,
    },
    /// A job was created or changed (state, schedule, a run started or ended). Wakes the
    /// job workers of every process.
    JobChanged {
        /// Owner.
        user_id: i64,
        /// The job.
        job_id: i64,
    },
    /// A job was deleted.
    JobDeleted {
        /// Owner.
        user_id: i64,
        /// The job.
        job_id: i64,
    },
    /// Someone asked to stop a job's running run (it stops in whichever process runs it).
    JobCancelRequested {
        /// Owner.
        user_id: i64,
        /// The job.
        job_id: i64,
    },
    /// A running job reported progress.
    JobProgress {
        /// Owner.
        user_id: i64,
        /// The job.
        job_id: i64,
        /// The run.
        run_id: i64,
        /// The report (JSON text).
        progress: String,
    },
    /// A document was uploaded or moved on in its ingestion. Once indexed, every process
    /// brings its index of the collection up to date.
    DocumentChanged {
        /// The collection's owner.
        user_id: i64,
        /// The document.
        document_id: i64,
        /// Its collection.
        collection_id: i64,
        /// Its status (`queued`, `extracting`, `embedding`, `indexed`, `failed`, `stored`).
        status: String,
        /// Chunks of its text (known from `embedding` on).
        chunks_total: i32,
        /// Chunks embedded so far.
        chunks_embedded: i32,
    },
    /// A document and its chunks were deleted.
    DocumentDeleted {
        /// The collection's owner.
        user_id: i64,
        /// The document.
        document_id: i64,
        /// Its collection.
        collection_id: i64,
    },
    /// A plugin was installed, upgraded, changed state, reloaded or deleted. Every process
    /// converges its instances to the database on it.
    PluginChanged {
        /// The plugin's key.
        name: String,
        /// Its state now (`deleted` once removed).
        state: String,
        /// Why it failed, for `failed`.
        failure: Option<String>,
        /// The change was a reload: processes running it recompile from disk.
        reload: bool,
    },
    /// A plugin published an event during a call caused by this user.
    PluginEmitted {
        /// The user whose request caused the call.
        user_id: i64,
        /// The plugin's key.
        plugin: String,
        /// The plugin's event name.
        name: String,
        /// The plugin's data (JSON text).
        data: String,
    },
    /// An answer being written moved on (a checkpoint was stored) or ended, on the process
    /// that runs its turn. Other processes relay it to their listeners of the chat, from the
    /// database (PostgreSQL only: a SQLite instance is one process).
    AnswerProgress {
        /// The turn hub that runs the turn ([`turns::TurnHub::origin`]).
        origin: u64,
        /// Chat.
        chat_id: i64,
        /// The answer.
        message_id: i64,
        /// The answer is stored for good.
        done: bool,
    },
    /// An agent step of an answer being written (PostgreSQL: other processes relay it to
    /// their listeners of the chat, after the answer's text so far). Its text and parameters
    /// are bounded ([`MAX_RELAYED_STEP`]) to fit a notification; the stored answer's
    /// `tools_used` keeps them whole.
    AnswerStep {
        /// The turn hub that runs the turn.
        origin: u64,
        /// Chat.
        chat_id: i64,
        /// The answer.
        message_id: i64,
        /// `think`, `plan`, `action` or `result`.
        kind: String,
        /// The step's text.
        content: String,
        /// Tool name (`action`, `result`).
        tool: Option<String>,
        /// Tool parameters (`plan`, `action`).
        params: Option<serde_json::Value>,
    },
    /// A backup was restored: every table was replaced. Processes drop their vector indexes
    /// (rebuilt from the restored vectors) and converge their plugins; streams re-check who
    /// they serve (every session ended).
    Restored,
    /// An admin changed a rate-limit budget at run time: processes re-read the budgets
    /// (`service::rate_limits::load`).
    RateLimitsChanged,
    /// The server is draining: every open stream completes now.
    Shutdown,
}

impl Event {
    /// Whether other processes must see it (a shutdown concerns this process only).
    pub fn crosses_processes(&self) -> bool {
        !matches!(self, Event::Shutdown)
    }

    /// Whether it can end an open stream (session, account, chat gone, shutdown). Streams
    /// listen to these alone, so the data events of thousands of chats do not wake every
    /// stream.
    pub fn is_control(&self) -> bool {
        matches!(
            self,
            Event::SessionRevoked { .. }
                | Event::UserDisabled { .. }
                | Event::UserChanged { .. }
                | Event::ApiKeyRevoked { .. }
                | Event::ChatDeleted { .. }
                | Event::Restored
                | Event::Shutdown
        )
    }
}

/// Bytes of a relayed step's text, and of its parameters as JSON, at most
/// ([`Event::AnswerStep`]; PostgreSQL notifications hold 8000 bytes).
pub const MAX_RELAYED_STEP: usize = 2000;

/// Cheap-to-clone publisher/subscriber handle.
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
    /// The [`Event::is_control`] subset.
    control: broadcast::Sender<Event>,
    /// Outgoing events for the other processes (PostgreSQL only).
    remote: Option<mpsc::UnboundedSender<Event>>,
}

impl EventBus {
    /// A process-local bus keeping up to `capacity` undelivered events per subscriber.
    pub fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity).0,
            control: broadcast::channel(capacity).0,
            remote: None,
        }
    }

    /// A bus that also forwards every cross-process event to `remote`.
    pub fn with_remote(capacity: usize, remote: mpsc::UnboundedSender<Event>) -> Self {
        Self {
            tx: broadcast::channel(capacity).0,
            control: broadcast::channel(capacity).0,
            remote: Some(remote),
        }
    }

    /// Publishes here and, when bridged, to the other processes; no subscriber is fine.
    pub fn publish(&self, event: Event) {
        if let Some(remote) = &self.remote {
            if event.crosses_processes() {
                let _ = remote.send(event.clone());
            }
        }
        self.deliver_local(event);
    }

    /// Delivers an event that came from another process (not forwarded again).
    pub fn deliver_local(&self, event: Event) {
        if event.is_control() {
            let _ = self.control.send(event.clone());
        }
        let _ = self.tx.send(event);
    }

    /// A new receiver seeing events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Receivers of every event now (chat-change subscriptions, relays), for tests and
    /// metrics.
    pub fn receivers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// A new receiver of the control events only (see [`Event::is_control`]).
    pub fn subscribe_control(&self) -> broadcast::Receiver<Event> {
        self.control.subscribe()
    }
}

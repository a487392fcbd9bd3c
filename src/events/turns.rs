//! Live chat turns: one broadcast channel per chat that has a turn running or a listener,
//! and the cancel handle of each running turn. Token deltas stay in this process (they are
//! far too many for LISTEN/NOTIFY); what other processes need (the chat changed, a cancel
//! request) goes over the [`super::EventBus`].

use crate::db::models::Message;
use crate::error::ErrorCode;
use crate::llm::Usage;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Undelivered events kept per chat; a listener further behind skips to the newest (the
/// final `Response` carries the whole text, so nothing is lost for good). Slots hold an
/// `Arc`, so an idle chat channel costs a few KiB.
const CHANNEL_CAPACITY: usize = 256;

/// An agent step (tool use) inside a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// Reasoning shown to the user.
    Think,
    /// The steps it intends to take.
    Plan,
    /// A tool call.
    Action,
    /// A tool's result.
    Result,
}

impl StepKind {
    /// Wire name (seed 000 event types).
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Think => "think",
            StepKind::Plan => "plan",
            StepKind::Action => "action",
            StepKind::Result => "result",
        }
    }
}

/// What a turn emits, in order: `Started`, any `Token`/`Step`, then one `Response` (the
/// stored message, also when cancelled) or one `Error`.
#[derive(Debug, Clone)]
pub enum TurnEvent {
    /// The user message is stored and the assistant message reserved.
    Started {
        /// Chat.
        chat_id: i64,
        /// The stored user message.
        user_message_id: i64,
        /// The assistant message the tokens belong to.
        message_id: i64,
        /// Model key answering.
        model: String,
    },
    /// A piece of the answer.
    Token {
        /// Chat.
        chat_id: i64,
        /// Assistant message.
        message_id: i64,
        /// The text piece.
        delta: Arc<str>,
    },
    /// An agent step.
    Step {
        /// Chat.
        chat_id: i64,
        /// Assistant message.
        message_id: i64,
        /// Which step.
        kind: StepKind,
        /// Text of the step.
        content: String,
        /// Tool name (`action`, `result`).
        tool: Option<String>,
        /// Tool parameters as JSON (`action`).
        params: Option<serde_json::Value>,
    },
    /// The turn ended and its message is stored (`status` complete or cancelled).
    Response {
        /// Chat.
        chat_id: i64,
        /// The stored assistant message.
        message: Arc<Message>,
        /// Token counts.
        usage: Usage,
    },
    /// The turn failed; the partial message is stored with status `error`.
    Error {
        /// Chat.
        chat_id: i64,
        /// Assistant message, when one was reserved.
        message_id: Option<i64>,
        /// Stable code.
        code: ErrorCode,
        /// Human message.
        message: String,
    },
}

struct Running {
    turn_id: String,
    cancel: CancellationToken,
}

/// Per-chat channels and running turns of this process.
#[derive(Default)]
pub struct TurnHub {
    channels: Mutex<HashMap<i64, Arc<broadcast::Sender<Arc<TurnEvent>>>>>,
    running: Mutex<HashMap<i64, Running>>,
}

/// A chat's channel, held by a turn while it runs; dropping it lets the hub forget the chat.
pub struct ChatChannel {
    hub: Arc<TurnHub>,
    chat_id: i64,
    tx: Option<Arc<broadcast::Sender<Arc<TurnEvent>>>>,
}

impl ChatChannel {
    /// Sends to every listener of the chat (none is fine).
    pub fn send(&self, event: TurnEvent) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Arc::new(event));
        }
    }
}

impl Drop for ChatChannel {
    fn drop(&mut self) {
        drop(self.tx.take());
        self.hub.forget_if_idle(self.chat_id);
    }
}

/// A listener of a chat; dropping it lets the hub forget the chat.
pub struct ChatListener {
    hub: Arc<TurnHub>,
    chat_id: i64,
    /// The events.
    pub rx: broadcast::Receiver<Arc<TurnEvent>>,
}

impl Drop for ChatListener {
    fn drop(&mut self) {
        // The receiver must be gone before the idle check counts receivers.
        let (tx, _) = broadcast::channel(1);
        drop(std::mem::replace(&mut self.rx, tx.subscribe()));
        self.hub.forget_if_idle(self.chat_id);
    }
}

impl TurnHub {
    fn sender(&self, chat_id: i64) -> Arc<broadcast::Sender<Arc<TurnEvent>>> {
        let mut ch = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        ch.entry(chat_id)
            .or_insert_with(|| Arc::new(broadcast::channel(CHANNEL_CAPACITY).0))
            .clone()
    }

    fn forget_if_idle(&self, chat_id: i64) {
        let mut ch = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = ch.get(&chat_id) {
            if Arc::strong_count(tx) == 1 && tx.receiver_count() == 0 {
                ch.remove(&chat_id);
            }
        }
    }

    /// Listens to a chat's turns from now on.
    pub fn listen(self: &Arc<Self>, chat_id: i64) -> ChatListener {
        ChatListener {
            hub: self.clone(),
            chat_id,
            rx: self.sender(chat_id).subscribe(),
        }
    }

    /// The channel a turn publishes on.
    pub fn channel(self: &Arc<Self>, chat_id: i64) -> ChatChannel {
        ChatChannel {
            hub: self.clone(),
            chat_id,
            tx: Some(self.sender(chat_id)),
        }
    }

    /// Reserves the chat for a new turn; `None` when one is already running here.
    pub fn begin(&self, chat_id: i64, turn_id: &str) -> Option<CancellationToken> {
        let mut r = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if r.contains_key(&chat_id) {
            return None;
        }
        let cancel = CancellationToken::new();
        r.insert(
            chat_id,
            Running {
                turn_id: turn_id.to_string(),
                cancel: cancel.clone(),
            },
        );
        Some(cancel)
    }

    /// Releases the chat after a turn (only the turn that reserved it).
    pub fn end(&self, chat_id: i64, turn_id: &str) {
        let mut r = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if r.get(&chat_id).is_some_and(|t| t.turn_id == turn_id) {
            r.remove(&chat_id);
        }
    }

    /// Cancels the chat's running turn in this process; whether there was one.
    pub fn cancel(&self, chat_id: i64) -> bool {
        let r = self.running.lock().unwrap_or_else(|p| p.into_inner());
        match r.get(&chat_id) {
            Some(t) => {
                t.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Listeners of every chat's turns now (for tests and metrics).
    pub fn listeners(&self) -> usize {
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|tx| tx.receiver_count())
            .sum()
    }

    /// Chats with a live channel (for tests and metrics).
    pub fn open_channels(&self) -> usize {
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

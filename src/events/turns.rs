//! Live chat turns: one broadcast channel per chat that has a turn running or a listener,
//! the replay log of each running turn, and its cancel handle. Token deltas stay in this
//! process (they are far too many for LISTEN/NOTIFY); what other processes need (the chat
//! changed, a cancel request) goes over the [`super::EventBus`].
//!
//! Every event carries a [`Cursor`]: the answer it belongs to, its number in that turn and
//! the bytes of answer text delivered through it. A client that lost its stream resumes from
//! the last cursor it saw ([`crate::service::turn_stream`]): from the running turn's
//! [`TurnLog`], or from the stored message once the turn ended.

use crate::db::models::Message;
use crate::error::ErrorCode;
use crate::llm::Usage;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Undelivered events kept per chat; a listener further behind catches up from the turn's
/// log. Slots hold an `Arc`, so an idle chat channel costs a few KiB.
const CHANNEL_CAPACITY: usize = 256;

/// Events a running turn keeps for resuming clients; older token events are still covered
/// by the log's text (a resume from before the window gets the missed text as one token).
const LOG_EVENTS: usize = 4096;

/// Where an event stands in its chat's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    /// The assistant message (answer) the event belongs to.
    pub message_id: i64,
    /// The event's number in its turn, from 1 (`Started`).
    pub seq: u64,
    /// Bytes of answer text delivered up to and including this event.
    pub offset: usize,
    /// The event ended its turn (`Response` or `Error`).
    pub done: bool,
}

impl Cursor {
    /// The opaque form clients hold: `"<message>.<seq>.<offset>"`, with `.end` on a turn's
    /// last event.
    pub fn encode(&self) -> String {
        let end = if self.done { ".end" } else { "" };
        format!("{}.{}.{}{end}", self.message_id, self.seq, self.offset)
    }

    /// Reads [`Cursor::encode`]'s form.
    pub fn parse(s: &str) -> Option<Cursor> {
        let mut parts = s.trim().split('.');
        let mut cursor = Cursor {
            message_id: parts.next()?.parse().ok()?,
            seq: parts.next()?.parse().ok()?,
            offset: parts.next()?.parse().ok()?,
            done: false,
        };
        match parts.next() {
            None => {}
            Some("end") => cursor.done = true,
            Some(_) => return None,
        }
        parts.next().is_none().then_some(cursor)
    }
}

/// A turn event with its place in the stream.
#[derive(Debug)]
pub struct Sequenced {
    /// Where it stands.
    pub cursor: Cursor,
    /// The event.
    pub event: TurnEvent,
}

impl std::ops::Deref for Sequenced {
    type Target = TurnEvent;

    fn deref(&self) -> &TurnEvent {
        &self.event
    }
}

/// What a running turn has sent: its answer text so far and its latest events, for clients
/// that resume.
#[derive(Debug, Default)]
pub struct TurnLog {
    /// The answer being written.
    pub message_id: i64,
    /// The answer text so far.
    pub text: String,
    /// The newest events (at most [`LOG_EVENTS`]), oldest first.
    pub events: std::collections::VecDeque<Arc<Sequenced>>,
    /// The number of the last event sent.
    pub last_seq: u64,
}

impl TurnLog {
    /// The events after `seq`, if the log still holds all of them.
    pub fn after(&self, seq: u64) -> Option<Vec<Arc<Sequenced>>> {
        let first = self
            .events
            .front()
            .map_or(self.last_seq + 1, |e| e.cursor.seq);
        if seq + 1 < first {
            return None;
        }
        Some(
            self.events
                .iter()
                .filter(|e| e.cursor.seq > seq)
                .cloned()
                .collect(),
        )
    }
}

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
    /// The kind a wire name names.
    pub fn parse(name: &str) -> Option<StepKind> {
        [
            StepKind::Think,
            StepKind::Plan,
            StepKind::Action,
            StepKind::Result,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }

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

type Sender = Arc<broadcast::Sender<Arc<Sequenced>>>;
type SharedLog = Arc<Mutex<TurnLog>>;

/// Per-chat channels, replay logs and running turns of this process.
pub struct TurnHub {
    channels: Mutex<HashMap<i64, Sender>>,
    logs: Mutex<HashMap<i64, SharedLog>>,
    running: Mutex<HashMap<i64, Running>>,
    /// Tells this hub's [`super::Event::AnswerProgress`] from other processes'.
    pub origin: u64,
}

impl Default for TurnHub {
    fn default() -> Self {
        TurnHub {
            channels: Mutex::default(),
            logs: Mutex::default(),
            running: Mutex::default(),
            origin: rand::random(),
        }
    }
}

/// A chat's channel, held by a turn while it runs; dropping it lets the hub forget the chat
/// and the turn's log.
pub struct ChatChannel {
    hub: Arc<TurnHub>,
    chat_id: i64,
    tx: Option<Sender>,
    log: SharedLog,
}

impl ChatChannel {
    /// Numbers the event, keeps it in the turn's log and sends it to every listener of the
    /// chat (none is fine). Logging and sending happen under the log's lock, so a resuming
    /// client that subscribed first and then read the log misses nothing.
    pub fn send(&self, event: TurnEvent) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let message_id = match &event {
            TurnEvent::Started { message_id, .. }
            | TurnEvent::Token { message_id, .. }
            | TurnEvent::Step { message_id, .. } => *message_id,
            TurnEvent::Response { message, .. } => message.id,
            TurnEvent::Error { message_id, .. } => message_id.unwrap_or(log.message_id),
        };
        if log.message_id != message_id {
            // A new answer (the log belongs to one turn at a time).
            *log = TurnLog {
                message_id,
                ..TurnLog::default()
            };
        }
        if let TurnEvent::Token { delta, .. } = &event {
            log.text.push_str(delta);
        }
        log.last_seq += 1;
        let done = matches!(event, TurnEvent::Response { .. } | TurnEvent::Error { .. });
        let sequenced = Arc::new(Sequenced {
            cursor: Cursor {
                message_id,
                seq: log.last_seq,
                offset: log.text.len(),
                done,
            },
            event,
        });
        if log.events.len() == LOG_EVENTS {
            log.events.pop_front();
        }
        log.events.push_back(sequenced.clone());
        if let Some(tx) = &self.tx {
            let _ = tx.send(sequenced);
        }
    }
}

impl Drop for ChatChannel {
    fn drop(&mut self) {
        drop(self.tx.take());
        {
            let mut logs = self.hub.logs.lock().unwrap_or_else(|p| p.into_inner());
            if logs
                .get(&self.chat_id)
                .is_some_and(|l| Arc::ptr_eq(l, &self.log))
            {
                logs.remove(&self.chat_id);
            }
        }
        self.hub.forget_if_idle(self.chat_id);
    }
}

/// A listener of a chat; dropping it lets the hub forget the chat.
pub struct ChatListener {
    hub: Arc<TurnHub>,
    chat_id: i64,
    /// The events.
    pub rx: broadcast::Receiver<Arc<Sequenced>>,
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
    fn sender(&self, chat_id: i64) -> Sender {
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

    /// The channel a turn publishes on (and its log, which resuming clients read).
    pub fn channel(self: &Arc<Self>, chat_id: i64) -> ChatChannel {
        let log = SharedLog::default();
        self.logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(chat_id, log.clone());
        ChatChannel {
            hub: self.clone(),
            chat_id,
            tx: Some(self.sender(chat_id)),
            log,
        }
    }

    /// Whether anyone in this process listens to the chat.
    pub fn has_listeners(&self, chat_id: i64) -> bool {
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&chat_id)
            .is_some_and(|tx| tx.receiver_count() > 0)
    }

    /// Sends an event of a turn running on another process to this process's listeners of
    /// the chat (nothing is logged: resumes read the database for such turns).
    pub fn relay(&self, chat_id: i64, event: Arc<Sequenced>) {
        let tx = self
            .channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&chat_id)
            .cloned();
        if let Some(tx) = tx {
            let _ = tx.send(event);
        }
    }

    /// Reads the log of the chat's running turn in this process, if there is one.
    pub fn with_log<T>(&self, chat_id: i64, read: impl FnOnce(&TurnLog) -> T) -> Option<T> {
        let log = self
            .logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&chat_id)
            .cloned()?;
        let log = log.lock().unwrap_or_else(|p| p.into_inner());
        Some(read(&log))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back() {
        let c = Cursor {
            message_id: 42,
            seq: 7,
            offset: 120,
            done: false,
        };
        assert_eq!(c.encode(), "42.7.120");
        assert_eq!(Cursor::parse("42.7.120"), Some(c));
        let end = Cursor { done: true, ..c };
        assert_eq!(Cursor::parse(&end.encode()), Some(end));
        for bad in ["", "42.7", "42.7.120.x", "a.b.c", "42.7.120.end.1"] {
            assert_eq!(Cursor::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_turn_log_numbers_events_and_keeps_the_text() {
        let hub = Arc::new(TurnHub::default());
        let mut listener = hub.listen(5);
        let channel = hub.channel(5);
        channel.send(TurnEvent::Started {
            chat_id: 5,
            user_message_id: 9,
            message_id: 10,
            model: "m".into(),
        });
        for t in ["Hel", "lo"] {
            channel.send(TurnEvent::Token {
                chat_id: 5,
                message_id: 10,
                delta: Arc::from(t),
            });
        }
        let got: Vec<Cursor> = (0..3)
            .map(|_| listener.rx.try_recv().unwrap().cursor)
            .collect();
        assert_eq!(got.iter().map(|c| c.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(got[2].offset, 5);
        let (text, after) = hub
            .with_log(5, |l| (l.text.clone(), l.after(1).unwrap().len()))
            .unwrap();
        assert_eq!((text.as_str(), after), ("Hello", 2));
        drop(channel);
        assert!(hub.with_log(5, |_| ()).is_none());
    }
}

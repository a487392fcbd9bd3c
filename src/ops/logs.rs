//! Log records at `info` and above, fed live to `/api/websocket` (admins): a tracing layer
//! sends each event into a broadcast channel and keeps the last [`RECENT`] in memory for
//! backups (`logs/recent.jsonl`). Debug and trace events cost nothing beyond the level check.

use serde::Serialize;
use std::fmt::Write as _;
use std::sync::OnceLock;
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Records a slow listener may fall behind by before it skips some.
const FEED_CAPACITY: usize = 1024;

/// Records kept for [`recent`].
pub const RECENT: usize = 1000;

fn kept() -> &'static std::sync::Mutex<std::collections::VecDeque<LogRecord>> {
    static KEPT: OnceLock<std::sync::Mutex<std::collections::VecDeque<LogRecord>>> =
        OnceLock::new();
    KEPT.get_or_init(|| std::sync::Mutex::new(std::collections::VecDeque::with_capacity(RECENT)))
}

/// The last [`RECENT`] records of this process, oldest first.
pub fn recent() -> Vec<LogRecord> {
    match kept().lock() {
        Ok(k) => k.iter().cloned().collect(),
        Err(poisoned) => poisoned.into_inner().iter().cloned().collect(),
    }
}

/// One log record, as seed 004's `logs` message lists them.
#[derive(Debug, Clone, Serialize)]
pub struct LogRecord {
    /// `error`, `warn` or `info`.
    pub level: &'static str,
    /// The message, then the event's other fields as `key=value`.
    pub message: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
    /// The module that logged it.
    pub source: String,
}

/// The channel every record goes to.
pub fn feed() -> &'static broadcast::Sender<LogRecord> {
    static FEED: OnceLock<broadcast::Sender<LogRecord>> = OnceLock::new();
    FEED.get_or_init(|| broadcast::channel(FEED_CAPACITY).0)
}

/// The tracing layer feeding [`feed`]; `main` installs it beside the formatter.
pub struct FeedLayer;

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={:?}", field.name(), value);
        }
    }
}

impl<S: Subscriber> Layer<S> for FeedLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        // More verbose levels compare greater.
        if *meta.level() > Level::INFO {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = match *meta.level() {
            Level::ERROR => "error",
            Level::WARN => "warn",
            _ => "info",
        };
        let record = LogRecord {
            level,
            message: format!("{}{}", fields.message, fields.rest),
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            source: meta.target().to_string(),
        };
        if let Ok(mut k) = kept().lock() {
            if k.len() == RECENT {
                k.pop_front();
            }
            k.push_back(record.clone());
        }
        if feed().receiver_count() > 0 {
            let _ = feed().send(record);
        }
    }
}

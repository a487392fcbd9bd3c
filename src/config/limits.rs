//! Rate-limit settings: one budget per documented door table row (seeds 000, 001, 002, 004)
//! and Hearth's own GraphQL budget. Each is written `"<requests>/<period>"`: `"30/min"`,
//! `"5/5min"`, `"10/hour"`, `"2/s"`, `"1000/day"`; `"0"` turns a budget off.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// `requests` per `per_secs` for one principal, replenished evenly (GCRA): a fresh budget
/// admits `requests` at once, then one more every `per_secs / requests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Requests (or GraphQL root fields, or socket messages) in a full budget; 0: off.
    pub requests: u32,
    /// Seconds a full budget takes to refill from empty.
    pub per_secs: u64,
}

impl Budget {
    /// `requests` per `per_secs`.
    pub const fn new(requests: u32, per_secs: u64) -> Self {
        Self { requests, per_secs }
    }

    /// No limit.
    pub const OFF: Budget = Budget::new(0, 60);

    /// Whether this budget limits anything.
    pub fn is_on(&self) -> bool {
        self.requests > 0 && self.per_secs > 0
    }

    /// Parses `"30/min"`, `"5/5min"`, `"10/hour"`, `"0"`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "0" || s.eq_ignore_ascii_case("off") {
            return Ok(Self::OFF);
        }
        let (n, period) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not `<requests>/<period>` (e.g. \"30/min\")"))?;
        let requests: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("`{n}` is not a number of requests"))?;
        let period = period.trim();
        let digits = period.chars().take_while(char::is_ascii_digit).count();
        let (count, unit) = period.split_at(digits);
        let count: u64 = if count.is_empty() {
            1
        } else {
            count
                .parse()
                .map_err(|_| format!("bad period `{period}`"))?
        };
        let unit_secs = match unit.trim() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86_400,
            other => return Err(format!("unknown period unit `{other}` (s, min, hour, day)")),
        };
        if count == 0 {
            return Err(format!("period `{period}` is empty"));
        }
        Ok(Self::new(requests, count * unit_secs))
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.is_on() {
            return f.write_str("0");
        }
        let (count, unit) = match self.per_secs {
            s if s % 86_400 == 0 => (s / 86_400, "day"),
            s if s % 3600 == 0 => (s / 3600, "hour"),
            s if s % 60 == 0 => (s / 60, "min"),
            s => (s, "s"),
        };
        if count == 1 {
            write!(f, "{}/{unit}", self.requests)
        } else {
            write!(f, "{}/{count}{unit}", self.requests)
        }
    }
}

impl Serialize for Budget {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Budget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Budget::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Per-door budgets. Authenticated callers are counted per principal (a user, or an API key
/// of its own), anonymous ones per client address; seeds 001 and 004 count per address
/// whoever calls. docs/operations.md has the table of which door uses which budget.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitsConfig {
    /// On PostgreSQL, keep the budgets in the database so that every Hearth process serving
    /// it draws from the same ones (one statement per limited request). Off, or on SQLite,
    /// each process counts in memory.
    pub shared: bool,
    /// Honour an API key's own `rate_limit` (requests per minute, seed 002) on every door.
    pub api_keys: bool,
    /// Seed 000 `POST /api/auth/login` and the GraphQL `login` field.
    pub login: Budget,
    /// Seed 000 `POST /api/chat`.
    pub chat: Budget,
    /// Seed 000 `WS /ws/chat`: messages a socket's caller may send.
    pub ws_chat: Budget,
    /// Seed 000's other `/api/*` doors.
    pub api: Budget,
    /// Seed 001's doors, per client address.
    pub foyer: Budget,
    /// Seed 001's socket.io messages (`join_chat`, `leave_chat`, `typing`), per client
    /// address; a budget of its own so that typing notices do not spend the REST doors'.
    pub foyer_socket: Budget,
    /// Seed 002 `/api/v1/auth/*`.
    pub nexus_auth: Budget,
    /// Seed 002 `/api/v1/llm/chat`.
    pub nexus_llm_chat: Budget,
    /// Seed 002 `/api/v1/rag/query`.
    pub nexus_rag_query: Budget,
    /// Seed 002 `/api/v1/agents/{agent_type}/invoke`.
    pub nexus_agent_invoke: Budget,
    /// Seed 002 `/api/v1/video/*`.
    pub nexus_video: Budget,
    /// Seed 004's doors, per client address.
    pub runner: Budget,
    /// GraphQL (HTTP and WebSocket): root fields of the operations a principal runs, so
    /// aliases and batches cannot multiply a budget.
    pub graphql: Budget,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self {
            shared: true,
            api_keys: true,
            login: Budget::new(5, 300),
            chat: Budget::new(30, 60),
            ws_chat: Budget::new(60, 60),
            api: Budget::new(100, 60),
            foyer: Budget::new(60, 60),
            foyer_socket: Budget::new(60, 60),
            nexus_auth: Budget::new(10, 60),
            nexus_llm_chat: Budget::new(60, 60),
            nexus_rag_query: Budget::new(100, 60),
            nexus_agent_invoke: Budget::new(30, 60),
            nexus_video: Budget::new(10, 3600),
            runner: Budget::new(100, 60),
            graphql: Budget::new(600, 60),
        }
    }
}

impl RateLimitsConfig {
    /// Every door budget off (API keys' own limits too).
    pub fn off() -> Self {
        Self {
            shared: true,
            api_keys: false,
            login: Budget::OFF,
            chat: Budget::OFF,
            ws_chat: Budget::OFF,
            api: Budget::OFF,
            foyer: Budget::OFF,
            foyer_socket: Budget::OFF,
            nexus_auth: Budget::OFF,
            nexus_llm_chat: Budget::OFF,
            nexus_rag_query: Budget::OFF,
            nexus_agent_invoke: Budget::OFF,
            nexus_video: Budget::OFF,
            runner: Budget::OFF,
            graphql: Budget::OFF,
        }
    }
}

/// Token quotas: prompt + completion tokens of every model call, per UTC day and calendar
/// month; 0 is unlimited. A user's quota counts their sessions and API keys together; a key's
/// quota counts that key alone. Checked before a model is called.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotasConfig {
    /// Tokens one user may spend per day.
    pub user_daily_tokens: u64,
    /// Tokens one user may spend per month.
    pub user_monthly_tokens: u64,
    /// Tokens one API key may spend per day.
    pub key_daily_tokens: u64,
    /// Tokens one API key may spend per month.
    pub key_monthly_tokens: u64,
}

impl QuotasConfig {
    /// Whether any quota is set.
    pub fn any(&self) -> bool {
        self.user_daily_tokens > 0
            || self.user_monthly_tokens > 0
            || self.key_daily_tokens > 0
            || self.key_monthly_tokens > 0
    }
}

#[cfg(test)]
mod tests {
    use super::Budget;

    #[test]
    fn budgets_parse_and_print() {
        for (text, requests, per) in [
            ("30/min", 30, 60),
            ("5/5min", 5, 300),
            ("10/hour", 10, 3600),
            ("2/s", 2, 1),
            ("1000/day", 1000, 86_400),
        ] {
            let b = Budget::parse(text).unwrap();
            assert_eq!((b.requests, b.per_secs), (requests, per), "{text}");
            assert_eq!(Budget::parse(&b.to_string()).unwrap(), b);
        }
        assert!(!Budget::parse("0").unwrap().is_on());
        assert!(Budget::parse("30").is_err());
        assert!(Budget::parse("30/fortnight").is_err());
        assert!(Budget::parse("x/min").is_err());
    }
}

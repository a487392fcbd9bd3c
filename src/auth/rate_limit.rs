//! Fixed-window request counting per key (client address, account), for login brute-force
//! and registration flooding protection. In memory and per process: each `hearth serve`
//! process counts on its own.

use crate::config::Config;
use crate::error::{AppError, AppResult, ErrorCode};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before expired windows are swept.
const SWEEP_AT: usize = 10_000;

/// Counts attempts per key in windows of `window`; at most `limit` per window.
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    slots: Mutex<HashMap<String, (Instant, u32)>>,
}

/// The answer to one attempt.
#[derive(Debug, Clone, Copy)]
pub enum Verdict {
    /// Allowed; `remaining` attempts left in this window.
    Allowed {
        /// Attempts left.
        remaining: u32,
    },
    /// Refused until `retry_after` has passed.
    Limited {
        /// Time until the window resets.
        retry_after: Duration,
    },
}

impl RateLimiter {
    /// A limiter allowing `limit` attempts per `window` per key.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Records an attempt for `key` and says whether it may proceed (always, at limit 0).
    pub fn check(&self, key: &str) -> Verdict {
        if self.limit == 0 {
            return Verdict::Allowed {
                remaining: u32::MAX,
            };
        }
        let now = Instant::now();
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots.len() >= SWEEP_AT {
            let window = self.window;
            slots.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let slot = slots.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(slot.0) >= self.window {
            *slot = (now, 0);
        }
        if slot.1 >= self.limit {
            return Verdict::Limited {
                retry_after: self.window.saturating_sub(now.duration_since(slot.0)),
            };
        }
        slot.1 += 1;
        Verdict::Allowed {
            remaining: self.limit - slot.1,
        }
    }
}

/// The limits on the doors that cost the server a password hash.
pub struct AuthLimits {
    /// Login attempts per client address.
    pub login_by_address: RateLimiter,
    /// Login attempts per account (name or email as typed, lower-cased).
    pub login_by_account: RateLimiter,
    /// Registrations per client address.
    pub register_by_address: RateLimiter,
}

impl AuthLimits {
    /// The limits a configuration asks for.
    pub fn new(config: &Config) -> Self {
        let window = Duration::from_secs(config.login_rate_window_secs);
        Self {
            login_by_address: RateLimiter::new(config.login_rate_limit, window),
            login_by_account: RateLimiter::new(config.login_account_rate_limit, window),
            register_by_address: RateLimiter::new(config.register_rate_limit, window),
        }
    }
}

/// Counts one attempt against `limiter`; a refusal is `rate_limited` with `retry_after`
/// (which the HTTP layer turns into a `Retry-After` header).
pub fn enforce(limiter: &RateLimiter, key: &str, what: &str) -> AppResult<()> {
    match limiter.check(key) {
        Verdict::Allowed { .. } => Ok(()),
        Verdict::Limited { retry_after } => {
            let secs = retry_after.as_secs().max(1);
            Err(AppError::new(
                ErrorCode::RateLimited,
                format!("too many {what} attempts; retry in {secs} s"),
            )
            .with_details(serde_json::json!({ "retry_after": secs })))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key_and_resets() {
        let rl = RateLimiter::new(2, Duration::from_millis(50));
        assert!(matches!(rl.check("a"), Verdict::Allowed { remaining: 1 }));
        assert!(matches!(rl.check("a"), Verdict::Allowed { remaining: 0 }));
        assert!(matches!(rl.check("a"), Verdict::Limited { .. }));
        assert!(matches!(rl.check("b"), Verdict::Allowed { .. }));
        std::thread::sleep(Duration::from_millis(60));
        assert!(matches!(rl.check("a"), Verdict::Allowed { remaining: 1 }));
    }
}

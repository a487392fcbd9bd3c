//! The one-time setup token: printed in the log when a server starts on an instance that has
//! no admin, it lets whoever can read that log claim the instance from another machine
//! (registering from the server's own machine needs no token). Kept in memory only; once an
//! admin exists it is worthless.

use crate::auth::secrets::{random_token, secure_eq};
use std::sync::Mutex;

/// The current setup token, if one was issued.
#[derive(Default)]
pub struct SetupToken(Mutex<Option<String>>);

impl SetupToken {
    /// Issues a fresh token (replacing any earlier one) and returns it for the log.
    pub fn issue(&self) -> String {
        let token = random_token(24);
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
        token
    }

    /// Whether `candidate` is the issued token (compared in constant time).
    pub fn accepts(&self, candidate: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_deref()
            .is_some_and(|t| secure_eq(t, candidate.trim()))
    }

    /// The issued token, for tests and the operator's tooling.
    pub fn current(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

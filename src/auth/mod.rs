//! Authentication primitives: password hashing, JWTs, API-key secrets and the [`Caller`]
//! every service receives. Resolving credentials into a caller is `service::auth`'s job, so
//! GraphQL, REST, SSE and WebSocket doors all reach the same decision.

pub mod caller;
pub mod password;
pub mod secrets;
pub mod setup;
pub mod tokens;

pub use caller::{AuthMethod, Caller, Permission};

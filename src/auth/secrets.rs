//! Random secrets and their digests: API keys, refresh-token fingerprints, CSRF tokens.

use rand::distributions::Alphanumeric;
use rand::Rng;
use sha2::{Digest, Sha256};

/// Prefix of every Hearth API key; `Authorization: Bearer sk-…` is read as a key, not a JWT.
pub const API_KEY_PREFIX: &str = "sk-hearth-";

/// `len` random alphanumeric characters from the OS-seeded thread RNG.
pub fn random_token(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A new API key secret (shown to its owner once).
pub fn new_api_key() -> String {
    format!("{API_KEY_PREFIX}{}", random_token(40))
}

/// sha256 hex digest; API keys and refresh tokens are high-entropy, so a fast hash suffices.
pub fn sha256_hex(input: &str) -> String {
    hex::encode(Sha256::digest(input.as_bytes()))
}

/// Constant-time string equality for secrets.
pub fn secure_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

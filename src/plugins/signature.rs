//! Signed bundles: `plugin.sig` holds a base64 ed25519 signature over the bundle's digest
//! list, one line `<sha256 hex>  <path>\n` per file (every file but `plugin.sig`, sorted by
//! path, as `sha256sum` prints them). Keys are base64: 32-byte public keys in
//! `[plugins] trusted_keys`, a 32-byte secret seed in the file `hearth plugin keygen` writes.

use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// What a signature covers: the digest list of `files` (the signature file excluded).
pub fn digest_list(files: &BTreeMap<String, Vec<u8>>) -> String {
    let mut out = String::new();
    for (path, bytes) in files {
        out.push_str(&hex::encode(Sha256::digest(bytes)));
        out.push_str("  ");
        out.push_str(path);
        out.push('\n');
    }
    out
}

/// The trusted key (as configured) whose signature `sig` is over `files`; `None` when it is a
/// well-formed signature by no trusted key. A malformed signature file is an error.
pub fn verify_files(
    files: &BTreeMap<String, Vec<u8>>,
    sig: &[u8],
    trusted: &[String],
) -> Result<Option<String>, String> {
    let text = std::str::from_utf8(sig).map_err(|_| "plugin.sig is not base64 text")?;
    let raw = B64
        .decode(text.trim())
        .map_err(|_| "plugin.sig is not base64 text")?;
    let signature = Signature::from_slice(&raw)
        .map_err(|_| "plugin.sig does not hold a 64-byte ed25519 signature")?;
    let message = digest_list(files);
    for key in trusted {
        let Ok(verifying) = public_key(key) else {
            continue;
        };
        if verifying.verify(message.as_bytes(), &signature).is_ok() {
            return Ok(Some(key.trim().to_string()));
        }
    }
    Ok(None)
}

/// Parses a base64 public key.
pub fn public_key(key: &str) -> Result<VerifyingKey, String> {
    let raw = B64
        .decode(key.trim())
        .map_err(|_| format!("\"{key}\" is not a base64 ed25519 public key"))?;
    let bytes: [u8; 32] = raw
        .try_into()
        .map_err(|_| format!("\"{key}\" is not 32 bytes long"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("\"{key}\": {e}"))
}

/// A new key pair: (secret seed, public key), both base64.
pub fn keygen() -> (String, String) {
    let signing = SigningKey::generate(&mut rand::rngs::OsRng);
    (
        B64.encode(signing.to_bytes()),
        B64.encode(signing.verifying_key().to_bytes()),
    )
}

/// The signing key of a base64 secret seed.
fn signing_key(secret: &str) -> Result<SigningKey, String> {
    let raw = B64
        .decode(secret.trim())
        .map_err(|_| "the secret key is not base64")?;
    let seed: [u8; 32] = raw
        .try_into()
        .map_err(|_| "the secret key is not 32 bytes long")?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Signs `files` with a base64 secret seed; the base64 signature for `plugin.sig`.
pub fn sign(files: &BTreeMap<String, Vec<u8>>, secret: &str) -> Result<String, String> {
    let signature = signing_key(secret)?.sign(digest_list(files).as_bytes());
    Ok(B64.encode(signature.to_bytes()))
}

/// The public key of a base64 secret seed.
pub fn public_of(secret: &str) -> Result<String, String> {
    Ok(B64.encode(signing_key(secret)?.verifying_key().to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_with_the_right_key_and_content() {
        let (secret, public) = keygen();
        let (_, other) = keygen();
        let mut files = BTreeMap::new();
        files.insert("plugin.toml".to_string(), b"name = \"x\"".to_vec());
        files.insert("plugin.wasm".to_string(), b"\0asm\x01\0\0\0".to_vec());
        let sig = sign(&files, &secret).unwrap();
        assert_eq!(public_of(&secret).unwrap(), public);
        assert_eq!(
            verify_files(&files, sig.as_bytes(), &[other.clone(), public.clone()]).unwrap(),
            Some(public.clone())
        );
        assert_eq!(
            verify_files(&files, sig.as_bytes(), &[other]).unwrap(),
            None
        );
        files.insert("extra.txt".to_string(), b"added".to_vec());
        assert_eq!(
            verify_files(&files, sig.as_bytes(), std::slice::from_ref(&public)).unwrap(),
            None
        );
        assert!(verify_files(&files, b"not base64!", &[public]).is_err());
    }
}

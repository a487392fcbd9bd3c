//! Reading an upload into a [`Bundle`] before anything is stored: a ZIP with `plugin.toml` at
//! its root (or a folder laid out the same way, or a bare module with a name and a version).
//! ZIPs are read defensively: enclosed relative names only (no absolute paths, no `..`), no
//! links, caps on entries, on bytes actually decompressed and on the compression ratio.

use super::manifest::Manifest;
use super::signature;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// `\0asm`: every WebAssembly binary module starts with it.
pub const WASM_MAGIC: &[u8] = b"\0asm";
/// The signature file, excluded from what it signs.
pub const SIG_FILE: &str = "plugin.sig";
/// The manifest file.
pub const MANIFEST_FILE: &str = "plugin.toml";

/// Caps on what a bundle may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct BundleLimits {
    /// Entries in the ZIP.
    pub max_files: usize,
    /// Bytes all entries decompress to, counted as they are read.
    pub max_unpacked_bytes: u64,
    /// Unpacked bytes per byte of the upload.
    pub max_ratio: u64,
}

/// A validated upload: the manifest, the module and any other files.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The validated manifest.
    pub manifest: Manifest,
    /// The module's bytes (magic checked; compiled later by the pool).
    pub wasm: Vec<u8>,
    /// Every file but the module and the signature, by path (`plugin.toml` included).
    pub assets: BTreeMap<String, Vec<u8>>,
    /// SHA-256 of the module, hex.
    pub sha256: String,
    /// The trusted key whose signature verified, if any.
    pub signed_by: Option<String>,
    /// A `plugin.sig` was present (verified or not).
    pub had_signature: bool,
}

/// Reads an uploaded file: a ZIP bundle, or a bare module when `name` and `version` are given.
pub fn read_upload(
    bytes: &[u8],
    name: Option<&str>,
    version: Option<&str>,
    limits: BundleLimits,
    trusted: &[String],
) -> Result<Bundle, String> {
    if bytes.starts_with(WASM_MAGIC) {
        let (Some(name), Some(version)) = (name, version) else {
            return Err(
                "a bare .wasm upload needs the form fields `name` and `version` (or upload a \
                 ZIP bundle with plugin.toml)"
                    .into(),
            );
        };
        let manifest = Manifest::bare(name, version)?;
        return Ok(Bundle {
            sha256: hex::encode(Sha256::digest(bytes)),
            wasm: bytes.to_vec(),
            assets: BTreeMap::new(),
            manifest,
            signed_by: None,
            had_signature: false,
        });
    }
    if !bytes.starts_with(b"PK\x03\x04") {
        return Err("the upload is neither a ZIP bundle nor a WebAssembly module".into());
    }
    let files = unzip(bytes, limits)?;
    from_files(files, trusted)
}

/// Reads a bundle laid out in a folder (the example plugins, `hearth plugin install DIR`).
pub fn read_dir(dir: &Path, limits: BundleLimits, trusted: &[String]) -> Result<Bundle, String> {
    let files = dir_files(dir, limits)?;
    from_files(files, trusted)
}

/// Every regular file under `dir` by relative path (links refused), within the caps.
pub fn dir_files(dir: &Path, limits: BundleLimits) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut files = BTreeMap::new();
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", d.display()))?;
            let kind = entry.file_type().map_err(|e| e.to_string())?;
            let path = entry.path();
            if kind.is_symlink() {
                return Err(format!(
                    "{} is a link; bundles hold regular files only",
                    path.display()
                ));
            }
            if kind.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(dir)
                .map_err(|e| e.to_string())?
                .to_string_lossy()
                .replace('\\', "/");
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            total += bytes.len() as u64;
            if files.len() >= limits.max_files || total > limits.max_unpacked_bytes {
                return Err(format!(
                    "the bundle has more than {} files or {} bytes",
                    limits.max_files, limits.max_unpacked_bytes
                ));
            }
            files.insert(rel, bytes);
        }
    }
    Ok(files)
}

/// A ZIP of `files` (deflated), as `hearth plugin pack` and the tests make bundles.
pub fn pack(files: &BTreeMap<String, Vec<u8>>) -> Result<Vec<u8>, String> {
    use std::io::Write;
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (path, bytes) in files {
        out.start_file(path.as_str(), options)
            .map_err(|e| e.to_string())?;
        out.write_all(bytes).map_err(|e| e.to_string())?;
    }
    let cursor = out.finish().map_err(|e| e.to_string())?;
    Ok(cursor.into_inner())
}

/// A ZIP entry name that stays inside the bundle: relative, no `..`, no backslashes.
pub(crate) fn safe_name(name: &str) -> Result<(), String> {
    let bad = name.is_empty()
        || name.starts_with('/')
        || name.contains('\\')
        || name.contains('\0')
        || name.split('/').any(|part| part == ".." || part == ".")
        || name.as_bytes().get(1) == Some(&b':');
    if bad {
        return Err(format!(
            "the bundle entry \"{name}\" is not a plain relative path (absolute paths and `..` \
             are refused)"
        ));
    }
    Ok(())
}

/// Unpacks a ZIP in memory under the caps.
fn unzip(bytes: &[u8], limits: BundleLimits) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("the bundle is not a readable ZIP: {e}"))?;
    if archive.len() > limits.max_files {
        return Err(format!(
            "the bundle has more than {} entries",
            limits.max_files
        ));
    }
    let budget = limits
        .max_unpacked_bytes
        .min((bytes.len() as u64).saturating_mul(limits.max_ratio));
    let mut total = 0u64;
    let mut files = BTreeMap::new();
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| format!("the bundle's entry {i} is unreadable: {e}"))?;
        let name = entry
            .name()
            .map_err(|e| format!("the bundle's entry {i} has an unreadable name: {e}"))?
            .to_string();
        safe_name(&name)?;
        if entry.enclosed_name().is_none() {
            return Err(format!("the bundle entry \"{name}\" escapes the bundle"));
        }
        if entry.is_symlink() {
            return Err(format!(
                "the bundle entry \"{name}\" is a link; links are refused"
            ));
        }
        if entry.is_dir() {
            continue;
        }
        let mut data = Vec::new();
        let remaining = budget - total;
        (&mut entry)
            .take(remaining + 1)
            .read_to_end(&mut data)
            .map_err(|e| format!("the bundle entry \"{name}\" could not be decompressed: {e}"))?;
        total += data.len() as u64;
        if total > budget {
            return Err(format!(
                "the bundle decompresses to more than {budget} bytes (at most {} bytes and {}× \
                 the upload); refused as a possible ZIP bomb",
                limits.max_unpacked_bytes, limits.max_ratio
            ));
        }
        if files.insert(name.clone(), data).is_some() {
            return Err(format!("the bundle has \"{name}\" twice"));
        }
    }
    Ok(files)
}

/// The manifest, module and signature of unpacked files.
fn from_files(mut files: BTreeMap<String, Vec<u8>>, trusted: &[String]) -> Result<Bundle, String> {
    let manifest_bytes = files
        .get(MANIFEST_FILE)
        .ok_or("the bundle has no plugin.toml at its root")?;
    let text = std::str::from_utf8(manifest_bytes).map_err(|_| "plugin.toml is not UTF-8")?;
    let manifest = Manifest::parse(text)?;
    let signature = files.remove(SIG_FILE);
    let had_signature = signature.is_some();
    let signed_by = match signature {
        Some(sig) => signature::verify_files(&files, &sig, trusted)?,
        None => None,
    };
    let wasm = files
        .remove(&manifest.wasm)
        .ok_or_else(|| format!("the bundle has no {} (named by `wasm`)", manifest.wasm))?;
    if !wasm.starts_with(WASM_MAGIC) {
        return Err(format!("{} is not a WebAssembly module", manifest.wasm));
    }
    Ok(Bundle {
        sha256: hex::encode(Sha256::digest(&wasm)),
        wasm,
        assets: files,
        manifest,
        signed_by,
        had_signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_escape_are_refused() {
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a\\b",
            "C:/x",
            "./plugin.toml",
        ] {
            assert!(safe_name(bad).is_err(), "{bad}");
        }
        for ok in ["plugin.toml", "assets/logo.png", "a..b/c"] {
            safe_name(ok).unwrap();
        }
    }
}

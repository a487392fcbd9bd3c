//! Backup and restore of a whole instance, portable between the backends.
//!
//! An archive is a ZIP:
//! - `manifest.json` ([`Manifest`]): format, Hearth version, creation time, schema version,
//!   the source backend, each table's row count and columns, the sha256 and size of every
//!   other file;
//! - `config.toml`: the configuration with its secrets removed;
//! - `data/<table>.jsonl`: every row of every table in [`tables::TABLES`], one canonical JSON
//!   object per line, all read in one snapshot while the server keeps serving; uploaded
//!   files and plugin modules are rows (`document_blobs`, `plugins.module`);
//! - `database.sqlite` (SQLite instances): an online `VACUUM INTO` copy, for operators who
//!   restore with SQLite's own tools;
//! - `logs/recent.jsonl`: the process's last log records.
//!
//! FAISS indexes are never archived: they are rebuilt from the restored vectors. An import
//! ([`import`]) checks everything before it changes anything, then replaces every table in
//! one transaction.

pub mod dump;
pub mod export;
pub mod import;
pub mod tables;
pub mod values;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `manifest.json`'s `format`.
pub const FORMAT: &str = "hearth-backup";
/// The archive layout this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The manifest's name in the archive.
pub const MANIFEST: &str = "manifest.json";

/// What an archive holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The Hearth version that wrote it.
    pub version: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// The newest migration of the instance it came from.
    pub schema_version: String,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Each table's rows and columns.
    pub tables: BTreeMap<String, TableEntry>,
    /// Every other file of the archive.
    pub files: BTreeMap<String, FileEntry>,
}

/// One table in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableEntry {
    /// Rows in `data/<table>.jsonl`.
    pub rows: u64,
    /// The columns each row holds.
    pub columns: Vec<String>,
}

/// One file in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    /// Lower-case hex sha256 of its bytes.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
}

/// The path of a table's rows in an archive.
pub fn data_path(table: &str) -> String {
    format!("data/{table}.jsonl")
}

/// The configuration as an archive keeps it: every key that names a secret is removed and a
/// database URL loses its password.
pub fn scrubbed_config(config: &crate::config::Config) -> String {
    fn secret(key: &str) -> bool {
        ["secret", "password", "api_key", "private"]
            .iter()
            .any(|s| key.contains(s))
    }
    fn scrub(v: &mut toml::Value) {
        if let toml::Value::Table(t) = v {
            t.retain(|k, _| !secret(k));
            for (_, child) in t.iter_mut() {
                scrub(child);
            }
        }
    }
    let mut tree = match toml::Value::try_from(config) {
        Ok(t) => t,
        Err(e) => return format!("# the configuration could not be written: {e}\n"),
    };
    scrub(&mut tree);
    if let Some(toml::Value::String(url)) = tree.get_mut("database_url") {
        if let Ok(mut parsed) = url::Url::parse(url) {
            if parsed.password().is_some() {
                let _ = parsed.set_password(None);
                *url = parsed.to_string();
            }
        }
    }
    format!(
        "# Hearth configuration at backup time; secrets were removed.\n{}",
        toml::to_string_pretty(&tree).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archived_config_keeps_no_secret() {
        let c = crate::config::Config {
            jwt_secret: Some("s".repeat(40)),
            database_url: Some("postgres://hearth:hunter2@db/hearth".into()),
            ..Default::default()
        };
        let text = scrubbed_config(&c);
        assert!(!text.contains(&"s".repeat(40)), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("postgres://hearth@db/hearth"), "{text}");
        assert!(text.contains("bind"), "{text}");
    }
}

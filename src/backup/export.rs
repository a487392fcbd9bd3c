//! Writes an archive: every table read in one snapshot (writers keep going), the scrubbed
//! configuration, SQLite's own online copy, recent logs, and the manifest that lists them.

use super::tables::TABLES;
use super::{
    data_path, scrubbed_config, FileEntry, Manifest, TableEntry, FORMAT, FORMAT_VERSION, MANIFEST,
};
use crate::db::{Backend, Db};
use crate::db_run;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use zip::write::SimpleFileOptions;

type Zip = zip::ZipWriter<BufWriter<std::fs::File>>;

/// An archive written.
pub struct Exported {
    /// Where it is.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// What it holds.
    pub manifest: Manifest,
}

fn failed(what: &str, e: impl std::fmt::Display) -> AppError {
    AppError::internal(format!("backup: {what}: {e}"))
}

/// One file being written into the archive, hashed as it goes.
struct Entry<'a> {
    zip: &'a mut Zip,
    hash: Sha256,
    bytes: u64,
}

impl<'a> Entry<'a> {
    fn start(zip: &'a mut Zip, name: &str) -> AppResult<Self> {
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        zip.start_file(name, options).map_err(|e| failed(name, e))?;
        Ok(Entry {
            zip,
            hash: Sha256::new(),
            bytes: 0,
        })
    }

    fn finish(self) -> FileEntry {
        FileEntry {
            sha256: hex::encode(self.hash.finalize()),
            bytes: self.bytes,
        }
    }
}

impl Write for Entry<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.zip.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.zip.flush()
    }
}

/// Writes an archive of the instance to `path` (through a temporary file beside it, so a
/// failed export leaves nothing that looks like a backup).
pub async fn export(state: &AppState, path: &Path) -> AppResult<Exported> {
    let state = state.clone();
    let path = path.to_path_buf();
    let runtime = tokio::runtime::Handle::current();
    // Compression and file writes are blocking work; the database reads run on the runtime.
    tokio::task::spawn_blocking(move || {
        let partial = path.with_extension("partial");
        let outcome = write_archive(&state, &partial, &runtime).and_then(|manifest| {
            std::fs::rename(&partial, &path).map_err(|e| failed("rename", e))?;
            let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            Ok(Exported {
                path: path.clone(),
                bytes,
                manifest,
            })
        });
        if outcome.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        outcome
    })
    .await
    .map_err(|e| failed("task", e))?
}

fn write_archive(
    state: &AppState,
    path: &Path,
    runtime: &tokio::runtime::Handle,
) -> AppResult<Manifest> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| failed("folder", e))?;
    }
    let file = std::fs::File::create(path).map_err(|e| failed("create", e))?;
    let mut zip = zip::ZipWriter::new(BufWriter::new(file));
    let mut files = BTreeMap::new();

    let mut entry = Entry::start(&mut zip, "config.toml")?;
    entry
        .write_all(scrubbed_config(&state.config).as_bytes())
        .map_err(|e| failed("config.toml", e))?;
    files.insert("config.toml".to_string(), entry.finish());

    let tables = runtime.block_on(dump_tables(&state.db, &mut zip, &mut files))?;

    if state.db.backend() == Backend::Sqlite {
        let copy = path.with_extension("sqlite.partial");
        let outcome = sqlite_copy(&state.config.database_url(), &copy).and_then(|()| {
            let mut source = std::fs::File::open(&copy).map_err(|e| failed("sqlite copy", e))?;
            let mut entry = Entry::start(&mut zip, "database.sqlite")?;
            std::io::copy(&mut source, &mut entry).map_err(|e| failed("database.sqlite", e))?;
            files.insert("database.sqlite".to_string(), entry.finish());
            Ok(())
        });
        let _ = std::fs::remove_file(&copy);
        outcome?;
    }

    let mut entry = Entry::start(&mut zip, "logs/recent.jsonl")?;
    for record in crate::ops::logs::recent() {
        let line = serde_json::to_string(&record).map_err(|e| failed("logs", e))?;
        writeln!(entry, "{line}").map_err(|e| failed("logs", e))?;
    }
    files.insert("logs/recent.jsonl".to_string(), entry.finish());

    let manifest = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        version: env!("CARGO_PKG_VERSION").into(),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        schema_version: crate::db::schema_version(),
        backend: state.db.backend_name().into(),
        tables,
        files,
    };
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| failed(MANIFEST, e))?;
    let mut entry = Entry::start(&mut zip, MANIFEST)?;
    entry.write_all(&text).map_err(|e| failed(MANIFEST, e))?;
    let mut out = zip.finish().map_err(|e| failed("finish", e))?;
    out.flush().map_err(|e| failed("flush", e))?;
    out.get_ref().sync_all().map_err(|e| failed("sync", e))?;
    Ok(manifest)
}

/// Every table of the registry into `data/<table>.jsonl`, all read in one snapshot.
async fn dump_tables(
    db: &Db,
    zip: &mut Zip,
    files: &mut BTreeMap<String, FileEntry>,
) -> AppResult<BTreeMap<String, TableEntry>> {
    let backend = db.backend();
    let mut tables = BTreeMap::new();
    db_run!(db, snapshot, |conn| {
        for t in TABLES {
            let name = data_path(t.name);
            let mut entry = Entry::start(zip, &name)?;
            let rows =
                crate::backup::dump::read_table!(conn, backend, t, t.columns, |rows: Vec<
                    Map<String, Value>,
                >|
                 -> AppResult<
                    (),
                > {
                    for r in rows {
                        serde_json::to_writer(&mut entry, &r).map_err(|e| failed(&name, e))?;
                        entry.write_all(b"\n").map_err(|e| failed(&name, e))?;
                    }
                    Ok(())
                })?;
            files.insert(name, entry.finish());
            tables.insert(
                t.name.to_string(),
                TableEntry {
                    rows,
                    columns: t.columns.iter().map(|c| c.name.to_string()).collect(),
                },
            );
        }
        Ok::<_, AppError>(())
    })?;
    Ok(tables)
}

/// SQLite's online, consistent copy of the whole database file (`VACUUM INTO`), taken on a
/// connection of its own while the server keeps writing.
fn sqlite_copy(url: &str, target: &Path) -> AppResult<()> {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let source = url.trim_start_matches("sqlite://");
    let _ = std::fs::remove_file(target);
    let mut conn =
        diesel::SqliteConnection::establish(source).map_err(|e| failed("sqlite copy", e))?;
    conn.batch_execute("PRAGMA busy_timeout = 30000;")
        .map_err(|e| failed("sqlite copy", e))?;
    diesel::RunQueryDsl::execute(
        diesel::sql_query("VACUUM INTO ?")
            .bind::<diesel::sql_types::Text, _>(target.to_string_lossy().to_string()),
        &mut conn,
    )
    .map_err(|e| failed("sqlite copy", e))?;
    Ok(())
}

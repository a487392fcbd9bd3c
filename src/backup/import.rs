//! Reads an archive back: [`stage`] checks everything (paths, checksums, sizes, schema,
//! every row against its column) and unpacks the rows, [`plan`] says what would change,
//! [`apply`] replaces every table in one transaction. Nothing changes until `apply` commits.

use super::tables::{Column, Table, TABLES};
use super::values::{canonical, Bound};
use super::{data_path, Manifest, FORMAT, FORMAT_VERSION, MANIFEST};
use crate::db::{Backend, BackendSql, Db};
use crate::db_run;
use crate::error::{AppError, AppResult};
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

/// Entries an archive may hold.
const MAX_ENTRIES: usize = 1000;
/// The largest manifest read.
const MAX_MANIFEST: u64 = 16 * 1024 * 1024;
/// Bind parameters per INSERT (both backends take more; this keeps statements small).
const PARAMS_PER_INSERT: usize = 4000;
/// Bytes of values per INSERT.
const BYTES_PER_INSERT: usize = 8 * 1024 * 1024;

fn refused(message: impl Into<String>) -> AppError {
    AppError::validation("file", message)
}

/// An archive checked and unpacked, ready to plan and apply.
pub struct Staged {
    /// Its manifest.
    pub manifest: Manifest,
    /// The unpacked `data/*.jsonl` files.
    dir: tempfile::TempDir,
    /// Each table's keys in the archive (canonical JSON arrays).
    keys: BTreeMap<&'static str, HashSet<String>>,
}

impl Staged {
    fn rows_file(&self, table: &Table) -> Option<PathBuf> {
        self.manifest
            .tables
            .contains_key(table.name)
            .then(|| self.dir.path().join(format!("{}.jsonl", table.name)))
    }

    /// The archive's columns of a table, as the registry knows them.
    fn columns(&self, table: &Table) -> Vec<Column> {
        self.manifest
            .tables
            .get(table.name)
            .map(|t| {
                t.columns
                    .iter()
                    .filter_map(|c| table.column(c).copied())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Checks an archive and unpacks its rows under `work` (a temporary folder removed with the
/// returned value). Refusals are validation errors (400) naming the problem.
pub fn stage(archive: &Path, work: &Path, max_unpacked: u64) -> AppResult<Staged> {
    let file =
        std::fs::File::open(archive).map_err(|e| AppError::internal(format!("backup: {e}")))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| refused(format!("the archive is not a readable ZIP: {e}")))?;
    if zip.len() > MAX_ENTRIES {
        return Err(refused(format!(
            "the archive has more than {MAX_ENTRIES} entries"
        )));
    }
    let mut names = HashSet::new();
    for i in 0..zip.len() {
        let entry = zip
            .by_index(i)
            .map_err(|e| refused(format!("the archive's entry {i} is unreadable: {e}")))?;
        let name = entry
            .name()
            .map_err(|e| {
                refused(format!(
                    "the archive's entry {i} has an unreadable name: {e}"
                ))
            })?
            .to_string();
        crate::plugins::bundle::safe_name(&name).map_err(refused)?;
        if entry.enclosed_name().is_none() || entry.is_symlink() {
            return Err(refused(format!(
                "the archive entry \"{name}\" is a link or escapes the archive"
            )));
        }
        if entry.is_dir() {
            continue;
        }
        if !names.insert(name.clone()) {
            return Err(refused(format!("the archive has \"{name}\" twice")));
        }
    }
    let manifest = read_manifest(&mut zip)?;
    check_manifest(&manifest)?;
    for name in &names {
        if name != MANIFEST && !manifest.files.contains_key(name) {
            return Err(refused(format!(
                "\"{name}\" is in the archive but not in its manifest"
            )));
        }
    }
    let dir = tempfile::Builder::new()
        .prefix(".restore-")
        .tempdir_in(work)
        .map_err(|e| AppError::internal(format!("backup: {e}")))?;
    let mut budget = max_unpacked;
    for (name, expected) in &manifest.files {
        if !names.contains(name) {
            return Err(refused(format!(
                "the manifest lists \"{name}\" but the archive lacks it"
            )));
        }
        let mut entry = zip
            .by_name(name)
            .map_err(|e| refused(format!("\"{name}\" is unreadable: {e}")))?;
        let table = name
            .strip_prefix("data/")
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(super::tables::table);
        let mut sink: Box<dyn Write> = match table {
            Some(t) => Box::new(std::io::BufWriter::new(
                std::fs::File::create(dir.path().join(format!("{}.jsonl", t.name)))
                    .map_err(|e| AppError::internal(format!("backup: {e}")))?,
            )),
            None => Box::new(std::io::sink()),
        };
        let mut hash = Sha256::new();
        let mut read = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| refused(format!("\"{name}\" could not be decompressed: {e}")))?;
            if n == 0 {
                break;
            }
            read += n as u64;
            if read > expected.bytes || read > budget {
                return Err(refused(format!(
                    "\"{name}\" unpacks to more than its manifest says or than the {max_unpacked} \
                     bytes a restore may unpack; refused"
                )));
            }
            hash.update(&buf[..n]);
            sink.write_all(&buf[..n])
                .map_err(|e| AppError::internal(format!("backup: {e}")))?;
        }
        sink.flush()
            .map_err(|e| AppError::internal(format!("backup: {e}")))?;
        budget -= read;
        if read != expected.bytes || hex::encode(hash.finalize()) != expected.sha256 {
            return Err(refused(format!(
                "\"{name}\" does not match its manifest checksum (a damaged or altered archive)"
            )));
        }
    }
    let mut staged = Staged {
        manifest,
        dir,
        keys: BTreeMap::new(),
    };
    for t in TABLES {
        let Some(path) = staged.rows_file(t) else {
            continue;
        };
        let columns = staged.columns(t);
        let mut keys = HashSet::new();
        for row in rows(&path, t, &columns)? {
            if !keys.insert(key_of(t, &row?)) {
                return Err(refused(format!("{}: a key appears twice", t.name)));
            }
        }
        let declared = staged.manifest.tables.get(t.name).map_or(0, |e| e.rows);
        if keys.len() as u64 != declared {
            return Err(refused(format!(
                "{} holds {} rows, its manifest says {declared}",
                keys.len(),
                data_path(t.name)
            )));
        }
        staged.keys.insert(t.name, keys);
    }
    Ok(staged)
}

fn read_manifest(zip: &mut zip::ZipArchive<std::fs::File>) -> AppResult<Manifest> {
    let entry = zip
        .by_name(MANIFEST)
        .map_err(|_| refused("the archive has no manifest.json"))?;
    let mut text = Vec::new();
    entry
        .take(MAX_MANIFEST + 1)
        .read_to_end(&mut text)
        .map_err(|e| refused(format!("manifest.json could not be decompressed: {e}")))?;
    if text.len() as u64 > MAX_MANIFEST {
        return Err(refused("manifest.json is too large"));
    }
    serde_json::from_slice(&text).map_err(|e| refused(format!("manifest.json: {e}")))
}

/// Refuses what this build cannot restore: another format, a newer schema, unknown tables
/// or columns, files the data needs but the manifest lacks.
fn check_manifest(m: &Manifest) -> AppResult<()> {
    if m.format != FORMAT || m.format_version == 0 || m.format_version > FORMAT_VERSION {
        return Err(refused(format!(
            "not a Hearth backup this version reads (format {} {})",
            m.format, m.format_version
        )));
    }
    let ours = crate::db::schema_version();
    let theirs = &m.schema_version;
    if theirs.is_empty() || !theirs.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refused(format!(
            "schema version \"{theirs}\" is not a migration version"
        )));
    }
    if (theirs.len(), theirs.as_str()) > (ours.len(), ours.as_str()) {
        return Err(refused(format!(
            "the archive comes from a newer schema ({theirs}) than this server's ({ours}); \
             upgrade Hearth first"
        )));
    }
    for (name, entry) in &m.tables {
        let table = super::tables::table(name)
            .ok_or_else(|| refused(format!("the archive has an unknown table \"{name}\"")))?;
        for c in &entry.columns {
            if table.column(c).is_none() {
                return Err(refused(format!("{name} has an unknown column \"{c}\"")));
            }
        }
        for k in table.key {
            if !entry.columns.iter().any(|c| c == k) {
                return Err(refused(format!("{name} lacks its key column \"{k}\"")));
            }
        }
        if !m.files.contains_key(&data_path(name)) {
            return Err(refused(format!(
                "the manifest lists no {}",
                data_path(name)
            )));
        }
    }
    Ok(())
}

/// The rows of an unpacked table file, in canonical form.
fn rows<'a>(
    path: &Path,
    table: &'a Table,
    columns: &'a [Column],
) -> AppResult<impl Iterator<Item = AppResult<Map<String, Value>>> + Send + 'a> {
    let file = std::fs::File::open(path).map_err(|e| AppError::internal(format!("backup: {e}")))?;
    Ok(std::io::BufReader::new(file)
        .lines()
        .enumerate()
        .map(move |(i, line)| {
            let bad =
                |why: String| refused(format!("{} line {}: {why}", data_path(table.name), i + 1));
            let line = line.map_err(|e| bad(e.to_string()))?;
            let mut object = match serde_json::from_str::<Value>(&line) {
                Ok(Value::Object(o)) => o,
                _ => return Err(bad("not a JSON object".into())),
            };
            let mut row = Map::with_capacity(columns.len());
            for c in columns {
                let v = object
                    .remove(c.name)
                    .ok_or_else(|| bad(format!("no \"{}\"", c.name)))?;
                row.insert(c.name.to_string(), canonical(c, v).map_err(bad)?);
            }
            if let Some(extra) = object.keys().next() {
                return Err(bad(format!("\"{extra}\" is not a column of the manifest")));
            }
            Ok(row)
        }))
}

/// A row's key as one comparable string.
fn key_of(table: &Table, row: &Map<String, Value>) -> String {
    let key: Vec<&Value> = table
        .key
        .iter()
        .map(|k| row.get(*k).unwrap_or(&Value::Null))
        .collect();
    serde_json::to_string(&key).unwrap_or_default()
}

/// What an import would change in one table.
#[derive(Debug, Clone, Serialize)]
pub struct TablePlan {
    /// The table.
    pub table: &'static str,
    /// Rows in the archive.
    pub rows: u64,
    /// Archive rows whose key is new here.
    pub create: u64,
    /// Archive rows replacing a row with the same key.
    pub replace: u64,
    /// Rows here that the archive lacks (removed).
    pub remove: u64,
}

/// What an import would do.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Where the archive came from: `{version, created_at, backend, schema_version}`.
    pub source: Value,
    /// Per table, in load order.
    pub tables: Vec<TablePlan>,
    /// Sessions ended (everyone signs in again).
    pub sessions_ended: u64,
    /// Collections whose vector indexes are rebuilt.
    pub indexes_rebuilt: u64,
    /// Plugins the archive installs.
    pub plugins: Vec<String>,
}

/// Compares the archive with the database now.
pub async fn plan(db: &Db, staged: &Staged) -> AppResult<Plan> {
    let backend = db.backend();
    let mut tables = Vec::new();
    let sessions: i64 = db_run!(db, snapshot, |conn| {
        for t in TABLES {
            let archive = staged.keys.get(t.name);
            let mut here: HashSet<String> = HashSet::new();
            let key_columns = t.key_columns();
            crate::backup::dump::read_table!(
                conn,
                backend,
                t,
                &key_columns,
                |rows: Vec<Map<String, Value>>| -> AppResult<()> {
                    here.extend(rows.iter().map(|r| key_of(t, r)));
                    Ok(())
                }
            )?;
            let rows = archive.map_or(0, |a| a.len() as u64);
            let replace =
                archive.map_or(0, |a| a.iter().filter(|k| here.contains(*k)).count() as u64);
            tables.push(TablePlan {
                table: t.name,
                rows,
                create: rows - replace,
                replace,
                remove: here.len() as u64 - replace,
            });
        }
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        crate::db::schema::sessions::table
            .filter(crate::db::schema::sessions::revoked_at.is_null())
            .count()
            .get_result::<i64>(conn)
            .await
            .map_err(AppError::from)
    })?;
    let mut plugins = Vec::new();
    if let Some(t) = super::tables::table("plugins") {
        if let Some(path) = staged.rows_file(t) {
            let columns = staged.columns(t);
            for row in rows(&path, t, &columns)? {
                let row = row?;
                let text = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                plugins.push(format!("{} {}", text("name"), text("version")));
            }
        }
    }
    let m = &staged.manifest;
    Ok(Plan {
        source: serde_json::json!({
            "version": m.version,
            "created_at": m.created_at,
            "backend": m.backend,
            "schema_version": m.schema_version,
        }),
        indexes_rebuilt: staged.keys.get("collections").map_or(0, |k| k.len() as u64),
        tables,
        sessions_ended: sessions.max(0) as u64,
        plugins,
    })
}

/// A boxed raw query for `conn`'s backend (pins the backend type for the binds).
fn query_for<'f, C: diesel_async::AsyncConnection>(
    _conn: &C,
    sql: String,
) -> BoxedSqlQuery<'f, C::Backend, SqlQuery> {
    diesel::sql_query(sql).into_boxed()
}

/// `INSERT INTO t (cols) VALUES (…), (…)` for `rows` rows.
fn insert_sql(backend: Backend, table: &Table, columns: &[Column], rows: usize) -> String {
    let names: Vec<String> = columns.iter().map(|c| format!("\"{}\"", c.name)).collect();
    let mut n = 0;
    let groups: Vec<String> = (0..rows)
        .map(|_| {
            let params: Vec<String> = columns
                .iter()
                .map(|_| {
                    n += 1;
                    match backend {
                        Backend::Sqlite => "?".to_string(),
                        Backend::Postgres => format!("${n}"),
                    }
                })
                .collect();
            format!("({})", params.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO \"{}\" ({}) VALUES {}",
        table.name,
        names.join(", "),
        groups.join(", ")
    )
}

/// Replaces every table with the archive's rows in one transaction (all or nothing). On
/// PostgreSQL the tables are locked against other writers for its duration. Collections'
/// index versions move past any this instance had, so every process rebuilds its indexes.
pub async fn apply(db: &Db, staged: &Staged) -> AppResult<()> {
    let backend = db.backend();
    let lock = match backend {
        Backend::Postgres => {
            let names: Vec<String> = TABLES.iter().map(|t| format!("\"{}\"", t.name)).collect();
            format!(
                "LOCK TABLE sessions, {} IN EXCLUSIVE MODE",
                names.join(", ")
            )
        }
        Backend::Sqlite => "SELECT 1".to_string(),
    };
    db_run!(db, write, |conn| {
        use crate::db::schema::collections;
        use diesel::prelude::*;
        use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
        conn.batch_execute(&lock).await?;
        let old_version: Option<i64> = collections::table
            .select(diesel::dsl::max(collections::index_version))
            .first(conn)
            .await?;
        diesel::delete(crate::db::schema::sessions::table)
            .execute(conn)
            .await?;
        for t in TABLES.iter().rev() {
            diesel::sql_query(format!("DELETE FROM \"{}\"", t.name))
                .execute(conn)
                .await?;
        }
        for t in TABLES {
            let Some(path) = staged.rows_file(t) else {
                continue;
            };
            let columns = staged.columns(t);
            let per_insert = (PARAMS_PER_INSERT / columns.len().max(1)).max(1);
            let mut batch: Vec<Vec<Bound>> = Vec::new();
            let mut weight = 0usize;
            let mut source = rows(&path, t, &columns)?.peekable();
            while let Some(row) = source.next() {
                let row = row?;
                let mut values = Vec::with_capacity(columns.len());
                for c in &columns {
                    let v = Bound::from_canonical(c, row.get(c.name).unwrap_or(&Value::Null))
                        .map_err(refused)?;
                    weight += v.weight();
                    values.push(v);
                }
                batch.push(values);
                let last = source.peek().is_none();
                if last || batch.len() >= per_insert || weight >= BYTES_PER_INSERT {
                    let full = std::mem::take(&mut batch);
                    weight = 0;
                    let mut q = query_for(conn, insert_sql(backend, t, &columns, full.len()));
                    for v in full.into_iter().flatten() {
                        q = v.bind(q);
                    }
                    q.execute(conn).await?;
                }
            }
            if t.generated_id {
                conn.follow_ids(t.name).await?;
            }
        }
        let bump = old_version.unwrap_or(0).max(0) + 1;
        diesel::update(collections::table)
            .set(collections::index_version.eq(collections::index_version + bump))
            .execute(conn)
            .await?;
        Ok::<_, AppError>(())
    })
}

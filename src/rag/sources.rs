//! Watched folders (`[rag] source_dirs`): their files are documents of the admin's `source`
//! collection, readable by every user. Indexing walks the folders: new files are stored and
//! queued, files whose bytes changed (sha256) replace their document, files gone from disk
//! lose theirs; a full run queues every file again. `hearth ingest DIR` feeds one folder into
//! a named collection the same way.

use crate::auth::Caller;
use crate::db::enums::{CollectionKind, DocumentStatus};
use crate::db::models::{Collection, Document};
use crate::db::schema::documents;
use crate::db_run;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::rag::{ingest, sniff};
use crate::service::documents as docs;
use crate::state::AppState;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Name of the watched folders' collection.
pub const COLLECTION: &str = "sources";
/// Files visited per folder at most (a runaway tree is cut, not followed for ever).
const MAX_FILES: usize = 100_000;

/// What an indexing pass did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Pass {
    /// Files queued for ingestion (new, changed, or all of them on a full pass).
    pub indexed: usize,
    /// Files left as they were (same bytes).
    pub unchanged: usize,
    /// Files skipped: unsupported type, too large, unreadable.
    pub skipped: usize,
    /// Documents removed because their file is gone.
    pub removed: usize,
}

/// Indexes the watched folders for an admin. `full`: every file is ingested again.
pub async fn index(state: &AppState, caller: &Caller, full: bool) -> AppResult<Pass> {
    caller.require_admin()?;
    let collection = docs::ensure(
        state,
        caller.user_id(),
        CollectionKind::Source,
        COLLECTION.to_string(),
        None,
        None,
    )
    .await?;
    let dirs = state.config.rag.source_dirs.clone();
    let (pass, _) = index_into(state, caller, &collection, dirs, full, true).await?;
    Ok(pass)
}

/// `hearth ingest DIR`: the files under `dir` into the caller's named collection
/// `collection`, labelled like the watched folders' files. It adds and replaces documents,
/// never removes one (the folder may be one of several fed into that collection). Returns
/// what it did and the documents it queued.
pub async fn ingest_dir(
    state: &AppState,
    caller: &Caller,
    dir: PathBuf,
    collection: String,
    full: bool,
) -> AppResult<(Pass, Vec<i64>)> {
    if !dir.is_dir() {
        return Err(AppError::new(
            ErrorCode::BadRequest,
            format!("{} is not a folder", dir.display()),
        ));
    }
    let collection =
        docs::writable_target(state, caller, &docs::Target::Collection(collection)).await?;
    index_into(state, caller, &collection, vec![dir], full, false).await
}

/// Stores the files under `dirs` into `collection`: new files, files whose bytes changed,
/// every file when `full`; `remove_missing`: documents whose file is gone are deleted.
async fn index_into(
    state: &AppState,
    caller: &Caller,
    collection: &Collection,
    dirs: Vec<PathBuf>,
    full: bool,
    remove_missing: bool,
) -> AppResult<(Pass, Vec<i64>)> {
    let files = tokio::task::spawn_blocking(move || walk(&dirs))
        .await
        .map_err(|e| AppError::internal(format!("walking the folders: {e}")))?;
    let existing: HashMap<String, Document> = {
        let db = &state.db;
        let cid = collection.id;
        let rows: Vec<Document> = db_run!(db, read, |conn| documents::table
            .filter(documents::collection_id.eq(cid))
            .select(Document::as_select())
            .load(conn)
            .await
            .map_err(AppError::from))?;
        rows.into_iter()
            .filter_map(|d| d.source_path.clone().map(|p| (p, d)))
            .collect()
    };
    let mut pass = Pass::default();
    let mut queued = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (label, path) in files {
        seen.insert(label.clone());
        let Ok(meta) = tokio::fs::metadata(&path).await else {
            pass.skipped += 1;
            continue;
        };
        if meta.len() > state.config.rag.max_upload_bytes {
            pass.skipped += 1;
            continue;
        }
        let Ok(bytes) = tokio::fs::read(&path).await else {
            pass.skipped += 1;
            continue;
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Ok(sniffed) = sniff::sniff(&bytes, &name) else {
            pass.skipped += 1;
            continue;
        };
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        if let Some(old) = existing.get(&label) {
            if old.sha256 == sha {
                if full && old.status != DocumentStatus::Stored {
                    ingest::requeue(state, caller, old).await?;
                    queued.push(old.id);
                    pass.indexed += 1;
                } else {
                    pass.unchanged += 1;
                }
                continue;
            }
            docs::delete(state, caller, old.id).await?;
        }
        let stored = docs::store(
            state,
            caller,
            collection,
            docs::clean_filename(&name),
            bytes,
            sniffed,
            json!({}),
            Some(label),
        )
        .await?;
        if stored.existing {
            // The same bytes under another path: one document serves both.
            pass.unchanged += 1;
        } else {
            if stored.document.status != DocumentStatus::Stored {
                queued.push(stored.document.id);
            }
            pass.indexed += 1;
        }
    }
    if remove_missing {
        for (label, doc) in &existing {
            if !seen.contains(label) {
                docs::delete(state, caller, doc.id).await?;
                pass.removed += 1;
            }
        }
    }
    Ok((pass, queued))
}

/// Every regular file under the folders, labelled `<folder name>/<relative path>`; hidden
/// entries and symbolic links are not followed.
fn walk(dirs: &[PathBuf]) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for dir in dirs {
        let root = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "source".into());
        let mut stack = vec![dir.clone()];
        let mut count = 0;
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                let Ok(kind) = e.file_type() else { continue };
                let path = e.path();
                if kind.is_dir() {
                    stack.push(path);
                } else if kind.is_file() {
                    count += 1;
                    if count > MAX_FILES {
                        break;
                    }
                    let rel = path.strip_prefix(dir).unwrap_or(Path::new(&name));
                    out.push((format!("{root}/{}", rel.to_string_lossy()), path));
                }
            }
        }
    }
    out.sort();
    out
}

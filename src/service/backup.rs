//! Backup and restore of the whole instance (admins only): the doors (`/backup/export`,
//! `/backup/import`), the CLI (`hearth backup`) and the `backup` job kind all come here.
//! The archive format is in [`crate::backup`].

use crate::auth::Caller;
use crate::backup::{export as archive_out, import as archive_in};
use crate::error::{AppError, AppResult};
use crate::events::Event;
use crate::state::AppState;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

pub use crate::backup::export::Exported;

/// One restore at a time in this process (on PostgreSQL the import's table locks also
/// serialise processes).
static RESTORING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The folder archives are written to and staged in.
pub fn work_dir(state: &AppState) -> PathBuf {
    state.config.backup.dir(&state.config.data_dir)
}

/// Writes an archive of the instance to a new file in the backup folder, for the caller
/// to send and delete.
pub async fn export(state: &AppState, caller: &Caller) -> AppResult<Exported> {
    caller.require_admin()?;
    let name = format!(".export-{}.zip", uuid::Uuid::new_v4().simple());
    export_to(state, &work_dir(state).join(name)).await
}

/// Writes an archive to `path` (the CLI and the job kind; no caller to check).
pub async fn export_to(state: &AppState, path: &Path) -> AppResult<Exported> {
    let out = archive_out::export(state, path).await?;
    tracing::info!(
        path = %out.path.display(),
        bytes = out.bytes,
        "backup written"
    );
    Ok(out)
}

/// Checks an uploaded archive and, unless `dry_run`, restores it. Answers seed 003's
/// `{version, plan, dry_run}`.
pub async fn import(
    state: &AppState,
    caller: &Caller,
    archive: &Path,
    dry_run: bool,
) -> AppResult<Value> {
    caller.require_admin()?;
    import_from(state, archive, dry_run).await
}

/// [`import`] without a caller (the CLI).
pub async fn import_from(state: &AppState, archive: &Path, dry_run: bool) -> AppResult<Value> {
    let _one = RESTORING.lock().await;
    let work = work_dir(state);
    std::fs::create_dir_all(&work).map_err(|e| AppError::internal(format!("backup: {e}")))?;
    let max = state.config.backup.max_unpacked_bytes;
    let path = archive.to_path_buf();
    let staged = tokio::task::spawn_blocking(move || archive_in::stage(&path, &work, max))
        .await
        .map_err(|e| AppError::internal(format!("backup: {e}")))??;
    let plan = archive_in::plan(&state.db, &staged).await?;
    if !dry_run {
        archive_in::apply(&state.db, &staged).await?;
        after_restore(state);
        tracing::warn!(
            from = %staged.manifest.created_at,
            backend = %staged.manifest.backend,
            "backup restored: every table replaced, every session ended"
        );
    }
    Ok(json!({
        "version": staged.manifest.version,
        "dry_run": dry_run,
        "plan": plan,
    }))
}

/// Once the tables were replaced: this process forgets its vector indexes at once (the next
/// search must not use an index of the data replaced); then every process, this one
/// included, rebuilds them, converges its plugins and ends its streams on the bus's
/// `Restored`.
fn after_restore(state: &AppState) {
    state.rag.vectors.drop_all();
    state.events.publish(Event::Restored);
}

/// Deletes all but the newest `keep` archives a scheduled backup wrote into `dir`.
pub fn prune(dir: &Path, keep: usize) -> usize {
    if keep == 0 {
        return 0;
    }
    let mut archives: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("hearth-") && n.ends_with(".zip"))
                })
                .collect()
        })
        .unwrap_or_default();
    // Names carry the UTC time, so the newest sort last.
    archives.sort();
    let excess = archives.len().saturating_sub(keep);
    archives
        .iter()
        .take(excess)
        .filter(|p| std::fs::remove_file(p).is_ok())
        .count()
}

/// The name a scheduled backup gets: `hearth-20261201-031500.zip` (UTC).
pub fn archive_name() -> String {
    format!(
        "hearth-{}.zip",
        chrono::Utc::now().format("%Y%m%d-%H%M%S%.3f")
    )
}

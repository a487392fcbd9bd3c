//! One server per SQLite database. The caches in front of SQLite (answers, session checks)
//! are only correct while a single process writes, so `hearth serve` holds an exclusive lock
//! on `<database>.lock` for as long as it runs, and every other command that opens the same
//! file (a second server, `hearth migrate`, `hearth user create`) is refused while it does.
//! PostgreSQL needs no lock: processes there share no cache and exchange events.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Held for the life of a process that opened a SQLite database; dropping it unlocks.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock beside the SQLite file at `db_path`, or says which process holds it.
    pub fn acquire(db_path: &Path) -> anyhow::Result<Self> {
        let mut name = db_path.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another process".to_string()
                } else {
                    format!("process {holder}")
                };
                anyhow::bail!(
                    "{} is in use by a running Hearth server ({who}). Stop it first, or make \
                     this change through its API; two processes on one SQLite file would \
                     serve stale cached answers.",
                    db_path.display()
                );
            }
            Err(TryLockError::Error(e)) => {
                anyhow::bail!("cannot lock {}: {e}", path.display())
            }
        }
        // Who holds it, for the message above; the lock itself is what counts.
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "{}", std::process::id())?;
        file.flush()?;
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

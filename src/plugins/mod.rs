//! The WebAssembly plugin host (Extism).
//!
//! - [`manifest`]: `plugin.toml`, validated (unknown keys are errors).
//! - [`bundle`]: an upload (ZIP, folder or bare module) read defensively into a bundle.
//! - [`signature`]: ed25519 signatures over a bundle's digest list.
//! - [`pool`]: one version's compiled module and its instances, limits, crash accounting.
//! - [`host`]: the host functions (key-value, log, emit, search) and [`net`] (HTTP).
//! - [`schema`]: the JSON-schema subset tool arguments are checked against.
//!
//! The database says what each plugin should be ([`crate::db::enums::PluginState`]); every
//! process converges to it ([`PluginHost::converge`]) after its own changes, on the bus's
//! `PluginChanged` hints from other processes, and periodically. Module files live under
//! `<data_dir>/plugins/<name>/<version>-<sha256 prefix>/`, written before the row names them.

pub mod bundle;
pub mod host;
pub mod manifest;
pub mod net;
pub mod pool;
pub mod schema;
pub mod signature;

use crate::db::enums::PluginState;
use crate::db::models::PluginRow;
use crate::db::schema::plugins;
use crate::db_run;
use crate::error::{AppError, AppResult};
use crate::events::Event;
use crate::state::AppState;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use manifest::Manifest;
use pool::{CallLimits, Pool};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// The running plugins of this process.
pub struct PluginHost {
    pools: RwLock<HashMap<String, Arc<Pool>>>,
    root: PathBuf,
    converging: tokio::sync::Mutex<()>,
}

impl PluginHost {
    /// A host with nothing running; files under `<data_dir>/plugins`.
    pub fn new(config: &crate::config::Config) -> PluginHost {
        PluginHost {
            pools: RwLock::new(HashMap::new()),
            root: config.data_dir.join("plugins"),
            converging: tokio::sync::Mutex::new(()),
        }
    }

    /// The pool of a running plugin.
    pub fn pool(&self, name: &str) -> Option<Arc<Pool>> {
        self.pools.read().ok()?.get(name).cloned()
    }

    /// Every running plugin's pool.
    pub fn running(&self) -> Vec<Arc<Pool>> {
        self.pools
            .read()
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Where a version's files live.
    pub fn files_dir(&self, name: &str, version: &str, sha256: &str) -> PathBuf {
        let prefix = sha256.get(..16).unwrap_or(sha256);
        self.root.join(name).join(format!("{version}-{prefix}"))
    }

    /// The folder of every version of a plugin.
    pub fn plugin_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Writes a bundle's module and other files (through a temporary folder, so a
    /// half-written version is never read).
    pub fn store_files(&self, b: &bundle::Bundle) -> std::io::Result<PathBuf> {
        let dir = self.files_dir(&b.manifest.name, &b.manifest.version, &b.sha256);
        if dir.join(&b.manifest.wasm).exists() {
            return Ok(dir);
        }
        let parent = self.plugin_dir(&b.manifest.name);
        std::fs::create_dir_all(&parent)?;
        let tmp = parent.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&tmp)?;
        let write = || -> std::io::Result<()> {
            for (path, bytes) in &b.assets {
                let target = tmp.join(path);
                if let Some(p) = target.parent() {
                    std::fs::create_dir_all(p)?;
                }
                std::fs::write(target, bytes)?;
            }
            std::fs::write(tmp.join(&b.manifest.wasm), &b.wasm)?;
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::rename(&tmp, &dir)
        };
        let outcome = write();
        if outcome.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        outcome.map(|_| dir)
    }

    /// Reads an installed version's module: from the data dir, or (in a process that has no
    /// copy yet, another machine sharing the PostgreSQL database) from the database, keeping a
    /// copy. Either way the bytes must be the ones recorded.
    pub async fn load_module(
        &self,
        state: &AppState,
        row: &PluginRow,
    ) -> Result<(Manifest, Vec<u8>), String> {
        let manifest: Manifest = serde_json::from_str(&row.manifest)
            .map_err(|e| format!("the stored manifest is unreadable: {e}"))?;
        let dir = self.files_dir(&row.name, &row.version, &row.sha256);
        let path = dir.join(&manifest.wasm);
        let wasm = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let bytes = module_from_db(state, row.id).await.map_err(|e| {
                    format!("the module cannot be read from the database: {}", e.message)
                })?;
                let cached =
                    std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, &bytes));
                if let Err(e) = cached {
                    tracing::warn!(plugin = %row.name, error = %e, "module not cached under the data dir");
                }
                bytes
            }
            Err(e) => return Err(format!("the module {} cannot be read: {e}", path.display())),
        };
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&wasm));
        if sha != row.sha256 {
            return Err(format!(
                "the module {} changed (sha256 {sha}, installed {})",
                path.display(),
                row.sha256
            ));
        }
        Ok((manifest, wasm))
    }

    /// Compiles an installed version into a fresh pool (on the blocking pool).
    pub async fn build_pool(&self, state: &AppState, row: &PluginRow) -> Result<Arc<Pool>, String> {
        let (manifest, wasm) = self.load_module(state, row).await?;
        let cfg = state.config.plugins.clone();
        let (id, sha) = (row.id, row.sha256.clone());
        tokio::task::spawn_blocking(move || {
            let limits = CallLimits::of(&manifest, &cfg);
            let compiled = pool::compile(&manifest, &wasm, limits)?;
            pool::check_exports(&compiled, &manifest)?;
            Ok(Arc::new(Pool::new(id, manifest, sha, compiled, &cfg)))
        })
        .await
        .map_err(|e| format!("compiling panicked: {e}"))?
    }

    /// Stops this process's instances of a plugin (calls in flight finish on them).
    pub fn unload(&self, name: &str) {
        if let Ok(mut pools) = self.pools.write() {
            pools.remove(name);
        }
    }

    fn install_pool(&self, pool: Arc<Pool>) {
        if let Ok(mut pools) = self.pools.write() {
            pools.insert(pool.name.clone(), pool);
        }
    }

    /// Brings this process's instances in line with the database: starts what should run
    /// (recompiling when the version changed, or for every plugin in `reload`), stops what
    /// should not. A plugin that cannot start is marked `failed` with the reason.
    pub async fn converge(&self, state: &AppState, reload: Option<&str>) -> AppResult<()> {
        let _one_at_a_time = self.converging.lock().await;
        let db = &state.db;
        let rows: Vec<PluginRow> = db_run!(db, read, |conn| plugins::table
            .select(PluginRow::as_select())
            .load(conn)
            .await
            .map_err(AppError::from))?;
        let wanted: HashMap<&str, &PluginRow> = rows
            .iter()
            .filter(|r| r.state == PluginState::Running)
            .map(|r| (r.name.as_str(), r))
            .collect();
        let loaded: Vec<Arc<Pool>> = self.running();
        for pool in &loaded {
            if !wanted.contains_key(pool.name.as_str()) {
                self.unload(&pool.name);
            }
        }
        for (name, row) in wanted {
            let current = self.pool(name);
            let fresh = current.as_ref().is_some_and(|p| {
                p.sha256 == row.sha256 && p.version == row.version && reload != Some(name)
            });
            if fresh {
                continue;
            }
            match self.build_pool(state, row).await {
                Ok(pool) => self.install_pool(pool),
                Err(reason) => {
                    tracing::warn!(plugin = name, %reason, "plugin failed to start");
                    self.unload(name);
                    mark_failed(state, row.id, &row.sha256, &reason).await?;
                }
            }
        }
        Ok(())
    }
}

/// The module bytes the database holds for a plugin.
async fn module_from_db(state: &AppState, id: i64) -> AppResult<Vec<u8>> {
    let db = &state.db;
    db_run!(db, read, |conn| plugins::table
        .find(id)
        .select(plugins::module)
        .first::<Vec<u8>>(conn)
        .await
        .map_err(AppError::from))
}

/// Marks a plugin `failed` (if it is still the version that failed) and says so on the bus.
pub async fn mark_failed(state: &AppState, id: i64, sha256: &str, reason: &str) -> AppResult<()> {
    let db = &state.db;
    let now = chrono::Utc::now().naive_utc();
    let row: Option<PluginRow> = db_run!(db, write, |conn| diesel::update(
        plugins::table.filter(
            plugins::id
                .eq(id)
                .and(plugins::sha256.eq(sha256))
                .and(plugins::state.ne(PluginState::Disabled))
        )
    )
    .set((
        plugins::state.eq(PluginState::Failed),
        plugins::failure.eq(Some(reason)),
        plugins::updated_at.eq(now),
    ))
    .returning(PluginRow::as_returning())
    .get_result(conn)
    .await
    .optional()
    .map_err(AppError::from))?;
    if let Some(row) = row {
        state.plugins.unload(&row.name);
        state.events.publish(Event::PluginChanged {
            name: row.name,
            state: PluginState::Failed.as_str().into(),
            failure: row.failure,
            reload: false,
        });
    }
    Ok(())
}

/// Starts what the plugin host runs in the background of a serving process: the first
/// start's bundled plugins, the enabled plugins, and convergence on other processes' changes
/// and every 30 seconds.
pub async fn start(state: &AppState) -> anyhow::Result<()> {
    crate::service::plugins::install_bundled(state).await?;
    state
        .plugins
        .converge(state, None)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let s = state.clone();
    state.background.spawn_service(async move {
        let mut events = s.events.subscribe();
        let stop = s.background.stopping().clone();
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
        loop {
            let reload = tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => None,
                received = events.recv() => match received {
                    Ok(Event::PluginChanged { name, reload, .. }) => Some(reload.then_some(name)),
                    Ok(Event::Restored) => None,
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => None,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
            };
            let name = reload.flatten();
            if let Err(e) = s.plugins.converge(&s, name.as_deref()).await {
                tracing::warn!(error = %e.message, "plugin convergence failed");
            }
        }
    });
    Ok(())
}

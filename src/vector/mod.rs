//! Vector indexes: one FAISS index per collection and embedding model, a cache of the
//! `chunk_vectors` table.
//!
//! The database is the truth. Every change of a collection's vectors bumps its
//! `index_version` in the same transaction; an index remembers the version it reflects, and
//! a search first brings it up to date when the collection moved on (vectors added since,
//! vectors gone). So every process on one database converges without trusting the event bus,
//! which only makes it catch up early. Indexes are persisted under `<data_dir>/vectors/` with
//! their version and reloaded at start; a missing or unreadable file is rebuilt from the
//! database (`hearth reindex` forces it).
//!
//! Exact inner product (`Flat`) by default; above `rag.hnsw_above` vectors a collection
//! switches to HNSW. Vectors are unit length, so inner product is cosine similarity. FAISS
//! work runs on blocking threads.

pub mod store;

use crate::error::{AppError, AppResult};
use crate::state::AppState;
use faiss::index::IndexImpl;
use faiss::{IdMap, Idx, Index, MetricType};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub use store::{decode_vector, encode_vector};

/// How an index searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexKind {
    /// Exact: every vector is scored.
    Flat,
    /// Approximate graph search, for large collections.
    Hnsw,
}

/// Index settings (from `[rag]`).
#[derive(Debug, Clone)]
pub struct IndexSettings {
    /// A collection with more vectors than this is searched with HNSW.
    pub hnsw_above: usize,
    /// HNSW neighbours per node.
    pub hnsw_m: usize,
    /// HNSW candidates kept while searching (recall against speed).
    pub hnsw_ef_search: usize,
}

/// A FAISS index over one collection's vectors of one model.
pub struct CollectionIndex {
    index: IdMap<IndexImpl>,
    kind: IndexKind,
    /// The collection's `index_version` this index reflects.
    version: i64,
    dims: u32,
}

impl CollectionIndex {
    /// An empty index of `kind`.
    pub fn new(kind: IndexKind, dims: u32, settings: &IndexSettings) -> AppResult<Self> {
        let description = match kind {
            IndexKind::Flat => "Flat".to_string(),
            IndexKind::Hnsw => format!("HNSW{}", settings.hnsw_m.max(4)),
        };
        let inner = faiss::index_factory(dims, description, MetricType::InnerProduct)
            .map_err(faiss_error)?;
        if kind == IndexKind::Hnsw {
            let space = faiss::index::autotune::ParameterSpace::new().map_err(faiss_error)?;
            space
                .set_index_parameter(&inner, "efSearch", settings.hnsw_ef_search as f64)
                .map_err(faiss_error)?;
        }
        Ok(Self {
            index: IdMap::new(inner).map_err(faiss_error)?,
            kind,
            version: -1,
            dims,
        })
    }

    /// Vectors in the index.
    pub fn len(&self) -> usize {
        self.index.ntotal() as usize
    }

    /// Whether it holds no vector.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids (chunk ids) it holds.
    fn ids(&self) -> HashSet<i64> {
        // faiss-rs builds the slice from the map's data pointer, which is null while empty.
        if self.is_empty() {
            return HashSet::new();
        }
        self.index
            .id_map()
            .iter()
            .filter_map(|i| i.get())
            .map(|i| i as i64)
            .collect()
    }

    /// Adds vectors (row-major, `dims` each) under their ids.
    pub fn add(&mut self, ids: &[i64], vectors: &[f32]) -> AppResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        if vectors.len() != ids.len() * self.dims as usize {
            return Err(AppError::internal("vector count does not match the ids"));
        }
        let ids: Vec<Idx> = ids.iter().map(|&i| Idx::new(i as u64)).collect();
        self.index.add_with_ids(vectors, &ids).map_err(faiss_error)
    }

    /// The `k` nearest ids and their scores (cosine similarity), best first.
    pub fn search(&mut self, query: &[f32], k: usize) -> AppResult<Vec<(i64, f32)>> {
        if self.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let k = k.min(self.len());
        let found = self.index.search(query, k).map_err(faiss_error)?;
        Ok(found
            .labels
            .iter()
            .zip(found.distances.iter())
            .filter_map(|(id, score)| id.get().map(|id| (id as i64, *score)))
            .collect())
    }
}

fn faiss_error(e: faiss::error::Error) -> AppError {
    AppError::internal(format!("vector index: {e}"))
}

/// One collection's index of one model; its lock serialises the index's use.
type Slot = Arc<tokio::sync::Mutex<Option<CollectionIndex>>>;

/// The indexes of a process, loaded on first use.
pub struct VectorHub {
    dir: PathBuf,
    settings: IndexSettings,
    /// One slot per (collection, model); the slot's lock serialises the index's use.
    slots: Mutex<HashMap<(i64, String), Slot>>,
}

impl VectorHub {
    /// Indexes persisted under `dir`.
    pub fn new(dir: PathBuf, settings: IndexSettings) -> Self {
        Self {
            dir,
            settings,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(
        &self,
        collection_id: i64,
        model: &str,
    ) -> Arc<tokio::sync::Mutex<Option<CollectionIndex>>> {
        let mut slots = match self.slots.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        slots
            .entry((collection_id, model.to_string()))
            .or_default()
            .clone()
    }

    /// The `k` chunks of the collection nearest to `query`, after bringing the index up to
    /// the collection's current `version`.
    pub async fn search(
        &self,
        state: &AppState,
        collection_id: i64,
        model: &str,
        version: i64,
        query: Vec<f32>,
        k: usize,
    ) -> AppResult<Vec<(i64, f32)>> {
        let slot = self.slot(collection_id, model);
        let mut guard = slot.lock().await;
        self.bring_up_to_date(state, &mut guard, collection_id, model, version)
            .await?;
        let Some(mut index) = guard.take() else {
            return Ok(Vec::new());
        };
        let (index, found) = tokio::task::spawn_blocking(move || {
            let found = index.search(&query, k);
            (index, found)
        })
        .await
        .map_err(|e| AppError::internal(format!("vector search: {e}")))?;
        *guard = Some(index);
        found
    }

    /// Makes the collection's index reflect `version` (or newer), persists it and answers
    /// how many vectors it holds.
    pub async fn sync(
        &self,
        state: &AppState,
        collection_id: i64,
        model: &str,
        version: i64,
    ) -> AppResult<usize> {
        let slot = self.slot(collection_id, model);
        let mut guard = slot.lock().await;
        self.bring_up_to_date(state, &mut guard, collection_id, model, version)
            .await?;
        Ok(guard.as_ref().map_or(0, CollectionIndex::len))
    }

    /// Throws the collection's indexes away (memory and disk) and rebuilds the current
    /// model's from the database.
    pub async fn rebuild(
        &self,
        state: &AppState,
        collection_id: i64,
        model: &str,
        version: i64,
    ) -> AppResult<usize> {
        let slot = self.slot(collection_id, model);
        let mut guard = slot.lock().await;
        *guard = None;
        for f in store::files(&self.dir, collection_id, Some(model)) {
            let _ = std::fs::remove_file(f);
        }
        self.bring_up_to_date(state, &mut guard, collection_id, model, version)
            .await?;
        Ok(guard.as_ref().map_or(0, CollectionIndex::len))
    }

    /// Forgets a deleted collection's indexes.
    pub fn drop_collection(&self, collection_id: i64) {
        let mut slots = match self.slots.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        slots.retain(|(c, _), _| *c != collection_id);
        for f in store::files(&self.dir, collection_id, None) {
            let _ = std::fs::remove_file(f);
        }
    }

    /// Forgets every index, in memory and on disk: after a restore, each collection is
    /// rebuilt from the database on its next use.
    pub fn drop_all(&self) {
        let mut slots = match self.slots.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        slots.clear();
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// Whether FAISS works in this process: builds and searches a tiny index.
    pub fn probe(&self) -> bool {
        let settings = self.settings.clone();
        let run = move || -> AppResult<bool> {
            let mut index = CollectionIndex::new(IndexKind::Flat, 4, &settings)?;
            index.add(&[7], &[1.0, 0.0, 0.0, 0.0])?;
            Ok(index.search(&[1.0, 0.0, 0.0, 0.0], 1)?.first().map(|h| h.0) == Some(7))
        };
        run().unwrap_or(false)
    }

    async fn bring_up_to_date(
        &self,
        state: &AppState,
        slot: &mut Option<CollectionIndex>,
        collection_id: i64,
        model: &str,
        version: i64,
    ) -> AppResult<()> {
        if slot.is_none() {
            *slot = self.load(collection_id, model).await;
        }
        if slot.as_ref().is_some_and(|i| i.version >= version) {
            return Ok(());
        }
        // Read the version before the vectors: a change landing in between makes the next
        // search catch up again instead of being missed.
        let current = store::version(state, collection_id).await?;
        let wanted = store::ids(state, collection_id, model).await?;
        if wanted.is_empty() && slot.is_none() {
            // Nothing to index: searches find nothing until vectors arrive.
            return Ok(());
        }
        let mut index = match slot.take() {
            Some(i) => i,
            None => {
                let dims = store::dims(state, collection_id, model).await?;
                CollectionIndex::new(IndexKind::Flat, dims, &self.settings)?
            }
        };
        let have = index.ids();
        let gone = have.iter().filter(|id| !wanted.contains(id)).count();
        let target_kind = if wanted.len() > self.settings.hnsw_above {
            IndexKind::Hnsw
        } else {
            IndexKind::Flat
        };
        // HNSW cannot remove vectors, and a kind change needs a new index: rebuild.
        let rebuild = target_kind != index.kind || (gone > 0 && index.kind == IndexKind::Hnsw);
        if rebuild {
            index = CollectionIndex::new(target_kind, index.dims, &self.settings)?;
        }
        let have = if rebuild { HashSet::new() } else { have };
        let missing: Vec<i64> = {
            let mut m: Vec<i64> = wanted
                .iter()
                .copied()
                .filter(|id| !have.contains(id))
                .collect();
            m.sort_unstable();
            m
        };
        let stale: Vec<i64> = have
            .iter()
            .copied()
            .filter(|id| !wanted.contains(id))
            .collect();
        if !stale.is_empty() {
            let sel: Vec<Idx> = stale.iter().map(|&i| Idx::new(i as u64)).collect();
            let selector = faiss::selector::IdSelector::batch(&sel).map_err(faiss_error)?;
            index.index.remove_ids(&selector).map_err(faiss_error)?;
        }
        for part in missing.chunks(store::LOAD_BATCH) {
            let (ids, vectors) = store::vectors(state, model, part, index.dims as usize).await?;
            index = tokio::task::spawn_blocking(move || index.add(&ids, &vectors).map(|()| index))
                .await
                .map_err(|e| AppError::internal(format!("vector index: {e}")))??;
        }
        index.version = current;
        tracing::debug!(
            collection_id,
            model,
            version = current,
            vectors = index.len(),
            added = missing.len(),
            removed = stale.len(),
            "vector index up to date"
        );
        *slot = Some(self.save(collection_id, model, index).await?);
        Ok(())
    }

    /// Reads the newest persisted index; `None` when there is none or it does not load (it
    /// is then rebuilt from the database).
    async fn load(&self, collection_id: i64, model: &str) -> Option<CollectionIndex> {
        let (path, version, kind) = store::newest(&self.dir, collection_id, model)?;
        tokio::task::spawn_blocking(move || {
            let index = faiss::read_index(path.to_str()?).ok()?.into_id_map().ok()?;
            let dims = index.d();
            Some(CollectionIndex {
                index,
                kind,
                version,
                dims,
            })
        })
        .await
        .ok()
        .flatten()
    }

    /// Persists an index under its version. A failed write is logged: the index still serves, and the next start
    /// rebuilds it from the database.
    async fn save(
        &self,
        collection_id: i64,
        model: &str,
        index: CollectionIndex,
    ) -> AppResult<CollectionIndex> {
        let dir = self.dir.clone();
        let model = model.to_string();
        let (index, written) = tokio::task::spawn_blocking(move || {
            let written = store::write(&dir, collection_id, &model, &index);
            (index, written)
        })
        .await
        .map_err(|e| AppError::internal(format!("vector index: {e}")))?;
        if let Err(e) = written {
            tracing::warn!(error = %e, collection_id, "could not persist a vector index");
        }
        Ok(index)
    }
}

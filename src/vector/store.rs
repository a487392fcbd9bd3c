//! What the indexes read from the database and write to disk.

use super::{CollectionIndex, IndexKind};
use crate::db::schema::{chunk_vectors, collections};
use crate::db_run;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Vectors read per query while an index catches up.
pub const LOAD_BATCH: usize = 2000;

/// A vector as stored: little-endian f32.
pub fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A stored vector; `None` when the bytes are not whole f32s.
pub fn decode_vector(bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}

/// The collection's current version.
pub async fn version(state: &AppState, collection_id: i64) -> AppResult<i64> {
    let db = &state.db;
    db_run!(db, read, |conn| collections::table
        .find(collection_id)
        .select(collections::index_version)
        .first::<i64>(conn)
        .await
        .optional()
        .map_err(AppError::from))
    .map(|v| v.unwrap_or(0))
}

/// The chunk ids that have a vector of `model` in the collection.
pub async fn ids(state: &AppState, collection_id: i64, model: &str) -> AppResult<HashSet<i64>> {
    let db = &state.db;
    let model = model.to_string();
    let ids: Vec<i64> = db_run!(db, read, |conn| chunk_vectors::table
        .filter(chunk_vectors::collection_id.eq(collection_id))
        .filter(chunk_vectors::model.eq(&model))
        .select(chunk_vectors::chunk_id)
        .load(conn)
        .await
        .map_err(AppError::from))?;
    Ok(ids.into_iter().collect())
}

/// Width of the collection's vectors of `model` (from one stored vector).
pub async fn dims(state: &AppState, collection_id: i64, model: &str) -> AppResult<u32> {
    let db = &state.db;
    let model = model.to_string();
    let one: Option<Vec<u8>> = db_run!(db, read, |conn| chunk_vectors::table
        .filter(chunk_vectors::collection_id.eq(collection_id))
        .filter(chunk_vectors::model.eq(&model))
        .select(chunk_vectors::embedding)
        .first(conn)
        .await
        .optional()
        .map_err(AppError::from))?;
    one.map(|b| (b.len() / 4) as u32)
        .filter(|d| *d > 0)
        .ok_or_else(|| AppError::internal("no stored vector to size an index by"))
}

/// The vectors of `ids` under `model`: the ids found and their vectors, row-major. A vector
/// of another width is a corrupt row: an error, never a silently wrong index.
pub async fn vectors(
    state: &AppState,
    model: &str,
    ids: &[i64],
    dims: usize,
) -> AppResult<(Vec<i64>, Vec<f32>)> {
    let db = &state.db;
    let model = model.to_string();
    let ids = ids.to_vec();
    let rows: Vec<(i64, Vec<u8>)> = db_run!(db, read, |conn| chunk_vectors::table
        .filter(chunk_vectors::chunk_id.eq_any(&ids))
        .filter(chunk_vectors::model.eq(&model))
        .select((chunk_vectors::chunk_id, chunk_vectors::embedding))
        .load(conn)
        .await
        .map_err(AppError::from))?;
    let mut out_ids = Vec::with_capacity(rows.len());
    let mut out = Vec::with_capacity(rows.len() * dims);
    for (id, bytes) in rows {
        match decode_vector(&bytes) {
            Some(v) if v.len() == dims => {
                out_ids.push(id);
                out.extend_from_slice(&v);
            }
            _ => {
                return Err(AppError::internal(format!(
                    "chunk {id}: stored vector is not {dims} floats"
                )))
            }
        }
    }
    Ok((out_ids, out))
}

/// The file of a collection's index of `model` at `version`: the version and kind are in
/// the name, so processes sharing a data dir never pair an index with another's version.
fn file_name(collection_id: i64, model: &str, version: i64, kind: IndexKind) -> String {
    let kind = match kind {
        IndexKind::Flat => "flat",
        IndexKind::Hnsw => "hnsw",
    };
    format!("{}{version}-{kind}.faiss", prefix(collection_id, model))
}

/// What every index file of a collection and model starts with.
fn prefix(collection_id: i64, model: &str) -> String {
    let model: String = model
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("c{collection_id}-{model}-v")
}

/// The newest persisted index of a collection and model: its path, version and kind.
pub fn newest(dir: &Path, collection_id: i64, model: &str) -> Option<(PathBuf, i64, IndexKind)> {
    let prefix = prefix(collection_id, model);
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix(&prefix)?.strip_suffix(".faiss")?;
            let (version, kind) = rest.split_once('-')?;
            let kind = match kind {
                "flat" => IndexKind::Flat,
                "hnsw" => IndexKind::Hnsw,
                _ => return None,
            };
            Some((e.path(), version.parse::<i64>().ok()?, kind))
        })
        .max_by_key(|(_, v, _)| *v)
}

/// Every persisted index file of a collection (any model) or of one model.
pub fn files(dir: &Path, collection_id: i64, model: Option<&str>) -> Vec<PathBuf> {
    let prefix = match model {
        Some(m) => prefix(collection_id, m),
        None => format!("c{collection_id}-"),
    };
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Writes an index under its version (through a file of this process and a rename), then
/// removes the older versions.
pub fn write(
    dir: &Path,
    collection_id: i64,
    model: &str,
    index: &CollectionIndex,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let name = file_name(collection_id, model, index.version, index.kind);
    let path = dir.join(&name);
    let tmp = dir.join(format!(".{name}.{}.part", std::process::id()));
    let tmp_str = tmp
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("index path is not UTF-8"))?;
    faiss::write_index(&index.index, tmp_str)?;
    std::fs::rename(&tmp, &path)?;
    for old in files(dir, collection_id, Some(model)) {
        if old != path {
            let _ = std::fs::remove_file(old);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_through_bytes() {
        let v = vec![0.25_f32, -1.5, 3.0e-7];
        assert_eq!(decode_vector(&encode_vector(&v)), Some(v));
        assert_eq!(decode_vector(&[1, 2, 3]), None);
    }
}

//! Search over the collections a caller may read: vector ranking (FAISS, cosine similarity
//! of the query's embedding), keyword ranking (SQLite FTS5 with BM25 / PostgreSQL full text
//! with `ts_rank_cd`, both stored with the chunks) and their reciprocal rank fusion, the
//! default. Every hit is read back from the database, so a chunk deleted since an index was
//! built never comes back, and carries its exact span.

use crate::db::models::{Chunk, Collection, Document};
use crate::db::schema::{chunk_vectors, chunks, documents};
use crate::db::Backend;
use crate::db_run;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::vector::decode_vector;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Text};
use diesel_async::RunQueryDsl;
use std::collections::HashMap;

/// How hits are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Vector and keyword rankings fused (reciprocal rank fusion).
    #[default]
    Hybrid,
    /// Cosine similarity of embeddings only.
    Vector,
    /// Full-text ranking only.
    Keyword,
}

/// One passage found.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The passage, its span and page.
    pub chunk: Chunk,
    /// Its document.
    pub document: Document,
    /// The ranking score of the mode: RRF for hybrid, cosine similarity for vector, the
    /// full-text rank for keyword. Higher is better.
    pub score: f64,
    /// Cosine similarity of the query and the passage, when the query was embedded.
    pub similarity: Option<f32>,
}

/// A passage given to the model for an answer, as the answer's message keeps it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SourceRef {
    /// Its number in the prompt (`[1]`, `[2]`, …), as the answer cites it.
    pub n: i32,
    /// The document.
    pub document_id: i64,
    /// Its file name.
    pub filename: String,
    /// The chunk.
    pub chunk_id: i64,
    /// The passage.
    pub text: String,
    /// First char in the document's text.
    pub start: i64,
    /// One past the last char.
    pub end: i64,
    /// PDF page.
    pub page: Option<i32>,
    /// The search score.
    pub score: f64,
    /// The document's sha256.
    pub sha256: String,
}

impl SourceRef {
    /// The `n`-th source from a hit.
    pub fn from_hit(n: i32, h: &Hit) -> Self {
        Self {
            n,
            document_id: h.document.id,
            filename: h.document.filename.clone(),
            chunk_id: h.chunk.id,
            text: h.chunk.text.clone(),
            start: h.chunk.char_start,
            end: h.chunk.char_end,
            page: h.chunk.page,
            score: h.score,
            sha256: h.document.sha256.clone(),
        }
    }

    /// Whether an answer cites it (`[n]`).
    pub fn cited_in(&self, answer: &str) -> bool {
        answer.contains(&format!("[{}]", self.n))
    }
}

/// A search.
#[derive(Debug, Clone)]
pub struct Query {
    /// The words.
    pub text: String,
    /// Hits wanted.
    pub top_k: usize,
    /// Least cosine similarity of a hit (the query is then embedded in every mode).
    pub threshold: Option<f32>,
    /// Ranking.
    pub mode: Mode,
}

/// Searches `collections` (already checked readable by the caller).
pub async fn search(
    state: &AppState,
    collections: &[Collection],
    q: &Query,
) -> AppResult<Vec<Hit>> {
    if collections.is_empty() || q.top_k == 0 {
        return Ok(Vec::new());
    }
    let candidates = (q.top_k * 4).max(50);
    let needs_vector = q.mode != Mode::Keyword || q.threshold.is_some();
    let query_vector = if needs_vector {
        let embedder = state
            .embed
            .get(&state.config.embed, &state.background)
            .await?;
        let mut e = embedder.embed(vec![q.text.clone()]).await?;
        e.pop().map(|e| e.vector)
    } else {
        None
    };
    let vector_ranked: Vec<(i64, f32)> = match (&query_vector, q.mode) {
        (Some(v), Mode::Hybrid | Mode::Vector) => {
            let mut all = Vec::new();
            for c in collections {
                let found = state
                    .rag
                    .vectors
                    .search(
                        state,
                        c.id,
                        &c.embed_model,
                        c.index_version,
                        v.clone(),
                        candidates,
                    )
                    .await?;
                all.extend(found);
            }
            all.sort_by(|a, b| b.1.total_cmp(&a.1));
            all.truncate(candidates);
            all
        }
        _ => Vec::new(),
    };
    let keyword_ranked: Vec<(i64, f64)> = match q.mode {
        Mode::Hybrid | Mode::Keyword => keyword(state, collections, &q.text, candidates).await?,
        Mode::Vector => Vec::new(),
    };
    let mut similarity: HashMap<i64, f32> = vector_ranked.iter().copied().collect();
    let ranked: Vec<(i64, f64)> = match q.mode {
        Mode::Vector => vector_ranked
            .iter()
            .map(|(id, s)| (*id, *s as f64))
            .collect(),
        Mode::Keyword => keyword_ranked.clone(),
        Mode::Hybrid => fuse(
            &[
                vector_ranked.iter().map(|(id, _)| *id).collect(),
                keyword_ranked.iter().map(|(id, _)| *id).collect(),
            ],
            state.config.rag.rrf_k,
        ),
    };
    // Keyword hits the vector ranking did not reach still get their similarity.
    if let Some(v) = &query_vector {
        let missing: Vec<i64> = ranked
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| !similarity.contains_key(id))
            .collect();
        if !missing.is_empty() {
            let models: Vec<String> = collections.iter().map(|c| c.embed_model.clone()).collect();
            for (id, stored) in stored_vectors(state, &missing, &models).await? {
                similarity.insert(id, dot(v, &stored));
            }
        }
    }
    let kept: Vec<(i64, f64)> = ranked
        .into_iter()
        .filter(|(id, _)| match q.threshold {
            Some(t) => similarity.get(id).is_some_and(|s| *s >= t),
            None => true,
        })
        .collect();
    let allowed: Vec<i64> = collections.iter().map(|c| c.id).collect();
    let rows = load_hits(
        state,
        &kept.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        &allowed,
    )
    .await?;
    let mut hits = Vec::with_capacity(q.top_k);
    for (id, score) in kept {
        if let Some((chunk, document)) = rows.get(&id) {
            hits.push(Hit {
                chunk: chunk.clone(),
                document: document.clone(),
                score,
                similarity: similarity.get(&id).copied(),
            });
            if hits.len() == q.top_k {
                break;
            }
        }
    }
    Ok(hits)
}

/// Reciprocal rank fusion: each list adds `1 / (k + rank)` (rank from 1) to its ids.
pub fn fuse(lists: &[Vec<i64>], k: f64) -> Vec<(i64, f64)> {
    let mut scores: HashMap<i64, f64> = HashMap::new();
    for list in lists {
        for (rank, id) in list.iter().enumerate() {
            *scores.entry(*id).or_default() += 1.0 / (k + rank as f64 + 1.0);
        }
    }
    let mut fused: Vec<(i64, f64)> = scores.into_iter().collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    fused
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The words of a query, as the full-text engines may safely receive them: letters and
/// digits only, so no query syntax passes through.
pub fn terms(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    out.sort();
    out.dedup();
    out.truncate(64);
    out
}

#[derive(QueryableByName)]
struct Ranked {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Double)]
    rank: f64,
}

/// Full-text ranking of the chunks of `collections`: any of the query's words, best first.
async fn keyword(
    state: &AppState,
    collections: &[Collection],
    text: &str,
    limit: usize,
) -> AppResult<Vec<(i64, f64)>> {
    let words = terms(text);
    if words.is_empty() {
        return Ok(Vec::new());
    }
    let ids = collections
        .iter()
        .map(|c| c.id.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let (sql, query) = match state.db.backend() {
        Backend::Sqlite => (
            // bm25() is lower for better matches.
            format!(
                "SELECT c.id AS id, -bm25(chunks_fts) AS rank FROM chunks_fts \
                 JOIN chunks c ON c.id = chunks_fts.rowid \
                 WHERE chunks_fts MATCH ? AND c.collection_id IN ({ids}) \
                 ORDER BY rank DESC, c.id LIMIT {limit}"
            ),
            words
                .iter()
                .map(|w| format!("\"{w}\""))
                .collect::<Vec<_>>()
                .join(" OR "),
        ),
        Backend::Postgres => {
            // PostgreSQL's ranks know no inverse document frequency, so with "any word"
            // queries the common words would win: rank first by how many of the query's
            // words a chunk has, then by ts_rank_cd. The words are letters and digits only
            // (see `terms`), so they can be written into the statement.
            let matched = words
                .iter()
                .map(|w| format!("(c.tsv @@ plainto_tsquery('english', '{w}'))::int"))
                .collect::<Vec<_>>()
                .join(" + ");
            (
                format!(
                    "SELECT c.id AS id, ({matched})::float8 + ts_rank_cd(c.tsv, q, 32)::float8 AS rank \
                     FROM chunks c, to_tsquery('english', $1) q \
                     WHERE c.tsv @@ q AND c.collection_id IN ({ids}) \
                     ORDER BY rank DESC, c.id LIMIT {limit}"
                ),
                words.join(" | "),
            )
        }
    };
    let db = &state.db;
    let rows = crate::db_load!(db, Ranked, diesel::sql_query(sql).bind::<Text, _>(query))?;
    Ok(rows.into_iter().map(|r| (r.id, r.rank)).collect())
}

/// Stored vectors of chunks under any of `models`.
async fn stored_vectors(
    state: &AppState,
    ids: &[i64],
    models: &[String],
) -> AppResult<Vec<(i64, Vec<f32>)>> {
    let db = &state.db;
    let (ids, models) = (ids.to_vec(), models.to_vec());
    let rows: Vec<(i64, Vec<u8>)> = db_run!(db, read, |conn| chunk_vectors::table
        .filter(chunk_vectors::chunk_id.eq_any(&ids))
        .filter(chunk_vectors::model.eq_any(&models))
        .select((chunk_vectors::chunk_id, chunk_vectors::embedding))
        .load(conn)
        .await
        .map_err(AppError::from))?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, b)| decode_vector(&b).map(|v| (id, v)))
        .collect())
}

/// Chunks and their documents by chunk id, limited to `collections`.
async fn load_hits(
    state: &AppState,
    ids: &[i64],
    collections: &[i64],
) -> AppResult<HashMap<i64, (Chunk, Document)>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let db = &state.db;
    let (ids, collections) = (ids.to_vec(), collections.to_vec());
    let rows: Vec<(Chunk, Document)> = db_run!(db, read, |conn| chunks::table
        .inner_join(documents::table)
        .filter(chunks::id.eq_any(&ids))
        .filter(chunks::collection_id.eq_any(&collections))
        .select((Chunk::as_select(), Document::as_select()))
        .load(conn)
        .await
        .map_err(AppError::from))?;
    Ok(rows.into_iter().map(|(c, d)| (c.id, (c, d))).collect())
}

/// Brings this process's index of a collection up to the collection's current version.
pub async fn sync_collection(state: &AppState, collection_id: i64) -> AppResult<()> {
    if let Some(c) = super::ingest::collection(state, collection_id).await? {
        state
            .rag
            .vectors
            .sync(state, c.id, &c.embed_model, c.index_version)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusion_rewards_agreement() {
        let fused = fuse(&[vec![1, 2, 3], vec![3, 4]], 60.0);
        assert_eq!(fused[0].0, 3);
        assert_eq!(fused.len(), 4);
    }

    #[test]
    fn terms_carry_no_query_syntax() {
        assert_eq!(
            terms("\"drop\" OR -x* (NEAR)"),
            vec!["drop", "near", "or", "x"]
        );
        assert!(terms("!!! ***").is_empty());
    }
}

//! Search latency through GraphQL (`search(query, target: {collection}, topK: 10, mode)`)
//! over one collection of 10 000 and then 100 000 chunks, `HYBRID` (keyword + vector, fused)
//! against `VECTOR`, p50 and p99 of 200 sequential searches each, plus the query embedding
//! alone (the model's share of every search). SQLite.
//!
//! Chunks are written straight into the database (embedding 100 000 chunks would take an hour
//! on two cores): texts of 80 words drawn from the vocabulary of this project's documents,
//! vectors drawn around random centres (384-d unit length, as the model's), one document per
//! 1 000 chunks with its text and spans as ingestion stores them. The index is built (and at
//! 100 000 chunks, past `rag.hnsw_above`, it is HNSW) by a first search before timing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common.rs"]
mod common;

use common::Rng;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Text};
use hearth::config::Config;
use serde_json::{json, Value};
use std::time::Instant;

const DIMS: usize = 384;
const PER_DOC: usize = 1000;

fn vocabulary() -> Vec<String> {
    let mut words = std::collections::BTreeSet::new();
    for f in [
        "README.md",
        "BENCHMARKS.md",
        "docs/documents.md",
        "docs/rest.md",
        "docs/decisions.md",
    ] {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for w in text.split(|c: char| !c.is_ascii_alphabetic()) {
            if w.len() >= 4 {
                words.insert(w.to_ascii_lowercase());
            }
        }
    }
    words.into_iter().collect()
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Writes `docs` documents of `PER_DOC` chunks each into collection `cid` of `owner`.
fn fill(
    db: &str,
    owner: i64,
    cid: i64,
    first_doc: usize,
    docs: usize,
    words: &[String],
    rng: &mut Rng,
) {
    let mut conn = SqliteConnection::establish(db).unwrap();
    conn.batch_execute("PRAGMA busy_timeout = 10000;").unwrap();
    let centres: Vec<Vec<f32>> = (0..200)
        .map(|_| (0..DIMS).map(|_| rng.normal()).collect())
        .collect();
    conn.transaction::<_, diesel::result::Error, _>(|conn| {
        for d in first_doc..first_doc + docs {
            let texts: Vec<String> = (0..PER_DOC)
                .map(|_| {
                    (0..80)
                        .map(|_| words[rng.below(words.len())].as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            let full = texts.join("\n\n");
            diesel::sql_query(
                "INSERT INTO documents (owner_id, collection_id, filename, kind, mime_type, file_size, sha256, status, chunks_total, chunks_embedded, created_at, updated_at) \
                 VALUES (?, ?, ?, 'text', 'text/plain', ?, ?, 'indexed', ?, ?, datetime('now'), datetime('now'))",
            )
            .bind::<BigInt, _>(owner)
            .bind::<BigInt, _>(cid)
            .bind::<Text, _>(format!("synthetic-{d}.txt"))
            .bind::<BigInt, _>(full.len() as i64)
            .bind::<Text, _>(format!("{d:064x}"))
            .bind::<BigInt, _>(PER_DOC as i64)
            .bind::<BigInt, _>(PER_DOC as i64)
            .execute(conn)?;
            let doc_id: i64 = diesel::select(diesel::dsl::sql::<BigInt>("last_insert_rowid()"))
                .get_result(conn)?;
            diesel::sql_query("INSERT INTO document_texts (document_id, text) VALUES (?, ?)")
                .bind::<BigInt, _>(doc_id)
                .bind::<Text, _>(&full)
                .execute(conn)?;
            let mut start = 0i64;
            for (i, t) in texts.iter().enumerate() {
                let end = start + t.chars().count() as i64;
                diesel::sql_query(
                    "INSERT INTO chunks (document_id, collection_id, ordinal, text, char_start, char_end, created_at) VALUES (?, ?, ?, ?, ?, ?, datetime('now'))",
                )
                .bind::<BigInt, _>(doc_id)
                .bind::<BigInt, _>(cid)
                .bind::<BigInt, _>(i as i64)
                .bind::<Text, _>(t)
                .bind::<BigInt, _>(start)
                .bind::<BigInt, _>(end)
                .execute(conn)?;
                let chunk_id: i64 =
                    diesel::select(diesel::dsl::sql::<BigInt>("last_insert_rowid()"))
                        .get_result(conn)?;
                let c = &centres[rng.below(centres.len())];
                let mut v: Vec<f32> = c.iter().map(|x| x + 0.5 * rng.normal()).collect();
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|x| *x /= n);
                diesel::sql_query(
                    "INSERT INTO chunk_vectors (chunk_id, model, collection_id, embedding) VALUES (?, 'all-minilm-l6-v2', ?, ?)",
                )
                .bind::<BigInt, _>(chunk_id)
                .bind::<BigInt, _>(cid)
                .bind::<Binary, _>(hearth::vector::encode_vector(&v))
                .execute(conn)?;
                start = end + 2;
            }
        }
        diesel::sql_query("UPDATE collections SET index_version = index_version + 1 WHERE id = ?")
            .bind::<BigInt, _>(cid)
            .execute(conn)?;
        Ok(())
    })
    .unwrap();
}

async fn search(http: &reqwest::Client, url: &str, token: &str, q: &str, mode: &str) -> f64 {
    let t = Instant::now();
    let res = http
        .post(url)
        .bearer_auth(token)
        .json(&json!({
            "query": "query($q: String!, $m: SearchMode) { search(query: $q, target: {collection: \"bench\"}, topK: 10, mode: $m) { chunkId score } }",
            "variables": { "q": q, "m": mode },
        }))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert!(body["errors"].is_null(), "{body}");
    assert!(
        !body["data"]["search"].as_array().unwrap().is_empty(),
        "{body}"
    );
    t.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    let words = vocabulary();
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("b.db");
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        database_url: Some(format!("sqlite://{}", db_path.display())),
        jwt_secret: Some("bench-secret-bench-secret-bench-secret-0123".into()),
        register_rate_limit: 0,
        ..Config::default()
    };
    config.plugins.bundled_dir = dir.path().join("none");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (state, app) = hearth::http::app_for(config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/graphql", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let (_, token) = common::account(&state, "bench", false).await;
        let caller = hearth::service::users::operator(&state, Some("bench"))
            .await
            .unwrap();
        let collection = hearth::service::documents::writable_target(
            &state,
            &caller,
            &hearth::service::documents::Target::Collection("bench".into()),
        )
        .await
        .unwrap();
        let embedder = state
            .embed
            .get(&state.config.embed, &state.background)
            .await
            .unwrap();
        let http = reqwest::Client::new();
        let mut rng = Rng(7);
        let queries: Vec<String> = (0..200)
            .map(|_| {
                (0..3)
                    .map(|_| words[rng.below(words.len())].as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let mut embed_ms = Vec::new();
        for q in &queries {
            let t = Instant::now();
            embedder.embed(vec![q.clone()]).await.unwrap();
            embed_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        println!(
            "vocabulary {} words; query embedding alone: p50 {:.2} ms, p99 {:.2} ms",
            words.len(),
            percentile(&mut embed_ms.clone(), 0.5),
            percentile(&mut embed_ms, 0.99)
        );
        println!("| chunks | mode | p50 | p99 | first search (index build) |");
        println!("|---:|---|---:|---:|---:|");
        let mut filled = 0;
        for target in [10_000usize, 100_000] {
            let (db, owner, cid) = (
                db_path.display().to_string(),
                caller.user_id(),
                collection.id,
            );
            let (first, docs) = (filled / PER_DOC, (target - filled) / PER_DOC);
            let mut fill_rng = Rng(11 + target as u64);
            let w = words.clone();
            tokio::task::spawn_blocking(move || {
                fill(&db, owner, cid, first, docs, &w, &mut fill_rng)
            })
            .await
            .unwrap();
            filled = target;
            let t = Instant::now();
            search(&http, &url, &token, &queries[0], "VECTOR").await;
            let build = t.elapsed().as_secs_f64();
            for mode in ["HYBRID", "VECTOR"] {
                let mut ms = Vec::new();
                for q in &queries {
                    ms.push(search(&http, &url, &token, q, mode).await);
                }
                println!(
                    "| {target} | {mode} | {:.2} ms | {:.2} ms | {build:.1} s |",
                    percentile(&mut ms.clone(), 0.5),
                    percentile(&mut ms, 0.99)
                );
            }
        }
    });
}

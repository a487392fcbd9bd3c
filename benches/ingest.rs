//! End-to-end ingestion: every Markdown and Rust file of this project (`docs/`, `src/`,
//! README, BENCHMARKS) uploaded at once into one collection through the service layer (the
//! path every upload door takes), timed from the first upload to the last document indexed:
//! documents/s, chunks/s, and the share of that time the embedding model itself ran (the
//! `hearth_embed_batch_seconds` histogram's sum). SQLite, the local embedder, the default
//! pipeline (`jobs.kind_concurrency.ingest_document`, `embed.*`).
//!
//! Tunables: HEARTH_BENCH_THREADS (model threads, default 2).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common.rs"]
mod common;

use hearth::config::Config;
use hearth::db::enums::DocumentStatus;
use hearth::service::documents::{self as docs, Target, UploadInput};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if matches!(p.extension().and_then(|x| x.to_str()), Some("md" | "rs")) {
            out.push(p);
        }
    }
}

fn main() {
    let threads: usize = std::env::var("HEARTH_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let mut paths = vec![PathBuf::from("README.md"), PathBuf::from("BENCHMARKS.md")];
    files(Path::new("docs"), &mut paths);
    files(Path::new("src"), &mut paths);
    paths.sort();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        database_url: Some(format!("sqlite://{}", dir.path().join("b.db").display())),
        jwt_secret: Some("bench-secret-bench-secret-bench-secret-0123".into()),
        register_rate_limit: 0,
        ..Config::default()
    };
    config.embed.threads = threads;
    config.plugins.bundled_dir = dir.path().join("none");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (state, _app) = hearth::http::app_for(config).await.unwrap();
        common::account(&state, "bench", false).await;
        let caller = hearth::service::users::operator(&state, Some("bench"))
            .await
            .unwrap();
        // The model and tokenizer loaded before the clock starts.
        let embedder = state
            .embed
            .get(&state.config.embed, &state.background)
            .await
            .unwrap();
        embedder.embed(vec!["warm up".into()]).await.unwrap();
        let bytes: usize = paths
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len() as usize)
            .sum();
        let model_before = hearth::ops::metrics::read_total("hearth_embed_batch_seconds");
        let start = Instant::now();
        let mut ids = Vec::new();
        for p in &paths {
            let up = docs::upload(
                &state,
                &caller,
                UploadInput {
                    filename: p.file_name().unwrap().to_string_lossy().into_owned(),
                    bytes: std::fs::read(p).unwrap(),
                    target: Target::Collection("bench".into()),
                    metadata: None,
                },
            )
            .await
            .unwrap();
            if !up.existing {
                ids.push(up.document.id);
            }
        }
        let queued = start.elapsed();
        let done = loop {
            let d = docs::owned(&state, &caller, &ids).await.unwrap();
            let busy = d.iter().any(|d| {
                matches!(
                    d.status,
                    DocumentStatus::Queued | DocumentStatus::Extracting | DocumentStatus::Embedding
                )
            });
            if !busy {
                break d;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let wall = start.elapsed().as_secs_f64();
        let model = hearth::ops::metrics::read_total("hearth_embed_batch_seconds") - model_before;
        let chunks: i64 = done.iter().map(|d| d.chunks_total as i64).sum();
        let failed = done
            .iter()
            .filter(|d| d.status == DocumentStatus::Failed)
            .count();
        let cpu = common::cpu();
        println!("{cpu}; {threads} model threads");
        println!(
            "{} documents ({:.1} MiB, {chunks} chunks, {failed} failed) stored in {:.2} s, indexed in {wall:.1} s",
            ids.len(),
            bytes as f64 / (1 << 20) as f64,
            queued.as_secs_f64()
        );
        println!(
            "{:.2} documents/s, {:.1} chunks/s; the model ran {model:.1} s = {:.0}% of the time",
            ids.len() as f64 / wall,
            chunks as f64 / wall,
            100.0 * model / wall
        );
    });
}

//! Embeddings: throughput of Hearth's embedder on a mixed-length corpus and the latency of one
//! short query through `POST /v1/embeddings` (alone and with 50 concurrent callers), each
//! beside a Python reference run in the same program: the same model file and tokenizer
//! through onnxruntime and tokenizers, the same threads, batches of 32
//! (`benches/embed_reference.py`, in the venv `scripts/setup.sh --with-bench` makes).
//!
//! Tunables: HEARTH_BENCH_THREADS (default 2), HEARTH_BENCH_PYTHON (default
//! `~/.cache/hearth/bench-venv/bin/python`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common.rs"]
mod common;

use hearth::config::Config;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const QUERY: &str = "How do I reset my password?";

/// Chunks of the project's own documents: paragraphs (short) and ~600-character windows
/// (about 130 tokens), mixed.
fn corpus() -> Vec<String> {
    let mut text = String::new();
    for f in [
        "README.md",
        "BENCHMARKS.md",
        "docs/jobs.md",
        "docs/rest.md",
        "docs/llm.md",
        "docs/auth.md",
        "docs/graphql.md",
        "docs/decisions.md",
    ] {
        text.push_str(&std::fs::read_to_string(f).unwrap_or_default());
        text.push('\n');
    }
    let mut out = Vec::new();
    for (i, para) in text
        .split("\n\n")
        .filter(|p| p.trim().len() > 20)
        .enumerate()
    {
        if i % 2 == 0 {
            out.push(para.trim().chars().take(160).collect());
        }
    }
    let chars: Vec<char> = text.chars().collect();
    for w in chars.chunks(600) {
        out.push(w.iter().collect());
    }
    out.truncate(1024);
    out
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

async fn call(http: &reqwest::Client, url: &str, token: &str) -> f64 {
    let t = Instant::now();
    let res = http
        .post(url)
        .bearer_auth(token)
        .json(&json!({ "input": QUERY }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let _: Value = res.json().await.unwrap();
    t.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    let threads: usize = std::env::var("HEARTH_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let python = std::env::var("HEARTH_BENCH_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/hearth/bench-venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let chunks = corpus();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        database_url: Some(format!("sqlite://{}", dir.path().join("b.db").display())),
        jwt_secret: Some("bench-secret-bench-secret-bench-secret-0123".into()),
        register_rate_limit: 0,
        ..Config::default()
    };
    config.embed.threads = threads;
    let cpu = common::cpu();
    println!("{cpu}; {threads} model threads; {} chunks", chunks.len());

    // The Python reference first, alone on the machine.
    let corpus_file = dir.path().join("corpus.json");
    std::fs::write(&corpus_file, serde_json::to_vec(&chunks).unwrap()).unwrap();
    let out = std::process::Command::new(&python)
        .arg("benches/embed_reference.py")
        .arg(&config.embed.model)
        .arg(&config.embed.tokenizer)
        .arg(&corpus_file)
        .arg(threads.to_string())
        .arg(QUERY)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e} (run scripts/setup.sh --with-bench)"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ref_rate = reference["chunks_per_sec"].as_f64().unwrap();
    let ref_p50 = reference["single_p50_ms"].as_f64().unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (state, app) = hearth::http::app_for(config.clone()).await.unwrap();
        let embedder = state
            .embed
            .get(&state.config.embed, &state.background)
            .await
            .unwrap();
        embedder.embed(chunks[..32].to_vec()).await.unwrap();
        let start = Instant::now();
        let done = embedder.embed(chunks.clone()).await.unwrap();
        let rate = chunks.len() as f64 / start.elapsed().as_secs_f64();
        let tokens: usize = done.iter().map(|e| e.tokens).sum();
        println!(
            "throughput: Hearth {rate:.1} chunks/s, Python reference {ref_rate:.1} chunks/s: ratio {:.2} (mean {:.0} tokens per chunk)",
            rate / ref_rate,
            tokens as f64 / chunks.len() as f64
        );

        // The same query through the embedder alone (queue and batcher, no HTTP).
        let mut direct = Vec::new();
        for i in 0..220 {
            let t = Instant::now();
            embedder.embed(vec![QUERY.to_string()]).await.unwrap();
            if i >= 20 {
                direct.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        let direct_p50 = percentile(&mut direct, 0.5);
        println!(
            "one short query through the embedder (no HTTP): p50 {direct_p50:.2} ms, Python reference call {ref_p50:.2} ms: ratio {:.2}",
            direct_p50 / ref_p50
        );

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/embeddings", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let (_, token) = common::account(&state, "bench", false).await;
        let http = reqwest::Client::new();
        for _ in 0..20 {
            call(&http, &url, &token).await;
        }
        let mut single = Vec::new();
        for _ in 0..200 {
            single.push(call(&http, &url, &token).await);
        }
        let p50 = percentile(&mut single, 0.5);
        println!(
            "one short query through /v1/embeddings: p50 {p50:.2} ms, Python reference call {ref_p50:.2} ms: ratio {:.2}",
            p50 / ref_p50
        );
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let http = http.clone();
                let url = url.clone();
                let token = token.clone();
                tokio::spawn(async move {
                    let mut t = Vec::new();
                    for _ in 0..20 {
                        t.push(call(&http, &url, &token).await);
                    }
                    t
                })
            })
            .collect();
        let start = Instant::now();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let wall = start.elapsed();
        let p50c = percentile(&mut all, 0.5);
        let p99c = percentile(&mut all, 0.99);
        println!(
            "50 concurrent callers: p50 {p50c:.2} ms, p99 {p99c:.2} ms ({:.0} queries/s): p50 ratio to one caller {:.2}",
            all.len() as f64 / wall.as_secs_f64(),
            p50c / p50
        );
        state.background.stop(Duration::from_secs(2)).await;
    });
}

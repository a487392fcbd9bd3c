//! Vector search: Hearth's FAISS indexes (exact `Flat` and `HNSW` with the default
//! `rag.hnsw_m` / `rag.hnsw_ef_search`) beside a plain Rust scan (every vector scored by
//! matrixmultiply's pure-Rust kernel, the best ten kept), on synthetic 384-d unit
//! vectors (the embedder's width). For each size: build time, memory per million vectors
//! (resident memory grown by the build), queries per second one query at a time and in
//! batches of 64, recall@10 against the exact answer, and the flat scan's read rate against
//! this machine's memory bandwidth measured in the same run (summing the same vectors).
//!
//! Data: vectors drawn around 2 000 random centres (embeddings cluster by topic), queries
//! from the same distribution; a fixed seed, so every run searches the same data.
//!
//! Tunables: HEARTH_BENCH_SIZES (default `100000,1000000`), HEARTH_BENCH_QUERIES (default
//! 200), HEARTH_BENCH_HNSW (default 1; 0 leaves HNSW out).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common.rs"]
mod common;

use common::Rng;
use hearth::vector::{CollectionIndex, IndexKind, IndexSettings};
use std::time::Instant;

const DIMS: usize = 384;
const K: usize = 10;
const CENTRES: usize = 2000;

fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

/// `n` unit vectors around `centres`.
fn draw(rng: &mut Rng, centres: &[f32], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n * DIMS];
    for v in out.chunks_exact_mut(DIMS) {
        let c = (rng.next() % CENTRES as u64) as usize;
        let centre = &centres[c * DIMS..(c + 1) * DIMS];
        for (x, m) in v.iter_mut().zip(centre) {
            *x = m + 0.08 * rng.normal();
        }
        normalise(v);
    }
    out
}

/// Scores of every vector against `nq` queries (row-major `n × nq`), by matrixmultiply's
/// pure-Rust kernel: the bench runs in the test profile too, where its own code is not
/// optimised but its dependencies are.
fn scores(data: &[f32], queries: &[f32]) -> Vec<f32> {
    let n = data.len() / DIMS;
    let nq = queries.len() / DIMS;
    let mut out = vec![0f32; n * nq];
    // SAFETY: the slices hold n×DIMS, nq×DIMS and n×nq floats, as the strides say.
    unsafe {
        matrixmultiply::sgemm(
            n,
            DIMS,
            nq,
            1.0,
            data.as_ptr(),
            DIMS as isize,
            1,
            queries.as_ptr(),
            1,
            DIMS as isize,
            0.0,
            out.as_mut_ptr(),
            nq as isize,
            1,
        );
    }
    out
}

/// The best `K` of one query's scores (column `col` of `nq`).
fn top_k(scores: &[f32], col: usize, nq: usize) -> Vec<(i64, f32)> {
    let mut best: Vec<(i64, f32)> = Vec::with_capacity(K + 1);
    let mut floor = f32::MIN;
    for (i, &s) in scores.iter().skip(col).step_by(nq).enumerate() {
        if s > floor || best.len() < K {
            let at = best.partition_point(|b| b.1 >= s);
            best.insert(at, (i as i64, s));
            best.truncate(K);
            if best.len() == K {
                floor = best[K - 1].1;
            }
        }
    }
    best
}

/// The plain Rust scan of one query: every vector scored by a loop the compiler vectorises,
/// the best `K` kept. Timed only in an optimised build (`cargo bench`): in the test profile
/// this bench's own code is not optimised.
fn scan(data: &[f32], query: &[f32]) -> Vec<(i64, f32)> {
    let out: Vec<f32> = data
        .chunks_exact(DIMS)
        .map(|v| {
            let mut acc = [0f32; 8];
            for (x, y) in v.chunks_exact(8).zip(query.chunks_exact(8)) {
                for i in 0..8 {
                    acc[i] += x[i] * y[i];
                }
            }
            acc.iter().sum()
        })
        .collect();
    top_k(&out, 0, 1)
}

/// Resident memory of this process, bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Bytes read per second, best of three on `threads` threads: glibc's `memcmp` over `data`
/// and an equal copy of it (a read-only stream of both, through the C library's vectorised
/// code, so the figure does not depend on how this bench is compiled).
fn bandwidth(data: &[f32], threads: usize) -> f64 {
    let copy = data.to_vec();
    let part = data.len().div_ceil(threads);
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        std::thread::scope(|s| {
            for (a, b) in data.chunks(part).zip(copy.chunks(part)) {
                s.spawn(move || {
                    // SAFETY: both slices hold `size_of_val(a)` readable bytes.
                    let r = unsafe {
                        libc::memcmp(
                            a.as_ptr().cast(),
                            b.as_ptr().cast(),
                            std::mem::size_of_val(a),
                        )
                    };
                    std::hint::black_box(r);
                });
            }
        });
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * std::mem::size_of_val(data) as f64 / best
}

fn recall(found: &[(i64, f32)], truth: &[(i64, f32)]) -> f64 {
    let truth: std::collections::HashSet<i64> = truth.iter().map(|t| t.0).collect();
    found.iter().filter(|f| truth.contains(&f.0)).count() as f64 / K as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

struct Row {
    name: &'static str,
    build_s: f64,
    mib_per_million: f64,
    qps_one: f64,
    p50_ms: f64,
    qps_batch: f64,
    recall: f64,
}

/// Builds a FAISS index of `kind` over `data` and measures it against `truth`.
fn faiss_row(
    name: &'static str,
    kind: IndexKind,
    settings: &IndexSettings,
    data: &[f32],
    queries: &[f32],
    truth: &[Vec<(i64, f32)>],
) -> Row {
    let n = data.len() / DIMS;
    let before = rss();
    let t = Instant::now();
    let mut index = CollectionIndex::new(kind, DIMS as u32, settings).unwrap();
    let ids: Vec<i64> = (0..n as i64).collect();
    for (part, ids) in data.chunks(100_000 * DIMS).zip(ids.chunks(100_000)) {
        index.add(ids, part).unwrap();
    }
    let build_s = t.elapsed().as_secs_f64();
    let grown = rss().saturating_sub(before) as f64;
    let mut times = Vec::new();
    let mut rec = 0.0;
    let t = Instant::now();
    for (q, truth) in queries.chunks_exact(DIMS).zip(truth) {
        let one = Instant::now();
        let found = index.search(q, K).unwrap();
        times.push(one.elapsed().as_secs_f64() * 1e3);
        rec += recall(&found, truth);
    }
    let qps_one = truth.len() as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for batch in queries.chunks(64 * DIMS) {
        std::hint::black_box(index.search(batch, K).unwrap());
    }
    let qps_batch = truth.len() as f64 / t.elapsed().as_secs_f64();
    Row {
        name,
        build_s,
        mib_per_million: grown / (1 << 20) as f64 * 1e6 / n as f64,
        qps_one,
        p50_ms: median(&mut times),
        qps_batch,
        recall: rec / truth.len() as f64,
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::var("HEARTH_BENCH_SIZES")
        .unwrap_or_else(|_| "100000,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let nq: usize = std::env::var("HEARTH_BENCH_QUERIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let with_hnsw = std::env::var("HEARTH_BENCH_HNSW").map_or(true, |v| v != "0");
    let defaults = hearth::config::Config::default().rag;
    let settings = IndexSettings {
        hnsw_above: defaults.hnsw_above,
        hnsw_m: defaults.hnsw_m,
        hnsw_ef_search: defaults.hnsw_ef_search,
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "vector search, {DIMS}-d, top {K}, {nq} queries, {threads} threads, HNSW{} efSearch {}",
        settings.hnsw_m, settings.hnsw_ef_search
    );
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut centres = vec![0f32; CENTRES * DIMS];
    for c in centres.chunks_exact_mut(DIMS) {
        c.iter_mut().for_each(|x| *x = rng.normal());
        normalise(c);
    }
    let queries = draw(&mut Rng(42), &centres, nq);
    for &n in &sizes {
        let data = draw(&mut rng, &centres, n);
        let bytes = std::mem::size_of_val(data.as_slice()) as f64;
        let bw_one = bandwidth(&data, 1);
        let bw_all = bandwidth(&data, threads);
        // The exact answers, by the Rust scan in batches of 64 (timed: it is a contender).
        let t = Instant::now();
        let mut truth: Vec<Vec<(i64, f32)>> = Vec::with_capacity(nq);
        for batch in queries.chunks(64 * DIMS) {
            let s = scores(&data, batch);
            let b = batch.len() / DIMS;
            for col in 0..b {
                truth.push(top_k(&s, col, b));
            }
        }
        let scan_batch = nq as f64 / t.elapsed().as_secs_f64();
        // One query at a time, where this code is optimised.
        let (scan_qps, scan_p50) = if cfg!(debug_assertions) {
            (f64::NAN, f64::NAN)
        } else {
            let mut times = Vec::new();
            let t = Instant::now();
            for (q, exact) in queries.chunks_exact(DIMS).zip(&truth) {
                let one = Instant::now();
                let found = scan(&data, q);
                times.push(one.elapsed().as_secs_f64() * 1e3);
                assert!(recall(&found, exact) >= 0.99);
            }
            (nq as f64 / t.elapsed().as_secs_f64(), median(&mut times))
        };
        let mut rows = vec![Row {
            name: "Rust scan",
            build_s: 0.0,
            mib_per_million: bytes / (1 << 20) as f64 * 1e6 / n as f64,
            qps_one: scan_qps,
            p50_ms: scan_p50,
            qps_batch: scan_batch,
            recall: 1.0,
        }];
        rows.push(faiss_row(
            "FAISS Flat",
            IndexKind::Flat,
            &settings,
            &data,
            &queries,
            &truth,
        ));
        if with_hnsw {
            rows.push(faiss_row(
                "FAISS HNSW",
                IndexKind::Hnsw,
                &settings,
                &data,
                &queries,
                &truth,
            ));
        }
        println!();
        println!(
            "{n} vectors ({:.0} MiB): memory bandwidth {:.1} GB/s on 1 thread, {:.1} GB/s on {threads}",
            bytes / (1 << 20) as f64,
            bw_one / 1e9,
            bw_all / 1e9
        );
        println!("| index | build | MiB per 1M vectors | queries/s (one at a time) | p50 | queries/s (batches of 64) | recall@10 |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for r in &rows {
            let one = if r.qps_one.is_nan() {
                "— (optimised builds only) | —".to_string()
            } else {
                format!("{:.1} | {:.2} ms", r.qps_one, r.p50_ms)
            };
            println!(
                "| {} | {:.1} s | {:.0} | {one} | {:.1} | {:.3} |",
                r.name, r.build_s, r.mib_per_million, r.qps_batch, r.recall
            );
        }
        for r in rows.iter().take(2).filter(|r| !r.p50_ms.is_nan()) {
            let rate = bytes / (r.p50_ms / 1e3);
            println!(
                "{}: one query reads the vectors at {:.1} GB/s = {:.2} of 1-thread bandwidth, {:.2} of {threads}-thread",
                r.name,
                rate / 1e9,
                rate / bw_one,
                rate / bw_all
            );
        }
    }
}

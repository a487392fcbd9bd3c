//! Plugins: the time of one call of a trivial export (`echo` of the `hostile` fixture) through
//! the instance pool, beside the same logic as a native Rust function (direct, and moved to
//! the blocking pool), a bare Extism call in a loop (the floor) and a fresh instantiation per
//! call; the service
//! door (`service::plugins::call`, which adds the permission lookup); throughput at 2, 16 and
//! 64 concurrent callers; and the memory of an idle instance.
//!
//! Needs the example plugins built (`scripts/setup.sh`). Tunable: HEARTH_BENCH_CALLS (default
//! 20000 timed calls per single-caller measurement).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use hearth::auth::caller::{AuthMethod, Caller, Permission};
use hearth::config::Config;
use hearth::plugins::host::CallCtx;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

const INPUT: &[u8] = br#"{"x":1,"text":"hello"}"#;

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Median and p99 in µs of `n` timed runs of `f` (after `n / 10` untimed ones).
async fn time<F, Fut>(n: usize, mut f: F) -> (f64, f64)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..n / 10 {
        f().await;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f().await;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    (
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.99),
    )
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// The native version of `echo`: the bytes back, as a new buffer.
#[inline(never)]
fn native_echo(input: &[u8]) -> Vec<u8> {
    std::hint::black_box(input).to_vec()
}

fn main() {
    let n: usize = std::env::var("HEARTH_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        database_url: Some(format!("sqlite://{}", dir.path().join("b.db").display())),
        jwt_secret: Some("bench-secret-bench-secret-bench-secret-0123".into()),
        ..Config::default()
    };
    config.plugins.bundled_dir = dir.path().join("none");
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(str::to_string)
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "{cpu}; {cores} cores; pool_size {}",
        config.plugins.pool_size
    );

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let wasm =
        std::fs::read(root.join("plugins/target/wasm32-unknown-unknown/release/hostile.wasm"))
            .expect("plugins/target/…/hostile.wasm: run scripts/setup.sh");
    let toml = std::fs::read_to_string(root.join("plugins/hostile/plugin.toml")).unwrap();
    let bundle_dir = dir.path().join("hostile");
    std::fs::create_dir(&bundle_dir).unwrap();
    std::fs::write(bundle_dir.join("plugin.toml"), &toml).unwrap();
    std::fs::write(bundle_dir.join("plugin.wasm"), &wasm).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let state = hearth::App::build(config.clone()).await.unwrap();
        let user = hearth::service::auth::register(
            &state,
            hearth::service::auth::RegisterInput {
                email: "bench@example.com".into(),
                password: "bench-password".into(),
                username: Some("bench".into()),
                name: None,
                admin: true,
                setup_token: None,
            },
            true,
            &Default::default(),
        )
        .await
        .unwrap();
        let caller = Caller {
            user,
            session_id: None,
            method: AuthMethod::Bearer,
            permissions: vec![Permission::Read, Permission::Write, Permission::Admin],
            api_key_id: None,
            api_key_budget: None,
            expires_at: None,
        };
        hearth::service::plugins::install_dir(&state, None, &bundle_dir)
            .await
            .unwrap();
        hearth::service::plugins::act(
            &state,
            &caller,
            "hostile",
            hearth::service::plugins::Action::Enable,
        )
        .await
        .unwrap();
        let pool = state.plugins.pool("hostile").expect("running");
        let ctx = CallCtx {
            state: state.clone(),
            caller: caller.clone(),
            plugin_id: pool.plugin_id,
            plugin: "hostile".into(),
            allowed_hosts: Vec::new(),
            runtime: tokio::runtime::Handle::current(),
        };
        assert_eq!(
            pool.call(ctx.clone(), "echo", INPUT.to_vec())
                .await
                .unwrap(),
            INPUT
        );

        let (native_p50, native_p99) = time(n, || async {
            std::hint::black_box(native_echo(INPUT));
        })
        .await;
        let (hop_p50, hop_p99) = time(n, || async {
            tokio::task::spawn_blocking(|| native_echo(INPUT))
                .await
                .unwrap();
        })
        .await;
        let (pool_p50, pool_p99) = time(n, || {
            let (pool, ctx) = (pool.clone(), ctx.clone());
            async move {
                pool.call(ctx, "echo", INPUT.to_vec()).await.unwrap();
            }
        })
        .await;
        let input = json!({ "x": 1, "text": "hello" });
        let (door_p50, door_p99) = time(n / 4, || {
            let (state, caller, input) = (state.clone(), caller.clone(), input.clone());
            async move {
                hearth::service::plugins::call(&state, &caller, "hostile", "echo", &input)
                    .await
                    .unwrap();
            }
        })
        .await;
        // The floor: one instance called in a loop on one blocking thread (no pool, no hop).
        let bare = {
            let (pool2, ctx) = (pool.clone(), ctx.clone());
            let compiled = hearth::plugins::pool::compile(
                &pool2.manifest,
                &wasm,
                hearth::plugins::pool::CallLimits::of(&pool2.manifest, &state.config.plugins),
            )
            .unwrap();
            tokio::task::spawn_blocking(move || {
                let mut p = extism::Plugin::new_from_compiled(&compiled).unwrap();
                let mut samples = Vec::with_capacity(n);
                for i in 0..n + n / 10 {
                    let t = Instant::now();
                    let out: Vec<u8> = p
                        .call_with_host_context("echo", INPUT, ctx.clone())
                        .unwrap();
                    std::hint::black_box(out);
                    if i >= n / 10 {
                        samples.push(t.elapsed().as_secs_f64() * 1e6);
                    }
                }
                (
                    percentile(&mut samples, 0.5),
                    percentile(&mut samples, 0.99),
                )
            })
            .await
            .unwrap()
        };
        // A fresh instance for every call (what a host without a pool does).
        let limits = hearth::plugins::pool::CallLimits::of(&pool.manifest, &state.config.plugins);
        let compiled =
            Arc::new(hearth::plugins::pool::compile(&pool.manifest, &wasm, limits).unwrap());
        let (fresh_p50, fresh_p99) = time(n / 20, || {
            let (compiled, ctx) = (compiled.clone(), ctx.clone());
            async move {
                tokio::task::spawn_blocking(move || {
                    let mut p = extism::Plugin::new_from_compiled(&compiled).unwrap();
                    let out: Vec<u8> = p.call_with_host_context("echo", INPUT, ctx).unwrap();
                    out
                })
                .await
                .unwrap();
            }
        })
        .await;

        println!();
        println!("| one call of `echo` | p50 µs | p99 µs | p50 vs pooled |");
        println!("|---|---:|---:|---:|");
        for (what, p50, p99) in [
            ("native Rust function, direct", native_p50, native_p99),
            (
                "native Rust function moved to the blocking pool (`spawn_blocking`, for scale)",
                hop_p50,
                hop_p99,
            ),
            (
                "bare Extism call, one instance in a loop on one thread (the floor)",
                bare.0,
                bare.1,
            ),
            ("**pooled wasm call** (`Pool::call`)", pool_p50, pool_p99),
            (
                "service door (`plugins::call`: + permission lookup)",
                door_p50,
                door_p99,
            ),
            ("fresh instance per call", fresh_p50, fresh_p99),
        ] {
            println!("| {what} | {p50:.2} | {p99:.2} | {:.2}× |", p50 / pool_p50);
        }

        println!();
        println!("| concurrent callers | calls/s | p50 µs | p99 µs |");
        println!("|---:|---:|---:|---:|");
        for callers in [2usize, 16, 64] {
            let deadline = Instant::now() + Duration::from_secs(3);
            let mut tasks = Vec::new();
            for _ in 0..callers {
                let (pool, ctx) = (pool.clone(), ctx.clone());
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        pool.call(ctx.clone(), "echo", INPUT.to_vec())
                            .await
                            .unwrap();
                        lat.push(t.elapsed().as_secs_f64() * 1e6);
                    }
                    lat
                }));
            }
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            let rate = all.len() as f64 / 3.0;
            let p50 = percentile(&mut all, 0.5);
            let p99 = percentile(&mut all, 0.99);
            println!("| {callers} | {rate:.0} | {p50:.1} | {p99:.1} |");
        }

        // Memory of idle instances: 64 created, each called once, then held.
        let compiled = compiled.clone();
        let ctx2 = ctx.clone();
        let per_instance = tokio::task::spawn_blocking(move || {
            let before = rss_bytes();
            let mut held = Vec::new();
            for _ in 0..64 {
                let mut p = extism::Plugin::new_from_compiled(&compiled).unwrap();
                let _: Vec<u8> = p
                    .call_with_host_context("echo", INPUT, ctx2.clone())
                    .unwrap();
                held.push(p);
            }
            let after = rss_bytes();
            drop(held);
            (after.saturating_sub(before)) as f64 / 64.0
        })
        .await
        .unwrap();
        println!();
        println!(
            "memory per idle instance (RSS growth over 64, each called once): {:.0} KiB",
            per_instance / 1024.0
        );
        println!("module size: {} KiB", wasm.len() / 1024);
    });
}

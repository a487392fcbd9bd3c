//! Token streaming through Hearth against the same tokens taken straight from the upstream,
//! side by side, and local decode speed through Hearth against a bare llama-cpp-2 loop.
//!
//! Part 1: the scripted OpenAI-compatible upstream (`tests/mock_llm.rs`) streams TOKENS
//! tokens every GAP_MS, each token carrying its emission time. Hearth runs as its own process
//! (this binary with `--serve-hearth`), as in production; the upstream and every client run
//! in this process. For 1, 100 and 1000 concurrent streams it measures time to first token
//! and per-token latency (arrival − emission) along four paths:
//!   - direct: SSE clients reading the upstream itself (the reference),
//!   - relay: the same through a bare TCP relay in Hearth's process (the least any proxy
//!     adds: one more loopback hop, no parsing),
//!   - /v1: Hearth's OpenAI-compatible SSE (stateless, nothing stored),
//!   - subscription: `chatEvents` subscriptions over graphql-ws, turns started with
//!     `sendMessage` (stores the user message, streams, stores the answer).
//!
//! Each client runs two answers back to back, the first ones started evenly over one answer's
//! duration; only the second answers are measured, so n streams are open throughout and turns
//! start at a steady rate (HEARTH_BENCH_LOCKSTEP=1: one answer each, all started at once).
//! It also reports CPU time per token of Hearth's process and of this one, and the resident
//! memory each idle subscription adds to Hearth's process.
//!
//! Part 2: the embedded GGUF decodes greedily through Hearth's `/v1` stream and in a bare
//! llama-cpp-2 loop with the same context size and threads; tokens/s of the decode phase.
//!
//! Environment: HEARTH_BENCH_STREAMS (default "1,100,1000"), HEARTH_BENCH_TOKENS,
//! HEARTH_BENCH_GAP_MS, HEARTH_BENCH_PATHS (default "relay,v1,subscription"),
//! HEARTH_BENCH_SERVER_CPUS (a `taskset -c` list for Hearth's process, on machines with cores
//! to spare for the clients), HEARTH_BENCH_DECODE=0 (skip part 2), HEARTH_BENCH_CHECKPOINT_MS
//! (`llm.checkpoint_ms` of Hearth's process; 0 turns answer checkpoints off).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/mock_llm.rs"]
mod mock_llm;

use futures_util::{SinkExt, StreamExt};
use mock_llm::{now_us, MockLlm, Script};
use serde_json::{json, Value};
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Tokens per answer and the gap between them, unless HEARTH_BENCH_TOKENS / HEARTH_BENCH_GAP_MS
/// say otherwise: a chat answer of a few paragraphs at a fast model's pace.
const TOKENS: usize = 128;
const GAP_MS: u64 = 20;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one client saw of its measured answer.
#[derive(Default)]
struct Lat {
    ttft_us: Vec<u64>,
    token_us: Vec<u64>,
}

impl Lat {
    fn merge(&mut self, o: Lat) {
        self.ttft_us.extend(o.ttft_us);
        self.token_us.extend(o.token_us);
    }
}

/// One path at one concurrency: the latencies and what it cost each process.
#[derive(Default)]
struct Run {
    lat: Lat,
    /// Tokens received over every answer, measured or not.
    tokens_all: u64,
    /// CPU time (µs) of Hearth's process and of this one while the streams ran.
    cpu_server_us: u64,
    cpu_load_us: u64,
}

fn pct(v: &[u64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_unstable();
    if s.is_empty() {
        return f64::NAN;
    }
    s[((s.len() - 1) as f64 * p).round() as usize] as f64
}

/// User + system CPU time of a process so far, in µs (clock-tick resolution).
fn cpu_us(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15, the 12th and 13th after the command name.
    (f.get(11).unwrap_or(&0) + f.get(12).unwrap_or(&0)) * 10_000
}

fn rss_kb(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|v| v.parse().unwrap_or(0)))
        })
        .unwrap_or(0)
}

/// How the clients of one run are paced.
#[derive(Clone, Copy)]
struct Pace {
    /// Answers per client; only the last is measured.
    rounds: usize,
    /// First answers start evenly over this span.
    spread: Duration,
}

impl Pace {
    fn offset(&self, i: usize, n: usize) -> Duration {
        self.spread.mul_f64(i as f64 / n as f64)
    }
}

/// Hearth's process, started from this binary.
struct Server {
    child: std::process::Child,
    pid: String,
    base: String,
    relay: String,
}

impl Server {
    fn start(upstream: &str) -> Server {
        let exe = std::env::current_exe().unwrap();
        let mut cmd = match std::env::var("HEARTH_BENCH_SERVER_CPUS") {
            Ok(cpus) => {
                let mut c = std::process::Command::new("taskset");
                c.arg("-c").arg(cpus).arg(exe);
                c
            }
            Err(_) => std::process::Command::new(exe),
        };
        let mut child = cmd
            .args(["--serve-hearth", upstream])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("Hearth's process starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let mut parts = line.split_whitespace();
        let (base, relay) = (
            parts.next().unwrap().to_string(),
            parts.next().unwrap().to_string(),
        );
        Server {
            pid: child.id().to_string(),
            child,
            base,
            relay,
        }
    }

    fn cpu_us(&self) -> u64 {
        cpu_us(&self.pid)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Closing its stdin ends Hearth's process.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// `--serve-hearth ADDR`: Hearth alone on this process's runtime, plus a bare TCP relay to
/// the upstream at ADDR; prints both base URLs and serves until stdin closes.
fn serve_child(upstream: String) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let mut config = hearth::config::Config {
            data_dir: dir.path().to_path_buf(),
            jwt_secret: Some("bench-secret-bench-secret-bench-secret-000".into()),
            login_rate_limit: 0,
            // A thousand clients from one address would spend the seeds' budgets at once.
            rate_limits: hearth::config::RateLimitsConfig::off(),
            ..Default::default()
        };
        config.llm.queue_depth = 4096;
        if let Some(ms) = std::env::var("HEARTH_BENCH_CHECKPOINT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            config.llm.checkpoint_ms = ms;
        }
        let (_state, app) = hearth::http::app_for(config).await.expect("hearth builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            hearth::http::serve(listener, app, std::future::pending())
                .await
                .unwrap()
        });
        let relay = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay_base = format!("http://{}", relay.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = relay.accept().await {
                let to = upstream.clone();
                tokio::spawn(async move {
                    let mut outbound = tokio::net::TcpStream::connect(&to).await.unwrap();
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        });
        println!("{base} {relay_base}");
        std::io::stdout().flush().unwrap();
        tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new()))
            .await
            .unwrap()
            .ok();
    });
}

/// Calls `f` with each JSON `data:` payload of an SSE response, as it arrives.
async fn each_sse_json(res: reqwest::Response, mut f: impl FnMut(Value)) {
    let mut bytes = res.bytes_stream();
    let mut buf = Vec::new();
    while let Some(Ok(piece)) = bytes.next().await {
        buf.extend_from_slice(&piece);
        while let Some(i) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let line = String::from_utf8_lossy(&line);
            if let Some(v) = line
                .trim()
                .strip_prefix("data: ")
                .and_then(|d| serde_json::from_str::<Value>(d).ok())
            {
                f(v);
            }
        }
    }
}

/// Reads an OpenAI SSE stream, timing stamped tokens; returns the latencies and the count.
async fn read_sse(res: reqwest::Response, t0: u64) -> (Lat, u64) {
    let mut lat = Lat::default();
    let mut count = 0;
    each_sse_json(res, |v| {
        if let Some(stamp) = v["choices"][0]["delta"]["content"]
            .as_str()
            .and_then(|c| c.trim().parse::<u64>().ok())
        {
            let now = now_us();
            if lat.ttft_us.is_empty() {
                lat.ttft_us.push(now - t0);
            }
            lat.token_us.push(now.saturating_sub(stamp));
            count += 1;
        }
    })
    .await;
    (lat, count)
}

/// Waits for every client and charges each process the CPU it spent since `cpu0`
/// (Hearth's, this one's).
async fn collect(
    tasks: Vec<tokio::task::JoinHandle<(Lat, u64)>>,
    server: &Server,
    cpu0: (u64, u64),
) -> Run {
    let mut run = Run::default();
    for t in tasks {
        let (lat, all) = t.await.unwrap();
        run.lat.merge(lat);
        run.tokens_all += all;
    }
    run.cpu_server_us = server.cpu_us() - cpu0.0;
    run.cpu_load_us = cpu_us("self") - cpu0.1;
    run
}

/// `n` clients streaming SSE completions from `url` (the upstream, the relay or Hearth's /v1).
async fn sse_run(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    n: usize,
    pace: Pace,
    server: &Server,
) -> Run {
    let (cpu_s, cpu_l) = (server.cpu_us(), cpu_us("self"));
    let mut tasks = Vec::new();
    for i in 0..n {
        let (http, url, token) = (http.clone(), url.to_string(), token.map(str::to_string));
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(pace.offset(i, n)).await;
            let mut last = (Lat::default(), 0);
            let mut all = 0;
            for _ in 0..pace.rounds {
                let t0 = now_us();
                let mut req = http.post(&url).json(&json!({
                    "model": "bench", "stream": true, "max_tokens": 512,
                    "messages": [{"role": "user", "content": "stream please"}],
                }));
                if let Some(t) = &token {
                    req = req.bearer_auth(t);
                }
                let res = req.send().await.expect("stream opens");
                assert!(res.status().is_success(), "{}", res.status());
                last = read_sse(res, t0).await;
                all += last.1;
            }
            (last.0, all)
        }));
    }
    collect(tasks, server, (cpu_s, cpu_l)).await
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn subscribe(base: &str, token: &str, chat: &str) -> Ws {
    let url = format!("{}/graphql/ws", base.replace("http://", "ws://"));
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(config), false)
        .await
        .expect("ws");
    ws.send(Message::Text(
        json!({"type": "connection_init", "payload": {"token": token}})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    loop {
        if let Some(Ok(Message::Text(t))) = ws.next().await {
            if t.contains("connection_ack") {
                break;
            }
        }
    }
    let q = format!("subscription {{ chatEvents(chatId: \"{chat}\") {{ type delta }} }}");
    ws.send(Message::Text(
        json!({"id": "1", "type": "subscribe", "payload": {"query": q}})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    ws
}

async fn gql(http: &reqwest::Client, base: &str, token: &str, query: &str, vars: Value) -> Value {
    http.post(format!("{base}/graphql"))
        .bearer_auth(token)
        .json(&json!({"query": query, "variables": vars}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `n` chats, each with a `chatEvents` subscription, each sent messages per `pace`. Returns
/// the run and the RSS each idle subscription added to Hearth's process (KiB).
async fn subscription_run(
    http: &reqwest::Client,
    server: &Server,
    token: &str,
    n: usize,
    pace: Pace,
) -> (Run, f64) {
    let base = server.base.as_str();
    let mut chats = Vec::new();
    for _ in 0..n {
        let v = gql(
            http,
            base,
            token,
            "mutation { createChat(input: {}) { id } }",
            json!({}),
        )
        .await;
        chats.push(v["data"]["createChat"]["id"].as_str().unwrap().to_string());
    }
    let before = rss_kb(&server.pid);
    let mut sockets = Vec::new();
    for c in &chats {
        sockets.push(subscribe(base, token, c).await);
    }
    tokio::time::sleep(Duration::from_millis(500 + n as u64)).await;
    let per_sub = (rss_kb(&server.pid).saturating_sub(before)) as f64 / n as f64;
    let (cpu_s, cpu_l) = (server.cpu_us(), cpu_us("self"));
    let mut tasks = Vec::new();
    for (i, (ws, chat)) in sockets.into_iter().zip(chats).enumerate() {
        let (http, base, token) = (http.clone(), base.to_string(), token.to_string());
        tasks.push(tokio::spawn(async move {
            let (_, mut rx) = ws.split();
            tokio::time::sleep(pace.offset(i, n)).await;
            let mut lat = Lat::default();
            let mut all = 0;
            for round in 0..pace.rounds {
                lat = Lat::default();
                let t0 = now_us();
                let (http, base, token, chat) = (http.clone(), base.clone(), token.clone(), chat.clone());
                let sent = tokio::spawn(async move {
                    gql(&http, &base, &token,
                        "mutation($c: ID!) { sendMessage(input: {chatId: $c, content: \"stream please\"}) { assistantMessageId } }",
                        json!({"c": chat})).await
                });
                while let Some(Ok(m)) = rx.next().await {
                    let Message::Text(t) = m else { continue };
                    let v: Value = serde_json::from_str(&t).unwrap();
                    let e = &v["payload"]["data"]["chatEvents"];
                    match e["type"].as_str() {
                        Some("TOKEN") => {
                            let now = now_us();
                            if lat.ttft_us.is_empty() {
                                lat.ttft_us.push(now - t0);
                            }
                            let stamp: u64 = e["delta"].as_str().unwrap().trim().parse().unwrap();
                            lat.token_us.push(now.saturating_sub(stamp));
                            all += 1;
                        }
                        Some("RESPONSE") => break,
                        Some("ERROR") => panic!("turn failed in round {round}: {v}"),
                        _ => {}
                    }
                }
                let r = sent.await.unwrap();
                assert!(r["errors"].is_null(), "{r}");
            }
            (lat, all)
        }));
    }
    (collect(tasks, server, (cpu_s, cpu_l)).await, per_sub)
}

fn row(name: &str, n: usize, r: &Run, reference: Option<&Lat>) {
    let l = &r.lat;
    let (t50, t99) = (pct(&l.ttft_us, 0.5), pct(&l.ttft_us, 0.99));
    let (k50, k99) = (pct(&l.token_us, 0.5), pct(&l.token_us, 0.99));
    let added = reference.map(|r| {
        format!(
            " | added TTFT p50 {:.0} µs, p99 {:.0} µs | added per-token p50 {:.0} µs, p99 {:.0} µs",
            t50 - pct(&r.ttft_us, 0.5),
            t99 - pct(&r.ttft_us, 0.99),
            k50 - pct(&r.token_us, 0.5),
            k99 - pct(&r.token_us, 0.99)
        )
    });
    let per = |cpu: u64| cpu as f64 / r.tokens_all.max(1) as f64;
    println!(
        "{name:>13} n={n:<5} tokens={:<6} CPU/token Hearth {:.1} µs, clients+upstream {:.1} µs | TTFT p50 {t50:.0} µs p99 {t99:.0} µs | per-token p50 {k50:.0} µs p99 {k99:.0} µs{}",
        l.token_us.len(),
        per(r.cpu_server_us),
        per(r.cpu_load_us),
        added.unwrap_or_default()
    );
}

/// Decode tokens/s of a bare llama-cpp-2 greedy loop producing `count` tokens; with `handoff`
/// each token is also sent to a task on the async runtime, as any server must do.
fn bare_decode(
    path: &str,
    prompt: &str,
    count: usize,
    n_ctx: u32,
    handoff: Option<&tokio::sync::mpsc::Sender<u32>>,
) -> f64 {
    use llama_cpp_2::context::params::LlamaContextParams;
    use llama_cpp_2::llama_batch::LlamaBatch;
    use llama_cpp_2::model::params::LlamaModelParams;
    use llama_cpp_2::model::LlamaModel;
    use llama_cpp_2::sampling::LlamaSampler;
    let backend = hearth::llm::local::backend().unwrap();
    let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default()).unwrap();
    let text =
        hearth::llm::local::render(&model, &[hearth::llm::PromptMessage::new("user", prompt)])
            .unwrap();
    let tokens = model.vocab().tokenize(text.as_bytes(), true, true);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as i32;
    let params = LlamaContextParams::default()
        .with_n_ctx(std::num::NonZeroU32::new(n_ctx))
        .with_n_batch(n_ctx)
        .with_n_ubatch(512)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = model.new_context(backend, params).unwrap();
    let mut batch = LlamaBatch::new(n_ctx as usize, 1);
    for (i, t) in tokens.iter().enumerate() {
        batch
            .add(*t, i as i32, &[0], i == tokens.len() - 1)
            .unwrap();
    }
    ctx.decode(&mut batch).unwrap();
    let mut sampler = LlamaSampler::greedy();
    let mut pos = tokens.len() as i32;
    let mut first = None;
    let mut produced = 0;
    while produced < count {
        let t = sampler.sample(&ctx, batch.n_tokens() - 1);
        let _piece = model.vocab().token_to_piece(t, false, None);
        if let Some(tx) = handoff {
            tx.blocking_send(t.0 as u32).unwrap();
        }
        produced += 1;
        if first.is_none() {
            first = Some(Instant::now());
        }
        if model.vocab().is_eog(t) {
            break;
        }
        batch.clear();
        batch.add(t, pos, &[0], true).unwrap();
        pos += 1;
        ctx.decode(&mut batch).unwrap();
    }
    (produced - 1) as f64 / first.unwrap().elapsed().as_secs_f64()
}

/// Decode tokens/s through Hearth's `/v1` stream; returns (tokens/s, completion tokens).
async fn hearth_decode(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    prompt: &str,
    max: u32,
) -> (f64, usize) {
    let res = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(token)
        .json(&json!({"model": "smollm2-135m-instruct", "stream": true, "temperature": 0.0, "max_tokens": max,
                      "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": prompt}]}))
        .send()
        .await
        .unwrap();
    let (mut first, mut last, mut count) = (None, Instant::now(), 0usize);
    each_sse_json(res, |v| {
        if v["choices"][0]["delta"]["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
        {
            first.get_or_insert_with(Instant::now);
            last = Instant::now();
        }
        if let Some(c) = v["usage"]["completion_tokens"].as_u64() {
            count = c as usize;
        }
    })
    .await;
    (
        (count - 1) as f64 / (last - first.unwrap()).as_secs_f64(),
        count,
    )
}

/// Decode tokens/s of Hearth's provider layer (`LlmHub::generate`), no HTTP.
async fn engine_decode(state: &hearth::state::AppState, prompt: &str, max: u32) -> f64 {
    let row = hearth::service::models::get(state, "smollm2-135m-instruct")
        .await
        .unwrap();
    let params = hearth::llm::GenerateParams {
        temperature: 0.0,
        max_tokens: max,
    };
    let msgs = vec![hearth::llm::PromptMessage::new("user", prompt)];
    let mut s = state.llm.generate(&row, msgs, params).await.unwrap();
    let (mut first, mut last, mut count) = (None, Instant::now(), 0u32);
    while let Some(c) = s.next().await {
        match c.unwrap() {
            hearth::llm::Chunk::Token(_) => {
                first.get_or_insert_with(Instant::now);
                last = Instant::now();
            }
            hearth::llm::Chunk::Done { usage, .. } => count = usage.completion_tokens,
        }
    }
    (count - 1) as f64 / (last - first.unwrap()).as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve-hearth") {
        return serve_child(args[i + 1].clone());
    }
    let levels: Vec<usize> = std::env::var("HEARTH_BENCH_STREAMS")
        .unwrap_or_else(|_| "1,100,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        mock_llm::epoch();
        let mock = MockLlm::start().await;
        let (tokens_n, gap_ms) = (env_or("HEARTH_BENCH_TOKENS", TOKENS as u64) as usize, env_or("HEARTH_BENCH_GAP_MS", GAP_MS));
        let tokens = vec!["x"; tokens_n];
        let mut script = Script::tokens(&tokens);
        script.token_delay = Duration::from_millis(gap_ms);
        script.stamp = true;
        mock.set_default(script);
        let upstream_addr = mock.base_url.trim_start_matches("http://").trim_end_matches("/v1").to_string();
        let server = Server::start(&upstream_addr);
        let base = server.base.clone();
        let http = reqwest::Client::builder().pool_max_idle_per_host(2048).build().unwrap();
        let token = bench_login(&http, &base).await;
        let r = gql(&http, &base, &token,
            "mutation($i: ModelInput!) { registerModel(input: $i) { key } }",
            json!({"i": {"key": "bench", "provider": "openai", "baseUrl": mock.base_url, "maxConcurrent": 1024, "contextLength": 8192}})).await;
        assert!(r["errors"].is_null(), "{r}");
        gql(&http, &base, &token, "mutation { setDefaultModel(key: \"bench\") }", json!({})).await;

        let lockstep = std::env::var("HEARTH_BENCH_LOCKSTEP").as_deref() == Ok("1");
        let pace = if lockstep {
            Pace { rounds: 1, spread: Duration::ZERO }
        } else {
            Pace { rounds: 2, spread: Duration::from_millis(gap_ms * tokens_n as u64) }
        };
        println!(
            "# Part 1: {tokens_n} tokens every {gap_ms} ms per stream, {}; latencies in µs (arrival − emission)",
            if lockstep { "all streams started at once" } else { "steady state (second answer of each client)" }
        );
        let upstream = format!("{}/chat/completions", mock.base_url);
        let relay = format!("{}/v1/chat/completions", server.relay);
        let hearth_v1 = format!("{base}/v1/chat/completions");
        let paths = std::env::var("HEARTH_BENCH_PATHS").unwrap_or_else(|_| "relay,v1,subscription".into());
        for &n in &levels {
            let direct = sse_run(&http, &upstream, None, n, pace, &server).await;
            row("direct", n, &direct, None);
            if paths.contains("relay") {
                let r = sse_run(&http, &relay, None, n, pace, &server).await;
                row("relay", n, &r, Some(&direct.lat));
            }
            if paths.contains("v1") {
                let v1 = sse_run(&http, &hearth_v1, Some(&token), n, pace, &server).await;
                row("/v1 SSE", n, &v1, Some(&direct.lat));
            }
            if paths.contains("subscription") {
                let (sub, per_sub_kb) = subscription_run(&http, &server, &token, n, pace).await;
                row("subscription", n, &sub, Some(&direct.lat));
                println!("{:>13} n={n:<5} RSS added to Hearth per idle subscription: {per_sub_kb:.1} KiB", "memory");
            }
        }
        drop(server);

        if std::env::var("HEARTH_BENCH_DECODE").as_deref() == Ok("0") {
            return;
        }
        // Part 2 runs Hearth in this process, to call its provider layer directly too.
        let dir = tempfile::tempdir().unwrap();
        let config = hearth::config::Config {
            data_dir: dir.path().to_path_buf(),
            jwt_secret: Some("bench-secret-bench-secret-bench-secret-000".into()),
            login_rate_limit: 0,
            ..Default::default()
        };
        let (state, app) = hearth::http::app_for(config).await.expect("hearth builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { hearth::http::serve(listener, app, std::future::pending()).await.unwrap() });
        let token = bench_login(&http, &base).await;
        println!("# Part 2: local decode, greedy, SmolLM2-135M Q4_1");
        let path = std::fs::canonicalize(".hearth/assets/SmolLM2-135M-Instruct.Q4_1.gguf").expect("make setup fetched the model");
        let prompt = "Write a long story about a dragon who learns to cook.";
        // The four variants alternate, five rounds, so drift on a shared VM hits them alike.
        let count = hearth_decode(&http, &base, &token, prompt, 256).await.1; // load and warm
        let p = path.display().to_string();
        let (mut through, mut engine, mut bare, mut handed) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(256);
        let sink = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        for _ in 0..5 {
            through.push(hearth_decode(&http, &base, &token, prompt, count as u32).await.0);
            engine.push(engine_decode(&state, prompt, count as u32).await);
            let (p1, p2, tx2) = (p.clone(), p.clone(), tx.clone());
            bare.push(tokio::task::spawn_blocking(move || bare_decode(&p1, prompt, count, 2048, None)).await.unwrap());
            handed.push(tokio::task::spawn_blocking(move || bare_decode(&p2, prompt, count, 2048, Some(&tx2))).await.unwrap());
        }
        drop(tx);
        sink.await.unwrap();
        println!("{:>13} bare llama-cpp-2 handing each token to an async task: {:.1} tok/s", "decode", median(handed));
        let (h, e, b) = (median(through), median(engine), median(bare));
        println!(
            "{:>13} {count} tokens (medians of 5): bare llama-cpp-2 {b:.1} tok/s | Hearth provider {e:.1} tok/s, ratio {:.3} | Hearth /v1 SSE with its client in-process {h:.1} tok/s, ratio {:.3}",
            "decode", e / b, h / b
        );
    });
}

/// Registers the bench user and returns an access token.
async fn bench_login(http: &reqwest::Client, base: &str) -> String {
    let reg = http
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"email": "b@example.com", "password": "password123", "trigramme": "bench"}))
        .send()
        .await
        .unwrap();
    assert!(reg.status().is_success());
    let login: Value = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": "bench", "password": "password123"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["access_token"].as_str().unwrap().to_string()
}

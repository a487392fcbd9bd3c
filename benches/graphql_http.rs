//! GraphQL over HTTP against a hello-world route of the same axum stack, in one run; and the
//! same hello-world behind Hearth's request layers (request id, rate limit, metrics, counting),
//! for what they add per request.
//!
//! Starts Hearth (SQLite, release build) on a seeded database and a plain axum hello-world
//! server on the same runtime, then drives both with `wrk` (installed by `make bench`) and
//! prints requests/s, p50/p99 latency and the ratio. Tunables: HEARTH_BENCH_SECS (default
//! 10), HEARTH_BENCH_CONNS (default 32).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::routing::get;
use axum::Router;
use hearth::auth::tokens::TokenKind;
use hearth::config::Config;
use hearth::service::auth::{ClientInfo, RegisterInput};
use hearth::service::{agents, auth, chats};
use std::process::Command;
use std::time::Duration;

/// The issue's benchmark query; HEARTH_BENCH_QUERY replaces it for exploration.
const DEFAULT_QUERY: &str =
    "{ me { chats(first: 20) { title agent { name } messages(last: 10) { content } } } }";

struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
}

fn parse_latency(v: &str) -> f64 {
    let v = v.trim();
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => f64::NAN,
    }
}

fn wrk(url: &str, script: Option<&std::path::Path>, secs: u64, conns: u32) -> Run {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t2",
        &format!("-c{conns}"),
        &format!("-d{secs}s"),
        "--latency",
    ]);
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    cmd.arg(url);
    let out = cmd.output().expect("wrk runs (make bench installs it)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut run = Run {
        rps: f64::NAN,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        non_2xx: 0,
    };
    for line in text.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("Requests/sec:") {
            run.rps = v.trim().parse().unwrap_or(f64::NAN);
        } else if let Some(v) = l.strip_prefix("50%") {
            run.p50_ms = parse_latency(v);
        } else if let Some(v) = l.strip_prefix("99%") {
            run.p99_ms = parse_latency(v);
        } else if let Some(v) = l.strip_prefix("Non-2xx or 3xx responses:") {
            run.non_2xx = v.trim().parse().unwrap_or(0);
        }
    }
    assert!(run.rps.is_finite(), "could not parse wrk output:\n{text}");
    run
}

async fn seed(state: &hearth::state::AppState) -> String {
    let user = auth::register(
        state,
        RegisterInput {
            email: "bench@example.com".into(),
            password: "benchmark-pass".into(),
            username: Some("bench".into()),
            name: None,
            admin: false,
            setup_token: None,
        },
        true,
        &ClientInfo::default(),
    )
    .await
    .expect("register");
    let pair = auth::login(state, "bench", "benchmark-pass", ClientInfo::default())
        .await
        .expect("login");
    let caller = hearth::auth::Caller {
        user: user.clone(),
        session_id: Some(pair.session.id.clone()),
        method: hearth::auth::AuthMethod::Bearer,
        permissions: vec![
            hearth::auth::Permission::Read,
            hearth::auth::Permission::Write,
        ],
        api_key_id: None,
        api_key_budget: None,
        expires_at: None,
    };
    let mut agent_ids = Vec::new();
    for i in 0..20 {
        let a = agents::create(
            state,
            &caller,
            agents::AgentInput {
                name: format!("Agent {i}"),
                ..Default::default()
            },
        )
        .await
        .expect("agent");
        agent_ids.push(a.id);
    }
    for c in 0..50 {
        let chat = chats::create(
            state,
            &caller,
            chats::ChatInput {
                agent_id: Some(agent_ids[c % agent_ids.len()]),
                title: Some(format!("Chat {c}")),
                model: None,
            },
        )
        .await
        .expect("chat");
        for m in 0..30 {
            let role = if m % 2 == 0 {
                hearth::db::enums::MessageRole::User
            } else {
                hearth::db::enums::MessageRole::Assistant
            };
            chats::append_message(
                state,
                &caller,
                chat.id,
                role,
                &format!("Message {m} of chat {c}: some realistic length of text for a chat turn."),
                None,
            )
            .await
            .expect("message");
        }
    }
    // A long-lived access token so the run never expires mid-way.
    state
        .jwt
        .issue(
            TokenKind::Access,
            user.id,
            user.role.as_str(),
            &pair.session.id,
            24 * 3600,
        )
        .expect("token")
}

fn main() {
    let query_owned =
        std::env::var("HEARTH_BENCH_QUERY").unwrap_or_else(|_| DEFAULT_QUERY.to_string());
    let custom = query_owned != DEFAULT_QUERY;
    let query = query_owned.as_str();
    let secs: u64 = std::env::var("HEARTH_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let conns: u32 = std::env::var("HEARTH_BENCH_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (hearth_url, hello_url, observed_url, plain_url, floor_url, token, inline) =
        rt.block_on(async {
            let mut config = Config {
                data_dir: dir.path().to_path_buf(),
                ..Config::default()
            };
            // Budgets no run can spend: the limiter runs on every request and never refuses.
            let endless = hearth::config::Budget::new(1_000_000_000, 1);
            config.rate_limits.graphql = endless;
            config.rate_limits.api = endless;
            let (state, app) = hearth::http::app_for(config).await.expect("hearth builds");
            let token = seed(&state).await;
            let l1 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let a1 = l1.local_addr().unwrap();
            tokio::spawn(async move {
                hearth::http::serve(l1, app, std::future::pending())
                    .await
                    .unwrap()
            });
            let hello: Router = Router::new()
                .route("/hello", get(|| async { "Hello, World!" }))
                .with_state(());
            let l2 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let a2 = l2.local_addr().unwrap();
            let with_peer =
                |r: Router| r.into_make_service_with_connect_info::<std::net::SocketAddr>();
            tokio::spawn(async move { axum::serve(l2, with_peer(hello)).await.unwrap() });
            // The same hello-world behind the layers every Hearth request passes: request id,
            // route, rate limit (a seed 000 `/api/*` door: the `api` budget of the client
            // address), request count, Prometheus counter and histogram, slow-request check.
            let hello_api = || Router::new().route("/api/hello", get(|| async { "Hello, World!" }));
            let enforce = || hearth::http::limit::LimitLayer(state.clone());
            let observe = || hearth::http::observe::ObserveLayer(state.clone());
            let normalize = || hearth::http::observe::RequestIdLayer;
            // `with_state` turns the handlers into routes once, as Hearth's router does; without
            // it axum would apply the layers again on every request.
            let observed: Router = hello_api()
                .route_layer(enforce())
                .layer(observe())
                .with_state(());
            let l3 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let a3 = l3.local_addr().unwrap();
            let observed_inline = observed.clone();
            tokio::spawn(async move { axum::serve(l3, with_peer(observed)).await.unwrap() });
            // The same without the rate limiter and the metrics (`limit::LimitLayer`,
            // `observe::observe`): the request id and error bodies only, what the goal's
            // "without" measures.
            let plain: Router = hello_api().layer(normalize()).with_state(());
            let l4 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let a4 = l4.local_addr().unwrap();
            let plain_inline = plain.clone();
            // Each of the two alone, to tell their costs apart (the metrics layer includes the
            // request id's).
            let limit_only: Router = hello_api()
                .route_layer(enforce())
                .layer(normalize())
                .with_state(());
            let metrics_only: Router = hello_api().layer(observe()).with_state(());
            // The floor: the request-id layer and the least any limiter + metrics must do.
            let floor: Router = hello_api()
                .layer(tower::layer::layer_fn(Floor::new))
                .layer(normalize())
                .with_state(());
            tokio::spawn(async move { axum::serve(l4, with_peer(plain)).await.unwrap() });
            let l5 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let a5 = l5.local_addr().unwrap();
            let floor_served = floor.clone();
            tokio::spawn(async move { axum::serve(l5, with_peer(floor_served)).await.unwrap() });
            (
                format!("http://{a1}/graphql"),
                format!("http://{a2}/hello"),
                format!("http://{a3}/api/hello"),
                format!("http://{a4}/api/hello"),
                format!("http://{a5}/api/hello"),
                token,
                [
                    plain_inline,
                    observed_inline,
                    limit_only,
                    metrics_only,
                    floor,
                ],
            )
        });

    // Sanity: the query answers 20 chats with 10 messages each.
    let check = Command::new("curl")
        .args([
            "-s",
            "-H",
            "content-type: application/json",
            "-H",
            &format!("authorization: Bearer {token}"),
        ])
        .args([
            "-d",
            &serde_json::json!({ "query": query }).to_string(),
            &hearth_url,
        ])
        .output();
    if let (Ok(out), false) = (check, custom) {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let chats = v["data"]["me"]["chats"]
            .as_array()
            .map(|a| a.len())
            .unwrap_or(0);
        assert_eq!(chats, 20, "unexpected answer: {v}");
        assert_eq!(
            v["data"]["me"]["chats"][0]["messages"]
                .as_array()
                .map(|a| a.len()),
            Some(10)
        );
    }

    let script = dir.path().join("post.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = {body:?}\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Authorization\"] = \"Bearer {token}\"\n",
            body = serde_json::json!({ "query": query }).to_string()
        ),
    )
    .unwrap();

    // Warm every target, then measure.
    wrk(&hello_url, None, 2, conns);
    wrk(&observed_url, None, 2, conns);
    wrk(&plain_url, None, 2, conns);
    wrk(&floor_url, None, 2, conns);
    wrk(&hearth_url, Some(&script), 2, conns);
    std::thread::sleep(Duration::from_millis(500));
    let hello = wrk(&hello_url, None, secs, conns);
    let plain = wrk(&plain_url, None, secs, conns);
    let observed = wrk(&observed_url, None, secs, conns);
    let plain_again = wrk(&plain_url, None, secs, conns);
    let observed_again = wrk(&observed_url, None, secs, conns);
    let floor_run = wrk(&floor_url, None, secs, conns);
    let floor_again = wrk(&floor_url, None, secs, conns);
    let hello_again = wrk(&hello_url, None, secs, conns);
    let gql = wrk(&hearth_url, Some(&script), secs, conns);
    assert_eq!(gql.non_2xx, 0, "GraphQL answered errors under load");

    println!("\nGraphQL `{query}`\nvs GET /hello on the same axum stack; wrk -t2 -c{conns} -d{secs}s, SQLite\n");
    println!("| target | requests/s | p50 | p99 |");
    println!("|---|---:|---:|---:|");
    println!(
        "| hello-world | {:.0} | {:.2} ms | {:.2} ms |",
        hello.rps, hello.p50_ms, hello.p99_ms
    );
    println!(
        "| GraphQL (query above) | {:.0} | {:.2} ms | {:.2} ms |",
        gql.rps, gql.p50_ms, gql.p99_ms
    );
    for (name, r) in [
        ("hello-world behind the request id layer only", &plain),
        (
            "hello-world behind Hearth's request layers (+ rate limit, metrics)",
            &observed,
        ),
        ("the request id layer only, again", &plain_again),
        ("Hearth's request layers, again", &observed_again),
        (
            "the floor: request id layer + one GCRA cell, ready headers, counter, histogram",
            &floor_run,
        ),
        ("the floor, again", &floor_again),
    ] {
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms |",
            r.rps, r.p50_ms, r.p99_ms
        );
    }
    println!(
        "| hello-world again | {:.0} | {:.2} ms | {:.2} ms |",
        hello_again.rps, hello_again.p50_ms, hello_again.p99_ms
    );
    println!(
        "\nratio GraphQL / hello-world requests/s: {:.3} (goal >= 0.3)",
        gql.rps / hello.rps
    );
    let bare = (hello.rps + hello_again.rps) / 2.0;
    let without = (plain.rps + plain_again.rps) / 2.0;
    let with = (observed.rps + observed_again.rps) / 2.0;
    println!(
        "all request layers (ids, route, rate limit, metrics, counting): {:.1}% fewer requests/s than bare hello-world",
        100.0 * (1.0 - with / bare)
    );
    println!(
        "rate limiter + metrics: {:.1}% fewer requests/s than the same layers without them (goal <= 5%)",
        100.0 * (1.0 - with / without)
    );
    println!(
        "the floor (one GCRA cell, ready headers, a counter and a histogram sample): {:.1}% fewer requests/s than the same layers without them",
        100.0 * (1.0 - (floor_run.rps + floor_again.rps) / 2.0 / without)
    );
    // The same two routers called in process (no sockets, no HTTP parsing): the CPU the rate
    // limiter and the metrics add to one request, without the network's noise.
    let ns = rt.block_on(in_process(inline));
    println!(
        "\nin process, median of 7 rounds of {INLINE_CALLS} calls: layers without the rate limiter and metrics {:.0} ns/request, with both {:.0} ns/request (+{:.0} ns); the rate limiter alone +{:.0} ns, the metrics alone +{:.0} ns; the floor (one GCRA cell, three ready headers, a counter and a histogram sample) +{:.0} ns",
        ns[0], ns[1], ns[1] - ns[0], ns[2] - ns[0], ns[3] - ns[0], ns[4] - ns[0]
    );
    rt.shutdown_timeout(Duration::from_secs(1));
}

const INLINE_CALLS: u32 = 200_000;

/// Median ns per call of each router over interleaved rounds.
async fn in_process(routers: [Router; 5]) -> [f64; 5] {
    use tower::ServiceExt;
    let peer = axum::extract::ConnectInfo(std::net::SocketAddr::from(([127, 0, 0, 1], 40000)));
    let round = |r: Router| async move {
        let start = std::time::Instant::now();
        for _ in 0..INLINE_CALLS {
            let req = axum::http::Request::get("/api/hello")
                .extension(peer)
                .body(axum::body::Body::empty())
                .unwrap();
            let res = r.clone().oneshot(req).await.unwrap();
            assert!(res.status().is_success());
        }
        start.elapsed().as_nanos() as f64 / INLINE_CALLS as f64
    };
    let mut times: [Vec<f64>; 5] = Default::default();
    for _ in 0..7 {
        for (r, t) in routers.iter().zip(times.iter_mut()) {
            t.push(round(r.clone()).await);
        }
    }
    times.map(|mut v| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    })
}

/// The floor of any rate limiter + metrics layer: one keyed GCRA cell for the peer's address
/// (governor), the three rate-limit headers from values made once, one counter and one
/// histogram sample through cached handles, and no boxed future. No principal, door table,
/// run-time budgets, reset time or error shapes: what Hearth's layers add beyond this is
/// theirs to shave.
#[derive(Clone)]
struct Floor<S> {
    inner: S,
    cells: std::sync::Arc<governor::DefaultKeyedRateLimiter<std::net::IpAddr>>,
    hits: metrics::Counter,
    time: metrics::Histogram,
}

impl<S> Floor<S> {
    fn new(inner: S) -> Self {
        // The budget Hearth's layers run with here: 10^9 per second, never refusing.
        let quota = governor::Quota::with_period(Duration::from_nanos(1))
            .unwrap()
            .allow_burst(std::num::NonZeroU32::new(1_000_000_000).unwrap());
        Floor {
            inner,
            cells: std::sync::Arc::new(governor::RateLimiter::keyed(quota)),
            hits: metrics::counter!("bench_floor_requests_total"),
            time: metrics::histogram!("bench_floor_seconds"),
        }
    }
}

pin_project_lite::pin_project! {
    struct FloorFuture<F> {
        #[pin]
        inner: F,
        start: std::time::Instant,
        hits: metrics::Counter,
        time: metrics::Histogram,
    }
}

impl<F, E> std::future::Future for FloorFuture<F>
where
    F: std::future::Future<Output = Result<axum::response::Response, E>>,
{
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        use axum::http::{HeaderName, HeaderValue};
        let this = self.project();
        let mut res = std::task::ready!(this.inner.poll(cx))?;
        let h = res.headers_mut();
        h.insert(
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderValue::from_static("100"),
        );
        h.insert(
            HeaderName::from_static("x-ratelimit-remaining"),
            HeaderValue::from_static("99"),
        );
        h.insert(
            HeaderName::from_static("x-ratelimit-reset"),
            HeaderValue::from_static("1800000000"),
        );
        this.hits.increment(1);
        this.time.record(this.start.elapsed().as_secs_f64());
        std::task::Poll::Ready(Ok(res))
    }
}

impl<S> tower::Service<axum::extract::Request> for Floor<S>
where
    S: tower::Service<axum::extract::Request, Response = axum::response::Response>,
{
    type Response = axum::response::Response;
    type Error = S::Error;
    type Future = FloorFuture<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: axum::extract::Request) -> Self::Future {
        let start = std::time::Instant::now();
        if let Some(peer) = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        {
            std::hint::black_box(self.cells.check_key(&peer.0.ip()).is_ok());
        }
        FloorFuture {
            inner: self.inner.call(req),
            start,
            hits: self.hits.clone(),
            time: self.time.clone(),
        }
    }
}

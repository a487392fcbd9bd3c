//! What operators watch: seed 004's monitoring doors and WebSocket, the Prometheus door,
//! request ids in error bodies, slow-request warnings in the live log feed, and seed 002's
//! voice/video/billing doors (501 without a provider).

use crate::both_backends;
use crate::support::{Backend, TestServer};
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// Routes the test process's tracing events into the live log feed (a serving `hearth`
/// installs this layer in `main`).
pub(crate) fn feed_logs() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = tracing_subscriber::registry()
        .with(hearth::ops::logs::FeedLayer)
        .try_init();
}

async fn metrics_text(s: &TestServer, token: Option<&str>) -> (StatusCode, String) {
    let mut req = s.http.get(s.url("/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

async fn monitoring_doors(backend: Backend) {
    let s = TestServer::start_with(backend, |c| {
        c.monitoring.sample_secs = 1;
        c.monitoring.status_secs = 1;
    })
    .await;
    let admin = s.user("admin").await;
    let user = s.user("watcher").await;

    // Signed-in callers only, in seed 004's error shape.
    let (st, b) = s.get("/api/monitoring", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{b}");
    assert!(b["error"].is_string(), "{b}");
    let (st, first) = s.get("/api/monitoring", Some(&user.access)).await;
    assert_eq!(st, StatusCode::OK, "{first}");
    for key in ["cpu", "memory", "activeModels", "totalRequests", "uptime"] {
        assert!(first[key].is_number(), "{key}: {first}");
    }
    let memory = first["memory"].as_f64().unwrap();
    assert!(memory > 0.0 && memory <= 100.0, "{first}");
    assert!(
        first["processMemory"].as_u64().unwrap() > 1 << 20,
        "{first}"
    );
    let (_, second) = s.get("/api/monitoring", Some(&user.access)).await;
    assert!(
        second["totalRequests"].as_u64() > first["totalRequests"].as_u64(),
        "every request counts: {first} {second}"
    );

    // Samples are stored every second here; the history holds them.
    let mut history = Vec::new();
    for _ in 0..100 {
        let (st, h) = s
            .get("/api/monitoring/history?hours=1", Some(&user.access))
            .await;
        assert_eq!(st, StatusCode::OK, "{h}");
        history = h["history"].as_array().unwrap().clone();
        if history.len() >= 2 && history.iter().any(|r| r["requests"].as_i64() > Some(0)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(history.len() >= 2, "{history:?}");
    let r = &history[0];
    assert!(r["timestamp"].as_str().unwrap().ends_with('Z'), "{r}");
    assert!(r["cpu"].is_number() && r["memory"].is_number(), "{r}");
    assert!(
        history.iter().any(|r| r["requests"].as_i64() > Some(0)),
        "{history:?}"
    );
    for bad in ["abc", "0", "-1", "1e9"] {
        let (st, b) = s
            .get(
                &format!("/api/monitoring/history?hours={bad}"),
                Some(&user.access),
            )
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {b}");
        assert_eq!(b["details"]["field"], "hours", "{b}");
    }
    let (st, _) = s.get("/api/monitoring/history", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // Prometheus: admins (or the scraper's address) only.
    let (st, _) = metrics_text(&s, None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = metrics_text(&s, Some(&user.access)).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    s.gql(Some(&user.access), "{ me { id } }", json!({})).await;
    let (st, text) = metrics_text(&s, Some(&admin.access)).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        text.contains("hearth_http_requests_total{") && text.contains("route=\"/api/monitoring\""),
        "{text}"
    );
    assert!(
        text.contains("hearth_http_request_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(
        text.contains("hearth_graphql_operations_total{kind=\"query\"}"),
        "{text}"
    );
    assert!(text.contains("hearth_db_connections{"), "{text}");
}

/// `/metrics` from a configured scraper address needs no credential.
async fn the_scraper_address_reads_metrics(backend: Backend) {
    let s = TestServer::start_with(backend, |c| {
        c.monitoring.scrape_addresses = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let (st, text) = metrics_text(&s, None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(text.contains("hearth_"), "{text}");
}

/// Every error body carries the request's id, the same as its `x-request-id` header, and a
/// client's own id is kept.
async fn error_bodies_carry_the_request_id(backend: Backend) {
    let s = TestServer::start(backend).await;
    for path in ["/no/such/route", "/api/monitoring", "/api/v1/users/me"] {
        let res = s.http.get(s.url(path)).send().await.unwrap();
        let header = res.headers()["x-request-id"].to_str().unwrap().to_string();
        let b: Value = res.json().await.unwrap();
        let id = b["request_id"].as_str().unwrap_or_default();
        assert_eq!(id, header, "{path}: {b}");
    }
    let res = s
        .http
        .get(s.url("/api/monitoring"))
        .header("x-request-id", "client-chosen-42")
        .send()
        .await
        .unwrap();
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["request_id"], "client-chosen-42", "{b}");
}

async fn ws(
    s: &TestServer,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!(
        "{}/api/websocket?token={token}",
        s.base.replace("http://", "ws://")
    );
    tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap()
        .0
}

/// Reads text messages for `window`, returning them as JSON.
async fn read_for(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    window: Duration,
    until: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + window;
    while !until(&got) {
        let next = tokio::time::timeout_at(deadline, socket.next()).await;
        match next {
            Ok(Some(Ok(Message::Text(t)))) => got.push(serde_json::from_str(&t).unwrap()),
            Ok(Some(Ok(_))) => {}
            _ => break,
        }
    }
    got
}

/// `/api/websocket`: `status` at once and every `status_secs`; logs (here: slow-request
/// warnings) and errors for admins only; a bad message gets an `error`; no credential, no
/// socket.
async fn the_monitoring_socket_pushes_status_and_logs(backend: Backend) {
    feed_logs();
    let s = TestServer::start_with(backend, |c| {
        c.monitoring.status_secs = 1;
        c.monitoring.slow_request_ms = 1;
    })
    .await;
    let admin = s.user("admin").await;
    let user = s.user("viewer").await;
    let refused = tokio_tungstenite::connect_async(
        format!("{}/api/websocket", s.base.replace("http://", "ws://")).as_str(),
    )
    .await;
    assert!(refused.is_err(), "no credential, no socket");

    let mut a = ws(&s, &admin.access).await;
    let mut u = ws(&s, &user.access).await;
    let first = read_for(&mut u, Duration::from_secs(5), |g| !g.is_empty()).await;
    assert_eq!(first[0]["type"], "status", "{first:?}");
    for key in ["cpuUsage", "memoryUsage", "activeModels", "totalRequests"] {
        assert!(first[0]["data"][key].is_number(), "{key}: {first:?}");
    }
    // A request slower than 1 ms is a warning in the admin's feed. The feed carries every
    // test server of this process, so requests keep coming until one warning is seen.
    let marker = "/api/monitoring/history?hours=2";
    s.get(marker, Some(&user.access)).await;
    let pinger = {
        let (http, url, token) = (s.http.clone(), s.url(marker), user.access.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let _ = http.get(&url).bearer_auth(&token).send().await;
            }
        })
    };
    let got = read_for(&mut a, Duration::from_secs(10), |g| {
        g.iter().any(|m| {
            m["type"] == "logs"
                && m["data"].as_array().is_some_and(|l| {
                    l.iter().any(|r| {
                        r["level"] == "warn"
                            && r["message"].as_str().unwrap_or("").contains("slow request")
                    })
                })
        })
    })
    .await;
    pinger.abort();
    let logs: Vec<&Value> = got.iter().filter(|m| m["type"] == "logs").collect();
    assert!(!logs.is_empty(), "{got:?}");
    let record = logs
        .iter()
        .flat_map(|m| m["data"].as_array().unwrap())
        .find(|r| r["message"].as_str().unwrap_or("").contains("slow request"))
        .unwrap();
    assert!(record["timestamp"].is_string() && record["source"].is_string());
    assert!(got.iter().any(|m| m["type"] == "status"), "{got:?}");
    // The user saw status messages only.
    let seen = read_for(&mut u, Duration::from_millis(2500), |_| false).await;
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|m| m["type"] == "status"), "{seen:?}");
    // It only pushes: anything but a ping is answered with an error.
    u.send(Message::Text("hello".into())).await.unwrap();
    let answer = read_for(&mut u, Duration::from_secs(5), |g| {
        g.iter().any(|m| m["type"] == "error")
    })
    .await;
    let err = answer.iter().find(|m| m["type"] == "error").unwrap();
    assert_eq!(err["data"]["code"], "bad_request", "{err}");
    u.send(Message::Text(r#"{"type":"ping"}"#.into()))
        .await
        .unwrap();
    let pong = read_for(&mut u, Duration::from_secs(5), |g| {
        g.iter().any(|m| m["type"] == "pong")
    })
    .await;
    assert!(pong.iter().any(|m| m["type"] == "pong"), "{pong:?}");
}

/// Seed 002's voice, video and billing doors exist: 401 without a token, 501 with the
/// provider named in the seed's error shape; the payment webhook 501 to anyone.
async fn providers_hearth_lacks_answer_501(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("caller").await;
    for (method, path) in [
        ("POST", "/api/v1/voice/transcribe"),
        ("POST", "/api/v1/voice/synthesize"),
        (
            "GET",
            "/api/v1/voice/voices?provider=elevenlabs&language=fr",
        ),
        ("POST", "/api/v1/video/projects"),
        ("POST", "/api/v1/video/projects/p1/start"),
        ("GET", "/api/v1/video/projects/p1/status"),
        ("POST", "/api/v1/billing/payments"),
        ("GET", "/api/v1/billing/invoices?status=paid&limit=10"),
    ] {
        let m: reqwest::Method = method.parse().unwrap();
        let (st, b) = s.call(m.clone(), path, None, Some(json!({}))).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{path}: {b}");
        let (st, b) = s.call(m, path, Some(&u.access), Some(json!({}))).await;
        assert_eq!(st, StatusCode::NOT_IMPLEMENTED, "{path}: {b}");
        assert_eq!(b["error"]["code"], "NOT_IMPLEMENTED", "{b}");
        assert!(b["error"]["details"]["provider"].is_string(), "{b}");
        assert!(b["request_id"].is_string(), "{b}");
    }
    let (st, b) = s
        .post(
            "/api/v1/billing/webhook",
            None,
            json!({ "event": "checkout.completed" }),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_IMPLEMENTED, "{b}");
}

both_backends!(
    monitoring_doors,
    the_scraper_address_reads_metrics,
    error_bodies_carry_the_request_id,
    the_monitoring_socket_pushes_status_and_logs,
    providers_hearth_lacks_answer_501
);

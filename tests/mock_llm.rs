//! A scripted OpenAI-compatible server for tests and benchmarks: `POST /v1/chat/completions`
//! streams the next queued [`Script`] (or the default one) as SSE, with delays, upstream
//! errors and connections dropped mid-stream. Every request body is recorded.

#![allow(dead_code)]

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the next answer behaves.
#[derive(Clone, Debug)]
pub struct Script {
    /// Text pieces, one SSE chunk each.
    pub tokens: Vec<String>,
    /// Pause before the first token.
    pub first_delay: Duration,
    /// Pause between tokens.
    pub token_delay: Duration,
    /// Close the connection (without finishing) after this many tokens.
    pub drop_after: Option<usize>,
    /// HTTP status; non-200 answers with an error body.
    pub status: u16,
    /// Report usage (prompt, completion) in a final chunk.
    pub usage: Option<(u32, u32)>,
    /// Replace each token by its emission time (µs since [`epoch`]), for latency benchmarks.
    pub stamp: bool,
    /// Tool calls (id, name, JSON arguments) sent after the tokens, ending the answer with
    /// `finish_reason: tool_calls` (arguments arrive in two pieces).
    pub tool_calls: Vec<(String, String, String)>,
}

/// The instant stamped token times count from (one per process).
pub fn epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

/// Microseconds since [`epoch`].
pub fn now_us() -> u64 {
    epoch().elapsed().as_micros() as u64
}

impl Script {
    /// Streams `tokens` at once, reporting usage.
    pub fn tokens(tokens: &[&str]) -> Self {
        Script {
            tokens: tokens.iter().map(|t| t.to_string()).collect(),
            first_delay: Duration::ZERO,
            token_delay: Duration::ZERO,
            drop_after: None,
            status: 200,
            usage: Some((11, tokens.len() as u32)),
            stamp: false,
            tool_calls: Vec::new(),
        }
    }

    /// Says `tokens`, then asks for the tool calls `(id, name, arguments)`.
    pub fn calls(tokens: &[&str], calls: &[(&str, &str, Value)]) -> Self {
        Script {
            tool_calls: calls
                .iter()
                .map(|(id, name, args)| (id.to_string(), name.to_string(), args.to_string()))
                .collect(),
            ..Script::tokens(tokens)
        }
    }
}

#[derive(Default)]
struct Shared {
    queue: Mutex<VecDeque<Script>>,
    default: Mutex<Option<Script>>,
    requests: Mutex<Vec<Value>>,
}

/// A running mock upstream.
pub struct MockLlm {
    /// Base URL up to `/v1`, as registered in Hearth.
    pub base_url: String,
    shared: Arc<Shared>,
}

impl MockLlm {
    /// Starts on 127.0.0.1:0; answers "Hello from upstream" until scripted otherwise.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        *shared.default.lock().unwrap() = Some(Script::tokens(&["Hello", " from", " upstream"]));
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            use axum::serve::ListenerExt;
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app).await.unwrap();
        });
        MockLlm {
            base_url: format!("http://{addr}/v1"),
            shared,
        }
    }

    /// Queues a script for the next request.
    pub fn push(&self, script: Script) {
        self.shared.queue.lock().unwrap().push_back(script);
    }

    /// Replaces the script used when the queue is empty.
    pub fn set_default(&self, script: Script) {
        *self.shared.default.lock().unwrap() = Some(script);
    }

    /// Bodies of every request so far.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.requests.lock().unwrap().clone()
    }
}

/// A base URL where nothing listens.
pub async fn dead_base_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}/v1")
}

fn chunk(content: Option<&str>, finish: Option<&str>) -> String {
    let v = json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "model": "mock",
        "choices": [{"index": 0, "delta": content.map_or(json!({}), |c| json!({"content": c})), "finish_reason": finish}],
    });
    format!("data: {v}\n\n")
}

async fn completions(State(shared): State<Arc<Shared>>, Json(body): Json<Value>) -> Response {
    shared.requests.lock().unwrap().push(body);
    let script = shared
        .queue
        .lock()
        .unwrap()
        .pop_front()
        .or_else(|| shared.default.lock().unwrap().clone())
        .unwrap();
    if script.status != 200 {
        let status = StatusCode::from_u16(script.status).unwrap();
        return (
            status,
            Json(json!({"error": {"message": "scripted failure"}})),
        )
            .into_response();
    }
    let stream = async_stream::stream! {
        tokio::time::sleep(script.first_delay).await;
        for (i, t) in script.tokens.iter().enumerate() {
            if script.drop_after == Some(i) {
                // Let what was sent reach the client before the connection breaks.
                tokio::time::sleep(Duration::from_millis(100)).await;
                yield Err(std::io::Error::other("scripted drop"));
                return;
            }
            if i > 0 && !script.token_delay.is_zero() {
                tokio::time::sleep(script.token_delay).await;
            }
            if script.stamp {
                // Trailing space: stamps stay separate tokens once concatenated.
                yield Ok::<_, std::io::Error>(chunk(Some(&format!("{} ", now_us())), None));
            } else {
                yield Ok::<_, std::io::Error>(chunk(Some(t), None));
            }
        }
        if script.drop_after.is_some_and(|d| d >= script.tokens.len()) {
            yield Err(std::io::Error::other("scripted drop"));
            return;
        }
        for (i, (id, name, args)) in script.tool_calls.iter().enumerate() {
            let (a, b) = args.split_at(args.len() / 2);
            for (n, piece) in [a, b].into_iter().enumerate() {
                let call = if n == 0 {
                    json!({"index": i, "id": id, "type": "function", "function": {"name": name, "arguments": piece}})
                } else {
                    json!({"index": i, "function": {"arguments": piece}})
                };
                let v = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "model": "mock",
                               "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": null}]});
                yield Ok(format!("data: {v}\n\n"));
            }
        }
        let finish = if script.tool_calls.is_empty() { "stop" } else { "tool_calls" };
        yield Ok(chunk(None, Some(finish)));
        if let Some((p, c)) = script.usage {
            let u = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "choices": [],
                           "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}});
            yield Ok(format!("data: {u}\n\n"));
        }
        yield Ok("data: [DONE]\n\n".to_string());
    };
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

//! Streams that survive reconnects: every chat event carries a cursor; a client that lost its
//! stream resumes from the last cursor it saw and receives exactly what it missed, then the
//! live events — while the turn runs, after it ended, after a crash (the answer's checkpoint)
//! — and a subscriber that falls behind catches up instead of skipping tokens.

use crate::both_backends;
use crate::chat_turns::{new_chat, remote_model};
use crate::jobs::{call, create_root, login_root, serve};
use crate::mock_llm::{MockLlm, Script};
use crate::support::{caller_of, next_json, ws_connect_base, ws_send, Backend, TestServer, Ws};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

both_backends!(
    a_resumed_subscription_misses_nothing,
    a_lagging_subscriber_catches_up,
    the_rest_doors_resume_too,
);

const EVENTS: &str = "subscription($c: ID!, $after: String) {
    chatEvents(chatId: $c, after: $after) { type cursor delta code message { id content status } }
}";

/// Subscribes at `base`, sends a message through `s`, reads the answer's first 10 tokens
/// and drops the subscription: the events read and the last cursor.
async fn read_part(base: &str, s: &TestServer, token: &str, chat: &str) -> (Vec<Value>, String) {
    let mut ws = subscribe(base, token, chat, None).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    send(s, token, chat).await;
    let mut seen = Vec::new();
    while seen
        .iter()
        .filter(|e: &&Value| e["type"] == "TOKEN")
        .count()
        < 10
    {
        seen.push(next_event(&mut ws).await);
    }
    let cursor = seen.last().unwrap()["cursor"].as_str().unwrap().to_string();
    (seen, cursor)
}

/// `n` words, `delay` apart.
fn words(n: usize, delay: Duration) -> Script {
    let tokens: Vec<String> = (0..n).map(|i| format!("w{i} ")).collect();
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    Script {
        token_delay: delay,
        ..Script::tokens(&refs)
    }
}

/// A graphql-ws connection at `base` subscribed to the chat's events after `after`.
async fn subscribe(base: &str, token: &str, chat: &str, after: Option<&str>) -> Ws {
    subscribe_with(base, token, EVENTS, json!({"c": chat, "after": after})).await
}

/// A graphql-ws connection at `base` running the subscription `query`.
pub async fn subscribe_with(base: &str, token: &str, query: &str, variables: Value) -> Ws {
    let mut ws = ws_connect_base(base).await;
    ws_send(
        &mut ws,
        json!({"type": "connection_init", "payload": {"token": token}}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await.unwrap()["type"], "connection_ack");
    ws_send(
        &mut ws,
        json!({"id": "e", "type": "subscribe", "payload": {"query": query, "variables": variables}}),
    )
    .await;
    ws
}

/// The next chat event on the socket (an `error` frame panics with its text).
async fn next_event(ws: &mut Ws) -> Value {
    loop {
        let m = next_json(ws).await.expect("socket open");
        match m["type"].as_str() {
            Some("next") => return m["payload"]["data"]["chatEvents"].clone(),
            Some("error") => panic!("subscription refused: {m}"),
            _ => continue,
        }
    }
}

/// Events until (and with) the turn's last one.
pub async fn until_end(ws: &mut Ws) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let e = next_event(ws).await;
        let end = e["type"] == "RESPONSE" || e["type"] == "ERROR";
        out.push(e);
        if end {
            return out;
        }
    }
}

fn text_of(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "TOKEN")
        .map(|e| e["delta"].as_str().unwrap())
        .collect()
}

async fn send(s: &TestServer, token: &str, chat: &str) {
    let (_, b) = s
        .gql(
            Some(token),
            "mutation($c: ID!) { sendMessage(input: {chatId: $c, content: \"Count\"}) { assistantMessageId } }",
            json!({"c": chat}),
        )
        .await;
    assert!(b["errors"].is_null(), "{b}");
}

/// A client drops its subscription mid-answer and resumes with its last cursor: it gets the
/// rest, then the stored answer; together exactly the answer. The same after the turn ended,
/// from any cursor; from the final cursor nothing is replayed. Bad cursors are refused.
async fn a_resumed_subscription_misses_nothing(b: Backend) {
    let s = TestServer::start(b).await;
    let mock = MockLlm::start().await;
    let u = s.user("reader").await;
    remote_model(&s, &u.access, "mock", &mock.base_url, 8192).await;
    let chat = new_chat(&s, &u.access, Some("mock"), None).await;
    mock.push(words(60, Duration::from_millis(15)));

    let (seen, mid) = read_part(&s.base, &s, &u.access, &chat).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut again = subscribe(&s.base, &u.access, &chat, Some(&mid)).await;
    let rest = until_end(&mut again).await;
    assert!(rest.iter().all(|e| e["type"] != "STARTED"), "{rest:?}");
    let stored = rest.last().unwrap()["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let expected: String = (0..60).map(|i| format!("w{i} ")).collect();
    assert_eq!(stored, expected);
    assert_eq!(format!("{}{}", text_of(&seen), text_of(&rest)), stored);
    let end = rest.last().unwrap()["cursor"].as_str().unwrap().to_string();
    assert!(end.ends_with(".end"), "{end}");

    // After the end: from the middle, the rest and the stored answer.
    let mut late = subscribe(&s.base, &u.access, &chat, Some(&mid)).await;
    let replay = until_end(&mut late).await;
    assert_eq!(format!("{}{}", text_of(&seen), text_of(&replay)), stored);
    assert_eq!(replay.last().unwrap()["type"], "RESPONSE");

    // From the final cursor: nothing again; the next turn comes from its start.
    let mut done = subscribe(&s.base, &u.access, &chat, Some(&end)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    mock.push(Script::tokens(&["Next"]));
    send(&s, &u.access, &chat).await;
    let next = until_end(&mut done).await;
    assert_eq!(next[0]["type"], "STARTED", "{next:?}");
    assert_eq!(text_of(&next), "Next");

    // Bad cursors: not a cursor, another chat's answer.
    let other = new_chat(&s, &u.access, Some("mock"), None).await;
    for bad in ["yesterday", end.as_str()] {
        let mut ws = subscribe(&s.base, &u.access, &other, Some(bad)).await;
        let m = next_json(&mut ws).await.unwrap();
        assert_eq!(
            m["payload"]["errors"][0]["extensions"]["code"], "validation_error",
            "{bad}: {m}"
        );
    }
}

/// A subscriber far slower than the answer (the chat channel holds 256 events) still gets
/// every token, in order: it catches up from the turn's log instead of skipping.
async fn a_lagging_subscriber_catches_up(b: Backend) {
    let s = TestServer::start(b).await;
    let mock = MockLlm::start().await;
    let u = s.user("slow").await;
    remote_model(&s, &u.access, "mock", &mock.base_url, 8192).await;
    let chat = new_chat(&s, &u.access, Some("mock"), None).await;
    mock.push(words(800, Duration::ZERO));
    let caller = caller_of(&s, &u.access).await;
    let events =
        hearth::service::turn_stream::follow(&s.state, &caller, chat.parse().unwrap(), None)
            .await
            .unwrap();
    send(&s, &u.access, &chat).await;
    let mut events = Box::pin(events);
    let mut text = String::new();
    let mut seqs = Vec::new();
    let stored = loop {
        let e = tokio::time::timeout(Duration::from_secs(30), events.next())
            .await
            .expect("events keep coming")
            .expect("stream open");
        seqs.push(e.cursor.seq);
        match &e.event {
            hearth::events::turns::TurnEvent::Token { delta, .. } => text.push_str(delta),
            hearth::events::turns::TurnEvent::Response { message, .. } => {
                break message.content.clone()
            }
            hearth::events::turns::TurnEvent::Error { message, .. } => panic!("{message}"),
            _ => {}
        }
        // Far slower than the model for the first few hundred events.
        if seqs.len() < 400 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    assert_eq!(text, stored);
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in order, no duplicate"
    );
    assert_eq!(
        stored.len(),
        (0..800).map(|i| format!("w{i} ").len()).sum::<usize>()
    );
}

/// `kill -9` of the server while an answer streams: after the restart the answer is stored
/// with the text of its last checkpoint (at least what the client saw), marked
/// `interrupted`; a client resuming with its last cursor gets the rest of that text and the
/// interruption, not a silent end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_keeps_what_was_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db_url = format!("sqlite://{}", data.join("hearth.db").display());
    create_root(&data, &db_url);
    let mock = MockLlm::start().await;
    let mut first = serve(&data, &db_url).await;
    let token = login_root(&first.base).await;
    let gql = |q: &str, v: Value| json!({"query": q, "variables": v});
    call(&first.base, &token, reqwest::Method::POST, "/graphql", gql(
        "mutation($i: ModelInput!) { registerModel(input: $i) { key } }",
        json!({"i": {"key": "mock", "provider": "openai", "baseUrl": mock.base_url, "contextLength": 8192}}),
    ))
    .await;
    mock.set_default(words(400, Duration::from_millis(20)));
    // Seed 000's SSE door: each event has an `id:` line (its cursor).
    let res = reqwest::Client::new()
        .post(format!("{}/api/chat", first.base))
        .bearer_auth(&token)
        .json(&json!({"message": "Count", "model": "mock", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let is_token = |d: &str| serde_json::from_str::<Value>(d).is_ok_and(|e| e["type"] == "token");
    let frames = sse_frames(res, |f| f.iter().filter(|(_, d)| is_token(d)).count() >= 20).await;
    let tokens: Vec<&(String, String)> = frames.iter().filter(|(_, d)| is_token(d)).collect();
    let seen: String = tokens
        .iter()
        .map(|(_, d)| {
            serde_json::from_str::<Value>(d).unwrap()["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let cursor = tokens.last().unwrap().0.clone();
    let mut chat = String::new();
    // Past a checkpoint, then no chance to store anything.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    drop(first);
    let second = serve(&data, &db_url).await;
    let chats = call(
        &second.base,
        &token,
        reqwest::Method::POST,
        "/graphql",
        gql(
            "{ me { chats(first: 5) { id messages(last: 2) { id role status content } } } }",
            json!({}),
        ),
    )
    .await;
    let c = &chats["data"]["me"]["chats"][0];
    chat.push_str(c["id"].as_str().unwrap());
    let answer = &c["messages"][1];
    assert_eq!(answer["status"], "interrupted", "{chats}");
    let content = answer["content"].as_str().unwrap();
    assert!(
        content.starts_with(&seen) && content.len() > seen.len(),
        "saw {seen:?}, kept {content:?}"
    );
    // The token fetched before the crash is valid on the new process (same secret file).
    let mut ws = subscribe(&second.base, &token, &chat, Some(&cursor)).await;
    let rest = until_end(&mut ws).await;
    let last = rest.last().unwrap();
    assert_eq!(last["type"], "ERROR", "{rest:?}");
    assert_eq!(format!("{seen}{}", text_of(&rest)), content);
}

/// The turn's SSE frames (`id:` and `data:`) read from a response until `[DONE]` or until
/// `stop` says so; returns the frames read.
async fn sse_frames(
    res: reqwest::Response,
    mut stop: impl FnMut(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    let mut body = res.bytes_stream();
    let (mut buf, mut frames) = (String::new(), Vec::new());
    loop {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("frames in time");
        let Some(chunk) = chunk else { return frames };
        buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(i) = buf.find("\n\n") {
            let frame: String = buf.drain(..i + 2).collect();
            let field = |name: &str| {
                frame
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_string())
            };
            if let Some(data) = field("data:") {
                frames.push((field("id:").unwrap_or_default(), data));
                if frames.last().unwrap().1 == "[DONE]" || stop(&frames) {
                    return frames;
                }
            }
        }
    }
}

fn sse_text(frames: &[(String, String)]) -> String {
    frames
        .iter()
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["token"].as_str().map(str::to_string))
        .collect()
}

/// Seed 001's `EventSource` door: a reconnect with `Last-Event-ID` gets the rest of the same
/// answer (the message is not sent again). Seed 000's `/ws/chat`: every event has a cursor;
/// a new socket's `{type: "resume", conversation_id, cursor}` gets the rest of the answer.
async fn the_rest_doors_resume_too(b: Backend) {
    let s = TestServer::start(b).await;
    let mock = MockLlm::start().await;
    let u = s.user("wanderer").await;
    let model = remote_model(&s, &u.access, "mock", &mock.base_url, 8192).await;
    let chat = new_chat(&s, &u.access, Some(&model), None).await;
    let expected: String = (0..50).map(|i| format!("w{i} ")).collect();

    mock.push(words(50, Duration::from_millis(15)));
    let url = s.url(&format!("/api/messages/stream/{chat}?message=Count"));
    let res = s
        .http
        .get(&url)
        .bearer_auth(&u.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let seen = sse_frames(res, |f| f.len() >= 10).await;
    let last_id = seen.last().unwrap().0.clone();
    assert!(!last_id.is_empty(), "{seen:?}");
    let res = s
        .http
        .get(&url)
        .bearer_auth(&u.access)
        .header("Last-Event-ID", &last_id)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let rest = sse_frames(res, |_| false).await;
    assert_eq!(rest.last().unwrap().1, "[DONE]");
    assert_eq!(format!("{}{}", sse_text(&seen), sse_text(&rest)), expected);
    let (_, c) = s
        .gql(
            Some(&u.access),
            "query($c: ID!) { chat(id: $c) { messages(last: 10) { role } } }",
            json!({"c": chat}),
        )
        .await;
    assert_eq!(
        c["data"]["chat"]["messages"].as_array().unwrap().len(),
        2,
        "sent once: {c}"
    );
    let res = s
        .http
        .get(&url)
        .bearer_auth(&u.access)
        .header("Last-Event-ID", "not-a-cursor")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());

    // /ws/chat
    let ws_url = format!(
        "{}/ws/chat?token={}",
        s.base.replace("http://", "ws://"),
        u.access
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    mock.push(words(50, Duration::from_millis(15)));
    ws_send(
        &mut ws,
        json!({"message": "Count", "conversation_id": chat}),
    )
    .await;
    let mut seen = String::new();
    let mut cursor = String::new();
    for _ in 0..10 {
        let e = crate::rest_llm::next_ws(&mut ws).await;
        assert_eq!(e["type"], "token", "{e}");
        seen.push_str(e["content"].as_str().unwrap());
        cursor = e["cursor"].as_str().unwrap().to_string();
    }
    drop(ws);
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    ws_send(
        &mut ws,
        json!({"type": "resume", "conversation_id": chat, "cursor": cursor}),
    )
    .await;
    let mut rest = String::new();
    let stored = loop {
        let e = crate::rest_llm::next_ws(&mut ws).await;
        match e["type"].as_str().unwrap() {
            "token" => rest.push_str(e["content"].as_str().unwrap()),
            "response" => break e["content"].as_str().unwrap().to_string(),
            other => panic!("{other}: {e}"),
        }
    };
    assert_eq!(stored, expected);
    assert_eq!(format!("{seen}{rest}"), stored);
    ws_send(
        &mut ws,
        json!({"type": "resume", "conversation_id": chat, "cursor": "x"}),
    )
    .await;
    assert_eq!(crate::rest_llm::next_ws(&mut ws).await["type"], "error");
}

/// Two servers on one PostgreSQL database: a subscriber on the server that does not run the
/// turn sees the answer at each checkpoint and its end; a client that read part of it on one
/// server resumes on the other with its cursor — every time the whole answer, nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_resumes_on_another_server() {
    let a = TestServer::start(Backend::Postgres).await;
    let url = a.state.config.database_url();
    let b = TestServer::start_with(Backend::Postgres, |c| c.database_url = Some(url)).await;
    let mock = MockLlm::start().await;
    let u = a.user("traveller").await;
    remote_model(&a, &u.access, "mock", &mock.base_url, 8192).await;
    let chat = new_chat(&a, &u.access, Some("mock"), None).await;
    let expected: String = (0..80).map(|i| format!("w{i} ")).collect();

    // Live on the other server.
    mock.push(words(80, Duration::from_millis(30)));
    let mut far = subscribe(&b.base, &u.access, &chat, None).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    send(&a, &u.access, &chat).await;
    let events = until_end(&mut far).await;
    assert_eq!(events[0]["type"], "STARTED", "{events:?}");
    assert!(
        events.iter().filter(|e| e["type"] == "TOKEN").count() >= 2,
        "checkpoints arrive while the answer runs: {events:?}"
    );
    assert_eq!(text_of(&events), expected);
    assert_eq!(
        events.last().unwrap()["message"]["content"],
        expected.as_str()
    );

    // Half read on the server running the turn, the rest on the other.
    mock.push(words(80, Duration::from_millis(30)));
    let (seen, cursor) = read_part(&a.base, &a, &u.access, &chat).await;
    let mut moved = subscribe(&b.base, &u.access, &chat, Some(&cursor)).await;
    let rest = until_end(&mut moved).await;
    assert_eq!(format!("{}{}", text_of(&seen), text_of(&rest)), expected);
    assert_eq!(rest.last().unwrap()["type"], "RESPONSE");
}

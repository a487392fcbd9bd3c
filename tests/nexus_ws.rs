//! Seed 002 `WS /ws`: authentication by first message, channels `chat:`, `agent:` and
//! `project:` with their events, refusal of what the caller may not read, bad input, and
//! events made on another process (PostgreSQL).

use crate::both_backends;
use crate::chat_turns::{new_chat, remote_model};
use crate::mock_llm::{MockLlm, Script};
use crate::support::{next_json, ws_close_code, ws_send, Backend, TestServer, Ws};
use reqwest::StatusCode;
use serde_json::{json, Value};

both_backends!(nexus_ws_channels);

async fn connect(s: &TestServer) -> Ws {
    let url = format!("{}/ws", s.base.replace("http://", "ws://"));
    tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connects")
        .0
}

/// A socket authenticated as `token`.
async fn signed_in(s: &TestServer, token: &str) -> Ws {
    let mut ws = connect(s).await;
    ws_send(
        &mut ws,
        json!({"type": "auth", "token": format!("Bearer {token}")}),
    )
    .await;
    let hello = next_json(&mut ws).await.expect("an answer");
    assert_eq!(hello["type"], "auth_ok", "{hello}");
    ws
}

/// Sends a (un)subscription and returns the answer (events of followed channels may arrive
/// meanwhile: a project's creation is announced after its id is known, for instance).
async fn ask(ws: &mut Ws, kind: &str, channel: &str) -> Value {
    ws_send(ws, json!({"type": kind, "channel": channel})).await;
    loop {
        let m = next_json(ws).await.expect("an answer");
        if m["type"] != "event" {
            return m;
        }
    }
}

/// The next `event` frame.
async fn next_event(ws: &mut Ws) -> Value {
    loop {
        let m = next_json(ws).await.expect("an event");
        if m["type"] == "event" {
            return m;
        }
    }
}

/// The next `event` frame of `channel`.
async fn next_event_of(ws: &mut Ws, channel: &str) -> Value {
    loop {
        let e = next_event(ws).await;
        if e["channel"] == channel {
            return e;
        }
    }
}

async fn send_and_wait(s: &TestServer, token: &str, chat: &str, content: &str) {
    let (_, r) = s
        .gql(
            Some(token),
            "mutation($i: SendMessageInput!) { sendMessageAndWait(input: $i) { assistantMessage { status } } }",
            json!({"i": {"chatId": chat, "content": content}}),
        )
        .await;
    assert_eq!(
        r["data"]["sendMessageAndWait"]["assistantMessage"]["status"], "complete",
        "{r}"
    );
}

async fn nexus_ws_channels(b: Backend) {
    let s = TestServer::start(b).await;
    let mock = MockLlm::start().await;
    let admin = s.user("admin").await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    remote_model(&s, &admin.access, "mock", &mock.base_url, 8192).await;

    // No credential: the first message must be `auth`; a bad token is refused too.
    let mut ws = connect(&s).await;
    ws_send(&mut ws, json!({"type": "subscribe", "channel": "chat:1"})).await;
    let e = next_json(&mut ws).await.unwrap();
    assert_eq!(e["error"]["code"], "UNAUTHENTICATED", "{e}");
    assert_eq!(ws_close_code(&mut ws).await, Some(4401));
    let mut ws = connect(&s).await;
    ws_send(&mut ws, json!({"type": "auth", "token": "Bearer nope"})).await;
    let e = next_json(&mut ws).await.unwrap();
    assert_eq!(e["type"], "error", "{e}");
    assert_eq!(ws_close_code(&mut ws).await, Some(4401));

    // Alice follows her chat and sees each stored message; bob cannot follow it.
    let chat = new_chat(&s, &alice.access, Some("mock"), None).await;
    let channel = format!("chat:{chat}");
    let mut bob_ws = signed_in(&s, &bob.access).await;
    let r = ask(&mut bob_ws, "subscribe", &channel).await;
    assert_eq!(r["error"]["code"], "NOT_FOUND", "{r}");
    assert_eq!(r["channel"], channel.as_str());
    let mut ws = signed_in(&s, &alice.access).await;
    let r = ask(&mut ws, "subscribe", &channel).await;
    assert_eq!(r, json!({"type": "subscribed", "channel": channel}));
    mock.push(Script::tokens(&["Bon", "jour"]));
    send_and_wait(&s, &alice.access, &chat, "Salut").await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let e = next_event(&mut ws).await;
        assert_eq!(
            (e["channel"].as_str(), e["event"].as_str()),
            (Some(channel.as_str()), Some("message")),
            "{e}"
        );
        assert_eq!(e["data"]["session_id"], chat.as_str());
        seen.push((e["data"]["role"].clone(), e["data"]["content"].clone()));
    }
    assert_eq!(
        seen,
        [
            (json!("user"), json!("Salut")),
            (json!("assistant"), json!("Bonjour"))
        ]
    );

    // Bad input is an error frame; the socket stays usable.
    ws_send(&mut ws, json!("not an object")).await;
    assert_eq!(
        next_json(&mut ws).await.unwrap()["error"]["code"],
        "BAD_REQUEST"
    );
    let r = ask(&mut ws, "subscribe", "weather:today").await;
    assert_eq!(r["error"]["code"], "BAD_REQUEST", "{r}");
    ws_send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(next_json(&mut ws).await.unwrap()["type"], "pong");

    // Agent channels follow the agent a slug names for the caller.
    let (st, a) = s
        .post(
            "/api/agents",
            Some(&alice.access),
            json!({"name": "Consultant", "system_prompt": "Tu conseilles.", "is_public": false}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{a}");
    let slug = a["slug"].as_str().unwrap().to_string();
    let agent_channel = format!("agent:{slug}");
    let r = ask(&mut bob_ws, "subscribe", &agent_channel).await;
    assert_eq!(
        r["error"]["code"], "NOT_FOUND",
        "someone else's private agent: {r}"
    );
    assert_eq!(
        ask(&mut ws, "subscribe", &agent_channel).await["type"],
        "subscribed"
    );
    let (_, r) = s
        .gql(
            Some(&alice.access),
            "mutation($id: ID!) { updateAgent(id: $id, input: {description: \"Stratégie\"}) { id } }",
            json!({"id": a["id"].to_string().trim_matches('"')}),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    let e = next_event_of(&mut ws, &agent_channel).await;
    assert_eq!(e["event"], "updated", "{e}");
    assert_eq!(e["data"]["description"], "Stratégie");

    // Project channels: the caller's own projects only.
    let (st, p) = s
        .post(
            "/api/v1/projects",
            Some(&alice.access),
            json!({"name": "Étude"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{p}");
    let project_channel = format!("project:{}", p["id"].as_str().unwrap());
    assert_eq!(
        ask(&mut ws, "subscribe", &project_channel).await["type"],
        "subscribed"
    );
    let r = ask(&mut bob_ws, "subscribe", &project_channel).await;
    assert_eq!(r["error"]["code"], "NOT_FOUND", "{r}");
    let r = ask(&mut ws, "unsubscribe", &project_channel).await;
    assert_eq!(r["type"], "unsubscribed");

    // The chat's deletion ends its channel with `deleted`.
    let (_, r) = s
        .gql(
            Some(&alice.access),
            "mutation($id: ID!) { deleteChat(id: $id) }",
            json!({"id": chat}),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    let e = next_event_of(&mut ws, &channel).await;
    assert_eq!(e["event"], "deleted", "{e}");

    // A message over 16 KiB ends that socket (and only that one).
    let mut big = signed_in(&s, &alice.access).await;
    ws_send(
        &mut big,
        json!({"type": "subscribe", "channel": "x".repeat(17 * 1024)}),
    )
    .await;
    let code = ws_close_code(&mut big).await;
    assert!(code.is_none() || code == Some(1009), "{code:?}");
    let r = ask(&mut ws, "ping", "").await;
    assert_eq!(r["type"], "pong", "{r}");

    // Logging out closes the socket opened with that session.
    let (st, _) = s
        .post("/api/auth/logout", Some(&alice.access), json!({}))
        .await;
    assert!(st.is_success(), "{st}");
    assert_eq!(ws_close_code(&mut ws).await, Some(4401));
}

/// A chat message stored through one process reaches a socket held by another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nexus_ws_events_cross_processes() {
    let a = TestServer::start(Backend::Postgres).await;
    let url = a.state.config.database_url();
    let b = TestServer::start_with(Backend::Postgres, |c| c.database_url = Some(url)).await;
    let mock = MockLlm::start().await;
    let admin = a.user("admin").await;
    let carol = a.user("carol").await;
    remote_model(&a, &admin.access, "mock", &mock.base_url, 8192).await;
    let chat = new_chat(&a, &carol.access, Some("mock"), None).await;
    let channel = format!("chat:{chat}");
    let mut ws = signed_in(&b, &carol.access).await;
    assert_eq!(
        ask(&mut ws, "subscribe", &channel).await["type"],
        "subscribed"
    );
    mock.push(Script::tokens(&["loin"]));
    send_and_wait(&a, &carol.access, &chat, "De").await;
    let first = next_event(&mut ws).await;
    assert_eq!(first["data"]["content"], "De", "{first}");
    let second = next_event(&mut ws).await;
    assert_eq!(second["data"]["content"], "loin", "{second}");
}

//! Chat turns through GraphQL against a scripted OpenAI-compatible upstream (and, once, the
//! real embedded model): event order, several subscribers, cancel, disconnect, backend down,
//! slow first token, a stream broken mid-answer, history trimming, memory and titles.

use crate::both_backends;
use crate::mock_llm::{dead_base_url, MockLlm, Script};
use crate::support::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

both_backends!(
    events_reach_every_subscriber_in_order,
    cancel_keeps_the_partial_answer,
    disconnected_client_still_gets_its_answer_stored,
    backend_down_fails_fast_and_stores_nothing,
    slow_first_token_and_broken_stream,
    long_history_is_trimmed_to_the_window,
    turn_input_is_checked,
    model_registry_administration,
);

/// Registers a remote model on `mock` (admin) and returns its key.
pub async fn remote_model(
    s: &TestServer,
    admin: &str,
    key: &str,
    base_url: &str,
    context: i32,
) -> String {
    let (_, b) = s
        .gql(
            Some(admin),
            "mutation($i: ModelInput!) { registerModel(input: $i) { key provider kind contextLength } }",
            json!({"i": {"key": key, "provider": "openai", "baseUrl": base_url, "apiKey": "sk-upstream",
                         "contextLength": context, "maxConcurrent": 4, "costPer1kInput": 0.5, "costPer1kOutput": 1.5}}),
        )
        .await;
    assert_eq!(b["data"]["registerModel"]["key"], key, "{b}");
    assert_eq!(b["data"]["registerModel"]["kind"], "cloud");
    key.to_string()
}

/// Calls `cancelTurn` on a chat and returns the response body.
pub async fn cancel_turn(s: &TestServer, token: &str, chat: &str) -> serde_json::Value {
    s.gql(
        Some(token),
        "mutation($c: ID!) { cancelTurn(chatId: $c) }",
        json!({"c": chat}),
    )
    .await
    .1
}

/// Creates a chat (optionally with an agent) and returns its id.
pub async fn new_chat(
    s: &TestServer,
    token: &str,
    model: Option<&str>,
    agent: Option<&str>,
) -> String {
    let (_, b) = s
        .gql(
            Some(token),
            "mutation($i: CreateChatInput!) { createChat(input: $i) { id } }",
            json!({"i": {"model": model, "agentId": agent}}),
        )
        .await;
    b["data"]["createChat"]["id"]
        .as_str()
        .expect("chat id")
        .to_string()
}

/// Creates an agent from a `{"i": CreateAgentInput}` value and returns its id.
async fn new_agent(s: &TestServer, token: &str, vars: Value) -> String {
    let (_, a) = s
        .gql(
            Some(token),
            "mutation($i: CreateAgentInput!) { createAgent(input: $i) { id } }",
            vars,
        )
        .await;
    a["data"]["createAgent"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{a}"))
        .to_string()
}

const EVENTS: &str = "subscription($c: ID!) { chatEvents(chatId: $c) { type chatId messageId userMessageId delta model code error usage { promptTokens completionTokens totalTokens } message { id role content status model promptTokens completionTokens latencyMs } } }";

pub async fn subscribe(s: &TestServer, token: &str, chat: &str) -> Ws {
    let q = EVENTS
        .replace("($c: ID!)", "")
        .replace("$c", &format!("\"{chat}\""));
    ws_subscribed(s, token, "1", &q).await
}

/// Events of one turn, up to and including RESPONSE or ERROR.
async fn turn_events(ws: &mut Ws) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let msg = next_json(ws).await.expect("event");
        assert_eq!(msg["type"], "next", "{msg}");
        let e = msg["payload"]["data"]["chatEvents"].clone();
        let end = e["type"] == "RESPONSE" || e["type"] == "ERROR";
        out.push(e);
        if end {
            return out;
        }
    }
}

pub async fn send(s: &TestServer, token: &str, chat: &str, content: &str) -> Value {
    let (_, b) = s
        .gql(
            Some(token),
            "mutation($i: SendMessageInput!) { sendMessage(input: $i) { userMessage { id content role } assistantMessageId model } }",
            json!({"i": {"chatId": chat, "content": content}}),
        )
        .await;
    b
}

async fn messages(s: &TestServer, token: &str, chat: &str) -> Vec<Value> {
    let (_, b) = s
        .gql(
            Some(token),
            "query($c: ID!) { chat(id: $c) { title messages(first: 100) { id role content status model promptTokens completionTokens } } }",
            json!({"c": chat}),
        )
        .await;
    b["data"]["chat"]["messages"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("{b}"))
}

/// Waits until the chat's last message is no longer streaming.
async fn settled(s: &TestServer, token: &str, chat: &str) -> Vec<Value> {
    for _ in 0..100 {
        let m = messages(s, token, chat).await;
        if m.last().is_some_and(|m| m["status"] != "streaming") {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("turn never settled");
}

async fn events_reach_every_subscriber_in_order(b: Backend) {
    let s = TestServer::start(b).await;
    let mock = MockLlm::start().await;
    let admin = s.user("admin").await;
    let key = remote_model(&s, &admin.access, "mock-gpt", &mock.base_url, 8192).await;
    // An agent that learns: its exchanges are remembered.
    let agent = new_agent(&s, &admin.access, json!({"i": {"name": "Tutor", "systemPrompt": "You teach.", "model": key, "learnFromInteraction": true, "temperature": 0.2, "maxTokens": 64}})).await;
    let chat = new_chat(&s, &admin.access, None, Some(&agent)).await;
    let mut one = subscribe(&s, &admin.access, &chat).await;
    let mut two = subscribe(&s, &admin.access, &chat).await;
    mock.push(Script::tokens(&["Bon", "jour", " à", " vous"]));

    let sent = send(&s, &admin.access, &chat, "Explain recursion please").await;
    let payload = &sent["data"]["sendMessage"];
    assert_eq!(payload["model"], key, "{sent}");
    assert_eq!(payload["userMessage"]["role"], "user");
    let mid = payload["assistantMessageId"].as_str().unwrap().to_string();

    for ws in [&mut one, &mut two] {
        let ev = turn_events(ws).await;
        let kinds: Vec<&str> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["STARTED", "TOKEN", "TOKEN", "TOKEN", "TOKEN", "RESPONSE"]
        );
        assert_eq!(ev[0]["messageId"], mid.as_str());
        assert_eq!(ev[0]["model"], key.as_str());
        let text: String = ev[1..5]
            .iter()
            .map(|e| e["delta"].as_str().unwrap())
            .collect();
        assert_eq!(text, "Bonjour à vous");
        assert!(ev[1..5].iter().all(|e| e["messageId"] == mid.as_str()));
        let resp = &ev[5];
        assert_eq!(resp["message"]["content"], "Bonjour à vous");
        assert_eq!(resp["message"]["status"], "complete");
        assert_eq!(resp["message"]["model"], key.as_str());
        assert_eq!(resp["usage"]["promptTokens"], 11);
        assert_eq!(resp["usage"]["completionTokens"], 4);
        assert_eq!(resp["usage"]["totalTokens"], 15);
        assert!(resp["message"]["latencyMs"].as_i64().unwrap() >= 0);
    }
    // The upstream saw the agent's prompt and settings, and the key.
    let req = &mock.requests()[0];
    assert_eq!(req["model"], "mock-gpt");
    assert_eq!(req["stream"], true);
    assert_eq!(req["max_tokens"], 64);
    assert!((req["temperature"].as_f64().unwrap() - 0.2).abs() < 1e-6);
    assert_eq!(
        req["messages"][0],
        json!({"role": "system", "content": "You teach."})
    );
    assert_eq!(
        req["messages"][1],
        json!({"role": "user", "content": "Explain recursion please"})
    );

    let stored = settled(&s, &admin.access, &chat).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1]["promptTokens"], 11);
    assert_eq!(stored[1]["completionTokens"], 4);
    // Automatic title from the first exchange.
    let (_, t) = s
        .gql(
            Some(&admin.access),
            "query($c: ID!) { chat(id: $c) { title } }",
            json!({"c": chat}),
        )
        .await;
    assert_eq!(t["data"]["chat"]["title"], "Explain recursion please");
    // The agent remembered the exchange.
    let mem = memory_rows(&s).await;
    assert_eq!(mem.len(), 1);
    assert!(
        mem[0].contains("User: Explain recursion please")
            && mem[0].contains("Assistant: Bonjour à vous"),
        "{mem:?}"
    );

    // The second turn carries the first exchange as history and keeps the title.
    mock.push(Script::tokens(&["Encore"]));
    send(&s, &admin.access, &chat, "Again").await;
    let ev = turn_events(&mut one).await;
    assert_eq!(ev.last().unwrap()["message"]["content"], "Encore");
    let req = &mock.requests()[1];
    let roles: Vec<&str> = req["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    let (_, t) = s
        .gql(
            Some(&admin.access),
            "query($c: ID!) { chat(id: $c) { title } }",
            json!({"c": chat}),
        )
        .await;
    assert_eq!(t["data"]["chat"]["title"], "Explain recursion please");
}

async fn memory_rows(s: &TestServer) -> Vec<String> {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use hearth::db::schema::memory_entries;
    let db = &s.state.db;
    let rows: hearth::error::AppResult<Vec<String>> = async {
        hearth::db_run!(db, read, |conn| memory_entries::table
            .select(memory_entries::content)
            .load(conn)
            .await
            .map_err(hearth::error::AppError::from))
    }
    .await;
    rows.unwrap()
}

/// A script of `n` tokens `t0 `, `t1 `, … one every `delay_ms`.
pub fn slow(n: usize, delay_ms: u64) -> Script {
    let tokens: Vec<String> = (0..n).map(|i| format!("t{i} ")).collect();
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let mut sc = Script::tokens(&refs);
    sc.token_delay = Duration::from_millis(delay_ms);
    sc
}

async fn cancel_keeps_the_partial_answer(b: Backend) {
    let s = TestServer::start(b).await;
    let mock = MockLlm::start().await;
    let admin = s.user("admin").await;
    let key = remote_model(&s, &admin.access, "mock", &mock.base_url, 8192).await;
    let chat = new_chat(&s, &admin.access, Some(&key), None).await;
    let mut ws = subscribe(&s, &admin.access, &chat).await;
    mock.push(slow(50, 100));
    send(&s, &admin.access, &chat, "Count slowly").await;
    // A second message while the first is answering is refused.
    let busy = send(&s, &admin.access, &chat, "Me too").await;
    assert_eq!(TestServer::gql_code(&busy), "turn_in_progress", "{busy}");
    let mut seen = 0;
    while seen < 2 {
        let msg = next_json(&mut ws).await.unwrap();
        if msg["payload"]["data"]["chatEvents"]["type"] == "TOKEN" {
            seen += 1;
        }
    }
    let c = cancel_turn(&s, &admin.access, &chat).await;
    assert_eq!(c["data"]["cancelTurn"], true, "{c}");
    let ev = turn_events(&mut ws).await;
    let last = ev.last().unwrap();
    assert_eq!(last["type"], "RESPONSE", "{ev:?}");
    assert_eq!(last["message"]["status"], "cancelled");
    let partial = last["message"]["content"].as_str().unwrap();
    assert!(
        partial.starts_with("t0 t1 ") && partial.len() < 50 * 3,
        "{partial}"
    );
    let stored = settled(&s, &admin.access, &chat).await;
    assert_eq!(stored[1]["status"], "cancelled");
    assert_eq!(stored[1]["content"], partial);
    // Nothing is running any more; the chat accepts a new message.
    let c = cancel_turn(&s, &admin.access, &chat).await;
    assert_eq!(c["data"]["cancelTurn"], false);
    let again = send(&s, &admin.access, &chat, "Next").await;
    assert!(again["errors"].is_null(), "{again}");
}

async fn disconnected_client_still_gets_its_answer_stored(b: Backend) {
    let s = TestServer::start(b).await;
    let mock = MockLlm::start().await;
    let admin = s.user("admin").await;
    let key = remote_model(&s, &admin.access, "mock", &mock.base_url, 8192).await;
    let chat = new_chat(&s, &admin.access, Some(&key), None).await;
    let mut ws = subscribe(&s, &admin.access, &chat).await;
    mock.push(slow(10, 30));
    send(&s, &admin.access, &chat, "Go").await;
    loop {
        let msg = next_json(&mut ws).await.unwrap();
        if msg["payload"]["data"]["chatEvents"]["type"] == "TOKEN" {
            break;
        }
    }
    drop(ws);
    let stored = settled(&s, &admin.access, &chat).await;
    assert_eq!(stored[1]["status"], "complete");
    let want: String = (0..10).map(|i| format!("t{i} ")).collect();
    assert_eq!(stored[1]["content"], want.as_str());
}

async fn backend_down_fails_fast_and_stores_nothing(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.user("admin").await;
    let dead = dead_base_url().await;
    let key = remote_model(&s, &admin.access, "down", &dead, 8192).await;
    let chat = new_chat(&s, &admin.access, Some(&key), None).await;
    let t = Instant::now();
    let r = send(&s, &admin.access, &chat, "Hello?").await;
    assert_eq!(TestServer::gql_code(&r), "llm_unavailable", "{r}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(messages(&s, &admin.access, &chat).await.is_empty());
    // REST answers 503 with the code.
    let (st, body) = s
        .post(
            "/api/messages",
            Some(&admin.access),
            json!({"chat_id": chat.parse::<i64>().unwrap(), "content": "Hello?"}),
        )
        .await;
    assert_eq!(st.as_u16(), 503, "{body}");
    assert_eq!(body["code"], "llm_unavailable");
    // The model is reported down.
    let (_, m) = s
        .gql(Some(&admin.access), "{ models { key status } }", json!({}))
        .await;
    let down = m["data"]["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "down")
        .cloned()
        .unwrap();
    assert_eq!(down["status"], "down");
    // With it as the default, /health reports the backend disconnected.
    let (_, r) = s
        .gql(
            Some(&admin.access),
            "mutation { setDefaultModel(key: \"down\") }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["setDefaultModel"], true);
    let (_, h) = s.get("/health", None).await;
    assert_eq!(h["ollama"], "disconnected", "{h}");
}

async fn slow_first_token_and_broken_stream(b: Backend) {
    let s = TestServer::start(b).await;
    let mock = MockLlm::start().await;
    let admin = s.user("admin").await;
    let key = remote_model(&s, &admin.access, "mock", &mock.base_url, 8192).await;
    let chat = new_chat(&s, &admin.access, Some(&key), None).await;
    let mut ws = subscribe(&s, &admin.access, &chat).await;

    let mut late = Script::tokens(&["late", " but", " fine"]);
    late.first_delay = Duration::from_millis(1500);
    mock.push(late);
    send(&s, &admin.access, &chat, "Take your time").await;
    let ev = turn_events(&mut ws).await;
    let kinds: Vec<&str> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["STARTED", "TOKEN", "TOKEN", "TOKEN", "RESPONSE"]);
    assert_eq!(ev[4]["message"]["content"], "late but fine");

    let mut broken = Script::tokens(&["half", " an", " answer"]);
    broken.drop_after = Some(2);
    mock.push(broken);
    send(&s, &admin.access, &chat, "Break").await;
    let ev = turn_events(&mut ws).await;
    let last = ev.last().unwrap();
    assert_eq!(last["type"], "ERROR", "{ev:?}");
    assert_eq!(last["code"], "llm_unavailable");
    let stored = settled(&s, &admin.access, &chat).await;
    assert_eq!(stored[3]["status"], "error");
    assert_eq!(stored[3]["content"], "half an");
    // The broken answer is not sent back as history.
    mock.push(Script::tokens(&["ok"]));
    send(&s, &admin.access, &chat, "Again").await;
    turn_events(&mut ws).await;
    let req = mock.requests().last().cloned().unwrap();
    let contents: Vec<&str> = req["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        contents,
        ["Take your time", "late but fine", "Break", "Again"]
    );
}

async fn long_history_is_trimmed_to_the_window(b: Backend) {
    let s = TestServer::start(b).await;
    let mock = MockLlm::start().await;
    let admin = s.user("admin").await;
    let key = remote_model(&s, &admin.access, "small", &mock.base_url, 1000).await;
    let agent = new_agent(&s, &admin.access, json!({"i": {"name": "Keeper", "systemPrompt": "Keep this prompt.", "model": key, "maxTokens": 100}})).await;
    let chat = new_chat(&s, &admin.access, None, Some(&agent)).await;
    for i in 0..4 {
        mock.push(Script::tokens(&["ok"]));
        let content = format!("{i}{}", "x".repeat(899));
        let (_, r) = s
            .gql(
                Some(&admin.access),
                "mutation($i: SendMessageInput!) { sendMessageAndWait(input: $i) { assistantMessage { content status } } }",
                json!({"i": {"chatId": chat, "content": content}}),
            )
            .await;
        assert_eq!(
            r["data"]["sendMessageAndWait"]["assistantMessage"]["content"], "ok",
            "{r}"
        );
    }
    let reqs = mock.requests();
    // The first turns fit whole; the fourth drops the oldest exchange but keeps the system
    // prompt and the new message.
    assert_eq!(reqs[1]["messages"].as_array().unwrap().len(), 4);
    let last = reqs[3]["messages"].as_array().unwrap();
    assert_eq!(last[0]["content"], "Keep this prompt.");
    assert!(last.last().unwrap()["content"]
        .as_str()
        .unwrap()
        .starts_with('3'));
    assert!(
        !last
            .iter()
            .any(|m| m["content"].as_str().unwrap().starts_with('0')),
        "oldest kept"
    );
    assert!(last.len() < 8, "nothing trimmed: {}", last.len());
    let chars: usize = last
        .iter()
        .map(|m| m["content"].as_str().unwrap().len())
        .sum();
    assert!(chars / 3 <= 900, "over the window: {chars} chars");
}

async fn turn_input_is_checked(b: Backend) {
    let s = TestServer::start(b).await;
    let mock = MockLlm::start().await;
    let admin = s.user("admin").await;
    let other = s.user("other").await;
    let key = remote_model(&s, &admin.access, "mock", &mock.base_url, 8192).await;
    let chat = new_chat(&s, &admin.access, Some(&key), None).await;
    // No auth.
    let (_, r) = s
        .gql(
            None,
            "mutation($i: SendMessageInput!) { sendMessage(input: $i) { assistantMessageId } }",
            json!({"i": {"chatId": chat, "content": "hi"}}),
        )
        .await;
    assert_eq!(TestServer::gql_code(&r), "unauthenticated");
    // Someone else's chat looks missing, for sending, cancelling and listening.
    let r = send(&s, &other.access, &chat, "hi").await;
    assert_eq!(TestServer::gql_code(&r), "not_found");
    let r = cancel_turn(&s, &other.access, &chat).await;
    assert_eq!(TestServer::gql_code(&r), "not_found");
    let mut ws = ws_init(&s, json!({"token": other.access})).await;
    let q = EVENTS
        .replace("($c: ID!)", "")
        .replace("$c", &format!("\"{chat}\""));
    ws_send(
        &mut ws,
        json!({"id": "1", "type": "subscribe", "payload": {"query": q}}),
    )
    .await;
    let msg = next_json(&mut ws).await.unwrap();
    assert_eq!(
        msg["payload"]["errors"][0]["extensions"]["code"], "not_found",
        "{msg}"
    );
    assert_eq!(next_json(&mut ws).await.unwrap()["type"], "complete");
    // Oversize and empty content, unknown model, someone else's document.
    let r = send(&s, &admin.access, &chat, &"y".repeat(4001)).await;
    assert_eq!(TestServer::gql_code(&r), "validation_error");
    let r = send(&s, &admin.access, &chat, "   ").await;
    assert_eq!(TestServer::gql_code(&r), "validation_error");
    let (_, r) = s
        .gql(
            Some(&admin.access),
            "mutation($i: SendMessageInput!) { sendMessage(input: $i) { assistantMessageId } }",
            json!({"i": {"chatId": chat, "content": "hi", "model": "nope"}}),
        )
        .await;
    assert_eq!(TestServer::gql_code(&r), "validation_error");
    let (_, r) = s
        .gql(
            Some(&admin.access),
            "mutation($i: SendMessageInput!) { sendMessage(input: $i) { assistantMessageId } }",
            json!({"i": {"chatId": chat, "content": "hi", "files": ["999"]}}),
        )
        .await;
    assert_eq!(TestServer::gql_code(&r), "not_found");
    assert!(messages(&s, &admin.access, &chat).await.is_empty());
    // Only admins manage models.
    let (_, r) = s
        .gql(Some(&other.access), "mutation { registerModel(input: {key: \"x\", baseUrl: \"http://127.0.0.1:1/v1\"}) { key } }", json!({}))
        .await;
    assert_eq!(TestServer::gql_code(&r), "forbidden");
    let (_, r) = s
        .gql(
            Some(&other.access),
            "mutation { deleteModel(key: \"mock\") }",
            json!({}),
        )
        .await;
    assert_eq!(TestServer::gql_code(&r), "forbidden");
    // Non-admins never see URLs or paths; nobody sees upstream keys.
    let (_, r) = s
        .gql(
            Some(&other.access),
            "{ models { key baseUrl path hasApiKey } }",
            json!({}),
        )
        .await;
    let m = r["data"]["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "mock")
        .cloned()
        .unwrap();
    assert_eq!(m["baseUrl"], Value::Null);
    assert_eq!(m["hasApiKey"], true);
    let (_, r) = s
        .gql(Some(&admin.access), "{ models { key baseUrl } }", json!({}))
        .await;
    assert!(r.to_string().contains(&mock.base_url));
    assert!(!r.to_string().contains("sk-upstream"));
}

/// The embedded model answers a short greedy generation with text and usage counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_model_answers() {
    let s = TestServer::start(Backend::Sqlite).await;
    let admin = s.user("admin").await;
    let (_, m) = s
        .gql(
            Some(&admin.access),
            "{ models { key provider family sizeBytes status } defaultModel { key } }",
            json!({}),
        )
        .await;
    let local = m["data"]["models"][0].clone();
    assert_eq!(
        local["key"], "smollm2-135m-instruct",
        "the embedded model is missing; run `make setup`: {m}"
    );
    assert_eq!(local["provider"], "local");
    assert_eq!(local["family"], "llama");
    assert!(local["sizeBytes"].as_i64().unwrap() > 50_000_000);
    assert_eq!(m["data"]["defaultModel"]["key"], "smollm2-135m-instruct");
    let chat = new_chat(&s, &admin.access, None, None).await;
    let (_, r) = s
        .gql(
            Some(&admin.access),
            "mutation($i: SendMessageInput!) { sendMessageAndWait(input: $i) { assistantMessage { content status model } usage { promptTokens completionTokens } } }",
            json!({"i": {"chatId": chat, "content": "What is the capital of France?", "temperature": 0.0, "maxTokens": 12}}),
        )
        .await;
    let t = &r["data"]["sendMessageAndWait"];
    assert_eq!(t["assistantMessage"]["status"], "complete", "{r}");
    assert_eq!(t["assistantMessage"]["model"], "smollm2-135m-instruct");
    assert!(
        !t["assistantMessage"]["content"]
            .as_str()
            .unwrap()
            .trim()
            .is_empty(),
        "{r}"
    );
    assert!(t["usage"]["promptTokens"].as_i64().unwrap() > 5);
    let n = t["usage"]["completionTokens"].as_i64().unwrap();
    assert!((1..=12).contains(&n), "{n}");
    let (_, m) = s
        .gql(Some(&admin.access), "{ models { key status } }", json!({}))
        .await;
    assert_eq!(m["data"]["models"][0]["status"], "loaded");
}

async fn model_registry_administration(b: Backend) {
    let s = TestServer::start(b).await;
    let mock = MockLlm::start().await;
    let admin = s.user("admin").await;
    let key = remote_model(&s, &admin.access, "mock", &mock.base_url, 8192).await;
    let (_, r) = s
        .gql(Some(&admin.access), "mutation { updateModel(key: \"mock\", input: {contextLength: 4096, remoteName: \"gpt-x\", description: \"Scripted\"}) { key contextLength remoteName description } }", json!({}))
        .await;
    assert_eq!(
        r["data"]["updateModel"],
        json!({"key": "mock", "contextLength": 4096, "remoteName": "gpt-x", "description": "Scripted"}),
        "{r}"
    );
    let chat = new_chat(&s, &admin.access, Some(&key), None).await;
    let (_, r) = s
        .gql(Some(&admin.access), "mutation($i: SendMessageInput!) { sendMessageAndWait(input: $i) { assistantMessage { content } } }", json!({"i": {"chatId": chat, "content": "hi"}}))
        .await;
    assert_eq!(
        r["data"]["sendMessageAndWait"]["assistantMessage"]["content"], "Hello from upstream",
        "{r}"
    );
    assert_eq!(mock.requests()[0]["model"], "gpt-x");
    assert_eq!(mock.requests()[0]["max_tokens"], 512);
    // A disabled model is refused by name and skipped by `auto`.
    s.gql(
        Some(&admin.access),
        "mutation { updateModel(key: \"mock\", input: {enabled: false}) { key } }",
        json!({}),
    )
    .await;
    let r = send(&s, &admin.access, &chat, "again").await;
    assert_eq!(TestServer::gql_code(&r), "validation_error", "{r}");
    let (_, d) = s
        .gql(
            Some(&admin.access),
            "{ defaultModel { key } models { key status } }",
            json!({}),
        )
        .await;
    assert_eq!(d["data"]["defaultModel"]["key"], "smollm2-135m-instruct");
    assert!(d["data"]["models"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["key"] == "mock" && m["status"] == "disabled"));
    // Bad values name their field; keys are unique; `auto` is reserved.
    let (_, r) = s
        .gql(
            Some(&admin.access),
            "mutation { updateModel(key: \"mock\", input: {maxConcurrent: 0}) { key } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r["errors"][0]["extensions"]["details"]["field"], "max_concurrent",
        "{r}"
    );
    let (_, r) = s.gql(Some(&admin.access), "mutation { registerModel(input: {key: \"mock\", baseUrl: \"http://127.0.0.1:9/v1\"}) { key } }", json!({})).await;
    assert_eq!(TestServer::gql_code(&r), "conflict");
    let (_, r) = s.gql(Some(&admin.access), "mutation { registerModel(input: {key: \"auto\", baseUrl: \"http://127.0.0.1:9/v1\"}) { key } }", json!({})).await;
    assert_eq!(TestServer::gql_code(&r), "validation_error");
    let (_, r) = s.gql(Some(&admin.access), "mutation { registerModel(input: {key: \"x\", baseUrl: \"file:///etc/passwd\"}) { key } }", json!({})).await;
    assert_eq!(TestServer::gql_code(&r), "validation_error");
    // Discovery over GraphQL finds the embedded file, already registered.
    let (_, r) = s.gql(Some(&admin.access), "mutation { discoverModels(paths: [\".hearth/assets\"]) { newlyRegistered model { key family } } }", json!({})).await;
    assert_eq!(
        r["data"]["discoverModels"],
        json!([{"newlyRegistered": false, "model": {"key": "smollm2-135m-instruct", "family": "llama"}}]),
        "{r}"
    );
    // Delete.
    let (_, r) = s
        .gql(
            Some(&admin.access),
            "mutation { deleteModel(key: \"mock\") }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["deleteModel"], true);
    let (_, r) = s
        .gql(
            Some(&admin.access),
            "mutation { deleteModel(key: \"mock\") }",
            json!({}),
        )
        .await;
    assert_eq!(TestServer::gql_code(&r), "not_found");
}

/// A model at its concurrency limit with a full queue refuses at once with `model_busy`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_model_refuses_beyond_its_queue() {
    let s = TestServer::start_with(Backend::Sqlite, |c| c.llm.queue_depth = 0).await;
    let mock = MockLlm::start().await;
    let admin = s.user("admin").await;
    let (_, r) = s
        .gql(Some(&admin.access), "mutation($u: String!) { registerModel(input: {key: \"one\", baseUrl: $u, maxConcurrent: 1}) { key } }", json!({"u": mock.base_url}))
        .await;
    assert!(r["errors"].is_null(), "{r}");
    mock.push(slow(20, 50));
    let first = new_chat(&s, &admin.access, Some("one"), None).await;
    let second = new_chat(&s, &admin.access, Some("one"), None).await;
    let r = send(&s, &admin.access, &first, "long").await;
    assert!(r["errors"].is_null(), "{r}");
    let r = send(&s, &admin.access, &second, "me too").await;
    assert_eq!(TestServer::gql_code(&r), "model_busy", "{r}");
    let (st, e) = s
        .post(
            "/api/messages",
            Some(&admin.access),
            json!({"chat_id": second.parse::<i64>().unwrap(), "content": "me too"}),
        )
        .await;
    assert_eq!(st.as_u16(), 503);
    assert_eq!(e["code"], "model_busy");
    // Once the first answer is done, the slot is free again.
    settled(&s, &admin.access, &first).await;
    let r = send(&s, &admin.access, &second, "now").await;
    assert!(r["errors"].is_null(), "{r}");
}

//! The REST chat doors of seeds 000–004 and the OpenAI-compatible `/v1`, with the seeds'
//! request bodies, against a scripted upstream: documented fields, SSE framing, WebSockets,
//! and for each new endpoint no auth, someone else's object, malformed and oversize input.

use crate::both_backends;
use crate::chat_turns::{new_chat, remote_model};
use crate::mock_llm::{MockLlm, Script};
use crate::support::*;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

both_backends!(
    orchestrator_chat_and_models,
    foyer_messages_and_stream,
    nexus_llm_and_agents,
    plugin_host_infer_and_stream,
    runner_registry_config_parameters,
    openai_v1_with_an_api_key,
    history_replay,
);

/// A server with an admin, a second user and the scripted upstream as default model.
async fn setup(b: Backend) -> (TestServer, MockLlm, Login, Login) {
    let s = TestServer::start(b).await;
    let mock = MockLlm::start().await;
    let admin = s.user("admin").await;
    let other = s.user("other").await;
    remote_model(&s, &admin.access, "mock", &mock.base_url, 8192).await;
    let (_, r) = s
        .gql(
            Some(&admin.access),
            "mutation { setDefaultModel(key: \"mock\") }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["setDefaultModel"], true, "{r}");
    (s, mock, admin, other)
}

/// `data:` payloads of an SSE response.
async fn sse_lines(res: reqwest::Response) -> Vec<String> {
    assert_eq!(res.status(), StatusCode::OK);
    let ct = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    let text = res.text().await.unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("data: ").map(str::to_string))
        .collect()
}

async fn post_raw(
    s: &TestServer,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut req = s
        .http
        .post(s.url(path))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let st = res.status();
    (st, res.json().await.unwrap_or(Value::Null))
}

async fn orchestrator_chat_and_models(b: Backend) {
    let (s, mock, admin, other) = setup(b).await;
    mock.push(Script::tokens(&["Voici", " le", " status"]));
    let (st, r) = s
        .post(
            "/api/chat",
            Some(&admin.access),
            json!({"message": "Quel est le status Docker?", "model": "auto"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["response"], "Voici le status");
    assert_eq!(r["model_used"], "mock");
    assert_eq!(r["tools_used"], json!([]));
    assert_eq!(r["tokens"], json!({"prompt": 11, "completion": 3}));
    let conv = r["conversation_id"].as_str().unwrap().to_string();
    // Continuing with seed 000's `conv-` form carries the history.
    let (st, r) = s
        .post(
            "/api/chat",
            Some(&admin.access),
            json!({"message": "Et ensuite?", "conversation_id": format!("conv-{conv}")}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["conversation_id"], conv.as_str());
    assert_eq!(mock.requests()[1]["messages"].as_array().unwrap().len(), 3);
    // Streaming.
    mock.push(Script::tokens(&["a", "b"]));
    let res = s
        .http
        .post(s.url("/api/chat"))
        .bearer_auth(&admin.access)
        .json(&json!({"message": "stream it", "conversation_id": conv, "stream": true}))
        .send()
        .await
        .unwrap();
    let events: Vec<Value> = sse_lines(res)
        .await
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["token", "token", "response"]);
    assert_eq!(events[2]["content"], "ab");
    assert_eq!(events[2]["conversation_id"], conv.as_str());
    // Someone else's conversation, no auth, malformed, missing field, oversize.
    let (st, e) = s
        .post(
            "/api/chat",
            Some(&other.access),
            json!({"message": "hi", "conversation_id": conv}),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(
        e["detail"].is_string() && e["code"] == "not_found" && e["timestamp"].is_string(),
        "{e}"
    );
    assert_eq!(
        s.post("/api/chat", None, json!({"message": "hi"})).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post_raw(&s, "/api/chat", Some(&admin.access), "{nope")
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        s.post("/api/chat", Some(&admin.access), json!({"model": "auto"}))
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let (st, e) = s
        .post(
            "/api/chat",
            Some(&admin.access),
            json!({"message": "x".repeat(4001)}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(
        s.post_declared_size("/api/chat", &admin.access, 50 * 1024 * 1024)
            .await
            .0,
        413
    );
    // Unknown model on a new conversation: 422, and no empty conversation is left behind.
    let (_, before) = s.get("/api/conversations", Some(&admin.access)).await;
    let (st, e) = s
        .post(
            "/api/chat",
            Some(&admin.access),
            json!({"message": "hi", "model": "nope"}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let (_, after) = s.get("/api/conversations", Some(&admin.access)).await;
    assert_eq!(before["total"], after["total"]);
    // Unknown model: a clear 422, nothing stored.
    let (st, e) = s
        .post(
            "/api/chat",
            Some(&admin.access),
            json!({"message": "hi", "model": "nope", "conversation_id": conv}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");

    // GET /api/models: the union of seed 000 and seed 004.
    let (st, m) = s.get("/api/models", Some(&other.access)).await;
    assert_eq!(st, StatusCode::OK);
    let list = m["models"].as_array().unwrap();
    assert_eq!(m["count"], list.len());
    assert_eq!(list[0]["key"], "auto");
    assert_eq!(list[0]["type"], "router");
    let mock_m = list.iter().find(|x| x["key"] == "mock").unwrap();
    assert_eq!(mock_m["type"], "cloud");
    assert_eq!(mock_m["provider"], "openai");
    assert_eq!(mock_m["status"], "available");
    let local = list
        .iter()
        .find(|x| x["key"] == "smollm2-135m-instruct")
        .unwrap();
    assert_eq!(local["type"], "local");
    assert!(local["size"].as_str().unwrap().ends_with("MB"), "{local}");
    for f in ["name", "description", "status", "version"] {
        assert!(local.get(f).is_some(), "{f}");
    }
    assert_eq!(s.get("/api/models", None).await.0, StatusCode::UNAUTHORIZED);

    // WS /ws/chat?token=
    let url = format!(
        "{}/ws/chat?token={}",
        s.base.replace("http://", "ws://"),
        admin.access
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
    mock.push(Script::tokens(&["Liste", " faite"]));
    ws_send(
        &mut ws,
        json!({"message": "Liste les conteneurs Docker", "model": "mock"}),
    )
    .await;
    let mut got = Vec::new();
    loop {
        let v = next_ws(&mut ws).await;
        let t = v["type"].as_str().unwrap().to_string();
        got.push(v);
        if t == "response" || t == "error" {
            break;
        }
    }
    let kinds: Vec<&str> = got.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["token", "token", "response"]);
    assert_eq!(got[2]["content"], "Liste faite");
    let ws_conv = got[2]["conversation_id"].as_str().unwrap().to_string();
    // The connection keeps its conversation; bad input is an error event, not a close.
    ws_send(&mut ws, json!({"nope": 1})).await;
    let e = next_ws(&mut ws).await;
    assert_eq!(e["type"], "error");
    mock.push(Script::tokens(&["encore"]));
    ws_send(&mut ws, json!({"message": "Et maintenant?"})).await;
    let _token = next_ws(&mut ws).await;
    let resp = next_ws(&mut ws).await;
    assert_eq!(resp["conversation_id"], ws_conv.as_str());
    let bad = format!("{}/ws/chat?token=nope", s.base.replace("http://", "ws://"));
    assert!(
        tokio_tungstenite::connect_async(bad).await.is_err(),
        "a bad token is refused at the handshake"
    );
}

/// Next JSON text frame, skipping pings.
pub async fn next_ws(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("ws frame in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] != "ping" {
                return v;
            }
        }
    }
}

async fn foyer_messages_and_stream(b: Backend) {
    let (s, mock, admin, other) = setup(b).await;
    let chat: i64 = new_chat(&s, &admin.access, None, None)
        .await
        .parse()
        .unwrap();
    mock.push(Script::tokens(&["Les", " décorateurs"]));
    let (st, r) = s
        .post(
            "/api/messages",
            Some(&admin.access),
            json!({"chat_id": chat, "content": "Comment utiliser les décorateurs?", "files": []}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{r}");
    let u = &r["user_message"];
    assert_eq!(u["role"], "user");
    assert_eq!(u["chat_id"], chat);
    assert_eq!(u["content"], "Comment utiliser les décorateurs?");
    assert!(u["id"].is_i64() && u["created_at"].is_string());
    let a = &r["assistant_message"];
    assert_eq!(a["role"], "assistant");
    assert_eq!(a["content"], "Les décorateurs");
    assert_eq!(a["llm_model"], "mock");
    assert_eq!(a["chat_id"], chat);
    assert!(a["id"].as_i64().unwrap() > u["id"].as_i64().unwrap());

    // SSE: {"token", "message_id"} … [DONE]
    mock.push(Script::tokens(&["Les", " décorateurs", " en"]));
    let res = s
        .http
        .get(s.url(&format!(
            "/api/messages/stream/{chat}?message=Encore%20un%20exemple"
        )))
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap();
    let lines = sse_lines(res).await;
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[3], "[DONE]");
    let first: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["token"], "Les");
    let mid = first["message_id"].as_i64().unwrap();
    for l in &lines[..3] {
        assert_eq!(serde_json::from_str::<Value>(l).unwrap()["message_id"], mid);
    }
    // The chat holds both exchanges (seed 001 chat detail).
    let (_, c) = s
        .get(&format!("/api/chats/{chat}"), Some(&admin.access))
        .await;
    assert_eq!(c["messages"].as_array().unwrap().len(), 4, "{c}");
    assert_eq!(c["messages"][3]["content"], "Les décorateurs en");

    // Someone else's chat, no auth, malformed, oversize.
    let (st, _) = s
        .post(
            "/api/messages",
            Some(&other.access),
            json!({"chat_id": chat, "content": "hi"}),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let st = s
        .http
        .get(s.url(&format!("/api/messages/stream/{chat}?message=hi")))
        .bearer_auth(&other.access)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(
        s.post(
            "/api/messages",
            None,
            json!({"chat_id": chat, "content": "hi"})
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.get(&format!("/api/messages/stream/{chat}?message=hi"), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post_raw(&s, "/api/messages", Some(&admin.access), "[")
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        s.post(
            "/api/messages",
            Some(&admin.access),
            json!({"chat_id": "x", "content": "hi"})
        )
        .await
        .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let (st, e) = s
        .post(
            "/api/messages",
            Some(&admin.access),
            json!({"chat_id": chat, "content": "é".repeat(4001)}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e["status"], "error");
    assert!(e["detail"].as_str().unwrap().contains("4000"));
    let (st, _) = s
        .get(
            &format!("/api/messages/stream/{chat}?message={}", "a".repeat(4001)),
            Some(&admin.access),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        s.post_declared_size("/api/messages", &admin.access, 50 * 1024 * 1024)
            .await
            .0,
        413
    );
    // A state-changing GET: the cookie alone is not enough, its CSRF token must come along.
    let (cookie, csrf) = cookie_login(&s, "admin").await;
    let url = s.url(&format!("/api/messages/stream/{chat}?message=hi"));
    let st = s
        .http
        .get(&url)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, StatusCode::FORBIDDEN);
    mock.push(Script::tokens(&["ok"]));
    let res = s
        .http
        .get(&url)
        .header("cookie", &cookie)
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(sse_lines(res).await.last().unwrap(), "[DONE]");
    // Nothing was stored by the refused requests (only the last, accepted exchange).
    let (_, c) = s
        .get(&format!("/api/chats/{chat}"), Some(&admin.access))
        .await;
    assert_eq!(c["messages"].as_array().unwrap().len(), 6);
}

async fn nexus_llm_and_agents(b: Backend) {
    let (s, mock, admin, other) = setup(b).await;
    mock.push(Script::tokens(&["L'", "intelligence", " artificielle"]));
    let body = json!({
        "messages": [
            {"role": "system", "content": "Tu es un assistant utile."},
            {"role": "user", "content": "Explique l'IA en termes simples."}
        ],
        "model": "mock", "temperature": 0.7, "max_tokens": 1000, "stream": false
    });
    let (st, r) = s
        .post("/api/v1/llm/chat", Some(&admin.access), body.clone())
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert!(r["id"].as_str().unwrap().starts_with("chat-"));
    assert_eq!(r["model"], "mock");
    assert_eq!(r["choices"][0]["index"], 0);
    assert_eq!(
        r["choices"][0]["message"],
        json!({"role": "assistant", "content": "L'intelligence artificielle"})
    );
    assert_eq!(r["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        r["usage"],
        json!({"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14})
    );
    assert_eq!(mock.requests()[0]["messages"], body["messages"]);
    // Streaming: {delta, finish_reason} lines.
    mock.push(Script::tokens(&["L'", "intelligence"]));
    let mut sb = body.clone();
    sb["stream"] = json!(true);
    let res = s
        .http
        .post(s.url("/api/v1/llm/chat"))
        .bearer_auth(&admin.access)
        .json(&sb)
        .send()
        .await
        .unwrap();
    let lines: Vec<Value> = sse_lines(res)
        .await
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        vec![
            json!({"delta": "L'", "finish_reason": null}),
            json!({"delta": "intelligence", "finish_reason": null}),
            json!({"delta": "", "finish_reason": "stop"}),
        ]
    );
    // Models.
    let (_, m) = s.get("/api/v1/llm/models", Some(&other.access)).await;
    let mm = m["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == "mock")
        .unwrap()
        .clone();
    assert_eq!(mm["provider"], "openai");
    assert_eq!(mm["context_length"], 8192);
    assert_eq!(mm["cost_per_1k_input"], 0.5);
    assert_eq!(mm["cost_per_1k_output"], 1.5);
    // Agents: a public agent is an agent type for everyone.
    let (_, a) = s
        .post("/api/agents", Some(&admin.access), json!({"name": "Consultant", "description": "Agent conseil stratégique", "system_prompt": "Tu conseilles.", "is_public": true, "model": "mock", "capabilities": ["market_analysis", "strategy"]}))
        .await;
    let slug = a["slug"]
        .as_str()
        .unwrap_or_else(|| panic!("{a}"))
        .to_string();
    let (_, private) = s
        .post(
            "/api/agents",
            Some(&admin.access),
            json!({"name": "Secret", "system_prompt": "x", "is_public": false}),
        )
        .await;
    let private_slug = private["slug"].as_str().unwrap().to_string();
    let (st, l) = s.get("/api/v1/agents", Some(&other.access)).await;
    assert_eq!(st, StatusCode::OK);
    let item = l["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["type"] == slug.as_str())
        .cloned()
        .unwrap();
    assert_eq!(item["name"], "Consultant");
    assert_eq!(item["description"], "Agent conseil stratégique");
    assert_eq!(item["status"], "available");
    assert_eq!(item["capabilities"], json!(["market_analysis", "strategy"]));
    assert!(!l.to_string().contains(&private_slug));
    // Invoke (stateless).
    mock.push(Script::tokens(&["Selon", " mon", " analyse"]));
    let (st, r) = s
        .post(&format!("/api/v1/agents/{slug}/invoke"), Some(&other.access),
              json!({"input": "Analyse le marché e-commerce en Algérie", "context": {"language": "fr", "format": "detailed"}, "options": {"model": "mock", "temperature": 0.7, "max_tokens": 4000}}))
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["agent_type"], slug.as_str());
    assert_eq!(r["response"], "Selon mon analyse");
    assert_eq!(r["metadata"]["model"], "mock");
    assert_eq!(r["metadata"]["tokens_used"], 14);
    assert!(r["metadata"]["latency_ms"].is_i64());
    let cost = r["metadata"]["cost_usd"].as_f64().unwrap();
    assert!(
        (cost - (11.0 * 0.5 + 3.0 * 1.5) / 1000.0).abs() < 1e-9,
        "{cost}"
    );
    let sent = mock.requests().last().cloned().unwrap();
    assert_eq!(sent["messages"][0]["content"], "Tu conseilles.");
    assert!(sent["messages"][1]["content"]
        .as_str()
        .unwrap()
        .contains("\"language\":\"fr\""));
    // Chat: the session continues.
    mock.push(Script::tokens(&["Première"]));
    let (st, r) = s
        .post(
            &format!("/api/v1/agents/{slug}/chat"),
            Some(&other.access),
            json!({"message": "Commence l'analyse", "stream": false}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["response"], "Première");
    let session = r["session_id"].as_str().unwrap().to_string();
    mock.push(Script::tokens(&["Suite"]));
    let (_, r) = s.post(&format!("/api/v1/agents/{slug}/chat"), Some(&other.access), json!({"message": "Continue l'analyse précédente", "session_id": session, "stream": false})).await;
    assert_eq!(r["session_id"], session.as_str());
    assert_eq!(
        mock.requests().last().unwrap()["messages"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    // Errors in seed 002's shape: someone else's session, private agent, no auth, bad bodies.
    let (st, e) = s
        .post(
            &format!("/api/v1/agents/{slug}/chat"),
            Some(&admin.access),
            json!({"message": "x", "session_id": session}),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(e["error"]["code"], "NOT_FOUND");
    assert!(e["request_id"].is_string());
    let (st, _) = s
        .post(
            &format!("/api/v1/agents/{private_slug}/invoke"),
            Some(&other.access),
            json!({"input": "x"}),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(
        s.post("/api/v1/llm/chat", None, body.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (st, e) = post_raw(&s, "/api/v1/llm/chat", Some(&admin.access), "{").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"]["code"], "INVALID_JSON");
    let (st, e) = s
        .post(
            "/api/v1/llm/chat",
            Some(&admin.access),
            json!({"messages": []}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let (st, _) = s
        .post(
            "/api/v1/llm/chat",
            Some(&admin.access),
            json!({"messages": [{"role": "wizard", "content": "x"}]}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let (st, _) = s
        .post(
            &format!("/api/v1/agents/{slug}/invoke"),
            Some(&admin.access),
            json!({"input": "x".repeat(4001)}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        s.post_declared_size("/api/v1/llm/chat", &admin.access, 50 * 1024 * 1024)
            .await
            .0,
        413
    );
}

async fn plugin_host_infer_and_stream(b: Backend) {
    let (s, mock, admin, _other) = setup(b).await;
    mock.push(Script::tokens(&["Bon", "jour"]));
    let (st, r) = s
        .post(
            "/llm/infer",
            Some(&admin.access),
            json!({"prompt": "Bonjour"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["text"], "Bonjour");
    assert_eq!(
        s.post("/llm/infer", None, json!({"prompt": "x"})).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.post("/llm/infer", Some(&admin.access), json!({})).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        post_raw(&s, "/llm/infer", Some(&admin.access), "{").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        s.post_declared_size("/llm/infer", &admin.access, 50 * 1024 * 1024)
            .await
            .0,
        413
    );

    let url = format!(
        "{}/llm/stream?token={}",
        s.base.replace("http://", "ws://"),
        admin.access
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
    mock.push(Script::tokens(&["Bon", "jour", "!"]));
    ws_send(&mut ws, json!({"type": "request", "req_id": "1", "source": "demo", "event": "start", "payload": {"prompt": "Bonjour"}, "ts": 1})).await;
    let mut frames = Vec::new();
    loop {
        let v = next_ws(&mut ws).await;
        for f in ["type", "req_id", "source", "event", "payload", "ts"] {
            assert!(v.get(f).is_some(), "frame lacks {f}: {v}");
        }
        assert_eq!(v["req_id"], "1");
        let end = v["event"] == "end" || v["event"] == "error";
        frames.push(v);
        if end {
            break;
        }
    }
    let events: Vec<&str> = frames
        .iter()
        .map(|f| f["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["status", "token", "token", "token", "end"]);
    let text: String = frames[1..4]
        .iter()
        .map(|f| f["payload"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Bonjour!");
    assert_eq!(frames[4]["payload"]["usage"]["completion_tokens"], 3);
    // A bad request is an error frame; the socket stays usable.
    ws_send(
        &mut ws,
        json!({"type": "request", "req_id": "2", "event": "start", "payload": {}}),
    )
    .await;
    let e = next_ws(&mut ws).await;
    assert_eq!(e["type"], "error");
    assert_eq!(e["req_id"], "2");
    assert_eq!(e["payload"]["code"], "validation_error");
    let no_auth = format!("{}/llm/stream", s.base.replace("http://", "ws://"));
    assert!(tokio_tungstenite::connect_async(no_auth).await.is_err());
}

async fn runner_registry_config_parameters(b: Backend) {
    let (s, _mock, admin, other) = setup(b).await;
    let assets = std::fs::canonicalize(".hearth/assets").expect("assets fetched by `make setup`");
    let gguf = assets.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let (st, r) = s
        .post("/api/models", Some(&admin.access), json!({"models": [{"name": "mistral-7b", "description": "Mistral model", "path": gguf}]}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{r}");
    assert_eq!(r["message"], "Models registered successfully");
    assert_eq!(r["registered"], 1);
    // Duplicate key, missing path, non-admin, malformed, no auth.
    let (st, e) = s
        .post(
            "/api/models",
            Some(&admin.access),
            json!({"models": [{"name": "mistral-7b", "path": gguf}]}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["error"], e["detail"]);
    let (st, e) = s
        .post(
            "/api/models",
            Some(&admin.access),
            json!({"models": [{"name": "ghost", "path": "/nonexistent/x.gguf"}]}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["code"], "validation_error");
    let (st, e) = s
        .post(
            "/api/models",
            Some(&other.access),
            json!({"models": [{"name": "x", "path": gguf}]}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert!(e["error"].is_string());
    assert_eq!(
        post_raw(&s, "/api/models", Some(&admin.access), "{")
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        s.post("/api/models", None, json!({"models": []})).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.post_declared_size("/api/models", &admin.access, 50 * 1024 * 1024)
            .await
            .0,
        413
    );

    // Discovery reads the GGUF header: the embedded model is found (already registered).
    let (st, d) = s
        .post(
            "/api/models/discover",
            Some(&admin.access),
            json!({"paths": [assets, "/nonexistent"]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{d}");
    assert_eq!(d["totalFound"], 1);
    assert_eq!(d["scannedPaths"].as_array().unwrap().len(), 2);
    let f = &d["discovered"][0];
    assert_eq!(f["family"], "llama");
    assert_eq!(f["path"], gguf.display().to_string());
    assert!(f["size"].as_i64().unwrap() > 50_000_000);
    assert!(f["name"].is_string() && f.get("version").is_some() && f.get("description").is_some());
    assert_eq!(
        s.post(
            "/api/models/discover",
            Some(&other.access),
            json!({"paths": ["/"]})
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.post(
            "/api/models/discover",
            Some(&admin.access),
            json!({"paths": []})
        )
        .await
        .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // Config.
    let (_, c) = s.get("/api/config", Some(&other.access)).await;
    assert_eq!(c["app"]["name"], "Hearth");
    assert!(c["app"]["version"].is_string());
    assert_eq!(c["models"]["defaultModel"], "mock");
    assert_eq!(c["models"]["maxConcurrent"], 4);
    let (st, c) = s
        .post(
            "/api/config",
            Some(&admin.access),
            json!({"models": {"defaultModel": "mistral-7b", "maxConcurrent": 2}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{c}");
    assert_eq!(c["models"]["defaultModel"], "mistral-7b");
    assert_eq!(c["models"]["maxConcurrent"], 2);
    let (st, _) = s
        .post(
            "/api/config",
            Some(&admin.access),
            json!({"models": {"defaultModel": "nope"}}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        s.post(
            "/api/config",
            Some(&other.access),
            json!({"models": {"maxConcurrent": 5}})
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );

    // Parameters.
    let (_, p) = s.get("/api/parameters", Some(&other.access)).await;
    assert_eq!(p["categories"], json!(["model", "system", "performance"]));
    let (_, p) = s.get("/api/parameters/model", Some(&other.access)).await;
    assert_eq!(p["category"], "model");
    assert_eq!(
        p["parameters"]["temperature"],
        json!({"value": 0.7, "min": 0.0, "max": 2.0, "description": "Controls randomness in generation"})
    );
    assert_eq!(p["parameters"]["maxTokens"]["value"], 512);
    let (_, p) = s
        .get("/api/parameters/category/temperature", Some(&other.access))
        .await;
    assert_eq!(
        p,
        json!({"parameter": "temperature", "value": 0.7, "category": "model"})
    );
    let (st, e) = s.get("/api/parameters/nope", Some(&other.access)).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(e["error"].is_string());
    assert_eq!(
        s.get("/api/parameters", None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn openai_v1_with_an_api_key(b: Backend) {
    let (s, mock, admin, _other) = setup(b).await;
    let (st, k) = s
        .post(
            "/api/v1/keys",
            Some(&admin.access),
            json!({"name": "sdk", "permissions": ["read", "write"]}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{k}");
    let key = k["api_key"].as_str().unwrap().to_string();
    mock.push(Script::tokens(&["Hi", " there"]));
    let body = json!({"model": "mock", "messages": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Hello"}]}], "max_completion_tokens": 20});
    let (st, r) = s
        .post("/v1/chat/completions", Some(&key), body.clone())
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["object"], "chat.completion");
    assert!(r["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(r["created"].is_i64());
    assert_eq!(r["model"], "mock");
    assert_eq!(
        r["choices"][0]["message"],
        json!({"role": "assistant", "content": "Hi there"})
    );
    assert_eq!(r["choices"][0]["finish_reason"], "stop");
    assert_eq!(r["usage"]["total_tokens"], 13);
    let sent = mock.requests()[0].clone();
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}])
    );
    assert_eq!(sent["max_tokens"], 20);
    // Streaming with usage, ending in [DONE].
    mock.push(Script::tokens(&["Hi", " there"]));
    let mut sb = body.clone();
    sb["stream"] = json!(true);
    sb["stream_options"] = json!({"include_usage": true});
    let res = s
        .http
        .post(s.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&sb)
        .send()
        .await
        .unwrap();
    let lines = sse_lines(res).await;
    assert_eq!(lines.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = lines[..lines.len() - 1]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk" && c["id"] == chunks[0]["id"]));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hi there");
    let fin = chunks
        .iter()
        .find(|c| c["choices"][0]["finish_reason"] == "stop")
        .expect("finish chunk");
    assert_eq!(fin["choices"][0]["delta"], json!({}));
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 2);
    // Models.
    let (st, m) = s.get("/v1/models", Some(&key)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(m["object"], "list");
    assert!(m["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["id"] == "mock" && x["object"] == "model" && x["owned_by"] == "openai"));
    // OpenAI-shaped errors.
    let (st, e) = s.post("/v1/chat/completions", None, body.clone()).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(e["error"]["type"], "authentication_error");
    let (st, e) = s
        .post(
            "/v1/chat/completions",
            Some(&key),
            json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert_eq!(e["error"]["param"], "model");
    let (st, e) = post_raw(&s, "/v1/chat/completions", Some(&key), "{").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"]["code"], "invalid_json");
    let (st, _) = s
        .post(
            "/v1/chat/completions",
            Some(&key),
            json!({"messages": [{"role": "user", "content": "x"}], "n": 2}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        s.post_declared_size("/v1/chat/completions", &key, 50 * 1024 * 1024)
            .await
            .0,
        413
    );
    // A read-only key cannot generate.
    let (_, ro) = s
        .post(
            "/api/v1/keys",
            Some(&admin.access),
            json!({"name": "ro", "permissions": ["read"]}),
        )
        .await;
    let (st, e) = s
        .post(
            "/v1/chat/completions",
            Some(ro["api_key"].as_str().unwrap()),
            body,
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{e}");
    assert_eq!(e["error"]["type"], "permission_error");
}

/// Every chat and model door refuses anonymous callers with 401 and its API's error shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_llm_door_needs_auth() {
    let s = TestServer::start(Backend::Sqlite).await;
    let gets = [
        "/api/models",
        "/api/config",
        "/api/parameters",
        "/api/parameters/model",
        "/api/parameters/category/temperature",
        "/api/v1/llm/models",
        "/api/v1/agents",
        "/v1/models",
        "/api/messages/stream/1?message=hi",
    ];
    for path in gets {
        let (st, body) = s.get(path, None).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{path}: {body}");
    }
    let posts = [
        "/api/chat",
        "/api/messages",
        "/api/models",
        "/api/models/discover",
        "/api/config",
        "/api/v1/llm/chat",
        "/api/v1/agents/x/invoke",
        "/api/v1/agents/x/chat",
        "/llm/infer",
        "/v1/chat/completions",
    ];
    for path in posts {
        let (st, body) = s.post(path, None, json!({})).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{path}: {body}");
        let code = if path.starts_with("/api/v1/") {
            body["error"]["code"] == "UNAUTHENTICATED"
        } else if path.starts_with("/v1/") {
            body["error"]["type"] == "authentication_error"
        } else {
            body["code"] == "unauthenticated"
        };
        assert!(code, "{path}: {body}");
    }
}

/// Seed 003's `POST /history/replay`: a chat's user turns sent again, in order, into a new
/// chat, each answer seeing the replay's own earlier answers; cookie + CSRF as the seed, a
/// bearer token too; 401, 403 without the CSRF token, 404 for someone else's chat, 400 for a
/// malformed body, 413 for an oversize one.
async fn history_replay(b: Backend) {
    let (s, mock, admin, other) = setup(b).await;
    let chat = new_chat(&s, &admin.access, None, None).await;
    for (q, a) in [
        ("First question", "First answer."),
        ("Second question", "Second answer."),
    ] {
        mock.set_default(Script::tokens(&[a]));
        s.gql(Some(&admin.access), "mutation($c: ID!, $q: String!) { sendMessage(input: {chatId: $c, content: $q}) { assistantMessageId } }", json!({ "c": chat, "q": q }))
            .await;
        crate::grounded::wait_complete(&s, &admin.access, &chat).await;
    }
    let (cookie, csrf) = cookie_login(&s, "admin").await;
    let post = |body: Value, with_csrf: bool| {
        let mut req = s
            .http
            .post(s.url("/history/replay"))
            .header(reqwest::header::COOKIE, &cookie)
            .json(&body);
        if with_csrf {
            req = req.header("X-CSRF-Token", &csrf);
        }
        async move {
            let res = req.send().await.unwrap();
            let st = res.status();
            (st, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (st, b) = s
        .post("/history/replay", None, json!({ "chat_id": chat }))
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{b}");
    let (st, b) = post(json!({ "chat_id": chat }), false).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(b["code"], "csrf_invalid", "{b}");
    let (st, b) = s
        .post(
            "/history/replay",
            Some(&other.access),
            json!({ "chat_id": chat }),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "someone else's chat: {b}");
    for bad in [
        json!({}),
        json!({ "chat_id": "twelve" }),
        json!({ "chat_id": chat, "extra": 1 }),
    ] {
        let (st, b) = post(bad.clone(), true).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}: {b}");
    }
    let (st, b) = post(json!({ "chat_id": chat, "model": "x".repeat(300) }), true).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["details"]["field"], "model", "{b}");
    // Refused on its declared size, before a byte of it is read.
    assert_eq!(
        s.post_declared_size("/history/replay", &admin.access, 3 << 20)
            .await
            .0,
        413
    );

    // Replayed and waited for: the new chat has both questions and fresh answers.
    let before = mock.requests().len();
    mock.set_default(Script::tokens(&["Replayed."]));
    let (st, r) = post(
        json!({ "chat_id": format!("conv-{chat}"), "model": "mock", "wait": true }),
        true,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "complete", "{r}");
    assert_eq!(r["turns"], 2, "{r}");
    assert_eq!(r["replayed"], 2, "{r}");
    let replayed = r["chat_id"].as_str().unwrap().to_string();
    assert_ne!(replayed, chat);
    let msgs = crate::grounded::wait_complete(&s, &admin.access, &replayed).await;
    let texts: Vec<(&str, &str)> = msgs
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert_eq!(
        texts,
        vec![
            ("user", "First question"),
            ("assistant", "Replayed."),
            ("user", "Second question"),
            ("assistant", "Replayed."),
        ]
    );
    // The second turn's prompt carried the replay's first answer, not the original one.
    let reqs = mock.requests();
    assert_eq!(reqs.len(), before + 2);
    let second = reqs.last().unwrap()["messages"].to_string();
    assert!(
        second.contains("Replayed.") && !second.contains("First answer."),
        "{second}"
    );

    // Without `wait`: 202 at once, the turns follow in the background.
    let (st, r) = s
        .post(
            "/history/replay",
            Some(&admin.access),
            json!({ "chat_id": chat }),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{r}");
    assert_eq!(r["status"], "replaying", "{r}");
    let id = r["chat_id"].as_str().unwrap().to_string();
    let mut done = false;
    for _ in 0..100 {
        let msgs = crate::grounded::wait_complete(&s, &admin.access, &id).await;
        done = msgs.len() == 4 && msgs.iter().all(|m| m["status"] == "complete");
        if done {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(done, "the background replay stores both turns");
}

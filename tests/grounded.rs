//! Grounded answers: `ask` and the chat turns of an agent with documents give the model the
//! retrieved passages, numbered, and keep them on the answer's message; seed 002's RAG doors
//! (upload answered once indexed, query with `answer` and `sources`, collections, delete).
//! The model is the tests' OpenAI-compatible server, so the prompt it received is checked.

use crate::both_backends;
use crate::documents::{settled, upload_ok};
use crate::mock_llm::{MockLlm, Script};
use crate::support::{Backend, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn with_model(s: &TestServer, admin: &str) -> MockLlm {
    let mock = MockLlm::start().await;
    crate::chat_turns::remote_model(s, admin, "mock", &mock.base_url, 8192).await;
    let (_, r) = s
        .gql(
            Some(admin),
            "mutation { setDefaultModel(key: \"mock\") }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["setDefaultModel"], true, "{r}");
    mock
}

/// The system prompt text the model last received.
fn last_system_prompt(mock: &MockLlm) -> String {
    let reqs = mock.requests();
    let last = reqs.last().expect("the model was called");
    last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "system")
        .map(|m| m["content"].as_str().unwrap_or("").to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) async fn wait_complete(s: &TestServer, token: &str, chat: &str) -> Vec<Value> {
    for _ in 0..300 {
        let (_, b) = s
            .gql(
                Some(token),
                "query($id: ID!) { chat(id: $id) { messages(last: 10) { role status content sources { n cited filename text span { start end } } } } }",
                json!({ "id": chat }),
            )
            .await;
        let msgs = b["data"]["chat"]["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if msgs
            .iter()
            .any(|m| m["role"] == "assistant" && m["status"] == "complete")
        {
            return msgs;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the answer did not complete");
}

async fn answers_cite_their_sources(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("asker").await;
    let mock = with_model(&s, &u.access).await;
    let t = json!({ "collection": "manual" });
    for (name, text) in [
        ("boiler.txt", "To bleed a radiator, turn the valve a quarter turn with the radiator key until water appears."),
        ("garden.txt", "Tomatoes need six hours of sun a day and deep watering twice a week."),
    ] {
        let id = upload_ok(&s, &u.access, name, text.as_bytes().to_vec(), t.clone()).await;
        assert_eq!(settled(&s, &u.access, &id).await["status"], "INDEXED");
    }
    mock.set_default(Script::tokens(&["Use the radiator key", " [1]."]));
    let (_, r) = s
        .gql(
            Some(&u.access),
            "mutation($q: String!, $t: DocumentTarget) { ask(query: $q, target: $t) { chatId messageId sources { n filename text } } }",
            json!({ "q": "How do I bleed a radiator?", "t": t }),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    let ask = &r["data"]["ask"];
    assert_eq!(ask["sources"][0]["n"], 1);
    assert_eq!(ask["sources"][0]["filename"], "boiler.txt", "{ask}");
    let prompt = last_system_prompt(&mock);
    assert!(prompt.contains("[1] (boiler.txt)"), "{prompt}");
    assert!(prompt.contains("quarter turn"), "{prompt}");
    let msgs = wait_complete(&s, &u.access, ask["chatId"].as_str().unwrap()).await;
    let answer = msgs.iter().find(|m| m["role"] == "assistant").unwrap();
    assert_eq!(answer["content"], "Use the radiator key [1].");
    assert_eq!(answer["sources"][0]["cited"], true, "{answer}");
    assert_eq!(answer["sources"][0]["filename"], "boiler.txt");

    // An agent with documents retrieves in every chat turn; an unrelated question gets none.
    let (_, a) = s
        .gql(
            Some(&u.access),
            "mutation { createAgent(input: {name: \"Gardener\", isPublic: false}) { id } }",
            json!({}),
        )
        .await;
    let agent = a["data"]["createAgent"]["id"].as_str().unwrap().to_string();
    let id = upload_ok(
        &s,
        &u.access,
        "roses.txt",
        b"Prune roses in late winter, just above an outward-facing bud.".to_vec(),
        json!({ "agentId": agent }),
    )
    .await;
    settled(&s, &u.access, &id).await;
    let (_, c) = s
        .gql(
            Some(&u.access),
            "mutation($a: ID!) { createChat(input: {agentId: $a}) { id } }",
            json!({ "a": agent }),
        )
        .await;
    let chat = c["data"]["createChat"]["id"].as_str().unwrap().to_string();
    mock.set_default(Script::tokens(&["In late winter."]));
    let (_, r) = s
        .gql(Some(&u.access), "mutation($c: ID!) { sendMessage(input: {chatId: $c, content: \"When should I prune my roses?\"}) { assistantMessageId } }", json!({ "c": chat }))
        .await;
    assert!(r["errors"].is_null(), "{r}");
    let msgs = wait_complete(&s, &u.access, &chat).await;
    let answer = msgs.iter().find(|m| m["role"] == "assistant").unwrap();
    assert_eq!(answer["sources"][0]["filename"], "roses.txt", "{answer}");
    assert_eq!(
        answer["sources"][0]["cited"], false,
        "the answer cites nothing"
    );
    assert!(last_system_prompt(&mock).contains("outward-facing bud"));

    // Someone else's agent documents are not theirs to ask: the agent is private.
    let other = s.user("outsider").await;
    let (_, r) = s
        .gql(
            Some(&other.access),
            "mutation($t: DocumentTarget) { ask(query: \"roses\", target: $t) { chatId } }",
            json!({ "t": { "agentId": agent } }),
        )
        .await;
    assert_eq!(TestServer::gql_code(&r), "not_found", "{r}");
    // Their ask over a collection name finds their own (empty) namespace only.
    mock.set_default(Script::tokens(&["I do not know."]));
    let (_, r) = s
        .gql(Some(&other.access), "mutation { ask(query: \"How do I bleed a radiator?\", target: {collection: \"manual\"}) { sources { n } } }", json!({}))
        .await;
    assert_eq!(r["data"]["ask"]["sources"], json!([]), "{r}");
}

async fn nexus_rag_doors(backend: Backend) {
    let s = TestServer::start_with(backend, |c| c.rag.max_upload_bytes = 32 * 1024).await;
    let u = s.user("analyst").await;
    let mock = with_model(&s, &u.access).await;
    let upload =
        |token: Option<String>, name: &'static str, bytes: Vec<u8>, collection: &'static str| {
            let s = &s;
            async move {
                let form = reqwest::multipart::Form::new()
                    .text("collection", collection)
                    .text(
                        "metadata",
                        "{\"source\": \"annual_report\", \"year\": 2024}",
                    )
                    .part(
                        "file",
                        reqwest::multipart::Part::bytes(bytes).file_name(name),
                    );
                let mut req = s.http.post(s.url("/api/v1/rag/upload")).multipart(form);
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                let res = req.send().await.unwrap();
                let st = res.status();
                (st, res.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
    let (st, d) = upload(
        Some(u.access.clone()),
        "report.txt",
        b"Revenue in 2024 was 15 million dinars, up from 12 million in 2023.".to_vec(),
        "reports",
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{d}");
    assert_eq!(d["status"], "indexed", "answered once indexed: {d}");
    assert_eq!(d["chunks"], 1);
    assert_eq!(d["collection"], "reports");
    let doc_id = d["document_id"].as_str().unwrap().to_string();
    // The collections.
    let (st, c) = s.get("/api/v1/rag/collections", Some(&u.access)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(c["collections"][0]["name"], "reports");
    assert_eq!(c["collections"][0]["documents"], 1);
    // A grounded answer with its sources and metadata.
    mock.set_default(Script::tokens(&["15 million dinars [1]."]));
    let (st, a) = s
        .post("/api/v1/rag/query", Some(&u.access), json!({ "query": "What was revenue in 2024?", "collection": "reports", "options": { "top_k": 5, "threshold": 0.1, "rerank": true } }))
        .await;
    assert_eq!(st, StatusCode::OK, "{a}");
    assert_eq!(a["answer"], "15 million dinars [1].");
    assert_eq!(a["sources"][0]["document_id"], doc_id);
    assert!(a["sources"][0]["content"]
        .as_str()
        .unwrap()
        .contains("Revenue in 2024"));
    assert!(a["sources"][0]["score"].as_f64().unwrap() > 0.0);
    assert!(a["metadata"]["tokens_used"].as_u64().unwrap() > 0, "{a}");
    assert!(a["metadata"]["latency_ms"].is_u64());
    // Bad requests, in the seed's error shape.
    let (st, e) = s
        .post("/api/v1/rag/query", Some(&u.access), json!({ "query": "" }))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["error"]["code"], "VALIDATION_ERROR", "{e}");
    let (st, _) = s
        .post(
            "/api/v1/rag/query",
            Some(&u.access),
            json!({ "query": "x", "options": { "top_k": 0 } }),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let (st, _) = s
        .post("/api/v1/rag/query", None, json!({ "query": "x" }))
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, e) = upload(
        Some(u.access.clone()),
        "big.txt",
        vec![b'a'; 32 * 1024 + 1],
        "reports",
    )
    .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{e}");
    let (st, _) = upload(None, "a.txt", b"x".to_vec(), "reports").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // Someone else's document: not found; the owner's delete works.
    let other = s.user("stranger").await;
    let (st, _) = s
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/rag/documents/{doc_id}"),
            Some(&other.access),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, c) = s.get("/api/v1/rag/collections", Some(&other.access)).await;
    assert_eq!((st, c["collections"].clone()), (StatusCode::OK, json!([])));
    let (st, _) = s
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/rag/documents/{doc_id}"),
            Some(&u.access),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (_, c) = s.get("/api/v1/rag/collections", Some(&u.access)).await;
    assert_eq!(c["collections"][0]["documents"], 0);
}

async fn memory_is_remembered_and_recalled(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("rememberer").await;
    let mock = with_model(&s, &u.access).await;
    // Seed 000's doors.
    let (st, e) = s
        .post("/api/memory", Some(&u.access), json!({ "content": "Le projet JSR utilise React et TailwindCSS", "metadata": { "project": "jsr", "type": "tech_stack" } }))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{e}");
    assert_eq!(e["indexed"], true, "searchable once answered: {e}");
    assert_eq!(e["metadata"]["project"], "jsr");
    s.post(
        "/api/memory",
        Some(&u.access),
        json!({ "content": "The staging server is called blue-falcon." }),
    )
    .await;
    let (st, r) = s
        .get("/api/memory/search?q=projet%20JSR&limit=5", Some(&u.access))
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert!(
        r["results"][0]["content"]
            .as_str()
            .unwrap()
            .contains("React"),
        "{r}"
    );
    assert_eq!(r["results"][0]["metadata"]["type"], "tech_stack");
    let (_, r) = s
        .get(
            "/api/memory/search?q=staging%20server&limit=1",
            Some(&u.access),
        )
        .await;
    assert_eq!(r["count"], 1);
    assert!(
        r["results"][0]["content"]
            .as_str()
            .unwrap()
            .contains("blue-falcon"),
        "{r}"
    );
    // Bad input and other people.
    let (st, _) = s.post("/api/memory", None, json!({ "content": "x" })).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = s
        .post("/api/memory", Some(&u.access), json!({ "content": "" }))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let (st, _) = s
        .post(
            "/api/memory",
            Some(&u.access),
            json!({ "content": "x", "metadata": [1] }),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let (st, _) = s
        .post(
            "/api/memory",
            Some(&u.access),
            json!({ "content": "x".repeat(20_001) }),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let (st, _) = s
        .get("/api/memory/search?q=x&limit=100000", Some(&u.access))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let other = s.user("stranger").await;
    let (_, r) = s
        .get("/api/memory/search?q=projet%20JSR", Some(&other.access))
        .await;
    assert_eq!(r["count"], 0, "{r}");
    let (_, r) = s
        .gql(
            Some(&other.access),
            "{ memorySearch(query: \"staging server\") { content } }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["memorySearch"], json!([]), "{r}");
    // GraphQL.
    let (_, r) = s
        .gql(Some(&u.access), "mutation { remember(content: \"Invoices are due on the 5th.\", metadata: {team: \"finance\"}) { id indexed } }", json!({}))
        .await;
    assert_eq!(r["data"]["remember"]["indexed"], true, "{r}");
    let (_, r) = s
        .gql(
            Some(&u.access),
            "{ memorySearch(query: \"when are invoices due\", limit: 1) { content metadata } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r["data"]["memorySearch"][0]["metadata"]["team"], "finance",
        "{r}"
    );

    // An agent that learns remembers the exchange and recalls it in a later chat.
    let (_, a) = s
        .gql(Some(&u.access), "mutation { createAgent(input: {name: \"Companion\", learnFromInteraction: true}) { id } }", json!({}))
        .await;
    let agent = a["data"]["createAgent"]["id"].as_str().unwrap().to_string();
    let chat_with = |agent: String| {
        let s = &s;
        let token = u.access.clone();
        async move {
            let (_, c) = s
                .gql(
                    Some(&token),
                    "mutation($a: ID!) { createChat(input: {agentId: $a}) { id } }",
                    json!({ "a": agent }),
                )
                .await;
            c["data"]["createChat"]["id"].as_str().unwrap().to_string()
        }
    };
    let first = chat_with(agent.clone()).await;
    mock.set_default(Script::tokens(&["Noted: teal."]));
    s.gql(Some(&u.access), "mutation($c: ID!) { sendMessage(input: {chatId: $c, content: \"My favourite colour is teal.\"}) { assistantMessageId } }", json!({ "c": first }))
        .await;
    wait_complete(&s, &u.access, &first).await;
    let mut found = false;
    for _ in 0..200 {
        let (_, r) = s
            .gql(
                Some(&u.access),
                "{ memorySearch(query: \"favourite colour\", limit: 3) { content } }",
                json!({}),
            )
            .await;
        if r["data"]["memorySearch"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["content"].as_str().unwrap().contains("teal"))
        {
            found = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(found, "the exchange became memory");
    let second = chat_with(agent).await;
    mock.set_default(Script::tokens(&["Teal."]));
    s.gql(Some(&u.access), "mutation($c: ID!) { sendMessage(input: {chatId: $c, content: \"What is my favourite colour?\"}) { assistantMessageId } }", json!({ "c": second }))
        .await;
    wait_complete(&s, &u.access, &second).await;
    assert!(
        last_system_prompt(&mock).contains("My favourite colour is teal"),
        "{}",
        last_system_prompt(&mock)
    );

    // Seed 000's upload into a conversation.
    let form = reqwest::multipart::Form::new()
        .text("conversation_id", format!("conv-{second}"))
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"Agenda: budget, hiring.".to_vec())
                .file_name("agenda.md"),
        );
    let res = s
        .http
        .post(s.url("/api/upload"))
        .bearer_auth(&u.access)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["conversation_id"], format!("conv-{second}"));
    assert_eq!(b["kind"], "markdown");
    let form = reqwest::multipart::Form::new()
        .text("conversation_id", format!("conv-{second}"))
        .part(
            "file",
            reqwest::multipart::Part::bytes(vec![0x7f, b'E', b'L', b'F', 0, 0])
                .file_name("tool.bin"),
        );
    let res = s
        .http
        .post(s.url("/api/upload"))
        .bearer_auth(&u.access)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let form = reqwest::multipart::Form::new()
        .text("conversation_id", format!("conv-{second}"))
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"hello".to_vec()).file_name("a.txt"),
        );
    let res = s
        .http
        .post(s.url("/api/upload"))
        .bearer_auth(&other.access)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::NOT_FOUND,
        "someone else's conversation"
    );
}

/// Seed 000's `POST /api/upload` refuses a caller without credentials (401), a file over the
/// upload limit (413), a form without its file (422 `validation_error`, as every door's
/// missing field), and stores nothing of them.
async fn orchestrator_upload_refusals(backend: Backend) {
    let s = TestServer::start_with(backend, |c| c.rag.max_upload_bytes = 16 * 1024).await;
    let u = s.user("uploader").await;
    let (_, c) = s
        .gql(
            Some(&u.access),
            "mutation { createChat(input: {}) { id } }",
            json!({}),
        )
        .await;
    let chat = c["data"]["createChat"]["id"].as_str().unwrap().to_string();
    let send = |token: Option<&str>, form: reqwest::multipart::Form| {
        let mut req = s.http.post(s.url("/api/upload")).multipart(form);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move {
            let res = req.send().await.unwrap();
            let st = res.status();
            (st, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let form = |bytes: Vec<u8>| {
        reqwest::multipart::Form::new()
            .text("conversation_id", format!("conv-{chat}"))
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name("notes.txt"),
            )
    };
    let (st, b) = send(None, form(b"hello".to_vec())).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{b}");
    let (st, b) = send(Some(&u.access), form(vec![b'a'; 64 * 1024])).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    let no_file = reqwest::multipart::Form::new().text("conversation_id", format!("conv-{chat}"));
    let (st, b) = send(Some(&u.access), no_file).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["details"]["field"], "file", "{b}");
    // Nothing was stored; the door still works.
    let (_, d) = s
        .gql(
            Some(&u.access),
            "query($c: ID!) { documents(target: {chatId: $c}) { id } }",
            json!({ "c": chat }),
        )
        .await;
    assert_eq!(d["data"]["documents"], json!([]), "{d}");
    let (st, b) = send(Some(&u.access), form(b"hello".to_vec())).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
}

/// Seed 000's `GET /api/stats`: the caller's conversations, messages and memory entries
/// (an admin's: everyone's), the instance's tools and models, an uptime like `0h 0m`.
async fn stats_count_what_the_caller_has(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = s.user("admin").await;
    let u = s.user("counter").await;
    let other = s.user("bystander").await;
    let mock = with_model(&s, &admin.access).await;
    mock.set_default(Script::tokens(&["Noted."]));
    let (_, c) = s
        .gql(
            Some(&u.access),
            "mutation { createChat(input: {}) { id } }",
            json!({}),
        )
        .await;
    let chat = c["data"]["createChat"]["id"].as_str().unwrap().to_string();
    s.gql(Some(&u.access), "mutation($c: ID!) { sendMessage(input: {chatId: $c, content: \"Hello\"}) { assistantMessageId } }", json!({ "c": chat }))
        .await;
    wait_complete(&s, &u.access, &chat).await;
    s.gql(
        Some(&u.access),
        "mutation { createChat(input: {}) { id } }",
        json!({}),
    )
    .await;
    for content in [
        "The staging server is in Lyon",
        "Invoices are due on the 5th",
    ] {
        let (st, b) = s
            .post(
                "/api/memory",
                Some(&u.access),
                json!({ "content": content }),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
    }
    let (st, b) = s.get("/api/stats", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{b}");
    let (st, mine) = s.get("/api/stats", Some(&u.access)).await;
    assert_eq!(st, StatusCode::OK, "{mine}");
    assert_eq!(mine["conversations"], 2, "{mine}");
    assert_eq!(mine["messages"], 2, "a question and its answer: {mine}");
    assert_eq!(mine["memory_entries"], 2, "{mine}");
    let (_, health) = s.get("/health", None).await;
    assert_eq!(
        mine["models_available"], health["models_available"],
        "{mine}"
    );
    assert_eq!(mine["tools_count"], health["tools_count"], "{mine}");
    let uptime = mine["uptime"].as_str().unwrap();
    assert!(uptime.ends_with('m') && uptime.contains("h "), "{uptime}");
    let (_, theirs) = s.get("/api/stats", Some(&other.access)).await;
    assert_eq!(theirs["conversations"], 0, "{theirs}");
    assert_eq!(theirs["messages"], 0, "{theirs}");
    assert_eq!(theirs["memory_entries"], 0, "{theirs}");
    let (_, all) = s.get("/api/stats", Some(&admin.access)).await;
    assert_eq!(all["conversations"], 2, "{all}");
    assert_eq!(all["memory_entries"], 2, "{all}");
}

both_backends!(
    stats_count_what_the_caller_has,
    orchestrator_upload_refusals,
    answers_cite_their_sources,
    nexus_rag_doors,
    memory_is_remembered_and_recalled
);

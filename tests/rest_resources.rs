//! Agents, chats, conversations, projects and health with the seeds' bodies and fields.

use crate::both_backends;
use crate::support::{caller_of, Backend, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::json;

both_backends!(
    foyer_agents,
    foyer_chats,
    orchestrator_conversations,
    nexus_projects,
    health_union,
    bad_bodies_write_nothing,
    agent_quota
);

async fn foyer_agents(b: Backend) {
    let s = TestServer::start(b).await;
    let l = s.user("ABC").await;
    let t = Some(l.access.as_str());
    let (st, a) = s
        .post("/api/agents", t, json!({"name": "Expert Python", "system_prompt": "Tu es un expert en Python...", "learn_from_interaction": true, "is_public": false, "model": "mistral-medium", "temperature": 0.7, "avatar_url": "/avatars/python.png"}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{a}");
    for f in [
        "id",
        "name",
        "system_prompt",
        "learn_from_interaction",
        "is_public",
        "model",
        "temperature",
        "avatar_url",
        "owner_id",
        "created_at",
    ] {
        assert!(a.get(f).is_some(), "agent lacks {f}");
    }
    assert_eq!(a["owner_id"], l.user_id);
    let id = a["id"].as_i64().unwrap();
    s.post("/api/agents", t, json!({"name": "Assistant Général", "system_prompt": "Tu es un assistant utile...", "is_public": true, "model": "mistral-small"})).await;

    let (st, public) = s.get("/api/agents?limit=20&offset=0", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(public["total"], 1);
    assert_eq!(public["limit"], 20);
    assert_eq!(public["offset"], 0);
    assert_eq!(public["agents"][0]["name"], "Assistant Général");
    assert_eq!(public["agents"][0]["owner"]["trigramme"], "ABC");

    let (st, mine) = s.get("/api/agents/my", t).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(mine["agents"].as_array().unwrap().len(), 2);
    assert_eq!(
        s.get("/api/agents/my", None).await.0,
        StatusCode::UNAUTHORIZED
    );

    let (st, u) = s
        .call(
            Method::PUT,
            &format!("/api/agents/{id}"),
            t,
            Some(json!({"name": "Expert Python Avancé", "temperature": 0.8})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(u["name"], "Expert Python Avancé");
    assert_eq!(u["temperature"], 0.8);
    assert_eq!(u["model"], "mistral-medium", "untouched fields stay");
    let (st, g) = s.get(&format!("/api/agents/{id}"), t).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(g["owner"]["id"], l.user_id);
    let (st, _) = s
        .call(
            Method::PUT,
            &format!("/api/agents/{id}"),
            t,
            Some(json!({"temperature": 9.0})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let (st, _) = s
        .call(Method::DELETE, &format!("/api/agents/{id}"), t, None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        s.get(&format!("/api/agents/{id}"), t).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get("/api/agents/not-a-number", t).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.post("/api/agents", None, json!({"name": "x"})).await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn foyer_chats(b: Backend) {
    let s = TestServer::start(b).await;
    let l = s.user("chatter").await;
    let t = Some(l.access.as_str());
    let (_, a) = s
        .post(
            "/api/agents",
            t,
            json!({"name": "Expert Python", "avatar_url": "/avatars/python.png"}),
        )
        .await;
    let aid = a["id"].as_i64().unwrap();
    let (st, c) = s
        .post(
            "/api/chats",
            t,
            json!({"agent_id": aid, "title": "Nouvelle discussion"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    for f in ["id", "title", "user_id", "agent_id", "created_at"] {
        assert!(!c[f].is_null(), "chat lacks {f}");
    }
    let cid = c["id"].as_i64().unwrap();
    let (st, c2) = s.post("/api/chats", t, json!({})).await;
    assert_eq!(
        st,
        StatusCode::CREATED,
        "agent and title are optional: {c2}"
    );
    assert!(c2["agent_id"].is_null());
    assert_eq!(c2["title"], "New chat");

    hearth::service::chats::append_message(
        &s.state,
        &caller_of(&s, &l.access).await,
        cid,
        hearth::db::enums::MessageRole::User,
        "Comment créer une fonction en Python?",
        None,
    )
    .await
    .unwrap();
    hearth::service::chats::append_message(
        &s.state,
        &caller_of(&s, &l.access).await,
        cid,
        hearth::db::enums::MessageRole::Assistant,
        "Pour créer une fonction en Python...",
        Some("mistral-medium"),
    )
    .await
    .unwrap();

    let (st, list) = s.get("/api/chats", t).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list["total"], 2);
    let first = list["chats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == cid)
        .unwrap()
        .clone();
    assert_eq!(first["agent"]["name"], "Expert Python");
    assert!(first["last_message_at"].is_string());

    let (st, full) = s.get(&format!("/api/chats/{cid}"), t).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(full["agent"]["avatar_url"], "/avatars/python.png");
    let msgs = full["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["role"], "user");
    assert_eq!(msgs[1]["llm_model"], "mistral-medium");

    let (st, r) = s
        .call(
            Method::PUT,
            &format!("/api/chats/{cid}"),
            t,
            Some(json!({"title": "Python - Fonctions avancées"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(r["title"], "Python - Fonctions avancées");
    let (st, _) = s
        .call(
            Method::PUT,
            &format!("/api/chats/{cid}"),
            t,
            Some(json!({"title": ""})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        s.call(Method::DELETE, &format!("/api/chats/{cid}"), t, None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        s.get(&format!("/api/chats/{cid}"), t).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.call(Method::DELETE, &format!("/api/chats/{cid}"), t, None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

async fn orchestrator_conversations(b: Backend) {
    let s = TestServer::start(b).await;
    let l = s.user("orch").await;
    let t = Some(l.access.as_str());
    let mut ids = Vec::new();
    for title in ["Docker status", "Recette de crêpes", "Docker compose help"] {
        ids.push(
            s.post("/api/chats", t, json!({"title": title})).await.1["id"]
                .as_i64()
                .unwrap(),
        );
    }
    hearth::service::chats::append_message(
        &s.state,
        &caller_of(&s, &l.access).await,
        ids[1],
        hearth::db::enums::MessageRole::User,
        "Comment faire 100% de réussite_ici?",
        None,
    )
    .await
    .unwrap();

    let (st, list) = s.get("/api/conversations", t).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list["total"], 3);
    assert_eq!(list["limit"], 20);
    let (_, page) = s.get("/api/conversations?limit=1&offset=1", t).await;
    assert_eq!(page["conversations"].as_array().unwrap().len(), 1);
    assert_eq!(page["conversations"][0]["title"], "Recette de crêpes");
    let (_, found) = s.get("/api/conversations?search=docker", t).await;
    assert_eq!(found["total"], 2, "case-insensitive title search: {found}");
    let (_, found) = s.get("/api/conversations?search=100%25%20de", t).await;
    assert_eq!(
        found["total"], 1,
        "message text search, % is literal: {found}"
    );
    assert_eq!(found["conversations"][0]["message_count"], 1);
    let (_, none) = s.get("/api/conversations?search=_", t).await;
    assert_eq!(none["total"], 1, "_ is literal too");
    assert_eq!(
        s.get("/api/conversations?limit=0", t).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        s.get("/api/conversations?limit=abc", t).await.0,
        StatusCode::BAD_REQUEST
    );

    let (st, d) = s
        .get(&format!("/api/conversations/conv-{}", ids[1]), t)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        d["messages"][0]["content"],
        "Comment faire 100% de réussite_ici?"
    );
    let (st, del) = s
        .call(
            Method::DELETE,
            &format!("/api/conversations/{}", ids[0]),
            t,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(del["deleted"], true);
    assert_eq!(s.get("/api/conversations", t).await.1["total"], 2);
    let (st, e) = s.get("/api/conversations", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    for f in ["detail", "code", "timestamp"] {
        assert!(e[f].is_string(), "seed 000 error lacks {f}: {e}");
    }
}

async fn nexus_projects(b: Backend) {
    let s = TestServer::start(b).await;
    let l = s.user("proj").await;
    let t = Some(l.access.as_str());
    let (st, p) = s
        .post(
            "/api/v1/projects",
            t,
            json!({"name": "Mon Projet IA", "description": "Description du projet", "type": "rag"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{p}");
    assert_eq!(p["type"], "rag");
    assert!(p["id"].is_string());
    for i in 0..3 {
        s.post("/api/v1/projects", t, json!({"name": format!("P{i}")}))
            .await;
    }
    let (st, list) = s.get("/api/v1/projects?page=2&limit=3", t).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list["total"], 4);
    assert_eq!(list["page"], 2);
    assert_eq!(list["projects"].as_array().unwrap().len(), 1);
    let other = s.user("nosy").await;
    assert_eq!(
        s.get("/api/v1/projects", Some(&other.access)).await.1["total"],
        0
    );
    let (st, e) = s
        .post("/api/v1/projects", t, json!({"name": "x".repeat(500)}))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e["error"]["code"], "VALIDATION_ERROR");
}

async fn health_union(b: Backend) {
    let s = TestServer::start(b).await;
    let (st, h) = s.get("/health", None).await;
    assert_eq!(st, StatusCode::OK);
    for f in [
        "status",
        "version",
        "ollama",
        "chromadb",
        "tools_count",
        "time",
        "gpu",
        "plugins_count",
        "db_ok",
        "faiss_ok",
    ] {
        assert!(h.get(f).is_some(), "health lacks {f}: {h}");
    }
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["db_ok"], true);
    // The embedded model is registered at start and usable.
    assert_eq!(h["ollama"], "connected", "{h}");
    assert_eq!(h["default_model"], "smollm2-135m-instruct");
    assert_eq!(
        h["database"],
        if b == Backend::Sqlite {
            "sqlite"
        } else {
            "postgres"
        }
    );
}

async fn bad_bodies_write_nothing(b: Backend) {
    let s = TestServer::start(b).await;
    let l = s.user("fuzz").await;
    let send = |body: &'static str, ct: &'static str| {
        s.http
            .post(s.url("/api/agents"))
            .bearer_auth(&l.access)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let r = send("{\"name\": ", "application/json").await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "invalid_json"
    );
    let r = send("{\"name\": 5}", "application/json").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "validation_error"
    );
    let r = send("{\"name\": \"x\"}", "text/plain").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (st, _) = s
        .post(
            "/api/agents",
            Some(&l.access),
            json!({"name": "n".repeat(201)}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let (st, _) = s
        .post(
            "/api/agents",
            Some(&l.access),
            json!({"name": "ok", "system_prompt": "p".repeat(20_001)}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let (st, e) = s
        .post_declared_size("/api/agents", &l.access, 3 * 1024 * 1024)
        .await;
    assert_eq!(st, 413);
    assert_eq!(e["code"], "payload_too_large", "{e}");
    let (_, mine) = s.get("/api/agents/my", Some(&l.access)).await;
    assert_eq!(mine["agents"], json!([]), "nothing was written");
    let (st, e) = s
        .call(Method::PATCH, "/api/agents", Some(&l.access), None)
        .await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(e["code"], "method_not_allowed");
}

async fn agent_quota(b: Backend) {
    let s = TestServer::start(b).await;
    let l = s.user("hoarder").await;
    for i in 0..50 {
        let (st, e) = s
            .post(
                "/api/agents",
                Some(&l.access),
                json!({"name": format!("Agent {i}")}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{e}");
    }
    let (st, e) = s
        .post(
            "/api/agents",
            Some(&l.access),
            json!({"name": "One too many"}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_eq!(e["code"], "quota_exceeded");
    // Same names get distinct slugs.
    let (_, mine) = s.get("/api/agents/my", Some(&l.access)).await;
    assert_eq!(mine["agents"].as_array().unwrap().len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_ui_is_served_with_a_strict_policy() {
    let s = TestServer::start(Backend::Sqlite).await;
    for (path, ct, needle) in [
        ("/", "text/html", "graphql"),
        ("/static/app.js", "text/javascript", "connection_init"),
        ("/static/style.css", "text/css", "--accent"),
    ] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(ct));
        assert!(r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'"));
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert!(r.text().await.unwrap().contains(needle), "{path}");
    }
}

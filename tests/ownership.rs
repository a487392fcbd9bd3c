//! Someone else's object is a 404, on every door, for reads and writes; nothing changes.

use crate::both_backends;
use crate::support::{Backend, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::json;

both_backends!(
    private_objects_are_invisible,
    public_agents_are_read_only,
    private_documents_are_invisible
);

async fn private_objects_are_invisible(b: Backend) {
    let s = TestServer::start(b).await;
    let a = s.user("alice").await;
    let bob = s.user("bob").await;
    let (_, agent) = s
        .post(
            "/api/agents",
            Some(&a.access),
            json!({"name": "Secret", "system_prompt": "hush", "is_public": false}),
        )
        .await;
    let aid = agent["id"].as_i64().unwrap();
    let (_, chat) = s
        .post(
            "/api/chats",
            Some(&a.access),
            json!({"agent_id": aid, "title": "Private"}),
        )
        .await;
    let cid = chat["id"].as_i64().unwrap();

    let bt = Some(bob.access.as_str());
    for (m, p, body) in [
        (Method::GET, format!("/api/agents/{aid}"), None),
        (
            Method::PUT,
            format!("/api/agents/{aid}"),
            Some(json!({"name": "Pwned"})),
        ),
        (Method::DELETE, format!("/api/agents/{aid}"), None),
        (Method::GET, format!("/api/chats/{cid}"), None),
        (
            Method::PUT,
            format!("/api/chats/{cid}"),
            Some(json!({"title": "Pwned"})),
        ),
        (Method::DELETE, format!("/api/chats/{cid}"), None),
        (Method::GET, format!("/api/conversations/{cid}"), None),
        (Method::GET, format!("/api/conversations/conv-{cid}"), None),
        (Method::DELETE, format!("/api/conversations/{cid}"), None),
    ] {
        let (st, e) = s.call(m.clone(), &p, bt, body).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{m} {p}: {e}");
        assert_eq!(e["code"], "not_found");
    }
    // Anonymous readers see nothing either.
    assert_eq!(
        s.get(&format!("/api/agents/{aid}"), None).await.0,
        StatusCode::NOT_FOUND
    );
    // Cannot start a chat with it.
    assert_eq!(
        s.post("/api/chats", bt, json!({"agent_id": aid})).await.0,
        StatusCode::NOT_FOUND
    );

    let id = json!({"id": aid.to_string()});
    let cidv = json!({"id": cid.to_string()});
    for (q, vars) in [
        ("query($id: ID!) { agent(id: $id) { name } }", &id),
        (
            "mutation($id: ID!) { updateAgent(id: $id, input: {name: \"x\"}) { name } }",
            &id,
        ),
        ("mutation($id: ID!) { deleteAgent(id: $id) }", &id),
        ("query($id: ID!) { chat(id: $id) { title } }", &cidv),
        (
            "mutation($id: ID!) { renameChat(id: $id, title: \"x\") { title } }",
            &cidv,
        ),
        ("mutation($id: ID!) { deleteChat(id: $id) }", &cidv),
    ] {
        let (_, body) = s.gql(bt, q, vars.clone()).await;
        assert_eq!(TestServer::gql_code(&body), "not_found", "{q}: {body}");
    }
    let (_, body) = s
        .gql(
            bt,
            "{ chats(first: 10) { id } me { chats { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["chats"], json!([]), "{body}");
    assert_eq!(body["data"]["me"]["chats"], json!([]));

    // Alice's objects are intact.
    let (st, agent) = s.get(&format!("/api/agents/{aid}"), Some(&a.access)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(agent["name"], "Secret");
    let (st, chat) = s.get(&format!("/api/chats/{cid}"), Some(&a.access)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(chat["title"], "Private");
    assert_eq!(chat["agent"]["name"], "Secret");
}

async fn public_agents_are_read_only(b: Backend) {
    let s = TestServer::start(b).await;
    let a = s.user("owner").await;
    let bob = s.user("reader").await;
    let (_, agent) = s
        .post(
            "/api/agents",
            Some(&a.access),
            json!({"name": "Assistant Général", "is_public": true}),
        )
        .await;
    let aid = agent["id"].as_i64().unwrap();
    let (st, seen) = s.get(&format!("/api/agents/{aid}"), None).await;
    assert_eq!(st, StatusCode::OK, "public agents need no login");
    assert_eq!(seen["owner"]["trigramme"], "owner");
    let (st, e) = s
        .call(
            Method::PUT,
            &format!("/api/agents/{aid}"),
            Some(&bob.access),
            Some(json!({"name": "Mine now"})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{e}");
    assert_eq!(
        s.call(
            Method::DELETE,
            &format!("/api/agents/{aid}"),
            Some(&bob.access),
            None
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    // Bob can chat with it.
    assert_eq!(
        s.post("/api/chats", Some(&bob.access), json!({"agent_id": aid}))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        s.get(&format!("/api/agents/{aid}"), None).await.1["name"],
        "Assistant Général"
    );
}

/// Documents, their search and memory: someone else's are a 404 on every door, never a hit.
async fn private_documents_are_invisible(b: Backend) {
    use crate::documents::{search, settled, upload_ok};
    let s = TestServer::start(b).await;
    let a = s.user("alice").await;
    let bob = s.user("bob").await;
    let (_, chat) = s
        .post("/api/chats", Some(&a.access), json!({"title": "Private"}))
        .await;
    let cid = chat["id"].as_i64().unwrap();
    let secret = "The vault combination is 31-41-59.";
    let in_chat = upload_ok(
        &s,
        &a.access,
        "vault.txt",
        secret.as_bytes().to_vec(),
        json!({"chatId": cid.to_string()}),
    )
    .await;
    let in_named = upload_ok(
        &s,
        &a.access,
        "vault2.txt",
        format!("{secret} Twice.").into_bytes(),
        json!({"collection": "private"}),
    )
    .await;
    settled(&s, &a.access, &in_chat).await;
    settled(&s, &a.access, &in_named).await;
    s.post("/api/memory", Some(&a.access), json!({"content": secret}))
        .await;
    let (_, cols) = s
        .gql(Some(&a.access), "{ collections { id name } }", json!({}))
        .await;
    let col = cols["data"]["collections"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let bt = Some(bob.access.as_str());
    for (m, p) in [
        (Method::GET, format!("/api/documents/{in_chat}")),
        (Method::DELETE, format!("/api/documents/{in_chat}")),
        (Method::DELETE, format!("/api/v1/rag/documents/{in_named}")),
    ] {
        let (st, e) = s.call(m.clone(), &p, bt, None).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{m} {p}: {e}");
    }
    let doc = json!({"id": in_chat});
    let chat_target = json!({"t": {"chatId": cid.to_string()}});
    let col_id = json!({"c": col});
    for (q, vars) in [
        ("query($id: ID!) { document(id: $id) { filename } }", &doc),
        ("mutation($id: ID!) { deleteDocument(id: $id) }", &doc),
        (
            "query($t: DocumentTarget!) { documents(target: $t) { id } }",
            &chat_target,
        ),
        (
            "query($t: DocumentTarget) { search(query: \"vault\", target: $t) { text } }",
            &chat_target,
        ),
        (
            "mutation($t: DocumentTarget) { ask(query: \"vault\", target: $t) { chatId } }",
            &chat_target,
        ),
        (
            "mutation($c: ID) { reindex(collectionId: $c) { id } }",
            &col_id,
        ),
    ] {
        let (_, body) = s.gql(bt, q, vars.clone()).await;
        assert_eq!(TestServer::gql_code(&body), "not_found", "{q}: {body}");
    }
    // Searches without a target, through every door, find nothing of Alice's.
    assert!(search(&s, &bob.access, "vault combination", json!({}))
        .await
        .is_empty());
    let (_, r) = s
        .post("/rag/query", bt, json!({"query": "vault combination"}))
        .await;
    assert_eq!(r["results"], json!([]), "{r}");
    let (_, r) = s.get("/api/memory/search?q=vault%20combination", bt).await;
    assert_eq!(r["results"], json!([]), "{r}");
    let (_, r) = s
        .gql(
            bt,
            "{ memorySearch(query: \"vault combination\") { content } collections { id } }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["memorySearch"], json!([]), "{r}");
    assert_eq!(r["data"]["collections"], json!([]), "{r}");
    // Alice's documents are intact and hers to find.
    let hits = search(&s, &a.access, "vault combination", json!({})).await;
    assert_eq!(hits.len(), 2, "{hits:?}");
    let (st, _) = s
        .get(&format!("/api/documents/{in_chat}"), Some(&a.access))
        .await;
    assert_eq!(st, StatusCode::OK);
}

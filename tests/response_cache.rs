//! Cached GraphQL answers are never stale or shared: a write, a logout or another caller
//! all see the truth (on SQLite answers are cached; on PostgreSQL they are not, and the same
//! checks hold).

use crate::both_backends;
use crate::support::{Backend, TestServer};
use reqwest::StatusCode;
use serde_json::json;

both_backends!(cached_answers_follow_writes_and_callers);

async fn cached_answers_follow_writes_and_callers(b: Backend) {
    let s = TestServer::start(b).await;
    let a = s.user("cachea").await;
    let other = s.user("cacheb").await;
    let q = "{ me { username chats(first: 5) { title } } }";
    let (_, c) = s
        .post("/api/chats", Some(&a.access), json!({"title": "Before"}))
        .await;
    let id = c["id"].as_i64().unwrap();

    for _ in 0..3 {
        let (st, r) = s.gql(Some(&a.access), q, json!({})).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(r["data"]["me"]["chats"][0]["title"], "Before", "{r}");
    }
    // Same body, another caller: their own answer.
    let (_, r) = s.gql(Some(&other.access), q, json!({})).await;
    assert_eq!(r["data"]["me"]["username"], "cacheb");
    assert_eq!(r["data"]["me"]["chats"], json!([]));

    // A write through REST shows at once through the same GraphQL body.
    s.call(
        reqwest::Method::PUT,
        &format!("/api/chats/{id}"),
        Some(&a.access),
        Some(json!({"title": "After"})),
    )
    .await;
    let (_, r) = s.gql(Some(&a.access), q, json!({})).await;
    assert_eq!(r["data"]["me"]["chats"][0]["title"], "After", "{r}");

    // A logged-out session gets no cached answer.
    let (_, r) = s.gql(Some(&a.access), q, json!({})).await;
    assert_eq!(r["data"]["me"]["username"], "cachea");
    s.call(
        reqwest::Method::POST,
        "/api/auth/logout",
        Some(&a.access),
        None,
    )
    .await;
    let (st, r) = s.gql(Some(&a.access), q, json!({})).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{r}");
    assert_eq!(TestServer::gql_code(&r), "session_revoked");

    // A read-only key of the same user is a different caller with the same data.
    let l = s.login("cacheb", "password123").await;
    let key = s
        .post(
            "/api/v1/keys",
            Some(&l.access),
            json!({"name": "ro", "permissions": ["read"]}),
        )
        .await
        .1["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, r) = s.gql(Some(&key), q, json!({})).await;
    assert_eq!(r["data"]["me"]["username"], "cacheb");
}

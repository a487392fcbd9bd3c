//! Cached GraphQL answers are never stale or shared: a write, a logout or another caller
//! all see the truth (on SQLite answers are cached; on PostgreSQL they are not, and the same
//! checks hold).

use crate::both_backends;
use crate::support::{Backend, TestServer};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use hearth::db::schema::api_keys;
use reqwest::StatusCode;
use serde_json::json;

both_backends!(
    cached_answers_follow_writes_and_callers,
    the_cache_is_used_and_skips_runtime_state,
);

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

async fn the_cache_is_used_and_skips_runtime_state(b: Backend) {
    let s = TestServer::start(b).await;
    let a = s.user("hits").await;
    let hits = || s.state.response_cache.hits();
    let q = "{ me { username } }";
    let before = hits();
    for _ in 0..3 {
        let (_, r) = s.gql(Some(&a.access), q, json!({})).await;
        assert_eq!(r["data"]["me"]["username"], "hits");
    }
    let expected = if b == Backend::Sqlite { 2 } else { 0 };
    assert_eq!(
        hits() - before,
        expected,
        "repeated queries are answered from the cache on SQLite only"
    );

    // A key's first use records it (bookkeeping): that write leaves cached answers valid.
    let key = s
        .post("/api/v1/keys", Some(&a.access), json!({"name": "k"}))
        .await
        .1["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    let before = hits();
    s.gql(Some(&key), q, json!({})).await;
    // The bookkeeping write lands before the second query.
    let db = &s.state.db;
    let mut recorded = false;
    for _ in 0..200 {
        let used: i64 = async {
            hearth::db_run!(db, read, |conn| api_keys::table
                .filter(api_keys::last_used_at.is_not_null())
                .count()
                .get_result(conn)
                .await
                .map_err(hearth::error::AppError::from))
        }
        .await
        .unwrap();
        if used == 1 {
            recorded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(recorded, "the key's use is recorded");
    s.gql(Some(&key), q, json!({})).await;
    assert_eq!(
        hits() - before,
        expected / 2,
        "bookkeeping does not invalidate answers"
    );

    // Model status and load are runtime state: never cached.
    let before = hits();
    for _ in 0..3 {
        let (_, r) = s
            .gql(
                Some(&a.access),
                "{ models { key status running waiting } }",
                json!({}),
            )
            .await;
        assert!(r["data"]["models"].is_array(), "{r}");
    }
    assert_eq!(hits(), before, "answers with runtime state are not cached");
}

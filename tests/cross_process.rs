//! Two servers on one PostgreSQL database behave as one: events cross processes through
//! LISTEN/NOTIFY, so a subscription on one server sees changes made through the other, and a
//! logout on one closes that session's subscriptions on the other.

use crate::support::{next_json, ws_subscribed, Backend, TestServer};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_cross_servers_on_postgres() {
    let a = TestServer::start(Backend::Postgres).await;
    let url = a.state.config.database_url();
    let b = TestServer::start_with(Backend::Postgres, |c| c.database_url = Some(url)).await;
    let l = a.user("roamer").await;

    let mut ws = ws_subscribed(
        &a,
        &l.access,
        "1",
        "subscription { chatChanges { kind chat { title } } }",
    )
    .await;

    // The same token works on the other server, and its change reaches this subscription.
    let (st, _) = b
        .post("/api/chats", Some(&l.access), json!({"title": "Made on B"}))
        .await;
    assert_eq!(st, reqwest::StatusCode::CREATED);
    let ev = next_json(&mut ws).await.unwrap();
    assert_eq!(
        ev["payload"]["data"]["chatChanges"]["chat"]["title"], "Made on B",
        "{ev}"
    );

    // Logging out on B completes the subscription held on A.
    b.call(
        reqwest::Method::POST,
        "/api/auth/logout",
        Some(&l.access),
        None,
    )
    .await;
    let ev = next_json(&mut ws).await.unwrap();
    assert_eq!(ev["type"], "complete", "{ev}");
    assert_eq!(
        a.get("/api/auth/me", Some(&l.access)).await.0,
        reqwest::StatusCode::UNAUTHORIZED
    );
}

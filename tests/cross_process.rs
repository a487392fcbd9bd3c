//! Two servers on one PostgreSQL database behave as one: events cross processes through
//! LISTEN/NOTIFY, so a subscription on one server sees changes made through the other, and a
//! logout on one closes that session's subscriptions on the other.

use crate::support::{next_json, ws_close_code, ws_subscribed, Backend, TestServer};
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
    assert_eq!(ws_close_code(&mut ws).await, Some(4401));
    assert_eq!(
        a.get("/api/auth/me", Some(&l.access)).await.0,
        reqwest::StatusCode::UNAUTHORIZED
    );
}

/// `cancelTurn` sent to one server stops a turn running on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_reaches_the_server_running_the_turn() {
    use crate::chat_turns::{new_chat, remote_model, slow};
    use crate::mock_llm::MockLlm;
    let a = TestServer::start(Backend::Postgres).await;
    let url = a.state.config.database_url();
    let b = TestServer::start_with(Backend::Postgres, |c| c.database_url = Some(url)).await;
    let mock = MockLlm::start().await;
    let admin = a.user("admin").await;
    let key = remote_model(&a, &admin.access, "mock", &mock.base_url, 8192).await;
    let chat = new_chat(&a, &admin.access, Some(&key), None).await;
    mock.push(slow(100, 50));
    let (_, r) = a
        .gql(
            Some(&admin.access),
            "mutation($i: SendMessageInput!) { sendMessage(input: $i) { assistantMessageId } }",
            json!({"i": {"chatId": chat, "content": "count"}}),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    // The turn is registered (and its answer reserved) before sendMessage returns.
    let c = crate::chat_turns::cancel_turn(&b, &admin.access, &chat).await;
    assert_eq!(c["data"]["cancelTurn"], true, "{c}");
    for _ in 0..100 {
        let (_, m) = b
            .gql(
                Some(&admin.access),
                "query($c: ID!) { chat(id: $c) { messages(last: 1) { status content } } }",
                json!({"c": chat}),
            )
            .await;
        let last = &m["data"]["chat"]["messages"][0];
        if last["status"] != "streaming" {
            assert_eq!(last["status"], "cancelled", "{m}");
            assert!(last["content"].as_str().unwrap().len() < 100 * 4);
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the turn was not cancelled");
}

/// A plugin installed and enabled through one server runs on the other at once: the second
/// process converges on the first call (and on the bus's hint), loading the module from the
/// database since its data dir has no copy; a stop on one is a stop on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_run_on_every_server() {
    use crate::plugins::{bundle, call, install_running};
    let a = TestServer::start(Backend::Postgres).await;
    let url = a.state.config.database_url();
    let b = TestServer::start_with(Backend::Postgres, |c| c.database_url = Some(url)).await;
    assert_ne!(a.state.config.data_dir, b.state.config.data_dir);
    let admin = a.user("admin").await;
    let t = admin.access.as_str();
    install_running(&a, t, bundle("tasks", |m| m)).await;
    let r = call(&b, t, "tasks", "add_task", json!({ "title": "on b" })).await;
    assert_eq!(r["data"]["callPlugin"]["title"], "on b", "{r}");
    let r = call(&a, t, "tasks", "list_tasks", json!({})).await;
    assert_eq!(r["data"]["callPlugin"]["tasks"][0]["title"], "on b", "{r}");
    let (st, _) = a.post("/plugins/tasks/stop", Some(t), json!({})).await;
    assert_eq!(st, reqwest::StatusCode::OK);
    let r = call(&b, t, "tasks", "list_tasks", json!({})).await;
    assert_eq!(
        r["errors"][0]["extensions"]["code"], "plugin_not_running",
        "{r}"
    );
}

//! Long-lived connections act only while their caller may still act: every operation on a
//! graphql-ws socket re-checks the caller, and every streaming door closes (4401, or 4403 for
//! a disabled account) when the identity ends — logout, key revocation, deactivation,
//! demotion, expiry — and anonymous sockets close at the `connection_init` deadline.

use crate::both_backends;
use crate::support::{ws_close_code, ws_connect, ws_init, ws_op, Backend, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

both_backends!(
    logout_closes_a_socket_and_its_operations_stop,
    revoked_key_closes_its_socket,
    deactivation_closes_with_4403,
    demotion_takes_effect_on_the_next_operation,
    expired_token_closes_the_socket,
    anonymous_socket_closes_at_the_init_deadline,
    rest_sockets_close_when_the_session_ends,
    a_socket_runs_a_bounded_number_of_operations,
);

async fn a_socket_runs_a_bounded_number_of_operations(b: Backend) {
    let s = TestServer::start_with(b, |c| c.graphql.max_operations_per_socket = 2).await;
    let u = s.user("sockmany").await;
    let mut ws = ws_init(&s, json!({"token": u.access})).await;
    let sub = "subscription { chatChanges { kind } }";
    let before = crate::support::subscribers(&s);
    for id in ["a", "b"] {
        crate::support::ws_send(
            &mut ws,
            json!({"id": id, "type": "subscribe", "payload": {"query": sub}}),
        )
        .await;
    }
    crate::support::wait_for_subscribers(&s, before + 2).await;
    let r = ws_op(&mut ws, "c", "{ me { username } }", json!({}))
        .await
        .expect("answer");
    assert_eq!(
        r["payload"]["errors"][0]["extensions"]["code"], "quota_exceeded",
        "{r}"
    );
    // Ending one frees its slot.
    crate::support::ws_send(&mut ws, json!({"id": "a", "type": "complete"})).await;
    let mut answered = false;
    for i in 0..50 {
        let r = ws_op(&mut ws, &format!("d{i}"), "{ me { username } }", json!({}))
            .await
            .expect("answer");
        if r["payload"]["data"]["me"]["username"] == "sockmany" {
            answered = true;
            break;
        }
    }
    assert!(answered, "a freed slot is usable again");
}

const CREATE_KEY: &str = "mutation { createApiKey(input: {name: \"late\"}) { secret } }";

async fn key_count(s: &TestServer, token: &str) -> usize {
    let (st, list) = s.get("/api/v1/keys", Some(token)).await;
    assert_eq!(st, StatusCode::OK, "{list}");
    list["keys"]
        .as_array()
        .or_else(|| list.as_array())
        .map(|a| a.len())
        .unwrap_or_else(|| panic!("no key list in {list}"))
}

async fn logout_closes_a_socket_and_its_operations_stop(b: Backend) {
    let s = TestServer::start(b).await;
    let u = s.user("sockout").await;
    let other = s.login("sockout", "password123").await;
    let mut ws = ws_init(&s, json!({"token": u.access})).await;
    let r = ws_op(&mut ws, "1", CREATE_KEY, json!({}))
        .await
        .expect("answer");
    assert!(
        r["payload"]["data"]["createApiKey"]["secret"].is_string(),
        "{r}"
    );
    assert_eq!(key_count(&s, &other.access).await, 1);

    let (st, _) = s
        .call(Method::POST, "/api/auth/logout", Some(&u.access), None)
        .await;
    assert!(st.is_success());
    // The idle socket is closed as its session ends…
    assert_eq!(ws_close_code(&mut ws).await, Some(4401));
    // …and nothing it might still have sent took effect.
    assert_eq!(key_count(&s, &other.access).await, 1);
}

async fn revoked_key_closes_its_socket(b: Backend) {
    let s = TestServer::start(b).await;
    let u = s.user("sockkey").await;
    let (st, k) = s
        .post("/api/v1/keys", Some(&u.access), json!({"name": "ws"}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{k}");
    let secret = k["api_key"].as_str().unwrap().to_string();
    let kid = k["key_id"].as_str().unwrap().to_string();
    let mut ws = ws_init(&s, json!({"X-API-Key": secret})).await;
    let r = ws_op(&mut ws, "1", "{ me { username } }", json!({}))
        .await
        .expect("answer");
    assert_eq!(r["payload"]["data"]["me"]["username"], "sockkey", "{r}");
    let (st, _) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/keys/{kid}"),
            Some(&u.access),
            None,
        )
        .await;
    assert!(st.is_success());
    assert_eq!(ws_close_code(&mut ws).await, Some(4401));
}

async fn deactivation_closes_with_4403(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.user("sockadmin").await;
    let u = s.user("sockvictim").await;
    let mut ws = ws_init(&s, json!({"token": u.access})).await;
    let (_, r) = s
        .gql(
            Some(&admin.access),
            "mutation($id: ID!) { updateUser(id: $id, input: {isActive: false}) { isActive } }",
            json!({"id": u.user_id.to_string()}),
        )
        .await;
    assert_eq!(r["data"]["updateUser"]["isActive"], false, "{r}");
    assert_eq!(ws_close_code(&mut ws).await, Some(4403));
}

async fn demotion_takes_effect_on_the_next_operation(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.user("sockroot").await;
    let u = s.user("sockdeputy").await;
    let promote = |role: &'static str| {
        let (s, admin, id) = (&s, admin.access.clone(), u.user_id.to_string());
        async move {
            let (_, r) = s
                .gql(
                    Some(&admin),
                    "mutation($id: ID!, $role: String!) { updateUser(id: $id, input: {role: $role}) { role } }",
                    json!({"id": id, "role": role}),
                )
                .await;
            assert_eq!(r["data"]["updateUser"]["role"], role, "{r}");
        }
    };
    promote("admin").await;
    let mut ws = ws_init(&s, json!({"token": u.access})).await;
    let users = "{ users { total } }";
    let r = ws_op(&mut ws, "1", users, json!({})).await.expect("answer");
    assert!(r["payload"]["data"]["users"]["total"].is_number(), "{r}");
    promote("user").await;
    let r = ws_op(&mut ws, "2", users, json!({})).await.expect("answer");
    assert_eq!(
        r["payload"]["errors"][0]["extensions"]["code"], "forbidden",
        "a demoted admin's socket loses the admin rights at once: {r}"
    );
    // The account itself is still fine: the socket stays usable for what it may do.
    let r = ws_op(&mut ws, "3", "{ me { role } }", json!({}))
        .await
        .expect("answer");
    assert_eq!(r["payload"]["data"]["me"]["role"], "user", "{r}");
}

async fn expired_token_closes_the_socket(b: Backend) {
    let s = TestServer::start_with(b, |c| c.access_token_ttl_secs = 2).await;
    let u = s.user("sockexp").await;
    let mut ws = ws_init(&s, json!({"token": u.access})).await;
    assert_eq!(ws_close_code(&mut ws).await, Some(4401));
}

async fn anonymous_socket_closes_at_the_init_deadline(b: Backend) {
    let s = TestServer::start_with(b, |c| c.graphql.connection_init_timeout_secs = 1).await;
    let mut ws = ws_init(&s, json!({})).await;
    assert_eq!(ws_close_code(&mut ws).await, Some(4401));
    // A socket that never sends connection_init is closed too.
    let mut silent = ws_connect(&s).await;
    assert_eq!(ws_close_code(&mut silent).await, Some(4408));
}

async fn rest_sockets_close_when_the_session_ends(b: Backend) {
    let s = TestServer::start(b).await;
    let u = s.user("sockrest").await;
    let base = s.base.replace("http://", "ws://");
    let mut chat = tokio_tungstenite::connect_async(
        format!("{base}/ws/chat?token={}", u.access)
            .into_client_request()
            .unwrap(),
    )
    .await
    .expect("/ws/chat connects")
    .0;
    let mut llm = tokio_tungstenite::connect_async(
        format!("{base}/llm/stream?token={}", u.access)
            .into_client_request()
            .unwrap(),
    )
    .await
    .expect("/llm/stream connects")
    .0;
    s.call(Method::POST, "/api/auth/logout", Some(&u.access), None)
        .await;
    assert_eq!(ws_close_code(&mut chat).await, Some(4401));
    assert_eq!(ws_close_code(&mut llm).await, Some(4401));
}

//! The GraphQL API end to end: auth mutations, agents, chats with cursors and search, the
//! benchmark query's shape, keys and sessions, and subscriptions over graphql-ws.

use crate::both_backends;
use crate::support::{
    caller_of, next_json, subscribers, wait_for_subscribers, ws_close_code, ws_connect,
    ws_subscribed, Backend, TestServer,
};
use futures_util::SinkExt;
use reqwest::StatusCode;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

both_backends!(
    admin_user_management,
    auth_and_agents,
    chats_pagination_search_and_messages,
    keys_and_sessions,
    subscriptions
);

async fn admin_user_management(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.user("boss").await;
    let a = Some(admin.access.as_str());
    let (_, r) = s
        .gql(a, "mutation { createUser(input: {email: \"new@example.com\", username: \"newbie\", password: \"password123\"}) { id role email } }", json!({}))
        .await;
    let id = r["data"]["createUser"]["id"].as_str().unwrap().to_string();
    assert_eq!(r["data"]["createUser"]["role"], "user", "{r}");
    let newbie = s.login("newbie", "password123").await;
    let n = Some(newbie.access.as_str());
    let (_, r) = s.gql(a, "query($id: ID!) { user(id: $id) { username email } users { total users { username } } }", json!({"id": id})).await;
    assert_eq!(r["data"]["user"]["email"], "new@example.com", "{r}");
    assert_eq!(r["data"]["users"]["total"], 2);
    for q in ["{ users { total } }", "{ user(id: \"1\") { id } }"] {
        let (_, r) = s.gql(n, q, json!({})).await;
        assert_eq!(TestServer::gql_code(&r), "forbidden", "{q}: {r}");
    }
    let (_, r) = s.gql(n, "mutation { createUser(input: {email: \"x@example.com\", password: \"password123\"}) { id } }", json!({})).await;
    assert_eq!(TestServer::gql_code(&r), "forbidden");
    // Other users' emails are hidden from non-admins.
    let (_, r) = s.gql(n, "mutation { createAgent(input: {name: \"Pub\", isPublic: true}) { owner { email username } } }", json!({})).await;
    assert_eq!(
        r["data"]["createAgent"]["owner"]["email"], "new@example.com",
        "own email is visible"
    );
    let (_, r) = s
        .gql(
            a,
            "{ publicAgents { agents { owner { email } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r["data"]["publicAgents"]["agents"][0]["owner"]["email"], "new@example.com",
        "admins see it"
    );
    let other = s.user("peer").await;
    let (_, r) = s
        .gql(
            Some(&other.access),
            "{ publicAgents { agents { owner { email username } } } }",
            json!({}),
        )
        .await;
    assert!(
        r["data"]["publicAgents"]["agents"][0]["owner"]["email"].is_null(),
        "{r}"
    );
    // Promote, then the new admin can list users; an admin cannot demote themself.
    let (_, r) = s
        .gql(
            a,
            "mutation($id: ID!) { updateUser(id: $id, input: {role: \"admin\"}) { role } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(r["data"]["updateUser"]["role"], "admin");
    let (_, r) = s.gql(n, "{ users { total } }", json!({})).await;
    assert_eq!(r["data"]["users"]["total"], 3, "{r}");
    let (_, r) = s
        .gql(
            a,
            "mutation($id: ID!) { updateUser(id: $id, input: {role: \"user\"}) { role } }",
            json!({"id": admin.user_id.to_string()}),
        )
        .await;
    assert_eq!(TestServer::gql_code(&r), "forbidden");
}

async fn auth_and_agents(b: Backend) {
    let s = TestServer::start(b).await;
    let (_, r) = s
        .gql(None, "mutation { register(input: {email: \"g@example.com\", password: \"password123\", username: \"gq\"}) { accessToken refreshToken tokenType user { username role email } } }", json!({}))
        .await;
    let reg = &r["data"]["register"];
    assert_eq!(reg["tokenType"], "bearer", "{r}");
    assert_eq!(
        reg["user"]["role"], "admin",
        "first user administers the instance"
    );
    let (_, r) = s.gql(None, "mutation { login(username: \"g@example.com\", password: \"password123\") { accessToken refreshToken } }", json!({})).await;
    let token = r["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, me) = s.gql(Some(&token), "{ me { username } }", json!({})).await;
    assert_eq!(me["data"]["me"]["username"], "gq");
    let refresh = r["data"]["login"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, r) = s
        .gql(
            None,
            "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }",
            json!({"t": refresh}),
        )
        .await;
    assert!(r["data"]["refreshToken"]["accessToken"].is_string(), "{r}");
    let (_, r) = s
        .gql(
            None,
            "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }",
            json!({"t": refresh}),
        )
        .await;
    assert_eq!(TestServer::gql_code(&r), "refresh_token_reused");
    let l = s.login("gq", "password123").await;
    let t = Some(l.access.as_str());

    let (_, r) = s
        .gql(t, "mutation { createAgent(input: {name: \"Expert Python\", systemPrompt: \"Tu es…\", model: \"m\", temperature: 0.5, isPublic: true, capabilities: [\"code\"]}) { id slug name owner { username } temperature capabilities } }", json!({}))
        .await;
    let agent = &r["data"]["createAgent"];
    assert_eq!(agent["slug"], "expert-python", "{r}");
    assert_eq!(agent["owner"]["username"], "gq");
    let id = agent["id"].as_str().unwrap().to_string();
    let (_, r) = s.gql(t, "mutation($id: ID!) { updateAgent(id: $id, input: {temperature: 1.2, model: null}) { temperature model name } }", json!({"id": id})).await;
    assert_eq!(r["data"]["updateAgent"]["temperature"], 1.2, "{r}");
    assert!(r["data"]["updateAgent"]["model"].is_null());
    let (_, r) = s
        .gql(
            t,
            "mutation($id: ID!) { updateAgent(id: $id, input: {temperature: 3}) { id } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(TestServer::gql_code(&r), "validation_error");
    assert_eq!(
        r["errors"][0]["extensions"]["details"]["field"],
        "temperature"
    );
    let (_, r) = s
        .gql(
            None,
            "{ publicAgents { total agents { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["publicAgents"]["total"], 1, "{r}");
    let (_, r) = s
        .gql(t, "{ agents(first: 5) { id } myAgents { id } }", json!({}))
        .await;
    assert_eq!(r["data"]["agents"].as_array().unwrap().len(), 1);
    let (_, r) = s
        .gql(
            t,
            "mutation($id: ID!) { deleteAgent(id: $id) }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(r["data"]["deleteAgent"], true);
    let (_, r) = s
        .gql(
            t,
            "query($id: ID!) { agent(id: $id) { id } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(TestServer::gql_code(&r), "not_found");
    let (_, r) = s.gql(t, "mutation { updateMe(input: {name: \"Grace\", avatarUrl: \"/a.png\"}) { name avatarUrl email } }", json!({})).await;
    assert_eq!(r["data"]["updateMe"]["name"], "Grace");
    assert_eq!(r["data"]["updateMe"]["email"], "g@example.com");
}

async fn chats_pagination_search_and_messages(b: Backend) {
    let s = TestServer::start(b).await;
    let l = s.user("pager").await;
    let t = Some(l.access.as_str());
    let (_, r) = s
        .gql(
            t,
            "mutation { createAgent(input: {name: \"Helper\"}) { id } }",
            json!({}),
        )
        .await;
    let agent_id = r["data"]["createAgent"]["id"].as_str().unwrap().to_string();
    let mut ids = Vec::new();
    for i in 0..5 {
        let (_, r) = s
            .gql(t, "mutation($t: String!, $a: ID) { createChat(input: {title: $t, agentId: $a}) { id title } }", json!({"t": format!("Chat {i}"), "a": if i % 2 == 0 { Some(&agent_id) } else { None }}))
            .await;
        ids.push(
            r["data"]["createChat"]["id"]
                .as_str()
                .unwrap()
                .parse::<i64>()
                .unwrap(),
        );
    }
    for n in 0..12 {
        hearth::service::chats::append_message(
            &s.state,
            &caller_of(&s, &l.access).await,
            ids[4],
            if n % 2 == 0 {
                hearth::db::enums::MessageRole::User
            } else {
                hearth::db::enums::MessageRole::Assistant
            },
            &format!("message {n}"),
            None,
        )
        .await
        .unwrap();
    }

    // The benchmark's query: newest chats, their agent, their last 10 messages in order.
    let (_, r) = s
        .gql(
            t,
            "{ me { chats(first: 20) { title agent { name } messages(last: 10) { content } } } }",
            json!({}),
        )
        .await;
    let chats = r["data"]["me"]["chats"].as_array().unwrap();
    assert_eq!(chats.len(), 5, "{r}");
    assert_eq!(chats[0]["title"], "Chat 4");
    assert_eq!(chats[0]["agent"]["name"], "Helper");
    assert!(chats[1]["agent"].is_null());
    let contents: Vec<&str> = chats[0]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        contents,
        (2..12).map(|n| format!("message {n}")).collect::<Vec<_>>()
    );
    let (_, r) = s.gql(t, "query($id: ID!) { chat(id: $id) { messageCount messages(first: 2) { content role } } }", json!({"id": ids[4].to_string()})).await;
    assert_eq!(r["data"]["chat"]["messageCount"], 12);
    assert_eq!(r["data"]["chat"]["messages"][1]["content"], "message 1");

    // Cursor pagination: two pages of 2 and a last page of 1, no overlaps.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (_, r) = s
            .gql(t, "query($a: String) { chatConnection(first: 2, after: $a) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }", json!({"a": after}))
            .await;
        let conn = &r["data"]["chatConnection"];
        for e in conn["edges"].as_array().unwrap() {
            seen.push(e["node"]["id"].as_str().unwrap().parse::<i64>().unwrap());
        }
        if !conn["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = conn["pageInfo"]["endCursor"].as_str().map(str::to_string);
    }
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected);
    let (_, r) = s
        .gql(
            t,
            "{ chats(first: 2, after: \"garbage\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(TestServer::gql_code(&r), "validation_error");
    let (_, r) = s.gql(t, "{ chats(first: 1000) { id } }", json!({})).await;
    assert_eq!(TestServer::gql_code(&r), "validation_error");

    // Search matches titles and message text.
    let (_, r) = s
        .gql(t, "{ chats(search: \"chat 3\") { title } }", json!({}))
        .await;
    assert_eq!(r["data"]["chats"], json!([{"title": "Chat 3"}]));
    let (_, r) = s
        .gql(t, "{ chats(search: \"MESSAGE 11\") { title } }", json!({}))
        .await;
    assert_eq!(r["data"]["chats"], json!([{"title": "Chat 4"}]));

    let (_, r) = s
        .gql(
            t,
            "mutation($id: ID!) { renameChat(id: $id, title: \"Renamed\") { title } }",
            json!({"id": ids[0].to_string()}),
        )
        .await;
    assert_eq!(r["data"]["renameChat"]["title"], "Renamed");
    let (_, r) = s
        .gql(
            t,
            "mutation($id: ID!) { deleteChat(id: $id) }",
            json!({"id": ids[0].to_string()}),
        )
        .await;
    assert_eq!(r["data"]["deleteChat"], true);
    let (_, r) = s.gql(t, "{ chats { id } }", json!({})).await;
    assert_eq!(r["data"]["chats"].as_array().unwrap().len(), 4);
}

async fn keys_and_sessions(b: Backend) {
    let s = TestServer::start(b).await;
    let l = s.user("keeper").await;
    let t = Some(l.access.as_str());
    let (_, r) = s.gql(t, "mutation { createApiKey(input: {name: \"ci\", permissions: [\"read\"]}) { secret apiKey { id name prefix permissions revoked } } }", json!({})).await;
    let created = &r["data"]["createApiKey"];
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(
        secret.starts_with(created["apiKey"]["prefix"].as_str().unwrap()),
        "{r}"
    );
    assert_eq!(created["apiKey"]["permissions"], json!(["read"]));
    let (_, r) = s
        .gql(
            Some(&secret),
            "{ me { username } apiKeys { name } }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["me"]["username"], "keeper");
    let (_, r) = s
        .gql(
            Some(&secret),
            "mutation { createChat(input: {}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(TestServer::gql_code(&r), "insufficient_permissions");
    let kid = created["apiKey"]["id"].as_str().unwrap().to_string();
    let (_, r) = s
        .gql(
            t,
            "mutation($id: ID!) { revokeApiKey(id: $id) { revoked } }",
            json!({"id": kid}),
        )
        .await;
    assert_eq!(r["data"]["revokeApiKey"]["revoked"], true);

    let second = s.login("keeper", "password123").await;
    let (_, r) = s
        .gql(t, "{ sessions { id active current client } }", json!({}))
        .await;
    let sessions = r["data"]["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{r}");
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let (_, r) = s
        .gql(
            t,
            "mutation($id: ID!) { terminateSession(id: $id) { active } }",
            json!({"id": second.session_id}),
        )
        .await;
    assert_eq!(r["data"]["terminateSession"]["active"], false, "{r}");
    assert_eq!(
        s.get("/api/auth/me", Some(&second.access)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let stranger = s.user("stranger").await;
    let (_, r) = s
        .gql(
            Some(&stranger.access),
            "mutation($id: ID!) { terminateSession(id: $id) { active } }",
            json!({"id": l.session_id}),
        )
        .await;
    assert_eq!(TestServer::gql_code(&r), "not_found");
    let (_, r) = s.gql(t, "mutation { logout }", json!({})).await;
    assert_eq!(r["data"]["logout"], true);
    assert_eq!(s.get("/api/auth/me", t).await.0, StatusCode::UNAUTHORIZED);
}

async fn subscriptions(b: Backend) {
    let mut s = TestServer::start_with(b, |c| c.graphql.connection_init_timeout_secs = 1).await;
    let l = s.user("watcher").await;

    // Valid init, subscribe, see a chat appear, then logout closes the stream.
    let mut ws = ws_connect(&s).await;
    ws.send(Message::Text(json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {}", l.access)}}).to_string().into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await.unwrap()["type"], "connection_ack");
    let before = subscribers(&s);
    ws.send(Message::Text(json!({"id": "1", "type": "subscribe", "payload": {"query": "subscription { chatChanges { kind chatId chat { title } } }"}}).to_string().into())).await.unwrap();
    wait_for_subscribers(&s, before + 1).await;
    let (_, c) = s
        .post("/api/chats", Some(&l.access), json!({"title": "Live"}))
        .await;
    let ev = next_json(&mut ws).await.unwrap();
    assert_eq!(ev["type"], "next", "{ev}");
    assert_eq!(ev["payload"]["data"]["chatChanges"]["kind"], "UPSERTED");
    assert_eq!(
        ev["payload"]["data"]["chatChanges"]["chat"]["title"],
        "Live"
    );
    // Another user's chats never show up.
    let other = s.user("other").await;
    s.post(
        "/api/chats",
        Some(&other.access),
        json!({"title": "Not yours"}),
    )
    .await;
    s.call(
        reqwest::Method::DELETE,
        &format!("/api/chats/{}", c["id"]),
        Some(&l.access),
        None,
    )
    .await;
    let ev = next_json(&mut ws).await.unwrap();
    assert_eq!(
        ev["payload"]["data"]["chatChanges"]["kind"], "DELETED",
        "{ev}"
    );
    s.call(
        reqwest::Method::POST,
        "/api/auth/logout",
        Some(&l.access),
        None,
    )
    .await;
    assert_eq!(
        ws_close_code(&mut ws).await,
        Some(4401),
        "logout ends the subscription and closes its socket"
    );

    // A revoked token is refused at connection_init.
    let mut ws = ws_connect(&s).await;
    ws.send(Message::Text(
        json!({"type": "connection_init", "payload": {"token": l.access}})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let closed = next_json(&mut ws).await;
    assert!(
        closed.is_none() || closed.as_ref().unwrap()["type"] != "connection_ack",
        "{closed:?}"
    );

    // `?token=` authenticates clients that cannot set headers.
    let l3 = s.login("watcher", "password123").await;
    let url = format!(
        "{}/graphql/ws?token={}",
        s.base.replace("http://", "ws://"),
        l3.access
    );
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let mut ws = tokio_tungstenite::connect_async(req).await.unwrap().0;
    ws.send(Message::Text(
        json!({"type": "connection_init", "payload": {}})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut ws).await.unwrap()["type"], "connection_ack");
    ws.send(Message::Text(
        json!({"id": "q", "type": "subscribe", "payload": {"query": "{ me { username } }"}})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let ev = next_json(&mut ws).await.unwrap();
    assert_eq!(ev["payload"]["data"]["me"]["username"], "watcher", "{ev}");

    // No connection_init: the server hangs up after the deadline.
    let mut ws = ws_connect(&s).await;
    let start = std::time::Instant::now();
    assert!(next_json(&mut ws).await.is_none());
    assert!(start.elapsed() < std::time::Duration::from_secs(5));

    // Graceful shutdown completes open subscriptions.
    let l2 = s.login("watcher", "password123").await;
    let mut ws = ws_subscribed(&s, &l2.access, "9", "subscription { chatChanges { kind } }").await;
    s.stop();
    let ev = next_json(&mut ws).await.unwrap();
    assert_eq!(
        (ev["type"].as_str(), ev["id"].as_str()),
        (Some("complete"), Some("9")),
        "{ev}"
    );
}

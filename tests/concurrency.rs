//! Concurrent writers: no "database is locked", nothing lost.

use crate::both_backends;
use crate::support::{Backend, TestServer};
use reqwest::StatusCode;
use serde_json::json;
use std::sync::Arc;

both_backends!(fifty_parallel_chat_creations);

async fn fifty_parallel_chat_creations(b: Backend) {
    let s = Arc::new(TestServer::start(b).await);
    let l = s.user("busy").await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (s, t) = (s.clone(), l.access.clone());
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                s.post(
                    "/api/chats",
                    Some(&t),
                    json!({"title": format!("chat {i}")}),
                )
                .await
            } else {
                let (st, body) = s
                    .gql(
                        Some(&t),
                        "mutation($t: String!) { createChat(input: {title: $t}) { id } }",
                        json!({"t": format!("chat {i}")}),
                    )
                    .await;
                let ok = body["data"]["createChat"]["id"].is_string();
                (if ok { StatusCode::CREATED } else { st }, body)
            }
        }));
    }
    for t in tasks {
        let (st, body) = t.await.unwrap();
        assert_eq!(st, StatusCode::CREATED, "{body}");
    }
    let (_, list) = s.get("/api/chats?limit=100", Some(&l.access)).await;
    assert_eq!(list["total"], 50);
    let mut titles: Vec<String> = list["chats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["title"].as_str().unwrap().to_string())
        .collect();
    titles.sort();
    titles.dedup();
    assert_eq!(titles.len(), 50);
}

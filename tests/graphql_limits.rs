//! The security baseline for GraphQL: depth, complexity (aliases count), batch cap, GET is
//! query-only, JSON-only POST, body limit, malformed input; each refused without writing.

use crate::both_backends;
use crate::support::{Backend, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};

both_backends!(limits_and_malformed_requests);

async fn limits_and_malformed_requests(b: Backend) {
    let s = TestServer::start(b).await;
    let l = s.user("limits").await;
    let t = Some(l.access.as_str());

    // Depth: nest agent/owner/chats far beyond the limit.
    let mut deep = String::from("id");
    for _ in 0..8 {
        deep = format!("chats {{ agent {{ owner {{ {deep} }} }} }}");
    }
    let (_, r) = s.gql(t, &format!("{{ me {{ {deep} }} }}"), json!({})).await;
    assert_eq!(TestServer::gql_code(&r), "query_too_complex", "{r}");
    assert!(r["data"].is_null());

    // Complexity: 600 aliased copies of one cheap field.
    let aliases: String = (0..600).map(|i| format!("a{i}: me {{ id }} ")).collect();
    let (_, r) = s.gql(t, &format!("{{ {aliases} }}"), json!({})).await;
    assert_eq!(TestServer::gql_code(&r), "query_too_complex");

    // A mutation over the limits writes nothing.
    let muts: String = (0..300)
        .map(|i| format!("c{i}: createChat(input: {{title: \"x\"}}) {{ id title }} "))
        .collect();
    let (_, r) = s.gql(t, &format!("mutation {{ {muts} }}"), json!({})).await;
    assert_eq!(TestServer::gql_code(&r), "query_too_complex");
    assert_eq!(s.get("/api/chats", t).await.1["total"], 0);

    // Batch cap.
    let batch: Vec<Value> = (0..11).map(|_| json!({"query": "{ me { id } }"})).collect();
    let (st, r) = s.post("/graphql", t, Value::Array(batch)).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(TestServer::gql_code(&r), "query_too_complex");
    let batch: Vec<Value> = (0..3)
        .map(|_| json!({"query": "{ me { username } }"}))
        .collect();
    let (st, r) = s.post("/graphql", t, Value::Array(batch)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(r[2]["data"]["me"]["username"], "limits");

    // GET runs queries, refuses mutations with 405, and serves GraphiQL to browsers.
    let res = s
        .http
        .get(s.url("/graphql"))
        .query(&[("query", "{ me { username } }")])
        .bearer_auth(&l.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<Value>().await.unwrap()["data"]["me"]["username"],
        "limits"
    );
    let res = s
        .http
        .get(s.url("/graphql"))
        .query(&[("query", "mutation { createChat(input: {}) { id } }")])
        .bearer_auth(&l.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(s.get("/api/chats", t).await.1["total"], 0);
    let res = s.http.get(s.url("/graphql")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res
        .text()
        .await
        .unwrap()
        .to_lowercase()
        .contains("graphiql"));

    // Content types, syntax, size.
    let res = s
        .http
        .post(s.url("/graphql"))
        .bearer_auth(&l.access)
        .header("content-type", "text/plain")
        .body("{\"query\":\"{ me { id } }\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let res = s
        .http
        .post(s.url("/graphql"))
        .bearer_auth(&l.access)
        .header("content-type", "application/json")
        .body("{\"query\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        TestServer::gql_code(&res.json::<Value>().await.unwrap()),
        "invalid_json"
    );
    let (st, e) = s
        .post_declared_size("/graphql", &l.access, 3 * 1024 * 1024)
        .await;
    assert_eq!(st, 413);
    assert_eq!(e["code"], "payload_too_large", "{e}");

    // Wrong types and oversize fields are field errors with codes; nothing written.
    let (_, r) = s
        .gql(
            t,
            "mutation($t: String!) { createChat(input: {title: $t}) { id } }",
            json!({"t": 42}),
        )
        .await;
    assert_eq!(TestServer::gql_code(&r), "validation_error", "{r}");
    let (_, r) = s
        .gql(
            t,
            "mutation($t: String!) { createChat(input: {title: $t}) { id } }",
            json!({"t": "y".repeat(201)}),
        )
        .await;
    assert_eq!(TestServer::gql_code(&r), "validation_error");
    let (_, r) = s.gql(t, "{ me { nosuchfield } }", json!({})).await;
    assert_eq!(TestServer::gql_code(&r), "validation_error");
    assert!(
        !r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Did you mean"),
        "suggestions are off"
    );
    let (_, r) = s.gql(t, "{ me { id ", json!({})).await;
    assert!(r["errors"].is_array());
    assert_eq!(
        s.get("/api/chats", t).await.1["total"],
        0,
        "nothing was written"
    );
}

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

both_backends!(hostile_documents_are_refused_briefly);

/// 200k nested selections, lists and objects are refused by the parser and the server lives;
/// a parse error quotes a few dozen characters, not the offending line (a 600 KB one-line
/// query would otherwise come back whole).
async fn hostile_documents_are_refused_briefly(b: Backend) {
    let s = TestServer::start_with(b, |c| c.body_limit_bytes = 4 * 1024 * 1024).await;
    let u = s.user("hostile").await;
    let t = Some(u.access.as_str());
    let n = 200_000;
    let selections = format!("{{ me {}{}", "{ me ".repeat(n), "}".repeat(n + 1));
    let list = format!("{{ me(x: {}1{}) {{ id }} }}", "[".repeat(n), "]".repeat(n));
    let object = format!(
        "{{ me(x: {}1{}) {{ id }} }}",
        "{a: ".repeat(n),
        "}".repeat(n)
    );
    for q in [selections, list, object] {
        let (_, r) = s.gql(t, &q, json!({})).await;
        assert!(r["errors"].is_array(), "refused");
        assert!(r.to_string().len() < 4096, "a short error");
    }
    let junk = format!("{{ me {{ {} @@@ }} }}", "username ".repeat(66_000));
    assert!(junk.len() > 590_000);
    let (_, r) = s.gql(t, &junk, json!({})).await;
    let message = r["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{r}");
    assert!(
        r.to_string().len() < 2048,
        "the parse error quotes a short excerpt, got {} bytes",
        r.to_string().len()
    );
    let (_, r) = s.gql(t, "{ me { username } }", json!({})).await;
    assert_eq!(r["data"]["me"]["username"], "hostile", "the server lives");

    // Aliases and repeated fields are capped per operation, fragments included.
    let aliases: String = (0..31).map(|i| format!("a{i}: me {{ id }} ")).collect();
    let (_, r) = s.gql(t, &format!("{{ {aliases} }}"), json!({})).await;
    assert_eq!(TestServer::gql_code(&r), "query_too_complex", "{r}");
    let (_, r) = s
        .gql(
            t,
            &format!("{{ {} }}", "__typename ".repeat(500)),
            json!({}),
        )
        .await;
    assert_eq!(TestServer::gql_code(&r), "query_too_complex", "{r}");
    let spread = "query { me { ...F ...F ...F ...F } } fragment F on User { username }";
    let (_, r) = s.gql(t, spread, json!({})).await;
    assert_eq!(TestServer::gql_code(&r), "query_too_complex", "{r}");
    let (_, r) = s
        .gql(t, "{ me { username username } a: me { id } }", json!({}))
        .await;
    assert_eq!(
        r["data"]["me"]["username"], "hostile",
        "within the caps: {r}"
    );
}

/// The schema query GraphiQL sends at load (graphql-js's full introspection, type references
/// nine levels deep) passes the default limits, so the playground gets its schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playground_schema_query_fits_the_default_limits() {
    let s = TestServer::start(Backend::Sqlite).await;
    let mut type_ref = String::from("kind name");
    for _ in 0..9 {
        type_ref = format!("kind name ofType {{ {type_ref} }}");
    }
    let query = format!(
        "query IntrospectionQuery {{ __schema {{ description queryType {{ name }} mutationType {{ name }} subscriptionType {{ name }}
           types {{ ...FullType }} directives {{ name description isRepeatable locations args(includeDeprecated: true) {{ ...InputValue }} }} }} }}
         fragment FullType on __Type {{ kind name description specifiedByURL isOneOf
           fields(includeDeprecated: true) {{ name description args(includeDeprecated: true) {{ ...InputValue }} type {{ ...TypeRef }} isDeprecated deprecationReason }}
           inputFields(includeDeprecated: true) {{ ...InputValue }} interfaces {{ ...TypeRef }}
           enumValues(includeDeprecated: true) {{ name description isDeprecated deprecationReason }} possibleTypes {{ ...TypeRef }} }}
         fragment InputValue on __InputValue {{ name description type {{ ...TypeRef }} defaultValue isDeprecated deprecationReason }}
         fragment TypeRef on __Type {{ {type_ref} }}"
    );
    let (st, r) = s.gql(None, &query, json!({})).await;
    assert_eq!(st, reqwest::StatusCode::OK);
    assert!(r["errors"].is_null(), "{}", r["errors"]);
    assert!(r["data"]["__schema"]["types"].as_array().unwrap().len() > 50);
}

//! Token usage and quotas: every model call is counted per day, user, API key and model; the
//! `usage` query and `/api/stats` report it; a spent quota refuses the next call with 429
//! `quota_exceeded` before the model is called, for users and for API keys.

use crate::both_backends;
use crate::chat_turns::remote_model;
use crate::mock_llm::{MockLlm, Script};
use crate::support::{Backend, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};

both_backends!(token_quotas_and_usage);

const USAGE: &str = "query($from: NaiveDate!, $to: NaiveDate!, $by: [UsageGroup!], $user: ID) {
    usage(from: $from, to: $to, groupBy: $by, userId: $user) {
        day userId apiKeyId viaApiKey model requests promptTokens completionTokens totalTokens
    }
}";

fn today() -> String {
    chrono::Utc::now().date_naive().to_string()
}

async fn usage(s: &TestServer, token: &str, by: Value, user: Option<i64>) -> Value {
    let (st, r) = s
        .gql(
            Some(token),
            USAGE,
            json!({"from": today(), "to": today(), "by": by, "user": user.map(|u| u.to_string())}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    r
}

async fn token_quotas_and_usage(b: Backend) {
    let s = TestServer::start_with(b, |c| {
        c.quotas.user_daily_tokens = 30;
        c.quotas.key_daily_tokens = 13;
    })
    .await;
    let mock = MockLlm::start().await;
    let admin = s.user("admin").await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    remote_model(&s, &admin.access, "mock", &mock.base_url, 8192).await;

    // Each answer reports 11 prompt + 2 completion tokens: three fit in 30, a fourth is
    // refused before the model is called.
    let chat = |token: &str| {
        let token = token.to_string();
        let s = &s;
        async move {
            s.post(
                "/api/chat",
                Some(&token),
                json!({"message": "hi", "model": "mock"}),
            )
            .await
        }
    };
    for _ in 0..3 {
        mock.push(Script::tokens(&["a", "b"]));
        let (st, r) = chat(&alice.access).await;
        assert_eq!(st, StatusCode::OK, "{r}");
    }
    let calls = mock.requests().len();
    let res = s
        .http
        .post(s.url("/api/chat"))
        .bearer_auth(&alice.access)
        .json(&json!({"message": "hi", "model": "mock"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["code"], "quota_exceeded", "{e}");
    assert_eq!(e["details"]["period"], "day");
    assert_eq!(
        (
            e["details"]["limit"].as_i64(),
            e["details"]["used"].as_i64()
        ),
        (Some(30), Some(39))
    );
    assert_eq!(mock.requests().len(), calls, "the model was not called");

    // The usage query: the caller's own rows, grouped as asked.
    let r = usage(&s, &alice.access, json!(["MODEL"]), None).await;
    assert_eq!(
        r["data"]["usage"],
        json!([{"day": null, "userId": null, "apiKeyId": null, "viaApiKey": null, "model": "mock",
                "requests": 3, "promptTokens": 33, "completionTokens": 6, "totalTokens": 39}])
    );
    let r = usage(&s, &alice.access, json!(["DAY", "API_KEY"]), None).await;
    assert_eq!(r["data"]["usage"][0]["day"], today());
    assert_eq!(r["data"]["usage"][0]["viaApiKey"], false);
    // Someone else's usage is not found; an admin sees everyone's.
    let r = usage(&s, &alice.access, json!(["DAY"]), Some(admin.user_id)).await;
    assert_eq!(TestServer::gql_code(&r), "not_found", "{r}");
    let r = usage(&s, &admin.access, json!(["USER"]), None).await;
    assert_eq!(
        r["data"]["usage"],
        json!([{"day": null, "userId": alice.user_id.to_string(), "apiKeyId": null, "viaApiKey": null,
                "model": null, "requests": 3, "promptTokens": 33, "completionTokens": 6, "totalTokens": 39}])
    );
    // Seed 000's stats count the caller's tokens too.
    let (_, stats) = s.get("/api/stats", Some(&alice.access)).await;
    assert_eq!(stats["tokens_today"], 39, "{stats}");
    assert_eq!(stats["tokens_this_month"], 39, "{stats}");

    // An API key's quota counts the key alone: spent after one call, while its user's
    // sessions go on.
    let (st, k) = s
        .post(
            "/api/v1/keys",
            Some(&bob.access),
            json!({"name": "metered"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{k}");
    let key = k["api_key"].as_str().unwrap().to_string();
    let body = json!({"model": "mock", "messages": [{"role": "user", "content": "Hello"}]});
    mock.push(Script::tokens(&["x", "y"]));
    let (st, r) = s
        .post("/v1/chat/completions", Some(&key), body.clone())
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    let (st, r) = s
        .post("/v1/chat/completions", Some(&key), body.clone())
        .await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{r}");
    assert_eq!(r["error"]["code"], "quota_exceeded", "{r}");
    assert_eq!(r["error"]["type"], "rate_limit_error", "{r}");
    mock.push(Script::tokens(&["ok"]));
    let (st, r) = chat(&bob.access).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    let r = usage(&s, &bob.access, json!(["API_KEY"]), None).await;
    let rows = r["data"]["usage"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{r}");
    let via_key = rows.iter().find(|r| r["viaApiKey"] == true).unwrap();
    assert_eq!(via_key["apiKeyId"], k["key_id"], "{r}");
    assert_eq!(via_key["totalTokens"], 13);
}

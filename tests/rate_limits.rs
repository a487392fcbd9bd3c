//! Rate limits: each documented door spends its seed's budget per principal (or per address
//! where the seed says so), answers with `X-RateLimit-*` headers, and refuses with 429 and
//! `Retry-After` in its own error shape; GraphQL spends one unit per root field on every
//! transport; `/ws/chat` per message; an API key's own `rate_limit` holds on every door; on
//! PostgreSQL two processes draw from one budget. An admin's run-time budgets apply at once
//! on every process and survive a restart.

use crate::both_backends;
use crate::support::{ws_init, ws_op, ws_send, Backend, TestServer};
use hearth::config::{Budget, RateLimitsConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};

both_backends!(
    rest_doors_spend_their_budgets,
    graphql_spends_root_fields,
    an_admin_sets_budgets_at_run_time
);

/// A request's status, rate-limit headers and body.
struct Limited {
    status: StatusCode,
    limit: Option<u32>,
    remaining: Option<u32>,
    reset: Option<u64>,
    retry_after: Option<u64>,
    body: Value,
}

async fn send(req: reqwest::RequestBuilder) -> Limited {
    let res = req.send().await.expect("request sent");
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let (limit, remaining) = (
        header("x-ratelimit-limit").map(|v| v as u32),
        header("x-ratelimit-remaining").map(|v| v as u32),
    );
    let (reset, retry_after) = (header("x-ratelimit-reset"), header("retry-after"));
    let status = res.status();
    let body = res.json().await.unwrap_or(Value::Null);
    Limited {
        status,
        limit,
        remaining,
        reset,
        retry_after,
        body,
    }
}

fn get(s: &TestServer, path: &str, token: &str) -> reqwest::RequestBuilder {
    s.http.get(s.url(path)).bearer_auth(token)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Registers through GraphQL (its budget is off where this is used) and returns a token.
async fn account(s: &TestServer, name: &str) -> String {
    let (st, b) = s
        .gql(
            None,
            "mutation($i: RegisterUserInput!) { register(input: $i) { accessToken } }",
            json!({"i": {"email": format!("{name}@example.com"), "password": "password123", "username": name}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    b["data"]["register"]["accessToken"]
        .as_str()
        .expect("registered")
        .to_string()
}

/// A refusal: 429, `Retry-After` within the budget's period, nothing left, reset ahead.
fn assert_refused(r: &Limited, limit: u32, period: u64) {
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    let retry = r.retry_after.expect("Retry-After");
    assert!((1..=period).contains(&retry), "retry after {retry}");
    assert_eq!((r.limit, r.remaining), (Some(limit), Some(0)));
    assert!(r.reset.expect("reset") >= now(), "reset in the past");
}

async fn rest_doors_spend_their_budgets(b: Backend) {
    let s = TestServer::start_with(b, |c| {
        c.rate_limits = RateLimitsConfig {
            nexus_auth: Budget::new(2, 60),
            api: Budget::new(2, 60),
            runner: Budget::new(2, 60),
            api_keys: true,
            ..RateLimitsConfig::off()
        };
    })
    .await;
    let alice = account(&s, "alice").await;
    let bob = account(&s, "bob").await;

    // Seed 002 `/auth/*`: anonymous callers count per address; the budget shows in the
    // headers; the refusal is in seed 002's shape.
    let login = || {
        s.http
            .post(s.url("/api/v1/auth/login"))
            .json(&json!({"email": "nobody@example.com", "password": "wrong-password"}))
    };
    let mut left = Vec::new();
    for _ in 0..2 {
        let r = send(login()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        assert_eq!(r.limit, Some(2));
        assert!(r.reset.unwrap() >= now());
        left.push(r.remaining.unwrap());
    }
    assert_eq!(left, [1, 0]);
    let r = send(login()).await;
    assert_refused(&r, 2, 30);
    assert_eq!(r.body["error"]["code"], "RATE_LIMITED", "{}", r.body);
    assert!(r.body["request_id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));

    // Seed 000 `/api/*`: per user; another user has a budget of their own.
    for expected in [1, 0] {
        let r = send(get(&s, "/api/conversations", &alice)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!((r.limit, r.remaining), (Some(2), Some(expected)));
    }
    let r = send(get(&s, "/api/conversations", &alice)).await;
    assert_refused(&r, 2, 30);
    assert_eq!(r.body["code"], "rate_limited", "{}", r.body);
    assert!(r.body["detail"].as_str().unwrap().contains("retry in"));
    let r = send(get(&s, "/api/conversations", &bob)).await;
    assert_eq!((r.status, r.remaining), (StatusCode::OK, Some(1)));

    // Seed 004 counts per address whoever calls: alice's two requests leave bob nothing.
    for _ in 0..2 {
        assert_eq!(
            send(get(&s, "/api/models", &alice)).await.status,
            StatusCode::OK
        );
    }
    let r = send(get(&s, "/api/models", &bob)).await;
    assert_refused(&r, 2, 30);
    assert!(r.body["error"].is_string(), "seed 004 shape: {}", r.body);

    // An API key's own rate_limit (per minute) holds on a door without a budget of its own,
    // refused in that door's shape (OpenAI's for /v1).
    let (st, k) = s
        .post(
            "/api/v1/keys",
            Some(&bob),
            json!({"name": "limited", "rate_limit": 2}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{k}");
    let key = k["api_key"].as_str().unwrap().to_string();
    for expected in [1, 0] {
        let r = send(get(&s, "/v1/models", &key)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!((r.limit, r.remaining), (Some(2), Some(expected)));
    }
    let r = send(get(&s, "/v1/models", &key)).await;
    assert_refused(&r, 2, 30);
    assert_eq!(r.body["error"]["type"], "rate_limit_error", "{}", r.body);
    // The key counts for itself: its user's session still has budget on the same door.
    assert_eq!(
        send(get(&s, "/v1/models", &bob)).await.status,
        StatusCode::OK
    );

    // A door without any budget answers without the headers.
    let r = send(s.http.get(s.url("/health"))).await;
    assert_eq!((r.status, r.limit), (StatusCode::OK, None));
}

async fn graphql_spends_root_fields(b: Backend) {
    let s = TestServer::start_with(b, |c| {
        c.rate_limits = RateLimitsConfig {
            graphql: Budget::new(5, 60),
            login: Budget::new(2, 300),
            ..RateLimitsConfig::off()
        };
    })
    .await;
    let alice = account(&s, "alice").await;
    let bob = account(&s, "bob").await;
    let gql = |token: &str, body: Value| {
        s.http
            .post(s.url("/graphql"))
            .bearer_auth(token)
            .json(&body)
    };

    // Aliases each count; so does every operation of a batch.
    let r = send(gql(
        &alice,
        json!({"query": "{ a: me { id } b: me { id } c: me { id } }"}),
    ))
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!((r.limit, r.remaining), (Some(5), Some(2)));
    let one = json!({"query": "{ me { id } }"});
    let r = send(gql(&alice, json!([one, one]))).await;
    assert_eq!((r.status, r.remaining), (StatusCode::OK, Some(0)));
    let r = send(gql(&alice, one.clone())).await;
    assert_refused(&r, 5, 15);
    assert_eq!(TestServer::gql_code(&r.body), "rate_limited", "{}", r.body);

    // Answers served from the response cache spend the budget too.
    for expected in (0..5).rev() {
        let r = send(gql(&bob, one.clone())).await;
        assert_eq!((r.status, r.remaining), (StatusCode::OK, Some(expected)));
    }
    assert_refused(&send(gql(&bob, one.clone())).await, 5, 15);

    // Login fields spend the login budget (anonymous: per address), aliases included.
    let login = |n: usize| {
        let fields: Vec<String> = (0..n)
            .map(|i| format!("l{i}: login(username: \"nobody\", password: \"wrong-password\") {{ accessToken }}"))
            .collect();
        s.http
            .post(s.url("/graphql"))
            .json(&json!({"query": format!("mutation {{ {} }}", fields.join(" "))}))
    };
    let r = send(login(2)).await;
    assert_eq!((r.limit, r.remaining), (Some(2), Some(0)), "{}", r.body);
    assert_eq!(
        TestServer::gql_code(&r.body),
        "invalid_credentials",
        "{}",
        r.body
    );
    let r = send(login(1)).await;
    assert_refused(&r, 2, 300);
    // The REST login door draws from the same budget.
    let r = send(
        s.http
            .post(s.url("/api/auth/login"))
            .json(&json!({"username": "nobody", "password": "wrong-password"})),
    )
    .await;
    assert_refused(&r, 2, 300);
    assert_eq!(r.body["code"], "rate_limited");

    // Over the WebSocket transport, each operation spends its fields as well.
    let carol = account(&s, "carol").await;
    let mut ws = ws_init(&s, json!({"token": carol})).await;
    let r = ws_op(
        &mut ws,
        "1",
        "{ a: me { id } b: me { id } c: me { id } d: me { id } }",
        json!({}),
    )
    .await
    .unwrap();
    assert!(r["payload"]["errors"].is_null(), "{r}");
    let r = ws_op(&mut ws, "2", "{ a: me { id } b: me { id } }", json!({}))
        .await
        .unwrap();
    assert_eq!(
        r["payload"]["errors"][0]["extensions"]["code"], "rate_limited",
        "{r}"
    );
    let r = ws_op(&mut ws, "3", "{ me { id } }", json!({}))
        .await
        .unwrap();
    assert!(
        r["payload"]["errors"].is_null(),
        "the last unit is left: {r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_chat_messages_spend_their_budget() {
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        c.rate_limits = RateLimitsConfig {
            ws_chat: Budget::new(2, 60),
            ..RateLimitsConfig::off()
        };
    })
    .await;
    let token = s.user("talker").await.access;
    let url = format!(
        "{}/ws/chat?token={token}",
        s.base.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
    let mut codes = Vec::new();
    for _ in 0..3 {
        ws_send(&mut ws, json!({"nope": 1})).await;
        let e = crate::support::next_json(&mut ws).await.expect("an answer");
        assert_eq!(e["type"], "error", "{e}");
        codes.push(e["code"].as_str().unwrap().to_string());
    }
    assert_eq!(codes, ["invalid_json", "invalid_json", "rate_limited"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_budget_on_postgres() {
    let limits = RateLimitsConfig {
        api: Budget::new(3, 60),
        ..RateLimitsConfig::off()
    };
    let l2 = limits.clone();
    let a = TestServer::start_with(Backend::Postgres, |c| c.rate_limits = limits).await;
    let url = a.state.config.database_url();
    let b = TestServer::start_with(Backend::Postgres, |c| {
        c.database_url = Some(url);
        c.rate_limits = l2;
    })
    .await;
    let token = account(&a, "roamer").await;
    let mut left = Vec::new();
    for s in [&a, &b, &a] {
        let r = send(get(s, "/api/conversations", &token)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        left.push(r.remaining.unwrap());
    }
    assert_eq!(left, [2, 1, 0], "one budget across both processes");
    assert_refused(&send(get(&b, "/api/conversations", &token)).await, 3, 20);
    assert_refused(&send(get(&a, "/api/conversations", &token)).await, 3, 20);
}

const SET: &str = "mutation($n: String!, $b: String!) { setRateLimit(name: $n, budget: $b) { name budget configured overridden requests periodSeconds } }";
const RESET: &str =
    "mutation($n: String!) { resetRateLimit(name: $n) { budget configured overridden } }";

/// The `X-RateLimit-Limit` a door answers with on `s` once it equals `want` (another
/// process applies a change when the bus delivers it), or the last one seen.
async fn limit_becomes(s: &TestServer, token: &str, want: Option<u32>) -> Option<u32> {
    let mut seen = None;
    for _ in 0..100 {
        seen = send(get(s, "/api/conversations", token)).await.limit;
        if seen == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    seen
}

async fn an_admin_sets_budgets_at_run_time(b: Backend) {
    let limits = RateLimitsConfig {
        api: Budget::new(1000, 60),
        ..RateLimitsConfig::off()
    };
    let l2 = limits.clone();
    let s = TestServer::start_with(b, |c| c.rate_limits = limits.clone()).await;
    // On PostgreSQL a second process serves the same database.
    let url = s.state.config.database_url();
    let other = match b {
        Backend::Postgres => Some(
            TestServer::start_with(b, |c| {
                c.database_url = Some(url.clone());
                c.rate_limits = l2;
            })
            .await,
        ),
        Backend::Sqlite => None,
    };
    let admin = s.user("admin").await.access;
    let alice = account(&s, "alice").await;
    let vars = |n: &str, b: &str| json!({"n": n, "b": b});

    // Who may: admins only; a bad name or budget is a validation error naming the field.
    let (_, r) = s.gql(None, SET, vars("api", "5/min")).await;
    assert_eq!(TestServer::gql_code(&r), "unauthenticated", "{r}");
    let (_, r) = s.gql(Some(&alice), SET, vars("api", "5/min")).await;
    assert_eq!(TestServer::gql_code(&r), "forbidden", "{r}");
    let (_, r) = s
        .gql(Some(&alice), "{ rateLimits { name } }", json!({}))
        .await;
    assert_eq!(TestServer::gql_code(&r), "forbidden", "{r}");
    for (name, budget, field) in [
        ("api", "lots", "budget"),
        ("api", "5/fortnight", "budget"),
        ("api", &"9".repeat(5000), "budget"),
        ("nope", "5/min", "name"),
        (&"n".repeat(5000), "5/min", "name"),
    ] {
        let (_, r) = s.gql(Some(&admin), SET, vars(name, budget)).await;
        assert_eq!(TestServer::gql_code(&r), "validation_error", "{r}");
        assert_eq!(
            r["errors"][0]["extensions"]["details"]["field"], field,
            "{r}"
        );
    }
    assert_eq!(limit_becomes(&s, &alice, Some(1000)).await, Some(1000));

    // Set: in force at once here, and on the other process once the bus tells it.
    let (_, r) = s.gql(Some(&admin), SET, vars("api", "5/min")).await;
    assert_eq!(
        r["data"]["setRateLimit"],
        json!({"name": "api", "budget": "5/min", "configured": "1000/min", "overridden": true, "requests": 5, "periodSeconds": 60}),
        "{r}"
    );
    // In memory the changed budget starts full; a shared one keeps what was spent (a
    // fraction of a request under the old budget, which rounds the first remainder down).
    let r = send(get(&s, "/api/conversations", &alice)).await;
    let left = if b == Backend::Sqlite { 4 } else { 3 };
    assert_eq!((r.limit, r.remaining), (Some(5), Some(left)));
    if let Some(o) = &other {
        assert_eq!(limit_becomes(o, &alice, Some(5)).await, Some(5));
    }
    let (_, r) = s
        .gql(
            Some(&admin),
            "{ rateLimits { name budget overridden } }",
            json!({}),
        )
        .await;
    let api = r["data"]["rateLimits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "api")
        .cloned();
    assert_eq!(
        api,
        Some(json!({"name": "api", "budget": "5/min", "overridden": true}))
    );

    // "0" turns the door's budget off everywhere; resetting returns to hearth.toml's.
    let (_, r) = s.gql(Some(&admin), SET, vars("api", "0")).await;
    assert_eq!(r["data"]["setRateLimit"]["budget"], "0", "{r}");
    assert_eq!(limit_becomes(&s, &alice, None).await, None);
    if let Some(o) = &other {
        assert_eq!(limit_becomes(o, &alice, None).await, None);
    }
    let (_, r) = s.gql(Some(&admin), RESET, json!({"n": "api"})).await;
    assert_eq!(
        r["data"]["resetRateLimit"],
        json!({"budget": "1000/min", "configured": "1000/min", "overridden": false}),
        "{r}"
    );
    assert_eq!(limit_becomes(&s, &alice, Some(1000)).await, Some(1000));
    if let Some(o) = &other {
        assert_eq!(limit_becomes(o, &alice, Some(1000)).await, Some(1000));
    }

    // A budget set at run time is read by a process that starts later.
    if b == Backend::Postgres {
        let (_, r) = s.gql(Some(&admin), SET, vars("api", "7/min")).await;
        assert_eq!(r["data"]["setRateLimit"]["budget"], "7/min", "{r}");
        let late = TestServer::start_with(b, |c| {
            c.database_url = Some(url.clone());
            c.rate_limits = limits.clone();
        })
        .await;
        let r = send(get(&late, "/api/conversations", &alice)).await;
        assert_eq!(r.limit, Some(7));
    }
}

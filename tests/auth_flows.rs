//! Every documented login flow, refresh rotation, logout, API keys and cookie + CSRF.

use crate::both_backends;
use crate::support::{cookie_of, Backend, TestServer};
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::json;

both_backends!(
    orchestrator_and_foyer_login,
    register_validation_and_conflicts,
    refresh_rotation_and_reuse,
    logout_revokes_session,
    disabled_user_is_refused,
    nexus_auth_users_and_errors,
    api_keys_lifecycle,
    cookie_login_and_csrf,
    foyer_current_session,
    login_attempts_are_rate_limited,
    registration_and_accounts_are_rate_limited,
    logout_with_a_rotated_refresh_token_is_refused,
    claiming_an_instance_needs_this_machine_or_the_setup_token,
    admin_email_names_the_admin,
    aliased_registrations_each_count,
);

/// Every root field counts against its door's budget: aliasing `register` in one GraphQL
/// request does not multiply the allowance.
async fn aliased_registrations_each_count(b: Backend) {
    let s = TestServer::start_with(b, |c| c.register_rate_limit = 2).await;
    let fields: String = (0..4)
        .map(|i| format!("r{i}: register(input: {{email: \"alias{i}@example.com\", password: \"password123\"}}) {{ user {{ username }} }} "))
        .collect();
    let (_, r) = s
        .gql(None, &format!("mutation {{ {fields} }}"), json!({}))
        .await;
    let errors = r["errors"].as_array().cloned().unwrap_or_default();
    assert!(!errors.is_empty(), "{r}");
    assert!(
        errors
            .iter()
            .all(|e| e["extensions"]["code"] == "rate_limited"),
        "{r}"
    );
    // Exactly the allowance was spent: the first two exist, the others do not.
    for (i, exists) in [(0, true), (1, true), (2, false), (3, false)] {
        let (st, _) = s
            .post(
                "/api/auth/login",
                None,
                json!({"username": format!("alias{i}@example.com"), "password": "password123"}),
            )
            .await;
        assert_eq!(st == StatusCode::OK, exists, "alias{i}");
    }
}

async fn register_from(
    s: &TestServer,
    name: &str,
    from: &str,
    extra: serde_json::Value,
) -> serde_json::Value {
    let mut body = json!({"email": format!("{name}@example.com"), "password": "password123", "trigramme": name});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let res = s
        .http
        .post(s.url("/api/auth/register"))
        .header("x-forwarded-for", from)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.unwrap()
}

fn role_of(body: &serde_json::Value) -> String {
    body["user"]["role"]
        .as_str()
        .or_else(|| body["role"].as_str())
        .unwrap_or_else(|| panic!("no role in {body}"))
        .to_string()
}

/// On open registration, a stranger who reaches an unadministered server first does not get
/// it: the first admin registers from the server's machine or shows the setup token that
/// the server printed in its log.
async fn claiming_an_instance_needs_this_machine_or_the_setup_token(b: Backend) {
    let s = TestServer::start_with(b, |c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]
    })
    .await;
    let token = s
        .state
        .setup
        .current()
        .expect("a setup token is issued at start");
    let stranger = register_from(&s, "stranger", "203.0.113.9", json!({})).await;
    assert_eq!(role_of(&stranger), "user");
    let guess = register_from(&s, "guesser", "203.0.113.9", json!({"setup_token": "nope"})).await;
    assert_eq!(role_of(&guess), "user");
    let owner = register_from(&s, "owner", "198.51.100.7", json!({"setup_token": token})).await;
    assert_eq!(role_of(&owner), "admin");
    // Once an admin exists the token is worthless, and so is being local.
    let late = register_from(&s, "late", "198.51.100.7", json!({"setup_token": token})).await;
    assert_eq!(role_of(&late), "user");
    let local = register_from(&s, "local", "127.0.0.1", json!({})).await;
    assert_eq!(role_of(&local), "user");
}

async fn admin_email_names_the_admin(b: Backend) {
    let s = TestServer::start_with(b, |c| c.admin_email = Some("Boss@Example.com".into())).await;
    assert!(
        s.state.setup.current().is_none(),
        "no setup token is needed"
    );
    let first = register_from(&s, "first", "127.0.0.1", json!({})).await;
    assert_eq!(
        role_of(&first),
        "user",
        "being first or local is not enough"
    );
    let boss = register_from(&s, "boss", "127.0.0.1", json!({})).await;
    assert_eq!(role_of(&boss), "admin");
}

async fn logout_with_a_rotated_refresh_token_is_refused(b: Backend) {
    let s = TestServer::start(b).await;
    let l = s.user("rotout").await;
    let (st, r1) = s
        .post(
            "/api/auth/refresh",
            None,
            json!({"refresh_token": l.refresh}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r1}");
    let new_access = r1["access_token"].as_str().unwrap().to_string();
    let (st, e) = s
        .post(
            "/api/auth/logout",
            None,
            json!({"refresh_token": l.refresh}),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{e}");
    assert_eq!(e["code"], "refresh_token_reused");
    // The leak ends the session, as on refresh.
    assert_eq!(
        s.get("/api/auth/me", Some(&new_access)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// Registration is limited per address and checks names before hashing; login is limited
/// per account too (spreading guesses over many addresses does not help), and behind a
/// trusted proxy the client's own address from `X-Forwarded-For` is what counts.
async fn registration_and_accounts_are_rate_limited(b: Backend) {
    let s = TestServer::start_with(b, |c| {
        c.register_rate_limit = 2;
        c.login_rate_limit = 100;
        c.login_account_rate_limit = 3;
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let register = |n: &str, from: &str| {
        s.http
            .post(s.url("/api/auth/register"))
            .header("x-forwarded-for", from)
            .json(&json!({"email": format!("{n}@example.com"), "password": "password123", "trigramme": n}))
            .send()
    };
    assert_eq!(
        register("ra", "10.0.0.1").await.unwrap().status(),
        StatusCode::CREATED
    );
    // A taken name is refused without a hash (and still counts against the limit).
    let taken = register("ra", "10.0.0.1").await.unwrap();
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    let limited = register("rb", "10.0.0.1").await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().get("retry-after").is_some());
    // Another client behind the same proxy is not locked out.
    assert_eq!(
        register("rc", "10.0.0.2").await.unwrap().status(),
        StatusCode::CREATED
    );
    // A forged leftmost entry does not help: the proxy's own view is the nearest hop.
    let forged = register("rd", "1.2.3.4, 10.0.0.1").await.unwrap();
    assert_eq!(forged.status(), StatusCode::TOO_MANY_REQUESTS);

    // Per account: guesses from many addresses still hit the account's limit.
    for i in 0..3 {
        let res = s
            .http
            .post(s.url("/api/auth/login"))
            .header("x-forwarded-for", format!("10.1.0.{i}"))
            .json(&json!({"username": "ra", "password": "wrong-guess"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res = s
        .http
        .post(s.url("/api/auth/login"))
        .header("x-forwarded-for", "10.1.0.99")
        .json(&json!({"username": "ra", "password": "password123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    // Other accounts are unaffected.
    let res = s
        .http
        .post(s.url("/api/auth/login"))
        .json(&json!({"username": "rc", "password": "password123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

async fn login_attempts_are_rate_limited(b: Backend) {
    let s = TestServer::start_with(b, |c| c.login_rate_limit = 3).await;
    let (st, _) = s
        .post(
            "/api/auth/register",
            None,
            json!({"email": "rl@example.com", "password": "password123", "trigramme": "rl"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    for _ in 0..3 {
        let (st, _) = s
            .post(
                "/api/auth/login",
                None,
                json!({"username": "rl", "password": "wrong-guess"}),
            )
            .await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
    }
    // Even the right password is refused until the window passes, on every door.
    let res = s
        .http
        .post(s.url("/api/auth/login"))
        .json(&json!({"username": "rl", "password": "password123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["code"],
        "rate_limited"
    );
    let (st, e) = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "rl@example.com", "password": "password123"}),
        )
        .await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(e["error"]["code"], "RATE_LIMITED");
    let (_, e) = s
        .gql(
            None,
            "mutation { login(username: \"rl\", password: \"password123\") { accessToken } }",
            json!({}),
        )
        .await;
    assert_eq!(TestServer::gql_code(&e), "rate_limited");
}

async fn orchestrator_and_foyer_login(b: Backend) {
    let s = TestServer::start(b).await;
    let (st, reg) = s
        .post(
            "/api/auth/register",
            None,
            json!({"email": "User@Example.com", "password": "securepassword", "trigramme": "ABC"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    for f in ["id", "email", "trigramme", "is_active", "created_at"] {
        assert!(!reg[f].is_null(), "register lacks {f}: {reg}");
    }
    assert_eq!(reg["email"], "user@example.com");
    assert_eq!(reg["trigramme"], "ABC");

    // Seed 000: username field, by username and by email.
    for ident in ["ABC", "user@example.com"] {
        let (st, body) = s
            .post(
                "/api/auth/login",
                None,
                json!({"username": ident, "password": "securepassword"}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{body}");
        assert_eq!(body["token_type"], "bearer");
        assert_eq!(body["expires_in"], 3600);
        assert!(body["access_token"].as_str().unwrap().starts_with("eyJ"));
        assert!(body["refresh_token"].as_str().unwrap().starts_with("eyJ"));
    }
    // Seed 001: email field, user object.
    let (st, body) = s
        .post(
            "/api/auth/login",
            None,
            json!({"email": "user@example.com", "password": "securepassword"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body["user"]["trigramme"], "ABC");
    assert_eq!(body["user"]["email"], "user@example.com");
    let token = body["access_token"].as_str().unwrap().to_string();

    let (st, me) = s.get("/api/auth/me", Some(&token)).await;
    assert_eq!(st, StatusCode::OK);
    for f in [
        "id",
        "email",
        "trigramme",
        "is_active",
        "is_admin",
        "created_at",
    ] {
        assert!(!me[f].is_null(), "me lacks {f}: {me}");
    }

    let (st, err) = s
        .post(
            "/api/auth/login",
            None,
            json!({"username": "ABC", "password": "wrong-password"}),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(err["code"], "invalid_credentials");
    assert_eq!(err["status"], "error");
    assert!(
        err["detail"].is_string() && err["timestamp"].is_string(),
        "{err}"
    );
    let (st, err) = s
        .post(
            "/api/auth/login",
            None,
            json!({"username": "nobody", "password": "whatever1"}),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(err["code"], "invalid_credentials");
}

async fn register_validation_and_conflicts(b: Backend) {
    let s = TestServer::start(b).await;
    s.user("abc").await;
    let (st, e) = s
        .post(
            "/api/auth/register",
            None,
            json!({"email": "abc@example.com", "password": "password123", "trigramme": "XYZ"}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["code"], "conflict");
    let (st, _) = s
        .post(
            "/api/auth/register",
            None,
            json!({"email": "other@example.com", "password": "password123", "trigramme": "abc"}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, e) = s
        .post(
            "/api/auth/register",
            None,
            json!({"email": "not-an-email", "password": "password123"}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e["code"], "validation_error");
    let (st, _) = s
        .post(
            "/api/auth/register",
            None,
            json!({"email": "x@example.com", "password": "short"}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let (st, e) = s
        .post(
            "/api/auth/register",
            None,
            json!({"email": "x@example.com"}),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::UNPROCESSABLE_ENTITY,
        "missing password: {e}"
    );
    let long = "a".repeat(300);
    let (st, _) = s
        .post(
            "/api/auth/register",
            None,
            json!({"email": "y@example.com", "password": long}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    // Nothing half-written: only the first user exists.
    let (_, body) = s
        .gql(
            Some(&s.login("abc", "password123").await.access),
            "{ users { total } }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["users"]["total"], 1, "{body}");
}

async fn refresh_rotation_and_reuse(b: Backend) {
    let s = TestServer::start(b).await;
    let l = s.user("rot").await;
    let (st, r1) = s
        .post(
            "/api/auth/refresh",
            None,
            json!({"refresh_token": l.refresh}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r1}");
    let new_refresh = r1["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(new_refresh, l.refresh);
    let new_access = r1["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        s.get("/api/auth/me", Some(&new_access)).await.0,
        StatusCode::OK
    );

    // Reusing the rotated token revokes the whole family.
    let (st, e) = s
        .post(
            "/api/auth/refresh",
            None,
            json!({"refresh_token": l.refresh}),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(e["code"], "refresh_token_reused");
    let (st, e) = s
        .post(
            "/api/auth/refresh",
            None,
            json!({"refresh_token": new_refresh}),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(e["code"], "session_revoked");
    let (st, e) = s.get("/api/auth/me", Some(&new_access)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(e["code"], "session_revoked");

    // Seed 002 refresh path rotates too.
    let l2 = s.login("rot", "password123").await;
    let (st, r) = s
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": l2.refresh}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(r["token_type"], "bearer");
    assert!(r["user"]["id"].is_string());
    // An access token is not a refresh token.
    let (st, e) = s
        .post(
            "/api/auth/refresh",
            None,
            json!({"refresh_token": l2.access}),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(e["code"], "invalid_token");
}

async fn logout_revokes_session(b: Backend) {
    let s = TestServer::start(b).await;
    let l = s.user("bye").await;
    let other = s.login("bye", "password123").await;
    let (st, body) = s
        .call(Method::POST, "/api/auth/logout", Some(&l.access), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body["message"], "Déconnexion réussie");
    let (st, e) = s.get("/api/auth/me", Some(&l.access)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(e["code"], "session_revoked");
    let (st, _) = s
        .post(
            "/api/auth/refresh",
            None,
            json!({"refresh_token": l.refresh}),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // Other sessions of the same user live on.
    assert_eq!(
        s.get("/api/auth/me", Some(&other.access)).await.0,
        StatusCode::OK
    );
    // Seed 000: logout by refresh token alone.
    let (st, _) = s
        .post(
            "/api/auth/logout",
            None,
            json!({"refresh_token": other.refresh}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        s.get("/api/auth/me", Some(&other.access)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.call(Method::POST, "/api/auth/logout", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn disabled_user_is_refused(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.user("root").await; // first user is the admin
    let u = s.user("victim").await;
    let key = s
        .post("/api/v1/keys", Some(&u.access), json!({"name": "k"}))
        .await
        .1["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, body) = s
        .gql(
            Some(&admin.access),
            "mutation($id: ID!) { updateUser(id: $id, input: {isActive: false}) { isActive } }",
            json!({"id": u.user_id.to_string()}),
        )
        .await;
    assert_eq!(body["data"]["updateUser"]["isActive"], false, "{body}");
    let (st, e) = s
        .post(
            "/api/auth/login",
            None,
            json!({"username": "victim", "password": "password123"}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_eq!(e["code"], "account_disabled");
    // Every credential of a disabled account gets the same answer, sessions included.
    let (st, e) = s.get("/api/auth/me", Some(&u.access)).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_eq!(e["code"], "account_disabled");
    let res = s
        .http
        .get(s.url("/api/auth/me"))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // A non-admin cannot do that.
    let (_, body) = s
        .gql(
            Some(&s.user("meek").await.access),
            "mutation($id: ID!) { updateUser(id: $id, input: {isActive: false}) { id } }",
            json!({"id": admin.user_id.to_string()}),
        )
        .await;
    assert_eq!(TestServer::gql_code(&body), "forbidden");
}

async fn nexus_auth_users_and_errors(b: Backend) {
    let s = TestServer::start(b).await;
    let (st, r) = s
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "new@example.dz", "password": "securepassword", "name": "New User"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{r}");
    assert_eq!(r["user"]["name"], "New User");
    let (st, l) = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "new@example.dz", "password": "securepassword"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    for f in ["access_token", "refresh_token", "token_type", "expires_in"] {
        assert!(!l[f].is_null(), "login lacks {f}");
    }
    for f in ["id", "email", "name", "role"] {
        assert!(!l["user"][f].is_null(), "user lacks {f}");
    }
    let t = l["access_token"].as_str().unwrap();
    let (st, me) = s.get("/api/v1/users/me", Some(t)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(me["email"], "new@example.dz");
    let (st, me) = s
        .call(
            Method::PATCH,
            "/api/v1/users/me",
            Some(t),
            Some(json!({"name": "Renamed", "avatar_url": "https://x/a.png"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(me["name"], "Renamed");
    assert_eq!(me["avatar_url"], "https://x/a.png");
    // Error shape of seed 002.
    let (st, e) = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "new@example.dz", "password": "nope-nope"}),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(e["error"]["code"], "INVALID_CREDENTIALS");
    assert!(e["error"]["message"].is_string());
    assert!(e["error"]["details"].is_object());
    assert!(e["request_id"].as_str().unwrap().starts_with("req-"));
    let (st, e) = s
        .call(
            Method::PATCH,
            "/api/v1/users/me",
            Some(t),
            Some(json!({"name": ""})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e["error"]["code"], "VALIDATION_ERROR");
    assert_eq!(e["error"]["details"]["field"], "name");
}

async fn api_keys_lifecycle(b: Backend) {
    let s = TestServer::start(b).await;
    let l = s.user("keys").await;
    let (st, k) = s
        .post("/api/v1/keys", Some(&l.access), json!({"name": "Production API Key", "permissions": ["read", "write"], "rate_limit": 1000, "expires_at": "2099-12-31T23:59:59Z"}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{k}");
    for f in ["key_id", "api_key", "name", "created_at", "expires_at"] {
        assert!(!k[f].is_null(), "key lacks {f}");
    }
    let secret = k["api_key"].as_str().unwrap().to_string();
    assert!(secret.starts_with("sk-"));
    let kid = k["key_id"].as_str().unwrap().to_string();

    // Accepted as X-API-Key and as Bearer sk-….
    let r = s
        .http
        .get(s.url("/api/v1/users/me"))
        .header("X-API-Key", &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(s.get("/api/auth/me", Some(&secret)).await.0, StatusCode::OK);

    let (st, list) = s.get("/api/v1/keys", Some(&l.access)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list["keys"].as_array().unwrap().len(), 1);
    assert!(
        list["keys"][0].get("api_key").is_none(),
        "secret must never be listed again"
    );

    // Read-only key cannot write.
    let ro = s
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
    assert_eq!(s.get("/api/chats", Some(&ro)).await.0, StatusCode::OK);
    let (st, e) = s.post("/api/chats", Some(&ro), json!({"title": "x"})).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_eq!(e["code"], "insufficient_permissions");
    // A user cannot mint admin keys; a past expiry is refused; unknown permission refused.
    assert_eq!(
        s.post(
            "/api/v1/keys",
            Some(&s.user("plain").await.access),
            json!({"name": "a", "permissions": ["admin"]})
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.post(
            "/api/v1/keys",
            Some(&l.access),
            json!({"name": "a", "expires_at": "2001-01-01T00:00:00Z"})
        )
        .await
        .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        s.post(
            "/api/v1/keys",
            Some(&l.access),
            json!({"name": "a", "permissions": ["root"]})
        )
        .await
        .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // A key past its expiry is refused like a revoked one.
    let (_, soon) = s
        .post(
            "/api/v1/keys",
            Some(&l.access),
            json!({"name": "short-lived", "expires_at": "2099-01-01T00:00:00Z"}),
        )
        .await;
    let soon_secret = soon["api_key"].as_str().unwrap().to_string();
    assert_eq!(
        s.get("/api/auth/me", Some(&soon_secret)).await.0,
        StatusCode::OK
    );
    let soon_id: i64 = soon["key_id"].as_str().unwrap().parse().unwrap();
    {
        use diesel::{ExpressionMethods, QueryDsl};
        use diesel_async::RunQueryDsl;
        use hearth::db::schema::api_keys;
        let past = chrono::Utc::now().naive_utc() - chrono::Duration::minutes(1);
        let db = &s.state.db;
        let n: Result<usize, hearth::error::AppError> = async {
            hearth::db_run!(db, write, |conn| {
                diesel::update(api_keys::table.filter(api_keys::id.eq(soon_id)))
                    .set(api_keys::expires_at.eq(Some(past)))
                    .execute(conn)
                    .await
                    .map_err(hearth::error::AppError::from)
            })
        }
        .await;
        assert_eq!(n.unwrap(), 1);
    }
    let (st, e) = s.get("/api/auth/me", Some(&soon_secret)).await;
    assert_eq!(
        (st, e["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("api_key_revoked"))
    );

    // Someone else cannot revoke it; the owner can, and then it is refused everywhere.
    let other = s.user("other").await;
    assert_eq!(
        s.call(
            Method::DELETE,
            &format!("/api/v1/keys/{kid}"),
            Some(&other.access),
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    let (st, r) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/keys/{kid}"),
            Some(&l.access),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(r["revoked"], true);
    let r = s
        .http
        .get(s.url("/api/v1/users/me"))
        .header("X-API-Key", &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "API_KEY_REVOKED");
    let (st, e) = s.gql(Some(&secret), "{ me { id } }", json!({})).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(TestServer::gql_code(&e), "api_key_revoked");
}

async fn cookie_login_and_csrf(b: Backend) {
    let s = TestServer::start(b).await;
    s.user("admin").await;
    let res = s
        .http
        .post(s.url("/auth/login"))
        .json(&json!({"user": "admin", "password": "password123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = cookie_of(&res);
    let body: serde_json::Value = res.json().await.unwrap();
    let csrf = body["csrf_token"].as_str().unwrap().to_string();
    let sid = body["session_id"].as_str().unwrap().to_string();

    // A tab with the cookie but without the token reads it back; nobody else gets one.
    let r: serde_json::Value = s
        .http
        .post(s.url("/graphql"))
        .header(COOKIE, &cookie)
        .json(&json!({"query": "{ csrfToken }"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["data"]["csrfToken"], csrf.as_str(), "{r}");
    let (_, r) = s.gql(None, "{ csrfToken }", json!({})).await;
    assert_eq!(TestServer::gql_code(&r), "unauthenticated", "{r}");
    let other = s.user("tokenless").await;
    let (_, r) = s.gql(Some(&other.access), "{ csrfToken }", json!({})).await;
    assert!(
        r["data"]["csrfToken"].is_null(),
        "bearer callers need no token: {r}"
    );

    let r = s
        .http
        .get(s.url("/sessions"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let list: serde_json::Value = r.json().await.unwrap();
    let first = &list["sessions"][0];
    for f in ["id", "client", "start_ts", "last_activity", "active"] {
        assert!(!first[f].is_null(), "session lacks {f}: {first}");
    }

    // A second session to terminate.
    let victim = s.login("admin", "password123").await;
    let path = format!("/sessions/{}/terminate", victim.session_id);
    let r = s
        .http
        .post(s.url(&path))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["code"], "csrf_invalid");
    let r = s
        .http
        .post(s.url(&path))
        .header(COOKIE, &cookie)
        .header("X-CSRF-Token", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        s.get("/api/auth/me", Some(&victim.access)).await.0,
        StatusCode::OK,
        "refused request changed nothing"
    );
    let r = s
        .http
        .post(s.url(&path))
        .header(COOKIE, &cookie)
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let t: serde_json::Value = r.json().await.unwrap();
    assert_eq!(t["active"], false);
    assert_eq!(
        s.get("/api/auth/me", Some(&victim.access)).await.0,
        StatusCode::UNAUTHORIZED
    );

    // GraphQL mutations by cookie need the CSRF header too; queries do not.
    let q = json!({"query": "mutation { createChat(input: {title: \"c\"}) { id } }"});
    let r = s
        .http
        .post(s.url("/graphql"))
        .header(COOKIE, &cookie)
        .json(&q)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = s
        .http
        .post(s.url("/graphql"))
        .header(COOKIE, &cookie)
        .header("X-CSRF-Token", &csrf)
        .json(&q)
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["data"]["createChat"]["id"].is_string(), "{v}");
    let r = s
        .http
        .post(s.url("/graphql"))
        .header(COOKIE, &cookie)
        .json(&json!({"query": "{ me { username } }"}))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["data"]["me"]["username"], "admin");

    // Logout needs CSRF, clears the cookie and ends the session.
    assert_eq!(
        s.http
            .post(s.url("/auth/logout"))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    let r = s
        .http
        .post(s.url("/auth/logout"))
        .header(COOKIE, &cookie)
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cleared = r.headers().get_all(SET_COOKIE).iter().any(|v| {
        v.to_str().unwrap().starts_with("access_token=;")
            || v.to_str().unwrap().contains("Max-Age=0")
    });
    assert!(cleared, "logout clears the cookie");
    assert_eq!(
        s.http
            .get(s.url("/sessions"))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let _ = sid;
}

async fn foyer_current_session(b: Backend) {
    let s = TestServer::start(b).await;
    let a = s.user("sess").await;
    let other = s.user("peer").await;
    let r = s
        .http
        .get(s.url("/api/sessions/current"))
        .bearer_auth(&a.access)
        .header("X-Session-ID", &a.session_id)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["id"], a.session_id.as_str());
    assert_eq!(v["user_id"], a.user_id);
    assert!(v["expires_at"].is_string());
    assert!(v["metadata"].get("user_agent").is_some() && v["metadata"].get("ip_address").is_some());
    assert_eq!(v["metadata"]["ip_address"], "127.0.0.1");
    let r = s
        .http
        .get(s.url("/api/sessions/current"))
        .bearer_auth(&a.access)
        .header("X-Session-ID", &other.session_id)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        s.get("/api/sessions/current", None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

//! The base that background work stands on: a write is one transaction on both backends
//! (check-then-act rules hold under concurrency), unique violations name their field, SQLite
//! readers cannot write, a starved pool answers 503 with Retry-After, a stop stores what the
//! running turns hold, and one SQLite database serves one process.

use crate::both_backends;
use crate::chat_turns::{remote_model, send, slow, subscribe};
use crate::mock_llm::MockLlm;
use crate::support::{next_json, Backend, TestServer};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use hearth::db::schema::{messages, users};
use hearth::error::AppError;
use hearth::service::auth::{register, ClientInfo, RegisterInput};
use reqwest::StatusCode;
use serde_json::json;

both_backends!(
    concurrent_first_registrations_make_one_admin,
    concurrent_creates_respect_the_quota,
    unique_violations_name_their_field,
    starved_pool_answers_503_with_retry_after,
    stop_stores_running_turns_as_cancelled,
    chats_and_messages_are_capped,
    lock_key_serializes_check_then_act,
    corrupt_stored_values_are_errors_not_defaults,
    deep_pages_are_refused_not_overflowed,
);

async fn deep_pages_are_refused_not_overflowed(b: Backend) {
    let s = TestServer::start(b).await;
    let u = s.user("pager").await;
    let t = Some(u.access.as_str());
    let (st, e) = s
        .get(&format!("/api/v1/projects?page={}&limit=100", i64::MAX), t)
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["error"]["details"]["field"], "page", "{e}");
    let (st, e) = s.get("/api/conversations?offset=1000001", t).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["details"]["field"], "offset", "{e}");
    let (st, _) = s.get("/api/conversations?offset=1000000", t).await;
    assert_eq!(st, StatusCode::OK);
}

/// A stored status outside its set, or JSON of the wrong shape, is an error on read (the
/// caller gets `internal_error`), never quietly read as a default.
async fn corrupt_stored_values_are_errors_not_defaults(b: Backend) {
    use hearth::db::schema::agents;
    let s = TestServer::start(b).await;
    let u = s.user("corrupt").await;
    let (_, r) = s
        .gql(
            Some(&u.access),
            "mutation { createAgent(input: {name: \"Caps\", capabilities: [\"search\"]}) { id capabilities } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r["data"]["createAgent"]["capabilities"],
        json!(["search"]),
        "{r}"
    );
    let q = "{ agents { name capabilities } }";
    let (_, ok) = s.gql(Some(&u.access), q, json!({})).await;
    assert!(ok["errors"].is_null(), "{ok}");
    let db = &s.state.db;
    async {
        hearth::db_run!(db, write, |conn| diesel::update(agents::table)
            .set(agents::capabilities.eq("{not json"))
            .execute(conn)
            .await
            .map_err(AppError::from))
    }
    .await
    .unwrap();
    let (_, r) = s.gql(Some(&u.access), q, json!({})).await;
    assert_eq!(TestServer::gql_code(&r), "internal_error", "{r}");
    async {
        hearth::db_run!(db, write, |conn| diesel::update(users::table)
            .filter(users::username.eq("corrupt"))
            .set(users::role.eq("root"))
            .execute(conn)
            .await
            .map_err(AppError::from))
    }
    .await
    .unwrap();
    let (st, _) = s.get("/api/auth/me", Some(&u.access)).await;
    assert_eq!(
        st,
        StatusCode::INTERNAL_SERVER_ERROR,
        "an unknown role is never read as `user`"
    );
}

/// Two write bodies that check, pause, then act: with the rule's lock taken first, the second
/// sees the first's row (on PostgreSQL's read-committed isolation, without it both would see
/// none); SQLite's single writer serializes them anyway.
async fn lock_key_serializes_check_then_act(b: Backend) {
    use hearth::db::{locks, BackendSql};
    let s = TestServer::start(b).await;
    s.user("locker").await;
    let race = |marker: &'static str| {
        let state = s.state.clone();
        tokio::spawn(async move {
            let db = &state.db;
            async {
                hearth::db_run!(db, write, |conn| {
                    conn.lock_key(locks::REGISTRATION).await?;
                    let seen: i64 = users::table
                        .filter(users::name.like("marker-%"))
                        .count()
                        .get_result(conn)
                        .await?;
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    diesel::update(users::table.filter(users::username.eq("locker")))
                        .set(users::name.eq(format!("marker-{marker}")))
                        .execute(conn)
                        .await?;
                    Ok::<i64, AppError>(seen)
                })
            }
            .await
        })
    };
    let (a, b2) = (race("a"), race("b"));
    let mut seen = [a.await.unwrap().unwrap(), b2.await.unwrap().unwrap()];
    seen.sort();
    assert_eq!(seen, [0, 1], "the second body saw the first one's write");
}

async fn chats_and_messages_are_capped(b: Backend) {
    let s = TestServer::start_with(b, |c| {
        c.max_chats_per_user = 2;
        c.max_messages_per_chat = 4;
    })
    .await;
    let mock = MockLlm::start().await;
    let admin = s.user("capped").await;
    let key = remote_model(&s, &admin.access, "mock", &mock.base_url, 8192).await;
    let chat = crate::chat_turns::new_chat(&s, &admin.access, Some(&key), None).await;
    crate::chat_turns::new_chat(&s, &admin.access, Some(&key), None).await;
    let (st, e) = s
        .post("/api/chats", Some(&admin.access), json!({"title": "third"}))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{e}");
    assert_eq!(e["code"], "quota_exceeded");
    for i in 0..2 {
        let (_, r) = s
            .gql(
                Some(&admin.access),
                "mutation($i: SendMessageInput!) { sendMessageAndWait(input: $i) { assistantMessage { status } } }",
                json!({"i": {"chatId": chat, "content": format!("turn {i}")}}),
            )
            .await;
        assert_eq!(
            r["data"]["sendMessageAndWait"]["assistantMessage"]["status"], "complete",
            "{r}"
        );
    }
    let r = send(&s, &admin.access, &chat, "one too many").await;
    assert_eq!(TestServer::gql_code(&r), "quota_exceeded", "{r}");
}

fn input(name: &str) -> RegisterInput {
    RegisterInput {
        email: format!("{name}@example.com"),
        password: "password123".into(),
        username: Some(name.into()),
        name: None,
        admin: false,
        setup_token: None,
    }
}

async fn concurrent_first_registrations_make_one_admin(b: Backend) {
    let s = TestServer::start(b).await;
    // From this machine, so the first of them may claim the instance.
    let client = ClientInfo {
        ip: Some("127.0.0.1".into()),
        ..ClientInfo::default()
    };
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (state, client) = (s.state.clone(), client.clone());
            tokio::spawn(async move {
                register(&state, input(&format!("first{i}")), false, &client).await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().expect("every registration succeeds");
    }
    let db = &s.state.db;
    let admins: i64 = async {
        hearth::db_run!(db, read, |conn| users::table
            .filter(users::role.eq("admin"))
            .count()
            .get_result(conn)
            .await
            .map_err(AppError::from))
    }
    .await
    .unwrap();
    assert_eq!(
        admins, 1,
        "exactly one of the racing first accounts is admin"
    );
}

async fn concurrent_creates_respect_the_quota(b: Backend) {
    let s = TestServer::start(b).await;
    let u = s.user("quota").await;
    let create = "mutation { createAgent(input: {name: \"Same\"}) { slug } }";
    let calls: Vec<_> = (0..60)
        .map(|_| {
            let (http, url, token) = (s.http.clone(), s.url("/graphql"), u.access.clone());
            tokio::spawn(async move {
                let r: serde_json::Value = http
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({"query": create}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                r
            })
        })
        .collect();
    let (mut slugs, mut refused) = (std::collections::HashSet::new(), 0);
    for c in calls {
        let r = c.await.unwrap();
        match r["data"]["createAgent"]["slug"].as_str() {
            Some(slug) => assert!(slugs.insert(slug.to_string()), "slug {slug} given twice"),
            None => {
                assert_eq!(TestServer::gql_code(&r), "quota_exceeded", "{r}");
                refused += 1;
            }
        }
    }
    assert_eq!(slugs.len(), 50, "the quota holds under concurrency");
    assert_eq!(refused, 10);
}

async fn unique_violations_name_their_field(b: Backend) {
    let s = TestServer::start(b).await;
    // Racing registrations of one name: one wins, every other is a 409 naming the field,
    // whether the early check or the constraint caught it.
    let calls: Vec<_> = (0..6)
        .map(|i| {
            let (http, url) = (s.http.clone(), s.url("/api/auth/register"));
            tokio::spawn(async move {
                let res = http
                    .post(url)
                    .json(&json!({"email": format!("dup{i}@example.com"), "password": "password123", "trigramme": "dup"}))
                    .send()
                    .await
                    .unwrap();
                (res.status(), res.json::<serde_json::Value>().await.unwrap())
            })
        })
        .collect();
    let mut created = 0;
    for c in calls {
        let (st, body) = c.await.unwrap();
        if st == StatusCode::CREATED {
            created += 1;
        } else {
            assert_eq!(st, StatusCode::CONFLICT, "{body}");
            assert_eq!(body["details"]["field"], "username", "{body}");
        }
    }
    assert_eq!(created, 1);
}

async fn starved_pool_answers_503_with_retry_after(b: Backend) {
    let s = TestServer::start_with(b, |c| {
        c.db_pool_timeout_secs = 1;
        c.db_pool_size = 1;
    })
    .await;
    let u = s.user("starved").await;
    // Hold the only connection a write can use.
    let held = match &s.state.db {
        hearth::db::Db::Sqlite(p) => Held::Sqlite(p.writer.get().await.unwrap()),
        hearth::db::Db::Pg(p) => Held::Pg(Box::new(p.get().await.unwrap())),
    };
    let res = s
        .http
        .post(s.url("/api/chats"))
        .bearer_auth(&u.access)
        .json(&json!({"title": "waits"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().get("retry-after").is_some());
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "unavailable", "{body}");
    drop(held);
    let (st, _) = s
        .post("/api/chats", Some(&u.access), json!({"title": "now"}))
        .await;
    assert!(st.is_success(), "the pool serves again once released");
}

#[allow(dead_code)]
enum Held {
    Sqlite(diesel_async::pooled_connection::deadpool::Object<hearth::db::SqliteConn>),
    Pg(Box<diesel_async::pooled_connection::deadpool::Object<diesel_async::AsyncPgConnection>>),
}

async fn stop_stores_running_turns_as_cancelled(b: Backend) {
    let mut s = TestServer::start(b).await;
    let mock = MockLlm::start().await;
    let admin = s.user("stopper").await;
    let key = remote_model(&s, &admin.access, "mock", &mock.base_url, 8192).await;
    let chat = crate::chat_turns::new_chat(&s, &admin.access, Some(&key), None).await;
    let mut ws = subscribe(&s, &admin.access, &chat).await;
    mock.push(slow(200, 50));
    let sent = send(&s, &admin.access, &chat, "Count for a long time").await;
    let answer: i64 = sent["data"]["sendMessage"]["assistantMessageId"]
        .as_str()
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("{sent}"));
    let mut seen = 0;
    while seen < 3 {
        let msg = next_json(&mut ws).await.expect("event");
        if msg["payload"]["data"]["chatEvents"]["type"] == "TOKEN" {
            seen += 1;
        }
    }
    s.stop_and_wait().await;
    let db = &s.state.db;
    let (status, content): (String, String) = async {
        hearth::db_run!(db, read, |conn| messages::table
            .find(answer)
            .select((messages::status, messages::content))
            .first(conn)
            .await
            .map_err(AppError::from))
    }
    .await
    .unwrap();
    assert_eq!(
        status, "cancelled",
        "a stop never leaves an answer `streaming`"
    );
    assert!(
        content.starts_with("t0 t1 t2 ") && content.len() < 200 * 3,
        "the text so far is kept: {content:?}"
    );
}

/// Repairing work a previous run left interrupted is the serving process's job: opening the
/// database (as `hearth migrate` or `hearth user create` do) leaves it alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_serving_process_repairs_interrupted_work() {
    use hearth::db::enums::{MessageRole, MessageStatus};
    use hearth::db::json::JsonText;
    use hearth::db::models::NewMessage;
    let mut s = TestServer::start(Backend::Sqlite).await;
    let u = s.user("crashy").await;
    let (_, c) = s
        .post("/api/chats", Some(&u.access), json!({"title": "t"}))
        .await;
    let chat = c["id"].as_i64().unwrap();
    let db = &s.state.db;
    // What a crash mid-answer leaves behind.
    async {
        hearth::db_run!(db, write, |conn| diesel::insert_into(messages::table)
            .values(NewMessage {
                chat_id: chat,
                role: MessageRole::Assistant,
                content: "half an ans",
                model: None,
                status: MessageStatus::Streaming,
                files: JsonText(Vec::new()),
                sources: JsonText(Vec::new()),
                created_at: chrono::Utc::now().naive_utc(),
            })
            .execute(conn)
            .await
            .map_err(AppError::from))
    }
    .await
    .unwrap();
    let config = (*s.state.config).clone();
    s.stop_and_wait().await;
    let _data = s.keep_data();
    drop(s);
    let streaming = |state: hearth::state::AppState| async move {
        let db = &state.db;
        async {
            hearth::db_run!(db, read, |conn| messages::table
                .filter(messages::status.eq(MessageStatus::Streaming))
                .count()
                .get_result::<i64>(conn)
                .await
                .map_err(AppError::from))
        }
        .await
        .unwrap()
    };
    // The stopped server's last connections let go of the database shortly after.
    let mut attempt = 0;
    let opened = loop {
        match hearth::App::build(config.clone()).await {
            Ok(state) => break state,
            Err(e) if attempt < 100 => {
                attempt += 1;
                assert!(format!("{e:#}").contains("in use"), "{e:#}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the database stays locked: {e:#}"),
        }
    };
    assert_eq!(
        streaming(opened.clone()).await,
        1,
        "opening alone repairs nothing"
    );
    hearth::App::prepare_to_serve(&opened).await.unwrap();
    assert_eq!(streaming(opened.clone()).await, 0, "serving repairs it");
}

/// A second process on the same SQLite file is refused while a server holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_per_sqlite_database() {
    let s = TestServer::start(Backend::Sqlite).await;
    let config = (*s.state.config).clone();
    let err = hearth::App::build(config)
        .await
        .err()
        .expect("a second process on the same database is refused");
    let msg = format!("{err:#}");
    assert!(msg.contains("in use by a running Hearth server"), "{msg}");
}

/// SQLite readers are `query_only`: a write in a `read` body fails instead of slipping past
/// the writer (and the cache's generation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_readers_cannot_write() {
    let s = TestServer::start(Backend::Sqlite).await;
    s.user("reader").await;
    let db = &s.state.db;
    let r: Result<usize, AppError> = async {
        hearth::db_run!(db, read, |conn| diesel::update(users::table)
            .set(users::name.eq("changed"))
            .execute(conn)
            .await
            .map_err(AppError::from))
    }
    .await;
    assert!(r.is_err(), "a write through a reader must fail");
    let r: Result<usize, AppError> = async {
        hearth::db_run!(db, write, |conn| diesel::update(users::table)
            .set(users::name.eq("changed"))
            .execute(conn)
            .await
            .map_err(AppError::from))
    }
    .await;
    assert_eq!(r.unwrap(), 1);
}

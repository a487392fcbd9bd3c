//! Test harness: a real Hearth server on 127.0.0.1:0 over a fresh SQLite file or a fresh
//! PostgreSQL database (on the cluster `make test` starts; `HEARTH_TEST_PG_URL`).

use futures_util::StreamExt;
use hearth::config::Config;
use hearth::state::AppState;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// JWT secret the test servers sign with, so tests can mint their own tokens.
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs one async test body on both backends, as two test functions.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::support::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::support::Backend::Postgres).await
            }
        }
    )*};
}

/// A running server and an HTTP client for it.
pub struct TestServer {
    pub base: String,
    pub http: Client,
    pub state: AppState,
    dir: Option<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    serving: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// The PostgreSQL database made for this server, dropped with it.
    pg_name: Option<String>,
}

/// A logged-in user.
#[derive(Debug, Clone)]
pub struct Login {
    pub user_id: i64,
    pub access: String,
    pub refresh: String,
    pub session_id: String,
}

pub async fn pg_database() -> String {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let admin = std::env::var("HEARTH_TEST_PG_URL").expect(
        "HEARTH_TEST_PG_URL is not set: PostgreSQL tests need a server. Run `make test`, which starts one.",
    );
    let name = format!("hearth_t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = AsyncPgConnection::establish(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {admin}: {e} (run `make test`)"));
    conn.batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    let base = admin.rsplit_once('/').expect("database URL has a path").0;
    format!("{base}/{name}")
}

impl TestServer {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            jwt_secret: Some(JWT_SECRET.into()),
            bind: "127.0.0.1:0".into(),
            // Tests register many accounts from one address; the limit has its own test.
            register_rate_limit: 0,
            // Tests call doors far faster than the seeds' budgets; limits have their own tests.
            rate_limits: hearth::config::RateLimitsConfig::off(),
            ..Config::default()
        };
        // The bundled example plugins are installed only where a test asks for them.
        config.plugins.bundled_dir = dir.path().join("no-bundled-plugins");
        config.database_url = Some(match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("hearth.db").display()),
            Backend::Postgres => pg_database().await,
        });
        let pg_name = (backend == Backend::Postgres)
            .then(|| {
                config
                    .database_url
                    .as_deref()
                    .and_then(|u| u.rsplit('/').next())
            })
            .flatten()
            .map(str::to_string);
        tweak(&mut config);
        config.validate().expect("valid test config");
        let (state, app) = hearth::http::app_for(config).await.expect("app builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let signal = async {
            let _ = rx.await;
        };
        let serving = tokio::spawn(hearth::http::run_until(
            listener,
            app,
            state.clone(),
            signal,
        ));
        let http = Client::builder().cookie_store(false).build().unwrap();
        TestServer {
            base: format!("http://{addr}"),
            http,
            state,
            dir: Some(dir),
            shutdown: Some(tx),
            serving: Some(serving),
            pg_name,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a JSON request with an optional bearer token; returns status and JSON body
    /// (`Value::Null` for an empty body).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let text = res.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// Announces a JSON body of `declared_len` bytes without sending it, over a raw socket,
    /// and returns the status and body of the answer. The server must refuse on the header
    /// alone; sending a real oversize body would race the server's close against the client's
    /// writes and make the test flaky.
    pub async fn post_declared_size(
        &self,
        path: &str,
        token: &str,
        declared_len: usize,
    ) -> (u16, Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.base.trim_start_matches("http://");
        let mut sock = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {declared_len}\r\nConnection: close\r\n\r\n"
        );
        sock.write_all(head.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            sock.read_to_end(&mut raw),
        )
        .await
        .expect("answer before the body is sent")
        .unwrap();
        let text = String::from_utf8_lossy(&raw);
        let status: u16 = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// Registers (seed 001 shape) and logs in (seed 000 shape).
    pub async fn user(&self, username: &str) -> Login {
        let email = format!("{username}@example.com");
        let (s, b) = self
            .post(
                "/api/auth/register",
                None,
                json!({"email": email, "password": "password123", "trigramme": username}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "register {username}: {b}");
        self.login(username, "password123").await
    }

    pub async fn login(&self, username: &str, password: &str) -> Login {
        let (s, b) = self
            .post(
                "/api/auth/login",
                None,
                json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "login {username}: {b}");
        Login {
            user_id: b["user"]["id"].as_i64().unwrap(),
            access: b["access_token"].as_str().unwrap().into(),
            refresh: b["refresh_token"].as_str().unwrap().into(),
            session_id: b["session_id"].as_str().unwrap().into(),
        }
    }

    /// Runs a GraphQL operation; returns the HTTP status and the response body.
    pub async fn gql(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> (StatusCode, Value) {
        self.post(
            "/graphql",
            token,
            json!({"query": query, "variables": variables}),
        )
        .await
    }

    /// The `extensions.code` of the first GraphQL error.
    pub fn gql_code(body: &Value) -> &str {
        body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or("<no error>")
    }
}

impl TestServer {
    /// Starts a graceful shutdown, as SIGTERM does.
    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Keeps the data directory (SQLite file, secrets) past the server's end; the caller
    /// owns it from now on.
    pub fn keep_data(&mut self) -> tempfile::TempDir {
        self.dir.take().expect("data dir still owned by the server")
    }

    /// Stops as SIGTERM does and waits until the server has stored what it held.
    pub async fn stop_and_wait(&mut self) {
        self.stop();
        if let Some(serving) = self.serving.take() {
            serving
                .await
                .expect("server task")
                .expect("server stops cleanly");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // The database goes with the server (FORCE ends the connections its pool still has).
        if let Some(name) = self.pg_name.take() {
            let admin = std::env::var("HEARTH_TEST_PG_URL").unwrap_or_default();
            let _ = std::thread::spawn(move || {
                use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(mut conn) = AsyncPgConnection::establish(&admin).await {
                        let _ = conn
                            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// A client WebSocket.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/graphql/ws` with the graphql-transport-ws protocol.
pub async fn ws_connect(s: &TestServer) -> Ws {
    ws_connect_base(&s.base).await
}

/// Opens `/graphql/ws` of the server at `base` (`http://host:port`).
pub async fn ws_connect_base(base: &str) -> Ws {
    let url = format!("{}/graphql/ws", base.replace("http://", "ws://"));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    tokio_tungstenite::connect_async(req)
        .await
        .expect("ws connects")
        .0
}

/// The next JSON message, skipping server pings; `None` once closed.
pub async fn next_json(ws: &mut Ws) -> Option<Value> {
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("ws message in time")?;
        match msg.ok()? {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "ping" {
                    continue;
                }
                return Some(v);
            }
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

/// Sends one JSON message on a client WebSocket.
pub async fn ws_send(ws: &mut Ws, msg: Value) {
    use futures_util::SinkExt;
    ws.send(Message::Text(msg.to_string().into()))
        .await
        .expect("ws send");
}

/// Connects with `token` in `connection_init`, waits for the ack, subscribes `query` as `id`
/// and gives the server a moment to register the subscription.
pub async fn ws_subscribed(s: &TestServer, token: &str, id: &str, query: &str) -> Ws {
    let mut ws = ws_connect(s).await;
    ws_send(
        &mut ws,
        serde_json::json!({"type": "connection_init", "payload": {"token": token}}),
    )
    .await;
    assert_eq!(
        next_json(&mut ws).await.expect("ack")["type"],
        "connection_ack"
    );
    let before = subscribers(s);
    ws_send(
        &mut ws,
        serde_json::json!({"id": id, "type": "subscribe", "payload": {"query": query}}),
    )
    .await;
    wait_for_subscribers(s, before + 1).await;
    ws
}

/// Live subscriptions on the server: chat-change receivers and chat-turn listeners.
pub fn subscribers(s: &TestServer) -> usize {
    s.state.events.receivers() + s.state.turns.listeners()
}

/// Waits (up to 10 s) until the server holds at least `n` subscribers.
pub async fn wait_for_subscribers(s: &TestServer, n: usize) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while subscribers(s) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the subscription was not registered in time"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Seed 003's cookie login (`POST /auth/login`, password `password123`): the session
/// cookie and its CSRF token.
pub async fn cookie_login(s: &TestServer, user: &str) -> (String, String) {
    let res = s
        .http
        .post(s.url("/auth/login"))
        .json(&json!({"user": user, "password": "password123"}))
        .send()
        .await
        .unwrap();
    let cookie = cookie_of(&res);
    let csrf = res.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    (cookie, csrf)
}

/// The `access_token=…` pair of a login response's `Set-Cookie` (checked HttpOnly).
pub fn cookie_of(res: &reqwest::Response) -> String {
    let set = res
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect::<Vec<_>>();
    let c = set
        .iter()
        .find(|c| c.starts_with("access_token="))
        .expect("access_token cookie set");
    assert!(c.contains("HttpOnly"), "{c}");
    c.split(';').next().unwrap().to_string()
}

/// Connects to `/graphql/ws`, sends `connection_init` with `payload` and waits for the ack.
pub async fn ws_init(s: &TestServer, payload: Value) -> Ws {
    let mut ws = ws_connect(s).await;
    ws_send(
        &mut ws,
        serde_json::json!({"type": "connection_init", "payload": payload}),
    )
    .await;
    assert_eq!(
        next_json(&mut ws).await.expect("ack")["type"],
        "connection_ack"
    );
    ws
}

/// Runs one operation on an open graphql-ws socket and returns its `next` payload (or the
/// `error` frame); `None` when the socket closed instead.
pub async fn ws_op(ws: &mut Ws, id: &str, query: &str, variables: Value) -> Option<Value> {
    ws_send(
        ws,
        serde_json::json!({"id": id, "type": "subscribe", "payload": {"query": query, "variables": variables}}),
    )
    .await;
    loop {
        let m = next_json(ws).await?;
        if m["id"] == id && (m["type"] == "next" || m["type"] == "error") {
            return Some(m);
        }
    }
}

/// Waits (up to 10 s) for the server to close the socket and returns the close code.
pub async fn ws_close_code(ws: &mut Ws) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("the server closes the socket in time");
        match msg {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

/// The caller a token authenticates as, for seeding through the services directly.
pub async fn caller_of(s: &TestServer, token: &str) -> hearth::auth::Caller {
    hearth::service::auth::authenticate(
        &s.state,
        hearth::service::auth::Credential::Bearer(token.to_string()),
    )
    .await
    .expect("a valid token")
}

/// The Python of the test clients' virtual environment (the OpenAI SDK, python-socketio),
/// installed by `scripts/setup.sh --with-clients`; missing, the test fails saying so.
pub fn client_python() -> String {
    let cache = std::env::var("HEARTH_CACHE").unwrap_or_else(|_| {
        format!(
            "{}/.cache/hearth",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let python = format!("{cache}/clients-venv/bin/python");
    assert!(
        std::path::Path::new(&python).exists(),
        "{python} is missing: run `make test` (scripts/setup.sh --with-clients installs the test clients)"
    );
    python
}

//! The plugin host with real Extism and the example plugins from `plugins/` (built to wasm32
//! by the set-up): upload → enable → call → disable → reload → delete over seed 003's doors
//! and GraphQL; state and key-value data across restarts and upgrades; the sandbox (a loop
//! that never ends, memory that grows, a trap, more calls than instances); refused uploads
//! that store nothing; who may do what; HTTP only to allowed hosts, redirects included.

use crate::both_backends;
use crate::support::{Backend, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The compiled example module `name` (panics, naming the set-up, when it was not built).
pub fn wasm(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/plugins/target/wasm32-unknown-unknown/release/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("{path}: {e}. The example plugins are built by ./scripts/setup.sh (make setup)")
    })
}

/// The example plugin's manifest.
pub fn manifest(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/plugins/{name}/plugin.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// A bundle's files: `plugin.toml` (edited) and the module.
pub fn files(name: &str, edit: impl FnOnce(String) -> String) -> BTreeMap<String, Vec<u8>> {
    let mut f = BTreeMap::new();
    f.insert("plugin.toml".to_string(), edit(manifest(name)).into_bytes());
    f.insert("plugin.wasm".to_string(), wasm(name));
    f
}

/// A ZIP bundle of the example plugin `name` with its manifest edited.
pub fn bundle(name: &str, edit: impl FnOnce(String) -> String) -> Vec<u8> {
    hearth::plugins::bundle::pack(&files(name, edit)).unwrap()
}

/// `POST /plugins/upload` (seed 003) with `file` and extra form fields.
pub async fn upload(
    s: &TestServer,
    token: Option<&str>,
    bytes: Vec<u8>,
    fields: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name("bundle.zip"),
    );
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    let mut req = s.http.post(s.url("/plugins/upload")).multipart(form);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Installs and enables a bundle as `admin`; panics on refusal.
pub async fn install_running(s: &TestServer, admin: &str, bytes: Vec<u8>) -> Value {
    let (st, b) = upload(s, Some(admin), bytes, &[]).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let name = b["name"].as_str().unwrap().to_string();
    let (st, b) = s
        .post(&format!("/plugins/{name}/enable"), Some(admin), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["state"], "running", "{b}");
    b
}

const CALL: &str = "mutation($n: String!, $f: String!, $i: JSON) { callPlugin(name: $n, function: $f, input: $i) }";

/// `callPlugin`; the HTTP status and body.
pub async fn call(
    s: &TestServer,
    token: &str,
    plugin: &str,
    function: &str,
    input: Value,
) -> Value {
    let (_, b) = s
        .gql(
            Some(token),
            CALL,
            json!({ "n": plugin, "f": function, "i": input }),
        )
        .await;
    b
}

/// Waits until the last clone of a stopped server's state is gone (its SQLite lock free).
pub(crate) async fn wait_unlocked(lock: &std::path::Path) {
    for _ in 0..100 {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(lock)
            .unwrap();
        if file.try_lock().is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{} is still locked 5 s after the server stopped",
        lock.display()
    );
}

fn plugins_dir(s: &TestServer) -> std::path::PathBuf {
    s.state.config.data_dir.join("plugins")
}

async fn round_trip(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = s.user("admin").await;
    let a = admin.access.as_str();

    let (st, b) = upload(&s, Some(a), bundle("tasks", |m| m), &[]).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    assert_eq!(b["name"], "tasks");
    assert_eq!(b["state"], "disabled");
    assert_eq!(b["meta"]["version"], "1.0.0");
    assert_eq!(
        b["meta"]["tools"],
        json!(["add_task", "list_tasks", "complete_task"])
    );
    assert_eq!(b["meta"]["sha256"].as_str().unwrap().len(), 64);
    let (_, list) = s.get("/plugins", Some(a)).await;
    assert_eq!(list["plugins"][0]["name"], "tasks", "{list}");

    // Disabled: no tools, no calls.
    let (_, tools) = s.get("/tools", Some(a)).await;
    assert_eq!(tools["count"], 0, "{tools}");
    let r = call(&s, a, "tasks", "list_tasks", json!({})).await;
    assert_eq!(TestServer::gql_code(&r), "plugin_not_running", "{r}");

    // Seed 003's own example: enable by name.
    let (st, b) = s.post("/plugins/tasks/enable", Some(a), json!({})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["state"], "running");
    let r = call(
        &s,
        a,
        "tasks",
        "add_task",
        json!({ "title": "water the plants" }),
    )
    .await;
    assert_eq!(r["data"]["callPlugin"]["title"], "water the plants", "{r}");
    assert_eq!(r["data"]["callPlugin"]["id"], 1);
    let r = call(&s, a, "tasks", "add_task", json!({ "title": "  " })).await;
    assert_eq!(TestServer::gql_code(&r), "plugin_error", "{r}");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("title must not be empty"),
        "{r}"
    );
    let r = call(&s, a, "tasks", "list_tasks", json!({})).await;
    assert_eq!(r["data"]["callPlugin"]["count"], 1, "{r}");
    let r = call(&s, a, "tasks", "no_such_export", json!({})).await;
    assert_eq!(TestServer::gql_code(&r), "not_found", "{r}");

    // Tools: GraphQL and seed 000's shape.
    let (_, t) = s
        .gql(
            Some(a),
            "{ tools { name plugin category parameters } }",
            json!({}),
        )
        .await;
    assert_eq!(t["data"]["tools"].as_array().unwrap().len(), 3, "{t}");
    let (_, tools) = s.get("/tools", Some(a)).await;
    assert_eq!(tools["count"], 3, "{tools}");
    let (st, add) = s.get("/tools/add_task", Some(a)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(add["parameters"]["title"], "string (required)", "{add}");
    assert_eq!(add["category"], "productivity");
    assert_eq!(add["input_schema"]["required"], json!(["title"]));
    let (st, _) = s.get("/tools/nope", Some(a)).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, h) = s.get("/health", None).await;
    assert_eq!(h["plugins_count"], 1, "{h}");

    // Disable stops calls; reload swaps instances of a running plugin; data stays.
    let (_, b) = s.post("/plugins/tasks/disable", Some(a), json!({})).await;
    assert_eq!(b["state"], "disabled");
    let r = call(&s, a, "tasks", "list_tasks", json!({})).await;
    assert_eq!(TestServer::gql_code(&r), "plugin_not_running", "{r}");
    let (st, b) = s.post("/plugins/tasks/start", Some(a), json!({})).await;
    assert_eq!(st, StatusCode::CONFLICT, "{b}");
    s.post("/plugins/tasks/enable", Some(a), json!({})).await;
    let (_, b) = s.post("/plugins/tasks/stop", Some(a), json!({})).await;
    assert_eq!(b["state"], "stopped");
    let (_, b) = s.post("/plugins/tasks/start", Some(a), json!({})).await;
    assert_eq!(b["state"], "running");
    let (st, b) = s.post("/plugins/tasks/reload", Some(a), json!({})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["state"], "running");
    let r = call(&s, a, "tasks", "list_tasks", json!({})).await;
    assert_eq!(r["data"]["callPlugin"]["count"], 1, "{r}");
    let (st, _) = s.post("/plugins/tasks/explode", Some(a), json!({})).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Delete removes files, data and tools.
    assert!(plugins_dir(&s).join("tasks").exists());
    let (st, b) = s
        .call(reqwest::Method::DELETE, "/plugins/tasks", Some(a), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert!(!plugins_dir(&s).join("tasks").exists());
    let (_, list) = s.get("/plugins", Some(a)).await;
    assert_eq!(list["plugins"], json!([]));
    let (_, tools) = s.get("/tools", Some(a)).await;
    assert_eq!(tools["count"], 0);
    let (st, _) = s
        .call(reqwest::Method::DELETE, "/plugins/tasks", Some(a), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // A fresh install starts with empty data.
    install_running(&s, a, bundle("tasks", |m| m)).await;
    let r = call(&s, a, "tasks", "list_tasks", json!({})).await;
    assert_eq!(r["data"]["callPlugin"]["count"], 0, "{r}");
}

async fn restart_and_upgrade(backend: Backend) {
    let mut s = TestServer::start(backend).await;
    let admin = s.user("admin").await;
    let a = admin.access.clone();
    install_running(&s, &a, bundle("tasks", |m| m)).await;
    install_running(&s, &a, bundle("moderation", |m| m)).await;
    s.post("/plugins/moderation/stop", Some(&a), json!({}))
        .await;
    call(&s, &a, "tasks", "add_task", json!({ "title": "survive" })).await;

    let url = s.state.config.database_url();
    s.stop_and_wait().await;
    let dir = s.keep_data();
    let _first = match backend {
        Backend::Sqlite => {
            drop(s);
            None
        }
        Backend::Postgres => Some(s),
    };
    let data = dir.path().to_path_buf();
    if backend == Backend::Sqlite {
        wait_unlocked(&data.join("hearth.db.lock")).await;
    }
    let s = TestServer::start_with(backend, |c| {
        c.data_dir = data;
        c.database_url = Some(url);
    })
    .await;
    let (_, list) = s.get("/plugins", Some(&a)).await;
    let states: Vec<(String, String)> = list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().into(),
                p["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            ("moderation".into(), "stopped".into()),
            ("tasks".into(), "running".into())
        ]
    );
    let r = call(&s, &a, "tasks", "list_tasks", json!({})).await;
    assert_eq!(
        r["data"]["callPlugin"]["tasks"][0]["title"], "survive",
        "{r}"
    );

    // An upgrade keeps the state and the key-value data; an equal or lower version is refused.
    let (st, b) = upload(
        &s,
        Some(&a),
        bundle("tasks", |m| m.replace("1.0.0", "1.1.0")),
        &[],
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    assert_eq!(b["meta"]["version"], "1.1.0");
    assert_eq!(b["state"], "running");
    let r = call(&s, &a, "tasks", "list_tasks", json!({})).await;
    assert_eq!(
        r["data"]["callPlugin"]["tasks"][0]["title"], "survive",
        "{r}"
    );
    let (st, b) = upload(&s, Some(&a), bundle("tasks", |m| m), &[]).await;
    assert_eq!(st, StatusCode::CONFLICT, "{b}");
    // A failed upgrade (a declared export the module lacks) leaves the old version running.
    let broken = bundle("tasks", |m| {
        m.replace("1.0.0", "2.0.0").replace(
            "function = \"list_tasks\"",
            "function = \"list_everything\"",
        )
    });
    let (st, b) = upload(&s, Some(&a), broken, &[]).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    assert!(b.to_string().contains("list_everything"), "{b}");
    let (_, list) = s.get("/plugins", Some(&a)).await;
    let tasks = list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "tasks")
        .unwrap()
        .clone();
    assert_eq!(tasks["meta"]["version"], "1.1.0");
    assert_eq!(tasks["state"], "running");
    let r = call(&s, &a, "tasks", "list_tasks", json!({})).await;
    assert_eq!(r["data"]["callPlugin"]["count"], 1, "{r}");
}

/// The sandbox: time and memory limits, traps, a queue beyond the pool, repeated crashes.
async fn sandbox(backend: Backend) {
    let s = TestServer::start_with(backend, |c| {
        c.plugins.pool_size = 2;
        c.plugins.crash_limit = 6;
    })
    .await;
    let admin = s.user("admin").await;
    let a = admin.access.as_str();
    install_running(
        &s,
        a,
        bundle("hostile", |m| {
            m.replace("timeout_ms = 1000", "timeout_ms = 500")
        }),
    )
    .await;

    // An endless loop ends at the time limit while other requests are served.
    let spin = call(&s, a, "hostile", "spin", json!({}));
    let others = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = Instant::now();
        let (st, _) = s.get("/health", None).await;
        let r = call(&s, a, "hostile", "echo", json!({ "x": 1 })).await;
        (st, r, t.elapsed())
    };
    let started = Instant::now();
    let (spun, (st, echoed, other_took)) = tokio::join!(spin, others);
    assert_eq!(TestServer::gql_code(&spun), "plugin_timeout", "{spun}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(st, StatusCode::OK);
    assert_eq!(echoed["data"]["callPlugin"], json!({ "x": 1 }), "{echoed}");
    assert!(other_took < Duration::from_millis(450), "{other_took:?}");

    // Memory stops at the cap; a trap is an error; the next call works.
    let r = call(&s, a, "hostile", "grow", json!({})).await;
    assert_eq!(TestServer::gql_code(&r), "plugin_crashed", "{r}");
    let r = call(&s, a, "hostile", "trap", json!({})).await;
    assert_eq!(TestServer::gql_code(&r), "plugin_crashed", "{r}");
    let r = call(&s, a, "hostile", "echo", json!({ "after": "trap" })).await;
    assert_eq!(r["data"]["callPlugin"]["after"], "trap", "{r}");

    // More calls than instances queue and all finish.
    let calls = (0..8).map(|i| {
        call(
            &s,
            a,
            "hostile",
            "work",
            json!({ "iterations": 200_000 + i }),
        )
    });
    let results = futures_util::future::join_all(calls).await;
    for r in &results {
        assert!(r["data"]["callPlugin"]["acc"].is_u64(), "{r}");
    }

    // A reload swaps the instances; the call in flight finishes on the old one.
    let long = call(
        &s,
        a,
        "hostile",
        "work",
        json!({ "iterations": 30_000_000 }),
    );
    let reload = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        s.post("/plugins/hostile/reload", Some(a), json!({})).await
    };
    let (long, (st, reloaded)) = tokio::join!(long, reload);
    assert_eq!(st, StatusCode::OK, "{reloaded}");
    assert!(long["data"]["callPlugin"]["acc"].is_u64(), "{long}");

    // Repeated crashes mark the plugin failed; start runs it again.
    for _ in 0..6 {
        call(&s, a, "hostile", "trap", json!({})).await;
    }
    let (_, list) = s.get("/plugins", Some(a)).await;
    assert_eq!(list["plugins"][0]["state"], "failed", "{list}");
    assert!(
        list["plugins"][0]["meta"]["failure"]
            .as_str()
            .unwrap()
            .contains("crashed"),
        "{list}"
    );
    let r = call(&s, a, "hostile", "echo", json!({})).await;
    assert_eq!(TestServer::gql_code(&r), "plugin_not_running", "{r}");
    let (_, b) = s.post("/plugins/hostile/start", Some(a), json!({})).await;
    assert_eq!(b["state"], "running", "{b}");
    let r = call(&s, a, "hostile", "echo", json!({ "back": true })).await;
    assert_eq!(r["data"]["callPlugin"]["back"], true, "{r}");
}

both_backends!(round_trip, restart_and_upgrade, sandbox);

/// A ZIP with raw entry names (the writer would refuse some of them).
fn zip_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        out.start_file(name.to_string(), options).unwrap();
        out.write_all(bytes).unwrap();
    }
    out.finish().unwrap().into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_uploads_store_nothing() {
    let (secret, public) = hearth::plugins::signature::keygen();
    let (other_secret, _) = hearth::plugins::signature::keygen();
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        c.plugins.max_upload_bytes = 600 * 1024;
        c.plugins.trusted_keys = vec![public.clone()];
    })
    .await;
    let admin = s.user("admin").await;
    let a = admin.access.as_str();
    let toml = manifest("tasks");
    let module = wasm("tasks");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "unknown key",
            bundle("tasks", |m| m.replace("description =", "summary =")),
            "summary",
        ),
        (
            "bad version",
            bundle("tasks", |m| m.replace("1.0.0", "one")),
            "semantic version",
        ),
        (
            "bad wasm",
            zip_with(&[
                ("plugin.toml", toml.as_bytes()),
                ("plugin.wasm", b"\0asm\x01\0\0\0garbage"),
            ]),
            "does not compile",
        ),
        (
            "not wasm",
            zip_with(&[
                ("plugin.toml", toml.as_bytes()),
                ("plugin.wasm", b"MZ not a module"),
            ]),
            "not a WebAssembly module",
        ),
        (
            "missing export",
            bundle("tasks", |m| {
                m.replace("function = \"add_task\"", "function = \"add_many\"")
            }),
            "add_many",
        ),
        (
            "no manifest",
            zip_with(&[("plugin.wasm", &module)]),
            "plugin.toml",
        ),
        (
            "parent path",
            zip_with(&[
                ("plugin.toml", toml.as_bytes()),
                ("plugin.wasm", &module),
                ("../evil.txt", b"x"),
            ]),
            "../evil.txt",
        ),
        (
            "absolute path",
            zip_with(&[
                ("plugin.toml", toml.as_bytes()),
                ("plugin.wasm", &module),
                ("/etc/evil", b"x"),
            ]),
            "/etc/evil",
        ),
        (
            "zip bomb",
            zip_with(&[
                ("plugin.toml", toml.as_bytes()),
                ("plugin.wasm", &module),
                ("bomb.bin", &vec![0u8; 80 * 1024 * 1024]),
            ]),
            "ZIP bomb",
        ),
        ("bare wasm without name", module.clone(), "name"),
        ("neither", b"hello".to_vec(), "neither a ZIP"),
        (
            "bad signature file",
            {
                let mut f = files("tasks", |m| m);
                f.insert("plugin.sig".into(), b"!!".to_vec());
                hearth::plugins::bundle::pack(&f).unwrap()
            },
            "plugin.sig",
        ),
    ];
    for (what, bytes, needle) in cases {
        let (st, b) = upload(&s, Some(a), bytes, &[]).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{what}: {b}");
        assert!(
            b.to_string().contains(needle),
            "{what}: expected {needle:?} in {b}"
        );
    }
    // Oversize is 413.
    let (st, b) = upload(&s, Some(a), vec![b'P'; 700 * 1024], &[]).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    let (_, list) = s.get("/plugins", Some(a)).await;
    assert_eq!(list["plugins"], json!([]), "{list}");
    assert!(
        !plugins_dir(&s).exists() || std::fs::read_dir(plugins_dir(&s)).unwrap().next().is_none(),
        "nothing stored"
    );

    // A bare module with a name and a version installs without tools.
    let (st, b) = upload(
        &s,
        Some(a),
        wasm("hostile"),
        &[("name", "bare"), ("version", "0.1.0")],
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    assert_eq!(b["meta"]["tools"], json!([]));

    // Signatures: a trusted one is recorded; an untrusted one is ignored unless required.
    let mut f = files("moderation", |m| m);
    f.insert(
        "plugin.sig".into(),
        hearth::plugins::signature::sign(&f, &secret)
            .unwrap()
            .into_bytes(),
    );
    let (st, b) = upload(&s, Some(a), hearth::plugins::bundle::pack(&f).unwrap(), &[]).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    assert_eq!(b["meta"]["signed_by"], public.as_str());
    let mut f = files("web_fetch", |m| m);
    f.insert(
        "plugin.sig".into(),
        hearth::plugins::signature::sign(&f, &other_secret)
            .unwrap()
            .into_bytes(),
    );
    let (st, b) = upload(&s, Some(a), hearth::plugins::bundle::pack(&f).unwrap(), &[]).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    assert_eq!(b["meta"]["signed_by"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_signatures() {
    let (secret, public) = hearth::plugins::signature::keygen();
    let (other_secret, _) = hearth::plugins::signature::keygen();
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        c.plugins.trusted_keys = vec![public.clone()];
        c.plugins.require_signature = true;
    })
    .await;
    let admin = s.user("admin").await;
    let a = admin.access.as_str();
    let (st, b) = upload(&s, Some(a), bundle("tasks", |m| m), &[]).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    assert!(b.to_string().contains("not signed"), "{b}");
    let mut f = files("tasks", |m| m);
    f.insert(
        "plugin.sig".into(),
        hearth::plugins::signature::sign(&f, &other_secret)
            .unwrap()
            .into_bytes(),
    );
    let (st, b) = upload(&s, Some(a), hearth::plugins::bundle::pack(&f).unwrap(), &[]).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    assert!(b.to_string().contains("not by a trusted key"), "{b}");
    // Tampering after signing breaks the signature.
    let mut f = files("tasks", |m| m);
    let sig = hearth::plugins::signature::sign(&f, &secret).unwrap();
    f.insert(
        "plugin.toml".into(),
        manifest("tasks").replace("A to-do", "An evil").into_bytes(),
    );
    f.insert("plugin.sig".into(), sig.into_bytes());
    let (st, _) = upload(&s, Some(a), hearth::plugins::bundle::pack(&f).unwrap(), &[]).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let mut f = files("tasks", |m| m);
    f.insert(
        "plugin.sig".into(),
        hearth::plugins::signature::sign(&f, &secret)
            .unwrap()
            .into_bytes(),
    );
    let (st, b) = upload(&s, Some(a), hearth::plugins::bundle::pack(&f).unwrap(), &[]).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    assert_eq!(b["meta"]["signed_by"], public.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_may_do_what() {
    let s = TestServer::start(Backend::Sqlite).await;
    let admin = s.user("admin").await;
    let a = admin.access.as_str();
    let user = s.user("bob").await;
    let u = user.access.as_str();

    // No credentials: 401 everywhere.
    for (method, path) in [
        (reqwest::Method::GET, "/plugins"),
        (reqwest::Method::POST, "/plugins/tasks/enable"),
        (reqwest::Method::DELETE, "/plugins/tasks"),
        (reqwest::Method::GET, "/tools"),
        (reqwest::Method::GET, "/tools/add_task"),
    ] {
        let (st, _) = s.call(method.clone(), path, None, None).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    let (st, _) = upload(&s, None, bundle("tasks", |m| m), &[]).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (_, r) = s
        .gql(
            None,
            CALL,
            json!({ "n": "tasks", "f": "list_tasks", "i": {} }),
        )
        .await;
    assert_eq!(TestServer::gql_code(&r), "unauthenticated", "{r}");

    // Malformed: a multipart body without the `file` part, a body that is not multipart.
    let form = reqwest::multipart::Form::new().text("name", "x");
    let res = s
        .http
        .post(s.url("/plugins/upload"))
        .bearer_auth(a)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let (st, _) = s
        .post("/plugins/upload", Some(a), json!({ "file": "x" }))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (_, list) = s.get("/plugins", Some(a)).await;
    assert_eq!(list["plugins"], json!([]), "nothing stored");

    // A user cannot upload or act.
    let (st, _) = upload(&s, Some(u), bundle("tasks", |m| m), &[]).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    install_running(&s, a, bundle("tasks", |m| m)).await;
    for action in ["enable", "disable", "start", "stop", "reload"] {
        let (st, _) = s
            .post(&format!("/plugins/tasks/{action}"), Some(u), json!({}))
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{action}");
    }
    let (st, _) = s
        .call(reqwest::Method::DELETE, "/plugins/tasks", Some(u), None)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // An ungranted plugin is invisible: not listed, no tools, calls are not_found.
    let (_, list) = s.get("/plugins", Some(u)).await;
    assert_eq!(list["plugins"], json!([]));
    let (_, tools) = s.get("/tools", Some(u)).await;
    assert_eq!(tools["count"], 0);
    let r = call(&s, u, "tasks", "list_tasks", json!({})).await;
    assert_eq!(TestServer::gql_code(&r), "not_found", "{r}");
    let (_, r) = s
        .gql(Some(u), "{ plugin(name: \"tasks\") { name } }", json!({}))
        .await;
    assert_eq!(TestServer::gql_code(&r), "not_found", "{r}");
    // Malformed input.
    let r = call(&s, a, "tasks", "add_task", json!("not an object")).await;
    assert_eq!(TestServer::gql_code(&r), "plugin_error", "{r}");
    let big = "x".repeat(1_500_000);
    let r = call(&s, a, "tasks", "add_task", json!({ "title": big })).await;
    assert_eq!(
        TestServer::gql_code(&r),
        "payload_too_large",
        "oversize input refused"
    );

    // Granted to bob: he sees and calls it, as himself.
    let grant =
        "mutation($u: ID) { grantPlugin(name: \"tasks\", userId: $u) { name grantedToAll } }";
    let (_, r) = s
        .gql(Some(u), grant, json!({ "u": user.user_id.to_string() }))
        .await;
    assert_eq!(TestServer::gql_code(&r), "forbidden", "{r}");
    let (_, r) = s
        .gql(Some(a), grant, json!({ "u": user.user_id.to_string() }))
        .await;
    assert_eq!(r["data"]["grantPlugin"]["name"], "tasks", "{r}");
    let r = call(&s, u, "tasks", "add_task", json!({ "title": "bob's" })).await;
    assert_eq!(r["data"]["callPlugin"]["title"], "bob's", "{r}");
    let (_, tools) = s.get("/tools", Some(u)).await;
    assert_eq!(tools["count"], 3);
    // Revoked: gone again.
    let revoke =
        "mutation($u: ID) { grantPlugin(name: \"tasks\", userId: $u, granted: false) { name } }";
    s.gql(Some(a), revoke, json!({ "u": user.user_id.to_string() }))
        .await;
    let r = call(&s, u, "tasks", "list_tasks", json!({})).await;
    assert_eq!(TestServer::gql_code(&r), "not_found", "{r}");
}

/// A small HTTP server: `/page` answers, `/redirect?to=URL` redirects.
async fn web_server() -> std::net::SocketAddr {
    use axum::extract::Query;
    use axum::response::Redirect;
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/page", get(|| async { "hello from the allowed host" }))
        .route(
            "/redirect",
            get(
                |Query(q): Query<std::collections::HashMap<String, String>>| async move {
                    Redirect::temporary(q.get("to").map(String::as_str).unwrap_or("/page"))
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_only_to_allowed_hosts() {
    let addr = web_server().await;
    let port = addr.port();
    let s = TestServer::start_with(Backend::Sqlite, |c| c.plugins.allow_private_hosts = true).await;
    let admin = s.user("admin").await;
    let a = admin.access.as_str();
    install_running(
        &s,
        a,
        bundle("web_fetch", |m| {
            m.replace("[\"example.com\"]", "[\"localhost\"]")
        }),
    )
    .await;
    let fetch = |url: String| call(&s, a, "web_fetch", "fetch_url", json!({ "url": url }));
    let r = fetch(format!("http://localhost:{port}/page")).await;
    assert_eq!(
        r["data"]["callPlugin"]["body"], "hello from the allowed host",
        "{r}"
    );
    // Same server, a name not listed.
    let r = fetch(format!("http://127.0.0.1:{port}/page")).await;
    assert_eq!(TestServer::gql_code(&r), "plugin_error", "{r}");
    assert!(r.to_string().contains("allowed_hosts"), "{r}");
    // A redirect from an allowed host to one that is not.
    let r = fetch(format!(
        "http://localhost:{port}/redirect?to=http://127.0.0.1:{port}/page"
    ))
    .await;
    assert!(r.to_string().contains("allowed_hosts"), "{r}");
    // A redirect within the allowed host is followed.
    let r = fetch(format!("http://localhost:{port}/redirect?to=/page")).await;
    assert_eq!(r["data"]["callPlugin"]["status"], 200, "{r}");
    // Other schemes are refused.
    let r = fetch("file:///etc/passwd".into()).await;
    assert!(r.to_string().contains("http"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_addresses_are_refused_by_default() {
    let addr = web_server().await;
    let s = TestServer::start(Backend::Sqlite).await;
    let admin = s.user("admin").await;
    let a = admin.access.as_str();
    install_running(
        &s,
        a,
        bundle("web_fetch", |m| {
            m.replace("[\"example.com\"]", "[\"localhost\", \"127.0.0.1\"]")
        }),
    )
    .await;
    let r = call(
        &s,
        a,
        "web_fetch",
        "fetch_url",
        json!({ "url": format!("http://localhost:{}/page", addr.port()) }),
    )
    .await;
    assert_eq!(TestServer::gql_code(&r), "plugin_error", "{r}");
    assert!(r.to_string().contains("internal addresses"), "{r}");
}

async fn agent_calls_a_plugin_tool(backend: Backend) {
    use crate::chat_turns::{new_chat, remote_model};
    use crate::mock_llm::{MockLlm, Script};
    let s = TestServer::start(backend).await;
    let mock = MockLlm::start().await;
    let admin = s.user("admin").await;
    let a = admin.access.as_str();
    install_running(&s, a, bundle("tasks", |m| m)).await;
    let (_, r) = s
        .gql(
            Some(a),
            "mutation { grantPlugin(name: \"tasks\") { grantedToAll } }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["grantPlugin"]["grantedToAll"], true, "{r}");
    let model = remote_model(&s, a, "mock", &mock.base_url, 8192).await;
    let bob = s.user("bob").await;
    let (_, r) = s
        .gql(
            Some(&bob.access),
            "mutation($i: CreateAgentInput!) { createAgent(input: $i) { id tools } }",
            json!({ "i": { "name": "Organizer", "model": model, "tools": ["add_task", "list_tasks", "not_installed"] } }),
        )
        .await;
    assert_eq!(
        r["data"]["createAgent"]["tools"],
        json!(["add_task", "list_tasks", "not_installed"]),
        "{r}"
    );
    let agent = r["data"]["createAgent"]["id"].as_str().unwrap().to_string();
    let chat = new_chat(&s, &bob.access, Some(&model), Some(&agent)).await;

    mock.push(Script::calls(
        &["I'll note it."],
        &[("call_1", "add_task", json!({ "title": "buy milk" }))],
    ));
    mock.push(Script::tokens(&["Added ", "buy milk."]));
    let res = s
        .http
        .post(s.url("/api/chat"))
        .bearer_auth(&bob.access)
        .json(
            &json!({ "message": "remind me to buy milk", "conversation_id": chat, "stream": true }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    let order: Vec<&str> = kinds.iter().copied().filter(|k| *k != "token").collect();
    assert_eq!(
        order,
        vec!["think", "plan", "action", "result", "response"],
        "{text}"
    );
    assert_eq!(kinds.first(), Some(&"token"), "{text}");
    let action = events.iter().find(|e| e["type"] == "action").unwrap();
    assert_eq!(action["tool"], "add_task");
    assert_eq!(action["params"], json!({ "title": "buy milk" }));
    let result = events.iter().find(|e| e["type"] == "result").unwrap();
    assert!(
        result["content"].as_str().unwrap().contains("buy milk"),
        "{result}"
    );
    let response = events.iter().find(|e| e["type"] == "response").unwrap();
    assert_eq!(response["tools_used"], json!(["add_task"]), "{response}");
    assert_eq!(response["content"], "I'll note it.Added buy milk.");

    // The model was offered the agent's tools that exist, and got the result back.
    let requests = mock.requests();
    let offered: Vec<&str> = requests[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(offered, vec!["add_task", "list_tasks"]);
    let followup = requests[1]["messages"].as_array().unwrap();
    let n = followup.len();
    assert_eq!(
        followup[n - 2]["tool_calls"][0]["function"]["name"],
        "add_task",
        "{}",
        requests[1]
    );
    assert_eq!(followup[n - 1]["role"], "tool");
    assert_eq!(followup[n - 1]["tool_call_id"], "call_1");
    // The plugin really ran, as bob.
    let r = call(&s, a, "tasks", "list_tasks", json!({})).await;
    assert_eq!(
        r["data"]["callPlugin"]["tasks"][0]["title"], "buy milk",
        "{r}"
    );

    // Bad arguments reach the model as an error it can correct; the turn still answers.
    mock.push(Script::calls(
        &[],
        &[("call_2", "add_task", json!({ "name": "x" }))],
    ));
    mock.push(Script::tokens(&["Sorry."]));
    let (st, b) = s
        .post(
            "/api/chat",
            Some(&bob.access),
            json!({ "message": "add something", "conversation_id": chat }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["tools_used"], json!(["add_task"]), "{b}");
    let last = mock.requests().last().unwrap().clone();
    let tool_msg = last["messages"].as_array().unwrap().last().unwrap().clone();
    assert!(
        tool_msg["content"]
            .as_str()
            .unwrap()
            .contains("`title` is required"),
        "{tool_msg}"
    );
}

both_backends!(agent_calls_a_plugin_tool);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_rewrite_refuse_and_observe() {
    use crate::chat_turns::{new_chat, remote_model};
    use crate::mock_llm::{MockLlm, Script};
    let s = TestServer::start(Backend::Sqlite).await;
    let mock = MockLlm::start().await;
    let admin = s.user("admin").await;
    let a = admin.access.as_str();
    let model = remote_model(&s, a, "mock", &mock.base_url, 8192).await;
    install_running(&s, a, bundle("moderation", |m| m)).await;
    let chat = new_chat(&s, a, Some(&model), None).await;
    // Refused: nothing stored, the reason in the error.
    let (st, b) = s
        .post(
            "/api/chat",
            Some(a),
            json!({ "message": "say the forbidden-word now", "conversation_id": chat }),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(b.to_string().contains("blocked word"), "{b}");
    let (_, r) = s
        .gql(
            Some(a),
            "query($c: ID!) { chat(id: $c) { messages { content } } }",
            json!({ "c": chat }),
        )
        .await;
    assert_eq!(r["data"]["chat"]["messages"], json!([]), "{r}");
    // Rewritten: the tidied text is stored and sent.
    mock.push(Script::tokens(&["ok"]));
    let (st, b) = s
        .post(
            "/api/chat",
            Some(a),
            json!({ "message": "hello    there\n\nfriend", "conversation_id": chat }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let sent = mock.requests().last().unwrap().clone();
    assert_eq!(
        sent["messages"].as_array().unwrap().last().unwrap()["content"],
        "hello there friend"
    );
    // After the answer: the hook counted it (in the background).
    let mut seen = Value::Null;
    for _ in 0..50 {
        seen = call(&s, a, "moderation", "stats", json!({})).await;
        if seen["data"]["callPlugin"]["answers_seen"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen["data"]["callPlugin"]["answers_seen"], 1, "{seen}");
    // A hook that crashes never loses the message.
    install_running(
        &s,
        a,
        bundle("hostile", |m| {
            m.replace("name = \"hostile\"", "name = \"broken_hook\"")
                .replace(
                    "wasm = \"plugin.wasm\"",
                    "wasm = \"plugin.wasm\"\nhooks = [\"message_before_send\"]",
                )
        }),
    )
    .await;
    mock.push(Script::tokens(&["still here"]));
    let (st, b) = s
        .post(
            "/api/chat",
            Some(a),
            json!({ "message": "plain message", "conversation_id": chat }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["response"], "still here", "{b}");
}

/// The example plugins the set-up builds are installed, disabled, on a database's first
/// start; seed 003's `POST /plugins/tasks/enable` then works as documented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundled_plugins_are_installed_on_first_start() {
    let bundled = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".hearth/plugins");
    assert!(
        bundled.join("tasks/plugin.wasm").exists(),
        "{} is missing: run ./scripts/setup.sh (make setup)",
        bundled.display()
    );
    let s = TestServer::start_with(Backend::Sqlite, |c| c.plugins.bundled_dir = bundled).await;
    let admin = s.user("admin").await;
    let a = admin.access.as_str();
    let (_, list) = s.get("/plugins", Some(a)).await;
    let got: Vec<(&str, &str)> = list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("moderation", "disabled"),
            ("tasks", "disabled"),
            ("web_fetch", "disabled")
        ]
    );
    let (st, b) = s.post("/plugins/tasks/enable", Some(a), json!({})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["state"], "running");
}

async fn scheduled_plugin_calls(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = s.user("admin").await;
    let a = admin.access.as_str();
    install_running(&s, a, bundle("tasks", |m| m)).await;
    let bob = s.user("bob").await;
    let job = |title: &str| {
        json!({ "i": { "name": "nightly", "kind": "plugin_call",
            "payload": { "plugin": "tasks", "function": "add_task", "input": { "title": title } },
            "schedule": { "once": "2000-01-01T00:00:00Z" } } })
    };
    const CREATE: &str = "mutation($i: CreateJobInput!) { createJob(input: $i) { id } }";
    // Not granted: the plugin does not exist for bob.
    let (_, r) = s.gql(Some(&bob.access), CREATE, job("nope")).await;
    assert_eq!(TestServer::gql_code(&r), "validation_error", "{r}");
    assert_eq!(
        r["errors"][0]["extensions"]["details"]["field"],
        "payload.plugin"
    );
    s.gql(
        Some(a),
        "mutation($u: ID) { grantPlugin(name: \"tasks\", userId: $u) { name } }",
        json!({ "u": bob.user_id.to_string() }),
    )
    .await;
    let (_, r) = s.gql(Some(&bob.access), CREATE, job("from a job")).await;
    let id = r["data"]["createJob"]["id"]
        .as_str()
        .expect("created")
        .to_string();
    let done = crate::retrieval::wait_job(&s, &bob.access, &id).await;
    assert_eq!(done["state"], "SUCCEEDED", "{done}");
    assert_eq!(
        done["lastRun"]["output"]["output"]["title"], "from a job",
        "{done}"
    );
    let r = call(&s, a, "tasks", "list_tasks", json!({})).await;
    assert_eq!(
        r["data"]["callPlugin"]["tasks"][0]["title"], "from a job",
        "{r}"
    );
}

both_backends!(scheduled_plugin_calls);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_lifecycle_then_call() {
    let s = TestServer::start(Backend::Sqlite).await;
    let admin = s.user("admin").await;
    let a = admin.access.as_str();
    let (st, b) = upload(&s, Some(a), bundle("tasks", |m| m), &[]).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let (_, r) = s
        .gql(
            Some(a),
            "mutation { enablePlugin(name: \"tasks\") { state } }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["enablePlugin"]["state"], "RUNNING", "{r}");
    let (_, r) = s
        .gql(Some(a), "{ plugins { name state } }", json!({}))
        .await;
    assert_eq!(r["data"]["plugins"][0]["state"], "RUNNING", "{r}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = call(&s, a, "tasks", "add_task", json!({ "title": "x" })).await;
    assert_eq!(r["data"]["callPlugin"]["title"], "x", "{r}");
}

/// `document_before_ingest`: a file type Hearth cannot read is refused until a running plugin
/// reads it; then it is accepted, the plugin supplies its text (as the document's owner) and
/// it is searchable like any text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_reads_documents_hearth_cannot() {
    use crate::documents::{search, settled, upload, upload_ok};
    let s = TestServer::start(Backend::Sqlite).await;
    let admin = s.user("admin").await;
    let a = admin.access.as_str();
    let rot13 = |t: &str| -> String {
        t.chars()
            .map(|c| match c {
                'a'..='z' => (((c as u8 - b'a') + 13) % 26 + b'a') as char,
                'A'..='Z' => (((c as u8 - b'A') + 13) % 26 + b'A') as char,
                _ => c,
            })
            .collect()
    };
    let mut file = b"\0ROT13\n".to_vec();
    file.extend(
        rot13("Sea otters hold hands while they sleep so they do not drift apart.").bytes(),
    );
    let target = json!({ "collection": "secrets" });
    let (_, r) = upload(&s, a, "otters.rot13", file.clone(), target.clone()).await;
    assert_eq!(TestServer::gql_code(&r), "unsupported_media_type", "{r}");

    install_running(&s, a, bundle("rot13", |m| m)).await;
    let id = upload_ok(&s, a, "otters.rot13", file, target.clone()).await;
    let doc = settled(&s, a, &id).await;
    assert_eq!(doc["status"], "INDEXED", "{doc}");
    assert_eq!(doc["kind"], "OTHER");
    assert!(
        doc["text"]
            .as_str()
            .unwrap()
            .starts_with("Sea otters hold hands"),
        "{doc}"
    );
    let hits = search(
        &s,
        a,
        "do otters hold hands when sleeping",
        json!({ "t": target }),
    )
    .await;
    assert_eq!(hits[0]["document"]["filename"], "otters.rot13", "{hits:?}");
    // A file of that kind the plugin does not read fails ingestion with the reason.
    let id = upload_ok(&s, a, "other.bin", b"\0\x01\x02binary".to_vec(), target).await;
    let doc = settled(&s, a, &id).await;
    assert_eq!(doc["status"], "FAILED", "{doc}");
    assert!(
        doc["error"].as_str().unwrap().contains("no plugin"),
        "{doc}"
    );
}

/// Host functions run as the caller: a plugin's search sees the caller's documents only; its
/// events reach that caller's `pluginEvents`, with the state changes an admin makes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_functions_act_as_the_caller() {
    use crate::documents::{settled, upload_ok};
    use crate::support::{next_json, ws_subscribed};
    let s = TestServer::start(Backend::Sqlite).await;
    let admin = s.user("admin").await;
    let a = admin.access.as_str();
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let id = upload_ok(
        &s,
        &alice.access,
        "otters.txt",
        b"Sea otters keep a favourite stone in a pouch of skin.".to_vec(),
        json!({ "collection": "notes" }),
    )
    .await;
    assert_eq!(settled(&s, &alice.access, &id).await["status"], "INDEXED");
    install_running(&s, a, bundle("hostile", |m| m)).await;
    s.gql(
        Some(a),
        "mutation { grantPlugin(name: \"hostile\") { name } }",
        json!({}),
    )
    .await;

    let r = call(
        &s,
        &alice.access,
        "hostile",
        "search_docs",
        json!({ "query": "where do otters keep stones" }),
    )
    .await;
    assert_eq!(r["data"]["callPlugin"][0]["filename"], "otters.txt", "{r}");
    let r = call(
        &s,
        &bob.access,
        "hostile",
        "search_docs",
        json!({ "query": "where do otters keep stones" }),
    )
    .await;
    assert_eq!(r["data"]["callPlugin"], json!([]), "{r}");

    let mut ws = ws_subscribed(
        &s,
        &bob.access,
        "p",
        "subscription { pluginEvents { plugin state event data deleted } }",
    )
    .await;
    let r = call(
        &s,
        &alice.access,
        "hostile",
        "announce",
        json!({ "who": "alice" }),
    )
    .await;
    assert!(r["errors"].is_null(), "{r}");
    let r = call(
        &s,
        &bob.access,
        "hostile",
        "announce",
        json!({ "who": "bob" }),
    )
    .await;
    assert!(r["errors"].is_null(), "{r}");
    // Bob gets his own event only, then the admin's stop of a plugin granted to him.
    let ev = next_json(&mut ws).await.unwrap();
    assert_eq!(
        ev["payload"]["data"]["pluginEvents"]["event"], "announced",
        "{ev}"
    );
    assert_eq!(
        ev["payload"]["data"]["pluginEvents"]["data"],
        json!({ "who": "bob" }),
        "{ev}"
    );
    s.post("/plugins/hostile/stop", Some(a), json!({})).await;
    let ev = next_json(&mut ws).await.unwrap();
    assert_eq!(
        ev["payload"]["data"]["pluginEvents"]["plugin"], "hostile",
        "{ev}"
    );
    assert_eq!(
        ev["payload"]["data"]["pluginEvents"]["state"], "STOPPED",
        "{ev}"
    );
}

/// On PostgreSQL, a listener on another server than the one running an agent's turn sees
/// its steps too, in order: the text said before the tool call, the steps, the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_steps_reach_another_server() {
    use crate::chat_turns::{new_chat, remote_model};
    use crate::mock_llm::{MockLlm, Script};
    let a = TestServer::start(Backend::Postgres).await;
    let url = a.state.config.database_url();
    let b = TestServer::start_with(Backend::Postgres, |c| c.database_url = Some(url)).await;
    let mock = MockLlm::start().await;
    let admin = a.user("admin").await;
    install_running(&a, &admin.access, bundle("tasks", |m| m)).await;
    let (_, r) = a
        .gql(
            Some(&admin.access),
            "mutation { grantPlugin(name: \"tasks\") { grantedToAll } }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["grantPlugin"]["grantedToAll"], true, "{r}");
    let model = remote_model(&a, &admin.access, "mock", &mock.base_url, 8192).await;
    let (_, r) = a
        .gql(
            Some(&admin.access),
            "mutation($i: CreateAgentInput!) { createAgent(input: $i) { id } }",
            json!({ "i": { "name": "Organizer", "model": model, "tools": ["add_task"] } }),
        )
        .await;
    let agent = r["data"]["createAgent"]["id"].as_str().unwrap().to_string();
    let chat = new_chat(&a, &admin.access, Some(&model), Some(&agent)).await;

    let mut ws = crate::resumable_streams::subscribe_with(
        &b.base,
        &admin.access,
        "subscription($c: ID!) { chatEvents(chatId: $c) { type delta content tool message { content } } }",
        json!({"c": chat}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    mock.push(Script::calls(
        &["I'll note it."],
        &[("call_1", "add_task", json!({ "title": "buy milk" }))],
    ));
    mock.push(Script::tokens(&["Added ", "buy milk."]));
    let (_, r) = a
        .gql(
            Some(&admin.access),
            "mutation($c: ID!) { sendMessage(input: {chatId: $c, content: \"remind me to buy milk\"}) { assistantMessageId } }",
            json!({"c": chat}),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    let events = crate::resumable_streams::until_end(&mut ws).await;
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .filter(|k| *k != "TOKEN")
        .collect();
    assert_eq!(
        kinds,
        ["STARTED", "THINK", "PLAN", "ACTION", "RESULT", "RESPONSE"],
        "{events:?}"
    );
    let action = events.iter().find(|e| e["type"] == "ACTION").unwrap();
    assert_eq!(action["tool"], "add_task", "{action}");
    let result = events.iter().find(|e| e["type"] == "RESULT").unwrap();
    assert!(result["content"].as_str().unwrap().contains("buy milk"));
    // The text said before the tool call arrives before the steps.
    let first_token = events.iter().position(|e| e["type"] == "TOKEN");
    let think = events.iter().position(|e| e["type"] == "THINK");
    assert!(first_token < think, "{events:?}");
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "TOKEN")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "I'll note it.Added buy milk.");
    assert_eq!(
        events.last().unwrap()["message"]["content"],
        "I'll note it.Added buy milk."
    );
}

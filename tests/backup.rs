//! Backup and restore: seed 003 `GET /backup/export` and `POST /backup/import?dry_run=`,
//! `hearth backup`, the `backup` job kind. An archive taken from one backend while users keep
//! writing restores into the other with every row equal, search and plugins working; refused
//! archives change nothing.

use crate::both_backends;
use crate::chat_turns::remote_model;
use crate::documents::{search, settled, upload_ok};
use crate::mock_llm::{MockLlm, Script};
use crate::plugins::{bundle, install_running};
use crate::support::{cookie_login, Backend, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

both_backends!(
    the_backup_registry_matches_the_schema,
    backup_doors_refuse_what_they_must,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_backup_restores_into_postgres() {
    round_trip(Backend::Sqlite, Backend::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_backup_restores_into_sqlite() {
    round_trip(Backend::Postgres, Backend::Sqlite).await
}

/// `GET /backup/export` as `token`: the status and the body.
async fn export(s: &TestServer, token: Option<&str>) -> (StatusCode, Vec<u8>) {
    let mut req = s.http.get(s.url("/backup/export"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    if status == StatusCode::OK {
        assert_eq!(res.headers()["content-type"], "application/zip");
        assert!(res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"hearth-backup-"));
    }
    (status, res.bytes().await.unwrap().to_vec())
}

fn exported(bytes: (StatusCode, Vec<u8>)) -> Vec<u8> {
    assert_eq!(
        bytes.0,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes.1)
    );
    bytes.1
}

/// `POST /backup/import?dry_run=…` with the archive as `file`.
async fn import(
    s: &TestServer,
    token: Option<&str>,
    archive: Vec<u8>,
    dry_run: &str,
) -> (StatusCode, Value) {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(archive).file_name("backup.zip"),
    );
    let mut req = s
        .http
        .post(s.url(&format!("/backup/import?dry_run={dry_run}")))
        .multipart(form);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// An archive's files.
fn unzip(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut files = BTreeMap::new();
    for i in 0..zip.len() {
        let mut e = zip.by_index(i).unwrap();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        files.insert(e.name().unwrap().to_string(), data);
    }
    files
}

/// A ZIP of `files` (in order).
fn rezip(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in files {
        out.start_file(name.as_str(), options).unwrap();
        out.write_all(data).unwrap();
    }
    out.finish().unwrap().into_inner()
}

/// A table's rows in an archive, one JSON object each.
fn rows(files: &BTreeMap<String, Vec<u8>>, table: &str) -> Vec<Value> {
    let text = String::from_utf8(files[&format!("data/{table}.jsonl")].clone()).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn manifest(files: &BTreeMap<String, Vec<u8>>) -> Value {
    serde_json::from_slice(&files["manifest.json"]).unwrap()
}

/// Every file the manifest lists is there with its checksum and size, and nothing else is.
fn assert_manifest_holds(files: &BTreeMap<String, Vec<u8>>) {
    let m = manifest(files);
    assert_eq!(m["format"], "hearth-backup");
    assert_eq!(m["schema_version"], hearth::db::schema_version());
    let listed = m["files"].as_object().unwrap();
    for (name, data) in files {
        if name == "manifest.json" {
            continue;
        }
        let entry = listed
            .get(name)
            .unwrap_or_else(|| panic!("{name} not in the manifest"));
        assert_eq!(entry["sha256"], hex::encode(Sha256::digest(data)), "{name}");
        assert_eq!(entry["bytes"], data.len() as u64, "{name}");
    }
    assert_eq!(listed.len(), files.len() - 1);
    for (table, t) in m["tables"].as_object().unwrap() {
        assert_eq!(t["rows"], rows(files, table).len() as u64, "{table}");
    }
}

/// Logs in with the seed 000 door; `None` when refused.
async fn try_login(s: &TestServer, user: &str) -> Option<String> {
    let (st, b) = s
        .post(
            "/api/auth/login",
            None,
            json!({"username": user, "password": "password123"}),
        )
        .await;
    (st == StatusCode::OK).then(|| b["access_token"].as_str().unwrap().to_string())
}

/// A source instance with a bit of everything, users writing while it is backed up, and a
/// restore into a fresh instance of the other backend: a dry run first (nothing changes),
/// then the real import; every row then reads the same from both, search finds the restored
/// document (FAISS rebuilt), the plugin runs, and every session of the target ended.
async fn round_trip(from: Backend, to: Backend) {
    let src = TestServer::start(from).await;
    let mock = MockLlm::start().await;
    let admin = src.user("admin").await;
    let bob = src.user("bob").await;
    remote_model(&src, &admin.access, "mock", &mock.base_url, 8192).await;
    mock.push(Script::tokens(&["Bonjour", " Bob"]));
    let (st, b) = src
        .post(
            "/api/chat",
            Some(&bob.access),
            json!({"message": "Salut", "model": "mock"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (_, b) = src
        .gql(
            Some(&bob.access),
            "mutation { createAgent(input: {name: \"Keeper\", systemPrompt: \"Be brief.\"}) { id } \
             createApiKey(input: {name: \"ci\", rateLimit: 7}) { secret } \
             remember(content: \"The boat leaves at noon.\") { id } }",
            json!({}),
        )
        .await;
    assert!(b["errors"].is_null(), "{b}");
    let doc = upload_ok(
        &src,
        &bob.access,
        "lighthouse.txt",
        b"The lighthouse keeper writes the weather in the log every morning at six. \
          Storms are noted in red ink."
            .to_vec(),
        json!({"collection": "notes"}),
    )
    .await;
    assert_eq!(settled(&src, &bob.access, &doc).await["status"], "INDEXED");
    install_running(&src, &admin.access, bundle("tasks", |m| m)).await;

    // Bob keeps creating chats while the backup is taken: every chat acknowledged before
    // the export was asked for must be in it.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = {
        let (http, url, token, acked, stop) = (
            src.http.clone(),
            src.url("/graphql"),
            bob.access.clone(),
            acked.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.is_cancelled() {
                i += 1;
                let res = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"query": format!("mutation {{ createChat(input: {{title: \"w{i}\"}}) {{ id }} }}")}))
                    .send()
                    .await
                    .unwrap();
                let b: Value = res.json().await.unwrap();
                let id = b["data"]["createChat"]["id"]
                    .as_str()
                    .expect("chat created")
                    .to_string();
                acked.lock().unwrap().push(id);
            }
            i
        })
    };
    while acked.lock().unwrap().len() < 3 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let before: Vec<String> = acked.lock().unwrap().clone();
    let archive = exported(export(&src, Some(&admin.access)).await);
    stop.cancel();
    let written = writer.await.unwrap();
    let files = unzip(&archive);
    assert_manifest_holds(&files);
    let chat_ids: Vec<String> = rows(&files, "chats")
        .iter()
        .map(|c| c["id"].to_string())
        .collect();
    for id in &before {
        assert!(
            chat_ids.contains(id),
            "acknowledged chat {id} missing from the backup"
        );
    }
    assert!(
        written as usize > before.len(),
        "writes went on during the export"
    );
    let config = String::from_utf8(files["config.toml"].clone()).unwrap();
    assert!(!config.contains(crate::support::JWT_SECRET), "{config}");
    assert_eq!(
        files.contains_key("database.sqlite"),
        from == Backend::Sqlite
    );
    if from == Backend::Sqlite {
        assert!(files["database.sqlite"].starts_with(b"SQLite format 3\0"));
    }
    assert!(files.contains_key("logs/recent.jsonl"));
    assert!(!files
        .keys()
        .any(|f| f.contains("faiss") || f.starts_with("vectors/")));
    assert!(!files.contains_key("data/sessions.jsonl"));

    // The target has its own admin and a user the archive does not know.
    let dst = TestServer::start(to).await;
    let root = dst.user("root").await;
    dst.user("carol").await;
    let (st, dry) = import(&dst, Some(&root.access), archive.clone(), "true").await;
    assert_eq!(st, StatusCode::OK, "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["version"], env!("CARGO_PKG_VERSION"));
    let plan = &dry["plan"];
    let users = plan["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "users")
        .unwrap();
    // admin and bob have ids 1 and 2 on both sides; carol (2… on the target) differs.
    assert_eq!(users["rows"], 2, "{plan}");
    assert_eq!(users["replace"], 2, "{plan}");
    assert_eq!(users["remove"], 0, "{plan}");
    assert_eq!(
        plan["source"]["backend"],
        if from == Backend::Sqlite {
            "sqlite"
        } else {
            "postgres"
        }
    );
    assert!(plan["sessions_ended"].as_u64().unwrap() >= 2, "{plan}");
    assert_eq!(plan["plugins"], json!(["tasks 1.0.0"]), "{plan}");
    // A dry run changes nothing.
    assert!(try_login(&dst, "carol").await.is_some());
    let (st, _) = dst.get("/api/auth/me", Some(&root.access)).await;
    assert_eq!(st, StatusCode::OK);

    // A socket open through the restore is closed: its session ended.
    let mut live = crate::support::ws_subscribed(
        &dst,
        &root.access,
        "c",
        "subscription { chatChanges { kind } }",
    )
    .await;
    let (st, done) = import(&dst, Some(&root.access), archive.clone(), "false").await;
    assert_eq!(st, StatusCode::OK, "{done}");
    assert_eq!(done["dry_run"], false);
    assert_eq!(crate::support::ws_close_code(&mut live).await, Some(4401));
    // Every session ended; the archive's accounts are the ones that exist now.
    let (st, _) = dst.get("/api/auth/me", Some(&root.access)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(try_login(&dst, "carol").await.is_none());
    let bob_dst = try_login(&dst, "bob")
        .await
        .expect("bob signs in after the restore");
    let admin_dst = try_login(&dst, "admin").await.expect("admin signs in");

    // Every row reads the same from the restored instance.
    let again = unzip(&exported(export(&dst, Some(&admin_dst)).await));
    for table in hearth::backup::tables::TABLES {
        let mut a = rows(&files, table.name);
        let mut b = rows(&again, table.name);
        if table.name == "collections" {
            // Index versions move past the target's own, so every process rebuilds.
            for r in a.iter_mut().chain(b.iter_mut()) {
                r.as_object_mut().unwrap().remove("index_version");
            }
        }
        assert_eq!(a, b, "table {} differs after the restore", table.name);
    }

    // The restored document is found (the FAISS index was rebuilt from restored vectors),
    // the chat reads back, the plugin runs.
    let hits = search(
        &dst,
        &bob_dst,
        "when is the weather written down",
        json!({"mode": "VECTOR", "t": {"collection": "notes"}}),
    )
    .await;
    assert_eq!(hits[0]["document"]["id"], doc.as_str(), "{hits:?}");
    let (_, b) = dst
        .gql(
            Some(&bob_dst),
            "{ me { chats(first: 100) { title messages(last: 10) { role content } } } }",
            json!({}),
        )
        .await;
    let chats = b["data"]["me"]["chats"].as_array().unwrap().clone();
    assert!(
        chats
            .iter()
            .any(|c| c["messages"][1]["content"] == "Bonjour Bob"),
        "{b}"
    );
    let (st, p) = dst.get("/plugins", Some(&admin_dst)).await;
    assert_eq!(st, StatusCode::OK, "{p}");
    assert!(p.to_string().contains("\"running\""), "{p}");
}

/// Only admins export and import; refused archives (not a ZIP, altered, from a newer schema,
/// escaping paths, unknown tables, too large) are 400/413 with the reason and change
/// nothing; cookie sessions need the CSRF token. The `backup` job kind writes archives for
/// admins only, and `hearth backup` works from the command line.
async fn backup_doors_refuse_what_they_must(b: Backend) {
    let s = TestServer::start_with(b, |c| c.backup.max_import_bytes = 4 * 1024 * 1024).await;
    let admin = s.user("admin").await;
    let bob = s.user("bob").await;

    assert_eq!(export(&s, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(export(&s, Some(&bob.access)).await.0, StatusCode::FORBIDDEN);
    let archive = exported(export(&s, Some(&admin.access)).await);
    let files = unzip(&archive);

    let (st, body) = import(&s, None, archive.clone(), "true").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
    let (st, body) = import(&s, Some(&bob.access), archive.clone(), "true").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");

    // Cookie sessions: the CSRF token is required.
    let (cookie, csrf) = cookie_login(&s, "admin").await;
    let send = |csrf: Option<&str>| {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(archive.clone()).file_name("b.zip"),
        );
        let mut req = s
            .http
            .post(s.url("/backup/import?dry_run=true"))
            .header("cookie", &cookie)
            .multipart(form);
        if let Some(c) = csrf {
            req = req.header("x-csrf-token", c);
        }
        req.send()
    };
    assert_eq!(send(None).await.unwrap().status(), StatusCode::FORBIDDEN);
    let res = send(Some(&csrf)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let plan: Value = res.json().await.unwrap();
    assert_eq!(plan["dry_run"], true, "{plan}");

    let refused = |label: &'static str, archive: Vec<u8>, expect: &'static str| {
        let (s, token) = (&s, admin.access.clone());
        async move {
            let (st, body) = import(s, Some(&token), archive, "false").await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{label}: {body}");
            let message = body["error"]["message"]
                .as_str()
                .or(body["message"].as_str())
                .or(body["detail"].as_str())
                .unwrap_or_default()
                .to_string();
            assert!(
                body.to_string().contains(expect),
                "{label}: expected \"{expect}\" in {body} ({message})"
            );
        }
    };
    refused(
        "not a zip",
        b"definitely not a zip".to_vec(),
        "not a readable ZIP",
    )
    .await;
    let mut altered = files.clone();
    let users = String::from_utf8(files["data/users.jsonl"].clone()).unwrap();
    altered.insert(
        "data/users.jsonl".into(),
        users.replace("\"bob\"", "\"eve\"").into_bytes(),
    );
    refused("altered", rezip(&altered), "checksum").await;
    let mut newer = files.clone();
    let mut m = manifest(&files);
    m["schema_version"] = json!("99991231000000");
    newer.insert("manifest.json".into(), serde_json::to_vec(&m).unwrap());
    refused("newer schema", rezip(&newer), "newer schema").await;
    let mut escaping = files.clone();
    escaping.insert("../outside.txt".into(), b"x".to_vec());
    refused(
        "escaping path",
        rezip(&escaping),
        "not a plain relative path",
    )
    .await;
    let mut unknown = files.clone();
    let mut m = manifest(&files);
    m["tables"]["secrets"] = json!({"rows": 0, "columns": ["id"]});
    unknown.insert("manifest.json".into(), serde_json::to_vec(&m).unwrap());
    refused("unknown table", rezip(&unknown), "unknown table").await;
    let mut unlisted = files.clone();
    unlisted.insert("extra.txt".into(), b"x".to_vec());
    refused("unlisted file", rezip(&unlisted), "not in its manifest").await;
    let mut no_manifest = files.clone();
    no_manifest.remove("manifest.json");
    refused("no manifest", rezip(&no_manifest), "no manifest.json").await;

    let (st, body) = import(&s, Some(&admin.access), archive.clone(), "perhaps").await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    let res = s
        .http
        .post(s.url("/backup/import?dry_run=true"))
        .bearer_auth(&admin.access)
        .multipart(reqwest::multipart::Form::new().text("other", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let (st, body) = s
        .post_declared_size(
            "/backup/import?dry_run=true",
            &admin.access,
            5 * 1024 * 1024,
        )
        .await;
    assert_eq!(st, 413, "{body}");
    // Nothing changed: both sessions still work.
    for token in [&admin.access, &bob.access] {
        let (st, _) = s.get("/api/auth/me", Some(token)).await;
        assert_eq!(st, StatusCode::OK);
    }

    // The backup job kind: admins only; it writes an archive into the backup folder.
    let job = json!({"name": "Nightly", "kind": "backup", "payload": {},
                     "schedule": {"once": chrono::Utc::now().to_rfc3339()}});
    let (st, body) = s.post("/jobs/add", Some(&bob.access), job.clone()).await;
    assert!(
        st == StatusCode::FORBIDDEN || st == StatusCode::BAD_REQUEST,
        "{st} {body}"
    );
    let (st, body) = s.post("/jobs/add", Some(&admin.access), job).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let id = body["id"].as_i64().unwrap();
    let output = {
        let mut waited = 0;
        loop {
            let (_, runs) = s
                .get(&format!("/jobs/{id}/runs"), Some(&admin.access))
                .await;
            let run = runs["runs"].as_array().and_then(|r| r.first()).cloned();
            if let Some(run) = run.filter(|r| r["outcome"] != "running") {
                assert_eq!(run["outcome"], "succeeded", "{run}");
                break run["output"].clone();
            }
            waited += 1;
            assert!(waited < 600, "the backup job did not finish: {runs}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    let file = output["file"].as_str().unwrap();
    assert!(file.starts_with(s.state.config.data_dir.join("backups").to_str().unwrap()));
    assert_manifest_holds(&unzip(&std::fs::read(file).unwrap()));

    // `hearth backup export` / `import --dry-run` from the command line: on PostgreSQL beside
    // the running server; on SQLite on an instance of its own (a second process never opens
    // a SQLite file its server holds).
    let own = tempfile::tempdir().unwrap();
    let (data, url) = match b {
        Backend::Postgres => (
            s.state.config.data_dir.clone(),
            s.state.config.database_url(),
        ),
        Backend::Sqlite => (
            own.path().to_path_buf(),
            format!("sqlite://{}", own.path().join("hearth.db").display()),
        ),
    };
    let out = own.path().join("cli.zip");
    let (ok, text) = hearth_backup(&data, &url, &["export", out.to_str().unwrap()]).await;
    assert!(ok, "{text}");
    assert!(text.contains("users"), "{text}");
    assert_manifest_holds(&unzip(&std::fs::read(&out).unwrap()));
    let http_archive = own.path().join("http.zip");
    std::fs::write(&http_archive, &archive).unwrap();
    let (ok, text) = hearth_backup(
        &data,
        &url,
        &["import", http_archive.to_str().unwrap(), "--dry-run"],
    )
    .await;
    assert!(ok, "{text}");
    assert!(text.contains("\"dry_run\": true"), "{text}");
    assert!(text.contains("\"table\": \"users\""), "{text}");
    let (st, _) = s.get("/api/auth/me", Some(&bob.access)).await;
    assert_eq!(st, StatusCode::OK);
}

/// `hearth --data-dir D --database-url U backup ARGS…`, as a separate process.
async fn hearth_backup(data: &std::path::Path, url: &str, args: &[&str]) -> (bool, String) {
    crate::retrieval::hearth_cli(data, url, &[&["backup"], args].concat()).await
}

#[derive(diesel::QueryableByName)]
struct ColumnInfo {
    #[diesel(sql_type = diesel::sql_types::Text)]
    t: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    c: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    kind: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    nullable: bool,
}

/// Every table of the live schema is in the backup registry (or left out on purpose), with
/// exactly its columns, types and nullability: a migration cannot add data a backup misses.
async fn the_backup_registry_matches_the_schema(b: Backend) {
    use hearth::backup::tables::{Kind, DERIVED, LEFT_OUT, TABLES};
    let s = TestServer::start(b).await;
    let sql = match b {
        Backend::Sqlite => {
            "SELECT m.name AS t, p.name AS c, lower(p.type) AS kind, \
             (p.\"notnull\" = 0 AND p.pk = 0) AS nullable \
             FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'"
        }
        Backend::Postgres => {
            "SELECT table_name::text AS t, column_name::text AS c, data_type::text AS kind, \
             is_nullable = 'YES' AS nullable FROM information_schema.columns \
             WHERE table_schema = current_schema() AND is_generated = 'NEVER'"
        }
    };
    let db = &s.state.db;
    let live: Vec<ColumnInfo> = async {
        hearth::db_run!(db, read, |conn| {
            use diesel_async::RunQueryDsl;
            diesel::sql_query(sql)
                .load::<ColumnInfo>(conn)
                .await
                .map_err(hearth::error::AppError::from)
        })
    }
    .await
    .unwrap();
    let mut schema: BTreeMap<String, BTreeMap<String, (String, bool)>> = BTreeMap::new();
    for c in live {
        schema
            .entry(c.t)
            .or_default()
            .insert(c.c, (c.kind, c.nullable));
    }
    for (table, columns) in &schema {
        if LEFT_OUT.contains(&table.as_str()) || DERIVED.iter().any(|d| table.starts_with(d)) {
            continue;
        }
        let t = hearth::backup::tables::table(table)
            .unwrap_or_else(|| panic!("table {table} is neither backed up nor left out"));
        let registered: Vec<&str> = t.columns.iter().map(|c| c.name).collect();
        let mut live_names: Vec<&str> = columns.keys().map(String::as_str).collect();
        let mut reg_sorted = registered.clone();
        live_names.sort();
        reg_sorted.sort();
        assert_eq!(live_names, reg_sorted, "columns of {table}");
        for col in t.columns {
            let (kind, nullable) = &columns[col.name];
            assert_eq!(*nullable, col.nullable, "{table}.{} nullability", col.name);
            if b == Backend::Postgres {
                let expected = match col.kind {
                    Kind::Int => "integer",
                    Kind::BigInt => "bigint",
                    Kind::Double => "double precision",
                    Kind::Bool => "boolean",
                    Kind::Text => "text",
                    Kind::Timestamp => "timestamp without time zone",
                    Kind::Date => "date",
                    Kind::Binary => "bytea",
                };
                assert_eq!(kind, expected, "{table}.{} type", col.name);
            }
        }
    }
    for t in TABLES {
        assert!(
            schema.contains_key(t.name),
            "registered table {} not in the schema",
            t.name
        );
    }
}

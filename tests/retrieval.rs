//! Retrieval beyond one server's life: a new embedding model takes over atomically (search
//! answers throughout), `reindex` and `hearth reindex` rebuild indexes equal to the live
//! ones, the watched folders of seed 003 (`/rag/reindex`, `/rag/query`), `/health`'s
//! `faiss_ok`.

use crate::both_backends;
use crate::documents::{search, settled, upload_ok};
use crate::support::{Backend, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

const CORPUS: &[(&str, &str)] = &[
    (
        "tides.txt",
        "Tides are caused by the gravitational pull of the Moon and the Sun on the oceans.",
    ),
    (
        "glaciers.txt",
        "Glaciers are rivers of ice that carve valleys as they slowly move downhill.",
    ),
    (
        "coral.txt",
        "Coral reefs are built by colonies of tiny animals that secrete calcium carbonate.",
    ),
];

pub(crate) async fn wait_job(s: &TestServer, token: &str, id: &str) -> Value {
    for _ in 0..600 {
        let (_, b) = s
            .gql(
                Some(token),
                "query($id: ID!) { job(id: $id) { state lastRun { outcome output error } } }",
                json!({ "id": id }),
            )
            .await;
        let j = &b["data"]["job"];
        if matches!(
            j["state"].as_str(),
            Some("SUCCEEDED" | "FAILED" | "CANCELLED")
        ) {
            return j.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {id} did not finish");
}

async fn collections(s: &TestServer, token: &str) -> Vec<Value> {
    let (_, b) = s
        .gql(
            Some(token),
            "{ collections { id name embedModel } }",
            json!({}),
        )
        .await;
    b["data"]["collections"].as_array().unwrap().clone()
}

async fn a_new_embedding_model_takes_over_atomically(backend: Backend) {
    let mut a = TestServer::start(backend).await;
    let u = a.user("curator").await;
    let t = json!({ "collection": "nature" });
    for (name, text) in CORPUS {
        let id = upload_ok(&a, &u.access, name, text.as_bytes().to_vec(), t.clone()).await;
        assert_eq!(settled(&a, &u.access, &id).await["status"], "INDEXED");
    }
    let q = "what makes the sea rise and fall";
    let before = search(&a, &u.access, q, json!({ "mode": "VECTOR" })).await;
    assert_eq!(before[0]["document"]["filename"], "tides.txt");
    assert_eq!(
        collections(&a, &u.access).await[0]["embedModel"],
        "all-minilm-l6-v2"
    );

    // The next server embeds under another model name.
    let url = a.state.config.database_url();
    a.stop_and_wait().await;
    let dir = a.keep_data();
    // A SQLite file has one process at a time (the state holds its lock); a PostgreSQL
    // database goes with its first server, which stays (stopped) until the end.
    let _first = match backend {
        Backend::Sqlite => {
            drop(a);
            None
        }
        Backend::Postgres => Some(a),
    };
    let data = dir.path().to_path_buf();
    let b = TestServer::start_with(backend, |c| {
        c.data_dir = data;
        c.database_url = Some(url);
        c.embed.model_name = "minilm-renamed".into();
    })
    .await;
    // The session lives in the database: the same token works on the next server. Before
    // the reindex, search answers from the old vectors.
    let token = u.access.clone();
    let during = search(&b, &token, q, json!({ "mode": "VECTOR" })).await;
    assert_eq!(during[0]["document"]["filename"], "tides.txt");
    let (_, r) = b
        .gql(Some(&token), "mutation { reindex { id kind } }", json!({}))
        .await;
    assert_eq!(r["data"]["reindex"]["kind"], "reindex", "{r}");
    let job = wait_job(&b, &token, r["data"]["reindex"]["id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "SUCCEEDED", "{job}");
    assert_eq!(
        job["lastRun"]["output"]["reembedded"],
        CORPUS.len(),
        "{job}"
    );
    assert_eq!(
        collections(&b, &token).await[0]["embedModel"],
        "minilm-renamed"
    );
    let after = search(&b, &token, q, json!({ "mode": "VECTOR" })).await;
    assert_eq!(after.len(), before.len());
    for (x, y) in before.iter().zip(&after) {
        assert_eq!(x["chunkId"], y["chunkId"]);
        let (sx, sy) = (
            x["similarity"].as_f64().unwrap(),
            y["similarity"].as_f64().unwrap(),
        );
        assert!(
            (sx - sy).abs() < 1e-4,
            "same model file, same similarity: {sx} {sy}"
        );
    }
    // Only the new model's vectors are left.
    let all = hearth::rag::reindex::all(&b.state).await.unwrap();
    assert!(all.iter().all(|c| c.embed_model == "minilm-renamed"));
    drop(dir);
}

/// A folder `handbook/` with two readable files (one in `ops/`) and a binary one.
fn handbook() -> (tempfile::TempDir, std::path::PathBuf) {
    let folder = tempfile::tempdir().unwrap();
    let docs = folder.path().join("handbook");
    std::fs::create_dir_all(docs.join("ops")).unwrap();
    std::fs::write(
        docs.join("onboarding.md"),
        "# Onboarding\n\nNew staff receive a badge and a laptop on their first day.\n",
    )
    .unwrap();
    std::fs::write(
        docs.join("ops/backups.txt"),
        "Backups run every night at two and are kept for thirty days.\n",
    )
    .unwrap();
    std::fs::write(docs.join("ops/tool.bin"), [0u8, 1, 2, 3, 255]).unwrap();
    (folder, docs)
}

async fn watched_folders_are_indexed_for_everyone(backend: Backend) {
    let (_folder, docs) = handbook();
    std::fs::write(docs.join(".hidden.txt"), "secret notes").unwrap();
    let dirs = vec![docs.clone()];
    let s = TestServer::start_with(backend, move |c| c.rag.source_dirs = dirs).await;
    let admin = s.user("admin").await;
    let user = s.user("reader").await;

    // Admins only; the body is optional.
    let (st, _) = s
        .post("/rag/reindex", Some(&user.access), json!({ "full": true }))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = s.post("/rag/reindex", None, json!({})).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, b) = s
        .post(
            "/rag/reindex",
            Some(&admin.access),
            json!({ "full": "yes" }),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    let (st, b) = s
        .post("/rag/reindex", Some(&admin.access), json!({ "full": true }))
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["indexed"], 2, "{b}");
    assert_eq!(b["skipped"], 1, "{b}");

    // Every user may query them once indexed.
    let mut results = Vec::new();
    for _ in 0..600 {
        let (st, r) = s
            .post(
                "/rag/query",
                Some(&user.access),
                json!({ "query": "how long are backups kept", "top_k": 3 }),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{r}");
        results = r["results"].as_array().unwrap().clone();
        if results.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(results.len(), 2, "{results:?}");
    // The search that first saw both may have read the collection just before the second
    // was committed (its index then catches up on the next search): ask once more.
    let (_, r) = s
        .post(
            "/rag/query",
            Some(&user.access),
            json!({ "query": "how long are backups kept", "top_k": 3 }),
        )
        .await;
    let results = r["results"].as_array().unwrap().clone();
    let top = &results[0];
    assert_eq!(top["source"]["path"], "handbook/ops/backups.txt", "{top}");
    assert_eq!(top["source"]["start"], 0);
    assert_eq!(
        top["source"]["end"],
        top["text"].as_str().unwrap().chars().count()
    );
    assert_eq!(top["source"]["sha256"].as_str().unwrap().len(), 64);

    // Incremental: nothing changed, nothing indexed; a changed file and a removed one.
    let (_, b) = s
        .post(
            "/rag/reindex",
            Some(&admin.access),
            json!({ "full": false }),
        )
        .await;
    assert_eq!(
        (b["indexed"].as_i64(), b["unchanged"].as_i64()),
        (Some(0), Some(2)),
        "{b}"
    );
    std::fs::write(
        docs.join("ops/backups.txt"),
        "Backups now run every hour and are kept for a year.\n",
    )
    .unwrap();
    std::fs::remove_file(docs.join("onboarding.md")).unwrap();
    let (_, b) = s
        .post(
            "/rag/reindex",
            Some(&admin.access),
            json!({ "full": false }),
        )
        .await;
    assert_eq!(
        (b["indexed"].as_i64(), b["removed"].as_i64()),
        (Some(1), Some(1)),
        "{b}"
    );
    for _ in 0..600 {
        let (_, r) = s
            .post(
                "/rag/query",
                Some(&user.access),
                json!({ "query": "how long are backups kept", "top_k": 3 }),
            )
            .await;
        let texts: Vec<String> = r["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["text"].as_str().unwrap().to_string())
            .collect();
        if texts.len() == 1 && texts[0].contains("every hour") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, r) = s
        .post(
            "/rag/query",
            Some(&user.access),
            json!({ "query": "backups", "top_k": 3 }),
        )
        .await;
    let texts: Vec<&str> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        vec!["Backups now run every hour and are kept for a year."],
        "{r}"
    );
    // Bad queries.
    let (st, _) = s
        .post("/rag/query", Some(&user.access), json!({ "query": "" }))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = s
        .post(
            "/rag/query",
            Some(&user.access),
            json!({ "query": "x", "top_k": 100000 }),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = s
        .post(
            "/rag/query",
            Some(&user.access),
            json!({ "query": "x".repeat(5000) }),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = s.post("/rag/query", None, json!({ "query": "x" })).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // FAISS is really there.
    let (_, h) = s.get("/health", None).await;
    assert_eq!(h["faiss_ok"], true, "{h}");
}

/// `hearth --data-dir D [--database-url U] ingest ARGS…`, as a separate process.
async fn hearth_ingest(data: &std::path::Path, url: &str, args: &[&str]) -> (bool, String) {
    hearth_cli(data, url, &[&["ingest"], args].concat()).await
}

/// `hearth --data-dir D --database-url U ARGS…`, as a separate process (no `HEARTH_*`
/// variable of the test's environment leaks in): whether it succeeded, and what it printed.
pub(crate) async fn hearth_cli(data: &std::path::Path, url: &str, args: &[&str]) -> (bool, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HEARTH_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args(["--data-dir", data.to_str().unwrap(), "--database-url", url])
        .args(args)
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `hearth ingest DIR --collection C --owner U` stores a folder's files into the user's
/// named collection and ingests them before it exits; a second run skips unchanged files and
/// re-ingests a changed one; search finds them. On PostgreSQL a server runs meanwhile.
async fn hearth_ingest_indexes_a_folder(backend: Backend) {
    let (_folder, docs) = handbook();
    let mut s = TestServer::start(backend).await;
    let u = s.user("archivist").await;
    let url = s.state.config.database_url();
    let data_dir = s.keep_data();
    let data = data_dir.path().to_path_buf();
    let server = match backend {
        // One process per SQLite file: the server goes before the command runs.
        Backend::Sqlite => {
            s.stop_and_wait().await;
            drop(s);
            crate::plugins::wait_unlocked(&data.join("hearth.db.lock")).await;
            None
        }
        Backend::Postgres => Some(s),
    };
    let dir = docs.to_str().unwrap();
    let args = ["--collection", "handbook", "--owner", "archivist"];
    let (ok, out) = hearth_ingest(&data, &url, &[&[dir][..], &args[..]].concat()).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("2 files to ingest, 0 unchanged, 1 skipped"),
        "{out}"
    );
    assert!(out.contains("2 documents indexed"), "{out}");
    assert!(out.contains("0 failed"), "{out}");
    let (ok, out) = hearth_ingest(&data, &url, &[&[dir][..], &args[..]].concat()).await;
    assert!(ok, "{out}");
    assert!(out.contains("0 files to ingest, 2 unchanged"), "{out}");
    std::fs::write(
        docs.join("ops/backups.txt"),
        "Backups run every night at three and are kept for ninety days.\n",
    )
    .unwrap();
    let (ok, out) = hearth_ingest(&data, &url, &[&[dir][..], &args[..]].concat()).await;
    assert!(ok, "{out}");
    assert!(out.contains("1 files to ingest, 1 unchanged"), "{out}");
    assert!(out.contains("1 documents indexed"), "{out}");
    // A missing folder and an unknown owner are refused.
    let (ok, out) = hearth_ingest(&data, &url, &["/nonexistent/folder"]).await;
    assert!(!ok && out.contains("is not a folder"), "{out}");
    let (ok, out) = hearth_ingest(&data, &url, &[dir, "--owner", "nobody"]).await;
    assert!(
        !ok && out.contains("active user \"nobody\" not found"),
        "{out}"
    );

    let s = match server {
        Some(s) => s,
        None => {
            let (data, url) = (data.clone(), url.clone());
            TestServer::start_with(backend, move |c| {
                c.data_dir = data;
                c.database_url = Some(url);
            })
            .await
        }
    };
    let hits = search(
        &s,
        &u.access,
        "how long are backups kept",
        json!({ "t": { "collection": "handbook" }, "k": 5 }),
    )
    .await;
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert_eq!(hits[0]["document"]["filename"], "backups.txt", "{hits:?}");
    assert!(hits[0]["text"].as_str().unwrap().contains("ninety days"));
    drop(s);
    drop(data_dir);
}

const MORE: &[(&str, &str)] = &[
    (
        "volcano.txt",
        "Volcanoes erupt when molten rock, gas and ash escape from a magma chamber below.",
    ),
    (
        "desert.txt",
        "Deserts receive very little rain, and their sand dunes are shaped by the wind.",
    ),
    (
        "aurora.txt",
        "Auroras glow near the poles when charged particles from the Sun meet the atmosphere.",
    ),
    (
        "forest.txt",
        "Rainforests hold most of the land's species under a dense, humid canopy of trees.",
    ),
];

const QUESTIONS: &[&str] = &[
    "what makes the sea rise and fall",
    "molten rock coming out of a mountain",
    "lights in the polar sky",
    "ice moving down a valley",
    "where do most species live",
];

/// Each question's hits as (chunk id, similarity), all chunks ranked.
async fn rankings(s: &TestServer, token: &str) -> Vec<Vec<(String, f64)>> {
    let mut out = Vec::new();
    for q in QUESTIONS {
        let hits = search(
            s,
            token,
            q,
            json!({ "mode": "VECTOR", "k": 20, "t": { "collection": "nature" } }),
        )
        .await;
        out.push(
            hits.iter()
                .map(|h| {
                    (
                        h["chunkId"].as_str().unwrap().to_string(),
                        h["similarity"].as_f64().unwrap(),
                    )
                })
                .collect(),
        );
    }
    out
}

fn assert_same_rankings(a: &[Vec<(String, f64)>], b: &[Vec<(String, f64)>], what: &str) {
    assert_eq!(a.len(), b.len());
    for (q, (x, y)) in QUESTIONS.iter().zip(a.iter().zip(b)) {
        let ids = |r: &Vec<(String, f64)>| r.iter().map(|h| h.0.clone()).collect::<Vec<_>>();
        assert_eq!(ids(x), ids(y), "{what}: {q}");
        for (hx, hy) in x.iter().zip(y) {
            assert!((hx.1 - hy.1).abs() < 1e-5, "{what}: {q}: {hx:?} {hy:?}");
        }
    }
}

/// The index a collection has after uploads and deletions (grown and pruned in place, HNSW
/// above 4 vectors here) answers exactly as one rebuilt by `reindex` and as one a new
/// process builds from the database alone, and holds exactly the database's vectors.
async fn a_rebuilt_index_equals_the_live_one(backend: Backend) {
    let mut s = TestServer::start_with(backend, |c| c.rag.hnsw_above = 4).await;
    let u = s.user("indexer").await;
    let t = json!({ "collection": "nature" });
    let mut ids = Vec::new();
    for (name, text) in CORPUS.iter().chain(MORE) {
        let id = upload_ok(&s, &u.access, name, text.as_bytes().to_vec(), t.clone()).await;
        assert_eq!(settled(&s, &u.access, &id).await["status"], "INDEXED");
        ids.push(id);
    }
    // A deletion and a later upload change the live index in place.
    let (_, b) = s
        .gql(
            Some(&u.access),
            "mutation($id: ID!) { deleteDocument(id: $id) }",
            json!({ "id": ids[1] }),
        )
        .await;
    assert_eq!(b["data"]["deleteDocument"], true, "{b}");
    let id = upload_ok(
        &s,
        &u.access,
        "glaciers-again.txt",
        b"Glaciers are slow rivers of ice grinding valleys as they creep downhill.".to_vec(),
        t.clone(),
    )
    .await;
    assert_eq!(settled(&s, &u.access, &id).await["status"], "INDEXED");
    let live = rankings(&s, &u.access).await;
    assert!(live.iter().all(|r| !r.is_empty()));

    // The index holds exactly the database's vectors.
    let c = hearth::rag::reindex::all(&s.state)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.name == "nature")
        .unwrap();
    let version = hearth::vector::store::version(&s.state, c.id)
        .await
        .unwrap();
    let held = s
        .state
        .rag
        .vectors
        .sync(&s.state, c.id, &c.embed_model, version)
        .await
        .unwrap();
    let stored = hearth::vector::store::ids(&s.state, c.id, &c.embed_model)
        .await
        .unwrap();
    assert_eq!(held, stored.len());

    // A full rebuild through the mutation.
    let (_, r) = s
        .gql(Some(&u.access), "mutation { reindex { id } }", json!({}))
        .await;
    let job = wait_job(&s, &u.access, r["data"]["reindex"]["id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "SUCCEEDED", "{job}");
    assert_same_rankings(&live, &rankings(&s, &u.access).await, "after reindex");

    // A new process with no index files builds its index from the database alone.
    let url = s.state.config.database_url();
    s.stop_and_wait().await;
    let dir = s.keep_data();
    let _first = match backend {
        Backend::Sqlite => {
            drop(s);
            crate::plugins::wait_unlocked(&dir.path().join("hearth.db.lock")).await;
            None
        }
        Backend::Postgres => Some(s),
    };
    std::fs::remove_dir_all(dir.path().join("vectors")).unwrap();
    let data = dir.path().to_path_buf();
    let fresh = TestServer::start_with(backend, move |c| {
        c.data_dir = data;
        c.database_url = Some(url);
        c.rag.hnsw_above = 4;
    })
    .await;
    assert_same_rankings(&live, &rankings(&fresh, &u.access).await, "fresh process");
    drop(fresh);
    drop(dir);
}

both_backends!(
    a_rebuilt_index_equals_the_live_one,
    a_new_embedding_model_takes_over_atomically,
    watched_folders_are_indexed_for_everyone,
    hearth_ingest_indexes_a_folder
);

/// Chunks, vectors and documents as the database holds them (for the checks that no chunk
/// lacks its vector and no vector its chunk).
async fn counts(db_url: &str) -> (i64, i64, i64) {
    let db = hearth::db::Db::connect(db_url, 2, Duration::from_secs(10))
        .await
        .unwrap();
    read_counts(&db).await.unwrap()
}

async fn read_counts(db: &hearth::db::Db) -> hearth::error::AppResult<(i64, i64, i64)> {
    use diesel::QueryDsl;
    use diesel_async::RunQueryDsl;
    use hearth::db::schema::{chunk_vectors, chunks, documents};
    hearth::db_run!(db, read, |conn| {
        let c: i64 = chunks::table.count().get_result(conn).await?;
        let v: i64 = chunk_vectors::table.count().get_result(conn).await?;
        let d: i64 = documents::table.count().get_result(conn).await?;
        Ok::<_, hearth::error::AppError>((c, v, d))
    })
}

/// A server killed mid-embedding: the next one retries the ingestion once the lease ran out;
/// the document ends indexed with every chunk exactly once and a vector for each.
async fn a_killed_server_finishes_the_ingestion(backend: Backend) {
    use crate::jobs::{call, create_root, login_root, serve};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db_url = match backend {
        Backend::Sqlite => format!("sqlite://{}", data.join("hearth.db").display()),
        Backend::Postgres => crate::support::pg_database().await,
    };
    create_root(&data, &db_url);
    let mut first = serve(&data, &db_url).await;
    let token = login_root(&first.base).await;
    // Enough text for a few seconds of embedding.
    let text: String = (0..2500)
        .map(|i| format!("Minute {i}: the committee reviewed item {i} and agreed on the budget for phase {}.\n\n", i % 17))
        .collect();
    let form = reqwest::multipart::Form::new()
        .text("operations", json!({ "query": "mutation($f: Upload!) { uploadDocument(file: $f, target: {collection: \"minutes\"}) { id } }", "variables": { "f": null } }).to_string())
        .text("map", json!({ "0": ["variables.f"] }).to_string())
        .part("0", reqwest::multipart::Part::bytes(text.into_bytes()).file_name("minutes.txt"));
    let up: Value = reqwest::Client::new()
        .post(format!("{}/graphql", first.base))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = up["data"]["uploadDocument"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let doc_query = json!({ "query": "query($id: ID!) { document(id: $id) { status chunksTotal chunksEmbedded } }", "variables": { "id": id } });
    let start = std::time::Instant::now();
    loop {
        let d = call(
            &first.base,
            &token,
            reqwest::Method::POST,
            "/graphql",
            doc_query.clone(),
        )
        .await;
        let d = &d["data"]["document"];
        if d["status"] == "EMBEDDING" && d["chunksEmbedded"].as_i64().unwrap_or(0) > 0 {
            break;
        }
        assert!(
            d["status"] != "INDEXED",
            "indexed before the kill: make the text longer"
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never embedding: {d}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    drop(first);
    let (chunks, vectors, _) = counts(&db_url).await;
    assert_eq!(
        (chunks, vectors),
        (0, 0),
        "nothing is stored before the document is done"
    );
    let second = serve(&data, &db_url).await;
    let start = std::time::Instant::now();
    let d = loop {
        let d = call(
            &second.base,
            &token,
            reqwest::Method::POST,
            "/graphql",
            doc_query.clone(),
        )
        .await;
        let d = d["data"]["document"].clone();
        if d["status"] == "INDEXED" {
            break d;
        }
        assert!(d["status"] != "FAILED", "{d}");
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "never finished: {d}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (chunks, vectors, docs) = counts(&db_url).await;
    assert_eq!(docs, 1);
    assert_eq!(chunks, d["chunksTotal"].as_i64().unwrap(), "{d}");
    assert_eq!(vectors, chunks, "one vector per chunk");
    let hits = call(&second.base, &token, reqwest::Method::POST, "/graphql", json!({ "query": "{ search(query: \"budget for item 1234\", mode: KEYWORD, topK: 3) { text } }" })).await;
    assert!(
        hits["data"]["search"][0]["text"]
            .as_str()
            .unwrap()
            .contains("item 1234"),
        "{hits}"
    );
}

/// Two servers on one PostgreSQL: a document indexed through one is found through the
/// other, and once deleted through one it is gone from the other's search too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_postgres_converge() {
    let a = TestServer::start(Backend::Postgres).await;
    let url = a.state.config.database_url();
    let b = TestServer::start_with(Backend::Postgres, |c| c.database_url = Some(url)).await;
    let u = a.user("shared").await;
    let t = json!({ "collection": "notes" });
    let first = upload_ok(
        &a,
        &u.access,
        "tides.txt",
        CORPUS[0].1.as_bytes().to_vec(),
        t.clone(),
    )
    .await;
    // Either server's worker may ingest it: the bytes are in the database.
    assert_eq!(settled(&a, &u.access, &first).await["status"], "INDEXED");
    let q = "what pulls the oceans";
    let hits = search(&b, &u.access, q, json!({ "mode": "VECTOR" })).await;
    assert_eq!(
        hits[0]["document"]["id"], *first,
        "B builds its index from the database"
    );
    // A second document through B, found through A (whose index was built before it).
    let second = upload_ok(
        &b,
        &u.access,
        "glaciers.txt",
        CORPUS[1].1.as_bytes().to_vec(),
        t.clone(),
    )
    .await;
    settled(&b, &u.access, &second).await;
    let hits = search(&a, &u.access, "rivers of ice", json!({ "mode": "VECTOR" })).await;
    assert_eq!(hits[0]["document"]["id"], *second);
    // Deleted through A: gone from B's index.
    let (_, r) = a
        .gql(
            Some(&u.access),
            "mutation($id: ID!) { deleteDocument(id: $id) }",
            json!({ "id": first }),
        )
        .await;
    assert_eq!(r["data"]["deleteDocument"], true);
    let hits = search(&b, &u.access, q, json!({ "mode": "VECTOR", "k": 10 })).await;
    assert!(
        hits.iter().all(|h| h["document"]["id"] != *first),
        "{hits:?}"
    );
    assert_eq!(hits.len(), 1);
}

both_backends!(a_killed_server_finishes_the_ingestion);

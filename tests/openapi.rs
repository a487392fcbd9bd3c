//! The OpenAPI document: committed and current, served as built, complete (every REST door
//! of `src/rest/` documented, every reference resolved, ids unique), and its two viewers
//! render it in a real browser from files in the binary.

use crate::browser::Browser;
use crate::support::{Backend, TestServer};
use serde_json::Value;
use std::collections::{BTreeSet, HashSet};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = vec![];
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                ops.push((m.to_string(), path.clone(), op.clone()));
            }
        }
    }
    ops
}

#[test]
fn committed_openapi_is_current() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
        .expect("openapi.json is committed at the repository root");
    assert!(
        committed == hearth::rest::openapi::json(),
        "openapi.json is stale: run `make openapi` and commit it"
    );
}

/// Every REST module registers its doors through `routes!` (documented handlers): a plain
/// `.route(` would serve a door the document does not have.
#[test]
fn every_rest_door_is_documented() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/rest");
    let mut schema_names = HashSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let src = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            !src.contains(".route("),
            "{name} registers a door with .route(): use routes!(…) over #[utoipa::path] handlers"
        );
        // Schema names are global in the document: two body types of one name would
        // silently describe one door with the other's fields.
        let lines: Vec<&str> = src.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !(line.contains("#[derive(") && line.contains("ToSchema")) {
                continue;
            }
            let rest = &lines[i + 1..];
            let named = rest
                .iter()
                .take_while(|l| !l.contains("struct ") && !l.contains("enum "))
                .find_map(|l| l.trim().strip_prefix("#[schema(as = "))
                .map(|s| s.trim_end_matches(")]").to_string());
            let declared = rest
                .iter()
                .find_map(|l| {
                    let words: Vec<&str> = l.split_whitespace().collect();
                    let at = words.iter().position(|w| *w == "struct" || *w == "enum")?;
                    words.get(at + 1).copied()
                })
                .map(|w| w.split(['{', '(', '<', ';']).next().unwrap().to_string())
                .unwrap_or_else(|| panic!("{name}:{}: a ToSchema derive without its type", i + 1));
            let schema = named.unwrap_or(declared);
            assert!(
                schema_names.insert(schema.clone()),
                "two ToSchema types are named {schema} (give one #[schema(as = …)])"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_describes_every_door() {
    let s = TestServer::start(Backend::Sqlite).await;
    // Public, like the seeds' own `/openapi.json`.
    let res = s.http.get(s.url("/openapi.json")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let doc: Value = res.json().await.unwrap();
    assert_eq!(&doc, hearth::rest::openapi::document());
    assert_eq!(doc["openapi"], "3.1.0");
    let wrong = s
        .http
        .post(s.url("/openapi.json"))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 405, "the document is read-only");

    let ops = operations(&doc);
    // Each documented API is there, with doors the seeds name.
    for (method, path) in [
        ("post", "/api/chat"),
        ("get", "/ws/chat"),
        ("post", "/api/auth/login"),
        ("get", "/api/messages/stream/{chat_id}"),
        ("post", "/api/v1/rag/query"),
        ("post", "/api/v1/voice/transcribe"),
        ("post", "/plugins/upload"),
        ("post", "/backup/import"),
        ("get", "/backup/export"),
        ("post", "/history/replay"),
        ("get", "/api/monitoring/history"),
        ("get", "/api/parameters/category/{param}"),
        ("post", "/v1/chat/completions"),
        ("post", "/v1/embeddings"),
        ("get", "/health"),
        ("get", "/metrics"),
    ] {
        assert!(
            ops.iter().any(|(m, p, _)| m == method && p == path),
            "{method} {path} is documented"
        );
    }
    assert!(ops.len() >= 95, "{} operations", ops.len());

    let mut ids = BTreeSet::new();
    let tags: HashSet<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for (m, p, op) in &ops {
        let what = format!("{m} {p}");
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{what} has a summary"
        );
        assert!(
            ids.insert(op["operationId"].as_str().unwrap().to_string()),
            "{what}: operation ids are unique"
        );
        let op_tags = op["tags"].as_array().expect("tagged");
        assert!(
            op_tags.iter().all(|t| tags.contains(t.as_str().unwrap())),
            "{what}: its tags are declared"
        );
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|k| k.starts_with(['1', '2', '3']))
                || responses.contains_key("501"),
            "{what} documents its answer"
        );
        assert!(
            responses.contains_key("default"),
            "{what} documents its errors"
        );
        // Path parameters are declared, one for each `{…}`.
        for seg in p.split('/').filter(|s| s.starts_with('{')) {
            let name = seg.trim_matches(['{', '}']);
            let declared = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|q| q["name"] == name && q["in"] == "path"));
            assert!(declared, "{what} declares its path parameter {name}");
        }
    }

    // The error body is the door's API's; a limited door documents its 429 and headers.
    let error_of = |m: &str, p: &str| {
        doc["paths"][p][m]["responses"]["default"]["content"]["application/json"]["schema"]["$ref"]
            .clone()
    };
    assert_eq!(
        error_of("post", "/api/v1/auth/login"),
        "#/components/schemas/NexusError"
    );
    assert_eq!(
        error_of("get", "/v1/models"),
        "#/components/schemas/OpenAiError"
    );
    assert_eq!(
        error_of("get", "/api/config"),
        "#/components/schemas/RunnerError"
    );
    assert_eq!(error_of("get", "/plugins"), "#/components/schemas/Error");
    let limited = &doc["paths"]["/api/chat"]["post"]["responses"]["429"];
    for h in [
        "Retry-After",
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
    ] {
        assert!(
            limited["headers"].get(h).is_some(),
            "429 of /api/chat names {h}"
        );
    }
    assert!(doc["paths"]["/plugins"]["get"]["responses"]
        .get("429")
        .is_none());
    // Anonymous doors say so; the others need one of the three credentials.
    assert_eq!(
        doc["paths"]["/api/auth/login"]["post"]["security"],
        serde_json::json!([{}])
    );
    assert!(doc["paths"]["/plugins"]["get"].get("security").is_none());
    assert_eq!(doc["security"].as_array().unwrap().len(), 3);

    // Every reference resolves.
    let text = doc.to_string();
    for r in text.split("\"$ref\":\"").skip(1) {
        let target = r.split('"').next().unwrap();
        let name = target
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {target}"));
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "{target} resolves"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_and_redoc_render_offline() {
    let s = TestServer::start(Backend::Sqlite).await;
    let doc = hearth::rest::openapi::document();
    let ops = operations(doc);
    let operations = ops.len();
    // Swagger UI lists an operation under each of its tags.
    let listed: usize = ops
        .iter()
        .map(|(_, _, op)| op["tags"].as_array().unwrap().len())
        .sum();
    s.user("reader").await;
    let b = Browser::start("swagger_ui_and_redoc_render_offline").await;

    // From the web UI's navigation, as a person finds it.
    b.goto(&s.url("/")).await;
    b.fill("#login-form input[name=user]", "reader").await;
    b.fill("#login-form input[name=password]", "password123")
        .await;
    b.click("#login-form button[type=submit]").await;
    b.wait_for(
        "!document.querySelector('#app').hidden",
        "the app shows after login",
    )
    .await;
    b.click("nav a[href='/docs']").await;
    b.wait_for(
        &format!("document.querySelectorAll('.opblock').length === {listed}"),
        "Swagger UI lists every operation",
    )
    .await;
    let title = b
        .eval("document.querySelector('.info .title')?.textContent || ''")
        .await;
    assert!(
        title.as_str().unwrap().contains("Hearth REST API"),
        "{title}"
    );
    let foreign = "[...document.scripts, ...document.querySelectorAll('link[rel=stylesheet]')]\
                   .map(e => e.src || e.href).filter(u => u && !u.startsWith(location.origin))";
    assert_eq!(
        b.eval(foreign).await,
        serde_json::json!([]),
        "nothing from a CDN"
    );
    b.assert_clean().await;

    b.goto(&s.url("/redoc")).await;
    b.wait_for(
        "!!document.querySelector('.api-info h1') && document.querySelectorAll('[data-section-id^=\"operation/\"], [id^=\"operation/\"]').length > 0",
        "ReDoc renders the document",
    )
    .await;
    let h1 = b
        .eval("document.querySelector('.api-info h1').textContent")
        .await;
    assert!(h1.as_str().unwrap().contains("Hearth REST API"), "{h1}");
    let shown = b
        .eval("new Set([...document.querySelectorAll('[data-section-id^=\"operation/\"]')].map(e => e.dataset.sectionId)).size")
        .await;
    assert_eq!(
        shown.as_u64().unwrap() as usize,
        operations,
        "ReDoc shows every operation"
    );
    assert_eq!(
        b.eval(foreign).await,
        serde_json::json!([]),
        "nothing from a CDN"
    );
    b.assert_clean().await;
}

//! Documents and retrieval through GraphQL: uploads of every type (generated PDF and DOCX,
//! HTML, Markdown, code, data) are extracted, chunked and indexed with the real model and
//! FAISS; search finds them with exact spans and pages in each mode; identical bytes are
//! detected; delete removes them from search; other users see nothing; bad files get clear
//! errors and leave nothing behind.

use crate::both_backends;
use crate::fixtures;
use crate::support::{Backend, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

const UPLOAD: &str = "mutation($f: Upload!, $t: DocumentTarget!, $m: JSON) {
  uploadDocument(file: $f, target: $t, metadata: $m) { id kind status sha256 mimeType collectionId filename metadata }
}";

/// Uploads `bytes` as `filename` through the GraphQL multipart request spec.
pub async fn upload(
    s: &TestServer,
    token: &str,
    filename: &str,
    bytes: Vec<u8>,
    target: Value,
) -> (StatusCode, Value) {
    let operations = json!({ "query": UPLOAD, "variables": { "f": null, "t": target } });
    let form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", json!({ "0": ["variables.f"] }).to_string())
        .part(
            "0",
            reqwest::multipart::Part::bytes(bytes)
                .file_name(filename.to_string())
                .mime_str("application/octet-stream")
                .unwrap(),
        );
    let res = s
        .http
        .post(s.url("/graphql"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Uploads and returns the document id, failing the test on any error.
pub async fn upload_ok(
    s: &TestServer,
    token: &str,
    filename: &str,
    bytes: Vec<u8>,
    target: Value,
) -> String {
    let (st, b) = upload(s, token, filename, bytes, target).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert!(b["errors"].is_null(), "{b}");
    b["data"]["uploadDocument"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Waits until a document is indexed (or failed) and returns it.
pub async fn settled(s: &TestServer, token: &str, id: &str) -> Value {
    for _ in 0..600 {
        let (_, b) = s
            .gql(
                Some(token),
                "query($id: ID!) { document(id: $id) { id status error pages chunksTotal chunksEmbedded kind text } }",
                json!({ "id": id }),
            )
            .await;
        let d = &b["data"]["document"];
        if matches!(d["status"].as_str(), Some("INDEXED" | "FAILED" | "STORED")) {
            return d.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("document {id} was not indexed within 60 s");
}

/// Searches and returns the hits.
pub async fn search(s: &TestServer, token: &str, query: &str, extra: Value) -> Vec<Value> {
    let mut vars = json!({ "q": query });
    if let Value::Object(m) = extra {
        vars.as_object_mut().unwrap().extend(m);
    }
    let (st, b) = s
        .gql(
            Some(token),
            "query($q: String!, $t: DocumentTarget, $k: Int, $mode: SearchMode, $th: Float) {
               search(query: $q, target: $t, topK: $k, mode: $mode, threshold: $th) {
                 text score similarity chunkId chunkIndex span { start end } page sha256
                 document { id filename kind }
               }
             }",
            vars,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert!(b["errors"].is_null(), "{b}");
    b["data"]["search"].as_array().unwrap().clone()
}

fn chars(text: &str, start: i64, end: i64) -> String {
    text.chars()
        .skip(start as usize)
        .take((end - start) as usize)
        .collect()
}

const PAGE_ONE: &[&str] = &[
    "Lighthouse keeping in the nineteenth century.",
    "Keepers trimmed the wicks and polished the lenses every evening.",
];
const PAGE_TWO: &[&str] = &[
    "The Fresnel lens concentrated the lamp's light into a beam.",
    "Its glass prisms were arranged in concentric rings.",
];
const PAGE_THREE: &[&str] = &[
    "Fog signals used horns and bells when the light could not be seen.",
    "Keepers sounded the fog bell every thirty seconds through the night.",
];

async fn every_type_is_indexed_and_found(backend: Backend) {
    // Small chunks, so each page of the PDF is a chunk of its own.
    let s = TestServer::start_with(backend, |c| {
        c.rag.chunk_tokens = 40;
        c.rag.chunk_overlap = 0;
    })
    .await;
    let u = s.user("reader").await;
    let t = json!({ "collection": "library" });

    let pdf = upload_ok(
        &s,
        &u.access,
        "lighthouses.pdf",
        fixtures::pdf(&[PAGE_ONE, PAGE_TWO, PAGE_THREE]),
        t.clone(),
    )
    .await;
    let docx = upload_ok(
        &s,
        &u.access,
        "bread.docx",
        fixtures::docx(&[
            "Sourdough bread rises with wild yeast and lactic bacteria.",
            "Bakers feed the starter with flour and water every day.",
        ]),
        t.clone(),
    )
    .await;
    let html = upload_ok(
        &s,
        &u.access,
        "bees.html",
        b"<!DOCTYPE html><html><head><title>Bees</title><script>var x = 1;</script></head><body>\
          <h1>Honey bees</h1><p>Worker bees perform a <b>waggle dance</b> to tell the hive where flowers are.</p>\
          </body></html>"
            .to_vec(),
        t.clone(),
    )
    .await;
    let md = upload_ok(
        &s,
        &u.access,
        "volcano.md",
        "# Volcanoes\n\nMagma that reaches the surface is called lava. Basalt forms when lava cools quickly.\n"
            .as_bytes()
            .to_vec(),
        t.clone(),
    )
    .await;
    let code = upload_ok(
        &s,
        &u.access,
        "fib.py",
        b"def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n".to_vec(),
        t.clone(),
    )
    .await;
    let data = upload_ok(
        &s,
        &u.access,
        "planets.json",
        br#"{"planets": [{"name": "Jupiter", "fact": "the largest planet has a great red spot storm"}]}"#.to_vec(),
        t.clone(),
    )
    .await;

    let expected = [
        (&pdf, "PDF"),
        (&docx, "DOCX"),
        (&html, "HTML"),
        (&md, "MARKDOWN"),
        (&code, "CODE"),
        (&data, "DATA"),
    ];
    let mut texts = std::collections::HashMap::new();
    for (id, kind) in expected {
        let d = settled(&s, &u.access, id).await;
        assert_eq!(d["status"], "INDEXED", "{d}");
        assert_eq!(d["kind"], kind, "{d}");
        assert!(d["chunksTotal"].as_i64().unwrap() >= 1, "{d}");
        assert_eq!(d["chunksTotal"], d["chunksEmbedded"]);
        texts.insert(id.clone(), d["text"].as_str().unwrap().to_string());
    }
    let pdf_doc = settled(&s, &u.access, &pdf).await;
    assert_eq!(pdf_doc["pages"], 3, "{pdf_doc}");
    assert!(texts[&html].contains("waggle dance"), "{}", texts[&html]);
    assert!(
        !texts[&html].contains("var x"),
        "scripts are not text: {}",
        texts[&html]
    );
    assert!(texts[&docx].contains("wild yeast"), "{}", texts[&docx]);

    // Each question finds its document first, with a span that slices back to the text.
    let questions = [
        ("how did the Fresnel lens focus light?", &pdf, Some(2)),
        ("fog horns and bells", &pdf, Some(3)),
        ("sourdough starter with wild yeast", &docx, None),
        ("how do bees tell the hive where flowers are", &html, None),
        ("what is cooled lava called", &md, None),
        ("python function for fibonacci numbers", &code, None),
        ("largest planet storm", &data, None),
    ];
    for (q, want, page) in questions {
        for mode in ["HYBRID", "VECTOR", "KEYWORD"] {
            let hits = search(&s, &u.access, q, json!({ "mode": mode, "t": t })).await;
            assert!(!hits.is_empty(), "{mode} {q}: no hit");
            let top = &hits[0];
            if mode != "KEYWORD" || q != "what is cooled lava called" {
                assert_eq!(top["document"]["id"], **want, "{mode} {q}: {hits:#?}");
            }
            for h in &hits {
                let id = h["document"]["id"].as_str().unwrap();
                let span = &h["span"];
                let sliced = chars(
                    &texts[id],
                    span["start"].as_i64().unwrap(),
                    span["end"].as_i64().unwrap(),
                );
                assert_eq!(sliced, h["text"].as_str().unwrap(), "span of {h}");
            }
            if top["document"]["id"] == **want {
                if let Some(p) = page {
                    assert_eq!(top["page"], p, "{mode} {q}: {top}");
                }
            }
        }
    }
    // The similarity threshold and topK.
    let hits = search(&s, &u.access, "lighthouse lens", json!({ "k": 1 })).await;
    assert_eq!(hits.len(), 1);
    let none = search(&s, &u.access, "lighthouse lens", json!({ "th": 0.99 })).await;
    assert!(none.is_empty(), "{none:?}");

    // The same bytes in the same collection answer the same document.
    let again = upload_ok(&s, &u.access, "copy.md", "# Volcanoes\n\nMagma that reaches the surface is called lava. Basalt forms when lava cools quickly.\n".as_bytes().to_vec(), t.clone()).await;
    assert_eq!(again, md);

    // Another user: nothing of the first one's, whatever the door.
    let other = s.user("other").await;
    assert!(search(&s, &other.access, "Fresnel lens", json!({}))
        .await
        .is_empty());
    assert!(search(&s, &other.access, "Fresnel lens", json!({ "t": t }))
        .await
        .is_empty());
    let (_, b) = s
        .gql(
            Some(&other.access),
            "query($id: ID!) { document(id: $id) { id } }",
            json!({ "id": pdf }),
        )
        .await;
    assert_eq!(TestServer::gql_code(&b), "not_found", "{b}");
    let (_, b) = s
        .gql(
            Some(&other.access),
            "mutation($id: ID!) { deleteDocument(id: $id) }",
            json!({ "id": pdf }),
        )
        .await;
    assert_eq!(TestServer::gql_code(&b), "not_found", "{b}");
    let (_, b) = s
        .gql(
            Some(&other.access),
            "query($t: DocumentTarget!) { documents(target: $t) { id } }",
            json!({ "t": t }),
        )
        .await;
    assert_eq!(b["data"]["documents"], json!([]), "{b}");
    // No credentials.
    let (_, b) = s
        .gql(
            None,
            "query { search(query: \"lens\") { text } }",
            json!({}),
        )
        .await;
    assert_eq!(TestServer::gql_code(&b), "unauthenticated", "{b}");
    let (_, b) = upload(&s, "not-a-token", "x.txt", b"hello".to_vec(), t.clone()).await;
    assert!(b["errors"].is_array(), "{b}");

    // Delete: gone from search and from the document doors.
    let (_, b) = s
        .gql(
            Some(&u.access),
            "mutation($id: ID!) { deleteDocument(id: $id) }",
            json!({ "id": pdf }),
        )
        .await;
    assert_eq!(b["data"]["deleteDocument"], true, "{b}");
    let hits = search(
        &s,
        &u.access,
        "Fresnel lens lighthouse fog",
        json!({ "k": 20 }),
    )
    .await;
    assert!(
        hits.iter().all(|h| h["document"]["id"] != *pdf),
        "{hits:#?}"
    );
    let (_, b) = s
        .gql(
            Some(&u.access),
            "query($id: ID!) { document(id: $id) { id } }",
            json!({ "id": pdf }),
        )
        .await;
    assert_eq!(TestServer::gql_code(&b), "not_found");
    let (_, b) = s
        .gql(
            Some(&u.access),
            "query($t: DocumentTarget!) { documents(target: $t) { id } }",
            json!({ "t": t }),
        )
        .await;
    assert_eq!(b["data"]["documents"].as_array().unwrap().len(), 5, "{b}");
}

async fn bad_files_get_clear_errors_and_leave_nothing(backend: Backend) {
    let s = TestServer::start_with(backend, |c| {
        c.rag.max_upload_bytes = 64 * 1024;
        c.rag.max_text_chars = 100_000;
    })
    .await;
    // The first account is the instance's admin; the uploader is an ordinary user.
    let _admin = s.user("admin").await;
    let u = s.user("uploader").await;
    let t = json!({ "collection": "inbox" });
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.txt", Vec::new(), "validation_error"),
        (
            "binary.txt",
            vec![0x7f, b'E', b'L', b'F', 0, 1, 2, 3, 0, 0],
            "unsupported_media_type",
        ),
        (
            "fake.docx",
            b"PK\x03\x04 this is no zip".to_vec(),
            "unsupported_media_type",
        ),
        ("big.txt", vec![b'a'; 64 * 1024 + 1], "payload_too_large"),
        (
            "broken.json",
            b"{\"a\": ".to_vec(),
            "unsupported_media_type",
        ),
    ];
    for (name, bytes, code) in cases {
        let (_, b) = upload(&s, &u.access, name, bytes, t.clone()).await;
        assert_eq!(TestServer::gql_code(&b), code, "{name}: {b}");
    }
    // Files that pass the sniffing but do not extract: the document fails, with a reason.
    let corrupt_pdf = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage without end".to_vec();
    // 40 MB of XML in ~40 KB: over the 1.6 MB cap (16 bytes of XML per char of text).
    let bomb = fixtures::docx_bomb(40 * 1024 * 1024);
    assert!(bomb.len() < 64 * 1024, "the bomb is small: {}", bomb.len());
    for (name, bytes) in [("corrupt.pdf", corrupt_pdf), ("bomb.docx", bomb)] {
        let id = upload_ok(&s, &u.access, name, bytes, t.clone()).await;
        let d = settled(&s, &u.access, &id).await;
        assert_eq!(d["status"], "FAILED", "{name}: {d}");
        assert!(!d["error"].as_str().unwrap_or("").is_empty(), "{d}");
        assert_eq!(d["chunksTotal"], 0, "{d}");
    }
    let (_, b) = s
        .gql(
            Some(&u.access),
            "query($t: DocumentTarget!) { documents(target: $t) { filename status } }",
            json!({ "t": t }),
        )
        .await;
    assert_eq!(
        b["data"]["documents"].as_array().unwrap().len(),
        2,
        "only the two failed ones: {b}"
    );
    // The server keeps serving: a good file after the bad ones is indexed.
    let ok = upload_ok(
        &s,
        &u.access,
        "fine.txt",
        b"Penguins live in the southern hemisphere.".to_vec(),
        t.clone(),
    )
    .await;
    assert_eq!(settled(&s, &u.access, &ok).await["status"], "INDEXED");
    // A target that is not exactly one place.
    let (_, b) = upload(
        &s,
        &u.access,
        "x.txt",
        b"x".to_vec(),
        json!({ "collection": "a", "chatId": "1" }),
    )
    .await;
    assert_eq!(TestServer::gql_code(&b), "validation_error", "{b}");
    // Someone else's agent and chat.
    let other = s.user("someone").await;
    let (_, a) = s
        .gql(
            Some(&other.access),
            "mutation { createAgent(input: {name: \"Private\", isPublic: false}) { id } }",
            json!({}),
        )
        .await;
    let agent = a["data"]["createAgent"]["id"].as_str().unwrap().to_string();
    let (_, b) = upload(
        &s,
        &u.access,
        "x.txt",
        b"some words".to_vec(),
        json!({ "agentId": agent }),
    )
    .await;
    assert_eq!(TestServer::gql_code(&b), "not_found", "{b}");
}

both_backends!(
    every_type_is_indexed_and_found,
    bad_files_get_clear_errors_and_leave_nothing
);

/// `POST /api/documents/upload` of seed 001 with `file`, `entity_type`, `entity_id`.
async fn upload_001(
    s: &TestServer,
    token: Option<&str>,
    filename: &str,
    bytes: Vec<u8>,
    entity: (&str, &str),
) -> (StatusCode, Value) {
    let form = reqwest::multipart::Form::new()
        .text("entity_type", entity.0.to_string())
        .text("entity_id", entity.1.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(filename.to_string()),
        );
    let mut req = s.http.post(s.url("/api/documents/upload")).multipart(form);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn foyer_document_doors(backend: Backend) {
    let s = TestServer::start_with(backend, |c| c.rag.max_upload_bytes = 32 * 1024).await;
    let _admin = s.user("admin").await;
    let u = s.user("owner").await;
    let other = s.user("stranger").await;
    let (_, a) = s
        .gql(
            Some(&u.access),
            "mutation { createAgent(input: {name: \"Guide\", isPublic: false}) { id } }",
            json!({}),
        )
        .await;
    let agent = a["data"]["createAgent"]["id"].as_str().unwrap().to_string();
    let body = "Le guide Python: les listes se trient avec sorted()."
        .as_bytes()
        .to_vec();
    let (st, d) = upload_001(
        &s,
        Some(&u.access),
        "guide \"python\".txt",
        body.clone(),
        ("agent", &agent),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{d}");
    assert_eq!(d["entity_type"], "agent");
    assert_eq!(d["entity_id"].to_string(), agent);
    assert_eq!(d["file_size"], body.len());
    assert_eq!(d["mime_type"], "text/plain; charset=utf-8");
    let id = d["id"].as_i64().unwrap();
    // Download: the bytes, their type, a safe attachment name.
    let res = s
        .http
        .get(s.url(&format!("/api/documents/{id}")))
        .bearer_auth(&u.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let disp = res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        disp.starts_with("attachment; filename=\"guide python.txt\""),
        "{disp}"
    );
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.bytes().await.unwrap().to_vec(), body);
    // Doors without credentials, with someone else's document or agent, with bad bodies.
    let (st, _) = upload_001(&s, None, "a.txt", b"x".to_vec(), ("agent", &agent)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = s.get(&format!("/api/documents/{id}"), None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = s
        .get(&format!("/api/documents/{id}"), Some(&other.access))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s
        .call(
            reqwest::Method::DELETE,
            &format!("/api/documents/{id}"),
            Some(&other.access),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = upload_001(
        &s,
        Some(&other.access),
        "a.txt",
        b"words".to_vec(),
        ("agent", &agent),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, b) = upload_001(
        &s,
        Some(&u.access),
        "a.exe",
        vec![0x4d, 0x5a, 0, 0, 1, 2],
        ("agent", &agent),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    let (st, b) = upload_001(
        &s,
        Some(&u.access),
        "big.txt",
        vec![b'a'; 32 * 1024 + 1],
        ("agent", &agent),
    )
    .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    let (st, b) = upload_001(
        &s,
        Some(&u.access),
        "a.txt",
        b"words".to_vec(),
        ("project", &agent),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (st, _) = s
        .post(
            "/api/documents/upload",
            Some(&u.access),
            json!({"file": "x"}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // Delete: gone.
    let (st, _) = s
        .call(
            reqwest::Method::DELETE,
            &format!("/api/documents/{id}"),
            Some(&u.access),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s
        .get(&format!("/api/documents/{id}"), Some(&u.access))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

both_backends!(foyer_document_doors);

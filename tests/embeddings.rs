//! The embedding model through `POST /v1/embeddings`: the known similarities of the model
//! files, OpenAI's request and response shapes (floats and base64), the dynamic batcher under
//! concurrent callers (same vectors as alone), back-pressure, and every bad request.

use crate::support::{Backend, TestServer};
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn embed(s: &TestServer, token: &str, body: Value) -> (StatusCode, Value) {
    s.post("/v1/embeddings", Some(token), body).await
}

fn vectors(b: &Value) -> Vec<Vec<f32>> {
    b["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|d| {
            d["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_gives_its_known_similarities() {
    let s = TestServer::start(Backend::Sqlite).await;
    let u = s.user("reader").await;
    let (st, b) = embed(
        &s,
        &u.access,
        json!({"model": "all-minilm-l6-v2", "input": [
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The girl is carrying a baby."
        ]}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["object"], "list");
    assert_eq!(b["model"], "all-minilm-l6-v2");
    assert_eq!(b["data"][2]["index"], 2);
    assert!(b["usage"]["prompt_tokens"].as_u64().unwrap() > 10);
    let v = vectors(&b);
    assert_eq!(v[0].len(), 384);
    assert!((dot(&v[0], &v[0]) - 1.0).abs() < 1e-4, "unit vectors");
    let near = dot(&v[0], &v[1]);
    let far = dot(&v[0], &v[2]);
    assert!((near - 0.753).abs() <= 0.005, "food/bread: {near}");
    assert!((far - -0.105).abs() <= 0.005, "food/baby: {far}");
    // A single string, and base64 (what the OpenAI SDKs ask for by default).
    let (st, one) = embed(&s, &u.access, json!({"input": "A man is eating food."})).await;
    assert_eq!(st, StatusCode::OK, "{one}");
    let single = &vectors(&one)[0];
    assert!(dot(single, &v[0]) > 0.9999);
    let (_, b64) = embed(
        &s,
        &u.access,
        json!({"input": "A man is eating food.", "encoding_format": "base64"}),
    )
    .await;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(&decoded, single);
}

/// Fifty callers at once share batches and get exactly what they would alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_batches_and_get_their_own_vectors() {
    let s = TestServer::start(Backend::Postgres).await;
    let u = s.user("crowd").await;
    let texts: Vec<String> = (0..50)
        .map(|i| {
            format!(
                "Sentence number {i} about {} things.",
                "many ".repeat(i % 7)
            )
        })
        .collect();
    let (_, alone) = embed(&s, &u.access, json!({"input": texts})).await;
    let alone = vectors(&alone);
    let calls = texts.iter().map(|t| {
        let s = &s;
        let token = u.access.clone();
        let t = t.clone();
        async move { embed(s, &token, json!({"input": t})).await }
    });
    let answers = futures_util::future::join_all(calls).await;
    for (i, (st, b)) in answers.into_iter().enumerate() {
        assert_eq!(st, StatusCode::OK, "{b}");
        let v = &vectors(&b)[0];
        assert!(dot(v, &alone[i]) > 0.9999, "text {i} changed in a batch");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_embedding_requests_are_refused() {
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        c.embed.max_inputs = 10;
        c.embed.max_input_chars = 1000;
    })
    .await;
    let u = s.user("careless").await;
    // No credentials, in OpenAI's error shape.
    let (st, b) = s
        .post("/v1/embeddings", None, json!({"input": "hello"}))
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(b["error"]["type"], "authentication_error", "{b}");
    // Malformed JSON.
    let res = s
        .http
        .post(s.url("/v1/embeddings"))
        .bearer_auth(&u.access)
        .header("content-type", "application/json")
        .body("{\"input\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let cases = [
        (json!({"input": [1, 2, 3]}), "input"),
        (json!({"input": ""}), "input"),
        (json!({"input": []}), "input"),
        (json!({"input": vec!["x"; 11]}), "input"),
        (
            json!({"input": "x", "encoding_format": "int8"}),
            "encoding_format",
        ),
        (json!({"input": "x", "dimensions": 1536}), "dimensions"),
    ];
    for (body, field) in cases {
        let (st, b) = embed(&s, &u.access, body.clone()).await;
        assert!(st.is_client_error(), "{body}: {st} {b}");
        assert_eq!(b["error"]["param"], field, "{body}: {b}");
    }
    let (st, b) = embed(
        &s,
        &u.access,
        json!({"input": "x", "model": "text-embedding-3-small"}),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{b}");
    assert!(b["error"]["message"]
        .as_str()
        .unwrap()
        .contains("all-minilm-l6-v2"));
    // Oversize: one text over the limit, and a body over the server's limit.
    let (st, b) = embed(&s, &u.access, json!({"input": "y".repeat(1001)})).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    // Announced, not sent: the server refuses on the header (a real 3 MB body would race the
    // server's close against the client's writes).
    let (st, _) = s
        .post_declared_size("/v1/embeddings", &u.access, 3 * 1024 * 1024)
        .await;
    assert_eq!(st, 413);
    // The server still embeds.
    let (st, _) = embed(&s, &u.access, json!({"input": "still here"})).await;
    assert_eq!(st, StatusCode::OK);
}

/// A full queue refuses with 503 and Retry-After instead of growing; what was accepted is
/// answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_busy() {
    let s = TestServer::start_with(Backend::Sqlite, |c| c.embed.queue_depth = 4).await;
    let u = s.user("eager").await;
    let (st, _) = embed(&s, &u.access, json!({"input": "load the model"})).await;
    assert_eq!(st, StatusCode::OK);
    let many: Vec<String> = (0..64).map(|i| format!("text {i}")).collect();
    let res = s
        .http
        .post(s.url("/v1/embeddings"))
        .bearer_auth(&u.access)
        .json(&json!({"input": many}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "1");
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["error"]["code"], "model_busy", "{b}");
    // Once the texts already queued are done, the queue takes new ones again.
    let start = std::time::Instant::now();
    loop {
        let (st, b) = embed(&s, &u.access, json!({"input": ["a", "b", "c"]})).await;
        if st == StatusCode::OK {
            break;
        }
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{b}");
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "still busy"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Missing model files: a clear 503 naming the file, and the rest of the server works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_model_files_are_a_clear_error() {
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        c.embed.model = "/nonexistent/model.onnx".into();
    })
    .await;
    let u = s.user("lost").await;
    let (st, b) = embed(&s, &u.access, json!({"input": "hello"})).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/model.onnx"),
        "{b}"
    );
    assert_eq!(
        s.get("/api/auth/me", Some(&u.access)).await.0,
        StatusCode::OK
    );
}

/// The OpenAI Python SDK (installed by `make test`'s set-up) embeds through Hearth with an
/// API key as its `api_key`, unchanged (it asks for base64 by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_python_sdk_embeds() {
    let s = TestServer::start(Backend::Sqlite).await;
    let u = s.user("sdk").await;
    let (_, k) = s
        .gql(
            Some(&u.access),
            "mutation { createApiKey(input: {name: \"sdk\", permissions: [\"read\"]}) { secret } }",
            json!({}),
        )
        .await;
    let key = k["data"]["createApiKey"]["secret"]
        .as_str()
        .expect("key")
        .to_string();
    let python = crate::support::client_python();
    let script = "import sys\nfrom openai import OpenAI\nc = OpenAI(base_url=sys.argv[1], api_key=sys.argv[2])\n\
                  r = c.embeddings.create(model='all-minilm-l6-v2', input=['A man is eating food.', 'A man is eating a piece of bread.'])\n\
                  a, b = r.data[0].embedding, r.data[1].embedding\n\
                  print(len(a), round(sum(x * y for x, y in zip(a, b)), 3), r.usage.prompt_tokens > 0)\n";
    let base = s.url("/v1");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .args(["-c", script, &base, &key])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let fields: Vec<&str> = printed.split_whitespace().collect();
    assert_eq!(fields[0], "384", "{printed}");
    let sim: f32 = fields[1].parse().unwrap();
    assert!((sim - 0.753).abs() <= 0.005, "{printed}");
    assert_eq!(fields[2], "True");
}

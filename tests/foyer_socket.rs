//! Seed 001's socket.io endpoint driven by the python-socketio client
//! (`tests/clients/socketio_chat.py`): a bad token is refused at connect, `typing` reaches the
//! chat's other socket, each stored message arrives as `new_message` in seed 001's shape, and
//! someone else's chat cannot be joined, and a message over the size limit closes only the
//! socket that sent it. On PostgreSQL the sockets are held by one process and
//! the message is stored through another. Messages spend their own per-address budget.

use crate::both_backends;
use crate::chat_turns::{new_chat, remote_model};
use crate::mock_llm::{MockLlm, Script};
use crate::support::{Backend, TestServer};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

both_backends!(socket_io_chat_events);

fn script() -> &'static str {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/socketio_chat.py"
    )
}

/// Over `foyer_socket` (3 per hour here), messages are answered `rate_limited` and the socket
/// stays open; seed 001's REST budget is a separate one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_io_messages_spend_their_budget() {
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        c.rate_limits.foyer_socket = hearth::config::Budget::new(3, 3600);
        c.rate_limits.foyer = hearth::config::Budget::new(100, 60);
    })
    .await;
    let alice = s.user("alice").await;
    let chat = new_chat(&s, &alice.access, None, None).await;
    let out = tokio::process::Command::new(crate::support::client_python())
        .args([script(), &s.base, &alice.access, &chat, "0", "flood"])
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{stdout}"));
    // The join and two typing notices fit; the other two are refused.
    assert_eq!(
        v["data"],
        json!({"joined": true, "errors": ["rate_limited", "rate_limited"], "connected": true}),
        "{v}"
    );
    let r = s
        .http
        .get(format!("{}/api/chats", s.base))
        .bearer_auth(&alice.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ratelimit-remaining"], "99");
}

async fn socket_io_chat_events(b: Backend) {
    let writer = TestServer::start(b).await;
    // On PostgreSQL a second process holds the sockets.
    let second = match b {
        Backend::Postgres => {
            let url = writer.state.config.database_url();
            Some(TestServer::start_with(b, |c| c.database_url = Some(url)).await)
        }
        Backend::Sqlite => None,
    };
    let sockets = second.as_ref().unwrap_or(&writer);
    let mock = MockLlm::start().await;
    let admin = writer.user("admin").await;
    let alice = writer.user("alice").await;
    remote_model(&writer, &admin.access, "mock", &mock.base_url, 8192).await;
    let chat = new_chat(&writer, &alice.access, Some("mock"), None).await;
    let admins_chat = new_chat(&writer, &admin.access, Some("mock"), None).await;

    let mut child = tokio::process::Command::new(crate::support::client_python())
        .args([script(), &sockets.base, &alice.access, &chat, &admins_chat])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen: Vec<Value> = Vec::new();
    let deadline = std::time::Duration::from_secs(60);
    let mut sent = false;
    loop {
        let line = tokio::time::timeout(deadline, lines.next_line())
            .await
            .expect("the client answers in time")
            .expect("stdout readable");
        let Some(line) = line else { break };
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("{line}"));
        if v["kind"] == "ready" && !sent {
            sent = true;
            mock.push(Script::tokens(&["Bien", " reçu"]));
            let (_, r) = writer
                .gql(
                    Some(&alice.access),
                    "mutation($i: SendMessageInput!) { sendMessageAndWait(input: $i) { assistantMessage { status } } }",
                    json!({"i": {"chatId": chat, "content": "Bonjour"}}),
                )
                .await;
            assert_eq!(
                r["data"]["sendMessageAndWait"]["assistantMessage"]["status"], "complete",
                "{r}"
            );
        }
        seen.push(v);
    }
    let status = child.wait().await.unwrap();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use tokio::io::AsyncReadExt;
        let _ = e.read_to_string(&mut stderr).await;
    }
    assert!(status.success(), "{seen:?}\n{stderr}");
    let of = |kind: &str| -> Vec<&Value> {
        seen.iter()
            .filter(|v| v["kind"] == kind)
            .map(|v| &v["data"])
            .collect()
    };
    assert_eq!(of("refused").len(), 1, "a bad token is refused: {seen:?}");
    assert!(of("accepted").is_empty());
    let typing = of("user_typing");
    assert_eq!(
        typing,
        [
            &json!({"chat_id": chat.parse::<i64>().unwrap(), "user_id": alice.user_id, "is_typing": true})
        ],
        "{seen:?}"
    );
    assert!(of("echoed_typing").is_empty(), "not echoed to the typist");
    let messages = of("new_message");
    let got: Vec<(&str, &str)> = messages
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [("user", "Bonjour"), ("assistant", "Bien reçu")],
        "{seen:?}"
    );
    assert_eq!(messages[0]["chat_id"].to_string(), chat);
    assert_eq!(messages[1]["llm_model"], "mock");
    let errors = of("error");
    assert_eq!(errors.len(), 1, "{seen:?}");
    assert_eq!(errors[0]["code"], "not_found");
    // Over `max_payload` (64 KiB): that socket is closed; the chat's other socket stays.
    assert_eq!(of("oversize_closed").len(), 1, "{seen:?}");
    assert_eq!(of("other_socket"), [&json!(true)], "{seen:?}");
}

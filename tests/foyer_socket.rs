//! Seed 001's socket.io endpoint driven by the python-socketio client
//! (`tests/clients/socketio_chat.py`): a bad token is refused at connect, `typing` reaches the
//! chat's other socket, each stored message arrives as `new_message` in seed 001's shape, and
//! someone else's chat cannot be joined, and a message over the size limit closes only the
//! socket that sent it. On PostgreSQL the sockets are held by one process and
//! the message is stored through another.

use crate::both_backends;
use crate::chat_turns::{new_chat, remote_model};
use crate::mock_llm::{MockLlm, Script};
use crate::support::{Backend, TestServer};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

both_backends!(socket_io_chat_events);

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

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/socketio_chat.py"
    );
    let mut child = tokio::process::Command::new(crate::support::client_python())
        .args([script, &sockets.base, &alice.access, &chat, &admins_chat])
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

//! The `hearth` binary: config errors name the key, `user create`, `schema`, `serve` with
//! `--bind`, one server per SQLite file, and a clean exit on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn hearth() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hearth"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HEARTH_") {
            c.env_remove(k);
        }
    }
    c
}

/// `hearth --data-dir DATA user create` for `name` (password `correct-horse`).
fn user_create(data: &std::path::Path, name: &str, admin: bool) -> std::process::Output {
    let email = format!("{name}@example.com");
    let mut args = vec![
        "--data-dir",
        data.to_str().unwrap(),
        "user",
        "create",
        "--email",
        &email,
        "--username",
        name,
        "--password",
        "correct-horse",
    ];
    if admin {
        args.push("--admin");
    }
    hearth().args(args).output().unwrap()
}

#[test]
fn invalid_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = hearth()
        .current_dir(dir.path())
        .env("HEARTH_BIND", "not-an-address")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`bind`"), "{err}");
    std::fs::write(
        dir.path().join("hearth.toml"),
        "bind = \"127.0.0.1:1\"\nbodylimit = 5\n",
    )
    .unwrap();
    let out = hearth()
        .current_dir(dir.path())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bodylimit"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn schema_command_prints_the_sdl() {
    let out = hearth().arg("schema").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        hearth::graphql::sdl()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_create_then_serve_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = user_create(&data, "root", true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = data.join("jwt_secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = dir.path().join("server.log");
    let mut child = hearth()
        .env("HEARTH_DATA_DIR", &data)
        .env("HEARTH_MONITORING__SLOW_REQUEST_MS", "1")
        .args([
            "--log-format",
            "json",
            "serve",
            "--bind",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    loop {
        if client.get(format!("{base}/health")).send().await.is_ok() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let res = client
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({"username": "root", "password": "correct-horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["user"]["role"], "admin");

    // While the server runs, commands that would write its SQLite file are refused.
    let out = user_create(&data, "late", false);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by a running Hearth server"), "{err}");

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "clean exit on SIGTERM, got {status}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "server did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // `--log-format json`: one JSON object per line; a slow request names its request id.
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["fields"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("Hearth is serving")),
        "{text}"
    );
    let slow = lines
        .iter()
        .find(|l| {
            l["fields"]["message"] == "slow request" && l["fields"]["path"] == "/api/auth/login"
        })
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(slow["level"], "WARN");
    assert!(slow["fields"]["request_id"]
        .as_str()
        .unwrap()
        .starts_with("req-"));
}

#[test]
fn example_config_is_valid() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/hearth.example.toml"))
        .unwrap();
    let cfg: hearth::config::Config = toml::from_str(&text).expect("hearth.example.toml parses");
    cfg.validate().expect("hearth.example.toml is valid");
}

/// `hearth plugin keygen`, `sign`, `pack`, `install` and `list`: a bundle signed offline
/// installs with its signature recorded; a tampered one is refused when signatures are
/// required.
#[test]
fn plugin_keygen_sign_pack_install() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = dir.path().join("author.key");
    let out = hearth()
        .args(["plugin", "keygen", "--out", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let public = printed
        .lines()
        .find_map(|l| l.strip_prefix("public key (for [plugins] trusted_keys): "))
        .expect("the public key is printed")
        .to_string();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the secret key is private");
    }
    let bundle = dir.path().join("tasks");
    std::fs::create_dir(&bundle).unwrap();
    for (name, bytes) in crate::plugins::files("tasks", |m| m) {
        std::fs::write(bundle.join(name), bytes).unwrap();
    }
    let run = |args: &[&str]| {
        hearth()
            .env("HEARTH_PLUGINS__TRUSTED_KEYS", &public)
            .env("HEARTH_PLUGINS__REQUIRE_SIGNATURE", "true")
            .env("HEARTH_PLUGINS__BUNDLED_DIR", dir.path().join("none"))
            .args(["--data-dir", data.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&[
        "plugin",
        "sign",
        bundle.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(bundle.join("plugin.sig").exists());
    let zip = dir.path().join("tasks.zip");
    let out = run(&[
        "plugin",
        "pack",
        bundle.to_str().unwrap(),
        zip.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["plugin", "install", zip.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["plugin", "list"]);
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        listed.contains("tasks") && listed.contains("disabled") && listed.contains(" signed"),
        "{listed}"
    );
    // A file changed after signing: refused, nothing changes.
    std::fs::write(bundle.join("notes.txt"), "added later").unwrap();
    let manifest = std::fs::read_to_string(bundle.join("plugin.toml")).unwrap();
    std::fs::write(
        bundle.join("plugin.toml"),
        manifest.replace("1.0.0", "1.0.1"),
    )
    .unwrap();
    let out = run(&["plugin", "install", bundle.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("trusted key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

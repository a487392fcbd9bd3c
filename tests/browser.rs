//! A real browser for the tests: Debian's headless Chromium driven over the DevTools protocol.
//! The browser has no network beyond the loopback (every other host resolves to nothing and
//! goes to a dead proxy), so a page that needs a CDN fails here as it would offline. Console
//! errors, uncaught exceptions and CSP violations are collected; a failing step saves a
//! screenshot under `target/browser-failures/`.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// One headless Chromium with one page.
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    out: futures_channel::mpsc::UnboundedSender<Message>,
    pending: Pending,
    problems: Arc<Mutex<Vec<String>>>,
    session: String,
    next_id: std::sync::atomic::AtomicU64,
    name: String,
}

fn chromium() -> &'static str {
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if std::path::Path::new(p).exists() {
            return p;
        }
    }
    panic!(
        "Chromium is not installed: run `make test` (scripts/setup.sh --with-browser installs it)"
    );
}

impl Browser {
    /// Starts Chromium and opens a blank page; `name` names the screenshot of a failure.
    pub async fn start(name: &str) -> Self {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = Command::new(chromium())
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--metrics-recording-only",
                "--remote-debugging-port=0",
                "--proxy-server=http://127.0.0.1:9",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts");
        let stderr = child.stderr.take().expect("stderr");
        let url = tokio::task::spawn_blocking(move || {
            use std::io::BufRead;
            let mut lines = std::io::BufReader::new(stderr).lines();
            for line in lines.by_ref() {
                let line = line.unwrap_or_default();
                if let Some(u) = line.strip_prefix("DevTools listening on ") {
                    let url = u.trim().to_string();
                    // Keep draining so Chromium never blocks on a full pipe.
                    std::thread::spawn(move || for _ in lines {});
                    return Some(url);
                }
            }
            None
        });
        let url = tokio::time::timeout(Duration::from_secs(30), url)
            .await
            .expect("chromium announces its DevTools endpoint in time")
            .unwrap()
            .expect("DevTools endpoint");
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("DevTools connects");
        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = futures_channel::mpsc::unbounded::<Message>();
        tokio::spawn(async move {
            while let Some(m) = out_rx.next().await {
                if sink.send(m).await.is_err() {
                    break;
                }
            }
        });
        let pending: Pending = Default::default();
        let problems: Arc<Mutex<Vec<String>>> = Default::default();
        let (p2, pr2) = (pending.clone(), problems.clone());
        tokio::spawn(async move {
            while let Some(Ok(Message::Text(t))) = stream.next().await {
                let v: Value = match serde_json::from_str(&t) {
                    Ok(v) => v,
                    Err(_) => continue,
                };
                if let Some(id) = v["id"].as_u64() {
                    if let Some(tx) = p2.lock().unwrap().remove(&id) {
                        let _ = tx.send(v);
                    }
                    continue;
                }
                if let Some(problem) = problem_of(&v) {
                    pr2.lock().unwrap().push(problem);
                }
            }
        });
        let mut b = Browser {
            child,
            _profile: profile,
            out,
            pending,
            problems,
            session: String::new(),
            next_id: 1.into(),
            name: name.to_string(),
        };
        let target = b
            .raw("Target.createTarget", json!({"url": "about:blank"}), None)
            .await;
        let target_id = target["targetId"].as_str().expect("target").to_string();
        let attached = b
            .raw(
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
                None,
            )
            .await;
        b.session = attached["sessionId"].as_str().expect("session").to_string();
        for domain in [
            "Page.enable",
            "Runtime.enable",
            "Log.enable",
            "Network.enable",
        ] {
            b.cmd(domain, json!({})).await;
        }
        b
    }

    async fn raw(&self, method: &str, params: Value, session: Option<&str>) -> Value {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        self.out
            .unbounded_send(Message::Text(msg.to_string().into()))
            .expect("DevTools socket open");
        let v = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .unwrap_or_else(|_| panic!("DevTools {method} answered in time"))
            .expect("DevTools answer");
        if !v["error"].is_null() {
            panic!("DevTools {method}: {}", v["error"]);
        }
        v["result"].clone()
    }

    /// Runs a DevTools command on the page.
    pub async fn cmd(&self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.raw(method, params, Some(&session)).await
    }

    /// Loads a URL and waits for its `load` event (scripts with `defer` have run by then).
    pub async fn goto(&self, url: &str) {
        self.cmd("Page.navigate", json!({"url": url})).await;
        self.wait_for("document.readyState === 'complete'", "the page loads")
            .await;
    }

    /// Reloads the page (same URL, hash included) and waits for the fresh document.
    pub async fn reload(&self) {
        self.eval("window.__stale = true").await;
        self.cmd("Page.reload", json!({})).await;
        self.wait_for(
            "!window.__stale && document.readyState === 'complete'",
            "the page reloads",
        )
        .await;
    }

    /// Evaluates an expression (promises awaited) and returns its JSON value.
    pub async fn eval(&self, expression: &str) -> Value {
        let r = self
            .cmd(
                "Runtime.evaluate",
                json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
            )
            .await;
        if let Some(ex) = r.get("exceptionDetails") {
            self.fail(&format!("script failed: {expression}: {ex}"))
                .await;
        }
        r["result"]["value"].clone()
    }

    /// Waits (up to 20 s) until `condition` is truthy in the page; `what` names the step.
    pub async fn wait_for(&self, condition: &str, what: &str) {
        self.wait_up_to(Duration::from_secs(20), condition, what)
            .await
    }

    /// [`Browser::wait_for`] with a longer or shorter limit (a local model's whole answer).
    pub async fn wait_up_to(&self, limit: Duration, condition: &str, what: &str) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let r = self
                .cmd(
                    "Runtime.evaluate",
                    json!({"expression": format!("!!({condition})"), "returnByValue": true}),
                )
                .await;
            if r["result"]["value"] == json!(true) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                self.fail(&format!("timed out waiting until {what} ({condition})"))
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sets an input's value as typing would (so frameworks see an `input` event).
    pub async fn fill(&self, selector: &str, value: &str) {
        let js = format!(
            "(() => {{ const e = document.querySelector({s}); if (!e) throw new Error('no ' + {s}); \
             e.focus(); e.value = {v}; e.dispatchEvent(new Event('input', {{bubbles: true}})); return true; }})()",
            s = json!(selector),
            v = json!(value)
        );
        self.eval(&js).await;
    }

    /// Clicks the element a selector finds.
    pub async fn click(&self, selector: &str) {
        let js = format!(
            "(() => {{ const e = document.querySelector({s}); if (!e) throw new Error('no ' + {s}); e.click(); return true; }})()",
            s = json!(selector)
        );
        self.eval(&js).await;
    }

    /// Console errors, uncaught exceptions, CSP violations and failed loads seen so far.
    pub fn problems(&self) -> Vec<String> {
        self.problems.lock().unwrap().clone()
    }

    /// Asserts the page reported no problem.
    pub async fn assert_clean(&self) {
        let p = self.problems();
        if !p.is_empty() {
            self.fail(&format!("the page reported problems: {p:#?}"))
                .await;
        }
    }

    /// Saves a screenshot next to the test output, then fails the test with `why`.
    pub async fn fail(&self, why: &str) -> ! {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join("browser-failures");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{}.png", self.name));
        let shot = self
            .cmd("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        if let Some(b64) = shot["data"].as_str() {
            use base64::Engine;
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64) {
                let _ = std::fs::write(&path, bytes);
            }
        }
        panic!("{why} (screenshot: {})", path.display());
    }
}

/// What a DevTools event says went wrong, if anything.
fn problem_of(v: &Value) -> Option<String> {
    let p = &v["params"];
    match v["method"].as_str()? {
        "Runtime.exceptionThrown" => Some(format!(
            "exception: {}",
            p["exceptionDetails"]["exception"]["description"]
                .as_str()
                .unwrap_or_else(|| p["exceptionDetails"]["text"].as_str().unwrap_or("?"))
        )),
        "Runtime.consoleAPICalled" if p["type"] == "error" => {
            Some(format!("console.error: {}", p["args"]))
        }
        // An HTTP error status is an answer the page handles (a 401 before login), not a fault.
        "Log.entryAdded"
            if p["entry"]["level"] == "error"
                && !p["entry"]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("Failed to load resource: the server responded with a status") =>
        {
            Some(format!("log: {}", p["entry"]["text"]))
        }
        "Network.loadingFailed" if p["canceled"] != json!(true) => Some(format!(
            "load failed: {} ({})",
            p["requestId"], p["errorText"]
        )),
        _ => None,
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! The pages Hearth serves, in a real browser with no network: GraphiQL loads from the binary
//! under the strict CSP and runs queries with the web UI's cookie session; answers render as
//! Markdown without running anything a model wrote.

use crate::browser::Browser;
use crate::support::{Backend, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_works_offline_under_the_csp() {
    let s = TestServer::start(Backend::Sqlite).await;
    s.user("browser").await;
    let b = Browser::start("graphiql_works_offline_under_the_csp").await;

    // Log in through the web UI, as a person would.
    b.goto(&s.url("/")).await;
    b.fill("#login-form input[name=user]", "browser").await;
    b.fill("#login-form input[name=password]", "password123")
        .await;
    b.click("#login-form button[type=submit]").await;
    b.wait_for(
        "!document.querySelector('#app').hidden",
        "the app shows after login",
    )
    .await;

    b.goto(&s.url("/graphql")).await;
    b.wait_for(
        "document.querySelector('.graphiql-container') && document.documentElement.dataset.graphiql === 'ready'",
        "GraphiQL renders",
    )
    .await;
    // Under load the editor may take the first click before it is wired: click again after
    // a while if no answer came.
    let answered =
        "(document.querySelector('.graphiql-response')?.textContent || '').includes('browser')";
    for _ in 0..3 {
        b.click(".graphiql-execute-button").await;
        let mut seen = false;
        for _ in 0..25 {
            if b.eval(answered).await == serde_json::Value::Bool(true) {
                seen = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        if seen {
            break;
        }
    }
    b.wait_for(answered, "the query answers with the logged-in user")
        .await;
    let scripts = b
        .eval("[...document.scripts].map(s => s.src).filter(s => !s.startsWith(location.origin))")
        .await;
    assert_eq!(
        scripts,
        serde_json::json!([]),
        "every script comes from Hearth"
    );
    b.assert_clean().await;
}

/// With `graphql.playground = false` there is no GraphiQL, and queries over GET still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_can_be_turned_off() {
    let s = TestServer::start_with(Backend::Sqlite, |c| c.graphql.playground = false).await;
    let res = s.http.get(s.url("/graphql")).send().await.unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::NOT_FOUND);
    let on = TestServer::start(Backend::Sqlite).await;
    let res = on.http.get(on.url("/graphql")).send().await.unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::OK);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
}

/// A scripted upstream registered (by `admin`) as the server's default model.
async fn mock_default(s: &TestServer, admin: &str) -> crate::mock_llm::MockLlm {
    let mock = crate::mock_llm::MockLlm::start().await;
    crate::chat_turns::remote_model(s, admin, "mock", &mock.base_url, 8192).await;
    let (_, r) = s
        .gql(
            Some(admin),
            "mutation { setDefaultModel(key: \"mock\") }",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(r["data"]["setDefaultModel"], true, "{r}");
    mock
}

/// Logs in through the web UI's form.
async fn log_in(b: &Browser, s: &TestServer, user: &str) {
    b.goto(&s.url("/")).await;
    b.fill("#login-form input[name=user]", user).await;
    b.fill("#login-form input[name=password]", "password123")
        .await;
    b.click("#login-form button[type=submit]").await;
    b.wait_for(
        "!document.querySelector('#app').hidden",
        "the app shows after login",
    )
    .await;
}

/// Answers render as Markdown (headings, lists, tables, links, highlighted code with a copy
/// button); the usual XSS payloads in an answer run nothing and leave no foreign element.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_render_as_safe_markdown() {
    let s = TestServer::start(Backend::Sqlite).await;
    s.user("reader").await;
    let b = Browser::start("answers_render_as_safe_markdown").await;
    log_in(&b, &s, "reader").await;

    let md = "# Title\n\n- one\n- two\n\n| x | y |\n|---|---|\n| 1 | 2 |\n\nSome `inline` code and [a site](https://example.com).\n\n```rust\nfn main() { println!(\"hi\"); }\n```\n";
    let shape = b
        .eval(&format!(
            "(() => {{ const d = document.createElement('div'); HearthMarkdown.render(d, {md}); document.body.append(d);
               const a = d.querySelector('a');
               return {{ h1: d.querySelectorAll('h1').length, items: d.querySelectorAll('ul li').length,
                        cells: d.querySelectorAll('table td').length, inline: d.querySelectorAll('p code').length,
                        highlighted: d.querySelectorAll('pre code.hljs span').length > 0,
                        copy: d.querySelectorAll('pre button.copy').length,
                        rel: a.getAttribute('rel'), target: a.getAttribute('target') }}; }})()",
            md = serde_json::json!(md)
        ))
        .await;
    assert_eq!(shape["h1"], 1, "{shape}");
    assert_eq!(shape["items"], 2, "{shape}");
    assert_eq!(shape["cells"], 2, "{shape}");
    assert_eq!(shape["inline"], 1, "{shape}");
    assert_eq!(shape["highlighted"], true, "{shape}");
    assert_eq!(shape["copy"], 1, "{shape}");
    assert_eq!(shape["rel"], "noopener noreferrer", "{shape}");
    assert_eq!(shape["target"], "_blank", "{shape}");

    let payloads = serde_json::json!([
        "<img src=x onerror=\"window.__xss++\">",
        "<script>window.__xss++</script>",
        "[click](javascript:window.__xss++)",
        "[click](JaVaScRiPt:window.__xss++)",
        "[click](  javascript:window.__xss++)",
        "[x](&#106;avascript:window.__xss++)",
        "[x](data:text/html,<script>window.__xss++</script>)",
        "![pic](javascript:window.__xss++)",
        "![pic](https://tracker.example/pixel.png)",
        "<svg onload=\"window.__xss++\"><circle r=1 /></svg>",
        "<a href=\"javascript:window.__xss++\">link</a>",
        "<iframe src=\"javascript:window.__xss++\"></iframe>",
        "<details open ontoggle=\"window.__xss++\">x</details>",
        "<style>body{display:none}</style>",
        "[a]: javascript:window.__xss++\n\n[ref][a]",
        "```html\n<script>window.__xss++</script>\n```",
        "<math><mtext><table><mglyph><style><img src=x onerror=window.__xss++>",
    ]);
    let verdict = b
        .eval(&format!(
            "(async () => {{ window.__xss = 0; const host = document.createElement('div'); document.body.append(host);
               for (const p of {payloads}) {{ const d = document.createElement('div'); HearthMarkdown.render(d, p); host.append(d); }}
               await new Promise(r => setTimeout(r, 500));
               const all = [...host.querySelectorAll('*')];
               return {{ xss: window.__xss,
                        foreign: host.querySelectorAll('script,img,svg,math,iframe,details,object,embed,style,form').length,
                        handlers: all.filter(e => [...e.attributes].some(a => a.name.toLowerCase().startsWith('on'))).length,
                        badLinks: [...host.querySelectorAll('a[href]')].filter(a => !/^(https?:\\/\\/|mailto:|#)/i.test(a.getAttribute('href'))).length,
                        shownAsText: host.textContent.includes('<script>') }}; }})()"
        ))
        .await;
    assert_eq!(verdict["xss"], 0, "no payload ran: {verdict}");
    assert_eq!(verdict["foreign"], 0, "no foreign element: {verdict}");
    assert_eq!(verdict["handlers"], 0, "no event handler: {verdict}");
    assert_eq!(verdict["badLinks"], 0, "no unsafe link: {verdict}");
    assert_eq!(
        verdict["shownAsText"], true,
        "raw HTML is shown as text: {verdict}"
    );
    b.assert_clean().await;
}

/// A person's chat in the browser: a new chat, a message, the answer's tokens arriving and
/// rendered as Markdown, then the stored answer after a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_streams_and_renders_its_answer() {
    use crate::mock_llm::Script;
    let s = TestServer::start(Backend::Sqlite).await;
    let admin = s.user("chatter").await;
    let mock = mock_default(&s, &admin.access).await;
    let mut script = Script::tokens(&["Here is ", "**bold**", " and ", "`code`", "."]);
    script.token_delay = std::time::Duration::from_millis(100);
    mock.push(script);

    let b = Browser::start("a_chat_streams_and_renders_its_answer").await;
    log_in(&b, &s, "chatter").await;
    b.click("#new-chat button[type=submit]").await;
    b.wait_for(
        "!document.querySelector('#chat-view').hidden",
        "the new chat opens",
    )
    .await;
    b.fill("#compose textarea[name=content]", "Show me Markdown")
        .await;
    b.click("#compose button[type=submit]").await;
    b.wait_for(
        "!document.querySelector('#stop').hidden || document.querySelector('.message.assistant')",
        "the answer starts",
    )
    .await;
    b.wait_for(
        "document.querySelector('.message.assistant .markdown strong')?.textContent === 'bold'",
        "streamed tokens render as Markdown",
    )
    .await;
    b.wait_for(
        "document.querySelector('.message.assistant .markdown code')?.textContent === 'code' && document.querySelector('#stop').hidden",
        "the answer completes",
    )
    .await;
    // After a reload the stored answer renders the same way.
    b.goto(&s.url("/")).await;
    b.wait_for(
        "!document.querySelector('#app').hidden",
        "the session survives a reload",
    )
    .await;
    b.wait_for("document.querySelector('#chats li')", "the chat list loads")
        .await;
    b.click("#chats li").await;
    b.wait_for(
        "document.querySelector('.message.assistant .markdown strong')?.textContent === 'bold'",
        "the stored answer renders as Markdown",
    )
    .await;
    b.assert_clean().await;
}

/// The app shell a person uses: a page per capability behind hash links (deep links survive
/// a reload), the admin page for admins only, keyboard shortcuts for a new chat and for
/// stopping an answer, rename, delete and log out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_shell_navigates_and_answers_shortcuts() {
    let s = TestServer::start(Backend::Sqlite).await;
    let admin = s.user("shelladmin").await;
    s.user("shelluser").await;
    let mock = mock_default(&s, &admin.access).await;
    mock.push(crate::chat_turns::slow(200, 50));

    let b = Browser::start("the_app_shell_navigates_and_answers_shortcuts").await;
    log_in(&b, &s, "shelladmin").await;
    // Alt+N: a new chat, and its deep link.
    b.eval("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'n', code: 'KeyN', altKey: true, bubbles: true}))")
        .await;
    b.wait_for(
        "/^#\\/chats\\/\\d+$/.test(location.hash)",
        "a new chat opens at its own link",
    )
    .await;
    let link = b.eval("location.hash").await;
    // Other sections are pages of their own.
    b.click("[data-nav=agents]").await;
    b.wait_for(
        "!document.querySelector('[data-page=agents]').hidden && document.querySelector('[data-page=chats]').hidden",
        "the agents page shows",
    )
    .await;
    b.fill("#new-agent input[name=name]", "Shell helper").await;
    b.click("#new-agent button[type=submit]").await;
    b.wait_for(
        "document.querySelector('#agents').textContent.includes('Shell helper')",
        "the agent is listed",
    )
    .await;
    b.click("[data-nav=admin]").await;
    b.wait_for(
        "document.querySelector('#users tbody').textContent.includes('shelluser')",
        "admins see the users",
    )
    .await;
    // A deep link survives a reload.
    b.goto(&s.url(&format!("/{}", link.as_str().unwrap())))
        .await;
    b.wait_for(
        "!document.querySelector('#chat-view').hidden",
        "the linked chat opens after a reload",
    )
    .await;
    // Send, then Esc stops the answer; what was written is kept as cancelled.
    b.fill("#compose textarea[name=content]", "Count slowly")
        .await;
    b.click("#compose button[type=submit]").await;
    b.wait_for(
        "!document.querySelector('#stop').hidden",
        "the answer streams",
    )
    .await;
    b.wait_for("(document.querySelector('.message.assistant .markdown')?.textContent || '').includes('t2')", "tokens arrive")
        .await;
    b.eval("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape', bubbles: true}))")
        .await;
    b.wait_for(
        "document.querySelector('.message.assistant')?.textContent.includes('(cancelled)')",
        "Esc stops the answer",
    )
    .await;
    // Rename and delete.
    b.fill("#rename input[name=title]", "Renamed in the browser")
        .await;
    b.click("#rename button[type=submit]").await;
    b.wait_for(
        "document.querySelector('#chats').textContent.includes('Renamed in the browser')",
        "the rename shows in the list",
    )
    .await;
    b.eval("window.confirm = () => true").await;
    b.click("#delete-chat").await;
    b.wait_for(
        "document.querySelector('#chat-view').hidden && location.hash === '#/chats'",
        "the chat is gone",
    )
    .await;
    b.assert_clean().await;
    // A tab with the cookie but without the CSRF token (a new tab) recovers it: mutations work.
    b.eval("sessionStorage.clear()").await;
    b.reload().await;
    b.wait_for(
        "!document.querySelector('#app').hidden",
        "the app shows in the new tab",
    )
    .await;
    b.eval("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'n', code: 'KeyN', altKey: true, bubbles: true}))")
        .await;
    b.wait_for(
        "/^#\\/chats\\/\\d+$/.test(location.hash) && !document.querySelector('#chat-view').hidden",
        "a mutation works in the new tab",
    )
    .await;
    // The layout follows the system's dark theme and stacks on a phone.
    let light = b
        .eval("getComputedStyle(document.body).backgroundColor")
        .await;
    b.cmd(
        "Emulation.setEmulatedMedia",
        serde_json::json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}),
    )
    .await;
    let dark = b
        .eval("getComputedStyle(document.body).backgroundColor")
        .await;
    assert_ne!(light, dark, "a dark system theme darkens the page");
    b.cmd(
        "Emulation.setDeviceMetricsOverride",
        serde_json::json!({"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true}),
    )
    .await;
    b.wait_for(
        "document.querySelector('#detail').getBoundingClientRect().top >= document.querySelector('#sidebar').getBoundingClientRect().bottom - 1 && document.documentElement.scrollWidth <= 390",
        "on a phone the chat list stacks above the chat, without sideways scrolling",
    )
    .await;
    // A user without the admin role has no admin page, even by link.
    b.click("#logout").await;
    b.wait_for("!document.querySelector('#auth').hidden", "logged out")
        .await;
    log_in(&b, &s, "shelluser").await;
    b.goto(&s.url("/#/admin")).await;
    b.wait_for("!document.querySelector('#app').hidden", "the app shows")
        .await;
    b.wait_for(
        "document.querySelector('#nav-admin').hidden && document.querySelector('[data-page=admin]').hidden",
        "no admin page for a user",
    )
    .await;
    // Deactivating the account ends the page's session at once: back to the login form.
    let user = s.login("shelluser", "password123").await;
    let (_, r) = s
        .gql(
            Some(&admin.access),
            "mutation($id: ID!) { updateUser(id: $id, input: {isActive: false}) { isActive } }",
            serde_json::json!({"id": user.user_id.to_string()}),
        )
        .await;
    assert_eq!(r["data"]["updateUser"]["isActive"], false, "{r}");
    b.wait_for(
        "!document.querySelector('#auth').hidden && document.querySelector('#auth-error').textContent.includes('disabled')",
        "a disabled account's page returns to the login form",
    )
    .await;
    b.assert_clean().await;
}

/// A newcomer's first minutes, offline: register in the form (the first account, from this
/// machine, administers the instance), chat with the embedded local model, watch its tokens
/// arrive, and find the stored answer after a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_registers_and_chats_with_the_local_model() {
    let s = TestServer::start(Backend::Sqlite).await;
    let b = Browser::start("a_newcomer_registers_and_chats_with_the_local_model").await;
    b.goto(&s.url("/")).await;
    b.click("#show-register").await;
    b.fill("#register-form input[name=email]", "newcomer@example.com")
        .await;
    b.fill("#register-form input[name=username]", "newcomer")
        .await;
    b.fill("#register-form input[name=password]", "password123")
        .await;
    b.click("#register-form button[type=submit]").await;
    b.wait_for(
        "!document.querySelector('#app').hidden",
        "registration logs in",
    )
    .await;
    b.wait_for(
        "document.querySelector('#who').textContent.includes('admin')",
        "the first local account administers",
    )
    .await;
    b.click("#new-chat button[type=submit]").await;
    b.wait_for(
        "!document.querySelector('#chat-view').hidden",
        "a chat opens",
    )
    .await;
    b.fill(
        "#compose textarea[name=content]",
        "Say hello in five words.",
    )
    .await;
    b.click("#compose button[type=submit]").await;
    b.wait_up_to(
        std::time::Duration::from_secs(60),
        "!document.querySelector('#stop').hidden && (document.querySelector('.message.assistant .markdown')?.textContent || '').trim().length > 0",
        "the local model's tokens arrive",
    )
    .await;
    b.wait_up_to(
        std::time::Duration::from_secs(120),
        "document.querySelector('#stop').hidden",
        "the answer completes",
    )
    .await;
    let shown = b
        .eval("document.querySelector('.message.assistant .markdown').textContent.trim()")
        .await;
    b.reload().await;
    b.wait_for(
        "!document.querySelector('#chat-view').hidden",
        "the chat reopens from its link",
    )
    .await;
    let stored = b
        .eval("document.querySelector('.message.assistant .markdown').textContent.trim()")
        .await;
    assert!(!shown.as_str().unwrap_or_default().is_empty());
    assert_eq!(shown, stored, "the stored answer is what streamed");
    b.assert_clean().await;
}

/// The jobs page: create an `agent_prompt` job from the form, watch its run appear live,
/// run it again, and see the second run in the list of runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_page_creates_and_runs_a_job() {
    let s = TestServer::start(Backend::Sqlite).await;
    let admin = s.user("planner").await;
    let _mock = mock_default(&s, &admin.access).await;
    let (_, a) = s
        .gql(
            Some(&admin.access),
            "mutation { createAgent(input: {name: \"Reporter\"}) { id } }",
            serde_json::json!({}),
        )
        .await;
    assert!(a["errors"].is_null(), "{a}");
    let b = Browser::start("the_jobs_page_creates_and_runs_a_job").await;
    log_in(&b, &s, "planner").await;
    b.goto(&s.url("/#/jobs")).await;
    b.wait_for(
        "!document.querySelector('[data-page=jobs]').hidden && document.querySelector('#new-job').agent.options.length === 1",
        "the jobs page lists the agent",
    )
    .await;
    b.fill("#new-job input[name=name]", "Morning digest").await;
    b.fill("#new-job textarea[name=prompt]", "Summarise the news")
        .await;
    // Schedule: once, now (the empty time field).
    b.click("#new-job button[type=submit]").await;
    b.wait_for(
        "location.hash.startsWith('#/jobs/') && !document.querySelector('#job-view').hidden",
        "the new job opens",
    )
    .await;
    b.wait_for(
        "[...document.querySelectorAll('#job-runs .run-outcome')].map(e => e.textContent).join() === 'succeeded'",
        "its run appears and succeeds, live",
    )
    .await;
    b.wait_for(
        "[...document.querySelectorAll('#jobs .job-state')].map(e => e.textContent).join() === 'succeeded'",
        "the list shows the job succeeded",
    )
    .await;
    b.click("#job-run-now").await;
    b.wait_for(
        "[...document.querySelectorAll('#job-runs .run-outcome')].map(e => e.textContent).join() === 'succeeded,succeeded'",
        "run-now adds a second run",
    )
    .await;
    b.assert_clean().await;
}

/// The documents page: upload a file through the file picker into a new collection, watch it
/// become indexed live, search it, open the hit's passage highlighted in its text; remember
/// something and recall it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documents_page_uploads_searches_and_opens_the_passage() {
    let s = TestServer::start(Backend::Sqlite).await;
    let _admin = s.user("librarian").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("otters.txt");
    std::fs::write(
        &file,
        "Sea otters hold hands while they sleep so that they do not drift apart.\n\n\
         They keep a favourite stone in a pouch of skin to crack open shellfish.\n",
    )
    .unwrap();
    let b = Browser::start("the_documents_page_uploads_searches_and_opens_the_passage").await;
    log_in(&b, &s, "librarian").await;
    b.goto(&s.url("/#/documents")).await;
    b.wait_for(
        "!document.querySelector('[data-page=documents]').hidden",
        "the documents page shows",
    )
    .await;
    b.fill("#doc-target input[name=collection]", "animals")
        .await;
    // The file picker, as a person fills it.
    let input = b
        .cmd(
            "Runtime.evaluate",
            serde_json::json!({ "expression": "document.querySelector('#doc-file')" }),
        )
        .await;
    let object_id = input["result"]["objectId"].as_str().unwrap().to_string();
    b.cmd(
        "DOM.setFileInputFiles",
        serde_json::json!({ "files": [file.to_str().unwrap()], "objectId": object_id }),
    )
    .await;
    b.click("#doc-upload button[type=submit]").await;
    b.wait_for(
        "[...document.querySelectorAll('#documents .doc-status')].map(e => e.textContent).join().startsWith('indexed')",
        "the upload is indexed, live",
    )
    .await;
    b.fill(
        "#doc-search input[name=q]",
        "what do otters use to open shellfish",
    )
    .await;
    b.click("#doc-search button[type=submit]").await;
    b.wait_for(
        "document.querySelectorAll('#hits .hit').length >= 1",
        "the search shows its hits",
    )
    .await;
    b.click("#hits .hit button").await;
    b.wait_for(
        "!document.querySelector('#passage').hidden && (document.querySelector('#passage-text mark')?.textContent || '').includes('stone')",
        "the passage opens with the hit highlighted",
    )
    .await;
    // Memory: remembered, then recalled by meaning.
    b.fill(
        "#memory-add input[name=content]",
        "Our staging server runs in the Lyon data centre",
    )
    .await;
    b.click("#memory-add button[type=submit]").await;
    b.wait_for(
        "document.querySelector('#memory-add input[name=content]').value === ''",
        "the entry is remembered",
    )
    .await;
    b.fill("#memory-search input[name=q]", "where is staging hosted")
        .await;
    b.click("#memory-search button[type=submit]").await;
    b.wait_for(
        "(document.querySelector('#memories li')?.textContent || '').includes('Lyon data centre')",
        "memory recalls it",
    )
    .await;
    b.assert_clean().await;
}

/// The plugins page: a refused bundle shows its reason; a good one installs, enables (its
/// state live), and its function answers from the call form; agents can pick its tools.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugins_page_installs_enables_and_calls() {
    let s = TestServer::start(Backend::Sqlite).await;
    let _admin = s.user("keeper").await;
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.zip");
    std::fs::write(
        &bad,
        crate::plugins::bundle("tasks", |m| m.replace("description =", "summary =")),
    )
    .unwrap();
    let good = dir.path().join("tasks.zip");
    std::fs::write(&good, crate::plugins::bundle("tasks", |m| m)).unwrap();
    let b = Browser::start("the_plugins_page_installs_enables_and_calls").await;
    log_in(&b, &s, "keeper").await;
    b.goto(&s.url("/#/plugins")).await;
    b.wait_for(
        "!document.querySelector('[data-page=plugins]').hidden && !document.querySelector('#plugin-upload').hidden",
        "the plugins page shows its upload form to an admin",
    )
    .await;
    let pick = |path: std::path::PathBuf| {
        let b = &b;
        async move {
            let input = b
                .cmd(
                    "Runtime.evaluate",
                    serde_json::json!({ "expression": "document.querySelector('#plugin-upload input[type=file]')" }),
                )
                .await;
            let object_id = input["result"]["objectId"].as_str().unwrap().to_string();
            b.cmd(
                "DOM.setFileInputFiles",
                serde_json::json!({ "files": [path.to_str().unwrap()], "objectId": object_id }),
            )
            .await;
        }
    };
    pick(bad).await;
    b.click("#plugin-upload button[type=submit]").await;
    b.wait_for(
        "(document.querySelector('#plugin-error').textContent || '').includes('summary')",
        "a refused bundle shows the server's reason",
    )
    .await;
    pick(good).await;
    b.click("#plugin-upload button[type=submit]").await;
    b.wait_for(
        "document.querySelector('#plugins tr[data-plugin=tasks] .plugin-state')?.textContent.startsWith('disabled')",
        "the plugin is installed, disabled",
    )
    .await;
    b.click("#plugins tr[data-plugin=tasks] button[data-action=enable]")
        .await;
    b.wait_for(
        "document.querySelector('#plugins tr[data-plugin=tasks] .plugin-state')?.textContent.startsWith('running')",
        "enabling shows it running",
    )
    .await;
    b.eval("document.querySelector('#plugin-call select').value = 'tasks'")
        .await;
    b.fill("#plugin-call input[name=function]", "add_task")
        .await;
    b.fill(
        "#plugin-call textarea[name=input]",
        "{\"title\": \"from the browser\"}",
    )
    .await;
    b.click("#plugin-call button[type=submit]").await;
    b.wait_for(
        "(document.querySelector('#plugin-result').textContent || '').includes('from the browser')",
        "the call form shows the function's answer",
    )
    .await;
    b.goto(&s.url("/#/agents")).await;
    b.wait_for(
        "[...document.querySelectorAll('#new-agent select[name=tools] option')].some(o => o.value === 'add_task')",
        "the agent form offers the plugin's tools",
    )
    .await;
    b.assert_clean().await;
}

/// The admin page monitors the server: live figures over `/api/websocket`, the stored
/// history as a chart, and the log tail (here: slow-request warnings).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_page_monitors_the_server() {
    crate::operations::feed_logs();
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        c.monitoring.sample_secs = 1;
        c.monitoring.status_secs = 1;
        c.monitoring.slow_request_ms = 1;
    })
    .await;
    let admin = s.user("overseer").await;
    // Model usage for the usage table: one call of 11 + 2 tokens.
    let spent = hearth::llm::Usage {
        prompt_tokens: 11,
        completion_tokens: 2,
    };
    hearth::service::usage::record(&s.state, admin.user_id, None, "mock", spent)
        .await
        .unwrap();
    // A stored sample first, so the chart has something to draw.
    for _ in 0..100 {
        let (_, h) = s
            .get("/api/monitoring/history?hours=1", Some(&admin.access))
            .await;
        if !h["history"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let b = Browser::start("the_admin_page_monitors_the_server").await;
    log_in(&b, &s, "overseer").await;
    b.click("[data-nav=admin]").await;
    b.wait_for(
        "document.querySelector('#mon-cpu').textContent.endsWith('%') && /^\\d+$/.test(document.querySelector('#mon-requests').textContent)",
        "live figures arrive over the socket",
    )
    .await;
    b.wait_for(
        "document.querySelectorAll('#mon-chart polyline').length === 2 && document.querySelector('#mon-chart-note').textContent.includes('samples')",
        "the history is drawn",
    )
    .await;
    // Requests keep coming (each one a slow-request warning here) while the tail is watched:
    // the feed carries every test server of this process, so one warning may be crowded out.
    let pinger = {
        let (http, url, token) = (
            s.http.clone(),
            s.url("/api/monitoring"),
            admin.access.clone(),
        );
        tokio::spawn(async move {
            loop {
                let _ = http.get(&url).bearer_auth(&token).send().await;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        })
    };
    b.wait_for(
        "[...document.querySelectorAll('#mon-logs li.log-warn')].some((li) => li.textContent.includes('slow request'))",
        "the log tail shows warnings",
    )
    .await;
    pinger.abort();
    b.wait_for(
        "[...document.querySelectorAll('#usage tbody tr')].some((tr) => tr.textContent === 'overseermock1112' + '13')",
        "the usage table shows the month's calls per user and model",
    )
    .await;
    b.wait_for(
        "document.querySelectorAll('#rate-limits tbody tr').length === 13 && document.querySelector('#rate-limits').textContent.includes('GraphQL, per root field')",
        "the rate limits are listed",
    )
    .await;
    // An admin changes seed 004's budget in place: the door spends the new one at once.
    b.fill("#rate-limits tr[data-name='runner'] input", "nonsense")
        .await;
    b.click("#rate-limits tr[data-name='runner'] button").await;
    b.wait_for(
        "document.querySelector('#rate-limits-error').textContent.includes('<requests>/<period>')",
        "a bad budget is refused with the reason",
    )
    .await;
    b.fill("#rate-limits tr[data-name='runner'] input", "7/min")
        .await;
    b.click("#rate-limits tr[data-name='runner'] button").await;
    b.wait_for(
        "document.querySelector('#rate-limits tr[data-name=runner]').classList.contains('overridden') && document.querySelector('#rate-limits tr[data-name=runner] input').value === '7/min' && document.querySelector('#rate-limits-error').textContent === ''",
        "the budget is saved and marked as set here",
    )
    .await;
    let r = s
        .http
        .get(s.url("/api/config"))
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-ratelimit-limit"], "7");
    b.click("#rate-limits tr[data-name='runner'] button.link")
        .await;
    b.wait_for(
        "!document.querySelector('#rate-limits tr[data-name=runner]').classList.contains('overridden') && document.querySelector('#rate-limits tr[data-name=runner] input').value === '0'",
        "reset returns to hearth.toml's budget",
    )
    .await;
    b.assert_clean().await;
}

/// An answer grounded in an agent's documents shows its numbered sources in the chat; each
/// opens its exact passage, marked, under the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_shows_its_sources_and_their_passages() {
    let s = TestServer::start(Backend::Sqlite).await;
    let admin = s.user("gardener").await;
    let mock = mock_default(&s, &admin.access).await;
    mock.set_default(crate::mock_llm::Script::tokens(&["In late winter [1]."]));
    let (_, a) = s
        .gql(
            Some(&admin.access),
            "mutation { createAgent(input: {name: \"Gardener\"}) { id } }",
            serde_json::json!({}),
        )
        .await;
    let agent = a["data"]["createAgent"]["id"].as_str().unwrap().to_string();
    let doc = crate::documents::upload_ok(
        &s,
        &admin.access,
        "roses.txt",
        b"Roses need sun. Prune roses in late winter, just above an outward-facing bud.".to_vec(),
        serde_json::json!({ "agentId": agent }),
    )
    .await;
    crate::documents::settled(&s, &admin.access, &doc).await;
    let (_, c) = s
        .gql(
            Some(&admin.access),
            "mutation($a: ID!) { createChat(input: {agentId: $a}) { id } }",
            serde_json::json!({ "a": agent }),
        )
        .await;
    let chat = c["data"]["createChat"]["id"].as_str().unwrap().to_string();
    s.gql(Some(&admin.access), "mutation($c: ID!) { sendMessage(input: {chatId: $c, content: \"When should I prune my roses?\"}) { assistantMessageId } }", serde_json::json!({ "c": chat }))
        .await;
    crate::grounded::wait_complete(&s, &admin.access, &chat).await;

    let b = Browser::start("an_answer_shows_its_sources_and_their_passages").await;
    log_in(&b, &s, "gardener").await;
    b.goto(&s.url(&format!("/#/chats/{chat}"))).await;
    b.wait_for(
        "document.querySelector('#messages .message.assistant ol.sources button')?.textContent === '[1] roses.txt'",
        "the answer lists its cited source",
    )
    .await;
    b.click("#messages .message.assistant ol.sources button")
        .await;
    b.wait_for(
        "document.querySelector('#messages ol.sources blockquote.passage:not([hidden]) mark')?.textContent.includes('Prune roses in late winter')",
        "the source opens its passage, marked",
    )
    .await;
    b.assert_clean().await;
}

/// The admin page's backup pane: the download link serves an archive; an archive picked in
/// the form is checked first and its plan shown (an agent made after the backup would be
/// removed); the restore needs the confirmation, ends the session, and after signing in
/// again the server holds what the archive held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_page_backs_up_and_restores() {
    let s = TestServer::start(Backend::Sqlite).await;
    let admin = s.user("curator").await;
    let agent = |name: &'static str| {
        let (s, token) = (&s, admin.access.clone());
        async move {
            let (_, a) = s
                .gql(
                    Some(&token),
                    &format!("mutation {{ createAgent(input: {{name: \"{name}\"}}) {{ id }} }}"),
                    serde_json::json!({}),
                )
                .await;
            assert!(a["errors"].is_null(), "{a}");
        }
    };
    agent("Lighthouse").await;
    let res = s
        .http
        .get(s.url("/backup/export"))
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("backup.zip");
    std::fs::write(&archive, res.bytes().await.unwrap()).unwrap();
    agent("Ephemeral").await;

    let b = Browser::start("the_admin_page_backs_up_and_restores").await;
    log_in(&b, &s, "curator").await;
    b.click("[data-nav=admin]").await;
    b.wait_for(
        "!document.querySelector('[data-page=admin]').hidden",
        "the admin page shows",
    )
    .await;
    let download = b
        .eval("fetch(document.querySelector('#backup-export').href, {credentials: 'same-origin'}).then(async (r) => [r.status, r.headers.get('content-type'), (await r.arrayBuffer()).byteLength > 100])")
        .await;
    assert_eq!(download, serde_json::json!([200, "application/zip", true]));
    let input = b
        .cmd(
            "Runtime.evaluate",
            serde_json::json!({ "expression": "document.querySelector('#backup-import input[type=file]')" }),
        )
        .await;
    let object_id = input["result"]["objectId"].as_str().unwrap().to_string();
    b.cmd(
        "DOM.setFileInputFiles",
        serde_json::json!({ "files": [archive.to_str().unwrap()], "objectId": object_id }),
    )
    .await;
    b.click("#backup-import button[type=submit]").await;
    b.wait_for(
        "!document.querySelector('#backup-plan').hidden && document.querySelector('#backup-tables tr[data-table=agents]')?.textContent === 'agents1011'",
        "the plan shows the agent made after the backup would be removed",
    )
    .await;
    b.wait_for(
        "document.querySelector('#backup-restore').disabled && document.querySelector('#backup-source').textContent.includes('sqlite')",
        "the restore waits for the confirmation",
    )
    .await;
    b.click("#backup-confirm").await;
    b.click("#backup-restore").await;
    b.wait_for(
        "document.querySelector('#backup-done').textContent.startsWith('Restored')",
        "the restore is reported",
    )
    .await;
    b.wait_for(
        "!document.querySelector('#auth').hidden && document.querySelector('#app').hidden",
        "the ended session asks to sign in again",
    )
    .await;
    let again = s.login("curator", "password123").await;
    let (_, a) = s
        .gql(
            Some(&again.access),
            "{ agents { name } }",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(
        a["data"]["agents"],
        serde_json::json!([{"name": "Lighthouse"}]),
        "{a}"
    );
    b.assert_clean().await;
}

/// A page reload in the middle of an answer: the chat reopens and the answer goes on from
/// where it is — replayed from its start through `chatEvents(after:)`, then live — with no
/// gap and no repeated text, to the stored answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_resumes_the_answer_in_progress() {
    let s = TestServer::start(Backend::Sqlite).await;
    let admin = s.user("resumer").await;
    let mock = mock_default(&s, &admin.access).await;
    let tokens: Vec<String> = (0..120).map(|i| format!("w{i} ")).collect();
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    mock.set_default(crate::mock_llm::Script {
        token_delay: std::time::Duration::from_millis(30),
        ..crate::mock_llm::Script::tokens(&refs)
    });
    let expected: String = tokens.concat();
    let chat = crate::chat_turns::new_chat(&s, &admin.access, None, None).await;
    let b = Browser::start("a_reload_resumes_the_answer_in_progress").await;
    log_in(&b, &s, "resumer").await;
    b.goto(&s.url(&format!("/#/chats/{chat}"))).await;
    b.wait_for(
        "!document.querySelector('#chat-view').hidden",
        "the chat opens",
    )
    .await;
    b.fill("#compose textarea[name=content]", "Count").await;
    b.click("#compose button[type=submit]").await;
    b.wait_for(
        "(document.querySelector('.message.assistant .body')?.dataset.source || '').includes('w5 ')",
        "tokens arrive",
    )
    .await;
    b.reload().await;
    let expected_js = serde_json::to_string(&expected).unwrap();
    b.wait_for(
        &format!(
            "(() => {{ const s = document.querySelector('.message.assistant .body')?.dataset.source || ''; \
             return s.length > 120 && !s.includes('w119') && {expected_js}.startsWith(s); }})()"
        ),
        "after the reload the answer is whole so far and still streaming",
    )
    .await;
    b.wait_for(
        &format!(
            "document.querySelector('.message.assistant .body')?.dataset.source === {expected_js} \
             && document.querySelector('#stop').hidden"
        ),
        "the answer ends, complete",
    )
    .await;
    b.assert_clean().await;
}

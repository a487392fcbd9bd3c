//! The pages Hearth serves, in a real browser with no network: GraphiQL loads from the binary
//! under the strict CSP and runs queries with the web UI's cookie session.

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
    b.click(".graphiql-execute-button").await;
    b.wait_for(
        "(document.querySelector('.graphiql-response')?.textContent || '').includes('browser')",
        "the query answers with the logged-in user",
    )
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

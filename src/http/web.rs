//! The web UI and GraphiQL: static files from `web/`, compiled into the binary (no build
//! step, no CDN, nothing to deploy beside the executable; works offline), served with a
//! strict content security policy. Third-party files live in `web/vendor/`, pinned by sha256
//! (checked by `build.rs`).

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const JOBS_JS: &str = include_str!("../../web/jobs.js");
const DOCUMENTS_JS: &str = include_str!("../../web/documents.js");
const PLUGINS_JS: &str = include_str!("../../web/plugins.js");
const MONITORING_JS: &str = include_str!("../../web/monitoring.js");
const USAGE_JS: &str = include_str!("../../web/usage.js");
const BACKUP_JS: &str = include_str!("../../web/backup.js");
const STYLE: &str = include_str!("../../web/style.css");
const GRAPHIQL_PAGE: &str = include_str!("../../web/graphiql.html");
const GRAPHIQL_INIT: &str = include_str!("../../web/graphiql.js");
const GRAPHIQL_PAGE_CSS: &str = include_str!("../../web/graphiql-page.css");
const MARKDOWN_JS: &str = include_str!("../../web/markdown.js");
const MARKED_JS: &str = include_str!("../../web/vendor/markdown/marked.min.js");
const PURIFY_JS: &str = include_str!("../../web/vendor/markdown/purify.min.js");
const HLJS_JS: &str = include_str!("../../web/vendor/markdown/highlight.min.js");
const HLJS_LIGHT_CSS: &str = include_str!("../../web/vendor/markdown/hljs-light.min.css");
const HLJS_DARK_CSS: &str = include_str!("../../web/vendor/markdown/hljs-dark.min.css");
const GRAPHIQL_JS: &str = include_str!("../../web/vendor/graphiql/graphiql.min.js");
const GRAPHIQL_CSS: &str = include_str!("../../web/vendor/graphiql/graphiql.min.css");
const REACT_JS: &str = include_str!("../../web/vendor/graphiql/react.production.min.js");
const REACT_DOM_JS: &str = include_str!("../../web/vendor/graphiql/react-dom.production.min.js");

/// Only same-origin scripts, styles and connections (`'self'` covers the subscription
/// socket's ws:/wss: on this host);
/// fonts and images may also be inline `data:` (GraphiQL's stylesheet embeds its fonts).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; font-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; \
                   form-action 'self'";

fn file(body: &'static str, content_type: &'static str) -> Response {
    file_under(body, content_type, CSP)
}

/// A compiled-in file with its type, a content security policy and the headers that keep it
/// from being sniffed or framed.
pub(crate) fn file_under(
    body: &'static str,
    content_type: &'static str,
    csp: &'static str,
) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    res
}

/// GraphiQL's page (for `GET /graphql` from a browser).
pub fn graphiql() -> Response {
    file(GRAPHIQL_PAGE, "text/html; charset=utf-8")
}

/// `/`, `/static/app.js`, `/static/style.css`, and GraphiQL's scripts and styles.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    const JS: &str = "text/javascript; charset=utf-8";
    const CSS: &str = "text/css; charset=utf-8";
    Router::new()
        .route(
            "/static/graphiql.js",
            get(|| async { file(GRAPHIQL_INIT, JS) }),
        )
        .route("/static/jobs.js", get(|| async { file(JOBS_JS, JS) }))
        .route(
            "/static/documents.js",
            get(|| async { file(DOCUMENTS_JS, JS) }),
        )
        .route("/static/plugins.js", get(|| async { file(PLUGINS_JS, JS) }))
        .route(
            "/static/monitoring.js",
            get(|| async { file(MONITORING_JS, JS) }),
        )
        .route("/static/usage.js", get(|| async { file(USAGE_JS, JS) }))
        .route("/static/backup.js", get(|| async { file(BACKUP_JS, JS) }))
        .route(
            "/static/markdown.js",
            get(|| async { file(MARKDOWN_JS, JS) }),
        )
        .route(
            "/static/vendor/marked.min.js",
            get(|| async { file(MARKED_JS, JS) }),
        )
        .route(
            "/static/vendor/purify.min.js",
            get(|| async { file(PURIFY_JS, JS) }),
        )
        .route(
            "/static/vendor/highlight.min.js",
            get(|| async { file(HLJS_JS, JS) }),
        )
        .route(
            "/static/vendor/hljs-light.min.css",
            get(|| async { file(HLJS_LIGHT_CSS, CSS) }),
        )
        .route(
            "/static/vendor/hljs-dark.min.css",
            get(|| async { file(HLJS_DARK_CSS, CSS) }),
        )
        .route(
            "/static/graphiql-page.css",
            get(|| async { file(GRAPHIQL_PAGE_CSS, CSS) }),
        )
        .route(
            "/static/vendor/graphiql.min.js",
            get(|| async { file(GRAPHIQL_JS, JS) }),
        )
        .route(
            "/static/vendor/graphiql.min.css",
            get(|| async { file(GRAPHIQL_CSS, CSS) }),
        )
        .route(
            "/static/vendor/react.production.min.js",
            get(|| async { file(REACT_JS, JS) }),
        )
        .route(
            "/static/vendor/react-dom.production.min.js",
            get(|| async { file(REACT_DOM_JS, JS) }),
        )
        .route(
            "/",
            get(|| async { file(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/static/app.js",
            get(|| async { file(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/static/style.css",
            get(|| async { file(STYLE, "text/css; charset=utf-8") }),
        )
}

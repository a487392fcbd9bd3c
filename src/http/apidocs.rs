//! The REST API's description for people and tools: `GET /openapi.json` (the document
//! `rest::openapi` builds from the routers), Swagger UI at `/docs` and ReDoc at `/redoc`.
//! Both viewers are compiled into the binary from `web/vendor/apidocs/` (pinned by sha256,
//! checked by `build.rs`); nothing is fetched from a CDN. Public, like the seeds' own
//! `/docs`: the document holds no secret.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const DOCS_PAGE: &str = include_str!("../../web/docs.html");
const DOCS_INIT: &str = include_str!("../../web/docs.js");
const REDOC_PAGE: &str = include_str!("../../web/redoc.html");
const REDOC_INIT: &str = include_str!("../../web/redoc.js");
const SWAGGER_JS: &str = include_str!("../../web/vendor/apidocs/swagger-ui-bundle.js");
const SWAGGER_CSS: &str = include_str!("../../web/vendor/apidocs/swagger-ui.css");
const REDOC_JS: &str = include_str!("../../web/vendor/apidocs/redoc.standalone.js");

/// Scripts only from this host, as the web UI's; the viewers style their components with
/// inline styles (ReDoc's styled-components) and ReDoc searches in a `blob:` worker.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   worker-src 'self' blob:; connect-src 'self'; img-src 'self' data:; \
                   font-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn file(body: &'static str, content_type: &'static str) -> Response {
    super::web::file_under(body, content_type, CSP)
}

/// `GET /openapi.json`.
async fn openapi() -> Response {
    let mut res = axum::Json(crate::rest::openapi::document()).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// `/openapi.json`, `/docs`, `/redoc` and the viewers' files.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    const HTML: &str = "text/html; charset=utf-8";
    const JS: &str = "text/javascript; charset=utf-8";
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/docs", get(|| async { file(DOCS_PAGE, HTML) }))
        .route("/redoc", get(|| async { file(REDOC_PAGE, HTML) }))
        .route("/static/docs.js", get(|| async { file(DOCS_INIT, JS) }))
        .route("/static/redoc.js", get(|| async { file(REDOC_INIT, JS) }))
        .route(
            "/static/vendor/swagger-ui-bundle.js",
            get(|| async { file(SWAGGER_JS, JS) }),
        )
        .route(
            "/static/vendor/swagger-ui.css",
            get(|| async { file(SWAGGER_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/static/vendor/redoc.standalone.js",
            get(|| async { file(REDOC_JS, JS) }),
        )
}

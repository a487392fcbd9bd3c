//! The HTTP server: one axum `Router` for GraphQL, the REST layer and health, with body
//! limits, request ids and uniform error bodies, request metrics; graceful shutdown drains
//! in-flight work.

pub mod apidocs;
pub mod errors;
pub mod extract;
pub mod limit;
pub mod observe;
pub mod web;

use crate::config::Config;
use crate::graphql::{self, HearthSchema};
use crate::state::AppState;
use axum::routing::get;
use axum::{Extension, Router};
use std::future::Future;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

/// Bytes of multipart framing and form fields allowed beside an upload's file.
const UPLOAD_OVERHEAD: usize = 256 * 1024;

/// Builds the whole router for a state.
pub fn router(state: AppState, schema: HearthSchema) -> Router {
    let limit = state.config.body_limit_bytes;
    // Doors that take files read up to the upload size plus the multipart framing; their
    // handlers hold every other body to `body_limit_bytes`.
    let upload_limit = (state.config.max_upload_bytes() as usize)
        .saturating_add(UPLOAD_OVERHEAD)
        .max(limit);
    let rest_routers = crate::rest::routers();
    let uploads = Router::new()
        .route(
            "/graphql",
            get(graphql::transport::get).post(graphql::transport::post),
        )
        .merge(Router::from(rest_routers.uploads))
        .layer(RequestBodyLimitLayer::new(upload_limit));
    let restore_limit = usize::try_from(state.config.backup.max_import_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(UPLOAD_OVERHEAD);
    let restore =
        Router::from(rest_routers.backup).layer(RequestBodyLimitLayer::new(restore_limit));
    let rest = Router::new()
        .route("/graphql/ws", get(graphql::socket::ws))
        .merge(Router::from(rest_routers.rest))
        .merge(web::router())
        .merge(apidocs::router())
        .layer(RequestBodyLimitLayer::new(limit));
    uploads
        .merge(restore)
        .merge(rest)
        // Rate limits, and the matched route for the metrics.
        .route_layer(limit::LimitLayer(state.clone()))
        .layer(Extension(schema))
        // Request ids, error bodies and metrics.
        .layer(observe::ObserveLayer(state.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        // Seed 001's socket.io answers `/ws/socket.io` before routing.
        .layer(crate::rest::foyer_socket::layer(state.clone()))
        .with_state(state)
}

/// The span of one request; `errors::begin` records its id in it.
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::info_span!(
        "request",
        method = %req.method(),
        path = req.uri().path(),
        request_id = tracing::field::Empty,
    )
}

/// Serves until `shutdown` resolves, then stops accepting and lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Streams write small frames (one token each); without TCP_NODELAY the first frame after
    // the headers waits for the client's delayed ACK (~40 ms).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY");
        }
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Waits for `signal`, then begins the stop: every open stream completes, background work
/// (running turns included) is told to stop. Pass the result as the graceful-shutdown future
/// so streams end before the server stops.
pub async fn drain_on(state: AppState, signal: impl Future<Output = ()>) {
    signal.await;
    state.events.publish(crate::events::Event::Shutdown);
    state.background.begin_stop();
}

/// Serves until `signal`, then stops in order: no new connections, streams complete, running
/// turns end as `cancelled` with the text so far and are stored, and every background task
/// gets `shutdown_grace_secs` to finish (open connections get as long) before this returns.
pub async fn run_until(
    listener: TcpListener,
    app: Router,
    state: AppState,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = std::time::Duration::from_secs(state.config.shutdown_grace_secs);
    let background = state.background.clone();
    let server = serve(listener, app, drain_on(state, signal));
    tokio::pin!(server);
    let connections_closed = async {
        background.stopping().cancelled().await;
        tokio::time::sleep(grace).await;
    };
    let result = tokio::select! {
        r = &mut server => r,
        _ = connections_closed => {
            tracing::warn!("connections still open after the grace period; closing them");
            Ok(())
        }
    };
    if !background.stop(grace).await {
        tracing::warn!(
            running = background.running(),
            "background tasks still running after the grace period"
        );
    }
    result
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown signal received, draining");
}

/// Convenience used by `main` and the tests: a serving app for a config.
pub async fn app_for(config: Config) -> anyhow::Result<(AppState, Router)> {
    let state = crate::App::build(config).await?;
    crate::App::prepare_to_serve(&state).await?;
    let schema = graphql::build_schema(Some(state.clone()), &state.config.graphql);
    let router = router(state.clone(), schema);
    Ok((state, router))
}

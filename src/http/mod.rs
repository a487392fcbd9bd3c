//! The HTTP server: one axum `Router` for GraphQL, the REST layer and health, with body
//! limits, request ids and uniform error bodies; graceful shutdown drains in-flight work.

pub mod errors;
pub mod extract;
pub mod web;

use crate::config::Config;
use crate::graphql::{self, HearthSchema};
use crate::state::AppState;
use axum::routing::get;
use axum::{middleware, Extension, Router};
use std::future::Future;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

/// Builds the whole router for a state.
pub fn router(state: AppState, schema: HearthSchema) -> Router {
    let limit = state.config.body_limit_bytes;
    Router::new()
        .route(
            "/graphql",
            get(graphql::transport::get).post(graphql::transport::post),
        )
        .route("/graphql/ws", get(graphql::transport::ws))
        .merge(crate::rest::router())
        .merge(web::router())
        .layer(Extension(schema))
        .layer(RequestBodyLimitLayer::new(limit))
        .layer(middleware::from_fn(errors::normalize))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
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

/// Waits for `signal`, then tells every open stream to complete: pass the result as the
/// graceful-shutdown future so streams end before the server stops.
pub async fn drain_on(state: AppState, signal: impl Future<Output = ()>) {
    signal.await;
    state.events.publish(crate::events::Event::Shutdown);
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

/// Convenience used by `main` and the tests: the app for a config.
pub async fn app_for(config: Config) -> anyhow::Result<(AppState, Router)> {
    let state = crate::App::build(config).await?;
    let schema = graphql::build_schema(Some(state.clone()), &state.config.graphql);
    let router = router(state.clone(), schema);
    Ok((state, router))
}

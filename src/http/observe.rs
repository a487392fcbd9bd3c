//! Watching every request: the route it matched, counted and timed into the metrics, the
//! process's request total, and a warning for slow ones. Time is measured to the response
//! head (a stream's body goes on after it).

use crate::http::errors::REQUEST_ID;
use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

/// The route template a request matched, handed from inside routing ([`mark`], called by
/// the route layer `limit::enforce`) to [`observe`] (outside it) on the response (a shared
/// string: no copy per request).
#[derive(Clone)]
struct Route(MatchedPath);

/// Notes the matched route on a response, for [`observe`].
pub fn mark(res: &mut Response, route: MatchedPath) {
    res.extensions_mut().insert(Route(route));
}

/// Outer layer: counts, times and, when slow, reports every request. The request's id and
/// error bodies (`errors::normalize`) are given inside it, in the same layer: one
/// middleware per request instead of two.
pub async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    // A cheap clone (shared bytes); the path is read only for a slow request's warning.
    let uri = req.uri().clone();
    let res = crate::http::errors::normalize(req, next).await;
    let elapsed = start.elapsed();
    state.ops.count_request();
    let route = res
        .extensions()
        .get::<Route>()
        .map_or("unmatched", |r| r.0.as_str());
    let status = res.status().as_u16();
    state
        .ops
        .http
        .record(route, &method, status, elapsed.as_secs_f64());
    let slow = state.config.monitoring.slow_request_ms;
    if slow > 0 && elapsed.as_millis() >= slow as u128 {
        let request_id = res
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        tracing::warn!(
            method = %method,
            path = uri.path(),
            route,
            status,
            ms = elapsed.as_millis() as u64,
            request_id,
            "slow request"
        );
    }
    res
}

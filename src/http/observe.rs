//! Watching every request: the route it matched, counted and timed into the metrics, the
//! process's request total, and a warning for slow ones. Time is measured to the response
//! head (a stream's body goes on after it).

use crate::http::errors::{self, REQUEST_ID};
use crate::state::AppState;
use axum::extract::{MatchedPath, Request};
use axum::http::{Method, Uri};
use axum::response::Response;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};

/// The route template a request matched, handed from inside routing ([`mark`], called by
/// the route layer `limit::LimitLayer`) to [`ObserveLayer`] (outside it) on the response (a shared
/// string: no copy per request).
#[derive(Clone)]
struct Route(MatchedPath);

/// Notes the matched route on a response, for [`ObserveLayer`].
pub fn mark(res: &mut Response, route: MatchedPath) {
    res.extensions_mut().insert(Route(route));
}

/// Outer layer: names every request (`errors::begin`/`finish`: its id, error bodies) and
/// counts, times and, when slow, reports it. A hand-written tower service, one per request
/// path, with no boxed future: it runs on every request.
#[derive(Clone)]
pub struct ObserveLayer(pub AppState);

/// The request id alone, without the metrics (what the request-layer bench compares with).
#[derive(Clone)]
pub struct RequestIdLayer;

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            state: Some(self.0.clone()),
        }
    }
}

impl<S> Layer<S> for RequestIdLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe { inner, state: None }
    }
}

/// The service of [`ObserveLayer`] (with the state) and [`RequestIdLayer`] (without).
#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    state: Option<AppState>,
}

/// What the metrics need when the answer comes.
struct Watch {
    state: AppState,
    start: Instant,
    method: Method,
    uri: Uri,
}

pin_project_lite::pin_project! {
    /// The route's answer, finished (`errors::finish`) and recorded.
    pub struct Observed<F> {
        #[pin]
        inner: TaskLocalFuture<String, F>,
        request_id: String,
        watch: Option<Watch>,
    }
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Observed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let watch = self.state.clone().map(|state| Watch {
            state,
            start: Instant::now(),
            method: req.method().clone(),
            // A cheap clone (shared bytes); the path is read only for a slow request.
            uri: req.uri().clone(),
        });
        let request_id = errors::begin(&mut req);
        // The inner layers' synchronous part (routing, the rate limiter) runs as the
        // request too: a refusal's body carries its id.
        let inner = errors::scoped(request_id.clone(), || self.inner.call(req));
        Observed {
            inner: errors::scope(request_id.clone(), inner),
            request_id,
            watch,
        }
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for Observed<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(res) = ready!(this.inner.poll(cx));
        let res = errors::finish(res, this.request_id);
        if let Some(w) = this.watch.take() {
            record(&w, &res);
        }
        Poll::Ready(Ok(res))
    }
}

/// Counts and times an answered request; warns when it was slow.
fn record(w: &Watch, res: &Response) {
    let elapsed = w.start.elapsed();
    let state = &w.state;
    state.ops.count_request();
    let route = res
        .extensions()
        .get::<Route>()
        .map_or("unmatched", |r| r.0.as_str());
    let status = res.status().as_u16();
    state
        .ops
        .http
        .record(route, &w.method, status, elapsed.as_secs_f64());
    let slow = state.config.monitoring.slow_request_ms;
    if slow > 0 && elapsed.as_millis() >= slow as u128 {
        let request_id = res
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        tracing::warn!(
            method = %w.method,
            path = w.uri.path(),
            route,
            status,
            ms = elapsed.as_millis() as u64,
            request_id,
            "slow request"
        );
    }
}

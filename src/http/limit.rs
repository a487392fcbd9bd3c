//! Rate limits on the REST doors: each matched route spends its door's budget
//! (`rest::limits`) and, for an API key with its own `rate_limit`, the key's budget; every
//! limited response carries `X-RateLimit-Limit`, `-Remaining` and `-Reset`, and a refusal is
//! a 429 with `Retry-After` in the door's own error shape. GraphQL counts root fields itself
//! (`graphql::transport`).
//!
//! The principal is found without the database where possible: a session token's signature
//! names its user; an API key is looked up once per process (its budget never changes). A
//! credential that does not check out counts against the client address; the handler still
//! refuses it as usual.
//!
//! The layer is a hand-written tower service ([`LimitLayer`]) because it runs on every
//! request: with in-memory budgets and a known principal (the common case) it decides before
//! calling the route, without a boxed future or an await; only the shared store and a first
//! API-key lookup take the asynchronous path.

use crate::auth::secrets::{sha256_hex, API_KEY_PREFIX};
use crate::auth::tokens::TokenKind;
use crate::http::extract::{client_addr, credential};
use crate::http::observe;
use crate::limits::{Decision, Rule, Who};
use crate::rest::limits::Door;
use crate::service::auth::Credential;
use crate::state::AppState;
use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures_util::future::{BoxFuture, Either};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{ready, Context, Poll};
use tower::{Layer, Service, ServiceExt};

/// Who a request counts against.
pub struct Principal {
    /// The user, the API key, or the client address.
    pub key: Who,
    /// The client address.
    pub address: Who,
    /// An API key's id and own budget (requests per minute), when it has one.
    pub key_budget: Option<(i64, u32)>,
}

impl Principal {
    /// An authenticated caller (its key or user), or the client address.
    pub fn of(caller: Option<&crate::auth::Caller>, address: Who) -> Self {
        match caller {
            Some(c) => Principal {
                key: crate::limits::principal_of(c),
                address,
                key_budget: c.api_key_id.zip(c.api_key_budget),
            },
            None => Principal::anonymous(address),
        }
    }

    fn anonymous(address: Who) -> Self {
        Principal {
            key: address,
            address,
            key_budget: None,
        }
    }
}

/// The client address of a request, as a principal.
pub fn address_of(state: &AppState, headers: &HeaderMap, peer: Option<SocketAddr>) -> Who {
    Who::Address(peer.map(|p| client_addr(&state.config, headers, p)))
}

/// A principal known at once, or an API key to look up first.
enum Identified {
    Known(Principal),
    LookUp { hash: String, address: Who },
}

/// The principal a request's credential names, without waiting where possible.
fn identify_now(state: &AppState, headers: &HeaderMap, peer: Option<SocketAddr>) -> Identified {
    let address = address_of(state, headers, peer);
    let token = match credential(headers, false) {
        None => return Identified::Known(Principal::anonymous(address)),
        Some(Credential::ApiKey(k)) => k,
        Some(Credential::Bearer(t)) if t.starts_with(API_KEY_PREFIX) => t,
        Some(Credential::Bearer(t)) | Some(Credential::Cookie { token: t, .. }) => {
            let user = state
                .jwt
                .verify(&t, TokenKind::Access)
                .ok()
                .and_then(|claims| claims.sub.parse().ok());
            return Identified::Known(match user {
                Some(id) => Principal {
                    key: Who::User(id),
                    address,
                    key_budget: None,
                },
                None => Principal::anonymous(address),
            });
        }
    };
    if !token.starts_with(API_KEY_PREFIX) || token.len() > 128 {
        return Identified::Known(Principal::anonymous(address));
    }
    let hash = sha256_hex(&token);
    match state.limits.known_api_key(&hash) {
        Some(found) => Identified::Known(key_principal(found, address)),
        None => Identified::LookUp { hash, address },
    }
}

fn key_principal((id, budget): (i64, Option<u32>), address: Who) -> Principal {
    Principal {
        key: Who::Key(id),
        address,
        key_budget: budget.map(|b| (id, b)),
    }
}

/// The principal a request's credential names (see the module docs).
pub async fn identify(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Principal {
    match identify_now(state, headers, peer) {
        Identified::Known(p) => p,
        Identified::LookUp { hash, address } => {
            // Boxed: only a key's first request takes this path.
            match Box::pin(state.limits.api_key(state, &hash)).await {
                Some(found) => key_principal(found, address),
                None => Principal::anonymous(address),
            }
        }
    }
}

fn merge(a: Option<Decision>, b: Option<Decision>) -> Option<Decision> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.tighter(b)),
        (a, b) => a.or(b),
    }
}

/// Counts a request of `principal` against each `(rule, who, cost)` charge, then the whole
/// cost against the API key's own budget; stops at the first refusal. The decision to
/// report, if any budget applies.
pub async fn spend(
    state: &AppState,
    charges: &[(Rule, Who, u32)],
    principal: &Principal,
) -> Option<Decision> {
    let mut decision = None;
    for (rule, who, cost) in charges {
        decision = merge(decision, state.limits.check(*rule, *who, *cost).await);
        if decision.is_some_and(|d| !d.allowed()) {
            return decision;
        }
    }
    if let Some((id, per_minute)) = principal.key_budget {
        let cost = charges.iter().map(|c| c.2).sum::<u32>().max(1);
        let own = state
            .limits
            .check(Rule::ApiKey(per_minute), Who::Key(id), cost)
            .await;
        decision = merge(decision, own);
    }
    decision
}

/// [`spend`] for one door's request with in-memory budgets (no await).
fn spend_now(
    state: &AppState,
    charge: Option<(Rule, Who)>,
    principal: &Principal,
) -> Option<Decision> {
    let mut decision = None;
    if let Some((rule, who)) = charge {
        decision = state.limits.check_now(rule, who, 1);
        if decision.is_some_and(|d| !d.allowed()) {
            return decision;
        }
    }
    if let Some((id, per_minute)) = principal.key_budget {
        let own = state
            .limits
            .check_now(Rule::ApiKey(per_minute), Who::Key(id), 1);
        decision = merge(decision, own);
    }
    decision
}

/// An integer header value: small ones from a table made once (no formatting or allocation
/// per response), others formatted.
fn int_value(n: u64) -> HeaderValue {
    const TABLED: usize = 1024;
    static TABLE: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    let table = TABLE.get_or_init(|| (0..TABLED as u64).map(HeaderValue::from).collect());
    match table.get(n as usize) {
        Some(v) => v.clone(),
        None => HeaderValue::from(n),
    }
}

thread_local! {
    /// The last reset time formatted on this thread: most responses of a second share it.
    static RESET: std::cell::RefCell<(u64, HeaderValue)> =
        const { std::cell::RefCell::new((0, HeaderValue::from_static("0"))) };
}

/// Sets the `X-RateLimit-*` headers of a decision.
pub fn set_headers(headers: &mut HeaderMap, d: &Decision) {
    // Names parsed once, not on every response.
    const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
    const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
    const RESET_AT: HeaderName = HeaderName::from_static("x-ratelimit-reset");
    headers.insert(LIMIT, int_value(d.limit.into()));
    headers.insert(REMAINING, int_value(d.remaining.into()));
    let reset = RESET.with_borrow_mut(|(at, value)| {
        if *at != d.reset_at {
            *at = d.reset_at;
            *value = HeaderValue::from(d.reset_at);
        }
        value.clone()
    });
    headers.insert(RESET_AT, reset);
}

/// A refusal: 429 in the door's shape with the budget's headers.
fn refusal(door: Door, decision: &Decision) -> Response {
    let mut res = decision.error("requests").into_response();
    set_headers(res.headers_mut(), decision);
    door.errors.render(res)
}

/// Route layer: spends the matched door's budgets before the route runs, and notes the
/// matched route on the response for the metrics (`observe`; one layer does both).
#[derive(Clone)]
pub struct LimitLayer(pub AppState);

impl<S> Layer<S> for LimitLayer {
    type Service = Limit<S>;

    fn layer(&self, inner: S) -> Limit<S> {
        Limit {
            inner,
            state: self.0.clone(),
        }
    }
}

/// The service [`LimitLayer`] wraps a route in.
#[derive(Clone)]
pub struct Limit<S> {
    inner: S,
    state: AppState,
}

pin_project_lite::pin_project! {
    /// The route's answer, given the budget's headers and the route's mark.
    pub struct Marked<F> {
        #[pin]
        inner: F,
        decision: Option<Decision>,
        route: Option<MatchedPath>,
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for Marked<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut res) = ready!(this.inner.poll(cx));
        if let Some(d) = this.decision.take() {
            set_headers(res.headers_mut(), &d);
        }
        if let Some(route) = this.route.take() {
            observe::mark(&mut res, route);
        }
        Poll::Ready(Ok(res))
    }
}

impl<S> Service<Request> for Limit<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Marked<S::Future>, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let route = req.extensions().get::<MatchedPath>().cloned();
        let pass = |inner: &mut S, req, decision, route| {
            Either::Left(Marked {
                inner: inner.call(req),
                decision,
                route,
            })
        };
        let Some(path) = route.as_ref().map(MatchedPath::as_str) else {
            return pass(&mut self.inner, req, None, route);
        };
        if path.starts_with("/graphql") {
            return pass(&mut self.inner, req, None, route);
        }
        let state = &self.state;
        let door = crate::rest::limits::door(path);
        // A rule that is off counts nothing further on (`check` answers `None`); its budget
        // is read here only when no API key budget could apply either.
        let rule = door.rule;
        if !state.config.rate_limits.api_keys && rule.is_none_or(|r| !state.limits.is_on(r)) {
            return pass(&mut self.inner, req, None, route);
        }
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let identified = identify_now(state, req.headers(), peer);
        if let (false, Identified::Known(principal)) = (state.limits.is_shared(), &identified) {
            let who = if door.per_address {
                principal.address
            } else {
                principal.key
            };
            let decision = spend_now(state, rule.map(|r| (r, who)), principal);
            return match decision {
                Some(d) if !d.allowed() => {
                    let res = refusal(door, &d);
                    Either::Right(Box::pin(async move { Ok(mark(res, route)) }))
                }
                d => pass(&mut self.inner, req, d, route),
            };
        }
        // The asynchronous path: a shared store, or an API key seen for the first time.
        let ready = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, ready);
        let state = state.clone();
        Either::Right(Box::pin(async move {
            let principal = match identified {
                Identified::Known(p) => p,
                Identified::LookUp { .. } => identify(&state, req.headers(), peer).await,
            };
            let who = if door.per_address {
                principal.address
            } else {
                principal.key
            };
            let charge = rule.map(|r| (r, who, 1));
            let decision = spend(&state, charge.as_slice(), &principal).await;
            let res = match decision {
                Some(d) if !d.allowed() => refusal(door, &d),
                d => {
                    let Ok(mut res) = inner.oneshot(req).await;
                    if let Some(d) = d {
                        set_headers(res.headers_mut(), &d);
                    }
                    res
                }
            };
            Ok(mark(res, route))
        }))
    }
}

fn mark(mut res: Response, route: Option<MatchedPath>) -> Response {
    if let Some(route) = route {
        observe::mark(&mut res, route);
    }
    res
}

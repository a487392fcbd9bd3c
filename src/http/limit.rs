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

use crate::auth::secrets::{sha256_hex, API_KEY_PREFIX};
use crate::auth::tokens::TokenKind;
use crate::http::extract::{client_ip, credential};
use crate::http::observe;
use crate::limits::{Decision, Rule};
use crate::service::auth::Credential;
use crate::state::AppState;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

/// Who a request counts against.
pub struct Principal {
    /// `user:<id>`, `key:<id>` or `ip:<address>`.
    pub key: String,
    /// The client address, as `ip:<address>`.
    pub address: String,
    /// An API key's id and own budget (requests per minute), when it has one.
    pub key_budget: Option<(i64, u32)>,
}

impl Principal {
    /// An authenticated caller (its key or user), or the client address.
    pub fn of(caller: Option<&crate::auth::Caller>, address: String) -> Self {
        match caller {
            Some(c) => Principal {
                key: crate::limits::principal_of(c),
                address,
                key_budget: c.api_key_id.zip(c.api_key_budget),
            },
            None => Principal {
                key: address.clone(),
                address,
                key_budget: None,
            },
        }
    }
}

/// The client address of a request, as a principal.
pub fn address_of(state: &AppState, headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
    match peer {
        Some(p) => format!("ip:{}", client_ip(&state.config, headers, p)),
        None => "ip:unknown".to_string(),
    }
}

/// The principal a request's credential names (see the module docs).
pub async fn identify(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Principal {
    let address = address_of(state, headers, peer);
    let anonymous = |address: String| Principal {
        key: address.clone(),
        address,
        key_budget: None,
    };
    let token = match credential(headers, false) {
        None => return anonymous(address),
        Some(Credential::ApiKey(k)) => k,
        Some(Credential::Bearer(t)) if t.starts_with(API_KEY_PREFIX) => t,
        Some(Credential::Bearer(t)) | Some(Credential::Cookie { token: t, .. }) => {
            return match state.jwt.verify(&t, TokenKind::Access) {
                Ok(claims) => Principal {
                    key: format!("user:{}", claims.sub),
                    address,
                    key_budget: None,
                },
                Err(_) => anonymous(address),
            };
        }
    };
    if !token.starts_with(API_KEY_PREFIX) || token.len() > 128 {
        return anonymous(address);
    }
    // Boxed: only API keys take this path, and its database lookup's future would otherwise
    // be carried (allocated and moved) by every request's limiter.
    match Box::pin(state.limits.api_key(state, &sha256_hex(&token))).await {
        Some((id, budget)) => Principal {
            key: format!("key:{id}"),
            address,
            key_budget: budget.map(|b| (id, b)),
        },
        None => anonymous(address),
    }
}

/// Counts a request of `principal` against each `(rule, principal key, cost)` charge, then
/// the whole cost against the API key's own budget; stops at the first refusal. The
/// decision to report, if any budget applies.
pub async fn spend(
    state: &AppState,
    charges: &[(Rule, &str, u32)],
    principal: &Principal,
) -> Option<Decision> {
    let merge = |a: Option<Decision>, b: Option<Decision>| match (a, b) {
        (Some(a), Some(b)) => Some(a.tighter(b)),
        (a, b) => a.or(b),
    };
    let mut decision = None;
    for (rule, key, cost) in charges {
        decision = merge(decision, state.limits.check(*rule, key, *cost).await);
        if decision.is_some_and(|d| !d.allowed()) {
            return decision;
        }
    }
    if let Some((id, per_minute)) = principal.key_budget {
        let cost = charges.iter().map(|c| c.2).sum::<u32>().max(1);
        let own = state
            .limits
            .check(Rule::ApiKey(per_minute), &format!("key:{id}"), cost)
            .await;
        decision = merge(decision, own);
    }
    decision
}

/// Sets the `X-RateLimit-*` headers of a decision.
pub fn set_headers(headers: &mut HeaderMap, d: &Decision) {
    // Names parsed once, not on every response.
    const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
    const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
    const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
    headers.insert(LIMIT, HeaderValue::from(d.limit));
    headers.insert(REMAINING, HeaderValue::from(d.remaining));
    headers.insert(RESET, HeaderValue::from(d.reset_at));
}

/// Route layer: spends the matched door's budgets before the handler runs, and notes the
/// matched route on the response for the metrics (`observe`; one layer does both, so a
/// request pays for one middleware here, not two).
pub async fn enforce(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(route) = req.extensions().get::<MatchedPath>().cloned() else {
        return next.run(req).await;
    };
    let mut res = limited(&state, route.as_str(), req, next).await;
    observe::mark(&mut res, route);
    res
}

async fn limited(state: &AppState, route: &str, req: Request, next: Next) -> Response {
    if route.starts_with("/graphql") {
        return next.run(req).await;
    }
    let door = crate::rest::limits::door(route);
    let rule = door.rule.filter(|r| state.limits.is_on(*r));
    if rule.is_none() && !state.config.rate_limits.api_keys {
        return next.run(req).await;
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let principal = identify(state, req.headers(), peer).await;
    let who = if door.per_address {
        &principal.address
    } else {
        &principal.key
    };
    let charge = rule.map(|r| (r, who.as_str(), 1));
    let Some(decision) = spend(state, charge.as_slice(), &principal).await else {
        return next.run(req).await;
    };
    if decision.allowed() {
        let mut res = next.run(req).await;
        set_headers(res.headers_mut(), &decision);
        return res;
    }
    let mut res = decision.error("requests").into_response();
    set_headers(res.headers_mut(), &decision);
    door.errors.render(res)
}

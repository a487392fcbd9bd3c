//! Request budgets: GCRA rate limiting per rule and principal. In memory with `governor`
//! (one keyed limiter per rule), or — on PostgreSQL with `rate_limits.shared` — in the
//! database with the same algorithm, so that every process serving one database draws from
//! one budget ([`shared`]). The HTTP layer (`http::limit`), GraphQL and the sockets ask
//! [`RateLimits::check`]; the answer carries what the `X-RateLimit-*` headers say.

pub mod shared;

use crate::config::{Budget, Config};
use crate::error::{AppError, AppResult, ErrorCode};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a budget is spent on; each rule reads its budget from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Seed 000 login and the GraphQL `login` field (`rate_limits.login`).
    Login,
    /// Seed 000 `POST /api/chat`.
    Chat,
    /// Seed 000 `/ws/chat` messages.
    WsChat,
    /// Seed 000's other `/api/*` doors.
    Api,
    /// Seed 001's doors.
    Foyer,
    /// Seed 001's socket.io messages (`join_chat`, `leave_chat`, `typing`).
    FoyerSocket,
    /// Seed 002 `/auth/*`.
    NexusAuth,
    /// Seed 002 `/llm/chat`.
    NexusLlmChat,
    /// Seed 002 `/rag/query`.
    NexusRagQuery,
    /// Seed 002 `/agents/*/invoke`.
    NexusAgentInvoke,
    /// Seed 002 `/video/*`.
    NexusVideo,
    /// Seed 004's doors.
    Runner,
    /// GraphQL root fields.
    Graphql,
    /// Login attempts per client address on every door (`login_rate_limit`).
    LoginAddress,
    /// Login attempts per account as typed, whatever the address (`login_account_rate_limit`).
    LoginAccount,
    /// Self-registrations per client address (`register_rate_limit`).
    Register,
    /// An API key's own budget: this many requests per minute.
    ApiKey(u32),
}

impl Rule {
    /// Every budget set in `[rate_limits]`, with the doors that spend it and whether they
    /// count per client address.
    pub const CONFIGURED: [(Rule, &'static str, bool); 13] = [
        (
            Rule::Login,
            "seed 000 POST /api/auth/login, GraphQL login",
            false,
        ),
        (Rule::Chat, "seed 000 POST /api/chat", false),
        (Rule::WsChat, "seed 000 /ws/chat messages", false),
        (Rule::Api, "seed 000 other /api/*", false),
        (Rule::Foyer, "seed 001", true),
        (Rule::FoyerSocket, "seed 001 socket.io messages", true),
        (Rule::NexusAuth, "seed 002 /api/v1/auth/*", false),
        (Rule::NexusLlmChat, "seed 002 /api/v1/llm/chat", false),
        (Rule::NexusRagQuery, "seed 002 /api/v1/rag/query", false),
        (
            Rule::NexusAgentInvoke,
            "seed 002 /api/v1/agents/*/invoke",
            false,
        ),
        (Rule::NexusVideo, "seed 002 /api/v1/video/*", false),
        (Rule::Runner, "seed 004", true),
        (Rule::Graphql, "GraphQL, per root field", false),
    ];

    /// The configured rule named `name` (its key in `[rate_limits]`).
    pub fn by_name(name: &str) -> Option<Rule> {
        Rule::CONFIGURED
            .iter()
            .map(|c| c.0)
            .find(|r| r.name() == name)
    }

    /// The rule's stable name (metrics, shared-budget keys).
    pub fn name(self) -> &'static str {
        match self {
            Rule::Login => "login",
            Rule::Chat => "chat",
            Rule::WsChat => "ws_chat",
            Rule::Api => "api",
            Rule::Foyer => "foyer",
            Rule::FoyerSocket => "foyer_socket",
            Rule::NexusAuth => "nexus_auth",
            Rule::NexusLlmChat => "nexus_llm_chat",
            Rule::NexusRagQuery => "nexus_rag_query",
            Rule::NexusAgentInvoke => "nexus_agent_invoke",
            Rule::NexusVideo => "nexus_video",
            Rule::Runner => "runner",
            Rule::Graphql => "graphql",
            Rule::LoginAddress => "login_address",
            Rule::LoginAccount => "login_account",
            Rule::Register => "register",
            Rule::ApiKey(_) => "api_key",
        }
    }

    /// The budget this rule has under `config` (before any run-time setting).
    pub fn budget(self, config: &Config) -> Budget {
        let r = &config.rate_limits;
        let window = config.login_rate_window_secs;
        match self {
            Rule::Login => r.login,
            Rule::Chat => r.chat,
            Rule::WsChat => r.ws_chat,
            Rule::Api => r.api,
            Rule::Foyer => r.foyer,
            Rule::FoyerSocket => r.foyer_socket,
            Rule::NexusAuth => r.nexus_auth,
            Rule::NexusLlmChat => r.nexus_llm_chat,
            Rule::NexusRagQuery => r.nexus_rag_query,
            Rule::NexusAgentInvoke => r.nexus_agent_invoke,
            Rule::NexusVideo => r.nexus_video,
            Rule::Runner => r.runner,
            Rule::Graphql => r.graphql,
            Rule::LoginAddress => Budget::new(config.login_rate_limit, window),
            Rule::LoginAccount => Budget::new(config.login_account_rate_limit, window),
            Rule::Register => Budget::new(config.register_rate_limit, window),
            Rule::ApiKey(per_minute) if r.api_keys => Budget::new(per_minute, 60),
            Rule::ApiKey(_) => Budget::OFF,
        }
    }
}

/// Who a budget is counted for. A small copyable value, so the in-memory budgets are
/// looked up without building a string per request; its text (`user:7`, `key:3`,
/// `ip:10.0.0.1`) names it in the shared store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Who {
    /// A signed-in user (its sessions).
    User(i64),
    /// An API key.
    Key(i64),
    /// A client address; `None` when the transport gave none.
    Address(Option<IpAddr>),
    /// Anything else named by text (a login name as typed), by the first 8 bytes of its
    /// SHA-256, stable across processes.
    Named(u64),
}

impl Who {
    /// A client address as written by `http::extract::client_ip` (`"unknown"` or unparsable
    /// text counts as no address).
    pub fn address(text: Option<&str>) -> Who {
        Who::Address(text.and_then(|t| t.parse().ok()))
    }

    /// A name as typed (the caller lowercases it if case must not matter).
    pub fn named(text: &str) -> Who {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(text.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        Who::Named(u64::from_be_bytes(first))
    }
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::User(id) => write!(f, "user:{id}"),
            Who::Key(id) => write!(f, "key:{id}"),
            Who::Address(Some(ip)) => write!(f, "ip:{ip}"),
            Who::Address(None) => f.write_str("ip:unknown"),
            Who::Named(h) => write!(f, "name:{h:016x}"),
        }
    }
}

/// The principal an authenticated caller counts as: its API key, else its user.
pub fn principal_of(caller: &crate::auth::Caller) -> Who {
    match caller.api_key_id {
        Some(id) => Who::Key(id),
        None => Who::User(caller.user_id()),
    }
}

/// The state of one budget after a request was counted against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The full budget (`X-RateLimit-Limit`).
    pub limit: u32,
    /// What is left of it now (`X-RateLimit-Remaining`).
    pub remaining: u32,
    /// When it is full again, in seconds since the epoch (`X-RateLimit-Reset`).
    pub reset_at: u64,
    /// Set when the request was refused: seconds until it would be admitted.
    pub retry_after: Option<u64>,
}

impl Decision {
    /// Whether the request may proceed.
    pub fn allowed(&self) -> bool {
        self.retry_after.is_none()
    }

    /// The refusal as the error table's `rate_limited`, with `retry_after` (the HTTP layer
    /// turns it into `Retry-After`) and the budget in the details.
    pub fn error(&self, what: &str) -> AppError {
        let secs = self.retry_after.unwrap_or(1).max(1);
        AppError::new(
            ErrorCode::RateLimited,
            format!("too many {what}; retry in {secs} s"),
        )
        .with_details(serde_json::json!({
            "retry_after": secs,
            "limit": self.limit,
            "reset": self.reset_at,
        }))
    }

    /// Of two budgets a request was counted against, the one to report: a refusal first,
    /// else the one with less left.
    pub fn tighter(self, other: Decision) -> Decision {
        match (self.allowed(), other.allowed()) {
            (false, true) => self,
            (true, false) => other,
            _ if other.remaining < self.remaining => other,
            _ => self,
        }
    }
}

type Keyed =
    RateLimiter<Who, DefaultKeyedStateStore<Who>, DefaultClock, StateInformationMiddleware>;

/// Every budget of the process: governor limiters made on first use, or the shared store.
pub struct RateLimits {
    config: Arc<Config>,
    /// Run-time budgets and in-memory limiters, behind one lock read per request.
    table: RwLock<Table>,
    shared: Option<shared::SharedBudgets>,
    /// API keys seen by this process: secret hash → (id, own budget).
    keys: Mutex<HashMap<String, (i64, Option<u32>)>>,
}

/// What [`RateLimits`] keeps behind its lock.
#[derive(Default)]
struct Table {
    /// Budgets an admin set at run time (the `settings` table), over the configuration's.
    set: HashMap<Rule, Budget>,
    /// Each rule's limiter with the budget it was made for (a new budget makes a new one).
    limiters: HashMap<Rule, (Budget, Arc<Keyed>)>,
}

impl Table {
    fn budget(&self, rule: Rule, config: &Config) -> Budget {
        match self.set.get(&rule) {
            Some(b) => *b,
            None => rule.budget(config),
        }
    }
}

/// API keys remembered before the memo is cleared.
const KEYS_REMEMBERED: usize = 10_000;

/// Seconds since the epoch, as a float.
fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Seconds one request of a budget takes to replenish.
fn interval(budget: Budget) -> f64 {
    budget.per_secs as f64 / f64::from(budget.requests)
}

impl RateLimits {
    /// The budgets a configuration asks for; `db` is used when they are shared.
    pub fn new(config: Arc<Config>, db: &crate::db::Db) -> Self {
        let shared = (config.rate_limits.shared && db.backend() == crate::db::Backend::Postgres)
            .then(|| shared::SharedBudgets::new(db.clone()));
        Self {
            config,
            table: RwLock::new(Table::default()),
            shared,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `rule` limits anything now.
    pub fn is_on(&self, rule: Rule) -> bool {
        self.budget(rule).is_on()
    }

    /// The budget `rule` has now: the one set at run time, else the configured one.
    pub fn budget(&self, rule: Rule) -> Budget {
        self.read().budget(rule, &self.config)
    }

    /// Whether `rule`'s budget was set at run time.
    pub fn is_set(&self, rule: Rule) -> bool {
        self.read().set.contains_key(&rule)
    }

    /// Replaces the run-time budgets (`service::rate_limits` reads them from the database).
    /// A rule whose budget changed starts afresh: its in-memory limiter is made anew on the
    /// next request; shared budgets keep their state and are read with the new budget.
    pub fn apply(&self, budgets: HashMap<Rule, Budget>) {
        self.table.write().unwrap_or_else(|p| p.into_inner()).set = budgets;
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether budgets are kept in the database ([`check`](Self::check) must be awaited);
    /// otherwise [`check_now`](Self::check_now) answers without waiting.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Counts a request costing `cost` (at least 1) against `rule` for `who`; `None` when the
    /// rule is off. A shared store that cannot be reached admits the request (the failure is
    /// logged): a database hiccup must not lock every caller out.
    pub async fn check(&self, rule: Rule, who: Who, cost: u32) -> Option<Decision> {
        let Some(store) = &self.shared else {
            return self.check_now(rule, who, cost);
        };
        let budget = self.budget(rule);
        if !budget.is_on() {
            return None;
        }
        // Boxed: the shared store's query future is large, and inline it would make every
        // caller's future as large.
        let decision = match Box::pin(store.check(rule, budget, who, cost.max(1))).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, rule = rule.name(), "shared rate limit unavailable; admitting");
                return None;
            }
        };
        refused_metric(rule, &decision);
        Some(decision)
    }

    /// [`check`](Self::check) for budgets kept in memory, without waiting (one lock read,
    /// one GCRA cell); with a shared store it counts nothing and answers `None`, so callers
    /// ask [`is_shared`](Self::is_shared) first.
    pub fn check_now(&self, rule: Rule, who: Who, cost: u32) -> Option<Decision> {
        if self.shared.is_some() {
            return None;
        }
        let (budget, limiter) = {
            let table = self.read();
            let budget = table.budget(rule, &self.config);
            if !budget.is_on() {
                return None;
            }
            match table.limiters.get(&rule) {
                Some((made_for, l)) if *made_for == budget => (budget, l.clone()),
                _ => {
                    drop(table);
                    (budget, self.make_limiter(rule, budget))
                }
            }
        };
        let decision = memory_decision(&limiter, budget, who, cost.max(1));
        refused_metric(rule, &decision);
        Some(decision)
    }

    /// [`check`](Self::check), turning a refusal into `rate_limited` naming `what`.
    pub async fn enforce(&self, rule: Rule, who: Who, what: &str) -> AppResult<()> {
        match self.check(rule, who, 1).await {
            Some(d) if !d.allowed() => Err(d.error(what)),
            _ => Ok(()),
        }
    }

    /// An API key this process already looked up: its id and own budget.
    pub fn known_api_key(&self, hash: &str) -> Option<(i64, Option<u32>)> {
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(hash)
            .copied()
    }

    /// An API key's id and own budget by the hash of its secret, read from the database once
    /// per process (a key's budget never changes); `None` for an unknown key.
    pub async fn api_key(
        &self,
        state: &crate::state::AppState,
        hash: &str,
    ) -> Option<(i64, Option<u32>)> {
        if let Some(k) = self.known_api_key(hash) {
            return Some(k);
        }
        let found = crate::service::api_keys::budget_by_hash(state, hash)
            .await
            .ok()
            .flatten()?;
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= KEYS_REMEMBERED {
            keys.clear();
        }
        keys.insert(hash.to_string(), found);
        Some(found)
    }

    /// Makes (or finds, if another request just made it) `rule`'s limiter for `budget`.
    fn make_limiter(&self, rule: Rule, budget: Budget) -> Arc<Keyed> {
        let mut table = self.table.write().unwrap_or_else(|p| p.into_inner());
        match table.limiters.get(&rule) {
            Some((made_for, l)) if *made_for == budget => l.clone(),
            _ => {
                let per_request =
                    Duration::from_secs_f64(interval(budget)).max(Duration::from_nanos(1));
                let burst = NonZeroU32::new(budget.requests).unwrap_or(NonZeroU32::MIN);
                let quota = Quota::with_period(per_request)
                    .unwrap_or_else(|| Quota::per_second(burst))
                    .allow_burst(burst);
                let l = Arc::new(
                    RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
                );
                table.limiters.insert(rule, (budget, l.clone()));
                l
            }
        }
    }

    /// Forgets principals whose budgets are full again (memory) or drops the shared rows
    /// that are (database), so idle principals cost nothing.
    pub async fn sweep(&self) {
        let limiters: Vec<Arc<Keyed>> = self
            .read()
            .limiters
            .values()
            .map(|(_, l)| l.clone())
            .collect();
        for l in limiters {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(store) = &self.shared {
            if let Err(e) = store.sweep().await {
                tracing::warn!(error = %e, "sweeping shared rate limits");
            }
        }
    }
}

/// Counts a refusal in the metrics.
fn refused_metric(rule: Rule, decision: &Decision) {
    if !decision.allowed() {
        crate::ops::metrics::rate_limited(rule.name());
    }
}

/// One request of `cost` counted by an in-memory limiter.
fn memory_decision(limiter: &Keyed, budget: Budget, who: Who, cost: u32) -> Decision {
    let limit = budget.requests;
    let t = interval(budget);
    let now = wall_now();
    let n = NonZeroU32::new(cost).unwrap_or(NonZeroU32::MIN);
    match limiter.check_key_n(&who, n) {
        Ok(Ok(snapshot)) => {
            let remaining = snapshot.remaining_burst_capacity().min(limit);
            Decision {
                limit,
                remaining,
                reset_at: (now + f64::from(limit - remaining) * t).ceil() as u64,
                retry_after: None,
            }
        }
        Ok(Err(not_until)) => {
            let wait = not_until
                .wait_time_from(limiter.clock().now())
                .as_secs_f64();
            Decision {
                limit,
                remaining: 0,
                reset_at: (now + wait + f64::from(limit.saturating_sub(cost)) * t).ceil() as u64,
                retry_after: Some(wait.ceil().max(1.0) as u64),
            }
        }
        // More than a whole budget at once: it can never pass.
        Err(_) => Decision {
            limit,
            remaining: 0,
            reset_at: (now + budget.per_secs as f64).ceil() as u64,
            retry_after: Some(budget.per_secs),
        },
    }
}

/// Reads the run-time budgets, then sweeps the budgets every minute while the process
/// serves, and re-reads the run-time budgets whenever the bus says they changed.
pub async fn start(state: &crate::state::AppState) {
    if let Err(e) = crate::service::rate_limits::load(state).await {
        tracing::warn!(error = %e.message, "reading run-time rate limits; using the configured ones");
    }
    let st = state.clone();
    state.background.spawn_service(async move {
        let mut events = st.events.subscribe();
        let mut sweep = tokio::time::interval(Duration::from_secs(60));
        sweep.tick().await;
        loop {
            let reload = tokio::select! {
                _ = sweep.tick() => false,
                _ = st.background.stopping().cancelled() => break,
                received = events.recv() => match received {
                    Ok(crate::events::Event::RateLimitsChanged | crate::events::Event::Restored)
                    | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => true,
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
            };
            if reload {
                if let Err(e) = crate::service::rate_limits::load(&st).await {
                    tracing::warn!(error = %e.message, "re-reading run-time rate limits");
                }
            } else {
                st.limits.sweep().await;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(tweak: impl FnOnce(&mut Config)) -> RateLimits {
        let mut config = Config::default();
        tweak(&mut config);
        RateLimits {
            config: Arc::new(config),
            table: RwLock::new(Table::default()),
            shared: None,
            keys: Mutex::new(HashMap::new()),
        }
    }

    #[tokio::test]
    async fn a_budget_admits_its_burst_then_refuses_with_a_retry() {
        let l = limits(|c| c.rate_limits.chat = Budget::new(3, 60));
        let mut left = Vec::new();
        for _ in 0..3 {
            let d = l.check(Rule::Chat, Who::User(1), 1).await.unwrap();
            assert!(d.allowed());
            left.push(d.remaining);
        }
        assert_eq!(left, [2, 1, 0]);
        let refused = l.check(Rule::Chat, Who::User(1), 1).await.unwrap();
        assert!(!refused.allowed());
        // One request replenishes every 20 s.
        let retry = refused.retry_after.unwrap();
        assert!((19..=20).contains(&retry), "retry after {retry}");
        assert!(refused.reset_at as f64 >= wall_now() + 59.0);
        // Another principal has its own budget; a rule that is off limits nothing.
        assert!(l
            .check(Rule::Chat, Who::User(2), 1)
            .await
            .unwrap()
            .allowed());
        let off = limits(|c| c.rate_limits.chat = Budget::OFF);
        assert!(off.check(Rule::Chat, Who::User(1), 1).await.is_none());
    }

    #[tokio::test]
    async fn a_cost_spends_several_requests_and_over_the_budget_never_passes() {
        let l = limits(|c| c.rate_limits.graphql = Budget::new(10, 60));
        let d = l
            .check(Rule::Graphql, Who::Address(Some([10, 0, 0, 1].into())), 4)
            .await
            .unwrap();
        assert_eq!(d.remaining, 6);
        assert!(!l
            .check(Rule::Graphql, Who::Address(Some([10, 0, 0, 1].into())), 7)
            .await
            .unwrap()
            .allowed());
        assert!(l
            .check(Rule::Graphql, Who::Address(Some([10, 0, 0, 1].into())), 6)
            .await
            .unwrap()
            .allowed());
        let over = l
            .check(Rule::Graphql, Who::Address(Some([10, 0, 0, 2].into())), 11)
            .await
            .unwrap();
        assert_eq!(over.retry_after, Some(60));
    }
}

//! Prometheus metrics through the `metrics` facade: one recorder per process (every server
//! of a process shares it), rendered by `GET /metrics`. Counters are recorded where things
//! happen; gauges of state (pools, queues, figures) are set by the sampler task.
//!
//! Names (all prefixed `hearth_`): `http_requests_total{route,method,status}`,
//! `http_request_duration_seconds{route,method}`, `graphql_operations_total{kind}`,
//! `graphql_subscriptions_open`, `model_tokens_total{model,kind}`,
//! `model_generations{model,state}`, `embed_batches_total`, `embed_texts_total`,
//! `embed_batch_seconds` (histogram),
//! `plugin_calls_total{plugin,outcome}`, `job_runs_total{kind,outcome}`,
//! `db_connections{pool,state}`, `process_cpu_percent`, `process_resident_bytes`,
//! `system_cpu_percent`, `system_memory_percent`.

use super::system::Figures;
use crate::state::AppState;
use axum::http::Method;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Latency buckets, seconds: a token stream's head to a slow upload.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process's recorder, installed on first use; `None` when another recorder was
/// installed first (an embedding program's own).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .as_ref()
}

/// The exposition text.
pub fn render() -> String {
    handle().map(|h| h.render()).unwrap_or_default()
}

/// The request metrics' handles by route, then method and status: a request costs one map
/// look-up by the route's text, a short scan and two atomic updates, without allocating.
#[derive(Default)]
pub struct HttpMetrics {
    handles: RwLock<HashMap<Box<str>, Vec<RouteHandles>>>,
}

/// One route's handles for a method and status.
type RouteHandles = (Method, u16, Counter, Histogram);

impl HttpMetrics {
    /// Counts and times one answered request.
    pub fn record(&self, route: &str, method: &Method, status: u16, seconds: f64) {
        if let Ok(map) = self.handles.read() {
            let found = map
                .get(route)
                .and_then(|v| v.iter().find(|h| h.0 == *method && h.1 == status));
            if let Some((_, _, count, time)) = found {
                count.increment(1);
                time.record(seconds);
                return;
            }
        }
        let count = metrics::counter!(
            "hearth_http_requests_total",
            "route" => route.to_string(),
            "method" => method.to_string(),
            "status" => status.to_string()
        );
        let time = metrics::histogram!(
            "hearth_http_request_duration_seconds",
            "route" => route.to_string(),
            "method" => method.to_string()
        );
        count.increment(1);
        time.record(seconds);
        if let Ok(mut map) = self.handles.write() {
            map.entry(route.into())
                .or_default()
                .push((method.clone(), status, count, time));
        }
    }
}

/// A request refused by a rate-limit budget.
pub fn rate_limited(rule: &'static str) {
    metrics::counter!("hearth_rate_limited_total", "rule" => rule).increment(1);
}

/// One GraphQL operation (`query`, `mutation`, `subscription`).
pub fn graphql_operation(kind: &'static str) {
    metrics::counter!("hearth_graphql_operations_total", "kind" => kind).increment(1);
}

/// A subscription opened (`1.0`) or closed (`-1.0`).
pub fn graphql_subscriptions(delta: f64) {
    metrics::gauge!("hearth_graphql_subscriptions_open").increment(delta);
}

/// Tokens a model read (`prompt`) or wrote (`completion`).
pub fn model_tokens(model: &str, prompt: u64, completion: u64) {
    metrics::counter!("hearth_model_tokens_total", "model" => model.to_string(), "kind" => "prompt")
        .increment(prompt);
    metrics::counter!("hearth_model_tokens_total", "model" => model.to_string(), "kind" => "completion")
        .increment(completion);
}

/// One run of the embedding model over `texts` texts, taking `seconds`.
pub fn embed_batch(texts: usize, seconds: f64) {
    metrics::counter!("hearth_embed_batches_total").increment(1);
    metrics::counter!("hearth_embed_texts_total").increment(texts as u64);
    metrics::histogram!("hearth_embed_batch_seconds").record(seconds);
}

/// The `_sum` of a histogram or the value of a counter without labels, read back from the
/// exposition (benchmarks compare it with wall time).
pub fn read_total(name: &str) -> f64 {
    let text = render();
    let sum = format!("{name}_sum ");
    let plain = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&sum).or_else(|| l.strip_prefix(&plain)))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// One plugin call and how it ended (`ok`, `error`, `timeout`, `crash`, `busy`).
pub fn plugin_call(plugin: &str, outcome: &'static str) {
    metrics::counter!("hearth_plugin_calls_total", "plugin" => plugin.to_string(), "outcome" => outcome)
        .increment(1);
}

/// One job run and its outcome.
pub fn job_run(kind: &str, outcome: &str) {
    metrics::counter!("hearth_job_runs_total", "kind" => kind.to_string(), "outcome" => outcome.to_string())
        .increment(1);
}

/// Sets the gauges of state; the sampler calls it every few seconds.
pub fn publish_gauges(state: &AppState, f: &Figures) {
    let Some(handle) = handle() else { return };
    metrics::gauge!("hearth_system_cpu_percent").set(f.cpu);
    metrics::gauge!("hearth_system_memory_percent").set(f.memory);
    metrics::gauge!("hearth_process_cpu_percent").set(f.process_cpu);
    metrics::gauge!("hearth_process_resident_bytes").set(f.process_memory as f64);
    for (pool, open, in_use, waiting) in state.db.pool_use() {
        metrics::gauge!("hearth_db_connections", "pool" => pool, "state" => "open")
            .set(open as f64);
        metrics::gauge!("hearth_db_connections", "pool" => pool, "state" => "in_use")
            .set(in_use as f64);
        metrics::gauge!("hearth_db_connections", "pool" => pool, "state" => "waiting")
            .set(waiting as f64);
    }
    for (model, running, waiting) in state.llm.activity() {
        metrics::gauge!("hearth_model_generations", "model" => model.clone(), "state" => "running")
            .set(running as f64);
        metrics::gauge!("hearth_model_generations", "model" => model, "state" => "waiting")
            .set(waiting as f64);
    }
    // Histograms are drained into their buckets here rather than on every scrape.
    handle.run_upkeep();
}

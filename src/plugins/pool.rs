//! One plugin version's compiled module and its instances. The module is compiled once (no
//! call recompiles); up to `pool_size` instances serve calls at a time, further calls queue
//! (up to `max_queued_calls`, then `503`). Calls run off the async scheduler (the worker
//! blocks in place and hands its tasks on) with the manifest's memory cap and time limit
//! (and fuel, when configured). A trap, a timeout or
//! running out of memory ends that call only: the instance is dropped and a fresh one takes
//! its place; `crash_limit` crashes within the window tell the caller to mark the plugin
//! `failed`.

use super::host::{host_functions, CallCtx};
use super::manifest::Manifest;
use crate::config::PluginsConfig;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Wasm pages (64 KiB) per MiB.
const PAGES_PER_MB: u32 = 16;

/// How one call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum CallFailure {
    /// The plugin returned an error of its own (bad input, a refused host call): the
    /// instance is fine.
    Returned(String),
    /// The call ran past its time limit.
    Timeout(Duration),
    /// The instance trapped, ran out of memory or fuel; `failed` says the crash budget is
    /// spent and the plugin must stop.
    Crashed {
        /// What happened, for the caller.
        reason: String,
        /// The plugin crossed its crash limit.
        failed: bool,
    },
    /// The module has no such export.
    NoSuchFunction(String),
    /// Every instance is busy and the queue is full.
    Busy,
    /// An instance could not be created (the module no longer instantiates).
    Instantiate(String),
}

/// Memory, time and fuel of one call.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    /// Linear memory cap, in MiB.
    pub memory_mb: u32,
    /// Wall-clock limit.
    pub timeout: Duration,
    /// Instructions, when fuel metering is on.
    pub fuel: Option<u64>,
}

impl CallLimits {
    /// The manifest's limits, capped by the server's maxima.
    pub fn of(manifest: &Manifest, cfg: &PluginsConfig) -> CallLimits {
        CallLimits {
            memory_mb: manifest
                .limits
                .memory_mb
                .unwrap_or(cfg.default_memory_mb)
                .min(cfg.max_memory_mb),
            timeout: Duration::from_millis(
                manifest
                    .limits
                    .timeout_ms
                    .unwrap_or(cfg.default_timeout_ms)
                    .min(cfg.max_timeout_ms),
            ),
            fuel: (cfg.fuel > 0).then_some(cfg.fuel),
        }
    }
}

/// Compiles a module under the given limits with Hearth's host functions linked.
pub fn compile(
    manifest: &Manifest,
    wasm: &[u8],
    limits: CallLimits,
) -> Result<extism::CompiledPlugin, String> {
    let extism_manifest = extism::Manifest::new([extism::Wasm::data(wasm.to_vec())])
        .with_memory_max(limits.memory_mb.saturating_mul(PAGES_PER_MB))
        .with_timeout(limits.timeout)
        .disallow_all_hosts()
        .with_config(
            manifest
                .permissions
                .config
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    let mut builder = extism::PluginBuilder::new(extism_manifest)
        .with_wasi(false)
        .with_cache_disabled()
        .with_functions(host_functions());
    if let Some(fuel) = limits.fuel {
        builder = builder.with_fuel_limit(fuel);
    }
    builder
        .compile()
        .map_err(|e| format!("the module does not compile: {}", root_message(&e)))
}

/// The innermost message of an error chain (wasmtime wraps the useful part).
fn root_message(e: &extism::Error) -> String {
    e.chain()
        .last()
        .map(|c| c.to_string())
        .unwrap_or_else(|| e.to_string())
}

/// Creates an instance and checks that every export the manifest declares exists.
pub fn check_exports(compiled: &extism::CompiledPlugin, manifest: &Manifest) -> Result<(), String> {
    let instance = extism::Plugin::new_from_compiled(compiled)
        .map_err(|e| format!("the module does not instantiate: {}", root_message(&e)))?;
    for export in manifest.declared_exports() {
        if !instance.function_exists(&export) {
            return Err(format!(
                "the module does not export \"{export}\", which plugin.toml declares"
            ));
        }
    }
    Ok(())
}

/// The instances of one plugin version.
pub struct Pool {
    /// The plugin's key.
    pub name: String,
    /// Its database id (key-value namespace).
    pub plugin_id: i64,
    /// The version these instances run.
    pub version: String,
    /// The module's SHA-256 (a reload with other bytes swaps the pool).
    pub sha256: String,
    /// The validated manifest.
    pub manifest: Manifest,
    compiled: extism::CompiledPlugin,
    idle: Mutex<Vec<extism::Plugin>>,
    permits: tokio::sync::Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
    crashes: Mutex<VecDeque<Instant>>,
    crash_limit: usize,
    crash_window: Duration,
}

impl Pool {
    /// A pool over a compiled module; instances are created on demand.
    pub fn new(
        plugin_id: i64,
        manifest: Manifest,
        sha256: String,
        compiled: extism::CompiledPlugin,
        cfg: &PluginsConfig,
    ) -> Pool {
        Pool {
            name: manifest.name.clone(),
            plugin_id,
            version: manifest.version.clone(),
            sha256,
            manifest,
            compiled,
            idle: Mutex::new(Vec::new()),
            permits: tokio::sync::Semaphore::new(cfg.pool_size),
            waiting: AtomicUsize::new(0),
            max_waiting: cfg.max_queued_calls,
            crashes: Mutex::new(VecDeque::new()),
            crash_limit: cfg.crash_limit,
            crash_window: Duration::from_secs(cfg.crash_window_secs),
        }
    }

    /// Instances created and idle now (for measurements).
    pub fn idle_instances(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// Calls `function` with `input` as the caller in `ctx`; the function's output bytes.
    pub async fn call(
        self: &Arc<Self>,
        ctx: CallCtx,
        function: &str,
        input: Vec<u8>,
    ) -> Result<Vec<u8>, CallFailure> {
        if self.permits.available_permits() == 0
            && self.waiting.load(Ordering::SeqCst) >= self.max_waiting
        {
            return Err(CallFailure::Busy);
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let permit = self.permits.acquire().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let _permit = permit.map_err(|_| CallFailure::Busy)?;
        // On the multi-threaded runtime the call blocks this worker in place (its other tasks
        // move to the other workers): no hop to the blocking pool and back. Elsewhere it goes
        // to the blocking pool.
        if tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::MultiThread
        {
            return tokio::task::block_in_place(|| self.call_blocking(ctx, function, input));
        }
        let pool = self.clone();
        let function = function.to_string();
        let outcome =
            tokio::task::spawn_blocking(move || pool.call_blocking(ctx, &function, input))
                .await
                .unwrap_or_else(|e| {
                    Err(CallFailure::Crashed {
                        reason: format!("the call panicked in the host: {e}"),
                        failed: false,
                    })
                });
        outcome
    }

    /// The blocking part of a call: take or create an instance, call, classify.
    fn call_blocking(
        &self,
        ctx: CallCtx,
        function: &str,
        input: Vec<u8>,
    ) -> Result<Vec<u8>, CallFailure> {
        let taken = self.idle.lock().ok().and_then(|mut v| v.pop());
        let mut instance = match taken {
            Some(i) => i,
            None => extism::Plugin::new_from_compiled(&self.compiled)
                .map_err(|e| CallFailure::Instantiate(root_message(&e)))?,
        };
        if !instance.function_exists(function) {
            self.give_back(instance);
            return Err(CallFailure::NoSuchFunction(function.to_string()));
        }
        let timeout = instance_timeout(&self.manifest, &ctx);
        let started = Instant::now();
        let result = instance.call_with_host_context::<&[u8], Vec<u8>, CallCtx>(
            function,
            input.as_slice(),
            ctx,
        );
        match result {
            Ok(out) => {
                self.give_back(instance);
                Ok(out)
            }
            Err(e) => match classify(&e) {
                // A plugin's own error that merely says "timeout".
                Kind::Timeout if started.elapsed() < timeout.mul_f32(0.9) => {
                    self.give_back(instance);
                    Err(CallFailure::Returned(e.to_string()))
                }
                Kind::Returned => {
                    self.give_back(instance);
                    Err(CallFailure::Returned(e.to_string()))
                }
                Kind::Timeout => {
                    let failed = self.record_crash();
                    if failed {
                        return Err(CallFailure::Crashed {
                            reason: format!(
                                "the call ran past its {} ms limit",
                                timeout.as_millis()
                            ),
                            failed,
                        });
                    }
                    Err(CallFailure::Timeout(timeout))
                }
                Kind::Crash(reason) => Err(CallFailure::Crashed {
                    reason,
                    failed: self.record_crash(),
                }),
            },
        }
    }

    fn give_back(&self, instance: extism::Plugin) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(instance);
        }
    }

    /// Counts a crash; true once `crash_limit` fell within the window.
    fn record_crash(&self) -> bool {
        let Ok(mut crashes) = self.crashes.lock() else {
            return true;
        };
        let now = Instant::now();
        crashes.push_back(now);
        while crashes
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.crash_window)
        {
            crashes.pop_front();
        }
        crashes.len() >= self.crash_limit
    }
}

fn instance_timeout(manifest: &Manifest, ctx: &CallCtx) -> Duration {
    CallLimits::of(manifest, &ctx.state.config.plugins).timeout
}

enum Kind {
    Returned,
    Timeout,
    Crash(String),
}

/// Tells a plugin's own error from a trap, a timeout or running out of memory or fuel.
/// Extism reports a timeout as the message `timeout` and its memory limiter as `oom`; traps
/// keep wasmtime's trap (and its backtrace) in the error chain.
fn classify(e: &extism::Error) -> Kind {
    match e.to_string().as_str() {
        "timeout" => return Kind::Timeout,
        "oom" => return Kind::Crash("the plugin ran out of memory".into()),
        "plugin ran out of fuel" => return Kind::Crash("the call ran out of fuel".into()),
        _ => {}
    }
    for cause in e.chain() {
        if let Some(trap) = cause.downcast_ref::<wasmtime::Trap>() {
            return match trap {
                wasmtime::Trap::Interrupt => Kind::Timeout,
                wasmtime::Trap::OutOfFuel => Kind::Crash("the call ran out of fuel".into()),
                other => Kind::Crash(format!("the plugin crashed: {other}")),
            };
        }
    }
    let chain = format!("{e:?}");
    if chain.contains("wasm trap") || chain.contains("wasm backtrace") {
        return Kind::Crash(format!("the plugin crashed: {}", root_message(e)));
    }
    Kind::Returned
}

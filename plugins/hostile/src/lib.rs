//! `hostile`: misbehaving functions the tests use to check the sandbox (a loop that never
//! ends, memory that grows until the cap, a trap) and trivial ones for the pool and benchmarks.
//! Not installed by default.

use extism_pdk::{plugin_fn, FnResult, Json};
use serde_json::{json, Value};

/// Returns its input unchanged.
#[plugin_fn]
pub fn echo(input: Vec<u8>) -> FnResult<Vec<u8>> {
    Ok(input)
}

/// Loops forever (until the host's timeout or fuel limit ends it).
#[plugin_fn]
pub fn spin(_: Vec<u8>) -> FnResult<Vec<u8>> {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

/// Allocates 1 MiB blocks until memory runs out.
#[plugin_fn]
pub fn grow(_: Vec<u8>) -> FnResult<Vec<u8>> {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 1 << 20];
        block[0] = blocks.len() as u8;
        blocks.push(std::hint::black_box(block));
    }
}

/// Traps (a Rust panic aborts into `unreachable`).
#[plugin_fn]
pub fn trap(_: Vec<u8>) -> FnResult<Vec<u8>> {
    panic!("deliberate trap")
}

/// Busy-works for about `iterations` steps, then answers: a call that holds an instance.
#[plugin_fn]
pub fn work(Json(input): Json<Value>) -> FnResult<Json<Value>> {
    let n = input.get("iterations").and_then(Value::as_u64).unwrap_or(1_000_000);
    let mut acc: u64 = 0;
    for i in 0..n {
        acc = std::hint::black_box(acc.wrapping_mul(31).wrapping_add(i));
    }
    Ok(Json(json!({ "acc": acc })))
}

/// A `message_before_send` hook that traps (installed with `hooks` in tests only).
#[plugin_fn]
pub fn message_before_send(_: Vec<u8>) -> FnResult<Vec<u8>> {
    panic!("a hook that crashes")
}

/// Searches the calling user's documents through the host (`{query}` → the hits).
#[plugin_fn]
pub fn search_docs(Json(input): Json<Value>) -> FnResult<Json<Value>> {
    let query = input.get("query").and_then(Value::as_str).unwrap_or_default();
    Ok(Json(hearth_plugin::search(query, 5)?))
}

/// Logs a line and emits an event through the host.
#[plugin_fn]
pub fn announce(Json(input): Json<Value>) -> FnResult<Json<Value>> {
    hearth_plugin::log("info", "announcing")?;
    hearth_plugin::emit("announced", input.clone())?;
    Ok(Json(json!({ "announced": input })))
}

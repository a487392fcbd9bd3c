//! Host functions: what a plugin can ask of Hearth. Each takes one JSON document and answers
//! `{"ok": …}` or `{"error": {"code", "message"}}` (so a refusal is an ordinary error the
//! plugin handles, not a trap), and runs with the identity of the user whose request caused
//! the call ([`CallCtx`], passed per call, so an instance never keeps anyone's identity).

use crate::auth::caller::Caller;
use crate::db::schema::plugin_kv;
use crate::db_run;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::state::AppState;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use extism::{CurrentPlugin, Function, UserData, Val, PTR};
use serde_json::{json, Value};

/// Longest key-value key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Largest key-value value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Longest log line or event name/data a plugin may send.
const MAX_LOG_BYTES: usize = 16 * 1024;

/// Who and what a call runs for; handed to the host functions of that call only.
#[derive(Clone)]
pub struct CallCtx {
    /// The server.
    pub state: AppState,
    /// The user whose request caused the call.
    pub caller: Caller,
    /// The plugin's id (its key-value namespace).
    pub plugin_id: i64,
    /// The plugin's key (log and event tag).
    pub plugin: String,
    /// Hosts the manifest lists.
    pub allowed_hosts: Vec<String>,
    /// The runtime the blocking call came from (host functions wait on async work with it).
    pub runtime: tokio::runtime::Handle,
}

type HostFn = fn(&CallCtx, Value) -> AppResult<Value>;

/// Every host function, linked into each compiled module.
pub fn host_functions() -> Vec<Function> {
    let table: [(&str, HostFn); 7] = [
        ("hearth_kv_get", kv_get),
        ("hearth_kv_set", kv_set),
        ("hearth_kv_delete", kv_delete),
        ("hearth_log", log),
        ("hearth_emit", emit),
        ("hearth_http", super::net::http),
        ("hearth_search", search),
    ];
    table
        .into_iter()
        .map(|(name, f)| {
            Function::new(
                name,
                [PTR],
                [PTR],
                UserData::new(()),
                move |plugin: &mut CurrentPlugin, inputs: &[Val], outputs: &mut [Val], _| {
                    let ctx = plugin.host_context::<CallCtx>()?.clone();
                    let raw: Vec<u8> = plugin.memory_get_val::<&[u8]>(&inputs[0])?.to_vec();
                    let reply = match serde_json::from_slice::<Value>(&raw) {
                        Ok(input) => f(&ctx, input),
                        Err(e) => Err(AppError::new(
                            ErrorCode::InvalidJson,
                            format!("the host function's input is not JSON: {e}"),
                        )),
                    };
                    let reply = match reply {
                        Ok(v) => json!({ "ok": v }),
                        Err(e) => {
                            json!({ "error": { "code": e.code.as_str(), "message": e.message } })
                        }
                    };
                    plugin.memory_set_val(&mut outputs[0], reply.to_string())?;
                    Ok(())
                },
            )
        })
        .collect()
}

/// A string field of a host function's input.
pub fn field<'a>(input: &'a Value, name: &str) -> AppResult<&'a str> {
    input
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| AppError::validation(name, format!("`{name}` must be a string")))
}

fn key(input: &Value) -> AppResult<String> {
    let key = field(input, "key")?;
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(AppError::validation(
            "key",
            format!("keys are 1 to {MAX_KEY_BYTES} bytes"),
        ));
    }
    Ok(key.to_string())
}

fn kv_get(ctx: &CallCtx, input: Value) -> AppResult<Value> {
    let key = key(&input)?;
    let db = &ctx.state.db;
    let id = ctx.plugin_id;
    let value: Option<Vec<u8>> = ctx.runtime.block_on(async {
        db_run!(db, read, |conn| plugin_kv::table
            .filter(plugin_kv::plugin_id.eq(id).and(plugin_kv::key.eq(&key)))
            .select(plugin_kv::value)
            .first::<Vec<u8>>(conn)
            .await
            .optional()
            .map_err(AppError::from))
    })?;
    Ok(value.map_or(Value::Null, |v| {
        Value::String(String::from_utf8_lossy(&v).into_owned())
    }))
}

fn kv_set(ctx: &CallCtx, input: Value) -> AppResult<Value> {
    let key = key(&input)?;
    let value = field(&input, "value")?.as_bytes().to_vec();
    if value.len() > MAX_VALUE_BYTES {
        return Err(AppError::new(
            ErrorCode::PayloadTooLarge,
            format!("values are at most {MAX_VALUE_BYTES} bytes"),
        ));
    }
    let db = &ctx.state.db;
    let id = ctx.plugin_id;
    let now = chrono::Utc::now().naive_utc();
    ctx.runtime.block_on(async {
        db_run!(db, write, |conn| diesel::insert_into(plugin_kv::table)
            .values((
                plugin_kv::plugin_id.eq(id),
                plugin_kv::key.eq(&key),
                plugin_kv::value.eq(&value),
                plugin_kv::updated_at.eq(now),
            ))
            .on_conflict((plugin_kv::plugin_id, plugin_kv::key))
            .do_update()
            .set((plugin_kv::value.eq(&value), plugin_kv::updated_at.eq(now)))
            .execute(conn)
            .await
            .map_err(AppError::from))
    })?;
    Ok(Value::Null)
}

fn kv_delete(ctx: &CallCtx, input: Value) -> AppResult<Value> {
    let key = key(&input)?;
    let db = &ctx.state.db;
    let id = ctx.plugin_id;
    let n = ctx.runtime.block_on(async {
        db_run!(db, write, |conn| diesel::delete(plugin_kv::table.filter(
            plugin_kv::plugin_id.eq(id).and(plugin_kv::key.eq(&key))
        ))
        .execute(conn)
        .await
        .map_err(AppError::from))
    })?;
    Ok(Value::Bool(n > 0))
}

fn capped(s: &str) -> &str {
    if s.len() <= MAX_LOG_BYTES {
        return s;
    }
    let mut end = MAX_LOG_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn log(ctx: &CallCtx, input: Value) -> AppResult<Value> {
    let message = capped(field(&input, "message")?);
    let plugin = ctx.plugin.as_str();
    let user = ctx.caller.user_id();
    match input.get("level").and_then(Value::as_str).unwrap_or("info") {
        "error" => tracing::error!(plugin, user, "{message}"),
        "warn" => tracing::warn!(plugin, user, "{message}"),
        "debug" => tracing::debug!(plugin, user, "{message}"),
        "trace" => tracing::trace!(plugin, user, "{message}"),
        _ => tracing::info!(plugin, user, "{message}"),
    }
    Ok(Value::Null)
}

fn emit(ctx: &CallCtx, input: Value) -> AppResult<Value> {
    let name = field(&input, "name")?;
    if name.is_empty() || name.len() > 128 {
        return Err(AppError::validation(
            "name",
            "event names are 1 to 128 bytes",
        ));
    }
    let data = input
        .get("data")
        .cloned()
        .unwrap_or(Value::Null)
        .to_string();
    if data.len() > MAX_LOG_BYTES {
        return Err(AppError::new(
            ErrorCode::PayloadTooLarge,
            format!("event data is at most {MAX_LOG_BYTES} bytes"),
        ));
    }
    ctx.state
        .events
        .publish(crate::events::Event::PluginEmitted {
            user_id: ctx.caller.user_id(),
            plugin: ctx.plugin.clone(),
            name: name.to_string(),
            data,
        });
    Ok(Value::Null)
}

fn search(ctx: &CallCtx, input: Value) -> AppResult<Value> {
    let query = field(&input, "query")?;
    let top_k = input.get("top_k").and_then(Value::as_i64);
    let hits = ctx.runtime.block_on(crate::service::documents::search(
        &ctx.state,
        &ctx.caller,
        None,
        query,
        top_k,
        None,
        crate::rag::search::Mode::Hybrid,
    ))?;
    Ok(Value::Array(
        hits.iter()
            .map(|h| {
                json!({
                    "document_id": h.document.id,
                    "filename": h.document.filename,
                    "chunk_id": h.chunk.id,
                    "text": h.chunk.text,
                    "score": h.score,
                })
            })
            .collect(),
    ))
}

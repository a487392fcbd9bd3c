//! Hearth's host functions, typed. Every host function takes one JSON document and answers one:
//! `{"ok": …}` or `{"error": {"code", "message"}}`, so a refused call (a host not allowed, a
//! missing permission) is an ordinary error the plugin can handle, never a trap.

use extism_pdk::{host_fn, Error, Json};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[host_fn]
extern "ExtismHost" {
    fn hearth_kv_get(input: Json<Value>) -> Json<Value>;
    fn hearth_kv_set(input: Json<Value>) -> Json<Value>;
    fn hearth_kv_delete(input: Json<Value>) -> Json<Value>;
    fn hearth_log(input: Json<Value>) -> Json<Value>;
    fn hearth_emit(input: Json<Value>) -> Json<Value>;
    fn hearth_http(input: Json<Value>) -> Json<Value>;
    fn hearth_search(input: Json<Value>) -> Json<Value>;
}

/// Unwraps a host answer: the `ok` value, or the host's error as this call's error.
fn answer<T: DeserializeOwned>(reply: Json<Value>) -> Result<T, Error> {
    let Json(mut reply) = reply;
    if let Some(err) = reply.get("error") {
        let code = err.get("code").and_then(Value::as_str).unwrap_or("error");
        let message = err.get("message").and_then(Value::as_str).unwrap_or("");
        return Err(Error::msg(format!("{code}: {message}")));
    }
    let ok = reply.get_mut("ok").map(Value::take).unwrap_or(Value::Null);
    Ok(serde_json::from_value(ok)?)
}

/// The value stored under `key` in this plugin's own key-value namespace.
pub fn kv_get(key: &str) -> Result<Option<String>, Error> {
    answer(unsafe { hearth_kv_get(Json(json!({ "key": key })))? })
}

/// Stores `value` under `key` in this plugin's namespace (kept across upgrades).
pub fn kv_set(key: &str, value: &str) -> Result<(), Error> {
    answer::<Value>(unsafe { hearth_kv_set(Json(json!({ "key": key, "value": value })))? })
        .map(|_| ())
}

/// Removes `key`; true when it existed.
pub fn kv_delete(key: &str) -> Result<bool, Error> {
    answer(unsafe { hearth_kv_delete(Json(json!({ "key": key })))? })
}

/// A line in the server's log, tagged with the plugin's name.
pub fn log(level: &str, message: &str) -> Result<(), Error> {
    answer::<Value>(unsafe { hearth_log(Json(json!({ "level": level, "message": message })))? })
        .map(|_| ())
}

/// Publishes an event on the server's bus (delivered to `pluginEvents` subscribers).
pub fn emit(name: &str, data: Value) -> Result<(), Error> {
    answer::<Value>(unsafe { hearth_emit(Json(json!({ "name": name, "data": data })))? })
        .map(|_| ())
}

/// An HTTP response as the host returns it.
#[derive(Debug, Deserialize, Serialize)]
pub struct HttpResponse {
    /// Status code of the final response.
    pub status: u16,
    /// Body as text (lossy UTF-8), truncated to the server's limit.
    pub body: String,
}

/// An HTTP request to a host the manifest lists and the admin allowed.
pub fn http(method: &str, url: &str, body: Option<&str>) -> Result<HttpResponse, Error> {
    answer(unsafe {
        hearth_http(Json(json!({ "method": method, "url": url, "body": body })))?
    })
}

/// Searches the calling user's documents.
pub fn search(query: &str, top_k: u32) -> Result<Value, Error> {
    answer(unsafe { hearth_search(Json(json!({ "query": query, "top_k": top_k })))? })
}

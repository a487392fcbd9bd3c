//! `web_fetch`: fetches a page from a host the manifest lists (and the admin allowed).

use extism_pdk::{plugin_fn, FnResult, Json};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
struct Fetch {
    url: String,
    #[serde(default)]
    max_chars: Option<usize>,
}

/// GETs `url` and returns its status and (truncated) body.
#[plugin_fn]
pub fn fetch_url(Json(input): Json<Fetch>) -> FnResult<Json<Value>> {
    let response = hearth_plugin::http("GET", &input.url, None)?;
    let limit = input.max_chars.unwrap_or(4000);
    let body: String = response.body.chars().take(limit).collect();
    Ok(Json(json!({ "status": response.status, "body": body })))
}

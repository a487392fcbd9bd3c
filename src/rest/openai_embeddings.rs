//! OpenAI-compatible `POST /v1/embeddings`: `input` as a string or a list of strings,
//! `model` (the configured embedding model), `encoding_format` `float` (default) or
//! `base64` (little-endian f32, as the OpenAI SDKs request by default), `dimensions` only
//! as the model's own width. Errors in OpenAI's shape (the `/v1` layer).

use super::openapi::OPENAI;
use crate::error::AppError;
use crate::http::extract::{AuthCaller, JsonBody};
use crate::service::embeddings;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[schema(as = OpenaiEmbeddingsBody)]
#[serde(deny_unknown_fields)]
pub(super) struct EmbeddingsBody {
    /// A string or a list of strings (token arrays are refused).
    input: Value,
    /// Must name the configured embedding model when given.
    model: Option<String>,
    /// `float` (default) or `base64` (little-endian f32).
    encoding_format: Option<String>,
    /// Only the model's own width is accepted.
    dimensions: Option<u32>,
    /// Accepted and ignored.
    user: Option<String>,
}

fn inputs(v: Value) -> Result<Vec<String>, AppError> {
    let refuse = || {
        AppError::validation(
            "input",
            "input must be a string or a list of strings (token arrays are not accepted)",
        )
    };
    match v {
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => Ok(s),
                _ => Err(refuse()),
            })
            .collect(),
        _ => Err(refuse()),
    }
}

/// Embeds one text or a list of texts, as OpenAI's API does.
#[utoipa::path(post, path = "/v1/embeddings", tag = OPENAI, request_body = EmbeddingsBody,
    responses((status = 200, description = "`{object: \"list\", data, model, usage: {prompt_tokens, total_tokens}}`; each item `{object: \"embedding\", index, embedding}` (a list of floats, or a base64 string)", body = Object)))]
pub(super) async fn embeddings(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    JsonBody(body): JsonBody<EmbeddingsBody>,
) -> Result<Json<Value>, AppError> {
    let _ = body.user;
    let base64 = match body.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(AppError::validation(
                "encoding_format",
                format!("encoding_format must be float or base64, not {other:?}"),
            ))
        }
    };
    let texts = inputs(body.input)?;
    let out = embeddings::embed(&state, &caller, texts, body.model.as_deref()).await?;
    if let Some(d) = body.dimensions {
        let width = out.items.first().map_or(0, |e| e.vector.len());
        if d as usize != width {
            return Err(AppError::validation(
                "dimensions",
                format!("this model makes {width}-dimensional vectors only"),
            ));
        }
    }
    let mut tokens = 0usize;
    let data: Vec<Value> = out
        .items
        .iter()
        .enumerate()
        .map(|(index, e)| {
            tokens += e.tokens;
            let embedding = if base64 {
                let bytes: Vec<u8> = e.vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(e.vector)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": out.model,
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
    })))
}

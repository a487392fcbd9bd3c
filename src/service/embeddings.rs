//! Embeddings for callers: checks the request, then hands the texts to the process's
//! embedder (see `crate::embed`).

use crate::auth::Caller;
use crate::embed::Embedding;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::state::AppState;

/// Embedded texts and the model that made them.
pub struct Embedded {
    /// The model's name.
    pub model: String,
    /// One per input, in order.
    pub items: Vec<Embedding>,
}

/// Embeds `inputs` for `caller`. `model`, when given, must name the configured model.
pub async fn embed(
    state: &AppState,
    _caller: &Caller,
    inputs: Vec<String>,
    model: Option<&str>,
) -> AppResult<Embedded> {
    let cfg = &state.config.embed;
    if inputs.is_empty() {
        return Err(AppError::validation("input", "input must not be empty"));
    }
    if inputs.len() > cfg.max_inputs {
        return Err(AppError::validation(
            "input",
            format!("at most {} texts per request", cfg.max_inputs),
        ));
    }
    for (i, text) in inputs.iter().enumerate() {
        if text.trim().is_empty() {
            return Err(AppError::validation(
                "input",
                format!("input[{i}] is empty"),
            ));
        }
        if text.chars().count() > cfg.max_input_chars {
            return Err(AppError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "input[{i}] is longer than {} characters",
                    cfg.max_input_chars
                ),
            )
            .with_details(serde_json::json!({ "field": "input" })));
        }
    }
    if let Some(m) = model {
        if m != cfg.model_name {
            return Err(AppError::new(
                ErrorCode::NotFound,
                format!(
                    "model {m:?} not found; this server embeds with {:?}",
                    cfg.model_name
                ),
            )
            .with_details(serde_json::json!({ "field": "model" })));
        }
    }
    let embedder = state.embed.get(cfg, &state.background).await?;
    let items = embedder.embed(inputs).await?;
    Ok(Embedded {
        model: embedder.name.clone(),
        items,
    })
}

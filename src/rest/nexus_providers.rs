//! Seed 002's voice (`/voice/*`), video (`/video/*`) and billing (`/billing/*`) doors,
//! mounted under `/api/v1`. Hearth ships no speech, video-generation or payment provider, so
//! each door answers 501 `NOT_IMPLEMENTED` in the seed's error shape, naming the provider it
//! would need (docs/decisions.md, "Voice, video and billing"). Callers are authenticated
//! first, as on every other door of the seed; the payment webhook, which the payment
//! provider calls without a token, answers 501 to anyone.

use crate::error::{AppError, ErrorCode};
use crate::http::extract::AuthCaller;
use crate::state::AppState;
use axum::routing::{get, post};
use axum::{middleware, Router};
use serde_json::json;

/// Routes (relative to `/api/v1`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/voice/transcribe", post(voice))
        .route("/voice/synthesize", post(voice))
        .route("/voice/voices", get(voice))
        .route("/video/projects", post(video))
        .route("/video/projects/{project_id}/start", post(video))
        .route("/video/projects/{project_id}/status", get(video))
        .route("/billing/payments", post(billing))
        .route("/billing/invoices", get(billing))
        .route("/billing/webhook", post(webhook))
        .layer(middleware::from_fn(super::nexus::nexus_errors))
}

fn missing(area: &str, provider: &str) -> AppError {
    AppError::new(
        ErrorCode::NotImplemented,
        format!("{area} needs {provider}, and this Hearth has none configured"),
    )
    .with_details(json!({ "area": area, "provider": provider }))
}

async fn voice(AuthCaller(_): AuthCaller) -> AppError {
    missing("voice", "a speech-to-text and text-to-speech provider")
}

async fn video(AuthCaller(_): AuthCaller) -> AppError {
    missing("video", "a video generation provider")
}

async fn billing(AuthCaller(_): AuthCaller) -> AppError {
    missing("billing", "a payment provider (Chargily)")
}

async fn webhook() -> AppError {
    missing("billing", "a payment provider (Chargily)")
}

//! Seed 002's voice (`/voice/*`), video (`/video/*`) and billing (`/billing/*`) doors,
//! mounted under `/api/v1`. Hearth ships no speech, video-generation or payment provider, so
//! each door answers 501 `NOT_IMPLEMENTED` in the seed's error shape, naming the provider it
//! would need (docs/decisions.md, "Voice, video and billing"). Callers are authenticated
//! first, as on every other door of the seed; the payment webhook, which the payment
//! provider calls without a token, answers 501 to anyone.

use super::openapi::NEXUS;
use super::DocRouter;
use crate::error::{AppError, ErrorCode};
use crate::http::extract::AuthCaller;
use axum::middleware;
use serde_json::json;
use utoipa_axum::routes;

/// Routes (relative to `/api/v1`).
pub fn router() -> DocRouter {
    DocRouter::new()
        .routes(routes!(voice_transcribe))
        .routes(routes!(voice_synthesize))
        .routes(routes!(voice_voices))
        .routes(routes!(video_create))
        .routes(routes!(video_start))
        .routes(routes!(video_status))
        .routes(routes!(billing_payments))
        .routes(routes!(billing_invoices))
        .routes(routes!(webhook))
        .layer(middleware::from_fn(super::nexus::nexus_errors))
}

fn missing(area: &str, provider: &str) -> AppError {
    AppError::new(
        ErrorCode::NotImplemented,
        format!("{area} needs {provider}, and this Hearth has none configured"),
    )
    .with_details(json!({ "area": area, "provider": provider }))
}

fn voice() -> AppError {
    missing("voice", "a speech-to-text and text-to-speech provider")
}

fn video() -> AppError {
    missing("video", "a video generation provider")
}

fn billing() -> AppError {
    missing("billing", "a payment provider (Chargily)")
}

/// Transcribes speech to text: not available, Hearth ships no speech provider.
#[utoipa::path(post, path = "/voice/transcribe", tag = NEXUS,
    responses((status = 501, description = "`NOT_IMPLEMENTED` in the seed's error body, `details: {area: \"voice\", provider}`: no speech-to-text provider is configured", body = Object)))]
async fn voice_transcribe(AuthCaller(_caller): AuthCaller) -> AppError {
    voice()
}

/// Synthesizes speech from text: not available, Hearth ships no speech provider.
#[utoipa::path(post, path = "/voice/synthesize", tag = NEXUS,
    responses((status = 501, description = "`NOT_IMPLEMENTED` in the seed's error body, `details: {area: \"voice\", provider}`: no text-to-speech provider is configured", body = Object)))]
async fn voice_synthesize(AuthCaller(_caller): AuthCaller) -> AppError {
    voice()
}

/// The synthesis voices: not available, Hearth ships no speech provider.
#[utoipa::path(get, path = "/voice/voices", tag = NEXUS,
    responses((status = 501, description = "`NOT_IMPLEMENTED` in the seed's error body, `details: {area: \"voice\", provider}`: no text-to-speech provider is configured", body = Object)))]
async fn voice_voices(AuthCaller(_caller): AuthCaller) -> AppError {
    voice()
}

/// Creates a video project: not available, Hearth ships no video generation provider.
#[utoipa::path(post, path = "/video/projects", tag = NEXUS,
    responses((status = 501, description = "`NOT_IMPLEMENTED` in the seed's error body, `details: {area: \"video\", provider}`: no video generation provider is configured", body = Object)))]
async fn video_create(AuthCaller(_caller): AuthCaller) -> AppError {
    video()
}

/// Starts a video project's generation: not available, Hearth ships no video provider.
#[utoipa::path(post, path = "/video/projects/{project_id}/start", tag = NEXUS,
    params(("project_id" = String, Path, description = "The video project's id (not read: the door answers 501)")),
    responses((status = 501, description = "`NOT_IMPLEMENTED` in the seed's error body, `details: {area: \"video\", provider}`: no video generation provider is configured", body = Object)))]
async fn video_start(AuthCaller(_caller): AuthCaller) -> AppError {
    video()
}

/// A video project's status: not available, Hearth ships no video generation provider.
#[utoipa::path(get, path = "/video/projects/{project_id}/status", tag = NEXUS,
    params(("project_id" = String, Path, description = "The video project's id (not read: the door answers 501)")),
    responses((status = 501, description = "`NOT_IMPLEMENTED` in the seed's error body, `details: {area: \"video\", provider}`: no video generation provider is configured", body = Object)))]
async fn video_status(AuthCaller(_caller): AuthCaller) -> AppError {
    video()
}

/// Creates a payment: not available, Hearth ships no payment provider.
#[utoipa::path(post, path = "/billing/payments", tag = NEXUS,
    responses((status = 501, description = "`NOT_IMPLEMENTED` in the seed's error body, `details: {area: \"billing\", provider}`: no payment provider (Chargily) is configured", body = Object)))]
async fn billing_payments(AuthCaller(_caller): AuthCaller) -> AppError {
    billing()
}

/// The caller's invoices: not available, Hearth ships no payment provider.
#[utoipa::path(get, path = "/billing/invoices", tag = NEXUS,
    responses((status = 501, description = "`NOT_IMPLEMENTED` in the seed's error body, `details: {area: \"billing\", provider}`: no payment provider (Chargily) is configured", body = Object)))]
async fn billing_invoices(AuthCaller(_caller): AuthCaller) -> AppError {
    billing()
}

/// The payment provider's webhook: not available, Hearth ships no payment provider.
///
/// The provider calls it without a token, so it answers 501 to anyone.
#[utoipa::path(post, path = "/billing/webhook", tag = NEXUS, security(()),
    responses((status = 501, description = "`NOT_IMPLEMENTED` in the seed's error body, `details: {area: \"billing\", provider}`: no payment provider (Chargily) is configured", body = Object)))]
async fn webhook() -> AppError {
    billing()
}

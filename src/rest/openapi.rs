//! The OpenAPI 3.1 document of every REST door (`GET /openapi.json`, `hearth openapi`,
//! committed as `openapi.json`). Each handler carries a `#[utoipa::path]`; the routers are
//! built with `utoipa_axum`'s `routes!`, so a door cannot be served without being
//! documented, and the document is read from the same routers the server runs. What is
//! common to every door is added here, from the tables the server itself uses: the error
//! body of the door's API (`limits::door`), its rate-limit refusal and headers, and how a
//! caller authenticates.

use super::limits::{door, ErrorShape};
use serde_json::{json, Value};
use std::sync::OnceLock;
use utoipa::openapi::OpenApi;
use utoipa::{Modify, OpenApi as _, ToSchema};

/// Tag of seed 000 (AI Orchestrator v5.2).
pub const ORCHESTRATOR: &str = "seed 000: AI Orchestrator";
/// Tag of seed 001 (FoyerGPT).
pub const FOYER: &str = "seed 001: FoyerGPT";
/// Tag of seed 002 (RAG-DZ / Nexus), under `/api/v1`.
pub const NEXUS: &str = "seed 002: Nexus";
/// Tag of seed 003 (plugin host).
pub const PLUGIN_HOST: &str = "seed 003: plugin host";
/// Tag of seed 004 (Llama Runner Async Proxy).
pub const RUNNER: &str = "seed 004: Llama Runner";
/// Tag of the OpenAI-compatible `/v1` doors.
pub const OPENAI: &str = "OpenAI-compatible";
/// Tag of the doors every deployment has (health, metrics).
pub const OPERATIONS: &str = "operations";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Hearth REST API",
        description = "The REST doors of Hearth: the five documented APIs it answers (the seeds), \
            the OpenAI-compatible `/v1`, health and metrics. GraphQL (`/graphql`, subscriptions on \
            `/graphql/ws`) is described by its own schema (`schema.graphql`). Every door's \
            error body is its API's (`default` responses); limited doors answer 429 with \
            `Retry-After` and carry `X-RateLimit-*` headers (docs/operations.md).",
        license(name = "AGPL-3.0-or-later"),
    ),
    tags(
        (name = ORCHESTRATOR, description = "Seed 000: chats over REST, SSE and `/ws/chat`, conversations, stats, memory, tools, models."),
        (name = FOYER, description = "Seed 001: agents, chats, messages with SSE, documents; socket.io at `/ws/socket.io`."),
        (name = NEXUS, description = "Seed 002, under `/api/v1`: auth, API keys, projects, LLM chat, agents, RAG, voice/video/billing providers; `WS /ws`."),
        (name = PLUGIN_HOST, description = "Seed 003: cookie sessions with CSRF, plugins, jobs, LLM, RAG, history replay, backup and restore."),
        (name = RUNNER, description = "Seed 004: the model registry, configuration, parameters and monitoring."),
        (name = OPENAI, description = "OpenAI's chat completions, models and embeddings: the official SDKs work with a Hearth API key."),
        (name = OPERATIONS, description = "Health and Prometheus metrics."),
    ),
    modifiers(&Common),
)]
struct ApiDoc;

/// The skeleton every router's paths are added to: info, tags, security schemes.
pub fn base() -> OpenApi {
    ApiDoc::openapi()
}

/// The whole document, built once from the server's own routers. (Serializing utoipa's
/// types cannot fail; were it to, the document would be `null` and its tests would say so.)
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(super::routers().document()).unwrap_or_default();
        finish(&mut doc);
        doc
    })
}

/// The document as committed in `openapi.json` (pretty, newline-terminated).
pub fn json() -> String {
    let mut s = serde_json::to_string_pretty(document()).unwrap_or_default();
    s.push('\n');
    s
}

/// Security schemes, added to the skeleton.
struct Common;

impl Modify for Common {
    fn modify(&self, api: &mut OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder};
        use utoipa::openapi::security::{SecurityRequirement, SecurityScheme};
        let c = api.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer` with an access token from a login door or an \
                         API key (`sk-hearth-…`).",
                    ))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "An API key (seed 002).",
            ))),
        );
        c.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::http::extract::ACCESS_COOKIE,
                "The HttpOnly session cookie of seed 003's login; state-changing requests \
                 also send its CSRF token in `X-CSRF-Token`.",
            ))),
        );
        api.security = Some(
            ["bearer", "api_key", "cookie"]
                .into_iter()
                .map(|s| SecurityRequirement::new(s, Vec::<String>::new()))
                .collect(),
        );
    }
}

/// The error schema's name for an API.
fn error_schema(shape: ErrorShape) -> &'static str {
    match shape {
        ErrorShape::Default => "Error",
        ErrorShape::Nexus => "NexusError",
        ErrorShape::OpenAi => "OpenAiError",
        ErrorShape::Runner => "RunnerError",
    }
}

/// The four error bodies, as `http::errors` and the APIs' shape functions write them.
fn error_schemas() -> Vec<(&'static str, Value)> {
    let default_props = json!({
        "detail": {"type": "string", "description": "What went wrong, for a person."},
        "code": {"type": "string", "description": "Stable error code (docs/rest.md has the table)."},
        "status": {"type": "string", "enum": ["error"]},
        "timestamp": {"type": "string", "format": "date-time"},
        "details": {"type": "object", "description": "Structured details (the field at fault, `retry_after`, …)."},
        "request_id": {"type": "string", "description": "Also in the `x-request-id` header."},
    });
    let mut runner_props = default_props.clone();
    runner_props["error"] = json!({"type": "string", "description": "Seed 004's message field."});
    runner_props["details"] =
        json!({"type": ["object", "string"], "description": "Structured details, or `\"\"`."});
    let schemas = [
        (
            ErrorShape::Default,
            json!({
                "type": "object",
                "description": "Error body of seeds 000, 001 and 003: the union of seed 000's and seed 001's.",
                "required": ["detail", "code", "status", "timestamp"],
                "properties": default_props,
            }),
        ),
        (
            ErrorShape::Nexus,
            json!({
                "type": "object",
                "description": "Seed 002's error body.",
                "required": ["error", "request_id"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message", "details"],
                        "properties": {
                            "code": {"type": "string", "description": "Upper-case error code."},
                            "message": {"type": "string"},
                            "details": {"type": "object"},
                        },
                    },
                    "request_id": {"type": "string"},
                },
            }),
        ),
        (
            ErrorShape::OpenAi,
            json!({
                "type": "object",
                "description": "OpenAI's error body.",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["message", "type", "code"],
                        "properties": {
                            "message": {"type": "string"},
                            "type": {"type": "string"},
                            "param": {"type": ["string", "null"]},
                            "code": {"type": "string"},
                        },
                    },
                },
            }),
        ),
        (
            ErrorShape::Runner,
            json!({
                "type": "object",
                "description": "Seed 004's error body: the default one plus `error`.",
                "required": ["detail", "code", "error"],
                "properties": runner_props,
            }),
        ),
    ];
    schemas
        .into_iter()
        .map(|(shape, v)| (error_schema(shape), v))
        .collect()
}

/// Adds what every operation shares: a unique id from its method and path, its API's error
/// body as the `default` response, and the 429 of a door that spends a rate budget; and the
/// error schemas those responses name.
fn finish(doc: &mut Value) {
    for (name, schema) in error_schemas() {
        doc["components"]["schemas"][name] = schema;
    }
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let door = door(path);
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(op) = item.get_mut(method) else {
                continue;
            };
            op["operationId"] = json!(operation_id(method, path));
            let Some(responses) = op["responses"].as_object_mut() else {
                continue;
            };
            responses
                .entry("default")
                .or_insert_with(|| error_response(door.errors, "An error, in this API's body."));
            if door.rule.is_some() {
                responses
                    .entry("429")
                    .or_insert_with(|| rate_limited(door.errors));
            }
        }
    }
}

/// `post /api/v1/keys/{key_id}` → `post_api_v1_keys_key_id`.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_string();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        id.push('_');
        id.extend(part.chars().filter(|c| !matches!(c, '{' | '}')).map(|c| {
            if c.is_ascii_alphanumeric() {
                c
            } else {
                '_'
            }
        }));
    }
    id
}

fn error_response(shape: ErrorShape, description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{}", error_schema(shape))}}},
    })
}

/// The refusal of a spent budget, with the headers every limited response carries.
fn rate_limited(shape: ErrorShape) -> Value {
    let mut r = error_response(
        shape,
        "The door's rate budget (or the API key's own) is spent; retry after `Retry-After` seconds.",
    );
    let header =
        |description: &str| json!({"description": description, "schema": {"type": "integer"}});
    r["headers"] = json!({
        "Retry-After": header("Seconds until the budget allows a request."),
        "X-RateLimit-Limit": header("Requests the budget allows per window (also on allowed responses)."),
        "X-RateLimit-Remaining": header("Requests left in the window."),
        "X-RateLimit-Reset": header("When the budget is whole again, in seconds since the epoch."),
    });
    r
}

/// A file's bytes, as a download's body.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // describes a body the handlers stream
pub struct FileBytes(Vec<u8>);

/// A multipart upload's body: the file and the door's form fields (described per door).
#[derive(ToSchema)]
#[allow(dead_code)] // describes a multipart form; the handlers read it field by field
pub struct FileUpload {
    /// The file.
    #[schema(value_type = String, format = Binary, content_media_type = "application/octet-stream")]
    pub file: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_come_from_method_and_path() {
        assert_eq!(
            operation_id("delete", "/api/v1/keys/{key_id}"),
            "delete_api_v1_keys_key_id"
        );
        assert_eq!(
            operation_id("get", "/jobs/{id}/run-now"),
            "get_jobs_id_run_now"
        );
    }
}

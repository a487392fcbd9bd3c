//! Seed 001 (FoyerGPT) documents: upload to an agent or a chat, download, delete. The seed
//! answers an unsupported file type with 400 (the table's 415 becomes 400 here).

use super::openapi::FOYER;
use super::ts;
use super::DocRouter;
use crate::db::models::{Collection, Document};
use crate::error::{AppError, ErrorCode};
use crate::http::extract::{path_id, AuthCaller};
use crate::service::documents::{self as docs, Target, UploadInput};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Multipart, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::routes;

/// The upload door (bodies up to the upload size).
pub fn upload_router() -> DocRouter {
    DocRouter::new().routes(routes!(upload))
}

/// The other document doors.
pub fn router() -> DocRouter {
    DocRouter::new().routes(routes!(download, delete))
}

/// A multipart upload's fields: the file (name, bytes) and the text fields.
pub struct Form {
    /// `file`: its name and bytes.
    pub file: Option<(String, Vec<u8>)>,
    /// Every other field, as text.
    pub fields: std::collections::HashMap<String, String>,
}

impl Form {
    /// The `file` part (required).
    pub fn take_file(&mut self) -> Result<(String, Vec<u8>), AppError> {
        self.file
            .take()
            .ok_or_else(|| AppError::validation("file", "a `file` part is required"))
    }
}

/// `201` for a new document, `200` when the same bytes were already there.
pub fn upload_status(existing: bool) -> StatusCode {
    if existing {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    }
}

/// Reads a multipart body: one `file` part and short text fields. A body over the limit is
/// `payload_too_large`; anything unreadable is `bad_request`.
pub async fn read_form(mut multipart: Multipart) -> Result<Form, AppError> {
    let mut form = Form {
        file: None,
        fields: Default::default(),
    };
    let failed = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::new(ErrorCode::PayloadTooLarge, "the file is too large")
                .with_details(json!({ "field": "file" }))
        } else {
            AppError::new(
                ErrorCode::BadRequest,
                format!("unreadable multipart body: {e}"),
            )
        }
    };
    while let Some(field) = multipart.next_field().await.map_err(failed)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            let filename = field.file_name().unwrap_or("document").to_string();
            let bytes = field.bytes().await.map_err(failed)?;
            form.file = Some((filename, bytes.to_vec()));
        } else {
            let text = field.text().await.map_err(failed)?;
            if text.len() > 4096 {
                return Err(AppError::validation(&name, format!("{name} is too long")));
            }
            form.fields.insert(name, text);
        }
    }
    Ok(form)
}

/// Seeds 000 and 001 answer an unsupported type with 400 (their tables have no 415).
pub(crate) fn seed_status(e: AppError) -> AppError {
    if e.code == ErrorCode::UnsupportedMediaType {
        AppError::new(ErrorCode::BadRequest, e.message).with_details(json!({ "field": "file" }))
    } else {
        e
    }
}

fn document_json(d: &Document, c: &Collection) -> Value {
    let (entity_type, entity_id) = match (c.agent_id, c.chat_id) {
        (Some(a), _) => (Value::from("agent"), Value::from(a)),
        (_, Some(ch)) => (Value::from("chat"), Value::from(ch)),
        _ => (Value::Null, Value::Null),
    };
    json!({
        "id": d.id,
        "filename": d.filename,
        "file_size": d.file_size,
        "mime_type": d.mime_type,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "status": d.status,
        "uploaded_at": ts(d.created_at),
    })
}

/// Uploads a document to an agent or a chat; it is indexed for retrieval in the background.
#[utoipa::path(post, path = "/api/documents/upload", tag = FOYER,
    request_body(content = super::openapi::FileUpload, content_type = "multipart/form-data",
        description = "field `file`: the document; other form fields: `entity_type` (`agent` or `chat`), `entity_id` (the agent's or chat's id)"),
    responses(
        (status = 201, description = "The new document: `{id, filename, file_size, mime_type, entity_type, entity_id, status, uploaded_at}`", body = Object),
        (status = 200, description = "The same bytes were already in that agent's or chat's documents: that document, in the same shape", body = Object)))]
async fn upload(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    multipart: Multipart,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let mut form = read_form(multipart).await?;
    let (filename, bytes) = form.take_file()?;
    let entity_id = form
        .fields
        .get("entity_id")
        .ok_or_else(|| AppError::validation("entity_id", "entity_id is required"))?
        .trim()
        .parse::<i64>()
        .map_err(|_| AppError::validation("entity_id", "entity_id must be an integer"))?;
    let target = match form.fields.get("entity_type").map(|s| s.trim()) {
        Some("agent") => Target::Agent(entity_id),
        Some("chat") => Target::Chat(entity_id),
        _ => {
            return Err(AppError::validation(
                "entity_type",
                "entity_type must be \"agent\" or \"chat\"",
            ))
        }
    };
    let uploaded = docs::upload(
        &state,
        &caller,
        UploadInput {
            filename,
            bytes,
            target: target.clone(),
            metadata: None,
        },
    )
    .await
    .map_err(seed_status)?;
    let collection =
        docs::readable_collection(&state, &caller, uploaded.document.collection_id).await?;
    let status = upload_status(uploaded.existing);
    Ok((status, Json(document_json(&uploaded.document, &collection))))
}

/// `Content-Disposition` for a stored file name: an ASCII fallback and the exact UTF-8 name
/// (RFC 6266 / 5987). Always `attachment`, so no uploaded HTML renders on this origin.
pub fn disposition(filename: &str) -> HeaderValue {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .filter(|c| !matches!(c, '"' | '\\' | ';'))
        .collect();
    let encoded: String = filename
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// Downloads a document the caller can read, always as an attachment.
#[utoipa::path(get, path = "/api/documents/{id}", tag = FOYER,
    params(("id" = i64, Path, description = "The document's id")),
    responses((status = 200, description = "The file's bytes, with its stored MIME type as `Content-Type` and `Content-Disposition: attachment`", content_type = "application/octet-stream", body = super::openapi::FileBytes)))]
async fn download(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let (doc, bytes) = docs::bytes(&state, &caller, path_id(&id)?).await?;
    let mut res = Body::from(bytes).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&doc.mime_type)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::CONTENT_DISPOSITION, disposition(&doc.filename));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(res)
}

/// Deletes a document and its indexed chunks.
#[utoipa::path(delete, path = "/api/documents/{id}", tag = FOYER,
    params(("id" = i64, Path, description = "The document's id")),
    responses((status = 200, description = "`{message, id, status: \"success\"}`", body = Object)))]
async fn delete(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let id = path_id(&id)?;
    docs::delete(&state, &caller, id).await?;
    Ok(Json(
        json!({ "message": "Document supprimé", "id": id, "status": "success" }),
    ))
}

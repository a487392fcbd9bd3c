//! Seed 003 (plugin host) backups: `GET /backup/export` (a ZIP) and
//! `POST /backup/import?dry_run=true|false` (multipart field `file`) answering
//! `{version, plan, dry_run}`. Admins only; cookie sessions echo the CSRF token on the import.

use super::openapi::{FileUpload, PLUGIN_HOST};
use super::DocRouter;
use crate::error::{AppError, ErrorCode};
use crate::http::extract::AuthCaller;
use crate::service::backup;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Multipart, Query, State};
use axum::http::{header, StatusCode};
use axum::middleware;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use utoipa::IntoParams;
use utoipa_axum::routes;

/// The import door (bodies up to `backup.max_import_bytes`).
pub fn import_router() -> DocRouter {
    DocRouter::new()
        .routes(routes!(import))
        .layer(middleware::from_fn(
            super::plugin_host_jobs::bad_request_status,
        ))
}

/// The export door.
pub fn router() -> DocRouter {
    DocRouter::new().routes(routes!(export))
}

/// Downloads a backup of the whole deployment as a ZIP (admins).
///
/// The archive holds every table (read in one snapshot), the scrubbed configuration, recent
/// logs and the manifest that lists them; `Content-Disposition` names it
/// `hearth-backup-<UTC time>.zip`.
#[utoipa::path(get, path = "/backup/export", tag = PLUGIN_HOST,
    responses((status = 200, description = "The backup archive", content_type = "application/zip",
        body = super::openapi::FileBytes)))]
async fn export(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
) -> Result<Response, AppError> {
    let out = backup::export(&state, &caller).await?;
    let file = tokio::fs::File::open(&out.path)
        .await
        .map_err(|e| AppError::internal(format!("backup: {e}")))?;
    // The open handle keeps the bytes readable; the name goes now, so nothing is left
    // behind however the download ends.
    let _ = tokio::fs::remove_file(&out.path).await;
    let name = format!(
        "hearth-backup-{}.zip",
        chrono::Utc::now().format("%Y%m%d-%H%M%S")
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "application/zip")
        .header(header::CONTENT_LENGTH, out.bytes)
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        )
        .body(Body::from_stream(tokio_util::io::ReaderStream::new(file)))
        .map_err(AppError::internal)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ImportQuery {
    /// `true` (or `1`, the default) only plans the restore; `false` (or `0`) replaces every
    /// table and ends every session.
    dry_run: Option<String>,
}

/// Restores a backup archive (admins), or only plans the restore with `dry_run`.
#[utoipa::path(post, path = "/backup/import", tag = PLUGIN_HOST, params(ImportQuery),
    request_body(content = FileUpload, content_type = "multipart/form-data",
        description = "field `file`: a backup ZIP from `GET /backup/export`, at most \
            `backup.max_import_bytes`; no other form fields"),
    responses((status = 200,
        description = "`{version, plan, dry_run}`: the archive's version and what the restore changes (or changed)",
        body = Object)))]
async fn import(
    State(state): State<AppState>,
    AuthCaller(caller): AuthCaller,
    Query(q): Query<ImportQuery>,
    mut multipart: Multipart,
) -> Result<Json<Value>, AppError> {
    caller.require_admin()?;
    // Without the parameter nothing changes: a restore replaces every table.
    let dry_run = match q.dry_run.as_deref() {
        None | Some("true") | Some("1") => true,
        Some("false") | Some("0") => false,
        Some(other) => {
            return Err(AppError::validation(
                "dry_run",
                format!("dry_run must be true or false, not \"{other}\""),
            ))
        }
    };
    let work = backup::work_dir(&state);
    tokio::fs::create_dir_all(&work)
        .await
        .map_err(|e| AppError::internal(format!("backup: {e}")))?;
    let upload = tempfile::Builder::new()
        .prefix(".upload-")
        .tempfile_in(&work)
        .map_err(|e| AppError::internal(format!("backup: {e}")))?;
    let limit = state.config.backup.max_import_bytes;
    let too_large = || {
        AppError::new(
            ErrorCode::PayloadTooLarge,
            format!("the archive is larger than {limit} bytes (backup.max_import_bytes)"),
        )
        .with_details(json!({ "field": "file", "limit": limit }))
    };
    let failed = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            AppError::new(
                ErrorCode::BadRequest,
                format!("unreadable multipart body: {e}"),
            )
        }
    };
    let mut received = false;
    while let Some(mut field) = multipart.next_field().await.map_err(failed)? {
        if field.name() != Some("file") {
            continue;
        }
        let mut out = tokio::fs::File::from_std(
            upload
                .reopen()
                .map_err(|e| AppError::internal(format!("backup: {e}")))?,
        );
        let mut written = 0u64;
        while let Some(chunk) = field.chunk().await.map_err(failed)? {
            written += chunk.len() as u64;
            if written > limit {
                return Err(too_large());
            }
            out.write_all(&chunk)
                .await
                .map_err(|e| AppError::internal(format!("backup: {e}")))?;
        }
        out.flush()
            .await
            .map_err(|e| AppError::internal(format!("backup: {e}")))?;
        received = true;
        break;
    }
    if !received {
        return Err(AppError::validation(
            "file",
            "the archive is missing (field `file`)",
        ));
    }
    let answer = backup::import(&state, &caller, upload.path(), dry_run).await?;
    Ok(Json(answer))
}

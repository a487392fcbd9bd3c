//! The model registry: which models exist, who may change them, and which one a request
//! gets. Listing is for any signed-in caller; registering, changing, deleting and discovering
//! (which reads the server's disk and makes the server call URLs) are for admins.

use crate::auth::Caller;
use crate::db::enums::{ModelKind, Provider};
use crate::db::models::{ModelRow, NewModel};
use crate::db::schema::{models, settings};
use crate::db_run;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::llm::gguf;
use crate::service::{now, validate};
use crate::state::AppState;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use std::path::{Path, PathBuf};

/// The router's key: the agent's model, else the default, else the first healthy model.
pub const AUTO: &str = "auto";
/// `settings` key holding the default model chosen at run time (seed 004 `/api/config`).
pub const SETTING_DEFAULT_MODEL: &str = "llm.default_model";
/// Most files one discovery may inspect, and how deep it walks.
const DISCOVER_MAX_FILES: usize = 1000;
const DISCOVER_MAX_DEPTH: usize = 4;

/// Fields of a model registration; `None` keeps the current value on update.
#[derive(Debug, Clone, Default)]
pub struct ModelInput {
    /// Unique key (letters, digits, `-_.:`); derived from the name when absent.
    pub key: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// `local` or `openai`; `local` when a path is given, else `openai`.
    pub provider: Option<String>,
    /// One line.
    pub description: Option<String>,
    /// GGUF file (local).
    pub path: Option<String>,
    /// Server base URL up to `/v1` (openai).
    pub base_url: Option<String>,
    /// Bearer key for the server.
    pub api_key: Option<String>,
    /// Model id sent upstream.
    pub remote_name: Option<String>,
    /// Context window.
    pub context_length: Option<i32>,
    /// Price per 1000 prompt tokens.
    pub cost_per_1k_input: Option<f64>,
    /// Price per 1000 generated tokens.
    pub cost_per_1k_output: Option<f64>,
    /// Concurrent generations.
    pub max_concurrent: Option<i32>,
    /// Routable.
    pub enabled: Option<bool>,
    /// Version label.
    pub version: Option<String>,
}

/// One GGUF file found by discovery.
#[derive(Debug, Clone)]
pub struct Discovered {
    /// The registry row (new or existing) for the file.
    pub model: ModelRow,
    /// Whether this discovery added it.
    pub newly_registered: bool,
}

/// Every registered model, oldest first.
pub async fn list(state: &AppState) -> AppResult<Vec<ModelRow>> {
    let db = &state.db;
    db_run!(db, read, |conn| models::table
        .order(models::id.asc())
        .select(ModelRow::as_select())
        .load(conn)
        .await
        .map_err(AppError::from))
}

/// One model by key.
pub async fn get(state: &AppState, key: &str) -> AppResult<ModelRow> {
    let db = &state.db;
    let row: Option<ModelRow> = db_run!(db, read, |conn| models::table
        .filter(models::key.eq(key))
        .select(ModelRow::as_select())
        .first(conn)
        .await
        .optional())?;
    row.ok_or_else(|| AppError::not_found("model"))
}

fn check_key(key: &str) -> AppResult<String> {
    let k = validate::required("key", key, 100)?;
    if k == AUTO
        || !k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c))
    {
        return Err(AppError::validation(
            "key",
            "key may hold letters, digits and -_.:/ and must not be `auto`",
        ));
    }
    Ok(k)
}

fn check_base_url(url: &str) -> AppResult<String> {
    let u = validate::required("base_url", url, validate::MAX_URL_CHARS)?;
    let parsed = reqwest::Url::parse(&u)
        .map_err(|_| AppError::validation("base_url", "base_url is not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(AppError::validation(
            "base_url",
            "base_url must be an http(s) URL",
        ));
    }
    Ok(u.trim_end_matches('/').to_string())
}

/// A GGUF file's registration fields, read from its header.
fn local_fields(path: &str) -> AppResult<(String, gguf::GgufInfo, i64)> {
    let p = std::fs::canonicalize(path)
        .map_err(|_| AppError::validation("path", format!("{path} does not exist")))?;
    let meta = std::fs::metadata(&p).map_err(AppError::internal)?;
    if !meta.is_file() {
        return Err(AppError::validation("path", "path must be a .gguf file"));
    }
    let info = gguf::read_info(&p)
        .ok()
        .flatten()
        .ok_or_else(|| AppError::validation("path", "the file is not a GGUF model"))?;
    Ok((p.display().to_string(), info, meta.len() as i64))
}

fn ranges(input: &ModelInput) -> AppResult<()> {
    if let Some(c) = input.context_length {
        if !(256..=10_000_000).contains(&c) {
            return Err(AppError::validation(
                "context_length",
                "context_length must be between 256 and 10000000",
            ));
        }
    }
    if let Some(m) = input.max_concurrent {
        if !(1..=1024).contains(&m) {
            return Err(AppError::validation(
                "max_concurrent",
                "max_concurrent must be between 1 and 1024",
            ));
        }
    }
    for (field, v) in [
        ("cost_per_1k_input", input.cost_per_1k_input),
        ("cost_per_1k_output", input.cost_per_1k_output),
    ] {
        if v.is_some_and(|v| !(0.0..=1_000_000.0).contains(&v) || v.is_nan()) {
            return Err(AppError::validation(
                field,
                format!("{field} must be between 0 and 1000000"),
            ));
        }
    }
    if let Some(d) = &input.description {
        validate::max_len("description", d, validate::MAX_DESCRIPTION_CHARS)?;
    }
    for (field, v) in [
        ("name", &input.name),
        ("remote_name", &input.remote_name),
        ("version", &input.version),
    ] {
        if let Some(v) = v {
            validate::max_len(field, v, validate::MAX_NAME_CHARS)?;
        }
    }
    if let Some(k) = &input.api_key {
        validate::max_len("api_key", k, 4096)?;
    }
    Ok(())
}

/// Builds the row for a new model from the input (validated, GGUF header read).
fn new_row(input: ModelInput) -> AppResult<NewModel> {
    ranges(&input)?;
    let provider = match input.provider.as_deref() {
        Some(p) => Provider::parse(p).ok_or_else(|| {
            AppError::validation("provider", "provider must be `local` or `openai`")
        })?,
        None if input.path.is_some() => Provider::Local,
        None => Provider::OpenAi,
    };
    let ts = now();
    let mut row = NewModel {
        key: String::new(),
        name: input.name.clone().unwrap_or_default().trim().to_string(),
        provider,
        kind: match provider {
            Provider::Local => ModelKind::Local,
            Provider::OpenAi => ModelKind::Cloud,
        },
        family: None,
        path: None,
        base_url: None,
        api_key: input.api_key.clone().filter(|k| !k.is_empty()),
        size_bytes: None,
        version: input.version.clone(),
        context_length: input.context_length.unwrap_or(4096),
        cost_per_1k_input: input.cost_per_1k_input.unwrap_or(0.0),
        cost_per_1k_output: input.cost_per_1k_output.unwrap_or(0.0),
        max_concurrent: input
            .max_concurrent
            .unwrap_or(if provider == Provider::Local { 1 } else { 8 }),
        enabled: input.enabled.unwrap_or(true),
        description: input.description.clone().unwrap_or_default(),
        remote_name: input.remote_name.clone().filter(|r| !r.trim().is_empty()),
        created_at: ts,
        updated_at: ts,
    };
    match provider {
        Provider::Local => {
            let path = input
                .path
                .as_deref()
                .ok_or_else(|| AppError::validation("path", "a local model needs a path"))?;
            let (path, info, size) = local_fields(path)?;
            if row.name.is_empty() {
                row.name = info.name.clone().unwrap_or_else(|| file_stem(&path));
            }
            row.family = info.architecture.clone();
            row.version = row.version.or(info.version.clone());
            if input.context_length.is_none() {
                row.context_length = info.context_length.unwrap_or(4096).min(1 << 20) as i32;
            }
            if row.description.is_empty() {
                row.description = info.description.clone().unwrap_or_default();
            }
            row.size_bytes = Some(size);
            row.path = Some(path);
        }
        Provider::OpenAi => {
            let url = input.base_url.as_deref().ok_or_else(|| {
                AppError::validation("base_url", "a remote model needs a base_url")
            })?;
            row.base_url = Some(check_base_url(url)?);
        }
    }
    let key = match input.key.as_deref() {
        Some(k) => k.to_string(),
        None if !row.name.is_empty() => validate::slugify(&row.name),
        None => return Err(AppError::validation("key", "a model needs a key or a name")),
    };
    row.key = check_key(&key)?;
    if row.name.is_empty() {
        row.name = row.key.clone();
    }
    Ok(row)
}

/// A registry key from a file name (`Llama-3-8B.Q4_K_M` → `llama-3-8b-q4-k-m`).
fn key_from_stem(stem: &str) -> String {
    // `slugify` falls back to "agent" for names without letters or digits.
    if stem.chars().any(|c| c.is_ascii_alphanumeric()) {
        validate::slugify(stem)
    } else {
        "model".into()
    }
}

fn file_stem(path: &str) -> String {
    Path::new(path)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into())
}

/// Registers a model (admin).
pub async fn register(state: &AppState, caller: &Caller, input: ModelInput) -> AppResult<ModelRow> {
    caller.require_admin()?;
    let row = new_row(input)?;
    insert(state, row).await
}

async fn insert(state: &AppState, row: NewModel) -> AppResult<ModelRow> {
    let db = &state.db;
    db_run!(db, write, |conn| diesel::insert_into(models::table)
        .values(&row)
        .returning(ModelRow::as_returning())
        .get_result(conn)
        .await
        .map_err(AppError::from))
}

/// Changes a model (admin); the provider is fixed once registered.
pub async fn update(
    state: &AppState,
    caller: &Caller,
    key: &str,
    input: ModelInput,
) -> AppResult<ModelRow> {
    caller.require_admin()?;
    ranges(&input)?;
    let mut row = get(state, key).await?;
    if let Some(n) = input.name {
        row.name = validate::required("name", &n, validate::MAX_NAME_CHARS)?;
    }
    if let Some(d) = input.description {
        row.description = d;
    }
    if let Some(p) = input.path {
        if row.provider != Provider::Local {
            return Err(AppError::validation(
                "path",
                "only local models have a path",
            ));
        }
        let (path, info, size) = local_fields(&p)?;
        row.path = Some(path);
        row.size_bytes = Some(size);
        row.family = info.architecture;
    }
    if let Some(u) = input.base_url {
        if row.provider != Provider::OpenAi {
            return Err(AppError::validation(
                "base_url",
                "only remote models have a base_url",
            ));
        }
        row.base_url = Some(check_base_url(&u)?);
    }
    if let Some(k) = input.api_key {
        row.api_key = Some(k).filter(|k| !k.is_empty());
    }
    if let Some(r) = input.remote_name {
        row.remote_name = Some(r).filter(|r| !r.trim().is_empty());
    }
    row.context_length = input.context_length.unwrap_or(row.context_length);
    row.cost_per_1k_input = input.cost_per_1k_input.unwrap_or(row.cost_per_1k_input);
    row.cost_per_1k_output = input.cost_per_1k_output.unwrap_or(row.cost_per_1k_output);
    row.max_concurrent = input.max_concurrent.unwrap_or(row.max_concurrent);
    row.enabled = input.enabled.unwrap_or(row.enabled);
    row.version = input.version.or(row.version);
    let ts = now();
    let id = row.id;
    let db = &state.db;
    db_run!(db, write, |conn| diesel::update(models::table.find(id))
        .set((
            models::name.eq(&row.name),
            models::description.eq(&row.description),
            models::path.eq(&row.path),
            models::size_bytes.eq(row.size_bytes),
            models::family.eq(&row.family),
            models::base_url.eq(&row.base_url),
            models::api_key.eq(&row.api_key),
            models::remote_name.eq(&row.remote_name),
            models::context_length.eq(row.context_length),
            models::cost_per_1k_input.eq(row.cost_per_1k_input),
            models::cost_per_1k_output.eq(row.cost_per_1k_output),
            models::max_concurrent.eq(row.max_concurrent),
            models::enabled.eq(row.enabled),
            models::version.eq(&row.version),
            models::updated_at.eq(ts),
        ))
        .returning(ModelRow::as_returning())
        .get_result(conn)
        .await
        .map_err(AppError::from))
}

/// Removes a model from the registry (admin); the file on disk is left alone.
pub async fn delete(state: &AppState, caller: &Caller, key: &str) -> AppResult<()> {
    caller.require_admin()?;
    let db = &state.db;
    let n = db_run!(db, write, |conn| diesel::delete(
        models::table.filter(models::key.eq(key))
    )
    .execute(conn)
    .await
    .map_err(AppError::from))?;
    if n == 0 {
        return Err(AppError::not_found("model"));
    }
    Ok(())
}

/// Finds `.gguf` files under `paths` (files or directories, walked a few levels deep) and
/// registers the ones not yet in the registry (admin).
pub async fn discover(
    state: &AppState,
    caller: &Caller,
    paths: &[String],
) -> AppResult<Vec<Discovered>> {
    caller.require_admin()?;
    if paths.is_empty() || paths.len() > 32 {
        return Err(AppError::validation("paths", "give between 1 and 32 paths"));
    }
    for p in paths {
        validate::required("paths", p, 4096)?;
    }
    let owned = paths.to_vec();
    let files = tokio::task::spawn_blocking(move || {
        let mut found = Vec::new();
        for p in &owned {
            walk(Path::new(p), 0, &mut found);
        }
        found.sort();
        found.dedup();
        found
    })
    .await
    .map_err(AppError::internal)?;
    let existing = list(state).await?;
    let mut out = Vec::new();
    for file in files {
        let path = file.display().to_string();
        if let Some(m) = existing.iter().find(|m| m.path.as_deref() == Some(&path)) {
            out.push(Discovered {
                model: m.clone(),
                newly_registered: false,
            });
            continue;
        }
        let input = ModelInput {
            key: Some(key_from_stem(&file_stem(&path))),
            provider: Some(Provider::Local.as_str().into()),
            path: Some(path.clone()),
            ..Default::default()
        };
        let row = match new_row(input) {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(%path, error = %e, "skipping a file that is not a usable GGUF");
                continue;
            }
        };
        let row = match insert(state, row.clone()).await {
            Ok(m) => m,
            // Same key as another model: keep both, disambiguated by the file's size.
            Err(e) if e.code == ErrorCode::Conflict => {
                let mut alt = row;
                alt.key = format!("{}-{}", alt.key, alt.size_bytes.unwrap_or(0));
                insert(state, alt).await?
            }
            Err(e) => return Err(e),
        };
        out.push(Discovered {
            model: row,
            newly_registered: true,
        });
    }
    Ok(out)
}

fn walk(path: &Path, depth: usize, found: &mut Vec<PathBuf>) {
    if found.len() >= DISCOVER_MAX_FILES {
        return;
    }
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_file() {
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        {
            if let Ok(p) = std::fs::canonicalize(path) {
                found.push(p);
            }
        }
    } else if meta.is_dir() && depth < DISCOVER_MAX_DEPTH {
        let Ok(entries) = std::fs::read_dir(path) else {
            return;
        };
        for e in entries.flatten() {
            walk(&e.path(), depth + 1, found);
        }
    }
}

/// Registers (or refreshes the path of) the embedded model at start, when its file exists.
pub async fn ensure_builtin(state: &AppState) -> AppResult<()> {
    let cfg = &state.config.llm;
    let path = cfg.local_model.display().to_string();
    if !cfg.local_model.is_file() {
        tracing::warn!(%path, "the embedded model is missing; run `make setup` to fetch it");
        return Ok(());
    }
    let input = ModelInput {
        key: Some(cfg.local_model_key.clone()),
        provider: Some(Provider::Local.as_str().into()),
        path: Some(path),
        context_length: Some(cfg.local_context as i32),
        ..Default::default()
    };
    let row = new_row(input)?;
    match get(state, &cfg.local_model_key).await {
        Ok(existing) if existing.path == row.path => Ok(()),
        Ok(existing) => {
            let id = existing.id;
            let db = &state.db;
            db_run!(db, write, |conn| diesel::update(models::table.find(id))
                .set((
                    models::path.eq(&row.path),
                    models::size_bytes.eq(row.size_bytes),
                    models::updated_at.eq(now()),
                ))
                .execute(conn)
                .await
                .map_err(AppError::from))?;
            Ok(())
        }
        Err(_) => match insert(state, row).await {
            Ok(_) => Ok(()),
            // Another process registered it first.
            Err(e) if e.code == ErrorCode::Conflict => Ok(()),
            Err(e) => Err(e),
        },
    }
}

/// The default model key: the one set at run time, else the configured one.
pub async fn default_key(state: &AppState) -> AppResult<Option<String>> {
    let db = &state.db;
    let v: Option<String> = db_run!(db, read, |conn| settings::table
        .filter(settings::key.eq(SETTING_DEFAULT_MODEL))
        .select(settings::value)
        .first(conn)
        .await
        .optional())?;
    Ok(v.or_else(|| state.config.llm.default_model.clone()))
}

/// Stores the run-time default model (admin); `None` returns to the configured one.
pub async fn set_default(state: &AppState, caller: &Caller, key: Option<&str>) -> AppResult<()> {
    caller.require_admin()?;
    let db = &state.db;
    match key {
        Some(k) => {
            get(state, k).await.map_err(|_| {
                AppError::validation("defaultModel", format!("no model is registered as `{k}`"))
            })?;
            let (k, ts) = (k.to_string(), now());
            db_run!(db, write, |conn| {
                diesel::delete(settings::table.filter(settings::key.eq(SETTING_DEFAULT_MODEL)))
                    .execute(conn)
                    .await?;
                diesel::insert_into(settings::table)
                    .values((
                        settings::key.eq(SETTING_DEFAULT_MODEL),
                        settings::value.eq(&k),
                        settings::updated_at.eq(ts),
                    ))
                    .execute(conn)
                    .await
                    .map_err(AppError::from)
            })?;
        }
        None => {
            db_run!(db, write, |conn| diesel::delete(
                settings::table.filter(settings::key.eq(SETTING_DEFAULT_MODEL))
            )
            .execute(conn)
            .await
            .map_err(AppError::from))?;
        }
    }
    Ok(())
}

/// Picks the model for a request: an explicit key, else the agent's model, else the default,
/// else the first healthy model. An explicit key that is unknown or disabled is an error;
/// a stale agent or default setting falls through to the next choice.
pub async fn resolve(
    state: &AppState,
    requested: Option<&str>,
    agent_model: Option<&str>,
) -> AppResult<ModelRow> {
    let all = list(state).await?;
    let wanted = |k: &str| all.iter().find(|m| m.key == k);
    if let Some(k) = requested
        .map(str::trim)
        .filter(|k| !k.is_empty() && *k != AUTO)
    {
        return match all.iter().find(|m| m.key == k) {
            Some(m) if m.enabled => Ok(m.clone()),
            Some(_) => Err(AppError::validation(
                "model",
                format!("model `{k}` is disabled"),
            )),
            None => Err(AppError::validation(
                "model",
                format!("unknown model `{k}`"),
            )),
        };
    }
    let default = default_key(state).await?;
    for k in [agent_model, default.as_deref()].into_iter().flatten() {
        if let Some(m) = wanted(k).filter(|m| m.enabled) {
            return Ok(m.clone());
        }
    }
    all.iter()
        .find(|m| state.llm.is_healthy(m))
        .cloned()
        .ok_or_else(|| {
            AppError::new(
                ErrorCode::LlmUnavailable,
                "no model is available; register one or run `make setup` for the embedded model",
            )
        })
}

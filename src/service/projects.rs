//! Projects (seed 002 workspaces): named groups a user owns.

use crate::auth::Caller;
use crate::db::models::{NewProject, Project};
use crate::db::schema::projects;
use crate::db_run;
use crate::error::{AppError, AppResult};
use crate::events::Event;
use crate::service::{now, validate};
use crate::state::AppState;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// Creates a project for the caller.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    name: &str,
    description: Option<&str>,
    kind: Option<&str>,
) -> AppResult<Project> {
    caller.require_write()?;
    let name = validate::required("name", name, validate::MAX_NAME_CHARS)?;
    let description = description.unwrap_or("");
    validate::max_len("description", description, validate::MAX_DESCRIPTION_CHARS)?;
    let kind = match kind {
        Some(k) => validate::required("type", k, 64)?,
        None => "general".to_string(),
    };
    let uid = caller.user_id();
    let ts = now();
    let db = &state.db;
    db_run!(db, write, |conn| {
        diesel::insert_into(projects::table)
            .values(NewProject {
                owner_id: uid,
                name: &name,
                description,
                kind: &kind,
                created_at: ts,
                updated_at: ts,
            })
            .returning(Project::as_returning())
            .get_result(conn)
            .await
            .map_err(AppError::from)
    })
    .inspect(|p| {
        state.events.publish(Event::ProjectChanged {
            owner_id: p.owner_id,
            project_id: p.id,
        })
    })
}

/// One of the caller's projects (someone else's is not found).
pub async fn get(state: &AppState, caller: &Caller, id: i64) -> AppResult<Project> {
    let uid = caller.user_id();
    let db = &state.db;
    let found: Option<Project> = db_run!(db, read, |conn| {
        projects::table
            .find(id)
            .filter(projects::owner_id.eq(uid))
            .select(Project::as_select())
            .first(conn)
            .await
            .optional()
            .map_err(AppError::from)
    })?;
    found.ok_or_else(|| AppError::not_found("project"))
}

/// Page (1-based) of the caller's projects, oldest first, with the total.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    page: i64,
    limit: i64,
) -> AppResult<(Vec<Project>, i64)> {
    let offset = validate::page_offset(page, limit)?;
    let uid = caller.user_id();
    let db = &state.db;
    db_run!(db, read, |conn| {
        let total: i64 = projects::table
            .filter(projects::owner_id.eq(uid))
            .count()
            .get_result(conn)
            .await?;
        let rows = projects::table
            .filter(projects::owner_id.eq(uid))
            .order(projects::id.asc())
            .limit(limit)
            .offset(offset)
            .select(Project::as_select())
            .load(conn)
            .await?;
        Ok((rows, total))
    })
}

//! `tasks`: a to-do list kept in the plugin's key-value store. Its functions are agent tools.

use extism_pdk::{plugin_fn, FnResult, Json};
use hearth_plugin::{emit, kv_get, kv_set};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Clone, Deserialize, Serialize)]
struct Task {
    id: u64,
    title: String,
    done: bool,
}

#[derive(Default, Deserialize, Serialize)]
struct List {
    next_id: u64,
    tasks: Vec<Task>,
}

fn load() -> FnResult<List> {
    Ok(match kv_get("list")? {
        Some(text) => serde_json::from_str(&text)?,
        None => List { next_id: 1, tasks: Vec::new() },
    })
}

fn save(list: &List) -> FnResult<()> {
    kv_set("list", &serde_json::to_string(list)?)?;
    Ok(())
}

#[derive(Deserialize)]
struct AddTask {
    title: String,
}

/// Adds a task and returns it.
#[plugin_fn]
pub fn add_task(Json(input): Json<AddTask>) -> FnResult<Json<Task>> {
    let title = input.title.trim();
    if title.is_empty() {
        return Err(extism_pdk::WithReturnCode::new(
            extism_pdk::Error::msg("title must not be empty"),
            1,
        ));
    }
    let mut list = load()?;
    let task = Task { id: list.next_id, title: title.to_string(), done: false };
    list.next_id += 1;
    list.tasks.push(task.clone());
    save(&list)?;
    emit("task_added", json!({ "id": task.id, "title": task.title }))?;
    Ok(Json(task))
}

/// Every task, open ones first.
#[plugin_fn]
pub fn list_tasks(_: Json<serde_json::Value>) -> FnResult<Json<serde_json::Value>> {
    let mut list = load()?;
    list.tasks.sort_by_key(|t| (t.done, t.id));
    Ok(Json(json!({ "count": list.tasks.len(), "tasks": list.tasks })))
}

#[derive(Deserialize)]
struct CompleteTask {
    id: u64,
}

/// Marks a task done.
#[plugin_fn]
pub fn complete_task(Json(input): Json<CompleteTask>) -> FnResult<Json<Task>> {
    let mut list = load()?;
    let Some(task) = list.tasks.iter_mut().find(|t| t.id == input.id) else {
        return Err(extism_pdk::WithReturnCode::new(
            extism_pdk::Error::msg(format!("no task {}", input.id)),
            1,
        ));
    };
    task.done = true;
    let task = task.clone();
    save(&list)?;
    Ok(Json(task))
}

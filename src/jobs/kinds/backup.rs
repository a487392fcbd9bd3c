//! `backup`: writes an archive of the instance into the backup folder (`backup.dir`,
//! default `<data_dir>/backups`) and keeps the newest `backup.keep`. Payload: `{}`. Only an
//! admin's job may run it, re-checked at every run; schedule it (`0 3 * * *`) for nightly
//! backups.

use super::parse_payload;
use crate::auth::Caller;
use crate::error::AppResult;
use crate::jobs::{JobContext, JobError, JobKind};
use crate::service::backup;
use crate::state::AppState;
use serde::Deserialize;
use serde_json::{json, Value};

/// The kind.
pub struct Backup;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {}

#[async_trait::async_trait]
impl JobKind for Backup {
    fn name(&self) -> &'static str {
        "backup"
    }

    async fn check(&self, _state: &AppState, caller: &Caller, payload: &Value) -> AppResult<()> {
        let _: Payload = parse_payload(payload)?;
        caller.require_admin()
    }

    async fn run(&self, ctx: &JobContext) -> Result<Value, JobError> {
        ctx.caller
            .require_admin()
            .map_err(|e| JobError::permanent(e.message))?;
        let dir = backup::work_dir(&ctx.state);
        let out = backup::export_to(&ctx.state, &dir.join(backup::archive_name())).await?;
        let pruned = backup::prune(&dir, ctx.state.config.backup.keep);
        let rows: u64 = out.manifest.tables.values().map(|t| t.rows).sum();
        Ok(json!({
            "file": out.path.display().to_string(),
            "bytes": out.bytes,
            "rows": rows,
            "pruned": pruned,
        }))
    }
}

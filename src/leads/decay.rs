//! The scoring job: every lead of every workspace rescored by its rules
//! as they stand now, so points fade as the rules' decay says even when
//! nothing is written. `crm serve` runs it every `--rescore-interval-s`
//! (a day by default; see [`spawn`]), `crm leads rescore` at once (see
//! [`run`]). One server at a time runs it (a Postgres advisory lock); each
//! batch of leads commits on its own, so it holds no lead for long.

use std::time::Duration;

use crate::db::Database;
use crate::error::Result;
use crate::metadata::custom::Customizations;

/// The advisory lock a scoring run holds: "crm-score" as a number.
pub const LOCK_KEY: i64 = 0x63_72_6d_73_63_6f;
/// How long after the server starts it runs first.
const FIRST_RUN_AFTER: Duration = Duration::from_secs(60);

/// What a run did in one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rescored {
    /// `production` or a sandbox's name.
    pub workspace: String,
    /// Leads scored (live, not converted).
    pub leads: u64,
    /// Leads whose score or grade changed.
    pub changed: u64,
}

/// Rescores every workspace's leads now, or only the named workspace's;
/// `None` when another server is running it. A sandbox that fails (dropped
/// meanwhile) is logged and left out, unless it is the one named.
pub async fn run(db: &Database, only: Option<&str>) -> Result<Option<Vec<Rescored>>> {
    crate::db::exclusively(db, LOCK_KEY, run_locked(db, only)).await
}

async fn run_locked(db: &Database, only: Option<&str>) -> Result<Vec<Rescored>> {
    crate::db::each_workspace(db, only, "lead scoring", |conn, workspace| {
        Box::pin(async move {
            let model = Customizations::read(conn, &workspace.pg_schema).await?.model()?;
            let (leads, changed) = super::rescore_all(conn, &workspace.pg_schema, &model).await?;
            Ok(Rescored {
                workspace: workspace.name.clone(),
                leads,
                changed,
            })
        })
    })
    .await
}

/// Starts the background job: a run a minute after start, then one every
/// `interval` (none when it is zero). A run another server holds is
/// skipped; a failed one is logged and tried again next time.
pub fn spawn(db: Database, interval: Duration) {
    crate::db::repeat(FIRST_RUN_AFTER, interval, move || {
        let db = db.clone();
        Box::pin(async move {
            match run(&db, None).await {
                Ok(Some(runs)) => {
                    for r in runs.iter().filter(|r| r.changed > 0) {
                        tracing::info!(workspace = %r.workspace, leads = r.leads, changed = r.changed, "leads rescored");
                    }
                }
                Ok(None) => tracing::debug!("lead scoring runs on another server; skipped"),
                Err(err) => tracing::warn!(%err, "lead scoring run failed"),
            }
        })
    });
}

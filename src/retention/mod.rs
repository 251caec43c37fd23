//! Retention: a background job removing for good what a workspace's
//! settings no longer keep — soft-deleted records older than its
//! `deletedRecordRetentionDays`, and its audit log entries older than its
//! `auditRetentionDays`. `crm serve` runs it every
//! `--retention-interval-s` (see [`spawn`]), `crm retention run` at once
//! (see [`run`]). One server at a time runs it (a Postgres advisory lock);
//! each workspace — production and every sandbox — by its own settings, in
//! its own schema. A run that removed anything writes one `PURGE` entry per
//! workspace to the audit log.

mod purge;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::audit::{self, Action, Trail};
use crate::db::Database;
use crate::error::Result;
use crate::metadata::custom::Customizations;
use crate::metadata::settings::read_settings;

/// The advisory lock key a retention run holds (`pg_try_advisory_lock`):
/// "crm-retention" as a number.
pub const LOCK_KEY: i64 = 0x63_72_6d_72_65_74;
/// How long after the server starts it runs first.
const FIRST_RUN_AFTER: Duration = Duration::from_secs(10);

/// Rows the retention job removed since the process started (records and
/// audit entries), for `/metrics`.
static PURGED_ROWS: AtomicU64 = AtomicU64::new(0);

/// Rows retention runs in this process removed: records and audit log
/// entries.
pub fn purged_rows() -> u64 {
    PURGED_ROWS.load(Ordering::Relaxed)
}

/// What one run removed in one workspace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purged {
    /// `production` or a sandbox's name.
    pub workspace: String,
    /// Records removed, per object (`Account`), in the order purged; only
    /// objects with some.
    pub records: Vec<(String, u64)>,
    /// Its audit log entries removed.
    pub audit_entries: u64,
}

impl Purged {
    /// Whether nothing was removed.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.audit_entries == 0
    }

    /// Rows removed in all.
    pub fn total(&self) -> u64 {
        self.records.iter().map(|(_, n)| n).sum::<u64>() + self.audit_entries
    }
}

/// How a run went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It ran: what it removed, per workspace (each one it looked at).
    Ran(Vec<Purged>),
    /// Another server (or command) was running it: nothing was done.
    Busy,
}

/// Runs retention now over every workspace, or only the one named, unless
/// another server runs it at this moment ([`Outcome::Busy`]). A workspace
/// that fails (a sandbox dropped meanwhile) is logged and left out, unless
/// it is the one named.
pub async fn run(db: &Database, only: Option<&str>) -> Result<Outcome> {
    Ok(
        match crate::db::exclusively(db, LOCK_KEY, run_locked(db, only)).await? {
            Some(purged) => Outcome::Ran(purged),
            None => Outcome::Busy,
        },
    )
}

/// The run itself, lock held: workspace by workspace, production first.
async fn run_locked(db: &Database, only: Option<&str>) -> Result<Vec<Purged>> {
    let purged = crate::db::each_workspace(db, only, "retention", |conn, w| {
        Box::pin(workspace(conn, &w.name, &w.pg_schema))
    })
    .await?;
    for p in &purged {
        PURGED_ROWS.fetch_add(p.total(), Ordering::Relaxed);
    }
    Ok(purged)
}

/// Retention in one workspace, by its own settings, and its `PURGE` entry.
async fn workspace(conn: &mut diesel_async::AsyncPgConnection, name: &str, pg_schema: &str) -> Result<Purged> {
    let settings = read_settings(conn, pg_schema).await?;
    let mut purged = Purged {
        workspace: name.to_owned(),
        ..Purged::default()
    };
    if settings.deleted_record_retention_days > 0 {
        let model = Customizations::read(conn, pg_schema).await?.model()?;
        for object in purge::order(&model) {
            let days = settings.deleted_record_retention_days;
            let removed = purge::records(conn, pg_schema, &object.table, days).await?;
            if removed > 0 {
                purged.records.push((object.name.clone(), removed));
            }
        }
    }
    if settings.audit_retention_days > 0 {
        purged.audit_entries = purge::audit_entries(conn, name, settings.audit_retention_days).await?;
    }
    if !purged.is_empty() {
        let mut changes: Vec<audit::Change> = purged
            .records
            .iter()
            .map(|(object, n)| audit::Change {
                field: object.clone(),
                before: json!(null),
                after: json!(n),
            })
            .collect();
        if purged.audit_entries > 0 {
            changes.push(audit::Change {
                field: "auditLog".into(),
                before: json!(null),
                after: json!(purged.audit_entries),
            });
        }
        let entry = audit::Entry {
            object: "Retention".into(),
            record_id: None,
            action: Action::Purge,
            changes,
        };
        audit::append(conn, &Trail::cli(name), &[entry]).await?;
    }
    Ok(purged)
}

/// Starts the background job: a run shortly after start, then one every
/// `interval` (none when it is zero). A run another server holds is
/// skipped; a failed one is logged and tried again next time.
pub fn spawn(db: Database, interval: Duration) {
    crate::db::repeat(FIRST_RUN_AFTER, interval, move || {
        let db = db.clone();
        Box::pin(async move {
            match run(&db, None).await {
                Ok(Outcome::Ran(purged)) => {
                    for p in purged.iter().filter(|p| !p.is_empty()) {
                        tracing::info!(workspace = %p.workspace, records = ?p.records, audit_entries = p.audit_entries, "retention purged");
                    }
                }
                Ok(Outcome::Busy) => tracing::debug!("retention runs on another server; skipped"),
                Err(err) => tracing::warn!(%err, "retention run failed"),
            }
        })
    });
}

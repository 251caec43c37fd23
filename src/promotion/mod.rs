//! Promotion: a sandbox's customizations (or a changeset file, or the
//! inverse of an earlier promotion) applied to a workspace in one
//! transaction.
//!
//! The changes are compared three ways (the sandbox's base, the sandbox
//! now, the target now), then made one by one through the same metadata
//! changes the API makes, each in a savepoint: what the target's data
//! refuses and what each change does to the GraphQL schema is known before
//! anything commits. A diff and a dry run roll the transaction back; a
//! promotion commits it only when nothing conflicts, fails, or breaks
//! clients or loses information of values unless allowed. Each promotion
//! is stored with the state of every item before and after, so it can be
//! reverted; deleted fields keep their data, and a type change keeps the
//! values it converted, so a revert brings them back.

pub mod api;
pub mod apply;
pub mod changeset;
mod rebase;
pub mod sdl;
pub mod text;

use diesel::sql_types::{Integer, Jsonb, Text};
use diesel_async::{AnsiTransactionManager, AsyncPgConnection, SimpleAsyncConnection, TransactionManager};
use serde::Serialize;
use serde_json::{json, Value as Json};
use uuid::Uuid;

use crate::audit::{Action as AuditAction, Trail};
use crate::db::migrate::PRODUCTION_SCHEMA;
use crate::db::sql::{Bind, Sql};
use crate::db::Database;
use crate::error::{CrmError, Result};
use crate::graphql::input::checked_value;
use crate::graphql::Rooms;
use crate::metadata::change::{self, Target};
use crate::metadata::kinds::{self, Change, Snapshot};
use crate::metadata::Model;
use crate::sandbox;
use apply::{Entry, Side, Status};
use changeset::File;
use sdl::{Level, SdlChange};

/// Where the changes come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A sandbox's changes since its base.
    Sandbox(String),
    /// A changeset file, by its name.
    File { name: String, file: File },
    /// The inverse of a promotion.
    Revert(Uuid),
}

impl Source {
    fn kind(&self) -> &'static str {
        match self {
            Source::Sandbox(_) => "SANDBOX",
            Source::File { .. } => "CHANGESET",
            Source::Revert(_) => "REVERT",
        }
    }

    /// How reports name it: `sandbox qa`, `changeset qa.changeset.json`,
    /// `revert of promotion …`.
    fn describe(&self) -> String {
        match self {
            Source::Sandbox(name) => format!("sandbox {name}"),
            Source::File { name, .. } => format!("changeset {name}"),
            Source::Revert(id) => format!("revert of promotion {id}"),
        }
    }

    fn name(&self) -> String {
        match self {
            Source::Sandbox(name) => name.clone(),
            Source::File { name, .. } => name.clone(),
            Source::Revert(id) => id.to_string(),
        }
    }
}

/// How to run a promotion.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Check everything, then roll back.
    pub dry_run: bool,
    /// Refuse unless the target's metadata version is this one.
    pub expected_version: Option<i32>,
    /// Apply changes that break existing GraphQL clients.
    pub allow_breaking: bool,
    /// Apply type changes that lose information of existing values (their
    /// old values are kept, so a revert brings them back).
    pub allow_lossy: bool,
    /// How conflicts are resolved, by change key.
    pub resolutions: Vec<(String, Side)>,
}

/// What a diff, a dry run or a promotion found and did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `sandbox qa`, `changeset qa.changeset.json`, `revert of …`.
    pub source: String,
    /// The workspace changed: `production` or a sandbox.
    pub workspace: String,
    pub dry_run: bool,
    /// Committed.
    pub applied: bool,
    pub promotion_id: Option<Uuid>,
    /// The sandbox's base version (sandboxes only).
    pub base_version: Option<i32>,
    pub version_before: i32,
    pub version_after: i32,
    pub changes: Vec<Entry>,
    /// What the target changed since the sandbox's base: kept as it is.
    pub target_changes: Vec<Entry>,
    pub sdl_changes: Vec<SdlChange>,
    pub api_impact: Level,
    pub conflicts: usize,
    pub failures: usize,
    pub breaking: usize,
    /// Type changes that lose information of existing values.
    pub lossy: usize,
    /// Why it cannot be (or was not) applied; empty when it can.
    pub blockers: Vec<String>,
    /// After a promotion, whether the sandbox now has production's
    /// metadata as its base.
    pub rebased: Option<bool>,
}

/// What a promotion is checked against and how long it waits for tables.
#[derive(Debug, Clone, Copy)]
struct How {
    rooms: Rooms,
    lock_timeout: std::time::Duration,
}

/// Compares, checks and (unless a dry run) applies `source`'s changes to
/// `workspace` (`production` or a sandbox's name) in one transaction.
pub async fn run(
    db: &Database,
    trail: &Trail,
    rooms: Rooms,
    source: &Source,
    workspace: &str,
    options: &Options,
) -> Result<Report> {
    let mut conn = db.conn().await?;
    AnsiTransactionManager::begin_transaction(&mut *conn).await?;
    let how = How {
        rooms,
        lock_timeout: db.metadata_lock_timeout(),
    };
    let outcome = promote(&mut conn, trail, how, source, workspace, options).await;
    let finished = match &outcome {
        Ok(report) if report.applied => AnsiTransactionManager::commit_transaction(&mut *conn).await,
        _ => AnsiTransactionManager::rollback_transaction(&mut *conn).await,
    };
    if let Err(err) = finished {
        // The connection is dropped with whatever it holds; Postgres rolls
        // back an open transaction when the pool discards it.
        return Err(err.into());
    }
    outcome
}

/// What [`run`] does inside its transaction: reads and plans the
/// changes, makes them, and records them unless something blocks them.
async fn promote(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    How { rooms, lock_timeout }: How,
    source: &Source,
    workspace: &str,
    options: &Options,
) -> Result<Report> {
    conn.batch_execute("SET LOCAL statement_timeout = 0").await?;
    let schema = schema_of(conn, workspace).await?;
    lock(conn, &schema).await?;
    // No statement waits long for a table production traffic holds: the
    // change waiting gives up, and tries again (`metadata::change`).
    conn.batch_execute(&format!("SET LOCAL lock_timeout = {}", lock_timeout.as_millis()))
        .await?;
    let version_before = sandbox::metadata_version(conn, &schema).await?;
    expect_version(workspace, version_before, options.expected_version)?;
    let target_before = Snapshot::read(conn, &schema).await?;
    let (changes, base) = changes_of(conn, source, workspace).await?;
    let target_changes = match &base {
        Some((_, base)) => apply::plan(kinds::between(base, &target_before), &target_before, &[]),
        None => Vec::new(),
    };
    let mut entries = apply::plan(changes, &target_before, &options.resolutions);
    let target_trail = Trail {
        workspace: workspace.to_owned(),
        ..trail.clone()
    };
    // Each change's schema is built (and so checked) by `apply::run`.
    let check = |_: &Model| Ok(());
    let target = Target {
        schema: &schema,
        trail: &target_trail,
        check: &check,
        value: &checked_value,
        replaying: false,
        // A diff or dry run locks none of the workspace's record tables.
        rehearsal: options.dry_run,
        // The promotion's transaction has its own (`run`).
        lock_timeout: None,
    };
    let sdl_before = apply::schema_at(conn, rooms, &schema, version_before).await?;
    let mut sdl_after = sdl_before.clone();
    apply::run(conn, &target, &mut entries, Some((rooms, &mut sdl_after))).await?;
    let sdl_changes = crate::yielding::compute(move || sdl::changes(&sdl_before, &sdl_after)).await;
    let tally = Tally::of(&entries);
    let blockers = tally.blockers(workspace, source, options);
    let mut report = Report {
        source: source.describe(),
        workspace: workspace.to_owned(),
        dry_run: options.dry_run,
        applied: false,
        promotion_id: None,
        base_version: base.as_ref().map(|(version, _)| *version),
        version_before,
        version_after: version_before,
        api_impact: entries
            .iter()
            .map(|e| e.api_impact)
            .fold(sdl::level_of(&sdl_changes), Level::max),
        sdl_changes,
        conflicts: tally.conflicts,
        failures: tally.failures,
        breaking: tally.breaking,
        lossy: tally.lossy,
        blockers,
        rebased: None,
        changes: entries,
        target_changes,
    };
    if options.dry_run || !report.blockers.is_empty() {
        return Ok(report);
    }
    // A sandbox whose every change production already has is only rebased.
    if tally.ready > 0 {
        record(conn, &target, source, &mut report).await?;
        let applied: Vec<kinds::Change> = report
            .changes
            .iter()
            .filter(|e| e.status == Status::Applied)
            .map(|e| e.change.clone())
            .collect();
        rooms.after_promotion(conn, &schema, &applied).await?;
    }
    match source {
        Source::Sandbox(name) => {
            let touched = rebase::touched(report.changes.iter().chain(&report.target_changes));
            report.rebased = Some(rebase::rebase(conn, trail, rooms, name, touched).await?);
        }
        Source::Revert(id) => rebase::restore_base(conn, *id).await?,
        Source::File { .. } => {}
    }
    report.applied = true;
    Ok(report)
}

/// Makes promotions of the workspace in `schema` wait for each other.
async fn lock(conn: &mut AsyncPgConnection, schema: &str) -> Result<()> {
    let mut lock = Sql::raw("SELECT pg_advisory_xact_lock(hashtext('crm.promotion'), hashtext(");
    lock.bind(Bind::Text(Some(schema.to_owned()))).push("))");
    lock.execute(conn).await?;
    Ok(())
}

/// Refuses when the workspace's metadata is not at the version expected.
fn expect_version(workspace: &str, version: i32, expected: Option<i32>) -> Result<()> {
    match expected {
        Some(expected) if expected != version => Err(CrmError::Conflict(format!(
            "{workspace}'s metadata is at version {version}, not the expected {expected}: \
             someone changed it meanwhile; look at the diff again"
        ))),
        _ => Ok(()),
    }
}

/// How many of a promotion's changes stand where.
struct Tally {
    /// Every change, whatever its status.
    total: usize,
    ready: usize,
    conflicts: usize,
    failures: usize,
    breaking: usize,
    /// Ready type changes that lose information of existing values.
    lossy: usize,
}

impl Tally {
    fn of(entries: &[Entry]) -> Tally {
        let count = |status: Status| entries.iter().filter(|e| e.status == status).count();
        Tally {
            total: entries.len(),
            ready: count(Status::Ready),
            conflicts: count(Status::Conflict),
            failures: count(Status::Fails),
            breaking: entries.iter().filter(|e| e.api_impact == Level::Breaking).count(),
            lossy: entries
                .iter()
                .filter(|e| e.status == Status::Ready && e.data_impact.as_ref().is_some_and(|d| d.lossy))
                .count(),
        }
    }

    /// Why the changes cannot be applied to `workspace`; empty when they can.
    fn blockers(&self, workspace: &str, source: &Source, options: &Options) -> Vec<String> {
        let Tally {
            total,
            ready,
            conflicts,
            failures,
            breaking,
            lossy,
        } = *self;
        let mut blockers = Vec::new();
        if conflicts > 0 {
            blockers.push(format!(
                "{conflicts} change(s) conflict with what {workspace} changed since the base: resolve them \
                 (take the sandbox's or {workspace}'s version)"
            ));
        }
        if failures > 0 {
            blockers.push(format!(
                "{failures} change(s) are refused by {workspace}'s data or API: see their dataImpact"
            ));
        }
        // Reverting restores the API clients had; it is never refused for it.
        if breaking > 0 && !options.allow_breaking && !matches!(source, Source::Revert(_)) {
            blockers.push(format!(
                "{breaking} change(s) break existing GraphQL clients: pass allowBreaking to apply them"
            ));
        }
        // A revert too: the values it would lose are not the ones it restores.
        if lossy > 0 && !options.allow_lossy {
            blockers.push(format!(
                "{lossy} type change(s) lose information of {workspace}'s values (see their dataImpact): pass allowLossy \
                 to apply them"
            ));
        }
        // A sandbox whose changes the workspace already has (or whose
        // conflicts it keeps) is still promoted: that rebases it.
        let rebases = matches!(source, Source::Sandbox(_)) && total > 0;
        if ready == 0 && blockers.is_empty() && !rebases {
            blockers.push(format!("nothing to apply: {workspace} already has every change"));
        }
        blockers
    }
}

/// The Postgres schema of a workspace.
async fn schema_of(conn: &mut AsyncPgConnection, workspace: &str) -> Result<String> {
    if workspace == "production" {
        return Ok(PRODUCTION_SCHEMA.into());
    }
    sandbox::find(conn, workspace)
        .await?
        .map(|s| s.pg_schema)
        .ok_or_else(|| CrmError::not_found("Sandbox", workspace))
}

/// The changes of a source, with a sandbox's base (its version and items).
async fn changes_of(
    conn: &mut AsyncPgConnection,
    source: &Source,
    workspace: &str,
) -> Result<(Vec<Change>, Option<(i32, Snapshot)>)> {
    match source {
        Source::Sandbox(name) => {
            let (changes, base_version, base) = sandbox_changes(conn, name).await?;
            Ok((changes, Some((base_version, base))))
        }
        Source::File { file, .. } => Ok((file.changes.clone(), None)),
        Source::Revert(id) => {
            let promotion = find(conn, *id)
                .await?
                .ok_or_else(|| CrmError::not_found("Promotion", id))?;
            if promotion["workspace"] != json!(workspace) {
                return Err(CrmError::bad_input(
                    &["id"],
                    format!("promotion {id} changed {}, not {workspace}", promotion["workspace"]),
                ));
            }
            if promotion["status"] != json!("APPLIED") {
                return Err(CrmError::Conflict(format!("promotion {id} was already reverted")));
            }
            let applied: Vec<Change> = serde_json::from_value(promotion["changes"].clone())
                .map_err(|err| CrmError::internal(format_args!("stored promotion {id}: {err}")))?;
            let inverse = applied
                .iter()
                .map(|change| {
                    let undone = change.before.clone().unwrap_or_else(|| {
                        let mut gone = change.after.clone();
                        gone["deleted"] = json!(true);
                        gone
                    });
                    change.inverse(Some(change.after.clone()), undone)
                })
                .collect();
            Ok((inverse, None))
        }
    }
}

/// A sandbox's changes since its base, its base version and base items.
async fn sandbox_changes(conn: &mut AsyncPgConnection, name: &str) -> Result<(Vec<Change>, i32, Snapshot)> {
    #[derive(diesel::QueryableByName)]
    struct Base {
        #[diesel(sql_type = Text)]
        pg_schema: String,
        #[diesel(sql_type = Integer)]
        base_version: i32,
        #[diesel(sql_type = Jsonb)]
        base: Json,
    }
    let mut query =
        Sql::raw("SELECT pg_schema, base_version, base FROM crm_system.workspace WHERE kind = 'sandbox' AND name = ");
    query.bind(Bind::Text(Some(name.to_owned())));
    let rows: Vec<Base> = query.load(conn).await?;
    let found = rows
        .into_iter()
        .next()
        .ok_or_else(|| CrmError::not_found("Sandbox", name))?;
    let base = Snapshot::of(&found.base);
    let now = Snapshot::read(conn, &found.pg_schema).await?;
    let mut changes = kinds::between(&base, &now);
    kinds::attach_renames(conn, &found.pg_schema, found.base_version, &mut changes).await?;
    Ok((changes, found.base_version, base))
}

/// A sandbox's changes as a changeset file.
pub async fn export(conn: &mut AsyncPgConnection, name: &str) -> Result<File> {
    let (changes, base_version, _) = sandbox_changes(conn, name).await?;
    Ok(File::new(format!("sandbox {name}"), base_version, changes))
}

/// Stores a promotion that is about to commit: what each change did to
/// the target (its items before and after), the version it produced, the
/// history entry and the audit entry.
async fn record(conn: &mut AsyncPgConnection, target: &Target<'_>, source: &Source, report: &mut Report) -> Result<()> {
    let after = Snapshot::read(conn, target.schema).await?;
    let mut applied = Vec::new();
    for entry in report.changes.iter_mut().filter(|e| e.status == Status::Ready) {
        entry.status = Status::Applied;
        let id = entry.current.as_ref().map_or(entry.change.id.clone(), |c| c.id.clone());
        let made = after
            .get(entry.change.kind, &id)
            .or_else(|| after.matching(&entry.change))
            .ok_or_else(|| CrmError::internal(format_args!("{} vanished while applied", entry.change.target)))?;
        let mut stored = serde_json::to_value(&entry).map_err(CrmError::internal)?;
        let done = Change {
            kind: made.kind,
            target: made.target.clone(),
            id: made.id.clone(),
            before: entry.current.as_ref().map(|c| c.state.clone()),
            after: made.state.clone(),
            renamed_options: entry.change.renamed_options.clone(),
            position: entry.change.position,
        };
        if let (Json::Object(stored), Json::Object(done)) =
            (&mut stored, serde_json::to_value(&done).map_err(CrmError::internal)?)
        {
            stored.extend(done);
        }
        applied.push(stored);
    }
    let id = Uuid::new_v4();
    let summary = format!("{}: {} change(s)", report.source, applied.len());
    let (kind, action) = match source {
        Source::Revert(_) => ("PROMOTION_REVERTED", AuditAction::Revert),
        _ => ("PROMOTED", AuditAction::Promote),
    };
    let version_after = change::record_batch(
        conn,
        target,
        change::Batch {
            kind,
            summary,
            breaking: report.api_impact == Level::Breaking,
            after: json!({ "promotion": id, "source": report.source, "changes": applied.len() }),
            record_id: id,
            action,
        },
    )
    .await?;
    let sdl_changes = serde_json::to_value(&report.sdl_changes).map_err(CrmError::internal)?;
    let mut insert = Sql::raw(
        "INSERT INTO crm_system.promotion (id, workspace, kind, source, actor_id, version_before, version_after, \
         changes, sdl, revert_of) VALUES (",
    );
    let revert_of = match source {
        Source::Revert(original) => Some(*original),
        _ => None,
    };
    let values = [
        Bind::Uuid(Some(id)),
        Bind::Text(Some(report.workspace.clone())),
        Bind::Text(Some(source.kind().into())),
        Bind::Text(Some(source.name())),
        Bind::Uuid(target.trail.actor.as_ref().map(|a| a.user_id)),
        Bind::Int(Some(report.version_before)),
        Bind::Int(Some(version_after)),
        Bind::Json(Some(Json::Array(applied))),
        Bind::Json(Some(sdl_changes)),
        Bind::Uuid(revert_of),
    ];
    insert.binds(values).push(")");
    insert.execute(conn).await?;
    if let Some(original) = revert_of {
        let mut mark =
            Sql::raw("UPDATE crm_system.promotion SET status = 'REVERTED', reverted_at = now(), reverted_by = ");
        mark.bind(Bind::Uuid(target.trail.actor.as_ref().map(|a| a.user_id)));
        mark.push(", reverted_in = ").bind(Bind::Uuid(Some(id)));
        mark.push(" WHERE id = ").bind(Bind::Uuid(Some(original)));
        mark.execute(conn).await?;
    }
    report.promotion_id = Some(id);
    report.version_after = version_after;
    Ok(())
}

/// Promotions, newest first, as the API shows them.
pub async fn list(conn: &mut AsyncPgConnection, first: i32) -> Result<Vec<Json>> {
    load(conn, None, first).await
}

/// One promotion.
pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Option<Json>> {
    Ok(load(conn, Some(id), 1).await?.into_iter().next())
}

async fn load(conn: &mut AsyncPgConnection, id: Option<Uuid>, first: i32) -> Result<Vec<Json>> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Jsonb)]
        row: Json,
    }
    let mut query = Sql::raw(
        "SELECT jsonb_build_object('id', id, 'workspace', workspace, 'kind', kind, 'source', source, \
         'status', status, 'at', at, 'actorId', actor_id, 'versionBefore', version_before, \
         'versionAfter', version_after, 'changes', changes, 'sdlChanges', sdl, 'revertOf', revert_of, \
         'revertedAt', reverted_at, 'revertedBy', reverted_by, 'revertedIn', reverted_in) AS row \
         FROM crm_system.promotion",
    );
    if let Some(id) = id {
        query.push(" WHERE id = ").bind(Bind::Uuid(Some(id)));
    }
    query.push(" ORDER BY at DESC, id LIMIT ").bind(Bind::Int(Some(first)));
    let rows: Vec<Row> = query.load(conn).await?;
    Ok(rows.into_iter().map(|r| r.row).collect())
}

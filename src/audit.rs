//! The audit log: who changed what, when, through which request.
//!
//! Every change — records, users, tokens, settings — appends its entries to
//! `crm_system.audit_log` in the transaction of the change itself, so a
//! change that fails leaves no entry and an entry never describes a change
//! that did not happen. The table refuses updates and deletes (a trigger),
//! but for the retention job removing a workspace's entries older than its
//! `auditRetentionDays` (see `retention`); the API only reads it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Jsonb, Nullable, Text, Timestamptz};
use serde_json::{json, Value as Json};
use uuid::Uuid;

use crate::actor::Actor;
use crate::db::sql::{Bind, Sql};
use crate::error::Result;
use diesel_async::AsyncPgConnection;

/// Fields every change touches; listing them in each entry says nothing.
const BOOKKEEPING: &[&str] = &["id", "createdAt", "updatedAt", "version", "createdById"];
/// Entries one page of the audit log holds at most.
pub const MAX_PAGE: usize = 500;
/// Entries a page holds when the client names no size.
pub const DEFAULT_PAGE: usize = 50;

/// Where a change came from and for whom it was made.
#[derive(Debug, Clone)]
pub struct Trail {
    /// The request's actor; `None` for the command line.
    pub actor: Option<Actor>,
    /// The `x-request-id` of the HTTP request.
    pub request_id: Option<String>,
    /// `production` or a sandbox's name.
    pub workspace: String,
    /// Made by a workflow rule (for the actor, when there is one): audited
    /// as `AUTOMATION`.
    pub automated: bool,
}

impl Trail {
    /// A change made with `crm` on the command line.
    pub fn cli(workspace: &str) -> Self {
        Trail {
            actor: None,
            request_id: None,
            workspace: workspace.to_owned(),
            automated: false,
        }
    }

    /// A change workflow rules make with no request behind it (a schedule,
    /// a resumed wait).
    pub fn automation(workspace: &str) -> Self {
        Trail {
            automated: true,
            ..Trail::cli(workspace)
        }
    }

    /// The same trail, for changes a workflow rule makes on its behalf.
    pub fn automated(&self) -> Self {
        Trail {
            automated: true,
            ..self.clone()
        }
    }
}

/// What a change did to its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Delete,
    Restore,
    Deactivate,
    Revoke,
    Purge,
    Promote,
    Revert,
    Merge,
    Unmerge,
    Import,
    RevertImport,
}

impl Action {
    pub const ALL: [Action; 13] = [
        Action::Create,
        Action::Update,
        Action::Delete,
        Action::Restore,
        Action::Deactivate,
        Action::Revoke,
        Action::Purge,
        Action::Promote,
        Action::Revert,
        Action::Merge,
        Action::Unmerge,
        Action::Import,
        Action::RevertImport,
    ];

    pub fn description(self) -> &'static str {
        match self {
            Action::Create => "A record was created.",
            Action::Update => "Fields of a record changed.",
            Action::Delete => "A record was deleted (it can be restored).",
            Action::Restore => "A deleted record was restored.",
            Action::Deactivate => "A user was deactivated.",
            Action::Revoke => "An API token, or a user's access to a sandbox, was revoked.",
            Action::Purge => {
                "Removed for good with its data: a deleted custom field or object, a sandbox, or (object Retention) \
                 deleted records and audit log entries past the workspace's retention settings."
            }
            Action::Promote => "A sandbox's changes or a changeset file were applied to a workspace.",
            Action::Revert => "A promotion was undone.",
            Action::Merge => "A record was merged into another (its survivor): it is deleted and its id leads there.",
            Action::Unmerge => "A merge was undone: the merged record is back and the survivor as it was.",
            Action::Import => {
                "A file was imported: its counts of records created, updated and refused (record: the import job)."
            }
            Action::RevertImport => "An import was reverted: what it created is gone, what it changed is as before.",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "CREATE",
            Action::Update => "UPDATE",
            Action::Delete => "DELETE",
            Action::Restore => "RESTORE",
            Action::Deactivate => "DEACTIVATE",
            Action::Revoke => "REVOKE",
            Action::Purge => "PURGE",
            Action::Promote => "PROMOTE",
            Action::Revert => "REVERT",
            Action::Merge => "MERGE",
            Action::Unmerge => "UNMERGE",
            Action::Import => "IMPORT",
            Action::RevertImport => "REVERT_IMPORT",
        }
    }
}

/// A record as the API shows it: field names to values.
pub type Document = serde_json::Map<String, Json>;

/// One changed field, with its value before and after (API names, values
/// as the API shows them).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub field: String,
    pub before: Json,
    pub after: Json,
}

/// One entry to append.
#[derive(Debug, Clone)]
pub struct Entry {
    pub object: String,
    pub record_id: Option<Uuid>,
    pub action: Action,
    pub changes: Vec<Change>,
}

/// The fields whose values differ between two documents (all set fields
/// of a new one), in the order the documents list them.
pub fn changes(before: Option<&Document>, after: &Document) -> Vec<Change> {
    changes_of(after.keys().cloned(), before, after)
}

/// The changed `fields` (value keys, in the order to report them).
pub fn changes_of(fields: impl Iterator<Item = String>, before: Option<&Document>, after: &Document) -> Vec<Change> {
    let mut out = Vec::new();
    for field in fields {
        if BOOKKEEPING.contains(&field.as_str()) {
            continue;
        }
        let old = before.and_then(|b| b.get(&field)).unwrap_or(&Json::Null);
        let new = after.get(&field).unwrap_or(&Json::Null);
        if old != new {
            out.push(Change {
                before: old.clone(),
                after: new.clone(),
                field,
            });
        }
    }
    out
}

/// Tells the database, for the rest of the transaction, who makes the
/// changes (`crm.actor`): what its own records of changes (the
/// opportunity history) name as their author.
pub async fn act_as(conn: &mut AsyncPgConnection, trail: &Trail) -> Result<()> {
    if let Some(actor) = &trail.actor {
        let mut query = Sql::raw("SELECT set_config('crm.actor', ");
        query
            .bind(crate::db::sql::Bind::Text(Some(actor.user_id.to_string())))
            .push(", true)");
        query.execute(conn).await?;
    }
    Ok(())
}

/// Appends entries in one statement, on the connection (and so in the
/// transaction) of the change they describe.
pub async fn append(conn: &mut AsyncPgConnection, trail: &Trail, entries: &[Entry]) -> Result<()> {
    if let Some(query) = appending(trail, entries) {
        query.execute(conn).await?;
    }
    Ok(())
}

/// The statement [`append`] runs (`None` for no entries), for a caller that
/// runs it with another one (a data-modifying `WITH`).
pub fn appending(trail: &Trail, entries: &[Entry]) -> Option<Sql> {
    if entries.is_empty() {
        return None;
    }
    let mut query = Sql::raw(
        "INSERT INTO crm_system.audit_log \
         (actor_id, token_id, actor_role, via, request_id, workspace, object, record_id, action, changes) VALUES ",
    );
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            query.push(", ");
        }
        let actor = trail.actor.as_ref();
        let changes: Vec<Json> = entry
            .changes
            .iter()
            .map(|c| json!({ "field": c.field, "before": c.before, "after": c.after }))
            .collect();
        query.push("(").bind(Bind::Uuid(actor.map(|a| a.user_id))).push(", ");
        query.bind(Bind::Uuid(actor.and_then(|a| a.token_id))).push(", ");
        query
            .bind(Bind::Text(actor.map(|a| a.role.as_str().to_owned())))
            .push(", ");
        query
            .push(match (trail.automated, actor.is_some()) {
                (true, _) => "'AUTOMATION'",
                (false, true) => "'API'",
                (false, false) => "'CLI'",
            })
            .push(", ");
        query.bind(Bind::Text(trail.request_id.clone())).push(", ");
        query.bind(Bind::Text(Some(trail.workspace.clone()))).push(", ");
        query.bind(Bind::Text(Some(entry.object.clone()))).push(", ");
        query.bind(Bind::Uuid(entry.record_id)).push(", ");
        query.push("'").push(entry.action.as_str()).push("', ");
        query.bind(Bind::Json(Some(Json::Array(changes)))).push(")");
    }
    Some(query)
}

/// An entry as read back.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct Stored {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Timestamptz)]
    pub at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Uuid>)]
    pub actor_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Uuid>)]
    pub token_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Text>)]
    pub actor_role: Option<String>,
    #[diesel(sql_type = Text)]
    pub via: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub request_id: Option<String>,
    #[diesel(sql_type = Text)]
    pub workspace: String,
    #[diesel(sql_type = Text)]
    pub object: String,
    #[diesel(sql_type = Nullable<diesel::sql_types::Uuid>)]
    pub record_id: Option<Uuid>,
    #[diesel(sql_type = Text)]
    pub action: String,
    #[diesel(sql_type = Jsonb)]
    pub changes: Json,
}

/// Which entries to read: every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub workspace: Option<String>,
    pub object: Option<String>,
    pub record_ids: Vec<Uuid>,
    pub actor_id: Option<Uuid>,
    pub action: Option<Action>,
    pub request_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// A page of entries, newest first.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub entries: Vec<Stored>,
    pub has_next_page: bool,
}

const COLUMNS: &str =
    "id, at, actor_id, token_id, actor_role, via, request_id, workspace, object, record_id, action, changes";

fn conditions(filter: &Filter) -> Sql {
    let mut sql = Sql::raw(" WHERE true");
    let text = |sql: &mut Sql, column: &str, value: &Option<String>| {
        if let Some(value) = value {
            sql.push(" AND ")
                .push(column)
                .push(" = ")
                .bind(Bind::Text(Some(value.clone())));
        }
    };
    text(&mut sql, "workspace", &filter.workspace);
    text(&mut sql, "object", &filter.object);
    text(&mut sql, "request_id", &filter.request_id);
    if !filter.record_ids.is_empty() {
        sql.push(" AND record_id = ANY(")
            .bind(Bind::UuidArray(filter.record_ids.clone()))
            .push(")");
    }
    if let Some(actor) = filter.actor_id {
        sql.push(" AND actor_id = ").bind(Bind::Uuid(Some(actor)));
    }
    if let Some(action) = filter.action {
        sql.push(" AND action = '").push(action.as_str()).push("'");
    }
    if let Some(from) = filter.from {
        sql.push(" AND at >= ").bind(Bind::DateTime(Some(from)));
    }
    if let Some(to) = filter.to {
        sql.push(" AND at < ").bind(Bind::DateTime(Some(to)));
    }
    sql
}

/// Entries matching `filter`, newest first, `first` of them after the
/// entry `after` (an id from a cursor).
pub async fn page(conn: &mut AsyncPgConnection, filter: &Filter, first: usize, after: Option<i64>) -> Result<Page> {
    let mut query = Sql::raw("SELECT ");
    query.push(COLUMNS).push(" FROM crm_system.audit_log");
    query.append(&conditions(filter));
    if let Some(after) = after {
        query.push(" AND id < ").push(&after.to_string());
    }
    // A number this code checked (≤ MAX_PAGE): in the text, so plans are cached.
    query.push(" ORDER BY id DESC LIMIT ").push(&(first + 1).to_string());
    let mut entries: Vec<Stored> = query.load(conn).await?;
    let has_next_page = entries.len() > first;
    entries.truncate(first);
    Ok(Page { entries, has_next_page })
}

/// How many entries match `filter`.
pub async fn count(conn: &mut AsyncPgConnection, filter: &Filter) -> Result<i64> {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        count: i64,
    }
    let mut query = Sql::raw("SELECT count(*) AS count FROM crm_system.audit_log");
    query.append(&conditions(filter));
    let rows: Vec<Count> = query.load(conn).await?;
    Ok(rows.first().map(|r| r.count).unwrap_or(0))
}

/// The newest `first` entries of each of many records of one object (the
/// `history` field of a list of records): one statement.
pub async fn histories(
    conn: &mut AsyncPgConnection,
    workspace: &str,
    object: &str,
    records: &[Uuid],
    first: usize,
    after: Option<i64>,
) -> Result<HashMap<Uuid, Page>> {
    let mut inner = Sql::raw("SELECT ");
    inner
        .push(COLUMNS)
        .push(", row_number() OVER (PARTITION BY record_id ORDER BY id DESC) AS position");
    let filter = Filter {
        workspace: Some(workspace.to_owned()),
        object: Some(object.to_owned()),
        record_ids: records.to_vec(),
        ..Filter::default()
    };
    inner.push(" FROM crm_system.audit_log").append(&conditions(&filter));
    if let Some(after) = after {
        inner.push(" AND id < ").push(&after.to_string());
    }
    let mut query = Sql::raw("SELECT ");
    query.push(COLUMNS).push(" FROM (").append(&inner);
    query.push(") AS h WHERE position <= ").push(&(first + 1).to_string());
    query.push(" ORDER BY record_id, id DESC");
    let rows: Vec<Stored> = query.load(conn).await?;
    let mut out: HashMap<Uuid, Page> = HashMap::new();
    for row in rows {
        let Some(record) = row.record_id else { continue };
        let page = out.entry(record).or_default();
        if page.entries.len() == first {
            page.has_next_page = true;
        } else {
            page.entries.push(row);
        }
    }
    Ok(out)
}

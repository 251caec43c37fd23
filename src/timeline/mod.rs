//! The 360° timeline: everything that happened to a customer, newest
//! first, on one keyset-paged list — activities (done and planned), field
//! changes from the audit log, stage moves, lead conversions, merges and
//! the workflow rules that fired.
//! An account's timeline holds its contacts' and deals' events too (and
//! those of the leads converted into it), unless the client asks for its
//! own only; a merged record's past is its survivor's.
//!
//! One statement reads a page: each kind of event is a `SELECT` of
//! `(at, key, kind, payload)` over the records in view, and their union is
//! ordered by `(at, key)` descending, so a cursor is the last event's
//! `(at, key)`. Only records the caller may see are in view.

pub mod api;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use diesel::sql_types::{Jsonb, Text, Timestamptz};
use diesel_async::AsyncPgConnection;
use serde_json::Value as Json;
use uuid::Uuid;

use crate::db::sql::{Bind, Sql};
use crate::error::Result;
use crate::graphql::resolve::RequestContext;
use crate::metadata::ObjectDef;

/// The kinds of events, as `TimelineKind` names them.
pub const KINDS: &[(&str, &str)] = &[
    ("ACTIVITY", "Calls, emails, meetings, tasks and notes, done or planned."),
    (
        "FIELD_CHANGE",
        "Records created, changed, deleted, restored or merged (the audit log).",
    ),
    ("STAGE_CHANGE", "A deal moving to a stage."),
    ("CONVERSION", "A lead converted into an account, a contact and a deal."),
    ("MERGE", "Duplicates merged into the record."),
    (
        "AUTOMATION",
        "A workflow rule fired for the record: what it did, or why it failed.",
    ),
];

/// The objects with a timeline.
pub const OBJECTS: &[&str] = &["Account", "Contact", "Opportunity", "Lead"];

/// What a page asks for.
pub struct Request {
    pub kinds: Vec<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub include_related: bool,
    pub after: Option<(DateTime<Utc>, String)>,
    pub first: usize,
}

/// One event: when, its key (unique, for the order), its kind and what it
/// is about (ids, values).
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct Event {
    #[diesel(sql_type = Timestamptz)]
    pub at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub key: String,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Jsonb)]
    pub payload: Json,
}

impl Event {
    pub fn cursor(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("timeline:{}|{}", self.at.timestamp_micros(), self.key))
    }
}

/// The `(at, key)` of a cursor.
pub fn decode(text: &str) -> Option<(DateTime<Utc>, String)> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (micros, key) = text.strip_prefix("timeline:")?.split_once('|')?;
    Some((DateTime::from_timestamp_micros(micros.parse().ok()?)?, key.to_owned()))
}

/// The records whose events a timeline shows, by object.
#[derive(Debug, Default)]
pub struct InView {
    pub accounts: Vec<Uuid>,
    pub contacts: Vec<Uuid>,
    pub opportunities: Vec<Uuid>,
    pub leads: Vec<Uuid>,
}

impl InView {
    fn all(&self) -> Vec<Uuid> {
        [&self.accounts, &self.contacts, &self.opportunities, &self.leads]
            .into_iter()
            .flatten()
            .copied()
            .collect()
    }
}

/// The visible ids of `object` whose `column` is one of `ids`.
async fn related(
    conn: &mut AsyncPgConnection,
    context: &RequestContext,
    object: &str,
    column: &str,
    ids: &[Uuid],
) -> Result<Vec<Uuid>> {
    let Some(object) = context.model.object(object) else {
        return Ok(Vec::new());
    };
    let table = context.table(object);
    let mut query = Sql::raw("SELECT t.id AS id");
    query
        .append(&table.from_as("t"))
        .push(" WHERE ")
        .append(&table.rows(false, "t"));
    query
        .push(" AND ")
        .column("t", column)
        .push(" = ANY(")
        .bind(Bind::UuidArray(ids.to_vec()))
        .push(")");
    query.push(" ORDER BY t.id LIMIT 10000");
    crate::records::ids(conn, query).await
}

/// The records in view of `object`'s record `id`: itself, and with
/// `related` an account's contacts and deals, and the leads converted
/// into any of them.
pub async fn in_view(
    conn: &mut AsyncPgConnection,
    context: &RequestContext,
    object: &ObjectDef,
    id: Uuid,
    include_related: bool,
) -> Result<InView> {
    let mut view = InView::default();
    match object.name.as_str() {
        "Account" => view.accounts.push(id),
        "Contact" => view.contacts.push(id),
        "Opportunity" => view.opportunities.push(id),
        _ => view.leads.push(id),
    }
    if !include_related {
        return Ok(view);
    }
    if object.name == "Account" {
        view.contacts = related(conn, context, "Contact", "account_id", &[id]).await?;
        view.opportunities = related(conn, context, "Opportunity", "account_id", &[id]).await?;
    }
    let converted = [
        ("converted_account_id", &view.accounts),
        ("converted_contact_id", &view.contacts),
        ("converted_opportunity_id", &view.opportunities),
    ];
    let mut leads = Vec::new();
    for (column, ids) in converted {
        if !ids.is_empty() {
            leads.extend(related(conn, context, "Lead", column, ids).await?);
        }
    }
    leads.sort();
    leads.dedup();
    leads.retain(|l| !view.leads.contains(l));
    view.leads.extend(leads);
    Ok(view)
}

/// `(at, key) < cursor`, `since <= at < until`.
fn window(sql: &mut Sql, at: &str, key: &str, request: &Request) {
    if let Some((after_at, after_key)) = &request.after {
        sql.push(" AND (").push(at).push(", ").push(key).push(") < (");
        sql.bind(Bind::DateTime(Some(*after_at))).push(", ");
        sql.bind(Bind::Text(Some(after_key.clone()))).push("::text)");
    }
    if let Some(since) = request.since {
        sql.push(" AND ")
            .push(at)
            .push(" >= ")
            .bind(Bind::DateTime(Some(since)));
    }
    if let Some(until) = request.until {
        sql.push(" AND ").push(at).push(" < ").bind(Bind::DateTime(Some(until)));
    }
}

fn wants(request: &Request, kind: &str) -> bool {
    request.kinds.is_empty() || request.kinds.iter().any(|k| k == kind)
}

/// Activities about any record in view that the caller may see.
fn activities(context: &RequestContext, view: &InView, request: &Request) -> Option<Sql> {
    let object = context.model.object("Activity")?;
    let table = context.table(object);
    let at = "coalesce(a.completed_at, a.due_at, a.created_at)";
    let mut sql = Sql::raw("SELECT ");
    sql.push(at)
        .push(" AS at, 'activity:' || a.id AS key, 'ACTIVITY' AS kind, ");
    sql.push("jsonb_build_object('id', a.id, 'planned', a.status IN ('OPEN', 'IN_PROGRESS')) AS payload");
    sql.append(&table.from_as("a"))
        .push(" WHERE ")
        .append(&table.rows(false, "a"))
        .push(" AND (false");
    for (column, ids) in [
        ("account_id", &view.accounts),
        ("contact_id", &view.contacts),
        ("opportunity_id", &view.opportunities),
        ("lead_id", &view.leads),
    ] {
        if !ids.is_empty() {
            sql.push(" OR a.")
                .push(column)
                .push(" = ANY(")
                .bind(Bind::UuidArray(ids.clone()))
                .push(")");
        }
    }
    sql.push(")");
    window(&mut sql, at, "('activity:' || a.id)", request);
    Some(sql)
}

/// Audit entries of the records in view (and of records merged into them).
fn field_changes(context: &RequestContext, view: &InView, request: &Request) -> Sql {
    let schema: &str = &context.schema;
    let ids = view.all();
    let mut sql = Sql::raw(
        "SELECT l.at, 'audit:' || lpad(l.id::text, 20, '0') AS key, 'FIELD_CHANGE' AS kind, \
         jsonb_build_object('id', l.id, 'object', l.object, 'recordId', l.record_id, 'action', l.action, \
         'actorId', l.actor_id, 'changes', l.changes) AS payload FROM crm_system.audit_log l WHERE l.workspace = ",
    );
    sql.bind(Bind::Text(Some(context.trail.workspace.clone())));
    sql.push(" AND l.object = ANY(")
        .bind(Bind::TextArray(Some(OBJECTS.iter().map(|o| (*o).to_owned()).collect())));
    sql.push(") AND (l.record_id = ANY(").bind(Bind::UuidArray(ids.clone()));
    sql.push(") OR l.record_id IN (SELECT merged_id FROM ")
        .table(schema, "merged_record");
    sql.push(" WHERE survivor_id = ANY(")
        .bind(Bind::UuidArray(ids))
        .push(")))");
    window(&mut sql, "l.at", "('audit:' || lpad(l.id::text, 20, '0'))", request);
    sql
}

/// Stage moves of the deals in view.
fn stage_changes(context: &RequestContext, view: &InView, request: &Request) -> Sql {
    let schema: &str = &context.schema;
    let mut sql = Sql::raw(
        "SELECT e.entered_at AS at, 'stage:' || e.id AS key, 'STAGE_CHANGE' AS kind, \
         jsonb_build_object('opportunityId', e.opportunity_id, 'stageId', e.stage_id, 'fromStageId', e.from_stage_id, \
         'actorId', e.entered_by) AS payload FROM (SELECT s.*, lag(s.stage_id) OVER (PARTITION BY s.opportunity_id \
         ORDER BY s.entered_at, s.id) AS from_stage_id FROM ",
    );
    sql.table(schema, "opportunity_stage_entry")
        .push(" s WHERE s.deleted_at IS NULL AND s.opportunity_id = ANY(");
    sql.bind(Bind::UuidArray(view.opportunities.clone()))
        .push(")) e WHERE true");
    window(&mut sql, "e.entered_at", "('stage:' || e.id)", request);
    sql
}

/// Conversions of the leads in view.
fn conversions(context: &RequestContext, view: &InView, request: &Request) -> Sql {
    let schema: &str = &context.schema;
    let mut sql = Sql::raw(
        "SELECT l.converted_at AS at, 'conversion:' || l.id AS key, 'CONVERSION' AS kind, \
         jsonb_build_object('leadId', l.id, 'accountId', l.converted_account_id, 'contactId', l.converted_contact_id, \
         'opportunityId', l.converted_opportunity_id) AS payload FROM ",
    );
    sql.table(schema, "lead")
        .push(" l WHERE l.converted_at IS NOT NULL AND l.id = ANY(");
    sql.bind(Bind::UuidArray(view.leads.clone())).push(")");
    window(&mut sql, "l.converted_at", "('conversion:' || l.id)", request);
    sql
}

/// Merges into the records in view.
fn merges(context: &RequestContext, view: &InView, request: &Request) -> Sql {
    let schema: &str = &context.schema;
    let mut sql = Sql::raw(
        "SELECT m.created_at AS at, 'merge:' || m.id AS key, 'MERGE' AS kind, \
         jsonb_build_object('id', m.id, 'object', m.object, 'survivorId', m.survivor_id, 'mergedIds', m.merged_ids, \
         'actorId', m.created_by, 'undoneAt', m.undone_at) AS payload FROM ",
    );
    sql.table(schema, "record_merge").push(" m WHERE m.survivor_id = ANY(");
    sql.bind(Bind::UuidArray(view.all())).push(")");
    window(&mut sql, "m.created_at", "('merge:' || m.id)", request);
    sql
}

/// Workflow rules that fired for the records in view.
fn automation(context: &RequestContext, view: &InView, request: &Request) -> Sql {
    let schema: &str = &context.schema;
    let mut sql = Sql::raw(
        "SELECT r.started_at AS at, 'run:' || r.id AS key, 'AUTOMATION' AS kind, \
         jsonb_build_object('id', r.id, 'ruleId', r.rule_id, 'ruleName', r.rule_name, 'object', r.object, 'recordId', r.record_id, \
         'trigger', r.trigger, 'status', r.status, 'actions', r.actions, 'error', r.error) AS payload FROM ",
    );
    sql.table(schema, "workflow_run").push(" r WHERE r.record_id = ANY(");
    sql.bind(Bind::UuidArray(view.all())).push(")");
    window(&mut sql, "r.started_at", "('run:' || r.id)", request);
    sql
}

/// One page of events, newest first; `first + 1` are read so the caller
/// knows whether more follow.
pub async fn page(
    conn: &mut AsyncPgConnection,
    context: &RequestContext,
    view: &InView,
    request: &Request,
) -> Result<Vec<Event>> {
    let mut parts = Vec::new();
    if wants(request, "ACTIVITY") {
        parts.extend(activities(context, view, request));
    }
    if wants(request, "FIELD_CHANGE") {
        parts.push(field_changes(context, view, request));
    }
    if wants(request, "STAGE_CHANGE") && !view.opportunities.is_empty() {
        parts.push(stage_changes(context, view, request));
    }
    if wants(request, "CONVERSION") && !view.leads.is_empty() {
        parts.push(conversions(context, view, request));
    }
    if wants(request, "MERGE") {
        parts.push(merges(context, view, request));
    }
    if wants(request, "AUTOMATION") {
        parts.push(automation(context, view, request));
    }
    if parts.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::raw("SELECT at, key, kind, payload FROM (");
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            sql.push(" UNION ALL ");
        }
        sql.push("(").append(part).push(" ORDER BY 1 DESC, 2 DESC LIMIT ");
        sql.push(&(request.first + 1).to_string()).push(")");
    }
    sql.push(") events ORDER BY at DESC, key DESC LIMIT ")
        .push(&(request.first + 1).to_string());
    Ok(sql.load(conn).await?)
}

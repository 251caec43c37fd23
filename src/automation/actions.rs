//! What workflow rules' actions do, for [`super::run`]: SET_FIELDS and
//! ASSIGN_OWNER compute the fields to set (written by the pass, once),
//! applied to a draft of the record that later actions read; CREATE_RECORD
//! makes a record about it (checked and hooked like an API create);
//! SEND_EMAIL renders a template into the outbox; WEBHOOK posts the record
//! through the webhooks' outbox; WAIT pauses the run.

use async_graphql::Value;
use chrono::{DateTime, SecondsFormat, Utc};
use diesel::sql_types::{BigInt, Text};
use diesel_async::AsyncPgConnection;
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::rules::{Action, Strategy, WorkflowRule};
use super::template::{self, Values};
use super::Written;
use crate::audit::{self, Action as AuditAction};
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::graphql::input::{self, Path};
use crate::graphql::room::{CheckScope, RecordHooks};
use crate::metadata::{FieldDef, FieldKind, ObjectDef};
use crate::records::{self, record_id, write, Record, Table};

/// What a rule's actions did.
pub struct Done {
    /// The record as the rule leaves it (the fields it sets applied).
    pub draft: Record,
    /// The fields it sets, for the pass to write.
    pub sets: Vec<write::Assignment>,
    /// What each action did, for the run's record.
    pub actions: Vec<Json>,
    /// A WAIT: the action to go on with, and when.
    pub waiting: Option<(usize, DateTime<Utc>)>,
}

/// Runs the rule's actions from `from` on; an action's failure names it.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    conn: &mut AsyncPgConnection,
    scope: &CheckScope<'_>,
    hooks: &RecordHooks,
    object: &ObjectDef,
    rule: &WorkflowRule,
    run: Uuid,
    from: usize,
    draft: Record,
) -> Result<Done> {
    let mut done = Done {
        draft,
        sets: Vec::new(),
        actions: Vec::new(),
        waiting: None,
    };
    for (i, action) in rule.actions.iter().enumerate().skip(from) {
        let failed = |err: CrmError| match err {
            CrmError::Unavailable(_) | CrmError::Timeout(_) => err,
            other => CrmError::Conflict(format!("action {} ({}): {other}", i + 1, action.kind())),
        };
        let outcome = act(conn, scope, hooks, object, rule, run, action, &mut done)
            .await
            .map_err(failed)?;
        done.actions.push(outcome);
        if let Action::Wait { minutes } = action {
            done.waiting = Some((i + 1, Utc::now() + chrono::Duration::minutes(*minutes)));
            break;
        }
    }
    Ok(done)
}

/// Sets fields on the draft and notes them for the pass.
fn set(done: &mut Done, assignments: Vec<write::Assignment>) {
    let mut draft = (*done.draft).clone();
    for (field, value) in &assignments {
        let mut value = shown(value);
        // Money and percentages are stored with two places: show them so.
        if matches!(field.kind, FieldKind::Currency | FieldKind::Percent) {
            if let Some(text) = value.as_str() {
                value = Json::String(two_places(text));
            }
        }
        draft.insert(field.value_key(), value);
    }
    done.draft = std::sync::Arc::new(draft);
    done.sets.extend(assignments);
}

/// A decimal's text with at least two places (`12.5` → `12.50`).
fn two_places(text: &str) -> String {
    match text.split_once('.') {
        None => format!("{text}.00"),
        Some((_, places)) if places.len() < 2 => format!("{text}{}", "0".repeat(2 - places.len())),
        Some(_) => text.to_owned(),
    }
}

/// A value as a record document holds it.
fn shown(value: &Bind) -> Json {
    match value {
        Bind::Text(text) | Bind::Decimal(text) => text.clone().map_or(Json::Null, Json::String),
        Bind::Uuid(id) => id.map_or(Json::Null, |id| Json::String(id.to_string())),
        Bind::UuidArray(ids) => Json::Array(ids.iter().map(|id| Json::String(id.to_string())).collect()),
        Bind::Int(n) => n.map_or(Json::Null, Json::from),
        Bind::Bool(b) => b.map_or(Json::Null, Json::Bool),
        Bind::Date(date) => date.map_or(Json::Null, |d| Json::String(d.format("%Y-%m-%d").to_string())),
        Bind::DateTime(at) => at.map_or(Json::Null, |at| {
            Json::String(at.to_rfc3339_opts(SecondsFormat::Micros, true))
        }),
        Bind::Json(json) => json.clone().unwrap_or(Json::Null),
        Bind::TextArray(items) => items.clone().map_or(Json::Null, |items| json!(items)),
        Bind::Bytes(_) => Json::Null,
    }
}

/// One action; answers what it did, for the run's record.
#[allow(clippy::too_many_arguments)]
async fn act(
    conn: &mut AsyncPgConnection,
    scope: &CheckScope<'_>,
    hooks: &RecordHooks,
    object: &ObjectDef,
    rule: &WorkflowRule,
    run: Uuid,
    action: &Action,
    done: &mut Done,
) -> Result<Json> {
    let kind = action.kind();
    match action {
        Action::SetFields { values } => {
            let values = filled(conn, scope, object, &done.draft, values).await?;
            let assignments = input::assignments(object, &values, &Path::root("values"))?;
            let fields: Vec<String> = assignments.iter().map(|(f, _)| f.value_key()).collect();
            set(done, assignments);
            Ok(json!({ "type": kind, "fields": fields }))
        }
        Action::AssignOwner { strategy, users } => {
            let owner = pick_owner(conn, scope, rule.id, *strategy, users).await?;
            let field = object
                .field("owner")
                .ok_or_else(|| CrmError::bad_input(&[], format!("{} records have no owner", object.name)))?;
            let current = done
                .draft
                .get(&field.value_key())
                .and_then(Json::as_str)
                .map(str::to_owned);
            if current.as_deref() != Some(owner.to_string().as_str()) {
                set(done, vec![(field.clone(), Bind::Uuid(Some(owner)))]);
            }
            Ok(json!({ "type": kind, "ownerId": owner }))
        }
        Action::CreateRecord {
            object: target,
            values,
            due_in_minutes,
        } => {
            let made = create(conn, scope, hooks, object, &done.draft, target, values, *due_in_minutes).await?;
            Ok(json!({ "type": kind, "object": target, "id": made }))
        }
        Action::SendEmail { template, to } => {
            let sent = super::email::enqueue(conn, scope, object, &done.draft, rule, run, template, to).await?;
            Ok(json!({ "type": kind, "emailId": sent.id, "to": sent.to, "status": sent.status }))
        }
        Action::Webhook { subscription } => {
            let (id, status) = webhook(conn, scope, object, &done.draft, rule, subscription).await?;
            Ok(json!({ "type": kind, "webhook": subscription, "eventId": id, "status": status }))
        }
        Action::Wait { minutes } => Ok(json!({ "type": kind, "minutes": minutes })),
    }
}

/// Posts the record, as the rule left it so far, to the subscription
/// named `name` (through the outbox: sent after commit, captured in a
/// sandbox); answers the event and the delivery's status (none when the
/// subscription is disabled here).
async fn webhook(
    conn: &mut AsyncPgConnection,
    scope: &CheckScope<'_>,
    object: &ObjectDef,
    record: &Record,
    rule: &WorkflowRule,
    name: &str,
) -> Result<(Uuid, String)> {
    let (subscription, _) = crate::webhooks::subscription_named(conn, scope.schema, name)
        .await?
        .ok_or_else(|| CrmError::bad_input(&["webhook"], format!("no webhook subscription named {name}")))?;
    let event = crate::webhooks::NewEvent {
        object,
        record,
        event: "WORKFLOW",
        previous: None,
        changed: Vec::new(),
        actor: scope.trail.actor.as_ref().map(|actor| actor.user_id),
        rule: Some(&rule.name),
    };
    let (id, status) = crate::webhooks::append(conn, scope.schema, &event, Some(subscription)).await?;
    Ok((id, status.unwrap_or_else(|| "DISABLED".to_owned())))
}

/// A rule's values with their placeholders filled from the record.
async fn filled(
    conn: &mut AsyncPgConnection,
    scope: &CheckScope<'_>,
    object: &ObjectDef,
    record: &Record,
    values: &Value,
) -> Result<Value> {
    let json = values.clone().into_json().map_err(CrmError::internal)?;
    let texts = strings(&json);
    if !texts.iter().any(|t| t.contains("{{")) {
        return Ok(values.clone());
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let source = Values::read(conn, scope.schema, scope.model, object, record.clone(), &refs).await?;
    let rendered = template::render_json(&json, &|p| source.get(p));
    Value::from_json(rendered).map_err(CrmError::internal)
}

fn strings(json: &Json) -> Vec<String> {
    match json {
        Json::String(text) => vec![text.clone()],
        Json::Array(items) => items.iter().flat_map(strings).collect(),
        Json::Object(map) => map.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// Makes a record of `target` about the record: tied to it by the first
/// lookup of `target` to its object, owned by its owner, due in
/// `due_in_minutes`, unless the values say otherwise.
#[allow(clippy::too_many_arguments)]
async fn create(
    conn: &mut AsyncPgConnection,
    scope: &CheckScope<'_>,
    hooks: &RecordHooks,
    object: &ObjectDef,
    record: &Record,
    target: &str,
    values: &Value,
    due_in_minutes: Option<i64>,
) -> Result<Uuid> {
    let target = scope
        .model
        .object(target)
        .ok_or_else(|| CrmError::bad_input(&[], format!("{target} is not an object")))?;
    let values = filled(conn, scope, object, record, values).await?;
    let mut assignments = input::assignments(target, &values, &Path::root("values"))?;
    let set =
        |assignments: &[write::Assignment], field: &FieldDef| assignments.iter().any(|(f, _)| f.name == field.name);
    let id = record_id(record);
    // Tied to the record, unless it is deleted (nothing may refer to it).
    if let Some(link) = target
        .fields
        .iter()
        .find(|f| !f.system && f.lookup().is_some_and(|l| l.target == object.name))
        .filter(|_| !super::deleted(record))
    {
        if !set(&assignments, link) {
            assignments.push((link.clone(), Bind::Uuid(id)));
        }
    }
    let owner = record
        .get("ownerId")
        .and_then(Json::as_str)
        .and_then(|o| Uuid::parse_str(o).ok());
    if let (Some(field), Some(owner)) = (target.field("owner"), owner) {
        if !set(&assignments, field) {
            assignments.push((field.clone(), Bind::Uuid(Some(owner))));
        }
    }
    if let Some(minutes) = due_in_minutes {
        let due = Utc::now() + chrono::Duration::minutes(minutes);
        let field = target
            .fields
            .iter()
            .find(|f| f.name.starts_with("due") && matches!(f.kind, FieldKind::DateTime | FieldKind::Date))
            .ok_or_else(|| CrmError::bad_input(&[], format!("{} has no due date", target.name)))?;
        if !set(&assignments, field) {
            let value = match field.kind {
                FieldKind::Date => Bind::Date(Some(due.date_naive())),
                _ => Bind::DateTime(Some(due)),
            };
            assignments.push((field.clone(), value));
        }
    }
    let table = Table::new(scope.schema, target);
    let made = write::insert(conn, scope.model, table, &assignments, &[]).await?;
    let written = Written {
        before: None,
        record: &made,
    };
    let made = hooks.run(conn, scope, target, written).await?;
    let entry = records::audit_entry(target, AuditAction::Create, None, &made);
    audit::append(conn, scope.trail, &[entry]).await?;
    record_id(&made).ok_or_else(|| CrmError::internal("a created record without an id"))
}

#[derive(diesel::QueryableByName)]
struct User {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    email: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    active: bool,
}

/// The users a rule names (ids or emails), in its order: an error names
/// one that is unknown.
pub async fn users(conn: &mut AsyncPgConnection, names: &[String]) -> Result<Vec<(Uuid, bool)>> {
    let mut query = Sql::raw("SELECT id, email, active FROM crm_system.users WHERE id::text = ANY(");
    query
        .bind(Bind::TextArray(Some(names.to_vec())))
        .push(") OR lower(email) = ANY(");
    let lowered = names.iter().map(|n| n.to_lowercase()).collect();
    query
        .bind(Bind::TextArray(Some(lowered)))
        .push(") AND deleted_at IS NULL");
    let found: Vec<User> = query.load(conn).await?;
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            found
                .iter()
                .find(|u| u.id.to_string() == *name || u.email.eq_ignore_ascii_case(name))
                .map(|u| (u.id, u.active))
                .ok_or_else(|| CrmError::bad_input(&["users", &i.to_string()], format!("no user {name}")))
        })
        .collect()
}

#[derive(diesel::QueryableByName)]
struct Position {
    #[diesel(sql_type = BigInt)]
    position: i64,
}

#[derive(diesel::QueryableByName)]
struct Open {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = BigInt)]
    open: i64,
}

/// The owner ASSIGN_OWNER gives, among the active users it names.
async fn pick_owner(
    conn: &mut AsyncPgConnection,
    scope: &CheckScope<'_>,
    rule: Uuid,
    strategy: Strategy,
    names: &[String],
) -> Result<Uuid> {
    let active: Vec<Uuid> = users(conn, names)
        .await?
        .into_iter()
        .filter(|(_, active)| *active)
        .map(|(id, _)| id)
        .collect();
    if active.is_empty() {
        return Err(CrmError::Conflict("none of the rule's users is active".into()));
    }
    match strategy {
        Strategy::Fixed => Ok(active[0]),
        Strategy::RoundRobin => {
            // One counter per rule, taken in the transaction: concurrent
            // writes take turns, each gets the next user.
            let mut query = Sql::raw("INSERT INTO ");
            query
                .table(scope.schema, "workflow_state")
                .push(" AS s (rule_id, position) VALUES (");
            query
                .bind(Bind::Uuid(Some(rule)))
                .push(", 1) ON CONFLICT (rule_id) DO UPDATE SET position = s.position + 1");
            query.push(" RETURNING s.position");
            let rows: Vec<Position> = query.load(conn).await?;
            let position = rows.first().map_or(1, |r| r.position);
            let index = usize::try_from((position - 1).rem_euclid(active.len() as i64)).unwrap_or(0);
            Ok(active[index])
        }
        Strategy::LeastOpenDeals => {
            let deals = scope
                .model
                .object("Opportunity")
                .ok_or_else(|| CrmError::internal("no Opportunity object"))?;
            let mut query = Sql::raw("SELECT u.id, count(o.id) AS open FROM unnest(");
            query
                .bind(Bind::UuidArray(active.clone()))
                .push(") AS u(id) LEFT JOIN ");
            query.table(scope.schema, &deals.table);
            query.push(" o ON o.owner_id = u.id AND o.deleted_at IS NULL AND NOT o.is_closed GROUP BY u.id");
            let counts: Vec<Open> = query.load(conn).await?;
            let open = |id: &Uuid| counts.iter().find(|c| c.id == *id).map_or(0, |c| c.open);
            // The fewest open deals; ties go to the user named first.
            Ok(*active.iter().min_by_key(|id| open(id)).unwrap_or(&active[0]))
        }
    }
}

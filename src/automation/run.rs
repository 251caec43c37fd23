//! Running a workflow rule for a record: its actions in order, in a
//! savepoint of the caller's transaction (the write that triggered it, or
//! the worker's), so they succeed or fail together and a failure is
//! recorded on the run instead of failing the write. Records the rules
//! write go through the same checks and hooks as the API's, which may
//! fire other rules: a rule never fires again for a record in its own
//! cascade (the loop guard), and cascades stop at [`MAX_DEPTH`].

use async_graphql::Value;
use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures_util::future::BoxFuture;
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::rules::{self, Action, Strategy, Trigger, WorkflowRule};
use super::template::{self, Values};
use super::{Event, Written};
use crate::access::Visibility;
use crate::audit::{self, Action as AuditAction};
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::graphql::input::{self, Path};
use crate::graphql::room::{CheckScope, Firing, Notices, RecordHooks};
use crate::metadata::{FieldDef, FieldKind, ObjectDef};
use crate::records::{self, record_id, write, Record, Table};

/// How many rules deep a cascade goes (a rule's change firing another).
pub const MAX_DEPTH: usize = 5;

/// A rule whose trigger matches a write, before its condition is known.
pub struct Candidate<'r> {
    pub rule: &'r WorkflowRule,
    /// The condition must hold now and not have held before.
    pub becomes_true: bool,
}

/// The rules of `rules` whose trigger matches what the write did.
pub fn candidates<'r>(
    rules: &'r [WorkflowRule],
    object: &ObjectDef,
    written: Written<'_>,
    event: Event,
) -> Vec<Candidate<'r>> {
    let changed = |key: &str| written.before.and_then(|b| b.get(key)) != written.record.get(key);
    let score = |record: Option<&Record>| record.and_then(|r| r.get("score")).and_then(Json::as_i64);
    rules
        .iter()
        .filter(|rule| match (rule.trigger, event) {
            (Trigger::Created | Trigger::CreatedOrUpdated, Event::Created) => true,
            (Trigger::Updated | Trigger::CreatedOrUpdated, Event::Updated) => {
                rule.trigger_fields.is_empty() || rule.trigger_fields.iter().any(|f| changed(&f.value_key()))
            }
            (Trigger::Deleted, Event::Deleted) => true,
            (Trigger::StageChanged, Event::Updated) => object.field("stage").is_some_and(|f| changed(&f.value_key())),
            (Trigger::ScoreCrossed, Event::Created | Event::Updated) => {
                let threshold = rule.score_threshold.unwrap_or(i64::MAX);
                let before = score(written.before).unwrap_or(i64::MIN);
                score(Some(written.record)).is_some_and(|now| now >= threshold && before < threshold)
            }
            _ => false,
        })
        .map(|rule| Candidate {
            rule,
            becomes_true: rule.when_becomes_true && event == Event::Updated,
        })
        .collect()
}

/// Runs `rules` (their trigger and condition held) for the record, in
/// order, each seeing what the ones before did; answers the record as it
/// then stands, when they changed it.
pub async fn fire_all(
    conn: &mut AsyncPgConnection,
    scope: &CheckScope<'_>,
    hooks: &RecordHooks,
    object: &ObjectDef,
    rules: &[&WorkflowRule],
    record: Record,
) -> Result<Option<Record>> {
    let mut now = record;
    let mut changed = false;
    for rule in rules {
        if let Some(record) = fire(conn, scope, hooks, object, rule, now.clone(), Start::New).await? {
            now = record;
            changed = true;
        }
    }
    Ok(changed.then_some(now))
}

/// Where a run starts: a new run, or a waiting one going on.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    New,
    Resume { run: Uuid, from: usize },
}

/// What a run's actions did.
struct Done {
    record: Record,
    changed: bool,
    actions: Vec<Json>,
    /// A WAIT: the action to go on with, and when.
    waiting: Option<(usize, DateTime<Utc>)>,
}

/// Runs one rule for the record and records the run; answers the record
/// when the rule changed it. A failing action undoes the rule's other
/// actions and is recorded; only a failure of the database itself is the
/// caller's.
pub async fn fire(
    conn: &mut AsyncPgConnection,
    scope: &CheckScope<'_>,
    hooks: &RecordHooks,
    object: &ObjectDef,
    rule: &WorkflowRule,
    record: Record,
    start: Start,
) -> Result<Option<Record>> {
    let Some(id) = record_id(&record) else {
        return Ok(None);
    };
    if scope.cascade.contains(&(rule.id, id)) {
        return Ok(None);
    }
    let (run, from) = match start {
        Start::New => (Uuid::new_v4(), 0),
        Start::Resume { run, from } => (run, from),
    };
    let mut entry = Run {
        id: run,
        rule,
        object: &object.name,
        record: id,
        depth: scope.cascade.len(),
        resumed: matches!(start, Start::Resume { .. }),
        status: "FAILED",
        actions: Vec::new(),
        error: None,
        waiting: None,
    };
    if scope.cascade.len() >= MAX_DEPTH {
        entry.error = Some(format!(
            "stopped: workflow rules fired each other {MAX_DEPTH} levels deep (a loop between rules?)"
        ));
        entry.save(conn, scope.schema).await?;
        return Ok(None);
    }
    let tried = conn
        .transaction::<_, CrmError, _>(async |conn| {
            execute(conn, scope, hooks, object, rule, record, (run, from)).await
        })
        .await;
    match tried {
        Ok(done) => {
            entry.status = if done.waiting.is_some() { "WAITING" } else { "SUCCEEDED" };
            entry.actions = done.actions;
            entry.waiting = done.waiting;
            entry.save(conn, scope.schema).await?;
            Ok(done.changed.then_some(done.record))
        }
        Err(err @ (CrmError::Unavailable(_) | CrmError::Timeout(_))) => Err(err),
        Err(err) => {
            entry.error = Some(err.to_string());
            entry.save(conn, scope.schema).await?;
            Ok(None)
        }
    }
}

/// Runs the actions from `from` on, as the rule: the records it writes are
/// checked and hooked like the API's (with the rule in their cascade) and
/// audited as AUTOMATION.
async fn execute(
    conn: &mut AsyncPgConnection,
    scope: &CheckScope<'_>,
    hooks: &RecordHooks,
    object: &ObjectDef,
    rule: &WorkflowRule,
    record: Record,
    (run, from): (Uuid, usize),
) -> Result<Done> {
    let id = record_id(&record).ok_or_else(|| CrmError::internal("a record without an id"))?;
    let chain: Vec<Firing> = scope.cascade.iter().copied().chain([(rule.id, id)]).collect();
    let trail = scope.trail.automated();
    let everything = Visibility::all();
    let notices = Notices::default();
    let nested = CheckScope {
        model: scope.model,
        schema: scope.schema,
        visibility: &everything,
        at: &[],
        follow_ups: scope.follow_ups,
        notices: &notices,
        trail: &trail,
        cascade: &chain,
    };
    let mut done = Done {
        record,
        changed: false,
        actions: Vec::new(),
        waiting: None,
    };
    for (i, action) in rule.actions.iter().enumerate().skip(from) {
        let failed = |err: CrmError| match err {
            CrmError::Unavailable(_) | CrmError::Timeout(_) => err,
            other => CrmError::Conflict(format!("action {} ({}): {other}", i + 1, action.kind())),
        };
        let outcome = act(conn, &nested, hooks, object, rule, run, action, &mut done)
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
            let values = filled(conn, scope, object, &done.record, values).await?;
            let assignments = input::assignments(object, &values, &Path::root("values"))?;
            let fields: Vec<String> = assignments.iter().map(|(f, _)| f.value_key()).collect();
            done.record = update(conn, scope, hooks, object, &done.record, &assignments).await?;
            done.changed = true;
            Ok(json!({ "type": kind, "fields": fields }))
        }
        Action::AssignOwner { strategy, users } => {
            let owner = pick_owner(conn, scope, rule.id, *strategy, users).await?;
            let field = object
                .field("owner")
                .ok_or_else(|| CrmError::bad_input(&[], format!("{} records have no owner", object.name)))?;
            let current = done
                .record
                .get(&field.value_key())
                .and_then(Json::as_str)
                .map(str::to_owned);
            if current.as_deref() != Some(owner.to_string().as_str()) {
                let assignment = [(field.clone(), Bind::Uuid(Some(owner)))];
                done.record = update(conn, scope, hooks, object, &done.record, &assignment).await?;
                done.changed = true;
            }
            Ok(json!({ "type": kind, "ownerId": owner }))
        }
        Action::CreateRecord {
            object: target,
            values,
            due_in_minutes,
        } => {
            let made = create(
                conn,
                scope,
                hooks,
                object,
                &done.record,
                target,
                values,
                *due_in_minutes,
            )
            .await?;
            Ok(json!({ "type": kind, "object": target, "id": made }))
        }
        Action::SendEmail { template, to } => {
            let sent = super::email::enqueue(conn, scope, object, &done.record, rule, run, template, to).await?;
            Ok(json!({ "type": kind, "emailId": sent.id, "to": sent.to, "status": sent.status }))
        }
        Action::Wait { minutes } => Ok(json!({ "type": kind, "minutes": minutes })),
    }
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

/// Changes the record as an API update would (checks, hooks, audit).
async fn update(
    conn: &mut AsyncPgConnection,
    scope: &CheckScope<'_>,
    hooks: &RecordHooks,
    object: &ObjectDef,
    before: &Record,
    values: &[write::Assignment],
) -> Result<Record> {
    let id = record_id(before).ok_or_else(|| CrmError::internal("a record without an id"))?;
    let table = Table::new(scope.schema, object);
    let record = write::update(conn, scope.model, table, id, values, None, &[]).await?;
    let written = Written {
        before: Some(before),
        record: &record,
    };
    let record = hooks.run(conn, scope, object, written).await?;
    let entry = records::audit_entry(object, AuditAction::Update, Some(before), &record);
    audit::append(conn, scope.trail, &[entry]).await?;
    Ok(record)
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
    if let Some(link) = target
        .fields
        .iter()
        .find(|f| !f.system && f.lookup().is_some_and(|l| l.target == object.name))
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

/// One run as recorded.
struct Run<'r> {
    id: Uuid,
    rule: &'r WorkflowRule,
    object: &'r str,
    record: Uuid,
    depth: usize,
    /// A waiting run going on: its row is updated, not made.
    resumed: bool,
    status: &'static str,
    actions: Vec<Json>,
    error: Option<String>,
    waiting: Option<(usize, DateTime<Utc>)>,
}

impl Run<'_> {
    /// Records the run (and, waiting, when it goes on).
    async fn save(&self, conn: &mut AsyncPgConnection, schema: &str) -> Result<()> {
        let (next, resume) = match self.waiting {
            Some((next, at)) => (Some(i32::try_from(next).unwrap_or(i32::MAX)), Some(at)),
            None => (None, None),
        };
        let finished = if self.waiting.is_some() { "NULL" } else { "now()" };
        let mut query;
        if self.resumed {
            query = Sql::raw("UPDATE ");
            query.table(schema, "workflow_run").push(" SET status = ");
            query.bind(Bind::Text(Some(self.status.to_owned())));
            query
                .push(", actions = actions || ")
                .bind(Bind::Json(Some(Json::Array(self.actions.clone()))));
            query.push(", error = ").bind(Bind::Text(self.error.clone()));
            query.push(", finished_at = ").push(finished);
            query.push(", next_action = ").bind(Bind::Int(next));
            query.push(", resume_at = ").bind(Bind::DateTime(resume));
            query.push(" WHERE id = ").bind(Bind::Uuid(Some(self.id)));
        } else {
            query = Sql::raw("INSERT INTO ");
            query.table(schema, "workflow_run").push(
                " (id, rule_id, rule_name, object, record_id, trigger, status, actions, error, depth, finished_at, \
                 next_action, resume_at) VALUES (",
            );
            query.bind(Bind::Uuid(Some(self.id))).push(", ");
            query.bind(Bind::Uuid(Some(self.rule.id))).push(", ");
            query.bind(Bind::Text(Some(self.rule.name.clone()))).push(", ");
            query.bind(Bind::Text(Some(self.object.to_owned()))).push(", ");
            query.bind(Bind::Uuid(Some(self.record))).push(", ");
            query
                .bind(Bind::Text(Some(self.rule.trigger.as_str().to_owned())))
                .push(", ");
            query.bind(Bind::Text(Some(self.status.to_owned()))).push(", ");
            query
                .bind(Bind::Json(Some(Json::Array(self.actions.clone()))))
                .push(", ");
            query.bind(Bind::Text(self.error.clone())).push(", ");
            query
                .bind(Bind::Int(Some(i32::try_from(self.depth).unwrap_or(i32::MAX))))
                .push(", ");
            query.push(finished).push(", ");
            query
                .bind(Bind::Int(next))
                .push(", ")
                .bind(Bind::DateTime(resume))
                .push(")");
        }
        query.execute(conn).await?;
        if let Some(at) = resume {
            let mut timer = Sql::raw("INSERT INTO ");
            timer
                .table(schema, "workflow_timer")
                .push(" (rule_id, record_id, due_at, run_id) VALUES (");
            timer
                .bind(Bind::Uuid(Some(self.rule.id)))
                .push(", ")
                .bind(Bind::Uuid(Some(self.record)));
            timer
                .push(", ")
                .bind(Bind::DateTime(Some(at)))
                .push(", ")
                .bind(Bind::Uuid(Some(self.id)))
                .push(")");
            timer.execute(conn).await?;
        }
        Ok(())
    }
}

/// Marks a waiting run that will not go on (its rule is off or gone, its
/// record deleted, its condition no longer holds).
pub async fn cancel(conn: &mut AsyncPgConnection, schema: &str, run: Uuid, why: &str) -> Result<()> {
    let mut query = Sql::raw("UPDATE ");
    query
        .table(schema, "workflow_run")
        .push(" SET status = 'CANCELLED', finished_at = now(), error = ");
    query
        .bind(Bind::Text(Some(why.to_owned())))
        .push(", resume_at = NULL WHERE id = ");
    query.bind(Bind::Uuid(Some(run)));
    query.execute(conn).await?;
    Ok(())
}

/// A rule saved through the API or a promotion must fit the model: its
/// fields, templates (of its object) and users exist. Its timers and
/// schedule follow it.
pub fn rule_written<'a>(
    conn: &'a mut AsyncPgConnection,
    scope: &'a CheckScope<'a>,
    written: Written<'a>,
) -> BoxFuture<'a, Result<Option<Record>>> {
    Box::pin(async move {
        let id = record_id(written.record).ok_or_else(|| CrmError::internal("a rule without an id"))?;
        if !super::deleted(written.record) {
            let row = super::validation::stored_row(written.record);
            let at = Path::from_parts(scope.at);
            let object = rules::object(scope.model, row["object"].as_str().unwrap_or_default(), &at)?;
            let rule = rules::workflow(scope.model, object, &row, scope.at)?;
            check_names(conn, scope, &rule, &at).await?;
        }
        super::timers::sync(conn, scope.schema, scope.model, &[id]).await?;
        let mut reset = Sql::raw("UPDATE ");
        reset
            .table(scope.schema, "workflow_state")
            .push(" SET next_run_at = NULL, schedule = NULL WHERE rule_id = ");
        reset.bind(Bind::Uuid(Some(id)));
        reset.execute(conn).await?;
        Ok(None)
    })
}

#[derive(diesel::QueryableByName)]
struct Template {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    object: String,
}

/// The templates and users a rule's actions name exist.
async fn check_names(
    conn: &mut AsyncPgConnection,
    scope: &CheckScope<'_>,
    rule: &WorkflowRule,
    at: &Path,
) -> Result<()> {
    for (i, action) in rule.actions.iter().enumerate() {
        let at = at.at("actions").index(i);
        match action {
            Action::SendEmail { template, .. } => {
                let mut query = Sql::raw("SELECT name, object FROM ");
                query
                    .table(scope.schema, "email_template")
                    .push(" WHERE deleted_at IS NULL AND name = ");
                query.bind(Bind::Text(Some(template.clone())));
                let found: Vec<Template> = query.load(conn).await?;
                match found.first() {
                    None => return Err(at.at("template").error(format!("no email template named {template}"))),
                    Some(t) if t.object != rule.object => {
                        return Err(at.at("template").error(format!(
                            "{} is a template for {}, not {}",
                            t.name, t.object, rule.object
                        )))
                    }
                    Some(_) => {}
                }
            }
            Action::AssignOwner { users, .. } => {
                users_at(conn, users, &at).await?;
            }
            _ => {}
        }
    }
    Ok(())
}

async fn users_at(conn: &mut AsyncPgConnection, names: &[String], at: &Path) -> Result<()> {
    match users(conn, names).await {
        Err(CrmError::BadUserInput { message, field }) => {
            let mut path = at.parts().to_vec();
            path.extend(field);
            Err(CrmError::bad_input_at(path, message))
        }
        other => other.map(drop),
    }
}

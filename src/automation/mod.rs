//! Automation: validation rules, workflow rules and the emails they send.
//!
//! Both kinds of rules are configuration (`ValidationRule`,
//! `WorkflowRule`, `EmailTemplate`; the `VALIDATION_RULE`,
//! `WORKFLOW_RULE` and `EMAIL_TEMPLATE` kinds): made in a sandbox,
//! diffed, promoted and reverted like the other rules. On every write of
//! a record (API mutations, batches, upserts, lead conversions, and the
//! rules' own changes), one statement evaluates the active rules'
//! conditions against the record as written and as it was (`changed`,
//! `previous`): a validation rule that holds refuses the write with
//! `VALIDATION_FAILED`; a workflow rule whose trigger and condition hold
//! runs its actions in a savepoint of the write's transaction (`run`), so
//! a failing rule is recorded, not fatal. Imports check validation rules
//! a batch at a time (`validation::import_batch`).
//!
//! What happens later — a date offset's time coming, a cron schedule, a
//! run waiting, an email to deliver — is a row (`workflow_timer`,
//! `workflow_state`, `email_outbox`) the worker (`worker`) takes with
//! `FOR UPDATE SKIP LOCKED`, so any number of servers run each once.
//! Emails of a sandbox are rendered and kept (CAPTURED), never sent,
//! unless an admin allowed their recipient domain for that sandbox.

pub mod actions;
pub mod api;
pub mod email;
pub mod rules;
pub mod run;
pub mod template;
pub mod timers;
pub mod validation;
pub mod worker;

use diesel::sql_types::{Array, Bool};
use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;
use serde_json::Value as Json;
use uuid::Uuid;

use crate::db::sql::{Bind, Sql};
use crate::error::Result;
use crate::graphql::room::{CheckScope, RecordHooks, Surface, Written};
use crate::metadata::kinds::{Change, Kind};
use crate::metadata::{Access, ObjectDef};
use crate::records::{record_id, Filter, Record};

/// The room: rules checked and run on every write, their configuration
/// checked when saved, `workflowRuns`, `emails`, `capturedEmails`.
pub fn register(surface: &mut Surface) {
    surface.on_every_write(written);
    surface.on_write("ValidationRule", validation::rule_written);
    surface.on_write("WorkflowRule", rules::rule_written);
    surface.on_write("EmailTemplate", email::template_written);
    surface.after_promotion(promoted);
    api::register(surface);
}

/// What a write did to a record.
pub use crate::graphql::room::RecordEvent as Event;

/// Whether a write changed a record's values, not just its life state.
fn values_changed(before: &Record, after: &Record) -> bool {
    const BOOKKEEPING: &[&str] = &["deletedAt", "updatedAt", "version"];
    after
        .iter()
        .any(|(key, value)| !BOOKKEEPING.contains(&key.as_str()) && before.get(key) != Some(value))
}

/// A live configuration record just saved (a rule, a template) as its
/// stored row, where its fields are in the request, and the object it
/// names; `None` for a deleted one (nothing to check).
pub fn saved<'m>(
    scope: &CheckScope<'m>,
    record: &Record,
) -> Result<Option<(Json, crate::graphql::input::Path, &'m ObjectDef)>> {
    if deleted(record) {
        return Ok(None);
    }
    let row = validation::stored_row(record);
    let at = crate::graphql::input::Path::from_parts(scope.at);
    let object = rules::object(scope.model, row["object"].as_str().unwrap_or_default(), &at)?;
    Ok(Some((row, at, object)))
}

/// Whether a record is deleted.
pub fn deleted(record: &Record) -> bool {
    crate::records::is_deleted(record)
}

/// Every write of a record: its object's validation rules, then its
/// workflow rules; answers the record as the rules left it.
fn written<'a>(
    conn: &'a mut AsyncPgConnection,
    scope: &'a CheckScope<'a>,
    hooks: &'a RecordHooks,
    object: &'a ObjectDef,
    written: Written<'a>,
) -> BoxFuture<'a, Result<Option<Record>>> {
    Box::pin(async move {
        if object.access != Access::Record {
            return Ok(None);
        }
        // Leads this write rescored (an activity's), taken before its own
        // rules write anything: their scores may have crossed a
        // SCORE_CROSSED rule's threshold.
        let moved = scope.rescored.take();
        let now = react(conn, scope, hooks, object, written, false).await?;
        for (lead, before, after) in moved {
            rescored(conn, scope, hooks, lead, before, after).await?;
        }
        Ok(now)
    })
}

/// The rules of `object` for a write of one of its records: validation,
/// then workflow (only SCORE_CROSSED ones, for `scores_only`).
async fn react(
    conn: &mut AsyncPgConnection,
    scope: &CheckScope<'_>,
    hooks: &RecordHooks,
    object: &ObjectDef,
    written: Written<'_>,
    scores_only: bool,
) -> Result<Option<Record>> {
    let Some(id) = record_id(written.record) else {
        return Ok(None);
    };
    let mut rules = rules::active_in(conn, scope, object).await?;
    if scores_only {
        let workflow = rules
            .workflow
            .iter()
            .filter(|rule| rule.trigger == rules::Trigger::ScoreCrossed)
            .cloned()
            .collect();
        rules = std::sync::Arc::new(rules::Rules {
            validation: Vec::new(),
            workflow,
        });
    }
    if rules.is_empty() {
        return Ok(None);
    }
    let event = Event::of(written);
    // A restore that also changes values (an upsert onto a deleted
    // record) is checked like an update; a plain restore is not.
    let validated = match event {
        Event::Created | Event::Updated => true,
        Event::Restored => written
            .before
            .is_some_and(|before| values_changed(before, written.record)),
        Event::Deleted => false,
    };
    let mut conditions: Vec<Filter> = Vec::new();
    if validated {
        conditions.extend(rules.validation.iter().map(|rule| rule.condition.clone()));
    }
    let candidates = run::candidates(&rules.workflow, object, written, event);
    for candidate in &candidates {
        if let Some(condition) = &candidate.rule.condition {
            conditions.push(condition.clone());
            if candidate.becomes_true {
                conditions.push(Filter::Previous(Box::new(condition.before_write())));
            }
        }
    }
    // Validation answers the update of a rules' pass computed already.
    let kept = validated.then(|| kept_validated(scope, written.record)).flatten();
    if kept.is_some() {
        conditions.drain(..rules.validation.len());
    }
    let hits = evaluate(conn, scope.schema, object, id, written.before, &conditions).await?;
    let mut hits = hits.into_iter();
    if validated {
        let failed: Vec<bool> = match kept {
            Some(kept) => kept,
            None => hits.by_ref().take(rules.validation.len()).collect(),
        };
        validation::enforce(scope, &rules.validation, &failed)?;
    }
    if !scores_only {
        timers::follow(conn, scope.schema, &rules.workflow, id, written, event).await?;
    }
    let mut firing = Vec::new();
    for candidate in candidates {
        let holds = match &candidate.rule.condition {
            None => true,
            Some(_) => {
                let now = hits.next().unwrap_or(false);
                let before = candidate.becomes_true && hits.next().unwrap_or(false);
                now && !before
            }
        };
        if holds {
            firing.push((candidate.rule, run::Start::New));
        }
    }
    if firing.is_empty() {
        return Ok(None);
    }
    run::fire_all(conn, scope, hooks, object, &firing, written.record.clone()).await
}

/// A lead another write rescored from `before` to `after`: its
/// SCORE_CROSSED rules, as if the lead had been written with its score.
async fn rescored(
    conn: &mut AsyncPgConnection,
    scope: &CheckScope<'_>,
    hooks: &RecordHooks,
    lead: Uuid,
    before: i32,
    after: i32,
) -> Result<()> {
    if after <= before {
        return Ok(());
    }
    let Some(object) = scope.model.object("Lead") else {
        return Ok(());
    };
    let table = crate::records::Table::new(scope.schema, object);
    let found = crate::records::get_many(conn, table, &crate::records::FieldSet::all(object), &[lead]).await?;
    let Some(record) = found.get(&lead) else {
        return Ok(());
    };
    let mut was = (**record).clone();
    was.insert("score".into(), Json::from(before));
    let was: Record = std::sync::Arc::new(was);
    let written = Written {
        before: Some(&was),
        record,
    };
    react(conn, scope, hooks, object, written, true).await.map(drop)
}

#[derive(diesel::QueryableByName)]
struct Hits {
    #[diesel(sql_type = Array<Bool>)]
    hits: Vec<bool>,
}

/// Whether each of `conditions` holds for the record `id` as it is now
/// (alias `t`) and was before the write (`tp`, from `before`; all null
/// for a new record), in one statement.
pub async fn evaluate(
    conn: &mut AsyncPgConnection,
    schema: &str,
    object: &ObjectDef,
    id: Uuid,
    before: Option<&Record>,
    conditions: &[Filter],
) -> Result<Vec<bool>> {
    if conditions.is_empty() {
        return Ok(Vec::new());
    }
    let parts = held(schema, conditions);
    let mut query = Sql::raw("SELECT ARRAY[");
    query.join(&parts, ", ").push("]::boolean[] AS hits FROM ");
    query
        .table(schema, &object.table)
        .push(" t LEFT JOIN LATERAL jsonb_populate_record(NULL::");
    query.table(schema, &object.table).push(", ");
    query
        .bind(Bind::Json(before.map(|before| columns_of(object, before))))
        .push(") tp ON true WHERE t.id = ");
    query.bind(Bind::Uuid(Some(id)));
    let rows: Vec<Hits> = query.load(conn).await?;
    Ok(rows
        .into_iter()
        .next()
        .map_or_else(|| vec![false; conditions.len()], |row| row.hits))
}

/// Whether each of `conditions` holds for `record` as a write left it
/// (alias `t`, built from the document, not read from its table: what a
/// later write did is not seen) and as it was before (`tp`).
pub async fn evaluate_record(
    conn: &mut AsyncPgConnection,
    schema: &str,
    object: &ObjectDef,
    record: &Record,
    before: Option<&Record>,
    conditions: &[Filter],
) -> Result<Vec<bool>> {
    if conditions.is_empty() {
        return Ok(Vec::new());
    }
    let parts = held(schema, conditions);
    let mut query = Sql::raw("SELECT ARRAY[");
    query
        .join(&parts, ", ")
        .push("]::boolean[] AS hits FROM jsonb_populate_record(NULL::");
    query.table(schema, &object.table).push(", ");
    query
        .bind(Bind::Json(Some(columns_of(object, record))))
        .push(") t LEFT JOIN LATERAL jsonb_populate_record(NULL::");
    query.table(schema, &object.table).push(", ");
    query
        .bind(Bind::Json(before.map(|before| columns_of(object, before))))
        .push(") tp ON true");
    let rows: Vec<Hits> = query.load(conn).await?;
    Ok(rows
        .into_iter()
        .next()
        .map_or_else(|| vec![false; conditions.len()], |row| row.hits))
}

/// The conditions as one array of booleans on the row `t` as written and
/// the row before it, `tp` (from `before`): an expression for the
/// `RETURNING` of an update of `t`.
pub fn held_before(schema: &str, object: &ObjectDef, before: &Record, conditions: &[Filter]) -> Sql {
    let mut sql = Sql::raw("(SELECT ARRAY[");
    sql.join(&held(schema, conditions), ", ")
        .push("]::boolean[] FROM jsonb_populate_record(NULL::");
    sql.table(schema, &object.table).push(", ");
    sql.bind(Bind::Json(Some(columns_of(object, before)))).push(") tp)");
    sql
}

/// The key validation answers are kept under for a record at a version.
fn validated_key(record: &Record) -> Option<String> {
    let id = record_id(record)?;
    let version = record.get("version")?.as_i64()?;
    Some(format!("validated:{id}:{version}"))
}

/// Keeps what an update's `RETURNING` answered of the validation rules,
/// for the hooks of that write.
pub fn keep_validated(scope: &CheckScope<'_>, record: &Record, hits: Vec<bool>) {
    if let Some(key) = validated_key(record) {
        scope.state.keep(key, std::sync::Arc::new((record.clone(), hits)));
    }
}

/// The kept answers for the record, while it is as they were computed of
/// (a hook before, scoring, may have changed it since).
fn kept_validated(scope: &CheckScope<'_>, record: &Record) -> Option<Vec<bool>> {
    let kept = scope.state.kept(&validated_key(record)?)?;
    let kept = kept.downcast::<(Record, Vec<bool>)>().ok()?;
    (*kept.0 == **record).then(|| kept.1.clone())
}

/// Each condition as a boolean on the row `t` (a null comparison: false).
fn held(schema: &str, conditions: &[Filter]) -> Vec<Sql> {
    conditions
        .iter()
        .map(|condition| {
            let mut part = Sql::raw("coalesce((");
            part.append(&condition.compile(schema, "t")).push("), false)");
            part
        })
        .collect()
}

/// Refuses conditions PostgreSQL cannot run on the object's table (an
/// operator its field's type has not: `contains` on a number), at `at`:
/// checked when a rule is saved, so no write fails for it later. Runs in
/// a savepoint, so a refusal leaves the caller's transaction usable.
pub async fn compiles(
    conn: &mut AsyncPgConnection,
    schema: &str,
    object: &ObjectDef,
    conditions: &[Filter],
    at: &crate::graphql::input::Path,
) -> Result<()> {
    let parts = held(schema, conditions);
    let mut query = Sql::raw("SELECT ");
    query.join(&parts, ", ").push(" FROM ").table(schema, &object.table);
    query.push(" t CROSS JOIN LATERAL (SELECT t.*) tp WHERE false");
    let tried = diesel_async::AsyncConnection::transaction::<_, crate::error::CrmError, _>(conn, async |conn| {
        query.execute(conn).await?;
        Ok(())
    })
    .await;
    match tried {
        Err(err @ (crate::error::CrmError::Unavailable(_) | crate::error::CrmError::Timeout(_))) => Err(err),
        Err(_) => Err(at.error(
            "the condition compares a field in a way its type does not allow (text operators on a number, a list or \
             a date?)",
        )),
        Ok(()) => Ok(()),
    }
}

/// A record document (API names) as its table's columns, for
/// `jsonb_populate_record`.
pub fn columns_of(object: &ObjectDef, record: &Record) -> Json {
    let mut columns = serde_json::Map::new();
    for field in &object.fields {
        if let Some(value) = record.get(&field.value_key()) {
            columns.insert(field.column.clone(), value.clone());
        }
    }
    if let Some(at) = record.get("deletedAt") {
        columns.insert("deleted_at".into(), at.clone());
    }
    Json::Object(columns)
}

/// After a promotion or revert that changed workflow rules: their timers
/// and schedules follow them.
fn promoted<'a>(
    conn: &'a mut AsyncPgConnection,
    schema: &'a str,
    model: &'a crate::metadata::Model,
    changes: &'a [Change],
) -> BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        let ids: Vec<Uuid> = changes
            .iter()
            .filter(|c| c.kind == Kind::WorkflowRule)
            .filter_map(|c| Uuid::parse_str(&c.id).ok())
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        timers::sync(conn, schema, model, &ids).await
    })
}

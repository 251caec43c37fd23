//! The times DATE_OFFSET rules fire at: one timer per rule and record,
//! kept in step with the record's date field by every write (created,
//! moved, removed with the record or the date) and made for existing
//! records when a rule is saved or promoted (for times still to come).
//! A time already past when a record is written fires at once, as
//! Salesforce's time triggers do.

use chrono::{DateTime, NaiveDate, Utc};
use diesel_async::AsyncPgConnection;
use serde_json::Value as Json;
use uuid::Uuid;

use super::rules::{self, Trigger, WorkflowRule};
use super::Event;
use crate::db::sql::{Bind, Sql};
use crate::error::Result;
use crate::graphql::room::Written;
use crate::metadata::{FieldDef, FieldKind, Model};

/// Moves the record's timers with a write of it.
pub async fn follow(
    conn: &mut AsyncPgConnection,
    schema: &str,
    workflow: &[WorkflowRule],
    id: Uuid,
    written: Written<'_>,
    event: Event,
) -> Result<()> {
    for rule in workflow.iter().filter(|r| r.trigger == Trigger::DateOffset) {
        let Some(field) = &rule.date_field else { continue };
        let key = field.value_key();
        let due = match event {
            Event::Deleted => None,
            Event::Updated if written.before.and_then(|b| b.get(&key)) == written.record.get(&key) => continue,
            _ => due(field, written.record.get(&key), rule.offset_minutes),
        };
        set(conn, schema, rule.id, id, due).await?;
    }
    Ok(())
}

/// When a rule fires for a date field's value.
fn due(field: &FieldDef, value: Option<&Json>, offset_minutes: i64) -> Option<DateTime<Utc>> {
    let text = value?.as_str()?;
    let at = match field.kind {
        FieldKind::Date => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()?
            .and_hms_opt(0, 0, 0)?
            .and_utc(),
        _ => DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc),
    };
    at.checked_add_signed(chrono::Duration::minutes(offset_minutes))
}

/// Sets (or, with no time, removes) the timer of a rule and a record.
async fn set(
    conn: &mut AsyncPgConnection,
    schema: &str,
    rule: Uuid,
    record: Uuid,
    due: Option<DateTime<Utc>>,
) -> Result<()> {
    let mut query;
    match due {
        Some(due) => {
            query = Sql::raw("INSERT INTO ");
            query
                .table(schema, "workflow_timer")
                .push(" (rule_id, record_id, due_at) VALUES (");
            query
                .bind(Bind::Uuid(Some(rule)))
                .push(", ")
                .bind(Bind::Uuid(Some(record)));
            query.push(", ").bind(Bind::DateTime(Some(due)));
            query
                .push(") ON CONFLICT (rule_id, record_id) WHERE run_id IS NULL DO UPDATE SET due_at = EXCLUDED.due_at");
        }
        None => {
            query = Sql::raw("DELETE FROM ");
            query
                .table(schema, "workflow_timer")
                .push(" WHERE run_id IS NULL AND rule_id = ");
            query
                .bind(Bind::Uuid(Some(rule)))
                .push(" AND record_id = ")
                .bind(Bind::Uuid(Some(record)));
        }
    }
    query.execute(conn).await?;
    Ok(())
}

/// The SQL of when `rule` fires for the row `t`.
fn due_sql(rule: &WorkflowRule, field: &FieldDef) -> Sql {
    let mut at = Sql::raw("(");
    if field.kind == FieldKind::Date {
        at.push("t.")
            .ident(&field.column)
            .push("::timestamp AT TIME ZONE 'UTC'");
    } else {
        at.push("t.").ident(&field.column);
    }
    at.push(" + make_interval(mins => ")
        .push(&rule.offset_minutes.to_string())
        .push("))");
    at
}

/// Sets the timers of `rule` for the live records of its object that
/// `which` (a condition on `t`) selects and whose time is `when` (a
/// condition on the time, `> now()`, `IS NOT NULL`).
async fn set_for(
    conn: &mut AsyncPgConnection,
    schema: &str,
    model: &Model,
    rule: &WorkflowRule,
    which: &Sql,
    when: &str,
) -> Result<()> {
    let (Some(object), Some(field)) = (model.object(&rule.object), &rule.date_field) else {
        return Ok(());
    };
    let due = due_sql(rule, field);
    let mut query = Sql::raw("INSERT INTO ");
    query
        .table(schema, "workflow_timer")
        .push(" (rule_id, record_id, due_at) SELECT ");
    query.bind(Bind::Uuid(Some(rule.id))).push(", t.id, ").append(&due);
    query
        .push(" FROM ")
        .table(schema, &object.table)
        .push(" t WHERE t.deleted_at IS NULL AND ");
    query.append(which).push(" AND ").append(&due).push(when);
    query.push(" ON CONFLICT (rule_id, record_id) WHERE run_id IS NULL DO UPDATE SET due_at = EXCLUDED.due_at");
    query.execute(conn).await?;
    Ok(())
}

/// Brings the timers of the workflow rules `only` in line with what the
/// rules now say: the timers of rules gone, off or no longer DATE_OFFSET
/// are removed; those of active DATE_OFFSET rules are made again for every
/// live record whose time is still to come.
pub async fn sync(conn: &mut AsyncPgConnection, schema: &str, model: &Model, only: &[Uuid]) -> Result<()> {
    let rules = rules::with_trigger(conn, schema, model, "DATE_OFFSET").await?;
    let mut clear = Sql::raw("DELETE FROM ");
    clear
        .table(schema, "workflow_timer")
        .push(" WHERE run_id IS NULL AND rule_id = ANY(");
    clear.bind(Bind::UuidArray(only.to_vec())).push(")");
    clear.execute(conn).await?;
    for rule in rules.iter().filter(|r| only.contains(&r.id)) {
        set_for(conn, schema, model, rule, &Sql::raw("true"), " > now()").await?;
    }
    Ok(())
}

/// Sets the timers of records an import wrote (`ids`), of every active
/// DATE_OFFSET rule of their object.
pub async fn for_records(
    conn: &mut AsyncPgConnection,
    schema: &str,
    model: &Model,
    object: &str,
    ids: &[Uuid],
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let rules = rules::with_trigger(conn, schema, model, "DATE_OFFSET").await?;
    for rule in rules.iter().filter(|r| r.object == object) {
        let mut which = Sql::raw("t.id = ANY(");
        which.bind(Bind::UuidArray(ids.to_vec())).push(")");
        set_for(conn, schema, model, rule, &which, " IS NOT NULL").await?;
        let (Some(object), Some(field)) = (model.object(&rule.object), &rule.date_field) else {
            continue;
        };
        // A record whose date the import emptied has no time to fire at.
        let due = due_sql(rule, field);
        let mut gone = Sql::raw("DELETE FROM ");
        gone.table(schema, "workflow_timer")
            .push(" w USING ")
            .table(schema, &object.table);
        gone.push(" t WHERE w.run_id IS NULL AND w.rule_id = ")
            .bind(Bind::Uuid(Some(rule.id)));
        gone.push(" AND w.record_id = t.id AND ").append(&which);
        gone.push(" AND ").append(&due).push(" IS NULL");
        gone.execute(conn).await?;
    }
    Ok(())
}

//! Validation rules: a write a rule's error condition holds for is
//! refused with `VALIDATION_FAILED`, the first rule's message at its
//! field's path and every failing rule in `extensions.violations`. A rule
//! saved or promoted counts the existing records it would refuse when
//! next written (the promotion's data impact, the mutation's
//! `extensions.dataImpact`): like Salesforce's, rules do not touch
//! records nobody writes.

use diesel::sql_types::{BigInt, Text};
use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::rules::{self, ValidationRule};
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::graphql::room::{CheckScope, Written};
use crate::metadata::kinds::DataImpact;
use crate::metadata::{Model, ObjectDef};
use crate::records::Record;

/// How many ids of refused records a data impact names.
const SAMPLES: i64 = 5;

/// Refuses the write when a rule failed (`failed[i]` for `rules[i]`).
pub fn enforce(scope: &CheckScope<'_>, rules: &[ValidationRule], failed: &[bool]) -> Result<()> {
    let failing: Vec<&ValidationRule> = rules
        .iter()
        .zip(failed)
        .filter(|(_, failed)| **failed)
        .map(|(rule, _)| rule)
        .collect();
    let Some(first) = failing.first() else {
        return Ok(());
    };
    let path = |rule: &ValidationRule| {
        let mut at = scope.at.to_vec();
        if let Some(field) = &rule.field {
            at.push(field.value_key());
        }
        at
    };
    Err(CrmError::ValidationFailed {
        message: first.message.clone(),
        field: path(first),
        violations: failing
            .iter()
            .map(|rule| {
                json!({
                    "rule": rule.name,
                    "message": rule.message,
                    "field": rule.field.as_ref().map(|f| f.value_key()),
                    "path": path(rule),
                })
            })
            .collect(),
    })
}

/// A rule saved through the API or a promotion must fit the model; it
/// says how many existing records it would refuse.
pub fn rule_written<'a>(
    conn: &'a mut AsyncPgConnection,
    scope: &'a CheckScope<'a>,
    written: Written<'a>,
) -> BoxFuture<'a, Result<Option<Record>>> {
    Box::pin(async move {
        let Some((row, at, object)) = super::saved(scope, written.record)? else {
            return Ok(None);
        };
        let rule = rules::validation(scope.model, object, &row, scope.at)?;
        let condition = std::slice::from_ref(&rule.condition);
        super::compiles(conn, scope.schema, object, condition, &at.at("errorCondition")).await?;
        let active = written.record.get("isActive").and_then(Json::as_bool).unwrap_or(true);
        if active {
            scope.notices.impact(impact(conn, scope.schema, object, &rule).await?);
        }
        Ok(None)
    })
}

/// A configuration record (API names) as its stored row (column names):
/// what the rule parsers read.
pub fn stored_row(record: &Record) -> Json {
    let mut row = serde_json::Map::new();
    let column = |key: &str| -> String {
        let mut out = String::new();
        for ch in key.chars() {
            if ch.is_ascii_uppercase() {
                out.push('_');
                out.push(ch.to_ascii_lowercase());
            } else {
                out.push(ch);
            }
        }
        out
    };
    for (key, value) in record.iter() {
        row.insert(column(key), value.clone());
    }
    Json::Object(row)
}

#[derive(diesel::QueryableByName)]
struct Refused {
    #[diesel(sql_type = BigInt)]
    count: i64,
    #[diesel(sql_type = diesel::sql_types::Array<Text>)]
    samples: Vec<String>,
}

/// How many live records of `object` the rule would refuse if written as
/// they are, with a few of their ids.
pub async fn impact(
    conn: &mut AsyncPgConnection,
    schema: &str,
    object: &ObjectDef,
    rule: &ValidationRule,
) -> Result<DataImpact> {
    let mut query = Sql::raw("SELECT count(*) AS count, coalesce((array_agg(t.id::text ORDER BY t.id))[1:");
    query.push(&SAMPLES.to_string()).push("], '{}') AS samples FROM ");
    // Unchanged since "before": `changed` is false, `previous` is now.
    query
        .table(schema, &object.table)
        .push(" t CROSS JOIN LATERAL (SELECT t.*) tp");
    query.push(" WHERE t.deleted_at IS NULL AND coalesce((");
    query.append(&rule.condition.compile(schema, "t")).push("), false)");
    let rows: Vec<Refused> = query.load(conn).await?;
    let (count, sample_ids) = rows
        .into_iter()
        .next()
        .map_or((0, Vec::new()), |r| (r.count, r.samples));
    Ok(DataImpact {
        message: format!(
            "{count} existing {} record(s) fail validation rule \"{}\": a write of them will be refused until fixed",
            object.name, rule.name
        ),
        path: vec!["errorCondition".into()],
        count: Some(count),
        sample_ids,
        lossy: false,
    })
}

#[derive(diesel::QueryableByName)]
struct ImportRefusal {
    #[diesel(sql_type = BigInt)]
    row_number: i64,
    #[diesel(sql_type = Text)]
    rule: String,
}

/// The rows of an import's batch (`row_number` in `start..end`) whose
/// records, as just written, an active rule of `object` refuses: each
/// row with the first rule (by index in the answer's rules).
pub async fn import_batch(
    conn: &mut AsyncPgConnection,
    schema: &str,
    model: &Model,
    object: &ObjectDef,
    job: Uuid,
    (start, end): (i64, i64),
) -> Result<Vec<(i64, ValidationRule)>> {
    let rules = rules::active(conn, schema, model, object).await?.validation;
    if rules.is_empty() {
        return Ok(Vec::new());
    }
    let mut cases = Sql::raw("CASE");
    for (i, rule) in rules.iter().enumerate() {
        cases
            .push(" WHEN coalesce((")
            .append(&rule.condition.compile(schema, "t"));
        cases.push("), false) THEN '").push(&i.to_string()).push("'");
    }
    cases.push(" END");
    let mut query = Sql::raw("SELECT r.row_number, ");
    query.append(&cases).push(" AS rule FROM ");
    query.table(schema, "import_record").push(" r JOIN ");
    query.table(schema, &object.table).push(" t ON t.id = r.record_id");
    // What an updated record was: its row with the columns it had before.
    query.push(" LEFT JOIN LATERAL jsonb_populate_record(t, r.before) tp ON NOT r.created");
    query.push(" WHERE r.job_id = ").bind(Bind::Uuid(Some(job)));
    query
        .push(" AND r.object IS NULL AND r.row_number >= ")
        .push(&start.to_string());
    query.push(" AND r.row_number < ").push(&end.to_string());
    query
        .push(" AND (")
        .append(&cases)
        .push(") IS NOT NULL ORDER BY r.row_number");
    let refused: Vec<ImportRefusal> = query.load(conn).await?;
    Ok(refused
        .into_iter()
        .filter_map(|r| {
            let rule = rules.get(r.rule.parse::<usize>().ok()?)?;
            Some((r.row_number, rule.clone()))
        })
        .collect())
}

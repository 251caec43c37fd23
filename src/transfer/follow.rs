//! What follows each batch an import writes, as it would follow a write
//! of each record: validation rules check the batch as written (a refused
//! row is taken out and the batch written again without it, or, with
//! `onError: ABORT`, the import fails), the timers of DATE_OFFSET rules
//! are set for the records written, and leads are scored. Record-event
//! workflow rules (created, updated …) do not fire for imported rows, as
//! with Salesforce's import wizard: a file of ten thousand leads does not
//! send ten thousand welcome emails. Their record events are appended
//! (`webhooks::imported`): webhook receivers and live subscribers hear
//! of every imported record.

use diesel::sql_types::Uuid as SqlUuid;
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::job::RowError;
use super::mapping::Plan;
use super::Target;
use crate::automation::{timers, validation};
use crate::db::sql::{Bind, Sql};
use crate::error::Result;
use crate::metadata::ObjectDef;

/// The rows of the batch `start..end` validation rules refuse, as the
/// error file lists them (code VALIDATION_FAILED, at the rule's field's
/// column).
pub async fn refused(
    conn: &mut AsyncPgConnection,
    target: &Target,
    object: &ObjectDef,
    plan: &Plan,
    job: Uuid,
    (start, end): (i64, i64),
) -> Result<Vec<RowError>> {
    let refused = validation::import_batch(conn, &target.schema, &target.model, object, job, (start, end)).await?;
    Ok(refused
        .into_iter()
        .map(|(row, rule)| {
            let column = rule.field.as_ref().and_then(|field| {
                let staged = plan.staged.iter().find(|s| s.field.name == field.name)?;
                plan.columns.get(staged.column?).map(|c| c.header.clone())
            });
            RowError {
                row_number: row,
                column_name: column,
                value: None,
                code: "VALIDATION_FAILED".into(),
                message: format!("{} (validation rule \"{}\")", rule.message, rule.name),
                warning: false,
            }
        })
        .collect())
}

/// Takes refused rows out of what is written.
pub async fn exclude(conn: &mut AsyncPgConnection, rows: &[RowError]) -> Result<()> {
    let numbers: Vec<String> = rows.iter().map(|r| r.row_number.to_string()).collect();
    let mut query = Sql::raw("UPDATE ");
    query
        .push(super::checks::ROWS)
        .push(" SET failed = true WHERE row_number = ANY(");
    query.bind(Bind::TextArray(Some(numbers))).push("::bigint[])");
    query.execute(conn).await?;
    Ok(())
}

/// Sets the DATE_OFFSET timers of the records the batch wrote.
pub async fn timers(
    conn: &mut AsyncPgConnection,
    target: &Target,
    object: &ObjectDef,
    job: Uuid,
    (start, end): (i64, i64),
) -> Result<()> {
    let mut query = Sql::raw("SELECT record_id AS id FROM ");
    query.table(&target.schema, "import_record").push(" WHERE job_id = ");
    query.bind(Bind::Uuid(Some(job)));
    query
        .push(" AND object IS NULL AND row_number >= ")
        .push(&start.to_string());
    query.push(" AND row_number < ").push(&end.to_string());
    let ids = crate::records::ids(conn, query).await?;
    timers::for_records(conn, &target.schema, &target.model, &object.name, &ids).await
}

#[derive(diesel::QueryableByName)]
struct Id {
    #[diesel(sql_type = SqlUuid)]
    record_id: Uuid,
}

/// Scores the leads the batch wrote, as a write of each would.
pub async fn rescore(
    conn: &mut AsyncPgConnection,
    target: &Target,
    object: &ObjectDef,
    job: Uuid,
    start: i64,
    end: i64,
) -> Result<()> {
    // The batch's leads, or the leads its activities are about (now and before).
    let mut query = Sql::new();
    if object.name == "Lead" {
        query.push("SELECT r.record_id FROM ");
        query.table(&target.schema, "import_record").push(" r");
    } else {
        query.push("SELECT DISTINCT l.lead AS record_id FROM ");
        query.table(&target.schema, "import_record").push(" r JOIN ");
        query
            .table(&target.schema, &object.table)
            .push(" t ON t.id = r.record_id");
        query.push(", LATERAL (VALUES (t.lead_id), ((r.before->>'lead_id')::uuid)) AS l(lead)");
    }
    query.push(" WHERE r.job_id = ").bind(Bind::Uuid(Some(job)));
    query
        .push(" AND r.row_number >= ")
        .bind(Bind::Text(Some(start.to_string())));
    query
        .push("::bigint AND r.row_number < ")
        .bind(Bind::Text(Some(end.to_string())))
        .push("::bigint");
    if object.name != "Lead" {
        query.push(" AND l.lead IS NOT NULL");
    }
    let ids: Vec<Id> = query.load(conn).await?;
    let ids: Vec<Uuid> = ids.into_iter().map(|r| r.record_id).collect();
    if ids.is_empty() {
        return Ok(());
    }
    if object.name == "Lead" {
        crate::leads::rescore_locked(conn, &target.schema, &target.model, &ids).await?;
    } else {
        crate::leads::rescore(conn, &target.schema, &target.model, &ids).await?;
    }
    Ok(())
}

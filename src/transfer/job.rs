//! Import jobs as stored: created before a file is read, updated with its
//! progress while it runs, finished with its outcome. A job whose import
//! died with its server (nobody holds its lock any more) reads as
//! `INTERRUPTED`.

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Bool, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::AsyncPgConnection;
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::mapping::Plan;
use super::{Options, Target};
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::metadata::ObjectDef;

/// An import job.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct Job {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub created_by: Option<Uuid>,
    #[diesel(sql_type = Text)]
    pub object: String,
    #[diesel(sql_type = Text)]
    pub format: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub file_name: Option<String>,
    #[diesel(sql_type = Text)]
    pub mode: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub match_on: Option<String>,
    #[diesel(sql_type = Text)]
    pub on_error: String,
    #[diesel(sql_type = Bool)]
    pub dry_run: bool,
    #[diesel(sql_type = Jsonb)]
    pub options: Json,
    #[diesel(sql_type = Jsonb)]
    pub mapping: Json,
    #[diesel(sql_type = Text)]
    pub state: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub message: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub rows_read: i64,
    #[diesel(sql_type = BigInt)]
    pub rows_created: i64,
    #[diesel(sql_type = BigInt)]
    pub rows_updated: i64,
    #[diesel(sql_type = BigInt)]
    pub rows_unchanged: i64,
    #[diesel(sql_type = BigInt)]
    pub rows_failed: i64,
    #[diesel(sql_type = BigInt)]
    pub warnings: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub committed_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub finished_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub reverted_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, created_at, created_by, object, format, file_name, mode, match_on, on_error, dry_run, \
     options, mapping, state, message, rows_read, rows_created, rows_updated, rows_unchanged, rows_failed, \
     warnings, committed_at, finished_at, reverted_at";

/// The key of the session lock a running import holds on its job.
pub fn lock_key(id: Uuid) -> Sql {
    let mut sql = Sql::raw("hashtextextended(");
    sql.bind(Bind::Text(Some(format!("import:{id}")))).push(", 0)");
    sql
}

/// What an import ends with, as its job records it.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub read: i64,
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub failed: i64,
    pub warnings: i64,
}

/// How an import ended.
#[derive(Debug)]
pub struct Outcome {
    pub succeeded: bool,
    pub message: Option<String>,
    pub counts: Counts,
    /// The job was finished inside the import's transaction (committed
    /// with its records); nothing more to record.
    pub recorded: bool,
}

/// Records a new running job `id`.
pub async fn create(target: &Target, id: Uuid, object: &ObjectDef, options: &Options, plan: &Plan) -> Result<Job> {
    let mapping: Vec<Json> = plan
        .columns
        .iter()
        .map(|c| json!({ "column": c.index, "header": c.header, "field": c.field.as_ref().map(|f| f.name.clone()), "note": c.note }))
        .collect();
    let stored_options = json!({
        "defaults": options.defaults,
        "dateFormat": options.formats.date,
        "decimalComma": options.formats.decimal_comma,
        "delimiter": options.delimiter.map(|d| (d as char).to_string()),
        "encoding": options.encoding.map(|e| e.as_str()),
    });
    let match_on = plan
        .key
        .map(|k| plan.staged[k].field.name.clone())
        .or_else(|| plan.match_rule.clone());
    let mut query = Sql::raw("INSERT INTO ");
    query.table(&target.schema, "import_job").push(
        " (id, created_by, object, format, file_name, mode, match_on, on_error, dry_run, options, mapping) VALUES (",
    );
    query
        .binds([
            Bind::Uuid(Some(id)),
            Bind::Uuid(Some(target.actor.user_id)),
            Bind::Text(Some(object.name.clone())),
            Bind::Text(Some(options.format.into())),
            Bind::Text(options.file_name.clone()),
            Bind::Text(Some(options.mode.as_str().into())),
            Bind::Text(match_on),
            Bind::Text(Some(options.on_error.as_str().into())),
            Bind::Bool(Some(options.dry_run)),
            Bind::Json(Some(stored_options)),
            Bind::Json(Some(Json::Array(mapping))),
        ])
        .push(") RETURNING ")
        .push(COLUMNS);
    let mut conn = target.db.conn().await?;
    let mut rows: Vec<Job> = query.load(&mut conn).await?;
    rows.pop()
        .ok_or_else(|| CrmError::internal("an inserted import job was not returned"))
}

/// Where job `id` of `workspace` (`production` or a sandbox's name) has its
/// error file, under the server's address.
pub fn error_file_path(workspace: &str, id: Uuid) -> String {
    match workspace {
        "production" => format!("/imports/{id}/errors.csv"),
        sandbox => format!("/sandboxes/{sandbox}/imports/{id}/errors.csv"),
    }
}

/// Writes the counters of a running job.
pub async fn progress(target: &Target, id: Uuid, counts: &Counts) -> Result<()> {
    let mut conn = target.db.conn().await?;
    let mut query = Sql::raw("UPDATE ");
    query.table(&target.schema, "import_job").push(" SET ");
    set_counts(&mut query, counts);
    query
        .push(" WHERE id = ")
        .bind(Bind::Uuid(Some(id)))
        .push(" AND state = 'RUNNING'");
    query.execute(&mut conn).await?;
    Ok(())
}

fn set_counts(query: &mut Sql, counts: &Counts) {
    query
        .push("rows_read = ")
        .bind(Bind::Text(Some(counts.read.to_string())));
    query
        .push("::bigint, rows_created = ")
        .bind(Bind::Text(Some(counts.created.to_string())));
    query
        .push("::bigint, rows_updated = ")
        .bind(Bind::Text(Some(counts.updated.to_string())));
    query
        .push("::bigint, rows_unchanged = ")
        .bind(Bind::Text(Some(counts.unchanged.to_string())));
    query
        .push("::bigint, rows_failed = ")
        .bind(Bind::Text(Some(counts.failed.to_string())));
    query
        .push("::bigint, warnings = ")
        .bind(Bind::Text(Some(counts.warnings.to_string())));
    query.push("::bigint");
}

/// The statement that finishes job `id` with `outcome` (run inside the
/// import's transaction when it commits records).
pub fn finishing(schema: &str, id: Uuid, outcome: &Outcome, committed: bool) -> Sql {
    let mut query = Sql::raw("UPDATE ");
    query.table(schema, "import_job").push(" SET state = ");
    query.bind(Bind::Text(Some(
        if outcome.succeeded { "SUCCEEDED" } else { "FAILED" }.into(),
    )));
    query.push(", message = ").bind(Bind::Text(outcome.message.clone()));
    query.push(", finished_at = clock_timestamp(), ");
    set_counts(&mut query, &outcome.counts);
    if committed {
        query.push(", committed_at = now()");
    }
    query.push(" WHERE id = ").bind(Bind::Uuid(Some(id)));
    query
}

/// Records how job `id` ended (unless its transaction did) and answers it.
pub async fn finish(target: &Target, id: Uuid, outcome: Result<Outcome>) -> Result<Job> {
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(err) => {
            let message = match &err {
                CrmError::Internal { .. } => {
                    "the import failed on a database error; nothing of it was written".to_owned()
                }
                other => format!("{other}; nothing of it was written"),
            };
            let failed = Outcome {
                succeeded: false,
                message: Some(message),
                counts: Counts::default(),
                recorded: false,
            };
            let mut conn = target.db.conn().await?;
            finishing(&target.schema, id, &failed, false).execute(&mut conn).await?;
            if matches!(err, CrmError::Internal { .. }) {
                tracing::error!(job = %id, "import failed: {err}");
            }
            return get(&mut conn, &target.schema, id)
                .await?
                .ok_or_else(|| CrmError::not_found("ImportJob", id.to_string()));
        }
    };
    let mut conn = target.db.conn().await?;
    if !outcome.recorded {
        finishing(&target.schema, id, &outcome, false)
            .execute(&mut conn)
            .await?;
    }
    get(&mut conn, &target.schema, id)
        .await?
        .ok_or_else(|| CrmError::not_found("ImportJob", id.to_string()))
}

/// Job `id`, if there is one; a running job nobody works on any more (its
/// server stopped) is marked `INTERRUPTED` first.
pub async fn get(conn: &mut AsyncPgConnection, schema: &str, id: Uuid) -> Result<Option<Job>> {
    let mut query = Sql::raw("SELECT ");
    query.push(COLUMNS).push(" FROM ").table(schema, "import_job");
    query.push(" WHERE id = ").bind(Bind::Uuid(Some(id)));
    let mut rows: Vec<Job> = query.load(conn).await?;
    let Some(job) = rows.pop() else {
        return Ok(None);
    };
    if job.state == "RUNNING" && abandoned(conn, id).await? {
        let mut mark = Sql::raw("UPDATE ");
        mark.table(schema, "import_job").push(
            " SET state = 'INTERRUPTED', finished_at = clock_timestamp(), \
             message = 'the server stopped during the import; nothing of it was written' WHERE id = ",
        );
        mark.bind(Bind::Uuid(Some(id))).push(" AND state = 'RUNNING'");
        mark.execute(conn).await?;
        return Box::pin(get(conn, schema, id)).await;
    }
    Ok(Some(job))
}

#[derive(diesel::QueryableByName)]
struct Got {
    #[diesel(sql_type = Bool)]
    got: bool,
}

/// Whether nobody holds the lock of running job `id`.
async fn abandoned(conn: &mut AsyncPgConnection, id: Uuid) -> Result<bool> {
    let mut query = Sql::raw("SELECT pg_try_advisory_lock(");
    query.append(&lock_key(id)).push(") AS got");
    let got: Vec<Got> = query.load(conn).await?;
    let free = got.first().is_some_and(|g| g.got);
    if free {
        let mut unlock = Sql::raw("SELECT pg_advisory_unlock(");
        unlock.append(&lock_key(id)).push(") AS got");
        let _: Vec<Got> = unlock.load(conn).await?;
    }
    Ok(free)
}

/// The newest jobs first (of one user, when named), after job `after`.
pub async fn list(
    conn: &mut AsyncPgConnection,
    schema: &str,
    first: usize,
    after: Option<Uuid>,
    created_by: Option<Uuid>,
) -> Result<Vec<Job>> {
    let mut query = Sql::raw("SELECT j.id FROM ");
    query.table(schema, "import_job").push(" j WHERE true");
    if let Some(after) = after {
        query.push(" AND (j.created_at, j.id) < (SELECT a.created_at, a.id FROM ");
        query
            .table(schema, "import_job")
            .push(" a WHERE a.id = ")
            .bind(Bind::Uuid(Some(after)))
            .push(")");
    }
    if let Some(user) = created_by {
        query.push(" AND j.created_by = ").bind(Bind::Uuid(Some(user)));
    }
    query.push(" ORDER BY j.created_at DESC, j.id DESC LIMIT ");
    query.push(&first.to_string());
    let ids = crate::records::ids(conn, query).await?;
    let mut jobs = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(job) = get(conn, schema, id).await? {
            jobs.push(job);
        }
    }
    Ok(jobs)
}

/// A refused row (or a warning about one), as the error file lists it.
#[derive(Debug, Clone, serde::Serialize, diesel::QueryableByName)]
pub struct RowError {
    #[diesel(sql_type = BigInt)]
    pub row_number: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub column_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub value: Option<String>,
    #[diesel(sql_type = Text)]
    pub code: String,
    #[diesel(sql_type = Text)]
    pub message: String,
    #[diesel(sql_type = Bool)]
    pub warning: bool,
}

/// Appends refused rows to job `id`'s error file (its own statement,
/// kept whatever becomes of the import).
pub async fn add_errors(target: &Target, id: Uuid, errors: &[RowError]) -> Result<()> {
    if errors.is_empty() {
        return Ok(());
    }
    let rows = serde_json::to_value(errors).map_err(|e| CrmError::internal(format_args!("{e}")))?;
    let mut query = Sql::raw("INSERT INTO ");
    query
        .table(&target.schema, "import_error")
        .push(" (job_id, row_number, column_name, value, code, message, warning) SELECT ");
    query
        .bind(Bind::Uuid(Some(id)))
        .push(", r.row_number, r.column_name, r.value, r.code, r.message, r.warning FROM jsonb_to_recordset(");
    query
        .bind(Bind::Json(Some(rows)))
        .push(") AS r(row_number bigint, column_name text, value text, code text, message text, warning boolean)");
    let mut conn = target.db.conn().await?;
    query.execute(&mut conn).await?;
    Ok(())
}

/// Job `id`'s error file after row `after` (a whole row's errors), in row order.
pub async fn errors(
    conn: &mut AsyncPgConnection,
    schema: &str,
    id: Uuid,
    after: Option<i64>,
    limit: Option<usize>,
) -> Result<Vec<RowError>> {
    let page = errors_after(conn, schema, id, after.map(|row| (row, i64::MAX)), limit).await?;
    Ok(page.into_iter().map(|(_, error)| error).collect())
}

#[derive(diesel::QueryableByName)]
struct Numbered {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(embed)]
    error: RowError,
}

/// Job `id`'s errors after `(row, id)`, with their ids: the pages of a
/// whole error file.
pub async fn errors_after(
    conn: &mut AsyncPgConnection,
    schema: &str,
    id: Uuid,
    after: Option<(i64, i64)>,
    limit: Option<usize>,
) -> Result<Vec<(i64, RowError)>> {
    let mut query = Sql::raw("SELECT id, row_number, column_name, value, code, message, warning FROM ");
    query
        .table(schema, "import_error")
        .push(" WHERE job_id = ")
        .bind(Bind::Uuid(Some(id)));
    if let Some((row, error)) = after {
        query
            .push(" AND (row_number, id) > (")
            .bind(Bind::Text(Some(row.to_string())));
        query
            .push("::bigint, ")
            .bind(Bind::Text(Some(error.to_string())))
            .push("::bigint)");
    }
    query.push(" ORDER BY row_number, id");
    if let Some(limit) = limit {
        query.push(" LIMIT ").push(&limit.to_string());
    }
    let rows: Vec<Numbered> = query.load(conn).await?;
    Ok(rows.into_iter().map(|r| (r.id, r.error)).collect())
}

//! The GraphQL surface of imports: `importJobs`, `importJob`,
//! `importColumns` (what an import would fill from a file's header, shown
//! before running it) and `revertImport`. Files themselves are uploaded
//! over HTTP (`POST /imports`), exports downloaded from `GET /exports/…`.

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputValue, Object, TypeRef};
use async_graphql::Value;
use uuid::Uuid;

use super::job::{self, Job, RowError};
use super::revert::{self, Reverted};
use super::{mapping, Target};
use crate::auth::Role;
use crate::error::{CrmError, Result};
use crate::graphql::input::{self, Path};
use crate::graphql::resolve::{arg, context, first_arg, id_arg, resolved, text_arg, timestamp, RequestContext};
use crate::graphql::room::Surface;

/// Adds the import queries, the revert mutation and their types.
pub fn register(surface: &mut Surface) {
    surface.object(job_type());
    surface.object(status_type());
    surface.object(column_type());
    surface.object(row_error_type());
    surface.object(revert_type());
    surface.queries(
        &["importJobs", "importJob", "importColumns"],
        vec![jobs_field(), job_field(), mapping_field()],
    );
    surface.mutations(vec![revert_field()]);
    surface.on_write("ImportMapping", super::saved::check);
}

/// Where a request's import work runs, and as whom.
pub fn target(context: &RequestContext) -> Target {
    Target {
        db: context.db.clone(),
        schema: context.schema.to_string(),
        model: context.model.clone(),
        actor: context.actor.clone(),
        visibility: context.visibility.clone(),
        trail: context.trail.clone(),
    }
}

/// Admins see every job; others their own.
fn own_jobs(context: &RequestContext) -> Option<Uuid> {
    (context.actor.role != Role::Admin).then_some(context.actor.user_id)
}

fn jobs_field() -> Field {
    Field::new("importJobs", TypeRef::named_nn_list_nn("ImportJob"), |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            let first = first_arg(&ctx, 20, 100)?;
            let after = match arg(&ctx, "after") {
                None | Some(Value::Null) => None,
                Some(Value::String(text)) => Some(input::parse_id(text, &Path::root("after"))?),
                Some(_) => return Err(CrmError::bad_input(&["after"], "after must be an import job's id")),
            };
            let mut conn = context.db.conn().await?;
            let jobs = job::list(&mut conn, &context.schema, first, after, own_jobs(context)).await?;
            Ok(Some(FieldValue::list(jobs.into_iter().map(FieldValue::owned_any))))
        })
    })
    .description("Import jobs, newest first: all of them for admins, one's own for others.")
    .argument(InputValue::new("first", TypeRef::named(TypeRef::INT)).description("How many (default 20, at most 100)."))
    .argument(InputValue::new("after", TypeRef::named(TypeRef::ID)).description("The jobs older than this job."))
}

fn job_field() -> Field {
    Field::new("importJob", TypeRef::named("ImportJob"), |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            let id = id_arg(&ctx)?;
            let mut conn = context.db.conn().await?;
            let job = job::get(&mut conn, &context.schema, id).await?;
            let mine = |job: &Job| own_jobs(context).is_none_or(|user| job.created_by == Some(user));
            Ok(job.filter(mine).map(FieldValue::owned_any))
        })
    })
    .description("An import job, with its progress while it runs; null when there is none (of yours).")
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)).description("The job."))
}

fn mapping_field() -> Field {
    Field::new("importColumns", TypeRef::named_nn_list_nn("ImportColumn"), |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            let object = target(context).object(&text_arg(&ctx, "object")?)?.clone();
            let headers: Vec<String> = match arg(&ctx, "headers") {
                Some(Value::List(items)) => items
                    .iter()
                    .map(|item| match item {
                        Value::String(text) => Ok(text.clone()),
                        _ => Err(CrmError::bad_input(&["headers"], "headers are strings")),
                    })
                    .collect::<Result<_>>()?,
                _ => return Err(CrmError::bad_input(&["headers"], "headers is required")),
            };
            let columns = mapping::guess(&object, &headers);
            Ok(Some(FieldValue::list(columns.into_iter().map(|c| {
                FieldValue::owned_any(Column {
                    index: c.index,
                    header: c.header,
                    field: c.field.map(|f| f.name),
                    note: c.note,
                })
            }))))
        })
    })
    .description(
        "The fields an import would fill from a file with these column headers, guessed from the fields' API \
         names and labels: check it before importing, and name what it guesses wrong in the import's mapping.",
    )
    .argument(
        InputValue::new("object", TypeRef::named_nn(TypeRef::STRING))
            .description("The object to import into: `Contact` (or `contacts`)."),
    )
    .argument(
        InputValue::new("headers", TypeRef::named_nn_list_nn(TypeRef::STRING))
            .description("The file's first line, split into its columns."),
    )
}

fn revert_field() -> Field {
    Field::new("revertImport", TypeRef::named_nn("ImportRevert"), |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            let id = id_arg(&ctx)?;
            let dry_run = matches!(arg(&ctx, "dryRun"), Some(Value::Boolean(true)));
            let mut conn = context.db.conn().await?;
            let found = job::get(&mut conn, &context.schema, id).await?;
            drop(conn);
            if found.is_none_or(|job| own_jobs(context).is_some_and(|user| job.created_by != Some(user))) {
                return Err(CrmError::not_found("ImportJob", id.to_string()));
            }
            let reverted = revert::revert(&target(context), id, dry_run).await?;
            Ok(Some(FieldValue::owned_any(reverted)))
        })
    })
    .description(
        "Undoes an import: deletes the records it created and gives those it changed their values back, in one \
         transaction — while every one of them is as the import left it (CONFLICT otherwise). Audited.",
    )
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)).description("The import job."))
    .argument(
        InputValue::new("dryRun", TypeRef::named(TypeRef::BOOLEAN)).description("Check and count, change nothing."),
    )
}

fn of<T: 'static + Send + Sync>(name: &str, type_ref: TypeRef, get: fn(&T) -> Option<Value>) -> Field {
    Field::new(name, type_ref, move |ctx| {
        let value = ctx.parent_value.try_downcast_ref::<T>();
        FieldFuture::from_value(value.ok().and_then(get))
    })
}

fn text(value: &str) -> Option<Value> {
    Some(Value::String(value.to_owned()))
}

fn job_type() -> Object {
    Object::new("ImportJob")
        .description("An import of a file into one object: its options, progress and outcome.")
        .field(of::<Job>("id", TypeRef::named_nn(TypeRef::ID), |j| text(&j.id.to_string())).description("The job."))
        .field(of::<Job>("object", TypeRef::named_nn(TypeRef::STRING), |j| text(&j.object)).description("The object imported into."))
        .field(of::<Job>("format", TypeRef::named_nn(TypeRef::STRING), |j| text(&j.format)).description("`CSV`."))
        .field(of::<Job>("fileName", TypeRef::named(TypeRef::STRING), |j| j.file_name.as_deref().and_then(text)).description("The file's name, when the upload or the command line gave it."))
        .field(of::<Job>("mode", TypeRef::named_nn(TypeRef::STRING), |j| text(&j.mode)).description("`CREATE`, `UPSERT` or `UPDATE`."))
        .field(of::<Job>("matchOn", TypeRef::named(TypeRef::STRING), |j| j.match_on.as_deref().and_then(text)).description("The field rows find records by (UPSERT, UPDATE)."))
        .field(of::<Job>("onError", TypeRef::named_nn(TypeRef::STRING), |j| text(&j.on_error)).description("`SKIP` bad rows or `ABORT` the import."))
        .field(of::<Job>("dryRun", TypeRef::named_nn(TypeRef::BOOLEAN), |j| Some(Value::from(j.dry_run))).description("Checked only: nothing was written."))
        .field(
            Field::new("status", TypeRef::named_nn("ImportStatus"), |ctx| {
                resolved(async move {
                    let job = ctx.parent_value.try_downcast_ref::<Job>()?;
                    Ok(Some(FieldValue::owned_any(job.clone())))
                })
            })
            .description("Where it stands: its state and counts, updated while it runs."),
        )
        .field(of::<Job>("message", TypeRef::named(TypeRef::STRING), |j| j.message.as_deref().and_then(text)).description("Its outcome in words."))
        .field(
            Field::new("mapping", TypeRef::named_nn_list_nn("ImportColumn"), |ctx| {
                resolved(async move {
                    let job = ctx.parent_value.try_downcast_ref::<Job>()?;
                    let columns: Vec<Column> = serde_json::from_value(job.mapping.clone()).unwrap_or_default();
                    Ok(Some(FieldValue::list(columns.into_iter().map(FieldValue::owned_any))))
                })
            })
            .description("Which column filled which field."),
        )
        .field(
            Field::new("errors", TypeRef::named_nn_list_nn("ImportRowError"), |ctx| {
                resolved(async move {
                    let job = ctx.parent_value.try_downcast_ref::<Job>()?;
                    let context = context(&ctx)?;
                    let first = first_arg(&ctx, 100, 1000)?;
                    let after = match arg(&ctx, "afterRow") {
                        Some(Value::Number(n)) => n.as_i64(),
                        _ => None,
                    };
                    let mut conn = context.db.conn().await?;
                    let errors = job::errors(&mut conn, &context.schema, job.id, after, Some(first)).await?;
                    Ok(Some(FieldValue::list(errors.into_iter().map(FieldValue::owned_any))))
                })
            })
            .description("Its error file: the refused rows (and warnings), in row order. All of it as CSV: errorFileUrl.")
            .argument(InputValue::new("first", TypeRef::named(TypeRef::INT)).description("How many (default 100, at most 1000)."))
            .argument(InputValue::new("afterRow", TypeRef::named(TypeRef::INT)).description("Those of rows after this one.")),
        )
        .field(
            Field::new("errorFileUrl", TypeRef::named_nn(TypeRef::STRING), |ctx| {
                resolved(async move {
                    let job = ctx.parent_value.try_downcast_ref::<Job>()?;
                    let context = context(&ctx)?;
                    let base = context.base_url.clone().unwrap_or_default();
                    let path = job::error_file_path(&context.trail.workspace, job.id);
                    Ok(Some(FieldValue::value(Value::String(format!("{base}{path}")))))
                })
            })
            .description("Where to download its error file as CSV (row, column, value, code, message, warning), with your token."),
        )
        .field(of::<Job>("createdAt", TypeRef::named_nn("DateTime"), |j| Some(timestamp(j.created_at))).description("When it started."))
        .field(of::<Job>("createdById", TypeRef::named(TypeRef::ID), |j| j.created_by.map(|id| Value::String(id.to_string()))).description("Who ran it."))
        .field(of::<Job>("finishedAt", TypeRef::named("DateTime"), |j| j.finished_at.map(timestamp)).description("When it ended; null while it runs."))
        .field(of::<Job>("revertedAt", TypeRef::named("DateTime"), |j| j.reverted_at.map(timestamp)).description("When revertImport undid it."))
}

fn status_type() -> Object {
    Object::new("ImportStatus")
        .description("Where an import stands.")
        .field(of::<Job>("state", TypeRef::named_nn(TypeRef::STRING), |j| text(&j.state)).description(
            "`RUNNING`, `SUCCEEDED`, `FAILED` (nothing written), `INTERRUPTED` (its server stopped; nothing written) or `REVERTED`.",
        ))
        .field(of::<Job>("rowsRead", TypeRef::named_nn(TypeRef::INT), |j| Some(Value::from(j.rows_read))).description("Rows of the file read so far (the header aside)."))
        .field(of::<Job>("rowsImported", TypeRef::named_nn(TypeRef::INT), |j| Some(Value::from(j.rows_created + j.rows_updated))).description("Records created or changed."))
        .field(of::<Job>("rowsCreated", TypeRef::named_nn(TypeRef::INT), |j| Some(Value::from(j.rows_created))).description("New records."))
        .field(of::<Job>("rowsUpdated", TypeRef::named_nn(TypeRef::INT), |j| Some(Value::from(j.rows_updated))).description("Records changed."))
        .field(of::<Job>("rowsUnchanged", TypeRef::named_nn(TypeRef::INT), |j| Some(Value::from(j.rows_unchanged))).description("Rows matching a record that already had their values."))
        .field(of::<Job>("rowsFailed", TypeRef::named_nn(TypeRef::INT), |j| Some(Value::from(j.rows_failed))).description("Rows refused: see the error file."))
        .field(of::<Job>("warnings", TypeRef::named_nn(TypeRef::INT), |j| Some(Value::from(j.warnings))).description("Rows imported with a warning (a duplicate rule's WARN)."))
}

/// A column of a file and the field it fills, as the API shows it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
struct Column {
    #[serde(rename = "column")]
    index: usize,
    header: String,
    field: Option<String>,
    #[serde(default)]
    note: String,
}

fn column_type() -> Object {
    Object::new("ImportColumn")
        .description("A column of a file and the field it fills.")
        .field(
            of::<Column>("column", TypeRef::named_nn(TypeRef::INT), |c| {
                Some(Value::from(c.index as i64))
            })
            .description("Its position, from 0."),
        )
        .field(
            of::<Column>("header", TypeRef::named_nn(TypeRef::STRING), |c| text(&c.header))
                .description("Its header in the file."),
        )
        .field(
            of::<Column>("field", TypeRef::named(TypeRef::STRING), |c| {
                c.field.as_deref().and_then(text)
            })
            .description("The field's API name; null: the column is ignored."),
        )
        .field(
            of::<Column>("note", TypeRef::named_nn(TypeRef::STRING), |c| text(&c.note))
                .description("How the field was chosen, or why none was."),
        )
}

fn row_error_type() -> Object {
    Object::new("ImportRowError")
        .description("A row an import refused (or imported with a warning).")
        .field(of::<RowError>("row", TypeRef::named_nn(TypeRef::INT), |e| Some(Value::from(e.row_number))).description("Its line in the file, the header being row 1."))
        .field(of::<RowError>("column", TypeRef::named(TypeRef::STRING), |e| e.column_name.as_deref().and_then(text)).description("The header of the column at fault, if one is."))
        .field(of::<RowError>("value", TypeRef::named(TypeRef::STRING), |e| e.value.as_deref().and_then(text)).description("The cell as the file has it (its first 500 characters)."))
        .field(of::<RowError>("code", TypeRef::named_nn(TypeRef::STRING), |e| text(&e.code)).description(
            "`INVALID_VALUE`, `REQUIRED`, `NOT_FOUND`, `AMBIGUOUS`, `UNIQUE`, `DUPLICATE`, `DUPLICATE_IN_FILE`, `FORBIDDEN`, `ENCODING` or `MALFORMED`.",
        ))
        .field(of::<RowError>("message", TypeRef::named_nn(TypeRef::STRING), |e| text(&e.message)).description("What is wrong, for people."))
        .field(of::<RowError>("warning", TypeRef::named_nn(TypeRef::BOOLEAN), |e| Some(Value::from(e.warning))).description("Imported all the same."))
}

fn revert_type() -> Object {
    Object::new("ImportRevert")
        .description("What reverting an import did (or, dry, would do).")
        .field(
            Field::new("job", TypeRef::named_nn("ImportJob"), |ctx| {
                resolved(async move {
                    let reverted = ctx.parent_value.try_downcast_ref::<Reverted>()?;
                    Ok(Some(FieldValue::owned_any(reverted.job.clone())))
                })
            })
            .description("The import, now REVERTED (unless dry)."),
        )
        .field(
            of::<Reverted>("recordsDeleted", TypeRef::named_nn(TypeRef::INT), |r| {
                Some(Value::from(r.deleted))
            })
            .description("Records it had created."),
        )
        .field(
            of::<Reverted>("recordsRestored", TypeRef::named_nn(TypeRef::INT), |r| {
                Some(Value::from(r.restored))
            })
            .description("Records it had changed, given their values back."),
        )
        .field(
            of::<Reverted>("dryRun", TypeRef::named_nn(TypeRef::BOOLEAN), |r| {
                Some(Value::from(r.dry_run))
            })
            .description("Nothing was changed: this is what it would do."),
        )
}

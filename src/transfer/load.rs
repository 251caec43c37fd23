//! Running an import: rows read and checked on a blocking thread, staged
//! by `COPY` as they come, checked across the file, then written a batch
//! per statement in one transaction that also finishes the job, so the
//! records and the job's success commit together or not at all.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::Value as Json;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::cells::{self, cast, Formats};
use super::checks::{count, Checks, ROWS};
use super::follow;
use super::job::{self, Counts, Outcome, RowError};
use super::mapping::Plan;
use super::progress::{Phase, Progress};
use super::reader::Opened;
use super::staging::{self, Row, Session};
use super::{Mode, OnError, Options, Target};
use crate::audit::{self, Action, Change, Entry};
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::metadata::ObjectDef;

/// Rows handed from the reading thread at a time.
const CHUNK: usize = 1_000;
/// Rows written per statement.
const BATCH: i64 = 20_000;
/// How often a running job's counters are written for others to read.
const TICK: Duration = Duration::from_millis(500);

/// What the reading thread hands over.
enum Parsed {
    Rows(Vec<Row>),
    Errors(Vec<RowError>),
}

/// Reads, stages, checks and writes the file; see the module.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    target: &Target,
    object: &ObjectDef,
    options: &Options,
    plan: &Plan,
    opened: Opened,
    job: Uuid,
    session: Session,
    progress: Arc<Progress>,
    // The import's connection, kept (with the job's lock) by the caller
    // until the job is finished.
    keep: &mut Option<super::staging::Held>,
) -> Result<Outcome> {
    let started = Instant::now();
    session.create(plan).await?;
    let cell_failures = stage(target, plan, options, opened, job, &session, &progress).await?;
    session.staged().await?;
    let staged = started.elapsed();
    let conn = &mut keep.insert(session.into_diesel().await?).0;
    progress.set_phase(Phase::Checking);
    let found = Checks {
        conn: &mut *conn,
        target,
        object,
        plan,
        mode: options.mode,
        job,
        create_missing: &options.create_missing,
    }
    .run()
    .await?;
    let checked = started.elapsed() - staged;
    let mut counts = Counts {
        read: progress.read() as i64,
        failed: cell_failures + found.failed,
        warnings: found.warnings,
        ..Counts::default()
    };
    progress.rows_failed.store(counts.failed as u64, Ordering::Relaxed);
    if options.on_error == OnError::Abort && counts.failed > 0 {
        return Ok(Outcome {
            succeeded: false,
            message: Some(format!(
                "{} of {} rows failed their checks; nothing was imported (onError: ABORT). See the error file.",
                counts.failed, counts.read
            )),
            counts,
            recorded: false,
        });
    }
    job::progress(target, job, &counts).await?;
    progress.set_phase(Phase::Writing);
    let (written, matched) = write(conn, target, object, options, plan, job, &counts, &progress).await?;
    tracing::info!(
        %job,
        rows = counts.read,
        read_and_staged_ms = staged.as_millis() as u64,
        checked_ms = checked.as_millis() as u64,
        written_ms = (started.elapsed() - staged - checked).as_millis() as u64,
        "import"
    );
    counts.created = written.created;
    counts.updated = written.updated;
    counts.failed = written.failed;
    counts.unchanged = matched - written.updated;
    let succeeded = options.dry_run || written.recorded;
    Ok(Outcome {
        succeeded,
        message: summary(&counts, options.dry_run),
        counts,
        recorded: written.recorded,
    })
}

fn summary(counts: &Counts, dry_run: bool) -> Option<String> {
    let done = format!(
        "{} created, {} updated, {} unchanged, {} failed",
        counts.created, counts.updated, counts.unchanged, counts.failed
    );
    Some(if dry_run {
        format!("dry run: {done}; nothing was written")
    } else {
        done
    })
}

/// Reads every row on a blocking thread and stages those whose cells pass;
/// answers how many rows failed there (listed in the error file).
async fn stage(
    target: &Target,
    plan: &Plan,
    options: &Options,
    opened: Opened,
    job: Uuid,
    session: &Session,
    progress: &Arc<Progress>,
) -> Result<i64> {
    let (sender, mut receiver) = mpsc::channel::<Parsed>(4);
    let reading = {
        let (plan, mode, formats, progress) = (plan.clone(), options.mode, options.formats.clone(), progress.clone());
        tokio::task::spawn_blocking(move || read(opened, &plan, mode, &formats, &sender, &progress))
    };
    let mut writer = session.copy(plan).await?;
    let mut failed = 0i64;
    let mut ticked = Instant::now();
    while let Some(parsed) = receiver.recv().await {
        match parsed {
            Parsed::Rows(rows) => {
                for row in &rows {
                    staging::write(&mut writer, row).await?;
                }
            }
            Parsed::Errors(errors) => {
                failed += errors
                    .iter()
                    .map(|e| e.row_number)
                    .collect::<std::collections::HashSet<_>>()
                    .len() as i64;
                job::add_errors(target, job, &errors).await?;
            }
        }
        if ticked.elapsed() >= TICK {
            ticked = Instant::now();
            let counts = Counts {
                read: progress.read() as i64,
                failed: progress.failed() as i64,
                ..Counts::default()
            };
            job::progress(target, job, &counts).await?;
        }
    }
    staging::finish(&mut writer).await?;
    reading
        .await
        .map_err(|err| CrmError::internal(format_args!("the reading thread failed: {err}")))??;
    Ok(failed)
}

/// The reading thread: each record's cells checked and staged.
fn read(
    opened: Opened,
    plan: &Plan,
    mode: Mode,
    formats: &Formats,
    sender: &mpsc::Sender<Parsed>,
    progress: &Progress,
) -> Result<()> {
    let mut records = opened.records;
    let guard = opened.guard;
    // vCards: a card's row is its number in the file (plus the header's).
    let unreadable = opened
        .vcard
        .then(|| opened.headers.iter().position(|h| h == super::vcard::UNREADABLE))
        .flatten();
    let mut cards = 1i64;
    let mut record = csv::ByteRecord::new();
    let (mut rows, mut errors) = (Vec::with_capacity(CHUNK), Vec::new());
    let mut number = 1i64;
    loop {
        guard.record_at(records.position().byte());
        match records.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(err) if err.is_io_error() => {
                return Err(CrmError::bad_input(
                    &["file"],
                    format!("the file could not be read: {err}"),
                ))
            }
            Err(err) => {
                number = err.position().map_or(number + 1, |p| p.line() as i64);
                progress.rows_read.fetch_add(1, Ordering::Relaxed);
                progress.rows_failed.fetch_add(1, Ordering::Relaxed);
                errors.push(row_error(number, None, None, "MALFORMED", err.to_string()));
                continue;
            }
        }
        // The record's line in the file (a quoted value may span lines).
        number = record.position().map_or(number + 1, |p| p.line() as i64);
        if let Some(column) = unreadable {
            cards += 1;
            number = cards;
            let why = record.get(column).map(String::from_utf8_lossy).unwrap_or_default();
            if !why.is_empty() {
                progress.rows_read.fetch_add(1, Ordering::Relaxed);
                progress.rows_failed.fetch_add(1, Ordering::Relaxed);
                errors.push(row_error(number, None, None, "MALFORMED", why.into_owned()));
                continue;
            }
        }
        if record.iter().all(|cell| cell.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        progress.rows_read.fetch_add(1, Ordering::Relaxed);
        let before = errors.len();
        let values = cells_of(&record, number, plan, mode, formats, &mut errors);
        if errors.len() == before {
            rows.push((number, values));
        } else {
            progress.rows_failed.fetch_add(1, Ordering::Relaxed);
        }
        if rows.len() >= CHUNK || errors.len() >= CHUNK {
            let sent = send(sender, &mut rows, &mut errors);
            if !sent {
                return Ok(());
            }
        }
    }
    send(sender, &mut rows, &mut errors);
    Ok(())
}

/// Hands rows and errors over; false when nobody takes them any more
/// (the import stopped).
fn send(sender: &mpsc::Sender<Parsed>, rows: &mut Vec<Row>, errors: &mut Vec<RowError>) -> bool {
    if !errors.is_empty() && sender.blocking_send(Parsed::Errors(std::mem::take(errors))).is_err() {
        return false;
    }
    if !rows.is_empty() {
        let chunk = std::mem::replace(rows, Vec::with_capacity(CHUNK));
        return sender.blocking_send(Parsed::Rows(chunk)).is_ok();
    }
    true
}

fn row_error(row: i64, column: Option<&str>, value: Option<&str>, code: &str, message: String) -> RowError {
    RowError {
        row_number: row,
        column_name: column.map(str::to_owned),
        value: value.map(|v| v.chars().take(500).collect()),
        code: code.to_owned(),
        message,
        warning: false,
    }
}

/// The staged values of one record; its refused cells go to `errors`.
fn cells_of(
    record: &csv::ByteRecord,
    number: i64,
    plan: &Plan,
    mode: Mode,
    formats: &Formats,
    errors: &mut Vec<RowError>,
) -> Vec<Option<String>> {
    let mut values = Vec::with_capacity(plan.staged.len());
    for (i, staged) in plan.staged.iter().enumerate() {
        let header = staged
            .column
            .and_then(|c| plan.columns.get(c))
            .map(|c| c.header.as_str());
        let raw = staged.column.and_then(|c| record.get(c)).unwrap_or_default();
        let Ok(text) = std::str::from_utf8(raw) else {
            let lossy = String::from_utf8_lossy(raw);
            errors.push(row_error(
                number,
                header,
                Some(&lossy),
                "ENCODING",
                "not UTF-8 text: name the file's encoding (LATIN1)".into(),
            ));
            values.push(None);
            continue;
        };
        let value = if text.trim().is_empty() {
            staged.default.clone()
        } else {
            match cells::staged(&staged.field, text, formats) {
                Ok(value) => Some(value),
                Err(err) => {
                    errors.push(row_error(number, header, Some(text), err.code, err.message));
                    None
                }
            }
        };
        let missing = value.is_none()
            && errors
                .last()
                .is_none_or(|e| e.row_number != number || e.column_name.as_deref() != header);
        if missing && plan.key == Some(i) {
            errors.push(row_error(
                number,
                header,
                None,
                "REQUIRED",
                format!("{} finds the record to change: it cannot be empty", staged.field.name),
            ));
        } else if missing && mode == Mode::Create && staged.field.required_on_create() && staged.fallback.is_none() {
            errors.push(row_error(
                number,
                header,
                None,
                "REQUIRED",
                format!("{} is required", staged.field.label),
            ));
        }
        values.push(value);
    }
    values
}

/// What the write did.
struct Written {
    created: i64,
    updated: i64,
    /// Rows failed, validation rules' refusals at write time included.
    failed: i64,
    /// The job was finished in the committed transaction.
    recorded: bool,
}

/// Writes the checked rows in one transaction, a batch per statement; a
/// dry run rolls it back. Answers what was written and how many rows
/// matched a record.
#[allow(clippy::too_many_arguments)]
async fn write(
    conn: &mut AsyncPgConnection,
    target: &Target,
    object: &ObjectDef,
    options: &Options,
    plan: &Plan,
    job: Uuid,
    counts: &Counts,
    progress: &Progress,
) -> Result<(Written, i64)> {
    let mut matched = 0;
    let mut rehearsed = None;
    let mut failed = counts.failed;
    let done = conn
        .transaction::<_, CrmError, _>(async |conn| {
            audit::act_as(conn, &target.trail).await?;
            create_missing(conn, target, plan, options, job).await?;
            let (mut created, mut updated) = (0, 0);
            let highest = highest_row(conn).await?;
            let mut start = 0;
            while start <= highest {
                let end = start + BATCH;
                let (batch_updated, batch_created, refused) =
                    batch(conn, target, object, options, plan, job, (start, end), progress).await?;
                failed += refused;
                updated += batch_updated;
                created += batch_created;
                follow::timers(conn, target, object, job, (start, end)).await?;
                if matches!(object.name.as_str(), "Lead" | "Activity") {
                    follow::rescore(conn, target, object, job, start, end).await?;
                }
                // After scoring: the events carry the records as they stand.
                let actor = target.trail.actor.as_ref().map(|actor| actor.user_id);
                crate::webhooks::imported(conn, &target.schema, object, actor, job, (start, end)).await?;
                progress
                    .rows_written
                    .store((created + updated) as u64, Ordering::Relaxed);
                job::progress(
                    target,
                    job,
                    &Counts {
                        created,
                        updated,
                        failed,
                        ..counts.clone()
                    },
                )
                .await?;
                start = end;
            }
            // Rows validation rules refused are no longer matched.
            matched = count(conn, "NOT s.failed AND s.target IS NOT NULL").await?;
            let outcome = Outcome {
                succeeded: true,
                message: None,
                counts: Counts {
                    created,
                    updated,
                    unchanged: matched - updated,
                    failed,
                    ..counts.clone()
                },
                recorded: true,
            };
            if options.dry_run {
                rehearsed = Some((created, updated));
                return Err(CrmError::Conflict("dry run".into()));
            }
            audit::append(conn, &target.trail, &[entry(object, job, &outcome.counts)]).await?;
            let outcome = Outcome {
                message: summary(&outcome.counts, false),
                ..outcome
            };
            job::finishing(&target.schema, job, &outcome, true)
                .execute(conn)
                .await?;
            Ok((created, updated))
        })
        .await;
    let (created, updated, recorded) = match (rehearsed, done) {
        (Some((created, updated)), _) => (created, updated, false),
        (None, Ok((created, updated))) => (created, updated, true),
        (None, Err(err)) => return Err(err),
    };
    Ok((
        Written {
            created,
            updated,
            failed,
            recorded,
        },
        matched,
    ))
}

/// Writes the batch `start..end`, then checks it by validation rules:
/// refused rows are taken out (listed in the error file) and the batch
/// written again without them; with `onError: ABORT` the import fails.
/// Answers how many records it updated and created, and rows it refused.
#[allow(clippy::too_many_arguments)]
async fn batch(
    conn: &mut AsyncPgConnection,
    target: &Target,
    object: &ObjectDef,
    options: &Options,
    plan: &Plan,
    job: Uuid,
    (start, end): (i64, i64),
    progress: &Progress,
) -> Result<(i64, i64, i64)> {
    let mut failed = 0;
    loop {
        let mut refused = Vec::new();
        let tried = conn
            .transaction::<_, CrmError, _>(async |conn| {
                let mut written = (0, 0);
                if options.mode != Mode::Create {
                    written.0 = update_batch(conn, target, object, plan, options.mode, job, start, end).await?;
                }
                if options.mode != Mode::Update {
                    written.1 = insert_batch(conn, target, object, plan, job, start, end).await?;
                }
                refused = follow::refused(conn, target, object, plan, job, (start, end)).await?;
                if refused.is_empty() {
                    Ok(written)
                } else {
                    Err(CrmError::Conflict("refused by validation rules".into()))
                }
            })
            .await;
        if refused.is_empty() {
            let (updated, created) = tried?;
            return Ok((updated, created, failed));
        }
        job::add_errors(target, job, &refused).await?;
        failed += refused.len() as i64;
        progress.rows_failed.fetch_add(refused.len() as u64, Ordering::Relaxed);
        if options.on_error == OnError::Abort {
            return Err(CrmError::Conflict(format!(
                "row {}: {}; nothing was imported (onError: ABORT). See the error file.",
                refused[0].row_number, refused[0].message
            )));
        }
        follow::exclude(conn, &refused).await?;
    }
}

/// Makes the records rows name by a name no record has, for the lookups
/// the options say so of (one per name, any case), owned by the actor
/// and recorded as the import's, and points the rows at them.
async fn create_missing(
    conn: &mut AsyncPgConnection,
    target: &Target,
    plan: &Plan,
    options: &Options,
    job: Uuid,
) -> Result<()> {
    for (i, staged) in plan.staged.iter().enumerate() {
        let Some(lookup) = staged.field.lookup() else { continue };
        if !options.create_missing.contains(&staged.field.name) {
            continue;
        }
        let Some(related) = target.model.object(&lookup.target) else {
            continue;
        };
        let Some(name) = related.field("name") else { continue };
        let actor = Bind::Uuid(Some(target.actor.user_id));
        let mut query = Sql::raw(&format!(
            "WITH names AS MATERIALIZED (SELECT DISTINCT ON (lower(s.c{i})) s.c{i} AS name, s.row_number, \
             gen_random_uuid() AS id FROM {ROWS} s WHERE NOT s.failed AND s.l{i} IS NULL AND s.c{i} IS NOT NULL \
             ORDER BY lower(s.c{i}), s.row_number), made AS (INSERT INTO "
        ));
        query
            .table(&target.schema, &related.table)
            .push(" (id, ")
            .ident(&name.column);
        let mut values = Sql::raw("SELECT n.id, n.name");
        for owned in ["owner", "createdBy"] {
            if let Some(field) = related.field(owned) {
                query.push(", ").ident(&field.column);
                values.push(", ").bind(actor.clone());
            }
        }
        query
            .push(") ")
            .append(&values)
            .push(" FROM names n), recorded AS (INSERT INTO ");
        query
            .table(&target.schema, "import_record")
            .push(" (job_id, record_id, row_number, created, object) SELECT ");
        query.bind(Bind::Uuid(Some(job))).push(", n.id, n.row_number, true, ");
        query.bind(Bind::Text(Some(related.name.clone())));
        query.push(&format!(
            " FROM names n) UPDATE {ROWS} s SET l{i} = n.id FROM names n \
             WHERE lower(s.c{i}) = lower(n.name) AND s.l{i} IS NULL AND NOT s.failed"
        ));
        query.execute(conn).await?;
    }
    Ok(())
}

fn entry(object: &ObjectDef, job: Uuid, counts: &Counts) -> Entry {
    let change = |field: &str, n: i64| Change {
        field: field.to_owned(),
        before: Json::Null,
        after: Json::from(n),
    };
    Entry {
        object: object.name.clone(),
        record_id: Some(job),
        action: Action::Import,
        changes: vec![
            change("rowsCreated", counts.created),
            change("rowsUpdated", counts.updated),
            change("rowsFailed", counts.failed),
        ],
    }
}

#[derive(diesel::QueryableByName)]
struct Number {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn highest_row(conn: &mut AsyncPgConnection) -> Result<i64> {
    let rows: Vec<Number> = Sql::raw(&format!("SELECT coalesce(max(row_number), 0) AS n FROM {ROWS}"))
        .load(conn)
        .await?;
    Ok(rows.first().map_or(0, |r| r.n))
}

/// `src`: the batch's checked rows that change (`target`) or create records.
fn batch_rows(start: i64, end: i64, changing: bool) -> Sql {
    let mut sql = Sql::raw(&format!(
        "src AS (SELECT * FROM {ROWS} s WHERE NOT s.failed AND s.{} IS NOT NULL AND s.row_number >= ",
        if changing { "target" } else { "new_id" }
    ));
    sql.bind(Bind::Text(Some(start.to_string())))
        .push("::bigint AND s.row_number < ");
    sql.bind(Bind::Text(Some(end.to_string()))).push("::bigint)");
    sql
}

/// The value staged field `i` takes from row `src`.
fn value(plan: &Plan, i: usize) -> Sql {
    let field = &plan.staged[i].field;
    if field.lookup().is_some() {
        Sql::raw(&format!("src.l{i}"))
    } else {
        Sql::raw(&format!("src.c{i}::{}", cast(field)))
    }
}

/// Changes the batch's matched records where a value differs; keeps each
/// one's values before in `import_record`. Answers how many changed.
#[allow(clippy::too_many_arguments)]
async fn update_batch(
    conn: &mut AsyncPgConnection,
    target: &Target,
    object: &ObjectDef,
    plan: &Plan,
    mode: Mode,
    job: Uuid,
    start: i64,
    end: i64,
) -> Result<i64> {
    let fields: Vec<usize> = (0..plan.staged.len()).filter(|i| Some(*i) != plan.key).collect();
    let restore = mode == Mode::Upsert;
    if fields.is_empty() && !restore {
        return Ok(0);
    }
    // The batch's records locked in id order, as concurrent batch
    // mutations lock theirs, so the two cannot deadlock.
    let mut lock = Sql::raw("WITH ");
    lock.append(&batch_rows(start, end, true)).push(" SELECT t.id FROM ");
    lock.table(&target.schema, &object.table)
        .push(" t JOIN src ON t.id = src.target ORDER BY t.id FOR UPDATE OF t");
    lock.execute(conn).await?;
    let mut query = Sql::raw("WITH ");
    query.append(&batch_rows(start, end, true));
    query.push(", old AS (SELECT x.id, jsonb_build_object('deleted_at', x.deleted_at, 'version', x.version");
    for &i in &fields {
        let column = &plan.staged[i].field.column;
        query
            .push(", ")
            .bind(Bind::Text(Some(column.clone())))
            .push(", x.")
            .ident(column);
    }
    query.push(") AS doc FROM ").table(&target.schema, &object.table);
    query.push(" x JOIN src ON x.id = src.target), changed AS (UPDATE ");
    query.table(&target.schema, &object.table).push(" t SET ");
    let mut news: Vec<Sql> = Vec::new();
    for &i in &fields {
        let column = &plan.staged[i].field.column;
        let mut new = Sql::raw("coalesce(");
        new.append(&value(plan, i)).push(", t.").ident(column).push(")");
        query.ident(column).push(" = ").append(&new).push(", ");
        news.push(new);
    }
    if restore {
        query.push("deleted_at = NULL, ");
    }
    // Still a record the actor may change (it may have been deleted or
    // hidden from them since the checks).
    let table = crate::records::Table::new(&target.schema, object).restricted(&target.visibility);
    query.push("version = t.version + 1, updated_at = now() FROM src WHERE t.id = src.target AND ");
    query.append(&table.rows(restore, "t")).push(" AND (");
    if !fields.is_empty() {
        query.push("ROW(");
        for (n, &i) in fields.iter().enumerate() {
            if n > 0 {
                query.push(", ");
            }
            query.push("t.").ident(&plan.staged[i].field.column);
        }
        query.push(") IS DISTINCT FROM ROW(").join(&news, ", ").push(")");
        if restore {
            query.push(" OR ");
        }
    }
    if restore {
        query.push("t.deleted_at IS NOT NULL");
    }
    query.push(") RETURNING t.id, src.row_number) INSERT INTO ");
    query
        .table(&target.schema, "import_record")
        .push(" (job_id, record_id, row_number, created, before) SELECT ");
    query
        .bind(Bind::Uuid(Some(job)))
        .push(", changed.id, changed.row_number, false, old.doc FROM changed JOIN old ON old.id = changed.id");
    Ok(query.execute(conn).await? as i64)
}

/// Creates the batch's new records (owned by the actor unless the file
/// names an owner), each recorded in `import_record`. Answers how many.
async fn insert_batch(
    conn: &mut AsyncPgConnection,
    target: &Target,
    object: &ObjectDef,
    plan: &Plan,
    job: Uuid,
    start: i64,
    end: i64,
) -> Result<i64> {
    let mut columns = vec![Sql::raw("id")];
    let mut values = vec![Sql::raw("src.new_id")];
    for (i, staged) in plan.staged.iter().enumerate() {
        if plan.key == Some(i) && staged.field.kind == crate::metadata::FieldKind::Id {
            continue;
        }
        let mut column = Sql::new();
        column.ident(&staged.field.column);
        columns.push(column);
        let mut new = value(plan, i);
        if matches!(staged.field.name.as_str(), "owner" | "createdBy") {
            // An empty owner cell: the actor, as without the column.
            let mut with = Sql::raw("coalesce(");
            with.append(&new)
                .push(", ")
                .bind(Bind::Uuid(Some(target.actor.user_id)))
                .push(")");
            new = with;
        } else if let Some(fallback) = &staged.fallback {
            let mut with = Sql::raw("coalesce(");
            with.append(&new).push(", ").bind(Bind::Text(Some(fallback.clone())));
            with.push("::").push(cast(&staged.field)).push(")");
            new = with;
        }
        values.push(new);
    }
    let actor = Bind::Uuid(Some(target.actor.user_id));
    for name in ["createdBy", "owner"] {
        let Some(field) = object.field(name) else { continue };
        if plan.position(name).is_some() {
            continue;
        }
        let mut column = Sql::new();
        column.ident(&field.column);
        columns.push(column);
        let mut value = Sql::new();
        value.bind(actor.clone());
        values.push(value);
    }
    let mut query = Sql::raw("WITH ");
    query.append(&batch_rows(start, end, false));
    query
        .push(", created AS (INSERT INTO ")
        .table(&target.schema, &object.table);
    query
        .push(" (")
        .join(&columns, ", ")
        .push(") SELECT ")
        .join(&values, ", ");
    query.push(" FROM src ORDER BY src.row_number) INSERT INTO ");
    query
        .table(&target.schema, "import_record")
        .push(" (job_id, record_id, row_number, created) SELECT ");
    query
        .bind(Bind::Uuid(Some(job)))
        .push(", src.new_id, src.row_number, true FROM src");
    Ok(query.execute(conn).await? as i64)
}

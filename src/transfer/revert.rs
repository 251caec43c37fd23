//! Undoing an import: the records it created are deleted (with the
//! history the server kept of them), those it changed get their values
//! back, in one transaction, while every one of them is as the import
//! left it (its `updatedAt` is the import's commit time).

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{BigInt, Text, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::Value as Json;
use uuid::Uuid;

use super::job::{self, Job};
use super::Target;
use crate::access::{self, Operation};
use crate::audit::{self, Action, Change, Entry};
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::metadata::{Access, ObjectDef};

/// What a revert did (or, dry, would do).
#[derive(Debug, Clone)]
pub struct Reverted {
    pub job: Job,
    pub deleted: i64,
    pub restored: i64,
    pub dry_run: bool,
}

/// Reverts import `id` (or rehearses it, `dry_run`).
pub async fn revert(target: &Target, id: Uuid, dry_run: bool) -> Result<Reverted> {
    let mut conn = target.db.conn().await?;
    let found = job::get(&mut conn, &target.schema, id)
        .await?
        .ok_or_else(|| CrmError::not_found("ImportJob", id.to_string()))?;
    let object = target.object(&found.object)?.clone();
    access::require(&target.actor, &object, Operation::Delete)?;
    access::require(&target.actor, &object, Operation::Update)?;
    drop(conn);
    // A large import's revert outlasts a pooled connection's statement timeout.
    let (mut conn, _slot) = super::staging::diesel_connection(&target.db).await?;
    let mut rehearsed = None;
    let done = conn
        .transaction::<_, CrmError, _>(async |conn| {
            audit::act_as(conn, &target.trail).await?;
            let job = lock(conn, target, id).await?;
            let committed = job
                .committed_at
                .ok_or_else(|| CrmError::Conflict("the import wrote nothing".into()))?;
            // Records of other objects it made (accounts named by vCards)
            // go after its own, which refer to them.
            let others = made_elsewhere(conn, target, id).await?;
            unchanged_since(conn, target, &object, id, committed, None).await?;
            for other in &others {
                unchanged_since(conn, target, other, id, committed, Some(&other.name)).await?;
            }
            // Changed records first: they may refer to records it made.
            let restored = restore_updated(conn, target, &object, id).await?;
            let mut deleted = delete_created(conn, target, &object, id, None).await?;
            for other in &others {
                deleted += delete_created(conn, target, other, id, Some(&other.name)).await?;
            }
            if dry_run {
                rehearsed = Some((deleted, restored));
                return Err(CrmError::Conflict("dry run".into()));
            }
            let mut mark = Sql::raw("UPDATE ");
            mark.table(&target.schema, "import_job")
                .push(" SET state = 'REVERTED', reverted_at = now(), reverted_by = ");
            mark.bind(Bind::Uuid(Some(target.actor.user_id)))
                .push(" WHERE id = ")
                .bind(Bind::Uuid(Some(id)));
            mark.execute(conn).await?;
            let change = |field: &str, n: i64| Change {
                field: field.to_owned(),
                before: Json::Null,
                after: Json::from(n),
            };
            let entry = Entry {
                object: object.name.clone(),
                record_id: Some(id),
                action: Action::RevertImport,
                changes: vec![change("recordsDeleted", deleted), change("recordsRestored", restored)],
            };
            audit::append(conn, &target.trail, &[entry]).await?;
            Ok((deleted, restored))
        })
        .await;
    let (deleted, restored) = match (rehearsed, done) {
        (Some(counts), _) => counts,
        (None, result) => result?,
    };
    let job = job::get(&mut conn, &target.schema, id)
        .await?
        .ok_or_else(|| CrmError::not_found("ImportJob", id.to_string()))?;
    Ok(Reverted {
        job,
        deleted,
        restored,
        dry_run,
    })
}

/// The job, locked: only a finished, real import is reverted, once.
async fn lock(conn: &mut AsyncPgConnection, target: &Target, id: Uuid) -> Result<Job> {
    let mut query = Sql::raw("SELECT id FROM ");
    query
        .table(&target.schema, "import_job")
        .push(" WHERE id = ")
        .bind(Bind::Uuid(Some(id)));
    query.push(" FOR UPDATE");
    crate::records::ids(conn, query).await?;
    let job = job::get(conn, &target.schema, id)
        .await?
        .ok_or_else(|| CrmError::not_found("ImportJob", id.to_string()))?;
    match (job.state.as_str(), job.dry_run) {
        (_, true) => Err(CrmError::Conflict("a dry run wrote nothing to revert".into())),
        ("SUCCEEDED", false) => Ok(job),
        ("REVERTED", false) => Err(CrmError::Conflict("this import was reverted already".into())),
        (state, false) => Err(CrmError::Conflict(format!(
            "only a finished import is reverted; this one is {state} (a failed or interrupted import wrote nothing)"
        ))),
    }
}

#[derive(diesel::QueryableByName)]
struct Changed {
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Text)]
    sample: String,
}

/// Refuses the revert when a record the import wrote changed since (or
/// is gone): reverting would undo someone else's work.
async fn unchanged_since(
    conn: &mut AsyncPgConnection,
    target: &Target,
    object: &ObjectDef,
    id: Uuid,
    committed: chrono::DateTime<chrono::Utc>,
    other: Option<&str>,
) -> Result<()> {
    let mut query = Sql::raw("SELECT count(*) AS n, coalesce(string_agg(r.record_id::text, ', ') FILTER (WHERE r.rn <= 3), '') AS sample FROM (SELECT r.record_id, row_number() OVER () AS rn FROM ");
    query.table(&target.schema, "import_record").push(" r LEFT JOIN ");
    query
        .table(&target.schema, &object.table)
        .push(" t ON t.id = r.record_id WHERE r.job_id = ");
    query.bind(Bind::Uuid(Some(id))).append(&of_object(other));
    query.push(" AND (t.id IS NULL OR t.updated_at <> ");
    query.bind(Bind::DateTime(Some(committed))).push(")) r");
    // Lock what is reverted, so nobody changes it meanwhile.
    let mut lock = Sql::raw("SELECT t.id FROM ");
    lock.table(&target.schema, &object.table).push(" t JOIN ");
    lock.table(&target.schema, "import_record")
        .push(" r ON r.record_id = t.id WHERE r.job_id = ");
    lock.bind(Bind::Uuid(Some(id)))
        .append(&of_object(other))
        .push(" FOR UPDATE OF t");
    lock.execute(conn).await?;
    let changed: Vec<Changed> = query.load(conn).await?;
    match changed.first() {
        Some(changed) if changed.n > 0 => Err(CrmError::Conflict(format!(
            "{} record(s) the import wrote changed since (such as {}): the import can no longer be reverted",
            changed.n, changed.sample
        ))),
        _ => Ok(()),
    }
}

/// Deletes the records the import created, and the history the server
/// kept of them; refuses when other records refer to them since.
async fn delete_created(
    conn: &mut AsyncPgConnection,
    target: &Target,
    object: &ObjectDef,
    id: Uuid,
    other: Option<&str>,
) -> Result<i64> {
    let created = |sql: &mut Sql| {
        sql.push(" IN (SELECT r.record_id FROM ");
        sql.table(&target.schema, "import_record").push(" r WHERE r.job_id = ");
        sql.bind(Bind::Uuid(Some(id)))
            .append(&of_object(other))
            .push(" AND r.created)");
    };
    for relation in target.model.inverse_relations(&object.name) {
        if relation.child.access != Access::History || relation.child.schema.is_some() {
            continue;
        }
        let mut history = Sql::raw("DELETE FROM ");
        history.table(&target.schema, &relation.child.table).push(" WHERE ");
        history.ident(&relation.lookup.column);
        created(&mut history);
        history.execute(conn).await?;
    }
    let mut query = Sql::raw("DELETE FROM ");
    query.table(&target.schema, &object.table).push(" WHERE id");
    created(&mut query);
    match query.execute(conn).await {
        Ok(n) => Ok(n as i64),
        Err(DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _)) => Err(CrmError::Conflict(
            "other records refer to records this import created since: the import can no longer be reverted".into(),
        )),
        Err(err) => Err(err.into()),
    }
}

/// ` AND r.object …`: the import's records of its own object, or of another.
fn of_object(other: Option<&str>) -> Sql {
    match other {
        None => Sql::raw(" AND r.object IS NULL"),
        Some(name) => {
            let mut sql = Sql::raw(" AND r.object = ");
            sql.bind(Bind::Text(Some(name.to_owned())));
            sql
        }
    }
}

/// The other objects whose records the import made.
async fn made_elsewhere(
    conn: &mut AsyncPgConnection,
    target: &Target,
    id: Uuid,
) -> Result<Vec<std::sync::Arc<ObjectDef>>> {
    let mut query = Sql::raw("SELECT DISTINCT object AS key FROM ");
    query.table(&target.schema, "import_record").push(" WHERE job_id = ");
    query.bind(Bind::Uuid(Some(id))).push(" AND object IS NOT NULL");
    let names: Vec<Key> = query.load(conn).await?;
    Ok(names
        .into_iter()
        .filter_map(|k| target.model.object(&k.key).cloned())
        .collect())
}

#[derive(diesel::QueryableByName)]
struct Key {
    #[diesel(sql_type = Text)]
    key: String,
}

#[derive(diesel::QueryableByName)]
struct RecordId {
    #[diesel(sql_type = SqlUuid)]
    record_id: Uuid,
}

/// Gives the records the import changed their values back.
async fn restore_updated(conn: &mut AsyncPgConnection, target: &Target, object: &ObjectDef, id: Uuid) -> Result<i64> {
    let mut keys = Sql::raw("SELECT DISTINCT jsonb_object_keys(before) AS key FROM ");
    keys.table(&target.schema, "import_record").push(" WHERE job_id = ");
    keys.bind(Bind::Uuid(Some(id)))
        .push(" AND NOT created AND object IS NULL");
    let keys: Vec<Key> = keys.load(conn).await?;
    let columns: Vec<String> = keys
        .into_iter()
        .map(|k| k.key)
        .filter(|k| k == "deleted_at" || object.fields.iter().any(|f| f.column == *k && !f.system))
        .collect();
    if columns.is_empty() {
        return Ok(0);
    }
    let mut query = Sql::raw("UPDATE ");
    query.table(&target.schema, &object.table).push(" t SET ");
    for column in &columns {
        query.ident(column).push(" = p.").ident(column).push(", ");
    }
    query.push("version = t.version + 1, updated_at = now() FROM ");
    query
        .table(&target.schema, "import_record")
        .push(" r, jsonb_populate_record(NULL::");
    query
        .table(&target.schema, &object.table)
        .push(", r.before) p WHERE r.job_id = ");
    query
        .bind(Bind::Uuid(Some(id)))
        .push(" AND NOT r.created AND t.id = r.record_id RETURNING t.id AS record_id");
    let restored: Vec<RecordId> = query.load(conn).await?;
    if object.name == "Lead" && !restored.is_empty() {
        let ids: Vec<Uuid> = restored.iter().map(|r| r.record_id).collect();
        crate::leads::rescore_locked(conn, &target.schema, &target.model, &ids).await?;
    }
    Ok(restored.len() as i64)
}

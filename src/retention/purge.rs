//! The removals themselves: soft-deleted records of one object in batches,
//! and a workspace's old audit log entries.

use std::sync::Arc;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::Uuid as SqlUuid;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use uuid::Uuid;

use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::metadata::{Access, Model, ObjectDef};

/// Rows one statement removes at most: each batch is its own transaction,
/// so no table is locked for long.
const BATCH: i64 = 1000;

/// The workspace's record objects, children before parents: an object
/// comes before every object its lookups point to, so a deleted child
/// goes before the deleted parent it holds on to.
pub(super) fn order(model: &Model) -> Vec<Arc<ObjectDef>> {
    let mut left: Vec<Arc<ObjectDef>> = model
        .objects()
        .iter()
        .filter(|o| o.access == Access::Record && o.schema.is_none())
        .cloned()
        .collect();
    let mut ordered = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let referred = |object: &ObjectDef| {
            left.iter().any(|other| {
                other.name != object.name
                    && other
                        .fields
                        .iter()
                        .any(|f| f.lookup().is_some_and(|l| l.target == object.name))
            })
        };
        // A cycle of lookups: take the first, a refused row is skipped anyway.
        let next = left.iter().position(|o| !referred(o)).unwrap_or(0);
        ordered.push(left.remove(next));
    }
    ordered
}

/// `deleted_at` older than `days` days (bound).
fn expired(query: &mut Sql, days: i32) {
    query
        .push("deleted_at < now() - make_interval(days => ")
        .bind(Bind::Int(Some(days)))
        .push(")");
}

/// Removes `table`'s records deleted more than `days` days ago, in
/// batches by id; a row another row still refers to (a foreign key) stays.
/// Returns how many went.
pub(super) async fn records(conn: &mut AsyncPgConnection, schema: &str, table: &str, days: i32) -> Result<u64> {
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = SqlUuid)]
        id: Uuid,
    }
    let mut removed = 0;
    let mut after: Option<Uuid> = None;
    loop {
        let mut batch = Sql::raw("SELECT id FROM ");
        batch.table(schema, table).push(" WHERE ");
        expired(&mut batch, days);
        // A merged record stays: its id and external id lead to its survivor.
        batch
            .push(" AND id NOT IN (SELECT merged_id FROM ")
            .table(schema, "merged_record")
            .push(")");
        if let Some(after) = after {
            batch.push(" AND id > ").bind(Bind::Uuid(Some(after)));
        }
        batch.push(" ORDER BY id LIMIT ").push(&BATCH.to_string());
        let ids: Vec<Uuid> = batch.load::<Id>(conn).await?.into_iter().map(|r| r.id).collect();
        let Some(last) = ids.last().copied() else {
            return Ok(removed);
        };
        removed += match delete(conn, schema, table, days, ids.clone()).await {
            Ok(n) => n,
            Err(err) if refused(&err) => one_by_one(conn, schema, table, days, &ids).await?,
            Err(err) => return Err(err.into()),
        };
        after = Some(last);
    }
}

/// Removes the rows of `ids` still deleted long enough, in one statement.
async fn delete(
    conn: &mut AsyncPgConnection,
    schema: &str,
    table: &str,
    days: i32,
    ids: Vec<Uuid>,
) -> std::result::Result<u64, DieselError> {
    let mut delete = Sql::raw("DELETE FROM ");
    delete.table(schema, table).push(" WHERE id = ANY(");
    delete.bind(Bind::UuidArray(ids)).push(") AND ");
    expired(&mut delete, days);
    delete.execute(conn).await.map(|n| n as u64)
}

/// A batch some row of which is still referred to: each row on its own,
/// skipping those refused.
async fn one_by_one(conn: &mut AsyncPgConnection, schema: &str, table: &str, days: i32, ids: &[Uuid]) -> Result<u64> {
    let mut removed = 0;
    for id in ids {
        match delete(conn, schema, table, days, vec![*id]).await {
            Ok(n) => removed += n,
            Err(err) if refused(&err) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(removed)
}

/// Whether a delete was refused because a row still refers to one removed.
fn refused(err: &DieselError) -> bool {
    matches!(
        err,
        DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _)
    )
}

/// Removes `workspace`'s audit log entries older than `days` days, in
/// batches, each in a transaction telling the append-only trigger it is
/// the retention job. Returns how many went.
pub(super) async fn audit_entries(conn: &mut AsyncPgConnection, workspace: &str, days: i32) -> Result<u64> {
    let mut removed = 0;
    loop {
        let n = conn
            .transaction::<_, CrmError, _>(async |conn| {
                conn.batch_execute("SET LOCAL crm.audit_retention = 'on'").await?;
                let mut delete = Sql::raw(
                    "DELETE FROM crm_system.audit_log WHERE id IN (SELECT id FROM crm_system.audit_log \
                     WHERE workspace = ",
                );
                delete.bind(Bind::Text(Some(workspace.to_owned())));
                delete.push(" AND at < now() - make_interval(days => ");
                delete.bind(Bind::Int(Some(days)));
                delete.push(") ORDER BY id LIMIT ").push(&BATCH.to_string()).push(")");
                Ok(delete.execute(conn).await? as u64)
            })
            .await?;
        removed += n;
        if n < BATCH as u64 {
            return Ok(removed);
        }
    }
}

//! Tombstones of merged records: a record merged into another is deleted
//! and leaves a row in `merged_record` pointing to its survivor, so a read
//! by its id (on either execution path) and an upsert by its external id
//! reach the survivor. The merge itself is the `merge` room's.

use diesel::sql_types::Uuid as SqlUuid;
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use crate::db::sql::{Bind, Sql};
use crate::error::Result;
use crate::metadata::ObjectDef;

/// `key`, or the survivor of the record it names if that was merged:
/// `coalesce((SELECT survivor_id … WHERE merged_id = key), key)`. Objects
/// outside the workspace (users) are never merged.
pub fn redirected(schema: &str, object: &ObjectDef, key: &Sql) -> Sql {
    if object.schema.is_some() {
        return key.clone();
    }
    let mut sql = Sql::raw("coalesce((SELECT m.survivor_id FROM ");
    sql.table(schema, "merged_record")
        .push(" m WHERE m.merged_id = ")
        .append(key)
        .push("), ")
        .append(key)
        .push(")");
    sql
}

#[derive(diesel::QueryableByName)]
struct Tombstone {
    #[diesel(sql_type = SqlUuid)]
    merged_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    survivor_id: Uuid,
}

/// The records merged into each of `survivors` that has some (their
/// history is the survivor's). Empty for a schema without merges.
pub async fn merged_into(
    conn: &mut AsyncPgConnection,
    schema: &str,
    survivors: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, Vec<Uuid>>> {
    let mut query = Sql::raw("SELECT merged_id, survivor_id FROM ");
    query
        .table(schema, "merged_record")
        .push(" WHERE survivor_id = ANY(")
        .bind(Bind::UuidArray(survivors.to_vec()))
        .push(")");
    let found: Vec<Tombstone> = query.load(conn).await?;
    let mut out: std::collections::HashMap<Uuid, Vec<Uuid>> = std::collections::HashMap::new();
    for tombstone in found {
        out.entry(tombstone.survivor_id).or_default().push(tombstone.merged_id);
    }
    Ok(out)
}

#[derive(diesel::QueryableByName)]
struct Survivor {
    #[diesel(sql_type = SqlUuid)]
    survivor_id: Uuid,
}

/// The survivor record `id` was merged into, if it was.
pub async fn survivor_of(
    conn: &mut AsyncPgConnection,
    schema: &str,
    object: &ObjectDef,
    id: Uuid,
) -> Result<Option<Uuid>> {
    if object.schema.is_some() {
        return Ok(None);
    }
    let mut query = Sql::raw("SELECT survivor_id FROM ");
    query
        .table(schema, "merged_record")
        .push(" WHERE merged_id = ")
        .bind(Bind::Uuid(Some(id)));
    let found: Vec<Survivor> = query.load(conn).await?;
    Ok(found.into_iter().next().map(|s| s.survivor_id))
}

//! Pipelines and stages are rows of configuration, not customizations:
//! a promotion writes them directly, audits them, and keeps their ids.

use diesel_async::AsyncPgConnection;
use serde_json::Value as Json;
use uuid::Uuid;

use super::{changed, deleted, text, Change, Item};
use crate::audit::{self, Action as AuditAction};
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::metadata::change::Target;

/// Where a kind of configuration row is written.
pub(super) struct Table {
    /// Its table: `pipeline`, `stage`.
    pub name: &'static str,
    /// The object its audit entries name: `Pipeline`, `Stage`.
    pub audited_as: &'static str,
    /// Whether its rows belong to a pipeline, named by the state's
    /// `pipeline` when a row is inserted.
    pub in_pipeline: bool,
}

/// Writes the row of `current` (inserted when there is none, keeping the
/// change's id when free) with `columns` and the deletion `desired` has,
/// and audits it.
pub(super) async fn write(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    table: &Table,
    columns: Vec<(&'static str, Bind)>,
    current: Option<&Item>,
    desired: &Json,
    change: &Change,
) -> Result<()> {
    let record_id = match current {
        None => insert(conn, target.schema, table, columns, desired, &change.id).await?,
        Some(item) => {
            let id = row_id(item)?;
            update(conn, target.schema, table, columns, id, deleted(desired)).await?;
            id
        }
    };
    let before = current.map(|c| c.state.clone());
    let action = match (before.as_ref().map(deleted), deleted(desired)) {
        (None, _) => AuditAction::Create,
        (Some(false), true) => AuditAction::Delete,
        (Some(true), false) => AuditAction::Restore,
        _ => AuditAction::Update,
    };
    let entry = audit::Entry {
        object: table.audited_as.into(),
        record_id: Some(record_id),
        action,
        changes: changed(before.as_ref(), desired)
            .into_iter()
            .map(|name| audit::Change {
                before: before.as_ref().map(|b| b[&name].clone()).unwrap_or(Json::Null),
                after: desired[&name].clone(),
                field: name,
            })
            .collect(),
    };
    audit::append(conn, target.trail, &[entry]).await
}

/// The id of an existing row.
pub(super) fn row_id(item: &Item) -> Result<Uuid> {
    Uuid::parse_str(&item.id).map_err(|_| CrmError::internal("a stored id is not a uuid"))
}

/// Inserts a row with the id `id` (a new one when taken or not a uuid).
async fn insert(
    conn: &mut AsyncPgConnection,
    schema: &str,
    table: &Table,
    columns: Vec<(&'static str, Bind)>,
    desired: &Json,
    id: &str,
) -> Result<Uuid> {
    let id = Uuid::parse_str(id).unwrap_or_else(|_| Uuid::new_v4());
    let mut insert = Sql::raw("INSERT INTO ");
    insert.table(schema, table.name).push(" (id, deleted_at");
    for (column, _) in &columns {
        insert.push(", ").ident(column);
    }
    if table.in_pipeline {
        insert.push(", pipeline_id");
    }
    insert
        .push(") SELECT CASE WHEN EXISTS (SELECT 1 FROM ")
        .table(schema, table.name);
    insert.push(" WHERE id = ").bind(Bind::Uuid(Some(id)));
    insert
        .push(") THEN gen_random_uuid() ELSE ")
        .bind(Bind::Uuid(Some(id)))
        .push(" END, ");
    insert.push(if deleted(desired) { "now()" } else { "NULL" });
    for (_, value) in columns {
        insert.push(", ").bind(value);
    }
    if table.in_pipeline {
        insert
            .push(", (SELECT id FROM ")
            .table(schema, "pipeline")
            .push(" WHERE name = ");
        insert.bind(Bind::Text(Some(text(desired, "pipeline")))).push(")");
    }
    insert.push(" RETURNING id::text AS id");
    first_id(insert.load(conn).await?)
}

/// Updates the row `id` to `columns`, deleted (keeping when it was) or not.
async fn update(
    conn: &mut AsyncPgConnection,
    schema: &str,
    table: &Table,
    columns: Vec<(&'static str, Bind)>,
    id: Uuid,
    gone: bool,
) -> Result<()> {
    let mut update = Sql::raw("UPDATE ");
    update
        .table(schema, table.name)
        .push(" SET updated_at = now(), version = version + 1, deleted_at = ");
    update.push(if gone { "coalesce(deleted_at, now())" } else { "NULL" });
    for (column, value) in columns {
        update.push(", ").ident(column).push(" = ").bind(value);
    }
    update.push(" WHERE id = ").bind(Bind::Uuid(Some(id)));
    update.execute(conn).await?;
    Ok(())
}

/// The id of the row an insert made.
fn first_id(rows: Vec<Made>) -> Result<Uuid> {
    rows.first()
        .and_then(|row| Uuid::parse_str(&row.id).ok())
        .ok_or_else(|| CrmError::internal("an insert returned no id"))
}

/// The id an insert returns.
#[derive(diesel::QueryableByName)]
struct Made {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
}

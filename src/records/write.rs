//! Writing records: create, update, soft delete and restore.
//!
//! Each is one statement returning the row document, so a mutation costs
//! one round trip plus one existence check per lookup it sets. Database
//! constraint failures are turned into input errors on the field that
//! caused them.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use uuid::Uuid;

use super::{into_record, projection, FieldSet, Record, Table, T};
use crate::db::sql::{Bind, JsonRow, Sql};
use crate::error::{CrmError, Result};
use crate::metadata::{ddl, FieldDef, Model, ObjectDef};
use diesel_async::AsyncPgConnection;

/// A field and the value to store in it.
pub type Assignment = (FieldDef, Bind);

/// Inserts a record and returns it.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    model: &Model,
    table: Table<'_>,
    values: &[Assignment],
    path: &[String],
) -> Result<Record> {
    check_lookups(conn, model, table, values, path).await?;
    let mut query = Sql::raw("INSERT INTO ");
    query.table(table.schema, &table.object.table).push(" AS ").ident(T);
    if values.is_empty() {
        query.push(" DEFAULT VALUES");
    } else {
        query.append(&values_clause(values));
    }
    let rows = returning(conn, query, table.object, path).await?;
    one(rows, table.object, "new")
}

/// Creates the record with this external id, or changes (and restores) the
/// one that has it: one statement, so concurrent upserts cannot both insert.
pub async fn upsert(
    conn: &mut AsyncPgConnection,
    model: &Model,
    table: Table<'_>,
    external_id: (FieldDef, Bind),
    values: &[Assignment],
    path: &[String],
) -> Result<Record> {
    check_lookups(conn, model, table, values, path).await?;
    let (external_field, external_value) = external_id;
    let mut sets: Vec<Sql> = values
        .iter()
        .map(|(field, _)| {
            let mut set = ident(&field.column);
            set.push(" = EXCLUDED.").ident(&field.column);
            set
        })
        .collect();
    sets.push(Sql::raw("deleted_at = NULL"));
    sets.push(Sql::raw("version = t.version + 1"));
    sets.push(Sql::raw("updated_at = now()"));
    let mut all = values.to_vec();
    all.push((external_field.clone(), external_value));
    let mut query = Sql::raw("INSERT INTO ");
    query.table(table.schema, &table.object.table).push(" AS ").ident(T);
    query.append(&values_clause(&all));
    query
        .push(" ON CONFLICT (")
        .ident(&external_field.column)
        .push(") DO UPDATE SET ")
        .join(&sets, ", ");
    let rows = returning(conn, query, table.object, path).await?;
    one(rows, table.object, "upserted")
}

/// Updates a live record; with `expected_version`, only if nobody changed
/// it since the client read that version.
pub async fn update(
    conn: &mut AsyncPgConnection,
    model: &Model,
    table: Table<'_>,
    id: Uuid,
    values: &[Assignment],
    expected_version: Option<i32>,
    path: &[String],
) -> Result<Record> {
    check_lookups(conn, model, table, values, path).await?;
    let query = update_query(table, id, values, expected_version);
    let rows = returning(conn, query, table.object, path).await?;
    if rows.is_empty() {
        return Err(explain_missed_update(conn, table, id, expected_version).await);
    }
    one(rows, table.object, &id.to_string())
}

/// [`update`], answering beside the record the value of `also`, an
/// expression on the updated row `t` (what a rule checks of the row as
/// written), in the same statement.
pub async fn update_also(
    conn: &mut AsyncPgConnection,
    model: &Model,
    table: Table<'_>,
    id: Uuid,
    values: &[Assignment],
    also: &Sql,
) -> Result<(Record, serde_json::Value)> {
    #[derive(diesel::QueryableByName)]
    struct Updated {
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        doc: serde_json::Value,
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        also: serde_json::Value,
    }
    check_lookups(conn, model, table, values, &[]).await?;
    let mut query = update_query(table, id, values, None);
    query
        .push(" RETURNING ")
        .append(&projection(table.object, &FieldSet::all(table.object), T))
        .push(" AS doc, to_jsonb(")
        .append(also)
        .push(") AS also");
    let rows: Vec<Updated> = query
        .load(conn)
        .await
        .map_err(|e| constraint_error(e, table.object, &[]))?;
    match rows.into_iter().next() {
        Some(row) => Ok((into_record(row.doc), row.also)),
        None => Err(explain_missed_update(conn, table, id, None).await),
    }
}

/// `UPDATE … SET … WHERE` the live record `id` the request may change.
fn update_query(table: Table<'_>, id: Uuid, values: &[Assignment], expected_version: Option<i32>) -> Sql {
    let mut sets: Vec<Sql> = values
        .iter()
        .map(|(field, value)| {
            let mut set = ident(&field.column);
            set.push(" = ").bind(value.clone());
            set
        })
        .collect();
    sets.push(Sql::raw("version = t.version + 1"));
    sets.push(Sql::raw("updated_at = now()"));
    let mut query = Sql::raw("UPDATE ");
    query.table(table.schema, &table.object.table).push(" AS ").ident(T);
    query.push(" SET ").join(&sets, ", ");
    query
        .push(" WHERE t.id = ")
        .bind(Bind::Uuid(Some(id)))
        .push(" AND ")
        .append(&table.rows(false, T));
    if let Some(version) = expected_version {
        query.push(" AND t.version = ").bind(Bind::Int(Some(version)));
    }
    query
}

/// The record `id` as it is now (deleted or not), locked until the
/// transaction ends: the "before" of a change. `None` when it does not
/// exist or the request may not see it.
pub async fn lock(conn: &mut AsyncPgConnection, table: Table<'_>, id: Uuid) -> Result<Option<Record>> {
    lock_where(conn, table, "id", Bind::Uuid(Some(id))).await
}

/// The record whose `column` holds `value` (a unique column: `id`,
/// `external_id`), locked; see [`lock`].
pub async fn lock_where(
    conn: &mut AsyncPgConnection,
    table: Table<'_>,
    column: &str,
    value: Bind,
) -> Result<Option<Record>> {
    let mut query = Sql::raw("SELECT ");
    query
        .append(&projection(table.object, &FieldSet::all(table.object), T))
        .push(" AS row");
    query.append(&table.from_as(T)).push(" WHERE ").column(T, column);
    query.push(" = ").bind(value).push(" AND ").append(&table.rows(true, T));
    query.push(" FOR UPDATE");
    let rows: Vec<JsonRow> = query.load(conn).await?;
    Ok(rows.into_iter().next().map(|r| into_record(r.row)))
}

/// Marks a live record deleted; it stays restorable.
pub async fn soft_delete(conn: &mut AsyncPgConnection, table: Table<'_>, id: Uuid) -> Result<Record> {
    set_deleted(conn, table, id, true).await
}

/// Brings a deleted record back.
pub async fn restore(conn: &mut AsyncPgConnection, table: Table<'_>, id: Uuid) -> Result<Record> {
    set_deleted(conn, table, id, false).await
}

async fn set_deleted(conn: &mut AsyncPgConnection, table: Table<'_>, id: Uuid, delete: bool) -> Result<Record> {
    let mut query = Sql::raw("UPDATE ");
    query.table(table.schema, &table.object.table).push(" AS ").ident(T);
    query.push(if delete {
        " SET deleted_at = now()"
    } else {
        " SET deleted_at = NULL"
    });
    query
        .push(", version = t.version + 1, updated_at = now() WHERE t.id = ")
        .bind(Bind::Uuid(Some(id)));
    query.push(" AND ").append(&table.rows(true, T));
    query.push(if delete {
        " AND t.deleted_at IS NULL"
    } else {
        " AND t.deleted_at IS NOT NULL"
    });
    let rows = returning(conn, query, table.object, &[]).await?;
    one(rows, table.object, &id.to_string())
}

/// Runs a write with `RETURNING` the row documents it touched; constraint
/// failures become input errors under `path`.
async fn returning(
    conn: &mut AsyncPgConnection,
    mut query: Sql,
    object: &ObjectDef,
    path: &[String],
) -> Result<Vec<JsonRow>> {
    query
        .push(" RETURNING ")
        .append(&projection(object, &FieldSet::all(object), T))
        .push(" AS row");
    query.load(conn).await.map_err(|e| constraint_error(e, object, path))
}

fn one(rows: Vec<JsonRow>, object: &ObjectDef, id: &str) -> Result<Record> {
    rows.into_iter()
        .next()
        .map(|r| into_record(r.row))
        .ok_or_else(|| CrmError::not_found(&object.name, id))
}

/// ` (col, …) VALUES ($1, …)`.
fn values_clause(values: &[Assignment]) -> Sql {
    let columns: Vec<Sql> = values.iter().map(|(f, _)| ident(&f.column)).collect();
    let binds: Vec<Sql> = values.iter().map(|(_, v)| bind(v)).collect();
    let mut sql = Sql::raw(" (");
    sql.join(&columns, ", ").push(") VALUES (").join(&binds, ", ").push(")");
    sql
}

fn ident(name: &str) -> Sql {
    let mut sql = Sql::new();
    sql.ident(name);
    sql
}

fn bind(value: &Bind) -> Sql {
    let mut sql = Sql::new();
    sql.bind(value.clone());
    sql
}

/// Lookups must point at live records of their target that the request
/// may see: a clean input error names the field instead of a foreign-key
/// failure, and a hidden record is as absent as a missing one.
async fn check_lookups(
    conn: &mut AsyncPgConnection,
    model: &Model,
    table: Table<'_>,
    values: &[Assignment],
    path: &[String],
) -> Result<()> {
    for (field, value) in values {
        let (Some(lookup), Bind::Uuid(Some(id))) = (field.lookup(), value) else {
            continue;
        };
        let Some(target) = model.object(&lookup.target) else {
            return Err(CrmError::internal(format_args!(
                "lookup to unknown object {}",
                lookup.target
            )));
        };
        let target = Table::new(table.workspace_schema, target).restricted(table.visibility);
        let mut query = Sql::raw("SELECT true AS exists");
        query.append(&target.from_as(T)).push(" WHERE ").column(T, "id");
        query.push(" = ").bind(Bind::Uuid(Some(*id)));
        query.push(" AND ").append(&target.rows(false, T));
        let found: Vec<crate::db::sql::Exists> = query.load(conn).await?;
        if found.is_empty() {
            let mut at = path.to_vec();
            at.push(field.value_key());
            return Err(CrmError::bad_input_at(at, format!("no {} with id {id}", lookup.target)));
        }
    }
    Ok(())
}

async fn explain_missed_update(
    conn: &mut AsyncPgConnection,
    table: Table<'_>,
    id: Uuid,
    expected: Option<i32>,
) -> CrmError {
    #[derive(diesel::QueryableByName)]
    struct State {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        version: i32,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        deleted: bool,
    }
    // A record the request may not see is not found, whatever its version.
    let mut query = Sql::raw("SELECT t.version, t.deleted_at IS NOT NULL AS deleted");
    query.append(&table.from_as(T)).push(" WHERE ").column(T, "id");
    query.push(" = ").bind(Bind::Uuid(Some(id)));
    query.push(" AND ").append(&table.rows(true, T));
    let state: Vec<State> = match query.load(conn).await {
        Ok(state) => state,
        Err(err) => return err.into(),
    };
    match (state.first(), expected) {
        (Some(s), Some(expected)) if !s.deleted && s.version != expected => CrmError::VersionConflict {
            object: table.object.name.clone(),
            id: id.to_string(),
            current: s.version,
            expected,
        },
        _ => CrmError::not_found(&table.object.name, id),
    }
}

/// Maps a constraint failure to an input error on the field whose column
/// the constraint guards; other failures keep their general mapping.
fn constraint_error(err: DieselError, object: &ObjectDef, path: &[String]) -> CrmError {
    let DieselError::DatabaseError(kind, info) = &err else {
        return err.into();
    };
    let field_of = |constraint: Option<&str>, column: Option<&str>| -> Option<&FieldDef> {
        if let Some(column) = column {
            return object.fields.iter().find(|f| f.column == column);
        }
        let constraint = constraint?;
        // A custom field's indexes and foreign key are named by
        // `ddl::index_name`; the standard tables' constraints have the
        // names Postgres gives, `<table>_<column>_<kind>`.
        let custom = object.fields.iter().filter(|f| f.custom).find(|f| {
            ["key", "idx", "fkey"]
                .iter()
                .any(|suffix| ddl::index_name(&object.table, &f.column, suffix) == constraint)
        });
        custom.or_else(|| {
            object
                .fields
                .iter()
                .filter(|f| constraint.starts_with(&format!("{}_{}_", object.table, f.column)))
                .max_by_key(|f| f.column.len())
        })
    };
    let field = field_of(info.constraint_name(), info.column_name());
    let at = |field: Option<&FieldDef>| -> Vec<String> {
        let mut at = path.to_vec();
        if let Some(field) = field {
            at.push(field.value_key());
        }
        at
    };
    // Rules written for people (constraints named `…_rule`) speak for themselves.
    if info.constraint_name().is_some_and(|name| name.ends_with("_rule")) {
        return CrmError::bad_input_at(at(field), info.message().to_owned());
    }
    match kind {
        DatabaseErrorKind::CheckViolation => {
            let name = field.map(|f| f.label.as_str()).unwrap_or("a value");
            CrmError::bad_input_at(at(field), format!("{name} is not an accepted value"))
        }
        DatabaseErrorKind::NotNullViolation => {
            let name = field.map(|f| f.label.as_str()).unwrap_or("a required field");
            CrmError::bad_input_at(at(field), format!("{name} is required"))
        }
        DatabaseErrorKind::ForeignKeyViolation => {
            CrmError::bad_input_at(at(field), "the referenced record does not exist".to_owned())
        }
        DatabaseErrorKind::UniqueViolation => CrmError::Conflict(match field {
            Some(field) => format!("another {} already has this {}", object.name, field.label),
            None => format!("another {} already has these values, which must be unique", object.name),
        }),
        _ => err.into(),
    }
}

//! DDL as a stage of its own: the SQL a metadata change runs on the
//! record tables (tables, columns, defaults, constraints, indexes), the
//! names and types it gives them, and the data checks a constraint needs
//! before it is added.
//!
//! Field and object changes ([`super::field`], [`super::object`]) decide
//! *what* changes; this module is *how* Postgres is told. Everything here
//! runs inside the change's transaction ([`super::change::run`]), so a
//! failed statement rolls the whole change back. How values become
//! another type's is [`conversion`].
//!
//! Identifiers come from validated metadata and go through `Sql::ident`
//! and `Sql::table`; DDL takes no bind parameters, so a default is written
//! as a checked literal ([`literal`]).

/// How values become another type's, and the values kept to change back.
pub(super) mod conversion;
/// The search indexes that follow which fields are searchable.
pub mod search;

use diesel::sql_types::{BigInt, Text};
use diesel_async::AsyncPgConnection;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use super::change::Target;
use super::custom::MAX_NAME_BYTES;
use super::{FieldDef, FieldKind};
use crate::db::sql::{quote_ident, Bind, Sql};
use crate::error::{CrmError, Result};

/// Sample ids a refusal lists.
pub(in crate::metadata) const SAMPLES: i64 = 5;

/// A new custom field's column as a change asks for it.
pub(in crate::metadata) struct NewColumn<'a> {
    /// The column's name (`cf_renewal_date`).
    pub(in crate::metadata) column: &'a str,
    /// The field's kind, which decides the column type.
    pub(in crate::metadata) kind: &'a FieldKind,
    /// A lookup's target table, `(schema, table)`: the foreign key.
    pub(in crate::metadata) references: Option<(&'a str, &'a str)>,
    /// The default existing rows get, already checked.
    pub(in crate::metadata) default: Option<&'a Json>,
    /// Whether the column is `NOT NULL`.
    pub(in crate::metadata) required: bool,
}

/// The Postgres column type of a custom field of this kind: the one
/// place a field type meets storage, so adding a column, converting one
/// and telling whether a conversion rewrites the table agree.
pub fn column_type(kind: &FieldKind) -> &'static str {
    match kind {
        FieldKind::Id | FieldKind::Lookup(_) => "uuid",
        FieldKind::Integer => "integer",
        FieldKind::Decimal | FieldKind::Currency | FieldKind::Percent => "numeric(18, 2)",
        FieldKind::Boolean => "boolean",
        FieldKind::Date => "date",
        FieldKind::DateTime => "timestamptz",
        FieldKind::MultiPicklist(_) => "text[]",
        FieldKind::Json => "jsonb",
        FieldKind::Text
        | FieldKind::Email
        | FieldKind::Url
        | FieldKind::Phone
        | FieldKind::LongText
        | FieldKind::Picklist(_) => "text",
    }
}

/// The name of a custom field's index or constraint (`suffix`: `key` for
/// a unique index, `idx` for another index, `fkey` for a lookup's foreign
/// key): `<table>_<column>` cut to fit, the first 8 hex digits of the
/// SHA-256 of `<table>/<column>/<suffix>`, and the suffix, at most 63
/// bytes. Postgres cuts longer names, so the plain
/// `<table>_<column>_<suffix>` of two long fields of one object could be
/// one name, and dropping one field's index dropped the other's. The
/// workspace migration `custom_index_names` computes the same names in SQL.
pub fn index_name(table: &str, column: &str, suffix: &str) -> String {
    let digest = Sha256::digest(format!("{table}/{column}/{suffix}").as_bytes());
    let hash: String = digest.iter().take(4).map(|byte| format!("{byte:02x}")).collect();
    let tail = format!("_{hash}_{suffix}");
    let mut head = format!("{table}_{column}");
    let mut room = MAX_NAME_BYTES.saturating_sub(tail.len()).min(head.len());
    while !head.is_char_boundary(room) {
        room -= 1;
    }
    head.truncate(room);
    head + &tail
}

/// `ALTER TABLE <schema>.<table>`, the start of every column change.
pub(in crate::metadata) fn alter_table(schema: &str, table: &str) -> Sql {
    let mut sql = Sql::raw("ALTER TABLE ");
    sql.table(schema, table);
    sql
}

/// Makes a custom object's table with every standard record column (id,
/// timestamps, version, externalId, owner, createdBy, name), indexed the
/// way record pages and filters read it.
pub(in crate::metadata) async fn create_table(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    table: &str,
) -> Result<()> {
    let schema = target.schema;
    let mut ddl = Sql::raw("CREATE TABLE ");
    ddl.table(schema, table).push(
        " (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), \
         created_at timestamptz NOT NULL DEFAULT now(), \
         updated_at timestamptz NOT NULL DEFAULT now(), \
         version integer NOT NULL DEFAULT 1, \
         deleted_at timestamptz, \
         external_id text, \
         owner_id uuid REFERENCES crm_system.users (id), \
         created_by uuid REFERENCES crm_system.users (id), \
         name text NOT NULL CHECK (length(name) BETWEEN 1 AND 255), CONSTRAINT ",
    );
    // The standard columns' names are the ones Postgres gives, as on the
    // standard objects' tables.
    ddl.ident(&format!("{table}_external_id_key"))
        .push(" UNIQUE (external_id))");
    run(conn, target, ddl).await?;
    for (columns, suffix) in [
        ("(created_at, id)", "created_at_idx"),
        ("(name, id)", "name_idx"),
        ("(owner_id)", "owner_id_idx"),
        // The trash: see the migration `deleted_record_indexes`.
        ("(id) WHERE deleted_at IS NOT NULL", "deleted_idx"),
    ] {
        let mut index = Sql::raw("CREATE INDEX ");
        index
            .ident(&format!("{table}_{suffix}"))
            .push(" ON ")
            .table(schema, table)
            .push(" ")
            .push(columns);
        run(conn, target, index).await?;
    }
    Ok(())
}

/// The indexes a field's settings ask for: unique (`key`), or for
/// filters and sorts (`idx`: `(column, id)` for keyset pages, GIN for
/// lists and JSON); lookups always have one. Named by
/// [`index_name`], which `drop_indexes`, a rename and
/// `records::write` (naming the field of a violation) compute again.
pub(in crate::metadata) async fn create_indexes(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    table: &str,
    field: &FieldDef,
) -> Result<()> {
    let schema = target.schema;
    let mut ddl = Sql::new();
    if field.unique {
        ddl.push("CREATE UNIQUE INDEX ")
            .ident(&index_name(table, &field.column, "key"));
        ddl.push(" ON ")
            .table(schema, table)
            .push(" (")
            .ident(&field.column)
            .push(")");
    } else if field.indexed {
        ddl.push("CREATE INDEX ")
            .ident(&index_name(table, &field.column, "idx"));
        ddl.push(" ON ").table(schema, table);
        match field.kind {
            FieldKind::MultiPicklist(_) | FieldKind::Json => ddl.push(" USING gin (").ident(&field.column).push(")"),
            FieldKind::Lookup(_) => ddl.push(" (").ident(&field.column).push(")"),
            _ => ddl.push(" (").ident(&field.column).push(", id)"),
        };
    } else {
        return Ok(());
    }
    run(conn, target, ddl).await?;
    Ok(())
}

/// Drops a field's indexes, by the names `create_indexes` gave them: only
/// this field's, however long its name.
pub(in crate::metadata) async fn drop_indexes(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    table: &str,
    column: &str,
) -> Result<()> {
    let schema = target.schema;
    for suffix in ["key", "idx"] {
        let mut ddl = Sql::raw("DROP INDEX IF EXISTS ");
        ddl.table(schema, &index_name(table, column, suffix));
        run(conn, target, ddl).await?;
    }
    Ok(())
}

/// Runs a statement on a record table, unless the target only rehearses
/// (a diff or dry run): then nothing locks production's tables, and the
/// checks before each statement say what the data would refuse.
pub(in crate::metadata) async fn run(conn: &mut AsyncPgConnection, target: &Target<'_>, statement: Sql) -> Result<()> {
    if !target.rehearsal {
        statement.execute(conn).await?;
    }
    Ok(())
}

/// Whether `schema.table` exists.
async fn table_exists(conn: &mut AsyncPgConnection, schema: &str, table: &str) -> Result<bool> {
    #[derive(diesel::QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        found: bool,
    }
    let mut query = Sql::raw("SELECT to_regclass(");
    query.bind(Bind::Text(Some(format!(
        "{}.{}",
        quote_ident(schema),
        quote_ident(table)
    ))));
    query.push(") IS NOT NULL AS found");
    let rows: Vec<Found> = query.load(conn).await?;
    Ok(rows.first().is_some_and(|row| row.found))
}

/// How many rows of a table match `condition`, and the first few ids.
pub(in crate::metadata) async fn violations(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    table: &str,
    condition: Sql,
) -> Result<(i64, Vec<String>)> {
    let schema = target.schema;
    // A rehearsal makes no table: the table of an object it adds has no rows.
    if target.rehearsal && !table_exists(conn, schema, table).await? {
        return Ok((0, Vec::new()));
    }
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        count: i64,
    }
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = Text)]
        id: String,
    }
    let mut count = Sql::raw("SELECT count(*) AS count FROM ");
    count.table(schema, table).push(" WHERE ").append(&condition);
    let count: Vec<Count> = count.load(conn).await?;
    let count = count.first().map(|c| c.count).unwrap_or(0);
    if count == 0 {
        return Ok((0, vec![]));
    }
    let mut ids = Sql::raw("SELECT id::text AS id FROM ");
    ids.table(schema, table).push(" WHERE ").append(&condition);
    ids.push(" ORDER BY id LIMIT ").push(&SAMPLES.to_string());
    let ids: Vec<Id> = ids.load(conn).await?;
    Ok((count, ids.into_iter().map(|i| i.id).collect()))
}

/// A checked default value as a SQL literal of the column's type (DDL
/// takes no bind parameters).
pub(in crate::metadata) fn literal(kind: &FieldKind, value: &Json) -> Result<Sql> {
    let mut sql = Sql::new();
    let text = |value: &Json| -> Result<String> {
        let text = match value {
            Json::String(s) => s.clone(),
            Json::Number(n) => n.to_string(),
            Json::Bool(b) => b.to_string(),
            other => other.to_string(),
        };
        if text.contains('\0') {
            return Err(CrmError::bad_input(
                &["input", "defaultValue"],
                "a default must not contain NUL",
            ));
        }
        Ok(text)
    };
    match kind {
        FieldKind::Integer | FieldKind::Boolean => {
            // Checked as an integer or a boolean: digits, a sign, true, false.
            let text = text(value)?;
            if !text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(CrmError::bad_input(&["input", "defaultValue"], "not a valid default"));
            }
            sql.push(&text);
        }
        FieldKind::MultiPicklist(_) => {
            let items = value.as_array().cloned().unwrap_or_default();
            sql.push("ARRAY[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.string_literal(&text(item)?);
            }
            sql.push("]::text[]");
        }
        FieldKind::Json => {
            sql.string_literal(&text(&Json::String(value.to_string()))?)
                .push("::jsonb");
        }
        _ => {
            sql.string_literal(&text(value)?).push("::").push(column_type(kind));
        }
    }
    Ok(sql)
}

/// Adds a custom field's column, with its foreign key, default and
/// `NOT NULL` in one statement (existing rows get the default).
pub(in crate::metadata) async fn add_column(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    table: &str,
    new: NewColumn<'_>,
) -> Result<()> {
    let schema = target.schema;
    let mut ddl = alter_table(schema, table);
    ddl.push(" ADD COLUMN ")
        .ident(new.column)
        .push(" ")
        .push(column_type(new.kind));
    if let Some((target_schema, target_table)) = new.references {
        ddl.push(" CONSTRAINT ").ident(&index_name(table, new.column, "fkey"));
        ddl.push(" REFERENCES ")
            .table(target_schema, target_table)
            .push(" (id)");
    }
    if let Some(default) = new.default {
        ddl.push(" DEFAULT ").append(&literal(new.kind, default)?);
    }
    if new.required {
        ddl.push(" NOT NULL");
    }
    run(conn, target, ddl).await?;
    Ok(())
}

/// Sets a column's default (`None` drops it).
pub(in crate::metadata) async fn set_default(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    table: &str,
    column: &str,
    kind: &FieldKind,
    default: Option<&Json>,
) -> Result<()> {
    let schema = target.schema;
    let mut ddl = alter_table(schema, table);
    ddl.push(" ALTER COLUMN ").ident(column);
    match default {
        Some(value) => ddl.push(" SET DEFAULT ").append(&literal(kind, value)?),
        None => ddl.push(" DROP DEFAULT"),
    };
    run(conn, target, ddl).await?;
    Ok(())
}

/// Makes a column `NOT NULL` or lets it hold NULL again.
pub(in crate::metadata) async fn set_not_null(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    table: &str,
    column: &str,
    required: bool,
) -> Result<()> {
    let schema = target.schema;
    let mut ddl = alter_table(schema, table);
    ddl.push(" ALTER COLUMN ")
        .ident(column)
        .push(if required { " SET NOT NULL" } else { " DROP NOT NULL" });
    run(conn, target, ddl).await?;
    Ok(())
}

/// Renames a custom field's column and, with it, the indexes and the
/// lookup's foreign key named after it, so [`index_name`] finds them
/// under the new name.
pub(in crate::metadata) async fn rename_column(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    table: &str,
    (old, new): (&str, &str),
    lookup: bool,
) -> Result<()> {
    let schema = target.schema;
    let mut ddl = alter_table(schema, table);
    ddl.push(" RENAME COLUMN ").ident(old).push(" TO ").ident(new);
    run(conn, target, ddl).await?;
    search::renamed(conn, target, table, (old, new)).await?;
    for suffix in ["key", "idx"] {
        let mut rename = Sql::raw("ALTER INDEX IF EXISTS ");
        rename.table(schema, &index_name(table, old, suffix));
        rename.push(" RENAME TO ").ident(&index_name(table, new, suffix));
        run(conn, target, rename).await?;
    }
    if lookup {
        let mut rename = alter_table(schema, table);
        rename
            .push(" RENAME CONSTRAINT ")
            .ident(&index_name(table, old, "fkey"));
        rename.push(" TO ").ident(&index_name(table, new, "fkey"));
        run(conn, target, rename).await?;
    }
    Ok(())
}

/// Gives a column its new type's values: `ALTER COLUMN … TYPE … USING`
/// when the storage type changes (`rewrites_table`), an `UPDATE` of the
/// values that differ otherwise. `converted` is the conversion of the
/// column's value, over the table aliased `t`.
pub(in crate::metadata) async fn convert_column(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    table: &str,
    (column, kind): (&str, &FieldKind),
    converted: &Sql,
    rewrites_table: bool,
) -> Result<()> {
    let schema = target.schema;
    if rewrites_table {
        let mut ddl = alter_table(schema, table);
        ddl.push(" ALTER COLUMN ").ident(column).push(" TYPE ");
        ddl.push(column_type(kind)).push(" USING (").append(converted).push(")");
        run(conn, target, ddl).await?;
    } else {
        let mut update = Sql::raw("UPDATE ");
        update.table(schema, table).push(" AS t SET ").ident(column).push(" = ");
        update
            .append(converted)
            .push(" WHERE ")
            .ident(column)
            .push(" IS DISTINCT FROM (");
        update.append(converted).push(")");
        run(conn, target, update).await?;
    }
    Ok(())
}

/// Drops a purged field's column with its data, indexes and foreign key.
pub(in crate::metadata) async fn drop_column(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    table: &str,
    column: &str,
) -> Result<()> {
    let schema = target.schema;
    let mut ddl = alter_table(schema, table);
    ddl.push(" DROP COLUMN ").ident(column);
    run(conn, target, ddl).await?;
    Ok(())
}

/// Drops a purged object's table with its records.
pub(in crate::metadata) async fn drop_table(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    table: &str,
) -> Result<()> {
    let schema = target.schema;
    let mut drop = Sql::raw("DROP TABLE ");
    drop.table(schema, table);
    run(conn, target, drop).await?;
    Ok(())
}

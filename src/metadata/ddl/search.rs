//! The search indexes of an object, made from which of its fields are
//! searchable: a weighted full text vector (GIN over
//! `crm_system.search_vector`, `simple` configuration, accents off) and
//! the fields' text for trigram similarity (GIN over
//! `crm_system.search_text`), which finds "Jonh" for "John".
//!
//! `search` writes the same expressions in its queries (so Postgres uses
//! the indexes), from [`vector`] and [`text`]. Each index carries a comment
//! naming the fields it covers ([`signature`]); after every metadata change
//! [`sync`] rebuilds the indexes whose fields changed and drops those of
//! objects left without searchable fields, so a custom field made
//! searchable in a sandbox is searchable there, and in production once
//! promoted.

use diesel::sql_types::Text;
use diesel_async::AsyncPgConnection;

use super::{index_name, run};
use crate::db::sql::{Bind, Sql};
use crate::error::Result;
use crate::metadata::change::Target;
use crate::metadata::{Access, FieldDef, FieldKind, Model, ObjectDef};

/// The weight of a searchable field in the rank: a record's title (its
/// name, a person's names) first, then an email, then anything else.
fn weight(field: &FieldDef) -> char {
    match (field.name.as_str(), &field.kind) {
        ("name" | "firstName" | "lastName", _) => 'A',
        (_, FieldKind::Email) => 'B',
        _ => 'C',
    }
}

/// Whether `search` covers records of `object`: CRM records with
/// searchable fields.
pub fn searched(object: &ObjectDef) -> bool {
    object.access == Access::Record && object.schema.is_none() && object.fields.iter().any(|f| f.searchable)
}

/// The searchable fields of `object` with their weights, in field order.
pub fn fields(object: &ObjectDef) -> Vec<(&FieldDef, char)> {
    object
        .fields
        .iter()
        .filter(|f| f.searchable)
        .map(|f| (f, weight(f)))
        .collect()
}

/// `column` of table alias `alias`, or bare (in an index definition).
fn column(sql: &mut Sql, alias: Option<&str>, column: &str) {
    match alias {
        Some(alias) => sql.column(alias, column),
        None => sql.ident(column),
    };
}

/// The weighted vector of the object's searchable fields:
/// `(crm_system.search_vector(t."name", 'A') || …)`.
pub fn vector(object: &ObjectDef, alias: Option<&str>) -> Sql {
    let mut sql = Sql::raw("(");
    for (i, (field, weight)) in fields(object).into_iter().enumerate() {
        if i > 0 {
            sql.push(" || ");
        }
        sql.push("crm_system.search_vector(");
        column(&mut sql, alias, &field.column);
        sql.push(", '").push(weight.encode_utf8(&mut [0; 4])).push("')");
    }
    sql.push(")");
    sql
}

/// The searchable fields' text, accents off and lower case, for trigram
/// similarity: `crm_system.search_text(coalesce(t."name", '') || ' ' || …)`.
pub fn text(object: &ObjectDef, alias: Option<&str>) -> Sql {
    let mut sql = Sql::raw("crm_system.search_text(");
    for (i, (field, _)) in fields(object).into_iter().enumerate() {
        if i > 0 {
            sql.push(" || ' ' || ");
        }
        sql.push("coalesce(");
        column(&mut sql, alias, &field.column);
        sql.push(", '')");
    }
    sql.push(")");
    sql
}

/// What the indexes of `object` cover, as their comments say it:
/// `search: first_name A, last_name A, email B`.
pub fn signature(object: &ObjectDef) -> String {
    let fields: Vec<String> = fields(object)
        .into_iter()
        .map(|(field, weight)| format!("{} {weight}", field.column))
        .collect();
    format!("search: {}", fields.join(", "))
}

/// The names of an object's two search indexes.
fn names(table: &str) -> [(String, &'static str); 2] {
    [
        (index_name(table, "search", "fts"), "fts"),
        (index_name(table, "search", "trgm"), "trgm"),
    ]
}

/// Drops the search indexes of `table` (before its searchable column
/// changes type); [`sync`] builds them again when the change finishes.
pub async fn drop(conn: &mut AsyncPgConnection, target: &Target<'_>, table: &str) -> Result<()> {
    for (name, _) in names(table) {
        let mut drop = Sql::raw("DROP INDEX IF EXISTS ");
        drop.table(target.schema, &name);
        run(conn, target, drop).await?;
    }
    Ok(())
}

#[derive(diesel::QueryableByName)]
struct Existing {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    comment: String,
}

/// Brings the search indexes of the workspace in `target` in step with
/// `model`: builds those whose fields changed, drops those of objects
/// without searchable fields. Answers how many indexes it built.
pub async fn sync(conn: &mut AsyncPgConnection, target: &Target<'_>, model: &Model) -> Result<usize> {
    sync_schema(conn, target.schema, target.rehearsal, model).await
}

/// Brings the search indexes of every workspace (production and each
/// sandbox) in step with its model: after an upgrade that made fields
/// searchable (custom objects' names), before the server serves. Answers
/// how many indexes it built.
pub async fn sync_workspaces(conn: &mut AsyncPgConnection) -> Result<usize> {
    let mut built = 0;
    for workspace in crate::db::workspaces(conn).await? {
        let model = crate::metadata::custom::Customizations::read(conn, &workspace.pg_schema)
            .await?
            .model()?;
        built += sync_schema(conn, &workspace.pg_schema, false, &model).await?;
    }
    Ok(built)
}

/// [`sync`] in `schema`; with `rehearsal`, nothing is run.
async fn sync_schema(conn: &mut AsyncPgConnection, schema: &str, rehearsal: bool, model: &Model) -> Result<usize> {
    let mut existing = Sql::raw(
        "SELECT c.relname::text AS name, coalesce(obj_description(c.oid, 'pg_class'), '') AS comment \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'i' AND n.nspname = ",
    );
    existing
        .bind(Bind::Text(Some(schema.to_owned())))
        .push(" AND c.relname LIKE '%\\_search\\_%'");
    let existing: Vec<Existing> = existing.load(conn).await?;
    let mut built = 0;
    for object in model.objects() {
        if object.access != Access::Record || object.schema.is_some() {
            continue;
        }
        let wanted = searched(object).then(|| signature(object));
        for (name, kind) in names(&object.table) {
            let found = existing.iter().find(|e| e.name == name);
            if found.map(|f| &f.comment) == wanted.as_ref() {
                continue;
            }
            if found.is_some() {
                let mut drop = Sql::raw("DROP INDEX ");
                drop.table(schema, &name);
                run_unless(conn, rehearsal, drop).await?;
            }
            let Some(signature) = &wanted else {
                continue;
            };
            let mut create = Sql::raw("CREATE INDEX ");
            create.ident(&name).push(" ON ").table(schema, &object.table);
            if kind == "fts" {
                create.push(" USING gin (").append(&vector(object, None)).push(")");
            } else {
                create
                    .push(" USING gin (")
                    .append(&text(object, None))
                    .push(" crm_system.gin_trgm_ops)");
            }
            run_unless(conn, rehearsal, create).await?;
            let mut comment = Sql::raw("COMMENT ON INDEX ");
            comment.table(schema, &name).push(" IS ").string_literal(signature);
            run_unless(conn, rehearsal, comment).await?;
            built += 1;
        }
    }
    Ok(built)
}

/// Runs `statement` unless the change only rehearses.
async fn run_unless(conn: &mut AsyncPgConnection, rehearsal: bool, statement: Sql) -> Result<()> {
    if !rehearsal {
        statement.execute(conn).await?;
    }
    Ok(())
}

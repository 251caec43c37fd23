//! The search columns of an object, made from which of its fields are
//! searchable: `search_document`, a weighted full text vector
//! (`crm_system.search_vector`: `simple` configuration, accents off), and
//! `search_words`, the fields' text for trigram similarity
//! (`crm_system.search_text`), which finds "Jonh" for "John". Both are
//! stored generated columns with a GIN index each: Postgres keeps them on
//! every write, and ranking reads them instead of computing them per hit.
//!
//! The document column carries a comment naming the fields it covers
//! ([`signature`]); after every metadata change [`sync`] makes the columns
//! again for objects whose searchable fields changed (one rewrite of the
//! table) and drops those of objects left without any, so a custom field
//! made searchable in a sandbox is searchable there, and in production
//! once promoted.

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

/// The column holding a record's weighted full text vector.
pub const DOCUMENT: &str = "search_document";
/// The column holding a record's searchable text, for trigram similarity.
pub const WORDS: &str = "search_words";

/// The weighted vector of the object's searchable fields, as its stored
/// column is generated: `crm_system.search_vector("name", 'A') || …`.
fn vector(object: &ObjectDef) -> Sql {
    let mut sql = Sql::new();
    for (i, (field, weight)) in fields(object).into_iter().enumerate() {
        if i > 0 {
            sql.push(" || ");
        }
        sql.push("crm_system.search_vector(").ident(&field.column);
        sql.push(", '").push(weight.encode_utf8(&mut [0; 4])).push("')");
    }
    sql
}

/// The searchable fields' text, accents off and lower case, as its stored
/// column is generated: `crm_system.search_text(coalesce("name", '') || ' ' || …)`.
fn text(object: &ObjectDef) -> Sql {
    let mut sql = Sql::raw("crm_system.search_text(");
    for (i, (field, _)) in fields(object).into_iter().enumerate() {
        if i > 0 {
            sql.push(" || ' ' || ");
        }
        sql.push("coalesce(").ident(&field.column).push(", '')");
    }
    sql.push(")");
    sql
}

/// What the search columns of `object` cover, as the comment on its
/// document column says it: `search: first_name A, last_name A, email B`.
pub fn signature(object: &ObjectDef) -> String {
    let fields: Vec<String> = fields(object)
        .into_iter()
        .map(|(field, weight)| format!("{} {weight}", field.column))
        .collect();
    format!("search: {}", fields.join(", "))
}

/// The names of an object's two search indexes.
fn names(table: &str) -> [String; 2] {
    [index_name(table, "search", "fts"), index_name(table, "search", "trgm")]
}

/// Drops the search columns of `table` and their indexes (before a
/// searchable column changes type: a generated column holds on to it);
/// [`sync`] makes them again when the change finishes.
pub async fn drop(conn: &mut AsyncPgConnection, target: &Target<'_>, table: &str) -> Result<()> {
    let mut drop = super::alter_table(target.schema, table);
    drop.push(" DROP COLUMN IF EXISTS ").ident(DOCUMENT);
    drop.push(", DROP COLUMN IF EXISTS ").ident(WORDS);
    run(conn, target, drop).await
}

/// A searchable column renamed: the generated columns follow it (Postgres
/// keeps them on the column), so only the comment naming the fields does,
/// and the table is not rebuilt for a name.
pub async fn renamed(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    table: &str,
    (old, new): (&str, &str),
) -> Result<()> {
    let found: Vec<Existing> = existing(target.schema, Some(table)).load(conn).await?;
    let Some(found) = found.into_iter().next() else {
        return Ok(());
    };
    let Some(fields) = found.comment.strip_prefix("search: ") else {
        return Ok(());
    };
    let fields: Vec<String> = fields
        .split(", ")
        .map(|entry| match entry.rsplit_once(' ') {
            Some((column, weight)) if column == old => format!("{new} {weight}"),
            _ => entry.to_owned(),
        })
        .collect();
    let mut comment = Sql::raw("COMMENT ON COLUMN ");
    comment.table(target.schema, table).push(".").ident(DOCUMENT);
    comment
        .push(" IS ")
        .string_literal(&format!("search: {}", fields.join(", ")));
    run(conn, target, comment).await
}

/// The tables of `schema` (or `table` alone) with a document column, and
/// its comment.
fn existing(schema: &str, table: Option<&str>) -> Sql {
    let mut sql = Sql::raw(
        "SELECT c.relname::text AS table, coalesce(col_description(c.oid, a.attnum), '') AS comment \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND NOT a.attisdropped AND a.attname = ",
    );
    sql.bind(Bind::Text(Some(DOCUMENT.to_owned())))
        .push(" AND n.nspname = ")
        .bind(Bind::Text(Some(schema.to_owned())));
    if let Some(table) = table {
        sql.push(" AND c.relname = ").bind(Bind::Text(Some(table.to_owned())));
    }
    sql
}

#[derive(diesel::QueryableByName)]
struct Existing {
    #[diesel(sql_type = Text)]
    table: String,
    #[diesel(sql_type = Text)]
    comment: String,
}

/// Brings the search columns of the workspace in `target` in step with
/// `model` (see [`sync_schema`]).
pub async fn sync(conn: &mut AsyncPgConnection, target: &Target<'_>, model: &Model) -> Result<usize> {
    sync_schema(conn, target.schema, target.rehearsal, model).await
}

/// Brings the search columns of every workspace (production and each
/// sandbox) in step with its model: after an upgrade that made fields
/// searchable (custom objects' names), before the server serves. Answers
/// how many objects it made them for.
pub async fn sync_workspaces(conn: &mut AsyncPgConnection) -> Result<usize> {
    use diesel_async::AsyncConnection;
    let mut built = 0;
    for workspace in crate::db::workspaces(conn).await? {
        let schema = workspace.pg_schema;
        // Holding the workspace's settings row, as a metadata change does:
        // the model read is the one the columns are made for.
        built += conn
            .transaction::<_, crate::error::CrmError, _>(async |conn| {
                let mut lock = Sql::raw("SELECT 1 AS one FROM ");
                lock.table(&schema, "workspace_settings").push(" FOR UPDATE");
                lock.execute(conn).await?;
                let model = crate::metadata::custom::Customizations::read(conn, &schema)
                    .await?
                    .model()?;
                sync_schema(conn, &schema, false, &model).await
            })
            .await?;
    }
    Ok(built)
}

/// Makes the search columns of each object whose searchable fields changed
/// (stored generated columns: the table is rewritten once, and every write
/// keeps them) with their GIN indexes, and drops those of objects left
/// without searchable fields; with `rehearsal`, nothing is run. Answers
/// how many objects it made them for.
async fn sync_schema(conn: &mut AsyncPgConnection, schema: &str, rehearsal: bool, model: &Model) -> Result<usize> {
    let existing: Vec<Existing> = existing(schema, None).load(conn).await?;
    let mut built = 0;
    for object in model.objects() {
        if object.access != Access::Record || object.schema.is_some() {
            continue;
        }
        let wanted = searched(object).then(|| signature(object));
        let found = existing.iter().find(|e| e.table == object.table);
        if found.map(|f| &f.comment) == wanted.as_ref() {
            continue;
        }
        let mut alter = super::alter_table(schema, &object.table);
        alter.push(" DROP COLUMN IF EXISTS ").ident(DOCUMENT);
        alter.push(", DROP COLUMN IF EXISTS ").ident(WORDS);
        if let Some(signature) = &wanted {
            alter.push(", ADD COLUMN ").ident(DOCUMENT);
            alter
                .push(" tsvector GENERATED ALWAYS AS (")
                .append(&vector(object))
                .push(") STORED");
            alter.push(", ADD COLUMN ").ident(WORDS);
            alter
                .push(" text GENERATED ALWAYS AS (")
                .append(&text(object))
                .push(") STORED");
            run_unless(conn, rehearsal, alter).await?;
            let [fts, trgm] = names(&object.table);
            // Indexes of that name on other expressions (an older layout) go.
            for name in [&fts, &trgm] {
                let mut drop = Sql::raw("DROP INDEX IF EXISTS ");
                drop.table(schema, name);
                run_unless(conn, rehearsal, drop).await?;
            }
            let mut index = Sql::raw("CREATE INDEX ");
            index.ident(&fts).push(" ON ").table(schema, &object.table);
            index.push(" USING gin (").ident(DOCUMENT).push(")");
            run_unless(conn, rehearsal, index).await?;
            let mut index = Sql::raw("CREATE INDEX ");
            index.ident(&trgm).push(" ON ").table(schema, &object.table);
            index
                .push(" USING gin (")
                .ident(WORDS)
                .push(" crm_system.gin_trgm_ops)");
            run_unless(conn, rehearsal, index).await?;
            let mut comment = Sql::raw("COMMENT ON COLUMN ");
            comment.table(schema, &object.table).push(".").ident(DOCUMENT);
            comment.push(" IS ").string_literal(signature);
            run_unless(conn, rehearsal, comment).await?;
            built += 1;
        } else {
            run_unless(conn, rehearsal, alter).await?;
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

//! The indexes duplicate rules compare through, one per (field, method):
//! a btree on the compared expression (`crm_system.normalized_email(email)`)
//! or a trigram GIN for FUZZY. Kept in step with the active rules after
//! every change of a rule and every promotion: built when a rule needs
//! one, dropped when none does. Each carries a comment naming what it
//! compares (method, column, function), so one whose field changed type is
//! built again. A field's type change drops them (`metadata::field::retype`):
//! until the next rule change or promotion builds them again, matching
//! reads the table.

use diesel::sql_types::Text;
use diesel_async::AsyncPgConnection;

use super::rules::{self, Criterion, Method};
use crate::db::sql::{Bind, Sql};
use crate::error::Result;
use crate::metadata::ddl::index_name;
use crate::metadata::Model;

/// An index a rule needs.
struct Wanted {
    name: String,
    table: String,
    comment: String,
    criterion: Criterion,
}

fn suffix(criterion: &Criterion) -> &'static str {
    match criterion.method_name() {
        "EXACT" => "dupx",
        "NORMALIZED" => "dupn",
        "DOMAIN" => "dupd",
        _ => "dupf",
    }
}

#[derive(diesel::QueryableByName)]
struct Existing {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    comment: String,
}

/// Builds the indexes the active rules need and drops those none needs.
pub async fn sync(conn: &mut AsyncPgConnection, schema: &str, model: &Model) -> Result<()> {
    let mut wanted: Vec<Wanted> = Vec::new();
    for rule in rules::active(conn, schema, model, None).await? {
        let Ok(object) = rules::object(model, &rule.object, &[]) else {
            continue;
        };
        for criterion in rule.criteria {
            let name = index_name(&object.table, &criterion.field.column, suffix(&criterion));
            if wanted.iter().any(|w| w.name == name) {
                continue;
            }
            wanted.push(Wanted {
                name,
                table: object.table.clone(),
                comment: format!(
                    "duplicates: {} {} {}",
                    criterion.method_name(),
                    criterion.field.column,
                    criterion.function().unwrap_or("-")
                ),
                criterion,
            });
        }
    }
    let mut existing = Sql::raw(
        "SELECT c.relname::text AS name, coalesce(obj_description(c.oid, 'pg_class'), '') AS comment \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'i' AND n.nspname = ",
    );
    existing
        .bind(Bind::Text(Some(schema.to_owned())))
        .push(" AND c.relname ~ '_dup[xndf]$'");
    let existing: Vec<Existing> = existing.load(conn).await?;
    for index in &existing {
        if !wanted
            .iter()
            .any(|w| w.name == index.name && w.comment == index.comment)
        {
            let mut drop = Sql::raw("DROP INDEX ");
            drop.table(schema, &index.name);
            drop.execute(conn).await?;
        }
    }
    for index in wanted {
        if existing
            .iter()
            .any(|e| e.name == index.name && e.comment == index.comment)
        {
            continue;
        }
        let mut create = Sql::raw("CREATE INDEX ");
        create.ident(&index.name).push(" ON ").table(schema, &index.table);
        if index.criterion.method == Method::Fuzzy {
            create
                .push(" USING gin (")
                .append(&index.criterion.key(None))
                .push(" crm_system.gin_trgm_ops)");
        } else {
            create.push(" (").append(&index.criterion.key(None)).push(")");
        }
        create.execute(conn).await?;
        let mut comment = Sql::raw("COMMENT ON INDEX ");
        comment
            .table(schema, &index.name)
            .push(" IS ")
            .string_literal(&index.comment);
        comment.execute(conn).await?;
    }
    Ok(())
}

//! `findDuplicates`: the records of an object that a rule finds to be one
//! customer, as clusters. A cluster is headed by its oldest record and
//! holds every newer record matching it; a record matching an older one
//! heads none. Only records the caller may see take part.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use diesel::sql_types::{Array, Uuid as SqlUuid};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::rules::Rule;
use crate::db::sql::{Bind, Sql};
use crate::error::Result;
use crate::records::Table;

/// A cluster: its rule, its head and the records matching the head.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub rule: Rule,
    pub head: Uuid,
    /// Head first, then the others, oldest first.
    pub records: Vec<Uuid>,
}

impl Cluster {
    pub fn cursor(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("dup:{}|{}", self.rule.id, self.head))
    }
}

/// Where a page of clusters starts: after this rule's cluster of this head.
pub fn decode(text: &str) -> Option<(Uuid, Uuid)> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (rule, head) = text.strip_prefix("dup:")?.split_once('|')?;
    Some((rule.parse().ok()?, head.parse().ok()?))
}

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = SqlUuid)]
    head: Uuid,
    #[diesel(sql_type = Array<SqlUuid>)]
    members: Vec<Uuid>,
}

/// `a` and `b` match by every criterion of `rule`.
fn pairing(rule: &Rule, a: &str, b: &str) -> Sql {
    let mut sql = Sql::raw("true");
    for criterion in &rule.criteria {
        sql.push(" AND ").append(&criterion.pairing(a, b));
    }
    sql
}

/// Live rows of alias `alias` the caller may see.
fn seen(table: &Table<'_>, alias: &str) -> Sql {
    table.rows(false, alias)
}

/// Up to `limit` clusters of `rule`, by head id after `after`. Runs in
/// the caller's transaction (the similarity threshold is set for it).
pub async fn of_rule(
    conn: &mut AsyncPgConnection,
    table: Table<'_>,
    rule: &Rule,
    after: Option<Uuid>,
    limit: usize,
) -> Result<Vec<Cluster>> {
    if let Some(threshold) = rule.fuzzy_threshold() {
        let mut set = Sql::raw("SELECT set_config('pg_trgm.similarity_threshold', ");
        set.bind(Bind::Text(Some(format!("{threshold:.2}")))).push(", true)");
        set.execute(conn).await?;
    }
    let mut sql = Sql::raw("SELECT h.id AS head, array_agg(m.id ORDER BY m.created_at, m.id) AS members");
    sql.append(&table.from_as("h")).push(" JOIN ");
    sql.table(table.schema, &table.object.table)
        .push(" m ON (m.created_at, m.id) > (h.created_at, h.id) AND ");
    sql.append(&seen(&table, "m"))
        .push(" AND ")
        .append(&pairing(rule, "h", "m"));
    sql.push(" WHERE ").append(&seen(&table, "h"));
    if let Some(after) = after {
        sql.push(" AND h.id > ").bind(Bind::Uuid(Some(after)));
    }
    sql.push(" AND NOT EXISTS (SELECT 1 FROM ");
    sql.table(table.schema, &table.object.table)
        .push(" o WHERE (o.created_at, o.id) < (h.created_at, h.id) AND ");
    sql.append(&seen(&table, "o"))
        .push(" AND ")
        .append(&pairing(rule, "o", "h"))
        .push(")");
    sql.push(" GROUP BY h.id ORDER BY h.id LIMIT ").push(&limit.to_string());
    let rows: Vec<Row> = sql.load(conn).await?;
    Ok(rows
        .into_iter()
        .map(|row| Cluster {
            rule: rule.clone(),
            head: row.head,
            records: std::iter::once(row.head).chain(row.members).collect(),
        })
        .collect())
}

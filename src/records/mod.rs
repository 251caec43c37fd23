//! Reading records: SQL compiled from metadata.
//!
//! Postgres builds each row as a JSON document keyed by API names
//! (`jsonb_build_object`), so Rust never decodes and re-encodes columns.
//! Identifiers come from the [`ObjectDef`]; values are bind parameters.

pub mod filter;
pub mod merged;
pub mod page;
pub mod window;
pub mod write;

use std::collections::HashMap;
use std::sync::Arc;

use diesel::sql_types::{BigInt, Jsonb};
use serde_json::Value as Json;
use uuid::Uuid;

use crate::audit;
use crate::db::sql::{Bind, JsonRow, Sql};
use crate::db::Conn;
use crate::error::Result;
use crate::metadata::{FieldDef, FieldKind, ObjectDef};

pub use filter::{Filter, Quantifier};
pub use page::{Cursor, OrderKey, Page, PageRequest};

/// The alias of the main table in every query.
const T: &str = "t";

/// A row document: API names → JSON values. Shared, because loaders hand
/// the same record to every field that asked for it.
pub type Record = std::sync::Arc<serde_json::Map<String, Json>>;

/// The records one request may read, per object: a condition added to
/// every statement that reads the object, on either execution path, and to
/// every check that a referred record exists. `access` decides it.
#[derive(Debug, Clone, Default)]
pub struct Visibility(Option<Arc<HashMap<String, Filter>>>);

impl Visibility {
    /// Nothing hidden: admins, and the server's own work.
    pub fn all() -> Self {
        Visibility(None)
    }

    /// Only the rows of each object that its filter holds for.
    pub fn restricted(filters: HashMap<String, Filter>) -> Self {
        Visibility(Some(Arc::new(filters)))
    }

    /// The condition on rows of `object`, if any.
    pub fn filter(&self, object: &str) -> Option<&Filter> {
        self.0.as_ref()?.get(object)
    }
}

/// Nothing hidden: what the server's own work and unrestricted reads use.
static EVERYTHING: Visibility = Visibility(None);

/// Where an object's rows live: a workspace schema and the object.
#[derive(Debug, Clone, Copy)]
pub struct Table<'a> {
    /// The schema holding this object's table.
    pub schema: &'a str,
    /// The workspace the request runs in: related tables are found there.
    pub workspace_schema: &'a str,
    pub object: &'a ObjectDef,
    /// The records the request may see, of this object and of those its
    /// lookups refer to.
    pub visibility: &'a Visibility,
}

impl<'a> Table<'a> {
    /// The table of `object` in a workspace (or its own schema, for global objects).
    pub fn new(workspace_schema: &'a str, object: &'a ObjectDef) -> Self {
        Table {
            schema: object.schema_in(workspace_schema),
            workspace_schema,
            object,
            visibility: &EVERYTHING,
        }
    }

    /// The same table, read only as far as `visibility` allows.
    pub fn restricted(self, visibility: &'a Visibility) -> Self {
        Table { visibility, ..self }
    }

    /// The same table with every row visible.
    pub fn unrestricted(self) -> Self {
        Table {
            visibility: &EVERYTHING,
            ..self
        }
    }

    /// The condition on this table's rows the request may see, if any.
    pub fn visible(&self) -> Option<&'a Filter> {
        self.visibility.filter(&self.object.name)
    }

    /// The rows of table alias `alias` a request reads: live ones (or all,
    /// with `include_deleted`) that it may see.
    pub fn rows(&self, include_deleted: bool, alias: &str) -> Sql {
        let mut sql = live_rows(include_deleted, alias);
        if let Some(visible) = self.visible() {
            sql.push(" AND (")
                .append(&visible.compile(self.workspace_schema, alias))
                .push(")");
        }
        sql
    }

    /// ` FROM "schema"."table" "alias"`.
    pub fn from_as(&self, alias: &str) -> Sql {
        let mut sql = Sql::raw(" FROM ");
        sql.table(self.schema, &self.object.table).push(" ").ident(alias);
        sql
    }
}

/// The fields of an object a query needs, as sorted positions in
/// `ObjectDef::fields`: projecting only these keeps both Postgres's JSON
/// building and Rust's parsing proportional to what the client asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldSet(Vec<usize>);

impl FieldSet {
    /// Every field (mutations return whole records).
    pub fn all(object: &ObjectDef) -> Self {
        FieldSet((0..object.fields.len()).collect())
    }

    /// The fields with these value keys, plus `id`; unknown keys are ignored.
    pub fn of<'k>(object: &ObjectDef, keys: impl IntoIterator<Item = &'k str>) -> Self {
        let mut positions: Vec<usize> = keys
            .into_iter()
            .chain(["id"])
            .filter_map(|key| object.fields.iter().position(|f| f.value_key() == key))
            .collect();
        positions.sort_unstable();
        positions.dedup();
        FieldSet(positions)
    }

    /// The fields of `object` in this set.
    pub fn fields<'o>(&self, object: &'o ObjectDef) -> impl Iterator<Item = &'o FieldDef> + use<'o, '_> {
        self.0.iter().filter_map(|&i| object.fields.get(i))
    }
}

/// `jsonb_build_object('name', t.name, …)` for the fields in `fields`, in
/// chunks of 50 pairs (Postgres allows 100 arguments per call) joined with `||`.
pub fn projection(object: &ObjectDef, fields: &FieldSet, alias: &str) -> Sql {
    let fields: Vec<&FieldDef> = fields.fields(object).collect();
    let chunks: Vec<Sql> = fields
        .chunks(50)
        .map(|fields| {
            let pairs: Vec<Sql> = fields
                .iter()
                .map(|field| {
                    let mut pair = Sql::raw("'");
                    // API names are validated identifiers ([A-Za-z0-9]), safe in a literal.
                    pair.push(&field.value_key()).push("', ");
                    pair.append(&column_json(field, alias));
                    pair
                })
                .collect();
            let mut chunk = Sql::raw("jsonb_build_object(");
            chunk.join(&pairs, ", ").push(")");
            chunk
        })
        .collect();
    let mut sql = Sql::new();
    sql.join(&chunks, " || ");
    sql
}

/// A column as the JSON value clients get: decimals as text (no float
/// rounding), instants as RFC 3339 UTC.
pub fn column_json(field: &FieldDef, alias: &str) -> Sql {
    let mut column = Sql::new();
    column.column(alias, &field.column);
    value_json(field, column)
}

/// A value of `field` (a column or an expression) as clients get it.
pub fn value_json(field: &FieldDef, value: Sql) -> Sql {
    let mut sql = Sql::new();
    match field.kind {
        FieldKind::Decimal | FieldKind::Currency | FieldKind::Percent => {
            sql.push("(").append(&value).push(")::text");
        }
        FieldKind::DateTime => {
            sql.push("to_char(").append(&value);
            sql.push(" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
        }
        _ => {
            sql.append(&value);
        }
    }
    sql
}

/// The values of sort keys read through lookups, added to each row
/// document (`'account.name', …`) so its cursor can be made from it.
fn through_values(order: &[OrderKey], alias: &str) -> Sql {
    let pairs: Vec<Sql> = order
        .iter()
        .filter(|key| key.through.is_some())
        .map(|key| {
            let mut pair = Sql::raw("'");
            // Value keys are validated API names joined by a dot.
            pair.push(&key.value_key()).push("', ").append(&key.json(alias));
            pair
        })
        .collect();
    let mut sql = Sql::new();
    if !pairs.is_empty() {
        sql.push(" || jsonb_build_object(").join(&pairs, ", ").push(")");
    }
    sql
}

/// Rows not soft-deleted (or every row, with `include_deleted`) of table alias `alias`.
fn live_rows(include_deleted: bool, alias: &str) -> Sql {
    let mut sql = Sql::new();
    if include_deleted {
        sql.push("true");
    } else {
        sql.column(alias, "deleted_at").push(" IS NULL");
    }
    sql
}

async fn load_json(conn: &mut diesel_async::AsyncPgConnection, query: Sql) -> Result<Vec<Json>> {
    let rows: Vec<JsonRow> = query.load(conn).await?;
    Ok(rows.into_iter().map(|r| r.row).collect())
}

/// Turns a row document into a [`Record`].
pub fn into_record(json: Json) -> Record {
    match json {
        Json::Object(map) => Record::new(map),
        _ => Record::default(),
    }
}

/// Live records with the given ids, keyed by id. One statement.
pub async fn get_many(
    conn: &mut diesel_async::AsyncPgConnection,
    table: Table<'_>,
    fields: &FieldSet,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Record>> {
    let mut query = Sql::raw("SELECT ");
    query.append(&projection(table.object, fields, T)).push(" AS row");
    query.append(&table.from_as(T)).push(" WHERE ");
    query
        .column(T, "id")
        .push(" = ANY(")
        .bind(Bind::UuidArray(ids.to_vec()))
        .push(") AND ");
    query.append(&table.rows(false, T));
    let rows = load_json(conn, query).await?;
    Ok(rows
        .into_iter()
        .map(into_record)
        .filter_map(|r| Some((record_id(&r)?, r)))
        .collect())
}

/// The ids a query selects (`SELECT … AS id`), in its order.
pub async fn ids(conn: &mut diesel_async::AsyncPgConnection, query: Sql) -> Result<Vec<Uuid>> {
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: Uuid,
    }
    Ok(query.load::<Id>(conn).await?.into_iter().map(|row| row.id).collect())
}

/// What a record is called in lists of records of several kinds (search
/// hits, duplicate matches): a person's names, else its name, else its id.
pub fn title(object: &ObjectDef, alias: &str) -> Sql {
    let has = |name: &str| object.field(name).map(|f| f.column.clone());
    let mut sql = Sql::new();
    match (has("firstName"), has("lastName"), has("name")) {
        (Some(first), Some(last), _) => {
            sql.push("concat_ws(' ', ")
                .column(alias, &first)
                .push(", ")
                .column(alias, &last)
                .push(")");
        }
        (_, _, Some(name)) => {
            sql.push("coalesce(")
                .column(alias, &name)
                .push(", ")
                .column(alias, "id")
                .push("::text)");
        }
        _ => {
            sql.column(alias, "id").push("::text");
        }
    }
    sql
}

/// Whether a record is deleted (it carries `deletedAt`).
pub fn is_deleted(record: &Record) -> bool {
    record.get("deletedAt").is_some_and(|at| !at.is_null())
}

/// The id of a row document.
pub fn record_id(record: &Record) -> Option<Uuid> {
    record.get("id")?.as_str()?.parse().ok()
}

/// The audit entry of a record written through the API: `before` is
/// `None` for a new record.
pub fn audit_entry(object: &ObjectDef, action: audit::Action, before: Option<&Record>, after: &Record) -> audit::Entry {
    let fields = object.fields.iter().map(|field| field.value_key());
    audit::Entry {
        object: object.name.clone(),
        record_id: record_id(after),
        action,
        changes: audit::changes_of(fields, before.map(|b| &**b), after),
    }
}

/// One page of an object's records, in keyset order.
pub async fn list(conn: &mut Conn, table: Table<'_>, fields: &FieldSet, request: &PageRequest) -> Result<Page> {
    let order = request.effective_order();
    let mut query = Sql::raw("SELECT ");
    query.append(&projection(table.object, fields, T));
    query.append(&through_values(&order, T)).push(" AS row");
    query.append(&table.from_as(T)).push(" WHERE ");
    query.append(&table.rows(request.include_deleted, T));
    if let Some(filter) = &request.filter {
        query
            .push(" AND (")
            .append(&filter.compile(table.workspace_schema, T))
            .push(")");
    }
    if let Some(cursor) = request.cursor() {
        query.push(" AND ").append(&page::after_cursor(&order, cursor, T));
    }
    let limit = request.limit() + 1;
    if let Some(candidates) = window::candidates(&table, request, limit, T) {
        query.push(" AND ").append(&candidates);
    }
    query.push(" ORDER BY ").append(&page::order_by(&order, T));
    // The page size (0–500, checked) is written into the text: with a bound
    // LIMIT Postgres re-plans the cached statement on every run.
    query.push(" LIMIT ").push(&limit.to_string());
    let rows = load_json(conn, query).await?;
    Ok(request.page_from(rows.into_iter().map(into_record).collect()))
}

/// How many live records match `filter`.
pub async fn count(conn: &mut Conn, table: Table<'_>, filter: Option<&Filter>, include_deleted: bool) -> Result<i64> {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        count: i64,
    }
    let mut query = Sql::raw("SELECT count(*) AS count");
    query
        .append(&table.from_as(T))
        .push(" WHERE ")
        .append(&table.rows(include_deleted, T));
    if let Some(filter) = filter {
        query
            .push(" AND (")
            .append(&filter.compile(table.workspace_schema, T))
            .push(")");
    }
    let rows: Vec<Count> = query.load(conn).await?;
    Ok(rows.first().map(|c| c.count).unwrap_or(0))
}

/// A page of the records referring to one parent through a lookup.
#[derive(Debug, Clone, Default)]
pub struct ChildPage {
    pub records: Vec<Record>,
    pub has_next_page: bool,
    pub has_previous_page: bool,
    /// Every matching child of the parent, on all pages.
    pub total_count: i64,
}

/// One page of children of many parents at once: one statement with a
/// window per parent (`row_number() OVER (PARTITION BY lookup …)`), so a
/// list of N parents costs one query, not N. A cursor applies within each
/// parent's list; `total` counts every matching child, cursor or not.
pub async fn children(
    conn: &mut Conn,
    table: Table<'_>,
    lookup: &FieldDef,
    fields: &FieldSet,
    parents: &[Uuid],
    request: &PageRequest,
) -> Result<HashMap<Uuid, ChildPage>> {
    #[derive(diesel::QueryableByName)]
    struct ChildRow {
        #[diesel(sql_type = Jsonb)]
        document: Json,
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        parent: Uuid,
        #[diesel(sql_type = BigInt)]
        total: i64,
    }
    let order = request.effective_order();
    // Rows past the cursor are numbered; the others only count to the total.
    let past_cursor = match request.cursor() {
        Some(cursor) => page::after_cursor(&order, cursor, T),
        None => Sql::raw("true"),
    };
    let mut partition = Sql::raw("PARTITION BY ");
    partition.column(T, &lookup.column);
    let mut inner = Sql::raw("SELECT ");
    inner.append(&projection(table.object, fields, T));
    inner.append(&through_values(&order, T)).push(" AS row, ");
    inner.column(T, &lookup.column).push(" AS parent, ");
    inner.append(&past_cursor).push(" AS past_cursor, row_number() OVER (");
    inner.append(&partition).push(", ").append(&past_cursor);
    inner.push(" ORDER BY ").append(&page::order_by(&order, T));
    inner
        .push(") AS position, count(*) OVER (")
        .append(&partition)
        .push(") AS total");
    inner.append(&table.from_as(T)).push(" WHERE ");
    inner
        .column(T, &lookup.column)
        .push(" = ANY(")
        .bind(Bind::UuidArray(parents.to_vec()))
        .push(")");
    inner.push(" AND ").append(&table.rows(request.include_deleted, T));
    if let Some(filter) = &request.filter {
        inner
            .push(" AND (")
            .append(&filter.compile(table.workspace_schema, T))
            .push(")");
    }
    let mut query = Sql::raw("SELECT row AS document, parent, total FROM (");
    query.append(&inner).push(") AS c WHERE past_cursor AND position <= ");
    query.push(&(request.limit() + 1).to_string());
    query.push(" ORDER BY parent, position");
    let rows: Vec<ChildRow> = query.load(conn).await?;

    let mut by_parent: HashMap<Uuid, (i64, Vec<Record>)> = HashMap::new();
    for row in rows {
        let entry = by_parent.entry(row.parent).or_default();
        entry.0 = row.total;
        entry.1.push(into_record(row.document));
    }
    Ok(by_parent
        .into_iter()
        .map(|(parent, (total_count, rows))| {
            let page = request.page_from(rows);
            let child_page = ChildPage {
                records: page.records,
                has_next_page: page.has_next_page,
                has_previous_page: page.has_previous_page,
                total_count,
            };
            (parent, child_page)
        })
        .collect())
}

//! Ordering and keyset pagination.
//!
//! Every order is made total by ending it with `id`, and pages continue
//! from a cursor holding the last row's order-key values (no OFFSET), so
//! cursors stay valid while rows are inserted.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value as Json};

use super::{Filter, Record};
use crate::db::sql::{Bind, Sql};
use crate::metadata::{FieldDef, FieldKind};

/// Page size when the client names none.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// The largest page a client may ask for.
pub const MAX_PAGE_SIZE: usize = 500;

/// One key of an ORDER BY.
#[derive(Debug, Clone)]
pub struct OrderKey {
    /// The field sorted by: the record's own, or (with `through`) a field
    /// of the record its lookup refers to.
    pub field: FieldDef,
    pub descending: bool,
    pub nulls_first: bool,
    pub through: Option<Through>,
}

/// A lookup a sort key reads through: `contacts` by `account.name`.
#[derive(Debug, Clone)]
pub struct Through {
    /// The lookup's API name (`account`) and column (`account_id`).
    pub lookup: String,
    pub column: String,
    /// Where the referred records live.
    pub schema: String,
    pub table: String,
    /// The workspace's schema, where a visibility condition finds related tables.
    pub workspace_schema: String,
    /// The referred records the request may see (`access::Visibility`):
    /// others sort as empty, so neither the order nor a cursor tells
    /// anything about them.
    pub visible: Option<Filter>,
}

impl OrderKey {
    /// Postgres' default null placement: last when ascending.
    pub fn new(field: FieldDef, descending: bool, nulls_first: Option<bool>) -> Self {
        OrderKey {
            field,
            descending,
            nulls_first: nulls_first.unwrap_or(descending),
            through: None,
        }
    }

    /// A key on a field of the record a lookup refers to.
    pub fn through(mut self, through: Through) -> Self {
        self.through = Some(through);
        self
    }

    fn reversed(&self) -> Self {
        OrderKey {
            field: self.field.clone(),
            descending: !self.descending,
            nulls_first: !self.nulls_first,
            through: self.through.clone(),
        }
    }

    fn signature(&self) -> String {
        format!(
            "{}:{}:{}",
            self.value_key(),
            if self.descending { "d" } else { "a" },
            if self.nulls_first { "f" } else { "l" }
        )
    }

    /// Where a row document holds the key's value: the field's value key,
    /// or `lookup.field` for a key read through a lookup.
    pub fn value_key(&self) -> String {
        match &self.through {
            Some(through) => format!("{}.{}", through.lookup, self.field.value_key()),
            None => self.field.value_key(),
        }
    }

    /// The key's value for table alias `alias`: its column, or the referred
    /// record's column (null when the lookup is empty or the record deleted).
    pub fn expression(&self, alias: &str) -> Sql {
        let mut sql = Sql::new();
        match &self.through {
            None => {
                sql.column(alias, &self.field.column);
            }
            Some(through) => {
                let related = format!("{alias}_by");
                sql.push("(SELECT ").column(&related, &self.field.column).push(" FROM ");
                sql.table(&through.schema, &through.table).push(" ").ident(&related);
                sql.push(" WHERE ")
                    .column(&related, "id")
                    .push(" = ")
                    .column(alias, &through.column);
                sql.push(" AND ").column(&related, "deleted_at").push(" IS NULL");
                if let Some(visible) = &through.visible {
                    sql.push(" AND (")
                        .append(&visible.compile(&through.workspace_schema, &related))
                        .push(")");
                }
                sql.push(")");
            }
        }
        sql
    }

    /// The key's value as the JSON a row document holds.
    pub fn json(&self, alias: &str) -> Sql {
        super::value_json(&self.field, self.expression(alias))
    }
}

/// An opaque position in an ordered list: the values of the row it points
/// at (decoding checks it was made for the same order).
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    values: Vec<Json>,
}

/// Why a cursor was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorError {
    Malformed,
    OtherOrder,
}

impl Cursor {
    /// The cursor of `record` in a list ordered by `order` (with `id` last).
    pub fn of(record: &Record, order: &[OrderKey]) -> String {
        let values: Vec<Json> = order
            .iter()
            .map(|key| record.get(&key.value_key()).cloned().unwrap_or(Json::Null))
            .collect();
        let doc = json!({ "o": order_signature(order), "v": values });
        URL_SAFE_NO_PAD.encode(doc.to_string())
    }

    /// Reads a cursor made for `order`.
    pub fn decode(text: &str, order: &[OrderKey]) -> Result<Cursor, CursorError> {
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| CursorError::Malformed)?;
        let doc: Json = serde_json::from_slice(&bytes).map_err(|_| CursorError::Malformed)?;
        let signature = doc.get("o").and_then(Json::as_str).ok_or(CursorError::Malformed)?;
        let values = doc.get("v").and_then(Json::as_array).ok_or(CursorError::Malformed)?;
        if signature != order_signature(order) {
            return Err(CursorError::OtherOrder);
        }
        if values.len() != order.len() {
            return Err(CursorError::Malformed);
        }
        for (key, value) in order.iter().zip(values) {
            if bind_from_json(&key.field, value).is_none() {
                return Err(CursorError::Malformed);
            }
        }
        Ok(Cursor { values: values.clone() })
    }

    /// The values of the row it points at, one per order key.
    pub(super) fn values(&self) -> &[Json] {
        &self.values
    }
}

/// The cursor of each row of table alias `alias`, computed by Postgres:
/// byte for byte what [`Cursor::of`] makes of the same row, so a page read
/// by a compiled query continues the same as one read by resolvers.
pub fn cursor_sql(order: &[OrderKey], alias: &str) -> Sql {
    // The signature is field names and order flags: safe inside a literal.
    let mut sql = Sql::raw("translate(encode(convert_to('{\"o\":\"");
    sql.push(&order_signature(order)).push("\",\"v\":[' || ");
    for (i, key) in order.iter().enumerate() {
        if i > 0 {
            sql.push(" || ',' || ");
        }
        sql.push("coalesce(to_json(")
            .append(&key.json(alias))
            .push(")::text, 'null')");
    }
    // Base64 to the URL-safe alphabet, unpadded and on one line.
    sql.push(" || ']}', 'UTF8'), 'base64'), E'+/=\\n', '-_')");
    sql
}

/// The order a cursor was made for, as the cursor names it.
pub fn order_signature(order: &[OrderKey]) -> String {
    order.iter().map(OrderKey::signature).collect::<Vec<_>>().join(",")
}

/// A request for one page.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub filter: Option<super::Filter>,
    /// The total order: the client's keys ending with `id`
    /// (see [`PageRequest::total_order`]).
    pub order: Vec<OrderKey>,
    pub first: Option<usize>,
    pub last: Option<usize>,
    pub after: Option<Cursor>,
    pub before: Option<Cursor>,
    pub include_deleted: bool,
}

/// One page of records and whether there are more on either side.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub records: Vec<Record>,
    pub has_next_page: bool,
    pub has_previous_page: bool,
}

impl PageRequest {
    /// Paging backwards (`last`/`before`): the query runs in reverse order.
    fn backward(&self) -> bool {
        self.last.is_some()
    }

    /// Rows on the page.
    pub fn limit(&self) -> usize {
        self.first.or(self.last).unwrap_or(DEFAULT_PAGE_SIZE)
    }

    /// The client's order made total with `id`.
    pub fn total_order(order: &[OrderKey], id: &FieldDef) -> Vec<OrderKey> {
        let own_id = |k: &&OrderKey| k.field.name == "id" && k.through.is_none();
        let mut keys: Vec<OrderKey> = order.iter().filter(|k| !own_id(k)).cloned().collect();
        // The tie-breaker runs the way the last key does, so one
        // `(column, id)` index serves a sort in both directions.
        let descending = keys.last().is_some_and(|k| k.descending);
        let id_key = order
            .iter()
            .find(own_id)
            .cloned()
            .unwrap_or_else(|| OrderKey::new(id.clone(), descending, None));
        keys.push(id_key);
        keys
    }

    /// The order the SQL runs in: the total order, reversed when paging backwards.
    pub fn effective_order(&self) -> Vec<OrderKey> {
        let total = self.order.clone();
        if self.backward() {
            total.iter().map(OrderKey::reversed).collect()
        } else {
            total
        }
    }

    /// The cursor the SQL continues from.
    pub fn cursor(&self) -> Option<&Cursor> {
        if self.backward() {
            self.before.as_ref()
        } else {
            self.after.as_ref()
        }
    }

    /// Cuts the `limit + 1` fetched rows to a page, in the client's order.
    pub fn page_from(&self, mut rows: Vec<Record>) -> Page {
        let more = rows.len() > self.limit();
        rows.truncate(self.limit());
        if self.backward() {
            rows.reverse();
            Page {
                records: rows,
                has_next_page: self.before.is_some(),
                has_previous_page: more,
            }
        } else {
            Page {
                records: rows,
                has_next_page: more,
                has_previous_page: self.after.is_some(),
            }
        }
    }
}

/// `ORDER BY` keys with explicit null placement.
pub fn order_by(order: &[OrderKey], alias: &str) -> Sql {
    let keys: Vec<Sql> = order
        .iter()
        .map(|key| {
            let mut sql = key.expression(alias);
            sql.push(if key.descending { " DESC" } else { " ASC" });
            sql.push(if key.nulls_first { " NULLS FIRST" } else { " NULLS LAST" });
            sql
        })
        .collect();
    let mut sql = Sql::new();
    sql.join(&keys, ", ");
    sql
}

/// Rows strictly after `cursor` in `order`:
/// `k1 > v1 OR (k1 = v1 AND k2 > v2) OR …`, with nulls placed as ordered.
pub fn after_cursor(order: &[OrderKey], cursor: &Cursor, alias: &str) -> Sql {
    after_values(order, &cursor.values, alias)
}

/// Rows strictly after the row whose order-key values are `values`.
pub(super) fn after_values(order: &[OrderKey], values: &[Json], alias: &str) -> Sql {
    if let Some(row) = row_comparison(order, values, alias) {
        return row;
    }
    let mut branches = Vec::new();
    for (i, key) in order.iter().enumerate() {
        let mut branch = Sql::raw("(");
        for (prior, value) in order[..i].iter().zip(values) {
            branch.append(&equal(prior, value, alias)).push(" AND ");
        }
        branch.append(&beyond(key, &values[i], alias)).push(")");
        branches.push(branch);
    }
    let mut sql = Sql::raw("(");
    // A NOT NULL first key bounds the rows by itself too: `k1 >= v1`
    // lets an index on it start at the cursor instead of at the first row.
    if let (Some(first), Some(value)) = (order.first(), values.first()) {
        if first.through.is_none() && first.field.required {
            if let Some(bind) = bind_from_json(&first.field, value).filter(|_| !value.is_null()) {
                sql.column(alias, &first.field.column);
                sql.push(if first.descending { " <= " } else { " >= " }).bind(bind);
                sql.push(" AND (");
                sql.join(&branches, " OR ").push("))");
                return sql;
            }
        }
    }
    sql.join(&branches, " OR ").push(")");
    sql
}

/// `(k1, k2, …) > (v1, v2, …)` (`<` descending) when every key is a NOT
/// NULL column of the record and all run one way: one condition an index
/// on the keys serves, and which PostgreSQL estimates well enough to keep
/// one generic plan for every page instead of planning each again.
fn row_comparison(order: &[OrderKey], values: &[Json], alias: &str) -> Option<Sql> {
    let descending = order.first()?.descending;
    let plain = |key: &OrderKey| key.through.is_none() && key.field.required && key.descending == descending;
    if !order.iter().all(plain) || values.iter().any(Json::is_null) {
        return None;
    }
    let binds = order
        .iter()
        .zip(values)
        .map(|(key, value)| bind_from_json(&key.field, value))
        .collect::<Option<Vec<_>>>()?;
    let mut sql = Sql::raw("(");
    for (i, key) in order.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.column(alias, &key.field.column);
    }
    sql.push(if descending { ") < (" } else { ") > (" });
    for (i, bind) in binds.into_iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind(bind);
    }
    sql.push(")");
    Some(sql)
}

fn equal(key: &OrderKey, value: &Json, alias: &str) -> Sql {
    let mut sql = key.expression(alias);
    match bind_from_json(&key.field, value) {
        Some(bind) if !value.is_null() => {
            sql.push(" = ").bind(bind);
        }
        _ => {
            sql.push(" IS NULL");
        }
    }
    sql
}

fn beyond(key: &OrderKey, value: &Json, alias: &str) -> Sql {
    let mut sql = Sql::new();
    if value.is_null() {
        if key.nulls_first {
            sql.append(&key.expression(alias)).push(" IS NOT NULL");
        } else {
            sql.push("false");
        }
        return sql;
    }
    let op = if key.descending { " < " } else { " > " };
    let Some(bind) = bind_from_json(&key.field, value) else {
        sql.push("false");
        return sql;
    };
    if key.nulls_first {
        sql.append(&key.expression(alias)).push(op).bind(bind);
    } else {
        sql.push("(").append(&key.expression(alias)).push(op).bind(bind);
        sql.push(" OR ").append(&key.expression(alias)).push(" IS NULL)");
    }
    sql
}

/// A row document's value as a typed bind parameter for `field`; `None`
/// when the JSON does not fit the field's type.
pub fn bind_from_json(field: &FieldDef, value: &Json) -> Option<Bind> {
    let null = value.is_null();
    Some(match &field.kind {
        FieldKind::Id | FieldKind::Lookup(_) => Bind::Uuid(if null {
            None
        } else {
            Some(value.as_str()?.parse().ok()?)
        }),
        FieldKind::Integer => Bind::Int(if null {
            None
        } else {
            Some(i32::try_from(value.as_i64()?).ok()?)
        }),
        FieldKind::Decimal | FieldKind::Currency | FieldKind::Percent => Bind::Decimal(if null {
            None
        } else {
            Some(crate::metadata::parse_decimal(value.as_str()?).ok()?)
        }),
        FieldKind::Boolean => Bind::Bool(if null { None } else { Some(value.as_bool()?) }),
        FieldKind::Date => Bind::Date(if null {
            None
        } else {
            Some(crate::metadata::parse_date(value.as_str()?).ok()?)
        }),
        FieldKind::DateTime => Bind::DateTime(if null {
            None
        } else {
            Some(crate::metadata::parse_datetime(value.as_str()?).ok()?)
        }),
        FieldKind::Text
        | FieldKind::Email
        | FieldKind::Url
        | FieldKind::Phone
        | FieldKind::LongText
        | FieldKind::Picklist(_) => Bind::Text(if null {
            None
        } else {
            // PostgreSQL text cannot hold NUL: no row has such a key.
            Some(value.as_str().filter(|text| !text.contains('\0'))?.to_owned())
        }),
        // Not sortable: never a cursor key.
        FieldKind::MultiPicklist(_) | FieldKind::Json => return None,
    })
}

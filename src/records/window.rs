//! Pages whose first sort key reads through a lookup (`contacts` by
//! `account.name`), found in index order.
//!
//! The key's value is a correlated subquery (see [`OrderKey::expression`]):
//! sorting by it alone, Postgres computes it for every matching row before
//! it can cut a page (489 ms over 100,000 contacts). The rows of a page are
//! instead among a few short reads that indexes serve in order:
//!
//! - **linked**: rows joined to a live, visible referred record with a
//!   value, walked in the order of the referred field's `(column, id)`
//!   index, the page's other keys sorting each run of equal values;
//! - **unlinked**: rows whose key is empty, in the order of the other
//!   keys: those with an empty lookup (its index), and those referring to a
//!   deleted, hidden or valueless record (found from the referred side).
//!
//! Each read stops at the page size; the reads after the first (in the
//! order's null placement) run only when the first came up short. Their
//! ids narrow the page's own statement, which keeps its order, cursor and
//! filter and so sorts a few dozen rows.

use serde_json::Value as Json;

use super::page::{self, OrderKey, PageRequest, Through};
use super::Table;
use crate::db::sql::Sql;

/// ` alias.id = ANY(ARRAY(…))`, the ids the page's `limit` rows are among,
/// when the page's first key (in the order the statement runs) reads
/// through a lookup; `None` when it does not.
pub fn candidates(table: &Table<'_>, request: &PageRequest, limit: usize, alias: &str) -> Option<Sql> {
    let order = request.effective_order();
    let (first, rest) = order.split_first()?;
    let through = first.through.as_ref()?;
    let reads = Reads {
        table,
        request,
        first,
        through,
        rest,
        // After the cursor's own key value, the rest of its values.
        cursor: request.cursor().map(|cursor| cursor.values()),
        limit,
    };
    let w = format!("{alias}w");
    let (linked, unlinked) = (reads.linked(&w), reads.unlinked(&w));
    let (before, after) = if first.nulls_first {
        (unlinked, linked)
    } else {
        (linked, unlinked)
    };
    let mut ids = Sql::new();
    match (before.is_empty(), after.is_empty()) {
        (true, true) => return Some(Sql::raw("false")),
        (false, true) => {
            ids.append(&union(&before));
        }
        (true, false) => {
            ids.append(&union(&after));
        }
        (false, false) => {
            // The later reads run only when the earlier ones fill no page.
            let head = format!("{w}_head");
            ids.push("WITH ").ident(&head).push(" AS MATERIALIZED (");
            ids.append(&union(&before)).push(") SELECT id FROM ").ident(&head);
            ids.push(" UNION ALL SELECT id FROM (").append(&union(&after));
            ids.push(") AS ").ident(&format!("{w}_tail"));
            ids.push(" WHERE (SELECT count(*) FROM ").ident(&head);
            ids.push(") < ").push(&limit.to_string());
        }
    }
    let mut sql = Sql::new();
    sql.column(alias, "id").push(" = ANY(ARRAY(").append(&ids).push("))");
    Some(sql)
}

/// `(a) UNION ALL (b) …`.
fn union(reads: &[Sql]) -> Sql {
    let parts: Vec<Sql> = reads
        .iter()
        .map(|read| {
            let mut part = Sql::raw("(");
            part.append(read).push(")");
            part
        })
        .collect();
    let mut sql = Sql::new();
    sql.join(&parts, " UNION ALL ");
    sql
}

/// What the reads of one page share.
struct Reads<'a> {
    table: &'a Table<'a>,
    request: &'a PageRequest,
    /// The key read through a lookup, and the keys after it (ending with `id`).
    first: &'a OrderKey,
    through: &'a Through,
    rest: &'a [OrderKey],
    /// The cursor's values, one per key.
    cursor: Option<&'a [Json]>,
    limit: usize,
}

impl Reads<'_> {
    /// The rows with a value, in the referred field's order: one read, or
    /// none when the cursor is past all of them.
    fn linked(&self, w: &str) -> Vec<Sql> {
        let on = format!("{w}_on");
        let column = &self.first.field.column;
        let mut sql = self.select_joined(w, &on);
        sql.append(&self.matching(w));
        sql.push(" AND ").column(&on, "deleted_at").push(" IS NULL AND ");
        sql.column(&on, column).push(" IS NOT NULL");
        if let Some(visible) = &self.through.visible {
            sql.push(" AND (")
                .append(&visible.compile(&self.through.workspace_schema, &on))
                .push(")");
        }
        if let Some(values) = self.cursor {
            match page::bind_from_json(&self.first.field, &values[0]).filter(|_| !values[0].is_null()) {
                // Past a row with an empty key: the rows with one came
                // before it (empty sorting last), or all follow it.
                None if !self.first.nulls_first => return Vec::new(),
                None => {}
                Some(bind) => {
                    let (at_least, beyond) = if self.first.descending {
                        (" <= ", " < ")
                    } else {
                        (" >= ", " > ")
                    };
                    // The bound lets the index start at the cursor.
                    sql.push(" AND ").column(&on, column).push(at_least).bind(bind.clone());
                    sql.push(" AND (").column(&on, column).push(beyond).bind(bind.clone());
                    sql.push(" OR ").column(&on, column).push(" = ").bind(bind);
                    sql.push(" AND ")
                        .append(&page::after_values(self.rest, &values[1..], w))
                        .push(")");
                }
            }
        }
        sql.push(" ORDER BY ").column(&on, column);
        sql.push(if self.first.descending { " DESC" } else { " ASC" });
        sql.push(", ").append(&page::order_by(self.rest, w));
        sql.push(" LIMIT ").push(&self.limit.to_string());
        vec![sql]
    }

    /// The rows whose key is empty, in the order of the other keys: an
    /// empty lookup, and a lookup to a record that is deleted, hidden from
    /// the request or has no value. None when the cursor is past them all.
    fn unlinked(&self, w: &str) -> Vec<Sql> {
        let mut after = Sql::new();
        if let Some(values) = self.cursor {
            if !values[0].is_null() {
                if self.first.nulls_first {
                    return Vec::new();
                }
            } else {
                after
                    .push(" AND ")
                    .append(&page::after_values(self.rest, &values[1..], w));
            }
        }
        let mut tail = Sql::raw(" ORDER BY ");
        tail.append(&page::order_by(self.rest, w));
        tail.push(" LIMIT ").push(&self.limit.to_string());

        let mut empty = self.select(w);
        empty.append(&self.matching(w)).push(" AND ");
        empty.column(w, &self.through.column).push(" IS NULL");
        empty.append(&after).append(&tail);

        let on = format!("{w}_on");
        let mut valueless = self.select_joined(w, &on);
        valueless.append(&self.matching(w));
        valueless
            .push(" AND (")
            .column(&on, "deleted_at")
            .push(" IS NOT NULL OR ");
        valueless.column(&on, &self.first.field.column).push(" IS NULL");
        if let Some(visible) = &self.through.visible {
            valueless
                .push(" OR NOT coalesce((")
                .append(&visible.compile(&self.through.workspace_schema, &on))
                .push("), false)");
        }
        valueless.push(")").append(&after).append(&tail);
        vec![empty, valueless]
    }

    /// `SELECT w.id FROM <table> w`.
    fn select(&self, w: &str) -> Sql {
        let mut sql = Sql::raw("SELECT ");
        sql.column(w, "id").append(&self.table.from_as(w));
        sql
    }

    /// `SELECT w.id FROM <table> w JOIN <referred> on ON on.id = w.<lookup>`.
    fn select_joined(&self, w: &str, on: &str) -> Sql {
        let mut sql = self.select(w);
        sql.push(" JOIN ")
            .table(&self.through.schema, &self.through.table)
            .push(" ")
            .ident(on);
        sql.push(" ON ")
            .column(on, "id")
            .push(" = ")
            .column(w, &self.through.column);
        sql
    }

    /// ` WHERE` the list's rows (live, visible) matching its filter.
    fn matching(&self, w: &str) -> Sql {
        let mut sql = Sql::raw(" WHERE ");
        sql.append(&self.table.rows(self.request.include_deleted, w));
        if let Some(filter) = &self.request.filter {
            sql.push(" AND (")
                .append(&filter.compile(self.table.workspace_schema, w))
                .push(")");
        }
        sql
    }
}

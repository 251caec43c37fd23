//! Record filters, compiled to a SQL condition on the main table alias.

use crate::db::sql::{Bind, Sql};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Comparison {
    /// The SQL operator, spaced. Null is "not equal" to any value: the
    /// intuitive answer for "industry is not SOFTWARE".
    pub fn sql(self) -> &'static str {
        match self {
            Comparison::Eq => " = ",
            Comparison::Neq => " IS DISTINCT FROM ",
            Comparison::Gt => " > ",
            Comparison::Gte => " >= ",
            Comparison::Lt => " < ",
            Comparison::Lte => " <= ",
        }
    }
}

/// A text pattern operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextMatch {
    /// SQL LIKE with the client's `%` and `_`.
    Like,
    /// Case-insensitive LIKE.
    ILike,
    /// A literal prefix.
    StartsWith,
    /// A literal substring.
    Contains,
}

/// How a list field (a multi-select picklist) must match a set of values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrayMatch {
    /// Holds at least one of them.
    Any,
    /// Holds all of them.
    All,
    /// Holds none of them (empty lists match).
    None,
}

/// How the records of a related list must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantifier {
    /// At least one related record matches.
    Some,
    /// No related record matches.
    None,
    /// Every related record matches (true when there are none).
    Every,
}

/// A condition on records.
#[derive(Debug, Clone)]
pub enum Filter {
    All(Vec<Filter>),
    Any(Vec<Filter>),
    Not(Box<Filter>),
    Compare {
        column: String,
        op: Comparison,
        value: Bind,
    },
    In {
        column: String,
        values: Vec<Bind>,
        negated: bool,
    },
    IsNull {
        column: String,
        is_null: bool,
    },
    Text {
        column: String,
        op: TextMatch,
        pattern: String,
    },
    /// A list column holding any, all or none of `values`.
    Array {
        column: String,
        op: ArrayMatch,
        values: Vec<String>,
    },
    /// A JSON column containing `value` (`@>`).
    JsonContains {
        column: String,
        value: serde_json::Value,
    },
    /// A condition on live related records: rows of `table` whose
    /// `related_column` equals this record's `outer_column` (a lookup read
    /// either way), quantified over the matches.
    Related {
        /// The related table's own schema, for global objects (users).
        schema: Option<String>,
        table: String,
        related_column: String,
        outer_column: String,
        quantifier: Quantifier,
        inner: Box<Filter>,
        /// The related rows the request may see (`access::Visibility`):
        /// the quantifier ranges over these only, so a filter never tells
        /// anything about a record its reader cannot see.
        visible: Option<Box<Filter>>,
    },
    /// Rule conditions only: the condition on the record's values before
    /// the write, read from the alias `<alias>p` the statement provides
    /// (all null for a new record).
    Previous(Box<Filter>),
    /// Rule conditions only: any of these columns differs from its value
    /// before the write (in `<alias>p`).
    Changed(Vec<String>),
}

/// The most values (in `in`/`notIn` lists and conditions) one filter may
/// carry: each is a bind parameter, and a statement takes at most 65,535.
pub const MAX_FILTER_VALUES: usize = 10_000;

impl Filter {
    /// How many bind parameters the filter compiles to.
    /// Rows whose `column`, an instant they go stale at, has passed at
    /// `now` (`stale`), or has not or is empty (not `stale`).
    pub fn stale(column: &str, stale: bool, now: chrono::DateTime<chrono::Utc>) -> Filter {
        let at = |op| Filter::Compare {
            column: column.to_owned(),
            op,
            value: Bind::DateTime(Some(now)),
        };
        if stale {
            at(Comparison::Lte)
        } else {
            Filter::Any(vec![
                Filter::IsNull {
                    column: column.to_owned(),
                    is_null: true,
                },
                at(Comparison::Gt),
            ])
        }
    }

    pub fn values(&self) -> usize {
        match self {
            Filter::All(items) | Filter::Any(items) => items.iter().map(Filter::values).sum(),
            Filter::Not(inner) => inner.values(),
            Filter::In { values, .. } => values.len(),
            Filter::IsNull { .. } => 0,
            Filter::Compare { .. } | Filter::Text { .. } | Filter::Array { .. } | Filter::JsonContains { .. } => 1,
            Filter::Related { inner, visible, .. } => inner.values() + visible.as_ref().map_or(0, |v| v.values()),
            Filter::Previous(inner) => inner.values(),
            Filter::Changed(_) => 0,
        }
    }
}

impl Filter {
    /// The condition as it held before a write, to be compiled under
    /// [`Filter::Previous`]: `previous` is then the values themselves and
    /// `changed` is false (nothing had changed yet).
    pub fn before_write(&self) -> Filter {
        self.map_changes(&|filter| match filter {
            Filter::Previous(inner) => (**inner).clone(),
            _ => Filter::Any(Vec::new()),
        })
    }

    /// The condition of a record at rest (a timer's or a schedule's, a
    /// waiting run's): no write to compare with, so `changed` and
    /// `previous` hold.
    pub fn at_rest(&self) -> Filter {
        self.map_changes(&|_| Filter::All(Vec::new()))
    }

    /// The filter with each `changed` and `previous` replaced by `with`.
    fn map_changes(&self, with: &dyn Fn(&Filter) -> Filter) -> Filter {
        match self {
            Filter::All(items) => Filter::All(items.iter().map(|f| f.map_changes(with)).collect()),
            Filter::Any(items) => Filter::Any(items.iter().map(|f| f.map_changes(with)).collect()),
            Filter::Not(inner) => Filter::Not(Box::new(inner.map_changes(with))),
            Filter::Previous(_) | Filter::Changed(_) => with(self),
            other => other.clone(),
        }
    }

    /// Whether the condition says `changed` or `previous` anywhere.
    pub fn compares_writes(&self) -> bool {
        match self {
            Filter::All(items) | Filter::Any(items) => items.iter().any(Filter::compares_writes),
            Filter::Not(inner) => inner.compares_writes(),
            Filter::Previous(_) | Filter::Changed(_) => true,
            _ => false,
        }
    }

    /// The condition as SQL on table alias `alias`; related tables are read
    /// from the workspace schema `schema`.
    pub fn compile(&self, schema: &str, alias: &str) -> Sql {
        match self {
            Filter::All(items) => connective(items, " AND ", "true", schema, alias),
            Filter::Any(items) => connective(items, " OR ", "false", schema, alias),
            Filter::Not(inner) => {
                let mut sql = Sql::raw("NOT coalesce((");
                sql.append(&inner.compile(schema, alias)).push("), false)");
                sql
            }
            Filter::Compare { column, op, value } => comparison(alias, column, *op, value),
            Filter::Previous(inner) => inner.compile(schema, &previous(alias)),
            Filter::Changed(columns) => {
                let before = previous(alias);
                let changes: Vec<Sql> = columns
                    .iter()
                    .map(|column| {
                        let mut sql = Sql::new();
                        sql.column(alias, column)
                            .push(" IS DISTINCT FROM ")
                            .column(&before, column);
                        sql
                    })
                    .collect();
                let mut sql = Sql::raw("(");
                sql.join(&changes, " OR ").push(")");
                sql
            }
            Filter::In {
                column,
                values,
                negated,
            } => membership(alias, column, values, *negated),
            Filter::IsNull { column, is_null } => {
                let mut sql = Sql::new();
                sql.column(alias, column)
                    .push(if *is_null { " IS NULL" } else { " IS NOT NULL" });
                sql
            }
            Filter::Text { column, op, pattern } => text_match(alias, column, *op, pattern),
            Filter::Array { column, op, values } => array_match(alias, column, *op, values),
            Filter::JsonContains { column, value } => {
                let mut sql = Sql::new();
                sql.column(alias, column)
                    .push(" @> ")
                    .bind(Bind::Json(Some(value.clone())));
                sql
            }
            Filter::Related {
                schema: own_schema,
                table,
                related_column,
                outer_column,
                quantifier,
                inner,
                visible,
            } => {
                // Each nesting level gets its own alias: `t`, `tr`, `trr` …
                let related = format!("{alias}r");
                let condition = inner.compile(schema, &related);
                let mut sql = Sql::raw(if *quantifier == Quantifier::Some {
                    "EXISTS ("
                } else {
                    "NOT EXISTS ("
                });
                sql.push("SELECT 1 FROM ")
                    .table(own_schema.as_deref().unwrap_or(schema), table)
                    .push(" ")
                    .ident(&related);
                sql.push(" WHERE ")
                    .column(&related, related_column)
                    .push(" = ")
                    .column(alias, outer_column);
                sql.push(" AND ").column(&related, "deleted_at").push(" IS NULL AND ");
                if let Some(visible) = visible {
                    sql.push("(").append(&visible.compile(schema, &related)).push(") AND ");
                }
                match quantifier {
                    Quantifier::Some | Quantifier::None => sql.push("(").append(&condition).push("))"),
                    Quantifier::Every => sql.push("NOT coalesce((").append(&condition).push("), false))"),
                };
                sql
            }
        }
    }
}

/// The alias of the values before a write, beside the record's `alias`.
pub fn previous(alias: &str) -> String {
    format!("{alias}p")
}

/// `items` joined by `separator` (` AND `, ` OR `), each in parentheses;
/// `empty` when there are none.
fn connective(items: &[Filter], separator: &str, empty: &str, schema: &str, alias: &str) -> Sql {
    if items.is_empty() {
        return Sql::raw(empty);
    }
    let parts: Vec<Sql> = items
        .iter()
        .map(|f| {
            let mut part = Sql::raw("(");
            part.append(&f.compile(schema, alias)).push(")");
            part
        })
        .collect();
    let mut sql = Sql::new();
    sql.join(&parts, separator);
    sql
}

/// `column <op> value`.
fn comparison(alias: &str, column: &str, op: Comparison, value: &Bind) -> Sql {
    let op = op.sql();
    let mut sql = Sql::new();
    sql.column(alias, column).push(op).bind(value.clone());
    sql
}

/// `column IN (…)`, or `NOT IN` (which nulls match too).
fn membership(alias: &str, column: &str, values: &[Bind], negated: bool) -> Sql {
    if values.is_empty() {
        return Sql::raw(if negated { "true" } else { "false" });
    }
    let binds: Vec<Sql> = values
        .iter()
        .map(|v| {
            let mut b = Sql::new();
            b.bind(v.clone());
            b
        })
        .collect();
    let mut sql = Sql::new();
    if negated {
        sql.push("(").column(alias, column).push(" IS NULL OR ");
        sql.column(alias, column)
            .push(" NOT IN (")
            .join(&binds, ", ")
            .push("))");
    } else {
        sql.column(alias, column).push(" IN (").join(&binds, ", ").push(")");
    }
    sql
}

/// `column LIKE pattern` (or `ILIKE`), a prefix or substring matched literally.
fn text_match(alias: &str, column: &str, op: TextMatch, pattern: &str) -> Sql {
    let (keyword, pattern) = match op {
        TextMatch::Like => (" LIKE ", pattern.to_owned()),
        TextMatch::ILike => (" ILIKE ", pattern.to_owned()),
        TextMatch::StartsWith => (" LIKE ", format!("{}%", escape_like(pattern))),
        TextMatch::Contains => (" LIKE ", format!("%{}%", escape_like(pattern))),
    };
    let mut sql = Sql::new();
    sql.column(alias, column).push(keyword).bind(Bind::Text(Some(pattern)));
    sql
}

/// A list column holding any, all or none of `values`.
fn array_match(alias: &str, column: &str, op: ArrayMatch, values: &[String]) -> Sql {
    let values = Bind::TextArray(Some(values.to_vec()));
    let mut sql = Sql::new();
    match op {
        ArrayMatch::Any => sql.column(alias, column).push(" && ").bind(values),
        ArrayMatch::All => sql.column(alias, column).push(" @> ").bind(values),
        ArrayMatch::None => {
            sql.push("NOT coalesce(")
                .column(alias, column)
                .push(" && ")
                .bind(values);
            sql.push(", false)")
        }
    };
    sql
}

/// Makes `%`, `_` and `\` in a literal match themselves under LIKE.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

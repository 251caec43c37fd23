//! Sales analytics: aggregates over any object's records — counted,
//! summed, averaged, their extremes and distinct values — grouped by up to
//! three keys (fields of the record or of the record a lookup refers to,
//! dates bucketed by day, week, month, quarter or year in a time zone),
//! filtered with the list filter language and limited to the records the
//! caller may see, as lists are. `api` is its GraphQL surface.

pub mod api;
pub mod churn;
pub mod forecast;
pub mod funnel;
pub mod history;
pub mod reports;

use diesel::sql_types::Jsonb;
use serde_json::Value as Json;

use crate::db::sql::{Bind, Sql};
use crate::db::Conn;
use crate::error::Result;
use crate::metadata::{FieldDef, FieldKind};
use crate::records::filter::Comparison;
use crate::records::{value_json, Filter, OrderKey, Table};

/// The most group keys one aggregate takes.
pub const MAX_GROUP_KEYS: usize = 3;
/// Groups returned when the caller names no `first`, and the most it may.
pub const DEFAULT_GROUPS: usize = 100;
pub const MAX_GROUPS: usize = 1000;

/// The main table's alias, and the grouped rows'.
const T: &str = "t";
const G: &str = "g";

/// How date keys are bucketed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Day,
    /// ISO weeks, starting on Monday.
    Week,
    Month,
    Quarter,
    Year,
}

impl Granularity {
    pub const ALL: [Granularity; 5] = [
        Granularity::Day,
        Granularity::Week,
        Granularity::Month,
        Granularity::Quarter,
        Granularity::Year,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Granularity::Day => "DAY",
            Granularity::Week => "WEEK",
            Granularity::Month => "MONTH",
            Granularity::Quarter => "QUARTER",
            Granularity::Year => "YEAR",
        }
    }

    /// `date_trunc`'s unit.
    fn unit(self) -> &'static str {
        match self {
            Granularity::Day => "day",
            Granularity::Week => "week",
            Granularity::Month => "month",
            Granularity::Quarter => "quarter",
            Granularity::Year => "year",
        }
    }
}

/// One group key: a field of the record, or (`key.through`) of the record
/// a lookup refers to, bucketed when it is a date.
#[derive(Debug, Clone)]
pub struct GroupKey {
    pub key: OrderKey,
    pub granularity: Option<Granularity>,
}

/// What is computed of a field per group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    Sum,
    Avg,
    Min,
    Max,
    CountDistinct,
}

impl Metric {
    /// The name a group's metrics are keyed by (`sum`, `countDistinct` …),
    /// as the GraphQL field reads them.
    pub fn key(self) -> &'static str {
        match self {
            Metric::Sum => "sum",
            Metric::Avg => "avg",
            Metric::Min => "min",
            Metric::Max => "max",
            Metric::CountDistinct => "countDistinct",
        }
    }

    /// Whether the metric applies to a field of this kind.
    pub fn applies_to(self, kind: &FieldKind) -> bool {
        let numeric = matches!(
            kind,
            FieldKind::Integer | FieldKind::Decimal | FieldKind::Currency | FieldKind::Percent
        );
        match self {
            Metric::Sum | Metric::Avg => numeric,
            Metric::Min | Metric::Max => numeric || matches!(kind, FieldKind::Date | FieldKind::DateTime),
            Metric::CountDistinct => groupable(kind),
        }
    }
}

/// Whether records can be grouped by (and distinct values counted of) a
/// field of this kind.
pub fn groupable(kind: &FieldKind) -> bool {
    !matches!(
        kind,
        FieldKind::LongText | FieldKind::MultiPicklist(_) | FieldKind::Json
    )
}

/// A metric of one field.
#[derive(Debug, Clone)]
pub struct Measure {
    pub metric: Metric,
    pub field: FieldDef,
}

impl Measure {
    /// `sum:amount`: where a group's document holds the value.
    fn name(&self) -> String {
        format!("{}:{}", self.metric.key(), self.field.value_key())
    }

    /// The aggregate over the grouped rows, as PostgreSQL computes it.
    fn raw(&self) -> Sql {
        let mut column = Sql::new();
        column.column(G, &self.field.column);
        let mut sql = Sql::new();
        match self.metric {
            Metric::Sum => sql.push("sum(").append(&column).push(")"),
            // To the cent, as the API's decimals are.
            Metric::Avg => sql.push("round(avg(").append(&column).push(")::numeric, 2)"),
            Metric::Min => sql.push("min(").append(&column).push(")"),
            Metric::Max => sql.push("max(").append(&column).push(")"),
            Metric::CountDistinct => sql.push("count(DISTINCT ").append(&column).push(")"),
        };
        sql
    }

    /// The value as a group's document holds it: sums and averages as
    /// decimal strings, extremes as the field's values, counts as numbers.
    fn json(&self) -> Sql {
        match self.metric {
            Metric::Sum | Metric::Avg => {
                let mut sql = Sql::raw("(");
                sql.append(&self.raw()).push(")::text");
                sql
            }
            Metric::Min | Metric::Max => value_json(&self.field, self.raw()),
            Metric::CountDistinct => self.raw(),
        }
    }
}

/// A condition on groups: their count (`measure` none) or a metric.
#[derive(Debug, Clone)]
pub struct Having {
    pub measure: Option<Measure>,
    pub op: Comparison,
    pub value: Bind,
}

/// What groups are ordered by.
#[derive(Debug, Clone)]
pub enum GroupOrder {
    Count,
    Measure(Box<Measure>),
    /// A group key, by its position in `keys`.
    Key(usize),
}

/// One aggregate's request.
#[derive(Debug, Clone, Default)]
pub struct Aggregate {
    pub filter: Option<Filter>,
    pub keys: Vec<GroupKey>,
    /// The metrics computed for each group.
    pub measures: Vec<Measure>,
    pub having: Vec<Having>,
    /// Orders before the keys' own (ascending, empty last); `true` descending.
    pub order: Vec<(GroupOrder, bool)>,
    pub first: usize,
    /// The IANA time zone date-time keys are bucketed in.
    pub time_zone: String,
}

/// One group: the values of its keys (as row documents hold values, in the
/// order of the request's keys), its count and its metrics by
/// [`Measure`] name.
#[derive(Debug, Clone)]
pub struct Group {
    pub keys: Vec<Json>,
    pub count: i64,
    pub metrics: serde_json::Map<String, Json>,
}

impl Group {
    /// A metric's value (null when no row had a value).
    pub fn metric(&self, metric: Metric, field: &FieldDef) -> Option<&Json> {
        self.metrics.get(&format!("{}:{}", metric.key(), field.value_key()))
    }
}

/// Whether PostgreSQL knows the time zone `name`.
pub async fn known_time_zone(conn: &mut diesel_async::AsyncPgConnection, name: &str) -> Result<bool> {
    let mut query = Sql::raw("SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = ");
    query.bind(Bind::Text(Some(name.to_owned()))).push(") AS exists");
    let rows: Vec<crate::db::sql::Exists> = query.load(conn).await?;
    Ok(rows.first().is_some_and(|row| row.exists))
}

/// The groups of `table`'s live, visible records that match the request.
pub async fn groups(conn: &mut Conn, table: Table<'_>, request: &Aggregate) -> Result<Vec<Group>> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Jsonb)]
        row: Json,
    }
    let rows: Vec<Row> = statement(&table, request).planned_for_values().load(conn).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut doc = match row.row {
                Json::Object(map) => map,
                _ => serde_json::Map::new(),
            };
            let keys = match doc.remove("keys") {
                Some(Json::Array(keys)) => keys,
                _ => Vec::new(),
            };
            let count = doc.get("count").and_then(Json::as_i64).unwrap_or(0);
            let metrics = match doc.remove("metrics") {
                Some(Json::Object(map)) => map,
                _ => serde_json::Map::new(),
            };
            Group { keys, count, metrics }
        })
        .collect())
}

/// `SELECT <group document> FROM (<rows>) g GROUP BY <keys> HAVING …
/// ORDER BY … LIMIT …`.
fn statement(table: &Table<'_>, request: &Aggregate) -> Sql {
    let mut keys = Sql::raw("jsonb_build_array(");
    let rendered: Vec<Sql> = request
        .keys
        .iter()
        .enumerate()
        .map(|(i, key)| value_json(&key.key.field, group_column(i)))
        .collect();
    keys.join(&rendered, ", ").push(")");
    let mut metrics = Sql::raw("jsonb_build_object(");
    let pairs: Vec<Sql> = request
        .measures
        .iter()
        .map(|measure| {
            let mut pair = Sql::new();
            pair.bind(Bind::Text(Some(measure.name())))
                .push("::text, ")
                .append(&measure.json());
            pair
        })
        .collect();
    metrics.join(&pairs, ", ").push(")");

    let mut sql = Sql::raw("SELECT jsonb_build_object('keys', ");
    sql.append(&keys)
        .push(", 'count', count(*), 'metrics', ")
        .append(&metrics);
    sql.push(") AS row FROM (")
        .append(&rows(table, request))
        .push(") AS ")
        .ident(G);
    let group_columns: Vec<Sql> = (0..request.keys.len()).map(group_column).collect();
    if !group_columns.is_empty() {
        sql.push(" GROUP BY ").join(&group_columns, ", ");
    }
    if !request.having.is_empty() {
        let conditions: Vec<Sql> = request
            .having
            .iter()
            .map(|having| {
                let mut condition = match &having.measure {
                    None => Sql::raw("count(*)"),
                    Some(measure) => measure.raw(),
                };
                condition.push(having.op.sql()).bind(having.value.clone());
                condition
            })
            .collect();
        sql.push(" HAVING ").join(&conditions, " AND ");
    }
    let mut order: Vec<Sql> = request
        .order
        .iter()
        .map(|(by, descending)| {
            let mut item = match by {
                GroupOrder::Count => Sql::raw("count(*)"),
                GroupOrder::Measure(measure) => measure.raw(),
                GroupOrder::Key(i) => group_column(*i),
            };
            item.push(if *descending {
                " DESC NULLS LAST"
            } else {
                " ASC NULLS LAST"
            });
            item
        })
        .collect();
    order.extend(group_columns.iter().map(|column| {
        let mut item = column.clone();
        item.push(" ASC NULLS LAST");
        item
    }));
    if !order.is_empty() {
        sql.push(" ORDER BY ").join(&order, ", ");
    }
    sql.push(" LIMIT ").push(&request.first.to_string());
    sql
}

/// Key `i` of the grouped rows.
fn group_column(i: usize) -> Sql {
    let mut column = Sql::new();
    column.column(G, &format!("__k{i}"));
    column
}

/// `SELECT <keys>, t.* FROM <table> t LEFT JOIN <referred> … WHERE …`: the
/// rows a list would show, each with its keys' values.
fn rows(table: &Table<'_>, request: &Aggregate) -> Sql {
    let mut rows = Sql::raw("SELECT ");
    for (i, key) in request.keys.iter().enumerate() {
        rows.append(&bucket(key, i, &request.time_zone))
            .push(" AS ")
            .ident(&format!("__k{i}"))
            .push(", ");
    }
    rows.ident(T).push(".*").append(&table.from_as(T));
    // A key read through a lookup joins the referred record: live and
    // visible, or none (the key is then empty), one at most (by id).
    for (i, key) in request.keys.iter().enumerate() {
        if let Some(through) = &key.key.through {
            let joined = joined(i);
            rows.push(" LEFT JOIN ")
                .table(&through.schema, &through.table)
                .push(" ")
                .ident(&joined);
            rows.push(" ON ")
                .column(&joined, "id")
                .push(" = ")
                .column(T, &through.column);
            rows.push(" AND ").column(&joined, "deleted_at").push(" IS NULL");
            if let Some(visible) = &through.visible {
                rows.push(" AND (")
                    .append(&visible.compile(&through.workspace_schema, &joined))
                    .push(")");
            }
        }
    }
    rows.push(" WHERE ").append(&table.rows(false, T));
    if let Some(filter) = &request.filter {
        rows.push(" AND (")
            .append(&filter.compile(table.workspace_schema, T))
            .push(")");
    }
    rows
}

/// The alias of the record key `i` reads through a lookup.
fn joined(i: usize) -> String {
    format!("j{i}")
}

/// Key `i`'s raw value for a row of `t`: the field (or the joined referred
/// record's field, null when the lookup is empty or the record hidden or
/// deleted), truncated to its bucket when a granularity is given.
fn bucket(key: &GroupKey, i: usize, time_zone: &str) -> Sql {
    let mut value = Sql::new();
    match &key.key.through {
        Some(_) => value.column(&joined(i), &key.key.field.column),
        None => value.column(T, &key.key.field.column),
    };
    let Some(granularity) = key.granularity else {
        return value;
    };
    let mut sql = Sql::raw("date_trunc('");
    sql.push(granularity.unit()).push("', ");
    match key.key.field.kind {
        // The bucket's first instant in the time zone, as an instant.
        FieldKind::DateTime => {
            sql.append(&value)
                .push(", ")
                .bind(Bind::Text(Some(time_zone.to_owned())))
                .push(")");
        }
        _ => {
            sql.append(&value).push("::timestamp)::date");
        }
    }
    sql
}

/// The records of `object` a request may read (its record visibility):
/// the tables the forecast, funnel and churn read.
pub fn readable<'c>(context: &'c crate::graphql::resolve::RequestContext, object: &str) -> Result<Table<'c>> {
    let object = context
        .model
        .object(object)
        .ok_or_else(|| crate::error::CrmError::internal(format_args!("no {object} object")))?;
    Ok(Table {
        schema: object.schema_in(&context.schema),
        workspace_schema: &context.schema,
        object,
        visibility: &context.visibility,
    })
}

/// The opportunities a request may read.
pub fn opportunities(context: &crate::graphql::resolve::RequestContext) -> Result<Table<'_>> {
    readable(context, "Opportunity")
}

/// The arguments `from` and `to` of a range, `to` after `from`, each
/// read by `parse` (`parse_date`, `parse_datetime`); `what` names their
/// type in the error.
pub fn range_args<T: PartialOrd>(
    ctx: &async_graphql::dynamic::ResolverContext<'_>,
    parse: fn(&str) -> std::result::Result<T, String>,
    what: &str,
) -> Result<(T, T)> {
    use crate::error::CrmError;
    let read = |name: &str| match crate::graphql::resolve::arg(ctx, name) {
        Some(async_graphql::Value::String(text)) => {
            parse(text).map_err(|message| CrmError::bad_input(&[name], message))
        }
        _ => Err(CrmError::bad_input(&[name], format!("{name} is {what}"))),
    };
    let (from, to) = (read("from")?, read("to")?);
    if to <= from {
        return Err(CrmError::bad_input(&["to"], "to must be after from"));
    }
    Ok((from, to))
}

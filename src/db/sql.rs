//! The SQL builder every dynamic query goes through.
//!
//! `Sql` is a list of parts: literal SQL written by this crate, identifiers
//! taken from validated metadata (emitted through Diesel's
//! `push_identifier`, which quotes them) and values (always bind
//! parameters). Fragments compose by appending, and Diesel numbers the
//! placeholders, so a filter compiled once can be reused in a count.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, Bool, Bytea, Date, Int4, Jsonb, Nullable, Text, Timestamptz, Untyped};
use diesel::QueryResult;
use uuid::Uuid;

/// A typed value bound as a parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(Option<String>),
    Uuid(Option<Uuid>),
    UuidArray(Vec<Uuid>),
    Int(Option<i32>),
    /// A decimal, validated and kept as its text form; cast to numeric in SQL.
    Decimal(Option<String>),
    Bool(Option<bool>),
    Date(Option<NaiveDate>),
    DateTime(Option<DateTime<Utc>>),
    Bytes(Vec<u8>),
    Json(Option<serde_json::Value>),
    TextArray(Option<Vec<String>>),
}

#[derive(Debug, Clone)]
enum Part {
    Sql(String),
    Ident(String),
    Bind(Bind),
}

/// A composable SQL fragment with bound values.
#[derive(Debug, Clone, Default)]
pub struct Sql {
    parts: Vec<Part>,
    /// Planned for its values each time (see [`Sql::planned_for_values`]).
    for_values: bool,
}

impl Sql {
    pub fn new() -> Self {
        Sql::default()
    }

    /// Starts a fragment with literal SQL.
    pub fn raw(sql: &str) -> Self {
        let mut s = Sql::new();
        s.push(sql);
        s
    }

    /// Has Postgres plan the statement for its values each time it runs,
    /// not once per connection: for a heavy read whose best plan depends
    /// on them (a year of stays reads a table; a day, an index), where a
    /// plan made for any value once the statement is cached would read a
    /// year through the index. Costs a planning per run.
    pub fn planned_for_values(mut self) -> Self {
        self.for_values = true;
        self
    }

    /// Appends literal SQL written by this crate (never user text).
    pub fn push(&mut self, sql: &str) -> &mut Self {
        match self.parts.last_mut() {
            Some(Part::Sql(last)) => last.push_str(sql),
            _ => self.parts.push(Part::Sql(sql.to_owned())),
        }
        self
    }

    /// Appends a quoted identifier taken from validated metadata.
    pub fn ident(&mut self, name: &str) -> &mut Self {
        self.parts.push(Part::Ident(name.to_owned()));
        self
    }

    /// Appends `"alias"."column"`.
    pub fn column(&mut self, alias: &str, column: &str) -> &mut Self {
        self.ident(alias).push(".").ident(column)
    }

    /// Appends `"schema"."table"`.
    pub fn table(&mut self, schema: &str, table: &str) -> &mut Self {
        self.ident(schema).push(".").ident(table)
    }

    /// Appends a string literal, quoted: for DDL, where values cannot be
    /// bound (a column's `DEFAULT`). The text must not contain NUL.
    pub fn string_literal(&mut self, text: &str) -> &mut Self {
        self.push("'").push(&text.replace('\'', "''")).push("'")
    }

    /// Appends a bound value.
    pub fn bind(&mut self, value: Bind) -> &mut Self {
        self.parts.push(Part::Bind(value));
        self
    }

    /// Appends another fragment.
    pub fn append(&mut self, other: &Sql) -> &mut Self {
        self.for_values |= other.for_values;
        for part in &other.parts {
            match part {
                Part::Sql(s) => {
                    self.push(s);
                }
                other => self.parts.push(other.clone()),
            }
        }
        self
    }

    /// Binds the values separated by `, ` (a `VALUES` list).
    pub fn binds(&mut self, values: impl IntoIterator<Item = Bind>) -> &mut Self {
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(value);
        }
        self
    }

    /// Appends the fragments separated by `sep`.
    pub fn join(&mut self, items: &[Sql], sep: &str) -> &mut Self {
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.push(sep);
            }
            self.append(item);
        }
        self
    }
}

impl QueryFragment<Pg> for Sql {
    /// Statements are prepared once per connection and SQL text (Diesel's
    /// statement cache): Postgres skips parsing and planning when a query
    /// shape comes back. The pool retires connections after a while so the
    /// cache stays bounded (see `db::Database::connect`).
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        if self.for_values {
            out.unsafe_to_cache_prepared();
        }
        for part in &self.parts {
            match part {
                Part::Sql(sql) => out.push_sql(sql),
                Part::Ident(name) => out.push_identifier(name)?,
                Part::Bind(bind) => match bind {
                    Bind::Text(v) => out.push_bind_param::<Nullable<Text>, _>(v)?,
                    Bind::Uuid(v) => out.push_bind_param::<Nullable<diesel::sql_types::Uuid>, _>(v)?,
                    Bind::UuidArray(v) => out.push_bind_param::<Array<diesel::sql_types::Uuid>, _>(v)?,
                    Bind::Int(v) => out.push_bind_param::<Nullable<Int4>, _>(v)?,
                    Bind::Decimal(v) => {
                        out.push_bind_param::<Nullable<Text>, _>(v)?;
                        out.push_sql("::numeric");
                    }
                    Bind::Bool(v) => out.push_bind_param::<Nullable<Bool>, _>(v)?,
                    Bind::Date(v) => out.push_bind_param::<Nullable<Date>, _>(v)?,
                    Bind::DateTime(v) => out.push_bind_param::<Nullable<Timestamptz>, _>(v)?,
                    Bind::Bytes(v) => out.push_bind_param::<Bytea, _>(v)?,
                    Bind::Json(v) => out.push_bind_param::<Nullable<Jsonb>, _>(v)?,
                    Bind::TextArray(v) => out.push_bind_param::<Nullable<Array<Text>>, _>(v)?,
                },
            }
        }
        Ok(())
    }
}

impl Sql {
    /// Runs the query and reads its rows (a `QueryableByName` type).
    pub async fn load<U>(self, conn: &mut diesel_async::AsyncPgConnection) -> QueryResult<Vec<U>>
    where
        U: diesel::deserialize::FromSqlRow<Untyped, Pg> + Send + 'static,
    {
        diesel_async::RunQueryDsl::load(self, conn).await
    }

    /// Runs a statement and returns the number of rows it touched.
    pub async fn execute(self, conn: &mut diesel_async::AsyncPgConnection) -> QueryResult<usize> {
        diesel_async::RunQueryDsl::execute(self, conn).await
    }
}

impl Sql {
    /// The statement with its values written as literals, for the one
    /// statement PostgreSQL takes no parameters in: `COPY (SELECT …) TO
    /// STDOUT`. Literals are quoted as `standard_conforming_strings` reads
    /// them (the connection must have it on, PostgreSQL's default) and
    /// cast to their type. `None` when a text holds a NUL, which no
    /// literal can.
    pub fn inline(&self) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Sql(sql) => out.push_str(sql),
                Part::Ident(name) => out.push_str(&quote_ident(name)),
                Part::Bind(bind) => out.push_str(&literal(bind)?),
            }
        }
        Some(out)
    }
}

/// `'text'`: a string literal under `standard_conforming_strings`.
fn quote_literal(text: &str) -> Option<String> {
    (!text.contains('\0')).then(|| format!("'{}'", text.replace('\'', "''")))
}

fn array_literal(items: impl Iterator<Item = String>, cast: &str) -> Option<String> {
    let quoted: Option<Vec<String>> = items.map(|item| quote_literal(&item)).collect();
    Some(format!("ARRAY[{}]::{cast}", quoted?.join(", ")))
}

/// A bound value as a typed SQL literal.
fn literal(bind: &Bind) -> Option<String> {
    fn typed<T>(value: &Option<T>, cast: &str, text: impl Fn(&T) -> Option<String>) -> Option<String> {
        match value {
            Some(value) => Some(format!("{}::{cast}", text(value)?)),
            None => Some(format!("NULL::{cast}")),
        }
    }
    match bind {
        Bind::Text(v) => typed(v, "text", |s| quote_literal(s)),
        Bind::Uuid(v) => typed(v, "uuid", |id| quote_literal(&id.to_string())),
        Bind::UuidArray(ids) => array_literal(ids.iter().map(ToString::to_string), "uuid[]"),
        Bind::Int(v) => typed(v, "integer", |n| Some(n.to_string())),
        Bind::Decimal(v) => typed(v, "numeric", |s| quote_literal(s)),
        Bind::Bool(v) => typed(v, "boolean", |b| Some(b.to_string())),
        Bind::Date(v) => typed(v, "date", |d| quote_literal(&d.to_string())),
        Bind::DateTime(v) => typed(v, "timestamptz", |t| quote_literal(&t.to_rfc3339())),
        Bind::Bytes(bytes) => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            Some(format!("'\\x{hex}'::bytea"))
        }
        Bind::Json(v) => typed(v, "jsonb", |j| quote_literal(&j.to_string())),
        Bind::TextArray(v) => match v {
            Some(items) => array_literal(items.iter().cloned(), "text[]"),
            None => Some("NULL::text[]".into()),
        },
    }
}

impl QueryId for Sql {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Sql {
    type SqlType = Untyped;
}

/// A row holding one JSON document built by Postgres (`AS row`).
#[derive(Debug, diesel::QueryableByName)]
pub struct JsonRow {
    #[diesel(sql_type = Jsonb)]
    pub row: serde_json::Value,
}

/// A row of `SELECT true AS exists`.
#[derive(Debug, diesel::QueryableByName)]
pub struct Exists {
    #[diesel(sql_type = Bool)]
    pub exists: bool,
}

/// Quotes an identifier for the few statements Diesel cannot bind
/// (`CREATE DATABASE`, `CREATE SCHEMA`).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

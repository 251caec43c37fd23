//! The flat read path, for the shapes frontends send: connections
//! (`nodes`, `edges`, `pageInfo`, `totalCount`, either direction), records
//! by id, lookups and nested lists. Each level is one statement returning
//! plain columns — the root as one page, every nested level batched over
//! its parents' ids (`= ANY`, numbered per parent by a window) — and the
//! JSON is written here. PostgreSQL builds no JSON: on the benchmark data
//! the same rows cost it about 2.5 times less as plain columns than as
//! `json_build_object`/`json_agg` (README, Benchmark). The statements are
//! built from the same pieces as the JSON statement (tables, visibility,
//! filters, orders, cursors); values are rendered as the JSON statement
//! renders them (`records::value_json`), strings escaped as the resolvers
//! escape them. Two node selections in one connection, and a nested
//! `totalCount` past a cursor, take the JSON statement.

use std::collections::HashMap;

use async_graphql::parser::types::SelectionSet;
use async_graphql::{Name, Value};
use diesel::deserialize::QueryableByName;
use diesel::pg::Pg;
use diesel::row::{Field as _, NamedRow, Row};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::{Compiled, Compiler, Skip};
use crate::db::sql::{Bind, Sql};
use crate::db::Database;
use crate::graphql::compiled::compact;
use crate::graphql::input::{self, Path};
use crate::metadata::{FieldDef, FieldKind, ObjectDef};
use crate::records::{page, value_json, window};

mod connection;

use connection::{write_connection, Connection};

/// The alias of a level's rows in its statement.
const ROWS: &str = "t";

/// An operation planned for the flat path.
pub(in crate::graphql::compiled) struct Query<'a> {
    roots: Vec<(Name, Root<'a>)>,
}

enum Root<'a> {
    Typename,
    /// `account(id:)`: the statement reads the record or nothing.
    Single {
        statement: Sql,
        level: Level<'a>,
    },
    /// `accounts(…) { … }`: the page's statement (none when only
    /// `totalCount` is read) and the count's.
    List {
        statement: Option<Sql>,
        count: Option<Sql>,
        connection: Box<Connection<'a>>,
    },
}

/// What the records of one level show, and the text columns read for it
/// (the first is always the id).
struct Level<'a> {
    columns: Vec<Sql>,
    items: Vec<(Name, Item<'a>)>,
}

enum Item<'a> {
    Typename(&'a str),
    Value {
        column: usize,
        render: Render,
    },
    /// A lookup's record: `statement` reads the records whose ids it is
    /// given (bound after it), live and visible.
    Lookup {
        column: usize,
        statement: Sql,
        level: Level<'a>,
    },
    /// A nested list: `head`, the parents' ids, then `tail`.
    List {
        head: Sql,
        tail: Sql,
        connection: Box<Connection<'a>>,
    },
}

impl Level<'_> {
    fn column(&mut self, sql: Sql) -> usize {
        self.columns.push(sql);
        self.columns.len() - 1
    }

    /// `SELECT <columns>` (each as text) for alias [`ROWS`].
    fn select(&self) -> Sql {
        let mut sql = Sql::raw("SELECT ");
        sql.join(&self.columns, ", ");
        sql
    }
}

/// How a column's text becomes JSON.
#[derive(Debug, Clone, Copy)]
enum Render {
    /// A string, escaped here.
    String,
    /// Already JSON: a number or a boolean.
    Raw,
    /// JSON as PostgreSQL writes it (with spaces), written compact.
    Json,
}

/// A value of `field` in alias [`ROWS`] as text, and how it becomes JSON.
fn cell(field: &FieldDef) -> (Sql, Render) {
    let mut column = Sql::new();
    column.column(ROWS, &field.column);
    let value = value_json(field, column);
    let render = match field.kind {
        FieldKind::Integer | FieldKind::Boolean => Render::Raw,
        FieldKind::Id
        | FieldKind::Text
        | FieldKind::Email
        | FieldKind::Url
        | FieldKind::Phone
        | FieldKind::LongText
        | FieldKind::Picklist(_)
        | FieldKind::Lookup(_)
        | FieldKind::Decimal
        | FieldKind::Currency
        | FieldKind::Percent
        | FieldKind::DateTime => Render::String,
        // Dates, lists and documents: as PostgreSQL writes them in JSON.
        FieldKind::Date | FieldKind::MultiPicklist(_) | FieldKind::Json => Render::Json,
    };
    // Ids come as they are (16 bytes) and are written as text by
    // `Cells`: cheaper than PostgreSQL's `uuid_out`.
    if matches!(field.kind, FieldKind::Id | FieldKind::Lookup(_)) {
        return (value, render);
    }
    let mut sql = Sql::raw(match render {
        Render::Json => "to_json(",
        Render::String | Render::Raw => "(",
    });
    sql.append(&value).push(")::text");
    (sql, render)
}

impl<'a> Compiler<'a> {
    /// The operation as flat statements, or `None` when it has a shape
    /// only the JSON statement answers.
    pub(in crate::graphql::compiled) fn flat(&mut self, set: &'a SelectionSet) -> Compiled<Option<Query<'a>>> {
        let model = self.model;
        let mut roots = Vec::new();
        for field in self.fields(set, "Query")? {
            let name = field.name.node.as_str();
            let root = if name == "__typename" {
                Root::Typename
            } else if let Some(object) = model.objects().iter().find(|o| o.singular() == name) {
                Self::only_arguments(field, &["id"])?;
                let id = match self.argument(field, "id") {
                    Some(Value::String(text)) => input::parse_id(&text, &Path::root("id")).map_err(|_| Skip::Values)?,
                    _ => return Err(Skip::Values),
                };
                let Some(level) = self.level(object, &field.selection_set.node)? else {
                    return Ok(None);
                };
                let table = self.table(object);
                let mut statement = level.select();
                statement.append(&table.from_as(ROWS));
                statement.push(" WHERE ").column(ROWS, "id").push(" = ");
                // A merged record's id reads its survivor.
                let mut key = crate::db::sql::Sql::new();
                key.bind(Bind::Uuid(Some(id)));
                statement.append(&crate::records::merged::redirected(self.workspace, object, &key));
                statement.push(" AND ").append(&table.rows(false, ROWS));
                Root::Single { statement, level }
            } else if let Some(object) = model.objects().iter().find(|o| o.plural == name) {
                let Some(connection) = self.flat_connection(object, field, false)? else {
                    return Ok(None);
                };
                let request = &connection.request;
                let statement = connection.reads_page.then(|| {
                    let mut statement = connection.level.select();
                    statement.append(&self.matching(object, request, None, ROWS));
                    if let Some(cursor) = request.cursor() {
                        statement
                            .push(" AND ")
                            .append(&page::after_cursor(&request.effective_order(), cursor, ROWS));
                    }
                    let rows = connection.rows_read();
                    if let Some(candidates) = window::candidates(&self.table(object), request, rows, ROWS) {
                        statement.push(" AND ").append(&candidates);
                    }
                    statement
                        .push(" ORDER BY ")
                        .append(&page::order_by(&request.effective_order(), ROWS));
                    statement.push(" LIMIT ").push(&rows.to_string());
                    statement
                });
                let count = connection.total.then(|| {
                    let mut count = Sql::raw("SELECT count(*)::text");
                    count.append(&self.matching(object, request, None, ROWS));
                    count
                });
                Root::List {
                    statement,
                    count,
                    connection: Box::new(connection),
                }
            } else {
                return Err(Skip::Unsupported);
            };
            roots.push((field.response_key().node.clone(), root));
        }
        Ok(Some(Query { roots }))
    }

    /// What a record of `object` shows for `set`, with the statements of
    /// its lookups and nested lists.
    fn level(&mut self, object: &'a ObjectDef, set: &'a SelectionSet) -> Compiled<Option<Level<'a>>> {
        let model = self.model;
        let id = object.field("id").ok_or(Skip::Unsupported)?;
        let mut level = Level {
            columns: vec![cell(id).0],
            items: Vec::new(),
        };
        for field in self.fields(set, &object.name)? {
            let name = field.name.node.as_str();
            let item = if name == "__typename" {
                Item::Typename(&object.name)
            } else if let Some(def) = object.field(name).or_else(|| object.field_by_value_key(name)) {
                Self::only_arguments(field, &[])?;
                match def.lookup().filter(|_| def.name == name) {
                    Some(lookup) => {
                        let target = model.object(&lookup.target).ok_or(Skip::Unsupported)?;
                        let Some(inner) = self.level(target, &field.selection_set.node)? else {
                            return Ok(None);
                        };
                        let table = self.table(target);
                        let mut statement = inner.select();
                        statement.append(&table.from_as(ROWS));
                        statement.push(" WHERE ").append(&table.rows(false, ROWS));
                        statement.push(" AND ").column(ROWS, "id").push(" = ANY(");
                        Item::Lookup {
                            column: level.column(cell(def).0),
                            statement,
                            level: inner,
                        }
                    }
                    None => {
                        let (sql, render) = cell(def);
                        Item::Value {
                            column: level.column(sql),
                            render,
                        }
                    }
                }
            } else if let Some(relation) = model
                .inverse_relations(&object.name)
                .into_iter()
                .find(|relation| relation.name == name)
            {
                let child = model.object(&relation.child.name).ok_or(Skip::Unsupported)?;
                let Some(connection) = self.flat_connection(child, field, true)? else {
                    return Ok(None);
                };
                let (head, tail) = self.nested_statement(child, &relation.lookup, &connection);
                Item::List {
                    head,
                    tail,
                    connection: Box::new(connection),
                }
            } else {
                return Err(Skip::Unsupported);
            };
            level.items.push((field.response_key().node.clone(), item));
        }
        Ok(Some(level))
    }

    /// One page of `child` records per parent id: `head`, the ids (bound),
    /// `tail`. Each row ends with its parent's id. The parents' children
    /// are read in one scan (`= ANY`), numbered per parent in page order,
    /// and cut at the page size: one pass and one sort for all of them
    /// rather than one per parent (measured 1.3–1.5× less PostgreSQL time
    /// than a `LATERAL` page per parent on the benchmark data).
    fn nested_statement(&self, child: &ObjectDef, lookup: &FieldDef, connection: &Connection<'_>) -> (Sql, Sql) {
        let request = &connection.request;
        let mut parent = Sql::new();
        parent.column(ROWS, &lookup.column);
        let mut head = connection.level.select();
        if connection.total {
            // Every child of the parent (no cursor: see `flat_connection`).
            head.push(", ").ident(ROWS).push(".\"__total\"::text");
        }
        head.push(", ").append(&parent).push(" FROM (SELECT ");
        head.ident(ROWS)
            .push(".*, row_number() OVER (PARTITION BY ")
            .append(&parent);
        head.push(" ORDER BY ")
            .append(&page::order_by(&request.effective_order(), ROWS));
        head.push(") AS \"__n\"");
        if connection.total {
            head.push(", count(*) OVER (PARTITION BY ")
                .append(&parent)
                .push(") AS \"__total\"");
        }
        head.append(&self.matching(child, request, None, ROWS));
        head.push(" AND ").append(&parent).push(" = ANY(");
        let mut tail = Sql::raw(")");
        if let Some(cursor) = request.cursor() {
            tail.push(" AND ")
                .append(&page::after_cursor(&request.effective_order(), cursor, ROWS));
        }
        tail.push(") AS ").ident(ROWS).push(" WHERE ").ident(ROWS);
        tail.push(".\"__n\" <= ").push(&connection.rows_read().to_string());
        // In the window's own order (not by `__n`), which its sort has
        // produced already: Postgres sorts nothing again.
        tail.push(" ORDER BY ")
            .append(&parent)
            .push(", ")
            .append(&page::order_by(&request.effective_order(), ROWS));
        (head, tail)
    }
}

/// A row of text columns, in the order selected: the texts one after
/// another in one buffer, each column its range (`None` for null). A
/// column of type `uuid` arrives as its 16 bytes and is written here in
/// its text form.
struct Cells {
    text: String,
    columns: Vec<Option<(usize, usize)>>,
}

impl Cells {
    fn get(&self, column: usize) -> Option<&str> {
        let (start, end) = self.columns.get(column).copied().flatten()?;
        self.text.get(start..end)
    }

    /// The last column (a nested row's parent id).
    fn last(&self) -> Option<&str> {
        self.get(self.columns.len().checked_sub(1)?)
    }
}

/// PostgreSQL's type oid of `uuid`.
const UUID_OID: u32 = 2950;

impl QueryableByName<Pg> for Cells {
    fn build<'r>(row: &impl NamedRow<'r, Pg>) -> diesel::deserialize::Result<Self> {
        let count = row.field_count();
        let mut cells = Cells {
            text: String::with_capacity(64 * count),
            columns: Vec::with_capacity(count),
        };
        for index in 0..count {
            let field = Row::get(row, index);
            let range = match field.as_ref().and_then(|field| field.value()) {
                Some(raw) => {
                    let start = cells.text.len();
                    if raw.get_oid().get() == UUID_OID {
                        let id = Uuid::from_slice(raw.as_bytes())?;
                        cells
                            .text
                            .push_str(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()));
                    } else {
                        cells.text.push_str(std::str::from_utf8(raw.as_bytes())?);
                    }
                    Some((start, cells.text.len()))
                }
                None => None,
            };
            cells.columns.push(range);
        }
        Ok(cells)
    }
}

/// The rows of one level and, per item, what its lookups and lists read
/// (nothing when it has no rows).
#[derive(Default)]
struct Fetched {
    rows: Vec<Cells>,
    children: Vec<Children>,
}

enum Children {
    None,
    /// Records by id.
    Lookup(HashMap<String, usize>, Fetched),
    /// Rows by parent id, in page order.
    List(HashMap<String, Vec<usize>>, Fetched),
}

/// Runs the statements of `query` and writes its response; `None` when a
/// statement fails (the resolvers then answer and report it).
pub(in crate::graphql::compiled) async fn run(db: &Database, query: Query<'_>) -> Option<String> {
    let mut conn = db.conn().await.ok()?;
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(b"{\"data\":{");
    for (i, (key, root)) in query.roots.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_key(&mut out, key);
        match root {
            Root::Typename => write_string(&mut out, "Query"),
            Root::Single { statement, level } => {
                let fetched = fetch(&mut conn, statement.clone(), level).await?;
                match fetched.rows.is_empty() {
                    true => out.extend_from_slice(b"null"),
                    false => write_record(&mut out, level, &fetched, 0),
                }
            }
            Root::List {
                statement,
                count,
                connection,
            } => {
                let fetched = match statement {
                    Some(statement) => fetch(&mut conn, statement.clone(), &connection.level).await?,
                    None => Fetched::default(),
                };
                let total = match count {
                    Some(count) => load(&mut conn, count.clone()).await?,
                    None => Vec::new(),
                };
                let total = total.first().and_then(|row| row.get(0)).unwrap_or("0");
                let read: Vec<usize> = (0..fetched.rows.len()).collect();
                write_connection(&mut out, connection, &fetched, &read, total);
            }
        }
    }
    out.extend_from_slice(b"}}");
    String::from_utf8(out).ok()
}

/// Reads a level's rows, then what its lookups and nested lists need.
async fn fetch(conn: &mut AsyncPgConnection, statement: Sql, level: &Level<'_>) -> Option<Fetched> {
    let rows = load(conn, statement).await?;
    Box::pin(children(conn, level, rows)).await
}

async fn load(conn: &mut AsyncPgConnection, statement: Sql) -> Option<Vec<Cells>> {
    match statement.load::<Cells>(conn).await {
        Ok(rows) => Some(rows),
        Err(err) => {
            tracing::debug!(error = %err, "flat statement failed; answering with resolvers");
            None
        }
    }
}

async fn children(conn: &mut AsyncPgConnection, level: &Level<'_>, rows: Vec<Cells>) -> Option<Fetched> {
    let mut children = Vec::with_capacity(level.items.len());
    for (_, item) in &level.items {
        let read = match item {
            Item::Lookup {
                column,
                statement,
                level: inner,
            } => {
                let ids = ids(rows.iter().filter_map(|row| row.get(*column)));
                let fetched = match ids.is_empty() {
                    true => Fetched::default(),
                    false => fetch(conn, bound(statement, ids, &Sql::raw(")")), inner).await?,
                };
                let by_id = fetched
                    .rows
                    .iter()
                    .enumerate()
                    .filter_map(|(i, row)| Some((row.get(0)?.to_owned(), i)))
                    .collect();
                Children::Lookup(by_id, fetched)
            }
            Item::List { head, tail, connection } => {
                let ids = ids(rows.iter().filter_map(|row| row.get(0)));
                let fetched = match ids.is_empty() {
                    true => Fetched::default(),
                    false => fetch(conn, bound(head, ids, tail), &connection.level).await?,
                };
                let mut by_parent: HashMap<String, Vec<usize>> = HashMap::new();
                for (i, row) in fetched.rows.iter().enumerate() {
                    if let Some(parent) = row.last() {
                        match by_parent.get_mut(parent) {
                            Some(rows) => rows.push(i),
                            None => {
                                by_parent.insert(parent.to_owned(), vec![i]);
                            }
                        }
                    }
                }
                Children::List(by_parent, fetched)
            }
            Item::Typename(_) | Item::Value { .. } => Children::None,
        };
        children.push(read);
    }
    Some(Fetched { rows, children })
}

/// The distinct ids among `texts`, in first-seen order.
fn ids<'t>(texts: impl Iterator<Item = &'t str>) -> Vec<Uuid> {
    let mut seen = std::collections::HashSet::new();
    texts
        .filter_map(|text| Uuid::parse_str(text).ok())
        .filter(|id| seen.insert(*id))
        .collect()
}

fn bound(head: &Sql, ids: Vec<Uuid>, tail: &Sql) -> Sql {
    let mut sql = head.clone();
    sql.bind(Bind::UuidArray(ids));
    sql.append(tail);
    sql
}

fn write_record(out: &mut Vec<u8>, level: &Level<'_>, fetched: &Fetched, row: usize) {
    let cells = &fetched.rows[row];
    out.push(b'{');
    for (i, (key, item)) in level.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_key(out, key);
        match (item, &fetched.children[i]) {
            (Item::Typename(name), _) => write_string(out, name),
            (Item::Value { column, render }, _) => match (cells.get(*column), render) {
                (None, _) => out.extend_from_slice(b"null"),
                (Some(text), Render::Raw) => out.extend_from_slice(text.as_bytes()),
                (Some(text), Render::Json) => out.extend_from_slice(compact(text).as_bytes()),
                (Some(text), Render::String) => write_string(out, text),
            },
            (
                Item::Lookup {
                    column, level: inner, ..
                },
                Children::Lookup(by_id, data),
            ) => match cells.get(*column).and_then(|id| by_id.get(id)) {
                Some(&found) => write_record(out, inner, data, found),
                None => out.extend_from_slice(b"null"),
            },
            (Item::List { connection, .. }, Children::List(by_parent, data)) => {
                let mine = cells
                    .get(0)
                    .and_then(|id| by_parent.get(id))
                    .map_or(&[][..], Vec::as_slice);
                // Each child row carries its parent's count before the parent's id.
                let total = match (connection.total, mine.first()) {
                    (true, Some(&child)) => data.rows[child].get(data.rows[child].columns.len() - 2),
                    _ => None,
                };
                write_connection(out, connection, data, mine, total.unwrap_or("0"));
            }
            // Planned together: an item always has its kind of children.
            _ => out.extend_from_slice(b"null"),
        }
    }
    out.push(b'}');
}

fn write_key(out: &mut Vec<u8>, key: &Name) {
    write_string(out, key.as_str());
    out.push(b':');
}

/// A JSON string, escaped as the resolvers' serializer (serde_json)
/// escapes it: `"` and `\\`, control characters as `\n`, `\t` … or `\u00XX`.
fn write_string(out: &mut Vec<u8>, text: &str) {
    let needs_escape = |b: &u8| *b < 0x20 || *b == b'"' || *b == b'\\';
    out.push(b'"');
    if text.as_bytes().iter().any(needs_escape) {
        // Writing to a Vec cannot fail; serde_json adds the quotes.
        out.pop();
        let _ = serde_json::to_writer(&mut *out, text);
        return;
    }
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

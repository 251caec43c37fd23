//! The compiler: one operation's selections, over the model, as the SQL
//! expression of its `data`, built with the same pieces (`records`) the
//! resolvers use.

use async_graphql::parser::types::{
    Directive, ExecutableDocument, Field, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::Positioned;
use async_graphql::{Name, Value, Variables};

use super::{Compiled, Skip, MAX_FRAGMENT_NESTING, PAIRS_PER_CALL};
use crate::access::Visibility;
use crate::db::sql::{Bind, Sql};
use crate::graphql::input::{self, ListArgs, Path};
use crate::metadata::{FieldDef, Lookup, Model, ObjectDef};
use crate::records::{column_json, page, window, Table};

mod flat;

/// How an operation is read: flat statements whose rows are written as
/// JSON here, or one statement that builds the JSON of `data`.
pub(super) enum Statement<'a> {
    Flat(flat::Query<'a>),
    Json(Sql),
}

impl Statement<'_> {
    /// The response body, or `None` when a statement fails.
    pub(super) async fn run(self, db: &crate::db::Database) -> Option<String> {
        match self {
            Statement::Flat(query) => flat::run(db, query).await,
            Statement::Json(data) => super::run(db, data)
                .await
                .map(|text| format!("{{\"data\":{}}}", super::compact(&text))),
        }
    }
}

/// The statements of an operation: flat ones when its shape allows.
pub(super) fn compile<'a>(
    model: &'a Model,
    workspace: &'a str,
    visibility: &'a Visibility,
    document: &'a ExecutableDocument,
    operation: &'a OperationDefinition,
    variables: &'a Variables,
) -> Compiled<Statement<'a>> {
    let mut compiler = Compiler {
        model,
        workspace,
        document,
        variables,
        visibility,
        aliases: 0,
    };
    if let Some(query) = compiler.flat(&operation.selection_set.node)? {
        return Ok(Statement::Flat(query));
    }
    compiler.query(&operation.selection_set.node).map(Statement::Json)
}

/// The parent of a nested list: its rows refer to `alias.id` through `lookup`.
struct Parent<'a> {
    lookup: &'a FieldDef,
    alias: &'a str,
}

/// Builds the SQL expression of an operation's `data`.
struct Compiler<'a> {
    model: &'a Model,
    /// The workspace's Postgres schema.
    workspace: &'a str,
    document: &'a ExecutableDocument,
    variables: &'a Variables,
    /// The records the request may see.
    visibility: &'a Visibility,
    /// Table aliases handed out so far (`t1`, `p2` …).
    aliases: usize,
}

impl<'a> Compiler<'a> {
    /// Where `object`'s rows are, restricted to what the request may see.
    fn table<'o>(&self, object: &'o ObjectDef) -> Table<'o>
    where
        'a: 'o,
    {
        Table::new(self.workspace, object).restricted(self.visibility)
    }

    fn alias(&mut self, prefix: &str) -> String {
        self.aliases += 1;
        format!("{prefix}{}", self.aliases)
    }

    /// The fields of a selection set on `type_name`, fragments spread in.
    /// Fields repeated under one response key are merged by GraphQL; that
    /// (rare) case goes to the resolvers.
    fn fields(&self, set: &'a SelectionSet, type_name: &str) -> Compiled<Vec<&'a Field>> {
        let mut fields = Vec::new();
        self.collect(set, type_name, &mut fields, 0)?;
        for (i, field) in fields.iter().enumerate() {
            let key = field.response_key().node.as_str();
            if fields[..i].iter().any(|f| f.response_key().node.as_str() == key) {
                return Err(Skip::Unsupported);
            }
        }
        Ok(fields)
    }

    fn collect(
        &self,
        set: &'a SelectionSet,
        type_name: &str,
        out: &mut Vec<&'a Field>,
        nesting: usize,
    ) -> Compiled<()> {
        if nesting > MAX_FRAGMENT_NESTING {
            return Err(Skip::Unsupported);
        }
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => {
                    if self.included(&field.node.directives)? {
                        out.push(&field.node);
                    }
                }
                Selection::InlineFragment(fragment) => {
                    let fragment = &fragment.node;
                    let applies = fragment
                        .type_condition
                        .as_ref()
                        .is_none_or(|on| on.node.on.node == type_name);
                    if !applies {
                        return Err(Skip::Unsupported);
                    }
                    if self.included(&fragment.directives)? {
                        self.collect(&fragment.selection_set.node, type_name, out, nesting + 1)?;
                    }
                }
                Selection::FragmentSpread(spread) => {
                    let fragment = self
                        .document
                        .fragments
                        .get(&spread.node.fragment_name.node)
                        .ok_or(Skip::Unsupported)?;
                    if !fragment.node.directives.is_empty() || fragment.node.type_condition.node.on.node != type_name {
                        return Err(Skip::Unsupported);
                    }
                    if self.included(&spread.node.directives)? {
                        self.collect(&fragment.node.selection_set.node, type_name, out, nesting + 1)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether `@include(if:)` and `@skip(if:)` keep a selection, for this
    /// request's variables; any other directive is the resolvers' to apply.
    fn included(&self, directives: &[Positioned<Directive>]) -> Compiled<bool> {
        let mut kept = true;
        for directive in directives {
            let directive = &directive.node;
            let skips_when = match directive.name.node.as_str() {
                "include" => false,
                "skip" => true,
                _ => return Err(Skip::Unsupported),
            };
            let condition = directive.get_argument("if").and_then(|value| {
                value
                    .node
                    .clone()
                    .into_const_with(|variable| self.variables.get(&variable).cloned().ok_or(()))
                    .ok()
            });
            match condition {
                Some(Value::Boolean(condition)) if directive.arguments.len() == 1 => kept &= condition != skips_when,
                _ => return Err(Skip::Values),
            }
        }
        Ok(kept)
    }

    /// An argument's value with variables substituted.
    fn argument(&self, field: &Field, name: &str) -> Option<Value> {
        let value = field.get_argument(name)?;
        value
            .node
            .clone()
            .into_const_with(|variable| self.variables.get(&variable).cloned().ok_or(()))
            .ok()
    }

    /// Fails when `field` has arguments other than `allowed`.
    fn only_arguments(field: &Field, allowed: &[&str]) -> Compiled<()> {
        match field
            .arguments
            .iter()
            .all(|(name, _)| allowed.contains(&name.node.as_str()))
        {
            true => Ok(()),
            false => Err(Skip::Unsupported),
        }
    }

    /// The root selection on `Query`.
    fn query(&mut self, set: &'a SelectionSet) -> Compiled<Sql> {
        let model = self.model;
        let mut pairs = Vec::new();
        for field in self.fields(set, "Query")? {
            let name = field.name.node.as_str();
            let value = if name == "__typename" {
                type_name("Query")
            } else if let Some(object) = model.objects().iter().find(|o| o.singular() == name) {
                Self::only_arguments(field, &["id"])?;
                self.single(object, field)?
            } else if let Some(object) = model.objects().iter().find(|o| o.plural == name) {
                self.connection(object, field, None)?
            } else {
                return Err(Skip::Unsupported);
            };
            pairs.push((field.response_key().node.clone(), value));
        }
        json_object(pairs)
    }

    /// `account(id: …)`: the live record or null.
    fn single(&mut self, object: &ObjectDef, field: &'a Field) -> Compiled<Sql> {
        let id = match self.argument(field, "id") {
            Some(Value::String(text)) => input::parse_id(&text, &Path::root("id")).map_err(|_| Skip::Values)?,
            _ => return Err(Skip::Values),
        };
        let mut key = Sql::new();
        key.bind(Bind::Uuid(Some(id)));
        // A merged record's id reads its survivor.
        let key = crate::records::merged::redirected(self.workspace, object, &key);
        self.live_record(object, &field.selection_set.node, key)
    }

    /// `(SELECT <record> FROM … WHERE id = <key> AND live)`: one live record
    /// of `object`, or null.
    fn live_record(&mut self, object: &ObjectDef, set: &'a SelectionSet, key: Sql) -> Compiled<Sql> {
        let alias = self.alias("t");
        let record = self.record(object, set, &alias)?;
        let table = self.table(object);
        let mut sql = Sql::raw("(SELECT ");
        sql.append(&record);
        sql.append(&table.from_as(&alias));
        sql.push(" WHERE ").column(&alias, "id").push(" = ").append(&key);
        sql.push(" AND ").append(&table.rows(false, &alias)).push(")");
        Ok(sql)
    }

    /// A record of `object` in table alias `alias`, as the selection asks.
    fn record(&mut self, object: &ObjectDef, set: &'a SelectionSet, alias: &str) -> Compiled<Sql> {
        let model = self.model;
        let mut pairs = Vec::new();
        for field in self.fields(set, &object.name)? {
            let name = field.name.node.as_str();
            let value = if name == "__typename" {
                type_name(&object.name)
            } else if let Some(def) = object.field(name) {
                Self::only_arguments(field, &[])?;
                match def.lookup() {
                    Some(lookup) => self.referenced(def, lookup, field, alias)?,
                    None => column_json(def, alias),
                }
            } else if let Some(def) = object.field_by_value_key(name) {
                Self::only_arguments(field, &[])?;
                column_json(def, alias)
            } else if let Some(relation) = model
                .inverse_relations(&object.name)
                .into_iter()
                .find(|relation| relation.name == name)
            {
                let parent = Parent {
                    lookup: &relation.lookup,
                    alias,
                };
                self.connection(&relation.child, field, Some(parent))?
            } else {
                return Err(Skip::Unsupported);
            };
            pairs.push((field.response_key().node.clone(), value));
        }
        json_object(pairs)
    }

    /// The live record a lookup points at, or null.
    fn referenced(&mut self, def: &FieldDef, lookup: &Lookup, field: &'a Field, alias: &str) -> Compiled<Sql> {
        let target = self.model.object(&lookup.target).ok_or(Skip::Unsupported)?;
        let mut key = Sql::new();
        key.column(alias, &def.column);
        self.live_record(target, &field.selection_set.node, key)
    }

    /// `accounts(…) { … }` or a nested list: one page in keyset order, with
    /// `limit + 1` rows read to know whether more follow.
    fn connection(&mut self, object: &ObjectDef, field: &'a Field, parent: Option<Parent<'_>>) -> Compiled<Sql> {
        let request = self.page_request(object, field)?;
        let page = Page::new(&request, self.alias("p"));
        let connection_type = format!("{}Connection", object.name);
        let mut pairs = Vec::new();
        let mut reads_page = false;
        for item in self.fields(&field.selection_set.node, &connection_type)? {
            Self::only_arguments(item, &[])?;
            let value = match item.name.node.as_str() {
                "__typename" => type_name(&connection_type),
                "totalCount" => self.count(object, &request, parent.as_ref()),
                "nodes" => {
                    reads_page = true;
                    page.list(&self.record(object, &item.selection_set.node, &page.rows)?)
                }
                "edges" => {
                    reads_page = true;
                    page.list(&self.edge(object, item, &page)?)
                }
                "pageInfo" => {
                    reads_page = true;
                    self.page_info(item, &page)?
                }
                _ => return Err(Skip::Unsupported),
            };
            pairs.push((item.response_key().node.clone(), value));
        }
        let mut sql = Sql::raw("(SELECT ");
        sql.append(&json_object(pairs)?);
        if reads_page {
            sql.push(" FROM (")
                .append(&self.page_rows(object, &request, parent.as_ref()));
            sql.push(") AS ").ident(&page.rows);
        }
        sql.push(")");
        Ok(sql)
    }

    /// The page a connection field asks for, from its arguments.
    fn page_request(&self, object: &ObjectDef, field: &'a Field) -> Compiled<page::PageRequest> {
        const ARGUMENTS: [&str; 7] = [
            "filter",
            "orderBy",
            "first",
            "last",
            "after",
            "before",
            "includeDeleted",
        ];
        Self::only_arguments(field, &ARGUMENTS)?;
        let values: Vec<Option<Value>> = ARGUMENTS.iter().map(|name| self.argument(field, name)).collect();
        let args = ListArgs {
            filter: values[0].as_ref(),
            order_by: values[1].as_ref(),
            first: values[2].as_ref(),
            last: values[3].as_ref(),
            after: values[4].as_ref(),
            before: values[5].as_ref(),
            include_deleted: values[6].as_ref(),
        };
        input::page_request(self.model, self.workspace, self.visibility, object, &args).map_err(|_| Skip::Values)
    }

    /// One element of `edges`: its `cursor` and `node`, for a row of the page.
    fn edge(&mut self, object: &ObjectDef, edges: &'a Field, page: &Page) -> Compiled<Sql> {
        let edge_type = format!("{}Edge", object.name);
        let mut pairs = Vec::new();
        for field in self.fields(&edges.selection_set.node, &edge_type)? {
            Self::only_arguments(field, &[])?;
            let value = match field.name.node.as_str() {
                "__typename" => type_name(&edge_type),
                "cursor" => page.cursor.clone(),
                "node" => self.record(object, &field.selection_set.node, &page.rows)?,
                _ => return Err(Skip::Unsupported),
            };
            pairs.push((field.response_key().node.clone(), value));
        }
        json_object(pairs)
    }

    /// `pageInfo`: whether more rows follow either way, and the cursors of
    /// the page's first and last rows.
    fn page_info(&mut self, info: &'a Field, page: &Page) -> Compiled<Sql> {
        let mut pairs = Vec::new();
        for field in self.fields(&info.selection_set.node, "PageInfo")? {
            Self::only_arguments(field, &[])?;
            let value = match field.name.node.as_str() {
                "__typename" => type_name("PageInfo"),
                "hasNextPage" if page.backward => boolean(page.has_before),
                "hasNextPage" => page.more(),
                "hasPreviousPage" if page.backward => page.more(),
                "hasPreviousPage" => boolean(page.has_after),
                "startCursor" => page.cursor_of(page.position),
                "endCursor" => page.cursor_of(page.position_reversed),
                _ => return Err(Skip::Unsupported),
            };
            pairs.push((field.response_key().node.clone(), value));
        }
        json_object(pairs)
    }

    /// The page's rows plus one, numbered in the order they are read.
    fn page_rows(&mut self, object: &ObjectDef, request: &page::PageRequest, parent: Option<&Parent<'_>>) -> Sql {
        let table = self.alias("t");
        let order = page::order_by(&request.effective_order(), &table);
        let mut sql = Sql::raw("SELECT ");
        sql.ident(&table).push(".*, row_number() OVER (ORDER BY ");
        sql.append(&order).push(") AS \"__position\"");
        sql.append(&self.matching(object, request, parent, &table));
        if let Some(cursor) = request.cursor() {
            sql.push(" AND ")
                .append(&page::after_cursor(&request.effective_order(), cursor, &table));
        }
        let limit = request.limit() + 1;
        if parent.is_none() {
            if let Some(candidates) = window::candidates(&self.table(object), request, limit, &table) {
                sql.push(" AND ").append(&candidates);
            }
        }
        sql.push(" ORDER BY ").append(&order);
        // Page sizes are written into the text, not bound: with a bound
        // LIMIT Postgres cannot trust a cached generic plan and plans the
        // statement again on every run.
        sql.push(" LIMIT ").push(&limit.to_string());
        sql
    }

    /// `totalCount`: every matching record, on all pages.
    fn count(&mut self, object: &ObjectDef, request: &page::PageRequest, parent: Option<&Parent<'_>>) -> Sql {
        let table = self.alias("t");
        let mut sql = Sql::raw("(SELECT count(*)");
        sql.append(&self.matching(object, request, parent, &table)).push(")");
        sql
    }

    /// `FROM … WHERE …`: the live (or all) records of the list, of one
    /// parent when nested, matching the filter.
    fn matching(
        &self,
        object: &ObjectDef,
        request: &page::PageRequest,
        parent: Option<&Parent<'_>>,
        table: &str,
    ) -> Sql {
        let rows = self.table(object);
        let mut sql = rows.from_as(table);
        sql.push(" WHERE ").append(&rows.rows(request.include_deleted, table));
        if let Some(parent) = parent {
            sql.push(" AND ").column(table, &parent.lookup.column);
            sql.push(" = ").column(parent.alias, "id");
        }
        if let Some(filter) = &request.filter {
            sql.push(" AND (")
                .append(&filter.compile(self.workspace, table))
                .push(")");
        }
        sql
    }
}

/// The rows of one page as a connection's fields read them: numbered by
/// `__position` in reading order, with one row past the page (`limit + 1`
/// are read) telling whether more follow.
struct Page {
    /// The alias of the page's rows.
    rows: String,
    /// A number this code computed (0–500): written into the SQL text.
    limit: usize,
    /// Read with `last`/`before`: the rows come in reverse order.
    backward: bool,
    has_after: bool,
    has_before: bool,
    /// The order of the rows as the client sees them, and its reverse.
    position: &'static str,
    position_reversed: &'static str,
    /// A row's cursor.
    cursor: Sql,
}

impl Page {
    fn new(request: &page::PageRequest, rows: String) -> Self {
        let backward = request.last.is_some();
        let (position, position_reversed) = if backward {
            ("\"__position\" DESC", "\"__position\" ASC")
        } else {
            ("\"__position\" ASC", "\"__position\" DESC")
        };
        Page {
            cursor: page::cursor_sql(&request.order, &rows),
            rows,
            limit: request.limit(),
            backward,
            has_after: request.after.is_some(),
            has_before: request.before.is_some(),
            position,
            position_reversed,
        }
    }

    /// `function(value ORDER BY …)` over the page's rows, without the extra one.
    fn aggregate(&self, function: &str, value: &Sql, order: &str) -> Sql {
        let mut sql = Sql::raw(function);
        sql.push("(")
            .append(value)
            .push(" ORDER BY ")
            .ident(&self.rows)
            .push(".");
        sql.push(order)
            .push(") FILTER (WHERE ")
            .ident(&self.rows)
            .push(".\"__position\" <= ");
        sql.push(&self.limit.to_string()).push(")");
        sql
    }

    /// A JSON list of `element` for each row of the page, `[]` for none.
    fn list(&self, element: &Sql) -> Sql {
        let mut sql = Sql::raw("coalesce(");
        sql.append(&self.aggregate("json_agg", element, self.position))
            .push(", '[]'::json)");
        sql
    }

    /// Whether more rows follow than the page holds.
    fn more(&self) -> Sql {
        let mut sql = Sql::raw("(count(*) > ");
        sql.push(&self.limit.to_string()).push(")");
        sql
    }

    /// The cursor of the page's first row in `order`.
    fn cursor_of(&self, order: &str) -> Sql {
        let mut sql = Sql::raw("(");
        sql.append(&self.aggregate("array_agg", &self.cursor, order))
            .push(")[1]");
        sql
    }
}

/// A type name (from metadata or the fixed schema) as a JSON string.
fn type_name(name: &str) -> Sql {
    let mut sql = Sql::new();
    sql.bind(Bind::Text(Some(name.to_owned())));
    sql
}

fn boolean(value: bool) -> Sql {
    Sql::raw(if value { "true" } else { "false" })
}

/// `json_build_object('key', value, …)`, keys in selection order. Past 50
/// keys the objects of each 50 are spliced as text.
fn json_object(pairs: Vec<(Name, Sql)>) -> Compiled<Sql> {
    // Response keys are GraphQL names ([_A-Za-z][_0-9A-Za-z]*): safe in a literal.
    if pairs
        .iter()
        .any(|(key, _)| !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    {
        return Err(Skip::Unsupported);
    }
    let chunks: Vec<Sql> = pairs
        .chunks(PAIRS_PER_CALL)
        .map(|chunk| {
            let mut sql = Sql::raw("json_build_object(");
            for (i, (key, value)) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push("'").push(key).push("', ").append(value);
            }
            sql.push(")");
            sql
        })
        .collect();
    if chunks.len() == 1 {
        return Ok(chunks.into_iter().next().unwrap_or_default());
    }
    let last = chunks.len() - 1;
    let mut sql = Sql::raw("(");
    for (i, chunk) in chunks.iter().enumerate() {
        let mut text = Sql::raw("(");
        text.append(chunk).push(")::text");
        if i < last {
            let mut cut = Sql::raw("left(");
            cut.append(&text).push(", -1)");
            text = cut;
        }
        if i > 0 {
            let mut cut = Sql::raw("substr(");
            cut.append(&text).push(", 2)");
            text = cut;
            sql.push(" || ', ' || ");
        }
        sql.append(&text);
    }
    sql.push(")::json");
    Ok(sql)
}

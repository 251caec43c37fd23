//! Compiled reads: a query made only of records, relations and connections
//! runs without per-field resolvers. Connections of every shape (`nodes`,
//! `edges`, `pageInfo`, `totalCount`, either direction), records by id,
//! lookups and nested lists run as flat statements, one per level, whose
//! columns are written as JSON here (`compiler::flat`); the rare rest (two
//! node selections in one connection) as one SQL statement in which
//! Postgres builds the response JSON (`json_build_object`/`json_agg`,
//! which keep field order), the way PostGraphile does.
//!
//! The resolvers stay the reference. An operation is compiled only after
//! it has once run through them without an error (that run validated the
//! document), and anything the compiler does not know — introspection,
//! directives other than `@include`/`@skip`, a value it would refuse — goes
//! to the resolvers, which answer it or explain the error. Both paths build
//! their SQL from the same pieces (`records`), and the test suite checks
//! that they answer byte for byte the same. `compiler` turns an operation
//! into SQL; this module decides which operations take that path.

mod compiler;
mod variables;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationDefinition};
use async_graphql::registry::Registry;
use async_graphql::{Request, Response, Variables};
use diesel::sql_types::Text;

use super::cache::TextCache;
use super::Limits;
use crate::access::Visibility;
use crate::db::sql::Sql;
use crate::db::Database;
use crate::metadata::Model;
use compiler::compile;
use variables::prepare;

/// `json_build_object` takes at most 100 arguments: 50 keys and values.
const PAIRS_PER_CALL: usize = 50;
/// Fragments nest at most this deep (a cycle is a validation error the
/// resolvers report; this only stops the compiler from following it).
const MAX_FRAGMENT_NESTING: usize = 16;

/// What is known about one operation (query text and operation name).
#[derive(Clone)]
enum Plan {
    /// It needs the resolvers (introspection, directives, mutations …).
    Resolvers,
    /// It compiles; it runs compiled once the resolvers have answered it
    /// without an error, which proves the document valid.
    Unconfirmed(Arc<ExecutableDocument>),
    Compiled(Arc<ExecutableDocument>),
}

/// Why a request is not answered by a compiled statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    /// The operation uses something the compiler does not handle.
    Unsupported,
    /// This request's values need the resolvers (to report an error, or a
    /// variable type the compiler does not check); others may not.
    Values,
}

type Compiled<T> = std::result::Result<T, Skip>;

/// The plans of one workspace schema (dropped with it when metadata changes).
pub struct Plans {
    limits: Option<Limits>,
    entries: RwLock<TextCache<Plan>>,
    answered: Arc<AtomicU64>,
}

impl Plans {
    /// `answered` counts requests answered by a compiled statement (for `/metrics`).
    pub fn new(limits: Option<Limits>, answered: Arc<AtomicU64>) -> Self {
        Plans {
            limits,
            entries: RwLock::default(),
            answered,
        }
    }

    /// The response body, when one compiled statement can answer `request`;
    /// `None` sends it to the resolvers.
    pub async fn answer(
        &self,
        model: &Model,
        workspace: &str,
        visibility: &Visibility,
        db: &Database,
        registry: &Registry,
        request: &Request,
    ) -> Option<String> {
        let key = plan_key(request);
        let plan = self.entries.read().ok()?.get(&key).cloned();
        let document = match plan {
            Some(Plan::Compiled(document)) => document,
            Some(_) => return None,
            None => {
                self.learn(model, workspace, registry, key, request);
                return None;
            }
        };
        let (operation, variables) = match prepare(&document, request, registry) {
            Ok(prepared) => prepared,
            Err(skip) => return self.skip(request, skip),
        };
        if !self.within_limits(&document, &variables) {
            return None;
        }
        let statement = match compile(model, workspace, visibility, &document, operation, &variables) {
            Ok(statement) => statement,
            Err(skip) => return self.skip(request, skip),
        };
        let body = statement.run(db).await?;
        self.answered.fetch_add(1, Ordering::Relaxed);
        Some(body)
    }

    /// Records that the resolvers answered `request`: without an error, its
    /// document is valid and its plan may run compiled from now on.
    pub fn confirm(&self, key: String, response: &Response) {
        if !response.errors.is_empty() {
            return;
        }
        if let Ok(mut entries) = self.entries.write() {
            if let Some(Plan::Unconfirmed(document)) = entries.get(&key) {
                let document = document.clone();
                entries.insert(key, Plan::Compiled(document));
            }
        }
    }

    /// First sight of an operation: parse it and find out whether it compiles.
    fn learn(&self, model: &Model, workspace: &str, registry: &Registry, key: String, request: &Request) {
        let plan = match super::cache::document(&request.query) {
            Err(_) => Plan::Resolvers,
            Ok(document) => {
                let all = Visibility::all();
                let compiled = prepare(&document, request, registry).and_then(|(operation, variables)| {
                    // Nothing walks a document before it is checked.
                    if !self.within_limits(&document, &variables) {
                        return Err(Skip::Values);
                    }
                    compile(model, workspace, &all, &document, operation, &variables).map(drop)
                });
                match compiled {
                    Err(Skip::Unsupported) => Plan::Resolvers,
                    Ok(_) | Err(Skip::Values) => Plan::Unconfirmed(document),
                }
            }
        };
        if let Ok(mut entries) = self.entries.write() {
            entries.insert(key, plan);
        }
    }

    /// An operation found unsupported late (a branch its first request did
    /// not reach) stays with the resolvers.
    fn skip(&self, request: &Request, skip: Skip) -> Option<String> {
        if skip == Skip::Unsupported {
            if let Ok(mut entries) = self.entries.write() {
                entries.insert(plan_key(request), Plan::Resolvers);
            }
        }
        None
    }

    /// Over a limit, the resolvers' query gate explains which.
    fn within_limits(&self, document: &ExecutableDocument, variables: &Variables) -> bool {
        match &self.limits {
            Some(limits) => super::limits::check(document, variables, limits).is_ok(),
            None => true,
        }
    }
}

/// The plan cache key of a request: operation name and query text.
pub fn plan_key(request: &Request) -> String {
    let operation = request.operation_name.as_deref().unwrap_or("");
    let mut key = String::with_capacity(operation.len() + 1 + request.query.len());
    key.push_str(operation);
    key.push('\n');
    key.push_str(&request.query);
    key
}

#[derive(diesel::QueryableByName)]
struct DataRow {
    #[diesel(sql_type = Text)]
    data: String,
}

/// Runs the statement; on any database error (a timeout, a lost
/// connection) the resolvers run the request again and report it.
async fn run(db: &Database, data: Sql) -> Option<String> {
    let mut query = Sql::raw("SELECT (");
    query.append(&data).push(")::text AS data");
    if tracing::enabled!(tracing::Level::TRACE) {
        let sql = diesel::debug_query::<diesel::pg::Pg, _>(&query).to_string();
        tracing::trace!(%sql, "compiled query");
    }
    let mut conn = db.conn().await.ok()?;
    match query.load::<DataRow>(&mut conn).await {
        Ok(mut rows) => rows.pop().map(|row| row.data),
        Err(err) => {
            tracing::debug!(error = %err, "compiled query failed; answering with resolvers");
            None
        }
    }
}

/// The operation a request names (or its only one).
pub fn operation<'d>(document: &'d ExecutableDocument, name: Option<&str>) -> Option<&'d OperationDefinition> {
    match (&document.operations, name) {
        (DocumentOperations::Single(operation), None) => Some(&operation.node),
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name).map(|op| &op.node),
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next().map(|op| &op.node)
        }
        _ => None,
    }
}

/// Postgres renders JSON with spaces (`{"a" : 1, "b" : 2}`); clients get it
/// compact, as the resolvers write it.
fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

//! GraphQL over HTTP, as the GraphQL-over-HTTP spec has it: POST with
//! `application/json`, GET for queries (never mutations), to production's
//! endpoint or a sandbox's.
//!
//! A request passes the checks that need no database first (media type,
//! body size and timeout, nesting), then authenticates (`caller`), then
//! reaches its workspace (`workspace`), and is answered within the request
//! timeout. A client that accepts `application/graphql-response+json`
//! gets a 400 for a request that fails before execution (parse,
//! validation); others get 200 for every well-formed request. Either
//! method may send a persisted query's hash instead of its text
//! ([`graphql::persisted`]).

use std::sync::Arc;
use std::time::Instant;

use async_graphql::parser::types::OperationType;
use axum::extract::{RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::RequestPartsExt;
use serde_json::json;

use super::workspace::Endpoint;
use super::{accepts, deadline, errors_body, graphql_response, playground, Format, HttpError, Shared};
use crate::auth::{Actor, Role};
use crate::db::replicas::Route;
use crate::error::CrmError;
use crate::graphql::{self, Caller, Workspace};

/// `POST /graphql` and `POST /sandboxes/{name}/graphql`.
pub(super) async fn post(
    State(app): State<Arc<Shared>>,
    endpoint: Endpoint,
    request: Request,
) -> Result<Response, HttpError> {
    let (mut parts, body) = request.into_parts();
    require_json(&parts.headers)?;
    let body = deadline::read_body(&app, body).await?;
    let mut request: async_graphql::Request = serde_json::from_slice(&body).map_err(|err| {
        HttpError::bad_request(
            StatusCode::BAD_REQUEST,
            format!("the body is not a GraphQL request: {err}"),
        )
    })?;
    graphql::persisted::resolve(&mut request)?;
    // Bounded before any token is looked up: the body size (above) and the
    // nesting of the query.
    too_deep(&app, &request)?;
    let deadline = deadline::request_deadline(&app);
    let (actor, workspace) = deadline::by_deadline(&app, deadline, async {
        let actor: Actor = parts.extract_with_state(&app).await?;
        let workspace = endpoint.resolve(&app, &actor).await?;
        Ok((actor, workspace))
    })
    .await?;
    run(app, &parts.headers, actor, workspace, request, deadline).await
}

/// `GET /graphql` and `GET /sandboxes/{name}/graphql`: a query, or the
/// playground for a browser that asks for no query.
pub(super) async fn get(
    State(app): State<Arc<Shared>>,
    endpoint: Endpoint,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, HttpError> {
    let (mut parts, _) = request.into_parts();
    if is_upgrade(&parts.headers) {
        let upgrade: axum::extract::ws::WebSocketUpgrade =
            parts
                .extract()
                .await
                .map_err(|err: axum::extract::ws::rejection::WebSocketUpgradeRejection| {
                    HttpError::bad_request(StatusCode::BAD_REQUEST, err.body_text())
                })?;
        let connection = parts.extensions.get::<super::server::Connection>().cloned();
        return super::subscriptions::upgrade(app, endpoint, upgrade, &parts.headers, connection);
    }
    let query = query.unwrap_or_default();
    let asks = |name: &str| query.split('&').any(|pair| pair.starts_with(name));
    if accepts(&parts.headers, "text/html") && !asks("query=") && !asks("extensions=") {
        return Ok(playground::page(&app, &endpoint).await);
    }
    let mut request = async_graphql::http::parse_query_string(&query)
        .map_err(|err| HttpError::bad_request(StatusCode::BAD_REQUEST, format!("bad GraphQL GET request: {err}")))?;
    // async-graphql's parser reads `operation_name`; the spec (and every
    // client) says `operationName`.
    if let Some(name) = query.split('&').find_map(|pair| pair.strip_prefix("operationName=")) {
        let name = percent_encoding::percent_decode_str(&name.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned();
        request.operation_name = Some(name);
    }
    graphql::persisted::resolve(&mut request)?;
    too_deep(&app, &request)?;
    let deadline = deadline::request_deadline(&app);
    let actor: Actor = deadline::by_deadline(&app, deadline, async { parts.extract_with_state(&app).await }).await?;
    if is_mutation(&request) {
        let refused = HttpError::bad_request(StatusCode::METHOD_NOT_ALLOWED, "mutations are only accepted with POST");
        return Err(refused.with_header(header::ALLOW, HeaderValue::from_static("POST")));
    }
    let workspace = deadline::by_deadline(&app, deadline, endpoint.resolve(&app, &actor)).await?;
    run(app, &parts.headers, actor, workspace, request, deadline).await
}

/// Whether a request asks to upgrade to a WebSocket.
fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Refuses with 415 a body not declared as JSON.
pub(super) fn require_json(headers: &HeaderMap) -> Result<(), HttpError> {
    if super::is_json(headers) {
        return Ok(());
    }
    Err(HttpError::bad_request(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "send the GraphQL request as JSON with Content-Type: application/json",
    ))
}

/// Refuses a document nested far deeper than any valid query may be,
/// before authentication and before anything parses it: the nesting of
/// braces and brackets bounds selection depth plus argument nesting (input
/// objects and lists), so no recursive walk after it can exhaust the stack.
/// The exact depth check runs after it.
pub(super) fn too_deep(app: &Shared, request: &async_graphql::Request) -> Result<(), CrmError> {
    use crate::graphql::limits::{nesting, variables_nesting, ARGUMENT_NESTING};
    let bound = app.config.max_depth + ARGUMENT_NESTING;
    let text = nesting(request.query.as_bytes());
    let variables = variables_nesting(&request.variables);
    if text <= bound && variables <= ARGUMENT_NESTING {
        return Ok(());
    }
    let message = if text > bound {
        format!(
            "the query nests braces and brackets {text} levels deep; at most {bound} are allowed \
             ({} levels of fields plus {ARGUMENT_NESTING} of arguments)",
            app.config.max_depth
        )
    } else {
        format!("the variables nest lists and objects {variables} levels deep; at most {ARGUMENT_NESTING} are allowed")
    };
    Err(CrmError::QueryTooComplex(message))
}

/// Root query fields that must read the primary: a promotion's rehearsal
/// (a transaction that writes, then rolls back) and import jobs (a running
/// job is checked by its advisory lock, which lives on the primary).
const PRIMARY_READS: &[&str] = &["sandboxDiff", "importJob", "importJobs"];

/// Answers on the primary or a replica (see `db::replicas`): a mutation
/// runs on the primary, and the caller's later reads wait for it; a
/// read-only operation may run on a replica, and runs again on the primary
/// if the replica failed it (it died between checks, a recovery conflict
/// cancelled it, or it has not replayed a change this server already
/// serves).
async fn routed(
    app: &Shared,
    entry: &graphql::WorkspaceSchema,
    caller: Caller,
    request: async_graphql::Request,
) -> graphql::Answer {
    let Some(replicas) = &app.replicas else {
        return graphql::answer(entry, &app.db, caller, request).await;
    };
    let token = caller.actor.token_id;
    let (db, route) = match needs(&request) {
        Needs::Primary { writes: true } => {
            let answered = graphql::answer(entry, &app.db, caller, request).await;
            replicas.wrote(token).await;
            return answered;
        }
        Needs::Primary { writes: false } => replicas.primary_read(),
        Needs::Any => replicas.for_read(token),
    };
    if route == Route::Primary {
        return graphql::answer(entry, &app.db, caller, request).await;
    }
    let again = (caller.clone(), copy(&request));
    let answered = graphql::answer(entry, &db, caller, request).await;
    if failed_on_replica(&answered) {
        tracing::warn!("a read failed on a replica; answered by the primary");
        let (caller, request) = again;
        return graphql::answer(entry, &app.db, caller, request).await;
    }
    answered
}

/// Which database an operation may run on.
enum Needs {
    /// A mutation (`writes`), or a read of a root field in `PRIMARY_READS`.
    Primary {
        writes: bool,
    },
    Any,
}

/// What the operation a request would run needs, from one look at it (an
/// operation that cannot be found fails the same wherever it runs).
fn needs(request: &async_graphql::Request) -> Needs {
    use async_graphql::parser::types::Selection;
    let Ok(document) = crate::graphql::cache::document(&request.query) else {
        return Needs::Any;
    };
    let Some(operation) = crate::graphql::compiled::operation(&document, request.operation_name.as_deref()) else {
        return Needs::Any;
    };
    if operation.ty == OperationType::Mutation {
        return Needs::Primary { writes: true };
    }
    let primary = operation.selection_set.node.items.iter().any(|item| match &item.node {
        Selection::Field(field) => PRIMARY_READS.contains(&field.node.name.node.as_str()),
        // Fragments at the root: the primary, to be safe.
        _ => true,
    });
    if primary {
        Needs::Primary { writes: false }
    } else {
        Needs::Any
    }
}

/// A request as it arrived, to run again.
fn copy(request: &async_graphql::Request) -> async_graphql::Request {
    let mut copy = async_graphql::Request::new(request.query.clone()).variables(request.variables.clone());
    copy.operation_name.clone_from(&request.operation_name);
    copy.extensions.clone_from(&request.extensions);
    copy
}

/// Whether an answer failed for the database's sake (not the caller's).
fn failed_on_replica(answered: &graphql::Answer) -> bool {
    match answered {
        graphql::Answer::Compiled(body) => body.contains("\"errors\""),
        graphql::Answer::Resolved { response, .. } => response.errors.iter().any(|error| {
            let code = error.extensions.as_ref().and_then(|extensions| extensions.get("code"));
            matches!(code, Some(async_graphql::Value::String(code)) if code == "INTERNAL" || code == "UNAVAILABLE")
        }),
    }
}

/// Whether the operation a request would run is a mutation.
fn is_mutation(request: &async_graphql::Request) -> bool {
    operation_is(request, OperationType::Mutation)
}

/// Whether the operation a request would run is of type `ty`.
fn operation_is(request: &async_graphql::Request, ty: OperationType) -> bool {
    let Ok(document) = crate::graphql::cache::document(&request.query) else {
        return false;
    };
    crate::graphql::compiled::operation(&document, request.operation_name.as_deref())
        .is_some_and(|operation| operation.ty == ty)
}

/// Answers a GraphQL request by its `deadline` (the request timeout from
/// its arrival), except an admin's mutation: sandbox copies, promotions and customizations run DDL inside
/// one transaction that may rightly take longer, and cutting one off
/// midway would only waste it (each statement is still bounded by
/// `statement_timeout`, which those operations lift on purpose).
async fn run(
    app: Arc<Shared>,
    headers: &HeaderMap,
    actor: Actor,
    workspace: Workspace,
    request: async_graphql::Request,
    deadline: tokio::time::Instant,
) -> Result<Response, HttpError> {
    if request.query.trim().is_empty() {
        return Err(HttpError::bad_request(
            StatusCode::BAD_REQUEST,
            "the request has no query",
        ));
    }
    if operation_is(&request, OperationType::Subscription) {
        return Err(HttpError::bad_request(
            StatusCode::BAD_REQUEST,
            "subscriptions run over a WebSocket at this URL (graphql-transport-ws, as graphql-ws, Apollo Client and \
             urql speak it), not over HTTP",
        ));
    }
    let unbounded = actor.role == Role::Admin && is_mutation(&request);
    let answer = answer(app.clone(), headers, actor, workspace, request);
    if unbounded {
        return answer.await;
    }
    deadline::by_deadline(&app, deadline, answer).await
}

async fn answer(
    app: Arc<Shared>,
    headers: &HeaderMap,
    actor: Actor,
    workspace: Workspace,
    request: async_graphql::Request,
) -> Result<Response, HttpError> {
    let started = Instant::now();
    let operation = request.operation_name.clone().unwrap_or_else(|| "-".into());
    let entry = app
        .schemas
        .get(&app.db, &workspace)
        .await
        .map_err(HttpError::unavailable)?;
    let caller = Caller {
        actor,
        request_id: headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        authenticator: Some(app.auth.clone()),
        schemas: Some(app.schemas.clone()),
        base_url: base_url(&app, headers),
    };
    let (response, executed) = match routed(&app, &entry, caller, request).await {
        graphql::Answer::Compiled(body) => {
            tracing::info!(
                operation = %operation,
                workspace = %workspace.name,
                errors = 0,
                compiled = true,
                elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                "graphql"
            );
            return Ok(graphql_response(StatusCode::OK, body));
        }
        graphql::Answer::Resolved { response, executed } => (*response, executed),
    };
    tracing::info!(
        operation = %operation,
        workspace = %workspace.name,
        errors = response.errors.len(),
        compiled = false,
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "graphql"
    );
    // Errors before execution (parse, validation) leave `data` absent; an
    // error of a non-null root field (say FORBIDDEN) leaves `data: null`.
    let failed_before_execution = !executed;
    let unavailable = matches!(response.data, async_graphql::Value::Null) && response.errors.iter().any(is_unavailable);
    let status = if unavailable {
        StatusCode::SERVICE_UNAVAILABLE
    } else if Format::of(headers) == Format::GraphqlResponse && failed_before_execution {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    // Serialized as is, so fields keep the order the query asked for. A
    // request that fails before execution has no `data` entry at all.
    let body = if failed_before_execution {
        serde_json::to_string(&json!({ "errors": response.errors }))
    } else if matches!(response.data, async_graphql::Value::Null) {
        // async-graphql leaves a null `data` out; execution ran, so it is there.
        serde_json::to_string(&json!({ "data": null, "errors": response.errors }))
    } else {
        serde_json::to_string(&response)
    };
    let body = body.unwrap_or_else(|err| {
        let err = CrmError::internal(format_args!("serializing a response: {err}"));
        errors_body(err)
    });
    let mut response = graphql_response(status, body);
    if unavailable {
        // Nothing came back because the database is out of reach: a retry
        // shortly may succeed, as with a refusal before execution.
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static(super::RETRY_UNAVAILABLE));
    }
    Ok(response)
}

/// Whether a resolver's error says the database was out of reach.
fn is_unavailable(error: &async_graphql::ServerError) -> bool {
    let code = error.extensions.as_ref().and_then(|extensions| extensions.get("code"));
    matches!(code, Some(async_graphql::Value::String(code)) if code == "UNAVAILABLE")
}

/// Where clients reach this server: the configured public URL, else the
/// address this request was sent to.
pub(super) fn base_url(app: &Shared, headers: &HeaderMap) -> Option<String> {
    if let Some(url) = &app.config.public_url {
        return Some(url.trim_end_matches('/').to_owned());
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok())?;
    Some(format!("http://{host}"))
}

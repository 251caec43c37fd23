//! The axum router: GraphQL over HTTP, the playground, health and metrics.
//!
//! `/graphql` follows the GraphQL-over-HTTP spec: POST with
//! `application/json`, GET for queries (never mutations), responses as
//! `application/graphql-response+json` when the client accepts it (with
//! 4xx for requests that fail before execution) and `application/json`
//! otherwise (always 200 for a well-formed request).
//!
//! `server` serves the router with limits on connections, `deadline` bounds
//! how long a request may take, `rate_limit` how often a token (or an
//! address failing to authenticate) may call.

mod deadline;
pub mod rate_limit;
pub mod server;

pub use server::serve;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::parser::types::OperationType;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::app::App;
use crate::auth::Actor;
use crate::error::CrmError;
use crate::graphql::{self, Caller, Workspace};
use rate_limit::ClientAddress;

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// The whole HTTP surface of the server.
pub fn router(app: Arc<App>) -> Router {
    let mut router = Router::new()
        .route("/", get(|| async { Redirect::temporary("/graphql") }))
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/sandboxes/{name}/graphql", get(sandbox_get).post(sandbox_post))
        .route("/metrics", get(metrics))
        .route("/graphql/assets/{file}", get(asset))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz));
    if let Some(cors) = cors(&app.config.cors_origins) {
        router = router.layer(cors);
    }
    router
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
            let id = request
                .extensions()
                .get::<RequestId>()
                .and_then(|id| id.header_value().to_str().ok())
                .unwrap_or("-")
                .to_owned();
            tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path())
        }))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(app)
}

/// Browsers may call the API from these origins (none: same origin only).
fn cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .filter_map(|o| match HeaderValue::from_str(o) {
            Ok(value) => Some(value),
            Err(_) => {
                tracing::warn!(origin = %o, "ignoring a CORS origin that is not a header value");
                None
            }
        })
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
            .expose_headers([header::RETRY_AFTER, HeaderName::from_static("x-request-id")])
            .max_age(Duration::from_secs(3600)),
    )
}

async fn graphql_post(State(app): State<Arc<App>>, client: ClientAddress, headers: HeaderMap, body: Body) -> Response {
    post(app, None, client, headers, body).await
}

async fn sandbox_post(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    client: ClientAddress,
    headers: HeaderMap,
    body: Body,
) -> Response {
    post(app, Some(name), client, headers, body).await
}

async fn graphql_get(
    State(app): State<Arc<App>>,
    client: ClientAddress,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    get_request(app, None, client, headers, query).await
}

async fn sandbox_get(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    client: ClientAddress,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    get_request(app, Some(name), client, headers, query).await
}

/// A GraphQL request by POST, to production (`sandbox` is `None`) or a sandbox.
async fn post(
    app: Arc<App>,
    sandbox: Option<String>,
    client: ClientAddress,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &headers,
            "send the GraphQL request as JSON with Content-Type: application/json",
        );
    }
    let body = match deadline::read_body(&app, &headers, body).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &headers,
                &format!("the body is not a GraphQL request: {err}"),
            )
        }
    };
    // Bounded before any token is looked up: the body size (the layer) and
    // the nesting of the query (here).
    if let Some(refused) = too_deep(&app, &headers, &request) {
        return refused;
    }
    let actor = match authenticate(&app, client, &headers).await {
        Ok(actor) => actor,
        Err(refused) => return refused,
    };
    let workspace = match workspace(&app, &headers, sandbox.as_deref(), &actor).await {
        Ok(workspace) => workspace,
        Err(refused) => return refused,
    };
    run(app, &headers, actor, workspace, request).await
}

/// A GraphQL request by GET (queries only), or the playground for a browser.
async fn get_request(
    app: Arc<App>,
    sandbox: Option<String>,
    client: ClientAddress,
    headers: HeaderMap,
    query: Option<String>,
) -> Response {
    let query = query.unwrap_or_default();
    let wants_html = accepts(&headers, "text/html");
    if wants_html && !query.split('&').any(|pair| pair.starts_with("query=")) {
        return match sandbox {
            None => playground("production", "/graphql").into_response(),
            Some(name) => sandbox_playground(&app, &name).await,
        };
    }
    let request = match async_graphql::http::parse_query_string(&query) {
        Ok(request) => request,
        Err(err) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &headers,
                &format!("bad GraphQL GET request: {err}"),
            )
        }
    };
    if let Some(refused) = too_deep(&app, &headers, &request) {
        return refused;
    }
    let actor = match authenticate(&app, client, &headers).await {
        Ok(actor) => actor,
        Err(refused) => return refused,
    };
    if is_mutation(&request) {
        let mut response = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &headers,
            "mutations are only accepted with POST",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let workspace = match workspace(&app, &headers, sandbox.as_deref(), &actor).await {
        Ok(workspace) => workspace,
        Err(refused) => return refused,
    };
    run(app, &headers, actor, workspace, request).await
}

/// The workspace a request goes to, or the response refusing it: 404 for
/// a sandbox that does not exist (or no longer does), 403 for a user who
/// is neither an admin nor granted the sandbox.
async fn workspace(
    app: &App,
    headers: &HeaderMap,
    sandbox: Option<&str>,
    actor: &Actor,
) -> Result<Workspace, Response> {
    let Some(name) = sandbox else {
        return Ok(Workspace::production());
    };
    let refuse = |status, err: CrmError| json_response(status, headers, errors_body(err));
    let not_found = || refuse(StatusCode::NOT_FOUND, CrmError::not_found("Sandbox", name));
    if crate::sandbox::check_name(name).is_err() {
        return Err(not_found());
    }
    let unavailable = |err| refuse(StatusCode::SERVICE_UNAVAILABLE, err);
    // A cached schema means the sandbox exists: its deletion (here or on
    // another server) drops the cached schema.
    let workspace = match app.schemas.cached(name) {
        Some(entry) => entry.workspace.clone(),
        None => {
            let mut conn = app.db.conn().await.map_err(unavailable)?;
            match crate::sandbox::find(&mut conn, name).await.map_err(unavailable)? {
                Some(sandbox) => Workspace {
                    name: sandbox.name,
                    pg_schema: sandbox.pg_schema,
                },
                None => return Err(not_found()),
            }
        }
    };
    if actor.role != crate::auth::Role::Admin {
        let mut conn = app.db.conn().await.map_err(unavailable)?;
        let granted = crate::sandbox::may_use(&mut conn, name, actor.user_id)
            .await
            .map_err(unavailable)?;
        if !granted {
            let err = CrmError::Forbidden {
                permission: "sandbox.use".into(),
                message: format!(
                    "you have no access to the sandbox {name}: an admin can grant it (grantSandboxAccess)"
                ),
            };
            return Err(refuse(StatusCode::FORBIDDEN, err));
        }
    }
    Ok(workspace)
}

/// The playground of a sandbox, or a 404 page when there is no such sandbox.
async fn sandbox_playground(app: &App, name: &str) -> Response {
    let exists = match app.db.conn().await {
        Ok(mut conn) => {
            crate::sandbox::check_name(name).is_ok()
                && matches!(crate::sandbox::find(&mut conn, name).await, Ok(Some(_)))
        }
        Err(_) => false,
    };
    if !exists {
        let page = format!(
            "<!doctype html><title>No sandbox</title><p>There is no sandbox named {}.</p>\n",
            html_escape(name)
        );
        return (StatusCode::NOT_FOUND, Html(page)).into_response();
    }
    playground(name, &format!("/sandboxes/{name}/graphql")).into_response()
}

/// Refuses a document nested far deeper than any valid query may be,
/// before authentication and before anything parses it: the nesting of
/// braces and brackets bounds selection depth plus argument nesting (input
/// objects and lists), so no recursive walk after it can exhaust the stack.
/// The exact depth check runs after it.
fn too_deep(app: &App, headers: &HeaderMap, request: &async_graphql::Request) -> Option<Response> {
    use crate::graphql::limits::{nesting, variables_nesting, ARGUMENT_NESTING};
    let bound = app.config.max_depth + ARGUMENT_NESTING;
    let text = nesting(request.query.as_bytes());
    let variables = variables_nesting(&request.variables);
    if text <= bound && variables <= ARGUMENT_NESTING {
        return None;
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
    Some(json_response(
        StatusCode::BAD_REQUEST,
        headers,
        errors_body(CrmError::QueryTooComplex(message)),
    ))
}

/// The actor of a request, or the response refusing it: 401 with
/// `WWW-Authenticate` for a missing or bad token, 429 once its token has
/// spent its allowance or its address has failed too often, 503 when
/// tokens cannot be checked.
async fn authenticate(app: &App, client: ClientAddress, headers: &HeaderMap) -> Result<Actor, Response> {
    let header = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match app.auth.authenticate(header).await {
        Ok(actor) => {
            if let Some(token) = actor.token_id {
                app.limits.check_token(token).map_err(|r| r.into_response(headers))?;
            }
            Ok(actor)
        }
        Err(err) => {
            if matches!(err, CrmError::Unauthenticated(_)) {
                app.limits
                    .check_failure(client.0)
                    .map_err(|r| r.into_response(headers))?;
            }
            let status = match err {
                CrmError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            let mut response = json_response(status, headers, errors_body(err));
            if status == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"crm\""),
                );
            }
            Err(response)
        }
    }
}

/// Whether the operation a request would run is a mutation.
fn is_mutation(request: &async_graphql::Request) -> bool {
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
        return false;
    };
    let operation = match (&request.operation_name, document.operations) {
        (_, async_graphql::parser::types::DocumentOperations::Single(op)) => Some(op.node.ty),
        (Some(name), async_graphql::parser::types::DocumentOperations::Multiple(ops)) => {
            ops.get(name.as_str()).map(|op| op.node.ty)
        }
        (None, async_graphql::parser::types::DocumentOperations::Multiple(_)) => None,
    };
    operation == Some(OperationType::Mutation)
}

/// Answers a GraphQL request within the request timeout, except an admin's
/// mutation: sandbox copies, promotions and customizations run DDL inside
/// one transaction that may rightly take longer, and cutting one off
/// midway would only waste it (each statement is still bounded by
/// `statement_timeout`, which those operations lift on purpose).
async fn run(
    app: Arc<App>,
    headers: &HeaderMap,
    actor: Actor,
    workspace: Workspace,
    request: async_graphql::Request,
) -> Response {
    if request.query.trim().is_empty() {
        return error_response(StatusCode::BAD_REQUEST, headers, "the request has no query");
    }
    let unbounded = actor.role == crate::auth::Role::Admin && is_mutation(&request);
    let answer = answer(app.clone(), headers, actor, workspace, request);
    if unbounded {
        return answer.await;
    }
    deadline::within_request_timeout(&app, headers, answer).await
}

async fn answer(
    app: Arc<App>,
    headers: &HeaderMap,
    actor: Actor,
    workspace: Workspace,
    request: async_graphql::Request,
) -> Response {
    let started = Instant::now();
    let operation = request.operation_name.clone().unwrap_or_else(|| "-".into());
    let entry = match app.schemas.get(&app.db, &workspace).await {
        Ok(entry) => entry,
        Err(err) => return json_response(StatusCode::SERVICE_UNAVAILABLE, headers, errors_body(err)),
    };
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
    let (response, executed) = match graphql::answer(&entry, &app.db, caller, request).await {
        graphql::Answer::Compiled(body) => {
            tracing::info!(
                operation = %operation,
                workspace = %workspace.name,
                errors = 0,
                compiled = true,
                elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                "graphql"
            );
            return json_response(StatusCode::OK, headers, body);
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
    let status = if accepts(headers, GRAPHQL_RESPONSE) && failed_before_execution {
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
    json_response(status, headers, body)
}

/// Where clients reach this server: the configured public URL, else the
/// address this request was sent to.
fn base_url(app: &App, headers: &HeaderMap) -> Option<String> {
    if let Some(url) = &app.config.public_url {
        return Some(url.trim_end_matches('/').to_owned());
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok())?;
    Some(format!("http://{host}"))
}

/// A response body holding one error, with its code.
fn errors_body(err: CrmError) -> String {
    json!({ "errors": [err.into_server_error()] }).to_string()
}

fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|part| part.trim().starts_with(media_type)))
}

fn json_response(status: StatusCode, headers: &HeaderMap, body: String) -> Response {
    let media_type = if accepts(headers, GRAPHQL_RESPONSE) {
        GRAPHQL_RESPONSE
    } else {
        "application/json"
    };
    (
        status,
        [(header::CONTENT_TYPE, format!("{media_type}; charset=utf-8"))],
        body,
    )
        .into_response()
}

/// A request that is not GraphQL at all: a GraphQL-shaped error body.
fn error_response(status: StatusCode, headers: &HeaderMap, message: &str) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": "BAD_REQUEST" } }] });
    json_response(status, headers, body.to_string())
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    use diesel_async::SimpleAsyncConnection;
    let ready = match app.db.conn().await {
        Ok(mut conn) => conn.batch_execute("SELECT 1").await.is_ok(),
        Err(_) => false,
    };
    if ready {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n").into_response()
    }
}

async fn metrics(State(app): State<Arc<App>>, client: ClientAddress, headers: HeaderMap) -> Response {
    if let Err(refused) = authenticate(&app, client, &headers).await {
        return refused;
    }
    let (in_use, idle) = app.db.pool_status();
    let (builds, build_micros) = app.schemas.build_stats();
    let (limited_tokens, limited_addresses) = app.limits.tracked();
    let body = format!(
        "# HELP crm_sql_statements_total SQL statements run through the pool.\n\
         # TYPE crm_sql_statements_total counter\n\
         crm_sql_statements_total {}\n\
         # HELP crm_db_connections Pooled database connections.\n\
         # TYPE crm_db_connections gauge\n\
         crm_db_connections{{state=\"in_use\"}} {in_use}\n\
         crm_db_connections{{state=\"idle\"}} {idle}\n\
         # HELP crm_graphql_compiled_total Queries answered by one compiled SQL statement.\n\
         # TYPE crm_graphql_compiled_total counter\n\
         crm_graphql_compiled_total {}\n\
         # HELP crm_schema_builds_total GraphQL schemas built (first use, metadata changes).\n\
         # TYPE crm_schema_builds_total counter\n\
         crm_schema_builds_total {builds}\n\
         # HELP crm_schema_build_microseconds_total Time spent building them: reading metadata and building the schema.\n\
         # TYPE crm_schema_build_microseconds_total counter\n\
         crm_schema_build_microseconds_total {build_micros}\n\
         # HELP crm_rate_limiter_keys What the rate limiters track: verified tokens, client addresses that failed to authenticate.\n\
         # TYPE crm_rate_limiter_keys gauge\n\
         crm_rate_limiter_keys{{limiter=\"token\"}} {limited_tokens}\n\
         crm_rate_limiter_keys{{limiter=\"address\"}} {limited_addresses}\n\
         # HELP crm_remembered_tokens Live tokens whose row the server remembers (read in the last few seconds).\n\
         # TYPE crm_remembered_tokens gauge\n\
         crm_remembered_tokens {}\n",
        app.db.statements_run(),
        app.schemas.compiled_answers(),
        app.auth.remembered()
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// The vendored GraphiQL files (see assets/graphiql/README.md).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "graphiql.min.js",
        "text/javascript",
        include_bytes!("../assets/graphiql/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css",
        include_bytes!("../assets/graphiql/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        "text/javascript",
        include_bytes!("../assets/graphiql/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript",
        include_bytes!("../assets/graphiql/react-dom.production.min.js"),
    ),
];

async fn asset(method: Method, Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, bytes)) if method == Method::GET => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            *bytes,
        )
            .into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The playground page for a workspace's endpoint. Everything it loads is
/// served by this binary: it works with no network.
pub fn playground(workspace: &str, endpoint: &str) -> Html<String> {
    let banner = if workspace == "production" {
        String::new()
    } else {
        format!(
            "<div class=\"crm-banner\">Sandbox <b>{}</b> — changes here do not touch production</div>",
            html_escape(workspace)
        )
    };
    Html(format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>CRM GraphQL — {title}</title>
<link rel="stylesheet" href="/graphql/assets/graphiql.min.css">
<style>
  html, body {{ height: 100%; margin: 0; }}
  body {{ display: flex; flex-direction: column; }}
  #graphiql {{ flex: 1; min-height: 0; }}
  .crm-banner {{ background: #b45309; color: #fff; font: 14px system-ui, sans-serif; padding: 6px 12px; }}
</style>
</head>
<body>
{banner}
<div id="graphiql">Loading the playground…</div>
<script src="/graphql/assets/react.production.min.js"></script>
<script src="/graphql/assets/react-dom.production.min.js"></script>
<script src="/graphql/assets/graphiql.min.js"></script>
<script>
  const fetcher = GraphiQL.createFetcher({{ url: {endpoint} }});
  const defaultQuery = `# Welcome to the CRM GraphQL playground ({title}).
# Run it with the play button or Ctrl-Enter.
# The Docs panel (top left) lists every type and field.
query Accounts {{
  accounts(first: 10, orderBy: [{{ field: NAME }}]) {{
    totalCount
    nodes {{
      name
      industry
      contacts(first: 5) {{ nodes {{ firstName lastName email }} }}
      opportunities {{ nodes {{ name amount closeDate }} }}
    }}
  }}
}}
`;
  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {{
      fetcher,
      defaultQuery,
      // Requests need an API token: `serve` prints the first one and keeps
      // it in <data-dir>/admin-token. Headers are remembered in this browser.
      defaultHeaders: '{{\n  "Authorization": "Bearer <paste your API token here>"\n}}',
      shouldPersistHeaders: true,
      defaultEditorToolsVisibility: 'headers',
    }})
  );
</script>
</body>
</html>
"#,
        title = html_escape(workspace),
        endpoint = serde_json::Value::String(endpoint.to_owned()),
    ))
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

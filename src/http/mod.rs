//! The HTTP surface of the server: the router, and the one way a failure
//! becomes a response.
//!
//! Handlers stay thin: extractors say who is calling (`caller`) and which
//! workspace they address (`workspace`); a handler returns
//! `Result<Response, HttpError>`, and [`HttpError`] is the only place that
//! turns an error into a status, headers and a GraphQL-shaped body. Every
//! GraphQL body (an answer or an error) is sent as
//! `application/graphql-response+json` to a client that accepts it and as
//! `application/json` otherwise: the `negotiate` layer decides, once, for
//! all of them.
//!
//! `graphql` answers GraphQL over HTTP, `playground` serves the browser
//! page and its vendored assets, `console` the admin console and its
//! sign-in, `metrics` the Prometheus text. `server`
//! serves the router with limits on connections, `deadline` bounds how
//! long a request may take, `rate_limit` how often a token (or an address
//! failing to authenticate) may call.
//!
//! What requests read is [`Shared`]; the server above this layer (the
//! `app` module) builds it and hands it over through [`Server`], so nothing
//! here depends on how the server is put together.

mod caller;
mod console;
mod deadline;
mod graphql;
mod metrics;
mod playground;
pub mod rate_limit;
pub mod server;
mod subscriptions;
mod transfer;
mod workspace;

pub use server::serve;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::db::Database;
use crate::error::CrmError;
use crate::graphql::SchemaCache;
use rate_limit::RateLimits;

/// Seconds a client is told to wait (`Retry-After`) before retrying a
/// request refused with `UNAVAILABLE`: about what a restart of the
/// embedded cluster takes.
const RETRY_UNAVAILABLE: &str = "2";

/// What every request reads: the configuration, the database, the
/// workspaces' schemas, the token checks and the rate limits.
pub struct Shared {
    pub config: Config,
    pub db: Database,
    pub schemas: Arc<SchemaCache>,
    /// Checks the API token of every request.
    pub auth: Arc<Authenticator>,
    /// How often a token, or an address failing to authenticate, may call.
    pub limits: RateLimits,
    /// Read replicas, when configured: where read-only operations run.
    pub replicas: Option<Arc<crate::db::replicas::Replicas>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("db", &self.db)
            .finish()
    }
}

/// A server this layer can serve: it holds the [`Shared`] state requests
/// read. [`serve`] keeps the server alive while it serves, and with it
/// whatever else the server runs (such as listening for other servers'
/// changes).
pub trait Server: Send + Sync + 'static {
    /// The state every request reads.
    fn shared(&self) -> &Arc<Shared>;
}

/// The whole HTTP surface of the server.
pub fn router(app: Arc<Shared>) -> Router {
    let mut router = Router::new()
        .route("/", get(|| async { Redirect::temporary("/graphql") }))
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route("/sandboxes/{name}/graphql", get(graphql::get).post(graphql::post))
        .route("/metrics", get(metrics::metrics))
        .route("/graphql/assets/{file}", get(playground::asset))
        .route("/imports", post(transfer::import))
        .route("/sandboxes/{name}/imports", post(transfer::import))
        .route("/imports/{id}/errors.csv", get(transfer::errors))
        .route("/sandboxes/{name}/imports/{id}/errors.csv", get(transfer::errors))
        .route("/exports/{object}", get(transfer::export))
        .route("/sandboxes/{name}/exports/{object}", get(transfer::export))
        .route("/console", get(console::page))
        .route("/console/", get(console::page))
        .route("/console/assets/{file}", get(console::asset))
        .route("/console/session", post(console::sign_in).delete(console::sign_out))
        .route("/sandboxes/{name}/changeset.json", get(console::changeset))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(middleware::from_fn(negotiate));
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

/// Liveness: the process answers, and its database is not given up on (a
/// supervised cluster whose restarts keep failing makes it 503, so an
/// orchestrator restarts the whole server).
async fn healthz(State(app): State<Arc<Shared>>) -> Response {
    match app.db.health().given_up() {
        None => (StatusCode::OK, "ok\n").into_response(),
        Some(failures) => {
            let body = format!("the database could not be restarted ({failures} attempts in a row failed)\n");
            (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
        }
    }
}

/// Readiness: the database answers a query within a few seconds.
async fn readyz(State(app): State<Arc<Shared>>) -> Response {
    use diesel_async::SimpleAsyncConnection;
    let probe = async {
        match app.db.conn().await {
            Ok(mut conn) => conn.batch_execute("SELECT 1").await.is_ok(),
            Err(_) => false,
        }
    };
    let ready = tokio::time::timeout(READINESS_PROBE, probe).await.unwrap_or(false);
    if ready {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n").into_response()
    }
}

/// How long `/readyz` waits for the database's answer.
const READINESS_PROBE: Duration = Duration::from_secs(3);

/// How GraphQL bodies are sent to this client: the GraphQL-over-HTTP media
/// type when it accepts it (and then requests that fail before execution
/// are 4xx), plain JSON otherwise (and then always 200 for a well-formed
/// request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    GraphqlResponse,
    Json,
}

impl Format {
    /// The format a request's `Accept` header asks for.
    fn of(headers: &HeaderMap) -> Self {
        if accepts(headers, "application/graphql-response+json") {
            Format::GraphqlResponse
        } else {
            Format::Json
        }
    }

    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Format::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
            Format::Json => "application/json; charset=utf-8",
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Format {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Format::of(&parts.headers))
    }
}

/// Whether a request's body is declared as JSON.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/json"))
}

/// Whether the client lists `media_type` among those it accepts.
fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|part| part.trim().starts_with(media_type)))
}

/// Marks a response whose body is a GraphQL document, for `negotiate`.
#[derive(Debug, Clone, Copy)]
struct GraphqlBody;

/// A GraphQL document (an answer, or errors) as a response; `negotiate`
/// gives it its media type.
fn graphql_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().remove(header::CONTENT_TYPE);
    response.extensions_mut().insert(GraphqlBody);
    response
}

/// Sends every GraphQL document in the format the client accepts: one
/// decision for answers, refusals and timeouts alike, whichever handler or
/// extractor produced them.
async fn negotiate(format: Format, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if response.extensions().get::<GraphqlBody>().is_some() {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, format.content_type());
    }
    response
}

/// A response body holding one error, with its code.
fn errors_body(err: CrmError) -> String {
    json!({ "errors": [err.into_server_error()] }).to_string()
}

/// A request the server refuses, or cannot answer, as the client sees it:
/// a GraphQL-shaped body with one coded error, the status that fits the
/// error, and the headers that tell the client what to do next
/// (`WWW-Authenticate`, `Retry-After`, `Allow`).
#[derive(Debug)]
pub struct HttpError {
    status: StatusCode,
    error: Failure,
    headers: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Debug)]
enum Failure {
    /// One of the server's errors, with its own code (boxed: refusals
    /// travel in `Result`s, which stay small).
    Crm(Box<CrmError>),
    /// A request that cannot be taken as a GraphQL request at all: code
    /// `BAD_REQUEST`.
    BadRequest(String),
}

impl HttpError {
    /// `error` with a status of the caller's choosing, where the error's
    /// kind alone does not say (a timeout: the client's, 408, or the
    /// server's, 503).
    fn new(status: StatusCode, error: CrmError) -> Self {
        let retry = matches!(error, CrmError::Unavailable(_));
        let refused = HttpError {
            status,
            error: Failure::Crm(Box::new(error)),
            headers: Vec::new(),
        };
        if retry {
            return refused.with_header(header::RETRY_AFTER, HeaderValue::from_static(RETRY_UNAVAILABLE));
        }
        refused
    }

    /// 503: something the server depends on (the database, a schema
    /// build, the token store) failed, whatever the error; a retry may
    /// succeed.
    fn unavailable(error: CrmError) -> Self {
        HttpError::new(StatusCode::SERVICE_UNAVAILABLE, error)
    }

    /// A request that is not GraphQL over HTTP as this server takes it (a
    /// body of another media type, too large or unreadable, a mutation by
    /// GET, no query): `status` with code `BAD_REQUEST`.
    fn bad_request(status: StatusCode, message: impl Into<String>) -> Self {
        HttpError {
            status,
            error: Failure::BadRequest(message.into()),
            headers: Vec::new(),
        }
    }

    /// The response also carries this header.
    fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl From<CrmError> for HttpError {
    /// The status of a refusal by its kind; a missing or bad token also
    /// says how to authenticate.
    fn from(error: CrmError) -> Self {
        let status = match &error {
            CrmError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            CrmError::Forbidden { .. } => StatusCode::FORBIDDEN,
            // Part of the protocol, not a failure: the client sends the text next.
            CrmError::PersistedQueryNotFound => StatusCode::OK,
            CrmError::NotFound { .. } => StatusCode::NOT_FOUND,
            CrmError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            CrmError::QueryTooComplex(_) | CrmError::BadUserInput { .. } | CrmError::LossyChange { .. } => {
                StatusCode::BAD_REQUEST
            }
            CrmError::Conflict(_)
            | CrmError::Busy(_)
            | CrmError::DataConflict { .. }
            | CrmError::Refused { .. }
            | CrmError::Duplicate { .. }
            | CrmError::ValidationFailed { .. }
            | CrmError::VersionConflict { .. } => StatusCode::CONFLICT,
            // The request timeout, or a failure of the server's own: a
            // retry may succeed.
            CrmError::Timeout(_) | CrmError::Unavailable(_) | CrmError::Internal { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        let refused = HttpError::new(status, error);
        if status == StatusCode::UNAUTHORIZED {
            return refused.with_header(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"crm\""),
            );
        }
        refused
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = match self.error {
            Failure::Crm(err) => errors_body(*err),
            Failure::BadRequest(message) => {
                json!({ "errors": [{ "message": message, "extensions": { "code": "BAD_REQUEST" } }] }).to_string()
            }
        };
        let mut response = graphql_response(self.status, body);
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

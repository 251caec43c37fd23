//! GraphQL over WebSocket: a GET of a workspace's GraphQL URL asking to
//! upgrade speaks `graphql-transport-ws` (the protocol of graphql-ws,
//! Apollo Client and urql; the older `graphql-ws` subprotocol too). The
//! API token comes in `connection_init`'s payload (`{ "authorization":
//! "Bearer …" }`, as browsers cannot set headers on a WebSocket) or the
//! upgrade request's `Authorization` header; the workspace is the URL's,
//! checked as for any request (a sandbox's grants) and again every 5 s
//! (a revoked token, a changed role or a withdrawn grant close it with
//! 4403). Every operation passes the checks of an HTTP request (rate
//! limit, persisted queries, nesting). One token holds at most
//! `subscription_connections_per_token` connections on a server, each
//! running at most 100 operations; a client has 10 s to send
//! `connection_init` (else 4408); a shutdown closes sockets with 1001.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::Duration;

use async_graphql::http::{WebSocketProtocols, WsMessage, ALL_WEBSOCKET_PROTOCOLS};
use async_graphql::{Data, Executor, Request as GraphqlRequest, Response as GraphqlResponse};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::header;
use axum::response::Response;
use futures_util::stream::BoxStream;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value as Json;
use uuid::Uuid;

use super::server::HeldOpen;
use super::workspace::Endpoint;
use super::{HttpError, Shared};
use crate::error::CrmError;
use crate::graphql::{self, Caller};

/// How often the server pings a connection (keeping proxies from closing
/// it) and checks its token, role and grant again.
const PING_EVERY: Duration = Duration::from_secs(5);
/// The largest message a client may send.
const MAX_MESSAGE: usize = 256 * 1024;

/// Open connections by token, on this server.
static OPEN: LazyLock<Mutex<HashMap<Uuid, usize>>> = LazyLock::new(Mutex::default);

/// A connection counted against its token's cap until dropped.
struct Counted(Uuid);

impl Counted {
    fn take(token: Uuid, cap: usize) -> Option<Counted> {
        let mut open = OPEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(token).or_default();
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(Counted(token))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = OPEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.0) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.0);
            }
        }
    }
}

/// WebSocket connections open on this server.
pub(super) fn open_connections() -> usize {
    OPEN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .values()
        .sum()
}

/// Who a connection serves, once `connection_init` authenticated it.
struct Session {
    /// Its workspace: each operation runs on its schema as it is then.
    workspace: crate::graphql::Workspace,
    /// The workspace's `recordVisibility` when it began: a change ends a
    /// sales rep's connection (what they may see changed).
    visibility: crate::access::RecordVisibility,
    caller: Caller,
    /// The `Authorization` it authenticated with, checked again now and
    /// then (a revoked token, a changed role, a withdrawn sandbox grant end
    /// the connection).
    authorization: Option<String>,
    /// The token (or user) its operations count against.
    token: Uuid,
    _counted: Counted,
}

/// The executor of one connection: its requests run on the schema of the
/// workspace its session reached, as its caller.
#[derive(Clone)]
struct Connection {
    app: Arc<Shared>,
    session: Arc<OnceLock<Session>>,
    /// Operations running on it.
    running: Arc<std::sync::atomic::AtomicUsize>,
}

/// Operations (subscriptions) one connection may run at once.
const OPERATIONS_PER_CONNECTION: usize = 100;
/// How long the periodic check of a session may take before it is left
/// for the next one.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a client has to send `connection_init`.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// An operation counted as running on its connection until dropped.
struct Running(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A response of one error with its code.
fn refusal(err: CrmError) -> BoxStream<'static, GraphqlResponse> {
    use async_graphql::ErrorExtensions;
    let error = err.extend().into_server_error(async_graphql::Pos::default());
    futures_util::stream::once(async move { GraphqlResponse::from_errors(vec![error]) }).boxed()
}

impl Executor for Connection {
    async fn execute(&self, request: GraphqlRequest) -> GraphqlResponse {
        self.execute_stream(request, None)
            .next()
            .await
            .unwrap_or_else(|| GraphqlResponse::from_errors(Vec::new()))
    }

    fn execute_stream(&self, mut request: GraphqlRequest, _: Option<Arc<Data>>) -> BoxStream<'static, GraphqlResponse> {
        use std::sync::atomic::Ordering;
        let Some(session) = self.session.get() else {
            return refusal(CrmError::Unauthenticated(
                "send connection_init with an API token first".into(),
            ));
        };
        // The checks of every HTTP request: its allowance, persisted
        // queries, the nesting of the document.
        if self.app.limits.check_token(session.token).is_err() {
            return refusal(CrmError::RateLimited(
                "this token is over its rate limit: try again shortly".into(),
            ));
        }
        if let Err(err) = crate::graphql::persisted::resolve(&mut request) {
            return refusal(err);
        }
        if let Err(err) = super::graphql::too_deep(&self.app, &request) {
            return refusal(err);
        }
        if self.running.fetch_add(1, Ordering::SeqCst) >= OPERATIONS_PER_CONNECTION {
            self.running.fetch_sub(1, Ordering::SeqCst);
            return refusal(CrmError::Conflict(format!(
                "a connection runs at most {OPERATIONS_PER_CONNECTION} operations at once: complete one first"
            )));
        }
        let running = Running(self.running.clone());
        let app = self.app.clone();
        let workspace = session.workspace.clone();
        let caller = session.caller.clone();
        futures_util::stream::once(async move {
            match app.schemas.get(&app.db, &workspace).await {
                Ok(entry) => graphql::stream(&entry, &app.db, caller, request),
                Err(err) => refusal(err),
            }
        })
        .flatten()
        .map(move |response| {
            let _ = &running;
            response
        })
        .boxed()
    }
}

/// Upgrades a GET of a GraphQL URL to a GraphQL WebSocket.
pub(super) fn upgrade(
    app: Arc<Shared>,
    endpoint: Endpoint,
    upgrade: WebSocketUpgrade,
    headers: &axum::http::HeaderMap,
    connection: Option<super::server::Connection>,
) -> Result<Response, HttpError> {
    // The subprotocol the answer names is the one spoken.
    let upgrade = upgrade.protocols(ALL_WEBSOCKET_PROTOCOLS);
    let protocol = upgrade
        .selected_protocol()
        .and_then(|value| value.to_str().ok())
        .and_then(|name| WebSocketProtocols::from_str(name).ok())
        .ok_or_else(|| {
            HttpError::bad_request(
                axum::http::StatusCode::BAD_REQUEST,
                "ask for the graphql-transport-ws subprotocol (Sec-WebSocket-Protocol)",
            )
        })?;
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let base_url = super::graphql::base_url(&app, headers);
    // Taken over only now the upgrade is accepted: the socket keeps the
    // connection's place among the server's.
    let held = connection.as_ref().map(super::server::Connection::hold_open);
    Ok(upgrade
        .max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            serve(app, endpoint, socket, protocol, authorization, base_url, held).await;
        }))
}

/// The token a `connection_init` payload carries.
fn token_of(payload: &Json) -> Option<String> {
    let named = |value: &Json| {
        ["authorization", "Authorization", "token"]
            .iter()
            .find_map(|key| value.get(*key).and_then(Json::as_str).map(str::to_owned))
    };
    let value = named(payload).or_else(|| payload.get("headers").and_then(named))?;
    Some(if value.contains(' ') {
        value
    } else {
        format!("Bearer {value}")
    })
}

/// A close frame's reason: at most 123 bytes (the rest of its 125), cut
/// at a character.
fn close_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

/// Authenticates a connection and reaches its workspace.
async fn start(
    app: &Arc<Shared>,
    endpoint: &Endpoint,
    authorization: Option<String>,
    base_url: Option<String>,
) -> Result<Session, CrmError> {
    let actor = app.auth.authenticate(authorization.as_deref()).await?;
    let token = actor.token_id.unwrap_or(actor.user_id);
    let token_id = token;
    app.limits
        .check_token(token)
        .map_err(|_| CrmError::RateLimited("this token is over its rate limit: try again shortly".into()))?;
    let cap = app.config.subscription_connections_per_token;
    let counted = Counted::take(token, cap).ok_or_else(|| {
        CrmError::Conflict(format!(
            "this token already has {cap} subscription connections open on this server: close one first"
        ))
    })?;
    let workspace = endpoint.reach(app, &actor).await?;
    let entry = app.schemas.get(&app.db, &workspace).await?;
    Ok(Session {
        visibility: entry.record_visibility.get(),
        workspace,
        caller: Caller {
            actor,
            request_id: None,
            authenticator: Some(app.auth.clone()),
            schemas: Some(app.schemas.clone()),
            base_url,
        },
        authorization,
        token: token_id,
        _counted: counted,
    })
}

/// Why a session may no longer go on, if so: its token no longer
/// authenticates, its user's role changed, or it lost its sandbox.
async fn withdrawn(app: &Shared, endpoint: &Endpoint, session: &Session) -> Option<String> {
    let visibility = app
        .schemas
        .cached(&session.workspace.name)
        .map(|entry| entry.record_visibility.get());
    if session.caller.actor.role == crate::auth::Role::Sales && visibility.is_some_and(|v| v != session.visibility) {
        return Some("the workspace's record visibility changed: connect again".into());
    }
    match app.auth.authenticate(session.authorization.as_deref()).await {
        Ok(actor) if actor.role != session.caller.actor.role => Some("your role changed: connect again".into()),
        Ok(actor) => match endpoint.reach(app, &actor).await {
            Ok(_) | Err(CrmError::Unavailable(_) | CrmError::Timeout(_) | CrmError::Internal { .. }) => None,
            Err(err) => Some(err.to_string()),
        },
        Err(err @ CrmError::Unauthenticated(_)) => Some(err.to_string()),
        // The token store cannot say now: the next look will.
        Err(_) => None,
    }
}

/// A refusal of `connection_init` a client may read: its own mistakes
/// in full, the server's troubles in general words.
fn refused(err: &CrmError) -> String {
    match err {
        CrmError::Unauthenticated(_)
        | CrmError::Forbidden { .. }
        | CrmError::NotFound { .. }
        | CrmError::Conflict(_)
        | CrmError::RateLimited(_) => err.to_string(),
        _ => "the server cannot check the token now: try again shortly".into(),
    }
}

/// Serves one WebSocket until the client or the server closes it. `held`
/// keeps the connection's place among the server's (and tells of a
/// shutdown, which closes it with 1001).
async fn serve(
    app: Arc<Shared>,
    endpoint: Endpoint,
    socket: WebSocket,
    protocol: WebSocketProtocols,
    header: Option<String>,
    base_url: Option<String>,
    mut held: Option<HeldOpen>,
) {
    let session = Arc::new(OnceLock::new());
    let executor = Connection {
        app: app.clone(),
        session: session.clone(),
        running: Arc::default(),
    };
    let checked = session.clone();
    let watcher = (app.clone(), endpoint.clone());
    // Set when connection_init arrives (its check may take a while).
    let initialized = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let init_seen = initialized.clone();
    let started = session.clone();
    let (mut sink, stream) = socket.split();
    let input = stream
        .take_while(|message| futures_util::future::ready(message.is_ok()))
        .filter_map(|message| {
            futures_util::future::ready(match message {
                Ok(Message::Text(text)) => Some(text.as_bytes().to_vec()),
                Ok(Message::Binary(bytes)) => Some(bytes.to_vec()),
                _ => None,
            })
        });
    let mut output = async_graphql::http::WebSocket::new(executor, input, protocol)
        .on_connection_init(move |payload: Json| async move {
            init_seen.store(true, std::sync::atomic::Ordering::SeqCst);
            let authorization = token_of(&payload).or(header);
            match start(&app, &endpoint, authorization, base_url).await {
                Ok(started) => {
                    let _ = session.set(started);
                    Ok(Data::default())
                }
                Err(err) => Err(async_graphql::Error::new(refused(&err))),
            }
        })
        .map(|message| match message {
            WsMessage::Text(text) => Message::Text(text.into()),
            WsMessage::Close(code, reason) => Message::Close(Some(CloseFrame {
                // A refused connection_init: 4403 Forbidden, as
                // graphql-transport-ws asks (async-graphql says 1002).
                code: if code == 1002 && started.get().is_none() {
                    4403
                } else {
                    code
                },
                reason: close_reason(&reason).into(),
            })),
        });
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let init = tokio::time::sleep(INIT_TIMEOUT);
    tokio::pin!(init);
    let close = |code: u16, reason: &str| {
        Message::Close(Some(CloseFrame {
            code,
            reason: close_reason(reason).into(),
        }))
    };
    loop {
        let message = tokio::select! {
            next = output.next() => match next {
                Some(message) => message,
                None => break,
            },
            () = &mut init, if !initialized.load(std::sync::atomic::Ordering::SeqCst) => {
                close(4408, "connection_init was not sent in time")
            }
            () = async { match held.as_mut() { Some(held) => held.stopping().await, None => std::future::pending().await } } => {
                close(1001, "the server is shutting down")
            }
            _ = ping.tick() => match checked.get() {
                // A database slow to answer does not hold the socket up.
                Some(started) => match tokio::time::timeout(CHECK_TIMEOUT, withdrawn(&watcher.0, &watcher.1, started)).await {
                    Ok(Some(reason)) => close(4403, &reason),
                    _ => Message::Ping(Vec::new().into()),
                },
                None => Message::Ping(Vec::new().into()),
            },
        };
        let closing = matches!(message, Message::Close(_));
        if sink.send(message).await.is_err() || closing {
            break;
        }
    }
}

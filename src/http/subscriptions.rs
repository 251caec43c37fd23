//! GraphQL over WebSocket: a GET of a workspace's GraphQL URL asking to
//! upgrade speaks `graphql-transport-ws` (the protocol of graphql-ws,
//! Apollo Client and urql; the older `graphql-ws` subprotocol too). The
//! API token comes in `connection_init`'s payload (`{ "authorization":
//! "Bearer …" }`, as browsers cannot set headers on a WebSocket) or the
//! upgrade request's `Authorization` header; the workspace is the URL's,
//! checked as for any request (a sandbox's grants). One token holds at
//! most `subscription_connections_per_token` connections on a server.

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
use crate::graphql::{self, Caller, WorkspaceSchema};

/// How often the server pings an idle connection (keeping proxies and
/// the idle timeout from closing it).
const PING_EVERY: Duration = Duration::from_secs(20);
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
    entry: Arc<WorkspaceSchema>,
    caller: Caller,
    _counted: Counted,
}

/// The executor of one connection: its requests run on the schema of the
/// workspace its session reached, as its caller.
#[derive(Clone)]
struct Connection {
    app: Arc<Shared>,
    session: Arc<OnceLock<Session>>,
}

impl Executor for Connection {
    async fn execute(&self, request: GraphqlRequest) -> GraphqlResponse {
        self.execute_stream(request, None)
            .next()
            .await
            .unwrap_or_else(|| GraphqlResponse::from_errors(Vec::new()))
    }

    fn execute_stream(&self, request: GraphqlRequest, _: Option<Arc<Data>>) -> BoxStream<'static, GraphqlResponse> {
        match self.session.get() {
            Some(session) => graphql::stream(&session.entry, &self.app.db, session.caller.clone(), request),
            None => {
                let error = async_graphql::ServerError::new("send connection_init with an API token first", None);
                futures_util::stream::once(async move { GraphqlResponse::from_errors(vec![error]) }).boxed()
            }
        }
    }
}

/// Upgrades a GET of a GraphQL URL to a GraphQL WebSocket.
pub(super) fn upgrade(
    app: Arc<Shared>,
    endpoint: Endpoint,
    upgrade: WebSocketUpgrade,
    headers: &axum::http::HeaderMap,
    held: Option<HeldOpen>,
) -> Result<Response, HttpError> {
    let protocol = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|value| value.to_str().ok())
        .and_then(|protocols| {
            protocols
                .split(',')
                .find_map(|p| WebSocketProtocols::from_str(p.trim()).ok())
        })
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
    Ok(upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            // The connection is busy as long as it is open.
            let _held = held;
            serve(app, endpoint, socket, protocol, authorization, base_url).await;
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

/// Authenticates a connection and reaches its workspace.
async fn start(
    app: &Arc<Shared>,
    endpoint: &Endpoint,
    authorization: Option<String>,
    base_url: Option<String>,
) -> Result<Session, CrmError> {
    let actor = app.auth.authenticate(authorization.as_deref()).await?;
    let token = actor.token_id.unwrap_or(actor.user_id);
    app.limits
        .check_token(token)
        .map_err(|_| CrmError::Conflict("this token is over its rate limit: try again shortly".into()))?;
    let cap = app.config.subscription_connections_per_token;
    let counted = Counted::take(token, cap).ok_or_else(|| {
        CrmError::Conflict(format!(
            "this token already has {cap} subscription connections open on this server: close one first"
        ))
    })?;
    let workspace = endpoint.reach(app, &actor).await?;
    let entry = app.schemas.get(&app.db, &workspace).await?;
    Ok(Session {
        entry,
        caller: Caller {
            actor,
            request_id: None,
            authenticator: Some(app.auth.clone()),
            schemas: Some(app.schemas.clone()),
            base_url,
        },
        _counted: counted,
    })
}

async fn serve(
    app: Arc<Shared>,
    endpoint: Endpoint,
    socket: WebSocket,
    protocol: WebSocketProtocols,
    header: Option<String>,
    base_url: Option<String>,
) {
    let session = Arc::new(OnceLock::new());
    let executor = Connection {
        app: app.clone(),
        session: session.clone(),
    };
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
            let authorization = token_of(&payload).or(header);
            match start(&app, &endpoint, authorization, base_url).await {
                Ok(started) => {
                    let _ = session.set(started);
                    Ok(Data::default())
                }
                Err(err) => Err(async_graphql::Error::new(err.to_string())),
            }
        })
        .map(|message| match message {
            WsMessage::Text(text) => Message::Text(text.into()),
            WsMessage::Close(code, reason) => Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })),
        });
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        let message = tokio::select! {
            next = output.next() => match next {
                Some(message) => message,
                None => break,
            },
            _ = ping.tick() => Message::Ping(Vec::new().into()),
        };
        let closing = matches!(message, Message::Close(_));
        if sink.send(message).await.is_err() || closing {
            break;
        }
    }
}

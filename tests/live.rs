//! GraphQL subscriptions over WebSocket (graphql-transport-ws, as
//! graphql-ws, Apollo Client and urql speak it): committed changes reach
//! the subscribers who may see them and whose filter they match; the
//! token comes in `connection_init`; a token holds a bounded number of
//! connections; a sandbox's endpoint sees only its sandbox.

use std::time::Duration;

use crm::config::Config;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::support::TestApp;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket to `path`, speaking graphql-transport-ws.
async fn open(app: &TestApp, path: &str) -> Socket {
    let mut request = format!("ws://{}{path}", app.addr).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "graphql-transport-ws");
    socket
}

/// The next protocol message, or `None` when nothing came within `wait`
/// (or the socket closed: then `{"closed": code}`).
async fn next(socket: &mut Socket, wait: Duration) -> Option<Value> {
    loop {
        let message = tokio::time::timeout(wait, socket.next()).await.ok()??;
        match message {
            Ok(Message::Text(text)) => return Some(serde_json::from_str(&text).unwrap()),
            Ok(Message::Close(frame)) => {
                return Some(json!({ "closed": frame.map(|f| u16::from(f.code)), }));
            }
            Ok(_) => {}
            Err(_) => return Some(json!({ "closed": null })),
        }
    }
}

/// Opens a connection as `token` and waits for its acknowledgement.
async fn connect(app: &TestApp, path: &str, token: &str) -> Socket {
    let mut socket = open(app, path).await;
    let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } });
    socket.send(Message::Text(init.to_string().into())).await.unwrap();
    let ack = next(&mut socket, Duration::from_secs(10)).await.unwrap();
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    socket
}

async fn subscribe(socket: &mut Socket, id: &str, query: &str) {
    let subscribe = json!({ "type": "subscribe", "id": id, "payload": { "query": query } });
    socket.send(Message::Text(subscribe.to_string().into())).await.unwrap();
}

/// Writes `probe` (a record the subscription sees) until the subscription
/// answers with it: it is then listening. Answers the first change.
async fn until_listening(socket: &mut Socket, mut probe: impl AsyncFnMut() -> ()) -> Value {
    for _ in 0..50 {
        probe().await;
        if let Some(message) = next(socket, Duration::from_millis(300)).await {
            return message;
        }
    }
    panic!("the subscription never answered");
}

/// The change a `next` message carries.
fn change(message: &Value) -> &Value {
    assert_eq!(message["type"], "next", "{message}");
    &message["payload"]["data"]["recordChanged"]
}

const LEADS: &str = "subscription { recordChanged(object: \"Lead\", filter: { status: { eq: \"NEW\" } }, \
                     events: [CREATED, UPDATED]) { event id changedFields previous record { ... on Lead { lastName \
                     status owner { email } } } } }";

#[tokio::test]
async fn committed_changes_reach_the_subscribers_who_may_see_them() {
    let app = TestApp::start().await;
    let mut socket = connect(&app, "/graphql", &app.token).await;
    subscribe(&mut socket, "1", LEADS).await;
    let first = until_listening(&mut socket, async || {
        app.create("Lead", json!({ "lastName": "Probe" })).await;
    })
    .await;
    assert_eq!(change(&first)["event"], "CREATED");
    assert_eq!(change(&first)["record"]["lastName"], "Probe");
    while next(&mut socket, Duration::from_millis(300)).await.is_some() {}

    // Only what the filter keeps, in commit order, with what changed.
    app.create("Lead", json!({ "lastName": "Working", "status": "WORKING" }))
        .await;
    let ann = app.create("Lead", json!({ "lastName": "Ann" })).await;
    let update = "mutation($id: ID!, $input: UpdateLeadInput!) { updateLead(id: $id, input: $input) { id } }";
    app.data(update, json!({ "id": ann, "input": { "lastName": "Anne" } }))
        .await;
    let created = next(&mut socket, Duration::from_secs(10)).await.unwrap();
    assert_eq!(change(&created)["record"]["lastName"], "Ann");
    assert_eq!(change(&created)["id"], ann.as_str());
    let updated = next(&mut socket, Duration::from_secs(10)).await.unwrap();
    assert_eq!(change(&updated)["event"], "UPDATED");
    assert_eq!(change(&updated)["changedFields"], json!(["lastName"]));
    assert_eq!(change(&updated)["previous"]["lastName"], "Ann");
    assert_eq!(
        change(&updated)["record"]["owner"]["email"],
        "admin@crm.local",
        "relations are read"
    );
    // A write that is rolled back sends nothing.
    let refused = app
        .error(update, json!({ "id": ann, "input": { "email": "not an address" } }))
        .await;
    assert_eq!(refused["extensions"]["code"], "BAD_USER_INPUT");
    assert!(next(&mut socket, Duration::from_millis(500)).await.is_none());

    // A bad filter is refused at subscribe, with its path.
    subscribe(
        &mut socket,
        "2",
        "subscription { recordChanged(object: \"Lead\", filter: { nope: { eq: 1 } }) { id } }",
    )
    .await;
    let refused = next(&mut socket, Duration::from_secs(10)).await.unwrap();
    assert_eq!(refused["id"], "2", "{refused}");
    let error = &refused["payload"]["errors"][0];
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{refused}");
    assert_eq!(error["extensions"]["field"], json!(["filter", "nope"]), "{refused}");
    assert_eq!(
        next(&mut socket, Duration::from_secs(10)).await.unwrap()["type"],
        "complete"
    );

    // Visibility is checked per event: a rep who sees only their own leads.
    app.data(
        "mutation { updateWorkspaceSettings(input: { recordVisibility: OWNED }) { recordVisibility } }",
        json!({}),
    )
    .await;
    let (rep, rep_token) = app.user("rep@example.com", "SALES").await;
    let mut rep_socket = connect(&app, "/graphql", &rep_token).await;
    subscribe(
        &mut rep_socket,
        "1",
        "subscription { recordChanged(object: \"Lead\") { id record { ... on Lead { lastName } } } }",
    )
    .await;
    let mine = until_listening(&mut rep_socket, async || {
        app.create("Lead", json!({ "lastName": "Theirs" })).await;
        app.create("Lead", json!({ "lastName": "Mine", "ownerId": rep })).await;
    })
    .await;
    assert_eq!(change(&mine)["record"]["lastName"], "Mine");
    while let Some(message) = next(&mut rep_socket, Duration::from_millis(300)).await {
        assert_eq!(change(&message)["record"]["lastName"], "Mine", "never another's lead");
    }

    // A revoked token's connection is closed within seconds.
    let tokens = app
        .data("query($u: ID) { apiTokens(userId: $u) { id } }", json!({ "u": rep }))
        .await;
    app.data(
        "mutation($id: ID!) { revokeApiToken(id: $id) { id } }",
        json!({ "id": tokens["apiTokens"][0]["id"] }),
    )
    .await;
    let closed = loop {
        match next(&mut rep_socket, Duration::from_secs(15)).await {
            Some(message) if message.get("closed").is_some() => break message,
            Some(_) => {}
            None => panic!("the revoked token's connection stayed open"),
        }
    };
    assert_eq!(closed["closed"], 4403);
}

#[tokio::test]
async fn connections_need_a_token_are_capped_per_token_and_a_sandbox_sees_only_itself() {
    let app = TestApp::start_with(Config {
        subscription_connections_per_token: 2,
        ..Config::default()
    })
    .await;
    // Without the subprotocol: refused before the upgrade.
    let plain = app
        .get(
            "/graphql",
            &[
                ("connection", "upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-version", "13"),
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ],
        )
        .await;
    assert_eq!(plain.status, 400, "{}", plain.text());
    // Over HTTP, a subscription is told where it runs.
    let over_http = app
        .graphql_at(
            "/graphql",
            None,
            "subscription { recordChanged(object: \"Lead\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(over_http.status, 400, "{}", over_http.text());
    assert!(over_http.text().contains("WebSocket"), "{}", over_http.text());
    // A bad token: the connection is closed (4403).
    let mut socket = open(&app, "/graphql").await;
    let init = json!({ "type": "connection_init", "payload": { "authorization": "Bearer nope" } });
    socket.send(Message::Text(init.to_string().into())).await.unwrap();
    let refused = next(&mut socket, Duration::from_secs(10)).await.unwrap();
    assert_eq!(refused["closed"], 4403, "{refused}");

    let first = connect(&app, "/graphql", &app.token).await;
    let _second = connect(&app, "/graphql", &app.token).await;
    let mut third = open(&app, "/graphql").await;
    let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {}", app.token) } });
    third.send(Message::Text(init.to_string().into())).await.unwrap();
    assert_eq!(next(&mut third, Duration::from_secs(10)).await.unwrap()["closed"], 4403);
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;

    app.data(
        "mutation { createSandbox(input: { name: \"live\", mode: METADATA_ONLY }) { name } }",
        json!({}),
    )
    .await;
    let mut sandbox = connect(&app, "/sandboxes/live/graphql", &app.token).await;
    subscribe(
        &mut sandbox,
        "1",
        "subscription { recordChanged(object: \"Account\", events: [CREATED]) { record { ... on Account { name } } } }",
    )
    .await;
    let create = "mutation($input: CreateAccountInput!) { createAccount(input: $input) { id } }";
    let seen = until_listening(&mut sandbox, async || {
        app.create("Account", json!({ "name": "Production" })).await;
        app.sandbox_data("live", create, json!({ "input": { "name": "Sandboxed" } }))
            .await;
    })
    .await;
    assert_eq!(change(&seen)["record"]["name"], "Sandboxed");
    while let Some(message) = next(&mut sandbox, Duration::from_millis(300)).await {
        assert_eq!(change(&message)["record"]["name"], "Sandboxed", "never production's");
    }
}

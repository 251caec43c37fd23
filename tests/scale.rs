//! Several stateless servers on one database: three `crm serve` processes,
//! each seeing what another changed within a second (announced with
//! `LISTEN/NOTIFY`), background work done once however many servers run
//! it, and promotions through two servers serialized.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::{json, Value};

use crate::support::{http_request, serve_process, HttpResponse, TestApp};
use crate::webhooks::{Receiver, DELIVERING};

/// A GraphQL request to the server at `addr`, with `token`.
async fn ask(addr: SocketAddr, token: &str, query: &str, variables: Value) -> HttpResponse {
    let authorization = format!("Bearer {token}");
    let body = json!({ "query": query, "variables": variables })
        .to_string()
        .into_bytes();
    let headers = [
        ("content-type", "application/json"),
        ("authorization", authorization.as_str()),
    ];
    http_request(addr, Method::POST, "/graphql", &headers, body).await
}

/// How long until `check` holds on the server at `addr` (polled every
/// 10 ms, for at most 10 s).
async fn until<F, Fut>(what: &str, check: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{what} never happened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What a server answers is data, not errors.
fn answered(response: &HttpResponse) -> bool {
    response.status == 200 && response.json().get("errors").is_none()
}

#[tokio::test]
async fn three_servers_on_one_database_see_each_others_changes_within_a_second() {
    let app = TestApp::start().await;
    let (rep, rep_token) = app.user("rep@example.com", "SALES").await;
    let (_, reader_token) = app.user("reader@example.com", "READ_ONLY").await;
    app.create("Account", json!({ "name": "Mine", "ownerId": rep })).await;
    app.create("Account", json!({ "name": "Theirs" })).await;
    let mut children = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..3 {
        let (child, addr) = serve_process(&app, &[]).await;
        children.push(child);
        servers.push(addr);
    }
    let (a, others) = (servers[0], &servers[1..]);
    // Every server has built its schema and remembers the tokens.
    for &addr in &servers {
        for token in [&app.token, &rep_token, &reader_token] {
            let warm = ask(addr, token, "{ accounts { totalCount } }", json!({})).await;
            assert!(answered(&warm), "{}", warm.text());
        }
    }
    let mut seen = Vec::new();

    // A custom field added through one server.
    let field = r#"mutation { createCustomField(input: { object: "Account", name: "region", label: "Region", type: TEXT }) { name } }"#;
    assert!(answered(&ask(a, &app.token, field, json!({})).await));
    for &addr in others {
        let admin = app.token.clone();
        let took = until("the new field on another server", || {
            let admin = admin.clone();
            async move { answered(&ask(addr, &admin, "{ accounts { nodes { region } } }", json!({})).await) }
        })
        .await;
        seen.push(("custom field", took));
    }

    // A token revoked through one server.
    let tokens = ask(a, &app.token, "{ apiTokens { id user { email } } }", json!({})).await;
    let reader = tokens.json()["data"]["apiTokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["user"]["email"] == "reader@example.com")
        .unwrap()["id"]
        .clone();
    let revoke = "mutation($id: ID!) { revokeApiToken(id: $id) { id } }";
    assert!(answered(&ask(a, &app.token, revoke, json!({ "id": reader })).await));
    for &addr in others {
        let reader = reader_token.clone();
        let took = until("the revoked token refused by another server", || {
            let reader = reader.clone();
            async move {
                ask(addr, &reader, "{ accounts { totalCount } }", json!({}))
                    .await
                    .status
                    == 401
            }
        })
        .await;
        seen.push(("token revoked", took));
    }

    // A setting changed through one server: reps now read their own.
    let rep_accounts = |addr: SocketAddr| {
        let token = rep_token.clone();
        async move {
            let seen = ask(addr, &token, "{ accounts { totalCount } }", json!({})).await;
            seen.json()["data"]["accounts"]["totalCount"].as_i64()
        }
    };
    assert_eq!(rep_accounts(others[0]).await, Some(2));
    let owned = "mutation { updateWorkspaceSettings(input: { recordVisibility: OWNED }) { recordVisibility } }";
    assert!(answered(&ask(a, &app.token, owned, json!({})).await));
    for &addr in others {
        let took = until("the setting on another server", || async move {
            rep_accounts(addr).await == Some(1)
        })
        .await;
        seen.push(("record visibility", took));
    }

    // A sandbox made through one server answers on the others at once.
    let made = r#"mutation { createSandbox(input: { name: "qa" }) { name } }"#;
    assert!(answered(&ask(a, &app.token, made, json!({})).await));
    for &addr in others {
        let authorization = format!("Bearer {}", app.token);
        let body = json!({ "query": "{ accounts { totalCount } }" })
            .to_string()
            .into_bytes();
        let headers = [
            ("content-type", "application/json"),
            ("authorization", authorization.as_str()),
        ];
        let sandbox = http_request(addr, Method::POST, "/sandboxes/qa/graphql", &headers, body).await;
        assert!(answered(&sandbox), "{}", sandbox.text());
    }

    println!("seen by the other servers after: {seen:?}");
    for (what, took) in &seen {
        assert!(
            *took < Duration::from_secs(1),
            "{what} took {took:?} to reach another server"
        );
    }
    for mut child in children {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

#[tokio::test]
async fn three_servers_deliver_each_webhook_once_and_serialize_promotions() {
    let receiver = Receiver::start().await;
    let app = TestApp::start().await;
    let subscribe =
        "mutation($input: CreateWebhookSubscriptionInput!) { createWebhookSubscription(input: $input) { id } }";
    app.data(
        subscribe,
        json!({ "input": { "name": "Every lead", "url": receiver.url, "object": "Lead", "events": ["CREATED"] } }),
    )
    .await;
    let mut children = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..3 {
        let (child, addr) = serve_process(&app, DELIVERING).await;
        children.push(child);
        servers.push(addr);
    }

    // Leads written through all three; each of the three delivery workers
    // claims what is due, so each event is posted once.
    let lead = "mutation($input: CreateLeadInput!) { createLead(input: $input) { id } }";
    for n in 0..60 {
        let addr = servers[n % 3];
        let made = ask(
            addr,
            &app.token,
            lead,
            json!({ "input": { "lastName": format!("Lead {n}") } }),
        )
        .await;
        assert!(answered(&made), "{}", made.text());
    }
    let accepted = receiver.until_accepted(60).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = receiver.received();
    let ids: HashSet<&str> = received.iter().map(|r| r.id()).collect();
    assert_eq!(
        (accepted.len(), received.len(), ids.len()),
        (60, 60, 60),
        "each posted once"
    );

    // Two sandboxes promoted at once through two servers: one applies,
    // the other finds production moved and is refused, whole.
    for (name, field) in [("left", "leftField"), ("right", "rightField")] {
        app.data(
            &format!(r#"mutation {{ createSandbox(input: {{ name: "{name}" }}) {{ name }} }}"#),
            json!({}),
        )
        .await;
        app.sandbox_data(
            name,
            &format!(
                r#"mutation {{ createCustomField(input: {{ object: "Account", name: "{field}", label: "{field}", type: TEXT }}) {{ name }} }}"#
            ),
            json!({}),
        )
        .await;
    }
    let version = app
        .scalar("SELECT metadata_version::bigint AS n FROM crm.workspace_settings")
        .await;
    let promote = |addr: SocketAddr, name: &'static str| {
        let token = app.token.clone();
        async move {
            let query = "mutation($name: String!, $v: Int!) { promoteSandbox(name: $name, dryRun: false, \
                         expectedProductionVersion: $v) { applied versionAfter } }";
            ask(addr, &token, query, json!({ "name": name, "v": version }))
                .await
                .json()
        }
    };
    let (left, right) = tokio::join!(promote(servers[1], "left"), promote(servers[2], "right"));
    let outcomes = [&left, &right];
    let applied = outcomes
        .iter()
        .filter(|o| o["data"]["promoteSandbox"]["applied"] == true)
        .count();
    let refused: Vec<&Value> = outcomes.iter().filter_map(|o| o["errors"].get(0)).collect();
    assert_eq!(applied, 1, "{left} {right}");
    assert_eq!(refused.len(), 1, "{left} {right}");
    assert_eq!(refused[0]["extensions"]["code"], "CONFLICT", "{refused:?}");
    let model = app
        .data(r#"{ object(name: "Account") { fields { name } } }"#, json!({}))
        .await;
    let fields = crate::support::texts(&model["object"]["fields"], &["name"])
        .into_iter()
        .filter(|name| name == "leftField" || name == "rightField")
        .count();
    assert_eq!(fields, 1, "one promotion applied, the other left nothing");
    for mut child in children {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

//! Kill -9 everywhere that writes: a sandbox copy, a sandbox refresh, a
//! custom field type change that rewrites its table, and a batch mutation,
//! each stopped midway (held on a table or row another connection locks,
//! then the process killed with SIGKILL), leave the database fully before.
//! (The promotion's own is in `promotion`.)

use std::process::Child;
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use hyper::Method;
use serde_json::{json, Value};

use crate::support::{crm_process, http_request, serve_process, TestApp};

/// A connection holding `lock` (SQL run inside an open transaction) until
/// it commits.
async fn holding(app: &TestApp, lock: &str) -> AsyncPgConnection {
    let mut conn = AsyncPgConnection::establish(&app.database_url).await.unwrap();
    conn.batch_execute(&format!("BEGIN; {lock}")).await.unwrap();
    conn
}

/// Waits until some backend waits for a lock on `table` in `schema`: the
/// process under test is stopped there, midway.
async fn until_waiting(app: &TestApp, schema: &str, table: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let query = format!(
        "SELECT count(*) AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
         WHERE c.relname = '{table}' AND c.relnamespace = '{schema}'::regnamespace AND NOT l.granted"
    );
    while app.scalar(&query).await == 0 {
        assert!(Instant::now() < deadline, "nothing ever waited for {schema}.{table}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Kills `child` with SIGKILL, lets `lock` go, and waits until Postgres has
/// rolled back what the killed process left open.
async fn kill(app: &TestApp, mut child: Child, lock: AsyncPgConnection) {
    child.kill().unwrap();
    child.wait().unwrap();
    let mut lock = lock;
    lock.batch_execute("COMMIT").await.unwrap();
    drop(lock);
    let deadline = Instant::now() + Duration::from_secs(30);
    while app
        .scalar(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid() AND state <> 'idle' AND backend_type = 'client backend'",
        )
        .await
        > 0
    {
        assert!(Instant::now() < deadline, "the killed process's session lingers");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn crm(app: &TestApp, args: &[&str]) -> Child {
    crm_process(app, args, &[])
}

/// Sends a GraphQL request to `addr` without waiting for the answer.
fn send(app: &TestApp, addr: std::net::SocketAddr, query: &str, variables: Value) {
    let authorization = format!("Bearer {}", app.token);
    let body = json!({ "query": query, "variables": variables })
        .to_string()
        .into_bytes();
    tokio::spawn(async move {
        let headers = [
            ("content-type", "application/json"),
            ("authorization", authorization.as_str()),
        ];
        // The server is killed before it answers.
        let _ = tokio::time::timeout(
            Duration::from_secs(60),
            http_request(addr, Method::POST, "/graphql", &headers, body),
        )
        .await;
    });
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    app.scalar(sql).await
}

#[tokio::test]
async fn a_sandbox_copy_killed_midway_leaves_no_sandbox() {
    let app = TestApp::start().await;
    let account = app.create("Account", json!({ "name": "Acme" })).await;
    app.create("Contact", json!({ "lastName": "Doe", "accountId": account }))
        .await;
    // Activities are copied after accounts and contacts: hold them.
    let lock = holding(&app, "LOCK TABLE crm.activity IN ACCESS EXCLUSIVE MODE").await;
    let child = crm(&app, &["sandbox", "create", "big", "--mode", "full"]);
    until_waiting(&app, "crm", "activity").await;
    kill(&app, child, lock).await;
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM crm_system.workspace WHERE name = 'big'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM pg_namespace WHERE nspname = 'sandbox_big'"
        )
        .await,
        0,
        "no half-made schema"
    );
    // Made again, it is whole.
    app.data(
        "mutation { createSandbox(input: { name: \"big\", mode: FULL }) { name } }",
        json!({}),
    )
    .await;
    assert_eq!(count(&app, "SELECT count(*) AS n FROM sandbox_big.contact").await, 1);
}

#[tokio::test]
async fn a_sandbox_refresh_killed_midway_leaves_the_sandbox_as_it_was() {
    let app = TestApp::start().await;
    app.create("Account", json!({ "name": "Acme" })).await;
    app.data(
        "mutation { createSandbox(input: { name: \"qa\", mode: FULL }) { name } }",
        json!({}),
    )
    .await;
    app.sandbox_data(
        "qa",
        r#"mutation { createCustomField(input: { object: "Account", name: "tier", label: "Tier", type: TEXT }) { name } }"#,
        json!({}),
    )
    .await;
    app.sandbox_data(
        "qa",
        r#"mutation { createAccount(input: { name: "Sandbox only", tier: "A" }) { id } }"#,
        json!({}),
    )
    .await;
    let lock = holding(&app, "LOCK TABLE crm.activity IN ACCESS EXCLUSIVE MODE").await;
    let child = crm(&app, &["sandbox", "refresh", "qa"]);
    until_waiting(&app, "crm", "activity").await;
    kill(&app, child, lock).await;
    let accounts = app
        .sandbox_data(
            "qa",
            "{ accounts(orderBy: [{ field: NAME }]) { nodes { name tier } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        accounts["accounts"]["nodes"],
        json!([{ "name": "Acme", "tier": null }, { "name": "Sandbox only", "tier": "A" }]),
        "the sandbox keeps its changes and records"
    );
}

#[tokio::test]
async fn a_type_change_rewriting_its_table_killed_midway_leaves_the_field_as_it_was() {
    let app = TestApp::start().await;
    app.data(
        r#"mutation { createCustomField(input: { object: "Account", name: "score", label: "Score", type: TEXT }) { name } }"#,
        json!({}),
    )
    .await;
    for score in ["1", "2", "3"] {
        app.create("Account", json!({ "name": format!("Acme {score}"), "score": score }))
            .await;
    }
    let version = count(&app, "SELECT metadata_version::bigint AS n FROM crm.workspace_settings").await;
    let (child, addr) = serve_process(&app, &[]).await;
    // A write in flight holds the accounts: the ALTER TABLE waits for it.
    let lock = holding(&app, "LOCK TABLE crm.account IN ROW EXCLUSIVE MODE").await;
    send(
        &app,
        addr,
        r#"mutation { changeCustomFieldType(object: "Account", name: "score", newType: INTEGER) { name } }"#,
        json!({}),
    );
    until_waiting(&app, "crm", "account").await;
    kill(&app, child, lock).await;
    let field = app
        .data("{ object(name: \"Account\") { fields { name type } } }", json!({}))
        .await;
    let score = field["object"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "score")
        .cloned();
    assert_eq!(score, Some(json!({ "name": "score", "type": "TEXT" })));
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM information_schema.columns WHERE table_schema = 'crm' \
             AND table_name = 'account' AND column_name LIKE '%score%' AND data_type = 'text'"
        )
        .await,
        1,
        "the column keeps its type"
    );
    assert_eq!(
        count(&app, "SELECT metadata_version::bigint AS n FROM crm.workspace_settings").await,
        version
    );
    let scores = app
        .data(
            "{ accounts(orderBy: [{ field: NAME }]) { nodes { score } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        scores["accounts"]["nodes"],
        json!([{ "score": "1" }, { "score": "2" }, { "score": "3" }])
    );
}

#[tokio::test]
async fn a_batch_killed_midway_changes_none_of_its_records() {
    let app = TestApp::start().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(app.create("Account", json!({ "name": format!("Acme {n}") })).await);
    }
    let (child, addr) = serve_process(&app, &[]).await;
    // The last record of the batch is locked by another writer: the batch
    // has changed the first four when it waits for it.
    let lock = holding(
        &app,
        &format!("SELECT 1 FROM crm.account WHERE id = '{}' FOR UPDATE", ids[4]),
    )
    .await;
    let inputs: Vec<Value> = ids
        .iter()
        .map(|id| json!({ "id": id, "input": { "name": "Renamed" } }))
        .collect();
    send(
        &app,
        addr,
        "mutation($inputs: [AccountUpdate!]!) { updateAccounts(inputs: $inputs) { id } }",
        json!({ "inputs": inputs }),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(
        &app,
        "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted",
    )
    .await
        == 0
    {
        assert!(Instant::now() < deadline, "the batch never reached the locked record");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    kill(&app, child, lock).await;
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM crm.account WHERE name = 'Renamed'").await,
        0,
        "none of the batch's changes stayed"
    );
}

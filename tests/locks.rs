//! Customizing never blocks production: a diff or dry run takes no lock a
//! write waits for, and a custom field change waits for a busy table only
//! briefly (then steps aside and tries again), so production's writes do
//! not queue behind it.

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use hyper::Method;
use serde_json::{json, Value};

use crate::support::TestApp;

/// A connection in the middle of a write to `table`: it holds what an
/// `UPDATE` holds (`ROW EXCLUSIVE`) until dropped.
async fn writer_holding(app: &TestApp, table: &str) -> AsyncPgConnection {
    let mut conn = AsyncPgConnection::establish(&app.database_url).await.unwrap();
    conn.batch_execute(&format!("BEGIN; LOCK TABLE crm.{table} IN ROW EXCLUSIVE MODE"))
        .await
        .unwrap();
    conn
}

#[tokio::test]
async fn a_diff_and_a_dry_run_take_no_lock_a_production_write_waits_for() {
    let app = TestApp::start().await;
    for n in 0..3 {
        app.create("Contact", json!({ "lastName": format!("Doe {n}") })).await;
    }
    app.data(
        "mutation($name: String!) { createSandbox(input: { name: $name }) { name } }",
        json!({ "name": "qa" }),
    )
    .await;
    app.sandbox_data(
        "qa",
        r#"mutation {
            badge: createCustomField(input: { object: "Contact", name: "badge", label: "Badge", type: TEXT,
                unique: true, indexed: true }) { name }
            tier: createCustomField(input: { object: "Contact", name: "tier", label: "Tier", type: TEXT,
                required: true, defaultValue: "C" }) { name }
        }"#,
        json!({}),
    )
    .await;
    // A write in flight on the contacts the whole time.
    let writer = writer_holding(&app, "contact").await;
    let diff = app
        .data(
            "{ sandboxDiff(name: \"qa\") { canApply changes { target status dataImpact { message } } } }",
            json!({}),
        )
        .await;
    let statuses: Vec<(Value, Value)> = diff["sandboxDiff"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["target"].clone(), c["status"].clone()))
        .collect();
    assert_eq!(
        statuses,
        [
            (json!("Contact.badge"), json!("READY")),
            (json!("Contact.tier"), json!("READY")),
        ],
        "{diff:#}"
    );
    let version = app
        .scalar("SELECT metadata_version::bigint AS n FROM crm.workspace_settings")
        .await;
    let dry = app
        .data(
            "mutation($v: Int!) { promoteSandbox(name: \"qa\", dryRun: true, expectedProductionVersion: $v) { canApply blockers } }",
            json!({ "v": version }),
        )
        .await;
    assert_eq!(dry["promoteSandbox"]["canApply"], true, "{dry:#}");
    drop(writer);
    // Nothing of the rehearsal stayed behind.
    let columns = app
        .scalar(
            "SELECT count(*) AS n FROM information_schema.columns WHERE table_schema = 'crm' \
             AND table_name = 'contact' AND column_name IN ('badge', 'tier')",
        )
        .await;
    assert_eq!(columns, 0);
}

#[tokio::test]
async fn a_custom_field_change_steps_aside_for_a_busy_table_and_production_writes_go_on() {
    let config = crm::Config {
        metadata_lock_timeout: Duration::from_millis(300),
        ..crm::Config::default()
    };
    let app = TestApp::start_with(config).await;
    app.create("Account", json!({ "name": "Acme" })).await;
    let writer = writer_holding(&app, "account").await;
    // The change needs a lock the writer's transaction holds: it waits.
    let change = {
        let (addr, authorization) = (app.addr, format!("Bearer {}", app.token));
        tokio::spawn(async move {
            let body = json!({ "query": r#"mutation { createCustomField(input: { object: "Account", name: "badge",
                label: "Badge", type: TEXT, unique: true }) { name } }"# });
            let headers = [
                ("content-type", "application/json"),
                ("authorization", authorization.as_str()),
            ];
            crate::support::http_request(addr, Method::POST, "/graphql", &headers, body.to_string().into_bytes())
                .await
                .json()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A production write behind the waiting change is not stuck behind it
    // until the writer finishes: the change steps aside after 300 ms.
    let write = tokio::time::timeout(
        Duration::from_secs(20),
        app.create("Account", json!({ "name": "Globex" })),
    )
    .await;
    assert!(write.is_ok(), "a production write waited behind the metadata change");
    // Released within the change's retries, the change goes through.
    drop(writer);
    let answer = change.await.unwrap();
    assert_eq!(answer["data"]["createCustomField"]["name"], "badge", "{answer:#}");

    // Held past every retry, it is refused as busy, and nothing changed.
    let writer = writer_holding(&app, "account").await;
    let refused = app
        .graphql(
            r#"mutation { createCustomField(input: { object: "Account", name: "other", label: "Other", type: TEXT,
                unique: true }) { name } }"#,
            json!({}),
        )
        .await;
    drop(writer);
    assert_eq!(refused["errors"][0]["extensions"]["code"], "CONFLICT", "{refused:#}");
    assert!(
        refused["errors"][0]["message"].as_str().unwrap().contains("busy"),
        "{refused:#}"
    );
    let fields = app
        .scalar("SELECT count(*) AS n FROM crm.custom_field WHERE name = 'other'")
        .await;
    assert_eq!(fields, 0);
}

/// The niceness of the thread that calls it, from `/proc/thread-self/stat`.
fn own_niceness() -> i64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // After the command name in parentheses: state is field 3, nice field 19.
    let rest = stat.rsplit_once(')').unwrap().1;
    rest.split_whitespace().nth(16).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_diffs_cpu_work_runs_at_a_lower_priority_than_requests() {
    let request_thread = own_niceness();
    let (niceness, thread) =
        crm::yielding::compute(|| (own_niceness(), std::thread::current().name().map(str::to_owned))).await;
    assert_eq!(niceness, (request_thread + 10).min(19), "{thread:?}");
    assert!(thread.is_some_and(|name| name.starts_with("crm-yielding-")));
    // A panic in the work reaches the caller, and the threads go on.
    let panicked = tokio::spawn(crm::yielding::compute(|| -> () { panic!("in the work") })).await;
    assert!(panicked.unwrap_err().is_panic());
    assert_eq!(crm::yielding::compute(|| 6 * 7).await, 42);
}

//! Retention: soft-deleted records and audit log entries older than a
//! workspace's settings are removed for good by the retention job, each
//! workspace by its own settings, by one server at a time; the settings
//! travel with sandboxes, promotions and reverts.

use std::process::Command;

use crm::retention::{self, Outcome, Purged};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use serde_json::{json, Value};

use crate::support::TestApp;

const SETTINGS: &str = "workspaceSettings { recordVisibility deletedRecordRetentionDays auditRetentionDays }";

async fn update_settings(app: &TestApp, path: &str, input: Value) -> Value {
    let query = "mutation($input: UpdateWorkspaceSettingsInput!) { \
                 updateWorkspaceSettings(input: $input) { recordVisibility deletedRecordRetentionDays auditRetentionDays } }";
    let response = app
        .graphql_at(path, None, query, json!({ "input": input }))
        .await
        .json();
    assert!(response.get("errors").is_none(), "{response:#}");
    response["data"]["updateWorkspaceSettings"].clone()
}

async fn delete(app: &TestApp, path: &str, object: &str, id: &str) {
    let query = format!("mutation($id: ID!) {{ delete{object}(id: $id) {{ id }} }}");
    let response = app.graphql_at(path, None, &query, json!({ "id": id })).await.json();
    assert!(response.get("errors").is_none(), "{response:#}");
}

async fn count(app: &TestApp, table: &str, id: &str) -> i64 {
    app.scalar(&format!("SELECT count(*) AS n FROM {table} WHERE id = '{id}'"))
        .await
}

async fn purge_entries(app: &TestApp, workspace: &str) -> i64 {
    app.scalar(&format!(
        "SELECT count(*) AS n FROM crm_system.audit_log \
         WHERE action = 'PURGE' AND object = 'Retention' AND workspace = '{workspace}'"
    ))
    .await
}

async fn run(app: &TestApp, only: Option<&str>) -> Vec<Purged> {
    match retention::run(&app.app.db, only).await.unwrap() {
        Outcome::Ran(purged) => purged,
        Outcome::Busy => panic!("nobody else runs retention here"),
    }
}

/// SQL that may fail, on its own connection.
async fn try_sql(app: &TestApp, sql: &str) -> Result<(), String> {
    let mut conn = AsyncPgConnection::establish(&app.database_url).await.unwrap();
    conn.batch_execute(sql).await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn old_deleted_records_go_recent_and_referenced_ones_stay() {
    let app = TestApp::start().await;
    let settings = app.data(&format!("{{ {SETTINGS} }}"), json!({})).await;
    assert_eq!(
        settings["workspaceSettings"],
        json!({ "recordVisibility": "ALL", "deletedRecordRetentionDays": 90, "auditRetentionDays": 0 })
    );
    let referenced = app.create("Account", json!({ "name": "Referenced" })).await;
    let old = app.create("Account", json!({ "name": "Old" })).await;
    let recent = app.create("Account", json!({ "name": "Recent" })).await;
    let live = app.create("Account", json!({ "name": "Live" })).await;
    let live_contact = app
        .create("Contact", json!({ "lastName": "Live", "accountId": referenced }))
        .await;
    let old_contact = app
        .create("Contact", json!({ "lastName": "Old", "accountId": old }))
        .await;
    for (object, id) in [("Contact", &old_contact), ("Account", &old), ("Account", &recent)] {
        delete(&app, "/graphql", object, id).await;
    }
    app.sql(&format!(
        "UPDATE crm.account SET deleted_at = now() - interval '100 days' WHERE id IN ('{referenced}', '{old}'); \
         UPDATE crm.account SET deleted_at = now() - interval '10 days' WHERE id = '{recent}'; \
         UPDATE crm.contact SET deleted_at = now() - interval '91 days' WHERE id = '{old_contact}'"
    ))
    .await;

    let purged = run(&app, None).await;
    assert_eq!(purged[0].workspace, "production");
    assert_eq!(
        purged[0].records,
        vec![("Contact".to_owned(), 1), ("Account".to_owned(), 1)],
        "the child before its parent"
    );
    assert_eq!(count(&app, "crm.account", &old).await, 0, "old and deleted: gone");
    assert_eq!(count(&app, "crm.contact", &old_contact).await, 0);
    assert_eq!(
        count(&app, "crm.account", &referenced).await,
        1,
        "a live contact still refers to it: skipped"
    );
    assert_eq!(
        count(&app, "crm.account", &recent).await,
        1,
        "deleted 10 days ago: kept"
    );
    assert_eq!(count(&app, "crm.account", &live).await, 1);
    assert_eq!(count(&app, "crm.contact", &live_contact).await, 1);
    assert_eq!(purge_entries(&app, "production").await, 1, "one PURGE entry per run");
    let changes = app
        .scalar(
            "SELECT (changes @> '[{\"field\": \"Account\", \"after\": 1}, {\"field\": \"Contact\", \"after\": 1}]')::int::bigint AS n \
             FROM crm_system.audit_log WHERE action = 'PURGE'",
        )
        .await;
    assert_eq!(changes, 1, "the entry counts what went per object");
    assert!(app.metric("crm_retention_purged_rows_total").await >= 2);

    let again = run(&app, None).await;
    assert!(again.iter().all(Purged::is_empty), "{again:?}");
    assert_eq!(
        purge_entries(&app, "production").await,
        1,
        "a run removing nothing writes nothing"
    );

    // 0 keeps deleted records forever.
    update_settings(&app, "/graphql", json!({ "deletedRecordRetentionDays": 0 })).await;
    app.sql(&format!(
        "UPDATE crm.account SET deleted_at = now() - interval '3000 days' WHERE id = '{recent}'"
    ))
    .await;
    assert!(run(&app, None).await.iter().all(Purged::is_empty));
    assert_eq!(count(&app, "crm.account", &recent).await, 1);

    // Back to 30 days, through the command line.
    update_settings(&app, "/graphql", json!({ "deletedRecordRetentionDays": 30 })).await;
    let output = Command::new(env!("CARGO_BIN_EXE_crm"))
        .args(["retention", "run", "--workspace", "production"])
        .env("DATABASE_URL", &app.database_url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(stdout.trim(), "production: removed 1 Account", "{stdout}");
    assert_eq!(count(&app, "crm.account", &recent).await, 0);
    let unknown = retention::run(&app.app.db, Some("nowhere")).await;
    assert!(unknown.is_err(), "an unknown workspace is refused");
}

#[tokio::test]
async fn retention_settings_are_checked() {
    let app = TestApp::start().await;
    let query = "mutation($input: UpdateWorkspaceSettingsInput!) { updateWorkspaceSettings(input: $input) { auditRetentionDays } }";
    for (input, field) in [
        (
            json!({ "deletedRecordRetentionDays": 3651 }),
            "deletedRecordRetentionDays",
        ),
        (json!({ "auditRetentionDays": -1 }), "auditRetentionDays"),
    ] {
        let error = app.error(query, json!({ "input": input })).await;
        assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{error:#}");
        assert_eq!(error["extensions"]["field"], json!(["input", field]), "{error:#}");
    }
    let set = update_settings(&app, "/graphql", json!({ "auditRetentionDays": 3650 })).await;
    assert_eq!(set["auditRetentionDays"], 3650);
    assert_eq!(set["deletedRecordRetentionDays"], 90, "left out: unchanged");
    let audited = app
        .scalar(
            "SELECT count(*) AS n FROM crm_system.audit_log WHERE object = 'WorkspaceSettings' \
             AND changes = '[{\"field\": \"auditRetentionDays\", \"before\": 0, \"after\": 3650}]'",
        )
        .await;
    assert_eq!(audited, 1, "the change is audited, only what changed");
}

#[tokio::test]
async fn each_sandbox_is_purged_by_its_own_setting_in_its_own_schema() {
    let app = TestApp::start().await;
    app.data(
        "mutation { createSandbox(input: { name: \"qa\" }) { name } }",
        json!({}),
    )
    .await;
    let sandbox = "/sandboxes/qa/graphql";
    let in_sandbox = app
        .sandbox_data(
            "qa",
            "mutation { createAccount(input: { name: \"Sandboxed\" }) { id } }",
            json!({}),
        )
        .await["createAccount"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let in_production = app.create("Account", json!({ "name": "Produced" })).await;
    delete(&app, sandbox, "Account", &in_sandbox).await;
    delete(&app, "/graphql", "Account", &in_production).await;
    app.sql(&format!(
        "UPDATE sandbox_qa.account SET deleted_at = now() - interval '40 days' WHERE id = '{in_sandbox}'; \
         UPDATE crm.account SET deleted_at = now() - interval '40 days' WHERE id = '{in_production}'"
    ))
    .await;
    // Production keeps 90 days, the sandbox 30.
    update_settings(&app, sandbox, json!({ "deletedRecordRetentionDays": 30 })).await;

    let purged = run(&app, Some("production")).await;
    assert_eq!(purged.len(), 1);
    assert!(purged[0].is_empty());
    assert_eq!(
        count(&app, "sandbox_qa.account", &in_sandbox).await,
        1,
        "production's run leaves the sandbox alone"
    );

    let purged = run(&app, None).await;
    let names: Vec<&str> = purged.iter().map(|p| p.workspace.as_str()).collect();
    assert_eq!(names, ["production", "qa"]);
    assert_eq!(purged[1].records, vec![("Account".to_owned(), 1)]);
    assert_eq!(
        count(&app, "sandbox_qa.account", &in_sandbox).await,
        0,
        "purged by its own 30 days"
    );
    assert_eq!(
        count(&app, "crm.account", &in_production).await,
        1,
        "production keeps 90 days"
    );
    assert_eq!(purge_entries(&app, "qa").await, 1);
    assert_eq!(purge_entries(&app, "production").await, 0);
}

#[tokio::test]
async fn audit_retention_deletes_old_entries_of_its_workspace_only() {
    let app = TestApp::start().await;
    app.sql(
        "INSERT INTO crm_system.audit_log (at, via, workspace, object, action) VALUES \
         (now() - interval '40 days', 'CLI', 'production', 'Old', 'CREATE'), \
         (now() - interval '10 days', 'CLI', 'production', 'Recent', 'CREATE'), \
         (now() - interval '40 days', 'CLI', 'elsewhere', 'Old', 'CREATE')",
    )
    .await;
    let purged = run(&app, None).await;
    assert!(
        purged.iter().all(Purged::is_empty),
        "kept forever by default: {purged:?}"
    );

    update_settings(&app, "/graphql", json!({ "auditRetentionDays": 30 })).await;
    let purged = run(&app, None).await;
    assert_eq!(purged[0].audit_entries, 1, "{purged:?}");
    let left = |object: &'static str, workspace: &'static str| {
        let app = &app;
        async move {
            app.scalar(&format!(
                "SELECT count(*) AS n FROM crm_system.audit_log WHERE object = '{object}' AND workspace = '{workspace}'"
            ))
            .await
        }
    };
    assert_eq!(left("Old", "production").await, 0);
    assert_eq!(left("Recent", "production").await, 1);
    assert_eq!(left("Old", "elsewhere").await, 1, "another workspace's entries stay");
    assert_eq!(purge_entries(&app, "production").await, 1);

    // Nobody else deletes or changes entries: the log stays append-only.
    for sql in [
        "DELETE FROM crm_system.audit_log",
        "UPDATE crm_system.audit_log SET object = 'Changed'",
        "BEGIN; SET LOCAL crm.audit_retention = 'on'; UPDATE crm_system.audit_log SET object = 'Changed'; COMMIT",
        "BEGIN; SET LOCAL crm.audit_retention = 'on'; TRUNCATE crm_system.audit_log; COMMIT",
    ] {
        let refused = try_sql(&app, sql).await.unwrap_err();
        assert!(refused.contains("append-only"), "{sql}: {refused}");
    }
    assert_eq!(left("Recent", "production").await, 1);
}

#[tokio::test]
async fn one_server_at_a_time_runs_retention() {
    let app = TestApp::start().await;
    let second = app.second_server().await;
    let old = app.create("Account", json!({ "name": "Old" })).await;
    delete(&app, "/graphql", "Account", &old).await;
    app.sql(&format!(
        "UPDATE crm.account SET deleted_at = now() - interval '100 days' WHERE id = '{old}'"
    ))
    .await;

    // Another server holds the lock: this round is skipped.
    let mut holder = AsyncPgConnection::establish(&app.database_url).await.unwrap();
    diesel::sql_query(format!("SELECT pg_advisory_lock({})", retention::LOCK_KEY))
        .execute(&mut holder)
        .await
        .unwrap();
    assert_eq!(retention::run(&app.app.db, None).await.unwrap(), Outcome::Busy);
    assert_eq!(count(&app, "crm.account", &old).await, 1);
    drop(holder);

    let (first, other) = tokio::join!(retention::run(&app.app.db, None), retention::run(&second.app.db, None));
    let purging = [first.unwrap(), other.unwrap()]
        .into_iter()
        .filter(|outcome| matches!(outcome, Outcome::Ran(p) if p.iter().any(|p| !p.is_empty())))
        .count();
    assert_eq!(purging, 1, "one of the two purged");
    assert_eq!(count(&app, "crm.account", &old).await, 0);
    assert_eq!(purge_entries(&app, "production").await, 1);
}

#[tokio::test]
async fn retention_settings_are_diffed_promoted_and_reverted() {
    let app = TestApp::start().await;
    app.data(
        "mutation { createSandbox(input: { name: \"qa\" }) { name } }",
        json!({}),
    )
    .await;
    let diff = "{ sandboxDiff(name: \"qa\") { changes { kind target before after apiImpact clientImpacts { level path message } } } }";
    // A base stored before the retention settings existed reads as their defaults.
    app.sql(
        "UPDATE crm_system.workspace SET base = base - 'deletedRecordRetentionDays' - 'auditRetentionDays' \
         WHERE name = 'qa'",
    )
    .await;
    let nothing = app.data(diff, json!({})).await;
    assert_eq!(nothing["sandboxDiff"]["changes"], json!([]), "{nothing:#}");

    update_settings(
        &app,
        "/sandboxes/qa/graphql",
        json!({ "deletedRecordRetentionDays": 30, "auditRetentionDays": 365 }),
    )
    .await;
    let report = app.data(diff, json!({})).await;
    let changes = report["sandboxDiff"]["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{report:#}");
    assert_eq!(changes[0]["target"], "workspace settings");
    assert_eq!(changes[0]["before"]["deletedRecordRetentionDays"], 90);
    assert_eq!(changes[0]["after"]["deletedRecordRetentionDays"], 30);
    let impact = &changes[0]["clientImpacts"];
    assert!(
        impact.as_array().unwrap().iter().any(|c| c["level"] == "DANGEROUS"
            && c["path"] == "deletedRecordRetentionDays"
            && c["message"].as_str().unwrap().contains("unrecoverable sooner")),
        "{impact:#}"
    );

    let version = app
        .scalar("SELECT metadata_version::bigint AS n FROM crm.workspace_settings")
        .await;
    let promoted = app
        .data(
            "mutation($v: Int!) { promoteSandbox(name: \"qa\", dryRun: false, expectedProductionVersion: $v) { applied promotion { id } } }",
            json!({ "v": version }),
        )
        .await;
    assert_eq!(promoted["promoteSandbox"]["applied"], true, "{promoted:#}");
    let settings = app.data(&format!("{{ {SETTINGS} }}"), json!({})).await;
    assert_eq!(settings["workspaceSettings"]["deletedRecordRetentionDays"], 30);
    assert_eq!(settings["workspaceSettings"]["auditRetentionDays"], 365);
    let after = app.data(diff, json!({})).await;
    assert_eq!(after["sandboxDiff"]["changes"], json!([]), "rebased: {after:#}");

    let id = promoted["promoteSandbox"]["promotion"]["id"].as_str().unwrap();
    let reverted = app
        .data(
            "mutation($id: ID!) { revertPromotion(id: $id, dryRun: false) { applied } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(reverted["revertPromotion"]["applied"], true, "{reverted:#}");
    let settings = app.data(&format!("{{ {SETTINGS} }}"), json!({})).await;
    assert_eq!(
        settings["workspaceSettings"],
        json!({ "recordVisibility": "ALL", "deletedRecordRetentionDays": 90, "auditRetentionDays": 0 })
    );
}

#[tokio::test]
async fn the_background_job_runs_on_its_own() {
    let app = TestApp::start().await;
    let old = app.create("Account", json!({ "name": "Old" })).await;
    delete(&app, "/graphql", "Account", &old).await;
    app.sql(&format!(
        "UPDATE crm.account SET deleted_at = now() - interval '100 days' WHERE id = '{old}'"
    ))
    .await;
    // What `crm serve` starts, with --retention-interval-s 0: nothing.
    retention::spawn(app.app.db.clone(), std::time::Duration::ZERO);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(count(&app, "crm.account", &old).await, 1, "turned off");
    retention::spawn(app.app.db.clone(), std::time::Duration::from_millis(100));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while count(&app, "crm.account", &old).await == 1 {
        assert!(std::time::Instant::now() < deadline, "the job never ran");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(purge_entries(&app, "production").await, 1);
}

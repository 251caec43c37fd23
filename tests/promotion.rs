//! Promotion: a sandbox's customizations compared three ways, checked
//! against production's data, applied all at once or not at all, and
//! reverted.

use serde_json::{json, Value};

use crate::support::TestApp;

const REPORT: &str = "source workspace dryRun applied baseVersion versionBefore versionAfter conflicts failures \
    breaking blockers canApply rebased apiImpact promotion { id status kind } \
    sdlChanges { level path message } \
    targetChanges { kind action target summary } \
    changes { key kind action target summary status conflict apiImpact before after \
        properties { name before after target } sdlChanges { level path message } \
        dataImpact { message path count sampleIds } }";

async fn diff(app: &TestApp, name: &str) -> Value {
    let query = format!("query($name: String!) {{ sandboxDiff(name: $name) {{ {REPORT} }} }}");
    app.data(&query, json!({ "name": name })).await["sandboxDiff"].clone()
}

fn promote_query() -> String {
    format!(
        "mutation($name: String!, $dryRun: Boolean!, $version: Int!, $allow: Boolean, $resolutions: [ConflictResolution!]) {{ \
         promoteSandbox(name: $name, dryRun: $dryRun, expectedProductionVersion: $version, allowBreaking: $allow, \
         resolutions: $resolutions) {{ {REPORT} }} }}"
    )
}

async fn promote(app: &TestApp, name: &str, dry_run: bool, allow: bool) -> Value {
    let version = production_version(app).await;
    app.data(
        &promote_query(),
        json!({ "name": name, "dryRun": dry_run, "version": version, "allow": allow }),
    )
    .await["promoteSandbox"]
        .clone()
}

async fn promote_error(app: &TestApp, name: &str, version: i64, allow: bool) -> Value {
    app.error(
        &promote_query(),
        json!({ "name": name, "dryRun": false, "version": version, "allow": allow }),
    )
    .await
}

async fn production_version(app: &TestApp) -> i64 {
    app.scalar("SELECT metadata_version::bigint AS n FROM crm.workspace_settings")
        .await
}

async fn make_sandbox(app: &TestApp, name: &str) {
    app.data(
        "mutation($name: String!) { createSandbox(input: { name: $name }) { name } }",
        json!({ "name": name }),
    )
    .await;
}

fn change<'a>(report: &'a Value, target: &str) -> &'a Value {
    report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["target"] == target)
        .unwrap_or_else(|| panic!("no change of {target} in {report:#}"))
}

/// Everything production's metadata consists of, as one comparable text:
/// the introspected API and the custom tables' columns.
async fn production_state(app: &TestApp) -> (Value, i64, i64) {
    let api = app
        .graphql(
            "{ __schema { types { name fields { name type { name } } inputFields { name } enumValues { name } } } }",
            json!({}),
        )
        .await;
    let columns = app
        .scalar("SELECT count(*) AS n FROM information_schema.columns WHERE table_schema = 'crm'")
        .await;
    let rows = app
        .scalar("SELECT (SELECT count(*) FROM crm.account) + (SELECT count(*) FROM crm.stage) AS n")
        .await;
    (api, columns, rows)
}

#[tokio::test]
async fn a_sandbox_is_diffed_dry_run_promoted_and_reverted() {
    let app = TestApp::start().await;
    app.data(
        r#"mutation {
            region: createCustomField(input: { object: "Account", name: "region", label: "Region", type: TEXT }) { name }
            legacy: createCustomField(input: { object: "Account", name: "legacyCode", label: "Legacy code", type: TEXT }) { name }
        }"#,
        json!({}),
    )
    .await;
    let acme = app
        .create(
            "Account",
            json!({ "name": "Acme", "region": "EMEA", "legacyCode": "L-1" }),
        )
        .await;
    make_sandbox(&app, "qa").await;
    let pipeline = app.data("{ pipelines { nodes { id name } } }", json!({})).await["pipelines"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.sandbox_data(
        "qa",
        r#"mutation($pipeline: ID!) {
            tier: createCustomField(input: { object: "Account", name: "tier", label: "Tier", type: PICKLIST,
                options: [{ value: "GOLD" }, { value: "SILVER" }] }) { name }
            region: updateCustomField(object: "Account", name: "region", input: { label: "Sales region" }) { name }
            legacy: deleteCustomField(object: "Account", name: "legacyCode") { name }
            stage: createStage(input: { pipelineId: $pipeline, name: "Discovery", position: 10, probability: 15,
                forecastCategory: PIPELINE }) { id }
        }"#,
        json!({ "pipeline": pipeline }),
    )
    .await;
    let before = production_state(&app).await;
    let version = production_version(&app).await;

    // The diff: every change, its API impact, nothing conflicting.
    let report = diff(&app, "qa").await;
    assert_eq!(report["changes"].as_array().unwrap().len(), 4, "{report:#}");
    let tier = change(&report, "Account.tier");
    assert_eq!(tier["action"], "ADD");
    assert_eq!(tier["kind"], "FIELD");
    assert_eq!(tier["status"], "READY");
    assert_eq!(tier["apiImpact"], "SAFE");
    let paths: Vec<&str> = tier["sdlChanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&"Account.tier") && paths.contains(&"AccountTier"),
        "{paths:?}"
    );
    let legacy = change(&report, "Account.legacyCode");
    assert_eq!(legacy["action"], "DELETE");
    assert_eq!(legacy["apiImpact"], "BREAKING");
    let region = change(&report, "Account.region");
    assert_eq!(region["action"], "CHANGE");
    assert_eq!(
        region["properties"],
        json!([{ "name": "label", "before": "Region", "after": "Sales region", "target": "Region" }])
    );
    let stage = change(&report, "Sales / Discovery");
    assert_eq!(
        (stage["kind"].as_str(), stage["action"].as_str()),
        (Some("STAGE"), Some("ADD"))
    );
    assert_eq!(report["apiImpact"], "BREAKING");
    assert_eq!(report["canApply"], false, "a breaking change needs allowBreaking");
    assert_eq!(report["applied"], false);
    assert_eq!(production_state(&app).await, before, "a diff changes nothing");
    assert_eq!(production_version(&app).await, version);

    // A dry run with allowBreaking: it would apply; nothing changes.
    let dry = promote(&app, "qa", true, true).await;
    assert_eq!(dry["canApply"], true, "{dry:#}");
    assert_eq!(dry["applied"], false);
    assert_eq!(production_state(&app).await, before);

    // Without allowBreaking the promotion is refused.
    let refused = promote_error(&app, "qa", version, false).await;
    assert_eq!(refused["extensions"]["code"], "CONFLICT", "{refused}");
    assert!(refused["extensions"]["blockers"][0]
        .as_str()
        .unwrap()
        .contains("allowBreaking"));
    // With a stale version too.
    let stale = promote_error(&app, "qa", version - 1, true).await;
    assert_eq!(stale["extensions"]["code"], "CONFLICT", "{stale}");
    assert_eq!(production_state(&app).await, before);

    // The promotion.
    let done = promote(&app, "qa", false, true).await;
    assert_eq!(done["applied"], true, "{done:#}");
    assert_eq!(done["rebased"], true);
    assert_eq!(done["promotion"]["status"], "APPLIED");
    assert!(done["versionAfter"].as_i64().unwrap() > version);
    let promoted = app
        .data(
            "query($id: ID!) { account(id: $id) { name region tier } }",
            json!({ "id": acme }),
        )
        .await;
    assert_eq!(
        promoted["account"],
        json!({ "name": "Acme", "region": "EMEA", "tier": null })
    );
    app.data(
        "mutation($id: ID!) { updateAccount(id: $id, input: { tier: GOLD }) { tier } }",
        json!({ "id": acme }),
    )
    .await;
    let stages = app
        .scalar("SELECT count(*) AS n FROM crm.stage WHERE name = 'Discovery' AND deleted_at IS NULL")
        .await;
    assert_eq!(stages, 1);
    let gone = app
        .graphql(
            "query($id: ID!) { account(id: $id) { legacyCode } }",
            json!({ "id": acme }),
        )
        .await;
    assert!(gone["errors"].is_array(), "legacyCode is deleted in production: {gone}");
    // The sandbox was rebased: nothing left to promote.
    let after = diff(&app, "qa").await;
    assert_eq!(after["changes"], json!([]), "{after:#}");
    assert_eq!(
        app.data("{ sandbox(name: \"qa\") { status } }", json!({})).await["sandbox"]["status"],
        "CURRENT"
    );

    // History and revert.
    let listed = app
        .data(
            "{ promotions { id kind source status by { email } changes { target action } sdlChanges { level } } }",
            json!({}),
        )
        .await;
    let entry = &listed["promotions"][0];
    assert_eq!(
        (entry["kind"].as_str(), entry["source"].as_str()),
        (Some("SANDBOX"), Some("qa"))
    );
    assert_eq!(entry["changes"].as_array().unwrap().len(), 4);
    let id = entry["id"].as_str().unwrap().to_owned();
    let revert = "mutation($id: ID!, $dryRun: Boolean!) { revertPromotion(id: $id, dryRun: $dryRun) { applied canApply blockers changes { target action status } } }";
    let dry = app.data(revert, json!({ "id": id, "dryRun": true })).await;
    assert_eq!(dry["revertPromotion"]["canApply"], true, "{dry:#}");
    let reverted = app.data(revert, json!({ "id": id, "dryRun": false })).await;
    assert_eq!(reverted["revertPromotion"]["applied"], true, "{reverted:#}");
    let back = app
        .data(
            "query($id: ID!) { account(id: $id) { legacyCode } }",
            json!({ "id": acme }),
        )
        .await;
    assert_eq!(
        back["account"]["legacyCode"], "L-1",
        "the deleted field's data came back"
    );
    let tier_gone = app
        .graphql("query($id: ID!) { account(id: $id) { tier } }", json!({ "id": acme }))
        .await;
    assert!(tier_gone["errors"].is_array(), "{tier_gone}");
    let kept = app
        .scalar("SELECT count(*) AS n FROM crm.account WHERE cf_tier = 'GOLD'")
        .await;
    assert_eq!(kept, 1, "the added field is deleted, its data kept");
    let label = app
        .data("{ object(name: \"Account\") { fields { name label } } }", json!({}))
        .await;
    assert!(label.to_string().contains("\"label\":\"Region\""), "{label}");
    let stages = app
        .scalar("SELECT count(*) AS n FROM crm.stage WHERE name = 'Discovery' AND deleted_at IS NULL")
        .await;
    assert_eq!(stages, 0);
    let statuses = app
        .data("{ promotions { kind status revertOf revertedIn } }", json!({}))
        .await;
    assert_eq!(statuses["promotions"][0]["kind"], "REVERT");
    assert_eq!(statuses["promotions"][1]["status"], "REVERTED");
    let again = app.error(revert, json!({ "id": id, "dryRun": false })).await;
    assert_eq!(again["extensions"]["code"], "CONFLICT", "{again}");
}

#[tokio::test]
async fn what_production_data_refuses_is_reported_and_nothing_is_applied() {
    let app = TestApp::start().await;
    app.data(
        r#"mutation { createCustomField(input: { object: "Account", name: "zone", label: "Zone", type: TEXT }) { name } }"#,
        json!({}),
    )
    .await;
    let first = app.create("Account", json!({ "name": "A", "zone": "north" })).await;
    let second = app.create("Account", json!({ "name": "B", "zone": "north" })).await;
    let deal = app
        .create(
            "Opportunity",
            json!({ "name": "Deal", "accountId": first, "amount": "10.00" }),
        )
        .await;
    make_sandbox(&app, "strict").await;
    let prospecting = app
        .data(
            "{ stages(filter: { name: { eq: \"Prospecting\" } }) { nodes { id } } }",
            json!({}),
        )
        .await["stages"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.sandbox_data(
        "strict",
        r#"mutation($stage: ID!) {
            tier: createCustomField(input: { object: "Account", name: "tier", label: "Tier", type: TEXT }) { name }
            zone: updateCustomField(object: "Account", name: "zone", input: { unique: true }) { name }
            stage: deleteStage(id: $stage) { id }
        }"#,
        json!({ "stage": prospecting }),
    )
    .await;
    let before = production_state(&app).await;
    let version = production_version(&app).await;

    let report = diff(&app, "strict").await;
    assert_eq!(report["failures"], 2, "{report:#}");
    let zone = change(&report, "Account.zone");
    assert_eq!(zone["status"], "FAILS");
    assert_eq!(zone["dataImpact"]["count"], 2);
    let mut samples: Vec<&str> = zone["dataImpact"]["sampleIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    samples.sort();
    let mut expected = vec![first.as_str(), second.as_str()];
    expected.sort();
    assert_eq!(samples, expected);
    let stage = change(&report, "Sales / Prospecting");
    assert_eq!(stage["action"], "DELETE");
    assert_eq!(stage["status"], "FAILS", "{stage:#}");
    assert_eq!(stage["dataImpact"]["count"], 1);
    assert_eq!(stage["dataImpact"]["sampleIds"], json!([deal]));
    assert_eq!(change(&report, "Account.tier")["status"], "READY");

    // The last change (the stage) fails: nothing at all is applied.
    let refused = promote_error(&app, "strict", version, true).await;
    assert_eq!(refused["extensions"]["code"], "CONFLICT");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("refused by production's data"),
        "{refused}"
    );
    assert_eq!(production_state(&app).await, before);
    assert_eq!(production_version(&app).await, version);
    let promotions = app.scalar("SELECT count(*) AS n FROM crm_system.promotion").await;
    assert_eq!(promotions, 0);

    // Fixed in production, the same promotion goes through.
    app.data(
        "mutation($id: ID!) { updateAccount(id: $id, input: { zone: \"south\" }) { zone } }",
        json!({ "id": second }),
    )
    .await;
    app.data(
        "mutation($id: ID!) { deleteOpportunity(id: $id) { id } }",
        json!({ "id": deal }),
    )
    .await;
    let done = promote(&app, "strict", false, true).await;
    assert_eq!(done["applied"], true, "{done:#}");
    let duplicate = app
        .error(
            "mutation($id: ID!) { updateAccount(id: $id, input: { zone: \"north\" }) { zone } }",
            json!({ "id": second }),
        )
        .await;
    assert_eq!(
        duplicate["extensions"]["code"], "CONFLICT",
        "zone is unique now: {duplicate}"
    );
}

#[tokio::test]
async fn concurrent_promotions_are_serialized_and_conflicts_are_reported() {
    let app = TestApp::start().await;
    app.data(
        r#"mutation {
            status: createCustomField(input: { object: "Account", name: "status", label: "Status", type: PICKLIST,
                options: [{ value: "ACTIVE" }, { value: "DORMANT" }] }) { name }
            note: createCustomField(input: { object: "Account", name: "note", label: "Note", type: TEXT }) { name }
        }"#,
        json!({}),
    )
    .await;
    make_sandbox(&app, "one").await;
    make_sandbox(&app, "two").await;
    app.sandbox_data(
        "one",
        r#"mutation {
            createCustomField(input: { object: "Account", name: "rating", label: "Rating", type: INTEGER }) { name }
            updateCustomField(object: "Account", name: "status", input: { options: [{ value: "ACTIVE" },
                { value: "DORMANT" }, { value: "CHURNED" }] }) { name }
            note: updateCustomField(object: "Account", name: "note", input: { label: "Note (one)" }) { name }
        }"#,
        json!({}),
    )
    .await;
    app.sandbox_data(
        "two",
        r#"mutation {
            createCustomField(input: { object: "Account", name: "segment", label: "Segment", type: TEXT }) { name }
            updateCustomField(object: "Account", name: "status", input: { options: [{ value: "ACTIVE" },
                { value: "DORMANT" }, { value: "PAUSED" }] }) { name }
            note: updateCustomField(object: "Account", name: "note", input: { label: "Note (two)" }) { name }
        }"#,
        json!({}),
    )
    .await;

    // Both at once, expecting the same version: one waits for the other,
    // then finds the version moved.
    let version = production_version(&app).await;
    let run = |name: &'static str| {
        let query = promote_query();
        let app = &app;
        async move {
            app.graphql(
                &query,
                json!({ "name": name, "dryRun": false, "version": version, "allow": true }),
            )
            .await
        }
    };
    let (one, two) = tokio::join!(run("one"), run("two"));
    let applied: Vec<&Value> = [&one, &two].into_iter().filter(|r| r["errors"].is_null()).collect();
    assert_eq!(applied.len(), 1, "exactly one promotion applies: {one} {two}");
    let loser = if one["errors"].is_null() { &two } else { &one };
    assert_eq!(loser["errors"][0]["extensions"]["code"], "CONFLICT", "{loser}");
    assert!(
        loser["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not the expected"),
        "{loser}"
    );
    let (winner, other) = if one["errors"].is_null() {
        ("one", "two")
    } else {
        ("two", "one")
    };

    // The other sandbox changed the same picklist and label: conflicts.
    let report = diff(&app, other).await;
    assert_eq!(report["conflicts"], 2, "{report:#}");
    let status = change(&report, "Account.status");
    assert_eq!(status["status"], "CONFLICT");
    assert!(status["conflict"].as_str().unwrap().contains("options"), "{status:#}");
    let note = change(&report, "Account.note");
    assert_eq!(note["status"], "CONFLICT", "{note:#}");
    assert_eq!(
        report["targetChanges"].as_array().unwrap().len(),
        3,
        "what {winner} promoted: {report:#}"
    );
    let refused = promote_error(&app, other, production_version(&app).await, true).await;
    assert!(
        refused["extensions"]["blockers"][0]
            .as_str()
            .unwrap()
            .contains("conflict"),
        "{refused}"
    );

    // Resolved: the status conflict keeps production's options, the
    // note takes the sandbox's label.
    let resolutions = json!([
        { "key": status["key"], "take": "TARGET" },
        { "key": note["key"], "take": "SOURCE" },
    ]);
    let done = app
        .data(
            &promote_query(),
            json!({ "name": other, "dryRun": false, "version": production_version(&app).await, "allow": true,
                    "resolutions": resolutions }),
        )
        .await;
    assert_eq!(done["promoteSandbox"]["applied"], true, "{done:#}");
    let fields = app
        .data(
            "{ object(name: \"Account\") { fields { name label options { value } } } }",
            json!({}),
        )
        .await;
    let text = fields.to_string();
    assert!(text.contains(&format!("Note ({other})")), "{text}");
    assert!(text.contains("\"rating\"") && text.contains("\"segment\""), "{text}");
    let kept = if winner == "one" { "CHURNED" } else { "PAUSED" };
    let status_options: Vec<&str> = fields["object"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "status")
        .unwrap()["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        status_options,
        ["ACTIVE", "DORMANT", kept],
        "production's options were kept"
    );
}

#[tokio::test]
async fn a_changeset_file_round_trips_into_a_fresh_database() {
    let app = TestApp::start().await;
    make_sandbox(&app, "design").await;
    app.sandbox_data(
        "design",
        r#"mutation {
            createCustomObject(input: { name: "Subscription", label: "Subscription", pluralLabel: "Subscriptions",
                fields: [{ name: "plan", label: "Plan", type: PICKLIST, options: [{ value: "BASIC" }, { value: "PRO" }] }] }) { name }
            lookup: createCustomField(input: { object: "Account", name: "contract", label: "Contract",
                type: LOOKUP, lookupObject: "Subscription", relationName: "accounts" }) { name }
            seats: createCustomField(input: { object: "Account", name: "seats", label: "Seats", type: INTEGER,
                defaultValue: 1, required: true }) { name }
            settings: updateWorkspaceSettings(input: { recordVisibility: OWNED }) { recordVisibility }
        }"#,
        json!({}),
    )
    .await;
    let exported = crm_command(&app, &["sandbox", "export", "design"]);
    let parsed: Value = serde_json::from_str(&exported).unwrap();
    assert_eq!(parsed["format"], "crm.changeset/1");
    let targets: Vec<&str> = parsed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        [
            "Subscription",
            "Account.contract",
            "Account.seats",
            "Subscription.plan",
            "workspace settings"
        ],
        "sorted by kind, then name"
    );
    assert_eq!(
        crm_command(&app, &["sandbox", "export", "design"]),
        exported,
        "the file is stable"
    );

    // Into a fresh database: a dry run first, then for real.
    let fresh = TestApp::start().await;
    let dir = std::env::temp_dir().join(format!("crm-changeset-{}", std::process::id()));
    let file = dir.join("design.changeset.json");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&file, &exported).unwrap();
    let path = file.to_str().unwrap();
    let checked = crm_command(&fresh, &["changeset", "diff", path, "--to", "production"]);
    assert!(checked.contains("it applies"), "{checked}");
    assert_eq!(fresh.scalar("SELECT count(*) AS n FROM crm.custom_field").await, 0);
    let applied = crm_command(&fresh, &["changeset", "apply", path, "--to", "production"]);
    assert!(applied.contains("applied"), "{applied}");
    let shape = "{ objects { name pluralName label fields { name type required defaultValue lookupObject relationName options { value } } } workspaceSettings { recordVisibility } }";
    let there = fresh.data(shape, json!({})).await;
    let here = app.sandbox_data("design", shape, json!({})).await;
    assert_eq!(there, here, "the fresh database has what the sandbox has");
    let again = crm_command(&fresh, &["changeset", "diff", path, "--to", "production"]);
    assert!(again.contains("already has every change"), "{again}");
    let listed = crm_command(&fresh, &["promotion", "list"]);
    assert!(
        listed.contains("CHANGESET") && listed.contains("design.changeset.json"),
        "{listed}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `crm` against a test's database and returns its standard output.
fn crm_command(app: &TestApp, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_crm"))
        .args(args)
        .env("DATABASE_URL", &app.database_url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "crm {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn a_promotion_killed_midway_leaves_production_fully_old() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let app = TestApp::start().await;
    make_sandbox(&app, "big").await;
    let pipeline = app.data("{ pipelines { nodes { id } } }", json!({})).await["pipelines"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.sandbox_data(
        "big",
        r#"mutation($pipeline: ID!) {
            a: createCustomField(input: { object: "Account", name: "tier", label: "Tier", type: TEXT }) { name }
            b: createCustomField(input: { object: "Contact", name: "score", label: "Score", type: INTEGER }) { name }
            stage: createStage(input: { pipelineId: $pipeline, name: "Discovery", position: 10, probability: 15,
                forecastCategory: PIPELINE }) { id }
        }"#,
        json!({ "pipeline": pipeline }),
    )
    .await;
    let before = production_state(&app).await;
    let version = production_version(&app).await;

    // The stage is written last: hold its table against writes so the
    // promotion stops there, after its fields' DDL, and kill the process.
    let mut lock = AsyncPgConnection::establish(&app.database_url).await.unwrap();
    lock.batch_execute("BEGIN; LOCK TABLE crm.stage IN EXCLUSIVE MODE")
        .await
        .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_crm"))
        .args(["sandbox", "promote", "big"])
        .env("DATABASE_URL", &app.database_url)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        // The promotion holds the new columns' tables and waits for stage.
        let midway = app
            .scalar(
                "SELECT count(*) AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                 WHERE c.relname IN ('account', 'contact') AND c.relnamespace = 'crm'::regnamespace \
                 AND l.mode = 'AccessExclusiveLock' AND l.granted",
            )
            .await;
        let waiting = app
            .scalar(
                "SELECT count(*) AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                 WHERE c.relname = 'stage' AND c.relnamespace = 'crm'::regnamespace AND NOT l.granted",
            )
            .await;
        if midway == 2 && waiting == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the promotion never reached the stage"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    lock.batch_execute("COMMIT").await.unwrap();
    drop(lock);

    // Postgres rolls the orphaned transaction back once its client is gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while app
        .scalar("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name <> '' AND query LIKE '%INSERT INTO \"crm\".\"stage\"%' AND pid <> pg_backend_pid()")
        .await
        > 0
    {
        assert!(std::time::Instant::now() < deadline, "the killed promotion's session lingers");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let restarted = app.second_server().await;
    assert_eq!(production_state(&restarted).await, before, "production is fully old");
    assert_eq!(production_version(&app).await, version);
    assert_eq!(app.scalar("SELECT count(*) AS n FROM crm_system.promotion").await, 0);

    // Run again, it completes: production is fully new.
    let output = crm_command(&app, &["sandbox", "promote", "big"]);
    assert!(output.contains("applied"), "{output}");
    let columns = app
        .scalar(
            "SELECT count(*) AS n FROM information_schema.columns WHERE table_schema = 'crm' \
             AND column_name IN ('cf_tier', 'cf_score')",
        )
        .await;
    assert_eq!(columns, 2);
    let stages = app
        .scalar("SELECT count(*) AS n FROM crm.stage WHERE name = 'Discovery'")
        .await;
    assert_eq!(stages, 1);
    let listed = crm_command(&app, &["promotion", "list"]);
    assert!(listed.contains("SANDBOX") && listed.contains("big"), "{listed}");
    let id = listed.split_whitespace().next().unwrap();
    let reverted = crm_command(&app, &["promotion", "revert", id]);
    assert!(reverted.contains("applied"), "{reverted}");
    // The revert undid the promotion the sandbox was rebased on: the
    // sandbox's changes show again, not the revert as production's own.
    let diffed = crm_command(&app, &["sandbox", "diff", "big"]);
    assert!(!diffed.contains("production changed since the base"), "{diffed}");
    assert!(diffed.contains("add field Account.tier"), "{diffed}");
}

#[tokio::test]
async fn a_lossy_type_change_is_promoted_only_when_allowed_and_its_revert_restores_the_values() {
    let app = TestApp::start().await;
    app.data(
        r#"mutation { createCustomField(input: { object: "Account", name: "closedAt", label: "Closed at", type: DATETIME }) { name } }"#,
        json!({}),
    )
    .await;
    let afternoon = app
        .create(
            "Account",
            json!({ "name": "Afternoon", "closedAt": "2026-03-01T15:45:30.250Z" }),
        )
        .await;
    let midnight = app
        .create(
            "Account",
            json!({ "name": "Midnight", "closedAt": "2026-03-02T00:00:00Z" }),
        )
        .await;
    make_sandbox(&app, "retype").await;
    app.sandbox_data(
        "retype",
        r#"mutation { changeCustomFieldType(object: "Account", name: "closedAt", newType: DATE, onLossy: ACCEPT) { type } }"#,
        json!({}),
    )
    .await;
    let read = "query($id: ID!) { account(id: $id) { closedAt } }";
    let closed_at = async |id: &str| app.data(read, json!({ "id": id })).await["account"]["closedAt"].clone();

    // The diff shows what production's values would lose.
    let lossy_report = "lossy canApply blockers promotion { id } \
        changes { target status dataImpact { message path count sampleIds lossy } }";
    let query = format!("query {{ sandboxDiff(name: \"retype\") {{ {lossy_report} }} }}");
    let report = app.data(&query, json!({})).await["sandboxDiff"].clone();
    assert_eq!(report["lossy"], 1, "{report:#}");
    assert_eq!(report["canApply"], false);
    let blockers = report["blockers"].as_array().unwrap();
    assert!(
        blockers.iter().any(|b| b.as_str().unwrap().contains("allowLossy")),
        "{report:#}"
    );
    let closed = change(&report, "Account.closedAt");
    assert_eq!(closed["status"], "READY");
    let impact = &closed["dataImpact"];
    assert_eq!(
        (
            &impact["lossy"],
            &impact["count"],
            &impact["sampleIds"],
            &impact["path"]
        ),
        (&json!(true), &json!(1), &json!([afternoon]), &json!(["type"])),
        "{impact:#}"
    );
    assert!(
        impact["message"].as_str().unwrap().contains("the time of day"),
        "{impact:#}"
    );

    // Refused without allowLossy: production keeps its values.
    let promote = format!(
        "mutation($version: Int!, $lossy: Boolean) {{ promoteSandbox(name: \"retype\", dryRun: false, \
         expectedProductionVersion: $version, allowBreaking: true, allowLossy: $lossy) {{ {lossy_report} }} }}"
    );
    let version = production_version(&app).await;
    let error = app.error(&promote, json!({ "version": version })).await;
    assert_eq!(error["extensions"]["code"], "CONFLICT", "{error}");
    assert!(error["message"].as_str().unwrap().contains("allowLossy"), "{error}");
    assert_eq!(closed_at(&afternoon).await, "2026-03-01T15:45:30.250000Z");

    // Allowed, it applies; the revert brings the exact values back.
    let promoted = app.data(&promote, json!({ "version": version, "lossy": true })).await["promoteSandbox"].clone();
    assert_eq!(closed_at(&afternoon).await, "2026-03-01");
    assert_eq!(closed_at(&midnight).await, "2026-03-02");
    let id = promoted["promotion"]["id"].as_str().unwrap().to_owned();
    let reverted = app
        .data(
            "mutation($id: ID!) { revertPromotion(id: $id, dryRun: false) { applied lossy } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(reverted["revertPromotion"], json!({ "applied": true, "lossy": 0 }));
    assert_eq!(closed_at(&afternoon).await, "2026-03-01T15:45:30.250000Z");
    assert_eq!(closed_at(&midnight).await, "2026-03-02T00:00:00.000000Z");
    let field = app
        .data("{ object(name: \"Account\") { fields { name type } } }", json!({}))
        .await;
    let closed_type = field["object"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "closedAt")
        .map(|f| f["type"].clone());
    assert_eq!(closed_type, Some(json!("DATETIME")));
}

/// The fields of `object` in the order the API lists them (introspection),
/// among `names`.
async fn field_order(app: &TestApp, path: &str, object: &str, names: &[&str]) -> Vec<String> {
    let response = app
        .graphql_at(
            path,
            None,
            "query($name: String!) { __type(name: $name) { fields { name } } }",
            json!({ "name": object }),
        )
        .await
        .json();
    response["data"]["__type"]["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("no type {object}: {response}"))
        .iter()
        .filter_map(|f| f["name"].as_str())
        .filter(|name| names.contains(name))
        .map(str::to_owned)
        .collect()
}

/// Fields made in a sandbox in one order: `seats` before `kind`, `zFirst`
/// before `aSecond`.
async fn fields_in_creation_order(app: &TestApp, sandbox: &str) {
    app.sandbox_data(
        sandbox,
        r#"mutation {
            createCustomObject(input: { name: "Plan", label: "Plan", pluralLabel: "Plans",
                fields: [{ name: "seats", label: "Seats", type: INTEGER }, { name: "kind", label: "Kind", type: TEXT }] }) { name }
        }"#,
        json!({}),
    )
    .await;
    app.sandbox_data(
        sandbox,
        r#"mutation { createCustomField(input: { object: "Account", name: "zFirst", label: "Z first", type: TEXT }) { name } }"#,
        json!({}),
    )
    .await;
    app.sandbox_data(
        sandbox,
        r#"mutation { createCustomField(input: { object: "Account", name: "aSecond", label: "A second", type: TEXT }) { name } }"#,
        json!({}),
    )
    .await;
}

#[tokio::test]
async fn a_promotion_keeps_the_order_fields_were_made_in() {
    let app = TestApp::start().await;
    make_sandbox(&app, "order").await;
    fields_in_creation_order(&app, "order").await;
    let sandbox = "/sandboxes/order/graphql";
    assert_eq!(
        field_order(&app, sandbox, "Plan", &["seats", "kind"]).await,
        ["seats", "kind"]
    );
    assert_eq!(
        field_order(&app, sandbox, "Account", &["zFirst", "aSecond"]).await,
        ["zFirst", "aSecond"]
    );

    let report = diff(&app, "order").await;
    let targets: Vec<&str> = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        ["Plan", "Account.zFirst", "Account.aSecond", "Plan.seats", "Plan.kind"],
        "listed by kind, an object's fields in their order"
    );
    let done = promote(&app, "order", false, false).await;
    assert_eq!(done["applied"], true, "{done:#}");
    assert_eq!(
        field_order(&app, "/graphql", "Plan", &["seats", "kind"]).await,
        ["seats", "kind"]
    );
    assert_eq!(
        field_order(&app, "/graphql", "Account", &["zFirst", "aSecond"]).await,
        ["zFirst", "aSecond"]
    );
    let fields = app
        .data(r#"{ object(name: "Plan") { fields { name } } }"#, json!({}))
        .await;
    let names: Vec<&str> = fields["object"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["name"].as_str())
        .filter(|n| ["seats", "kind"].contains(n))
        .collect();
    assert_eq!(names, ["seats", "kind"], "the metadata API lists them in order too");
    let again = diff(&app, "order").await;
    assert_eq!(again["changes"], json!([]), "nothing left to promote: {again:#}");
}

#[tokio::test]
async fn a_changeset_file_keeps_the_order_fields_were_made_in() {
    let app = TestApp::start().await;
    make_sandbox(&app, "order").await;
    fields_in_creation_order(&app, "order").await;
    let exported = crm_command(&app, &["sandbox", "export", "order"]);
    let parsed: Value = serde_json::from_str(&exported).unwrap();
    let targets: Vec<&str> = parsed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        ["Plan", "Account.zFirst", "Account.aSecond", "Plan.seats", "Plan.kind"]
    );

    let dir = std::env::temp_dir().join(format!("crm-changeset-order-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let apply = |name: &str, text: &str, fresh: &TestApp| {
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        crm_command(
            fresh,
            &["changeset", "apply", file.to_str().unwrap(), "--to", "production"],
        )
    };
    let fresh = TestApp::start().await;
    let applied = apply("order.changeset.json", &exported, &fresh);
    assert!(applied.contains("applied"), "{applied}");
    assert_eq!(
        field_order(&fresh, "/graphql", "Plan", &["seats", "kind"]).await,
        ["seats", "kind"]
    );
    assert_eq!(
        field_order(&fresh, "/graphql", "Account", &["zFirst", "aSecond"]).await,
        ["zFirst", "aSecond"]
    );

    // A file written before changes carried positions still applies.
    let mut old = parsed.clone();
    for change in old["changes"].as_array_mut().unwrap() {
        assert_eq!(
            change.as_object_mut().unwrap().remove("position").is_some(),
            change["kind"] == "FIELD"
        );
    }
    let older = TestApp::start().await;
    let applied = apply(
        "old.changeset.json",
        &serde_json::to_string_pretty(&old).unwrap(),
        &older,
    );
    assert!(applied.contains("applied"), "{applied}");
    assert_eq!(older.scalar("SELECT count(*) AS n FROM crm.custom_field").await, 4);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The changes of a report as a reviewer compares them: what, how, where.
fn listed(report: &Value) -> Vec<Value> {
    report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            json!([
                c["key"],
                c["kind"],
                c["action"],
                c["target"],
                c["summary"],
                c["status"],
                c["apiImpact"]
            ])
        })
        .collect()
}

/// After a promotion the sandbox agrees with its new base and production:
/// no change of its own, none of production's, nothing a dry run (even one
/// allowing breaking changes) would apply.
async fn nothing_left(app: &TestApp, name: &str) {
    let report = diff(app, name).await;
    assert_eq!(report["changes"], json!([]), "{report:#}");
    assert_eq!(report["targetChanges"], json!([]), "{report:#}");
    let dry = promote(app, name, true, true).await;
    assert_eq!(dry["changes"], json!([]), "{dry:#}");
    assert_eq!(dry["canApply"], false, "{dry:#}");
    assert!(
        dry["blockers"][0].as_str().unwrap().contains("nothing to apply"),
        "{dry:#}"
    );
}

#[tokio::test]
async fn after_promotion_a_field_both_sides_added_stays_one_field() {
    let app = TestApp::start().await;
    make_sandbox(&app, "twin").await;
    let field = r#"mutation { createCustomField(input: { object: "Account", name: "region", label: "Region", type: PICKLIST,
        options: [{ value: "EMEA" }, { value: "APAC" }] }) { name } }"#;
    app.data(field, json!({})).await;
    let acme = app.create("Account", json!({ "name": "Acme", "region": "EMEA" })).await;
    app.sandbox_data("twin", field, json!({})).await;
    app.sandbox_data(
        "twin",
        r#"mutation { createCustomField(input: { object: "Account", name: "score", label: "Score", type: INTEGER }) { name } }"#,
        json!({}),
    )
    .await;
    let report = diff(&app, "twin").await;
    assert_eq!(
        change(&report, "Account.region")["status"],
        "ALREADY_APPLIED",
        "{report:#}"
    );
    assert_eq!(change(&report, "Account.score")["status"], "READY", "{report:#}");

    let done = promote(&app, "twin", false, false).await;
    assert_eq!(
        (&done["applied"], &done["rebased"]),
        (&json!(true), &json!(true)),
        "{done:#}"
    );
    nothing_left(&app, "twin").await;
    let ids = "SELECT count(*) AS n FROM crm.custom_field p JOIN sandbox_twin.custom_field s USING (id)";
    assert_eq!(app.scalar(ids).await, 2, "the sandbox's fields have production's ids");
    let history = "SELECT count(*) AS n FROM sandbox_twin.metadata_change m JOIN crm.custom_field f \
        ON f.id::text = m.after->>'id' WHERE f.name = 'region'";
    assert!(app.scalar(history).await > 0, "the sandbox's history follows the id");

    // The sandbox's next edit of the field is a change of production's field.
    app.sandbox_data(
        "twin",
        r#"mutation { updateCustomField(object: "Account", name: "region", input: { label: "Sales region" }) { name } }"#,
        json!({}),
    )
    .await;
    let next = diff(&app, "twin").await;
    let changes = next["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{next:#}");
    assert_eq!(
        (&changes[0]["action"], &changes[0]["status"]),
        (&json!("CHANGE"), &json!("READY"))
    );
    let production_key = format!(
        "SELECT count(*) AS n FROM crm.custom_field WHERE name = 'region' AND 'FIELD:' || id = '{}'",
        changes[0]["key"].as_str().unwrap()
    );
    assert_eq!(app.scalar(&production_key).await, 1, "{next:#}");
    let account = app
        .data(
            "query($id: ID!) { account(id: $id) { region score } }",
            json!({ "id": acme }),
        )
        .await;
    assert_eq!(account["account"], json!({ "region": "EMEA", "score": null }));
}

#[tokio::test]
async fn after_promotion_a_pipeline_and_stage_both_sides_added_stay_one() {
    let app = TestApp::start().await;
    make_sandbox(&app, "twin").await;
    let pipeline =
        r#"mutation { createPipeline(input: { name: "Renewals", description: "Existing customers" }) { id } }"#;
    let stage = r#"mutation($pipeline: ID!) { createStage(input: { pipelineId: $pipeline, name: "Open", position: 1,
        probability: 50, forecastCategory: PIPELINE }) { id } }"#;
    let made = async |sandbox: Option<&str>| {
        let run = async |query: &str, variables: Value| match sandbox {
            Some(name) => app.sandbox_data(name, query, variables).await,
            None => app.data(query, variables).await,
        };
        let pipeline = run(pipeline, json!({})).await["createPipeline"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let stage = run(stage, json!({ "pipeline": pipeline })).await["createStage"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let deal = run(
            "mutation($stage: ID!) { createOpportunity(input: { name: \"Renewal\", stageId: $stage }) { id } }",
            json!({ "stage": stage }),
        )
        .await["createOpportunity"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        (pipeline, stage, deal)
    };
    let (pipeline, stage, deal) = made(None).await;
    let (_, _, sandbox_deal) = made(Some("twin")).await;
    app.sandbox_data(
        "twin",
        r#"mutation { createCustomField(input: { object: "Account", name: "score", label: "Score", type: INTEGER }) { name } }"#,
        json!({}),
    )
    .await;
    let report = diff(&app, "twin").await;
    assert_eq!(change(&report, "Renewals")["status"], "ALREADY_APPLIED", "{report:#}");
    assert_eq!(
        change(&report, "Renewals / Open")["status"],
        "ALREADY_APPLIED",
        "{report:#}"
    );

    let done = promote(&app, "twin", false, false).await;
    assert_eq!(
        (&done["applied"], &done["rebased"]),
        (&json!(true), &json!(true)),
        "{done:#}"
    );
    nothing_left(&app, "twin").await;
    let read = "query($id: ID!) { opportunity(id: $id) { name pipeline { id name } stage { id name } } }";
    let expected = json!({ "name": "Renewal", "pipeline": { "id": pipeline, "name": "Renewals" },
        "stage": { "id": stage, "name": "Open" } });
    assert_eq!(app.data(read, json!({ "id": deal })).await["opportunity"], expected);
    let in_sandbox = app.sandbox_data("twin", read, json!({ "id": sandbox_deal })).await;
    assert_eq!(
        in_sandbox["opportunity"], expected,
        "the sandbox's deal follows the ids"
    );
}

#[tokio::test]
async fn promoting_a_sandbox_whose_only_change_production_has_rebases_it() {
    let app = TestApp::start().await;
    make_sandbox(&app, "twin").await;
    let field = r#"mutation { createCustomField(input: { object: "Account", name: "region", label: "Region", type: TEXT }) { name } }"#;
    app.data(field, json!({})).await;
    app.sandbox_data("twin", field, json!({})).await;
    let version = production_version(&app).await;
    let done = promote(&app, "twin", false, false).await;
    assert_eq!(done["applied"], true, "{done:#}");
    assert_eq!(done["rebased"], true, "{done:#}");
    assert_eq!(done["blockers"], json!([]), "{done:#}");
    let statuses: Vec<&Value> = done["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["status"])
        .collect();
    assert_eq!(statuses, [&json!("ALREADY_APPLIED")], "{done:#}");
    assert_eq!(production_version(&app).await, version, "production did not change");
    nothing_left(&app, "twin").await;
}

#[tokio::test]
async fn after_promotion_resolved_conflicts_leave_nothing_to_promote() {
    let app = TestApp::start().await;
    app.data(
        r#"mutation {
            note: createCustomField(input: { object: "Account", name: "note", label: "Note", type: TEXT }) { name }
            status: createCustomField(input: { object: "Account", name: "status", label: "Status", type: TEXT }) { name }
        }"#,
        json!({}),
    )
    .await;
    make_sandbox(&app, "both").await;
    let edits = |side: &str| {
        format!(
            r#"mutation {{
                note: updateCustomField(object: "Account", name: "note", input: {{ label: "Note ({side})" }}) {{ name }}
                status: updateCustomField(object: "Account", name: "status", input: {{ label: "Status ({side})" }}) {{ name }}
                tier: createCustomField(input: {{ object: "Account", name: "tier", label: "Tier ({side})", type: TEXT }}) {{ name }}
            }}"#
        )
    };
    app.data(&edits("production"), json!({})).await;
    app.sandbox_data("both", &edits("sandbox"), json!({})).await;
    let report = diff(&app, "both").await;
    assert_eq!(report["conflicts"], 3, "{report:#}");
    let key = |target: &str| change(&report, target)["key"].clone();
    let resolutions = json!([
        { "key": key("Account.note"), "take": "SOURCE" },
        { "key": key("Account.status"), "take": "TARGET" },
        { "key": key("Account.tier"), "take": "SOURCE" },
    ]);
    let done = app
        .data(
            &promote_query(),
            json!({ "name": "both", "dryRun": false, "version": production_version(&app).await, "allow": false,
                    "resolutions": resolutions }),
        )
        .await["promoteSandbox"]
        .clone();
    assert_eq!(
        (&done["applied"], &done["rebased"]),
        (&json!(true), &json!(true)),
        "{done:#}"
    );
    nothing_left(&app, "both").await;
    let labels = "{ object(name: \"Account\") { fields { name label } } }";
    let production = app.data(labels, json!({})).await;
    let text = production.to_string();
    for label in ["Note (sandbox)", "Status (production)", "Tier (sandbox)"] {
        assert!(text.contains(label), "{label}: {text}");
    }
    assert_eq!(app.sandbox_data("both", labels, json!({})).await, production);
}

#[tokio::test]
async fn after_promotion_and_its_revert_the_sandbox_shows_its_changes_again() {
    let app = TestApp::start().await;
    make_sandbox(&app, "again").await;
    let pipeline = app.data("{ pipelines { nodes { id } } }", json!({})).await["pipelines"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.sandbox_data(
        "again",
        r#"mutation($pipeline: ID!) {
            tier: createCustomField(input: { object: "Account", name: "tier", label: "Tier", type: TEXT }) { name }
            sales: updatePipeline(id: $pipeline, input: { description: "Renewals too" }) { id }
        }"#,
        json!({ "pipeline": pipeline }),
    )
    .await;
    let original = diff(&app, "again").await;
    assert_eq!(original["changes"].as_array().unwrap().len(), 2, "{original:#}");
    let done = promote(&app, "again", false, false).await;
    assert_eq!(done["applied"], true, "{done:#}");
    nothing_left(&app, "again").await;
    let reverted = app
        .data(
            "mutation($id: ID!) { revertPromotion(id: $id, dryRun: false) { applied } }",
            json!({ "id": done["promotion"]["id"] }),
        )
        .await;
    assert_eq!(reverted["revertPromotion"]["applied"], true, "{reverted:#}");
    let again = diff(&app, "again").await;
    assert_eq!(listed(&again), listed(&original), "{again:#}");
    assert_eq!(again["targetChanges"], original["targetChanges"], "{again:#}");
}

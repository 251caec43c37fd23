//! What a promotion's report says a change does to clients and records:
//! computed from the metadata for every change, whether or not
//! production's data accepts it, with the records concerned counted.

use serde_json::{json, Value};

use crate::support::TestApp;

const CHANGES: &str = "apiImpact breaking failures canApply blockers \
    changes { target kind action status apiImpact \
        clientImpacts { level path message } sdlChanges { level path message } \
        dataImpact { message path count sampleIds } }";

async fn diff(app: &TestApp, name: &str) -> Value {
    let query = format!("query($name: String!) {{ sandboxDiff(name: $name) {{ {CHANGES} }} }}");
    app.data(&query, json!({ "name": name })).await["sandboxDiff"].clone()
}

async fn sandbox(app: &TestApp, name: &str) {
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

fn levels(change: &Value) -> Vec<(String, String)> {
    change["clientImpacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["level"].as_str().unwrap().to_owned(),
                i["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn promote(app: &TestApp, name: &str, allow_breaking: bool) -> Value {
    let version = app
        .scalar("SELECT metadata_version::bigint AS n FROM crm.workspace_settings")
        .await;
    app.graphql(
        "mutation($name: String!, $allow: Boolean, $version: Int!) { promoteSandbox(name: $name, dryRun: false, \
         expectedProductionVersion: $version, allowBreaking: $allow) { applied } }",
        json!({ "name": name, "allow": allow_breaking, "version": version }),
    )
    .await
}

#[tokio::test]
async fn changes_production_refuses_are_classified_and_their_records_counted() {
    let app = TestApp::start().await;
    app.data(
        r#"mutation { createCustomField(input: { object: "Account", name: "code", label: "Code", type: TEXT }) { name } }"#,
        json!({}),
    )
    .await;
    let mut accounts = vec![
        app.create("Account", json!({ "name": "Acme", "code": "A-1" })).await,
        app.create("Account", json!({ "name": "Globex", "code": "B-2" })).await,
        app.create("Account", json!({ "name": "Initech", "code": "17" })).await,
    ];
    accounts.sort();
    sandbox(&app, "qa").await;
    app.sandbox_data(
        "qa",
        r#"mutation {
            s02: createCustomField(input: { object: "Account", name: "s02Code", label: "S02 code", type: TEXT,
                required: true }) { name }
            code: changeCustomFieldType(object: "Account", name: "code", newType: INTEGER) { name }
        }"#,
        json!({}),
    )
    .await;

    let report = diff(&app, "qa").await;
    let required = change(&report, "Account.s02Code");
    assert_eq!(required["status"], "FAILS", "{report:#}");
    assert_eq!(required["apiImpact"], "BREAKING", "{required:#}");
    assert_eq!(
        levels(required),
        [("BREAKING".to_owned(), "Account.s02Code".to_owned())]
    );
    assert_eq!(required["dataImpact"]["count"], 3, "{required:#}");
    assert_eq!(required["dataImpact"]["sampleIds"], json!(accounts), "{required:#}");

    let retyped = change(&report, "Account.code");
    assert_eq!(retyped["status"], "FAILS", "{report:#}");
    assert_eq!(retyped["apiImpact"], "BREAKING", "{retyped:#}");
    assert_eq!(
        retyped["dataImpact"]["count"], 2,
        "two codes are not numbers: {retyped:#}"
    );
    assert_eq!(retyped["dataImpact"]["sampleIds"].as_array().unwrap().len(), 2);

    assert_eq!(report["breaking"], 2, "{report:#}");
    assert_eq!(report["apiImpact"], "BREAKING");
    assert_eq!(report["canApply"], false);
}

#[tokio::test]
async fn retiring_a_picklist_value_breaks_writers_and_counts_the_records_holding_it() {
    let app = TestApp::start().await;
    app.data(
        r#"mutation { createCustomField(input: { object: "Account", name: "tier", label: "Tier", type: PICKLIST,
            options: [{ value: "GOLD" }, { value: "SILVER" }, { value: "BRONZE" }] }) { name } }"#,
        json!({}),
    )
    .await;
    let mut silver = vec![
        app.create("Account", json!({ "name": "Acme", "tier": "SILVER" })).await,
        app.create("Account", json!({ "name": "Globex", "tier": "SILVER" }))
            .await,
    ];
    silver.sort();
    app.create("Account", json!({ "name": "Initech", "tier": "GOLD" }))
        .await;
    sandbox(&app, "qa").await;
    app.sandbox_data(
        "qa",
        r#"mutation { updateCustomField(object: "Account", name: "tier", input: { options: [
            { value: "GOLD" }, { value: "SILVER", active: false }, { value: "BRONZE", active: false },
            { value: "PLATINUM" }] }) { name } }"#,
        json!({}),
    )
    .await;

    let report = diff(&app, "qa").await;
    let tier = change(&report, "Account.tier");
    assert_eq!(tier["status"], "READY", "{report:#}");
    assert_eq!(tier["apiImpact"], "BREAKING", "{tier:#}");
    let mut impacts = levels(tier);
    impacts.sort();
    assert_eq!(
        impacts,
        [
            ("BREAKING".to_owned(), "Account.tier.BRONZE".to_owned()),
            ("BREAKING".to_owned(), "Account.tier.SILVER".to_owned()),
            ("DANGEROUS".to_owned(), "Account.tier.PLATINUM".to_owned()),
        ]
    );
    // SILVER is held by two records, BRONZE by none: both are counted.
    assert_eq!(tier["dataImpact"]["count"], 2, "{tier:#}");
    assert_eq!(tier["dataImpact"]["sampleIds"], json!(silver));
    assert!(tier["dataImpact"]["message"].as_str().unwrap().contains("SILVER"));

    // Breaking: refused without allowBreaking, applied with it.
    let refused = promote(&app, "qa", false).await;
    let blockers = refused["errors"][0]["extensions"]["blockers"].to_string();
    assert!(blockers.contains("allowBreaking"), "{refused:#}");
    let applied = promote(&app, "qa", true).await;
    assert_eq!(applied["data"]["promoteSandbox"]["applied"], true, "{applied:#}");
    let write = app
        .graphql(
            r#"mutation { createAccount(input: { name: "Hooli", tier: SILVER }) { id } }"#,
            json!({}),
        )
        .await;
    assert_eq!(write["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{write:#}");
    let kept = app
        .data(
            "{ accounts(filter: { tier: { eq: SILVER } }) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(kept["accounts"]["totalCount"], 2, "records keep a retired value");
}

#[tokio::test]
async fn stage_and_settings_changes_are_dangerous_and_a_held_stage_is_refused_with_its_count() {
    let app = TestApp::start().await;
    let stages = app
        .data(
            "{ stages(orderBy: [{ field: POSITION }]) { nodes { id name } } }",
            json!({}),
        )
        .await["stages"]["nodes"]
        .clone();
    let id_of = |name: &str| {
        stages
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no stage {name} in {stages}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (held, empty, tuned) = (
        id_of("Qualification"),
        id_of("Proposal/Price Quote"),
        id_of("Negotiation/Review"),
    );
    let account = app.create("Account", json!({ "name": "Acme" })).await;
    let deal = app
        .create(
            "Opportunity",
            json!({ "name": "Big deal", "accountId": account, "stageId": held }),
        )
        .await;
    sandbox(&app, "qa").await;
    app.sandbox_data(
        "qa",
        r#"mutation($held: ID!, $empty: ID!, $tuned: ID!) {
            held: deleteStage(id: $held) { id }
            empty: deleteStage(id: $empty) { id }
            tuned: updateStage(id: $tuned, input: { probability: 90 }) { id }
            settings: updateWorkspaceSettings(input: { recordVisibility: OWNED }) { recordVisibility }
        }"#,
        json!({ "held": held, "empty": empty, "tuned": tuned }),
    )
    .await;

    let report = diff(&app, "qa").await;
    let refused = change(&report, "Sales / Qualification");
    assert_eq!(refused["status"], "FAILS", "{report:#}");
    assert_eq!(refused["apiImpact"], "DANGEROUS", "{refused:#}");
    assert_eq!(refused["dataImpact"]["count"], 1);
    assert_eq!(refused["dataImpact"]["sampleIds"], json!([deal]));
    for (target, status) in [
        ("Sales / Proposal/Price Quote", "READY"),
        ("Sales / Negotiation/Review", "READY"),
        ("workspace settings", "READY"),
    ] {
        let entry = change(&report, target);
        assert_eq!(
            (entry["status"].as_str(), entry["apiImpact"].as_str()),
            (Some(status), Some("DANGEROUS")),
            "{entry:#}"
        );
        assert!(!entry["clientImpacts"].as_array().unwrap().is_empty(), "{entry:#}");
    }
}

#[tokio::test]
async fn every_outcome_has_its_impact_computed() {
    let app = TestApp::start().await;
    app.data(
        r#"mutation { createCustomField(input: { object: "Account", name: "region", label: "Region", type: TEXT,
            defaultValue: "EMEA" }) { name } }"#,
        json!({}),
    )
    .await;
    sandbox(&app, "qa").await;
    // The same new field on both sides, and one default changed two ways.
    let both = r#"mutation { createCustomField(input: { object: "Account", name: "segment", label: "Segment",
        type: TEXT }) { name } }"#;
    app.data(both, json!({})).await;
    app.sandbox_data("qa", both, json!({})).await;
    app.data(
        r#"mutation { updateCustomField(object: "Account", name: "region", input: { defaultValue: "APAC" }) { name } }"#,
        json!({}),
    )
    .await;
    app.sandbox_data(
        "qa",
        r#"mutation {
            region: updateCustomField(object: "Account", name: "region", input: { defaultValue: "AMER" }) { name }
            extra: createCustomField(input: { object: "Account", name: "extra", label: "Extra", type: TEXT }) { name }
        }"#,
        json!({}),
    )
    .await;

    let report = diff(&app, "qa").await;
    let conflict = change(&report, "Account.region");
    assert_eq!(conflict["status"], "CONFLICT", "{report:#}");
    assert_eq!(conflict["apiImpact"], "DANGEROUS", "a changed default: {conflict:#}");
    let same = change(&report, "Account.segment");
    assert_eq!(
        (same["status"].as_str(), same["apiImpact"].as_str()),
        (Some("ALREADY_APPLIED"), Some("SAFE"))
    );
    assert_eq!(same["clientImpacts"], json!([]), "production already has it: {same:#}");
    let ready = change(&report, "Account.extra");
    assert_eq!(
        (ready["status"].as_str(), ready["apiImpact"].as_str()),
        (Some("READY"), Some("SAFE"))
    );
    assert_eq!(levels(ready), [("SAFE".to_owned(), "Account.extra".to_owned())]);
    assert!(
        !ready["sdlChanges"].as_array().unwrap().is_empty(),
        "made, so its SDL is known: {ready:#}"
    );
}

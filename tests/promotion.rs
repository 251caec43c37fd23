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

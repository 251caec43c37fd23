//! Saved reports: made and checked through the API, run with the caller's
//! visibility, built in a sandbox, promoted and reverted like any
//! metadata.

use serde_json::{json, Value};

use crate::support::TestApp;

const CREATE: &str = "mutation($input: CreateReportInput!) { createReport(input: $input) { id name chart } }";
const RUN: &str =
    "query($id: ID!) { runReport(id: $id) { report { name chart } columns { key label role type } rows { cells } } }";

/// Three deals: two of the rep's in Qualification (100.00, 250.50), one
/// of the admin's won (1000.00).
async fn deals(app: &TestApp, rep: &str) {
    let stage = |name: &str| format!("{{ stages(filter: {{ name: {{ eq: \"{name}\" }} }}) {{ nodes {{ id }} }} }}");
    let qualification = app.data(&stage("Qualification"), json!({})).await["stages"]["nodes"][0]["id"].clone();
    let won = app.data(&stage("Closed Won"), json!({})).await["stages"]["nodes"][0]["id"].clone();
    for (name, stage, amount, owner) in [
        ("a", &qualification, "100.00", Some(rep)),
        ("b", &qualification, "250.50", Some(rep)),
        ("c", &won, "1000.00", None),
    ] {
        let mut input = json!({ "name": name, "stageId": stage, "amount": amount });
        if let Some(owner) = owner {
            input["ownerId"] = json!(owner);
        }
        app.create("Opportunity", input).await;
    }
}

fn by_stage() -> Value {
    json!({
        "name": "Pipeline by stage",
        "description": "Open and won deals per stage.",
        "object": "Opportunity",
        "groupBy": [{ "stage": "NAME" }],
        "metrics": [{ "metric": "SUM", "field": "AMOUNT" }, { "metric": "MAX", "field": "AMOUNT" }],
        "orderBy": [{ "metric": "SUM", "field": "AMOUNT", "direction": "DESC" }],
        "chart": "BAR"
    })
}

#[tokio::test]
async fn reports_are_checked_when_saved_and_run_with_the_callers_visibility() {
    let app = TestApp::start().await;
    let (rep, rep_token) = app.user("rep@example.com", "SALES").await;
    deals(&app, &rep).await;
    let made = app.data(CREATE, json!({ "input": by_stage() })).await["createReport"].clone();
    assert_eq!(made["chart"], "BAR");
    let id = made["id"].clone();

    let answer = app.data(RUN, json!({ "id": id })).await["runReport"].clone();
    assert_eq!(answer["report"], json!({ "name": "Pipeline by stage", "chart": "BAR" }));
    assert_eq!(
        answer["columns"],
        json!([
            { "key": "stage.name", "label": "Stage: Stage name", "role": "KEY", "type": "TEXT" },
            { "key": "count", "label": "Records", "role": "COUNT", "type": "INTEGER" },
            { "key": "sum.amount", "label": "sum of Amount", "role": "METRIC", "type": "DECIMAL" },
            { "key": "max.amount", "label": "max of Amount", "role": "METRIC", "type": "DECIMAL" }
        ])
    );
    assert_eq!(
        answer["rows"],
        json!([
            { "cells": ["Closed Won", 1, "1000.00", "1000.00"] },
            { "cells": ["Qualification", 2, "350.50", "250.50"] }
        ])
    );

    // What a report means is checked when it is saved, and named.
    for (change, field) in [
        (json!({ "object": "Nothing" }), json!(["input", "object"])),
        (json!({ "object": "Report" }), json!(["input", "object"])),
        (
            json!({ "groupBy": [{ "field": "NOPE" }] }),
            json!(["input", "groupBy", 0, "field"]),
        ),
        (
            json!({ "groupBy": [{ "field": "NAME" }, { "field": "AMOUNT" }, { "field": "CURRENCY" }, { "field": "STAGE" }] }),
            json!(["input", "groupBy"]),
        ),
        (
            json!({ "metrics": [{ "metric": "SUM", "field": "NAME" }] }),
            json!(["input", "metrics", 0, "field"]),
        ),
        (
            json!({ "metrics": [{ "metric": "MEDIAN", "field": "AMOUNT" }] }),
            json!(["input", "metrics", 0, "metric"]),
        ),
        (
            json!({ "filter": { "amount": { "gt": "lots" } } }),
            json!(["input", "filter", "amount", "gt"]),
        ),
        (
            json!({ "having": { "sum": { "name": { "gt": 1 } } } }),
            json!(["input", "having", "sum", "name"]),
        ),
        (json!({ "first": 5000 }), json!(["input", "first"])),
    ] {
        let mut input = by_stage();
        input["name"] = json!("Broken");
        for (key, value) in change.as_object().unwrap() {
            input[key] = value.clone();
        }
        let error = app.error(CREATE, json!({ "input": input })).await;
        assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{change}: {error:#}");
        assert_eq!(error["extensions"]["field"], field, "{change}: {error:#}");
    }
    let update = app
        .error(
            "mutation($id: ID!) { updateReport(id: $id, input: { groupBy: [{ field: \"NOPE\" }] }) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(update["extensions"]["field"], json!(["input", "groupBy", 0, "field"]));
    let names = app.data("{ reports { nodes { name groupBy } } }", json!({})).await;
    assert_eq!(
        names["reports"]["nodes"],
        json!([{ "name": "Pipeline by stage", "groupBy": [{ "stage": "NAME" }] }]),
        "nothing broken was saved, nothing changed"
    );

    // Reps read and run reports, do not make them, and see their own deals.
    let denied = app.graphql_as(&rep_token, CREATE, json!({ "input": by_stage() })).await;
    assert_eq!(denied["errors"][0]["extensions"]["code"], "FORBIDDEN", "{denied:#}");
    app.data(
        "mutation { updateWorkspaceSettings(input: { recordVisibility: OWNED }) { recordVisibility } }",
        json!({}),
    )
    .await;
    let theirs = app.graphql_as(&rep_token, RUN, json!({ "id": id })).await;
    assert_eq!(
        theirs["data"]["runReport"]["rows"],
        json!([{ "cells": ["Qualification", 2, "350.50", "250.50"] }]),
        "{theirs:#}"
    );
    let missing = app
        .error(RUN, json!({ "id": "00000000-0000-0000-0000-000000000000" }))
        .await;
    assert_eq!(missing["extensions"]["code"], "NOT_FOUND");

    // A report whose field is deleted later says so when it runs.
    app.data(
        r#"mutation { createCustomField(input: { object: "Opportunity", name: "region", label: "Region", type: TEXT }) { name } }"#,
        json!({}),
    )
    .await;
    let mut input = by_stage();
    input["name"] = json!("By region");
    input["groupBy"] = json!([{ "field": "REGION" }]);
    let regional = app.data(CREATE, json!({ "input": input })).await["createReport"]["id"].clone();
    app.data(
        r#"mutation { deleteCustomField(object: "Opportunity", name: "region") { name } }"#,
        json!({}),
    )
    .await;
    let stale = app.error(RUN, json!({ "id": regional })).await;
    assert_eq!(stale["extensions"]["code"], "BAD_USER_INPUT", "{stale:#}");
    assert_eq!(stale["extensions"]["field"], json!(["report", "groupBy", 0, "field"]));
    // Deleted, it cannot come back meaning nothing.
    app.data(
        "mutation($id: ID!) { deleteReport(id: $id) { id } }",
        json!({ "id": regional }),
    )
    .await;
    let restore = app
        .error(
            "mutation($id: ID!) { restoreReport(id: $id) { id } }",
            json!({ "id": regional }),
        )
        .await;
    assert_eq!(
        restore["extensions"]["field"],
        json!(["groupBy", 0, "field"]),
        "{restore:#}"
    );

    // A batch names the item; a time zone must be one PostgreSQL knows.
    let mut good = by_stage();
    good["name"] = json!("Good");
    let mut bad = by_stage();
    bad["name"] = json!("Bad");
    bad["groupBy"] = json!([{ "field": "NOPE" }]);
    let batch = app
        .error(
            "mutation($inputs: [CreateReportInput!]!) { createReports(inputs: $inputs) { id } }",
            json!({ "inputs": [good, bad] }),
        )
        .await;
    assert_eq!(
        batch["extensions"]["field"],
        json!(["inputs", 1, "groupBy", 0, "field"]),
        "{batch:#}"
    );
    let mut zoned = by_stage();
    zoned["name"] = json!("Zoned");
    zoned["timeZone"] = json!("Mars/Olympus_Mons");
    let zone = app.error(CREATE, json!({ "input": zoned })).await;
    assert_eq!(zone["extensions"]["field"], json!(["input", "timeZone"]), "{zone:#}");
    let names = app.data("{ reports { nodes { name } } }", json!({})).await;
    assert_eq!(names["reports"]["nodes"], json!([{ "name": "Pipeline by stage" }]));
}

async fn diff(app: &TestApp, name: &str) -> Value {
    app.data(
        "query($name: String!) { sandboxDiff(name: $name) { canApply changes { kind action target status sdlChanges { level message } } } }",
        json!({ "name": name }),
    )
    .await["sandboxDiff"]
        .clone()
}

#[tokio::test]
async fn a_report_built_in_a_sandbox_is_promoted_and_reverted() {
    let app = TestApp::start().await;
    let (rep, _) = app.user("rep@example.com", "SALES").await;
    deals(&app, &rep).await;
    app.data(
        "mutation { createSandbox(input: { name: \"bi\", mode: FULL }) { name } }",
        json!({}),
    )
    .await;
    // In the sandbox: a custom field, and a report grouping by it.
    app.sandbox_data(
        "bi",
        r#"mutation { createCustomField(input: { object: "Opportunity", name: "segment", label: "Segment", type: PICKLIST,
            options: [{ value: "SMB" }, { value: "ENTERPRISE" }] }) { name } }"#,
        json!({}),
    )
    .await;
    let mut input = by_stage();
    input["name"] = json!("Amounts by segment");
    input["groupBy"] = json!([{ "field": "SEGMENT" }]);
    input["orderBy"] = json!([]);
    let made = app.sandbox_data("bi", CREATE, json!({ "input": input })).await["createReport"].clone();
    let id = made["id"].clone();
    let there = app.sandbox_data("bi", RUN, json!({ "id": id })).await;
    assert_eq!(
        there["runReport"]["rows"],
        json!([{ "cells": [null, 3, "1350.50", "1000.00"] }])
    );
    // Production cannot save it: it has no segment.
    let mut here = input.clone();
    here["name"] = json!("Too early");
    let early = app.error(CREATE, json!({ "input": here })).await;
    assert_eq!(early["extensions"]["field"], json!(["input", "groupBy", 0, "field"]));

    let report = diff(&app, "bi").await;
    let kinds: Vec<(Value, Value, Value)> = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["kind"].clone(), c["action"].clone(), c["target"].clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            (json!("FIELD"), json!("ADD"), json!("Opportunity.segment")),
            (json!("REPORT"), json!("ADD"), json!("Amounts by segment"))
        ],
        "{report:#}"
    );
    assert_eq!(report["canApply"], true);

    let version = app
        .scalar("SELECT metadata_version::bigint AS n FROM crm.workspace_settings")
        .await;
    let promoted = app
        .data(
            "mutation($version: Int!) { promoteSandbox(name: \"bi\", dryRun: false, expectedProductionVersion: $version) { applied promotion { id } } }",
            json!({ "version": version }),
        )
        .await["promoteSandbox"]
        .clone();
    assert_eq!(promoted["applied"], true, "{promoted:#}");
    let answer = app.data(RUN, json!({ "id": id })).await;
    assert_eq!(
        answer["runReport"]["rows"],
        json!([{ "cells": [null, 3, "1350.50", "1000.00"] }]),
        "production runs it under the same id"
    );
    assert!(diff(&app, "bi").await["changes"].as_array().unwrap().is_empty());

    // Changed in the sandbox again: the change is one REPORT change.
    app.sandbox_data(
        "bi",
        "mutation($id: ID!) { updateReport(id: $id, input: { chart: PIE }) { chart } }",
        json!({ "id": id }),
    )
    .await;
    let changed = diff(&app, "bi").await;
    assert_eq!(changed["changes"][0]["kind"], "REPORT");
    assert_eq!(changed["changes"][0]["action"], "CHANGE");

    // The revert takes the report and the field back out.
    let revert = app
        .data(
            "mutation($id: ID!) { revertPromotion(id: $id, dryRun: false) { applied } }",
            json!({ "id": promoted["promotion"]["id"] }),
        )
        .await;
    assert_eq!(revert["revertPromotion"]["applied"], true, "{revert:#}");
    let gone = app.error(RUN, json!({ "id": id })).await;
    assert_eq!(gone["extensions"]["code"], "NOT_FOUND", "{gone:#}");
    let listed = app.data("{ reports { totalCount } }", json!({})).await;
    assert_eq!(listed["reports"]["totalCount"], 0);
}

#[tokio::test]
async fn a_report_production_cannot_answer_fails_its_promotion() {
    let app = TestApp::start().await;
    app.data(
        r#"mutation { createCustomField(input: { object: "Opportunity", name: "region", label: "Region", type: TEXT }) { name } }"#,
        json!({}),
    )
    .await;
    app.data(
        "mutation { createSandbox(input: { name: \"late\" }) { name } }",
        json!({}),
    )
    .await;
    let mut input = by_stage();
    input["name"] = json!("By region");
    input["groupBy"] = json!([{ "field": "REGION" }]);
    app.sandbox_data("late", CREATE, json!({ "input": input })).await;
    // Meanwhile production drops the field the report groups by.
    app.data(
        r#"mutation { deleteCustomField(object: "Opportunity", name: "region") { name } }"#,
        json!({}),
    )
    .await;
    let version = app
        .scalar("SELECT metadata_version::bigint AS n FROM crm.workspace_settings")
        .await;
    let dry = app
        .data(
            "mutation($version: Int!) { promoteSandbox(name: \"late\", dryRun: true, expectedProductionVersion: $version) {
               canApply changes { kind target status dataImpact { message path } } } }",
            json!({ "version": version }),
        )
        .await["promoteSandbox"]
        .clone();
    assert_eq!(dry["canApply"], false, "{dry:#}");
    let report = dry["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "REPORT")
        .cloned()
        .unwrap();
    assert_eq!(report["status"], "FAILS", "{dry:#}");
    assert_eq!(
        report["dataImpact"]["message"],
        "Opportunity cannot be grouped by REGION"
    );
    assert_eq!(
        app.data("{ reports { totalCount } }", json!({})).await["reports"]["totalCount"],
        0
    );
}

//! Leads to customers: conversion by the workspace's field mappings
//! (idempotent, all or none, duplicates first, existing records filled
//! only where empty) and rule-based scoring (in the write's transaction,
//! with decay and grades), previewed and promoted from a sandbox.

use serde_json::{json, Value};

use crate::support::TestApp;

const CONVERT: &str = "mutation($input: ConvertLeadInput!) { convertLead(input: $input) {
    lead { id status convertedAt conversionKey convertedAccount { id } convertedContact { id } convertedOpportunity { id } }
    account { id name phone }
    contact { id firstName lastName email phone title leadSource account { id } }
    opportunity { id name amount leadSource account { id } }
    contactRole { role isPrimary contact { id } opportunity { id } }
    accountCreated contactCreated opportunityCreated activitiesMoved dryRun replayed
    duplicates { object id name matchedOn } } }";

async fn count(app: &TestApp, table: &str) -> i64 {
    app.scalar(&format!(
        "SELECT count(*) AS n FROM crm.{table} WHERE deleted_at IS NULL"
    ))
    .await
}

async fn custom_field(app: &TestApp, object: &str, name: &str, kind: &str) {
    app.data(
        &format!(
            r#"mutation {{ createCustomField(input: {{ object: "{object}", name: "{name}", label: "{name}", type: {kind} }}) {{ name }} }}"#
        ),
        json!({}),
    )
    .await;
}

#[tokio::test]
async fn a_lead_converts_once_by_the_mapping_and_turns_read_only() {
    let app = TestApp::start().await;
    // A custom lead field mapped to a custom contact field.
    custom_field(&app, "Lead", "segment", "TEXT").await;
    custom_field(&app, "Contact", "segment", "TEXT").await;
    app.data(
        "mutation { createLeadFieldMapping(input: { leadField: \"segment\", targetObject: CONTACT, targetField: \"segment\" }) { id } }",
        json!({}),
    )
    .await;
    let lead = app
        .create(
            "Lead",
            json!({ "firstName": "Ada", "lastName": "Lovelace", "company": "Analytical Engines", "email": "ada@engines.example",
                    "phone": "+44 20 1234", "title": "Founder", "source": "WEB", "budget": "5000.00", "segment": "SMB", "externalId": "web-1" }),
        )
        .await;
    let call = app
        .create(
            "Activity",
            json!({ "type": "CALL", "subject": "First call", "leadId": lead }),
        )
        .await;
    let input = json!({ "leadId": lead, "opportunity": { "create": { "closeDate": "2027-03-31" } }, "idempotencyKey": "click-1" });

    // A dry run shows what would be made, and makes nothing.
    let mut dry = input.clone();
    dry["dryRun"] = json!(true);
    let rehearsed = app.data(CONVERT, json!({ "input": dry })).await["convertLead"].clone();
    assert_eq!(rehearsed["dryRun"], true);
    assert_eq!(rehearsed["account"]["name"], "Analytical Engines");
    assert_eq!(rehearsed["lead"]["status"], "CONVERTED");
    assert_eq!(count(&app, "account").await, 0, "a dry run makes nothing");
    let status = app
        .data(
            "query($id: ID!) { lead(id: $id) { status convertedAt } }",
            json!({ "id": lead }),
        )
        .await;
    assert_eq!(status["lead"], json!({ "status": "NEW", "convertedAt": null }));

    let done = app.data(CONVERT, json!({ "input": input })).await["convertLead"].clone();
    assert_eq!(done["replayed"], false);
    assert_eq!(
        (
            done["accountCreated"].clone(),
            done["contactCreated"].clone(),
            done["opportunityCreated"].clone()
        ),
        (json!(true), json!(true), json!(true))
    );
    let account = done["account"]["id"].clone();
    assert_eq!(done["account"]["name"], "Analytical Engines");
    let contact = &done["contact"];
    assert_eq!(
        (
            contact["firstName"].clone(),
            contact["lastName"].clone(),
            contact["email"].clone(),
            contact["title"].clone()
        ),
        (
            json!("Ada"),
            json!("Lovelace"),
            json!("ada@engines.example"),
            json!("Founder")
        )
    );
    assert_eq!(contact["leadSource"], "WEB");
    assert_eq!(contact["account"]["id"], account);
    let segment = app
        .data(
            "query($id: ID!) { contact(id: $id) { segment } }",
            json!({ "id": contact["id"] }),
        )
        .await;
    assert_eq!(
        segment["contact"]["segment"], "SMB",
        "the custom lead field filled the custom contact field"
    );
    let deal = &done["opportunity"];
    assert_eq!(
        deal["name"], "Analytical Engines",
        "an opportunity is named after its account by default"
    );
    assert_eq!(deal["amount"], "5000.00", "budget maps to amount");
    assert_eq!(deal["leadSource"], "WEB");
    assert_eq!(deal["account"]["id"], account);
    assert_eq!(
        done["contactRole"],
        json!({ "role": "DECISION_MAKER", "isPrimary": true, "contact": { "id": contact["id"] }, "opportunity": { "id": deal["id"] } })
    );
    assert_eq!(done["activitiesMoved"], 1);
    let moved = app
        .data(
            "query($id: ID!) { activity(id: $id) { lead { id } account { id } contact { id } opportunity { id } } }",
            json!({ "id": call }),
        )
        .await;
    assert_eq!(
        moved["activity"],
        json!({ "lead": { "id": lead }, "account": { "id": account }, "contact": { "id": contact["id"] }, "opportunity": { "id": deal["id"] } })
    );
    let converted = &done["lead"];
    assert_eq!(converted["status"], "CONVERTED");
    assert_eq!(converted["conversionKey"], "click-1");
    assert_eq!(converted["convertedAccount"]["id"], account);
    assert_eq!(converted["convertedOpportunity"]["id"], deal["id"]);

    // The same key again (a double click) answers the same conversion.
    let again = app.data(CONVERT, json!({ "input": input })).await["convertLead"].clone();
    assert_eq!(again["replayed"], true);
    assert_eq!(again["account"]["id"], account);
    assert_eq!(again["opportunity"]["id"], deal["id"]);
    assert_eq!(again["contactRole"]["isPrimary"], true);
    assert_eq!(
        (
            count(&app, "account").await,
            count(&app, "contact").await,
            count(&app, "opportunity").await
        ),
        (1, 1, 1)
    );
    // Without the key it is a second conversion: refused.
    let twice = app.error(CONVERT, json!({ "input": { "leadId": lead } })).await;
    assert_eq!(twice["extensions"]["code"], "CONFLICT", "{twice:#}");
    // The key belongs to that lead.
    let other = app.create("Lead", json!({ "lastName": "Babbage" })).await;
    let reused = app
        .error(
            CONVERT,
            json!({ "input": { "leadId": other, "idempotencyKey": "click-1" } }),
        )
        .await;
    assert_eq!(
        reused["extensions"]["field"],
        json!(["input", "idempotencyKey"]),
        "{reused:#}"
    );

    // A converted lead is read-only, its conversion fields always were.
    let update = "mutation($id: ID!) { updateLead(id: $id, input: { title: \"CEO\" }) { id } }";
    let refused = app.error(update, json!({ "id": lead })).await;
    assert_eq!(refused["extensions"]["code"], "CONFLICT", "{refused:#}");
    let system = app
        .error(
            "mutation($id: ID!) { updateLead(id: $id, input: { convertedAt: \"2026-01-01T00:00:00Z\" }) { id } }",
            json!({ "id": other }),
        )
        .await;
    assert_eq!(system["extensions"]["code"], "BAD_USER_INPUT", "{system:#}");
    // Deleting and restoring it is fine; bringing it back changed is not.
    app.data(
        "mutation($id: ID!) { deleteLead(id: $id) { id } }",
        json!({ "id": lead }),
    )
    .await;
    let upsert = "mutation { upsertLead(externalId: \"web-1\", input: { lastName: \"Changed\" }) { id } }";
    let changed_back = app.error(upsert, json!({})).await;
    assert_eq!(changed_back["extensions"]["code"], "CONFLICT", "{changed_back:#}");
    let restored = app
        .data(
            "mutation($id: ID!) { restoreLead(id: $id) { lastName status } }",
            json!({ "id": lead }),
        )
        .await;
    assert_eq!(
        restored["restoreLead"],
        json!({ "lastName": "Lovelace", "status": "CONVERTED" })
    );
    let audited = app
        .scalar(&format!(
            "SELECT count(*) AS n FROM crm_system.audit_log WHERE object = 'Lead' AND record_id = '{}' AND action = 'UPDATE'",
            lead.trim_matches('"')
        ))
        .await;
    assert_eq!(audited, 1, "the conversion is in the audit log");
}

#[tokio::test]
async fn conversion_looks_for_duplicates_first_and_fills_only_empty_fields_of_existing_records() {
    let app = TestApp::start().await;
    let account = app.create("Account", json!({ "name": "Globex" })).await;
    let contact = app
        .create(
            "Contact",
            json!({ "lastName": "Hank", "email": "hank@globex.example", "title": "CTO" }),
        )
        .await;
    let lead = app
        .create(
            "Lead",
            json!({ "firstName": "Hank", "lastName": "Scorpio", "company": " globex ", "email": "HANK@globex.example",
                    "title": "VP", "phone": "+1 555 0100" }),
        )
        .await;

    // Asked to create, it finds the account (name, case and spaces aside)
    // and the contact (email) first, and makes nothing.
    let refused = app.error(CONVERT, json!({ "input": { "leadId": lead } })).await;
    assert_eq!(refused["extensions"]["code"], "DUPLICATE", "{refused:#}");
    let found: Vec<(Value, Value)> = refused["extensions"]["duplicates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["object"].clone(), d["id"].clone()))
        .collect();
    assert_eq!(
        found,
        [(json!("Account"), json!(account)), (json!("Contact"), json!(contact))]
    );
    assert_eq!((count(&app, "account").await, count(&app, "contact").await), (1, 1));
    let dry = app
        .data(CONVERT, json!({ "input": { "leadId": lead, "dryRun": true } }))
        .await["convertLead"]
        .clone();
    assert_eq!(dry["duplicates"][1]["matchedOn"], json!(["email"]));

    // Into the existing records: only their empty fields are filled.
    let done = app
        .data(
            CONVERT,
            json!({ "input": { "leadId": lead, "account": { "id": account }, "contact": { "id": contact } } }),
        )
        .await["convertLead"]
        .clone();
    assert_eq!(
        (done["accountCreated"].clone(), done["contactCreated"].clone()),
        (json!(false), json!(false))
    );
    assert_eq!(done["account"]["name"], "Globex", "a name it has stays");
    let c = &done["contact"];
    assert_eq!(c["title"], "CTO", "a title it has stays");
    assert_eq!(c["lastName"], "Hank");
    assert_eq!(c["firstName"], "Hank", "an empty first name is filled");
    assert_eq!(c["phone"], "+1 555 0100", "an empty phone is filled");
    assert_eq!(c["account"]["id"], account, "the contact joins the account");
    assert_eq!(done["opportunity"], Value::Null);

    // Allowed, a duplicate is made.
    let second = app
        .create(
            "Lead",
            json!({ "lastName": "Hank", "company": "Globex", "email": "hank@globex.example" }),
        )
        .await;
    let allowed = app
        .data(
            CONVERT,
            json!({ "input": { "leadId": second, "allowDuplicates": true } }),
        )
        .await["convertLead"]
        .clone();
    assert_eq!(allowed["accountCreated"], true);
    assert_eq!(allowed["duplicates"].as_array().unwrap().len(), 2);
    assert_eq!(count(&app, "account").await, 2);

    // A mapping must fit: a decimal cannot fill a phone number.
    let misfit = app
        .error(
            "mutation { createLeadFieldMapping(input: { leadField: \"budget\", targetObject: CONTACT, targetField: \"mobile\" }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        misfit["extensions"]["field"],
        json!(["input", "targetField"]),
        "{misfit:#}"
    );
}

#[tokio::test]
async fn a_batch_of_conversions_is_all_or_none() {
    let app = TestApp::start().await;
    let a = app
        .create("Lead", json!({ "lastName": "One", "company": "First Co" }))
        .await;
    let b = app
        .create("Lead", json!({ "lastName": "Two", "company": "Second Co" }))
        .await;
    let batch = "mutation($inputs: [ConvertLeadInput!]!) { convertLeads(inputs: $inputs) { account { name } lead { status } } }";
    let missing = "00000000-0000-4000-8000-000000000000";
    let failed = app
        .error(
            batch,
            json!({ "inputs": [{ "leadId": a }, { "leadId": b, "account": { "id": missing } }] }),
        )
        .await;
    assert_eq!(
        failed["extensions"]["field"],
        json!(["inputs", 1, "account", "id"]),
        "{failed:#}"
    );
    assert_eq!(count(&app, "account").await, 0, "the first conversion went back too");
    let (rep, _) = app.user("rep@example.com", "SALES").await;
    let batch = "mutation($inputs: [ConvertLeadInput!]!) { convertLeads(inputs: $inputs) {
        account { name owner { email } } contact { owner { email } } lead { status } } }";
    let done = app
        .data(
            batch,
            json!({ "inputs": [{ "leadId": a }, { "leadId": b, "ownerId": rep }] }),
        )
        .await["convertLeads"]
        .clone();
    assert_eq!(done[0]["account"]["name"], "First Co");
    assert_eq!(
        done[0]["account"]["owner"]["email"], "admin@crm.local",
        "the lead's owner by default"
    );
    assert_eq!(done[1]["lead"]["status"], "CONVERTED");
    assert_eq!(
        done[1]["account"]["owner"]["email"], "rep@example.com",
        "the owner asked for"
    );
    assert_eq!(done[1]["contact"]["owner"]["email"], "rep@example.com");
}

const RULE: &str = "mutation($input: CreateScoringRuleInput!) { createScoringRule(input: $input) { id } }";
const SCORE: &str = "query($id: ID!) { lead(id: $id) { score grade } }";

async fn score(app: &TestApp, lead: &str) -> Value {
    app.data(SCORE, json!({ "id": lead })).await["lead"].clone()
}

#[tokio::test]
async fn rules_score_leads_in_the_writes_transaction_and_points_decay() {
    let app = TestApp::start().await;
    custom_field(&app, "Lead", "employees", "INTEGER").await;
    let lead = app
        .create(
            "Lead",
            json!({ "lastName": "Big", "budget": "20000", "employees": 500 }),
        )
        .await;
    assert_eq!(score(&app, &lead).await, json!({ "score": 0, "grade": null }));
    // Until its first rule, a workspace keeps the scores it has (typed in
    // before scores were the server's).
    app.sql("UPDATE crm.lead SET score = 42").await;
    app.data("mutation { rescoreLeads { leads changed } }", json!({})).await;
    assert_eq!(score(&app, &lead).await["score"], 42);
    for rule in [
        json!({ "name": "Big budget", "condition": { "budget": { "gte": "10000" } }, "points": 30 }),
        json!({ "name": "Large company", "condition": { "employees": { "gte": 100 } }, "points": 25 }),
        json!({ "name": "Emails", "activityType": "EMAIL", "points": 10, "maxPoints": 30, "decayPoints": 5, "decayEveryDays": 30 }),
    ] {
        app.data(RULE, json!({ "input": rule })).await;
    }
    assert_eq!(
        score(&app, &lead).await,
        json!({ "score": 55, "grade": "MQL" }),
        "saving rules rescored"
    );

    // An activity scores its lead in the same transaction.
    let email = "mutation($lead: ID!, $at: DateTime) { createActivity(input: { type: EMAIL, subject: \"Hi\", leadId: $lead, completedAt: $at }) { id } }";
    app.data(email, json!({ "lead": lead })).await;
    assert_eq!(score(&app, &lead).await["score"], 65);
    for _ in 0..3 {
        app.data(email, json!({ "lead": lead })).await;
    }
    assert_eq!(score(&app, &lead).await["score"], 85, "emails give at most 30");
    // A lead write answers its new score.
    let changed = app
        .data(
            "mutation($id: ID!) { updateLead(id: $id, input: { budget: \"100\" }) { score grade } }",
            json!({ "id": lead }),
        )
        .await;
    assert_eq!(changed["updateLead"], json!({ "score": 55, "grade": "MQL" }));

    // Old emails count less: 10 points lose 5 every 30 days.
    let quiet = app.create("Lead", json!({ "lastName": "Quiet" })).await;
    let days_ago = |days: i64| (chrono::Utc::now() - chrono::Duration::days(days)).to_rfc3339();
    app.data(email, json!({ "lead": quiet, "at": days_ago(35) })).await;
    app.data(email, json!({ "lead": quiet, "at": days_ago(65) })).await;
    assert_eq!(score(&app, &quiet).await["score"], 5);
    // Time passes (the emails were 40 days older): the job takes it down.
    app.sql("UPDATE crm.activity SET completed_at = coalesce(completed_at, created_at) - interval '40 days'")
        .await;
    let rescored = crm::leads::decay::run(&app.app.db, Some("production"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rescored[0].leads, 2);
    assert_eq!(score(&app, &quiet).await["score"], 0);
    assert_eq!(
        score(&app, &lead).await,
        json!({ "score": 45, "grade": null }),
        "the big lead's emails faded too: 25 from employees, 4 × 5 from emails"
    );

    // Scores sort and filter like any field.
    let listed = app
        .data(
            "{ leads(orderBy: [{ field: SCORE, direction: DESC }], filter: { score: { gt: 0 } }) { nodes { lastName score } } }",
            json!({}),
        )
        .await;
    assert_eq!(listed["leads"]["nodes"], json!([{ "lastName": "Big", "score": 45 }]));

    // A rule must mean something.
    let unknown = app
        .error(
            RULE,
            json!({ "input": { "name": "Bad", "condition": { "shoeSize": { "eq": 3 } }, "points": 1 } }),
        )
        .await;
    assert_eq!(unknown["extensions"]["code"], "BAD_USER_INPUT", "{unknown:#}");
    assert_eq!(
        unknown["extensions"]["field"].as_array().unwrap()[..2],
        [json!("input"), json!("condition")]
    );
    let circular = app
        .error(
            RULE,
            json!({ "input": { "name": "Loop", "condition": { "or": [{ "score": { "lt": 10 } }] }, "points": 20 } }),
        )
        .await;
    assert_eq!(
        circular["extensions"]["field"],
        json!(["input", "condition"]),
        "{circular:#}"
    );
    let fax = app
        .error(
            RULE,
            json!({ "input": { "name": "Fax", "activityType": "FAX", "points": 1 } }),
        )
        .await;
    assert_eq!(fax["extensions"]["field"], json!(["input", "activityType"]), "{fax:#}");
    // The score is the server's.
    let typed = app
        .error(
            "mutation { createLead(input: { lastName: \"X\", score: 99 }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(typed["extensions"]["code"], "BAD_USER_INPUT");

    // Deleting a rule takes its points away at once.
    let large = app
        .data(
            "{ scoringRules(filter: { name: { eq: \"Large company\" } }) { nodes { id } } }",
            json!({}),
        )
        .await["scoringRules"]["nodes"][0]["id"]
        .clone();
    app.data(
        "mutation($id: ID!) { deleteScoringRule(id: $id) { id } }",
        json!({ "id": large }),
    )
    .await;
    assert_eq!(
        score(&app, &lead).await,
        json!({ "score": 20, "grade": null }),
        "the emails' points stay"
    );
}

#[tokio::test]
async fn a_rule_is_previewed_in_a_sandbox_promoted_and_reverted() {
    let app = TestApp::start().await;
    let mut leads = Vec::new();
    for (name, budget) in [("Small", "500"), ("Mid", "15000"), ("Large", "90000")] {
        leads.push(app.create("Lead", json!({ "lastName": name, "budget": budget })).await);
    }
    app.data(
        "mutation { createSandbox(input: { name: \"scoring\", mode: FULL }) { name } }",
        json!({}),
    )
    .await;
    let rule = json!({ "name": "Budget", "condition": { "budget": { "gte": "10000" } }, "points": 60 });
    let preview = app
        .sandbox_data(
            "scoring",
            "query($add: [CreateScoringRuleInput!]) { previewScoringRules(add: $add) {
                leads changed min max average buckets { from to leads } grades { grade minScore leads leadsNow } } }",
            json!({ "add": [rule] }),
        )
        .await["previewScoringRules"]
        .clone();
    assert_eq!(preview["leads"], 3);
    assert_eq!(preview["changed"], 2);
    assert_eq!((preview["min"].clone(), preview["max"].clone()), (json!(0), json!(60)));
    assert_eq!(preview["average"], 40.0);
    let bars: i64 = preview["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["leads"].as_i64().unwrap())
        .sum();
    assert_eq!(bars, 3);
    assert_eq!(
        preview["grades"],
        json!([
            { "grade": "SQL", "minScore": 100, "leads": 0, "leadsNow": 0 },
            { "grade": "MQL", "minScore": 50, "leads": 2, "leadsNow": 0 },
            { "grade": null, "minScore": null, "leads": 1, "leadsNow": 3 }
        ])
    );
    assert_eq!(score(&app, &leads[1]).await["score"], 0, "a preview saves nothing");

    // Saved in the sandbox, with SQL lowered to 60 and a mapping.
    app.sandbox_data("scoring", RULE, json!({ "input": rule })).await;
    let sql_grade = app
        .sandbox_data(
            "scoring",
            "{ leadGrades(filter: { name: { eq: \"SQL\" } }) { nodes { id } } }",
            json!({}),
        )
        .await["leadGrades"]["nodes"][0]["id"]
        .clone();
    app.sandbox_data(
        "scoring",
        "mutation($id: ID!) { updateLeadGrade(id: $id, input: { minScore: 60 }) { id } }",
        json!({ "id": sql_grade }),
    )
    .await;
    app.sandbox_data(
        "scoring",
        "mutation { createLeadFieldMapping(input: { leadField: \"purchaseTimeline\", targetObject: OPPORTUNITY, targetField: \"nextStep\" }) { id } }",
        json!({}),
    )
    .await;
    let there = app.sandbox_data("scoring", SCORE, json!({ "id": leads[1] })).await;
    assert_eq!(there["lead"], json!({ "score": 60, "grade": "SQL" }));
    assert_eq!(score(&app, &leads[1]).await["score"], 0, "production is untouched");
    // Meanwhile production names the leads below every threshold.
    app.data(
        "mutation { createLeadGrade(input: { name: \"Cold\", minScore: 0 }) { id } }",
        json!({}),
    )
    .await;

    let diff = app
        .data(
            "query { sandboxDiff(name: \"scoring\") { canApply changes { kind action target } } }",
            json!({}),
        )
        .await["sandboxDiff"]
        .clone();
    assert_eq!(diff["canApply"], true, "{diff:#}");
    let kinds: Vec<(Value, Value, Value)> = diff["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["kind"].clone(), c["action"].clone(), c["target"].clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            (json!("LEAD_FIELD_MAPPING"), json!("ADD"), json!("Opportunity.nextStep")),
            (json!("SCORING_RULE"), json!("ADD"), json!("Budget")),
            (json!("LEAD_GRADE"), json!("CHANGE"), json!("SQL")),
        ]
    );

    let version = app
        .scalar("SELECT metadata_version::bigint AS n FROM crm.workspace_settings")
        .await;
    let rehearsed = app
        .data(
            "mutation($version: Int!) { promoteSandbox(name: \"scoring\", dryRun: true, expectedProductionVersion: $version) {
                applied changes { kind status } } }",
            json!({ "version": version }),
        )
        .await["promoteSandbox"]
        .clone();
    assert_eq!(rehearsed["applied"], false);
    assert!(
        rehearsed["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "READY"),
        "{rehearsed:#}"
    );
    assert_eq!(score(&app, &leads[1]).await["score"], 0, "a dry run changes no score");
    let promoted = app
        .data(
            "mutation($version: Int!) { promoteSandbox(name: \"scoring\", dryRun: false, expectedProductionVersion: $version) { applied promotion { id } } }",
            json!({ "version": version }),
        )
        .await["promoteSandbox"]
        .clone();
    assert_eq!(promoted["applied"], true, "{promoted:#}");
    assert_eq!(
        score(&app, &leads[1]).await,
        json!({ "score": 60, "grade": "SQL" }),
        "promotion rescored production"
    );
    assert_eq!(score(&app, &leads[0]).await, json!({ "score": 0, "grade": "Cold" }));
    // The sandbox, rebased on production, has the new grade and its leads follow.
    let rebased = app.sandbox_data("scoring", SCORE, json!({ "id": leads[0] })).await;
    assert_eq!(rebased["lead"], json!({ "score": 0, "grade": "Cold" }));

    let reverted = app
        .data(
            "mutation($id: ID!) { revertPromotion(id: $id, dryRun: false) { applied } }",
            json!({ "id": promoted["promotion"]["id"] }),
        )
        .await;
    assert_eq!(reverted["revertPromotion"]["applied"], true, "{reverted:#}");
    assert_eq!(
        score(&app, &leads[2]).await,
        json!({ "score": 0, "grade": "Cold" }),
        "the revert rescored too"
    );
    let left = app
        .data(
            "{ scoringRules { totalCount } leadFieldMappings { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(left["scoringRules"]["totalCount"], 0);
    assert_eq!(left["leadFieldMappings"]["totalCount"], 9, "the preset mappings");
}

#[tokio::test]
async fn under_owned_visibility_a_rep_converts_only_into_what_they_see() {
    let app = TestApp::start().await;
    app.data(
        "mutation { updateWorkspaceSettings(input: { recordVisibility: OWNED }) { recordVisibility } }",
        json!({}),
    )
    .await;
    let (rep, token) = app.user("rep@example.com", "SALES").await;
    let (other, _) = app.user("other@example.com", "SALES").await;
    // The admin's account, which the rep cannot see, has the lead's company.
    let hidden = app.create("Account", json!({ "name": "Hidden Co" })).await;
    let lead = app
        .create(
            "Lead",
            json!({ "lastName": "Lead", "company": "Hidden Co", "ownerId": rep }),
        )
        .await;
    let mutation = "mutation($input: ConvertLeadInput!) { convertLead(input: $input) { account { id name } replayed duplicates { id } } }";
    let convert = |input: Value| app.graphql_as(&token, mutation, json!({ "input": input }));
    // Into a record they cannot see: not found, as if it did not exist.
    let into_hidden = convert(json!({ "leadId": lead, "account": { "id": hidden } })).await;
    assert_eq!(
        into_hidden["errors"][0]["extensions"]["field"],
        json!(["input", "account", "id"]),
        "{into_hidden:#}"
    );
    // For someone else: refused, they could not tie the records together.
    let for_other = convert(json!({ "leadId": lead, "ownerId": other })).await;
    assert_eq!(
        for_other["errors"][0]["extensions"]["field"],
        json!(["input", "ownerId"]),
        "{for_other:#}"
    );
    // The hidden account is no duplicate to them: a new one is made.
    let done = convert(json!({ "leadId": lead, "idempotencyKey": "k" })).await;
    assert_eq!(done["data"]["convertLead"]["duplicates"], json!([]), "{done:#}");
    let made = done["data"]["convertLead"]["account"]["id"].clone();
    assert_ne!(made, json!(hidden));
    // Given to someone else, a replay no longer shows the records.
    app.data(
        "mutation($id: ID!, $owner: ID!) { updateAccount(id: $id, input: { ownerId: $owner }) { id } }",
        json!({ "id": made, "owner": other }),
    )
    .await;
    let replay = convert(json!({ "leadId": lead, "idempotencyKey": "k" })).await;
    assert_eq!(replay["errors"][0]["extensions"]["code"], "CONFLICT", "{replay:#}");
    assert!(!replay.to_string().contains("Hidden Co"));
}

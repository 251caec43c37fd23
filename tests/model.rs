//! The sales model: pipelines and stages, opportunity stage rules, account
//! hierarchy, contact roles, activities, leads, users and ownership.

use serde_json::json;

use crate::support::TestApp;

const UPDATE_OPPORTUNITY: &str = "mutation($id: ID!, $input: UpdateOpportunityInput!) {
    updateOpportunity(id: $id, input: $input) { probability forecastCategory isClosed isWon expectedRevenue stage { name } } }";

async fn stage_id(app: &TestApp, name: &str) -> String {
    let data = app
        .data(
            "query($name: String!) { stages(filter: { name: { eq: $name } }) { nodes { id } } }",
            json!({ "name": name }),
        )
        .await;
    data["stages"]["nodes"][0]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_default_sales_pipeline_has_the_classic_stages() {
    let app = TestApp::start().await;
    let data = app
        .data(
            "{ pipelines { nodes { name isDefault stages { nodes { name position probability forecastCategory isClosed isWon } } } } }",
            json!({}),
        )
        .await;
    let pipeline = &data["pipelines"]["nodes"][0];
    assert_eq!(pipeline["name"], "Sales");
    assert_eq!(pipeline["isDefault"], true);
    let stages: Vec<(String, i64)> = pipeline["stages"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["probability"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("Prospecting", 10),
        ("Qualification", 20),
        ("Needs Analysis", 30),
        ("Value Proposition", 40),
        ("Identify Decision Makers", 50),
        ("Proposal/Price Quote", 60),
        ("Negotiation/Review", 80),
        ("Closed Won", 100),
        ("Closed Lost", 0),
    ];
    assert_eq!(stages, expected.map(|(n, p)| (n.to_owned(), p)));
    let won = &pipeline["stages"]["nodes"][7];
    assert_eq!(
        (
            won["isClosed"].clone(),
            won["isWon"].clone(),
            won["forecastCategory"].clone()
        ),
        (json!(true), json!(true), json!("CLOSED"))
    );
}

#[tokio::test]
async fn opportunities_follow_their_stage() {
    let app = TestApp::start().await;
    let created = app
        .data(
            r#"mutation { createOpportunity(input: { name: "Deal", amount: "50000.00" }) {
                id pipeline { name } stage { name } probability forecastCategory expectedRevenue isClosed isWon } }"#,
            json!({}),
        )
        .await["createOpportunity"]
        .clone();
    assert_eq!(created["pipeline"]["name"], "Sales");
    assert_eq!(created["stage"]["name"], "Prospecting");
    assert_eq!(created["probability"], 10);
    assert_eq!(created["forecastCategory"], "PIPELINE");
    assert_eq!(created["expectedRevenue"], "5000.00");
    let id = created["id"].as_str().unwrap().to_owned();

    // A new stage brings its probability and category along …
    let negotiation = stage_id(&app, "Negotiation/Review").await;
    let moved = app
        .data(
            UPDATE_OPPORTUNITY,
            json!({ "id": id, "input": { "stageId": negotiation } }),
        )
        .await;
    assert_eq!(
        moved["updateOpportunity"],
        json!({ "probability": 80, "forecastCategory": "COMMIT", "isClosed": false, "isWon": false, "expectedRevenue": "40000.00", "stage": { "name": "Negotiation/Review" } })
    );
    // … unless the same change sets them.
    let won = stage_id(&app, "Closed Won").await;
    let closed = app
        .data(
            UPDATE_OPPORTUNITY,
            json!({ "id": id, "input": { "stageId": won, "probability": 95 } }),
        )
        .await;
    assert_eq!(closed["updateOpportunity"]["probability"], 95);
    assert_eq!(closed["updateOpportunity"]["isClosed"], true);
    assert_eq!(closed["updateOpportunity"]["isWon"], true);
    assert_eq!(closed["updateOpportunity"]["forecastCategory"], "CLOSED");
    // isClosed and isWon are the stage's to say.
    let error = app
        .error(UPDATE_OPPORTUNITY, json!({ "id": id, "input": { "isWon": false } }))
        .await;
    assert_eq!(error["extensions"]["field"], json!(["input", "isWon"]));

    // A stage of another pipeline is refused, and nothing is created.
    let renewals = app
        .data(
            r#"mutation { createPipeline(input: { name: "Renewals" }) { id } }"#,
            json!({}),
        )
        .await["createPipeline"]["id"]
        .clone();
    let renewal_stage = app
        .data(
            "mutation($p: ID!) { createStage(input: { pipelineId: $p, name: \"Up for renewal\", position: 1, probability: 70, forecastCategory: COMMIT }) { id } }",
            json!({ "p": renewals }),
        )
        .await["createStage"]["id"]
        .clone();
    let sales = app
        .data(
            "{ pipelines(filter: { isDefault: { eq: true } }) { nodes { id } } }",
            json!({}),
        )
        .await["pipelines"]["nodes"][0]["id"]
        .clone();
    let error = app
        .error(
            "mutation($p: ID!, $s: ID!) { createOpportunity(input: { name: \"Mixed\", pipelineId: $p, stageId: $s }) { id } }",
            json!({ "p": sales, "s": renewal_stage }),
        )
        .await;
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(error["extensions"]["field"], json!(["input", "stageId"]));
    assert!(
        error["message"].as_str().unwrap().contains("another pipeline"),
        "{error}"
    );
    // Naming only the stage puts the deal in the stage's pipeline.
    let renewal = app
        .data(
            "mutation($s: ID!) { createOpportunity(input: { name: \"Renewal\", stageId: $s }) { pipeline { name } probability } }",
            json!({ "s": renewal_stage }),
        )
        .await;
    assert_eq!(
        renewal["createOpportunity"],
        json!({ "pipeline": { "name": "Renewals" }, "probability": 70 })
    );
    let count = app.data("{ opportunities { totalCount } }", json!({})).await;
    assert_eq!(count["opportunities"]["totalCount"], 2);

    // Closing a stage closes the deals in it.
    app.data(
        "mutation($id: ID!) { updateStage(id: $id, input: { isClosed: true }) { id } }",
        json!({ "id": renewal_stage }),
    )
    .await;
    let closed = app
        .data(
            "{ opportunities(filter: { name: { eq: \"Renewal\" } }) { nodes { isClosed } } }",
            json!({}),
        )
        .await;
    assert_eq!(closed["opportunities"]["nodes"][0]["isClosed"], true);
    // And a stage stays in its pipeline.
    let error = app
        .error(
            "mutation($id: ID!, $p: ID!) { updateStage(id: $id, input: { pipelineId: $p }) { id } }",
            json!({ "id": renewal_stage, "p": sales }),
        )
        .await;
    assert_eq!(error["extensions"]["field"], json!(["input", "pipelineId"]));
}

#[tokio::test]
async fn accounts_form_a_hierarchy_without_cycles() {
    let app = TestApp::start().await;
    let group = app.create("Account", json!({ "name": "Acme Group" })).await;
    let europe = app
        .create("Account", json!({ "name": "Acme Europe", "parentAccountId": group }))
        .await;
    let france = app
        .create("Account", json!({ "name": "Acme France", "parentAccountId": europe }))
        .await;
    let tree = app
        .data(
            "query($id: ID!) { account(id: $id) { childAccounts { nodes { name childAccounts { nodes { name parentAccount { name } } } } } } }",
            json!({ "id": group }),
        )
        .await;
    assert_eq!(
        tree["account"]["childAccounts"]["nodes"][0],
        json!({ "name": "Acme Europe", "childAccounts": { "nodes": [{ "name": "Acme France", "parentAccount": { "name": "Acme Europe" } }] } })
    );
    for parent in [&france, &group] {
        let error = app
            .error(
                "mutation($id: ID!, $p: ID!) { updateAccount(id: $id, input: { parentAccountId: $p }) { id } }",
                json!({ "id": group, "p": parent }),
            )
            .await;
        assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{error}");
        assert_eq!(error["extensions"]["field"], json!(["input", "parentAccountId"]));
    }
    let filtered = app
        .data("{ accounts(filter: { parentAccount: { parentAccount: { name: { eq: \"Acme Group\" } } } }) { nodes { name } } }", json!({}))
        .await;
    assert_eq!(filtered["accounts"]["nodes"], json!([{ "name": "Acme France" }]));
}

#[tokio::test]
async fn contact_roles_activities_leads_and_owners() {
    let app = TestApp::start().await;
    let user = app
        .data(
            r#"mutation { createUser(input: { name: "Sam Seller", email: "sam@example.com" }) { id role active } }"#,
            json!({}),
        )
        .await["createUser"]
        .clone();
    assert_eq!(
        (user["role"].clone(), user["active"].clone()),
        (json!("SALES"), json!(true))
    );
    let sam = user["id"].as_str().unwrap();
    let account = app
        .create(
            "Account",
            json!({ "name": "Initech", "ownerId": sam, "externalId": "crm-1" }),
        )
        .await;
    let ada = app
        .create("Contact", json!({ "lastName": "Lovelace", "accountId": account }))
        .await;
    let bob = app
        .create("Contact", json!({ "lastName": "Babbage", "accountId": account }))
        .await;
    let deal = app
        .create(
            "Opportunity",
            json!({ "name": "Seats", "accountId": account, "ownerId": sam }),
        )
        .await;
    app.create(
        "ContactRole",
        json!({ "opportunityId": deal, "contactId": ada, "role": "DECISION_MAKER", "isPrimary": true }),
    )
    .await;
    app.create(
        "ContactRole",
        json!({ "opportunityId": deal, "contactId": bob, "role": "CHAMPION" }),
    )
    .await;
    let second_primary = app
        .error(
            "mutation($o: ID!, $c: ID!) { createContactRole(input: { opportunityId: $o, contactId: $c, role: INFLUENCER, isPrimary: true }) { id } }",
            json!({ "o": deal, "c": bob }),
        )
        .await;
    assert_eq!(second_primary["extensions"]["code"], "CONFLICT");
    app.create("Activity", json!({ "type": "CALL", "subject": "Discovery call", "accountId": account, "opportunityId": deal, "contactId": ada })).await;
    app.create(
        "Activity",
        json!({ "type": "TASK", "subject": "Send proposal", "opportunityId": deal, "priority": "HIGH" }),
    )
    .await;
    let lead = app
        .create(
            "Lead",
            json!({ "lastName": "Prospect", "company": "Initech", "budget": "20000.00", "authority": "CFO", "need": "Faster quotes", "purchaseTimeline": "Q1" }),
        )
        .await;
    app.data(
        "mutation($lead: ID!, $account: ID!, $contact: ID!) { convertLead(input: { leadId: $lead, account: { id: $account }, contact: { id: $contact } }) { lead { id } } }",
        json!({ "lead": lead, "account": account, "contact": ada }),
    )
    .await;

    let view = app
        .data(
            "query($id: ID!) { account(id: $id) { externalId owner { name ownedAccounts { totalCount } } createdBy { name }
                opportunities { nodes { owner { email } contactRoles(orderBy: [{ field: ROLE }]) { nodes { role isPrimary contact { lastName } } }
                  activities(orderBy: [{ field: SUBJECT }]) { nodes { type subject status priority } } } }
                activities { totalCount } convertedLeads { nodes { status company } }
                contacts(filter: { opportunityRoles: { some: { isPrimary: { eq: true } } } }) { nodes { lastName } } } }",
            json!({ "id": account }),
        )
        .await["account"]
        .clone();
    assert_eq!(view["externalId"], "crm-1");
    assert_eq!(
        view["owner"],
        json!({ "name": "Sam Seller", "ownedAccounts": { "totalCount": 1 } })
    );
    assert_eq!(
        view["createdBy"],
        json!({ "name": "Administrator" }),
        "whoever's token created it"
    );
    let opportunity = &view["opportunities"]["nodes"][0];
    assert_eq!(opportunity["owner"]["email"], "sam@example.com");
    assert_eq!(
        opportunity["contactRoles"]["nodes"],
        json!([{ "role": "CHAMPION", "isPrimary": false, "contact": { "lastName": "Babbage" } },
               { "role": "DECISION_MAKER", "isPrimary": true, "contact": { "lastName": "Lovelace" } }])
    );
    assert_eq!(
        opportunity["activities"]["nodes"],
        json!([{ "type": "CALL", "subject": "Discovery call", "status": "OPEN", "priority": "NORMAL" },
               { "type": "TASK", "subject": "Send proposal", "status": "OPEN", "priority": "HIGH" }])
    );
    assert_eq!(view["activities"]["totalCount"], 1);
    assert_eq!(
        view["convertedLeads"]["nodes"],
        json!([{ "status": "CONVERTED", "company": "Initech" }])
    );
    assert_eq!(view["contacts"]["nodes"], json!([{ "lastName": "Lovelace" }]));
    let lead = app
        .data(
            "query($id: ID!) { lead(id: $id) { budget authority need purchaseTimeline } }",
            json!({ "id": lead }),
        )
        .await;
    assert_eq!(
        lead["lead"],
        json!({ "budget": "20000.00", "authority": "CFO", "need": "Faster quotes", "purchaseTimeline": "Q1" })
    );

    // External ids are unique per object; createdBy is the server's to set.
    let duplicate = app
        .error(
            r#"mutation { createAccount(input: { name: "Other", externalId: "crm-1" }) { id } }"#,
            json!({}),
        )
        .await;
    assert_eq!(duplicate["extensions"]["code"], "CONFLICT");
    let created_by = app
        .error(
            "mutation($u: ID!) { createAccount(input: { name: \"X\", createdById: $u }) { id } }",
            json!({ "u": sam }),
        )
        .await;
    assert_eq!(created_by["extensions"]["code"], "BAD_USER_INPUT");
    let unknown_owner = app
        .error(r#"mutation { createLead(input: { lastName: "X", ownerId: "00000000-0000-4000-8000-000000000000" }) { id } }"#, json!({}))
        .await;
    assert_eq!(unknown_owner["extensions"]["field"], json!(["input", "ownerId"]));
}

#[tokio::test]
async fn the_benchmark_data_set_is_deterministic_and_consistent() {
    let app = TestApp::start().await;
    let report = crm::seed::bench(&app.app, 1).await.unwrap();
    assert_eq!(
        (
            report.accounts,
            report.contacts,
            report.opportunities,
            report.activities
        ),
        (20_000, 100_000, 50_000, 200_000)
    );
    let counts = app
        .data("{ accounts { totalCount } contacts { totalCount } opportunities { totalCount } activities { totalCount } }", json!({}))
        .await;
    assert_eq!(
        counts,
        json!({ "accounts": { "totalCount": 20000 }, "contacts": { "totalCount": 100000 },
                "opportunities": { "totalCount": 50000 }, "activities": { "totalCount": 200000 } })
    );
    // Account 1 has the id md5('account1') and five contacts; its deals have
    // activities of their own account.
    let account = app
        .data(
            r#"{ accounts(first: 1, filter: { name: { eq: "Account 00001" } }) { nodes { id contacts { totalCount }
                 opportunities { totalCount nodes { primaryContact { account { name } } activities { totalCount nodes { account { name } } } } } } } }"#,
            json!({}),
        )
        .await["accounts"]["nodes"][0]
        .clone();
    assert_eq!(account["id"], md5_uuid("account1"));
    assert_eq!(account["contacts"]["totalCount"], 5);
    assert_eq!(account["opportunities"]["totalCount"], 3);
    let deal = &account["opportunities"]["nodes"][0];
    assert_eq!(deal["primaryContact"]["account"]["name"], "Account 00001");
    assert_eq!(deal["activities"]["totalCount"], 4);
    assert_eq!(deal["activities"]["nodes"][0]["account"]["name"], "Account 00001");
    // Every stage of the default pipeline has deals.
    let stages = app
        .data(
            "{ stages { nodes { opportunities(first: 0) { totalCount } } } }",
            json!({}),
        )
        .await;
    for stage in stages["stages"]["nodes"].as_array().unwrap() {
        assert!(
            stage["opportunities"]["totalCount"].as_i64().unwrap() > 5000,
            "{stages}"
        );
    }
    // Every deal walked the stages before its own, and sits in its last.
    let entries = app
        .scalar("SELECT count(*) AS n FROM crm.opportunity_stage_entry")
        .await;
    assert!(entries > 150_000, "{entries} stays");
    let astray = app
        .scalar(
            "SELECT count(*) AS n FROM crm.opportunity o JOIN crm.opportunity_stage_entry e
             ON e.opportunity_id = o.id AND e.left_at IS NULL WHERE e.stage_id <> o.stage_id",
        )
        .await;
    assert_eq!(astray, 0);
    let history = app
        .scalar("SELECT count(*) AS n FROM crm.opportunity_field_change WHERE field = 'STAGE'")
        .await;
    assert_eq!(history, entries, "one history row per stay");
    // Half the accounts were customers in 2025; one in twenty churned in 2026.
    let churn = app
        .data(
            "{ churnRate(period: YEAR, from: \"2026-01-01\", to: \"2027-01-01\") { customersAtStart lost churnRate } }",
            json!({}),
        )
        .await;
    assert_eq!(
        churn["churnRate"],
        json!([{ "customersAtStart": 10000, "lost": 1000, "churnRate": 0.1 }])
    );
    // A second run leaves the data alone; the scale is bounded.
    assert!(crm::seed::bench(&app.app, 1).await.unwrap().skipped);
    assert!(crm::seed::bench(&app.app, 0).await.is_err());
}

/// `md5(text)::uuid`, as the benchmark data set names its records.
fn md5_uuid(text: &str) -> String {
    let output = std::process::Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    let hex = String::from_utf8(output.stdout).unwrap();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

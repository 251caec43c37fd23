//! What the server records of deals and accounts — stays in stages,
//! lifecycle changes — as read-only records, and what is computed from
//! them: stale deals, churn and customer lifetime value, checked against
//! figures computed by hand.

use serde_json::{json, Value};

use crate::support::TestApp;

async fn stage_id(app: &TestApp, name: &str) -> Value {
    let query = format!("{{ stages(filter: {{ name: {{ eq: \"{name}\" }} }}) {{ nodes {{ id }} }} }}");
    app.data(&query, json!({})).await["stages"]["nodes"][0]["id"].clone()
}

async fn move_to(app: &TestApp, deal: &str, stage: &Value) -> Value {
    app.data(
        "mutation($id: ID!, $stage: ID!) { updateOpportunity(id: $id, input: { stageId: $stage }) { staleAt isClosed } }",
        json!({ "id": deal, "stage": stage }),
    )
    .await["updateOpportunity"]
        .clone()
}

#[tokio::test]
async fn stage_entries_and_lifecycle_changes_are_read_only_records() {
    let app = TestApp::start().await;
    let (rep, rep_token) = app.user("rep@example.com", "SALES").await;
    let qualification = stage_id(&app, "Qualification").await;
    let won = stage_id(&app, "Closed Won").await;
    let mine = app
        .create(
            "Opportunity",
            json!({ "name": "mine", "ownerId": rep, "amount": "10.00" }),
        )
        .await;
    let theirs = app.create("Opportunity", json!({ "name": "theirs" })).await;
    move_to(&app, &mine, &qualification).await;
    move_to(&app, &mine, &won).await;
    move_to(&app, &theirs, &qualification).await;

    // A deal's stays, oldest first, each pointing at the next.
    let entries = app
        .data(
            "query($id: ID!) { opportunity(id: $id) { stageEntries { nodes { stage { name } nextStage { name } \
             leftAt daysInStage enteredBy { email } } } } }",
            json!({ "id": mine }),
        )
        .await;
    let nodes = entries["opportunity"]["stageEntries"]["nodes"]
        .as_array()
        .unwrap()
        .clone();
    let names: Vec<(&str, Option<&str>)> = nodes
        .iter()
        .map(|n| (n["stage"]["name"].as_str().unwrap(), n["nextStage"]["name"].as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("Prospecting", Some("Qualification")),
            ("Qualification", Some("Closed Won")),
            ("Closed Won", None)
        ]
    );
    assert!(nodes[0]["leftAt"].is_string() && nodes[0]["daysInStage"] == "0.00");
    assert!(nodes[2]["leftAt"].is_null() && nodes[2]["daysInStage"].is_null());
    assert_eq!(nodes[1]["enteredBy"]["email"], "admin@crm.local");

    // Filtered and aggregated like any object.
    let aggregate = app
        .data(
            "{ stageEntriesAggregate(filter: { leftAt: { isNull: false } }, groupBy: [{ stage: NAME }]) { \
             key { stage { name } } count avg { daysInStage } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        aggregate["stageEntriesAggregate"],
        json!([
            { "key": { "stage": { "name": "Prospecting" } }, "count": 2, "avg": { "daysInStage": "0.00" } },
            { "key": { "stage": { "name": "Qualification" } }, "count": 1, "avg": { "daysInStage": "0.00" } }
        ])
    );

    // Nobody writes them, not even an admin; nothing refers to them.
    let error = app
        .error(
            "mutation($id: ID!) { createStageEntry(input: { opportunityId: $id }) { id } }",
            json!({ "id": mine }),
        )
        .await;
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{error:#}");
    let error = app
        .error(
            "mutation { createCustomField(input: { object: \"StageEntry\", name: \"note\", label: \"Note\", type: TEXT }) { name } }",
            json!({}),
        )
        .await;
    assert_eq!(error["extensions"]["field"], json!(["input", "object"]), "{error:#}");
    let error = app
        .error(
            "mutation { createCustomField(input: { object: \"Account\", name: \"entry\", label: \"Entry\", type: LOOKUP, \
             lookupObject: \"StageEntry\" }) { name } }",
            json!({}),
        )
        .await;
    assert_eq!(
        error["extensions"]["field"],
        json!(["input", "lookupObject"]),
        "{error:#}"
    );

    // Under OWNED a rep sees the stays of their own deals only.
    app.data(
        "mutation { updateWorkspaceSettings(input: { recordVisibility: OWNED }) { recordVisibility } }",
        json!({}),
    )
    .await;
    let seen = app
        .graphql_as(
            &rep_token,
            "{ stageEntries { totalCount nodes { opportunity { name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(seen["data"]["stageEntries"]["totalCount"], 3, "{seen:#}");
    assert!(seen["data"]["stageEntries"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["opportunity"]["name"] == "mine"));
    // A deal on an account the rep owns is theirs to see, its stays too.
    let account = app
        .create("Account", json!({ "name": "Theirs Inc", "ownerId": rep }))
        .await;
    app.data(
        "mutation($id: ID!, $account: ID!) { updateOpportunity(id: $id, input: { accountId: $account }) { id } }",
        json!({ "id": theirs, "account": account }),
    )
    .await;
    let seen = app
        .graphql_as(&rep_token, "{ stageEntries { totalCount } }", json!({}))
        .await;
    assert_eq!(seen["data"]["stageEntries"]["totalCount"], 5, "{seen:#}");

    // A deal's stays are deleted and restored with it.
    let count = || app.data("{ stageEntries { totalCount } }", json!({}));
    app.data(
        "mutation($id: ID!) { deleteOpportunity(id: $id) { id } }",
        json!({ "id": theirs }),
    )
    .await;
    assert_eq!(count().await["stageEntries"]["totalCount"], 3);
    app.data(
        "mutation($id: ID!) { restoreOpportunity(id: $id) { id } }",
        json!({ "id": theirs }),
    )
    .await;
    assert_eq!(count().await["stageEntries"]["totalCount"], 5);

    // An account's lifecycle changes, with who made them.
    let account = app
        .create("Account", json!({ "name": "Acme", "lifecycleStage": "OPPORTUNITY" }))
        .await;
    app.data(
        "mutation($id: ID!) { updateAccount(id: $id, input: { lifecycleStage: CUSTOMER }) { id } }",
        json!({ "id": account }),
    )
    .await;
    let changes = app
        .data(
            "query($id: ID!) { account(id: $id) { lifecycleChanges { nodes { fromStage toStage changedBy { email } } } } }",
            json!({ "id": account }),
        )
        .await;
    assert_eq!(
        changes["account"]["lifecycleChanges"]["nodes"],
        json!([
            { "fromStage": null, "toStage": "OPPORTUNITY", "changedBy": { "email": "admin@crm.local" } },
            { "fromStage": "OPPORTUNITY", "toStage": "CUSTOMER", "changedBy": { "email": "admin@crm.local" } }
        ])
    );
}

/// Moves a deal's stays and activities `days` into the past, as if it had
/// rested that long, and recomputes when it goes stale as the triggers do.
async fn age(app: &TestApp, deal: &str, days: i64) {
    app.sql(&format!(
        "UPDATE crm.opportunity_stage_entry SET entered_at = entered_at - interval '{days} days' WHERE opportunity_id = '{deal}';
         UPDATE crm.activity SET created_at = created_at - interval '{days} days' WHERE opportunity_id = '{deal}';
         UPDATE crm.opportunity SET created_at = created_at - interval '{days} days' WHERE id = '{deal}';
         UPDATE crm.opportunity SET stale_at = crm.opportunity_stale_at(id, pipeline_id, is_closed,
             crm.opportunity_stage_since(id, created_at)) WHERE id = '{deal}';"
    ))
    .await;
}

async fn stale_names(app: &TestApp) -> Vec<String> {
    let data = app
        .data(
            "{ opportunities(filter: { isStale: true }, orderBy: [{ field: NAME }]) { nodes { name } } }",
            json!({}),
        )
        .await;
    crate::support::texts(&data["opportunities"]["nodes"], &["name"])
}

#[tokio::test]
async fn stale_deals_follow_stage_changes_activities_and_the_pipeline_setting() {
    let app = TestApp::start().await;
    let pipeline = app
        .data("{ pipelines { nodes { id staleAfterDays } } }", json!({}))
        .await["pipelines"]["nodes"][0]
        .clone();
    assert_eq!(pipeline["staleAfterDays"], 30, "the default");
    let resting = app.create("Opportunity", json!({ "name": "resting" })).await;
    let busy = app.create("Opportunity", json!({ "name": "busy" })).await;
    let fresh = app.create("Opportunity", json!({ "name": "fresh" })).await;
    app.create(
        "Activity",
        json!({ "type": "CALL", "subject": "Call", "opportunityId": busy }),
    )
    .await;
    age(&app, &resting, 40).await;
    age(&app, &busy, 40).await;
    // busy's call is 40 days old too; fresh is new.
    assert_eq!(stale_names(&app).await, ["busy", "resting"]);

    // A call logged today on busy.
    app.create(
        "Activity",
        json!({ "type": "EMAIL", "subject": "Follow-up", "opportunityId": busy }),
    )
    .await;
    assert_eq!(stale_names(&app).await, ["resting"]);

    // The pipeline allows 45 days: resting (40) is not stale any more.
    let set = |days: i64| {
        let id = pipeline["id"].clone();
        let app = &app;
        async move {
            app.data(
                "mutation($id: ID!, $days: Int!) { updatePipeline(id: $id, input: { staleAfterDays: $days }) { staleAfterDays } }",
                json!({ "id": id, "days": days }),
            )
            .await
        }
    };
    set(45).await;
    assert!(stale_names(&app).await.is_empty());
    set(30).await;
    assert_eq!(stale_names(&app).await, ["resting"]);
    let error = app
        .error(
            "mutation($id: ID!) { updatePipeline(id: $id, input: { staleAfterDays: 0 }) { id } }",
            json!({ "id": pipeline["id"] }),
        )
        .await;
    assert_eq!(
        error["extensions"]["field"],
        json!(["input", "staleAfterDays"]),
        "{error:#}"
    );

    // Moving it on wakes it; closing it ends staleness for good.
    let moved = move_to(&app, &resting, &stage_id(&app, "Qualification").await).await;
    assert!(moved["staleAt"].is_string());
    assert!(stale_names(&app).await.is_empty());
    let closed = move_to(&app, &fresh, &stage_id(&app, "Closed Lost").await).await;
    assert_eq!(closed, json!({ "staleAt": null, "isClosed": true }));

    // The count, through the aggregate; not stale is the rest.
    age(&app, &resting, 31).await;
    let counts = app
        .data(
            "{ stale: opportunitiesAggregate(filter: { isStale: true }) { count }
               fresh: opportunitiesAggregate(filter: { isStale: false }) { count } }",
            json!({}),
        )
        .await;
    assert_eq!(counts, json!({ "stale": [{ "count": 1 }], "fresh": [{ "count": 2 }] }));
    let error = app
        .error(
            "{ opportunities(filter: { isStale: \"yes\" }) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{error:#}");
    // A custom field called staleAt is only a field.
    app.data(
        r#"mutation { createCustomObject(input: { name: "Ticket", label: "Ticket", pluralLabel: "Tickets",
            fields: [{ name: "staleAt", label: "Stale at", type: DATETIME }] }) { name } }"#,
        json!({}),
    )
    .await;
    let error = app
        .error("{ tickets(filter: { isStale: true }) { totalCount } }", json!({}))
        .await;
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{error:#}");
    app.data(
        "{ tickets(filter: { staleAt: { isNull: true } }) { totalCount } }",
        json!({}),
    )
    .await;
}

/// Four accounts whose lifecycle changed at known times, and their deals:
///
/// | account | lifecycle | won deals closing in 2026 |
/// |---|---|---|
/// | A | OPPORTUNITY 2025-06-01, CUSTOMER 2025-09-01, CHURNED 2026-02-15 | 1000.00 USD |
/// | B | CUSTOMER 2025-10-01 | 3000.00 USD, 500.00 EUR |
/// | C | CUSTOMER 2025-11-01, CHURNED 2026-05-10 | (open 9999.00; won 777.00 closing 2025-12-31) |
/// | D | LEAD 2026-01-01, CUSTOMER 2026-03-01 | 2000.00 USD |
/// | E (deleted) | CUSTOMER 2025-01-01, CHURNED 2026-01-10 | — |
async fn customers(app: &TestApp) -> Vec<String> {
    let won = stage_id(app, "Closed Won").await;
    let mut ids = Vec::new();
    for (name, stages) in [
        ("A", vec!["OPPORTUNITY", "CUSTOMER", "CHURNED"]),
        ("B", vec!["CUSTOMER"]),
        ("C", vec!["CUSTOMER", "CHURNED"]),
        ("D", vec!["LEAD", "CUSTOMER"]),
        ("E", vec!["CUSTOMER", "CHURNED"]),
    ] {
        let id = app
            .create("Account", json!({ "name": name, "lifecycleStage": stages[0] }))
            .await;
        for stage in &stages[1..] {
            app.data(
                "mutation($id: ID!, $stage: AccountLifecycleStage!) { updateAccount(id: $id, input: { lifecycleStage: $stage }) { id } }",
                json!({ "id": id, "stage": stage }),
            )
            .await;
        }
        ids.push(id);
    }
    app.sql(
        "UPDATE crm.account_lifecycle_change c SET changed_at = v.at::timestamptz
         FROM crm.account a, (VALUES ('A', 'OPPORTUNITY', '2025-06-01'), ('A', 'CUSTOMER', '2025-09-01'), ('A', 'CHURNED', '2026-02-15'),
             ('B', 'CUSTOMER', '2025-10-01'), ('C', 'CUSTOMER', '2025-11-01'), ('C', 'CHURNED', '2026-05-10'),
             ('D', 'LEAD', '2026-01-01'), ('D', 'CUSTOMER', '2026-03-01'),
             ('E', 'CUSTOMER', '2025-01-01'), ('E', 'CHURNED', '2026-01-10')) AS v (account, stage, at)
         WHERE c.account_id = a.id AND a.name = v.account AND c.to_stage = v.stage",
    )
    .await;
    for (account, amount, currency, close, stage) in [
        (0, "1000.00", "USD", "2026-03-01", Some(&won)),
        (1, "3000.00", "USD", "2026-06-30", Some(&won)),
        (1, "500.00", "EUR", "2026-07-01", Some(&won)),
        (2, "9999.00", "USD", "2026-08-01", None),
        (2, "777.00", "USD", "2025-12-31", Some(&won)),
        (3, "2000.00", "USD", "2026-12-31", Some(&won)),
    ] {
        let mut input = json!({ "name": format!("deal {account} {amount}"), "accountId": ids[account],
            "amount": amount, "currency": currency, "closeDate": close });
        if let Some(stage) = stage {
            input["stageId"] = stage.clone();
        }
        app.create("Opportunity", input).await;
    }
    app.data(
        "mutation($id: ID!) { deleteAccount(id: $id) { id } }",
        json!({ "id": ids[4] }),
    )
    .await;
    ids
}

#[tokio::test]
async fn churn_and_lifetime_value_by_hand() {
    let app = TestApp::start().await;
    let ids = customers(&app).await;

    let churn = app
        .data(
            "{ churnRate(period: QUARTER, from: \"2026-01-01\", to: \"2027-01-01\") { start end customersAtStart gained lost customersAtEnd churnRate } }",
            json!({}),
        )
        .await;
    let row = |start: &str, end: &str, at_start: i64, gained: i64, lost: i64, at_end: i64, rate: Value| {
        json!({ "start": start, "end": end, "customersAtStart": at_start, "gained": gained, "lost": lost,
                "customersAtEnd": at_end, "churnRate": rate })
    };
    assert_eq!(
        churn["churnRate"],
        json!([
            // A, B, C at the start; A lost, D gained.
            row("2026-01-01", "2026-04-01", 3, 1, 1, 3, json!(0.333)),
            // B, C, D; C lost.
            row("2026-04-01", "2026-07-01", 3, 0, 1, 2, json!(0.333)),
            row("2026-07-01", "2026-10-01", 2, 0, 0, 2, json!(0.0)),
            row("2026-10-01", "2027-01-01", 2, 0, 0, 2, json!(0.0)),
        ])
    );
    // Periods are cut to the range asked.
    let cut = app
        .data(
            "{ churnRate(period: YEAR, from: \"2026-02-01\", to: \"2026-06-01\") { start end customersAtStart lost churnRate } }",
            json!({}),
        )
        .await;
    assert_eq!(
        cut["churnRate"],
        json!([{ "start": "2026-02-01", "end": "2026-06-01", "customersAtStart": 3, "lost": 2, "churnRate": 0.667 }])
    );

    // 2026: years = 365 ÷ 365.25; A and C of the 3 customers at the start
    // were lost: annual churn 2/3 ÷ years, lifespan 1.5 × years. USD:
    // 6000.00 won with 3 accounts, EUR: 500.00 with 1.
    let query =
        "query($account: ID) { customerLifetimeValue(from: \"2026-01-01\", to: \"2027-01-01\", accountId: $account) {
        formula years customersAtStart customersLost annualChurnRate averageLifespanYears accountId
        byCurrency { currency wonRevenue accounts averageAnnualRevenuePerAccount value } } }";
    let average = app.data(query, json!({})).await["customerLifetimeValue"].clone();
    assert!(average["formula"]
        .as_str()
        .unwrap()
        .starts_with("customerLifetimeValue = averageAnnualRevenuePerAccount × averageLifespanYears"));
    assert_eq!(average["years"], 0.999);
    assert_eq!(average["customersAtStart"], 3);
    assert_eq!(average["customersLost"], 2);
    assert_eq!(average["annualChurnRate"], 0.667);
    assert_eq!(average["averageLifespanYears"], 1.499);
    assert_eq!(average["accountId"], Value::Null);
    assert_eq!(
        average["byCurrency"],
        json!([
            { "currency": "EUR", "wonRevenue": "500.00", "accounts": 1, "averageAnnualRevenuePerAccount": "500.34", "value": "750.00" },
            { "currency": "USD", "wonRevenue": "6000.00", "accounts": 3, "averageAnnualRevenuePerAccount": "2001.37", "value": "3000.00" }
        ])
    );
    let of_b = app.data(query, json!({ "account": ids[1] })).await["customerLifetimeValue"].clone();
    assert_eq!(of_b["accountId"], json!(ids[1]));
    assert_eq!(
        of_b["byCurrency"],
        json!([
            { "currency": "EUR", "wonRevenue": "500.00", "accounts": 1, "averageAnnualRevenuePerAccount": "500.34", "value": "750.00" },
            { "currency": "USD", "wonRevenue": "3000.00", "accounts": 1, "averageAnnualRevenuePerAccount": "3002.05", "value": "4500.00" }
        ])
    );

    // No customer lost: the lifespan is unbounded and the value says so.
    let calm = app
        .data(
            "{ customerLifetimeValue(from: \"2026-07-01\", to: \"2027-01-01\") { customersLost annualChurnRate averageLifespanYears byCurrency { currency value } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        calm["customerLifetimeValue"],
        json!({ "customersLost": 0, "annualChurnRate": 0.0, "averageLifespanYears": null,
                "byCurrency": [{ "currency": "EUR", "value": null }, { "currency": "USD", "value": null }] })
    );

    // Bad input names the argument.
    for (query, field) in [
        (
            "{ churnRate(from: \"2026-02-01\", to: \"2026-01-01\") { start } }",
            "to",
        ),
        (
            "{ churnRate(period: MONTH, from: \"2000-01-01\", to: \"2026-01-01\") { start } }",
            "period",
        ),
        (
            "{ customerLifetimeValue(from: \"2026-01-01\", to: \"2027-01-01\", accountId: \"nope\") { years } }",
            "accountId",
        ),
    ] {
        let error = app.error(query, json!({})).await;
        assert_eq!(error["extensions"]["field"][0], field, "{query}: {error:#}");
    }
}

#[tokio::test]
async fn sandboxes_copy_what_the_server_recorded_of_their_records() {
    let app = TestApp::start().await;
    let deal = app
        .create("Opportunity", json!({ "name": "moving", "amount": "5.00" }))
        .await;
    move_to(&app, &deal, &stage_id(&app, "Qualification").await).await;
    let account = app
        .create("Account", json!({ "name": "Acme", "lifecycleStage": "CUSTOMER" }))
        .await;
    let shape = "query($deal: ID!, $account: ID!) {
        opportunity(id: $deal) { staleAt stageEntries { nodes { stage { name } enteredAt leftAt } }
            stageHistory { field before after changedAt } fieldChanges { totalCount } }
        account(id: $account) { lifecycleChanges { nodes { toStage changedAt } } } }";
    let variables = json!({ "deal": deal, "account": account });
    let production = app.data(shape, variables.clone()).await;
    for (name, mode) in [("full", "FULL"), ("sample", "SAMPLE")] {
        app.data(
            "mutation($input: CreateSandboxInput!) { createSandbox(input: $input) { name } }",
            json!({ "input": { "name": name, "mode": mode } }),
        )
        .await;
        let copied = app.sandbox_data(name, shape, variables.clone()).await;
        assert_eq!(copied, production, "{name}: the same history as production");
    }
    // The sandbox keeps recording its own changes.
    move_to(&app, &deal, &stage_id(&app, "Closed Won").await).await;
    let sandbox = app
        .sandbox_data(
            "full",
            "query($id: ID!) { opportunity(id: $id) { stageEntries { totalCount } } }",
            json!({ "id": deal }),
        )
        .await;
    assert_eq!(
        sandbox["opportunity"]["stageEntries"]["totalCount"], 2,
        "production's move is not the sandbox's"
    );
}

//! Sales analytics: aggregates checked against figures computed by hand
//! from a small fixed data set.

use serde_json::{json, Value};

use crate::support::TestApp;

/// Three accounts and six deals (one deleted), in two stages:
///
/// | deal | account (industry) | stage | amount | close date | owner |
/// |---|---|---|---:|---|---|
/// | o1 | Alpha (SOFTWARE) | Qualification | 1000.00 | 2026-01-15 | rep |
/// | o2 | Alpha (SOFTWARE) | Qualification | 500.50 | 2026-02-10 | rep |
/// | o3 | Beta (BANKING) | Closed Won | 2000.00 | 2026-04-01 | admin |
/// | o4 | Gamma (SOFTWARE) | Closed Won | — | 2026-05-20 | admin |
/// | o5 | Beta (BANKING) | Qualification | 300.00 | 2026-07-04 | admin |
/// | o6 (deleted) | — | Closed Won | 100.00 | 2026-12-31 | admin |
async fn deals(app: &TestApp, rep: &str) -> Vec<String> {
    let stage = |name: &str| format!("{{ stages(filter: {{ name: {{ eq: \"{name}\" }} }}) {{ nodes {{ id }} }} }}");
    let qualification = app.data(&stage("Qualification"), json!({})).await["stages"]["nodes"][0]["id"].clone();
    let won = app.data(&stage("Closed Won"), json!({})).await["stages"]["nodes"][0]["id"].clone();
    let mut accounts = Vec::new();
    for (name, industry) in [("Alpha", "SOFTWARE"), ("Beta", "BANKING"), ("Gamma", "SOFTWARE")] {
        accounts.push(
            app.create("Account", json!({ "name": name, "industry": industry }))
                .await,
        );
    }
    let mut ids = Vec::new();
    for (name, account, stage, amount, close, owner) in [
        ("o1", Some(0), &qualification, Some("1000.00"), "2026-01-15", Some(rep)),
        ("o2", Some(0), &qualification, Some("500.50"), "2026-02-10", Some(rep)),
        ("o3", Some(1), &won, Some("2000.00"), "2026-04-01", None),
        ("o4", Some(2), &won, None, "2026-05-20", None),
        ("o5", Some(1), &qualification, Some("300.00"), "2026-07-04", None),
        ("o6", None, &won, Some("100.00"), "2026-12-31", None),
    ] {
        let mut input = json!({ "name": name, "stageId": stage, "amount": amount, "closeDate": close,
            "accountId": account.map(|a: usize| accounts[a].clone()) });
        if let Some(owner) = owner {
            input["ownerId"] = json!(owner);
        }
        ids.push(app.create("Opportunity", input).await);
    }
    app.data(
        "mutation($id: ID!) { deleteOpportunity(id: $id) { id } }",
        json!({ "id": ids[5] }),
    )
    .await;
    ids
}

#[tokio::test]
async fn aggregates_group_sum_average_and_count_by_hand() {
    let app = TestApp::start().await;
    let (rep, rep_token) = app.user("rep@example.com", "SALES").await;
    deals(&app, &rep).await;

    // By stage (through the lookup), every metric.
    let by_stage = app
        .data(
            "{ opportunitiesAggregate(groupBy: [{ stage: NAME }]) { key { stage { name } } count
               sum { amount } avg { amount } min { closeDate amount } max { amount closeDate } countDistinct { accountId } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        by_stage["opportunitiesAggregate"],
        json!([
            { "key": { "stage": { "name": "Closed Won" } }, "count": 2,
              "sum": { "amount": "2000.00" }, "avg": { "amount": "2000.00" },
              "min": { "closeDate": "2026-04-01", "amount": "2000.00" },
              "max": { "amount": "2000.00", "closeDate": "2026-05-20" },
              "countDistinct": { "accountId": 2 } },
            { "key": { "stage": { "name": "Qualification" } }, "count": 3,
              "sum": { "amount": "1800.50" }, "avg": { "amount": "600.17" },
              "min": { "closeDate": "2026-01-15", "amount": "300.00" },
              "max": { "amount": "1000.00", "closeDate": "2026-07-04" },
              "countDistinct": { "accountId": 2 } }
        ])
    );

    // By close quarter and the account's industry, largest sum first.
    let by_quarter = app
        .data(
            "{ opportunitiesAggregate(groupBy: [{ field: CLOSE_DATE, granularity: QUARTER }, { account: INDUSTRY }],
                 orderBy: [{ metric: SUM, field: AMOUNT, direction: DESC }]) {
                 key { closeDate account { industry } } count sum { amount } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        by_quarter["opportunitiesAggregate"],
        json!([
            { "key": { "closeDate": "2026-04-01", "account": { "industry": "BANKING" } }, "count": 1, "sum": { "amount": "2000.00" } },
            { "key": { "closeDate": "2026-01-01", "account": { "industry": "SOFTWARE" } }, "count": 2, "sum": { "amount": "1500.50" } },
            { "key": { "closeDate": "2026-07-01", "account": { "industry": "BANKING" } }, "count": 1, "sum": { "amount": "300.00" } },
            { "key": { "closeDate": "2026-04-01", "account": { "industry": "SOFTWARE" } }, "count": 1, "sum": { "amount": null } }
        ])
    );

    // Groups of at least two deals, per account; and a having on a sum.
    let busy = app
        .data(
            "{ opportunitiesAggregate(groupBy: [{ account: NAME }], having: { count: { gte: 2 } }) { key { account { name } } count } }",
            json!({}),
        )
        .await;
    assert_eq!(
        busy["opportunitiesAggregate"],
        json!([
            { "key": { "account": { "name": "Alpha" } }, "count": 2 },
            { "key": { "account": { "name": "Beta" } }, "count": 2 }
        ])
    );
    let big = app
        .data(
            r#"{ opportunitiesAggregate(groupBy: [{ account: NAME }], having: { sum: { amount: { gt: "1600" } } }) { key { account { name } } sum { amount } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        big["opportunitiesAggregate"],
        json!([{ "key": { "account": { "name": "Beta" } }, "sum": { "amount": "2300.00" } }])
    );

    // No key: one group of everything that matches the filter.
    let all = app
        .data(
            "{ all: opportunitiesAggregate { count sum { amount } } software: opportunitiesAggregate(filter: { account: { industry: { eq: SOFTWARE } } }) { count sum { amount } } }",
            json!({}),
        )
        .await;
    assert_eq!(all["all"], json!([{ "count": 5, "sum": { "amount": "3800.50" } }]));
    assert_eq!(all["software"], json!([{ "count": 3, "sum": { "amount": "1500.50" } }]));

    // A rep under OWNED aggregates only the deals they can see.
    app.data(
        "mutation { updateWorkspaceSettings(input: { recordVisibility: OWNED }) { recordVisibility } }",
        json!({}),
    )
    .await;
    let seen = app
        .graphql_as(
            &rep_token,
            "{ opportunitiesAggregate { count sum { amount } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        seen["data"]["opportunitiesAggregate"],
        json!([{ "count": 2, "sum": { "amount": "1500.50" } }]),
        "{seen}"
    );
}

#[tokio::test]
async fn aggregates_bucket_instants_in_a_time_zone_and_refuse_bad_input() {
    let app = TestApp::start().await;
    // 23:30 UTC on 31 March is already April in Paris (UTC+2).
    for name in ["Late", "Later"] {
        app.create("Account", json!({ "name": name })).await;
    }
    app.sql("UPDATE crm.account SET created_at = '2026-03-31 23:30:00+00' WHERE name = 'Late'")
        .await;
    app.sql("UPDATE crm.account SET created_at = '2026-04-15 12:00:00+00' WHERE name = 'Later'")
        .await;
    let month = |zone: &str| {
        format!(
            "{{ accountsAggregate(groupBy: [{{ field: CREATED_AT, granularity: MONTH }}], timeZone: \"{zone}\") {{ key {{ createdAt }} count }} }}"
        )
    };
    let utc = app.data(&month("UTC"), json!({})).await;
    assert_eq!(
        utc["accountsAggregate"],
        json!([
            { "key": { "createdAt": "2026-03-01T00:00:00.000000Z" }, "count": 1 },
            { "key": { "createdAt": "2026-04-01T00:00:00.000000Z" }, "count": 1 }
        ])
    );
    let paris = app.data(&month("Europe/Paris"), json!({})).await;
    assert_eq!(
        paris["accountsAggregate"],
        json!([{ "key": { "createdAt": "2026-03-31T22:00:00.000000Z" }, "count": 2 }])
    );

    for (query, field) in [
        ("{ accountsAggregate(timeZone: \"Mars/Olympus\") { count } }", json!(["timeZone"])),
        ("{ accountsAggregate(groupBy: [{ field: NAME, granularity: MONTH }]) { count } }", json!(["groupBy", 0, "granularity"])),
        ("{ accountsAggregate(groupBy: [{ field: NAME }, { field: INDUSTRY }, { field: TYPE }, { field: OWNER }]) { count } }", json!(["groupBy"])),
        ("{ accountsAggregate(groupBy: [{ field: NAME }], orderBy: [{ key: 3 }]) { count } }", json!(["orderBy", 0, "key"])),
        ("{ accountsAggregate(having: { sum: { name: { gt: \"1\" } } }) { count } }", json!(["having", "sum", "name"])),
        ("{ accountsAggregate(first: 5000) { count } }", json!(["first"])),
    ] {
        let error = app.error(query, json!({})).await;
        assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{query}: {error}");
        assert_eq!(error["extensions"]["field"], field, "{query}: {error}");
    }
}

/// A custom field is aggregatable as soon as it exists.
#[tokio::test]
async fn custom_fields_aggregate_at_once() {
    let app = TestApp::start().await;
    app.data(
        r#"mutation { createCustomField(input: { object: "Account", name: "seats", label: "Seats", type: INTEGER }) { name } }"#,
        json!({}),
    )
    .await;
    for (name, seats) in [("A", 10), ("B", 5), ("C", 5)] {
        app.create("Account", json!({ "name": name, "seats": seats })).await;
    }
    let data: Value = app
        .data(
            "{ accountsAggregate(groupBy: [{ field: SEATS }], orderBy: [{ metric: COUNT, direction: DESC }]) { key { seats } count sum { seats } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["accountsAggregate"],
        json!([
            { "key": { "seats": 5 }, "count": 2, "sum": { "seats": "10" } },
            { "key": { "seats": 10 }, "count": 1, "sum": { "seats": "10" } }
        ])
    );
}

/// Every change of a deal's stage, amount, probability, forecast category
/// or close date is recorded, whatever path made it, with who made it.
#[tokio::test]
async fn stage_history_records_every_change_and_its_author() {
    let app = TestApp::start().await;
    let (rep, rep_token) = app.user("rep@example.com", "SALES").await;
    let admin = app.data("{ me { user { id } } }", json!({})).await["me"]["user"]["id"].clone();
    let stage = |name: &str| format!("{{ stages(filter: {{ name: {{ eq: \"{name}\" }} }}) {{ nodes {{ id }} }} }}");
    let mut stages = Vec::new();
    for name in ["Prospecting", "Qualification", "Closed Won"] {
        stages.push(app.data(&stage(name), json!({})).await["stages"]["nodes"][0]["id"].clone());
    }
    let deal = app
        .create(
            "Opportunity",
            json!({ "name": "Big", "stageId": stages[0], "amount": "100.00", "ownerId": rep, "externalId": "ext-1" }),
        )
        .await;
    // A rep's update, a batch, an upsert; and a change of nothing tracked.
    let moved = app
        .graphql_as(
            &rep_token,
            "mutation($id: ID!, $stage: ID!) { updateOpportunity(id: $id, input: { stageId: $stage, amount: \"250.00\" }) { id } }",
            json!({ "id": deal, "stage": stages[1] }),
        )
        .await;
    assert!(moved.get("errors").is_none(), "{moved}");
    app.data(
        "mutation($id: ID!) { updateOpportunities(inputs: [{ id: $id, input: { closeDate: \"2026-12-31\", nextStep: \"Call\" } }]) { id } }",
        json!({ "id": deal }),
    )
    .await;
    app.data(
        "mutation($stage: ID!) { upsertOpportunity(externalId: \"ext-1\", input: { name: \"Big\", stageId: $stage }) { id } }",
        json!({ "stage": stages[2] }),
    )
    .await;
    app.data(
        "mutation($id: ID!) { updateOpportunity(id: $id, input: { nextStep: \"Celebrate\" }) { id } }",
        json!({ "id": deal }),
    )
    .await;

    let history = app
        .data(
            "query($id: ID!) { opportunity(id: $id) { stages: stageHistory(fields: [STAGE]) { field before after changedById }
               amounts: stageHistory(fields: [AMOUNT, CLOSE_DATE]) { field before after changedById } } }",
            json!({ "id": deal }),
        )
        .await;
    let s = |i: usize| stages[i].as_str().unwrap().to_owned();
    assert_eq!(
        history["opportunity"]["stages"],
        json!([
            { "field": "STAGE", "before": null, "after": s(0), "changedById": admin },
            { "field": "STAGE", "before": s(0), "after": s(1), "changedById": rep },
            { "field": "STAGE", "before": s(1), "after": s(2), "changedById": admin }
        ])
    );
    assert_eq!(
        history["opportunity"]["amounts"],
        json!([
            { "field": "AMOUNT", "before": null, "after": "100.00", "changedById": admin },
            { "field": "AMOUNT", "before": "100.00", "after": "250.00", "changedById": rep },
            { "field": "CLOSE_DATE", "before": null, "after": "2026-12-31", "changedById": admin }
        ])
    );
    // A failed mutation records nothing.
    let refused = app
        .graphql(
            "mutation($id: ID!) { updateOpportunities(inputs: [{ id: $id, input: { amount: \"1.00\" } }, { id: $id, input: { probability: 500 } }]) { id } }",
            json!({ "id": deal }),
        )
        .await;
    assert!(refused.get("errors").is_some(), "{refused}");
    let after = app
        .data(
            "query($id: ID!) { opportunity(id: $id) { stageHistory(fields: [AMOUNT]) { after } } }",
            json!({ "id": deal }),
        )
        .await;
    assert_eq!(after["opportunity"]["stageHistory"].as_array().unwrap().len(), 2);

    // The same changes are read-only records, filtered and aggregated.
    let records = app
        .data(
            "query($id: ID!) {
               opportunityFieldChanges(filter: { opportunityId: { eq: $id }, field: { eq: AMOUNT } }) {
                 nodes { before after changedBy { email } } }
               opportunityFieldChangesAggregate(filter: { opportunityId: { eq: $id } }, groupBy: [{ field: FIELD }]) {
                 key { field } count } }",
            json!({ "id": deal }),
        )
        .await;
    assert_eq!(
        records["opportunityFieldChanges"]["nodes"],
        json!([
            { "before": null, "after": "100.00", "changedBy": { "email": "admin@crm.local" } },
            { "before": "100.00", "after": "250.00", "changedBy": { "email": "rep@example.com" } }
        ])
    );
    // The probability and the category follow the stage: Prospecting
    // (10 %, PIPELINE), Qualification (20 %, PIPELINE), Closed Won (100 %, CLOSED).
    assert_eq!(
        records["opportunityFieldChangesAggregate"],
        json!([
            { "key": { "field": "AMOUNT" }, "count": 2 },
            { "key": { "field": "CLOSE_DATE" }, "count": 1 },
            { "key": { "field": "FORECAST_CATEGORY" }, "count": 2 },
            { "key": { "field": "PROBABILITY" }, "count": 3 },
            { "key": { "field": "STAGE" }, "count": 3 }
        ])
    );
    let error = app
        .error(
            "mutation($id: ID!) { deleteOpportunityFieldChange(id: $id) { id } }",
            json!({ "id": deal }),
        )
        .await;
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "read-only: {error:#}");
}

/// The forecast of the fixed deals, by quarter of 2026, computed by hand:
/// Qualification is a PIPELINE stage at 20 %, Closed Won is won.
#[tokio::test]
async fn forecast_by_quarter_and_owner_by_hand() {
    let app = TestApp::start().await;
    let (rep, rep_token) = app.user("rep@example.com", "SALES").await;
    deals(&app, &rep).await;
    let admin = app.data("{ me { user { id } } }", json!({})).await["me"]["user"]["id"].clone();
    let query =
        "query($by: ForecastBy) { forecast(period: QUARTER, from: \"2026-01-01\", to: \"2027-01-01\", by: $by) {
        period ownerId currency deals pipeline weighted commit bestCase closedWon } }";
    let quarters = app.data(query, json!({})).await;
    let row = |period: &str, owner: Value, deals: i64, figures: [&str; 5]| {
        json!({ "period": period, "ownerId": owner, "currency": "USD", "deals": deals,
            "pipeline": figures[0], "weighted": figures[1], "commit": figures[2], "bestCase": figures[3], "closedWon": figures[4] })
    };
    assert_eq!(
        quarters["forecast"],
        json!([
            // o1 1000.00 and o2 500.50 open at 20 %: weighted 200.00 + 100.10.
            row(
                "2026-01-01",
                Value::Null,
                2,
                ["1500.50", "300.10", "0.00", "0.00", "0.00"]
            ),
            // o3 won 2000.00, o4 won without an amount.
            row(
                "2026-04-01",
                Value::Null,
                2,
                ["0.00", "2000.00", "2000.00", "2000.00", "2000.00"]
            ),
            // o5 300.00 open at 20 %.
            row(
                "2026-07-01",
                Value::Null,
                1,
                ["300.00", "60.00", "0.00", "0.00", "0.00"]
            ),
        ])
    );
    let by_owner = app.data(query, json!({ "by": "OWNER" })).await;
    let owners: Vec<(String, Value)> = by_owner["forecast"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["period"].as_str().unwrap().to_owned(), r["ownerId"].clone()))
        .collect();
    assert_eq!(
        owners,
        [
            ("2026-01-01".to_owned(), json!(rep)),
            ("2026-04-01".to_owned(), admin.clone()),
            ("2026-07-01".to_owned(), admin)
        ]
    );
    // A rep under OWNED forecasts only their own deals.
    app.data(
        "mutation { updateWorkspaceSettings(input: { recordVisibility: OWNED }) { recordVisibility } }",
        json!({}),
    )
    .await;
    let own = app.graphql_as(&rep_token, query, json!({})).await;
    assert_eq!(
        own["data"]["forecast"],
        json!([row(
            "2026-01-01",
            Value::Null,
            2,
            ["1500.50", "300.10", "0.00", "0.00", "0.00"]
        )]),
        "{own}"
    );
    let error = app
        .error(
            "{ forecast(from: \"2026-02-01\", to: \"2026-01-01\") { deals } }",
            json!({}),
        )
        .await;
    assert_eq!(error["extensions"]["field"], json!(["to"]));
}

/// The funnel of three deals whose stage changes happened at known times
/// (set in the history after the fact), computed by hand.
#[tokio::test]
async fn funnel_by_hand() {
    let app = TestApp::start().await;
    let stage = |name: &str| format!("{{ stages(filter: {{ name: {{ eq: \"{name}\" }} }}) {{ nodes {{ id }} }} }}");
    let mut stages = std::collections::HashMap::new();
    for name in ["Prospecting", "Qualification", "Closed Won", "Closed Lost"] {
        stages.insert(
            name,
            app.data(&stage(name), json!({})).await["stages"]["nodes"][0]["id"].clone(),
        );
    }
    let pipeline = app
        .data(
            "{ pipelines(filter: { name: { eq: \"Sales\" } }) { nodes { id } } }",
            json!({}),
        )
        .await["pipelines"]["nodes"][0]["id"]
        .clone();
    for (deal, path) in [
        ("d1", vec!["Qualification", "Closed Won"]),
        ("d2", vec!["Closed Lost"]),
        ("d3", vec!["Qualification"]),
    ] {
        let id = app
            .create(
                "Opportunity",
                json!({ "name": deal, "stageId": stages["Prospecting"], "amount": "1000.00" }),
            )
            .await;
        for next in path {
            app.data(
                "mutation($id: ID!, $stage: ID!) { updateOpportunity(id: $id, input: { stageId: $stage }) { id } }",
                json!({ "id": id, "stage": stages[next] }),
            )
            .await;
        }
    }
    app.sql(
        "UPDATE crm.opportunity_field_change h SET changed_at = v.at::timestamptz
         FROM crm.opportunity o, crm.stage s,
              (VALUES ('d1', 'Prospecting', '2026-01-01'), ('d1', 'Qualification', '2026-01-11'), ('d1', 'Closed Won', '2026-01-21'),
                      ('d2', 'Prospecting', '2026-01-01'), ('d2', 'Closed Lost', '2026-01-06'),
                      ('d3', 'Prospecting', '2026-01-01'), ('d3', 'Qualification', '2026-01-03')) AS v (deal, stage, at)
         WHERE h.opportunity_id = o.id AND o.name = v.deal AND h.field = 'STAGE' AND h.after = s.id::text AND s.name = v.stage",
    )
    .await;
    // The stays in stages the funnel reads, at the same times.
    app.sql(
        "UPDATE crm.opportunity_stage_entry e SET entered_at = h.changed_at
         FROM crm.opportunity_field_change h, crm.opportunity o
         WHERE h.opportunity_id = e.opportunity_id AND h.field = 'STAGE' AND h.after = e.stage_id::text
           AND o.id = e.opportunity_id AND o.name IN ('d1', 'd2', 'd3')",
    )
    .await;
    app.sql(
        "UPDATE crm.opportunity_stage_entry e
         SET left_at = n.entered_at, days_in_stage = round((extract(epoch FROM n.entered_at - e.entered_at) / 86400)::numeric, 2)
         FROM crm.opportunity_stage_entry n
         WHERE n.opportunity_id = e.opportunity_id AND n.stage_id = e.next_stage_id AND e.left_at IS NOT NULL",
    )
    .await;
    app.sql("UPDATE crm.opportunity SET created_at = '2026-01-01' WHERE name IN ('d1', 'd2', 'd3')")
        .await;
    // When each deal goes stale, from those times (as the triggers would
    // have had them): d3 rests in Qualification since January 3rd.
    app.sql(
        "UPDATE crm.opportunity SET stale_at = crm.opportunity_stale_at(id, pipeline_id, is_closed,
             crm.opportunity_stage_since(id, created_at)) WHERE name IN ('d1', 'd2', 'd3')",
    )
    .await;

    let funnel = app
        .data(
            "query($p: ID!) { funnel(pipelineId: $p, from: \"2026-01-01T00:00:00Z\", to: \"2026-02-01T00:00:00Z\") {
               stages { name entered movedOn lost won conversionToNext conversionToWon medianDaysInStage p90DaysInStage stale }
               won lost winRate averageWonAmount averageSalesCycleDays staleDeals } }",
            json!({ "p": pipeline }),
        )
        .await;
    let stage_row = |name: &str| {
        funnel["funnel"]["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        stage_row("Prospecting"),
        json!({ "name": "Prospecting", "entered": 3, "movedOn": 2, "lost": 1, "won": 1,
                "conversionToNext": 0.667, "conversionToWon": 0.333, "medianDaysInStage": 5.0, "p90DaysInStage": 9.0,
                "stale": 0 })
    );
    assert_eq!(
        stage_row("Qualification"),
        json!({ "name": "Qualification", "entered": 2, "movedOn": 1, "lost": 0, "won": 1,
                "conversionToNext": 0.5, "conversionToWon": 0.5, "medianDaysInStage": 10.0, "p90DaysInStage": 10.0,
                "stale": 1 })
    );
    assert_eq!(
        stage_row("Needs Analysis"),
        json!({ "name": "Needs Analysis", "entered": 0, "movedOn": 0, "lost": 0, "won": 0,
                "conversionToNext": null, "conversionToWon": null, "medianDaysInStage": null, "p90DaysInStage": null,
                "stale": 0 })
    );
    assert_eq!(
        funnel["funnel"]["stages"].as_array().unwrap().len(),
        9,
        "every stage, in order"
    );
    assert_eq!(funnel["funnel"]["won"], 1);
    assert_eq!(funnel["funnel"]["lost"], 1);
    assert_eq!(funnel["funnel"]["winRate"], 0.5);
    assert_eq!(funnel["funnel"]["averageWonAmount"], "1000.00");
    assert_eq!(funnel["funnel"]["averageSalesCycleDays"], 20.0);
    assert_eq!(funnel["funnel"]["staleDeals"], 1);
    let stale = app
        .data(
            "{ opportunities(filter: { isStale: true }) { nodes { name staleAt } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        stale["opportunities"]["nodes"],
        json!([{ "name": "d3", "staleAt": "2026-02-02T00:00:00.000000Z" }]),
        "30 days after d3 entered Qualification"
    );
}

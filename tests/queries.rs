//! Reading records: single records, relations both ways, filters, orders
//! and keyset pages.

use serde_json::{json, Value};

use crate::support::{texts, TestApp};

fn names(connection: &Value) -> Vec<String> {
    texts(&connection["nodes"], &["name"])
}

#[tokio::test]
async fn demo_data_reads_with_relations_both_ways() {
    let app = TestApp::start().await;
    let report = crm::seed::demo(&app.app).await.unwrap();
    assert_eq!(
        (
            report.accounts,
            report.contacts,
            report.opportunities,
            report.activities
        ),
        (6, 12, 9, 18)
    );
    let model = app
        .data(
            "{ leads { totalCount } users { nodes { name ownedAccounts { totalCount } } } contactRoles { totalCount }
                 stages(first: 9) { nodes { opportunities(first: 0) { totalCount } } } }",
            json!({}),
        )
        .await;
    assert_eq!(model["leads"]["totalCount"], 3);
    assert_eq!(
        model["users"]["nodes"],
        json!([
            { "name": "Administrator", "ownedAccounts": { "totalCount": 0 } },
            { "name": "Sam Seller", "ownedAccounts": { "totalCount": 6 } }
        ])
    );
    assert_eq!(model["contactRoles"]["totalCount"], 18);
    let in_stages: Vec<i64> = model["stages"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["opportunities"]["totalCount"].as_i64().unwrap())
        .collect();
    assert_eq!(in_stages, [1; 9], "demo deals spread over every stage");
    // A second seed leaves production alone.
    assert!(crm::seed::demo(&app.app).await.unwrap().skipped);

    let data = app
        .data(
            r#"{ accounts(filter: { name: { eq: "Globex Health" } }) {
                   totalCount
                   nodes { id name industry annualRevenue employeeCount
                     contacts(orderBy: [{ field: LAST_NAME }]) { totalCount nodes { lastName account { name } } }
                     opportunities { nodes { name amount closeDate primaryContact { lastName } account { name } } } } } }"#,
            json!({}),
        )
        .await;
    let account = &data["accounts"]["nodes"][0];
    assert_eq!(data["accounts"]["totalCount"], 1);
    // Fields come back in the order the query asked for them.
    let raw = app
        .request(
            hyper::Method::POST,
            "/graphql",
            &[("content-type", "application/json")],
            json!({ "query": "{ accounts(first: 1) { totalCount nodes { name id industry } } }" })
                .to_string()
                .into_bytes(),
        )
        .await
        .text();
    let at = |key: &str| {
        raw.find(&format!("\"{key}\""))
            .unwrap_or_else(|| panic!("{key} in {raw}"))
    };
    assert!(
        at("totalCount") < at("nodes") && at("name") < at("id") && at("id") < at("industry"),
        "{raw}"
    );
    assert_eq!(account["industry"], "HEALTHCARE");
    assert_eq!(account["annualRevenue"], "210000000.00");
    assert_eq!(account["employeeCount"], 1800);
    let contacts: Vec<&str> = account["contacts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["lastName"].as_str().unwrap())
        .collect();
    assert_eq!(contacts, ["Franklin", "Jackson", "Lamarr"]);
    assert_eq!(account["contacts"]["totalCount"], 3);
    assert_eq!(account["contacts"]["nodes"][0]["account"]["name"], "Globex Health");
    let opportunity = &account["opportunities"]["nodes"][0];
    assert_eq!(opportunity["amount"], "340000.00");
    assert_eq!(opportunity["closeDate"], "2027-03-01");
    assert_eq!(opportunity["primaryContact"]["lastName"], "Lamarr");

    // The single-record query, and the contact's way back to its deals.
    let id = account["id"].as_str().unwrap();
    let one = app
        .data(
            "query($id: ID!) { account(id: $id) { name contacts(first: 1) { totalCount pageInfo { hasNextPage } } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(one["account"]["name"], "Globex Health");
    assert_eq!(one["account"]["contacts"]["totalCount"], 3);
    assert_eq!(one["account"]["contacts"]["pageInfo"]["hasNextPage"], true);
    let back = app
        .data(r#"{ contacts(filter: { lastName: { eq: "Lamarr" } }) { nodes { primaryOpportunities { nodes { name } } } } }"#, json!({}))
        .await;
    assert_eq!(
        back["contacts"]["nodes"][0]["primaryOpportunities"]["nodes"][0]["name"],
        "Globex — patient portal"
    );
}

#[tokio::test]
async fn unknown_and_malformed_ids() {
    let app = TestApp::start().await;
    let missing = app
        .data(
            "{ account(id: \"00000000-0000-4000-8000-000000000000\") { name } }",
            json!({}),
        )
        .await;
    assert_eq!(missing["account"], Value::Null);
    for id in ["\"not-a-uuid\"", "5"] {
        let error = app
            .error(&format!("{{ account(id: {id}) {{ name }} }}"), json!({}))
            .await;
        assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT");
        assert_eq!(error["extensions"]["field"], json!(["id"]));
        assert!(error["message"].as_str().unwrap().contains("not a valid ID"), "{error}");
    }
}

async fn accounts(app: &TestApp, names: &[(&str, Option<&str>, Option<i32>)]) {
    for (name, industry, employees) in names {
        app.create(
            "Account",
            json!({ "name": name, "industry": industry, "employeeCount": employees }),
        )
        .await;
    }
}

#[tokio::test]
async fn filters_on_every_operator() {
    let app = TestApp::start().await;
    accounts(
        &app,
        &[
            ("Alpha 100%", Some("SOFTWARE"), Some(10)),
            ("Beta_Co", Some("RETAIL"), Some(250)),
            ("Gamma", None, Some(40)),
            ("delta", Some("SOFTWARE"), None),
        ],
    )
    .await;
    let cases: &[(&str, &[&str])] = &[
        (r#"{ industry: { eq: SOFTWARE } }"#, &["Alpha 100%", "delta"]),
        (r#"{ industry: { neq: SOFTWARE } }"#, &["Beta_Co", "Gamma"]),
        (
            r#"{ industry: { in: [RETAIL, SOFTWARE] } }"#,
            &["Alpha 100%", "Beta_Co", "delta"],
        ),
        (r#"{ industry: { notIn: [SOFTWARE] } }"#, &["Beta_Co", "Gamma"]),
        (r#"{ industry: { isNull: true } }"#, &["Gamma"]),
        (r#"{ employeeCount: { gt: 10, lte: 250 } }"#, &["Beta_Co", "Gamma"]),
        (r#"{ employeeCount: { lt: 40 } }"#, &["Alpha 100%"]),
        (r#"{ employeeCount: { gte: 40 } }"#, &["Beta_Co", "Gamma"]),
        (r#"{ name: { startsWith: "Alpha 100%" } }"#, &["Alpha 100%"]),
        (r#"{ name: { contains: "_" } }"#, &["Beta_Co"]),
        (r#"{ name: { contains: "%" } }"#, &["Alpha 100%"]),
        (r#"{ name: { like: "%a" } }"#, &["Gamma", "delta"]),
        (r#"{ name: { ilike: "D%" } }"#, &["delta"]),
        (
            r#"{ or: [{ name: { eq: "Gamma" } }, { employeeCount: { isNull: true } }] }"#,
            &["Gamma", "delta"],
        ),
        (
            r#"{ and: [{ industry: { eq: SOFTWARE } }, { employeeCount: { isNull: false } }] }"#,
            &["Alpha 100%"],
        ),
        (r#"{ not: { industry: { eq: SOFTWARE } } }"#, &["Beta_Co", "Gamma"]),
    ];
    for (filter, expected) in cases {
        let query =
            format!("{{ accounts(filter: {filter}, orderBy: [{{ field: NAME }}]) {{ totalCount nodes {{ name }} }} }}");
        let data = app.data(&query, json!({})).await;
        let mut got = names(&data["accounts"]);
        got.sort();
        assert_eq!(got, *expected, "filter {filter}");
        assert_eq!(
            data["accounts"]["totalCount"],
            expected.len(),
            "totalCount for {filter}"
        );
    }
    let none = app
        .data(
            r#"{ accounts(filter: { industry: { in: [] } }) { nodes { name } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(names(&none["accounts"]).len(), 0);

    let error = app
        .error(
            r#"{ accounts(filter: { name: { eq: null } }) { nodes { name } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(error["extensions"]["field"], json!(["filter", "name", "eq"]));
}

#[tokio::test]
async fn keyset_pages_forwards_and_backwards() {
    let app = TestApp::start().await;
    // Equal names force the id tie-break; nulls test null placement.
    accounts(
        &app,
        &[
            ("Echo", None, Some(5)),
            ("Bravo", None, None),
            ("Delta", None, Some(5)),
            ("Alpha", None, Some(1)),
            ("Charlie", None, None),
            ("Bravo", None, Some(9)),
            ("Foxtrot", None, Some(7)),
        ],
    )
    .await;
    let query = "query($first: Int, $after: String, $last: Int, $before: String, $order: [AccountOrderBy!]) {
        accounts(first: $first, after: $after, last: $last, before: $before, orderBy: $order) {
          totalCount edges { cursor node { name employeeCount } }
          pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";
    for order in [
        json!([{ "field": "NAME" }]),
        json!([{ "field": "NAME", "direction": "DESC" }]),
        json!([{ "field": "EMPLOYEE_COUNT", "direction": "DESC", "nulls": "LAST" }, { "field": "NAME" }]),
        json!([{ "field": "EMPLOYEE_COUNT", "nulls": "FIRST" }]),
        json!([{ "field": "EMPLOYEE_COUNT" }]),
    ] {
        let all = app.data(query, json!({ "first": 500, "order": order })).await;
        let everything: Vec<Value> = all["accounts"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"].clone())
            .collect();
        assert_eq!(everything.len(), 7);

        // Forwards in pages of 3.
        let mut seen = Vec::new();
        let mut after = Value::Null;
        for pages in 0.. {
            assert!(pages < 100, "paging did not end after 100 pages");
            let page = app
                .data(query, json!({ "first": 3, "after": after, "order": order }))
                .await;
            let page = &page["accounts"];
            assert_eq!(page["totalCount"], 7);
            seen.extend(page["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()));
            if page["pageInfo"]["hasNextPage"] == false {
                break;
            }
            after = page["pageInfo"]["endCursor"].clone();
        }
        assert_eq!(seen, everything, "forward pages with order {order}");

        // Backwards in pages of 2.
        let mut seen_back = Vec::new();
        let mut before = Value::Null;
        for pages in 0.. {
            assert!(pages < 100, "paging did not end after 100 pages");
            let page = app
                .data(query, json!({ "last": 2, "before": before, "order": order }))
                .await;
            let page = &page["accounts"];
            let mut nodes: Vec<Value> = page["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"].clone())
                .collect();
            nodes.extend(seen_back);
            seen_back = nodes;
            if page["pageInfo"]["hasPreviousPage"] == false {
                break;
            }
            before = page["pageInfo"]["startCursor"].clone();
        }
        assert_eq!(seen_back, everything, "backward pages with order {order}");
    }

    // Ties are broken by id in the direction of the last key, so one
    // `(column, id)` index serves the sort both ways.
    let bravos = "query($d: OrderDirection) { accounts(filter: { name: { eq: \"Bravo\" } }, orderBy: [{ field: NAME, direction: $d }]) { nodes { id } } }";
    let ids = |data: Value| -> Vec<String> {
        data["accounts"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let ascending = ids(app.data(bravos, json!({ "d": "ASC" })).await);
    let descending = ids(app.data(bravos, json!({ "d": "DESC" })).await);
    assert_eq!(ascending.len(), 2);
    assert!(ascending[0] < ascending[1], "{ascending:?}");
    assert_eq!(descending, ascending.iter().rev().cloned().collect::<Vec<_>>());

    // Cursors stay valid when rows are added before them.
    let first = app
        .data(query, json!({ "first": 2, "order": [{ "field": "NAME" }] }))
        .await;
    let cursor = first["accounts"]["pageInfo"]["endCursor"].clone();
    app.create("Account", json!({ "name": "Aardvark" })).await;
    let next = app
        .data(
            query,
            json!({ "first": 1, "after": cursor, "order": [{ "field": "NAME" }] }),
        )
        .await;
    assert_eq!(next["accounts"]["edges"][0]["node"]["name"], "Bravo");

    // A cursor only works with the order it was made for.
    let error = app
        .error(
            query,
            json!({ "first": 1, "after": cursor, "order": [{ "field": "CREATED_AT" }] }),
        )
        .await;
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(error["extensions"]["field"], json!(["after"]));
    let error = app.error(query, json!({ "first": 1, "after": "garbage" })).await;
    assert_eq!(error["extensions"]["field"], json!(["after"]));
    let error = app.error(query, json!({ "first": 501 })).await;
    assert_eq!(error["extensions"]["field"], json!(["first"]));
    let error = app.error(query, json!({ "first": 1, "last": 1 })).await;
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT");
}

#[tokio::test]
async fn default_order_is_creation_order_and_default_page_is_fifty() {
    let app = TestApp::start().await;
    for i in 0..55 {
        app.create("Account", json!({ "name": format!("Account {i:02}") }))
            .await;
    }
    let data = app
        .data("{ accounts { nodes { name } pageInfo { hasNextPage } } }", json!({}))
        .await;
    let got = names(&data["accounts"]);
    assert_eq!(got.len(), 50);
    assert_eq!(got[0], "Account 00");
    assert_eq!(got[49], "Account 49");
    assert_eq!(data["accounts"]["pageInfo"]["hasNextPage"], true);
}

#[tokio::test]
async fn relation_filters_both_ways() {
    let app = TestApp::start().await;
    let acme = app
        .create("Account", json!({ "name": "Acme", "industry": "SOFTWARE" }))
        .await;
    let globex = app
        .create("Account", json!({ "name": "Globex", "industry": "RETAIL" }))
        .await;
    app.create("Account", json!({ "name": "Empty Inc" })).await;
    let ada = app
        .create(
            "Contact",
            json!({ "lastName": "Lovelace", "title": "CTO", "accountId": acme }),
        )
        .await;
    app.create(
        "Contact",
        json!({ "lastName": "Hopper", "title": "CEO", "accountId": acme }),
    )
    .await;
    let gone = app
        .create(
            "Contact",
            json!({ "lastName": "Turing", "title": "CTO", "accountId": globex }),
        )
        .await;
    app.create(
        "Contact",
        json!({ "lastName": "Noether", "title": "CFO", "accountId": globex }),
    )
    .await;
    app.create(
        "Opportunity",
        json!({ "name": "Big deal", "accountId": acme, "primaryContactId": ada }),
    )
    .await;
    // A deleted related record counts for nothing.
    app.data(
        "mutation($id: ID!) { deleteContact(id: $id) { id } }",
        json!({ "id": gone }),
    )
    .await;

    let cases: &[(&str, &str, &[&str])] = &[
        (
            "contacts",
            r#"{ account: { industry: { eq: SOFTWARE } } }"#,
            &["Hopper", "Lovelace"],
        ),
        (
            "contacts",
            r#"{ not: { account: { name: { eq: "Acme" } } } }"#,
            &["Noether"],
        ),
        (
            "accounts",
            r#"{ contacts: { some: { title: { eq: "CTO" } } } }"#,
            &["Acme"],
        ),
        (
            "accounts",
            r#"{ contacts: { none: { title: { eq: "CTO" } } } }"#,
            &["Empty Inc", "Globex"],
        ),
        (
            "accounts",
            r#"{ contacts: { every: { title: { eq: "CFO" } } } }"#,
            &["Empty Inc", "Globex"],
        ),
        ("accounts", r#"{ contacts: { some: {} } }"#, &["Acme", "Globex"]),
        (
            "accounts",
            r#"{ contacts: { some: { title: { startsWith: "C" } }, none: { title: { eq: "CFO" } } } }"#,
            &["Acme"],
        ),
        (
            "accounts",
            r#"{ opportunities: { some: { primaryContact: { lastName: { eq: "Lovelace" } } } } }"#,
            &["Acme"],
        ),
        (
            "opportunities",
            r#"{ primaryContact: { account: { contacts: { some: { title: { eq: "CEO" } } } } } }"#,
            &["Big deal"],
        ),
    ];
    for (list, filter, expected) in cases {
        let field = if *list == "contacts" { "lastName" } else { "name" };
        let query = format!("{{ {list}(filter: {filter}) {{ totalCount nodes {{ {field} }} }} }}");
        let data = app.data(&query, json!({})).await;
        let mut got: Vec<&str> = data[list]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n[field].as_str().unwrap())
            .collect();
        got.sort();
        assert_eq!(got, *expected, "{list} {filter}");
        assert_eq!(data[list]["totalCount"], expected.len(), "{list} {filter}");
    }

    // Nested lists filter with the same language.
    let nested = app
        .data(r#"{ accounts(filter: { name: { eq: "Acme" } }) { nodes { contacts(filter: { title: { eq: "CEO" } }) { totalCount nodes { lastName } } } } }"#, json!({}))
        .await;
    assert_eq!(
        nested["accounts"]["nodes"][0]["contacts"],
        json!({ "totalCount": 1, "nodes": [{ "lastName": "Hopper" }] })
    );

    let error = app
        .error(
            r#"{ accounts(filter: { contacts: { any: {} } }) { totalCount } }"#,
            json!({}),
        )
        .await;
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT");
    let deep = format!(
        "{{ contacts(filter: {}{{ lastName: {{ eq: \"x\" }} }}{}) {{ totalCount }} }}",
        "{ account: { contacts: { some: ".repeat(4),
        " } } }".repeat(4)
    );
    let error = app.error(&deep, json!({})).await;
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{error}");
    assert!(error["message"].as_str().unwrap().contains("nest at most"), "{error}");
    let shallow = deep
        .replacen("{ account: { contacts: { some: ", "", 2)
        .replacen(" } } }", "", 2);
    app.data(&shallow, json!({})).await;
}

#[tokio::test]
async fn a_statement_over_the_timeout_gets_timeout_not_a_500() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let app = TestApp::start_with(crm::Config {
        statement_timeout: std::time::Duration::from_millis(10),
        ..crm::Config::default()
    })
    .await;
    let mut conn = AsyncPgConnection::establish(&app.database_url).await.unwrap();
    conn.batch_execute("INSERT INTO crm.account (name) SELECT 'Account ' || n FROM generate_series(1, 300000) n")
        .await
        .unwrap();
    let error = app
        .error(
            r#"{ accounts(filter: { name: { ilike: "%zz%q%" } }) { totalCount } }"#,
            json!({}),
        )
        .await;
    assert_eq!(error["extensions"]["code"], "TIMEOUT", "{error}");
    assert!(!error["message"].as_str().unwrap().contains("canceling"), "{error}");
}

#[tokio::test]
async fn operators_and_sorts_on_every_field_type() {
    let app = TestApp::start().await;
    let mut ids = Vec::new();
    for (name, amount, close, stage_closed) in [
        ("Small", "100.50", "2027-01-10", false),
        ("Medium", "2500.00", "2027-02-20", false),
        ("Large", "90000.99", "2027-03-30", true),
        ("Unpriced", "", "", false),
    ] {
        let mut input = json!({ "name": name });
        if !amount.is_empty() {
            input["amount"] = json!(amount);
            input["closeDate"] = json!(close);
        }
        if stage_closed {
            let won = app
                .data(
                    r#"{ stages(filter: { name: { eq: "Closed Won" } }) { nodes { id } } }"#,
                    json!({}),
                )
                .await;
            input["stageId"] = won["stages"]["nodes"][0]["id"].clone();
        }
        ids.push(app.create("Opportunity", input).await);
    }
    let created = app
        .data(
            "query($id: ID!) { opportunity(id: $id) { createdAt } }",
            json!({ "id": ids[1] }),
        )
        .await["opportunity"]["createdAt"]
        .clone();
    let cases: Vec<(String, Vec<&str>)> = vec![
        (r#"{ amount: { gt: "100.50" } }"#.into(), vec!["Large", "Medium"]),
        (
            r#"{ amount: { gte: "100.50", lt: "90000.99" } }"#.into(),
            vec!["Medium", "Small"],
        ),
        (r#"{ amount: { lte: "2500" } }"#.into(), vec!["Medium", "Small"]),
        (
            r#"{ amount: { in: ["100.5", "90000.99"] } }"#.into(),
            vec!["Large", "Small"],
        ),
        (r#"{ amount: { isNull: true } }"#.into(), vec!["Unpriced"]),
        (
            r#"{ closeDate: { gte: "2027-02-01", lte: "2027-03-30" } }"#.into(),
            vec!["Large", "Medium"],
        ),
        (
            r#"{ closeDate: { neq: "2027-01-10" } }"#.into(),
            vec!["Large", "Medium", "Unpriced"],
        ),
        (
            format!(r#"{{ createdAt: {{ gte: "{}" }} }}"#, created.as_str().unwrap()),
            vec!["Large", "Medium", "Unpriced"],
        ),
        (
            format!(r#"{{ createdAt: {{ lt: "{}" }} }}"#, created.as_str().unwrap()),
            vec!["Small"],
        ),
        (r#"{ isClosed: { eq: true } }"#.into(), vec!["Large"]),
        (
            r#"{ isWon: { neq: true } }"#.into(),
            vec!["Medium", "Small", "Unpriced"],
        ),
        (
            format!(r#"{{ id: {{ in: ["{}", "{}"] }} }}"#, ids[0], ids[3]),
            vec!["Small", "Unpriced"],
        ),
        (
            format!(r#"{{ id: {{ notIn: ["{}"] }} }}"#, ids[0]),
            vec!["Large", "Medium", "Unpriced"],
        ),
        (
            r#"{ forecastCategory: { in: [CLOSED, COMMIT] } }"#.into(),
            vec!["Large"],
        ),
        (r#"{ probability: { gte: 100 } }"#.into(), vec!["Large"]),
        (r#"{ expectedRevenue: { gt: "50" } }"#.into(), vec!["Large", "Medium"]),
    ];
    for (filter, expected) in cases {
        let data = app
            .data(
                &format!("{{ opportunities(filter: {filter}) {{ nodes {{ name }} }} }}"),
                json!({}),
            )
            .await;
        let mut got: Vec<&str> = data["opportunities"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].as_str().unwrap())
            .collect();
        got.sort();
        assert_eq!(got, expected, "{filter}");
    }
    for (order, expected) in [
        (
            r#"[{ field: AMOUNT, direction: DESC }]"#,
            ["Unpriced", "Large", "Medium", "Small"],
        ),
        (
            r#"[{ field: AMOUNT, direction: DESC, nulls: LAST }]"#,
            ["Large", "Medium", "Small", "Unpriced"],
        ),
        (
            r#"[{ field: CLOSE_DATE, nulls: FIRST }]"#,
            ["Unpriced", "Small", "Medium", "Large"],
        ),
        (
            r#"[{ field: IS_CLOSED, direction: DESC }, { field: NAME }]"#,
            ["Large", "Medium", "Small", "Unpriced"],
        ),
        (
            r#"[{ field: CREATED_AT, direction: DESC }]"#,
            ["Unpriced", "Large", "Medium", "Small"],
        ),
    ] {
        let data = app
            .data(
                &format!("{{ opportunities(orderBy: {order}) {{ nodes {{ name }} }} }}"),
                json!({}),
            )
            .await;
        let got: Vec<&str> = data["opportunities"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].as_str().unwrap())
            .collect();
        assert_eq!(got, expected, "{order}");
    }
    for (filter, field) in [
        (r#"{ amount: { gt: "1.234" } }"#, json!(["filter", "amount", "gt"])),
        (
            r#"{ closeDate: { eq: "2027-13-01" } }"#,
            json!(["filter", "closeDate", "eq"]),
        ),
        (
            r#"{ createdAt: { lt: "yesterday" } }"#,
            json!(["filter", "createdAt", "lt"]),
        ),
        (r#"{ id: { eq: "x" } }"#, json!(["filter", "id", "eq"])),
    ] {
        let error = app
            .error(
                &format!("{{ opportunities(filter: {filter}) {{ totalCount }} }}"),
                json!({}),
            )
            .await;
        assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{filter}");
        assert_eq!(error["extensions"]["field"], field, "{filter}: {error}");
    }
}

#[tokio::test]
async fn nested_lists_page_with_cursors_both_ways() {
    let app = TestApp::start().await;
    let acme = app.create("Account", json!({ "name": "Acme" })).await;
    let other = app.create("Account", json!({ "name": "Other" })).await;
    for i in 0..7 {
        app.create("Contact", json!({ "lastName": format!("C{i}"), "accountId": acme }))
            .await;
    }
    app.create("Contact", json!({ "lastName": "Elsewhere", "accountId": other }))
        .await;
    let query = "query($id: ID!, $first: Int, $after: String, $last: Int, $before: String) { account(id: $id) {
        contacts(first: $first, after: $after, last: $last, before: $before, orderBy: [{ field: LAST_NAME }]) {
          totalCount nodes { lastName } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }";
    let names = |data: &Value| texts(&data["account"]["contacts"]["nodes"], &["lastName"]);
    let mut forward = Vec::new();
    let mut after = Value::Null;
    for pages in 0.. {
        assert!(pages < 100, "paging did not end after 100 pages");
        let page = app.data(query, json!({ "id": acme, "first": 3, "after": after })).await;
        assert_eq!(
            page["account"]["contacts"]["totalCount"], 7,
            "the total ignores the cursor"
        );
        forward.extend(names(&page));
        let info = &page["account"]["contacts"]["pageInfo"];
        assert_eq!(info["hasPreviousPage"], !after.is_null());
        if info["hasNextPage"] == false {
            break;
        }
        after = info["endCursor"].clone();
    }
    assert_eq!(forward, ["C0", "C1", "C2", "C3", "C4", "C5", "C6"]);
    let mut backward = Vec::new();
    let mut before = Value::Null;
    for pages in 0.. {
        assert!(pages < 100, "paging did not end after 100 pages");
        let page = app
            .data(query, json!({ "id": acme, "last": 3, "before": before }))
            .await;
        let mut chunk = names(&page);
        chunk.extend(backward);
        backward = chunk;
        let info = &page["account"]["contacts"]["pageInfo"];
        if info["hasPreviousPage"] == false {
            break;
        }
        before = info["startCursor"].clone();
    }
    assert_eq!(backward, forward);
    let error = app
        .error(query, json!({ "id": acme, "first": 3, "after": "bogus" }))
        .await;
    assert_eq!(error["extensions"]["field"], json!(["after"]));
}

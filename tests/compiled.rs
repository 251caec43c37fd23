//! Compiled reads: once an operation has run through the resolvers, it
//! runs as one SQL statement. Every query here runs both ways and the two
//! answers must be the same bytes; anything the compiler does not handle
//! keeps being answered by the resolvers.

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::Method;
use serde_json::{json, Value};

use crate::support::{texts, TestApp};

/// Runs `query` twice: the first answer comes from the resolvers, the
/// second from one compiled statement, and they must be identical. A
/// comment makes each call's text new, so its first run is never compiled.
async fn both_ways(app: &TestApp, query: &str, variables: Value) -> Value {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let query = &format!("{query}\n# call {}", CALLS.fetch_add(1, Ordering::Relaxed));
    let (first, first_compiled) = run(app, query, &variables).await;
    let (second, second_compiled) = run(app, query, &variables).await;
    assert!(!first_compiled, "a first run goes through the resolvers: {query}");
    let parsed: Value = serde_json::from_str(&first).unwrap();
    assert!(parsed.get("errors").is_none(), "{query}\n{parsed:#}");
    assert!(second_compiled, "the second run is compiled: {query}");
    assert_eq!(first, second, "resolvers and compiled SQL answer alike: {query}");
    parsed["data"].clone()
}

/// Runs `query` `times` times; none may be compiled.
async fn never_compiled(app: &TestApp, query: &str, variables: Value, times: usize) -> Vec<Value> {
    let mut answers = Vec::new();
    for _ in 0..times {
        let (body, compiled) = run(app, query, &variables).await;
        assert!(!compiled, "must stay with the resolvers: {query}");
        answers.push(serde_json::from_str(&body).unwrap());
    }
    answers
}

/// The response body and whether a compiled statement answered it.
async fn run(app: &TestApp, query: &str, variables: &Value) -> (String, bool) {
    let before = app.metric("crm_graphql_compiled_total").await;
    let body = json!({ "query": query, "variables": variables })
        .to_string()
        .into_bytes();
    let response = app
        .request(Method::POST, "/graphql", &[("content-type", "application/json")], body)
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let after = app.metric("crm_graphql_compiled_total").await;
    (response.text(), after > before)
}

/// The id of the first node `query` lists under `list`.
async fn first_id(app: &TestApp, query: &str, list: &str) -> Value {
    app.data(query, json!({})).await[list]["nodes"][0]["id"].clone()
}

/// The demo data plus records that test the edges: a deleted account, an
/// account without optional values, text that needs escaping.
async fn populate(app: &TestApp) -> (String, String) {
    crm::seed::demo(&app.app).await.unwrap();
    let gone = app.create("Account", json!({ "name": "Gone Ltd" })).await;
    app.data(
        "mutation($id: ID!) { deleteAccount(id: $id) { id } }",
        json!({ "id": gone }),
    )
    .await;
    let odd = app
        .create(
            "Account",
            json!({ "name": "Odd \"Quoted\" \\ Back\nslash\ttab \u{1} ünïcödé 😀", "annualRevenue": "123456789012.34" }),
        )
        .await;
    app.create(
        "Contact",
        json!({ "lastName": "O'Brien", "firstName": "</script>", "accountId": odd, "birthdate": "1990-02-28" }),
    )
    .await;
    (gone, odd)
}

#[tokio::test]
async fn compiled_answers_match_the_resolvers() {
    let app = TestApp::start().await;
    let (gone, odd) = populate(&app).await;
    let accounts = app
        .data(
            "{ accounts(orderBy: [{ field: NAME }]) { nodes { id name } } }",
            json!({}),
        )
        .await;
    let acme = accounts["accounts"]["nodes"][0]["id"].as_str().unwrap().to_owned();

    // Single records: found, missing, deleted, every kind of value, escapes.
    both_ways(
        &app,
        "query Q1($id: ID!) { account(id: $id) { id name industry annualRevenue employeeCount } }",
        json!({ "id": acme }),
    )
    .await;
    let missing = both_ways(
        &app,
        "query($id: ID!) { account(id: $id) { id } }",
        json!({ "id": "00000000-0000-0000-0000-000000000000" }),
    )
    .await;
    assert_eq!(missing, json!({ "account": null }));
    let deleted = both_ways(
        &app,
        "query($id: ID!) { account(id: $id) { id } }",
        json!({ "id": gone }),
    )
    .await;
    assert_eq!(deleted, json!({ "account": null }));
    let every = "query($id: ID!) { account(id: $id) { __typename id createdAt updatedAt version deletedAt externalId
        ownerId owner { __typename id name email role active createdAt } createdById createdBy { email }
        name website domain industry type lifecycleStage annualRevenue employeeCount phone parentAccountId
        parentAccount { name } description billingStreet billingCity billingState billingPostalCode billingCountry
        shippingStreet shippingCity shippingState shippingPostalCode shippingCountry } }";
    both_ways(&app, every, json!({ "id": acme })).await;
    let escaped = both_ways(&app, every, json!({ "id": odd })).await;
    assert_eq!(
        escaped["account"]["name"],
        "Odd \"Quoted\" \\ Back\nslash\ttab \u{1} ünïcödé 😀"
    );
    assert_eq!(escaped["account"]["annualRevenue"], "123456789012.34");
    both_ways(
        &app,
        "query($id: ID!) { account(id: $id) { contacts { nodes { firstName lastName birthdate doNotContact } } } }",
        json!({ "id": odd }),
    )
    .await;

    // The benchmark's shapes.
    both_ways(
        &app,
        "{ accounts(first: 50, orderBy: [{ field: NAME }]) { nodes { id name contacts { nodes { id firstName lastName email title } } } } }",
        json!({}),
    )
    .await;
    let stage = first_id(
        &app,
        "{ stages(filter: { name: { eq: \"Qualification\" } }) { nodes { id } } }",
        "stages",
    )
    .await;
    both_ways(
        &app,
        "query($stage: ID!) { opportunities(first: 50, filter: { stageId: { eq: $stage } }) { nodes { id name amount account { name } primaryContact { email } } } }",
        json!({ "stage": stage }),
    )
    .await;
    both_ways(
        &app,
        "{ accounts(first: 20) { nodes { id name opportunities { nodes { id name activities { nodes { id subject type } } } } } } }",
        json!({}),
    )
    .await;

    // Nested pages read flat: a page size, an order, a filter and a cursor
    // applied to every parent's list.
    let nested = "query($after: String) { accounts(first: 4, orderBy: [{ field: NAME }]) { nodes { name
        contacts(first: 1, after: $after, orderBy: [{ field: LAST_NAME, direction: DESC }], filter: { lastName: { isNull: false } }) { nodes { lastName } }
        opportunities(first: 2, orderBy: [{ field: AMOUNT, direction: DESC, nulls: LAST }]) { nodes { name amount account { name } } } } } }";
    both_ways(&app, nested, json!({ "after": null })).await;
    let cursor = app
        .data(
            "{ contacts(first: 1, orderBy: [{ field: LAST_NAME, direction: DESC }]) { pageInfo { endCursor } } }",
            json!({}),
        )
        .await["contacts"]["pageInfo"]["endCursor"]
        .clone();
    both_ways(&app, nested, json!({ "after": cursor })).await;

    // Filters of every kind, orders with nulls, totals.
    for filter in [
        r#"{ industry: { eq: SOFTWARE } }"#,
        r#"{ industry: { neq: SOFTWARE } }"#,
        r#"{ industry: { in: [SOFTWARE, HEALTHCARE] }, employeeCount: { gte: 10 } }"#,
        r#"{ industry: { notIn: [SOFTWARE] } }"#,
        r#"{ industry: { isNull: true } }"#,
        r#"{ annualRevenue: { gt: "1000000", lte: "900000000" } }"#,
        r#"{ name: { ilike: "%a%" }, not: { name: { startsWith: "Ac" } } }"#,
        r#"{ or: [{ name: { contains: "Health" } }, { name: { like: "Init%" } }] }"#,
        r#"{ contacts: { some: { lastName: { startsWith: "L" } } } }"#,
        r#"{ contacts: { none: { email: { isNull: false } } } }"#,
        r#"{ opportunities: { every: { amount: { gt: "1000" } } } }"#,
        r#"{ owner: { email: { contains: "@" } }, createdAt: { lt: "2999-01-01T00:00:00Z" } }"#,
        r#"{ and: [] }"#,
    ] {
        let query = format!(
            "{{ accounts(filter: {filter}, orderBy: [{{ field: INDUSTRY, nulls: FIRST }}, {{ field: ANNUAL_REVENUE, direction: DESC }}])
                {{ totalCount nodes {{ name industry annualRevenue }} pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }} }} }}"
        );
        both_ways(&app, &query, json!({})).await;
    }

    // Deleted records on request, at the root and nested.
    let with_deleted = both_ways(
        &app,
        "{ accounts(includeDeleted: true, orderBy: [{ field: NAME }]) { totalCount nodes { name deletedAt } }
           users { nodes { ownedAccounts(includeDeleted: true) { totalCount } } } }",
        json!({}),
    )
    .await;
    assert_eq!(with_deleted["accounts"]["totalCount"], 8);

    // Fragments, aliases, __typename on every type, edges and more than
    // fifty keys in one object.
    let many: String = (0..60).map(|i| format!("n{i}: name ")).collect();
    both_ways(
        &app,
        &format!(
            "query Shapes {{ __typename first: accounts(first: 2) {{ __typename ...Page }} rest: accounts(first: 0) {{ totalCount pageInfo {{ __typename hasNextPage endCursor }} }}
               one: account(id: \"{acme}\") {{ {many} ... on Account {{ industry }} }} }}
             fragment Page on AccountConnection {{ edges {{ __typename cursor node {{ ...Names }} }} pageInfo {{ hasNextPage }} }}
             fragment Names on Account {{ id label: name contacts(first: 1) {{ __typename edges {{ cursor node {{ lastName }} }} }} }}"
        ),
        json!({}),
    )
    .await;
}

#[tokio::test]
async fn compiled_pages_continue_with_the_same_cursors() {
    let app = TestApp::start().await;
    populate(&app).await;
    let query = "query($first: Int, $after: String, $last: Int, $before: String) {
        accounts(first: $first, after: $after, last: $last, before: $before, orderBy: [{ field: NAME, direction: DESC }]) {
          totalCount edges { cursor node { name } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
          nodes { contacts(last: 1, orderBy: [{ field: LAST_NAME }]) { nodes { lastName } pageInfo { hasPreviousPage hasNextPage startCursor } } } } }";
    // Forwards: every page answered both ways alike, ending where it should.
    let mut names = Vec::new();
    let mut after = Value::Null;
    for pages in 0.. {
        assert!(pages < 100, "paging did not end after 100 pages");
        let page = both_ways(&app, query, json!({ "first": 2, "after": after })).await;
        let accounts = &page["accounts"];
        names.extend(
            accounts["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["name"].clone()),
        );
        if accounts["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = accounts["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(names.len(), 7);
    // Backwards to the start.
    let mut backwards = Vec::new();
    let mut before = Value::Null;
    for pages in 0.. {
        assert!(pages < 100, "paging did not end after 100 pages");
        let page = both_ways(&app, query, json!({ "last": 3, "before": before })).await;
        let accounts = &page["accounts"];
        let mut chunk: Vec<Value> = accounts["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["name"].clone())
            .collect();
        chunk.extend(backwards);
        backwards = chunk;
        if accounts["pageInfo"]["hasPreviousPage"] == false {
            break;
        }
        before = accounts["pageInfo"]["startCursor"].clone();
    }
    assert_eq!(backwards, names);
}

#[tokio::test]
async fn what_the_compiler_does_not_handle_stays_with_the_resolvers() {
    let app = TestApp::start().await;
    populate(&app).await;

    // Introspection and repeated keys.
    never_compiled(&app, "{ __schema { queryType { name } } }", json!({}), 2).await;
    never_compiled(
        &app,
        "{ accounts { totalCount } accounts { nodes { name } } }",
        json!({}),
        2,
    )
    .await;

    // An invalid query never runs compiled; its error stays the resolvers'.
    let invalid = never_compiled(&app, "{ accounts { nodes { nope } } }", json!({}), 2).await;
    assert_eq!(invalid[1]["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");

    // A compiled operation given bad values: the resolvers explain.
    let query = "query($id: ID!, $first: Int) { account(id: $id) { name contacts(first: $first) { totalCount } } }";
    let acme = first_id(
        &app,
        "{ accounts(filter: { name: { startsWith: \"Acme\" } }) { nodes { id } } }",
        "accounts",
    )
    .await;
    both_ways(&app, query, json!({ "id": acme, "first": 1 })).await;
    for (variables, code, field) in [
        (json!({ "id": "nope", "first": 1 }), "BAD_USER_INPUT", json!(["id"])),
        (json!({ "id": acme, "first": 501 }), "BAD_USER_INPUT", json!(["first"])),
        (json!({ "id": acme, "first": "ten" }), "BAD_USER_INPUT", Value::Null),
        (json!({ "first": 1 }), "BAD_USER_INPUT", Value::Null),
    ] {
        let answer = &never_compiled(&app, query, variables.clone(), 1).await[0];
        let error = &answer["errors"][0];
        assert_eq!(error["extensions"]["code"], code, "{variables}: {answer:#}");
        if !field.is_null() {
            assert_eq!(error["extensions"]["field"], field, "{variables}: {answer:#}");
        }
    }

    // Limits hold on compiled operations: over them, the resolvers refuse.
    let nested = "query($n: Int) { accounts(first: $n) { nodes { contacts(first: $n) { nodes { activities(first: $n) { nodes { subject } } } } } } }";
    both_ways(&app, nested, json!({ "n": 2 })).await;
    let refused = &never_compiled(&app, nested, json!({ "n": 500 }), 1).await[0];
    assert_eq!(refused["errors"][0]["extensions"]["code"], "QUERY_TOO_COMPLEX");
}

#[tokio::test]
async fn variables_of_every_type_compile_like_literals() {
    let app = TestApp::start().await;
    populate(&app).await;
    let selection = "totalCount nodes { name industry annualRevenue } pageInfo { hasNextPage endCursor }";

    // Filters and orderings as input-object, list and enum variables answer
    // as the same values written inline.
    let cases = [
        (
            r#"{ industry: { in: [SOFTWARE, HEALTHCARE] }, employeeCount: { gte: 10 } }"#,
            json!({ "industry": { "in": ["SOFTWARE", "HEALTHCARE"] }, "employeeCount": { "gte": 10 } }),
        ),
        (
            r#"{ annualRevenue: { gt: "1000000", lte: "900000000" } }"#,
            json!({ "annualRevenue": { "gt": "1000000", "lte": "900000000" } }),
        ),
        (
            r#"{ or: [{ name: { contains: "Health" } }, { name: { like: "Init%" } }], not: { industry: { isNull: true } } }"#,
            json!({ "or": [{ "name": { "contains": "Health" } }, { "name": { "like": "Init%" } }], "not": { "industry": { "isNull": true } } }),
        ),
        (
            r#"{ contacts: { some: { lastName: { startsWith: "L" } } } }"#,
            json!({ "contacts": { "some": { "lastName": { "startsWith": "L" } } } }),
        ),
    ];
    let order = json!([{ "field": "INDUSTRY", "nulls": "FIRST" }, { "field": "ANNUAL_REVENUE", "direction": "DESC" }]);
    for (literal, variable) in cases {
        let inline = both_ways(
            &app,
            &format!(
                "{{ accounts(filter: {literal}, orderBy: [{{ field: INDUSTRY, nulls: FIRST }}, {{ field: ANNUAL_REVENUE, direction: DESC }}]) {{ {selection} }} }}"
            ),
            json!({}),
        )
        .await;
        let passed = both_ways(
            &app,
            &format!("query($f: AccountFilter, $o: [AccountOrderBy!]) {{ accounts(filter: $f, orderBy: $o) {{ {selection} }} }}"),
            json!({ "f": variable, "o": order }),
        )
        .await;
        assert_eq!(inline, passed, "{literal}");
    }

    // An enum variable inside a literal, one value where a list is
    // declared (list coercion), an absent nullable variable and a default.
    let names = |data: &Value| {
        data["accounts"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].clone())
            .collect::<Vec<_>>()
    };
    let descending = both_ways(
        &app,
        "query($d: OrderDirection) { accounts(orderBy: [{ field: NAME, direction: $d }]) { nodes { name } } }",
        json!({ "d": "DESC" }),
    )
    .await;
    let single = both_ways(
        &app,
        "query($o: [AccountOrderBy!]) { accounts(orderBy: $o) { nodes { name } } }",
        json!({ "o": { "field": "NAME", "direction": "DESC" } }),
    )
    .await;
    assert_eq!(names(&descending), names(&single));
    let mut sorted = names(&descending);
    sorted.sort_by(|a, b| b.as_str().cmp(&a.as_str()));
    assert_eq!(names(&descending), sorted);
    let absent = both_ways(
        &app,
        "query($f: AccountFilter) { accounts(filter: $f) { totalCount } }",
        json!({}),
    )
    .await;
    assert_eq!(absent["accounts"]["totalCount"], 7);
    let defaulted = both_ways(
        &app,
        r#"query($f: AccountFilter = { name: { startsWith: "Acme" } }) { accounts(filter: $f) { totalCount } }"#,
        json!({}),
    )
    .await;
    assert_eq!(defaulted["accounts"]["totalCount"], 1);

    // @include and @skip, on fields, fragments and spreads, both ways.
    let query = "query($all: Boolean!, $hide: Boolean!) {
        accounts(first: 2, orderBy: [{ field: NAME }]) { totalCount nodes @include(if: $all) { name ... @skip(if: $hide) { industry } ...More @include(if: $all) } } }
        fragment More on Account { employeeCount }";
    for (all, hide) in [(true, false), (true, true), (false, false)] {
        let data = both_ways(&app, query, json!({ "all": all, "hide": hide })).await;
        match all {
            false => assert_eq!(data, json!({ "accounts": { "totalCount": 7 } })),
            true => {
                let node = &data["accounts"]["nodes"][0];
                assert_eq!(node.get("industry").is_some(), !hide, "{data}");
                assert!(node.get("employeeCount").is_some(), "{data}");
            }
        }
    }

    // Values the resolvers refuse are theirs to explain, never compiled.
    let query = "query($f: AccountFilter, $o: [AccountOrderBy!]) { accounts(filter: $f, orderBy: $o) { totalCount } }";
    both_ways(&app, query, json!({ "f": { "name": { "eq": "Acme" } } })).await;
    for variables in [
        json!({ "f": { "nope": { "eq": "Acme" } } }),
        json!({ "f": { "industry": { "eq": "NOT_AN_INDUSTRY" } } }),
        json!({ "f": { "employeeCount": { "gte": "ten" } } }),
        json!({ "f": "Acme" }),
        json!({ "o": [{ "direction": "DESC" }] }),
        json!({ "o": [{ "field": "NAME", "direction": "SIDEWAYS" }] }),
    ] {
        let answer = &never_compiled(&app, query, variables.clone(), 1).await[0];
        assert_eq!(
            answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{variables}: {answer:#}"
        );
        assert!(answer["data"].is_null(), "{variables}: {answer:#}");
    }
}

#[tokio::test]
async fn custom_fields_of_every_type_read_alike_both_ways() {
    let app = TestApp::start().await;
    populate(&app).await;
    let create = "mutation($input: CreateCustomFieldInput!) { createCustomField(input: $input) { name } }";
    for spec in [
        json!({ "name": "seats", "label": "Seats", "type": "INTEGER" }),
        json!({ "name": "score", "label": "Score", "type": "DECIMAL" }),
        json!({ "name": "discount", "label": "Discount", "type": "PERCENT" }),
        json!({ "name": "vip", "label": "VIP", "type": "BOOLEAN" }),
        json!({ "name": "renewalDate", "label": "Renewal date", "type": "DATE" }),
        json!({ "name": "lastSeenAt", "label": "Last seen", "type": "DATETIME" }),
        json!({ "name": "tier", "label": "Tier", "type": "PICKLIST", "options": [{ "value": "GOLD" }, { "value": "SILVER" }] }),
        json!({ "name": "interests", "label": "Interests", "type": "MULTI_PICKLIST", "options": [{ "value": "CRM" }, { "value": "ERP" }] }),
        json!({ "name": "referredBy", "label": "Referred by", "type": "LOOKUP", "lookupObject": "Account", "relationName": "referredContacts" }),
        json!({ "name": "profile", "label": "Profile", "type": "JSON" }),
    ] {
        let mut input = spec;
        input["object"] = json!("Contact");
        app.data(create, json!({ "input": input })).await;
    }
    let acme = first_id(
        &app,
        "{ accounts(filter: { name: { startsWith: \"Acme\" } }) { nodes { id } } }",
        "accounts",
    )
    .await;
    for (n, values) in [
        json!({ "seats": 12, "score": "-4.50", "discount": "12.50", "vip": true, "renewalDate": "2027-02-28",
                "lastSeenAt": "2026-11-29T10:11:12.345678Z", "tier": "GOLD", "interests": ["ERP", "CRM"],
                "referredById": acme, "profile": { "nested": { "list": [1, 2.5, null, "ü \"q\""] }, "b": true } }),
        json!({ "vip": false, "interests": [], "profile": "just text" }),
        json!({}),
    ]
    .into_iter()
    .enumerate()
    {
        let mut input = values;
        input["lastName"] = json!(format!("Custom {n}"));
        app.create("Contact", input).await;
    }
    let fields =
        "__typename id lastName seats score discount vip renewalDate lastSeenAt tier interests referredById profile";
    both_ways(
        &app,
        &format!("{{ contacts(filter: {{ lastName: {{ startsWith: \"Custom\" }} }}, orderBy: [{{ field: LAST_NAME }}]) {{ nodes {{ {fields} referredBy {{ name }} }} }} }}"),
        json!({}),
    )
    .await;
    let nested = both_ways(
        &app,
        &format!("query($id: ID!) {{ account(id: $id) {{ name referredContacts {{ nodes {{ {fields} }} }} }} }}"),
        json!({ "id": acme }),
    )
    .await;
    assert_eq!(
        nested["account"]["referredContacts"]["nodes"][0]["interests"],
        json!(["ERP", "CRM"])
    );
    assert_eq!(
        nested["account"]["referredContacts"]["nodes"][0]["profile"]["nested"]["list"][3],
        "ü \"q\""
    );
}

/// Pages sorted first through a lookup are found in the referred field's
/// index order (`records::window`), and pages sorted by own keys continue
/// by a row comparison: every page, forwards and backwards, on both paths,
/// is the order computed here from the rows themselves, with deleted and
/// empty lookups sorting as empty and ties broken by the other keys.
#[tokio::test]
async fn pages_sorted_through_a_lookup_follow_the_rows_order() {
    let app = TestApp::start().await;
    let mut accounts = std::collections::HashMap::new();
    for (key, name) in [("a", "Alpha"), ("b1", "Beta"), ("b2", "Beta"), ("g", "Gamma")] {
        accounts.insert(key, app.create("Account", json!({ "name": name })).await);
    }
    let mut contacts = Vec::new();
    for (last_name, account, name) in [
        ("Kim", Some("a"), Some("Alpha")),
        ("Lee", Some("b1"), Some("Beta")),
        ("Ade", Some("b2"), Some("Beta")),
        ("Zed", Some("b1"), Some("Beta")),
        ("Moe", None, None),
        ("Ann", Some("g"), None),
        ("Bob", None, None),
        ("Cy", Some("a"), Some("Alpha")),
        ("Dee", Some("b2"), Some("Beta")),
        ("Kim", Some("b1"), Some("Beta")),
    ] {
        let id = app
            .create(
                "Contact",
                json!({ "lastName": last_name, "accountId": account.map(|a| accounts[a].clone()) }),
            )
            .await;
        contacts.push((name.map(str::to_owned), last_name.to_owned(), id));
    }
    // A contact of a deleted account sorts as if it had none.
    app.data(
        "mutation($id: ID!) { deleteAccount(id: $id) { id } }",
        json!({ "id": accounts["g"] }),
    )
    .await;

    type Row = (Option<String>, String, String);
    type Rule = fn(&Row, &Row) -> std::cmp::Ordering;
    // Empty names last when ascending, first when descending (Postgres' default).
    fn by_name(a: &Row, b: &Row, descending: bool, nulls_first: bool) -> std::cmp::Ordering {
        use std::cmp::Ordering::{Equal, Greater, Less};
        match (&a.0, &b.0) {
            (None, None) => Equal,
            (None, Some(_)) => {
                if nulls_first {
                    Less
                } else {
                    Greater
                }
            }
            (Some(_), None) => {
                if nulls_first {
                    Greater
                } else {
                    Less
                }
            }
            (Some(x), Some(y)) if descending => y.cmp(x),
            (Some(x), Some(y)) => x.cmp(y),
        }
    }
    let orders: [(&str, Rule); 6] = [
        // Own NOT NULL keys page by a row comparison: `(last_name, id) > (…)`.
        ("{ field: LAST_NAME }", |a, b| a.1.cmp(&b.1).then(a.2.cmp(&b.2))),
        ("{ field: LAST_NAME, direction: DESC }", |a, b| {
            b.1.cmp(&a.1).then(b.2.cmp(&a.2))
        }),
        ("{ account: NAME }", |a, b| {
            by_name(a, b, false, false).then(a.2.cmp(&b.2))
        }),
        ("{ account: NAME, direction: DESC }", |a, b| {
            by_name(a, b, true, true).then(b.2.cmp(&a.2))
        }),
        ("{ account: NAME, direction: DESC, nulls: LAST }", |a, b| {
            by_name(a, b, true, false).then(b.2.cmp(&a.2))
        }),
        ("{ account: NAME }, { field: LAST_NAME, direction: DESC }", |a, b| {
            by_name(a, b, false, false).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2))
        }),
    ];
    let names = |data: &Value| texts(&data["contacts"]["edges"], &["node", "lastName"]);
    for (order, rule) in orders {
        let mut expected = contacts.clone();
        expected.sort_by(rule);
        let expected: Vec<String> = expected.into_iter().map(|row| row.1).collect();
        let query = |arguments: &str| {
            format!(
                "{{ contacts(orderBy: [{order}]{arguments}) {{ edges {{ cursor node {{ lastName }} }} pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }} }} }}"
            )
        };
        let all = both_ways(&app, &query(", first: 50"), json!({})).await;
        assert_eq!(names(&all), expected, "{order}");

        let mut forwards = Vec::new();
        let mut after = String::new();
        loop {
            let page = both_ways(&app, &query(&format!(", first: 2{after}")), json!({})).await;
            forwards.extend(names(&page));
            let info = &page["contacts"]["pageInfo"];
            if info["hasNextPage"] != true {
                break;
            }
            after = format!(", after: \"{}\"", info["endCursor"].as_str().unwrap());
        }
        assert_eq!(forwards, expected, "forwards by 2: {order}");

        let mut backwards = Vec::new();
        let mut before = String::new();
        loop {
            let page = both_ways(&app, &query(&format!(", last: 2{before}")), json!({})).await;
            backwards.splice(0..0, names(&page));
            let info = &page["contacts"]["pageInfo"];
            if info["hasPreviousPage"] != true {
                break;
            }
            before = format!(", before: \"{}\"", info["startCursor"].as_str().unwrap());
        }
        assert_eq!(backwards, expected, "backwards by 2: {order}");
    }
}

/// Relay's shapes (`edges`, `cursor`, `pageInfo`, `totalCount`, backward
/// pages, nested too) run as flat statements: one per level plus one per
/// count, answering byte for byte as the resolvers do.
#[tokio::test]
async fn connections_of_every_shape_read_flat() {
    let app = TestApp::start().await;
    populate(&app).await;
    let info = "pageInfo { __typename hasNextPage hasPreviousPage startCursor endCursor }";
    let shapes = [
        // query, statements when compiled
        ("{ accounts { totalCount } }".to_owned(), 1),
        (format!("{{ accounts(first: 3, orderBy: [{{ field: NAME }}]) {{ {info} }} }}"), 1),
        ("{ accounts(first: 2) { __typename edges { __typename cursor } } }".to_owned(), 1),
        (
            format!(
                "{{ accounts(last: 2, orderBy: [{{ field: NAME }}]) {{ totalCount edges {{ cursor node {{ name \
                 contacts(last: 1) {{ totalCount edges {{ cursor node {{ lastName }} }} {info} }} }} }} {info} }} }}"
            ),
            3,
        ),
        (
            format!(
                "{{ contacts(first: 4, orderBy: [{{ account: NAME }}, {{ field: LAST_NAME }}]) {{ nodes {{ lastName account {{ name }} }} {info} }} }}"
            ),
            2,
        ),
        (
            format!("{{ accounts(first: 0) {{ totalCount nodes {{ name }} {info} }} }}"),
            2,
        ),
    ];
    for (query, statements) in shapes {
        let data = both_ways(&app, &query, json!({})).await;
        assert!(
            data.get("accounts").or(data.get("contacts")).is_some(),
            "{query}: {data}"
        );
        // A text's first run goes through the resolvers.
        run(&app, &query, &json!({})).await;
        let before = app.statements().await;
        let (_, compiled) = run(&app, &query, &json!({})).await;
        assert!(compiled, "{query}");
        assert_eq!(app.statements().await - before, statements, "{query}");
    }
    // Continuing from a flat page's cursor, either way, matches the resolvers.
    let first = both_ways(
        &app,
        &format!(
            "{{ accounts(first: 2, orderBy: [{{ field: NAME, direction: DESC }}]) {{ edges {{ cursor }} {info} }} }}"
        ),
        json!({}),
    )
    .await;
    let end = first["accounts"]["pageInfo"]["endCursor"].as_str().unwrap();
    let next = both_ways(
        &app,
        &format!("{{ accounts(first: 2, after: \"{end}\", orderBy: [{{ field: NAME, direction: DESC }}]) {{ nodes {{ name }} {info} }} }}"),
        json!({}),
    )
    .await;
    let back = both_ways(
        &app,
        &format!("{{ accounts(last: 5, before: \"{end}\", orderBy: [{{ field: NAME, direction: DESC }}]) {{ nodes {{ name }} {info} }} }}"),
        json!({}),
    )
    .await;
    assert_eq!(next["accounts"]["pageInfo"]["hasPreviousPage"], true);
    assert_eq!(back["accounts"]["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(back["accounts"]["pageInfo"]["hasNextPage"], true);
}

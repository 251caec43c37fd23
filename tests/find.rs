//! Find anything, keep it clean: search across objects (accents, case and
//! typos aside, ranked, paged, visible records only), duplicate rules on
//! every write path, merge with tombstones and unmerge, and the 360°
//! timeline.

use serde_json::{json, Value};

use crate::support::{texts, TestApp};

const SEARCH: &str = "query($q: String!, $objects: [String!], $filter: SearchFilter, $first: Int, $after: String) {
    search(query: $q, objects: $objects, filter: $filter, first: $first, after: $after) {
        edges { cursor node { object id title rank record { __typename ... on Contact { email } ... on Account { name } } } }
        pageInfo { hasNextPage endCursor } } }";

async fn search(app: &TestApp, query: &str, variables: Value) -> Vec<Value> {
    let mut variables = variables;
    variables["q"] = json!(query);
    let data = app.data(SEARCH, variables).await;
    data["search"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|edge| edge["node"].clone())
        .collect()
}

fn titles(hits: &[Value]) -> Vec<String> {
    hits.iter()
        .map(|h| h["title"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn search_finds_records_by_name_and_email_accents_and_typos_aside() {
    let app = TestApp::start().await;
    let acme = app.create("Account", json!({ "name": "Acme Müller GmbH" })).await;
    app.create("Account", json!({ "name": "Globex" })).await;
    let john = app
        .create(
            "Contact",
            json!({ "firstName": "John", "lastName": "Smith", "email": "john.smith@acme.example", "accountId": acme }),
        )
        .await;
    app.create(
        "Contact",
        json!({ "firstName": "Hans", "lastName": "Müller", "email": "hm@globex.example" }),
    )
    .await;
    app.create(
        "Lead",
        json!({ "firstName": "Jane", "lastName": "Doe", "company": "Initech" }),
    )
    .await;

    // Accents aside, across objects: the account and the contact.
    let hits = search(&app, "muller", json!({})).await;
    let mut found = titles(&hits);
    found.sort();
    assert_eq!(found, ["Acme Müller GmbH", "Hans Müller"]);
    // A typo still finds John, and the record comes with the hit.
    let hits = search(&app, "Jonh", json!({})).await;
    assert_eq!(titles(&hits)[0], "John Smith", "{hits:?}");
    assert_eq!(hits[0]["id"], john);
    assert_eq!(
        hits[0]["record"],
        json!({ "__typename": "Contact", "email": "john.smith@acme.example" })
    );
    assert!(hits[0]["rank"].as_f64().unwrap() < 1.0, "a typo ranks below a match");
    // Email words and prefixes; a lead's company.
    assert_eq!(titles(&search(&app, "acme.example", json!({})).await), ["John Smith"]);
    assert_eq!(titles(&search(&app, "initec", json!({})).await), ["Jane Doe"]);
    // Objects and per-object filters narrow the hits.
    let contacts = search(&app, "muller", json!({ "objects": ["Contact"] })).await;
    assert_eq!(titles(&contacts), ["Hans Müller"]);
    let filtered = search(
        &app,
        "muller",
        json!({ "filter": { "contacts": { "email": { "startsWith": "nobody" } } } }),
    )
    .await;
    assert_eq!(titles(&filtered), ["Acme Müller GmbH"]);

    // Keyset pages: one hit a page, no hit twice, in rank order.
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = app
            .data(SEARCH, json!({ "q": "muller", "first": 1, "after": after }))
            .await;
        let page = &data["search"];
        seen.extend(texts(&page["edges"], &["node", "title"]));
        if page["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen.len(), 2);
    assert_ne!(seen[0], seen[1]);

    // A custom field marked searchable is searchable at once; only its
    // object's indexes are built again (the others match their fields).
    let others =
        "SELECT sum(c.oid::bigint)::bigint AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE n.nspname = 'crm' AND c.relname ~ '^(account|lead|opportunity)_search_'";
    let before = app.scalar(others).await;
    app.data(
        r#"mutation { createCustomField(input: { object: "Contact", name: "nickname", label: "Nickname", type: TEXT, searchable: true }) { name searchable } }"#,
        json!({}),
    )
    .await;
    app.data(
        "mutation($id: ID!) { updateContact(id: $id, input: { nickname: \"Johnny Zebra\" }) { id } }",
        json!({ "id": john }),
    )
    .await;
    assert_eq!(titles(&search(&app, "zebra", json!({})).await), ["John Smith"]);
    assert_eq!(app.scalar(others).await, before);
    let six = "SELECT count(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
               WHERE n.nspname = 'crm' AND c.relname ~ '^(account|lead|opportunity)_search_'";
    assert_eq!(app.scalar(six).await, 6);

    // Bad input is refused with the argument's path.
    let error = app.error(SEARCH, json!({ "q": "  !! " })).await;
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(error["extensions"]["field"], json!(["query"]));
    let error = app.error(SEARCH, json!({ "q": "x", "objects": ["Pipeline"] })).await;
    assert_eq!(error["extensions"]["field"], json!(["objects", 0]));
    let error = app.error(SEARCH, json!({ "q": "x", "after": "garbage" })).await;
    assert_eq!(error["extensions"]["field"], json!(["after"]));
}

#[tokio::test]
async fn search_sees_only_what_the_caller_may_read() {
    let app = TestApp::start().await;
    app.data(
        "mutation { updateWorkspaceSettings(input: { recordVisibility: OWNED }) { recordVisibility } }",
        json!({}),
    )
    .await;
    let (rep, rep_token) = app.user("rep@example.com", "SALES").await;
    app.create("Contact", json!({ "firstName": "Secret", "lastName": "Admin-Owned" }))
        .await;
    app.create(
        "Contact",
        json!({ "firstName": "Secret", "lastName": "Rep-Owned", "ownerId": rep }),
    )
    .await;
    let data = app.graphql_as(&rep_token, SEARCH, json!({ "q": "secret" })).await;
    assert_eq!(
        texts(&data["data"]["search"]["edges"], &["node", "title"]),
        ["Secret Rep-Owned"]
    );
}

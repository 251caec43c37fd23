//! Relations load through DataLoader: a query's SQL statements depend on
//! its depth, not on how many records it returns. Once an operation has
//! run, it runs again compiled: one flat statement per level, or one
//! statement in all for the shapes only the JSON statement covers.

use serde_json::json;

use crate::support::TestApp;

const QUERY: &str = "query OPERATION($first: Int) { accounts(first: $first, orderBy: [{ field: NAME }]) { nodes {
    name
    contacts { nodes { lastName account { name } } }
    opportunities { nodes { name primaryContact { lastName } } }
} } }";

async fn populate(app: &TestApp, accounts: usize) {
    for i in 0..accounts {
        let account = app
            .create("Account", json!({ "name": format!("Account {i:03}") }))
            .await;
        let mut first = None;
        for c in 0..2 {
            let contact = app
                .create(
                    "Contact",
                    json!({ "lastName": format!("Contact {i}-{c}"), "accountId": account }),
                )
                .await;
            first.get_or_insert(contact);
        }
        for o in 0..2 {
            app.create(
                "Opportunity",
                json!({ "name": format!("Deal {i}-{o}"), "accountId": account, "primaryContactId": first }),
            )
            .await;
        }
    }
}

async fn statements_for(app: &TestApp, operation: &str, first: usize) -> u64 {
    let before = app.statements().await;
    let data = app
        .data(&QUERY.replace("OPERATION", operation), json!({ "first": first }))
        .await;
    let after = app.statements().await;
    let nodes = data["accounts"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), first);
    for node in nodes {
        assert_eq!(node["contacts"]["nodes"].as_array().unwrap().len(), 2);
        assert_eq!(node["contacts"]["nodes"][0]["account"]["name"], node["name"]);
        assert_eq!(node["opportunities"]["nodes"].as_array().unwrap().len(), 2);
        assert!(node["opportunities"]["nodes"][0]["primaryContact"]["lastName"].is_string());
    }
    after - before
}

#[tokio::test]
async fn fifty_accounts_with_relations_cost_a_fixed_number_of_statements() {
    let app = TestApp::start().await;
    populate(&app, 50).await;
    // accounts + contacts + opportunities + contacts' accounts + opportunities' primary contacts.
    // Each operation's first run goes through the resolvers.
    let for_fifty = statements_for(&app, "Fifty", 50).await;
    let for_five = statements_for(&app, "Five", 5).await;
    assert_eq!(for_fifty, 5, "50 accounts: one statement per relation per level");
    assert_eq!(for_five, for_fifty, "the statement count does not grow with the page");
    // From then on each runs compiled, as flat statements: one per list or
    // lookup, each batched over all its parents, whatever the page size.
    let compiled = app.metric("crm_graphql_compiled_total").await;
    assert_eq!(statements_for(&app, "Fifty", 50).await, 5);
    assert_eq!(statements_for(&app, "Five", 50).await, 5);
    assert_eq!(statements_for(&app, "Five", 5).await, 5);
    assert_eq!(app.metric("crm_graphql_compiled_total").await, compiled + 3);
    // A count is one statement more.
    let counted = QUERY
        .replace("OPERATION", "Counted")
        .replace("{ nodes {\n    name", "{ totalCount nodes {\n    name");
    assert!(counted.contains("totalCount"));
    app.data(&counted, json!({ "first": 5 })).await;
    let before = app.statements().await;
    app.data(&counted, json!({ "first": 5 })).await;
    assert_eq!(app.statements().await - before, 6);
    // A shape the flat statements do not cover (two node selections in one
    // connection) is one statement that builds the JSON.
    let twice = QUERY
        .replace("OPERATION", "Twice")
        .replace("{ nodes {\n    name", "{ edges { node { id } } nodes {\n    name");
    assert!(twice.contains("edges"));
    app.data(&twice, json!({ "first": 5 })).await;
    let before = app.statements().await;
    app.data(&twice, json!({ "first": 5 })).await;
    assert_eq!(app.statements().await - before, 1);
}

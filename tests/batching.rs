//! Relations load through DataLoader: a query's SQL statements depend on
//! its depth, not on how many records it returns. Once an operation has
//! run, it runs again as one compiled statement.

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
    // From then on each runs as one statement, whatever the page size.
    assert_eq!(statements_for(&app, "Fifty", 50).await, 1);
    assert_eq!(statements_for(&app, "Five", 50).await, 1);
    assert_eq!(statements_for(&app, "Five", 5).await, 1);
}

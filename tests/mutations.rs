//! Creating, changing, deleting and restoring records, and what bad input
//! gets: a clean error with a code and a field path, and nothing written.

use serde_json::{json, Value};

use crate::support::TestApp;

const CREATE_CONTACT: &str = "mutation($input: CreateContactInput!) { createContact(input: $input) { id } }";
const CREATE_ACCOUNT: &str = "mutation($input: CreateAccountInput!) { createAccount(input: $input) { id } }";
const UPDATE_ACCOUNT: &str = "mutation($id: ID!, $input: UpdateAccountInput!, $v: Int) {
    updateAccount(id: $id, input: $input, expectedVersion: $v) { name website version updatedAt createdAt } }";

async fn count(app: &TestApp, object: &str) -> i64 {
    let data = app
        .data(
            &format!("{{ {object}(includeDeleted: true) {{ totalCount }} }}"),
            json!({}),
        )
        .await;
    data[object]["totalCount"].as_i64().unwrap()
}

#[tokio::test]
async fn create_update_delete_restore() {
    let app = TestApp::start().await;
    let created = app
        .data(
            "mutation { createAccount(input: { name: \"Acme\", industry: SOFTWARE, annualRevenue: \"1234567.89\" }) {
                 id name industry annualRevenue version createdAt updatedAt deletedAt } }",
            json!({}),
        )
        .await["createAccount"]
        .clone();
    assert_eq!(created["version"], 1);
    assert_eq!(created["annualRevenue"], "1234567.89");
    assert_eq!(created["deletedAt"], Value::Null);
    let id = created["id"].as_str().unwrap().to_owned();

    // Update bumps the version; null clears an optional field.
    let updated = app
        .data(
            UPDATE_ACCOUNT,
            json!({ "id": id, "input": { "name": "Acme Inc", "website": "acme.example" }, "v": 1 }),
        )
        .await["updateAccount"]
        .clone();
    assert_eq!(updated["name"], "Acme Inc");
    assert_eq!(updated["version"], 2);
    assert!(updated["updatedAt"].as_str().unwrap() > created["updatedAt"].as_str().unwrap());
    let cleared = app
        .data(UPDATE_ACCOUNT, json!({ "id": id, "input": { "website": null } }))
        .await;
    assert_eq!(cleared["updateAccount"]["website"], Value::Null);
    assert_eq!(cleared["updateAccount"]["version"], 3);

    // A stale expected version is a conflict and changes nothing.
    let stale = app
        .error(
            UPDATE_ACCOUNT,
            json!({ "id": id, "input": { "name": "Lost update" }, "v": 1 }),
        )
        .await;
    assert_eq!(stale["extensions"]["code"], "CONFLICT");
    let now = app
        .data(
            "query($id: ID!) { account(id: $id) { name version } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(now["account"], json!({ "name": "Acme Inc", "version": 3 }));

    // Delete hides the record; restore brings it back.
    let deleted = app
        .data(
            "mutation($id: ID!) { deleteAccount(id: $id) { deletedAt version } }",
            json!({ "id": id }),
        )
        .await;
    assert!(deleted["deleteAccount"]["deletedAt"].is_string());
    let hidden = app
        .data(
            "query($id: ID!) { account(id: $id) { name } accounts { totalCount } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(hidden, json!({ "account": null, "accounts": { "totalCount": 0 } }));
    let listed = app
        .data(
            "{ accounts(includeDeleted: true) { nodes { name deletedAt } } }",
            json!({}),
        )
        .await;
    assert_eq!(listed["accounts"]["nodes"][0]["name"], "Acme Inc");
    let again = app
        .error(
            "mutation($id: ID!) { deleteAccount(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(again["extensions"]["code"], "NOT_FOUND");
    let gone = app
        .error(UPDATE_ACCOUNT, json!({ "id": id, "input": { "name": "x" } }))
        .await;
    assert_eq!(gone["extensions"]["code"], "NOT_FOUND");
    let restored = app
        .data(
            "mutation($id: ID!) { restoreAccount(id: $id) { name deletedAt } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        restored["restoreAccount"],
        json!({ "name": "Acme Inc", "deletedAt": null })
    );
}

#[tokio::test]
async fn relations_are_set_by_id_and_checked() {
    let app = TestApp::start().await;
    let account = app.create("Account", json!({ "name": "Initech" })).await;
    let contact = app
        .create("Contact", json!({ "lastName": "Turing", "accountId": account }))
        .await;
    let opportunity = app
        .create(
            "Opportunity",
            json!({ "name": "50 seats", "accountId": account, "primaryContactId": contact, "amount": 60000 }),
        )
        .await;
    let data = app
        .data(
            "query($id: ID!) { opportunity(id: $id) { amount currency accountId account { name } primaryContact { lastName } } }",
            json!({ "id": opportunity }),
        )
        .await;
    assert_eq!(
        data["opportunity"],
        json!({ "amount": "60000.00", "currency": "USD", "accountId": account, "account": { "name": "Initech" }, "primaryContact": { "lastName": "Turing" } })
    );

    // Nested lists hide deleted records unless asked for them.
    let gone = app
        .create("Contact", json!({ "lastName": "Gone", "accountId": account }))
        .await;
    app.data(
        "mutation($id: ID!) { deleteContact(id: $id) { id } }",
        json!({ "id": gone }),
    )
    .await;
    let trash = app
        .data(
            "query($id: ID!) { account(id: $id) { live: contacts { totalCount } all: contacts(includeDeleted: true) {
                totalCount nodes { lastName deletedAt } } } }",
            json!({ "id": account }),
        )
        .await;
    assert_eq!(trash["account"]["live"]["totalCount"], 1);
    assert_eq!(trash["account"]["all"]["totalCount"], 2);
    assert!(trash["account"]["all"]["nodes"][1]["deletedAt"].is_string(), "{trash}");
    // A lookup to a record that does not exist, or is deleted, is refused.
    let missing = app
        .error(
            CREATE_CONTACT,
            json!({ "input": { "lastName": "Ghost", "accountId": "00000000-0000-4000-8000-000000000000" } }),
        )
        .await;
    assert_eq!(missing["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(missing["extensions"]["field"], json!(["input", "accountId"]));
    app.data(
        "mutation($id: ID!) { deleteAccount(id: $id) { id } }",
        json!({ "id": account }),
    )
    .await;
    let deleted = app
        .error(
            CREATE_CONTACT,
            json!({ "input": { "lastName": "Late", "accountId": account } }),
        )
        .await;
    assert_eq!(deleted["extensions"]["field"], json!(["input", "accountId"]));
    // A contact whose account is deleted shows no account.
    let orphan = app
        .data(
            "query($id: ID!) { contact(id: $id) { account { name } accountId } }",
            json!({ "id": contact }),
        )
        .await;
    assert_eq!(orphan["contact"]["account"], Value::Null);
    assert_eq!(count(&app, "contacts").await, 2);
}

#[tokio::test]
async fn bad_input_gets_a_clean_error_and_writes_nothing() {
    let app = TestApp::start().await;
    let cases: Vec<(&str, Value, Value)> = vec![
        // (mutation, variables, expected field path)
        (CREATE_ACCOUNT, json!({ "input": {} }), json!(["input", "name"])),
        (
            CREATE_ACCOUNT,
            json!({ "input": { "name": "" } }),
            json!(["input", "name"]),
        ),
        (
            CREATE_ACCOUNT,
            json!({ "input": { "name": "x".repeat(256) } }),
            json!(["input", "name"]),
        ),
        (
            CREATE_ACCOUNT,
            json!({ "input": { "name": "A", "employeeCount": "many" } }),
            json!(["input", "employeeCount"]),
        ),
        (
            CREATE_ACCOUNT,
            json!({ "input": { "name": "A", "employeeCount": -1 } }),
            json!(["input", "employeeCount"]),
        ),
        (
            CREATE_ACCOUNT,
            json!({ "input": { "name": "A", "employeeCount": 3_000_000_000u64 } }),
            json!(["input", "employeeCount"]),
        ),
        (
            CREATE_ACCOUNT,
            json!({ "input": { "name": "A", "industry": "MINING" } }),
            json!(["input", "industry"]),
        ),
        (
            CREATE_ACCOUNT,
            json!({ "input": { "name": "A", "annualRevenue": "12.345" } }),
            json!(["input", "annualRevenue"]),
        ),
        (
            CREATE_ACCOUNT,
            json!({ "input": { "name": "A", "annualRevenue": "1e9" } }),
            json!(["input", "annualRevenue"]),
        ),
        (
            CREATE_ACCOUNT,
            json!({ "input": { "name": "A", "annualRevenue": "99999999999999999" } }),
            json!(["input", "annualRevenue"]),
        ),
        (
            CREATE_ACCOUNT,
            json!({ "input": { "name": "A", "website": "not a url" } }),
            json!(["input", "website"]),
        ),
        (
            CREATE_ACCOUNT,
            json!({ "input": { "name": "A", "id": "00000000-0000-4000-8000-000000000000" } }),
            json!(["input", "id"]),
        ),
        (
            CREATE_ACCOUNT,
            json!({ "input": { "name": "A", "nickname": "x" } }),
            json!(["input", "nickname"]),
        ),
        (
            CREATE_CONTACT,
            json!({ "input": { "lastName": "B", "email": "b@" } }),
            json!(["input", "email"]),
        ),
        (
            CREATE_CONTACT,
            json!({ "input": { "lastName": "B", "accountId": "42" } }),
            json!(["input", "accountId"]),
        ),
        (
            CREATE_CONTACT,
            json!({ "input": { "lastName": "B\u{0}" } }),
            json!(["input", "lastName"]),
        ),
        (
            "mutation($input: CreateOpportunityInput!) { createOpportunity(input: $input) { id } }",
            json!({ "input": { "name": "Deal", "currency": "usd" } }),
            json!(["input", "currency"]),
        ),
        (
            "mutation($input: CreateOpportunityInput!) { createOpportunity(input: $input) { id } }",
            json!({ "input": { "name": "Deal", "closeDate": "2027-02-30" } }),
            json!(["input", "closeDate"]),
        ),
    ];
    for (mutation, variables, field) in cases {
        let error = app.error(mutation, variables.clone()).await;
        assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{variables}: {error:#}");
        assert_eq!(error["extensions"]["field"], field, "{variables}: {error:#}");
        let message = error["message"].as_str().unwrap().to_lowercase();
        for leak in ["select", "insert", "violates", "constraint", "postgres"] {
            assert!(!message.contains(leak), "error leaks SQL: {message}");
        }
    }
    assert_eq!(count(&app, "accounts").await, 0);
    assert_eq!(count(&app, "contacts").await, 0);
    assert_eq!(count(&app, "opportunities").await, 0);

    // Update and delete of unknown or malformed ids.
    let unknown = app
        .error(
            UPDATE_ACCOUNT,
            json!({ "id": "00000000-0000-4000-8000-000000000000", "input": { "name": "x" } }),
        )
        .await;
    assert_eq!(unknown["extensions"]["code"], "NOT_FOUND");
    let malformed = app
        .error("mutation { deleteContact(id: \"nope\") { id } }", json!({}))
        .await;
    assert_eq!(malformed["extensions"]["field"], json!(["id"]));
    let empty = app
        .error(
            UPDATE_ACCOUNT,
            json!({ "id": "00000000-0000-4000-8000-000000000000", "input": {} }),
        )
        .await;
    assert_eq!(empty["extensions"]["field"], json!(["input"]));
    let required = app
        .error(
            UPDATE_ACCOUNT,
            json!({ "id": "00000000-0000-4000-8000-000000000000", "input": { "name": null } }),
        )
        .await;
    assert_eq!(required["extensions"]["field"], json!(["input", "name"]));
}

#[tokio::test]
async fn batches_are_all_or_nothing_and_name_the_failing_item() {
    let app = TestApp::start().await;
    let create = "mutation($inputs: [CreateAccountInput!]!) { createAccounts(inputs: $inputs) { id name version } }";
    let created = app
        .data(
            create,
            json!({ "inputs": [{ "name": "One" }, { "name": "Two" }, { "name": "Three" }] }),
        )
        .await;
    let created = created["createAccounts"].as_array().unwrap().clone();
    assert_eq!(
        created.iter().map(|a| a["name"].as_str().unwrap()).collect::<Vec<_>>(),
        ["One", "Two", "Three"]
    );

    let error = app
        .error(
            create,
            json!({ "inputs": [{ "name": "Four" }, { "name": "" }, { "name": "Six" }] }),
        )
        .await;
    assert_eq!(error["extensions"]["field"], json!(["inputs", 1, "name"]));
    let error = app
        .error(
            "mutation($inputs: [CreateContactInput!]!) { createContacts(inputs: $inputs) { id } }",
            json!({ "inputs": [
            { "lastName": "Fine" }, { "lastName": "Ghost", "accountId": "00000000-0000-4000-8000-000000000000" }] }),
        )
        .await;
    assert_eq!(error["extensions"]["field"], json!(["inputs", 1, "accountId"]));
    let too_many: Vec<Value> = (0..501).map(|i| json!({ "name": format!("A{i}") })).collect();
    let error = app.error(create, json!({ "inputs": too_many })).await;
    assert_eq!(error["extensions"]["field"], json!(["inputs"]));
    assert_eq!(count(&app, "accounts").await, 3);
    assert_eq!(count(&app, "contacts").await, 0);

    let update = "mutation($inputs: [AccountUpdate!]!) { updateAccounts(inputs: $inputs) { name version } }";
    let ids: Vec<&str> = created.iter().map(|a| a["id"].as_str().unwrap()).collect();
    let updated = app
        .data(
            update,
            json!({ "inputs": [
            { "id": ids[0], "input": { "name": "One!" }, "expectedVersion": 1 },
            { "id": ids[1], "input": { "employeeCount": 5 } }] }),
        )
        .await;
    assert_eq!(
        updated["updateAccounts"],
        json!([{ "name": "One!", "version": 2 }, { "name": "Two", "version": 2 }])
    );
    // A stale version anywhere refuses the whole batch, and says the current version.
    let error = app
        .error(
            update,
            json!({ "inputs": [
            { "id": ids[2], "input": { "name": "Three!" } },
            { "id": ids[0], "input": { "name": "Lost" }, "expectedVersion": 1 }] }),
        )
        .await;
    assert_eq!(error["extensions"]["code"], "CONFLICT");
    assert_eq!(error["extensions"]["currentVersion"], 2);
    let three = app
        .data(
            "query($id: ID!) { account(id: $id) { name version } }",
            json!({ "id": ids[2] }),
        )
        .await;
    assert_eq!(three["account"], json!({ "name": "Three", "version": 1 }));
    let error = app
        .error(
            update,
            json!({ "inputs": [{ "id": "nope", "input": { "name": "x" } }] }),
        )
        .await;
    assert_eq!(error["extensions"]["field"], json!(["inputs", 0, "id"]));
}

#[tokio::test]
async fn upsert_by_external_id() {
    let app = TestApp::start().await;
    let upsert =
        "mutation($ext: String!, $input: CreateAccountInput!) { upsertAccount(externalId: $ext, input: $input) {
        id name industry externalId version deletedAt } }";
    let first = app
        .data(
            upsert,
            json!({ "ext": "sf-001", "input": { "name": "Acme", "industry": "SOFTWARE" } }),
        )
        .await;
    let first = &first["upsertAccount"];
    assert_eq!(
        (first["version"].clone(), first["externalId"].clone()),
        (json!(1), json!("sf-001"))
    );
    let second = app
        .data(upsert, json!({ "ext": "sf-001", "input": { "name": "Acme Corp" } }))
        .await;
    let second = &second["upsertAccount"];
    assert_eq!(second["id"], first["id"]);
    assert_eq!(second["version"], 2);
    assert_eq!(second["name"], "Acme Corp");
    assert_eq!(second["industry"], "SOFTWARE", "fields not named keep their value");
    // Upserting a deleted record brings it back.
    app.data(
        "mutation($id: ID!) { deleteAccount(id: $id) { id } }",
        json!({ "id": first["id"] }),
    )
    .await;
    let third = app
        .data(upsert, json!({ "ext": "sf-001", "input": { "name": "Acme Corp" } }))
        .await;
    assert_eq!(third["upsertAccount"]["deletedAt"], Value::Null);
    assert_eq!(count(&app, "accounts").await, 1);

    let error = app
        .error(
            upsert,
            json!({ "ext": "sf-001", "input": { "name": "X", "externalId": "sf-002" } }),
        )
        .await;
    assert_eq!(error["extensions"]["field"], json!(["input", "externalId"]));
    let error = app.error(upsert, json!({ "ext": "", "input": { "name": "X" } })).await;
    assert_eq!(error["extensions"]["field"], json!(["externalId"]));
    let error = app
        .error(upsert, json!({ "ext": "sf-003", "input": { "name": "" } }))
        .await;
    assert_eq!(error["extensions"]["field"], json!(["input", "name"]));
    assert_eq!(count(&app, "accounts").await, 1);
}

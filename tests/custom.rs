//! Custom fields and custom objects: typed columns, typed GraphQL, safe
//! changes, through the HTTP API.

use std::time::{Duration, Instant};

use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{json, Value};

use crate::support::{texts, TestApp};

const CREATE_FIELD: &str =
    "mutation($input: CreateCustomFieldInput!) { createCustomField(input: $input) { name type required unique indexed defaultValue options { value label active } lookupObject relationName isCustom } }";

async fn add_field(app: &TestApp, input: Value) -> Value {
    app.data(CREATE_FIELD, json!({ "input": input })).await["createCustomField"].clone()
}

#[derive(diesel::QueryableByName, Debug)]
struct Column {
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
}

async fn columns(app: &TestApp, table: &str) -> Vec<(String, String)> {
    let mut conn = AsyncPgConnection::establish(&app.database_url).await.unwrap();
    let rows: Vec<Column> = diesel::sql_query(format!(
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = 'crm' AND table_name = '{table}' AND column_name LIKE 'cf\\_%' ORDER BY column_name"
    ))
    .load(&mut conn)
    .await
    .unwrap();
    rows.into_iter().map(|c| (c.column_name, c.data_type)).collect()
}

async fn metadata_version(app: &TestApp) -> i64 {
    app.scalar("SELECT metadata_version::bigint AS n FROM crm.workspace_settings")
        .await
}

#[tokio::test]
async fn every_field_type_is_a_typed_column_usable_like_a_standard_field() {
    let app = TestApp::start().await;
    let version = metadata_version(&app).await;
    let tiers = json!([{ "value": "GOLD", "label": "Gold" }, { "value": "SILVER", "label": "Silver" }, { "value": "BRONZE", "label": "Bronze" }]);
    let specs = [
        json!({ "name": "nickname", "label": "Nickname", "type": "TEXT", "indexed": true }),
        json!({ "name": "notes", "label": "Notes", "type": "LONG_TEXT" }),
        json!({ "name": "seats", "label": "Seats", "type": "INTEGER", "indexed": true, "defaultValue": 1 }),
        json!({ "name": "score", "label": "Score", "type": "DECIMAL" }),
        json!({ "name": "lifetimeValue", "label": "Lifetime value", "type": "CURRENCY" }),
        json!({ "name": "discount", "label": "Discount", "type": "PERCENT" }),
        json!({ "name": "vip", "label": "VIP", "type": "BOOLEAN", "required": true, "defaultValue": false }),
        json!({ "name": "renewalDate", "label": "Renewal date", "type": "DATE", "indexed": true }),
        json!({ "name": "lastSeenAt", "label": "Last seen", "type": "DATETIME" }),
        json!({ "name": "billingEmail", "label": "Billing email", "type": "EMAIL", "unique": true }),
        json!({ "name": "assistantPhone", "label": "Assistant phone", "type": "PHONE" }),
        json!({ "name": "homepage", "label": "Homepage", "type": "URL" }),
        json!({ "name": "tier", "label": "Tier", "type": "PICKLIST", "options": tiers, "defaultValue": "BRONZE", "indexed": true }),
        json!({ "name": "interests", "label": "Interests", "type": "MULTI_PICKLIST", "indexed": true,
                "options": [{ "value": "CRM" }, { "value": "ERP" }, { "value": "BI", "label": "Business intelligence" }] }),
        json!({ "name": "referredBy", "label": "Referred by", "type": "LOOKUP", "lookupObject": "Account", "relationName": "referredContacts" }),
        json!({ "name": "profile", "label": "Profile", "type": "JSON", "indexed": true }),
    ];
    for spec in &specs {
        let mut input = spec.clone();
        input["object"] = json!("Contact");
        let field = add_field(&app, input).await;
        assert_eq!(field["name"], spec["name"]);
        assert_eq!(field["type"], spec["type"]);
        assert_eq!(field["isCustom"], true);
    }
    assert_eq!(metadata_version(&app).await, version + specs.len() as i64);
    let created = add_field(
        &app,
        json!({ "object": "Contact", "name": "nickname2", "label": "N", "type": "TEXT" }),
    )
    .await;
    assert_eq!(created["required"], false);

    // Real typed columns, with their indexes.
    let cols = columns(&app, "contact").await;
    let expected = [
        ("cf_billing_email", "text"),
        ("cf_discount", "numeric"),
        ("cf_homepage", "text"),
        ("cf_interests", "ARRAY"),
        ("cf_last_seen_at", "timestamp with time zone"),
        ("cf_lifetime_value", "numeric"),
        ("cf_assistant_phone", "text"),
        ("cf_nickname", "text"),
        ("cf_nickname2", "text"),
        ("cf_notes", "text"),
        ("cf_profile", "jsonb"),
        ("cf_referred_by", "uuid"),
        ("cf_renewal_date", "date"),
        ("cf_score", "numeric"),
        ("cf_seats", "integer"),
        ("cf_tier", "text"),
        ("cf_vip", "boolean"),
    ];
    let mut expected: Vec<(String, String)> = expected.iter().map(|(c, t)| (c.to_string(), t.to_string())).collect();
    expected.sort();
    assert_eq!(cols, expected);
    let indexes = app.scalar(
        "SELECT count(*) AS n FROM pg_indexes WHERE schemaname = 'crm' AND tablename = 'contact' AND indexname LIKE 'contact_cf_%'",
    )
    .await;
    // nickname, seats, renewalDate, tier, interests (GIN), profile (GIN),
    // billingEmail (unique), referredBy (lookup).
    assert_eq!(indexes, 8);

    // Write every type through GraphQL, read it back typed.
    let acme = app.create("Account", json!({ "name": "Acme" })).await;
    let fields = "id nickname notes seats score lifetimeValue discount vip renewalDate lastSeenAt billingEmail assistantPhone homepage tier interests referredById referredBy { name } profile";
    let create = format!("mutation($input: CreateContactInput!) {{ createContact(input: $input) {{ {fields} }} }}");
    let ada = app
        .data(
            &create,
            json!({ "input": {
                "lastName": "Lovelace", "nickname": "Ada", "notes": "Long text\nwith lines", "seats": 12,
                "score": "4.50", "lifetimeValue": "125000.75", "discount": 12.5, "vip": true,
                "renewalDate": "2027-01-31", "lastSeenAt": "2026-11-23T09:30:00Z", "billingEmail": "ada@acme.com",
                "assistantPhone": "+44 20 1234", "homepage": "https://ada.example", "tier": "GOLD",
                "interests": ["CRM", "BI", "CRM"], "referredById": acme, "profile": { "plan": "pro", "seats": [1, 2] }
            } }),
        )
        .await["createContact"]
        .clone();
    assert_eq!(ada["seats"], 12);
    assert_eq!(ada["score"], "4.50");
    assert_eq!(ada["lifetimeValue"], "125000.75");
    assert_eq!(ada["discount"], "12.50");
    assert_eq!(ada["vip"], true);
    assert_eq!(ada["renewalDate"], "2027-01-31");
    assert_eq!(ada["lastSeenAt"], "2026-11-23T09:30:00.000000Z");
    assert_eq!(ada["tier"], "GOLD");
    assert_eq!(ada["interests"], json!(["CRM", "BI"]));
    assert_eq!(ada["referredBy"]["name"], "Acme");
    assert_eq!(ada["profile"], json!({ "plan": "pro", "seats": [1, 2] }));
    // Defaults fill what a create leaves out.
    let grace = app
        .data(
            &create,
            json!({ "input": { "lastName": "Hopper", "tier": "SILVER", "interests": ["ERP"], "renewalDate": "2026-12-01", "profile": { "plan": "free" } } }),
        )
        .await["createContact"]
        .clone();
    assert_eq!(grace["seats"], 1);
    assert_eq!(grace["vip"], false);
    let plain = app.data(&create, json!({ "input": { "lastName": "Plain" } })).await["createContact"].clone();
    assert_eq!(plain["tier"], "BRONZE");
    assert_eq!(plain["interests"], Value::Null);

    // Filters and sorts, on both the resolver and the compiled path (asked twice).
    let cases = [
        (json!({ "tier": { "eq": "GOLD" } }), vec!["Lovelace"]),
        (
            json!({ "tier": { "in": ["GOLD", "SILVER"] } }),
            vec!["Hopper", "Lovelace"],
        ),
        (json!({ "seats": { "gt": 5 } }), vec!["Lovelace"]),
        (json!({ "lifetimeValue": { "gte": "100000" } }), vec!["Lovelace"]),
        (json!({ "vip": { "eq": false } }), vec!["Hopper", "Plain"]),
        (json!({ "renewalDate": { "lt": "2027-01-01" } }), vec!["Hopper"]),
        (json!({ "lastSeenAt": { "isNull": false } }), vec!["Lovelace"]),
        (json!({ "nickname": { "startsWith": "Ad" } }), vec!["Lovelace"]),
        (json!({ "billingEmail": { "eq": "ada@acme.com" } }), vec!["Lovelace"]),
        (
            json!({ "interests": { "containsAny": ["ERP", "BI"] } }),
            vec!["Hopper", "Lovelace"],
        ),
        (
            json!({ "interests": { "containsAll": ["CRM", "BI"] } }),
            vec!["Lovelace"],
        ),
        (
            json!({ "interests": { "containsNone": ["CRM"] } }),
            vec!["Hopper", "Plain"],
        ),
        (
            json!({ "profile": { "contains": { "plan": "pro" } } }),
            vec!["Lovelace"],
        ),
        (json!({ "referredById": { "eq": acme } }), vec!["Lovelace"]),
        (json!({ "referredBy": { "name": { "eq": "Acme" } } }), vec!["Lovelace"]),
        (json!({ "not": { "tier": { "eq": "GOLD" } } }), vec!["Hopper", "Plain"]),
    ];
    let list = "query($filter: ContactFilter) { contacts(filter: $filter, orderBy: [{ field: LAST_NAME }]) { nodes { lastName } } }";
    let compiled = app.metric("crm_graphql_compiled_total").await;
    for (filter, names) in &cases {
        for _ in 0..2 {
            let data = app.data(list, json!({ "filter": filter })).await;
            let got: Vec<&str> = data["contacts"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["lastName"].as_str().unwrap())
                .collect();
            assert_eq!(&got, names, "filter {filter}");
        }
    }
    // Written inline, the second run of each is one compiled statement with
    // the same answer.
    let inline = [
        "{ contacts(filter: { tier: { in: [GOLD, SILVER] } }, orderBy: [{ field: TIER }]) { nodes { lastName tier interests profile } } }",
        "{ contacts(filter: { interests: { containsAny: [ERP, BI] } }) { totalCount nodes { lastName interests } } }",
        "{ contacts(filter: { profile: { contains: { plan: \"pro\" } } }) { nodes { lastName profile } } }",
        "{ contacts(filter: { referredBy: { name: { eq: \"Acme\" } } }) { nodes { lastName referredBy { name } lifetimeValue discount } } }",
        "{ contacts(filter: { lifetimeValue: { gte: \"100000\" } }, orderBy: [{ field: LAST_SEEN_AT, direction: DESC }]) { edges { cursor node { lastName lastSeenAt renewalDate vip seats } } } }",
    ];
    for query in inline {
        let first = app.data(query, json!({})).await;
        let second = app.data(query, json!({})).await;
        assert_eq!(first, second, "{query}");
    }
    assert!(app.metric("crm_graphql_compiled_total").await >= compiled + inline.len() as u64);
    let sorted = "{ contacts(orderBy: [{ field: RENEWAL_DATE, direction: DESC }], first: 2) { nodes { lastName } } }";
    let data = app.data(sorted, json!({})).await;
    assert_eq!(
        data["contacts"]["nodes"],
        json!([{ "lastName": "Plain" }, { "lastName": "Lovelace" }])
    );
    let sorted =
        "{ contacts(orderBy: [{ field: TIER }, { field: SEATS, direction: DESC }]) { nodes { lastName tier } } }";
    let data = app.data(sorted, json!({})).await;
    assert_eq!(
        data["contacts"]["nodes"],
        json!([{ "lastName": "Plain", "tier": "BRONZE" }, { "lastName": "Lovelace", "tier": "GOLD" }, { "lastName": "Hopper", "tier": "SILVER" }])
    );
    // The account lists the contacts that refer to it.
    let account = app
        .data(
            "query($id: ID!) { account(id: $id) { referredContacts { totalCount nodes { lastName } } } }",
            json!({ "id": acme }),
        )
        .await;
    assert_eq!(account["account"]["referredContacts"]["totalCount"], 1);

    // Bad values are refused on the field's path, like a standard field's.
    for (input, field) in [
        (
            json!({ "lastName": "X", "billingEmail": "not-an-email" }),
            "billingEmail",
        ),
        (json!({ "lastName": "X", "tier": "PLATINUM" }), "tier"),
        (json!({ "lastName": "X", "interests": ["CRM", "NOPE"] }), "interests"),
        (json!({ "lastName": "X", "seats": 3_000_000_000u64 }), "seats"),
        (json!({ "lastName": "X", "score": "1.234" }), "score"),
        (json!({ "lastName": "X", "vip": null }), "vip"),
        (json!({ "lastName": "X", "billingEmail": "ada@acme.com" }), ""),
    ] {
        let error = app.error(&create, json!({ "input": input })).await;
        let code = error["extensions"]["code"].as_str().unwrap();
        if field.is_empty() {
            assert_eq!(code, "CONFLICT", "{error}");
        } else {
            assert_eq!(code, "BAD_USER_INPUT", "{error}");
            let path = error["extensions"]["field"].as_array().unwrap();
            assert_eq!(path[1], field, "{error}");
        }
    }

    // Update, batch and upsert take custom fields; the audit log records them.
    let id = ada["id"].as_str().unwrap();
    app.data(
        "mutation($id: ID!) { updateContact(id: $id, input: { tier: SILVER, interests: [ERP], seats: 20 }) { id } }",
        json!({ "id": id }),
    )
    .await;
    let history = app
        .data(
            "query($id: ID!) { contact(id: $id) { history(first: 1) { nodes { action changes { field before after } } } } }",
            json!({ "id": id }),
        )
        .await;
    let changes = &history["contact"]["history"]["nodes"][0]["changes"];
    assert!(
        changes
            .as_array()
            .unwrap()
            .contains(&json!({ "field": "tier", "before": "GOLD", "after": "SILVER" })),
        "{changes}"
    );
    let batch = app
        .data(
            "mutation($inputs: [CreateContactInput!]!) { createContacts(inputs: $inputs) { tier seats } }",
            json!({ "inputs": [{ "lastName": "B1", "tier": "GOLD" }, { "lastName": "B2", "seats": 7 }] }),
        )
        .await;
    assert_eq!(
        batch["createContacts"],
        json!([{ "tier": "GOLD", "seats": 1 }, { "tier": "BRONZE", "seats": 7 }])
    );
    let upsert = "mutation($input: CreateContactInput!) { upsertContact(externalId: \"ext-1\", input: $input) { tier nickname } }";
    app.data(upsert, json!({ "input": { "lastName": "U", "nickname": "first" } }))
        .await;
    let upserted = app
        .data(
            upsert,
            json!({ "input": { "lastName": "U", "nickname": "second", "tier": "GOLD" } }),
        )
        .await;
    assert_eq!(
        upserted["upsertContact"],
        json!({ "tier": "GOLD", "nickname": "second" })
    );

    // The metadata API describes them; the production SDL file does not change.
    let object = app
        .data(
            "{ object(name: \"Contact\") { name isCustom fields { name type isCustom required unique indexed defaultValue options { value label } lookupObject relationName } } }",
            json!({}),
        )
        .await;
    let fields = object["object"]["fields"].as_array().unwrap();
    let tier = fields.iter().find(|f| f["name"] == "tier").unwrap();
    assert_eq!(tier["defaultValue"], "BRONZE");
    assert_eq!(tier["indexed"], true);
    assert_eq!(tier["options"][0], json!({ "value": "GOLD", "label": "Gold" }));
    let last_name = fields.iter().find(|f| f["name"] == "lastName").unwrap();
    assert_eq!(last_name["isCustom"], false);
    assert_eq!(last_name["required"], true);
    let referred = fields.iter().find(|f| f["name"] == "referredBy").unwrap();
    assert_eq!(referred["lookupObject"], "Account");
    assert_eq!(referred["relationName"], "referredContacts");
    // Renaming the default's option renames the default; retiring it is refused.
    let renamed = app
        .data(
            "mutation { updateCustomField(object: \"Contact\", name: \"tier\", input: { options: [
                { value: \"GOLD\" }, { value: \"SILVER\" }, { value: \"STANDARD\", renamedFrom: \"BRONZE\" }] }) { defaultValue } }",
            json!({}),
        )
        .await;
    assert_eq!(renamed["updateCustomField"]["defaultValue"], "STANDARD");
    let plain = app.data(&create, json!({ "input": { "lastName": "Later" } })).await;
    assert_eq!(plain["createContact"]["tier"], "STANDARD");
    let error = app
        .error(
            "mutation { updateCustomField(object: \"Contact\", name: \"tier\", input: { options: [
                { value: \"GOLD\" }, { value: \"SILVER\" }, { value: \"STANDARD\", active: false }] }) { name } }",
            json!({}),
        )
        .await;
    assert_eq!(
        error["extensions"]["field"],
        json!(["input", "defaultValue"]),
        "{error}"
    );
    let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    assert!(
        crm::graphql::production_sdl(crm::app::ROOMS).unwrap() == file,
        "schema.graphql changed with customizations"
    );
    assert!(!file.contains("referredContacts"));
}

#[tokio::test]
async fn type_changes_are_previewed_and_renames_deletes_and_restores_keep_data() {
    let app = TestApp::start().await;
    add_field(
        &app,
        json!({ "object": "Account", "name": "employees", "label": "Employees", "type": "TEXT" }),
    )
    .await;
    let good = app
        .create("Account", json!({ "name": "Good", "employees": " 120 " }))
        .await;
    let bad = app
        .create("Account", json!({ "name": "Bad", "employees": "about fifty" }))
        .await;
    app.create("Account", json!({ "name": "Empty" })).await;

    let preview = "query($type: FieldType!) { previewFieldTypeChange(object: \"Account\", name: \"employees\", newType: $type) { from to withValue convertible invalid samples { recordId value } rewritesTable } }";
    let data = app.data(preview, json!({ "type": "INTEGER" })).await;
    assert_eq!(
        data["previewFieldTypeChange"],
        json!({ "from": "TEXT", "to": "INTEGER", "withValue": 2, "convertible": 1, "invalid": 1,
                "samples": [{ "recordId": bad, "value": "about fifty" }], "rewritesTable": true })
    );
    let data = app.data(preview, json!({ "type": "LONG_TEXT" })).await;
    assert_eq!(data["previewFieldTypeChange"]["invalid"], 0);
    assert_eq!(data["previewFieldTypeChange"]["rewritesTable"], false);

    let change = "mutation($on: InvalidValueAction!) { changeCustomFieldType(object: \"Account\", name: \"employees\", newType: INTEGER, onInvalid: $on) { type } }";
    let version = metadata_version(&app).await;
    let error = app.error(change, json!({ "on": "FAIL" })).await;
    assert_eq!(error["extensions"]["code"], "CONFLICT");
    assert_eq!(error["extensions"]["count"], 1);
    assert_eq!(error["extensions"]["sampleIds"], json!([bad]));
    assert_eq!(
        metadata_version(&app).await,
        version,
        "a refused change changes nothing"
    );
    assert_eq!(
        columns(&app, "account").await,
        vec![("cf_employees".to_owned(), "text".to_owned())]
    );

    let data = app.data(change, json!({ "on": "SET_NULL" })).await;
    assert_eq!(data["changeCustomFieldType"]["type"], "INTEGER");
    assert_eq!(
        columns(&app, "account").await,
        vec![("cf_employees".to_owned(), "integer".to_owned())]
    );
    let read = "query($id: ID!) { account(id: $id) { employees } }";
    assert_eq!(app.data(read, json!({ "id": good })).await["account"]["employees"], 120);
    assert_eq!(
        app.data(read, json!({ "id": bad })).await["account"]["employees"],
        Value::Null
    );
    let sum = app
        .data(
            "{ accounts(filter: { employees: { gte: 100 } }) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(sum["accounts"]["totalCount"], 1);

    // Text to picklist: values match by value or, ignoring case, by label.
    add_field(
        &app,
        json!({ "object": "Account", "name": "segment", "label": "Segment", "type": "TEXT" }),
    )
    .await;
    let smb = app
        .create("Account", json!({ "name": "Small", "segment": "small business" }))
        .await;
    let ent = app
        .create("Account", json!({ "name": "Big", "segment": "ENTERPRISE" }))
        .await;
    app.data(
        "mutation { changeCustomFieldType(object: \"Account\", name: \"segment\", newType: PICKLIST,
            options: [{ value: \"SMB\", label: \"Small business\" }, { value: \"ENTERPRISE\", label: \"Enterprise\" }]) { type } }",
        json!({}),
    )
    .await;
    let read = "query($id: ID!) { account(id: $id) { segment } }";
    assert_eq!(app.data(read, json!({ "id": smb })).await["account"]["segment"], "SMB");
    assert_eq!(
        app.data(read, json!({ "id": ent })).await["account"]["segment"],
        "ENTERPRISE"
    );

    // Picklist options: add, rename (records follow), reorder, retire.
    app.data(
        "mutation { updateCustomField(object: \"Account\", name: \"segment\", input: { options: [
            { value: \"ENTERPRISE\" }, { value: \"MID_MARKET\", label: \"Mid-market\" },
            { value: \"SMALL_BUSINESS\", renamedFrom: \"SMB\" } ] }) { options { value } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        app.data(read, json!({ "id": smb })).await["account"]["segment"],
        "SMALL_BUSINESS"
    );
    let error = app
        .error(
            "mutation { updateCustomField(object: \"Account\", name: \"segment\", input: { options: [{ value: \"ENTERPRISE\" }] }) { name } }",
            json!({}),
        )
        .await;
    assert_eq!(error["extensions"]["field"], json!(["input", "options"]));
    app.data(
        "mutation { updateCustomField(object: \"Account\", name: \"segment\", input: { options: [
            { value: \"ENTERPRISE\", active: false }, { value: \"MID_MARKET\" }, { value: \"SMALL_BUSINESS\" } ] }) { name } }",
        json!({}),
    )
    .await;
    // A retired value stays readable and filterable, but writes refuse it.
    assert_eq!(
        app.data(read, json!({ "id": ent })).await["account"]["segment"],
        "ENTERPRISE"
    );
    let count = app
        .data(
            "{ accounts(filter: { segment: { eq: ENTERPRISE } }) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(count["accounts"]["totalCount"], 1);
    let error = app
        .error(
            "mutation { createAccount(input: { name: \"N\", segment: ENTERPRISE }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error["extensions"]["field"], json!(["input", "segment"]));

    // Required and unique are refused while records violate them.
    let error = app
        .error(
            "mutation { updateCustomField(object: \"Account\", name: \"segment\", input: { required: true }) { name } }",
            json!({}),
        )
        .await;
    assert_eq!(error["extensions"]["code"], "CONFLICT");
    assert_eq!(error["extensions"]["field"], json!(["input", "required"]));
    assert_eq!(error["extensions"]["count"], 3, "{error}");
    assert_eq!(error["extensions"]["sampleIds"].as_array().unwrap().len(), 3);
    app.create("Account", json!({ "name": "Twin", "segment": "MID_MARKET" }))
        .await;
    app.create("Account", json!({ "name": "Twin 2", "segment": "MID_MARKET" }))
        .await;
    let error = app
        .error(
            "mutation { updateCustomField(object: \"Account\", name: \"segment\", input: { unique: true }) { name } }",
            json!({}),
        )
        .await;
    assert_eq!(error["extensions"]["count"], 2, "{error}");
    let data = app
        .data(
            "mutation { updateCustomField(object: \"Account\", name: \"employees\", input: { unique: true, label: \"Headcount\" }) { unique label } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["updateCustomField"],
        json!({ "unique": true, "label": "Headcount" })
    );

    // Rename: a breaking change; the data stays.
    let data = app
        .data(
            "mutation { renameCustomField(object: \"Account\", name: \"employees\", newName: \"headcount\") { name } }",
            json!({}),
        )
        .await;
    assert_eq!(data["renameCustomField"]["name"], "headcount");
    let error = app
        .error(
            "query($id: ID!) { account(id: $id) { employees } }",
            json!({ "id": good }),
        )
        .await;
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT");
    let read = "query($id: ID!) { account(id: $id) { headcount } }";
    assert_eq!(app.data(read, json!({ "id": good })).await["account"]["headcount"], 120);
    let changes = app
        .data("{ metadataChanges { kind field breaking summary } }", json!({}))
        .await;
    let renamed = changes["metadataChanges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "FIELD_RENAMED")
        .unwrap();
    assert_eq!(renamed["breaking"], true);

    // Delete: gone from the API at once, column kept; restore brings the data back.
    app.data(
        "mutation { deleteCustomField(object: \"Account\", name: \"headcount\") { deletedAt } }",
        json!({}),
    )
    .await;
    let error = app.error(read, json!({ "id": good })).await;
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT");
    assert!(columns(&app, "account").await.iter().any(|c| c.0 == "cf_headcount"));
    let error = app
        .error(
            CREATE_FIELD,
            json!({ "input": { "object": "Account", "name": "headcount", "label": "H", "type": "TEXT" } }),
        )
        .await;
    assert!(error["message"].as_str().unwrap().contains("purge"), "{error}");
    let deleted = app
        .data("{ object(name: \"Account\") { fields { name deletedAt } } }", json!({}))
        .await;
    let retained = deleted["object"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "headcount")
        .unwrap()
        .clone();
    assert!(retained["deletedAt"].is_string());
    app.data(
        "mutation { restoreCustomField(object: \"Account\", name: \"headcount\") { name } }",
        json!({}),
    )
    .await;
    assert_eq!(app.data(read, json!({ "id": good })).await["account"]["headcount"], 120);

    // Purge: only a deleted field; then the column is gone.
    let error = app
        .error(
            "mutation { purgeCustomField(object: \"Account\", name: \"headcount\") { name } }",
            json!({}),
        )
        .await;
    assert_eq!(error["extensions"]["code"], "NOT_FOUND");
    app.data(
        "mutation { deleteCustomField(object: \"Account\", name: \"headcount\") { name } }",
        json!({}),
    )
    .await;
    app.data(
        "mutation { purgeCustomField(object: \"Account\", name: \"headcount\") { name } }",
        json!({}),
    )
    .await;
    assert!(!columns(&app, "account").await.iter().any(|c| c.0 == "cf_headcount"));

    // Standard fields are not custom fields.
    let error = app
        .error(
            "mutation { deleteCustomField(object: \"Account\", name: \"name\") { name } }",
            json!({}),
        )
        .await;
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT");

    // Every metadata change is in the audit log.
    let log = app
        .data(
            "{ auditLog(filter: { object: \"CustomField\" }, first: 100) { totalCount nodes { action changes { field } } } }",
            json!({}),
        )
        .await;
    let actions: Vec<&str> = log["auditLog"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["action"].as_str().unwrap())
        .collect();
    for action in ["CREATE", "UPDATE", "DELETE", "RESTORE", "PURGE"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
}

#[tokio::test]
async fn hostile_names_are_refused_with_nothing_created() {
    let app = TestApp::start().await;
    let version = metadata_version(&app).await;
    let long = "a".repeat(64);
    let hostile: Vec<String> = [
        "",
        " ",
        "email",
        "Email",
        "EMAIL",
        "lastName",
        "accountId",
        "account",
        "convertedLeads",
        "history",
        "id",
        "ID",
        "edges",
        "node",
        "nodes",
        "cursor",
        "totalCount",
        "filter",
        "orderBy",
        "first",
        "after",
        "and",
        "or",
        "not",
        "__typename",
        "__schema",
        "_private",
        "1abc",
        "Tier",
        "tier-level",
        "tier level",
        "tier_level",
        "tier;",
        "x'; DROP TABLE contact; --",
        "x\"); DROP TABLE contact; --",
        "robert'); DELETE FROM crm.account; --",
        "x\u{0000}y",
        "tіer",
        "naïve",
        "ｔｉｅｒ",
        "tier\u{200b}",
        "emoji😀",
        "select",
        "drop",
        "table",
        "user",
        "null",
        "true",
        "false",
        "query",
        "mutation",
        "fragment",
        "externalId",
        "ownerId",
        "createdAt",
        "version",
        "deletedAt",
        &long,
        "accountid",
        "\\",
        "$tier",
        "tier$",
        "@tier",
        "{tier}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert!(hostile.len() >= 50, "{}", hostile.len());
    for name in &hostile {
        let error = app
            .error(
                CREATE_FIELD,
                json!({ "input": { "object": "Contact", "name": name, "label": "Label", "type": "TEXT" } }),
            )
            .await;
        assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{name:?}: {error}");
        assert_eq!(
            error["extensions"]["field"],
            json!(["input", "name"]),
            "{name:?}: {error}"
        );
        let message = error["message"].as_str().unwrap();
        assert!(!message.contains("SQL") && !message.contains("syntax"), "{message}");
    }
    // Object names and picklist values get the same care.
    for name in [
        "contact",
        "Account",
        "ACCOUNT",
        "AccountFilter",
        "Query",
        "Me",
        "X Y",
        "X'--",
        "Ünïcode",
        "A".repeat(41).as_str(),
    ] {
        let error = app
            .error(
                "mutation($name: String!) { createCustomObject(input: { name: $name, label: \"L\", pluralLabel: \"Ls\" }) { name } }",
                json!({ "name": name }),
            )
            .await;
        assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{name:?}: {error}");
    }
    for value in ["gold", "GOLD-1", "1GOLD", "TRUE", "G OLD", "GOLD'"] {
        let error = app
            .error(
                CREATE_FIELD,
                json!({ "input": { "object": "Contact", "name": "tier", "label": "Tier", "type": "PICKLIST", "options": [{ "value": value }] } }),
            )
            .await;
        assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{value:?}: {error}");
    }
    assert_eq!(metadata_version(&app).await, version);
    assert!(columns(&app, "contact").await.is_empty());
    assert_eq!(app.scalar("SELECT count(*) AS n FROM crm.custom_field").await, 0);
    assert_eq!(app.scalar("SELECT count(*) AS n FROM crm.custom_object").await, 0);
    let tables = app
        .scalar("SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'crm' AND tablename LIKE 'co\\_%'")
        .await;
    assert_eq!(tables, 0);
}

#[tokio::test]
async fn a_custom_object_has_the_full_api_of_a_standard_one() {
    let app = TestApp::start().await;
    let created = app
        .data(
            "mutation($input: CreateCustomObjectInput!) { createCustomObject(input: $input) { name pluralName isCustom fields { name type isCustom } } }",
            json!({ "input": {
                "name": "Subscription", "label": "Subscription", "pluralLabel": "Subscriptions",
                "description": "A recurring contract.",
                "fields": [
                    { "name": "plan", "label": "Plan", "type": "PICKLIST", "required": true, "defaultValue": "BASIC",
                      "options": [{ "value": "BASIC" }, { "value": "PRO" }] },
                    { "name": "seats", "label": "Seats", "type": "INTEGER", "indexed": true },
                    { "name": "account", "label": "Account", "type": "LOOKUP", "lookupObject": "Account" }
                ]
            } }),
        )
        .await;
    assert_eq!(created["createCustomObject"]["pluralName"], "subscriptions");
    let field_names: Vec<&str> = created["createCustomObject"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for name in [
        "id",
        "name",
        "owner",
        "externalId",
        "createdAt",
        "plan",
        "seats",
        "account",
    ] {
        assert!(field_names.contains(&name), "{name} in {field_names:?}");
    }
    let acme = app.create("Account", json!({ "name": "Acme" })).await;
    let (_, sales) = app.user("rep@example.com", "SALES").await;
    // Sales reps work custom objects like accounts.
    let made = app
        .graphql_as(
            &sales,
            "mutation($a: ID!) { createSubscription(input: { name: \"Acme Pro\", plan: PRO, seats: 50, accountId: $a }) { id plan owner { email } account { name } } }",
            json!({ "a": acme }),
        )
        .await;
    assert!(made.get("errors").is_none(), "{made}");
    assert_eq!(made["data"]["createSubscription"]["owner"]["email"], "rep@example.com");
    let batch = app
        .data(
            "mutation($a: ID!) { createSubscriptions(inputs: [{ name: \"Acme Basic\", seats: 5, accountId: $a }, { name: \"Solo\" }]) { plan } }",
            json!({ "a": acme }),
        )
        .await;
    assert_eq!(
        batch["createSubscriptions"],
        json!([{ "plan": "BASIC" }, { "plan": "BASIC" }])
    );
    let upsert =
        "mutation { upsertSubscription(externalId: \"sub-1\", input: { name: \"Ext\", seats: 1 }) { id seats } }";
    let first = app.data(upsert, json!({})).await;
    let second = app.data(upsert, json!({})).await;
    assert_eq!(first["upsertSubscription"]["id"], second["upsertSubscription"]["id"]);

    let query = "query($a: ID!) {
        subscriptions(filter: { seats: { gte: 5 } }, orderBy: [{ field: SEATS, direction: DESC }]) { totalCount nodes { name seats } }
        account(id: $a) { subscriptions(orderBy: [{ field: NAME }]) { totalCount nodes { name plan } } }
        accounts(filter: { subscriptions: { some: { plan: { eq: PRO } } } }) { nodes { name } }
    }";
    for _ in 0..2 {
        let data = app.data(query, json!({ "a": acme })).await;
        assert_eq!(
            data["subscriptions"],
            json!({ "totalCount": 2, "nodes": [{ "name": "Acme Pro", "seats": 50 }, { "name": "Acme Basic", "seats": 5 }] })
        );
        assert_eq!(data["account"]["subscriptions"]["totalCount"], 2);
        assert_eq!(data["accounts"]["nodes"], json!([{ "name": "Acme" }]));
    }
    // A custom field on a standard object can point at the custom object.
    add_field(
        &app,
        json!({ "object": "Account", "name": "mainSubscription", "label": "Main subscription", "type": "LOOKUP", "lookupObject": "Subscription", "relationName": "mainOf" }),
    )
    .await;
    let error = app
        .error(
            "mutation { deleteCustomObject(name: \"Subscription\") { name } }",
            json!({}),
        )
        .await;
    assert!(
        error["message"].as_str().unwrap().contains("Account.mainSubscription"),
        "{error}"
    );
    app.data(
        "mutation { deleteCustomField(object: \"Account\", name: \"mainSubscription\") { name } }",
        json!({}),
    )
    .await;

    // Delete keeps the records; restore brings the whole API back.
    let deleted = app
        .data(
            "mutation { deleteCustomObject(name: \"Subscription\") { name deletedAt } }",
            json!({}),
        )
        .await;
    assert!(deleted["deleteCustomObject"]["deletedAt"].is_string());
    let error = app.error("{ subscriptions { totalCount } }", json!({})).await;
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT");
    let error = app
        .error(
            "query($a: ID!) { account(id: $a) { subscriptions { totalCount } } }",
            json!({ "a": acme }),
        )
        .await;
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT");
    app.data(
        "mutation { restoreCustomObject(name: \"Subscription\") { name } }",
        json!({}),
    )
    .await;
    let data = app.data("{ subscriptions { totalCount } }", json!({})).await;
    assert_eq!(data["subscriptions"]["totalCount"], 4);

    // A failed creation leaves nothing behind: no table, no metadata, same version.
    let version = metadata_version(&app).await;
    let error = app
        .error(
            "mutation { createCustomObject(input: { name: \"Invoice\", label: \"Invoice\", pluralLabel: \"Invoices\",
                fields: [{ name: \"total\", label: \"Total\", type: CURRENCY }, { name: \"name\", label: \"Again\", type: TEXT }] }) { name } }",
            json!({}),
        )
        .await;
    assert_eq!(
        error["extensions"]["field"],
        json!(["input", "fields", 1, "name"]),
        "{error}"
    );
    assert_eq!(metadata_version(&app).await, version);
    let tables = app
        .scalar("SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'crm' AND tablename = 'co_invoice'")
        .await;
    assert_eq!(tables, 0);

    // A name that would collide with a type the API generates is refused
    // by the schema check, whatever the name rules let through.
    add_field(
        &app,
        json!({ "object": "Contact", "name": "tier", "label": "Tier", "type": "PICKLIST", "options": [{ "value": "GOLD" }] }),
    )
    .await;
    let error = app
        .error(
            "mutation { createCustomObject(input: { name: \"ContactTier\", label: \"T\", pluralLabel: \"Ts\" }) { name } }",
            json!({}),
        )
        .await;
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{error}");
    assert_eq!(error["extensions"]["field"], json!(["input", "name"]), "{error}");
    assert!(error["message"].as_str().unwrap().contains("ContactTier"), "{error}");
    assert_eq!(metadata_version(&app).await, version + 1);

    // Purge drops the table for good.
    app.data(
        "mutation { purgeCustomField(object: \"Account\", name: \"mainSubscription\") { name } }",
        json!({}),
    )
    .await;
    app.data(
        "mutation { deleteCustomObject(name: \"Subscription\") { name } }",
        json!({}),
    )
    .await;
    app.data(
        "mutation { purgeCustomObject(name: \"Subscription\") { name } }",
        json!({}),
    )
    .await;
    let tables = app
        .scalar("SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'crm' AND tablename = 'co_subscription'")
        .await;
    assert_eq!(tables, 0);
}

#[tokio::test]
async fn adding_a_nullable_or_constant_default_field_does_not_rewrite_the_table() {
    let app = TestApp::start().await;
    for i in 0..20 {
        app.create("Contact", json!({ "lastName": format!("C{i}") })).await;
    }
    let file = "SELECT pg_relation_filenode('crm.contact')::bigint AS n";
    let before = app.scalar(file).await;
    add_field(
        &app,
        json!({ "object": "Contact", "name": "nickname", "label": "Nickname", "type": "TEXT" }),
    )
    .await;
    add_field(
        &app,
        json!({ "object": "Contact", "name": "level", "label": "Level", "type": "INTEGER", "required": true, "defaultValue": 3 }),
    )
    .await;
    assert_eq!(app.scalar(file).await, before, "the table was rewritten");
    let data = app
        .data("{ contacts(first: 1) { nodes { level nickname } } }", json!({}))
        .await;
    assert_eq!(data["contacts"]["nodes"][0], json!({ "level": 3, "nickname": null }));
    // A required field without a default cannot be added to existing records.
    let error = app
        .error(
            CREATE_FIELD,
            json!({ "input": { "object": "Contact", "name": "code", "label": "Code", "type": "TEXT", "required": true } }),
        )
        .await;
    assert_eq!(error["extensions"]["field"], json!(["input", "required"]));
    assert!(error["message"].as_str().unwrap().contains("20 records"), "{error}");
    // A default must be a value of the field's type.
    let error = app
        .error(
            CREATE_FIELD,
            json!({ "input": { "object": "Contact", "name": "code", "label": "Code", "type": "DATE", "defaultValue": "tomorrow" } }),
        )
        .await;
    assert_eq!(error["extensions"]["field"], json!(["input", "defaultValue"]));
}

#[tokio::test]
async fn other_servers_learn_of_metadata_settings_and_revocations_through_notify() {
    let first = TestApp::start().await;
    let second = first.second_server().await;
    // Both have built (and cached) the schema.
    first.data("{ accounts { totalCount } }", json!({})).await;
    second.data("{ accounts { totalCount } }", json!({})).await;
    add_field(
        &first,
        json!({ "object": "Account", "name": "tier", "label": "Tier", "type": "TEXT" }),
    )
    .await;
    first.create("Account", json!({ "name": "Acme", "tier": "gold" })).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = second.graphql("{ accounts { nodes { tier } } }", json!({})).await;
        if response.get("errors").is_none() {
            assert_eq!(response["data"]["accounts"]["nodes"][0]["tier"], "gold");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second server never learned of the field: {response}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A revoked token is refused by the other server at once, not when its
    // token cache (5 s) expires.
    let (_, token) = first.user("rep@example.com", "SALES").await;
    let me = second.graphql_as(&token, "{ me { role } }", json!({})).await;
    assert_eq!(me["data"]["me"]["role"], "SALES");
    let id = first.data("{ apiTokens { id name } }", json!({})).await["apiTokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "test")
        .unwrap()["id"]
        .clone();
    first
        .data(
            "mutation($id: ID!) { revokeApiToken(id: $id) { revokedAt } }",
            json!({ "id": id }),
        )
        .await;
    let revoked_at = Instant::now();
    loop {
        let body = json!({ "query": "{ me { role } }" }).to_string().into_bytes();
        let bearer = format!("Bearer {token}");
        let response = second
            .request(
                hyper::Method::POST,
                "/graphql",
                &[("content-type", "application/json"), ("authorization", &bearer)],
                body,
            )
            .await;
        if response.status == hyper::StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(3),
            "still accepted: {}",
            response.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Settings travel the same way.
    first
        .data(
            "mutation { updateWorkspaceSettings(input: { recordVisibility: OWNED }) { recordVisibility } }",
            json!({}),
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let entry = second.app.schemas.cached("production").unwrap();
        if entry.record_visibility.get() == crm::access::RecordVisibility::Owned {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second server never learned of the setting"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn owned_visibility_follows_a_custom_objects_lookups_not_custom_references() {
    let app = TestApp::start().await;
    let (rep, rep_token) = app.user("rep@example.com", "SALES").await;
    app.data(
        "mutation { createCustomObject(input: { name: \"Subscription\", label: \"Subscription\", pluralLabel: \"Subscriptions\",
            fields: [{ name: \"account\", label: \"Account\", type: LOOKUP, lookupObject: \"Account\" }] }) { name } }",
        json!({}),
    )
    .await;
    add_field(
        &app,
        json!({ "object": "Contact", "name": "referredBy", "label": "Referred by", "type": "LOOKUP", "lookupObject": "Account", "relationName": "referrals" }),
    )
    .await;
    let mine = app.create("Account", json!({ "name": "Mine", "ownerId": rep })).await;
    app.create("Subscription", json!({ "name": "Under mine", "accountId": mine }))
        .await;
    app.create("Subscription", json!({ "name": "Elsewhere" })).await;
    app.create("Contact", json!({ "lastName": "Referred", "referredById": mine }))
        .await;
    app.data(
        "mutation { updateWorkspaceSettings(input: { recordVisibility: OWNED }) { recordVisibility } }",
        json!({}),
    )
    .await;
    let query = "{ subscriptions { nodes { name } } contacts { totalCount } }";
    for _ in 0..2 {
        let seen = app.graphql_as(&rep_token, query, json!({})).await;
        assert_eq!(
            seen["data"]["subscriptions"]["nodes"],
            json!([{ "name": "Under mine" }]),
            "{seen}"
        );
        assert_eq!(seen["data"]["contacts"]["totalCount"], 0, "{seen}");
    }
    // Sorting through a lookup to a record the rep cannot see tells nothing
    // about it: it sorts as empty, and the cursor does not hold its name.
    let secret = app.create("Account", json!({ "name": "Zeta Secret Holdings" })).await;
    app.create(
        "Contact",
        json!({ "lastName": "Own", "ownerId": rep, "accountId": secret }),
    )
    .await;
    let sorted = "{ contacts(orderBy: [{ account: NAME }]) { edges { cursor node { lastName account { name } } } } }";
    for _ in 0..2 {
        let seen = app.graphql_as(&rep_token, sorted, json!({})).await;
        let edges = seen["data"]["contacts"]["edges"].as_array().unwrap().clone();
        assert_eq!(edges.len(), 1, "{seen}");
        assert_eq!(edges[0]["node"]["account"], Value::Null, "{seen}");
        let cursor = edges[0]["cursor"].as_str().unwrap();
        use base64::Engine;
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).unwrap();
        assert!(
            !String::from_utf8_lossy(&decoded).contains("Zeta"),
            "{}",
            String::from_utf8_lossy(&decoded)
        );
    }
}

#[tokio::test]
async fn lists_sort_through_lookups_and_page_with_cursors() {
    let app = TestApp::start().await;
    add_field(
        &app,
        json!({ "object": "Contact", "name": "referredBy", "label": "Referred by", "type": "LOOKUP", "lookupObject": "Account", "relationName": "referrals" }),
    )
    .await;
    let mut accounts = std::collections::HashMap::new();
    for name in ["Beta", "Alpha", "Gamma"] {
        accounts.insert(name, app.create("Account", json!({ "name": name })).await);
    }
    for (contact, account) in [
        ("C-gamma", Some("Gamma")),
        ("C-alpha", Some("Alpha")),
        ("C-beta", Some("Beta")),
        ("C-none", None),
    ] {
        let account = account.map(|a| accounts[a].clone());
        app.create(
            "Contact",
            json!({ "lastName": contact, "accountId": account, "referredById": account }),
        )
        .await;
    }
    let page = |order: &str, after: Option<&str>| {
        let after = after.map(|a| format!(", after: \"{a}\"")).unwrap_or_default();
        format!(
            "{{ contacts(orderBy: [{order}], first: 2{after}) {{ edges {{ cursor node {{ lastName }} }} pageInfo {{ hasNextPage endCursor }} }} }}"
        )
    };
    let names = |data: &Value| texts(&data["contacts"]["edges"], &["node", "lastName"]);
    for order in ["{ account: NAME }", "{ referredBy: NAME }"] {
        // Twice: the resolvers, then one compiled statement, the same pages.
        for _ in 0..2 {
            let first = app.data(&page(order, None), json!({})).await;
            assert_eq!(names(&first), ["C-alpha", "C-beta"], "{order}");
            assert_eq!(first["contacts"]["pageInfo"]["hasNextPage"], true);
            let cursor = first["contacts"]["pageInfo"]["endCursor"].as_str().unwrap().to_owned();
            let second = app.data(&page(order, Some(&cursor)), json!({})).await;
            assert_eq!(names(&second), ["C-gamma", "C-none"], "{order}");
            assert_eq!(second["contacts"]["pageInfo"]["hasNextPage"], false);
        }
        let descending = order.replace(" }", ", direction: DESC }");
        let all = app
            .data(&page(&descending, None).replace("first: 2", "first: 10"), json!({}))
            .await;
        assert_eq!(names(&all), ["C-none", "C-gamma", "C-beta", "C-alpha"], "{descending}");
    }
    // Nested lists sort through lookups too.
    let nested = app
        .data(
            "{ accounts(orderBy: [{ field: NAME }], first: 1) { nodes { name referrals(orderBy: [{ account: NAME }]) { nodes { lastName } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        nested["accounts"]["nodes"][0]["referrals"]["nodes"],
        json!([{ "lastName": "C-alpha" }])
    );
    // One item names one key.
    let error = app
        .error(
            "{ contacts(orderBy: [{ field: LAST_NAME, account: NAME }]) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(error["extensions"]["field"], json!(["orderBy", 0]));
    let error = app
        .error("{ contacts(orderBy: [{ direction: DESC }]) { totalCount } }", json!({}))
        .await;
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT");
}

/// Index names of the custom columns of `table` in `schema`, by column.
async fn custom_indexes(app: &TestApp, schema: &str, table: &str) -> Vec<(String, String)> {
    #[derive(diesel::QueryableByName)]
    struct Index {
        #[diesel(sql_type = Text)]
        column_name: String,
        #[diesel(sql_type = Text)]
        name: String,
    }
    let mut conn = AsyncPgConnection::establish(&app.database_url).await.unwrap();
    let rows: Vec<Index> = diesel::sql_query(format!(
        "SELECT a.attname::text AS column_name, i.relname::text AS name FROM pg_index x \
         JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = x.indkey[0] \
         WHERE n.nspname = '{schema}' AND t.relname = '{table}' AND a.attname LIKE 'cf\\_%' \
         UNION ALL SELECT a.attname::text, c.conname::text FROM pg_constraint c \
         JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = c.conkey[1] \
         WHERE c.contype = 'f' AND n.nspname = '{schema}' AND t.relname = '{table}' AND a.attname LIKE 'cf\\_%' \
         ORDER BY 1, 2"
    ))
    .load(&mut conn)
    .await
    .unwrap();
    rows.into_iter().map(|i| (i.column_name, i.name)).collect()
}

#[tokio::test]
async fn long_custom_field_names_keep_their_own_unique_indexes() {
    let app = TestApp::start().await;
    // `account_cf_<name>_key` of both is longer than 63 bytes and the
    // first 63 are the same: Postgres would cut both to one name.
    let shared = format!("{}x", "reference".repeat(6));
    let (first, second) = (format!("{shared}One"), format!("{shared}Two"));
    add_field(
        &app,
        json!({ "object": "Account", "name": first, "label": "First reference", "type": "TEXT", "unique": true }),
    )
    .await;
    add_field(
        &app,
        json!({ "object": "Account", "name": second, "label": "Second reference", "type": "TEXT" }),
    )
    .await;
    let create = "mutation($input: CreateAccountInput!) { createAccount(input: $input) { id } }";
    let account = |n: &str, a: &str, b: Option<&str>| {
        let mut input = json!({ "name": n, first.clone(): a });
        if let Some(b) = b {
            input[second.as_str()] = json!(b);
        }
        json!({ "input": input })
    };
    let first_is_unique = async |app: &TestApp, n: &str| {
        let error = app.error(create, account(n, "F1", None)).await;
        assert_eq!(error["extensions"]["code"], "CONFLICT", "{n}: {error}");
        assert!(
            error["message"].as_str().unwrap().contains("First reference"),
            "{n}: {error}"
        );
    };
    app.data(create, account("A", "F1", Some("S1"))).await;
    first_is_unique(&app, "at first").await;

    // Indexing the second field, then making it unique, leaves the
    // first one's unique index alone.
    let update = format!(
        "mutation($input: UpdateCustomFieldInput!) {{ updateCustomField(object: \"Account\", name: \"{second}\", input: $input) {{ unique }} }}"
    );
    app.data(&update, json!({ "input": { "indexed": true } })).await;
    first_is_unique(&app, "after indexing the second").await;
    app.data(&update, json!({ "input": { "unique": true } })).await;
    first_is_unique(&app, "after making the second unique").await;
    // Each violation names its own field.
    let error = app.error(create, account("B", "F2", Some("S1"))).await;
    assert_eq!(error["extensions"]["code"], "CONFLICT");
    assert!(
        error["message"].as_str().unwrap().contains("Second reference"),
        "{error}"
    );

    // Renaming, retyping and purging the second field too.
    let renamed = format!("{shared}Six");
    app.data(
        "mutation($name: String!, $new: String!) { renameCustomField(object: \"Account\", name: $name, newName: $new) { name } }",
        json!({ "name": second, "new": renamed }),
    )
    .await;
    first_is_unique(&app, "after the rename").await;
    let input = json!({ "input": { "name": "B", first.clone(): "F2", renamed.clone(): "S1" } });
    let error = app.error(create, input).await;
    assert!(
        error["message"].as_str().unwrap().contains("Second reference"),
        "{error}"
    );
    app.data(
        "mutation($name: String!) { changeCustomFieldType(object: \"Account\", name: $name, newType: LONG_TEXT) { type } }",
        json!({ "name": renamed }),
    )
    .await;
    first_is_unique(&app, "after the type change").await;
    let input = json!({ "input": { "name": "C", first.clone(): "F3", renamed.clone(): "S1" } });
    app.data(create, input).await;
    for mutation in ["deleteCustomField", "purgeCustomField"] {
        app.data(
            &format!("mutation($name: String!) {{ {mutation}(object: \"Account\", name: $name) {{ name }} }}"),
            json!({ "name": renamed }),
        )
        .await;
    }
    first_is_unique(&app, "after the purge").await;
    let indexes = custom_indexes(&app, "crm", "account").await;
    assert_eq!(indexes.len(), 1, "{indexes:?}");
    assert_eq!(indexes[0].0, format!("cf_{shared}_one"));
    assert!(
        indexes[0].1.len() <= 63 && indexes[0].1.ends_with("_key"),
        "{indexes:?}"
    );
}

#[tokio::test]
async fn the_upgrade_renames_old_index_names_in_production_and_sandboxes() {
    let app = TestApp::start().await;
    let long = format!("{}x", "reference".repeat(6));
    let fields = [
        json!({ "object": "Account", "name": "tier", "label": "Tier", "type": "TEXT", "unique": true }),
        json!({ "object": "Account", "name": "region", "label": "Region", "type": "TEXT", "indexed": true }),
        json!({ "object": "Account", "name": long, "label": "Long", "type": "TEXT", "unique": true }),
        json!({ "object": "Account", "name": "partner", "label": "Partner", "type": "LOOKUP", "lookupObject": "Account", "relationName": "partnered" }),
    ];
    for field in fields {
        add_field(&app, field).await;
    }
    app.data(
        "mutation { createSandbox(input: { name: \"old\" }) { name } }",
        json!({}),
    )
    .await;
    let schemas = ["crm", "sandbox_old"];
    let mut expected = Vec::new();
    for schema in schemas {
        let indexes = custom_indexes(&app, schema, "account").await;
        // Tier's and Long's unique indexes, Region's index, Partner's index
        // and foreign key.
        assert_eq!(indexes.len(), 5, "{schema}: {indexes:?}");
        // Give them the names the server gave before the upgrade.
        for (column, name) in &indexes {
            let suffix = name.rsplit('_').next().unwrap();
            let old: String = format!("account_{column}_{suffix}").chars().take(63).collect();
            let statement = if suffix == "fkey" {
                format!("ALTER TABLE {schema}.account RENAME CONSTRAINT \"{name}\" TO \"{old}\"")
            } else {
                format!("ALTER INDEX {schema}.\"{name}\" RENAME TO \"{old}\"")
            };
            app.sql(&statement).await;
        }
        app.sql(&format!(
            "DELETE FROM {schema}.__diesel_schema_migrations WHERE version = '20261124000001'"
        ))
        .await;
        expected.push(indexes);
    }
    let applied = crm::db::migrate::migrate_all(&app.database_url).await.unwrap();
    for schema in schemas {
        let run = applied.iter().find(|a| a.schema == schema).unwrap();
        assert_eq!(run.versions, vec!["20261124000001".to_owned()], "{schema}");
    }
    for (schema, expected) in schemas.iter().zip(expected) {
        assert_eq!(custom_indexes(&app, schema, "account").await, expected, "{schema}");
    }
    // The server finds the upgraded names: dropping one index drops that one.
    app.data(
        "mutation { updateCustomField(object: \"Account\", name: \"tier\", input: { unique: false }) { unique } }",
        json!({}),
    )
    .await;
    let left = custom_indexes(&app, "crm", "account").await;
    assert_eq!(left.len(), 4, "{left:?}");
    assert!(!left.iter().any(|(column, _)| column == "cf_tier"), "{left:?}");
}

#[tokio::test]
async fn lossy_type_changes_are_refused_unless_accepted_and_changing_back_restores_them() {
    let app = TestApp::start().await;
    add_field(
        &app,
        json!({ "object": "Account", "name": "closedAt", "label": "Closed at", "type": "DATETIME" }),
    )
    .await;
    let afternoon = app
        .create(
            "Account",
            json!({ "name": "Afternoon", "closedAt": "2026-03-01T15:45:30.250Z" }),
        )
        .await;
    let midnight = app
        .create(
            "Account",
            json!({ "name": "Midnight", "closedAt": "2026-03-02T00:00:00Z" }),
        )
        .await;
    let preview = "query($type: FieldType!) { previewFieldTypeChange(object: \"Account\", name: \"closedAt\", newType: $type) { withValue convertible invalid lossy loses lossySamples { recordId value converted } restored } }";
    let data = app.data(preview, json!({ "type": "DATE" })).await;
    assert_eq!(
        data["previewFieldTypeChange"],
        json!({ "withValue": 2, "convertible": 2, "invalid": 0, "lossy": 1, "loses": "the time of day",
                "lossySamples": [{ "recordId": afternoon, "value": "2026-03-01T15:45:30Z", "converted": "2026-03-01" }],
                "restored": 0 })
    );

    // Asked plainly, the change is refused and nothing changes.
    let version = metadata_version(&app).await;
    let refused = "mutation { changeCustomFieldType(object: \"Account\", name: \"closedAt\", newType: DATE) { type } }";
    let error = app.error(refused, json!({})).await;
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{error}");
    assert_eq!(error["extensions"]["field"], json!(["onLossy"]));
    assert_eq!(error["extensions"]["count"], 1);
    assert_eq!(error["extensions"]["sampleIds"], json!([afternoon]));
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("1 of 2 Closed at values would lose the time of day"),
        "{error}"
    );
    assert_eq!(
        metadata_version(&app).await,
        version,
        "a refused change changes nothing"
    );
    assert_eq!(
        columns(&app, "account").await,
        vec![("cf_closed_at".to_owned(), "timestamp with time zone".to_owned())]
    );
    let read = "query($id: ID!) { account(id: $id) { closedAt } }";
    let closed_at = async |id: &str| app.data(read, json!({ "id": id })).await["account"]["closedAt"].clone();
    assert_eq!(closed_at(&afternoon).await, "2026-03-01T15:45:30.250000Z");

    // Accepted, it converts.
    let accepted = "mutation($type: FieldType!) { changeCustomFieldType(object: \"Account\", name: \"closedAt\", newType: $type, onLossy: ACCEPT) { type } }";
    let data = app.data(accepted, json!({ "type": "DATE" })).await;
    assert_eq!(data["changeCustomFieldType"]["type"], "DATE");
    assert_eq!(closed_at(&afternoon).await, "2026-03-01");
    assert_eq!(closed_at(&midnight).await, "2026-03-02");

    // Changing it back restores the values of the records not changed since.
    app.data(
        "mutation($id: ID!) { updateAccount(id: $id, input: { closedAt: \"2026-03-05\" }) { id } }",
        json!({ "id": midnight }),
    )
    .await;
    let later = app
        .create("Account", json!({ "name": "Later", "closedAt": "2026-04-01" }))
        .await;
    let data = app.data(preview, json!({ "type": "DATETIME" })).await;
    assert_eq!(
        data["previewFieldTypeChange"],
        json!({ "withValue": 3, "convertible": 3, "invalid": 0, "lossy": 0, "loses": null, "lossySamples": [],
                "restored": 1 })
    );
    app.data(
        "mutation { changeCustomFieldType(object: \"Account\", name: \"closedAt\", newType: DATETIME) { type } }",
        json!({}),
    )
    .await;
    assert_eq!(closed_at(&afternoon).await, "2026-03-01T15:45:30.250000Z");
    assert_eq!(closed_at(&midnight).await, "2026-03-05T00:00:00.000000Z");
    assert_eq!(closed_at(&later).await, "2026-04-01T00:00:00.000000Z");

    // Other conversions that lose information; those that cannot convert
    // a value (a fraction made an integer) are invalid, not lossy.
    add_field(
        &app,
        json!({ "object": "Account", "name": "score", "label": "Score", "type": "DECIMAL" }),
    )
    .await;
    add_field(
        &app,
        json!({ "object": "Account", "name": "note", "label": "Note", "type": "TEXT" }),
    )
    .await;
    for (score, note) in [("2.5", "2026-01-01 09:30"), ("1", "2.555"), ("0", " 120 ")] {
        app.create("Account", json!({ "name": note, "score": score, "note": note }))
            .await;
    }
    let counts = async |name: &str, to: &str| {
        let query = "query($name: String!, $type: FieldType!) { previewFieldTypeChange(object: \"Account\", name: $name, newType: $type) { convertible invalid lossy loses } }";
        app.data(query, json!({ "name": name, "type": to })).await["previewFieldTypeChange"].clone()
    };
    assert_eq!(
        counts("score", "BOOLEAN").await,
        json!({ "convertible": 3, "invalid": 0, "lossy": 1, "loses": "their number (every number but 0 becomes true)" })
    );
    assert_eq!(
        counts("score", "INTEGER").await,
        json!({ "convertible": 2, "invalid": 1, "lossy": 0, "loses": null })
    );
    assert_eq!(
        counts("note", "DECIMAL").await,
        json!({ "convertible": 2, "invalid": 1, "lossy": 1, "loses": "digits after the second decimal place" })
    );
    assert_eq!(
        counts("note", "DATE").await,
        json!({ "convertible": 1, "invalid": 2, "lossy": 1, "loses": "the time of day" })
    );
    assert_eq!(
        counts("note", "INTEGER").await,
        json!({ "convertible": 1, "invalid": 2, "lossy": 0, "loses": null })
    );
}

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
    // Renaming the field keeps its object's search columns as they are.
    let contact_index = "SELECT c.oid::bigint AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                         WHERE n.nspname = 'crm' AND c.relname ~ '^contact_search_.*_fts$'";
    let built = app.scalar(contact_index).await;
    app.data(
        r#"mutation { renameCustomField(object: "Contact", name: "nickname", newName: "alias") { name } }"#,
        json!({}),
    )
    .await;
    app.data(
        r#"mutation { createCustomField(input: { object: "Contact", name: "shoeSize", label: "Shoe size", type: INTEGER }) { name } }"#,
        json!({}),
    )
    .await;
    assert_eq!(app.scalar(contact_index).await, built, "not rebuilt for a new name");
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

const CREATE_CONTACT: &str = "mutation($input: CreateContactInput!) { createContact(input: $input) { id } }";
const RULE: &str = "mutation($input: CreateDuplicateRuleInput!) { createDuplicateRule(input: $input) { id name } }";

async fn contacts(app: &TestApp) -> i64 {
    app.scalar("SELECT count(*) AS n FROM crm.contact WHERE deleted_at IS NULL")
        .await
}

/// The first error of a response that must have failed, with its code.
fn refused(response: &Value, code: &str) -> Value {
    let error = response["errors"][0].clone();
    assert_eq!(error["extensions"]["code"], code, "{response:#}");
    error
}

#[tokio::test]
async fn duplicate_rules_warn_and_block_on_every_write_path() {
    let app = TestApp::start().await;
    // The preset WARN rule: the same email, case and spaces aside. The
    // write goes through and the response lists the match.
    let first = app
        .create(
            "Contact",
            json!({ "firstName": "Ada", "lastName": "Lovelace", "email": "ada@engines.example" }),
        )
        .await;
    let warned = app
        .graphql(
            CREATE_CONTACT,
            json!({ "input": { "lastName": "Byron", "email": "ADA@Engines.example" } }),
        )
        .await;
    assert!(warned["errors"].is_null(), "{warned:#}");
    let warning = &warned["extensions"]["duplicates"][0];
    assert_eq!(warning["rule"], "Contacts with the same email");
    assert_eq!(warning["action"], "WARN");
    assert_eq!(warning["recordId"], warned["data"]["createContact"]["id"]);
    assert_eq!(warning["matches"][0]["id"], first);
    assert_eq!(warning["matches"][0]["name"], "Ada Lovelace");
    assert_eq!(contacts(&app).await, 2);

    // A BLOCK rule on phone numbers, compared by their last ten digits.
    let bad = app
        .graphql(
            RULE,
            json!({ "input": { "name": "Same phone", "object": "Contact", "action": "BLOCK",
                                "criteria": [{ "field": "fax", "match": "NORMALIZED" }] } }),
        )
        .await;
    assert_eq!(
        refused(&bad, "BAD_USER_INPUT")["extensions"]["field"],
        json!(["input", "criteria", 0, "field"])
    );
    app.data(
        RULE,
        json!({ "input": { "name": "Same phone", "object": "Contact", "action": "BLOCK",
                            "criteria": [{ "field": "phone", "match": "NORMALIZED" }] } }),
    )
    .await;
    let grace = app
        .create(
            "Contact",
            json!({ "firstName": "Grace", "lastName": "Hopper", "phone": "+1 (415) 555-0100" }),
        )
        .await;
    let before = contacts(&app).await;
    // Create.
    let blocked = app
        .graphql(
            CREATE_CONTACT,
            json!({ "input": { "lastName": "Copy", "phone": "415.555.0100" } }),
        )
        .await;
    let error = refused(&blocked, "DUPLICATE");
    assert_eq!(error["extensions"]["duplicates"][0]["id"], grace);
    assert_eq!(error["extensions"]["duplicates"][0]["rule"], "Same phone");
    // Batch create: the item is named, none is made.
    let batch = app
        .graphql(
            "mutation($inputs: [CreateContactInput!]!) { createContacts(inputs: $inputs) { id } }",
            json!({ "inputs": [{ "lastName": "Fine" }, { "lastName": "Copy", "phone": "4155550100" }] }),
        )
        .await;
    assert_eq!(
        refused(&batch, "DUPLICATE")["extensions"]["field"],
        json!(["inputs", 1])
    );
    // Update, of the phone only (other changes of a duplicate pass).
    let other = app
        .create("Contact", json!({ "lastName": "Other", "phone": "+44 20 7946 0000" }))
        .await;
    let update = "mutation($id: ID!, $input: UpdateContactInput!) { updateContact(id: $id, input: $input) { id } }";
    let changed = app
        .graphql(update, json!({ "id": other, "input": { "phone": "(415) 555 0100" } }))
        .await;
    assert_eq!(refused(&changed, "DUPLICATE")["extensions"]["field"], json!(["input"]));
    // Upsert.
    let upserted = app
        .graphql(
            "mutation { upsertContact(externalId: \"crm-9\", input: { lastName: \"Copy\", phone: \"415-555-0100\" }) { id } }",
            json!({}),
        )
        .await;
    refused(&upserted, "DUPLICATE");
    assert_eq!(contacts(&app).await, before + 1, "only `Other` was made");
    // Lead conversion: the contact it would make matches; allowDuplicates
    // does not pass a BLOCK rule.
    let lead = app
        .create(
            "Lead",
            json!({ "lastName": "Hopper", "company": "Navy", "phone": "415 555 0100" }),
        )
        .await;
    let convert =
        "mutation($input: ConvertLeadInput!) { convertLead(input: $input) { contact { id } duplicates { id rule } } }";
    let asked = app.graphql(convert, json!({ "input": { "leadId": lead } })).await;
    let error = refused(&asked, "DUPLICATE");
    assert_eq!(error["extensions"]["duplicates"][0]["id"], grace);
    let forced = app
        .graphql(convert, json!({ "input": { "leadId": lead, "allowDuplicates": true } }))
        .await;
    assert_eq!(
        refused(&forced, "DUPLICATE")["extensions"]["duplicates"][0]["rule"],
        "Same phone"
    );
    let into_existing = app
        .data(
            convert,
            json!({ "input": { "leadId": lead, "contact": { "id": grace } } }),
        )
        .await;
    assert_eq!(into_existing["convertLead"]["contact"]["id"], grace);

    // FUZZY and DOMAIN: accounts with a similar name on the same domain.
    app.data(
        "mutation($input: CreateDuplicateRuleInput!) { createDuplicateRule(input: $input) { id } }",
        json!({ "input": { "name": "Similar company", "object": "Account", "action": "BLOCK",
                            "criteria": [{ "field": "name", "match": "FUZZY", "threshold": 0.5 },
                                         { "field": "website", "match": "DOMAIN" }] } }),
    )
    .await;
    app.create(
        "Account",
        json!({ "name": "Globex Corporation", "website": "https://www.globex.example/about" }),
    )
    .await;
    let create_account = "mutation($input: CreateAccountInput!) { createAccount(input: $input) { id } }";
    let similar = app
        .graphql(
            create_account,
            json!({ "input": { "name": "Globex Corporaton", "website": "globex.example" } }),
        )
        .await;
    refused(&similar, "DUPLICATE");
    let elsewhere = app
        .graphql(
            create_account,
            json!({ "input": { "name": "Globex Corporaton", "website": "globex.test" } }),
        )
        .await;
    assert!(
        elsewhere["errors"].is_null(),
        "another domain is another company: {elsewhere:#}"
    );

    // findDuplicates lists the pair the WARN rule let through.
    let found = app
        .data(
            "query { findDuplicates(object: \"Contact\", rule: \"Contacts with the same email\") {
                clusters { rule action matchedOn size records { ... on Contact { id lastName } } } hasNextPage } }",
            json!({}),
        )
        .await;
    let clusters = &found["findDuplicates"]["clusters"];
    assert_eq!(clusters.as_array().unwrap().len(), 1, "{found:#}");
    assert_eq!(clusters[0]["size"], 2);
    assert_eq!(texts(&clusters[0]["records"], &["lastName"]), ["Lovelace", "Byron"]);
    assert_eq!(clusters[0]["matchedOn"], json!(["email"]));
    let error = app
        .error(
            "query { findDuplicates(object: \"Contact\", after: \"nope\") { hasNextPage } }",
            json!({}),
        )
        .await;
    assert_eq!(error["extensions"]["field"], json!(["after"]));
}

#[tokio::test]
async fn duplicate_rules_promote_from_a_sandbox_and_revert() {
    let app = TestApp::start().await;
    app.data(
        "mutation { createSandbox(input: { name: \"dedup\", mode: METADATA_ONLY }) { name } }",
        json!({}),
    )
    .await;
    app.sandbox_data(
        "dedup",
        RULE,
        json!({ "input": { "name": "Same last name", "object": "Contact", "action": "BLOCK",
                            "criteria": [{ "field": "lastName", "match": "NORMALIZED" }] } }),
    )
    .await;
    let diff = app
        .data(
            "query { sandboxDiff(name: \"dedup\") { canApply changes { kind action target } } }",
            json!({}),
        )
        .await["sandboxDiff"]
        .clone();
    assert_eq!(diff["canApply"], true, "{diff:#}");
    assert_eq!(
        diff["changes"],
        json!([{ "kind": "DUPLICATE_RULE", "action": "ADD", "target": "Same last name" }])
    );
    let version = app
        .scalar("SELECT metadata_version::bigint AS n FROM crm.workspace_settings")
        .await;
    let promote = "mutation($version: Int!, $dry: Boolean!) { promoteSandbox(name: \"dedup\", dryRun: $dry, expectedProductionVersion: $version) { applied promotion { id } } }";
    let rehearsed = app.data(promote, json!({ "version": version, "dry": true })).await;
    assert_eq!(rehearsed["promoteSandbox"]["applied"], false);
    app.create("Contact", json!({ "lastName": "Curie" })).await;
    app.create("Contact", json!({ "lastName": "curie " })).await;
    let promoted = app.data(promote, json!({ "version": version, "dry": false })).await;
    assert_eq!(promoted["promoteSandbox"]["applied"], true, "{promoted:#}");
    let blocked = app
        .graphql(CREATE_CONTACT, json!({ "input": { "lastName": "CURIE" } }))
        .await;
    refused(&blocked, "DUPLICATE");
    // The promoted rule got its index.
    let index =
        "SELECT count(*) AS n FROM pg_indexes WHERE schemaname = 'crm' AND indexname ~ '^contact_last_name_.*_dupn$'";
    assert_eq!(app.scalar(index).await, 1);
    let reverted = app
        .data(
            "mutation($id: ID!) { revertPromotion(id: $id, dryRun: false) { applied } }",
            json!({ "id": promoted["promoteSandbox"]["promotion"]["id"] }),
        )
        .await;
    assert_eq!(reverted["revertPromotion"]["applied"], true);
    app.create("Contact", json!({ "lastName": "Curie" })).await;
}

const MERGE: &str = "mutation($survivor: ID!, $merged: [ID!]!, $choices: [MergeFieldChoice!], $dry: Boolean) {
    mergeRecords(object: \"Contact\", survivorId: $survivor, mergedIds: $merged, fieldChoices: $choices, dryRun: $dry) {
        id object mergedIds dryRun removedContactRoles undoneAt moved { object field count }
        survivor { ... on Contact { id phone email version } } } }";

async fn contact_of(app: &TestApp, table: &str, id: &str) -> String {
    let row = app
        .scalar(&format!(
            "SELECT count(*) AS n FROM crm.{table} WHERE id = '{id}' AND contact_id IS NOT NULL"
        ))
        .await;
    assert_eq!(row, 1);
    let data = app
        .data(
            &format!("query($id: ID!) {{ {table}(id: $id) {{ contact {{ id }} }} }}"),
            json!({ "id": id }),
        )
        .await;
    data[table]["contact"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn merge_moves_every_reference_to_the_survivor_and_unmerge_puts_it_back() {
    let app = TestApp::start().await;
    // A custom lookup to contacts, on deals.
    app.data(
        r#"mutation { createCustomField(input: { object: "Opportunity", name: "referrer", label: "Referrer", type: LOOKUP, lookupObject: "Contact", relationName: "referredDeals" }) { name } }"#,
        json!({}),
    )
    .await;
    // And a unique badge number, which the survivor takes from the merged record.
    app.data(
        r#"mutation { createCustomField(input: { object: "Contact", name: "badge", label: "Badge", type: TEXT, unique: true }) { name } }"#,
        json!({}),
    )
    .await;
    let survivor = app
        .create("Contact", json!({ "firstName": "Ada", "lastName": "Lovelace", "email": "ada@engines.example", "externalId": "crm-s" }))
        .await;
    let merged = app
        .create(
            "Contact",
            json!({ "firstName": "Ada", "lastName": "Lovelace", "phone": "+44 20 1234", "externalId": "crm-m", "badge": "B-1" }),
        )
        .await;
    let call = app
        .create(
            "Activity",
            json!({ "type": "CALL", "subject": "Call", "contactId": merged }),
        )
        .await;
    let deal = app
        .create("Opportunity", json!({ "name": "Engines", "referrerId": merged }))
        .await;
    let role = "mutation($o: ID!, $c: ID!) { createContactRole(input: { opportunityId: $o, contactId: $c, role: INFLUENCER }) { id } }";
    app.data(role, json!({ "o": deal, "c": survivor })).await;
    app.data(role, json!({ "o": deal, "c": merged })).await;
    let vars = json!({ "survivor": survivor, "merged": [merged],
                "choices": [{ "field": "phone", "recordId": merged }, { "field": "badge", "recordId": merged }] });

    // A dry run answers what the merge would do and changes nothing.
    let mut dry = vars.clone();
    dry["dry"] = json!(true);
    let rehearsed = app.data(MERGE, dry).await["mergeRecords"].clone();
    assert_eq!(rehearsed["dryRun"], true);
    assert_eq!(rehearsed["survivor"]["phone"], "+44 20 1234");
    assert_eq!(
        contact_of(&app, "activity", &call).await,
        merged,
        "a dry run moves nothing"
    );

    let done = app.data(MERGE, vars.clone()).await["mergeRecords"].clone();
    assert_eq!(done["dryRun"], false);
    assert_eq!(done["survivor"]["id"], survivor);
    assert_eq!(done["survivor"]["phone"], "+44 20 1234", "the chosen value");
    assert_eq!(done["survivor"]["email"], "ada@engines.example", "its own for the rest");
    let badge = app
        .data(
            "query($id: ID!) { contact(id: $id) { badge } }",
            json!({ "id": survivor }),
        )
        .await;
    assert_eq!(badge["contact"]["badge"], "B-1", "a unique value moves too");
    assert_eq!(
        done["removedContactRoles"], 1,
        "the merged contact's role repeated the survivor's"
    );
    let moved: Vec<(String, i64)> = done["moved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                format!("{}.{}", m["object"].as_str().unwrap(), m["field"].as_str().unwrap()),
                m["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(moved.contains(&("Activity.contact".into(), 1)), "{moved:?}");
    assert!(moved.contains(&("Opportunity.referrer".into(), 1)), "{moved:?}");
    assert_eq!(contact_of(&app, "activity", &call).await, survivor);
    let referred = app
        .data(
            "query($id: ID!) { opportunity(id: $id) { referrer { id } contactRoles { totalCount } } }",
            json!({ "id": deal }),
        )
        .await;
    assert_eq!(referred["opportunity"]["referrer"]["id"], survivor);
    assert_eq!(referred["opportunity"]["contactRoles"]["totalCount"], 1);
    // The merged id reads the survivor, on both execution paths.
    let read = "query($id: ID!) { contact(id: $id) { id phone } }";
    for path in ["resolvers", "compiled"] {
        let data = app.graphql(read, json!({ "id": merged })).await;
        assert_eq!(data["data"]["contact"]["id"], survivor, "{path}: {data}");
    }
    let restore = app
        .graphql(
            "mutation($id: ID!) { restoreContact(id: $id) { id } }",
            json!({ "id": merged }),
        )
        .await;
    assert_eq!(restore["errors"][0]["extensions"]["code"], "CONFLICT");
    let audited = app
        .scalar(&format!(
            "SELECT count(*) AS n FROM crm_system.audit_log WHERE record_id = '{merged}' AND action = 'MERGE'"
        ))
        .await;
    assert_eq!(audited, 1);
    // The survivor's history holds the merged record's.
    let history = app
        .data(
            "query($id: ID!) { contact(id: $id) { history { totalCount nodes { action recordId } } } }",
            json!({ "id": survivor }),
        )
        .await;
    let entries = history["contact"]["history"]["nodes"].as_array().unwrap().clone();
    assert_eq!(history["contact"]["history"]["totalCount"], entries.len());
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "MERGE" && e["recordId"] == merged),
        "{history:#}"
    );

    // Undone: everything back as it was.
    let unmerge = "mutation($id: ID!, $dry: Boolean) { unmergeRecords(id: $id, dryRun: $dry) { undoneAt survivor { ... on Contact { phone } } } }";
    let undone = app.data(unmerge, json!({ "id": done["id"] })).await["unmergeRecords"].clone();
    assert!(undone["undoneAt"].is_string());
    assert_eq!(undone["survivor"]["phone"], Value::Null);
    assert_eq!(contact_of(&app, "activity", &call).await, merged);
    let back = app
        .data("query($id: ID!) { contact(id: $id) { id deletedAt } opportunity(id: $o) { referrer { id } contactRoles { totalCount } } }"
            .replace("$id: ID!", "$id: ID!, $o: ID!").as_str(), json!({ "id": merged, "o": deal }))
        .await;
    assert_eq!(back["contact"]["id"], merged);
    let badges = app
        .data(
            "query($id: ID!) { contact(id: $id) { badge } }",
            json!({ "id": merged }),
        )
        .await;
    assert_eq!(badges["contact"]["badge"], "B-1", "and goes back");
    assert_eq!(back["opportunity"]["referrer"]["id"], merged);
    assert_eq!(back["opportunity"]["contactRoles"]["totalCount"], 2);
    let twice = app.graphql(unmerge, json!({ "id": done["id"] })).await;
    assert_eq!(twice["errors"][0]["extensions"]["code"], "CONFLICT");

    // Merged again, an upsert by the merged record's external id changes
    // the survivor; after that the merge can no longer be undone.
    let again = app.data(MERGE, vars).await["mergeRecords"].clone();
    let upserted = app
        .data("mutation { upsertContact(externalId: \"crm-m\", input: { lastName: \"Lovelace\", title: \"Countess\" }) { id title } }", json!({}))
        .await;
    assert_eq!(
        upserted["upsertContact"],
        json!({ "id": survivor, "title": "Countess" })
    );
    let late = app.graphql(unmerge, json!({ "id": again["id"] })).await;
    assert_eq!(late["errors"][0]["extensions"]["code"], "CONFLICT", "{late:#}");

    // Bad input names its argument.
    let error = app
        .error(MERGE, json!({ "survivor": survivor, "merged": [survivor] }))
        .await;
    assert_eq!(error["extensions"]["field"], json!(["mergedIds", 0]));
    let error = app
        .error(
            MERGE,
            json!({ "survivor": survivor, "merged": [merged], "choices": [{ "field": "nope", "recordId": merged }] }),
        )
        .await;
    assert_eq!(error["extensions"]["field"], json!(["fieldChoices", 0, "field"]));
}

const TIMELINE: &str = "query($id: ID!, $first: Int, $after: String, $kinds: [TimelineKind!], $related: Boolean) {
    account(id: $id) { timeline(first: $first, after: $after, kinds: $kinds, includeRelated: $related) {
        edges { cursor node { __typename
            ... on TimelineActivity { at kind planned activity { subject } }
            ... on TimelineFieldChange { at kind object action changes { field } }
            ... on TimelineStageChange { at kind stage { name } fromStage { name } opportunity { name } }
            ... on TimelineConversion { at kind lead { lastName } contact { lastName } }
            ... on TimelineMerge { at kind mergedIds survivor { ... on Contact { lastName } } } } }
        pageInfo { hasNextPage endCursor } } } }";

/// Every event of an account's timeline, page by page (`first` a page).
async fn whole_timeline(app: &TestApp, token: Option<&str>, account: &str, first: i64, vars: Value) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = Value::Null;
    loop {
        let mut variables = vars.clone();
        variables["id"] = json!(account);
        variables["first"] = json!(first);
        variables["after"] = after.clone();
        let response = match token {
            Some(token) => app.graphql_as(token, TIMELINE, variables).await,
            None => app.graphql(TIMELINE, variables).await,
        };
        assert!(response["errors"].is_null(), "{response:#}");
        let page = &response["data"]["account"]["timeline"];
        events.extend(page["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()));
        if page["pageInfo"]["hasNextPage"] != true {
            return events;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
}

fn kinds_of(events: &[Value]) -> Vec<String> {
    let mut kinds: Vec<String> = events.iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect();
    kinds.sort();
    kinds.dedup();
    kinds
}

#[tokio::test]
async fn an_accounts_timeline_holds_everything_that_happened_newest_first() {
    let app = TestApp::start().await;
    app.data(
        "mutation { updateWorkspaceSettings(input: { recordVisibility: OWNED }) { recordVisibility } }",
        json!({}),
    )
    .await;
    let (rep, rep_token) = app.user("rep@example.com", "SALES").await;
    let account = app
        .create("Account", json!({ "name": "Initech", "ownerId": rep }))
        .await;
    let peter = app
        .create(
            "Contact",
            json!({ "firstName": "Peter", "lastName": "Gibbons", "accountId": account, "ownerId": rep }),
        )
        .await;
    let copy = app
        .create(
            "Contact",
            json!({ "firstName": "Peter", "lastName": "Gibbons-Copy", "accountId": account, "ownerId": rep }),
        )
        .await;
    // The admin's own contact at the account: the rep sees it (a child of
    // their account); the admin's account and its timeline they do not.
    app.create(
        "Contact",
        json!({ "firstName": "Bill", "lastName": "Lumbergh", "accountId": account }),
    )
    .await;
    let hidden = app.create("Account", json!({ "name": "Initrode" })).await;
    let deal = app
        .create(
            "Opportunity",
            json!({ "name": "TPS reports", "accountId": account, "ownerId": rep }),
        )
        .await;
    let stage = app
        .data(
            "query { stages(filter: { name: { eq: \"Qualification\" } }) { nodes { id } } }",
            json!({}),
        )
        .await["stages"]["nodes"][0]["id"]
        .clone();
    app.data(
        "mutation($id: ID!, $stage: ID!) { updateOpportunity(id: $id, input: { stageId: $stage }) { id } }",
        json!({ "id": deal, "stage": stage }),
    )
    .await;
    app.create("Activity", json!({ "type": "CALL", "subject": "Intro call", "contactId": peter, "status": "COMPLETED", "completedAt": "2026-01-05T10:00:00Z", "ownerId": rep }))
        .await;
    app.create("Activity", json!({ "type": "TASK", "subject": "Send contract", "opportunityId": deal, "dueAt": "2030-01-01T09:00:00Z", "ownerId": rep }))
        .await;
    let lead = app
        .create(
            "Lead",
            json!({ "lastName": "Smykowski", "company": "Initech", "ownerId": rep }),
        )
        .await;
    app.data(
        "mutation($input: ConvertLeadInput!) { convertLead(input: $input) { contact { id } } }",
        json!({ "input": { "leadId": lead, "account": { "id": account }, "allowDuplicates": true } }),
    )
    .await;
    app.data(MERGE, json!({ "survivor": peter, "merged": [copy] })).await;

    // The admin sees every kind, newest first, paged without repeats.
    let events = whole_timeline(&app, None, &account, 4, json!({})).await;
    assert_eq!(
        kinds_of(&events),
        ["ACTIVITY", "CONVERSION", "FIELD_CHANGE", "MERGE", "STAGE_CHANGE"],
        "{events:#?}"
    );
    let at: Vec<&str> = events.iter().map(|e| e["at"].as_str().unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] >= w[1]), "newest first: {at:?}");
    assert_eq!(
        events[0]["activity"]["subject"], "Send contract",
        "a planned activity is dated by its due date"
    );
    assert_eq!(events[0]["planned"], true);
    let moved = events
        .iter()
        .find(|e| e["kind"] == "STAGE_CHANGE" && e["fromStage"].is_object())
        .unwrap();
    assert_eq!(moved["stage"]["name"], "Qualification");
    assert_eq!(moved["fromStage"]["name"], "Prospecting");
    let merged = events.iter().find(|e| e["kind"] == "MERGE").unwrap();
    assert_eq!(merged["survivor"]["lastName"], "Gibbons");
    let unpaged = whole_timeline(&app, None, &account, 200, json!({})).await;
    assert_eq!(unpaged, events);
    // The merged contact's past is the survivor's: its creation is listed.
    assert!(events.iter().any(|e| e["kind"] == "FIELD_CHANGE"
        && e["action"] == "CREATE"
        && e["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["field"] == "lastName")));

    // Filters: kinds, and the account's own events only.
    let stages = whole_timeline(&app, None, &account, 50, json!({ "kinds": ["STAGE_CHANGE"] })).await;
    assert_eq!(kinds_of(&stages), ["STAGE_CHANGE"]);
    assert_eq!(stages.len(), 2, "created in Prospecting, moved to Qualification");
    let own = whole_timeline(&app, None, &account, 50, json!({ "related": false })).await;
    assert!(
        own.iter()
            .all(|e| e["kind"] == "FIELD_CHANGE" && e["object"] == "Account"),
        "{own:#?}"
    );

    // The rep sees what they may: their account's records, not the admin's account.
    let theirs = whole_timeline(&app, Some(&rep_token), &account, 50, json!({})).await;
    assert_eq!(theirs, events);
    let other = app.graphql_as(&rep_token, TIMELINE, json!({ "id": hidden })).await;
    assert_eq!(other["data"]["account"], Value::Null, "{other:#}");
    let error = app.error(TIMELINE, json!({ "id": account, "after": "nope" })).await;
    assert_eq!(error["extensions"]["field"], json!(["after"]));
}

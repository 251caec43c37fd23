//! Roles, record visibility and the audit log, through the HTTP API.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{json, Value};

use crate::support::TestApp;

/// Every standard object, with the field an update changes.
const OBJECTS: &[(&str, &str)] = &[
    ("Account", "name"),
    ("Contact", "lastName"),
    ("Lead", "lastName"),
    ("Pipeline", "description"),
    ("Stage", "name"),
    ("Opportunity", "name"),
    ("ContactRole", "role"),
    ("Activity", "subject"),
    ("User", "name"),
];

/// What each role may create and update, written out here rather than
/// derived from the server's table, so the two check each other.
fn may_write(role: &str, object: &str) -> bool {
    match role {
        "ADMIN" => true,
        "SALES" => ["Account", "Contact", "Lead", "Opportunity", "ContactRole", "Activity"].contains(&object),
        "SUPPORT" => ["Contact", "Activity"].contains(&object),
        _ => false,
    }
}

/// Whether `role` may delete and restore a record of `object` it owns, and
/// one somebody else owns.
fn may_delete(role: &str, object: &str) -> (bool, bool) {
    match role {
        "ADMIN" => (true, true),
        "SALES" if may_write("SALES", object) => (true, false),
        _ => (false, false),
    }
}

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", UNIQUE.fetch_add(1, Ordering::Relaxed))
}

/// The ids a valid new record of each object refers to.
struct Fixtures {
    pipeline: String,
    opportunity: String,
}

impl Fixtures {
    async fn make(app: &TestApp) -> Fixtures {
        let pipeline = app.create("Pipeline", json!({ "name": "Matrix" })).await;
        let opportunity = app.create("Opportunity", json!({ "name": "Matrix deal" })).await;
        Fixtures { pipeline, opportunity }
    }

    /// A valid input for a new record of `object`, owned by `owner` when given.
    async fn input(&self, app: &TestApp, object: &str, owner: Option<&str>) -> Value {
        let mut input = match object {
            "Account" | "Opportunity" | "Pipeline" => json!({ "name": unique(object) }),
            "Contact" | "Lead" => json!({ "lastName": unique(object) }),
            "Stage" => json!({ "pipelineId": self.pipeline, "name": unique("stage"), "position": 50,
                               "probability": 50, "forecastCategory": "PIPELINE" }),
            "ContactRole" => {
                // A contact of its own, so the (deal, contact, role) stays unique.
                let contact = app.create("Contact", json!({ "lastName": unique("role") })).await;
                json!({ "opportunityId": self.opportunity, "contactId": contact, "role": "CHAMPION" })
            }
            "Activity" => json!({ "type": "CALL", "subject": unique("call") }),
            "User" => json!({ "name": unique("user"), "email": format!("{}@example.com", unique("u")) }),
            other => panic!("no input for {other}"),
        };
        if let (Some(owner), true) = (owner, object != "User") {
            input["ownerId"] = json!(owner);
        }
        input
    }
}

fn update_value(field: &str) -> Value {
    if field == "role" {
        json!("INFLUENCER")
    } else {
        json!(unique("changed"))
    }
}

/// The outcome of a request made with a role's token: `Ok(data)` or the
/// code of its one error (which must be FORBIDDEN to count as denied).
async fn attempt(app: &TestApp, token: &str, query: &str, variables: Value) -> Result<Value, String> {
    let response = app.graphql_as(token, query, variables).await;
    match response["errors"].as_array() {
        None => Ok(response["data"].clone()),
        Some(errors) => {
            let code = errors[0]["extensions"]["code"].as_str().unwrap_or("").to_owned();
            if code == "FORBIDDEN" {
                let permission = errors[0]["extensions"]["permission"].as_str().unwrap_or("");
                assert!(!permission.is_empty(), "FORBIDDEN names the permission: {response}");
                assert!(
                    errors[0]["message"].as_str().unwrap().contains(permission),
                    "{response}"
                );
                assert!(response["data"].is_null(), "{response}");
            }
            Err(format!("{code}: {}", errors[0]["message"]))
        }
    }
}

fn check(what: &str, allowed: bool, outcome: &Result<Value, String>) {
    match (allowed, outcome) {
        (true, Ok(_)) => {}
        (false, Err(code)) if code.starts_with("FORBIDDEN") => {}
        (true, Err(error)) => panic!("{what}: should be allowed, got {error}"),
        (false, Ok(data)) => panic!("{what}: should be FORBIDDEN, got {data}"),
        (false, Err(error)) => panic!("{what}: should be FORBIDDEN, got {error}"),
    }
}

#[tokio::test]
async fn every_role_may_do_exactly_what_it_is_granted() {
    let app = TestApp::start().await;
    let fixtures = Fixtures::make(&app).await;
    let (_, other_token) = app.user("other@example.com", "SALES").await;
    let other = app.graphql_as(&other_token, "{ me { user { id } } }", json!({})).await["data"]["me"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut checked = 0;
    for role in ["ADMIN", "SALES", "SUPPORT", "READ_ONLY"] {
        let (user, token) = app.user(&format!("{}@example.com", role.to_lowercase()), role).await;
        for (object, field) in OBJECTS {
            let singular = {
                let mut chars = object.chars();
                let first = chars.next().unwrap().to_lowercase().collect::<String>();
                format!("{first}{}", chars.as_str())
            };
            let what = |op: &str| format!("{role} {op} {object}");

            // Read: a list and one record, on whichever path answers.
            let existing = app.create(object, fixtures.input(&app, object, None).await).await;
            let plural = match *object {
                "Opportunity" => "opportunities".to_owned(),
                "Activity" => "activities".to_owned(),
                _ => format!("{singular}s"),
            };
            let read =
                format!("query($id: ID!) {{ {plural}(first: 1) {{ totalCount }} {singular}(id: $id) {{ id }} }}");
            for _ in 0..2 {
                let outcome = attempt(&app, &token, &read, json!({ "id": existing })).await;
                check(&what("read"), true, &outcome);
                assert_eq!(
                    outcome.unwrap()[&singular]["id"],
                    json!(existing),
                    "{role} reads {object}"
                );
            }

            // Create.
            let create = format!("mutation($input: Create{object}Input!) {{ create{object}(input: $input) {{ id }} }}");
            let input = fixtures.input(&app, object, None).await;
            let outcome = attempt(&app, &token, &create, json!({ "input": input })).await;
            check(&what("create"), may_write(role, object), &outcome);

            // Update, and a denied update changes nothing.
            let update = format!(
                "mutation($id: ID!, $input: Update{object}Input!) {{ update{object}(id: $id, input: $input) {{ version }} }}"
            );
            let input = json!({ *field: update_value(field) });
            let outcome = attempt(&app, &token, &update, json!({ "id": existing, "input": input })).await;
            check(&what("update"), may_write(role, object), &outcome);
            let version = app
                .data(
                    &format!("query($id: ID!) {{ {singular}(id: $id) {{ version }} }}"),
                    json!({ "id": existing }),
                )
                .await[&singular]["version"]
                .clone();
            let expected = if may_write(role, object) { 2 } else { 1 };
            assert_eq!(version, json!(expected), "{role} update {object}");

            // Delete and restore, of an own record and of somebody else's.
            if *object != "User" {
                let (own, others) = may_delete(role, object);
                for (owner, allowed) in [(&user, own), (&other, others)] {
                    let record = app
                        .create(object, fixtures.input(&app, object, Some(owner)).await)
                        .await;
                    let delete = format!("mutation($id: ID!) {{ delete{object}(id: $id) {{ deletedAt }} }}");
                    let outcome = attempt(&app, &token, &delete, json!({ "id": record })).await;
                    check(&what("delete"), allowed, &outcome);
                    if !allowed {
                        // Deleted by an admin, so the restore has something to restore.
                        app.data(&delete, json!({ "id": record })).await;
                    }
                    let restore = format!("mutation($id: ID!) {{ restore{object}(id: $id) {{ deletedAt }} }}");
                    let outcome = attempt(&app, &token, &restore, json!({ "id": record })).await;
                    check(&what("restore"), allowed, &outcome);
                    checked += 2;
                }
            }
            checked += 3;
        }

        // Metadata: workspace settings, custom fields and objects, reading them.
        let metadata_ops = [
            (
                "mutation { updateWorkspaceSettings(input: { recordVisibility: ALL }) { recordVisibility } }"
                    .to_owned(),
                json!({}),
            ),
            (
                "mutation($input: CreateCustomFieldInput!) { createCustomField(input: $input) { name } }".to_owned(),
                json!({ "input": { "object": "Account", "name": unique("field").replace('-', ""), "label": "F", "type": "TEXT" } }),
            ),
            (
                "mutation($input: CreateCustomObjectInput!) { createCustomObject(input: $input) { name } }".to_owned(),
                json!({ "input": { "name": format!("Thing{}", unique("x").replace('-', "")), "label": "Thing", "pluralLabel": "Things" } }),
            ),
            ("{ objects(includeDeleted: true) { name } }".to_owned(), json!({})),
            ("{ metadataChanges { version } }".to_owned(), json!({})),
        ];
        for (query, variables) in metadata_ops {
            check(
                &format!("{role} metadata {query}"),
                role == "ADMIN",
                &attempt(&app, &token, &query, variables).await,
            );
            checked += 1;
        }
        // User administration: users, tokens, the audit log.
        let new_user = json!({ "input": { "name": unique("n"), "email": format!("{}@example.com", unique("n")) } });
        let admin_ops = [
            (
                "mutation($input: CreateUserInput!) { createUser(input: $input) { id } }",
                new_user,
            ),
            (
                "mutation($input: CreateApiTokenInput!) { createApiToken(input: $input) { token } }",
                json!({ "input": { "userId": other, "name": "x", "role": "READ_ONLY" } }),
            ),
            ("{ apiTokens { id } }", json!({})),
            ("{ auditLog(first: 1) { nodes { id } } }", json!({})),
        ];
        for (query, variables) in admin_ops {
            check(
                &format!("{role} user admin {query}"),
                role == "ADMIN",
                &attempt(&app, &token, query, variables).await,
            );
            checked += 1;
        }
        // Every role reads the model a frontend renders lists and forms from.
        let model = attempt(
            &app,
            &token,
            "{ objects { name label fields { name label type required options { value label } } } object(name: \"Opportunity\") { pluralName } }",
            json!({}),
        )
        .await;
        check(&format!("{role} reads the model"), true, &model);
        checked += 1;
        // Everyone may see who they are.
        check(
            &format!("{role} me"),
            true,
            &attempt(&app, &token, "{ me { role } }", json!({})).await,
        );
    }
    assert!(checked > 150, "{checked} checks");
}

#[tokio::test]
async fn owned_visibility_limits_sales_to_their_records_and_children() {
    let app = TestApp::start().await;
    let (rep, rep_token) = app.user("rep@example.com", "SALES").await;
    let (colleague, _) = app.user("colleague@example.com", "SALES").await;
    let (_, support_token) = app.user("support@example.com", "SUPPORT").await;
    let mine = app.create("Account", json!({ "name": "Mine", "ownerId": rep })).await;
    let theirs = app
        .create(
            "Account",
            json!({ "name": "Theirs", "ownerId": colleague, "externalId": "theirs-1" }),
        )
        .await;
    // A contact owned by the colleague on the rep's account: a child, so visible.
    app.create(
        "Contact",
        json!({ "lastName": "Child", "accountId": mine, "ownerId": colleague }),
    )
    .await;
    let hidden = app
        .create(
            "Contact",
            json!({ "lastName": "Hidden", "accountId": theirs, "ownerId": colleague }),
        )
        .await;
    // The rep's own contact on the colleague's account: visible, its account not.
    app.create(
        "Contact",
        json!({ "lastName": "Own", "accountId": theirs, "ownerId": rep }),
    )
    .await;

    let query = "query($theirs: ID!, $hidden: ID!) {
        accounts(orderBy: [{ field: NAME }]) { totalCount nodes { name contacts(orderBy: [{ field: LAST_NAME }]) { totalCount nodes { lastName } } } }
        contacts(orderBy: [{ field: LAST_NAME }]) { totalCount nodes { lastName account { name } } }
        account(id: $theirs) { name }
        contact(id: $hidden) { lastName }
    }";
    let variables = json!({ "theirs": theirs, "hidden": hidden });
    let everything = json!({
        "accounts": { "totalCount": 2, "nodes": [
            { "name": "Mine", "contacts": { "totalCount": 1, "nodes": [{ "lastName": "Child" }] } },
            { "name": "Theirs", "contacts": { "totalCount": 2, "nodes": [{ "lastName": "Hidden" }, { "lastName": "Own" }] } }
        ] },
        "contacts": { "totalCount": 3, "nodes": [
            { "lastName": "Child", "account": { "name": "Mine" } },
            { "lastName": "Hidden", "account": { "name": "Theirs" } },
            { "lastName": "Own", "account": { "name": "Theirs" } }
        ] },
        "account": { "name": "Theirs" },
        "contact": { "lastName": "Hidden" }
    });
    // ALL (the default): everyone reads everything, on both paths.
    for _ in 0..2 {
        let answer = app.graphql_as(&rep_token, query, variables.clone()).await;
        assert_eq!(answer["data"], everything);
    }

    let set = "mutation($v: RecordVisibility!) { updateWorkspaceSettings(input: { recordVisibility: $v }) { recordVisibility } }";
    app.data(set, json!({ "v": "OWNED" })).await;
    let owned = json!({
        "accounts": { "totalCount": 1, "nodes": [
            { "name": "Mine", "contacts": { "totalCount": 1, "nodes": [{ "lastName": "Child" }] } }
        ] },
        "contacts": { "totalCount": 2, "nodes": [
            { "lastName": "Child", "account": { "name": "Mine" } },
            { "lastName": "Own", "account": null }
        ] },
        "account": null,
        "contact": null
    });
    let compiled_before = app.metric("crm_graphql_compiled_total").await;
    for _ in 0..3 {
        let answer = app.graphql_as(&rep_token, query, variables.clone()).await;
        assert_eq!(answer["data"], owned, "the resolvers and the compiled statement agree");
    }
    assert!(
        app.metric("crm_graphql_compiled_total").await > compiled_before,
        "a restricted read runs compiled too"
    );
    // Other roles still read everything.
    let answer = app.graphql_as(&support_token, query, variables.clone()).await;
    assert_eq!(answer["data"], everything);
    // What a rep cannot see, they cannot change either.
    let update = "mutation($id: ID!) { updateAccount(id: $id, input: { name: \"Taken\" }) { name } }";
    let refused = app.graphql_as(&rep_token, update, json!({ "id": theirs })).await;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "NOT_FOUND", "{refused}");
    let upsert = "mutation { upsertAccount(externalId: \"theirs-1\", input: { name: \"Taken\" }) { name } }";
    let refused = app.graphql_as(&rep_token, upsert, json!({})).await;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "CONFLICT", "{refused}");
    let name = app
        .data("query($id: ID!) { account(id: $id) { name } }", json!({ "id": theirs }))
        .await;
    assert_eq!(
        name["account"]["name"], "Theirs",
        "an invisible record is not overwritten"
    );
    app.data(set, json!({ "v": "ALL" })).await;
    let answer = app.graphql_as(&rep_token, query, variables).await;
    assert_eq!(answer["data"], everything);
}

#[tokio::test]
async fn every_change_is_audited_in_its_own_transaction() {
    let app = TestApp::start().await;
    let (rep, rep_token) = app.user("rep@example.com", "SALES").await;
    let create = "mutation { createAccount(input: { name: \"Audited\", industry: SOFTWARE }) { id } }";
    let created = app.graphql_as(&rep_token, create, json!({})).await;
    let account = created["data"]["createAccount"]["id"].as_str().unwrap().to_owned();
    let update =
        "mutation($id: ID!) { updateAccount(id: $id, input: { name: \"Audited Inc\", industry: null }) { id } }";
    app.graphql_as(&rep_token, update, json!({ "id": account })).await;
    app.graphql_as(
        &rep_token,
        "mutation($id: ID!) { deleteAccount(id: $id) { id } }",
        json!({ "id": account }),
    )
    .await;

    // The record's history, newest first, with before and after.
    let history = app
        .data(
            "query($id: ID!) { account(id: $id) { id } accounts(includeDeleted: true) { nodes { history { totalCount nodes {
                action actor { email } actorRole via workspace object recordId requestId changes { field before after } } } } } }",
            json!({ "id": account }),
        )
        .await;
    let entries = history["accounts"]["nodes"][0]["history"]["nodes"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(history["accounts"]["nodes"][0]["history"]["totalCount"], 3);
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["DELETE", "UPDATE", "CREATE"]);
    for entry in &entries {
        assert_eq!(entry["actor"]["email"], "rep@example.com");
        assert_eq!(entry["actorRole"], "SALES");
        assert_eq!(entry["via"], "API");
        assert_eq!(entry["workspace"], "production");
        assert_eq!(entry["object"], "Account");
        assert_eq!(entry["recordId"], json!(account));
        assert!(entry["requestId"].as_str().is_some_and(|id| id.len() == 36), "{entry}");
    }
    let changes = |i: usize| entries[i]["changes"].clone();
    assert_eq!(
        changes(1),
        json!([
            { "field": "name", "before": "Audited", "after": "Audited Inc" },
            { "field": "industry", "before": "SOFTWARE", "after": null }
        ])
    );
    let created = changes(2);
    let created_fields: Vec<&str> = created
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        created_fields,
        ["ownerId", "name", "industry"],
        "the creator owns a new record"
    );
    assert_eq!(changes(2)[0]["after"], json!(rep));
    assert_eq!(changes(0)[0]["field"], "deletedAt");

    // A failed mutation leaves no entry: a bad batch item rolls back the
    // whole batch and its entries.
    let count = "query($f: AuditLogFilter) { auditLog(filter: $f) { totalCount } }";
    let before = app.data(count, json!({})).await["auditLog"]["totalCount"].clone();
    let batch = app
        .graphql(
            "mutation { createAccounts(inputs: [{ name: \"Good\" }, { name: \"\" }]) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(batch["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    let forbidden = app
        .graphql_as(
            &rep_token,
            "mutation { createPipeline(input: { name: \"No\" }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(forbidden["errors"][0]["extensions"]["code"], "FORBIDDEN");
    assert_eq!(
        forbidden.get("data"),
        Some(&Value::Null),
        "execution ran: data is present, null: {forbidden}"
    );
    assert_eq!(app.data(count, json!({})).await["auditLog"]["totalCount"], before);

    // The log filters and pages; users, tokens and settings are in it too.
    let by_rep = app
        .data(count, json!({ "f": { "actorId": rep, "object": "Account" } }))
        .await;
    assert_eq!(by_rep["auditLog"]["totalCount"], 3);
    let objects = app
        .data("{ auditLog(first: 500) { nodes { object action } } }", json!({}))
        .await;
    for (object, action) in [("User", "CREATE"), ("ApiToken", "CREATE")] {
        assert!(
            objects["auditLog"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["object"] == object && n["action"] == action),
            "{object} {action} in {objects}"
        );
    }
    let mut after: Option<String> = None;
    let mut seen = Vec::new();
    for pages in 0.. {
        assert!(pages < 100, "paging did not end after 100 pages");
        let page = app
            .data(
                "query($after: String) { auditLog(first: 2, after: $after) { pageInfo { hasNextPage endCursor } nodes { id } } }",
                json!({ "after": after }),
            )
            .await;
        for node in page["auditLog"]["nodes"].as_array().unwrap() {
            seen.push(node["id"].as_str().unwrap().parse::<i64>().unwrap());
        }
        if page["auditLog"]["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["auditLog"]["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen.len() as u64, before.as_u64().unwrap());
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first, no repeats");
    let bad = app
        .error("{ auditLog(after: \"nope\") { totalCount } }", json!({}))
        .await;
    assert_eq!(bad["extensions"]["field"], json!(["after"]));

    // Entries cannot be changed: not through the API (there is no such
    // mutation), nor with SQL.
    let mut conn = app.app.db.conn().await.unwrap();
    for sql in [
        "UPDATE crm_system.audit_log SET action = 'CREATE'",
        "DELETE FROM crm_system.audit_log",
        "TRUNCATE crm_system.audit_log",
    ] {
        let refused = diesel_async::SimpleAsyncConnection::batch_execute(&mut *conn, sql).await;
        assert!(refused.is_err(), "{sql}");
    }
}

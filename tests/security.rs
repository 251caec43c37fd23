//! The trust boundary: hostile documents cannot crash or stall the server,
//! record visibility holds on every side door, role rules cannot be walked
//! around, and bad input is BAD_USER_INPUT with its path, never INTERNAL.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::TestApp;

/// POSTs a raw GraphQL request body; the server must answer (not die).
async fn post(app: &TestApp, body: &Value) -> (StatusCode, Value) {
    let response = app
        .request(
            Method::POST,
            "/graphql",
            &[("content-type", "application/json")],
            body.to_string().into_bytes(),
        )
        .await;
    (response.status, response.json())
}

fn code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
}

/// The server still answers an ordinary query.
async fn alive(app: &TestApp) {
    let data = app.data("{ accounts(first: 1) { totalCount } }", json!({})).await;
    assert!(data["accounts"]["totalCount"].is_number());
}

#[tokio::test]
async fn deeply_nested_lists_are_refused_without_crashing() {
    let app = TestApp::start().await;
    // 1,700–7,000 levels overflowed a worker's stack and aborted the process.
    for depth in [60, 100, 1_500, 1_700, 3_000, 7_000, 10_000, 100_000] {
        let list = format!("{}\"a\"{}", "[".repeat(depth), "]".repeat(depth));
        let query = format!("{{ accounts(filter: {{ name: {{ in: {list} }} }}) {{ totalCount }} }}");
        let (status, response) = post(&app, &json!({ "query": query })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "depth {depth}: {response}");
        assert_eq!(code(&response), "QUERY_TOO_COMPLEX", "depth {depth}: {response}");
        // Objects nest the same way.
        let object = format!(
            "{}1{}",
            "{ a: ".repeat(depth.min(20_000)),
            " }".repeat(depth.min(20_000))
        );
        let query = format!("{{ accounts(filter: {{ data: {{ contains: {object} }} }}) {{ totalCount }} }}");
        let (status, _) = post(&app, &json!({ "query": query })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "object depth {depth}");
        alive(&app).await;
    }
    // A block string with an odd number of quotes inside does not hide what follows.
    let list = format!("{}1{}", "[".repeat(3_000), "]".repeat(3_000));
    let query = format!(
        "{{ accounts(filter: {{ name: {{ eq: \"\"\"a\"b\\\"\"\"c\"\"\" }}, employeeCount: {{ in: {list} }} }}) {{ totalCount }} }}"
    );
    let (status, response) = post(&app, &json!({ "query": query })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{response}");
    assert_eq!(code(&response), "QUERY_TOO_COMPLEX", "{response}");
    alive(&app).await;
    // Variables nest past the bound: refused before anything walks them.
    let mut deep = json!("a");
    for _ in 0..100 {
        deep = json!([deep]);
    }
    let query = "query($v: [String!]) { accounts(filter: { name: { in: $v } }) { totalCount } }";
    let (status, response) = post(&app, &json!({ "query": query, "variables": { "v": deep } })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{response}");
    assert_eq!(code(&response), "QUERY_TOO_COMPLEX");
    // A legitimate list of lists is still only a type error.
    let query = r#"{ accounts(filter: { name: { in: [["a"]] } }) { totalCount } }"#;
    let response = app.graphql(query, json!({})).await;
    assert_eq!(code(&response), "BAD_USER_INPUT", "{response}");
    alive(&app).await;
}

#[tokio::test]
async fn fragment_chains_and_fan_outs_are_bounded() {
    let app = TestApp::start().await;
    // Too many fragments.
    let mut query = String::from("{ ...F0 }\n");
    for i in 0..300 {
        query.push_str(&format!("fragment F{i} on Query {{ ...F{} }}\n", i + 1));
    }
    query.push_str("fragment F300 on Query { __typename }\n");
    let response = app.graphql(&query, json!({})).await;
    assert_eq!(code(&response), "QUERY_TOO_COMPLEX", "{response}");
    // Chains where each fragment spreads the next twice, down to a missing
    // one: 2^n paths, weighed once per fragment and refused before
    // validation walks them.
    for n in [20, 40, 100] {
        let mut query = String::from("{ ...F0 }\n");
        for i in 0..n {
            query.push_str(&format!("fragment F{i} on Query {{ ...F{n} ...F{n} }}\n", n = i + 1));
        }
        let answered = tokio::time::timeout(std::time::Duration::from_secs(20), app.graphql(&query, json!({})));
        let response = answered
            .await
            .expect("a fan-out of fragments is refused at once, not walked");
        assert_eq!(code(&response), "QUERY_TOO_COMPLEX", "{response}");
    }
    // A chain where each fragment spreads the next twice: 2^30 paths,
    // summed once per fragment.
    let mut query = String::from("{ accounts { ...A0 } }\n");
    for i in 0..30 {
        query.push_str(&format!(
            "fragment A{i} on AccountConnection {{ ...A{n} ...A{n} }}\n",
            n = i + 1
        ));
    }
    query.push_str("fragment A30 on AccountConnection { totalCount }\n");
    let answered = tokio::time::timeout(std::time::Duration::from_secs(20), app.graphql(&query, json!({})));
    let response = answered
        .await
        .expect("a fan-out of fragments is refused at once, not walked");
    assert_eq!(code(&response), "QUERY_TOO_COMPLEX", "{response}");
    alive(&app).await;
}

#[tokio::test]
async fn the_cost_model_counts_fragments_counts_and_aliases() {
    let app = TestApp::start_with(crm::Config {
        max_complexity: 1_000,
        ..Default::default()
    })
    .await;
    // A connection's nodes reached through a fragment cost a page each,
    // as they do inline.
    let inline = "{ accounts { nodes { contacts { nodes { id firstName lastName } } } } }";
    let fragments = "{ accounts { ...A } } fragment A on AccountConnection { nodes { contacts { ...C } } } \
                     fragment C on ContactConnection { nodes { id firstName lastName } }";
    let spread_inline = "{ accounts { ... on AccountConnection { nodes { id } } } }";
    for query in [inline, fragments] {
        let error = app.error(query, json!({})).await;
        assert_eq!(error["extensions"]["code"], "QUERY_TOO_COMPLEX", "{query}: {error}");
    }
    app.data(spread_inline, json!({})).await;
    // A count reads every row: 21 of them are over a budget of 1,000.
    let counts: String = (0..21).map(|i| format!("c{i}: accounts {{ totalCount }} ")).collect();
    let error = app.error(&format!("{{ {counts} }}"), json!({})).await;
    assert_eq!(error["extensions"]["code"], "QUERY_TOO_COMPLEX", "{error}");
    // Introspection fields are not free either: 5 × 200 of them.
    let typenames: String = (0..200).map(|i| format!("t{i}: __typename ")).collect();
    let query = format!("{{ accounts(first: 5) {{ nodes {{ {typenames} }} }} }}");
    let error = app.error(&query, json!({})).await;
    assert_eq!(error["extensions"]["code"], "QUERY_TOO_COMPLEX", "{error}");
    assert!(error["message"].as_str().unwrap().contains("may resolve"), "{error}");
    // Nor is one selection of more than 256 fields.
    let typenames: String = (0..257).map(|i| format!("t{i}: __typename ")).collect();
    let error = app
        .error(
            &format!("{{ accounts(first: 1) {{ nodes {{ {typenames} }} }} }}"),
            json!({}),
        )
        .await;
    assert!(error["message"].as_str().unwrap().contains("at most 256"), "{error}");
    // Root fields each take a connection: at most 32.
    let roots: String = (0..33).map(|i| format!("r{i}: __typename ")).collect();
    let error = app.error(&format!("{{ {roots} }}"), json!({})).await;
    assert_eq!(error["extensions"]["code"], "QUERY_TOO_COMPLEX", "{error}");
    assert!(error["message"].as_str().unwrap().contains("root fields"), "{error}");
    let roots: String = (0..32).map(|i| format!("r{i}: __typename ")).collect();
    app.data(&format!("{{ {roots} }}"), json!({})).await;
}

#[tokio::test]
async fn text_with_nul_characters_is_bad_user_input() {
    let app = TestApp::start().await;
    app.create("Account", json!({ "name": "abc" })).await;
    let cases = [
        (
            r#"{ accounts(filter: { name: { like: "a\u0000%" } }) { totalCount } }"#,
            json!({}),
            vec!["filter", "name", "like"],
        ),
        (
            "query($p: String!) { accounts(filter: { name: { ilike: $p } }) { totalCount } }",
            json!({ "p": "a\u{0}" }),
            vec!["filter", "name", "ilike"],
        ),
        (
            r#"mutation { upsertAccount(externalId: "x\u0000", input: { name: "n" }) { id } }"#,
            json!({}),
            vec!["externalId"],
        ),
        (
            r#"{ auditLog(filter: { object: "Account\u0000" }) { totalCount } }"#,
            json!({}),
            vec!["filter", "object"],
        ),
        (r#"{ sandbox(name: "a\u0000") { name } }"#, json!({}), vec!["name"]),
    ];
    for (query, variables, path) in cases {
        let response = app.graphql(query, variables).await;
        assert_eq!(code(&response), "BAD_USER_INPUT", "{query}: {response}");
        assert_eq!(response["errors"][0]["extensions"]["field"], json!(path), "{response}");
    }
    alive(&app).await;
}

#[tokio::test]
async fn like_patterns_in_lists_and_cursors_are_checked() {
    let app = TestApp::start().await;
    app.create("Account", json!({ "name": "abc" })).await;
    // A date PostgreSQL cannot hold.
    let query = r#"{ opportunities(filter: { closeDate: { gt: "-5000-01-01" } }) { totalCount } }"#;
    let error = app.error(query, json!({})).await;
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{error}");
    // A pattern ending in the escape character.
    for op in ["like", "ilike"] {
        let query = format!(r#"{{ accounts(filter: {{ name: {{ {op}: "ab\\" }} }}) {{ totalCount }} }}"#);
        let error = app.error(&query, json!({})).await;
        assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{error}");
        assert_eq!(error["extensions"]["field"], json!(["filter", "name", op]));
    }
    // An escaped backslash is a literal one.
    let query = r#"{ accounts(filter: { name: { like: "ab\\\\" } }) { totalCount } }"#;
    assert_eq!(app.data(query, json!({})).await["accounts"]["totalCount"], 0);
    // More values than a statement can bind.
    let many: Vec<String> = (0..65_536).map(|i| i.to_string()).collect();
    let query = "query($v: [String!]) { accounts(filter: { name: { in: $v } }) { totalCount } }";
    let error = app.error(query, json!({ "v": many })).await;
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{error}");
    assert_eq!(error["extensions"]["field"], json!(["filter", "name", "in"]));
    let lists: Vec<Value> = (0..20)
        .map(|_| json!({ "name": { "notIn": many[..4_000].to_vec() } }))
        .collect();
    let query = "query($f: AccountFilter) { accounts(filter: $f) { totalCount } }";
    let error = app.error(query, json!({ "f": { "or": lists } })).await;
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{error}");
    // Crafted cursors for a decimal sort key.
    app.create("Opportunity", json!({ "name": "Deal", "amount": "10.50" }))
        .await;
    let page = app
        .data(
            "{ opportunities(first: 1, orderBy: [{ field: AMOUNT }]) { edges { cursor } } }",
            json!({}),
        )
        .await;
    let cursor = page["opportunities"]["edges"][0]["cursor"].as_str().unwrap();
    let mut doc: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(cursor).unwrap()).unwrap();
    let query = "query($c: String) { opportunities(first: 1, after: $c, orderBy: [{ field: AMOUNT }]) { totalCount } }";
    for bad in [
        json!(""),
        json!("abc"),
        json!("1.5.5"),
        json!("1e999999"),
        json!("1\u{0}"),
    ] {
        doc["v"][0] = bad.clone();
        let crafted = URL_SAFE_NO_PAD.encode(doc.to_string());
        for _ in 0..2 {
            let error = app.error(query, json!({ "c": crafted })).await;
            assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{bad}: {error}");
            assert_eq!(error["extensions"]["field"], json!(["after"]));
        }
    }
    alive(&app).await;
}

const SET_VISIBILITY: &str =
    "mutation($v: RecordVisibility!) { updateWorkspaceSettings(input: { recordVisibility: $v }) { recordVisibility } }";

#[tokio::test]
async fn owned_visibility_holds_on_every_side_door() {
    let app = TestApp::start().await;
    let (rep, rep_token) = app.user("rep@example.com", "SALES").await;
    let (colleague, _) = app.user("colleague@example.com", "SALES").await;
    let mine = app.create("Account", json!({ "name": "Mine", "ownerId": rep })).await;
    let zeta = app
        .create("Account", json!({ "name": "Zeta Secret", "ownerId": colleague }))
        .await;
    // The rep's own contact on the hidden account.
    app.create(
        "Contact",
        json!({ "lastName": "Own", "accountId": zeta, "ownerId": rep }),
    )
    .await;
    // A colleague's contact on the rep's account (visible as a child) with
    // a call the rep may see (theirs) and one they may not.
    let child = app
        .create(
            "Contact",
            json!({ "lastName": "Child", "accountId": mine, "ownerId": colleague }),
        )
        .await;
    app.create(
        "Activity",
        json!({ "type": "CALL", "subject": "Visible call", "contactId": child, "ownerId": rep }),
    )
    .await;
    app.create(
        "Activity",
        json!({ "type": "CALL", "subject": "Secret call", "contactId": child, "ownerId": colleague }),
    )
    .await;
    app.data(SET_VISIBILITY, json!({ "v": "OWNED" })).await;

    let (app, rep_token) = (&app, &rep_token);
    let count = |filter: &'static str| async move {
        let query = format!("{{ contacts(filter: {filter}) {{ totalCount nodes {{ lastName }} }} }}");
        // Twice: the first answer comes from resolvers, the next from the compiled plan.
        let mut answers = Vec::new();
        for _ in 0..2 {
            let response = app.graphql_as(rep_token, &query, json!({})).await;
            assert!(response["errors"].is_null(), "{filter}: {response}");
            answers.push(response["data"]["contacts"]["totalCount"].as_i64().unwrap());
        }
        assert_eq!(answers[0], answers[1], "{filter}: both paths agree");
        answers[0]
    };
    let compiled = app.metric("crm_graphql_compiled_total").await;
    assert_eq!(count(r#"{ account: { name: { startsWith: "Zeta" } } }"#).await, 0);
    assert_eq!(count(r#"{ lastName: { eq: "Own" } }"#).await, 1);
    assert_eq!(
        count(r#"{ activities: { some: { subject: { eq: "Secret call" } } } }"#).await,
        0
    );
    assert_eq!(
        count(r#"{ lastName: { eq: "Child" }, activities: { none: { subject: { eq: "Secret call" } } } }"#).await,
        1
    );
    assert_eq!(
        count(r#"{ lastName: { eq: "Child" }, activities: { every: { subject: { eq: "Visible call" } } } }"#).await,
        1
    );

    assert!(
        app.metric("crm_graphql_compiled_total").await >= compiled + 5,
        "the second answers came from compiled statements"
    );

    // A hidden record cannot be referred to, and does not tell it exists.
    let create = "mutation($a: ID!) { createContact(input: { lastName: \"Sneaky\", accountId: $a }) { id } }";
    let response = app.graphql_as(rep_token, create, json!({ "a": zeta })).await;
    assert_eq!(code(&response), "BAD_USER_INPUT", "{response}");
    let missing = uuid::Uuid::new_v4().to_string();
    let absent = app.graphql_as(rep_token, create, json!({ "a": missing })).await;
    assert_eq!(
        response["errors"][0]["message"]
            .as_str()
            .unwrap()
            .replace(zeta.as_str(), "X"),
        absent["errors"][0]["message"]
            .as_str()
            .unwrap()
            .replace(missing.as_str(), "X"),
    );
    let own = "mutation($id: ID!, $a: ID!) { updateContact(id: $id, input: { accountId: $a }) { id } }";
    let response = app.graphql_as(rep_token, own, json!({ "id": child, "a": zeta })).await;
    assert_eq!(code(&response), "BAD_USER_INPUT", "{response}");
    let update =
        "mutation($id: ID!) { updateAccount(id: $id, input: { name: \"Mine now\" }, expectedVersion: 999) { id } }";
    let response = app.graphql_as(rep_token, update, json!({ "id": zeta })).await;
    assert_eq!(code(&response), "NOT_FOUND", "{response}");
    assert!(
        response["errors"][0]["extensions"]["currentVersion"].is_null(),
        "{response}"
    );
    // Batches check each item the same way.
    let batch = "mutation($a: ID!) { createContacts(inputs: [{ lastName: \"B1\" }, { lastName: \"B2\", accountId: $a }]) { id } }";
    let response = app.graphql_as(rep_token, batch, json!({ "a": zeta })).await;
    assert_eq!(code(&response), "BAD_USER_INPUT", "{response}");
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM crm.contact WHERE last_name IN ('Sneaky', 'B1', 'B2')")
            .await,
        0
    );
}

#[tokio::test]
async fn a_sandbox_follows_production_visibility_unless_changed_there() {
    let app = TestApp::start().await;
    let (rep, rep_token) = app.user("rep@example.com", "SALES").await;
    let (colleague, _) = app.user("colleague@example.com", "SALES").await;
    app.create("Account", json!({ "name": "Mine", "ownerId": rep })).await;
    app.create("Account", json!({ "name": "Theirs", "ownerId": colleague }))
        .await;
    app.data(
        r#"mutation { createSandbox(input: { name: "copy", mode: FULL }) { name } }"#,
        json!({}),
    )
    .await;
    app.data(
        "mutation($u: ID!) { grantSandboxAccess(name: \"copy\", userId: $u) { name } }",
        json!({ "u": rep }),
    )
    .await;
    let seen = || async {
        let response = app
            .graphql_at(
                "/sandboxes/copy/graphql",
                Some(&rep_token),
                "{ accounts { totalCount } }",
                json!({}),
            )
            .await
            .json();
        response["data"]["accounts"]["totalCount"].as_i64().unwrap()
    };
    assert_eq!(seen().await, 2);
    // Production turns to OWNED after the sandbox was made: the sandbox follows.
    app.data(SET_VISIBILITY, json!({ "v": "OWNED" })).await;
    assert_eq!(seen().await, 1);
    let settings = app
        .graphql_at(
            "/sandboxes/copy/graphql",
            Some(&app.token),
            "{ workspaceSettings { recordVisibility } }",
            json!({}),
        )
        .await
        .json();
    assert_eq!(settings["data"]["workspaceSettings"]["recordVisibility"], "OWNED");
    // Changed in the sandbox itself: its own setting holds from then on.
    let changed = app
        .graphql_at(
            "/sandboxes/copy/graphql",
            Some(&app.token),
            SET_VISIBILITY,
            json!({ "v": "ALL" }),
        )
        .await
        .json();
    assert!(changed["errors"].is_null(), "{changed}");
    assert_eq!(seen().await, 2);
    app.data(SET_VISIBILITY, json!({ "v": "ALL" })).await;
    app.data(SET_VISIBILITY, json!({ "v": "OWNED" })).await;
    assert_eq!(seen().await, 2);
}

#[tokio::test]
async fn the_upgrade_makes_existing_sandboxes_follow_production_visibility() {
    let app = TestApp::start().await;
    let mode = |schema: &'static str| {
        let app = &app;
        async move {
            let owned = app
                .scalar(&format!(
                    "SELECT (record_visibility = 'OWNED')::int::bigint AS n FROM {schema}.workspace_settings"
                ))
                .await;
            if owned == 1 {
                "OWNED"
            } else {
                "ALL"
            }
        }
    };
    // What an older server left: a sandbox made while production was OWNED
    // and set to ALL there; one made while it was ALL; then production set
    // to OWNED without the sandboxes following.
    app.sql("UPDATE crm.workspace_settings SET record_visibility = 'OWNED'")
        .await;
    app.data(
        r#"mutation { createSandbox(input: { name: "own" }) { name } }"#,
        json!({}),
    )
    .await;
    app.sql("UPDATE sandbox_own.workspace_settings SET record_visibility = 'ALL'")
        .await;
    app.sql("UPDATE crm.workspace_settings SET record_visibility = 'ALL'")
        .await;
    app.data(
        r#"mutation { createSandbox(input: { name: "old" }) { name } }"#,
        json!({}),
    )
    .await;
    app.sql("UPDATE crm.workspace_settings SET record_visibility = 'OWNED'")
        .await;
    for schema in ["sandbox_own", "sandbox_old"] {
        app.sql(&format!(
            "ALTER TABLE {schema}.workspace_settings DROP COLUMN record_visibility_set_here; \
             DELETE FROM {schema}.__diesel_schema_migrations WHERE version = '20261129000001'"
        ))
        .await;
    }
    assert_eq!(mode("sandbox_old").await, "ALL");
    crm::db::migrate::migrate_all(&app.database_url).await.unwrap();
    assert_eq!(mode("sandbox_old").await, "OWNED", "follows production");
    assert_eq!(mode("sandbox_own").await, "ALL", "set in the sandbox: kept");
    // From now on the one set there keeps its own; the other follows.
    app.data(SET_VISIBILITY, json!({ "v": "ALL" })).await;
    assert_eq!(mode("sandbox_old").await, "ALL");
    app.data(SET_VISIBILITY, json!({ "v": "OWNED" })).await;
    assert_eq!(mode("sandbox_own").await, "ALL");
}

#[tokio::test]
async fn role_rules_cannot_be_walked_around() {
    let app = TestApp::start().await;
    let (rep, rep_token) = app.user("rep@example.com", "SALES").await;
    let (colleague, _) = app.user("colleague@example.com", "SALES").await;
    let (_, support_token) = app.user("support@example.com", "SUPPORT").await;
    let theirs = app
        .create("Account", json!({ "name": "Theirs", "ownerId": colleague }))
        .await;
    let mine = app.create("Account", json!({ "name": "Mine", "ownerId": rep })).await;
    let reassign = "mutation($id: ID!, $o: ID!) { updateAccount(id: $id, input: { ownerId: $o }) { owner { id } } }";
    // Taking a colleague's record, then deleting it as its owner.
    let response = app
        .graphql_as(&rep_token, reassign, json!({ "id": theirs, "o": rep }))
        .await;
    assert_eq!(code(&response), "FORBIDDEN", "{response}");
    let delete = "mutation($id: ID!) { deleteAccount(id: $id) { id } }";
    let response = app.graphql_as(&rep_token, delete, json!({ "id": theirs })).await;
    assert_eq!(code(&response), "FORBIDDEN", "{response}");
    // Batch updates and upserts are held to the same rule.
    let batch = "mutation($id: ID!, $o: ID!) { updateAccounts(inputs: [{ id: $id, input: { ownerId: $o } }]) { id } }";
    let response = app
        .graphql_as(&rep_token, batch, json!({ "id": theirs, "o": rep }))
        .await;
    assert_eq!(code(&response), "FORBIDDEN", "{response}");
    app.data(
        "mutation($id: ID!) { updateAccount(id: $id, input: { externalId: \"theirs-1\" }) { id } }",
        json!({ "id": theirs }),
    )
    .await;
    let upsert = "mutation($o: ID!) { upsertAccount(externalId: \"theirs-1\", input: { name: \"Theirs\", ownerId: $o }) { id } }";
    let response = app.graphql_as(&rep_token, upsert, json!({ "o": rep })).await;
    assert_eq!(code(&response), "FORBIDDEN", "{response}");
    // Their own records they may give away; an admin any.
    let response = app
        .graphql_as(&rep_token, reassign, json!({ "id": mine, "o": colleague }))
        .await;
    assert_eq!(
        response["data"]["updateAccount"]["owner"]["id"],
        json!(colleague),
        "{response}"
    );
    app.data(reassign, json!({ "id": theirs, "o": rep })).await;
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) AS n FROM crm.account WHERE id = '{theirs}' AND deleted_at IS NULL"
        ))
        .await,
        1
    );

    // Bringing back a deleted record by upsert needs the restore permission.
    let contact = app
        .create(
            "Contact",
            json!({ "lastName": "Gone", "externalId": "gone-1", "ownerId": colleague }),
        )
        .await;
    app.data(
        "mutation($id: ID!) { deleteContact(id: $id) { id } }",
        json!({ "id": contact }),
    )
    .await;
    let upsert = "mutation { upsertContact(externalId: \"gone-1\", input: { lastName: \"Back\" }) { id } }";
    for token in [&support_token, &rep_token] {
        let response = app.graphql_as(token, upsert, json!({})).await;
        assert_eq!(code(&response), "FORBIDDEN", "{response}");
    }
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM crm.contact WHERE external_id = 'gone-1' AND deleted_at IS NOT NULL AND last_name = 'Gone'")
            .await,
        1
    );
    // The rep may restore (and so upsert back) what they own.
    app.create(
        "Contact",
        json!({ "lastName": "Mine gone", "externalId": "gone-2", "ownerId": rep }),
    )
    .await;
    app.sql("UPDATE crm.contact SET deleted_at = now() WHERE external_id = 'gone-2'")
        .await;
    let upsert = "mutation { upsertContact(externalId: \"gone-2\", input: { lastName: \"Back\" }) { lastName } }";
    let response = app.graphql_as(&rep_token, upsert, json!({})).await;
    assert_eq!(response["data"]["upsertContact"]["lastName"], "Back", "{response}");
}

//! Sandboxes: copies of production with their own endpoint. What an admin
//! makes in one stays there; production, and every other sandbox, does not
//! change.

use std::time::Duration;

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::TestApp;

const CREATE: &str = "mutation($input: CreateSandboxInput!) { createSandbox(input: $input) { \
    name description mode sampleSize masked status baseVersion productionVersion createdAt createdBy { email } \
    size { rows bytes } endpoint } }";

async fn create_sandbox(app: &TestApp, input: Value) -> Value {
    app.data(CREATE, json!({ "input": input })).await["createSandbox"].clone()
}

async fn version(app: &TestApp, schema: &str) -> i64 {
    app.scalar(&format!(
        "SELECT metadata_version::bigint AS n FROM {schema}.workspace_settings"
    ))
    .await
}

async fn schema_exists(app: &TestApp, schema: &str) -> bool {
    app.scalar(&format!(
        "SELECT count(*) AS n FROM pg_namespace WHERE nspname = '{schema}'"
    ))
    .await
        == 1
}

/// Every type of an endpoint's schema with its fields, sorted.
async fn shape(app: &TestApp, path: &str) -> Vec<(String, Vec<String>)> {
    let response = app
        .graphql_at(
            path,
            None,
            "{ __schema { types { name fields { name } inputFields { name } } } }",
            json!({}),
        )
        .await
        .json();
    let mut types: Vec<(String, Vec<String>)> = response["data"]["__schema"]["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let mut fields: Vec<String> = t["fields"]
                .as_array()
                .into_iter()
                .chain(t["inputFields"].as_array())
                .flatten()
                .map(|f| f["name"].as_str().unwrap().to_owned())
                .collect();
            fields.sort();
            (t["name"].as_str().unwrap().to_owned(), fields)
        })
        .collect();
    types.sort();
    types
}

/// Production with customizations of every kind: a custom object, a
/// picklist, a lookup to the custom object, a deleted (retained) field, and
/// an edited stage.
async fn customized_production(app: &TestApp) {
    app.data(
        r#"mutation {
            createCustomObject(input: { name: "Subscription", label: "Subscription", pluralLabel: "Subscriptions",
                fields: [{ name: "plan", label: "Plan", type: TEXT }] }) { name }
            tier: createCustomField(input: { object: "Contact", name: "tier", label: "Tier", type: PICKLIST,
                options: [{ value: "GOLD" }, { value: "SILVER" }], defaultValue: "SILVER", required: true }) { name }
            planLookup: createCustomField(input: { object: "Contact", name: "plan", label: "Plan",
                type: LOOKUP, lookupObject: "Subscription" }) { name }
            legacy: createCustomField(input: { object: "Account", name: "legacyCode", label: "Legacy code", type: TEXT }) { name }
        }"#,
        json!({}),
    )
    .await;
    app.data(
        r#"mutation { deleteCustomField(object: "Account", name: "legacyCode") { name } }"#,
        json!({}),
    )
    .await;
    let stage = app
        .data(
            r#"{ stages(filter: { name: { eq: "Prospecting" } }) { nodes { id } } }"#,
            json!({}),
        )
        .await["stages"]["nodes"][0]["id"]
        .clone();
    app.data(
        "mutation($id: ID!) { updateStage(id: $id, input: { probability: 15 }) { id } }",
        json!({ "id": stage }),
    )
    .await;
}

#[tokio::test]
async fn a_sandbox_copies_production_metadata_and_its_changes_stay_in_it() {
    let app = TestApp::start().await;
    customized_production(&app).await;
    let account = app.create("Account", json!({ "name": "Acme" })).await;
    app.create(
        "Contact",
        json!({ "lastName": "Lovelace", "accountId": account, "tier": "GOLD" }),
    )
    .await;
    let production_version = version(&app, "crm").await;
    let production_shape = shape(&app, "/graphql").await;

    let made = create_sandbox(&app, json!({ "name": "dev", "description": "Q3 changes" })).await;
    assert_eq!(made["name"], "dev");
    assert_eq!(made["mode"], "METADATA_ONLY");
    assert_eq!(made["status"], "CURRENT");
    assert_eq!(made["baseVersion"], production_version);
    assert_eq!(made["masked"], false);
    assert_eq!(made["createdBy"]["email"], "admin@crm.local");
    assert!(
        made["endpoint"].as_str().unwrap().ends_with("/sandboxes/dev/graphql"),
        "{made}"
    );
    // No records; the pipeline and its stages, the lead field mappings,
    // grades and duplicate rules are configuration.
    let configuration = app
        .scalar(
            "SELECT (SELECT count(*) FROM crm.pipeline) + (SELECT count(*) FROM crm.stage) \
             + (SELECT count(*) FROM crm.lead_field_mapping) + (SELECT count(*) FROM crm.lead_grade) \
             + (SELECT count(*) FROM crm.duplicate_rule) AS n",
        )
        .await;
    assert_eq!(made["size"]["rows"], configuration);
    assert!(made["size"]["bytes"].as_f64().unwrap() > 0.0);

    // The same API as production's, customizations included.
    assert_eq!(shape(&app, "/sandboxes/dev/graphql").await, production_shape);
    let data = app
        .sandbox_data(
            "dev",
            r#"{ accounts { totalCount } contacts { totalCount }
                stages(filter: { name: { eq: "Prospecting" } }) { nodes { probability } }
                object(name: "Account") { fields { name deletedAt } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(data["accounts"]["totalCount"], 0);
    assert_eq!(data["contacts"]["totalCount"], 0);
    assert_eq!(data["stages"]["nodes"][0]["probability"], 15);
    let legacy: Vec<&Value> = data["object"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["name"] == "legacyCode")
        .collect();
    assert!(legacy.len() == 1 && legacy[0]["deletedAt"].is_string(), "{data}");
    // Same metadata rows (ids too, so a promotion knows a renamed field),
    // same version, same history.
    assert_eq!(version(&app, "sandbox_dev").await, production_version);
    let same_ids = app
        .scalar(
            "SELECT count(*) AS n FROM sandbox_dev.custom_field s JOIN crm.custom_field p USING (id, name, position)",
        )
        .await;
    assert_eq!(same_ids, app.scalar("SELECT count(*) AS n FROM crm.custom_field").await);
    assert_eq!(same_ids, 4);
    let history = "{ metadataChanges { version kind summary } }";
    assert_eq!(
        app.sandbox_data("dev", history, json!({})).await,
        app.data(history, json!({})).await
    );

    // Changes in the sandbox: a field, a record, a picklist option.
    app.sandbox_data(
        "dev",
        r#"mutation {
            createCustomField(input: { object: "Account", name: "segment", label: "Segment", type: TEXT }) { name }
            updateCustomField(object: "Contact", name: "tier", input: { options: [{ value: "GOLD" }, { value: "SILVER" }, { value: "PLATINUM" }] }) { name }
        }"#,
        json!({}),
    )
    .await;
    let created = app
        .sandbox_data(
            "dev",
            r#"mutation { createAccount(input: { name: "Sandbox Co", segment: "SMB" }) { id segment } }"#,
            json!({}),
        )
        .await;
    assert_eq!(created["createAccount"]["segment"], "SMB");
    let changes = app.sandbox_data("dev", history, json!({})).await;
    let last = changes["metadataChanges"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["version"], production_version + 2);

    // Production did not change at all.
    assert_eq!(shape(&app, "/graphql").await, production_shape);
    assert_eq!(version(&app, "crm").await, production_version);
    let production = app
        .data(r#"{ accounts { totalCount nodes { name } } }"#, json!({}))
        .await;
    assert_eq!(production["accounts"]["totalCount"], 1);
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM information_schema.columns WHERE table_schema = 'crm' AND column_name = 'cf_segment'")
            .await,
        0
    );
    let status = app.data(r#"{ sandbox(name: "dev") { status } }"#, json!({})).await;
    assert_eq!(status["sandbox"]["status"], "CURRENT");

    // Audited in production's log.
    let log = app
        .data(
            r#"{ auditLog(filter: { object: "Sandbox" }) { nodes { action changes { field after } } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(log["auditLog"]["nodes"][0]["action"], "CREATE");
}

#[tokio::test]
async fn every_statement_of_a_sandbox_request_stays_in_its_schema() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let app = TestApp::start().await;
    customized_production(&app).await;
    app.create("Account", json!({ "name": "Production Co" })).await;
    create_sandbox(&app, json!({ "name": "dev", "mode": "FULL" })).await;

    // Lock every production table: a statement touching one would wait.
    let mut lock = AsyncPgConnection::establish(&app.database_url).await.unwrap();
    lock.batch_execute(
        "BEGIN; DO $$ DECLARE t text; BEGIN \
           FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'crm' LOOP \
             EXECUTE format('LOCK TABLE crm.%I IN ACCESS EXCLUSIVE MODE', t); \
           END LOOP; END $$;",
    )
    .await
    .unwrap();

    // The lock holds: a production request waits (on another server, whose
    // pool keeps that connection busy after the client gives up).
    let other = app.second_server().await;
    let waiting = tokio::time::timeout(
        Duration::from_millis(500),
        other.graphql("{ accounts { totalCount } }", json!({})),
    );
    assert!(waiting.await.is_err(), "production was not locked");

    let requests = [
        r#"{ accounts { totalCount nodes { name contacts { nodes { lastName tier plan { plan } } } history { nodes { action } } } } }"#,
        r#"mutation { createAccount(input: { name: "Sandbox Co" }) { id } }"#,
        r#"mutation { createContact(input: { lastName: "Tester", tier: GOLD }) { id tier } }"#,
        r#"mutation { createSubscription(input: { name: "Pro", plan: "yearly" }) { id } }"#,
        r#"mutation { createCustomField(input: { object: "Account", name: "segment", label: "Segment", type: TEXT, indexed: true }) { name } }"#,
        r#"mutation { createCustomObject(input: { name: "Project", label: "Project", pluralLabel: "Projects" }) { name } }"#,
        r#"mutation { deleteCustomField(object: "Contact", name: "tier") { name } }"#,
        r#"{ objects { name } metadataChanges { version } workspaceSettings { recordVisibility } auditLog { nodes { object } } }"#,
        r#"{ accounts(orderBy: [{ field: NAME }]) { nodes { name segment } } projects { totalCount } }"#,
    ];
    for query in requests {
        let answered = tokio::time::timeout(
            Duration::from_secs(10),
            app.graphql_at("/sandboxes/dev/graphql", None, query, json!({})),
        )
        .await
        .unwrap_or_else(|_| panic!("waited on production's lock: {query}"));
        let body = answered.json();
        assert!(body.get("errors").is_none(), "{query}: {body:#}");
    }
    lock.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        app.data("{ accounts { totalCount } }", json!({})).await["accounts"]["totalCount"],
        1
    );
}

#[tokio::test]
async fn sandboxes_do_not_see_each_other_and_a_deleted_one_is_gone() {
    let app = TestApp::start().await;
    app.create("Account", json!({ "name": "Production Co" })).await;
    create_sandbox(&app, json!({ "name": "alpha" })).await;
    create_sandbox(&app, json!({ "name": "beta", "mode": "FULL" })).await;
    let other = app.second_server().await;
    other
        .sandbox_data("alpha", "{ accounts { totalCount } }", json!({}))
        .await;

    app.sandbox_data(
        "alpha",
        r#"mutation { createCustomField(input: { object: "Account", name: "segment", label: "Segment", type: TEXT }) { name } }"#,
        json!({}),
    )
    .await;
    app.sandbox_data(
        "alpha",
        r#"mutation { createAccount(input: { name: "Alpha Co", segment: "SMB" }) { id } }"#,
        json!({}),
    )
    .await;
    // The other server serves alpha's new field too.
    let mut served = Value::Null;
    for _ in 0..30 {
        served = other
            .graphql_at(
                "/sandboxes/alpha/graphql",
                None,
                "{ accounts { nodes { segment } } }",
                json!({}),
            )
            .await
            .json();
        if served.get("errors").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served.get("errors").is_none(), "{served}");
    let beta = app
        .graphql_at(
            "/sandboxes/beta/graphql",
            None,
            "{ accounts { nodes { name segment } } }",
            json!({}),
        )
        .await
        .json();
    assert_eq!(beta["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{beta}");
    let beta = app
        .sandbox_data("beta", "{ accounts { totalCount nodes { name } } }", json!({}))
        .await;
    assert_eq!(beta["accounts"]["totalCount"], 1);
    assert_eq!(beta["accounts"]["nodes"][0]["name"], "Production Co");
    assert_eq!(
        app.data("{ accounts { totalCount } }", json!({})).await["accounts"]["totalCount"],
        1
    );

    let tables_before = app
        .scalar("SELECT count(*) AS n FROM pg_tables WHERE schemaname IN ('crm', 'crm_system', 'sandbox_beta')")
        .await;
    let deleted = app
        .data(r#"mutation { deleteSandbox(name: "alpha") { name } }"#, json!({}))
        .await;
    assert_eq!(deleted["deleteSandbox"]["name"], "alpha");
    assert!(!schema_exists(&app, "sandbox_alpha").await);
    assert!(schema_exists(&app, "sandbox_beta").await);
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM pg_tables WHERE schemaname IN ('crm', 'crm_system', 'sandbox_beta')")
            .await,
        tables_before
    );
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM crm_system.workspace WHERE name = 'alpha'")
            .await,
        0
    );
    let sandboxes = app.data("{ sandboxes { name } }", json!({})).await;
    assert_eq!(sandboxes["sandboxes"], json!([{ "name": "beta" }]));
    for server in [&app, &other] {
        let mut status = StatusCode::OK;
        for _ in 0..30 {
            let response = server
                .graphql_at(
                    "/sandboxes/alpha/graphql",
                    None,
                    "{ accounts { totalCount } }",
                    json!({}),
                )
                .await;
            status = response.status;
            if status == StatusCode::NOT_FOUND {
                assert_eq!(response.json()["errors"][0]["extensions"]["code"], "NOT_FOUND");
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    for path in [
        "/sandboxes/nothing/graphql",
        "/sandboxes/Bad-Name/graphql",
        "/sandboxes/production/graphql",
    ] {
        let response = app
            .graphql_at(path, None, "{ accounts { totalCount } }", json!({}))
            .await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(response.json()["errors"][0]["extensions"]["code"], "NOT_FOUND");
    }
    let again = app
        .error(r#"mutation { deleteSandbox(name: "alpha") { name } }"#, json!({}))
        .await;
    assert_eq!(again["extensions"]["code"], "NOT_FOUND");
}

/// Production with related records: accounts (one the parent of another),
/// contacts (two sharing an email), opportunities, roles, activities, a
/// lead, and a custom lookup from Account to Contact that closes a cycle.
async fn related_records(app: &TestApp) {
    app.data(
        r#"mutation { createCustomField(input: { object: "Account", name: "champion", label: "Champion",
            type: LOOKUP, lookupObject: "Contact", relationName: "championOf" }) { name } }"#,
        json!({}),
    )
    .await;
    let mut parent: Option<String> = None;
    for i in 0..5 {
        let account = app
            .create(
                "Account",
                json!({ "name": format!("Account {i}"), "parentAccountId": parent, "description": "Met at the fair",
                        "billingStreet": "1 Main Street", "phone": "+44 20 7946 0000" }),
            )
            .await;
        let email = if i < 2 {
            "shared@customer.example".to_owned()
        } else {
            format!("grace{i}@customer.example")
        };
        let first = app
            .create(
                "Contact",
                json!({ "firstName": "Grace", "lastName": format!("Hopper{i}"), "email": email, "accountId": account,
                        "mobile": "+1 202 555 0147", "birthdate": "1906-12-09", "mailingCity": "Arlington" }),
            )
            .await;
        let second = app
            .create(
                "Contact",
                json!({ "lastName": format!("Second{i}"), "accountId": account }),
            )
            .await;
        app.data(
            "mutation($id: ID!, $c: ID!) { updateAccount(id: $id, input: { championId: $c }) { id } }",
            json!({ "id": account, "c": first }),
        )
        .await;
        let deal = app
            .create(
                "Opportunity",
                json!({ "name": format!("Deal {i}"), "accountId": account, "primaryContactId": second, "amount": "1000" }),
            )
            .await;
        app.create(
            "ContactRole",
            json!({ "opportunityId": deal, "contactId": first, "role": "DECISION_MAKER" }),
        )
        .await;
        app.create(
            "Activity",
            json!({ "type": "CALL", "subject": "Called Grace about pricing", "body": "She wants a discount",
                    "accountId": account, "contactId": first, "opportunityId": deal }),
        )
        .await;
        if i == 0 {
            parent = Some(account);
        }
    }
    app.create(
        "Lead",
        json!({ "firstName": "Alan", "lastName": "Turing", "email": "alan@lead.example" }),
    )
    .await;
}

/// Fails when a lookup of a schema refers to no record: the copy may run
/// without row-by-row foreign key checks, so the test checks every one.
async fn assert_no_dangling_lookups(app: &TestApp, schema: &str) {
    let checked = app
        .scalar(&format!(
            "SELECT count(*) AS n FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid \
             JOIN pg_namespace n ON n.oid = t.relnamespace WHERE c.contype = 'f' AND n.nspname = '{schema}'"
        ))
        .await;
    assert!(checked > 20, "{checked} foreign keys");
    app.sql(&format!(
        "DO $$ DECLARE r record; n bigint; BEGIN \
           FOR r IN SELECT c.conrelid::regclass AS child, a.attname AS col, c.confrelid::regclass AS parent \
             FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace s ON s.oid = t.relnamespace \
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] \
             WHERE c.contype = 'f' AND s.nspname = '{schema}' LOOP \
             EXECUTE format('SELECT count(*) FROM %s t WHERE t.%I IS NOT NULL AND NOT EXISTS \
               (SELECT 1 FROM %s p WHERE p.id = t.%I)', r.child, r.col, r.parent, r.col) INTO n; \
             IF n > 0 THEN RAISE EXCEPTION '% rows of %.% refer to no %', n, r.child, r.col, r.parent; END IF; \
           END LOOP; END $$"
    ))
    .await;
}

const TABLES: [&str; 7] = [
    "account",
    "contact",
    "opportunity",
    "contact_role",
    "activity",
    "lead",
    "stage",
];

#[tokio::test]
async fn a_sample_keeps_relations_and_a_full_masked_copy_hides_people() {
    let app = TestApp::start().await;
    related_records(&app).await;

    let sample = create_sandbox(&app, json!({ "name": "sample", "mode": "SAMPLE", "sampleSize": 2 })).await;
    assert_eq!(sample["sampleSize"], 2);
    for table in ["account", "contact", "opportunity", "contact_role", "activity", "lead"] {
        let n = app
            .scalar(&format!("SELECT count(*) AS n FROM sandbox_sample.{table}"))
            .await;
        assert!((1..=2).contains(&n), "{table}: {n}");
    }
    // Foreign keys hold (the copy would have failed), and the sample is
    // connected: contacts at sampled accounts, deals of sampled accounts.
    let connected = app
        .scalar("SELECT count(*) AS n FROM sandbox_sample.contact WHERE account_id IS NOT NULL")
        .await;
    assert_eq!(connected, 2);
    let deals = app
        .scalar("SELECT count(*) AS n FROM sandbox_sample.opportunity WHERE account_id IS NOT NULL")
        .await;
    assert_eq!(deals, 2);
    // The cycle (Account.champion → Contact → Account) is closed after both
    // are copied: a champion is kept exactly when that contact was sampled.
    let kept = app
        .scalar("SELECT count(*) AS n FROM sandbox_sample.account WHERE cf_champion IS NOT NULL")
        .await;
    let expected = app
        .scalar(
            "SELECT count(*) AS n FROM sandbox_sample.account s JOIN crm.account p USING (id) \
             WHERE p.cf_champion IN (SELECT id FROM sandbox_sample.contact)",
        )
        .await;
    assert_eq!(kept, expected);
    let dangling = app
        .scalar(
            "SELECT count(*) AS n FROM sandbox_sample.account WHERE parent_account_id IS NOT NULL \
             AND parent_account_id NOT IN (SELECT id FROM sandbox_sample.account)",
        )
        .await;
    assert_eq!(dangling, 0);
    assert_no_dangling_lookups(&app, "sandbox_sample").await;

    let full = create_sandbox(&app, json!({ "name": "full", "mode": "FULL", "mask": true })).await;
    assert_eq!(full["masked"], true);
    assert_no_dangling_lookups(&app, "sandbox_full").await;
    // Every index is back, as production has it.
    let indexes = |schema: &str| {
        format!("SELECT count(*) AS n FROM pg_indexes WHERE schemaname = '{schema}' AND tablename <> '__diesel_schema_migrations'")
    };
    assert_eq!(
        app.scalar(&indexes("sandbox_full")).await,
        app.scalar(&indexes("crm")).await
    );
    for table in TABLES {
        let copied = app
            .scalar(&format!("SELECT count(*) AS n FROM sandbox_full.{table}"))
            .await;
        let original = app.scalar(&format!("SELECT count(*) AS n FROM crm.{table}")).await;
        assert_eq!(copied, original, "{table}");
    }
    // Every relation as in production.
    let same = app
        .scalar(
            "SELECT count(*) AS n FROM sandbox_full.contact s JOIN crm.contact p USING (id) \
             WHERE s.account_id IS NOT DISTINCT FROM p.account_id",
        )
        .await;
    assert_eq!(same, app.scalar("SELECT count(*) AS n FROM crm.contact").await);
    let champions = app
        .scalar("SELECT count(*) AS n FROM sandbox_full.account WHERE cf_champion IS NOT NULL")
        .await;
    assert_eq!(champions, 5);
    // No person's data left; fakes are deterministic and keep emails unique.
    let masked = app
        .sandbox_data(
            "full",
            r#"{ contacts(first: 100) { nodes { id firstName lastName email mobile birthdate mailingCity } }
                accounts(first: 100) { nodes { description billingStreet phone } }
                activities { nodes { subject body } } leads { nodes { firstName lastName email } } }"#,
            json!({}),
        )
        .await;
    let text = masked.to_string();
    for secret in [
        "Grace",
        "Hopper",
        "customer.example",
        "Met at the fair",
        "Main Street",
        "+44 20 7946 0000",
        "+1 202 555 0147",
        "Arlington",
        "discount",
        "pricing",
        "Alan",
        "Turing",
        "lead.example",
        "1906-12-09",
    ] {
        assert!(!text.contains(secret), "{secret} was copied: {text}");
    }
    let contacts = masked["contacts"]["nodes"].as_array().unwrap();
    let emails: Vec<&str> = contacts.iter().filter_map(|c| c["email"].as_str()).collect();
    assert_eq!(emails.len(), 5);
    assert!(emails.iter().all(|e| e.ends_with("@example.com")), "{emails:?}");
    let mut distinct = emails.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        4,
        "the two contacts sharing an email still do: {emails:?}"
    );
    let birthdate = contacts.iter().find_map(|c| c["birthdate"].as_str()).unwrap();
    assert_eq!(birthdate, "1906-01-01");
    let described = masked["accounts"]["nodes"][0]["description"].as_str().unwrap();
    assert_eq!(described.len(), "Met at the fair".len());
    // The same value gets the same fake in another masked sandbox.
    create_sandbox(&app, json!({ "name": "again", "mode": "FULL", "mask": true })).await;
    let same_fakes = app
        .scalar(
            "SELECT count(*) AS n FROM sandbox_full.contact a JOIN sandbox_again.contact b USING (id) \
             WHERE a.email IS NOT DISTINCT FROM b.email AND a.last_name = b.last_name AND a.first_name IS NOT DISTINCT FROM b.first_name",
        )
        .await;
    assert_eq!(same_fakes, 10);
    // Production keeps its people.
    let production = app
        .data(
            r#"{ contacts(filter: { firstName: { eq: "Grace" } }) { totalCount } }"#,
            json!({}),
        )
        .await;
    assert_eq!(production["contacts"]["totalCount"], 5);
}

#[tokio::test]
async fn a_refresh_discards_the_sandbox_changes_and_takes_production_now() {
    let app = TestApp::start().await;
    app.create("Account", json!({ "name": "First" })).await;
    create_sandbox(&app, json!({ "name": "dev" })).await;
    app.sandbox_data(
        "dev",
        r#"mutation { createCustomField(input: { object: "Account", name: "sandboxOnly", label: "Sandbox only", type: TEXT }) { name } }"#,
        json!({}),
    )
    .await;
    app.data(
        r#"mutation { createCustomField(input: { object: "Account", name: "region", label: "Region", type: TEXT }) { name } }"#,
        json!({}),
    )
    .await;
    let status = app
        .data(
            r#"{ sandbox(name: "dev") { status baseVersion productionVersion } }"#,
            json!({}),
        )
        .await;
    assert_eq!(status["sandbox"]["status"], "PRODUCTION_CHANGED");

    let refreshed = app
        .data(
            r#"mutation { refreshSandbox(name: "dev", mode: SAMPLE, sampleSize: 5) {
                mode sampleSize status baseVersion productionVersion refreshedAt refreshedBy { email } } }"#,
            json!({}),
        )
        .await["refreshSandbox"]
        .clone();
    assert_eq!(refreshed["mode"], "SAMPLE");
    assert_eq!(refreshed["sampleSize"], 5);
    assert_eq!(refreshed["status"], "CURRENT");
    assert_eq!(refreshed["baseVersion"], refreshed["productionVersion"]);
    assert!(refreshed["refreshedAt"].is_string());
    assert_eq!(refreshed["refreshedBy"]["email"], "admin@crm.local");
    // The next request is served from the new schema: production's field,
    // not the sandbox's old one, and production's records.
    let data = app
        .sandbox_data("dev", "{ accounts { nodes { name region } } }", json!({}))
        .await;
    assert_eq!(data["accounts"]["nodes"][0]["name"], "First");
    let old = app
        .graphql_at(
            "/sandboxes/dev/graphql",
            None,
            "{ accounts { nodes { sandboxOnly } } }",
            json!({}),
        )
        .await
        .json();
    assert_eq!(old["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    let missing = app
        .error(r#"mutation { refreshSandbox(name: "nope") { name } }"#, json!({}))
        .await;
    assert_eq!(missing["extensions"]["code"], "NOT_FOUND");
}

#[tokio::test]
async fn bad_input_is_refused_and_a_failed_creation_leaves_nothing() {
    let app = TestApp::start().await;
    let names = [
        "",
        "Dev",
        "dev-1",
        "dev space",
        "dëv",
        "production",
        "a;drop schema crm",
        &"a".repeat(41),
    ];
    for name in names {
        let error = app.error(CREATE, json!({ "input": { "name": name } })).await;
        assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{name}: {error}");
        assert_eq!(error["extensions"]["field"], json!(["input", "name"]), "{name}");
    }
    for (input, field) in [
        (json!({ "name": "s", "mode": "SAMPLE", "sampleSize": 0 }), "sampleSize"),
        (json!({ "name": "s", "mode": "FULL", "sampleSize": 10 }), "sampleSize"),
    ] {
        let error = app.error(CREATE, json!({ "input": input })).await;
        assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT");
        assert_eq!(error["extensions"]["field"], json!(["input", field]));
    }
    create_sandbox(&app, json!({ "name": "taken" })).await;
    let error = app.error(CREATE, json!({ "input": { "name": "taken" } })).await;
    assert_eq!(error["extensions"]["code"], "CONFLICT");
    app.sql("CREATE SCHEMA sandbox_squatted; CREATE TABLE sandbox_squatted.keep (id int)")
        .await;
    let error = app.error(CREATE, json!({ "input": { "name": "squatted" } })).await;
    assert_eq!(error["extensions"]["code"], "CONFLICT");
    assert_eq!(app.scalar("SELECT count(*) AS n FROM sandbox_squatted.keep").await, 0);

    // A copy failing after the schema, the migrations and the replay are
    // done (a production row breaks a rule the copy keeps) leaves nothing.
    app.data(
        r#"mutation { createCustomField(input: { object: "Contact", name: "code", label: "Code", type: TEXT, required: true, defaultValue: "X" }) { name } }"#,
        json!({}),
    )
    .await;
    app.create("Account", json!({ "name": "Acme" })).await;
    app.create("Contact", json!({ "lastName": "Broken" })).await;
    app.sql("ALTER TABLE crm.contact ALTER COLUMN cf_code DROP NOT NULL; UPDATE crm.contact SET cf_code = NULL")
        .await;
    let audit_before = app.scalar("SELECT count(*) AS n FROM crm_system.audit_log").await;
    let error = app
        .error(CREATE, json!({ "input": { "name": "broken", "mode": "FULL" } }))
        .await;
    assert_eq!(error["extensions"]["code"], "INTERNAL");
    assert!(!error["message"].as_str().unwrap().contains("cf_code"), "{error}");
    assert!(!schema_exists(&app, "sandbox_broken").await);
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM crm_system.workspace WHERE name = 'broken'")
            .await,
        0
    );
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM crm_system.audit_log").await,
        audit_before
    );
    app.sql("UPDATE crm.contact SET cf_code = 'X'; ALTER TABLE crm.contact ALTER COLUMN cf_code SET NOT NULL")
        .await;
    let made = create_sandbox(&app, json!({ "name": "broken", "mode": "FULL" })).await;
    assert!(made["size"]["rows"].as_i64().unwrap() > 2, "{made}");
}

#[tokio::test]
async fn only_admins_manage_sandboxes_and_granted_users_use_them() {
    let app = TestApp::start().await;
    create_sandbox(&app, json!({ "name": "dev" })).await;
    let (rep, rep_token) = app.user("rep@crm.local", "SALES").await;
    for query in [
        r#"mutation { createSandbox(input: { name: "mine" }) { name } }"#,
        r#"mutation { deleteSandbox(name: "dev") { name } }"#,
        r#"mutation { refreshSandbox(name: "dev") { name } }"#,
        "{ sandboxes { name } }",
    ] {
        let response = app.graphql_as(&rep_token, query, json!({})).await;
        assert_eq!(response["errors"][0]["extensions"]["code"], "FORBIDDEN", "{query}");
    }
    let path = "/sandboxes/dev/graphql";
    let refused = app
        .graphql_at(path, Some(&rep_token), "{ accounts { totalCount } }", json!({}))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.json()["errors"][0]["extensions"]["code"], "FORBIDDEN");

    let granted = app
        .data(
            "mutation($u: ID!) { grantSandboxAccess(name: \"dev\", userId: $u) { grantedUsers { email } } }",
            json!({ "u": rep }),
        )
        .await;
    assert_eq!(
        granted["grantSandboxAccess"]["grantedUsers"],
        json!([{ "email": "rep@crm.local" }])
    );
    let created = app
        .graphql_at(
            path,
            Some(&rep_token),
            r#"mutation { createAccount(input: { name: "Tested" }) { owner { email } } }"#,
            json!({}),
        )
        .await
        .json();
    assert_eq!(
        created["data"]["createAccount"]["owner"]["email"], "rep@crm.local",
        "{created}"
    );
    // With the rep's own role: no metadata changes.
    let customize = app
        .graphql_at(
            path,
            Some(&rep_token),
            r#"mutation { createCustomField(input: { object: "Account", name: "x", label: "X", type: TEXT }) { name } }"#,
            json!({}),
        )
        .await
        .json();
    assert_eq!(customize["errors"][0]["extensions"]["code"], "FORBIDDEN");
    assert_eq!(
        app.data("{ accounts { totalCount } }", json!({})).await["accounts"]["totalCount"],
        0
    );
    app.data(
        "mutation($u: ID!) { revokeSandboxAccess(name: \"dev\", userId: $u) { name } }",
        json!({ "u": rep }),
    )
    .await;
    let refused = app
        .graphql_at(path, Some(&rep_token), "{ accounts { totalCount } }", json!({}))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let unknown = app
        .error(
            "mutation { grantSandboxAccess(name: \"dev\", userId: \"00000000-0000-0000-0000-000000000001\") { name } }",
            json!({}),
        )
        .await;
    assert_eq!(unknown["extensions"]["field"], json!(["userId"]));

    // Managed from production only.
    let there = app
        .graphql_at(path, None, "{ sandboxes { name } }", json!({}))
        .await
        .json();
    assert_eq!(there["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    // The playground names the sandbox; an unknown one has none.
    let page = app.get(path, &[("accept", "text/html")]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("Sandbox <b>dev</b>"));
    assert!(page.text().contains("\"/sandboxes/dev/graphql\""));
    let none = app.get("/sandboxes/other/graphql", &[("accept", "text/html")]).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    let get = app
        .request(
            Method::GET,
            "/sandboxes/dev/graphql?query=%7Baccounts%7BtotalCount%7D%7D",
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(get.json()["data"]["accounts"]["totalCount"], 1);
}

/// A fresh sandbox is production's metadata as it is: masking replaces
/// people's data in records, never configuration (a pipeline's
/// description) or customizations (a picklist's options), so a new
/// sandbox of any mode has nothing to promote.
#[tokio::test]
async fn a_fresh_sandbox_of_any_mode_masked_or_not_has_no_changes() {
    let app = TestApp::start().await;
    related_records(&app).await;
    let sales = app.data("{ pipelines { nodes { id name } } }", json!({})).await["pipelines"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.data(
        r#"mutation($sales: ID!) {
            sales: updatePipeline(id: $sales, input: { description: "The default sales process, from lead to close" }) { id }
            renewals: createPipeline(input: { name: "Renewals", description: "Contracts coming up for renewal" }) { id }
            tier: createCustomField(input: { object: "Account", name: "tier", label: "Tier", type: PICKLIST,
                description: "How much the account buys", options: [{ value: "GOLD", label: "Gold" }, { value: "SILVER" }] }) { name }
            notes: createCustomField(input: { object: "Contact", name: "notes", label: "Notes", type: LONG_TEXT,
                description: "What we know about them" }) { name }
            createCustomObject(input: { name: "Project", label: "Project", pluralLabel: "Projects",
                description: "Work we do for a customer",
                fields: [{ name: "brief", label: "Brief", type: LONG_TEXT, description: "What the project is about" }] }) { name }
        }"#,
        json!({ "sales": sales }),
    )
    .await;
    app.create(
        "Project",
        json!({ "name": "Billing", "brief": "Rebuild the billing of Grace Hopper" }),
    )
    .await;

    for mode in ["METADATA_ONLY", "SAMPLE", "FULL"] {
        for mask in [false, true] {
            let name = format!("{}_{mask}", mode.to_lowercase());
            create_sandbox(&app, json!({ "name": name, "mode": mode, "mask": mask })).await;
            let diff = app
                .data(
                    "query($name: String!) { sandboxDiff(name: $name) { changes { summary } } }",
                    json!({ "name": name }),
                )
                .await;
            assert_eq!(
                diff["sandboxDiff"]["changes"],
                json!([]),
                "{mode}, mask: {mask}: a fresh sandbox has no changes"
            );
        }
    }
    // Records' people are masked all the same (masking is on).
    let emails =
        |schema: &str| format!("SELECT count(*) AS n FROM {schema}.contact WHERE email LIKE '%@customer.example'");
    assert_eq!(app.scalar(&emails("crm")).await, 5);
    assert_eq!(app.scalar(&emails("sandbox_full_false")).await, 5);
    assert_eq!(app.scalar(&emails("sandbox_full_true")).await, 0);
    let brief = "{ projects { nodes { brief } } }";
    let masked = app.sandbox_data("full_true", brief, json!({})).await;
    let copied = app.sandbox_data("full_false", brief, json!({})).await;
    assert_eq!(copied, app.data(brief, json!({})).await);
    assert_ne!(masked, copied, "a custom object's long text is masked");
}

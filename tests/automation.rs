//! Automation: validation rules on every write path, workflow rules and
//! their runs, emails through a real SMTP server (a sink the test starts)
//! and sandboxes that capture them, timers and waits with two servers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crm::config::{SmtpConfig, SmtpSecurity};
use crm::Config;
use hyper::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::support::TestApp;

/// A message the sink received.
#[derive(Debug, Clone)]
struct Received {
    to: Vec<String>,
    data: String,
}

/// An SMTP server on localhost that keeps what it is sent, and counts
/// the connections made to it.
#[derive(Clone)]
struct Sink {
    addr: SocketAddr,
    messages: Arc<Mutex<Vec<Received>>>,
    connections: Arc<Mutex<usize>>,
}

impl Sink {
    async fn start() -> Sink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink = Sink {
            addr: listener.local_addr().unwrap(),
            messages: Arc::default(),
            connections: Arc::default(),
        };
        let kept = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                *kept.connections.lock().unwrap() += 1;
                tokio::spawn(session(stream, kept.messages.clone()));
            }
        });
        sink
    }

    fn messages(&self) -> Vec<Received> {
        self.messages.lock().unwrap().clone()
    }

    fn connections(&self) -> usize {
        *self.connections.lock().unwrap()
    }

    fn config(&self) -> Config {
        Config {
            smtp: Some(SmtpConfig {
                host: "127.0.0.1".into(),
                port: self.addr.port(),
                security: SmtpSecurity::None,
                user: None,
                password: None,
            }),
            automation_interval: Duration::from_millis(200),
            ..Config::default()
        }
    }
}

/// One SMTP conversation, as RFC 5321 has it (no TLS, no auth).
async fn session(stream: tokio::net::TcpStream, messages: Arc<Mutex<Vec<Received>>>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
    let mut to = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let upper = line.to_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
        } else if upper.starts_with("RCPT TO:") {
            to.push(line[8..].trim().trim_matches(['<', '>']).to_owned());
            b"250 OK\r\n"
        } else if upper.starts_with("DATA") {
            write.write_all(b"354 go on\r\n").await.unwrap();
            let mut data = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if line == "." {
                    break;
                }
                data.push(line.strip_prefix('.').map_or(line.clone(), str::to_owned));
            }
            messages.lock().unwrap().push(Received {
                to: std::mem::take(&mut to),
                data: data.join("\r\n"),
            });
            b"250 queued\r\n"
        } else if upper.starts_with("QUIT") {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else {
            b"250 OK\r\n"
        };
        write.write_all(reply).await.unwrap();
    }
}

/// Waits (at most 20 s) for `check` to hold.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("waited 20 s for {what}");
}

const CREATE_VALIDATION: &str =
    "mutation($input: CreateValidationRuleInput!) { createValidationRule(input: $input) { id name } }";
const CREATE_WORKFLOW: &str = "mutation($input: CreateWorkflowRuleInput!) { createWorkflowRule(input: $input) { id } }";
const CREATE_LEAD: &str =
    "mutation($input: CreateLeadInput!) { createLead(input: $input) { id title company rating ownerId } }";
const UPDATE_LEAD: &str =
    "mutation($id: ID!, $input: UpdateLeadInput!) { updateLead(id: $id, input: $input) { id title company rating status } }";
const RUNS: &str = "query($rule: ID) { workflowRuns(ruleId: $rule) { id ruleName recordId trigger status actions error depth resumeAt } }";

async fn leads_named(app: &TestApp, last_name: &str) -> i64 {
    app.scalar(&format!(
        "SELECT count(*) AS n FROM crm.lead WHERE last_name = '{last_name}' AND deleted_at IS NULL"
    ))
    .await
}

#[tokio::test]
async fn validation_rules_refuse_writes_on_every_path_and_count_what_they_would_refuse() {
    let app = TestApp::start().await;
    let old = app
        .create(
            "Lead",
            json!({ "lastName": "Old", "company": "Old Co", "status": "QUALIFIED" }),
        )
        .await;

    // Saving a rule says how many existing records it would refuse.
    let rule = json!({ "input": {
        "name": "Qualified leads have an email", "object": "Lead", "field": "email",
        "errorCondition": { "status": { "eq": "QUALIFIED" }, "email": { "isNull": true } },
        "message": "A qualified lead needs an email" } });
    let saved = app.graphql(CREATE_VALIDATION, rule).await;
    assert!(saved.get("errors").is_none(), "{saved:#}");
    let impact = &saved["extensions"]["dataImpact"];
    assert_eq!(impact["count"], 1, "{saved:#}");
    assert_eq!(impact["sampleIds"], json!([old]));

    // A create, a batch, an upsert and an update are refused alike.
    let refused = app
        .error(
            CREATE_LEAD,
            json!({ "input": { "lastName": "New", "company": "Co", "status": "QUALIFIED" } }),
        )
        .await;
    assert_eq!(refused["extensions"]["code"], "VALIDATION_FAILED", "{refused:#}");
    assert_eq!(refused["message"], "A qualified lead needs an email");
    assert_eq!(refused["extensions"]["field"], json!(["input", "email"]));
    assert_eq!(
        refused["extensions"]["violations"][0]["rule"],
        "Qualified leads have an email"
    );
    let batch = app
        .error(
            "mutation($inputs: [CreateLeadInput!]!) { createLeads(inputs: $inputs) { id } }",
            json!({ "inputs": [
                { "lastName": "Batch", "company": "Co", "status": "QUALIFIED", "email": "b@example.com" },
                { "lastName": "Batch", "company": "Co", "status": "QUALIFIED" } ] }),
        )
        .await;
    assert_eq!(batch["extensions"]["field"], json!(["inputs", 1, "email"]), "{batch:#}");
    assert_eq!(leads_named(&app, "Batch").await, 0, "the batch is all or nothing");
    let upsert = app
        .error(
            "mutation($input: CreateLeadInput!) { upsertLead(externalId: \"web-7\", input: $input) { id } }",
            json!({ "input": { "lastName": "Upsert", "company": "Co", "status": "QUALIFIED" } }),
        )
        .await;
    assert_eq!(upsert["extensions"]["code"], "VALIDATION_FAILED");
    let lead = app
        .create("Lead", json!({ "lastName": "Working", "company": "Acme" }))
        .await;
    let update = app
        .error(UPDATE_LEAD, json!({ "id": lead, "input": { "status": "QUALIFIED" } }))
        .await;
    assert_eq!(update["extensions"]["field"], json!(["input", "email"]));
    app.data(
        UPDATE_LEAD,
        json!({ "id": lead, "input": { "status": "QUALIFIED", "email": "w@example.com" } }),
    )
    .await;

    // `changed` and `previous`: a qualified lead's company is frozen.
    app.data(
        CREATE_VALIDATION,
        json!({ "input": { "name": "Frozen company", "object": "Lead", "field": "company",
            "errorCondition": { "changed": "company", "previous": { "status": { "eq": "QUALIFIED" } } },
            "message": "A qualified lead keeps its company" } }),
    )
    .await;
    let frozen = app
        .error(UPDATE_LEAD, json!({ "id": lead, "input": { "company": "Other" } }))
        .await;
    assert_eq!(frozen["message"], "A qualified lead keeps its company");
    assert_eq!(frozen["extensions"]["field"], json!(["input", "company"]));
    app.data(UPDATE_LEAD, json!({ "id": lead, "input": { "title": "CTO" } }))
        .await;
    let fresh = app
        .create("Lead", json!({ "lastName": "Fresh", "company": "Acme" }))
        .await;
    app.data(UPDATE_LEAD, json!({ "id": fresh, "input": { "company": "Other" } }))
        .await;

    // A rule's condition is checked against the model when saved.
    let wrong = app
        .error(
            CREATE_VALIDATION,
            json!({ "input": { "name": "Wrong", "object": "Lead", "message": "m",
                "errorCondition": { "nope": { "eq": 1 } } } }),
        )
        .await;
    assert_eq!(wrong["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(wrong["extensions"]["field"], json!(["input", "errorCondition", "nope"]));

    // A lead conversion makes its account through the same checks.
    app.data(
        CREATE_VALIDATION,
        json!({ "input": { "name": "No blocked accounts", "object": "Account", "field": "name",
            "errorCondition": { "name": { "eq": "Blocked Inc" } }, "message": "Blocked Inc is not a customer" } }),
    )
    .await;
    let blocked = app
        .create("Lead", json!({ "lastName": "Blocked", "company": "Blocked Inc" }))
        .await;
    let conversion = app
        .error(
            "mutation($input: ConvertLeadInput!) { convertLead(input: $input) { lead { id } } }",
            json!({ "input": { "leadId": blocked } }),
        )
        .await;
    assert_eq!(conversion["extensions"]["code"], "VALIDATION_FAILED", "{conversion:#}");
    assert_eq!(app.scalar("SELECT count(*) AS n FROM crm.account").await, 0);

    // An import checks each row: the refused one is in the error file,
    // the others are written.
    let csv =
        "lastName,company,status,email\nImported,Co,QUALIFIED,i@example.com\nRefused,Co,QUALIFIED,\nImported,Co,NEW,\n";
    let response = app
        .request(
            Method::POST,
            "/imports?object=Lead",
            &[("content-type", "text/csv")],
            csv.as_bytes().to_vec(),
        )
        .await;
    let job = response.json();
    let id = job["importJob"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{job:#}"))
        .to_owned();
    let read = app
        .data(
            "query($id: ID!) { importJob(id: $id) { status { state rowsCreated rowsFailed } errors { row column code message } } }",
            json!({ "id": id }),
        )
        .await;
    let job = &read["importJob"];
    assert_eq!(job["status"]["rowsCreated"], 2, "{job:#}");
    assert_eq!(job["status"]["rowsFailed"], 1);
    assert_eq!(job["errors"][0]["code"], "VALIDATION_FAILED");
    assert_eq!(job["errors"][0]["column"], "email");
    assert_eq!(leads_named(&app, "Refused").await, 0);
    assert_eq!(leads_named(&app, "Imported").await, 2);

    // An inactive rule refuses nothing.
    let id = saved["data"]["createValidationRule"]["id"].clone();
    app.data(
        "mutation($id: ID!) { updateValidationRule(id: $id, input: { isActive: false }) { id } }",
        json!({ "id": id }),
    )
    .await;
    app.data(
        CREATE_LEAD,
        json!({ "input": { "lastName": "Late", "company": "Co", "status": "QUALIFIED" } }),
    )
    .await;
}

#[tokio::test]
async fn validation_rules_are_diffed_with_their_data_impact_promoted_and_reverted() {
    let app = TestApp::start().await;
    app.create(
        "Lead",
        json!({ "lastName": "Unreachable", "company": "Co", "status": "QUALIFIED" }),
    )
    .await;
    app.data(
        "mutation { createSandbox(input: { name: \"rules\" }) { name } }",
        json!({}),
    )
    .await;
    app.sandbox_data(
        "rules",
        CREATE_VALIDATION,
        json!({ "input": { "name": "Qualified leads have an email", "object": "Lead", "field": "email",
            "errorCondition": { "status": { "eq": "QUALIFIED" }, "email": { "isNull": true } },
            "message": "A qualified lead needs an email" } }),
    )
    .await;
    let version = app
        .scalar("SELECT metadata_version::bigint AS n FROM crm.workspace_settings")
        .await;
    let promote = "mutation($dry: Boolean!, $version: Int!) { promoteSandbox(name: \"rules\", dryRun: $dry, \
        expectedProductionVersion: $version) { applied promotion { id } changes { kind target status \
        dataImpact { count sampleIds message } } } }";
    let dry = app.data(promote, json!({ "dry": true, "version": version })).await;
    let change = &dry["promoteSandbox"]["changes"][0];
    assert_eq!(change["kind"], "VALIDATION_RULE", "{dry:#}");
    assert_eq!(
        change["dataImpact"]["count"], 1,
        "the production lead it would refuse: {dry:#}"
    );
    let done = app.data(promote, json!({ "dry": false, "version": version })).await;
    assert_eq!(done["promoteSandbox"]["applied"], true, "{done:#}");
    let refused = app
        .error(
            CREATE_LEAD,
            json!({ "input": { "lastName": "New", "company": "Co", "status": "QUALIFIED" } }),
        )
        .await;
    assert_eq!(refused["extensions"]["code"], "VALIDATION_FAILED");
    let promotion = done["promoteSandbox"]["promotion"]["id"].clone();
    let reverted = app
        .data(
            "mutation($id: ID!) { revertPromotion(id: $id, dryRun: false) { applied } }",
            json!({ "id": promotion }),
        )
        .await;
    assert_eq!(reverted["revertPromotion"]["applied"], true);
    app.data(
        CREATE_LEAD,
        json!({ "input": { "lastName": "New", "company": "Co", "status": "QUALIFIED" } }),
    )
    .await;
}

#[tokio::test]
async fn workflow_rules_change_records_make_tasks_assign_owners_and_record_each_run() {
    let app = TestApp::start().await;
    let (ana, _) = app.user("ana@example.com", "SALES").await;
    let (ben, _) = app.user("ben@example.com", "SALES").await;
    let hot = app
        .data(
            CREATE_WORKFLOW,
            json!({ "input": { "name": "Hot leads", "object": "Lead", "trigger": "CREATED_OR_UPDATED",
                "condition": { "rating": { "eq": "HOT" } }, "whenBecomesTrue": true,
                "actions": [
                    { "type": "SET_FIELDS", "values": { "title": "Call within a day" } },
                    { "type": "ASSIGN_OWNER", "strategy": "ROUND_ROBIN", "users": ["ana@example.com", ben] },
                    { "type": "CREATE_RECORD", "object": "Activity", "dueInMinutes": 1440,
                      "values": { "type": "TASK", "subject": "Call {{lead.firstName|them}} at {{lead.company}}" } } ] } }),
        )
        .await["createWorkflowRule"]["id"]
        .clone();

    // The write answers the record as the rule left it.
    let first = app
        .data(
            CREATE_LEAD,
            json!({ "input": { "firstName": "Ada", "lastName": "L", "company": "Acme", "rating": "HOT" } }),
        )
        .await["createLead"]
        .clone();
    assert_eq!(first["title"], "Call within a day");
    assert_eq!(first["ownerId"], ana);
    let id = first["id"].as_str().unwrap().to_owned();
    let task = app
        .data(
            "query($id: ID!) { lead(id: $id) { activities { nodes { subject type ownerId dueAt } } } }",
            json!({ "id": id }),
        )
        .await;
    let task = &task["lead"]["activities"]["nodes"][0];
    assert_eq!(task["subject"], "Call Ada at Acme");
    assert_eq!(task["ownerId"], ana, "the task is the new owner's");
    assert!(task["dueAt"].as_str().is_some_and(|d| !d.is_empty()));
    let second = app
        .data(
            CREATE_LEAD,
            json!({ "input": { "lastName": "M", "company": "Beta", "rating": "HOT" } }),
        )
        .await["createLead"]
        .clone();
    assert_eq!(second["ownerId"], ben, "round robin");

    // Only when the condition becomes true: not again while it stays true.
    app.data(UPDATE_LEAD, json!({ "id": id, "input": { "company": "Acme Ltd" } }))
        .await;
    app.data(UPDATE_LEAD, json!({ "id": id, "input": { "rating": "COLD" } }))
        .await;
    app.data(UPDATE_LEAD, json!({ "id": id, "input": { "rating": "HOT" } }))
        .await;
    let runs = app.data(RUNS, json!({ "rule": hot })).await["workflowRuns"].clone();
    assert_eq!(runs.as_array().unwrap().len(), 3, "{runs:#}");
    assert!(
        runs.as_array().unwrap().iter().all(|r| r["status"] == "SUCCEEDED"),
        "{runs:#}"
    );
    assert_eq!(runs[0]["actions"][1]["type"], "ASSIGN_OWNER");
    // The writer's entry holds what they wrote; the rules' changes are
    // audited as AUTOMATION.
    let audited = |via: &str| {
        format!(
            "SELECT count(*) AS n FROM crm_system.audit_log WHERE record_id = '{id}' AND via = '{via}' \
             AND changes::text LIKE '%Call within a day%'"
        )
    };
    assert_eq!(app.scalar(&audited("API")).await, 0);
    assert_eq!(app.scalar(&audited("AUTOMATION")).await, 1);

    // Two rules that fire each other stop at the loop guard.
    let a = app
        .data(
            CREATE_WORKFLOW,
            json!({ "input": { "name": "Title sets company", "object": "Lead", "trigger": "UPDATED", "triggerFields": ["title"],
                "actions": [{ "type": "SET_FIELDS", "values": { "company": "{{lead.title}} Inc" } }] } }),
        )
        .await["createWorkflowRule"]["id"]
        .clone();
    let b = app
        .data(
            CREATE_WORKFLOW,
            json!({ "input": { "name": "Company sets title", "object": "Lead", "trigger": "UPDATED", "triggerFields": ["company"],
                "actions": [{ "type": "SET_FIELDS", "values": { "title": "Looped" } }] } }),
        )
        .await["createWorkflowRule"]["id"]
        .clone();
    let looped = app
        .create("Lead", json!({ "lastName": "Loop", "company": "Start" }))
        .await;
    let after = app
        .data(UPDATE_LEAD, json!({ "id": looped, "input": { "title": "X" } }))
        .await["updateLead"]
        .clone();
    assert_eq!(after["company"], "X Inc", "{after:#}");
    assert_eq!(after["title"], "Looped");
    let runs_a = app.data(RUNS, json!({ "rule": a })).await["workflowRuns"].clone();
    let runs_b = app.data(RUNS, json!({ "rule": b })).await["workflowRuns"].clone();
    assert_eq!(runs_a.as_array().unwrap().len(), 1, "{runs_a:#}");
    assert_eq!(runs_b[0]["depth"], 1, "{runs_b:#}");

    // A rule that fails is recorded; the write it followed stands.
    app.data(
        CREATE_VALIDATION,
        json!({ "input": { "name": "No Forbidden", "object": "Lead", "field": "company",
            "errorCondition": { "company": { "eq": "Forbidden" } }, "message": "Forbidden is not a company" } }),
    )
    .await;
    let failing = app
        .data(
            CREATE_WORKFLOW,
            json!({ "input": { "name": "Bad rule", "object": "Lead", "trigger": "CREATED",
                "actions": [{ "type": "SET_FIELDS", "values": { "company": "Forbidden" } }] } }),
        )
        .await["createWorkflowRule"]["id"]
        .clone();
    let welcome = app
        .data(
            CREATE_WORKFLOW,
            json!({ "input": { "name": "Welcome task", "object": "Lead", "trigger": "CREATED",
                "actions": [{ "type": "CREATE_RECORD", "object": "Activity", "values": { "type": "TASK", "subject": "Welcome {{lead.lastName}}" } }] } }),
        )
        .await["createWorkflowRule"]["id"]
        .clone();
    let kept = app
        .data(
            CREATE_LEAD,
            json!({ "input": { "lastName": "Kept", "company": "Fine" } }),
        )
        .await["createLead"]
        .clone();
    assert_eq!(kept["company"], "Fine");
    let failed = app.data(RUNS, json!({ "rule": failing })).await["workflowRuns"][0].clone();
    assert_eq!(failed["status"], "FAILED");
    assert!(
        failed["error"].as_str().unwrap().contains("Forbidden is not a company"),
        "{failed:#}"
    );
    // The rule that fired beside it still made its task.
    let beside = app.data(RUNS, json!({ "rule": welcome })).await["workflowRuns"][0].clone();
    assert_eq!(beside["status"], "SUCCEEDED", "{beside:#}");
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM crm.activity WHERE subject = 'Welcome Kept'")
            .await,
        1
    );

    // The runs are on the record's timeline.
    let timeline = app
        .data(
            "query($id: ID!) { lead(id: $id) { timeline(kinds: [AUTOMATION]) { edges { node {
                ... on TimelineAutomation { ruleName status } } } } } }",
            json!({ "id": id }),
        )
        .await;
    let names: Vec<&str> = timeline["lead"]["timeline"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["ruleName"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Hot leads"), "{timeline:#}");

    // A rule's actions are checked when saved.
    let wrong = app
        .error(
            CREATE_WORKFLOW,
            json!({ "input": { "name": "Wrong", "object": "Lead", "trigger": "CREATED",
                "actions": [{ "type": "SET_FIELDS", "values": { "nope": 1 } }] } }),
        )
        .await;
    assert_eq!(
        wrong["extensions"]["field"],
        json!(["input", "actions", 0, "values", "nope"]),
        "{wrong:#}"
    );
    let template = app
        .error(
            CREATE_WORKFLOW,
            json!({ "input": { "name": "No template", "object": "Lead", "trigger": "CREATED",
                "actions": [{ "type": "SEND_EMAIL", "template": "Missing" }] } }),
        )
        .await;
    assert_eq!(
        template["extensions"]["field"],
        json!(["input", "actions", 0, "template"])
    );
}

const CAPTURED: &str = "{ capturedEmails { subject to status textBody htmlBody headers { name value } message } }";

#[tokio::test]
async fn auto_responders_send_over_smtp_from_production_and_sandboxes_capture_them() {
    let sink = Sink::start().await;
    let app = TestApp::start_automated(sink.config()).await;
    // The auto-responder is built in a sandbox.
    app.data(
        "mutation { createSandbox(input: { name: \"qa\" }) { name } }",
        json!({}),
    )
    .await;
    app.sandbox_data(
        "qa",
        "mutation($input: CreateEmailTemplateInput!) { createEmailTemplate(input: $input) { id } }",
        json!({ "input": { "name": "Welcome", "object": "Lead", "subject": "Welcome, {{lead.firstName|friend}}",
            "textBody": "Hi {{lead.firstName}}, thanks for writing about {{lead.company}}.",
            "htmlBody": "<p>Hi {{lead.firstName}}</p>", "fromName": "Acme Sales" } }),
    )
    .await;
    app.sandbox_data(
        "qa",
        CREATE_WORKFLOW,
        json!({ "input": { "name": "Auto-responder", "object": "Lead", "trigger": "CREATED",
            "actions": [{ "type": "SEND_EMAIL", "template": "Welcome", "to": ["email"] }] } }),
    )
    .await;

    // In the sandbox the email is rendered and kept; nothing is sent.
    app.sandbox_data(
        "qa",
        CREATE_LEAD,
        json!({ "input": { "firstName": "<Ada>", "lastName": "L", "company": "Acme", "email": "ada@example.com" } }),
    )
    .await;
    let captured = app.sandbox_data("qa", CAPTURED, json!({})).await["capturedEmails"].clone();
    let email = &captured[0];
    assert_eq!(email["subject"], "Welcome, <Ada>", "{captured:#}");
    assert_eq!(email["to"], json!(["ada@example.com"]));
    assert_eq!(email["status"], "CAPTURED");
    assert!(
        email["htmlBody"].as_str().unwrap().contains("&lt;Ada&gt;"),
        "values are escaped in HTML"
    );
    let headers = email["headers"].as_array().unwrap();
    assert!(headers.iter().any(|h| h["name"] == "Message-ID"), "{headers:#?}");
    assert!(headers
        .iter()
        .any(|h| h["name"] == "From" && h["value"].as_str().unwrap().contains("Acme Sales")));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.connections(), 0, "a sandbox sends nothing over the network");

    // Promoted with its template, it answers production's leads.
    let version = app
        .scalar("SELECT metadata_version::bigint AS n FROM crm.workspace_settings")
        .await;
    let promoted = app
        .data(
            "mutation($version: Int!) { promoteSandbox(name: \"qa\", dryRun: false, expectedProductionVersion: $version) { applied changes { kind status } } }",
            json!({ "version": version }),
        )
        .await;
    assert_eq!(promoted["promoteSandbox"]["applied"], true, "{promoted:#}");
    let kinds: Vec<&str> = promoted["promoteSandbox"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["EMAIL_TEMPLATE", "WORKFLOW_RULE"], "{promoted:#}");

    // Production's is sent through the SMTP server.
    let grace = app
        .data(CREATE_LEAD, json!({ "input": { "firstName": "Grace", "lastName": "H", "company": "Navy", "email": "grace@example.com" } }))
        .await["createLead"]["id"]
        .clone();
    eventually("production's email at the SMTP server", || async {
        sink.messages().len() == 1
    })
    .await;
    let received = &sink.messages()[0];
    assert_eq!(received.to, vec!["grace@example.com".to_owned()]);
    assert!(received.data.contains("Subject: Welcome, Grace"), "{}", received.data);
    assert!(
        received.data.contains("thanks for writing about Navy"),
        "{}",
        received.data
    );
    eventually("the email marked SENT", || async {
        let sent = app.data("{ emails(status: [SENT]) { to } }", json!({})).await;
        sent["emails"].as_array().unwrap().len() == 1
    })
    .await;
    assert_eq!(app.data(CAPTURED, json!({})).await["capturedEmails"], json!([]));

    // An admin lets the sandbox send to the team's own domain.
    let invalid = app
        .error(
            "mutation { setSandboxEmailDomains(sandbox: \"qa\", domains: [\"not a domain\"]) }",
            json!({}),
        )
        .await;
    assert_eq!(invalid["extensions"]["field"], json!(["domains", 0]));
    let set = app
        .data(
            "mutation { setSandboxEmailDomains(sandbox: \"qa\", domains: [\"Example.org\"]) }",
            json!({}),
        )
        .await;
    assert_eq!(set["setSandboxEmailDomains"], json!(["example.org"]));
    app.sandbox_data(
        "qa",
        CREATE_LEAD,
        json!({ "input": { "firstName": "Tess", "lastName": "T", "company": "QA", "email": "tess@example.org" } }),
    )
    .await;
    eventually("the allowed sandbox email at the SMTP server", || async {
        sink.messages().len() == 2
    })
    .await;
    assert_eq!(sink.messages()[1].to, vec!["tess@example.org".to_owned()]);

    // A preview renders without sending.
    let preview = app
        .data(
            "query($id: ID!) { emailPreview(template: \"Welcome\", recordId: $id) { subject to textBody } }",
            json!({ "id": grace }),
        )
        .await;
    assert_eq!(preview["emailPreview"]["subject"], "Welcome, Grace");
    assert_eq!(sink.messages().len(), 2);
}

#[tokio::test]
async fn follow_ups_and_waits_fire_once_each_with_two_servers() {
    let config = Config {
        automation_interval: Duration::from_millis(200),
        ..Config::default()
    };
    let app = TestApp::start_automated(config.clone()).await;
    let _second = app.second_automated(&config).await;
    app.data(
        CREATE_WORKFLOW,
        json!({ "input": { "name": "Follow up in 48 hours", "object": "Lead", "trigger": "DATE_OFFSET",
            "dateField": "createdAt", "offsetMinutes": 2880, "condition": { "status": { "eq": "NEW" } },
            "actions": [{ "type": "CREATE_RECORD", "object": "Activity",
                "values": { "type": "TASK", "subject": "Follow up with {{lead.lastName}}" } }] } }),
    )
    .await;
    let inputs: Vec<Value> = (0..20)
        .map(|i| json!({ "lastName": format!("Lead {i}"), "company": "Co" }))
        .collect();
    app.data(
        "mutation($inputs: [CreateLeadInput!]!) { createLeads(inputs: $inputs) { id } }",
        json!({ "inputs": inputs }),
    )
    .await;
    let timed = app
        .scalar(
            "SELECT count(*) AS n FROM crm.workflow_timer t JOIN crm.lead l ON l.id = t.record_id \
             WHERE t.due_at = l.created_at + interval '48 hours'",
        )
        .await;
    assert_eq!(timed, 20, "each lead's follow-up is due 48 hours after it came in");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let tasks = "SELECT count(*) AS n FROM crm.activity WHERE subject LIKE 'Follow up with%'";
    assert_eq!(app.scalar(tasks).await, 0, "nothing before its time");

    // Time passes: the follow-ups come due, and fire once each.
    app.sql("UPDATE crm.workflow_timer SET due_at = now()").await;
    eventually("20 follow-up tasks", || async { app.scalar(tasks).await == 20 }).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(app.scalar(tasks).await, 20, "once each, with two servers");
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM crm.workflow_run WHERE trigger = 'DATE_OFFSET'")
            .await,
        20
    );

    // A run waits, then goes on only if the condition still holds.
    let nurture = app
        .data(
            CREATE_WORKFLOW,
            json!({ "input": { "name": "Nurture", "object": "Lead", "trigger": "CREATED",
                "condition": { "status": { "eq": "NEW" } },
                "actions": [{ "type": "WAIT", "minutes": 60 }, { "type": "SET_FIELDS", "values": { "rating": "WARM" } }] } }),
        )
        .await["createWorkflowRule"]["id"]
        .clone();
    let waits = app
        .create("Lead", json!({ "lastName": "Waits", "company": "Co" }))
        .await;
    let moved = app
        .create("Lead", json!({ "lastName": "Moves on", "company": "Co" }))
        .await;
    app.data(UPDATE_LEAD, json!({ "id": moved, "input": { "status": "WORKING" } }))
        .await;
    let runs = app.data(RUNS, json!({ "rule": nurture })).await["workflowRuns"].clone();
    assert!(runs
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["status"] == "WAITING" && r["resumeAt"].is_string()));
    app.sql("UPDATE crm.workflow_timer SET due_at = now() WHERE run_id IS NOT NULL")
        .await;
    eventually("the waiting runs to end", || async {
        let runs = app.data(RUNS, json!({ "rule": nurture })).await["workflowRuns"].clone();
        runs.as_array().unwrap().iter().all(|r| r["status"] != "WAITING")
    })
    .await;
    let runs = app.data(RUNS, json!({ "rule": nurture })).await["workflowRuns"].clone();
    let of = |id: &str| {
        runs.as_array()
            .unwrap()
            .iter()
            .find(|r| r["recordId"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(of(&waits)["status"], "SUCCEEDED", "{runs:#}");
    assert_eq!(of(&waits)["actions"][1]["type"], "SET_FIELDS");
    assert_eq!(of(&moved)["status"], "CANCELLED", "{runs:#}");
    let rating = app
        .data("query($id: ID!) { lead(id: $id) { rating } }", json!({ "id": waits }))
        .await;
    assert_eq!(rating["lead"]["rating"], "WARM");

    // A cron schedule fires for every record its condition holds for.
    let weekly = app
        .data(
            CREATE_WORKFLOW,
            json!({ "input": { "name": "Monday review", "object": "Lead", "trigger": "SCHEDULE", "schedule": "0 9 * * MON",
                "condition": { "lastName": { "eq": "Waits" } },
                "actions": [{ "type": "SET_FIELDS", "values": { "title": "Reviewed" } }] } }),
        )
        .await["createWorkflowRule"]["id"]
        .clone();
    eventually("the schedule's next time", || async {
        app.scalar("SELECT count(*) AS n FROM crm.workflow_state WHERE next_run_at > now()")
            .await
            == 1
    })
    .await;
    app.sql("UPDATE crm.workflow_state SET next_run_at = now() - interval '1 second'")
        .await;
    eventually("the scheduled run", || async {
        let runs = app.data(RUNS, json!({ "rule": weekly })).await["workflowRuns"].clone();
        runs.as_array().unwrap().len() == 1
    })
    .await;
    let title = app
        .data("query($id: ID!) { lead(id: $id) { title } }", json!({ "id": waits }))
        .await;
    assert_eq!(title["lead"]["title"], "Reviewed");
    let bad_cron = app
        .error(
            CREATE_WORKFLOW,
            json!({ "input": { "name": "Bad cron", "object": "Lead", "trigger": "SCHEDULE", "schedule": "every day",
                "actions": [{ "type": "SET_FIELDS", "values": { "title": "x" } }] } }),
        )
        .await;
    assert_eq!(bad_cron["extensions"]["field"], json!(["input", "schedule"]));
}

#[tokio::test]
async fn workflow_triggers_on_stages_deletions_scores_and_owners_with_the_fewest_deals_and_stop_deep_cascades() {
    let app = TestApp::start().await;
    let (ana, _) = app.user("ana@example.com", "SALES").await;
    let (ben, _) = app.user("ben@example.com", "SALES").await;
    for name in ["One", "Two"] {
        app.create("Opportunity", json!({ "name": name, "ownerId": ana })).await;
    }
    app.data(
        CREATE_WORKFLOW,
        json!({ "input": { "name": "Least busy", "object": "Lead", "trigger": "CREATED",
            "actions": [{ "type": "ASSIGN_OWNER", "strategy": "LEAST_OPEN_DEALS", "users": [ana, ben] }] } }),
    )
    .await;
    let lead = app
        .data(CREATE_LEAD, json!({ "input": { "lastName": "Busy", "company": "Co" } }))
        .await["createLead"]
        .clone();
    assert_eq!(lead["ownerId"], ben, "Ben has no open deals, Ana two");

    // A deal moving to a won stage makes a kick-off task.
    app.data(
        CREATE_WORKFLOW,
        json!({ "input": { "name": "Kick-off", "object": "Opportunity", "trigger": "STAGE_CHANGED",
            "condition": { "isWon": { "eq": true } },
            "actions": [{ "type": "CREATE_RECORD", "object": "Activity", "values": { "type": "TASK", "subject": "Kick off {{opportunity.name}}" } }] } }),
    )
    .await;
    let deal = app.create("Opportunity", json!({ "name": "Big" })).await;
    let won = app
        .data(
            "{ stages(filter: { name: { eq: \"Closed Won\" } }) { nodes { id } } }",
            json!({}),
        )
        .await["stages"]["nodes"][0]["id"]
        .clone();
    app.data(
        "mutation($id: ID!, $stage: ID!) { updateOpportunity(id: $id, input: { stageId: $stage }) { id } }",
        json!({ "id": deal, "stage": won }),
    )
    .await;
    let tasks = app
        .data(
            "query($id: ID!) { opportunity(id: $id) { activities { nodes { subject } } } }",
            json!({ "id": deal }),
        )
        .await;
    assert_eq!(
        tasks["opportunity"]["activities"]["nodes"][0]["subject"], "Kick off Big",
        "{tasks:#}"
    );

    // A deleted account leaves a note; a DELETED rule cannot change it.
    app.data(
        CREATE_WORKFLOW,
        json!({ "input": { "name": "Deleted accounts", "object": "Account", "trigger": "DELETED",
            "actions": [{ "type": "CREATE_RECORD", "object": "Activity", "values": { "type": "NOTE", "subject": "{{account.name}} was deleted" } }] } }),
    )
    .await;
    let account = app.create("Account", json!({ "name": "Gone Ltd" })).await;
    app.data(
        "mutation($id: ID!) { deleteAccount(id: $id) { id } }",
        json!({ "id": account }),
    )
    .await;
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM crm.activity WHERE subject = 'Gone Ltd was deleted'")
            .await,
        1
    );
    let refused = app
        .error(
            CREATE_WORKFLOW,
            json!({ "input": { "name": "Undelete", "object": "Account", "trigger": "DELETED",
                "actions": [{ "type": "SET_FIELDS", "values": { "name": "x" } }] } }),
        )
        .await;
    assert_eq!(refused["extensions"]["field"], json!(["input", "actions", 0]));

    // An email logged on a lead lifts its score past 50: SCORE_CROSSED.
    app.data(
        "mutation { createScoringRule(input: { name: \"Emails\", activityType: \"EMAIL\", points: 60 }) { id } }",
        json!({}),
    )
    .await;
    app.data(
        CREATE_WORKFLOW,
        json!({ "input": { "name": "Marketing qualified", "object": "Lead", "trigger": "SCORE_CROSSED", "scoreThreshold": 50,
            "actions": [{ "type": "SET_FIELDS", "values": { "rating": "HOT" } }] } }),
    )
    .await;
    let scored = app
        .create("Lead", json!({ "lastName": "Scored", "company": "Co" }))
        .await;
    app.create(
        "Activity",
        json!({ "type": "EMAIL", "subject": "Hello", "leadId": scored }),
    )
    .await;
    let lead = app
        .data(
            "query($id: ID!) { lead(id: $id) { score rating } }",
            json!({ "id": scored }),
        )
        .await;
    assert_eq!(lead["lead"], json!({ "score": 60, "rating": "HOT" }), "{lead:#}");

    // A batch of 400 leads fires three rules for each: 1,200 firings in one
    // transaction, each write's cascade well inside its budget.
    for (name, field, value) in [
        ("Batch title", "title", "Batched"),
        ("Batch phone", "phone", "+1 555 0199"),
        ("Batch rating", "rating", "COLD"),
    ] {
        let mut values = serde_json::Map::new();
        values.insert(field.to_owned(), json!(value));
        app.data(
            CREATE_WORKFLOW,
            json!({ "input": { "name": name, "object": "Lead", "trigger": "CREATED", "condition": { "company": { "eq": "Batch" } },
                "actions": [{ "type": "SET_FIELDS", "values": values }] } }),
        )
        .await;
    }
    let inputs: Vec<Value> = (0..400)
        .map(|i| json!({ "lastName": format!("B{i}"), "company": "Batch" }))
        .collect();
    app.data(
        "mutation($inputs: [CreateLeadInput!]!) { createLeads(inputs: $inputs) { id } }",
        json!({ "inputs": inputs }),
    )
    .await;
    assert_eq!(
        app.scalar(
            "SELECT count(*) AS n FROM crm.lead WHERE company = 'Batch' AND title = 'Batched' \
             AND phone = '+1 555 0199' AND rating = 'COLD'"
        )
        .await,
        400
    );

    // Rules that fire each other in a chain stop five levels deep.
    let chain = [
        ("title", "company", json!("Chained")),
        ("company", "phone", json!("+1 555 0100")),
        ("phone", "firstName", json!("Chain")),
        ("firstName", "rating", json!("WARM")),
        ("rating", "source", json!("WEB")),
        ("source", "status", json!("WORKING")),
    ];
    let mut ids = Vec::new();
    for (i, (on, sets, value)) in chain.iter().enumerate() {
        let mut values = serde_json::Map::new();
        values.insert((*sets).to_owned(), value.clone());
        let id = app
            .data(
                CREATE_WORKFLOW,
                json!({ "input": { "name": format!("Chain {i}"), "object": "Lead", "trigger": "UPDATED", "triggerFields": [on],
                    "condition": { "lastName": { "eq": "Chain" } },
                    "actions": [{ "type": "SET_FIELDS", "values": values }] } }),
            )
            .await["createWorkflowRule"]["id"]
            .clone();
        ids.push(id);
    }
    let chained = app
        .create("Lead", json!({ "lastName": "Chain", "company": "Start" }))
        .await;
    let after = app
        .data(
            "mutation($id: ID!) { updateLead(id: $id, input: { title: \"Go\" }) { source status } }",
            json!({ "id": chained }),
        )
        .await;
    assert_eq!(
        after["updateLead"],
        json!({ "source": "WEB", "status": "NEW" }),
        "{after:#}"
    );
    let last = app.data(RUNS, json!({ "rule": ids[5] })).await["workflowRuns"][0].clone();
    assert_eq!(last["status"], "FAILED");
    assert_eq!(last["depth"], 5);
    assert!(last["error"].as_str().unwrap().contains("levels deep"), "{last:#}");
}

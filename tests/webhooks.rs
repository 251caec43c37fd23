//! Webhooks through a real HTTP receiver started by the test: signed per
//! Standard Webhooks, in order per record, retried, dead-lettered and
//! redelivered, disabled by 410, posted by workflow rules, captured in
//! sandboxes (nothing leaves one over the network), and delivered after a
//! server is killed between commit and delivery — exactly the committed
//! events, none invented.

use std::collections::{HashMap, HashSet};
use std::process::Child;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use crm::config::Config;
use hmac::{KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};

use crate::support::{serve_process, TestApp};

/// One request the receiver got, and what it answered.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    headers: HashMap<String, String>,
    body: String,
    answered: u16,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
    pub(crate) fn id(&self) -> &str {
        &self.headers["webhook-id"]
    }
    fn accepted(&self) -> bool {
        (200..300).contains(&self.answered)
    }
}

/// A webhook receiver on a port of this host: answers every request with
/// `status` (after `failures` answers of 500), and keeps what it got.
#[derive(Clone)]
pub(crate) struct Receiver {
    pub(crate) url: String,
    status: Arc<AtomicU16>,
    failures: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub(crate) async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Receiver {
            url: format!("http://{}/hooks", listener.local_addr().unwrap()),
            status: Arc::new(AtomicU16::new(200)),
            failures: Arc::new(AtomicUsize::new(0)),
            connections: Arc::new(AtomicUsize::new(0)),
            received: Arc::default(),
        };
        let serving = receiver.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                serving.connections.fetch_add(1, Ordering::SeqCst);
                let serving = serving.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                        let serving = serving.clone();
                        async move {
                            let headers = request
                                .headers()
                                .iter()
                                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                                .collect();
                            let body = request.into_body().collect().await.unwrap().to_bytes();
                            let failing = serving
                                .failures
                                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                                .is_ok();
                            let answered = if failing {
                                500
                            } else {
                                serving.status.load(Ordering::SeqCst)
                            };
                            serving.received.lock().unwrap().push(Received {
                                headers,
                                body: String::from_utf8_lossy(&body).into_owned(),
                                answered,
                            });
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .status(answered)
                                    .body(Full::new(Bytes::from_static(b"ok")))
                                    .unwrap(),
                            )
                        }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        receiver
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn accepted(&self) -> Vec<Received> {
        self.received().into_iter().filter(Received::accepted).collect()
    }

    /// Waits until it accepted `n` deliveries.
    pub(crate) async fn until_accepted(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let accepted = self.accepted();
            if accepted.len() >= n {
                return accepted;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver accepted {} of {n} deliveries: {:?}",
                accepted.len(),
                self.received()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A server delivering webhooks, retrying after `retry_base`.
fn delivering(retry_base: Duration) -> Config {
    Config {
        automation_interval: Duration::from_millis(100),
        webhook_retry_base: retry_base,
        // The receiver is on this machine.
        webhook_allow_private: true,
        ..Config::default()
    }
}

const SUBSCRIBE: &str =
    "mutation($input: CreateWebhookSubscriptionInput!) { createWebhookSubscription(input: $input) { id } }";

async fn subscribe(app: &TestApp, input: Value) -> String {
    app.data(SUBSCRIBE, json!({ "input": input })).await["createWebhookSubscription"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn secret(app: &TestApp, path: &str, subscription: &str) -> String {
    let answer = app
        .graphql_at(
            path,
            None,
            "query($id: ID!) { webhookSecret(subscriptionId: $id) }",
            json!({ "id": subscription }),
        )
        .await
        .json();
    answer["data"]["webhookSecret"].as_str().unwrap().to_owned()
}

/// Checks a delivery's signature as a receiver would.
fn verify(secret: &str, received: &Received) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    let signed = format!(
        "{}.{}.{}",
        received.id(),
        received.headers["webhook-timestamp"],
        received.body
    );
    mac.update(signed.as_bytes());
    let expected = format!("v1,{}", b64.encode(mac.finalize().into_bytes()));
    assert_eq!(received.headers["webhook-signature"], expected, "a valid signature");
    let at: i64 = received.headers["webhook-timestamp"].parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - at).abs() < 300, "a fresh timestamp");
}

/// Waits until the workspace has no PENDING delivery left.
async fn until_settled(app: &TestApp, schema: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let sql = format!("SELECT count(*) AS n FROM {schema}.webhook_delivery WHERE status = 'PENDING'");
    while app.scalar(&sql).await > 0 {
        assert!(Instant::now() < deadline, "deliveries still pending");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn webhooks_are_signed_in_order_retried_and_carry_only_committed_changes() {
    let receiver = Receiver::start().await;
    // The first two tries fail: the first event is retried, the others wait behind it.
    receiver.failures.store(2, Ordering::SeqCst);
    let app = TestApp::start_automated(delivering(Duration::from_millis(20))).await;
    let subscription = subscribe(
        &app,
        json!({ "name": "Billing", "url": receiver.url, "object": "Lead",
                "events": ["CREATED", "UPDATED", "DELETED"], "fields": ["lastName", "status"] }),
    )
    .await;
    let secret = secret(&app, "/graphql", &subscription).await;
    assert!(secret.starts_with("whsec_"), "{secret}");

    let lead = app
        .create(
            "Lead",
            json!({ "lastName": "Ng", "company": "Acme", "email": "ng@example.com" }),
        )
        .await;
    let update = "mutation($id: ID!, $input: UpdateLeadInput!) { updateLead(id: $id, input: $input) { id } }";
    app.data(update, json!({ "id": lead, "input": { "status": "WORKING" } }))
        .await;
    app.data(update, json!({ "id": lead, "input": { "lastName": "Ngo" } }))
        .await;
    // A write that fails after its event was written (a validation rule
    // refuses it) is rolled back with it: nothing is told of it.
    app.data(
        "mutation($input: CreateValidationRuleInput!) { createValidationRule(input: $input) { id } }",
        json!({ "input": { "name": "No Refused", "object": "Lead", "field": "lastName",
                           "errorCondition": { "lastName": { "eq": "Refused" } }, "message": "Refused" } }),
    )
    .await;
    let refused = app
        .error(update, json!({ "id": lead, "input": { "lastName": "Refused" } }))
        .await;
    assert_eq!(refused["extensions"]["code"], "VALIDATION_FAILED", "{refused}");
    app.data(
        "mutation($id: ID!) { deleteLead(id: $id) { id } }",
        json!({ "id": lead }),
    )
    .await;

    let accepted = receiver.until_accepted(4).await;
    until_settled(&app, "crm").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let accepted_now = receiver.accepted();
    assert_eq!(accepted_now.len(), 4, "exactly the committed events: {accepted_now:?}");
    let types: Vec<String> = accepted
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        ["lead.created", "lead.updated", "lead.updated", "lead.deleted"],
        "in order"
    );
    let ids: HashSet<&str> = accepted.iter().map(Received::id).collect();
    assert_eq!(ids.len(), 4, "one webhook-id per event");
    for received in &accepted {
        verify(&secret, received);
        assert_eq!(received.headers["content-type"], "application/json");
    }
    let created = accepted[0].json();
    assert_eq!(created["data"]["object"], "Lead");
    assert_eq!(created["data"]["id"], lead.as_str());
    assert_eq!(created["data"]["record"]["lastName"], "Ng");
    assert!(
        created["data"]["record"].get("email").is_none(),
        "only the subscribed fields: {created}"
    );
    let renamed = accepted[2].json();
    assert_eq!(renamed["data"]["changedFields"], json!(["lastName"]));
    assert_eq!(renamed["data"]["previous"]["lastName"], "Ng");
    // The first event was tried three times, with the same id each time.
    let failed: Vec<Received> = receiver.received().into_iter().filter(|r| !r.accepted()).collect();
    assert_eq!(failed.len(), 2);
    assert!(
        failed.iter().all(|r| r.id() == accepted[0].id()),
        "retries keep their webhook-id"
    );

    let deliveries = app
        .data(
            "query($id: ID!) { webhookDeliveries(subscriptionId: $id) { id type status attempts responseStatus \
             payload headers { name value } } }",
            json!({ "id": subscription }),
        )
        .await;
    let deliveries = deliveries["webhookDeliveries"].as_array().unwrap().clone();
    assert_eq!(deliveries.len(), 4);
    assert!(deliveries
        .iter()
        .all(|d| d["status"] == "DELIVERED" && d["responseStatus"] == 200));
    let first = deliveries.iter().find(|d| d["id"] == accepted[0].id()).unwrap();
    assert_eq!(first["attempts"], 3);
    assert_eq!(first["type"], "lead.created");
}

#[tokio::test]
async fn a_gone_receiver_disables_its_subscription_and_dead_letters_are_redelivered() {
    let receiver = Receiver::start().await;
    receiver.status.store(410, Ordering::SeqCst);
    // Retries a tenth of a millisecond apart: ten tries fail within a second or two.
    let app = TestApp::start_automated(delivering(Duration::from_micros(100))).await;
    let subscription = subscribe(
        &app,
        json!({ "name": "Gone", "url": receiver.url, "object": "Account", "events": ["CREATED"] }),
    )
    .await;
    app.create("Account", json!({ "name": "First" })).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let state = "query($id: ID!) { webhookSubscription(id: $id) { state { enabled disabledReason pending failed } } }";
    loop {
        let found = app.data(state, json!({ "id": subscription })).await;
        if found["webhookSubscription"]["state"]["enabled"] == false {
            assert_eq!(found["webhookSubscription"]["state"]["disabledReason"], "GONE");
            assert_eq!(found["webhookSubscription"]["state"]["failed"], 1);
            break;
        }
        assert!(Instant::now() < deadline, "410 never disabled it");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // While disabled, new events are not queued for it (410: the receiver
    // wants none), and nothing is posted.
    app.create("Account", json!({ "name": "Second" })).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(receiver.received().len(), 1);
    let found = app.data(state, json!({ "id": subscription })).await;
    assert_eq!(found["webhookSubscription"]["state"]["pending"], 0);

    // The receiver is back: enabled, new events go; the dead letter on request.
    receiver.status.store(204, Ordering::SeqCst);
    let enabled = app
        .data(
            "mutation($id: ID!) { enableWebhookSubscription(id: $id) { enabled } }",
            json!({ "id": subscription }),
        )
        .await;
    assert_eq!(enabled["enableWebhookSubscription"]["enabled"], true);
    app.create("Account", json!({ "name": "Back" })).await;
    let accepted = receiver.until_accepted(1).await;
    assert_eq!(accepted[0].json()["data"]["record"]["name"], "Back");
    let dead = app
        .data(
            "query { webhookDeliveries(status: [FAILED]) { id status lastError responseStatus } }",
            json!({}),
        )
        .await;
    let dead = dead["webhookDeliveries"][0].clone();
    assert_eq!(dead["responseStatus"], 410);
    assert!(dead["lastError"].as_str().unwrap().contains("410"), "{dead}");
    let redelivered = app
        .data(
            "mutation($id: ID!) { redeliverWebhook(id: $id) { id status } }",
            json!({ "id": dead["id"] }),
        )
        .await;
    assert_eq!(redelivered["redeliverWebhook"]["status"], "PENDING");
    let accepted = receiver.until_accepted(2).await;
    assert!(
        accepted.iter().any(|r| r.id() == dead["id"].as_str().unwrap()),
        "the same webhook-id"
    );
    // Only a dead or delivered one is sent again.
    let pending = app
        .error(
            "mutation($id: ID!) { redeliverWebhook(id: $id) { id } }",
            json!({ "id": "00000000-0000-0000-0000-000000000000" }),
        )
        .await;
    assert_eq!(pending["extensions"]["code"], "NOT_FOUND");

    // A receiver that keeps failing: ten tries, then a dead letter.
    receiver.status.store(500, Ordering::SeqCst);
    app.create("Account", json!({ "name": "Third" })).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let dead = app
            .data(
                "query { webhookDeliveries(status: [FAILED]) { attempts lastError } }",
                json!({}),
            )
            .await;
        if let Some(third) = dead["webhookDeliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["attempts"] == 10)
        {
            assert!(third["lastError"].as_str().unwrap().contains("500"), "{third}");
            break;
        }
        assert!(Instant::now() < deadline, "never a dead letter: {dead}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn subscriptions_are_checked_when_saved_and_workflow_rules_post_through_the_outbox() {
    let receiver = Receiver::start().await;
    let app = TestApp::start_automated(delivering(Duration::from_millis(20))).await;
    let bad = app
        .error(
            SUBSCRIBE,
            json!({ "input": { "name": "Bad", "url": "ftp://example.com", "object": "Lead" } }),
        )
        .await;
    assert_eq!(bad["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(bad["extensions"]["field"], json!(["input", "url"]));
    let bad = app
        .error(
            SUBSCRIBE,
            json!({ "input": { "name": "Bad", "url": receiver.url, "object": "Lead", "fields": ["nope"] } }),
        )
        .await;
    assert_eq!(bad["extensions"]["field"], json!(["input", "fields", 0]), "{bad}");
    let bad = app
        .error(
            SUBSCRIBE,
            json!({ "input": { "name": "Bad", "url": receiver.url, "object": "Lead", "events": ["EXPLODED"] } }),
        )
        .await;
    assert_eq!(bad["extensions"]["field"], json!(["input", "events", 0]), "{bad}");

    // Called by rules only: no events of its own.
    subscribe(
        &app,
        json!({ "name": "Sales desk", "url": receiver.url, "object": "Lead" }),
    )
    .await;
    let rule = "mutation($input: CreateWorkflowRuleInput!) { createWorkflowRule(input: $input) { id } }";
    let unknown = app
        .error(
            rule,
            json!({ "input": { "name": "Tell", "object": "Lead", "trigger": "CREATED",
                               "actions": [{ "type": "WEBHOOK", "webhook": "Nobody" }] } }),
        )
        .await;
    assert_eq!(
        unknown["extensions"]["field"],
        json!(["input", "actions", 0, "webhook"]),
        "{unknown}"
    );
    app.data(
        rule,
        json!({ "input": { "name": "Tell the desk", "object": "Lead", "trigger": "CREATED",
                           "condition": { "company": { "eq": "Big Co" } },
                           "actions": [{ "type": "WEBHOOK", "webhook": "Sales desk" }] } }),
    )
    .await;
    app.create("Lead", json!({ "lastName": "Small", "company": "Small Co" }))
        .await;
    let big = app
        .create("Lead", json!({ "lastName": "Big", "company": "Big Co" }))
        .await;
    let accepted = receiver.until_accepted(1).await;
    let body = accepted[0].json();
    assert_eq!(body["type"], "lead.workflow");
    assert_eq!(body["data"]["rule"], "Tell the desk");
    assert_eq!(body["data"]["id"], big.as_str());
    // Imported records are told too (rules do not fire for them).
    subscribe(
        &app,
        json!({ "name": "Imports", "url": receiver.url, "object": "Contact", "events": ["CREATED"] }),
    )
    .await;
    let imported = app
        .request(
            hyper::Method::POST,
            "/imports?object=contacts",
            &[("content-type", "text/csv")],
            b"lastName,email\nOne,one@example.com\nTwo,two@example.com\n".to_vec(),
        )
        .await;
    assert_eq!(imported.status, 200, "{}", imported.text());
    let accepted = receiver.until_accepted(3).await;
    let mut names: Vec<String> = accepted[1..]
        .iter()
        .map(|r| r.json()["data"]["record"]["lastName"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["One", "Two"]);
    assert!(accepted[1..].iter().all(|r| r.json()["type"] == "contact.created"));
    let runs = app.data("query { workflowRuns { actions } }", json!({})).await;
    assert_eq!(runs["workflowRuns"][0]["actions"][0]["type"], "WEBHOOK");
    assert_eq!(runs["workflowRuns"][0]["actions"][0]["status"], "PENDING");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.received().len(),
        3,
        "the rule's event and the imported contacts only"
    );
}

#[tokio::test]
async fn a_sandbox_captures_its_webhooks_and_sends_nothing_unless_allowed() {
    let receiver = Receiver::start().await;
    let app = TestApp::start_automated(delivering(Duration::from_millis(20))).await;
    let production = subscribe(
        &app,
        json!({ "name": "Billing", "url": receiver.url, "object": "Lead", "events": ["CREATED"] }),
    )
    .await;
    let production_secret = secret(&app, "/graphql", &production).await;
    app.data(
        "mutation { createSandbox(input: { name: \"hooks\", mode: METADATA_ONLY }) { name } }",
        json!({}),
    )
    .await;
    let path = "/sandboxes/hooks/graphql";
    let copied = app
        .sandbox_data(
            "hooks",
            "query { webhookSubscriptions { nodes { id name state { enabled disabledReason } } } }",
            json!({}),
        )
        .await;
    let copied = copied["webhookSubscriptions"]["nodes"][0].clone();
    assert_eq!(copied["name"], "Billing");
    assert_eq!(copied["state"]["enabled"], false, "copied subscriptions start disabled");
    assert_eq!(copied["state"]["disabledReason"], "COPIED");
    let sandbox_secret = secret(&app, path, copied["id"].as_str().unwrap()).await;
    assert_ne!(sandbox_secret, production_secret, "production's secret is not copied");

    let lead = "mutation($input: CreateLeadInput!) { createLead(input: $input) { id } }";
    app.sandbox_data("hooks", lead, json!({ "input": { "lastName": "Quiet" } }))
        .await;
    let captured = "query { capturedWebhooks { id type url status payload headers { name value } } }";
    assert_eq!(
        app.sandbox_data("hooks", captured, json!({})).await["capturedWebhooks"],
        json!([])
    );

    app.sandbox_data(
        "hooks",
        "mutation($id: ID!) { enableWebhookSubscription(id: $id) { enabled } }",
        json!({ "id": copied["id"] }),
    )
    .await;
    let made = app
        .sandbox_data("hooks", lead, json!({ "input": { "lastName": "Kept" } }))
        .await;
    let made = made["createLead"]["id"].as_str().unwrap().to_owned();
    let found = app.sandbox_data("hooks", captured, json!({})).await;
    let delivery = found["capturedWebhooks"][0].clone();
    assert_eq!(delivery["status"], "CAPTURED");
    assert_eq!(delivery["type"], "lead.created");
    assert_eq!(delivery["url"], receiver.url.as_str());
    assert_eq!(delivery["payload"]["data"]["id"], made.as_str());
    // Rendered exactly as it would be sent: the signature checks with the sandbox's secret.
    let headers: HashMap<String, String> = delivery["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["name"].as_str().unwrap().to_owned(),
                h["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let rendered = Received {
        body: serde_json::to_string(&delivery["payload"]).unwrap(),
        headers,
        answered: 0,
    };
    assert_eq!(rendered.id(), delivery["id"].as_str().unwrap());
    verify(&sandbox_secret, &rendered);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        receiver.connections.load(Ordering::SeqCst),
        0,
        "nothing left the sandbox over the network"
    );

    // An allowed URL is really posted to, from the sandbox.
    let allowed = app
        .data(
            "mutation($urls: [String!]!) { setSandboxWebhookUrls(sandbox: \"hooks\", urls: $urls) }",
            json!({ "urls": [receiver.url] }),
        )
        .await;
    assert_eq!(allowed["setSandboxWebhookUrls"], json!([receiver.url]));
    app.sandbox_data("hooks", lead, json!({ "input": { "lastName": "Sent" } }))
        .await;
    let accepted = receiver.until_accepted(1).await;
    assert_eq!(accepted[0].json()["data"]["record"]["lastName"], "Sent");
    verify(&sandbox_secret, &accepted[0]);
    // Production's own subscription went on delivering production's events only.
    app.create("Lead", json!({ "lastName": "Production" })).await;
    let accepted = receiver.until_accepted(2).await;
    verify(&production_secret, &accepted[1]);

    // A subscription made in the sandbox is promoted like a rule: the only
    // change (the copied one's disabled state and secret are not metadata),
    // with a secret of production's own.
    let made = app
        .sandbox_data(
            "hooks",
            SUBSCRIBE,
            json!({ "input": { "name": "Ledger", "url": receiver.url, "object": "Account", "events": ["CREATED"] } }),
        )
        .await;
    let in_sandbox = made["createWebhookSubscription"]["id"].as_str().unwrap().to_owned();
    let sandbox_ledger = secret(&app, path, &in_sandbox).await;
    let version = app
        .scalar("SELECT metadata_version::bigint AS n FROM crm.workspace_settings")
        .await;
    let promoted = app
        .data(
            "mutation($version: Int!) { promoteSandbox(name: \"hooks\", dryRun: false, \
             expectedProductionVersion: $version) { applied changes { kind target } } }",
            json!({ "version": version }),
        )
        .await;
    assert_eq!(promoted["promoteSandbox"]["applied"], true, "{promoted:#}");
    assert_eq!(
        promoted["promoteSandbox"]["changes"],
        json!([{ "kind": "WEBHOOK_SUBSCRIPTION", "target": "Ledger" }]),
        "{promoted:#}"
    );
    let production_ledger = secret(&app, "/graphql", &in_sandbox).await;
    assert_ne!(
        production_ledger, sandbox_ledger,
        "a promoted subscription gets production's own secret"
    );
    let billing = app
        .data(
            "query($id: ID!) { webhookSubscription(id: $id) { state { enabled } } }",
            json!({ "id": production }),
        )
        .await;
    assert_eq!(
        billing["webhookSubscription"]["state"]["enabled"], true,
        "the sandbox's disabled state stays there"
    );
}

/// `crm serve` in its own process on the test's database, delivering
/// webhooks (retries 20 ms apart), and its address.
pub(crate) async fn server(app: &TestApp) -> (Child, std::net::SocketAddr) {
    serve_process(app, DELIVERING).await
}

/// What `crm serve` processes that deliver webhooks are started with.
pub(crate) const DELIVERING: &[(&str, &str)] = &[
    ("CRM_AUTOMATION_INTERVAL_MS", "100"),
    ("CRM_WEBHOOK_RETRY_BASE_MS", "20"),
    ("CRM_WEBHOOK_TIMEOUT_MS", "1000"),
    ("CRM_WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true"),
];

#[tokio::test]
async fn a_server_killed_between_commit_and_delivery_delivers_after_restart() {
    let receiver = Receiver::start().await;
    // Down at first: committed events wait in the outbox.
    receiver.status.store(503, Ordering::SeqCst);
    // This server delivers nothing; the `crm serve` processes do.
    let app = TestApp::start().await;
    subscribe(
        &app,
        json!({ "name": "Ledger", "url": receiver.url, "object": "Contact", "events": ["CREATED", "UPDATED"] }),
    )
    .await;
    let (mut child, addr) = server(&app).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let answer = crate::support::http_request(
            addr,
            hyper::Method::POST,
            "/graphql",
            &[
                ("content-type", "application/json"),
                ("authorization", &format!("Bearer {}", app.token)),
            ],
            json!({ "query": "mutation($input: CreateContactInput!) { createContact(input: $input) { id } }",
                    "variables": { "input": { "lastName": format!("Row {i}") } } })
            .to_string()
            .into_bytes(),
        )
        .await
        .json();
        ids.push(answer["data"]["createContact"]["id"].as_str().unwrap().to_owned());
    }
    // One that fails: no event.
    let failed = app
        .error(
            "mutation($input: CreateContactInput!) { createContact(input: $input) { id } }",
            json!({ "input": { "lastName": "Bad", "email": "not an address" } }),
        )
        .await;
    assert!(failed["extensions"]["code"].is_string());
    // The server tried (and failed) at least once, then dies.
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.received().is_empty() {
        assert!(Instant::now() < deadline, "the server never tried");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(receiver.accepted().is_empty());
    receiver.status.store(200, Ordering::SeqCst);
    let (mut restarted, _) = server(&app).await;
    let accepted = receiver.until_accepted(5).await;
    until_settled(&app, "crm").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    restarted.kill().unwrap();
    restarted.wait().unwrap();
    let accepted_now = receiver.accepted();
    assert_eq!(accepted_now.len(), 5, "exactly the committed events: {accepted_now:?}");
    let delivered: HashSet<String> = accepted
        .iter()
        .map(|r| r.json()["data"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(delivered, ids.iter().cloned().collect::<HashSet<_>>());
    let webhook_ids: HashSet<&str> = accepted.iter().map(Received::id).collect();
    assert_eq!(webhook_ids.len(), 5, "none twice");
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM crm.record_event WHERE object = 'Contact'")
            .await,
        5,
        "no event of the failed write"
    );
}

#[tokio::test]
async fn webhooks_reach_neither_this_machine_nor_private_networks_unless_allowed_and_only_admins_read_them() {
    let app = TestApp::start_automated(Config {
        automation_interval: Duration::from_millis(100),
        ..Config::default()
    })
    .await;
    for (name, url) in [
        ("Literal", "http://127.0.0.1:9/hooks"),
        ("Named", "http://localhost:9/hooks"),
        ("Metadata", "http://169.254.169.254/latest"),
    ] {
        subscribe(
            &app,
            json!({ "name": name, "url": url, "object": "Account", "events": ["CREATED"] }),
        )
        .await;
    }
    app.create("Account", json!({ "name": "Inside" })).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = app
            .data(
                "query { webhookDeliveries { subscription attempts lastError } }",
                json!({}),
            )
            .await;
        let tried: Vec<&Value> = found["webhookDeliveries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["attempts"].as_i64() > Some(0))
            .collect();
        if tried.len() == 3 {
            for delivery in tried {
                let error = delivery["lastError"].as_str().unwrap();
                assert!(error.contains("private network"), "{delivery}");
            }
            break;
        }
        assert!(Instant::now() < deadline, "never tried: {found}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Webhook URLs may carry credentials: only admins see subscriptions.
    for role in ["SALES", "READ_ONLY"] {
        let (_, token) = app.user(&format!("{role}@example.com"), role).await;
        for _ in 0..2 {
            // Twice: through the resolvers, then the compiled plan.
            let seen = app
                .graphql_as(&token, "query { webhookSubscriptions { nodes { url } } }", json!({}))
                .await;
            assert_eq!(seen["data"]["webhookSubscriptions"]["nodes"], json!([]), "{seen}");
        }
    }
}

#[tokio::test]
async fn merges_and_their_undo_are_told_like_any_write() {
    let receiver = Receiver::start().await;
    let app = TestApp::start_automated(delivering(Duration::from_millis(20))).await;
    subscribe(
        &app,
        json!({ "name": "Contacts", "url": receiver.url, "object": "Contact",
                "events": ["CREATED", "UPDATED", "DELETED", "RESTORED"] }),
    )
    .await;
    let survivor = app.create("Contact", json!({ "lastName": "Lovelace" })).await;
    let merged = app
        .create("Contact", json!({ "lastName": "Lovelace", "phone": "+44 20 1234" }))
        .await;
    let merge = "mutation($s: ID!, $m: [ID!]!, $p: ID!) { mergeRecords(object: \"Contact\", survivorId: $s, \
                 mergedIds: $m, fieldChoices: [{ field: \"phone\", recordId: $p }]) { id } }";
    let vars = json!({ "s": survivor, "m": [merged], "p": merged });
    // A dry run tells no one.
    let dry = "mutation($s: ID!, $m: [ID!]!) { mergeRecords(object: \"Contact\", survivorId: $s, mergedIds: $m, \
               dryRun: true) { id } }";
    app.data(dry, json!({ "s": survivor, "m": [merged] })).await;
    let done = app.data(merge, vars).await;
    let id = done["mergeRecords"]["id"].clone();
    app.data(
        "mutation($id: ID!) { unmergeRecords(id: $id) { undoneAt } }",
        json!({ "id": id }),
    )
    .await;
    let accepted = receiver.until_accepted(6).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut told: Vec<(String, String)> = receiver
        .accepted()
        .iter()
        .map(|r| {
            let body = r.json();
            (
                body["type"].as_str().unwrap().to_owned(),
                body["data"]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    told.sort();
    let mut expected = vec![
        ("contact.created".to_owned(), survivor.clone()),
        ("contact.created".to_owned(), merged.clone()),
        ("contact.deleted".to_owned(), merged.clone()),
        ("contact.updated".to_owned(), survivor.clone()),
        ("contact.restored".to_owned(), merged.clone()),
        ("contact.updated".to_owned(), survivor.clone()),
    ];
    expected.sort();
    assert_eq!(told, expected, "{accepted:?}");
    let phone = accepted
        .iter()
        .map(Received::json)
        .find(|b| b["type"] == "contact.updated")
        .unwrap();
    assert_eq!(phone["data"]["changedFields"], json!(["phone"]), "{phone}");
}

//! The admin console, in a real browser (headless Chromium) against the
//! real server: sign in, make a sandbox, review its changes like a pull
//! request, dry run, promote, revert; and its sign-in cookie over plain
//! HTTP.

use std::path::PathBuf;

use axum::http::Method;
use serde_json::{json, Value};

use crate::browser::Browser;
use crate::support::TestApp;

/// Where the test keeps the review page's screenshot.
fn artifact(name: &str) -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| format!("{}/target", env!("CARGO_MANIFEST_DIR")));
    PathBuf::from(target).join("console").join(name)
}

async fn account_fields(app: &TestApp) -> Vec<String> {
    let data = app
        .data(
            r#"{ object(name: "Account") { fields { name deletedAt } } }"#,
            json!({}),
        )
        .await;
    let fields = data["object"]["fields"].as_array().unwrap();
    let live = fields.iter().filter(|f| f["deletedAt"].is_null()).cloned().collect();
    crate::support::texts(&Value::Array(live), &["name"])
}

/// Deals this year for the pipeline page: two open, one won, a rep's and
/// the admin's.
async fn deals(app: &TestApp) {
    let (rep, _) = app.user("rita@example.com", "SALES").await;
    app.data(
        "mutation($id: ID!) { updateUser(id: $id, input: { name: \"Rita Rep\" }) { id } }",
        json!({ "id": rep }),
    )
    .await;
    let stage = |name: &str| format!("{{ stages(filter: {{ name: {{ eq: \"{name}\" }} }}) {{ nodes {{ id }} }} }}");
    let open = app.data(&stage("Qualification"), json!({})).await["stages"]["nodes"][0]["id"].clone();
    let won = app.data(&stage("Closed Won"), json!({})).await["stages"]["nodes"][0]["id"].clone();
    let year = chrono::Datelike::year(&chrono::Utc::now());
    for (name, stage, amount, month, owner) in [
        ("Acme renewal", &open, "12000.00", 3, Some(&rep)),
        ("Globex pilot", &open, "4000.00", 8, None),
        ("Initech upgrade", &won, "9000.00", 5, Some(&rep)),
    ] {
        let mut input = json!({ "name": name, "stageId": stage, "amount": amount,
            "closeDate": format!("{year}-{month:02}-15") });
        if let Some(owner) = owner {
            input["ownerId"] = json!(owner);
        }
        app.create("Opportunity", input).await;
    }
}

#[tokio::test]
async fn an_admin_reviews_promotes_and_reverts_a_sandbox_in_the_browser() {
    let app = TestApp::start().await;
    let base = format!("http://{}", app.addr);
    app.data(
        r#"mutation { createCustomField(input: { object: "Account", name: "legacyCode", label: "Legacy code", type: TEXT }) { name } }"#,
        json!({}),
    )
    .await;
    // Record names are user text: markup in them must stay text.
    let acme = app.create("Account", json!({ "name": "Acme & <b>Sons</b>" })).await;
    app.create("Account", json!({ "name": "Globex" })).await;
    deals(&app).await;
    let csv = "Name,Website\nInitech,https://initech.test\n,https://nameless.test\n";
    let imported = app
        .request(
            Method::POST,
            "/imports?object=accounts",
            &[("content-type", "text/csv")],
            csv.into(),
        )
        .await;
    assert_eq!(imported.status, 200, "{}", imported.text());
    let job = imported.json()["importJob"]["id"].as_str().unwrap().to_owned();

    let browser = Browser::launch().await;
    browser.goto(&format!("{base}/console")).await;
    browser.see("Sign in to the CRM console").await;
    browser.fill("API token", "crm_not_a_token").await;
    browser.click("Sign in").await;
    browser.see("UNAUTHENTICATED").await;
    browser.fill("API token", &app.token).await;
    browser.click("Sign in").await;
    browser.see("Create a sandbox").await;
    // The cookie is HttpOnly: the page's scripts cannot read it.
    assert_eq!(browser.eval("document.cookie").await, json!(""));

    browser.fill("Name", "review").await;
    browser.fill("Description", "Regions for the sales team").await;
    browser.click("Create sandbox").await;
    browser.see("Sandbox review created.").await;
    browser.see("Regions for the sales team").await;
    browser.screenshot(&artifact("sandboxes.png")).await;

    // The admin builds in the sandbox: a required field production's
    // accounts have no value for, and a field removed.
    app.sandbox_data(
        "review",
        r#"mutation {
            createCustomField(input: { object: "Account", name: "region", label: "Region", type: TEXT, required: true }) { name }
            deleteCustomField(object: "Account", name: "legacyCode") { name }
        }"#,
        json!({}),
    )
    .await;

    browser.click("Review").await;
    browser.see("Review sandbox review → production").await;
    browser.see("Data impact: 3 records").await;
    let text = browser.text().await;
    assert!(text.contains("BREAKING"), "{text}");
    assert!(text.contains("Account.region"), "{text}");
    assert!(text.contains("Account.legacyCode"), "{text}");
    assert!(
        text.contains("2\nrefused by production's data") || text.contains("refused by production's data"),
        "{text}"
    );
    let samples = browser
        .eval("[...document.querySelectorAll('a[href^=\"#/records/production/Account/\"]')].length")
        .await;
    assert_eq!(samples, json!(3), "the three sample records are linked");
    assert!(
        browser.disabled("Promote to production").await,
        "blocked while production's data refuses"
    );
    browser.screenshot(&artifact("review.png")).await;
    review_page_is_accessible(&browser).await;

    browser.click("Dry run").await;
    browser.see("Dry run: it cannot apply").await;
    assert!(browser.disabled("Promote to production").await);

    // A sample record opens, its name shown as text, not markup.
    let sample = format!("#/records/production/Account/{acme}");
    browser
        .eval(&format!("document.querySelector('a[href=\"{sample}\"]').click()"))
        .await;
    browser.see("Acme & <b>Sons</b>").await;
    assert_eq!(browser.eval("document.querySelectorAll('td b').length").await, json!(0));
    browser.eval("history.back()").await;
    browser.see("Review sandbox review → production").await;

    // The admin makes the field optional in the sandbox and reviews again.
    app.sandbox_data(
        "review",
        r#"mutation { updateCustomField(object: "Account", name: "region", input: { required: false }) { name } }"#,
        json!({}),
    )
    .await;
    browser.click("Reload the diff").await;
    browser
        .wait_for(
            "the data impact to go",
            "!document.body.innerText.includes('Data impact')",
        )
        .await;
    assert!(
        browser.disabled("Promote to production").await,
        "breaking changes need a confirmation"
    );
    browser.check("I understand that 1 breaking change").await;
    assert!(browser.disabled("Promote to production").await, "and a dry run");
    browser.click("Dry run").await;
    browser.see("Dry run: it applies").await;
    assert!(!browser.disabled("Promote to production").await);
    browser.click("Promote to production").await;
    browser.see("Promoted.").await;

    let fields = account_fields(&app).await;
    assert!(fields.contains(&"region".to_owned()), "{fields:?}");
    assert!(!fields.contains(&"legacyCode".to_owned()), "{fields:?}");
    // The record page reads production's fields as they are now (the
    // deleted one is gone, the promoted one is there).
    browser.eval(&format!("location.hash = '{sample}'")).await;
    browser.see("Region").await;
    assert!(!browser.text().await.contains("Legacy code"));
    assert_eq!(
        browser.eval("document.querySelectorAll('[role=alert]').length").await,
        json!(0)
    );

    // The imports page: the job, its counts, its error file (same origin).
    browser.click("Imports").await;
    browser.see("1 refused").await;
    let error_file = browser
        .eval("[...document.querySelectorAll('a')].find((a) => a.textContent === 'Error file (CSV)').getAttribute('href')")
        .await;
    assert_eq!(error_file, json!(format!("/imports/{job}/errors.csv")));
    let fetched = browser
        .eval(&format!(
            "fetch('/imports/{job}/errors.csv').then(async (r) => [r.status, await r.text()])"
        ))
        .await;
    assert_eq!(fetched[0], json!(200), "{fetched}");
    assert!(fetched[1].as_str().unwrap().starts_with("row,column"), "{fetched}");
    // The session signs no upload: a form could send one cross-site.
    let upload = browser
        .eval("fetch('/imports?object=accounts', { method: 'POST', headers: { 'content-type': 'text/csv' }, body: 'Name\\nX\\n' }).then((r) => r.status)")
        .await;
    assert_eq!(upload, json!(401));
    browser.click("Sandboxes").await;

    browser.click("History").await;
    browser.see("Promotion history").await;
    browser.see("sandbox review").await;
    assert!(browser.disabled("Revert").await, "a revert needs its dry run first");
    browser.click("Dry run the revert").await;
    browser.see("Revert dry run: it applies").await;
    browser.click("Revert").await;
    browser.see("Reverted.").await;
    browser.screenshot(&artifact("history.png")).await;
    let fields = account_fields(&app).await;
    assert!(!fields.contains(&"region".to_owned()), "{fields:?}");
    assert!(fields.contains(&"legacyCode".to_owned()), "{fields:?}");

    // The pipeline page draws its charts with the vendored library.
    browser.click("Pipeline").await;
    browser.see("Forecast by period and owner").await;
    browser
        .wait_for(
            "the charts",
            "document.querySelectorAll('canvas').length === 2 && !!window.Chart",
        )
        .await;
    // The forecast's table (folded under the chart) names the rep.
    browser
        .wait_for("the forecast table", "document.body.textContent.includes('Rita Rep')")
        .await;
    let figures = browser.text().await;
    assert!(figures.contains("Stale deals 0"), "{figures}");
    browser.screenshot(&artifact("pipeline.png")).await;

    browser.click("Sign out").await;
    browser.see("Sign in to the CRM console").await;

    let requests = browser.requests();
    assert!(requests.len() > 10, "{requests:?}");
    let elsewhere = browser.requests_beyond(&base);
    assert!(
        elsewhere.is_empty(),
        "the page reached beyond its origin: {elsewhere:?}"
    );
}

/// The review page as assistive technology and the keyboard meet it:
/// every control named, reachable with Tab and showing focus, and its
/// text readable (WCAG AA contrast).
async fn review_page_is_accessible(browser: &Browser) {
    let nodes = browser.accessibility_tree().await;
    let role = |node: &Value| node["role"]["value"].as_str().unwrap_or("").to_owned();
    let name = |node: &Value| node["name"]["value"].as_str().unwrap_or("").trim().to_owned();
    let interactive = ["button", "link", "checkbox", "radio", "textbox", "combobox"];
    let unnamed: Vec<String> = nodes
        .iter()
        .filter(|n| n["ignored"] != json!(true) && interactive.contains(&role(n).as_str()) && name(n).is_empty())
        .map(|n| format!("{} {}", role(n), n["nodeId"]))
        .collect();
    assert!(unnamed.is_empty(), "controls without an accessible name: {unnamed:?}");
    let headings: Vec<String> = nodes.iter().filter(|n| role(n) == "heading").map(name).collect();
    assert!(
        headings.iter().any(|h| h == "Review sandbox review → production"),
        "{headings:?}"
    );
    assert!(
        headings.iter().any(|h| h == "Account"),
        "changes are grouped by object: {headings:?}"
    );
    let buttons: Vec<String> = nodes.iter().filter(|n| role(n) == "button").map(name).collect();
    for wanted in ["Dry run", "Promote to production", "Reload the diff"] {
        assert!(
            buttons.iter().any(|b| b == wanted),
            "no {wanted:?} button in {buttons:?}"
        );
    }
    let links: Vec<String> = nodes.iter().filter(|n| role(n) == "link").map(name).collect();
    assert!(links.iter().any(|l| l == "Download changeset"), "{links:?}");

    // Tab from the top reaches the dry run button, each stop showing focus.
    browser
        .eval("document.activeElement && document.activeElement.blur()")
        .await;
    let mut reached = false;
    for _ in 0..80 {
        browser.press("Tab", false).await;
        let focused = browser
            .eval(
                "(() => { const e = document.activeElement; if (!e || e === document.body) return null; \
                 const s = getComputedStyle(e); \
                 return { text: __text(e), tag: e.tagName, outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2 }; })()",
            )
            .await;
        if focused.is_null() {
            continue;
        }
        assert_eq!(focused["outline"], json!(true), "no visible focus on {focused}");
        if focused["text"] == "Dry run" {
            reached = true;
            break;
        }
    }
    assert!(reached, "Tab never reached the dry run button");

    // Every text on the page has at least 4.5:1 contrast (3:1 when large).
    let low = browser
        .eval(
            r"(() => {
              const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
              const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
                .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
              const background = (e) => { for (; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor);
                if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3); } return [255, 255, 255]; };
              const bad = [];
              for (const e of document.querySelectorAll('body *')) {
                const own = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
                if (!own || !e.getClientRects().length) continue;
                const s = getComputedStyle(e);
                if (s.visibility === 'hidden') continue;
                const [a, b] = [lum(rgb(s.color).slice(0, 3)), lum(background(e))];
                const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
                const large = parseFloat(s.fontSize) >= 24 || (parseFloat(s.fontSize) >= 18.66 && Number(s.fontWeight) >= 700);
                if (ratio < (large ? 3 : 4.5)) bad.push(`${e.tagName} ${__text(e).slice(0, 30)}: ${ratio.toFixed(2)}`);
              }
              return bad;
            })()",
        )
        .await;
    assert_eq!(low, json!([]), "text below WCAG AA contrast");
}

/// A request with no body that a browser holding `cookie` sends.
async fn with_cookie(app: &TestApp, method: Method, path: &str, cookie: &str) -> crate::support::HttpResponse {
    app.request_without_token(method, path, &[("cookie", cookie)], Vec::new())
        .await
}

#[tokio::test]
async fn console_sessions_are_http_only_cookies_that_end_with_their_token() {
    let app = TestApp::start().await;
    let (rep, sales) = app.user("rep@example.com", "SALES").await;
    let sign_in = |token: &str, headers: Vec<(&'static str, String)>| {
        let body = json!({ "token": token }).to_string().into_bytes();
        let app = &app;
        async move {
            let mut all: Vec<(&str, &str)> = vec![("content-type", "application/json")];
            all.extend(headers.iter().map(|(n, v)| (*n, v.as_str())));
            app.request_without_token(Method::POST, "/console/session", &all, body)
                .await
        }
    };

    let refused = sign_in("crm_00000000-0000-0000-0000-000000000000_nope", vec![]).await;
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert_eq!(refused.json()["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    let form = app
        .request_without_token(
            Method::POST,
            "/console/session",
            &[("content-type", "application/x-www-form-urlencoded")],
            format!("token={sales}").into_bytes(),
        )
        .await;
    assert_eq!(form.status, 415, "forms cannot sign in: {}", form.text());
    let elsewhere = sign_in(&sales, vec![("origin", "http://evil.example".into())]).await;
    assert_eq!(elsewhere.status, 403, "{}", elsewhere.text());

    let signed = sign_in(&sales, vec![]).await;
    assert_eq!(signed.status, 200, "{}", signed.text());
    assert_eq!(signed.json()["role"], "SALES");
    let cookie = signed.header("set-cookie").to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let behind_tls = sign_in(&sales, vec![("x-forwarded-proto", "https".into())]).await;
    let tls_cookie = behind_tls.header("set-cookie");
    assert!(
        tls_cookie.starts_with("__Host-crm_session=") && tls_cookie.contains("; Secure"),
        "{tls_cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();

    let ask = |query: &'static str, headers: Vec<(&'static str, String)>| {
        let app = &app;
        let session = session.clone();
        async move {
            let mut all: Vec<(&str, &str)> = vec![("content-type", "application/json"), ("cookie", session.as_str())];
            all.extend(headers.iter().map(|(n, v)| (*n, v.as_str())));
            let body = json!({ "query": query }).to_string().into_bytes();
            app.request_without_token(Method::POST, "/graphql", &all, body).await
        }
    };
    let me = ask("{ me { role user { email } } }", vec![]).await;
    assert_eq!(me.json()["data"]["me"]["role"], "SALES", "{}", me.text());
    let from_elsewhere = ask("{ me { role } }", vec![("origin", "http://evil.example".into())]).await;
    assert_eq!(from_elsewhere.status, 401, "{}", from_elsewhere.text());
    // (The test client sends `Host: localhost`.)
    let same_origin = ask("{ me { role } }", vec![("origin", "http://localhost".into())]).await;
    assert_eq!(
        same_origin.json()["data"]["me"]["role"],
        "SALES",
        "{}",
        same_origin.text()
    );
    // The origin is scheme, host and port: the same host over another
    // scheme or port is another site; a proxy in front says what the
    // browser reached.
    for origin in ["https://localhost", "http://localhost:8081", "null"] {
        let refused = ask("{ me { role } }", vec![("origin", origin.into())]).await;
        assert_eq!(refused.status, 401, "{origin}: {}", refused.text());
    }
    let proxied = ask(
        "{ me { role } }",
        vec![
            ("origin", "https://crm.example.com".into()),
            ("x-forwarded-proto", "https".into()),
            ("x-forwarded-host", "crm.example.com".into()),
        ],
    )
    .await;
    assert_eq!(proxied.json()["data"]["me"]["role"], "SALES", "{}", proxied.text());
    // A session signs reads and JSON only, never what a form can send.
    let upload = app
        .request_without_token(
            Method::POST,
            "/imports?object=accounts",
            &[("content-type", "text/plain"), ("cookie", session.as_str())],
            b"Name\nFormed\n".to_vec(),
        )
        .await;
    assert_eq!(upload.status, 401, "{}", upload.text());
    // A rep sees what the role allows: no sandboxes, no changeset files.
    let sandboxes = ask("{ sandboxes { name } }", vec![]).await;
    assert_eq!(
        sandboxes.json()["errors"][0]["extensions"]["code"],
        "FORBIDDEN",
        "{}",
        sandboxes.text()
    );
    app.data(
        r#"mutation { createSandbox(input: { name: "qa" }) { name } }"#,
        json!({}),
    )
    .await;
    let file = with_cookie(&app, Method::GET, "/sandboxes/qa/changeset.json", &session).await;
    assert_eq!(file.status, 403, "{}", file.text());
    let admin_file = app.get("/sandboxes/qa/changeset.json", &[]).await;
    assert_eq!(admin_file.status, 200, "{}", admin_file.text());
    assert!(admin_file.header("content-disposition").contains("qa.changeset.json"));
    assert_eq!(admin_file.json()["format"], "crm.changeset/1");

    // Revoking the token ends its sessions.
    let tokens = app
        .data("query($u: ID) { apiTokens(userId: $u) { id } }", json!({ "u": rep }))
        .await;
    let rep_token = tokens["apiTokens"][0]["id"].clone();
    app.data(
        "mutation($id: ID!) { revokeApiToken(id: $id) { id } }",
        json!({ "id": rep_token }),
    )
    .await;
    let revoked = ask("{ me { role } }", vec![]).await;
    assert_eq!(revoked.status, 401, "{}", revoked.text());

    // Signing out ends a session on the server, not only in the browser.
    let admin = sign_in(&app.token, vec![]).await;
    let admin_session = admin.header("set-cookie").split(';').next().unwrap().to_owned();
    let out = with_cookie(&app, Method::DELETE, "/console/session", &admin_session).await;
    assert_eq!(out.status, 200);
    assert!(out.header("set-cookie").contains("Max-Age=0"));
    let body = json!({ "query": "{ me { role } }" }).to_string().into_bytes();
    let after = app
        .request_without_token(
            Method::POST,
            "/graphql",
            &[("content-type", "application/json"), ("cookie", admin_session.as_str())],
            body,
        )
        .await;
    assert_eq!(after.status, 401, "{}", after.text());

    // The page and its files come from this server, under a policy that
    // lets them reach nothing else.
    let page = app
        .request_without_token(Method::GET, "/console", &[], Vec::new())
        .await;
    assert_eq!(page.status, 200);
    let policy = page.header("content-security-policy");
    assert!(
        policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"),
        "{policy}"
    );
    for file in [
        "console.js",
        "console.css",
        "preact.umd.js",
        "hooks.umd.js",
        "htm.umd.js",
        "chart.umd.min.js",
    ] {
        let asset = app
            .request_without_token(Method::GET, &format!("/console/assets/{file}"), &[], Vec::new())
            .await;
        assert_eq!(asset.status, 200, "{file}");
    }
    let missing = app
        .request_without_token(Method::GET, "/console/assets/nope.js", &[], Vec::new())
        .await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn conflicts_are_resolved_side_by_side_sandboxes_show_captured_webhooks_and_reps_see_their_part() {
    let app = TestApp::start().await;
    let (_, rep_token) = app.user("rep@example.com", "SALES").await;
    app.data(
        r#"mutation { createCustomField(input: { object: "Account", name: "tier", label: "Tier", type: TEXT }) { name } }"#,
        json!({}),
    )
    .await;
    app.data(
        r#"mutation { createSandbox(input: { name: "qa" }) { name } }"#,
        json!({}),
    )
    .await;
    let relabel = |label: &str| {
        format!(
            r#"mutation {{ updateCustomField(object: "Account", name: "tier", input: {{ label: "{label}" }}) {{ name }} }}"#
        )
    };
    app.data(&relabel("Customer tier"), json!({})).await;
    app.sandbox_data("qa", &relabel("Account tier"), json!({})).await;
    app.sandbox_data(
        "qa",
        "mutation($input: CreateWebhookSubscriptionInput!) { createWebhookSubscription(input: $input) { id } }",
        json!({ "input": { "name": "Ledger", "url": "https://hooks.example.com/crm", "object": "Account", "events": ["CREATED"] } }),
    )
    .await;
    app.sandbox_data(
        "qa",
        "mutation { createAccount(input: { name: \"Captured <i>Co</i>\" }) { id } }",
        json!({}),
    )
    .await;

    let base = format!("http://{}", app.addr);
    let browser = Browser::launch().await;
    browser.goto(&format!("{base}/console#/sandboxes/qa")).await;
    browser.fill("API token", &app.token).await;
    browser.click("Sign in").await;
    browser.see("Review sandbox qa → production").await;
    browser.see("PRODUCTION CHANGED").await;
    browser.see("Conflict:").await;
    let text = browser.text().await;
    assert!(
        text.contains("Customer tier") && text.contains("Account tier"),
        "both sides shown: {text}"
    );
    assert!(text.contains("1 conflict to resolve"), "{text}");
    browser.click("Dry run").await;
    browser.see("Dry run: it cannot apply").await;
    assert!(browser.disabled("Promote to production").await);
    browser.check("Take the sandbox's").await;
    browser.click("Dry run").await;
    browser.see("Dry run: it applies").await;
    browser.click("Promote to production").await;
    browser.see("Promoted.").await;
    let label = app
        .data(r#"{ object(name: "Account") { fields { name label } } }"#, json!({}))
        .await;
    let tier = label["object"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "tier")
        .unwrap()
        .clone();
    assert_eq!(tier["label"], "Account tier");

    // The sandbox's automation page renders what it captured instead of
    // sending it.
    browser.fill("Workspace", "qa").await;
    browser.click("Automation").await;
    browser.see("Automation — sandbox qa").await;
    browser.see("Captured webhooks (1)").await;
    browser.see("account.created").await;
    browser.see("https://hooks.example.com/crm").await;
    browser.see("Captured <i>Co</i>").await;
    assert_eq!(
        browser.eval("document.querySelectorAll('pre i').length").await,
        json!(0)
    );

    // A rep signs in and sees only what the role allows.
    browser.click("Sign out").await;
    browser.fill("API token", &rep_token).await;
    browser.click("Sign in").await;
    browser.see("Automation — production").await;
    let pages = browser
        .eval("[...document.querySelectorAll('nav a')].map((a) => a.textContent)")
        .await;
    assert_eq!(pages, json!(["Pipeline", "Imports", "Automation"]));
    let workspaces = browser
        .eval("[...document.querySelectorAll('#workspace option')].map((o) => o.value)")
        .await;
    assert_eq!(
        workspaces,
        json!(["production"]),
        "the admin's sandboxes went with the admin"
    );
    browser
        .see("Rule runs and what sandboxes capture are shown to admins.")
        .await;
    assert_eq!(
        browser.eval("document.querySelectorAll('[role=alert]').length").await,
        json!(0)
    );
    browser.eval("location.hash = '#/sandboxes'").await;
    browser.see("Admins only").await;
    let elsewhere = browser.requests_beyond(&base);
    assert!(
        elsewhere.is_empty(),
        "the page reached beyond its origin: {elsewhere:?}"
    );
}

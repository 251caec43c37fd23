//! GraphQL over HTTP, the playground, health, limits and error shapes.

use crm::Config;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::TestApp;

const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test]
async fn get_runs_queries_but_not_mutations() {
    let app = TestApp::start().await;
    let response = app
        .get("/graphql?query=%7B%20accounts%20%7B%20totalCount%20%7D%20%7D", &[])
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.json(), json!({ "data": { "accounts": { "totalCount": 0 } } }));
    assert!(response.header("content-type").starts_with("application/json"));
    assert!(
        !response.header("x-request-id").is_empty(),
        "every response carries a request id"
    );

    let mutation = app
        .get(
            "/graphql?query=mutation%20%7B%20createAccount(input%3A%7Bname%3A%22x%22%7D)%20%7B%20id%20%7D%20%7D",
            &[],
        )
        .await;
    assert_eq!(mutation.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(mutation.header("allow"), "POST");
    assert_eq!(mutation.json()["errors"][0]["extensions"]["code"], "BAD_REQUEST");
    let count = app.data("{ accounts { totalCount } }", json!({})).await;
    assert_eq!(count["accounts"]["totalCount"], 0);
}

#[tokio::test]
async fn media_types_and_status_codes() {
    let app = TestApp::start().await;
    let invalid = json!({ "query": "{ accounts { nope } }" }).to_string().into_bytes();
    // application/graphql-response+json: a request that fails validation is a 400.
    let modern = app
        .request(
            Method::POST,
            "/graphql",
            &[JSON, ("accept", "application/graphql-response+json")],
            invalid.clone(),
        )
        .await;
    assert_eq!(modern.status, StatusCode::BAD_REQUEST);
    assert!(modern
        .header("content-type")
        .starts_with("application/graphql-response+json"));
    assert_eq!(modern.json()["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert!(
        modern.json().get("data").is_none(),
        "no data entry when validation fails"
    );
    // application/json: always 200 for a well-formed request.
    let legacy = app
        .request(
            Method::POST,
            "/graphql",
            &[JSON, ("accept", "application/json")],
            invalid,
        )
        .await;
    assert_eq!(legacy.status, StatusCode::OK);
    assert_eq!(legacy.json()["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");

    let unsupported = app
        .request(
            Method::POST,
            "/graphql",
            &[("content-type", "text/plain")],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(unsupported.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let garbage = app
        .request(Method::POST, "/graphql", &[JSON], b"{not json".to_vec())
        .await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
    assert_eq!(garbage.json()["errors"][0]["extensions"]["code"], "BAD_REQUEST");
    let empty = app
        .request(
            Method::POST,
            "/graphql",
            &[JSON],
            json!({ "variables": {} }).to_string().into_bytes(),
        )
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    let unparsable = app
        .request(
            Method::POST,
            "/graphql",
            &[JSON],
            json!({ "query": "{ accounts {" }).to_string().into_bytes(),
        )
        .await;
    assert_eq!(unparsable.json()["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
}

#[tokio::test]
async fn refusals_are_graphql_documents_in_the_negotiated_media_type() {
    let app = TestApp::start().await;
    let post = async |path: &str, headers: &[(&str, &str)], body: &[u8]| {
        app.request(Method::POST, path, headers, body.to_vec()).await
    };
    let typename = json!({ "query": "{ __typename }" }).to_string().into_bytes();
    let deep = format!("{}{}", "{ a ".repeat(80), "}".repeat(80));
    let deep = json!({ "query": deep }).to_string().into_bytes();
    let no_token = ("authorization", "");
    for (accept, media_type) in [
        (
            "application/graphql-response+json",
            "application/graphql-response+json; charset=utf-8",
        ),
        ("application/json", "application/json; charset=utf-8"),
    ] {
        let accept = ("accept", accept);
        let text = ("content-type", "text/plain");
        let cases = [
            // The checks that need no database come before authentication.
            (
                post("/graphql", &[accept, text], &typename).await,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "BAD_REQUEST",
            ),
            (
                post("/graphql", &[accept, JSON, no_token], b"{nope").await,
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
            ),
            (
                post("/graphql", &[accept, JSON, no_token], &deep).await,
                StatusCode::BAD_REQUEST,
                "QUERY_TOO_COMPLEX",
            ),
            (
                post("/graphql", &[accept, JSON, no_token], &typename).await,
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
            ),
            (
                app.get("/metrics", &[accept, no_token]).await,
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
            ),
            (
                post("/sandboxes/nope/graphql", &[accept, JSON], &typename).await,
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
            ),
            // A mutation by GET is refused before its workspace is looked up.
            (
                app.get(
                    "/sandboxes/nope/graphql?query=mutation%20%7B%20__typename%20%7D",
                    &[accept],
                )
                .await,
                StatusCode::METHOD_NOT_ALLOWED,
                "BAD_REQUEST",
            ),
        ];
        for (response, status, code) in cases {
            let case = format!("{status} for {accept:?}: {}", response.text());
            assert_eq!(response.status, status, "{case}");
            assert_eq!(response.header("content-type"), media_type, "{case}");
            assert_eq!(response.json()["errors"][0]["extensions"]["code"], code, "{case}");
            let unauthorized = status == StatusCode::UNAUTHORIZED;
            let authenticate = if unauthorized { "Bearer realm=\"crm\"" } else { "" };
            assert_eq!(response.header("www-authenticate"), authenticate, "{case}");
            let allow = if status == StatusCode::METHOD_NOT_ALLOWED {
                "POST"
            } else {
                ""
            };
            assert_eq!(response.header("allow"), allow, "{case}");
        }
    }
}

#[tokio::test]
async fn limits_apply() {
    let app = TestApp::start().await;
    let huge = vec![b' '; 3 * 1024 * 1024];
    let response = app.request(Method::POST, "/graphql", &[JSON], huge).await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);

    let deep = format!(
        "{{ accounts {{ nodes {{ {} name {} }} }} }}",
        "contacts { nodes { account { ".repeat(6),
        "} } } ".repeat(6)
    );
    let error = app.error(&deep, json!({})).await;
    assert_eq!(error["extensions"]["code"], "QUERY_TOO_COMPLEX");
    assert!(error["message"].as_str().unwrap().contains("at most 12"), "{error}");
    // Through fragments too.
    let fragments = "query { accounts { ...A } } fragment A on AccountConnection { nodes { contacts { nodes { account { \
        contacts { nodes { account { contacts { nodes { account { contacts { nodes { account { name } } } } } } } } } } } } } }";
    let error = app.error(fragments, json!({})).await;
    assert_eq!(error["extensions"]["code"], "QUERY_TOO_COMPLEX");

    // Cost multiplies page sizes through nested lists, variables included:
    // 500 accounts with 500 contacts each is a quarter of a million records.
    let wide = "query($n: Int) { accounts(first: 500) { nodes { name contacts(first: $n) { nodes { id firstName lastName email title } } } } }";
    let error = app.error(wide, json!({ "n": 500 })).await;
    assert_eq!(error["extensions"]["code"], "QUERY_TOO_COMPLEX");
    assert!(error["message"].as_str().unwrap().contains("smaller pages"), "{error}");
    app.data(wide, json!({ "n": 10 })).await;
    // Four levels of default pages (50⁴ records) are refused too.
    let error = app
        .error(
            "{ users { nodes { ownedAccounts { nodes { opportunities { nodes { activities { nodes { subject } } } } } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(error["extensions"]["code"], "QUERY_TOO_COMPLEX", "{error}");
    // Natural three-level queries with default page sizes pass: the
    // benchmark's, with nine fields, and default pages at every level.
    app.data(
        "{ accounts(first: 20) { nodes { id name industry opportunities { nodes { id name amount activities { nodes { id subject type } } } } } } }",
        json!({}),
    )
    .await;
    app.data(
        "{ accounts { totalCount nodes { id name opportunities { totalCount nodes { id name stage { name } activities { nodes { id subject type dueAt } } } } } } }",
        json!({}),
    )
    .await;
}

#[tokio::test]
async fn playground_is_served_from_the_binary() {
    let app = TestApp::start().await;
    let page = app
        .get("/graphql", &[("accept", "text/html,application/xhtml+xml")])
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(html.contains("GraphiQL"));
    // Every script and stylesheet is a local path: the page works offline.
    let mut references = Vec::new();
    for marker in ["src=\"", "href=\""] {
        for part in html.split(marker).skip(1) {
            references.push(part.split('"').next().unwrap().to_owned());
        }
    }
    assert!(references.len() >= 4, "{references:?}");
    for reference in &references {
        assert!(
            reference.starts_with('/') && !reference.starts_with("//"),
            "non-local URL in the playground: {reference}"
        );
        let asset = app.get(reference, &[]).await;
        assert_eq!(asset.status, StatusCode::OK, "{reference}");
        assert!(asset.body.len() > 1000, "{reference}");
    }
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page names no remote host"
    );
    assert_eq!(
        app.get("/graphql/assets/nope.js", &[]).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = TestApp::start().await;
    assert_eq!(app.get("/healthz", &[]).await.status, StatusCode::OK);
    assert_eq!(app.get("/readyz", &[]).await.status, StatusCode::OK);
    let metrics = app.get("/metrics", &[]).await.text();
    assert!(metrics.contains("crm_sql_statements_total"));
    assert!(metrics.contains("crm_db_connections{state=\"idle\"}"));
}

/// The shape of graphql-js' `getIntrospectionQuery()`, which GraphiQL and
/// other tools send on start: deep, but it must never hit the depth limit.
const INTROSPECTION: &str = r#"query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args(includeDeprecated: true) { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description specifiedByURL
  fields(includeDeprecated: true) { name description args(includeDeprecated: true) { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue isDeprecated deprecationReason }
fragment TypeRef on __Type {
  kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType {
    kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } }
}"#;

#[tokio::test]
async fn introspection_works_for_playgrounds_and_tools() {
    let app = TestApp::start().await;
    let data = app.data(INTROSPECTION, json!({})).await;
    let types = data["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "Account"));
    assert!(types
        .iter()
        .any(|t| t["name"] == "AccountIndustry" && t["kind"] == "ENUM"));
    // Introspection inside a deep record query is free; record depth still counts.
    let shallow = app.data("{ accounts { nodes { __typename name } } }", json!({})).await;
    assert_eq!(shallow["accounts"]["nodes"], json!([]));
}

#[tokio::test]
async fn every_type_field_argument_and_value_has_a_description() {
    let app = TestApp::start().await;
    let data = app.data(INTROSPECTION, json!({})).await;
    let builtin = ["String", "Int", "Float", "Boolean", "ID"];
    let mut missing = Vec::new();
    let described = |v: &serde_json::Value| v["description"].as_str().is_some_and(|d| !d.trim().is_empty());
    for ty in data["__schema"]["types"].as_array().unwrap() {
        let name = ty["name"].as_str().unwrap();
        if name.starts_with("__") || builtin.contains(&name) {
            continue;
        }
        if !described(ty) {
            missing.push(name.to_owned());
        }
        for list in ["fields", "inputFields", "enumValues"] {
            for item in ty[list].as_array().into_iter().flatten() {
                if !described(item) {
                    missing.push(format!("{name}.{}", item["name"].as_str().unwrap()));
                }
                for arg in item["args"].as_array().into_iter().flatten() {
                    if !described(arg) {
                        missing.push(format!(
                            "{name}.{}({})",
                            item["name"].as_str().unwrap(),
                            arg["name"].as_str().unwrap()
                        ));
                    }
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} without a description: {:?}",
        missing.len(),
        &missing[..missing.len().min(30)]
    );
}

#[tokio::test]
async fn hardening_introspection_cors_rate_limit_and_limits_before_auth() {
    // Introspection can be turned off; ordinary queries and __typename stay.
    let hidden = TestApp::start_with(Config {
        introspection: false,
        ..Config::default()
    })
    .await;
    let refused = hidden.graphql("{ __schema { types { name } } }", json!({})).await;
    assert!(refused["errors"][0]["extensions"]["code"].is_string(), "{refused}");
    assert!(refused.get("data").is_none_or(|d| d.is_null()), "{refused}");
    assert_eq!(hidden.data("{ __typename }", json!({})).await["__typename"], "Query");

    // CORS: no origin is allowed by default; configured ones are.
    let preflight = |origin: &'static str| {
        vec![
            ("origin", origin),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "authorization, content-type"),
        ]
    };
    let response = hidden
        .request_without_token(
            Method::OPTIONS,
            "/graphql",
            &preflight("https://app.example.com"),
            Vec::new(),
        )
        .await;
    assert_eq!(response.header("access-control-allow-origin"), "", "none by default");
    let app = TestApp::start_with(Config {
        cors_origins: vec!["https://app.example.com".into()],
        rate_limit: 3,
        ..Config::default()
    })
    .await;
    let response = app
        .request_without_token(
            Method::OPTIONS,
            "/graphql",
            &preflight("https://app.example.com"),
            Vec::new(),
        )
        .await;
    assert_eq!(
        response.header("access-control-allow-origin"),
        "https://app.example.com"
    );
    assert!(response
        .header("access-control-allow-headers")
        .contains("authorization"));
    let response = app
        .request_without_token(
            Method::OPTIONS,
            "/graphql",
            &preflight("https://evil.example"),
            Vec::new(),
        )
        .await;
    assert_eq!(response.header("access-control-allow-origin"), "");

    // Per token: 3 a second, bursts of 6; then 429 with Retry-After. Another
    // token keeps its own allowance.
    let body = || br#"{"query":"{ __typename }"}"#.to_vec();
    let headers = [("content-type", "application/json")];
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(app.request(Method::POST, "/graphql", &headers, body()).await);
    }
    let limited = statuses
        .iter()
        .find(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .expect("a 429 within 10 quick requests");
    assert!(limited.header("retry-after").parse::<u64>().unwrap() >= 1);
    assert_eq!(limited.json()["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    assert!(
        statuses[..6].iter().all(|r| r.status == StatusCode::OK),
        "the burst passes"
    );
    let (_, other) = {
        // Made directly: the admin token is out of allowance for a moment.
        let mut conn = app.app.db.conn().await.unwrap();
        let new = crm::auth::NewToken {
            user: crm::auth::UserRef::Email(crm::auth::FIRST_ADMIN_EMAIL.into()),
            role: None,
            name: "second".into(),
            expires_at: None,
        };
        let issued = crm::auth::issue(&mut conn, &crm::audit::Trail::cli("production"), &new)
            .await
            .unwrap();
        ((), issued.token)
    };
    let bearer = format!("Bearer {other}");
    let response = app
        .request(
            Method::POST,
            "/graphql",
            &[("content-type", "application/json"), ("authorization", &bearer)],
            body(),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);

    // A document nested absurdly deep is refused before its token is looked
    // up: no token, yet QUERY_TOO_COMPLEX, not 401.
    let deep = format!("{}{}", "{ a ".repeat(200), "}".repeat(200));
    let body = json!({ "query": deep }).to_string().into_bytes();
    let response = app
        .request_without_token(Method::POST, "/graphql", &headers, body)
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST, "{}", response.text());
    assert_eq!(response.json()["errors"][0]["extensions"]["code"], "QUERY_TOO_COMPLEX");
}

#[tokio::test]
async fn persisted_queries_by_hash_over_post_and_get() {
    use sha2::{Digest, Sha256};
    let app = TestApp::start().await;
    app.create("Account", json!({ "name": "Persisted Ltd" })).await;
    let query = "query Named($n: Int) { accounts(first: $n) { totalCount nodes { name } } }";
    let hash: String = Sha256::digest(query.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let extensions = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let post = async |body: Value| {
        app.request(Method::POST, "/graphql", &[JSON], body.to_string().into_bytes())
            .await
    };

    // The hash alone, before the server has seen the text: the client is
    // told to send the text (HTTP 200, the code Apollo's clients look for).
    let unknown = post(json!({ "extensions": extensions, "variables": { "n": 5 } })).await;
    assert_eq!(unknown.status, StatusCode::OK, "{}", unknown.text());
    let error = &unknown.json()["errors"][0];
    assert_eq!(error["extensions"]["code"], "PERSISTED_QUERY_NOT_FOUND", "{error}");
    assert_eq!(error["message"], "PersistedQueryNotFound");

    // Text and hash: checked, kept and run.
    let sent = post(json!({ "query": query, "extensions": extensions, "variables": { "n": 5 } })).await;
    assert_eq!(
        sent.json()["data"]["accounts"]["nodes"][0]["name"],
        "Persisted Ltd",
        "{}",
        sent.text()
    );
    // From now on the hash is enough, over POST and over GET (with the
    // operation named, as clients send it), and it runs compiled.
    let before = app.metric("crm_graphql_compiled_total").await;
    for _ in 0..2 {
        let by_hash =
            post(json!({ "extensions": extensions, "operationName": "Named", "variables": { "n": 5 } })).await;
        assert_eq!(
            by_hash.json()["data"]["accounts"]["totalCount"],
            1,
            "{}",
            by_hash.text()
        );
    }
    assert!(app.metric("crm_graphql_compiled_total").await > before);
    let encode =
        |value: &str| percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string();
    let url = format!(
        "/graphql?operationName=Named&variables={}&extensions={}",
        encode(&json!({ "n": 1 }).to_string()),
        encode(&extensions.to_string())
    );
    let by_get = app.get(&url, &[]).await;
    assert_eq!(by_get.status, StatusCode::OK, "{}", by_get.text());
    assert_eq!(by_get.json()["data"]["accounts"]["nodes"].as_array().unwrap().len(), 1);

    // A text that is not the hash's, or another protocol version, is refused.
    let wrong = post(json!({ "query": "{ accounts { totalCount } }", "extensions": extensions })).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong.json()["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(
        wrong.json()["errors"][0]["extensions"]["field"],
        json!(["extensions", "persistedQuery", "sha256Hash"])
    );
    let version = post(json!({ "extensions": { "persistedQuery": { "version": 2, "sha256Hash": hash } } })).await;
    assert_eq!(
        version.json()["errors"][0]["extensions"]["code"],
        "BAD_USER_INPUT",
        "{}",
        version.text()
    );
}

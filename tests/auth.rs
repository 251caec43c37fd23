//! API tokens: no request reaches CRM data without a valid one.

use axum::http::{Method, StatusCode};
use chrono::{Duration, Utc};
use serde_json::json;

use crate::support::{HttpResponse, TestApp};

const QUERY: &str = r#"{"query":"{ accounts { totalCount } }"}"#;

async fn post_with(app: &TestApp, authorization: Option<&str>) -> HttpResponse {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(value) = authorization {
        headers.push(("authorization", value));
    }
    app.request_without_token(Method::POST, "/graphql", &headers, QUERY.as_bytes().to_vec())
        .await
}

/// A 401 with the challenge header and a coded error naming `what`.
fn assert_refused(response: &HttpResponse, what: &str) {
    assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{}", response.text());
    assert_eq!(response.header("www-authenticate"), "Bearer realm=\"crm\"");
    let body = response.json();
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains(what), "{message}");
    assert!(body.get("data").is_none(), "{body}");
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401() {
    let app = TestApp::start().await;
    assert_eq!(
        post_with(&app, Some(&format!("Bearer {}", app.token))).await.status,
        200
    );
    assert_eq!(
        post_with(&app, Some(&format!("bearer {}", app.token))).await.status,
        200
    );

    assert_refused(&post_with(&app, None).await, "Authorization: Bearer");
    assert_refused(
        &post_with(&app, Some(&format!("Basic {}", app.token))).await,
        "Bearer scheme",
    );
    assert_refused(&post_with(&app, Some("Bearer nonsense")).await, "unknown");
    // The right id with a wrong secret.
    // `crm_` and 32 hex digits; the secret (base64url) may itself hold `_`.
    let id = &app.token[..4 + 32];
    let forged = format!("Bearer {id}_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_refused(&post_with(&app, Some(&forged)).await, "unknown");

    // Every endpoint but health, readiness and the playground page.
    for path in [
        "/graphql?query=%7B%20accounts%20%7B%20totalCount%20%7D%20%7D",
        "/metrics",
    ] {
        let response = app.request_without_token(Method::GET, path, &[], Vec::new()).await;
        assert_refused(&response, "Authorization: Bearer");
    }
    for (path, accept) in [
        ("/healthz", "*/*"),
        ("/readyz", "*/*"),
        ("/graphql", "text/html"),
        ("/graphql/assets/graphiql.min.js", "*/*"),
    ] {
        let response = app
            .request_without_token(Method::GET, path, &[("accept", accept)], Vec::new())
            .await;
        assert_eq!(response.status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn revoked_expired_and_deactivated_tokens_stop_working() {
    let app = TestApp::start().await;
    let (rita, token) = app.user("rita@example.com", "SALES").await;
    let bearer = |t: &str| format!("Bearer {t}");
    assert_eq!(post_with(&app, Some(&bearer(&token))).await.status, 200);
    let me = app
        .graphql_as(&token, "{ me { role user { email } } }", json!({}))
        .await;
    assert_eq!(
        me["data"]["me"],
        json!({ "role": "SALES", "user": { "email": "rita@example.com" } })
    );

    // Revoked through the API: refused at once.
    let tokens = app
        .data(
            "query($u: ID) { apiTokens(userId: $u) { id name role revokedAt } }",
            json!({ "u": rita }),
        )
        .await;
    let id = tokens["apiTokens"][0]["id"].as_str().unwrap().to_owned();
    let revoke = "mutation($id: ID!) { revokeApiToken(id: $id) { id revokedAt } }";
    let revoked = app.data(revoke, json!({ "id": id })).await;
    assert!(revoked["revokeApiToken"]["revokedAt"].is_string());
    assert_eq!(
        app.error(revoke, json!({ "id": id })).await["extensions"]["code"],
        "NOT_FOUND",
        "revoking twice"
    );
    assert_refused(&post_with(&app, Some(&bearer(&token))).await, "revoked");

    // Expired.
    let create = "mutation($input: CreateApiTokenInput!) { createApiToken(input: $input) { token apiToken { id role expiresAt } } }";
    let soon = app
        .data(create, json!({ "input": { "userId": rita, "name": "soon", "expiresAt": (Utc::now() + Duration::days(1)).to_rfc3339() } }))
        .await;
    let soon_token = soon["createApiToken"]["token"].as_str().unwrap().to_owned();
    let soon_id = soon["createApiToken"]["apiToken"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        soon["createApiToken"]["apiToken"]["role"], "SALES",
        "the user's role by default"
    );
    let mut conn = app.app.db.conn().await.unwrap();
    diesel_async::SimpleAsyncConnection::batch_execute(
        &mut *conn,
        &format!("UPDATE crm_system.api_tokens SET expires_at = now() - interval '1 minute' WHERE id = '{soon_id}'"),
    )
    .await
    .unwrap();
    app.app.auth.forget(soon_id.parse().unwrap());
    assert_refused(&post_with(&app, Some(&bearer(&soon_token))).await, "expired");

    // A past expiry, a role above the user's, and unknown users are refused.
    let past = app
        .error(
            create,
            json!({ "input": { "userId": rita, "name": "x", "expiresAt": "2020-01-01T00:00:00Z" } }),
        )
        .await;
    assert_eq!(past["extensions"]["field"], json!(["expiresAt"]));
    let above = app
        .error(
            create,
            json!({ "input": { "userId": rita, "name": "x", "role": "ADMIN" } }),
        )
        .await;
    assert_eq!(above["extensions"]["code"], "BAD_USER_INPUT");
    assert!(above["message"].as_str().unwrap().contains("at most its user's role"));
    let nobody = app
        .error(
            create,
            json!({ "input": { "userId": "00000000-0000-0000-0000-000000000000", "name": "x" } }),
        )
        .await;
    assert_eq!(nobody["extensions"]["code"], "NOT_FOUND");

    // A token acts with at most its user's current role.
    let read_only = app
        .data(
            create,
            json!({ "input": { "userId": rita, "name": "reports", "role": "READ_ONLY" } }),
        )
        .await["createApiToken"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let live = app
        .data(create, json!({ "input": { "userId": rita, "name": "live" } }))
        .await["createApiToken"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = app.graphql_as(&read_only, "{ me { role } }", json!({})).await;
    assert_eq!(me["data"]["me"]["role"], "READ_ONLY");
    app.data(
        "mutation($id: ID!) { updateUser(id: $id, input: { role: SUPPORT }) { role } }",
        json!({ "id": rita }),
    )
    .await;
    let me = app.graphql_as(&live, "{ me { role } }", json!({})).await;
    assert_eq!(
        me["data"]["me"]["role"], "SUPPORT",
        "narrowed at once to the user's new role"
    );

    // A deactivated user's tokens stop working at once; admins cannot
    // deactivate themselves.
    assert_eq!(post_with(&app, Some(&bearer(&live))).await.status, 200);
    let deactivate = "mutation($id: ID!) { deactivateUser(id: $id) { active } }";
    let done = app.data(deactivate, json!({ "id": rita })).await;
    assert_eq!(done["deactivateUser"]["active"], false);
    assert_refused(&post_with(&app, Some(&bearer(&live))).await, "unknown");
    let admin = app.data("{ me { user { id } } }", json!({})).await["me"]["user"]["id"].clone();
    let myself = app.error(deactivate, json!({ "id": admin })).await;
    assert_eq!(myself["extensions"]["code"], "BAD_USER_INPUT");

    // Tokens are listed without their secrets; the CLI lists them too.
    let listed = crm::auth::list(&mut conn, None).await.unwrap();
    assert_eq!(listed.len(), 5, "the admin's and Rita's four");
    assert!(listed.iter().any(|t| t.id.to_string() == id && t.revoked_at.is_some()));
}

#[test]
fn token_lifetimes_and_roles_parse() {
    assert_eq!(crm::auth::parse_lifetime("30d"), Some(Duration::days(30)));
    assert_eq!(crm::auth::parse_lifetime("12h"), Some(Duration::hours(12)));
    assert_eq!(crm::auth::parse_lifetime("45m"), Some(Duration::minutes(45)));
    for bad in ["", "d", "0d", "-1d", "3w", "1.5d"] {
        assert_eq!(crm::auth::parse_lifetime(bad), None, "{bad}");
    }
    assert_eq!(crm::auth::Role::parse("read-only"), Some(crm::auth::Role::ReadOnly));
    assert_eq!(crm::auth::Role::parse("boss"), None);
}

/// The `Authorization` header of a token's id with a secret that is not its own.
fn forged(token: &str, secret: &str) -> String {
    // `crm_` and 32 hex digits, then `_` and the secret.
    format!("Bearer {}_{secret}", &token[..4 + 32])
}

#[tokio::test]
async fn forged_secrets_neither_lock_out_nor_touch_a_token() {
    let app = TestApp::start_with(crm::Config {
        rate_limit: 2,
        ..crm::Config::default()
    })
    .await;
    let (_, token) = app.user("rita@example.com", "SALES").await;
    let id = token[4..4 + 32].parse::<uuid::Uuid>().unwrap();
    let last_used =
        format!("SELECT count(*) AS n FROM crm_system.api_tokens WHERE id = '{id}' AND last_used_at IS NOT NULL");

    // Anyone may know a token's id; with it and made-up secrets they can
    // neither spend the token's allowance nor mark it as used.
    for n in 0..20 {
        let secret = format!("{n:0>43}");
        let response = post_with(&app, Some(&forged(&token, &secret))).await;
        assert_ne!(response.status, StatusCode::OK, "{}", response.text());
    }
    assert_eq!(
        app.scalar(&last_used).await,
        0,
        "a forged secret marked the token as used"
    );
    let own = post_with(&app, Some(&format!("Bearer {token}"))).await;
    assert_eq!(own.status, StatusCode::OK, "the owner is locked out: {}", own.text());
    assert_eq!(app.scalar(&last_used).await, 1, "a verified use is recorded");

    // Made-up ids leave nothing behind: no limiter state, no remembered token.
    for _ in 0..200 {
        let made_up = format!("Bearer crm_{}_{}", uuid::Uuid::new_v4().simple(), "A".repeat(43));
        let response = post_with(&app, Some(&made_up)).await;
        assert_ne!(response.status, StatusCode::OK);
    }
    // The admin's token (for /metrics) and Rita's.
    assert_eq!(app.metric("crm_rate_limiter_keys{limiter=\"token\"}").await, 2);
    assert_eq!(app.metric("crm_remembered_tokens").await, 2);
}

#[tokio::test]
async fn failed_authentications_are_limited_per_client_address() {
    let app = TestApp::start_with(crm::Config {
        auth_failure_limit: 5,
        ..crm::Config::default()
    })
    .await;
    let wrong = forged(&app.token, &"B".repeat(43));
    for _ in 0..5 {
        assert_refused(&post_with(&app, Some(&wrong)).await, "unknown");
    }
    // Past the allowance, every failing request from the address gets 429.
    for authorization in [Some(wrong.as_str()), None] {
        let limited = post_with(&app, authorization).await;
        assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "{}", limited.text());
        assert!(limited.header("retry-after").parse::<u64>().unwrap() >= 1);
        assert_eq!(limited.json()["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    }
    // A valid token from the same address is not refused by this limit.
    let own = post_with(&app, Some(&format!("Bearer {}", app.token))).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text());
    // Another address has an allowance of its own.
    let other = crate::support::http_request_from(
        std::net::Ipv4Addr::new(127, 0, 0, 2),
        app.addr,
        Method::POST,
        "/graphql",
        &[("content-type", "application/json"), ("authorization", &wrong)],
        QUERY.as_bytes().to_vec(),
    )
    .await;
    assert_refused(&other, "unknown");
    assert_eq!(app.metric("crm_rate_limiter_keys{limiter=\"address\"}").await, 2);
}

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
    let mut conn = app.app.db.conn().await.unwrap();
    app.create(
        "User",
        json!({ "name": "Rita Rep", "email": "rita@example.com", "role": "SALES" }),
    )
    .await;
    let expires = Some(Utc::now() + Duration::days(1));
    let token = crm::auth::issue(&mut conn, "RITA@example.com", crm::auth::Role::Sales, "test", expires)
        .await
        .unwrap();
    let bearer = |t: &str| format!("Bearer {t}");
    assert_eq!(post_with(&app, Some(&bearer(&token.token))).await.status, 200);

    // Revoked: refused as soon as this server forgets it.
    assert!(crm::auth::revoke(&mut conn, token.id).await.unwrap());
    assert!(!crm::auth::revoke(&mut conn, token.id).await.unwrap(), "revoking twice");
    app.app.auth.forget(token.id);
    assert_refused(&post_with(&app, Some(&bearer(&token.token))).await, "revoked");

    // Expired.
    let soon = crm::auth::issue(&mut conn, "rita@example.com", crm::auth::Role::Sales, "soon", None)
        .await
        .unwrap();
    diesel_async::SimpleAsyncConnection::batch_execute(
        &mut *conn,
        &format!(
            "UPDATE crm_system.api_tokens SET expires_at = now() - interval '1 minute' WHERE id = '{}'",
            soon.id
        ),
    )
    .await
    .unwrap();
    assert_refused(&post_with(&app, Some(&bearer(&soon.token))).await, "expired");

    // A past expiry is refused when issuing, and unknown users are named.
    let past = crm::auth::issue(
        &mut conn,
        "rita@example.com",
        crm::auth::Role::Sales,
        "x",
        Some(Utc::now()),
    )
    .await;
    assert_eq!(past.unwrap_err().code(), "BAD_USER_INPUT");
    let nobody = crm::auth::issue(&mut conn, "nobody@example.com", crm::auth::Role::Sales, "x", None).await;
    assert_eq!(nobody.unwrap_err().code(), "NOT_FOUND");

    // A deactivated user's tokens stop working.
    let live = crm::auth::issue(&mut conn, "rita@example.com", crm::auth::Role::Sales, "live", None)
        .await
        .unwrap();
    assert_eq!(post_with(&app, Some(&bearer(&live.token))).await.status, 200);
    diesel_async::SimpleAsyncConnection::batch_execute(
        &mut *conn,
        "UPDATE crm_system.users SET active = false WHERE email = 'rita@example.com'",
    )
    .await
    .unwrap();
    app.app.auth.forget(live.id);
    assert_refused(&post_with(&app, Some(&bearer(&live.token))).await, "unknown");

    // Tokens are listed without their secrets.
    let listed = crm::auth::list(&mut conn).await.unwrap();
    assert_eq!(listed.len(), 4, "the admin's and Rita's three");
    assert!(listed.iter().any(|t| t.id == token.id && t.revoked_at.is_some()));
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

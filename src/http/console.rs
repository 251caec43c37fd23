//! The admin console: one page at `/console` and the files it loads (all
//! compiled into the binary, see `assets/console/README.md`), the sign-in
//! that trades a pasted API token for a session cookie, and a sandbox's
//! changeset file to download.
//!
//! The page talks to the server only through its GraphQL endpoints, with
//! the cookie. Its Content-Security-Policy lets it load and call nothing
//! but this origin, so neither a record's text nor a captured email's HTML
//! can make it reach elsewhere.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::caller::session_cookie;
use super::{deadline, HttpError, Shared};
use crate::access::{self, AdminPermission};
use crate::auth::{Actor, SESSION_COOKIE, SESSION_COOKIE_SECURE};
use crate::error::CrmError;

/// What the console's page may load and call: this origin only.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; frame-src 'self'; font-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The console's files: the page's script and style, and the vendored
/// libraries (see assets/console/README.md).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "console.js",
        "text/javascript",
        include_bytes!("../../assets/console/console.js"),
    ),
    (
        "console.css",
        "text/css",
        include_bytes!("../../assets/console/console.css"),
    ),
    (
        "preact.umd.js",
        "text/javascript",
        include_bytes!("../../assets/console/preact.umd.js"),
    ),
    (
        "hooks.umd.js",
        "text/javascript",
        include_bytes!("../../assets/console/hooks.umd.js"),
    ),
    (
        "htm.umd.js",
        "text/javascript",
        include_bytes!("../../assets/console/htm.umd.js"),
    ),
    (
        "chart.umd.min.js",
        "text/javascript",
        include_bytes!("../../assets/console/chart.umd.min.js"),
    ),
];

const PAGE: &str = include_str!("../../assets/console/index.html");

/// `GET /console`: the page (it signs in and routes by itself).
pub(super) async fn page() -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response();
    guard(response.headers_mut());
    response
}

/// `GET /console/assets/{file}`.
pub(super) async fn asset(Path(file): Path<String>) -> Response {
    let mut response = super::playground::vendored(ASSETS, &file, "no-cache");
    guard(response.headers_mut());
    response
}

/// Headers that keep the console's responses to this origin.
fn guard(headers: &mut HeaderMap) {
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

#[derive(Deserialize)]
struct SignIn {
    token: String,
}

/// `POST /console/session` with `{"token": "crm_…"}`: a session cookie
/// for the token (HttpOnly, `SameSite=Strict`, `Secure` over HTTPS), and
/// who it is for. A bad token counts against the address like any
/// failed authentication.
pub(super) async fn sign_in(State(app): State<Arc<Shared>>, request: Request) -> Result<Response, HttpError> {
    let (mut parts, body) = request.into_parts();
    super::graphql::require_json(&parts.headers)?;
    if !super::caller::same_origin(&app, &parts.headers) {
        return Err(HttpError::from(CrmError::Forbidden {
            permission: "console.signIn".into(),
            message: "sign in from the console's own page".into(),
        }));
    }
    let body: Bytes = deadline::read_body(&app, body).await?;
    let SignIn { token } = serde_json::from_slice(&body).map_err(|err| {
        HttpError::bad_request(
            StatusCode::BAD_REQUEST,
            format!("the body is not {{\"token\": …}}: {err}"),
        )
    })?;
    // A sign-in spends one request of the token's allowance, and a bad
    // token counts against the address, as any request's would.
    let checked = app.auth.authenticate(Some(&format!("Bearer {}", token.trim()))).await;
    let actor = super::caller::admit(&app, &mut parts, checked).await?;
    let opened = app.auth.open_session(actor).await.map_err(|err| match err {
        err @ CrmError::Unauthenticated(_) => HttpError::from(err),
        err => HttpError::unavailable(err),
    })?;
    let max_age = (opened.expires_at - chrono::Utc::now()).num_seconds().max(0);
    let cookie = format!(
        "{}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        cookie_name(&app, &parts.headers),
        opened.cookie,
        secure(&app, &parts.headers)
    );
    let body = json!({
        "userId": opened.actor.user_id,
        "role": opened.actor.role.as_str(),
        "expiresAt": opened.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    Ok(json_answer(body.to_string(), header::SET_COOKIE, &cookie))
}

/// `DELETE /console/session`: signs out (the session ends on every server)
/// and clears the cookie.
pub(super) async fn sign_out(State(app): State<Arc<Shared>>, headers: HeaderMap) -> Result<Response, HttpError> {
    if let Some(cookie) = session_cookie(&headers) {
        app.auth.close_session(cookie).await.map_err(HttpError::unavailable)?;
    }
    let cookie = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        cookie_name(&app, &headers),
        secure(&app, &headers)
    );
    Ok(json_answer(
        json!({ "signedOut": true }).to_string(),
        header::SET_COOKIE,
        &cookie,
    ))
}

/// A JSON answer no one keeps, with one more header (the session cookie,
/// a file name).
fn json_answer(body: String, name: HeaderName, value: &str) -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
    response
}

/// The session cookie's name: `__Host-` prefixed over HTTPS.
fn cookie_name(app: &Shared, headers: &HeaderMap) -> &'static str {
    if secure(app, headers).is_empty() {
        SESSION_COOKIE
    } else {
        SESSION_COOKIE_SECURE
    }
}

/// `; Secure` when the browser reached the server over HTTPS: directly
/// under an `https://` public URL, or through a proxy that says so.
fn secure(app: &Shared, headers: &HeaderMap) -> &'static str {
    let public_https = app
        .config
        .public_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"));
    let forwarded_https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    if public_https || forwarded_https {
        "; Secure"
    } else {
        ""
    }
}

/// `GET /sandboxes/{name}/changeset.json`: the sandbox's changes as a
/// changeset file (what `crm sandbox export` writes), to download. Admins
/// only.
pub(super) async fn changeset(
    State(app): State<Arc<Shared>>,
    Path(name): Path<String>,
    actor: Actor,
) -> Result<Response, HttpError> {
    access::require_admin(&actor, AdminPermission::ManageSandboxes)?;
    if crate::sandbox::check_name(&name).is_err() {
        return Err(CrmError::not_found("Sandbox", &name).into());
    }
    let mut conn = app.db.conn().await.map_err(HttpError::unavailable)?;
    let file = crate::promotion::export(&mut conn, &name).await?;
    let disposition = format!("attachment; filename=\"{name}.changeset.json\"");
    Ok(json_answer(file.to_text(), header::CONTENT_DISPOSITION, &disposition))
}

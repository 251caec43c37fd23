//! Who is calling: the [`Actor`] behind a request's API token, as an axum
//! extractor, so a handler that names an `Actor` runs only for a caller
//! that authenticated and is within its allowance.
//!
//! The checks are the server's one door: a missing or bad token is 401 with
//! `WWW-Authenticate` (and counts against the client's address, which gets
//! 429 once it has failed too often); a verified token spends one request
//! of its own allowance (429 once spent); a token store that cannot be read
//! is 503. GraphQL handlers extract the actor only after the checks that
//! need no database (body size, nesting), so those refuse first.
//!
//! A browser signed in to the console sends its session cookie instead of
//! a token. The cookie is `SameSite=Strict`, and is taken only from a
//! request whose `Origin` (when it has one) is this server's own, and only
//! for reads (GET) and JSON bodies: a form, the one cross-site request
//! that needs no preflight, can send neither, so another site's page can
//! neither send the cookie nor use it.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};

use super::rate_limit::ClientAddress;
use super::{HttpError, Shared};
use crate::auth::{Actor, SESSION_COOKIE, SESSION_COOKIE_SECURE};
use crate::error::CrmError;

impl FromRequestParts<Arc<Shared>> for Actor {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<Shared>) -> Result<Self, Self::Rejection> {
        let authorization = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let checked = match (authorization, session_cookie(&parts.headers)) {
            (None, Some(cookie)) => match session_refusal(app, parts) {
                None => app.auth.authenticate_session(cookie).await,
                Some(refusal) => Err(CrmError::Unauthenticated(refusal.into())),
            },
            _ => app.auth.authenticate(authorization).await,
        };
        admit(app, parts, checked).await
    }
}

/// What a token (or session) check comes to: the actor, once it has spent
/// one request of its token's allowance; a failed authentication, counted
/// against the client's address; 503 when the token store cannot say.
pub(super) async fn admit(
    app: &Arc<Shared>,
    parts: &mut Parts,
    checked: crate::error::Result<Actor>,
) -> Result<Actor, HttpError> {
    match checked {
        Ok(actor) => {
            if let Some(token) = actor.token_id {
                app.limits.check_token(token)?;
            }
            Ok(actor)
        }
        Err(err @ CrmError::Unauthenticated(_)) => {
            let Ok(ClientAddress(client)) = ClientAddress::from_request_parts(parts, app).await;
            app.limits.check_failure(client)?;
            Err(err.into())
        }
        Err(err) => Err(HttpError::unavailable(err)),
    }
}

/// Why a request may not act by its session cookie, if it may not.
fn session_refusal(app: &Shared, parts: &Parts) -> Option<&'static str> {
    if !same_origin(app, &parts.headers) {
        return Some("a console session is only accepted from the console's own origin");
    }
    if parts.method != Method::GET && parts.method != Method::HEAD && !super::is_json(&parts.headers) {
        return Some(
            "a console session signs reads and JSON requests only: send this one with \
             `Authorization: Bearer <token>`",
        );
    }
    None
}

/// The console session cookie a request carries, if any (`__Host-` named
/// when it was set over HTTPS).
pub(super) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE_SECURE || name == SESSION_COOKIE).then_some(value)
        })
}

/// Whether a request comes from a page of this server (or says nothing of
/// where it comes from, as a browser's same-origin GET does): its `Origin`
/// (scheme, host and port) is the public URL's, or the one the request was
/// sent to (as a proxy in front tells it: `X-Forwarded-Proto`,
/// `X-Forwarded-Host`). A page cannot set those headers on another
/// origin's request without a preflight, which this server refuses.
pub(super) fn same_origin(app: &Shared, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let origin = origin.trim().trim_end_matches('/');
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(public) = app.config.public_url.as_deref() {
        let public = public.trim_end_matches('/');
        let public_origin = match public.split_once("://") {
            Some((scheme, rest)) => format!("{scheme}://{}", rest.split('/').next().unwrap_or("")),
            None => public.to_owned(),
        };
        if origin.eq_ignore_ascii_case(&public_origin) {
            return true;
        }
    }
    let scheme = text("x-forwarded-proto").unwrap_or("http");
    let Some(host) = text("x-forwarded-host").or_else(|| text(header::HOST.as_str())) else {
        return false;
    };
    origin.eq_ignore_ascii_case(&format!("{scheme}://{host}"))
}

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
//! request whose `Origin` (when it has one) is this server's own, so
//! another site's page can neither send it nor use it; the API still
//! refuses form posts (`application/json` only), which need no preflight.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use super::rate_limit::ClientAddress;
use super::{HttpError, Shared};
use crate::auth::{Actor, SESSION_COOKIE};
use crate::error::CrmError;

impl FromRequestParts<Arc<Shared>> for Actor {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<Shared>) -> Result<Self, Self::Rejection> {
        let authorization = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let checked = match (authorization, session_cookie(&parts.headers)) {
            (None, Some(cookie)) if same_origin(&parts.headers) => app.auth.authenticate_session(cookie).await,
            (None, Some(_)) => Err(CrmError::Unauthenticated(
                "a console session is only accepted from the console's own origin".into(),
            )),
            _ => app.auth.authenticate(authorization).await,
        };
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
}

/// The console session cookie a request carries, if any.
pub(super) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE).then_some(value)
        })
}

/// Whether a request comes from a page of this server (or says nothing of
/// where it comes from, as a browser's same-origin GET does): its `Origin`
/// names the host it was sent to.
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

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

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::rate_limit::ClientAddress;
use super::{HttpError, Shared};
use crate::auth::Actor;
use crate::error::CrmError;

impl FromRequestParts<Arc<Shared>> for Actor {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<Shared>) -> Result<Self, Self::Rejection> {
        let authorization = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        match app.auth.authenticate(authorization).await {
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

//! Which workspace a GraphQL request goes to, and whether its caller may
//! use it.
//!
//! The path names the workspace: `/graphql` is production's endpoint,
//! `/sandboxes/{name}/graphql` a sandbox's. [`Endpoint`] is that name, as
//! an extractor; [`Endpoint::resolve`] checks it only once the caller is
//! known (a GET of a mutation is refused before), with the refusals a
//! client can act on: 404 for a sandbox that does not exist (or no longer
//! does), 403 for a user who is neither an admin nor granted the sandbox,
//! 503 when the database cannot say.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::RequestPartsExt;

use super::{HttpError, Shared};
use crate::auth::{Actor, Role};
use crate::error::CrmError;
use crate::graphql::Workspace;

/// The workspace a request is addressed to by its path.
#[derive(Debug, Clone)]
pub(super) enum Endpoint {
    Production,
    Sandbox(String),
}

impl<S: Send + Sync> FromRequestParts<S> for Endpoint {
    type Rejection = axum::extract::rejection::PathRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(match parts.extract::<Option<Path<String>>>().await? {
            Some(Path(name)) => Endpoint::Sandbox(name),
            None => Endpoint::Production,
        })
    }
}

impl Endpoint {
    /// The workspace `actor` reaches here, or the refusal.
    pub(super) async fn resolve(&self, app: &Shared, actor: &Actor) -> Result<Workspace, HttpError> {
        self.reach(app, actor).await.map_err(|err| match err {
            CrmError::NotFound { .. } | CrmError::Forbidden { .. } => HttpError::from(err),
            err => HttpError::unavailable(err),
        })
    }

    /// The workspace `actor` reaches here: NOT_FOUND for a sandbox that
    /// does not exist (or no longer does), FORBIDDEN for a user neither an
    /// admin nor granted it, another error when the database cannot say.
    pub(super) async fn reach(&self, app: &Shared, actor: &Actor) -> Result<Workspace, CrmError> {
        let Endpoint::Sandbox(name) = self else {
            return Ok(Workspace::production());
        };
        let not_found = || CrmError::not_found("Sandbox", name);
        if crate::sandbox::check_name(name).is_err() {
            return Err(not_found());
        }
        // A cached schema means the sandbox exists: its deletion (here or on
        // another server) drops the cached schema.
        let workspace = match app.schemas.cached(name) {
            Some(entry) => entry.workspace.clone(),
            None => {
                let mut conn = app.db.conn().await?;
                match crate::sandbox::find(&mut conn, name).await? {
                    Some(sandbox) => Workspace {
                        name: sandbox.name,
                        pg_schema: sandbox.pg_schema,
                    },
                    None => return Err(not_found()),
                }
            }
        };
        if actor.role != Role::Admin {
            let mut conn = app.db.conn().await?;
            if !crate::sandbox::may_use(&mut conn, name, actor.user_id).await? {
                return Err(CrmError::Forbidden {
                    permission: "sandbox.use".into(),
                    message: format!(
                        "you have no access to the sandbox {name}: an admin can grant it (grantSandboxAccess)"
                    ),
                });
            }
        }
        Ok(workspace)
    }
}

/// Whether a sandbox of this name exists (for its playground page, which
/// needs no token); a database that cannot say counts as no.
pub(super) async fn sandbox_exists(app: &Shared, name: &str) -> bool {
    match app.db.conn().await {
        Ok(mut conn) => {
            crate::sandbox::check_name(name).is_ok()
                && matches!(crate::sandbox::find(&mut conn, name).await, Ok(Some(_)))
        }
        Err(_) => false,
    }
}

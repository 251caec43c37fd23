//! Console sessions: a browser signs in once with an API token and is
//! given a cookie for it, so the token itself never sits where scripts can
//! read it.
//!
//! The cookie reads `<id>_<secret>`; only a SHA-256 of the secret is kept.
//! A session acts exactly as its token: it ends when the token is revoked
//! or expires or its user is deactivated (the token's own checks, read
//! through the same memory), at its own expiry ([`SESSION_HOURS`]), or when
//! the browser signs out.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use diesel::sql_types::{Bytea, Timestamptz};
use uuid::Uuid;

use super::{constant_time_eq, sha256, Actor, Authenticator};
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "crm_session";
/// Its name when set over HTTPS: browsers keep a `__Host-` cookie only when
/// it is `Secure`, for the whole host and no wider, so a sibling subdomain
/// cannot plant one.
pub const SESSION_COOKIE_SECURE: &str = "__Host-crm_session";
/// How long a session lasts at most (less when its token expires sooner).
const SESSION_HOURS: i32 = 12;

/// A session just opened: the cookie's value and when it ends.
#[derive(Debug, Clone)]
pub struct OpenedSession {
    pub cookie: String,
    pub expires_at: DateTime<Utc>,
    pub actor: Actor,
}

#[derive(diesel::QueryableByName)]
struct SessionRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    token_id: Uuid,
    #[diesel(sql_type = Bytea)]
    secret_sha256: Vec<u8>,
    #[diesel(sql_type = Timestamptz)]
    expires_at: DateTime<Utc>,
}

impl Authenticator {
    /// Signs a browser in for the actor of an API token it presented
    /// (checked with [`Authenticator::authenticate`]): a new session,
    /// ending after [`SESSION_HOURS`] or with the token.
    pub async fn open_session(&self, actor: Actor) -> Result<OpenedSession> {
        let token_id = actor
            .token_id
            .ok_or_else(|| CrmError::Unauthenticated("sign in with an API token".into()))?;
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|err| CrmError::internal(format_args!("no randomness: {err}")))?;
        let secret = URL_SAFE_NO_PAD.encode(secret);
        let mut conn = self.db.conn().await?;
        // Sessions past their end are of no use to anyone: each sign-in
        // clears them.
        Sql::raw("DELETE FROM crm_system.console_sessions WHERE expires_at <= now()")
            .execute(&mut conn)
            .await?;
        let mut insert = Sql::raw(
            "INSERT INTO crm_system.console_sessions (token_id, secret_sha256, expires_at) \
             SELECT t.id, ",
        );
        insert.bind(Bind::Bytes(sha256(&secret).to_vec()));
        insert.push(", LEAST(now() + make_interval(hours => ");
        insert.bind(Bind::Int(Some(SESSION_HOURS)));
        insert.push("), COALESCE(t.expires_at, 'infinity')) FROM crm_system.api_tokens t WHERE t.id = ");
        insert.bind(Bind::Uuid(Some(token_id)));
        insert.push(" RETURNING id, token_id, secret_sha256, expires_at");
        let rows: Vec<SessionRow> = insert.load(&mut conn).await?;
        let row = rows
            .into_iter()
            .next()
            .ok_or_else(|| CrmError::Unauthenticated("the API token is unknown or revoked".into()))?;
        Ok(OpenedSession {
            cookie: format!("{}_{secret}", row.id),
            expires_at: row.expires_at,
            actor,
        })
    }

    /// The actor of a request carrying this session cookie value.
    pub async fn authenticate_session(&self, cookie: &str) -> Result<Actor> {
        let ended = || CrmError::Unauthenticated("the console session ended: sign in again".into());
        let (id, secret) = parse(cookie).ok_or_else(ended)?;
        let row = self.session(id).await?.ok_or_else(ended)?;
        let stored: [u8; 32] = row.secret_sha256.as_slice().try_into().map_err(|_| ended())?;
        if !constant_time_eq(&sha256(secret), &stored) {
            return Err(ended());
        }
        let token = self.row(row.token_id).await?.ok_or_else(ended)?;
        self.actor_of(row.token_id, &token).await
    }

    /// Signs a browser out: its session ends now, on every server.
    pub async fn close_session(&self, cookie: &str) -> Result<()> {
        let Some((id, secret)) = parse(cookie) else {
            return Ok(());
        };
        let mut conn = self.db.conn().await?;
        let mut delete = Sql::raw("DELETE FROM crm_system.console_sessions WHERE id = ");
        delete.bind(Bind::Uuid(Some(id)));
        delete.push(" AND secret_sha256 = ");
        delete.bind(Bind::Bytes(sha256(secret).to_vec()));
        delete.execute(&mut conn).await?;
        Ok(())
    }

    /// The session `id`, unless it has ended.
    async fn session(&self, id: Uuid) -> Result<Option<SessionRow>> {
        let mut conn = self.db.conn().await?;
        let mut query =
            Sql::raw("SELECT id, token_id, secret_sha256, expires_at FROM crm_system.console_sessions WHERE id = ");
        query.bind(Bind::Uuid(Some(id)));
        query.push(" AND expires_at > now()");
        let rows: Vec<SessionRow> = query.load(&mut conn).await?;
        Ok(rows.into_iter().next())
    }
}

/// A cookie's session id and secret, if it reads `<uuid>_<secret>`.
fn parse(cookie: &str) -> Option<(Uuid, &str)> {
    let (id, secret) = cookie.trim().split_once('_')?;
    Some((id.parse().ok()?, secret))
}

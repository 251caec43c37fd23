//! API tokens: who a request acts for.
//!
//! A token reads `crm_<id>_<secret>`. The id finds its row; the secret is
//! checked against the SHA-256 kept there, in constant time, so the token
//! text itself is stored nowhere. A checked token is remembered for a few
//! seconds, so requests cost no extra statement; revoking a token through
//! this server forgets it at once, through another within that time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use diesel::sql_types::{Bool, Bytea, Nullable, Text, Timestamptz};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::sql::{Bind, Sql};
use crate::db::{Conn, Database};
use crate::error::{CrmError, Result};

/// Every token starts with this, so secret scanners can spot leaked ones.
pub const TOKEN_PREFIX: &str = "crm_";
/// How long a checked token is trusted without asking the database again.
const REMEMBERED_FOR: Duration = Duration::from_secs(5);
/// Checked tokens kept; past this the memory starts over.
const REMEMBERED_TOKENS: usize = 10_000;
/// The user `serve` creates on an empty database.
pub const FIRST_ADMIN_EMAIL: &str = "admin@crm.local";

/// What a token may do (see `ARCHITECTURE.md`, roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    Sales,
    Support,
    ReadOnly,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Sales, Role::Support, Role::ReadOnly];

    /// The stored and API name: `ADMIN`, `SALES`, `SUPPORT`, `READ_ONLY`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "ADMIN",
            Role::Sales => "SALES",
            Role::Support => "SUPPORT",
            Role::ReadOnly => "READ_ONLY",
        }
    }

    /// Reads a role name, case-insensitively (`read_only`, `READ-ONLY`).
    pub fn parse(text: &str) -> Option<Role> {
        let name = text.trim().to_ascii_uppercase().replace('-', "_");
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }
}

/// Who a request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: Uuid,
    pub token_id: Uuid,
    pub role: Role,
}

/// A token just created: the only time its text exists.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub id: Uuid,
    /// `crm_<id>_<secret>`: give it to the client; it is not kept.
    pub token: String,
    pub user_email: String,
    pub role: Role,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A token as listed: everything but its secret.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct TokenInfo {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Text)]
    pub user_email: String,
    #[diesel(sql_type = Text)]
    pub role: String,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub expires_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub revoked_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_used_at: Option<DateTime<Utc>>,
}

#[derive(diesel::QueryableByName)]
struct UserRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    email: String,
    #[diesel(sql_type = Bool)]
    active: bool,
}

#[derive(diesel::QueryableByName)]
struct IdRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
}

/// Creates a token for the user with `email`, acting with `role`.
pub async fn issue(
    conn: &mut Conn,
    email: &str,
    role: Role,
    name: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<IssuedToken> {
    let mut query = Sql::raw("SELECT id, email, active FROM crm_system.users WHERE lower(email) = lower(");
    query
        .bind(Bind::Text(Some(email.to_owned())))
        .push(") AND deleted_at IS NULL");
    let users: Vec<UserRow> = query.load(conn).await?;
    let user = users
        .into_iter()
        .next()
        .ok_or_else(|| CrmError::not_found("User", email))?;
    if !user.active {
        return Err(CrmError::bad_input(
            &["user"],
            format!("{} is deactivated; reactivate the user first", user.email),
        ));
    }
    if expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(CrmError::bad_input(&["expiresAt"], "the expiry must be in the future"));
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 255 {
        return Err(CrmError::bad_input(&["name"], "a token's name is 1 to 255 characters"));
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|err| CrmError::internal(format_args!("no randomness: {err}")))?;
    let secret = URL_SAFE_NO_PAD.encode(secret);
    let mut insert =
        Sql::raw("INSERT INTO crm_system.api_tokens (user_id, name, role, secret_sha256, expires_at) VALUES (");
    insert.bind(Bind::Uuid(Some(user.id))).push(", ");
    insert.bind(Bind::Text(Some(name.to_owned()))).push(", ");
    insert.bind(Bind::Text(Some(role.as_str().to_owned()))).push(", ");
    insert.bind(Bind::Bytes(sha256(&secret).to_vec())).push(", ");
    insert.bind(Bind::DateTime(expires_at)).push(") RETURNING id");
    let rows: Vec<IdRow> = insert.load(conn).await?;
    let id = rows
        .first()
        .map(|row| row.id)
        .ok_or_else(|| CrmError::internal("token insert returned no id"))?;
    Ok(IssuedToken {
        id,
        token: format!("{TOKEN_PREFIX}{}_{secret}", id.simple()),
        user_email: user.email,
        role,
        expires_at,
    })
}

/// Every token, newest first.
pub async fn list(conn: &mut Conn) -> Result<Vec<TokenInfo>> {
    let query = Sql::raw(
        "SELECT t.id, t.name, u.email AS user_email, t.role, t.created_at, t.expires_at, t.revoked_at, t.last_used_at \
         FROM crm_system.api_tokens t JOIN crm_system.users u ON u.id = t.user_id ORDER BY t.created_at DESC, t.id",
    );
    Ok(query.load(conn).await?)
}

/// Revokes a token; false when there is no such live token.
pub async fn revoke(conn: &mut Conn, id: Uuid) -> Result<bool> {
    let mut query = Sql::raw("UPDATE crm_system.api_tokens SET revoked_at = now() WHERE id = ");
    query.bind(Bind::Uuid(Some(id))).push(" AND revoked_at IS NULL");
    Ok(query.execute(conn).await? == 1)
}

/// On a database without an administrator: creates one
/// ([`FIRST_ADMIN_EMAIL`]) and a token for it. `None` when there is one.
pub async fn first_admin(conn: &mut Conn) -> Result<Option<IssuedToken>> {
    let existing: Vec<IdRow> =
        Sql::raw("SELECT id FROM crm_system.users WHERE role = 'ADMIN' AND deleted_at IS NULL AND active LIMIT 1")
            .load(conn)
            .await?;
    if !existing.is_empty() {
        return Ok(None);
    }
    let mut insert = Sql::raw("INSERT INTO crm_system.users (name, email, role) VALUES ('Administrator', ");
    insert
        .bind(Bind::Text(Some(FIRST_ADMIN_EMAIL.to_owned())))
        .push(", 'ADMIN') ON CONFLICT (email) DO UPDATE SET role = 'ADMIN', active = true, deleted_at = NULL");
    insert.execute(conn).await?;
    issue(conn, FIRST_ADMIN_EMAIL, Role::Admin, "first admin token", None)
        .await
        .map(Some)
}

fn sha256(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Equal bytes, compared without stopping at the first difference.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// A token's row as last read.
#[derive(Clone, diesel::QueryableByName)]
struct TokenRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    user_id: Uuid,
    #[diesel(sql_type = Text)]
    role: String,
    #[diesel(sql_type = Bytea)]
    secret_sha256: Vec<u8>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    expires_at: Option<DateTime<Utc>>,
}

/// Checks `Authorization` headers, remembering recent answers.
pub struct Authenticator {
    db: Database,
    remembered: Mutex<HashMap<Uuid, (Instant, Option<TokenRow>)>>,
}

impl Authenticator {
    pub fn new(db: Database) -> Self {
        Authenticator {
            db,
            remembered: Mutex::default(),
        }
    }

    /// The actor of a request with this `Authorization` header value.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Actor> {
        let header = header.ok_or_else(|| {
            CrmError::Unauthenticated(
                "this endpoint needs an API token: send `Authorization: Bearer <token>` \
                 (serve prints the first admin token; `crm token create` makes more)"
                    .into(),
            )
        })?;
        let token = match header.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => {
                return Err(CrmError::Unauthenticated(
                    "use the Bearer scheme: `Authorization: Bearer <token>`".into(),
                ))
            }
        };
        let unknown = || CrmError::Unauthenticated("the API token is unknown or revoked".into());
        let (id, secret) = token
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .ok_or_else(unknown)?;
        let id: Uuid = id.parse().map_err(|_| unknown())?;
        let row = self.row(id).await?.ok_or_else(unknown)?;
        let stored: [u8; 32] = row.secret_sha256.as_slice().try_into().map_err(|_| unknown())?;
        if !constant_time_eq(&sha256(secret), &stored) {
            return Err(unknown());
        }
        if let Some(expired) = row.expires_at.filter(|at| *at <= Utc::now()) {
            return Err(CrmError::Unauthenticated(format!(
                "the API token expired at {}",
                expired.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )));
        }
        let role = Role::parse(&row.role).ok_or_else(|| CrmError::internal(format_args!("token role {}", row.role)))?;
        Ok(Actor {
            user_id: row.user_id,
            token_id: id,
            role,
        })
    }

    /// Forgets a token at once (after it is revoked).
    pub fn forget(&self, id: Uuid) {
        if let Ok(mut remembered) = self.remembered.lock() {
            remembered.remove(&id);
        }
    }

    /// The live token `id` of an active user, from memory when recent.
    async fn row(&self, id: Uuid) -> Result<Option<TokenRow>> {
        if let Ok(remembered) = self.remembered.lock() {
            if let Some((at, row)) = remembered.get(&id) {
                if at.elapsed() < REMEMBERED_FOR {
                    return Ok(row.clone());
                }
            }
        }
        let mut conn = self.db.conn().await?;
        let mut query = Sql::raw(
            "UPDATE crm_system.api_tokens t SET last_used_at = now() FROM crm_system.users u \
             WHERE t.id = ",
        );
        query.bind(Bind::Uuid(Some(id)));
        query.push(
            " AND u.id = t.user_id AND t.revoked_at IS NULL AND u.active AND u.deleted_at IS NULL \
             RETURNING t.user_id, t.role, t.secret_sha256, t.expires_at",
        );
        let rows: Vec<TokenRow> = query.load(&mut conn).await?;
        let row = rows.into_iter().next();
        if let Ok(mut remembered) = self.remembered.lock() {
            if remembered.len() >= REMEMBERED_TOKENS {
                remembered.clear();
            }
            remembered.insert(id, (Instant::now(), row.clone()));
        }
        Ok(row)
    }
}

/// `30d`, `12h`, `45m`: a token lifetime.
pub fn parse_lifetime(text: &str) -> Option<chrono::Duration> {
    let text = text.trim();
    let split = text.len().checked_sub(1)?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().ok().filter(|n| *n > 0)?;
    match unit {
        "d" => chrono::Duration::try_days(number),
        "h" => chrono::Duration::try_hours(number),
        "m" => chrono::Duration::try_minutes(number),
        _ => None,
    }
}

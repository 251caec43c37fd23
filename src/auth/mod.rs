//! API tokens: who a request acts for.
//!
//! A token reads `crm_<id>_<secret>`. The id finds its row; the secret is
//! checked against the SHA-256 kept there, in constant time, so the token
//! text itself is stored nowhere. Only then is the token marked as used:
//! a made-up secret for a known id changes nothing. A token's row is
//! remembered for a few seconds, so requests cost no extra statement;
//! revoking a token through this server forgets it at once, through
//! another within that time. Ids with no live token are not remembered:
//! made-up ids cannot fill the memory or push real tokens out of it.
//!
//! A browser signs in to the console once with a token and then sends a
//! session cookie instead (`session`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use diesel::sql_types::{Bool, Bytea, Nullable, Text, Timestamptz};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use diesel_async::{AsyncConnection, AsyncPgConnection};

use crate::audit::{self, Trail};
use crate::db::sql::{Bind, Sql};
use crate::db::Database;
use crate::error::{CrmError, Result};

/// Every token starts with this, so secret scanners can spot leaked ones.
pub const TOKEN_PREFIX: &str = "crm_";
/// How long a checked token is trusted without asking the database again.
const REMEMBERED_FOR: Duration = Duration::from_secs(5);
/// Live tokens remembered at most; past this, tokens read while every
/// remembered one is recent are not remembered.
const REMEMBERED_TOKENS: usize = 10_000;
/// The user `serve` creates on an empty database.
pub const FIRST_ADMIN_EMAIL: &str = "admin@crm.local";

pub use crate::actor::{Actor, Role};
pub use session::{OpenedSession, SESSION_COOKIE, SESSION_COOKIE_SECURE};

mod session;

/// A token just created: the only time its text exists.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// `crm_<id>_<secret>`: give it to the client; it is not kept.
    pub token: String,
    pub info: TokenInfo,
}

/// A token as listed: everything but its secret.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct TokenInfo {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub user_id: Uuid,
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

/// The user a token is for.
#[derive(Debug, Clone)]
pub enum UserRef {
    Email(String),
    Id(Uuid),
}

#[derive(diesel::QueryableByName)]
struct UserRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    email: String,
    #[diesel(sql_type = Text)]
    role: String,
    #[diesel(sql_type = Bool)]
    active: bool,
}

#[derive(diesel::QueryableByName)]
struct IdRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
}

/// What a new token is for.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub user: UserRef,
    /// The role it acts with; at most the user's. `None`: the user's role.
    pub role: Option<Role>,
    pub name: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Creates a token, with its audit entry, in one transaction.
pub async fn issue(conn: &mut AsyncPgConnection, trail: &Trail, new: &NewToken) -> Result<IssuedToken> {
    conn.transaction::<_, CrmError, _>(async |conn| {
        let mut query = Sql::raw("SELECT id, email, role, active FROM crm_system.users WHERE ");
        match &new.user {
            UserRef::Email(email) => query
                .push("lower(email) = lower(")
                .bind(Bind::Text(Some(email.clone())))
                .push(")"),
            UserRef::Id(id) => query.push("id = ").bind(Bind::Uuid(Some(*id))),
        };
        query.push(" AND deleted_at IS NULL");
        let users: Vec<UserRow> = query.load(conn).await?;
        let user = users.into_iter().next().ok_or_else(|| match &new.user {
            UserRef::Email(email) => CrmError::not_found("User", email),
            UserRef::Id(id) => CrmError::not_found("User", id),
        })?;
        if !user.active {
            return Err(CrmError::bad_input(
                &["userId"],
                format!("{} is deactivated; reactivate the user first", user.email),
            ));
        }
        let user_role =
            Role::parse(&user.role).ok_or_else(|| CrmError::internal(format_args!("role {}", user.role)))?;
        let role = new.role.unwrap_or(user_role);
        if role.narrower(user_role) != role {
            return Err(CrmError::bad_input(
                &["role"],
                format!(
                    "{} is a {} user; a token acts with at most its user's role",
                    user.email,
                    user_role.as_str()
                ),
            ));
        }
        if new.expires_at.is_some_and(|at| at <= Utc::now()) {
            return Err(CrmError::bad_input(&["expiresAt"], "the expiry must be in the future"));
        }
        let name = new.name.trim();
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
        insert.bind(Bind::DateTime(new.expires_at)).push(") RETURNING id");
        let rows: Vec<IdRow> = insert.load(conn).await?;
        let id = rows
            .first()
            .map(|row| row.id)
            .ok_or_else(|| CrmError::internal("token insert returned no id"))?;
        let info = find(conn, id)
            .await?
            .ok_or_else(|| CrmError::internal("a new token is gone"))?;
        let entry = audit::Entry {
            object: "ApiToken".into(),
            record_id: Some(id),
            action: audit::Action::Create,
            changes: token_fields(&info),
        };
        audit::append(conn, trail, &[entry]).await?;
        Ok(IssuedToken {
            token: format!("{TOKEN_PREFIX}{}_{secret}", id.simple()),
            info,
        })
    })
    .await
}

/// What the audit log keeps of a new token (never its secret).
fn token_fields(info: &TokenInfo) -> Vec<audit::Change> {
    [
        ("name", serde_json::Value::String(info.name.clone())),
        ("userId", serde_json::Value::String(info.user_id.to_string())),
        ("role", serde_json::Value::String(info.role.clone())),
        ("expiresAt", json_time(info.expires_at)),
    ]
    .into_iter()
    .filter(|(_, value)| !value.is_null())
    .map(|(field, after)| audit::Change {
        field: field.into(),
        before: serde_json::Value::Null,
        after,
    })
    .collect()
}

/// An instant as the API writes it, or null.
fn json_time(at: Option<DateTime<Utc>>) -> serde_json::Value {
    at.map(|t| serde_json::Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)))
        .unwrap_or_default()
}

const TOKEN_COLUMNS: &str =
    "SELECT t.id, t.name, t.user_id, u.email AS user_email, t.role, t.created_at, t.expires_at, \
     t.revoked_at, t.last_used_at FROM crm_system.api_tokens t JOIN crm_system.users u ON u.id = t.user_id";

/// Every token (of one user, when given), newest first.
pub async fn list(conn: &mut AsyncPgConnection, user: Option<Uuid>) -> Result<Vec<TokenInfo>> {
    let mut query = Sql::raw(TOKEN_COLUMNS);
    if let Some(user) = user {
        query.push(" WHERE t.user_id = ").bind(Bind::Uuid(Some(user)));
    }
    query.push(" ORDER BY t.created_at DESC, t.id");
    Ok(query.load(conn).await?)
}

/// One token.
pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Option<TokenInfo>> {
    let mut query = Sql::raw(TOKEN_COLUMNS);
    query.push(" WHERE t.id = ").bind(Bind::Uuid(Some(id)));
    let tokens: Vec<TokenInfo> = query.load(conn).await?;
    Ok(tokens.into_iter().next())
}

/// Revokes a live token, with its audit entry, in one transaction;
/// `NOT_FOUND` when there is no such live token.
pub async fn revoke(conn: &mut AsyncPgConnection, trail: &Trail, id: Uuid) -> Result<TokenInfo> {
    conn.transaction::<_, CrmError, _>(async |conn| {
        let mut query = Sql::raw("UPDATE crm_system.api_tokens SET revoked_at = now() WHERE id = ");
        query.bind(Bind::Uuid(Some(id))).push(" AND revoked_at IS NULL");
        if query.execute(conn).await? != 1 {
            return Err(CrmError::not_found("ApiToken", id));
        }
        let info = find(conn, id)
            .await?
            .ok_or_else(|| CrmError::internal("a revoked token is gone"))?;
        let at = json_time(info.revoked_at);
        let entry = audit::Entry {
            object: "ApiToken".into(),
            record_id: Some(id),
            action: audit::Action::Revoke,
            changes: vec![audit::Change {
                field: "revokedAt".into(),
                before: serde_json::Value::Null,
                after: at,
            }],
        };
        audit::append(conn, trail, &[entry]).await?;
        // Every server refuses it from the commit on.
        crate::notify::announce(conn, &crate::notify::Announcement::TokenRevoked { id }).await?;
        Ok(info)
    })
    .await
}

/// When no administrator has a live token (an empty database, or every
/// admin token revoked or expired): a new admin token, for the oldest
/// active administrator or a new one ([`FIRST_ADMIN_EMAIL`]). `None`
/// when an admin token is live.
pub async fn first_admin(conn: &mut AsyncPgConnection) -> Result<Option<IssuedToken>> {
    let live: Vec<IdRow> = Sql::raw(
        "SELECT t.id FROM crm_system.api_tokens t JOIN crm_system.users u ON u.id = t.user_id \
         WHERE u.role = 'ADMIN' AND u.active AND u.deleted_at IS NULL AND t.role = 'ADMIN' \
         AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now()) LIMIT 1",
    )
    .load(conn)
    .await?;
    if !live.is_empty() {
        return Ok(None);
    }
    let admin = admin_user(conn).await?;
    let new = NewToken {
        user: UserRef::Id(admin),
        role: Some(Role::Admin),
        name: "first admin token".into(),
        expires_at: None,
    };
    issue(conn, &Trail::cli("production"), &new).await.map(Some)
}

/// The oldest active administrator, created ([`FIRST_ADMIN_EMAIL`]) when
/// there is none.
pub async fn admin_user(conn: &mut AsyncPgConnection) -> Result<Uuid> {
    let existing: Vec<IdRow> = Sql::raw(
        "SELECT id FROM crm_system.users WHERE role = 'ADMIN' AND deleted_at IS NULL AND active \
         ORDER BY created_at, id LIMIT 1",
    )
    .load(conn)
    .await?;
    if let Some(admin) = existing.first() {
        return Ok(admin.id);
    }
    let mut insert = Sql::raw("INSERT INTO crm_system.users (name, email, role) VALUES ('Administrator', ");
    insert.bind(Bind::Text(Some(FIRST_ADMIN_EMAIL.to_owned()))).push(
        ", 'ADMIN') ON CONFLICT (email) DO UPDATE SET role = 'ADMIN', active = true, deleted_at = NULL RETURNING id",
    );
    let rows: Vec<IdRow> = insert.load(conn).await?;
    rows.first()
        .map(|row| row.id)
        .ok_or_else(|| CrmError::internal("the first admin insert returned no id"))
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
    #[diesel(sql_type = Text)]
    user_role: String,
    #[diesel(sql_type = Bytea)]
    secret_sha256: Vec<u8>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    expires_at: Option<DateTime<Utc>>,
}

/// A live token's row as read at `read_at`, and whether a use of it was
/// recorded (`last_used_at`) since.
struct Remembered {
    read_at: Instant,
    row: TokenRow,
    use_recorded: bool,
}

/// Checks `Authorization` headers, remembering recent answers.
pub struct Authenticator {
    db: Database,
    remembered: Mutex<HashMap<Uuid, Remembered>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
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
        self.actor_of(id, &row).await
    }

    /// The actor of the live token `id` whose secret was checked (or whose
    /// session's was): refused once the token expired.
    async fn actor_of(&self, id: Uuid, row: &TokenRow) -> Result<Actor> {
        if let Some(expired) = row.expires_at.filter(|at| *at <= Utc::now()) {
            return Err(CrmError::Unauthenticated(format!(
                "the API token expired at {}",
                expired.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )));
        }
        let role = |text: &str| Role::parse(text).ok_or_else(|| CrmError::internal(format_args!("role {text}")));
        let role = role(&row.role)?.narrower(role(&row.user_role)?);
        self.record_use(id).await?;
        Ok(Actor {
            user_id: row.user_id,
            token_id: Some(id),
            role,
        })
    }

    /// Forgets a token at once (after it is revoked).
    pub fn forget(&self, id: Uuid) {
        if let Ok(mut remembered) = self.remembered.lock() {
            remembered.remove(&id);
        }
    }

    /// Forgets every token of a user at once (after the user is changed
    /// or deactivated).
    pub fn forget_user(&self, user: Uuid) {
        if let Ok(mut remembered) = self.remembered.lock() {
            remembered.retain(|_, remembered| remembered.row.user_id != user);
        }
    }

    /// Forgets every token (announcements of other servers may have been
    /// missed).
    pub fn forget_all(&self) {
        if let Ok(mut remembered) = self.remembered.lock() {
            remembered.clear();
        }
    }

    /// Tokens remembered now (for `/metrics`).
    pub fn remembered(&self) -> usize {
        self.remembered.lock().map_or(0, |remembered| remembered.len())
    }

    /// The live token `id` of an active user, from memory when recent.
    async fn row(&self, id: Uuid) -> Result<Option<TokenRow>> {
        if let Ok(remembered) = self.remembered.lock() {
            if let Some(entry) = remembered.get(&id).filter(|e| e.read_at.elapsed() < REMEMBERED_FOR) {
                return Ok(Some(entry.row.clone()));
            }
        }
        let mut conn = self.db.conn().await?;
        let mut query = Sql::raw(
            "SELECT t.user_id, t.role, u.role AS user_role, t.secret_sha256, t.expires_at \
             FROM crm_system.api_tokens t JOIN crm_system.users u ON u.id = t.user_id WHERE t.id = ",
        );
        query.bind(Bind::Uuid(Some(id)));
        query.push(" AND t.revoked_at IS NULL AND u.active AND u.deleted_at IS NULL");
        let rows: Vec<TokenRow> = query.load(&mut conn).await?;
        let row = rows.into_iter().next();
        if let Ok(mut remembered) = self.remembered.lock() {
            match &row {
                None => {
                    remembered.remove(&id);
                }
                Some(row) => {
                    if remembered.len() >= REMEMBERED_TOKENS {
                        remembered.retain(|_, e| e.read_at.elapsed() < REMEMBERED_FOR);
                    }
                    if remembered.len() < REMEMBERED_TOKENS || remembered.contains_key(&id) {
                        let entry = Remembered {
                            read_at: Instant::now(),
                            row: row.clone(),
                            use_recorded: false,
                        };
                        remembered.insert(id, entry);
                    }
                }
            }
        }
        Ok(row)
    }

    /// Marks a verified token as used, once per remembered read.
    async fn record_use(&self, id: Uuid) -> Result<()> {
        let recorded = self.remembered.lock().ok().and_then(|mut remembered| {
            let entry = remembered.get_mut(&id)?;
            Some(std::mem::replace(&mut entry.use_recorded, true))
        });
        if recorded == Some(true) {
            return Ok(());
        }
        let mut conn = self.db.conn().await?;
        let mut update = Sql::raw("UPDATE crm_system.api_tokens SET last_used_at = now() WHERE id = ");
        update.bind(Bind::Uuid(Some(id)));
        update.execute(&mut conn).await?;
        Ok(())
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

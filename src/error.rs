//! The one error type of the server and its mapping to GraphQL errors.
//!
//! Every error a client sees carries a stable `extensions.code`; input
//! errors also carry `extensions.field`, the path of the offending input
//! value. Database and internal failures are logged with a reference id and
//! reach the client only as `INTERNAL` with that id: never SQL text.

use async_graphql::ErrorExtensions;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// A failure a request can end in, with the code clients dispatch on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CrmError {
    /// The client sent a value that is not acceptable; `field` is its path
    /// inside the arguments, e.g. `["input", "accountId"]`.
    #[error("{message}")]
    BadUserInput { message: String, field: Vec<String> },
    /// The record does not exist in this workspace (or is deleted).
    #[error("{object} {id} not found")]
    NotFound { object: String, id: String },
    /// The change collides with the current state (a unique value taken).
    #[error("{0}")]
    Conflict(String),
    /// A metadata change that existing records do not satisfy (a new
    /// constraint they violate, values a type change cannot convert):
    /// `count` records, some of them in `sample_ids`. Nothing changed.
    #[error("{message}")]
    DataConflict {
        message: String,
        field: Vec<String>,
        count: i64,
        sample_ids: Vec<String>,
    },
    /// A field type change that would lose information of `count` values
    /// (a time of day, fraction digits …), some of them in `sample_ids`,
    /// asked without accepting that. Nothing changed.
    #[error("{message}")]
    LossyChange {
        message: String,
        field: Vec<String>,
        count: i64,
        sample_ids: Vec<String>,
    },
    /// A promotion that cannot be applied as it stands: each blocker says
    /// why (conflicts, changes the data refuses, breaking changes).
    #[error("{message}")]
    Refused { message: String, blockers: Vec<String> },
    /// The tables a change needs are held by other work longer than the
    /// change may wait (`lock_timeout`): nothing changed, and trying again
    /// may succeed. Metadata changes retry by themselves first.
    #[error("{0}")]
    Busy(String),
    /// The write would make a record that looks like existing ones
    /// (`duplicates`: what each is and what matched), and the request did
    /// not allow that. Nothing changed.
    #[error("{message}")]
    Duplicate {
        message: String,
        field: Vec<String>,
        duplicates: Vec<serde_json::Value>,
    },
    /// A validation rule refuses the write (`violations`: every rule that
    /// does, `{ rule, message, field }`): the first one's message, at its
    /// field. Nothing changed.
    #[error("{message}")]
    ValidationFailed {
        message: String,
        field: Vec<String>,
        violations: Vec<serde_json::Value>,
    },
    /// The record moved on since the client read it.
    #[error("{object} {id} is at version {current}, not the expected version {expected}: reload it and try again")]
    VersionConflict {
        object: String,
        id: String,
        current: i32,
        expected: i32,
    },
    /// The request carries no valid API token (missing, unknown, expired
    /// or revoked): HTTP 401.
    #[error("{0}")]
    Unauthenticated(String),
    /// The actor's role does not grant `permission` (`Opportunity.create`,
    /// `users.manage` …).
    #[error("{message}")]
    Forbidden { permission: String, message: String },
    /// Too many requests with one token, or too many failed
    /// authentications from one address, in a short time: HTTP 429.
    #[error("{0}")]
    RateLimited(String),
    /// The query asks for more work than the server allows.
    #[error("{0}")]
    QueryTooComplex(String),
    /// A request sent only the hash of a persisted query (Apollo's
    /// automatic persisted queries) the server does not know: the client
    /// sends it again with its text. The message is the one Apollo's
    /// clients look for.
    #[error("PersistedQueryNotFound")]
    PersistedQueryNotFound,
    /// A time limit ran out: the database's `statement_timeout` (a
    /// narrower filter or smaller page may succeed), the server's request
    /// timeout (HTTP 503) or its body timeout (HTTP 408, a client too slow
    /// sending the body).
    #[error("{0}")]
    Timeout(String),
    /// The database cannot be reached right now (it is restarting, or
    /// stalled past the pool's wait): HTTP 503 with `Retry-After`; the same
    /// request may succeed shortly. A write is not applied, except when the
    /// connection broke during its very COMMIT (then it may have been).
    #[error("{0}")]
    Unavailable(String),
    /// A failure that is the server's, not the client's. The detail is in
    /// the server log under `reference`.
    #[error("internal error (reference {reference})")]
    Internal { reference: String },
}

/// Result type used across the crate.
pub type Result<T, E = CrmError> = std::result::Result<T, E>;

impl CrmError {
    /// Bad input at `field` (a path of argument and input-field names).
    pub fn bad_input<S: Into<String>>(field: &[&str], message: S) -> Self {
        CrmError::BadUserInput {
            message: message.into(),
            field: field.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Bad input at an owned path.
    pub fn bad_input_at(field: Vec<String>, message: impl Into<String>) -> Self {
        CrmError::BadUserInput {
            message: message.into(),
            field,
        }
    }

    /// The database is out of reach; `detail` (the driver's words) goes to
    /// the log, the client gets a retryable `UNAVAILABLE`.
    pub fn unavailable(detail: impl std::fmt::Display) -> Self {
        tracing::debug!("database unavailable: {detail}");
        CrmError::Unavailable("the database is unavailable (restarting or stalled); try again shortly".into())
    }

    pub fn not_found(object: &str, id: impl ToString) -> Self {
        CrmError::NotFound {
            object: object.to_owned(),
            id: id.to_string(),
        }
    }

    /// Logs `detail` with a fresh reference id and returns an `INTERNAL`
    /// error that names only the reference.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        let reference = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        tracing::error!(%reference, "internal error: {detail}");
        CrmError::Internal { reference }
    }

    /// The stable code clients dispatch on.
    pub fn code(&self) -> &'static str {
        match self {
            CrmError::BadUserInput { .. } | CrmError::LossyChange { .. } => "BAD_USER_INPUT",
            CrmError::NotFound { .. } => "NOT_FOUND",
            CrmError::Conflict(_)
            | CrmError::Busy(_)
            | CrmError::VersionConflict { .. }
            | CrmError::DataConflict { .. }
            | CrmError::Refused { .. } => "CONFLICT",
            CrmError::Duplicate { .. } => "DUPLICATE",
            CrmError::ValidationFailed { .. } => "VALIDATION_FAILED",
            CrmError::Unauthenticated(_) => "UNAUTHENTICATED",
            CrmError::Forbidden { .. } => "FORBIDDEN",
            CrmError::RateLimited(_) => "RATE_LIMITED",
            CrmError::QueryTooComplex(_) => "QUERY_TOO_COMPLEX",
            CrmError::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            CrmError::Timeout(_) => "TIMEOUT",
            CrmError::Unavailable(_) => "UNAVAILABLE",
            CrmError::Internal { .. } => "INTERNAL",
        }
    }
}

impl CrmError {
    /// The error as a response error that points at no location in the
    /// query: for refusals of the request as a whole.
    pub fn into_server_error(self) -> async_graphql::ServerError {
        let mut error = async_graphql::ServerError::new(self.to_string(), None);
        error.extensions = self.extend().extensions;
        error
    }
}

impl ErrorExtensions for CrmError {
    /// The GraphQL error clients see: message, `code`, and `field` for input.
    fn extend(&self) -> async_graphql::Error {
        let err = self;
        let code = err.code();
        let field = match err {
            CrmError::BadUserInput { field, .. }
            | CrmError::DataConflict { field, .. }
            | CrmError::LossyChange { field, .. }
            | CrmError::Duplicate { field, .. }
            | CrmError::ValidationFailed { field, .. }
                if !field.is_empty() =>
            {
                Some(field.clone())
            }
            _ => None,
        };
        let violations = match err {
            CrmError::DataConflict { count, sample_ids, .. } | CrmError::LossyChange { count, sample_ids, .. } => {
                Some((*count, sample_ids.clone()))
            }
            _ => None,
        };
        let permission = match err {
            CrmError::Forbidden { permission, .. } => Some(permission.clone()),
            _ => None,
        };
        let blockers = match err {
            CrmError::Refused { blockers, .. } => Some(blockers.clone()),
            _ => None,
        };
        let duplicates = match err {
            CrmError::Duplicate { duplicates, .. } => Some(("duplicates", duplicates.clone())),
            CrmError::ValidationFailed { violations, .. } => Some(("violations", violations.clone())),
            _ => None,
        };
        let current_version = match err {
            CrmError::VersionConflict { current, .. } => Some(*current),
            _ => None,
        };
        async_graphql::Error::new(err.to_string()).extend_with(|_, ext| {
            ext.set("code", code);
            if let Some(field) = field {
                // List positions are numbers, as in a GraphQL `path`.
                let path = field.into_iter().map(|part| match part.parse::<u64>() {
                    Ok(index) => async_graphql::Value::from(index),
                    Err(_) => async_graphql::Value::String(part),
                });
                ext.set("field", async_graphql::Value::List(path.collect()));
            }
            if let Some(permission) = permission {
                ext.set("permission", permission);
            }
            if let Some(current) = current_version {
                ext.set("currentVersion", current);
            }
            if let Some(blockers) = blockers {
                let blockers = blockers.into_iter().map(async_graphql::Value::String).collect();
                ext.set("blockers", async_graphql::Value::List(blockers));
            }
            if let Some((key, items)) = duplicates {
                let items = items
                    .into_iter()
                    .map(|d| async_graphql::Value::from_json(d).unwrap_or(async_graphql::Value::Null));
                ext.set(key, async_graphql::Value::List(items.collect()));
            }
            if let Some((count, samples)) = violations {
                ext.set("count", count);
                let samples = samples.into_iter().map(async_graphql::Value::String).collect();
                ext.set("sampleIds", async_graphql::Value::List(samples));
            }
        })
    }
}

impl From<async_graphql::Error> for CrmError {
    /// A failure inside async-graphql's plumbing (a resolver got a parent
    /// value of the wrong type): the server's fault.
    fn from(err: async_graphql::Error) -> Self {
        CrmError::internal(format_args!("graphql: {}", err.message))
    }
}

/// Database errors that a client can cause are mapped by kind; the callers
/// that know which input caused them refine the mapping (see
/// `records::write`). Everything else is internal.
///
/// Lock and statement timeouts are told apart by their message text, not
/// their SQLSTATE (`55P03` lock_not_available, `57014` query_canceled),
/// because the SQLSTATE does not reach us: diesel-async 0.9 maps only eight
/// SQLSTATEs to a [`DatabaseErrorKind`] (unique, foreign key, restrict,
/// exclusion, not-null and check violations, serialization failure,
/// read-only transaction) and hands every other one over as `Unknown`,
/// wrapping the server's error in a private type that implements only
/// diesel's `DatabaseErrorInformation` (message, details, hint, table,
/// column, constraint, position; no code, and no way to downcast). The
/// texts are PostgreSQL's English ones: the embedded cluster is made with
/// `initdb --locale=C`, which writes `lc_messages = 'C'` into its
/// `postgresql.conf`; a server named by `DATABASE_URL` must send its
/// messages in English (`lc_messages = 'C'` or an English locale) for
/// these two to be recognised, and otherwise they count as internal errors.
impl From<DieselError> for CrmError {
    fn from(err: DieselError) -> Self {
        match &err {
            DieselError::NotFound => CrmError::NotFound {
                object: "record".into(),
                id: String::new(),
            },
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                CrmError::Conflict("a record with the same unique value already exists".into())
            }
            DieselError::DatabaseError(_, info) if info.message().contains("lock timeout") => CrmError::Busy(
                "the tables are busy (another change or a long query holds them): nothing changed, try again".into(),
            ),
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)
                if info.message().contains("statement timeout") =>
            {
                CrmError::Timeout(
                    "the query ran longer than the server's statement timeout; narrow the filter or ask for less"
                        .into(),
                )
            }
            DieselError::DatabaseError(
                DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection,
                _,
            )
            | DieselError::BrokenTransactionManager
            | DieselError::RollbackErrorOnCommit { .. } => CrmError::unavailable(&err),
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) if is_server_going_away(info.message()) => {
                CrmError::unavailable(&err)
            }
            _ => CrmError::internal(err),
        }
    }
}

/// PostgreSQL's words (SQLSTATE class 57P, read by their text as the
/// timeouts above are) for a server that is stopping, crashed or not yet
/// back: the connection is lost, not the statement wrong. Every "terminating
/// connection …" (administrator command, crash of another server process,
/// unexpected postmaster exit …) ends the session, whatever it ran.
fn is_server_going_away(message: &str) -> bool {
    message.starts_with("terminating connection") || message.starts_with("the database system is ")
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for CrmError {
    /// A connection the pool could not open, or not hand out in time, is
    /// the database being out of reach: `UNAVAILABLE`. A pool closed or
    /// misbuilt is the server's own fault.
    fn from(err: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        use deadpool::managed::PoolError;
        use diesel_async::pooled_connection::PoolError as Backend;
        match err {
            PoolError::Timeout(_) | PoolError::Backend(Backend::ConnectionError(_)) => {
                CrmError::unavailable(format_args!("database pool: {err}"))
            }
            PoolError::Backend(Backend::QueryError(err)) => err.into(),
            _ => CrmError::internal(format_args!("database pool: {err}")),
        }
    }
}

//! Why the database could not be started, reached or migrated.
//!
//! These are the failures of a command or of a server starting up, told
//! to an operator; a request's database failures are [`crate::CrmError`]s.
//! Each message is the whole story at its level: what was being done
//! ("creating database crm", "writing …/pg_hba.conf"), with the cause as
//! the error's `source`, so `{:#}` prints both.

use std::path::PathBuf;
use std::process::ExitStatus;

use super::embedded::MISSING_BINARIES;

/// A failure starting, connecting to or migrating the database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No PostgreSQL server binaries where we looked.
    #[error("{}", MISSING_BINARIES)]
    MissingBinaries,
    /// `PG_BIN` names a folder without `initdb` and `postgres`.
    #[error("PG_BIN={} holds no initdb and postgres. {}", .0.display(), MISSING_BINARIES)]
    EmptyPgBin(PathBuf),
    /// A PostgreSQL client program is neither beside the server binaries
    /// nor on `PATH`.
    #[error(
        "the PostgreSQL program {0} was not found beside the server binaries or on PATH: install \
         the PostgreSQL client programs (e.g. `apt-get install postgresql-client`) or point PG_BIN at them"
    )]
    MissingTool(String),
    /// We are root and there is no account to run PostgreSQL as.
    #[error("running as root, and no unprivileged user (postgres or nobody) exists to run PostgreSQL as")]
    NoUnprivilegedUser,
    /// A cluster runs in the data folder, but not on a Unix socket.
    #[error(
        "PostgreSQL (pid {pid}) runs in {} without a Unix socket, the only way this program \
         connects to it: stop it and run the command again",
        .pgdata.display()
    )]
    NoSocket { pid: i32, pgdata: PathBuf },
    /// The socket's path would be longer than the kernel takes.
    #[error(
        "the PostgreSQL socket {} would be {length} bytes long, more than the {max} \
         the system allows: choose a --data-dir with a shorter path",
        .socket.display()
    )]
    SocketPathTooLong { socket: PathBuf, length: usize, max: usize },
    /// The unprivileged PostgreSQL user cannot walk down to the cluster.
    #[error(
        "PostgreSQL runs as an unprivileged user when the server runs as root, and that user \
         cannot enter {} (mode {mode:o}), which holds the cluster {}. Choose another --data-dir \
         (e.g. /var/lib/crm) or `chmod o+x {}`",
        .blocked.display(),
        .pgdata.display(),
        .blocked.display()
    )]
    Unreachable {
        blocked: PathBuf,
        mode: u32,
        pgdata: PathBuf,
    },
    /// `initdb` ran and failed; `output` is what it printed.
    #[error("initdb failed ({status}):\n{output}")]
    Initdb { status: ExitStatus, output: String },
    /// The postgres process ended before accepting connections; `log_tail`
    /// is the end of its log.
    #[error("PostgreSQL exited during start-up ({status}):\n{log_tail}")]
    ExitedDuringStart { status: ExitStatus, log_tail: String },
    /// The cluster did not accept connections in time.
    #[error("PostgreSQL in {} did not accept connections within 60 s", .0.display())]
    NotReady(PathBuf),
    /// Another `crm serve` holds the data folder (`<data-dir>/serve.lock`).
    #[error(
        "another crm serve{} is already serving the data folder {}: stop it first, or give this \
         server its own --data-dir",
        .pid.map(|pid| format!(" (pid {pid})")).unwrap_or_default(),
        .data_dir.display()
    )]
    AlreadyServed { data_dir: PathBuf, pid: Option<u32> },
    /// A file, folder or process operation failed; `doing` says which.
    #[error("{doing}")]
    Io {
        doing: String,
        #[source]
        source: std::io::Error,
    },
    /// An operating-system call failed on the way to one of those.
    #[error(transparent)]
    Os(#[from] std::io::Error),
    /// The connection pool could not be built.
    #[error("building the connection pool")]
    Pool(#[source] deadpool::managed::BuildError),
    /// The server refused or dropped a connection.
    #[error(transparent)]
    Connect(#[from] diesel::ConnectionError),
    /// The connection for the migrations could not be opened.
    #[error("connecting to run migrations")]
    MigrationConnection(#[source] diesel::ConnectionError),
    /// A statement failed.
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    /// `CREATE DATABASE` failed.
    #[error("creating database {name}")]
    CreateDatabase {
        name: String,
        #[source]
        source: diesel::result::Error,
    },
    /// A migration of `schema` failed.
    #[error("migrating schema {schema}: {cause}")]
    Migration {
        schema: String,
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The thread running the migrations panicked or was cancelled.
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
}

/// Says what was being done when an I/O operation failed, as
/// [`Error::Io`].
pub(super) trait IoContext<T> {
    /// The error names `doing`, computed only on failure.
    fn with_context(self, doing: impl FnOnce() -> String) -> Result<T, Error>;

    /// The error names `doing`.
    fn context(self, doing: &str) -> Result<T, Error>
    where
        Self: Sized,
    {
        self.with_context(|| doing.to_owned())
    }
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn with_context(self, doing: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error::Io { doing: doing(), source })
    }
}

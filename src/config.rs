//! One `Config` for the server, filled from command-line flags and
//! environment variables (see `main.rs` and README "Configuration").

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the server needs to know to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the HTTP server binds to.
    pub bind: IpAddr,
    /// Port of the HTTP server; 0 picks a free one.
    pub port: u16,
    /// The one folder holding everything the server keeps locally
    /// (the embedded cluster under `pgdata/`, its log, later tokens).
    pub data_dir: PathBuf,
    /// An external PostgreSQL server; when unset the embedded cluster is used.
    pub database_url: Option<String>,
    /// Streaming replicas of the database: read-only operations may run
    /// there (see `db::replicas`).
    pub replica_urls: Vec<String>,
    /// How far behind the primary a replica may be and still take reads.
    pub replica_max_lag: Duration,
    /// Maximum connections in the pool.
    pub pool_size: usize,
    /// Postgres `statement_timeout` applied to every pooled connection.
    pub statement_timeout: Duration,
    /// How long a metadata change's DDL waits for a record table other
    /// work holds before it gives up and retries.
    pub metadata_lock_timeout: Duration,
    /// Largest accepted request body.
    pub body_limit: usize,
    /// Maximum depth of a GraphQL query.
    pub max_depth: usize,
    /// Most fields a query may resolve, page sizes multiplied through
    /// (`accounts(first: 20) { nodes { name } }` costs 41).
    pub max_complexity: usize,
    /// Whether clients may ask for the schema (`__schema`, `__type`): on
    /// for playgrounds and code generators, off to hide the API's shape.
    pub introspection: bool,
    /// Origins browsers may call the API from (`https://app.example.com`);
    /// none by default: only same-origin pages such as the playground.
    pub cors_origins: Vec<String>,
    /// Requests per second one API token may make (twice that in a burst),
    /// counted once its secret is verified; 0 turns the limit off.
    pub rate_limit: u32,
    /// Failed authentications (missing, unknown or wrong tokens) one client
    /// address may make per minute, all at once or spread out; past it
    /// they get 429 instead of 401. 0 turns the limit off.
    pub auth_failure_limit: u32,
    /// How long a client may take to send a request's line and headers,
    /// from its first byte (or from connecting, for a connection's first
    /// request); past it the connection is closed.
    pub header_timeout: Duration,
    /// How long a client may take to send a request's whole body, from the
    /// end of its headers; past it the request gets 408 `TIMEOUT`.
    pub body_timeout: Duration,
    /// How long a request may take from its headers to its response, the
    /// body included; past it the request gets 503 `TIMEOUT`.
    pub request_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request, or a
    /// client may leave a response unread; past it the connection is closed.
    pub idle_timeout: Duration,
    /// On SIGTERM/SIGINT, how long requests in flight may take to finish
    /// before the server stops anyway (cutting them off).
    pub shutdown_timeout: Duration,
    /// Connections open at once; more wait (in the listen backlog) until
    /// one closes. Kept below the process's open-file limit.
    pub max_connections: usize,
    /// The address clients reach the server at (`https://crm.example.com`),
    /// for URLs the API gives out (sandbox endpoints); when unset, the
    /// address each request was sent to.
    pub public_url: Option<String>,
    /// How often `serve` runs the retention job (see `retention`); zero
    /// turns it off.
    pub retention_interval: Duration,
    /// How often `serve` rescores every lead (see `leads::decay`); zero
    /// turns it off.
    pub rescore_interval: Duration,
    /// How often automation's worker looks for due work (timers, schedules,
    /// emails to send) when nothing wakes it sooner; zero turns it off.
    pub automation_interval: Duration,
    /// Where automation's emails are sent; none: they wait in the outbox.
    pub smtp: Option<SmtpConfig>,
    /// The address automation's emails come from.
    pub smtp_from: String,
    /// How long the first retry of a failed webhook delivery waits (later
    /// ones wait longer: see `webhooks::delivery`).
    pub webhook_retry_base: Duration,
    /// How long a webhook receiver has to answer an attempt.
    pub webhook_timeout: Duration,
    /// GraphQL subscription connections one token may hold open at once.
    pub subscription_connections_per_token: usize,
    /// Whether webhooks may be posted to this machine and private networks.
    pub webhook_allow_private: bool,
}

/// The SMTP server automation sends through: the server's setting, never
/// a workspace's (sandboxes have none to copy).
#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for SmtpConfig {
    /// Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SmtpSecurity {
    /// Plain text (a relay on this machine or a test server).
    None,
    /// STARTTLS after connecting (port 587).
    #[value(name = "starttls")]
    StartTls,
    /// TLS from the start (port 465).
    Tls,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 8080,
            data_dir: PathBuf::from(".crm"),
            database_url: None,
            pool_size: 16,
            statement_timeout: Duration::from_secs(30),
            metadata_lock_timeout: Duration::from_secs(2),
            body_limit: 2 * 1024 * 1024,
            max_depth: 12,
            max_complexity: 1_000_000,
            introspection: true,
            cors_origins: Vec::new(),
            rate_limit: 200,
            auth_failure_limit: 30,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(10),
            max_connections: 2048,
            public_url: None,
            retention_interval: Duration::from_secs(3600),
            rescore_interval: Duration::from_secs(86_400),
            replica_urls: Vec::new(),
            replica_max_lag: Duration::from_secs(1),
            automation_interval: Duration::from_secs(2),
            smtp: None,
            smtp_from: "crm@localhost".to_owned(),
            webhook_retry_base: Duration::from_secs(5),
            webhook_timeout: Duration::from_secs(10),
            subscription_connections_per_token: 20,
            webhook_allow_private: false,
        }
    }
}

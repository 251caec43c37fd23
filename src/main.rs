//! `crm`: the CRM server and its admin commands.
//!
//! This file is the command line a user sees: every command, flag, default
//! and environment variable, and the help text clap prints from them. What
//! a command does lives in [`cli`], one module per command family, so a
//! change to a flag and a change to a command's work land in different files.

mod cli;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use crm::auth::Role;

/// Responses are built from many small allocations freed on other threads;
/// mimalloc handles that pattern far better than glibc's allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "crm",
    version,
    about = "A GraphQL CRM server with custom fields and sandboxes, over PostgreSQL"
)]
struct Cli {
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(subcommand)]
    command: Command,
}

/// Where the data lives; shared by every command.
#[derive(Args)]
struct DatabaseArgs {
    /// Folder for everything the server keeps locally (the embedded PostgreSQL cluster, its log).
    #[arg(long, global = true, env = "CRM_DATA_DIR", default_value = ".crm")]
    data_dir: PathBuf,
    /// Use this PostgreSQL server instead of the embedded one (postgres://user:pass@host:port/db).
    #[arg(long, global = true, env = "DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Start the GraphQL server (migrating the database first).
    Serve(ServeArgs),
    /// Apply pending migrations to the system schema and every workspace.
    Migrate,
    /// Print or inspect the GraphQL schema.
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
    /// Load data into an empty production workspace.
    Seed {
        /// A small, realistic demo data set (accounts, contacts, opportunities).
        #[arg(long, conflicts_with = "bench", required_unless_present = "bench")]
        demo: bool,
        /// The benchmark data set: 20,000 accounts, 100,000 contacts, 50,000 opportunities, 200,000 activities.
        #[arg(long)]
        bench: bool,
        /// With --bench: this many times the benchmark data set (1 to 100).
        #[arg(long, default_value_t = 1, requires = "bench")]
        scale: u32,
    },
    /// Create, list and revoke API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Create, list, refresh, diff, promote, export and delete sandboxes: copies of production with their own endpoint.
    Sandbox {
        #[command(subcommand)]
        command: SandboxCommand,
    },
    /// Check or apply a changeset file (from `crm sandbox export`) to production or a sandbox.
    Changeset {
        #[command(subcommand)]
        command: ChangesetCommand,
    },
    /// List and revert promotions.
    Promotion {
        #[command(subcommand)]
        command: PromotionCommand,
    },
    /// Sales reports on a terminal: the forecast and a pipeline's funnel.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Write a consistent backup of the whole installation (system, production, sandboxes):
    /// a pg_dump archive and its manifest, FILE.manifest.json, beside it.
    Backup {
        /// The dump file (default: crm-backup-<UTC time>.dump in the current folder).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Restore a backup into an empty data folder or empty database, or check it with --verify.
    Restore {
        /// The dump file written by `crm backup` (its manifest beside it).
        file: PathBuf,
        /// Restore into a scratch database on the same server, compare it with the manifest
        /// and read it, then drop it: the installation's data is not touched.
        #[arg(long)]
        verify: bool,
    },
    /// Export an object's records as CSV (`crm export contacts`), or, with `--format ndjson` and no
    /// object, every record and all metadata of a workspace, readable without PostgreSQL.
    Export(ExportArgs),
    /// Import a CSV file into an object: checked row by row, loaded by COPY, all or nothing.
    Import(ImportArgs),
    /// Remove what the workspaces' retention settings no longer keep.
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// Leads: scoring.
    Leads {
        #[command(subcommand)]
        command: LeadsCommand,
    },
    /// Internal: run the embedded PostgreSQL (the program after `--`) while commands use it.
    #[command(hide = true)]
    KeepCluster {
        /// The OS user (uid:gid) to run it as.
        #[arg(long, value_parser = parse_run_as)]
        run_as: Option<(u32, u32)>,
        /// The postgres program and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<std::ffi::OsString>,
    },
}

/// The formats of `crm export`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExportFormat {
    /// One object's records as CSV (the default with an object).
    Csv,
    /// Newline-delimited JSON of a whole workspace (metadata first, then records).
    Ndjson,
    /// Contacts as vCards (`--vcard-version 3.0` or `4.0`).
    Vcard,
}

#[derive(clap::Args)]
struct ExportArgs {
    /// The object to export as CSV: `Contact` or `contacts`.
    object: Option<String>,
    /// csv (with an object) or ndjson (a whole workspace, without one).
    #[arg(long, value_enum)]
    format: Option<ExportFormat>,
    /// A file, or for ndjson an existing folder for one <workspace>.ndjson per workspace (default: standard output).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// The workspace: production or a sandbox's name; for ndjson repeat the flag for several.
    #[arg(long = "workspace", default_value = "production")]
    workspaces: Vec<String>,
    /// CSV: only the records this filter holds for, in JSON as the list query takes it:
    /// '{"lastName": {"eq": "Lee"}}'.
    #[arg(long)]
    filter: Option<String>,
    /// CSV: the order, in JSON as the list query takes it: '[{"field": "LAST_NAME"}]'.
    #[arg(long)]
    order_by: Option<String>,
    /// CSV: the fields, comma-separated API names (default: id and every writable field).
    #[arg(long)]
    fields: Option<String>,
    /// CSV: lookups as `ids` (accountId, read back by an import) or `names` (account).
    #[arg(long)]
    lookups: Option<String>,
    /// CSV: export as this user (their record visibility); default: the first admin.
    #[arg(long)]
    user: Option<String>,
    /// vcard: the version written, 3.0 or 4.0.
    #[arg(long, default_value = "4.0")]
    vcard_version: String,
}

#[derive(clap::Args)]
struct ImportArgs {
    /// The object to import into: `Contact` or `contacts`.
    object: String,
    /// The CSV file (UTF-8 with or without BOM, or Latin-1; `,` `;` tab or `|` separated).
    file: PathBuf,
    /// create (every row a new record; the default), upsert (change the matching record, else create) or update.
    #[arg(long)]
    mode: Option<String>,
    /// A saved import mapping (an ImportMapping's name): its columns, defaults, formats and mode, under what
    /// the other flags say.
    #[arg(long)]
    saved_mapping: Option<String>,
    /// The field rows find records by (upsert, update): id, externalId or another unique field
    /// (default: id when a column fills it, else externalId).
    #[arg(long)]
    match_on: Option<String>,
    /// HEADER=FIELD: the column HEADER fills FIELD (an API name); repeatable. Other columns are
    /// guessed from the fields' names and labels.
    #[arg(long = "map")]
    map: Vec<String>,
    /// A column to leave out; repeatable.
    #[arg(long)]
    ignore: Vec<String>,
    /// FIELD=VALUE: the value of FIELD where the file leaves it empty or has no column; repeatable.
    #[arg(long = "default")]
    default: Vec<String>,
    /// The dates' format when not YYYY-MM-DD, as chrono writes it: %d.%m.%Y, %m/%d/%Y.
    #[arg(long)]
    date_format: Option<String>,
    /// Numbers are written 1.234,56.
    #[arg(long)]
    decimal_comma: bool,
    /// The column separator (default: guessed from the header).
    #[arg(long)]
    delimiter: Option<String>,
    /// utf8 or latin1 (default: guessed from the start of the file).
    #[arg(long)]
    encoding: Option<String>,
    /// skip (leave bad rows out, import the rest; the default) or abort (import nothing if a row fails).
    #[arg(long)]
    on_error: Option<String>,
    /// Check the whole file, write nothing.
    #[arg(long)]
    dry_run: bool,
    /// production or a sandbox's name.
    #[arg(long, default_value = "production")]
    workspace: String,
    /// Import as this user (the records' owner unless the file names one); default: the first admin.
    #[arg(long)]
    user: Option<String>,
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// Run the retention job now: remove deleted records and audit log entries older than each workspace's
    /// deletedRecordRetentionDays and auditRetentionDays, and print what went.
    Run {
        /// Only this workspace (`production` or a sandbox's name); default: every workspace.
        #[arg(long)]
        workspace: Option<String>,
    },
}

#[derive(Subcommand)]
enum LeadsCommand {
    /// Rescore every lead by its workspace's scoring rules now (decay included), as the nightly job does,
    /// and print how many changed.
    Rescore {
        /// Only this workspace (`production` or a sandbox's name); default: every workspace.
        #[arg(long)]
        workspace: Option<String>,
    },
}

#[derive(Subcommand)]
enum ChangesetCommand {
    /// Apply a changeset file with the same checks as a promotion, all or nothing.
    Apply {
        file: PathBuf,
        /// `production` or a sandbox's name.
        #[arg(long)]
        to: String,
        /// Check everything against the target's data, then roll back.
        #[arg(long)]
        dry_run: bool,
        /// Apply changes that break existing GraphQL clients.
        #[arg(long)]
        allow_breaking: bool,
        /// Apply type changes that lose information of existing values (a revert brings them back).
        #[arg(long)]
        allow_lossy: bool,
    },
    /// Print what applying a changeset file would do (a dry run).
    Diff {
        file: PathBuf,
        /// `production` or a sandbox's name.
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Per close period: deals, pipeline, weighted, commit, best case and closed won.
    Forecast {
        #[command(flatten)]
        periods: Periods,
        /// Split each period by owner, pipeline or forecast category.
        #[arg(long, value_enum)]
        by: Option<ForecastBy>,
    },
    /// Per stage: deals that entered it, moved on, were lost, are won; days in stage; the win rate.
    Funnel {
        /// The pipeline's name (default: the default pipeline).
        #[arg(long)]
        pipeline: Option<String>,
        /// Stage entries from this day (default: 91 days before --to).
        #[arg(long)]
        from: Option<chrono::NaiveDate>,
        /// Stage entries before this day (default: tomorrow).
        #[arg(long)]
        to: Option<chrono::NaiveDate>,
    },
    /// Per period: customers at its start, gained, lost, at its end, and the churn rate.
    Churn {
        #[command(flatten)]
        periods: Periods,
    },
}

/// The periods a report covers: their length and the days they span.
#[derive(clap::Args, Clone, Copy)]
struct Periods {
    #[arg(long, value_enum, default_value_t = ForecastPeriod::Quarter)]
    period: ForecastPeriod,
    /// The first day (default: 1 January this year).
    #[arg(long)]
    from: Option<chrono::NaiveDate>,
    /// The day after the last (default: a year after --from).
    #[arg(long)]
    to: Option<chrono::NaiveDate>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ForecastPeriod {
    Month,
    Quarter,
    Year,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ForecastBy {
    Owner,
    Pipeline,
    Category,
}

#[derive(Subcommand)]
enum PromotionCommand {
    /// Promotions, newest first.
    List {
        /// How many.
        #[arg(long, default_value_t = 50)]
        first: i32,
    },
    /// Undo a promotion by applying its stored inverse.
    Revert {
        id: uuid::Uuid,
        /// Check, then roll back.
        #[arg(long)]
        dry_run: bool,
        /// Apply type changes that lose information of existing values (a revert brings them back).
        #[arg(long)]
        allow_lossy: bool,
    },
}

#[derive(Subcommand)]
enum SandboxCommand {
    /// Make a sandbox from production as it is now.
    Create {
        /// 1 to 40 lowercase letters, digits and underscores.
        name: String,
        #[command(flatten)]
        filling: FillingArgs,
        /// What the sandbox is for.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List the sandboxes.
    List,
    /// Make a sandbox again from production, discarding its changes.
    Refresh {
        name: String,
        /// How to fill it now (default: as before).
        #[arg(long, value_parser = parse_mode)]
        mode: Option<crm::sandbox::Mode>,
        /// Records per object of a sample (default: as before, or 1000).
        #[arg(long)]
        sample_size: Option<i32>,
        /// Replace personal data with fake values (default: as before).
        #[arg(long, overrides_with = "no_mask")]
        mask: bool,
        /// Copy personal data as it is.
        #[arg(long)]
        no_mask: bool,
    },
    /// Delete a sandbox and everything in it.
    Delete { name: String },
    /// What promoting a sandbox would change in production: conflicts, API impact, data it refuses.
    Diff { name: String },
    /// Apply a sandbox's changes to production in one transaction, all or nothing.
    Promote {
        name: String,
        /// Check everything against production's data, then roll back.
        #[arg(long)]
        dry_run: bool,
        /// Apply changes that break existing GraphQL clients.
        #[arg(long)]
        allow_breaking: bool,
        /// Apply type changes that lose information of existing values (a revert brings them back).
        #[arg(long)]
        allow_lossy: bool,
    },
    /// Write a sandbox's changes as a changeset file (sorted JSON, for review in git).
    Export {
        name: String,
        /// The file (default: standard output), e.g. sandboxes/NAME.changeset.json.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(Args)]
struct FillingArgs {
    /// What to copy: metadata-only (customizations and pipelines), sample or full.
    #[arg(long, value_parser = parse_mode, default_value = "metadata-only")]
    mode: crm::sandbox::Mode,
    /// Records per object of a sample (default 1000).
    #[arg(long)]
    sample_size: Option<i32>,
    /// Replace personal data (names, emails, phones, addresses, notes) with fake values.
    #[arg(long)]
    mask: bool,
}

fn parse_mode(text: &str) -> Result<crm::sandbox::Mode, String> {
    crm::sandbox::Mode::parse(&text.replace('-', "_").to_ascii_uppercase())
        .ok_or_else(|| "expected metadata-only, sample or full".to_owned())
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token for a user; prints it once.
    Create {
        /// The user's email.
        #[arg(long)]
        user: String,
        /// What the token may do: ADMIN, SALES, SUPPORT or READ_ONLY.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Lifetime, e.g. 30d, 12h or 45m (default: until revoked).
        #[arg(long, value_parser = parse_lifetime)]
        expires: Option<chrono::Duration>,
        /// What the token is for, shown in `crm token list`.
        #[arg(long, default_value = "command line")]
        name: String,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id; requests with it fail from then on.
    Revoke {
        /// The token's id (from `crm token list`).
        id: uuid::Uuid,
    },
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| "expected ADMIN, SALES, SUPPORT or READ_ONLY".to_owned())
}

fn parse_run_as(text: &str) -> Result<(u32, u32), String> {
    text.split_once(':')
        .and_then(|(uid, gid)| Some((uid.parse().ok()?, gid.parse().ok()?)))
        .ok_or_else(|| "expected uid:gid".to_owned())
}

fn parse_lifetime(text: &str) -> Result<chrono::Duration, String> {
    crm::auth::parse_lifetime(text).ok_or_else(|| "expected a lifetime such as 30d, 12h or 45m".to_owned())
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// Print the production schema (SDL, no customizations) to stdout.
    Print,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CRM_BIND", default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "CRM_PORT", default_value_t = 8080)]
    port: u16,
    /// Maximum pooled database connections.
    #[arg(long, env = "CRM_POOL_SIZE", default_value_t = 16)]
    pool_size: usize,
    /// Longest a single SQL statement may run, in milliseconds.
    #[arg(long, env = "CRM_STATEMENT_TIMEOUT_MS", default_value_t = 30_000)]
    statement_timeout_ms: u64,
    /// Longest a custom field or object change (or a promotion) waits for a record table other work holds, in
    /// milliseconds; reads and writes queue behind it at most that long. It then retries (3 times).
    #[arg(long, env = "CRM_METADATA_LOCK_TIMEOUT_MS", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..))]
    metadata_lock_timeout_ms: u64,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "CRM_BODY_LIMIT", default_value_t = 2 * 1024 * 1024)]
    body_limit: usize,
    /// Deepest accepted GraphQL query.
    #[arg(long, env = "CRM_MAX_DEPTH", default_value_t = 12)]
    max_depth: usize,
    /// Most fields a query may resolve, page sizes multiplied through.
    #[arg(long, env = "CRM_MAX_COMPLEXITY", default_value_t = 1_000_000)]
    max_complexity: usize,
    /// Answer schema introspection (`__schema`, `__type`): `true` or `false`.
    #[arg(long, env = "CRM_INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set)]
    introspection: bool,
    /// An origin browsers may call the API from; repeat the flag, or give a
    /// comma-separated list in the variable. None by default.
    #[arg(long = "cors-origin", env = "CRM_CORS_ORIGINS", value_delimiter = ',')]
    cors_origins: Vec<String>,
    /// Requests per second per API token (bursts of twice that), counted once the token is verified; 0 is no limit.
    #[arg(long, env = "CRM_RATE_LIMIT", default_value_t = 200)]
    rate_limit: u32,
    /// Failed authentications per minute per client address (missing, unknown or wrong tokens); past it they get 429; 0 is no limit.
    #[arg(long, env = "CRM_AUTH_FAILURE_LIMIT", default_value_t = 30)]
    auth_failure_limit: u32,
    /// Longest a client may take to send a request's line and headers, in milliseconds.
    #[arg(long, env = "CRM_HEADER_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout_ms: u64,
    /// Longest a client may take to send a request's body, in milliseconds (then 408 TIMEOUT).
    #[arg(long, env = "CRM_BODY_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    body_timeout_ms: u64,
    /// Longest a request may take to be answered, body included, in milliseconds (then 503 TIMEOUT).
    #[arg(long, env = "CRM_REQUEST_TIMEOUT_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..))]
    request_timeout_ms: u64,
    /// Longest a kept-alive connection may wait for its next request, or leave a response unread, in milliseconds.
    #[arg(long, env = "CRM_IDLE_TIMEOUT_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout_ms: u64,
    /// On SIGTERM or Ctrl-C, longest the requests in flight may take to finish, in milliseconds; then the server stops anyway.
    #[arg(long, env = "CRM_SHUTDOWN_TIMEOUT_MS", default_value_t = 10_000)]
    shutdown_timeout_ms: u64,
    /// Connections open at once; more wait until one closes (kept below the open-file limit).
    #[arg(long, env = "CRM_MAX_CONNECTIONS", default_value_t = 2048, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// The address clients reach the server at (https://crm.example.com), for
    /// the sandbox endpoint URLs the API gives out; default: the request's Host.
    #[arg(long, env = "CRM_PUBLIC_URL")]
    public_url: Option<String>,
    /// A streaming replica of the database (repeatable; the environment variable takes a comma-separated
    /// list): read-only operations run there while it is healthy and caught up, mutations on the primary.
    #[arg(long = "replica-url", env = "CRM_REPLICA_URLS", value_delimiter = ',')]
    replica_urls: Vec<String>,
    /// How far (in time) a replica may lag behind the primary and still take reads.
    #[arg(long, env = "CRM_REPLICA_MAX_LAG_MS", default_value_t = 1000)]
    replica_max_lag_ms: u64,
    /// Seconds between runs of the retention job (removing deleted records and audit entries past the
    /// workspaces' retention settings); it also runs shortly after start. 0 turns it off.
    #[arg(long, env = "CRM_RETENTION_INTERVAL_S", default_value_t = 3600)]
    retention_interval_s: u64,
    /// Seconds between runs of the lead scoring job (every lead rescored by its rules, so scores decay);
    /// it also runs a minute after start. 0 turns it off.
    #[arg(long, env = "CRM_RESCORE_INTERVAL_S", default_value_t = 86400)]
    rescore_interval_s: u64,
    /// Milliseconds between looks for automation work that is due (timers, schedules, emails to retry);
    /// emails are also sent as soon as their write commits. 0 turns automation's worker off.
    #[arg(long, env = "CRM_AUTOMATION_INTERVAL_MS", default_value_t = 2000)]
    automation_interval_ms: u64,
    /// The SMTP server automation's emails go through; without it they wait in the outbox (`emails`).
    #[arg(long, env = "CRM_SMTP_HOST")]
    smtp_host: Option<String>,
    /// Its port (default: 25 with --smtp-security none, 587 with starttls, 465 with tls).
    #[arg(long, env = "CRM_SMTP_PORT")]
    smtp_port: Option<u16>,
    /// How the connection is protected.
    #[arg(long, env = "CRM_SMTP_SECURITY", value_enum, default_value = "starttls")]
    smtp_security: crm::config::SmtpSecurity,
    /// The user to authenticate as (with --smtp-password).
    #[arg(long, env = "CRM_SMTP_USER")]
    smtp_user: Option<String>,
    /// The password (prefer the environment variable: flags show in `ps`).
    #[arg(long, env = "CRM_SMTP_PASSWORD", hide_env_values = true)]
    smtp_password: Option<String>,
    /// The address emails come from.
    #[arg(long, env = "CRM_SMTP_FROM", default_value = "crm@localhost")]
    smtp_from: String,
    /// Milliseconds before the first retry of a failed webhook delivery; the later ones wait 12, 60, 180, 720,
    /// 1440, 2880, 5760 and 6480 times as long (10 tries over about 24 hours at the default: 5 s, 1 min,
    /// 5 min, 15 min, 1 h, 2 h, 4 h, 8 h, 9 h), give or take a fifth; then the delivery is a dead letter
    /// (`redeliverWebhook` sends it again).
    #[arg(long, env = "CRM_WEBHOOK_RETRY_BASE_MS", default_value_t = 5000)]
    webhook_retry_base_ms: u64,
    /// Milliseconds a webhook receiver has to answer a delivery before the attempt counts as failed.
    #[arg(long, env = "CRM_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000)]
    webhook_timeout_ms: u64,
    /// GraphQL subscription (WebSocket) connections one API token may hold open at once on this server.
    #[arg(long, env = "CRM_SUBSCRIPTION_CONNECTIONS_PER_TOKEN", default_value_t = 20)]
    subscription_connections_per_token: usize,
    /// Lets webhooks be posted to this machine and private networks (10.0.0.0/8, 192.168.0.0/16, 127.0.0.1,
    /// 169.254.0.0/16 …): receivers inside the company network. Off, such URLs fail their deliveries.
    #[arg(long, env = "CRM_WEBHOOK_ALLOW_PRIVATE_NETWORKS")]
    webhook_allow_private_networks: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Cli::parse();
    if let Command::KeepCluster { run_as, command } = &args.command {
        // No runtime: a plain loop, and the postmaster is its only child.
        let Some((program, rest)) = command.split_first() else {
            return ExitCode::FAILURE;
        };
        return match crm::db::embedded::keeper::keep(&args.database.data_dir, *run_as, program, rest) {
            Ok(status) if status.success() => ExitCode::SUCCESS,
            Ok(status) => {
                eprintln!("crm keep-cluster: PostgreSQL ended ({status})");
                ExitCode::FAILURE
            }
            Err(err) => {
                eprintln!("crm keep-cluster: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Sends each command to its module under `cli/`; the commands that need
/// the database get it (and the embedded cluster) here, for their duration.
async fn run(Cli { database, command }: Cli) -> anyhow::Result<()> {
    let database = &database;
    match &command {
        Command::Serve(args) => cli::serve::run(cli::config(database, Some(args))).await,
        Command::Schema {
            command: SchemaCommand::Print,
        } => cli::schema::print(),
        Command::Migrate => cli::with_database(database, async |_, url| cli::migrate::run(url).await).await,
        Command::Seed { bench, scale, .. } => {
            cli::with_app(database, async |app| cli::seed::run(app, *bench, *scale).await).await
        }
        Command::Token { command } => cli::with_app(database, async |app| cli::token::run(command, app).await).await,
        Command::Sandbox { command } => {
            cli::with_app(database, async |app| cli::sandbox::run(command, app).await).await
        }
        Command::Changeset { command } => {
            cli::with_app(database, async |app| cli::changeset::run(command, app).await).await
        }
        Command::Promotion { command } => {
            cli::with_app(database, async |app| cli::promotion::run(command, app).await).await
        }
        Command::Report { command } => cli::with_app(database, async |app| cli::report::run(command, app).await).await,
        Command::Backup { output } => cli::backup::backup(database, output.as_deref()).await,
        Command::Restore { file, verify } => cli::backup::restore(database, file, *verify).await,
        Command::Export(args) => match (&args.object, args.format) {
            (None, Some(ExportFormat::Ndjson)) => {
                cli::backup::export(database, args.output.as_deref(), &args.workspaces).await
            }
            (Some(object), None | Some(ExportFormat::Csv)) => {
                cli::with_app(database, async |app| {
                    cli::transfer::export(args, object, None, app).await
                })
                .await
            }
            (Some(object), Some(ExportFormat::Vcard)) => {
                let version = Some(args.vcard_version.as_str());
                cli::with_app(database, async |app| {
                    cli::transfer::export(args, object, version, app).await
                })
                .await
            }
            (None, None | Some(ExportFormat::Csv)) => {
                anyhow::bail!("name the object to export as CSV, or export a workspace with --format ndjson")
            }
            (None, Some(ExportFormat::Vcard)) => anyhow::bail!("name the object to export as vCards: contacts"),
            (Some(_), Some(ExportFormat::Ndjson)) => {
                anyhow::bail!("--format ndjson exports whole workspaces: leave out the object")
            }
        },
        Command::Import(args) => cli::with_app(database, async |app| cli::transfer::import(args, app).await).await,
        Command::Leads { command } => cli::with_app(database, async |app| cli::leads::run(command, app).await).await,
        Command::Retention { command } => {
            cli::with_app(database, async |app| cli::retention::run(command, app).await).await
        }
        Command::KeepCluster { .. } => anyhow::bail!("keep-cluster runs before the async runtime starts"),
    }
}

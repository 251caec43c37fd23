//! `crm`: the CRM server and its admin commands.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use crm::app::{self, App, DatabaseServer};
use crm::audit::Trail;
use crm::auth::Role;
use crm::Config;

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
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "CRM_BODY_LIMIT", default_value_t = 2 * 1024 * 1024)]
    body_limit: usize,
    /// Deepest accepted GraphQL query.
    #[arg(long, env = "CRM_MAX_DEPTH", default_value_t = 12)]
    max_depth: usize,
    /// Most fields a query may resolve, page sizes multiplied through.
    #[arg(long, env = "CRM_MAX_COMPLEXITY", default_value_t = 250_000)]
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
    /// Connections open at once; more wait until one closes (kept below the open-file limit).
    #[arg(long, env = "CRM_MAX_CONNECTIONS", default_value_t = 2048, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// The address clients reach the server at (https://crm.example.com), for
    /// the sandbox endpoint URLs the API gives out; default: the request's Host.
    #[arg(long, env = "CRM_PUBLIC_URL")]
    public_url: Option<String>,
}

fn config(database: &DatabaseArgs, serve: Option<&ServeArgs>) -> Config {
    let mut config = Config {
        data_dir: database.data_dir.clone(),
        database_url: database.database_url.clone(),
        ..Config::default()
    };
    if let Some(serve) = serve {
        config.bind = serve.bind;
        config.port = serve.port;
        config.pool_size = serve.pool_size;
        config.statement_timeout = Duration::from_millis(serve.statement_timeout_ms);
        config.body_limit = serve.body_limit;
        config.max_depth = serve.max_depth;
        config.max_complexity = serve.max_complexity;
        config.introspection = serve.introspection;
        config.cors_origins = serve.cors_origins.clone();
        config.rate_limit = serve.rate_limit;
        config.auth_failure_limit = serve.auth_failure_limit;
        config.header_timeout = Duration::from_millis(serve.header_timeout_ms);
        config.body_timeout = Duration::from_millis(serve.body_timeout_ms);
        config.request_timeout = Duration::from_millis(serve.request_timeout_ms);
        config.idle_timeout = Duration::from_millis(serve.idle_timeout_ms);
        config.max_connections = usize::try_from(serve.max_connections).unwrap_or(usize::MAX);
        config.public_url = serve.public_url.clone();
    }
    config
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Serve(args) => app::serve(config(&cli.database, Some(args))).await,
        Command::Schema {
            command: SchemaCommand::Print,
        } => {
            print!("{}", crm::graphql::production_sdl().context("building the schema")?);
            Ok(())
        }
        Command::Migrate => {
            with_database(config(&cli.database, None), |config, url| async move {
                let _ = config;
                for applied in crm::db::migrate::migrate_all(&url).await? {
                    if applied.versions.is_empty() {
                        println!("{}: up to date", applied.schema);
                    }
                    for version in applied.versions {
                        println!("{}: applied {version}", applied.schema);
                    }
                }
                Ok(())
            })
            .await
        }
        Command::Token { command } => {
            with_app(&cli.database, async |app| {
                let mut conn = app.db.conn().await?;
                token_command(command, &mut conn).await
            })
            .await
        }
        Command::Sandbox { command } => with_app(&cli.database, async |app| sandbox_command(command, app).await).await,
        Command::Changeset { command } => {
            with_app(&cli.database, async |app| changeset_command(command, app).await).await
        }
        Command::Promotion { command } => {
            with_app(&cli.database, async |app| promotion_command(command, app).await).await
        }
        Command::Seed { bench, .. } => {
            with_app(&cli.database, async |app| {
                let report = if *bench {
                    crm::seed::bench(app).await?
                } else {
                    crm::seed::demo(app).await?
                };
                if report.skipped {
                    println!("production already has accounts; nothing added");
                } else {
                    println!(
                        "added {} accounts, {} contacts, {} opportunities, {} activities",
                        report.accounts, report.contacts, report.opportunities, report.activities
                    );
                }
                Ok(())
            })
            .await
        }
    }
}

async fn token_command(command: &TokenCommand, conn: &mut crm::db::Conn) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            user,
            role,
            expires,
            name,
        } => {
            let expires_at = expires.map(|lifetime| chrono::Utc::now() + lifetime);
            let new = crm::auth::NewToken {
                user: crm::auth::UserRef::Email(user.clone()),
                role: Some(*role),
                name: name.clone(),
                expires_at,
            };
            let issued = crm::auth::issue(conn, &Trail::cli("production"), &new).await?;
            println!("{}", issued.token);
            let until = match issued.info.expires_at {
                Some(at) => format!("until {}", at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                None => "until revoked".to_owned(),
            };
            eprintln!(
                "token {} for {} as {}, valid {until}. It is shown only now: keep it safe.",
                issued.info.id, issued.info.user_email, issued.info.role
            );
        }
        TokenCommand::List => {
            let format = |at: Option<chrono::DateTime<chrono::Utc>>| {
                at.map(|at| at.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_else(|| "-".into())
            };
            println!(
                "{:<36}  {:<28}  {:<9}  {:<16}  {:<16}  {:<16}  name",
                "id", "user", "role", "created", "expires", "last used"
            );
            for token in crm::auth::list(conn, None).await? {
                let state = if token.revoked_at.is_some() { " (revoked)" } else { "" };
                println!(
                    "{:<36}  {:<28}  {:<9}  {:<16}  {:<16}  {:<16}  {}{state}",
                    token.id,
                    token.user_email,
                    token.role,
                    format(Some(token.created_at)),
                    format(token.expires_at),
                    format(token.last_used_at),
                    token.name
                );
            }
        }
        TokenCommand::Revoke { id } => {
            match crm::auth::revoke(conn, &Trail::cli("production"), *id).await {
                Err(crm::CrmError::NotFound { .. }) => anyhow::bail!("no live token {id} (see crm token list)"),
                other => other?,
            };
            println!("revoked {id}; servers refuse it within 5 seconds");
        }
    }
    Ok(())
}

async fn sandbox_command(command: &SandboxCommand, app: &App) -> anyhow::Result<()> {
    use crm::sandbox::{self, Filling, NewSandbox};
    let trail = Trail::cli("production");
    match command {
        SandboxCommand::Create {
            name,
            filling,
            description,
        } => {
            let filling = Filling::new(filling.mode, filling.sample_size, filling.mask, &["sample-size"])?;
            let new = NewSandbox {
                name: name.clone(),
                description: description.clone(),
                filling,
            };
            let bar = Bar::new();
            let made = sandbox::create(&app.db, &trail, &new, &bar).await;
            bar.finish();
            let made = made?;
            println!(
                "made the sandbox {} ({}) in {:.1} s, from production's metadata version {}",
                made.name,
                made.mode.as_str(),
                bar.elapsed(),
                made.base_version
            );
            print_endpoint(&made.name);
        }
        SandboxCommand::List => {
            let mut conn = app.db.conn().await?;
            println!(
                "{:<24}  {:<13}  {:>6}  {:<16}  {:>4}  {:>10}  {:>10}  description",
                "name", "mode", "masked", "made", "base", "rows", "MB"
            );
            for found in sandbox::list(&mut conn).await? {
                let size = sandbox::size(&mut conn, &found).await?;
                let made = found.refreshed_at.unwrap_or(found.created_at);
                println!(
                    "{:<24}  {:<13}  {:>6}  {:<16}  {:>4}  {:>10}  {:>10.1}  {}",
                    found.name,
                    found.mode.as_str(),
                    if found.masked { "yes" } else { "no" },
                    made.format("%Y-%m-%d %H:%M"),
                    found.base_version,
                    size.rows,
                    size.bytes as f64 / 1_048_576.0,
                    found.description
                );
            }
        }
        SandboxCommand::Refresh {
            name,
            mode,
            sample_size,
            mask,
            no_mask,
        } => {
            let current = {
                let mut conn = app.db.conn().await?;
                sandbox::find(&mut conn, name)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("there is no sandbox {name} (see crm sandbox list)"))?
            };
            let mode = mode.unwrap_or(current.mode);
            let sample_size = sample_size.or(if mode == current.mode {
                current.sample_size
            } else {
                None
            });
            let mask = if *mask || *no_mask { *mask } else { current.masked };
            let filling = Filling::new(mode, sample_size, mask, &["sample-size"])?;
            let bar = Bar::new();
            let made = sandbox::refresh(&app.db, &trail, name, &filling, &bar).await;
            bar.finish();
            let made = made?;
            println!(
                "made the sandbox {} again ({}) in {:.1} s, from production's metadata version {}",
                made.name,
                made.mode.as_str(),
                bar.elapsed(),
                made.base_version
            );
        }
        SandboxCommand::Delete { name } => {
            match sandbox::delete(&app.db, &trail, name).await {
                Err(crm::CrmError::NotFound { .. }) => {
                    anyhow::bail!("there is no sandbox {name} (see crm sandbox list)")
                }
                other => other?,
            };
            println!("deleted the sandbox {name} and everything in it");
        }
        SandboxCommand::Diff { name } => {
            let options = crm::promotion::Options {
                dry_run: true,
                ..Default::default()
            };
            promote(
                app,
                crm::promotion::Source::Sandbox(name.clone()),
                "production",
                options,
            )
            .await?;
        }
        SandboxCommand::Promote {
            name,
            dry_run,
            allow_breaking,
            allow_lossy,
        } => {
            let options = crm::promotion::Options {
                dry_run: *dry_run,
                allow_breaking: *allow_breaking,
                allow_lossy: *allow_lossy,
                ..Default::default()
            };
            promote(
                app,
                crm::promotion::Source::Sandbox(name.clone()),
                "production",
                options,
            )
            .await?;
        }
        SandboxCommand::Export { name, output } => {
            let mut conn = app.db.conn().await?;
            let file = crm::promotion::export(&mut conn, name).await.map_err(|err| match err {
                crm::CrmError::NotFound { .. } => anyhow::anyhow!("there is no sandbox {name} (see crm sandbox list)"),
                err => anyhow::anyhow!(err),
            })?;
            match output {
                Some(path) => {
                    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                    }
                    std::fs::write(path, file.to_text()).with_context(|| format!("writing {}", path.display()))?;
                    println!(
                        "wrote {} change(s) of the sandbox {name} to {}",
                        file.changes.len(),
                        path.display()
                    );
                }
                None => print!("{}", file.to_text()),
            }
        }
    }
    Ok(())
}

/// Runs a promotion, prints its report, and fails when it was refused.
async fn promote(
    app: &App,
    source: crm::promotion::Source,
    to: &str,
    options: crm::promotion::Options,
) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let trail = Trail::cli(to);
    let report = crm::promotion::run(&app.db, &trail, &source, to, &options)
        .await
        .map_err(|err| match err {
            crm::CrmError::NotFound { object, id } => anyhow::anyhow!("there is no {} {id}", object.to_lowercase()),
            err => anyhow::anyhow!(err),
        })?;
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    print!(
        "{}",
        crm::promotion::text::render(&report, crm::promotion::text::Paint(color))
    );
    if !options.dry_run && !report.applied {
        anyhow::bail!("refused: {}", report.blockers.join("; "));
    }
    Ok(())
}

async fn changeset_command(command: &ChangesetCommand, app: &App) -> anyhow::Result<()> {
    use crm::promotion::{changeset::File, Options, Source};
    let (path, to, options) = match command {
        ChangesetCommand::Apply {
            file,
            to,
            dry_run,
            allow_breaking,
            allow_lossy,
        } => (
            file,
            to,
            Options {
                dry_run: *dry_run,
                allow_breaking: *allow_breaking,
                allow_lossy: *allow_lossy,
                ..Options::default()
            },
        ),
        ChangesetCommand::Diff { file, to } => (
            file,
            to,
            Options {
                dry_run: true,
                ..Options::default()
            },
        ),
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file = File::parse(&text).map_err(|why| anyhow::anyhow!("{}: {why}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    promote(app, Source::File { name, file }, to, options).await
}

async fn promotion_command(command: &PromotionCommand, app: &App) -> anyhow::Result<()> {
    match command {
        PromotionCommand::List { first } => {
            let mut conn = app.db.conn().await?;
            let found = crm::promotion::list(&mut conn, (*first).clamp(1, 500)).await?;
            if found.is_empty() {
                println!("no promotions yet");
            }
            for promotion in found {
                println!("{}", crm::promotion::text::promotion_line(&promotion));
            }
            Ok(())
        }
        PromotionCommand::Revert {
            id,
            dry_run,
            allow_lossy,
        } => {
            let mut conn = app.db.conn().await?;
            let found = crm::promotion::find(&mut conn, *id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("there is no promotion {id} (see crm promotion list)"))?;
            drop(conn);
            let workspace = found["workspace"].as_str().unwrap_or("production").to_owned();
            let options = crm::promotion::Options {
                dry_run: *dry_run,
                allow_lossy: *allow_lossy,
                ..Default::default()
            };
            promote(app, crm::promotion::Source::Revert(*id), &workspace, options).await
        }
    }
}

fn print_endpoint(name: &str) {
    println!("  GraphQL endpoint and playground: /sandboxes/{name}/graphql on the server (e.g. http://127.0.0.1:8080/sandboxes/{name}/graphql)");
}

/// The progress bar of a sandbox copy, on stderr when it is a terminal.
struct Bar {
    bar: indicatif::ProgressBar,
    started: std::time::Instant,
}

impl Bar {
    fn new() -> Self {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        Bar {
            bar,
            started: std::time::Instant::now(),
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }

    fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

impl crm::sandbox::Progress for Bar {
    fn start(&self, rows: u64) {
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} {msg:<28} [{bar:30}] {human_pos}/{human_len} rows ({elapsed})",
        ) {
            self.bar.set_style(style.progress_chars("=> "));
        }
        self.bar.set_length(rows);
    }

    fn step(&self, what: &str) {
        self.bar.set_message(what.to_owned());
    }

    fn copied(&self, rows: u64) {
        self.bar.inc(rows);
        // The estimate may be short: the bar never runs past its end.
        if let Some(length) = self.bar.length() {
            self.bar.set_length(length.max(self.bar.position()));
        }
    }
}

/// Runs `work` against the configured database, starting the embedded
/// cluster for the duration of the command when no server runs it.
/// Runs a command on the migrated database: the embedded cluster, or the
/// server `DATABASE_URL` names.
async fn with_app(database: &DatabaseArgs, work: impl AsyncFnOnce(&App) -> anyhow::Result<()>) -> anyhow::Result<()> {
    with_database(config(database, None), |config, url| async move {
        crm::db::migrate::migrate_all(&url).await?;
        let app = App::new(config, &url)?;
        work(&app).await
    })
    .await
}

async fn with_database<F, Fut>(config: Config, work: F) -> anyhow::Result<()>
where
    F: FnOnce(Config, String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let server = DatabaseServer::open(&config).await?;
    let result = work(config, server.url().to_owned()).await;
    server.stop().await;
    result
}

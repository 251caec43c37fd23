//! `crm`: the CRM server and its admin commands.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use crm::app::{self, App, DatabaseServer};
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
        Command::Seed { bench, .. } => {
            let bench = *bench;
            with_database(config(&cli.database, None), |config, url| async move {
                crm::db::migrate::migrate_all(&url).await?;
                let app = App::new(config, &url)?;
                let report = if bench {
                    crm::seed::bench(&app).await?
                } else {
                    crm::seed::demo(&app).await?
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

/// Runs `work` against the configured database, starting the embedded
/// cluster for the duration of the command when no server runs it.
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

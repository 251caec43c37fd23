//! `crm import OBJECT FILE` and `crm export OBJECT`: CSV files in and out of
//! production or a sandbox, with a progress bar (rows, rows/s, errors so
//! far) on a terminal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crm::audit::Trail;
use crm::auth::{Actor, Role};
use crm::db::sql::{Bind, Sql};
use crm::graphql::Workspace;
use crm::records::Visibility;
use crm::transfer::export;
use crm::transfer::progress::Phase;
use crm::transfer::{self, Encoding, Mode, OnError, Options, Progress, Target};
use crm::App;
use futures_util::StreamExt;
use std::io::Write;

use crate::{ExportArgs, ImportArgs};

#[derive(diesel::QueryableByName)]
struct UserRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: uuid::Uuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    role: String,
}

/// The workspace and the user a command acts as (`--user`, else the first
/// admin).
async fn target(app: &App, workspace: &str, user: Option<&str>) -> anyhow::Result<Target> {
    let workspace = if workspace == "production" {
        Workspace::production()
    } else {
        let mut conn = app.db.conn().await?;
        let sandbox = crm::sandbox::find(&mut conn, workspace)
            .await?
            .ok_or_else(|| anyhow::anyhow!("there is no sandbox {workspace}"))?;
        Workspace {
            name: sandbox.name,
            pg_schema: sandbox.pg_schema,
        }
    };
    let entry = app.schemas.get(&app.db, &workspace).await?;
    let mut query = Sql::raw("SELECT id, role FROM crm_system.users WHERE deleted_at IS NULL AND ");
    match user {
        Some(email) => query
            .push("lower(email) = lower(")
            .bind(Bind::Text(Some(email.to_owned())))
            .push(")"),
        None => query.push("role = 'ADMIN' ORDER BY created_at"),
    };
    query.push(" LIMIT 1");
    let mut conn = app.db.conn().await?;
    let users: Vec<UserRow> = query.load(&mut conn).await?;
    let found = users.into_iter().next().ok_or_else(|| match user {
        Some(email) => anyhow::anyhow!("no user {email}"),
        None => {
            anyhow::anyhow!("no admin yet: start the server once (crm serve creates the first admin) or pass --user")
        }
    })?;
    let actor = Actor {
        user_id: found.id,
        token_id: None,
        role: Role::parse(&found.role).unwrap_or(Role::ReadOnly),
    };
    Ok(Target {
        db: app.db.clone(),
        schema: workspace.pg_schema.clone(),
        model: entry.model.clone(),
        visibility: Visibility::of(&actor, entry.record_visibility.get(), &entry.model),
        actor,
        trail: Trail::cli(&workspace.name),
    })
}

/// `KEY=VALUE` → (key, value).
fn pair(text: &str) -> anyhow::Result<(String, String)> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("{text:?} is not KEY=VALUE"))?;
    Ok((key.trim().to_owned(), value.to_owned()))
}

async fn options(target: &Target, args: &ImportArgs) -> anyhow::Result<Options> {
    let mut options = Options::new(&args.object);
    if let Some(name) = &args.saved_mapping {
        transfer::saved::apply(target, name, &mut options).await?;
    }
    if let Some(mode) = &args.mode {
        options.mode = Mode::parse(mode).ok_or_else(|| anyhow::anyhow!("--mode is create, upsert or update"))?;
    }
    if let Some(field) = &args.match_on {
        options.match_on = Some(field.clone());
    }
    if let Some(policy) = &args.on_error {
        options.on_error = OnError::parse(policy).ok_or_else(|| anyhow::anyhow!("--on-error is skip or abort"))?;
    }
    options.dry_run = args.dry_run;
    if let Some(encoding) = &args.encoding {
        let encoding = Encoding::parse(encoding).ok_or_else(|| anyhow::anyhow!("--encoding is utf8 or latin1"))?;
        options.encoding = Some(encoding);
    }
    if let Some(delimiter) = &args.delimiter {
        let delimiter = transfer::saved::delimiter(delimiter)
            .ok_or_else(|| anyhow::anyhow!("--delimiter is one character (or tab)"))?;
        options.delimiter = Some(delimiter);
    }
    if let Some(date) = &args.date_format {
        options.formats.date = Some(date.clone());
    }
    if args.decimal_comma {
        options.formats.decimal_comma = true;
    }
    for map in &args.map {
        let (header, field) = pair(map)?;
        options.mapping.push((header, (!field.is_empty()).then_some(field)));
    }
    for ignored in &args.ignore {
        options.mapping.push((ignored.clone(), None));
    }
    for default in &args.default {
        let (field, value) = pair(default)?;
        options.defaults.insert(field, serde_json::Value::String(value));
    }
    options.file_name = args.file.file_name().map(|name| name.to_string_lossy().into_owned());
    Ok(options)
}

/// `crm import`.
pub async fn import(args: &ImportArgs, app: &App) -> anyhow::Result<()> {
    let target = target(app, &args.workspace, args.user.as_deref()).await?;
    let options = options(&target, args).await?;
    let file =
        std::fs::File::open(&args.file).map_err(|err| anyhow::anyhow!("cannot read {}: {err}", args.file.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let read = Arc::new(AtomicU64::new(0));
    let progress = Progress::new();
    let bar = draw(progress.clone(), read.clone(), size);
    let job = transfer::import(
        &target,
        options,
        Box::new(Counted(std::io::BufReader::new(file), read)),
        progress.clone(),
    )
    .await;
    bar.abort();
    let job = job?;
    eprintln!();
    println!(
        "import {}: {} — {} rows read, {} created, {} updated, {} unchanged, {} failed, {} warnings",
        job.id,
        job.state,
        job.rows_read,
        job.rows_created,
        job.rows_updated,
        job.rows_unchanged,
        job.rows_failed,
        job.warnings
    );
    if let Some(message) = &job.message {
        println!("{message}");
    }
    if job.rows_failed > 0 || job.warnings > 0 {
        let mut conn = app.db.conn().await?;
        let errors = transfer::job::errors(&mut conn, &target.schema, job.id, None, Some(20)).await?;
        for error in errors {
            println!(
                "  row {} {}: {} ({}){}",
                error.row_number,
                error.column_name.unwrap_or_default(),
                error.message,
                error.code,
                if error.warning { " — warning" } else { "" }
            );
        }
        let path = transfer::job::error_file_path(&target.trail.workspace, job.id);
        println!("the whole error file: GET {path}");
    }
    if job.state != "SUCCEEDED" {
        anyhow::bail!("the import did not succeed");
    }
    Ok(())
}

/// A file read, its bytes counted for the progress bar's estimate.
struct Counted<R>(R, Arc<AtomicU64>);

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(out)?;
        self.1.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// `1m05s`.
fn duration(seconds: f64) -> String {
    let seconds = seconds.max(0.0).round() as u64;
    if seconds >= 60 {
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    } else {
        format!("{seconds}s")
    }
}

/// What the import is doing, with its rate and an estimate of what is left.
fn status(progress: &Progress, read: u64, size: u64, seconds: f64) -> String {
    match progress.phase() {
        Phase::Reading => {
            let fraction = if size > 0 { read as f64 / size as f64 } else { 0.0 };
            let left = if fraction > 0.0 {
                seconds * (1.0 - fraction) / fraction
            } else {
                0.0
            };
            format!(
                "reading: {} rows ({:.0} rows/s), {} failed, {:.0}% of the file, about {} left to read",
                progress.read(),
                progress.read() as f64 / seconds,
                progress.failed(),
                fraction * 100.0,
                duration(left)
            )
        }
        Phase::Checking => format!("checking {} rows across the file", progress.read()),
        Phase::Writing => {
            let total = progress.read().saturating_sub(progress.failed()).max(1);
            let written = progress.written();
            format!(
                "writing: {written} of about {total} records ({:.0}%), {} failed",
                written as f64 * 100.0 / total as f64,
                progress.failed()
            )
        }
        Phase::Done => "done".to_owned(),
    }
}

/// Draws the import's progress on stderr (a terminal only) until aborted.
fn draw(progress: Arc<Progress>, read: Arc<AtomicU64>, size: u64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let bar = indicatif::ProgressBar::new_spinner();
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}") {
            bar.set_style(style);
        }
        let started = std::time::Instant::now();
        loop {
            let seconds = started.elapsed().as_secs_f64().max(0.001);
            bar.set_message(status(&progress, read.load(Ordering::Relaxed), size, seconds));
            bar.tick();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// `crm export OBJECT`: CSV on standard output or a file.
pub async fn export(args: &ExportArgs, object: &str, vcard: Option<&str>, app: &App) -> anyhow::Result<()> {
    let workspace = args.workspaces.first().map_or("production", String::as_str);
    let target = target(app, workspace, args.user.as_deref()).await?;
    let object = target.object(object)?.clone();
    let mut query = std::collections::HashMap::new();
    for (key, value) in [
        ("filter", &args.filter),
        ("orderBy", &args.order_by),
        ("fields", &args.fields),
        ("lookups", &args.lookups),
    ] {
        if let Some(value) = value {
            query.insert(key.to_owned(), value.clone());
        }
    }
    let request = export::request(&target, &object, &query)?;
    let mut rows: std::pin::Pin<Box<dyn futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send>> =
        match vcard {
            Some(version) => {
                let version = export::vcard_version(version)?;
                Box::pin(export::vcards(&target, &object, &request, version).await?)
            }
            None => Box::pin(export::stream(&target, &object, &request).await?),
        };
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
        None => Box::new(std::io::stdout().lock()),
    };
    while let Some(chunk) = rows.next().await {
        out.write_all(&chunk?)?;
    }
    out.flush()?;
    Ok(())
}

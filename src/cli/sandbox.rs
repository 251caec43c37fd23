//! `crm sandbox`: sandboxes made, listed, refreshed, compared, promoted,
//! exported and deleted from the command line, with a progress bar for the
//! copies, for administrators who script their releases.

use std::path::Path;

use anyhow::Context;
use crm::audit::Trail;
use crm::promotion::{Options, Source};
use crm::sandbox::{self, Filling, Mode, NewSandbox};
use crm::App;

use super::progress::Bar;
use super::promotion::promote;
use crate::{FillingArgs, SandboxCommand};

/// Runs one `crm sandbox` command.
pub async fn run(command: &SandboxCommand, app: &App) -> anyhow::Result<()> {
    match command {
        SandboxCommand::Create {
            name,
            filling,
            description,
        } => create(app, name, filling, description).await,
        SandboxCommand::List => list(app).await,
        SandboxCommand::Refresh {
            name,
            mode,
            sample_size,
            mask,
            no_mask,
        } => {
            let mask = if *mask || *no_mask { Some(*mask) } else { None };
            refresh(app, name, *mode, *sample_size, mask).await
        }
        SandboxCommand::Delete { name } => delete(app, name).await,
        SandboxCommand::Diff { name } => {
            let options = Options {
                dry_run: true,
                ..Default::default()
            };
            promote(app, Source::Sandbox(name.clone()), "production", options).await
        }
        SandboxCommand::Promote {
            name,
            dry_run,
            allow_breaking,
            allow_lossy,
        } => {
            let options = Options {
                dry_run: *dry_run,
                allow_breaking: *allow_breaking,
                allow_lossy: *allow_lossy,
                ..Default::default()
            };
            promote(app, Source::Sandbox(name.clone()), "production", options).await
        }
        SandboxCommand::Export { name, output } => export(app, name, output.as_deref()).await,
    }
}

/// Copies production into a new sandbox, then says where its endpoint is.
async fn create(app: &App, name: &str, filling: &FillingArgs, description: &str) -> anyhow::Result<()> {
    let filling = Filling::new(filling.mode, filling.sample_size, filling.mask, &["sample-size"])?;
    let new = NewSandbox {
        name: name.to_owned(),
        description: description.to_owned(),
        filling,
    };
    let bar = Bar::new();
    let made = sandbox::create(&app.db, &Trail::cli("production"), &new, &bar).await;
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
    Ok(())
}

/// A table of the sandboxes with how they were filled and their size.
async fn list(app: &App) -> anyhow::Result<()> {
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
    Ok(())
}

/// Makes a sandbox again from production. What is not given is filled as
/// before; a sample size carries over only while the mode stays the same.
async fn refresh(
    app: &App,
    name: &str,
    mode: Option<Mode>,
    sample_size: Option<i32>,
    mask: Option<bool>,
) -> anyhow::Result<()> {
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
    let mask = mask.unwrap_or(current.masked);
    let filling = Filling::new(mode, sample_size, mask, &["sample-size"])?;
    let bar = Bar::new();
    let made = sandbox::refresh(&app.db, &Trail::cli("production"), name, &filling, &bar).await;
    bar.finish();
    let made = made?;
    println!(
        "made the sandbox {} again ({}) in {:.1} s, from production's metadata version {}",
        made.name,
        made.mode.as_str(),
        bar.elapsed(),
        made.base_version
    );
    Ok(())
}

/// Drops a sandbox's schema and its registration.
async fn delete(app: &App, name: &str) -> anyhow::Result<()> {
    match sandbox::delete(&app.db, &Trail::cli("production"), name).await {
        Err(crm::CrmError::NotFound { .. }) => {
            anyhow::bail!("there is no sandbox {name} (see crm sandbox list)")
        }
        other => other?,
    };
    println!("deleted the sandbox {name} and everything in it");
    Ok(())
}

/// Writes the sandbox's changes as a changeset file, or to stdout without
/// `--output` (for a pipe).
async fn export(app: &App, name: &str, output: Option<&Path>) -> anyhow::Result<()> {
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
    Ok(())
}

fn print_endpoint(name: &str) {
    println!("  GraphQL endpoint and playground: /sandboxes/{name}/graphql on the server (e.g. http://127.0.0.1:8080/sandboxes/{name}/graphql)");
}

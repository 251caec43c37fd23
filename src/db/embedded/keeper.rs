//! The process that keeps the embedded cluster for everyone using it.
//!
//! The postmaster is not the child of the command that starts it but of a
//! keeper: the crm binary again, as `crm keep-cluster`, in a process group
//! of its own. Every process using the cluster — the one that started it
//! and each one that joined it — holds a shared lock on
//! `<data-dir>/cluster.users` for as long as it does. The keeper stops the
//! cluster (a fast shutdown) once nobody holds that lock any more, however
//! its last user ended: cleanly, or by `kill -9`, which releases the lock
//! too. So a `crm serve` that joined the cluster a `crm seed` started keeps
//! it, without a blink, when the seed ends; and nothing is left running
//! once every user is gone. The postmaster dies with the keeper (the
//! kernel's parent-death signal), so a killed keeper leaves no orphan
//! either, and a supervising server starts a new keeper and cluster.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{send_signal, Error, FolderLock, IoContext, RunAs};

/// The file every user of the cluster holds a shared lock on.
pub(super) const USERS: &str = "cluster.users";

/// The file starts, joins and stops are serialized on.
pub(super) const STARTING: &str = "cluster.lock";

/// How often the keeper looks at its postmaster and the users' lock.
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// How long a fast shutdown may take before the postmaster is killed.
const STOP_PATIENCE: Duration = Duration::from_secs(30);

/// Starts a keeper (`keeper_binary keep-cluster`) that runs `postgres` with
/// `args` as `run_as`, its output going to `log`. The caller must already
/// hold its lock on [`USERS`], or the keeper stops the cluster at once.
pub(super) fn spawn(
    keeper_binary: &Path,
    data_dir: &Path,
    postgres: &Path,
    args: &[String],
    run_as: Option<RunAs>,
    log: std::fs::File,
) -> Result<Child, Error> {
    let mut command = Command::new(keeper_binary);
    command.arg("--data-dir").arg(data_dir).arg("keep-cluster");
    if let Some(run_as) = run_as {
        command.arg(format!("--run-as={}:{}", run_as.uid, run_as.gid));
    }
    command
        .arg("--")
        .arg(postgres)
        .args(args)
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: a Ctrl-C meant for the command that
        // started it does not reach it; it stops when its users are gone.
        .process_group(0);
    command
        .spawn()
        .with_context(|| format!("starting {} keep-cluster", keeper_binary.display()))
}

/// What `crm keep-cluster` does: runs the postmaster (`program` `args`, as
/// `run_as` when given) and watches it and its users until it exits, or
/// stops it once nobody uses it. Returns the postmaster's exit status.
pub fn keep(
    data_dir: &Path,
    run_as: Option<(u32, u32)>,
    program: &OsString,
    args: &[OsString],
) -> Result<ExitStatus, Error> {
    let mut command = Command::new(program);
    command.args(args);
    if let Some((uid, gid)) = run_as {
        command.uid(uid).gid(gid);
    }
    super::stop_with_parent(&mut command);
    let mut postmaster = command
        .spawn()
        .with_context(|| format!("starting {}", Path::new(program).display()))?;
    loop {
        std::thread::sleep(LOOK_EVERY);
        if let Some(status) = postmaster.try_wait()? {
            return Ok(status);
        }
        // Nobody starts or joins while we look, and nobody uses it: stop it.
        let Some(_starting) = FolderLock::try_take(&data_dir.join(STARTING))? else {
            continue;
        };
        if FolderLock::try_take(&data_dir.join(USERS))?.is_some() {
            return Ok(stop(&mut postmaster));
        }
    }
}

/// A fast shutdown of the postmaster, killed if it takes too long.
fn stop(postmaster: &mut Child) -> ExitStatus {
    send_signal(postmaster.id(), libc::SIGINT);
    let deadline = Instant::now() + STOP_PATIENCE;
    while Instant::now() < deadline {
        match postmaster.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => break,
        }
    }
    let _ = postmaster.kill();
    postmaster.wait().unwrap_or_else(|_| ExitStatus::default())
}

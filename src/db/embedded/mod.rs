//! A private PostgreSQL cluster started from the system's server binaries.
//!
//! With no `DATABASE_URL`, every command uses the cluster in
//! `<data-dir>/pgdata`: it is created with `initdb` on first use, started
//! with no TCP listener, reachable only through its Unix socket in the
//! private folder `run` beside the cluster (`<data-dir>/run`; see
//! [`folders`] for who may enter what),
//! and stopped once no process uses it any more (see [`keeper`]: the last
//! user may end cleanly or be killed). A command that finds the cluster
//! already running (say, under a running server) uses it instead of
//! starting a second one, and the cluster runs on as long as anyone uses
//! it, whoever started it. Starts are serialized across processes
//! by a lock on `<data-dir>/cluster.lock`, and a cluster keeps its port
//! (remembered in `<data-dir>/postgres.port`) from one start to the next,
//! so its URL never changes. Under `crm serve` a [`supervisor`] restarts
//! the cluster when it goes away, whoever started it.
//!
//! Postgres refuses to run as root, so when this process is root the
//! cluster runs as an unprivileged OS user (`postgres` if it exists,
//! otherwise `nobody`) that owns the cluster's files.

mod folders;
pub mod keeper;
pub mod supervisor;

use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

use super::error::{Error, IoContext};
use folders::{chown, locate_pgdata, set_mode};

/// What to tell a user whose machine has no PostgreSQL server binaries.
pub const MISSING_BINARIES: &str = "PostgreSQL server binaries (initdb, postgres) were not found. \
Install them, e.g. `apt-get install postgresql` on Debian/Ubuntu, or point PG_BIN at the folder \
that holds them, or set DATABASE_URL to use an existing server.";

/// What a socket folder's path keeps unencoded in a connection URL: `/`, `:`,
/// `,`, `@` and `%` would end or split the host.
const SOCKET_DIR: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// How a started cluster behaves; tests trade durability for speed.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Skip fsync: a crash may lose data. Only for throwaway clusters.
    pub ephemeral: bool,
    /// The crm binary, run as `crm keep-cluster` to keep the cluster for
    /// its users ([`keeper`]).
    pub keeper: PathBuf,
}

impl ClusterOptions {
    /// A durable cluster kept by the binary this process runs.
    pub fn for_this_binary() -> Result<Self, Error> {
        Ok(ClusterOptions {
            ephemeral: false,
            keeper: std::env::current_exe().context("finding the crm binary")?,
        })
    }
}

/// The cluster of a data folder, in use by this process until
/// [`EmbeddedPostgres::stop`] or drop: started here or found running.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    /// The data folder it was started from (`--data-dir`), resolved.
    data_dir: PathBuf,
    pgdata: PathBuf,
    /// The folder holding the socket `.s.PGSQL.<port>`, the only way in.
    socket_dir: PathBuf,
    port: u16,
    /// The postmaster's pid.
    pid: i32,
    /// The keeper this process started, to reap when it ends.
    keeper: Option<Child>,
    /// This process's shared lock on [`keeper::USERS`]: while it is held,
    /// the cluster runs.
    using: Option<FolderLock>,
}

/// Where the server binaries are.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    pub dir: PathBuf,
}

impl PgBinaries {
    /// Finds `initdb` and `postgres`: `PG_BIN`, then `PATH`, then the newest
    /// `/usr/lib/postgresql/*/bin` (Debian's layout).
    pub fn find() -> Result<Self, Error> {
        let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
        if let Some(dir) = std::env::var_os("PG_BIN") {
            let dir = PathBuf::from(dir);
            if has_both(&dir) {
                return Ok(PgBinaries { dir });
            }
            return Err(Error::EmptyPgBin(dir));
        }
        if let Some(path) = std::env::var_os("PATH") {
            if let Some(dir) = std::env::split_paths(&path).find(|d| has_both(d)) {
                return Ok(PgBinaries { dir });
            }
        }
        let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
                let bin = entry.path().join("bin");
                has_both(&bin).then_some((version, bin))
            })
            .collect();
        versions.sort();
        match versions.pop() {
            Some((_, dir)) => Ok(PgBinaries { dir }),
            None => Err(Error::MissingBinaries),
        }
    }

    /// The path of program `name` in this folder (`initdb`, `pg_dump` …).
    pub fn tool(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A client program (`pg_dump`, `pg_restore`) of the same PostgreSQL
    /// as the server binaries when they are installed, so its version
    /// matches the embedded cluster's; otherwise the first on `PATH` (a
    /// machine with only the client tools, using `DATABASE_URL`).
    pub fn client_tool(name: &str) -> Result<PathBuf, Error> {
        if let Ok(binaries) = PgBinaries::find() {
            let path = binaries.tool(name);
            if path.is_file() {
                return Ok(path);
            }
        }
        std::env::var_os("PATH")
            .and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join(name))
                    .find(|p| p.is_file())
            })
            .ok_or_else(|| Error::MissingTool(name.to_owned()))
    }
}

/// The OS account the cluster runs as when we are root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

impl RunAs {
    /// `None` when this process is not root: the cluster runs as us.
    fn for_this_process() -> Result<Option<Self>, Error> {
        if current_uid() != 0 {
            return Ok(None);
        }
        let passwd = fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
        for wanted in ["postgres", "nobody"] {
            for line in passwd.lines() {
                let cols: Vec<&str> = line.split(':').collect();
                if cols.len() > 3 && cols[0] == wanted {
                    if let (Ok(uid), Ok(gid)) = (cols[2].parse(), cols[3].parse()) {
                        return Ok(Some(RunAs { uid, gid }));
                    }
                }
            }
        }
        Err(Error::NoUnprivilegedUser)
    }
}

#[allow(unsafe_code)]
fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// How long a start waits for another process's start to finish.
const START_PATIENCE: Duration = Duration::from_secs(90);

/// Removes a `postmaster.pid` whose pid now belongs to another program
/// (after a reboot, say), which PostgreSQL would take for a running
/// server. One whose pid is dead stays: PostgreSQL then checks that no
/// orphaned server process of the crashed cluster still uses its shared
/// memory before taking over the folder, and refuses to start until none
/// does.
fn remove_foreign_pid_file(pgdata: &Path) -> Result<(), Error> {
    let pid_file = pgdata.join("postmaster.pid");
    let Ok(text) = fs::read_to_string(&pid_file) else {
        return Ok(());
    };
    let pid = text.lines().next().and_then(|line| line.trim().parse::<i32>().ok());
    let foreign = match pid {
        Some(pid) => is_live_process(pid) && !is_postgres_process(pid),
        None => true,
    };
    if foreign {
        tracing::warn!("removing stale {}", pid_file.display());
        fs::remove_file(&pid_file).context("removing stale postmaster.pid")?;
    }
    Ok(())
}

/// True when `pid` runs (a zombie, dead but not yet reaped, does not).
fn is_live_process(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}

/// True when `pid` is a live process whose command line names postgres.
fn is_postgres_process(pid: i32) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmd| String::from_utf8_lossy(&cmd).contains("postgres"))
        .unwrap_or(false)
}

/// A cluster another process started, as its `postmaster.pid` tells.
struct Running {
    pid: i32,
    port: u16,
    socket_dir: PathBuf,
}

/// The cluster running in `pgdata`, if the process that wrote its
/// `postmaster.pid` still runs: the pid (line 1), the port naming the socket
/// (line 4) and the socket's folder (line 5).
fn running_cluster(pgdata: &Path) -> Result<Option<Running>, Error> {
    let Ok(text) = fs::read_to_string(pgdata.join("postmaster.pid")) else {
        return Ok(None);
    };
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let parsed = lines
        .first()
        .and_then(|pid| pid.parse().ok())
        .zip(lines.get(3).and_then(|port| port.parse().ok()));
    let Some((pid, port)) = parsed.filter(|(pid, _)| is_postgres_process(*pid)) else {
        return Ok(None);
    };
    match lines.get(4).filter(|dir| !dir.is_empty()) {
        Some(dir) => Ok(Some(Running {
            pid,
            port,
            socket_dir: PathBuf::from(dir),
        })),
        None => Err(Error::NoSocket {
            pid,
            pgdata: pgdata.to_path_buf(),
        }),
    }
}

/// The cluster's port: the one it had before (`<data-dir>/postgres.port`),
/// so connection URLs outlive a restart, else a port no TCP server uses,
/// remembered. The cluster listens on no TCP port; its port only names its
/// socket file, and a free one keeps `psql -p` unambiguous.
fn remembered_port(data_dir: &Path) -> Result<u16, Error> {
    let file = data_dir.join("postgres.port");
    if let Some(port) = fs::read_to_string(&file)
        .ok()
        .and_then(|text| text.trim().parse::<u16>().ok())
        .filter(|port| *port > 0)
    {
        return Ok(port);
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    let port = listener.local_addr()?.port();
    let mut out = folders::create_private(&file)?;
    writeln!(out, "{port}").with_context(|| format!("writing {}", file.display()))?;
    Ok(port)
}

/// An advisory lock (`flock`) on a file of the data folder, held until
/// dropped; the kernel releases it when the process ends, even by
/// `kill -9`, so a crash never leaves it behind.
#[derive(Debug)]
pub struct FolderLock {
    file: fs::File,
}

impl FolderLock {
    /// Takes the lock on `path` (made 0600 if missing) when no other
    /// process holds it: `None` when one does.
    fn try_take(path: &Path) -> Result<Option<Self>, Error> {
        FolderLock::try_lock(path, libc::LOCK_EX)
    }

    /// Takes a shared lock on `path`, which only an exclusive one excludes.
    fn try_share(path: &Path) -> Result<Option<Self>, Error> {
        FolderLock::try_lock(path, libc::LOCK_SH)
    }

    fn try_lock(path: &Path, operation: i32) -> Result<Option<Self>, Error> {
        let file = folders::open_private(path)?;
        Ok(flock(&file, operation).then_some(FolderLock { file }))
    }

    /// Turns a shared lock into the exclusive one, when no other process
    /// shares it.
    fn try_make_exclusive(&self) -> bool {
        flock(&self.file, libc::LOCK_EX)
    }

    /// Waits for the lock on `path` as long as `patience`.
    async fn take(path: &Path, patience: Duration) -> Result<Option<Self>, Error> {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(lock) = FolderLock::try_take(path)? {
                return Ok(Some(lock));
            }
            if Instant::now() > deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `flock(operation | LOCK_NB)`: whether it was granted.
fn flock(file: &fs::File, operation: i32) -> bool {
    use std::os::fd::AsRawFd;
    #[allow(unsafe_code)]
    // SAFETY: flock on a descriptor the caller owns; no memory is shared.
    let granted = unsafe { libc::flock(file.as_raw_fd(), operation | libc::LOCK_NB) } == 0;
    granted
}

/// Makes this process the one `crm serve` of `data_dir`, for as long as the
/// returned lock lives: a second server on the same folder would fight the
/// first over restarting the cluster, so it is refused, naming the first.
pub fn lock_for_serving(data_dir: &Path) -> Result<FolderLock, Error> {
    fs::create_dir_all(data_dir).with_context(|| format!("creating data folder {}", data_dir.display()))?;
    let path = data_dir.join("serve.lock");
    let Some(mut lock) = FolderLock::try_take(&path)? else {
        let holder = fs::read_to_string(&path).ok().and_then(|text| text.trim().parse().ok());
        return Err(Error::AlreadyServed {
            data_dir: data_dir.to_path_buf(),
            pid: holder,
        });
    };
    lock.file.set_len(0).context("writing serve.lock")?;
    writeln!(lock.file, "{}", std::process::id()).context("writing serve.lock")?;
    Ok(lock)
}

impl EmbeddedPostgres {
    /// Connects to the cluster under `data_dir`, starting it (and creating it
    /// first if needed) when it is not running.
    pub async fn start(data_dir: &Path, options: ClusterOptions) -> Result<Self, Error> {
        fs::create_dir_all(data_dir).with_context(|| format!("creating data folder {}", data_dir.display()))?;
        let data_dir = data_dir
            .canonicalize()
            .with_context(|| format!("resolving {}", data_dir.display()))?;
        // One process at a time looks for a running cluster and starts one.
        let Some(_starting) = FolderLock::take(&data_dir.join(keeper::STARTING), START_PATIENCE).await? else {
            return Err(Error::NotReady(data_dir));
        };
        // From here on the cluster, running or started, runs for us too.
        let Some(using) = FolderLock::try_share(&data_dir.join(keeper::USERS))? else {
            // Only a keeper stopping its cluster holds it exclusively, and
            // it holds the start lock meanwhile.
            return Err(Error::NotReady(data_dir));
        };
        let run_as = RunAs::for_this_process()?;
        let pgdata = locate_pgdata(&data_dir, run_as)?;

        if let Some(running) = running_cluster(&pgdata)? {
            return EmbeddedPostgres::join(data_dir, pgdata, running, using).await;
        }

        let binaries = PgBinaries::find()?;
        let home = pgdata.parent().unwrap_or(&data_dir).to_path_buf();
        let socket_dir = folders::protect(&data_dir, &home, run_as)?;
        let port = remembered_port(&data_dir)?;
        folders::check_socket_path(&socket_dir, port)?;
        if let Some(run_as) = run_as {
            folders::check_reachable(&pgdata, run_as)?;
        }
        if !pgdata.join("PG_VERSION").is_file() {
            initdb(&binaries, &pgdata, run_as)?;
        }
        set_mode(&pgdata, 0o700)?;
        folders::write_pg_hba(&pgdata, run_as)?;
        remove_foreign_pid_file(&pgdata)?;

        let log_path = data_dir.join("postgres.log");
        let log = folders::open_log(&log_path, run_as)?;
        let mut args = vec!["-D".to_owned(), pgdata.display().to_string()];
        args.extend(server_settings(&socket_dir, port, &options));
        let keeper = keeper::spawn(
            &options.keeper,
            &data_dir,
            &binaries.tool("postgres"),
            &args,
            run_as,
            log,
        )?;
        let mut cluster = EmbeddedPostgres {
            data_dir,
            pgdata,
            socket_dir,
            port,
            pid: 0,
            keeper: Some(keeper),
            using: Some(using),
        };
        if let Err(err) = cluster.wait_ready(Some(&log_path)).await {
            // Nobody uses it now: its keeper stops it, if it runs at all.
            drop(cluster.using.take());
            cluster.reap_keeper().await;
            return Err(err);
        }
        match running_cluster(&cluster.pgdata)? {
            Some(running) => cluster.pid = running.pid,
            None => return Err(Error::NotReady(cluster.pgdata.clone())),
        }
        tracing::info!(
            port,
            "started PostgreSQL in {}; as root or its OS user: psql -h {} -p {port} -U postgres",
            cluster.pgdata.display(),
            cluster.socket_dir.display()
        );
        Ok(cluster)
    }

    /// Uses the cluster another process started.
    async fn join(data_dir: PathBuf, pgdata: PathBuf, running: Running, using: FolderLock) -> Result<Self, Error> {
        tracing::info!(
            pid = running.pid,
            port = running.port,
            "using the PostgreSQL cluster already running in {}",
            pgdata.display()
        );
        let mut cluster = EmbeddedPostgres {
            data_dir,
            pgdata,
            socket_dir: running.socket_dir,
            port: running.port,
            pid: running.pid,
            keeper: None,
            using: Some(using),
        };
        cluster.wait_ready(None).await?;
        Ok(cluster)
    }

    /// The connection URL of database `database` in this cluster: its
    /// socket folder, percent-encoded, as the host (a form both
    /// tokio-postgres and libpq read), so [`super::with_database`] can swap
    /// the database. Not `?host=` after a TCP host: tokio-postgres would try
    /// that host first.
    pub fn url(&self, database: &str) -> String {
        let host = percent_encoding::percent_encode(self.socket_dir.as_os_str().as_bytes(), SOCKET_DIR);
        format!("postgres://postgres@{host}:{}/{database}", self.port)
    }

    /// The port naming the cluster's socket file (`.s.PGSQL.<port>`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The folder holding the cluster's socket: `psql -h` takes it.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The cluster's data folder (`PGDATA`).
    pub fn pgdata(&self) -> &Path {
        &self.pgdata
    }

    /// Why the cluster is gone, if it is: its postmaster no longer runs
    /// (it crashed, or it or its keeper was killed).
    pub fn gone(&self) -> Option<String> {
        (!is_postgres_process(self.pid)).then(|| format!("(pid {}) is no longer running", self.pid))
    }

    /// Waits until the cluster accepts connections, or fails with the tail of
    /// its log when its keeper has exited.
    async fn wait_ready(&mut self, log: Option<&Path>) -> Result<(), Error> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = self.url("postgres");
        loop {
            if super::ping(&url).await.is_ok() {
                return Ok(());
            }
            if let Some(keeper) = self.keeper.as_mut() {
                if let Some(status) = keeper.try_wait()? {
                    self.keeper = None;
                    let tail = log.map(log_tail).unwrap_or_default();
                    return Err(Error::ExitedDuringStart { status, log_tail: tail });
                }
            }
            if Instant::now() > deadline {
                return Err(Error::NotReady(self.pgdata.clone()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops using the cluster. The last user stops it — a fast shutdown
    /// that rolls back open transactions and checkpoints — and waits for
    /// that; while another process uses it, it runs on.
    pub async fn stop(&mut self) {
        let Some(using) = self.using.take() else { return };
        // Nobody joins while we decide, or while the cluster stops.
        let starting = FolderLock::take(&self.data_dir.join(keeper::STARTING), START_PATIENCE).await;
        if matches!(starting, Ok(Some(_))) && using.try_make_exclusive() && is_postgres_process(self.pid) {
            send_signal(self.pid as u32, libc::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(30);
            while is_postgres_process(self.pid) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if is_postgres_process(self.pid) {
                tracing::warn!("PostgreSQL did not stop within 30 s; killing it");
                send_signal(self.pid as u32, libc::SIGKILL);
            }
        }
        drop(using);
        self.reap_keeper().await;
    }

    /// Reaps the keeper this process started once it ends, as it does
    /// right after its postmaster; one that keeps the cluster for other
    /// users is left to them (after a second).
    pub async fn reap_keeper(&mut self) {
        let Some(mut keeper) = self.keeper.take() else { return };
        let deadline = Instant::now() + Duration::from_secs(1);
        while matches!(keeper.try_wait(), Ok(None)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The `-c` settings of `postgres`. Given on the command line, they win
/// over postgresql.conf and ALTER SYSTEM: no TCP listener, whatever a
/// configuration file says, and a socket only in `socket_dir`.
fn server_settings(socket_dir: &Path, port: u16, options: &ClusterOptions) -> Vec<String> {
    let mut settings = vec![
        "listen_addresses=".to_owned(),
        format!("port={port}"),
        format!("unix_socket_directories={}", socket_dir.display()),
        "unix_socket_permissions=0700".to_owned(),
    ];
    if options.ephemeral {
        settings.extend(["fsync=off", "synchronous_commit=off", "full_page_writes=off"].map(str::to_owned));
    }
    settings
        .into_iter()
        .flat_map(|setting| ["-c".to_owned(), setting])
        .collect()
}

fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn initdb(binaries: &PgBinaries, pgdata: &Path, run_as: Option<RunAs>) -> Result<(), Error> {
    if pgdata.exists() {
        // No PG_VERSION: an initdb that was interrupted. Nothing in it is data.
        fs::remove_dir_all(pgdata).context("removing an incomplete cluster folder")?;
    }
    fs::create_dir_all(pgdata)?;
    set_mode(pgdata, 0o700)?;
    chown(pgdata, run_as)?;
    let mut command = Command::new(binaries.tool("initdb"));
    command
        .args([
            "-U",
            "postgres",
            // Replaced by our pg_hba.conf before the first start.
            "--auth-local=trust",
            "--auth-host=reject",
            "-E",
            "UTF8",
            // Also `lc_messages = 'C'` in postgresql.conf: English messages,
            // which `CrmError` reads timeouts from (see `error.rs`).
            "--locale=C",
            "--no-sync",
            "-D",
        ])
        .arg(pgdata)
        .stdin(Stdio::null());
    if let Some(run_as) = run_as {
        command.uid(run_as.uid).gid(run_as.gid);
    }
    let output = command
        .output()
        .with_context(|| format!("running {}", binaries.tool("initdb").display()))?;
    if !output.status.success() {
        return Err(Error::Initdb {
            status: output.status,
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    let mut conf = fs::OpenOptions::new()
        .append(true)
        .open(pgdata.join("postgresql.conf"))?;
    writeln!(
        conf,
        "\n# crm: a private cluster; connections only over its Unix socket"
    )?;
    writeln!(conf, "max_connections = 200")?;
    Ok(())
}

#[allow(unsafe_code)]
fn send_signal(pid: u32, signal: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// Asks the kernel to kill a client program (`pg_dump`, `pg_restore`) when
/// the thread that started it dies: a `kill -9` of the command leaves no
/// orphan working on (an interrupted `pg_restore --single-transaction`
/// then restores nothing).
#[allow(unsafe_code)]
pub fn end_with_this_process(command: &mut tokio::process::Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (prctl, getppid, _exit).
    unsafe {
        command.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Asks the kernel to stop the cluster (fast shutdown) when the thread that
/// started it dies, so a `kill -9` of the server leaves no orphan cluster.
#[allow(unsafe_code)]
fn stop_with_parent(command: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (prctl, getppid, _exit).
    unsafe {
        command.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT);
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

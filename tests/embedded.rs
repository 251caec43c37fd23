//! Who may reach the embedded cluster: nothing over TCP, no other OS user
//! through its socket, no other user reading its files, and a cluster made
//! by an older version (trusting every TCP client) closed on its next start.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crm::db::embedded::PgBinaries;
use crm::db::EmbeddedPostgres;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::support::{cluster, cluster_options};

#[tokio::test]
async fn the_cluster_refuses_tcp_clients_and_other_os_users() {
    let cluster = cluster();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", cluster.port)).is_err(),
        "the cluster answers on 127.0.0.1:{}",
        cluster.port
    );
    assert!(std::net::TcpStream::connect(("::1", cluster.port)).is_err());

    let Some(psql) = psql() else {
        println!("note: psql is not installed; skipping the checks as another OS user");
        return;
    };
    if !is_root() {
        println!("note: not root; skipping the checks as another OS user (they need runuser)");
        return;
    }
    // As root, the operator's way in works: the socket folder and the
    // cluster's own URL (libpq reads it as tokio-postgres does).
    let socket_dir = cluster.socket_dir.to_str().unwrap();
    let port = cluster.port.to_string();
    let by_folder = run(Command::new(&psql)
        .args(["-h", socket_dir, "-p", &port])
        .args(SELECT_ONE));
    assert!(by_folder.0, "root connects through the socket folder: {}", by_folder.1);
    let by_url = run(Command::new(&psql).arg(&cluster.admin_url).args(["-c", "select 1"]));
    assert!(by_url.0, "psql reads the cluster's URL: {}", by_url.1);

    // Any other account is refused, over the socket and over TCP.
    let other = other_user(&cluster.socket_dir);
    for host in [socket_dir, "127.0.0.1", "localhost"] {
        let (connected, output) = run(Command::new("runuser")
            .args(["-u", other, "--"])
            .arg(&psql)
            .args(["-h", host, "-p", &port])
            .args(SELECT_ONE));
        assert!(!connected, "{other} connected through {host}: {output}");
    }
}

#[test]
fn the_cluster_files_are_private() {
    let cluster = cluster();
    let log = cluster.data_dir.join("postgres.log");
    assert_eq!(mode(&log), 0o600, "{}", log.display());
    assert_eq!(mode(&cluster.socket_dir), 0o700, "{}", cluster.socket_dir.display());
    let cluster_user = std::fs::metadata(&cluster.pgdata).unwrap().uid();
    assert_eq!(std::fs::metadata(&cluster.socket_dir).unwrap().uid(), cluster_user);
    // The data folder: closed to others; at most its group (the cluster's
    // user's, when we are root) may pass through it.
    let data_dir = mode(&cluster.data_dir);
    assert_eq!(data_dir & 0o067, 0, "data folder mode {data_dir:o}");
    if data_dir & 0o010 != 0 {
        let gid = std::fs::metadata(&cluster.data_dir).unwrap().gid();
        assert_eq!(gid, std::fs::metadata(&cluster.pgdata).unwrap().gid());
    }
    for path in files_under(&cluster.pgdata) {
        // The running cluster may remove a file meanwhile.
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let mode = meta.mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is mode {mode:o}", path.display());
    }
}

#[tokio::test]
async fn a_cluster_left_open_to_tcp_by_an_older_version_comes_back_socket_only() {
    let data_dir = std::env::temp_dir().join(format!("crm-test-{}-upgrade", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let options = cluster_options(true);
    let mut cluster = EmbeddedPostgres::start(&data_dir, options.clone()).await.unwrap();
    cluster.stop().await;

    // What older versions left: trust for TCP clients, a TCP listener in
    // the configuration, a log and a data folder anyone could read.
    let pgdata = cluster.pgdata().to_path_buf();
    append(
        &pgdata.join("pg_hba.conf"),
        "host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n",
    );
    append(&pgdata.join("postgresql.conf"), "listen_addresses = '127.0.0.1'\n");
    let log = data_dir.join("postgres.log");
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut cluster = EmbeddedPostgres::start(&data_dir, options.clone()).await.unwrap();
    let hba = std::fs::read_to_string(pgdata.join("pg_hba.conf")).unwrap();
    let rules: Vec<&str> = hba
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    assert!(
        !rules.is_empty() && rules.iter().all(|l| l.starts_with("local ")),
        "{hba}"
    );
    assert_eq!(mode(&pgdata.join("pg_hba.conf")), 0o600);
    let mut conn = AsyncPgConnection::establish(&cluster.url("postgres")).await.unwrap();
    let listening: Vec<Text> = diesel::sql_query("SELECT current_setting('listen_addresses') AS text")
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(listening[0].text, "");
    let tcp_rules: Vec<Text> =
        diesel::sql_query("SELECT count(*)::text AS text FROM pg_hba_file_rules WHERE type <> 'local'")
            .load(&mut conn)
            .await
            .unwrap();
    assert_eq!(tcp_rules[0].text, "0");
    drop(conn);
    assert!(std::net::TcpStream::connect(("127.0.0.1", cluster.port())).is_err());
    assert_eq!(mode(&log), 0o600);
    assert_eq!(mode(&data_dir) & 0o067, 0, "data folder mode {:o}", mode(&data_dir));
    cluster.stop().await;
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[derive(diesel::QueryableByName)]
struct Text {
    #[diesel(sql_type = diesel::sql_types::Text)]
    text: String,
}

const SELECT_ONE: [&str; 6] = ["-U", "postgres", "-d", "postgres", "-c", "select 1"];

/// psql on PATH or beside the server binaries.
fn psql() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("psql"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| Some(PgBinaries::find().ok()?.dir.join("psql")).filter(|p| p.is_file()))
}

/// An unprivileged account other than the one the cluster runs as.
fn other_user(socket_dir: &Path) -> &'static str {
    let owner = std::fs::metadata(socket_dir).unwrap().uid();
    let nobody = Command::new("id").args(["-u", "nobody"]).output().unwrap();
    if String::from_utf8_lossy(&nobody.stdout).trim() == owner.to_string() {
        "daemon"
    } else {
        "nobody"
    }
}

/// Runs a client with no password prompt and a short timeout: whether it
/// succeeded, and what it printed.
fn run(command: &mut Command) -> (bool, String) {
    let output = command
        .env("PGCONNECT_TIMEOUT", "5")
        .env_remove("PGPASSWORD")
        .arg("-w")
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every file and folder below `dir`, not following links.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(path.clone());
            }
            found.push(path);
        }
    }
    found
}

#[allow(unsafe_code)]
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

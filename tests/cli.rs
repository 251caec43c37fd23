//! The `crm` binary as a user runs it: schema printing, the embedded
//! cluster's start, crash recovery and shutdown, and the error a machine
//! without PostgreSQL gets.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::{json, Value};

use crate::support::http_request;

pub(crate) fn crm() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_crm"));
    command.env_remove("DATABASE_URL").env("RUST_LOG", "warn");
    command
}

/// `crm` on the database at `url`, with its local state in `dir`.
fn crm_on(dir: &std::path::Path, url: &str) -> Command {
    let mut command = crm();
    command.arg("--data-dir").arg(dir).env("DATABASE_URL", url);
    command
}

pub(crate) fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crm-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn schema_print_writes_the_checked_in_sdl() {
    let output = crm().args(["schema", "print"]).output().unwrap();
    assert!(output.status.success());
    let printed = String::from_utf8(output.stdout).unwrap();
    let file = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql")).unwrap();
    assert!(printed == file, "`crm schema print` differs from schema.graphql");
    assert!(printed.contains("type Account"));
}

#[test]
fn missing_postgres_binaries_name_the_package_to_install() {
    let dir = scratch_dir("nopg");
    let output = crm()
        .args(["migrate", "--data-dir"])
        .arg(&dir)
        .env("PG_BIN", "/nonexistent/postgresql/bin")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("apt-get install postgresql"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn migrate_uses_database_url_without_a_launcher() {
    let url = crate::support::fresh_database().await;
    let dir = scratch_dir("external");
    let output = crm()
        .args(["migrate", "--data-dir"])
        .arg(&dir)
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("crm_system: up to date") && stdout.contains("crm: up to date"),
        "{stdout}"
    );
    assert!(
        !dir.join("pgdata").exists(),
        "no embedded cluster when DATABASE_URL is set"
    );
}

#[test]
fn as_root_a_data_dir_postgres_cannot_enter_gets_a_linked_cluster() {
    if unsafe_is_root() {
        let locked = scratch_dir("locked");
        std::fs::create_dir_all(&locked).unwrap();
        std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let data_dir = locked.join("data");
        let output = crm().args(["migrate", "--data-dir"]).arg(&data_dir).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert!(String::from_utf8_lossy(&output.stdout).contains("crm: applied"));
        let target = std::fs::read_link(data_dir.join("pgdata")).expect("pgdata is a link");
        assert!(target.starts_with("/var/lib/crm/clusters"), "{}", target.display());
        assert!(target.join("PG_VERSION").is_file());
        // The relocated home is the one folder the PostgreSQL user passes
        // through (by group); the data folder stays closed.
        let home = target.parent().unwrap();
        assert_eq!(mode(home), 0o710);
        assert_eq!(mode(&data_dir), 0o700);
        assert_eq!(mode(&home.join("run")), 0o700);
        assert_eq!(mode(&data_dir.join("postgres.log")), 0o600);
        // The next command finds the same cluster through the link.
        let again = crm().args(["migrate", "--data-dir"]).arg(&data_dir).output().unwrap();
        assert!(String::from_utf8_lossy(&again.stdout).contains("crm: up to date"));
        let _ = std::fs::remove_dir_all(target.parent().unwrap());
        let _ = std::fs::remove_dir_all(&locked);
    }
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[allow(unsafe_code)]
fn unsafe_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Starts `crm serve` on a free port and returns it with its address and
/// what it printed up to its authentication hint.
pub(crate) fn serve(data_dir: &Path) -> (Child, std::net::SocketAddr, String) {
    let mut child = crm()
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut printed = String::new();
    let mut addr = None;
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        printed.push_str(&line);
        printed.push('\n');
        if let Some(url) = line.strip_prefix("CRM server listening on http://") {
            addr = Some(url.trim().parse().unwrap());
        }
        if let (Some(addr), true) = (addr, line.contains("Authorization: Bearer")) {
            // Keep draining stdout so the server never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return (child, addr, printed);
        }
    }
    let _ = child.kill();
    let status = child.wait();
    panic!("serve did not print its URL within 60 s ({status:?})");
}

pub(crate) async fn graphql(addr: std::net::SocketAddr, token: &str, query: &str) -> Value {
    let body = json!({ "query": query }).to_string().into_bytes();
    let bearer = format!("Bearer {token}");
    http_request(
        addr,
        Method::POST,
        "/graphql",
        &[("content-type", "application/json"), ("authorization", &bearer)],
        body,
    )
    .await
    .json()
}

/// Reads one HTTP/1.1 response with a `content-length` off a kept-alive
/// connection.
async fn read_one_response(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut read = Vec::new();
    let mut buffer = [0_u8; 4096];
    loop {
        let n = stream.read(&mut buffer).await.unwrap();
        assert!(n > 0, "the connection closed: {}", String::from_utf8_lossy(&read));
        read.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&read).into_owned();
        let Some(end) = text.find("\r\n\r\n") else { continue };
        let length = text[..end]
            .lines()
            .find_map(|line| {
                line.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap())
            })
            .expect("a content-length");
        if read.len() >= end + 4 + length {
            return text;
        }
    }
}

pub(crate) fn wait_for_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "crm did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[allow(unsafe_code)]
pub(crate) fn signal(child: &Child, signal: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
}

fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_survives_kill_9_and_stops_cleanly_on_sigterm() {
    let dir = scratch_dir("serve");
    let pid_file = dir.join("pgdata/postmaster.pid");

    let (mut first, addr, printed) = serve(&dir);
    // The first start creates an administrator and shows its token once,
    // also keeping it in a file only its owner may read.
    let token_file = dir.join("admin-token");
    let token = std::fs::read_to_string(&token_file).unwrap().trim().to_owned();
    assert!(token.starts_with("crm_"), "{token}");
    assert!(printed.contains(&token), "{printed}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let created = graphql(
        addr,
        &token,
        "mutation { createAccount(input: { name: \"Survivor\" }) { id } }",
    )
    .await;
    assert!(created["data"]["createAccount"]["id"].is_string(), "{created}");

    // kill -9: no cleanup runs in the server; its cluster must not be left
    // running, and the next start must come up on the same data.
    signal(&first, libc::SIGKILL);
    wait_for_exit(&mut first);
    wait_until("the orphaned cluster stops", || !pid_file.exists());

    let (mut second, addr, printed) = serve(&dir);
    assert!(!printed.contains(&token), "the token is shown only once: {printed}");
    assert!(printed.contains("admin-token"), "{printed}");
    let read = graphql(addr, &token, "{ accounts { nodes { name } } }").await;
    assert_eq!(read["data"]["accounts"]["nodes"], json!([{ "name": "Survivor" }]));

    // A command run beside the server joins its cluster instead of starting one.
    let seeded = crm().args(["seed", "--demo", "--data-dir"]).arg(&dir).output().unwrap();
    assert!(seeded.status.success(), "{}", String::from_utf8_lossy(&seeded.stderr));
    assert!(String::from_utf8_lossy(&seeded.stdout).contains("already has accounts"));
    assert!(pid_file.exists(), "seed must not stop the server's cluster");

    // Tokens from the command line: created, listed, used, revoked.
    let created = crm()
        .args([
            "token",
            "create",
            "--user",
            "admin@crm.local",
            "--role",
            "read_only",
            "--expires",
            "1d",
            "--data-dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let cli_token = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    let read = graphql(addr, &cli_token, "{ accounts { totalCount } }").await;
    assert_eq!(read["data"]["accounts"]["totalCount"], 1, "{read}");
    let listed = crm().args(["token", "list", "--data-dir"]).arg(&dir).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let id = cli_token
        .strip_prefix("crm_")
        .unwrap()
        .split('_')
        .next()
        .unwrap()
        .parse::<uuid::Uuid>()
        .unwrap();
    let line = listed
        .lines()
        .find(|l| l.starts_with(&id.to_string()))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(line.contains("READ_ONLY") && line.contains("command line"), "{line}");
    assert!(
        // The secret is URL-safe base64, which may itself hold `_`.
        !listed.contains(cli_token.splitn(3, '_').nth(2).unwrap()),
        "secrets are never listed"
    );
    let revoked = crm()
        .args(["token", "revoke", &id.to_string(), "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = graphql(addr, &cli_token, "{ accounts { totalCount } }").await;
        if answer["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED" {
            break;
        }
        assert!(Instant::now() < deadline, "a revoked token still works: {answer}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // SIGTERM while a request is half sent: the server finishes it, then stops.
    // The connection first gets a whole answer (so the server has surely
    // taken it), then sends the next request's head and part of its body.
    let (sent, half_sent) = tokio::sync::oneshot::channel();
    let in_flight = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let body = json!({ "query": "{ accounts { totalCount } }" }).to_string();
        let head = |connection: &str| {
            format!(
                "POST /graphql HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
                 authorization: Bearer {token}\r\ncontent-length: {}\r\nconnection: {connection}\r\n\r\n",
                body.len()
            )
        };
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("{}{body}", head("keep-alive")).as_bytes())
            .await
            .unwrap();
        let first = read_one_response(&mut stream).await;
        assert!(first.starts_with("HTTP/1.1 200"), "{first}");
        stream.write_all(head("close").as_bytes()).await.unwrap();
        stream.write_all(&body.as_bytes()[..10]).await.unwrap();
        sent.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        stream.write_all(&body.as_bytes()[10..]).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    });
    half_sent.await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    signal(&second, libc::SIGTERM);
    let response = in_flight.await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains(r#"{"data":{"accounts":{"totalCount":1}}}"#),
        "{response}"
    );
    assert!(wait_for_exit(&mut second).success());
    assert!(!pid_file.exists(), "SIGTERM stops the cluster too");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sandbox_commands_create_list_refresh_delete_and_migrate_every_sandbox() {
    let url = crate::support::fresh_database().await;
    let dir = scratch_dir("sandboxes");
    let run = |args: &[&str]| {
        let output = crm_on(&dir, &url).args(args).output().unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, stdout, stderr) = run(&[
        "sandbox",
        "create",
        "qa",
        "--mode",
        "full",
        "--mask",
        "--description",
        "for testers",
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("made the sandbox qa (FULL)"), "{stdout}");
    assert!(stdout.contains("/sandboxes/qa/graphql"), "{stdout}");
    let (ok, stdout, _) = run(&["sandbox", "list"]);
    assert!(ok);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("qa "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.contains("FULL") && line.contains("yes") && line.contains("for testers"),
        "{line}"
    );
    // Upgrades reach every sandbox.
    let (ok, stdout, _) = run(&["migrate"]);
    assert!(ok);
    assert!(stdout.contains("sandbox_qa: up to date"), "{stdout}");
    let (ok, stdout, stderr) = run(&["sandbox", "refresh", "qa", "--mode", "sample", "--sample-size", "3"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("made the sandbox qa again (SAMPLE)"), "{stdout}");
    let (ok, _, stderr) = run(&["sandbox", "create", "Not-Valid"]);
    assert!(!ok);
    assert!(stderr.contains("lowercase letters, digits and underscores"), "{stderr}");
    let (ok, _, stderr) = run(&["sandbox", "create", "qa"]);
    assert!(!ok);
    assert!(stderr.contains("already a sandbox named qa"), "{stderr}");
    let (ok, stdout, _) = run(&["sandbox", "delete", "qa"]);
    assert!(ok);
    assert!(stdout.contains("deleted the sandbox qa"));
    let (ok, _, stderr) = run(&["sandbox", "delete", "qa"]);
    assert!(!ok);
    assert!(stderr.contains("there is no sandbox qa"), "{stderr}");
    let (_, stdout, _) = run(&["sandbox", "list"]);
    assert!(!stdout.lines().any(|l| l.starts_with("qa ")), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `crm report forecast`, `funnel` and `churn` print the demo data's
/// figures as tables.
#[tokio::test]
async fn report_commands_print_the_forecast_and_the_funnel() {
    let url = crate::support::fresh_database().await;
    let dir = scratch_dir("report");
    let run = |args: &[&str]| {
        let output = crm_on(&dir, &url).args(args).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    run(&["seed", "--demo"]);
    let forecast = run(&["report", "forecast", "--from", "2026-01-01", "--to", "2028-01-01"]);
    // The demo deals closing in Q2 2027: 780,000 in Negotiation/Review (COMMIT, 80 %) and 215,000 won.
    let q2 = forecast
        .lines()
        .find(|l| l.starts_with("2027-04-01"))
        .unwrap_or_else(|| panic!("{forecast}"));
    let cells: Vec<&str> = q2.split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "2027-04-01",
            "all",
            "USD",
            "2",
            "780000.00",
            "839000.00",
            "995000.00",
            "995000.00",
            "215000.00"
        ]
    );
    let funnel = run(&["report", "funnel"]);
    assert!(funnel.lines().any(|l| l.starts_with("Closed Won")), "{funnel}");
    assert!(funnel.contains("win rate 50.0 %"), "{funnel}");
    assert!(funnel.contains("stale now"), "{funnel}");
    // The demo's six customers since June 2025; Umbrella churned in September 2026.
    let churn = run(&["report", "churn", "--from", "2026-01-01", "--to", "2027-01-01"]);
    let q3: Vec<&str> = churn
        .lines()
        .find(|l| l.starts_with("2026-07-01"))
        .unwrap_or_else(|| panic!("{churn}"))
        .split_whitespace()
        .collect();
    assert_eq!(q3, ["2026-07-01", "2026-10-01", "6", "0", "1", "5", "16.7", "%"]);
    let _ = std::fs::remove_dir_all(&dir);
}

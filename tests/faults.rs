//! The server keeps working through faults of its database, injected for
//! real into a real `crm serve`: the embedded postmaster killed (`kill -9`)
//! or paused (SIGSTOP), the command that started the cluster ending under
//! the server, a second server on the same folder, SIGTERM with a write
//! in flight.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

fn crm() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_crm"));
    command.env_remove("DATABASE_URL").env("RUST_LOG", "warn");
    command
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crm-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A running `crm serve`, killed when dropped (a failed test leaves none).
struct Serve {
    child: Child,
    addr: SocketAddr,
    token: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `crm serve` on a free port with `flags`, once it listens.
fn serve(dir: &Path, flags: &[&str]) -> Serve {
    let mut child = crm()
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(dir)
        .args(flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addr = None;
    while let Some(Ok(line)) = lines.next() {
        if let Some(url) = line.strip_prefix("CRM server listening on http://") {
            addr = Some(url.trim().parse().unwrap());
        }
        if let (Some(addr), true) = (addr, line.contains("Authorization: Bearer")) {
            std::thread::spawn(move || for _ in lines {});
            let token = std::fs::read_to_string(dir.join("admin-token"))
                .unwrap()
                .trim()
                .to_owned();
            return Serve { child, addr, token };
        }
    }
    let status = child.wait();
    panic!("serve ended before listening ({status:?})");
}

/// One HTTP request that may fail (the server may be stopping): status,
/// headers and body, or why there was no answer.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Result<Answer, String> {
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::from(body.map(|b| b.to_string()).unwrap_or_default())))
        .unwrap();
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let (status, headers) = (response.status(), response.headers().clone());
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok(Answer { status, headers, json })
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.json["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
    }
}

async fn graphql(server: &Serve, token: &str, query: &str, variables: Value) -> Result<Answer, String> {
    let body = json!({ "query": query, "variables": variables });
    request(server.addr, "POST", "/graphql", token, Some(body)).await
}

async fn status(server: &Serve, path: &str) -> Option<StatusCode> {
    request(server.addr, "GET", path, "", None).await.ok().map(|a| a.status)
}

/// Polls `check` until it holds, for at most `seconds`.
async fn eventually(what: &str, seconds: u64, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The postmaster's pid, from `postmaster.pid`.
fn postmaster(dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(dir.join("pgdata/postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// A process's parent and state (`R`, `S`, `Z` …), from `/proc`.
fn parent_and_state(pid: i32) -> Option<(i32, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1.trim_start();
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    Some((fields.next()?.parse().ok()?, state))
}

#[allow(unsafe_code)]
fn signal(pid: i32, signal: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// The postmaster and its server processes (which are not in its process
/// group): everything a pause must stop.
fn cluster_processes(postmaster: i32) -> Vec<i32> {
    let mut pids = vec![postmaster];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if parent_and_state(pid).is_some_and(|(parent, _)| parent == postmaster) {
            pids.push(pid);
        }
    }
    pids
}

fn wait_for_exit(child: &mut Child, seconds: u64) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

const CREATE: &str = "mutation($name: String!) { createAccount(input: { name: $name }) { id } }";
const READ: &str = "query($id: ID!) { account(id: $id) { id name } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_cluster_is_restarted_and_requests_are_refused_unavailable_meanwhile() {
    let dir = scratch_dir("supervised");
    let server = serve(&dir, &["--request-timeout-ms", "5000"]);
    let token = server.token.clone();
    let created = graphql(&server, &token, CREATE, json!({ "name": "Before" }))
        .await
        .unwrap();
    let id = created.json["data"]["createAccount"]["id"].as_str().unwrap().to_owned();

    // kill -9 the postmaster, and keep it from coming back for a while:
    // a configuration error makes every restart fail.
    let conf = dir.join("pgdata/postgresql.conf");
    let good_conf = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, format!("{good_conf}\nthis line is not a setting\n")).unwrap();
    let killed = postmaster(&dir).unwrap();
    signal(killed, libc::SIGKILL);

    eventually("/readyz says the database is down", 20, async || {
        status(&server, "/readyz").await == Some(StatusCode::SERVICE_UNAVAILABLE)
    })
    .await;
    let refused = graphql(&server, &token, READ, json!({ "id": id })).await.unwrap();
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", refused.json);
    assert_eq!(refused.code(), "UNAVAILABLE", "{}", refused.json);
    assert!(refused.headers.contains_key("retry-after"), "{:?}", refused.headers);
    // The dead postmaster was reaped: no zombie under the server.
    eventually("the killed postmaster is reaped", 10, async || {
        parent_and_state(killed).is_none_or(|(_, state)| state != 'Z')
    })
    .await;
    // The process lives, but with the database beyond repair it is unhealthy.
    eventually("/healthz gives up on the database", 45, async || {
        status(&server, "/healthz").await == Some(StatusCode::SERVICE_UNAVAILABLE)
    })
    .await;

    // Repaired: the next restart brings everything back, no restart of serve.
    std::fs::write(&conf, good_conf).unwrap();
    eventually("/readyz is ready again", 30, async || {
        status(&server, "/readyz").await == Some(StatusCode::OK)
    })
    .await;
    assert_eq!(status(&server, "/healthz").await, Some(StatusCode::OK));
    let read = graphql(&server, &token, READ, json!({ "id": id })).await.unwrap();
    assert_eq!(read.json["data"]["account"]["name"], "Before", "{}", read.json);
    let restarted = postmaster(&dir).unwrap();
    assert_ne!(restarted, killed);
    assert_eq!(starter(restarted), Some(server.child.id() as i32));

    // kill -9 of the keeper takes its postmaster with it; the server starts
    // both again.
    let keeper = parent_and_state(restarted).unwrap().0;
    signal(keeper, libc::SIGKILL);
    eventually("the cluster of a killed keeper runs again", 30, async || {
        postmaster(&dir).is_some_and(|pid| pid != restarted && starter(pid).is_some())
            && status(&server, "/readyz").await == Some(StatusCode::OK)
    })
    .await;
    let read = graphql(&server, &token, READ, json!({ "id": id })).await.unwrap();
    assert_eq!(read.json["data"]["account"]["name"], "Before", "{}", read.json);
    eventually("the killed keeper is reaped", 10, async || {
        parent_and_state(keeper).is_none_or(|(_, state)| state != 'Z')
    })
    .await;
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The process that started the cluster `postmaster` belongs to: the
/// parent of its keeper (`crm keep-cluster`).
fn starter(postmaster: i32) -> Option<i32> {
    let (keeper, _) = parent_and_state(postmaster)?;
    let cmdline = std::fs::read(format!("/proc/{keeper}/cmdline")).ok()?;
    assert!(
        String::from_utf8_lossy(&cmdline).contains("keep-cluster"),
        "the postmaster's parent is not its keeper"
    );
    Some(parent_and_state(keeper)?.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_keeps_the_cluster_of_a_command_that_ends_and_refuses_a_second_serve() {
    let dir = scratch_dir("handover");
    let migrated = crm().args(["migrate", "--data-dir"]).arg(&dir).output().unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    // A long command starts the cluster; the server joins it.
    let mut seed = crm()
        .args(["seed", "--bench", "--data-dir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let seed_pid = seed.id() as i32;
    eventually("the command starts the cluster", 60, async || {
        postmaster(&dir).and_then(starter) == Some(seed_pid)
    })
    .await;
    let server = serve(&dir, &[]);
    let token = server.token.clone();
    let before = postmaster(&dir).unwrap();

    // A second server on the same folder is refused, naming the first.
    let second = crm()
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    let expected = format!("another crm serve (pid {}) is already serving", server.child.id());
    assert!(stderr.contains(&expected), "{stderr}");

    // The command ends (interrupted mid-load); the cluster runs on for the
    // server, which answers every request throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, addr, token) = (stop.clone(), server.addr, token.clone());
        tokio::spawn(async move {
            let body = json!({ "query": "{ accounts(first: 1) { totalCount } }" });
            let mut answers = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let read = request(addr, "POST", "/graphql", &token, Some(body.clone())).await;
                answers.push(read.map(|read| (read.status, read.json)));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answers
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(seed_pid, libc::SIGINT);
    assert!(wait_for_exit(&mut seed, 30).is_some(), "seed did not end");
    // Longer than the keeper and the supervisor take to look.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    let answers = reader.await.unwrap();
    assert!(answers.len() > 20, "{}", answers.len());
    for answer in &answers {
        let ok = answer.as_ref().is_ok_and(|(status, json)| {
            *status == StatusCode::OK && json["data"]["accounts"]["totalCount"].is_number()
        });
        assert!(ok, "{answer:?}");
    }
    assert_eq!(postmaster(&dir), Some(before), "the cluster was not restarted");

    // Its last user gone, the cluster stops, even when that user is killed.
    drop(server);
    eventually("the cluster stops with its last user", 30, async || {
        postmaster(&dir).is_none()
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the load saw: acknowledged ids, refusals by code, and the longest
/// wait for an answer.
#[derive(Debug, Default)]
struct Load {
    acknowledged: Vec<String>,
    refused: Vec<String>,
    longest: Duration,
    successes: usize,
}

/// Clients writing and reading until `stop`; every answer is a success or
/// a coded refusal, and none comes later than `limit`.
fn start_load(
    server: &Serve,
    token: &str,
    clients: usize,
    stop: &Arc<AtomicBool>,
    load: &Arc<Mutex<Load>>,
    limit: Duration,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|client| {
            let (addr, token, stop, load) = (server.addr, token.to_owned(), stop.clone(), load.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let (query, variables) = if n % 3 == 0 {
                        ("{ accounts(first: 5) { totalCount nodes { id } } }", json!({}))
                    } else {
                        (CREATE, json!({ "name": format!("load-{client}-{n}") }))
                    };
                    let started = Instant::now();
                    let body = json!({ "query": query, "variables": variables });
                    let answer =
                        tokio::time::timeout(limit, request(addr, "POST", "/graphql", &token, Some(body))).await;
                    let took = started.elapsed();
                    let answer = answer.unwrap_or_else(|_| panic!("a request hung past {limit:?}"));
                    let answer = answer.unwrap_or_else(|err| panic!("no answer: {err}"));
                    if !record(&load, took, &answer) {
                        // Refused: back off a little, as Retry-After asks.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            })
        })
        .collect()
}

/// Counts an answer of the load: true for a success; anything else must
/// be a coded 503.
fn record(load: &Mutex<Load>, took: Duration, answer: &Answer) -> bool {
    let mut load = load.lock().unwrap();
    load.longest = load.longest.max(took);
    if answer.status == StatusCode::OK && answer.json.get("errors").is_none() {
        load.successes += 1;
        if let Some(id) = answer.json["data"]["createAccount"]["id"].as_str() {
            load.acknowledged.push(id.to_owned());
        }
        return true;
    }
    let code = answer.code().to_owned();
    assert!(
        answer.status == StatusCode::SERVICE_UNAVAILABLE && ["UNAVAILABLE", "TIMEOUT"].contains(&code.as_str()),
        "{}: {}",
        answer.status,
        answer.json
    );
    load.refused.push(code);
    false
}

/// Waits until the load has had `more` successes beyond what it had.
async fn recovers(load: &Arc<Mutex<Load>>, what: &str, more: usize) {
    let had = load.lock().unwrap().successes;
    eventually(what, 45, async || load.lock().unwrap().successes >= had + more).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_a_restart_and_a_stall_fail_fast_and_lose_no_acknowledged_write() {
    let dir = scratch_dir("load");
    let flags = ["--request-timeout-ms", "4000", "--statement-timeout-ms", "1000"];
    let server = serve(&dir, &flags);
    // A non-admin token: an admin's mutations are not bound by the request timeout.
    let created = crm()
        .args([
            "token",
            "create",
            "--user",
            "admin@crm.local",
            "--role",
            "sales",
            "--data-dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let token = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let load = Arc::new(Mutex::new(Load::default()));
    // The request timeout, plus room for a loaded machine.
    let limit = Duration::from_secs(10);
    let clients = start_load(&server, &token, 4, &stop, &load, limit);
    recovers(&load, "the load runs", 20).await;

    // (a) A crash: the supervisor restarts PostgreSQL under the load.
    signal(postmaster(&dir).unwrap(), libc::SIGKILL);
    eventually("the load sees the outage", 20, async || {
        !load.lock().unwrap().refused.is_empty()
    })
    .await;
    recovers(&load, "the load recovers from the crash", 20).await;

    // (b) A stall longer than the statement timeout: every process paused.
    let paused = cluster_processes(postmaster(&dir).unwrap());
    let refused_before = load.lock().unwrap().refused.len();
    for pid in &paused {
        signal(*pid, libc::SIGSTOP);
    }
    eventually("the load is refused during the stall", 20, async || {
        load.lock().unwrap().refused.len() > refused_before
    })
    .await;
    for pid in &paused {
        signal(*pid, libc::SIGCONT);
    }
    recovers(&load, "the load recovers from the stall", 20).await;

    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    let load = std::mem::take(&mut *load.lock().unwrap());
    assert!(load.longest < limit, "{:?}", load.longest);
    // Every acknowledged write is there, each exactly once.
    for id in &load.acknowledged {
        let read = graphql(&server, &server.token, READ, json!({ "id": id }))
            .await
            .unwrap();
        assert_eq!(
            read.json["data"]["account"]["id"],
            id.as_str(),
            "lost {id}: {}",
            read.json
        );
    }
    let total = graphql(&server, &server.token, "{ accounts { totalCount } }", json!({}))
        .await
        .unwrap();
    let total = total.json["data"]["accounts"]["totalCount"].as_u64().unwrap();
    assert!(
        total >= load.acknowledged.len() as u64,
        "{total} < {}",
        load.acknowledged.len()
    );
    println!(
        "acknowledged {} writes, {} refusals ({:?}), longest answer {:?}",
        load.acknowledged.len(),
        load.refused.len(),
        load.refused.iter().collect::<std::collections::BTreeSet<_>>(),
        load.longest
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[derive(diesel::QueryableByName)]
struct Name {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

/// A connection straight to the `crm` database of the cluster in `dir`
/// (joined, or started when none runs).
async fn sql(dir: &Path) -> (crm::db::EmbeddedPostgres, diesel_async::AsyncPgConnection) {
    use diesel_async::AsyncConnection;
    let cluster = crm::db::EmbeddedPostgres::start(dir, crate::support::cluster_options(false))
        .await
        .unwrap();
    let conn = diesel_async::AsyncPgConnection::establish(&cluster.url("crm"))
        .await
        .unwrap();
    (cluster, conn)
}

/// A connection straight to the `crm` database of the cluster a server in
/// `dir` runs; it does not keep the cluster running once the server ends.
async fn connect(dir: &Path) -> diesel_async::AsyncPgConnection {
    sql(dir).await.1
}

/// Holds the account's row lock from another session, sends a rename
/// (which waits for the lock) and returns it once it waits.
async fn rename_held_back(
    server: &Serve,
    lock: &mut diesel_async::AsyncPgConnection,
    watch: &mut diesel_async::AsyncPgConnection,
    id: &str,
    name: &str,
) -> tokio::task::JoinHandle<Result<Answer, String>> {
    use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
    lock.batch_execute(&format!(
        "BEGIN; SELECT 1 FROM crm.account WHERE id = '{id}' FOR UPDATE"
    ))
    .await
    .unwrap();
    let (addr, token) = (server.addr, server.token.clone());
    let query = "mutation($id: ID!, $name: String!) { updateAccount(id: $id, input: { name: $name }) { id name } }";
    let body = json!({ "query": query, "variables": { "id": id, "name": name } });
    let rename = tokio::spawn(async move { request(addr, "POST", "/graphql", &token, Some(body)).await });
    let waiting = "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = 'crm'";
    eventually("the rename waits for the row lock", 30, async || {
        let rows: Vec<Count> = diesel::sql_query(waiting).load(watch).await.unwrap();
        rows[0].n > 0
    })
    .await;
    rename
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_write_in_flight_finish_within_the_shutdown_timeout() {
    use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
    let dir = scratch_dir("shutdown");
    let mut server = serve(&dir, &["--shutdown-timeout-ms", "3000"]);
    let created = graphql(&server, &server.token, CREATE, json!({ "name": "Original" }))
        .await
        .unwrap();
    let id = created.json["data"]["createAccount"]["id"].as_str().unwrap().to_owned();

    // A write in flight at SIGTERM finishes, and is acknowledged, before
    // the server stops; new connections are refused meanwhile.
    let (mut lock, mut watch) = (connect(&dir).await, connect(&dir).await);
    let rename = rename_held_back(&server, &mut lock, &mut watch, &id, "Renamed").await;
    signal(server.child.id() as i32, libc::SIGTERM);
    eventually("the server stops accepting", 10, async || {
        tokio::net::TcpStream::connect(server.addr).await.is_err()
    })
    .await;
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server left before its request finished"
    );
    lock.batch_execute("COMMIT").await.unwrap();
    let renamed = rename.await.unwrap().unwrap();
    assert_eq!(
        renamed.json["data"]["updateAccount"]["name"], "Renamed",
        "{}",
        renamed.json
    );
    assert!(wait_for_exit(&mut server.child, 30).unwrap().success());
    assert!(postmaster(&dir).is_none(), "the server stops the cluster it started");
    drop((lock, watch));

    // One that outlasts the shutdown timeout is cut off: the server stops
    // anyway, and the write it never acknowledged was not applied.
    let mut server = serve(&dir, &["--shutdown-timeout-ms", "3000"]);
    let read = graphql(&server, &server.token, READ, json!({ "id": id }))
        .await
        .unwrap();
    assert_eq!(
        read.json["data"]["account"]["name"], "Renamed",
        "the acknowledged write survives a restart"
    );
    let (mut lock, mut watch) = (connect(&dir).await, connect(&dir).await);
    let rename = rename_held_back(&server, &mut lock, &mut watch, &id, "Lost").await;
    let stopping = Instant::now();
    signal(server.child.id() as i32, libc::SIGTERM);
    assert!(wait_for_exit(&mut server.child, 30).unwrap().success());
    assert!(
        stopping.elapsed() >= Duration::from_millis(2500),
        "{:?}",
        stopping.elapsed()
    );
    let answered = rename.await.unwrap();
    assert!(
        !answered
            .as_ref()
            .is_ok_and(|a| a.json["data"]["updateAccount"].is_object()),
        "{answered:?}"
    );
    drop((lock, watch));
    let (mut cluster, mut conn) = sql(&dir).await;
    let names: Vec<Name> = diesel::sql_query(format!("SELECT name FROM crm.account WHERE id = '{id}'"))
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(names[0].name, "Renamed");
    drop(conn);
    cluster.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

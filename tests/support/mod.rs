//! Test harness: one embedded PostgreSQL cluster per test run, one database
//! per test cloned from a migrated template, and a real server per test on
//! an ephemeral port, spoken to over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crm::db::{self, ClusterOptions, EmbeddedPostgres};
use crm::{App, Config};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

const TEMPLATE: &str = "crm_template";

/// The cluster shared by every test of this run.
pub struct Cluster {
    /// The URL of its `postgres` database; `db::with_database` names others.
    pub admin_url: String,
    pub port: u16,
    pub socket_dir: PathBuf,
    pub pgdata: PathBuf,
    /// The folder the cluster was started in (`--data-dir`).
    pub data_dir: PathBuf,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static NEXT_DATABASE: AtomicUsize = AtomicUsize::new(0);

/// A folder for this run's cluster under the system temp folder (reachable
/// by the unprivileged PostgreSQL user), removing those of finished runs.
fn cluster_dir() -> PathBuf {
    let base = std::env::temp_dir();
    if let Ok(entries) = std::fs::read_dir(&base) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.strip_prefix("crm-test-").and_then(|rest| rest.split('-').next());
            if let Some(pid) = pid.filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
                if !PathBuf::from(format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
    }
    base.join(format!("crm-test-{}", std::process::id()))
}

/// How the tests start clusters: kept by the crm binary under test, and
/// without fsync when `ephemeral`.
pub fn cluster_options(ephemeral: bool) -> ClusterOptions {
    ClusterOptions {
        ephemeral,
        keeper: PathBuf::from(env!("CARGO_BIN_EXE_crm")),
    }
}

/// Starts the cluster and builds the migrated template, once per run. The
/// cluster is used from a thread that lives as long as the test binary:
/// when the binary exits, nobody uses it any more and its keeper stops it.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("test-postgres".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let data_dir = cluster_dir();
                let cluster: anyhow::Result<EmbeddedPostgres> = runtime.block_on(async {
                    let cluster = EmbeddedPostgres::start(&data_dir, cluster_options(true)).await?;
                    let admin = cluster.url("postgres");
                    diesel_drop_database(&admin, TEMPLATE).await?;
                    db::create_database(&admin, TEMPLATE, None).await?;
                    db::migrate::migrate_all(&cluster.url(TEMPLATE)).await?;
                    Ok(cluster)
                });
                // Dropping the runtime closes the connections used above: a
                // session left on the template makes every clone of it wait.
                drop(runtime);
                match cluster {
                    Ok(cluster) => {
                        tx.send(Ok(Cluster {
                            admin_url: cluster.url("postgres"),
                            port: cluster.port(),
                            socket_dir: cluster.socket_dir().to_path_buf(),
                            pgdata: cluster.pgdata().to_path_buf(),
                            data_dir,
                        }))
                        .unwrap();
                        // Keep the cluster (and this thread, its parent) alive.
                        let _cluster = cluster;
                        loop {
                            std::thread::park();
                        }
                    }
                    Err(err) => tx.send(Err(format!("{err:#}"))).unwrap(),
                }
            })
            .unwrap();
        match rx.recv().unwrap() {
            Ok(cluster) => cluster,
            Err(err) => panic!("could not start the test PostgreSQL cluster: {err}"),
        }
    })
}

async fn diesel_drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let mut conn = AsyncPgConnection::establish(admin_url).await?;
    conn.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\""))
        .await?;
    Ok(())
}

/// The text at `path` in each element of the list `items` (a connection's
/// `nodes` or `edges`): `texts(&data["contacts"]["edges"], &["node", "lastName"])`.
pub fn texts(items: &serde_json::Value, path: &[&str]) -> Vec<String> {
    let list = items.as_array().unwrap_or_else(|| panic!("not a list: {items}"));
    list.iter()
        .map(|item| {
            let value = path.iter().fold(item, |value, key| &value[*key]);
            value
                .as_str()
                .unwrap_or_else(|| panic!("no text at {path:?} in {item}"))
                .to_owned()
        })
        .collect()
}

/// A fresh, migrated database of its own.
pub async fn fresh_database() -> String {
    let cluster = cluster();
    let name = format!(
        "test_{}_{}",
        std::process::id(),
        NEXT_DATABASE.fetch_add(1, Ordering::Relaxed)
    );
    db::create_database(&cluster.admin_url, &name, Some(TEMPLATE))
        .await
        .unwrap_or_else(|err| panic!("cloning the template database: {err:#}"));
    db::with_database(&cluster.admin_url, &name)
}

/// Sends one HTTP/1.1 request to a server on this machine.
pub async fn http_request(
    addr: std::net::SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> HttpResponse {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    http_request_on(stream, method, path, headers, body).await
}

/// Sends one HTTP/1.1 request from another address of this machine
/// (`127.0.0.2`: all of 127.0.0.0/8 is loopback), as another client would.
pub async fn http_request_from(
    source: std::net::Ipv4Addr,
    addr: std::net::SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> HttpResponse {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((source, 0).into()).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    http_request_on(stream, method, path, headers, body).await
}

async fn http_request_on(
    stream: tokio::net::TcpStream,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> HttpResponse {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = Request::builder().method(method).uri(path).header("host", "localhost");
    for (name, value) in headers {
        request = request.header(*name, HeaderValue::from_str(value).unwrap());
    }
    let response = sender
        .send_request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    HttpResponse { status, headers, body }
}

/// A running server over its own database.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub app: Arc<App>,
    pub database_url: String,
    /// The first admin's API token, sent with every request unless the
    /// test names its own `authorization` header.
    pub token: String,
}

/// A response as the test reads it.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl HttpResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

/// Serves `app` on an ephemeral port of this host, as `crm serve` does.
async fn serve(app: &Arc<App>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(crm::http::serve(listener, app.clone(), std::future::pending()));
    addr
}

impl TestApp {
    pub async fn start() -> TestApp {
        TestApp::start_with(Config::default()).await
    }

    pub async fn start_with(config: Config) -> TestApp {
        TestApp::on(config, fresh_database().await).await
    }

    /// A server with `config` on the migrated database at `database_url`.
    pub async fn on(config: Config, database_url: String) -> TestApp {
        let app = App::new(config, &database_url).expect("building the app");
        let token = {
            let mut conn = app.db.conn().await.unwrap();
            crm::auth::first_admin(&mut conn).await.unwrap().unwrap().token
        };
        let addr = serve(&app).await;
        TestApp {
            addr,
            app,
            database_url,
            token,
        }
    }

    /// A server that also runs automation's worker and the webhooks'
    /// delivery worker, as `crm serve` does (sending emails through
    /// `config.smtp`).
    pub async fn start_automated(config: Config) -> TestApp {
        let app = TestApp::start_with(config.clone()).await;
        crm::automation::worker::spawn(app.app.db.clone(), crm::app::ROOMS.record_hooks(), &config);
        crm::webhooks::delivery::spawn(app.app.db.clone(), &config);
        app
    }

    /// Another server with automation's and the webhooks' workers on the
    /// same database.
    pub async fn second_automated(&self, config: &Config) -> TestApp {
        let second = self.second_server().await;
        crm::automation::worker::spawn(second.app.db.clone(), crm::app::ROOMS.record_hooks(), config);
        crm::webhooks::delivery::spawn(second.app.db.clone(), config);
        second
    }

    /// Another server on the same database (as a second process would be),
    /// with the same admin token.
    pub async fn second_server(&self) -> TestApp {
        let app = App::new(Config::default(), &self.database_url).expect("building the app");
        let addr = serve(&app).await;
        TestApp {
            addr,
            app,
            database_url: self.database_url.clone(),
            token: self.token.clone(),
        }
    }

    /// Sends one HTTP request to the server, with the admin token.
    pub async fn request(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> HttpResponse {
        let bearer = format!("Bearer {}", self.token);
        let mut all = headers.to_vec();
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        {
            all.push(("authorization", &bearer));
        }
        http_request(self.addr, method, path, &all, body).await
    }

    /// Sends one HTTP request with no `Authorization` header.
    pub async fn request_without_token(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> HttpResponse {
        http_request(self.addr, method, path, headers, body).await
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        self.request(Method::GET, path, headers, Vec::new()).await
    }

    /// POSTs a GraphQL request and returns the whole response document.
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        let body = json!({ "query": query, "variables": variables })
            .to_string()
            .into_bytes();
        let response = self
            .request(Method::POST, "/graphql", &[("content-type", "application/json")], body)
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        response.json()
    }

    /// The `data` of a request that must succeed.
    pub async fn data(&self, query: &str, variables: Value) -> Value {
        let response = self.graphql(query, variables).await;
        assert!(response.get("errors").is_none(), "unexpected errors: {response:#}");
        response["data"].clone()
    }

    /// The single error of a request that must fail; checks it has a code.
    pub async fn error(&self, query: &str, variables: Value) -> Value {
        let response = self.graphql(query, variables).await;
        let errors = response["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("expected an error: {response:#}"));
        assert_eq!(errors.len(), 1, "{response:#}");
        assert!(
            errors[0]["extensions"]["code"].is_string(),
            "error without a code: {response:#}"
        );
        errors[0].clone()
    }

    /// SQL statements run so far, read from `/metrics`.
    pub async fn statements(&self) -> u64 {
        self.metric("crm_sql_statements_total").await
    }

    /// A counter from `/metrics`.
    pub async fn metric(&self, name: &str) -> u64 {
        let metrics = self.get("/metrics", &[]).await.text();
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in /metrics"))
    }

    /// POSTs a GraphQL request with another API token.
    pub async fn graphql_as(&self, token: &str, query: &str, variables: Value) -> Value {
        let body = json!({ "query": query, "variables": variables })
            .to_string()
            .into_bytes();
        let bearer = format!("Bearer {token}");
        let headers = [("content-type", "application/json"), ("authorization", bearer.as_str())];
        let response = self.request(Method::POST, "/graphql", &headers, body).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        response.json()
    }

    /// A new user with `role` and an API token for them: `(user id, token)`.
    pub async fn user(&self, email: &str, role: &str) -> (String, String) {
        let user = self
            .create("User", json!({ "name": email, "email": email, "role": role }))
            .await;
        let created = self
            .data(
                "mutation($input: CreateApiTokenInput!) { createApiToken(input: $input) { token } }",
                json!({ "input": { "userId": user, "name": "test" } }),
            )
            .await;
        (user, created["createApiToken"]["token"].as_str().unwrap().to_owned())
    }

    /// POSTs a GraphQL request to another endpoint (`/sandboxes/dev/graphql`),
    /// with `token` or the admin's.
    pub async fn graphql_at(&self, path: &str, token: Option<&str>, query: &str, variables: Value) -> HttpResponse {
        let body = json!({ "query": query, "variables": variables })
            .to_string()
            .into_bytes();
        let bearer = format!("Bearer {}", token.unwrap_or(&self.token));
        let headers = [("content-type", "application/json"), ("authorization", bearer.as_str())];
        self.request(Method::POST, path, &headers, body).await
    }

    /// The `data` of a request to a sandbox's endpoint that must succeed.
    pub async fn sandbox_data(&self, sandbox: &str, query: &str, variables: Value) -> Value {
        let path = format!("/sandboxes/{sandbox}/graphql");
        let response = self.graphql_at(&path, None, query, variables).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        let response = response.json();
        assert!(response.get("errors").is_none(), "unexpected errors: {response:#}");
        response["data"].clone()
    }

    /// One number from SQL run straight on the test's database (`… AS n`).
    pub async fn scalar(&self, sql: &str) -> i64 {
        use diesel_async::{AsyncConnection, RunQueryDsl};
        #[derive(diesel::QueryableByName)]
        struct One {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = diesel_async::AsyncPgConnection::establish(&self.database_url)
            .await
            .unwrap();
        let rows: Vec<One> = diesel::sql_query(sql).load(&mut conn).await.unwrap();
        rows[0].n
    }

    /// Runs SQL straight on the test's database (what no API allows).
    pub async fn sql(&self, sql: &str) {
        use diesel_async::{AsyncConnection, SimpleAsyncConnection};
        let mut conn = diesel_async::AsyncPgConnection::establish(&self.database_url)
            .await
            .unwrap();
        conn.batch_execute(sql).await.unwrap();
    }

    /// Creates a record of `object` (`Account`, `Contact` …) and returns its id.
    pub async fn create(&self, object: &str, input: Value) -> String {
        let mutation = format!("mutation($input: Create{object}Input!) {{ create{object}(input: $input) {{ id }} }}");
        let data = self.data(&mutation, json!({ "input": input })).await;
        data[format!("create{object}")]["id"].as_str().unwrap().to_owned()
    }
}

/// `crm <args>` in its own process on the test's database, with `env`
/// (`CRM_*` settings) and quiet logs.
pub fn crm_process(app: &TestApp, args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_crm"))
        .args(args)
        .env("DATABASE_URL", &app.database_url)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// `crm serve` in its own process on the test's database, once it
/// accepts connections, and its address.
pub async fn serve_process(app: &TestApp, env: &[(&str, &str)]) -> (std::process::Child, std::net::SocketAddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = crm_process(app, &["serve", "--port", &port.to_string()], env);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "crm serve did not start");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    (child, addr)
}

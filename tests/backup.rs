//! `crm backup`, `crm restore` and `crm export` as an operator runs them:
//! a round trip into a fresh data folder that a server then serves, the
//! refusals (a damaged dump, a non-empty target, a newer server's backup),
//! `--verify`, and the NDJSON export read back line by line.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::cli::{crm, graphql, scratch_dir, serve, signal, wait_for_exit};
use crate::support::{cluster, TestApp};

const COUNTS: &str = "{ accounts { totalCount } contacts { totalCount } opportunities { totalCount } \
                      activities { totalCount } }";

/// Runs `crm` with `args` (and `--data-dir dir`), on `url` when given:
/// (success, stdout, stderr).
fn run(dir: &Path, url: Option<&str>, args: &[&str]) -> (bool, String, String) {
    let mut command = crm();
    command.args(args).arg("--data-dir").arg(dir);
    if let Some(url) = url {
        command.env("DATABASE_URL", url);
    }
    let output = command.output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A server's database with the demo data, a custom field holding a value
/// and a full sandbox.
async fn installation(dir: &Path) -> TestApp {
    let app = TestApp::start().await;
    let (ok, _, stderr) = run(dir, Some(&app.database_url), &["seed", "--demo"]);
    assert!(ok, "{stderr}");
    app.data(
        "mutation($input: CreateCustomFieldInput!) { createCustomField(input: $input) { name } }",
        json!({ "input": { "object": "Account", "name": "tier", "label": "Tier", "type": "TEXT" } }),
    )
    .await;
    app.sql("UPDATE crm.account SET cf_tier = 'gold'").await;
    let (ok, _, stderr) = run(
        dir,
        Some(&app.database_url),
        &["sandbox", "create", "qa", "--mode", "full"],
    );
    assert!(ok, "{stderr}");
    app
}

/// A new database on the test cluster with nothing in it.
async fn empty_database(name: &str) -> String {
    let admin = &cluster().admin_url;
    let name = format!("{name}_{}", std::process::id());
    crm::db::create_database(admin, &name, None).await.unwrap();
    crm::db::with_database(admin, &name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_restores_into_an_empty_data_folder_with_records_custom_fields_and_sandboxes() {
    let dir = scratch_dir("backup-round-trip");
    std::fs::create_dir_all(&dir).unwrap();
    let app = installation(&dir.join("unused")).await;
    let before = app.data(COUNTS, json!({})).await;
    let dump = dir.join("crm.dump");
    let (ok, stdout, stderr) = run(&dir, Some(&app.database_url), &["backup", "-o", dump.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("backed up to") && stdout.contains("qa:"), "{stdout}");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("crm.dump.manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["serverVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(manifest["workspaces"]["production"]["records"]["Account"], 6);
    assert_eq!(manifest["workspaces"]["qa"]["records"]["Contact"], 12);
    assert!(manifest["migrations"]["sandbox_qa"].as_array().unwrap().len() > 1);
    assert_eq!(manifest["dump"]["sha256"].as_str().unwrap().len(), 64);

    // Into a fresh data folder: the embedded cluster is made and filled.
    let restored = dir.join("restored");
    let (ok, stdout, stderr) = run(&restored, None, &["restore", dump.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("matches its manifest"), "{stdout}");
    // Once there is data, a restore refuses to touch it.
    let (ok, _, stderr) = run(&restored, None, &["restore", dump.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("is not empty") && stderr.contains("Nothing was restored"),
        "{stderr}"
    );

    // A server on the restored folder serves the same data, the same token.
    let (mut server, addr, _) = serve(&restored);
    let after = graphql(addr, &app.token, COUNTS).await;
    assert_eq!(after["data"], before, "{after}");
    let tiers = graphql(addr, &app.token, "{ accounts(first: 1) { nodes { tier } } }").await;
    assert_eq!(tiers["data"]["accounts"]["nodes"][0]["tier"], "gold", "{tiers}");
    let (ok, stdout, _) = run(&restored, None, &["sandbox", "list"]);
    assert!(ok && stdout.lines().any(|l| l.starts_with("qa ")), "{stdout}");
    signal(&server, libc::SIGTERM);
    assert!(wait_for_exit(&mut server).success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn restore_checks_the_checksum_the_version_and_the_target_and_verify_reports_ok() {
    let dir = scratch_dir("backup-refusals");
    std::fs::create_dir_all(&dir).unwrap();
    let app = installation(&dir).await;
    let dump = dir.join("crm.dump");
    let (ok, _, stderr) = run(&dir, Some(&app.database_url), &["backup", "-o", dump.to_str().unwrap()]);
    assert!(ok, "{stderr}");

    // --verify restores into a scratch database and leaves the data alone.
    let (ok, stdout, stderr) = run(
        &dir,
        Some(&app.database_url),
        &["restore", "--verify", dump.to_str().unwrap()],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("smoke query     OK (6 live accounts"), "{stdout}");
    assert!(
        stdout.contains("OK: the backup restores and matches its manifest"),
        "{stdout}"
    );
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM pg_database WHERE datname LIKE 'crm_verify_%'")
            .await,
        0
    );
    // A password in the URL reaches pg_restore through its environment
    // (the test cluster trusts its socket, so any password works).
    let with_password = app.database_url.replacen("postgres@", "postgres:s%40cret@", 1);
    let (ok, stdout, stderr) = run(
        &dir,
        Some(&with_password),
        &["restore", "--verify", dump.to_str().unwrap()],
    );
    assert!(ok && stdout.contains("OK: the backup restores"), "{stderr}");

    // A server's database is not empty.
    let (ok, _, stderr) = run(&dir, Some(&app.database_url), &["restore", dump.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("not empty (it has the schemas crm, crm_system, sandbox_qa)"),
        "{stderr}"
    );

    // One flipped byte: refused before the target is touched.
    let damaged = dir.join("damaged.dump");
    let mut bytes = std::fs::read(&dump).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&damaged, bytes).unwrap();
    std::fs::copy(
        dir.join("crm.dump.manifest.json"),
        dir.join("damaged.dump.manifest.json"),
    )
    .unwrap();
    let empty = empty_database("backup_target").await;
    for args in [&["restore"][..], &["restore", "--verify"][..]] {
        let mut args = args.to_vec();
        args.push(damaged.to_str().unwrap());
        let (ok, _, stderr) = run(&dir, Some(&empty), &args);
        assert!(!ok);
        assert!(stderr.contains("is damaged") && stderr.contains("SHA-256"), "{stderr}");
    }

    // A backup of a newer server is refused with the version to use.
    let newer = dir.join("newer.dump");
    std::fs::copy(&dump, &newer).unwrap();
    let mut manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("crm.dump.manifest.json")).unwrap()).unwrap();
    manifest["serverVersion"] = json!("999.0.0");
    std::fs::write(dir.join("newer.dump.manifest.json"), manifest.to_string()).unwrap();
    let (ok, _, stderr) = run(&dir, Some(&empty), &["restore", newer.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("written by crm 999.0.0, newer than this crm"),
        "{stderr}"
    );

    // The intact backup restores into an empty database named by DATABASE_URL.
    let (ok, stdout, stderr) = run(&dir, Some(&empty), &["restore", dump.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("production: "), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn export_writes_metadata_then_every_record_as_ndjson() {
    let dir = scratch_dir("export");
    std::fs::create_dir_all(&dir).unwrap();
    let app = installation(&dir).await;
    app.sql("UPDATE crm.contact SET deleted_at = now() WHERE id = (SELECT id FROM crm.contact ORDER BY id LIMIT 1)")
        .await;
    let file = dir.join("production.ndjson");
    let (ok, _, stderr) = run(
        &dir,
        Some(&app.database_url),
        &["export", "--format", "ndjson", "-o", file.to_str().unwrap()],
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains("exported production:"), "{stderr}");
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let metadata = &lines[0]["metadata"];
    assert_eq!(metadata["workspace"], "production");
    assert_eq!(metadata["stored"]["fields"][0]["name"], "tier", "{metadata}");
    let account = metadata["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "Account")
        .unwrap();
    assert!(account["fields"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["name"] == "tier"));
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for line in &lines[1..] {
        *counts.entry(line["object"].as_str().unwrap().to_owned()).or_default() += 1;
        assert!(line["record"]["id"].is_string(), "{line}");
    }
    for (object, table) in [
        ("Account", "account"),
        ("Contact", "contact"),
        ("Opportunity", "opportunity"),
        ("Activity", "activity"),
    ] {
        let rows = app.scalar(&format!("SELECT count(*) AS n FROM crm.{table}")).await;
        assert_eq!(counts.get(object).copied().unwrap_or(0), rows, "{object}");
    }
    let gold = lines.iter().find(|l| l["object"] == "Account").unwrap();
    assert_eq!(gold["record"]["tier"], "gold");
    assert!(lines
        .iter()
        .any(|l| l["object"] == "Contact" && l["record"]["deletedAt"].is_string()));
    assert!(lines
        .iter()
        .any(|l| l["object"] == "Opportunity" && l["record"]["accountId"].is_string()));

    // A folder gets one file per workspace; an unknown workspace is named.
    let folder = dir.join("all");
    std::fs::create_dir_all(&folder).unwrap();
    let (ok, _, stderr) = run(
        &dir,
        Some(&app.database_url),
        &[
            "export",
            "--format",
            "ndjson",
            "--workspace",
            "production",
            "--workspace",
            "qa",
            "-o",
            folder.to_str().unwrap(),
        ],
    );
    assert!(ok, "{stderr}");
    let qa = std::fs::read_to_string(folder.join("qa.ndjson")).unwrap();
    assert!(qa.lines().next().unwrap().contains(r#""workspace":"qa""#));
    assert!(folder.join("production.ndjson").is_file());
    let (ok, _, stderr) = run(
        &dir,
        Some(&app.database_url),
        &["export", "--format", "ndjson", "--workspace", "nope"],
    );
    assert!(!ok);
    assert!(stderr.contains("there is no workspace nope"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends `signal` to the process `pid`.
#[allow(unsafe_code)]
fn send(pid: i32, signal: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// The pid of `parent`'s child process running `program`, once it runs.
fn child_running(parent: u32, program: &str) -> Option<i32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`: the name may hold spaces, not `)`.
        let Some((name, rest)) = stat.split_once(" (").and_then(|(_, r)| r.rsplit_once(") ")) else {
            continue;
        };
        let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok());
        if name == program && ppid == Some(parent) {
            return Some(pid);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_killed_midway_restores_nothing() {
    use diesel_async::AsyncConnection;
    let dir = scratch_dir("restore-kill");
    std::fs::create_dir_all(&dir).unwrap();
    let app = installation(&dir).await;
    let dump = dir.join("crm.dump");
    let (ok, _, stderr) = run(&dir, Some(&app.database_url), &["backup", "-o", dump.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let empty = empty_database("restore_kill").await;
    let mut restore = crm();
    restore
        .args(["restore", dump.to_str().unwrap(), "--data-dir"])
        .arg(&dir)
        .env("DATABASE_URL", &empty)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = restore.spawn().unwrap();
    // Catch pg_restore as it starts and hold it there; then kill -9 the
    // command, and let pg_restore go on if it still can.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let worker = loop {
        if let Some(pid) = child_running(child.id(), "pg_restore") {
            send(pid, libc::SIGSTOP);
            break pid;
        }
        assert!(std::time::Instant::now() < deadline, "pg_restore never started");
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    send(worker, libc::SIGCONT);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::path::Path::new(&format!("/proc/{worker}")).exists()
        && !std::fs::read_to_string(format!("/proc/{worker}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "pg_restore outlived the killed command"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Nothing of the backup is in the target: the restore starts over.
    let mut conn = diesel_async::AsyncPgConnection::establish(&empty).await.unwrap();
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let schemas: Vec<Count> = diesel_async::RunQueryDsl::load(
        diesel::sql_query("SELECT count(*) AS n FROM pg_namespace WHERE nspname IN ('crm', 'crm_system')"),
        &mut conn,
    )
    .await
    .unwrap();
    assert_eq!(schemas[0].n, 0, "the killed restore left part of the backup");
    drop(conn);
    let (ok, _, stderr) = run(&dir, Some(&empty), &["restore", dump.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

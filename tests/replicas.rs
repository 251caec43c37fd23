//! Read replicas: a real streaming standby (`pg_basebackup -R` from a
//! cluster the test starts) behind `--replica-url`. Reads go to it while it
//! is healthy and caught up, never to a past its caller wrote after; a
//! paused or stopped replica is taken out and put back when it catches up;
//! a sandbox endpoint reads its sandbox schema there too.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crm::config::Config;
use crm::db::{self, EmbeddedPostgres};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use serde_json::json;

use crate::support::{cluster_options, TestApp};

/// A primary cluster with the migrated database `crm`, and a streaming
/// replica of it, in folders of their own under `base`.
async fn primary_and_replica(base: &Path) -> (EmbeddedPostgres, EmbeddedPostgres) {
    let primary = EmbeddedPostgres::start(&base.join("primary"), cluster_options(true))
        .await
        .unwrap();
    db::create_database(&primary.url("postgres"), "crm", None)
        .await
        .unwrap();
    db::migrate::migrate_all(&primary.url("crm")).await.unwrap();
    let replica_dir = base.join("replica");
    let basebackup = pg_basebackup();
    let args = [
        "-D".to_owned(),
        replica_dir.join("pgdata").display().to_string(),
        "-R".to_owned(),
        "-X".to_owned(),
        "stream".to_owned(),
        // Not a spread checkpoint first: that one takes minutes.
        "--checkpoint=fast".to_owned(),
        "-h".to_owned(),
        primary.socket_dir().display().to_string(),
        "-p".to_owned(),
        primary.port().to_string(),
        "-U".to_owned(),
        "postgres".to_owned(),
    ];
    // As root, PostgreSQL runs as `postgres`: the copy must be its own.
    let root = std::process::Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    std::fs::create_dir_all(&replica_dir).unwrap();
    let output = if root {
        let owned = std::process::Command::new("chown")
            .arg("postgres")
            .arg(&replica_dir)
            .status()
            .unwrap();
        assert!(owned.success());
        std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&basebackup)
            .args(&args)
            .output()
    } else {
        std::process::Command::new(&basebackup).args(&args).output()
    }
    .unwrap();
    assert!(
        output.status.success(),
        "pg_basebackup: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let replica = EmbeddedPostgres::start(&replica_dir, cluster_options(true))
        .await
        .unwrap();
    (primary, replica)
}

/// `pg_basebackup`, beside the server binaries the clusters run, or in
/// Debian's newest PostgreSQL folder.
fn pg_basebackup() -> PathBuf {
    let beside = db::embedded::PgBinaries::find().unwrap().tool("pg_basebackup");
    if beside.is_file() {
        return beside;
    }
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.filter_map(|d| d.ok())
                .map(|d| d.path().join("bin/pg_basebackup"))
                .collect()
        })
        .unwrap_or_default();
    debian.retain(|path| path.is_file());
    debian.sort();
    debian.pop().expect("pg_basebackup, from PostgreSQL's server binaries")
}

async fn metric(app: &TestApp, line: &str) -> u64 {
    let text = app.get("/metrics", &[]).await.text();
    text.lines()
        .find_map(|l| l.strip_prefix(line).map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no {line} in /metrics:\n{text}"))
}

/// Waits until `/metrics` says `line` is `value`.
async fn until_metric(app: &TestApp, line: &str, value: u64) -> Duration {
    let start = Instant::now();
    while metric(app, line).await != value {
        assert!(start.elapsed() < Duration::from_secs(30), "{line} never became {value}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

#[tokio::test]
async fn reads_go_to_a_healthy_replica_never_to_their_own_past_and_fail_over_to_the_primary() {
    let base: PathBuf = std::env::temp_dir().join(format!("crm-replicas-{}", uuid::Uuid::new_v4()));
    let (primary, mut replica) = primary_and_replica(&base).await;
    let config = Config {
        replica_urls: vec![replica.url("crm")],
        replica_max_lag: Duration::from_millis(500),
        ..Config::default()
    };
    let app = TestApp::on(config, primary.url("crm")).await;
    let (_, reader) = app.user("reader@example.com", "READ_ONLY").await;
    until_metric(&app, "crm_replica_healthy{replica=\"0\"}", 1).await;

    // A caller's reads after its own writes see them, every time.
    for n in 0..20 {
        let name = format!("Account {n}");
        app.create("Account", json!({ "name": name })).await;
        let read = app
            .data(
                "query($n: String!) { accounts(filter: { name: { eq: $n } }) { totalCount } }",
                json!({ "n": name }),
            )
            .await;
        assert_eq!(read["accounts"]["totalCount"], 1, "read {n} missed its own write");
    }
    // Another caller's reads run on the replica: within the lag allowed,
    // and once it has replayed everything, with every write.
    until_metric(&app, "crm_replica_lag_bytes{replica=\"0\"}", 0).await;
    let before = metric(&app, "crm_reads_routed_total{to=\"replica\"}").await;
    let seen = app.graphql_as(&reader, "{ accounts { totalCount } }", json!({})).await;
    assert_eq!(seen["data"]["accounts"]["totalCount"], 20, "{seen}");
    assert_eq!(metric(&app, "crm_reads_routed_total{to=\"replica\"}").await, before + 1);

    // A new field is queryable at once, wherever the read runs.
    app.data(
        r#"mutation { createCustomField(input: { object: "Account", name: "region", label: "Region", type: TEXT }) { name } }"#,
        json!({}),
    )
    .await;
    let fresh = app
        .graphql_as(&reader, "{ accounts(first: 1) { nodes { region } } }", json!({}))
        .await;
    assert!(fresh.get("errors").is_none(), "{fresh}");

    // A sandbox endpoint reads its sandbox's schema on the replica.
    app.data(
        r#"mutation { createSandbox(input: { name: "qa", mode: FULL }) { name } }"#,
        json!({}),
    )
    .await;
    app.data(
        "mutation($id: ID!) { grantSandboxAccess(name: \"qa\", userId: $id) { name } }",
        json!({ "id": app.data("{ users(filter: { email: { eq: \"reader@example.com\" } }) { nodes { id } } }", json!({})).await["users"]["nodes"][0]["id"] }),
    )
    .await;
    until_metric(&app, "crm_replica_lag_bytes{replica=\"0\"}", 0).await;
    let before = metric(&app, "crm_reads_routed_total{to=\"replica\"}").await;
    let sandboxed = app
        .graphql_at(
            "/sandboxes/qa/graphql",
            Some(&reader),
            "{ accounts { totalCount } }",
            json!({}),
        )
        .await
        .json();
    assert_eq!(sandboxed["data"]["accounts"]["totalCount"], 20, "{sandboxed}");
    assert_eq!(metric(&app, "crm_reads_routed_total{to=\"replica\"}").await, before + 1);

    // A promotion's rehearsal writes (then rolls back): it reads the
    // primary, and answers.
    let before = metric(&app, "crm_reads_routed_total{to=\"primary\"}").await;
    let diff = app.data(r#"{ sandboxDiff(name: "qa") { canApply } }"#, json!({})).await;
    assert!(diff["sandboxDiff"]["canApply"].is_boolean(), "{diff}");
    assert_eq!(metric(&app, "crm_reads_routed_total{to=\"primary\"}").await, before + 1);

    // Replay paused: the replica falls behind, is taken out, and reads go
    // to the primary; resumed, it is put back.
    let mut standby = AsyncPgConnection::establish(&replica.url("crm")).await.unwrap();
    standby.batch_execute("SELECT pg_wal_replay_pause()").await.unwrap();
    app.create("Account", json!({ "name": "While paused" })).await;
    let mine = app.data("{ accounts { totalCount } }", json!({})).await;
    assert_eq!(
        mine["accounts"]["totalCount"], 21,
        "the writer reads its write from the primary"
    );
    let out = until_metric(&app, "crm_replica_healthy{replica=\"0\"}", 0).await;
    let before = metric(&app, "crm_reads_routed_total{to=\"primary\"}").await;
    let theirs = app.graphql_as(&reader, "{ accounts { totalCount } }", json!({})).await;
    assert_eq!(theirs["data"]["accounts"]["totalCount"], 21, "{theirs}");
    assert_eq!(metric(&app, "crm_reads_routed_total{to=\"primary\"}").await, before + 1);
    standby.batch_execute("SELECT pg_wal_replay_resume()").await.unwrap();
    drop(standby);
    let back = until_metric(&app, "crm_replica_healthy{replica=\"0\"}", 1).await;
    println!("a paused replica was taken out after {out:?}, put back {back:?} after replay resumed");

    // Stopped: taken out, and every read still answers.
    replica.stop().await;
    until_metric(&app, "crm_replica_healthy{replica=\"0\"}", 0).await;
    let after = app.graphql_as(&reader, "{ accounts { totalCount } }", json!({})).await;
    assert_eq!(after["data"]["accounts"]["totalCount"], 21, "{after}");
    drop(app);
    drop(primary);
    let _ = std::fs::remove_dir_all(&base);
}

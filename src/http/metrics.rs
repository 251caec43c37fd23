//! `/metrics`: the server's counters and gauges in the Prometheus text
//! format, so operators can watch load, pools, caches and rate limiters;
//! any caller with a valid token may read them.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::Shared;
use crate::auth::Actor;

/// `GET /metrics`, for any authenticated caller: the numbers that show how
/// the server copes (statements run, pooled connections, compiled answers,
/// schema builds, what the rate limiters and the token cache hold).
pub(super) async fn metrics(State(app): State<Arc<Shared>>, _caller: Actor) -> Response {
    let (in_use, idle) = app.db.pool_status();
    let (builds, build_micros) = app.schemas.build_stats();
    let (limited_tokens, limited_addresses) = app.limits.tracked();
    let body = format!(
        "# HELP crm_sql_statements_total SQL statements run through the pool.\n\
         # TYPE crm_sql_statements_total counter\n\
         crm_sql_statements_total {}\n\
         # HELP crm_db_connections Pooled database connections.\n\
         # TYPE crm_db_connections gauge\n\
         crm_db_connections{{state=\"in_use\"}} {in_use}\n\
         crm_db_connections{{state=\"idle\"}} {idle}\n\
         # HELP crm_graphql_compiled_total Queries answered compiled (flat statements or one JSON statement), without resolvers.\n\
         # TYPE crm_graphql_compiled_total counter\n\
         crm_graphql_compiled_total {}\n\
         # HELP crm_schema_builds_total GraphQL schemas built (first use, metadata changes).\n\
         # TYPE crm_schema_builds_total counter\n\
         crm_schema_builds_total {builds}\n\
         # HELP crm_schema_build_microseconds_total Time spent building them: reading metadata and building the schema.\n\
         # TYPE crm_schema_build_microseconds_total counter\n\
         crm_schema_build_microseconds_total {build_micros}\n\
         # HELP crm_rate_limiter_keys What the rate limiters track: verified tokens, client addresses that failed to authenticate.\n\
         # TYPE crm_rate_limiter_keys gauge\n\
         crm_rate_limiter_keys{{limiter=\"token\"}} {limited_tokens}\n\
         crm_rate_limiter_keys{{limiter=\"address\"}} {limited_addresses}\n\
         # HELP crm_remembered_tokens Live tokens whose row the server remembers (read in the last few seconds).\n\
         # TYPE crm_remembered_tokens gauge\n\
         crm_remembered_tokens {}\n\
         # HELP crm_retention_purged_rows_total Rows the retention job removed for good: deleted records, old audit log entries.\n\
         # TYPE crm_retention_purged_rows_total counter\n\
         crm_retention_purged_rows_total {}\n\
         # HELP crm_subscription_connections GraphQL WebSocket connections open on this server.\n\
         # TYPE crm_subscription_connections gauge\n\
         crm_subscription_connections {}\n\
         # HELP crm_subscriptions GraphQL subscriptions (recordChanged) open on this server.\n\
         # TYPE crm_subscriptions gauge\n\
         crm_subscriptions {}\n{}",
        app.db.statements_run(),
        app.schemas.compiled_answers(),
        app.auth.remembered(),
        crate::retention::purged_rows(),
        super::subscriptions::open_connections(),
        crate::live::feed::listeners(),
        replicas(&app)
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// The read replicas' lines: each one's health and lag, and where reads
/// went.
fn replicas(app: &Shared) -> String {
    let Some(replicas) = &app.replicas else {
        return String::new();
    };
    let mut text = String::from(
        "# HELP crm_replica_healthy Whether the replica takes reads (answers, and is within --replica-max-lag-ms).\n\
         # TYPE crm_replica_healthy gauge\n",
    );
    let states = replicas.states();
    for (i, (healthy, _)) in states.iter().enumerate() {
        text.push_str(&format!(
            "crm_replica_healthy{{replica=\"{i}\"}} {}\n",
            u8::from(*healthy)
        ));
    }
    text.push_str(
        "# HELP crm_replica_lag_bytes WAL the primary has written that the replica has not replayed.\n\
         # TYPE crm_replica_lag_bytes gauge\n",
    );
    for (i, (_, lag)) in states.iter().enumerate() {
        text.push_str(&format!("crm_replica_lag_bytes{{replica=\"{i}\"}} {lag}\n"));
    }
    text.push_str(&format!(
        "# HELP crm_reads_routed_total Read-only GraphQL operations, by where they ran.\n\
         # TYPE crm_reads_routed_total counter\n\
         crm_reads_routed_total{{to=\"replica\"}} {}\n\
         crm_reads_routed_total{{to=\"primary\"}} {}\n",
        replicas.routed_to_replica.load(std::sync::atomic::Ordering::Relaxed),
        replicas.routed_to_primary.load(std::sync::atomic::Ordering::Relaxed),
    ));
    text
}

//! PostgreSQL read replicas: where a read-only GraphQL operation may run.
//!
//! Each replica (`--replica-url`, a streaming standby of the primary) has a
//! pool of its own and is watched every [`CHECK_EVERY`]: it is **healthy**
//! while it answers, is in recovery, and has replayed everything the
//! primary had written `--replica-max-lag-ms` ago (the primary's WAL
//! position is sampled on the same beat, so lag is measured in time, not
//! bytes). A replica that stops answering or falls behind is taken out at
//! the next check and put back when it has caught up.
//!
//! Reads never see the past of their own caller: after a mutation the
//! primary's WAL position is remembered for the caller's token, and that
//! token's reads go only to a replica that has replayed past it (else to
//! the primary). A metadata change (a new field, a sandbox made) raises a
//! floor for everyone, so no read meets a schema its replica does not have
//! yet.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use diesel::sql_types::{Bool, Text};
use uuid::Uuid;

use super::{Database, PoolOptions};
use crate::error::Result;

/// How often the replicas and the primary's WAL position are read.
pub const CHECK_EVERY: Duration = Duration::from_millis(100);
/// How long a check may take before the replica counts as not answering.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// Tokens whose last write is remembered at most (the oldest are dropped).
const REMEMBERED_WRITES: usize = 100_000;

/// One replica and what its last check found.
pub struct Replica {
    pub db: Database,
    healthy: AtomicBool,
    /// WAL position replayed, as a number (`pg_lsn` in bytes).
    replayed: AtomicU64,
    /// Bytes of WAL the primary had written that it has not replayed.
    lag_bytes: AtomicU64,
}

/// Where a read went, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Replica,
    /// The primary, because no replica was healthy and caught up.
    Primary,
}

/// The primary and its replicas.
pub struct Replicas {
    primary: Database,
    list: Vec<Replica>,
    max_lag: Duration,
    /// The primary's WAL position over the last `max_lag` and a little.
    samples: Mutex<VecDeque<(Instant, u64)>>,
    /// Every read waits for this position (raised by metadata changes).
    floor: AtomicU64,
    /// Each token's last write's position.
    writes: Mutex<HashMap<Uuid, u64>>,
    next: AtomicUsize,
    pub routed_to_replica: AtomicU64,
    pub routed_to_primary: AtomicU64,
}

impl std::fmt::Debug for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicas").field("replicas", &self.list.len()).finish()
    }
}

#[derive(diesel::QueryableByName)]
struct Position {
    #[diesel(sql_type = Text)]
    lsn: String,
}

#[derive(diesel::QueryableByName)]
struct Standby {
    #[diesel(sql_type = Bool)]
    recovering: bool,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    lsn: Option<String>,
}

/// `16/B374D848` as a number.
fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.split_once('/')?;
    Some((u64::from_str_radix(high, 16).ok()? << 32) | u64::from_str_radix(low, 16).ok()?)
}

impl Replicas {
    /// Pools for `urls`, the primary's replicas. None without any.
    pub fn connect(
        primary: &Database,
        urls: &[String],
        options: &PoolOptions,
        max_lag: Duration,
    ) -> std::result::Result<Option<Arc<Replicas>>, super::Error> {
        if urls.is_empty() {
            return Ok(None);
        }
        let list = urls
            .iter()
            .map(|url| {
                Ok(Replica {
                    db: Database::connect(url, options)?,
                    healthy: AtomicBool::new(false),
                    replayed: AtomicU64::new(0),
                    lag_bytes: AtomicU64::new(0),
                })
            })
            .collect::<std::result::Result<Vec<_>, super::Error>>()?;
        Ok(Some(Arc::new(Replicas {
            primary: primary.clone(),
            list,
            max_lag,
            samples: Mutex::default(),
            floor: AtomicU64::new(0),
            writes: Mutex::default(),
            next: AtomicUsize::new(0),
            routed_to_replica: AtomicU64::new(0),
            routed_to_primary: AtomicU64::new(0),
        })))
    }

    /// Watches the replicas for as long as the server runs.
    pub fn spawn_checks(self: &Arc<Self>) {
        let replicas = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut beat = tokio::time::interval(CHECK_EVERY);
            beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                beat.tick().await;
                let Some(replicas) = replicas.upgrade() else { return };
                replicas.check().await;
            }
        });
    }

    /// The primary's WAL position now: where its next record goes, so past
    /// every commit so far (`pg_current_wal_lsn()`, the position written
    /// out, lags behind a commit made with `synchronous_commit = off`).
    async fn primary_position(&self) -> Result<u64> {
        let mut conn = self.primary.conn().await?;
        let rows: Vec<Position> = crate::db::sql::Sql::raw("SELECT pg_current_wal_insert_lsn()::text AS lsn")
            .load(&mut conn)
            .await?;
        Ok(rows.first().and_then(|row| parse_lsn(&row.lsn)).unwrap_or(0))
    }

    /// One round of checks: the primary's position, then each replica's.
    async fn check(&self) {
        let sampled = tokio::time::timeout(CHECK_TIMEOUT, self.primary_position()).await;
        let Ok(Ok(now)) = sampled else {
            // Lag cannot be bounded without the primary's position: no
            // replica takes reads until it is read again.
            for replica in &self.list {
                replica.healthy.store(false, Ordering::Relaxed);
            }
            return;
        };
        // A metadata change whose position could not be read: this
        // position, read after it, is past it.
        let _ = self
            .floor
            .compare_exchange(u64::MAX, now, Ordering::Relaxed, Ordering::Relaxed);
        let due = {
            let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
            samples.push_back((Instant::now(), now));
            while samples
                .front()
                .is_some_and(|(at, _)| at.elapsed() > self.max_lag + CHECK_EVERY * 2)
            {
                samples.pop_front();
            }
            // What the primary had written `max_lag` ago (its oldest sample
            // within that window): a healthy replica has replayed it.
            samples
                .iter()
                .find(|(at, _)| at.elapsed() <= self.max_lag)
                .map_or(now, |(_, lsn)| *lsn)
        };
        for replica in &self.list {
            let replayed = tokio::time::timeout(CHECK_TIMEOUT, standby_position(&replica.db))
                .await
                .ok()
                .and_then(std::result::Result::ok)
                .flatten();
            match replayed {
                Some(replayed) => {
                    replica.replayed.store(replayed, Ordering::Relaxed);
                    replica.lag_bytes.store(now.saturating_sub(replayed), Ordering::Relaxed);
                    replica.healthy.store(replayed >= due, Ordering::Relaxed);
                }
                None => replica.healthy.store(false, Ordering::Relaxed),
            }
        }
    }

    /// After a mutation of `token`: its reads wait for this write.
    pub async fn wrote(&self, token: Option<Uuid>) {
        let Some(token) = token else { return };
        let Ok(position) = self.primary_position().await else {
            return;
        };
        let mut writes = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
        if writes.len() >= REMEMBERED_WRITES {
            // Writes every replica has replayed no longer matter.
            let replayed = self
                .list
                .iter()
                .map(|r| r.replayed.load(Ordering::Relaxed))
                .min()
                .unwrap_or(0);
            writes.retain(|_, lsn| *lsn > replayed);
            if writes.len() >= REMEMBERED_WRITES {
                writes.clear();
                self.floor.fetch_max(position, Ordering::Relaxed);
            }
        }
        writes.insert(token, position);
    }

    /// After a metadata change (or a sandbox made or deleted): every read
    /// waits until its replica has it.
    pub async fn metadata_changed(&self) {
        match self.primary_position().await {
            Ok(position) => {
                self.floor.fetch_max(position, Ordering::Relaxed);
            }
            // Cannot tell how far: read from the primary until the next
            // check reads a position (`check`).
            Err(_) => {
                self.floor.store(u64::MAX, Ordering::Relaxed);
            }
        }
    }

    /// Where a read of `token` runs: a healthy replica that has replayed
    /// the token's last write and the latest metadata change, else the
    /// primary.
    pub fn for_read(&self, token: Option<Uuid>) -> (Database, Route) {
        let mut needed = self.floor.load(Ordering::Relaxed);
        if let Some(token) = token {
            let writes = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(lsn) = writes.get(&token) {
                needed = needed.max(*lsn);
            }
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..self.list.len() {
            let replica = &self.list[(start + i) % self.list.len()];
            if replica.healthy.load(Ordering::Relaxed) && replica.replayed.load(Ordering::Relaxed) >= needed {
                self.routed_to_replica.fetch_add(1, Ordering::Relaxed);
                return (replica.db.clone(), Route::Replica);
            }
        }
        self.routed_to_primary.fetch_add(1, Ordering::Relaxed);
        (self.primary.clone(), Route::Primary)
    }

    /// The primary, for a read that must run there.
    pub fn primary_read(&self) -> (Database, Route) {
        self.routed_to_primary.fetch_add(1, Ordering::Relaxed);
        (self.primary.clone(), Route::Primary)
    }

    /// Each replica's health and lag in bytes, for `/metrics`.
    pub fn states(&self) -> Vec<(bool, u64)> {
        self.list
            .iter()
            .map(|r| (r.healthy.load(Ordering::Relaxed), r.lag_bytes.load(Ordering::Relaxed)))
            .collect()
    }
}

/// A standby's replayed WAL position; None when it is not a standby.
async fn standby_position(db: &Database) -> Result<Option<u64>> {
    let mut conn = db.conn().await?;
    let rows: Vec<Standby> =
        crate::db::sql::Sql::raw("SELECT pg_is_in_recovery() AS recovering, pg_last_wal_replay_lsn()::text AS lsn")
            .load(&mut conn)
            .await?;
    Ok(rows
        .first()
        .filter(|row| row.recovering)
        .and_then(|row| row.lsn.as_deref())
        .and_then(parse_lsn))
}

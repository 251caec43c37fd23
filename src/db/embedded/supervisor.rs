//! Keeps the embedded cluster running under `crm serve`.
//!
//! The supervisor looks at the postmaster a few times a second. When it is
//! gone — it crashed, or it or its keeper was killed — the supervisor reaps
//! the keeper it started (no zombie is left) and starts the cluster again
//! on the same data and port, so the pool's URL stays valid and requests succeed again without restarting the
//! server. Meanwhile [`ClusterHealth`] says the cluster is down: requests
//! are refused at once with `UNAVAILABLE` and `/readyz` answers 503. When
//! restarts keep failing ([`GIVE_UP_AFTER`] in a row), `/healthz` turns
//! 503 too, while the supervisor keeps trying.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{ClusterOptions, EmbeddedPostgres};

/// How often the supervisor looks at the postmaster.
const CHECK_EVERY: Duration = Duration::from_millis(200);

/// The pause after a failed restart, doubled after each further failure
/// up to [`LONGEST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(500);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

/// Failed restarts in a row after which `/healthz` reports the server
/// unhealthy.
pub const GIVE_UP_AFTER: u32 = 5;

/// What the supervisor knows about the cluster, shared with the pool and
/// the health endpoints. The default (no supervisor, as with
/// `DATABASE_URL`) is always up.
#[derive(Debug, Clone, Default)]
pub struct ClusterHealth(Arc<HealthState>);

#[derive(Debug, Default)]
struct HealthState {
    down: AtomicBool,
    failed_restarts: AtomicU32,
}

impl ClusterHealth {
    /// False from the moment the postmaster is found gone until it runs again.
    pub fn is_up(&self) -> bool {
        !self.0.down.load(Ordering::SeqCst)
    }

    /// The failed restarts in a row, once there are [`GIVE_UP_AFTER`] of them.
    pub fn given_up(&self) -> Option<u32> {
        let failures = self.0.failed_restarts.load(Ordering::SeqCst);
        (failures >= GIVE_UP_AFTER).then_some(failures)
    }

    fn went_down(&self) {
        self.0.down.store(true, Ordering::SeqCst);
    }

    fn restarted(&self) {
        self.0.failed_restarts.store(0, Ordering::SeqCst);
        self.0.down.store(false, Ordering::SeqCst);
    }

    fn restart_failed(&self) -> u32 {
        self.0.failed_restarts.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// The task watching a cluster, until [`Supervisor::stop`].
#[derive(Debug)]
pub struct Supervisor {
    health: ClusterHealth,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Option<EmbeddedPostgres>>,
}

impl Supervisor {
    /// Watches `cluster` (started here or joined) and restarts it with
    /// `options` whenever it goes away. Must run inside the Tokio runtime.
    pub fn watch(cluster: EmbeddedPostgres, options: ClusterOptions) -> Self {
        let health = ClusterHealth::default();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(supervise(cluster, options, health.clone(), stopped));
        Supervisor { health, stop, task }
    }

    /// What the supervisor knows, for the pool and the health endpoints.
    pub fn health(&self) -> ClusterHealth {
        self.health.clone()
    }

    /// Stops watching, then stops using the cluster: it stops unless
    /// another process uses it.
    pub async fn stop(self) {
        drop(self.stop);
        if let Ok(Some(mut cluster)) = self.task.await {
            cluster.stop().await;
        }
    }
}

/// The supervisor's loop: the cluster it ends with, if any.
async fn supervise(
    mut cluster: EmbeddedPostgres,
    options: ClusterOptions,
    health: ClusterHealth,
    mut stopped: oneshot::Receiver<()>,
) -> Option<EmbeddedPostgres> {
    loop {
        tokio::select! {
            _ = &mut stopped => return Some(cluster),
            () = tokio::time::sleep(CHECK_EVERY) => {}
        }
        let Some(why) = cluster.gone() else { continue };
        health.went_down();
        tracing::error!("PostgreSQL in {} {why}; restarting it", cluster.pgdata().display());
        cluster.reap_keeper().await;
        cluster = restart(&cluster, &options, &health, &mut stopped).await?;
    }
}

/// Starts the cluster `gone` was again (or joins it, if another process
/// was quicker), retrying with growing pauses; `None` when told to stop
/// first.
async fn restart(
    gone: &EmbeddedPostgres,
    options: &ClusterOptions,
    health: &ClusterHealth,
    stopped: &mut oneshot::Receiver<()>,
) -> Option<EmbeddedPostgres> {
    let mut pause = FIRST_PAUSE;
    loop {
        // Not raced against `stopped`: a start half done would leave a
        // postmaster nobody stops. A start is bounded (60 s).
        match EmbeddedPostgres::start(&gone.data_dir, options.clone()).await {
            Ok(cluster) => {
                if cluster.port() != gone.port() {
                    tracing::error!(
                        was = gone.port(),
                        now = cluster.port(),
                        "PostgreSQL came back on another port; restart the server"
                    );
                }
                health.restarted();
                tracing::info!("PostgreSQL in {} runs again", cluster.pgdata().display());
                return Some(cluster);
            }
            Err(err) => {
                let failures = health.restart_failed();
                tracing::error!(failures, "restarting PostgreSQL failed: {err:#}");
            }
        }
        tokio::select! {
            _ = &mut *stopped => return None,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

//! How the making of a sandbox goes, for the console's progress bar: the
//! GraphQL mutations report into [`Tracked`], and `sandboxProgress` reads
//! it while they run.
//!
//! Progress lives in this server's memory: a console polling another
//! server behind the same address sees none (the mutation's answer still
//! tells it when the sandbox is made).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};

use super::Progress;

/// How far the making (or refreshing) of one sandbox has got.
#[derive(Debug, Clone)]
pub struct Made {
    pub name: String,
    /// The step under way (`copying contact`, `indexing`).
    pub step: String,
    pub rows_estimated: u64,
    pub rows_copied: u64,
    pub started_at: DateTime<Utc>,
    /// Which making of the sandbox this is (a second attempt with the
    /// same name, refused or not, must not end the first one's report).
    run: u64,
}

static RUNS: AtomicU64 = AtomicU64::new(0);

static UNDER_WAY: Mutex<Option<HashMap<String, Made>>> = Mutex::new(None);

fn with<T>(f: impl FnOnce(&mut HashMap<String, Made>) -> T) -> T {
    let mut under_way = UNDER_WAY.lock().unwrap_or_else(PoisonError::into_inner);
    f(under_way.get_or_insert_with(HashMap::new))
}

/// The progress of the sandbox being made here now, if one is.
pub fn current(name: &str) -> Option<Made> {
    with(|under_way| under_way.get(name).cloned())
}

/// Reports the making of the sandbox `name` for as long as it lives.
#[derive(Debug)]
pub struct Tracked {
    name: String,
    run: u64,
}

impl Tracked {
    pub fn new(name: &str) -> Tracked {
        let made = Made {
            name: name.to_owned(),
            step: "starting".into(),
            rows_estimated: 0,
            rows_copied: 0,
            started_at: Utc::now(),
            run: RUNS.fetch_add(1, Ordering::Relaxed),
        };
        let run = made.run;
        // While one making of the sandbox runs, another (which its lock
        // will refuse or hold) reports nothing over it.
        with(|under_way| {
            under_way.entry(name.to_owned()).or_insert(made);
        });
        Tracked {
            name: name.to_owned(),
            run,
        }
    }

    fn update(&self, f: impl FnOnce(&mut Made)) {
        with(|under_way| under_way.get_mut(&self.name).filter(|made| made.run == self.run).map(f));
    }
}

impl Progress for Tracked {
    fn start(&self, rows: u64) {
        self.update(|made| made.rows_estimated = rows);
    }

    fn step(&self, what: &str) {
        self.update(|made| what.clone_into(&mut made.step));
    }

    fn copied(&self, rows: u64) {
        self.update(|made| made.rows_copied += rows);
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        with(|under_way| {
            if under_way.get(&self.name).is_some_and(|made| made.run == self.run) {
                under_way.remove(&self.name);
            }
        });
    }
}

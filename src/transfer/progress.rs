//! How far a running import is, for its caller (the command line's
//! progress bar) and, written to its job now and then, for everyone else.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// What the import is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading and checking rows, staging those that pass.
    Reading = 0,
    /// Matching rows with records, checking lookups, unique fields and
    /// duplicate rules across the file.
    Checking = 1,
    /// Writing the records.
    Writing = 2,
    Done = 3,
}

/// Counters of a running import, updated as it goes.
#[derive(Debug, Default)]
pub struct Progress {
    phase: AtomicU8,
    pub rows_read: AtomicU64,
    pub rows_failed: AtomicU64,
    pub rows_written: AtomicU64,
    /// The rows the load will write (known once checked).
    pub rows_to_write: AtomicU64,
}

impl Progress {
    pub fn new() -> std::sync::Arc<Progress> {
        std::sync::Arc::new(Progress::default())
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Reading,
            1 => Phase::Checking,
            2 => Phase::Writing,
            _ => Phase::Done,
        }
    }

    pub fn finished(&self) {
        self.set_phase(Phase::Done);
    }

    pub fn read(&self) -> u64 {
        self.rows_read.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.rows_failed.load(Ordering::Relaxed)
    }

    pub fn written(&self) -> u64 {
        self.rows_written.load(Ordering::Relaxed)
    }
}

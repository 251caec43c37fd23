//! The progress bar of long copies (`crm sandbox create` and `refresh`):
//! the library reports its steps through [`crm::sandbox::Progress`], and
//! only the command line draws them.

use std::time::{Duration, Instant};

/// A spinner that becomes a bar of copied rows once the copy knows how many
/// to expect; indicatif draws it on stderr only when that is a terminal.
pub struct Bar {
    bar: indicatif::ProgressBar,
    started: Instant,
}

impl Bar {
    /// Starts spinning, and the clock the command's summary reports.
    pub fn new() -> Self {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        Bar {
            bar,
            started: Instant::now(),
        }
    }

    /// Clears the bar, so the summary line that follows stands alone.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// Seconds since [`Bar::new`], for the summary line.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

impl crm::sandbox::Progress for Bar {
    fn start(&self, rows: u64) {
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} {msg:<28} [{bar:30}] {human_pos}/{human_len} rows ({elapsed})",
        ) {
            self.bar.set_style(style.progress_chars("=> "));
        }
        self.bar.set_length(rows);
    }

    fn step(&self, what: &str) {
        self.bar.set_message(what.to_owned());
    }

    fn copied(&self, rows: u64) {
        self.bar.inc(rows);
        // The estimate may be short: the bar never runs past its end.
        if let Some(length) = self.bar.length() {
            self.bar.set_length(length.max(self.bar.position()));
        }
    }
}

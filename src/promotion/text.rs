//! A promotion report as the command line prints it: one line per change
//! with its status and API impact, what refuses it, and the blockers;
//! colored when printed to a terminal.

use std::fmt::Write;

use serde_json::Value as Json;

use super::apply::{Entry, Status};
use super::sdl::Level;
use super::Report;
use crate::metadata::kinds::Action;

/// ANSI colors, or none.
#[derive(Debug, Clone, Copy)]
pub struct Paint(pub bool);

impl Paint {
    fn wrap(self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
    fn red(self, text: &str) -> String {
        self.wrap("31", text)
    }
    fn green(self, text: &str) -> String {
        self.wrap("32", text)
    }
    fn yellow(self, text: &str) -> String {
        self.wrap("33", text)
    }
    fn bold(self, text: &str) -> String {
        self.wrap("1", text)
    }
    fn dim(self, text: &str) -> String {
        self.wrap("2", text)
    }

    fn level(self, level: Level) -> String {
        let text = format!("{:<9}", level.as_str());
        match level {
            Level::Safe => self.green(&text),
            Level::Dangerous => self.yellow(&text),
            Level::Breaking => self.red(&text),
        }
    }

    fn status(self, status: Status) -> String {
        let text = format!("{:<15}", status.as_str());
        match status {
            Status::Ready | Status::Applied => self.green(&text),
            Status::AlreadyApplied | Status::Skipped => self.dim(&text),
            Status::Conflict | Status::Fails => self.red(&text),
        }
    }
}

/// The report as text.
pub fn render(report: &Report, paint: Paint) -> String {
    let mut out = String::new();
    let base = report.base_version.map(|v| format!(", base {v}")).unwrap_or_default();
    let _ = writeln!(
        out,
        "{} → {} (metadata version {}{base})",
        paint.bold(&report.source),
        paint.bold(&report.workspace),
        report.version_before
    );
    let _ = writeln!(out, "\n{} ({})", paint.bold("Changes"), report.changes.len());
    if report.changes.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for entry in &report.changes {
        change(&mut out, entry, paint);
    }
    if !report.target_changes.is_empty() {
        let _ = writeln!(
            out,
            "\n{} ({}): kept as they are",
            paint.bold(&format!("{} changed since the base", report.workspace)),
            report.target_changes.len()
        );
        for entry in &report.target_changes {
            let _ = writeln!(out, "  {}", entry.summary);
        }
    }
    let breaking = report.sdl_changes.iter().filter(|c| c.level == Level::Breaking).count();
    let _ = writeln!(
        out,
        "\n{} {} ({} schema changes, {breaking} breaking)",
        paint.bold("API impact:"),
        paint.level(report.api_impact).trim_end(),
        report.sdl_changes.len()
    );
    if !report.blockers.is_empty() {
        let _ = writeln!(out, "\n{}", paint.red(&paint.bold("Blocked:")));
        for blocker in &report.blockers {
            let _ = writeln!(out, "  - {blocker}");
        }
    }
    let verdict = if report.applied && report.promotion_id.is_none() {
        paint.green(&format!(
            "applied: {} already had every change; the sandbox was rebased on it",
            report.workspace
        ))
    } else if report.applied {
        let id = report.promotion_id.map(|id| id.to_string()).unwrap_or_default();
        paint.green(&format!(
            "applied: {} is at metadata version {} (promotion {id})",
            report.workspace, report.version_after
        ))
    } else if report.blockers.is_empty() {
        paint.green("checked against the target's data: it applies (nothing was changed)")
    } else {
        paint.red("nothing was changed")
    };
    let _ = writeln!(out, "\n{verdict}");
    if report.rebased == Some(false) {
        let _ = writeln!(
            out,
            "{}",
            paint.yellow("the sandbox keeps its old base: its data refused production's own changes")
        );
    }
    out
}

fn change(out: &mut String, entry: &Entry, paint: Paint) {
    let sign = match entry.action {
        Action::Add => paint.green("+"),
        Action::Delete => paint.red("-"),
        Action::Change | Action::Restore => paint.yellow("~"),
    };
    let _ = writeln!(
        out,
        "  {sign} {} {} {}",
        paint.status(entry.status),
        paint.level(entry.api_impact),
        entry.summary
    );
    if let Some(conflict) = &entry.conflict {
        let _ = writeln!(out, "      {} {conflict}", paint.red("conflict:"));
        let _ = writeln!(out, "      {}", paint.dim(&format!("key: {}", entry.key)));
    }
    if let Some(data) = &entry.data_impact {
        let samples = if data.sample_ids.is_empty() {
            String::new()
        } else {
            format!(" (e.g. {})", data.sample_ids.join(", "))
        };
        let label = if entry.status == Status::Fails {
            paint.red("refused:")
        } else if data.lossy {
            paint.yellow("lossy:")
        } else {
            paint.yellow("records:")
        };
        let _ = writeln!(out, "      {label} {}{samples}", data.message);
    }
    let impacts = entry.client_impacts.iter().chain(&entry.sdl_changes);
    for sdl in impacts.filter(|c| c.level != Level::Safe) {
        let _ = writeln!(out, "      {} {}", paint.level(sdl.level).trim_end(), sdl.message);
    }
}

/// A stored promotion as one line of `crm promotion list`.
pub fn promotion_line(promotion: &Json) -> String {
    let text = |key: &str| promotion[key].as_str().unwrap_or_default().to_owned();
    let changes = promotion["changes"].as_array().map_or(0, Vec::len);
    format!(
        "{}  {}  {:<9} {:<8} {:<20} {} → {}  {changes} change(s)  {}",
        text("id"),
        text("at").chars().take(19).collect::<String>(),
        text("kind"),
        text("status"),
        text("source"),
        promotion["versionBefore"],
        promotion["versionAfter"],
        text("workspace"),
    )
}

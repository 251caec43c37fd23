//! The shape of `src/`: a module imports only modules below it in the
//! layer order, so there are no import circles and a change to a low room
//! cannot depend on a high one (a new top-level module takes its place in
//! `LAYERS`); and no file grows past what a reader takes in at once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The top-level modules of the library, lowest first.
const LAYERS: &[&str] = &[
    // Foundations: errors, configuration, who acts.
    "error",
    "config",
    "actor",
    // CPU work at a lower priority than requests.
    "yielding",
    // The database: pool, SQL builder, migrations, the embedded cluster.
    "db",
    // Announcements between servers (LISTEN/NOTIFY).
    "notify",
    // The audit log's writing, then tokens (which audit their changes).
    "audit",
    "auth",
    // The data model and its changes (DDL, metadata kinds).
    "metadata",
    // Reading and writing records.
    "records",
    // Who may read and change what.
    "access",
    // The GraphQL engine: schema building, record resolvers, loaders,
    // compiled reads, limits; rooms register their surface with it.
    "graphql",
    // The rooms: each capability's logic and GraphQL surface.
    "team",
    "history",
    "analytics",
    "search",
    // The log of committed changes every write appends to (merges too).
    "webhooks",
    "duplicates",
    "leads",
    "merge",
    "automation",
    // Live updates (GraphQL subscriptions), fed by the webhooks' events.
    "live",
    "timeline",
    "transfer",
    "customize",
    "sandbox",
    "promotion",
    // Backups, restores and exports of the whole installation.
    "backup",
    // Removing for good what the workspaces' settings no longer keep.
    "retention",
    // Serving: HTTP, the running server, the demo and benchmark data.
    "http",
    "app",
    "seed",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a piece of code names through `crate::`.
fn imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a, b::{c, d}}`: the first name of each item.
            let mut depth = 0;
            let mut opens_item = true;
            let mut name = String::new();
            for c in group.chars() {
                if c.is_alphanumeric() || c == '_' {
                    if opens_item {
                        name.push(c);
                    }
                    continue;
                }
                if !name.is_empty() {
                    found.insert(std::mem::take(&mut name));
                }
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    _ => {}
                }
                opens_item = depth == 0 && (c == ',' || (opens_item && c.is_whitespace()));
            }
            continue;
        }
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            found.insert(name);
        }
    }
    found
}

#[test]
fn every_module_imports_only_modules_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    // Exported macros live at the crate's root: each is its module's.
    let rank = |name: &str| {
        let name = match name {
            "audited" => "graphql",
            name => name,
        };
        LAYERS.iter().position(|l| *l == name)
    };
    let mut wrong = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str().to_string_lossy();
        let module = first.trim_end_matches(".rs");
        // The binary (`main.rs`, `cli/`) uses the library as `crm::`.
        if matches!(module, "main" | "lib" | "cli") {
            continue;
        }
        let Some(own) = rank(module) else {
            wrong.push(format!("src/{module} has no place in LAYERS (tests/layers.rs)"));
            continue;
        };
        let code = code_of(&std::fs::read_to_string(&file).unwrap());
        for imported in imports(&code) {
            if imported == module || imported == "self" || imported == "super" {
                continue;
            }
            match rank(&imported) {
                Some(theirs) if theirs < own => {}
                Some(_) => wrong.push(format!(
                    "{} imports {imported}, which is not below {module}",
                    relative.display()
                )),
                None => wrong.push(format!(
                    "{} imports {imported}, which has no place in LAYERS",
                    relative.display()
                )),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layer order:\n{}",
        wrong.join("\n")
    );
}

/// The longest a file in `src/` may be: split it by concern beyond that.
const MAX_FILE_LINES: usize = 800;

#[test]
fn no_file_in_src_is_longer_than_800_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let lines = std::fs::read_to_string(file).unwrap().lines().count();
            (lines > MAX_FILE_LINES).then(|| format!("{} has {lines} lines", file.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_FILE_LINES} lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_import_reader_sees_paths_and_groups() {
    let code = code_of("use crate::db::sql::Sql;\nuse crate::{audit, records::{self, Record}};\n// crate::http\nlet x = crate::notify::announce();");
    let found: Vec<String> = imports(&code).into_iter().collect();
    assert_eq!(found, ["audit", "db", "notify", "records"]);
}

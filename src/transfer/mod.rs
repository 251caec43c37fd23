//! Bringing records in and taking them out: CSV imports and exports.
//!
//! An **import** is a job (`import_job`) that reads a file once, as a
//! stream: a thread parses and checks each row against the fields'
//! metadata (`cells`, by the same checks a mutation makes) while the rows
//! that pass go to PostgreSQL through binary `COPY` into a temporary
//! staging table (`staging`) on a connection of its own. Set-based
//! statements then resolve lookups, match existing records, check unique
//! fields and duplicate rules (`checks`), and write the records a batch
//! per statement in **one transaction** (`load`): all or nothing, so a
//! crash mid-import leaves no half batch. Refused rows go to the job's
//! error file (`import_error`); what the import did to each record stays
//! in `import_record`, so `revertImport` undoes it (`revert`) while the
//! records are as the import left them.
//!
//! An **export** (`export`) is one `COPY (SELECT …) TO STDOUT` streamed to
//! the client, with the list query's filter, order and the caller's
//! record visibility.

pub mod api;
pub mod cells;
mod checks;
pub mod export;
mod follow;
pub mod job;
mod load;
pub mod mapping;
pub mod progress;
pub mod reader;
pub mod revert;
pub mod saved;
mod staging;
pub mod vcard;

use std::io::Read;
use std::sync::Arc;

use serde_json::Value as Json;

use crate::actor::Actor;
use crate::audit::Trail;
use crate::db::Database;
use crate::error::{CrmError, Result};
use crate::metadata::{Access, Model, ObjectDef};
use crate::records::Visibility;

pub use job::Job;
pub use progress::Progress;

/// What an import does with each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every row is a new record.
    Create,
    /// A row matching a record (by `matchOn`) changes it; others are new.
    Upsert,
    /// Every row must match a record, which it changes.
    Update,
}

impl Mode {
    pub fn parse(text: &str) -> Option<Mode> {
        Some(match text.to_ascii_uppercase().as_str() {
            "CREATE" => Mode::Create,
            "UPSERT" => Mode::Upsert,
            "UPDATE" => Mode::Update,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Create => "CREATE",
            Mode::Upsert => "UPSERT",
            Mode::Update => "UPDATE",
        }
    }
}

/// What a row that fails a check does to the import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// The row is left out (and listed in the error file); the rest is imported.
    Skip,
    /// Nothing is imported if any row fails.
    Abort,
}

impl OnError {
    pub fn parse(text: &str) -> Option<OnError> {
        Some(match text.to_ascii_uppercase().as_str() {
            "SKIP" => OnError::Skip,
            "ABORT" => OnError::Abort,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OnError::Skip => "SKIP",
            OnError::Abort => "ABORT",
        }
    }
}

/// The text encoding of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    /// ISO 8859-1 as Windows writes it (Windows-1252), what spreadsheets
    /// save as "CSV" on many machines.
    Latin1,
}

impl Encoding {
    pub fn parse(text: &str) -> Option<Encoding> {
        Some(match text.to_ascii_uppercase().replace(['-', '_'], "").as_str() {
            "UTF8" => Encoding::Utf8,
            "LATIN1" | "ISO88591" | "WINDOWS1252" | "CP1252" => Encoding::Latin1,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF8",
            Encoding::Latin1 => "LATIN1",
        }
    }
}

/// How an import is asked for: the object, what to do, and how to read the
/// file. Everything but the object has a default.
#[derive(Debug, Clone)]
pub struct Options {
    /// The object's API name (`Contact`) or its plural (`contacts`).
    pub object: String,
    pub mode: Mode,
    /// The field that finds the record a row changes (`id`, `externalId`
    /// or another unique field): for UPSERT and UPDATE. Default: `id` when
    /// a column maps to it, else `externalId`.
    pub match_on: Option<String>,
    /// Header → field API name (`None`: the column is ignored). Columns
    /// not named are guessed from the fields' names and labels.
    pub mapping: Vec<(String, Option<String>)>,
    /// Values for fields the file leaves empty or has no column for.
    pub defaults: serde_json::Map<String, Json>,
    pub formats: cells::Formats,
    /// The separator of the file's columns; guessed from the header
    /// (`,` `;` tab or `|`) when not given.
    pub delimiter: Option<u8>,
    /// Guessed when not given: UTF-8 (with or without a byte order mark)
    /// when the start of the file is valid UTF-8, else Latin-1.
    pub encoding: Option<Encoding>,
    pub on_error: OnError,
    /// Checks the whole file, writes nothing.
    pub dry_run: bool,
    /// The file's name, for people reading the job.
    pub file_name: Option<String>,
    /// Lookups whose records are made when no record has the name a row
    /// gives (a vCard's ORG makes its account).
    pub create_missing: Vec<String>,
    /// What the file was: `CSV` or `VCARD` (found out from its start).
    pub format: &'static str,
}

impl Options {
    /// The defaults for importing into `object`: create records, skip bad rows.
    pub fn new(object: &str) -> Self {
        Options {
            object: object.to_owned(),
            mode: Mode::Create,
            match_on: None,
            mapping: Vec::new(),
            defaults: serde_json::Map::new(),
            formats: cells::Formats::default(),
            delimiter: None,
            encoding: None,
            on_error: OnError::Skip,
            dry_run: false,
            file_name: None,
            create_missing: Vec::new(),
            format: "CSV",
        }
    }
}

/// Where an import or export runs and as whom.
#[derive(Clone)]
pub struct Target {
    pub db: Database,
    /// The workspace's Postgres schema (`crm`, or a sandbox's).
    pub schema: String,
    pub model: Arc<Model>,
    pub actor: Actor,
    /// The records the actor may see and so change.
    pub visibility: Visibility,
    /// Who acts, for the audit log.
    pub trail: Trail,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("schema", &self.schema).finish()
    }
}

impl Target {
    /// The importable object named `name` (API name or plural, any case).
    pub fn object(&self, name: &str) -> Result<&Arc<ObjectDef>> {
        let found = self
            .model
            .objects()
            .iter()
            .find(|o| o.name.eq_ignore_ascii_case(name) || o.plural.eq_ignore_ascii_case(name) || o.table == name);
        match found {
            // Configuration (rules, mappings) has checks of its own: it is
            // changed through the API and promoted from sandboxes.
            Some(object) if object.access == Access::Record => Ok(object),
            Some(object) => Err(CrmError::bad_input(
                &["object"],
                format!("{} records are not imported or exported", object.name),
            )),
            None => Err(CrmError::bad_input(&["object"], format!("there is no object {name:?}"))),
        }
    }
}

/// Runs an import of the CSV file `source` into `target`: creates its job,
/// reads, checks and loads the file, and answers the finished job (also
/// when rows failed or the import was aborted: the job says so). Errors
/// are for what stops an import before it reads a row (bad options, no
/// permission) or the database failing.
pub async fn import(
    target: &Target,
    options: Options,
    source: Box<dyn Read + Send>,
    progress: Arc<Progress>,
) -> Result<Job> {
    let object = target.object(&options.object)?.clone();
    checks::permitted(target, &object, options.mode)?;
    let opened = {
        let options = options.clone();
        tokio::task::spawn_blocking(move || reader::open(source, &options))
            .await
            .map_err(|err| CrmError::internal(format_args!("the reading thread failed: {err}")))??
    };
    let mut options = options;
    options.encoding = Some(opened.encoding);
    options.delimiter = Some(opened.delimiter);
    if opened.vcard {
        if object.name != "Contact" {
            return Err(CrmError::bad_input(
                &["object"],
                format!("vCards are imported as contacts, not as {}", object.plural),
            ));
        }
        options.format = "VCARD";
        options.create_missing.push("account".to_owned());
    }
    let columns = mapping::resolve(&object, &opened.headers, &options)?;
    let plan = mapping::Plan::new(&object, columns, &options)?;
    if let Some(rule) = &plan.match_rule {
        checks::rule_exists(target, &object, rule).await?;
    }
    let id = uuid::Uuid::new_v4();
    // The lock comes first: a job without it reads as interrupted.
    let session = staging::Session::open(&target.db, id).await?;
    let job = job::create(target, id, &object, &options, &plan).await?;
    let mut keep = None;
    let outcome = load::run(
        target,
        &object,
        &options,
        &plan,
        opened,
        job.id,
        session,
        progress.clone(),
        &mut keep,
    )
    .await;
    progress.finished();
    let finished = job::finish(target, job.id, outcome).await;
    // Only now may the job's lock go: it is no longer running.
    drop(keep);
    finished
}

//! Changeset files: a sandbox's changes (see `metadata::kinds`), sorted,
//! as a file another workspace can apply.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::metadata::kinds::{sort, Change};

/// The file format's name and version, the first key of a changeset file.
pub const FORMAT: &str = "crm.changeset/1";

/// A changeset file: the changes of a sandbox, sorted, one key per line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct File {
    pub format: String,
    /// Where the changes were made (`sandbox qa`).
    pub source: String,
    /// Production's metadata version the changes were made against.
    pub base_version: i32,
    pub changes: Vec<Change>,
}

impl File {
    pub fn new(source: String, base_version: i32, mut changes: Vec<Change>) -> File {
        sort(&mut changes);
        File {
            format: FORMAT.into(),
            source,
            base_version,
            changes,
        }
    }

    /// The file's text: pretty JSON with sorted keys and a final newline.
    pub fn to_text(&self) -> String {
        let value = serde_json::to_value(self).unwrap_or(Json::Null);
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        text
    }

    pub fn parse(text: &str) -> std::result::Result<File, String> {
        let file: File = serde_json::from_str(text).map_err(|err| format!("not a changeset file: {err}"))?;
        if file.format != FORMAT {
            return Err(format!("format {:?} is not {FORMAT}", file.format));
        }
        Ok(file)
    }
}

//! What a change means for existing GraphQL clients. Two sources say it:
//! the schemas before and after a change that was made (compared by the
//! promotion's SDL diff), and the metadata itself (each kind's
//! [`MetadataKind::client_impact`](super::MetadataKind::client_impact)),
//! which knows what no schema shows (a retired picklist value, a stage a
//! forecast reads) and answers for changes the target's data refuses.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::{deleted, shown};

/// How a change affects clients written against the API before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Level {
    /// Nothing a client does stops working.
    #[default]
    Safe,
    /// Queries keep working but may see what they did not expect (a new
    /// enum value, a changed default).
    Dangerous,
    /// Some queries stop working: a removed or renamed field, a changed
    /// type, a new required input, a removed enum value.
    Breaking,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Safe, Level::Dangerous, Level::Breaking];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Safe => "SAFE",
            Level::Dangerous => "DANGEROUS",
            Level::Breaking => "BREAKING",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Level::Safe => "No existing query or mutation is affected.",
            Level::Dangerous => {
                "Existing operations keep working but may see something new (a new enum value, a changed default, \
                 other records) or compute something else (reports and forecasts over a changed stage)."
            }
            Level::Breaking => {
                "Some existing operations stop working (a removed or renamed field, a changed type, a new \
                 required input, a removed or retired enum value)."
            }
        }
    }
}

/// One thing a change does to clients: a difference between two schemas,
/// or what the metadata says about a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SdlChange {
    pub level: Level,
    /// `Account`, `Account.tier`, `AccountInput.tier`, `AccountTier.GOLD`,
    /// `Query.accounts(filter)`.
    pub path: String,
    pub message: String,
}

/// The most severe level of `changes` (SAFE for none).
pub fn level_of(changes: &[SdlChange]) -> Level {
    changes.iter().map(|c| c.level).max().unwrap_or_default()
}

impl SdlChange {
    pub fn new(level: Level, path: impl Into<String>, message: impl Into<String>) -> Self {
        SdlChange {
            level,
            path: path.into(),
            message: message.into(),
        }
    }
}

/// How an item changes, as the impact rules read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// It is new, or a deleted one comes back.
    Added,
    /// It goes away (its data is kept).
    Removed,
    /// It stays, with some properties changed.
    Changed,
    /// Deleted before and after: nothing a client sees.
    Gone,
}

impl Lifecycle {
    pub fn of(before: Option<&Json>, after: &Json) -> Lifecycle {
        match (before.map(deleted), deleted(after)) {
            (None | Some(true), false) => Lifecycle::Added,
            (Some(false), true) => Lifecycle::Removed,
            (Some(false), false) => Lifecycle::Changed,
            (None | Some(true), true) => Lifecycle::Gone,
        }
    }
}

/// `from "a" to "b"`, for a changed property.
pub fn from_to(before: &Json, after: &Json, key: &str) -> String {
    format!("from {} to {}", shown(&before[key]), shown(&after[key]))
}

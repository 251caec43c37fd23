//! Kinds whose items are plain rows of a configuration table, one column
//! per property: saved reports, lead field mappings, scoring rules and
//! lead grades. Each is a [`Rows`] value (its table, its properties, the
//! check of a state and what a change means for clients) rather than a
//! file of its own. A promotion writes the rows directly (see
//! `configuration`); what an item means against the workspace's model (a
//! report's fields, a rule's condition) is the rooms' check, made where
//! rows are saved through the API and promoted.

use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;
use serde_json::{json, Value as Json};

use super::configuration::{self, Table};
use super::impact::{Level, Lifecycle, SdlChange};
use super::{deleted, items_of, table_rows, text, About, Change, DataImpact, Item, MetadataKind};
use crate::db::sql::Bind;
use crate::error::Result;
use crate::metadata::change::Target;

/// How a property is stored.
#[derive(Debug, Clone, Copy)]
pub(super) enum Column {
    Text,
    Json,
    Int,
    Bool,
}

/// One property of an item's state and its column.
pub(super) struct Property {
    pub name: &'static str,
    pub column: &'static str,
    pub stored: Column,
    /// The value a state without it stores, as JSON text (`"[]"`, `"true"`).
    pub default: Option<&'static str>,
}

impl Property {
    pub const fn new(name: &'static str, column: &'static str, stored: Column) -> Property {
        Property {
            name,
            column,
            stored,
            default: None,
        }
    }

    pub const fn or(self, default: &'static str) -> Property {
        Property {
            default: Some(default),
            ..self
        }
    }

    /// The value to store for `state`.
    fn bind(&self, state: &Json) -> Bind {
        let value = match (&state[self.name], self.default) {
            (Json::Null, Some(default)) => serde_json::from_str(default).unwrap_or(Json::Null),
            (value, _) => value.clone(),
        };
        match self.stored {
            Column::Text => Bind::Text(value.as_str().map(str::to_owned)),
            Column::Json => Bind::Json((!value.is_null()).then_some(value)),
            Column::Int => Bind::Int(value.as_i64().and_then(|v| i32::try_from(v).ok())),
            Column::Bool => Bind::Bool(value.as_bool()),
        }
    }
}

/// A kind of configuration rows.
pub(super) struct Rows {
    pub about: &'static About,
    pub table: Table,
    pub properties: &'static [Property],
    /// The item's name in a state: its `name`, or what else is unique.
    pub target: fn(&Json) -> String,
    /// When its changes are made in a promotion (see [`MetadataKind::phase`]).
    pub phase: u8,
    /// Refuses a state the table would (a changeset file written by hand).
    pub check: fn(&Json) -> Result<()>,
    /// What removing an item means for clients.
    pub removed: &'static str,
    /// What changing an item means for clients.
    pub changed: &'static str,
}

/// The `name` of a state: the target of most kinds.
pub(super) fn named(state: &Json) -> String {
    text(state, "name")
}

impl MetadataKind for Rows {
    fn about(&self) -> &'static About {
        self.about
    }

    fn document_sql(&self, schema: &str) -> String {
        table_rows(schema, self.table.name, "t.created_at, t.id")
    }

    fn read(&self, doc: &Json) -> Vec<(String, Json)> {
        items_of(doc, self.about.key, |row| {
            let mut state = json!({ "deleted": !row["deleted_at"].is_null() });
            for property in self.properties {
                state[property.name] = row[property.column].clone();
            }
            state
        })
    }

    fn table(&self) -> Option<&'static str> {
        Some(self.table.name)
    }

    fn target_of(&self, state: &Json) -> String {
        (self.target)(state)
    }

    fn deleted_frees_name(&self) -> bool {
        true
    }

    fn client_impact(&self, before: Option<&Json>, after: &Json, change: &Change) -> Vec<SdlChange> {
        let path = &change.target;
        let noun = self.about.noun;
        match Lifecycle::of(before, after) {
            Lifecycle::Added => vec![SdlChange::new(Level::Safe, path, format!("{noun} {path} is added"))],
            Lifecycle::Removed => vec![SdlChange::new(
                Level::Dangerous,
                path,
                format!("{noun} {path} is removed: {}", self.removed),
            )],
            Lifecycle::Gone => Vec::new(),
            Lifecycle::Changed => {
                let before = before.unwrap_or(&Json::Null);
                let changed: Vec<&str> = self
                    .properties
                    .iter()
                    .map(|p| p.name)
                    .filter(|p| before[*p] != after[*p])
                    .collect();
                if changed.is_empty() {
                    return Vec::new();
                }
                vec![SdlChange::new(
                    Level::Dangerous,
                    path,
                    format!("{noun} {path} changes ({}): {}", changed.join(", "), self.changed),
                )]
            }
        }
    }

    fn phase(&self, _desired: &Json) -> u8 {
        self.phase
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        target: &'a Target<'a>,
        current: Option<&'a Item>,
        desired: &'a Json,
        change: &'a Change,
    ) -> BoxFuture<'a, Result<Option<DataImpact>>> {
        let columns = self.properties.iter().map(|p| (p.column, p.bind(desired))).collect();
        Box::pin(async move {
            if !deleted(desired) {
                (self.check)(desired)?;
            }
            configuration::write(conn, target, &self.table, columns, current, desired, change).await?;
            Ok(None)
        })
    }
}

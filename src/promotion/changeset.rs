//! Changesets: what changed between two states of a workspace's metadata,
//! item by item (custom objects, custom fields, pipelines, stages, the
//! workspace settings), each with its state before and after.
//!
//! A sandbox's changeset compares its base (production's metadata when it
//! was made) with its metadata now. Items are matched by id, so a renamed
//! field is one change, not a removal and an addition; in another database
//! (a changeset file applied elsewhere) they are matched by name.

use std::collections::BTreeMap;

use diesel::sql_types::{Jsonb, Nullable, Text};
use diesel_async::AsyncPgConnection;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use crate::db::sql::{quote_ident, Bind, Sql};
use crate::error::{CrmError, Result};

/// The file format's name and version, the first key of a changeset file.
pub const FORMAT: &str = "crm.changeset/1";

/// What a change is about, in the order changes are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Kind {
    Object,
    Field,
    Pipeline,
    Stage,
    Settings,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Object, Kind::Field, Kind::Pipeline, Kind::Stage, Kind::Settings];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Object => "OBJECT",
            Kind::Field => "FIELD",
            Kind::Pipeline => "PIPELINE",
            Kind::Stage => "STAGE",
            Kind::Settings => "SETTINGS",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Kind::Object => "A custom object.",
            Kind::Field => "A custom field, with its picklist options.",
            Kind::Pipeline => "A sales pipeline.",
            Kind::Stage => "A stage of a pipeline.",
            Kind::Settings => "The workspace's settings (recordVisibility).",
        }
    }

    /// Whether the item is part of the GraphQL schema.
    pub fn in_schema(self) -> bool {
        matches!(self, Kind::Object | Kind::Field)
    }
}

/// What a change does to its item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    Add,
    Change,
    Delete,
    Restore,
}

impl Action {
    pub const ALL: [Action; 4] = [Action::Add, Action::Change, Action::Delete, Action::Restore];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Add => "ADD",
            Action::Change => "CHANGE",
            Action::Delete => "DELETE",
            Action::Restore => "RESTORE",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Action::Add => "The item is new.",
            Action::Change => "Properties of the item changed.",
            Action::Delete => "The item is deleted; a field's or object's data is kept and comes back on a revert.",
            Action::Restore => "A deleted item comes back (with its data).",
        }
    }
}

/// A picklist value renamed: records holding `from` now hold `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rename {
    pub from: String,
    pub to: String,
}

/// One item's change. `before` is `None` for a new item; a removed item's
/// `after` is its `before` marked deleted (data is never dropped).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub kind: Kind,
    /// The item as people name it: `Account.tier`, `Sales / Closed Won`.
    pub target: String,
    /// The item's id where it was changed.
    pub id: String,
    pub before: Option<Json>,
    pub after: Json,
    /// Picklist values renamed (records follow), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renamed_options: Vec<Rename>,
}

impl Change {
    pub fn action(&self) -> Action {
        match &self.before {
            None => Action::Add,
            Some(before) if !deleted(before) && deleted(&self.after) => Action::Delete,
            Some(before) if deleted(before) && !deleted(&self.after) => Action::Restore,
            Some(_) => Action::Change,
        }
    }

    /// The properties whose value differs, in a stable order.
    pub fn properties(&self) -> Vec<String> {
        changed(self.before.as_ref(), &self.after)
    }

    /// The same change the other way round.
    pub fn inverse(&self, before: Option<Json>, after: Json) -> Change {
        Change {
            kind: self.kind,
            target: self.target.clone(),
            id: self.id.clone(),
            before,
            after,
            renamed_options: self
                .renamed_options
                .iter()
                .rev()
                .map(|r| Rename {
                    from: r.to.clone(),
                    to: r.from.clone(),
                })
                .collect(),
        }
    }

    /// One line saying what the change does.
    pub fn summary(&self) -> String {
        let what = match self.kind {
            Kind::Object => "object",
            Kind::Field => "field",
            Kind::Pipeline => "pipeline",
            Kind::Stage => "stage",
            Kind::Settings => "settings",
        };
        let target = &self.target;
        match self.action() {
            Action::Add => match self.kind {
                Kind::Field => format!(
                    "add field {target} ({}{})",
                    text(&self.after, "type"),
                    if self.after["required"] == json!(true) {
                        ", required"
                    } else {
                        ""
                    }
                ),
                _ => format!("add {what} {target}"),
            },
            Action::Delete => format!("delete {what} {target}"),
            Action::Restore => format!("restore {what} {target}"),
            Action::Change => {
                let before = self.before.clone().unwrap_or(Json::Null);
                let parts: Vec<String> = self
                    .properties()
                    .into_iter()
                    .map(|p| match p.as_str() {
                        "name" => format!("rename to {}", text(&self.after, "name")),
                        "type" => format!("type {} → {}", text(&before, "type"), text(&self.after, "type")),
                        "options" => format!(
                            "options: {}",
                            option_summary(&before, &self.after, &self.renamed_options)
                        ),
                        other => format!("{other} {} → {}", shown(&before[other]), shown(&self.after[other])),
                    })
                    .collect();
                format!("change {what} {target}: {}", parts.join("; "))
            }
        }
    }
}

/// Every property of either side whose value differs (`deleted` included).
pub fn changed(before: Option<&Json>, after: &Json) -> Vec<String> {
    let empty = serde_json::Map::new();
    let old = before.and_then(Json::as_object).unwrap_or(&empty);
    let new = after.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = new.keys().chain(old.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .cloned()
        .collect()
}

pub fn deleted(state: &Json) -> bool {
    state["deleted"] == json!(true)
}

pub(super) fn text(state: &Json, key: &str) -> String {
    state[key].as_str().unwrap_or_default().to_owned()
}

/// A value in a message: `none`, a quoted text, or JSON.
pub(super) fn shown(value: &Json) -> String {
    match value {
        Json::Null => "none".into(),
        Json::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// `+ PLATINUM, GOLD → GOLD_PLUS, − BRONZE (retired)`.
fn option_summary(before: &Json, after: &Json, renames: &[Rename]) -> String {
    let values = |state: &Json| -> Vec<(String, bool)> {
        state["options"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|o| Some((o["value"].as_str()?.to_owned(), o["active"] != json!(false))))
                    .collect()
            })
            .unwrap_or_default()
    };
    let old = values(before);
    let new = values(after);
    let mut parts = Vec::new();
    for rename in renames {
        parts.push(format!("{} → {}", rename.from, rename.to));
    }
    for (value, active) in &new {
        let renamed = renames.iter().any(|r| &r.to == value);
        match old.iter().find(|(v, _)| v == value) {
            None if !renamed => parts.push(format!("+ {value}")),
            Some((_, was)) if *was && !active => parts.push(format!("− {value} (retired)")),
            Some((_, was)) if !was && *active => parts.push(format!("{value} reactivated")),
            _ => {}
        }
    }
    for (value, _) in &old {
        let renamed = renames.iter().any(|r| &r.from == value);
        if !renamed && !new.iter().any(|(v, _)| v == value) {
            parts.push(format!("− {value} (dropped: retired where records hold it)"));
        }
    }
    if parts.is_empty() {
        "labels or order".into()
    } else {
        parts.join(", ")
    }
}

/// One item of a workspace's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub kind: Kind,
    pub id: String,
    /// Its name, unique among live items of its kind.
    pub target: String,
    pub state: Json,
}

/// A workspace's metadata: every item, by kind and id.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub version: i32,
    pub items: BTreeMap<(Kind, String), Item>,
}

impl Snapshot {
    /// Reads `schema`'s metadata now.
    pub async fn read(conn: &mut AsyncPgConnection, schema: &str) -> Result<Snapshot> {
        #[derive(diesel::QueryableByName)]
        struct Doc {
            #[diesel(sql_type = Jsonb)]
            doc: Json,
        }
        let mut query = Sql::raw("SELECT ");
        query.append(&document(schema)).push(" AS doc FROM ");
        query.table(schema, "workspace_settings").push(" AS s");
        let rows: Vec<Doc> = query.load(conn).await?;
        let doc = rows
            .into_iter()
            .next()
            .ok_or_else(|| CrmError::internal(format_args!("{schema}.workspace_settings is empty")))?;
        Ok(Snapshot::of(&doc.doc))
    }

    /// The snapshot of a stored document (a sandbox's base).
    pub fn of(doc: &Json) -> Snapshot {
        let rows = |key: &str| doc[key].as_array().cloned().unwrap_or_default();
        let mut items = BTreeMap::new();
        let mut add = |kind: Kind, row: &Json, target: String, state: Json| {
            let id = row["id"].as_str().unwrap_or_default().to_owned();
            items.insert(
                (kind, id.clone()),
                Item {
                    kind,
                    id,
                    target,
                    state,
                },
            );
        };
        for row in rows("objects") {
            let state = json!({
                "name": row["name"],
                "pluralName": row["plural"],
                "label": row["label"],
                "pluralLabel": row["plural_label"],
                "description": row["description"],
                "deleted": !row["deleted_at"].is_null(),
            });
            add(Kind::Object, &row, text(&row, "name"), state);
        }
        for row in rows("fields") {
            let state = json!({
                "object": row["object"],
                "name": row["name"],
                "label": row["label"],
                "description": row["description"],
                "type": row["type"],
                "required": row["required"],
                "unique": row["is_unique"],
                "indexed": row["indexed"],
                "defaultValue": row["default_value"],
                "options": row["options"],
                "lookupObject": row["lookup_object"],
                "relationName": row["relation_name"],
                "deleted": !row["deleted_at"].is_null(),
            });
            add(
                Kind::Field,
                &row,
                format!("{}.{}", text(&row, "object"), text(&row, "name")),
                state,
            );
        }
        let pipelines = rows("pipelines");
        for row in &pipelines {
            let state = json!({
                "name": row["name"],
                "description": row["description"],
                "isDefault": row["is_default"],
                "deleted": !row["deleted_at"].is_null(),
            });
            add(Kind::Pipeline, row, text(row, "name"), state);
        }
        for row in rows("stages") {
            let pipeline = pipelines
                .iter()
                .find(|p| p["id"] == row["pipeline_id"])
                .map(|p| text(p, "name"))
                .unwrap_or_default();
            let state = json!({
                "pipeline": pipeline,
                "name": row["name"],
                "position": row["position"],
                "probability": row["probability"],
                "forecastCategory": row["forecast_category"],
                "isClosed": row["is_closed"],
                "isWon": row["is_won"],
                "deleted": !row["deleted_at"].is_null(),
            });
            add(Kind::Stage, &row, format!("{pipeline} / {}", text(&row, "name")), state);
        }
        let settings = json!({ "recordVisibility": doc["recordVisibility"] });
        let row = json!({ "id": "settings" });
        add(Kind::Settings, &row, "workspace settings".into(), settings);
        Snapshot {
            version: doc["version"].as_i64().unwrap_or_default() as i32,
            items,
        }
    }

    pub fn get(&self, kind: Kind, id: &str) -> Option<&Item> {
        self.items.get(&(kind, id.to_owned()))
    }

    /// The item a change is about here: the same id, else a live item (or
    /// for settings, the one) of the same name.
    pub fn matching(&self, change: &Change) -> Option<&Item> {
        if let Some(item) = self.get(change.kind, &change.id) {
            return Some(item);
        }
        let name = match &change.before {
            Some(before) => target_of(change.kind, before),
            None => target_of(change.kind, &change.after),
        };
        // A deleted stage leaves its name free; deleted fields, objects
        // and pipelines keep theirs until purged.
        self.items
            .values()
            .filter(|item| item.kind == change.kind && item.target == name)
            .filter(|item| change.kind != Kind::Stage || !deleted(&item.state))
            .min_by_key(|item| deleted(&item.state))
    }
}

/// The name of an item in a state, as `Item::target` has it.
fn target_of(kind: Kind, state: &Json) -> String {
    match kind {
        Kind::Field => format!("{}.{}", text(state, "object"), text(state, "name")),
        Kind::Stage => format!("{} / {}", text(state, "pipeline"), text(state, "name")),
        Kind::Settings => "workspace settings".into(),
        Kind::Object | Kind::Pipeline => text(state, "name"),
    }
}

/// A workspace's metadata as one JSON document: every row of its
/// customizations, pipelines and stages, and its settings, for a statement
/// reading its `workspace_settings AS s`. What a sandbox stores as its base.
pub fn document(schema: &str) -> Sql {
    let schema = quote_ident(schema);
    let rows = |table: &str, order: &str| {
        format!("(SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY {order}), '[]'::jsonb) FROM {schema}.{table} t)")
    };
    Sql::raw(&format!(
        "jsonb_build_object('version', s.metadata_version, 'recordVisibility', s.record_visibility, \
         'objects', {}, 'fields', {}, 'pipelines', {}, 'stages', {})",
        rows("custom_object", "t.created_at, t.name"),
        rows("custom_field", "t.position, t.name"),
        rows("pipeline", "t.created_at, t.id"),
        rows("stage", "t.pipeline_id, t.position, t.id"),
    ))
}

/// The changes from `base` to `now`, in the order they apply.
pub fn between(base: &Snapshot, now: &Snapshot) -> Vec<Change> {
    let mut out = Vec::new();
    for (key, item) in &now.items {
        match base.items.get(key) {
            None if deleted(&item.state) => {}
            None => out.push(Change {
                kind: item.kind,
                target: item.target.clone(),
                id: item.id.clone(),
                before: None,
                after: item.state.clone(),
                renamed_options: Vec::new(),
            }),
            Some(old) if old.state != item.state => out.push(Change {
                kind: item.kind,
                target: item.target.clone(),
                id: item.id.clone(),
                before: Some(old.state.clone()),
                after: item.state.clone(),
                renamed_options: Vec::new(),
            }),
            Some(_) => {}
        }
    }
    // Purged items: promoted as deletions, which keep the data.
    for (key, old) in &base.items {
        if !now.items.contains_key(key) && !deleted(&old.state) {
            let mut after = old.state.clone();
            after["deleted"] = json!(true);
            out.push(Change {
                kind: old.kind,
                target: old.target.clone(),
                id: old.id.clone(),
                before: Some(old.state.clone()),
                after,
                renamed_options: Vec::new(),
            });
        }
    }
    sort(&mut out);
    out
}

/// The order changes are listed and applied in: by kind, then name.
pub fn sort(changes: &mut [Change]) {
    changes.sort_by(|a, b| (a.kind, &a.target, &a.id).cmp(&(b.kind, &b.target, &b.id)));
}

/// Attaches the picklist renames `schema` recorded after `since` (its
/// metadata history) to the field changes they belong to.
pub async fn attach_renames(
    conn: &mut AsyncPgConnection,
    schema: &str,
    since: i32,
    changes: &mut [Change],
) -> Result<()> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Nullable<Text>)]
        id: Option<String>,
        #[diesel(sql_type = Nullable<Jsonb>)]
        renames: Option<Json>,
    }
    let mut query = Sql::raw("SELECT after->>'id' AS id, after->'renamedOptions' AS renames FROM ");
    query
        .table(schema, "metadata_change")
        .push(" WHERE kind = 'FIELD_UPDATED' AND after ? 'renamedOptions' AND version > ");
    query.bind(Bind::Int(Some(since))).push(" ORDER BY version");
    let rows: Vec<Row> = query.load(conn).await?;
    for row in rows {
        let (Some(id), Some(renames)) = (row.id, row.renames) else {
            continue;
        };
        let Some(change) = changes.iter_mut().find(|c| c.kind == Kind::Field && c.id == id) else {
            continue;
        };
        let renames: Vec<Rename> = serde_json::from_value(renames).unwrap_or_default();
        for rename in renames {
            match change.renamed_options.iter_mut().find(|r| r.to == rename.from) {
                Some(chain) => chain.to = rename.to,
                None => change.renamed_options.push(rename),
            }
        }
        change.renamed_options.retain(|r| r.from != r.to);
    }
    Ok(())
}

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

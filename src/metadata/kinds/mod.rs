//! The kinds of metadata a workspace has and a promotion moves: custom
//! objects, custom fields (with their picklist options), pipelines, their
//! stages, the workspace settings, and rows of configuration (saved
//! reports, lead field mappings, scoring rules, lead grades). Each kind is
//! one file implementing [`MetadataKind`] (the configuration rows share
//! one, `rows`): its part of the metadata document, how its items are
//! read from it, named and applied. Diffs, promotions, reverts, changeset
//! files and their reports go through [`all`] and [`Kind::def`] instead of
//! naming kinds.
//!
//! The data a changeset is made of lives here too: a workspace's metadata
//! as items ([`Snapshot`]), read from one JSON document ([`document`]), and
//! what changed between two of them, item by item ([`between`]). Items are
//! matched by id, so a renamed field is one change, not a removal and an
//! addition; in another database (a changeset file applied elsewhere) they
//! are matched by name.

mod configuration;
mod configured;
mod field;
pub mod impact;
mod object;
mod pipeline;
mod rows;
mod settings;
mod stage;

use std::collections::BTreeMap;

use diesel::sql_types::{Jsonb, Nullable, Text};
use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::change::Target;
use crate::db::sql::{quote_ident, Bind, Sql};
use crate::error::{CrmError, Result};
use impact::SdlChange;

/// What a kind is called, and where its items are in the metadata
/// document.
#[derive(Debug)]
pub struct About {
    /// The [`Kind`] naming it in changes.
    pub kind: Kind,
    /// Its identifier, as changes, keys and the API name it: `FIELD`.
    pub identifier: &'static str,
    /// What an item is called in a change's summary: `field`.
    pub noun: &'static str,
    /// One sentence saying what an item is, for the API's enum.
    pub description: &'static str,
    /// Its key in the metadata document: `fields`.
    pub key: &'static str,
}

/// One kind of metadata item, implemented once per kind (one file each)
/// and listed in [`all`].
pub trait MetadataKind: Sync {
    /// What the kind is called and where its items are in the document.
    fn about(&self) -> &'static About;

    /// The SQL giving its part of the document (under its [`About::key`]) for
    /// the workspace in `schema`, in a statement reading its
    /// `workspace_settings AS s`.
    fn document_sql(&self, schema: &str) -> String;

    /// Its keys in the document with the SQL of each: its
    /// [`About::key`] with [`MetadataKind::document_sql`], unless a kind
    /// spreads its part over several keys (the settings).
    fn document_parts(&self, schema: &str) -> Vec<(&'static str, String)> {
        vec![(self.about().key, self.document_sql(schema))]
    }

    /// Its items in a metadata document: each one's id and state.
    fn read(&self, doc: &Json) -> Vec<(String, Json)>;

    /// The name of its item in a state, unique among live items of the
    /// kind: `Account.tier`, `Sales / Closed Won`.
    fn target_of(&self, state: &Json) -> String;

    /// Whether its items are part of the GraphQL schema.
    fn in_schema(&self) -> bool {
        false
    }

    /// Where its items stand in a metadata document, by id, for kinds
    /// whose items users see in an order they made (a field's place among
    /// its object's fields). Not part of an item's state, so it is never
    /// compared: it only orders the changes that make items.
    fn positions(&self, _doc: &Json) -> Vec<(String, i64)> {
        Vec::new()
    }

    /// What an item in a state is ordered within by its position: a
    /// field's object. Changes of one kind are listed and made by it, then
    /// by position, then by name.
    fn parent_of(&self, _state: &Json) -> String {
        String::new()
    }

    /// The workspace's table its items are rows of, keyed by their id;
    /// `None` when they are not rows of their own (the settings).
    fn table(&self) -> Option<&'static str> {
        None
    }

    /// When an item taking the state `desired` is made, among the changes
    /// of a promotion: lower first.
    fn phase(&self, desired: &Json) -> u8;

    /// Whether a deleted item leaves its name free for a new one (else it
    /// keeps it until purged).
    fn deleted_frees_name(&self) -> bool {
        false
    }

    /// What bringing an item from `before` (`None`: there is none) to
    /// `after` means for existing clients, from the metadata alone: given
    /// for every change, whether or not the target's data accepts it.
    fn client_impact(&self, _before: Option<&Json>, _after: &Json, _change: &Change) -> Vec<SdlChange> {
        Vec::new()
    }

    /// One line saying what the addition `change` does.
    fn add_summary(&self, change: &Change) -> String {
        format!("add {} {}", self.about().noun, change.target)
    }

    /// Brings the target's item from `current` (`None`: there is none) to
    /// `desired`, as `change` asks. Returns what a type change it made
    /// lost of the records' values.
    fn apply<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        target: &'a Target<'a>,
        current: Option<&'a Item>,
        desired: &'a Json,
        change: &'a Change,
    ) -> BoxFuture<'a, Result<Option<DataImpact>>>;
}

/// Every kind, in the order changes are listed (the order of [`Kind`]).
static KINDS: [&dyn MetadataKind; 15] = [
    &object::Object,
    &field::Field,
    &pipeline::Pipeline,
    &stage::Stage,
    &settings::Settings,
    &configured::REPORT,
    &configured::LEAD_FIELD_MAPPING,
    &configured::SCORING_RULE,
    &configured::LEAD_GRADE,
    &configured::DUPLICATE_RULE,
    &configured::IMPORT_MAPPING,
    &configured::VALIDATION_RULE,
    &configured::EMAIL_TEMPLATE,
    &configured::WEBHOOK_SUBSCRIPTION,
    &configured::WORKFLOW_RULE,
];

/// Every kind of metadata, in the order changes are listed.
pub fn all() -> &'static [&'static dyn MetadataKind] {
    &KINDS
}

/// What a change is about, in the order changes are listed: the
/// identifier changeset files, stored promotions and sandbox bases use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Kind {
    Object,
    Field,
    Pipeline,
    Stage,
    Settings,
    Report,
    LeadFieldMapping,
    ScoringRule,
    LeadGrade,
    DuplicateRule,
    ImportMapping,
    ValidationRule,
    EmailTemplate,
    WebhookSubscription,
    WorkflowRule,
}

impl Kind {
    /// The kind's implementation.
    pub fn def(self) -> &'static dyn MetadataKind {
        match self {
            Kind::Object => &object::Object,
            Kind::Field => &field::Field,
            Kind::Pipeline => &pipeline::Pipeline,
            Kind::Stage => &stage::Stage,
            Kind::Settings => &settings::Settings,
            Kind::Report => &configured::REPORT,
            Kind::LeadFieldMapping => &configured::LEAD_FIELD_MAPPING,
            Kind::ScoringRule => &configured::SCORING_RULE,
            Kind::LeadGrade => &configured::LEAD_GRADE,
            Kind::DuplicateRule => &configured::DUPLICATE_RULE,
            Kind::ImportMapping => &configured::IMPORT_MAPPING,
            Kind::ValidationRule => &configured::VALIDATION_RULE,
            Kind::EmailTemplate => &configured::EMAIL_TEMPLATE,
            Kind::WebhookSubscription => &configured::WEBHOOK_SUBSCRIPTION,
            Kind::WorkflowRule => &configured::WORKFLOW_RULE,
        }
    }

    /// Its identifier: `FIELD`.
    pub fn as_str(self) -> &'static str {
        self.def().about().identifier
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
    /// Where the item stands where it was changed (a field's place among
    /// its object's fields): changes are made in that order, so added
    /// fields keep the order they were made in. Not compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
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
            position: self.position,
        }
    }

    /// One line saying what the change does.
    pub fn summary(&self) -> String {
        let def = self.kind.def();
        let what = def.about().noun;
        let target = &self.target;
        match self.action() {
            Action::Add => def.add_summary(self),
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

/// Whether an item's state is deleted.
pub fn deleted(state: &Json) -> bool {
    state["deleted"] == json!(true)
}

/// A text property of a state, or `""`.
fn text(state: &Json, key: &str) -> String {
    state[key].as_str().unwrap_or_default().to_owned()
}

/// A value in a message: `none`, a quoted text, or JSON.
pub fn shown(value: &Json) -> String {
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
    /// Where it stands among its parent's items (see
    /// [`MetadataKind::positions`]); not part of its state.
    pub position: Option<i64>,
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
        let mut items = BTreeMap::new();
        for def in all() {
            let kind = def.about().kind;
            let positions: BTreeMap<String, i64> = def.positions(doc).into_iter().collect();
            for (id, state) in def.read(doc) {
                let target = def.target_of(&state);
                let position = positions.get(&id).copied();
                items.insert(
                    (kind, id.clone()),
                    Item {
                        kind,
                        id,
                        target,
                        state,
                        position,
                    },
                );
            }
        }
        Snapshot {
            version: doc["version"].as_i64().unwrap_or_default() as i32,
            items,
        }
    }

    /// The item of this kind and id.
    pub fn get(&self, kind: Kind, id: &str) -> Option<&Item> {
        self.items.get(&(kind, id.to_owned()))
    }

    /// The item a change is about here: the same id, else a live item (or
    /// for settings, the one) of the same name.
    pub fn matching(&self, change: &Change) -> Option<&Item> {
        if let Some(item) = self.get(change.kind, &change.id) {
            return Some(item);
        }
        let def = change.kind.def();
        let name = def.target_of(change.before.as_ref().unwrap_or(&change.after));
        self.items
            .values()
            .filter(|item| item.kind == change.kind && item.target == name)
            .filter(|item| !def.deleted_frees_name() || !deleted(&item.state))
            .min_by_key(|item| deleted(&item.state))
    }
}

/// A workspace's metadata as one JSON document: its version and each
/// kind's part (every row of its customizations, pipelines and stages, its
/// settings), for a statement reading its `workspace_settings AS s`. What
/// a sandbox stores as its base.
pub fn document(schema: &str) -> Sql {
    let mut parts = String::from("jsonb_build_object('version', s.metadata_version");
    for def in all() {
        for (key, sql) in def.document_parts(schema) {
            parts.push_str(&format!(", '{key}', {sql}"));
        }
    }
    parts.push(')');
    Sql::raw(&parts)
}

/// The SQL of a table's rows as a JSON array, in `order`: a kind's part of
/// the metadata document.
fn table_rows(schema: &str, table: &str, order: &str) -> String {
    let schema = quote_ident(schema);
    format!("(SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY {order}), '[]'::jsonb) FROM {schema}.{table} t)")
}

/// The rows under `key` of a metadata document.
fn rows(doc: &Json, key: &str) -> Vec<Json> {
    doc[key].as_array().cloned().unwrap_or_default()
}

/// The id of a row of a metadata document.
fn id_of(row: &Json) -> String {
    text(row, "id")
}

/// The items of the rows under `key` in a metadata document: each one's
/// id, and the state `state` reads off its row.
fn items_of(doc: &Json, key: &str, state: impl Fn(&Json) -> Json) -> Vec<(String, Json)> {
    rows(doc, key).iter().map(|row| (id_of(row), state(row))).collect()
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
                position: item.position,
            }),
            Some(old) if old.state != item.state => out.push(Change {
                kind: item.kind,
                target: item.target.clone(),
                id: item.id.clone(),
                before: Some(old.state.clone()),
                after: item.state.clone(),
                renamed_options: Vec::new(),
                position: item.position,
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
                position: old.position,
            });
        }
    }
    sort(&mut out);
    out
}

/// The order changes are listed and applied in: by kind, then name; the
/// fields of one object by their position where they were changed (a
/// change without one, from an older changeset file, first), so they are
/// made in the order they were made there.
pub fn sort(changes: &mut [Change]) {
    changes.sort_by_cached_key(|c| {
        let parent = c.kind.def().parent_of(&c.after);
        (c.kind, parent, c.position, c.target.clone(), c.id.clone())
    });
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

/// What a change does to the target's existing records: why they refuse
/// it, or (`lossy`) the information a type change applied to them loses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataImpact {
    pub message: String,
    /// The property concerned (`required`, `type`, `options`, …).
    pub path: Vec<String>,
    /// Records that violate the change (or lose information), when it is
    /// about records.
    pub count: Option<i64>,
    pub sample_ids: Vec<String>,
    /// The change applies, but `count` values lose information: the
    /// promotion needs `allow_lossy`.
    #[serde(default)]
    pub lossy: bool,
}

/// A property's new value when it differs from now.
fn differs(now: &Json, desired: &Json, key: &str) -> Option<Json> {
    (now[key] != desired[key]).then(|| desired[key].clone())
}

/// Gives a row made by a change the id it has where the change was made,
/// when no other row has it: the next promotion matches it by id.
async fn adopt_id(conn: &mut AsyncPgConnection, schema: &str, table: &str, made: Uuid, id: &str) -> Result<()> {
    let Ok(id) = Uuid::parse_str(id) else {
        return Ok(());
    };
    let mut query = Sql::raw("UPDATE ");
    query.table(schema, table).push(" SET id = ").bind(Bind::Uuid(Some(id)));
    query.push(" WHERE id = ").bind(Bind::Uuid(Some(made)));
    query.push(" AND NOT EXISTS (SELECT 1 FROM ").table(schema, table);
    query.push(" WHERE id = ").bind(Bind::Uuid(Some(id))).push(")");
    query.execute(conn).await?;
    Ok(())
}

//! Applying a changeset to a workspace: each change is checked three ways
//! (its state before, its state after, the workspace's item now), then made
//! through the same metadata changes the API makes, each in a savepoint, so
//! one change that existing data refuses is reported while the others are
//! still tried.

use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::changeset::{self, deleted, shown, text, Action, Change, Item, Kind, Snapshot};
use super::sdl::{self, Level, SdlChange};
use crate::audit::{self, Action as AuditAction};
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::graphql::Rooms;
use crate::metadata::change::{
    self, FieldPatch, FieldSpec, ObjectPatch, ObjectSpec, OnInvalid, OnLossy, OptionSpec, Preview, Target, TypeChange,
};
use crate::metadata::custom::{parse_options, Customizations};

/// Where a change stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Checked against the workspace's data: it applies.
    Ready,
    /// Applied and committed.
    Applied,
    /// The workspace already has it.
    AlreadyApplied,
    /// The workspace changed the same item since the base.
    Conflict,
    /// The workspace's data or API refuses it (see `dataImpact`).
    Fails,
    /// A conflict resolved in favour of the workspace: not applied.
    Skipped,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Ready,
        Status::Applied,
        Status::AlreadyApplied,
        Status::Conflict,
        Status::Fails,
        Status::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ready => "READY",
            Status::Applied => "APPLIED",
            Status::AlreadyApplied => "ALREADY_APPLIED",
            Status::Conflict => "CONFLICT",
            Status::Fails => "FAILS",
            Status::Skipped => "SKIPPED",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Status::Ready => "Checked against the target's data inside a transaction: it applies.",
            Status::Applied => "Applied and committed.",
            Status::AlreadyApplied => "The target already has it: nothing to do.",
            Status::Conflict => "The target changed the same item since the base: resolve it first.",
            Status::Fails => "The target's data or API refuses it: see dataImpact.",
            Status::Skipped => "A conflict resolved in favour of the target: not applied.",
        }
    }
}

/// Which side wins a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Side {
    /// The change is applied over the target's own change.
    Source,
    /// The target keeps its version; the change is skipped.
    Target,
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

/// One property of a change: base, changed, and the target's now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Property {
    pub name: String,
    pub before: Json,
    pub after: Json,
    pub target: Json,
}

/// A change as checked against a target workspace.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// `FIELD:<id>`: names the change in `resolutions`.
    pub key: String,
    #[serde(flatten)]
    pub change: Change,
    pub action: Action,
    pub summary: String,
    pub properties: Vec<Property>,
    pub status: Status,
    pub conflict: Option<String>,
    pub resolution: Option<Side>,
    pub api_impact: Level,
    pub sdl_changes: Vec<SdlChange>,
    pub data_impact: Option<DataImpact>,
    /// The target's item before the change.
    #[serde(skip)]
    pub current: Option<Item>,
    /// What the target's item should become.
    #[serde(skip)]
    pub desired: Option<Json>,
}

impl Entry {
    pub fn blocks(&self) -> bool {
        matches!(self.status, Status::Conflict | Status::Fails)
    }
}

/// The key of a change: its kind and id.
pub fn key_of(change: &Change) -> String {
    format!("{}:{}", change.kind.as_str(), change.id)
}

/// Checks each change against the target's items now: what it would make
/// of the item, or why it conflicts. `resolutions` decide conflicts by key.
pub fn plan(changes: Vec<Change>, target: &Snapshot, resolutions: &[(String, Side)]) -> Vec<Entry> {
    changes
        .into_iter()
        .map(|change| {
            let key = key_of(&change);
            let current = target.matching(&change).cloned();
            let resolution = resolutions.iter().find(|(k, _)| *k == key).map(|(_, side)| *side);
            let changed = change.properties();
            let (status, conflict, desired) = judge(&change, &changed, current.as_ref(), resolution);
            let properties = changed
                .into_iter()
                .map(|name| Property {
                    before: change.before.as_ref().map(|b| b[&name].clone()).unwrap_or(Json::Null),
                    after: change.after[&name].clone(),
                    target: current.as_ref().map(|c| c.state[&name].clone()).unwrap_or(Json::Null),
                    name,
                })
                .collect();
            Entry {
                key,
                action: change.action(),
                summary: change.summary(),
                properties,
                status,
                conflict,
                resolution,
                api_impact: Level::Safe,
                sdl_changes: Vec::new(),
                data_impact: None,
                current,
                desired,
                change,
            }
        })
        .collect()
}

/// The three-way check of one change (whose `changed` properties differ
/// between before and after): its status, the conflict, and the state the
/// target's item should take.
fn judge(
    change: &Change,
    changed: &[String],
    current: Option<&Item>,
    resolution: Option<Side>,
) -> (Status, Option<String>, Option<Json>) {
    let target = &change.target;
    let ready = |desired: Json| (Status::Ready, None, Some(desired));
    let conflict = |why: String| match resolution {
        Some(Side::Target) => (Status::Skipped, Some(why), None),
        Some(Side::Source) => {
            let mut desired = current.map(|c| c.state.clone()).unwrap_or_else(|| change.after.clone());
            for name in changed {
                desired[name] = change.after[name].clone();
            }
            (Status::Ready, Some(why), Some(desired))
        }
        None => (Status::Conflict, Some(why), None),
    };
    let Some(current) = current else {
        return match &change.before {
            None => ready(change.after.clone()),
            Some(_) if deleted(&change.after) => (Status::AlreadyApplied, None, None),
            Some(_) => conflict(format!("the target has no {target} any more")),
        };
    };
    let now = &current.state;
    let Some(before) = &change.before else {
        if *now == change.after {
            return (Status::AlreadyApplied, None, None);
        }
        if deleted(now) && current.id == change.id {
            // Added before, deleted since (a revert): it comes back.
            return ready(change.after.clone());
        }
        return conflict(format!(
            "the target already has a different {target}{}",
            if deleted(now) { " (deleted, not yet purged)" } else { "" }
        ));
    };
    let mut desired = now.clone();
    let mut clashes = Vec::new();
    for name in changed {
        let (old, new, theirs) = (&before[name], &change.after[name], &now[name]);
        if theirs == new || theirs == old {
            desired[name] = new.clone();
        } else {
            clashes.push(format!("{name} is {} there, was {}", shown(theirs), shown(old)));
        }
    }
    // A deletion or a type change replaces the whole item: any change the
    // target made to it since the base would be lost.
    if deleted(&change.after) && !deleted(before) || changed.iter().any(|p| p == "type") {
        for name in changeset::changed(Some(before), now) {
            if !changed.contains(&name) {
                clashes.push(format!("{name} changed there to {}", shown(&now[&name])));
            }
        }
    }
    if !clashes.is_empty() {
        return conflict(format!(
            "{target} changed in the target since the base: {}",
            clashes.join("; ")
        ));
    }
    if desired == *now {
        return (Status::AlreadyApplied, None, None);
    }
    ready(desired)
}

/// The order changes are made in: objects before their fields, fields
/// before the deletion of objects they point at, a pipeline losing its
/// default flag before another takes it, pipelines before their stages.
fn phase(entry: &Entry) -> u8 {
    let desired = entry.desired.as_ref().unwrap_or(&entry.change.after);
    match entry.change.kind {
        Kind::Object if deleted(desired) => 2,
        Kind::Object => 0,
        Kind::Field => 1,
        Kind::Pipeline if desired["isDefault"] == json!(true) => 4,
        Kind::Pipeline => 3,
        Kind::Stage => 5,
        Kind::Settings => 6,
    }
}

/// Makes every ready change in `target`'s workspace, each in a savepoint.
/// A change the data or the API refuses is rolled back and marked `FAILS`
/// with why; the others go on. With `sdl`, each schema change is compared
/// with the schema before it (`sdl` is then the schema after all of them);
/// that schema build is also the check that the API can serve the change.
pub async fn run(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    entries: &mut [Entry],
    sdl: Option<(Rooms, &mut String)>,
) -> Result<()> {
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| (phase(&entries[i]), i));
    let (rooms, mut schema_now) = match sdl {
        Some((rooms, text)) => (Some(rooms), Some(text)),
        None => (None, None),
    };
    let mut parsed = schema_now.as_deref().map(|text| sdl::Schema::parse(text));
    for i in order {
        let entry = &mut entries[i];
        if entry.status != Status::Ready {
            continue;
        }
        let before = parsed.as_ref();
        let tried = conn
            .transaction::<_, CrmError, _>(async |conn| {
                let lossy = make(conn, target, entry).await?;
                let schema = match (before, rooms) {
                    (Some(before), Some(rooms)) if entry.change.kind.in_schema() => {
                        let text = schema_sdl(conn, rooms, target.schema).await?;
                        let after = sdl::Schema::parse(&text);
                        Some((sdl::changes(before, &after), text, after))
                    }
                    _ => None,
                };
                Ok((schema, lossy))
            })
            .await;
        match tried {
            Ok((schema, lossy)) => {
                entry.data_impact = lossy;
                if let Some((changes, text, after)) = schema {
                    entry.api_impact = sdl::level_of(&changes);
                    entry.sdl_changes = changes;
                    parsed = Some(after);
                    if let Some(now) = schema_now.as_deref_mut() {
                        *now = text;
                    }
                }
            }
            Err(err) => match impact(&err) {
                Some(impact) => {
                    entry.status = Status::Fails;
                    entry.data_impact = Some(impact);
                }
                None => return Err(err),
            },
        }
    }
    Ok(())
}

/// The GraphQL SDL of a workspace's metadata as it stands.
pub async fn schema_sdl(conn: &mut AsyncPgConnection, rooms: Rooms, schema: &str) -> Result<String> {
    let model = Customizations::read(conn, schema).await?.model()?;
    Ok(built(rooms, &model)?.sdl())
}

/// The GraphQL schema of a model, or why the API cannot serve it.
pub fn built(rooms: Rooms, model: &crate::metadata::Model) -> Result<async_graphql::dynamic::Schema> {
    rooms
        .build(model, None)
        .map_err(|err| CrmError::bad_input(&[], format!("the change clashes with the API: {}", err.0)))
}

/// A refusal a user can act on, as a change's data impact; `None` for a
/// failure of the server.
fn impact(err: &CrmError) -> Option<DataImpact> {
    let (path, count, sample_ids) = match err {
        CrmError::DataConflict {
            field,
            count,
            sample_ids,
            ..
        } => (field.clone(), Some(*count), sample_ids.clone()),
        CrmError::LossyChange {
            field,
            count,
            sample_ids,
            ..
        } => (field.clone(), Some(*count), sample_ids.clone()),
        CrmError::BadUserInput { field, .. } => (field.clone(), None, Vec::new()),
        CrmError::Conflict(_) | CrmError::NotFound { .. } | CrmError::VersionConflict { .. } => {
            (Vec::new(), None, Vec::new())
        }
        _ => return None,
    };
    Some(DataImpact {
        message: err.to_string(),
        path,
        count,
        sample_ids,
        lossy: false,
    })
}

/// The values a type change made lose information of, as its data impact.
fn lossy_impact(target: &str, preview: &Preview) -> Option<DataImpact> {
    (preview.lossy > 0).then(|| DataImpact {
        message: format!(
            "{}: pass allowLossy to apply it (their old values are kept; a revert brings them back)",
            change::lossy_summary(preview, target)
        ),
        path: vec!["type".into()],
        count: Some(preview.lossy),
        sample_ids: preview.lossy_samples.iter().map(|s| s.record_id.clone()).collect(),
        lossy: true,
    })
}

/// Brings the target's item from what it is to what the entry wants.
/// Returns what a type change it made lost of the records' values.
async fn make(conn: &mut AsyncPgConnection, target: &Target<'_>, entry: &Entry) -> Result<Option<DataImpact>> {
    let desired = entry
        .desired
        .as_ref()
        .ok_or_else(|| CrmError::internal("a ready change has no desired state"))?;
    let current = entry.current.as_ref();
    match entry.change.kind {
        Kind::Object => object(conn, target, current, desired, &entry.change.id)
            .await
            .map(|()| None),
        Kind::Field => field(conn, target, current, desired, &entry.change).await,
        Kind::Pipeline | Kind::Stage => configuration(conn, target, current, desired, &entry.change)
            .await
            .map(|()| None),
        Kind::Settings => settings(conn, target, desired).await.map(|()| None),
    }
}

/// A property's new value when it differs from now.
fn differs(now: &Json, desired: &Json, key: &str) -> Option<Json> {
    (now[key] != desired[key]).then(|| desired[key].clone())
}

async fn object(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    current: Option<&Item>,
    desired: &Json,
    id: &str,
) -> Result<()> {
    let name = text(desired, "name");
    let Some(current) = current else {
        let spec = ObjectSpec {
            name: name.clone(),
            label: text(desired, "label"),
            plural_label: text(desired, "pluralLabel"),
            plural: Some(text(desired, "pluralName")),
            description: text(desired, "description"),
            fields: Vec::new(),
        };
        let made = change::create_object(conn, target, spec).await?;
        adopt_id(conn, target.schema, "custom_object", made.id, id).await?;
        if deleted(desired) {
            change::delete_object(conn, target, &name).await?;
        }
        return Ok(());
    };
    let now = &current.state;
    if text(now, "name") != name || now["pluralName"] != desired["pluralName"] {
        return Err(CrmError::bad_input(
            &["name"],
            "a custom object's name and plural name cannot change: add a new object",
        ));
    }
    match (deleted(now), deleted(desired)) {
        (true, true) => return Ok(()),
        (false, true) => return change::delete_object(conn, target, &name).await.map(drop),
        (true, false) => drop(change::restore_object(conn, target, &name).await?),
        (false, false) => {}
    }
    let patch = ObjectPatch {
        label: differs(now, desired, "label").map(|_| text(desired, "label")),
        plural_label: differs(now, desired, "pluralLabel").map(|_| text(desired, "pluralLabel")),
        description: differs(now, desired, "description").map(|_| text(desired, "description")),
    };
    if patch.label.is_some() || patch.plural_label.is_some() || patch.description.is_some() {
        change::update_object(conn, target, &name, patch).await?;
    }
    Ok(())
}

/// A custom field: made through the metadata changes. A type change is
/// made even when it loses information of values; what it loses is
/// returned, and the promotion refuses it unless allowed.
async fn field(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    current: Option<&Item>,
    desired: &Json,
    change: &Change,
) -> Result<Option<DataImpact>> {
    let object = text(desired, "object");
    let Some(current) = current else {
        let made = change::create_field(conn, target, &object, field_spec(desired)).await?;
        adopt_id(conn, target.schema, "custom_field", made.id, &change.id).await?;
        if deleted(desired) {
            change::delete_field(conn, target, &object, &made.name).await?;
        }
        return Ok(None);
    };
    let mut name = text(&current.state, "name");
    // Whether a restore, rename or type change made the field differ from
    // `current` in more than the property it set.
    let mut reshaped = false;
    let mut lossy = None;
    match (deleted(&current.state), deleted(desired)) {
        (true, true) => return Ok(None),
        (false, true) => return change::delete_field(conn, target, &object, &name).await.map(|_| None),
        (true, false) => {
            change::restore_field(conn, target, &object, &name).await?;
            reshaped = true;
        }
        (false, false) => {}
    }
    let wanted = text(desired, "name");
    if wanted != name {
        change::rename_field(conn, target, &object, &name, &wanted).await?;
        name = wanted;
        reshaped = true;
    }
    if current.state["type"] != desired["type"] {
        reshaped = true;
        let type_change = TypeChange {
            type_name: text(desired, "type"),
            options: parse_options(&desired["options"]),
            on_invalid: OnInvalid::Fail,
            on_lossy: OnLossy::Accept,
        };
        let changed = change::change_type(conn, target, &object, &name, type_change).await?;
        lossy = lossy_impact(&change.target, &changed.preview);
    }
    // What restore, rename and type change left.
    let now = if reshaped {
        Snapshot::read(conn, target.schema)
            .await?
            .get(Kind::Field, &current.id)
            .map(|item| item.state.clone())
            .ok_or_else(|| CrmError::internal("a changed field vanished"))?
    } else {
        current.state.clone()
    };
    let bool_of = |key: &str| differs(&now, desired, key).and_then(|v| v.as_bool());
    let patch = FieldPatch {
        label: differs(&now, desired, "label").map(|_| text(desired, "label")),
        description: differs(&now, desired, "description").map(|_| text(desired, "description")),
        default_value: differs(&now, desired, "defaultValue").map(|v| (!v.is_null()).then_some(v)),
        required: bool_of("required"),
        unique: bool_of("unique"),
        indexed: bool_of("indexed"),
        options: differs(&now, desired, "options").map(|_| option_specs(&now, desired, change)),
    };
    let empty = patch.label.is_none()
        && patch.description.is_none()
        && patch.default_value.is_none()
        && patch.required.is_none()
        && patch.unique.is_none()
        && patch.indexed.is_none()
        && patch.options.is_none();
    if !empty {
        change::update_field(conn, target, &object, &name, patch).await?;
    }
    Ok(lossy)
}

fn field_spec(state: &Json) -> FieldSpec {
    let optional = |key: &str| state[key].as_str().map(str::to_owned);
    FieldSpec {
        name: text(state, "name"),
        label: text(state, "label"),
        description: text(state, "description"),
        type_name: text(state, "type"),
        required: state["required"] == json!(true),
        unique: state["unique"] == json!(true),
        indexed: state["indexed"] == json!(true),
        default_value: (!state["defaultValue"].is_null()).then(|| state["defaultValue"].clone()),
        options: parse_options(&state["options"]),
        lookup_object: optional("lookupObject"),
        relation_name: optional("relationName"),
        path: Vec::new(),
    }
}

/// The whole new option list, naming the renamed values' old names. A
/// value the change drops (a revert of an added option) is retired, not
/// removed: records may hold it.
fn option_specs(now: &Json, desired: &Json, change: &Change) -> Vec<OptionSpec> {
    let options = parse_options(&now["options"]);
    let current: Vec<String> = options.iter().map(|o| o.value.clone()).collect();
    let mut specs: Vec<OptionSpec> = parse_options(&desired["options"])
        .into_iter()
        .map(|option| {
            let renamed_from = change
                .renamed_options
                .iter()
                .find(|r| r.to == option.value && current.contains(&r.from) && !current.contains(&r.to))
                .map(|r| r.from.clone());
            OptionSpec {
                value: option.value,
                label: Some(option.label),
                active: option.active,
                renamed_from,
            }
        })
        .collect();
    for option in options {
        let kept = specs
            .iter()
            .any(|s| s.renamed_from.as_deref().unwrap_or(&s.value) == option.value);
        if !kept {
            specs.push(OptionSpec {
                value: option.value,
                label: Some(option.label),
                active: false,
                renamed_from: None,
            });
        }
    }
    specs
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

/// A pipeline or a stage: rows of configuration, written directly.
async fn configuration(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    current: Option<&Item>,
    desired: &Json,
    change: &Change,
) -> Result<()> {
    let schema = target.schema;
    let stage = change.kind == Kind::Stage;
    let table = if stage { "stage" } else { "pipeline" };
    let mut columns: Vec<(&str, Bind)> = vec![("name", Bind::Text(Some(text(desired, "name"))))];
    if stage {
        let int = |key: &str| Bind::Int(desired[key].as_i64().and_then(|v| i32::try_from(v).ok()));
        columns.push(("position", int("position")));
        columns.push(("probability", int("probability")));
        columns.push(("forecast_category", Bind::Text(Some(text(desired, "forecastCategory")))));
        columns.push(("is_closed", Bind::Bool(desired["isClosed"].as_bool())));
        columns.push(("is_won", Bind::Bool(desired["isWon"].as_bool())));
    } else {
        columns.push((
            "description",
            Bind::Text(desired["description"].as_str().map(str::to_owned)),
        ));
        columns.push(("is_default", Bind::Bool(desired["isDefault"].as_bool())));
    }
    let gone = deleted(desired);
    let record_id = match current {
        None => {
            let id = Uuid::parse_str(&change.id).unwrap_or_else(|_| Uuid::new_v4());
            let mut insert = Sql::raw("INSERT INTO ");
            insert.table(schema, table).push(" (id, deleted_at");
            for (column, _) in &columns {
                insert.push(", ").ident(column);
            }
            if stage {
                insert.push(", pipeline_id");
            }
            insert
                .push(") SELECT CASE WHEN EXISTS (SELECT 1 FROM ")
                .table(schema, table);
            insert.push(" WHERE id = ").bind(Bind::Uuid(Some(id)));
            insert
                .push(") THEN gen_random_uuid() ELSE ")
                .bind(Bind::Uuid(Some(id)))
                .push(" END, ");
            insert.push(if gone { "now()" } else { "NULL" });
            for (_, value) in columns {
                insert.push(", ").bind(value);
            }
            if stage {
                insert
                    .push(", (SELECT id FROM ")
                    .table(schema, "pipeline")
                    .push(" WHERE name = ");
                insert.bind(Bind::Text(Some(text(desired, "pipeline")))).push(")");
            }
            insert.push(" RETURNING id::text AS id");
            first_id(insert.load(conn).await?)?
        }
        Some(item) => {
            let id = Uuid::parse_str(&item.id).map_err(|_| CrmError::internal("a stored id is not a uuid"))?;
            if stage && gone && !deleted(&item.state) {
                stage_is_empty(conn, schema, id, &change.target).await?;
            }
            let mut update = Sql::raw("UPDATE ");
            update
                .table(schema, table)
                .push(" SET updated_at = now(), version = version + 1, deleted_at = ");
            update.push(if gone { "coalesce(deleted_at, now())" } else { "NULL" });
            for (column, value) in columns {
                update.push(", ").ident(column).push(" = ").bind(value);
            }
            update.push(" WHERE id = ").bind(Bind::Uuid(Some(id)));
            update.execute(conn).await?;
            id
        }
    };
    let before = current.map(|c| c.state.clone());
    let action = match (before.as_ref().map(deleted), gone) {
        (None, _) => AuditAction::Create,
        (Some(false), true) => AuditAction::Delete,
        (Some(true), false) => AuditAction::Restore,
        _ => AuditAction::Update,
    };
    let entry = audit::Entry {
        object: if stage { "Stage" } else { "Pipeline" }.into(),
        record_id: Some(record_id),
        action,
        changes: changeset::changed(before.as_ref(), desired)
            .into_iter()
            .map(|name| audit::Change {
                before: before.as_ref().map(|b| b[&name].clone()).unwrap_or(Json::Null),
                after: desired[&name].clone(),
                field: name,
            })
            .collect(),
    };
    audit::append(conn, target.trail, &[entry]).await
}

fn first_id(rows: Vec<Made>) -> Result<Uuid> {
    rows.first()
        .and_then(|row| Uuid::parse_str(&row.id).ok())
        .ok_or_else(|| CrmError::internal("an insert returned no id"))
}

/// The id an insert returns.
#[derive(diesel::QueryableByName)]
struct Made {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
}

/// Refuses to remove a stage that open deals sit in.
async fn stage_is_empty(conn: &mut AsyncPgConnection, schema: &str, stage: Uuid, name: &str) -> Result<()> {
    #[derive(diesel::QueryableByName)]
    struct Deal {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        total: i64,
    }
    let mut query = Sql::raw("SELECT id::text AS id, count(*) OVER () AS total FROM ");
    query
        .table(schema, "opportunity")
        .push(" WHERE deleted_at IS NULL AND stage_id = ");
    query
        .bind(Bind::Uuid(Some(stage)))
        .push(" ORDER BY created_at, id LIMIT 5");
    let deals: Vec<Deal> = query.load(conn).await?;
    let Some(first) = deals.first() else {
        return Ok(());
    };
    Err(CrmError::DataConflict {
        message: format!(
            "{} opportunities sit in the stage {name}: move them to another stage before removing it",
            first.total
        ),
        field: vec!["deleted".into()],
        count: first.total,
        sample_ids: deals.into_iter().map(|d| d.id).collect(),
    })
}

async fn settings(conn: &mut AsyncPgConnection, target: &Target<'_>, desired: &Json) -> Result<()> {
    let visibility = text(desired, "recordVisibility");
    let Some(parsed) = crate::access::RecordVisibility::parse(&visibility) else {
        return Err(CrmError::bad_input(
            &["recordVisibility"],
            format!("{visibility:?} is not a record visibility"),
        ));
    };
    crate::sandbox::set_record_visibility(conn, target.schema, parsed).await?;
    let entry = audit::Entry {
        object: "WorkspaceSettings".into(),
        record_id: None,
        action: AuditAction::Update,
        changes: vec![audit::Change {
            field: "recordVisibility".into(),
            before: Json::Null,
            after: json!(visibility),
        }],
    };
    audit::append(conn, target.trail, &[entry]).await?;
    let announcement = crate::notify::Announcement::Settings {
        workspace: target.trail.workspace.clone(),
    };
    crate::notify::announce(conn, &announcement).await
}

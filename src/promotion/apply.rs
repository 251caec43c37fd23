//! Applying a changeset to a workspace: each change is checked three ways
//! (its state before, its state after, the workspace's item now), then made
//! through the same metadata changes the API makes, each in a savepoint, so
//! one change that existing data refuses is reported while the others are
//! still tried.

use std::sync::Arc;

use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::sdl::{self, Level, SdlChange};
use crate::error::{CrmError, Result};
use crate::graphql::room::{CheckScope, FollowUps, RecordHooks, Written};
use crate::graphql::Rooms;
use crate::metadata::change::Target;
use crate::metadata::custom::Customizations;
use crate::metadata::kinds::{self, deleted, shown, Action, Change, DataImpact, Item, Snapshot};
use crate::yielding;

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
    /// The most severe of `client_impacts` and `sdl_changes`.
    pub api_impact: Level,
    /// The GraphQL schema's changes, when the change was made (READY).
    pub sdl_changes: Vec<SdlChange>,
    /// What the change means for the target's clients, from the metadata:
    /// given whether or not the target's data accepts it (none when the
    /// target already has it or keeps its own version).
    pub client_impacts: Vec<SdlChange>,
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
            let client_impacts = client_impacts(&change, status, current.as_ref(), desired.as_ref());
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
                api_impact: sdl::level_of(&client_impacts),
                sdl_changes: Vec::new(),
                client_impacts,
                data_impact: None,
                current,
                desired,
                change,
            }
        })
        .collect()
}

/// What a change would do to the target's clients: from the target's item
/// now (else the change's state before) to what it becomes (else the
/// change's state after). Nothing for a change that is not made.
fn client_impacts(change: &Change, status: Status, current: Option<&Item>, desired: Option<&Json>) -> Vec<SdlChange> {
    if matches!(status, Status::AlreadyApplied | Status::Skipped) {
        return Vec::new();
    }
    let before = current.map(|c| &c.state).or(change.before.as_ref());
    let after = desired.unwrap_or(&change.after);
    change.kind.def().client_impact(before, after, change)
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
        for name in kinds::changed(Some(before), now) {
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

/// The order changes are made in, as each kind's `phase` gives it: objects
/// before their fields, fields before the deletion of objects they point
/// at, a pipeline losing its default flag before another takes it,
/// pipelines before their stages.
fn phase(entry: &Entry) -> u8 {
    let desired = entry.desired.as_ref().unwrap_or(&entry.change.after);
    entry.change.kind.def().phase(desired)
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
    sdl: Option<(Rooms, &mut Arc<sdl::Schema>)>,
) -> Result<()> {
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| (phase(&entries[i]), i));
    let (rooms, mut schema_now) = match sdl {
        Some((rooms, schema)) => (Some(rooms), Some(schema)),
        None => (None, None),
    };
    let checks = rooms.map(Rooms::record_hooks);
    for i in order {
        let entry = &mut entries[i];
        if entry.status != Status::Ready {
            continue;
        }
        let before = schema_now.as_deref().cloned();
        let tried = conn
            .transaction::<_, CrmError, _>(async |conn| {
                let mut lossy = make(conn, target, entry).await?;
                if let Some(checks) = &checks {
                    // What a configuration row means for existing records
                    // (a validation rule's refusals), when the change loses nothing.
                    let said = checked(conn, checks, target, entry).await?;
                    lossy = lossy.or(said);
                }
                let schema = match (before, rooms) {
                    (Some(before), Some(rooms)) if entry.change.kind.def().in_schema() => {
                        let customizations = Customizations::read(conn, target.schema).await?;
                        let compared = yielding::compute(move || {
                            let after = sdl::Schema::parse(&built(rooms, &customizations.model()?)?.sdl());
                            Ok::<_, CrmError>((sdl::changes(&before, &after), Arc::new(after)))
                        });
                        Some(compared.await?)
                    }
                    _ => None,
                };
                Ok((schema, lossy))
            })
            .await;
        match tried {
            Ok((schema, lossy)) => {
                entry.data_impact = lossy;
                if let Some((changes, after)) = schema {
                    entry.api_impact = entry.api_impact.max(sdl::level_of(&changes));
                    entry.sdl_changes = changes;
                    if let Some(now) = schema_now.as_deref_mut() {
                        *now = after;
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

/// The parsed GraphQL schema of a workspace whose metadata is at
/// `version` (as it stands, before the caller changes anything). A
/// version's schema never changes, and a reviewing admin diffs against
/// production's again and again: the last few are kept, keyed by database,
/// workspace and version.
pub async fn schema_at(
    conn: &mut AsyncPgConnection,
    rooms: Rooms,
    schema: &str,
    version: i32,
) -> Result<Arc<sdl::Schema>> {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let rows: Vec<Name> = crate::db::sql::Sql::raw("SELECT current_database() AS name")
        .load(conn)
        .await?;
    let database = rows.into_iter().next().map(|row| row.name).unwrap_or_default();
    let key = (database, schema.to_owned(), version);
    let cached = |key: &SchemaKey| {
        let kept = SCHEMAS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.iter().find(|(k, _)| k == key).map(|(_, s)| s.clone())
    };
    if let Some(parsed) = cached(&key) {
        return Ok(parsed);
    }
    let customizations = Customizations::read(conn, schema).await?;
    let parsed = yielding::compute(move || {
        Ok::<_, CrmError>(Arc::new(sdl::Schema::parse(
            &built(rooms, &customizations.model()?)?.sdl(),
        )))
    })
    .await?;
    let mut kept = SCHEMAS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if kept.len() >= KEPT_SCHEMAS {
        kept.remove(0);
    }
    kept.push((key, parsed.clone()));
    Ok(parsed)
}

/// Database, workspace schema and metadata version.
type SchemaKey = (String, String, i32);

/// How many parsed schemas [`schema_at`] keeps.
const KEPT_SCHEMAS: usize = 8;

static SCHEMAS: std::sync::Mutex<Vec<(SchemaKey, Arc<sdl::Schema>)>> = std::sync::Mutex::new(Vec::new());

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
        // Not about records: none of them is concerned.
        CrmError::BadUserInput { field, .. } => (field.clone(), Some(0), Vec::new()),
        CrmError::Conflict(_) | CrmError::NotFound { .. } | CrmError::VersionConflict { .. } => {
            (Vec::new(), Some(0), Vec::new())
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

/// Runs the rooms' check of the row a change of configuration wrote (a
/// promoted report must mean something in the target), against the
/// target's model as the change left it.
async fn checked(
    conn: &mut AsyncPgConnection,
    checks: &RecordHooks,
    target: &Target<'_>,
    entry: &Entry,
) -> Result<Option<DataImpact>> {
    let Some(table) = entry.change.kind.def().table() else {
        return Ok(None);
    };
    if entry.desired.as_ref().is_none_or(deleted) {
        return Ok(None);
    }
    let model = Customizations::read(conn, target.schema).await?.model()?;
    let Some(object) = model
        .objects()
        .iter()
        .find(|o| o.table == table && o.schema.is_none() && checks.hooks(o))
    else {
        return Ok(None);
    };
    let id = entry
        .current
        .as_ref()
        .map_or(entry.change.id.as_str(), |item| item.id.as_str());
    let Ok(id) = uuid::Uuid::parse_str(id) else {
        return Ok(None);
    };
    let rows = crate::records::Table::new(target.schema, object);
    let found = crate::records::get_many(conn, rows, &crate::records::FieldSet::all(object), &[id]).await?;
    let Some(record) = found.get(&id) else {
        return Ok(None);
    };
    let visibility = crate::access::Visibility::all();
    // What rooms do after configuration changes is theirs to do after the
    // whole promotion (`Surface::after_promotion`).
    let follow_ups = FollowUps::default();
    let notices = Default::default();
    let scope = CheckScope {
        model: &model,
        schema: target.schema,
        visibility: &visibility,
        at: &[],
        follow_ups: &follow_ups,
        notices: &notices,
        trail: target.trail,
        cascade: &[],
        state: &Default::default(),
        rescored: &Default::default(),
    };
    let written = Written { before: None, record };
    checks.run(conn, &scope, object, written).await?;
    Ok(notices.take_impact())
}

/// Brings the target's item from what it is to what the entry wants.
/// Returns what a type change it made lost of the records' values.
async fn make(conn: &mut AsyncPgConnection, target: &Target<'_>, entry: &Entry) -> Result<Option<DataImpact>> {
    let desired = entry
        .desired
        .as_ref()
        .ok_or_else(|| CrmError::internal("a ready change has no desired state"))?;
    let current = entry.current.as_ref();
    let change = &entry.change;
    change.kind.def().apply(conn, target, current, desired, change).await
}

//! Duplicate rules: when two records are one customer, checked on every
//! write. A rule names an object and criteria that must all match; rules
//! of one object are alternatives. On every create, update (of a compared
//! field), upsert, restore and lead conversion, the record's values are
//! compared with the other live records' through the rules' indexes
//! (`indexes`): a BLOCK rule that matches refuses the write with
//! `DUPLICATE` and the matches; a WARN rule lets it through and lists the
//! matches in the response's `extensions.duplicates`; an ALLOW rule only
//! feeds `findDuplicates`. Matches the writer may not see are counted,
//! never shown.
//!
//! Rules are configuration (`DuplicateRule`, the `DUPLICATE_RULE` kind):
//! made in a sandbox, diffed, promoted and reverted like scoring rules.

pub mod api;
pub mod clusters;
pub mod indexes;
pub mod rules;

use diesel::sql_types::{Bool, Text, Uuid as SqlUuid};
use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;
use serde_json::{json, Value as Json};
use uuid::Uuid;

use crate::access::Visibility;
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::graphql::room::{CheckScope, RecordHooks, Surface, Written};
use crate::metadata::kinds::{Change, Kind};
use crate::metadata::ObjectDef;
use crate::records::{record_id, Record};
use rules::{Action, Rule};

/// The most matches a warning or a refusal lists per rule.
const MAX_MATCHES: i64 = 10;

/// The room: rules checked on every write, their indexes, `findDuplicates`.
pub fn register(surface: &mut Surface) {
    surface.on_every_write(written);
    surface.on_write("DuplicateRule", rule_written);
    surface.after_promotion(promoted);
    api::register(surface);
}

/// Records a rule found matching a record's values.
#[derive(Debug, Clone)]
pub struct Matches {
    pub rule: Rule,
    /// `{ object, id, name, rule, matchedOn }` of each match the writer may see.
    pub visible: Vec<Json>,
    /// Matches the writer may not see.
    pub hidden: i64,
}

impl Matches {
    /// The matches as a warning or a refusal lists them.
    pub fn json(&self, object: &str, at: &[String], record: Option<Uuid>) -> Json {
        json!({
            "rule": self.rule.name,
            "action": match self.rule.action {
                Action::Allow => "ALLOW",
                Action::Warn => "WARN",
                Action::Block => "BLOCK",
            },
            "object": object,
            "recordId": record,
            "path": at,
            "matches": self.visible,
            "hiddenMatches": self.hidden,
        })
    }
}

#[derive(diesel::QueryableByName)]
struct Found {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Bool)]
    visible: bool,
}

/// The live records of `object` (but `except`) that `rule` finds matching
/// `values`; `None` when there are none (or the values leave a criterion
/// empty, which matches nothing). Runs in the
/// caller's transaction (the similarity threshold is set for it).
pub async fn matching(
    conn: &mut AsyncPgConnection,
    schema: &str,
    visibility: &Visibility,
    object: &ObjectDef,
    rule: &Rule,
    values: &serde_json::Map<String, Json>,
    except: Option<Uuid>,
) -> Result<Option<Matches>> {
    let mut conditions = Vec::new();
    for criterion in &rule.criteria {
        match criterion.matching("m", values) {
            Some(condition) => conditions.push(condition),
            None => return Ok(None),
        }
    }
    if let Some(threshold) = rule.fuzzy_threshold() {
        let mut set = Sql::raw("SELECT set_config('pg_trgm.similarity_threshold', ");
        set.bind(Bind::Text(Some(format!("{threshold:.2}")))).push(", true)");
        set.execute(conn).await?;
    }
    let table = crate::records::Table::new(schema, object);
    let mut query = Sql::raw("SELECT m.id, ");
    query.append(&crate::records::title(object, "m")).push(" AS name, ");
    match visibility.filter(&object.name) {
        Some(visible) => {
            query
                .push("coalesce((")
                .append(&visible.compile(schema, "m"))
                .push("), false)");
        }
        None => {
            query.push("true");
        }
    }
    query.push(" AS visible").append(&table.from_as("m"));
    query.push(" WHERE m.deleted_at IS NULL");
    if let Some(except) = except {
        query.push(" AND m.id <> ").bind(Bind::Uuid(Some(except)));
    }
    for condition in &conditions {
        query.push(" AND ").append(condition);
    }
    query
        .push(" ORDER BY m.created_at, m.id LIMIT ")
        .push(&(MAX_MATCHES * 10).to_string());
    let found: Vec<Found> = query.load(conn).await?;
    if found.is_empty() {
        return Ok(None);
    }
    let hidden = found.iter().filter(|f| !f.visible).count() as i64;
    let visible = found
        .into_iter()
        .filter(|f| f.visible)
        .take(MAX_MATCHES as usize)
        .map(|f| {
            json!({
                "object": object.name,
                "id": f.id,
                "name": f.name,
                "rule": rule.name,
                "matchedOn": rule.fields(),
            })
        })
        .collect();
    Ok(Some(Matches {
        rule: rule.clone(),
        visible,
        hidden,
    }))
}

/// Every rule of `object` that finds matches for `values`, in rule order.
pub async fn check(
    conn: &mut AsyncPgConnection,
    scope: &CheckScope<'_>,
    object: &ObjectDef,
    values: &serde_json::Map<String, Json>,
    except: Option<Uuid>,
    changed: &(dyn Fn(&Rule) -> bool + Sync),
) -> Result<Vec<Matches>> {
    let mut out = Vec::new();
    // Read once per transaction: the fields workflow rules set in the same
    // transaction are checked against the same rules.
    let key = format!("duplicates:{}.{}", scope.schema, object.name);
    let kept = scope
        .state
        .kept(&key)
        .and_then(|kept| kept.downcast::<Vec<Rule>>().ok());
    let active = match kept {
        Some(active) => active,
        None => {
            let active = std::sync::Arc::new(rules::active(conn, scope.schema, scope.model, Some(&object.name)).await?);
            scope.state.keep(key, active.clone());
            active
        }
    };
    for rule in active.iter().cloned() {
        if !changed(&rule) {
            continue;
        }
        if rule.action == Action::Block && !rule.lock(conn, values).await? {
            continue;
        }
        if let Some(found) = matching(conn, scope.schema, scope.visibility, object, &rule, values, except).await? {
            out.push(found);
        }
    }
    Ok(out)
}

/// Refuses with `DUPLICATE` when a BLOCK rule matched; adds the WARN
/// rules' matches to the response.
pub fn enforce(scope: &CheckScope<'_>, object: &ObjectDef, record: Option<Uuid>, found: &[Matches]) -> Result<()> {
    if let Some(blocked) = found.iter().find(|m| m.rule.action == Action::Block) {
        let shown = blocked.visible.len() as i64;
        let hidden = match blocked.hidden {
            0 => String::new(),
            n => format!(" ({n} more you cannot see)"),
        };
        return Err(CrmError::Duplicate {
            message: format!(
                "duplicate rule \"{}\" blocks this {}: {} existing record(s) match on {}{hidden}",
                blocked.rule.name,
                object.name,
                shown + blocked.hidden,
                blocked.rule.fields().join(", "),
            ),
            field: scope.at.to_vec(),
            duplicates: blocked.visible.clone(),
        });
    }
    for warned in found.iter().filter(|m| m.rule.action == Action::Warn) {
        scope.notices.duplicate(warned.json(&object.name, scope.at, record));
    }
    Ok(())
}

/// Every write of a live record: its values against the object's WARN
/// and BLOCK rules (on an update, those whose fields it changed).
fn written<'a>(
    conn: &'a mut AsyncPgConnection,
    scope: &'a CheckScope<'a>,
    _hooks: &'a RecordHooks,
    object: &'a ObjectDef,
    written: Written<'a>,
) -> BoxFuture<'a, Result<Option<Record>>> {
    Box::pin(async move {
        let record = written.record;
        if object.access != crate::metadata::Access::Record || deleted(record) {
            return Ok(None);
        }
        let revived = written.before.is_some_and(deleted);
        // ALLOW rules say nothing to a write (they feed findDuplicates).
        let changed = |rule: &Rule| {
            rule.action != Action::Allow
                && match written.before {
                    Some(before) if !revived => rule.criteria.iter().any(|c| {
                        let key = c.field.value_key();
                        before.get(&key) != record.get(&key)
                    }),
                    _ => true,
                }
        };
        let id = record_id(record);
        let found = check(conn, scope, object, record, id, &changed).await?;
        enforce(scope, object, id, &found)?;
        Ok(None)
    })
}

fn deleted(record: &Record) -> bool {
    record.get("deletedAt").is_some_and(|at| !at.is_null())
}

/// A rule saved must fit the model; the indexes follow the rules once the
/// transaction's writes are done.
fn rule_written<'a>(
    _conn: &'a mut AsyncPgConnection,
    scope: &'a CheckScope<'a>,
    written: Written<'a>,
) -> BoxFuture<'a, Result<Option<Record>>> {
    Box::pin(async move {
        if !deleted(written.record) {
            let name = written.record.get("object").and_then(Json::as_str).unwrap_or_default();
            let object = rules::object(scope.model, name, scope.at)?;
            let criteria = written.record.get("criteria").cloned().unwrap_or(Json::Null);
            rules::criteria(object, &criteria, scope.at)?;
        }
        scope.follow_ups.ask(sync_indexes);
        Ok(None)
    })
}

/// The follow-up of rule changes.
fn sync_indexes<'a>(conn: &'a mut AsyncPgConnection, scope: &'a CheckScope<'a>) -> BoxFuture<'a, Result<()>> {
    Box::pin(async move { indexes::sync(conn, scope.schema, scope.model).await })
}

/// After a promotion or revert that changed rules or fields, the indexes
/// follow the rules.
fn promoted<'a>(
    conn: &'a mut AsyncPgConnection,
    schema: &'a str,
    model: &'a crate::metadata::Model,
    changes: &'a [Change],
) -> BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        if !changes
            .iter()
            .any(|c| matches!(c.kind, Kind::DuplicateRule | Kind::Field))
        {
            return Ok(());
        }
        indexes::sync(conn, schema, model).await
    })
}

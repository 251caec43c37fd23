//! Running workflow rules for a record. The rules one write fires run as
//! one pass, in a savepoint of the caller's transaction (the write that
//! fired them, or the worker's): each rule's actions in order, a rule that
//! makes or sends something in a savepoint of its own, so a failing rule is
//! recorded FAILED and the others go on. The fields the rules set (SET_FIELDS,
//! ASSIGN_OWNER) are written together in one update at the end of the pass,
//! which goes through the same checks and hooks as an API update (validation
//! rules, scoring, duplicate rules, and the workflow rules it fires in turn,
//! one level deeper): a refusal there undoes the whole pass, and every run
//! of it is recorded FAILED with why; the client's write stands. A rule
//! fires once per record per transaction (the loop guard); cascades stop at
//! [`MAX_DEPTH`] levels and [`MAX_FIRINGS`] firings.

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::Value as Json;
use uuid::Uuid;

use super::actions;
use super::rules::{self, Action, Trigger, WorkflowRule};
use super::{Event, Written};
use crate::access::Visibility;
use crate::audit::{self, Action as AuditAction};
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::graphql::room::{CheckScope, Fire, Firing, Notices, RecordHooks};
use crate::metadata::ObjectDef;
use crate::records::{self, record_id, write, Filter, Record, Table};

/// How many rules deep a cascade goes (a rule's change firing another).
pub const MAX_DEPTH: usize = 5;

/// The most rule firings one write's cascade makes (rules that make
/// records that fire rules that make records …).
pub const MAX_FIRINGS: usize = 1000;

/// A rule whose trigger matches a write, before its condition is known.
pub struct Candidate<'r> {
    pub rule: &'r WorkflowRule,
    /// The condition must hold now and not have held before.
    pub becomes_true: bool,
}

/// The rules of `rules` whose trigger matches what the write did.
pub fn candidates<'r>(
    rules: &'r [WorkflowRule],
    object: &ObjectDef,
    written: Written<'_>,
    event: Event,
) -> Vec<Candidate<'r>> {
    let changed = |key: &str| written.before.and_then(|b| b.get(key)) != written.record.get(key);
    let score = |record: Option<&Record>| record.and_then(|r| r.get("score")).and_then(Json::as_i64);
    rules
        .iter()
        .filter(|rule| match (rule.trigger, event) {
            (Trigger::Created | Trigger::CreatedOrUpdated, Event::Created) => true,
            (Trigger::Updated | Trigger::CreatedOrUpdated, Event::Updated) => {
                rule.trigger_fields.is_empty() || rule.trigger_fields.iter().any(|f| changed(&f.value_key()))
            }
            (Trigger::Deleted, Event::Deleted) => true,
            (Trigger::StageChanged, Event::Updated) => object.field("stage").is_some_and(|f| changed(&f.value_key())),
            (Trigger::ScoreCrossed, Event::Created | Event::Updated) => {
                let threshold = rule.score_threshold.unwrap_or(i64::MAX);
                let before = score(written.before).unwrap_or(i64::MIN);
                score(Some(written.record)).is_some_and(|now| now >= threshold && before < threshold)
            }
            _ => false,
        })
        .map(|rule| Candidate {
            rule,
            becomes_true: rule.when_becomes_true && event == Event::Updated,
        })
        .collect()
}

/// Where a run starts: a new run, or a waiting one going on.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    New,
    Resume { run: Uuid, from: usize },
}

/// Runs `rules` (their trigger and condition held) for the record as one
/// pass, and records each run; answers the record as the pass left it,
/// when it changed it. Only a failure of the database itself is the
/// caller's.
pub async fn fire_all(
    conn: &mut AsyncPgConnection,
    scope: &CheckScope<'_>,
    hooks: &RecordHooks,
    object: &ObjectDef,
    rules: &[(&WorkflowRule, Start)],
    record: Record,
) -> Result<Option<Record>> {
    let Some(id) = record_id(&record) else {
        return Ok(None);
    };
    let mut runs = Vec::new();
    let mut runnable = Vec::new();
    // The record whose write began this cascade: its budget of firings.
    let root = scope.cascade.first().map_or(id, |(_, record)| *record);
    for (rule, start) in rules {
        let mut run = Run::new(rule, &object.name, id, scope.cascade.len(), *start);
        match scope.state.fire((rule.id, id), root, MAX_FIRINGS) {
            Fire::Again => continue,
            Fire::TooMany => {
                run.error = Some(format!(
                    "stopped: one write's rules fired {MAX_FIRINGS} rules (rules making records that fire rules?)"
                ));
            }
            Fire::Yes if scope.cascade.len() >= MAX_DEPTH => {
                run.error = Some(format!(
                    "stopped: workflow rules fired each other {MAX_DEPTH} levels deep (a loop between rules?)"
                ));
            }
            Fire::Yes => runnable.push(runs.len()),
        }
        runs.push(run);
    }
    let mut now = None;
    // Whether the pass recorded the new runs with its last statement.
    let mut saved = false;
    while !runnable.is_empty() {
        let mut setting = Vec::new();
        saved = false;
        let passed = conn
            .transaction::<_, CrmError, _>(async |conn| {
                let done = (&mut setting, &mut saved);
                pass(conn, scope, hooks, object, &record, &mut runs, &runnable, done).await
            })
            .await;
        match passed {
            Ok(record) => {
                now = record;
                break;
            }
            Err(err @ (CrmError::Unavailable(_) | CrmError::Timeout(_))) => return Err(err),
            Err(err) => {
                saved = false;
                // The fields the rules set were refused (a validation rule,
                // a constraint): those rules fail; the pass is made again
                // without them, so the others' emails and records stand.
                let others: Vec<usize> = runnable.iter().copied().filter(|i| !setting.contains(i)).collect();
                let why = if setting.is_empty() {
                    format!("undone with the rules that fired with it: {err}")
                } else {
                    format!("the fields it set were refused: {err}")
                };
                for &i in if setting.is_empty() { &runnable } else { &setting } {
                    runs[i].fail(why.clone());
                }
                runnable = if setting.is_empty() { Vec::new() } else { others };
                for &i in &runnable {
                    runs[i].reset();
                }
            }
        }
    }
    save(conn, scope.schema, &runs, saved).await?;
    Ok(now)
}

/// One pass: every runnable rule's actions, then the fields they set in
/// one update, checked and hooked as an API update. `setting` is told
/// which rules set fields (they fail if the update is refused).
#[allow(clippy::too_many_arguments)]
async fn pass(
    conn: &mut AsyncPgConnection,
    scope: &CheckScope<'_>,
    hooks: &RecordHooks,
    object: &ObjectDef,
    record: &Record,
    runs: &mut [Run<'_>],
    runnable: &[usize],
    (setting, saved): (&mut Vec<usize>, &mut bool),
) -> Result<Option<Record>> {
    let id = record_id(record).ok_or_else(|| CrmError::internal("a record without an id"))?;
    let first = runnable.first().map_or(Uuid::nil(), |&i| runs[i].rule.id);
    let chain: Vec<Firing> = scope.cascade.iter().copied().chain([(first, id)]).collect();
    let trail = scope.trail.automated();
    let everything = Visibility::all();
    let notices = Notices::default();
    let nested = CheckScope {
        model: scope.model,
        schema: scope.schema,
        visibility: &everything,
        at: &[],
        follow_ups: scope.follow_ups,
        notices: &notices,
        trail: &trail,
        cascade: &chain,
        state: scope.state,
        rescored: scope.rescored,
    };
    let mut draft = record.clone();
    let mut sets: Vec<write::Assignment> = Vec::new();
    for &i in runnable {
        let (rule, run, from) = (runs[i].rule, runs[i].id, runs[i].from);
        // Setting fields writes nothing until the end of the pass: only a
        // rule that makes or sends something needs a savepoint of its own.
        let pure = rule
            .actions
            .iter()
            .skip(from)
            .all(|a| matches!(a, Action::SetFields { .. }));
        let tried = if pure {
            actions::run(conn, &nested, hooks, object, rule, run, from, draft.clone()).await
        } else {
            let draft = draft.clone();
            conn.transaction::<_, CrmError, _>(async |conn| {
                actions::run(conn, &nested, hooks, object, rule, run, from, draft).await
            })
            .await
        };
        match tried {
            Ok(done) => {
                if !done.sets.is_empty() {
                    setting.push(i);
                }
                sets.extend(done.sets);
                draft = done.draft;
                runs[i].succeed(done.actions, done.waiting);
            }
            Err(err @ (CrmError::Unavailable(_) | CrmError::Timeout(_))) => return Err(err),
            Err(err) => runs[i].fail(err.to_string()),
        }
    }
    if sets.is_empty() {
        return Ok(None);
    }
    // A field two rules set takes the later rule's value.
    let mut merged: Vec<write::Assignment> = Vec::new();
    for (field, value) in sets {
        merged.retain(|(f, _)| f.name != field.name);
        merged.push((field, value));
    }
    // The object's validation rules are checked of the row as the update
    // leaves it in the update itself; the hooks find the answer kept.
    let validation = rules::active_in(conn, scope, object).await?;
    let conditions: Vec<Filter> = validation.validation.iter().map(|v| v.condition.clone()).collect();
    let table = Table::new(scope.schema, object);
    let updated = if conditions.is_empty() {
        write::update(conn, scope.model, table, id, &merged, None, &[]).await?
    } else {
        let also = super::held_before(scope.schema, object, record, &conditions);
        let (updated, hits) = write::update_also(conn, scope.model, table, id, &merged, &also).await?;
        let hits: Vec<bool> = serde_json::from_value(hits).unwrap_or_default();
        super::keep_validated(scope, &updated, hits);
        updated
    };
    let written = Written {
        before: Some(record),
        record: &updated,
    };
    let updated = hooks.run(conn, &nested, object, written).await?;
    let entry = records::audit_entry(object, AuditAction::Update, Some(record), &updated);
    // The audit entry and the runs, in one statement: the pass's last.
    match (audit::appending(&trail, &[entry]), new_runs(scope.schema, runs)) {
        (Some(audited), Some(recorded)) => {
            let mut both = Sql::raw("WITH audited AS (");
            both.append(&audited).push(") ").append(&recorded);
            both.execute(conn).await?;
            *saved = true;
        }
        (Some(audited), None) => {
            audited.execute(conn).await?;
        }
        _ => {}
    }
    Ok(Some(updated))
}

/// One run as recorded.
struct Run<'r> {
    id: Uuid,
    rule: &'r WorkflowRule,
    object: &'r str,
    record: Uuid,
    depth: usize,
    /// The action it starts at.
    from: usize,
    /// A waiting run going on: its row is updated, not made.
    resumed: bool,
    status: &'static str,
    actions: Vec<Json>,
    error: Option<String>,
    waiting: Option<(usize, DateTime<Utc>)>,
}

impl<'r> Run<'r> {
    fn new(rule: &'r WorkflowRule, object: &'r str, record: Uuid, depth: usize, start: Start) -> Run<'r> {
        let (id, from, resumed) = match start {
            Start::New => (Uuid::new_v4(), 0, false),
            Start::Resume { run, from } => (run, from, true),
        };
        Run {
            id,
            rule,
            object,
            record,
            depth,
            from,
            resumed,
            status: "FAILED",
            actions: Vec::new(),
            error: None,
            waiting: None,
        }
    }

    fn succeed(&mut self, actions: Vec<Json>, waiting: Option<(usize, DateTime<Utc>)>) {
        self.status = if waiting.is_some() { "WAITING" } else { "SUCCEEDED" };
        self.actions = actions;
        self.waiting = waiting;
        self.error = None;
    }

    /// Back to not run (its pass is made again).
    fn reset(&mut self) {
        self.status = "FAILED";
        self.actions.clear();
        self.waiting = None;
        self.error = None;
    }

    fn fail(&mut self, error: String) {
        self.status = "FAILED";
        self.actions.clear();
        self.waiting = None;
        self.error = Some(error);
    }

    /// When a waiting run goes on: the action and the instant.
    fn resume(&self) -> (Option<i32>, Option<DateTime<Utc>>) {
        match self.waiting {
            Some((next, at)) => (Some(i32::try_from(next).unwrap_or(i32::MAX)), Some(at)),
            None => (None, None),
        }
    }

    /// `(id, rule_id, …, resume_at)` of a new run's row.
    fn values(&self) -> Sql {
        let (next, resume) = self.resume();
        let mut row = Sql::raw("(");
        row.bind(Bind::Uuid(Some(self.id))).push(", ");
        row.bind(Bind::Uuid(Some(self.rule.id))).push(", ");
        row.bind(Bind::Text(Some(self.rule.name.clone()))).push(", ");
        row.bind(Bind::Text(Some(self.object.to_owned()))).push(", ");
        row.bind(Bind::Uuid(Some(self.record))).push(", ");
        row.bind(Bind::Text(Some(self.rule.trigger.as_str().to_owned())))
            .push(", ");
        row.bind(Bind::Text(Some(self.status.to_owned()))).push(", ");
        row.bind(Bind::Json(Some(Json::Array(self.actions.clone())))).push(", ");
        row.bind(Bind::Text(self.error.clone())).push(", ");
        row.bind(Bind::Int(Some(i32::try_from(self.depth).unwrap_or(i32::MAX))));
        row.push(if self.waiting.is_some() {
            ", NULL, "
        } else {
            ", now(), "
        });
        row.bind(Bind::Int(next))
            .push(", ")
            .bind(Bind::DateTime(resume))
            .push(")");
        row
    }
}

/// The statement recording the new runs, if any.
fn new_runs(schema: &str, runs: &[Run<'_>]) -> Option<Sql> {
    let new: Vec<Sql> = runs.iter().filter(|r| !r.resumed).map(Run::values).collect();
    if new.is_empty() {
        return None;
    }
    let mut insert = Sql::raw("INSERT INTO ");
    insert.table(schema, "workflow_run").push(
        " (id, rule_id, rule_name, object, record_id, trigger, status, actions, error, depth, finished_at, \
         next_action, resume_at) VALUES ",
    );
    insert.join(&new, ", ");
    Some(insert)
}

/// Records runs: the new ones in one statement (unless `saved` says the
/// pass did), a resumed one by updating its row; and when the waiting
/// ones go on.
async fn save(conn: &mut AsyncPgConnection, schema: &str, runs: &[Run<'_>], saved: bool) -> Result<()> {
    if let Some(insert) = new_runs(schema, runs).filter(|_| !saved) {
        insert.execute(conn).await?;
    }
    for run in runs.iter().filter(|r| r.resumed) {
        let (next, resume) = run.resume();
        let mut query = Sql::raw("UPDATE ");
        query.table(schema, "workflow_run").push(" SET status = ");
        query.bind(Bind::Text(Some(run.status.to_owned())));
        query
            .push(", actions = actions || ")
            .bind(Bind::Json(Some(Json::Array(run.actions.clone()))));
        query.push(", error = ").bind(Bind::Text(run.error.clone()));
        query.push(if run.waiting.is_some() {
            ", finished_at = NULL"
        } else {
            ", finished_at = now()"
        });
        query.push(", next_action = ").bind(Bind::Int(next));
        query.push(", resume_at = ").bind(Bind::DateTime(resume));
        query.push(" WHERE id = ").bind(Bind::Uuid(Some(run.id)));
        query.execute(conn).await?;
    }
    let timers: Vec<Sql> = runs
        .iter()
        .filter_map(|run| {
            let at = run.resume().1?;
            let mut row = Sql::raw("(");
            row.bind(Bind::Uuid(Some(run.rule.id)))
                .push(", ")
                .bind(Bind::Uuid(Some(run.record)));
            row.push(", ")
                .bind(Bind::DateTime(Some(at)))
                .push(", ")
                .bind(Bind::Uuid(Some(run.id)))
                .push(")");
            Some(row)
        })
        .collect();
    if !timers.is_empty() {
        let mut insert = Sql::raw("INSERT INTO ");
        insert
            .table(schema, "workflow_timer")
            .push(" (rule_id, record_id, due_at, run_id) VALUES ");
        insert.join(&timers, ", ");
        insert.execute(conn).await?;
    }
    Ok(())
}

/// Ends a waiting run that will not go on: CANCELLED (its rule is off or
/// gone, its record deleted, its condition no longer holds) or FAILED.
pub async fn finish(conn: &mut AsyncPgConnection, schema: &str, run: Uuid, status: &str, why: &str) -> Result<()> {
    let mut query = Sql::raw("UPDATE ");
    query.table(schema, "workflow_run").push(" SET status = ");
    query
        .bind(Bind::Text(Some(status.to_owned())))
        .push(", finished_at = now(), error = ");
    query
        .bind(Bind::Text(Some(why.to_owned())))
        .push(", resume_at = NULL WHERE id = ");
    query.bind(Bind::Uuid(Some(run)));
    query.execute(conn).await?;
    Ok(())
}

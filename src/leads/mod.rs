//! Leads to customers: conversion into an account, a contact and an
//! opportunity by the workspace's field mappings (`convert`, `mapping`),
//! and rule-based scoring (`scoring`) kept in step with every write of a
//! lead, its activities and the rules, after every promotion, and every
//! night for decay (`decay`). Field mappings, scoring rules and grades
//! are configuration records: made in a sandbox, promoted, reverted.

pub mod api;
pub mod convert;
pub mod decay;
pub mod duplicates;
pub mod mapping;
pub mod preview;
pub mod scoring;

use std::sync::Arc;

use chrono::Utc;
use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;
use serde_json::{json, Value as Json};
use uuid::Uuid;

use crate::error::{CrmError, Result};
use crate::graphql::input::Path;
use crate::graphql::room::{CheckScope, Surface, Written};
use crate::metadata::kinds::{Change, Kind};
use crate::metadata::Model;
use crate::records::{record_id, Record};
use diesel_async::AsyncConnection;
use scoring::{Rule, Scorer};

/// The room: conversion and scoring, and what they do on writes.
pub fn register(surface: &mut Surface) {
    surface.on_write("Lead", lead_written);
    surface.on_write("Activity", activity_written);
    surface.on_write("ScoringRule", rule_written);
    surface.on_write("LeadGrade", grade_written);
    surface.on_write("LeadFieldMapping", mapping::check);
    surface.after_promotion(promoted);
    api::register(surface);
}

use crate::records::ids;

fn deleted(record: &Record) -> bool {
    record.get("deletedAt").is_some_and(|at| !at.is_null())
}

/// Whether two states of a record differ only in being deleted (and the
/// bookkeeping that goes with any change).
fn only_deletion_changed(before: &Record, after: &Record) -> bool {
    let kept = |key: &String| !matches!(key.as_str(), "deletedAt" | "updatedAt" | "version" | "score" | "grade");
    deleted(before) != deleted(after)
        && before
            .iter()
            .filter(|(k, _)| kept(k))
            .all(|(k, v)| after.get(k) == Some(v))
}

fn converted(record: &Record) -> bool {
    record.get("convertedAt").is_some_and(|at| !at.is_null())
}

/// Rescores every live unconverted lead of the workspace in `schema` by
/// its rules now, a batch of leads per transaction (a savepoint inside the
/// caller's); answers how many were scored and how many changed.
pub async fn rescore_all(conn: &mut AsyncPgConnection, schema: &str, model: &Model) -> Result<(u64, u64)> {
    if scoring::rules(conn, schema, model).await?.is_none() {
        return Ok((0, 0));
    }
    let (mut scored, mut changed) = (0, 0);
    let mut after = None;
    loop {
        let ids = scoring::batch(conn, schema, after).await?;
        let Some(last) = ids.last().copied() else {
            break;
        };
        let done = conn
            .transaction::<_, CrmError, _>(async |conn| rescore(conn, schema, model, &ids).await)
            .await?;
        scored += ids.len() as u64;
        changed += done.len() as u64;
        after = Some(last);
    }
    Ok((scored, changed))
}

/// Rescores these leads in the caller's transaction: locks them first, so
/// the rules and values read next are those committed before, and a
/// concurrent write or rescoring waits; answers the new score and grade of
/// those changed. Nothing while the workspace never had a rule.
pub async fn rescore(
    conn: &mut AsyncPgConnection,
    schema: &str,
    model: &Model,
    ids: &[Uuid],
) -> Result<Vec<scoring::Rescored>> {
    scoring::lock(conn, schema, ids).await?;
    rescore_locked(conn, schema, model, ids).await
}

/// [`rescore`] of leads the transaction has locked already (by writing
/// them: a write hook, or an import's batch).
pub async fn rescore_locked(
    conn: &mut AsyncPgConnection,
    schema: &str,
    model: &Model,
    ids: &[Uuid],
) -> Result<Vec<scoring::Rescored>> {
    let Some(rules) = scoring::rules(conn, schema, model).await? else {
        return Ok(Vec::new());
    };
    let scorer = Scorer {
        schema,
        rules: &rules,
        now: Utc::now(),
    };
    scorer.rescore(conn, ids).await
}

/// A converted lead is read-only (deleting and restoring it aside); any
/// other written lead gets its score and grade in the same transaction.
fn lead_written<'a>(
    conn: &'a mut AsyncPgConnection,
    scope: &'a CheckScope<'a>,
    written: Written<'a>,
) -> BoxFuture<'a, Result<Option<Record>>> {
    Box::pin(async move {
        let record = written.record;
        if let Some(before) = written.before {
            if converted(before) && !only_deletion_changed(before, record) {
                return Err(CrmError::Conflict(format!(
                    "lead {} was converted at {}: a converted lead is read-only",
                    record_id(record).map(|id| id.to_string()).unwrap_or_default(),
                    before.get("convertedAt").and_then(Json::as_str).unwrap_or_default()
                )));
            }
        }
        if converted(record) || deleted(record) {
            return Ok(None);
        }
        let Some(id) = record_id(record) else {
            return Ok(None);
        };
        // The write locked the lead.
        let changed = rescore_in(conn, scope, &[id]).await?;
        Ok(changed.into_iter().next().map(|scored| {
            let mut now = (**record).clone();
            now.insert("score".into(), json!(scored.score));
            now.insert("grade".into(), json!(scored.grade));
            Arc::new(now)
        }))
    })
}

/// [`rescore_locked`] in a write's transaction, the rules read once for
/// it (the fields workflow rules set are scored by the same rules).
async fn rescore_in(
    conn: &mut AsyncPgConnection,
    scope: &CheckScope<'_>,
    ids: &[Uuid],
) -> Result<Vec<scoring::Rescored>> {
    let key = format!("scoring:{}", scope.schema);
    let kept = scope
        .state
        .kept(&key)
        .and_then(|kept| kept.downcast::<Option<Vec<scoring::Rule>>>().ok());
    let rules = match kept {
        Some(rules) => rules,
        None => {
            let rules = Arc::new(scoring::rules(conn, scope.schema, scope.model).await?);
            scope.state.keep(key, rules.clone());
            rules
        }
    };
    let Some(rules) = rules.as_ref() else {
        return Ok(Vec::new());
    };
    let scorer = Scorer {
        schema: scope.schema,
        rules,
        now: Utc::now(),
    };
    scorer.rescore(conn, ids).await
}

/// A lead's activities count for its score: its score follows them.
fn activity_written<'a>(
    conn: &'a mut AsyncPgConnection,
    scope: &'a CheckScope<'a>,
    written: Written<'a>,
) -> BoxFuture<'a, Result<Option<Record>>> {
    Box::pin(async move {
        let lead = |r: &Record| {
            r.get("leadId")
                .and_then(Json::as_str)
                .and_then(|id| id.parse::<Uuid>().ok())
        };
        let mut leads: Vec<Uuid> = written.before.and_then(lead).into_iter().collect();
        leads.extend(lead(written.record).filter(|id| !leads.contains(id)));
        if !leads.is_empty() {
            // Automation hears of scores that moved (SCORE_CROSSED rules).
            for scored in rescore(conn, scope.schema, scope.model, &leads).await? {
                scope.rescored.push(scored.id, scored.before, scored.score);
            }
        }
        Ok(None)
    })
}

/// A rule saved must mean something (its condition a lead filter, its
/// activity type one of the types); every lead is rescored once the
/// transaction's writes are done.
fn rule_written<'a>(
    _conn: &'a mut AsyncPgConnection,
    scope: &'a CheckScope<'a>,
    written: Written<'a>,
) -> BoxFuture<'a, Result<Option<Record>>> {
    Box::pin(async move {
        if !deleted(written.record) {
            let state = Json::Object((**written.record).clone());
            Rule::of(scope.model, &state, &Path::from_parts(scope.at))?;
        }
        scope.follow_ups.ask(rescore_everyone);
        Ok(None)
    })
}

/// Grades changed: every lead's grade is looked at again.
fn grade_written<'a>(
    _conn: &'a mut AsyncPgConnection,
    scope: &'a CheckScope<'a>,
    _written: Written<'a>,
) -> BoxFuture<'a, Result<Option<Record>>> {
    Box::pin(async move {
        scope.follow_ups.ask(rescore_everyone);
        Ok(None)
    })
}

/// The follow-up of rule and grade changes.
fn rescore_everyone<'a>(conn: &'a mut AsyncPgConnection, scope: &'a CheckScope<'a>) -> BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        rescore_all(conn, scope.schema, scope.model).await?;
        Ok(())
    })
}

/// After a promotion or revert that changed rules, grades, or a field of
/// leads or activities (a rule's condition or activity type may name it),
/// every lead is rescored in its transaction.
fn promoted<'a>(
    conn: &'a mut AsyncPgConnection,
    schema: &'a str,
    model: &'a Model,
    changes: &'a [Change],
) -> BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        let scoring = |c: &Change| match c.kind {
            Kind::ScoringRule | Kind::LeadGrade => true,
            Kind::Field => c.target.starts_with("Lead.") || c.target.starts_with("Activity."),
            _ => false,
        };
        if !changes.iter().any(scoring) {
            return Ok(());
        }
        rescore_all(conn, schema, model).await?;
        Ok(())
    })
}

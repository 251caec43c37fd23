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
use crate::metadata::kinds::Kind;
use crate::metadata::Model;
use crate::records::{record_id, Record};
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

fn deleted(record: &Record) -> bool {
    record.get("deletedAt").is_some_and(|at| !at.is_null())
}

fn converted(record: &Record) -> bool {
    record.get("convertedAt").is_some_and(|at| !at.is_null())
}

/// Rescores every lead of the workspace in `schema` by its rules now;
/// answers how many were scored and how many changed.
pub async fn rescore_all(conn: &mut AsyncPgConnection, schema: &str, model: &Model) -> Result<(u64, u64)> {
    let rules = scoring::rules(conn, schema, model).await?;
    let scorer = Scorer {
        schema,
        rules: &rules,
        now: Utc::now(),
    };
    scorer.rescore_all(conn).await
}

/// Rescores these leads; answers the new score and grade of those changed.
async fn rescore(
    conn: &mut AsyncPgConnection,
    scope: &CheckScope<'_>,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, i32, Option<String>)>> {
    let rules: Vec<Rule> = scoring::rules(conn, scope.schema, scope.model).await?;
    let scorer = Scorer {
        schema: scope.schema,
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
            if converted(before) && deleted(before) == deleted(record) {
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
        let changed = rescore(conn, scope, &[id]).await?;
        Ok(changed.into_iter().next().map(|(_, score, grade)| {
            let mut now = (**record).clone();
            now.insert("score".into(), json!(score));
            now.insert("grade".into(), json!(grade));
            Arc::new(now)
        }))
    })
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
            rescore(conn, scope, &leads).await?;
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

/// After a promotion or revert that changed rules, grades or fields (a
/// rule's condition may name them), every lead is rescored in its
/// transaction.
fn promoted<'a>(conn: &'a mut AsyncPgConnection, schema: &'a str, kinds: &'a [Kind]) -> BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        let scoring = [Kind::ScoringRule, Kind::LeadGrade, Kind::Field, Kind::Object];
        if !kinds.iter().any(|k| scoring.contains(k)) {
            return Ok(());
        }
        let model = crate::metadata::custom::Customizations::read(conn, schema)
            .await?
            .model()?;
        rescore_all(conn, schema, &model).await?;
        Ok(())
    })
}

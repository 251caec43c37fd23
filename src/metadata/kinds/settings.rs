//! The workspace settings: one item (`recordVisibility`,
//! `deletedRecordRetentionDays`, `auditRetentionDays`), set the way the
//! API sets it.

use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;
use serde_json::{json, Value as Json};

use super::impact::{from_to, Level, SdlChange};
use super::{text, About, Change, DataImpact, Item, Kind, MetadataKind};
use crate::error::{CrmError, Result};
use crate::metadata::change::Target;
use crate::metadata::settings::{
    change_settings, RecordVisibility, SettingsChange, DEFAULT_DELETED_RECORD_RETENTION_DAYS,
};

/// The workspace's settings.
pub struct Settings;

static ABOUT: About = About {
    kind: Kind::Settings,
    identifier: "SETTINGS",
    noun: "settings",
    description: "The workspace's settings (recordVisibility, deletedRecordRetentionDays, auditRetentionDays).",
    key: "recordVisibility",
};

/// The retention settings: their document key, column, and the value a
/// document without them (a sandbox base stored before they existed) means.
const RETENTION: [(&str, &str, i64); 2] = [
    (
        "deletedRecordRetentionDays",
        "s.deleted_record_retention_days",
        DEFAULT_DELETED_RECORD_RETENTION_DAYS as i64,
    ),
    ("auditRetentionDays", "s.audit_retention_days", 0),
];

impl MetadataKind for Settings {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn document_sql(&self, _schema: &str) -> String {
        "s.record_visibility".into()
    }

    /// `recordVisibility` under the kind's key, each retention setting
    /// under its own.
    fn document_parts(&self, schema: &str) -> Vec<(&'static str, String)> {
        let mut parts = vec![(ABOUT.key, self.document_sql(schema))];
        parts.extend(RETENTION.iter().map(|(key, sql, _)| (*key, (*sql).to_owned())));
        parts
    }

    /// The one item, `settings`; a setting the document lacks has its
    /// default.
    fn read(&self, doc: &Json) -> Vec<(String, Json)> {
        let mut state = json!({ "recordVisibility": doc[ABOUT.key] });
        for (key, _, default) in RETENTION {
            state[key] = doc.get(key).filter(|v| v.is_i64()).cloned().unwrap_or(json!(default));
        }
        vec![("settings".into(), state)]
    }

    fn target_of(&self, _state: &Json) -> String {
        "workspace settings".into()
    }

    fn client_impact(&self, before: Option<&Json>, after: &Json, _change: &Change) -> Vec<SdlChange> {
        let before = before.unwrap_or(&Json::Null);
        let mut impact = Vec::new();
        if before["recordVisibility"] != after["recordVisibility"] {
            let what = match after["recordVisibility"].as_str() {
                Some("OWNED") => "sales reps read only the records they own and the records under them",
                _ => "sales reps read every record",
            };
            impact.push(SdlChange::new(
                Level::Dangerous,
                "recordVisibility",
                format!(
                    "recordVisibility changes {}: {what}, so their queries return other records",
                    from_to(before, after, "recordVisibility")
                ),
            ));
        }
        for (key, _, _) in RETENTION {
            if shortened(before.get(key), after.get(key)) {
                let what = if key == "auditRetentionDays" {
                    "audit log entries are deleted sooner"
                } else {
                    "deleted records become unrecoverable sooner"
                };
                impact.push(SdlChange::new(
                    Level::Dangerous,
                    key,
                    format!("{key} shortens {}: {what}", from_to(before, after, key)),
                ));
            }
        }
        impact
    }

    /// Last.
    fn phase(&self, _desired: &Json) -> u8 {
        6
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        target: &'a Target<'a>,
        _current: Option<&'a Item>,
        desired: &'a Json,
        change: &'a Change,
    ) -> BoxFuture<'a, Result<Option<DataImpact>>> {
        Box::pin(async move { settings(conn, target, desired, change).await.map(|()| None) })
    }
}

/// Whether a retention in days gets shorter (0, or none, keeps forever).
fn shortened(before: Option<&Json>, after: Option<&Json>) -> bool {
    let days = |v: Option<&Json>| v.and_then(Json::as_i64).filter(|d| *d > 0).unwrap_or(i64::MAX);
    after.is_some() && days(after) < days(before)
}

/// Sets the workspace's settings the state names (one stored before the
/// retention settings existed names only `recordVisibility`), audits and
/// announces them; `recordVisibility` only when the change changes it, so
/// a sandbox following production's keeps following it.
async fn settings(conn: &mut AsyncPgConnection, target: &Target<'_>, desired: &Json, change: &Change) -> Result<()> {
    let visibility = text(desired, "recordVisibility");
    let Some(parsed) = RecordVisibility::parse(&visibility) else {
        return Err(CrmError::bad_input(
            &["recordVisibility"],
            format!("{visibility:?} is not a record visibility"),
        ));
    };
    let days = |key: &str| desired[key].as_i64().and_then(|d| i32::try_from(d).ok());
    let visibility_changes = change.properties().iter().any(|p| p == "recordVisibility");
    let change = SettingsChange {
        record_visibility: Some(parsed).filter(|_| visibility_changes),
        deleted_record_retention_days: days("deletedRecordRetentionDays"),
        audit_retention_days: days("auditRetentionDays"),
    };
    change_settings(conn, target.trail, target.schema, &change)
        .await
        .map(|_| ())
}

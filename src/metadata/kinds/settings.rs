//! The workspace settings: one item (`recordVisibility`), set the way the
//! API sets it.

use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;
use serde_json::{json, Value as Json};

use super::impact::{from_to, Level, SdlChange};
use super::{text, About, Change, DataImpact, Item, Kind, MetadataKind};
use crate::error::{CrmError, Result};
use crate::metadata::change::Target;
use crate::metadata::settings::{change_record_visibility, RecordVisibility};

/// The workspace's settings.
pub struct Settings;

static ABOUT: About = About {
    kind: Kind::Settings,
    identifier: "SETTINGS",
    noun: "settings",
    description: "The workspace's settings (recordVisibility).",
    key: "recordVisibility",
};

impl MetadataKind for Settings {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn document_sql(&self, _schema: &str) -> String {
        "s.record_visibility".into()
    }

    /// The one item, `settings`.
    fn read(&self, doc: &Json) -> Vec<(String, Json)> {
        vec![("settings".into(), json!({ "recordVisibility": doc[ABOUT.key] }))]
    }

    fn target_of(&self, _state: &Json) -> String {
        "workspace settings".into()
    }

    fn client_impact(&self, before: Option<&Json>, after: &Json, _change: &Change) -> Vec<SdlChange> {
        let before = before.unwrap_or(&Json::Null);
        if before["recordVisibility"] == after["recordVisibility"] {
            return Vec::new();
        }
        let what = match after["recordVisibility"].as_str() {
            Some("OWNED") => "sales reps read only the records they own and the records under them",
            _ => "sales reps read every record",
        };
        vec![SdlChange::new(
            Level::Dangerous,
            "recordVisibility",
            format!(
                "recordVisibility changes {}: {what}, so their queries return other records",
                from_to(before, after, "recordVisibility")
            ),
        )]
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
        _change: &'a Change,
    ) -> BoxFuture<'a, Result<Option<DataImpact>>> {
        Box::pin(async move { settings(conn, target, desired).await.map(|()| None) })
    }
}

/// Sets the workspace's record visibility, audits and announces it.
async fn settings(conn: &mut AsyncPgConnection, target: &Target<'_>, desired: &Json) -> Result<()> {
    let visibility = text(desired, "recordVisibility");
    let Some(parsed) = RecordVisibility::parse(&visibility) else {
        return Err(CrmError::bad_input(
            &["recordVisibility"],
            format!("{visibility:?} is not a record visibility"),
        ));
    };
    change_record_visibility(conn, target.trail, target.schema, parsed).await
}

//! Custom objects: rows of `custom_object`, made through the metadata
//! changes the API makes.

use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;
use serde_json::{json, Value as Json};

use super::impact::{Level, Lifecycle, SdlChange};
use super::{
    adopt_id, deleted, differs, items_of, table_rows, text, About, Change, DataImpact, Item, Kind, MetadataKind,
};
use crate::error::{CrmError, Result};
use crate::metadata::change::{self, ObjectPatch, ObjectSpec, Target};

/// A custom object.
pub struct Object;

static ABOUT: About = About {
    kind: Kind::Object,
    identifier: "OBJECT",
    noun: "object",
    description: "A custom object.",
    key: "objects",
};

impl MetadataKind for Object {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn document_sql(&self, schema: &str) -> String {
        table_rows(schema, "custom_object", "t.created_at, t.name")
    }

    fn read(&self, doc: &Json) -> Vec<(String, Json)> {
        items_of(doc, ABOUT.key, |row| {
            json!({
                "name": row["name"],
                "pluralName": row["plural"],
                "label": row["label"],
                "pluralLabel": row["plural_label"],
                "description": row["description"],
                "deleted": !row["deleted_at"].is_null(),
            })
        })
    }

    fn table(&self) -> Option<&'static str> {
        Some("custom_object")
    }

    fn target_of(&self, state: &Json) -> String {
        text(state, "name")
    }

    fn in_schema(&self) -> bool {
        true
    }

    fn client_impact(&self, before: Option<&Json>, after: &Json, change: &Change) -> Vec<SdlChange> {
        let path = &change.target;
        match Lifecycle::of(before, after) {
            Lifecycle::Added => vec![SdlChange::new(
                Level::Safe,
                path,
                format!("object {path} joins the API: its types, queries and mutations"),
            )],
            Lifecycle::Removed => vec![SdlChange::new(
                Level::Breaking,
                path,
                format!("object {path} leaves the API: operations on its types, queries and mutations fail"),
            )],
            Lifecycle::Changed | Lifecycle::Gone => Vec::new(),
        }
    }

    /// Objects come first; their deletion after the fields that point at
    /// them.
    fn phase(&self, desired: &Json) -> u8 {
        if deleted(desired) {
            2
        } else {
            0
        }
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        target: &'a Target<'a>,
        current: Option<&'a Item>,
        desired: &'a Json,
        change: &'a Change,
    ) -> BoxFuture<'a, Result<Option<DataImpact>>> {
        Box::pin(async move { object(conn, target, current, desired, &change.id).await.map(|()| None) })
    }
}

/// Makes, deletes, restores or relabels a custom object; its name and
/// plural name cannot change.
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

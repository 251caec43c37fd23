//! The workspace settings: one row of `workspace_settings` per workspace
//! schema. `recordVisibility` is set here, by the API and by promotions.

use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection};

use crate::audit::{self, Action, Trail};
use crate::db::migrate::PRODUCTION_SCHEMA;
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::notify::{self, Announcement};

/// The workspace setting `recordVisibility`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordVisibility {
    /// Every role reads every record.
    #[default]
    All,
    /// Sales reps read the records they own and their children.
    Owned,
}

impl RecordVisibility {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordVisibility::All => "ALL",
            RecordVisibility::Owned => "OWNED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ALL" => Some(RecordVisibility::All),
            "OWNED" => Some(RecordVisibility::Owned),
            _ => None,
        }
    }
}

/// Changes the `recordVisibility` of the workspace in `pg_schema` (see
/// [`set_record_visibility`]) in one transaction with its audit entry, and
/// announces it to the other servers.
pub async fn change_record_visibility(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    pg_schema: &str,
    visibility: RecordVisibility,
) -> Result<()> {
    conn.transaction::<_, CrmError, _>(async |conn| {
        let before = read_record_visibility(conn, pg_schema).await?;
        set_record_visibility(conn, pg_schema, visibility).await?;
        let document = |v: RecordVisibility| {
            let mut map = audit::Document::new();
            map.insert("recordVisibility".into(), v.as_str().into());
            map
        };
        let entry = audit::Entry {
            object: "WorkspaceSettings".into(),
            record_id: None,
            action: Action::Update,
            changes: audit::changes(Some(&document(before)), &document(visibility)),
        };
        audit::append(conn, trail, &[entry]).await?;
        let announcement = Announcement::Settings {
            workspace: trail.workspace.clone(),
        };
        notify::announce(conn, &announcement).await
    })
    .await
}

/// The workspace's own `recordVisibility`, locked for a change.
async fn read_record_visibility(conn: &mut AsyncPgConnection, pg_schema: &str) -> Result<RecordVisibility> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        record_visibility: String,
    }
    let mut query = Sql::raw("SELECT record_visibility FROM ");
    query.table(pg_schema, "workspace_settings").push(" FOR UPDATE");
    let rows: Vec<Row> = query.load(conn).await?;
    Ok(rows
        .first()
        .and_then(|row| RecordVisibility::parse(&row.record_visibility))
        .unwrap_or_default())
}

/// Sets the `recordVisibility` of the workspace in `pg_schema`, as set
/// there; a change of production's is followed, in the same transaction,
/// by every sandbox where nobody set its own.
pub async fn set_record_visibility(
    conn: &mut AsyncPgConnection,
    pg_schema: &str,
    visibility: RecordVisibility,
) -> Result<()> {
    let value = || Bind::Text(Some(visibility.as_str().to_owned()));
    let mut update = Sql::raw("UPDATE ");
    update.table(pg_schema, "workspace_settings");
    update
        .push(" SET record_visibility_set_here = true, record_visibility = ")
        .bind(value());
    update.execute(conn).await?;
    if pg_schema != PRODUCTION_SCHEMA {
        return Ok(());
    }
    for schema in sandbox_schemas(conn).await? {
        let mut follow = Sql::raw("UPDATE ");
        follow.table(&schema, "workspace_settings");
        follow.push(" SET record_visibility = ").bind(value());
        follow.push(" WHERE NOT record_visibility_set_here");
        follow.execute(conn).await?;
    }
    Ok(())
}

/// The Postgres schemas of the sandboxes, by name.
async fn sandbox_schemas(conn: &mut AsyncPgConnection) -> Result<Vec<String>> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        pg_schema: String,
    }
    let query = Sql::raw("SELECT pg_schema FROM crm_system.workspace WHERE kind = 'sandbox' ORDER BY name");
    let rows: Vec<Row> = query.load(conn).await?;
    Ok(rows.into_iter().map(|row| row.pg_schema).collect())
}

//! The workspace settings: one row of `workspace_settings` per workspace
//! schema: `recordVisibility` and the retention settings
//! (`deletedRecordRetentionDays`, `auditRetentionDays`), changed here, by
//! the API and by promotions.

use diesel::sql_types::{Integer, Text};
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
    /// Its name in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordVisibility::All => "ALL",
            RecordVisibility::Owned => "OWNED",
        }
    }

    /// The setting of that name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ALL" => Some(RecordVisibility::All),
            "OWNED" => Some(RecordVisibility::Owned),
            _ => None,
        }
    }
}

/// Retention days a setting takes at most (ten years).
pub const MAX_RETENTION_DAYS: i32 = 3650;
/// `deletedRecordRetentionDays` of a workspace that never set it.
pub const DEFAULT_DELETED_RECORD_RETENTION_DAYS: i32 = 90;

/// A workspace's settings, as stored in its `workspace_settings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkspaceSettings {
    /// Which records sales reps read.
    pub record_visibility: RecordVisibility,
    /// Days a soft-deleted record is kept before the retention job removes
    /// it for good; 0 keeps it forever.
    pub deleted_record_retention_days: i32,
    /// Days the workspace's audit log entries are kept; 0 keeps them forever.
    pub audit_retention_days: i32,
}

impl Default for WorkspaceSettings {
    fn default() -> Self {
        WorkspaceSettings {
            record_visibility: RecordVisibility::All,
            deleted_record_retention_days: DEFAULT_DELETED_RECORD_RETENTION_DAYS,
            audit_retention_days: 0,
        }
    }
}

impl WorkspaceSettings {
    /// The settings as the API names them, for the audit log.
    pub fn document(&self) -> audit::Document {
        let mut map = audit::Document::new();
        map.insert("recordVisibility".into(), self.record_visibility.as_str().into());
        map.insert(
            "deletedRecordRetentionDays".into(),
            self.deleted_record_retention_days.into(),
        );
        map.insert("auditRetentionDays".into(), self.audit_retention_days.into());
        map
    }
}

/// Settings to change; `None` leaves one as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettingsChange {
    pub record_visibility: Option<RecordVisibility>,
    pub deleted_record_retention_days: Option<i32>,
    pub audit_retention_days: Option<i32>,
}

impl SettingsChange {
    /// Whether it names no setting.
    pub fn is_empty(&self) -> bool {
        *self == SettingsChange::default()
    }

    /// Refuses a retention outside `0..=3650` days, naming the setting
    /// under `path` (`["input"]` for the API).
    pub fn check(&self, path: &[&str]) -> Result<()> {
        let days = [
            ("deletedRecordRetentionDays", self.deleted_record_retention_days),
            ("auditRetentionDays", self.audit_retention_days),
        ];
        for (name, value) in days {
            if let Some(value) = value.filter(|v| !(0..=MAX_RETENTION_DAYS).contains(v)) {
                let mut field: Vec<&str> = path.to_vec();
                field.push(name);
                return Err(CrmError::bad_input(
                    &field,
                    format!("{name} is a number of days from 0 (keep forever) to {MAX_RETENTION_DAYS}, not {value}"),
                ));
            }
        }
        Ok(())
    }
}

/// Changes settings of the workspace in `pg_schema` in one transaction with
/// one audit entry (each changed setting before and after), and announces
/// it to the other servers. The one way settings change: the API, and
/// promotions through the settings kind. Returns the settings after.
pub async fn change_settings(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    pg_schema: &str,
    change: &SettingsChange,
) -> Result<WorkspaceSettings> {
    change.check(&[])?;
    conn.transaction::<_, CrmError, _>(async |conn| {
        let before = read_settings_for_update(conn, pg_schema, true).await?;
        let mut after = before;
        // Named, it is set here even when unchanged: a sandbox so set stops
        // following production's.
        if let Some(visibility) = change.record_visibility {
            set_record_visibility(conn, pg_schema, visibility).await?;
            after.record_visibility = visibility;
        }
        after.deleted_record_retention_days = change
            .deleted_record_retention_days
            .unwrap_or(before.deleted_record_retention_days);
        after.audit_retention_days = change.audit_retention_days.unwrap_or(before.audit_retention_days);
        let mut update = Sql::raw("UPDATE ");
        update.table(pg_schema, "workspace_settings");
        update
            .push(" SET deleted_record_retention_days = ")
            .bind(Bind::Int(Some(after.deleted_record_retention_days)));
        update
            .push(", audit_retention_days = ")
            .bind(Bind::Int(Some(after.audit_retention_days)));
        update.execute(conn).await?;
        let entry = audit::Entry {
            object: "WorkspaceSettings".into(),
            record_id: None,
            action: Action::Update,
            changes: audit::changes(Some(&before.document()), &after.document()),
        };
        if !entry.changes.is_empty() {
            audit::append(conn, trail, &[entry]).await?;
        }
        let announcement = Announcement::Settings {
            workspace: trail.workspace.clone(),
        };
        notify::announce(conn, &announcement).await?;
        Ok(after)
    })
    .await
}

/// The settings of the workspace in `pg_schema`.
pub async fn read_settings(conn: &mut AsyncPgConnection, pg_schema: &str) -> Result<WorkspaceSettings> {
    read_settings_for_update(conn, pg_schema, false).await
}

/// The workspace's own settings, locked for a change when `lock`.
async fn read_settings_for_update(
    conn: &mut AsyncPgConnection,
    pg_schema: &str,
    lock: bool,
) -> Result<WorkspaceSettings> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        record_visibility: String,
        #[diesel(sql_type = Integer)]
        deleted_record_retention_days: i32,
        #[diesel(sql_type = Integer)]
        audit_retention_days: i32,
    }
    let mut query = Sql::raw("SELECT record_visibility, deleted_record_retention_days, audit_retention_days FROM ");
    query.table(pg_schema, "workspace_settings");
    if lock {
        query.push(" FOR UPDATE");
    }
    let rows: Vec<Row> = query.load(conn).await?;
    Ok(rows
        .first()
        .map(|row| WorkspaceSettings {
            record_visibility: RecordVisibility::parse(&row.record_visibility).unwrap_or_default(),
            deleted_record_retention_days: row.deleted_record_retention_days,
            audit_retention_days: row.audit_retention_days,
        })
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

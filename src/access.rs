//! Who may do what: the permissions of each role and the records a
//! request may see.
//!
//! | role      | read | create / update                                   | delete / restore      | settings, users, tokens |
//! |-----------|------|---------------------------------------------------|-----------------------|-------------------------|
//! | ADMIN     | all  | all                                               | all                   | yes                     |
//! | SALES     | all  | accounts, contacts, leads, opportunities, contact roles, activities | records they own | no          |
//! | SUPPORT   | all  | contacts, activities                              | no                    | no                      |
//! | READ_ONLY | all  | no                                                | no                    | no                      |
//!
//! Pipelines and stages are configuration: only admins change them. Users
//! are managed by admins and deactivated rather than deleted. With the
//! workspace setting `recordVisibility: OWNED`, sales reps read only the
//! records they own and the children of those records (see [`Visibility`]).

use uuid::Uuid;

use crate::auth::{Actor, Role};
use crate::db::sql::Bind;
use crate::error::{CrmError, Result};
use crate::metadata::{Access, Model, ObjectDef};
use crate::records::filter::Comparison;
use crate::records::{Filter, Quantifier};

/// A class of operation a permission covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Read,
    Create,
    Update,
    Delete,
    Restore,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Restore => "restore",
        }
    }
}

/// Permissions that are not about one object's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminPermission {
    /// Users and API tokens: `users.manage`.
    ManageUsers,
    /// Workspace settings, custom fields and objects: `metadata.change`.
    ChangeMetadata,
    /// The audit log across records: `audit.read`.
    ReadAuditLog,
    /// Sandboxes and who may use them: `sandboxes.manage`.
    ManageSandboxes,
}

impl AdminPermission {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminPermission::ManageUsers => "users.manage",
            AdminPermission::ChangeMetadata => "metadata.change",
            AdminPermission::ReadAuditLog => "audit.read",
            AdminPermission::ManageSandboxes => "sandboxes.manage",
        }
    }
}

/// Objects whose records sales reps create and change.
const SALES_WRITES: &[&str] = &["Account", "Contact", "Lead", "Opportunity", "ContactRole", "Activity"];
/// Objects whose records support agents create and change.
const SUPPORT_WRITES: &[&str] = &["Contact", "Activity"];

/// How far a role's grant on an operation reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    Denied,
    /// Only records the actor owns (sales deleting and restoring).
    Owned,
    Granted,
}

/// Configuration only admins may read.
const ADMIN_ONLY: &[&str] = &["WebhookSubscription"];

/// What `role` may do with records of `object`.
pub fn grant(role: Role, object: &ObjectDef, operation: Operation) -> Grant {
    use Operation::*;
    if role == Role::Admin {
        return Grant::Granted;
    }
    let writes = match role {
        Role::Sales => SALES_WRITES,
        Role::Support => SUPPORT_WRITES,
        Role::Admin | Role::ReadOnly => &[],
    };
    // Custom objects hold records sales reps work with like accounts.
    let writable = object.access == Access::Record
        && (writes.contains(&object.name.as_str()) || (object.custom && role == Role::Sales));
    match operation {
        // Webhook URLs often carry credentials (`?token=`): admins only
        // (and no one else sees their rows: `Visibility::of`).
        Read if ADMIN_ONLY.contains(&object.name.as_str()) => Grant::Denied,
        Read => Grant::Granted,
        Create | Update if writable => Grant::Granted,
        Delete | Restore if writable && role == Role::Sales => Grant::Owned,
        _ => Grant::Denied,
    }
}

/// The permission name of an operation on an object: `Opportunity.create`.
pub fn permission(object: &ObjectDef, operation: Operation) -> String {
    format!("{}.{}", object.name, operation.as_str())
}

/// Refuses with `FORBIDDEN` unless `actor` may do `operation` on some
/// records of `object`; returns how far the grant reaches.
pub fn require(actor: &Actor, object: &ObjectDef, operation: Operation) -> Result<Grant> {
    match grant(actor.role, object, operation) {
        Grant::Denied => Err(forbidden(actor.role, &permission(object, operation), "")),
        grant => Ok(grant),
    }
}

/// Refuses an operation granted only on records the actor owns (sales
/// deleting or restoring, `Grant::Owned`) on a record `owner` owns.
pub fn require_owner(
    actor: &Actor,
    object: &ObjectDef,
    operation: Operation,
    grant: Grant,
    owner: Option<Uuid>,
) -> Result<()> {
    if grant != Grant::Owned || owner == Some(actor.user_id) {
        return Ok(());
    }
    let detail = format!(
        "{} may {} only records they own",
        actor.role.as_str(),
        operation.as_str()
    );
    Err(forbidden(actor.role, &permission(object, operation), &detail))
}

/// Only admins give away records they do not own: anyone else may change
/// the owner of their own records only, or a rep could take a colleague's
/// record and then delete it as its owner.
pub fn require_reassign(actor: &Actor, object: &ObjectDef, current: Option<Uuid>, new: Option<Uuid>) -> Result<()> {
    if actor.role == Role::Admin || new == current || current == Some(actor.user_id) {
        return Ok(());
    }
    let detail = format!(
        "{} may reassign only records they own; their owner or an admin can",
        actor.role.as_str()
    );
    Err(forbidden(actor.role, &permission(object, Operation::Update), &detail))
}

/// Refuses with `FORBIDDEN` unless `actor` is an admin.
pub fn require_admin(actor: &Actor, permission: AdminPermission) -> Result<()> {
    if actor.role == Role::Admin {
        return Ok(());
    }
    Err(forbidden(actor.role, permission.as_str(), ""))
}

/// The error for a denied permission; `detail` says more when the grant is partial.
pub fn forbidden(role: Role, permission: &str, detail: &str) -> CrmError {
    let mut message = format!("the {} role does not have the permission {permission}", role.as_str());
    if !detail.is_empty() {
        message.push_str(": ");
        message.push_str(detail);
    }
    CrmError::Forbidden {
        permission: permission.to_owned(),
        message,
    }
}

pub use crate::metadata::settings::RecordVisibility;

/// A workspace's `recordVisibility` as this server last read or set it,
/// shared by the requests of the workspace's cached schema.
#[derive(Debug, Default)]
pub struct VisibilitySetting(std::sync::atomic::AtomicBool);

impl VisibilitySetting {
    pub fn new(setting: RecordVisibility) -> Self {
        VisibilitySetting(std::sync::atomic::AtomicBool::new(setting == RecordVisibility::Owned))
    }

    pub fn get(&self) -> RecordVisibility {
        if self.0.load(std::sync::atomic::Ordering::Acquire) {
            RecordVisibility::Owned
        } else {
            RecordVisibility::All
        }
    }

    pub fn set(&self, setting: RecordVisibility) {
        let owned = setting == RecordVisibility::Owned;
        self.0.store(owned, std::sync::atomic::Ordering::Release);
    }
}

pub use crate::records::Visibility;

impl Visibility {
    /// What `actor` sees in a workspace with this setting.
    pub fn of(actor: &Actor, setting: RecordVisibility, model: &Model) -> Self {
        if actor.role == Role::Admin {
            return Visibility::all();
        }
        // Configuration only admins read is no one else's to see, on
        // either execution path.
        let hidden = ADMIN_ONLY.iter().map(|name| {
            let none = Filter::IsNull {
                column: "id".into(),
                is_null: true,
            };
            ((*name).to_owned(), none)
        });
        if actor.role != Role::Sales || setting == RecordVisibility::All {
            return Visibility::restricted(hidden.collect());
        }
        let filters = model
            .objects()
            .iter()
            .filter(|object| matches!(object.access, Access::Record | Access::History))
            .map(|object| (object.name.clone(), owned_or_child(model, object, actor.user_id)))
            .chain(hidden)
            .collect();
        Visibility::restricted(filters)
    }
}

/// `owner = user`, or a lookup points at a live record `user` owns
/// (a contact of their account, an activity on their deal).
fn owned_or_child(model: &Model, object: &ObjectDef, user: Uuid) -> Filter {
    let owned = || Filter::Compare {
        column: "owner_id".into(),
        op: Comparison::Eq,
        value: Bind::Uuid(Some(user)),
    };
    let mut any = Vec::new();
    if object.field("owner").is_some() {
        any.push(owned());
    }
    for field in &object.fields {
        let Some(lookup) = field.lookup() else { continue };
        // A custom lookup added to a standard object is a reference, not a
        // parent: it does not widen who sees the record. A custom object's
        // lookups are its parents (a subscription of their account).
        if field.custom && !object.custom {
            continue;
        }
        let Some(parent) = model.object(&lookup.target) else {
            continue;
        };
        if parent.access != Access::Record || parent.field("owner").is_none() {
            continue;
        }
        // What the server records of a record is seen with the record,
        // however the rep sees it (a deal of their account).
        let inner = if object.access == Access::History {
            owned_or_child(model, parent, user)
        } else {
            owned()
        };
        any.push(Filter::Related {
            schema: None,
            table: parent.table.clone(),
            related_column: "id".into(),
            outer_column: field.column.clone(),
            quantifier: Quantifier::Some,
            inner: Box::new(inner),
            visible: None,
        });
    }
    Filter::Any(any)
}

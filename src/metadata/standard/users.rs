//! User: the people who work in the CRM. Not owned like records, kept in
//! the system schema, read and changed under their own access rules.

use super::{picklist, Object, F};
use crate::metadata::{Access, FieldKind, ObjectDef};

/// User: a person who works in the CRM, kept in the system schema.
pub(super) fn user() -> ObjectDef {
    use FieldKind::*;
    let mut user = Object::new(
        "User",
        "users",
        "users",
        "A person who works in the CRM: owns records, logs activities.",
    );
    user.owned = false;
    user.access = Access::Users;
    let mut user = user.fields(vec![
        F::new("name", "name", "Name", Text, "Full name.").required().max(255),
        F::new("email", "email", "Email", Email, "Sign-in email address, unique.")
            .required()
            .max(320),
        F::new(
            "role",
            "role",
            "Role",
            picklist(&[
                ("ADMIN", "Admin: everything, including customization and users"),
                ("SALES", "Sales: works accounts, contacts, leads and deals"),
                ("SUPPORT", "Support: works contacts and activities"),
                ("READ_ONLY", "Read-only: reads everything, changes nothing"),
            ]),
            "What the user may do.",
        )
        .required()
        .default("SALES"),
        F::new(
            "active",
            "active",
            "Active",
            Boolean,
            "Deactivated users keep their records but cannot sign in.",
        )
        .required()
        .default("true"),
    ]);
    user.schema = Some(crate::db::migrate::SYSTEM_SCHEMA.into());
    user
}

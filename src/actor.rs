//! Who a request acts for: a user with a role. Below both `auth` (which
//! finds the actor of a token) and `audit` (which records what actors do),
//! so neither has to import the other for it.

use uuid::Uuid;

/// What a token may do (the roles table is in `access`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    Sales,
    Support,
    ReadOnly,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Sales, Role::Support, Role::ReadOnly];

    /// The stored and API name: `ADMIN`, `SALES`, `SUPPORT`, `READ_ONLY`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "ADMIN",
            Role::Sales => "SALES",
            Role::Support => "SUPPORT",
            Role::ReadOnly => "READ_ONLY",
        }
    }

    /// How much the role may do: each role may do all a lower one may.
    fn rank(self) -> u8 {
        match self {
            Role::Admin => 3,
            Role::Sales => 2,
            Role::Support => 1,
            Role::ReadOnly => 0,
        }
    }

    /// The role of the two that may do less: a token acts with at most its
    /// user's role.
    pub fn narrower(self, other: Role) -> Role {
        if self.rank() <= other.rank() {
            self
        } else {
            other
        }
    }

    /// Reads a role name, case-insensitively (`read_only`, `READ-ONLY`).
    pub fn parse(text: &str) -> Option<Role> {
        let name = text.trim().to_ascii_uppercase().replace('-', "_");
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }
}

/// Who a request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: Uuid,
    /// The token the request came with; `None` for the server's own work
    /// (the demo data of `crm seed`).
    pub token_id: Option<Uuid>,
    /// The token's role, narrowed to its user's current role.
    pub role: Role,
}

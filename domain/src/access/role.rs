//! Member roles, ordered from least to most trusted, and the permissions each one grants.

use serde::{Deserialize, Serialize};

/// A member's role. Ordered: each role may do everything the ones below it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Member,
    Admin,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Member => "member",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }
}

/// Something one may do on a tenant; [`Permission::least_role`] is the lowest role allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Read,
    /// Change the tenant's resources (backups, pipelines, ...).
    Write,
    ManageMembers,
    ManageKeys,
    /// Rename, change settings.
    ManageTenant,
    Close,
}

impl Permission {
    pub(super) fn least_role(self) -> Role {
        match self {
            Self::Read => Role::Viewer,
            Self::Write => Role::Member,
            Self::ManageMembers | Self::ManageKeys | Self::ManageTenant => Role::Admin,
            Self::Close => Role::Owner,
        }
    }
}

//! Member roles, ordered from least to most trusted, and the permissions each one grants.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

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
    /// The role's one text form, as events, read models and the API spell it (the same as
    /// its serde name, which the stored events pin).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Member => "member",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }
}

/// The inverse of [`Role::as_str`]: exact, lower-case names only.
impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "viewer" => Self::Viewer,
            "member" => Self::Member,
            "admin" => Self::Admin,
            "owner" => Self::Owner,
            _ => return Err(UnknownRole(s.to_owned())),
        })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Text that names no [`Role`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no such role: {0:?} (viewer, member, admin or owner)")]
pub struct UnknownRole(pub String);

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
    /// Read the subscription and entitlements.
    ReadBilling,
    /// Subscribe, change plan, cancel, resume, payment methods.
    ManageBilling,
}

impl Permission {
    pub(super) fn least_role(self) -> Role {
        match self {
            Self::Read => Role::Viewer,
            Self::Write => Role::Member,
            Self::ManageMembers | Self::ManageKeys | Self::ManageTenant | Self::ReadBilling => {
                Role::Admin
            }
            Self::Close | Self::ManageBilling => Role::Owner,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_reads_back_from_its_text_which_is_its_stored_name() {
        for role in [Role::Viewer, Role::Member, Role::Admin, Role::Owner] {
            assert_eq!(role.as_str().parse(), Ok(role));
            assert_eq!(role.to_string(), role.as_str());
            assert_eq!(
                serde_json::to_value(role).ok(),
                Some(serde_json::Value::from(role.as_str()))
            );
        }
        for odd in ["", "Owner", "OWNER", " owner", "superuser"] {
            assert_eq!(odd.parse::<Role>(), Err(UnknownRole(odd.to_owned())));
        }
    }
}

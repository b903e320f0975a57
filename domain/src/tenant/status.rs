//! A tenant's lifecycle status, and the checks commands make on it.

use super::{Tenant, TenantError};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Active, suspended by the platform, or closed (for good).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    Active,
    Suspended,
    Closed,
}

impl TenantStatus {
    /// The status's one text form (the same as its serde name, which the stored snapshots
    /// pin). Read models may know more states (the directory's `deleted`), never fewer.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Closed => "closed",
        }
    }
}

/// The inverse of [`TenantStatus::as_str`]: exact, lower-case names only.
impl FromStr for TenantStatus {
    type Err = UnknownTenantStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "active" => Self::Active,
            "suspended" => Self::Suspended,
            "closed" => Self::Closed,
            _ => return Err(UnknownTenantStatus(s.to_owned())),
        })
    }
}

impl fmt::Display for TenantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Text that names no [`TenantStatus`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no such tenant status: {0:?} (active, suspended or closed)")]
pub struct UnknownTenantStatus(pub String);

impl Tenant {
    pub(super) fn require(&self) -> Result<TenantStatus, TenantError> {
        self.status.ok_or(TenantError::NotFound)
    }

    pub(super) fn require_open(&self) -> Result<TenantStatus, TenantError> {
        match self.require()? {
            TenantStatus::Closed => Err(TenantError::Closed),
            status => Ok(status),
        }
    }

    pub(super) fn require_active(&self) -> Result<(), TenantError> {
        match self.require_open()? {
            TenantStatus::Suspended => Err(TenantError::Suspended),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_reads_back_from_its_text_which_is_its_stored_name() {
        for status in [
            TenantStatus::Active,
            TenantStatus::Suspended,
            TenantStatus::Closed,
        ] {
            assert_eq!(status.as_str().parse(), Ok(status));
            assert_eq!(status.to_string(), status.as_str());
            assert_eq!(
                serde_json::to_value(status).ok(),
                Some(serde_json::Value::from(status.as_str()))
            );
        }
        for odd in ["", "Active", "deleted"] {
            assert_eq!(
                odd.parse::<TenantStatus>(),
                Err(UnknownTenantStatus(odd.to_owned()))
            );
        }
    }
}

//! A tenant's lifecycle status, and the checks commands make on it.

use super::{Tenant, TenantError};
use serde::{Deserialize, Serialize};

/// Active, suspended by the platform, or closed (for good).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    Active,
    Suspended,
    Closed,
}

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

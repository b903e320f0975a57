//! API keys: created with a scope no wider than their creator's role, acting as the member
//! role their scope maps to, until revoked.

use super::{AccessError, AccessEvent, Accessor, Permission, Role, TenantAccess};
use crate::ids::ApiKeyId;
use crate::user::SecretHash;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Most live (unrevoked) API keys a tenant can have.
pub const MAX_API_KEYS: usize = 100;

/// What an API key may do: read, read and write, or also manage members and keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyScope {
    ReadOnly,
    ReadWrite,
    Admin,
}

impl ApiKeyScope {
    /// The member role a key of this scope acts with.
    pub fn role(self) -> Role {
        match self {
            Self::ReadOnly => Role::Viewer,
            Self::ReadWrite => Role::Member,
            Self::Admin => Role::Admin,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "read_only",
            Self::ReadWrite => "read_write",
            Self::Admin => "admin",
        }
    }
}

/// A key as the tenant holds it: its scope, the hash of its secret, whether it was revoked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyGrant {
    pub scope: ApiKeyScope,
    pub secret: SecretHash,
    pub revoked: bool,
}

impl TenantAccess {
    pub(super) fn create_api_key(
        &self,
        by: Accessor,
        key_id: ApiKeyId,
        name: &str,
        scope: ApiKeyScope,
        secret: &SecretHash,
        at: DateTime<Utc>,
    ) -> Result<Vec<AccessEvent>, AccessError> {
        let role = self.authorize(by, Permission::ManageKeys)?;
        if scope.role() > role {
            return Err(AccessError::Forbidden);
        }
        if self.api_keys.contains_key(&key_id) {
            return Ok(vec![]);
        }
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(AccessError::InvalidKeyName);
        }
        if self.api_keys.values().filter(|k| !k.revoked).count() >= MAX_API_KEYS {
            return Err(AccessError::LimitReached(MAX_API_KEYS));
        }
        Ok(vec![AccessEvent::ApiKeyCreated {
            key_id,
            name: name.to_owned(),
            scope,
            secret: secret.clone(),
            by,
            at,
        }])
    }

    pub(super) fn revoke_api_key(
        &self,
        by: Accessor,
        key_id: ApiKeyId,
        at: DateTime<Utc>,
    ) -> Result<Vec<AccessEvent>, AccessError> {
        self.authorize(by, Permission::ManageKeys)?;
        match self.api_keys.get(&key_id) {
            None => return Err(AccessError::NoSuchApiKey),
            Some(key) if key.revoked => return Ok(vec![]),
            Some(_) => {}
        }
        Ok(vec![AccessEvent::ApiKeyRevoked { key_id, by, at }])
    }
}

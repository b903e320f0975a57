//! API keys: created with a scope no wider than their creator's role, acting as the member
//! role their scope maps to, until revoked.

use super::{AccessError, AccessEvent, Accessor, Permission, Role, TenantAccess};
use crate::ids::ApiKeyId;
use crate::user::SecretHash;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

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

    /// The scope's one text form, as events, read models and the API spell it (the same as
    /// its serde name, which the stored events pin).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "read_only",
            Self::ReadWrite => "read_write",
            Self::Admin => "admin",
        }
    }
}

/// The inverse of [`ApiKeyScope::as_str`]: exact, lower-case names only.
impl FromStr for ApiKeyScope {
    type Err = UnknownApiKeyScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "read_only" => Self::ReadOnly,
            "read_write" => Self::ReadWrite,
            "admin" => Self::Admin,
            _ => return Err(UnknownApiKeyScope(s.to_owned())),
        })
    }
}

impl fmt::Display for ApiKeyScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Text that names no [`ApiKeyScope`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no such API key scope: {0:?} (read_only, read_write or admin)")]
pub struct UnknownApiKeyScope(pub String);

/// A key as the tenant holds it: its scope, the hash of its secret, whether it was revoked,
/// and who created it (a key acts with the lesser of its scope and its creator's current
/// role).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyGrant {
    pub scope: ApiKeyScope,
    pub secret: SecretHash,
    pub revoked: bool,
    pub created_by: Accessor,
}

impl TenantAccess {
    pub(super) fn create_api_key(
        &self,
        by: Accessor,
        key_id: ApiKeyId,
        (name, scope, secret): (&str, ApiKeyScope, &SecretHash),
        max_keys: crate::plan::Limit,
        at: DateTime<Utc>,
    ) -> Result<Vec<AccessEvent>, AccessError> {
        if matches!(by, Accessor::ApiKey(_)) {
            return Err(AccessError::KeysCannotCreateKeys);
        }
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
        let active = self.api_keys.values().filter(|k| !k.revoked).count();
        if active >= MAX_API_KEYS {
            return Err(AccessError::LimitReached(MAX_API_KEYS));
        }
        if !max_keys.allows(active as u64, 1) {
            return Err(AccessError::PlanLimitReached {
                key: crate::plan::LimitKey::ApiKeys,
                limit: max_keys.value().unwrap_or(u64::MAX),
                used: active as u64,
            });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_reads_back_from_its_text_which_is_its_stored_name() {
        for scope in [
            ApiKeyScope::ReadOnly,
            ApiKeyScope::ReadWrite,
            ApiKeyScope::Admin,
        ] {
            assert_eq!(scope.as_str().parse(), Ok(scope));
            assert_eq!(scope.to_string(), scope.as_str());
            assert_eq!(
                serde_json::to_value(scope).ok(),
                Some(serde_json::Value::from(scope.as_str()))
            );
        }
        for odd in ["", "READ_ONLY", "ReadOnly", "read-only", "owner"] {
            assert_eq!(
                odd.parse::<ApiKeyScope>(),
                Err(UnknownApiKeyScope(odd.to_owned()))
            );
        }
    }
}

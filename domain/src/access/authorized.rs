//! Who acts on a tenant ([`Accessor`]), the permission check, and the proof it passed
//! ([`Authorized`]) that tenant-scoped reads demand.

use super::{AccessError, Permission, Role, TenantAccess};
use crate::ids::{ApiKeyId, TenantId, UserId};
use serde::{Deserialize, Serialize};

/// Who acts on a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Accessor {
    User(UserId),
    ApiKey(ApiKeyId),
}

/// Proof that an accessor passed a permission check on a tenant. Only
/// [`TenantAccess::grant`] makes one (and [`Authorized::platform_operator`], for the edge
/// once it checked the caller is an operator), and tenant-scoped read-model queries take
/// one, so a query cannot be aimed at a tenant nobody checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authorized {
    tenant: TenantId,
    role: Role,
}

impl Authorized {
    /// A platform operator reading `tenant` (the nil id: the platform's own records) without
    /// being a member: reads as an admin. Only after the caller was checked to be an
    /// operator.
    pub fn platform_operator(tenant: TenantId) -> Self {
        Self {
            tenant,
            role: Role::Admin,
        }
    }

    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    pub fn role(&self) -> Role {
        self.role
    }
}

impl TenantAccess {
    /// The role `by` acts with, if it may act on this tenant at all. A key acts with the
    /// lesser of its scope and its creator's current role: demoting the creator narrows their
    /// keys, removing the creator stops them.
    pub fn role_of(&self, by: Accessor) -> Option<Role> {
        self.role_within(by, 0)
    }

    fn role_within(&self, by: Accessor, depth: usize) -> Option<Role> {
        match by {
            Accessor::User(user) => self.members.get(&user).map(|m| m.role),
            Accessor::ApiKey(key) => {
                let grant = self.api_keys.get(&key).filter(|k| !k.revoked)?;
                // Keys made by keys (before keys could not make keys) inherit along the chain;
                // the chain is acyclic (a key exists before it creates one), the bound is a
                // guard.
                if depth > 16 {
                    return None;
                }
                let creator = self.role_within(grant.created_by, depth + 1)?;
                Some(grant.scope.role().min(creator))
            }
        }
    }

    /// Whether `by` may do what `permission` names. Non-members get `NotFound`.
    pub fn authorize(&self, by: Accessor, permission: Permission) -> Result<Role, AccessError> {
        let role = self.role_of(by).ok_or(AccessError::NotFound)?;
        if role < permission.least_role() {
            return Err(AccessError::Forbidden);
        }
        Ok(role)
    }

    /// Checks `permission` like [`Self::authorize`] and returns the proof read models ask for.
    pub fn grant(
        &self,
        tenant: TenantId,
        by: Accessor,
        permission: Permission,
    ) -> Result<Authorized, AccessError> {
        let role = self.authorize(by, permission)?;
        Ok(Authorized { tenant, role })
    }
}

//! Members: founding a tenant with its first owner, changing roles and removing members,
//! with the rules that span them (only owners touch owners; the last owner stays).

use super::{AccessError, AccessEvent, Accessor, Permission, Role, TenantAccess};
use crate::ids::UserId;
use crate::personal_data::Sealed;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Most members a tenant can have.
pub const MAX_MEMBERS: usize = 1_000;

/// A member's role and (sealed) e-mail address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Membership {
    pub role: Role,
    pub email: Sealed,
}

impl TenantAccess {
    fn owners(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.role == Role::Owner)
            .count()
    }

    /// Only owners make, unmake or remove owners; admins manage the rest.
    pub(super) fn may_manage(
        &self,
        by: Accessor,
        target: Role,
        new: Role,
    ) -> Result<(), AccessError> {
        let role = self.authorize(by, Permission::ManageMembers)?;
        if (target == Role::Owner || new == Role::Owner) && role != Role::Owner {
            return Err(AccessError::Forbidden);
        }
        Ok(())
    }

    /// The tenant's creator becomes its first owner (again: a no-op).
    pub(super) fn found(
        &self,
        owner: UserId,
        owner_email: &Sealed,
        at: DateTime<Utc>,
    ) -> Result<Vec<AccessEvent>, AccessError> {
        if self.founded {
            return if self.members.get(&owner).map(|m| m.role) == Some(Role::Owner) {
                Ok(vec![])
            } else {
                Err(AccessError::AlreadyFounded)
            };
        }
        Ok(vec![AccessEvent::MemberAdded {
            user_id: owner,
            email: owner_email.clone(),
            role: Role::Owner,
            invite_id: None,
            at,
        }])
    }

    pub(super) fn change_role(
        &self,
        by: Accessor,
        user: UserId,
        role: Role,
        at: DateTime<Utc>,
    ) -> Result<Vec<AccessEvent>, AccessError> {
        let current = self
            .members
            .get(&user)
            .map(|m| m.role)
            .ok_or(AccessError::NoSuchMember);
        // Permission first: whether the member exists is not told to who may not manage.
        self.may_manage(by, *current.as_ref().unwrap_or(&Role::Viewer), role)?;
        let current = current?;
        if current == role {
            return Ok(vec![]);
        }
        if current == Role::Owner && self.owners() == 1 {
            return Err(AccessError::LastOwner);
        }
        Ok(vec![AccessEvent::MemberRoleChanged {
            user_id: user,
            role,
            by,
            at,
        }])
    }

    /// Removes a member (or, when `by` is that member, leaves).
    pub(super) fn remove_member(
        &self,
        by: Accessor,
        user: UserId,
        at: DateTime<Utc>,
    ) -> Result<Vec<AccessEvent>, AccessError> {
        let leaving = by == Accessor::User(user);
        let current = self.members.get(&user).map(|m| m.role);
        if leaving {
            self.authorize(by, Permission::Read)?;
        } else {
            self.may_manage(by, current.unwrap_or(Role::Viewer), Role::Viewer)?;
        }
        let current = current.ok_or(AccessError::NoSuchMember)?;
        if current == Role::Owner && self.owners() == 1 {
            return Err(AccessError::LastOwner);
        }
        Ok(vec![AccessEvent::MemberRemoved {
            user_id: user,
            by,
            at,
        }])
    }
}

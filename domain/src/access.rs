//! Who may do what in a tenant: its members and their roles, pending invites and API keys.
//! One stream per tenant (`access-<tenant uuid>`), so the rules that span members (the last
//! owner can be neither removed nor demoted) are decided on one consistent state.
//!
//! Role checks live here too: every command names who acts ([`Accessor`]), and
//! [`TenantAccess::authorize`] is also how the edge checks tenant commands and reads, on the
//! same state (a non-member learns nothing, not even that the tenant exists).

use crate::aggregate::Aggregate;
use crate::ids::{ApiKeyId, InviteId, TenantId, UserId};
use crate::personal_data::Sealed;
use crate::user::SecretHash;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Most members a tenant can have, and most invites pending at once.
pub const MAX_MEMBERS: usize = 1_000;
pub const MAX_PENDING_INVITES: usize = 100;
pub const MAX_API_KEYS: usize = 100;

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

/// Who acts on a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Accessor {
    User(UserId),
    ApiKey(ApiKeyId),
}

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
    fn least_role(self) -> Role {
        match self {
            Self::Read => Role::Viewer,
            Self::Write => Role::Member,
            Self::ManageMembers | Self::ManageKeys | Self::ManageTenant => Role::Admin,
            Self::Close => Role::Owner,
        }
    }
}

/// Proof that an accessor passed a permission check on a tenant. Only
/// [`TenantAccess::grant`] makes one, and tenant-scoped read-model queries take one, so a
/// query cannot be aimed at a tenant nobody checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authorized {
    tenant: TenantId,
    role: Role,
}

impl Authorized {
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    pub fn role(&self) -> Role {
        self.role
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Membership {
    pub role: Role,
    pub email: Sealed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingInvite {
    pub email_index: Uuid,
    pub role: Role,
    pub token: SecretHash,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyGrant {
    pub scope: ApiKeyScope,
    pub secret: SecretHash,
    pub revoked: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TenantAccess {
    /// Whether the tenant was founded (its first owner added).
    pub founded: bool,
    pub members: BTreeMap<UserId, Membership>,
    pub invites: BTreeMap<InviteId, PendingInvite>,
    pub api_keys: BTreeMap<ApiKeyId, ApiKeyGrant>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AccessCommand {
    /// The tenant's creator becomes its first owner.
    Found {
        owner: UserId,
        owner_email: Sealed,
        at: DateTime<Utc>,
    },
    Invite {
        by: Accessor,
        invite_id: InviteId,
        email: Sealed,
        email_index: Uuid,
        role: Role,
        token: SecretHash,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    RevokeInvite {
        by: Accessor,
        invite_id: InviteId,
        at: DateTime<Utc>,
    },
    /// `user` proved the address the invite went to (its verified e-mail's blind index).
    AcceptInvite {
        invite_id: InviteId,
        token: SecretHash,
        user: UserId,
        user_email: Sealed,
        user_email_index: Uuid,
        at: DateTime<Utc>,
    },
    ChangeRole {
        by: Accessor,
        user: UserId,
        role: Role,
        at: DateTime<Utc>,
    },
    /// Removes a member (or, when `by` is that member, leaves).
    RemoveMember {
        by: Accessor,
        user: UserId,
        at: DateTime<Utc>,
    },
    CreateApiKey {
        by: Accessor,
        key_id: ApiKeyId,
        name: String,
        scope: ApiKeyScope,
        secret: SecretHash,
        at: DateTime<Utc>,
    },
    RevokeApiKey {
        by: Accessor,
        key_id: ApiKeyId,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AccessEvent {
    MemberAdded {
        user_id: UserId,
        email: Sealed,
        role: Role,
        invite_id: Option<InviteId>,
        at: DateTime<Utc>,
    },
    MemberInvited {
        invite_id: InviteId,
        email: Sealed,
        email_index: Uuid,
        role: Role,
        token: SecretHash,
        expires_at: DateTime<Utc>,
        by: Accessor,
        at: DateTime<Utc>,
    },
    InviteRevoked {
        invite_id: InviteId,
        at: DateTime<Utc>,
    },
    MemberRoleChanged {
        user_id: UserId,
        role: Role,
        by: Accessor,
        at: DateTime<Utc>,
    },
    MemberRemoved {
        user_id: UserId,
        by: Accessor,
        at: DateTime<Utc>,
    },
    ApiKeyCreated {
        key_id: ApiKeyId,
        name: String,
        scope: ApiKeyScope,
        secret: SecretHash,
        by: Accessor,
        at: DateTime<Utc>,
    },
    ApiKeyRevoked {
        key_id: ApiKeyId,
        by: Accessor,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// Also what a non-member gets for any tenant: its existence is not revealed.
    #[error("no such tenant")]
    NotFound,
    #[error("your role does not allow this")]
    Forbidden,
    #[error("the tenant already has its owner")]
    AlreadyFounded,
    #[error("a tenant must keep at least one owner")]
    LastOwner,
    #[error("no such member")]
    NoSuchMember,
    #[error("already a member")]
    AlreadyMember,
    #[error("the invite is invalid, was used, or has expired")]
    InvalidInvite,
    #[error("the invite was sent to another e-mail address")]
    InviteForAnotherEmail,
    #[error("no such API key")]
    NoSuchApiKey,
    #[error("an API key name must be 1 to 100 characters without control characters")]
    InvalidKeyName,
    #[error("a tenant may have at most {0} of these")]
    LimitReached(usize),
}

impl TenantAccess {
    /// The role `by` acts with, if it may act on this tenant at all.
    pub fn role_of(&self, by: Accessor) -> Option<Role> {
        match by {
            Accessor::User(user) => self.members.get(&user).map(|m| m.role),
            Accessor::ApiKey(key) => self
                .api_keys
                .get(&key)
                .filter(|k| !k.revoked)
                .map(|k| k.scope.role()),
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

    fn owners(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.role == Role::Owner)
            .count()
    }

    /// Only owners make, unmake or remove owners; admins manage the rest.
    fn may_manage(&self, by: Accessor, target: Role, new: Role) -> Result<(), AccessError> {
        let role = self.authorize(by, Permission::ManageMembers)?;
        if (target == Role::Owner || new == Role::Owner) && role != Role::Owner {
            return Err(AccessError::Forbidden);
        }
        Ok(())
    }
}

impl Aggregate for TenantAccess {
    const CATEGORY: &'static str = "access";
    type Command = AccessCommand;
    type Event = AccessEvent;
    type Error = AccessError;

    fn decide(&self, command: &AccessCommand) -> Result<Vec<AccessEvent>, AccessError> {
        use AccessCommand as C;
        use AccessEvent as E;
        if !matches!(command, C::Found { .. }) && !self.founded {
            return Err(AccessError::NotFound);
        }
        Ok(match command {
            C::Found {
                owner,
                owner_email,
                at,
            } => {
                if self.founded {
                    return if self.members.get(owner).map(|m| m.role) == Some(Role::Owner) {
                        Ok(vec![])
                    } else {
                        Err(AccessError::AlreadyFounded)
                    };
                }
                vec![E::MemberAdded {
                    user_id: *owner,
                    email: owner_email.clone(),
                    role: Role::Owner,
                    invite_id: None,
                    at: *at,
                }]
            }
            C::Invite {
                by,
                invite_id,
                email,
                email_index,
                role,
                token,
                expires_at,
                at,
            } => {
                self.may_manage(*by, Role::Viewer, *role)?;
                if self.invites.contains_key(invite_id) {
                    return Ok(vec![]);
                }
                let pending = self.invites.values().filter(|i| i.expires_at > *at).count();
                if pending >= MAX_PENDING_INVITES {
                    return Err(AccessError::LimitReached(MAX_PENDING_INVITES));
                }
                vec![E::MemberInvited {
                    invite_id: *invite_id,
                    email: email.clone(),
                    email_index: *email_index,
                    role: *role,
                    token: token.clone(),
                    expires_at: *expires_at,
                    by: *by,
                    at: *at,
                }]
            }
            C::RevokeInvite { by, invite_id, at } => {
                let invite = self.invites.get(invite_id);
                let role = invite.map_or(Role::Viewer, |i| i.role);
                self.may_manage(*by, Role::Viewer, role)?;
                if invite.is_none() {
                    return Err(AccessError::InvalidInvite);
                }
                vec![E::InviteRevoked {
                    invite_id: *invite_id,
                    at: *at,
                }]
            }
            C::AcceptInvite {
                invite_id,
                token,
                user,
                user_email,
                user_email_index,
                at,
            } => {
                let Some(invite) = self.invites.get(invite_id) else {
                    return Err(AccessError::InvalidInvite);
                };
                if &invite.token != token || *at >= invite.expires_at {
                    return Err(AccessError::InvalidInvite);
                }
                if invite.email_index != *user_email_index {
                    return Err(AccessError::InviteForAnotherEmail);
                }
                if self.members.contains_key(user) {
                    return Err(AccessError::AlreadyMember);
                }
                if self.members.len() >= MAX_MEMBERS {
                    return Err(AccessError::LimitReached(MAX_MEMBERS));
                }
                vec![E::MemberAdded {
                    user_id: *user,
                    email: user_email.clone(),
                    role: invite.role,
                    invite_id: Some(*invite_id),
                    at: *at,
                }]
            }
            C::ChangeRole { by, user, role, at } => {
                let current = self
                    .members
                    .get(user)
                    .map(|m| m.role)
                    .ok_or(AccessError::NoSuchMember);
                self.may_manage(*by, *current.as_ref().unwrap_or(&Role::Viewer), *role)?;
                let current = current?;
                if current == *role {
                    return Ok(vec![]);
                }
                if current == Role::Owner && self.owners() == 1 {
                    return Err(AccessError::LastOwner);
                }
                vec![E::MemberRoleChanged {
                    user_id: *user,
                    role: *role,
                    by: *by,
                    at: *at,
                }]
            }
            C::RemoveMember { by, user, at } => {
                let leaving = *by == Accessor::User(*user);
                let current = self.members.get(user).map(|m| m.role);
                if leaving {
                    self.authorize(*by, Permission::Read)?;
                } else {
                    self.may_manage(*by, current.unwrap_or(Role::Viewer), Role::Viewer)?;
                }
                let current = current.ok_or(AccessError::NoSuchMember)?;
                if current == Role::Owner && self.owners() == 1 {
                    return Err(AccessError::LastOwner);
                }
                vec![E::MemberRemoved {
                    user_id: *user,
                    by: *by,
                    at: *at,
                }]
            }
            C::CreateApiKey {
                by,
                key_id,
                name,
                scope,
                secret,
                at,
            } => {
                let role = self.authorize(*by, Permission::ManageKeys)?;
                if scope.role() > role {
                    return Err(AccessError::Forbidden);
                }
                if self.api_keys.contains_key(key_id) {
                    return Ok(vec![]);
                }
                let name = name.trim();
                if name.is_empty()
                    || name.chars().count() > 100
                    || name.chars().any(char::is_control)
                {
                    return Err(AccessError::InvalidKeyName);
                }
                if self.api_keys.values().filter(|k| !k.revoked).count() >= MAX_API_KEYS {
                    return Err(AccessError::LimitReached(MAX_API_KEYS));
                }
                vec![E::ApiKeyCreated {
                    key_id: *key_id,
                    name: name.to_owned(),
                    scope: *scope,
                    secret: secret.clone(),
                    by: *by,
                    at: *at,
                }]
            }
            C::RevokeApiKey { by, key_id, at } => {
                self.authorize(*by, Permission::ManageKeys)?;
                match self.api_keys.get(key_id) {
                    None => return Err(AccessError::NoSuchApiKey),
                    Some(key) if key.revoked => return Ok(vec![]),
                    Some(_) => {}
                }
                vec![E::ApiKeyRevoked {
                    key_id: *key_id,
                    by: *by,
                    at: *at,
                }]
            }
        })
    }

    fn evolve(&mut self, event: &AccessEvent) {
        use AccessEvent as E;
        match event {
            E::MemberAdded {
                user_id,
                email,
                role,
                invite_id,
                ..
            } => {
                self.founded = true;
                if let Some(invite) = invite_id {
                    self.invites.remove(invite);
                }
                self.members.insert(
                    *user_id,
                    Membership {
                        role: *role,
                        email: email.clone(),
                    },
                );
            }
            E::MemberInvited {
                invite_id,
                email_index,
                role,
                token,
                expires_at,
                at,
                ..
            } => {
                self.invites.retain(|_, i| i.expires_at > *at);
                self.invites.insert(
                    *invite_id,
                    PendingInvite {
                        email_index: *email_index,
                        role: *role,
                        token: token.clone(),
                        expires_at: *expires_at,
                    },
                );
            }
            E::InviteRevoked { invite_id, .. } => {
                self.invites.remove(invite_id);
            }
            E::MemberRoleChanged { user_id, role, .. } => {
                if let Some(m) = self.members.get_mut(user_id) {
                    m.role = *role;
                }
            }
            E::MemberRemoved { user_id, .. } => {
                self.members.remove(user_id);
            }
            E::ApiKeyCreated {
                key_id,
                scope,
                secret,
                ..
            } => {
                self.api_keys.insert(
                    *key_id,
                    ApiKeyGrant {
                        scope: *scope,
                        secret: secret.clone(),
                        revoked: false,
                    },
                );
            }
            E::ApiKeyRevoked { key_id, .. } => {
                if let Some(k) = self.api_keys.get_mut(key_id) {
                    k.revoked = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::aggregate::{Given, at, given};

    fn user(n: u128) -> UserId {
        UserId::from_uuid(Uuid::from_u128(n))
    }

    fn sealed() -> Sealed {
        Sealed::from_sealed_text("sealed".into())
    }

    /// A founded tenant whose members (by number) hold these roles.
    fn with_members(members: &[(u128, Role)]) -> Given<TenantAccess> {
        given(members.iter().map(|(n, role)| AccessEvent::MemberAdded {
            user_id: user(*n),
            email: sealed(),
            role: *role,
            invite_id: None,
            at: at(0),
        }))
    }

    fn change(by: u128, who: u128, role: Role) -> AccessCommand {
        AccessCommand::ChangeRole {
            by: Accessor::User(user(by)),
            user: user(who),
            role,
            at: at(1),
        }
    }

    #[test]
    fn the_last_owner_can_be_neither_demoted_nor_removed() {
        let access = with_members(&[(1, Role::Owner), (2, Role::Admin)]);
        access
            .when(&change(1, 1, Role::Admin))
            .then_refused(AccessError::LastOwner);
        let leave = AccessCommand::RemoveMember {
            by: Accessor::User(user(1)),
            user: user(1),
            at: at(1),
        };
        access.when(&leave).then_refused(AccessError::LastOwner);
        with_members(&[(1, Role::Owner), (3, Role::Owner)])
            .when(&change(1, 1, Role::Admin))
            .then_accepted();
    }

    #[test]
    fn roles_bound_what_members_may_do() {
        let access = with_members(&[
            (1, Role::Owner),
            (2, Role::Admin),
            (3, Role::Member),
            (4, Role::Viewer),
        ]);
        // Admins cannot touch owners, nor make them.
        access
            .when(&change(2, 1, Role::Viewer))
            .then_refused(AccessError::Forbidden);
        access
            .when(&change(2, 3, Role::Owner))
            .then_refused(AccessError::Forbidden);
        access.when(&change(2, 3, Role::Admin)).then_accepted();
        // Members manage nobody.
        access
            .when(&change(3, 4, Role::Member))
            .then_refused(AccessError::Forbidden);
        // Strangers learn nothing.
        access
            .when(&change(9, 4, Role::Member))
            .then_refused(AccessError::NotFound);
        assert_eq!(
            access
                .state()
                .authorize(Accessor::User(user(4)), Permission::Write),
            Err(AccessError::Forbidden)
        );
        assert_eq!(
            access
                .state()
                .authorize(Accessor::User(user(4)), Permission::Read),
            Ok(Role::Viewer)
        );
    }

    #[test]
    fn api_keys_act_within_their_scope_until_revoked() {
        let key = ApiKeyId::from_uuid(Uuid::from_u128(7));
        let create = AccessCommand::CreateApiKey {
            by: Accessor::User(user(1)),
            key_id: key,
            name: "ci".into(),
            scope: ApiKeyScope::ReadOnly,
            secret: SecretHash::new("h".into()),
            at: at(1),
        };
        // Owners create keys.
        let access = with_members(&[(1, Role::Owner)])
            .when(&create)
            .then_accepted();
        let by_key = Accessor::ApiKey(key);
        assert_eq!(
            access.state().authorize(by_key, Permission::Read),
            Ok(Role::Viewer)
        );
        assert_eq!(
            access.state().authorize(by_key, Permission::Write),
            Err(AccessError::Forbidden)
        );
        let escalate = AccessCommand::CreateApiKey {
            by: by_key,
            key_id: ApiKeyId::from_uuid(Uuid::from_u128(8)),
            name: "more".into(),
            scope: ApiKeyScope::Admin,
            secret: SecretHash::new("h".into()),
            at: at(1),
        };
        access.when(&escalate).then_refused(AccessError::Forbidden);
        let revoke = AccessCommand::RevokeApiKey {
            by: Accessor::User(user(1)),
            key_id: key,
            at: at(2),
        };
        let revoked = access.when(&revoke).then_accepted();
        assert_eq!(
            revoked.state().authorize(by_key, Permission::Read),
            Err(AccessError::NotFound)
        );
    }

    #[test]
    fn an_invite_is_accepted_once_by_its_addressee() {
        let invite_id = InviteId::from_uuid(Uuid::from_u128(5));
        let invite = AccessCommand::Invite {
            by: Accessor::User(user(1)),
            invite_id,
            email: sealed(),
            email_index: Uuid::from_u128(42),
            role: Role::Member,
            token: SecretHash::new("t".into()),
            expires_at: at(5),
            at: at(1),
        };
        let invited = with_members(&[(1, Role::Owner)])
            .when(&invite)
            .then_accepted();
        let accept = |index: u128, token: &str, when: u32| AccessCommand::AcceptInvite {
            invite_id,
            token: SecretHash::new(token.into()),
            user: user(2),
            user_email: sealed(),
            user_email_index: Uuid::from_u128(index),
            at: at(when),
        };
        invited
            .when(&accept(43, "t", 2))
            .then_refused(AccessError::InviteForAnotherEmail);
        invited
            .when(&accept(42, "x", 2))
            .then_refused(AccessError::InvalidInvite);
        // Expired.
        invited
            .when(&accept(42, "t", 6))
            .then_refused(AccessError::InvalidInvite);
        let joined = invited.when(&accept(42, "t", 2)).then_accepted();
        assert_eq!(
            joined.state().role_of(Accessor::User(user(2))),
            Some(Role::Member)
        );
        // Used.
        joined
            .when(&accept(42, "t", 2))
            .then_refused(AccessError::InvalidInvite);
    }
}

//! Who may do what in a tenant: its members and their roles, pending invites and API keys.
//! One stream per tenant (`access-<tenant uuid>`), so the rules that span members (the last
//! owner can be neither removed nor demoted) are decided on one consistent state.
//!
//! Role checks live here too: every command names who acts ([`Accessor`]), and
//! [`TenantAccess::authorize`] is also how the edge checks tenant commands and reads, on the
//! same state (a non-member learns nothing, not even that the tenant exists).
//!
//! This file holds the [`TenantAccess`] state, folds events into it and routes each command
//! to the file of its concept: members, invites, API keys; roles and the permission check,
//! the bearer forms of tokens, and the rule over access and tenant state (growth) have files
//! of their own.

mod api_key;
mod authorized;
mod command;
mod error;
mod event;
mod growth;
mod invite;
mod member;
mod role;
mod token;

#[cfg(test)]
mod tests;

pub use api_key::{ApiKeyGrant, ApiKeyScope, MAX_API_KEYS, UnknownApiKeyScope};
pub use authorized::{Accessor, Authorized};
pub use command::AccessCommand;
pub use error::AccessError;
pub use event::AccessEvent;
pub use growth::{GrowthRefused, check_growth, may_grow};
pub use invite::{MAX_PENDING_INVITES, PendingInvite};
pub use member::{MAX_MEMBERS, Membership};
pub use role::{Permission, Role, UnknownRole};
pub use token::{API_KEY_PREFIX, ApiKeyToken, InviteToken, MalformedToken};

use crate::aggregate::Aggregate;
use crate::ids::{ApiKeyId, InviteId, UserId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A tenant's access list: everything its decisions need.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TenantAccess {
    /// Whether the tenant was founded (its first owner added).
    pub founded: bool,
    pub members: BTreeMap<UserId, Membership>,
    pub invites: BTreeMap<InviteId, PendingInvite>,
    pub api_keys: BTreeMap<ApiKeyId, ApiKeyGrant>,
}

impl Aggregate for TenantAccess {
    const CATEGORY: &'static str = "access";
    /// 2: keys remember their creator (`ApiKeyGrant::created_by`); older snapshots are
    /// ignored and the state is rebuilt from the events, which always named the creator.
    const SNAPSHOT_VERSION: u32 = 2;
    type Command = AccessCommand;
    type Event = AccessEvent;
    type Error = AccessError;

    fn decide(&self, command: &AccessCommand) -> Result<Vec<AccessEvent>, AccessError> {
        use AccessCommand as C;
        if !matches!(command, C::Found { .. }) && !self.founded {
            return Err(AccessError::NotFound);
        }
        match command {
            C::Found {
                owner,
                owner_email,
                at,
            } => self.found(*owner, owner_email, *at),
            C::Invite {
                by,
                invite_id,
                email,
                email_index,
                role,
                token,
                expires_at,
                mail,
                at,
            } => {
                let invite = PendingInvite {
                    email_index: *email_index,
                    role: *role,
                    token: token.clone(),
                    expires_at: *expires_at,
                };
                self.invite(*by, *invite_id, invite, (email, mail), *at)
            }
            C::RevokeInvite { by, invite_id, at } => self.revoke_invite(*by, *invite_id, *at),
            C::AcceptInvite {
                invite_id,
                token,
                user,
                user_email,
                user_email_index,
                max_members,
                at,
            } => self.accept_invite(
                *invite_id,
                token,
                *user,
                (user_email, *user_email_index),
                *max_members,
                *at,
            ),
            C::ChangeRole { by, user, role, at } => self.change_role(*by, *user, *role, *at),
            C::RemoveMember { by, user, at } => self.remove_member(*by, *user, *at),
            C::CreateApiKey {
                by,
                key_id,
                name,
                scope,
                secret,
                max_keys,
                at,
            } => self.create_api_key(*by, *key_id, (name, *scope, secret), *max_keys, *at),
            C::RevokeApiKey { by, key_id, at } => self.revoke_api_key(*by, *key_id, *at),
        }
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
                by,
                ..
            } => {
                self.api_keys.insert(
                    *key_id,
                    ApiKeyGrant {
                        scope: *scope,
                        secret: secret.clone(),
                        revoked: false,
                        created_by: *by,
                    },
                );
            }
            E::ApiKeyRevoked { key_id, .. } => {
                if let Some(k) = self.api_keys.get_mut(key_id) {
                    k.revoked = true;
                }
            }
            E::InviteMailQueued { .. } => {}
        }
    }
}

//! Invites: sent to a (sealed) e-mail address with a role, revoked, or accepted once by the
//! user who proves that address before they expire.

use super::{AccessError, AccessEvent, Accessor, MAX_MEMBERS, Role, TenantAccess};
use crate::ids::{InviteId, UserId};
use crate::mail::QueuedMail;
use crate::personal_data::Sealed;
use crate::plan::{Limit, LimitKey};
use crate::user::SecretHash;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Most invites pending at once.
pub const MAX_PENDING_INVITES: usize = 100;

/// An invite waiting to be accepted: to whom (the blind index of the address), as what, and
/// the hash of its token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingInvite {
    pub email_index: Uuid,
    pub role: Role,
    pub token: SecretHash,
    pub expires_at: DateTime<Utc>,
}

impl TenantAccess {
    pub(super) fn invite(
        &self,
        by: Accessor,
        invite_id: InviteId,
        invite: PendingInvite,
        (email, mail): (&Sealed, &QueuedMail),
        at: DateTime<Utc>,
    ) -> Result<Vec<AccessEvent>, AccessError> {
        self.may_manage(by, Role::Viewer, invite.role)?;
        if self.invites.contains_key(&invite_id) {
            return Ok(vec![]);
        }
        let pending = self.invites.values().filter(|i| i.expires_at > at).count();
        if pending >= MAX_PENDING_INVITES {
            return Err(AccessError::LimitReached(MAX_PENDING_INVITES));
        }
        Ok(vec![
            AccessEvent::MemberInvited {
                invite_id,
                email: email.clone(),
                email_index: invite.email_index,
                role: invite.role,
                token: invite.token,
                expires_at: invite.expires_at,
                by,
                at,
            },
            AccessEvent::InviteMailQueued {
                mail: mail.clone(),
                at,
            },
        ])
    }

    pub(super) fn revoke_invite(
        &self,
        by: Accessor,
        invite_id: InviteId,
        at: DateTime<Utc>,
    ) -> Result<Vec<AccessEvent>, AccessError> {
        let invite = self.invites.get(&invite_id);
        let role = invite.map_or(Role::Viewer, |i| i.role);
        self.may_manage(by, Role::Viewer, role)?;
        if invite.is_none() {
            // Not a token problem: the id names nothing here (as another tenant's invite).
            return Err(AccessError::NoSuchInvite);
        }
        Ok(vec![AccessEvent::InviteRevoked { invite_id, at }])
    }

    /// `user` proved the address the invite went to (its verified e-mail's blind index).
    pub(super) fn accept_invite(
        &self,
        invite_id: InviteId,
        token: &SecretHash,
        user: UserId,
        (user_email, user_email_index): (&Sealed, Uuid),
        max_members: Limit,
        at: DateTime<Utc>,
    ) -> Result<Vec<AccessEvent>, AccessError> {
        let Some(invite) = self.invites.get(&invite_id) else {
            return Err(AccessError::InvalidInvite);
        };
        if &invite.token != token || at >= invite.expires_at {
            return Err(AccessError::InvalidInvite);
        }
        if invite.email_index != user_email_index {
            return Err(AccessError::InviteForAnotherEmail);
        }
        if self.members.contains_key(&user) {
            return Err(AccessError::AlreadyMember);
        }
        if self.members.len() >= MAX_MEMBERS {
            return Err(AccessError::LimitReached(MAX_MEMBERS));
        }
        let used = self.members.len() as u64;
        if !max_members.allows(used, 1) {
            return Err(AccessError::PlanLimitReached {
                key: LimitKey::Members,
                limit: max_members.value().unwrap_or(u64::MAX),
                used,
            });
        }
        Ok(vec![AccessEvent::MemberAdded {
            user_id: user,
            email: user_email.clone(),
            role: invite.role,
            invite_id: Some(invite_id),
            at,
        }])
    }
}

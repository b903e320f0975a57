//! What may be asked of a tenant's access list. Every command but `Found` and `AcceptInvite`
//! names who acts, and is checked against that accessor's role.

use super::{Accessor, ApiKeyScope, Role};
use crate::ids::{ApiKeyId, InviteId, UserId};
use crate::mail::QueuedMail;
use crate::personal_data::Sealed;
use crate::plan::Limit;
use crate::user::SecretHash;
use chrono::{DateTime, Utc};
use uuid::Uuid;

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
        /// The invite's mail (carrying the token).
        mail: QueuedMail,
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
        /// The tenant's plan limit on members (the use case reads it from the subscription).
        max_members: Limit,
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
        /// The tenant's plan limit on API keys.
        max_keys: Limit,
        at: DateTime<Utc>,
    },
    RevokeApiKey {
        by: Accessor,
        key_id: ApiKeyId,
        at: DateTime<Utc>,
    },
}

//! The facts stored on a tenant's access stream. Their stored shape is pinned by the golden
//! files in `domain/tests/golden/access`: change one only with a new schema version and an
//! upcaster.

use super::{Accessor, ApiKeyScope, Role};
use crate::ids::{ApiKeyId, InviteId, UserId};
use crate::mail::QueuedMail;
use crate::personal_data::Sealed;
use crate::user::SecretHash;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
    /// The invite's mail, queued for the outbox (`crate::mail`) with the invite.
    InviteMailQueued { mail: QueuedMail, at: DateTime<Utc> },
}

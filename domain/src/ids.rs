//! Identifier newtypes. Ids never cross a crate boundary as a bare `Uuid` or `String`.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps an existing UUID (for example one read back from storage).
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// A fresh, time-ordered id (UUIDv7). Called at the edges, never inside `decide`.
            pub fn new_v7() -> Self {
                Self(Uuid::now_v7())
            }

            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A tenant: the unit of isolation.
    TenantId
);
uuid_id!(
    /// The id of one stored event (UUIDv7, so ids sort roughly by creation time).
    EventId
);
uuid_id!(
    /// The id of a command; appends keyed by it are idempotent.
    CommandId
);
uuid_id!(
    /// Groups every command and event caused by one outside request.
    CorrelationId
);
uuid_id!(
    /// A platform user.
    UserId
);
uuid_id!(
    /// A tenant API key.
    ApiKeyId
);
uuid_id!(
    /// A logged-in session of a user.
    SessionId
);
uuid_id!(
    /// An invitation to join a tenant.
    InviteId
);
uuid_id!(
    /// Whose personal data a key protects (a user, or an invitee who is not a user yet).
    SubjectId
);

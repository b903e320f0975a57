//! The bearer forms of access secrets: an invite token `<tenant>.<invite>.<secret>` and an
//! API key `tk1.<tenant>.<key>.<secret>`. Written and read here only; the secret's hash is
//! what the events hold.

use crate::ids::{ApiKeyId, InviteId, TenantId};
use uuid::Uuid;

/// The prefix that tells an API key from a session token.
pub const API_KEY_PREFIX: &str = "tk1.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the token is malformed")]
pub struct MalformedToken;

/// An invite's token, as mailed to the invitee.
#[derive(Clone, PartialEq, Eq)]
pub struct InviteToken {
    pub tenant: TenantId,
    pub invite: InviteId,
    pub secret: String,
}

impl InviteToken {
    pub fn parse(token: &str) -> Result<Self, MalformedToken> {
        let mut parts = token.trim().splitn(3, '.');
        let (Some(tenant), Some(invite), Some(secret)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(MalformedToken);
        };
        Ok(Self {
            tenant: TenantId::from_uuid(Uuid::parse_str(tenant).map_err(|_| MalformedToken)?),
            invite: InviteId::from_uuid(Uuid::parse_str(invite).map_err(|_| MalformedToken)?),
            secret: secret.to_owned(),
        })
    }

    pub fn to_text(&self) -> String {
        format!(
            "{}.{}.{}",
            self.tenant.as_uuid().simple(),
            self.invite.as_uuid().simple(),
            self.secret
        )
    }
}

impl std::fmt::Debug for InviteToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InviteToken")
            .field("tenant", &self.tenant)
            .field("invite", &self.invite)
            .finish_non_exhaustive()
    }
}

/// An API key as its holder sends it (`Authorization: Bearer tk1....`).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyToken {
    pub tenant: TenantId,
    pub key: ApiKeyId,
    pub secret: String,
}

impl ApiKeyToken {
    pub fn parse(token: &str) -> Result<Self, MalformedToken> {
        let rest = token.strip_prefix(API_KEY_PREFIX).ok_or(MalformedToken)?;
        let mut parts = rest.splitn(3, '.');
        let (Some(tenant), Some(key), Some(secret)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(MalformedToken);
        };
        Ok(Self {
            tenant: TenantId::from_uuid(Uuid::parse_str(tenant).map_err(|_| MalformedToken)?),
            key: ApiKeyId::from_uuid(Uuid::parse_str(key).map_err(|_| MalformedToken)?),
            secret: secret.to_owned(),
        })
    }

    pub fn to_text(&self) -> String {
        format!(
            "{API_KEY_PREFIX}{}.{}.{}",
            self.tenant.as_uuid().simple(),
            self.key.as_uuid().simple(),
            self.secret
        )
    }
}

impl std::fmt::Debug for ApiKeyToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyToken")
            .field("tenant", &self.tenant)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_malformed_ones_are_refused() {
        let invite = InviteToken {
            tenant: TenantId::new_v7(),
            invite: InviteId::new_v7(),
            secret: "s3cr.et".into(),
        };
        assert_eq!(InviteToken::parse(&invite.to_text()), Ok(invite));
        let key = ApiKeyToken {
            tenant: TenantId::new_v7(),
            key: ApiKeyId::new_v7(),
            secret: "abc".into(),
        };
        assert!(key.to_text().starts_with(API_KEY_PREFIX));
        assert_eq!(ApiKeyToken::parse(&key.to_text()), Ok(key));
        for bad in ["", "a.b", "x.y.z", "tk1.a.b.c"] {
            assert_eq!(InviteToken::parse(bad), Err(MalformedToken), "{bad}");
            assert_eq!(ApiKeyToken::parse(bad), Err(MalformedToken), "{bad}");
        }
        let secret = InviteToken {
            tenant: TenantId::new_v7(),
            invite: InviteId::new_v7(),
            secret: "hidden".into(),
        };
        assert!(
            !format!("{secret:?}").contains("hidden"),
            "Debug hides the secret"
        );
    }
}

//! The bearer form of a user's one-time token (verification, password reset):
//! `<user>.<secret>`, bound to its user so a token can only ever act on one account. The
//! events hold the secret's hash.

use crate::ids::UserId;
use uuid::Uuid;

#[derive(Clone, PartialEq, Eq)]
pub struct UserToken {
    pub user: UserId,
    pub secret: String,
}

impl UserToken {
    /// `None` for anything that is not `<uuid>.<secret>`.
    pub fn parse(token: &str) -> Option<Self> {
        let (user, secret) = token.trim().split_once('.')?;
        Some(Self {
            user: UserId::from_uuid(Uuid::parse_str(user).ok()?),
            secret: secret.to_owned(),
        })
    }

    pub fn to_text(&self) -> String {
        format!("{}.{}", self.user.as_uuid().simple(), self.secret)
    }
}

impl std::fmt::Debug for UserToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserToken")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_token_round_trips_and_hides_its_secret() {
        let token = UserToken {
            user: UserId::new_v7(),
            secret: "s.e.c".into(),
        };
        assert_eq!(UserToken::parse(&token.to_text()), Some(token.clone()));
        assert!(!format!("{token:?}").contains("s.e.c"));
        for bad in ["", "nodot", "not-a-uuid.secret"] {
            assert_eq!(UserToken::parse(bad), None, "{bad}");
        }
    }
}

//! Session tokens: `ses1.<claims>.<signature>`, HMAC-SHA256 over the claims (user, session,
//! expiry) with a key derived from the master key. A token proves who it was issued to and
//! until when; whether the session is still live (not logged out, password unchanged) is
//! checked against the user's state on every request, so revocation takes effect at once.

use super::MasterKey;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use domain::ids::{SessionId, UserId};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

const PREFIX: &str = "ses1";

use domain::session_token::SessionTokens;
pub use domain::session_token::{SessionClaims, TokenError};

#[derive(Clone)]
pub struct SessionSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for SessionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSigner(<redacted>)")
    }
}

impl SessionSigner {
    pub fn new(master: &MasterKey) -> Self {
        Self {
            key: master.derive("session-tokens"),
        }
    }

    fn mac(&self, claims: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(claims);
        mac
    }

    fn sign_claims(&self, claims: &SessionClaims) -> String {
        let mut bytes = Vec::with_capacity(40);
        bytes.extend_from_slice(claims.user.as_uuid().as_bytes());
        bytes.extend_from_slice(claims.session.as_uuid().as_bytes());
        bytes.extend_from_slice(&claims.expires_at.timestamp().to_be_bytes());
        let signature = self.mac(&bytes).finalize().into_bytes();
        format!(
            "{PREFIX}.{}.{}",
            URL_SAFE_NO_PAD.encode(&bytes),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    fn verify_token(&self, token: &str, now: DateTime<Utc>) -> Result<SessionClaims, TokenError> {
        let mut parts = token.split('.');
        let (Some(PREFIX), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let claims = URL_SAFE_NO_PAD
            .decode(claims)
            .map_err(|_| TokenError::Malformed)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        if claims.len() != 40 {
            return Err(TokenError::Malformed);
        }
        self.mac(&claims)
            .verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;
        let uuid = |range: std::ops::Range<usize>| {
            Uuid::from_slice(&claims[range]).map_err(|_| TokenError::Malformed)
        };
        let expires: [u8; 8] = claims[32..40]
            .try_into()
            .map_err(|_| TokenError::Malformed)?;
        let expires_at = DateTime::from_timestamp(i64::from_be_bytes(expires), 0)
            .ok_or(TokenError::Malformed)?;
        if now >= expires_at {
            return Err(TokenError::Expired);
        }
        Ok(SessionClaims {
            user: UserId::from_uuid(uuid(0..16)?),
            session: SessionId::from_uuid(uuid(16..32)?),
            expires_at,
        })
    }
}

impl SessionTokens for SessionSigner {
    fn sign(&self, claims: &SessionClaims) -> String {
        self.sign_claims(claims)
    }

    fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<SessionClaims, TokenError> {
        self.verify_token(token, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn tokens_verify_until_they_expire_and_not_once_tampered() {
        let signer = SessionSigner::new(&MasterKey::generate());
        let now = Utc::now();
        let claims = SessionClaims {
            user: UserId::new_v7(),
            session: SessionId::new_v7(),
            expires_at: DateTime::from_timestamp(now.timestamp() + 3600, 0).expect("time"),
        };
        let token = signer.sign(&claims);
        assert_eq!(signer.verify(&token, now), Ok(claims));
        assert_eq!(
            signer.verify(&token, now + Duration::hours(2)),
            Err(TokenError::Expired)
        );
        let other = SessionSigner::new(&MasterKey::generate());
        assert_eq!(other.verify(&token, now), Err(TokenError::BadSignature));
        let mut tampered = token.clone().into_bytes();
        tampered[8] = if tampered[8] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("ascii");
        assert!(signer.verify(&tampered, now).is_err());
        assert_eq!(signer.verify("nonsense", now), Err(TokenError::Malformed));
    }
}

//! Password hashes (argon2id, PHC strings) and one-time tokens (random, stored as SHA-256).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::user::SecretHash;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// argon2id with OWASP's minimum (19 MiB, 2 passes, 1 lane): ~20 ms here.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None)
        .unwrap_or_else(|_| unreachable!("constant parameters are valid"));
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub fn hash_password(password: &str) -> SecretHash {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt =
        SaltString::encode_b64(&salt).unwrap_or_else(|_| unreachable!("16 bytes always encode"));
    let hash = argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_else(|_| unreachable!("hashing with valid parameters cannot fail"));
    SecretHash::new(hash)
}

/// Whether `password` matches `hash` (false for a malformed hash).
pub fn password_matches(password: &str, hash: &SecretHash) -> bool {
    PasswordHash::new(hash.as_str()).is_ok_and(|parsed| {
        argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A fresh random token (32 bytes, base64url).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// How a token is stored: its SHA-256 (tokens are random, so no salt or stretching is needed).
pub fn hash_token(token: &str) -> SecretHash {
    let digest = Sha256::digest(token.as_bytes());
    SecretHash::new(URL_SAFE_NO_PAD.encode(digest))
}

/// Compares in constant time.
pub fn token_matches(token: &str, hash: &SecretHash) -> bool {
    let given = hash_token(token);
    let (a, b) = (given.as_str().as_bytes(), hash.as_str().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `Credentials` port: argon2id off the async threads, random tokens stored as SHA-256.
#[derive(Debug, Clone, Copy, Default)]
pub struct Argon2Credentials;

#[async_trait::async_trait]
impl domain::credentials::Credentials for Argon2Credentials {
    async fn hash_password(
        &self,
        password: &str,
    ) -> Result<SecretHash, domain::credentials::CredentialsError> {
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|e| domain::credentials::CredentialsError(e.to_string()))
    }

    async fn password_matches(&self, password: &str, hash: &SecretHash) -> bool {
        let (password, hash) = (password.to_owned(), hash.clone());
        tokio::task::spawn_blocking(move || password_matches(&password, &hash))
            .await
            .unwrap_or(false)
    }

    async fn decoy_check(&self, password: &str) {
        static DECOY: std::sync::OnceLock<SecretHash> = std::sync::OnceLock::new();
        let decoy = DECOY
            .get_or_init(|| hash_password("decoy password that never matches"))
            .clone();
        self.password_matches(password, &decoy).await;
    }

    fn new_token(&self) -> String {
        new_token()
    }

    fn hash_token(&self, token: &str) -> SecretHash {
        hash_token(token)
    }

    fn token_matches(&self, token: &str, hash: &SecretHash) -> bool {
        token_matches(token, hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let hash = hash_password("correct horse battery");
        assert!(hash.as_str().starts_with("$argon2id$"));
        assert!(password_matches("correct horse battery", &hash));
        assert!(!password_matches("correct horse batterz", &hash));
        assert!(!password_matches("x", &SecretHash::new("garbage".into())));
        assert_ne!(hash, hash_password("correct horse battery"), "salted");
    }

    #[test]
    fn tokens_are_random_and_match_their_hash() {
        let token = new_token();
        assert_ne!(token, new_token());
        assert!(token_matches(&token, &hash_token(&token)));
        assert!(!token_matches(&new_token(), &hash_token(&token)));
    }
}

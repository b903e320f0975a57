//! Cryptography: the master key, per-subject keys for personal data (crypto-shredding),
//! password hashing, one-time tokens, signed session tokens and TOTP.

mod master_key;
mod secrets;
mod session_token;
mod subject_keys;
mod totp;

pub use master_key::{KeySource, MasterKey, MasterKeyError};
pub use secrets::{
    Argon2Credentials, hash_password, hash_token, new_token, password_matches, token_matches,
};
pub use session_token::{SessionClaims, SessionSigner, TokenError};
pub use subject_keys::SubjectKeyVault;
pub use totp::{Totp, TotpCodes};

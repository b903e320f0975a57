//! The per-subject key vault: one AES-256-GCM key per data subject, stored wrapped by the
//! master key in `subject_keys`. Sealed values are `pd1:<base64(nonce | ciphertext)>` with
//! the subject's id as associated data, so a value copied to another subject fails to open.

use super::MasterKey;
use crate::database::Database;
use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use domain::ids::SubjectId;
use domain::personal_data::{PersonalData, PersonalDataError, Sealed};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

const PREFIX: &str = "pd1:";
/// How long a process trusts its cached copy of a key (a subject forgotten by another
/// process stops opening here after at most this long).
const CACHE_FOR: Duration = Duration::from_secs(30);

type CachedKey = (Option<[u8; 32]>, Instant);

pub struct SubjectKeyVault {
    db: Database,
    wrapping: Aes256Gcm,
    index_key: [u8; 32],
    cache: Mutex<HashMap<SubjectId, CachedKey>>,
}

impl std::fmt::Debug for SubjectKeyVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectKeyVault").finish_non_exhaustive()
    }
}

fn store_error(e: sqlx::Error) -> PersonalDataError {
    PersonalDataError::Store(e.to_string())
}

fn seal_with(cipher: &Aes256Gcm, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let ciphertext = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .unwrap_or_else(|_| unreachable!("AES-GCM encryption of a short message cannot fail"));
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ciphertext);
    out
}

fn open_with(cipher: &Aes256Gcm, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, PersonalDataError> {
    if sealed.len() < 12 {
        return Err(PersonalDataError::Damaged);
    }
    let (nonce, ciphertext) = sealed.split_at(12);
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| PersonalDataError::Damaged)
}

type KeyRow = (Option<Vec<u8>>,);

impl SubjectKeyVault {
    pub fn new(db: Database, master: &MasterKey) -> Self {
        Self {
            db,
            wrapping: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(
                &master.derive("subject-key-wrapping"),
            )),
            index_key: master.derive("blind-index"),
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, subject: SubjectId) -> Option<Option<[u8; 32]>> {
        let cache = self.cache.lock().ok()?;
        let (key, at) = cache.get(&subject)?;
        (at.elapsed() < CACHE_FOR).then_some(*key)
    }

    fn remember(&self, subject: SubjectId, key: Option<[u8; 32]>) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() > 100_000 {
                cache.clear();
            }
            cache.insert(subject, (key, Instant::now()));
        }
    }

    /// The subject's key: `Ok(None)` when forgotten or (with `create` false) never made.
    async fn key(
        &self,
        subject: SubjectId,
        create: bool,
    ) -> Result<Option<[u8; 32]>, PersonalDataError> {
        if let Some(key) = self.cached(subject)
            && (key.is_some() || !create)
        {
            return Ok(key);
        }
        let id = subject.as_uuid();
        let select = "SELECT wrapped_key FROM subject_keys WHERE subject_id = $1";
        let insert = "INSERT INTO subject_keys (subject_id, wrapped_key, created_at) VALUES ($1, $2, $3) \
                      ON CONFLICT (subject_id) DO NOTHING";
        let fresh = || {
            let key = Aes256Gcm::generate_key(&mut OsRng);
            seal_with(&self.wrapping, id.as_bytes(), key.as_slice())
        };
        let row: Option<KeyRow> = match &self.db {
            Database::Postgres(pool) => {
                if create {
                    sqlx::query(insert)
                        .bind(id)
                        .bind(fresh())
                        .bind(chrono::Utc::now())
                        .execute(pool)
                        .await
                        .map_err(store_error)?;
                }
                sqlx::query_as(select)
                    .bind(id)
                    .fetch_optional(pool)
                    .await
                    .map_err(store_error)?
            }
            Database::Sqlite(db) => {
                if create {
                    sqlx::query(insert)
                        .bind(id)
                        .bind(fresh())
                        .bind(chrono::Utc::now())
                        .execute(&db.writer)
                        .await
                        .map_err(store_error)?;
                    sqlx::query_as(select)
                        .bind(id)
                        .fetch_optional(&db.writer)
                        .await
                        .map_err(store_error)?
                } else {
                    sqlx::query_as(select)
                        .bind(id)
                        .fetch_optional(&db.reader)
                        .await
                        .map_err(store_error)?
                }
            }
        };
        let key = match row {
            None => return Ok(None),
            Some((None,)) => None,
            Some((Some(wrapped),)) => {
                let key = open_with(&self.wrapping, id.as_bytes(), &wrapped)?;
                Some(key.try_into().map_err(|_| PersonalDataError::Damaged)?)
            }
        };
        self.remember(subject, key);
        Ok(key)
    }
}

#[async_trait]
impl PersonalData for SubjectKeyVault {
    async fn seal(&self, subject: SubjectId, plaintext: &str) -> Result<Sealed, PersonalDataError> {
        let key = self
            .key(subject, true)
            .await?
            .ok_or(PersonalDataError::Forgotten)?;
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key));
        let sealed = seal_with(&cipher, subject.as_uuid().as_bytes(), plaintext.as_bytes());
        Ok(Sealed::from_sealed_text(format!(
            "{PREFIX}{}",
            STANDARD.encode(sealed)
        )))
    }

    async fn open(
        &self,
        subject: SubjectId,
        sealed: &Sealed,
    ) -> Result<Option<String>, PersonalDataError> {
        let bytes = sealed
            .as_str()
            .strip_prefix(PREFIX)
            .and_then(|b| STANDARD.decode(b).ok())
            .ok_or(PersonalDataError::Damaged)?;
        let Some(key) = self.key(subject, false).await? else {
            return Ok(None);
        };
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key));
        let plain = open_with(&cipher, subject.as_uuid().as_bytes(), &bytes)?;
        String::from_utf8(plain)
            .map(Some)
            .map_err(|_| PersonalDataError::Damaged)
    }

    async fn forget(&self, subject: SubjectId) -> Result<(), PersonalDataError> {
        let id = subject.as_uuid();
        let now = chrono::Utc::now();
        let sql = "INSERT INTO subject_keys (subject_id, wrapped_key, created_at, forgotten_at) \
                   VALUES ($1, NULL, $2, $2) \
                   ON CONFLICT (subject_id) DO UPDATE SET wrapped_key = NULL, \
                   forgotten_at = COALESCE(subject_keys.forgotten_at, excluded.forgotten_at)";
        match &self.db {
            Database::Postgres(pool) => sqlx::query(sql)
                .bind(id)
                .bind(now)
                .execute(pool)
                .await
                .map(drop),
            Database::Sqlite(db) => sqlx::query(sql)
                .bind(id)
                .bind(now)
                .execute(&db.writer)
                .await
                .map(drop),
        }
        .map_err(store_error)?;
        self.remember(subject, None);
        Ok(())
    }

    fn blind_index(&self, purpose: &str, value: &str) -> Uuid {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.index_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }
}

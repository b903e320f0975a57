//! The master key: 32 bytes that wrap every per-subject key and from which the signing and
//! blind-index keys are derived. From `TENANTRY_MASTER_KEY` (base64), or a key file; with
//! neither, one is generated into the key file with owner-only permissions.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::path::Path;

#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("the master key must be 32 bytes, base64-encoded")]
    Malformed,
    #[error("key file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

/// Where the key came from, for the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    Configured,
    File,
    Generated,
}

impl MasterKey {
    pub fn from_base64(text: &str) -> Result<Self, MasterKeyError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| MasterKeyError::Malformed)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| MasterKeyError::Malformed)?;
        Ok(Self(key))
    }

    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self(key)
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// The configured key, else the key file's, else a new one written to the key file.
    pub fn load(
        configured: Option<&str>,
        file: &Path,
    ) -> Result<(Self, KeySource), MasterKeyError> {
        if let Some(text) = configured.filter(|t| !t.trim().is_empty()) {
            return Ok((Self::from_base64(text)?, KeySource::Configured));
        }
        let io = |source| MasterKeyError::File {
            path: file.display().to_string(),
            source,
        };
        match std::fs::read_to_string(file) {
            Ok(text) => Ok((Self::from_base64(&text)?, KeySource::File)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                write_private(file, key.to_base64().as_bytes()).map_err(io)?;
                Ok((key, KeySource::Generated))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// A key for one purpose, derived so that no two uses share a key.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"tenantry/");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// Creates `path` readable and writable by its owner only; refuses to overwrite.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_written_owner_only_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("tenantry-key-{}", uuid::Uuid::now_v7()));
        let file = dir.join("master.key");
        let (first, source) = MasterKey::load(None, &file).expect("generated");
        assert_eq!(source, KeySource::Generated);
        let mode = std::fs::metadata(&file)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, source) = MasterKey::load(None, &file).expect("read back");
        assert_eq!(source, KeySource::File);
        assert_eq!(first.derive("x"), again.derive("x"));
        assert_ne!(first.derive("x"), first.derive("y"));
        assert!(matches!(
            MasterKey::load(Some("c2hvcnQ="), &file),
            Err(MasterKeyError::Malformed)
        ));
        assert_eq!(format!("{first:?}"), "MasterKey(<redacted>)");
        let _ = std::fs::remove_dir_all(dir);
    }
}

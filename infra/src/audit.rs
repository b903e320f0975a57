//! The audit area's adapters: the platform's Ed25519 digest signing key (derived from the
//! master key, so every server of a deployment signs with the same key and nothing new must
//! be kept), signature verification, and export targets (a local file; S3 in
//! [`crate::s3`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use domain::audit::export::{
    Digest, DigestSigner, ExportFormat, ExportTarget, ExportWriter, TargetError,
};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// What the signing key is derived for (a new purpose is a new key).
const PURPOSE: &str = "audit-digest-signing/v1";

/// The platform's digest signer.
pub struct Ed25519Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Ed25519Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ed25519Signer")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl Ed25519Signer {
    pub fn new(master: &crate::crypto::MasterKey) -> Self {
        Self {
            key: SigningKey::from_bytes(&master.derive(PURPOSE)),
        }
    }
}

impl DigestSigner for Ed25519Signer {
    fn public_key(&self) -> String {
        STANDARD.encode(self.key.verifying_key().as_bytes())
    }

    fn sign(&self, message: &[u8]) -> String {
        STANDARD.encode(self.key.sign(message).to_bytes())
    }
}

/// Why a digest's signature does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the public key is not a base64 Ed25519 key")]
    BadKey,
    #[error("the digest is signed by another key ({0}) than the one given")]
    OtherKey(String),
    #[error("the digest carries no signature")]
    Unsigned,
    #[error("the digest's signature does not verify: the digest was altered")]
    Invalid,
}

/// Checks `digest`'s signature against `public_key` (base64).
pub fn verify_signature(digest: &Digest, public_key: &str) -> Result<(), SignatureError> {
    let bytes: [u8; 32] = STANDARD
        .decode(public_key.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(SignatureError::BadKey)?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| SignatureError::BadKey)?;
    if digest.public_key.trim() != public_key.trim() {
        return Err(SignatureError::OtherKey(digest.public_key.clone()));
    }
    let signature: [u8; 64] = digest
        .signature
        .as_deref()
        .ok_or(SignatureError::Unsigned)
        .and_then(|s| {
            STANDARD
                .decode(s)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or(SignatureError::Invalid)
        })?;
    key.verify(&digest.signed_bytes(), &Signature::from_bytes(&signature))
        .map_err(|_| SignatureError::Invalid)
}

/// An export to a local file: the entries at `path`, the digest beside it. Written to a
/// temporary name and renamed when complete, so a reader never sees half a file.
#[derive(Debug, Clone)]
pub struct FileTarget {
    path: PathBuf,
}

impl FileTarget {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Where the object with `suffix` goes.
    pub fn path_of(&self, suffix: &str) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    }
}

struct FileWriter {
    file: tokio::io::BufWriter<tokio::fs::File>,
    partial: PathBuf,
    path: PathBuf,
}

fn io_error(what: &Path, e: &std::io::Error) -> TargetError {
    TargetError(format!("{}: {e}", what.display()))
}

#[async_trait::async_trait]
impl ExportTarget for FileTarget {
    async fn open(&self, suffix: &str) -> Result<Box<dyn ExportWriter>, TargetError> {
        let path = self.path_of(suffix);
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| io_error(dir, &e))?;
        }
        let file = tokio::fs::File::create(&partial)
            .await
            .map_err(|e| io_error(&partial, &e))?;
        Ok(Box::new(FileWriter {
            file: tokio::io::BufWriter::with_capacity(1 << 20, file),
            partial,
            path,
        }))
    }
}

#[async_trait::async_trait]
impl ExportWriter for FileWriter {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), TargetError> {
        self.file
            .write_all(bytes)
            .await
            .map_err(|e| io_error(&self.partial, &e))
    }

    async fn finish(mut self: Box<Self>) -> Result<String, TargetError> {
        self.file
            .flush()
            .await
            .map_err(|e| io_error(&self.partial, &e))?;
        self.file
            .get_ref()
            .sync_all()
            .await
            .map_err(|e| io_error(&self.partial, &e))?;
        tokio::fs::rename(&self.partial, &self.path)
            .await
            .map_err(|e| io_error(&self.path, &e))?;
        let absolute = std::path::absolute(&self.path).unwrap_or_else(|_| self.path.clone());
        Ok(format!("file://{}", absolute.display()))
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use chrono::Utc;
    use uuid::Uuid;

    fn digest(signer: &Ed25519Signer) -> Digest {
        let mut d = Digest {
            version: Digest::VERSION,
            tenant_id: Uuid::from_u128(1),
            format: ExportFormat::Jsonl,
            from: None,
            to: None,
            first_seq: Some(1),
            last_seq: Some(2),
            first_position: Some(5),
            last_position: Some(9),
            entry_count: 2,
            file_sha256: "ab".repeat(32),
            chain_prev: domain::audit::GENESIS.into(),
            chain_head: "cd".repeat(32),
            previous_digest_sha256: None,
            exported_at: Utc::now(),
            public_key: signer.public_key(),
            signature: None,
        };
        d.signature = Some(signer.sign(&d.signed_bytes()));
        d
    }

    #[test]
    fn a_signed_digest_verifies_and_any_change_to_it_does_not() {
        let master = crate::crypto::MasterKey::generate();
        let signer = Ed25519Signer::new(&master);
        let d = digest(&signer);
        assert_eq!(verify_signature(&d, &signer.public_key()), Ok(()));
        // Read back from its file: the same bytes are signed.
        let read: Digest = serde_json::from_slice(&d.to_file()).unwrap();
        assert_eq!(verify_signature(&read, &signer.public_key()), Ok(()));
        let mut changed = d.clone();
        changed.entry_count = 3;
        assert_eq!(
            verify_signature(&changed, &signer.public_key()),
            Err(SignatureError::Invalid)
        );
        let other = Ed25519Signer::new(&crate::crypto::MasterKey::generate());
        assert!(matches!(
            verify_signature(&d, &other.public_key()),
            Err(SignatureError::OtherKey(_))
        ));
        // The same master key gives the same key (every server signs alike).
        assert_eq!(
            Ed25519Signer::new(&master).public_key(),
            signer.public_key()
        );
    }
}

/// What `verify_export` found.
#[derive(Debug, Clone)]
pub struct Verification {
    pub digest: Digest,
    /// Entries read that held (up to the first bad one).
    pub entries: u64,
    /// Everything wrong, the first bad entry first; empty when the export is intact.
    pub findings: Vec<String>,
}

/// Checks an export file against its digest and the digest against `public_key`: the
/// signature, the file's SHA-256, and the whole chain, entry by entry, streaming the file.
pub async fn verify_export(
    file: &Path,
    digest_file: &Path,
    public_key: &str,
) -> Result<Verification, TargetError> {
    use tokio::io::AsyncReadExt;
    let bytes = tokio::fs::read(digest_file)
        .await
        .map_err(|e| io_error(digest_file, &e))?;
    let digest: Digest = serde_json::from_slice(&bytes)
        .map_err(|e| TargetError(format!("{}: not a digest: {e}", digest_file.display())))?;
    let mut check = domain::audit::export::FileCheck::new(&digest);
    let mut input = tokio::fs::File::open(file)
        .await
        .map_err(|e| io_error(file, &e))?;
    let mut buffer = vec![0; 1 << 20];
    loop {
        let n = input
            .read(&mut buffer)
            .await
            .map_err(|e| io_error(file, &e))?;
        if n == 0 {
            break;
        }
        check.feed(&buffer[..n]);
    }
    let (entries, found) = check.finish();
    let mut findings: Vec<String> = found.iter().map(ToString::to_string).collect();
    if let Err(e) = verify_signature(&digest, public_key) {
        let at = usize::from(matches!(
            found.first(),
            Some(domain::audit::export::Finding::Entry { .. })
        ));
        findings.insert(at, e.to_string());
    }
    Ok(Verification {
        digest,
        entries,
        findings,
    })
}

/// Where the exports the API asks for go: `<dir>/<tenant>/<export id>.<ext>` on this
/// server's disk (downloaded through `GET /audit/exports/...`), or the same names under an
/// S3 prefix when one is configured.
#[derive(Debug, Clone)]
pub struct ExportDestinations {
    pub dir: PathBuf,
    /// The S3 client, bucket and key prefix.
    pub s3: Option<(aws_sdk_s3::Client, String, String)>,
}

impl ExportDestinations {
    /// The relative name of an export's entries object.
    pub fn name(chain: uuid::Uuid, export_id: uuid::Uuid, format: ExportFormat) -> String {
        format!("{chain}/{export_id}.{}", format.extension())
    }

    /// The local file of an export (when exports go to disk).
    pub fn local_file(
        &self,
        chain: uuid::Uuid,
        export_id: uuid::Uuid,
        format: ExportFormat,
    ) -> Option<PathBuf> {
        self.s3
            .is_none()
            .then(|| self.dir.join(Self::name(chain, export_id, format)))
    }
}

impl domain::audit::export::ExportTargets for ExportDestinations {
    fn target(
        &self,
        chain: uuid::Uuid,
        export_id: uuid::Uuid,
        format: ExportFormat,
    ) -> Result<Box<dyn ExportTarget>, TargetError> {
        let name = Self::name(chain, export_id, format);
        Ok(match &self.s3 {
            Some((client, bucket, prefix)) => {
                let key = if prefix.is_empty() || prefix.ends_with('/') {
                    format!("{prefix}{name}")
                } else {
                    format!("{prefix}/{name}")
                };
                Box::new(crate::s3::S3Target::new(client.clone(), bucket, &key))
            }
            None => Box::new(FileTarget::new(self.dir.join(name))),
        })
    }
}

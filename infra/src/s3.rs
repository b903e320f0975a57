//! S3 (and S3-compatible stores) through aws-sdk-s3: the client built from explicit settings
//! (no profile files, no instance metadata), its HTTP client on rustls with ring (the
//! process's one crypto provider), and an export target that streams: parts of [`PART`]
//! bytes uploaded as they fill (multipart), so memory stays bounded whatever the size.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use domain::audit::export::{ExportTarget, ExportWriter, TargetError};

/// Bytes per uploaded part (S3's minimum is 5 MiB for all parts but the last).
pub const PART: usize = 8 << 20;

/// Where and how to reach the store.
#[derive(Clone)]
pub struct S3Settings {
    /// `None`: AWS's own endpoints for the region.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// `bucket` in the path rather than the host name (most S3-compatible stores; moto).
    pub path_style: bool,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret is never printed.
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("path_style", &self.path_style)
            .finish_non_exhaustive()
    }
}

impl S3Settings {
    pub fn client(&self) -> Client {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(http)
            .region(Region::new(self.region.clone()))
            .credentials_provider(Credentials::new(
                &self.access_key_id,
                &self.secret_access_key,
                None,
                None,
                "tenantry",
            ))
            .force_path_style(self.path_style);
        if let Some(endpoint) = &self.endpoint {
            config = config.endpoint_url(endpoint);
        }
        Client::from_conf(config.build())
    }
}

/// `s3://bucket/key` split, or `None` when `url` is not one.
pub fn parse_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then(|| (bucket.to_owned(), key.to_owned()))
}

fn failure(what: &str, e: impl std::fmt::Display) -> TargetError {
    TargetError(format!("S3 {what}: {e}"))
}

/// An export to S3: the entries at `key`, the digest at `key` + `.digest.json`.
#[derive(Debug, Clone)]
pub struct S3Target {
    client: Client,
    bucket: String,
    key: String,
}

impl S3Target {
    pub fn new(client: Client, bucket: &str, key: &str) -> Self {
        Self {
            client,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        }
    }
}

struct S3Writer {
    client: Client,
    bucket: String,
    key: String,
    buffer: Vec<u8>,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
}

impl S3Writer {
    async fn upload_part(&mut self) -> Result<(), TargetError> {
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let created = self
                    .client
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .send()
                    .await
                    .map_err(|e| failure("create multipart upload", DisplayErrorContext(e)))?;
                let id = created
                    .upload_id
                    .ok_or_else(|| failure("create multipart upload", "no upload id"))?;
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = i32::try_from(self.parts.len() + 1).unwrap_or(i32::MAX);
        let body = std::mem::replace(&mut self.buffer, Vec::with_capacity(PART));
        let uploaded = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await;
        match uploaded {
            Ok(part) => {
                self.parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(part.e_tag)
                        .build(),
                );
                Ok(())
            }
            Err(e) => {
                self.abort().await;
                Err(failure("upload part", DisplayErrorContext(e)))
            }
        }
    }

    async fn abort(&mut self) {
        if let Some(id) = self.upload_id.take() {
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(id)
                .send()
                .await;
        }
    }
}

#[async_trait::async_trait]
impl ExportTarget for S3Target {
    async fn open(&self, suffix: &str) -> Result<Box<dyn ExportWriter>, TargetError> {
        Ok(Box::new(S3Writer {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: format!("{}{suffix}", self.key),
            buffer: Vec::with_capacity(PART),
            upload_id: None,
            parts: Vec::new(),
        }))
    }
}

#[async_trait::async_trait]
impl ExportWriter for S3Writer {
    async fn write(&mut self, mut bytes: &[u8]) -> Result<(), TargetError> {
        while !bytes.is_empty() {
            let room = PART - self.buffer.len();
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            self.buffer.extend_from_slice(now);
            bytes = later;
            if self.buffer.len() == PART {
                self.upload_part().await?;
            }
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<String, TargetError> {
        if self.upload_id.is_none() {
            // Small enough for one request.
            let body = std::mem::take(&mut self.buffer);
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| failure("put object", DisplayErrorContext(e)))?;
        } else {
            if !self.buffer.is_empty() {
                self.upload_part().await?;
            }
            let upload_id = self.upload_id.clone().unwrap_or_default();
            let completed = self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(std::mem::take(&mut self.parts)))
                        .build(),
                )
                .send()
                .await;
            if let Err(e) = completed {
                self.abort().await;
                return Err(failure("complete multipart upload", DisplayErrorContext(e)));
            }
        }
        Ok(format!("s3://{}/{}", self.bucket, self.key))
    }
}

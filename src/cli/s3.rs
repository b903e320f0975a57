//! S3 settings shared by the commands that write to S3 (`audit export`), and the export
//! target an `--out` names.

use anyhow::Context;
use domain::audit::export::ExportTarget;

#[derive(Debug, Clone, clap::Args)]
pub struct S3Args {
    /// An S3-compatible endpoint (MinIO, moto, ...); AWS's own when absent.
    #[arg(long, env = "TENANTRY_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// Bucket in the path, not the host name (default with `--s3-endpoint`).
    #[arg(long, env = "TENANTRY_S3_PATH_STYLE")]
    pub s3_path_style: Option<bool>,
}

impl S3Args {
    /// The settings, with credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`
    /// (never from flags: they would show in the process list).
    pub fn settings(&self) -> anyhow::Result<infra::s3::S3Settings> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .with_context(|| format!("S3 needs {name} in the environment"))
        };
        Ok(infra::s3::S3Settings {
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            access_key_id: var("AWS_ACCESS_KEY_ID")?,
            secret_access_key: var("AWS_SECRET_ACCESS_KEY")?,
            path_style: self.s3_path_style.unwrap_or(self.s3_endpoint.is_some()),
        })
    }
}

/// The target `--out` names: `s3://bucket/key` (a key ending in `/` is a prefix, completed
/// with `name`), or a file.
pub async fn target_for(
    out: &str,
    s3: &S3Args,
    name: &str,
) -> anyhow::Result<Box<dyn ExportTarget>> {
    if let Some((bucket, key)) = infra::s3::parse_url(out) {
        let key = if key.is_empty() || key.ends_with('/') {
            format!("{key}{name}")
        } else {
            key
        };
        let client = s3.settings()?.client();
        return Ok(Box::new(infra::s3::S3Target::new(client, &bucket, &key)));
    }
    anyhow::ensure!(
        !out.starts_with("s3://"),
        "{out:?}: an S3 URL is s3://bucket/prefix"
    );
    Ok(Box::new(infra::audit::FileTarget::new(out)))
}

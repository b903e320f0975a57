//! `tenantry audit ...`: export a tenant's audit trail with a signed digest, verify an
//! export, print the platform's public key.

use crate::cli::GlobalArgs;
use crate::wiring;
use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use commands::CommandContext;
use commands::audit::{AuditPorts, ExportRequest, export};
use domain::audit::export::{DigestSigner, ExportFormat, ExportTarget};
use domain::event::Actor;
use domain::ids::TenantId;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;
use uuid::Uuid;

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Exports a tenant's audit trail (the nil id: the platform's) and its signed digest
    /// (written beside it as `<out>.digest.json`).
    Export {
        #[arg(long)]
        tenant: Uuid,
        /// From this time (RFC 3339, or a date: its midnight UTC), inclusive.
        #[arg(long, value_parser = parse_time)]
        from: Option<DateTime<Utc>>,
        /// Up to this time, exclusive.
        #[arg(long, value_parser = parse_time)]
        to: Option<DateTime<Utc>>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: Format,
        /// A file, or `s3://bucket/prefix` (see `--s3-endpoint`).
        #[arg(long)]
        out: String,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        s3: crate::cli::s3::S3Args,
    },
    /// Verifies an export: the digest's signature, the file's hash and every link of the
    /// chain. Names the first bad entry and exits non-zero on any alteration.
    Verify {
        file: PathBuf,
        /// The digest (default: `<file>.digest.json`).
        #[arg(long)]
        digest: Option<PathBuf>,
        /// The platform's public key (base64; `tenantry audit public-key` or GraphQL
        /// `auditPublicKey`). Without it, the key derived from this installation's master key.
        #[arg(long)]
        public_key: Option<String>,
        /// The tenant the export must be of (another tenant's genuine export fails).
        #[arg(long)]
        tenant: Option<Uuid>,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Prints the platform's digest signing public key (base64).
    PublicKey {
        #[command(flatten)]
        key: KeyArgs,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Jsonl,
    Csv,
}

impl From<Format> for ExportFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Jsonl => Self::Jsonl,
            Format::Csv => Self::Csv,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct KeyArgs {
    /// The master key file (the server's `--master-key-file`); `TENANTRY_MASTER_KEY` wins.
    #[arg(
        long,
        env = "TENANTRY_MASTER_KEY_FILE",
        default_value = "data/master.key"
    )]
    pub master_key_file: PathBuf,
}

impl KeyArgs {
    /// The installation's master key; never made here (a new key would sign nothing anyone
    /// knows).
    fn master(&self) -> anyhow::Result<infra::crypto::MasterKey> {
        let configured = std::env::var(wiring::MASTER_KEY_ENV).ok();
        if configured.as_deref().is_some_and(|k| !k.trim().is_empty())
            || self.master_key_file.exists()
        {
            let (key, _) =
                infra::crypto::MasterKey::load(configured.as_deref(), &self.master_key_file)
                    .context("loading the master key")?;
            Ok(key)
        } else {
            anyhow::bail!(
                "no master key at {} and none in {}: pass --public-key, or point --master-key-file at the installation's key",
                self.master_key_file.display(),
                wiring::MASTER_KEY_ENV
            )
        }
    }

    fn signer(&self) -> anyhow::Result<infra::audit::Ed25519Signer> {
        Ok(infra::audit::Ed25519Signer::new(&self.master()?))
    }
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("{text:?} is neither RFC 3339 nor a date (YYYY-MM-DD)"))
}

pub async fn run(global: &GlobalArgs, command: AuditCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    match command {
        AuditCommand::PublicKey { key } => {
            writeln!(out, "{}", key.signer()?.public_key())?;
            Ok(())
        }
        AuditCommand::Verify {
            file,
            digest,
            public_key,
            tenant,
            key,
        } => {
            let public_key = match public_key {
                Some(k) => k,
                None => key.signer()?.public_key(),
            };
            let digest = digest.unwrap_or_else(|| {
                let mut name = file.as_os_str().to_owned();
                name.push(".digest.json");
                PathBuf::from(name)
            });
            let started = Instant::now();
            let mut v = infra::audit::verify_export(&file, &digest, &public_key).await?;
            if let Some(tenant) = tenant
                && v.digest.tenant_id != tenant
            {
                v.findings.insert(
                    0,
                    format!(
                        "the export is of tenant {}, not {tenant}",
                        v.digest.tenant_id
                    ),
                );
            }
            let seconds = started.elapsed().as_secs_f64();
            if v.findings.is_empty() {
                writeln!(
                    out,
                    "OK: {} entries of tenant {} (seq {}..{}, log positions {}..{}), chain head {}, signed by {}; verified in {seconds:.2} s",
                    v.entries,
                    v.digest.tenant_id,
                    v.digest.first_seq.unwrap_or(0),
                    v.digest.last_seq.unwrap_or(0),
                    v.digest.first_position.unwrap_or(0),
                    v.digest.last_position.unwrap_or(0),
                    v.digest.chain_head,
                    v.digest.public_key
                )?;
                Ok(())
            } else {
                writeln!(out, "FAILED: {}", file.display())?;
                for finding in &v.findings {
                    writeln!(out, "  {finding}")?;
                }
                anyhow::bail!("the export does not verify: {}", v.findings[0])
            }
        }
        AuditCommand::Export {
            tenant,
            from,
            to,
            format,
            out: destination,
            key,
            s3,
        } => {
            if let (Some(from), Some(to)) = (from, to) {
                anyhow::ensure!(from < to, "--from must be before --to");
            }
            let master = key.master()?;
            let signer = infra::audit::Ed25519Signer::new(&master);
            let app = wiring::open(global).await?;
            let vault = infra::crypto::SubjectKeyVault::new(app.database.clone(), &master);
            let entries = projections::audit::AuditFromReadModel::new(app.read_db.clone());
            let ctx = CommandContext::new(Actor::system("cli"));
            let request = ExportRequest {
                tenant: (!tenant.is_nil()).then(|| TenantId::from_uuid(tenant)),
                export_id: ctx.new_id("audit-export"),
                format: format.into(),
                from,
                to,
            };
            let name = format!(
                "audit-{tenant}-{}.{}",
                request.export_id,
                request.format.extension()
            );
            let target: Box<dyn ExportTarget> =
                crate::cli::s3::target_for(&destination, &s3, &name).await?;
            let started = Instant::now();
            let terminal = std::io::stderr().is_terminal();
            let last_shown = Mutex::new(Instant::now());
            let progress = |done: u64, total: u64| {
                let mut last = last_shown.lock().unwrap_or_else(|p| p.into_inner());
                if last.elapsed().as_millis() >= 500 || done == total {
                    *last = Instant::now();
                    let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
                    let line = format!("exported {done}/{total} entries ({rate:.0}/s)");
                    if terminal {
                        eprint!("\r{line}");
                    } else {
                        eprintln!("{line}");
                    }
                }
            };
            let exported = export(
                &app.executor,
                AuditPorts {
                    entries: &entries,
                    vault: &vault,
                    signer: &signer,
                },
                &ctx,
                Utc::now(),
                &request,
                target.as_ref(),
                &progress,
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            if terminal {
                eprintln!();
            }
            let d = &exported.digest;
            writeln!(
                out,
                "exported {} entries (seq {}..{}) to {}\ndigest {} (sha256 {})\nchain head {}\nprevious digest {}",
                d.entry_count,
                d.first_seq.unwrap_or(0),
                d.last_seq.unwrap_or(0),
                exported.entries_location,
                exported.digest_location,
                exported.digest_sha256,
                d.chain_head,
                d.previous_digest_sha256.as_deref().unwrap_or("none")
            )?;
            Ok(())
        }
    }
}

//! `tenantry bench audit`: a tenant's trail of `--entries` entries (made by the `audit`
//! projector from synthetic events, on a scratch database), exported to a file and to S3
//! (moto on loopback, when `moto_server` is installed) through `commands::audit::export`
//! (entries/s and MB/s), then the file verified (`infra::audit::verify_export`: signature,
//! file hash, every link). Asserts nothing.

use super::scratch::ScratchArgs;
use chrono::{Duration as Span, Utc};
use commands::audit::{AuditPorts, ExportRequest, export};
use commands::{CommandContext, Executor};
use domain::audit::export::{DigestSigner, ExportFormat, ExportTarget};
use domain::event::{Actor, EventMetadata, Position, RecordedEvent, StreamId, StreamVersion};
use domain::ids::{CorrelationId, EventId, TenantId};
use projections::Projector;
use projections::audit::{AuditFromReadModel, AuditTrail};
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Debug, clap::Args)]
pub struct AuditBenchArgs {
    #[command(flatten)]
    pub databases: ScratchArgs,
    /// Entries in the trail.
    #[arg(long, default_value_t = 1_000_000)]
    pub entries: u64,
    /// Skip the S3 export.
    #[arg(long)]
    pub no_s3: bool,
}

#[expect(clippy::print_stdout, reason = "a benchmark prints its figures")]
fn report(line: &str) {
    println!("{line}");
}

/// `n` events of one tenant, as the log would hand them to the projector.
fn events(tenant: TenantId, from: u64, n: u64, start: chrono::DateTime<Utc>) -> Vec<RecordedEvent> {
    (from..from + n)
        .map(|i| {
            let mut metadata = EventMetadata::by(Actor::system("bench"));
            metadata.correlation_id = Some(CorrelationId::new_v7());
            RecordedEvent {
                event_id: EventId::new_v7(),
                stream: StreamId::for_aggregate("usage_event", Uuid::now_v7()),
                version: StreamVersion(1),
                position: Position(i + 1),
                event_type: "UsageRecorded".into(),
                schema_version: 1,
                tenant_id: Some(tenant),
                payload: serde_json::json!({}),
                metadata,
                recorded_at: start + Span::milliseconds(i64::try_from(i).unwrap_or(0)),
            }
        })
        .collect()
}

fn rate(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// `moto_server` on a free loopback port, if installed; killed when dropped.
struct Moto(std::process::Child, u16);

impl Moto {
    async fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .ok()?
            .port();
        let child = std::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if started.elapsed() > Duration::from_secs(30) {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(Self(child, port))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

pub async fn run(args: AuditBenchArgs) -> anyhow::Result<()> {
    let master = infra::crypto::MasterKey::generate();
    let signer = infra::audit::Ed25519Signer::new(&master);
    report(&format!(
        "audit trail of {} entries; signing key {}",
        args.entries,
        signer.public_key()
    ));
    let moto = if args.no_s3 {
        None
    } else {
        Moto::start().await
    };
    if !args.no_s3 && moto.is_none() {
        report("S3: skipped (moto_server could not be started: pip install 'moto[server]')");
    }
    for scratch in args.databases.create().await? {
        let result = bench(&scratch, &args, &master, &signer, moto.as_ref()).await;
        scratch.remove().await?;
        result?;
    }
    Ok(())
}

async fn bench(
    scratch: &super::scratch::Scratch,
    args: &AuditBenchArgs,
    master: &infra::crypto::MasterKey,
    signer: &infra::audit::Ed25519Signer,
    moto: Option<&Moto>,
) -> anyhow::Result<()> {
    let read_db = scratch.db.read_db();
    let exec = Executor::new(scratch.db.event_store().await?);
    let tenant = TenantId::from_uuid(Uuid::now_v7());
    let projector = AuditTrail;
    {
        let mut tx = read_db.begin().await?;
        projector.create_tables(&mut tx, "").await?;
        tx.commit().await?;
    }
    let started = Instant::now();
    let start = Utc::now() - Span::days(30);
    let batch = 10_000;
    let mut made = 0;
    while made < args.entries {
        let n = batch.min(args.entries - made);
        let mut tx = read_db.begin().await?;
        projector
            .apply(&mut tx, "", &events(tenant, made, n, start))
            .await?;
        tx.commit().await?;
        made += n;
    }
    report(&format!(
        "{}: projected {} entries in {:.1} s ({:.0} entries/s)",
        scratch.backend,
        made,
        started.elapsed().as_secs_f64(),
        rate(made, started.elapsed())
    ));

    let entries = AuditFromReadModel::new(read_db.clone());
    let vault = infra::crypto::SubjectKeyVault::new(scratch.db.clone(), master);
    let dir =
        std::env::temp_dir().join(format!("tenantry-bench-audit-{}", Uuid::now_v7().simple()));
    let file = dir.join("trail.jsonl");
    let ports = AuditPorts {
        entries: &entries,
        vault: &vault,
        signer,
    };
    let request = |export_id| ExportRequest {
        tenant: Some(tenant),
        export_id,
        format: ExportFormat::Jsonl,
        from: None,
        to: None,
    };
    let ctx = CommandContext::new(Actor::system("bench"));

    let mut targets: Vec<(String, Box<dyn ExportTarget>)> = vec![(
        "file".into(),
        Box::new(infra::audit::FileTarget::new(&file)),
    )];
    if let Some(moto) = moto {
        let settings = infra::s3::S3Settings {
            endpoint: Some(format!("http://127.0.0.1:{}", moto.1)),
            region: "us-east-1".into(),
            access_key_id: "bench".into(),
            secret_access_key: "bench-secret".into(),
            path_style: true,
        };
        let client = settings.client();
        let bucket = format!("bench-{}", Uuid::now_v7().simple());
        client.create_bucket().bucket(&bucket).send().await?;
        targets.push((
            "S3 (moto)".into(),
            Box::new(infra::s3::S3Target::new(client, &bucket, "trail.jsonl")),
        ));
    }
    for (name, target) in &targets {
        let started = Instant::now();
        let exported = export(
            &exec,
            ports,
            &ctx,
            Utc::now(),
            &request(Uuid::now_v7()),
            target.as_ref(),
            &|_, _| {},
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let elapsed = started.elapsed();
        let bytes = std::fs::metadata(&file).map_or(0, |m| m.len());
        report(&format!(
            "{}: export to {name}: {} entries, {:.1} MB in {:.2} s: {:.0} entries/s, {:.1} MB/s (peak RSS so far {:.0} MiB)",
            scratch.backend,
            exported.digest.entry_count,
            bytes as f64 / 1e6,
            elapsed.as_secs_f64(),
            rate(exported.digest.entry_count, elapsed),
            bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9),
            peak_rss_mib()
        ));
    }

    let digest = {
        let mut name = file.clone().into_os_string();
        name.push(".digest.json");
        std::path::PathBuf::from(name)
    };
    let started = Instant::now();
    let verified = infra::audit::verify_export(&file, &digest, &signer.public_key()).await?;
    let elapsed = started.elapsed();
    let bytes = std::fs::metadata(&file).map_or(0, |m| m.len());
    report(&format!(
        "{}: verify: {} entries in {:.2} s: {:.0} entries/s, {:.1} MB/s ({}; target 200,000 entries/s)",
        scratch.backend,
        verified.entries,
        elapsed.as_secs_f64(),
        rate(verified.entries, elapsed),
        bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9),
        if verified.findings.is_empty() {
            "intact".to_owned()
        } else {
            format!("FINDINGS: {}", verified.findings.join("; "))
        }
    ));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

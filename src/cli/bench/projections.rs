//! `tenantry bench projections`: a full rebuild of the tenant directory over a generated log
//! (1,000,000 events by default) on SQLite and PostgreSQL, and the round-trip latency of a
//! single-event command with 1 and 16 concurrent clients. Prints figures; asserts nothing.

use super::scratch::{ScratchArgs, percentile};
use commands::{CommandContext, Executor};
use domain::aggregate::encode_event;
use domain::event::{Actor, EventMetadata, NewEvent, StreamId};
use domain::event_store::{AppendRequest, EventStore, ExpectedVersion};
use domain::ids::TenantId;
use domain::tenant::{Slug, Tenant, TenantCommand, TenantEvent, TenantName, TenantSettings};
use infra::database::Database;
use projections::runner::{self, RunnerConfig};
use projections::tenant_directory::TenantDirectory;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct ProjectionBenchArgs {
    #[command(flatten)]
    pub databases: ScratchArgs,
    /// Events in the generated log (10 per tenant).
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Events per rebuild transaction.
    #[arg(long, default_value_t = 5_000)]
    pub batch_size: usize,
    /// Concurrent clients for the command round-trip cases.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16])]
    pub clients: Vec<usize>,
    /// Seconds each command-latency case runs.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
}

#[expect(clippy::print_stdout, reason = "a benchmark prints its figures")]
fn report(line: &str) {
    println!("{line}");
}

pub async fn run(args: ProjectionBenchArgs) -> anyhow::Result<()> {
    report(&format!(
        "tenantry bench projections: {} events ({} tenants), rebuild batches of {}, {} cores",
        args.events,
        args.events / 10,
        args.batch_size,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));
    for scratch in args.databases.create().await? {
        let result = bench(scratch.backend, &scratch.db, &args).await;
        scratch.remove().await?;
        result?;
    }
    Ok(())
}

async fn bench(backend: &str, db: &Database, args: &ProjectionBenchArgs) -> anyhow::Result<()> {
    let store = db.event_store().await?;
    let started = Instant::now();
    generate(&store, args.events).await?;
    report(&format!(
        "{backend:<9} generated {} events in {:.1} s ({:.0} events/s)",
        args.events,
        started.elapsed().as_secs_f64(),
        args.events as f64 / started.elapsed().as_secs_f64()
    ));

    let read = db.read_db();
    let config = RunnerConfig {
        batch_size: args.batch_size.max(1),
        ..RunnerConfig::default()
    };
    let started = Instant::now();
    runner::rebuild(&store, &read, &TenantDirectory, config, |_, _| {}).await?;
    let seconds = started.elapsed().as_secs_f64();
    let rows = TenantDirectory::list(&read, None, u32::MAX).await?.len();
    report(&format!(
        "{backend:<9} rebuild of tenant_directory: {} events in {seconds:.1} s = {:.0} events/s ({rows} rows)",
        args.events,
        args.events as f64 / seconds
    ));

    // Wired as `serve` wires it: with the log watch, so a command's first attempt decides over
    // the cached state without reading the stream.
    let exec = Executor::new(store.clone()).with_snapshots(db.snapshot_store());
    let watch = exec.watch_log();
    for &clients in &args.clients {
        let (p50, p99, per_sec) =
            command_round_trips(&exec, clients, Duration::from_secs_f64(args.seconds)).await?;
        report(&format!(
            "{backend:<9} command round trip, {clients:>2} clients: p50 {:.2} ms, p99 {:.2} ms, {per_sec:.0} commands/s",
            p50.as_secs_f64() * 1000.0,
            p99.as_secs_f64() * 1000.0
        ));
    }
    watch.abort();
    Ok(())
}

/// Tenants with 10 events each (provisioned, then renamed and re-configured), appended in
/// requests of 100 tenants.
async fn generate(store: &Arc<dyn EventStore>, events: usize) -> anyhow::Result<()> {
    let tenants = events / 10;
    let meta = EventMetadata::by(Actor::system("bench"));
    let mut done = 0;
    while done < tenants {
        let chunk = (tenants - done).min(100);
        let mut request: Option<AppendRequest> = None;
        for i in done..done + chunk {
            let tenant = TenantId::new_v7();
            let mut evs = vec![TenantEvent::TenantProvisioned {
                tenant_id: tenant,
                name: TenantName::parse(&format!("Tenant {i}"))?,
                slug: Slug::parse(&format!("tenant-{i}"))?,
                settings: TenantSettings::default(),
                at: chrono::Utc::now(),
            }];
            for n in 0..9 {
                evs.push(if n % 2 == 0 {
                    TenantEvent::TenantRenamed {
                        name: TenantName::parse(&format!("Tenant {i} v{n}"))?,
                        at: chrono::Utc::now(),
                    }
                } else {
                    let settings = TenantSettings::parse(BTreeMap::from([(
                        "region".to_owned(),
                        format!("eu-{n}"),
                    )]))?;
                    TenantEvent::TenantSettingsChanged {
                        settings,
                        at: chrono::Utc::now(),
                    }
                });
            }
            let new: Vec<NewEvent> = evs
                .iter()
                .map(|e| {
                    let (t, p) = encode_event(e)?;
                    Ok(NewEvent::new(t, p, meta.clone()).for_tenant(tenant))
                })
                .collect::<Result<_, domain::aggregate::EventDecodeError>>()?;
            let stream = StreamId::for_aggregate("tenant", tenant.as_uuid());
            request = Some(match request {
                None => AppendRequest::to_stream(stream, ExpectedVersion::NoStream, new),
                Some(r) => r.and_stream(stream, ExpectedVersion::NoStream, new),
            });
        }
        if let Some(request) = request {
            store.append(request).await?;
        }
        done += chunk;
    }
    Ok(())
}

async fn command_round_trips(
    exec: &Executor,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<(Duration, Duration, f64)> {
    let mut tenants = Vec::new();
    for i in 0..clients {
        let tenant = TenantId::new_v7();
        let cmd = TenantCommand::Provision {
            tenant_id: tenant,
            name: TenantName::parse(&format!("Client {i}"))?,
            slug: Slug::parse(&format!("client-{i}"))?,
            settings: TenantSettings::default(),
            at: chrono::Utc::now(),
        };
        exec.execute::<Tenant>(
            tenant.as_uuid(),
            &cmd,
            &CommandContext::new(Actor::system("bench")),
        )
        .await?;
        tenants.push(tenant);
    }
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = tenants
        .into_iter()
        .map(|tenant| {
            let exec = exec.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    n += 1;
                    let cmd = TenantCommand::Rename {
                        name: TenantName::parse(&format!("Renamed {n}"))?,
                        at: chrono::Utc::now(),
                    };
                    let t = Instant::now();
                    exec.execute::<Tenant>(
                        tenant.as_uuid(),
                        &cmd,
                        &CommandContext::new(Actor::system("bench")),
                    )
                    .await?;
                    latencies.push(t.elapsed());
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    Ok((
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.len() as f64 / elapsed.as_secs_f64(),
    ))
}

//! `tenantry bench usage`: sustained usage ingestion on SQLite and PostgreSQL, with
//! deduplication on (every event its own stream): through the internal path
//! (`commands::metering::record_usage`, what the GraphQL mutation and `POST /usage/events`
//! call) while the usage read model follows in the same process — accepted events/s, the
//! read model's largest lag during the load and how long it takes to catch up after — and
//! through `POST /usage/events` of a `tenantry serve` process with an API key (each answer
//! comes once the read model shows it). Asserts nothing.

use super::scratch::ScratchArgs;
use chrono::Utc;
use commands::metering::{IngestRules, UsageFate, UsageInput, record_usage};
use commands::tenancy::{CreateTenant, Founder, create_tenant};
use commands::{CommandContext, Executor};
use domain::event::{Actor, Position};
use domain::tenant::{Slug, TenantName, TenantSettings};
use infra::database::Database;
use projections::runner::{self, RunnerConfig};
use projections::usage::UsageReadModel;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct UsageBenchArgs {
    #[command(flatten)]
    pub databases: ScratchArgs,
    /// Seconds of load per backend.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Concurrent clients, each sending batch after batch.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Events per batch (one request).
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
}

#[expect(clippy::print_stdout, reason = "a benchmark prints its figures")]
fn report(line: &str) {
    println!("{line}");
}

pub async fn run(args: UsageBenchArgs) -> anyhow::Result<()> {
    report(&format!(
        "tenantry bench usage: internal path, {} clients x batches of {}, {} s per backend, {} cores",
        args.clients,
        args.batch,
        args.seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));
    for scratch in args.databases.create().await? {
        let result = bench(scratch.backend, &scratch.db, &args).await;
        scratch.remove().await?;
        result?;
    }
    for scratch in args.databases.create().await? {
        let result = ndjson(scratch.backend, &scratch.url, &args).await;
        scratch.remove().await?;
        result?;
    }
    Ok(())
}

/// The same load through `POST /usage/events` of a server process.
async fn ndjson(backend: &str, url: &str, args: &UsageBenchArgs) -> anyhow::Result<()> {
    use super::api::{Connection, OWNER, ServerProcess, person};
    use anyhow::Context as _;
    let work = std::env::temp_dir().join(format!(
        "tenantry-bench-usage-{}",
        uuid::Uuid::now_v7().simple()
    ));
    let server = ServerProcess::start(url, &work)?;
    let mut c = Connection::open(server.addr).await?;
    let owner = person(&mut c, &work.join("mail"), OWNER).await?;
    let created = c
        .graphql(
            Some(&owner),
            "mutation { createTenant(input: {name: \"Bench\", slug: \"bench\"}) { tenant { id } } }",
            serde_json::json!({}),
        )
        .await?;
    let tenant = created["createTenant"]["tenant"]["id"]
        .as_str()
        .context("tenant id")?
        .to_owned();
    let key = c
        .graphql(
            Some(&owner),
            "mutation($t: ID!) { createApiKey(tenantId: $t, name: \"ingest\", scope: READ_WRITE) { secret } }",
            serde_json::json!({"t": tenant}),
        )
        .await?["createApiKey"]["secret"]
        .as_str()
        .context("key")?
        .to_owned();
    let accepted = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let started = Instant::now();
    let mut clients = Vec::new();
    for client in 0..args.clients {
        let (accepted, key, addr, batch) = (accepted.clone(), key.clone(), server.addr, args.batch);
        clients.push(tokio::spawn(async move {
            let mut c = Connection::open(addr).await?;
            let mut sequence = 0u64;
            while Instant::now() < deadline {
                let body: String = (0..batch)
                    .map(|i| {
                        format!(
                            "{{\"id\":\"c{client}-{sequence}-{i}\",\"meter\":\"bandwidth.bytes\",\"value\":1000}}\n"
                        )
                    })
                    .collect();
                sequence += 1;
                let (status, answer) = c
                    .post("/usage/events", &key, "application/x-ndjson", &body)
                    .await?;
                anyhow::ensure!(status == 200, "HTTP {status}: {answer}");
                accepted.fetch_add(answer["counted"].as_u64().unwrap_or(0), Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for client in clients {
        client.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let accepted = accepted.load(Ordering::Relaxed);
    report(&format!(
        "{backend:<9} NDJSON:   {accepted} events accepted in {seconds:.1} s = {:.0} events/s \
         ({} connections, {} lines per request)",
        accepted as f64 / seconds,
        args.clients,
        args.batch
    ));
    drop(server);
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

async fn checkpoint(db: &projections::ReadDb) -> anyhow::Result<Position> {
    Ok(runner::checkpoints(db)
        .await?
        .into_iter()
        .find(|cp| cp.name == UsageReadModel::NAME)
        .map_or(Position(0), |cp| cp.position()))
}

async fn bench(backend: &str, db: &Database, args: &UsageBenchArgs) -> anyhow::Result<()> {
    let store = db.event_store().await?;
    let exec = Executor::new(store.clone());
    let system = || CommandContext::new(Actor::system("bench"));
    let tenant = create_tenant(
        &exec,
        &system(),
        Utc::now(),
        CreateTenant {
            name: TenantName::parse("Bench")?,
            slug: Slug::parse("bench")?,
            settings: TenantSettings::default(),
            founder: Founder::Operator,
        },
    )
    .await?
    .tenant;
    let read = db.read_db();
    let _runner = runner::spawn(
        store.clone(),
        read.clone(),
        vec![Arc::new(UsageReadModel)],
        RunnerConfig::default(),
    );

    let accepted = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let started = Instant::now();
    let mut clients = Vec::new();
    for client in 0..args.clients {
        let (exec, accepted) = (exec.clone(), accepted.clone());
        let batch = args.batch;
        clients.push(tokio::spawn(async move {
            let ctx = CommandContext::new(Actor::system("bench"));
            let mut sequence = 0u64;
            while Instant::now() < deadline {
                let now = Utc::now();
                let events: Vec<UsageInput> = (0..batch)
                    .map(|i| UsageInput {
                        id: format!("c{client}-{sequence}-{i}"),
                        meter: "bandwidth.bytes".into(),
                        value: 1_000,
                        key: None,
                        timestamp: now,
                    })
                    .collect();
                sequence += 1;
                let fates =
                    record_usage(&exec, &ctx, now, tenant, IngestRules::default(), &events).await?;
                let counted = fates
                    .iter()
                    .filter(|f| matches!(f, UsageFate::Counted { .. }))
                    .count();
                accepted.fetch_add(counted as u64, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    // The read model's lag behind the log while the load runs, sampled.
    let mut max_lag = 0u64;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let head = store.head().await?;
        let at = checkpoint(&read).await?;
        max_lag = max_lag.max(head.0.saturating_sub(at.0));
    }
    for client in clients {
        client.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let accepted = accepted.load(Ordering::Relaxed);
    let stopped = Instant::now();
    let head = store.head().await?;
    while checkpoint(&read).await? < head {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    report(&format!(
        "{backend:<9} internal: {accepted} events accepted in {seconds:.1} s = {:.0} events/s; \
         read model lag during the load at most {max_lag} events; caught up {:.2} s after it",
        accepted as f64 / seconds,
        stopped.elapsed().as_secs_f64()
    ));
    Ok(())
}

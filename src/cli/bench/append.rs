//! `tenantry bench append`: throughput and latency of the event store against a raw
//! baseline (identical rows inserted into a plain table with no ordering guarantees), on
//! SQLite and PostgreSQL, in one run. Prints a table; asserts nothing.

use super::scratch::{ScratchArgs, percentile};
use anyhow::Context as _;
use chrono::Utc;
use domain::event::{Actor, EventMetadata, NewEvent, StreamId};
use domain::event_store::{AppendRequest, EventStore, ExpectedVersion};
use domain::ids::{CommandId, CorrelationId, TenantId};
use infra::database::Database;
use infra::event_store::PgEventStore;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Debug, clap::Args)]
pub struct AppendBenchArgs {
    #[command(flatten)]
    pub databases: ScratchArgs,
    /// Seconds each case runs.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Also measure, on PostgreSQL, the rejected alternative: every writer runs the locked
    /// append in its own transaction, without group commit.
    #[arg(long)]
    pub alternatives: bool,
}

/// One measured case.
#[derive(Debug, Clone, Copy)]
struct Case {
    name: &'static str,
    writers: usize,
    batch: usize,
}

const CASES: [Case; 4] = [
    Case {
        name: "single-event appends",
        writers: 1,
        batch: 1,
    },
    Case {
        name: "single-event appends",
        writers: 16,
        batch: 1,
    },
    Case {
        name: "100-event batches",
        writers: 1,
        batch: 100,
    },
    Case {
        name: "100-event batches",
        writers: 4,
        batch: 100,
    },
];

#[derive(Debug, Clone)]
enum Target {
    Store(Arc<dyn EventStore>),
    Raw(Database),
    /// `tenantry_append` called by each writer on its own connection: appends serialised by
    /// the lock, one commit each.
    Ungrouped(sqlx::PgPool),
}

#[derive(Debug)]
struct Figures {
    events_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

pub async fn run(args: AppendBenchArgs) -> anyhow::Result<()> {
    let duration = Duration::from_secs_f64(args.seconds.max(0.1));
    let payload_bytes = serde_json::to_vec(&payload(0))?.len();
    report_line(&format!(
        "tenantry bench append: {:.1} s per case, payload {payload_bytes} bytes, {} cores",
        duration.as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));
    report_line(&format!(
        "{:<9} {:<22} {:>7} {:>11} {:>8} {:>8} | {:>11} {:>8} {:>8} | {:>6}",
        "backend",
        "case",
        "writers",
        "store ev/s",
        "p50 ms",
        "p99 ms",
        "raw ev/s",
        "p50 ms",
        "p99 ms",
        "store/raw"
    ));

    for scratch in args.databases.create().await? {
        let result = async {
            create_raw_table(&scratch.db).await?;
            let alternatives = args.alternatives && scratch.backend == "postgres";
            compare(scratch.backend, &scratch.db, duration, alternatives).await
        }
        .await;
        scratch.remove().await?;
        result?;
    }
    Ok(())
}

async fn compare(
    backend: &str,
    db: &Database,
    duration: Duration,
    alternatives: bool,
) -> anyhow::Result<()> {
    let store = Target::Store(db.event_store().await?);
    let raw = Target::Raw(db.clone());
    // Warm caches, prepared statements and the connection pool.
    let warm_up = Case {
        name: "warm-up",
        writers: 4,
        batch: 10,
    };
    for target in [&store, &raw] {
        measure(target, warm_up, Duration::from_millis(500)).await?;
    }
    for case in CASES {
        let s = measure(&store, case, duration).await?;
        let r = measure(&raw, case, duration).await?;
        report_line(&format!(
            "{:<9} {:<22} {:>7} {:>11.0} {:>8.2} {:>8.2} | {:>11.0} {:>8.2} {:>8.2} | {:>6.2}x",
            backend,
            case.name,
            case.writers,
            s.events_per_sec,
            ms(s.p50),
            ms(s.p99),
            r.events_per_sec,
            ms(r.p50),
            ms(r.p99),
            s.events_per_sec / r.events_per_sec
        ));
    }
    if let (true, Database::Postgres(pool)) = (alternatives, db) {
        let ungrouped = Target::Ungrouped(pool.clone());
        for case in CASES {
            let u = measure(&ungrouped, case, duration).await?;
            report_line(&format!(
                "{:<9} {:<22} {:>7} {:>11.0} {:>8.2} {:>8.2}   (lock per append, no group commit)",
                backend,
                case.name,
                case.writers,
                u.events_per_sec,
                ms(u.p50),
                ms(u.p99)
            ));
        }
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[expect(clippy::print_stdout, reason = "a benchmark prints its figures")]
fn report_line(line: &str) {
    println!("{line}");
}

async fn measure(target: &Target, case: Case, duration: Duration) -> anyhow::Result<Figures> {
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..case.writers)
        .map(|_| {
            let target = target.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    write(&target, case.batch).await?;
                    latencies.push(t.elapsed());
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Ok(Figures {
        events_per_sec: (latencies.len() * case.batch) as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
    })
}

/// About 250 bytes of JSON, like a typical settings change.
fn payload(n: usize) -> Value {
    json!({
        "tenant_name": "Acme Backups Ltd",
        "plan": "business-annual",
        "settings": { "region": "eu-central-1", "retention_days": 30, "timezone": "Europe/Berlin",
                      "notify": ["ops@acme.example", "billing@acme.example"] },
        "sequence": n,
        "note": "benchmark payload padded to a realistic size for a control-plane event.."
    })
}

fn metadata() -> EventMetadata {
    let mut m = EventMetadata::by(Actor::system("bench"));
    m.command_id = Some(CommandId::new_v7());
    m.correlation_id = Some(CorrelationId::new_v7());
    m
}

async fn write(target: &Target, batch: usize) -> anyhow::Result<()> {
    let tenant = TenantId::new_v7();
    let events: Vec<NewEvent> = (0..batch)
        .map(|n| NewEvent::new("Bench.SettingsChanged", payload(n), metadata()).for_tenant(tenant))
        .collect();
    let stream = StreamId::for_aggregate("bench", Uuid::now_v7());
    match target {
        Target::Store(store) => {
            store
                .append(AppendRequest::to_stream(
                    stream,
                    ExpectedVersion::NoStream,
                    events,
                ))
                .await?;
        }
        Target::Raw(db) => raw_insert(db, &stream, &events).await?,
        Target::Ungrouped(pool) => {
            let mut conn = pool.acquire().await?;
            let request = AppendRequest::to_stream(stream, ExpectedVersion::NoStream, events);
            let mut outcomes = PgEventStore::append_on(&mut conn, &[request]).await?;
            outcomes.pop().context("no outcome")??;
        }
    }
    Ok(())
}

const RAW_COLUMNS: &str = "event_id, stream_id, version, event_type, schema_version, tenant_id, payload, metadata, recorded_at";

async fn create_raw_table(db: &Database) -> anyhow::Result<()> {
    match db {
        Database::Postgres(pool) => {
            sqlx::query(
                "CREATE TABLE bench_raw (id BIGSERIAL PRIMARY KEY, event_id UUID NOT NULL, \
                 stream_id TEXT NOT NULL, version BIGINT NOT NULL, event_type TEXT NOT NULL, \
                 schema_version INTEGER NOT NULL, tenant_id UUID, payload JSONB NOT NULL, \
                 metadata JSONB NOT NULL, recorded_at TIMESTAMPTZ NOT NULL)",
            )
            .execute(pool)
            .await?;
        }
        Database::Sqlite(db) => {
            sqlx::query(
                "CREATE TABLE bench_raw (id INTEGER PRIMARY KEY, event_id BLOB NOT NULL, \
                 stream_id TEXT NOT NULL, version INTEGER NOT NULL, event_type TEXT NOT NULL, \
                 schema_version INTEGER NOT NULL, tenant_id BLOB, payload TEXT NOT NULL, \
                 metadata TEXT NOT NULL, recorded_at TEXT NOT NULL)",
            )
            .execute(&db.writer)
            .await?;
        }
    }
    Ok(())
}

async fn raw_insert(db: &Database, stream: &StreamId, events: &[NewEvent]) -> anyhow::Result<()> {
    let now = Utc::now();
    match db {
        Database::Postgres(pool) if events.len() == 1 => {
            let e = &events[0];
            sqlx::query(&format!(
                "INSERT INTO bench_raw ({RAW_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ))
            .bind(e.event_id.as_uuid())
            .bind(stream.as_str())
            .bind(1_i64)
            .bind(&e.event_type)
            .bind(1_i32)
            .bind(e.tenant_id.map(|t| t.as_uuid()))
            .bind(&e.payload)
            .bind(serde_json::to_value(&e.metadata)?)
            .bind(now)
            .execute(pool)
            .await?;
        }
        Database::Postgres(pool) => {
            let versions: Vec<i64> = (1..=events.len() as i64).collect();
            sqlx::query(&format!(
                "INSERT INTO bench_raw ({RAW_COLUMNS}) SELECT * FROM unnest($1::uuid[], $2::text[], \
                 $3::bigint[], $4::text[], $5::int[], $6::uuid[], $7::jsonb[], $8::jsonb[], $9::timestamptz[])"
            ))
            .bind(events.iter().map(|e| e.event_id.as_uuid()).collect::<Vec<_>>())
            .bind(vec![stream.as_str().to_owned(); events.len()])
            .bind(versions)
            .bind(events.iter().map(|e| e.event_type.clone()).collect::<Vec<_>>())
            .bind(vec![1_i32; events.len()])
            .bind(events.iter().map(|e| e.tenant_id.map(|t| t.as_uuid())).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.payload.clone()).collect::<Vec<_>>())
            .bind(events.iter().map(|e| serde_json::to_value(&e.metadata)).collect::<Result<Vec<_>, _>>()?)
            .bind(vec![now; events.len()])
            .execute(pool)
            .await?;
        }
        Database::Sqlite(db) => {
            let mut tx = db.writer.begin().await?;
            for (version, e) in (1_i64..).zip(events) {
                sqlx::query(&format!(
                    "INSERT INTO bench_raw ({RAW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ))
                .bind(e.event_id.as_uuid())
                .bind(stream.as_str())
                .bind(version)
                .bind(&e.event_type)
                .bind(1_i32)
                .bind(e.tenant_id.map(|t| t.as_uuid()))
                .bind(sqlx::types::Json(&e.payload))
                .bind(sqlx::types::Json(&e.metadata))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        }
    }
    Ok(())
}

//! `tenantry bench append`: throughput and latency of the event store against a raw
//! baseline (identical rows inserted into a plain table with no ordering guarantees), on
//! SQLite and PostgreSQL, in one run. Appends carry a command id, as every command's append
//! does (so each stores its idempotency record), unless `--without-command-ids`. Each case
//! runs `--runs` times, alternating store and baseline; the table gives the median and the
//! spread. Then the store is filled with `--stored-commands` more commands and one writer is
//! measured again on the same store, to show whether append cost grows with the log. Prints
//! figures; asserts nothing.

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
    /// Append without command ids (no idempotency records), to show what they cost.
    #[arg(long)]
    pub without_command_ids: bool,
    /// Runs of each case; the median and the spread are printed.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Commands stored before the single writer is measured again (0: skip).
    #[arg(long, default_value_t = 1_000_000)]
    pub stored_commands: u64,
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
    /// The event store; `true`: with a command id per append.
    Store(Arc<dyn EventStore>, bool),
    Raw(Database),
    /// The append function called by each writer on its own connection: appends serialised by
    /// the lock, one commit each.
    Ungrouped(sqlx::PgPool, bool),
}

#[derive(Debug, Clone, Copy)]
struct Figures {
    events_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

/// Several runs of one case: medians, and the range of events/s.
#[derive(Debug)]
struct Runs(Vec<Figures>);

impl Runs {
    fn median(&self, f: impl Fn(&Figures) -> f64) -> f64 {
        let mut values: Vec<f64> = self.0.iter().map(f).collect();
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(0.0)
    }
    fn rate(&self) -> f64 {
        self.median(|f| f.events_per_sec)
    }
    fn spread(&self) -> String {
        let rates = self.0.iter().map(|f| f.events_per_sec);
        let (lo, hi) = rates.fold((f64::MAX, 0.0_f64), |(lo, hi), r| (lo.min(r), hi.max(r)));
        format!("{lo:.0}-{hi:.0}")
    }
    fn p50(&self) -> f64 {
        self.median(|f| ms(f.p50))
    }
    fn p99(&self) -> f64 {
        self.median(|f| ms(f.p99))
    }
}

pub async fn run(args: AppendBenchArgs) -> anyhow::Result<()> {
    let duration = Duration::from_secs_f64(args.seconds.max(0.1));
    let payload_bytes = serde_json::to_vec(&payload(0))?.len();
    report_line(&format!(
        "tenantry bench append: {:.1} s per case, {} runs (median, and the range of events/s), \
         payload {payload_bytes} bytes, {}, {} cores",
        duration.as_secs_f64(),
        args.runs.max(1),
        if args.without_command_ids {
            "appends without command ids"
        } else {
            "every append with a command id (as commands append)"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));
    report_line(&format!(
        "{:<9} {:<22} {:>7} {:>11} {:>13} {:>7} {:>7} | {:>11} {:>13} {:>7} {:>7} | {:>6}",
        "backend",
        "case",
        "writers",
        "store ev/s",
        "range",
        "p50 ms",
        "p99 ms",
        "raw ev/s",
        "range",
        "p50 ms",
        "p99 ms",
        "store/raw"
    ));

    for scratch in args.databases.create().await? {
        let result = async {
            create_raw_table(&scratch.db).await?;
            compare(scratch.backend, &scratch.db, duration, &args).await
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
    args: &AppendBenchArgs,
) -> anyhow::Result<()> {
    let store = Target::Store(db.event_store().await?, !args.without_command_ids);
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
    let runs = args.runs.max(1);
    let mut fresh_single = None;
    for case in CASES {
        let (mut s, mut r) = (Runs(Vec::new()), Runs(Vec::new()));
        for _ in 0..runs {
            s.0.push(measure(&store, case, duration).await?);
            r.0.push(measure(&raw, case, duration).await?);
        }
        report_line(&format!(
            "{:<9} {:<22} {:>7} {:>11.0} {:>13} {:>7.2} {:>7.2} | {:>11.0} {:>13} {:>7.2} {:>7.2} | {:>6.2}x",
            backend,
            case.name,
            case.writers,
            s.rate(),
            s.spread(),
            s.p50(),
            s.p99(),
            r.rate(),
            r.spread(),
            r.p50(),
            r.p99(),
            s.rate() / r.rate()
        ));
        if case.writers == 1 && case.batch == 1 {
            fresh_single = Some(s);
        }
    }
    if args.alternatives
        && let Database::Postgres(pool) = db
    {
        let ungrouped = Target::Ungrouped(pool.clone(), !args.without_command_ids);
        for case in CASES {
            let u = measure(&ungrouped, case, duration).await?;
            report_line(&format!(
                "{:<9} {:<22} {:>7} {:>11.0} {:>13} {:>7.2} {:>7.2}   (lock per append, no group commit)",
                backend,
                case.name,
                case.writers,
                u.events_per_sec,
                "",
                ms(u.p50),
                ms(u.p99)
            ));
        }
    }
    if args.stored_commands > 0
        && let Some(fresh) = fresh_single
    {
        let filled = Instant::now();
        fill(db, args.stored_commands).await?;
        let stored = stored_commands(db).await?;
        let mut after = Runs(Vec::new());
        for _ in 0..runs {
            after.0.push(measure(&store, CASES[0], duration).await?);
        }
        report_line(&format!(
            "{backend:<9} 1 writer, single events: {:.0} ev/s, p50 {:.2} / p99 {:.2} ms in the store above; \
             {:.0} ev/s ({}), p50 {:.2} / p99 {:.2} ms on the same store after filling it to {stored} \
             stored commands ({:.0} s to fill)",
            fresh.rate(),
            fresh.p50(),
            fresh.p99(),
            after.rate(),
            after.spread(),
            after.p50(),
            after.p99(),
            filled.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}

/// Adds `count` one-event commands to the store in bulk (dense positions, a command record
/// each), the way years of appends would leave it, without taking years.
async fn fill(db: &Database, count: u64) -> anyhow::Result<()> {
    const CHUNK: u64 = 100_000;
    let payload = payload(0).to_string();
    let mut done = 0;
    while done < count {
        let n = i64::try_from(CHUNK.min(count - done))?;
        match db {
            Database::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock(7245130914)")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "WITH head AS (SELECT coalesce(max(position), 0) AS h FROM events), \
                     filled AS (INSERT INTO events (position, event_id, stream_id, version, \
                       event_type, schema_version, tenant_id, payload, metadata, recorded_at) \
                       SELECT h + g, gen_random_uuid(), 'fill-' || gen_random_uuid(), 1, \
                              'Bench.Filled', 1, gen_random_uuid(), $2::jsonb, '{}'::jsonb, now() \
                         FROM head, generate_series(1, $1) AS g \
                       RETURNING position, stream_id) \
                     INSERT INTO event_commands (command_id, result, recorded_at) \
                     SELECT gen_random_uuid(), jsonb_build_object('first_position', position, \
                            'last_position', position, 'streams', jsonb_build_array(stream_id), \
                            'versions', jsonb_build_array(1)), now() FROM filled",
                )
                .bind(n)
                .bind(&payload)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
            Database::Sqlite(sqlite) => {
                let mut tx = sqlite.writer.begin().await?;
                sqlx::query(
                    "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ?1) \
                     INSERT INTO events (position, event_id, stream_id, version, event_type, \
                       schema_version, tenant_id, payload, metadata, recorded_at) \
                     SELECT (SELECT coalesce(max(position), 0) FROM events) + n, randomblob(16), \
                            'fill-' || hex(randomblob(16)), 1, 'Bench.Filled', 1, randomblob(16), \
                            ?2, '{}', strftime('%Y-%m-%dT%H:%M:%fZ') FROM g",
                )
                .bind(n)
                .bind(&payload)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO event_commands (command_id, result, recorded_at) \
                     SELECT randomblob(16), json_object('first_position', position, \
                            'last_position', position, 'streams', json_array(stream_id), \
                            'versions', json_array(1)), recorded_at \
                       FROM events WHERE position > (SELECT max(position) FROM events) - ?1",
                )
                .bind(n)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
        }
        done += CHUNK.min(count - done);
    }
    Ok(())
}

async fn stored_commands(db: &Database) -> anyhow::Result<i64> {
    let sql = "SELECT count(*) FROM event_commands";
    Ok(match db {
        Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
        Database::Sqlite(sqlite) => sqlx::query_scalar(sql).fetch_one(&sqlite.writer).await?,
    })
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
    let request = |with_command: bool, events| {
        let request = AppendRequest::to_stream(stream.clone(), ExpectedVersion::NoStream, events);
        if with_command {
            // Like the ids commands derive from idempotency keys: random, not time-ordered.
            request.idempotent(CommandId::from_uuid(Uuid::new_v4()))
        } else {
            request
        }
    };
    match target {
        Target::Store(store, with_command) => {
            store.append(request(*with_command, events)).await?;
        }
        Target::Raw(db) => raw_insert(db, &stream, &events).await?,
        Target::Ungrouped(pool, with_command) => {
            let mut conn = pool.acquire().await?;
            let request = request(*with_command, events);
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
